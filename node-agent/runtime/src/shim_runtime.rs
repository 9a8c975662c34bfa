//! [`ShimRuntime`]: the production [`Runtime`]. It writes the bundle into
//! `<root>/containers/<id>/`, starts one shim per container, and answers every query
//! from the shim's files, so a restarted agent sees exactly what the old one saw.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures::future::BoxFuture;
use futures::FutureExt;
use nix::sys::stat::Mode;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, BufReader, Interest};

use crate::records::{self, ExitRecord, ShimConfig, StateRecord};
use crate::{
    cgroups, spec, ContainerConfig, ContainerState, Error, ExecConfig, ExecProcess, Result,
    Runtime, ShimCommand,
};

/// Runs each container under its own shim process (see [`crate::shim`]).
#[derive(Debug, Clone)]
pub struct ShimRuntime {
    containers: PathBuf,
    shim: ShimCommand,
}

impl ShimRuntime {
    /// `root` holds one directory per container (the agent passes
    /// `<root-dir>/containers`); created if missing.
    pub fn new(root: PathBuf, shim: ShimCommand) -> Result<Self> {
        let containers = root;
        fs::create_dir_all(&containers).map_err(Error::io("creating", &containers))?;
        Ok(ShimRuntime { containers, shim })
    }

    /// The directory holding container `id`'s bundle and records.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers.join(id)
    }

    fn existing_dir(&self, id: &str) -> Result<PathBuf> {
        // Ids name directories: refuse anything that could escape the root.
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            return Err(Error::NotFound(id.to_string()));
        }
        let dir = self.container_dir(id);
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(Error::NotFound(id.to_string()))
        }
    }

    async fn run_impl(&self, cfg: ContainerConfig) -> Result<ContainerState> {
        let spec = spec::build_spec(&cfg)?;
        let dir = self.container_dir(&cfg.id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(cfg.id.clone()))
            }
            Err(e) => return Err(Error::io("creating", &dir)(e)),
        }
        let result = self.start_shim(&cfg, &spec, &dir).await;
        if result.is_err() {
            // The shim cleaned up libcontainer's side; drop the bundle so the id can be
            // reused by the next attempt.
            let _ = cgroups::remove_container_cgroup(&spec::cgroup_path(&cfg));
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    async fn start_shim(
        &self,
        cfg: &ContainerConfig,
        spec: &oci_spec::runtime::Spec,
        dir: &Path,
    ) -> Result<ContainerState> {
        let spec_path = dir.join(records::SPEC);
        spec.save(&spec_path).map_err(|e| Error::Start {
            id: cfg.id.clone(),
            msg: format!("writing {}: {e}", spec_path.display()),
        })?;
        records::write_json(
            dir,
            records::SHIM_CONFIG,
            &ShimConfig {
                id: cfg.id.clone(),
                log_path: cfg.log_path.clone(),
                cgroup_path: spec::cgroup_path(cfg),
            },
        )?;
        for fifo in [records::EXIT_FIFO, records::CTL_FIFO] {
            let path = dir.join(fifo);
            nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600))
                .map_err(Error::sys(format!("mkfifo {}", path.display())))?;
        }
        let mut child = tokio::process::Command::new(&self.shim.program)
            .args(&self.shim.args)
            .arg("run")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Start {
                id: cfg.id.clone(),
                msg: format!("spawning the shim {}: {e}", self.shim.program.display()),
            })?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line).await;
        }
        // The shim runs as long as the container; reap it whenever it ends (a restarted
        // agent is not its parent any more, and init reaps it then).
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        let line = line.trim_end();
        if let Some(msg) = line.strip_prefix("error ") {
            return Err(Error::Start {
                id: cfg.id.clone(),
                msg: msg.to_string(),
            });
        }
        if !line.starts_with("ok ") {
            let log = fs::read_to_string(dir.join(records::SHIM_LOG)).unwrap_or_default();
            return Err(Error::Start {
                id: cfg.id.clone(),
                msg: format!("the shim exited without reporting; its log: {}", log.trim()),
            });
        }
        state_of(&cfg.id, dir)
    }

    async fn wait_impl(&self, id: &str) -> Result<ContainerState> {
        let dir = self.existing_dir(id)?;
        if let Some(exit) = records::read_json::<ExitRecord>(&dir, records::EXIT)? {
            return Ok(exit.state());
        }
        let fifo_path = dir.join(records::EXIT_FIFO);
        let mut fifo = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo_path)
            .map_err(Error::io("opening", &fifo_path))?;
        let mut buf = [0u8; 64];
        // A FIFO whose writer left before we opened it never signals HUP; read first.
        match fifo.read(&mut buf) {
            Ok(0) => return state_of(id, &dir),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(Error::io("reading", &fifo_path)(e)),
        }
        // The AsyncFd owns the File, so it cannot be closed while registered.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(fifo, Interest::READABLE)
            .map_err(Error::io("watching", &fifo_path))?;
        loop {
            let mut guard = fd
                .readable()
                .await
                .map_err(Error::io("watching", &fifo_path))?;
            match guard.try_io(|f| f.get_ref().read(&mut buf)) {
                Ok(Ok(0)) => break,
                Ok(Ok(_)) | Err(_) => continue,
                Ok(Err(e)) => return Err(Error::io("reading", &fifo_path)(e)),
            }
        }
        state_of(id, &dir)
    }

    fn kill_impl(&self, id: &str, signal: i32) -> Result<()> {
        let dir = self.existing_dir(id)?;
        let path = dir.join(records::CTL_FIFO);
        let mut ctl = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            // ENXIO: no reader, i.e. the shim (and so the container) is gone.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(()),
            Err(e) => return Err(Error::io("opening", &path)(e)),
        };
        match ctl.write_all(format!("{signal}\n").as_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(Error::io("writing", &path)(e)),
        }
    }

    fn remove_impl(&self, id: &str) -> Result<()> {
        let dir = self.existing_dir(id)?;
        // The shim writes exit.json as its last act (after removing the container's
        // cgroup and libcontainer state): from then on the container is gone even if
        // the shim process has not quite exited.
        let exited = records::read_json::<ExitRecord>(&dir, records::EXIT)
            .ok()
            .flatten()
            .is_some();
        if !exited && shim_alive(&dir) {
            return Err(Error::StillRunning(id.to_string()));
        }
        // A shim that died uncleanly may have left the container's cgroup (and its
        // processes) behind.
        if !exited {
            if let Some(cfg) = records::read_json::<ShimConfig>(&dir, records::SHIM_CONFIG)? {
                if cgroups::cgroup_exists(&cfg.cgroup_path) {
                    tracing::warn!(
                        container = id,
                        cgroup = cfg.cgroup_path,
                        "the container's shim died without cleaning up; killing what is left in its cgroup"
                    );
                }
                cgroups::remove_container_cgroup(&cfg.cgroup_path)?;
            }
        }
        fs::remove_dir_all(&dir).map_err(Error::io("removing", &dir))
    }

    fn list_impl(&self) -> Result<Vec<(String, ContainerState)>> {
        let mut out = Vec::new();
        let entries =
            fs::read_dir(&self.containers).map_err(Error::io("listing", &self.containers))?;
        for entry in entries.flatten() {
            let Ok(id) = entry.file_name().into_string() else {
                continue;
            };
            if !entry.path().is_dir() || id.starts_with('.') {
                continue;
            }
            let state = state_of(&id, &entry.path())
                .unwrap_or_else(|e| ContainerState::Unknown(e.to_string()));
            out.push((id, state));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// Whether the shim of the container in `dir` still runs (it holds the exit FIFO open).
pub(crate) fn shim_alive(dir: &Path) -> bool {
    let Ok(mut fifo) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(dir.join(records::EXIT_FIFO))
    else {
        return false;
    };
    let mut buf = [0u8; 16];
    matches!(fifo.read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

fn state_of(id: &str, dir: &Path) -> Result<ContainerState> {
    if let Some(exit) = records::read_json::<ExitRecord>(dir, records::EXIT)? {
        return Ok(exit.state());
    }
    let alive = shim_alive(dir);
    let state = records::read_json::<StateRecord>(dir, records::STATE)?;
    // The shim writes exit.json before it exits: look again now that it may be gone.
    if !alive {
        if let Some(exit) = records::read_json::<ExitRecord>(dir, records::EXIT)? {
            return Ok(exit.state());
        }
    }
    Ok(match (state, alive) {
        (Some(s), true) => ContainerState::Running {
            pid: s.pid,
            started_at: records::from_ns(s.started_at_ns),
        },
        (Some(_), false) => ContainerState::Unknown(format!(
            "the shim of container {id} exited without recording the container's exit; see {}",
            dir.join(records::SHIM_LOG).display()
        )),
        (None, true) => ContainerState::Unknown(format!("container {id} is being created")),
        (None, false) => ContainerState::Unknown(format!(
            "container {id} never started; see {}",
            dir.join(records::SHIM_LOG).display()
        )),
    })
}

impl Runtime for ShimRuntime {
    fn run(&self, cfg: ContainerConfig) -> BoxFuture<'_, Result<ContainerState>> {
        self.run_impl(cfg).boxed()
    }

    fn state(&self, id: &str) -> BoxFuture<'_, Result<ContainerState>> {
        let r = self.existing_dir(id).and_then(|dir| state_of(id, &dir));
        async move { r }.boxed()
    }

    fn wait(&self, id: &str) -> BoxFuture<'_, Result<ContainerState>> {
        let id = id.to_string();
        async move { self.wait_impl(&id).await }.boxed()
    }

    fn kill(&self, id: &str, signal: i32) -> BoxFuture<'_, Result<()>> {
        let r = self.kill_impl(id, signal);
        async move { r }.boxed()
    }

    fn remove(&self, id: &str) -> BoxFuture<'_, Result<()>> {
        let id = id.to_string();
        async move {
            // Removing cgroups may retry with short sleeps: keep them off the runtime.
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.remove_impl(&id))
                .await
                .unwrap_or_else(|e| Err(Error::Task(e.to_string())))
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<(String, ContainerState)>>> {
        let r = self.list_impl();
        async move { r }.boxed()
    }

    fn exec(&self, id: &str, cfg: ExecConfig) -> BoxFuture<'_, Result<ExecProcess>> {
        let id = id.to_string();
        async move {
            let dir = self.existing_dir(&id)?;
            if !shim_alive(&dir) {
                return Err(Error::Exec {
                    id,
                    msg: "the container is not running".into(),
                });
            }
            crate::exec::spawn(&self.shim, &id, &dir, cfg).await
        }
        .boxed()
    }
}
