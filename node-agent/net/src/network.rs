//! [`Network`]: the node-wide part of the pod network — the bridge and its gateway address,
//! forwarding sysctls, the nftables table, hostPorts, the pod inventory and node cleanup.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use tracing::{debug, info, warn};

use crate::command::{self, ip, ip_batch, ip_json, is_not_found};
use crate::hostports::{self, HostPortStore, PodPorts};
use crate::ipam::Ipam;
use crate::names::{self, NETNS_DIR};
use crate::{nft, sysctl, Error, HostPort, Ipv4Cidr, NetConfig, PodNetwork, Result, ROUTE_PROTO};

/// The pod network of one node. Cheap methods take `&self` and are safe to call from many
/// pod workers at once (share it as `Arc<Network>`): per-pod kernel work runs unlocked,
/// only IP allocation and the nft hostPort chain are serialized.
#[derive(Debug)]
pub struct Network {
    pub(crate) cfg: NetConfig,
    pub(crate) cidr: Ipv4Cidr,
    pub(crate) table: String,
    pub(crate) ipam: Mutex<Ipam>,
    ports: Mutex<HostPortStore>,
    br_netfilter: bool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the data as consistent as the disk it mirrors.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Network {
    /// Sets up (or re-adopts after a restart) the node's pod network: the bridge, up, with
    /// the podCIDR's first address (the pods' gateway); `ip_forward`; `route_localnet` on the
    /// bridge (hostPorts via 127.0.0.1); the nft table with every persisted hostPort.
    /// Existing pods keep their namespaces and addresses.
    pub fn new(cfg: NetConfig) -> Result<Self> {
        let net = Network::open(cfg)?;
        warn_if_private_mount_namespace();
        net.ensure_bridge()?;
        sysctl::set("net/ipv4/ip_forward", "1")?;
        sysctl::set(
            &format!("net/ipv4/conf/{}/route_localnet", net.cfg.bridge),
            "1",
        )?;
        let pods = lock(&net.ports).load_all()?;
        nft::apply(&format!(
            "{}{}",
            nft::base_script(&net.table, &net.cfg.bridge, net.cidr),
            hostports::chain_script(&net.table, &pods)
        ))?;
        info!(node = %net.cfg.node, bridge = %net.cfg.bridge, pod_cidr = %net.cidr, br_netfilter = net.br_netfilter, "pod network ready");
        Ok(net)
    }

    /// Opens the node's persisted network state WITHOUT changing the kernel: for
    /// [`Network::cleanup_all`] (removing a node) and for inspection ([`Network::pods`]).
    /// Use [`Network::new`] to run pods.
    pub fn open(cfg: NetConfig) -> Result<Self> {
        names::validate_node(&cfg.node)?;
        names::validate_bridge(&cfg.bridge)?;
        let cidr = Ipv4Cidr::parse(&cfg.pod_cidr).map_err(|e| match e {
            Error::Invalid { value, reason, .. } => Error::Invalid {
                field: "podCIDR",
                value,
                reason,
            },
            e => e,
        })?;
        if cidr.pod_range().next().is_none() {
            return Err(Error::Invalid {
                field: "podCIDR",
                value: cfg.pod_cidr.clone(),
                reason: "too small: a /30 or larger network is needed (gateway + pods)".into(),
            });
        }
        let ipam = Ipam::open(&cfg.state_dir.join("ipam"), cidr)?;
        let ports = HostPortStore::open(&cfg.state_dir.join("hostports"))?;
        let table = names::nft_table(&cfg.node);
        // br_netfilter (bridged IPv4 through the nft hooks) helps Services later but is not
        // required: hairpin traffic is masqueraded (see nft::base_script) either way. It is
        // only observed, never toggled: on older kernels the knob is machine-wide.
        let br_netfilter =
            sysctl::get("net/bridge/bridge-nf-call-iptables")?.as_deref() == Some("1");
        Ok(Network {
            cfg,
            cidr,
            table,
            ipam: Mutex::new(ipam),
            ports: Mutex::new(ports),
            br_netfilter,
        })
    }

    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    pub fn pod_cidr(&self) -> Ipv4Cidr {
        self.cidr
    }

    /// The bridge's address, every pod's default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.cidr.gateway()
    }

    /// The nftables table holding this node's rules (`ip <name>`).
    pub fn nft_table(&self) -> &str {
        &self.table
    }

    /// Whether bridged IPv4 traffic passes the nft/iptables hooks (br_netfilter loaded and
    /// `bridge-nf-call-iptables=1` in this namespace).
    pub fn bridge_netfilter(&self) -> bool {
        self.br_netfilter
    }

    /// The network of a pod set up earlier (also by a previous agent process), if its IP is
    /// allocated and its namespace is still mounted (else: call `setup_pod` again).
    pub fn pod(&self, pod_uid: &str) -> Option<PodNetwork> {
        let ip = lock(&self.ipam).get(pod_uid)?;
        let pod = self.pod_network(pod_uid, ip);
        crate::pod::netns_is_live(&pod.netns).then_some(pod)
    }

