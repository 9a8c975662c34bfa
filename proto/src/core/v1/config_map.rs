//! `ConfigMap`: non-secret configuration as string or binary values.

use crate::go_json::nullable;
use crate::meta::v1::ObjectMeta;
use crate::resource::impl_resource;
use crate::ByteString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMap {
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
    pub data: BTreeMap<String, String>,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub binary_data: BTreeMap<String, ByteString>,
}

impl_resource!(
    ConfigMap,
    group = "",
    version = "v1",
    api_version = "v1",
    kind = "ConfigMap",
    plural = "configmaps",
    namespaced = true
);
