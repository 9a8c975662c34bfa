//! What the agent remembers of each pod across its own restarts: per container the
//! current container id, restart count, state and last termination, written atomically
//! to `<root>/pods/<uid>/record.json` on every change.
//!
//! The runtime keeps containers and their exit codes; this file keeps what only the
//! agent knows (restart counts, back-off, which attempt is current), so a re-started
//! agent reports the same status a never-stopped one would.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tug_proto::core::v1::{ContainerState, ContainerStateTerminated, ContainerStateWaiting};
use tug_proto::meta::v1::Time;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing pod record {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading pod record {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pod record {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PodRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// When the agent first acted on the pod (status.startTime).
    pub start_time: Option<Time>,
    /// Network namespace, IPC/UTS namespaces, cgroup, volumes and pod files exist.
    pub sandbox_ready: bool,
    pub pod_ip: Option<String>,
    /// All init containers have succeeded (they never run again).
    pub initialized: bool,
    /// The pod reached Succeeded or Failed; its containers will not run again.
    pub terminal_phase: Option<String>,
    /// The pod's resources (containers, rootfs, cgroup, network) were released after it
    /// ended; its logs and this record stay until the pod object is gone.
    pub released: bool,
    pub init_containers: BTreeMap<String, ContainerRecord>,
    pub containers: BTreeMap<String, ContainerRecord>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerRecord {
    /// The runtime id of the current (or last) attempt.
    pub id: Option<String>,
    /// Attempts started so far minus one (Kubernetes' restartCount).
    pub restart_count: i32,
    pub attempts: i32,
    pub image: String,
    pub image_id: String,
    pub state: ContainerState,
    pub last_state: Option<ContainerStateTerminated>,
    pub ready: bool,
    pub started: bool,
    /// Current crash back-off in seconds (0: none yet).
    pub backoff_secs: u64,
    /// Do not start again before this time (back-off).
    pub not_before: Option<chrono::DateTime<chrono::Utc>>,
}

impl ContainerRecord {
    pub fn waiting(reason: &str, message: Option<String>) -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.to_string()),
                message,
            }),
            ..Default::default()
        }
    }

    pub fn is_running(&self) -> bool {
        self.state.running.is_some()
    }

    pub fn terminated(&self) -> Option<&ContainerStateTerminated> {
        self.state.terminated.as_ref()
    }

    pub fn has_run(&self) -> bool {
        self.attempts > 0
    }
}

impl PodRecord {
    /// (container name, runtime id) of every container the record says is running.
    pub fn running(&self) -> Vec<(String, String)> {
        self.containers
            .iter()
            .chain(self.init_containers.iter())
            .filter(|(_, r)| r.is_running())
            .filter_map(|(n, r)| r.id.clone().map(|id| (n.clone(), id)))
            .collect()
    }

    fn path(dir: &Path) -> PathBuf {
        dir.join("record.json")
    }

    pub fn load(dir: &Path) -> Result<Option<PodRecord>> {
        let path = Self::path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| Error::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    /// Write-to-temp then rename: a crash leaves the old or the new record, never half.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join(".record.json.tmp");
        let werr = |source| Error::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(werr)?;
        let bytes = serde_json::to_vec_pretty(self).expect("records serialize");
        std::fs::write(&tmp, bytes).map_err(werr)?;
        std::fs::rename(&tmp, &path).map_err(werr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(PodRecord::load(dir.path()).unwrap(), None);
        let mut r = PodRecord {
            uid: "u".into(),
            name: "p".into(),
            namespace: "default".into(),
            ..Default::default()
        };
        r.containers.insert(
            "c".into(),
            ContainerRecord {
                id: Some("x".into()),
                restart_count: 3,
                state: ContainerRecord::waiting("CrashLoopBackOff", None),
                ..Default::default()
            },
        );
        r.save(dir.path()).unwrap();
        assert_eq!(PodRecord::load(dir.path()).unwrap(), Some(r));
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("record.json"), "{").unwrap();
        let err = PodRecord::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("record.json"), "{err}");
    }
}
