//! The node's nftables table (`table ip tug-<node>`): base NAT chains that jump into one
//! regular chain per feature (`hostports` now, Services later), each replaced atomically by
//! flushing and refilling it inside one `nft -f` transaction.
//!
//! Services (issue 6) slot in the same way: a `services` chain (ClusterIP: `ip daddr` in
//! the service CIDR; NodePort: local addresses) jumped to from `prerouting` and `output`
//! before `hostports`, with per-service chains and `numgen`/maps for load balancing, all
//! rewritten by one `nft -f` script so the kernel never sees a half-updated rule set;
//! `cleanup_all` already removes the whole table.

use crate::command;
use crate::{Ipv4Cidr, Result};

/// The regular chain holding hostPort DNAT rules.
pub const HOSTPORTS_CHAIN: &str = "hostports";

/// The script creating (idempotently) the table and its base chains, and rewriting the
/// base chains' rules. Feature chains are created empty if missing, never flushed here.
///
/// - `prerouting` / `output` (dstnat): traffic to a local address (from other hosts, from
///   pods, and from the node itself including 127.0.0.1) goes through `hostports`.
/// - `postrouting` (srcnat): the ONLY masquerades tug does, both for traffic that stays on
///   the pod bridge:
///   - from loopback to the bridge (127.0.0.1:hostPort DNAT'd to a pod; the pod could not
///     answer 127.0.0.1; `route_localnet` on the bridge lets the packet leave lo at all);
///   - hairpin: DNAT'd traffic from a pod of this node back to the bridge (a pod using a
///     hostPort on its own node, even its own), so replies return through the node for
///     un-NAT. Matched by source podCIDR, not `iifname`: with br_netfilter the packet is
///     bridged back and postrouting sees no input interface; and a pod reaching itself
///     would otherwise see its own address as source and drop the packet.
///
///   Traffic leaving the machine is never masqueraded.
pub fn base_script(table: &str, bridge: &str, pod_cidr: Ipv4Cidr) -> String {
    let t = format!("ip {table}");
    let mut s = String::new();
    s.push_str(&format!("add table {t}\n"));
    s.push_str(&format!(
        "add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n"
    ));
    // nft 1.0.6 accepts the "dstnat" name only in prerouting; -100 is its value.
    s.push_str(&format!(
        "add chain {t} output {{ type nat hook output priority -100; policy accept; }}\n"
    ));
    s.push_str(&format!("add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n"));
    s.push_str(&format!("add chain {t} {HOSTPORTS_CHAIN}\n"));
    for chain in ["prerouting", "output", "postrouting"] {
        s.push_str(&format!("flush chain {t} {chain}\n"));
    }
    s.push_str(&format!(
        "add rule {t} prerouting fib daddr type local jump {HOSTPORTS_CHAIN}\n"
    ));
    s.push_str(&format!(
        "add rule {t} output fib daddr type local jump {HOSTPORTS_CHAIN}\n"
    ));
    s.push_str(&format!(
        "add rule {t} postrouting ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade\n"
    ));
    s.push_str(&format!("add rule {t} postrouting ip saddr {pod_cidr} oifname \"{bridge}\" ct status dnat masquerade\n"));
    s
}

/// Applies a script as one transaction.
pub fn apply(script: &str) -> Result<()> {
    command::nft_script(script)
}

/// Deletes the table; fine if it does not exist.
pub fn delete_table(table: &str) -> Result<()> {
    // "add" first makes the delete succeed when the table is absent, in one transaction.
    apply(&format!("add table ip {table}\ndelete table ip {table}\n"))
}

/// Whether the table exists (for tests and diagnostics).
pub fn table_exists(table: &str) -> Result<bool> {
    let out = command::run("nft", &["list", "tables", "ip"], None)?;
    Ok(out.lines().any(|l| l.trim() == format!("table ip {table}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_script_masquerades_only_loopback_and_hairpin_traffic_on_the_bridge() {
        let s = base_script(
            "tug-node-1",
            "tug0",
            Ipv4Cidr::parse("10.244.1.0/24").unwrap(),
        );
        let masq: Vec<_> = s.lines().filter(|l| l.contains("masquerade")).collect();
        assert_eq!(masq.len(), 2, "{s}");
        assert!(masq.iter().all(|l| l.contains("oifname \"tug0\"")), "{s}");
        assert!(s.contains("add table ip tug-node-1\n"));
        assert!(
            !s.contains(&format!("flush chain ip tug-node-1 {HOSTPORTS_CHAIN}")),
            "feature chains are not flushed"
        );
    }
}
