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
//! The proxy's chains, maps and sets live in the node's tug-net table (`table ip
//! tug-<node>`, [`table_name`]) beside tug-net's hostPort chains, under names tug-net
//! never uses (see [`ruleset`]). So they are per node even when several agents share a
//! machine, and tug-net's `cleanup_all` (node removal, `tug-agent --cleanup`) removes
//! them with the table; [`Proxy::cleanup`] removes only the proxy's objects. Hairpin and
//! loopback traffic to pods on this node's bridge is masqueraded by tug-net's
//! postrouting chain (`ct status dnat` towards the bridge); the proxy masquerades only
//! what it marks: node-port traffic and a pod reaching itself through its service.
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

/// The nftables table (family `ip`) holding `node`'s Service rules: tug-net's.
pub fn table_name(node: &str) -> String {
    tug_net::names::nft_table(node)
}

/// Our objects now in `table` (none if the table does not exist):
/// (per-service objects, all our chains and sets, our maps).
fn discover(
    table: &str,
) -> std::result::Result<
    (
        ruleset::Objects,
        ruleset::Objects,
        std::collections::BTreeSet<String>,
    ),
    tug_net::Error,
> {
    match tug_net::command::run("nft", &["-j", "list", "table", "ip", table], None) {
        Ok(json) => Ok(ruleset::parse_listing(&json)),
        Err(e) if tug_net::command::is_not_found(&e) => Ok(Default::default()),
        Err(e) => Err(e),
    }
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

    /// Removes `node`'s Service rules, leaving the rest of its table. Idempotent.
    /// (tug-net's `cleanup_all` removes them too, with the table.)
    pub fn cleanup(node: &str) -> Result<()> {
        let err = |source| Error::Net {
            node: node.to_string(),
            source,
        };
        let table = table_name(node);
        let (_, all, maps) = discover(&table).map_err(err)?;
        if all.chains.is_empty() && all.sets.is_empty() && maps.is_empty() {
            return Ok(());
        }
        tug_net::command::nft_script(&ruleset::removal(&table, &all, &maps)).map_err(err)
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
    // None: ask the kernel (first sync, or after a failed one).
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
            let (t, r, known) = (table.clone(), rules.clone(), existing.clone());
            let result = tokio::task::spawn_blocking(move || {
                let known = match known {
                    Some(k) => k,
                    None => discover(&t)?.0,
                };
                tug_net::command::nft_script(&ruleset::render(&t, &r, &known))
            })
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
