//! `/exec/{ns}/{pod}/{container}`: a command in a container over a WebSocket, with the
//! Kubernetes channel protocol (`v5.channel.k8s.io`, `v4.channel.k8s.io`).
//!
//! Every binary message starts with a channel byte: 0 stdin (client -> server), 1 stdout,
//! 2 stderr, 3 the final status as a `Status` JSON (`Success`, or `Failure` with reason
//! `NonZeroExitCode` and the exit code in `details.causes`), 4 a terminal resize
//! `{"Width":w,"Height":h}` (client -> server). v5 adds 255: `[255, 0]` closes stdin.
//!
//! A malformed request is a plain HTTP error. A backend refusal (no such container, not
//! running, the runtime failed) is answered after the upgrade, as a `Failure` on channel
//! 3 like the kubelet's runtime errors: kubectl (1.30+) retries any failed WebSocket
//! handshake over SPDY, so an HTTP error would reach the user as "SPDY is not
//! supported" instead of the real reason. SPDY is refused with a 400 saying so.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{flag, status_response, BackendError, ExecRequest, ExecSession, PodBackend, Shutdown};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";
/// The subprotocols served, preferred first.
pub const PROTOCOLS: [&str; 2] = [V5, V4];

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const STATUS: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// After the process exited, its output is read until EOF for at most this long: a
/// background child that inherited the pipes must not hold the session open forever.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Parses the exec query: repeated `command`, and the flags under either the API's names
/// (`stdin`, `stdout`, `stderr`) or the kubelet's (`input`, `output`, `error`).
pub fn parse_query(query: &str) -> Result<ExecRequest, String> {
    let mut command = Vec::new();
    let mut flags: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == "command" {
            command.push(v.into_owned());
        } else {
            flags.insert(k.into_owned(), v.into_owned());
        }
    }
    let get = |a: &str, b: &str| -> Result<bool, String> {
        let v = flags.get(a).or_else(|| flags.get(b)).map(String::as_str);
        flag(v).map_err(|e| format!("{a}: {e}"))
    };
    let req = ExecRequest {
        stdin: get("stdin", "input")?,
        stdout: get("stdout", "output")?,
        stderr: get("stderr", "error")?,
        tty: get("tty", "tty")?,
        command,
    };
    if req.command.is_empty() {
        return Err("you must specify at least one command for the container (command=...)".into());
    }
    if !(req.stdin || req.stdout || req.stderr) {
        return Err("you must specify at least one of stdin, stdout, stderr".into());
    }
    if req.tty && req.stderr {
        return Err("stderr cannot be requested with tty: a terminal merges it into stdout; pass stderr=false".into());
    }
    Ok(req)
}

/// The subprotocol to speak: the first offered one we serve.
pub fn negotiate(headers: &HeaderMap) -> Option<&'static str> {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    offered
        .iter()
        .find_map(|o| PROTOCOLS.iter().find(|p| **p == o.as_str()).copied())
}

/// What kind of upgrade a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    WebSocket,
    Spdy,
    None,
}

pub fn upgrade_kind(headers: &HeaderMap) -> Upgrade {
    let up = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if up.split(',').any(|p| p.trim() == "websocket") {
        Upgrade::WebSocket
    } else if up.contains("spdy") {
        Upgrade::Spdy
    } else {
        Upgrade::None
    }
}

/// The message of the 400 answering a SPDY upgrade (kubectl < 1.30 and its fallback).
pub const SPDY_UNSUPPORTED: &str = "exec over SPDY is not supported by tug; use `tug exec`, or kubectl 1.30 or newer (WebSocket exec, the default since 1.31; with 1.30 set KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true)";

pub(crate) async fn handle(
    State(backend): State<Arc<dyn PodBackend>>,
    Extension(shutdown): Extension<Shutdown>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    mut req: Request,
) -> Response {
    let bad = |m: &str| status_response(StatusCode::BAD_REQUEST, "BadRequest", m);
    let exec = match parse_query(req.uri().query().unwrap_or_default()) {
        Ok(e) => e,
        Err(e) => return bad(&e),
    };
    match upgrade_kind(req.headers()) {
        Upgrade::WebSocket => {}
        Upgrade::Spdy => return bad(SPDY_UNSUPPORTED),
        Upgrade::None => {
            return bad("exec needs a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Protocol: v5.channel.k8s.io)")
        }
    }
    let Some(protocol) = negotiate(req.headers()) else {
        return bad(&format!(
            "none of the offered WebSocket subprotocols is supported; offer one of {}",
            PROTOCOLS.join(", ")
        ));
    };
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return bad("the WebSocket upgrade has no Sec-WebSocket-Key header");
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return bad("this connection cannot be upgraded; exec needs HTTP/1.1");
    };
    let command = exec.command.clone();
    let session = backend.exec(&ns, &pod, &container, exec).await;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                // On shutdown the session is dropped, which ends the process.
                tokio::select! {
                    _ = run(ws, protocol == V5, session, command) => {}
                    _ = shutdown.wait() => {}
                }
            }
            Err(e) => tracing::debug!("exec upgrade failed: {e}"),
        }
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    resp
}

/// The final status message (channel 3 payload) for an exit code.
pub fn exit_status(code: i32, command: &[String]) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

