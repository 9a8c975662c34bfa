//! httpGet probes (HTTP, or HTTPS without certificate checks, like the kubelet) and
//! gRPC health checks (`grpc.health.v1.Health/Check` over cleartext HTTP/2).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tug_proto::core::v1::{GRPCAction, HTTPGetAction};

use super::{connect, host_port, resolve_port, ProbeOutcome, ProbeTarget, MAX_OUTPUT};

/// The kubelet's User-Agent is `kube-probe/<major>.<minor>`; servers match on the prefix.
const USER_AGENT: &str = "kube-probe/1.31";
/// Go's http client gives up after this many redirects.
const MAX_REDIRECTS: usize = 10;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One request target: where to connect and what to ask for.
struct Target {
    scheme: Scheme,
    host: String,
    port: u16,
    path_and_query: String,
}

impl Target {
    fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_str(),
            host_port(&self.host, self.port),
            self.path_and_query
        )
    }
}

pub(super) async fn http_get(
    action: &HTTPGetAction,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> ProbeOutcome {
    let port = match resolve_port(&action.port, target.ports) {
        Ok(p) => p,
        Err(e) => return ProbeOutcome::Error(e),
    };
    let scheme = match action.scheme.as_deref().unwrap_or("HTTP") {
        "" | "HTTP" => Scheme::Http,
        "HTTPS" => Scheme::Https,
        other => {
            return ProbeOutcome::Error(format!(
                "httpGet scheme {other:?} is not supported: use HTTP or HTTPS"
            ))
        }
    };
    let host = action
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or(target.pod_ip)
        .to_string();
    let mut path = action.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let first = Target {
        scheme,
        host,
        port,
        path_and_query: path,
    };
    let url = first.url();
    let headers: Vec<(String, String)> = action
        .http_headers
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    match tokio::time::timeout(timeout, get_following_redirects(first, &headers)).await {
        Err(_) => ProbeOutcome::Failure(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Ok(Err(e)) => ProbeOutcome::Failure(format!("Get {url:?}: {e}")),
        Ok(Ok(status)) if (200..400).contains(&status.as_u16()) => ProbeOutcome::Success,
        Ok(Ok(status)) => ProbeOutcome::Failure(format!(
            "HTTP probe failed with statuscode: {}",
            status.as_u16()
        )),
    }
}

/// GETs `target`, following redirects to the same host (the kubelet does not follow
/// redirects elsewhere: their 3xx counts as success).
async fn get_following_redirects(
    mut target: Target,
    headers: &[(String, String)],
) -> Result<StatusCode, String> {
    for _ in 0..=MAX_REDIRECTS {
        let (status, location) = get(&target, headers).await?;
        if !status.is_redirection() {
            return Ok(status);
        }
        let Some(next) = location.and_then(|l| redirect_target(&target, &l)) else {
            return Ok(status);
        };
        if next.host != target.host {
            return Ok(status);
        }
        target = next;
    }
    Err(format!("stopped after {MAX_REDIRECTS} redirects"))
}

/// Where a `Location` header points, relative to the current target.
fn redirect_target(current: &Target, location: &str) -> Option<Target> {
    if location.starts_with('/') {
        return Some(Target {
            scheme: current.scheme,
            host: current.host.clone(),
            port: current.port,
            path_and_query: location.to_string(),
        });
    }
    let uri: Uri = location.parse().ok()?;
    let scheme = match uri.scheme_str()? {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    });
    Some(Target {
        scheme,
        host: host.to_string(),
        port,
        path_and_query: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
    })
}

/// One GET on a fresh connection (the kubelet disables keep-alive for probes).
async fn get(
    target: &Target,
    headers: &[(String, String)],
) -> Result<(StatusCode, Option<String>), String> {
    let stream = connect(&target.host, target.port).await?;
    let mut req = Request::get(target.path_and_query.as_str())
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("invalid probe path {:?}: {e}", target.path_and_query))?;
    let h = req.headers_mut();
    for (name, value) in headers {
        let name = header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("invalid httpHeaders name {name:?}: {e}"))?;
        let value = header::HeaderValue::from_str(value)
            .map_err(|e| format!("invalid httpHeaders value for {name}: {e}"))?;
        h.append(name, value);
    }
    if !h.contains_key(header::HOST) {
        let host = host_port(&target.host, target.port);
        h.insert(
            header::HOST,
            header::HeaderValue::from_str(&host).map_err(|e| e.to_string())?,
        );
    }
    if !h.contains_key(header::USER_AGENT) {
        h.insert(
            header::USER_AGENT,
            header::HeaderValue::from_static(USER_AGENT),
        );
    }
    if !h.contains_key(header::ACCEPT) {
        h.insert(header::ACCEPT, header::HeaderValue::from_static("*/*"));
    }
    match target.scheme {
        Scheme::Http => send_http1(stream, req).await,
        Scheme::Https => {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| format!("invalid host {:?}: {e}", target.host))?;
            let tls = tokio_rustls::TlsConnector::from(insecure_tls())
                .connect(name, stream)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            send_http1(tls, req).await
        }
    }
}

async fn send_http1<S>(
    io: S,
    req: Request<Empty<Bytes>>,
) -> Result<(StatusCode, Option<String>), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Read (at most) the part of the body the kubelet reads, then hang up.
        let mut body = resp.into_body();
        let mut read = 0;
        while read < MAX_OUTPUT {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
        Ok((status, location))
    }
    .await;
    driver.abort();
    result
}

