//! The replicated state machine in sled: objects by key, the revision counter, the applied
//! raft index and the bounded watch history, all changed together in one atomic batch.

use std::collections::HashMap;
use std::ops::Bound;

use prost::Message as _;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Tree;

use crate::codec;
use crate::pb;
use crate::{Error, Event, EventKind, KeyValue, Op, Precondition, Result, TxnResult};

/// The state machine lives in ONE sled tree so a whole apply batch (objects, history,
/// applied index, revision) is written by one atomic `apply_batch`, which is much cheaper
/// than a multi-tree transaction. Keys are prefixed by kind:
/// `k<key>` objects, `h<revision: u64 BE>` watch history, `m<name>` counters.
const KV: u8 = b'k';
const HISTORY: u8 = b'h';
const APPLIED: &[u8] = b"mapplied";
const REVISION: &[u8] = b"mrevision";
/// Watch events carried in a raft snapshot at most.
const SNAPSHOT_HISTORY: u64 = 10_000;

fn kv_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(KV);
    k.extend_from_slice(key.as_bytes());
    k
}

fn history_key(revision: u64) -> [u8; 9] {
    let mut k = [HISTORY; 9];
    k[1..].copy_from_slice(&revision.to_be_bytes());
    k
}

/// One committed raft entry as the state machine sees it.
pub(crate) struct Committed {
    pub index: u64,
    /// `None` for entries without a proposal (a new leader's empty entry).
    pub proposal: Option<(u64, Op)>,
}

/// What applying a batch of entries did.
#[derive(Default)]
pub(crate) struct ApplyOutput {
    /// (request id, raft index, result) for every proposal applied now.
    pub results: Vec<(u64, u64, TxnResult)>,
    /// Events in revision order.
    pub events: Vec<Event>,
    pub applied_index: u64,
    pub revision: u64,
}

/// The state-machine tree. Only the raft thread writes; anyone may read.
pub(crate) struct StateMachine {
    pub(crate) tree: Tree,
    history_limit: u64,
}

