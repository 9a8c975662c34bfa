//! The Service proxy (kube-proxy's job in `tug-agent`): Services + Endpoints -> one
//! nftables table per node that load-balances ClusterIPs and NodePorts in the kernel.
//!
//! # nftables through the `nft` tool, not netlink
//!
//! The ruleset is rendered as an `nft` script ([`ruleset::render`]) and applied with
//! `nft -f -` (through tug-net's [`tug_net::command::nft_script`]), for the same reasons
//! tug-net uses it for hostPorts: the whole script is ONE kernel transaction, so a sync
//! swaps every chain and map atomically (no packet ever sees half a ruleset); the rules an
//! operator reads with `nft list table ip tugsvc-<node>` are the text we generated, and a
//! failing script is reported verbatim; and there is no netlink/nftables bytecode
//! encoder to maintain. The cost is one short `nft` process per sync, and syncs are
//! debounced ([`DEBOUNCE`]), so a burst of Endpoints changes costs one process. The data
//! path never leaves the kernel: DNAT by conntrack, endpoint choice by `numgen random`
//! in a verdict map, affinity by dynamic sets with timeouts.
//!
//! # Table
//!
//! `table ip tugsvc-<node>` (see [`table_name`]): node names never contain `_` and
//! tug-net's table is `tug-<node>`, so a proxy table never collides with a pod network
//! table nor with another node's proxy when several agents share a machine (each in its
//! own network namespace, or not). Hairpin and loopback traffic to pods on this node's
//! bridge is masqueraded by tug-net's table (`ct status dnat` towards the bridge); this
//! table masquerades only what it marks: node-port traffic and a pod reaching itself.
//!
//! # Layout
//! - [`model`]: the desired state, [`model::ServicePortRule`] per Service port.
//! - [`ruleset`]: rendering it as one nft transaction.

pub mod model;
pub mod ruleset;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tug_client::{watcher, Api, Client, Informer, ObjectKey, Store, WorkQueue};
use tug_proto::core::v1::{Endpoints, Service};

