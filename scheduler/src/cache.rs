//! The scheduler's cache: every node with the pods bound or assumed to it. A pod is
//! "assumed" on its node as soon as the scheduler picks the node, before the Binding is
//! written, so the next cycles already count its requests (no overcommit in bursts).

use crate::node_info::NodeInfo;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tug_client::ObjectKey;
use tug_proto::core::v1::{Node, Pod};

#[derive(Default)]
pub struct Cache {
    /// In a stable order (new nodes are appended), so the rotating filter start is fair.
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// The node each known pod (bound or assumed) is on.
    pod_node: HashMap<ObjectKey, String>,
    assumed: HashSet<ObjectKey>,
}

/// Pods that no longer hold resources.
fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.phase(), "Succeeded" | "Failed")
}

impl Cache {
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.nodes.push(NodeInfo::new(name));
                self.index.insert(name.to_string(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }

    pub fn upsert_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name().to_string();
        self.node_mut(&name).set_node(node);
    }

    /// Forgets the Node object; its pods (if any) keep a placeholder until they go.
    pub fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.nodes[i].pods.is_empty() {
            self.drop_at(i);
        } else {
            self.nodes[i].node = None;
        }
    }

    fn drop_at(&mut self, i: usize) {
        let removed = self.nodes.swap_remove(i);
        self.index.remove(&removed.name);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    /// Applies the API's view of a pod: bound and running pods are placed (confirming
    /// an assumption), terminal or unbound ones are removed (unless assumed).
    pub fn update_pod(&mut self, pod: Arc<Pod>) {
        let key = ObjectKey::of(pod.as_ref());
        let node = pod.node_name().map(str::to_string);
        match node {
            Some(node) if !is_terminal(&pod) => {
                self.assumed.remove(&key);
                self.place(key, &node, pod);
            }
            _ if self.assumed.contains(&key) && !is_terminal(&pod) => {
                // Still unbound in the API while our Binding is in flight.
            }
            _ => {
                self.remove_pod(&key);
            }
        }
    }

    fn place(&mut self, key: ObjectKey, node: &str, pod: Arc<Pod>) {
        if let Some(old) = self.pod_node.get(&key).cloned() {
            if old != node {
                self.remove_pod(&key);
            }
        }
        self.node_mut(node).add_pod(pod);
        self.pod_node.insert(key, node.to_string());
    }

    pub fn remove_pod(&mut self, key: &ObjectKey) {
        self.assumed.remove(key);
        let Some(node) = self.pod_node.remove(key) else {
            return;
        };
        if let Some(&i) = self.index.get(&node) {
            self.nodes[i].remove_pod(key);
            if self.nodes[i].node.is_none() && self.nodes[i].pods.is_empty() {
                self.drop_at(i);
            }
        }
    }

    /// Counts `pod` on `node` before its Binding is written.
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        let mut placed = pod.clone();
        placed.spec.get_or_insert_with(Default::default).node_name = Some(node.to_string());
        let key = ObjectKey::of(pod);
        self.place(key.clone(), node, Arc::new(placed));
        self.assumed.insert(key);
    }

    /// Undoes [`assume`](Self::assume) after a failed Binding.
    pub fn forget(&mut self, key: &ObjectKey) {
        if self.assumed.contains(key) {
            self.remove_pod(key);
        }
    }

    #[cfg(test)]
    pub fn is_assumed(&self, key: &ObjectKey) -> bool {
        self.assumed.contains(key)
    }

    /// The uid of the pod the cache holds under `key`, if any.
    pub fn pod_uid(&self, key: &ObjectKey) -> Option<Option<String>> {
        let node = self.pod_node.get(key)?;
        let info = self.node(node)?;
        Some(info.pods.get(key)?.metadata.uid.clone())
    }

    /// Whether the cache holds `key` on some node (bound or assumed).
    pub fn has_pod(&self, key: &ObjectKey) -> bool {
        self.pod_node.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::fixtures::*;

    #[test]
    fn assumed_pods_count_until_confirmed_or_forgotten() {
        let mut cache = Cache::default();
        cache.upsert_node(Arc::new(node("n")));
        let p = with_requests(pod("p"), &[("cpu", "1")]);
        let key = ObjectKey::of(&p);
        cache.assume(&p, "n");
        assert_eq!(cache.node("n").unwrap().requested.milli_cpu, 1000);
        // The watch still shows the pod unbound: the assumption stays.
        cache.update_pod(Arc::new(p.clone()));
        assert!(cache.is_assumed(&key));
        assert_eq!(cache.node("n").unwrap().requested.pods, 1);
        cache.forget(&key);
        assert_eq!(cache.node("n").unwrap().requested.pods, 0);
        // Bound by the API: confirmed, no longer forgettable.
        let mut bound = p.clone();
        spec(&mut bound).node_name = Some("n".into());
        cache.assume(&p, "n");
        cache.update_pod(Arc::new(bound.clone()));
        assert!(!cache.is_assumed(&key));
        cache.forget(&key);
        assert_eq!(cache.node("n").unwrap().requested.milli_cpu, 1000);
        // Finished pods free their node.
        bound.status = Some(tug_proto::core::v1::PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        cache.update_pod(Arc::new(bound));
        assert_eq!(cache.node("n").unwrap().requested.milli_cpu, 0);
    }

    #[test]
    fn pods_seen_before_their_node_are_kept_and_nodes_removed_last() {
        let mut cache = Cache::default();
        let mut p = pod("p");
        spec(&mut p).node_name = Some("late".into());
        cache.update_pod(Arc::new(p.clone()));
        assert!(cache.node("late").unwrap().node.is_none());
        cache.upsert_node(Arc::new(node("late")));
        cache.upsert_node(Arc::new(node("other")));
        cache.remove_node("late");
        assert!(cache.node("late").is_some());
        cache.remove_pod(&ObjectKey::of(&p));
        assert!(cache.node("late").is_none());
        assert_eq!(cache.node("other").unwrap().name, "other");
        assert_eq!(cache.nodes().len(), 1);
    }
}
