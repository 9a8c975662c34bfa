//! An in-memory network for tests: delivers peer traffic between replicas of one process
//! and can drop, delay and partition it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use raft::prelude::Message;

use crate::store::{Inner, Store};
use crate::transport::Transport;
use crate::{Config, Error, Op, Result, TxnResult};

/// A simulated network shared by the replicas opened through it.
#[derive(Clone, Default)]
pub struct SimNetwork {
    net: Arc<Net>,
}

#[derive(Default)]
struct Net {
    nodes: Mutex<HashMap<u64, Weak<Inner>>>,
    /// Directed links that are cut (from, to).
    cut: Mutex<HashSet<(u64, u64)>>,
    faults: Mutex<Faults>,
}

#[derive(Default, Clone, Copy)]
struct Faults {
    drop_rate: f64,
    delay: Duration,
}

impl Net {
    fn link_up(&self, from: u64, to: u64) -> bool {
        !self
            .cut
            .lock()
            .map(|c| c.contains(&(from, to)))
            .unwrap_or(false)
    }

    fn node(&self, id: u64) -> Option<Store> {
        let nodes = self.nodes.lock().ok()?;
        let inner = nodes.get(&id)?.upgrade()?;
        Some(Store { inner })
    }

    fn faults(&self) -> Faults {
        self.faults.lock().map(|f| *f).unwrap_or_default()
    }

    /// The peer `to` as seen from `from`. An unreachable leader is reported like an
    /// unknown one (`NoLeader`), which callers retry until an election settles it.
    fn route(&self, from: u64, to: u64) -> Result<Store> {
        if !self.link_up(from, to) || !self.link_up(to, from) {
            return Err(Error::NoLeader);
        }
        self.node(to).ok_or(Error::NoLeader)
    }
}

impl SimNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens replica `cfg.id` attached to this network (`cfg.peers` addresses are unused).
    pub async fn open(&self, cfg: Config) -> Result<Store> {
        let id = cfg.id;
        let transport = Arc::new(SimTransport {
            from: id,
            net: self.net.clone(),
            runtime: tokio::runtime::Handle::current(),
        });
        let store = Store::open_with_transport(cfg, transport).await?;
        if let Ok(mut nodes) = self.net.nodes.lock() {
            nodes.insert(id, Arc::downgrade(&store.inner));
        }
        Ok(store)
    }

    /// Cuts every link between replicas in different groups (both directions).
    pub fn partition(&self, groups: &[&[u64]]) {
        let Ok(mut cut) = self.net.cut.lock() else {
            return;
        };
        cut.clear();
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for &x in *a {
                        for &y in *b {
                            cut.insert((x, y));
                        }
                    }
                }
            }
        }
    }

    /// Cuts `id` off from every other replica.
    pub fn isolate(&self, id: u64) {
        let others: Vec<u64> = self
            .net
            .nodes
            .lock()
            .map(|n| n.keys().copied().filter(|&o| o != id).collect())
            .unwrap_or_default();
        self.partition(&[&[id], &others]);
    }

    /// Restores every link.
    pub fn heal(&self) {
        if let Ok(mut cut) = self.net.cut.lock() {
            cut.clear();
        }
    }

    /// Drops this fraction (0.0..=1.0) of raft messages.
    pub fn set_drop_rate(&self, rate: f64) {
        if let Ok(mut f) = self.net.faults.lock() {
            f.drop_rate = rate;
        }
    }

    /// Delays every raft message by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        if let Ok(mut f) = self.net.faults.lock() {
            f.delay = delay;
        }
    }
}

struct SimTransport {
    from: u64,
    net: Arc<Net>,
    /// Delayed deliveries run here (`send` is called from the raft thread).
    runtime: tokio::runtime::Handle,
}

impl SimTransport {
    fn deliver(&self, to: u64, msg: Message) {
        if !self.net.link_up(self.from, to) {
            return;
        }
        let faults = self.net.faults();
        if faults.drop_rate > 0.0 && rand::random::<f64>() < faults.drop_rate {
            return;
        }
        let Some(target) = self.net.node(to) else {
            return;
        };
        if faults.delay.is_zero() {
            target.step(msg);
        } else {
            self.runtime.spawn(async move {
                tokio::time::sleep(faults.delay).await;
                target.step(msg);
            });
        }
    }
}

impl Transport for SimTransport {
    fn send(&self, to: u64, msg: Message) {
        self.deliver(to, msg);
    }

    fn send_snapshot(&self, to: u64, msg: Message) -> BoxFuture<'static, Result<()>> {
        let routed = self.net.route(self.from, to);
        Box::pin(async move {
            routed?.step(msg);
            Ok(())
        })
    }

    fn propose(&self, leader: u64, op: Op) -> BoxFuture<'static, Result<(TxnResult, u64)>> {
        let routed = self.net.route(self.from, leader);
        Box::pin(async move { routed?.propose_local(op).await })
    }

    fn read_index(&self, leader: u64) -> BoxFuture<'static, Result<u64>> {
        let routed = self.net.route(self.from, leader);
        Box::pin(async move { routed?.read_index_local().await })
    }
}
