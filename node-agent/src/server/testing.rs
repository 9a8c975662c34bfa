//! A fake [`PodBackend`] for the server's tests: log files written by the test, exec as
//! local processes (pipes, or a pty from openpty for `tty`).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{BackendError, ExecRequest, ExecSession, PodBackend};

#[derive(Debug, Clone, Default)]
pub struct FakeContainer {
    pub restart_count: u32,
    pub running: bool,
}

pub struct FakeBackend {
    /// Logs live at `<root>/<ns>_<pod>/<container>/<restartCount>.log`.
    pub root: PathBuf,
    pub containers: Mutex<HashMap<(String, String, String), FakeContainer>>,
    /// Every resize asked for, in order.
    pub resizes: Arc<Mutex<Vec<(u16, u16)>>>,
    /// Every exec request, in order.
    pub execs: Mutex<Vec<ExecRequest>>,
}

impl FakeBackend {
    pub fn new(root: PathBuf) -> Arc<Self> {
        Arc::new(FakeBackend {
            root,
            containers: Mutex::default(),
            resizes: Arc::default(),
            execs: Mutex::default(),
        })
    }

    pub fn add(&self, ns: &str, pod: &str, container: &str, c: FakeContainer) {
        self.containers
            .lock()
            .unwrap()
            .insert((ns.into(), pod.into(), container.into()), c);
    }

    pub fn set(&self, ns: &str, pod: &str, container: &str, f: impl FnOnce(&mut FakeContainer)) {
        let mut all = self.containers.lock().unwrap();
        f(all
            .get_mut(&(ns.into(), pod.into(), container.into()))
            .expect("known fake container"));
    }

    pub fn path(&self, ns: &str, pod: &str, container: &str, n: u32) -> PathBuf {
        self.root
            .join(format!("{ns}_{pod}"))
            .join(container)
            .join(format!("{n}.log"))
    }

    fn get(&self, ns: &str, pod: &str, container: &str) -> Result<FakeContainer, BackendError> {
        self.containers
            .lock()
            .unwrap()
            .get(&(ns.into(), pod.into(), container.into()))
            .cloned()
            .ok_or_else(|| {
                BackendError::NotFound(format!(
                    "container {container:?} in pod {pod:?} (namespace {ns:?}) not found"
                ))
            })
    }
}

impl PodBackend for FakeBackend {
    fn log_path(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<PathBuf, BackendError> {
        let c = self.get(ns, pod, container)?;
        if previous {
            if c.restart_count == 0 {
                return Err(BackendError::BadRequest(format!(
                    "previous terminated container {container:?} in pod {pod:?} not found"
                )));
            }
            return Ok(self.path(ns, pod, container, c.restart_count - 1));
        }
        Ok(self.path(ns, pod, container, c.restart_count))
    }

    fn is_running(&self, ns: &str, pod: &str, container: &str) -> bool {
        self.get(ns, pod, container).is_ok_and(|c| c.running)
    }

    fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        req: ExecRequest,
    ) -> BoxFuture<'_, Result<ExecSession, BackendError>> {
        let found = self.get(ns, pod, container);
        self.execs.lock().unwrap().push(req.clone());
        let resizes = self.resizes.clone();
        let container = container.to_string();
        async move {
            let c = found?;
            if !c.running {
                return Err(BackendError::BadRequest(format!(
                    "container {container:?} is not running"
                )));
            }
            spawn(req, resizes)
        }
        .boxed()
    }
}

fn internal(e: impl std::fmt::Display) -> BackendError {
    BackendError::Internal(e.to_string())
}

fn spawn(
    req: ExecRequest,
    resizes: Arc<Mutex<Vec<(u16, u16)>>>,
) -> Result<ExecSession, BackendError> {
    let mut cmd = tokio::process::Command::new(&req.command[0]);
    cmd.args(&req.command[1..]).kill_on_drop(true);
    if req.tty {
        let pty = nix::pty::openpty(None, None).map_err(internal)?;
        let slave = |fd: &OwnedFd| fd.try_clone().map(Stdio::from).map_err(internal);
        cmd.stdin(slave(&pty.slave)?)
            .stdout(slave(&pty.slave)?)
            .stderr(slave(&pty.slave)?);
        let mut child = cmd.spawn().map_err(internal)?;
        // Our copy of the slave must go, or the master never sees EOF/EIO.
        drop(cmd);
        drop(pty.slave);
        let master = std::fs::File::from(pty.master);
        let reader = tokio::fs::File::from_std(master.try_clone().map_err(internal)?);
        let writer = tokio::fs::File::from_std(master);
        return Ok(ExecSession {
            stdin: req.stdin.then(|| Box::new(writer) as _),
            stdout: Some(Box::new(reader)),
            stderr: None,
            resize: Some(Box::new(move |w, h| {
                resizes.lock().unwrap().push((w, h));
                Ok(())
            })),
            exit: async move { child.wait().await.map(code).map_err(internal) }.boxed(),
        });
    }
    let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(pipe(req.stdin))
        .stdout(pipe(req.stdout))
        .stderr(pipe(req.stderr));
    let mut child = cmd.spawn().map_err(internal)?;
    Ok(ExecSession {
        stdin: child.stdin.take().map(|s| Box::new(s) as _),
        stdout: child.stdout.take().map(|s| Box::new(s) as _),
        stderr: child.stderr.take().map(|s| Box::new(s) as _),
        resize: None,
        exit: async move { child.wait().await.map(code).map_err(internal) }.boxed(),
    })
}

fn code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Writes CRI log lines (`(timestamp, stream, tag, message)`) to `path`, appending.
pub fn append_cri(path: &std::path::Path, lines: &[(&str, &str, &str, &str)]) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for (ts, stream, tag, msg) in lines {
        writeln!(f, "{ts} {stream} {tag} {msg}").unwrap();
    }
}
