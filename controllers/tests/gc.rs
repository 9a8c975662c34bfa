//! The garbage collector against an in-process apiserver, on a Deployment ->
//! ReplicaSet -> Pod chain built by hand (no ReplicaSet/Deployment controllers run).

mod harness;

use harness::{eventually, Cluster};
use serde_json::json;
use std::time::Duration;
use tug_client::{Api, Client, DeleteParams, Deleted};
use tug_controllers::{garbagecollector, Options};
use tug_proto::apps::v1::{Deployment, ReplicaSet};
use tug_proto::core::v1::{ConfigMap, Pod};
use tug_proto::meta::v1::OwnerReference;
use tug_proto::Resource;

async fn start() -> Cluster {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    Cluster::start_with(Options::default(), garbagecollector::run).await
}

fn owner_ref<K: Resource>(obj: &K, block: bool) -> serde_json::Value {
    let m = obj.metadata();
    json!({"apiVersion": K::API_VERSION, "kind": K::KIND, "name": m.name(),
           "uid": m.uid.clone().unwrap(), "controller": true, "blockOwnerDeletion": block})
}

fn template() -> serde_json::Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c", "image": "web"}]}})
}

/// A Deployment, a ReplicaSet it owns and `pods` pods the ReplicaSet owns.
struct Chain {
    deployment: Deployment,
    replicaset: ReplicaSet,
    pods: Vec<Pod>,
}

async fn chain(client: &Client, name: &str, pods: usize) -> Chain {
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
    }))
    .unwrap();
    let deployment = Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&d)
        .await
        .expect("deployment");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("{name}-rs"), "ownerReferences": [owner_ref(&deployment, true)]},
        "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
    }))
    .unwrap();
    let replicaset = Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .create(&rs)
        .await
        .expect("replicaset");
    let pod_api = Api::<Pod>::namespaced(client.clone(), "default");
    let mut created = Vec::new();
    for i in 0..pods {
        let p: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{name}-pod-{i}"), "labels": {"app": "web"},
                         "ownerReferences": [owner_ref(&replicaset, true)]},
            "spec": {"containers": [{"name": "c", "image": "web"}]},
        }))
        .unwrap();
        created.push(pod_api.create(&p).await.expect("pod"));
    }
    Chain {
        deployment,
        replicaset,
        pods: created,
    }
}

async fn gone<K>(api: &Api<K>, name: &str) -> Option<()>
where
    K: serde::Serialize + serde::de::DeserializeOwned + Default + Send + 'static,
{
    api.get_opt(name).await.ok()?.is_none().then_some(())
}

#[tokio::test]
async fn deleting_a_deployment_removes_its_replicasets_and_pods() {
    let env = start().await;
    let c = chain(&env.client, "web", 3).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    let replicasets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");

    // A pod with a second owner that stays: it loses only the reference to the
    // ReplicaSet.
    let keeper: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keeper"}}))
    .unwrap();
    let keeper = configmaps.create(&keeper).await.expect("configmap");
    let mut keeper_ref = owner_ref(&keeper, false);
    keeper_ref["controller"] = json!(false);
    let shared: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "shared", "ownerReferences": [owner_ref(&c.replicaset, true), keeper_ref]},
        "spec": {"containers": [{"name": "c", "image": "web"}]},
    }))
    .unwrap();
    pods.create(&shared).await.expect("shared pod");

    // Owners that exist keep their dependents.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(replicasets.get_opt("web-rs").await.unwrap().is_some());
    assert_eq!(pods.list(&Default::default()).await.unwrap().items.len(), 4);

    deployments
        .delete(c.deployment.metadata.name(), &DeleteParams::background())
        .await
        .expect("delete deployment");
    eventually("the ReplicaSet to be collected", || {
        gone(&replicasets, "web-rs")
    })
    .await;
    for p in &c.pods {
        eventually("the pods to be collected", || {
            gone(&pods, p.metadata.name())
        })
        .await;
    }
    let shared = eventually("the shared pod to lose its dangling owner", || async {
        let p = pods.get("shared").await.ok()?;
        (p.metadata.owner_references.len() == 1).then_some(p)
    })
    .await;
    assert_eq!(
        shared.metadata.owner_references[0].uid,
        keeper.metadata.uid.clone().unwrap()
    );
}

#[tokio::test]
async fn a_dependent_created_before_its_owner_is_seen_is_not_collected_by_mistake() {
    let env = start().await;
    // Owner and dependent created back to back: the collector may see the pod before
    // the ReplicaSet; it must check the API before deleting anything.
    let c = chain(&env.client, "quick", 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    for p in &c.pods {
        assert!(pods.get_opt(p.metadata.name()).await.unwrap().is_some());
    }
    // A dependent whose owner never existed (unknown uid) goes.
    let ghost = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: "ghost".into(),
        uid: "00000000-0000-0000-0000-000000000000".into(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "haunted", "ownerReferences": [ghost]},
        "spec": {"containers": [{"name": "c", "image": "web"}]},
    }))
    .unwrap();
    pods.create(&orphan).await.expect("pod");
    eventually("the pod of a missing owner to be collected", || {
        gone(&pods, "haunted")
    })
    .await;
}

