//! `Status`: the body of every API error (and of some successful deletes).

use super::ListMeta;
use crate::go_json::nullable;
use serde::{Deserialize, Serialize};

/// Well-known `Status.reason` values (Kubernetes `StatusReason`).
pub mod reason {
    pub const UNAUTHORIZED: &str = "Unauthorized";
    pub const FORBIDDEN: &str = "Forbidden";
    pub const NOT_FOUND: &str = "NotFound";
    pub const ALREADY_EXISTS: &str = "AlreadyExists";
    pub const CONFLICT: &str = "Conflict";
    pub const GONE: &str = "Gone";
    pub const INVALID: &str = "Invalid";
    pub const SERVER_TIMEOUT: &str = "ServerTimeout";
    pub const TIMEOUT: &str = "Timeout";
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequests";
    pub const BAD_REQUEST: &str = "BadRequest";
    pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
    pub const NOT_ACCEPTABLE: &str = "NotAcceptable";
    pub const REQUEST_ENTITY_TOO_LARGE: &str = "RequestEntityTooLarge";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
    pub const INTERNAL_ERROR: &str = "InternalError";
    pub const EXPIRED: &str = "Expired";
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
}

/// Well-known `StatusCause.reason` values (Kubernetes `CauseType`).
pub mod cause_type {
    pub const FIELD_VALUE_NOT_FOUND: &str = "FieldValueNotFound";
    pub const FIELD_VALUE_REQUIRED: &str = "FieldValueRequired";
    pub const FIELD_VALUE_DUPLICATE: &str = "FieldValueDuplicate";
    pub const FIELD_VALUE_INVALID: &str = "FieldValueInvalid";
    pub const FIELD_VALUE_NOT_SUPPORTED: &str = "FieldValueNotSupported";
    pub const FIELD_VALUE_FORBIDDEN: &str = "FieldValueForbidden";
    pub const FIELD_VALUE_TOO_LONG: &str = "FieldValueTooLong";
    pub const UNEXPECTED_SERVER_RESPONSE: &str = "UnexpectedServerResponse";
    pub const FIELD_MANAGER_CONFLICT: &str = "FieldManagerConflict";
}

/// `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound",...}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Status {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub metadata: ListMeta,
    /// `"Success"` or `"Failure"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
}

impl Status {
    pub const SUCCESS: &'static str = "Success";
    pub const FAILURE: &'static str = "Failure";

    /// A `Success` status with code 200.
    pub fn success() -> Self {
        Status {
            api_version: "v1".into(),
            kind: "Status".into(),
            status: Some(Self::SUCCESS.into()),
            code: Some(200),
            ..Default::default()
        }
    }

    /// A `Failure` status, e.g. `Status::failure(404, reason::NOT_FOUND, "pods \"x\" not found")`.
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Status {
            api_version: "v1".into(),
            kind: "Status".into(),
            status: Some(Self::FAILURE.into()),
            message: Some(message.into()),
            reason: Some(reason.into()),
            code: Some(i32::from(code)),
            ..Default::default()
        }
    }

    /// Attaches details naming the object (`{name, group, kind}`).
    pub fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(details);
        self
    }

    pub fn is_success(&self) -> bool {
        self.status.as_deref() == Some(Self::SUCCESS)
    }
}

/// Which object a `Status` is about, and field-level causes for `Invalid`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct StatusDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub causes: Vec<StatusCause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<i32>,
}

/// One reason an object was rejected, e.g. `{reason: FieldValueRequired, field: spec.containers}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct StatusCause {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_has_the_kubernetes_wire_shape() {
        let s = Status::failure(404, reason::NOT_FOUND, "pods \"x\" not found").with_details(
            StatusDetails {
                name: Some("x".into()),
                kind: Some("pods".into()),
                ..Default::default()
            },
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "apiVersion": "v1", "kind": "Status", "metadata": {},
                "status": "Failure", "message": "pods \"x\" not found", "reason": "NotFound",
                "details": {"name": "x", "kind": "pods"}, "code": 404
            })
        );
        let back: Status = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }
}
