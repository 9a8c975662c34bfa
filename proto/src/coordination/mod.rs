//! `coordination.k8s.io`: Leases for leader election and node heartbeats.

pub mod v1;
