//! One scheduling cycle: pre-filter, filter nodes until enough feasible ones are found
//! (adaptive sampling from a rotating start), score them, pick the best (ties at random).

use crate::framework::{Code, CycleState, Profile, Status};
use crate::node_info::NodeInfo;
use rand::Rng;
use std::collections::BTreeMap;
use std::fmt;
use tug_proto::core::v1::Pod;

/// Below this many nodes every node is checked (kube-scheduler's `minFeasibleNodesToFind`).
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never drops below this.
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// How many feasible nodes to find before scoring, like kube-scheduler with
/// `percentageOfNodesToScore` unset: `50 - nodes/125` percent, at least 5%, at least 100.
pub fn num_feasible_nodes_to_find(num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let percentage = 50usize
        .saturating_sub(num_all_nodes / 125)
        .max(MIN_FEASIBLE_NODES_PERCENTAGE);
    (num_all_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Why a pod fits nowhere: each node's failing status, for the aggregated message.
#[derive(Clone, Debug, PartialEq)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// A reason for the whole pod (a pre-filter failure), instead of per-node ones.
    pub pre_filter_message: Option<String>,
    pub node_statuses: BTreeMap<String, Status>,
}

impl fmt::Display for FitError {
    /// `0/5 nodes are available: 2 node(s) had untolerated taint {k: }, 3 Insufficient
    /// memory.` — each reason with its count, sorted as strings like kube-scheduler.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        if self.num_all_nodes == 0 {
            // kube-scheduler's wording for an empty cluster.
            return f.write_str(" no nodes available to schedule pods.");
        }
        if let Some(msg) = &self.pre_filter_message {
            return write!(f, " {msg}.");
        }
        let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
        for status in self.node_statuses.values() {
            for reason in &status.reasons {
                *histogram.entry(reason.as_str()).or_default() += 1;
            }
        }
        let mut parts: Vec<String> = histogram
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        parts.sort();
        if !parts.is_empty() {
            write!(f, " {}", parts.join(", "))?;
        }
        f.write_str(".")
    }
}

#[derive(Debug)]
pub enum ScheduleError {
    /// No node fits; the pod waits for the cluster to change.
    Unschedulable(FitError),
    /// A plugin failed; the pod is retried with back-off.
    Internal(String),
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::Unschedulable(e) => e.fmt(f),
            ScheduleError::Internal(e) => f.write_str(e),
        }
    }
}

/// The chosen node and how much work it took.
#[derive(Debug, PartialEq, Eq)]
pub struct Placement {
    pub node: String,
    pub evaluated: usize,
    pub feasible: usize,
}

