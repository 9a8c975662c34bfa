//! The files in `<root>/containers/<id>/` that the shim writes and the agent reads:
//! `config.json` (the OCI bundle's spec), `shim.json` (what the shim needs besides the
//! spec), `state.json` (written once running), `exit.json` (written once exited), the
//! `exit` FIFO (held open by the shim while it lives: EOF = the shim is gone) and the
//! `ctl` FIFO (signal requests to the shim), `lc/` (libcontainer's state) and
//! `shim.log`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{ContainerState, Error, Result};

pub(crate) const SPEC: &str = "config.json";
pub(crate) const SHIM_CONFIG: &str = "shim.json";
pub(crate) const STATE: &str = "state.json";
pub(crate) const EXIT: &str = "exit.json";
pub(crate) const EXIT_FIFO: &str = "exit";
pub(crate) const CTL_FIFO: &str = "ctl";
pub(crate) const LIBCONTAINER_ROOT: &str = "lc";
pub(crate) const SHIM_LOG: &str = "shim.log";

/// What the shim needs besides the spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShimConfig {
    pub id: String,
    pub log_path: PathBuf,
    /// `/<cgroup_parent>/<id>`, as in the spec.
    pub cgroup_path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StateRecord {
    pub pid: i32,
    pub shim_pid: i32,
    pub started_at_ns: u128,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExitRecord {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub started_at_ns: u128,
    pub finished_at_ns: u128,
}

impl ExitRecord {
    pub fn state(&self) -> ContainerState {
        ContainerState::Exited {
            exit_code: self.exit_code,
            oom_killed: self.oom_killed,
            signal: self.signal,
            started_at: from_ns(self.started_at_ns),
            finished_at: from_ns(self.finished_at_ns),
        }
    }
}

pub(crate) fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

pub(crate) fn from_ns(ns: u128) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns.min(u64::MAX as u128) as u64)
}

/// Writes `value` as JSON atomically (temp file + rename), so a reader never sees half.
pub(crate) fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let bytes = serde_json::to_vec(value).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    fs::write(&tmp, bytes).map_err(Error::io("writing", &tmp))?;
    fs::rename(&tmp, &path).map_err(Error::io("renaming into place", &path))
}

/// Reads a JSON record; Ok(None) if the file does not exist.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Result<Option<T>> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Json { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_missing_files_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let rec = ExitRecord {
            exit_code: 137,
            signal: Some(9),
            oom_killed: true,
            started_at_ns: 1,
            finished_at_ns: 2_000_000_000,
        };
        write_json(dir.path(), EXIT, &rec).unwrap();
        let back: ExitRecord = read_json(dir.path(), EXIT).unwrap().unwrap();
        assert_eq!(back.state(), rec.state());
        assert!(read_json::<StateRecord>(dir.path(), STATE)
            .unwrap()
            .is_none());
    }
}
