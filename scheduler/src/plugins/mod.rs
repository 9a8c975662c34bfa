//! The in-tree plugins, one module each, and the default profile that wires them.

pub mod default_binder;
pub mod inter_pod_anti_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_balanced_allocation;
pub mod node_resources_fit;
pub mod node_resources_least_allocated;
pub mod node_unschedulable;
pub mod selector_spread;
pub mod taint_toleration;

#[cfg(test)]
pub(crate) mod fixtures;

use crate::framework::Profile;
use std::sync::Arc;
use tug_client::Client;

/// kube-scheduler's default plugins (filters cheapest first), with its score weights.
pub fn default_profile(client: Client) -> Profile {
    Profile {
        filters: vec![
            Arc::new(node_name::NodeName),
            Arc::new(node_unschedulable::NodeUnschedulable),
            Arc::new(taint_toleration::TaintToleration),
            Arc::new(node_affinity::NodeAffinity),
            Arc::new(node_ports::NodePorts),
            Arc::new(node_resources_fit::NodeResourcesFit),
            Arc::new(inter_pod_anti_affinity::InterPodAntiAffinity),
        ],
        scores: vec![
            Arc::new(taint_toleration::TaintToleration),
            Arc::new(node_affinity::NodeAffinity),
            Arc::new(node_resources_least_allocated::NodeResourcesLeastAllocated),
            Arc::new(node_resources_balanced_allocation::NodeResourcesBalancedAllocation),
            Arc::new(selector_spread::SelectorSpread),
        ],
        binder: Arc::new(default_binder::DefaultBinder::new(client)),
    }
}
