//! The namespace controller: empties a namespace being deleted (every namespaced kind
//! the API serves, found by discovery), then removes the `kubernetes` finalizer with
//! `PUT /api/v1/namespaces/{name}/finalize` so the apiserver removes the namespace.

use crate::Context;
use chrono::Utc;
use std::time::Duration;
use tug_client::{
    controller, Action, Api, ApiResource, Client, DeleteParams, DynamicApi, ListParams, ObjectKey,
    Store, WorkQueue,
};
use tug_proto::core::v1::Namespace;

/// The finalizer this controller is responsible for (in `spec.finalizers`).
pub const FINALIZER: &str = "kubernetes";

/// How often a namespace whose contents are still going away is looked at again.
const RECHECK: Duration = Duration::from_secs(1);
/// How long past its deadline a gracefully deleted pod may take before it is
/// force-deleted (its node may be gone and nobody would finish it).
const FORCE_PODS_AFTER: chrono::Duration = chrono::Duration::seconds(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("namespace {namespace}: {action}: {source}")]
    Api {
        namespace: String,
        action: String,
        source: tug_client::Error,
    },
    #[error("namespace {namespace}: discovery document {path} is not valid JSON: {source}")]
    Discovery {
        namespace: String,
        path: String,
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the namespace controller until `ctx.shutdown` is cancelled.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: WorkQueue<ObjectKey> = WorkQueue::default();
    let namespaces = ctx.informers.get::<Namespace>();
    let store = namespaces.store();
    tokio::select! {
        _ = store.wait_until_ready() => {}
        _ = ctx.shutdown.cancelled() => return Ok(()),
    }
    namespaces.enqueue_into(queue.clone());
    let stop = {
        let (queue, shutdown) = (queue.clone(), ctx.shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            queue.shutdown();
        })
    };
    let workers = ctx.options.workers;
    controller::run_keys(
        queue,
        move |key| {
            let (client, store) = (ctx.client.clone(), store.clone());
            async move { reconcile(&client, &store, key).await }
        },
        workers,
    )
    .await;
    stop.abort();
    Ok(())
}

/// Whether the namespace is being deleted and still waits for this controller.
pub fn needs_finalizing(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        && ns
            .spec
            .as_ref()
            .is_some_and(|s| s.finalizers.iter().any(|f| f == FINALIZER))
}

async fn reconcile(client: &Client, store: &Store<Namespace>, key: ObjectKey) -> Result<Action> {
    let name = key.name.clone();
    let err = |action: &str| {
        let (namespace, action) = (name.clone(), action.to_string());
        move |source| Error::Api {
            namespace,
            action,
            source,
        }
    };
    match store.get_key(&key) {
        Some(ns) if needs_finalizing(&ns) => {}
        _ => return Ok(Action::AwaitChange),
    }
    let remaining = delete_contents(client, &name).await?;
    if remaining > 0 {
        tracing::debug!(namespace = %name, remaining, "waiting for the namespace's objects to go");
        return Ok(Action::Requeue(RECHECK));
    }
    // Empty: give the namespace back to the apiserver without our finalizer.
    let api: Api<Namespace> = Api::all(client.clone());
    let Some(mut ns) = api.get_opt(&name).await.map_err(err("reading"))? else {
        return Ok(Action::AwaitChange);
    };
    if !needs_finalizing(&ns) {
        return Ok(Action::AwaitChange);
    }
    if let Some(spec) = ns.spec.as_mut() {
        spec.finalizers.retain(|f| f != FINALIZER);
    }
    ns.set_type_meta();
    match api
        .replace_subresource::<_, serde_json::Value>("finalize", &name, &ns)
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(err("removing the kubernetes finalizer")(e)),
    }
    tracing::info!(namespace = %name, "namespace emptied and finalized");
    Ok(Action::AwaitChange)
}

