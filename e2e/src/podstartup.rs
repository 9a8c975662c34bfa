//! `bench podstartup`: a single-node cluster (one control-plane replica process and one
//! `tug-agent` process, both this benchmark binary re-executed), the busybox image
//! pre-imported; N Pods created at once, each timed from its create request to the
//! watch event that shows it Running. Prints p50/p99 and the agent's RSS with all pods
//! running (plus the shims' total), then removes everything it made.

use crate::bench_node::{BenchNode, NodeSpec};
use crate::tugcp::rss_kib;
use anyhow::{bail, Context, Result};
use futures::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tug_client::{Api, DeleteParams};
use tug_proto::core::v1::Pod;

/// The hidden subcommand of the benchmark binary that runs `tug_agent::cli::main`.
pub const AGENT_SUBCOMMAND: &str = crate::bench_node::AGENT_SUBCOMMAND;

const NODE: NodeSpec<'static> = NodeSpec {
    name: "bench-node",
    pod_cidr: "10.252.0.0/24",
    bridge: "tugbench0",
};

/// Which shim the agent uses: a `tug-shim` next to this binary (build it with `cargo
/// build --release -p tug-runtime --bin tug-shim`), else this binary's `shim` subcommand.
fn agent_shim(args: &[String]) -> String {
    let exe = Path::new(&args[0]);
    let beside = exe.with_file_name("tug-shim");
    if beside.is_file() {
        beside.display().to_string()
    } else {
        format!("{} shim (no tug-shim next to it)", exe.display())
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"bench": "podstartup"}},
        "spec": {
            "nodeName": NODE.name,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
                            "command": ["sleep", "3600"]}]
        }
    }))
    .expect("a valid pod")
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    crate::load::percentile(sorted, q)
}

/// Sum of the RSS of the agent's shims (processes whose command line names the agent's
/// root dir), in KiB.
fn shims_rss_kib(root: &Path) -> u64 {
    let root = root.to_string_lossy().to_string();
    let mut total = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("shim") && cmd.contains(&root) {
            total += rss_kib(pid).unwrap_or(0);
        }
    }
    total
}

pub async fn run(exe: &Path, pods: usize) -> Result<()> {
    let node = BenchNode::start(exe, NODE).await?;
    let result = measure(&node, pods).await;
    node.stop().await;
    result
}

async fn measure(node: &BenchNode, pods: usize) -> Result<()> {
    let client = node.client.clone();
    println!("shim: {}", agent_shim(node.agent_args()));
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Warm-up: the first pod pays for unpacking the image's layer.
    api.create(&pod("warmup")).await?;
    wait_running(&api, "warmup").await?;
    api.delete(
        "warmup",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await?;

    let list = api.list(&Default::default()).await?;
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    let mut events = std::pin::pin!(api.watch(&Default::default(), &rv).await?);
    let mut created: HashMap<String, Instant> = HashMap::new();
    let names: Vec<String> = (0..pods).map(|i| format!("p{i:03}")).collect();
    let creates = futures::future::join_all(names.iter().map(|n| {
        let api = api.clone();
        let n = n.clone();
        async move {
            let t = Instant::now();
            api.create(&pod(&n)).await.map(|_| (n, t))
        }
    }))
    .await;
    for c in creates {
        let (n, t) = c?;
        created.insert(n, t);
    }
    let mut latencies: Vec<Duration> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while seen.len() < pods {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .context("pods not Running within 120 s")?;
        let Some(ev) = ev else {
            bail!("the watch ended")
        };
        let ev = ev?;
        if ev.type_ == "BOOKMARK" {
            continue;
        }
        let p = &ev.object;
        let name = p.metadata.name.clone().unwrap_or_default();
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if running && !seen.contains(&name) {
            if let Some(t) = created.get(&name) {
                latencies.push(t.elapsed());
                seen.insert(name);
            }
        }
    }
    latencies.sort();
    let rss = rss_kib(node.agent_pid()).unwrap_or(0);
    let shims = shims_rss_kib(&node.root);
    println!(
        "pods={pods} min_ms={:.0} max_ms={:.0}",
        latencies[0].as_secs_f64() * 1000.0,
        latencies[latencies.len() - 1].as_secs_f64() * 1000.0
    );
    println!(
        "agent_rss_mib={:.1} shims_rss_mib={:.1} (with {pods} pods running)",
        rss as f64 / 1024.0,
        shims as f64 / 1024.0
    );
    println!(
        "podstartup: p50_ms={:.0} p99_ms={:.0}",
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
    Ok(())
}

async fn wait_running(api: &Api<Pod>, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = api.get(name).await?;
        if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("pod {name} not Running in 60 s: {:?}", p.status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
