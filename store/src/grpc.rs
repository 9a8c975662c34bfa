//! The gRPC peer transport and server (tonic), optionally over mutual TLS: raft messages
//! go out through one sender task per peer with a bounded queue; writes and read-index
//! requests are forwarded to the leader as unary calls.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use protobuf::Message as _;
use raft::prelude::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

use crate::codec;
use crate::pb;
use crate::pb::peer_client::PeerClient;
use crate::pb::peer_server::{Peer, PeerServer};
use crate::store::{Inner, ServerHandle, Store};
use crate::transport::{NoPeers, Transport};
use crate::{Config, Error, Op, Result, TxnResult};

/// Largest peer message (snapshots travel as one message); tonic's default is 4 MiB.
const MAX_MESSAGE: usize = 1 << 30;
/// Raft messages queued per peer; beyond this they are dropped (raft retransmits).
const PEER_QUEUE: usize = 4096;
/// Raft messages sent in one RPC at most.
const MAX_BATCH: usize = 512;
/// ...and about this many bytes (appends carry up to 1 MiB each).
const MAX_BATCH_BYTES: usize = 4 << 20;
const RAFT_RPC_TIMEOUT: Duration = Duration::from_secs(2);
const SNAPSHOT_RPC_TIMEOUT: Duration = Duration::from_secs(120);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a replica with the gRPC transport and serves its peer port on `listener`.
pub(crate) async fn open(cfg: Config, listener: TcpListener) -> Result<Store> {
    if cfg.peers.len() <= 1 {
        drop(listener);
        return Store::open_with_transport(cfg, Arc::new(NoPeers)).await;
    }
    let transport = Arc::new(GrpcTransport::new(&cfg)?);
    let tls = cfg.peer_tls.clone();
    let store = Store::open_with_transport(cfg, transport).await?;
    let (stop, stopped) = watch::channel(false);
    let service = PeerServer::new(PeerService {
        store: Arc::downgrade(&store.inner),
        stopped: stopped.clone(),
    })
    .max_decoding_message_size(MAX_MESSAGE)
    .max_encoding_message_size(MAX_MESSAGE);
    let mut stopped_rx = stopped;
    let shutdown = async move {
        let _ = stopped_rx.wait_for(|s| *s).await;
    };
    let router = tonic::transport::Server::builder().add_service(service);
    let task = match tls {
        None => tokio::spawn(async move {
            if let Err(e) = router
                .serve_with_incoming_shutdown(plain_incoming(listener), shutdown)
                .await
            {
                tracing::error!(error = %e, "peer server failed");
            }
        }),
        Some(tls) => tokio::spawn(async move {
            if let Err(e) = router
                .serve_with_incoming_shutdown(tls_incoming(listener, tls.server), shutdown)
                .await
            {
                tracing::error!(error = %e, "peer server failed");
            }
        }),
    };
    if let Ok(mut server) = store.inner.server.lock() {
        *server = Some(ServerHandle { stop, task });
    }
    Ok(store)
}

