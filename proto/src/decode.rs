//! Decoding API objects with errors that carry the field path (`spec.containers[0].image`).

use serde::de::DeserializeOwned;
use std::fmt;

/// A decode failure: where (`path`, e.g. `spec.template.spec.containers[0].imagePullPolcy`)
/// and what (`message`, serde's description such as "unknown field ...").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Dotted field path with `[i]` for list items; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn convert(e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = e.path().to_string();
    Error {
        path: if path == "." { String::new() } else { path },
        message: e.into_inner().to_string(),
    }
}

/// Decodes a JSON value (e.g. one YAML document converted to JSON) into `T`.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(convert)
}

/// Decodes JSON bytes (e.g. a request body) into `T`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut de).map_err(convert)?;
    de.end().map_err(|e| Error {
        path: String::new(),
        message: e.to_string(),
    })?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::v1::Pod;

    #[test]
    fn errors_name_the_field_path() {
        let cases = [
            (
                r#"{"spec":{"containers":[{"name":"a","imagePullPolcy":"Never"}]}}"#,
                "spec.containers[0].imagePullPolcy",
                "unknown field",
            ),
            (
                r#"{"spec":{"containers":[{"name":"a","ports":[{"containerPort":"http"}]}]}}"#,
                "spec.containers[0].ports[0].containerPort",
                "invalid type",
            ),
            (
                r#"{"metadata":{"labels":{"a":1}}}"#,
                "metadata.labels.a",
                "invalid type",
            ),
            (r#"{"spex":{}}"#, "spex", "unknown field"),
        ];
        for (json, path, msg) in cases {
            let err = from_slice::<Pod>(json.as_bytes()).unwrap_err();
            assert_eq!(err.path, path, "{json}: {err}");
            assert!(err.message.contains(msg), "{json}: {err}");
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(from_value::<Pod>(value).unwrap_err().path, path);
        }
        assert!(from_slice::<Pod>(b"{} x").is_err());
    }
}
