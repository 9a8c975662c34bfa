//! `bench`: tug's benchmark programs. `store` measures create throughput of a 3-replica
//! control plane against a 3-member etcd; `memory` measures one replica's RSS holding
//! many Pods. The hidden `replica` subcommand is one control-plane replica process.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Parser, Subcommand};
use rand::{Rng, SeedableRng};
use tug_client::Api;
use tug_e2e::etcd::{etcd_binary, EtcdCluster};
use tug_e2e::load::{self, Report};
use tug_e2e::tugcp::{self, ControlPlane, ReplicaArgs};
use tug_proto::core::v1::{ConfigMap, Namespace, Pod};
use tug_proto::meta::v1::{List, ObjectMeta};

/// Same allocator as `tug-apiserver`: the benchmark's replicas run in this binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "tug benchmarks: store throughput against etcd, apiserver memory, scheduling")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create throughput of a tug control plane, then of etcd, under the same load.
    Store(StoreArgs),
    /// RSS of one tug replica before and after creating and listing many Pods.
    Memory(MemoryArgs),
    /// Scheduling throughput: simulated Nodes, Pods with requests, the real scheduler.
    Scheduler(SchedulerArgs),
    /// One control-plane replica (started by the two benchmarks themselves).
    #[command(name = tugcp::REPLICA_SUBCOMMAND, hide = true)]
    Replica(ReplicaArgs),
    /// Container run+wait+remove latency: tug's shim + libcontainer against runc.
    Runtime(RuntimeArgs),
    /// `tug cluster create` to all nodes Ready, then `tug cluster delete` (needs root and
    /// release builds of tug and the component binaries).
    Cluster(ClusterBenchArgs),
    /// Time from Pod create to Running (seen through watch) on a one-node cluster.
    Podstartup(PodstartupArgs),
    /// Requests/s and p99 from a pod to a 3-backend ClusterIP vs one backend's pod IP.
    Service(ServiceArgs),
    /// The node agent (started by the podstartup benchmark; handled before clap).
    #[command(hide = true)]
    Agent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The container shim (started by the runtime benchmark; handled before clap).
    #[command(hide = true)]
    Shim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Args, Debug)]
struct ClusterBenchArgs {
    #[arg(long, default_value_t = 3)]
    control_planes: usize,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The cluster's name.
    #[arg(long, default_value = "tug-bench")]
    name: String,
}

#[derive(Args, Debug)]
struct RuntimeArgs {
    /// Containers run through each runtime.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// The runc binary to compare with.
    #[arg(long, default_value = "runc")]
    runc: PathBuf,
}

#[derive(Args, Debug)]
struct StoreArgs {
    /// Concurrent clients of each run, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64])]
    clients: Vec<usize>,
    /// Operations of each run, comma separated, one per --clients entry.
    #[arg(long, value_delimiter = ',', default_values_t = [2000u64, 10000, 20000])]
    ops: Vec<u64>,
    /// Upper bound on each run's duration; a run cut short reports what it did.
    #[arg(long, default_value_t = 90)]
    deadline_secs: u64,
    /// Replicas of the tug control plane and members of the etcd cluster.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Size of each written value (the ConfigMap's `data.value`, the etcd value).
    #[arg(long, default_value_t = 1024)]
    value_bytes: usize,
    /// Skip the etcd half.
    #[arg(long)]
    no_etcd: bool,
}

#[derive(Args, Debug)]
struct MemoryArgs {
    /// Pods to create.
    #[arg(long, default_value_t = 10_000)]
    pods: u64,
    /// Concurrent clients creating them.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Namespaces the Pods are spread over.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// Upper bound on the creation phase.
    #[arg(long, default_value_t = 600)]
    deadline_secs: u64,
    /// Pause before measuring RSS after the creates, so background work settles.
    #[arg(long, default_value_t = 3)]
    settle_secs: u64,
}

#[derive(Args, Debug)]
struct ServiceArgs {
    /// Seconds of load per target.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 4)]
    conns: usize,
}

#[derive(Args, Debug)]
struct PodstartupArgs {
    /// Pods created at once.
    #[arg(long, default_value_t = 50)]
    pods: usize,
}

#[derive(Args, Debug)]
struct SchedulerArgs {
    /// Simulated nodes (Node objects only, like kwok).
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods to create and schedule.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
}

