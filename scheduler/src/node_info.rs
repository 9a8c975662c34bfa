//! `NodeInfo`: one node with the pods on it (bound or assumed) and what they request.

use crate::resources::{non_zero_requests, pod_requests, Resources};
use std::collections::HashMap;
use std::sync::Arc;
use tug_client::ObjectKey;
use tug_proto::core::v1::{Node, Pod};

/// A host port in use: (host IP, protocol, port). An empty IP means `0.0.0.0`.
pub type HostPort = (String, String, i32);

/// A node as the scheduler sees it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    /// `None` while pods are known on a node whose Node object is not (yet) seen.
    pub node: Option<Arc<Node>>,
    pub allocatable: Resources,
    pub pods: HashMap<ObjectKey, Arc<Pod>>,
    /// Sum of the pods' requests (`pods` counts them).
    pub requested: Resources,
    /// cpu and memory as scoring sees them (defaults for pods requesting none).
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub used_ports: HashMap<HostPort, u32>,
    /// Pods with required anti-affinity terms, which constrain who may join them.
    pub pods_with_anti_affinity: usize,
}

impl NodeInfo {
    pub fn new(name: &str) -> Self {
        NodeInfo {
            name: name.to_string(),
            node: None,
            allocatable: Resources::default(),
            pods: HashMap::new(),
            requested: Resources::default(),
            non_zero_cpu: 0,
            non_zero_memory: 0,
            used_ports: HashMap::new(),
            pods_with_anti_affinity: 0,
        }
    }

    /// A NodeInfo for `node` with `pods` on it (tests and benchmarks).
    pub fn with_pods(node: Node, pods: Vec<Pod>) -> Self {
        let name = node.metadata.name().to_string();
        let mut info = NodeInfo::new(&name);
        info.set_node(Arc::new(node));
        for p in pods {
            info.add_pod(Arc::new(p));
        }
        info
    }

    pub fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = node
            .status
            .as_ref()
            .map(|s| Resources::from_list(&s.allocatable))
            .unwrap_or_default();
        self.node = Some(node);
    }

    pub fn labels(&self) -> Option<&std::collections::BTreeMap<String, String>> {
        self.node.as_ref().map(|n| &n.metadata.labels)
    }

    pub fn add_pod(&mut self, pod: Arc<Pod>) {
        let key = ObjectKey::of(pod.as_ref());
        self.remove_pod(&key);
        self.account(&pod, 1);
        self.pods.insert(key, pod);
    }

    pub fn remove_pod(&mut self, key: &ObjectKey) -> Option<Arc<Pod>> {
        let pod = self.pods.remove(key)?;
        self.account(&pod, -1);
        Some(pod)
    }

    fn account(&mut self, pod: &Pod, sign: i64) {
        let mut req = pod_requests(pod);
        req.pods = 1;
        let (cpu, mem) = non_zero_requests(pod);
        if sign > 0 {
            self.requested.add(&req);
        } else {
            self.requested.sub(&req);
        }
        self.non_zero_cpu += sign * cpu;
        self.non_zero_memory += sign * mem;
        for port in host_ports(pod) {
            if sign > 0 {
                *self.used_ports.entry(port).or_default() += 1;
            } else if let Some(n) = self.used_ports.get_mut(&port) {
                *n -= 1;
                if *n == 0 {
                    self.used_ports.remove(&port);
                }
            }
        }
        if has_required_anti_affinity(pod) {
            if sign > 0 {
                self.pods_with_anti_affinity += 1;
            } else {
                self.pods_with_anti_affinity -= 1;
            }
        }
    }
}

/// The host ports a pod's containers ask for.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(&spec.init_containers)
        .flat_map(|c| &c.ports)
        .filter_map(|p| {
            let port = p.host_port.filter(|&hp| hp > 0)?;
            let ip = p
                .host_ip
                .clone()
                .filter(|ip| ip != "0.0.0.0")
                .unwrap_or_default();
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".to_string());
            Some((ip, proto, port))
        })
        .collect()
}

pub fn has_required_anti_affinity(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .is_some_and(|a| {
            !a.required_during_scheduling_ignored_during_execution
                .is_empty()
        })
}
