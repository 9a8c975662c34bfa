//! Three replicas over the simulated network: replication, forwarding, partitions, healing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tug_store::sim::SimNetwork;
use tug_store::{Config, Error, Op, Precondition, Read, Store, TxnResult};

struct Cluster {
    net: SimNetwork,
    stores: Vec<Store>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    async fn start(n: u64) -> Cluster {
        let net = SimNetwork::new();
        let peers: BTreeMap<u64, String> = (1..=n).map(|i| (i, format!("sim-{i}"))).collect();
        let mut stores = Vec::new();
        let mut dirs = Vec::new();
        for id in 1..=n {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = Config::new(id, peers.clone(), dir.path());
            cfg.tick = Duration::from_millis(20);
            stores.push(net.open(cfg).await.unwrap());
            dirs.push(dir);
        }
        Cluster {
            net,
            stores,
            _dirs: dirs,
        }
    }

    fn store(&self, id: u64) -> &Store {
        &self.stores[(id - 1) as usize]
    }

    /// Waits until `among` agree on one leader and returns it.
    async fn leader(&self, among: &[u64]) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let leaders: Vec<Option<u64>> = among
                .iter()
                .map(|&i| self.store(i).status().leader)
                .collect();
            if let Some(Some(l)) = leaders.first() {
                if among.contains(l)
                    && self.store(*l).status().is_leader
                    && leaders.iter().all(|x| *x == Some(*l))
                {
                    return *l;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader among {among:?}: {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn shutdown(&self) {
        for s in &self.stores {
            s.shutdown().await;
        }
    }
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        precondition: Precondition::None,
    }
}

async fn wait_revision(store: &Store, revision: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.revision() < revision {
        assert!(
            Instant::now() < deadline,
            "replica {} stuck at revision {} (want {revision})",
            store.id(),
            store.revision()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_leader_and_follower_reach_every_replica() {
    let c = Cluster::start(3).await;
    let leader = c.leader(&[1, 2, 3]).await;
    let follower = if leader == 1 { 2 } else { 1 };

    let r = c.store(leader).txn(put("/a", "1")).await.unwrap();
    assert!(matches!(r, TxnResult::Applied { revision: 1, .. }));
    // A follower's write is forwarded, and the follower sees it as soon as txn returns.
    let r = c.store(follower).txn(put("/b", "2")).await.unwrap();
    assert!(matches!(r, TxnResult::Applied { revision: 2, .. }));
    let got = c.store(follower).get("/b", Read::Local).await.unwrap();
    assert_eq!(got.kv.unwrap().value, b"2");
    // Linearizable reads work on every replica.
    for id in 1..=3 {
        let got = c.store(id).get("/a", Read::Linearizable).await.unwrap();
        assert_eq!(got.kv.unwrap().value, b"1", "replica {id}");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_cannot_commit_and_the_majority_continues_until_healed() {
    let c = Cluster::start(3).await;
    let leader = c.leader(&[1, 2, 3]).await;
    c.store(leader).txn(put("/before", "1")).await.unwrap();

    // Cut the leader off: it must not commit, the other two elect a new leader.
    let majority: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    c.net.isolate(leader);
    let err = c.store(leader).txn(put("/lost", "x")).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout | Error::NoLeader),
        "unexpected {err:?}"
    );
    let new_leader = c.leader(&majority).await;
    assert_ne!(new_leader, leader);
    for i in 0..20 {
        let via = majority[i % 2];
        c.store(via)
            .txn(put(&format!("/after/{i}"), "v"))
            .await
            .unwrap();
    }
    assert!(c
        .store(leader)
        .get("/after/0", Read::Local)
        .await
        .unwrap()
        .kv
        .is_none());

    c.net.heal();
    let target = c.store(new_leader).revision();
    for id in 1..=3 {
        wait_revision(c.store(id), target).await;
    }
    let mut lists = Vec::new();
    for id in 1..=3 {
        let list = c
            .store(id)
            .list("/", None, None, Read::Local)
            .await
            .unwrap();
        lists.push(list.kvs);
    }
    assert_eq!(lists[0], lists[1]);
    assert_eq!(lists[1], lists[2]);
    assert!(lists[0].iter().all(|kv| kv.key != "/lost"));
    assert_eq!(lists[0].len(), 21);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_converge_despite_dropped_and_delayed_messages() {
    let c = Cluster::start(3).await;
    c.leader(&[1, 2, 3]).await;
    c.net.set_drop_rate(0.1);
    c.net.set_delay(Duration::from_millis(5));
    let mut acked = Vec::new();
    for i in 0..30u64 {
        let via = c.store(i % 3 + 1);
        let key = format!("/k/{i}");
        if via.txn(put(&key, "v")).await.is_ok() {
            acked.push(key);
        }
    }
    c.net.set_drop_rate(0.0);
    c.net.set_delay(Duration::ZERO);
    let leader = c.leader(&[1, 2, 3]).await;
    // A linearizable read on the leader pins the final revision.
    c.store(leader)
        .get("/k/0", Read::Linearizable)
        .await
        .unwrap();
    let target = c.store(leader).revision();
    for id in 1..=3 {
        wait_revision(c.store(id), target).await;
        for key in &acked {
            let got = c.store(id).get(key, Read::Local).await.unwrap();
            assert!(
                got.kv.is_some(),
                "acknowledged {key} missing on replica {id}"
            );
        }
    }
    assert!(
        acked.len() >= 20,
        "only {} of 30 writes acknowledged",
        acked.len()
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_a_compacted_log_catches_up_by_snapshot() {
    let net = SimNetwork::new();
    let peers: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("sim-{i}"))).collect();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let cfg = |id: u64| {
        let mut cfg = Config::new(id, peers.clone(), dirs[(id - 1) as usize].path());
        cfg.tick = Duration::from_millis(20);
        cfg.snapshot_every = 20;
        cfg.history_limit = 1000;
        cfg
    };
    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(net.open(cfg(id)).await.unwrap());
    }
    let c = Cluster {
        net,
        stores,
        _dirs: Vec::new(),
    };
    let leader = c.leader(&[1, 2, 3]).await;
    let lagging = if leader == 3 { 2 } else { 3 };
    c.store(leader).txn(put("/k/first", "v")).await.unwrap();
    wait_revision(c.store(lagging), 1).await;
    let mut watch = c.store(lagging).watch("/k/", 1).await.unwrap();

    c.net.isolate(lagging);
    for i in 0..100 {
        c.store(leader)
            .txn(put(&format!("/k/{i}"), "v"))
            .await
            .unwrap();
    }
    assert!(c.store(leader).status().raft_log_entries <= 25);
    c.net.heal();
    wait_revision(c.store(lagging), 101).await;
    let got = c
        .store(lagging)
        .list("/k/", None, None, Read::Local)
        .await
        .unwrap();
    assert_eq!(got.kvs.len(), 101);
    // The live watcher on the lagging replica continues across the snapshot.
    use futures::StreamExt;
    for want in 2..=101 {
        let e = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .unwrap()
            .expect("watch ended");
        assert_eq!(e.kv.mod_revision, want);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_cluster_restarts_from_disk() {
    let net = SimNetwork::new();
    let peers: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("sim-{i}"))).collect();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let cfg = |id: u64| {
        let mut cfg = Config::new(id, peers.clone(), dirs[(id - 1) as usize].path());
        cfg.tick = Duration::from_millis(20);
        cfg.snapshot_every = 16;
        cfg
    };
    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(net.open(cfg(id)).await.unwrap());
    }
    let c = Cluster {
        net: net.clone(),
        stores,
        _dirs: Vec::new(),
    };
    c.leader(&[1, 2, 3]).await;
    for i in 0..40 {
        c.store(i % 3 + 1)
            .txn(put(&format!("/k/{i}"), "v"))
            .await
            .unwrap();
    }
    c.shutdown().await;

    let mut stores = Vec::new();
    for id in 1..=3 {
        stores.push(net.open(cfg(id)).await.unwrap());
    }
    let c = Cluster {
        net,
        stores,
        _dirs: Vec::new(),
    };
    c.leader(&[1, 2, 3]).await;
    let r = c.store(2).txn(put("/k/after", "v")).await.unwrap();
    assert!(
        matches!(r, TxnResult::Applied { revision: 41, .. }),
        "{r:?}"
    );
    for id in 1..=3 {
        wait_revision(c.store(id), 41).await;
        let all = c
            .store(id)
            .list("/k/", None, None, Read::Linearizable)
            .await
            .unwrap();
        assert_eq!(all.kvs.len(), 41, "replica {id}");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linearizable_read_on_a_brand_new_leader_waits_for_its_first_commit() {
    let c = Cluster::start(3).await;
    let old = c.leader(&[1, 2, 3]).await;
    c.store(old).txn(put("/a", "1")).await.unwrap();
    // Slow links widen the window between winning the election and committing the new
    // term's first entry, where raft-rs drops read-index requests.
    c.net.set_delay(Duration::from_millis(40));
    c.net.isolate(old);
    let majority: Vec<u64> = (1..=3).filter(|&i| i != old).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let new = loop {
        if let Some(&id) = majority.iter().find(|&&i| c.store(i).status().is_leader) {
            break id;
        }
        assert!(Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let got = c.store(new).get("/a", Read::Linearizable).await.unwrap();
    assert_eq!(got.kv.unwrap().value, b"1");
    c.net.set_delay(Duration::ZERO);
    c.net.heal();
    c.shutdown().await;
}
