//! Pulling from OCI / Docker v2 registries: a small client on hyper (token and basic
//! auth, OCI index / Docker manifest list / manifests, digests verified), and pull
//! credentials from dockerconfigjson Secrets.
//!
//! Written on hyper rather than `oci-client` because that crate brings reqwest and a
//! second TLS stack; the distribution protocol subset a kubelet needs is small.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::blobs::{self, BlobStore};
use crate::manifest::{self, Document};
use crate::reference::{Reference, DOCKER_HUB};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("pulling {reference}: not found: {detail}")]
    NotFound { reference: String, detail: String },
    #[error("pulling {reference}: unauthorized: {detail}")]
    Unauthorized { reference: String, detail: String },
    #[error("pulling {reference}: network error talking to {registry}: {detail}")]
    Network {
        reference: String,
        registry: String,
        detail: String,
    },
    #[error("pulling {reference}: {detail}")]
    Protocol { reference: String, detail: String },
    #[error("pulling {reference}: {source}")]
    Blob {
        reference: String,
        source: blobs::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Credentials for one registry (from a `kubernetes.io/dockerconfigjson` Secret).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    // Secrets never appear in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// `host[:port]` of registries spoken to over plain http (loopback always is).
    pub insecure_registries: Vec<String>,
    /// Extra trusted root certificates (PEM) besides the system bundle.
    pub ca_pem: Option<Vec<u8>>,
    /// Limit for connecting plus each wait for response headers or body data.
    pub timeout: Duration,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            insecure_registries: Vec::new(),
            ca_pem: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Credentials for `registry` from a dockerconfigjson payload (`{"auths": {...}}`) or a
/// legacy dockercfg (the map itself). Keys may be URLs (`https://index.docker.io/v1/`).
pub fn auth_from_docker_config(json: &[u8], registry: &str) -> Option<RegistryAuth> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        auth: Option<String>,
    }
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    let auths = value.get("auths").unwrap_or(&value).as_object()?;
    let want = registry_key(registry);
    for (key, entry) in auths {
        if registry_key(key) != want {
            continue;
        }
        let Ok(e) = serde_json::from_value::<Entry>(entry.clone()) else {
            continue;
        };
        if let (Some(u), Some(p)) = (&e.username, &e.password) {
            if !u.is_empty() {
                return Some(RegistryAuth {
                    username: u.clone(),
                    password: p.clone(),
                });
            }
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(e.auth.as_deref()?.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (u, p) = decoded.split_once(':')?;
        return Some(RegistryAuth {
            username: u.to_string(),
            password: p.to_string(),
        });
    }
    None
}

/// `https://index.docker.io/v1/` -> `docker.io`; `localhost:5000/x` -> `localhost:5000`.
fn registry_key(s: &str) -> String {
    let s = s
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or("").to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB.into(),
        _ => host,
    }
}

