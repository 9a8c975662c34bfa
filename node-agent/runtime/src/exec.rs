//! Exec into a running container: [`ExecConfig`] in, [`ExecProcess`] out. The process is
//! started by a short-lived `shim exec` process (see [`crate::shim`]); without a tty its
//! stdio are pipes to us, with a tty we receive the pty master (created inside the
//! container) on a console socket and read/write/resize it directly.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, Interest, ReadBuf};

use crate::shim::ExecRequest;
use crate::{Error, Result, ShimCommand};

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct ExecConfig {
    pub args: Vec<String>,
    /// Added to (and overriding) the container's environment.
    pub env: Vec<(String, String)>,
    /// Allocate a pty: stdout is the pty master, stderr is None.
    pub tty: bool,
    /// Give the process a stdin (otherwise /dev/null).
    pub stdin: bool,
}

/// A process started inside a running container (its namespaces, cgroup, root, uid).
pub struct ExecProcess {
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// With a tty: the pty master (stderr is None).
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    id: String,
    child: tokio::process::Child,
    pty: Option<Arc<AsyncFd<OwnedFd>>>,
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess")
            .field("id", &self.id)
            .field("tty", &self.pty.is_some())
            .finish()
    }
}

/// Resizes an exec's terminal from another task while `wait` runs. Cheap to clone.
#[derive(Clone)]
pub struct Resizer {
    pty: Option<Arc<AsyncFd<OwnedFd>>>,
}

impl Resizer {
    /// Sets the terminal size; a no-op without a tty.
    pub fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        match &self.pty {
            Some(pty) => crate::sys::set_winsize(pty.get_ref().as_raw_fd(), cols, rows)
                .map_err(Error::sys("setting the exec terminal size (TIOCSWINSZ)")),
            None => Ok(()),
        }
    }
}

impl ExecProcess {
    /// Sets the terminal size; a no-op without a tty.
    pub fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        self.resizer().resize(cols, rows)
    }

    /// A handle that resizes the terminal while another task waits.
    pub fn resizer(&self) -> Resizer {
        Resizer {
            pty: self.pty.clone(),
        }
    }

    /// Waits for the process; its exit code (128+signal if a signal ended it, 126 if it
    /// could not be started — the reason was written to its stderr).
    pub async fn wait(&mut self) -> Result<i32> {
        let status = self.child.wait().await.map_err(|e| Error::Exec {
            id: self.id.clone(),
            msg: format!("waiting for the exec shim: {e}"),
        })?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }

    /// Kills the exec shim (the process inside keeps running if it ignores the
    /// resulting hang-up; closing stdin is the polite way to end it).
    pub fn start_kill(&mut self) -> Result<()> {
        self.child.start_kill().map_err(|e| Error::Exec {
            id: self.id.clone(),
            msg: format!("killing the exec shim: {e}"),
        })
    }
}

/// Starts `cfg` in the container in `dir` through `shim exec`.
pub(crate) async fn spawn(
    shim: &ShimCommand,
    id: &str,
    dir: &Path,
    cfg: ExecConfig,
) -> Result<ExecProcess> {
    let err = |msg: String| Error::Exec {
        id: id.to_string(),
        msg,
    };
    if cfg.args.is_empty() || cfg.args[0].is_empty() {
        return Err(err("no command given".into()));
    }
    let mut listener = None;
    let console_socket = if cfg.tty {
        let path = console_socket_path(dir);
        let _ = std::fs::remove_file(&path);
        let l = tokio::net::UnixListener::bind(&path).map_err(|e| {
            err(format!(
                "binding the console socket {}: {e}",
                path.display()
            ))
        })?;
        listener = Some((l, SocketFile(path.clone())));
        Some(path)
    } else {
        None
    };
    let req = ExecRequest {
        args: cfg.args.clone(),
        env: cfg.env.clone(),
        console_socket,
    };
    let req = serde_json::to_string(&req).map_err(|e| err(e.to_string()))?;
    let mut cmd = tokio::process::Command::new(&shim.program);
    cmd.args(&shim.args).arg("exec").arg(dir).arg(req);
    cmd.stdin(if cfg.stdin && !cfg.tty {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    if cfg.tty {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| err(format!("spawning {}: {e}", shim.program.display())))?;

    let Some((listener, _socket_file)) = listener else {
        return Ok(ExecProcess {
            stdin: child
                .stdin
                .take()
                .map(|s| Box::new(s) as Box<dyn AsyncWrite + Send + Unpin>),
            stdout: child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
            stderr: child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
            id: id.to_string(),
            child,
            pty: None,
        });
    };

    // The container's side connects and sends the pty master; if the shim exits first,
    // its stderr says why.
    let stream = tokio::select! {
        accepted = listener.accept() => accepted.map(|(s, _)| s)
            .map_err(|e| err(format!("accepting on the console socket: {e}")))?,
        status = child.wait() => {
            let mut msg = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut msg).await;
            }
            return Err(err(format!(
                "the exec shim exited ({}) before the terminal was ready: {}",
                status.map(|s| s.to_string()).unwrap_or_default(),
                msg.trim()
            )));
        }
    };
    let master = loop {
        stream
            .readable()
            .await
            .map_err(|e| err(format!("console socket: {e}")))?;
        match stream.try_io(Interest::READABLE, || {
            crate::sys::recv_fd(stream.as_raw_fd())
        }) {
            Ok(fd) => break fd,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(err(format!("receiving the pty master: {e}"))),
        }
    };
    let flags = fcntl(master.as_raw_fd(), FcntlArg::F_GETFL).map_err(Error::sys("pty F_GETFL"))?;
    fcntl(
        master.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(Error::sys("pty O_NONBLOCK"))?;
    // The AsyncFd owns the OwnedFd, so it cannot be closed while registered.
    #[allow(deprecated)]
    let pty = Arc::new(AsyncFd::new(master).map_err(|e| err(format!("pty: {e}")))?);
    // The shim's stderr only matters if it fails; drain it so it never blocks.
    if let Some(mut e) = child.stderr.take() {
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = e.read_to_end(&mut sink).await;
        });
    }
    Ok(ExecProcess {
        stdin: cfg
            .stdin
            .then(|| Box::new(PtyIo(pty.clone())) as Box<dyn AsyncWrite + Send + Unpin>),
        stdout: Some(Box::new(PtyIo(pty.clone()))),
        stderr: None,
        id: id.to_string(),
        child,
        pty: Some(pty),
    })
}

/// Removes the console socket file once the pty has been received (or on failure).
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A unix socket path must fit in 108 bytes; long agent roots fall back to /tmp.
fn console_socket_path(dir: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "tug-console-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let local = dir.join(&name);
    if local.as_os_str().len() < 100 {
        local
    } else {
        std::env::temp_dir().join(name)
    }
}

/// The pty master as a reader (stdout) and writer (stdin).
struct PtyIo(Arc<AsyncFd<OwnedFd>>);

impl AsyncRead for PtyIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_raw_fd(), unfilled).map_err(std::io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EIO: every slave fd is closed, i.e. the process ended. That is EOF.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard
                .try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(std::io::Error::from))
            {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
