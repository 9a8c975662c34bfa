//! The server over real TLS with a fake backend; then the whole path: `tug logs` /
//! `tug exec` (and kubectl, when installed) -> apiserver -> this server.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tug_pki::{Ca, CertKey};

use super::testing::{append_cri, FakeBackend, FakeContainer};
use super::{serve, tls_config};

/// Safety net so a broken stream fails the test instead of hanging it; never a timing
/// assertion.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// A running server with a fake backend; stops when dropped.
struct Agent {
    addr: SocketAddr,
    ca: String,
    client: CertKey,
    backend: Arc<FakeBackend>,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn start_with(ca: &Ca) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let serving = ca.issue_server("node-1", &[], &[]).unwrap();
    let client = ca
        .issue_client("kube-apiserver-kubelet-client", &["system:masters".into()])
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = FakeBackend::new(dir.path().join("logs"));
    let (stop, rx) = watch::channel(false);
    let tls = tls_config(&serving, ca.cert_pem()).unwrap();
    tokio::spawn(serve(listener, tls, backend.clone(), rx));
    Agent {
        addr,
        ca: ca.cert_pem().to_string(),
        client,
        backend,
        stop,
        _dir: dir,
    }
}

async fn start() -> Agent {
    start_with(&Ca::generate("test-ca").unwrap()).await
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

impl Agent {
    async fn connect_as(&self, cert: Option<&CertKey>) -> std::io::Result<Tls> {
        let tls = tug_pki::client_config(&self.ca, cert, &[b"http/1.1"]).unwrap();
        let tcp = TcpStream::connect(self.addr).await?;
        let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
        tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
    }

    /// GET with the authorized client cert; the response with its streaming body.
    async fn get_as(
        &self,
        cert: Option<&CertKey>,
        path: &str,
    ) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
        let tls = self.connect_as(cert).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, self.addr.to_string())
            .body(Empty::<Bytes>::new())?;
        Ok(sender.send_request(req).await?)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self.get_as(Some(&self.client), path).await.unwrap();
        let status = resp.status().as_u16();
        let body = tokio::time::timeout(HANG_GUARD, resp.into_body().collect())
            .await
            .expect("body hung")
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn websocket(
        &self,
        path: &str,
        protocols: &str,
    ) -> Result<(tokio_tungstenite::WebSocketStream<Tls>, String), (u16, String)> {
        let tls = self.connect_as(Some(&self.client)).await.unwrap();
        let mut req = format!("wss://{}{path}", self.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
        match tokio_tungstenite::client_async(req, tls).await {
            Ok((ws, resp)) => {
                let p = resp.headers()["sec-websocket-protocol"]
                    .to_str()
                    .unwrap()
                    .to_string();
                Ok((ws, p))
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err((
                resp.status().as_u16(),
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
            )),
            Err(e) => panic!("websocket {path}: {e}"),
        }
    }
}

/// What an exec session produced.
#[derive(Debug, Default)]
struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Value,
}

/// Sends `input` frames, then reads until the server closes.
async fn exec_session(
    mut ws: tokio_tungstenite::WebSocketStream<Tls>,
    input: Vec<Vec<u8>>,
) -> Outcome {
    for frame in input {
        ws.send(Message::Binary(frame.into())).await.unwrap();
    }
    let mut out = Outcome::default();
    let read = async {
        while let Some(msg) = ws.next().await {
            let data = match msg {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            match data[0] {
                1 => out.stdout.extend_from_slice(&data[1..]),
                2 => out.stderr.extend_from_slice(&data[1..]),
                3 => out.status = serde_json::from_slice(&data[1..]).unwrap(),
                c => panic!("unexpected channel {c}"),
            }
        }
    };
    tokio::time::timeout(HANG_GUARD, read)
        .await
        .expect("exec session hung");
    out
}

fn stamp(second: u32) -> String {
    format!("2024-01-01T00:00:{second:02}.000000001Z")
}

fn write_logs(agent: &Agent) {
    let b = &agent.backend;
    b.add(
        "ns",
        "p",
        "app",
        FakeContainer {
            restart_count: 1,
            running: true,
        },
    );
    append_cri(
        &b.path("ns", "p", "app", 0),
        &[(&stamp(1), "stdout", "F", "old instance")],
    );
    append_cri(
        &b.path("ns", "p", "app", 1),
        &[
            (&stamp(2), "stdout", "F", "one"),
            (&stamp(3), "stderr", "P", "tw"),
            (&stamp(4), "stderr", "F", "o"),
            (&stamp(5), "stdout", "F", "three"),
        ],
    );
}

#[tokio::test]
async fn logs_join_pieces_and_honour_tail_timestamps_since_limit_and_previous() {
    let agent = start().await;
    write_logs(&agent);
    let base = "/containerLogs/ns/p/app";
    let cases: &[(&str, u16, &str)] = &[
        ("", 200, "one\ntwo\nthree\n"),
        ("?tailLines=2", 200, "two\nthree\n"),
        ("?tailLines=0", 200, ""),
        (
            "?tailLines=1&timestamps=true",
            200,
            "2024-01-01T00:00:05.000000001Z three\n",
        ),
        ("?sinceTime=2024-01-01T00:00:04Z", 200, "three\n"),
        ("?limitBytes=5", 200, "one\nt"),
        ("?previous=true", 200, "old instance\n"),
        // A follow of a container that no longer runs ends after what is there.
        ("?follow=true&previous=true", 200, "old instance\n"),
    ];
    for (query, code, want) in cases {
        let (got_code, body) = agent.get(&format!("{base}{query}")).await;
        assert_eq!((got_code, body.as_str()), (*code, *want), "{query}");
    }
    let (code, body) = agent.get("/containerLogs/ns/p/nope").await;
    assert_eq!(code, 404, "{body}");
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert!(status["message"].as_str().unwrap().contains("nope"));
    let (code, body) = agent.get(&format!("{base}?tailLines=x")).await;
    assert_eq!(code, 400);
    assert!(body.contains("tailLines"), "{body}");

    agent.backend.set("ns", "p", "app", |c| c.restart_count = 0);
    let (code, body) = agent.get(&format!("{base}?previous=true")).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("previous terminated container"), "{body}");
}

#[tokio::test]
async fn only_the_apiservers_kubelet_client_certificate_is_let_in() {
    let ca = Ca::generate("test-ca").unwrap();
    let agent = start_with(&ca).await;
    write_logs(&agent);
    // Another node's client certificate: authenticated, not authorized.
    let node = ca
        .issue_client("system:node:node-2", &["system:nodes".into()])
        .unwrap();
    let resp = agent
        .get_as(Some(&node), "/containerLogs/ns/p/app")
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // No certificate: the handshake (or the first request) fails.
    let refused = agent.get_as(None, "/containerLogs/ns/p/app").await;
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );
    // Another CA's certificate.
    let other = Ca::generate("other").unwrap();
    let stranger = other
        .issue_client("kube-apiserver-kubelet-client", &["system:masters".into()])
        .unwrap();
    assert!(agent
        .get_as(Some(&stranger), "/containerLogs/ns/p/app")
        .await
        .is_err());
}

