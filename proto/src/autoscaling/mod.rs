//! The `autoscaling` API group; tug only uses its `Scale` subresource type.

pub mod v1;
