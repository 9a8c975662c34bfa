//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes
//! strategic merge patch, applied to an object's JSON form.

mod json;
mod merge;
mod strategic;

use serde_json::Value;

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The patch body is not a valid patch of its type (HTTP 400 BadRequest).
    #[error("malformed {kind} patch: {message}")]
    Malformed { kind: &'static str, message: String },
    /// The patch is well formed but cannot be applied to this object, e.g. a failed
    /// `test` operation or a path that does not exist (HTTP 422 Invalid).
    #[error("the patch could not be applied: {0}")]
    Apply(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the patch itself is malformed (400), false when it merely does not
    /// apply to the current object (422).
    pub fn is_bad_request(&self) -> bool {
        matches!(self, Error::Malformed { .. })
    }
}

/// The three patch formats Kubernetes accepts, selected by the request's Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
}

impl PatchType {
    /// Maps a Content-Type header (parameters after `;` are ignored) to a patch type.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let media = ct.split(';').next().unwrap_or("").trim();
        match media.to_ascii_lowercase().as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            _ => None,
        }
    }

    /// The Content-Type this patch type is sent with.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
        }
    }
}

/// Applies `patch` (the raw request body) to `original`, an object of `kind` (e.g.
/// `"Deployment"`; strategic merge patch needs it to find list merge keys), and returns
/// the patched object. The result still has to go through admission.
pub fn apply(kind: &str, ty: PatchType, original: &Value, patch: &[u8]) -> Result<Value> {
    match ty {
        PatchType::Json => json::apply(original, patch),
        PatchType::Merge => merge::apply(original, patch),
        PatchType::StrategicMerge => strategic::apply(kind, original, patch),
    }
}
