//! The node lifecycle controller against an in-process apiserver; the test plays the
//! node agent by renewing the node's Lease (and then stopping).

mod harness;

use harness::{eventually, Cluster};
use std::time::Duration;
use tug_client::{Api, Client, ListParams, PatchKind};
use tug_controllers::{nodelifecycle, Options};
use tug_proto::coordination::v1::{Lease, LeaseSpec};
use tug_proto::core::v1::{Container, Event, Node, Pod, PodSpec, Taint, Toleration};
use tug_proto::{MicroTime, ObjectMeta, Time};

async fn start() -> Cluster {
    let options = Options {
        node_monitor_grace_period: Duration::from_secs(2),
        node_monitor_period: Duration::from_millis(500),
        ..Options::default()
    };
    Cluster::start_with(options, nodelifecycle::run).await
}

/// Plays the agent's heartbeat: renews the node's Lease every 200 ms until aborted.
fn heartbeat(client: &Client, node: &str) -> tokio::task::JoinHandle<()> {
    let api: Api<Lease> = Api::namespaced(client.clone(), nodelifecycle::LEASE_NAMESPACE);
    let node = node.to_string();
    tokio::spawn(async move {
        loop {
            let lease = match api.get_opt(&node).await {
                Ok(Some(mut l)) => {
                    l.spec.get_or_insert_with(Default::default).renew_time = Some(MicroTime::now());
                    api.replace(&node, &l).await
                }
                _ => {
                    let l = Lease {
                        metadata: ObjectMeta::namespaced(nodelifecycle::LEASE_NAMESPACE, &node),
                        spec: Some(LeaseSpec {
                            holder_identity: Some(node.clone()),
                            lease_duration_seconds: Some(40),
                            renew_time: Some(MicroTime::now()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    api.create(&l.with_type_meta()).await
                }
            };
            if let Err(e) = lease {
                eprintln!("heartbeat: {e}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

fn pod(name: &str, node: &str, tolerations: Vec<Toleration>) -> Pod {
    Pod {
        metadata: ObjectMeta::named(name),
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            tolerations,
            containers: vec![Container {
                name: "c".into(),
                image: Some("app".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .with_type_meta()
}

fn unreachable_toleration(value: Option<&str>, seconds: Option<i64>) -> Toleration {
    Toleration {
        key: Some(nodelifecycle::TAINT_UNREACHABLE.into()),
        operator: Some(if value.is_some() { "Equal" } else { "Exists" }.into()),
        value: value.map(str::to_string),
        effect: Some("NoExecute".into()),
        toleration_seconds: seconds,
    }
}

fn taint<'a>(node: &'a Node, key: &str) -> Option<&'a Taint> {
    node.spec.as_ref()?.taints.iter().find(|t| t.key == key)
}

fn ready(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

#[tokio::test]
async fn a_node_whose_lease_stops_is_tainted_and_its_pods_are_evicted_after_their_toleration() {
    let env = start().await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");

    let node = Node {
        metadata: ObjectMeta::named("n1"),
        ..Default::default()
    };
    nodes.create(&node.with_type_meta()).await.expect("node");
    let status = serde_json::json!({"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "lastHeartbeatTime": Time::now(), "lastTransitionTime": Time::now()}]}});
    nodes
        .patch_status("n1", PatchKind::Merge, &status)
        .await
        .expect("node status");
    let beat = heartbeat(&env.client, "n1");

    for p in [
        pod("short", "n1", vec![unreachable_toleration(None, Some(1))]),
        pod("forever", "n1", vec![unreachable_toleration(None, None)]),
        // The apiserver adds the default 300 s toleration.
        pod("default", "n1", vec![]),
        pod(
            "mismatch",
            "n1",
            vec![unreachable_toleration(Some("x"), Some(100))],
        ),
    ] {
        pods.create(&p).await.expect("pod");
    }

    // Alive for longer than the grace period: nothing happens.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = nodes.get("n1").await.unwrap();
    assert_eq!(ready(&n).as_deref(), Some("True"));
    assert!(taint(&n, nodelifecycle::TAINT_UNREACHABLE).is_none());
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        4
    );

    // The agent goes silent.
    beat.abort();
    let n = eventually("the node to be Unknown and tainted unreachable", || async {
        let n = nodes.get("n1").await.ok()?;
        (ready(&n).as_deref() == Some("Unknown")
            && taint(&n, nodelifecycle::TAINT_UNREACHABLE).is_some())
        .then_some(n)
    })
    .await;
    // Both effects, as Kubernetes: NoExecute evicts, NoSchedule keeps new pods away.
    let taints = &n.spec.as_ref().unwrap().taints;
    for effect in ["NoExecute", "NoSchedule"] {
        let t = taints
            .iter()
            .find(|t| t.key == nodelifecycle::TAINT_UNREACHABLE && t.effect == effect)
            .unwrap_or_else(|| panic!("no unreachable:{effect} taint in {taints:?}"));
        assert!(t.time_added.is_some());
    }
    let c = n
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        c.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );

    eventually(
        "the short-tolerating and mismatched pods to be evicted",
        || async {
            let names: Vec<String> = pods
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .map(|p| p.metadata.name().to_string())
                .collect();
            (names.len() == 2).then_some(names)
        },
    )
    .await;
    let mut left: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.metadata.name().to_string())
        .collect();
    left.sort();
    assert_eq!(left, ["default", "forever"]);

    let events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    eventually("NodeNotReady and TaintManagerEviction events", || async {
        let reasons: Vec<String> = events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect();
        (reasons.iter().any(|r| r == "NodeNotReady")
            && reasons
                .iter()
                .filter(|r| *r == "TaintManagerEviction")
                .count()
                == 2)
            .then_some(())
    })
    .await;

    // The agent comes back: the unreachable taint goes.
    let beat = heartbeat(&env.client, "n1");
    eventually("the unreachable taint to be removed", || async {
        let n = nodes.get("n1").await.ok()?;
        taint(&n, nodelifecycle::TAINT_UNREACHABLE)
            .is_none()
            .then_some(())
    })
    .await;
    beat.abort();
}

#[tokio::test]
async fn cordoned_nodes_get_the_unschedulable_taint() {
    let env = start().await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    let node = Node {
        metadata: ObjectMeta::named("n2"),
        ..Default::default()
    };
    nodes.create(&node.with_type_meta()).await.expect("node");
    let beat = heartbeat(&env.client, "n2");
    let cordon = serde_json::json!({"spec": {"unschedulable": true}});
    nodes
        .patch("n2", PatchKind::Merge, &cordon)
        .await
        .expect("cordon");
    eventually("the unschedulable taint", || async {
        let n = nodes.get("n2").await.ok()?;
        let t = taint(&n, nodelifecycle::TAINT_UNSCHEDULABLE)?;
        (t.effect == "NoSchedule").then_some(())
    })
    .await;
    let uncordon = serde_json::json!({"spec": {"unschedulable": null}});
    nodes
        .patch("n2", PatchKind::Merge, &uncordon)
        .await
        .expect("uncordon");
    eventually("the unschedulable taint to go", || async {
        let n = nodes.get("n2").await.ok()?;
        taint(&n, nodelifecycle::TAINT_UNSCHEDULABLE)
            .is_none()
            .then_some(())
    })
    .await;
    beat.abort();
}
