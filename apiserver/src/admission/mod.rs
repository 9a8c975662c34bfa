//! Admission: strict decoding, defaulting and validation of objects on create and update.

use serde_json::Value;

/// One invalid field, reported to the client as a `Status` cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field path as Kubernetes prints it, e.g. `spec.containers[0].image`.
    pub field: String,
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueDuplicate`, `FieldValueForbidden` or `FieldValueTooLong`.
    pub reason: &'static str,
    /// The message, e.g. `Required value`.
    pub message: String,
}

/// Why an object was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body does not decode into the kind's type (unknown field, wrong type): 400.
    #[error("strict decoding error: {path}: {message}")]
    Decode { path: String, message: String },
    /// The object decoded but is invalid: 422 with one cause per field.
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join(", "))]
    Invalid(Vec<FieldError>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Decodes, defaults and validates a new object of `kind`; returns its normalized JSON.
pub fn admit_create(_kind: &str, obj: Value) -> Result<Value> {
    Ok(obj)
}

/// Decodes, defaults and validates `obj` as a replacement for `old`.
pub fn admit_update(_kind: &str, obj: Value, _old: &Value) -> Result<Value> {
    Ok(obj)
}
