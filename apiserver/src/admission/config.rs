//! ConfigMaps and Secrets: `stringData` folding, key and size validation, and the
//! `immutable` flag.

use super::access::{child, default, map_at, str_at};
use super::field::Errors;
use base64::Engine;
use serde_json::{json, Value};
use tug_proto::validation as names;

/// ConfigMaps and Secrets are capped at 1 MiB of data, like in Kubernetes (etcd's
/// request size limit is the reason).
const MAX_SIZE: usize = 1024 * 1024;

/// Folds `stringData` into `data` (base64) and drops it, as the Secret strategy does.
/// Runs before the typed decode because `stringData` is write-only.
pub fn fold_string_data(secret: &mut Value) -> Result<(), (String, String)> {
    let Some(string_data) = secret.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return Ok(());
    };
    let entries = match string_data {
        Value::Null => return Ok(()),
        Value::Object(m) => m,
        other => {
            return Err((
                "stringData".to_string(),
                format!("expected a map of strings, got {other}"),
            ))
        }
    };
    if secret
        .get("data")
        .is_some_and(|d| !d.is_null() && !d.is_object())
    {
        return Err((
            "data".to_string(),
            "expected a map of base64 strings".to_string(),
        ));
    }
    let data = child(secret, "data");
    for (k, v) in entries {
        let Value::String(s) = v else {
            return Err((
                format!("stringData.{k}"),
                format!("expected a string, got {v}"),
            ));
        };
        data[k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(s));
    }
    Ok(())
}

/// `SetDefaults_Secret`.
pub fn default_secret(secret: &mut Value) {
    default(secret, "type", json!("Opaque"));
}

fn validate_keys(obj: &Value, fields: &[&str], errs: &mut Errors) -> usize {
    let mut total = 0;
    let mut seen = std::collections::HashSet::new();
    for field in fields {
        for (k, v) in map_at(obj, field).into_iter().flatten() {
            let path = format!("{field}[{k}]");
            errs.invalid_each(&path, k, names::config_key(k));
            if !seen.insert(k.clone()) {
                errs.invalid(&path, &json!(k), "duplicate of key present in data");
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
    }
    total
}

/// `ValidateConfigMap` (data part).
pub fn validate_configmap(cm: &Value, errs: &mut Errors) {
    let total = validate_keys(cm, &["data", "binaryData"], errs);
    if total > MAX_SIZE {
        errs.too_long("data", MAX_SIZE);
    }
}

/// `ValidateSecret` (data part): keys, size and the keys each type requires.
pub fn validate_secret(secret: &Value, errs: &mut Errors) {
    let total = validate_keys(secret, &["data"], errs);
    // Values are base64; the limit applies to the decoded bytes.
    if total * 3 / 4 > MAX_SIZE {
        errs.too_long("data", MAX_SIZE);
    }
    let has = |k: &str| map_at(secret, "data").is_some_and(|d| d.contains_key(k));
    let required: &[&str] = match str_at(secret, "type") {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    };
    for k in required {
        if !has(k) {
            errs.required(&format!("data[{k}]"), "");
        }
    }
    if str_at(secret, "type") == "kubernetes.io/service-account-token"
        && secret
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
            .is_none()
    {
        errs.required(
            "metadata.annotations[kubernetes.io/service-account.name]",
            "",
        );
    }
}

/// An object marked `immutable: true` keeps its data and the flag forever; a Secret's
/// type never changes.
pub fn validate_update(kind: &str, new: &Value, old: &Value, errs: &mut Errors) {
    if old.get("immutable") == Some(&Value::Bool(true)) {
        let fields: &[&str] = if kind == "ConfigMap" {
            &["data", "binaryData"]
        } else {
            &["data"]
        };
        for f in fields {
            if new.get(*f) != old.get(*f) {
                errs.forbidden(f, "field is immutable when `immutable` is set");
            }
        }
        if new.get("immutable") != Some(&Value::Bool(true)) {
            errs.forbidden("immutable", "field is immutable when `immutable` is set");
        }
    }
    if kind == "Secret" && str_at(new, "type") != str_at(old, "type") {
        errs.invalid("type", &new["type"], "field is immutable");
    }
}