/// Needs the apiserver's Foreground contract (deletionTimestamp + `foregroundDeletion`
/// finalizer instead of an immediate delete); skips itself (says so) on a server
/// without it.
#[tokio::test]
async fn foreground_deletion_removes_dependents_before_the_owner() {
    let env = start().await;
    let c = chain(&env.client, "fg", 2).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    let replicasets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");

    let answer = deployments
        .delete("fg", &DeleteParams::foreground())
        .await
        .expect("delete deployment");
    let marked = match answer {
        Deleted::Object(d) if d.metadata.deletion_timestamp.is_some() => d,
        other => panic!("propagationPolicy=Foreground must mark the owner, got {other:?}"),
    };
    assert!(marked
        .metadata
        .finalizers
        .iter()
        .any(|f| f == garbagecollector::FOREGROUND_FINALIZER));
    for p in &c.pods {
        eventually("the pods to go", || gone(&pods, p.metadata.name())).await;
    }
    eventually("the ReplicaSet to go", || {
        gone(&replicasets, c.replicaset.metadata.name())
    })
    .await;
    eventually("the Deployment to go last", || gone(&deployments, "fg")).await;
}

/// Needs the apiserver's Orphan contract (deletionTimestamp + `orphan` finalizer);
/// skips itself (says so) on a server without it.
#[tokio::test]
async fn orphan_deletion_keeps_dependents_and_drops_their_owner_references() {
    let env = start().await;
    let c = chain(&env.client, "or", 2).await;
    let replicasets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");

    let answer = replicasets
        .delete(c.replicaset.metadata.name(), &DeleteParams::orphan())
        .await
        .expect("delete replicaset");
    match answer {
        Deleted::Object(rs)
            if rs
                .metadata
                .finalizers
                .iter()
                .any(|f| f == garbagecollector::ORPHAN_FINALIZER) => {}
        other => panic!("propagationPolicy=Orphan must add the orphan finalizer, got {other:?}"),
    }
    eventually("the ReplicaSet to go", || {
        gone(&replicasets, c.replicaset.metadata.name())
    })
    .await;
    for p in &c.pods {
        let p = eventually("the pod to be released", || async {
            let p = pods.get(p.metadata.name()).await.ok()?;
            p.metadata.owner_references.is_empty().then_some(p)
        })
        .await;
        assert!(p.metadata.deletion_timestamp.is_none());
    }
    // Still there a while later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pods.list(&Default::default()).await.unwrap().items.len(), 2);
}

/// The collector's half of foreground deletion, driven by a finalizer set by hand
/// (independent of how the apiserver implements propagationPolicy).
#[tokio::test]
async fn an_owner_deleted_with_the_foreground_finalizer_waits_for_its_dependents() {
    let env = start().await;
    let c = chain(&env.client, "hand", 2).await;
    let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    let replicasets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let finalizer = json!({"metadata": {"finalizers": [garbagecollector::FOREGROUND_FINALIZER]}});
    deployments
        .patch("hand", tug_client::PatchKind::Merge, &finalizer)
        .await
        .expect("add finalizer");
    deployments
        .delete("hand", &DeleteParams::default())
        .await
        .expect("delete deployment");
    for p in &c.pods {
        eventually("the pods to go", || gone(&pods, p.metadata.name())).await;
    }
    eventually("the ReplicaSet to go", || {
        gone(&replicasets, c.replicaset.metadata.name())
    })
    .await;
    eventually(
        "the finalizer to be removed (and the Deployment to go)",
        || async {
            match deployments.get_opt("hand").await.ok()? {
                None => Some(()),
                Some(d) => d.metadata.finalizers.is_empty().then_some(()),
            }
        },
    )
    .await;
}

/// The collector's half of orphan deletion, driven by a finalizer set by hand.
#[tokio::test]
async fn an_owner_deleted_with_the_orphan_finalizer_releases_its_dependents() {
    let env = start().await;
    let c = chain(&env.client, "keep", 2).await;
    let replicasets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let rs = c.replicaset.metadata.name();
    let finalizer = json!({"metadata": {"finalizers": [garbagecollector::ORPHAN_FINALIZER]}});
    replicasets
        .patch(rs, tug_client::PatchKind::Merge, &finalizer)
        .await
        .expect("add finalizer");
    replicasets
        .delete(rs, &DeleteParams::default())
        .await
        .expect("delete replicaset");
    for p in &c.pods {
        eventually("the pod to be released", || async {
            let p = pods.get(p.metadata.name()).await.ok()?;
            p.metadata.owner_references.is_empty().then_some(())
        })
        .await;
    }
    eventually("the finalizer to be removed", || async {
        match replicasets.get_opt(rs).await.ok()? {
            None => Some(()),
            Some(r) => r.metadata.finalizers.is_empty().then_some(()),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pods.list(&Default::default()).await.unwrap().items.len(), 2);
}
