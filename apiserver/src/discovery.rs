//! Discovery documents: `/api`, `/apis`, `/apis/{group}`, resource lists and `/version`.

use serde_json::{json, Value};

pub fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})
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
    json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-tug"})
}
