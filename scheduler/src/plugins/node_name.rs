//! NodeName: a pod that names its node (`spec.nodeName`) fits only there.

use crate::framework::{CycleState, FilterPlugin, Plugin, Status};
use crate::node_info::NodeInfo;
use tug_proto::core::v1::Pod;

pub const REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(want) if !want.is_empty() && want != node.name => Status::unresolvable(REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::fixtures::*;

    #[test]
    fn a_named_node_is_the_only_fit() {
        let named = |n: &str| {
            let mut p = pod("p");
            spec(&mut p).node_name = Some(n.into());
            p
        };
        let cases = [
            ("no name", pod("p"), node("a"), Code::Success),
            ("same name", named("a"), node("a"), Code::Success),
            (
                "other name",
                named("b"),
                node("a"),
                Code::UnschedulableAndUnresolvable,
            ),
        ];
        for (name, pod, node, want) in cases {
            let got = NodeName.filter(&CycleState::default(), &pod, &info(node, vec![]));
            assert_eq!(got.code, want, "{name}");
        }
    }
}
