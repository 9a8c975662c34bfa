//! Test support for this crate and others: real apiservers on loopback with a fresh PKI
//! (one replica or a raft cluster), stop/restart of a replica from its data dir, and a
//! tiny HTTPS client (hyper over tokio-rustls) with a watch-stream reader.
//!
//! Helpers panic with a message on setup failures: they are for tests only.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tug_pki::{CertKey, PkiPaths};

use crate::{replica_name, start, Options, Server, WatchConfig};

/// Knobs of test servers.
#[derive(Debug, Clone, Copy)]
pub struct TestOptions {
    /// Watch events the store keeps for resumption (small values make 410 testable).
    pub history_limit: u64,
    pub bookmark_interval: Duration,
    /// Raft tick; elections take ~10-20 ticks.
    pub raft_tick: Duration,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            history_limit: 100_000,
            bookmark_interval: Duration::from_secs(1),
            raft_tick: Duration::from_millis(50),
        }
    }
}

/// One running (or stopped) replica of a test cluster.
pub struct TestServer {
    /// `https://127.0.0.1:port`.
    pub url: String,
    /// A kubeconfig for this replica with the admin client certificate.
    pub kubeconfig: PathBuf,
    /// The cluster CA (PEM).
    pub ca_pem: String,
    /// The admin bearer token (also in `pki_dir/tokens.csv`).
    pub token: String,
    /// The admin client certificate (`CN=tug-admin, O=system:masters`).
    pub admin: CertKey,
    pub id: u64,
    pub data_dir: PathBuf,
    pub pki_dir: PathBuf,
    pub addr: SocketAddr,
    peers: BTreeMap<u64, String>,
    opts: TestOptions,
    server: Option<Server>,
}

impl TestServer {
    /// The running server's store. Panics when stopped.
    pub fn store(&self) -> &tug_store::Store {
        self.server().store()
    }

    /// The running server. Panics when stopped.
    pub fn server(&self) -> &Server {
        self.server
            .as_ref()
            .expect("this test server is stopped; call restart() first")
    }

    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// A client presenting the admin certificate.
    pub fn client(&self) -> TestClient {
        TestClient::new(self.addr, &self.ca_pem, Some(&self.admin), None)
    }

    /// A client without a certificate, sending `token` (if any) as a bearer token.
    pub fn token_client(&self, token: Option<&str>) -> TestClient {
        TestClient::new(self.addr, &self.ca_pem, None, token)
    }

    /// Stops the replica (API and store); its data dir and ports stay reserved for
    /// [`TestServer::restart`].
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Starts the replica again from its data dir, on the same API and peer ports.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        let api = bind_retrying(self.addr).await?;
        let peer_addr: SocketAddr = self.peers[&self.id].parse()?;
        let peer = if self.peers.len() > 1 {
            Some(bind_retrying(peer_addr).await?)
        } else {
            None
        };
        self.server = Some(launch(self, api, peer).await?);
        Ok(())
    }

    /// Stops the replica for good.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }
}

async fn bind_retrying(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow::anyhow!("rebinding {addr}: {:?}", last))
}

async fn launch(
    t: &TestServer,
    api: TcpListener,
    peer: Option<TcpListener>,
) -> anyhow::Result<Server> {
    let mut opts = Options::from_pki_dir(
        &t.pki_dir,
        t.id,
        t.peers.clone(),
        t.data_dir.clone(),
        t.addr,
    )?;
    opts.api_listener = Some(api);
    opts.peer_listener = peer;
    opts.history_limit = t.opts.history_limit;
    opts.raft_tick = t.opts.raft_tick;
    opts.watch = WatchConfig {
        bookmark_interval: t.opts.bookmark_interval,
        ..WatchConfig::default()
    };
    start(opts).await
}

/// One replica with a fresh PKI under `dir`, ready (initial namespaces created).
pub async fn single(dir: &Path) -> TestServer {
    single_with(dir, TestOptions::default()).await
}

pub async fn single_with(dir: &Path, opts: TestOptions) -> TestServer {
    cluster_with(1, dir, opts).await.pop().expect("one server")
}

/// `n` replicas sharing one PKI under `dir`, all on loopback, each ready.
pub async fn cluster(n: usize, dir: &Path) -> Vec<TestServer> {
    cluster_with(n, dir, TestOptions::default()).await
}

