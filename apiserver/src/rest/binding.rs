//! `POST pods/{name}/binding` (and the older `POST namespaces/{ns}/bindings`): the
//! scheduler's way to assign a pod to a node.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};
use tug_store::{Op, Precondition, Read, TxnResult};

use super::update::MAX_RETRIES;
use super::{check_type_meta, read_object, Req};
use crate::error::{ApiError, FieldCause, Result};
use crate::state::AppState;
use crate::{body, object, strategy};

pub async fn bind(state: &AppState, req: &Req, body: Body) -> Result<Response> {
    let info = req.info();
    let bytes = body::read(body).await?;
    let mut binding = body::decode_object(&req.headers, &bytes)?;
    check_type_meta(info, &mut binding, "Binding", "v1")?;
    let binding_name = object::name(&binding);
    // The collection form names the pod in the body only.
    let name = match &req.target.name {
        Some(n) => n.clone(),
        None if !binding_name.is_empty() => {
            super::check_path_segment("name", binding_name)?;
            binding_name.to_string()
        }
        None => {
            return Err(ApiError::bad_request(
                "a Binding posted to bindings must name the pod in metadata.name",
            ))
        }
    };
    if !binding_name.is_empty() && binding_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the Binding ({binding_name}) does not match the pod on the URL ({name})"
        )));
    }
    let node = binding["target"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid_kind(
            "Binding",
            "",
            &name,
            &[FieldCause {
                field: "target.name".into(),
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
            }],
        ));
    }
    let key = info.key(req.target.namespace.as_deref(), &name);
    let mut bound = false;
    for _ in 0..MAX_RETRIES {
        let Some((mut pod, kv)) = read_object(state, &key, Read::Linearizable).await? else {
            return Err(ApiError::not_found(info, &name));
        };
        if object::is_deleting(&pod) {
            return Err(ApiError::conflict_because(
                info,
                &name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        let assigned = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        if !assigned.is_empty() {
            return Err(ApiError::conflict_because(
                info,
                &name,
                &format!("pod {name} is already assigned to node \"{assigned}\""),
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        if let Some(annotations) = binding["metadata"]["annotations"].as_object() {
            let meta = object::meta_mut(&mut pod);
            let target = meta.entry("annotations").or_insert_with(|| json!({}));
            for (k, v) in annotations {
                target[k] = v.clone();
            }
        }
        strategy::set_condition(
            &mut pod,
            json!({"type": "PodScheduled", "status": "True", "lastProbeTime": Value::Null,
                   "lastTransitionTime": object::now()}),
        );
        if req.dry_run() {
            bound = true;
            break;
        }
        match state
            .store
            .txn(Op::Put {
                key: key.clone(),
                value: object::encode(&pod)?,
                precondition: Precondition::ModRevision(kv.mod_revision),
            })
            .await?
        {
            TxnResult::Applied { .. } => {
                bound = true;
                break;
            }
            TxnResult::Failed { .. } => continue,
        }
    }
    if !bound {
        return Err(ApiError::conflict(info, &name));
    }
    Ok(req.out.send(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}
