//! SelectorSpread: spreads pods of the same controller (ReplicaSet, Job, ...) across
//! nodes by preferring nodes holding fewer of its pods.

use crate::framework::{default_normalize, CycleState, Plugin, ScorePlugin};
use crate::node_info::NodeInfo;
use tug_proto::core::v1::Pod;

pub struct SelectorSpread;

impl Plugin for SelectorSpread {
    fn name(&self) -> &'static str {
        "SelectorSpread"
    }
}

fn owner_uid(pod: &Pod) -> Option<&str> {
    pod.metadata.controller_ref().map(|r| r.uid.as_str())
}

impl ScorePlugin for SelectorSpread {
    /// How many pods of the same controller the node already has (fewer is better).
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> i64 {
        let Some(uid) = owner_uid(pod) else {
            return 0;
        };
        let ns = pod.metadata.namespace();
        node.pods
            .values()
            .filter(|p| p.metadata.namespace() == ns && owner_uid(p) == Some(uid))
            .count() as i64
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, true);
    }

    fn weight(&self) -> i64 {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::fixtures::*;
    use tug_proto::meta::v1::OwnerReference;

    fn owned(name: &str, uid: &str) -> Pod {
        let mut p = pod(name);
        p.metadata.owner_references = vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: None,
        }];
        p
    }

    #[test]
    fn siblings_on_a_node_count_against_it() {
        let cases = [
            ("no owner", pod("p"), vec![owned("a", "u1")], 0),
            ("no siblings", owned("p", "u1"), vec![owned("a", "u2")], 0),
            (
                "two siblings",
                owned("p", "u1"),
                vec![owned("a", "u1"), owned("b", "u1"), pod("c")],
                2,
            ),
        ];
        for (name, pod, existing, want) in cases {
            assert_eq!(
                SelectorSpread.score(&CycleState::default(), &pod, &info(node("n"), existing)),
                want,
                "{name}"
            );
        }
    }
}
