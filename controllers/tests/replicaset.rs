//! The ReplicaSet controller against an in-process apiserver (no scheduler, no agent).

mod harness;

use futures::StreamExt;
use harness::{eventually, mark_ready, selector, template, Cluster};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tug_client::{Api, DeleteParams, ListParams, PatchKind};
use tug_proto::apps::v1::{ReplicaSet, ReplicaSetSpec};
use tug_proto::core::v1::Pod;
use tug_proto::ObjectMeta;

fn replicaset(name: &str, app: &str, replicas: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta::named(name),
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: Some(selector(app)),
            template: template(app, "img:v1"),
            ..Default::default()
        }),
        ..Default::default()
    }
    .with_type_meta()
}

/// Follows pods matching `selector` through a watch and records the most that were
/// alive (not terminating) at once.
fn track_max_live(api: Api<Pod>, selector: &str) -> Arc<AtomicUsize> {
    let max = Arc::new(AtomicUsize::new(0));
    let lp = ListParams::default().labels(selector);
    let seen = max.clone();
    tokio::spawn(async move {
        let mut live = BTreeSet::new();
        let mut events = api.watch(&lp, "").await.expect("watch pods");
        while let Some(Ok(ev)) = events.next().await {
            let name = ev.object.metadata.name().to_string();
            if ev.type_ == "DELETED" || ev.object.metadata.deletion_timestamp.is_some() {
                live.remove(&name);
            } else {
                live.insert(name);
            }
            seen.fetch_max(live.len(), Ordering::SeqCst);
        }
    });
    max
}

async fn wait_for_pods(c: &Cluster, app: &str, n: usize) -> Vec<Pod> {
    eventually(&format!("{n} pods of {app}"), || async {
        let pods = c.live_pods(&format!("app={app}")).await;
        (pods.len() == n).then_some(pods)
    })
    .await
}

async fn wait_for_status(c: &Cluster, name: &str, replicas: i32, ready: i32) {
    let api = c.api::<ReplicaSet>();
    eventually(&format!("{name} status {replicas}/{ready}"), || async {
        let rs = api.get(name).await.ok()?;
        let s = rs.status?;
        (s.replicas == replicas
            && s.ready_replicas == ready
            && s.available_replicas == ready
            && s.observed_generation == rs.metadata.generation.unwrap_or(0))
        .then_some(())
    })
    .await
}

#[tokio::test]
async fn replicaset_scales_2_5_1_with_exact_counts_and_never_over_creates() {
    let c = Cluster::start(&["replicaset"]).await;
    let rs_api = c.api::<ReplicaSet>();
    let pod_api = c.api::<Pod>();
    let max = track_max_live(pod_api.clone(), "app=web");
    let rs = rs_api.create(&replicaset("web", "web", 2)).await.unwrap();
    let uid = rs.metadata.uid.clone().unwrap();

    let pods = wait_for_pods(&c, "web", 2).await;
    for p in &pods {
        let name = p.metadata.name();
        let suffix = name.strip_prefix("web-").expect("generateName prefix");
        assert_eq!(suffix.len(), 5, "{name}");
        let owner = p.metadata.controller_ref().expect("controller ref");
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ReplicaSet", uid.as_str())
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
    }
    wait_for_status(&c, "web", 2, 0).await;

    harness::retry_conflicts(|| rs_api.scale("web", 5))
        .await
        .unwrap();
    let pods = wait_for_pods(&c, "web", 5).await;
    for p in &pods {
        mark_ready(&pod_api, p.metadata.name()).await.unwrap();
    }
    wait_for_status(&c, "web", 5, 5).await;
    // The controller has settled: no stray creation follows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.live_pods("app=web").await.len(), 5);

    harness::retry_conflicts(|| rs_api.scale("web", 1))
        .await
        .unwrap();
    wait_for_pods(&c, "web", 1).await;
    wait_for_status(&c, "web", 1, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.live_pods("app=web").await.len(), 1);
    assert_eq!(
        max.load(Ordering::SeqCst),
        5,
        "more than 5 pods existed at once"
    );
}

#[tokio::test]
async fn a_deleted_pod_is_replaced() {
    let c = Cluster::start(&["replicaset"]).await;
    let pod_api = c.api::<Pod>();
    c.api::<ReplicaSet>()
        .create(&replicaset("db", "db", 2))
        .await
        .unwrap();
    let pods = wait_for_pods(&c, "db", 2).await;
    let victim = pods[0].metadata.name().to_string();
    pod_api
        .delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    let pods = eventually("a replacement pod", || async {
        let pods = c.live_pods("app=db").await;
        (pods.len() == 2 && pods.iter().all(|p| p.metadata.name() != victim)).then_some(pods)
    })
    .await;
    assert_eq!(pods.len(), 2);
}

#[tokio::test]
async fn orphans_are_adopted_and_pods_that_stop_matching_are_released() {
    let c = Cluster::start(&["replicaset"]).await;
    let pod_api = c.api::<Pod>();
    let mut orphan = Pod {
        metadata: ObjectMeta::named("orphan"),
        spec: template("cache", "img:v1").spec,
        ..Default::default()
    }
    .with_type_meta();
    orphan.metadata.labels.insert("app".into(), "cache".into());
    pod_api.create(&orphan).await.unwrap();

    let rs = c
        .api::<ReplicaSet>()
        .create(&replicaset("cache", "cache", 2))
        .await
        .unwrap();
    let uid = rs.metadata.uid.unwrap();
    let pods = wait_for_pods(&c, "cache", 2).await;
    let adopted = pods
        .iter()
        .find(|p| p.metadata.name() == "orphan")
        .expect("orphan kept, not replaced");
    eventually("orphan adopted", || async {
        let p = pod_api.get("orphan").await.ok()?;
        p.metadata
            .controller_ref()
            .filter(|r| r.uid == uid)
            .map(|_| ())
    })
    .await;
    assert_eq!(adopted.metadata.labels["app"], "cache");

    // Relabel it: the ReplicaSet lets go and makes a new one.
    let patch = serde_json::json!({"metadata": {"labels": {"app": "debug"}}});
    pod_api
        .patch("orphan", PatchKind::Merge, &patch)
        .await
        .unwrap();
    eventually("orphan released", || async {
        let p = pod_api.get("orphan").await.ok()?;
        p.metadata.controller_ref().is_none().then_some(())
    })
    .await;
    let pods = wait_for_pods(&c, "cache", 2).await;
    assert!(pods.iter().all(|p| p.metadata.name() != "orphan"));
}
