//! `pods/{name}/log` and `pods/{name}/exec`: proxied to the node agent of the pod's node,
//! as Kubernetes proxies them to the kubelet.
//!
//! The pod names its node (`spec.nodeName`); the Node names its address
//! (`status.addresses`, InternalIP first) and port
//! (`status.daemonEndpoints.kubeletEndpoint.Port`, default 10250). The apiserver dials it
//! over TLS, verifies the agent's serving certificate against the cluster CA, and
//! presents its `kubelet-client` certificate ([`crate::Options::kubelet_tls`]).
//!
//! Logs stream through (follow included). Exec is a WebSocket (`v5`/`v4.channel.k8s.io`):
//! the client's HTTP/1.1 upgrade is forwarded to the agent and, once both sides switched
//! protocols, bytes are copied both ways. SPDY (kubectl < 1.30) is answered with a 400
//! saying what to use instead, after the same checks as a WebSocket request so that
//! kubectl's SPDY fallback shows the real problem (a wrong container name, ...).
//! `attach` and `portforward` are not served.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tug_store::Read;

use super::{read_object, Req};
use crate::error::{ApiError, Result};
use crate::registry;
use crate::state::AppState;

/// The kubelet's port when a Node does not publish one.
const DEFAULT_KUBELET_PORT: u16 = 10250;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Query parameters of `pods/log` the agent understands.
const LOG_PARAMS: [&str; 7] = [
    "follow",
    "previous",
    "timestamps",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
];

/// The message of the 400 answering SPDY upgrades.
const SPDY_UNSUPPORTED: &str = "exec over SPDY is not supported by tug; use `tug exec`, or kubectl 1.30 or newer (WebSocket exec, the default since 1.31; with 1.30 set KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true)";

pub async fn proxy(state: &AppState, req: Req) -> Result<Response> {
    let sub = req.target.subresource.clone().unwrap_or_default();
    let pod_name = req.target.name().to_string();
    let ns = req.target.namespace.clone().unwrap_or_default();
    let Some((pod, _)) = read_object(state, &req.target.key(), Read::Linearizable).await? else {
        return Err(ApiError::not_found(req.info(), &pod_name));
    };
    if sub != "log" && sub != "exec" {
        return Err(ApiError::bad_request(format!(
            "pods/{sub} is not supported by tug (pod {pod_name:?}); logs and exec are"
        )));
    }
    let container = pick_container(&pod, &pod_name, req.param("container"), sub == "log")?;
    let upgrade = upgrade_kind(&req.headers);
    if sub == "exec" && upgrade == Upgrade::None {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let target = node_target(state, &pod, &pod_name).await?;
    let Some(tls) = state.kubelet_tls.clone() else {
        return Err(ApiError::unavailable(
            "this apiserver has no client certificate for node agents (kubelet-client.crt in its PKI directory); logs and exec are unavailable",
        ));
    };
    let agent = Agent {
        tls,
        target,
        node: pod["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    if sub == "log" {
        let query = log_query(&req);
        let path = format!("/containerLogs/{ns}/{pod_name}/{container}?{query}");
        return agent.logs(&path).await;
    }
    if upgrade == Upgrade::Spdy {
        return Err(ApiError::bad_request(SPDY_UNSUPPORTED));
    }
    let path = format!("/exec/{ns}/{pod_name}/{container}?{}", exec_query(&req));
    agent.exec(&path, req).await
}

/// The agent's query for `pods/log` (the serializer is not `Send`: keep it out of awaits).
fn log_query(req: &Req) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for p in LOG_PARAMS {
        if let Some(v) = req.param(p) {
            q.append_pair(p, v);
        }
    }
    q.finish()
}

/// The agent's query for `pods/exec`: the command in order, and the stream flags.
fn exec_query(req: &Req) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(req.raw_query.as_bytes()) {
        if matches!(
            k.as_ref(),
            "command" | "stdin" | "stdout" | "stderr" | "tty"
        ) {
            q.append_pair(&k, &v);
        }
    }
    q.finish()
}

