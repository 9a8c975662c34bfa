//! The scheduler against a real in-process apiserver with fake Nodes (no agents).

use std::collections::BTreeMap;
use std::time::Duration;
use tug_client::leader::LeaseTiming;
use tug_client::{Api, Client, ListParams};
use tug_proto::core::v1::{
    Affinity, Container, Event, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodAffinityTerm,
    PodAntiAffinity, PodSpec, ResourceRequirements, Taint,
};
use tug_proto::meta::v1::LabelSelector;
use tug_proto::{ObjectMeta, Quantity};
use tug_scheduler::Config;

const CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity::parse(v).unwrap()))
        .collect()
}

fn node(name: &str, cpu: &str, memory: &str) -> Node {
    let resources = quantities(&[("cpu", cpu), ("memory", memory), ("pods", "110")]);
    let mut n = Node {
        metadata: ObjectMeta::named(name),
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            capacity: resources.clone(),
            allocatable: resources,
            conditions: vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    n.metadata
        .labels
        .insert("kubernetes.io/hostname".into(), name.into());
    n.with_type_meta()
}

fn tainted(mut n: Node) -> Node {
    n.spec.as_mut().unwrap().taints.push(Taint {
        key: CONTROL_PLANE.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    });
    n
}

fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("default", name),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("busybox".into()),
                resources: Some(ResourceRequirements {
                    requests: quantities(&[("cpu", cpu), ("memory", memory)]),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .with_type_meta()
}

fn anti_affine(mut p: Pod, app: &str) -> Pod {
    p.metadata.labels.insert("app".into(), app.into());
    p.spec.as_mut().unwrap().affinity = Some(Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: vec![PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: [("app".to_string(), app.to_string())].into(),
                    ..Default::default()
                }),
                topology_key: "kubernetes.io/hostname".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    });
    p
}

/// A server, a client, and a way to stop everything spawned, even on panic.
struct Env {
    client: Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _server: tug_apiserver::testing::TestServer,
    _dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = tug_apiserver::testing::single(dir.path()).await;
        let config = tug_client::Config::from_kubeconfig_file(&server.kubeconfig).unwrap();
        Env {
            client: Client::new(config).unwrap(),
            tasks: Vec::new(),
            _server: server,
            _dir: dir,
        }
    }

    fn start_scheduler(&mut self, config: Config) {
        let client = self.client.clone();
        self.tasks.push(tokio::spawn(async move {
            if let Err(e) = tug_scheduler::run_with_client(client, config).await {
                panic!("scheduler failed: {e}");
            }
        }));
    }

    async fn create_node(&self, n: Node) {
        Api::<Node>::all(self.client.clone())
            .create(&n)
            .await
            .unwrap();
    }

    async fn create_pod(&self, p: Pod) {
        Api::<Pod>::namespaced(self.client.clone(), "default")
            .create(&p)
            .await
            .unwrap();
    }

    async fn node_of(&self, name: &str) -> Option<String> {
        let p = Api::<Pod>::namespaced(self.client.clone(), "default")
            .get(name)
            .await
            .unwrap();
        p.node_name().map(str::to_string)
    }

    /// Waits (generously) until every named pod is bound; returns their nodes.
    async fn bound(&self, names: &[&str]) -> Vec<String> {
        for _ in 0..600 {
            let mut nodes = Vec::new();
            for n in names {
                match self.node_of(n).await {
                    Some(node) => nodes.push(node),
                    None => break,
                }
            }
            if nodes.len() == names.len() {
                return nodes;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pods {names:?} were not all bound");
    }

    async fn events(&self) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), "default")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }
}

