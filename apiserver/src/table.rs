//! PLACEHOLDER (owned by the admission engineer): server-side printing as meta.k8s.io/v1 Table.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// Renders `items` as a Table with a Name column only.
pub fn to_table(_kind: &str, items: &[Value], list_meta: Value, _now: DateTime<Utc>) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|o| json!({"cells": [o["metadata"]["name"].clone()], "object": o.clone()}))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": [{"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}],
        "rows": rows,
    })
}
