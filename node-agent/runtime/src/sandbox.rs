//! The pod sandbox's persistent IPC and UTS namespaces: bind mounts of namespace files,
//! no pause process.
//!
//! IPC and UTS namespaces are per-thread, and unlike mount or user namespaces a thread
//! of a multi-threaded process may unshare them. So a short-lived thread unshares both,
//! sets the hostname, and bind-mounts its own `/proc/thread-self/ns/{ipc,uts}` onto
//! files in the sandbox dir (the mount namespace is shared with the whole process, so
//! the mounts outlive the thread). No process is forked and nothing in the agent's
//! other threads changes.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::{Error, Result};

const IPC: &str = "ipc";
const UTS: &str = "uts";

/// Creates the sandbox's IPC and UTS namespaces under `dir` (created if missing) with
/// `hostname` set; returns the (ipc, uts) namespace file paths for
/// [`crate::SandboxNamespaces`]. Idempotent: existing namespaces are kept.
pub fn create_sandbox(dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf)> {
    let err = |msg: String| Error::Sandbox {
        dir: dir.to_path_buf(),
        msg,
    };
    if hostname.is_empty() || hostname.len() > 64 {
        return Err(err(format!(
            "hostname {hostname:?} must be 1-64 characters (the pod name)"
        )));
    }
    fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    let ipc = dir.join(IPC);
    let uts = dir.join(UTS);
    if is_nsfs(&ipc) && is_nsfs(&uts) {
        return Ok((ipc, uts));
    }
    for f in [&ipc, &uts] {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(f)
            .map_err(Error::io("creating", f))?;
    }
    let (ipc2, uts2, host) = (ipc.clone(), uts.clone(), hostname.to_string());
    let joined = std::thread::Builder::new()
        .name("tug-sandbox".into())
        .spawn(move || -> Result<(), String> {
            unshare(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS)
                .map_err(|e| format!("unshare(IPC|UTS): {e}"))?;
            nix::unistd::sethostname(&host).map_err(|e| format!("sethostname: {e}"))?;
            for (name, target) in [(IPC, &ipc2), (UTS, &uts2)] {
                let src = format!("/proc/thread-self/ns/{name}");
                mount(
                    Some(src.as_str()),
                    target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| format!("bind-mounting {src} on {}: {e}", target.display()))?;
            }
            Ok(())
        })
        .map_err(|e| err(format!("spawning the namespace thread: {e}")))?
        .join()
        .map_err(|_| err("the namespace thread panicked".into()))?;
    if let Err(msg) = joined {
        let _ = remove_sandbox(dir);
        return Err(err(msg));
    }
    Ok((ipc, uts))
}

/// Whether `path` is a mounted namespace file.
fn is_nsfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Unmounts and removes the namespace files and `dir` itself (if then empty). Ok if
/// already gone.
pub fn remove_sandbox(dir: &Path) -> Result<()> {
    for name in [IPC, UTS] {
        let f = dir.join(name);
        // A file can carry several stacked mounts if creation raced; peel them all.
        while is_nsfs(&f) {
            umount2(&f, MntFlags::MNT_DETACH)
                .map_err(Error::sys(format!("unmounting {}", f.display())))?;
        }
        match fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", f)(e)),
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::io("removing", dir)(e)),
    }
}
