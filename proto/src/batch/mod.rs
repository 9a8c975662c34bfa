//! The `batch` API group: run-to-completion workloads.

pub mod v1;
