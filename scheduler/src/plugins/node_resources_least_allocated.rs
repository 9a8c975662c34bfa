//! NodeResourcesLeastAllocated: prefers nodes with more free cpu and memory (spreading).

use crate::framework::{CycleState, Plugin, ScorePlugin, MAX_NODE_SCORE};
use crate::node_info::NodeInfo;
use crate::resources::non_zero_requests;
use tug_proto::core::v1::Pod;

pub struct NodeResourcesLeastAllocated;

impl Plugin for NodeResourcesLeastAllocated {
    fn name(&self) -> &'static str {
        "NodeResourcesLeastAllocated"
    }
}

fn free_fraction_score(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

impl ScorePlugin for NodeResourcesLeastAllocated {
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        let (cpu, mem) = non_zero_requests(pod);
        let c = free_fraction_score(node.non_zero_cpu + cpu, node.allocatable.milli_cpu);
        let m = free_fraction_score(node.non_zero_memory + mem, node.allocatable.memory);
        (c + m) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::fixtures::*;

    #[test]
    fn emptier_nodes_score_higher() {
        let n = || {
            with_allocatable(
                node("n"),
                &[("cpu", "4"), ("memory", "4Gi"), ("pods", "10")],
            )
        };
        let p = || with_requests(pod("p"), &[("cpu", "1"), ("memory", "1Gi")]);
        let cases = [
            ("empty", p(), info(n(), vec![]), 75),
            (
                "half used",
                p(),
                info(
                    n(),
                    vec![with_requests(pod("a"), &[("cpu", "1"), ("memory", "1Gi")])],
                ),
                50,
            ),
            (
                "overfull",
                p(),
                info(
                    n(),
                    vec![with_requests(pod("a"), &[("cpu", "8"), ("memory", "8Gi")])],
                ),
                0,
            ),
        ];
        for (name, pod, node, want) in cases {
            assert_eq!(
                NodeResourcesLeastAllocated.score(&CycleState::default(), &pod, &node),
                want,
                "{name}"
            );
        }
    }
}