/// What a pull stored: the image manifest for this platform, and the digest the
/// reference resolved to (the index's, for multi-platform images).
pub struct Pulled {
    pub manifest_digest: String,
    pub resolved_digest: String,
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
const MAX_MANIFEST: usize = 4 << 20;

/// Fetches the manifest, config and layers of `r` into `blobs`.
pub async fn pull(
    blobs: &BlobStore,
    r: &Reference,
    auth: Option<&RegistryAuth>,
    opts: &PullOptions,
) -> Result<Pulled> {
    let mut c = Client::new(r, auth, opts)?;
    let (bytes, ctype) = c.get_manifest(r.manifest_reference()).await?;
    let resolved_digest = blobs::sha256_digest(&bytes);
    if let Some(want) = &r.digest {
        if *want != resolved_digest {
            return Err(c.protocol(format!(
                "the registry returned a manifest with digest {resolved_digest}, not the requested {want}"
            )));
        }
    }
    let (manifest_digest, manifest_bytes) =
        match manifest::parse_document(&bytes, ctype.as_deref()).map_err(|e| c.protocol(e))? {
            Document::Manifest(_) => (resolved_digest.clone(), bytes),
            Document::Index(index) => {
                let (os, arch) = manifest::host_platform();
                let d = manifest::select_platform(&index).ok_or_else(|| Error::NotFound {
                    reference: c.reference.clone(),
                    detail: format!("no manifest for platform {os}/{arch} in the image index"),
                })?;
                let (b, _) = c.get_manifest(&d.digest).await?;
                let actual = blobs::sha256_digest(&b);
                if actual != d.digest {
                    return Err(c.protocol(format!(
                        "manifest {} has digest {actual}; the registry served corrupt data",
                        d.digest
                    )));
                }
                (d.digest.clone(), b)
            }
        };
    let m = match manifest::parse_document(&manifest_bytes, None).map_err(|e| c.protocol(e))? {
        Document::Manifest(m) => m,
        Document::Index(_) => return Err(c.protocol("an index points at another index".into())),
    };
    let blob_err = |source| Error::Blob {
        reference: r.to_string(),
        source,
    };
    for d in std::iter::once(&m.config).chain(m.layers.iter()) {
        if !blobs.has(&d.digest) {
            c.get_blob(blobs, &d.digest).await?;
        }
    }
    blobs
        .put_bytes(&manifest_bytes, Some(&manifest_digest))
        .map_err(blob_err)?;
    Ok(Pulled {
        manifest_digest,
        resolved_digest,
    })
}

type Https = HttpsConnector<HttpConnector>;

struct Client {
    http: HyperClient<Https, Empty<Bytes>>,
    base: String,
    registry: String,
    repository: String,
    reference: String,
    auth: Option<RegistryAuth>,
    /// The Authorization header value learned from a 401 challenge.
    authorization: Option<String>,
    timeout: Duration,
}

fn is_loopback(host: &str) -> bool {
    let h = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.starts_with("127.") || h == "::1"
}

impl Client {
    fn new(r: &Reference, auth: Option<&RegistryAuth>, opts: &PullOptions) -> Result<Client> {
        let reference = r.to_string();
        // Docker Hub's API lives on another host than its name.
        let host = if r.domain == DOCKER_HUB {
            "registry-1.docker.io".to_string()
        } else {
            r.domain.clone()
        };
        let insecure = is_loopback(&host)
            || opts
                .insecure_registries
                .iter()
                .any(|x| registry_key(x) == registry_key(&host));
        let scheme = if insecure { "http" } else { "https" };
        let tls = tls_config(opts).map_err(|detail| Error::Network {
            reference: reference.clone(),
            registry: host.clone(),
            detail,
        })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(opts.timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Client {
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
            base: format!("{scheme}://{host}"),
            registry: host,
            repository: r.repository.clone(),
            reference,
            auth: auth.cloned(),
            authorization: None,
            timeout: opts.timeout,
        })
    }

    fn protocol(&self, detail: String) -> Error {
        Error::Protocol {
            reference: self.reference.clone(),
            detail,
        }
    }

    fn network(&self, detail: String) -> Error {
        Error::Network {
            reference: self.reference.clone(),
            registry: self.registry.clone(),
            detail,
        }
    }

