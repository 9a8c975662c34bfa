//! Probe tests against local servers on 127.0.0.1:0 and a fake runtime. Servers answer
//! in lockstep with the test (each request waits for the test's reply), so threshold
//! tests check outcomes in order without depending on timing.

use super::*;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::StreamBody;
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tug_proto::core::v1::{
    ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, Probe, TCPSocketAction,
};
use tug_runtime::{ContainerConfig, ContainerState, ExecProcess};

/// How long a test waits for something that must happen before declaring it hung.
const HANG: Duration = Duration::from_secs(20);

// ---- a fake runtime -------------------------------------------------------------

/// Records exec requests and refuses them all (its container is gone).
#[derive(Default)]
struct FakeRuntime {
    execs: Mutex<Vec<(String, ExecConfig)>>,
}

impl FakeRuntime {
    fn exec_calls(&self) -> Vec<(String, ExecConfig)> {
        self.execs.lock().unwrap().clone()
    }
}

impl Runtime for FakeRuntime {
    fn run(&self, cfg: ContainerConfig) -> BoxFuture<'_, tug_runtime::Result<ContainerState>> {
        Box::pin(async move { Err(tug_runtime::Error::NotFound(cfg.id)) })
    }
    fn state(&self, id: &str) -> BoxFuture<'_, tug_runtime::Result<ContainerState>> {
        let id = id.to_string();
        Box::pin(async move { Err(tug_runtime::Error::NotFound(id)) })
    }
    fn wait(&self, id: &str) -> BoxFuture<'_, tug_runtime::Result<ContainerState>> {
        let id = id.to_string();
        Box::pin(async move { Err(tug_runtime::Error::NotFound(id)) })
    }
    fn kill(&self, _id: &str, _signal: i32) -> BoxFuture<'_, tug_runtime::Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn remove(&self, _id: &str) -> BoxFuture<'_, tug_runtime::Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn list(&self) -> BoxFuture<'_, tug_runtime::Result<Vec<(String, ContainerState)>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn exec(&self, id: &str, cfg: ExecConfig) -> BoxFuture<'_, tug_runtime::Result<ExecProcess>> {
        self.execs.lock().unwrap().push((id.to_string(), cfg));
        let id = id.to_string();
        Box::pin(async move { Err(tug_runtime::Error::NotFound(id)) })
    }
}

fn ctx(runtime: Arc<FakeRuntime>, ports: Vec<ContainerPort>) -> ProbeContext {
    ProbeContext {
        pod_ip: "127.0.0.1".into(),
        ports,
        container_id: "ctr-1".into(),
        runtime,
    }
}

fn plain_ctx() -> ProbeContext {
    ctx(Arc::new(FakeRuntime::default()), Vec::new())
}

// ---- a lockstep HTTP server ----------------------------------------------------

enum Reply {
    Status(u16),
    Redirect(String),
    /// Keep the connection open and never answer.
    Hang,
}

/// Every request is handed to the test with a channel for its reply.
struct Scripted {
    addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<(String, oneshot::Sender<Reply>)>,
    task: JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, requests) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                serve_one(s, tx).await;
                            }
                        }
                        None => serve_one(stream, tx).await,
                    }
                });
            }
        });
        Scripted {
            addr,
            requests,
            task,
        }
    }

    /// Waits for the next request, answers it, and returns its head.
    async fn answer(&mut self, reply: Reply) -> String {
        let (head, tx) = tokio::time::timeout(HANG, self.requests.recv())
            .await
            .expect("a probe request")
            .expect("the server is running");
        let _ = tx.send(reply);
        head
    }
}

