//! Create, get, list, update and delete for every served kind, plus generateName,
//! optimistic concurrency and missing objects / namespaces.

use serde_json::{json, Value};

use crate::{configmap, deployment, env, names, pod, rv};

/// (collection path, object) for every kind.
fn every_kind() -> Vec<(&'static str, Value)> {
    let template = json!({
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    });
    vec![
        ("/api/v1/namespaces/default/pods", pod("p1")),
        (
            "/api/v1/namespaces/default/services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s1"},
                   "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        ),
        (
            "/api/v1/namespaces/default/endpoints",
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e1"},
                   "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
        ),
        (
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n1"}}),
        ),
        (
            "/api/v1/nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"}}),
        ),
        ("/api/v1/namespaces/default/configmaps", configmap("c1")),
        (
            "/api/v1/namespaces/default/secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec1"},
                   "type": "Opaque", "data": {"k": "dmFsdWU="}}),
        ),
        (
            "/api/v1/namespaces/default/events",
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev1"},
                   "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "default", "apiVersion": "v1"},
                   "reason": "Started", "message": "started", "type": "Normal",
                   "source": {"component": "test"},
                   "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1}),
        ),
        (
            "/apis/apps/v1/namespaces/default/deployments",
            deployment("d1", 2),
        ),
        (
            "/apis/apps/v1/namespaces/default/replicasets",
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs1"},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}}, "template": template}}),
        ),
        (
            "/apis/batch/v1/namespaces/default/jobs",
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j1"},
                   "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}}}),
        ),
        (
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l1"},
                   "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_supports_create_get_update_list_and_delete() {
    let env = env().await;
    let c = env.server.client();
    for (collection, obj) in every_kind() {
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let item = format!("{collection}/{name}");

        let (code, created) = c.post(collection, &obj).await;
        assert_eq!(code, 201, "create {item}: {created}");
        assert_eq!(created["kind"], obj["kind"], "{item}");
        assert!(
            created["metadata"]["uid"]
                .as_str()
                .is_some_and(|u| !u.is_empty()),
            "{item}"
        );
        assert!(
            created["metadata"]["creationTimestamp"].is_string(),
            "{item}"
        );

        let (code, got) = c.get(&item).await;
        assert_eq!(code, 200, "get {item}: {got}");
        assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"]);
        assert_eq!(rv(&got), rv(&created));

        let mut changed = got.clone();
        changed["metadata"]["labels"] = json!({"updated": "yes"});
        let (code, updated) = c.put(&item, &changed).await;
        assert_eq!(code, 200, "update {item}: {updated}");
        assert_eq!(updated["metadata"]["labels"]["updated"], "yes");
        assert!(rv(&updated) > rv(&got), "{item}: resourceVersion must grow");

        let (code, list) = c.get(collection).await;
        assert_eq!(code, 200, "list {collection}: {list}");
        assert!(names(&list).contains(&name), "{collection}: {list}");
        assert!(rv(&list) >= rv(&updated));

        // Background, as kubectl sends it (a bare delete of a Job orphans, and waits
        // for the garbage collector: see deletion.rs).
        let (code, deleted) = c
            .delete(&format!("{item}?propagationPolicy=Background"))
            .await;
        assert_eq!(code, 200, "delete {item}: {deleted}");
        if collection != "/api/v1/namespaces" {
            let (code, status) = c.get(&item).await;
            assert_eq!(code, 404, "get after delete {item}: {status}");
            assert_eq!(status["kind"], "Status");
            assert_eq!(status["reason"], "NotFound");
        }
    }
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initial_namespaces_exist() {
    let env = env().await;
    let (code, list) = env.server.client().get("/api/v1/namespaces").await;
    assert_eq!(code, 200);
    let mut got = names(&list);
    got.sort();
    assert_eq!(
        got,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    assert_eq!(list["items"][0]["status"]["phase"], "Active");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wide_lists_span_namespaces() {
    let env = env().await;
    let c = env.server.client();
    c.post("/api/v1/namespaces/default/pods", &pod("a")).await;
    c.post("/api/v1/namespaces/kube-system/pods", &pod("b"))
        .await;
    let (code, list) = c.get("/api/v1/pods").await;
    assert_eq!(code, 200);
    let mut got = names(&list);
    got.sort();
    assert_eq!(got, ["a", "b"]);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_name_appends_a_five_character_suffix() {
    let env = env().await;
    let c = env.server.client();
    let mut p = pod("");
    p["metadata"] = json!({"generateName": "web-"});
    let (code, a) = c.post("/api/v1/namespaces/default/pods", &p).await;
    assert_eq!(code, 201, "{a}");
    let (_, b) = c.post("/api/v1/namespaces/default/pods", &p).await;
    let (an, bn) = (
        a["metadata"]["name"].as_str().unwrap(),
        b["metadata"]["name"].as_str().unwrap(),
    );
    assert!(an.starts_with("web-") && an.len() == 9, "{an}");
    assert_ne!(an, bn);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_an_existing_name_is_409_already_exists() {
    let env = env().await;
    let c = env.server.client();
    c.post("/api/v1/namespaces/default/pods", &pod("x")).await;
    let (code, status) = c.post("/api/v1/namespaces/default/pods", &pod("x")).await;
    assert_eq!(code, 409);
    assert_eq!(status["reason"], "AlreadyExists");
    assert_eq!(status["message"], "pods \"x\" already exists");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_resource_version_is_409_conflict_and_an_empty_one_is_unconditional() {
    let env = env().await;
    let c = env.server.client();
    let (_, created) = c
        .post("/api/v1/namespaces/default/configmaps", &configmap("cm"))
        .await;
    let path = "/api/v1/namespaces/default/configmaps/cm";

    let mut first = created.clone();
    first["data"]["k"] = json!("one");
    let (code, _) = c.put(path, &first).await;
    assert_eq!(code, 200);

    let mut stale = created.clone();
    stale["data"]["k"] = json!("two");
    let (code, status) = c.put(path, &stale).await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Operation cannot be fulfilled on configmaps \"cm\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let (_, now) = c.get(path).await;
    assert_eq!(
        now["data"]["k"], "one",
        "a conflicting update changes nothing"
    );

    let mut unconditional = stale.clone();
    unconditional["metadata"]["resourceVersion"] = json!("");
    let (code, written) = c.put(path, &unconditional).await;
    assert_eq!(code, 200, "{written}");
    assert_eq!(written["data"]["k"], "two");

    let mut wrong_uid = written.clone();
    wrong_uid["metadata"]["uid"] = json!("not-the-uid");
    let (code, status) = c.put(path, &wrong_uid).await;
    assert_eq!(code, 409, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("UID in precondition"));
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_changes_nothing_keeps_the_resource_version() {
    let env = env().await;
    let c = env.server.client();
    let (_, created) = c
        .post("/api/v1/namespaces/default/configmaps", &configmap("cm"))
        .await;
    let (code, same) = c
        .put("/api/v1/namespaces/default/configmaps/cm", &created)
        .await;
    assert_eq!(code, 200);
    assert_eq!(rv(&same), rv(&created));
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objects_and_namespaces_are_404() {
    let env = env().await;
    let c = env.server.client();
    let (code, status) = c.get("/api/v1/namespaces/default/pods/nope").await;
    assert_eq!(code, 404);
    assert_eq!(status["details"]["name"], "nope");
    assert_eq!(status["details"]["kind"], "pods");

    let (code, status) = c.post("/api/v1/namespaces/nowhere/pods", &pod("x")).await;
    assert_eq!(code, 404, "{status}");
    assert_eq!(status["message"], "namespaces \"nowhere\" not found");

    let (code, status) = c
        .put("/api/v1/namespaces/default/pods/nope", &pod("nope"))
        .await;
    assert_eq!(code, 404, "{status}");
    let (code, _) = c.delete("/api/v1/namespaces/default/pods/nope").await;
    assert_eq!(code, 404);
    let (code, status) = c
        .get("/apis/apps/v1/namespaces/default/deployments/nope")
        .await;
    assert_eq!(code, 404);
    assert_eq!(status["message"], "deployments.apps \"nope\" not found");
    let (code, status) = c.get("/api/v1/widgets").await;
    assert_eq!(code, 404, "{status}");
    assert_eq!(status["kind"], "Status");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_moves_only_with_the_spec() {
    let env = env().await;
    let c = env.server.client();
    let path = "/apis/apps/v1/namespaces/default/deployments/d";
    let (_, created) = c
        .post(
            "/apis/apps/v1/namespaces/default/deployments",
            &deployment("d", 1),
        )
        .await;
    assert_eq!(created["metadata"]["generation"], 1, "{created}");

    let mut labeled = created.clone();
    labeled["metadata"]["labels"] = json!({"a": "b"});
    let (_, labeled) = c.put(path, &labeled).await;
    assert_eq!(labeled["metadata"]["generation"], 1, "labels are not spec");

    let mut scaled = labeled.clone();
    scaled["spec"]["replicas"] = json!(3);
    scaled["status"] = json!({"replicas": 42});
    let (code, scaled) = c.put(path, &scaled).await;
    assert_eq!(code, 200, "{scaled}");
    assert_eq!(scaled["metadata"]["generation"], 2);
    assert_ne!(
        scaled["status"]["replicas"], 42,
        "status is ignored on the main resource"
    );
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_of_all_three_types_apply_to_the_current_object() {
    let env = env().await;
    let c = env.server.client();
    let path = "/api/v1/namespaces/default/configmaps/cm";
    c.post("/api/v1/namespaces/default/configmaps", &configmap("cm"))
        .await;

    let (code, merged) = c
        .patch(
            path,
            "application/merge-patch+json",
            &json!({"data": {"a": "1"}}),
        )
        .await;
    assert_eq!(code, 200, "{merged}");
    assert_eq!(merged["data"], json!({"k": "v", "a": "1"}));

    let (code, patched) = c
        .patch(
            path,
            "application/json-patch+json",
            &json!([{"op": "replace", "path": "/data/k", "value": "w"}]),
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["data"]["k"], "w");

    let (code, smp) = c
        .patch(
            path,
            "application/strategic-merge-patch+json",
            &json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .await;
    assert_eq!(code, 200, "{smp}");
    assert_eq!(smp["metadata"]["labels"]["x"], "y");

    // A patch pinned to an old resourceVersion is a conflict, not a retry.
    let (code, status) = c
        .patch(
            path,
            "application/merge-patch+json",
            &json!({"metadata": {"resourceVersion": merged["metadata"]["resourceVersion"]}, "data": {"z": "1"}}),
        )
        .await;
    assert_eq!(code, 409, "{status}");

    let (code, status) = c
        .patch(
            path,
            "application/json-patch+json",
            &json!([{"op": "test", "path": "/data/k", "value": "nope"}]),
        )
        .await;
    assert!(code == 422 || code == 400, "{code} {status}");

    let (code, status) = c.patch(path, "text/plain", &json!({})).await;
    assert_eq!(code, 415, "{status}");
    let (code, _) = c
        .patch(
            "/api/v1/namespaces/default/configmaps/nope",
            "application/merge-patch+json",
            &json!({}),
        )
        .await;
    assert_eq!(code, 404);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_bodies_are_accepted() {
    let env = env().await;
    let c = env.server.client();
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n";
    let r = c
        .request(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            &[("content-type", "application/yaml")],
            yaml.as_bytes().to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["data"]["a"], "b");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing_and_wrong_methods_are_405() {
    let env = env().await;
    let c = env.server.client();
    let revision = env.server.store().revision();
    let (code, obj) = c
        .post(
            "/api/v1/namespaces/default/configmaps?dryRun=All",
            &configmap("dry"),
        )
        .await;
    assert_eq!(code, 201, "{obj}");
    assert_eq!(obj["metadata"]["name"], "dry");
    assert_eq!(
        c.get("/api/v1/namespaces/default/configmaps/dry").await.0,
        404
    );
    assert_eq!(env.server.store().revision(), revision);

    let (code, status) = c
        .post("/api/v1/namespaces/default/configmaps/x", &configmap("x"))
        .await;
    assert_eq!(code, 405, "{status}");
    assert_eq!(status["reason"], "MethodNotAllowed");
    let (code, _) = c
        .put("/api/v1/namespaces/default/configmaps", &configmap("x"))
        .await;
    assert_eq!(code, 405);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_namespace_that_differs_from_the_url_is_400() {
    let env = env().await;
    let c = env.server.client();
    let mut p = pod("x");
    p["metadata"]["namespace"] = json!("kube-system");
    let (code, status) = c.post("/api/v1/namespaces/default/pods", &p).await;
    assert_eq!(code, 400, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("does not match the namespace"));
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_unique_cluster_ips_and_node_ports_that_deletion_frees() {
    let env = env().await;
    let c = env.server.client();
    let svcs = "/api/v1/namespaces/default/services";
    let svc = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec});
    let (code, a) = c
        .post(
            svcs,
            &svc(
                "a",
                json!({"selector": {"app": "a"}, "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{a}");
    let ip = a["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10."), "{a}");
    assert_eq!(a["spec"]["clusterIPs"], json!([ip]));

    let (code, np) = c
        .post(
            svcs,
            &svc(
                "np",
                json!({"type": "NodePort", "selector": {"app": "a"}, "ports": [{"port": 80}]}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{np}");
    let port = np["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&port), "{np}");
    assert_ne!(np["spec"]["clusterIP"], a["spec"]["clusterIP"]);

    // Taken IPs and ports are refused; headless services get none.
    let (code, status) = c
        .post(
            svcs,
            &svc("dup", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("already allocated"));
    let (code, status) = c
        .post(
            svcs,
            &svc(
                "dup2",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}),
            ),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    let (code, headless) = c
        .post(
            svcs,
            &svc("h", json!({"clusterIP": "None", "ports": [{"port": 80}]})),
        )
        .await;
    assert_eq!(code, 201, "{headless}");
    assert_eq!(headless["spec"]["clusterIP"], "None");

    // An update keeps the allocation even when the body leaves it out.
    let mut put = a.clone();
    put["spec"].as_object_mut().unwrap().remove("clusterIP");
    put["spec"].as_object_mut().unwrap().remove("clusterIPs");
    put["metadata"]["labels"] = json!({"x": "y"});
    let (code, updated) = c.put(&format!("{svcs}/a"), &put).await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["spec"]["clusterIP"], ip.as_str());

    // Deleting frees both for reuse.
    c.delete(&format!("{svcs}/a")).await;
    c.delete(&format!("{svcs}/np")).await;
    let (code, again) = c
        .post(svcs, &svc("again", json!({"type": "NodePort", "clusterIP": ip, "ports": [{"port": 80, "nodePort": port}]})))
        .await;
    assert_eq!(code, 201, "{again}");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_service_exists_on_the_first_service_ip() {
    let env = env().await;
    let (code, svc) = env
        .server
        .client()
        .get("/api/v1/namespaces/default/services/kubernetes")
        .await;
    assert_eq!(code, 200, "{svc}");
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    env.done().await;
}