/// Deletes everything in namespace `ns`; returns how many objects are still there.
async fn delete_contents(client: &Client, ns: &str) -> Result<usize> {
    let mut remaining = 0;
    for res in namespaced_resources(client, ns).await? {
        let api = DynamicApi::dynamic(client.clone(), res.clone(), Some(ns));
        let items = match api.list_all(&ListParams::default()).await {
            Ok(list) => list.items,
            // Served in discovery but not listable here: nothing we can do about it.
            Err(e) if e.is_not_found() || e.is_forbidden() => continue,
            Err(e) => {
                return Err(Error::Api {
                    namespace: ns.to_string(),
                    action: format!("listing {}", res.plural),
                    source: e,
                })
            }
        };
        for item in items {
            remaining += 1;
            let name = item["metadata"]["name"].as_str().unwrap_or_default();
            let uid = item["metadata"]["uid"].as_str().map(str::to_string);
            let deleting = item["metadata"]["deletionTimestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            let dp = match deleting {
                None => DeleteParams {
                    precondition_uid: uid,
                    ..Default::default()
                },
                // A pod past its grace period whose kubelet never confirmed.
                Some(deadline)
                    if res.plural == "pods" && deadline + FORCE_PODS_AFTER <= Utc::now() =>
                {
                    DeleteParams {
                        grace_period_seconds: Some(0),
                        precondition_uid: uid,
                        ..Default::default()
                    }
                }
                Some(_) => continue,
            };
            match api.delete(name, &dp).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => {
                    return Err(Error::Api {
                        namespace: ns.to_string(),
                        action: format!("deleting {} {name}", res.plural),
                        source: e,
                    })
                }
            }
        }
    }
    Ok(remaining)
}

/// Every namespaced resource the API serves that can be listed and deleted.
async fn namespaced_resources(client: &Client, ns: &str) -> Result<Vec<ApiResource>> {
    let mut paths = vec![("".to_string(), "v1".to_string())];
    let groups = get_json(client, ns, "/apis").await?;
    for g in groups["groups"].as_array().into_iter().flatten() {
        let name = g["name"].as_str().unwrap_or_default();
        let version = g["preferredVersion"]["version"]
            .as_str()
            .unwrap_or_default();
        if !name.is_empty() && !version.is_empty() {
            paths.push((name.to_string(), version.to_string()));
        }
    }
    let mut out = Vec::new();
    for (group, version) in paths {
        let path = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let list = get_json(client, ns, &path).await?;
        out.extend(resources_in(&group, &version, &list));
    }
    Ok(out)
}

/// The namespaced, listable, deletable top-level resources of one `APIResourceList`.
pub fn resources_in(group: &str, version: &str, list: &serde_json::Value) -> Vec<ApiResource> {
    list["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["namespaced"].as_bool() == Some(true))
        .filter(|r| {
            let verbs: Vec<&str> = r["verbs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            verbs.contains(&"list") && verbs.contains(&"delete")
        })
        .filter_map(|r| {
            let plural = r["name"].as_str()?;
            if plural.contains('/') {
                return None;
            }
            let kind = r["kind"].as_str().unwrap_or_default();
            Some(ApiResource::new(group, version, kind, plural, true))
        })
        .collect()
}

async fn get_json(client: &Client, ns: &str, path: &str) -> Result<serde_json::Value> {
    let bytes = client
        .raw_get(path, Some("application/json"))
        .await
        .map_err(|source| Error::Api {
            namespace: ns.to_string(),
            action: format!("discovery ({path})"),
            source,
        })?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Discovery {
        namespace: ns.to_string(),
        path: path.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tug_proto::core::v1::NamespaceSpec;
    use tug_proto::{ObjectMeta, Time};

    #[test]
    fn only_namespaced_deletable_top_level_resources_are_emptied() {
        let list = serde_json::json!({"resources": [
            {"name": "pods", "namespaced": true, "kind": "Pod", "verbs": ["create", "delete", "list"]},
            {"name": "pods/status", "namespaced": true, "kind": "Pod", "verbs": ["get", "delete", "list"]},
            {"name": "nodes", "namespaced": false, "kind": "Node", "verbs": ["delete", "list"]},
            {"name": "bindings", "namespaced": true, "kind": "Binding", "verbs": ["create"]},
        ]});
        let got = resources_in("", "v1", &list);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].plural, "pods");
        assert_eq!(
            got[0].collection_path(Some("x")),
            "/api/v1/namespaces/x/pods"
        );
    }

    #[test]
    fn only_deleted_namespaces_with_our_finalizer_are_finalized() {
        let ns = |deleting: bool, finalizers: &[&str]| Namespace {
            metadata: ObjectMeta {
                deletion_timestamp: deleting.then(Time::now),
                ..ObjectMeta::named("x")
            },
            spec: Some(NamespaceSpec {
                finalizers: finalizers.iter().map(|s| s.to_string()).collect(),
            }),
            ..Default::default()
        };
        assert!(needs_finalizing(&ns(true, &["kubernetes"])));
        assert!(!needs_finalizing(&ns(false, &["kubernetes"])));
        assert!(!needs_finalizing(&ns(true, &[])));
        assert!(!needs_finalizing(&ns(true, &["other"])));
    }
}
