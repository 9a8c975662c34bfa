//! `tug cluster create`: network, certificates, images, control plane, agents, then wait
//! until every node is Ready. A failed create is rolled back with `delete` (unless
//! `--retain`, for debugging).

use anyhow::{bail, Context as _};
use clap::Args as ClapArgs;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tug_client::{Api, Client, Config, ListParams};
use tug_proto::core::v1::Node;

use super::progress::Progress;
use super::state::{ClusterState, Plan};
use super::{net, process, Binaries};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The cluster's name (prefix of its node names).
    #[arg(long, default_value = super::DEFAULT_NAME)]
    pub name: String,
    /// Control-plane nodes (Raft replicas): 1, 3 or 5.
    #[arg(long, default_value_t = 1, value_parser = parse_control_planes)]
    pub control_planes: usize,
    /// Worker nodes (0-100). With none, the control planes take pods.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub workers: u8,
    /// How long to wait for every node to be Ready, in seconds.
    #[arg(long, default_value_t = 120)]
    pub wait: u64,
    /// Keep what was made when create fails (for debugging; delete it later).
    #[arg(long)]
    pub retain: bool,
    /// An extra flag for every tug-controllers (repeatable), e.g.
    /// `--controllers-arg=--node-monitor-grace-period=10s`.
    #[arg(long = "controllers-arg", allow_hyphen_values = true)]
    pub controllers_args: Vec<String>,
    /// An extra flag for every tug-agent (repeatable), e.g. `--agent-arg=--max-pods=20`.
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,
}

fn parse_control_planes(s: &str) -> Result<usize, String> {
    match s {
        "1" | "3" | "5" => Ok(s.parse().unwrap_or(1)),
        _ => Err("must be 1, 3 or 5 (a Raft quorum needs an odd number of replicas)".into()),
    }
}

/// Host tools the cluster needs.
const TOOLS: [(&str, &str); 5] = [
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("unshare", "util-linux"),
    ("setsid", "util-linux"),
    ("hostname", "hostname"),
];

fn check_tools() -> anyhow::Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(t, _)| !std::env::split_paths(&path).any(|d| d.join(t).is_file()))
        .map(|(t, pkg)| format!("{t} (Debian package {pkg})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing host tools: {}; install them with apt-get install",
            missing.join(", ")
        );
    }
    Ok(())
}