pub(crate) fn storage_err(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

fn read_u64(bytes: Option<&[u8]>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

pub(crate) fn tx_err(e: TransactionError<Error>) -> Error {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => storage_err(e),
    }
}

impl StateMachine {
    pub(crate) fn open(db: &sled::Db, history_limit: u64) -> Result<Self> {
        let sm = StateMachine {
            tree: db.open_tree("state").map_err(storage_err)?,
            history_limit,
        };
        sm.trim_history()?;
        Ok(sm)
    }

    fn history_range(&self, from: u64) -> sled::Iter {
        self.tree.range(history_key(from)..=history_key(u64::MAX))
    }

    /// Drops history beyond the limit (the limit may have shrunk since the last start).
    fn trim_history(&self) -> Result<()> {
        let revision = self.revision()?;
        let keep_from = revision.saturating_sub(self.history_limit) + 1;
        let mut batch = sled::Batch::default();
        for key in self
            .tree
            .range(history_key(0)..history_key(keep_from))
            .keys()
        {
            batch.remove(key.map_err(storage_err)?);
        }
        self.tree.apply_batch(batch).map_err(storage_err)
    }

    fn meta(&self, key: &[u8]) -> Result<u64> {
        let v = self.tree.get(key).map_err(storage_err)?;
        Ok(read_u64(v.as_deref()))
    }

    pub(crate) fn applied_index(&self) -> Result<u64> {
        self.meta(APPLIED)
    }

    pub(crate) fn revision(&self) -> Result<u64> {
        self.meta(REVISION)
    }

    /// The smallest `after` a watch can start from: the revision just before the oldest
    /// retained event (or the current revision when no history is kept).
    pub(crate) fn oldest_revision(&self) -> Result<u64> {
        match self.history_range(0).next() {
            Some(item) => {
                let (k, _) = item.map_err(storage_err)?;
                Ok(read_u64(k.get(1..)).saturating_sub(1))
            }
            None => self.revision(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        match self.tree.get(kv_key(key)).map_err(storage_err)? {
            Some(v) => Ok(Some(codec::decode_stored(key.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Keys with `prefix` strictly after `start_after`, at most `limit`; the bool says
    /// whether more were left out.
    pub(crate) fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<(Vec<KeyValue>, bool)> {
        let start = match start_after {
            Some(s) if s >= prefix => Bound::Excluded(kv_key(s)),
            _ => Bound::Included(kv_key(prefix)),
        };
        let full_prefix = kv_key(prefix);
        let mut kvs = Vec::new();
        for item in self.tree.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (k, v) = item.map_err(storage_err)?;
            if !k.starts_with(&full_prefix) {
                break;
            }
            if limit.is_some_and(|l| kvs.len() >= l) {
                return Ok((kvs, true));
            }
            kvs.push(codec::decode_stored(&k[1..], &v)?);
        }
        Ok((kvs, false))
    }

    /// Up to `max` retained events with revision >= `from`, oldest first.
    pub(crate) fn history_from(&self, from: u64, max: usize) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        for item in self.history_range(from).take(max) {
            let (_, v) = item.map_err(storage_err)?;
            out.push(codec::event_from_pb(codec::decode(&v, "history event")?)?);
        }
        Ok(out)
    }

    /// Applies committed entries with ONE atomic batch that also records the applied
    /// index, so a crash keeps all of them or none, and entries at or below the stored
    /// applied index are skipped (re-delivery after a restart is harmless). The raft
    /// thread is the only writer, so reading the committed state plus this batch's own
    /// earlier writes is exact.
    pub(crate) fn apply(&self, entries: &[Committed]) -> Result<ApplyOutput> {
        let mut out = ApplyOutput {
            applied_index: self.applied_index()?,
            revision: self.revision()?,
            ..Default::default()
        };
        if entries.is_empty() {
            return Ok(out);
        }
        let mut batch = sled::Batch::default();
        let mut written: HashMap<String, Option<KeyValue>> = HashMap::new();
        for entry in entries {
            if entry.index <= out.applied_index {
                continue;
            }
            out.applied_index = entry.index;
            let Some((request_id, op)) = &entry.proposal else {
                continue;
            };
            let key = op_key(op);
            let current = match written.get(key) {
                Some(v) => v.clone(),
                None => self.get(key)?,
            };
            let Some(event) = self.decide(op, current.as_ref(), out.revision) else {
                out.results
                    .push((*request_id, entry.index, TxnResult::Failed { current }));
                continue;
            };
            out.revision += 1;
            let revision = out.revision;
            match event.kind {
                EventKind::Deleted => {
                    batch.remove(kv_key(key));
                    written.insert(key.clone(), None);
                }
                _ => {
                    let kv = &event.kv;
                    batch.insert(
                        kv_key(key),
                        codec::encode_stored(&kv.value, kv.create_revision, kv.mod_revision),
                    );
                    written.insert(key.clone(), Some(kv.clone()));
                }
            }
            batch.insert(
                &history_key(revision),
                codec::event_to_pb(&event).encode_to_vec(),
            );
            // Every revision has exactly one event, so dropping revision - limit keeps
            // the window at `history_limit` events.
            if revision > self.history_limit {
                batch.remove(&history_key(revision - self.history_limit));
            }
            out.results.push((
                *request_id,
                entry.index,
                TxnResult::Applied {
                    revision,
                    kv: event.kv.clone(),
                },
            ));
            out.events.push(event);
        }
        batch.insert(APPLIED, &out.applied_index.to_be_bytes());
        batch.insert(REVISION, &out.revision.to_be_bytes());
        self.tree.apply_batch(batch).map_err(storage_err)?;
        Ok(out)
    }

    /// The event `op` produces at the next revision, or `None` if it fails.
    fn decide(&self, op: &Op, current: Option<&KeyValue>, revision: u64) -> Option<Event> {
        let (Op::Put { precondition, .. } | Op::Delete { precondition, .. }) = op;
        if !precondition_holds(*precondition, current) {
            return None;
        }
        let revision = revision + 1;
        match op {
            Op::Put { key, value, .. } => {
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: current.map_or(revision, |c| c.create_revision),
                    mod_revision: revision,
                };
                let kind = if current.is_some() {
                    EventKind::Modified
                } else {
                    EventKind::Added
                };
                Some(Event {
                    kind,
                    kv,
                    prev: current.cloned(),
                })
            }
            Op::Delete { .. } => {
                // Deleting an absent key changes nothing, so it bumps no revision.
                let prev = current?.clone();
                let mut kv = prev.clone();
                kv.mod_revision = revision;
                Some(Event {
                    kind: EventKind::Deleted,
                    kv,
                    prev: Some(prev),
                })
            }
        }
    }

    /// The whole state machine as a raft snapshot payload.
    pub(crate) fn dump(&self) -> Result<pb::SnapshotData> {
        let mut data = pb::SnapshotData {
            revision: self.revision()?,
            ..Default::default()
        };
        for item in self.tree.scan_prefix([KV]) {
            let (k, v) = item.map_err(storage_err)?;
            let mut kv: pb::KeyValue = codec::decode(&v, "stored object")?;
            kv.key = String::from_utf8_lossy(&k[1..]).into_owned();
            data.kvs.push(kv);
        }
        // Only the newest part of the history travels: the snapshot is built on the raft
        // thread and must stay small enough not to stall heartbeats. Watches on the
        // restored replica from older revisions get `Compacted` and re-list.
        let from = data.revision.saturating_sub(SNAPSHOT_HISTORY) + 1;
        for item in self.history_range(from).values() {
            data.history
                .push(codec::decode(&item.map_err(storage_err)?, "history event")?);
        }
        Ok(data)
    }
}

fn op_key(op: &Op) -> &String {
    match op {
        Op::Put { key, .. } | Op::Delete { key, .. } => key,
    }
}

fn precondition_holds(precondition: Precondition, current: Option<&KeyValue>) -> bool {
    match precondition {
        Precondition::None => true,
        Precondition::Absent => current.is_none(),
        Precondition::Exists => current.is_some(),
        Precondition::ModRevision(r) => current.is_some_and(|c| c.mod_revision == r),
    }
}

/// Replaces the state machine with a snapshot inside a caller's transaction; `old_keys`
/// are every key of the state tree before.
pub(crate) fn restore_in_tx(
    tree: &TransactionalTree,
    old_keys: &[sled::IVec],
    data: &pb::SnapshotData,
    applied_index: u64,
) -> Result<(), ConflictableTransactionError<Error>> {
    for k in old_keys {
        tree.remove(k)?;
    }
    for item in &data.kvs {
        tree.insert(
            kv_key(&item.key),
            codec::encode_stored(&item.value, item.create_revision, item.mod_revision),
        )?;
    }
    for event in &data.history {
        let revision = event.kv.as_ref().map_or(0, |kv| kv.mod_revision);
        tree.insert(&history_key(revision), event.encode_to_vec())?;
    }
    tree.insert(APPLIED, &applied_index.to_be_bytes())?;
    tree.insert(REVISION, &data.revision.to_be_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(limit: u64) -> (tempfile::TempDir, sled::Db, StateMachine) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let sm = StateMachine::open(&db, limit).unwrap();
        (dir, db, sm)
    }

    fn put(key: &str, value: &str, precondition: Precondition) -> Op {
        Op::Put {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            precondition,
        }
    }

    fn del(key: &str, precondition: Precondition) -> Op {
        Op::Delete {
            key: key.into(),
            precondition,
        }
    }

    /// Applies ops one entry each, starting after the current applied index.
    fn apply(sm: &StateMachine, ops: Vec<Op>) -> Vec<TxnResult> {
        let first = sm.applied_index().unwrap() + 1;
        let entries: Vec<Committed> = ops
            .into_iter()
            .enumerate()
            .map(|(i, op)| Committed {
                index: first + i as u64,
                proposal: Some((i as u64, op)),
            })
            .collect();
        sm.apply(&entries)
            .unwrap()
            .results
            .into_iter()
            .map(|(_, _, r)| r)
            .collect()
    }

    fn applied_revision(r: &TxnResult) -> Option<u64> {
        match r {
            TxnResult::Applied { revision, .. } => Some(*revision),
            TxnResult::Failed { .. } => None,
        }
    }

    #[test]
    fn preconditions_decide_and_only_applied_writes_bump_the_revision() {
        let (_dir, _db, sm) = open(100);
        // (op, expected revision if applied)
        let cases = [
            (put("/a", "1", Precondition::Absent), Some(1)),
            (put("/a", "2", Precondition::Absent), None),
            (put("/a", "2", Precondition::ModRevision(7)), None),
            (put("/a", "2", Precondition::ModRevision(1)), Some(2)),
            (put("/b", "1", Precondition::Exists), None),
            (put("/b", "1", Precondition::None), Some(3)),
            (del("/c", Precondition::None), None),
            (del("/b", Precondition::ModRevision(1)), None),
            (del("/b", Precondition::ModRevision(3)), Some(4)),
            (put("/a", "3", Precondition::Exists), Some(5)),
        ];
        for (i, (op, want)) in cases.into_iter().enumerate() {
            let got = apply(&sm, vec![op]);
            assert_eq!(applied_revision(&got[0]), want, "case {i}: {got:?}");
        }
        assert_eq!(sm.revision().unwrap(), 5);
        let a = sm.get("/a").unwrap().unwrap();
        assert_eq!((a.create_revision, a.mod_revision), (1, 5));
        assert_eq!(a.value, b"3");
        assert!(sm.get("/b").unwrap().is_none());
    }

    #[test]
    fn failed_precondition_reports_the_current_value() {
        let (_dir, _db, sm) = open(100);
        apply(&sm, vec![put("/a", "1", Precondition::None)]);
        let got = apply(&sm, vec![put("/a", "2", Precondition::Absent)]);
        match &got[0] {
            TxnResult::Failed { current: Some(kv) } => assert_eq!(kv.value, b"1"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn events_carry_kind_and_previous_value() {
        let (_dir, _db, sm) = open(100);
        apply(
            &sm,
            vec![
                put("/a", "1", Precondition::None),
                put("/a", "2", Precondition::None),
                del("/a", Precondition::None),
            ],
        );
        let events = sm.history_from(0, 10).unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::Added, EventKind::Modified, EventKind::Deleted]
        );
        assert_eq!(events[2].kv.mod_revision, 3);
        assert_eq!(events[2].kv.value, b"2");
        assert_eq!(events[1].prev.as_ref().unwrap().value, b"1");
    }

    #[test]
    fn history_is_trimmed_to_the_limit() {
        let (_dir, _db, sm) = open(3);
        for i in 0..10 {
            apply(&sm, vec![put(&format!("/k{i}"), "v", Precondition::None)]);
        }
        let events = sm.history_from(0, 100).unwrap();
        let revs: Vec<_> = events.iter().map(|e| e.kv.mod_revision).collect();
        assert_eq!(revs, [8, 9, 10]);
        assert_eq!(sm.oldest_revision().unwrap(), 7);
    }

    #[test]
    fn reapplying_entries_after_a_restart_does_not_apply_them_twice() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<Committed> = (1..=3)
            .map(|i| Committed {
                index: i,
                proposal: Some((i, put("/a", &i.to_string(), Precondition::None))),
            })
            .collect();
        {
            let db = sled::open(dir.path()).unwrap();
            let sm = StateMachine::open(&db, 100).unwrap();
            sm.apply(&entries[..2]).unwrap();
            db.flush().unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let sm = StateMachine::open(&db, 100).unwrap();
        // Raft re-delivers from its own applied point; entries 1 and 2 must be skipped.
        let out = sm.apply(&entries).unwrap();
        assert_eq!(out.results.len(), 1);
        assert_eq!(sm.revision().unwrap(), 3);
        assert_eq!(sm.applied_index().unwrap(), 3);
        assert_eq!(sm.get("/a").unwrap().unwrap().create_revision, 1);
    }

    #[test]
    fn list_honours_prefix_start_after_and_limit() {
        let (_dir, _db, sm) = open(100);
        let ops = ["/p/a", "/p/b", "/p/c", "/q/a"]
            .iter()
            .map(|k| put(k, "v", Precondition::None))
            .collect();
        apply(&sm, ops);
        let keys =
            |r: (Vec<KeyValue>, bool)| (r.0.into_iter().map(|kv| kv.key).collect::<Vec<_>>(), r.1);
        assert_eq!(
            keys(sm.list("/p/", None, None).unwrap()),
            (vec!["/p/a".into(), "/p/b".into(), "/p/c".into()], false)
        );
        assert_eq!(
            keys(sm.list("/p/", None, Some(2)).unwrap()),
            (vec!["/p/a".into(), "/p/b".into()], true)
        );
        assert_eq!(
            keys(sm.list("/p/", Some("/p/b"), Some(2)).unwrap()),
            (vec!["/p/c".to_string()], false)
        );
        assert_eq!(
            keys(sm.list("/p/", Some("/p/c"), None).unwrap()),
            (vec![], false)
        );
    }
}
