//! The running agent: what every pod worker shares ([`Ctx`]), the dispatcher that turns
//! the watch of this node's pods into one worker per pod, and [`Agent::start`] which
//! wires node registration, heartbeat, the logs/exec server and the workers together.

use crate::node::{self, Host, NodeInfo};
use crate::worker::{self, PodUpdate};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tug_client::watcher::{self, Event};
use tug_client::{Api, Client, EventRecorder, Store};
use tug_proto::core::v1::{Container, Pod, Service};
use tug_runtime::Runtime;

/// Tunables with the kubelet's defaults; tests shorten them.
#[derive(Debug, Clone)]
pub struct Options {
    /// First crash/pull back-off (10 s), doubled up to `backoff_max` (5 min).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Lease renewal period (10 s) and duration (40 s).
    pub lease_renew: Duration,
    pub lease_duration: Duration,
    /// Node status refresh period.
    pub status_update: Duration,
    /// A worker's periodic pass (volume refresh, missed events).
    pub resync: Duration,
    /// Grace before SIGKILL when a liveness probe restarts a container.
    pub probe_kill_grace_secs: u64,
    pub pids_limit: Option<i64>,
    /// Image GC starts above this used fraction of the agent's filesystem (0.85) and
    /// frees down to `image_gc_low` (0.80), as the kubelet's thresholds.
    pub image_gc_high: f64,
    pub image_gc_low: f64,
    /// Images younger than this (since the agent first saw them) are never collected.
    pub image_gc_min_age: Duration,
    /// The cluster DNS server written to pods' resolv.conf (issue 6); None: the node's.
    pub cluster_dns: Option<IpAddr>,
    pub cluster_domain: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            lease_renew: Duration::from_secs(10),
            lease_duration: Duration::from_secs(40),
            status_update: Duration::from_secs(10),
            resync: Duration::from_secs(10),
            probe_kill_grace_secs: 30,
            pids_limit: Some(4096),
            image_gc_high: 0.85,
            image_gc_low: 0.80,
            image_gc_min_age: Duration::from_secs(120),
            cluster_dns: None,
            cluster_domain: "cluster.local".to_string(),
        }
    }
}

/// Where a pod's containers stand, for the logs/exec server.
#[derive(Debug, Clone, Default)]
pub struct IndexedPod {
    pub uid: String,
    /// container name -> current runtime id, for those that are running.
    pub running: BTreeMap<String, String>,
    pub containers: Vec<String>,
}

/// (namespace, name) -> pod, updated by the workers.
#[derive(Default)]
pub struct PodIndex {
    pods: Mutex<HashMap<(String, String), IndexedPod>>,
}

impl PodIndex {
    pub fn update(&self, r: &crate::record::PodRecord) {
        let entry = IndexedPod {
            uid: r.uid.clone(),
            running: r.running().into_iter().collect(),
            containers: r
                .init_containers
                .keys()
                .chain(r.containers.keys())
                .cloned()
                .collect(),
        };
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.insert((r.namespace.clone(), r.name.clone()), entry);
    }

    pub fn remove(&self, uid: &str) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.retain(|_, p| p.uid != uid);
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<IndexedPod> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}

/// What every pod worker shares.
pub struct Ctx {
    pub node: NodeInfo,
    pub client: Client,
    pub root: PathBuf,
    pub cgroup_root: String,
    pub runtime: Arc<dyn Runtime>,
    pub images: Arc<tug_image::ImageStore>,
    pub net: Arc<tug_net::Network>,
    pub volumes: crate::volumes::Volumes,
    pub opts: Options,
    pub index: PodIndex,
    pub services: Store<Service>,
    pub recorder: Arc<EventRecorder>,
    /// When the agent first saw each image id (image GC's minimum age).
    pub image_first_seen: Mutex<HashMap<String, std::time::Instant>>,
    /// Image ids imported from --preload-images: never garbage collected.
    pub pinned_images: HashSet<String>,
}