pub async fn run(
    clusters: &Path,
    args: &Args,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<bool> {
    super::validate_name(&args.name)?;
    super::require_root("create")?;
    check_tools()?;
    let bins = Binaries::locate()?;
    let dir = clusters.join(&args.name);
    if dir.exists() {
        bail!(
            "cluster {:?} already exists ({}); delete it first with `tug cluster delete --name {}`",
            args.name,
            dir.display(),
            args.name
        );
    }
    let plan = Plan {
        control_planes: args.control_planes,
        workers: args.workers as usize,
        controllers_args: args.controllers_args.clone(),
        agent_args: args.agent_args.clone(),
    };
    let started = Instant::now();
    let mut p = Progress::new(err);
    p.say(&format!(
        "Creating cluster {:?} ({} control plane{}, {} worker{}) ...",
        args.name,
        plan.control_planes,
        if plan.control_planes == 1 { "" } else { "s" },
        plan.workers,
        if plan.workers == 1 { "" } else { "s" }
    ));
    let result = create(clusters, &dir, &args.name, &plan, &bins, args.wait, &mut p).await;
    match result {
        Ok(st) => {
            let secs = started.elapsed().as_secs_f64();
            let kc = st.kubeconfig();
            p.say(&format!(
                "\nCluster {} is ready: {} node{} in {secs:.1}s. Use it with:\n\n  export KUBECONFIG={}\n  tug get nodes\n\nDelete it with `tug cluster delete --name {}`.",
                p.bold(&st.name),
                st.nodes.len(),
                if st.nodes.len() == 1 { "" } else { "s" },
                kc.display(),
                st.name
            ));
            writeln!(out, "{}", kc.display())?;
            Ok(true)
        }
        Err(e) if args.retain || !dir.exists() => Err(e),
        Err(e) => {
            p.say(&format!("error: {e:#}"));
            p.say("Removing what was made (pass --retain to keep it for debugging) ...");
            if let Err(d) = super::delete::delete(clusters, &args.name, &mut p) {
                p.say(&format!("error while cleaning up: {d:#}"));
            }
            bail!("creating cluster {:?} failed (see above)", args.name)
        }
    }
}

async fn create(
    clusters: &Path,
    dir: &Path,
    name: &str,
    plan: &Plan,
    bins: &Binaries,
    wait: u64,
    p: &mut Progress<'_>,
) -> anyhow::Result<ClusterState> {
    // Subnet and bridge are machine-wide: pick and claim them under one lock.
    let st = p.step("Creating the node network", || {
        let lock = net::lock_machine()?;
        let used: Vec<u8> = std::fs::read_dir(clusters)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| ClusterState::load(&e.path()).ok())
            .map(|s| s.subnet)
            .collect();
        let subnet = net::pick_subnet(&used)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let st = ClusterState::plan(name, dir, subnet, plan, bins);
        st.save()?;
        mount_nodes_tmpfs(&st)?;
        net::create_bridge(&st)?;
        drop(lock);
        for n in &st.nodes {
            net::create_node(&st, n)?;
        }
        Ok(st)
    })?;

    // Images build (or are found up to date) while the certificates are made.
    let images = {
        let bins = bins.clone();
        let cache = clusters.join(".images");
        let target = st.images_dir();
        std::thread::spawn(move || prepare_images(&bins, &cache, &target))
    };
    p.step("Generating certificates", || write_pki(&st))?;
    p.step("Preparing the demo images", || {
        images
            .join()
            .map_err(|_| anyhow::anyhow!("the image preparation thread panicked"))?
    })?;

    let cps: Vec<_> = st.nodes.iter().filter(|n| n.control_plane).collect();
    let client = Client::new(
        Config::from_kubeconfig_file(&st.kubeconfig())
            .with_context(|| format!("loading {}", st.kubeconfig().display()))?,
    )
    .context("building a client for the new cluster")?;
    p.step_async(
        &format!(
            "Starting the control plane ({} apiserver replica{})",
            cps.len(),
            if cps.len() == 1 { "" } else { "s" }
        ),
        async {
            for n in &cps {
                process::spawn(&st, n, &n.processes[0])?;
            }
            if let Some(lb) = &st.lb {
                process::spawn_host(&st, lb)?;
            }
            wait_api(&st, &client, Duration::from_secs(wait)).await?;
            for n in &cps {
                for spec in n
                    .processes
                    .iter()
                    .filter(|s| s.name != "apiserver" && s.name != "agent")
                {
                    process::spawn(&st, n, spec)?;
                }
            }
            Ok(())
        },
    )
    .await?;
    p.step_async(
        &format!(
            "Starting {} node agent{}, waiting for Ready",
            st.nodes.len(),
            if st.nodes.len() == 1 { "" } else { "s" }
        ),
        async {
            for n in &st.nodes {
                let spec = n
                    .processes
                    .iter()
                    .find(|s| s.name == "agent")
                    .context("no agent")?;
                process::spawn(&st, n, spec)?;
            }
            wait_ready(&st, &client, Duration::from_secs(wait)).await
        },
    )
    .await?;
    Ok(st)
}

/// Node state (apiserver data, agent root dirs, logs) lives on a tmpfs of the cluster's
/// own: fast, gone with the cluster, and the agents' image GC sees a nearly empty
/// filesystem rather than the host's disk (on a fuller host disk it would remove the
/// preloaded demo images as unused right after importing them).
fn mount_nodes_tmpfs(st: &ClusterState) -> anyhow::Result<()> {
    let nodes = st.dir.join("nodes");
    std::fs::create_dir_all(&nodes).with_context(|| format!("creating {}", nodes.display()))?;
    nix::mount::mount(
        Some("tmpfs"),
        &nodes,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("mode=0755,size=50%"),
    )
    .with_context(|| format!("mounting a tmpfs on {}", nodes.display()))
}

/// The CA, serving certificate (valid for every control-plane IP), peer certificates,
/// admin credentials; the admin kubeconfig and one per control-plane node for its
/// scheduler and controllers (pointing at that node's own apiserver).
fn write_pki(st: &ClusterState) -> anyhow::Result<()> {
    let replicas: Vec<(String, Vec<IpAddr>)> = st
        .nodes
        .iter()
        .filter(|n| n.control_plane)
        .enumerate()
        .map(|(i, n)| (format!("apiserver-{}", i + 1), vec![IpAddr::V4(n.ip)]))
        .collect();
    let pki = tug_pki::init_cluster_pki(
        &st.pki_dir(),
        &st.name,
        &st.server_url(),
        (&[st.nodes[0].name.clone()], &[IpAddr::V4(st.gateway())]),
        &replicas,
    )
    .with_context(|| format!("creating the PKI in {}", st.pki_dir().display()))?;
    tug_pki::kubeconfig::write_kubeconfig(&st.kubeconfig(), &pki.kubeconfig)?;
    for n in st.nodes.iter().filter(|n| n.control_plane) {
        let mut kc = pki.kubeconfig.clone();
        for c in &mut kc.clusters {
            c.cluster.server = format!("https://{}:{}", n.ip, super::state::API_PORT);
        }
        let dir = st.node_dir(&n.name);
        std::fs::create_dir_all(&dir)?;
        tug_pki::kubeconfig::write_kubeconfig(&dir.join("kubeconfig"), &kc)?;
    }
    Ok(())
}

