//! Per-pod network setup and teardown: a named network namespace, a veth pair (host end on
//! the bridge, pod end `eth0`), the pod's address, `lo` and the default route. Every step
//! is idempotent, so setting up an existing pod again (agent restart) changes nothing.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tracing::{debug, warn};

use crate::command::{ip, ip_batch, ip_json, is_exists};
use crate::names::{self, NETNS_DIR};
use crate::network::{ignore_not_found, lock};
use crate::{Error, Network, PodNetwork, Result};

/// The pod-side interface name, as in Kubernetes (CNI's `IfName`).
pub const POD_IFNAME: &str = "eth0";

impl Network {
    /// Gives the pod its namespace, veth, IP (persisted; the same IP again for a pod set up
    /// before) and default route via the bridge. Safe to call again for an existing pod.
    pub fn setup_pod(&self, pod_uid: &str) -> Result<PodNetwork> {
        if pod_uid.is_empty() {
            return Err(Error::Invalid {
                field: "pod uid",
                value: String::new(),
                reason: "metadata.uid must be set".into(),
            });
        }
        let ip = lock(&self.ipam).allocate(pod_uid)?;
        let pod = self.pod_network(pod_uid, ip);
        let ns = names::netns_name(&self.cfg.node, pod_uid);
        let veth = names::veth_name(&self.cfg.node, pod_uid);
        let alias = names::veth_alias(&self.cfg.node, pod_uid);
        let br = &self.cfg.bridge;

        ensure_netns(&ns)?;
        self.ensure_veth(&veth, &ns, &alias)?;
        ip_batch(
            None,
            &format!(
                "link set dev {veth} alias {alias}\n\
                 link set dev {veth} master {br}\n\
                 link set dev {veth} type bridge_slave hairpin on\n\
                 link set dev {veth} up\n"
            ),
        )?;
        ip_batch(
            Some(&ns),
            &format!(
                "link set dev lo up\n\
                 addr replace {ip}/{prefix} dev {POD_IFNAME}\n\
                 link set dev {POD_IFNAME} up\n\
                 route replace default via {gw} dev {POD_IFNAME}\n",
                prefix = pod.prefix,
                gw = pod.gateway,
            ),
        )?;
        debug!(pod = pod_uid, %ip, netns = %ns, %veth, "pod network set up");
        Ok(pod)
    }

    /// Removes the pod's hostPorts, veth and namespace and releases its IP. Fine if some or
    /// all of it is already gone.
    pub fn teardown_pod(&self, pod_uid: &str) -> Result<()> {
        // Every step is tried; the IP is released only when all succeeded, so a retry
        // finds the pod half-removed rather than its address handed to another pod.
        // hostPorts go first: their rules must not outlive the address they point at.
        let ports = self.remove_host_ports(pod_uid);
        let veth = names::veth_name(&self.cfg.node, pod_uid);
        let ns = names::netns_name(&self.cfg.node, pod_uid);
        // Deleting the netns alone would leave the veth while a process still holds the
        // namespace open; deleting the host end removes both ends now.
        let link = ignore_not_found(ip(&["link", "del", &veth]).map(drop));
        let netns = ignore_not_found(ip(&["netns", "del", &ns]).map(drop));
        ports.and(link).and(netns)?;
        lock(&self.ipam).release(pod_uid)?;
        debug!(pod = pod_uid, netns = %ns, "pod network torn down");
        Ok(())
    }

    /// Creates the veth pair with the pod end directly in the pod namespace (no temporary
    /// name in the node namespace), repairing half-made pairs from an interrupted setup.
    fn ensure_veth(&self, veth: &str, ns: &str, alias: &str) -> Result<()> {
        let mtu = self.cfg.mtu.map(|m| m.to_string());
        let mut args = vec!["link", "add", veth];
        if let Some(m) = &mtu {
            args.extend(["mtu", m]);
        }
        args.extend(["type", "veth", "peer", "name", POD_IFNAME]);
        if let Some(m) = &mtu {
            args.extend(["mtu", m]);
        }
        args.extend(["netns", ns]);
        let err = match ip(&args) {
            Ok(_) => return Ok(()),
            Err(e) if is_exists(&e) => e,
            Err(e) => return Err(e),
        };
        let host = match ip_json(&["link", "show", "dev", veth]) {
            Ok(links) => links.into_iter().next(),
            Err(_) => None,
        };
        match host {
            Some(link) => {
                let found = link["ifalias"].as_str().unwrap_or_default();
                if !found.is_empty() && found != alias {
                    return Err(Error::Foreign {
                        kind: "veth",
                        name: veth.to_string(),
                        found: found.to_string(),
                        expected: alias.to_string(),
                    });
                }
                if ip(&["-n", ns, "link", "show", "dev", POD_IFNAME]).is_ok() {
                    return Ok(()); // the pair is complete: a re-setup
                }
                warn!(%veth, netns = %ns, "veth without its pod end; recreating");
                ip(&["link", "del", veth])?;
            }
            None => {
                // The clash is an eth0 already in the pod namespace whose host end is gone.
                warn!(netns = %ns, "stale {POD_IFNAME} in pod namespace; recreating ({err})");
                ignore_not_found(ip(&["-n", ns, "link", "del", POD_IFNAME]).map(drop))?;
            }
        }
        ip(&args).map(drop)
    }
}

/// Creates the named namespace unless a live one exists. A name whose file is not a
/// namespace mount (left after its mount namespace died) is recreated.
fn ensure_netns(ns: &str) -> Result<()> {
    let path = Path::new(NETNS_DIR).join(ns);
    if netns_is_live(&path) {
        return Ok(());
    }
    if path.exists() {
        warn!(netns = ns, "stale namespace file (not a mount); recreating");
        ignore_not_found(ip(&["netns", "del", ns]).map(drop))?;
    }
    match ip(&["netns", "add", ns]) {
        Ok(_) => Ok(()),
        Err(e) if is_exists(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `path` (under [`NETNS_DIR`]) is a mounted network namespace, not just the empty
/// file left behind when its mount went away.
pub(crate) fn netns_is_live(path: &Path) -> bool {
    match (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) {
        // A bind-mounted namespace lives on nsfs: another device than its directory.
        (Ok(file), Some(Ok(dir))) => file.dev() != dir.dev(),
        _ => false,
    }
}
