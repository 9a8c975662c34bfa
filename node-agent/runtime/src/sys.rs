//! The two calls that need `unsafe`: taking ownership of a file descriptor received over
//! a unix socket (the exec pty master), and setting a terminal's window size.
#![allow(unsafe_code)]

use std::io::IoSliceMut;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

/// Receives one file descriptor sent with SCM_RIGHTS on the unix socket `sock`.
pub(crate) fn recv_fd(sock: RawFd) -> std::io::Result<OwnedFd> {
    let mut data = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut data)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut received = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in our table for this message;
                // nothing else refers to it, so the OwnedFd is its only owner (extra fds,
                // if any, are owned and closed here too).
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if received.is_none() {
                    received = Some(owned);
                }
            }
        }
    }
    received.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the console socket message carried no file descriptor",
        )
    })
}

/// Sets the window size of the terminal `fd` (a pty master).
pub(crate) fn set_winsize(fd: RawFd, cols: u16, rows: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which points to a live
    // local for the duration of the call; a bad fd only yields an errno.
    unsafe { tiocswinsz(fd, &ws) }.map(drop)
}
