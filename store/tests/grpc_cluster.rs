//! Three replicas over real gRPC on loopback (plaintext and mutual TLS): leader failover
//! under load, restart catch-up from the log and from a snapshot, and a throughput probe.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tug_store::{Config, Op, PeerTls, Precondition, Read, Store, TxnResult};

struct Cluster {
    configs: Vec<Config>,
    stores: Vec<Option<Store>>,
    _dirs: Vec<tempfile::TempDir>,
}

fn peer_tls(n: u64) -> Vec<PeerTls> {
    let ca = tug_pki::ca::Ca::generate("tug-store-test-ca").unwrap();
    (1..=n)
        .map(|id| {
            let cert = ca
                .issue_peer(
                    &format!("peer-{id}"),
                    &["localhost".to_string()],
                    &["127.0.0.1".parse::<IpAddr>().unwrap()],
                )
                .unwrap();
            PeerTls {
                server: tug_pki::tls::server_config(&cert, Some(ca.cert_pem()), true, &[b"h2"])
                    .unwrap(),
                client: tug_pki::tls::client_config(ca.cert_pem(), Some(&cert), &[b"h2"]).unwrap(),
            }
        })
        .collect()
}

/// Binds `addr`, retrying while a just-stopped replica releases it.
async fn bind(addr: &str) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("binding {addr}: {e}"),
        }
    }
}

