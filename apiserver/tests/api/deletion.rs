//! Deletion: finalizers, graceful pod deletion, preconditions, deletecollection and
//! namespace termination.

use serde_json::json;

use crate::{configmap, env, names, pod};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_with_finalizers_stays_until_they_are_removed() {
    let env = env().await;
    let c = env.server.client();
    let mut cm = configmap("f");
    cm["metadata"]["finalizers"] = json!(["example.com/hold"]);
    c.post("/api/v1/namespaces/default/configmaps", &cm).await;
    let path = "/api/v1/namespaces/default/configmaps/f";

    let (code, marked) = c.delete(path).await;
    assert_eq!(code, 200, "{marked}");
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    let (code, still) = c.get(path).await;
    assert_eq!(code, 200);
    assert!(still["metadata"]["deletionTimestamp"].is_string());

    // No new finalizers once deleting.
    let (code, _) = c
        .patch(
            path,
            "application/merge-patch+json",
            &json!({"metadata": {"finalizers": ["example.com/hold", "x/y"]}}),
        )
        .await;
    assert_eq!(code, 422);

    let (code, last) = c
        .patch(
            path,
            "application/merge-patch+json",
            &json!({"metadata": {"finalizers": null}}),
        )
        .await;
    assert_eq!(code, 200, "{last}");
    let (code, _) = c.get(path).await;
    assert_eq!(code, 404, "removing the last finalizer deletes the object");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_pods_are_deleted_gracefully_and_unbound_ones_at_once() {
    let env = env().await;
    let c = env.server.client();
    let pods = "/api/v1/namespaces/default/pods";
    c.post(pods, &pod("unbound")).await;
    let (code, _) = c.delete(&format!("{pods}/unbound")).await;
    assert_eq!(code, 200);
    assert_eq!(c.get(&format!("{pods}/unbound")).await.0, 404);

    let mut bound = pod("bound");
    bound["spec"]["nodeName"] = json!("node1");
    bound["spec"]["terminationGracePeriodSeconds"] = json!(20);
    c.post(pods, &bound).await;
    let (code, marked) = c.delete(&format!("{pods}/bound")).await;
    assert_eq!(code, 200, "{marked}");
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 20);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let (code, _) = c.get(&format!("{pods}/bound")).await;
    assert_eq!(code, 200, "the node agent finishes a graceful deletion");

    // The agent's final delete (grace 0) removes it.
    let (code, _) = c
        .delete(&format!("{pods}/bound?gracePeriodSeconds=0"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(c.get(&format!("{pods}/bound")).await.0, 404);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_preconditions_and_options_are_checked() {
    let env = env().await;
    let c = env.server.client();
    let (_, cm) = c
        .post("/api/v1/namespaces/default/configmaps", &configmap("p"))
        .await;
    let path = "/api/v1/namespaces/default/configmaps/p";
    let body =
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "other"}});
    let r = c
        .request(
            "DELETE",
            path,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    let body = json!({"preconditions": {"resourceVersion": "1"}});
    let r = c
        .request(
            "DELETE",
            path,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    let r = c
        .request(
            "DELETE",
            &format!("{path}?propagationPolicy=Sideways"),
            &[],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let body =
        json!({"propagationPolicy": "Foreground", "preconditions": {"uid": cm["metadata"]["uid"]}});
    let r = c
        .request(
            "DELETE",
            path,
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletecollection_deletes_what_the_selector_matches() {
    let env = env().await;
    let c = env.server.client();
    let cms = "/api/v1/namespaces/default/configmaps";
    for (name, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut cm = configmap(name);
        cm["metadata"]["labels"] = json!({"app": app});
        c.post(cms, &cm).await;
    }
    let (code, deleted) = c.delete(&format!("{cms}?labelSelector=app%3Dx")).await;
    assert_eq!(code, 200, "{deleted}");
    assert_eq!(names(&deleted), ["a", "b"]);
    let (_, left) = c.get(cms).await;
    assert_eq!(names(&left), ["c"]);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_terminates_refuses_creates_and_goes_when_finalized() {
    let env = env().await;
    let c = env.server.client();
    let (code, _) = c
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}),
        )
        .await;
    assert_eq!(code, 201);
    c.post("/api/v1/namespaces/doomed/configmaps", &configmap("a"))
        .await;

    let (code, ns) = c.delete("/api/v1/namespaces/doomed").await;
    assert_eq!(code, 200, "{ns}");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));

    let (code, status) = c
        .post("/api/v1/namespaces/doomed/configmaps", &configmap("b"))
        .await;
    assert_eq!(code, 403, "{status}");
    assert_eq!(status["reason"], "Forbidden");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("being terminated"));
    // The apiserver keeps it until the namespace controller says it is empty...
    assert_eq!(c.get("/api/v1/namespaces/doomed").await.0, 200);

    // ...by clearing spec.finalizers through the finalize subresource.
    let mut finalized = ns.clone();
    finalized["spec"]["finalizers"] = json!([]);
    let (code, body) = c
        .put("/api/v1/namespaces/doomed/finalize", &finalized)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.get("/api/v1/namespaces/doomed").await.0, 404);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_changes_only_the_namespace_finalizers() {
    let env = env().await;
    let c = env.server.client();
    let (_, ns) = c
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kept"}}),
        )
        .await;
    let mut body = ns.clone();
    body["metadata"]["labels"] = json!({"sneaky": "yes"});
    body["spec"]["finalizers"] = json!(["example.com/mine"]);
    let (code, out) = c.put("/api/v1/namespaces/kept/finalize", &body).await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["spec"]["finalizers"], json!(["example.com/mine"]));
    assert!(out["metadata"]["labels"].get("sneaky").is_none(), "{out}");
    let (code, _) = c
        .put("/api/v1/namespaces/default/configmaps/x/finalize", &body)
        .await;
    assert_eq!(code, 404);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_and_foreground_deletion_leave_the_owner_to_the_garbage_collector() {
    let env = env().await;
    let c = env.server.client();
    let cases = [
        ("orphaned", "?propagationPolicy=Orphan", Some("orphan")),
        (
            "foreground",
            "?propagationPolicy=Foreground",
            Some("foregroundDeletion"),
        ),
        ("background", "?propagationPolicy=Background", None),
        ("defaulted", "", None),
    ];
    for (name, query, finalizer) in cases {
        c.post("/api/v1/namespaces/default/configmaps", &configmap(name))
            .await;
        let path = format!("/api/v1/namespaces/default/configmaps/{name}");
        let (code, out) = c.delete(&format!("{path}{query}")).await;
        assert_eq!(code, 200, "{name}: {out}");
        let (code, now) = c.get(&path).await;
        match finalizer {
            None => assert_eq!(code, 404, "{name} is gone at once: {now}"),
            Some(f) => {
                assert_eq!(code, 200, "{name} waits for the collector");
                assert!(now["metadata"]["deletionTimestamp"].is_string(), "{now}");
                assert_eq!(now["metadata"]["finalizers"], json!([f]), "{name}");
                // The collector finishes by removing its finalizer; then it is gone.
                let (code, body) = c
                    .patch(
                        &path,
                        "application/merge-patch+json",
                        &json!({"metadata": {"finalizers": null}}),
                    )
                    .await;
                assert_eq!(code, 200, "{body}");
                assert_eq!(c.get(&path).await.0, 404, "{name}");
            }
        }
    }
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_orphan_their_pods_by_default_as_in_kubernetes() {
    let env = env().await;
    let c = env.server.client();
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "hello:1"}]}}}
    });
    let (code, body) = c.post("/apis/batch/v1/namespaces/default/jobs", &job).await;
    assert_eq!(code, 201, "{body}");
    let (code, out) = c.delete("/apis/batch/v1/namespaces/default/jobs/j").await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["metadata"]["finalizers"], json!(["orphan"]));
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_namespaces_cannot_be_deleted() {
    let env = env().await;
    let c = env.server.client();
    for ns in ["default", "kube-system", "kube-public"] {
        let (code, status) = c.delete(&format!("/api/v1/namespaces/{ns}")).await;
        assert_eq!(code, 403, "{status}");
    }
    let (code, _) = c.delete("/api/v1/namespaces").await;
    assert_eq!(code, 405);
    env.done().await;
}
