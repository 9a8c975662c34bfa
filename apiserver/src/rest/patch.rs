//! PATCH of an object or its `/status`: JSON patch, merge patch or strategic merge patch
//! applied to the current object, then the update path.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::Value;
use tug_store::Read;

use super::update::{write_update, Outcome, MAX_RETRIES};
use super::{check_type_meta, read_object, Req};
use crate::error::{ApiError, Result};
use crate::patch::{self, PatchType};
use crate::state::AppState;
use crate::strategy::Part;
use crate::{body, object};

pub async fn patch(state: &AppState, req: &Req, body: Body, part: Part) -> Result<Response> {
    let info = req.info();
    let name = req.target.name().to_string();
    let ty = patch_type(&req.headers)?;
    let patch_bytes = body::read(body).await?;
    let key = req.target.key();
    for _ in 0..MAX_RETRIES {
        let Some((current, kv)) = read_object(state, &key, Read::Linearizable).await? else {
            return Err(ApiError::not_found(info, &name));
        };
        let patched = apply_patch(info.kind, ty, &current, &patch_bytes)?;
        let patched = check_patched(req, &current, patched)?;
        match write_update(state, req, part, patched, &current, kv.mod_revision).await? {
            Outcome::Done(obj) => return Ok(req.out.object(StatusCode::OK, info, obj)),
            // Re-applied to the fresh object, as Kubernetes does. A patch that pins a
            // resourceVersion then no longer matches and fails in `check_patched`.
            Outcome::Conflict => continue,
        }
    }
    Err(ApiError::conflict(info, &name))
}

/// The patch type of the request, or 415.
pub fn patch_type(headers: &http::HeaderMap) -> Result<PatchType> {
    let ct = body::content_type(headers);
    PatchType::from_content_type(&ct).ok_or_else(|| {
        if ct == "application/apply-patch+yaml" {
            ApiError::new(
                415,
                "UnsupportedMediaType",
                "server-side apply (application/apply-patch+yaml) is not supported by tug yet; use client-side apply (kubectl apply without --server-side)",
            )
        } else {
            ApiError::unsupported_media_type(
                &ct,
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ],
            )
        }
    })
}

pub fn apply_patch(kind: &str, ty: PatchType, current: &Value, bytes: &[u8]) -> Result<Value> {
    patch::apply(kind, ty, current, bytes).map_err(|e| {
        if e.is_bad_request() {
            ApiError::bad_request(e.to_string())
        } else {
            ApiError::new(422, "Invalid", e.to_string())
        }
    })
}

/// Checks what a patch may not do (move the object, change its kind) and whether it
/// pinned a resourceVersion other than the current one (409).
pub fn check_patched(req: &Req, current: &Value, mut patched: Value) -> Result<Value> {
    let info = req.info();
    if !patched.is_object() {
        return Err(ApiError::bad_request("the patch did not produce an object"));
    }
    check_type_meta(info, &mut patched, info.kind, &info.api_version())?;
    for field in ["name", "namespace"] {
        let (a, b) = (
            object::str_field(current, field),
            object::str_field(&patched, field),
        );
        if a != b {
            return Err(ApiError::bad_request(format!(
                "a patch cannot change metadata.{field} (from {a:?} to {b:?}); create a new object instead"
            )));
        }
    }
    let current_rv = object::resource_version(current);
    let patched_rv = object::resource_version(&patched).to_string();
    if !patched_rv.is_empty() && patched_rv != current_rv {
        object::parse_resource_version(&patched_rv)?;
        return Err(ApiError::conflict(info, object::name(current)));
    }
    Ok(patched)
}
