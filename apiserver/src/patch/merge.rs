//! JSON merge patch (RFC 7386): objects merge recursively, `null` deletes, anything
//! else (lists included) replaces.

use super::{Error, Result};
use serde_json::Value;

pub(super) fn apply(original: &Value, patch: &[u8]) -> Result<Value> {
    let patch: Value = serde_json::from_slice(patch).map_err(|e| Error::Malformed {
        kind: "JSON merge",
        message: e.to_string(),
    })?;
    if !patch.is_object() {
        return Err(Error::Malformed {
            kind: "JSON merge",
            message: "the patch must be a JSON object".to_string(),
        });
    }
    let mut doc = original.clone();
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}