/// Builds the demo images into a cache shared by all clusters (`tug-image build-demo`
/// rebuilds only what is out of date) and hard-links them into the cluster's images dir.
fn prepare_images(bins: &Binaries, cache: &Path, target: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let lock_path = cache.join(".lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    // Two creates at once must not build into the same dir together.
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("locking {}", lock_path.display()))?;
    let out = std::process::Command::new(bins.path("tug-image"))
        .arg("build-demo")
        .arg("--out")
        .arg(cache)
        .output()
        .context("running tug-image build-demo")?;
    if !out.status.success() {
        bail!(
            "tug-image build-demo --out {} failed: {}",
            cache.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::create_dir_all(target)?;
    for e in std::fs::read_dir(cache)?.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "tar") {
            let to = target.join(e.file_name());
            if std::fs::hard_link(&path, &to).is_err() {
                std::fs::copy(&path, &to)
                    .with_context(|| format!("copying {} to {}", path.display(), to.display()))?;
            }
        }
    }
    Ok(())
}

/// Fails with the process's log tail if a process we started has died.
fn check_alive(st: &ClusterState, which: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    if let Some(lb) = &st.lb {
        if process::running(&st.dir, &lb.name).is_none() {
            let log = process::log_file(&st.dir, &lb.name);
            bail!(
                "the API load balancer exited; the last lines of {}:\n{}",
                log.display(),
                super::log_tail(&log, 15)
            );
        }
    }
    for n in &st.nodes {
        let dir = st.node_dir(&n.name);
        for spec in n.processes.iter().filter(|s| which(&s.name)) {
            if process::pid_file(&dir, &spec.name).exists()
                && process::running(&dir, &spec.name).is_none()
            {
                let log = process::log_file(&dir, &spec.name);
                bail!(
                    "{} on node {} exited; the last lines of {}:\n{}",
                    spec.name,
                    n.name,
                    log.display(),
                    super::log_tail(&log, 15)
                );
            }
        }
    }
    Ok(())
}

/// Waits until the API answers `/readyz` through the admin kubeconfig (a quorum has a
/// leader).
async fn wait_api(st: &ClusterState, client: &Client, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        check_alive(st, |p| p == "apiserver")?;
        let last =
            match tokio::time::timeout(Duration::from_secs(2), client.raw_get("/readyz", None))
                .await
            {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer within 2s".to_string(),
            };
        if Instant::now() > deadline {
            let n = &st.nodes[0];
            let log = process::log_file(&st.node_dir(&n.name), "apiserver");
            bail!(
                "the API at {} was not ready after {}s (last answer: {last}); the last lines of {}:\n{}",
                st.server_url(),
                timeout.as_secs(),
                log.display(),
                super::log_tail(&log, 15)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Names of the nodes whose Ready condition is True.
pub async fn ready_nodes(client: &Client) -> anyhow::Result<Vec<String>> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(nodes
        .items
        .into_iter()
        .filter(|n| {
            n.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .filter_map(|n| n.metadata.name)
        .collect())
}

/// Waits until every node of the cluster is Ready; on timeout names the first node that
/// is not, with its agent's log tail.
pub async fn wait_ready(
    st: &ClusterState,
    client: &Client,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        check_alive(st, |_| true)?;
        let ready = tokio::time::timeout(Duration::from_secs(3), ready_nodes(client))
            .await
            .unwrap_or_else(|_| Ok(Vec::new()))
            .unwrap_or_default();
        let missing: Vec<_> = st
            .nodes
            .iter()
            .filter(|n| !ready.contains(&n.name))
            .collect();
        let Some(first) = missing.first() else {
            return Ok(());
        };
        if Instant::now() > deadline {
            let log = process::log_file(&st.node_dir(&first.name), "agent");
            bail!(
                "node{} {} not Ready after {}s; the last lines of {}:\n{}",
                if missing.len() == 1 { "" } else { "s" },
                missing
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                timeout.as_secs(),
                log.display(),
                super::log_tail(&log, 15)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_planes_must_be_an_odd_quorum_size() {
        for (s, ok) in [
            ("1", true),
            ("3", true),
            ("5", true),
            ("2", false),
            ("x", false),
        ] {
            assert_eq!(parse_control_planes(s).is_ok(), ok, "{s}");
        }
    }
}
