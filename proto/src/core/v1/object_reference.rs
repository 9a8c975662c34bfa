//! `ObjectReference` and `LocalObjectReference`: pointers from one object to another.

use serde::{Deserialize, Serialize};

/// A reference to an object of any kind, e.g. an Event's involvedObject or an endpoint's targetRef.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// e.g. `spec.containers{web}` to point at one container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

/// A reference to an object by name in the same namespace (e.g. an imagePullSecret).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalObjectReference {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ObjectReference {
    /// A reference to `obj` (kind, apiVersion, namespace, name, uid, resourceVersion).
    pub fn to<T: crate::Resource>(obj: &T) -> Self {
        let m = obj.metadata();
        ObjectReference {
            kind: Some(T::KIND.to_string()),
            api_version: Some(T::API_VERSION.to_string()),
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            field_path: None,
        }
    }
}
