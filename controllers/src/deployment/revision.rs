//! Deployment annotations on ReplicaSets (revision, desired and max replicas) and the
//! choice of old ReplicaSets to delete beyond `revisionHistoryLimit`.

use super::rolling::replicas;
use std::cmp::Reverse;
use tug_proto::apps::v1::{Deployment, ReplicaSet};

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";

/// Kubernetes' default `revisionHistoryLimit`.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

/// The revision of a ReplicaSet (0 when missing or not a number).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub fn max_revision(rss: &[ReplicaSet]) -> i64 {
    rss.iter().map(revision).max().unwrap_or(0)
}

/// An annotation holding a replica count.
pub fn replicas_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata
        .annotations
        .get(key)
        .and_then(|v| v.parse().ok())
}

/// Sets desired-replicas and max-replicas; returns whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let mut changed = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired),
        (MAX_REPLICAS_ANNOTATION, max),
    ] {
        let value = value.to_string();
        if rs.metadata.annotations.get(key) != Some(&value) {
            rs.metadata.annotations.insert(key.to_string(), value);
            changed = true;
        }
    }
    changed
}

/// Names of old ReplicaSets to delete so that at most `revisionHistoryLimit` remain:
/// lowest revisions first, and only those fully scaled down and settled.
pub fn history_to_delete(d: &Deployment, old: &[ReplicaSet]) -> Vec<String> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
        .max(0);
    let mut cleanable: Vec<&ReplicaSet> = old
        .iter()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .collect();
    let excess = cleanable
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    cleanable.sort_by_key(|rs| (revision(rs), Reverse(rs.metadata.name().to_string())));
    cleanable
        .into_iter()
        .take(excess)
        .filter(|rs| {
            let status = rs.status.clone().unwrap_or_default();
            replicas(rs) == 0
                && status.replicas == 0
                && rs.metadata.generation.unwrap_or(0) <= status.observed_generation
        })
        .map(|rs| rs.metadata.name().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::rolling::tests::rs;
    use tug_proto::apps::v1::DeploymentSpec;

    fn old(name: &str, revision: i64, replicas: i32) -> ReplicaSet {
        let mut r = rs(replicas, replicas);
        r.metadata.name = Some(name.into());
        r.metadata
            .annotations
            .insert(REVISION_ANNOTATION.into(), revision.to_string());
        r
    }

    #[test]
    fn history_beyond_the_limit_goes_oldest_revision_first_and_only_when_scaled_down() {
        let d = |limit| Deployment {
            spec: Some(DeploymentSpec {
                revision_history_limit: limit,
                ..Default::default()
            }),
            ..Default::default()
        };
        let rss = vec![
            old("r3", 3, 0),
            old("r1", 1, 0),
            old("r2", 2, 1),
            old("r4", 4, 0),
        ];
        let cases = [
            (Some(2), vec!["r1"]),
            (Some(0), vec!["r1", "r3", "r4"]),
            (Some(10), vec![]),
            (None, vec![]),
        ];
        for (limit, want) in cases {
            assert_eq!(history_to_delete(&d(limit), &rss), want, "{limit:?}");
        }
    }

    #[test]
    fn replica_annotations_report_changes() {
        let mut r = rs(1, 1);
        assert!(set_replicas_annotations(&mut r, 3, 4));
        assert!(!set_replicas_annotations(&mut r, 3, 4));
        assert_eq!(replicas_annotation(&r, MAX_REPLICAS_ANNOTATION), Some(4));
        assert_eq!(revision(&r), 0);
    }
}