impl Ctx {
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root.join("pods").join(uid)
    }

    pub fn pod_cgroup(&self, uid: &str) -> String {
        format!("{}/pod{}", self.cgroup_root, uid.replace('-', ""))
    }

    pub fn pod_log_dir(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.root
            .join("logs")
            .join(format!("{namespace}_{name}_{uid}"))
    }

    /// `<root>/logs/<ns>_<pod>_<uid>/<container>/<attempt>.log`, as the kubelet lays
    /// them out; attempt = the restartCount the container has while it runs.
    pub fn log_path(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        container: &str,
        attempt: i32,
    ) -> PathBuf {
        self.pod_log_dir(namespace, name, uid)
            .join(container)
            .join(format!("{attempt}.log"))
    }

    /// Records an Event about the pod without holding up the worker.
    pub async fn event_for(
        &self,
        r: &crate::record::PodRecord,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let involved = tug_proto::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(r.namespace.clone()),
            name: Some(r.name.clone()),
            uid: Some(r.uid.clone()),
            ..Default::default()
        };
        let recorder = self.recorder.clone();
        let (type_, reason, message) = (type_.to_string(), reason.to_string(), message.to_string());
        tokio::spawn(async move { recorder.record(&involved, &type_, &reason, &message).await });
    }

    /// The image for `c` per its pull policy; errors are a waiting reason and message
    /// as the kubelet reports them.
    /// Returns the image and, when it was pulled now, how long the pull took.
    pub async fn ensure_image(
        &self,
        pod: &Pod,
        c: &Container,
    ) -> Result<(tug_image::Image, Option<Duration>), (&'static str, String)> {
        let reference = c.image.clone().unwrap_or_default();
        let normalized = tug_image::normalize(&reference).map_err(|e| {
            (
                "InvalidImageName",
                format!("Failed to apply default image tag {reference:?}: {e}"),
            )
        })?;
        let latest = normalized.ends_with(":latest") && !reference.contains('@');
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| if latest { "Always" } else { "IfNotPresent" }.to_string());
        let present = self.images.get(&normalized);
        match (policy.as_str(), present) {
            ("Never", Some(img)) | ("IfNotPresent", Some(img)) => return Ok((img, None)),
            ("Never", None) => {
                return Err((
                    "ErrImageNeverPull",
                    format!(
                        "Container image {reference:?} is not present with pull policy of Never"
                    ),
                ))
            }
            _ => {}
        }
        let auth = self.pull_auth(pod, &normalized).await;
        let started = std::time::Instant::now();
        self.images
            .pull(
                &normalized,
                auth.as_ref(),
                &tug_image::PullOptions::default(),
            )
            .await
            .map(|img| (img, Some(started.elapsed())))
            .map_err(|e| {
                (
                    "ErrImagePull",
                    format!("Failed to pull image {reference:?}: {e}"),
                )
            })
    }

    async fn pull_auth(&self, pod: &Pod, reference: &str) -> Option<tug_image::RegistryAuth> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let registry = reference.split('/').next().unwrap_or_default().to_string();
        let secrets: Api<tug_proto::core::v1::Secret> = Api::namespaced(self.client.clone(), &ns);
        for r in pod
            .spec
            .as_ref()
            .map(|s| s.image_pull_secrets.clone())
            .unwrap_or_default()
        {
            let Some(name) = r.name else { continue };
            let Ok(Some(secret)) = secrets.get_opt(&name).await else {
                continue;
            };
            if let Some(json) = secret.data.get(".dockerconfigjson") {
                if let Some(auth) = tug_image::auth_from_docker_config(&json.0, &registry) {
                    return Some(auth);
                }
            }
        }
        None
    }

    /// Docker-link style variables for the services of the pod's namespace (and the
    /// `kubernetes` service), as Kubernetes injects them when enableServiceLinks.
    pub fn service_env(&self, pod: &Pod) -> Vec<(String, String)> {
        crate::podfiles::service_env(pod, &self.services.list())
    }
}

/// Everything needed to start an agent.
pub struct Config {
    pub node: NodeInfo,
    pub client: Client,
    pub root: PathBuf,
    pub cgroup_root: String,
    pub bridge: String,
    pub shim: tug_runtime::ShimCommand,
    /// The logs/exec server: where to listen and its TLS config (None: no server).
    pub server: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    pub preload_images: Vec<PathBuf>,
    pub opts: Options,
}

