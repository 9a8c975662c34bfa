//! A local multi-node tug cluster for scenario tests and benchmarks, made and removed by
//! running `tug cluster create` / `tug cluster delete` (so the tests exercise the real
//! command), with node facts read from the cluster's `state.json`.
//!
//! Needs root and the binaries next to `tug` (`cargo build -p tug-ctl -p tug-apiserver
//! -p tug-scheduler -p tug-controllers -p tug-agent -p tug-image`). [`Cluster`] deletes
//! its cluster when dropped, so a failing test leaves nothing behind; use distinct names
//! per test (tests run in parallel processes).

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tug_client::{Api, Client, Config, ListParams};
use tug_proto::core::v1::Node;

/// The environment variable `tug cluster` reads its clusters dir from.
pub const CLUSTERS_DIR_ENV: &str = "TUG_CLUSTERS_DIR";
/// The environment variable that points the harness at the binaries (default: next to
/// the running test or benchmark, i.e. `target/<profile>`).
pub const BIN_DIR_ENV: &str = "TUG_BIN_DIR";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{binary} not found in {dir}: build it with `cargo build{release} -p tug-ctl -p tug-apiserver -p tug-scheduler -p tug-controllers -p tug-agent -p tug-image` (or set {BIN_DIR_ENV})")]
    MissingBinary {
        binary: String,
        dir: PathBuf,
        release: &'static str,
    },
    #[error("reading the cluster state {path}: {reason}")]
    State { path: PathBuf, reason: String },
    #[error("building a client from {kubeconfig}: {reason}")]
    Client { kubeconfig: PathBuf, reason: String },
    #[error("cluster {cluster} has no node {node:?}")]
    NoNode { cluster: String, node: String },
    #[error("node {node} did not become {want} within {secs}s (last seen: {last})")]
    Timeout {
        node: String,
        want: &'static str,
        secs: u64,
        last: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to create.
#[derive(Debug, Clone)]
pub struct Options {
    /// Cluster name: distinct per test.
    pub name: String,
    /// 1, 3 or 5.
    pub control_planes: usize,
    pub workers: usize,
    /// Extra `tug-controllers` flags (e.g. `--node-monitor-grace-period=10s`).
    pub controllers_args: Vec<String>,
    /// Extra `tug-agent` flags (e.g. `--backoff-base-seconds=1`).
    pub agent_args: Vec<String>,
    /// `TUG_CLUSTERS_DIR` for the `tug` runs (None: inherited, else /var/lib/tug/clusters).
    pub clusters_dir: Option<PathBuf>,
    /// How long `create` may wait for every node to be Ready.
    pub wait: Duration,
}

impl Options {
    pub fn new(name: &str, control_planes: usize, workers: usize) -> Options {
        Options {
            name: name.to_string(),
            control_planes,
            workers,
            controllers_args: Vec::new(),
            agent_args: Vec::new(),
            clusters_dir: None,
            wait: Duration::from_secs(120),
        }
    }
}

/// A node of the cluster, as recorded by `tug cluster create`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    pub ip: Ipv4Addr,
    pub control_plane: bool,
    /// The node's network namespace (under /run/netns).
    pub netns: String,
    /// The host end of its veth.
    pub veth: String,
}

/// A running local cluster; deleted on drop unless [`Cluster::delete`] ran.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    dir: PathBuf,
    clusters_dir: Option<PathBuf>,
    bin_dir: PathBuf,
    kubeconfig: PathBuf,
    bridge: String,
    nodes: Vec<NodeInfo>,
    deleted: bool,
}