pub async fn cluster_with(n: usize, dir: &Path, opts: TestOptions) -> Vec<TestServer> {
    assert!(n >= 1, "a cluster needs at least one replica");
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut api_listeners = Vec::new();
    let mut peer_listeners = Vec::new();
    let mut peers = BTreeMap::new();
    for id in 1..=n as u64 {
        let api = TcpListener::bind((loopback, 0))
            .await
            .expect("binding an API port");
        let peer = TcpListener::bind((loopback, 0))
            .await
            .expect("binding a peer port");
        peers.insert(id, peer.local_addr().expect("peer addr").to_string());
        api_listeners.push(api);
        peer_listeners.push(peer);
    }
    let pki_dir = dir.join("pki");
    let first_url = format!(
        "https://{}",
        api_listeners[0].local_addr().expect("api addr")
    );
    let replicas: Vec<(String, Vec<IpAddr>)> = (1..=n as u64)
        .map(|id| (replica_name(id), vec![loopback]))
        .collect();
    let pki = tug_pki::init_cluster_pki(&pki_dir, "tug", &first_url, (&[], &[loopback]), &replicas)
        .expect("creating the test PKI");
    let ca_pem = pki.ca.cert_pem().to_string();

    let mut servers = Vec::new();
    for (i, (api, peer)) in api_listeners.into_iter().zip(peer_listeners).enumerate() {
        let id = i as u64 + 1;
        let addr = api.local_addr().expect("api addr");
        let url = format!("https://{addr}");
        let kubeconfig = if id == 1 {
            PkiPaths::new(&pki_dir).admin_kubeconfig()
        } else {
            let path = dir.join(format!("kubeconfig-{id}"));
            let kc = tug_pki::admin_kubeconfig("tug", &url, &ca_pem, &pki.admin);
            tug_pki::write_kubeconfig(&path, &kc).expect("writing a kubeconfig");
            path
        };
        let mut t = TestServer {
            url,
            kubeconfig,
            ca_pem: ca_pem.clone(),
            token: pki.admin_token.clone(),
            admin: pki.admin.clone(),
            id,
            data_dir: dir.join(format!("data-{id}")),
            pki_dir: pki_dir.clone(),
            addr,
            peers: peers.clone(),
            opts,
            server: None,
        };
        let peer = if n > 1 { Some(peer) } else { None };
        t.server = Some(
            launch(&t, api, peer)
                .await
                .expect("starting a test apiserver"),
        );
        servers.push(t);
    }
    for t in &servers {
        assert!(
            t.server().wait_ready(Duration::from_secs(30)).await,
            "test apiserver {} did not become ready in 30 s",
            t.id
        );
    }
    servers
}

/// A response read to the end.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal HTTPS client: one HTTP/1.1 connection per request.
#[derive(Clone)]
pub struct TestClient {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    token: Option<String>,
}

impl TestClient {
    pub fn new(
        addr: SocketAddr,
        ca_pem: &str,
        cert: Option<&CertKey>,
        token: Option<&str>,
    ) -> Self {
        let tls = tug_pki::client_config(ca_pem, cert, &[b"http/1.1"]).expect("client TLS config");
        TestClient {
            addr,
            tls,
            token: token.map(str::to_string),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> anyhow::Result<(http::response::Parts, Incoming, JoinHandle<()>)> {
        let tcp = TcpStream::connect(self.addr).await?;
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
        let tls = connector.connect(name, tcp).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.addr.to_string());
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        let resp = sender.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        Ok((parts, body, conn))
    }

    /// Sends one request and reads the whole response.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> anyhow::Result<TestResponse> {
        let (parts, body, conn) = self.send(method, path, headers, body).await?;
        let bytes = body.collect().await?.to_bytes();
        conn.abort();
        Ok(TestResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: bytes.to_vec(),
        })
    }

    async fn json_call(&self, method: &str, path: &str, ct: &str, body: Vec<u8>) -> (u16, Value) {
        let headers: &[(&str, &str)] = if body.is_empty() {
            &[]
        } else {
            &[("content-type", ct)]
        };
        let r = self
            .request(method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (r.status, r.json())
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.json_call("GET", path, "", Vec::new()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.json_call(
            "POST",
            path,
            "application/json",
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.json_call(
            "PUT",
            path,
            "application/json",
            body.to_string().into_bytes(),
        )
        .await
    }

    /// PATCH with `content_type` one of the three patch media types.
    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> (u16, Value) {
        self.json_call("PATCH", path, content_type, body.to_string().into_bytes())
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.json_call("DELETE", path, "", Vec::new()).await
    }

    /// Starts a watch (`path` should carry `watch=true`); panics if the server refused.
    pub async fn watch(&self, path: &str) -> WatchEvents {
        self.try_watch(path)
            .await
            .unwrap_or_else(|r| panic!("watch {path}: HTTP {}: {}", r.status, r.text()))
    }

    /// Starts a watch, or returns the error response (e.g. 410).
    pub async fn try_watch(&self, path: &str) -> Result<WatchEvents, TestResponse> {
        let (parts, body, conn) = self
            .send("GET", path, &[], Vec::new())
            .await
            .unwrap_or_else(|e| panic!("watch {path}: {e}"));
        if parts.status != http::StatusCode::OK {
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            conn.abort();
            return Err(TestResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: bytes,
            });
        }
        Ok(WatchEvents {
            body,
            buf: Vec::new(),
            conn,
        })
    }
}

/// The events of one watch response, parsed line by line.
pub struct WatchEvents {
    body: Incoming,
    buf: Vec<u8>,
    conn: JoinHandle<()>,
}

impl WatchEvents {
    /// The next event, or `None` when the stream ended or nothing came within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line).ok();
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??;
            if let Ok(data) = frame.ok()?.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }

    /// The next event that is not a BOOKMARK.
    pub async fn next_change(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.next(left).await?;
            if ev["type"] != "BOOKMARK" {
                return Some(ev);
            }
        }
    }
}

impl Drop for WatchEvents {
    fn drop(&mut self) {
        self.conn.abort();
    }
}
