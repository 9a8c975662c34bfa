//! The Deployment controller (with the ReplicaSet controller) against an in-process
//! apiserver; the test plays kubelet by writing pod status.

mod harness;

use futures::StreamExt;
use harness::{eventually, selector, template, Cluster};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tug_client::{Api, ListParams, PatchKind};
use tug_proto::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment,
};
use tug_proto::core::v1::Pod;
use tug_proto::{IntOrString, ObjectMeta};

const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH: &str = "pod-template-hash";

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta::named(name),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: Some(selector(name)),
            template: template(name, image),
            ..Default::default()
        }),
        ..Default::default()
    }
    .with_type_meta()
}

fn rolling(mut d: Deployment, surge: i32, unavailable: i32) -> Deployment {
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(surge)),
            max_unavailable: Some(IntOrString::Int(unavailable)),
        }),
    });
    d
}

async fn set_image(api: &Api<Deployment>, name: &str, image: &str) {
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    harness::retry_conflicts(|| api.patch(name, PatchKind::Merge, &patch))
        .await
        .unwrap();
}

async fn set_paused(api: &Api<Deployment>, name: &str, paused: bool) {
    let patch = serde_json::json!({"spec": {"paused": paused}});
    harness::retry_conflicts(|| api.patch(name, PatchKind::Merge, &patch))
        .await
        .unwrap();
}

/// Live (not terminating) pods of `app`, by pod-template-hash.
async fn pods_by_hash(c: &Cluster, app: &str) -> BTreeMap<String, Vec<Pod>> {
    let mut by = BTreeMap::<String, Vec<Pod>>::new();
    for p in c.live_pods(&format!("app={app}")).await {
        let h = p.metadata.labels.get(HASH).cloned().unwrap_or_default();
        by.entry(h).or_default().push(p);
    }
    by
}

async fn replicasets(c: &Cluster, app: &str) -> Vec<ReplicaSet> {
    c.api::<ReplicaSet>()
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// Waits until the Deployment's status says every replica is updated and available.
async fn wait_complete(c: &Cluster, name: &str, replicas: i32) -> Deployment {
    let api = c.api::<Deployment>();
    eventually(&format!("{name} complete with {replicas}"), || async {
        let d = api.get(name).await.ok()?;
        let s = d.status.clone()?;
        (s.observed_generation == d.metadata.generation.unwrap_or(0)
            && s.replicas == replicas
            && s.updated_replicas == replicas
            && s.available_replicas == replicas
            && s.unavailable_replicas == 0)
            .then_some(d)
    })
    .await
}

fn condition<'a>(d: &'a Deployment, type_: &str) -> Option<(&'a str, &'a str)> {
    let c = d
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.as_str(), c.reason.as_deref().unwrap_or("")))
}

#[tokio::test]
async fn deployment_creates_a_hashed_replicaset_and_its_pods() {
    let c = Cluster::start(&["replicaset", "deployment"]).await;
    let _kubelet = c.kubelet("app=web", Duration::from_millis(50));
    c.api::<Deployment>()
        .create(&deployment("web", 3, "img:v1"))
        .await
        .unwrap();
    let d = wait_complete(&c, "web", 3).await;
    assert_eq!(
        d.metadata.annotations.get(REVISION).map(String::as_str),
        Some("1")
    );
    assert_eq!(
        condition(&d, "Available"),
        Some(("True", "MinimumReplicasAvailable"))
    );
    assert_eq!(
        condition(&d, "Progressing"),
        Some(("True", "NewReplicaSetAvailable"))
    );

    let rss = replicasets(&c, "web").await;
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = rs.metadata.labels[HASH].clone();
    assert_eq!(rs.metadata.name(), format!("web-{hash}"));
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(spec.selector.as_ref().unwrap().match_labels[HASH], hash);
    assert_eq!(spec.template.metadata.labels[HASH], hash);
    assert_eq!(rs.metadata.annotations[REVISION], "1");
    assert_eq!(
        rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"],
        "3"
    );
    assert_eq!(
        rs.metadata.annotations["deployment.kubernetes.io/max-replicas"],
        "4"
    );
    assert_eq!(rs.metadata.controller_ref().unwrap().kind, "Deployment");
    let pods = pods_by_hash(&c, "web").await;
    assert_eq!(pods.keys().collect::<Vec<_>>(), vec![&hash]);
    assert_eq!(pods[&hash].len(), 3);

    let events: Api<tug_proto::core::v1::Event> = c.api();
    for (kind, reason) in [
        ("Deployment", "ScalingReplicaSet"),
        ("ReplicaSet", "SuccessfulCreate"),
    ] {
        eventually(&format!("{reason} event on a {kind}"), || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.involved_object.kind.as_deref() == Some(kind)
                })
                .then_some(())
        })
        .await;
    }
}