/// A running agent. Dropping it (or [`Agent::stop`]) stops the agent's tasks but leaves
/// the containers running, as a killed kubelet would.
pub struct Agent {
    pub ctx: Arc<Ctx>,
    pub server_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
    /// The service proxy and the node's DNS server; dropping them (with the agent) stops
    /// them, the rules stay, as kube-proxy's do.
    pub proxy: crate::proxy::Proxy,
    pub dns: crate::dns::DnsServer,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Agent {
    pub async fn start(config: Config) -> anyhow::Result<Agent> {
        use anyhow::Context as _;
        let Config {
            mut node,
            client,
            root,
            cgroup_root,
            bridge,
            shim,
            server,
            preload_images,
            opts,
        } = config;
        std::fs::create_dir_all(root.join("pods"))
            .with_context(|| format!("creating {}", root.display()))?;
        let images = Arc::new(
            tug_image::ImageStore::open(&root.join("images")).context("opening the image store")?,
        );
        // Preloaded images are pinned: image GC never removes them (there may be no
        // registry to pull them from again).
        let mut pinned = HashSet::new();
        for tar in &preload_images {
            let imported = images
                .import(tar)
                .with_context(|| format!("importing image {}", tar.display()))?;
            pinned.extend(imported.into_iter().map(|i| i.id));
        }
        let runtime: Arc<dyn Runtime> = Arc::new(
            tug_runtime::ShimRuntime::new(root.join("containers"), shim)
                .context("starting the container runtime")?,
        );
        let host = Host::read();
        // A listener bound before registering, so the Node can advertise its real port.
        let listener = match &server {
            Some((addr, _)) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?,
            ),
            None => None,
        };
        let server_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(addr) = server_addr {
            node.port = addr.port();
        }
        let registered = node::register(&client, &node, &host)
            .await
            .context("registering the node")?;
        let mut pod_cidr = registered
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.clone())
            .or_else(|| node.pod_cidr.clone());
        // Without a flag, wait for the control plane's node IPAM to allocate one.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while pod_cidr.is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let nodes: Api<tug_proto::core::v1::Node> = Api::all(client.clone());
            if let Ok(n) = nodes.get(&node.name).await {
                pod_cidr = n.spec.and_then(|s| s.pod_cidr);
            }
        }
        let pod_cidr = pod_cidr.context(
            "the node has no podCIDR after 60 s: pass --pod-cidr, or run tug-controllers (its node IPAM allocates one)",
        )?;
        node.pod_cidr = Some(pod_cidr.clone());
        save_node_state(
            &root,
            &NodeState {
                node: node.name.clone(),
                pod_cidr: pod_cidr.clone(),
                bridge: bridge.clone(),
                cgroup_root: cgroup_root.clone(),
            },
        );
        let net = Arc::new(
            tug_net::Network::new(tug_net::NetConfig {
                node: node.name.clone(),
                bridge,
                pod_cidr,
                state_dir: root.join("net"),
                mtu: None,
            })
            .context("setting up the node's pod network")?,
        );
        let mut tasks = Vec::new();
        let (shutdown, shutdown_rx) = watch::channel(false);
        // Services: the kube-proxy part (nftables rules from Services and Endpoints), the
        // node's cluster DNS on the pod bridge's gateway (pods' nameserver), and host-gw
        // routes to the other nodes' pod CIDRs.
        let proxy = crate::proxy::Proxy::start(client.clone(), &node.name)
            .context("starting the service proxy")?;
        let services = proxy.services();
        let gateway = net.gateway();
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let dns = crate::dns::DnsServer::start(
            crate::dns::DnsConfig {
                listen: vec![SocketAddr::new(gateway.into(), 53)],
                domain: opts.cluster_domain.clone(),
                upstreams: crate::dns::host_resolvers(&resolv, &[gateway.into()]),
            },
            proxy.services(),
            proxy.endpoints(),
        )
        .await
        .context("starting the cluster DNS server")?;
        let mut opts = opts;
        opts.cluster_dns.get_or_insert(gateway.into());
        tasks.push(crate::routes::start(
            client.clone(),
            net.clone(),
            &node.name,
        ));
        let ctx = Arc::new(Ctx {
            recorder: Arc::new(EventRecorder::new(
                client.clone(),
                "kubelet",
                Some(node.name.clone()),
            )),
            volumes: crate::volumes::Volumes::new(root.join("pods"), client.clone()),
            node: node.clone(),
            client: client.clone(),
            root,
            cgroup_root,
            runtime,
            images,
            net,
            opts: opts.clone(),
            index: PodIndex::default(),
            image_first_seen: Mutex::new(HashMap::new()),
            pinned_images: pinned,
            services,
        });
        if let (Some(listener), Some((_, tls))) = (listener, server) {
            let backend = Arc::new(crate::backend::Backend { ctx: ctx.clone() });
            tasks.push(tokio::spawn(crate::server::serve(
                listener,
                tls,
                backend,
                shutdown_rx,
            )));
        }
        tasks.push(tokio::spawn(heartbeat(ctx.clone(), host)));
        std::fs::create_dir_all(image_inbox_dir(&ctx.root)).context("creating the image inbox")?;
        tasks.push(tokio::spawn(image_inbox(ctx.clone())));
        tasks.push(tokio::spawn(dispatch(ctx.clone())));
        Ok(Agent {
            proxy,
            dns,
            ctx,
            server_addr,
            tasks,
            shutdown,
        })
    }
}

