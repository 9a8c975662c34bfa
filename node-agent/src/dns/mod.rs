//! Cluster DNS, served by every node agent for the pods of its node.
//!
//! # Why in the agent, per node
//!
//! Each agent already watches Services and Endpoints (the proxy's caches), so it can
//! answer `<svc>.<ns>.svc.<domain>` from memory: no extra hop to a DNS deployment, no
//! extra watch on the apiserver, no cluster-wide single point of failure (a node's DNS
//! is down only when its agent is, and then its pods have bigger problems), and nothing
//! to schedule before DNS works. The server listens on the node's pod-bridge gateway
//! address (port 53, UDP and TCP), which every pod reaches directly; the agent writes
//! that address as the pods' nameserver (`Options.cluster_dns`).
//!
//! # What it answers
//!
//! - `<svc>.<ns>.svc.<domain>`: A = the ClusterIP; headless (`clusterIP: None`): one A
//!   per ready endpoint; ExternalName: a CNAME to `externalName`.
//! - `<hostname>.<svc>.<ns>.svc.<domain>`: endpoints with a hostname (headless).
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV for named ports.
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A a.b.c.d (CoreDNS's `pods insecure`).
//! - anything else under the domain: NXDOMAIN (with the zone's SOA, TTL 5 s).
//! - other names: forwarded to the host's resolvers from /etc/resolv.conf, if it names
//!   any; each gets [`FORWARD_TIMEOUT`], then SERVFAIL; none configured: REFUSED at once.
//!   A pod's query never hangs.
//!
//! Messages are parsed and built with hickory-proto; the server loop is ours (a UDP
//! socket and a TCP listener per address), which is all a stub-facing server needs.
//!
//! # Layout
//! - [`zone`]: the cluster zone's answers from the caches.

pub mod zone;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tug_client::Store;
use tug_proto::core::v1::{Endpoints, Service};

pub use zone::{Answer, Zone};

/// How long one upstream resolver gets to answer a forwarded query.
pub const FORWARD_TIMEOUT: Duration = Duration::from_millis(1500);
/// Queries handled at once (beyond that, UDP queries wait in the socket buffer).
const MAX_INFLIGHT: usize = 512;
/// An idle TCP connection is closed after this.
const TCP_IDLE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cluster DNS: binding {proto} {addr}: {source}; is another DNS server using port 53 on that address?")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to run the server.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Where to listen (UDP and TCP on each), e.g. the bridge gateway `10.244.1.1:53`.
    /// Port 0 picks one (the same for UDP and TCP of one address).
    pub listen: Vec<SocketAddr>,
    /// The cluster domain, `cluster.local`.
    pub domain: String,
    /// Resolvers for names outside the domain; empty: REFUSED. See [`host_resolvers`].
    pub upstreams: Vec<SocketAddr>,
}

/// The nameservers of the host's /etc/resolv.conf (port 53), minus `exclude` (our own
/// addresses: forwarding to ourselves would loop).
pub fn host_resolvers(resolv_conf: &str, exclude: &[IpAddr]) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .filter(|ip| !exclude.contains(ip) && !ip.is_unspecified())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// A running DNS server; dropping it stops it.
pub struct DnsServer {
    addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Shared {
    zone: Zone,
    upstreams: Vec<SocketAddr>,
    inflight: Arc<Semaphore>,
}

impl DnsServer {
    /// Binds every address (UDP and TCP) and starts serving from the caches.
    pub async fn start(
        config: DnsConfig,
        services: Store<Service>,
        endpoints: Store<Endpoints>,
    ) -> Result<DnsServer> {
        let shared = Arc::new(Shared {
            zone: Zone::new(&config.domain, services, endpoints),
            upstreams: config.upstreams,
            inflight: Arc::new(Semaphore::new(MAX_INFLIGHT)),
        });
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        for addr in config.listen {
            let udp = UdpSocket::bind(addr).await.map_err(|source| Error::Bind {
                proto: "udp",
                addr,
                source,
            })?;
            let bound = udp.local_addr().map_err(|source| Error::Bind {
                proto: "udp",
                addr,
                source,
            })?;
            let tcp = TcpListener::bind(bound)
                .await
                .map_err(|source| Error::Bind {
                    proto: "tcp",
                    addr: bound,
                    source,
                })?;
            addrs.push(bound);
            tasks.push(tokio::spawn(serve_udp(Arc::new(udp), shared.clone())));
            tasks.push(tokio::spawn(serve_tcp(tcp, shared.clone())));
        }
        tracing::info!(addrs = ?addrs, domain = %config.domain, "cluster DNS listening");
        Ok(DnsServer { addrs, tasks })
    }

