//! End-to-end tests of one apiserver replica over TLS: every test starts its own server
//! on 127.0.0.1:0 with a fresh PKI and store in a temp dir.

mod auth;
mod bad_input;
mod crud;
mod deletion;
mod output;
mod selectors;
mod subresources;
mod watch;

use serde_json::{json, Value};
use tempfile::TempDir;
use tug_apiserver::testing::{self, TestOptions, TestServer};

/// A running server and the directory it lives in (removed on drop).
pub struct Env {
    pub server: TestServer,
    _dir: TempDir,
}

pub async fn env() -> Env {
    env_with(TestOptions::default()).await
}

pub async fn env_with(opts: TestOptions) -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = testing::single_with(dir.path(), opts).await;
    Env { server, _dir: dir }
}

impl Env {
    pub async fn done(self) {
        self.server.shutdown().await;
    }
}

pub fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
    })
}

pub fn labeled_pod(name: &str, labels: Value) -> Value {
    let mut p = pod(name);
    p["metadata"]["labels"] = labels;
    p
}

pub fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]},
            },
        },
    })
}

pub fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

pub fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {obj}"))
}

pub fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| {
            i["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}