impl Cluster {
    async fn start(n: u64, tls: bool, snapshot_every: u64) -> Cluster {
        let mut listeners = Vec::new();
        let mut peers = BTreeMap::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            peers.insert(id, l.local_addr().unwrap().to_string());
            listeners.push(l);
        }
        let tls = if tls { Some(peer_tls(n)) } else { None };
        let mut c = Cluster {
            configs: Vec::new(),
            stores: Vec::new(),
            _dirs: Vec::new(),
        };
        for (i, listener) in listeners.into_iter().enumerate() {
            let id = i as u64 + 1;
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = Config::new(id, peers.clone(), dir.path());
            cfg.tick = Duration::from_millis(50);
            cfg.snapshot_every = snapshot_every;
            cfg.peer_tls = tls.as_ref().map(|t| t[i].clone());
            let store = Store::open_with_listener(cfg.clone(), listener)
                .await
                .unwrap();
            c.configs.push(cfg);
            c.stores.push(Some(store));
            c._dirs.push(dir);
        }
        c
    }

    fn store(&self, id: u64) -> Store {
        self.stores[(id - 1) as usize]
            .clone()
            .expect("replica is stopped")
    }

    fn running(&self) -> Vec<Store> {
        self.stores.iter().flatten().cloned().collect()
    }

    async fn stop(&mut self, id: u64) {
        if let Some(s) = self.stores[(id - 1) as usize].take() {
            s.shutdown().await;
        }
    }

    /// Stops a replica without a leadership hand-over, like a crash.
    async fn kill(&mut self, id: u64) {
        if let Some(s) = self.stores[(id - 1) as usize].take() {
            s.kill().await;
        }
    }

    async fn restart(&mut self, id: u64) {
        let cfg = self.configs[(id - 1) as usize].clone();
        let listener = bind(&cfg.peers[&id]).await;
        let store = Store::open_with_listener(cfg, listener).await.unwrap();
        self.stores[(id - 1) as usize] = Some(store);
    }

    /// Waits until every running replica agrees on a leader that says it leads.
    async fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let running = self.running();
            let leaders: Vec<_> = running.iter().map(|s| s.status().leader).collect();
            if let Some(Some(l)) = leaders.first() {
                let l = *l;
                let leads = running.iter().any(|s| s.id() == l && s.status().is_leader);
                if leads && leaders.iter().all(|x| *x == Some(l)) {
                    return l;
                }
            }
            assert!(Instant::now() < deadline, "no leader: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every running replica applied what the leader has, then checks they
    /// hold identical data, each key written exactly once, one revision per write.
    async fn assert_converged(&self) -> Vec<String> {
        let leader = self.store(self.leader().await);
        leader.get("/", Read::Linearizable).await.unwrap();
        let target = leader.revision();
        let reference = leader.list("/", None, None, Read::Local).await.unwrap();
        for s in self.running() {
            let deadline = Instant::now() + Duration::from_secs(15);
            while s.revision() < target {
                assert!(
                    Instant::now() < deadline,
                    "replica {} stuck at {} < {target}",
                    s.id(),
                    s.revision()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let got = s.list("/", None, None, Read::Local).await.unwrap();
            assert_eq!(got.kvs, reference.kvs, "replica {} differs", s.id());
        }
        for kv in &reference.kvs {
            assert_eq!(
                kv.create_revision, kv.mod_revision,
                "{} was applied more than once",
                kv.key
            );
        }
        assert_eq!(reference.kvs.len() as u64, target, "one revision per write");
        reference.kvs.into_iter().map(|kv| kv.key).collect()
    }

    async fn shutdown(&mut self) {
        for id in 1..=self.stores.len() as u64 {
            self.stop(id).await;
        }
    }
}

fn put(key: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: b"v".to_vec(),
        precondition: Precondition::None,
    }
}

/// Writes unique keys in a loop through every running replica in turn.
fn spawn_writers(
    n: usize,
    stores: Arc<Mutex<Vec<Store>>>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<(Instant, Instant, String)>>> {
    (0..n)
        .map(|w| {
            let stores = stores.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let store = {
                        let s = stores.lock().unwrap();
                        s[(w + i) % s.len()].clone()
                    };
                    let key = format!("/w/{w}/{i}");
                    i += 1;
                    let started = Instant::now();
                    match store.txn(put(&key)).await {
                        Ok(TxnResult::Applied { .. }) => acked.push((started, Instant::now(), key)),
                        Ok(other) => panic!("unconditional put failed: {other:?}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                acked
            })
        })
        .collect()
}

async fn leader_failover_keeps_every_acknowledged_write(tls: bool, crash: bool) {
    let mut c = Cluster::start(3, tls, 10_000).await;
    let leader = c.leader().await;
    let stores = Arc::new(Mutex::new(c.running()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(4, stores.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(700)).await;

    stores.lock().unwrap().retain(|s| s.id() != leader);
    if crash {
        c.kill(leader).await;
    } else {
        c.stop(leader).await;
    }
    let killed_at = Instant::now();
    let new_leader = c.leader().await;
    assert_ne!(new_leader, leader);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    let first_after = acked
        .iter()
        .filter(|(started, _, _)| *started > killed_at)
        .map(|(_, done, _)| *done)
        .min()
        .expect("no write succeeded after the leader was killed");
    let recovery = first_after - killed_at;
    println!(
        "tls={tls} crash={crash}: leader {leader} stopped; new leader {new_leader}; first \
         write acknowledged {recovery:?} after the stop; {} writes acknowledged in all",
        acked.len()
    );
    assert!(recovery < Duration::from_secs(10));

    let present = c.assert_converged().await;
    for (_, _, key) in &acked {
        assert!(present.contains(key), "acknowledged write {key} was lost");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_crash_keeps_every_acknowledged_write_plaintext() {
    leader_failover_keeps_every_acknowledged_write(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_shutdown_hands_over_and_keeps_every_acknowledged_write() {
    leader_failover_keeps_every_acknowledged_write(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_crash_keeps_every_acknowledged_write_mtls() {
    leader_failover_keeps_every_acknowledged_write(true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_catches_up_from_the_log_and_from_a_snapshot() {
    let mut c = Cluster::start(3, true, 20).await;
    let leader = c.leader().await;
    let follower = if leader == 3 { 2 } else { 3 };
    for i in 0..5 {
        c.store(leader).txn(put(&format!("/a/{i}"))).await.unwrap();
    }
    c.assert_converged().await;

    // Behind by a few entries: the leader still has them in its log.
    c.stop(follower).await;
    for i in 0..5 {
        c.store(leader).txn(put(&format!("/b/{i}"))).await.unwrap();
    }
    c.restart(follower).await;
    assert_eq!(c.assert_converged().await.len(), 10);

    // Behind by far more than the log keeps: only a snapshot can bring it back.
    c.stop(follower).await;
    for i in 0..150 {
        c.store(leader).txn(put(&format!("/c/{i}"))).await.unwrap();
    }
    assert!(c.store(leader).status().raft_log_entries <= 25);
    c.restart(follower).await;
    assert_eq!(c.assert_converged().await.len(), 160);
    // The restarted replica serves linearizable reads and forwards writes (and sees its
    // own write as soon as txn returns).
    let r = c.store(follower).txn(put("/d/0")).await.unwrap();
    assert!(matches!(r, TxnResult::Applied { revision: 161, .. }));
    let got = c.store(follower).get("/d/0", Read::Local).await.unwrap();
    assert_eq!(got.kv.map(|kv| kv.mod_revision), Some(161));
    c.store(leader).txn(put("/d/1")).await.unwrap();
    let got = c
        .store(follower)
        .get("/d/1", Read::Linearizable)
        .await
        .unwrap();
    assert!(
        got.kv.is_some(),
        "a linearizable read on a follower missed a committed write"
    );
    assert!(c.store(follower).status().raft_log_entries <= 25);
    c.shutdown().await;
}

/// Runs `clients` tasks doing `op` in a loop for `secs`; returns operations per second.
async fn measure<F, Fut>(clients: usize, secs: u64, op: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|w| {
            let stop = stop.clone();
            let op = op.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    op(w, n).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Prints throughput on 3 local replicas; no assertion on the numbers (the machine is
/// shared and this is a debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_throughput_on_three_replicas() {
    let mut c = Cluster::start(3, false, 10_000).await;
    let leader = c.store(c.leader().await);
    let all = c.running();
    for clients in [1usize, 64] {
        let store = leader.clone();
        let rate = measure(clients, 3, move |w, n| {
            let store = store.clone();
            async move {
                store
                    .txn(put(&format!("/bench/leader/{w}/{n}")))
                    .await
                    .unwrap();
            }
        })
        .await;
        println!("3 replicas, {clients} client(s) on the leader: {rate:.0} txn/s");
    }
    let stores = all.clone();
    let rate = measure(64, 3, move |w, n| {
        let store = stores[w % stores.len()].clone();
        async move {
            store
                .txn(put(&format!("/bench/spread/{w}/{n}")))
                .await
                .unwrap();
        }
    })
    .await;
    println!("3 replicas, 64 clients spread over all replicas: {rate:.0} txn/s");
    let stores = all.clone();
    let rate = measure(64, 3, move |w, n| {
        let store = stores[w % stores.len()].clone();
        async move {
            store
                .get(&format!("/bench/spread/{w}/{n}"), Read::Linearizable)
                .await
                .unwrap();
        }
    })
    .await;
    println!("3 replicas, 64 clients spread over all replicas: {rate:.0} linearizable get/s");
    c.shutdown().await;
}
