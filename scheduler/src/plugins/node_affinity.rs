//! NodeAffinity: `spec.nodeSelector` and required node affinity terms filter nodes;
//! preferred terms add their weights to a node's score.

use crate::framework::{default_normalize, CycleState, FilterPlugin, Plugin, ScorePlugin, Status};
use crate::node_info::NodeInfo;
use std::collections::BTreeMap;
use tug_proto::core::v1::{
    NodeAffinity as Affinity, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};

pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

pub struct NodeAffinity;

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }
}

fn affinity(pod: &Pod) -> Option<&Affinity> {
    pod.spec.as_ref()?.affinity.as_ref()?.node_affinity.as_ref()
}

/// One requirement against a label set (`matchExpressions`) or the node's fields.
fn requirement_matches(r: &NodeSelectorRequirement, values: &BTreeMap<String, String>) -> bool {
    let value = values.get(&r.key);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| r.values.contains(v)),
        "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value, r.values.as_slice()) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) if r.operator == "Gt" => v > b,
                (Ok(v), Ok(b)) => v < b,
                _ => false,
            }
        }
        _ => false,
    }
}

/// A term matches when all its requirements do; an empty term matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    let empty = BTreeMap::new();
    let labels = node.labels().unwrap_or(&empty);
    let fields: BTreeMap<String, String> =
        [("metadata.name".to_string(), node.name.clone())].into();
    term.match_expressions
        .iter()
        .all(|r| requirement_matches(r, labels))
        && term
            .match_fields
            .iter()
            .all(|r| requirement_matches(r, &fields))
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let empty = BTreeMap::new();
        let labels = node.labels().unwrap_or(&empty);
        let selector = pod.spec.as_ref().map(|s| &s.node_selector);
        if let Some(sel) = selector {
            if sel.iter().any(|(k, v)| labels.get(k) != Some(v)) {
                return Status::unresolvable(REASON);
            }
        }
        let required = affinity(pod).and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
        if let Some(req) = required {
            if !req
                .node_selector_terms
                .iter()
                .any(|t| term_matches(t, node))
            {
                return Status::unresolvable(REASON);
            }
        }
        Status::success()
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        affinity(pod)
            .map(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .iter()
                    .filter(|p| term_matches(&p.preference, node))
                    .map(|p| i64::from(p.weight))
                    .sum()
            })
            .unwrap_or(0)
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, false);
    }

    fn weight(&self) -> i64 {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::fixtures::*;
    use tug_proto::core::v1::{Affinity as PodAffinity, NodeSelector, PreferredSchedulingTerm};

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn with_required(mut p: Pod, terms: Vec<NodeSelectorTerm>) -> Pod {
        spec(&mut p).affinity = Some(PodAffinity {
            node_affinity: Some(Affinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: terms,
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    }

    fn exprs(r: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: r,
            match_fields: vec![],
        }
    }

    #[test]
    fn node_selector_and_required_terms_filter_nodes() {
        let labelled = || with_node_labels(node("n1"), &[("zone", "a"), ("cores", "8")]);
        let mut selected = pod("p");
        spec(&mut selected).node_selector = [("zone".to_string(), "a".to_string())].into();
        let mut mis_selected = pod("p");
        spec(&mut mis_selected).node_selector = [("zone".to_string(), "b".to_string())].into();
        let ok = Code::Success;
        let no = Code::UnschedulableAndUnresolvable;
        let cases = [
            ("no constraints", pod("p"), ok),
            ("nodeSelector matches", selected, ok),
            ("nodeSelector differs", mis_selected, no),
            (
                "In",
                with_required(pod("p"), vec![exprs(vec![req("zone", "In", &["a", "b"])])]),
                ok,
            ),
            (
                "In misses",
                with_required(pod("p"), vec![exprs(vec![req("zone", "In", &["c"])])]),
                no,
            ),
            (
                "NotIn",
                with_required(pod("p"), vec![exprs(vec![req("zone", "NotIn", &["a"])])]),
                no,
            ),
            (
                "NotIn missing key",
                with_required(pod("p"), vec![exprs(vec![req("gpu", "NotIn", &["x"])])]),
                ok,
            ),
            (
                "Exists",
                with_required(pod("p"), vec![exprs(vec![req("zone", "Exists", &[])])]),
                ok,
            ),
            (
                "DoesNotExist",
                with_required(
                    pod("p"),
                    vec![exprs(vec![req("zone", "DoesNotExist", &[])])],
                ),
                no,
            ),
            (
                "Gt",
                with_required(pod("p"), vec![exprs(vec![req("cores", "Gt", &["4"])])]),
                ok,
            ),
            (
                "Lt",
                with_required(pod("p"), vec![exprs(vec![req("cores", "Lt", &["4"])])]),
                no,
            ),
            (
                "Gt not a number",
                with_required(pod("p"), vec![exprs(vec![req("zone", "Gt", &["4"])])]),
                no,
            ),
            (
                "terms are ORed",
                with_required(
                    pod("p"),
                    vec![
                        exprs(vec![req("zone", "In", &["x"])]),
                        exprs(vec![req("zone", "In", &["a"])]),
                    ],
                ),
                ok,
            ),
            (
                "requirements are ANDed",
                with_required(
                    pod("p"),
                    vec![exprs(vec![
                        req("zone", "In", &["a"]),
                        req("cores", "Lt", &["2"]),
                    ])],
                ),
                no,
            ),
            (
                "an empty term matches nothing",
                with_required(pod("p"), vec![exprs(vec![])]),
                no,
            ),
            (
                "matchFields metadata.name",
                with_required(
                    pod("p"),
                    vec![NodeSelectorTerm {
                        match_expressions: vec![],
                        match_fields: vec![req("metadata.name", "In", &["n1"])],
                    }],
                ),
                ok,
            ),
            (
                "matchFields other name",
                with_required(
                    pod("p"),
                    vec![NodeSelectorTerm {
                        match_expressions: vec![],
                        match_fields: vec![req("metadata.name", "In", &["n2"])],
                    }],
                ),
                no,
            ),
        ];
        for (name, pod, want) in cases {
            let got = NodeAffinity.filter(&CycleState::default(), &pod, &info(labelled(), vec![]));
            assert_eq!(got.code, want, "{name}");
        }
    }

    #[test]
    fn preferred_terms_add_their_weights() {
        let mut p = pod("p");
        spec(&mut p).affinity = Some(PodAffinity {
            node_affinity: Some(Affinity {
                preferred_during_scheduling_ignored_during_execution: vec![
                    PreferredSchedulingTerm {
                        weight: 10,
                        preference: exprs(vec![req("zone", "In", &["a"])]),
                    },
                    PreferredSchedulingTerm {
                        weight: 5,
                        preference: exprs(vec![req("ssd", "Exists", &[])]),
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        });
        let cases = [
            ("none", node("n"), 0),
            ("zone", with_node_labels(node("n"), &[("zone", "a")]), 10),
            (
                "both",
                with_node_labels(node("n"), &[("zone", "a"), ("ssd", "")]),
                15,
            ),
        ];
        for (name, node, want) in cases {
            assert_eq!(
                NodeAffinity.score(&CycleState::default(), &p, &info(node, vec![])),
                want,
                "{name}"
            );
        }
    }
}