    async fn get_manifest(&mut self, reference: &str) -> Result<(Vec<u8>, Option<String>)> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repository);
        let resp = self.get(&url, Some(ACCEPT)).await?;
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = http_body_util::Limited::new(resp.into_body(), MAX_MANIFEST);
        let bytes = tokio::time::timeout(self.timeout, body.collect())
            .await
            .map_err(|_| self.network("timed out reading the manifest".into()))?
            .map_err(|e| self.network(format!("reading the manifest: {e}")))?
            .to_bytes();
        Ok((bytes.to_vec(), ctype))
    }

    async fn get_blob(&mut self, blobs: &BlobStore, digest: &str) -> Result<()> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let resp = self.get(&url, None).await?;
        let mut body = resp.into_body();
        let mut w = blobs.writer().map_err(|source| Error::Blob {
            reference: self.reference.clone(),
            source,
        })?;
        loop {
            let frame = tokio::time::timeout(self.timeout, body.frame())
                .await
                .map_err(|_| self.network(format!("timed out downloading blob {digest}")))?;
            let Some(frame) = frame else { break };
            let frame =
                frame.map_err(|e| self.network(format!("downloading blob {digest}: {e}")))?;
            if let Ok(data) = frame.into_data() {
                w.write_all(&data).map_err(|source| Error::Blob {
                    reference: self.reference.clone(),
                    source,
                })?;
            }
        }
        w.commit(Some(digest)).map_err(|source| Error::Blob {
            reference: self.reference.clone(),
            source,
        })?;
        Ok(())
    }

    /// GET with auth challenges answered and redirects (blob storage) followed.
    async fn get(&mut self, url: &str, accept: Option<&str>) -> Result<Response<Incoming>> {
        let mut url = url.to_string();
        let mut challenged = false;
        for _ in 0..8 {
            let uri: Uri = url
                .parse()
                .map_err(|e| self.protocol(format!("bad URL {url}: {e}")))?;
            let same_host = uri.authority().map(|a| a.as_str()) == self.base.split("://").nth(1);
            let mut req = Request::get(&uri).header(header::USER_AGENT, "tug-image/0.1");
            if let Some(a) = accept {
                req = req.header(header::ACCEPT, a);
            }
            // Credentials go only to the registry, never to redirect targets.
            if same_host {
                if let Some(auth) = &self.authorization {
                    req = req.header(header::AUTHORIZATION, auth);
                }
            }
            let req = req
                .body(Empty::new())
                .map_err(|e| self.protocol(e.to_string()))?;
            let resp = tokio::time::timeout(self.timeout, self.http.request(req))
                .await
                .map_err(|_| self.network(format!("timed out waiting for {url}")))?
                .map_err(|e| self.network(format!("GET {url}: {}", error_chain(&e))))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if status.is_redirection() {
                let loc = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        self.protocol(format!("redirect from {url} without Location"))
                    })?;
                url = if loc.starts_with('/') {
                    format!("{}{loc}", self.base)
                } else {
                    loc.to_string()
                };
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && !challenged && same_host {
                challenged = true;
                let challenge = resp
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                self.authorization = Some(self.answer(&challenge).await?);
                continue;
            }
            let detail = registry_error(resp).await;
            return Err(match status {
                StatusCode::NOT_FOUND => Error::NotFound {
                    reference: self.reference.clone(),
                    detail,
                },
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => self.unauthorized(detail),
                _ => self.protocol(format!("GET {url}: HTTP {status}: {detail}")),
            });
        }
        Err(self.protocol(format!("too many redirects for {url}")))
    }

    /// An Unauthorized error with a hint at the fix.
    fn unauthorized(&self, detail: String) -> Error {
        let hint = if self.auth.is_none() {
            "no credentials were given; add an imagePullSecret"
        } else {
            "check the imagePullSecret's username and password"
        };
        Error::Unauthorized {
            reference: self.reference.clone(),
            detail: format!("{detail} ({hint})"),
        }
    }

    /// The Authorization header for a WWW-Authenticate challenge.
    async fn answer(&self, challenge: &str) -> Result<String> {
        let unauthorized = |detail: String| self.unauthorized(detail);
        let basic = self.auth.as_ref().map(|a| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", a.username, a.password))
            )
        });
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return basic.ok_or_else(|| unauthorized("the registry requires basic auth".into()));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized(format!(
                "unsupported authentication challenge {challenge:?}"
            )));
        }
        let params = parse_challenge(params);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let realm = get("realm").ok_or_else(|| {
            self.protocol(format!("Bearer challenge without realm: {challenge:?}"))
        })?;
        let mut query = Vec::new();
        if let Some(service) = get("service") {
            query.push(format!("service={}", url_encode(service)));
        }
        let scope = get("scope")
            .map(str::to_string)
            .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        query.push(format!("scope={}", url_encode(&scope)));
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{sep}{}", query.join("&"));
        let uri: Uri = url
            .parse()
            .map_err(|e| self.protocol(format!("bad token realm {realm}: {e}")))?;
        let mut req = Request::get(uri).header(header::USER_AGENT, "tug-image/0.1");
        if let Some(b) = &basic {
            req = req.header(header::AUTHORIZATION, b);
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| self.protocol(e.to_string()))?;
        let resp = tokio::time::timeout(self.timeout, self.http.request(req))
            .await
            .map_err(|_| self.network(format!("timed out asking {realm} for a token")))?
            .map_err(|e| self.network(format!("token request to {realm}: {}", error_chain(&e))))?;
        let status = resp.status();
        if !status.is_success() {
            let detail = registry_error(resp).await;
            return Err(unauthorized(format!(
                "the token service {realm} answered HTTP {status}: {detail}"
            )));
        }
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let body = tokio::time::timeout(self.timeout, resp.into_body().collect())
            .await
            .map_err(|_| self.network("timed out reading the token".into()))?
            .map_err(|e| self.network(format!("reading the token: {e}")))?
            .to_bytes();
        let t: Token = serde_json::from_slice(&body)
            .map_err(|e| self.protocol(format!("token response from {realm}: {e}")))?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.protocol(format!("token response from {realm} has no token")))?;
        Ok(format!("Bearer {token}"))
    }
}

