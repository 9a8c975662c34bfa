//! Discovery documents: `/api`, `/apis`, `/apis/{group}`, resource lists and `/version`.
//!
//! kubectl resolves `po`, `deploy`, `rs`, ... and decides namespaced vs cluster URLs from
//! these documents, so names, kinds, verbs and short names mirror Kubernetes 1.32.

use serde_json::{json, Value};

/// The verbs of a resource that supports everything.
const ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces cannot be deleted as a collection.
const NO_COLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const STATUS: &[&str] = &["get", "patch", "update"];
const CREATE: &[&str] = &["create"];
const GET: &[&str] = &["get"];
const UPDATE: &[&str] = &["update"];
const CREATE_GET: &[&str] = &["create", "get"];

/// One entry of an APIResourceList.
struct ApiResource {
    name: &'static str,
    singular: &'static str,
    namespaced: bool,
    kind: &'static str,
    verbs: &'static [&'static str],
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    /// For subresources whose body is another group's kind (`deployments/scale` is an
    /// `autoscaling/v1` Scale).
    group_version: Option<(&'static str, &'static str)>,
}

const fn res(
    name: &'static str,
    singular: &'static str,
    namespaced: bool,
    kind: &'static str,
    verbs: &'static [&'static str],
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
) -> ApiResource {
    ApiResource {
        name,
        singular,
        namespaced,
        kind,
        verbs,
        short_names,
        categories,
        group_version: None,
    }
}

