//! tug's end-to-end harness and benchmark building blocks.
//!
//! # Layout
//! - `cluster`: a local multi-node cluster made by `tug cluster create` (needs root).
//! - `load`: a bounded closed-loop load generator (throughput, p50/p99).
//! - `etcd`: a 3-member etcd cluster on loopback, the store benchmark's yardstick.
//! - `tugcp`: a tug control plane as separate replica processes on loopback (the calling
//!   binary re-executed with a hidden `replica` subcommand).
//! - `ports`: loopback port picking.
//! - `sched_bench`: the scheduler throughput benchmark (simulated nodes, real scheduler).
//! - `runtime_bench`: container run+wait+remove through tug's shim vs runc.
//! - `bench_node`: a one-node cluster (replica + agent processes) for benchmarks.
//! - `podstartup`: Pod create -> Running latency on a one-node cluster (agent process).
//! - `service_bench`: a pod's requests/s to a ClusterIP Service vs straight to a pod IP.
//!
//! Scenario tests live in `tests/`; benchmark programs in `src/bin/`.

pub mod bench_node;
pub mod cluster;
pub mod etcd;
pub mod load;
pub mod podstartup;
pub mod ports;
pub mod runtime_bench;
pub mod sched_bench;
pub mod service_bench;
pub mod tugcp;
