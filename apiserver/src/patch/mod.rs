//! PLACEHOLDER (owned by the admission engineer): applies JSON, merge and strategic merge patches.

use serde_json::Value;

/// The three patch flavours Kubernetes accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
}

impl PatchType {
    /// Maps a request `Content-Type` to a patch type.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed patch: {0}")]
    Malformed(String),
    #[error("the patch cannot be applied: {0}")]
    Apply(String),
}

impl Error {
    /// Malformed patches are 400; patches that do not apply are 422.
    pub fn is_bad_request(&self) -> bool {
        matches!(self, Error::Malformed(_))
    }
}

/// Applies `patch` to `original`.
pub fn apply(_kind: &str, ty: PatchType, original: &Value, patch: &[u8]) -> Result<Value, Error> {
    let mut doc = original.clone();
    match ty {
        PatchType::Json => {
            let p: json_patch::Patch =
                serde_json::from_slice(patch).map_err(|e| Error::Malformed(e.to_string()))?;
            json_patch::patch(&mut doc, &p).map_err(|e| Error::Apply(e.to_string()))?;
        }
        PatchType::Merge | PatchType::StrategicMerge => {
            let p: Value =
                serde_json::from_slice(patch).map_err(|e| Error::Malformed(e.to_string()))?;
            json_patch::merge(&mut doc, &p);
        }
    }
    Ok(doc)
}
