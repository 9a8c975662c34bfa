//! API errors: every failure leaves the server as a Kubernetes `Status` with the right
//! HTTP code and reason, so kubectl and client libraries recognise it.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{json, Value};

use crate::registry::ResourceInfo;

/// A Kubernetes `Status` failure waiting to be sent.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// `pods "x" not found`, details `{name, group, kind: "pods"}` as Kubernetes sends.
    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", info.qualified()),
        )
        .with_details(resource_details(info, name))
    }

    /// A path that names nothing we serve.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource (path {path})"),
        )
        .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}))
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        Self::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
            .with_details(json!({"name": ns, "kind": "namespaces"}))
    }

    pub fn method_not_allowed(method: &http::Method, what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method} {what})"
            ),
        )
    }

    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", info.qualified()),
        )
        .with_details(resource_details(info, name))
    }

    /// The optimistic-concurrency failure, worded exactly like Kubernetes.
    pub fn conflict(info: &ResourceInfo, name: &str) -> Self {
        Self::conflict_because(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict_because(info: &ResourceInfo, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                info.qualified()
            ),
        )
        .with_details(resource_details(info, name))
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    pub fn unsupported_media_type(content_type: &str, supported: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type}); accepted media types include: {}",
                supported.join(", ")
            ),
        )
    }

    pub fn not_acceptable(accept: &str) -> Self {
        Self::new(
            406,
            "NotAcceptable",
            format!("only the following media types are accepted: application/json, application/yaml (Accept: {accept})"),
        )
    }

    /// 422 with one cause per field, message like `Pod "x" is invalid: spec.a: Required value`.
    pub fn invalid(info: &ResourceInfo, name: &str, causes: &[FieldCause]) -> Self {
        Self::invalid_kind(info.kind, info.group, name, causes)
    }

    /// [`ApiError::invalid`] for objects that are not a served resource (e.g. `Scale`).
    pub fn invalid_kind(kind: &str, group: &str, name: &str, causes: &[FieldCause]) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let details_causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        let mut details = json!({"name": name, "kind": kind, "causes": details_causes});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {summary}"),
        )
        .with_details(details)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(501, "NotImplemented", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// The `Status` object as JSON.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status
    }
}

/// One invalid field of a 422 response.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldCause {
    pub field: String,
    pub reason: String,
    pub message: String,
}

fn resource_details(info: &ResourceInfo, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": info.plural});
    if !info.group.is_empty() {
        d["group"] = json!(info.group);
    }
    d
}

impl From<tug_store::Error> for ApiError {
    fn from(e: tug_store::Error) -> Self {
        use tug_store::Error as E;
        match &e {
            E::Compacted { .. } => ApiError::gone(format!("too old resource version: {e}")),
            E::NoLeader | E::Stopped | E::Transport(_) => ApiError::unavailable(format!(
                "the storage is unavailable: {e}; retry once the cluster has a leader"
            )),
            E::Timeout => ApiError::timeout(format!(
                "{e}; the write may or may not have been applied, re-read before retrying"
            )),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        crate::negotiate::json_response(code, &self.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    #[test]
    fn not_found_names_the_resource_like_kubernetes() {
        let pods = registry::lookup("", "v1", "pods").unwrap();
        let s = ApiError::not_found(pods, "x").status();
        assert_eq!(s["message"], "pods \"x\" not found");
        assert_eq!(s["details"]["kind"], "pods");
        assert_eq!(s["code"], 404);
        let deploys = registry::lookup("apps", "v1", "deployments").unwrap();
        let s = ApiError::not_found(deploys, "web").status();
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["details"]["group"], "apps");
    }

    #[test]
    fn conflict_message_matches_kubernetes() {
        let pods = registry::lookup("", "v1", "pods").unwrap();
        assert_eq!(
            ApiError::conflict(pods, "x").message,
            "Operation cannot be fulfilled on pods \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
    }

    #[test]
    fn invalid_lists_field_causes() {
        let pods = registry::lookup("", "v1", "pods").unwrap();
        let e = ApiError::invalid(
            pods,
            "x",
            &[FieldCause {
                field: "spec.containers[0].image".into(),
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
            }],
        );
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Pod \"x\" is invalid: spec.containers[0].image: Required value"
        );
        assert_eq!(
            e.status()["details"]["causes"][0]["field"],
            "spec.containers[0].image"
        );
    }
}
