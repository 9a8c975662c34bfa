//! DELETE of one object or of a collection: preconditions, finalizers, graceful pod
//! deletion, and namespaces (marked Terminating, then emptied by `namespaces`).
//!
//! propagationPolicy, as Kubernetes: Background deletes the object now and leaves its
//! dependents to the garbage collector (tug-controllers); Foreground and Orphan mark the
//! object deleted with the `foregroundDeletion` / `orphan` finalizer, and the garbage
//! collector deletes / releases the dependents before it removes that finalizer.
//! Without a policy, batch/v1 Jobs orphan their pods (Kubernetes' legacy default for
//! that group) and everything else is Background.
//!
//! A namespace is marked Terminating and kept while `spec.finalizers` holds
//! `kubernetes`: the namespace controller empties it and then clears that finalizer
//! through `namespaces/{name}/finalize`, which removes it.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};
use tug_proto::meta::v1::DeleteOptions;
use tug_store::{Op, Precondition, Read, TxnResult};

use super::update::MAX_RETRIES;
use super::{read_object, Req};
use crate::error::{ApiError, Result};
use crate::registry::ResourceInfo;
use crate::selector::Selectors;
use crate::state::AppState;
use crate::{body, object};

/// Default grace period of a pod without `terminationGracePeriodSeconds`.
const DEFAULT_POD_GRACE_SECONDS: i64 = 30;

/// The parts of DeleteOptions the server acts on.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub grace_period_seconds: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
    /// propagationPolicy (or the old orphanDependents); `None` = the kind's default.
    pub propagation: Option<Propagation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    /// The finalizer through which the garbage collector carries this policy out.
    fn finalizer(self) -> Option<&'static str> {
        match self {
            Propagation::Background => None,
            Propagation::Foreground => Some("foregroundDeletion"),
            Propagation::Orphan => Some("orphan"),
        }
    }

    /// Kubernetes' default when the request names none.
    fn default_for(info: &ResourceInfo) -> Propagation {
        if info.group == "batch" {
            Propagation::Orphan
        } else {
            Propagation::Background
        }
    }
}

enum Outcome {
    Done(Value),
    Conflict,
}

pub async fn delete(state: &AppState, req: &Req, body: Body) -> Result<Response> {
    let info = req.info();
    let name = req.target.name().to_string();
    let opts = options(req, body).await?;
    let key = req.target.key();
    for _ in 0..MAX_RETRIES {
        let Some((current, kv)) = read_object(state, &key, Read::Linearizable).await? else {
            return Err(ApiError::not_found(info, &name));
        };
        match delete_one(state, info, &key, current, kv.mod_revision, &opts).await? {
            Outcome::Done(obj) => return Ok(req.out.object(StatusCode::OK, info, obj)),
            Outcome::Conflict => continue,
        }
    }
    Err(ApiError::conflict(info, &name))
}

pub async fn delete_collection(state: &AppState, req: &Req, body: Body) -> Result<Response> {
    let info = req.info();
    let selectors = Selectors::parse(info, req.param("labelSelector"), req.param("fieldSelector"))?;
    let opts = options(req, body).await?;
    let prefix = info.prefix(req.target.namespace.as_deref());
    let listed = state
        .store
        .list(&prefix, None, None, Read::Linearizable)
        .await?;
    let mut deleted = Vec::new();
    for kv in listed.kvs {
        let obj = object::decode(&kv)?;
        if !selectors.matches(&obj) {
            continue;
        }
        if let Some(obj) = delete_with_retries(state, info, &kv.key, &opts).await? {
            deleted.push(obj);
        }
    }
    let meta = json!({"resourceVersion": state.store.revision().to_string()});
    Ok(req.out.list(info, deleted, meta))
}

/// Deletes one object by key; `None` if it was already gone.
async fn delete_with_retries(
    state: &AppState,
    info: &ResourceInfo,
    key: &str,
    opts: &Options,
) -> Result<Option<Value>> {
    for _ in 0..MAX_RETRIES {
        let Some((current, kv)) = read_object(state, key, Read::Linearizable).await? else {
            return Ok(None);
        };
        let name = object::name(&current).to_string();
        match delete_one(state, info, key, current, kv.mod_revision, opts).await {
            Ok(Outcome::Done(obj)) => return Ok(Some(obj)),
            Ok(Outcome::Conflict) => continue,
            Err(e) if e.code == 409 => return Err(e),
            Err(e) => {
                return Err(ApiError {
                    message: format!("{}: {}", name, e.message),
                    ..e
                })
            }
        }
    }
    Err(ApiError::internal(format!(
        "{key} kept changing while being deleted"
    )))
}