fn main() -> Result<()> {
    // The container shim runs libcontainer, which must not run in a multi-threaded
    // process: it takes over before the tokio runtime exists.
    tug_runtime::shim::run_if_invoked("shim");
    // The node agent of `podstartup` (this binary re-executed), with its own runtime.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args
        .first()
        .is_some_and(|a| a == tug_e2e::podstartup::AGENT_SUBCOMMAND)
    {
        std::process::exit(tug_agent::cli::main(args[1..].to_vec()));
    }
    // The load generator of `service`, run inside a pod's network namespace.
    if args
        .first()
        .is_some_and(|a| a == tug_e2e::service_bench::LOAD_SUBCOMMAND)
    {
        std::process::exit(tug_e2e::service_bench::load_main(&args[1..]));
    }
    async_main()
}

#[tokio::main]
async fn async_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Replica(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "warn".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            tugcp::run_replica(args).await?;
            Ok(())
        }
        Cmd::Store(args) => until_interrupted(store(args)).await,
        Cmd::Memory(args) => until_interrupted(memory(args)).await,
        Cmd::Scheduler(args) => {
            until_interrupted(tug_e2e::sched_bench::run(args.nodes, args.pods)).await
        }
        Cmd::Runtime(args) => {
            let shim = tug_runtime::ShimCommand {
                program: self_exe()?,
                args: vec!["shim".into()],
            };
            until_interrupted(tug_e2e::runtime_bench::run(args.runs, shim, args.runc)).await
        }
        Cmd::Cluster(args) => cluster_bench(args),
        Cmd::Shim { .. } => bail!("the shim subcommand runs before argument parsing"),
        Cmd::Agent { .. } => bail!("the agent subcommand runs before argument parsing"),
        Cmd::Podstartup(args) => {
            until_interrupted(tug_e2e::podstartup::run(&self_exe()?, args.pods)).await
        }
        Cmd::Service(args) => {
            until_interrupted(tug_e2e::service_bench::run(
                &self_exe()?,
                args.secs,
                args.conns,
            ))
            .await
        }
    }
}

/// Runs `work`, or drops it on Ctrl-C/SIGTERM: dropping kills (by PID) every process the
/// benchmark started and removes its temp dirs.
async fn until_interrupted(work: impl Future<Output = Result<()>>) -> Result<()> {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted (Ctrl-C); stopped the processes this benchmark started"),
        _ = term => bail!("terminated (SIGTERM); stopped the processes this benchmark started"),
    }
}

/// Times `tug cluster create` (it returns when every node is Ready) and `tug cluster
/// delete`, and checks that delete left nothing.
fn cluster_bench(args: ClusterBenchArgs) -> Result<()> {
    use tug_e2e::cluster::{Cluster, Options};
    let opts = Options::new(&args.name, args.control_planes, args.workers);
    let started = Instant::now();
    let cluster = Cluster::create(&opts)?;
    let create_s = started.elapsed().as_secs_f64();
    eprintln!(
        "cluster {}: {} nodes Ready in {create_s:.2}s",
        cluster.name(),
        cluster.nodes().len()
    );
    let footprint = cluster.footprint();
    let started = Instant::now();
    cluster.delete()?;
    let delete_s = started.elapsed().as_secs_f64();
    let left = footprint.leftovers();
    ensure!(left.is_empty(), "delete left behind: {left:#?}");
    println!("cluster: create_s={create_s:.2} delete_s={delete_s:.2}");
    Ok(())
}

fn self_exe() -> Result<PathBuf> {
    std::env::current_exe().context("finding this benchmark's own executable to re-run it")
}

/// A fixed pseudo-random alphanumeric value, the same for tug and etcd.
fn value_of_size(bytes: usize) -> String {
    rand::rngs::StdRng::seed_from_u64(7)
        .sample_iter(rand::distributions::Alphanumeric)
        .take(bytes)
        .map(char::from)
        .collect()
}

