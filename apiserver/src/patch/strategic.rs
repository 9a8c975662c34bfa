//! Kubernetes strategic merge patch for the built-in kinds.
//!
//! Like a JSON merge patch, except that some lists merge instead of being replaced: by a
//! merge key (`containers` by `name`, Service `ports` by `port`, ...) or, for lists of
//! strings with the `merge` strategy (`finalizers`), as a set. The strategies come from
//! the `patchStrategy`/`patchMergeKey` tags of Kubernetes' Go types, written here as a
//! table keyed by the list's field path (map keys only; list indices are skipped).
//!
//! Directives understood: `$patch: replace|delete|merge` in maps and list items,
//! `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`.

use super::{Error, Result};
use serde_json::{Map, Value};

/// How a list field is patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListStrategy {
    /// The patch's list replaces the original (Kubernetes' default, "atomic").
    Replace,
    /// Items are maps merged by the value of this key.
    MergeByKey(&'static str),
    /// Items are scalars; the result is the union, original order first.
    MergeSet,
}
use ListStrategy::*;

/// Lists inside a PodSpec, relative to the PodSpec.
const POD_SPEC: &[(&str, ListStrategy)] = &[
    ("volumes", MergeByKey("name")),
    ("initContainers", MergeByKey("name")),
    ("containers", MergeByKey("name")),
    ("ephemeralContainers", MergeByKey("name")),
    ("imagePullSecrets", MergeByKey("name")),
    ("hostAliases", MergeByKey("ip")),
    ("topologySpreadConstraints", MergeByKey("topologyKey")),
    ("resourceClaims", MergeByKey("name")),
    ("schedulingGates", MergeByKey("name")),
];

/// Lists inside a Container (and init/ephemeral containers), relative to the container.
const CONTAINER: &[(&str, ListStrategy)] = &[
    ("ports", MergeByKey("containerPort")),
    ("env", MergeByKey("name")),
    ("volumeMounts", MergeByKey("mountPath")),
    ("volumeDevices", MergeByKey("devicePath")),
];

/// Lists in ObjectMeta (also inside pod templates).
const META: &[(&str, ListStrategy)] = &[
    ("finalizers", MergeSet),
    ("ownerReferences", MergeByKey("uid")),
];

/// Per-kind lists outside metadata and the pod template's spec.
const KIND: &[(&str, &str, ListStrategy)] = &[
    ("Pod", "status.conditions", MergeByKey("type")),
    ("Pod", "status.podIPs", MergeByKey("ip")),
    ("Pod", "status.hostIPs", MergeByKey("ip")),
    ("Service", "spec.ports", MergeByKey("port")),
    ("Service", "status.conditions", MergeByKey("type")),
    ("Node", "status.conditions", MergeByKey("type")),
    ("Node", "status.addresses", MergeByKey("type")),
    ("Namespace", "status.conditions", MergeByKey("type")),
    ("Deployment", "status.conditions", MergeByKey("type")),
    ("ReplicaSet", "status.conditions", MergeByKey("type")),
    ("Job", "status.conditions", MergeByKey("type")),
];

/// Where the PodSpec lives in each kind that has one.
fn pod_spec_prefix(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("spec"),
        "Deployment" | "ReplicaSet" | "Job" => Some("spec.template.spec"),
        _ => None,
    }
}

