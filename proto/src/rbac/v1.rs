//! `rbac.authorization.k8s.io/v1`: Roles, ClusterRoles and their bindings.

use crate::go_json::nullable;
use crate::meta::v1::{LabelSelector, ObjectMeta};
use crate::resource::impl_resource;
use serde::{Deserialize, Serialize};

/// Namespaced permissions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Role {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub rules: Vec<PolicyRule>,
}

impl_resource!(
    Role,
    group = "rbac.authorization.k8s.io",
    version = "v1",
    api_version = "rbac.authorization.k8s.io/v1",
    kind = "Role",
    plural = "roles",
    namespaced = true
);

/// Cluster-wide permissions (or a reusable set of namespaced ones).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterRole {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub rules: Vec<PolicyRule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation_rule: Option<AggregationRule>,
}

impl_resource!(
    ClusterRole,
    group = "rbac.authorization.k8s.io",
    version = "v1",
    api_version = "rbac.authorization.k8s.io/v1",
    kind = "ClusterRole",
    plural = "clusterroles",
    namespaced = false
);

/// Grants a Role or ClusterRole to subjects within one namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleBinding {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub subjects: Vec<Subject>,
    pub role_ref: RoleRef,
}

impl_resource!(
    RoleBinding,
    group = "rbac.authorization.k8s.io",
    version = "v1",
    api_version = "rbac.authorization.k8s.io/v1",
    kind = "RoleBinding",
    plural = "rolebindings",
    namespaced = true
);

/// Grants a ClusterRole to subjects in every namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterRoleBinding {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub subjects: Vec<Subject>,
    pub role_ref: RoleRef,
}

impl_resource!(
    ClusterRoleBinding,
    group = "rbac.authorization.k8s.io",
    version = "v1",
    api_version = "rbac.authorization.k8s.io/v1",
    kind = "ClusterRoleBinding",
    plural = "clusterrolebindings",
    namespaced = false
);

/// Verbs allowed on resources (or on non-resource URLs like `/healthz`); `*` matches all.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(deserialize_with = "nullable")]
    pub verbs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub api_groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub resources: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub resource_names: Vec<String>,
    #[serde(
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub non_resource_urls: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AggregationRule {
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub cluster_role_selectors: Vec<LabelSelector>,
}

/// `{kind: User|Group|ServiceAccount, name, namespace (service accounts), apiGroup}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Subject {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleRef {
    pub api_group: String,
    pub kind: String,
    pub name: String,
}
