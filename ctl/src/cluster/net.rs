//! The cluster's network: a host bridge, and per node a network namespace with a veth to
//! it, all made with iproute2's `ip`. No NAT and no routes off the machine: nodes reach
//! each other and the host (the bridge's .1), nothing else.

use anyhow::{bail, Context as _};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use super::state::{ClusterState, NodeState, SUBNET_BASE};

/// A machine-wide lock: subnets and bridges are machine-wide, and clusters may be created
/// concurrently from different clusters dirs (tests).
pub const LOCK_FILE: &str = "/run/tug-cluster.lock";
/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Holds [`LOCK_FILE`] until dropped.
pub struct MachineLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

pub fn lock_machine() -> anyhow::Result<MachineLock> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_FILE)
        .with_context(|| format!("opening {LOCK_FILE}"))?;
    let l = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("locking {LOCK_FILE}"))?;
    Ok(MachineLock(l))
}

/// Runs `ip` with `args`; its stderr goes into the error.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `ip [-n NS] -batch -` over `script` (one kernel round per line, one process).
pub fn ip_batch(netns: Option<&str>, script: &str) -> anyhow::Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running `ip` (install iproute2)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`ip{} -batch` failed: {}\nthe script was:\n{script}",
            netns.map(|n| format!(" -n {n}")).unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn netns_exists(name: &str) -> bool {
    Path::new(NETNS_DIR).join(name).exists()
}

/// IPv4 prefixes the host already uses (addresses and routes), as (network, length).
fn host_prefixes() -> Vec<(u32, u8)> {
    let mut out = Vec::new();
    for args in [
        &["-4", "-o", "addr", "show"][..],
        &["-4", "route", "show", "table", "all"][..],
    ] {
        let Ok(o) = Command::new("ip").args(args).output() else {
            continue;
        };
        for word in String::from_utf8_lossy(&o.stdout).split_whitespace() {
            let (addr, len) = match word.split_once('/') {
                Some((a, l)) => (a, l.parse::<u8>().ok()),
                None => (word, Some(32)),
            };
            if let (Ok(a), Some(len)) = (addr.parse::<Ipv4Addr>(), len) {
                if len <= 32 && !a.is_loopback() && !a.is_unspecified() {
                    out.push((u32::from(a), len));
                }
            }
        }
    }
    out
}

fn overlaps(a: (u32, u8), b: (u32, u8)) -> bool {
    let len = a.1.min(b.1);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a.0 & mask == b.0 & mask
}

/// Picks `k` for 172.31.k.0/24: not used by another cluster in `used` nor by any address or
/// route of the host. Call with the machine lock held, and create the bridge before
/// releasing it (the bridge's address is what the next caller sees).
pub fn pick_subnet(used: &[u8]) -> anyhow::Result<u8> {
    let host = host_prefixes();
    (1..=254u8)
        .find(|k| {
            let net = (
                u32::from(Ipv4Addr::new(SUBNET_BASE[0], SUBNET_BASE[1], *k, 0)),
                24,
            );
            !used.contains(k) && !host.iter().any(|p| overlaps(*p, net))
        })
        .context("no free subnet in 172.31.1.0-172.31.254.0/24: delete a cluster first")
}

/// Creates the host bridge with the gateway address (.1).
pub fn create_bridge(st: &ClusterState) -> anyhow::Result<()> {
    if link_exists(&st.bridge) {
        bail!(
            "a link named {} already exists: another cluster named {} runs (maybe from another \
             clusters dir); pick another --name",
            st.bridge,
            st.name
        );
    }
    ip_batch(
        None,
        &format!(
            "link add {br} type bridge\nlink set dev {br} alias tugc:{name}\n\
             addr add {gw}/24 dev {br}\nlink set dev {br} up\n",
            br = st.bridge,
            name = st.name,
            gw = st.gateway()
        ),
    )
}

/// Creates a node: its namespace (lo up), a veth with `eth0` inside holding the node's IP,
/// and a default route via the host's bridge address.
pub fn create_node(st: &ClusterState, n: &NodeState) -> anyhow::Result<()> {
    if netns_exists(&n.netns) {
        bail!(
            "network namespace {} already exists (another cluster with the same name?); pick \
             another --name",
            n.netns
        );
    }
    ip(&["netns", "add", &n.netns])?;
    ip_batch(
        None,
        &format!(
            "link add {v} type veth peer name eth0 netns {ns}\nlink set dev {v} alias \
             tugc:{c}:{node}\nlink set dev {v} master {br}\nlink set dev {v} up\n",
            v = n.veth,
            ns = n.netns,
            c = st.name,
            node = n.name,
            br = st.bridge
        ),
    )?;
    ip_batch(
        Some(&n.netns),
        &format!(
            "link set dev lo up\naddr add {ip}/24 dev eth0\nlink set dev eth0 up\n\
             route add default via {gw}\n",
            ip = n.ip,
            gw = st.gateway()
        ),
    )
}

/// Sets the host end of a node's veth up or down (plugging the node in or out).
pub fn set_node_link(n: &NodeState, up: bool) -> anyhow::Result<()> {
    ip(&[
        "link",
        "set",
        "dev",
        &n.veth,
        if up { "up" } else { "down" },
    ])
}

/// Removes a node's namespace and veth; missing ones are fine.
pub fn delete_node(n: &NodeState) -> anyhow::Result<()> {
    if netns_exists(&n.netns) {
        // Deleting the namespace destroys eth0 and with it the host end of the veth.
        ip(&["netns", "delete", &n.netns])?;
    }
    if link_exists(&n.veth) {
        // The kernel removes the host end shortly after the namespace: it may vanish
        // between the check and the delete.
        if let Err(e) = ip(&["link", "delete", "dev", &n.veth]) {
            if link_exists(&n.veth) {
                return Err(e);
            }
        }
    }
    Ok(())
}

pub fn delete_bridge(st: &ClusterState) -> anyhow::Result<()> {
    if link_exists(&st.bridge) {
        ip(&["link", "delete", "dev", &st.bridge])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_overlap_when_one_contains_the_other() {
        let p = |a: [u8; 4], l| (u32::from(Ipv4Addr::from(a)), l);
        let cases = [
            (p([172, 31, 3, 0], 24), p([172, 31, 3, 0], 24), true),
            (p([172, 31, 3, 7], 32), p([172, 31, 3, 0], 24), true),
            (p([172, 16, 0, 0], 12), p([172, 31, 3, 0], 24), true),
            (p([172, 31, 4, 0], 24), p([172, 31, 3, 0], 24), false),
            (p([192, 0, 2, 0], 24), p([172, 31, 3, 0], 24), false),
            (p([0, 0, 0, 0], 0), p([172, 31, 3, 0], 24), true),
        ];
        for (a, b, want) in cases {
            assert_eq!(overlaps(a, b), want, "{a:?} {b:?}");
        }
    }
}
