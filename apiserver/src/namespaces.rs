//! Namespaces the server looks after: the initial ones (created idempotently by every
//! replica at startup), and the emptying of namespaces being deleted.
//!
//! The finalizer here is a stand-in for Kubernetes' namespace controller (which lives in
//! the controller manager): it runs on the raft leader only, deletes every object of a
//! Terminating namespace through the normal delete logic (finalizers and pod grace
//! periods are honoured) and removes the namespace once it is empty.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tug_store::{Op, Precondition, Read, TxnResult};

use crate::error::Result;
use crate::registry;
use crate::rest::delete_for_namespace_cleanup;
use crate::state::AppState;
use crate::{object, strategy};

/// Created at startup if missing, as Kubernetes does.
pub const INITIAL: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Namespaces Kubernetes refuses to delete.
pub const UNDELETABLE: [&str; 3] = ["default", "kube-system", "kube-public"];

const RETRY: Duration = Duration::from_millis(200);
const FINALIZE_EVERY: Duration = Duration::from_secs(1);

/// A fresh Namespace object as a create would store it.
pub fn new_namespace(name: &str) -> Value {
    let info = registry::lookup("", "v1", "namespaces").expect("namespaces are served");
    let mut ns = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": object::now(),
            "generation": 1,
        },
    });
    strategy::prepare_for_create(info, &mut ns);
    strategy::finish_create(info, &mut ns);
    ns
}

/// Creates the initial namespaces and the `kubernetes` Service (retrying while the store
/// has no leader), then marks the server ready.
pub async fn bootstrap(state: Arc<AppState>) {
    let info = registry::lookup("", "v1", "namespaces").expect("namespaces are served");
    for name in INITIAL {
        loop {
            if state.is_shutting_down() {
                return;
            }
            let key = info.key(None, name);
            let exists =
                matches!(state.store.get(&key, Read::Linearizable).await, Ok(r) if r.kv.is_some());
            if exists {
                break;
            }
            let Ok(value) = object::encode(&new_namespace(name)) else {
                return;
            };
            let put = Op::Put {
                key,
                value,
                precondition: Precondition::Absent,
            };
            match state.store.txn(put).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!("creating namespace {name}: {e}; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
    loop {
        if state.is_shutting_down() {
            return;
        }
        match crate::kubernetes_service::ensure(&state, state.advertise).await {
            Ok(()) => break,
            Err(e) => {
                tracing::debug!("creating the kubernetes Service: {e}; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
    state.ready.store(true, Ordering::Release);
}

/// Runs until shutdown: empties and removes namespaces marked for deletion.
pub async fn run_finalizer(state: Arc<AppState>) {
    let mut shutdown = state.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = state.namespace_changed.notified() => {}
            _ = tokio::time::sleep(FINALIZE_EVERY) => {}
        }
        if !state.store.status().is_leader {
            continue;
        }
        if let Err(e) = finalize_all(&state).await {
            tracing::debug!("namespace finalizer: {e}");
        }
    }
}

async fn finalize_all(state: &AppState) -> Result<()> {
    let info = registry::lookup("", "v1", "namespaces").expect("namespaces are served");
    let listed = state
        .store
        .list(&info.prefix(None), None, None, Read::Local)
        .await?;
    for kv in listed.kvs {
        let ns = object::decode(&kv)?;
        if !object::is_deleting(&ns) {
            continue;
        }
        let name = object::name(&ns).to_string();
        delete_for_namespace_cleanup(state, &name).await?;
        if !is_empty(state, &name).await? || object::has_finalizers(&ns) {
            continue;
        }
        let Some(kv) = state.store.get(&kv.key, Read::Linearizable).await?.kv else {
            continue;
        };
        let del = Op::Delete {
            key: kv.key.clone(),
            precondition: Precondition::ModRevision(kv.mod_revision),
        };
        if let TxnResult::Applied { .. } = state.store.txn(del).await? {
            tracing::info!("namespace {name} is empty and was removed");
        }
    }
    Ok(())
}

async fn is_empty(state: &AppState, ns: &str) -> Result<bool> {
    for info in registry::namespaced() {
        let page = state
            .store
            .list(&info.prefix(Some(ns)), None, Some(1), Read::Local)
            .await?;
        if !page.kvs.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}
