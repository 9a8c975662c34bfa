//! tug's replicated object store: a revisioned key/value state machine (sled) replicated
//! by raft-rs, with watch streams. The apiserver is its only user.
//!
//! # Contract (what the apiserver relies on)
//!
//! - Keys are strings like `/registry/pods/default/web-1`; values are opaque bytes (the
//!   apiserver stores JSON).
//! - Every committed write (put or delete) gets the next value of ONE cluster-wide
//!   revision counter. `KeyValue::mod_revision` is that revision and is what the
//!   apiserver shows as `metadata.resourceVersion`.
//! - `txn` applies one conditional write atomically: the precondition is checked by the
//!   state machine at apply time (on every replica identically), so a stale
//!   `mod_revision` can never overwrite a newer value.
//! - `txn` returns only after the entry is committed on a quorum AND applied on the
//!   local replica (so a `get` on this replica right after sees it). On a follower the
//!   write is forwarded to the leader over gRPC.
//! - `Read::Linearizable` reads use raft ReadIndex; `Read::Local` reads whatever this
//!   replica has applied (used for `resourceVersion=0`).
//! - `watch(prefix, after)` yields every event with `revision > after` in revision
//!   order, first from the bounded history kept in sled, then live. If `after` is older
//!   than the oldest retained event it fails with `Error::Compacted`. A watcher that
//!   falls too far behind live traffic is ended (its stream returns `None`); the client
//!   re-watches from its last revision.
//! - Errors of `txn`: `NoLeader` means the write was certainly not applied (no leader
//!   within ~3 s; safe to retry). `Timeout` means the outcome is unknown (it may still
//!   commit): re-read before retrying. `Stopped` after `shutdown`.
//! - `oldest_revision()` is the smallest `after` that `watch` accepts; `Compacted.oldest`
//!   carries the same number.
//! - `shutdown` must be awaited before the data directory can be reopened; a leader hands
//!   leadership to a caught-up follower first, so planned restarts cost no election.
//!
//! # How it works
//!
//! One OS thread per replica owns the raft-rs `RawNode`. Each loop iteration drains every
//! queued command (peer messages, proposals, read-index requests) into the node, then
//! handles one Ready: send leader messages, install a snapshot, apply committed entries
//! (one atomic sled batch that also records the applied index), persist new entries and
//! hard state with ONE fsync, and only then send the messages that acknowledge them.
//! The state machine in sled is itself the snapshot: every `snapshot_every` applied
//! entries the raft log is compacted, and a lagging follower is sent a snapshot built on
//! demand from the state machine (objects, revision, watch history).
//!
//! # Layout
//!
//! - `store.rs`: [`Store`], the public handle: routes writes and linearizable reads to the
//!   leader, waits for local apply, serves reads and watches.
//! - `node.rs`: the raft thread that owns the `RawNode` and runs the Ready loop.
//! - `storage.rs`: `raft::Storage` over sled (log, hard state, conf state, snapshot point).
//! - `state.rs`: the state machine in sled (objects, revision, applied index, history).
//! - `watch.rs`: [`WatchStream`]: history then live events.
//! - `transport.rs`: the [`Transport`] trait (peer traffic out).
//! - `grpc.rs`: the gRPC transport and peer server, optionally over mutual TLS.
//! - `sim.rs`: [`sim::SimNetwork`], an in-memory transport for tests that drops, delays
//!   and partitions.
//! - `codec.rs`: protobuf encodings (`proto/peer.proto`) of entries, values and RPCs.

mod codec;
mod grpc;
mod node;
pub mod sim;
mod state;
mod storage;
mod store;
mod transport;
mod watch;

#[allow(clippy::all, clippy::pedantic)]
mod pb {
    tonic::include_proto!("tug.store.peer");
}

