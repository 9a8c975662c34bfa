//! `tug cluster`: local multi-node clusters whose nodes are network namespaces on one bridge.
//!
//! A node is a network namespace ("host") with its own IP on a per-cluster host bridge,
//! and its processes run in their own UTS namespace with the node's hostname: like kind's
//! node containers, without Docker. Control-plane nodes run `tug-apiserver` (one Raft
//! replica each), `tug-scheduler`, `tug-controllers` and `tug-agent`; workers run
//! `tug-agent`.
//!
//! Everything a cluster owns is recorded in its state dir
//! (`/var/lib/tug/clusters/<name>`, or `$TUG_CLUSTERS_DIR/<name>`) before it is made, so
//! `delete` can undo a half-finished `create`:
//!
//! ```text
//! state.json                 nodes, IPs, netns/veth/bridge names, every process's argv
//! pki/                       CA, serving/peer/admin certificates, admin.kubeconfig
//! kubeconfig                 the admin kubeconfig (what `tug cluster kubeconfig` prints)
//! lb.log, lb.pid             the API load balancer (several control planes only)
//! images/                    the demo images every agent imports at start
//! nodes/                     a tmpfs holding everything below
//! nodes/<node>/<proc>.log    each process's stdout and stderr
//! nodes/<node>/<proc>.pid    "<pid> <start time>" of each process we started
//! nodes/<node>/apiserver/    the replica's raft log and state
//! nodes/<node>/agent/        the agent's --root-dir
//! ```
//!
//! # Layout
//! - `mod.rs`: the verbs' flags, [`run`], cluster names and where state lives.
//! - `state.rs`: the recorded cluster ([`state::ClusterState`]) and the plan `create` makes.
//! - `net.rs`: the bridge, node namespaces and veths (iproute2's `ip`).
//! - `process.rs`: starting detached processes inside a node, PID records, stopping them.
//! - `create.rs`, `delete.rs`, `node.rs` (stop-node/start-node): the verbs.
//! - `lb.rs`: the API load balancer on the host for clusters with several control planes.
//! - `progress.rs`: step-by-step progress on stderr (a spinner on a TTY only).

pub mod create;
pub mod delete;
pub mod lb;
pub mod net;
pub mod node;
pub mod process;
pub mod progress;
pub mod state;

use anyhow::{bail, Context as _};
use clap::{Args as ClapArgs, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where clusters live unless `TUG_CLUSTERS_DIR` says otherwise.
pub const DEFAULT_CLUSTERS_DIR: &str = "/var/lib/tug/clusters";
/// The environment variable that moves the clusters dir (tests).
pub const CLUSTERS_DIR_ENV: &str = "TUG_CLUSTERS_DIR";
/// The default cluster name, as kind's `kind`.
pub const DEFAULT_NAME: &str = "tug";
/// Longest cluster name: node names (`<name>-control-plane5`) stay short enough for the
/// agent's namespace and socket paths.
pub const NAME_MAX: usize = 32;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    pub command: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Create a local cluster: nodes are network namespaces on one bridge (needs root).
    Create(create::Args),
    /// List the local clusters.
    List,
    /// Print the path of a cluster's admin kubeconfig.
    Kubeconfig(NameArg),
    /// Stop a node's processes and unplug its network (failure drills).
    StopNode(node::Args),
    /// Plug a stopped node back in and restart its processes.
    StartNode(node::Args),
    /// Delete a cluster and everything it made (processes, namespaces, links, mounts,
    /// cgroups, state).
    Delete(NameArg),
    /// The API load balancer of a cluster with several control planes (started by create).
    #[command(hide = true)]
    Lb(lb::Args),
}

#[derive(Debug, ClapArgs)]
pub struct NameArg {
    /// The cluster's name.
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
}

/// Runs a `tug cluster` verb. Needs no kubeconfig: the cluster's own state is the input.
pub async fn run(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<bool> {
    let dir = clusters_dir();
    match &args.command {
        Verb::Create(a) => create::run(&dir, a, out, err).await,
        Verb::List => list(&dir, out),
        Verb::Kubeconfig(a) => {
            validate_name(&a.name)?;
            let st = state::ClusterState::load(&dir.join(&a.name))?;
            writeln!(out, "{}", st.kubeconfig().display())?;
            Ok(true)
        }
        Verb::StopNode(a) => node::stop(&dir, a, err),
        Verb::StartNode(a) => node::start(&dir, a, err).await,
        Verb::Delete(a) => delete::run(&dir, &a.name, err),
        Verb::Lb(a) => lb::run(a).await,
    }
}

/// `$TUG_CLUSTERS_DIR`, else [`DEFAULT_CLUSTERS_DIR`]; made absolute, as it ends up in
/// the argv of processes that run in another directory.
pub fn clusters_dir() -> PathBuf {
    let dir = std::env::var_os(CLUSTERS_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CLUSTERS_DIR));
    std::path::absolute(&dir).unwrap_or(dir)
}

