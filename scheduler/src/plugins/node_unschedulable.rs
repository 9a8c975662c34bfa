//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods tolerating
//! `node.kubernetes.io/unschedulable:NoSchedule`.

use crate::framework::{CycleState, FilterPlugin, Plugin, Status};
use crate::node_info::NodeInfo;
use crate::plugins::taint_toleration::tolerates;
use tug_proto::core::v1::{Pod, Taint};

pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
pub const REASON: &str = "node(s) were unschedulable";

pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let cordoned = node
            .node
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !cordoned {
            return Status::success();
        }
        let taint = Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tolerations = pod.spec.as_ref().map(|s| s.tolerations.as_slice());
        if tolerations
            .unwrap_or_default()
            .iter()
            .any(|t| tolerates(t, &taint))
        {
            return Status::success();
        }
        Status::unresolvable(REASON)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::fixtures::*;

    #[test]
    fn cordoned_nodes_take_only_tolerating_pods() {
        let mut cordoned = node("n");
        cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
        let tolerant = with_tolerations(
            pod("p"),
            vec![toleration(UNSCHEDULABLE_TAINT, "Exists", "", "NoSchedule")],
        );
        let cases = [
            ("schedulable node", pod("p"), node("n"), Code::Success),
            (
                "cordoned node",
                pod("p"),
                cordoned.clone(),
                Code::UnschedulableAndUnresolvable,
            ),
            ("tolerated", tolerant, cordoned, Code::Success),
        ];
        for (name, pod, node, want) in cases {
            let got = NodeUnschedulable.filter(&CycleState::default(), &pod, &info(node, vec![]));
            assert_eq!(got.code, want, "{name}");
        }
    }
}
