//! Admission: strict decoding, defaulting and validation of objects on create and update.
//!
//! Each request body is first decoded strictly into the kind's typed struct (so a typo
//! is a 400 naming the field), then defaulted and validated on its JSON form with
//! Kubernetes' field paths and messages, then re-encoded through the typed struct so the
//! stored JSON is normalized.
//!
//! Layout: `decode` (typed round trip), `field` (field errors), name syntax from `tug_proto::validation`,
//! `access` (JSON field access), `meta` (ObjectMeta and label selectors), and one file
//! per kind family: `pod`, `service` (and Endpoints), `workloads` (Deployment,
//! ReplicaSet, Job, Scale), `config` (ConfigMap, Secret), `namespace`, `node`, `lease`.

mod access;
mod config;
mod decode;
mod field;
mod lease;
mod meta;
mod namespace;
mod node;
mod pod;
mod service;
mod workloads;

use field::Errors;
use meta::NameRule;
use serde_json::Value;

/// One invalid field, reported to the client as a `Status` cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field path as Kubernetes prints it, e.g. `spec.containers[0].image`.
    pub field: String,
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueDuplicate`, `FieldValueForbidden`, `FieldValueTooLong` or
    /// `FieldValueNotFound`.
    pub reason: &'static str,
    /// The message, e.g. `Required value`.
    pub message: String,
}

/// Why an object was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body does not decode into the kind's type (unknown field, wrong type): 400.
    /// `message` is complete, e.g. `strict decoding error: unknown field "spec.x"`.
    #[error("{message}")]
    Decode { path: String, message: String },
    /// The object decoded but is invalid: 422 with one cause per field.
    #[error("{}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join(", "))]
    Invalid(Vec<FieldError>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Name syntax and scope of each kind we admit.
fn kind_rules(kind: &str) -> Option<(NameRule, bool)> {
    Some(match kind {
        "Namespace" => (NameRule::Label, false),
        "Node" => (NameRule::Subdomain, false),
        "Service" => (NameRule::Dns1035, true),
        "Pod" | "Endpoints" | "ConfigMap" | "Secret" | "Event" | "Deployment" | "ReplicaSet"
        | "Job" | "Lease" | "Binding" | "Scale" => (NameRule::Subdomain, true),
        _ => return None,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Update,
}

fn decode(kind: &str, mut obj: Value) -> Result<Value> {
    if kind == "Secret" {
        config::fold_string_data(&mut obj).map_err(|(path, message)| Error::Decode {
            message: format!("cannot decode {path}: {message}"),
            path,
        })?;
    }
    decode::normalize(kind, obj)
}

fn apply_defaults(kind: &str, obj: &mut Value, op: Op) {
    match kind {
        "Pod" => pod::default_pod(obj, op == Op::Create),
        "Service" => service::default_service(obj),
        "Endpoints" => service::default_endpoints(obj),
        "Namespace" if op == Op::Create => namespace::default_namespace(obj),
        "Secret" => config::default_secret(obj),
        "Deployment" => workloads::default_deployment(obj),
        "ReplicaSet" => workloads::default_replicaset(obj),
        "Job" => workloads::default_job(obj, op == Op::Create),
        _ => {}
    }
}

fn validate(kind: &str, obj: &Value, errs: &mut Errors) {
    if let Some((rule, namespaced)) = kind_rules(kind) {
        meta::validate(obj, rule, namespaced, errs);
    }
    match kind {
        "Pod" => pod::validate_pod_spec(&obj["spec"], "spec", errs),
        "Service" => service::validate_service(obj, errs),
        "Endpoints" => service::validate_endpoints(obj, errs),
        "ConfigMap" => config::validate_configmap(obj, errs),
        "Secret" => config::validate_secret(obj, errs),
        "Deployment" => workloads::validate_deployment(obj, errs),
        "ReplicaSet" => workloads::validate_replicaset(obj, errs),
        "Job" => workloads::validate_job(obj, errs),
        "Scale" => workloads::validate_scale(obj, errs),
        "Node" => node::validate_node(obj, errs),
        "Lease" => lease::validate_lease(obj, errs),
        "Binding" => {
            let target = &obj["target"];
            if access::str_at(target, "name").is_empty() {
                errs.required("target.name", "");
            }
            let k = access::str_at(target, "kind");
            if !k.is_empty() && k != "Node" {
                errs.invalid("target.kind", &target["kind"], "must be empty or 'Node'");
            }
        }
        _ => {}
    }
}

fn finish(kind: &str, obj: Value, errs: Errors) -> Result<Value> {
    if !errs.0.is_empty() {
        return Err(Error::Invalid(errs.0));
    }
    // Defaults went in as JSON; the second round trip proves the typed struct holds
    // them and keeps the stored form canonical.
    decode::normalize(kind, obj)
}

/// Decodes, defaults and validates a new object of `kind` (e.g. `"Deployment"`); returns
/// its normalized JSON. The caller has set the final `metadata.name`, `namespace` and
/// `uid` (Jobs need the uid for their generated selector).
pub fn admit_create(kind: &str, obj: Value) -> Result<Value> {
    let mut obj = decode(kind, obj)?;
    apply_defaults(kind, &mut obj, Op::Create);
    let mut errs = Errors::default();
    validate(kind, &obj, &mut errs);
    finish(kind, obj, errs)
}

/// Decodes, defaults and validates `obj` as the replacement of the stored `old`,
/// enforcing the kind's immutable fields. Server-set fields a PUT body leaves out (uid,
/// creationTimestamp, a Service's clusterIP and nodePorts, a Job's generated selector)
/// are carried over from `old`.
pub fn admit_update(kind: &str, obj: Value, old: &Value) -> Result<Value> {
    let mut obj = decode(kind, obj)?;
    meta::carry_over(&mut obj, old);
    match kind {
        "Service" => service::carry_over(&mut obj, old),
        "Job" => workloads::carry_over_job(&mut obj, old),
        _ => {}
    }
    apply_defaults(kind, &mut obj, Op::Update);
    let mut errs = Errors::default();
    validate(kind, &obj, &mut errs);
    meta::validate_update(&obj, old, &mut errs);
    match kind {
        "Pod" => pod::validate_update(&obj, old, &mut errs),
        "Service" => service::validate_update(&obj, old, &mut errs),
        "Node" => node::validate_update(&obj, old, &mut errs),
        "Deployment" | "ReplicaSet" | "Job" => {
            workloads::validate_update(kind, &obj, old, &mut errs)
        }
        "ConfigMap" | "Secret" => config::validate_update(kind, &obj, old, &mut errs),
        _ => {}
    }
    finish(kind, obj, errs)
}

#[cfg(test)]
mod tests;
