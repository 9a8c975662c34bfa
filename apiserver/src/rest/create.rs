//! POST on a collection: create one object.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::json;
use tug_store::{Op, Precondition, Read, TxnResult};

use super::{
    admission_error, check_path_segment, check_type_meta, read_object, reconcile_namespace, Req,
};
use crate::error::{ApiError, FieldCause, Result};
use crate::registry::ResourceInfo;
use crate::state::AppState;
use crate::{admission, allocator, body, object, strategy};

/// How many fresh `generateName` suffixes to try before reporting the collision.
const GENERATE_NAME_ATTEMPTS: usize = 5;

pub async fn create(state: &AppState, req: &Req, body: Body) -> Result<Response> {
    let info = req.info();
    let bytes = body::read(body).await?;
    let mut obj = body::decode_object(&req.headers, &bytes)?;
    check_type_meta(info, &mut obj, info.kind, &info.api_version())?;
    reconcile_namespace(&req.target, &mut obj)?;

    let given_name = object::name(&obj).to_string();
    let generate_name = object::str_field(&obj, "generateName").to_string();
    if given_name.is_empty() && generate_name.is_empty() {
        return Err(ApiError::invalid(
            info,
            "",
            &[FieldCause {
                field: "metadata.name".into(),
                reason: "FieldValueRequired".into(),
                message: "Required value: name or generateName is required".into(),
            }],
        ));
    }
    if !given_name.is_empty() {
        check_path_segment("name", &given_name)?;
    }

    // Server-owned metadata, whatever the client sent.
    object::set_meta(
        &mut obj,
        "uid",
        Some(json!(uuid::Uuid::new_v4().to_string())),
    );
    object::set_meta(&mut obj, "creationTimestamp", Some(json!(object::now())));
    object::set_meta(&mut obj, "resourceVersion", None);
    object::set_meta(&mut obj, "deletionTimestamp", None);
    object::set_meta(&mut obj, "deletionGracePeriodSeconds", None);
    object::set_meta(&mut obj, "selfLink", None);
    if info.has_spec {
        object::set_meta(&mut obj, "generation", Some(json!(1)));
    } else {
        object::set_meta(&mut obj, "generation", None);
    }
    strategy::prepare_for_create(info, &mut obj);

    if info.namespaced {
        let ns = object::namespace(&obj).to_string();
        check_namespace_open(state, info, &ns, &given_name, req.read_mode()).await?;
    }

    for attempt in 0..GENERATE_NAME_ATTEMPTS {
        let mut candidate = obj.clone();
        let name = if given_name.is_empty() {
            format!("{generate_name}{}", object::name_suffix())
        } else {
            given_name.clone()
        };
        object::set_meta(&mut candidate, "name", Some(json!(name)));
        let mut admitted = admission::admit_create(info.kind, candidate)
            .map_err(|e| admission_error(info, &name, e))?;
        // Admission normalizes; it must not move the object.
        object::set_meta(&mut admitted, "name", Some(json!(name)));
        strategy::finish_create(info, &mut admitted);
        object::encode(&admitted)?;
        if req.dry_run() {
            return Ok(req.out.object(StatusCode::CREATED, info, admitted));
        }
        let reservations = if info.plural == "services" {
            allocator::allocate_for_create(state, &mut admitted).await?
        } else {
            allocator::Reservations::default()
        };
        let key = info.key(req.target.namespace.as_deref(), &name);
        let written = match object::encode(&admitted) {
            Ok(value) => {
                state
                    .store
                    .txn(Op::Put {
                        key,
                        value,
                        precondition: Precondition::Absent,
                    })
                    .await
            }
            Err(e) => {
                reservations.release(state).await;
                return Err(e);
            }
        };
        let written = match written {
            Ok(TxnResult::Applied { kv, .. }) => Ok(kv),
            Ok(TxnResult::Failed { .. }) => Err(None),
            Err(e) => Err(Some(e)),
        };
        // Only a write that certainly did not happen gives its reservations back: one
        // that timed out may still apply, and a leaked IP is safer than a shared one.
        if matches!(written, Err(None)) {
            reservations.release(state).await;
        }
        match written {
            Ok(kv) => {
                let created = object::decode(&kv)?;
                return Ok(req.out.object(StatusCode::CREATED, info, created));
            }
            Err(Some(e)) => return Err(e.into()),
            Err(None) => {
                if !given_name.is_empty() || attempt + 1 == GENERATE_NAME_ATTEMPTS {
                    return Err(ApiError::already_exists(info, &name));
                }
            }
        }
    }
    Err(ApiError::internal("unreachable: generateName loop ended"))
}

/// A namespaced object needs an existing namespace that is not being deleted.
///
/// Like Kubernetes' NamespaceLifecycle admission (which reads an informer cache), this
/// reads the local replica first: it saves a quorum round trip on every create. Only a
/// namespace this replica has not seen yet is looked up again with `read` (it may have
/// been created through another replica a moment ago).
pub async fn check_namespace_open(
    state: &AppState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
    read: Read,
) -> Result<()> {
    let namespaces =
        crate::registry::lookup("", "v1", "namespaces").expect("namespaces are served");
    let key = namespaces.key(None, ns);
    let mut found = read_object(state, &key, Read::Local).await?;
    if found.is_none() && read == Read::Linearizable {
        found = read_object(state, &key, read).await?;
    }
    let Some((ns_obj, _)) = found else {
        return Err(ApiError::namespace_not_found(ns));
    };
    if object::is_deleting(&ns_obj) || ns_obj["status"]["phase"] == "Terminating" {
        return Err(ApiError::forbidden(format!(
            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            info.qualified()
        )));
    }
    Ok(())
}