/// Samples, on every pod change seen through a watch, how many pods of `app` are
/// ready and alive; records the minimum once armed.
fn track_min_available(c: &Cluster, app: &str) -> (Arc<AtomicBool>, Arc<AtomicI64>) {
    let armed = Arc::new(AtomicBool::new(false));
    let min = Arc::new(AtomicI64::new(i64::MAX));
    let api = c.api::<Pod>();
    let lp = ListParams::default().labels(&format!("app={app}"));
    let (a, m) = (armed.clone(), min.clone());
    tokio::spawn(async move {
        let mut ready = BTreeMap::<String, bool>::new();
        let mut events = api.watch(&lp, "").await.expect("watch");
        while let Some(Ok(ev)) = events.next().await {
            let p = ev.object;
            let name = p.metadata.name().to_string();
            if ev.type_ == "DELETED" || p.metadata.deletion_timestamp.is_some() {
                ready.remove(&name);
            } else {
                ready.insert(name, p.is_ready());
            }
            if a.load(Ordering::SeqCst) {
                let n = ready.values().filter(|r| **r).count() as i64;
                m.fetch_min(n, Ordering::SeqCst);
            }
        }
    });
    (armed, min)
}

#[tokio::test]
async fn rolling_update_keeps_min_available_and_ends_on_the_new_replicaset_then_rolls_back() {
    let c = Cluster::start(&["replicaset", "deployment"]).await;
    let api = c.api::<Deployment>();
    let _kubelet = c.kubelet("app=roll", Duration::from_millis(300));
    api.create(&rolling(deployment("roll", 4, "img:v1"), 1, 1))
        .await
        .unwrap();
    wait_complete(&c, "roll", 4).await;
    let v1_hash = pods_by_hash(&c, "roll").await.into_keys().next().unwrap();

    let (armed, min) = track_min_available(&c, "roll");
    // Let the watch catch up with the 4 ready pods before arming.
    tokio::time::sleep(Duration::from_millis(300)).await;
    armed.store(true, Ordering::SeqCst);
    set_image(&api, "roll", "img:v2").await;
    let d = eventually("all pods on the new ReplicaSet", || async {
        let by = pods_by_hash(&c, "roll").await;
        let d = api.get("roll").await.ok()?;
        let s = d.status.clone()?;
        (by.len() == 1
            && !by.contains_key(&v1_hash)
            && by.values().next()?.len() == 4
            && s.updated_replicas == 4
            && s.available_replicas == 4
            && s.replicas == 4)
            .then_some(d)
    })
    .await;
    let low = min.load(Ordering::SeqCst);
    assert!(
        low >= 3,
        "availability dropped to {low} (replicas 4, maxUnavailable 1)"
    );
    assert_eq!(d.metadata.annotations[REVISION], "2");
    let rss = replicasets(&c, "roll").await;
    assert_eq!(rss.len(), 2);
    let old = rss
        .iter()
        .find(|r| r.metadata.labels[HASH] == v1_hash)
        .unwrap();
    assert_eq!(rs_replicas(old), 0);

    // `tug rollout undo`: the old ReplicaSet's template goes back into the Deployment.
    let mut old_template = old.spec.as_ref().unwrap().template.clone();
    old_template.metadata.labels.remove(HASH);
    let patch = serde_json::json!({"spec": {"template": old_template}});
    harness::retry_conflicts(|| api.patch("roll", PatchKind::Merge, &patch))
        .await
        .unwrap();
    let d = eventually("rolled back to v1 pods", || async {
        let by = pods_by_hash(&c, "roll").await;
        let d = api.get("roll").await.ok()?;
        let s = d.status.clone()?;
        (by.len() == 1
            && by.get(&v1_hash)?.len() == 4
            && s.available_replicas == 4
            && s.updated_replicas == 4)
            .then_some(d)
    })
    .await;
    let rss = replicasets(&c, "roll").await;
    assert_eq!(rss.len(), 2, "the old ReplicaSet is reused, not duplicated");
    let old = rss
        .iter()
        .find(|r| r.metadata.labels[HASH] == v1_hash)
        .unwrap();
    assert_eq!(old.metadata.annotations[REVISION], "3");
    assert_eq!(rs_replicas(old), 4);
    assert_eq!(d.metadata.annotations[REVISION], "3");
}

