//! tug-net: the node's pod network — a bridge, a network namespace and veth per pod, an IP
//! from the node's podCIDR, hostPort DNAT and host-gw routes to other nodes' podCIDRs.
//!
//! # Why the `ip` and `nft` commands (and not netlink from Rust)
//!
//! Everything here is done by running iproute2's `ip` and nftables' `nft`:
//! - **Simplicity and debuggability**: every kernel change is a command line an operator
//!   can read in the error message and re-run by hand; no netlink message building,
//!   attribute nesting or nftables bytecode in this crate (and no extra dependency).
//! - **Atomic nftables replacement**: `nft -f -` applies a whole script as ONE kernel
//!   transaction, so the hostPort chain (and, later, the Services chains) is swapped in
//!   atomically: no window where some rules are missing. That is the property that matters
//!   for the data path, and `nft` gives it for free.
//! - **Cost**: a pod setup runs four short processes (`netns add`, `link add`, and two
//!   `ip -batch` runs); a few milliseconds, far below image/rootfs/container start. If
//!   profiling ever shows otherwise, [`command`] is the one place to swap for netlink.
//!
//! # Several nodes on one machine
//!
//! A local cluster runs several agents on one machine, each inside its own network
//! namespace, and the agent calls this crate from inside that namespace. Links, routes,
//! sysctls and nftables tables are per network namespace, but the names of pod network
//! namespaces (`/run/netns/...`) are machine-wide, so they carry the node name:
//! `tug-<node>_<uid>` (`_` cannot occur in a node name, so one node's prefix never matches
//! another's). Everything we create is marked as ours (link alias `tug:<node>[:<uid>]`,
//! route protocol [`ROUTE_PROTO`], nft table `ip tug-<node>`), and cleanup removes only
//! what carries our mark.
//!
//! Start an agent in a node namespace with `nsenter --net=/run/netns/<node-ns>` rather than
//! `ip netns exec`: the latter also gives the agent a private mount namespace, so the pod
//! namespaces it mounts under /run/netns would be invisible to the host and lost when that
//! agent process dies (breaking re-adoption after a restart).
//!
//! # Layout
//! - [`cidr`]: IPv4 CIDR parsing and address arithmetic.
//! - [`names`]: every kernel-visible name (netns, veth, alias, nft table) in one place.
//! - [`command`]: running `ip` / `nft` and turning failures into [`Error`]s.
//! - [`ipam`]: persistent IP allocation, one file per allocated address in `state_dir`.
//! - [`nft`]: the node's nftables table and its base NAT chains.
//! - [`hostports`]: the persisted hostPort mappings and their nftables rendering.
//! - [`network`]: [`Network`]: bridge, sysctls, nft table, cleanup.
//! - [`pod`]: per-pod setup and teardown (netns, veth, address, routes).
//! - [`routes`]: host-gw routes to other nodes' podCIDRs.
//! - [`sysctl`]: `/proc/sys` writes (per network namespace).

pub mod cidr;
pub mod command;
pub mod hostports;
pub mod ipam;
pub mod names;
pub mod network;
pub mod nft;
pub mod pod;
pub mod routes;
pub mod sysctl;

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use cidr::Ipv4Cidr;
pub use network::Network;

/// The kernel route protocol number that marks host-gw routes as tug's (`ip route ... proto
/// 116`; 116 is 't' and unused by the well-known routing daemons in /etc/iproute2/rt_protos).
pub const ROUTE_PROTO: u8 = 116;

/// The default bridge name (the agent's `--bridge` flag).
pub const DEFAULT_BRIDGE: &str = "tug0";

/// How the node's pod network is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The node name (Kubernetes Node name: lowercase letters, digits, '-' and '.').
    pub node: String,
    /// The bridge the pods' veths are attached to (≤ 15 chars), e.g. "tug0".
    pub bridge: String,
    /// The node's podCIDR, e.g. "10.244.1.0/24"; its first address is the gateway.
    pub pod_cidr: String,
    /// Where allocations and hostPorts are persisted (e.g. `<root-dir>/net`).
    pub state_dir: PathBuf,
    /// MTU of the bridge and the veths; `None` keeps the kernel default (1500).
    pub mtu: Option<u32>,
}

impl NetConfig {
    /// A config with the default bridge and MTU.
    pub fn new(
        node: impl Into<String>,
        pod_cidr: impl Into<String>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        NetConfig {
            node: node.into(),
            bridge: DEFAULT_BRIDGE.to_string(),
            pod_cidr: pod_cidr.into(),
            state_dir: state_dir.into(),
            mtu: None,
        }
    }
}

/// A pod's network: its namespace and address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNetwork {
    /// The pod network namespace file (`/run/netns/<name>`), for the runtime's sandbox.
    pub netns: PathBuf,
    /// The pod IP (Pod.status.podIP).
    pub ip: Ipv4Addr,
    /// The bridge address, the pod's default gateway.
    pub gateway: Ipv4Addr,
    /// The podCIDR prefix length (the pod's eth0 is `ip/prefix`).
    pub prefix: u8,
}

/// A transport protocol of a port, as Kubernetes spells it ("TCP", "UDP").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

impl Protocol {
    /// The nftables keyword ("tcp", "udp").
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

impl FromStr for Protocol {
    type Err = Error;
    /// "TCP" / "UDP" (any case); "" is TCP, the Kubernetes default.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "" | "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            _ => Err(Error::Invalid {
                field: "protocol",
                value: s.to_string(),
                reason: "supported values: \"TCP\", \"UDP\"".into(),
            }),
        }
    }
}

/// A container port published on the node (`ports[].hostPort`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostPort {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// Only this local address (`hostIP`); `None` (or 0.0.0.0) = every local address.
    pub host_ip: Option<Ipv4Addr>,
}

/// Everything that can go wrong in tug-net.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("podCIDR {cidr} has no free address for pod {uid}; delete pods or give the node a larger podCIDR")]
    Exhausted { cidr: String, uid: String },
    #[error("cannot run `{program}` ({source}); install iproute2 and nftables")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("unexpected output of `{command}`: {reason}")]
    Parse { command: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} {name} exists but is not tug's (alias {found:?}, expected {expected:?}); delete it or choose another name (agent flag --bridge for the bridge)")]
    Foreign {
        kind: &'static str,
        name: String,
        found: String,
        expected: String,
    },
    #[error("hostPort {port}/{protocol} of pod {uid} is already published by pod {other}; choose another hostPort")]
    HostPortConflict {
        uid: String,
        other: String,
        port: u16,
        protocol: Protocol,
    },
}

/// `Result` with tug-net's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
