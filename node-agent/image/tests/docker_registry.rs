//! Interoperability with a real registry: Debian's `docker-registry` (distribution
//! 2.8) on loopback. The test pushes an image with the plain v2 upload API, then pulls
//! it through the store. Skipped when /usr/bin/docker-registry is not installed.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use support::*;
use tug_image::manifest;
use tug_image::{ImageStore, PullOptions};

const REGISTRY: &str = "/usr/bin/docker-registry";

/// Kills and reaps the registry even when an assertion fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

async fn push_blob(client: &HttpClient, base: &str, repo: &str, digest: &str, blob: &[u8]) {
    let (status, headers, body) = send(
        client,
        "POST",
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        "application/octet-stream",
        Vec::new(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let location = headers["location"].to_str().unwrap().to_string();
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let (status, _, body) = send(
        client,
        "PUT",
        &format!("{location}{sep}digest={digest}"),
        "application/octet-stream",
        blob.to_vec(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
}

#[tokio::test]
async fn images_pushed_to_a_real_docker_registry_pull_into_the_store() {
    if !std::path::Path::new(REGISTRY).exists() {
        eprintln!("skipped: {REGISTRY} (Debian package docker-registry) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let _registry = Running(
        Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut ready = false;
    for _ in 0..200 {
        let req = Request::get(format!("{base}/v2/"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        if let Ok(r) = client.request(req).await {
            if r.status() == StatusCode::OK {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "docker-registry did not come up on port {port}");

    let img = two_layer_image(true);
    let repo = "team/app";
    push_blob(&client, &base, repo, &img.config_digest, &img.config).await;
    for (d, b) in &img.layers {
        push_blob(&client, &base, repo, d, b).await;
    }
    let (status, _, body) = send(
        &client,
        "PUT",
        &format!("{base}/v2/{repo}/manifests/v1"),
        manifest::OCI_MANIFEST,
        img.manifest.clone(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );

    let store = ImageStore::open(&dir.path().join("store")).unwrap();
    let reference = format!("127.0.0.1:{port}/{repo}:v1");
    let image = store
        .pull(&reference, None, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(image.id, img.config_digest);
    assert_eq!(
        image.repo_digest,
        Some(format!("127.0.0.1:{port}/{repo}@{}", img.manifest_digest))
    );
    let err = store
        .pull(
            &format!("127.0.0.1:{port}/{repo}:missing"),
            None,
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    eprintln!("not found error reads: {err}");
}