    /// Every pod with an allocated IP, as (uid, network), for re-adoption and for tearing
    /// down pods that no longer exist. The namespace of an entry may be gone (reboot).
    pub fn pods(&self) -> Vec<(String, PodNetwork)> {
        let all = lock(&self.ipam).all();
        all.into_iter()
            .map(|(uid, ip)| {
                let pod = self.pod_network(&uid, ip);
                (uid, pod)
            })
            .collect()
    }

    pub(crate) fn pod_network(&self, uid: &str, ip: Ipv4Addr) -> PodNetwork {
        PodNetwork {
            netns: Path::new(NETNS_DIR).join(names::netns_name(&self.cfg.node, uid)),
            ip,
            gateway: self.cidr.gateway(),
            prefix: self.cidr.prefix(),
        }
    }

    /// Publishes `ports` of the pod at `ip` on the node (replacing the pod's previous set;
    /// empty = none): DNAT from every local address (or `host_ip`), for traffic from other
    /// hosts, from pods and from the node itself including 127.0.0.1. The whole hostPort
    /// chain is replaced in one nft transaction; persisted for agent restarts.
    pub fn set_host_ports(&self, pod_uid: &str, ip: Ipv4Addr, ports: &[HostPort]) -> Result<()> {
        let store = lock(&self.ports);
        let all = store.load_all()?;
        hostports::validate(pod_uid, ports, &all)?;
        let prev = all.into_iter().find(|p| p.uid == pod_uid);
        let next = PodPorts {
            uid: pod_uid.to_string(),
            ip,
            ports: ports.to_vec(),
        };
        if prev.as_ref() == Some(&next) || (prev.is_none() && ports.is_empty()) {
            return Ok(());
        }
        store.put(&next)?;
        if let Err(e) = self.apply_host_ports(&store) {
            // Keep the disk in line with the kernel: the old rules are still in place.
            let restore = match &prev {
                Some(p) => store.put(p),
                None => store.remove(pod_uid),
            };
            if let Err(r) = restore {
                warn!(pod = pod_uid, error = %r, "cannot restore hostPort state");
            }
            return Err(e);
        }
        debug!(pod = pod_uid, %ip, ?ports, "hostPorts set");
        Ok(())
    }

    /// Drops a pod's hostPorts (teardown); on failure the pod's file is kept, so a retry
    /// removes the rules still in the kernel.
    pub(crate) fn remove_host_ports(&self, pod_uid: &str) -> Result<()> {
        let store = lock(&self.ports);
        let Some(prev) = store.get(pod_uid)? else {
            return Ok(());
        };
        store.remove(pod_uid)?;
        self.apply_host_ports(&store).inspect_err(|_| {
            if let Err(r) = store.put(&prev) {
                warn!(pod = pod_uid, error = %r, "cannot restore hostPort state");
            }
        })
    }

    fn apply_host_ports(&self, store: &HostPortStore) -> Result<()> {
        nft::apply(&hostports::chain_script(&self.table, &store.load_all()?))
    }

    /// Removes everything of this node's pod network: pod namespaces and veths, the
    /// bridge, the nft table, host-gw routes and the persisted state. Touches only objects
    /// carrying this node's mark; keeps going past failures and returns the first one.
    pub fn cleanup_all(&self) -> Result<()> {
        let mut first: Option<Error> = None;
        let mut keep = |what: &str, r: Result<()>| {
            if let Err(e) = r {
                warn!(node = %self.cfg.node, error = %e, "cleanup: {what}");
                first.get_or_insert(e);
            }
        };
        let prefix = names::netns_prefix(&self.cfg.node);
        match std::fs::read_dir(NETNS_DIR) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with(&prefix) {
                        keep(
                            "pod netns",
                            ignore_not_found(ip(&["netns", "del", &name]).map(drop)),
                        );
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => keep("list netns", Err(crate::io_err(NETNS_DIR)(e))),
        }
        // Veths by name for every known pod (also one whose setup stopped before the alias
        // was set), then by alias for any the state does not know.
        for (uid, _) in lock(&self.ipam).all() {
            keep(
                "pod veth",
                ignore_not_found(
                    ip(&["link", "del", &names::veth_name(&self.cfg.node, &uid)]).map(drop),
                ),
            );
        }
        match ip_json(&["link", "show"]) {
            Ok(links) => {
                for name in owned_links(&links, &self.cfg.node, &self.cfg.bridge) {
                    keep(
                        "link",
                        ignore_not_found(ip(&["link", "del", &name]).map(drop)),
                    );
                }
            }
            Err(e) => keep("list links", Err(e)),
        }
        keep("nft table", nft::delete_table(&self.table));
        keep(
            "routes",
            ip(&["route", "flush", "proto", &ROUTE_PROTO.to_string()]).map(drop),
        );
        keep("ipam state", lock(&self.ipam).clear());
        keep("hostPort state", lock(&self.ports).clear());
        match first {
            None => {
                info!(node = %self.cfg.node, "pod network removed");
                Ok(())
            }
            Some(e) => Err(e),
        }
    }