async fn heartbeat(ctx: Arc<Ctx>, host: Host) {
    let mut lease_tick = tokio::time::interval(ctx.opts.lease_renew);
    let mut status_tick = tokio::time::interval(ctx.opts.status_update);
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                if let Err(e) = node::renew_lease(&ctx.client, &ctx.node.name, ctx.opts.lease_duration).await {
                    tracing::warn!(error = %e, "renewing the node lease");
                }
            }
            _ = status_tick.tick() => {
                let disk_pressure = collect_images(&ctx);
                let images = ctx.images.list().into_iter().map(|i| (i.references.clone(), i.size)).collect();
                if let Err(e) = node::update_status(&ctx.client, &ctx.node, &host, images, disk_pressure).await {
                    tracing::warn!(error = %e, "updating the node status");
                }
            }
        }
    }
}

/// The directory `tug-agent import-image` drops tarballs into; the running agent (the
/// image store's only owner) imports and removes them.
pub fn image_inbox_dir(root: &std::path::Path) -> PathBuf {
    root.join("image-inbox")
}

/// Imports every `*.tar` that appears in the inbox, then removes it. A tarball that
/// fails to import is renamed `*.tar.failed` with the reason in `*.tar.error`.
async fn image_inbox(ctx: Arc<Ctx>) {
    let dir = image_inbox_dir(&ctx.root);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "creating the image inbox");
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "tar") {
                continue;
            }
            let images = ctx.images.clone();
            let p = path.clone();
            let result = tokio::task::spawn_blocking(move || images.import(&p)).await;
            match result {
                Ok(Ok(imported)) => {
                    for img in &imported {
                        tracing::info!(image = %img.id, references = ?img.references, "imported");
                    }
                    let _ = std::fs::remove_file(&path);
                }
                Ok(Err(err)) => {
                    tracing::warn!(file = %path.display(), error = %err, "importing an image");
                    let _ = std::fs::write(path.with_extension("tar.error"), err.to_string());
                    let _ = std::fs::rename(&path, path.with_extension("tar.failed"));
                }
                Err(_) => {}
            }
        }
    }
}

/// (used fraction, available fraction) of the filesystem holding `path`.
fn disk_usage(path: &std::path::Path) -> Option<(f64, u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let total = st.blocks() as u64 * st.fragment_size() as u64;
    let avail = st.blocks_available() as u64 * st.fragment_size() as u64;
    (total > 0).then(|| (1.0 - avail as f64 / total as f64, total, avail))
}

