//! The agent's HTTPS endpoint for the apiserver: container logs and exec, as the kubelet.
//!
//! Paths are the kubelet's, so the apiserver proxies `pods/{name}/log` and
//! `pods/{name}/exec` here exactly as Kubernetes does:
//!
//! - `GET /containerLogs/{ns}/{pod}/{container}?follow&previous&tailLines&timestamps&
//!   sinceSeconds&sinceTime&limitBytes`: the container's CRI log file as plain text
//!   ([`logs`]).
//! - `GET|POST /exec/{ns}/{pod}/{container}?command=..&command=..&stdin&stdout&stderr&tty`
//!   (also the kubelet's `input`/`output`/`error` spellings): a WebSocket speaking the
//!   `v5.channel.k8s.io` / `v4.channel.k8s.io` subprotocols ([`exec`]).
//!
//! Every connection must present a client certificate signed by the cluster CA
//! ([`tls_config`]), and its identity must be in group `system:masters` (the apiserver's
//! `kubelet-client` certificate and the admin): other nodes' certificates are refused, so
//! one node cannot read another node's logs or run commands in its pods.
//!
//! What the containers are is not this module's business: the agent implements
//! [`PodBackend`] with real containers; tests use a fake.

pub mod exec;
pub mod logs;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures::future::BoxFuture;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;
use tug_pki::{CertKey, Identity};

/// The group whose members may read logs and exec (the apiserver's kubelet-client cert).
pub const AUTHORIZED_GROUP: &str = "system:masters";
/// The kubelet's port, used when a Node does not say otherwise.
pub const DEFAULT_PORT: u16 = 10250;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections beyond this wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 1024;

/// Why the backend cannot serve a request: the HTTP status of a log answer; for exec, the
/// reason and code of the `Failure` sent on the status channel (see [`exec`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// 404: no such pod or container on this node.
    #[error("{0}")]
    NotFound(String),
    /// 400: the request cannot be served as asked (e.g. `container "x" in pod "y" is
    /// waiting to start: ContainerCreating`, no previous instance).
    #[error("{0}")]
    BadRequest(String),
    /// 500: the runtime failed.
    #[error("{0}")]
    Internal(String),
}

/// A command to run in a running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// argv, never empty.
    pub command: Vec<String>,
    /// Whether the client sends stdin (else the process gets /dev/null or a closed pipe).
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Run on a terminal: `stdout` is the pty master and `stderr` is `None`.
    pub tty: bool,
}

/// Sets a terminal's size: (columns, rows).
pub type Resize = Box<dyn Fn(u16, u16) -> std::io::Result<()> + Send + Sync>;

/// A process started by [`PodBackend::exec`].
///
/// Dropping it (the client went away) must end the process, or at least not leak it: with
/// a tty, closing the pty master hangs it up.
pub struct ExecSession {
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Sets the terminal size (columns, rows); `None` without a tty.
    pub resize: Option<Resize>,
    /// Resolves to the exit code (128 + signal for a signal) once the process ended.
    pub exit: BoxFuture<'static, Result<i32, BackendError>>,
}

/// What the server needs from the agent. Implemented by the agent with real containers
/// (tug-runtime's exec), by tests with local processes.
pub trait PodBackend: Send + Sync + 'static {
    /// The CRI log file of the container's current instance, or of the one before it when
    /// `previous` (`<root>/logs/<ns>_<pod>_<uid>/<container>/<restartCount>.log`).
    fn log_path(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<PathBuf, BackendError>;

    /// Whether the container's current instance is running. `follow` ends once it is not
    /// (or once [`PodBackend::log_path`] names another file: the container restarted),
    /// as the kubelet's does.
    fn is_running(&self, ns: &str, pod: &str, container: &str) -> bool;

    /// Starts `req.command` in the running container.
    fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        req: ExecRequest,
    ) -> BoxFuture<'_, Result<ExecSession, BackendError>>;
}

/// The rustls config of the agent's port: `serving` (its SANs must hold the node's
/// InternalIP, which is what the apiserver dials), client certificates required and
/// verified against the cluster CA, HTTP/1.1 only (WebSocket upgrades).
pub fn tls_config(
    serving: &CertKey,
    ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, tug_pki::tls::Error> {
    tug_pki::server_config(serving, Some(ca_pem), true, &[b"http/1.1"])
}

/// Serves the logs/exec endpoints on `listener` until `shutdown` flips to `true`; then
/// every open connection (follows, exec sessions) is closed.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    backend: Arc<dyn PodBackend>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let app = router(backend, shutdown.clone());
    let mut conns = JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("logs/exec server: accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        conns.spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!("logs/exec server: TLS handshake with {peer} failed: {e}");
                    return;
                }
                Err(_) => return,
            };
            let identity =
                tug_pki::identity_from_peer_certificates(tls.get_ref().1.peer_certificates())
                    .ok()
                    .flatten();
            let svc = app.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(identity.clone()));
                req
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(svc))
                .await
            {
                tracing::debug!("logs/exec connection from {peer} ended: {e}");
            }
        });
    }
    conns.shutdown().await;
}

/// The server's shutdown signal, for work that outlives its connection.
#[derive(Clone)]
pub(crate) struct Shutdown(pub(crate) watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once the server shuts down (or its owner is gone).
    pub(crate) async fn wait(mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The identity of the connection's client certificate.
#[derive(Clone)]
struct Peer(Option<Identity>);

/// The routes without TLS (tests drive it directly too).
fn router(backend: Arc<dyn PodBackend>, shutdown: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(logs::handle))
        .route("/exec/{ns}/{pod}/{container}", any(exec::handle))
        .fallback(|uri: http::Uri| async move {
            status_response(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("the node agent serves no {}", uri.path()),
            )
        })
        .layer(middleware::from_fn(authorize))
        // Exec sessions outlive their HTTP connection (it was upgraded): they watch this.
        .layer(axum::Extension(Shutdown(shutdown)))
        .with_state(backend)
}

async fn authorize(req: Request, next: Next) -> Response {
    let user = req.extensions().get::<Peer>().and_then(|p| p.0.clone());
    match user {
        Some(id) if id.groups.iter().any(|g| g == AUTHORIZED_GROUP) => next.run(req).await,
        Some(id) => status_response(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "user {:?} may not use the node agent's logs/exec endpoint; only group {AUTHORIZED_GROUP} (the apiserver's kubelet-client certificate) may",
                id.user
            ),
        ),
        None => status_response(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "a client certificate signed by the cluster CA is required",
        ),
    }
}

/// A Kubernetes `Status` failure response.
pub(crate) fn status_response(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut resp = (code, body.to_string()).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

impl IntoResponse for BackendError {
    fn into_response(self) -> Response {
        match self {
            BackendError::NotFound(m) => status_response(StatusCode::NOT_FOUND, "NotFound", &m),
            BackendError::BadRequest(m) => {
                status_response(StatusCode::BAD_REQUEST, "BadRequest", &m)
            }
            BackendError::Internal(m) => status_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("Internal error occurred: {m}"),
            ),
        }
    }
}

/// A boolean query flag as the kubelet reads it: `1`, `true`, `True`; absent = false.
pub(crate) fn flag(v: Option<&str>) -> Result<bool, String> {
    match v {
        None => Ok(false),
        Some("1" | "true" | "True" | "TRUE" | "") => Ok(true),
        Some("0" | "false" | "False" | "FALSE") => Ok(false),
        Some(other) => Err(format!("{other:?} is not a boolean; use true or false")),
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
