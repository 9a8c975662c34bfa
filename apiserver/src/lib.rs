//! tug-apiserver: the Kubernetes REST API over tug's Raft-replicated store.
//!
//! Objects are handled as JSON (`serde_json::Value`) end to end: admission decodes them
//! strictly into the typed `tug-proto` kinds to default and validate, and everything
//! else (storage, selectors, watch, patch) works on the JSON form Kubernetes clients see.
//!
//! # Layout
//! - [`start`] / [`Server`] / [`Options`]: this file; `main.rs` only parses flags.
//! - `server`: the rustls accept loop (ALPN h2 + http/1.1) feeding hyper and axum.
//! - `authn`: client certificates and bearer tokens; anonymous only for health/version.
//! - `routes`: health, version, discovery, metrics and the resource paths.
//! - `rest`: one module per verb (`create`, `get`, `list`, `watch`, `update`, `patch`,
//!   `delete`) and per subresource (`scale`, `binding`, `pod_proxy` for log/exec).
//! - `registry`: the table of served resources; `strategy`: per-kind create/update
//!   rules (status subresource, generation, pod QoS).
//! - `object`, `body`, `negotiate`, `selector`, `error`: stored-object codec, request
//!   bodies (JSON/YAML, 3 MiB), response shapes (Table, PartialObjectMetadata),
//!   label/field selectors, and `Status` errors; `protobuf`: the protobuf bodies of
//!   kubectl's typed commands, decoded to JSON.
//! - `namespaces`: the initial namespaces and the emptying of deleted namespaces.
//! - `allocator`: Service cluster IPs and node ports (reservation keys in the store);
//!   `kubernetes_service`: the `default/kubernetes` Service and Endpoints.
//! - `metrics`: `/metrics`.
//! - `patch`, `admission`, `table`, `discovery`: patching, decoding/defaulting/validation,
//!   server-side printing and discovery documents.
//! - [`testing`]: in-process servers and clusters with a fresh PKI, and a tiny HTTPS
//!   client, for this crate's tests and other crates'.

pub mod admission;
mod allocator;
mod authn;
mod body;
pub mod discovery;
pub mod error;
mod kubernetes_service;
mod metrics;
mod namespaces;
mod negotiate;
mod object;
pub mod patch;
mod protobuf;
pub mod registry;
mod rest;
mod routes;
mod selector;
mod server;
mod state;
mod strategy;
pub mod table;
pub mod testing;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tug_pki::{CertKey, PkiPaths, TokenFile};

pub use rest::WatchConfig;

/// ALPN protocols of the API port.
const API_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];
/// ALPN of the peer (gRPC) port.
const PEER_ALPN: &[&[u8]] = &[b"h2"];

/// The name of replica `id` in the PKI (`peer-<name>.crt`) and in the serving cert.
pub fn replica_name(id: u64) -> String {
    format!("apiserver-{id}")
}