/// Image garbage collection as the kubelet's: when the agent's filesystem is more than
/// `image_gc_high` full, remove images no pod on this node uses (least recently used
/// first) until it is back under `image_gc_low`. Returns whether the node is under disk
/// pressure (less than 10% available).
fn collect_images(ctx: &Ctx) -> bool {
    let Some((used, total, avail)) = disk_usage(&ctx.root) else {
        return false;
    };
    if used > ctx.opts.image_gc_high {
        let target = ((used - ctx.opts.image_gc_low) * total as f64) as u64;
        // Images the agent first saw less than `image_gc_min_age` ago are kept, as the
        // kubelet's minimum GC age: a just-imported image is about to be used.
        let mut in_use = ctx.pinned_images.clone();
        {
            let mut seen = ctx
                .image_first_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            for img in ctx.images.list() {
                let first = *seen.entry(img.id.clone()).or_insert(now);
                if now.duration_since(first) < ctx.opts.image_gc_min_age {
                    in_use.insert(img.id);
                }
            }
        }
        if let Ok(pods) = std::fs::read_dir(ctx.root.join("pods")) {
            for pod in pods.flatten() {
                let Ok(Some(r)) = crate::record::PodRecord::load(&pod.path()) else {
                    continue;
                };
                for c in r.containers.values().chain(r.init_containers.values()) {
                    if let Some(img) = ctx.images.get(&c.image) {
                        in_use.insert(img.id);
                    }
                }
            }
        }
        match ctx.images.gc(&in_use, target) {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(
                    ?removed,
                    "disk usage {:.0}%: removed unused images",
                    used * 100.0
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "image garbage collection"),
        }
    }
    (avail as f64) < total as f64 * 0.10
}

/// Watches this node's pods and keeps one worker per pod uid fed with its latest
/// version. Pods that were on the node before an agent restart but no longer exist are
/// cleaned up once the first list has arrived.
async fn dispatch(ctx: Arc<Ctx>) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node.name));
    let mut events = std::pin::pin!(watcher::watcher(pods, config));
    let mut workers: HashMap<String, (watch::Sender<PodUpdate>, JoinHandle<()>)> = HashMap::new();
    let mut seen_first_list = false;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "watching pods; retrying");
                continue;
            }
        };
        let mut present: Option<HashSet<String>> = None;
        let mut touched: Vec<Arc<Pod>> = Vec::new();
        let mut gone: Vec<String> = Vec::new();
        match event {
            Event::Applied(p) => touched.push(Arc::new(p)),
            Event::Deleted(p) => gone.extend(p.metadata.uid.clone()),
            Event::Restarted(list) => {
                present = Some(list.iter().filter_map(|p| p.metadata.uid.clone()).collect());
                touched.extend(list.into_iter().map(Arc::new));
            }
        }
        for pod in touched {
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            match workers.get(&uid) {
                Some((tx, handle)) if !handle.is_finished() => {
                    let _ = tx.send(PodUpdate::Pod(pod));
                }
                _ => {
                    let (tx, rx) = watch::channel(PodUpdate::Pod(pod));
                    let handle = tokio::spawn(worker::run(ctx.clone(), uid.clone(), rx));
                    workers.insert(uid, (tx, handle));
                }
            }
        }
        if let Some(present) = present {
            for (uid, (tx, _)) in &workers {
                if !present.contains(uid) {
                    let _ = tx.send(PodUpdate::Gone);
                }
            }
            if !seen_first_list {
                seen_first_list = true;
                orphans(&ctx, &present, &mut workers);
            }
        }
        for uid in gone {
            if let Some((tx, _)) = workers.get(&uid) {
                let _ = tx.send(PodUpdate::Gone);
            }
        }
        workers.retain(|_, (_, h)| !h.is_finished());
    }
}

