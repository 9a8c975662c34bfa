//! `tug cluster delete`: stops the processes, has each agent remove its containers and pod
//! network (`tug-agent --cleanup` inside the node's namespace), then removes namespaces,
//! links, mounts, cgroups and the state dir. Every step runs even when an earlier one
//! failed, and a second run finishes what the first could not (idempotent).

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;
use std::io::Write;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::net::{self, NETNS_DIR};
use super::process;
use super::progress::Progress;
use super::state::{ClusterState, NodeState};

pub fn run(clusters: &Path, name: &str, err: &mut dyn Write) -> anyhow::Result<bool> {
    super::validate_name(name)?;
    super::require_root("delete")?;
    let mut p = Progress::new(err);
    delete(clusters, name, &mut p)?;
    Ok(true)
}

/// Deletes cluster `name` under `clusters`; a missing cluster is not an error.
pub fn delete(clusters: &Path, name: &str, p: &mut Progress<'_>) -> anyhow::Result<()> {
    let dir = clusters.join(name);
    if !dir.exists() {
        p.say(&format!(
            "Cluster {name:?} does not exist (no {}); nothing to delete.",
            dir.display()
        ));
        return Ok(());
    }
    p.say(&format!("Deleting cluster {name:?} ..."));
    let mut failures: Vec<String> = Vec::new();
    let mut note = |r: anyhow::Result<()>| {
        if let Err(e) = r {
            failures.push(format!("{e:#}"));
        }
    };
    // Without a state file (a create that failed at its first step) nothing but the dir
    // and the cgroups can exist.
    let st = ClusterState::load(&dir).ok();
    if let Some(st) = &st {
        note(p.step("Stopping the cluster's processes", || {
            each_node(st, |n| process::stop_node(st, n, Signal::SIGTERM))?;
            match &st.lb {
                Some(lb) => {
                    process::stop(&st.dir, &lb.name, Signal::SIGTERM, Duration::from_secs(2))
                }
                None => Ok(()),
            }
        }));
        note(
            p.step("Removing the nodes' containers and pod networks", || {
                each_node(st, |n| cleanup_agent(st, n))
            }),
        );
        let leftovers = each_node_collect(st, |n| processes_in_netns(&n.netns));
        if !leftovers.is_empty() {
            note(Err(anyhow::anyhow!(
                "processes we did not start still run in the cluster's node namespaces (PIDs \
                 {}); they are left alone: stop them, then run delete again",
                leftovers
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        note(
            p.step("Removing the node namespaces, links and bridge", || {
                let mut errs = Vec::new();
                for n in &st.nodes {
                    if let Err(e) = net::delete_node(n) {
                        errs.push(format!("{e:#}"));
                    }
                }
                if let Err(e) = net::delete_bridge(st) {
                    errs.push(format!("{e:#}"));
                }
                join_errors(errs)
            }),
        );
    }
    note(p.step("Removing mounts, cgroups and state", || {
        let mut errs = Vec::new();
        unmount_under(&dir);
        if let Err(e) = remove_cgroups(name) {
            errs.push(format!("{e:#}"));
        }
        if errs.is_empty() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                errs.push(format!("removing {}: {e}", dir.display()));
            }
        }
        join_errors(errs)
    }));
    if !failures.is_empty() {
        bail!(
            "cluster {name:?} was not completely deleted:\n  {}\n(run `tug cluster delete --name \
             {name}` again once fixed)",
            failures.join("\n  ")
        );
    }
    p.say(&format!("Deleted cluster {name:?}."));
    Ok(())
}

fn join_errors(errs: Vec<String>) -> anyhow::Result<()> {
    if errs.is_empty() {
        Ok(())
    } else {
        bail!("{}", errs.join("; "))
    }
}

/// Runs `f` for every node at once; all errors, joined.
fn each_node(
    st: &ClusterState,
    f: impl Fn(&NodeState) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<()> {
    let errs: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = st.nodes.iter().map(|n| s.spawn(|| f(n))).collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(_) => Some("a cleanup thread panicked".to_string()),
            })
            .collect()
    });
    join_errors(errs)
}

fn each_node_collect<T>(st: &ClusterState, f: impl Fn(&NodeState) -> Vec<T>) -> Vec<T> {
    st.nodes.iter().flat_map(f).collect()
}

/// `tug-agent --cleanup` for a node whose agent made state: it stops the node's
/// containers and removes its pod network, cgroups, mounts and root dir. It runs inside
/// the node's namespace, where the agent made the network.
fn cleanup_agent(st: &ClusterState, n: &NodeState) -> anyhow::Result<()> {
    let Some(spec) = n.processes.iter().find(|p| p.name == "agent") else {
        return Ok(());
    };
    let root = flag(&spec.argv, "--root-dir").context("the agent has no --root-dir")?;
    if !Path::new(&root).exists() {
        return Ok(());
    }
    if !net::netns_exists(&n.netns) {
        bail!(
            "node {}: its agent state {} exists but its network namespace {} is gone; remove the \
             directory by hand",
            n.name,
            root,
            n.netns
        );
    }
    let argv = vec![
        spec.argv[0].clone(),
        "--cleanup".into(),
        "--root-dir".into(),
        root,
    ];
    let log = process::log_file(&st.node_dir(&n.name), "cleanup");
    process::run_in_node(n, &argv, &log)
}

fn flag(argv: &[String], name: &str) -> Option<String> {
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .cloned()
}

/// PIDs of processes whose network namespace is node namespace `netns`.
pub fn processes_in_netns(netns: &str) -> Vec<u32> {
    let Ok(ns) = std::fs::metadata(Path::new(NETNS_DIR).join(netns)) else {
        return Vec::new();
    };
    let want = (ns.dev(), ns.ino());
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(m) = std::fs::metadata(e.path().join("ns/net")) {
            if (m.dev(), m.ino()) == want {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Lazily unmounts every mount point under `root`, deepest first.
fn unmount_under(root: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = root.to_string_lossy().to_string();
    let mut targets: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = nix::mount::umount2(t.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The cgroup dirs of cluster `name` (`tug/<name>`) in every mounted hierarchy (v1
/// controllers, v2 or hybrid's unified).
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut out = vec![root.join("tug").join(name)];
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let d = e.path().join("tug").join(name);
        if d.is_dir() {
            out.push(d);
        }
    }
    out.retain(|d| d.is_dir());
    out
}

/// Removes cluster `name`'s cgroups, children first. A cgroup that still holds
/// processes cannot be removed: the error names them.
fn remove_cgroups(name: &str) -> anyhow::Result<()> {
    fn rm(dir: &Path, errs: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rm(&e.path(), errs);
            }
        }
        if let Err(e) = std::fs::remove_dir(dir) {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            errs.push(format!(
                "removing cgroup {}: {e}{}",
                dir.display(),
                if procs.trim().is_empty() {
                    String::new()
                } else {
                    format!(
                        " (it still holds PIDs {})",
                        procs.split_whitespace().collect::<Vec<_>>().join(", ")
                    )
                }
            ));
        }
    }
    let mut errs = Vec::new();
    for d in cgroup_dirs(name) {
        rm(&d, &mut errs);
    }
    join_errors(errs)
}