/// HTTPS probes skip certificate verification, as the kubelet's do.
fn insecure_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Accepts any server certificate but still checks handshake signatures.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// grpc.health.v1 `ServingStatus` names, for the kubelet's "responded with" message.
fn serving_status_name(n: u64) -> String {
    match n {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// grpc: `grpc.health.v1.Health/Check` for `service` on the pod IP; SERVING is success.
pub(super) async fn grpc(
    action: &GRPCAction,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> ProbeOutcome {
    let Some(port) = u16::try_from(action.port).ok().filter(|p| *p > 0) else {
        return ProbeOutcome::Error(format!("invalid port number: {}", action.port));
    };
    let service = action.service.clone().unwrap_or_default();
    let host = target.pod_ip.to_string();
    match tokio::time::timeout(timeout, grpc_check(&host, port, &service, timeout)).await {
        Err(_) => ProbeOutcome::Failure(format!(
            "timeout: health rpc did not complete within {timeout:?}"
        )),
        Ok(outcome) => outcome,
    }
}

async fn grpc_check(host: &str, port: u16, service: &str, timeout: Duration) -> ProbeOutcome {
    let stream = match connect(host, port).await {
        Ok(s) => s,
        Err(e) => {
            return ProbeOutcome::Failure(format!(
                "timeout: failed to connect service {:?} within {timeout:?}: {e}",
                host_port(host, port)
            ))
        }
    };
    let (mut sender, conn) =
        match hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
        {
            Ok(x) => x,
            Err(e) => return ProbeOutcome::Failure(format!("error: health rpc probe failed: {e}")),
        };
    let driver = tokio::spawn(conn);
    let outcome = async {
        let uri = format!(
            "http://{}/grpc.health.v1.Health/Check",
            host_port(host, port)
        );
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers")
            .header(header::USER_AGENT, USER_AGENT)
            .body(Full::new(Bytes::from(grpc_request(service))))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        if resp.status() != StatusCode::OK {
            return Err(format!("HTTP status {}", resp.status().as_u16()));
        }
        let head_status = grpc_status(resp.headers());
        let collected = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let trailer_status = collected.trailers().and_then(grpc_status);
        let body = collected.to_bytes();
        Ok((trailer_status.or(head_status), body))
    }
    .await;
    driver.abort();
    match outcome {
        Err(e) => ProbeOutcome::Failure(format!("error: health rpc probe failed: {e}")),
        Ok((Some((12, msg)), _)) => ProbeOutcome::Failure(format!(
            "this server doesn't implement the grpc health protocol (grpc.health.v1.Health): {msg}"
        )),
        Ok((Some((code, msg)), _)) if code != 0 => ProbeOutcome::Failure(format!(
            "error: health rpc probe failed: rpc error: code = {code} desc = {msg}"
        )),
        Ok((_, body)) => match grpc_response_status(&body) {
            Some(1) => ProbeOutcome::Success,
            Some(n) => ProbeOutcome::Failure(format!(
                "service unhealthy (responded with {:?})",
                serving_status_name(n)
            )),
            None => ProbeOutcome::Failure(
                "error: health rpc probe failed: malformed HealthCheckResponse".into(),
            ),
        },
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<(u32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let msg = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Some((code, msg))
}

/// A length-prefixed gRPC message holding `HealthCheckRequest { service = 1 }`.
fn grpc_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    framed
}

/// `HealthCheckResponse.status` (field 1, varint) from a length-prefixed message; an
/// empty message is status 0 (UNKNOWN), as in proto3.
fn grpc_response_status(framed: &[u8]) -> Option<u64> {
    if framed.len() < 5 || framed[0] != 0 {
        return None;
    }
    let len = u32::from_be_bytes(framed[1..5].try_into().ok()?) as usize;
    let mut msg = framed.get(5..5 + len)?;
    let mut status = 0;
    while !msg.is_empty() {
        let key = get_varint(&mut msg)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = get_varint(&mut msg)?,
            (_, 0) => {
                get_varint(&mut msg)?;
            }
            (_, 2) => {
                let n = get_varint(&mut msg)? as usize;
                msg = msg.get(n..)?;
            }
            (_, 1) => msg = msg.get(8..)?,
            (_, 5) => msg = msg.get(4..)?,
            _ => return None,
        }
    }
    Some(status)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_round_trip() {
        assert_eq!(grpc_request(""), vec![0, 0, 0, 0, 0]);
        assert_eq!(grpc_request("db"), vec![0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']);
        assert_eq!(grpc_response_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(grpc_response_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(grpc_response_status(&[0, 0, 0, 0, 9]), None);
        let long = "s".repeat(300);
        let req = grpc_request(&long);
        assert_eq!(&req[5..8], &[0x0a, 0xac, 0x02]);
    }

    #[test]
    fn redirects_resolve_relative_and_absolute_locations() {
        let cur = Target {
            scheme: Scheme::Http,
            host: "10.0.0.5".into(),
            port: 8080,
            path_and_query: "/healthz".into(),
        };
        let rel = redirect_target(&cur, "/ok?x=1").unwrap();
        assert_eq!(rel.url(), "http://10.0.0.5:8080/ok?x=1");
        let abs = redirect_target(&cur, "https://10.0.0.5/secure").unwrap();
        assert_eq!(abs.url(), "https://10.0.0.5:443/secure");
        let other = redirect_target(&cur, "http://example.com:81/").unwrap();
        assert_eq!(other.host, "example.com");
        assert!(redirect_target(&cur, "ftp://x/").is_none());
    }
}
