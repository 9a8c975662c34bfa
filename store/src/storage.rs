//! `raft::Storage` over sled: log entries, hard state, conf state and the snapshot point
//! (the index/term the log was compacted up to). Snapshots are produced on demand from
//! the state machine, which lives in the same sled database.

use std::sync::Arc;

use prost::Message as _;
use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use sled::{Transactional, Tree};

use crate::codec;
use crate::pb;
use crate::state::{restore_in_tx, storage_err, tx_err, StateMachine};
use crate::{Error, Result};

const HARD_STATE: &[u8] = b"hard_state";
const CONF_STATE: &[u8] = b"conf_state";
/// 16 bytes: index and term of the last entry removed by compaction or a snapshot.
const SNAPSHOT_POINT: &[u8] = b"snapshot_point";

pub(crate) struct SledStorage {
    db: sled::Db,
    log: Tree,
    raft: Tree,
    sm: Arc<StateMachine>,
    hard_state: HardState,
    conf_state: ConfState,
    snap_index: u64,
    snap_term: u64,
    last_index: u64,
    /// sled's data file. sled 0.34's `flush` writes with `sync_file_range`, which flushes
    /// neither the drive's cache nor the file's metadata; raft must not acknowledge
    /// entries before they are durable, so every flush ends with an fdatasync of it.
    data_file: std::fs::File,
}

fn pb_err(e: protobuf::ProtobufError) -> Error {
    Error::Storage(format!("corrupt raft record: {e}"))
}

fn raft_storage_err(e: Error) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

impl SledStorage {
    /// Loads raft state, or bootstraps a fresh replica with every id in `voters` as a voter.
    pub(crate) fn open(
        db: sled::Db,
        data_dir: &std::path::Path,
        sm: Arc<StateMachine>,
        voters: Vec<u64>,
    ) -> Result<Self> {
        let data_path = data_dir.join("db");
        let data_file = std::fs::File::open(&data_path).map_err(|e| {
            Error::Storage(format!(
                "opening {} for fdatasync: {e}",
                data_path.display()
            ))
        })?;
        let log = db.open_tree("raft_log").map_err(storage_err)?;
        let raft = db.open_tree("raft_state").map_err(storage_err)?;
        let mut s = SledStorage {
            db,
            log,
            raft,
            sm,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            snap_index: 0,
            snap_term: 0,
            last_index: 0,
            data_file,
        };
        match s.raft.get(CONF_STATE).map_err(storage_err)? {
            Some(cs) => {
                s.conf_state = ConfState::parse_from_bytes(&cs).map_err(pb_err)?;
                if let Some(hs) = s.raft.get(HARD_STATE).map_err(storage_err)? {
                    s.hard_state = HardState::parse_from_bytes(&hs).map_err(pb_err)?;
                }
                if let Some(p) = s.raft.get(SNAPSHOT_POINT).map_err(storage_err)? {
                    let p: [u8; 16] = p
                        .as_ref()
                        .try_into()
                        .map_err(|_| Error::Storage("corrupt raft snapshot point".into()))?;
                    s.snap_index = u64::from_be_bytes(p[..8].try_into().unwrap_or_default());
                    s.snap_term = u64::from_be_bytes(p[8..].try_into().unwrap_or_default());
                }
                s.last_index = match s.log.last().map_err(storage_err)? {
                    Some((k, _)) => index_of(&k),
                    None => s.snap_index,
                };
            }
            None => {
                // First start: the static initial cluster, all voters, empty log.
                s.conf_state.voters = voters;
                let cs = s.conf_state.write_to_bytes().map_err(pb_err)?;
                s.raft.insert(CONF_STATE, cs).map_err(storage_err)?;
                s.write_snapshot_point()?;
                s.flush()?;
            }
        }
        // The applied index is written with the state machine and may be durable while the
        // hard state's commit index from the same Ready is not; it was committed anyway.
        let applied = s.sm.applied_index()?;
        if applied > s.hard_state.commit {
            s.hard_state.commit = applied.min(s.last_index);
        }
        Ok(s)
    }

    pub(crate) fn snapshot_point(&self) -> (u64, u64) {
        (self.snap_index, self.snap_term)
    }

    pub(crate) fn log_len(&self) -> u64 {
        self.last_index - self.snap_index
    }

    fn write_snapshot_point(&self) -> Result<()> {
        let mut p = [0u8; 16];
        p[..8].copy_from_slice(&self.snap_index.to_be_bytes());
        p[8..].copy_from_slice(&self.snap_term.to_be_bytes());
        self.raft.insert(SNAPSHOT_POINT, &p).map_err(storage_err)?;
        Ok(())
    }

