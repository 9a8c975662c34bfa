//! `bench service`: requests/s and p99 from inside a pod to a ClusterIP Service with 3
//! backends, against the same load sent straight to one backend's pod IP: the cost of
//! the proxy's nftables DNAT path. One node (a control-plane replica process and a
//! `tug-agent` process, both this binary re-executed; the agent's own Service proxy
//! programs the rules in the host's network namespace), 3 `hello` pods and a busybox
//! client pod. The load generator is this binary again (`service-load`), run with
//! `nsenter --net=<client pod netns>`: closed loop, several connections, a NEW TCP
//! connection per request (`Connection: close`), so every request goes through conntrack
//! and, for the ClusterIP, the DNAT rules.
//! Last line: `service: direct_rps=<x> clusterip_rps=<y> ratio=<y/x>`.

use crate::bench_node::{BenchNode, NodeSpec};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tug_client::Api;
use tug_proto::core::v1::{Endpoints, Pod, Service};

/// The hidden subcommand running the load generator (handled before clap).
pub const LOAD_SUBCOMMAND: &str = "service-load";
const NODE: NodeSpec<'static> = NodeSpec {
    name: "svc-bench",
    pod_cidr: "10.253.0.0/24",
    bridge: "tugsvcb0",
};

fn pod(name: &str, image: &str, command: Option<&[&str]>) -> Pod {
    let mut c = json!({"name": "c", "image": image, "imagePullPolicy": "Never"});
    if let Some(cmd) = command {
        c["command"] = json!(cmd);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"bench": "service"}},
        "spec": {"nodeName": NODE.name, "terminationGracePeriodSeconds": 1, "containers": [c]}
    }))
    .expect("a valid pod")
}

/// One load run's result, as printed by `service-load`.
#[derive(Debug, Clone, Copy)]
struct LoadResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn parse_load(out: &str) -> Option<LoadResult> {
    let line = out.lines().rev().find(|l| l.starts_with("load:"))?;
    let field = |k: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))?
            .parse()
            .ok()
    };
    Some(LoadResult {
        rps: field("rps")?,
        p50_ms: field("p50_ms")?,
        p99_ms: field("p99_ms")?,
        errors: field("errors")? as u64,
    })
}

pub async fn run(exe: &Path, secs: u64, conns: usize) -> Result<()> {
    let node = BenchNode::start(exe, NODE).await?;
    let result = measure(exe, &node.client, secs, conns).await;
    node.stop().await;
    result
}

