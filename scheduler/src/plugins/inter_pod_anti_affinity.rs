//! InterPodAntiAffinity: required pod anti-affinity, both ways. The new pod may not join
//! a topology domain (the nodes sharing a `topologyKey` label value) holding pods its
//! terms select, and existing pods' terms that select the new pod keep it out of theirs.

use crate::framework::{CycleState, FilterPlugin, Plugin, Status};
use crate::node_info::NodeInfo;
use std::collections::HashSet;
use tug_proto::core::v1::{Pod, PodAffinityTerm};
use tug_proto::labels::Selector;

pub const REASON_INCOMING: &str = "node(s) didn't match pod anti-affinity rules";
pub const REASON_EXISTING: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
pub const HOSTNAME_KEY: &str = "kubernetes.io/hostname";
const STATE_KEY: &str = "InterPodAntiAffinity";

pub struct InterPodAntiAffinity;

/// A parsed term: which pods it selects, in which namespaces (`None`: all).
struct Term {
    topology_key: String,
    selector: Selector,
    namespaces: Option<HashSet<String>>,
}

impl Term {
    fn parse(owner: &Pod, t: &PodAffinityTerm) -> Result<Self, String> {
        // An absent labelSelector selects no pods, as in Kubernetes.
        let selector = match &t.label_selector {
            Some(ls) => Selector::from_label_selector(ls).map_err(|e| e.to_string())?,
            None => Selector::nothing(),
        };
        // namespaceSelector would need Namespace labels, which this scheduler does not
        // watch; it is read as "all namespaces" (stricter, never looser).
        let namespaces = if t.namespace_selector.is_some() {
            None
        } else if t.namespaces.is_empty() {
            Some([owner.metadata.namespace().to_string()].into())
        } else {
            Some(t.namespaces.iter().cloned().collect())
        };
        Ok(Term {
            topology_key: t.topology_key.clone(),
            selector,
            namespaces,
        })
    }

    fn selects(&self, pod: &Pod) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|ns| ns.contains(pod.metadata.namespace()))
            && self.selector.matches(&pod.metadata.labels)
    }
}

fn terms(pod: &Pod) -> Result<Vec<Term>, String> {
    let Some(anti) = pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
    else {
        return Ok(Vec::new());
    };
    anti.required_during_scheduling_ignored_during_execution
        .iter()
        .map(|t| Term::parse(pod, t))
        .collect()
}

/// The node's value of `key`; the hostname label defaults to the node's name.
fn domain(node: &NodeInfo, key: &str) -> Option<String> {
    match node.labels().and_then(|l| l.get(key)) {
        Some(v) => Some(v.clone()),
        None if key == HOSTNAME_KEY => Some(node.name.clone()),
        None => None,
    }
}

/// Domains (topologyKey, value) closed to the pod this cycle.
#[derive(Default)]
struct Forbidden {
    by_incoming: HashSet<(String, String)>,
    by_existing: HashSet<(String, String)>,
}

impl Plugin for InterPodAntiAffinity {
    fn name(&self) -> &'static str {
        "InterPodAntiAffinity"
    }
}

impl FilterPlugin for InterPodAntiAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, nodes: &[NodeInfo]) -> Status {
        let own = match terms(pod) {
            Ok(t) => t,
            Err(e) => {
                return Status::unresolvable(format!(
                    "invalid pod anti-affinity labelSelector: {e}"
                ))
            }
        };
        let mut forbidden = Forbidden::default();
        for node in nodes {
            if !own.is_empty() {
                for term in &own {
                    let Some(value) = domain(node, &term.topology_key) else {
                        continue;
                    };
                    if node.pods.values().any(|p| term.selects(p)) {
                        forbidden
                            .by_incoming
                            .insert((term.topology_key.clone(), value));
                    }
                }
            }
            if node.pods_with_anti_affinity > 0 {
                for existing in node.pods.values() {
                    for term in terms(existing).unwrap_or_default() {
                        if !term.selects(pod) {
                            continue;
                        }
                        if let Some(value) = domain(node, &term.topology_key) {
                            forbidden.by_existing.insert((term.topology_key, value));
                        }
                    }
                }
            }
        }
        state.write(STATE_KEY, forbidden);
        Status::success()
    }

    fn filter(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Status {
        let Some(forbidden) = state.read::<Forbidden>(STATE_KEY) else {
            return Status::error("InterPodAntiAffinity: pre_filter did not run");
        };
        let closed = |set: &HashSet<(String, String)>| {
            set.iter()
                .any(|(key, value)| domain(node, key).as_ref() == Some(value))
        };
        if closed(&forbidden.by_incoming) {
            return Status::unschedulable(REASON_INCOMING);
        }
        if closed(&forbidden.by_existing) {
            return Status::unschedulable(REASON_EXISTING);
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::fixtures::*;
    use tug_proto::core::v1::{Affinity, PodAntiAffinity};
    use tug_proto::meta::v1::LabelSelector;

    fn anti(p: Pod, app: &str, key: &str) -> Pod {
        let mut p = p;
        spec(&mut p).affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: [("app".to_string(), app.to_string())].into(),
                        ..Default::default()
                    }),
                    topology_key: key.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    }

    #[test]
    fn anti_affinity_holds_in_both_directions() {
        let web = |n: &str| with_labels(pod(n), &[("app", "web")]);
        let zoned = |n: &str, z: &str| with_node_labels(node(n), &[("zone", z)]);
        type Case = (&'static str, Pod, Vec<NodeInfo>, Vec<Code>);
        let cases: Vec<Case> = vec![
            (
                "no anti-affinity anywhere",
                web("p"),
                vec![info(node("a"), vec![web("x")])],
                vec![Code::Success],
            ),
            (
                "new pod avoids a node with a selected pod",
                anti(web("p"), "web", HOSTNAME_KEY),
                vec![info(node("a"), vec![web("x")]), info(node("b"), vec![])],
                vec![Code::Unschedulable, Code::Success],
            ),
            (
                "other namespaces are not selected",
                anti(web("p"), "web", HOSTNAME_KEY),
                vec![info(
                    node("a"),
                    vec![{
                        let mut x = web("x");
                        x.metadata.namespace = Some("other".into());
                        x
                    }],
                )],
                vec![Code::Success],
            ),
            (
                "an existing pod's anti-affinity keeps the new pod out",
                web("p"),
                vec![
                    info(node("a"), vec![anti(pod("x"), "web", HOSTNAME_KEY)]),
                    info(node("b"), vec![]),
                ],
                vec![Code::Unschedulable, Code::Success],
            ),
            (
                "zone topology closes every node of the zone",
                anti(web("p"), "web", "zone"),
                vec![
                    info(zoned("a", "z1"), vec![web("x")]),
                    info(zoned("b", "z1"), vec![]),
                    info(zoned("c", "z2"), vec![]),
                ],
                vec![Code::Unschedulable, Code::Unschedulable, Code::Success],
            ),
        ];
        for (name, pod, nodes, want) in cases {
            let mut state = CycleState::default();
            assert!(InterPodAntiAffinity
                .pre_filter(&mut state, &pod, &nodes)
                .is_success());
            let got: Vec<Code> = nodes
                .iter()
                .map(|n| InterPodAntiAffinity.filter(&state, &pod, n).code)
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