    /// The bound addresses (UDP and TCP share each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors from earlier replies surface here on Linux; keep serving.
                tracing::debug!(error = %e, "dns udp receive");
                continue;
            }
        };
        let query = buf[..n].to_vec();
        let Ok(permit) = shared.inflight.clone().acquire_owned().await else {
            return;
        };
        let (socket, shared) = (socket.clone(), shared.clone());
        tokio::spawn(async move {
            if let Some(reply) = shared.handle(&query, true).await {
                let _ = socket.send_to(&reply, peer).await;
            }
            drop(permit);
        });
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(serve_tcp_conn(stream, shared.clone()));
    }
}

async fn serve_tcp_conn(mut stream: TcpStream, shared: Arc<Shared>) {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let Some(reply) = shared.handle(&query, false).await else {
            return;
        };
        let Ok(n) = u16::try_from(reply.len()) else {
            return;
        };
        if stream.write_all(&n.to_be_bytes()).await.is_err()
            || stream.write_all(&reply).await.is_err()
        {
            return;
        }
    }
}

impl Shared {
    /// The reply to one query message (None: not even a header to answer).
    async fn handle(&self, query: &[u8], udp: bool) -> Option<Vec<u8>> {
        let request = match Message::from_vec(query) {
            Ok(m) => m,
            Err(_) if query.len() >= 2 => {
                let id = u16::from_be_bytes([query[0], query[1]]);
                return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                    .to_vec()
                    .ok();
            }
            Err(_) => return None,
        };
        let md = request.metadata;
        let mut reply = Message::response(md.id, md.op_code);
        reply.metadata.recursion_desired = md.recursion_desired;
        reply.metadata.recursion_available = !self.upstreams.is_empty();
        reply.queries = request.queries.clone();
        if md.message_type != MessageType::Query || md.op_code != OpCode::Query {
            reply.metadata.response_code = ResponseCode::NotImp;
            return reply.to_vec().ok();
        }
        let [q] = request.queries.as_slice() else {
            reply.metadata.response_code = ResponseCode::FormErr;
            return reply.to_vec().ok();
        };
        match self.zone.resolve(q.name(), q.query_type()) {
            Answer::Records(records) => {
                reply.metadata.authoritative = true;
                if records.is_empty() {
                    reply.authorities.extend(self.zone.soa());
                }
                reply.answers = records;
            }
            Answer::NxDomain => {
                reply.metadata.authoritative = true;
                reply.metadata.response_code = ResponseCode::NXDomain;
                reply.authorities.extend(self.zone.soa());
            }
            Answer::NotOurs => {
                if self.upstreams.is_empty() {
                    reply.metadata.response_code = ResponseCode::Refused;
                } else {
                    match forward(&self.upstreams, query, md.id).await {
                        Some(bytes) => return Some(bytes),
                        None => reply.metadata.response_code = ResponseCode::ServFail,
                    }
                }
            }
        }
        let max = match &request.edns {
            Some(edns) => {
                let mut e = hickory_proto::op::Edns::new();
                e.set_max_payload(1232);
                reply.set_edns(e);
                edns.max_payload().max(512)
            }
            None => 512,
        };
        let bytes = reply.to_vec().ok()?;
        if udp && bytes.len() > max as usize {
            // Too big for the client's UDP buffer: it retries over TCP.
            return reply.truncate().to_vec().ok();
        }
        Some(bytes)
    }
}

