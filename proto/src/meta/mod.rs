//! `meta.k8s.io`: metadata shared by every kind.

pub mod v1;
