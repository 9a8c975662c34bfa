//! TaintToleration: untolerated NoSchedule/NoExecute taints rule a node out; untolerated
//! PreferNoSchedule taints lower its score.

use crate::framework::{default_normalize, CycleState, FilterPlugin, Plugin, ScorePlugin, Status};
use crate::node_info::NodeInfo;
use tug_proto::core::v1::{Pod, Taint, Toleration};

pub struct TaintToleration;

/// Whether `t` tolerates `taint`, with Kubernetes' rules: an empty effect matches every
/// effect; `Exists` with an empty key matches every taint; `Equal` (the default)
/// compares values.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .map(|s| s.tolerations.as_slice())
        .unwrap_or_default()
}

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node
        .as_ref()
        .and_then(|n| n.spec.as_ref())
        .map(|s| s.taints.as_slice())
        .unwrap_or_default()
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let tols = tolerations(pod);
        let untolerated = taints(node).iter().find(|taint| {
            matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
                && !tols.iter().any(|t| tolerates(t, taint))
        });
        match untolerated {
            None => Status::success(),
            Some(taint) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or("")
            )),
        }
    }
}

impl ScorePlugin for TaintToleration {
    /// The number of PreferNoSchedule taints the pod does not tolerate (fewer is better).
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        let tols: Vec<&Toleration> = tolerations(pod)
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .collect();
        taints(node)
            .iter()
            .filter(|taint| taint.effect == "PreferNoSchedule")
            .filter(|taint| !tols.iter().any(|t| tolerates(t, taint)))
            .count() as i64
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, true);
    }

    fn weight(&self) -> i64 {
        3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::fixtures::*;

    #[test]
    fn untolerated_hard_taints_fail_the_filter() {
        let cp = taint("node-role.kubernetes.io/control-plane", "", "NoSchedule");
        let cases = [
            ("no taints", pod("p"), node("n"), Code::Success),
            (
                "untolerated NoSchedule",
                pod("p"),
                with_taints(node("n"), vec![cp.clone()]),
                Code::UnschedulableAndUnresolvable,
            ),
            (
                "untolerated NoExecute",
                pod("p"),
                with_taints(node("n"), vec![taint("k", "v", "NoExecute")]),
                Code::UnschedulableAndUnresolvable,
            ),
            (
                "PreferNoSchedule does not filter",
                pod("p"),
                with_taints(node("n"), vec![taint("k", "v", "PreferNoSchedule")]),
                Code::Success,
            ),
            (
                "Exists toleration",
                with_tolerations(
                    pod("p"),
                    vec![toleration(&cp.key, "Exists", "", "NoSchedule")],
                ),
                with_taints(node("n"), vec![cp.clone()]),
                Code::Success,
            ),
            (
                "Equal toleration with the wrong value",
                with_tolerations(pod("p"), vec![toleration("k", "Equal", "x", "")]),
                with_taints(node("n"), vec![taint("k", "v", "NoSchedule")]),
                Code::UnschedulableAndUnresolvable,
            ),
            (
                "Equal toleration, any effect",
                with_tolerations(pod("p"), vec![toleration("k", "", "v", "")]),
                with_taints(node("n"), vec![taint("k", "v", "NoExecute")]),
                Code::Success,
            ),
            (
                "tolerate everything",
                with_tolerations(pod("p"), vec![toleration("", "Exists", "", "")]),
                with_taints(node("n"), vec![cp.clone(), taint("k", "v", "NoExecute")]),
                Code::Success,
            ),
        ];
        for (name, pod, node, want) in cases {
            let got = TaintToleration.filter(&CycleState::default(), &pod, &info(node, vec![]));
            assert_eq!(got.code, want, "{name}: {got}");
        }
    }

    #[test]
    fn the_failure_names_the_taint_like_kubernetes() {
        let n = with_taints(
            node("n"),
            vec![taint(
                "node-role.kubernetes.io/control-plane",
                "",
                "NoSchedule",
            )],
        );
        let got = TaintToleration.filter(&CycleState::default(), &pod("p"), &info(n, vec![]));
        assert_eq!(
            got.message(),
            "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
        );
    }

    #[test]
    fn prefer_no_schedule_taints_count_against_a_node() {
        let soft = |n: usize| {
            with_taints(
                node("n"),
                (0..n)
                    .map(|i| taint(&format!("k{i}"), "", "PreferNoSchedule"))
                    .collect(),
            )
        };
        let cases = [
            ("none", pod("p"), soft(0), 0),
            ("two", pod("p"), soft(2), 2),
            (
                "one tolerated",
                with_tolerations(
                    pod("p"),
                    vec![toleration("k0", "Exists", "", "PreferNoSchedule")],
                ),
                soft(2),
                1,
            ),
        ];
        for (name, pod, node, want) in cases {
            let got = TaintToleration.score(&CycleState::default(), &pod, &info(node, vec![]));
            assert_eq!(got, want, "{name}");
        }
    }
}
