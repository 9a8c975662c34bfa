//! The status, scale and binding subresources, and log/exec until the node agent exists.

use serde_json::json;

use crate::{deployment, env, pod, rv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_writes_change_only_status() {
    let env = env().await;
    let c = env.server.client();
    let (_, created) = c.post("/api/v1/namespaces/default/pods", &pod("p")).await;
    assert_eq!(created["status"]["phase"], "Pending", "{created}");

    let mut update = created.clone();
    update["status"]["phase"] = json!("Running");
    update["spec"]["nodeName"] = json!("sneaky");
    update["metadata"]["labels"] = json!({"sneaky": "yes"});
    let (code, written) = c
        .put("/api/v1/namespaces/default/pods/p/status", &update)
        .await;
    assert_eq!(code, 200, "{written}");
    assert_eq!(written["status"]["phase"], "Running");
    assert!(
        written["spec"]["nodeName"].is_null(),
        "spec is not writable via /status"
    );
    assert!(written["metadata"]["labels"].is_null());

    let (code, patched) = c
        .patch(
            "/api/v1/namespaces/default/pods/p/status",
            "application/merge-patch+json",
            &json!({"status": {"podIP": "10.1.0.5"}}),
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["status"]["podIP"], "10.1.0.5");
    assert_eq!(patched["status"]["phase"], "Running");

    let (code, got) = c.get("/api/v1/namespaces/default/pods/p/status").await;
    assert_eq!(code, 200);
    assert_eq!(rv(&got), rv(&patched));

    // And the main resource ignores status.
    let mut main = got.clone();
    main["status"]["phase"] = json!("Failed");
    let (_, after) = c.put("/api/v1/namespaces/default/pods/p", &main).await;
    assert_eq!(after["status"]["phase"], "Running");
    let (code, _) = c
        .get("/api/v1/namespaces/default/configmaps/x/status")
        .await;
    assert_eq!(code, 404);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_reads_and_writes_replicas() {
    let env = env().await;
    let c = env.server.client();
    c.post(
        "/apis/apps/v1/namespaces/default/deployments",
        &deployment("web", 2),
    )
    .await;
    let path = "/apis/apps/v1/namespaces/default/deployments/web/scale";
    let (code, scale) = c.get(path).await;
    assert_eq!(code, 200, "{scale}");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=web");

    let mut put = scale.clone();
    put["spec"]["replicas"] = json!(5);
    let (code, scaled) = c.put(path, &put).await;
    assert_eq!(code, 200, "{scaled}");
    assert_eq!(scaled["spec"]["replicas"], 5);
    let (_, d) = c
        .get("/apis/apps/v1/namespaces/default/deployments/web")
        .await;
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 2);

    let (code, patched) = c
        .patch(
            path,
            "application/merge-patch+json",
            &json!({"spec": {"replicas": 1}}),
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["spec"]["replicas"], 1);

    // Stale resourceVersion on the Scale is a conflict; negative replicas are invalid.
    let (code, _) = c.put(path, &put).await;
    assert_eq!(code, 409);
    let (code, status) = c
        .patch(
            path,
            "application/merge-patch+json",
            &json!({"spec": {"replicas": -1}}),
        )
        .await;
    assert_eq!(code, 422, "{status}");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_assigns_a_pod_to_a_node_once() {
    let env = env().await;
    let c = env.server.client();
    c.post("/api/v1/namespaces/default/pods", &pod("p")).await;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": "node1"}});
    let (code, status) = c
        .post("/api/v1/namespaces/default/pods/p/binding", &binding)
        .await;
    assert_eq!(code, 201, "{status}");
    assert_eq!(status["status"], "Success");
    let (_, bound) = c.get("/api/v1/namespaces/default/pods/p").await;
    assert_eq!(bound["spec"]["nodeName"], "node1");
    let cond = bound["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .cloned()
        .unwrap();
    assert_eq!(cond["status"], "True");

    let mut again = binding.clone();
    again["target"]["name"] = json!("node2");
    let (code, status) = c
        .post("/api/v1/namespaces/default/pods/p/binding", &again)
        .await;
    assert_eq!(code, 409, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("already assigned to node \"node1\""));
    let mut missing = binding.clone();
    missing["metadata"]["name"] = json!("nope");
    let (code, _) = c
        .post("/api/v1/namespaces/default/pods/nope/binding", &missing)
        .await;
    assert_eq!(code, 404);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_and_exec_of_an_unbound_pod_say_it_has_no_host() {
    let env = env().await;
    let c = env.server.client();
    c.post("/api/v1/namespaces/default/pods", &pod("p")).await;
    let (code, status) = c.get("/api/v1/namespaces/default/pods/p/log").await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["message"], "pod p does not have a host assigned");
    let (code, _) = c.get("/api/v1/namespaces/default/pods/nope/log").await;
    assert_eq!(code, 404);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scale_patches_without_a_resource_version_all_succeed() {
    let env = env().await;
    let c = env.server.client();
    let (code, body) = c
        .post(
            "/apis/apps/v1/namespaces/default/deployments",
            &deployment("web", 2),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let path = "/apis/apps/v1/namespaces/default/deployments/web/scale";
    let patches = (1..=8).map(|n| {
        let c = env.server.client();
        async move {
            c.patch(
                path,
                "application/merge-patch+json",
                &json!({"spec": {"replicas": n}}),
            )
            .await
        }
    });
    for (code, body) in futures::future::join_all(patches).await {
        assert_eq!(
            code, 200,
            "a racing scale patch is retried, not a 409: {body}"
        );
    }
    env.done().await;
}
