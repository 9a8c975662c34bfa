//! tug-apiserver: the Kubernetes REST API over tug's Raft-replicated store.
//!
//! # Layout
//! - `patch`, `admission`, `table`, `discovery`: patching, decoding/defaulting/validation,
//!   server-side printing and discovery documents.

pub mod admission;
pub mod discovery;
pub mod patch;
pub mod table;
