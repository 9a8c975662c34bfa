//! Container probes with the kubelet's semantics: one check ([`probe_once`]: httpGet,
//! tcpSocket, exec, grpc) and a [`ProbeWorker`] that runs a liveness, readiness or
//! startup probe on its schedule and publishes the thresholded result.
//!
//! Outcomes follow the kubelet's split: a [`ProbeOutcome::Failure`] is the container
//! answering badly (HTTP 500, connection refused, exit code 1) and counts toward
//! `failureThreshold`; a [`ProbeOutcome::Error`] is the prober not being able to ask
//! (unknown named port, runtime error) and is retried, then thrown away.

mod http;
mod worker;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tug_proto::core::v1::{ContainerPort, Probe};
use tug_proto::IntOrString;
use tug_runtime::{ExecConfig, Runtime};

pub use worker::{
    ProbeContext, ProbeKind, ProbeReport, ProbeState, ProbeTiming, ProbeWorker, WorkerOptions,
};

/// The kubelet tries a probe that errors this many times per period.
const MAX_PROBE_RETRIES: usize = 3;
/// The kubelet reads at most this much of a probe's HTTP body or exec output.
const MAX_OUTPUT: usize = 10 * 1024;

/// The result of one probe attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    Success,
    /// The container answered and the answer is bad; the message says how, in the
    /// kubelet's words (e.g. `HTTP probe failed with statuscode: 500`).
    Failure(String),
    /// The probe could not be run at all (retried, then ignored, like the kubelet).
    Error(String),
}

/// What a probe runs against.
#[derive(Clone, Copy)]
pub struct ProbeTarget<'a> {
    /// Default host of httpGet, tcpSocket and grpc probes: the pod IP (the node's
    /// address for hostNetwork pods).
    pub pod_ip: &'a str,
    /// The container's ports, to resolve named probe ports.
    pub ports: &'a [ContainerPort],
    /// The runtime's container id, for exec probes.
    pub container_id: &'a str,
    pub runtime: &'a dyn Runtime,
}

/// `timeoutSeconds` of a probe: default 1, at least 1 (as the API's defaulting).
pub fn probe_timeout(probe: &Probe) -> Duration {
    Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64)
}

/// Runs `probe` once with its own `timeoutSeconds`.
pub async fn probe_once(probe: &Probe, target: &ProbeTarget<'_>) -> ProbeOutcome {
    probe_with_timeout(probe, target, probe_timeout(probe)).await
}

/// Runs `probe` once, giving up after `timeout` (a timeout is a failure, as the kubelet).
pub async fn probe_with_timeout(
    probe: &Probe,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> ProbeOutcome {
    if let Some(action) = &probe.http_get {
        http::http_get(action, target, timeout).await
    } else if let Some(action) = &probe.tcp_socket {
        let port = match resolve_port(&action.port, target.ports) {
            Ok(p) => p,
            Err(e) => return ProbeOutcome::Error(e),
        };
        let host = action
            .host
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or(target.pod_ip);
        tcp(host, port, timeout).await
    } else if let Some(action) = &probe.exec {
        exec(&action.command, target, timeout).await
    } else if let Some(action) = &probe.grpc {
        http::grpc(action, target, timeout).await
    } else {
        ProbeOutcome::Error(
            "the probe has no handler: set one of exec, httpGet, tcpSocket or grpc".into(),
        )
    }
}

/// A probe's port: a number, or the name of one of the container's ports (the
/// kubelet's `ResolveContainerPort`, including its "a number as a string" fallback).
pub fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let n = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
        {
            Some(p) => p.container_port,
            None => name
                .parse::<i32>()
                .map_err(|_| format!("port {name} not found"))?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {n}"))
}

/// `host:port` for dialing and messages (IPv6 in brackets).
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Go's `dial tcp` error text, which users know from kubectl describe.
fn dial_error(addr: &str, e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    let what = match e.kind() {
        ConnectionRefused => "connect: connection refused".to_string(),
        TimedOut => "i/o timeout".to_string(),
        HostUnreachable => "connect: no route to host".to_string(),
        NetworkUnreachable => "connect: network is unreachable".to_string(),
        _ => e.to_string(),
    };
    format!("dial tcp {addr}: {what}")
}

async fn connect(host: &str, port: u16) -> Result<tokio::net::TcpStream, String> {
    let addr = host_port(host, port);
    let dial_host = host.trim_start_matches('[').trim_end_matches(']');
    tokio::net::TcpStream::connect((dial_host, port))
        .await
        .map_err(|e| dial_error(&addr, &e))
}

/// tcpSocket: connecting within the timeout is success.
async fn tcp(host: &str, port: u16, timeout: Duration) -> ProbeOutcome {
    match tokio::time::timeout(timeout, connect(host, port)).await {
        Ok(Ok(_stream)) => ProbeOutcome::Success,
        Ok(Err(msg)) => ProbeOutcome::Failure(msg),
        Err(_) => ProbeOutcome::Failure(format!("dial tcp {}: i/o timeout", host_port(host, port))),
    }
}

/// exec: runs the command in the container (no tty, no stdin); exit 0 is success.
async fn exec(command: &[String], target: &ProbeTarget<'_>, timeout: Duration) -> ProbeOutcome {
    if command.is_empty() {
        return ProbeOutcome::Error("exec probe: command must not be empty".into());
    }
    let cfg = ExecConfig {
        args: command.to_vec(),
        env: Vec::new(),
        tty: false,
        stdin: false,
    };
    let run = async {
        let mut process = target
            .runtime
            .exec(target.container_id, cfg)
            .await
            .map_err(|e| e.to_string())?;
        let stdout = process.stdout.take();
        let stderr = process.stderr.take();
        let result = tokio::time::timeout(timeout, async {
            let (out, err) = tokio::join!(read_limited(stdout), read_limited(stderr));
            let code = process.wait().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((code, out, err))
        })
        .await;
        if result.is_err() {
            // The kubelet gives up on the command; end our side of it too.
            let _ = process.start_kill();
        }
        Ok::<_, String>(result)
    };
    match run.await {
        Err(e) => ProbeOutcome::Error(e),
        Ok(Err(_elapsed)) => {
            ProbeOutcome::Failure(format!("command {:?} timed out", command.join(" ")))
        }
        Ok(Ok(Err(e))) => ProbeOutcome::Error(e),
        Ok(Ok(Ok((code, out, err)))) => exec_outcome(command, code, &out, &err),
    }
}

/// The kubelet's exec result: exit 0 is success; otherwise the (combined) output is the
/// failure message, or the exit code when the command printed nothing.
fn exec_outcome(command: &[String], code: i32, out: &[u8], err: &[u8]) -> ProbeOutcome {
    if code == 0 {
        return ProbeOutcome::Success;
    }
    let mut text = String::from_utf8_lossy(out).into_owned();
    text.push_str(&String::from_utf8_lossy(err));
    let text = text.trim();
    if text.is_empty() {
        ProbeOutcome::Failure(format!(
            "command {:?} exited with code {code}",
            command.join(" ")
        ))
    } else {
        ProbeOutcome::Failure(text.chars().take(MAX_OUTPUT).collect())
    }
}

/// Reads a stream to its end, keeping the first [`MAX_OUTPUT`] bytes (the rest is
/// drained so the process never blocks on a full pipe).
async fn read_limited(stream: Option<Box<dyn AsyncRead + Send + Unpin>>) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests;