/// Everything one replica needs to run.
pub struct Options {
    /// The API address; ignored when `api_listener` is given.
    pub listen: SocketAddr,
    /// An already-bound API listener (tests bind 127.0.0.1:0).
    pub api_listener: Option<TcpListener>,
    /// This replica's raft id and the whole initial cluster (id -> peer `host:port`).
    pub id: u64,
    pub peers: BTreeMap<u64, String>,
    /// An already-bound peer listener for `peers[id]` (tests bind 127.0.0.1:0).
    pub peer_listener: Option<TcpListener>,
    pub data_dir: PathBuf,
    /// rustls config of the API port (serving cert; client certs optional, verified
    /// against the cluster CA).
    pub api_tls: Arc<rustls::ServerConfig>,
    /// Mutual TLS of the peer port; `None` = plaintext peers (tests only).
    pub peer_tls: Option<tug_store::PeerTls>,
    /// Bearer tokens (Kubernetes token file); `None` = no token authentication.
    pub tokens: Option<TokenFile>,
    /// The API address pods use (added to the `default/kubernetes` Endpoints); `None`
    /// or a loopback address = no endpoint for this replica.
    pub advertise: Option<SocketAddr>,
    pub watch: WatchConfig,
    /// Store tuning: watch history kept for resumption (events).
    pub history_limit: u64,
    /// Store tuning: raft tick (election timeout = 10 ticks).
    pub raft_tick: Duration,
    /// Store tuning: entries between snapshots.
    pub snapshot_every: u64,
    /// TLS towards node agents for `pods/log` and `pods/exec`: trusts the cluster CA,
    /// presents the `kubelet-client` certificate. `None` = those answer 503.
    pub kubelet_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Options {
    /// Options for replica `id` from a PKI directory laid out by
    /// `tug_pki::init_cluster_pki` with replicas named by [`replica_name`].
    pub fn from_pki_dir(
        pki_dir: &Path,
        id: u64,
        peers: BTreeMap<u64, String>,
        data_dir: PathBuf,
        listen: SocketAddr,
    ) -> anyhow::Result<Options> {
        let paths = PkiPaths::new(pki_dir);
        let ca_pem = std::fs::read_to_string(paths.ca_cert())
            .with_context(|| format!("reading the cluster CA {}", paths.ca_cert().display()))?;
        let serving = CertKey::load(pki_dir, "apiserver").with_context(|| {
            format!("loading the serving certificate from {}", pki_dir.display())
        })?;
        let api_tls = tug_pki::server_config(&serving, Some(&ca_pem), false, API_ALPN)
            .context("building the API TLS config")?;
        let peer_tls = if peers.len() > 1 {
            let name = replica_name(id);
            let peer = CertKey::load(pki_dir, &PkiPaths::peer_base(&name)).with_context(|| {
                format!(
                    "loading the peer certificate of replica {id} ({}); was the PKI made for this cluster?",
                    paths.peer_cert(&name).display()
                )
            })?;
            Some(tug_store::PeerTls {
                server: tug_pki::server_config(&peer, Some(&ca_pem), true, PEER_ALPN)
                    .context("building the peer server TLS config")?,
                client: tug_pki::client_config(&ca_pem, Some(&peer), PEER_ALPN)
                    .context("building the peer client TLS config")?,
            })
        } else {
            None
        };
        // PKI directories made before kubelet-client.crt existed simply have no logs/exec.
        let kubelet_tls = if paths.kubelet_client_cert().exists() {
            let cert = CertKey::load(pki_dir, tug_pki::cluster::KUBELET_CLIENT_BASE).with_context(
                || {
                    format!(
                        "loading the node agent client certificate {}",
                        paths.kubelet_client_cert().display()
                    )
                },
            )?;
            Some(
                tug_pki::client_config(&ca_pem, Some(&cert), &[b"http/1.1"])
                    .context("building the node agent client TLS config")?,
            )
        } else {
            None
        };
        let tokens = if paths.tokens().exists() {
            Some(
                TokenFile::load(&paths.tokens())
                    .with_context(|| format!("loading {}", paths.tokens().display()))?,
            )
        } else {
            None
        };
        Ok(Options {
            listen,
            api_listener: None,
            id,
            peers,
            peer_listener: None,
            data_dir,
            api_tls,
            peer_tls,
            tokens,
            advertise: None,
            watch: WatchConfig::default(),
            history_limit: 100_000,
            raft_tick: Duration::from_millis(100),
            snapshot_every: 10_000,
            kubelet_tls,
        })
    }
}

/// A running replica.
pub struct Server {
    /// `https://host:port` of the API.
    pub url: String,
    pub addr: SocketAddr,
    state: Arc<state::AppState>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    pub fn store(&self) -> &tug_store::Store {
        &self.state.store
    }

    /// Whether the initial namespaces exist (what `/readyz` reports, minus the leader).
    pub fn is_ready(&self) -> bool {
        self.state.is_ready()
    }

    /// Waits until [`Server::is_ready`] or `timeout`; returns whether it became ready.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Stops serving (open watches end), stops background tasks, and closes the store so
    /// its data directory can be reopened.
    pub async fn shutdown(self) {
        let _ = self.state.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.state.store.shutdown().await;
    }
}

/// Opens the store, starts serving the API and the background tasks.
pub async fn start(opts: Options) -> anyhow::Result<Server> {
    let mut cfg = tug_store::Config::new(opts.id, opts.peers.clone(), opts.data_dir.clone());
    cfg.peer_tls = opts.peer_tls.clone();
    cfg.history_limit = opts.history_limit;
    cfg.tick = opts.raft_tick;
    cfg.snapshot_every = opts.snapshot_every;
    let api_listener = match opts.api_listener {
        Some(l) => l,
        None => TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("binding the API port {}", opts.listen))?,
    };
    let addr = api_listener.local_addr()?;
    let store = match opts.peer_listener {
        Some(l) => tug_store::Store::open_with_listener(cfg, l).await,
        None => tug_store::Store::open(cfg).await,
    }
    .with_context(|| format!("opening the store in {}", opts.data_dir.display()))?;

    let (shutdown, _) = tokio::sync::watch::channel(false);
    let state = Arc::new(state::AppState {
        store,
        tokens: opts.tokens,
        watch: opts.watch,
        metrics: metrics::Metrics::default(),
        shutdown,
        ready: Default::default(),
        advertise: opts.advertise,
        kubelet_tls: opts.kubelet_tls,
    });
    let app = routes::router(state.clone());
    let tasks = vec![
        tokio::spawn(server::serve(
            api_listener,
            opts.api_tls,
            app,
            state.shutdown.subscribe(),
        )),
        tokio::spawn(namespaces::bootstrap(state.clone())),
    ];
    tracing::info!(id = opts.id, %addr, "tug-apiserver serving");
    Ok(Server {
        url: format!("https://{addr}"),
        addr,
        state,
        tasks,
    })
}