/// `realm="https://x",service="y",scope="a,b"` -> pairs (quoted values may hold commas).
fn parse_challenge(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_string(), &after[end..]),
                None => (after.trim().to_string(), ""),
            }
        };
        out.push((key, value));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The registry's error message (`{"errors":[{"code","message"}]}`) or the status.
async fn registry_error(resp: Response<Incoming>) -> String {
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), 64 * 1024);
    let bytes = match tokio::time::timeout(Duration::from_secs(10), body.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        _ => Bytes::new(),
    };
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(&bytes) {
        let msgs: Vec<String> = e
            .errors
            .iter()
            .map(|x| format!("{}: {}", x.code, x.message))
            .collect();
        if !msgs.is_empty() {
            return msgs.join("; ");
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    if text.is_empty() || text.len() > 200 {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// rustls with the ring provider, trusting the system bundle plus `opts.ca_pem`.
fn tls_config(opts: &PullOptions) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for bundle in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        if let Ok(pem) = std::fs::read(bundle) {
            for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                let _ = roots.add(cert);
            }
            break;
        }
    }
    if let Some(pem) = &opts.ca_pem {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("the CA PEM is invalid: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("the CA PEM holds an unusable certificate: {e}"))?;
            n += 1;
        }
        if n == 0 {
            return Err("the CA PEM holds no certificate".into());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_auth_is_found_by_registry() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("bob:s3cret");
        let json = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{b64}"}},"localhost:5000":{{"username":"u","password":"p"}}}}}}"#
        );
        let cases = [
            ("docker.io", Some(("bob", "s3cret"))),
            ("localhost:5000", Some(("u", "p"))),
            ("quay.io", None),
        ];
        for (registry, want) in cases {
            let got = auth_from_docker_config(json.as_bytes(), registry);
            let want = want.map(|(u, p)| RegistryAuth {
                username: u.into(),
                password: p.into(),
            });
            assert_eq!(got, want, "{registry}");
        }
        // Legacy .dockercfg: the map without "auths".
        let legacy = format!(r#"{{"registry.example.com":{{"auth":"{b64}"}}}}"#);
        assert!(auth_from_docker_config(legacy.as_bytes(), "registry.example.com").is_some());
        assert!(auth_from_docker_config(b"not json", "docker.io").is_none());
        assert!(!format!(
            "{:?}",
            RegistryAuth {
                username: "u".into(),
                password: "pw".into()
            }
        )
        .contains("pw"));
    }

    #[test]
    fn bearer_challenges_are_parsed() {
        let p = parse_challenge(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(
            p,
            vec![
                ("realm".into(), "https://auth.docker.io/token".into()),
                ("service".into(), "registry.docker.io".into()),
                (
                    "scope".into(),
                    "repository:library/busybox:pull,push".into()
                ),
            ]
        );
    }

    #[test]
    fn loopback_registries_use_http() {
        for (host, want) in [
            ("localhost:5000", true),
            ("127.0.0.1:5000", true),
            ("[::1]:5000", true),
            ("registry-1.docker.io", false),
            ("10.0.0.1:5000", false),
        ] {
            assert_eq!(is_loopback(host), want, "{host}");
        }
    }
}
