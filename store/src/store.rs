//! `Store`: the public handle. Routes writes and linearizable reads to the leader (locally
//! or through the transport), waits for local apply, and serves reads and watches from
//! this replica's sled state machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use raft::prelude::Message;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::node::{Applied, Command, Node, NodeConfig, Published, Shared};
use crate::state::{storage_err, StateMachine};
use crate::storage::SledStorage;
use crate::transport::{NoPeers, Transport};
use crate::watch::{self, WatchStream};
use crate::{Config, Error, GetResult, ListResult, Op, Read, Result, TxnResult};

/// How long a write or read waits for a leader to be known (covers an election).
const LEADER_WAIT: Duration = Duration::from_secs(3);
/// How long a proposal may take to commit and apply before the caller gets `Timeout`.
const COMMIT_WAIT: Duration = Duration::from_secs(5);
const RETRY_EVERY: Duration = Duration::from_millis(50);
/// How long a stopping leader waits for leadership to move to a follower.
const TRANSFER_WAIT: Duration = Duration::from_secs(1);
/// Commands queued for the raft thread before callers are turned away.
const COMMAND_QUEUE: usize = 65_536;
/// sled page cache size (see `Store::open`).
const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// A snapshot of this replica's raft and apply progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    pub id: u64,
    pub leader: Option<u64>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub revision: u64,
    pub is_leader: bool,
    /// Entries currently kept in the raft log (bounded by compaction).
    pub raft_log_entries: u64,
}

/// One replica of the replicated store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

/// A peer server started by a transport, stopped on shutdown.
pub(crate) struct ServerHandle {
    /// Set to true to stop; long-lived peer streams watch it too.
    pub stop: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

pub(crate) struct Inner {
    pub(crate) id: u64,
    /// Replicas in the cluster, this one included.
    cluster_size: usize,
    cmd: SyncSender<Command>,
    pub(crate) shared: Arc<Shared>,
    /// `None` once shut down, so sled's files are released for a reopen.
    sm: RwLock<Option<Arc<StateMachine>>>,
    transport: Arc<dyn Transport>,
    raft_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub(crate) server: Mutex<Option<ServerHandle>>,
    stopped: AtomicBool,
}

impl Inner {
    pub(crate) fn state_machine(&self) -> Result<Arc<StateMachine>> {
        self.sm
            .read()
            .map_err(|_| Error::Stopped)?
            .clone()
            .ok_or(Error::Stopped)
    }