/// Sends `query` to each upstream in turn (UDP, [`FORWARD_TIMEOUT`] each) and returns
/// the first reply with the query's id.
async fn forward(upstreams: &[SocketAddr], query: &[u8], id: u16) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let bind: SocketAddr = if upstream.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let attempt = async {
            let sock = UdpSocket::bind(bind).await.ok()?;
            sock.connect(upstream).await.ok()?;
            sock.send(query).await.ok()?;
            let mut buf = vec![0u8; 4096];
            loop {
                let n = sock.recv(&mut buf).await.ok()?;
                if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                    buf.truncate(n);
                    return Some(buf);
                }
            }
        };
        match tokio::time::timeout(FORWARD_TIMEOUT, attempt).await {
            Ok(Some(reply)) => return Some(reply),
            _ => tracing::debug!(upstream = %upstream, "dns upstream did not answer"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::{Name, RData, RecordType};
    use serde_json::json;
    use tug_client::watcher::Event;
    use tug_client::Writer;

    fn stores() -> (Store<Service>, Store<Endpoints>) {
        let services: Vec<Service> = [
            json!({"metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}),
            json!({"metadata": {"name": "db", "namespace": "default"},
                "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
            json!({"metadata": {"name": "ext", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
        let endpoints: Vec<Endpoints> = [json!({"metadata": {"name": "db", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.244.1.7", "hostname": "db-0"}, {"ip": "10.244.2.8"}],
                "notReadyAddresses": [{"ip": "10.244.3.9"}], "ports": [{"name": "pg", "port": 5432}]}]})]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
        let sw = Writer::new();
        sw.apply(&Event::Restarted(services));
        let ew = Writer::new();
        ew.apply(&Event::Restarted(endpoints));
        (sw.store(), ew.store())
    }

    async fn server(domain: &str, upstreams: Vec<SocketAddr>) -> DnsServer {
        let (s, e) = stores();
        DnsServer::start(
            DnsConfig {
                listen: vec!["127.0.0.1:0".parse().unwrap()],
                domain: domain.into(),
                upstreams,
            },
            s,
            e,
        )
        .await
        .unwrap()
    }

    fn query(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        m.to_vec().unwrap()
    }

    async fn ask_udp(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.send_to(&query(name, qtype), addr).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
            .await
            .expect("the server answers in time")
            .unwrap();
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(m.metadata.id, 4242);
        m
    }

    async fn ask_tcp(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let q = query(name, qtype);
        s.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
        s.write_all(&q).await.unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).await.unwrap();
        Message::from_vec(&buf).unwrap()
    }

    /// The answers as text: "A 1.2.3.4", "CNAME example.com.", "SRV 80 web...".
    fn answers(m: &Message) -> Vec<String> {
        m.answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => format!("A {}", a.0),
                RData::CNAME(c) => format!("CNAME {}", c.0),
                RData::SRV(s) => format!("SRV {} {}", s.port, s.target),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn cluster_names_resolve_as_kubernetes_dns_does() {
        let dns = server("cluster.local", vec![]).await;
        let addr = dns.local_addrs()[0];
        use RecordType::{A, AAAA, SRV};
        let cases: Vec<(&str, RecordType, ResponseCode, Vec<&str>)> = vec![
            (
                "web.default.svc.cluster.local.",
                A,
                ResponseCode::NoError,
                vec!["A 10.96.0.10"],
            ),
            (
                "WEB.Default.svc.Cluster.Local.",
                A,
                ResponseCode::NoError,
                vec!["A 10.96.0.10"],
            ),
            (
                "web.default.svc.cluster.local.",
                AAAA,
                ResponseCode::NoError,
                vec![],
            ),
            (
                "db.default.svc.cluster.local.",
                A,
                ResponseCode::NoError,
                vec!["A 10.244.1.7", "A 10.244.2.8"],
            ),
            (
                "db-0.db.default.svc.cluster.local.",
                A,
                ResponseCode::NoError,
                vec!["A 10.244.1.7"],
            ),
            (
                "ext.default.svc.cluster.local.",
                A,
                ResponseCode::NoError,
                vec!["CNAME example.com."],
            ),
            (
                "10-244-1-5.default.pod.cluster.local.",
                A,
                ResponseCode::NoError,
                vec!["A 10.244.1.5"],
            ),
            (
                "_http._tcp.web.default.svc.cluster.local.",
                SRV,
                ResponseCode::NoError,
                vec!["SRV 80 web.default.svc.cluster.local."],
            ),
            (
                "_pg._tcp.db.default.svc.cluster.local.",
                SRV,
                ResponseCode::NoError,
                vec![
                    "SRV 5432 10-244-2-8.db.default.svc.cluster.local.",
                    "SRV 5432 db-0.db.default.svc.cluster.local.",
                ],
            ),
            (
                "nope.default.svc.cluster.local.",
                A,
                ResponseCode::NXDomain,
                vec![],
            ),
            (
                "web.other.svc.cluster.local.",
                A,
                ResponseCode::NXDomain,
                vec![],
            ),
            ("foo.bar.cluster.local.", A, ResponseCode::NXDomain, vec![]),
            ("svc.cluster.local.", A, ResponseCode::NoError, vec![]),
            ("example.org.", A, ResponseCode::Refused, vec![]),
        ];
        for (name, qtype, code, want) in cases {
            for tcp in [false, true] {
                let m = if tcp {
                    ask_tcp(addr, name, qtype).await
                } else {
                    ask_udp(addr, name, qtype).await
                };
                assert_eq!(m.metadata.response_code, code, "{name} {qtype} tcp={tcp}");
                assert_eq!(answers(&m), want, "{name} {qtype} tcp={tcp}");
                if code == ResponseCode::NXDomain {
                    assert_eq!(m.authorities.len(), 1, "SOA with NXDOMAIN for {name}");
                }
            }
        }
    }

    #[tokio::test]
    async fn other_names_are_forwarded_and_dead_upstreams_fail_fast() {
        // The "upstream" is another server authoritative for example.org.
        let upstream = server("example.org", vec![]).await;
        let dns = server("cluster.local", vec![upstream.local_addrs()[0]]).await;
        let m = ask_udp(dns.local_addrs()[0], "x.example.org.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.authoritative, "the upstream's own answer");

        // An upstream that never answers: SERVFAIL after the timeout, not a hang.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dns = server("cluster.local", vec![silent.local_addr().unwrap()]).await;
        let m = ask_udp(dns.local_addrs()[0], "example.org.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn host_resolvers_from_resolv_conf() {
        let conf = "# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver 10.244.1.1\nnameserver ::1\nnameserver bogus\noptions ndots:5\n";
        let got = host_resolvers(conf, &["10.244.1.1".parse().unwrap()]);
        assert_eq!(
            got,
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }
}