#[tokio::test]
async fn recreate_removes_old_pods_before_starting_new_ones() {
    let c = Cluster::start(&["replicaset", "deployment"]).await;
    let api = c.api::<Deployment>();
    let _kubelet = c.kubelet("app=batch", Duration::from_millis(50));
    let mut d = deployment("batch", 2, "img:v1");
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    api.create(&d).await.unwrap();
    wait_complete(&c, "batch", 2).await;
    let v1_hash = pods_by_hash(&c, "batch").await.into_keys().next().unwrap();

    // Watch for a moment where old and new pods are alive together.
    let overlap = Arc::new(AtomicBool::new(false));
    {
        let (api, overlap, v1) = (c.api::<Pod>(), overlap.clone(), v1_hash.clone());
        let lp = ListParams::default().labels("app=batch");
        tokio::spawn(async move {
            let mut live = BTreeMap::<String, String>::new();
            let mut events = api.watch(&lp, "").await.expect("watch");
            while let Some(Ok(ev)) = events.next().await {
                let p = ev.object;
                let name = p.metadata.name().to_string();
                if ev.type_ == "DELETED" || p.metadata.deletion_timestamp.is_some() {
                    live.remove(&name);
                } else {
                    live.insert(
                        name,
                        p.metadata.labels.get(HASH).cloned().unwrap_or_default(),
                    );
                }
                let old = live.values().any(|h| *h == v1);
                let new = live.values().any(|h| *h != v1);
                if old && new {
                    overlap.store(true, Ordering::SeqCst);
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    set_image(&api, "batch", "img:v2").await;
    eventually("two new pods", || async {
        let by = pods_by_hash(&c, "batch").await;
        (by.len() == 1 && !by.contains_key(&v1_hash) && by.values().next()?.len() == 2)
            .then_some(())
    })
    .await;
    wait_complete(&c, "batch", 2).await;
    assert!(
        !overlap.load(Ordering::SeqCst),
        "old and new pods ran at the same time"
    );
}

#[tokio::test]
async fn a_paused_deployment_does_not_roll_but_still_scales() {
    let c = Cluster::start(&["replicaset", "deployment"]).await;
    let api = c.api::<Deployment>();
    let _kubelet = c.kubelet("app=calm", Duration::from_millis(50));
    api.create(&deployment("calm", 2, "img:v1")).await.unwrap();
    wait_complete(&c, "calm", 2).await;
    let v1_hash = pods_by_hash(&c, "calm").await.into_keys().next().unwrap();

    set_paused(&api, "calm", true).await;
    set_image(&api, "calm", "img:v2").await;
    harness::retry_conflicts(|| api.scale("calm", 3))
        .await
        .unwrap();
    eventually("scaled while paused", || async {
        let by = pods_by_hash(&c, "calm").await;
        (by.len() == 1 && by.get(&v1_hash)?.len() == 3).then_some(())
    })
    .await;
    let d = eventually("paused condition", || async {
        let d = api.get("calm").await.ok()?;
        (condition(&d, "Progressing") == Some(("Unknown", "DeploymentPaused"))).then_some(d)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        replicasets(&c, "calm").await.len(),
        1,
        "no new ReplicaSet while paused"
    );
    assert_eq!(d.metadata.annotations[REVISION], "1");

    set_paused(&api, "calm", false).await;
    eventually("rolled out after resume", || async {
        let by = pods_by_hash(&c, "calm").await;
        (by.len() == 1 && !by.contains_key(&v1_hash) && by.values().next()?.len() == 3)
            .then_some(())
    })
    .await;
    wait_complete(&c, "calm", 3).await;
}

#[tokio::test]
async fn a_rollout_whose_pods_never_get_ready_exceeds_its_progress_deadline() {
    let c = Cluster::start(&["replicaset", "deployment"]).await;
    let api = c.api::<Deployment>();
    let mut d = deployment("stuck", 2, "img:v1");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    api.create(&d).await.unwrap();
    let d = eventually("ProgressDeadlineExceeded", || async {
        let d = api.get("stuck").await.ok()?;
        (condition(&d, "Progressing") == Some(("False", "ProgressDeadlineExceeded"))).then_some(d)
    })
    .await;
    assert_eq!(
        condition(&d, "Available"),
        Some(("False", "MinimumReplicasUnavailable"))
    );
    let s = d.status.unwrap();
    assert_eq!(
        (s.replicas, s.available_replicas, s.unavailable_replicas),
        (2, 0, 2)
    );
}

#[tokio::test]
async fn scaling_mid_rollout_spreads_replicas_proportionally() {
    let c = Cluster::start(&["replicaset", "deployment"]).await;
    let api = c.api::<Deployment>();
    // No kubelet: new pods never get ready, so the rollout stays half-way.
    api.create(&rolling(deployment("prop", 10, "img:v1"), 3, 2))
        .await
        .unwrap();
    let pods = c.api::<Pod>();
    let ready_all = || async {
        for p in c.live_pods("app=prop").await {
            if !p.is_ready() {
                harness::mark_ready(&pods, p.metadata.name()).await.unwrap();
            }
        }
    };
    eventually("10 v1 pods", || async {
        ready_all().await;
        let d = api.get("prop").await.ok()?;
        (d.status?.available_replicas == 10).then_some(())
    })
    .await;
    set_image(&api, "prop", "img:v2").await;
    // maxSurge 3, maxUnavailable 2: old goes to 8, new to 5 (13 in all), and stays
    // there while the new pods are not ready.
    let sizes = || async {
        let mut rss = replicasets(&c, "prop").await;
        rss.sort_by_key(|r| r.metadata.annotations.get(REVISION).cloned());
        rss.iter().map(rs_replicas).collect::<Vec<_>>()
    };
    eventually("8 old + 5 new", || async {
        (sizes().await == vec![8, 5]).then_some(())
    })
    .await;
    harness::retry_conflicts(|| api.scale("prop", 15))
        .await
        .unwrap();
    // 18 allowed: 5 more, 3 to the old (8 * 18 / 13 = 11) and 2 to the new.
    eventually("11 old + 7 new", || async {
        (sizes().await == vec![11, 7]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn old_replicasets_beyond_the_revision_history_limit_are_deleted() {
    let c = Cluster::start(&["replicaset", "deployment"]).await;
    let api = c.api::<Deployment>();
    let _kubelet = c.kubelet("app=hist", Duration::from_millis(20));
    let mut d = deployment("hist", 1, "img:v1");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    api.create(&d).await.unwrap();
    wait_complete(&c, "hist", 1).await;
    for image in ["img:v2", "img:v3", "img:v4"] {
        set_image(&api, "hist", image).await;
        eventually(&format!("rolled to {image}"), || async {
            let d = api.get("hist").await.ok()?;
            let s = d.status.clone()?;
            let new_rs = replicasets(&c, "hist").await.into_iter().find(|r| {
                r.spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref())
                    .and_then(|p| p.containers[0].image.as_deref())
                    == Some(image)
            })?;
            (s.observed_generation == d.metadata.generation.unwrap_or(0)
                && s.updated_replicas == 1
                && s.available_replicas == 1
                && s.replicas == 1
                && new_rs.status.as_ref()?.available_replicas == 1)
                .then_some(())
        })
        .await;
    }
    // The new ReplicaSet plus one old one (revision 3) remain.
    let rss = eventually("history trimmed to 1", || async {
        let rss = replicasets(&c, "hist").await;
        (rss.len() == 2).then_some(rss)
    })
    .await;
    let mut revisions: Vec<String> = rss
        .iter()
        .map(|r| r.metadata.annotations[REVISION].clone())
        .collect();
    revisions.sort();
    assert_eq!(revisions, ["3", "4"]);
}
