//! The raft thread: the one owner of the `RawNode`. It takes commands (peer messages,
//! proposals, read-index requests) from a channel, runs the Ready loop in raft-rs's
//! documented order, applies committed entries to the state machine and completes waiters.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use raft::prelude::{Entry, EntryType, Message, MessageType, Snapshot};
use raft::{RawNode, ReadOnlyOption, SnapshotStatus, StateRole};
use tokio::sync::{broadcast, oneshot, watch};

use crate::codec;
use crate::pb;
use crate::state::{Committed, StateMachine};
use crate::storage::SledStorage;
use crate::transport::Transport;
use crate::{Error, Event, Result, TxnResult};

/// What the raft thread is asked to do.
pub(crate) enum Command {
    /// A raft message from a peer.
    Raft(Message),
    /// Propose a write; the reply comes when it is applied here (with its raft index).
    Propose {
        op: crate::Op,
        reply: oneshot::Sender<Result<(TxnResult, u64)>>,
    },
    /// Ask for a read index (leader only); the reply is the index to wait for.
    ReadIndex {
        reply: oneshot::Sender<Result<u64>>,
    },
    /// Hand leadership to the most up-to-date follower (before a planned shutdown).
    TransferLeadership,
    Shutdown,
}

/// Applied progress, watched by readers and writers waiting for their index.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Applied {
    pub index: u64,
    pub revision: u64,
}

/// What the apply loop publishes to watchers.
#[derive(Debug, Clone)]
pub(crate) enum Published {
    Events(Arc<Vec<Event>>),
    /// The stream can no longer be continued from its position (a snapshot replaced the
    /// state machine beyond the history, or the store stopped): watchers end.
    Reset,
}

/// State the raft thread shares with the `Store` handle.
pub(crate) struct Shared {
    pub leader: AtomicU64,
    pub term: AtomicU64,
    pub commit: AtomicU64,
    pub is_leader: AtomicBool,
    /// Set by shutdown; the raft thread checks it at least once per tick.
    pub stop: AtomicBool,
    /// Entries in the raft log (after compaction).
    pub log_len: AtomicU64,
    pub applied: watch::Sender<Applied>,
    pub events: broadcast::Sender<Published>,
}

impl Shared {
    pub(crate) fn new(applied: Applied) -> Self {
        Shared {
            leader: AtomicU64::new(0),
            term: AtomicU64::new(0),
            commit: AtomicU64::new(0),
            is_leader: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            log_len: AtomicU64::new(0),
            applied: watch::channel(applied).0,
            events: broadcast::channel(4096).0,
        }
    }
}

struct Pending {
    /// Raft index the proposal was appended at (0 = unknown).
    index: u64,
    reply: oneshot::Sender<Result<(TxnResult, u64)>>,
}

pub(crate) struct Node {
    raw: RawNode<SledStorage>,
    sm: Arc<StateMachine>,
    shared: Arc<Shared>,
    transport: Arc<dyn Transport>,
    rx: Receiver<Command>,
    snapshot_reports: std::sync::mpsc::Receiver<(u64, bool)>,
    snapshot_report_tx: std::sync::mpsc::Sender<(u64, bool)>,
    runtime: tokio::runtime::Handle,
    tick: Duration,
    snapshot_every: u64,
    next_request_id: u64,
    pending: HashMap<u64, Pending>,
    /// Proposals by raft index, to fail fast those a new leader overwrote.
    pending_by_index: BTreeMap<u64, u64>,
    read_queue: Vec<oneshot::Sender<Result<u64>>>,
    reads_in_flight: HashMap<u64, Vec<oneshot::Sender<Result<u64>>>>,
    next_read_ctx: u64,
}

pub(crate) struct NodeConfig {
    pub id: u64,
    pub tick: Duration,
    pub snapshot_every: u64,
    pub single_voter: bool,
}