    /// Appends entries (truncating any conflicting suffix). Not durable until `flush`.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        for e in entries {
            batch.insert(&e.index.to_be_bytes(), e.write_to_bytes().map_err(pb_err)?);
        }
        let new_last = entries[entries.len() - 1].index;
        // A new leader may overwrite our uncommitted tail: drop what lies beyond it.
        for i in (new_last + 1)..=self.last_index {
            batch.remove(&i.to_be_bytes());
        }
        debug_assert!(first.index > self.snap_index);
        self.log.apply_batch(batch).map_err(storage_err)?;
        self.last_index = new_last;
        Ok(())
    }

    /// Records the hard state. Not durable until `flush`.
    pub(crate) fn set_hard_state(&mut self, hs: HardState) -> Result<()> {
        self.raft
            .insert(HARD_STATE, hs.write_to_bytes().map_err(pb_err)?)
            .map_err(storage_err)?;
        self.hard_state = hs;
        Ok(())
    }

    pub(crate) fn set_commit(&mut self, commit: u64) -> Result<()> {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.set_hard_state(hs)
    }

    /// Makes everything written since the last flush (log, hard state, state machine)
    /// durable: sled writes it out, then one fdatasync (see `data_file`).
    pub(crate) fn flush(&self) -> Result<()> {
        self.db.flush().map_err(storage_err)?;
        self.data_file
            .sync_data()
            .map_err(|e| Error::Storage(format!("fdatasync of sled's data file: {e}")))?;
        Ok(())
    }

    /// Drops log entries up to and including `index` (which must be applied).
    pub(crate) fn compact(&mut self, index: u64) -> Result<()> {
        if index <= self.snap_index {
            return Ok(());
        }
        let term = self.term_of(index)?;
        let mut batch = sled::Batch::default();
        for i in (self.snap_index + 1)..=index {
            batch.remove(&i.to_be_bytes());
        }
        self.snap_index = index;
        self.snap_term = term;
        // The new snapshot point goes first so a crash never leaves a gap before the log.
        self.write_snapshot_point()?;
        self.log.apply_batch(batch).map_err(storage_err)?;
        Ok(())
    }

    /// Installs a snapshot from the leader: the state machine, the log (emptied) and the
    /// raft metadata are replaced in one transaction, so a crash keeps the old or the new.
    pub(crate) fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<pb::SnapshotData> {
        let meta = snap.get_metadata();
        let data: pb::SnapshotData = codec::decode(snap.get_data(), "raft snapshot")?;
        let mut hs = self.hard_state.clone();
        hs.commit = hs.commit.max(meta.index);
        hs.term = hs.term.max(meta.term);
        let hs_bytes = hs.write_to_bytes().map_err(pb_err)?;
        let cs_bytes = meta.get_conf_state().write_to_bytes().map_err(pb_err)?;
        let mut point = [0u8; 16];
        point[..8].copy_from_slice(&meta.index.to_be_bytes());
        point[8..].copy_from_slice(&meta.term.to_be_bytes());
        let keys = |t: &Tree| -> Result<Vec<sled::IVec>> {
            t.iter()
                .keys()
                .collect::<Result<_, _>>()
                .map_err(storage_err)
        };
        let old_state = keys(&self.sm.tree)?;
        let old_log = keys(&self.log)?;
        (&self.sm.tree, &self.log, &self.raft)
            .transaction(|(state, log, raft)| {
                restore_in_tx(state, &old_state, &data, meta.index)?;
                for k in &old_log {
                    log.remove(k)?;
                }
                raft.insert(HARD_STATE, hs_bytes.as_slice())?;
                raft.insert(CONF_STATE, cs_bytes.as_slice())?;
                raft.insert(SNAPSHOT_POINT, &point)?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.hard_state = hs;
        self.conf_state = meta.get_conf_state().clone();
        self.snap_index = meta.index;
        self.snap_term = meta.term;
        self.last_index = meta.index;
        Ok(data)
    }

    fn term_of(&self, idx: u64) -> Result<u64> {
        if idx == self.snap_index {
            return Ok(self.snap_term);
        }
        match self.log.get(idx.to_be_bytes()).map_err(storage_err)? {
            Some(bytes) => Ok(Entry::parse_from_bytes(&bytes).map_err(pb_err)?.term),
            None => Err(Error::Storage(format!("raft log has no entry {idx}"))),
        }
    }
}

fn index_of(key: &[u8]) -> u64 {
    key.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

impl raft::Storage for SledStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.snap_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut out = Vec::with_capacity((high - low) as usize);
        for item in self.log.range(low.to_be_bytes()..high.to_be_bytes()) {
            let (_, v) = item.map_err(|e| raft_storage_err(storage_err(e)))?;
            out.push(Entry::parse_from_bytes(&v).map_err(|e| raft_storage_err(pb_err(e)))?);
        }
        raft::util::limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.snap_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        self.term_of(idx).map_err(raft_storage_err)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snap_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    /// Builds a snapshot of the state machine as applied right now. The raft thread is the
    /// only writer, so the dump is consistent with the applied index it is labelled with.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let applied = self.sm.applied_index().map_err(raft_storage_err)?;
        if applied < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let data = self.sm.dump().map_err(raft_storage_err)?;
        let meta = SnapshotMetadata {
            index: applied,
            term: self.term_of(applied).map_err(raft_storage_err)?,
            conf_state: Some(self.conf_state.clone()).into(),
            ..Default::default()
        };
        let mut snap = Snapshot::default();
        snap.set_metadata(meta);
        snap.set_data(data.encode_to_vec().into());
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use raft::Storage as _;

    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn open(dir: &std::path::Path) -> SledStorage {
        let db = sled::open(dir).unwrap();
        let sm = Arc::new(StateMachine::open(&db, 100).unwrap());
        SledStorage::open(db, dir, sm, vec![1, 2, 3]).unwrap()
    }

    fn terms(s: &SledStorage, low: u64, high: u64) -> Vec<u64> {
        s.entries(low, high, None, GetEntriesContext::empty(false))
            .unwrap()
            .iter()
            .map(|e| e.term)
            .collect()
    }

    #[test]
    fn a_fresh_replica_starts_with_every_peer_as_voter_and_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let state = s.initial_state().unwrap();
        assert_eq!(state.conf_state.voters, [1, 2, 3]);
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
        assert_eq!(s.term(0).unwrap(), 0);
    }

    #[test]
    fn appending_over_a_conflicting_tail_truncates_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)])
            .unwrap();
        // A new leader overwrites from index 3 with a shorter log.
        s.append(&[entry(3, 2)]).unwrap();
        assert_eq!(s.last_index().unwrap(), 3);
        assert_eq!(terms(&s, 1, 4), [1, 1, 2]);
        assert!(s.term(4).is_err());
    }

    #[test]
    fn compaction_moves_the_first_index_and_keeps_the_boundary_term() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.append(&(1..=10).map(|i| entry(i, 1 + i / 5)).collect::<Vec<_>>())
            .unwrap();
        s.compact(6).unwrap();
        assert_eq!(s.first_index().unwrap(), 7);
        assert_eq!(s.term(6).unwrap(), 2);
        let cases = [
            (3, 5, Some(StorageError::Compacted)),
            (6, 8, Some(StorageError::Compacted)),
            (7, 11, None),
            (7, 12, Some(StorageError::Unavailable)),
        ];
        for (low, high, want) in cases {
            let got = s.entries(low, high, None, GetEntriesContext::empty(false));
            match want {
                None => assert_eq!(got.unwrap().len() as u64, high - low),
                Some(e) => assert_eq!(got.unwrap_err(), raft::Error::Store(e)),
            }
        }
        assert_eq!(s.log_len(), 4);
    }

    #[test]
    fn log_hard_state_and_compaction_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(dir.path());
            s.append(&(1..=8).map(|i| entry(i, 3)).collect::<Vec<_>>())
                .unwrap();
            s.set_hard_state(HardState {
                term: 3,
                vote: 2,
                commit: 5,
                ..Default::default()
            })
            .unwrap();
            s.compact(4).unwrap();
            s.flush().unwrap();
        }
        let s = open(dir.path());
        let hs = s.initial_state().unwrap().hard_state;
        assert_eq!((hs.term, hs.vote, hs.commit), (3, 2, 5));
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (5, 8));
        assert_eq!(s.term(4).unwrap(), 3);
        assert_eq!(terms(&s, 5, 9), [3, 3, 3, 3]);
    }

    #[test]
    fn max_size_limits_entries_but_returns_at_least_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.append(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>())
            .unwrap();
        let got = s
            .entries(1, 6, Some(0), GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn installing_a_snapshot_replaces_state_machine_and_log() {
        use crate::state::Committed;
        use crate::{Op, Precondition};
        let put = |key: &str| {
            Some((
                0,
                Op::Put {
                    key: key.into(),
                    value: b"v".to_vec(),
                    precondition: Precondition::None,
                },
            ))
        };
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(dir_a.path());
        leader
            .append(&(1..=3).map(|i| entry(i, 2)).collect::<Vec<_>>())
            .unwrap();
        let applied: Vec<Committed> = ["/a", "/b", "/c"]
            .iter()
            .enumerate()
            .map(|(i, k)| Committed {
                index: i as u64 + 1,
                proposal: put(k),
            })
            .collect();
        leader.sm.apply(&applied).unwrap();
        let snap = leader.snapshot(0, 2).unwrap();
        assert_eq!(
            (snap.get_metadata().index, snap.get_metadata().term),
            (3, 2)
        );

        let mut follower = open(dir_b.path());
        follower.append(&[entry(1, 1)]).unwrap();
        follower
            .sm
            .apply(&[Committed {
                index: 1,
                proposal: put("/stale"),
            }])
            .unwrap();
        follower.apply_snapshot(&snap).unwrap();
        assert_eq!(follower.sm.applied_index().unwrap(), 3);
        assert_eq!(follower.sm.revision().unwrap(), 3);
        assert!(follower.sm.get("/stale").unwrap().is_none());
        assert!(follower.sm.get("/c").unwrap().is_some());
        assert_eq!(follower.sm.history_from(0, 10).unwrap().len(), 3);
        assert_eq!(
            (
                follower.first_index().unwrap(),
                follower.last_index().unwrap()
            ),
            (4, 3)
        );
        assert_eq!(follower.term(3).unwrap(), 2);
        assert_eq!(follower.initial_state().unwrap().hard_state.commit, 3);
    }
}