/// Decides what deleting `current` (at `rev`) means and does it.
async fn delete_one(
    state: &AppState,
    info: &ResourceInfo,
    key: &str,
    current: Value,
    rev: u64,
    opts: &Options,
) -> Result<Outcome> {
    let name = object::name(&current).to_string();
    if let Some(uid) = opts.uid.as_deref().filter(|u| !u.is_empty()) {
        if uid != object::uid(&current) {
            return Err(ApiError::conflict_because(
                info,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    object::uid(&current)
                ),
            ));
        }
    }
    if let Some(want) = opts.resource_version.as_deref().filter(|r| !r.is_empty()) {
        if want != object::resource_version(&current) {
            return Err(ApiError::conflict_because(
                info,
                &name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                    object::resource_version(&current)
                ),
            ));
        }
    }

    if info.plural == "namespaces" {
        if crate::namespaces::UNDELETABLE.contains(&name.as_str()) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        // Emptied by the namespace controller first, then removed (see the module doc).
        if object::is_deleting(&current) {
            return Ok(Outcome::Done(current));
        }
        if object::has_spec_finalizers(&current) || object::has_finalizers(&current) {
            let mut marked = current.clone();
            object::set_meta(&mut marked, "deletionTimestamp", Some(json!(object::now())));
            object::set_meta(&mut marked, "deletionGracePeriodSeconds", Some(json!(0)));
            marked["status"]["phase"] = json!("Terminating");
            return put_marked(state, key, marked, rev, opts).await;
        }
    }

    let grace = grace_period(info, &current, opts);
    let propagation = opts
        .propagation
        .unwrap_or_else(|| Propagation::default_for(info));
    let mut current = current;
    if let Some(f) = propagation
        .finalizer()
        .filter(|_| info.plural != "namespaces")
    {
        add_finalizer(&mut current, f);
    }
    let finalizers = object::has_finalizers(&current);
    if grace == 0 && !finalizers {
        if opts.dry_run {
            return Ok(Outcome::Done(current));
        }
        return match state
            .store
            .txn(Op::Delete {
                key: key.to_string(),
                precondition: Precondition::ModRevision(rev),
            })
            .await?
        {
            TxnResult::Applied { kv, .. } => {
                if info.plural == "services" {
                    crate::allocator::release_all(state, &current).await;
                }
                let mut obj = object::decode(&kv).unwrap_or(current);
                object::set_meta(
                    &mut obj,
                    "resourceVersion",
                    Some(json!(kv.mod_revision.to_string())),
                );
                Ok(Outcome::Done(obj))
            }
            TxnResult::Failed { .. } => Ok(Outcome::Conflict),
        };
    }

    // Graceful or finalized: mark the object and leave it for its owner (the node agent,
    // or whoever holds the finalizer) to finish.
    let existing_grace = current["metadata"]["deletionGracePeriodSeconds"].as_i64();
    if object::is_deleting(&current) && existing_grace.is_some_and(|g| g <= grace) {
        // Already on its way out no sooner than this request asks: nothing to change.
        return Ok(Outcome::Done(current));
    }
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(grace);
    let mut marked = current.clone();
    object::set_meta(
        &mut marked,
        "deletionTimestamp",
        Some(json!(object::timestamp(deadline))),
    );
    object::set_meta(
        &mut marked,
        "deletionGracePeriodSeconds",
        Some(json!(grace)),
    );
    put_marked(state, key, marked, rev, opts).await
}

/// Adds `finalizer` to `obj`'s `metadata.finalizers` unless it is there.
fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let meta = object::meta_mut(obj);
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        if !list.iter().any(|f| f == finalizer) {
            list.push(json!(finalizer));
        }
    }
}

async fn put_marked(
    state: &AppState,
    key: &str,
    marked: Value,
    rev: u64,
    opts: &Options,
) -> Result<Outcome> {
    if opts.dry_run {
        return Ok(Outcome::Done(marked));
    }
    match state
        .store
        .txn(Op::Put {
            key: key.to_string(),
            value: object::encode(&marked)?,
            precondition: Precondition::ModRevision(rev),
        })
        .await?
    {
        TxnResult::Applied { kv, .. } => Ok(Outcome::Done(object::decode(&kv)?)),
        TxnResult::Failed { .. } => Ok(Outcome::Conflict),
    }
}

/// Seconds until a deleted object really goes: bound, running pods get their grace
/// period (the node agent stops them and then deletes with 0); everything else is
/// immediate.
fn grace_period(info: &ResourceInfo, obj: &Value, opts: &Options) -> i64 {
    if info.plural != "pods" {
        return 0;
    }
    let bound = !obj["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .is_empty();
    let finished = matches!(
        obj["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !bound || finished {
        return 0;
    }
    opts.grace_period_seconds
        .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(DEFAULT_POD_GRACE_SECONDS)
        .max(0)
}

/// DeleteOptions from the body (JSON or YAML) and the query (query wins, as kubectl
/// sends either).
async fn options(req: &Req, body: Body) -> Result<Options> {
    let bytes = body::read(body).await?;
    let from_body: DeleteOptions = match body::decode_optional(&req.headers, &bytes)? {
        None => DeleteOptions::default(),
        Some(v) => serde_json::from_value(v).map_err(|e| {
            ApiError::bad_request(format!("invalid DeleteOptions in the request body: {e}"))
        })?,
    };
    let mut opts = Options {
        grace_period_seconds: from_body.grace_period_seconds,
        uid: from_body.preconditions.as_ref().and_then(|p| p.uid.clone()),
        resource_version: from_body
            .preconditions
            .as_ref()
            .and_then(|p| p.resource_version.clone()),
        dry_run: from_body.dry_run.iter().any(|d| d == "All") || req.dry_run(),
        propagation: None,
    };
    if let Some(g) = req.param("gracePeriodSeconds").filter(|g| !g.is_empty()) {
        opts.grace_period_seconds = Some(g.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid gracePeriodSeconds {g:?}: must be an integer"
            ))
        })?);
    }
    let policy = req
        .param("propagationPolicy")
        .map(str::to_string)
        .or(from_body.propagation_policy);
    if let Some(p) = policy.filter(|p| !p.is_empty()) {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::bad_request(format!(
                "invalid propagationPolicy {p:?}: must be Orphan, Background or Foreground"
            )));
        }
        opts.propagation = Some(match p.as_str() {
            "Orphan" => Propagation::Orphan,
            "Foreground" => Propagation::Foreground,
            _ => Propagation::Background,
        });
    } else if let Some(orphan) = from_body.orphan_dependents {
        opts.propagation = Some(if orphan {
            Propagation::Orphan
        } else {
            Propagation::Background
        });
    }
    Ok(opts)
}
