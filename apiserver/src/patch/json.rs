//! JSON patch (RFC 6902): a list of add/remove/replace/move/copy/test operations.

use super::{Error, Result};
use serde_json::Value;

pub(super) fn apply(original: &Value, patch: &[u8]) -> Result<Value> {
    let ops: json_patch::Patch = serde_json::from_slice(patch).map_err(|e| Error::Malformed {
        kind: "JSON",
        message: format!("{e} (want a JSON array of operations like [{{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":3}}])"),
    })?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| Error::Apply(e.to_string()))?;
    Ok(doc)
}
