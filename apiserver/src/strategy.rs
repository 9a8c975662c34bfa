//! Per-kind rules of the generic REST logic, like Kubernetes' registry strategies: what a
//! create resets, what an update of the main resource or of `/status` may change, and
//! when `metadata.generation` moves.

use serde_json::{json, Map, Value};
use tug_proto::quantity::Quantity;

use crate::object;
use crate::registry::ResourceInfo;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The main resource: for kinds with a status subresource, status changes are ignored.
    Main,
    /// `/status`: only status changes are kept.
    Status,
    /// `namespaces/{name}/finalize`: only `spec.finalizers` changes are kept (the
    /// namespace controller's way of saying the namespace is empty).
    Finalize,
}

/// Resets what a client may not choose on create (before admission).
pub fn prepare_for_create(info: &ResourceInfo, obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match info.plural {
        "pods" => {
            map.insert("status".into(), json!({"phase": "Pending"}));
        }
        "namespaces" => {
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            if spec.get("finalizers").is_none() {
                spec["finalizers"] = json!(["kubernetes"]);
            }
            map.insert("status".into(), json!({"phase": "Active"}));
        }
        // The node agent registers its node with a status; keep it.
        "nodes" => {}
        _ if info.status => {
            map.remove("status");
        }
        _ => {}
    }
}

/// Fills in what is computed from the admitted object (after defaulting).
pub fn finish_create(info: &ResourceInfo, obj: &mut Value) {
    if info.plural == "namespaces" {
        // Kubernetes labels every namespace with its own name, for namespace selectors.
        let name = json!(object::name(obj));
        let meta = object::meta_mut(obj);
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if labels.is_object() {
            labels["kubernetes.io/metadata.name"] = name;
        }
    }
    if info.plural == "pods" {
        let qos = qos_class(&obj["spec"]);
        if let Some(status) = obj["status"].as_object_mut() {
            status.insert("qosClass".into(), json!(qos));
        }
    }
}

/// Builds the object to store from the client's `new` and the stored `old`: system
/// metadata is kept from `old`, the part not addressed by the request is kept from `old`,
/// and generation moves when the spec changed.
pub fn prepare_for_update(info: &ResourceInfo, part: Part, new: Value, old: &Value) -> Value {
    let mut out = match part {
        Part::Main => {
            let mut out = new;
            if info.status {
                match old.get("status") {
                    Some(s) => {
                        out["status"] = s.clone();
                    }
                    None => {
                        if let Some(m) = out.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            out
        }
        Part::Status => {
            // Only status: spec and metadata (labels, annotations, finalizers, owners)
            // stay as stored, like Kubernetes' ResetObjectMetaForStatus.
            let mut out = old.clone();
            match new.get("status") {
                Some(s) => {
                    out["status"] = s.clone();
                }
                None => {
                    if let Some(m) = out.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            out
        }
        Part::Finalize => {
            let mut out = old.clone();
            let finalizers = new["spec"].get("finalizers").cloned();
            match (finalizers, out["spec"].as_object_mut()) {
                (Some(f), Some(spec)) => {
                    spec.insert("finalizers".into(), f);
                }
                (Some(f), None) => out["spec"] = json!({ "finalizers": f }),
                (None, Some(spec)) => {
                    spec.remove("finalizers");
                }
                (None, None) => {}
            }
            out
        }
    };
    // System metadata is the server's.
    let old_meta = old["metadata"].as_object().cloned().unwrap_or_default();
    let meta = object::meta_mut(&mut out);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "selfLink",
    ] {
        match old_meta.get(field) {
            Some(v) => {
                meta.insert(field.into(), v.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
    if info.has_spec && object::spec_part(&out) != object::spec_part(old) {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        object::meta_mut(&mut out).insert("generation".into(), json!(generation));
    }
    out
}

/// Kubernetes' pod QoS class: BestEffort without any cpu/memory request or limit,
/// Guaranteed when every container limits both and requests equal limits, else Burstable.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten())
        .collect();
    let quantity = |v: &Value| {
        v.as_str()
            .and_then(|s| Quantity::parse(s).ok())
            .or_else(|| {
                v.as_i64()
                    .and_then(|n| Quantity::parse(&n.to_string()).ok())
            })
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let requests = c["resources"]["requests"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let limits = c["resources"]["limits"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for res in ["cpu", "memory"] {
            let req = requests
                .get(res)
                .and_then(quantity)
                .filter(|q| !q.is_zero());
            let lim = limits.get(res).and_then(quantity).filter(|q| !q.is_zero());
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Sets or replaces one condition in `status.conditions` (by type).
pub fn set_condition(obj: &mut Value, condition: Value) {
    let status = obj.as_object_mut().map(|m| {
        m.entry("status")
            .or_insert_with(|| Value::Object(Map::new()))
    });
    let Some(status) = status else {
        return;
    };
    if !status.is_object() {
        *status = json!({});
    }
    let conditions = status
        .as_object_mut()
        .expect("made an object above")
        .entry("conditions")
        .or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("made an array above");
    let ty = condition["type"].clone();
    match list.iter_mut().find(|c| c["type"] == ty) {
        Some(c) => *c = condition,
        None => list.push(condition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn qos_classes_follow_kubernetes() {
        let cases = [
            (json!({"containers": [{"name": "a"}]}), "BestEffort"),
            (
                json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}}]}),
                "Guaranteed",
            ),
            (
                json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}),
                "Guaranteed",
            ),
            (
                json!({"containers": [{"resources": {"requests": {"cpu": "100m"}}}]}),
                "Burstable",
            ),
            (
                json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}, {"name": "b"}]}),
                "Burstable",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(qos_class(&spec), want, "{spec}");
        }
    }

    #[test]
    fn main_updates_ignore_status_and_bump_generation_only_on_spec_change() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "uid": "u", "generation": 3}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let new = json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {"replicas": 9}});
        let out = prepare_for_update(deploy, Part::Main, new, &old);
        assert_eq!(out["status"]["replicas"], 1);
        assert_eq!(out["metadata"]["generation"], 3);
        assert_eq!(out["metadata"]["uid"], "u");
        assert_eq!(out["metadata"]["labels"]["a"], "b");

        let new = json!({"metadata": {"name": "d"}, "spec": {"replicas": 2}});
        let out = prepare_for_update(deploy, Part::Main, new, &old);
        assert_eq!(out["metadata"]["generation"], 4);
    }

    #[test]
    fn status_updates_keep_only_status() {
        let pods = lookup("", "v1", "pods").unwrap();
        let old = json!({"metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"nodeName": ""}, "status": {"phase": "Pending"}});
        let new = json!({"metadata": {"name": "p", "labels": {}}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let out = prepare_for_update(pods, Part::Status, new, &old);
        assert_eq!(out["status"]["phase"], "Running");
        assert_eq!(out["spec"]["nodeName"], "");
        assert_eq!(out["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn kinds_without_status_subresource_keep_everything() {
        let cms = lookup("", "v1", "configmaps").unwrap();
        let old = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let new = json!({"metadata": {"name": "c"}, "data": {"a": "2"}});
        let out = prepare_for_update(cms, Part::Main, new, &old);
        assert_eq!(out["data"]["a"], "2");
        assert!(out["metadata"].get("generation").is_none());
    }
}
