//! A one-replica store end to end: writes, reads, lists, watches, restart.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use tug_store::{Config, Error, EventKind, Op, Precondition, Read, Store, TxnResult};

fn config(dir: &std::path::Path) -> Config {
    let peers = BTreeMap::from([(1, "127.0.0.1:0".to_string())]);
    Config::new(1, peers, dir)
}

fn put(key: &str, value: &str, precondition: Precondition) -> Op {
    Op::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        precondition,
    }
}

fn revision_of(r: &TxnResult) -> u64 {
    match r {
        TxnResult::Applied { revision, .. } => *revision,
        TxnResult::Failed { current } => panic!("txn failed; current = {current:?}"),
    }
}

#[tokio::test]
async fn txn_get_and_list_on_one_replica() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();

    let r1 = store
        .txn(put("/r/pods/a", "1", Precondition::Absent))
        .await
        .unwrap();
    assert_eq!(revision_of(&r1), 1);
    let again = store
        .txn(put("/r/pods/a", "x", Precondition::Absent))
        .await
        .unwrap();
    assert!(matches!(again, TxnResult::Failed { current: Some(_) }));
    let r2 = store
        .txn(put("/r/pods/a", "2", Precondition::ModRevision(1)))
        .await
        .unwrap();
    assert_eq!(revision_of(&r2), 2);
    for k in ["/r/pods/b", "/r/pods/c", "/r/svc/a"] {
        store.txn(put(k, "v", Precondition::None)).await.unwrap();
    }
    assert_eq!(store.revision(), 5);

    let got = store.get("/r/pods/a", Read::Linearizable).await.unwrap();
    let kv = got.kv.unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"2"[..], 1, 2)
    );
    assert_eq!(got.revision, 5);
    assert!(store
        .get("/r/pods/zz", Read::Local)
        .await
        .unwrap()
        .kv
        .is_none());

    let page = store
        .list("/r/pods/", None, Some(2), Read::Linearizable)
        .await
        .unwrap();
    let keys: Vec<_> = page.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/pods/a", "/r/pods/b"]);
    assert!(page.more);
    let rest = store
        .list("/r/pods/", Some("/r/pods/b"), Some(2), Read::Local)
        .await
        .unwrap();
    let keys: Vec<_> = rest.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/pods/c"]);
    assert!(!rest.more);

    let deleted = store
        .txn(Op::Delete {
            key: "/r/pods/b".into(),
            precondition: Precondition::Exists,
        })
        .await
        .unwrap();
    assert_eq!(revision_of(&deleted), 6);
    let status = store.status();
    assert!(status.is_leader);
    assert_eq!(status.leader, Some(1));
    assert_eq!(status.revision, 6);
    store.shutdown().await;
    assert!(matches!(
        store.get("/r/pods/a", Read::Local).await,
        Err(Error::Stopped)
    ));
}

#[tokio::test]
async fn watch_replays_history_then_follows_live_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    store
        .txn(put("/w/a", "1", Precondition::None))
        .await
        .unwrap();
    store
        .txn(put("/other", "1", Precondition::None))
        .await
        .unwrap();
    store
        .txn(put("/w/a", "2", Precondition::None))
        .await
        .unwrap();

    let mut w = store.watch("/w/", 0).await.unwrap();
    let e1 = w.next().await.unwrap();
    assert_eq!((e1.kind, e1.kv.mod_revision), (EventKind::Added, 1));
    let e2 = w.next().await.unwrap();
    assert_eq!((e2.kind, e2.kv.mod_revision), (EventKind::Modified, 3));
    assert_eq!(e2.prev.unwrap().value, b"1");

    store
        .txn(Op::Delete {
            key: "/w/a".into(),
            precondition: Precondition::None,
        })
        .await
        .unwrap();
    store
        .txn(put("/other", "2", Precondition::None))
        .await
        .unwrap();
    store
        .txn(put("/w/b", "1", Precondition::None))
        .await
        .unwrap();
    let e3 = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e3.kind, e3.kv.mod_revision), (EventKind::Deleted, 4));
    assert_eq!(e3.kv.value, b"2");
    let e4 = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e4.kv.key.as_str(), e4.kv.mod_revision), ("/w/b", 6));

    // Resuming from the middle skips what was already seen.
    let mut resumed = store.watch("/w/", 3).await.unwrap();
    assert_eq!(resumed.next().await.unwrap().kv.mod_revision, 4);

    store.shutdown().await;
    // Shutdown ends live watchers.
    let end = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap();
    assert!(end.is_none());
}

#[tokio::test]
async fn watch_from_before_the_retained_history_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.history_limit = 5;
    let store = Store::open(cfg).await.unwrap();
    for i in 0..20 {
        store
            .txn(put(&format!("/k/{i}"), "v", Precondition::None))
            .await
            .unwrap();
    }
    assert_eq!(store.oldest_revision(), 15);
    match store.watch("/k/", 3).await {
        Err(Error::Compacted { requested, oldest }) => assert_eq!((requested, oldest), (3, 15)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    let mut w = store.watch("/k/", 15).await.unwrap();
    assert_eq!(w.next().await.unwrap().kv.mod_revision, 16);
    store.shutdown().await;
}

#[tokio::test]
async fn a_reopened_replica_keeps_its_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    for i in 0..10 {
        store
            .txn(put(&format!("/k/{i}"), "v", Precondition::None))
            .await
            .unwrap();
    }
    store.shutdown().await;

    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(store.revision(), 10);
    let r = store
        .txn(put("/k/new", "v", Precondition::Absent))
        .await
        .unwrap();
    assert_eq!(revision_of(&r), 11);
    let all = store
        .list("/k/", None, None, Read::Linearizable)
        .await
        .unwrap();
    assert_eq!(all.kvs.len(), 11);
    store.shutdown().await;
}

#[tokio::test]
async fn the_raft_log_stays_bounded_under_sustained_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.snapshot_every = 50;
    let store = Store::open(cfg.clone()).await.unwrap();
    for i in 0..400 {
        store
            .txn(put(&format!("/k/{}", i % 10), "v", Precondition::None))
            .await
            .unwrap();
    }
    let status = store.status();
    assert!(
        status.raft_log_entries <= cfg.snapshot_every + 5,
        "raft log holds {} entries",
        status.raft_log_entries
    );
    store.shutdown().await;
    // And the compacted log restarts cleanly.
    let store = Store::open(cfg).await.unwrap();
    assert_eq!(store.revision(), 400);
    store
        .txn(put("/k/x", "v", Precondition::None))
        .await
        .unwrap();
    store.shutdown().await;
}