fn no_election() -> Config {
    Config {
        leader_elect: false,
        id: "test".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn pods_are_bound_respecting_resources_taints_selectors_and_anti_affinity() {
    let mut env = Env::new().await;
    let mut ssd = node("ssd", "2", "4Gi");
    ssd.metadata.labels.insert("disk".into(), "ssd".into());
    env.create_node(ssd).await;
    env.create_node(node("plain", "2", "4Gi")).await;
    env.create_node(tainted(node("cp", "64", "64Gi"))).await;
    env.start_scheduler(no_election());

    env.create_pod(pod("big-1", "1500m", "1Gi")).await;
    env.create_pod(pod("big-2", "1500m", "1Gi")).await;
    let mut selective = pod("wants-ssd", "100m", "64Mi");
    selective
        .spec
        .as_mut()
        .unwrap()
        .node_selector
        .insert("disk".into(), "ssd".into());
    env.create_pod(selective).await;
    env.create_pod(anti_affine(pod("web-1", "10m", "8Mi"), "web"))
        .await;
    env.create_pod(anti_affine(pod("web-2", "10m", "8Mi"), "web"))
        .await;

    let nodes = env
        .bound(&["big-1", "big-2", "wants-ssd", "web-1", "web-2"])
        .await;
    assert!(
        !nodes.iter().any(|n| n == "cp"),
        "nothing tolerates the control-plane taint: {nodes:?}"
    );
    assert_ne!(nodes[0], nodes[1], "1.5 cpu each cannot share a 2-cpu node");
    assert_eq!(nodes[2], "ssd");
    assert_ne!(nodes[3], nodes[4], "anti-affinity keeps web pods apart");
}

#[tokio::test]
async fn an_unschedulable_pod_is_reported_and_placed_once_a_node_with_room_appears() {
    let mut env = Env::new().await;
    for i in 0..3 {
        env.create_node(node(&format!("small-{i}"), "4", "1Gi"))
            .await;
    }
    for i in 0..2 {
        env.create_node(tainted(node(&format!("cp-{i}"), "4", "64Gi")))
            .await;
    }
    env.start_scheduler(no_election());
    env.create_pod(pod("hungry", "100m", "2Gi")).await;

    let want = "0/5 nodes are available: 2 node(s) had untolerated taint \
                {node-role.kubernetes.io/control-plane: }, 3 Insufficient memory.";
    let mut seen = None;
    for _ in 0..600 {
        seen = env
            .events()
            .await
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedScheduling"));
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let event = seen.expect("a FailedScheduling event");
    assert_eq!(event.message.as_deref(), Some(want));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.involved_object.name.as_deref(), Some("hungry"));
    let mut condition = None;
    for _ in 0..600 {
        let p = Api::<Pod>::namespaced(env.client.clone(), "default")
            .get("hungry")
            .await
            .unwrap();
        condition = p
            .status
            .as_ref()
            .and_then(|s| s.condition("PodScheduled"))
            .cloned();
        if condition.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let condition = condition.expect("PodScheduled condition");
    assert_eq!(condition.status, "False");
    assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(condition.message.as_deref(), Some(want));
    assert_eq!(env.node_of("hungry").await, None);

    env.create_node(node("roomy", "4", "8Gi")).await;
    assert_eq!(env.bound(&["hungry"]).await, ["roomy"]);
}

#[tokio::test]
async fn two_schedulers_with_leader_election_bind_every_pod_once() {
    let mut env = Env::new().await;
    for i in 0..3 {
        env.create_node(node(&format!("n{i}"), "32", "64Gi")).await;
    }
    let timing = LeaseTiming {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
    };
    for id in ["a", "b"] {
        env.start_scheduler(Config {
            leader_elect: true,
            lease_timing: timing,
            id: id.into(),
            ..Default::default()
        });
    }
    let names: Vec<String> = (0..30).map(|i| format!("p{i}")).collect();
    for n in &names {
        env.create_pod(pod(n, "100m", "64Mi")).await;
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    env.bound(&refs).await;
    // Every pod got exactly one Scheduled event, from a single instance.
    let mut scheduled: BTreeMap<String, Vec<(String, i32)>> = BTreeMap::new();
    for _ in 0..100 {
        scheduled.clear();
        for e in env.events().await {
            if e.reason.as_deref() == Some("Scheduled") {
                scheduled
                    .entry(e.involved_object.name.clone().unwrap_or_default())
                    .or_default()
                    .push((e.reporting_instance.clone(), e.count.unwrap_or(0)));
            }
        }
        if scheduled.len() == names.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(scheduled.len(), names.len());
    let instances: std::collections::BTreeSet<&String> =
        scheduled.values().flatten().map(|(i, _)| i).collect();
    assert_eq!(
        instances.len(),
        1,
        "only the leader schedules: {instances:?}"
    );
    for (pod, events) in &scheduled {
        assert_eq!(events.len(), 1, "{pod}: {events:?}");
        assert_eq!(events[0].1, 1, "{pod}: {events:?}");
    }
}
