//! host-gw routes kept in sync with the cluster's Nodes: a route to every other node's
//! podCIDR via that node's InternalIP (tug-net's [`tug_net::Network::set_node_routes`]),
//! so pods reach pods on other nodes with their own source address, no NAT, no tunnel.
//! Nodes joining, leaving or changing address are applied within a debounce.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tug_client::{watcher, Api, Client, Informer, ObjectKey, Store, WorkQueue};
use tug_proto::core::v1::Node;

/// Wait after a Node change for more before syncing (a status burst of many nodes).
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Full re-sync period, repairing routes someone removed.
const RESYNC: Duration = Duration::from_secs(30);

/// The (podCIDR, node IP) of every node but `me` that has both; sorted.
pub fn desired_routes<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    me: &str,
) -> Vec<(String, Ipv4Addr)> {
    let mut out: Vec<(String, Ipv4Addr)> = nodes
        .into_iter()
        .filter(|n| n.metadata.name.as_deref() != Some(me))
        .filter_map(|n| {
            let spec = n.spec.as_ref()?;
            let cidr = spec
                .pod_cidr
                .clone()
                .or_else(|| spec.pod_cidrs.first().cloned())
                .filter(|c| !c.is_empty())?;
            let addrs = &n.status.as_ref()?.addresses;
            let ip = addrs
                .iter()
                .filter(|a| a.type_ == "InternalIP")
                .chain(addrs.iter().filter(|a| a.type_ == "ExternalIP"))
                .find_map(|a| a.address.parse::<Ipv4Addr>().ok())?;
            Some((cidr, ip))
        })
        .collect();
    out.sort();
    out
}

/// Starts the syncer: watches Nodes and keeps `net`'s node routes equal to
/// [`desired_routes`]. Abort the handle to stop (routes stay; `cleanup_all` removes
/// them).
pub fn start(client: Client, net: Arc<tug_net::Network>, node_name: &str) -> JoinHandle<()> {
    let queue: WorkQueue<ObjectKey> = WorkQueue::default();
    let mut informer = Informer::new(Api::<Node>::all(client), watcher::Config::default());
    informer.enqueue_mapped(queue.clone(), |_| vec![ObjectKey::new("", "sync")]);
    let store = informer.store();
    let me = node_name.to_string();
    tokio::spawn(async move {
        let watch = informer.spawn();
        sync_loop(queue, store, net, me).await;
        watch.abort();
    })
}

async fn sync_loop(
    queue: WorkQueue<ObjectKey>,
    nodes: Store<Node>,
    net: Arc<tug_net::Network>,
    me: String,
) {
    nodes.wait_until_ready().await;
    let mut applied: Option<Vec<(String, Ipv4Addr)>> = None;
    let mut force = true;
    let mut retry = Duration::from_secs(1);
    loop {
        let all = nodes.list();
        let want = desired_routes(all.iter().map(|n| n.as_ref()), &me);
        let mut wait = RESYNC;
        if force || applied.as_ref() != Some(&want) {
            let (net, routes) = (net.clone(), want.clone());
            let result = tokio::task::spawn_blocking(move || net.set_node_routes(&routes)).await;
            match result {
                Ok(Ok(())) => {
                    tracing::debug!(routes = want.len(), "node routes synced");
                    applied = Some(want);
                    retry = Duration::from_secs(1);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "syncing node routes; retrying");
                    applied = None;
                    wait = retry;
                    retry = (retry * 2).min(RESYNC);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "node route sync task failed");
                    applied = None;
                    wait = retry;
                }
            }
        }
        force = false;
        tokio::select! {
            item = queue.get() => {
                let Some(item) = item else { return };
                queue.done(&item);
                tokio::time::sleep(DEBOUNCE).await;
                while !queue.is_empty() {
                    match queue.get().await {
                        Some(i) => queue.done(&i),
                        None => return,
                    }
                }
            }
            _ = tokio::time::sleep(wait) => force = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes_go_to_every_other_node_with_a_pod_cidr_and_an_address() {
        let nodes: Vec<Node> = [
            json!({"metadata": {"name": "me"}, "spec": {"podCIDR": "10.244.0.0/24"},
                "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}),
            json!({"metadata": {"name": "b"}, "spec": {"podCIDR": "10.244.2.0/24"},
                "status": {"addresses": [{"type": "Hostname", "address": "b"}, {"type": "InternalIP", "address": "172.18.0.4"}]}}),
            json!({"metadata": {"name": "a"}, "spec": {"podCIDRs": ["10.244.1.0/24"]},
                "status": {"addresses": [{"type": "ExternalIP", "address": "192.0.2.3"}]}}),
            json!({"metadata": {"name": "no-cidr"},
                "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.5"}]}}),
            json!({"metadata": {"name": "no-ip"}, "spec": {"podCIDR": "10.244.9.0/24"}}),
            json!({"metadata": {"name": "v6"}, "spec": {"podCIDR": "10.244.8.0/24"},
                "status": {"addresses": [{"type": "InternalIP", "address": "fd00::1"}]}}),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
        assert_eq!(
            desired_routes(nodes.iter(), "me"),
            vec![
                ("10.244.1.0/24".to_string(), Ipv4Addr::new(192, 0, 2, 3)),
                ("10.244.2.0/24".to_string(), Ipv4Addr::new(172, 18, 0, 4)),
            ]
        );
    }
}
