//! `LabelSelector`: the structured selector in Deployments, ReplicaSets, Jobs, affinity.

use crate::go_json::nullable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `{matchLabels: {...}, matchExpressions: [...]}`; all terms are ANDed. An empty selector
/// matches everything; turn it into a matcher with [`crate::labels::Selector`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub match_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// `{key, operator: In|NotIn|Exists|DoesNotExist, values}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub values: Vec<String>,
}