pub use store::{Store, StoreStatus};
pub use transport::Transport;
pub use watch::WatchStream;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created this key (since its last deletion).
    pub create_revision: u64,
    /// Revision of the last write to this key.
    pub mod_revision: u64,
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// ReadIndex: reflects every write acknowledged anywhere before the read started.
    Linearizable,
    /// This replica's applied state (may lag the leader).
    Local,
}

/// Condition checked atomically at apply time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    None,
    /// The key must not exist (create).
    Absent,
    /// The key must exist with exactly this mod_revision (update / delete with a
    /// resourceVersion, or read-modify-write).
    ModRevision(u64),
    /// The key must exist (any revision).
    Exists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        precondition: Precondition,
    },
    Delete {
        key: String,
        precondition: Precondition,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnResult {
    /// Applied. `kv` is the new value (Put) or the value just deleted (Delete), with
    /// `mod_revision` = the revision of this write in both cases.
    Applied { revision: u64, kv: KeyValue },
    /// The precondition did not hold; nothing changed. `current` is the key's value at
    /// that point (None if absent).
    Failed { current: Option<KeyValue> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Key created (did not exist before this revision).
    Added,
    /// Key existed and was overwritten.
    Modified,
    /// Key deleted; `Event::kv` carries the last value with `mod_revision` = the delete's
    /// revision.
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    /// The value before this event (for Modified / Deleted), as the apiserver needs it to
    /// decide whether an object left a watcher's selector.
    pub prev: Option<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResult {
    pub kv: Option<KeyValue>,
    /// The store revision the read was served at.
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// Keys with the prefix, in key order, starting strictly after `start_after`.
    pub kvs: Vec<KeyValue>,
    pub revision: u64,
    /// True when `limit` cut the result short.
    pub more: bool,
}

/// Raft and peer settings for one replica.
#[derive(Clone)]
pub struct Config {
    /// This replica's raft id (1-based, unique in the cluster).
    pub id: u64,
    /// The static initial cluster: raft id -> peer address (`host:port`), including this
    /// replica. One entry = a single-replica cluster.
    pub peers: BTreeMap<u64, String>,
    /// Where sled keeps raft log, hard state, snapshots and the state machine.
    pub data_dir: PathBuf,
    /// Mutual TLS for the peer port; `None` = plaintext (tests only).
    pub peer_tls: Option<PeerTls>,
    /// Raft tick; election timeout is 10 ticks, heartbeat 1 tick.
    pub tick: Duration,
    /// Take a snapshot and compact the log every this many applied entries.
    pub snapshot_every: u64,
    /// Watch events kept for resumption; older revisions answer `Error::Compacted`.
    pub history_limit: u64,
}

impl Config {
    /// Settings with defaults: 100 ms tick, snapshot every 10 000 entries, 100 000 history
    /// events, plaintext peers.
    pub fn new(id: u64, peers: BTreeMap<u64, String>, data_dir: impl Into<PathBuf>) -> Config {
        Config {
            id,
            peers,
            data_dir: data_dir.into(),
            peer_tls: None,
            tick: Duration::from_millis(100),
            snapshot_every: 10_000,
            history_limit: 100_000,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("id", &self.id)
            .field("peers", &self.peers)
            .field("data_dir", &self.data_dir)
            .field("peer_tls", &self.peer_tls.is_some())
            .field("tick", &self.tick)
            .field("snapshot_every", &self.snapshot_every)
            .field("history_limit", &self.history_limit)
            .finish()
    }
}

/// rustls configs for the peer port (server side requires a client certificate signed by
/// the cluster CA; the client side presents this replica's peer certificate).
#[derive(Clone)]
pub struct PeerTls {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("watch from revision {requested} is too old: oldest retained revision is {oldest}")]
    Compacted { requested: u64, oldest: u64 },
    #[error("no raft leader is known (cluster has no quorum or an election is under way)")]
    NoLeader,
    #[error("timed out waiting for the write to commit")]
    Timeout,
    #[error("store is shutting down")]
    Stopped,
    #[error("storage: {0}")]
    Storage(String),
    #[error("peer transport: {0}")]
    Transport(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
