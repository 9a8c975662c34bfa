//! The node IPAM controller: gives every Node without `spec.podCIDR` the next free
//! `/--node-cidr-mask-size` block of `--cluster-cidr` (kube-controller-manager's range
//! allocator). A node's podCIDR is never changed once set; blocks come back when their
//! node is deleted.
//!
//! The allocator holds no state of its own: every reconcile recomputes the used blocks
//! from the Node cache (plus allocations written but not yet seen in it), so a restarted
//! controller continues exactly where the old one stopped. One worker: two nodes are
//! never handed the same block.

use crate::Context;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use tug_client::{controller, Action, Api, ObjectKey, Store, WorkQueue};
use tug_proto::core::v1::Node;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid --cluster-cidr {value:?}: {reason}")]
    ClusterCidr { value: String, reason: String },
    #[error("invalid --node-cidr-mask-size {size} for cluster CIDR {cluster}: it must be between the cluster prefix length and 30")]
    MaskSize { size: u8, cluster: String },
    #[error("node {node}: the cluster CIDR {cluster} has no free /{size} left; delete nodes or use a larger --cluster-cidr")]
    Exhausted {
        node: String,
        cluster: String,
        size: u8,
    },
    #[error("node {node}: writing spec.podCIDR: {source}")]
    Api {
        node: String,
        source: Box<tug_client::Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Carves a cluster CIDR into equal blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocator {
    network: u32,
    prefix: u8,
    mask_size: u8,
}

fn parse_cidr(s: &str) -> Option<(u32, u8)> {
    let (addr, prefix) = s.trim().split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    (prefix <= 32).then_some((u32::from(addr), prefix))
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl Allocator {
    pub fn new(cluster_cidr: &str, mask_size: u8) -> Result<Allocator> {
        let (addr, prefix) = parse_cidr(cluster_cidr).ok_or_else(|| Error::ClusterCidr {
            value: cluster_cidr.to_string(),
            reason: "expected an IPv4 network like 10.244.0.0/16".into(),
        })?;
        if addr & !mask(prefix) != 0 {
            return Err(Error::ClusterCidr {
                value: cluster_cidr.to_string(),
                reason: "host bits are set".into(),
            });
        }
        if mask_size < prefix || mask_size > 30 {
            return Err(Error::MaskSize {
                size: mask_size,
                cluster: cluster_cidr.to_string(),
            });
        }
        Ok(Allocator {
            network: addr,
            prefix,
            mask_size,
        })
    }

    fn blocks(&self) -> u64 {
        1u64 << (self.mask_size - self.prefix)
    }

    fn block(&self, i: u64) -> String {
        let addr = self.network + ((i as u32) << (32 - u32::from(self.mask_size)));
        format!("{}/{}", Ipv4Addr::from(addr), self.mask_size)
    }

    /// The block index of `cidr` if it is exactly one of ours.
    pub fn index_of(&self, cidr: &str) -> Option<u64> {
        let (addr, prefix) = parse_cidr(cidr)?;
        if prefix != self.mask_size || addr & mask(self.prefix) != self.network {
            return None;
        }
        if addr & !mask(prefix) != 0 {
            return None;
        }
        Some(u64::from(
            (addr - self.network) >> (32 - u32::from(self.mask_size)),
        ))
    }

    /// The lowest block not in `used` (indexes).
    pub fn next_free(&self, used: &BTreeSet<u64>) -> Option<String> {
        (0..self.blocks())
            .find(|i| !used.contains(i))
            .map(|i| self.block(i))
    }

    pub fn cluster(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

/// The podCIDR a node has (`spec.podCIDR`, else the first of `spec.podCIDRs`).
pub fn pod_cidr(node: &Node) -> Option<String> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidr
        .clone()
        .or_else(|| spec.pod_cidrs.first().cloned())
        .filter(|c| !c.is_empty())
}

struct Ipam {
    alloc: Allocator,
    nodes: Store<Node>,
    api: Api<Node>,
    /// Written but maybe not yet in the cache: node name -> block.
    pending: Mutex<HashMap<String, String>>,
}

impl Ipam {
    async fn reconcile(&self, key: ObjectKey) -> Result<Action> {
        let name = key.name.clone();
        let Some(node) = self
            .nodes
            .get("", &name)
            .or_else(|| self.nodes.get_key(&key))
        else {
            self.lock().remove(&name);
            return Ok(Action::AwaitChange);
        };
        if pod_cidr(&node).is_some() {
            self.lock().remove(&name);
            return Ok(Action::AwaitChange);
        }
        let cidr = {
            let mut pending = self.lock();
            let live: Vec<std::sync::Arc<Node>> = self.nodes.list();
            pending.retain(|n, _| live.iter().any(|l| l.metadata.name.as_deref() == Some(n)));
            match pending.get(&name) {
                Some(c) => c.clone(),
                None => {
                    let used: BTreeSet<u64> = live
                        .iter()
                        .filter_map(|n| pod_cidr(n))
                        .chain(pending.values().cloned())
                        .filter_map(|c| self.alloc.index_of(&c))
                        .collect();
                    let c = self
                        .alloc
                        .next_free(&used)
                        .ok_or_else(|| Error::Exhausted {
                            node: name.clone(),
                            cluster: self.alloc.cluster(),
                            size: self.alloc.mask_size,
                        })?;
                    pending.insert(name.clone(), c.clone());
                    c
                }
            }
        };
        let mut updated = (*node).clone();
        let spec = updated.spec.get_or_insert_with(Default::default);
        spec.pod_cidr = Some(cidr.clone());
        spec.pod_cidrs = vec![cidr.clone()];
        // A replace carries the cached resourceVersion: a node changed meanwhile is a
        // conflict, retried from the fresh cache.
        self.api
            .replace(&name, &updated)
            .await
            .map_err(|source| Error::Api {
                node: name.clone(),
                source: Box::new(source),
            })?;
        tracing::info!(node = %name, pod_cidr = %cidr, "allocated podCIDR");
        Ok(Action::AwaitChange)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the node IPAM controller until `ctx.shutdown` is cancelled.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let alloc = Allocator::new(&ctx.options.cluster_cidr, ctx.options.node_cidr_mask_size)?;
    let queue: WorkQueue<ObjectKey> = WorkQueue::default();
    let nodes = ctx.informers.get::<Node>();
    let store = nodes.store();
    tokio::select! {
        _ = store.wait_until_ready() => {}
        _ = ctx.shutdown.cancelled() => return Ok(()),
    }
    nodes.enqueue_into(queue.clone());
    for n in store.list() {
        queue.add(ObjectKey::of(n.as_ref()));
    }
    let ipam = Arc::new(Ipam {
        alloc,
        nodes: store,
        api: Api::all(ctx.client.clone()),
        pending: Mutex::default(),
    });
    let stop = {
        let (queue, shutdown) = (queue.clone(), ctx.shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            queue.shutdown();
        })
    };
    controller::run_keys(
        queue,
        move |key| {
            let ipam = ipam.clone();
            async move { ipam.reconcile(key).await }
        },
        1,
    )
    .await;
    stop.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_table() {
        let a = Allocator::new("10.244.0.0/16", 24).unwrap();
        let used = |v: &[u64]| v.iter().copied().collect::<BTreeSet<u64>>();
        let cases: Vec<(&str, BTreeSet<u64>, Option<&str>)> = vec![
            ("empty", used(&[]), Some("10.244.0.0/24")),
            ("first two used", used(&[0, 1]), Some("10.244.2.0/24")),
            (
                "a released hole is reused first",
                used(&[0, 2]),
                Some("10.244.1.0/24"),
            ),
            ("all used", (0..256).collect(), None),
        ];
        for (name, u, want) in cases {
            assert_eq!(a.next_free(&u).as_deref(), want, "{name}");
        }
        assert_eq!(a.index_of("10.244.7.0/24"), Some(7));
        assert_eq!(
            a.index_of("10.245.7.0/24"),
            None,
            "outside the cluster CIDR"
        );
        assert_eq!(a.index_of("10.244.7.0/25"), None, "another size");
        assert_eq!(a.index_of("10.244.7.1/24"), None, "host bits");
        let small = Allocator::new("10.0.0.0/8", 26).unwrap();
        assert_eq!(
            small.next_free(&[0].into_iter().collect()).as_deref(),
            Some("10.0.0.64/26")
        );
        for (cidr, size) in [
            ("10.244.0.0/16", 8),
            ("10.244.0.0/16", 31),
            ("10.244.1.0/16", 24),
            ("nope", 24),
        ] {
            assert!(Allocator::new(cidr, size).is_err(), "{cidr} /{size}");
        }
    }
}
