//! Three apiserver replicas on one raft cluster: follower writes, leader failover under
//! load, and a replica catching up after a restart from disk.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tug_apiserver::testing::{self, TestClient, TestServer};

fn configmap(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}})
}

fn leader_index(servers: &[TestServer]) -> Option<usize> {
    servers
        .iter()
        .position(|s| s.is_running() && s.store().status().is_leader)
}

async fn wait_for_leader(servers: &[TestServer]) -> usize {
    for _ in 0..300 {
        if let Some(i) = leader_index(servers) {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader elected within 15 s");
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_a_follower_are_visible_on_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let servers = testing::cluster(3, dir.path()).await;
    let leader = wait_for_leader(&servers).await;
    let follower = (leader + 1) % 3;
    let (code, created) = servers[follower]
        .client()
        .post(CMS, &configmap("via-follower"))
        .await;
    assert_eq!(code, 201, "{created}");
    for s in &servers {
        let (code, got) = s.client().get(&format!("{CMS}/via-follower")).await;
        assert_eq!(code, 200, "replica {}: {got}", s.id);
        assert_eq!(
            got["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );
    }
    // Watches are served by every replica from its own applied stream.
    let mut w = servers[(leader + 2) % 3]
        .client()
        .watch(&format!(
            "{CMS}?watch=true&resourceVersion={}",
            created["metadata"]["resourceVersion"].as_str().unwrap()
        ))
        .await;
    servers[leader]
        .client()
        .post(CMS, &configmap("via-leader"))
        .await;
    let ev = w
        .next_change(Duration::from_secs(10))
        .await
        .expect("event on a third replica");
    assert_eq!(ev["object"]["metadata"]["name"], "via-leader");
    drop(w);
    for s in servers {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_serves_writes_after_the_leader_dies_and_no_acknowledged_write_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = testing::cluster(3, dir.path()).await;
    let leader = wait_for_leader(&servers).await;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));

    // Writers on every replica, the leader included; writes to a dead replica fail
    // and are simply not acknowledged.
    let clients: Vec<TestClient> = servers.iter().map(|s| s.client()).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for (w, client) in clients.into_iter().enumerate() {
        let acked = acked.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("w{w}-{i}");
                i += 1;
                let body = configmap(&name).to_string().into_bytes();
                if let Ok(r) = client
                    .request("POST", CMS, &[("content-type", "application/json")], body)
                    .await
                {
                    if r.status == 201 {
                        acked.lock().unwrap().insert(name);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_kill = acked.lock().unwrap().len();
    let killed_at = Instant::now();
    servers[leader].stop().await;

    // The first write acknowledged after the kill, through a survivor.
    let survivor = servers[survivors[0]].client();
    let mut n = 0;
    let failover = loop {
        let name = format!("after-kill-{n}");
        n += 1;
        let (code, _) = survivor.post(CMS, &configmap(&name)).await;
        if code == 201 {
            acked.lock().unwrap().insert(name);
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "no new leader within 30 s (last code {code})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("leader failover: first write acknowledged {failover:?} after the leader was stopped");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > before_kill,
        "writes continued after the failover"
    );
    let new_leader = wait_for_leader(&servers).await;
    assert_ne!(new_leader, leader);

    for i in &survivors {
        let (code, list) = servers[*i].client().get(CMS).await;
        assert_eq!(code, 200);
        let present: BTreeSet<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        let missing: Vec<_> = acked.difference(&present).collect();
        assert!(
            missing.is_empty(),
            "replica {} lost acknowledged writes: {missing:?}",
            servers[*i].id
        );
    }
    println!(
        "{} acknowledged writes, all present on both survivors",
        acked.len()
    );
    for s in servers {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_writes_fail_with_503_or_504_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = testing::cluster(3, dir.path()).await;
    wait_for_leader(&servers).await;
    servers[1].stop().await;
    servers[2].stop().await;
    let (code, status) = servers[0].client().post(CMS, &configmap("lonely")).await;
    assert!(code == 503 || code == 504, "{code} {status}");
    assert_eq!(status["kind"], "Status");
    println!("write without quorum: {code} {}", status["message"]);
    servers[1].restart().await.unwrap();
    wait_for_leader(&servers).await;
    let (code, _) = servers[1].client().get(&format!("{CMS}/lonely")).await;
    // A 504 means "may or may not have been applied"; a 503 means it was not.
    if status["reason"] == "ServiceUnavailable" {
        assert_eq!(code, 404);
    }
    for s in servers {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_from_disk_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = testing::cluster(3, dir.path()).await;
    let leader = wait_for_leader(&servers).await;
    let lagging = (leader + 1) % 3;
    servers[lagging].stop().await;
    let writer = servers[leader].client();
    for i in 0..20 {
        let (code, body) = writer
            .post(CMS, &configmap(&format!("while-down-{i}")))
            .await;
        assert_eq!(code, 201, "{body}");
    }
    let target = servers[leader].store().revision();
    servers[lagging]
        .restart()
        .await
        .expect("restart from the data dir");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // resourceVersion=0: what this replica itself has applied.
        let (code, list) = servers[lagging]
            .client()
            .get(&format!("{CMS}?resourceVersion=0"))
            .await;
        if code == 200 && list["items"].as_array().map_or(0, |a| a.len()) == 20 {
            assert!(servers[lagging].store().revision() >= target);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted replica did not catch up: {code} {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in servers {
        s.shutdown().await;
    }
}
