//! PUT of an object or its `/status`, and the guarded write that every update path
//! (PUT, PATCH, scale, binding) ends in.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};
use tug_store::{Op, Precondition, Read, TxnResult};

use super::{admission_error, check_type_meta, read_object, reconcile_namespace, Req};
use crate::error::{ApiError, FieldCause, Result};
use crate::registry::ResourceInfo;
use crate::state::AppState;
use crate::strategy::{self, Part};
use crate::{admission, allocator, body, object};

/// Read-modify-write attempts when no resourceVersion pins the write and other writers
/// keep winning the race.
pub const MAX_RETRIES: usize = 16;

/// What a guarded write did.
pub enum Outcome {
    /// Written (or nothing to write); the object as it now is.
    Done(Value),
    /// The object changed since it was read: re-read and retry, or report 409.
    Conflict,
}

pub async fn put(state: &AppState, req: &Req, body: Body, part: Part) -> Result<Response> {
    let info = req.info();
    let url_name = req.target.name().to_string();
    let bytes = body::read(body).await?;
    let mut obj = body::decode_object(&req.headers, &bytes)?;
    check_type_meta(info, &mut obj, info.kind, &info.api_version())?;
    reconcile_namespace(&req.target, &mut obj)?;
    match object::name(&obj) {
        "" => object::set_meta(&mut obj, "name", Some(json!(url_name))),
        n if n != url_name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({url_name})"
            )))
        }
        _ => {}
    }
    let pinned = match object::resource_version(&obj) {
        "" => None,
        rv => Some(object::parse_resource_version(rv)?),
    };
    let key = req.target.key();
    for _ in 0..MAX_RETRIES {
        let Some((current, kv)) = read_object(state, &key, Read::Linearizable).await? else {
            return Err(ApiError::not_found(info, &url_name));
        };
        if pinned.is_some_and(|rv| rv != kv.mod_revision) {
            return Err(ApiError::conflict(info, &url_name));
        }
        match write_update(state, req, part, obj.clone(), &current, kv.mod_revision).await? {
            Outcome::Done(obj) => return Ok(req.out.object(StatusCode::OK, info, obj)),
            Outcome::Conflict if pinned.is_some() => {
                return Err(ApiError::conflict(info, &url_name))
            }
            Outcome::Conflict => continue,
        }
    }
    Err(ApiError::conflict(info, &url_name))
}

/// Admits `new` as the replacement of `old` (read at `old_rev`) and writes it only if
/// the object is still at `old_rev`.
pub async fn write_update(
    state: &AppState,
    req: &Req,
    part: Part,
    new: Value,
    old: &Value,
    old_rev: u64,
) -> Result<Outcome> {
    let info = req.info();
    let name = object::name(old).to_string();
    let new_uid = object::uid(&new);
    if !new_uid.is_empty() && new_uid != object::uid(old) {
        return Err(ApiError::conflict_because(
            info,
            &name,
            &format!(
                "Precondition failed: UID in precondition: {new_uid}, UID in object meta: {}",
                object::uid(old)
            ),
        ));
    }
    let merged = strategy::prepare_for_update(info, part, new, old);
    check_no_new_finalizers(info, &merged, old)?;
    let mut admitted = admission::admit_update(info.kind, merged, old)
        .map_err(|e| admission_error(info, &name, e))?;
    // The identity of the object is not admission's to change.
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        object::set_meta(&mut admitted, field, old["metadata"].get(field).cloned());
    }
    object::set_meta(
        &mut admitted,
        "resourceVersion",
        old["metadata"].get("resourceVersion").cloned(),
    );
    if admitted == *old {
        // Nothing changed: no write, no new resourceVersion, no watch event (as Kubernetes).
        return Ok(Outcome::Done(admitted));
    }
    let finalized = object::is_deleting(&admitted)
        && !object::has_finalizers(&admitted)
        && !object::has_spec_finalizers(&admitted)
        && admitted["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(0)
            == 0;
    if req.dry_run() {
        object::encode(&admitted)?;
        return Ok(Outcome::Done(admitted));
    }
    let key = info.key(non_empty(object::namespace(old)), &name);
    let is_service = info.plural == "services";
    let (reservations, dropped_ports) = if is_service && !finalized {
        allocator::allocate_for_update(state, &mut admitted, old).await?
    } else {
        Default::default()
    };
    let op = if finalized {
        // The last finalizer of a deleted object is gone: the object goes with it.
        Op::Delete {
            key,
            precondition: Precondition::ModRevision(old_rev),
        }
    } else {
        let value = match object::encode(&admitted) {
            Ok(v) => v,
            Err(e) => {
                reservations.release(state).await;
                return Err(e);
            }
        };
        Op::Put {
            key,
            value,
            precondition: Precondition::ModRevision(old_rev),
        }
    };
    // A failed store call may still apply later: keep its reservations (see create).
    let result = state.store.txn(op).await?;
    match &result {
        TxnResult::Applied { .. } if is_service && finalized => {
            allocator::release_all(state, old).await
        }
        TxnResult::Applied { .. } => allocator::release_keys(state, dropped_ports).await,
        TxnResult::Failed { .. } => reservations.release(state).await,
    }
    match result {
        TxnResult::Applied { kv, .. } if finalized => {
            let mut obj = admitted;
            object::set_meta(
                &mut obj,
                "resourceVersion",
                Some(json!(kv.mod_revision.to_string())),
            );
            Ok(Outcome::Done(obj))
        }
        TxnResult::Applied { kv, .. } => Ok(Outcome::Done(object::decode(&kv)?)),
        TxnResult::Failed { .. } => Ok(Outcome::Conflict),
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Kubernetes refuses new finalizers on an object that is already being deleted.
fn check_no_new_finalizers(info: &ResourceInfo, new: &Value, old: &Value) -> Result<()> {
    if !object::is_deleting(old) {
        return Ok(());
    }
    let old_f: Vec<&Value> = old["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let added = new["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| !old_f.contains(&f));
    if added {
        return Err(ApiError::invalid(
            info,
            object::name(old),
            &[FieldCause {
                field: "metadata.finalizers".into(),
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: no new finalizers can be added if the object is being deleted"
                    .into(),
            }],
        ));
    }
    Ok(())
}
