//! Deletion: finalizers, graceful pod deletion, preconditions, deletecollection and
//! namespace termination.

use std::time::Duration;

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
async fn a_deleted_namespace_terminates_refuses_creates_and_is_emptied() {
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
    c.post("/api/v1/namespaces/doomed/pods", &pod("p")).await;

    let (code, ns) = c.delete("/api/v1/namespaces/doomed").await;
    assert_eq!(code, 200, "{ns}");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string());

    let (code, status) = c
        .post("/api/v1/namespaces/doomed/configmaps", &configmap("b"))
        .await;
    // Either still terminating (403) or already gone (404).
    assert!(code == 403 || code == 404, "{code} {status}");
    if code == 403 {
        assert_eq!(status["reason"], "Forbidden");
        assert!(status["message"]
            .as_str()
            .unwrap()
            .contains("being terminated"));
    }

    let mut gone = false;
    for _ in 0..100 {
        if c.get("/api/v1/namespaces/doomed").await.0 == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the namespace is removed once empty");
    let (_, cms) = c.get("/api/v1/namespaces/doomed/configmaps").await;
    assert!(names(&cms).is_empty());
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_removes_the_owner_from_its_dependents() {
    let env = env().await;
    let c = env.server.client();
    let (_, owner) = c
        .post("/api/v1/namespaces/default/configmaps", &configmap("owner"))
        .await;
    let mut dependent = configmap("dependent");
    dependent["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"],
    }]);
    let (code, body) = c
        .post("/api/v1/namespaces/default/configmaps", &dependent)
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, _) = c
        .delete("/api/v1/namespaces/default/configmaps/owner?propagationPolicy=Orphan")
        .await;
    assert_eq!(code, 200);
    let (_, left) = c
        .get("/api/v1/namespaces/default/configmaps/dependent")
        .await;
    assert!(left["metadata"].get("ownerReferences").is_none(), "{left}");
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
