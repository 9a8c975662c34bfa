//! Round-trip tests over `manifests/` and `tests/fixtures/`: YAML -> typed -> JSON keeps
//! every field, typed -> JSON -> typed is lossless, and bad input names the bad field.

use serde_json::Value;
use std::path::{Path, PathBuf};
use tug_proto::apps::v1::{Deployment, ReplicaSet};
use tug_proto::batch::v1::Job;
use tug_proto::coordination::v1::Lease;
use tug_proto::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service, ServiceAccount,
};
use tug_proto::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use tug_proto::{decode, IntOrString, List, Quantity, Resource, WatchEvent};

/// Drops what Go's `omitempty` drops (null, `{}`, `[]`), so that "absent" and "empty"
/// compare equal on both sides.
fn prune(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => {
            let a: Vec<Value> = a.into_iter().filter_map(prune).collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        Value::String(s) if s.is_empty() => None,
        other => Some(other),
    }
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde::Deserialize::deserialize(yaml_serde::Deserializer::from_str(&text))
        .map(|v: Value| vec![v])
        .unwrap_or_else(|_| {
            yaml_serde::Deserializer::from_str(&text)
                .map(|d| serde::Deserialize::deserialize(d).unwrap())
                .collect()
        })
}

/// YAML and JSON files (JSON is read with the YAML parser: it is a subset).
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"))
        .collect();
    files.sort();
    files
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check<T: Resource + PartialEq>(doc: &Value, what: &str) {
    let typed: T = decode::from_value(doc.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let encoded = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        prune(encoded.clone()),
        prune(doc.clone()),
        "{what}: YAML -> typed -> JSON"
    );
    let again: T = serde_json::from_value(encoded).unwrap();
    assert_eq!(again, typed, "{what}: typed -> JSON -> typed");
    assert_eq!(doc["apiVersion"], T::API_VERSION, "{what}");
    assert_eq!(doc["kind"], T::KIND, "{what}");
}

fn check_any(doc: &Value, what: &str) {
    match doc["kind"].as_str().unwrap_or_default() {
        "Pod" => check::<Pod>(doc, what),
        "Service" => check::<Service>(doc, what),
        "Endpoints" => check::<Endpoints>(doc, what),
        "Namespace" => check::<Namespace>(doc, what),
        "Node" => check::<Node>(doc, what),
        "ConfigMap" => check::<ConfigMap>(doc, what),
        "Secret" => check::<Secret>(doc, what),
        "Event" => check::<Event>(doc, what),
        "Deployment" => check::<Deployment>(doc, what),
        "ReplicaSet" => check::<ReplicaSet>(doc, what),
        "Job" => check::<Job>(doc, what),
        "Lease" => check::<Lease>(doc, what),
        "ServiceAccount" => check::<ServiceAccount>(doc, what),
        "Role" => check::<Role>(doc, what),
        "ClusterRole" => check::<ClusterRole>(doc, what),
        "RoleBinding" => check::<RoleBinding>(doc, what),
        "ClusterRoleBinding" => check::<ClusterRoleBinding>(doc, what),
        other => panic!("{what}: no test mapping for kind {other:?}"),
    }
}

#[test]
fn every_manifest_and_fixture_round_trips_without_losing_fields() {
    let mut seen = 0;
    for dir in [
        crate_dir().join("../manifests"),
        crate_dir().join("tests/fixtures"),
    ] {
        for file in yaml_files(&dir) {
            for (i, doc) in documents(&file).iter().enumerate() {
                check_any(doc, &format!("{} document {i}", file.display()));
                seen += 1;
            }
        }
    }
    assert!(seen >= 23, "only {seen} documents found");
}

fn manifest(name: &str) -> Vec<Value> {
    documents(&crate_dir().join("../manifests").join(name))
}

#[test]
fn seed_manifests_decode_to_what_the_seed_describes() {
    let job: Job = decode::from_value(manifest("greeter-job.yaml").remove(0)).unwrap();
    assert_eq!(job.metadata.name(), "greeter");
    let pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.containers[0].name, "greeter-container");
    assert_eq!(pod.containers[0].image.as_deref(), Some("hello"));
    assert_eq!(
        pod.containers[0].image_pull_policy.as_deref(),
        Some("Never")
    );
    assert_eq!(pod.containers[0].restart_policy, None);

    let d: Deployment =
        decode::from_value(manifest("static-site-deployment.yaml").remove(0)).unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(spec.selector.unwrap().match_labels["app"], "static-site");
    assert_eq!(spec.template.metadata.labels["app"], "static-site");
    let c = &spec.template.spec.unwrap().containers[0];
    assert_eq!(
        (c.name.as_str(), c.image.as_deref()),
        ("site-container", Some("site"))
    );
    assert_eq!(c.ports[0].container_port, 80);

    let svc: Service = decode::from_value(manifest("web-service.yaml").remove(0)).unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(spec.selector["app"], "static-site");
    assert_eq!(
        (spec.ports[0].port, spec.ports[0].name.as_deref()),
        (80, Some("web"))
    );

    let docs = manifest("prod-external-service.yaml");
    assert_eq!(docs.len(), 2);
    let ns: Namespace = decode::from_value(docs[0].clone()).unwrap();
    assert_eq!(ns.metadata.name(), "prod");
    let ext: Service = decode::from_value(docs[1].clone()).unwrap();
    assert_eq!(ext.metadata.namespace(), "prod");
    let spec = ext.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ExternalName"));
    assert_eq!(
        spec.external_name.as_deref(),
        Some("my.database.example.com")
    );
}