impl Node {
    pub(crate) fn new(
        cfg: NodeConfig,
        storage: SledStorage,
        sm: Arc<StateMachine>,
        shared: Arc<Shared>,
        transport: Arc<dyn Transport>,
        rx: Receiver<Command>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self> {
        let raft_cfg = raft::Config {
            id: cfg.id,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: sm.applied_index()?,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // A leader cut off from the quorum steps down, so its clients fail instead of
            // waiting on a leader that cannot commit.
            check_quorum: true,
            // A replica rejoining after a partition does not depose a healthy leader.
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            ..Default::default()
        };
        raft_cfg
            .validate()
            .map_err(|e| Error::Storage(format!("raft config: {e}")))?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut raw = RawNode::new(&raft_cfg, storage, &logger)
            .map_err(|e| Error::Storage(format!("starting raft: {e}")))?;
        if cfg.single_voter {
            // Nobody to wait for: become leader now rather than after an election timeout.
            let _ = raw.campaign();
        }
        let (snapshot_report_tx, snapshot_reports) = std::sync::mpsc::channel();
        Ok(Node {
            raw,
            sm,
            shared,
            transport,
            rx,
            snapshot_reports,
            snapshot_report_tx,
            runtime,
            tick: cfg.tick,
            snapshot_every: cfg.snapshot_every.max(1),
            next_request_id: rand::random::<u64>() >> 1,
            pending: HashMap::new(),
            pending_by_index: BTreeMap::new(),
            read_queue: Vec::new(),
            reads_in_flight: HashMap::new(),
            next_read_ctx: 1,
        })
    }

    /// Runs until shutdown or until every command sender is gone.
    pub(crate) fn run(mut self) {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(cmd) => {
                    if !self.handle(cmd) {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Drain whatever else is queued so a single Ready (one fsync) covers it all:
            // this batching is where write throughput comes from.
            let mut stop = false;
            for _ in 0..10_000 {
                match self.rx.try_recv() {
                    Ok(cmd) => {
                        if !self.handle(cmd) {
                            stop = true;
                            break;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        stop = true;
                        break;
                    }
                }
            }
            if stop || self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            while let Ok((to, ok)) = self.snapshot_reports.try_recv() {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
            if Instant::now() >= next_tick {
                self.raw.tick();
                next_tick = Instant::now() + self.tick;
                self.forget_abandoned_waiters();
            }
            self.issue_reads();
            if let Err(e) = self.on_ready() {
                tracing::error!(error = %e, "raft thread stopping: storage failed");
                break;
            }
        }
        self.fail_all();
    }

    /// Returns false when the thread should stop.
    fn handle(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Raft(m) => {
                // Errors here are stale or misaddressed messages; raft recovers by itself.
                let _ = self.raw.step(m);
            }
            Command::Propose { op, reply } => self.propose(op, reply),
            Command::ReadIndex { reply } => self.read_queue.push(reply),
            Command::TransferLeadership => self.transfer_leadership(),
            Command::Shutdown => return false,
        }
        true
    }

    fn transfer_leadership(&mut self) {
        if self.raw.raft.state != StateRole::Leader {
            return;
        }
        let me = self.raw.raft.id;
        let best = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != me)
            .max_by_key(|(_, pr)| pr.matched)
            .map(|(id, _)| *id);
        if let Some(to) = best {
            self.raw.transfer_leader(to);
        }
    }

    fn propose(&mut self, op: crate::Op, reply: oneshot::Sender<Result<(TxnResult, u64)>>) {
        if self.raw.raft.state != StateRole::Leader {
            // The caller re-routes to the current leader.
            let _ = reply.send(Err(Error::NoLeader));
            return;
        }
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let data = pb::Proposal {
            request_id,
            op: Some(codec::op_to_pb(&op)),
        }
        .encode_to_vec();
        let before = self.raw.raft.raft_log.last_index();
        if self.raw.propose(vec![], data).is_err() {
            let _ = reply.send(Err(Error::NoLeader));
            return;
        }
        let index = self.raw.raft.raft_log.last_index();
        let index = if index > before { index } else { 0 };
        if index != 0 {
            self.pending_by_index.insert(index, request_id);
        }
        self.pending.insert(request_id, Pending { index, reply });
    }

    /// One ReadIndex round for every read queued since the last loop (batching).
    fn issue_reads(&mut self) {
        if self.read_queue.is_empty() {
            return;
        }
        if self.raw.raft.state == StateRole::Leader && !self.raw.raft.commit_to_current_term() {
            // raft-rs silently drops a read index asked of a leader that has not committed
            // an entry of its own term yet; hold the reads until its first commit (soon).
            return;
        }
        let waiters = std::mem::take(&mut self.read_queue);
        if self.raw.raft.state != StateRole::Leader {
            for w in waiters {
                let _ = w.send(Err(Error::NoLeader));
            }
            return;
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        self.raw.read_index(ctx.to_be_bytes().to_vec());
        self.reads_in_flight.insert(ctx, waiters);
    }

    fn on_ready(&mut self) -> Result<()> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();

        // 1. Messages of a leader (appends, heartbeats) may leave before the leader's own
        //    log write: raft-rs counts the leader's own acknowledgement only after it is
        //    persisted (`advance`), so this overlaps our fsync with the followers' ones.
        self.send(ready.take_messages());

        // 2. A snapshot from the leader replaces the state machine and log; it must be in
        //    place before any entry that follows it is appended.
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot())?;
        }

        // 3. Committed entries are already durable on a quorum (and in our own log:
        //    raft-rs only hands out persisted ones), so applying them need not wait for
        //    this Ready's writes.
        self.apply(ready.take_committed_entries())?;

        // 4. ReadIndex answers: each waiter then waits until applied >= the index.
        for rs in ready.take_read_states() {
            let ctx = rs
                .request_ctx
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            for w in self.reads_in_flight.remove(&ctx).unwrap_or_default() {
                let _ = w.send(Ok(rs.index));
            }
        }

        // 5. Persist new entries and the hard state, then ONE fsync for the whole Ready
        //    (it also covers the state-machine writes of step 3).
        let store = self.raw.mut_store();
        store.append(ready.entries())?;
        if let Some(hs) = ready.hs() {
            store.set_hard_state(hs.clone())?;
        }
        // A changed commit index alone needs no fsync (it is re-learned from the leader
        // after a crash); new entries, term and vote do (`must_sync`).
        if !ready.entries().is_empty() || ready.must_sync() {
            store.flush()?;
        }

        // 6. Votes and append responses promise that what they acknowledge is on disk, so
        //    they may only leave after the fsync above.
        self.send(ready.take_persisted_messages());

        // 7. Tell raft the Ready is persisted; the light ready carries what that unlocked.
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            // Not fsynced on purpose: a lost commit index is re-learned from the leader.
            self.raw.mut_store().set_commit(commit)?;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.raw.advance_apply();

        self.maybe_compact()?;
        self.publish_status();
        Ok(())
    }

    fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                let to = m.to;
                let done = self.transport.send_snapshot(to, m);
                let report = self.snapshot_report_tx.clone();
                self.runtime.spawn(async move {
                    let ok = done.await.is_ok();
                    let _ = report.send((to, ok));
                });
            } else {
                self.transport.send(m.to, m);
            }
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<()> {
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(());
        };
        let mut committed = Vec::with_capacity(entries.len());
        for e in &entries {
            let proposal = if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                let p: pb::Proposal = codec::decode(&e.data, "raft entry")?;
                let op = codec::op_from_pb(p.op.unwrap_or_default())?;
                Some((p.request_id, op))
            } else {
                // Empty entries of new leaders; the cluster is static, so no conf changes.
                None
            };
            committed.push(Committed {
                index: e.index,
                proposal,
            });
        }
        let out = self.sm.apply(&committed)?;
        self.shared.applied.send_replace(crate::node::Applied {
            index: out.applied_index,
            revision: out.revision,
        });
        if !out.events.is_empty() {
            let _ = self
                .shared
                .events
                .send(Published::Events(Arc::new(out.events)));
        }
        for (request_id, index, result) in out.results {
            if let Some(p) = self.pending.remove(&request_id) {
                self.pending_by_index.remove(&p.index);
                let _ = p.reply.send(Ok((result, index)));
            }
        }
        // Anything still pending at an applied index lost its slot to another leader's
        // entry: it will never commit, so say so now instead of timing out.
        let lost: Vec<u64> = self
            .pending_by_index
            .range(..=last)
            .map(|(_, id)| *id)
            .collect();
        self.pending_by_index = self.pending_by_index.split_off(&(last + 1));
        for id in lost {
            if let Some(p) = self.pending.remove(&id) {
                let _ = p.reply.send(Err(Error::NoLeader));
            }
        }
        Ok(())
    }

    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<()> {
        let before = self.shared.applied.borrow().revision;
        let data = self.raw.mut_store().apply_snapshot(snap)?;
        self.raw.mut_store().flush()?;
        self.shared.applied.send_replace(Applied {
            index: snap.get_metadata().index,
            revision: data.revision,
        });
        // Live watchers continue if the snapshot's history covers what they missed.
        let missed: Vec<Event> = data
            .history
            .iter()
            .filter(|e| e.kv.as_ref().is_some_and(|kv| kv.mod_revision > before))
            .cloned()
            .filter_map(|e| codec::event_from_pb(e).ok())
            .collect();
        let covered = data.revision <= before
            || missed
                .first()
                .is_some_and(|e| e.kv.mod_revision == before + 1);
        let published = if covered {
            Published::Events(Arc::new(missed))
        } else {
            Published::Reset
        };
        let _ = self.shared.events.send(published);
        Ok(())
    }

    /// Keeps the raft log bounded: once `snapshot_every` entries are applied past the last
    /// compaction point, drop the log up to half a window behind the applied index (the
    /// state machine in sled is the snapshot; lagging peers get one built on demand).
    fn maybe_compact(&mut self) -> Result<()> {
        let applied = self.raw.raft.raft_log.applied;
        let (snap_index, _) = self.raw.store().snapshot_point();
        if applied.saturating_sub(snap_index) >= self.snapshot_every {
            let keep = self.snapshot_every / 2;
            self.raw.mut_store().compact(applied - keep)?;
        }
        Ok(())
    }

    fn publish_status(&self) {
        let raft = &self.raw.raft;
        self.shared.leader.store(raft.leader_id, Ordering::Relaxed);
        self.shared.term.store(raft.term, Ordering::Relaxed);
        self.shared
            .commit
            .store(raft.raft_log.committed, Ordering::Relaxed);
        self.shared
            .is_leader
            .store(raft.state == StateRole::Leader, Ordering::Relaxed);
        self.shared
            .log_len
            .store(self.raw.store().log_len(), Ordering::Relaxed);
    }

    /// Drops waiters whose callers gave up (timed out), so the maps stay small.
    fn forget_abandoned_waiters(&mut self) {
        self.publish_status();
        let before = self.pending.len();
        self.pending.retain(|_, p| !p.reply.is_closed());
        if self.pending.len() != before {
            let pending = &self.pending;
            self.pending_by_index
                .retain(|_, id| pending.contains_key(id));
        }
        self.reads_in_flight.retain(|_, ws| {
            ws.retain(|w| !w.is_closed());
            !ws.is_empty()
        });
        if self.raw.raft.state != StateRole::Leader {
            // ReadIndex requests of a deposed leader are never answered.
            for (_, ws) in self.reads_in_flight.drain() {
                for w in ws {
                    let _ = w.send(Err(Error::NoLeader));
                }
            }
        }
    }

    /// Every waiter learns the store stopped instead of timing out.
    fn fail_all(&mut self) {
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(Error::Stopped));
        }
        for (_, ws) in self.reads_in_flight.drain() {
            for w in ws {
                let _ = w.send(Err(Error::Stopped));
            }
        }
        for w in self.read_queue.drain(..) {
            let _ = w.send(Err(Error::Stopped));
        }
    }
}
