//! host-gw routing: a route to every other node's podCIDR via that node's IP, marked with
//! [`ROUTE_PROTO`] so the set can be synced (stale routes removed) without touching
//! anybody else's routes. Pod traffic keeps its pod source IP (no NAT inside the cluster).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use tracing::debug;

use crate::command::{ip_batch, ip_json};
use crate::{Error, Ipv4Cidr, Network, Result, ROUTE_PROTO};

impl Network {
    /// Makes the routes marked as tug's exactly `routes` (podCIDR, node IP): adds or fixes
    /// the missing, removes the stale. This node's own podCIDR is skipped (the bridge has
    /// it). Each node IP must be reachable on a directly connected network.
    pub fn set_node_routes(&self, routes: &[(String, Ipv4Addr)]) -> Result<()> {
        let mut want = BTreeMap::new();
        for (cidr, via) in routes {
            let dst = Ipv4Cidr::parse(cidr).map_err(|e| match e {
                Error::Invalid { value, reason, .. } => Error::Invalid {
                    field: "node podCIDR",
                    value,
                    reason,
                },
                e => e,
            })?;
            if dst != self.cidr {
                want.insert(dst, *via);
            }
        }
        let script = sync_script(&self.node_routes_map()?, &want);
        if !script.is_empty() {
            debug!(node = %self.cfg.node, changes = %script.trim(), "syncing node routes");
            ip_batch(None, &script)?;
        }
        Ok(())
    }

    /// The routes currently marked as tug's, as (podCIDR, node IP).
    pub fn node_routes(&self) -> Result<Vec<(String, Ipv4Addr)>> {
        Ok(self
            .node_routes_map()?
            .into_iter()
            .filter_map(|(d, v)| Some((d.to_string(), v?)))
            .collect())
    }

    pub(crate) fn node_routes_map(&self) -> Result<BTreeMap<Ipv4Cidr, Option<Ipv4Addr>>> {
        let mut have = BTreeMap::new();
        for r in ip_json(&["-4", "route", "show", "proto", &ROUTE_PROTO.to_string()])? {
            let Some(dst) = r["dst"].as_str().and_then(|d| Ipv4Cidr::parse(d).ok()) else {
                continue;
            };
            have.insert(dst, r["gateway"].as_str().and_then(|g| g.parse().ok()));
        }
        Ok(have)
    }
}

/// The `ip -batch` lines turning the routes we have into the routes we want (empty when in
/// sync): stale ones deleted, missing or changed ones replaced.
pub(crate) fn sync_script(
    have: &BTreeMap<Ipv4Cidr, Option<Ipv4Addr>>,
    want: &BTreeMap<Ipv4Cidr, Ipv4Addr>,
) -> String {
    let mut script = String::new();
    for dst in have.keys().filter(|d| !want.contains_key(d)) {
        script.push_str(&format!("route del {dst} proto {ROUTE_PROTO}\n"));
    }
    for (dst, via) in want {
        if have.get(dst) != Some(&Some(*via)) {
            script.push_str(&format!(
                "route replace {dst} via {via} proto {ROUTE_PROTO}\n"
            ));
        }
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Ipv4Cidr {
        Ipv4Cidr::parse(s).unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    type Have = Vec<(&'static str, Option<&'static str>)>;
    type Want = Vec<(&'static str, &'static str)>;

    #[test]
    fn sync_script_table() {
        let cases: Vec<(&str, Have, Want, &str)> = vec![
            (
                "in sync",
                vec![("10.244.2.0/24", Some("10.0.0.2"))],
                vec![("10.244.2.0/24", "10.0.0.2")],
                "",
            ),
            (
                "new node",
                vec![],
                vec![("10.244.2.0/24", "10.0.0.2")],
                "route replace 10.244.2.0/24 via 10.0.0.2 proto 116\n",
            ),
            (
                "node left",
                vec![("10.244.2.0/24", Some("10.0.0.2"))],
                vec![],
                "route del 10.244.2.0/24 proto 116\n",
            ),
            (
                "node IP changed",
                vec![("10.244.2.0/24", Some("10.0.0.2"))],
                vec![("10.244.2.0/24", "10.0.0.9")],
                "route replace 10.244.2.0/24 via 10.0.0.9 proto 116\n",
            ),
            (
                "route without gateway is fixed",
                vec![("10.244.2.0/24", None)],
                vec![("10.244.2.0/24", "10.0.0.2")],
                "route replace 10.244.2.0/24 via 10.0.0.2 proto 116\n",
            ),
        ];
        for (name, have, want, script) in cases {
            let have = have.into_iter().map(|(d, g)| (c(d), g.map(ip))).collect();
            let want = want.into_iter().map(|(d, g)| (c(d), ip(g))).collect();
            assert_eq!(sync_script(&have, &want), script, "{name}");
        }
    }
}
