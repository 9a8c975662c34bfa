//! Pod network tests against the real kernel, each inside its own throwaway network
//! namespace ("node"), so the host's network is never touched. Needs root (CI is root);
//! without it the tests say so and pass.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use tempfile::TempDir;
use tug_net::{HostPort, NetConfig, Network, Protocol};

/// A throwaway node: a fresh network namespace (`tugtest-<rand>`), a unique node name and
/// a state dir. Dropping it (also when the test panics) deletes the pod namespaces of its
/// node and the node namespace itself, which takes the bridge, veths, routes and nft table
/// with it.
struct Node {
    ns: String,
    node: String,
    state: TempDir,
    extra_ns: Vec<String>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}{:x}{}{:x}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        nanos % 0xfffff
    )
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Node {
    fn new() -> Option<Node> {
        if !is_root() {
            eprintln!("skipping: pod network tests need root");
            return None;
        }
        let ns = unique("tugtest-");
        sh(&["ip", "netns", "add", &ns]).unwrap();
        let node = Node {
            node: unique("n"),
            state: tempfile::tempdir().unwrap(),
            extra_ns: Vec::new(),
            ns,
        };
        // A fresh namespace has lo down; a real node's is up (127.0.0.1 hostPorts).
        node.run(|| sh(&["ip", "link", "set", "lo", "up"]).unwrap());
        Some(node)
    }

    fn config(&self, cidr: &str) -> NetConfig {
        NetConfig::new(&self.node, cidr, self.state.path())
    }

    /// Runs `f` on a thread that has joined this node's network namespace (as the agent
    /// would be, started inside it). Commands it spawns inherit the namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.ns, f)
    }

    /// Another machine: a namespace wired to this node by a veth pair, node side
    /// `node_ip/24`, other side `peer_ip/24`, with a route to `pod_cidr` via the node.
    fn add_peer(&mut self, node_ip: &str, peer_ip: &str, pod_cidr: &str) -> String {
        let peer = unique("tugtest-p");
        sh(&["ip", "netns", "add", &peer]).unwrap();
        self.extra_ns.push(peer.clone());
        let (a, b) = (unique("ta"), unique("tb"));
        let a = &a[..a.len().min(15)];
        let b = &b[..b.len().min(15)];
        sh(&[
            "ip", "-n", &self.ns, "link", "add", a, "type", "veth", "peer", "name", b, "netns",
            &peer,
        ])
        .unwrap();
        sh(&[
            "ip",
            "-n",
            &self.ns,
            "addr",
            "add",
            &format!("{node_ip}/24"),
            "dev",
            a,
        ])
        .unwrap();
        sh(&["ip", "-n", &self.ns, "link", "set", a, "up"]).unwrap();
        sh(&[
            "ip",
            "-n",
            &peer,
            "addr",
            "add",
            &format!("{peer_ip}/24"),
            "dev",
            b,
        ])
        .unwrap();
        sh(&["ip", "-n", &peer, "link", "set", b, "up"]).unwrap();
        sh(&["ip", "-n", &peer, "link", "set", "lo", "up"]).unwrap();
        sh(&["ip", "-n", &peer, "route", "add", pod_cidr, "via", node_ip]).unwrap();
        peer
    }

    fn netns_of_node(&self) -> Vec<String> {
        let prefix = format!("tug-{}_", self.node);
        std::fs::read_dir("/run/netns")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for ns in self
            .netns_of_node()
            .into_iter()
            .chain(self.extra_ns.drain(..))
            .chain([self.ns.clone()])
        {
            let _ = sh(&["ip", "netns", "del", &ns]);
        }
    }
}

fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(Path::new("/run/netns").join(ns)).unwrap();
            setns(file, CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// busybox ping from inside a namespace; a few tries so a slow first ARP is no failure.
fn ping(netns: &str, ip: Ipv4Addr) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..3 {
        match sh(&[
            "ip",
            "netns",
            "exec",
            netns,
            "busybox",
            "ping",
            "-c1",
            "-W1",
            &ip.to_string(),
        ]) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A TCP server in the pod's namespace answering every connection with `reply`, until the
/// test process ends (a detached thread: a failing test must not hang waiting for it).
fn serve_tcp_in(netns: &Path, port: u16, reply: &'static str) {
    let netns = netns.to_path_buf();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        setns(File::open(&netns).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        let listener = TcpListener::bind(("0.0.0.0", port)).unwrap();
        ready_tx.send(()).unwrap();
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listener in pod netns");
}

fn udp_echo_in(netns: &Path, port: u16) {
    let netns = netns.to_path_buf();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        setns(File::open(&netns).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        let sock = UdpSocket::bind(("0.0.0.0", port)).unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("udp echo in pod netns");
}

fn tcp_get(addr: SocketAddr) -> Result<String, String> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut s = String::new();
    conn.read_to_string(&mut s)
        .map_err(|e| format!("read {addr}: {e}"))?;
    Ok(s)
}

fn udp_roundtrip(addr: SocketAddr) -> Result<String, String> {
    let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        sock.send_to(b"udp-ping", addr)
            .map_err(|e| format!("send {addr}: {e}"))?;
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    Err(format!("no UDP answer from {addr}"))
}

fn links(ns: &str) -> String {
    sh(&["ip", "-n", ns, "-o", "link", "show"]).unwrap()
}

#[test]
fn two_pods_on_one_bridge_ping_each_other_and_the_gateway() {
    let Some(node) = Node::new() else { return };
    node.run(|| {
        let net = Network::new(node.config("10.244.1.0/24")).unwrap();
        let a = net.setup_pod("pod-a").unwrap();
        let b = net.setup_pod("pod-b").unwrap();
        assert_ne!(a.ip, b.ip);
        assert_eq!(a.gateway, Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(a.prefix, 24);
        let a_ns = a.netns.file_name().unwrap().to_str().unwrap();
        let b_ns = b.netns.file_name().unwrap().to_str().unwrap();
        ping(a_ns, b.ip).unwrap();
        ping(b_ns, a.ip).unwrap();
        ping(a_ns, a.gateway).unwrap();
        // The node reaches its pods too (probes, the agent's own checks).
        ping(&node.ns, a.ip).unwrap();
        // The pod side looks like Kubernetes': eth0 with the pod IP, lo up, default route.
        let addr = sh(&["ip", "-n", a_ns, "-4", "-o", "addr", "show", "dev", "eth0"]).unwrap();
        assert!(addr.contains(&format!("{}/24", a.ip)), "{addr}");
        let route = sh(&["ip", "-n", a_ns, "route", "show", "default"]).unwrap();
        assert!(route.contains("via 10.244.1.1 dev eth0"), "{route}");
        assert!(links(a_ns).contains("lo: <LOOPBACK,UP"));
        net.cleanup_all().unwrap();
    });
}

#[test]
fn pod_ips_are_unique_and_survive_a_new_network() {
    let Some(node) = Node::new() else { return };
    node.run(|| {
        let net = Network::new(node.config("10.244.7.0/24")).unwrap();
        let uids: Vec<String> = (0..5)
            .map(|i| format!("0c7a5e4e-1b2c-4d5e-8f90-00000000000{i}"))
            .collect();
        let first: Vec<_> = uids.iter().map(|u| net.setup_pod(u).unwrap()).collect();
        let mut ips: Vec<_> = first.iter().map(|p| p.ip).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), uids.len(), "unique IPs: {first:?}");

        // Setting up an existing pod again changes nothing.
        assert_eq!(net.setup_pod(&uids[0]).unwrap(), first[0]);

        // An agent restart: a new Network on the same state re-adopts every pod.
        drop(net);
        let net = Network::new(node.config("10.244.7.0/24")).unwrap();
        for (uid, pod) in uids.iter().zip(&first) {
            assert_eq!(net.pod(uid).as_ref(), Some(pod), "pod() after restart");
            assert_eq!(&net.setup_pod(uid).unwrap(), pod, "setup_pod after restart");
        }
        assert_eq!(net.pods().len(), uids.len());
        let a_ns = first[0].netns.file_name().unwrap().to_str().unwrap();
        ping(a_ns, first[1].ip).unwrap();

        // A new pod never gets a taken address; a released one is not handed out at once.
        net.teardown_pod(&uids[4]).unwrap();
        let new = net.setup_pod("newcomer").unwrap();
        assert!(!first.iter().any(|p| p.ip == new.ip), "{new:?}");
        assert!(net.pod(&uids[4]).is_none());
        net.cleanup_all().unwrap();
    });
}

#[test]
fn setup_pod_repairs_a_half_made_pod() {
    let Some(node) = Node::new() else { return };
    node.run(|| {
        let net = Network::new(node.config("10.244.9.0/24")).unwrap();
        let pod = net.setup_pod("repair-me").unwrap();
        let ns = pod.netns.file_name().unwrap().to_str().unwrap().to_string();
        // The pod end vanishes (e.g. an interrupted setup): setup again rebuilds the pair.
        sh(&["ip", "-n", &ns, "link", "del", "eth0"]).unwrap();
        assert_eq!(net.setup_pod("repair-me").unwrap(), pod);
        ping(&ns, pod.gateway).unwrap();
        // The namespace mount is gone but its file is left (its mount namespace died):
        // pod() says so, and setup_pod makes a new namespace with the same address.
        sh(&["umount", pod.netns.to_str().unwrap()]).unwrap();
        assert!(pod.netns.exists());
        assert_eq!(net.pod("repair-me"), None);
        assert_eq!(net.setup_pod("repair-me").unwrap(), pod);
        assert_eq!(net.pod("repair-me").as_ref(), Some(&pod));
        ping(&ns, pod.gateway).unwrap();
        net.cleanup_all().unwrap();
    });
}

#[test]
fn host_port_reaches_the_pod_via_node_ip_loopback_and_from_another_host() {
    let Some(mut node) = Node::new() else { return };
    let peer = node.add_peer("192.168.77.1", "192.168.77.2", "10.244.3.0/24");
    let net = node.run(|| Network::new(node.config("10.244.3.0/24")).unwrap());
    let pod = node.run(|| net.setup_pod("web").unwrap());
    serve_tcp_in(&pod.netns, 8080, "hello from the pod");
    udp_echo_in(&pod.netns, 5353);
    node.run(|| {
        let ports = [
            HostPort {
                host_port: 18080,
                container_port: 8080,
                protocol: Protocol::Tcp,
                host_ip: None,
            },
            HostPort {
                host_port: 15353,
                container_port: 5353,
                protocol: Protocol::Udp,
                host_ip: None,
            },
        ];
        net.set_host_ports("web", pod.ip, &ports).unwrap();
        net.set_host_ports("web", pod.ip, &ports).unwrap(); // idempotent
        assert_eq!(
            tcp_get("192.168.77.1:18080".parse().unwrap()).unwrap(),
            "hello from the pod"
        );
        assert_eq!(
            tcp_get("127.0.0.1:18080".parse().unwrap()).unwrap(),
            "hello from the pod"
        );
        assert_eq!(
            udp_roundtrip("127.0.0.1:15353".parse().unwrap()).unwrap(),
            "udp-ping"
        );
        // Another pod on the node uses the hostPort (hairpin through the node).
        let other = net.setup_pod("client").unwrap();
        let nc = sh(&[
            "sh",
            "-c",
            &format!(
                "nsenter --net={} busybox nc -w 5 192.168.77.1 18080 </dev/null",
                other.netns.display()
            ),
        ])
        .unwrap();
        assert_eq!(nc, "hello from the pod");
        let nc_self = sh(&[
            "sh",
            "-c",
            &format!(
                "nsenter --net={} busybox nc -w 5 {} 18080 </dev/null",
                pod.netns.display(),
                pod.gateway
            ),
        ])
        .unwrap();
        assert_eq!(
            nc_self, "hello from the pod",
            "a pod reaches its own hostPort"
        );
    });
    // From another machine, to the node's IP.
    assert_eq!(
        in_netns(&peer, || tcp_get("192.168.77.1:18080".parse().unwrap())).unwrap(),
        "hello from the pod"
    );
    assert_eq!(
        in_netns(&peer, || udp_roundtrip(
            "192.168.77.1:15353".parse().unwrap()
        ))
        .unwrap(),
        "udp-ping"
    );
    // Pod-to-outside traffic is routed with the pod's own IP, never masqueraded.
    let rules = sh(&[
        "ip",
        "netns",
        "exec",
        &node.ns,
        "nft",
        "list",
        "table",
        "ip",
        net.nft_table(),
    ])
    .unwrap();
    assert_eq!(rules.matches("masquerade").count(), 2, "{rules}");

    node.run(|| {
        // Removing the ports removes the DNAT.
        net.set_host_ports("web", pod.ip, &[]).unwrap();
        assert!(tcp_get("127.0.0.1:18080".parse().unwrap()).is_err());
        // Another pod may not take a published port.
        let p = [HostPort {
            host_port: 18081,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: None,
        }];
        net.set_host_ports("web", pod.ip, &p).unwrap();
        let err = net
            .set_host_ports("client", Ipv4Addr::new(10, 244, 3, 9), &p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("18081") && err.contains("web"), "{err}");
        net.cleanup_all().unwrap();
    });
}

#[test]
fn host_ports_survive_an_agent_restart() {
    let Some(node) = Node::new() else { return };
    let (net, pod) = node.run(|| {
        let net = Network::new(node.config("10.244.4.0/24")).unwrap();
        let pod = net.setup_pod("web").unwrap();
        let p = [HostPort {
            host_port: 18080,
            container_port: 8080,
            protocol: Protocol::Tcp,
            host_ip: None,
        }];
        net.set_host_ports("web", pod.ip, &p).unwrap();
        (net, pod)
    });
    serve_tcp_in(&pod.netns, 8080, "still here");
    node.run(|| {
        drop(net);
        // Even a wiped table is rebuilt from the persisted hostPorts on start.
        sh(&[
            "nft",
            "delete",
            "table",
            "ip",
            &format!("tug-{}", node.node),
        ])
        .unwrap();
        let net = Network::new(node.config("10.244.4.0/24")).unwrap();
        assert_eq!(
            tcp_get("127.0.0.1:18080".parse().unwrap()).unwrap(),
            "still here"
        );
        net.cleanup_all().unwrap();
    });
}

#[test]
fn teardown_and_cleanup_leave_no_netns_veth_table_route_or_state() {
    let Some(mut node) = Node::new() else { return };
    node.add_peer("192.168.78.1", "192.168.78.2", "10.244.5.0/24");
    node.run(|| {
        let net = Network::new(node.config("10.244.5.0/24")).unwrap();
        let a = net.setup_pod("a").unwrap();
        let p = [HostPort {
            host_port: 18080,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: None,
        }];
        net.set_host_ports("a", a.ip, &p).unwrap();
        net.setup_pod("b").unwrap();

        net.teardown_pod("a").unwrap();
        net.teardown_pod("a").unwrap(); // already gone: fine
        assert!(!a.netns.exists());
        assert!(net.pod("a").is_none());
        let rules = sh(&["nft", "list", "table", "ip", net.nft_table()]).unwrap();
        assert!(
            !rules.contains("dport 18080"),
            "hostPort rules go with the pod: {rules}"
        );
        assert_eq!(links(&node.ns).matches("veth").count(), 1);

        net.set_node_routes(&[("10.244.6.0/24".into(), "192.168.78.2".parse().unwrap())])
            .unwrap();
        // The agent is gone; `tug-agent cleanup` opens the state without setting anything up.
        drop(net);
        let net = Network::open(node.config("10.244.5.0/24")).unwrap();
        net.cleanup_all().unwrap();
        assert!(
            node.netns_of_node().is_empty(),
            "{:?}",
            node.netns_of_node()
        );
        let l = links(&node.ns);
        assert!(!l.contains("veth") && !l.contains("tug0"), "{l}");
        assert!(
            sh(&["nft", "list", "table", "ip", net.nft_table()]).is_err(),
            "table removed"
        );
        assert!(sh(&["ip", "route", "show", "proto", "116"])
            .unwrap()
            .trim()
            .is_empty());
        // Things that are not ours are left alone.
        assert!(l.contains("lo:") && sh(&["ip", "route"]).unwrap().contains("192.168.78.0/24"));
        let left: Vec<_> = walk(node.state.path());
        assert!(left.is_empty(), "state left: {left:?}");
        net.cleanup_all().unwrap(); // twice: fine
    });
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}

#[test]
fn two_nodes_in_two_netns_do_not_collide() {
    let (Some(n1), Some(n2)) = (Node::new(), Node::new()) else {
        return;
    };
    // Same bridge name, same podCIDR, same pod uid: only the node names differ.
    let (net1, p1) = n1.run(|| {
        let net = Network::new(n1.config("10.244.1.0/24")).unwrap();
        let p = net.setup_pod("same-uid").unwrap();
        (net, p)
    });
    let (net2, p2) = n2.run(|| {
        let net = Network::new(n2.config("10.244.1.0/24")).unwrap();
        let p = net.setup_pod("same-uid").unwrap();
        (net, p)
    });
    assert_ne!(p1.netns, p2.netns);
    assert_ne!(net1.nft_table(), net2.nft_table());
    ping(p1.netns.file_name().unwrap().to_str().unwrap(), p1.gateway).unwrap();
    ping(p2.netns.file_name().unwrap().to_str().unwrap(), p2.gateway).unwrap();
    // Cleaning one node leaves the other intact.
    n1.run(|| net1.cleanup_all().unwrap());
    assert!(!p1.netns.exists() && p2.netns.exists());
    n2.run(|| {
        assert_eq!(net2.pod("same-uid"), Some(p2.clone()));
        assert!(links(&n2.ns).contains("tug0"));
        ping(p2.netns.file_name().unwrap().to_str().unwrap(), p2.gateway).unwrap();
        net2.cleanup_all().unwrap();
    });
}

#[test]
fn node_routes_are_synced_and_stale_ones_removed() {
    let Some(mut node) = Node::new() else { return };
    node.add_peer("192.168.79.1", "192.168.79.2", "10.244.1.0/24");
    node.run(|| {
        let net = Network::new(node.config("10.244.1.0/24")).unwrap();
        let r = |c: &str, ip: &str| (c.to_string(), ip.parse::<Ipv4Addr>().unwrap());
        net.set_node_routes(&[
            r("10.244.2.0/24", "192.168.79.2"),
            r("10.244.3.0/24", "192.168.79.2"),
            r("10.244.1.0/24", "192.168.79.1"),
        ])
        .unwrap();
        assert_eq!(
            net.node_routes().unwrap(),
            vec![
                r("10.244.2.0/24", "192.168.79.2"),
                r("10.244.3.0/24", "192.168.79.2")
            ]
        );
        // Node 3 leaves: its route goes. Calling again with the same set changes nothing.
        net.set_node_routes(&[r("10.244.2.0/24", "192.168.79.2")])
            .unwrap();
        net.set_node_routes(&[r("10.244.2.0/24", "192.168.79.2")])
            .unwrap();
        assert_eq!(
            net.node_routes().unwrap(),
            vec![r("10.244.2.0/24", "192.168.79.2")]
        );
        let table = sh(&["ip", "route"]).unwrap();
        assert!(
            table.contains("10.244.2.0/24 via 192.168.79.2") && !table.contains("10.244.3.0/24"),
            "{table}"
        );
        // A node IP that is not on a connected network is a clear error.
        let err = net
            .set_node_routes(&[r("10.244.4.0/24", "203.0.113.9")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("10.244.4.0/24") && err.contains("203.0.113.9"),
            "{err}"
        );
        net.set_node_routes(&[]).unwrap();
        assert!(net.node_routes().unwrap().is_empty());
        net.cleanup_all().unwrap();
    });
}

#[test]
fn a_bridge_that_is_not_ours_is_refused_and_left_alone() {
    let Some(node) = Node::new() else { return };
    node.run(|| {
        sh(&["ip", "link", "add", "tug0", "type", "bridge"]).unwrap();
        sh(&["ip", "addr", "add", "192.168.50.1/24", "dev", "tug0"]).unwrap();
        let err = Network::new(node.config("10.244.1.0/24"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tug0") && err.contains("--bridge"), "{err}");
        let addr = sh(&["ip", "-o", "addr", "show", "dev", "tug0"]).unwrap();
        assert!(
            addr.contains("192.168.50.1/24") && !addr.contains("10.244.1.1"),
            "{addr}"
        );
        // A config error names the field.
        let err = Network::new(NetConfig {
            bridge: "br1".into(),
            ..node.config("10.244.1.7/24")
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("podCIDR") && err.contains("10.244.1.7/24"),
            "{err}"
        );
    });
}

#[test]
fn concurrent_setups_get_unique_addresses_and_the_configured_mtu() {
    let Some(node) = Node::new() else { return };
    node.run(|| {
        let net = Network::new(NetConfig {
            mtu: Some(1400),
            ..node.config("10.244.8.0/24")
        })
        .unwrap();
        let started = Instant::now();
        let pods: Vec<_> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|w| {
                    let net = &net;
                    let ns = node.ns.clone();
                    // Spawned threads start in the test process's namespace: join the node's.
                    s.spawn(move || {
                        in_netns(&ns, || {
                            (0..5)
                                .map(|i| net.setup_pod(&format!("w{w}-p{i}")).unwrap())
                                .collect::<Vec<_>>()
                        })
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        // A number to watch, not an assertion (the machine is noisy).
        eprintln!(
            "setup_pod: {} pods in {:?} with 4 workers",
            pods.len(),
            started.elapsed()
        );
        let mut ips: Vec<_> = pods.iter().map(|p| p.ip).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 20);
        assert!(pods.iter().all(|p| p.netns.exists()));
        let eth0 = sh(&[
            "ip",
            "-n",
            pods[0].netns.file_name().unwrap().to_str().unwrap(),
            "-o",
            "link",
            "show",
            "eth0",
        ])
        .unwrap();
        assert!(eth0.contains("mtu 1400"), "{eth0}");
        assert!(
            links(&node.ns).contains("tug0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400"),
            "{}",
            links(&node.ns)
        );
        ping(
            pods[19].netns.file_name().unwrap().to_str().unwrap(),
            pods[0].ip,
        )
        .unwrap();
        net.cleanup_all().unwrap();
        assert!(node.netns_of_node().is_empty());
    });
}

/// Wires two nodes with a veth pair: `a_ip/24` in `a`, `b_ip/24` in `b` (their "LAN").
fn link_nodes(a: &Node, b: &Node, a_ip: &str, b_ip: &str) {
    let (x, y) = (unique("la"), unique("lb"));
    let (x, y) = (&x[..x.len().min(15)], &y[..y.len().min(15)]);
    sh(&[
        "ip", "-n", &a.ns, "link", "add", x, "type", "veth", "peer", "name", y, "netns", &b.ns,
    ])
    .unwrap();
    sh(&[
        "ip",
        "-n",
        &a.ns,
        "addr",
        "add",
        &format!("{a_ip}/24"),
        "dev",
        x,
    ])
    .unwrap();
    sh(&[
        "ip",
        "-n",
        &b.ns,
        "addr",
        "add",
        &format!("{b_ip}/24"),
        "dev",
        y,
    ])
    .unwrap();
    sh(&["ip", "-n", &a.ns, "link", "set", x, "up"]).unwrap();
    sh(&["ip", "-n", &b.ns, "link", "set", y, "up"]).unwrap();
}

/// A TCP server in a pod namespace that answers each connection with the client's IP.
fn serve_peer_ip_in(netns: &Path, port: u16) {
    let netns = netns.to_path_buf();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        setns(File::open(&netns).unwrap(), CloneFlags::CLONE_NEWNET).unwrap();
        let listener = TcpListener::bind(("0.0.0.0", port)).unwrap();
        ready_tx.send(()).unwrap();
        for mut conn in listener.incoming().flatten() {
            let peer = conn
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let _ = conn.write_all(peer.as_bytes());
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listener in pod netns");
}

#[test]
fn pods_on_two_nodes_reach_each_other_over_host_gw_routes_with_their_own_ip() {
    let (Some(n1), Some(n2)) = (Node::new(), Node::new()) else {
        return;
    };
    link_nodes(&n1, &n2, "192.168.91.1", "192.168.91.2");
    let (net1, a) = n1.run(|| {
        let net = Network::new(n1.config("10.244.1.0/24")).unwrap();
        net.set_node_routes(&[("10.244.2.0/24".into(), "192.168.91.2".parse().unwrap())])
            .unwrap();
        let a = net.setup_pod("pod-a").unwrap();
        (net, a)
    });
    let (net2, b) = n2.run(|| {
        let net = Network::new(n2.config("10.244.2.0/24")).unwrap();
        net.set_node_routes(&[("10.244.1.0/24".into(), "192.168.91.1".parse().unwrap())])
            .unwrap();
        let b = net.setup_pod("pod-b").unwrap();
        (net, b)
    });
    ping(a.netns.file_name().unwrap().to_str().unwrap(), b.ip).unwrap();
    serve_peer_ip_in(&b.netns, 9000);
    let seen = in_netns(a.netns.file_name().unwrap().to_str().unwrap(), || {
        tcp_get(SocketAddr::from((b.ip, 9000)))
    })
    .unwrap();
    assert_eq!(
        seen,
        a.ip.to_string(),
        "no NAT inside the cluster: B sees A's pod IP"
    );
    n1.run(|| net1.cleanup_all().unwrap());
    n2.run(|| net2.cleanup_all().unwrap());
}
