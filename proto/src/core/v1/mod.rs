//! `core/v1` (apiVersion `v1`): one file per kind or concept, all re-exported here.

mod affinity;
mod binding;
mod config_map;
mod container;
mod endpoints;
mod event;
mod namespace;
mod node;
mod object_reference;
mod pod;
mod secret;
mod service;
mod service_account;
mod volume;

pub use affinity::*;
pub use binding::*;
pub use config_map::*;
pub use container::*;
pub use endpoints::*;
pub use event::*;
pub use namespace::*;
pub use node::*;
pub use object_reference::*;
pub use pod::*;
pub use secret::*;
pub use service::*;
pub use service_account::*;
pub use volume::*;
