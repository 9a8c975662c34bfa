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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_select_patch_types() {
        let cases = [
            ("application/json-patch+json", Some(PatchType::Json)),
            ("application/merge-patch+json", Some(PatchType::Merge)),
            (
                "application/strategic-merge-patch+json",
                Some(PatchType::StrategicMerge),
            ),
            (
                "application/merge-patch+json; charset=utf-8",
                Some(PatchType::Merge),
            ),
            ("application/apply-patch+yaml", None),
            ("application/json", None),
            ("", None),
        ];
        for (ct, want) in cases {
            assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
        }
    }

    #[test]
    fn patches_apply_or_fail_with_the_right_class() {
        let original = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1, "list": [1, 2]}});
        // (name, type, patch, Ok(result) or Err(is_bad_request))
        let cases: Vec<(&str, PatchType, &str, Result<Value, bool>)> = vec![
            (
                "json patch replace",
                PatchType::Json,
                r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
                Ok(
                    json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 3, "list": [1, 2]}}),
                ),
            ),
            (
                "json patch add to a list",
                PatchType::Json,
                r#"[{"op":"add","path":"/spec/list/-","value":3}]"#,
                Ok(
                    json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 1, "list": [1, 2, 3]}}),
                ),
            ),
            (
                "json patch failed test is 422",
                PatchType::Json,
                r#"[{"op":"test","path":"/spec/replicas","value":2}]"#,
                Err(false),
            ),
            (
                "json patch missing path is 422",
                PatchType::Json,
                r#"[{"op":"remove","path":"/spec/nope"}]"#,
                Err(false),
            ),
            (
                "json patch unknown op is 400",
                PatchType::Json,
                r#"[{"op":"frob","path":"/spec"}]"#,
                Err(true),
            ),
            (
                "json patch that is an object is 400",
                PatchType::Json,
                r#"{"spec":{}}"#,
                Err(true),
            ),
            (
                "merge patch replaces lists and deletes nulls",
                PatchType::Merge,
                r#"{"metadata":{"labels":{"x":null,"y":"2"}},"spec":{"list":[9]}}"#,
                Ok(
                    json!({"metadata": {"name": "a", "labels": {"y": "2"}}, "spec": {"replicas": 1, "list": [9]}}),
                ),
            ),
            (
                "merge patch that is not json is 400",
                PatchType::Merge,
                "{",
                Err(true),
            ),
            (
                "merge patch that is a list is 400",
                PatchType::Merge,
                "[]",
                Err(true),
            ),
        ];
        for (name, ty, patch, want) in cases {
            let got = apply("Deployment", ty, &original, patch.as_bytes());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{name}"),
                (Err(e), Err(bad)) => assert_eq!(e.is_bad_request(), bad, "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }
}
