//! tug-runtime: runs OCI containers for the node agent through youki's libcontainer,
//! each inside its own shim process, plus the pod sandbox (IPC/UTS namespaces) and pod
//! cgroups.
//!
//! # Layout
//! - [`Runtime`] (this file): the object-safe trait the agent holds as `Arc<dyn Runtime>`,
//!   and the plain data types it takes and returns ([`ContainerConfig`],
//!   [`ContainerState`], ...).
//! - `shim_runtime`: [`ShimRuntime`], the production implementation: writes the bundle,
//!   starts one shim per container, reads the shim's on-disk records (one directory
//!   per container under the root it is given, e.g. `<root-dir>/containers/<id>/`).
//! - [`shim`]: the shim process itself (`<binary> shim run|exec ...`): libcontainer
//!   create+start, reaping, CRI log, exit record, OOM detection; and exec into a
//!   running container.
//! - `spec`: [`ContainerConfig`] -> OCI runtime spec (pure, unit-tested).
//! - `cri_log`: the CRI log file writer (line framing, rotation).
//! - `records`: the files in `<root>/containers/<id>/` shared by shim and agent.
//! - `cgroups`: cgroup v1/v2 detection, pod cgroups, OOM counters, leftover cleanup.
//! - `sandbox`: persistent IPC+UTS namespaces of a pod.
//! - `exec`: [`ExecConfig`] / [`ExecProcess`] (pipes or a pty).
//! - `runc`: [`RuncRuntime`], Debian's `runc` behind the same trait (benchmark baseline).
//! - `sys`: the few calls that need `unsafe` (fd passing, window size).
//! - `error`: the crate's error type.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::SystemTime;

use futures::future::BoxFuture;

mod cgroups;
mod cri_log;
mod error;
mod exec;
mod records;
mod runc;
mod sandbox;
pub mod shim;
mod shim_runtime;
mod spec;
mod sys;

pub use cgroups::{
    cgroup_exists, create_pod_cgroup, mode as cgroup_mode, remove_pod_cgroup, CgroupMode,
};
pub use error::{Error, Result};
pub use exec::{ExecConfig, ExecProcess, Resizer};
pub use runc::RuncRuntime;
pub use sandbox::{create_sandbox, remove_sandbox};
pub use shim_runtime::ShimRuntime;
pub use spec::build_spec;

/// How to start the shim: a program plus leading args. The shim is a subcommand of some
/// binary (the agent: `tug-agent shim ...`; tests: this crate's `tug-shim` bin; the
/// bench: `bench shim ...`), which calls [`shim::main`] FIRST THING in `main` (before any
/// tokio runtime or thread exists) and exits with its code.
#[derive(Debug, Clone)]
pub struct ShimCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// One container attempt.
#[derive(Debug, Clone, Default)]
pub struct ContainerConfig {
    /// Unique per container attempt: `[a-z0-9-]`, at most 64 characters.
    pub id: String,
    /// Already-mounted root filesystem (tug-image's overlay).
    pub rootfs: PathBuf,
    /// Resolved argv (entrypoint+cmd merging done by the caller).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Working directory; "/" if empty.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// Pod name: already set in the sandbox's UTS namespace; only used when the spec
    /// creates its own UTS namespace (never with a sandbox).
    pub hostname: String,
    pub namespaces: SandboxNamespaces,
    /// e.g. "tug/node-1/pod<uid>", relative to each controller's mount (v1) or to the
    /// unified root (v2). The container's cgroup is `<cgroup_parent>/<id>`.
    pub cgroup_parent: String,
    pub resources: Resources,
    /// Volumes, /etc/hosts, /etc/resolv.conf, /etc/hostname.
    pub mounts: Vec<Mount>,
    /// CRI log file the shim writes (parent dirs are created).
    pub log_path: PathBuf,
    pub readonly_rootfs: bool,
}

/// The namespaces a container joins (bind-mounted namespace files).
#[derive(Debug, Clone, Default)]
pub struct SandboxNamespaces {
    /// None = host network.
    pub net: Option<PathBuf>,
    pub ipc: PathBuf,
    pub uts: PathBuf,
}

/// cgroup limits; None = unlimited / kernel default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Bytes.
    pub memory_limit: Option<i64>,
    /// Microseconds per period.
    pub cpu_quota: Option<i64>,
    /// Microseconds (default 100000 when a quota is set).
    pub cpu_period: Option<u64>,
    /// v1 shares (2..262144); converted to a weight on v2.
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
}

/// A mount into the container.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Host path (ignored for tmpfs).
    pub source: PathBuf,
    /// Absolute path in the container.
    pub destination: String,
    pub read_only: bool,
    pub kind: MountKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Bind,
    /// A fresh tmpfs; `size` in bytes.
    Tmpfs {
        size: Option<u64>,
    },
}

/// What the runtime knows about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Running {
        pid: i32,
        started_at: SystemTime,
    },
    Exited {
        /// The process's exit code, or 128+signal when a signal ended it.
        exit_code: i32,
        /// The kernel OOM killer acted in the container's cgroup.
        oom_killed: bool,
        signal: Option<i32>,
        started_at: SystemTime,
        finished_at: SystemTime,
    },
    /// Shim vanished without an exit record, still being created, etc.
    Unknown(String),
}

impl ContainerState {
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }
}

/// A container runtime. Object-safe (returns `BoxFuture`) so the agent holds
/// `Arc<dyn Runtime>`.
pub trait Runtime: Send + Sync {
    /// Create + start; returns once running (or already exited).
    fn run(&self, cfg: ContainerConfig) -> BoxFuture<'_, Result<ContainerState>>;
    fn state(&self, id: &str) -> BoxFuture<'_, Result<ContainerState>>;
    /// Resolves when the container has exited (also for re-adopted containers).
    fn wait(&self, id: &str) -> BoxFuture<'_, Result<ContainerState>>;
    /// Sends `signal` to the container's init; Ok if it already exited.
    fn kill(&self, id: &str, signal: i32) -> BoxFuture<'_, Result<()>>;
    /// After exit: state, cgroup, bundle gone. Fails while the container runs.
    fn remove(&self, id: &str) -> BoxFuture<'_, Result<()>>;
    /// Every container this runtime's root knows (re-adoption after an agent restart).
    fn list(&self) -> BoxFuture<'_, Result<Vec<(String, ContainerState)>>>;
    /// Starts a process inside a running container.
    fn exec(&self, id: &str, cfg: ExecConfig) -> BoxFuture<'_, Result<ExecProcess>>;
}
