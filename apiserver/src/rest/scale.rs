//! The `/scale` subresource of deployments and replicasets: an autoscaling/v1 `Scale`
//! view whose writes change `spec.replicas`.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};
use tug_store::Read;

use super::patch::{apply_patch, patch_type};
use super::update::{write_update, Outcome, MAX_RETRIES};
use super::{check_type_meta, read_object, Req};
use crate::error::{ApiError, FieldCause, Result};
use crate::state::AppState;
use crate::strategy::Part;
use crate::{body, object};

pub async fn get(state: &AppState, req: &Req) -> Result<Response> {
    let info = req.info();
    let Some((obj, _)) = read_object(state, &req.target.key(), req.read_mode()).await? else {
        return Err(ApiError::not_found(info, req.target.name()));
    };
    Ok(req.out.send(StatusCode::OK, &to_scale(&obj)))
}

pub async fn put(state: &AppState, req: &Req, body: Body) -> Result<Response> {
    let bytes = body::read(body).await?;
    let scale = body::decode_object(&req.headers, &bytes)?;
    write_scale(state, req, |_current| Ok(scale.clone())).await
}

pub async fn patch(state: &AppState, req: &Req, body: Body) -> Result<Response> {
    let ty = patch_type(&req.headers)?;
    let bytes = body::read(body).await?;
    write_scale(state, req, |current| {
        apply_patch("Scale", ty, current, &bytes)
    })
    .await
}

/// Reads the object, builds the desired Scale from the current one, and writes its
/// replicas back through the update path.
async fn write_scale(
    state: &AppState,
    req: &Req,
    desired: impl Fn(&Value) -> Result<Value>,
) -> Result<Response> {
    let info = req.info();
    let name = req.target.name().to_string();
    let key = req.target.key();
    for _ in 0..MAX_RETRIES {
        let Some((current, kv)) = read_object(state, &key, Read::Linearizable).await? else {
            return Err(ApiError::not_found(info, &name));
        };
        let current_scale = to_scale(&current);
        let mut scale = desired(&current_scale)?;
        check_type_meta(info, &mut scale, "Scale", "autoscaling/v1")?;
        let scale_name = object::name(&scale);
        if !scale_name.is_empty() && scale_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({scale_name}) does not match the name on the URL ({name})"
            )));
        }
        // A Scale whose resourceVersion is not the current one is stale (409). A patch
        // without one carries the current object's (it was applied to it), so a race
        // with another writer just re-reads and re-applies, as Kubernetes does; a PUT
        // or patch that named a version fails the check on the next round instead.
        let pinned = match object::resource_version(&scale) {
            "" => None,
            rv => Some(object::parse_resource_version(rv)?),
        };
        if pinned.is_some_and(|rv| rv != kv.mod_revision) {
            return Err(ApiError::conflict(info, &name));
        }
        let replicas = replicas_of(&scale, &name)?;
        let mut new = current.clone();
        new["spec"]["replicas"] = json!(replicas);
        match write_update(state, req, Part::Main, new, &current, kv.mod_revision).await? {
            Outcome::Done(obj) => return Ok(req.out.send(StatusCode::OK, &to_scale(&obj))),
            Outcome::Conflict => continue,
        }
    }
    Err(ApiError::conflict(info, &name))
}

fn replicas_of(scale: &Value, name: &str) -> Result<i64> {
    let invalid = |message: String| {
        ApiError::invalid_kind(
            "Scale",
            "autoscaling",
            name,
            &[FieldCause {
                field: "spec.replicas".into(),
                reason: "FieldValueInvalid".into(),
                message,
            }],
        )
    };
    match &scale["spec"]["replicas"] {
        Value::Null => Ok(0),
        Value::Number(n) => match n.as_i64() {
            Some(r) if r >= 0 && r <= i64::from(i32::MAX) => Ok(r),
            _ => Err(invalid(format!(
                "Invalid value: {n}: must be greater than or equal to 0"
            ))),
        },
        other => Err(invalid(format!(
            "Invalid value: {other}: must be an integer"
        ))),
    }
}

/// The autoscaling/v1 Scale view of a deployment or replicaset.
pub fn to_scale(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let mut scale_meta = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(field) {
            scale_meta[field] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_string(&obj["spec"]["selector"]),
        },
    })
}

/// A LabelSelector as the string form Kubernetes prints (`a=b,c in (x,y)`), sorted by key.
pub fn selector_string(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(labels) = sel["matchLabels"].as_object() {
        for (k, v) in labels {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
        }
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default().to_string();
        let mut values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort();
        let text = match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        reqs.push((key, text));
    }
    reqs.sort();
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view_reports_replicas_and_selector() {
        let d = json!({"metadata": {"name": "web", "namespace": "a", "resourceVersion": "5"},
                       "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"},
                         "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]}},
                       "status": {"replicas": 2}});
        let s = to_scale(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web,env in (dev,prod),tier=fe");
        assert_eq!(s["metadata"]["resourceVersion"], "5");
    }

    #[test]
    fn negative_replicas_are_invalid() {
        let err = replicas_of(&json!({"spec": {"replicas": -1}}), "web").unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err
            .message
            .starts_with("Scale \"web\" is invalid: spec.replicas"));
    }
}