/// The container a request is for: the named one, which must be in the pod, or the only
/// one. Messages are Kubernetes'.
fn pick_container(pod: &Value, pod_name: &str, asked: Option<&str>, logs: bool) -> Result<String> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    match asked.filter(|c| !c.is_empty()) {
        Some(c) => {
            if containers
                .iter()
                .chain(&init)
                .chain(&ephemeral)
                .any(|n| n == c)
            {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {pod_name}"
                )))
            }
        }
        None => {
            // kubectl's default-container annotation, as `kubectl logs` honours it.
            let annotated = pod["metadata"]["annotations"]
                ["kubectl.kubernetes.io/default-container"]
                .as_str()
                .filter(|c| containers.iter().any(|n| n == c));
            if let Some(c) = annotated {
                return Ok(c.to_string());
            }
            match containers.as_slice() {
                [only] => Ok(only.clone()),
                _ => {
                    let mut message = format!(
                        "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                        containers.join(" ")
                    );
                    if logs && !init.is_empty() {
                        message.push_str(&format!(
                            " or one of the init containers: [{}]",
                            init.join(" ")
                        ));
                    }
                    Err(ApiError::bad_request(message))
                }
            }
        }
    }
}

/// Where a node's agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeTarget {
    host: String,
    port: u16,
}

async fn node_target(state: &AppState, pod: &Value, pod_name: &str) -> Result<NodeTarget> {
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {pod_name} does not have a host assigned"
        )));
    }
    let nodes = registry::lookup("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("the nodes resource is not registered"))?;
    let Some((node, _)) =
        read_object(state, &nodes.key(None, node_name), Read::Linearizable).await?
    else {
        return Err(ApiError::bad_request(format!(
            "node {node_name} of pod {pod_name} does not exist (it was deleted?); the pod's containers cannot be reached"
        )));
    };
    target_of(&node).ok_or_else(|| {
        ApiError::bad_request(format!(
            "node {node_name} of pod {pod_name} publishes no address (status.addresses has no InternalIP, ExternalIP or Hostname); is its agent running?"
        ))
    })
}

/// The address (InternalIP, else ExternalIP, else Hostname) and agent port of a Node.
fn target_of(node: &Value) -> Option<NodeTarget> {
    let addresses = node["status"]["addresses"].as_array()?;
    let host = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|kind| {
            addresses
                .iter()
                .find(|a| a["type"] == *kind)
                .and_then(|a| a["address"].as_str())
                .filter(|a| !a.is_empty())
        })?
        .to_string();
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Some(NodeTarget { host, port })
}

#[derive(Debug, PartialEq, Eq)]
enum Upgrade {
    WebSocket,
    Spdy,
    None,
}

fn upgrade_kind(headers: &http::HeaderMap) -> Upgrade {
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

/// One node agent, reached over mutual TLS.
struct Agent {
    tls: Arc<rustls::ClientConfig>,
    target: NodeTarget,
    node: String,
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

impl Agent {
    fn unreachable(&self, what: impl std::fmt::Display) -> ApiError {
        ApiError::unavailable(format!(
            "cannot reach the node agent of node {} at {}:{}: {what}",
            self.node, self.target.host, self.target.port
        ))
    }

    async fn connect(&self) -> Result<Sender> {
        let addr = (self.target.host.as_str(), self.target.port);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| self.unreachable("connection timed out"))?
            .map_err(|e| self.unreachable(e))?;
        let _ = tcp.set_nodelay(true);
        let name = match self.target.host.parse::<IpAddr>() {
            Ok(ip) => rustls_pki_types::ServerName::IpAddress(ip.into()),
            Err(_) => rustls_pki_types::ServerName::try_from(self.target.host.clone())
                .map_err(|e| self.unreachable(e))?,
        };
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| self.unreachable(format!("TLS: {e}")))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.unreachable(e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("node agent connection ended: {e}");
            }
        });
        Ok(sender)
    }

    fn authority(&self) -> String {
        if self.target.host.contains(':') {
            format!("[{}]:{}", self.target.host, self.target.port)
        } else {
            format!("{}:{}", self.target.host, self.target.port)
        }
    }

    fn request(&self, method: Method, path: &str) -> http::request::Builder {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.authority())
    }

    /// GET the log; the body streams through as the agent sends it.
    async fn logs(&self, path: &str) -> Result<Response> {
        let mut sender = self.connect().await?;
        let req = self
            .request(Method::GET, path)
            .body(Empty::new())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(pass_through(resp))
    }

    /// Forwards the WebSocket upgrade, then splices the two upgraded connections.
    async fn exec(&self, path: &str, mut req: Req) -> Result<Response> {
        let Some(client_upgrade) = req.upgrade.take() else {
            return Err(ApiError::bad_request(
                "this connection cannot be upgraded; exec needs HTTP/1.1",
            ));
        };
        let mut sender = self.connect().await?;
        let mut out = self
            .request(Method::GET, path)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "websocket");
        for h in [
            header::SEC_WEBSOCKET_KEY,
            header::SEC_WEBSOCKET_VERSION,
            header::SEC_WEBSOCKET_PROTOCOL,
        ] {
            for v in req.headers.get_all(&h) {
                out = out.header(&h, v.clone());
            }
        }
        let agent_req = out
            .body(Empty::new())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut resp = sender
            .send_request(agent_req)
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(pass_through(resp));
        }
        let mut answer = StatusCode::SWITCHING_PROTOCOLS.into_response();
        for h in [
            header::UPGRADE,
            header::CONNECTION,
            header::SEC_WEBSOCKET_ACCEPT,
            header::SEC_WEBSOCKET_PROTOCOL,
        ] {
            if let Some(v) = resp.headers().get(&h) {
                answer.headers_mut().insert(h, v.clone());
            }
        }
        let agent_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (client, agent) = match tokio::join!(client_upgrade, agent_upgrade) {
                (Ok(c), Ok(a)) => (c, a),
                (c, a) => {
                    tracing::debug!(
                        "exec upgrade failed: client {:?}, agent {:?}",
                        c.err(),
                        a.err()
                    );
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut agent = TokioIo::new(agent);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut agent).await {
                tracing::debug!("exec stream ended: {e}");
            }
        });
        Ok(answer)
    }
}