/// Waits until the agent's proxy has programmed `endpoints` backends for the `web`
/// Service's port (counted in its service chain in the node's nftables table).
async fn wait_programmed(endpoints: usize) -> Result<()> {
    let table = tug_agent::proxy::table_name(NODE.name);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listing = Command::new("nft")
            .args(["list", "chain", "ip", &table, "svc-default/web/tcp/http"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let programmed = listing.matches("goto ep-default/web/tcp/http/").count();
        if programmed == endpoints {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the agent's proxy did not program {endpoints} endpoint(s) for web: {listing}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_pod(api: &Api<Pod>, name: &str) -> Result<Pod> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let p = api.get(name).await?;
        let ready = p.status.as_ref().is_some_and(|s| {
            s.pod_ip.is_some()
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready {
            return Ok(p);
        }
        if Instant::now() > deadline {
            bail!("pod {name} not Ready in 90 s: {:?}", p.status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn measure(exe: &Path, client: &tug_client::Client, secs: u64, conns: usize) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let backends = ["web-0", "web-1", "web-2"];
    for b in backends {
        pods.create(&pod(b, "hello", None)).await?;
    }
    pods.create(&pod("load", "busybox", Some(&["sleep", "3600"])))
        .await?;
    let mut ips = Vec::new();
    for b in backends {
        let p = wait_pod(&pods, b).await?;
        ips.push(p.status.and_then(|s| s.pod_ip).unwrap_or_default());
    }
    let load = wait_pod(&pods, "load").await?;
    let uid = load.metadata.uid.clone().unwrap_or_default();
    // tug-net's pod namespace name (tug_net::names::netns_name).
    let netns = format!("/run/netns/tug-{}_{uid}", NODE.name);

    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))?;
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .create(&svc)
        .await?;
    let cluster_ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the apiserver allocated no clusterIP")?;
    // No endpoints controller runs here: write the Endpoints it would.
    let addresses: Vec<_> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": addresses, "ports": [{"name": "http", "port": 8080}]}],
    }))?;
    Api::<Endpoints>::namespaced(client.clone(), "default")
        .create(&ep)
        .await?;
    wait_programmed(3).await?;
    println!("node ready, 3 backends {ips:?} behind {cluster_ip}:80, load from pod netns {netns}");
    let direct = format!("{}:8080", ips[0]);
    let vip = format!("{cluster_ip}:80");
    let run_load = |name: &str, addr: &str| -> Result<LoadResult> {
        let out = Command::new("nsenter")
            .arg(format!("--net={netns}"))
            .arg(exe)
            .args([LOAD_SUBCOMMAND, addr, &secs.to_string(), &conns.to_string()])
            .output()
            .context("running nsenter (util-linux)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let r = parse_load(&text).with_context(|| {
            format!(
                "the load generator for {addr} failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        println!(
            "{name}: {addr} rps={:.0} p50_ms={:.2} p99_ms={:.2} errors={} (conns={conns}, {secs}s, new connection per request)",
            r.rps, r.p50_ms, r.p99_ms, r.errors
        );
        Ok(r)
    };
    let results = [run_load("direct", &direct)?, run_load("clusterip", &vip)?];
    // The NAT path alone: the same ClusterIP with only the backend measured directly.
    let mut one: Endpoints = Api::<Endpoints>::namespaced(client.clone(), "default")
        .get("web")
        .await?;
    one.subsets[0].addresses.truncate(1);
    Api::<Endpoints>::namespaced(client.clone(), "default")
        .replace("web", &one)
        .await?;
    wait_programmed(1).await?;
    run_load("clusterip_1_backend", &vip)?;
    let (d, c) = (results[0], results[1]);
    println!(
        "service: direct_rps={:.0} clusterip_rps={:.0} ratio={:.2}",
        d.rps,
        c.rps,
        if d.rps > 0.0 { c.rps / d.rps } else { 0.0 }
    );
    Ok(())
}

/// `service-load <addr> <secs> <conns>`: `conns` threads, each sending `GET /` on a new
/// connection per request until `secs` passed. Prints
/// `load: requests=N errors=E rps=X p50_ms=Y p99_ms=Z`. Returns the exit code.
pub fn load_main(args: &[std::ffi::OsString]) -> i32 {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().to_string())
        .collect();
    let (Some(addr), Some(secs), Some(conns)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|a| a.parse::<u64>().ok()),
        args.get(2).and_then(|a| a.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: {LOAD_SUBCOMMAND} <ip:port> <seconds> <connections>");
        return 2;
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..conns.max(1))
        .map(|_| {
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut buf = Vec::with_capacity(1024);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match request(addr, &mut buf) {
                        Ok(()) => lat.push(t.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let started = deadline - Duration::from_secs(secs);
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        if let Ok((l, e)) = w.join() {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    if all.is_empty() {
        println!("load: requests=0 errors={errors} rps=0 p50_ms=0 p99_ms=0");
        return 1;
    }
    println!(
        "load: requests={} errors={errors} rps={:.1} p50_ms={:.3} p99_ms={:.3}",
        all.len(),
        all.len() as f64 / elapsed,
        crate::load::percentile(&all, 0.50).as_secs_f64() * 1000.0,
        crate::load::percentile(&all, 0.99).as_secs_f64() * 1000.0
    );
    0
}

fn request(addr: SocketAddr, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_nodelay(true)?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")?;
    buf.clear();
    s.read_to_end(buf)?;
    if buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200") {
        Ok(())
    } else {
        Err(std::io::Error::other("not a 200 answer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_output_parses() {
        let r = parse_load("noise\nload: requests=10 errors=1 rps=2000.5 p50_ms=0.4 p99_ms=1.25\n")
            .unwrap();
        assert_eq!((r.rps, r.p99_ms, r.errors), (2000.5, 1.25, 1));
        assert!(parse_load("nothing").is_none());
    }
}
