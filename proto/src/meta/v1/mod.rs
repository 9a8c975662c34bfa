//! `meta/v1`: ObjectMeta, lists, watch events, Status, DeleteOptions, times and discovery.

mod condition;
mod delete_options;
mod discovery;
pub mod duration;
mod label_selector;
mod list;
mod object_meta;
mod status;
mod time;

pub use condition::Condition;
pub use delete_options::{propagation, DeleteOptions, Preconditions};
pub use discovery::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};
pub use duration::Duration;
pub use label_selector::{LabelSelector, LabelSelectorRequirement};
pub use list::{event_type, List, ListMeta, WatchEvent};
pub use object_meta::{ObjectMeta, OwnerReference};
pub use status::{cause_type, reason, Status, StatusCause, StatusDetails};
pub use time::{MicroTime, Time};