/// The agent's answer, status, content type and (streaming) body, as ours.
fn pass_through(resp: http::Response<hyper::body::Incoming>) -> Response {
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("text/plain"));
    out.headers_mut().insert(header::CONTENT_TYPE, ct);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_is_the_named_one_or_the_only_one() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        let two = json!({"spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "init"}],
        }});
        let annotated = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/default-container": "b"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        });
        /// (pod, container asked for, logs?, container or error message)
        type Case<'a> = (
            &'a Value,
            Option<&'a str>,
            bool,
            std::result::Result<&'a str, &'a str>,
        );
        let cases: Vec<Case> = vec![
            (&one, None, true, Ok("app")),
            (&one, Some(""), false, Ok("app")),
            (&one, Some("app"), true, Ok("app")),
            (&one, Some("x"), true, Err("container x is not valid for pod p")),
            (&two, Some("init"), true, Ok("init")),
            (&annotated, None, true, Ok("b")),
            (
                &two,
                None,
                true,
                Err("a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [init]"),
            ),
            (
                &two,
                None,
                false,
                Err("a container name must be specified for pod p, choose one of: [a b]"),
            ),
        ];
        for (pod, asked, logs, want) in cases {
            let got = pick_container(pod, "p", asked, logs).map_err(|e| e.message);
            assert_eq!(got.as_deref().map_err(String::as_str), want, "{asked:?}");
        }
    }

    #[test]
    fn node_targets_prefer_the_internal_ip_and_default_the_port() {
        let cases = [
            (
                json!({"status": {"addresses": [
                    {"type": "Hostname", "address": "n1"},
                    {"type": "InternalIP", "address": "10.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10350}}}}),
                Some(("10.0.0.1", 10350)),
            ),
            (
                json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}}),
                Some(("n1", 10250)),
            ),
            (json!({"status": {}}), None),
            (json!({}), None),
        ];
        for (node, want) in cases {
            let got = target_of(&node);
            let want = want.map(|(h, p)| NodeTarget {
                host: h.to_string(),
                port: p,
            });
            assert_eq!(got, want, "{node}");
        }
    }

    #[test]
    fn upgrades_are_told_apart() {
        let h = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(header::UPGRADE, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(upgrade_kind(&h("websocket")), Upgrade::WebSocket);
        assert_eq!(upgrade_kind(&h("WebSocket")), Upgrade::WebSocket);
        assert_eq!(upgrade_kind(&h("SPDY/3.1")), Upgrade::Spdy);
        assert_eq!(upgrade_kind(&http::HeaderMap::new()), Upgrade::None);
    }
}