    /// Creates or adopts the bridge (only if it is ours, or brand new and empty), then sets
    /// MTU, up, and exactly the gateway address.
    fn ensure_bridge(&self) -> Result<()> {
        let br = self.cfg.bridge.as_str();
        let alias = names::bridge_alias(&self.cfg.node);
        match ip_json(&["-d", "link", "show", "dev", br]) {
            Err(e) if is_not_found(&e) => {
                // One process for both lines: the window where the bridge exists without our
                // mark is as small as it gets (see the "adopt" case below for a crash in it).
                ip_batch(
                    None,
                    &format!("link add name {br} type bridge\nlink set dev {br} alias {alias}\n"),
                )?;
            }
            Err(e) => return Err(e),
            Ok(links) => {
                let link = links.first().cloned().unwrap_or_default();
                let kind = link["linkinfo"]["info_kind"].as_str().unwrap_or_default();
                let found = link["ifalias"].as_str().unwrap_or_default();
                let foreign = || Error::Foreign {
                    kind: "bridge",
                    name: br.to_string(),
                    found: found.to_string(),
                    expected: alias.clone(),
                };
                if kind != "bridge" {
                    return Err(foreign());
                }
                if found != alias {
                    let ports = ip_json(&["link", "show", "master", br])?;
                    let addrs = ip_json(&["addr", "show", "dev", br])?;
                    let has_addr = addrs
                        .iter()
                        .any(|a| a["addr_info"].as_array().is_some_and(|v| !v.is_empty()));
                    // An unmarked bridge with no ports and no address is ours from a crash
                    // between add and alias, or at least nobody's in use: adopt it.
                    if !found.is_empty() || !ports.is_empty() || has_addr {
                        return Err(foreign());
                    }
                    ip(&["link", "set", "dev", br, "alias", &alias])?;
                }
            }
        }
        let want = format!("{}/{}", self.cidr.gateway(), self.cidr.prefix());
        let mut script = String::new();
        for a in ip_json(&["-4", "addr", "show", "dev", br])? {
            for info in a["addr_info"].as_array().into_iter().flatten() {
                let have = format!(
                    "{}/{}",
                    info["local"].as_str().unwrap_or_default(),
                    info["prefixlen"]
                );
                if have != want {
                    // A podCIDR change: the old gateway address must go with it.
                    script.push_str(&format!("addr del {have} dev {br}\n"));
                }
            }
        }
        if let Some(mtu) = self.cfg.mtu {
            script.push_str(&format!("link set dev {br} mtu {mtu}\n"));
        }
        script.push_str(&format!(
            "addr replace {want} dev {br}\nlink set dev {br} up\n"
        ));
        ip_batch(None, &script)
    }
}

/// Pod namespaces are bind mounts under /run/netns. In a private mount namespace (an agent
/// started with `ip netns exec`) they are invisible to the host and vanish with the agent
/// process, so a restarted agent cannot re-adopt its pods: say so loudly.
fn warn_if_private_mount_namespace() {
    let ours = std::fs::read_link("/proc/self/ns/mnt").ok();
    let init = std::fs::read_link("/proc/1/ns/mnt").ok();
    if ours.is_some() && init.is_some() && ours != init {
        warn!(
            "the agent runs in its own mount namespace (e.g. started by `ip netns exec`): pod network \
             namespaces will not survive an agent restart; start it with `nsenter --net=<netns>` instead"
        );
    }
}

/// The links (from `ip -j link show`) that carry `node`'s mark: its pod veths and its
/// bridge. Anything else, even a look-alike name, is not ours.
fn owned_links(links: &[serde_json::Value], node: &str, bridge: &str) -> Vec<String> {
    let veth_prefix = names::veth_alias_prefix(node);
    let bridge_alias = names::bridge_alias(node);
    links
        .iter()
        .filter_map(|link| {
            let name = link["ifname"].as_str()?;
            let alias = link["ifalias"].as_str().unwrap_or_default();
            (alias.starts_with(&veth_prefix) || (name == bridge && alias == bridge_alias))
                .then(|| name.to_string())
        })
        .collect()
}

pub(crate) fn ignore_not_found(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if command::is_not_found(&e) => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_links_with_our_mark_are_ours() {
        let links = serde_json::json!([
            {"ifname": "lo"},
            {"ifname": "eth0"},
            {"ifname": "tug0", "ifalias": "tug:n1"},
            {"ifname": "veth0000aaaa", "ifalias": "tug:n1:pod-a"},
            {"ifname": "veth0000bbbb", "ifalias": "tug:n1-b:pod-a"},
            {"ifname": "veth0000cccc"},
            {"ifname": "docker0", "ifalias": "tug:n1"},
            {"ifname": "tug1", "ifalias": "tug:other"}
        ]);
        let links = links.as_array().unwrap();
        assert_eq!(
            owned_links(links, "n1", "tug0"),
            vec!["tug0", "veth0000aaaa"]
        );
        assert_eq!(owned_links(links, "n1-b", "tug0"), vec!["veth0000bbbb"]);
        assert!(owned_links(links, "n2", "tug0").is_empty());
    }
}
