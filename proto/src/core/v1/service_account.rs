//! `ServiceAccount`: an identity for processes that run in pods.

use crate::core::v1::{LocalObjectReference, ObjectReference};
use crate::go_json::nullable;
use crate::meta::v1::ObjectMeta;
use crate::resource::impl_resource;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceAccount {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub secrets: Vec<ObjectReference>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
}

impl_resource!(
    ServiceAccount,
    group = "",
    version = "v1",
    api_version = "v1",
    kind = "ServiceAccount",
    plural = "serviceaccounts",
    namespaced = true
);
