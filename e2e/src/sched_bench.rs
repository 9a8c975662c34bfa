//! Scheduler throughput: a real in-process apiserver and the real scheduler, kwok-like
//! fake Nodes, and a burst of pods; prints pods/s and how evenly they spread.

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};
use tug_client::{Api, Client, ListParams};
use tug_proto::core::v1::{
    Container, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements,
};
use tug_proto::{ObjectMeta, Quantity};

/// Requests in flight while creating objects.
const CONCURRENCY: usize = 64;
/// Give up when nothing got bound for this long.
const STALL: Duration = Duration::from_secs(120);

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity::parse(v).expect("a valid quantity")))
        .collect()
}

/// A kwok-style node: 32 cpu, 256Gi, 110 pods, Ready, no agent behind it.
fn fake_node(name: &str) -> Node {
    let resources = quantities(&[("cpu", "32"), ("memory", "256Gi"), ("pods", "110")]);
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
    n.metadata.labels.insert("type".into(), "kwok".into());
    n.with_type_meta()
}

fn bench_pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("default", name),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.k8s.io/pause:3.9".into()),
                resources: Some(ResourceRequirements {
                    requests: quantities(&[("cpu", "100m"), ("memory", "128Mi")]),
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

/// Runs the benchmark; the last line printed is `scheduler: pods_per_sec=<x>`.
pub async fn run(nodes: usize, pods: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temp dir for the apiserver")?;
    let server = tug_apiserver::testing::single(dir.path()).await;
    let client = Client::new(
        tug_client::Config::from_kubeconfig_file(&server.kubeconfig)
            .context("reading the test server's kubeconfig")?,
    )?;

    let t = Instant::now();
    let node_api: Api<Node> = Api::all(client.clone());
    futures::stream::iter((0..nodes).map(|i| {
        let api = node_api.clone();
        async move { api.create(&fake_node(&format!("kwok-{i:05}"))).await }
    }))
    .buffer_unordered(CONCURRENCY)
    .try_collect::<Vec<_>>()
    .await
    .context("creating nodes")?;
    println!("created {nodes} nodes in {:.1}s", t.elapsed().as_secs_f64());

    let config = tug_scheduler::Config {
        kubeconfig: Some(server.kubeconfig.clone()),
        leader_elect: false,
        id: "sched-bench".into(),
        ..Default::default()
    };
    let scheduler = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = tug_scheduler::run(config).await {
            eprintln!("scheduler failed: {e}");
        }
    }));

    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rv = pod_api
        .list(&ListParams {
            limit: Some(1),
            ..Default::default()
        })
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut watch = pod_api.watch(&ListParams::default(), &rv).await?;
    let mut watcher = AbortOnDrop(tokio::spawn(async move {
        let mut bound: HashSet<String> = HashSet::new();
        let mut last_progress = Instant::now();
        while bound.len() < pods {
            let ev = match tokio::time::timeout(STALL, watch.next()).await {
                Ok(Some(Ok(ev))) => ev,
                Ok(Some(Err(e))) => bail!("watching pods: {e}"),
                Ok(None) => bail!("the pod watch ended after {} bound", bound.len()),
                Err(_) => bail!(
                    "no pod bound for {STALL:?} ({} of {pods} bound)",
                    bound.len()
                ),
            };
            if ev.object.node_name().is_some()
                && bound.insert(ev.object.metadata.name().to_string())
                && last_progress.elapsed() > Duration::from_secs(5)
            {
                println!("  {} of {pods} bound", bound.len());
                last_progress = Instant::now();
            }
        }
        Ok(Instant::now())
    }));

    // The scheduler needs its caches filled before the burst means anything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = Instant::now();
    futures::stream::iter((0..pods).map(|i| {
        let api = pod_api.clone();
        async move { api.create(&bench_pod(&format!("pod-{i:06}"))).await }
    }))
    .buffer_unordered(CONCURRENCY)
    .try_collect::<Vec<_>>()
    .await
    .context("creating pods")?;
    let created = start.elapsed();
    println!(
        "created {pods} pods in {:.1}s ({:.0} creates/s)",
        created.as_secs_f64(),
        pods as f64 / created.as_secs_f64()
    );
    let done = (&mut watcher.0).await.context("the pod watcher")??;
    let elapsed = done.duration_since(start);
    drop(scheduler);

    let all = pod_api.list_all(&ListParams::default()).await?;
    let mut per_node: BTreeMap<String, usize> =
        (0..nodes).map(|i| (format!("kwok-{i:05}"), 0)).collect();
    for p in &all.items {
        if let Some(n) = p.node_name() {
            *per_node.entry(n.to_string()).or_default() += 1;
        }
    }
    print_distribution(&per_node);
    let rate = pods as f64 / elapsed.as_secs_f64();
    println!(
        "scheduled {pods} pods on {nodes} nodes in {:.2}s",
        elapsed.as_secs_f64()
    );
    println!("scheduler: pods_per_sec={rate:.1}");
    Ok(())
}

fn print_distribution(per_node: &BTreeMap<String, usize>) {
    let counts: Vec<usize> = per_node.values().copied().collect();
    if counts.is_empty() {
        return;
    }
    let n = counts.len() as f64;
    let mean = counts.iter().sum::<usize>() as f64 / n;
    let var = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let min = counts.iter().min().copied().unwrap_or(0);
    let max = counts.iter().max().copied().unwrap_or(0);
    println!(
        "pods per node: min={min} max={max} mean={mean:.2} stddev={:.2}",
        var.sqrt()
    );
    let mut histogram: BTreeMap<usize, usize> = BTreeMap::new();
    for c in &counts {
        *histogram.entry(*c).or_default() += 1;
    }
    let widest = histogram.values().copied().max().unwrap_or(1).max(1);
    for (pods, nodes) in &histogram {
        let bar = "#".repeat((nodes * 50).div_ceil(widest));
        println!("  {pods:>4} pods: {nodes:>6} nodes {bar}");
    }
}

/// Aborts a spawned task when dropped, so an early return stops it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
