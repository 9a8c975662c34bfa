//! Lists (`PodList`, ...), their `ListMeta`, and watch events.

use crate::go_json::nullable;
use crate::Resource;
use serde::{Deserialize, Serialize};

/// Metadata of a list response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ListMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Token for the next page (`continue` is a Rust keyword).
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_item_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
}

/// A list of objects, e.g. `{"kind":"PodList","apiVersion":"v1","metadata":{...},"items":[...]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct List<T> {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub metadata: ListMeta,
    // Kubernetes always writes `items`, even when empty (`"items": []`).
    #[serde(deserialize_with = "nullable")]
    pub items: Vec<T>,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List {
            api_version: String::new(),
            kind: String::new(),
            metadata: ListMeta::default(),
            items: Vec::new(),
        }
    }
}

impl<T: Resource> List<T> {
    /// A list with `apiVersion`/`kind` set (e.g. `PodList`) at the given resourceVersion.
    pub fn new(items: Vec<T>, resource_version: impl Into<String>) -> Self {
        List {
            api_version: T::API_VERSION.to_string(),
            kind: T::list_kind(),
            metadata: ListMeta {
                resource_version: Some(resource_version.into()),
                ..Default::default()
            },
            items,
        }
    }
}

/// Watch event types as written on the wire.
pub mod event_type {
    pub const ADDED: &str = "ADDED";
    pub const MODIFIED: &str = "MODIFIED";
    pub const DELETED: &str = "DELETED";
    pub const BOOKMARK: &str = "BOOKMARK";
    pub const ERROR: &str = "ERROR";
}

/// One line of a watch stream: `{"type":"ADDED","object":{...}}`. For `ERROR` events the
/// object is a `Status`; decode as `WatchEvent<serde_json::Value>` first if you must
/// handle those.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchEvent<T> {
    #[serde(rename = "type")]
    pub type_: String,
    pub object: T,
}

impl<T> WatchEvent<T> {
    pub fn new(type_: &str, object: T) -> Self {
        WatchEvent {
            type_: type_.to_string(),
            object,
        }
    }
}
