//! `tug cluster` end to end (root only; skipped otherwise): real node namespaces, real
//! processes and containers. Each test uses its own cluster name, as tests run in
//! parallel processes.

use std::process::Command;
use std::time::Duration;

use tug_client::Api;
use tug_e2e::cluster::{bin_dir, is_root, Cluster, Options};
use tug_proto::core::v1::{Node, Pod};

fn skip() -> bool {
    if !is_root() {
        eprintln!("skipping: `tug cluster` needs root");
        return true;
    }
    false
}

async fn wait_pod_running(pods: &Api<Pod>, name: &str, timeout: Duration) -> Pod {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let pod = pods.get(name).await.expect("reading the pod");
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        if phase.as_deref() == Some("Running") {
            return pod;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pod {name} is not Running after {timeout:?}: {:?}",
            pod.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_plus_one_cluster_runs_a_pod_on_its_worker_survives_a_worker_stop_and_deletes_without_a_trace(
) {
    if skip() {
        return;
    }
    let mut opts = Options::new("e2e-basic", 1, 1);
    // Agents renew their Lease every 10 s: a grace above that, so only a stopped node
    // turns NotReady, and soon.
    opts.controllers_args = vec![
        "--node-monitor-grace-period=15s".into(),
        "--node-monitor-period=1s".into(),
    ];
    let cluster = Cluster::create(&opts).expect("creating the cluster");
    assert_eq!(cluster.control_planes().len(), 1);
    let worker = cluster.workers()[0].clone();
    assert_eq!(worker.name, "e2e-basic-worker");
    let client = cluster.client().unwrap();

    // Both nodes are Ready, each with its own IP and hostname.
    let nodes: Api<Node> = Api::all(client.clone());
    for n in cluster.nodes() {
        cluster
            .wait_node_ready(&n.name, true, Duration::from_secs(30))
            .await
            .unwrap();
        let node = nodes.get(&n.name).await.unwrap();
        let addrs = node.status.unwrap().addresses;
        let addr = |t: &str| {
            addrs
                .iter()
                .find(|a| a.type_ == t)
                .map(|a| a.address.clone())
        };
        assert_eq!(addr("InternalIP"), Some(n.ip.to_string()), "{}", n.name);
        assert_eq!(addr("Hostname"), Some(n.name.clone()), "{}", n.name);
    }

    // A pod lands on the worker (the control plane is tainted) and runs.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "sleeper"},
        "spec": {"containers": [{
            "name": "sleep", "image": "busybox", "imagePullPolicy": "Never",
            "command": ["sleep", "3600"]
        }]}
    }))
    .unwrap();
    pods.create(&pod).await.expect("creating the pod");
    let running = wait_pod_running(&pods, "sleeper", Duration::from_secs(60)).await;
    assert_eq!(
        running.spec.as_ref().and_then(|s| s.node_name.clone()),
        Some(worker.name.clone())
    );

    // The failure drill: the stopped worker goes NotReady, and Ready again when started;
    // its agent re-adopts the pod.
    cluster.stop_node(&worker.name).unwrap();
    cluster
        .wait_node_ready(&worker.name, false, Duration::from_secs(40))
        .await
        .unwrap();
    cluster.start_node(&worker.name).unwrap();
    cluster
        .wait_node_ready(&worker.name, true, Duration::from_secs(30))
        .await
        .unwrap();
    wait_pod_running(&pods, "sleeper", Duration::from_secs(30)).await;

    let footprint = cluster.footprint();
    cluster.delete().expect("deleting the cluster");
    let left = footprint.leftovers();
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn two_clusters_run_side_by_side_and_a_failed_create_is_removed_again() {
    if skip() {
        return;
    }
    let a = Cluster::create(&Options::new("e2e-side-a", 1, 0)).expect("creating cluster a");
    let b = Cluster::create(&Options::new("e2e-side-b", 1, 0)).expect("creating cluster b");
    let (ip_a, ip_b) = (a.nodes()[0].ip, b.nodes()[0].ip);
    assert_ne!(ip_a.octets()[2], ip_b.octets()[2], "distinct subnets");
    assert_ne!(a.bridge(), b.bridge());
    for c in [&a, &b] {
        let out = c.tug(&["get", "nodes"]).unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("{}-control-plane", c.name())),
            "{text}"
        );
    }
    let tug = bin_dir().unwrap().join("tug");
    let list = Command::new(&tug)
        .args(["cluster", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("e2e-side-a") && text.contains("e2e-side-b"),
        "{text}"
    );
    let kc = Command::new(&tug)
        .args(["cluster", "kubeconfig", "--name", "e2e-side-a"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&kc.stdout).trim(),
        a.kubeconfig().display().to_string()
    );
    let (fa, fb) = (a.footprint(), b.footprint());
    a.delete().unwrap();
    assert!(fa.leftovers().is_empty(), "{:#?}", fa.leftovers());
    // Deleting a leaves b alone.
    let out = b.tug(&["get", "nodes"]).unwrap();
    assert!(out.status.success(), "{out:?}");
    b.delete().unwrap();
    assert!(fb.leftovers().is_empty(), "{:#?}", fb.leftovers());

    // An agent that cannot start fails create; with --retain the pieces stay, and
    // delete removes them (twice: the second run finds nothing to do).
    let out = Command::new(&tug)
        .args([
            "cluster",
            "create",
            "--name",
            "e2e-broken",
            "--retain",
            "--wait",
            "20",
        ])
        .arg("--agent-arg=--no-such-flag")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("agent on node e2e-broken-control-plane exited"),
        "{stderr}"
    );
    let broken = Cluster::adopt("e2e-broken", None).expect("the retained cluster");
    let fp = broken.footprint();
    assert!(!fp.leftovers().is_empty());
    broken.delete().unwrap();
    assert!(fp.leftovers().is_empty(), "{:#?}", fp.leftovers());
    let again = Command::new(&tug)
        .args(["cluster", "delete", "--name", "e2e-broken"])
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_control_planes_the_api_keeps_answering_when_one_control_plane_stops() {
    if skip() {
        return;
    }
    let cluster = Cluster::create(&Options::new("e2e-ha", 3, 0)).expect("creating the cluster");
    assert_eq!(cluster.control_planes().len(), 3);
    let first = cluster.control_planes()[0].name.clone();
    assert!(cluster.node_kubeconfig(&first).unwrap().exists());
    cluster.stop_node(&first).unwrap();
    // Through the admin kubeconfig (the load balancer): reads and writes still work.
    let ns: tug_proto::core::v1::Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "written-while-down"}
    }))
    .unwrap();
    let client = cluster.client().unwrap();
    let namespaces = Api::<tug_proto::core::v1::Namespace>::all(client.clone());
    // While the remaining replicas elect a leader a write may time out (504: "may or may
    // not have been applied", as with etcd): retry, and accept AlreadyExists.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match namespaces.create(&ns).await {
            Ok(_) => break,
            Err(e) if e.is_already_exists() => break,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "a write with one control plane down: {e}"
                );
                eprintln!("write failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let out = cluster.tug(&["get", "nodes"]).unwrap();
    assert!(out.status.success(), "{out:?}");
    cluster.start_node(&first).unwrap();
    cluster
        .wait_node_ready(&first, true, Duration::from_secs(30))
        .await
        .unwrap();
    let footprint = cluster.footprint();
    cluster.delete().unwrap();
    assert!(
        footprint.leftovers().is_empty(),
        "{:#?}",
        footprint.leftovers()
    );
}
