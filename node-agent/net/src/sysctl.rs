//! `/proc/sys` reads and writes. Network sysctls resolve against the network namespace of
//! the calling thread at open time, so these act on the agent's (node's) namespace.

use std::path::Path;

use crate::{io_err, Result};

/// Writes `value` to `/proc/sys/<key>` (key with '/' separators, e.g. "net/ipv4/ip_forward"),
/// skipping the write when it already holds that value.
pub fn set(key: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(key);
    if get(key)?.as_deref() == Some(value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(io_err(path))
}

/// Reads `/proc/sys/<key>`; `None` if the key does not exist (module not loaded).
pub fn get(key: &str) -> Result<Option<String>> {
    let path = Path::new("/proc/sys").join(key);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}
