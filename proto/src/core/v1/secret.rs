//! `Secret`: sensitive data, base64 on the wire.

use crate::go_json::nullable;
use crate::meta::v1::ObjectMeta;
use crate::resource::impl_resource;
use crate::ByteString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `stringData` is write-only convenience: the apiserver merges it into `data`.
/// `Debug` prints keys but never values, so a Secret can't leak through logs.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
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

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("api_version", &self.api_version)
            .field("kind", &self.kind)
            .field("metadata", &self.metadata)
            .field("immutable", &self.immutable)
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .field("string_data", &self.string_data.keys().collect::<Vec<_>>())
            .field("type_", &self.type_)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_output_shows_keys_but_not_values() {
        let mut s = Secret::default();
        s.data
            .insert("password".into(), ByteString::from("hunter2"));
        s.string_data.insert("token".into(), "s3cr3t".into());
        let out = format!("{s:?}");
        assert!(out.contains("password") && out.contains("token"), "{out}");
        assert!(!out.contains("hunter2") && !out.contains("s3cr3t"), "{out}");
    }
}