/// How long a sync waits after a change for more changes (a rollout touches many
/// Endpoints at once); endpoint changes reach the kernel within about this much time
/// plus one `nft` run.
pub const DEBOUNCE: Duration = Duration::from_millis(60);
/// A burst of changes never delays a sync longer than this.
pub const MAX_DELAY: Duration = Duration::from_millis(500);
/// Full re-apply period, repairing rules someone else removed.
pub const RESYNC: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("proxy for node {node:?}: {source}")]
    Net {
        node: String,
        #[source]
        source: tug_net::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The nftables table (family `ip`) holding `node`'s Service rules.
pub fn table_name(node: &str) -> String {
    format!("tugsvc-{node}")
}

/// A running proxy. Dropping it stops syncing but leaves the rules in place (a
/// restarting agent keeps the data path up); [`Proxy::cleanup`] removes them.
pub struct Proxy {
    node: String,
    services: Store<Service>,
    endpoints: Store<Endpoints>,
    state: Arc<Mutex<SyncState>>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the last sync did, for tests and diagnostics.
#[derive(Clone, Debug, Default)]
pub struct SyncState {
    /// Successful syncs so far.
    pub syncs: u64,
    /// The last applied rules.
    pub rules: Vec<model::ServicePortRule>,
    pub last_error: Option<String>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Proxy {
    /// Starts watching Services and Endpoints (cluster-wide) and programming `node`'s
    /// table; the first sync replaces whatever a previous agent left. Must be called
    /// inside a tokio runtime, in the node's network namespace.
    pub fn start(client: Client, node: &str) -> Result<Proxy> {
        tug_net::names::validate_node(node).map_err(|source| Error::Net {
            node: node.to_string(),
            source,
        })?;
        let queue: WorkQueue<ObjectKey> = WorkQueue::default();
        let key = || vec![ObjectKey::new("", "sync")];
        let mut services = Informer::new(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        );
        services.enqueue_mapped(queue.clone(), move |_| key());
        let mut endpoints =
            Informer::new(Api::<Endpoints>::all(client), watcher::Config::default());
        endpoints.enqueue_mapped(queue.clone(), move |_| key());
        let (svc_store, ep_store) = (services.store(), endpoints.store());
        let state = Arc::new(Mutex::new(SyncState::default()));
        let tasks = vec![
            services.spawn(),
            endpoints.spawn(),
            tokio::spawn(sync_loop(
                table_name(node),
                queue,
                svc_store.clone(),
                ep_store.clone(),
                state.clone(),
            )),
        ];
        Ok(Proxy {
            node: node.to_string(),
            services: svc_store,
            endpoints: ep_store,
            state,
            tasks,
        })
    }

    /// The proxy's Services cache (shared with the DNS server).
    pub fn services(&self) -> Store<Service> {
        self.services.clone()
    }

    /// The proxy's Endpoints cache (shared with the DNS server).
    pub fn endpoints(&self) -> Store<Endpoints> {
        self.endpoints.clone()
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn state(&self) -> SyncState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Removes `node`'s Service rules (agent `--cleanup`, node removal). Idempotent.
    pub fn cleanup(node: &str) -> Result<()> {
        tug_net::nft::delete_table(&table_name(node)).map_err(|source| Error::Net {
            node: node.to_string(),
            source,
        })
    }
}

async fn sync_loop(
    table: String,
    queue: WorkQueue<ObjectKey>,
    services: Store<Service>,
    endpoints: Store<Endpoints>,
    state: Arc<Mutex<SyncState>>,
) {
    services.wait_until_ready().await;
    endpoints.wait_until_ready().await;
    // None: recreate the table (first sync, or after a failed one).
    let mut existing: Option<ruleset::Objects> = None;
    let mut applied: Option<Vec<model::ServicePortRule>> = None;
    let mut retry = Duration::from_secs(1);
    let mut force = true;
    loop {
        let svcs = services.list();
        let rules = model::desired(svcs.iter().map(|s| s.as_ref()), |ns, name| {
            endpoints.get(ns, name)
        });
        let mut wait = RESYNC;
        if force || applied.as_ref() != Some(&rules) {
            let script = ruleset::render(&table, &rules, existing.as_ref());
            let result = tokio::task::spawn_blocking(move || tug_net::command::nft_script(&script))
                .await
                .unwrap_or_else(|e| {
                    Err(tug_net::Error::Parse {
                        command: "nft".into(),
                        reason: e.to_string(),
                    })
                });
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            match result {
                Ok(()) => {
                    tracing::debug!(table = %table, services = rules.len(), "service rules synced");
                    existing = Some(ruleset::objects(&rules));
                    st.syncs += 1;
                    st.rules = rules.clone();
                    st.last_error = None;
                    applied = Some(rules);
                    retry = Duration::from_secs(1);
                }
                Err(e) => {
                    tracing::warn!(table = %table, error = %e, "syncing service rules; retrying");
                    st.last_error = Some(e.to_string());
                    existing = None;
                    applied = None;
                    wait = retry;
                    retry = (retry * 2).min(RESYNC);
                }
            }
        }
        force = false;
        tokio::select! {
            item = queue.get() => {
                let Some(item) = item else { return };
                queue.done(&item);
                debounce(&queue).await;
            }
            _ = tokio::time::sleep(wait) => force = true,
        }
    }
}

/// Waits until no change came for [`DEBOUNCE`] (at most [`MAX_DELAY`]), consuming the
/// queued keys.
async fn debounce(queue: &WorkQueue<ObjectKey>) {
    let deadline = tokio::time::Instant::now() + MAX_DELAY;
    loop {
        tokio::time::sleep(DEBOUNCE).await;
        if queue.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        while !queue.is_empty() {
            match queue.get().await {
                Some(item) => queue.done(&item),
                None => return,
            }
        }
    }
}
