//! NodePorts: a pod's host ports must be free on the node (same protocol and port, and
//! overlapping host IPs, conflict; `0.0.0.0` overlaps every IP).

use crate::framework::{CycleState, FilterPlugin, Plugin, Status};
use crate::node_info::{host_ports, NodeInfo};
use tug_proto::core::v1::Pod;

pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        if node.used_ports.is_empty() {
            return Status::success();
        }
        let conflict = host_ports(pod).iter().any(|(ip, proto, port)| {
            node.used_ports.keys().any(|(uip, uproto, uport)| {
                uport == port && uproto == proto && (ip.is_empty() || uip.is_empty() || ip == uip)
            })
        });
        if conflict {
            Status::unschedulable(REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::fixtures::*;

    #[test]
    fn host_ports_conflict_with_pods_already_there() {
        let mut udp = with_host_port(pod("p"), 80);
        spec(&mut udp).containers[0].ports[0].protocol = Some("UDP".into());
        let mut other_ip = with_host_port(pod("p"), 80);
        spec(&mut other_ip).containers[0].ports[0].host_ip = Some("10.0.0.2".into());
        let mut pinned = with_host_port(pod("a"), 80);
        spec(&mut pinned).containers[0].ports[0].host_ip = Some("10.0.0.1".into());
        let cases = [
            (
                "no ports",
                pod("p"),
                vec![with_host_port(pod("a"), 80)],
                Code::Success,
            ),
            (
                "free port",
                with_host_port(pod("p"), 81),
                vec![with_host_port(pod("a"), 80)],
                Code::Success,
            ),
            (
                "taken port",
                with_host_port(pod("p"), 80),
                vec![with_host_port(pod("a"), 80)],
                Code::Unschedulable,
            ),
            (
                "other protocol",
                udp,
                vec![with_host_port(pod("a"), 80)],
                Code::Success,
            ),
            (
                "different host IPs",
                other_ip,
                vec![pinned.clone()],
                Code::Success,
            ),
            (
                "any IP overlaps",
                with_host_port(pod("p"), 80),
                vec![pinned],
                Code::Unschedulable,
            ),
        ];
        for (name, pod, existing, want) in cases {
            let got = NodePorts.filter(&CycleState::default(), &pod, &info(node("n"), existing));
            assert_eq!(got.code, want, "{name}");
        }
    }
}