#[test]
fn the_seed_greeter_with_container_level_restart_policy_decodes_for_validation_to_reject() {
    // Containers have had `restartPolicy` (for sidecars) since Kubernetes 1.28, so the
    // seed's misplaced field decodes; rejecting it is the apiserver validation's job.
    let path = crate_dir().join("tests/fixtures/greeter-seed-original.yaml");
    let job: Job = decode::from_value(documents(&path).remove(0)).unwrap();
    let pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.restart_policy, None);
    assert_eq!(pod.containers[0].restart_policy.as_deref(), Some("Never"));
}

fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    doc.pointer_mut(parent).unwrap()[key] = value;
}

#[test]
fn unknown_fields_are_rejected_naming_the_field_path() {
    let base = manifest("static-site-deployment.yaml").remove(0);
    let cases = [
        ("/spec/replica", "spec.replica"),
        (
            "/spec/template/spec/containers/0/imagePullPolcy",
            "spec.template.spec.containers[0].imagePullPolcy",
        ),
        (
            "/spec/template/spec/containers/0/ports/0/containerport",
            "spec.template.spec.containers[0].ports[0].containerport",
        ),
        ("/metadata/label", "metadata.label"),
        ("/spec/selector/matchLabel", "spec.selector.matchLabel"),
        ("/status", ""),
    ];
    for (pointer, path) in cases {
        let mut doc = base.clone();
        if pointer == "/status" {
            doc["status"] = serde_json::json!({"replicaz": 1});
            let err = decode::from_value::<Deployment>(doc).unwrap_err();
            assert_eq!(err.path, "status.replicaz");
            continue;
        }
        set(&mut doc, pointer, Value::from("x"));
        let err = decode::from_value::<Deployment>(doc).unwrap_err();
        assert_eq!(err.path, path, "{pointer}: {err}");
        assert!(err.message.contains("unknown field"), "{err}");
        let field = path.rsplit('.').next().unwrap();
        let field = field.rsplit(']').next().unwrap();
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn wrong_types_are_rejected_naming_the_field_path() {
    let base = manifest("static-site-deployment.yaml").remove(0);
    let cases = [
        ("/spec/replicas", Value::from("two"), "spec.replicas"),
        (
            "/spec/template/spec/containers",
            Value::from("site"),
            "spec.template.spec.containers",
        ),
        (
            "/spec/template/spec/containers/0/ports/0/containerPort",
            Value::from(true),
            "spec.template.spec.containers[0].ports[0].containerPort",
        ),
        (
            "/spec/template/metadata/labels",
            serde_json::json!(["a"]),
            "spec.template.metadata.labels",
        ),
        (
            "/spec/template/spec/containers/0/resources",
            serde_json::json!({"limits": {"cpu": "lots"}}),
            "spec.template.spec.containers[0].resources.limits.cpu",
        ),
        (
            "/spec/strategy",
            serde_json::json!({"rollingUpdate": {"maxSurge": 1.5}}),
            "spec.strategy.rollingUpdate.maxSurge",
        ),
        (
            "/metadata/creationTimestamp",
            Value::from("yesterday"),
            "metadata.creationTimestamp",
        ),
    ];
    for (pointer, value, path) in cases {
        let mut doc = base.clone();
        set(&mut doc, pointer, value);
        let err = decode::from_value::<Deployment>(doc).unwrap_err();
        assert_eq!(err.path, path, "{pointer}: {err}");
    }
}

#[test]
fn yaml_nulls_and_missing_fields_decode_like_go() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\nspec:\n  containers:\n  - name: c\n    args:\n    env: null\n";
    let pod: Pod = yaml_serde::from_str(yaml).unwrap();
    assert!(pod.metadata.labels.is_empty());
    let c = &pod.spec.unwrap().containers[0];
    assert!(c.args.is_empty() && c.env.is_empty());
}

#[test]
fn encoded_objects_use_kubernetes_json_shapes() {
    let pod: Pod =
        decode::from_value(documents(&crate_dir().join("tests/fixtures/pod-full.yaml")).remove(0))
            .unwrap();
    let v = serde_json::to_value(&pod).unwrap();
    let c = &v["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"]["cpu"], "1");
    assert_eq!(c["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["tcpSocket"]["port"], 8080);
    assert_eq!(v["status"]["podIPs"][0]["ip"], "10.244.1.7");
    assert_eq!(v["spec"]["hostAliases"][0]["ip"], "10.1.2.3");
    assert!(
        v["spec"].get("hostNetwork").is_none(),
        "None fields are omitted"
    );
    assert!(v["metadata"].get("deletionTimestamp").is_none());

    let spec = pod.spec.unwrap();
    let limits = &spec.containers[0].resources.as_ref().unwrap().limits;
    assert_eq!(limits["cpu"], Quantity::parse("1000m").unwrap());
    assert_eq!(limits["memory"].as_i64_bytes(), 128 << 20);
    let probe = spec.containers[0].liveness_probe.as_ref().unwrap();
    assert_eq!(
        probe.http_get.as_ref().unwrap().port,
        IntOrString::from("http")
    );

    let secret: Secret =
        decode::from_value(documents(&crate_dir().join("tests/fixtures/secret.yaml")).remove(0))
            .unwrap();
    assert_eq!(secret.data["password"].0, b"hunter2");

    let node: Node =
        decode::from_value(documents(&crate_dir().join("tests/fixtures/node.yaml")).remove(0))
            .unwrap();
    let status = node.status.unwrap();
    assert_eq!(
        status
            .daemon_endpoints
            .unwrap()
            .kubelet_endpoint
            .unwrap()
            .port,
        10250
    );
    assert_eq!(status.capacity["cpu"].as_milli(), 4000);
}

#[test]
fn lists_and_watch_events_have_the_wire_shape() {
    let pod = Pod {
        metadata: tug_proto::ObjectMeta::namespaced("prod", "p"),
        ..Default::default()
    }
    .with_type_meta();
    let list = List::new(vec![pod.clone()], "42");
    assert_eq!(
        serde_json::to_value(&list).unwrap(),
        serde_json::json!({
            "apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "42"},
            "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "prod"}}]
        })
    );
    let empty: List<Pod> = List::new(vec![], "7");
    assert_eq!(
        serde_json::to_value(&empty).unwrap()["items"],
        serde_json::json!([])
    );

    let ev = WatchEvent::new("ADDED", pod);
    let line = serde_json::to_string(&ev).unwrap();
    assert!(
        line.starts_with(r#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod""#),
        "{line}"
    );
    let back: WatchEvent<Pod> = serde_json::from_str(&line).unwrap();
    assert_eq!(back, ev);
}

#[test]
fn resource_constants_match_kubernetes() {
    fn row<T: Resource>() -> (&'static str, &'static str, &'static str, &'static str, bool) {
        (T::GROUP, T::API_VERSION, T::KIND, T::PLURAL, T::NAMESPACED)
    }
    let cases = [
        (row::<Pod>(), ("", "v1", "Pod", "pods", true)),
        (row::<Service>(), ("", "v1", "Service", "services", true)),
        (
            row::<Endpoints>(),
            ("", "v1", "Endpoints", "endpoints", true),
        ),
        (
            row::<Namespace>(),
            ("", "v1", "Namespace", "namespaces", false),
        ),
        (row::<Node>(), ("", "v1", "Node", "nodes", false)),
        (
            row::<ConfigMap>(),
            ("", "v1", "ConfigMap", "configmaps", true),
        ),
        (row::<Secret>(), ("", "v1", "Secret", "secrets", true)),
        (row::<Event>(), ("", "v1", "Event", "events", true)),
        (
            row::<Deployment>(),
            ("apps", "apps/v1", "Deployment", "deployments", true),
        ),
        (
            row::<ReplicaSet>(),
            ("apps", "apps/v1", "ReplicaSet", "replicasets", true),
        ),
        (row::<Job>(), ("batch", "batch/v1", "Job", "jobs", true)),
        (
            row::<Lease>(),
            (
                "coordination.k8s.io",
                "coordination.k8s.io/v1",
                "Lease",
                "leases",
                true,
            ),
        ),
        (
            row::<ServiceAccount>(),
            ("", "v1", "ServiceAccount", "serviceaccounts", true),
        ),
        (
            row::<ClusterRoleBinding>(),
            (
                "rbac.authorization.k8s.io",
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                "clusterrolebindings",
                false,
            ),
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
    assert_eq!(<Pod as Resource>::list_kind(), "PodList");
}
