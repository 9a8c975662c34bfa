//! `Secret`: sensitive data, base64 on the wire.

use crate::go_json::nullable;
use crate::meta::v1::ObjectMeta;
use crate::resource::impl_resource;
use crate::ByteString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `stringData` is write-only convenience: the apiserver merges it into `data`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Secret {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub data: BTreeMap<String, ByteString>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub string_data: BTreeMap<String, String>,
    /// e.g. `Opaque` (default), `kubernetes.io/tls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

impl_resource!(
    Secret,
    group = "",
    version = "v1",
    api_version = "v1",
    kind = "Secret",
    plural = "secrets",
    namespaced = true
);