async fn serve_one<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    tx: mpsc::UnboundedSender<(String, oneshot::Sender<Reply>)>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let (reply_tx, reply_rx) = oneshot::channel();
    if tx
        .send((String::from_utf8_lossy(&head).into_owned(), reply_tx))
        .is_err()
    {
        return;
    }
    let response = match reply_rx.await {
        Ok(Reply::Status(code)) => {
            format!("HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        }
        Ok(Reply::Redirect(to)) => format!(
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Ok(Reply::Hang) => {
            std::future::pending::<()>().await;
            return;
        }
        Err(_) => return,
    };
    let _ = s.write_all(response.as_bytes()).await;
    let _ = s.shutdown().await;
}

fn http_probe(port: impl Into<IntOrString>, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: port.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tcp_probe(port: u16) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port.into()),
            host: None,
        }),
        ..Default::default()
    }
}

/// Runs one probe in the background (it must be answered by the test's server).
fn spawn_probe(probe: Probe, ctx: ProbeContext, timeout: Duration) -> JoinHandle<ProbeOutcome> {
    tokio::spawn(async move { probe_with_timeout(&probe, &ctx.target(), timeout).await })
}

async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

// ---- one probe ------------------------------------------------------------------

#[test]
fn ports_resolve_by_number_name_or_numeric_string() {
    let ports = vec![ContainerPort {
        name: Some("http".into()),
        container_port: 8080,
        ..Default::default()
    }];
    let cases: Vec<(IntOrString, Result<u16, &str>)> = vec![
        (IntOrString::Int(80), Ok(80)),
        ("http".into(), Ok(8080)),
        ("9090".into(), Ok(9090)),
        ("metrics".into(), Err("port metrics not found")),
        (IntOrString::Int(0), Err("invalid port number: 0")),
        (IntOrString::Int(70000), Err("invalid port number: 70000")),
    ];
    for (port, want) in cases {
        assert_eq!(
            resolve_port(&port, &ports),
            want.map_err(String::from),
            "{port}"
        );
    }
}