async fn store(args: StoreArgs) -> Result<()> {
    ensure!(
        args.clients.len() == args.ops.len() && !args.clients.is_empty(),
        "--clients has {} entries and --ops {}; give one operation count per client count",
        args.clients.len(),
        args.ops.len()
    );
    ensure!(
        args.clients.iter().all(|c| *c > 0),
        "--clients entries must be at least 1"
    );
    let runs: Vec<(usize, u64)> = args.clients.iter().copied().zip(args.ops.clone()).collect();
    let deadline = Duration::from_secs(args.deadline_secs);
    let value = Arc::new(value_of_size(args.value_bytes));
    // The summary compares the runs with the most clients (64 by default).
    let summary_run = runs
        .iter()
        .enumerate()
        .max_by_key(|(_, (c, _))| *c)
        .map(|(i, _)| i)
        .unwrap_or_default();

    println!(
        "store: creates of distinct ConfigMaps with a {} B value; each client sticks to one \
         replica (round-robin); one tug-client (one HTTP/2 connection) per replica, shared \
         by its clients",
        args.value_bytes
    );
    let cp = ControlPlane::start(&self_exe()?, args.replicas)
        .await
        .context("starting the tug control plane")?;
    for r in cp.replicas() {
        println!("tug   replica {} pid {} at {}", r.id, r.pid, r.url);
    }
    let apis: Arc<Vec<Api<ConfigMap>>> = Arc::new(
        (0..args.replicas)
            .map(|i| Ok(Api::namespaced(cp.client(i)?, "default")))
            .collect::<Result<_>>()?,
    );
    let mut tug_reports = Vec::new();
    for (run, (clients, ops)) in runs.iter().copied().enumerate() {
        let (apis, value) = (apis.clone(), value.clone());
        let report = load::run_clients(clients, ops, deadline, move |c, i| {
            let api = apis[c % apis.len()].clone();
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(format!("bench-r{run}-{i}")),
                    ..Default::default()
                },
                data: [("value".to_string(), value.to_string())].into(),
                ..Default::default()
            };
            async move { api.create(&cm).await.map(drop) }
        })
        .await;
        println!("tug   {report}");
        tug_reports.push(report);
    }
    // Free the CPU (2 cores here) for etcd before its half starts.
    cp.stop().await;

    let etcd_reports = if args.no_etcd {
        println!("etcd: skipped (--no-etcd)");
        None
    } else if let Some(binary) = etcd_binary() {
        Some(etcd_store(&binary, &args, &runs, deadline, value).await?)
    } else {
        println!("etcd: not installed (apt-get install etcd-server); skipping the etcd half");
        None
    };

    let tug = tug_reports[summary_run].ops_per_sec();
    match etcd_reports.as_ref().map(|r| r[summary_run].ops_per_sec()) {
        Some(etcd) => {
            let ratio = if etcd > 0.0 {
                format!("{:.2}", tug / etcd)
            } else {
                "n/a".to_string()
            };
            println!("store: tug={tug:.0} etcd={etcd:.0} ratio={ratio}");
        }
        None => println!("store: tug={tug:.0} etcd=n/a ratio=n/a"),
    }
    Ok(())
}

/// The etcd half: the same runs as 1 KiB puts, each client on one member (round-robin),
/// one gRPC channel per member shared by its clients.
async fn etcd_store(
    binary: &std::path::Path,
    args: &StoreArgs,
    runs: &[(usize, u64)],
    deadline: Duration,
    value: Arc<String>,
) -> Result<Vec<Report>> {
    let dir = tempfile::Builder::new()
        .prefix("bench-etcd-")
        .tempdir()
        .context("creating etcd's temp dir")?;
    let cluster = EtcdCluster::start(binary, dir.path(), args.replicas)
        .await
        .with_context(|| format!("starting {} etcd members", args.replicas))?;
    println!(
        "etcd  {} members at {}",
        args.replicas,
        cluster.client_urls.join(" ")
    );
    let mut kvs = Vec::new();
    for url in &cluster.client_urls {
        kvs.push(cluster.kv(url).await?);
    }
    let kvs = Arc::new(kvs);
    let mut reports = Vec::new();
    for (run, (clients, ops)) in runs.iter().copied().enumerate() {
        let (kvs, value) = (kvs.clone(), value.clone());
        let report = load::run_clients(clients, ops, deadline, move |c, i| {
            let mut kv = kvs[c % kvs.len()].clone();
            let put = tug_e2e::etcd::pb::PutRequest {
                key: format!("/registry/configmaps/default/bench-r{run}-{i}").into_bytes(),
                value: value.as_bytes().to_vec(),
                ..Default::default()
            };
            async move { kv.put(put).await.map(drop) }
        })
        .await;
        println!("etcd  {report}");
        reports.push(report);
    }
    cluster.stop().await;
    Ok(reports)
}

