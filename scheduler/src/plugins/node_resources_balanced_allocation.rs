//! NodeResourcesBalancedAllocation: prefers nodes whose cpu and memory would be used in
//! similar proportions after placing the pod.

use crate::framework::{CycleState, Plugin, ScorePlugin, MAX_NODE_SCORE};
use crate::node_info::NodeInfo;
use crate::resources::non_zero_requests;
use tug_proto::core::v1::Pod;

pub struct NodeResourcesBalancedAllocation;

impl Plugin for NodeResourcesBalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }
}

fn fraction(requested: i64, capacity: i64) -> f64 {
    if capacity <= 0 {
        return 1.0;
    }
    (requested as f64 / capacity as f64).min(1.0)
}

impl ScorePlugin for NodeResourcesBalancedAllocation {
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        let (cpu, mem) = non_zero_requests(pod);
        let c = fraction(node.non_zero_cpu + cpu, node.allocatable.milli_cpu);
        let m = fraction(node.non_zero_memory + mem, node.allocatable.memory);
        // The standard deviation of two fractions is half their distance.
        let std = (c - m).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::fixtures::*;

    #[test]
    fn balanced_use_scores_higher() {
        let n = || {
            with_allocatable(
                node("n"),
                &[("cpu", "4"), ("memory", "4Gi"), ("pods", "10")],
            )
        };
        let cases = [
            (
                "balanced",
                with_requests(pod("p"), &[("cpu", "1"), ("memory", "1Gi")]),
                100,
            ),
            (
                "cpu heavy",
                with_requests(pod("p"), &[("cpu", "4"), ("memory", "1Gi")]),
                62,
            ),
            (
                "all cpu",
                with_requests(pod("p"), &[("cpu", "4"), ("memory", "0")]),
                50,
            ),
        ];
        for (name, pod, want) in cases {
            let got = NodeResourcesBalancedAllocation.score(
                &CycleState::default(),
                &pod,
                &info(n(), vec![]),
            );
            assert_eq!(got, want, "{name}");
        }
    }
}