fn list(dir: &Path, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut rows = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if validate_name(&name).is_err() || !e.path().is_dir() {
                continue;
            }
            match state::ClusterState::load(&e.path()) {
                Ok(st) => rows.push((
                    name,
                    st.nodes
                        .iter()
                        .filter(|n| n.control_plane)
                        .count()
                        .to_string(),
                    st.nodes
                        .iter()
                        .filter(|n| !n.control_plane)
                        .count()
                        .to_string(),
                    format!("{}.0/24", st.subnet_prefix()),
                    st.kubeconfig().display().to_string(),
                )),
                Err(_) => rows.push((
                    name,
                    "?".into(),
                    "?".into(),
                    "?".into(),
                    "(incomplete: tug cluster delete --name it)".into(),
                )),
            }
        }
    }
    if rows.is_empty() {
        writeln!(out, "No clusters found.")?;
        return Ok(true);
    }
    rows.sort();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(4);
    writeln!(
        out,
        "{:w0$}   CONTROL-PLANES   WORKERS   SUBNET            KUBECONFIG",
        "NAME"
    )?;
    for (name, cp, w, subnet, kc) in rows {
        writeln!(out, "{name:w0$}   {cp:<14}   {w:<7}   {subnet:<16}  {kc}")?;
    }
    Ok(true)
}

/// A cluster name is a DNS label (it prefixes node names, which are DNS subdomains) of at
/// most [`NAME_MAX`] characters, starting with a letter.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name.as_bytes()[0].is_ascii_lowercase()
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        bail!(
            "cluster name {name:?} is invalid: use 1-{NAME_MAX} lowercase letters, digits and \
             '-', starting with a letter and not ending with '-' (e.g. --name dev)"
        );
    }
    Ok(())
}

/// Node-level work creates namespaces, links, mounts and cgroups: root only.
pub fn require_root(verb: &str) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "`tug cluster {verb}` creates network namespaces, links, mounts and cgroups, which \
             needs root: run it as root (e.g. `sudo -E tug cluster {verb} ...`)"
        );
    }
    Ok(())
}

/// The binaries a cluster runs, all found next to the running `tug`.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
}

/// Every binary `tug cluster` starts, with its cargo package.
pub const BINARIES: [&str; 5] = [
    "tug-apiserver",
    "tug-scheduler",
    "tug-controllers",
    "tug-agent",
    "tug-image",
];

impl Binaries {
    /// The directory of the running `tug` (target/debug after a build), checked to hold
    /// every binary in [`BINARIES`].
    pub fn locate() -> anyhow::Result<Binaries> {
        let exe = std::env::current_exe().context("locating the running tug binary")?;
        let dir = exe
            .parent()
            .context("the tug binary has no parent directory")?
            .to_path_buf();
        let b = Binaries { dir };
        b.check()?;
        Ok(b)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        let missing: Vec<&str> = BINARIES
            .iter()
            .copied()
            .filter(|b| !self.dir.join(b).is_file())
            .collect();
        if !missing.is_empty() {
            let release = self.dir.file_name().is_some_and(|d| d == "release");
            let pkgs: String = BINARIES.iter().map(|b| format!(" -p {b}")).collect();
            bail!(
                "{} not found next to tug in {}: build {} with `cargo build{}{pkgs}`",
                missing.join(", "),
                self.dir.display(),
                if missing.len() == 1 { "it" } else { "them" },
                if release { " --release" } else { "" },
            );
        }
        Ok(())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The last `lines` lines of a log file (or a note that it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..]
                .iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(e) => format!("    (cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_dns_labels_starting_with_a_letter() {
        let cases = [
            ("tug", true),
            ("dev-2", true),
            ("a", true),
            ("", false),
            ("Dev", false),
            ("2dev", false),
            ("dev-", false),
            ("dev_x", false),
            ("dev.x", false),
            ("a23456789012345678901234567890123", false),
        ];
        for (name, ok) in cases {
            assert_eq!(validate_name(name).is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn a_missing_binary_error_names_it_and_the_cargo_command() {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("release");
        std::fs::create_dir(&release).unwrap();
        for b in BINARIES.iter().filter(|b| **b != "tug-agent") {
            std::fs::write(release.join(b), "").unwrap();
        }
        let e = Binaries { dir: release }.check().unwrap_err().to_string();
        assert!(e.starts_with("tug-agent not found next to tug"), "{e}");
        assert!(e.contains("cargo build --release -p tug-apiserver"), "{e}");
    }
}
