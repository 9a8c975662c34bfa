//! Client configuration files; `v1` is the kubeconfig format.

pub mod v1;
