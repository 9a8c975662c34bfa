//! The core API group (`""`, written `v1`): pods, services, nodes and friends.

pub mod v1;
