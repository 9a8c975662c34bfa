//! Services through the agent's proxy (nftables rules) and DNS, on this host: a real
//! apiserver and agent (the harness), busybox httpd backends that answer with their
//! hostname, and Endpoints written by the test (no endpoints controller here).

mod harness;

use harness::{is_ready, is_running, TestNode};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use tug_agent::proxy::table_name;
use tug_client::Api;
use tug_proto::core::v1::{Endpoints, Pod, Service};

fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("podIP")
}

/// A ClusterIP and a node port no other test process on this host uses (every test's
/// table lives in the host's network namespace).
/// The harness's node, with image GC off: this host's disk is above the 85% threshold
/// (counting root-reserved blocks), which would collect the preloaded demo images.
async fn start_node() -> TestNode {
    TestNode::start_with(tug_agent::agent::Options {
        image_gc_high: 2.0,
        ..harness::fast_options()
    })
    .await
}

/// `salt` tells apart the tests of one process.
fn unique_ids(salt: u32) -> (String, u16) {
    let id = std::process::id();
    (
        format!("10.{}.{}.{}", 100 + salt, (id >> 8) & 0xff, id & 0xff),
        30000 + ((id % 1300) * 2 + salt) as u16,
    )
}

async fn exec(node: &TestNode, pod: &str, cmd: &[&str]) -> (i32, String) {
    let agent = node.agent.as_ref().expect("agent");
    let p = agent.ctx.index.get("default", pod).expect("indexed pod");
    let id = p
        .running
        .values()
        .next()
        .expect("running container")
        .clone();
    let mut proc = agent
        .ctx
        .runtime
        .exec(
            &id,
            tug_runtime::ExecConfig {
                args: cmd.iter().map(|s| s.to_string()).collect(),
                env: vec![],
                tty: false,
                stdin: false,
            },
        )
        .await
        .expect("exec");
    let mut out = String::new();
    if let Some(mut stdout) = proc.stdout.take() {
        use tokio::io::AsyncReadExt;
        let _ = stdout.read_to_string(&mut out).await;
    }
    let code = proc.wait().await.expect("wait");
    (code, out)
}

/// The body's last line: the backend's hostname.
fn backend(body: &str) -> String {
    body.trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

async fn create_backends(node: &TestNode, names: &[&str]) -> Vec<String> {
    for name in names {
        node.create_pod(
            name,
            json!({"hostname": name, "containers": [{"name": "web", "image": "busybox", "imagePullPolicy": "Never",
                "command": ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]}]}),
        )
        .await;
    }
    let mut ips = Vec::new();
    for name in names {
        let p = node
            .wait_pod(name, "Running and Ready", |p| is_running(p) && is_ready(p))
            .await;
        ips.push(pod_ip(&p));
    }
    ips
}

async fn set_endpoints(node: &TestNode, name: &str, ips: &[String]) {
    let api: Api<Endpoints> = Api::namespaced(node.client.clone(), "default");
    let addresses: Vec<_> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    let mut ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "subsets": if ips.is_empty() { json!([]) } else { json!([{"addresses": addresses, "ports": [{"name": "http", "port": 8080}]}]) },
    }))
    .unwrap();
    match api.get_opt(name).await.expect("get endpoints") {
        Some(old) => {
            ep.metadata.resource_version = old.metadata.resource_version;
            api.replace(name, &ep).await.expect("replace endpoints");
        }
        None => {
            api.create(&ep).await.expect("create endpoints");
        }
    }
}

