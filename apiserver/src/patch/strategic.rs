//! Kubernetes strategic merge patch for the built-in kinds.

use super::{Error, Result};
use serde_json::Value;

pub(super) fn apply(_kind: &str, original: &Value, patch: &[u8]) -> Result<Value> {
    let patch: Value = serde_json::from_slice(patch).map_err(|e| Error::Malformed {
        kind: "strategic merge",
        message: e.to_string(),
    })?;
    let mut doc = original.clone();
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}