/// Reads body frames until `want` has arrived (in total); returns everything read.
async fn read_until(body: &mut hyper::body::Incoming, got: &mut String, want: &str) {
    let wait = async {
        while !got.contains(want) {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        got.push_str(&String::from_utf8_lossy(&d));
                    }
                }
                other => panic!("the log stream ended before {want:?}: {other:?}; got {got:?}"),
            }
        }
    };
    tokio::time::timeout(HANG_GUARD, wait)
        .await
        .unwrap_or_else(|_| panic!("waiting for {want:?}; got {got:?}"));
}

#[tokio::test]
async fn follow_streams_new_lines_across_rotation_and_ends_when_the_container_exits() {
    let agent = start().await;
    write_logs(&agent);
    let b = agent.backend.clone();
    let path = b.path("ns", "p", "app", 1);
    let resp = agent
        .get_as(
            Some(&agent.client),
            "/containerLogs/ns/p/app?follow=true&tailLines=1",
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = String::new();
    read_until(&mut body, &mut got, "three\n").await;
    assert_eq!(got, "three\n");

    append_cri(&path, &[(&stamp(6), "stdout", "P", "fo")]);
    append_cri(&path, &[(&stamp(7), "stdout", "F", "ur")]);
    read_until(&mut body, &mut got, "four\n").await;

    // Rotation: the shim renames the file and starts a new one.
    append_cri(
        &path,
        &[(&stamp(8), "stdout", "F", "five (last of the old file)")],
    );
    std::fs::rename(&path, path.with_extension("log.1")).unwrap();
    append_cri(&path, &[(&stamp(9), "stdout", "F", "six (new file)")]);
    read_until(&mut body, &mut got, "six (new file)\n").await;
    assert_eq!(
        got,
        "three\nfour\nfive (last of the old file)\nsix (new file)\n"
    );

    append_cri(&path, &[(&stamp(10), "stderr", "F", "bye")]);
    b.set("ns", "p", "app", |c| c.running = false);
    let rest = tokio::time::timeout(HANG_GUARD, body.collect())
        .await
        .expect("follow did not end after the container exited")
        .unwrap()
        .to_bytes();
    got.push_str(&String::from_utf8_lossy(&rest));
    assert!(got.ends_with("six (new file)\nbye\n"), "{got:?}");
}

#[tokio::test]
async fn follow_ends_when_the_container_restarted_into_a_new_log() {
    let agent = start().await;
    write_logs(&agent);
    let resp = agent
        .get_as(Some(&agent.client), "/containerLogs/ns/p/app?follow=1")
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut got = String::new();
    read_until(&mut body, &mut got, "three\n").await;
    agent.backend.set("ns", "p", "app", |c| c.restart_count = 2);
    tokio::time::timeout(HANG_GUARD, body.collect())
        .await
        .expect("follow did not end after the restart")
        .unwrap();
}

fn exec_path(container: &str, command: &[&str], flags: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for c in command {
        q.append_pair("command", c);
    }
    format!("/exec/ns/p/{container}?{}&{flags}", q.finish())
}

fn running(agent: &Agent) {
    agent.backend.add(
        "ns",
        "p",
        "app",
        FakeContainer {
            restart_count: 0,
            running: true,
        },
    );
}

#[tokio::test]
async fn exec_separates_stdout_and_stderr_and_reports_the_exit_code() {
    let agent = start().await;
    running(&agent);
    for protocol in ["v5.channel.k8s.io", "v4.channel.k8s.io"] {
        let path = exec_path(
            "app",
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            "stdout=1&stderr=1",
        );
        let (ws, chosen) = agent.websocket(&path, protocol).await.unwrap();
        assert_eq!(chosen, protocol);
        let out = exec_session(ws, vec![]).await;
        assert_eq!(out.stdout, b"out\n", "{protocol}");
        assert_eq!(out.stderr, b"err\n", "{protocol}");
        assert_eq!(out.status["status"], "Failure", "{protocol}");
        assert_eq!(out.status["reason"], "NonZeroExitCode");
        assert_eq!(out.status["details"]["causes"][0]["message"], "3");
    }
    // The kubelet's parameter names, and success.
    let path = exec_path("app", &["true"], "output=1&error=1");
    let (ws, _) = agent
        .websocket(&path, "v5.channel.k8s.io,v4.channel.k8s.io")
        .await
        .unwrap();
    let out = exec_session(ws, vec![]).await;
    assert_eq!(out.status, json!({"metadata": {}, "status": "Success"}));
}

#[tokio::test]
async fn exec_passes_stdin_until_v5_closes_it() {
    let agent = start().await;
    running(&agent);
    let path = exec_path("app", &["cat"], "stdin=1&stdout=1&stderr=1");
    let (ws, _) = agent.websocket(&path, "v5.channel.k8s.io").await.unwrap();
    let out = exec_session(
        ws,
        vec![b"\x00hello ".to_vec(), b"\x00world".to_vec(), vec![255, 0]],
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello world");
    assert_eq!(out.status["status"], "Success");
}

#[tokio::test]
async fn exec_with_a_tty_runs_on_a_terminal_and_forwards_resizes() {
    let agent = start().await;
    running(&agent);
    let path = exec_path(
        "app",
        &["sh", "-c", "tty; read line; echo got $line"],
        "stdin=1&stdout=1&tty=1",
    );
    let (ws, _) = agent.websocket(&path, "v5.channel.k8s.io").await.unwrap();
    let out = exec_session(
        ws,
        vec![
            b"\x04{\"Width\":120,\"Height\":40}".to_vec(),
            b"\x00abc\n".to_vec(),
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text:?}");
    // A terminal ends lines with \r\n.
    assert!(text.contains("got abc\r\n"), "{text:?}");
    assert!(out.stderr.is_empty());
    assert_eq!(out.status["status"], "Success");
    assert_eq!(*agent.backend.resizes.lock().unwrap(), [(120, 40)]);
    assert!(agent.backend.execs.lock().unwrap()[0].tty);
}

#[tokio::test]
async fn server_shutdown_ends_running_exec_sessions() {
    let agent = start().await;
    running(&agent);
    let path = exec_path("app", &["sleep", "1000"], "stdout=1");
    let (ws, _) = agent.websocket(&path, "v5.channel.k8s.io").await.unwrap();
    agent.stop.send(true).unwrap();
    let out = exec_session(ws, vec![]).await;
    assert_eq!(
        out.status,
        Value::Null,
        "no exit status: the command was cut off"
    );
}

#[tokio::test]
async fn backend_refusals_arrive_as_a_failure_status_after_the_upgrade() {
    let agent = start().await;
    running(&agent);
    agent.backend.add(
        "ns",
        "p",
        "stopped",
        FakeContainer {
            restart_count: 0,
            running: false,
        },
    );
    for (container, reason, want) in [
        ("nope", "NotFound", "\"nope\""),
        ("stopped", "BadRequest", "is not running"),
    ] {
        let path = exec_path(container, &["true"], "stdout=1");
        let (ws, _) = agent.websocket(&path, "v5.channel.k8s.io").await.unwrap();
        let out = exec_session(ws, vec![]).await;
        assert_eq!(out.status["status"], "Failure", "{container}");
        assert_eq!(out.status["reason"], reason, "{container}");
        let message = out.status["message"].as_str().unwrap();
        assert!(message.contains(want), "{container}: {message}");
    }
}

#[tokio::test]
async fn malformed_exec_requests_are_plain_http_errors() {
    let agent = start().await;
    running(&agent);
    let ok = exec_path("app", &["true"], "stdout=1");
    let cases: Vec<(String, &str, u16, &str)> = vec![
        (
            "/exec/ns/p/app?stdout=1".into(),
            "v5.channel.k8s.io",
            400,
            "at least one command",
        ),
        (ok.clone(), "channel.k8s.io", 400, "subprotocols"),
    ];
    for (path, protocol, code, want) in cases {
        let (got, body) = agent.websocket(&path, protocol).await.unwrap_err();
        assert_eq!(got, code, "{path}: {body}");
        assert!(body.contains(want), "{path}: {body}");
    }
    // A SPDY upgrade (kubectl < 1.30) is told what to use instead.
    let tls = agent.connect_as(Some(&agent.client)).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(&ok)
        .header("host", "x")
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("SPDY is not supported"),
        "{body:?}"
    );
}

// ---- Through the apiserver: tug logs / tug exec / kubectl. ----

/// An apiserver, a Node pointing at an agent server signed by the cluster CA, and a pod
/// bound to it.
struct Cluster {
    server: tug_apiserver::testing::TestServer,
    agent: Agent,
    _dir: tempfile::TempDir,
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let server = tug_apiserver::testing::single(dir.path()).await;
    let ca = Ca::load_dir(&server.pki_dir).unwrap();
    let agent = start_with(&ca).await;
    let c = server.client();
    let (code, body) = c
        .post(
            "/api/v1/nodes",
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = c
        .patch(
            "/api/v1/nodes/node-1/status",
            "application/merge-patch+json",
            &json!({"status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.addr.port()}},
            }}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    for (name, containers, node) in [
        (
            "p",
            json!([{"name": "app", "image": "busybox"}]),
            Some("node-1"),
        ),
        (
            "two",
            json!([{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]),
            Some("node-1"),
        ),
        (
            "pending",
            json!([{"name": "app", "image": "busybox"}]),
            None,
        ),
    ] {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name}, "spec": {"containers": containers}});
        if let Some(n) = node {
            pod["spec"]["nodeName"] = json!(n);
        }
        let (code, body) = c.post("/api/v1/namespaces/default/pods", &pod).await;
        assert_eq!(code, 201, "{body}");
    }
    let b = &agent.backend;
    b.add(
        "default",
        "p",
        "app",
        FakeContainer {
            restart_count: 0,
            running: true,
        },
    );
    append_cri(
        &b.path("default", "p", "app", 0),
        &[
            (&stamp(1), "stdout", "F", "hello"),
            (&stamp(2), "stdout", "F", "world"),
        ],
    );
    Cluster {
        server,
        agent,
        _dir: dir,
    }
}

/// Runs `tug` with the cluster's kubeconfig; (exit code, stdout, stderr).
async fn tug(c: &Cluster, args: &[&str]) -> (i32, String, String) {
    let kc = c.server.kubeconfig.to_string_lossy().into_owned();
    let mut argv = vec!["tug", "--kubeconfig", kc.as_str()];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = tokio::time::timeout(HANG_GUARD, tug_ctl::run(argv, &mut out, &mut err))
        .await
        .unwrap_or_else(|_| panic!("tug {args:?} hung"));
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tug_logs_and_exec_go_through_the_apiserver_to_the_agent() {
    let c = cluster().await;
    assert_eq!(
        tug(&c, &["logs", "p"]).await,
        (0, "hello\nworld\n".into(), String::new())
    );
    assert_eq!(
        tug(
            &c,
            &["logs", "pod/p", "-c", "app", "--tail", "1", "--timestamps"]
        )
        .await,
        (0, format!("{} world\n", stamp(2)), String::new())
    );
    let (code, out, err) = tug(
        &c,
        &[
            "exec",
            "p",
            "--",
            "sh",
            "-c",
            "echo hi; echo oops >&2; exit 3",
        ],
    )
    .await;
    assert_eq!((code, out.as_str()), (3, "hi\n"), "{err}");
    assert!(
        err.contains("oops\n") && err.contains("command terminated with exit code 3"),
        "{err}"
    );
    let (code, out, _) = tug(&c, &["exec", "p", "-c", "app", "--", "echo", "a  b"]).await;
    assert_eq!((code, out.as_str()), (0, "a  b\n"));
    // -t: a terminal on the other side (no raw mode here: the test's stdin is no tty).
    let (code, out, err) = tug(
        &c,
        &["exec", "-t", "p", "--", "sh", "-c", "tty; echo x >&2"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("/dev/pts/") && out.ends_with("x\r\n"),
        "{out:?}"
    );

    // kubectl < 1.30 speaks SPDY: told what to use, after the same checks as WebSockets.
    let spdy = |pod: &'static str| {
        let client = c.server.client();
        async move {
            client
                .request(
                    "POST",
                    &format!("/api/v1/namespaces/default/pods/{pod}/exec?command=true&stdout=true"),
                    &[("connection", "Upgrade"), ("upgrade", "SPDY/3.1")],
                    Vec::new(),
                )
                .await
                .unwrap()
        }
    };
    let r = spdy("p").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("SPDY is not supported by tug"),
        "{}",
        r.text()
    );
    let r = spdy("pending").await;
    assert!(
        r.text().contains("does not have a host assigned"),
        "{}",
        r.text()
    );

    // Errors name the problem.
    let cases: &[(&[&str], &str)] = &[
        (&["logs", "nope"], "pods \"nope\" not found"),
        (&["logs", "two"], "choose one of: [a b]"),
        (
            &["logs", "p", "-c", "x"],
            "container x is not valid for pod p",
        ),
        (
            &["logs", "pending"],
            "pod pending does not have a host assigned",
        ),
        (
            &["exec", "pending", "--", "true"],
            "pod pending does not have a host assigned",
        ),
        (&["logs", "two", "-c", "a"], "not found"),
        (&["exec", "two", "-c", "b", "--", "true"], "not found"),
    ];
    for (args, want) in cases {
        let (code, _, err) = tug(&c, args).await;
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }

    // Follow through the proxy: a new line arrives, then the container exits.
    let b = c.agent.backend.clone();
    let path = b.path("default", "p", "app", 0);
    // `tug_ctl::run` is not `Send` (it writes to `dyn Write`): run it beside the writer.
    let kc = c.server.kubeconfig.to_string_lossy().into_owned();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let follow = tug_ctl::run(
        ["tug", "--kubeconfig", &kc, "logs", "-f", "p"],
        &mut out,
        &mut err,
    );
    let writer = async {
        // Most likely after the follower read what was there; the outcome is the same
        // either way.
        tokio::time::sleep(Duration::from_millis(300)).await;
        append_cri(&path, &[(&stamp(3), "stdout", "F", "again")]);
        b.set("default", "p", "app", |c| c.running = false);
    };
    let (code, ()) = tokio::time::timeout(HANG_GUARD, async { tokio::join!(follow, writer) })
        .await
        .expect("tug logs -f did not end");
    let out = String::from_utf8_lossy(&out).into_owned();
    assert_eq!((code, out.as_str()), (0, "hello\nworld\nagain\n"));
    c.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tug_exec_passes_stdin() {
    let c = cluster().await;
    let ctl_config = tug_client::Config::from_kubeconfig_file(&c.server.kubeconfig).unwrap();
    let dialer = tug_ctl::exec::Dialer::new(ctl_config.clone()).unwrap();
    let client = tug_client::Client::new(ctl_config).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut ctx = tug_ctl::Ctx {
        client,
        namespace: "default".into(),
        namespace_explicit: false,
        out: &mut out,
        err: &mut err,
    };
    let args = tug_ctl::exec::Args {
        stdin: true,
        tty: false,
        pod: "p".into(),
        container: None,
        command: vec!["cat".into()],
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(b"from stdin".to_vec()).await.unwrap();
    drop(tx);
    let code = tokio::time::timeout(
        HANG_GUARD,
        tug_ctl::exec::session(&mut ctx, &dialer, "p", "app", &args, Some(rx), false),
    )
    .await
    .expect("exec with stdin hung")
    .unwrap();
    assert_eq!(code, 0);
    assert_eq!(String::from_utf8_lossy(&out), "from stdin");
    c.server.shutdown().await;
}

/// kubectl on PATH (the machine's 1.32), or `None` with the reason printed.
fn kubectl() -> Option<String> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        eprintln!("skipping the kubectl half: no kubectl on PATH");
    }
    found.map(|p| p.to_string_lossy().into_owned())
}

async fn run_kubectl(
    bin: &str,
    kubeconfig: &Path,
    args: &[&str],
    stdin: &[u8],
) -> (i32, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(HANG_GUARD, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} hung"))
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_and_exec_work_against_tug() {
    let Some(bin) = kubectl() else { return };
    let c = cluster().await;
    let kc = c.server.kubeconfig.clone();
    let (code, out, err) = run_kubectl(&bin, &kc, &["logs", "p"], b"").await;
    assert_eq!((code, out.as_str()), (0, "hello\nworld\n"), "{err}");
    let (code, out, err) = run_kubectl(&bin, &kc, &["logs", "p", "--tail=1"], b"").await;
    assert_eq!((code, out.as_str()), (0, "world\n"), "{err}");

    let (code, out, err) = run_kubectl(
        &bin,
        &kc,
        &[
            "exec",
            "p",
            "--",
            "sh",
            "-c",
            "echo hi; echo oops >&2; exit 3",
        ],
        b"",
    )
    .await;
    assert_eq!((code, out.as_str()), (3, "hi\n"), "{err}");
    assert!(err.contains("oops"), "{err}");
    let (code, out, err) =
        run_kubectl(&bin, &kc, &["exec", "-i", "p", "--", "cat"], b"piped in").await;
    assert_eq!((code, out.as_str()), (0, "piped in"), "{err}");
    // A wrong container: kubectl's WebSocket attempt fails, it falls back to SPDY, and
    // the apiserver's checks still name the real problem.
    let (code, _, err) = run_kubectl(&bin, &kc, &["exec", "p", "-c", "x", "--", "true"], b"").await;
    assert_ne!(code, 0);
    assert!(err.contains("container x is not valid for pod p"), "{err}");
    // A refusal only the agent knows (the container is not on it) reaches kubectl as is.
    let (code, _, err) =
        run_kubectl(&bin, &kc, &["exec", "two", "-c", "b", "--", "true"], b"").await;
    assert_ne!(code, 0);
    assert!(
        err.contains("\"b\" in pod \"two\"") && !err.contains("SPDY"),
        "{err}"
    );

    // logs -f streams until the container exits.
    let b = c.agent.backend.clone();
    let path = b.path("default", "p", "app", 0);
    let writer = async {
        // Most likely after kubectl read what was there; the outcome is the same either way.
        tokio::time::sleep(Duration::from_millis(500)).await;
        append_cri(&path, &[(&stamp(3), "stdout", "F", "again")]);
        b.set("default", "p", "app", |c| c.running = false);
    };
    let ((code, out, err), ()) =
        tokio::join!(run_kubectl(&bin, &kc, &["logs", "-f", "p"], b""), writer);
    assert_eq!((code, out.as_str()), (0, "hello\nworld\nagain\n"), "{err}");
    c.server.shutdown().await;
}
