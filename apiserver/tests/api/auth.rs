//! Authentication: client certificates, bearer tokens, and what anonymous may see.

use crate::env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_valid_credentials_are_401() {
    let env = env().await;
    let anonymous = env.server.token_client(None);
    let (code, status) = anonymous.get("/api/v1/namespaces").await;
    assert_eq!(code, 401, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");

    let bad = env.server.token_client(Some("not-a-token"));
    let (code, _) = bad.get("/api/v1/namespaces").await;
    assert_eq!(code, 401);
    let (code, _) = anonymous.get("/metrics").await;
    assert_eq!(code, 401);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_or_a_client_certificate_authenticates() {
    let env = env().await;
    let token = env.server.token_client(Some(&env.server.token));
    let (code, list) = token.get("/api/v1/namespaces").await;
    assert_eq!(code, 200, "{list}");
    let (code, _) = env.server.client().get("/api/v1/namespaces").await;
    assert_eq!(code, 200);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_version_are_served_to_anyone() {
    let env = env().await;
    let anonymous = env.server.token_client(None);
    for path in ["/healthz", "/readyz", "/livez"] {
        let r = anonymous
            .request("GET", path, &[], Vec::new())
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.text(), "ok");
    }
    let (code, version) = anonymous.get("/version").await;
    assert_eq!(code, 200);
    assert!(version["gitVersion"].is_string(), "{version}");
    env.done().await;
}
