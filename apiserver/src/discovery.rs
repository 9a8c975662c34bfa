//! PLACEHOLDER (owned by the admission engineer): discovery documents.

use serde_json::{json, Value};

pub fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
}

pub fn api_group_list() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
}

pub fn api_group(_group: &str) -> Option<Value> {
    None
}

pub fn resource_list(_group: &str, _version: &str) -> Option<Value> {
    None
}

pub fn version_info() -> Value {
    json!({"major": "1", "minor": "31", "gitVersion": "v1.31.0-tug", "platform": "linux/amd64"})
}
