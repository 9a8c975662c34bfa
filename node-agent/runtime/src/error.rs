//! The crate's error type: every public call returns [`Result`].

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {id}: {msg}")]
    InvalidConfig { id: String, msg: String },
    #[error("container {0} already exists; remove it first or use a new id")]
    AlreadyExists(String),
    #[error("container {0} not found")]
    NotFound(String),
    #[error("container {0} is still running; kill it and wait for it before removing it")]
    StillRunning(String),
    #[error("container {id} failed to start: {msg}")]
    Start { id: String, msg: String },
    #[error("exec in container {id}: {msg}")]
    Exec { id: String, msg: String },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("OCI spec: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    #[error("decoding {}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cgroup {path}: {msg}")]
    Cgroup { path: String, msg: String },
    #[error("sandbox {}: {msg}", dir.display())]
    Sandbox { dir: PathBuf, msg: String },
    #[error("background task failed: {0}")]
    Task(String),
    #[error("runc: {0}")]
    Runc(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }

    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
        let what = what.into();
        move |source| Error::Sys { what, source }
    }
}