fn error_status(e: &BackendError) -> Value {
    let (reason, code, message) = match e {
        BackendError::NotFound(m) => ("NotFound", 404, m.clone()),
        BackendError::BadRequest(m) => ("BadRequest", 400, m.clone()),
        BackendError::Internal(m) => (
            "InternalError",
            500,
            format!("Internal error occurred: {m}"),
        ),
    };
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut b = BytesMut::with_capacity(data.len() + 1);
    b.put_u8(channel);
    b.put_slice(data);
    Message::Binary(b.freeze())
}

/// Copies one output stream into channel `channel` until EOF (a pty master's EIO after
/// the process exited counts as EOF).
async fn pump(
    channel: u8,
    mut reader: Box<dyn AsyncRead + Send + Unpin>,
    tx: mpsc::Sender<Message>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Size {
    width: u16,
    height: u16,
}

/// Runs one session on an upgraded connection.
pub async fn run<S>(
    ws: WebSocketStream<S>,
    v5: bool,
    session: Result<ExecSession, BackendError>,
    command: Vec<String>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut incoming) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        // A normal-closure code: client-go treats any other close (even one without a
        // code) as a broken stream and loses the exit status.
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        let _ = sink.close().await;
    });
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            let _ = out_tx
                .send(frame(STATUS, error_status(&e).to_string().as_bytes()))
                .await;
            drop(out_tx);
            let _ = writer.await;
            return;
        }
    };
    let ExecSession {
        stdin,
        stdout,
        stderr,
        resize,
        exit,
    } = session;
    let mut pumps = tokio::task::JoinSet::new();
    for (channel, reader) in [(STDOUT, stdout), (STDERR, stderr)] {
        if let Some(r) = reader {
            pumps.spawn(pump(channel, r, out_tx.clone()));
        }
    }
    // Client -> process. Ends when the client goes away (or closes the socket).
    let input = async move {
        let mut stdin: Option<Box<dyn AsyncWrite + Send + Unpin>> = stdin;
        while let Some(msg) = incoming.next().await {
            let data: Bytes = match msg {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Text(t)) => Bytes::copy_from_slice(t.as_bytes()),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            match channel {
                STDIN => {
                    if let Some(w) = &mut stdin {
                        if w.write_all(payload).await.is_err() || w.flush().await.is_err() {
                            stdin = None;
                        }
                    }
                }
                RESIZE => {
                    if let (Some(resize), Ok(size)) =
                        (&resize, serde_json::from_slice::<Size>(payload))
                    {
                        if let Err(e) = resize(size.width, size.height) {
                            tracing::debug!("exec resize failed: {e}");
                        }
                    }
                }
                CLOSE if v5 && payload.first() == Some(&STDIN) => {
                    if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
                _ => {}
            }
        }
    };
    tokio::pin!(input);
    let code = tokio::select! {
        code = exit => code,
        // The client left: dropping the session ends the process.
        _ = &mut input => {
            pumps.shutdown().await;
            writer.abort();
            return;
        }
    };
    // Output written just before the exit is still in the pipes.
    let drained = tokio::time::timeout(DRAIN_AFTER_EXIT, async {
        while pumps.join_next().await.is_some() {}
    });
    tokio::select! {
        _ = drained => {}
        _ = &mut input => {}
    }
    pumps.shutdown().await;
    let status = match code {
        Ok(c) => exit_status(c, &command),
        Err(e) => error_status(&e),
    };
    let _ = out_tx
        .send(frame(STATUS, status.to_string().as_bytes()))
        .await;
    drop(out_tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_queries_parse_and_bad_ones_say_why() {
        let ok =
            parse_query("command=sh&command=-c&command=echo%20hi&stdin=true&stdout=1&stderr=1")
                .unwrap();
        assert_eq!(ok.command, ["sh", "-c", "echo hi"]);
        assert!(ok.stdin && ok.stdout && ok.stderr && !ok.tty);
        // The kubelet's spellings.
        let k = parse_query("command=ls&output=1&tty=1&input=1").unwrap();
        assert!(k.stdin && k.stdout && !k.stderr && k.tty);
        for (q, want) in [
            ("stdout=1", "at least one command"),
            ("command=ls", "at least one of stdin"),
            ("command=ls&stdout=1&stderr=1&tty=1", "tty"),
            ("command=ls&stdout=perhaps", "stdout"),
        ] {
            let err = parse_query(q).unwrap_err();
            assert!(err.contains(want), "{q}: {err}");
        }
    }

    #[test]
    fn subprotocols_are_negotiated_from_the_offer() {
        let h = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(v).unwrap(),
            );
            h
        };
        assert_eq!(
            negotiate(&h("v5.channel.k8s.io, v4.channel.k8s.io")),
            Some(V5)
        );
        assert_eq!(
            negotiate(&h("v4.channel.k8s.io,v3.channel.k8s.io")),
            Some(V4)
        );
        assert_eq!(negotiate(&h("channel.k8s.io")), None);
        assert_eq!(negotiate(&HeaderMap::new()), None);
    }

    #[test]
    fn the_status_message_carries_the_exit_code() {
        let cmd = vec!["false".to_string()];
        assert_eq!(exit_status(0, &cmd)["status"], "Success");
        let f = exit_status(3, &cmd);
        assert_eq!(f["reason"], "NonZeroExitCode");
        assert_eq!(f["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(f["details"]["causes"][0]["message"], "3");
    }
}