/// Accepted TCP connections, until the server drops the stream.
fn plain_incoming(listener: TcpListener) -> ReceiverStream<io::Result<TcpStream>> {
    let (tx, rx) = mpsc::channel(32);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                r = listener.accept() => r,
            };
            match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    if tx.send(Ok(tcp)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "peer port accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// Accepted connections that completed the TLS handshake. The server config requires and
/// verifies a client certificate, so peers without a cluster-signed one never get here.
/// Handshakes run in their own tasks so a slow client cannot stall the accept loop.
fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> ReceiverStream<io::Result<TlsStream>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let (tx, rx) = mpsc::channel(32);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                r = listener.accept() => r,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "peer port accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, error = %e, "peer TLS handshake rejected")
                    }
                    Err(_) => tracing::warn!(%peer, "peer TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Serves peers: raft messages in, forwarded writes and read-index requests.
struct PeerService {
    /// Weak, so a dropped `Store` is not kept alive by its own server.
    store: Weak<Inner>,
    /// Becomes true on shutdown: ends the long-lived peer streams, which would otherwise
    /// hold the server's graceful shutdown open.
    stopped: watch::Receiver<bool>,
}

impl PeerService {
    fn store(&self) -> Result<Store, Status> {
        self.store
            .upgrade()
            .map(|inner| Store { inner })
            .ok_or_else(|| retry_safe("replica is shutting down"))
    }
}

/// Marks a status whose request was certainly not proposed, so the caller may retry it.
const RETRY_SAFE: &str = "tug-retry-safe";

fn retry_safe(message: impl Into<String>) -> Status {
    let mut status = Status::unavailable(message);
    status
        .metadata_mut()
        .insert(RETRY_SAFE, tonic::metadata::MetadataValue::from_static("1"));
    status
}

fn to_status(e: Error) -> Status {
    match e {
        // Not proposed (no leader here, or it lost its slot): the follower retries.
        Error::NoLeader => retry_safe(e.to_string()),
        // The leader stopped while the write was in flight: it may still commit.
        Error::Stopped => Status::aborted("the leader stopped; the write may or may not commit"),
        Error::Timeout => Status::deadline_exceeded(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

/// Maps a peer's answer back to a store error. `NoLeader` (retried by the caller) only when
/// the request certainly had no effect, or when repeating it is harmless (`idempotent`);
/// an unknown outcome of a write is `Timeout`, never retried, so a write is never applied
/// twice.
fn from_status(peer: u64, s: Status, idempotent: bool) -> Error {
    let never_sent = {
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&s);
        let mut found = false;
        while let Some(e) = source {
            if e.is::<tonic::ConnectError>() {
                found = true;
                break;
            }
            source = e.source();
        }
        found
    };
    if never_sent || s.metadata().get(RETRY_SAFE).is_some() {
        return Error::NoLeader;
    }
    match s.code() {
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Aborted if idempotent => {
            Error::NoLeader
        }
        Code::Unavailable
        | Code::Unknown
        | Code::Cancelled
        | Code::Aborted
        | Code::DeadlineExceeded => Error::Timeout,
        _ => Error::Transport(format!("peer {peer}: {}", s.message())),
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn raft(&self, request: Request<pb::RaftBatch>) -> Result<Response<pb::Empty>, Status> {
        let store = self.store()?;
        for bytes in request.into_inner().messages {
            let msg = Message::parse_from_bytes(&bytes)
                .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))?;
            store.step(msg);
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn raft_stream(
        &self,
        request: Request<tonic::Streaming<pb::RaftBatch>>,
    ) -> Result<Response<pb::Empty>, Status> {
        let mut stream = request.into_inner();
        let mut stopped = self.stopped.clone();
        loop {
            let batch = tokio::select! {
                _ = stopped.wait_for(|s| *s) => {
                    return Err(Status::unavailable("replica is shutting down"));
                }
                batch = stream.message() => batch?,
            };
            let Some(batch) = batch else { break };
            let store = self.store()?;
            for bytes in batch.messages {
                let msg = Message::parse_from_bytes(&bytes)
                    .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))?;
                store.step(msg);
            }
        }
        Ok(Response::new(pb::Empty {}))
    }

    async fn propose(
        &self,
        request: Request<pb::ProposeRequest>,
    ) -> Result<Response<pb::ProposeResponse>, Status> {
        let store = self.store()?;
        let op = request
            .into_inner()
            .op
            .ok_or_else(|| Status::invalid_argument("ProposeRequest.op is missing"))?;
        let op = codec::op_from_pb(op).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (result, index) = store.propose_local(op).await.map_err(to_status)?;
        Ok(Response::new(pb::ProposeResponse {
            result: Some(codec::result_to_pb(&result)),
            index,
        }))
    }

    async fn read_index(
        &self,
        _request: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexResponse>, Status> {
        let store = self.store()?;
        let index = store.read_index_local().await.map_err(to_status)?;
        Ok(Response::new(pb::ReadIndexResponse { index }))
    }
}

/// Outgoing peer traffic over gRPC.
struct GrpcTransport {
    clients: HashMap<u64, PeerClient<Channel>>,
    /// Per-peer queues of the sender tasks; cleared on shutdown, which ends the tasks.
    queues: Mutex<HashMap<u64, mpsc::Sender<Message>>>,
}

impl GrpcTransport {
    fn new(cfg: &Config) -> Result<Self> {
        let mut clients = HashMap::new();
        let mut queues = HashMap::new();
        for (&id, addr) in &cfg.peers {
            if id == cfg.id {
                continue;
            }
            let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| {
                    Error::Transport(format!("peer {id} address {addr:?} is not host:port: {e}"))
                })?
                .connect_timeout(Duration::from_secs(1))
                .tcp_nodelay(true)
                // Notice a peer that vanished without closing its connections.
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(Duration::from_secs(5))
                .keep_alive_while_idle(true);
            let channel = match &cfg.peer_tls {
                None => endpoint.connect_lazy(),
                Some(tls) => {
                    endpoint.connect_with_connector_lazy(tls_connector(tls.client.clone()))
                }
            };
            let client = PeerClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE);
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            tokio::spawn(run_sender(client.clone(), rx));
            clients.insert(id, client);
            queues.insert(id, tx);
        }
        Ok(GrpcTransport {
            clients,
            queues: Mutex::new(queues),
        })
    }

    fn client(&self, peer: u64) -> Result<PeerClient<Channel>> {
        self.clients
            .get(&peer)
            .cloned()
            .ok_or_else(|| Error::Transport(format!("peer {peer} is not in Config::peers")))
    }
}

/// Dials a peer with TCP + rustls using this replica's client config (it presents our
/// peer certificate and verifies the peer's against the cluster CA).
fn tls_connector(
    config: Arc<rustls::ClientConfig>,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    Error = io::Error,
    Future = BoxFuture<'static, io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>>,
> + Clone
       + Send
       + 'static {
    let connector = tokio_rustls::TlsConnector::from(config);
    tower::service_fn(move |uri: Uri| {
        let connector = connector.clone();
        let fut: BoxFuture<'static, io::Result<_>> = Box::pin(async move {
            let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
            let host = uri
                .host()
                .ok_or_else(|| invalid(format!("peer uri {uri} has no host")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri
                .port_u16()
                .ok_or_else(|| invalid(format!("peer uri {uri} has no port")))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| invalid(format!("peer host {host:?}: {e}")))?;
            let tls = connector.connect(name, tcp).await?;
            Ok(TokioIo::new(tls))
        });
        fut
    })
}

