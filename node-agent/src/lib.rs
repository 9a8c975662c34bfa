//! tug-agent: the node agent, tug's kubelet. It registers its Node, renews its Lease,
//! runs the Pods bound to it as Linux containers (tug-runtime), with images from
//! tug-image and networking from tug-net, reports their status, and serves their logs
//! and exec to the apiserver.
//!
//! # Layout
//!
//! - `agent.rs`: [`agent::Agent::start`] (wiring), the shared [`agent::Ctx`], the pod
//!   dispatcher (one worker per pod uid) and the heartbeat.
//! - `worker.rs`: the per-pod worker: sandbox -> images -> init containers ->
//!   containers -> probes -> restarts with back-off -> graceful stop -> cleanup.
//! - `record.rs`: the per-pod record persisted across agent restarts.
//! - `status.rs`: phase, conditions and container statuses, as the kubelet computes them.
//! - `spec.rs`: argv, environment, user and cgroup limits of a container.
//! - `podfiles.rs`: /etc/hosts, /etc/hostname, /etc/resolv.conf; host ports; pod limits.
//! - `volumes/`: emptyDir, hostPath, configMap, secret, projected, downwardAPI.
//! - `probe.rs`: liveness, readiness and startup probes.
//! - `cli.rs`: the `tug-agent` command line.
//! - `node.rs`: Node registration, Lease and node status.
//! - `identity.rs`: the node's client and serving certificates.
//! - `server/` + `backend.rs`: the HTTPS logs/exec endpoint the apiserver proxies to.
//! - `dns/`: cluster DNS (`<svc>.<ns>.svc.cluster.local`) served from the same caches.
//! - `routes.rs`: host-gw routes to the other Nodes' podCIDRs, synced from the API.
//! - `proxy/`: Services -> nftables (ClusterIP, NodePort, affinity), kube-proxy's job.

pub mod agent;
pub mod backend;
pub mod cli;
pub mod dns;
pub mod identity;
pub mod node;
pub mod podfiles;
pub mod probe;
pub mod proxy;
pub mod record;
pub mod routes;
pub mod server;
pub mod spec;
pub mod status;
pub mod volumes;
pub mod worker;
