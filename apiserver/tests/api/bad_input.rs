//! Bad input gets a clear 4xx naming what is wrong, and leaves the store unchanged.

use serde_json::json;

use crate::{configmap, env, names};

fn big_pod(value: &str) -> Vec<u8> {
    let mut p = crate::pod("big");
    p["spec"]["containers"][0]["env"] = json!([{"name": "BIG", "value": value}]);
    p.to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_rejected_with_clear_messages_and_change_nothing() {
    let env = env().await;
    let c = env.server.client();
    let cms = "/api/v1/namespaces/default/configmaps";
    c.post(cms, &configmap("keep")).await;
    let revision = env.server.store().revision();
    let (_, before) = c.get(cms).await;

    let huge = "x".repeat(1600 * 1024);
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("malformed JSON", "application/json", b"{\"apiVersion\": \"v1\",\n \"kind\": }".to_vec(), 400, "line 2 column"),
        ("malformed YAML", "application/yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n".to_vec(), 400, "line"),
        ("not an object", "application/json", b"[1, 2]".to_vec(), 400, "single object"),
        ("wrong kind", "application/json", json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}).to_string().into_bytes(), 400, "Secret"),
        ("wrong apiVersion", "application/json", json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}).to_string().into_bytes(), 400, "apps/v1"),
        ("unsupported media type", "application/cbor", b"xx".to_vec(), 415, "unknown format"),
        (
            "1.6 MiB ConfigMap (Kubernetes limits data to 1 MiB)",
            "application/json",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": huge}}).to_string().into_bytes(),
            422,
            "Too long",
        ),
        ("body over 3 MiB", "application/json", vec![b' '; 4 * 1024 * 1024], 413, "larger than"),
    ];
    for (what, ct, body, want, text) in cases {
        let r = c
            .request("POST", cms, &[("content-type", ct)], body)
            .await
            .unwrap();
        assert_eq!(r.status, want, "{what}: {}", r.text());
        let status = r.json();
        assert_eq!(status["kind"], "Status", "{what}");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains(text), "{what}: {message}");
    }
    let r = c
        .request(
            "POST",
            "/api/v1/namespaces/default/pods",
            &[("content-type", "application/json")],
            big_pod(&huge),
        )
        .await
        .unwrap();
    assert_eq!(
        r.status,
        413,
        "a 1.6 MiB pod is over the stored-object limit: {}",
        r.text()
    );
    assert!(r.json()["message"].as_str().unwrap().contains("limit"));
    assert_eq!(
        env.server.store().revision(),
        revision,
        "nothing was written"
    );
    let (_, after) = c.get(cms).await;
    assert_eq!(names(&after), names(&before));
    env.done().await;
}

/// Needs real admission (strict decoding); the placeholder accepts everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_and_wrong_types_are_400_naming_the_field() {
    let env = env().await;
    let c = env.server.client();
    let revision = env.server.store().revision();
    let mut unknown = crate::pod("u");
    unknown["spec"]["containerz"] = json!([]);
    let (code, status) = c.post("/api/v1/namespaces/default/pods", &unknown).await;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"].as_str().unwrap().contains("containerz"),
        "{status}"
    );

    let mut wrong = crate::pod("w");
    wrong["spec"]["containers"][0]["image"] = json!(42);
    let (code, status) = c.post("/api/v1/namespaces/default/pods", &wrong).await;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"].as_str().unwrap().contains("image"),
        "{status}"
    );

    let mut invalid = crate::pod("i");
    invalid["spec"]["containers"][0]["image"] = json!("");
    let (code, status) = c.post("/api/v1/namespaces/default/pods", &invalid).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["details"]["causes"][0]["field"], "spec.containers[0].image",
        "{status}"
    );
    assert_eq!(env.server.store().revision(), revision);
    env.done().await;
}