/// Pod dirs left by a previous agent for pods that no longer exist: start a worker
/// that only cleans up.
fn orphans(
    ctx: &Arc<Ctx>,
    present: &HashSet<String>,
    workers: &mut HashMap<String, (watch::Sender<PodUpdate>, JoinHandle<()>)>,
) {
    // Network allocations of pods whose dir is gone too (a crash between the two).
    for (uid, _) in ctx.net.pods() {
        if !present.contains(&uid) && !ctx.pod_dir(&uid).exists() {
            if let Err(e) = ctx.net.teardown_pod(&uid) {
                tracing::warn!(pod = %uid, error = %e, "tearing down an orphaned pod network");
            }
        }
    }
    let Ok(dir) = std::fs::read_dir(ctx.root.join("pods")) else {
        return;
    };
    for entry in dir.flatten() {
        let uid = entry.file_name().to_string_lossy().to_string();
        if present.contains(&uid) || workers.contains_key(&uid) {
            continue;
        }
        tracing::info!(pod = %uid, "cleaning up a pod that no longer exists");
        let (tx, rx) = watch::channel(PodUpdate::Gone);
        let handle = tokio::spawn(worker::run(ctx.clone(), uid.clone(), rx));
        workers.insert(uid, (tx, handle));
    }
}

/// What `--cleanup` needs to find everything a node's agent made.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct NodeState {
    node: String,
    pod_cidr: String,
    bridge: String,
    cgroup_root: String,
}

fn save_node_state(root: &std::path::Path, state: &NodeState) {
    let path = root.join("node.json");
    if let Ok(bytes) = serde_json::to_vec_pretty(state) {
        if let Err(e) = std::fs::write(&path, bytes) {
            tracing::warn!(path = %path.display(), error = %e, "saving the node state");
        }
    }
}

/// Removes everything a node's agent made on this host: kills its containers, unmounts
/// their root filesystems and volumes, removes the pod sandboxes, cgroups, network
/// namespaces, veths, bridge and nftables table, then the state dir itself. For
/// `tug-agent --cleanup` (after the agent was stopped) and tests.
pub async fn cleanup_node(
    root: &std::path::Path,
    shim: tug_runtime::ShimCommand,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let state: Option<NodeState> = std::fs::read(root.join("node.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if root.join("containers").exists() {
        let runtime = tug_runtime::ShimRuntime::new(root.join("containers"), shim)
            .context("opening the runtime state")?;
        for (id, st) in runtime.list().await.unwrap_or_default() {
            if st.is_running() {
                let _ = runtime.kill(&id, libc::SIGKILL).await;
                let _ = tokio::time::timeout(Duration::from_secs(10), runtime.wait(&id)).await;
            }
            if let Err(e) = runtime.remove(&id).await {
                tracing::warn!(container = %id, error = %e, "removing a container");
            }
        }
    }
    if let Ok(pods) = std::fs::read_dir(root.join("pods")) {
        for pod in pods.flatten() {
            let dir = pod.path();
            if let Ok(cs) = std::fs::read_dir(dir.join("containers")) {
                for c in cs.flatten() {
                    let _ = tug_image::ImageStore::release_rootfs(&c.path());
                }
            }
            let _ = tug_runtime::remove_sandbox(&dir.join("ns"));
            if let Some(s) = &state {
                let uid = pod.file_name().to_string_lossy().replace('-', "");
                let _ = tug_runtime::remove_pod_cgroup(&format!("{}/pod{uid}", s.cgroup_root));
            }
        }
    }
    unmount_under(root);
    if let Some(s) = &state {
        let net = tug_net::Network::open(tug_net::NetConfig {
            node: s.node.clone(),
            bridge: s.bridge.clone(),
            pod_cidr: s.pod_cidr.clone(),
            state_dir: root.join("net"),
            mtu: None,
        })
        .context("opening the node's network state")?;
        net.cleanup_all().context("removing the node's network")?;
        let _ = tug_runtime::remove_pod_cgroup(&s.cgroup_root);
        // Its parents (`tug`, `tug/<cluster>`) go too once no other node uses them: a
        // plain rmdir per hierarchy, which fails while other nodes' cgroups are inside.
        let hierarchies: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let mut parent = std::path::Path::new(&s.cgroup_root).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            for h in hierarchies
                .iter()
                .chain(std::iter::once(&PathBuf::from("/sys/fs/cgroup")))
            {
                let _ = std::fs::remove_dir(h.join(p));
            }
            parent = p.parent();
        }
    }
    std::fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    Ok(())
}

/// Lazily unmounts every mount point under `root`, deepest first.
pub fn unmount_under(root: &std::path::Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = root.to_string_lossy().to_string();
    let mut targets: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&t)
            .status();
    }
}