/// Where `tug` and the component binaries are: `$TUG_BIN_DIR`, else the directory of the
/// running executable (`target/<profile>`; a test binary in `target/<profile>/deps` looks
/// one level up). Checks that `tug` is there.
pub fn bin_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os(BIN_DIR_ENV).filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().map_err(|source| Error::Io {
                what: "locating the running executable".into(),
                source,
            })?;
            let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
            if dir.file_name() == Some(OsStr::new("deps")) {
                dir.pop();
            }
            dir
        }
    };
    if !dir.join("tug").is_file() {
        return Err(Error::MissingBinary {
            binary: "tug".into(),
            release: if dir.ends_with("release") {
                " --release"
            } else {
                ""
            },
            dir,
        });
    }
    Ok(dir)
}

/// Whether this process runs as root (cluster tests skip themselves otherwise).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn run(cmd: &mut Command) -> Result<Output> {
    let text = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|source| Error::Io {
        what: format!("running {text}"),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: text,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        });
    }
    Ok(out)
}

impl Cluster {
    fn tug_command(bin_dir: &Path, clusters_dir: &Option<PathBuf>) -> Command {
        let mut cmd = Command::new(bin_dir.join("tug"));
        if let Some(d) = clusters_dir {
            cmd.env(CLUSTERS_DIR_ENV, d);
        }
        cmd.env("NO_COLOR", "1");
        cmd
    }

