//! Pulling from a minimal Docker v2 registry served in the test on 127.0.0.1:0
//! (anonymous, bearer-token and basic auth; redirects to blob storage; indexes).

mod support;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::*;
use tug_image::layout::BuiltImage;
use tug_image::manifest;
use tug_image::registry::Error as PullError;
use tug_image::store::Error;
use tug_image::{ImageStore, PullOptions, RegistryAuth};

#[derive(Clone)]
enum Auth {
    Anonymous,
    Bearer,
    Basic,
}

const USER: &str = "alice";
const PASS: &str = "wonderland";
const TOKEN: &str = "token-123";

#[derive(Default)]
struct Content {
    /// (repository, tag or digest) -> (media type, body)
    manifests: HashMap<(String, String), (String, Vec<u8>)>,
    blobs: HashMap<String, Vec<u8>>,
    corrupt: HashSet<String>,
}

struct Registry {
    addr: std::net::SocketAddr,
    content: Arc<Mutex<Content>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Registry {
    async fn start(auth: Auth) -> Registry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let content = Arc::new(Mutex::new(Content::default()));
        let c = content.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (c, auth) = (c.clone(), auth.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (c, auth) = (c.clone(), auth.clone());
                        async move { Ok::<_, Infallible>(handle(req, &c, &auth, addr)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Registry {
            addr,
            content,
            task,
        }
    }

    fn push(&self, repo: &str, tag: &str, img: &BuiltImage) {
        let mut c = self.content.lock().unwrap();
        for (m, key) in [(tag, tag), (&img.manifest_digest, &img.manifest_digest)] {
            let _ = m;
            c.manifests.insert(
                (repo.into(), key.to_string()),
                (manifest::OCI_MANIFEST.into(), img.manifest.clone()),
            );
        }
        c.blobs
            .insert(img.config_digest.clone(), img.config.clone());
        for (d, b) in &img.layers {
            c.blobs.insert(d.clone(), b.clone());
        }
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.addr)
    }
}

fn reply(status: StatusCode, headers: &[(&str, String)], body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(Full::new(Bytes::from(body))).unwrap()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    reply(status, &[], serde_json::to_vec(&body).unwrap())
}

fn handle(
    req: Request<Incoming>,
    content: &Mutex<Content>,
    auth: &Auth,
    addr: std::net::SocketAddr,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    );
    if path == "/token" {
        return if given == basic {
            reply(
                StatusCode::OK,
                &[],
                format!(r#"{{"token":"{TOKEN}"}}"#).into_bytes(),
            )
        } else {
            error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "bad credentials")
        };
    }
    let c = content.lock().unwrap();
    if let Some(digest) = path.strip_prefix("/storage/") {
        // Blob storage (like S3 behind Docker Hub): no registry auth.
        return match c.blobs.get(digest) {
            Some(b) if c.corrupt.contains(digest) => {
                let mut b = b.clone();
                b.push(0);
                reply(StatusCode::OK, &[], b)
            }
            Some(b) => reply(StatusCode::OK, &[], b.clone()),
            None => error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown"),
        };
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "not found");
    };
    let repo_of = |sep: &str| {
        rest.rfind(sep)
            .map(|i| (&rest[..i], &rest[i + sep.len()..]))
    };
    let scope_repo = repo_of("/manifests/")
        .or(repo_of("/blobs/"))
        .map(|x| x.0)
        .unwrap_or("");
    let authorized = match auth {
        Auth::Anonymous => true,
        Auth::Bearer => given == format!("Bearer {TOKEN}"),
        Auth::Basic => given == basic,
    };
    if !authorized {
        let challenge = match auth {
            Auth::Bearer => format!(
                r#"Bearer realm="http://{addr}/token",service="test-registry",scope="repository:{scope_repo}:pull""#
            ),
            _ => r#"Basic realm="test-registry""#.to_string(),
        };
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        r.headers_mut()
            .insert("www-authenticate", challenge.parse().unwrap());
        return r;
    }
    if let Some((repo, reference)) = repo_of("/manifests/") {
        return match c.manifests.get(&(repo.to_string(), reference.to_string())) {
            Some((media, body)) => reply(
                StatusCode::OK,
                &[("content-type", media.clone())],
                body.clone(),
            ),
            None => error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
            ),
        };
    }
    if let Some((_, digest)) = repo_of("/blobs/") {
        return reply(
            StatusCode::TEMPORARY_REDIRECT,
            &[("location", format!("http://{addr}/storage/{digest}"))],
            Vec::new(),
        );
    }
    error(StatusCode::NOT_FOUND, "NOT_FOUND", "not found")
}

fn creds() -> RegistryAuth {
    RegistryAuth {
        username: USER.into(),
        password: PASS.into(),
    }
}

#[tokio::test]
async fn pull_by_tag_and_by_digest_from_an_anonymous_registry() {
    let reg = Registry::start(Auth::Anonymous).await;
    let img = two_layer_image(true);
    reg.push("team/app", "v1", &img);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let opts = PullOptions::default();
    let reference = reg.reference("team/app:v1");
    let image = store.pull(&reference, None, &opts).await.unwrap();
    assert_eq!(image.id, img.config_digest);
    assert_eq!(image.references, vec![reference.clone()]);
    let repo_digest = format!("{}@{}", reg.reference("team/app"), img.manifest_digest);
    assert_eq!(image.repo_digest.as_deref(), Some(repo_digest.as_str()));
    assert_eq!(image.config.cmd, vec!["/bin/app"]);
    assert_eq!(store.get(&reference).unwrap().id, image.id);
    assert_eq!(store.get(&repo_digest).unwrap().id, image.id);
    let layers = store.layer_dirs(&image).unwrap();
    assert!(layers[1].join("var/cache/new").is_file());
    // By digest: same image, the digest reference is added.
    let by_digest = store.pull(&repo_digest, None, &opts).await.unwrap();
    assert_eq!(by_digest.id, image.id);
    assert!(by_digest.references.contains(&repo_digest));
    assert!(by_digest.references.contains(&reference));
}

