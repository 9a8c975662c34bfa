//! `tug-apiserver`: parses flags and runs one API server replica.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;

/// The store clones sled tree nodes and the API path builds many short-lived JSON
/// values: glibc malloc spent ~20% of a replica's CPU under write load; mimalloc is
/// measurably faster for that pattern.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "tug's Kubernetes-compatible API server (one raft replica)"
)]
struct Args {
    /// Where the store keeps its raft log and state.
    #[arg(long)]
    data_dir: PathBuf,
    /// API address.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// This replica's raft id.
    #[arg(long, default_value_t = 1)]
    id: u64,
    /// The initial cluster, `id=host:port` of every replica's peer port, comma separated.
    /// Defaults to this replica alone on 127.0.0.1:2380.
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
    /// The PKI directory (ca.crt, apiserver.crt/key, peer-apiserver-<id>.crt/key, tokens.csv).
    #[arg(long)]
    pki_dir: PathBuf,
    /// Create the PKI directory first if it has no CA yet.
    #[arg(long)]
    init: bool,
    /// Cluster name written into the admin kubeconfig by --init.
    #[arg(long, default_value = "tug")]
    cluster_name: String,
    /// Address clients use to reach the API (added to the serving certificate by --init).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Seconds between watch bookmarks for clients that ask for them.
    #[arg(long, default_value_t = 5)]
    bookmark_interval_seconds: u64,
}

fn parse_peers(specs: &[String], id: u64) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut peers = BTreeMap::new();
    for spec in specs {
        let (pid, addr) = spec
            .split_once('=')
            .with_context(|| format!("--peers entry {spec:?} must be id=host:port"))?;
        let pid: u64 = pid
            .trim()
            .parse()
            .with_context(|| format!("--peers entry {spec:?}: id must be a number"))?;
        if peers.insert(pid, addr.trim().to_string()).is_some() {
            bail!("--peers names replica {pid} twice");
        }
    }
    if peers.is_empty() {
        peers.insert(id, "127.0.0.1:2380".to_string());
    }
    if !peers.contains_key(&id) {
        bail!("--peers has no entry for this replica's --id {id}");
    }
    Ok(peers)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let peers = parse_peers(&args.peers, args.id)?;

    if args.init && !tug_pki::PkiPaths::new(&args.pki_dir).ca_cert().exists() {
        let host = args.advertise_address.unwrap_or(args.listen.ip());
        let url = format!("https://{}", SocketAddr::new(host, args.listen.port()));
        let api_ips: Vec<IpAddr> = args
            .advertise_address
            .into_iter()
            .chain([args.listen.ip()])
            .collect();
        let replicas = peers
            .iter()
            .map(|(id, addr)| {
                let ip = addr
                    .parse::<SocketAddr>()
                    .map(|a| vec![a.ip()])
                    .unwrap_or_default();
                (tug_apiserver::replica_name(*id), ip)
            })
            .collect::<Vec<_>>();
        let pki = tug_pki::init_cluster_pki(
            &args.pki_dir,
            &args.cluster_name,
            &url,
            (&[], &api_ips),
            &replicas,
        )
        .with_context(|| format!("creating the PKI in {}", args.pki_dir.display()))?;
        println!("kubeconfig: {}", pki.paths.admin_kubeconfig().display());
    }

    let mut opts = tug_apiserver::Options::from_pki_dir(
        &args.pki_dir,
        args.id,
        peers,
        args.data_dir.clone(),
        args.listen,
    )?;
    opts.advertise = args
        .advertise_address
        .map(|ip| SocketAddr::new(ip, args.listen.port()));
    opts.watch.bookmark_interval = Duration::from_secs(args.bookmark_interval_seconds.max(1));
    let server = tug_apiserver::start(opts).await?;
    println!("serving on {}", server.url);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    server.shutdown().await;
    Ok(())
}
