//! The `rbac.authorization.k8s.io` API group: role-based access control.

pub mod v1;
