//! Starting a node's processes detached (own session) inside the node's network namespace
//! with the node's hostname, recording their PIDs, and stopping only what we recorded.
//!
//! A process is started as
//! `setsid nsenter --net=/run/netns/<ns> unshare --uts sh -c 'hostname "$0" && exec "$@"' <node> ARGV`:
//! every step execs in place, so the PID we spawn is the PID of the final program. We use
//! `nsenter --net` rather than `ip netns exec`, which would also give the process a private
//! mount namespace: the agent's pod namespaces and rootfs mounts must stay visible to the
//! host (re-adoption, cleanup). A PID record is `<pid> <start time>`, so a recycled PID is
//! never mistaken for ours.

use anyhow::{bail, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::net::NETNS_DIR;
use super::state::{ClusterState, NodeState, ProcessSpec};

/// The PID file of process `name` of a node.
pub fn pid_file(node_dir: &Path, name: &str) -> PathBuf {
    node_dir.join(format!("{name}.pid"))
}

pub fn log_file(node_dir: &Path, name: &str) -> PathBuf {
    node_dir.join(format!("{name}.log"))
}

/// Starts `spec` on node `n` and records its PID.
pub fn spawn(st: &ClusterState, n: &NodeState, spec: &ProcessSpec) -> anyhow::Result<u32> {
    spawn_at(&st.node_dir(&n.name), Some(n), spec)
}

/// Starts `spec` on the host (the load balancer); log and PID file in the cluster dir.
pub fn spawn_host(st: &ClusterState, spec: &ProcessSpec) -> anyhow::Result<u32> {
    spawn_at(&st.dir, None, spec)
}

fn spawn_at(dir: &Path, node: Option<&NodeState>, spec: &ProcessSpec) -> anyhow::Result<u32> {
    let on = node.map_or("the host", |n| n.name.as_str());
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let log_path = log_file(dir, &spec.name);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut cmd = Command::new("setsid");
    if let Some(n) = node {
        cmd.arg("nsenter")
            .arg(format!("--net={NETNS_DIR}/{}", n.netns))
            .args([
                "unshare",
                "--uts",
                "sh",
                "-c",
                "hostname \"$0\" && exec \"$@\"",
            ])
            .arg(&n.name)
            // Programs that take their identity from $HOSTNAME (leader election ids) must
            // see the node's name, not the host's.
            .env("HOSTNAME", &n.name);
    }
    let child = cmd
        .args(&spec.argv)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} on {on} (setsid, nsenter)", spec.name))?;
    let pid = child.id();
    // The child is not waited for: it outlives `tug`. Its start time tells it apart from
    // a later process that reuses the PID.
    let start = start_time(pid).unwrap_or(0);
    std::fs::write(pid_file(dir, &spec.name), format!("{pid} {start}\n"))
        .with_context(|| format!("recording the PID of {} on {on}", spec.name))?;
    Ok(pid)
}

/// `starttime` (field 22) of /proc/<pid>/stat; None for a missing or zombie process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The recorded PID of `name` on a node, if that process still runs.
pub fn running(node_dir: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(pid_file(node_dir, name)).ok()?;
    let mut it = text.split_whitespace();
    let pid: u32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    (start_time(pid) == Some(start)).then_some(pid)
}

/// Stops a recorded process: `signal`, then SIGKILL after `grace`; forgets its PID.
pub fn stop(node_dir: &Path, name: &str, signal: Signal, grace: Duration) -> anyhow::Result<()> {
    if let Some(pid) = running(node_dir, name) {
        let p = Pid::from_raw(pid as i32);
        let _ = kill(p, signal);
        let deadline = Instant::now() + grace;
        while running(node_dir, name).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if running(node_dir, name).is_some() {
            let _ = kill(p, Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(5);
            while running(node_dir, name).is_some() {
                if Instant::now() > deadline {
                    bail!("{name} (PID {pid}) does not die even after SIGKILL");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let f = pid_file(node_dir, name);
    if f.exists() {
        std::fs::remove_file(&f).with_context(|| format!("removing {}", f.display()))?;
    }
    Ok(())
}

/// Stops every process of a node, in reverse start order: the agent gets SIGTERM (it
/// leaves its containers running for a later start or cleanup), the rest `signal`.
pub fn stop_node(st: &ClusterState, n: &NodeState, signal: Signal) -> anyhow::Result<()> {
    let dir = st.node_dir(&n.name);
    for p in n.processes.iter().rev() {
        let (sig, grace) = if p.name == "agent" && signal != Signal::SIGKILL {
            (Signal::SIGTERM, Duration::from_secs(10))
        } else {
            (signal, Duration::from_secs(5))
        };
        stop(&dir, &p.name, sig, grace)?;
    }
    Ok(())
}

/// Runs `argv` to completion inside node `n`'s network namespace (e.g. the agent's
/// cleanup); its output goes to `log`.
pub fn run_in_node(n: &NodeState, argv: &[String], log: &Path) -> anyhow::Result<()> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let status = Command::new("nsenter")
        .arg(format!("--net={NETNS_DIR}/{}", n.netns))
        .args(argv)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("running {} on node {}", argv.join(" "), n.name))?;
    if !status.success() {
        bail!(
            "`{}` on node {} failed ({status}); see {}",
            argv.join(" "),
            n.name,
            log.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_has_a_start_time_and_a_bogus_record_is_not_running() {
        let me = std::process::id();
        let start = start_time(me).expect("our own start time");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(pid_file(dir.path(), "x"), format!("{me} {start}")).unwrap();
        assert_eq!(running(dir.path(), "x"), Some(me));
        // Same PID, another start time: a recycled PID, not ours.
        std::fs::write(pid_file(dir.path(), "x"), format!("{me} {}", start + 1)).unwrap();
        assert_eq!(running(dir.path(), "x"), None);
        assert_eq!(running(dir.path(), "missing"), None);
    }
}