#[tokio::test]
async fn http_get_succeeds_on_2xx_and_3xx_and_fails_on_500_with_kubelet_headers() {
    let mut server = Scripted::start(None).await;
    let mut probe = http_probe("web", "healthz?deep=1");
    probe.http_get.as_mut().unwrap().http_headers = vec![HTTPHeader {
        name: "X-Custom".into(),
        value: "yes".into(),
    }];
    let ports = vec![ContainerPort {
        name: Some("web".into()),
        container_port: i32::from(server.addr.port()),
        ..Default::default()
    }];
    let ctx = ctx(Arc::new(FakeRuntime::default()), ports);

    let p = spawn_probe(probe.clone(), ctx.clone(), HANG);
    let head = server.answer(Reply::Status(200)).await;
    assert_eq!(p.await.unwrap(), ProbeOutcome::Success);
    let head = head.to_ascii_lowercase();
    assert!(
        head.starts_with("get /healthz?deep=1 http/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("user-agent: kube-probe/"), "{head}");
    assert!(head.contains("accept: */*"), "{head}");
    assert!(head.contains("x-custom: yes"), "{head}");
    assert!(
        head.contains(&format!("host: 127.0.0.1:{}", server.addr.port())),
        "{head}"
    );

    let p = spawn_probe(probe.clone(), ctx.clone(), HANG);
    server.answer(Reply::Status(500)).await;
    assert_eq!(
        p.await.unwrap(),
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 500".into())
    );

    let p = spawn_probe(probe.clone(), ctx.clone(), HANG);
    server.answer(Reply::Status(399)).await;
    assert_eq!(p.await.unwrap(), ProbeOutcome::Success);
}

#[tokio::test]
async fn http_get_follows_redirects_on_the_same_host_only() {
    let mut server = Scripted::start(None).await;
    let probe = http_probe(i32::from(server.addr.port()), "/");

    let p = spawn_probe(probe.clone(), plain_ctx(), HANG);
    server.answer(Reply::Redirect("/broken".into())).await;
    let head = server.answer(Reply::Status(503)).await;
    assert!(head.starts_with("GET /broken "), "{head}");
    assert_eq!(
        p.await.unwrap(),
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 503".into())
    );

    // Elsewhere: not followed, and a redirect counts as success.
    let p = spawn_probe(probe, plain_ctx(), HANG);
    server
        .answer(Reply::Redirect("http://example.invalid/".into()))
        .await;
    assert_eq!(p.await.unwrap(), ProbeOutcome::Success);
}

#[tokio::test]
async fn http_get_that_gets_no_answer_fails_at_its_timeout() {
    let mut server = Scripted::start(None).await;
    let probe = http_probe(i32::from(server.addr.port()), "/slow");
    let p = spawn_probe(probe, plain_ctx(), Duration::from_millis(200));
    server.answer(Reply::Hang).await;
    let ProbeOutcome::Failure(msg) = p.await.unwrap() else {
        panic!("a timeout is a failure")
    };
    assert_eq!(
        msg,
        format!(
            "Get \"http://127.0.0.1:{}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            server.addr.port()
        )
    );
}

#[tokio::test]
async fn probes_of_a_closed_port_fail_with_connection_refused() {
    let port = closed_port().await;
    let outcome = probe_once(&http_probe(i32::from(port), "/"), &plain_ctx().target()).await;
    assert_eq!(
        outcome,
        ProbeOutcome::Failure(format!(
            "Get \"http://127.0.0.1:{port}/\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
    let outcome = probe_once(&tcp_probe(port), &plain_ctx().target()).await;
    assert_eq!(
        outcome,
        ProbeOutcome::Failure(format!(
            "dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
}

#[tokio::test]
async fn https_probes_do_not_verify_the_certificate() {
    let ca = tug_pki::Ca::generate("some-ca-nobody-trusts").unwrap();
    let cert = ca.issue_server("probe-target", &[], &[]).unwrap();
    let config = tug_pki::tls::server_config(&cert, None, false, &[b"http/1.1"]).unwrap();
    let mut server = Scripted::start(Some(tokio_rustls::TlsAcceptor::from(config))).await;
    let mut probe = http_probe(i32::from(server.addr.port()), "/tls");
    probe.http_get.as_mut().unwrap().scheme = Some("HTTPS".into());
    let p = spawn_probe(probe, plain_ctx(), HANG);
    let head = server.answer(Reply::Status(204)).await;
    assert!(head.starts_with("GET /tls "), "{head}");
    assert_eq!(p.await.unwrap(), ProbeOutcome::Success);
}

#[tokio::test]
async fn tcp_socket_probes_succeed_when_something_listens() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let outcome = probe_once(&tcp_probe(port), &plain_ctx().target()).await;
    assert_eq!(outcome, ProbeOutcome::Success);
}

#[tokio::test]
async fn unresolvable_ports_and_empty_probes_are_errors_not_failures() {
    let probe = http_probe("nope", "/");
    assert_eq!(
        probe_once(&probe, &plain_ctx().target()).await,
        ProbeOutcome::Error("port nope not found".into())
    );
    let ProbeOutcome::Error(msg) = probe_once(&Probe::default(), &plain_ctx().target()).await
    else {
        panic!("no handler is an error")
    };
    assert!(msg.contains("no handler"), "{msg}");
}

#[tokio::test]
async fn exec_probes_run_a_plain_command_through_the_runtime() {
    let runtime = Arc::new(FakeRuntime::default());
    let probe = Probe {
        exec: Some(ExecAction {
            command: vec!["cat".into(), "/tmp/healthy".into()],
        }),
        ..Default::default()
    };
    let outcome = probe_once(&probe, &ctx(runtime.clone(), Vec::new()).target()).await;
    assert_eq!(
        outcome,
        ProbeOutcome::Error("container ctr-1 not found".into())
    );
    let calls = runtime.exec_calls();
    assert_eq!(calls.len(), 1);
    let (id, cfg) = &calls[0];
    assert_eq!(id, "ctr-1");
    assert_eq!(cfg.args, ["cat", "/tmp/healthy"]);
    assert!(!cfg.tty && !cfg.stdin);
}

#[test]
fn exec_results_map_to_outcomes_like_the_kubelet() {
    let cmd = vec!["check".to_string()];
    let cases: Vec<(i32, &str, &str, ProbeOutcome)> = vec![
        (0, "fine\n", "", ProbeOutcome::Success),
        (
            1,
            "",
            "cat: /tmp/healthy: No such file or directory\n",
            ProbeOutcome::Failure("cat: /tmp/healthy: No such file or directory".into()),
        ),
        (
            2,
            "",
            "",
            ProbeOutcome::Failure("command \"check\" exited with code 2".into()),
        ),
    ];
    for (code, out, err, want) in cases {
        assert_eq!(
            exec_outcome(&cmd, code, out.as_bytes(), err.as_bytes()),
            want
        );
    }
}

#[tokio::test]
async fn exec_output_is_read_to_the_end_but_kept_short() {
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", "head -c 100000 /dev/zero; echo done >&2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
    let err = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
    let (out, err) = tokio::join!(read_limited(out), read_limited(err));
    assert!(child.wait().await.unwrap().success());
    assert_eq!(out.len(), MAX_OUTPUT);
    assert_eq!(err, b"done\n");
}

// ---- gRPC -----------------------------------------------------------------------

/// A cleartext HTTP/2 server answering grpc.health.v1.Health/Check with `status`, or
/// with grpc-status `code` in a trailers-only response when `code` is not 0.
async fn grpc_server(status: u8, code: u32) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: ::http::Request<hyper::body::Incoming>| async move {
                        assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                        let _ = req.into_body().collect().await;
                        let mut trailers = ::http::HeaderMap::new();
                        trailers.insert("grpc-status", code.to_string().parse().unwrap());
                        let frames: Vec<Result<Frame<Bytes>, Infallible>> = if code == 0 {
                            vec![
                                Ok(Frame::data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]))),
                                Ok(Frame::trailers(trailers)),
                            ]
                        } else {
                            vec![Ok(Frame::trailers(trailers))]
                        };
                        let body = StreamBody::new(futures::stream::iter(frames));
                        let resp = ::http::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(body)
                            .unwrap();
                        Ok::<_, Infallible>(resp)
                    },
                );
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[tokio::test]
async fn grpc_probes_speak_the_health_protocol() {
    let probe = |port: u16| Probe {
        grpc: Some(GRPCAction {
            port: i32::from(port),
            service: Some("db".into()),
        }),
        ..Default::default()
    };
    let (addr, serving) = grpc_server(1, 0).await;
    assert_eq!(
        probe_once(&probe(addr.port()), &plain_ctx().target()).await,
        ProbeOutcome::Success
    );
    let (addr, not_serving) = grpc_server(2, 0).await;
    assert_eq!(
        probe_once(&probe(addr.port()), &plain_ctx().target()).await,
        ProbeOutcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    let (addr, unimplemented) = grpc_server(0, 12).await;
    let ProbeOutcome::Failure(msg) = probe_once(&probe(addr.port()), &plain_ctx().target()).await
    else {
        panic!("unimplemented is a failure")
    };
    assert!(
        msg.starts_with("this server doesn't implement the grpc health protocol"),
        "{msg}"
    );
    for t in [serving, not_serving, unimplemented] {
        t.abort();
    }
    let port = closed_port().await;
    let ProbeOutcome::Failure(msg) = probe_once(&probe(port), &plain_ctx().target()).await else {
        panic!("a closed port is a failure")
    };
    assert!(
        msg.starts_with("timeout: failed to connect service"),
        "{msg}"
    );
}

// ---- the worker -----------------------------------------------------------------

fn fast(success: u32, failure: u32) -> ProbeTiming {
    ProbeTiming {
        initial_delay: Duration::ZERO,
        period: Duration::from_millis(10),
        timeout: HANG,
        success_threshold: success,
        failure_threshold: failure,
    }
}

fn failure_500() -> ProbeState {
    ProbeState::Failure {
        message: "HTTP probe failed with statuscode: 500".into(),
    }
}

/// Answers one probe and waits until the worker has acted on it (its next request has
/// arrived, which it sends only after processing this one), then returns the state.
struct Lockstep {
    server: Scripted,
    pending: Option<oneshot::Sender<Reply>>,
}

impl Lockstep {
    async fn new() -> Lockstep {
        Lockstep {
            server: Scripted::start(None).await,
            pending: None,
        }
    }

    async fn next_request(&mut self) {
        let (_, tx) = tokio::time::timeout(HANG, self.server.requests.recv())
            .await
            .expect("a probe request")
            .expect("the server is running");
        self.pending = Some(tx);
    }

    async fn step(&mut self, status: u16, worker: &ProbeWorker) -> ProbeState {
        if self.pending.is_none() {
            self.next_request().await;
        }
        let _ = self.pending.take().unwrap().send(Reply::Status(status));
        self.next_request().await;
        worker.state()
    }
}

#[tokio::test]
async fn readiness_flips_only_after_threshold_results_in_a_row() {
    let mut ls = Lockstep::new().await;
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let worker = ProbeWorker::start_with_timing(
        ProbeKind::Readiness,
        http_probe(i32::from(ls.server.addr.port()), "/ready"),
        fast(2, 2),
        plain_ctx(),
        WorkerOptions {
            started: None,
            reports: Some(reports_tx),
        },
    );
    assert_eq!(worker.state(), ProbeState::Unknown);
    let script = [
        (500, ProbeState::Unknown),
        (200, ProbeState::Unknown),
        (500, ProbeState::Unknown),
        (500, failure_500()),
        (200, failure_500()),
        (200, ProbeState::Success),
        (500, ProbeState::Success),
        (200, ProbeState::Success),
    ];
    for (i, (status, want)) in script.into_iter().enumerate() {
        assert_eq!(
            ls.step(status, &worker).await,
            want,
            "after answer {i} ({status})"
        );
    }
    // Readiness keeps probing after failures; every failed probe was reported.
    let mut failed = 0;
    while let Ok(r) = reports.try_recv() {
        assert_eq!(
            r.message(),
            "Readiness probe failed: HTTP probe failed with statuscode: 500"
        );
        failed += 1;
    }
    assert_eq!(failed, 4);
}

#[tokio::test]
async fn liveness_failure_is_final_for_the_container_attempt() {
    let mut ls = Lockstep::new().await;
    let worker = ProbeWorker::start_with_timing(
        ProbeKind::Liveness,
        http_probe(i32::from(ls.server.addr.port()), "/live"),
        fast(1, 3),
        plain_ctx(),
        WorkerOptions::default(),
    );
    assert_eq!(ls.step(500, &worker).await, ProbeState::Unknown);
    assert_eq!(ls.step(200, &worker).await, ProbeState::Success);
    assert_eq!(ls.step(500, &worker).await, ProbeState::Success);
    assert_eq!(ls.step(500, &worker).await, ProbeState::Success);
    // The third failure in a row: answer it and watch the state change.
    let mut rx = worker.subscribe();
    let _ = ls.pending.take().unwrap().send(Reply::Status(500));
    tokio::time::timeout(HANG, rx.wait_for(|s| *s == failure_500()))
        .await
        .expect("liveness fails after 3 failures")
        .unwrap();
    // On hold: no more probes (a restarted container gets a new worker).
    let more = tokio::time::timeout(Duration::from_millis(300), ls.server.requests.recv()).await;
    assert!(more.is_err(), "a failed liveness probe must stop probing");
    assert_eq!(worker.state(), failure_500());
}

#[tokio::test]
async fn liveness_and_readiness_wait_for_the_startup_probe() {
    let mut startup_server = Lockstep::new().await;
    let live_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live_port = live_listener.local_addr().unwrap().port();
    let startup = ProbeWorker::start_with_timing(
        ProbeKind::Startup,
        http_probe(i32::from(startup_server.server.addr.port()), "/started"),
        fast(1, 30),
        plain_ctx(),
        WorkerOptions::default(),
    );
    let liveness = ProbeWorker::start_with_timing(
        ProbeKind::Liveness,
        tcp_probe(live_port),
        fast(1, 3),
        plain_ctx(),
        WorkerOptions {
            started: Some(startup.subscribe()),
            reports: None,
        },
    );
    assert_eq!(
        startup_server.step(500, &startup).await,
        ProbeState::Unknown
    );
    assert_eq!(
        startup_server.step(500, &startup).await,
        ProbeState::Unknown
    );
    assert_eq!(liveness.state(), ProbeState::Unknown);
    // Not a single liveness probe before startup succeeded.
    let early = tokio::time::timeout(Duration::from_millis(50), live_listener.accept()).await;
    assert!(early.is_err(), "liveness ran before startup succeeded");

    let mut started = startup.subscribe();
    let _ = startup_server
        .pending
        .take()
        .unwrap()
        .send(Reply::Status(200));
    tokio::time::timeout(HANG, started.wait_for(|s| *s == ProbeState::Success))
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(HANG, live_listener.accept())
        .await
        .expect("liveness probes once started")
        .unwrap();
    let mut live = liveness.subscribe();
    tokio::time::timeout(HANG, live.wait_for(|s| *s == ProbeState::Success))
        .await
        .unwrap()
        .unwrap();
    // The startup probe is done for good.
    let more = tokio::time::timeout(
        Duration::from_millis(100),
        startup_server.server.requests.recv(),
    )
    .await;
    assert!(more.is_err(), "startup probes stop after success");
    assert_eq!(startup.state(), ProbeState::Success);
}

#[tokio::test]
async fn prober_errors_are_retried_and_never_change_the_state() {
    let runtime = Arc::new(FakeRuntime::default());
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let worker = ProbeWorker::start_with_timing(
        ProbeKind::Liveness,
        Probe {
            exec: Some(ExecAction {
                command: vec!["true".into()],
            }),
            ..Default::default()
        },
        fast(1, 1),
        ctx(runtime.clone(), Vec::new()),
        WorkerOptions {
            started: None,
            reports: Some(reports_tx),
        },
    );
    for _ in 0..2 {
        let r = tokio::time::timeout(HANG, reports.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            r.message(),
            "Liveness probe errored: container ctr-1 not found"
        );
    }
    assert_eq!(worker.state(), ProbeState::Unknown);
    assert!(runtime.exec_calls().len() >= 2 * MAX_PROBE_RETRIES);
}

#[tokio::test]
async fn dropping_a_worker_stops_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let worker = ProbeWorker::start_with_timing(
        ProbeKind::Readiness,
        tcp_probe(port),
        fast(1, 3),
        plain_ctx(),
        WorkerOptions::default(),
    );
    let mut rx: watch::Receiver<ProbeState> = worker.subscribe();
    rx.wait_for(|s| *s == ProbeState::Success).await.unwrap();
    drop(worker);
    // The task (and with it the sender) is gone.
    tokio::time::timeout(HANG, async { while rx.changed().await.is_ok() {} })
        .await
        .expect("the worker's task ends when it is dropped");
}

#[test]
fn timing_defaults_follow_kubernetes() {
    let t = ProbeTiming::from_probe(&Probe::default(), ProbeKind::Readiness);
    assert_eq!(
        t,
        ProbeTiming {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    );
    let p = Probe {
        initial_delay_seconds: Some(30),
        period_seconds: Some(5),
        timeout_seconds: Some(2),
        success_threshold: Some(3),
        failure_threshold: Some(6),
        ..Default::default()
    };
    let live = ProbeTiming::from_probe(&p, ProbeKind::Liveness);
    assert_eq!(
        live.success_threshold, 1,
        "liveness success threshold is always 1"
    );
    assert_eq!(
        ProbeTiming::from_probe(&p, ProbeKind::Readiness).success_threshold,
        3
    );
    assert_eq!(
        live.after_running_for(Duration::from_secs(20))
            .initial_delay,
        Duration::from_secs(10)
    );
    assert_eq!(
        live.after_running_for(Duration::from_secs(60))
            .initial_delay,
        Duration::ZERO
    );
}
