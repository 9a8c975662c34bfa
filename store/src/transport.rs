//! How a replica reaches its peers: the `Transport` trait (raft messages out, writes and
//! read-index requests forwarded to the leader) and the no-peer transport of a
//! single-replica store. Incoming traffic is delivered through `Store`'s crate-private
//! entry points (`step`, `propose_local`, `read_index_local`).

use futures::future::BoxFuture;
use raft::prelude::Message;

use crate::{Error, Op, Result, TxnResult};

/// Outgoing peer traffic of one replica.
pub trait Transport: Send + Sync + 'static {
    /// Queues a raft message for peer `to` without blocking; may drop it (raft retransmits).
    fn send(&self, to: u64, msg: Message);
    /// Sends a snapshot message; resolves once the peer has received it (or failed).
    fn send_snapshot(&self, to: u64, msg: Message) -> BoxFuture<'static, Result<()>>;
    /// Forwards a write to the leader; resolves with its result and raft index once the
    /// leader has applied it.
    fn propose(&self, leader: u64, op: Op) -> BoxFuture<'static, Result<(TxnResult, u64)>>;
    /// Asks the leader for a read index.
    fn read_index(&self, leader: u64) -> BoxFuture<'static, Result<u64>>;
    /// Stops background senders (called by `Store::shutdown`).
    fn shutdown(&self) {}
}

/// The transport of a single-replica cluster: there is nobody to talk to.
pub(crate) struct NoPeers;

impl Transport for NoPeers {
    fn send(&self, _to: u64, _msg: Message) {}

    fn send_snapshot(&self, to: u64, _msg: Message) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move { Err(Error::Transport(format!("no route to peer {to}"))) })
    }

    fn propose(&self, leader: u64, _op: Op) -> BoxFuture<'static, Result<(TxnResult, u64)>> {
        Box::pin(async move { Err(Error::Transport(format!("no route to peer {leader}"))) })
    }

    fn read_index(&self, leader: u64) -> BoxFuture<'static, Result<u64>> {
        Box::pin(async move { Err(Error::Transport(format!("no route to peer {leader}"))) })
    }
}
