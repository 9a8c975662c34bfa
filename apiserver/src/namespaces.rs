//! The initial namespaces, created idempotently by every replica at startup. (Emptying a
//! namespace being deleted is the namespace controller's job, in tug-controllers; see
//! `rest::delete`.)

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tug_store::{Op, Precondition, Read};

use crate::registry;
use crate::state::AppState;
use crate::{object, strategy};

/// Created at startup if missing, as Kubernetes does.
pub const INITIAL: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Namespaces Kubernetes refuses to delete.
pub const UNDELETABLE: [&str; 3] = ["default", "kube-system", "kube-public"];

const RETRY: Duration = Duration::from_millis(200);

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