    fn command(&self, cmd: Command) -> Result<()> {
        match self.cmd.try_send(cmd) {
            Ok(()) => Ok(()),
            // Overloaded: the caller may retry later, like a commit that took too long.
            Err(TrySendError::Full(_)) => Err(Error::Timeout),
            Err(TrySendError::Disconnected(_)) => Err(Error::Stopped),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping `cmd` disconnects the raft thread's channel and ends it; dropping the
        // server's stop sender ends the peer server.
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

impl Store {
    /// Opens (or restarts from disk) replica `cfg.id` and serves its peer port at
    /// `cfg.peers[&cfg.id]`.
    pub async fn open(cfg: Config) -> Result<Store> {
        if cfg.peers.len() <= 1 {
            return Self::open_with_transport(cfg, Arc::new(NoPeers)).await;
        }
        let addr = cfg.peers.get(&cfg.id).cloned().ok_or_else(|| {
            Error::Transport(format!(
                "peers has no address for this replica's id {}: add it to Config::peers",
                cfg.id
            ))
        })?;
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::Transport(format!("binding peer port {addr}: {e}")))?;
        Self::open_with_listener(cfg, listener).await
    }

    /// Like `open`, with the peer port already bound (tests bind 127.0.0.1:0 first).
    pub async fn open_with_listener(
        cfg: Config,
        peer_listener: tokio::net::TcpListener,
    ) -> Result<Store> {
        crate::grpc::open(cfg, peer_listener).await
    }

    /// Opens a replica whose peer traffic goes through `transport`.
    pub(crate) async fn open_with_transport(
        cfg: Config,
        transport: Arc<dyn Transport>,
    ) -> Result<Store> {
        if !cfg.peers.contains_key(&cfg.id) {
            return Err(Error::Storage(format!(
                "replica id {} is not in Config::peers {:?}: add it",
                cfg.id,
                cfg.peers.keys().collect::<Vec<_>>()
            )));
        }
        let data_dir = cfg.data_dir.clone();
        let history_limit = cfg.history_limit;
        let voters: Vec<u64> = cfg.peers.keys().copied().collect();
        let (db, sm, storage) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&data_dir).map_err(|e| {
                Error::Storage(format!("creating data dir {}: {e}", data_dir.display()))
            })?;
            let db = sled::Config::new()
                .path(&data_dir)
                // sled's default page cache is 1 GiB; a control plane's working set is far
                // smaller, and RSS is what a laptop user sees.
                .cache_capacity(SLED_CACHE_BYTES)
                // The default (LowSpace) rewrites segments eagerly to save disk; a raft
                // log is append-heavy and compacted by us, so favour write throughput.
                .mode(sled::Mode::HighThroughput)
                .flush_every_ms(None)
                .open()
                .map_err(|e| {
                    Error::Storage(format!("opening sled at {}: {e}", data_dir.display()))
                })?;
            let sm = Arc::new(StateMachine::open(&db, history_limit)?);
            let storage = SledStorage::open(db.clone(), &data_dir, sm.clone(), voters)?;
            Ok::<_, Error>((db, sm, storage))
        })
        .await
        .map_err(storage_err)??;
        drop(db);
        let applied = Applied {
            index: sm.applied_index()?,
            revision: sm.revision()?,
        };
        let shared = Arc::new(Shared::new(applied));
        let (cmd, rx) = std::sync::mpsc::sync_channel(COMMAND_QUEUE);
        let node = Node::new(
            NodeConfig {
                id: cfg.id,
                tick: cfg.tick,
                snapshot_every: cfg.snapshot_every,
                single_voter: cfg.peers.len() == 1,
            },
            storage,
            sm.clone(),
            shared.clone(),
            transport.clone(),
            rx,
            tokio::runtime::Handle::current(),
        )?;
        let raft_thread = std::thread::Builder::new()
            .name(format!("tug-raft-{}", cfg.id))
            .spawn(move || node.run())
            .map_err(|e| Error::Storage(format!("starting the raft thread: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                id: cfg.id,
                cluster_size: cfg.peers.len(),
                cmd,
                shared,
                sm: RwLock::new(Some(sm)),
                transport,
                raft_thread: Mutex::new(Some(raft_thread)),
                server: Mutex::new(None),
                stopped: AtomicBool::new(false),
            }),
        })
    }

    pub fn id(&self) -> u64 {
        self.inner.id
    }

    pub async fn get(&self, key: &str, read: Read) -> Result<GetResult> {
        self.sync_for(read).await?;
        let sm = self.inner.state_machine()?;
        // The revision is taken before the read, so it never claims writes the read missed.
        let revision = self.revision();
        let kv = sm.get(key)?;
        Ok(GetResult { kv, revision })
    }

    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
        read: Read,
    ) -> Result<ListResult> {
        self.sync_for(read).await?;
        let sm = self.inner.state_machine()?;
        let revision = self.revision();
        let (kvs, more) = sm.list(prefix, start_after, limit)?;
        Ok(ListResult {
            kvs,
            revision,
            more,
        })
    }

    /// Applies one conditional write; returns once it is committed and applied here.
    pub async fn txn(&self, op: Op) -> Result<TxnResult> {
        self.inner.state_machine()?;
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let attempt = match self.leader() {
                Some(leader) if leader == self.inner.id => {
                    self.propose_local(op.clone()).await.map(|(r, _)| r)
                }
                Some(leader) => self.forward_propose(leader, op.clone()).await,
                None => Err(Error::NoLeader),
            };
            match attempt {
                Err(Error::NoLeader) if Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_EVERY).await
                }
                other => return other,
            }
        }
    }

    async fn forward_propose(&self, leader: u64, op: Op) -> Result<TxnResult> {
        let forwarded = self.inner.transport.propose(leader, op);
        let (result, index) = tokio::time::timeout(COMMIT_WAIT, forwarded)
            .await
            .map_err(|_| Error::Timeout)??;
        // Read-your-writes on this replica: return only once it has applied the entry too.
        self.wait_applied(index).await?;
        Ok(result)
    }

    /// Events for keys under `prefix` with revision > `after`.
    pub async fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream> {
        watch::start(&self.inner, prefix, after)
    }

    /// The revision this replica has applied.
    pub fn revision(&self) -> u64 {
        self.inner.shared.applied.borrow().revision
    }

    /// The oldest revision a watch can resume from (`watch(prefix, after)` needs
    /// `after >= oldest_revision()`).
    pub fn oldest_revision(&self) -> u64 {
        self.inner
            .state_machine()
            .and_then(|sm| sm.oldest_revision())
            .unwrap_or_else(|_| self.revision())
    }

    pub fn status(&self) -> StoreStatus {
        let s = &self.inner.shared;
        let applied = *s.applied.borrow();
        StoreStatus {
            id: self.inner.id,
            leader: self.leader(),
            term: s.term.load(Ordering::Relaxed),
            commit_index: s.commit.load(Ordering::Relaxed),
            applied_index: applied.index,
            revision: applied.revision,
            is_leader: s.is_leader.load(Ordering::Relaxed),
            raft_log_entries: s.log_len.load(Ordering::Relaxed),
        }
    }

    /// Stops the raft thread, the peer server and the peer senders. Data stays on disk and
    /// the data directory can be reopened once this returns.
    pub async fn shutdown(&self) {
        self.stop(true).await
    }

    /// Stops like `shutdown` but without handing leadership over first, as a crash
    /// would (tests use it to exercise elections).
    #[doc(hidden)]
    pub async fn kill(&self) {
        self.stop(false).await
    }

    async fn stop(&self, hand_over: bool) {
        let inner = &self.inner;
        if inner.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        // A planned stop of the leader hands leadership over first, so writers wait for a
        // transfer (milliseconds) instead of an election timeout.
        if hand_over
            && inner.cluster_size > 1
            && inner.shared.is_leader.load(Ordering::Relaxed)
            && inner.command(Command::TransferLeadership).is_ok()
        {
            let deadline = Instant::now() + TRANSFER_WAIT;
            while Instant::now() < deadline && self.leader() == Some(inner.id) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        inner.shared.stop.store(true, Ordering::SeqCst);
        let _ = inner.cmd.try_send(Command::Shutdown);
        let thread = inner.raft_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let server = inner.server.lock().ok().and_then(|mut s| s.take());
        if let Some(server) = server {
            server.stop.send_replace(true);
            let mut task = server.task;
            if tokio::time::timeout(Duration::from_secs(3), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        inner.transport.shutdown();
        if let Ok(mut sm) = inner.sm.write() {
            *sm = None;
        }
        let _ = inner.shared.events.send(Published::Reset);
    }

    fn leader(&self) -> Option<u64> {
        match self.inner.shared.leader.load(Ordering::Relaxed) {
            0 => None,
            id => Some(id),
        }
    }

    async fn sync_for(&self, read: Read) -> Result<()> {
        if read == Read::Local {
            return Ok(());
        }
        self.inner.state_machine()?;
        let deadline = Instant::now() + LEADER_WAIT;
        let index = loop {
            let attempt = match self.leader() {
                Some(leader) if leader == self.inner.id => self.read_index_local().await,
                Some(leader) => {
                    tokio::time::timeout(COMMIT_WAIT, self.inner.transport.read_index(leader))
                        .await
                        .map_err(|_| Error::Timeout)
                        .and_then(|r| r)
                }
                None => Err(Error::NoLeader),
            };
            match attempt {
                Err(Error::NoLeader) if Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_EVERY).await
                }
                other => break other?,
            }
        };
        self.wait_applied(index).await
    }

    async fn wait_applied(&self, index: u64) -> Result<()> {
        let mut rx = self.inner.shared.applied.subscribe();
        let outcome = tokio::time::timeout(COMMIT_WAIT, rx.wait_for(|a| a.index >= index))
            .await
            .map(|r| r.map(|_| ()));
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// Delivers a raft message from a peer (drops it when the raft thread is overloaded).
    pub(crate) fn step(&self, msg: Message) {
        let _ = self.inner.command(Command::Raft(msg));
    }

    /// Proposes on this replica, which must be the leader; resolves when applied here.
    pub(crate) async fn propose_local(&self, op: Op) -> Result<(TxnResult, u64)> {
        let (reply, rx) = oneshot::channel();
        self.inner.command(Command::Propose { op, reply })?;
        match tokio::time::timeout(COMMIT_WAIT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// A read index from this replica, which must be the leader.
    pub(crate) async fn read_index_local(&self) -> Result<u64> {
        let (reply, rx) = oneshot::channel();
        self.inner.command(Command::ReadIndex { reply })?;
        match tokio::time::timeout(COMMIT_WAIT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::Timeout),
        }
    }
}
