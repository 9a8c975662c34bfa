//! `tug cluster stop-node` / `start-node`: failure drills. Stopping kills the node's tug
//! processes at once (SIGKILL, like a crash) and unplugs its veth; its containers keep
//! running, as on a host that lost its kubelet and network. Starting plugs it back in and
//! restarts the processes; the agent re-adopts its containers.

use anyhow::Context as _;
use clap::Args as ClapArgs;
use nix::sys::signal::Signal;
use std::io::Write;
use std::path::Path;

use super::progress::Progress;
use super::state::ClusterState;
use super::{net, process};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The cluster's name.
    #[arg(long, default_value = super::DEFAULT_NAME)]
    pub name: String,
    /// The node (as in `tug get nodes`).
    pub node: String,
}

fn load(clusters: &Path, args: &Args, verb: &str) -> anyhow::Result<ClusterState> {
    super::validate_name(&args.name)?;
    super::require_root(verb)?;
    let st = ClusterState::load(&clusters.join(&args.name))?;
    st.node(&args.node)?;
    Ok(st)
}

pub fn stop(clusters: &Path, args: &Args, err: &mut dyn Write) -> anyhow::Result<bool> {
    let st = load(clusters, args, "stop-node")?;
    let n = st.node(&args.node)?;
    let mut p = Progress::new(err);
    p.step(&format!("Stopping node {}", n.name), || {
        process::stop_node(&st, n, Signal::SIGKILL)?;
        net::set_node_link(n, false)
    })?;
    Ok(true)
}

pub async fn start(clusters: &Path, args: &Args, err: &mut dyn Write) -> anyhow::Result<bool> {
    let st = load(clusters, args, "start-node")?;
    let n = st.node(&args.node)?;
    let mut p = Progress::new(err);
    p.step(&format!("Starting node {}", n.name), || {
        net::set_node_link(n, true)?;
        let dir = st.node_dir(&n.name);
        for spec in &n.processes {
            // Idempotent: a process that still runs is left as it is.
            if process::running(&dir, &spec.name).is_none() {
                process::spawn(&st, n, spec)
                    .with_context(|| format!("restarting {} on {}", spec.name, n.name))?;
            }
        }
        Ok(())
    })?;
    Ok(true)
}