    /// Runs `tug cluster create` (after deleting a stale cluster of the same name left by
    /// a crashed run) and reads the new cluster's state. Blocks until every node is Ready.
    pub fn create(opts: &Options) -> Result<Cluster> {
        let bin_dir = bin_dir()?;
        let clusters_dir = opts.clusters_dir.clone();
        let root = clusters_dir
            .clone()
            .or_else(|| std::env::var_os(CLUSTERS_DIR_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/lib/tug/clusters"));
        let dir = root.join(&opts.name);
        if dir.exists() {
            run(Self::tug_command(&bin_dir, &clusters_dir)
                .args(["cluster", "delete", "--name", &opts.name]))?;
        }
        let mut cmd = Self::tug_command(&bin_dir, &clusters_dir);
        cmd.args(["cluster", "create", "--name", &opts.name])
            .arg("--control-planes")
            .arg(opts.control_planes.to_string())
            .arg("--workers")
            .arg(opts.workers.to_string())
            .arg("--wait")
            .arg(opts.wait.as_secs().max(1).to_string());
        for a in &opts.controllers_args {
            cmd.arg(format!("--controllers-arg={a}"));
        }
        for a in &opts.agent_args {
            cmd.arg(format!("--agent-arg={a}"));
        }
        run(&mut cmd)?;
        let mut cluster = Cluster {
            name: opts.name.clone(),
            dir: dir.clone(),
            clusters_dir,
            bin_dir,
            kubeconfig: dir.join("kubeconfig"),
            bridge: String::new(),
            nodes: Vec::new(),
            deleted: false,
        };
        // From here on a failure drops `cluster`, which deletes it.
        let (bridge, nodes) = read_state(&dir)?;
        cluster.bridge = bridge;
        cluster.nodes = nodes;
        Ok(cluster)
    }

    /// Takes charge of an existing cluster (made by `tug cluster create` elsewhere, or
    /// kept by `--retain` after a failed create): it is deleted when dropped.
    pub fn adopt(name: &str, clusters_dir: Option<PathBuf>) -> Result<Cluster> {
        let bin_dir = bin_dir()?;
        let root = clusters_dir
            .clone()
            .or_else(|| std::env::var_os(CLUSTERS_DIR_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/lib/tug/clusters"));
        let dir = root.join(name);
        let (bridge, nodes) = read_state(&dir)?;
        Ok(Cluster {
            name: name.to_string(),
            kubeconfig: dir.join("kubeconfig"),
            dir,
            clusters_dir,
            bin_dir,
            bridge,
            nodes,
            deleted: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster's state dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig. With several control planes its server is the cluster's API
    /// load balancer on the host (the bridge's .1), which skips stopped control planes.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// An admin kubeconfig that talks to one control-plane node's own apiserver (None for
    /// a worker).
    pub fn node_kubeconfig(&self, node: &str) -> Option<PathBuf> {
        let n = self.node(node).ok()?;
        n.control_plane
            .then(|| self.dir.join("nodes").join(&n.name).join("kubeconfig"))
    }

    /// The host bridge all nodes are plugged into.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// All nodes: control planes first, then workers.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn control_planes(&self) -> Vec<&NodeInfo> {
        self.nodes.iter().filter(|n| n.control_plane).collect()
    }

    pub fn workers(&self) -> Vec<&NodeInfo> {
        self.nodes.iter().filter(|n| !n.control_plane).collect()
    }

    pub fn node(&self, name: &str) -> Result<&NodeInfo> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| Error::NoNode {
                cluster: self.name.clone(),
                node: name.to_string(),
            })
    }

    pub fn node_ip(&self, name: &str) -> Option<Ipv4Addr> {
        self.node(name).ok().map(|n| n.ip)
    }

    /// An admin client for the cluster.
    pub fn client(&self) -> Result<Client> {
        let err = |reason: String| Error::Client {
            kubeconfig: self.kubeconfig.clone(),
            reason,
        };
        let config =
            Config::from_kubeconfig_file(&self.kubeconfig).map_err(|e| err(e.to_string()))?;
        Client::new(config).map_err(|e| err(e.to_string()))
    }

    /// The `tug` binary this cluster was made with.
    pub fn tug_binary(&self) -> PathBuf {
        self.bin_dir.join("tug")
    }

    /// Runs `tug --kubeconfig <admin> ARGS` and returns its output (whatever its status).
    pub fn tug(&self, args: &[&str]) -> Result<Output> {
        Command::new(self.tug_binary())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .map_err(|source| Error::Io {
                what: format!("running tug {}", args.join(" ")),
                source,
            })
    }

    fn cluster_verb(&self, verb: &str, node: Option<&str>) -> Result<()> {
        let mut cmd = Self::tug_command(&self.bin_dir, &self.clusters_dir);
        cmd.args(["cluster", verb, "--name", &self.name]);
        if let Some(n) = node {
            cmd.arg(n);
        }
        run(&mut cmd).map(drop)
    }

    /// `tug cluster stop-node`: kills the node's processes and unplugs its veth.
    pub fn stop_node(&self, node: &str) -> Result<()> {
        self.node(node)?;
        self.cluster_verb("stop-node", Some(node))
    }

    /// `tug cluster start-node`: plugs the node back in and restarts its processes.
    pub fn start_node(&self, node: &str) -> Result<()> {
        self.node(node)?;
        self.cluster_verb("start-node", Some(node))
    }

    /// Waits until `node`'s Ready condition is True (`ready`) or not True (`!ready`).
    pub async fn wait_node_ready(&self, node: &str, ready: bool, timeout: Duration) -> Result<()> {
        let client = self.client()?;
        let nodes: Api<Node> = Api::all(client);
        let deadline = Instant::now() + timeout;
        let mut last = String::from("nothing yet");
        loop {
            let got =
                tokio::time::timeout(Duration::from_secs(3), nodes.list(&ListParams::default()))
                    .await;
            if let Ok(Ok(list)) = got {
                let cond = list
                    .items
                    .iter()
                    .find(|n| n.metadata.name.as_deref() == Some(node))
                    .and_then(|n| n.status.as_ref())
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .map(|c| c.status.clone());
                last = format!("Ready={}", cond.as_deref().unwrap_or("(none)"));
                if (cond.as_deref() == Some("True")) == ready {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    node: node.to_string(),
                    want: if ready { "Ready" } else { "NotReady" },
                    secs: timeout.as_secs(),
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What the cluster occupies on this machine, for checking after delete that none of
    /// it remains.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            name: self.name.clone(),
            dir: self.dir.clone(),
            netns: self.nodes.iter().map(|n| n.netns.clone()).collect(),
            netns_ids: self
                .nodes
                .iter()
                .filter_map(|n| std::fs::metadata(Path::new("/run/netns").join(&n.netns)).ok())
                .map(|m| (m.dev(), m.ino()))
                .collect(),
            links: self
                .nodes
                .iter()
                .map(|n| n.veth.clone())
                .chain([self.bridge.clone()])
                .collect(),
        }
    }

    /// `tug cluster delete`.
    pub fn delete(mut self) -> Result<()> {
        self.deleted = true;
        self.cluster_verb("delete", None)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.deleted {
            if let Err(e) = self.cluster_verb("delete", None) {
                eprintln!("deleting cluster {} on drop: {e}", self.name);
            }
        }
    }
}

fn read_state(dir: &Path) -> Result<(String, Vec<NodeInfo>)> {
    let path = dir.join("state.json");
    let err = |reason: String| Error::State {
        path: path.clone(),
        reason,
    };
    let bytes = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
    let s = |v: &serde_json::Value, k: &str| -> Result<String> {
        v.get(k)
            .and_then(|x| x.as_str())
            .map(str::to_string)
            .ok_or_else(|| err(format!("no string field {k:?}")))
    };
    let bridge = s(&v, "bridge")?;
    let mut nodes = Vec::new();
    for n in v
        .get("nodes")
        .and_then(|n| n.as_array())
        .ok_or_else(|| err("no nodes".into()))?
    {
        nodes.push(NodeInfo {
            name: s(n, "name")?,
            ip: s(n, "ip")?
                .parse()
                .map_err(|e| err(format!("node ip: {e}")))?,
            control_plane: n
                .get("control_plane")
                .and_then(|b| b.as_bool())
                .unwrap_or(false),
            netns: s(n, "netns")?,
            veth: s(n, "veth")?,
        });
    }
    Ok((bridge, nodes))
}

/// Names and identities of what a cluster occupies (see [`Cluster::footprint`]).
#[derive(Debug, Clone)]
pub struct Footprint {
    pub name: String,
    pub dir: PathBuf,
    pub netns: Vec<String>,
    /// (dev, inode) of each node namespace: processes still inside one are found even
    /// after its name is gone.
    pub netns_ids: Vec<(u64, u64)>,
    /// Host veths and the bridge.
    pub links: Vec<String>,
}

impl Footprint {
    /// Everything of the cluster still on the machine, one description each: network
    /// namespaces, links, mounts, cgroups, processes, the state dir. Empty = clean.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for ns in &self.netns {
            if Path::new("/run/netns").join(ns).exists() {
                out.push(format!("network namespace {ns}"));
            }
        }
        for l in &self.links {
            if Path::new("/sys/class/net").join(l).exists() {
                out.push(format!("link {l}"));
            }
        }
        // With the slash: cluster "a" must not match cluster "ab"'s paths.
        let dir = format!("{}/", self.dir.to_string_lossy());
        if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
            for m in info.lines().filter_map(|l| l.split(' ').nth(4)) {
                let ns_mount = self.netns.iter().any(|ns| m == format!("/run/netns/{ns}"));
                if m.starts_with(&dir) || ns_mount {
                    out.push(format!("mount {m}"));
                }
            }
        }
        let cg = Path::new("/sys/fs/cgroup");
        let mut cgroup_dirs = vec![cg.join("tug").join(&self.name)];
        for e in std::fs::read_dir(cg).into_iter().flatten().flatten() {
            cgroup_dirs.push(e.path().join("tug").join(&self.name));
        }
        for d in cgroup_dirs {
            if d.is_dir() {
                out.push(format!("cgroup {}", d.display()));
            }
        }
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(e.path().join("cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            let in_ns = std::fs::metadata(e.path().join("ns/net"))
                .is_ok_and(|m| self.netns_ids.contains(&(m.dev(), m.ino())));
            if in_ns || cmdline.contains(&dir) {
                out.push(format!("process {pid}: {}", cmdline.trim()));
            }
        }
        if self.dir.exists() {
            out.push(format!("state dir {}", self.dir.display()));
        }
        out
    }
}