#[tokio::test]
async fn a_multi_platform_index_resolves_to_this_hosts_manifest() {
    let reg = Registry::start(Auth::Anonymous).await;
    let img = one_layer_image(b"multi");
    reg.push("multi", &img.manifest_digest.clone(), &img);
    let (os, arch) = manifest::host_platform();
    let other = format!("sha256:{}", "1".repeat(64));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::DOCKER_LIST,
        "manifests": [
            {"mediaType": manifest::DOCKER_MANIFEST, "digest": other, "size": 1,
             "platform": {"os": os, "architecture": "s390x"}},
            {"mediaType": manifest::OCI_MANIFEST, "digest": img.manifest_digest, "size": img.manifest.len(),
             "platform": {"os": os, "architecture": arch}},
        ]
    });
    let index = serde_json::to_vec(&index).unwrap();
    let index_digest = tug_image::blobs::sha256_digest(&index);
    reg.content.lock().unwrap().manifests.insert(
        ("multi".into(), "latest".into()),
        (manifest::DOCKER_LIST.into(), index),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let image = store
        .pull(&reg.reference("multi"), None, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(image.id, img.config_digest);
    assert_eq!(
        image.repo_digest,
        Some(format!("{}@{index_digest}", reg.reference("multi")))
    );
}

#[tokio::test]
async fn bearer_token_auth_uses_the_pull_secret_and_reports_unauthorized_without_it() {
    let reg = Registry::start(Auth::Bearer).await;
    let img = one_layer_image(b"private");
    reg.push("private/app", "1", &img);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let opts = PullOptions::default();
    let reference = reg.reference("private/app:1");
    let err = store.pull(&reference, None, &opts).await.unwrap_err();
    assert!(
        matches!(err, Error::Pull(PullError::Unauthorized { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("imagePullSecret"), "{err}");
    let wrong = RegistryAuth {
        username: USER.into(),
        password: "nope".into(),
    };
    let err = store
        .pull(&reference, Some(&wrong), &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Pull(PullError::Unauthorized { .. })),
        "{err}"
    );
    assert!(store.list().is_empty());
    let image = store.pull(&reference, Some(&creds()), &opts).await.unwrap();
    assert_eq!(image.id, img.config_digest);
}

#[tokio::test]
async fn basic_auth_registries_accept_the_pull_secret() {
    let reg = Registry::start(Auth::Basic).await;
    let img = one_layer_image(b"basic");
    reg.push("app", "1", &img);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let opts = PullOptions::default();
    let reference = reg.reference("app:1");
    let err = store.pull(&reference, None, &opts).await.unwrap_err();
    assert!(
        matches!(err, Error::Pull(PullError::Unauthorized { .. })),
        "{err}"
    );
    // Credentials as they come from a dockerconfigjson Secret.
    let secret = format!(
        r#"{{"auths":{{"{}":{{"username":"{USER}","password":"{PASS}"}}}}}}"#,
        reg.addr
    );
    let auth = tug_image::auth_from_docker_config(secret.as_bytes(), &reg.addr.to_string());
    let image = store.pull(&reference, auth.as_ref(), &opts).await.unwrap();
    assert_eq!(image.id, img.config_digest);
}

#[tokio::test]
async fn a_missing_tag_is_reported_as_not_found() {
    let reg = Registry::start(Auth::Anonymous).await;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let err = store
        .pull(
            &reg.reference("nothing:here"),
            None,
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("manifest unknown") && msg.contains("nothing:here"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_unreachable_registry_is_reported_as_a_network_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let err = store
        .pull(
            &format!("127.0.0.1:{port}/app:1"),
            None,
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Pull(PullError::Network { .. })),
        "{err}"
    );
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[tokio::test]
async fn a_corrupt_layer_from_the_registry_is_rejected() {
    let reg = Registry::start(Auth::Anonymous).await;
    let img = one_layer_image(b"payload");
    reg.push("app", "1", &img);
    reg.content
        .lock()
        .unwrap()
        .corrupt
        .insert(img.layers[0].0.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let err = store
        .pull(&reg.reference("app:1"), None, &PullOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&img.layers[0].0), "{err}");
    assert!(store.list().is_empty());
    assert!(!dir
        .path()
        .join("blobs/sha256")
        .join(&img.layers[0].0[7..])
        .exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_image_both_succeed() {
    let reg = Registry::start(Auth::Anonymous).await;
    let img = two_layer_image(true);
    reg.push("app", "1", &img);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let opts = PullOptions::default();
    let reference = reg.reference("app:1");
    let (a, b) = tokio::join!(
        store.pull(&reference, None, &opts),
        store.pull(&reference, None, &opts)
    );
    assert_eq!(a.unwrap().id, img.config_digest);
    assert_eq!(b.unwrap().id, img.config_digest);
    assert_eq!(store.list().len(), 1);
}