/// The strategy of the list at `path` (dotted map keys) in an object of `kind`.
fn list_strategy(kind: &str, path: &str) -> ListStrategy {
    let lookup = |table: &[(&str, ListStrategy)], key: &str| {
        table.iter().find(|(p, _)| *p == key).map(|(_, s)| *s)
    };
    for meta in ["metadata.", "spec.template.metadata."] {
        if let Some(rest) = path.strip_prefix(meta) {
            return lookup(META, rest).unwrap_or(Replace);
        }
    }
    if let Some(rest) = pod_spec_prefix(kind).and_then(|p| path.strip_prefix(p)?.strip_prefix('.'))
    {
        if let Some(s) = lookup(POD_SPEC, rest) {
            return s;
        }
        for containers in ["containers.", "initContainers.", "ephemeralContainers."] {
            if let Some(field) = rest.strip_prefix(containers) {
                return lookup(CONTAINER, field).unwrap_or(Replace);
            }
        }
    }
    KIND.iter()
        .find(|(k, p, _)| *k == kind && *p == path)
        .map(|(_, _, s)| *s)
        .unwrap_or(Replace)
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

fn malformed(message: impl Into<String>) -> Error {
    Error::Malformed {
        kind: "strategic merge",
        message: message.into(),
    }
}

pub(super) fn apply(kind: &str, original: &Value, patch: &[u8]) -> Result<Value> {
    let patch: Value = serde_json::from_slice(patch).map_err(|e| malformed(e.to_string()))?;
    let Value::Object(patch) = patch else {
        return Err(malformed("the patch must be a JSON object"));
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let merged = merge_map(kind, "", original, &patch)?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Merges `patch` into `original`; `None` means the patch deleted the whole map.
fn merge_map(
    kind: &str,
    path: &str,
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>> {
    match patch.get(PATCH) {
        None => {}
        Some(Value::String(d)) if d == "merge" => {}
        Some(Value::String(d)) if d == "delete" => return Ok(None),
        Some(Value::String(d)) if d == "replace" => {
            return Ok(Some(clean_map(kind, path, patch)?));
        }
        Some(other) => {
            return Err(malformed(format!(
                "{}: unknown $patch directive {other} (want \"replace\", \"delete\" or \"merge\")",
                display_path(path)
            )))
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Value::Array(keys) = retain else {
            return Err(malformed(format!(
                "{}: $retainKeys must be a list of field names",
                display_path(path)
            )));
        };
        // Keys named by the patch itself are kept too; Kubernetes requires them to be
        // listed, but tolerating their absence is harmless.
        original.retain(|k, _| {
            keys.iter().any(|x| x.as_str() == Some(k.as_str())) || patch.contains_key(k)
        });
    }
    for (key, value) in patch {
        if key == PATCH || key == RETAIN_KEYS {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE) {
            let Value::Array(remove) = value else {
                return Err(malformed(format!(
                    "{}: {key} must be a list",
                    display_path(path)
                )));
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if key.starts_with(SET_ELEMENT_ORDER) {
            continue; // applied after all fields are merged, below
        }
        let child = join(path, key);
        match value {
            Value::Null => {
                original.remove(key);
            }
            Value::Object(p) => {
                let base = match original.remove(key) {
                    Some(Value::Object(o)) => o,
                    _ => Map::new(),
                };
                if let Some(m) = merge_map(kind, &child, base, p)? {
                    original.insert(key.clone(), Value::Object(m));
                }
            }
            Value::Array(p) => {
                let base = match original.remove(key) {
                    Some(Value::Array(o)) => o,
                    _ => Vec::new(),
                };
                let merged = merge_list(kind, &child, base, p)?;
                original.insert(key.clone(), Value::Array(merged));
            }
            scalar => {
                original.insert(key.clone(), scalar.clone());
            }
        }
    }
    for (key, order) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
            let Value::Array(order) = order else {
                return Err(malformed(format!(
                    "{}: {key} must be a list",
                    display_path(path)
                )));
            };
            let strategy = list_strategy(kind, &join(path, field));
            if let Some(Value::Array(list)) = original.get_mut(field) {
                reorder(list, order, strategy);
            }
        }
    }
    Ok(Some(original))
}

/// Strips directives from a patch value that has nothing to merge into.
fn clean_map(kind: &str, path: &str, patch: &Map<String, Value>) -> Result<Map<String, Value>> {
    let mut without = patch.clone();
    without.remove(PATCH);
    Ok(merge_map(kind, path, Map::new(), &without)?.unwrap_or_default())
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "<root>"
    } else {
        path
    }
}

fn merge_list(kind: &str, path: &str, original: Vec<Value>, patch: &[Value]) -> Result<Vec<Value>> {
    // `[{"$patch": "replace"}, ...]` replaces the list with the other items.
    let replace = patch
        .iter()
        .any(|v| v.get(PATCH).and_then(Value::as_str) == Some("replace"));
    match list_strategy(kind, path) {
        _ if replace => {
            let items: Vec<&Value> = patch
                .iter()
                .filter(|v| v.get(PATCH).and_then(Value::as_str) != Some("replace"))
                .collect();
            items.into_iter().map(|v| clean(kind, path, v)).collect()
        }
        Replace => patch.iter().map(|v| clean(kind, path, v)).collect(),
        MergeSet => {
            let mut out = original;
            for v in patch {
                if v.is_object() || v.is_array() {
                    return Err(malformed(format!(
                        "{path}: a list of values cannot contain {v}"
                    )));
                }
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(out)
        }
        MergeByKey(key) => {
            let mut out = original;
            for item in patch {
                let Value::Object(p) = item else {
                    return Err(malformed(format!(
                        "{path}: items must be objects with a {key:?} field, got {item}"
                    )));
                };
                let Some(id) = p.get(key) else {
                    return Err(malformed(format!(
                        "{path}: item {item} does not contain the merge key {key:?}"
                    )));
                };
                let pos = out.iter().position(|o| o.get(key) == Some(id));
                if p.get(PATCH).and_then(Value::as_str) == Some("delete") {
                    out.retain(|o| o.get(key) != Some(id));
                    continue;
                }
                match pos {
                    Some(i) => {
                        let base = match std::mem::take(&mut out[i]) {
                            Value::Object(o) => o,
                            _ => Map::new(),
                        };
                        match merge_map(kind, path, base, p)? {
                            Some(m) => out[i] = Value::Object(m),
                            None => {
                                out.remove(i);
                            }
                        }
                    }
                    None => out.push(Value::Object(clean_map(kind, path, p)?)),
                }
            }
            Ok(out)
        }
    }
}

fn clean(kind: &str, path: &str, v: &Value) -> Result<Value> {
    match v {
        Value::Object(m) => Ok(Value::Object(clean_map(kind, path, m)?)),
        other => Ok(other.clone()),
    }
}

/// Applies `$setElementOrder`: items named in `order` come first, in that order; the
/// rest (items only the server had) keep their relative order after them.
fn reorder(list: &mut [Value], order: &[Value], strategy: ListStrategy) {
    let id = |v: &Value| -> Value {
        match strategy {
            MergeByKey(key) => v.get(key).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let rank = |v: &Value| {
        let id = id(v);
        order
            .iter()
            .position(|o| match strategy {
                MergeByKey(key) => o.get(key) == Some(&id),
                _ => *o == id,
            })
            .unwrap_or(usize::MAX)
    };
    list.sort_by_key(|v| rank(v)); // stable: unranked items keep their order
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(kind: &str, original: Value, patch: Value) -> Value {
        apply(kind, &original, patch.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn strategic_merge_cases() {
        let cases: Vec<(&str, &str, Value, Value, Value)> = vec![
            (
                "containers merge by name and keep unnamed fields",
                "Pod",
                json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}),
                json!({"spec": {"containers": [{"name": "b", "image": "b:2"}]}}),
                json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}]}}),
            ),
            (
                "deployment template containers merge by name and env by name",
                "Deployment",
                json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}}}),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]}}}}),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]}}}}),
            ),
            (
                "a new container is appended",
                "Pod",
                json!({"spec": {"containers": [{"name": "a"}]}}),
                json!({"spec": {"containers": [{"name": "b", "image": "b"}]}}),
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "image": "b"}]}}),
            ),
            (
                "$patch delete removes a list item by key",
                "Pod",
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
                json!({"spec": {"containers": [{"name": "b"}]}}),
            ),
            (
                "$patch replace on a list replaces it",
                "Pod",
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                json!({"spec": {"containers": [{"name": "c"}, {"$patch": "replace"}]}}),
                json!({"spec": {"containers": [{"name": "c"}]}}),
            ),
            (
                "$patch replace on a map replaces it",
                "Pod",
                json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
                json!({"metadata": {"labels": {"c": "3", "$patch": "replace"}}}),
                json!({"metadata": {"labels": {"c": "3"}}}),
            ),
            (
                "$patch delete on a map removes it",
                "Pod",
                json!({"metadata": {"name": "p", "labels": {"a": "1"}}}),
                json!({"metadata": {"labels": {"$patch": "delete"}}}),
                json!({"metadata": {"name": "p"}}),
            ),
            (
                "null deletes a field",
                "Pod",
                json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
                json!({"metadata": {"labels": {"a": null}}}),
                json!({"metadata": {"labels": {"b": "2"}}}),
            ),
            (
                "finalizers merge as a set",
                "Namespace",
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"finalizers": ["b", "c"]}}),
                json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            ),
            (
                "$deleteFromPrimitiveList removes finalizers",
                "Pod",
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
                json!({"metadata": {"finalizers": ["b"]}}),
            ),
            (
                "tolerations are atomic",
                "Pod",
                json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}}),
                json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}),
                json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}),
            ),
            (
                "service ports merge by port",
                "Service",
                json!({"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
                json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"name": "https", "port": 443}]}}),
                json!({"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 9090}, {"name": "https", "port": 443}]}}),
            ),
            (
                "container ports merge by containerPort",
                "Pod",
                json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]}}),
                json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}),
                json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}]}]}}),
            ),
            (
                "pod status conditions merge by type",
                "Pod",
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}}),
            ),
            (
                "lists without a strategy are replaced",
                "Pod",
                json!({"spec": {"containers": [{"name": "a", "args": ["x", "y"]}]}}),
                json!({"spec": {"containers": [{"name": "a", "args": ["z"]}]}}),
                json!({"spec": {"containers": [{"name": "a", "args": ["z"]}]}}),
            ),
            (
                "$retainKeys drops unlisted keys of the deployment strategy",
                "Deployment",
                json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                json!({"spec": {"strategy": {"type": "Recreate"}}}),
            ),
            (
                "$setElementOrder reorders and is stripped",
                "Pod",
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}], "containers": [{"name": "a", "image": "x"}]}}),
                json!({"spec": {"containers": [{"name": "b"}, {"name": "a", "image": "x"}]}}),
            ),
            (
                "directives in new items are stripped",
                "Pod",
                json!({"spec": {}}),
                json!({"spec": {"containers": [{"name": "a", "$setElementOrder/env": [{"name": "X"}], "env": [{"name": "X", "value": "1"}]}]}}),
                json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]}}),
            ),
            (
                "owner references merge by uid",
                "ReplicaSet",
                json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}}),
            ),
            (
                "node addresses merge by type",
                "Node",
                json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}]}}),
                json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}),
                json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n1"}]}}),
            ),
            (
                "endpoints subsets are atomic",
                "Endpoints",
                json!({"subsets": [{"addresses": [{"ip": "1.1.1.1"}]}]}),
                json!({"subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]}),
                json!({"subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]}),
            ),
            (
                "kubectl apply switching a volume's source sends $retainKeys",
                "Pod",
                json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
                json!({"spec": {"volumes": [{"$retainKeys": ["configMap", "name"], "name": "v", "configMap": {"name": "c"}}]}}),
                json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "c"}}]}}),
            ),
            (
                "kubectl apply replacing a service port deletes the old one by key",
                "Service",
                json!({"spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]}}),
                json!({"spec": {"$setElementOrder/ports": [{"port": 5353}], "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}, {"$patch": "delete", "port": 53}]}}),
                json!({"spec": {"ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}]}}),
            ),
            (
                "volumes merge by name",
                "Job",
                json!({"spec": {"template": {"spec": {"volumes": [{"name": "a", "emptyDir": {}}]}}}}),
                json!({"spec": {"template": {"spec": {"volumes": [{"name": "b", "configMap": {"name": "c"}}]}}}}),
                json!({"spec": {"template": {"spec": {"volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "configMap": {"name": "c"}}]}}}}),
            ),
        ];
        for (name, kind, original, patch, want) in cases {
            assert_eq!(patched(kind, original, patch), want, "{name}");
        }
    }

    #[test]
    fn kubectl_apply_three_way_patch_is_applied() {
        // What `kubectl apply` sends after changing the image and an env var and
        // removing a label of a Deployment it created before.
        let last = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"labels":{"app":"web"},"name":"web","namespace":"default"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":"nginx:1.27","name":"web"}]}}}}"#;
        let original = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "old", "deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.26", "env": [{"name": "A", "value": "1"}],
                        "terminationMessagePath": "/dev/termination-log"}], "restartPolicy": "Always"}}},
            "status": {"replicas": 2}
        });
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last}, "labels": {"tier": null}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"$setElementOrder/env": [{"name": "A"}], "env": [{"name": "A", "value": "2"}], "image": "nginx:1.27", "name": "web"}]
            }}}
        });
        let got = patched("Deployment", original, patch);
        assert_eq!(got["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            last
        );
        assert_eq!(
            got["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "1"
        );
        let c = &got["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            *c,
            json!({"name": "web", "image": "nginx:1.27", "env": [{"name": "A", "value": "2"}], "terminationMessagePath": "/dev/termination-log"})
        );
        assert_eq!(got["status"]["replicas"], 2);
        assert_eq!(got["spec"]["template"]["spec"]["restartPolicy"], "Always");
    }

    #[test]
    fn malformed_strategic_patches_are_bad_requests() {
        let cases = [
            ("not json", "{"),
            ("not an object", "[1]"),
            (
                "item without merge key",
                r#"{"spec":{"containers":[{"image":"x"}]}}"#,
            ),
            ("unknown directive", r#"{"spec":{"$patch":"frobnicate"}}"#),
        ];
        for (name, body) in cases {
            let err = apply("Pod", &json!({"spec": {}}), body.as_bytes()).unwrap_err();
            assert!(err.is_bad_request(), "{name}: {err}");
        }
    }
}
