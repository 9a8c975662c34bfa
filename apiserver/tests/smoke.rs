//! A first end-to-end check: one replica over TLS, create/get/list/delete a pod.

use serde_json::json;
use tug_apiserver::testing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_can_be_created_read_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = testing::single(dir.path()).await;
    let c = server.client();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let (code, created) = c.post("/api/v1/namespaces/default/pods", &pod).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(created["metadata"]["uid"].is_string());
    let (code, got) = c.get("/api/v1/namespaces/default/pods/web").await;
    assert_eq!(code, 200, "{got}");
    assert_eq!(
        got["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    let (code, list) = c.get("/api/v1/namespaces/default/pods").await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (code, _) = c.delete("/api/v1/namespaces/default/pods/web").await;
    assert_eq!(code, 200);
    let (code, nf) = c.get("/api/v1/namespaces/default/pods/web").await;
    assert_eq!(code, 404);
    assert_eq!(nf["message"], "pods \"web\" not found");
    server.shutdown().await;
}
