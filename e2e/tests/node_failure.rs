//! The control plane heals around a dead node: a real apiserver, scheduler and
//! controllers, and fake nodes (Node objects plus Leases, no agent) whose "agent" is a
//! task of this test that renews the Lease and reports pods Running and Ready.

use std::time::{Duration, Instant};

use serde_json::json;
use tug_client::{Api, Client, ListParams, PatchKind};
use tug_proto::apps::v1::ReplicaSet;
use tug_proto::coordination::v1::Lease;
use tug_proto::core::v1::{Node, Pod};

fn node(name: &str) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": tug_proto::Time::now()}],
        },
    }))
    .unwrap()
}

/// Plays one node's agent until aborted: renews its Lease and marks its pods ready.
fn fake_agent(client: Client, name: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let pods: Api<Pod> = Api::all(client.clone());
        let lease: Lease = serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                     "renewTime": tug_proto::meta::v1::MicroTime::now()},
        }))
        .unwrap();
        let _ = leases.create(&lease).await;
        loop {
            let renew = json!({"spec": {"renewTime": tug_proto::meta::v1::MicroTime::now()}});
            let _ = leases.patch(name, PatchKind::Merge, &renew).await;
            let mine = ListParams::default().fields(&format!("spec.nodeName={name}"));
            if let Ok(list) = pods.list(&mine).await {
                for p in list.items {
                    let running =
                        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                    if running || p.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let ns = p.metadata.namespace().to_string();
                    let status = json!({"status": {
                        "phase": "Running", "podIP": "10.244.0.10",
                        "conditions": [{"type": "Ready", "status": "True"}],
                    }});
                    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                    let _ = api
                        .patch_status(
                            &p.metadata.name.clone().unwrap_or_default(),
                            PatchKind::Merge,
                            &status,
                        )
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pods of the `web` ReplicaSet that are not being deleted, with their nodes.
async fn live_web_pods(pods: &Api<Pod>) -> Vec<(String, String)> {
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            (p.metadata.name.unwrap_or_default(), node)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_a_node_whose_lease_stops_are_replaced_on_another_node() {
    let dir = tempfile::tempdir().unwrap();
    let server = tug_apiserver::testing::single(dir.path()).await;
    let config = tug_client::Config::from_kubeconfig_file(&server.kubeconfig).unwrap();
    let client = Client::new(config).unwrap();

    let scheduler = tokio::spawn(tug_scheduler::run_with_client(
        client.clone(),
        tug_scheduler::Config {
            leader_elect: false,
            ..Default::default()
        },
    ));
    let mut controllers = tug_controllers::Config::new(client.clone());
    controllers.leader_elect = false;
    controllers.options.node_monitor_grace_period = Duration::from_secs(3);
    controllers.options.node_monitor_period = Duration::from_millis(500);
    let controllers = tokio::spawn(tug_controllers::run(controllers));

    let nodes: Api<Node> = Api::all(client.clone());
    nodes.create(&node("node-a")).await.unwrap();
    let agent_a = fake_agent(client.clone(), "node-a");

    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "site", "image": "site:1",
                                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}],
                    // Leave an unreachable node after 1 s instead of the default 300 s.
                    "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                     "effect": "NoExecute", "tolerationSeconds": 1}],
                },
            },
        },
    }))
    .unwrap();
    Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .create(&rs)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let first = eventually(
        "2 pods bound to node-a",
        Duration::from_secs(60),
        || async {
            let live = live_web_pods(&pods).await;
            (live.len() == 2 && live.iter().all(|(_, n)| n == "node-a")).then_some(live)
        },
    )
    .await;

    // node-b joins; node-a's agent dies.
    nodes.create(&node("node-b")).await.unwrap();
    let agent_b = fake_agent(client.clone(), "node-b");
    agent_a.abort();

    let replaced = eventually(
        "2 replacement pods on node-b",
        Duration::from_secs(90),
        || async {
            let live = live_web_pods(&pods).await;
            (live.len() == 2 && live.iter().all(|(_, n)| n == "node-b")).then_some(live)
        },
    )
    .await;
    for (name, _) in &first {
        assert!(
            !replaced.iter().any(|(n, _)| n == name),
            "{name} was on the dead node and must have been replaced"
        );
    }
    let a = nodes.get("node-a").await.unwrap();
    let taints = a.spec.unwrap_or_default().taints;
    assert!(
        taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute"),
        "{taints:?}"
    );

    agent_b.abort();
    scheduler.abort();
    controllers.abort();
    server.shutdown().await;
}
