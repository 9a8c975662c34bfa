//! The `tug-agent` command line (also reachable as a hidden subcommand of other
//! binaries, e.g. the benchmark's `bench agent`).

use crate::agent::{Agent, Config, Options};
use crate::node::NodeInfo;
use anyhow::Context as _;
use clap::Parser;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// tug's node agent: runs the pods bound to this node as Linux containers.
#[derive(Debug, Parser)]
#[command(name = "tug-agent", version)]
pub struct Args {
    /// The Node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// The apiserver URL, used with --pki-dir.
    #[arg(long)]
    server: Option<String>,
    /// The cluster PKI dir holding ca.crt and ca.key: the agent issues its own client and
    /// serving certificates from it (local clusters).
    #[arg(long)]
    pki_dir: Option<PathBuf>,
    /// A kubeconfig to reach the apiserver instead of --server/--pki-dir (then the logs/exec
    /// port needs --tls-cert/--tls-key/--client-ca).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    #[arg(long, requires_all = ["tls_key", "client_ca"])]
    tls_cert: Option<PathBuf>,
    #[arg(long)]
    tls_key: Option<PathBuf>,
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// State: images, containers, pods, logs.
    #[arg(long, default_value = "/var/lib/tug/agent")]
    root_dir: PathBuf,
    /// The node's InternalIP (default: the first non-loopback IPv4 address, else 127.0.0.1).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// This node's pod CIDR when the control plane does not allocate one.
    #[arg(long)]
    pod_cidr: Option<String>,
    #[arg(long, default_value = "tug0")]
    bridge: String,
    /// cgroup parent of this node's pods, relative to each controller (default tug/<node>).
    #[arg(long)]
    cgroup_root: Option<String>,
    /// The logs/exec port.
    #[arg(long, default_value = "0.0.0.0:10250")]
    listen: SocketAddr,
    /// OCI-layout or `docker save` tarballs to import at start (files or dirs of *.tar).
    #[arg(long)]
    preload_images: Vec<PathBuf>,
    /// The cluster DNS server for pods' resolv.conf.
    #[arg(long)]
    cluster_dns: Option<IpAddr>,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Labels of the Node, `k=v,k2=v2`.
    #[arg(long, default_value = "")]
    node_labels: String,
    /// Taints the Node registers with, `key=value:Effect`, repeatable.
    #[arg(long)]
    register_with_taints: Vec<String>,
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Crash and pull back-off start (seconds, fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    backoff_base_seconds: f64,
    /// Image garbage collection starts when the agent's filesystem is this full (%).
    #[arg(long, default_value_t = 85)]
    image_gc_high_threshold: u8,
    /// ... and frees images down to this (%).
    #[arg(long, default_value_t = 80)]
    image_gc_low_threshold: u8,
    /// How often the node's Lease is renewed (its duration is 4x this), in seconds.
    #[arg(long, default_value_t = 10.0)]
    lease_renew_seconds: f64,
    /// The per-container shim binary (default: `tug-shim` next to this binary when it
    /// exists — small, so cheap to start and light per container — else this binary's
    /// `shim` subcommand).
    #[arg(long)]
    shim: Option<PathBuf>,
    /// Instead of running: stop every container of this node and remove its network,
    /// cgroups, mounts and the --root-dir state, then exit.
    #[arg(long)]
    cleanup: bool,
}

fn parse_taint(s: &str) -> anyhow::Result<tug_proto::core::v1::Taint> {
    let (kv, effect) = s
        .rsplit_once(':')
        .with_context(|| format!("taint {s:?}: expected key[=value]:Effect"))?;
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        anyhow::bail!("taint {s:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute");
    }
    Ok(tug_proto::core::v1::Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

fn default_ip() -> IpAddr {
    // The source address the kernel would use towards a private address: the node's
    // primary IP. UDP connect sends nothing.
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("10.255.255.255:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// `tug-agent import-image --root-dir DIR FILE...`: hands OCI-layout or `docker save`
/// tarballs to the running agent of that root dir and waits until it imported them.
fn import_image(args: Vec<std::ffi::OsString>) -> anyhow::Result<()> {
    let mut root = PathBuf::from("/var/lib/tug/agent");
    let mut files = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--root-dir" {
            root = it.next().context("--root-dir needs a value")?.into();
        } else {
            files.push(PathBuf::from(a));
        }
    }
    if files.is_empty() {
        anyhow::bail!("usage: tug-agent import-image [--root-dir DIR] FILE.tar...");
    }
    let inbox = crate::agent::image_inbox_dir(&root);
    if !inbox.exists() {
        anyhow::bail!(
            "{} does not exist: is a tug-agent running with --root-dir {}?",
            inbox.display(),
            root.display()
        );
    }
    for f in files {
        let name = format!(
            "{}-{}.tar",
            std::process::id(),
            f.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default()
        );
        let tmp = inbox.join(format!(".{name}.part"));
        std::fs::copy(&f, &tmp).with_context(|| format!("copying {}", f.display()))?;
        let dest = inbox.join(&name);
        std::fs::rename(&tmp, &dest)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while dest.exists() {
            if std::time::Instant::now() > deadline {
                anyhow::bail!("the agent did not import {} within 5 minutes", f.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let failed = dest.with_extension("tar.error");
        if let Ok(reason) = std::fs::read_to_string(&failed) {
            let _ = std::fs::remove_file(&failed);
            let _ = std::fs::remove_file(dest.with_extension("tar.failed"));
            anyhow::bail!("importing {}: {reason}", f.display());
        }
        println!("imported {}", f.display());
    }
    Ok(())
}

fn shim_command(flag: Option<&std::path::Path>) -> anyhow::Result<tug_runtime::ShimCommand> {
    if let Some(path) = flag {
        return Ok(tug_runtime::ShimCommand {
            program: path.to_path_buf(),
            args: vec![],
        });
    }
    let me = std::env::current_exe().context("locating tug-agent's own binary for the shim")?;
    let beside = me.with_file_name("tug-shim");
    Ok(if beside.is_file() {
        tug_runtime::ShimCommand {
            program: beside,
            args: vec![],
        }
    } else {
        tug_runtime::ShimCommand {
            program: me,
            args: vec!["shim".into()],
        }
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let shim = shim_command(args.shim.as_deref())?;
    if args.cleanup {
        return crate::agent::cleanup_node(&args.root_dir, shim).await;
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    let name = args.node_name.clone().unwrap_or_else(|| hostname.clone());
    let ip = args.node_ip.unwrap_or_else(default_ip);
    let (client_config, tls) = match (&args.kubeconfig, &args.pki_dir) {
        (Some(kc), _) => {
            let config = tug_client::Config::from_kubeconfig_file(kc)
                .with_context(|| format!("loading {}", kc.display()))?;
            let tls = match (&args.tls_cert, &args.tls_key, &args.client_ca) {
                (Some(c), Some(k), Some(ca)) => {
                    let serving = tug_pki::CertKey {
                        cert_pem: std::fs::read_to_string(c)
                            .with_context(|| format!("reading {}", c.display()))?,
                        key_pem: std::fs::read_to_string(k)
                            .with_context(|| format!("reading {}", k.display()))?,
                    };
                    let ca = std::fs::read_to_string(ca)
                        .with_context(|| format!("reading {}", ca.display()))?;
                    Some(crate::server::tls_config(&serving, &ca)?)
                }
                _ => None,
            };
            (config, tls)
        }
        (None, Some(pki)) => {
            let server = args
                .server
                .clone()
                .context("--pki-dir needs --server https://HOST:PORT (the apiserver)")?;
            let certs = crate::identity::ensure(pki, &args.root_dir, &name, ip, &hostname)?;
            let tls = crate::server::tls_config(&certs.serving, &certs.ca_pem)?;
            (crate::identity::client_config(&server, &certs)?, Some(tls))
        }
        (None, None) => anyhow::bail!("give --kubeconfig, or --server with --pki-dir"),
    };
    let client = tug_client::Client::new(client_config).context("building the API client")?;
    let mut labels = BTreeMap::new();
    for kv in args.node_labels.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--node-labels: {kv:?} is not k=v"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    let taints = args
        .register_with_taints
        .iter()
        .map(|t| parse_taint(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut preload = Vec::new();
    for p in &args.preload_images {
        if p.is_dir() {
            let mut tars: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "tar"))
                .collect();
            tars.sort();
            preload.extend(tars);
        } else {
            preload.push(p.clone());
        }
    }
    let config = Config {
        node: NodeInfo {
            name: name.clone(),
            ip: ip.to_string(),
            hostname,
            port: args.listen.port(),
            pod_cidr: args.pod_cidr.clone(),
            labels,
            taints,
            max_pods: args.max_pods,
        },
        client,
        root: args.root_dir.clone(),
        cgroup_root: args
            .cgroup_root
            .clone()
            .unwrap_or_else(|| format!("tug/{name}")),
        bridge: args.bridge.clone(),
        shim,
        server: tls.map(|t| (args.listen, t)),
        preload_images: preload,
        opts: Options {
            backoff_base: std::time::Duration::from_secs_f64(args.backoff_base_seconds.max(0.01)),
            cluster_dns: args.cluster_dns,
            cluster_domain: args.cluster_domain.clone(),
            lease_renew: std::time::Duration::from_secs_f64(args.lease_renew_seconds.max(0.1)),
            lease_duration: std::time::Duration::from_secs_f64(
                (args.lease_renew_seconds * 4.0).max(1.0),
            ),
            image_gc_high: f64::from(args.image_gc_high_threshold.min(100)) / 100.0,
            image_gc_low: f64::from(
                args.image_gc_low_threshold
                    .min(args.image_gc_high_threshold),
            ) / 100.0,
            ..Options::default()
        },
    };
    let agent = Agent::start(config).await?;
    tracing::info!(node = %name, port = ?agent.server_addr, "tug-agent is running");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    // Containers keep running; a restarted agent adopts them.
    drop(agent);
    Ok(())
}

/// Runs the agent with `args` (without the program name) until SIGTERM/SIGINT; returns
/// the exit code. Call only from a fresh process: it sets up logging and a runtime.
pub fn main(args: Vec<std::ffi::OsString>) -> i32 {
    if args.first().is_some_and(|a| a == "import-image") {
        return match import_image(args[1..].to_vec()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("tug-agent import-image: {e:#}");
                1
            }
        };
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args = match Args::try_parse_from(std::iter::once("tug-agent".into()).chain(args)) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tug-agent: starting tokio: {e}");
            return 1;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tug-agent: {e:#}");
            1
        }
    }
}