/// Runs one cycle for `pod` over `nodes` (only those with a Node object take part).
/// `next_start` rotates the filtering start so every node gets its turn.
pub fn schedule(
    profile: &Profile,
    pod: &Pod,
    nodes: &[NodeInfo],
    next_start: &mut usize,
    rng: &mut impl Rng,
) -> Result<Placement, ScheduleError> {
    let num_all = nodes.iter().filter(|n| n.node.is_some()).count();
    if num_all == 0 {
        return Err(ScheduleError::Unschedulable(FitError {
            num_all_nodes: 0,
            pre_filter_message: None,
            node_statuses: BTreeMap::new(),
        }));
    }
    let mut state = CycleState::default();
    for f in &profile.filters {
        let s = f.pre_filter(&mut state, pod, nodes);
        match s.code {
            Code::Success | Code::Skip => {}
            Code::Error => return Err(ScheduleError::Internal(s.message())),
            _ => {
                return Err(ScheduleError::Unschedulable(FitError {
                    num_all_nodes: num_all,
                    pre_filter_message: Some(s.message()),
                    node_statuses: BTreeMap::new(),
                }))
            }
        }
    }

    let want = num_feasible_nodes_to_find(num_all);
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(num_all));
    let mut statuses = BTreeMap::new();
    let start = *next_start % nodes.len();
    let mut visited = 0;
    for i in 0..nodes.len() {
        if feasible.len() >= want {
            break;
        }
        visited = i + 1;
        let node = &nodes[(start + i) % nodes.len()];
        if node.node.is_none() {
            continue;
        }
        let mut fit = true;
        for f in &profile.filters {
            let s = f.filter(&state, pod, node);
            if s.is_success() {
                continue;
            }
            if s.code == Code::Error {
                return Err(ScheduleError::Internal(format!(
                    "filter {} on node {}: {}",
                    f.name(),
                    node.name,
                    s.message()
                )));
            }
            statuses.insert(node.name.clone(), s);
            fit = false;
            break;
        }
        if fit {
            feasible.push(node);
        }
    }
    *next_start = (start + visited) % nodes.len();

    let evaluated = feasible.len() + statuses.len();
    if feasible.is_empty() {
        return Err(ScheduleError::Unschedulable(FitError {
            num_all_nodes: num_all,
            pre_filter_message: None,
            node_statuses: statuses,
        }));
    }
    if feasible.len() == 1 {
        return Ok(Placement {
            node: feasible[0].name.clone(),
            evaluated,
            feasible: 1,
        });
    }

    let mut totals = vec![0i64; feasible.len()];
    let mut scores = vec![0i64; feasible.len()];
    for plugin in &profile.scores {
        if !plugin.pre_score(&mut state, pod, &feasible).is_success() {
            continue;
        }
        for (s, node) in scores.iter_mut().zip(&feasible) {
            *s = plugin.score(&state, pod, node);
        }
        plugin.normalize(&mut scores);
        let w = plugin.weight();
        for (t, s) in totals.iter_mut().zip(&scores) {
            *t += s * w;
        }
    }
    // The best score; among equals, each is picked with equal probability (reservoir).
    let mut best = 0;
    let mut ties = 1;
    for i in 1..totals.len() {
        if totals[i] > totals[best] {
            best = i;
            ties = 1;
        } else if totals[i] == totals[best] {
            ties += 1;
            if rng.gen_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    Ok(Placement {
        node: feasible[best].name.clone(),
        evaluated,
        feasible: feasible.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{BindPlugin, Plugin};
    use crate::plugins::fixtures::*;
    use crate::plugins::{node_resources_fit, taint_toleration};
    use futures::future::BoxFuture;
    use std::sync::Arc;

    struct NoBind;
    impl Plugin for NoBind {
        fn name(&self) -> &'static str {
            "NoBind"
        }
    }
    impl BindPlugin for NoBind {
        fn bind<'a>(&'a self, _: &'a Pod, _: &'a str) -> BoxFuture<'a, Status> {
            Box::pin(async { Status::success() })
        }
    }

    fn profile() -> Profile {
        Profile {
            filters: vec![
                Arc::new(taint_toleration::TaintToleration),
                Arc::new(node_resources_fit::NodeResourcesFit),
            ],
            scores: vec![Arc::new(
                crate::plugins::node_resources_least_allocated::NodeResourcesLeastAllocated,
            )],
            binder: Arc::new(NoBind),
        }
    }

    #[test]
    fn feasible_nodes_to_find_adapts_to_cluster_size() {
        let cases = [
            (10, 10),
            (100, 100),
            (500, 230),
            (1000, 420),
            (5000, 500),
            (10_000, 500),
            (100_000, 5000),
        ];
        for (nodes, want) in cases {
            assert_eq!(num_feasible_nodes_to_find(nodes), want, "{nodes} nodes");
        }
    }

    #[test]
    fn a_pod_that_fits_nowhere_gets_the_aggregated_kubernetes_message() {
        let cp = taint("node-role.kubernetes.io/control-plane", "", "NoSchedule");
        let mut nodes: Vec<NodeInfo> = (0..3)
            .map(|i| {
                info(
                    with_allocatable(
                        node(&format!("w{i}")),
                        &[("cpu", "4"), ("memory", "1Gi"), ("pods", "10")],
                    ),
                    vec![],
                )
            })
            .collect();
        nodes.extend((0..2).map(|i| {
            info(
                with_taints(node(&format!("cp{i}")), vec![cp.clone()]),
                vec![],
            )
        }));
        let pod = with_requests(pod("p"), &[("memory", "2Gi")]);
        let err = schedule(&profile(), &pod, &nodes, &mut 0, &mut rand::thread_rng()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/5 nodes are available: 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 3 Insufficient memory."
        );
    }

    #[test]
    fn a_cluster_without_nodes_says_so_in_the_fit_error() {
        let err =
            schedule(&profile(), &pod("p"), &[], &mut 0, &mut rand::thread_rng()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/0 nodes are available: no nodes available to schedule pods."
        );
    }

    #[test]
    fn the_emptiest_feasible_node_wins() {
        let busy = with_requests(pod("b"), &[("cpu", "3")]);
        let nodes = vec![
            info(node("busy"), vec![busy]),
            info(node("idle"), vec![]),
            info(
                with_taints(node("tainted"), vec![taint("k", "", "NoSchedule")]),
                vec![],
            ),
        ];
        let pod = with_requests(pod("p"), &[("cpu", "500m")]);
        for start in 0..3 {
            let mut s = start;
            let got = schedule(&profile(), &pod, &nodes, &mut s, &mut rand::thread_rng()).unwrap();
            assert_eq!(got.node, "idle");
            assert_eq!(got.feasible, 2);
        }
    }

    #[test]
    fn filtering_stops_once_enough_feasible_nodes_are_found_and_rotates() {
        let nodes: Vec<NodeInfo> = (0..1000)
            .map(|i| info(node(&format!("n{i}")), vec![]))
            .collect();
        let mut start = 0;
        let got = schedule(
            &profile(),
            &pod("p"),
            &nodes,
            &mut start,
            &mut rand::thread_rng(),
        )
        .unwrap();
        assert_eq!(got.feasible, 420);
        assert_eq!(start, 420);
    }
}