/// Drains one peer's queue into a long-lived `RaftStream` call, batching whatever is
/// queued, so a slow or dead peer never blocks the raft thread (its queue overflows and
/// drops instead). A broken stream is re-opened after a short pause.
async fn run_sender(client: PeerClient<Channel>, mut rx: mpsc::Receiver<Message>) {
    loop {
        let (stream_tx, stream_rx) = mpsc::channel::<pb::RaftBatch>(16);
        let mut call_client = client.clone();
        let call = tokio::spawn(async move {
            call_client
                .raft_stream(ReceiverStream::new(stream_rx))
                .await
        });
        loop {
            let Some(first) = rx.recv().await else {
                call.abort();
                return;
            };
            let mut messages = Vec::with_capacity(16);
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(m) = next.take() {
                match m.write_to_bytes() {
                    Ok(b) => {
                        bytes += b.len();
                        messages.push(b);
                    }
                    Err(e) => tracing::error!(error = %e, "encoding raft message"),
                }
                if messages.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            let sent =
                tokio::time::timeout(RAFT_RPC_TIMEOUT, stream_tx.send(pb::RaftBatch { messages }))
                    .await;
            if !matches!(sent, Ok(Ok(()))) {
                break;
            }
        }
        // The peer is down or stuck: what is queued is stale by now and raft will
        // retransmit, so drop it, pause, and open a new stream.
        call.abort();
        tokio::time::sleep(Duration::from_millis(100)).await;
        while rx.try_recv().is_ok() {}
    }
}

impl Transport for GrpcTransport {
    fn send(&self, to: u64, msg: Message) {
        if let Ok(queues) = self.queues.lock() {
            if let Some(q) = queues.get(&to) {
                // Full: dropped, raft retransmits.
                let _ = q.try_send(msg);
            }
        }
    }

    fn send_snapshot(&self, to: u64, msg: Message) -> BoxFuture<'static, Result<()>> {
        let client = self.client(to);
        Box::pin(async move {
            let mut client = client?;
            let bytes = msg
                .write_to_bytes()
                .map_err(|e| Error::Transport(format!("encoding snapshot: {e}")))?;
            let call = client.raft(pb::RaftBatch {
                messages: vec![bytes],
            });
            tokio::time::timeout(SNAPSHOT_RPC_TIMEOUT, call)
                .await
                .map_err(|_| Error::Timeout)?
                .map_err(|s| from_status(to, s, true))?;
            Ok(())
        })
    }

    fn propose(&self, leader: u64, op: Op) -> BoxFuture<'static, Result<(TxnResult, u64)>> {
        let client = self.client(leader);
        Box::pin(async move {
            let mut client = client?;
            let response = client
                .propose(pb::ProposeRequest {
                    op: Some(codec::op_to_pb(&op)),
                })
                .await
                .map_err(|s| from_status(leader, s, false))?
                .into_inner();
            let result = response.result.ok_or_else(|| {
                Error::Transport(format!("peer {leader}: ProposeResponse without a result"))
            })?;
            Ok((codec::result_from_pb(result)?, response.index))
        })
    }

    fn read_index(&self, leader: u64) -> BoxFuture<'static, Result<u64>> {
        let client = self.client(leader);
        Box::pin(async move {
            let mut client = client?;
            let response = client
                .read_index(pb::ReadIndexRequest {})
                .await
                .map_err(|s| from_status(leader, s, true))?;
            Ok(response.into_inner().index)
        })
    }

    fn shutdown(&self) {
        if let Ok(mut queues) = self.queues.lock() {
            queues.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use super::*;
    use crate::PeerTls;

    fn peer_cert(ca: &tug_pki::ca::Ca, name: &str) -> tug_pki::ca::CertKey {
        let ip: IpAddr = "127.0.0.1".parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
        ca.issue_peer(name, &["localhost".to_string()], &[ip])
            .unwrap()
    }

    #[tokio::test]
    async fn the_peer_port_rejects_clients_without_a_cluster_certificate() {
        let ca = tug_pki::ca::Ca::generate("cluster").unwrap();
        let other_ca = tug_pki::ca::Ca::generate("intruder").unwrap();
        let server_cert = peer_cert(&ca, "peer-1");
        let tls = PeerTls {
            server: tug_pki::tls::server_config(&server_cert, Some(ca.cert_pem()), true, &[b"h2"])
                .unwrap(),
            client: tug_pki::tls::client_config(ca.cert_pem(), Some(&server_cert), &[b"h2"])
                .unwrap(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let dir = tempfile::tempdir().unwrap();
        // Peer 2 never runs; it only makes this a multi-replica config with a peer server.
        let peers = BTreeMap::from([(1, addr.clone()), (2, "127.0.0.1:1".to_string())]);
        let mut cfg = Config::new(1, peers, dir.path());
        cfg.peer_tls = Some(tls);
        let store = open(cfg, listener).await.unwrap();

        let good = peer_cert(&ca, "peer-2");
        let foreign = peer_cert(&other_ca, "peer-2");
        let cases = [
            ("cluster peer certificate", Some(&good), true),
            ("no client certificate", None, false),
            ("certificate from another CA", Some(&foreign), false),
        ];
        for (name, cert, want_ok) in cases {
            let client_cfg = tug_pki::tls::client_config(ca.cert_pem(), cert, &[b"h2"]).unwrap();
            let channel = Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect_with_connector_lazy(tls_connector(client_cfg));
            let mut client = PeerClient::new(channel);
            let got = tokio::time::timeout(
                Duration::from_secs(10),
                client.raft(pb::RaftBatch { messages: vec![] }),
            )
            .await
            .expect("the call neither failed nor succeeded");
            assert_eq!(got.is_ok(), want_ok, "{name}: {got:?}");
        }
        store.shutdown().await;
    }
}