/// Subresources have an empty singularName in Kubernetes.
const fn sub(
    name: &'static str,
    namespaced: bool,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> ApiResource {
    res(name, "", namespaced, kind, verbs, &[], &[])
}

const fn scale(name: &'static str) -> ApiResource {
    ApiResource {
        group_version: Some(("autoscaling", "v1")),
        ..sub(name, true, "Scale", STATUS)
    }
}

const CORE_V1: &[ApiResource] = &[
    res("bindings", "binding", true, "Binding", CREATE, &[], &[]),
    res(
        "configmaps",
        "configmap",
        true,
        "ConfigMap",
        ALL,
        &["cm"],
        &[],
    ),
    res(
        "endpoints",
        "endpoints",
        true,
        "Endpoints",
        ALL,
        &["ep"],
        &[],
    ),
    res("events", "event", true, "Event", ALL, &["ev"], &[]),
    res(
        "namespaces",
        "namespace",
        false,
        "Namespace",
        NO_COLLECTION,
        &["ns"],
        &[],
    ),
    sub("namespaces/finalize", false, "Namespace", UPDATE),
    sub("namespaces/status", false, "Namespace", STATUS),
    res("nodes", "node", false, "Node", ALL, &["no"], &[]),
    sub("nodes/status", false, "Node", STATUS),
    res("pods", "pod", true, "Pod", ALL, &["po"], &["all"]),
    sub("pods/binding", true, "Binding", CREATE),
    sub("pods/exec", true, "PodExecOptions", CREATE_GET),
    sub("pods/log", true, "Pod", GET),
    sub("pods/status", true, "Pod", STATUS),
    res("secrets", "secret", true, "Secret", ALL, &[], &[]),
    res(
        "services",
        "service",
        true,
        "Service",
        ALL,
        &["svc"],
        &["all"],
    ),
    sub("services/status", true, "Service", STATUS),
];

const APPS_V1: &[ApiResource] = &[
    res(
        "deployments",
        "deployment",
        true,
        "Deployment",
        ALL,
        &["deploy"],
        &["all"],
    ),
    scale("deployments/scale"),
    sub("deployments/status", true, "Deployment", STATUS),
    res(
        "replicasets",
        "replicaset",
        true,
        "ReplicaSet",
        ALL,
        &["rs"],
        &["all"],
    ),
    scale("replicasets/scale"),
    sub("replicasets/status", true, "ReplicaSet", STATUS),
];

const BATCH_V1: &[ApiResource] = &[
    res("jobs", "job", true, "Job", ALL, &[], &["all"]),
    sub("jobs/status", true, "Job", STATUS),
];

const COORDINATION_V1: &[ApiResource] = &[res("leases", "lease", true, "Lease", ALL, &[], &[])];

/// Named API groups served under `/apis`, in the order Kubernetes lists them.
const GROUPS: &[(&str, &str, &[ApiResource])] = &[
    ("apps", "v1", APPS_V1),
    ("batch", "v1", BATCH_V1),
    ("coordination.k8s.io", "v1", COORDINATION_V1),
];

/// `GET /api`.
pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

fn group_json(name: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/{version}"), "version": version});
    json!({"name": name, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = GROUPS.iter().map(|(g, v, _)| group_json(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`; `None` for a group we do not serve.
pub fn api_group(group: &str) -> Option<Value> {
    let (g, v, _) = GROUPS.iter().find(|(g, _, _)| *g == group)?;
    let mut doc = group_json(g, v);
    let obj = doc.as_object_mut()?;
    obj.insert("kind".into(), json!("APIGroup"));
    obj.insert("apiVersion".into(), json!("v1"));
    Some(doc)
}

/// `GET /api/v1` (group `""`) and `GET /apis/{group}/{version}`.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let (group_version, resources) = match (group, version) {
        ("", "v1") => ("v1".to_string(), CORE_V1),
        _ => {
            let (g, v, r) = GROUPS
                .iter()
                .find(|(g, v, _)| *g == group && *v == version)?;
            (format!("{g}/{v}"), *r)
        }
    };
    let resources: Vec<Value> = resources.iter().map(resource_json).collect();
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

fn resource_json(r: &ApiResource) -> Value {
    let mut v = json!({
        "name": r.name,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs,
    });
    let obj = v.as_object_mut().expect("json! object");
    if let Some((g, ver)) = r.group_version {
        obj.insert("group".into(), json!(g));
        obj.insert("version".into(), json!(ver));
    }
    if !r.short_names.is_empty() {
        obj.insert("shortNames".into(), json!(r.short_names));
    }
    if !r.categories.is_empty() {
        obj.insert("categories".into(), json!(r.categories));
    }
    v
}

/// The Content-Type of [`aggregated`] documents; kubectl asks for it first in `Accept`
/// and falls back to the per-group documents when the server answers plain JSON.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Aggregated discovery (`apidiscovery.k8s.io/v2` APIGroupDiscoveryList): for `GET /api`
/// when `legacy` (the core group) and `GET /apis` otherwise, when the client's Accept
/// asks for [`AGGREGATED_CONTENT_TYPE`]. One request replaces one per group version.
pub fn aggregated(legacy: bool) -> Value {
    let groups: Vec<(&str, &str, &[ApiResource])> = if legacy {
        vec![("", "v1", CORE_V1)]
    } else {
        GROUPS.to_vec()
    };
    let items: Vec<Value> = groups
        .into_iter()
        .map(|(group, version, resources)| {
            json!({
                "metadata": {"name": group, "creationTimestamp": null},
                "versions": [{
                    "version": version,
                    "resources": aggregated_resources(group, version, resources),
                    "freshness": "Current",
                }],
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resources(group: &str, version: &str, resources: &[ApiResource]) -> Vec<Value> {
    let response_kind = |r: &ApiResource| {
        let (g, v) = r.group_version.unwrap_or((group, version));
        json!({"group": g, "version": v, "kind": r.kind})
    };
    resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| {
            let prefix = format!("{}/", r.name);
            let subresources: Vec<Value> = resources
                .iter()
                .filter_map(|s| {
                    let sub = s.name.strip_prefix(&prefix)?;
                    Some(json!({"subresource": sub, "responseKind": response_kind(s), "verbs": s.verbs}))
                })
                .collect();
            let mut v = json!({
                "resource": r.name,
                "responseKind": response_kind(r),
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": r.verbs,
            });
            let obj = v.as_object_mut().expect("json! object");
            if !r.short_names.is_empty() {
                obj.insert("shortNames".into(), json!(r.short_names));
            }
            if !r.categories.is_empty() {
                obj.insert("categories".into(), json!(r.categories));
            }
            if !subresources.is_empty() {
                obj.insert("subresources".into(), json!(subresources));
            }
            v
        })
        .collect()
}

/// `GET /version`.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-tug",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

/// Go's names for CPU architectures, which kubectl prints.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_to_the_kubernetes_resources() {
        let cases = [
            ("", "v1", "po", "pods", true),
            ("", "v1", "svc", "services", true),
            ("", "v1", "ep", "endpoints", true),
            ("", "v1", "ns", "namespaces", false),
            ("", "v1", "no", "nodes", false),
            ("", "v1", "cm", "configmaps", true),
            ("", "v1", "ev", "events", true),
            ("apps", "v1", "deploy", "deployments", true),
            ("apps", "v1", "rs", "replicasets", true),
        ];
        for (group, version, short, want, namespaced) in cases {
            let list = resource_list(group, version).unwrap();
            let found = list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| {
                    r["shortNames"]
                        .as_array()
                        .is_some_and(|s| s.contains(&json!(short)))
                })
                .unwrap_or_else(|| panic!("{short} not found"));
            assert_eq!(found["name"], want);
            assert_eq!(found["namespaced"], namespaced, "{short}");
        }
    }

    #[test]
    fn every_group_in_the_list_has_a_group_document_and_resource_list() {
        let list = api_group_list();
        let groups = list["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 3);
        for g in groups {
            let name = g["name"].as_str().unwrap();
            let doc = api_group(name).unwrap();
            assert_eq!(doc["kind"], "APIGroup");
            let v = g["preferredVersion"]["version"].as_str().unwrap();
            let rl = resource_list(name, v).unwrap();
            assert_eq!(rl["groupVersion"], format!("{name}/{v}"));
        }
        assert!(api_group("extensions").is_none());
        assert!(resource_list("apps", "v1beta1").is_none());
    }

    #[test]
    fn scale_subresources_are_autoscaling_v1_scale() {
        let list = resource_list("apps", "v1").unwrap();
        let scale = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(scale["kind"], "Scale");
    }

    #[test]
    fn pods_have_status_binding_log_and_exec_subresources() {
        let list = resource_list("", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for want in [
            "pods/status",
            "pods/binding",
            "pods/log",
            "pods/exec",
            "bindings",
        ] {
            assert!(names.contains(&want), "{want}");
        }
    }

    #[test]
    fn aggregated_discovery_nests_subresources() {
        let core = aggregated(true);
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        let pods = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["shortNames"], json!(["po"]));
        let subs: Vec<&str> = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["subresource"].as_str().unwrap())
            .collect();
        assert_eq!(subs, vec!["binding", "exec", "log", "status"]);

        let apis = aggregated(false);
        let names: Vec<&str> = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["apps", "batch", "coordination.k8s.io"]);
        let deploy = &apis["items"][0]["versions"][0]["resources"][0];
        assert_eq!(deploy["resource"], "deployments");
        assert_eq!(
            deploy["subresources"][0],
            json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]})
        );
    }

    #[test]
    fn version_is_1_32() {
        let v = version_info();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "32");
        assert_eq!(v["gitVersion"], "v1.32.0-tug");
    }
}
