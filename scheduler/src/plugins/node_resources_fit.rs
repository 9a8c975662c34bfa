//! NodeResourcesFit: the pod's requests (cpu, memory, extended resources) and one more
//! pod must fit in the node's allocatable minus what its pods already request.

use crate::framework::{Code, CycleState, FilterPlugin, Plugin, Status};
use crate::node_info::NodeInfo;
use crate::resources::{pod_requests, Resources};
use tug_proto::core::v1::Pod;

const STATE_KEY: &str = "NodeResourcesFit";

pub struct NodeResourcesFit;

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }
}

/// Every reason `req` does not fit on `node` (empty: it fits).
pub fn insufficient(req: &Resources, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    let alloc = &node.allocatable;
    let used = &node.requested;
    if used.pods + 1 > alloc.pods {
        reasons.push("Too many pods".to_string());
    }
    if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu - used.milli_cpu {
        reasons.push("Insufficient cpu".to_string());
    }
    if req.memory > 0 && req.memory > alloc.memory - used.memory {
        reasons.push("Insufficient memory".to_string());
    }
    for (name, &want) in &req.scalar {
        let have = alloc.scalar.get(name).copied().unwrap_or(0)
            - used.scalar.get(name).copied().unwrap_or(0);
        if want > 0 && want > have {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

impl FilterPlugin for NodeResourcesFit {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, _: &[NodeInfo]) -> Status {
        state.write(STATE_KEY, pod_requests(pod));
        Status::success()
    }

    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let computed;
        let req = match state.read::<Resources>(STATE_KEY) {
            Some(r) => r,
            None => {
                computed = pod_requests(pod);
                &computed
            }
        };
        let reasons = insufficient(req, node);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status {
                code: Code::Unschedulable,
                reasons,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::fixtures::*;

    #[test]
    fn requests_must_fit_in_what_is_left() {
        let small =
            || with_allocatable(node("n"), &[("cpu", "1"), ("memory", "1Gi"), ("pods", "2")]);
        let gpu = || {
            with_allocatable(
                node("n"),
                &[
                    ("cpu", "1"),
                    ("memory", "1Gi"),
                    ("pods", "10"),
                    ("example.com/gpu", "1"),
                ],
            )
        };
        let used = |p: &str| with_requests(pod(p), &[("cpu", "600m"), ("memory", "512Mi")]);
        let cases: Vec<(&str, Pod, NodeInfo, Vec<&str>)> = vec![
            (
                "empty node",
                with_requests(pod("p"), &[("cpu", "1")]),
                info(small(), vec![]),
                vec![],
            ),
            (
                "no requests fit anywhere",
                pod("p"),
                info(small(), vec![used("a")]),
                vec![],
            ),
            (
                "cpu and memory short",
                with_requests(pod("p"), &[("cpu", "500m"), ("memory", "600Mi")]),
                info(small(), vec![used("a")]),
                vec!["Insufficient cpu", "Insufficient memory"],
            ),
            (
                "pod count",
                pod("p"),
                info(small(), vec![pod("a"), pod("b")]),
                vec!["Too many pods"],
            ),
            (
                "extended resource present",
                with_requests(pod("p"), &[("example.com/gpu", "1")]),
                info(gpu(), vec![]),
                vec![],
            ),
            (
                "extended resource missing",
                with_requests(pod("p"), &[("example.com/gpu", "1")]),
                info(small(), vec![]),
                vec!["Insufficient example.com/gpu"],
            ),
            (
                "extended resource used up",
                with_requests(pod("p"), &[("example.com/gpu", "1")]),
                info(
                    gpu(),
                    vec![with_requests(pod("a"), &[("example.com/gpu", "1")])],
                ),
                vec!["Insufficient example.com/gpu"],
            ),
        ];
        for (name, pod, node, want) in cases {
            let mut state = CycleState::default();
            NodeResourcesFit.pre_filter(&mut state, &pod, &[]);
            let got = NodeResourcesFit.filter(&state, &pod, &node);
            assert_eq!(got.reasons, want, "{name}");
            assert_eq!(got.is_success(), want.is_empty(), "{name}");
        }
    }
}
