//! tug's API object model: Kubernetes-shaped types written by hand with serde. No I/O.
//!
//! # Layout
//!
//! - [`meta::v1`]: `ObjectMeta`, `List<T>`, `WatchEvent<T>`, `Status`, `DeleteOptions`,
//!   `LabelSelector`, `Time`/`MicroTime`/`Duration`, discovery documents.
//! - [`Resource`] (in `resource.rs`): the trait every top-level kind implements
//!   (group, version, kind, plural, namespaced).
//! - [`quantity`]: `Quantity` (`100m`, `64Mi`) with exact arithmetic and canonical printing.
//! - `int_or_string.rs`, `byte_string.rs`: [`IntOrString`] and base64 [`ByteString`].
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
pub mod fields;
mod go_json;
mod int_or_string;
pub mod labels;
pub mod meta;
pub mod quantity;
mod resource;
pub mod validation;

pub use byte_string::ByteString;
pub use int_or_string::IntOrString;
pub use meta::v1::{List, ListMeta, ObjectMeta, WatchEvent};
pub use quantity::Quantity;
pub use resource::Resource;
