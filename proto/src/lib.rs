//! tug's API object model: Kubernetes-shaped types written by hand with serde. No I/O.
//!
//! # Layout
//!
//! - [`meta::v1`]: `ObjectMeta`, `List<T>`, `WatchEvent<T>`, `Status`, `DeleteOptions`,
//!   `LabelSelector`, `Condition`, `Time`/`MicroTime`/`Duration`, discovery documents.
//! - [`core::v1`]: Pod (+ container, volume, affinity files), Service, Endpoints,
//!   Namespace, Node, ConfigMap, Secret, Event, ServiceAccount, Binding, ObjectReference.
//! - [`apps::v1`]: Deployment, ReplicaSet. [`batch::v1`]: Job.
//!   [`coordination::v1`]: Lease. [`autoscaling::v1`]: Scale. [`rbac::v1`]: Role,
//!   ClusterRole, RoleBinding, ClusterRoleBinding.
//! - [`config::v1`]: the kubeconfig file (kebab-case keys, unknown keys tolerated).
//! - [`Resource`] (in `resource.rs`): the trait every top-level kind implements
//!   (group, version, kind, plural, namespaced).
//! - [`quantity`]: `Quantity` (`100m`, `64Mi`) with exact arithmetic and canonical printing.
//! - [`decode`]: JSON decoding whose errors carry the field path.
//! - [`labels`] and [`fields`]: selector parsing and matching; [`validation`]: name and
//!   label syntax checks.
//! - `int_or_string.rs`, `byte_string.rs`: [`IntOrString`] and base64 [`ByteString`];
//!   `go_json.rs`: serde glue for Go-like `null` and `omitempty` handling.
//!
//! Conventions for every API struct: camelCase keys; `Option` for optional scalars;
//! plain `Vec`/`BTreeMap` for collections (empty ones are omitted, `null` reads as
//! empty); `#[serde(default)]` so missing fields decode like Go; and
//! `#[serde(deny_unknown_fields)]` so a typo in a manifest is an error naming the field.

pub mod apps;
pub mod autoscaling;
pub mod batch;
mod byte_string;
pub mod config;
pub mod coordination;
pub mod core;
pub mod decode;
pub mod fields;
mod go_json;
mod int_or_string;
pub mod labels;
pub mod meta;
pub mod quantity;
pub mod rbac;
mod resource;
pub mod validation;

pub use byte_string::ByteString;
pub use int_or_string::IntOrString;
pub use meta::v1::{List, ListMeta, MicroTime, ObjectMeta, Time, WatchEvent};
pub use quantity::Quantity;
pub use resource::Resource;