/// GETs `addr` from the node until the set of backends answering is `want` (endpoint
/// changes take a sync to apply), over at most 20 s.
async fn wait_backends(addr: &str, want: &BTreeSet<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = BTreeSet::new();
        for _ in 0..40 {
            if let Ok(body) = harness::http_get(addr).await {
                seen.insert(backend(&body));
            }
        }
        if &seen == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{addr}: backends {seen:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_ip_balances_over_ready_endpoints_from_the_node_and_from_pods() {
    let node = start_node().await;
    let (cluster_ip, node_port) = unique_ids(0);
    let names = ["web-a", "web-b", "web-c"];
    let ips = create_backends(&node, &names).await;
    node.create_pod(
        "client",
        json!({"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}),
    )
    .await;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "NodePort", "clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": node_port}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(node.client.clone(), "default")
        .create(&svc)
        .await
        .expect("create service");
    set_endpoints(&node, "web", &ips).await;
    let all: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    let vip = format!("{cluster_ip}:80");

    // From the node: every backend answers on the ClusterIP and on the node port.
    wait_backends(&vip, &all).await;
    wait_backends(&format!("127.0.0.1:{node_port}"), &all).await;

    // From a pod.
    node.wait_pod("client", "Running", is_running).await;
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        let (code, out) = exec(
            &node,
            "client",
            &["timeout", "5", "wget", "-qO-", &format!("http://{vip}/")],
        )
        .await;
        assert_eq!(code, 0, "wget from the client pod: {out}");
        seen.insert(backend(&out));
    }
    assert_eq!(seen, all, "backends reached from a pod");

    // Hairpin: a backend reaching the service that has only itself behind it.
    set_endpoints(&node, "web", &ips[..1]).await;
    wait_backends(&vip, &BTreeSet::from(["web-a".to_string()])).await;
    let (code, out) = exec(
        &node,
        "web-a",
        &["timeout", "5", "wget", "-qO-", &format!("http://{vip}/")],
    )
    .await;
    assert_eq!(
        (code, backend(&out).as_str()),
        (0, "web-a"),
        "hairpin: {out}"
    );

    // No endpoints: refused at once, not a hang.
    set_endpoints(&node, "web", &[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match harness::http_get(&vip).await {
            Err(e) if e.contains("refused") => break,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "a service without endpoints must refuse: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state = node.agent.as_ref().unwrap().proxy.state();
    assert!(state.syncs >= 3 && state.last_error.is_none(), "{state:?}");
    // The agent's network cleanup removes the proxy's rules with the node's table.
    let table = table_name(&node.name);
    node.shutdown().await;
    let listing = tug_net::command::run("nft", &["list", "table", "ip", &table], None);
    assert!(listing.is_err(), "table {table} left: {listing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ip_affinity_keeps_a_client_on_one_backend() {
    let node = start_node().await;
    let (cluster_ip, _) = unique_ids(1);
    let names = ["sticky-a", "sticky-b"];
    let ips = create_backends(&node, &names).await;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "sticky", "namespace": "default"},
        "spec": {"clusterIP": cluster_ip, "sessionAffinity": "ClientIP",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(node.client.clone(), "default")
        .create(&svc)
        .await
        .expect("create service");
    set_endpoints(&node, "sticky", &ips).await;
    let vip = format!("{cluster_ip}:80");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let first = loop {
        if let Ok(body) = harness::http_get(&vip).await {
            break backend(&body);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{vip} never answered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for _ in 0..20 {
        let body = harness::http_get(&vip).await.expect("get");
        assert_eq!(backend(&body), first, "affinity broken");
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_services_by_name_through_the_nodes_dns() {
    // The agent's DNS server listens on the pod bridge's gateway, which is every pod's
    // nameserver.
    let node = start_node().await;
    let (cluster_ip, _) = unique_ids(2);
    let ips = create_backends(&node, &["named-a"]).await;
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "named", "namespace": "default"},
        "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(node.client.clone(), "default")
        .create(&svc)
        .await
        .expect("create service");
    set_endpoints(&node, "named", &ips).await;
    wait_backends(
        &format!("{cluster_ip}:80"),
        &BTreeSet::from(["named-a".to_string()]),
    )
    .await;
    node.create_pod(
        "asker",
        json!({"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}),
    )
    .await;
    node.wait_pod("asker", "Running", is_running).await;
    for url in [
        "http://named.default.svc.cluster.local/",
        "http://named/",
        "http://named.default/",
    ] {
        let (code, out) = exec(&node, "asker", &["timeout", "5", "wget", "-qO-", url]).await;
        assert_eq!(
            (code, backend(&out).as_str()),
            (0, "named-a"),
            "{url}: {out}"
        );
    }
    let (code, out) = exec(
        &node,
        "asker",
        &["nslookup", "nothing.default.svc.cluster.local"],
    )
    .await;
    assert_ne!(code, 0, "NXDOMAIN: {out}");
    node.shutdown().await;
}
