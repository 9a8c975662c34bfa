//! Namespaces: the `kubernetes` finalizer and the Active phase at create.

use super::access::{child, default};
use serde_json::{json, Value};

/// The finalizer the namespace controller removes once the namespace is empty.
const KUBERNETES_FINALIZER: &str = "kubernetes";

/// The namespace strategy's `PrepareForCreate`: the `kubernetes` finalizer is always
/// there and the namespace starts Active.
pub fn default_namespace(ns: &mut Value) {
    let spec = child(ns, "spec");
    let finalizers = spec
        .as_object_mut()
        .expect("child() returns an object")
        .entry("finalizers")
        .or_insert_with(|| json!([]));
    if !finalizers.is_array() {
        *finalizers = json!([]);
    }
    if let Some(list) = finalizers.as_array_mut() {
        if !list.iter().any(|f| f == KUBERNETES_FINALIZER) {
            list.push(json!(KUBERNETES_FINALIZER));
        }
    }
    default(child(ns, "status"), "phase", json!("Active"));
}