async fn memory(args: MemoryArgs) -> Result<()> {
    ensure!(
        args.clients > 0 && args.namespaces > 0,
        "--clients and --namespaces must be at least 1"
    );
    let cp = ControlPlane::start(&self_exe()?, 1)
        .await
        .context("starting a tug replica")?;
    let replica = &cp.replicas()[0];
    let pid = replica.pid;
    println!("tug   replica pid {pid} at {}", replica.url);
    println!("rss at start: {:.1} MiB", rss_mib(pid)?);

    let client = cp.client(0)?;
    let namespaces: Vec<String> = (0..args.namespaces).map(|n| format!("bench-{n}")).collect();
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for name in &namespaces {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        ns_api
            .create(&ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
    }
    let sample = realistic_pod(0, &namespaces[0])?;
    let sent = serde_json::to_vec(&sample)?.len();
    let stored = Api::<Pod>::namespaced(client.clone(), &namespaces[0])
        .create(&sample)
        .await
        .context("creating the first pod")?;
    println!(
        "pod JSON: {sent} B as sent, {} B as stored (defaulted, with server metadata)",
        serde_json::to_vec(&stored)?.len()
    );

    // One Client, so the 32 clients share one HTTP/2 connection like a real program's
    // clients would; Pod 0 exists already.
    let apis: Arc<Vec<Api<Pod>>> = Arc::new(
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect(),
    );
    let namespaces = Arc::new(namespaces);
    let report = load::run(
        args.clients,
        args.pods.saturating_sub(1),
        Duration::from_secs(args.deadline_secs),
        move |i| {
            let n = (i + 1) as usize % namespaces.len();
            let (api, pod) = (apis[n].clone(), realistic_pod(i + 1, &namespaces[n]));
            async move {
                match pod {
                    Ok(pod) => api
                        .create(&pod)
                        .await
                        .map(drop)
                        .map_err(anyhow::Error::from),
                    Err(e) => Err(e),
                }
            }
        },
    )
    .await;
    let created = report.ops + 1;
    println!("create pods: {report}");
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let rss_created = rss_mib(pid)?;
    println!("rss after creating {created} pods: {rss_created:.1} MiB");

    let start = Instant::now();
    let bytes = client
        .raw_get("/api/v1/pods", None)
        .await
        .context("listing /api/v1/pods")?;
    let list: List<Pod> = serde_json::from_slice(&bytes).context("decoding the PodList")?;
    println!(
        "list /api/v1/pods: {} items, {:.1} MiB, {:.2} s",
        list.items.len(),
        bytes.len() as f64 / (1024.0 * 1024.0),
        start.elapsed().as_secs_f64()
    );
    drop((list, bytes));
    let rss_listed = rss_mib(pid)?;
    println!("rss after list: {rss_listed:.1} MiB");
    cp.stop().await;
    println!("memory: pods={created} rss_mib={rss_created:.1} rss_after_list_mib={rss_listed:.1}");
    Ok(())
}

fn rss_mib(pid: u32) -> Result<f64> {
    Ok(tugcp::rss_kib(pid)? as f64 / 1024.0)
}

/// A Pod like a Deployment's: an app container and a log shipper with resources, env,
/// ports and probes, labels and annotations (~1.7 KiB of JSON).
fn realistic_pod(i: u64, namespace: &str) -> Result<Pod> {
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("web-7d4b9c8f5-{i:06}"),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "web",
                "app.kubernetes.io/component": "frontend",
                "app.kubernetes.io/version": "1.27.3",
                "pod-template-hash": "7d4b9c8f5"
            },
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9102"
            }
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example.com/shop/web:1.27.3",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/app/server"],
                    "args": ["--port=8080", "--metrics-port=9102", "--log-level=info"],
                    "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9102, "protocol": "TCP"}
                    ],
                    "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "DATABASE_URL", "value": "postgres://shop@db.shop.svc.cluster.local:5432/shop"},
                        {"name": "CACHE_TTL_SECONDS", "value": "300"}
                    ],
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                        "limits": {"cpu": "1", "memory": "512Mi"}
                    },
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080},
                        "initialDelaySeconds": 10,
                        "periodSeconds": 10
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/ready", "port": "http"},
                        "periodSeconds": 5,
                        "failureThreshold": 3
                    },
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/web", "readOnly": true}]
                },
                {
                    "name": "log-shipper",
                    "image": "registry.example.com/infra/fluent-bit:2.2.0",
                    "args": ["--config=/fluent-bit/etc/fluent-bit.conf"],
                    "ports": [{"name": "fb-metrics", "containerPort": 2020, "protocol": "TCP"}],
                    "env": [{"name": "FLUENT_HOST", "value": "logs.infra.svc.cluster.local"}],
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "64Mi"},
                        "limits": {"cpu": "200m", "memory": "128Mi"}
                    },
                    "livenessProbe": {"tcpSocket": {"port": 2020}, "periodSeconds": 20},
                    "volumeMounts": [{"name": "varlog", "mountPath": "/var/log"}]
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config"}},
                {"name": "varlog", "emptyDir": {}}
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30
        }
    });
    tug_proto::decode::from_value(doc).context("the benchmark's Pod does not decode as a Pod")
}
