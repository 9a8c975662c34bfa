//! Proportional scaling: when replicas change in the middle of a rollout, every active
//! ReplicaSet grows or shrinks in proportion to its size (Kubernetes' `scale`).

use super::revision::{replicas_annotation, MAX_REPLICAS_ANNOTATION};
use super::rolling::{desired, fenceposts, replicas};
use tug_proto::apps::v1::{Deployment, ReplicaSet};

/// New sizes for `active` (ReplicaSets with replicas > 0), same order. `status_replicas`
/// stands in for a missing max-replicas annotation.
pub fn proportional_sizes(d: &Deployment, active: &[ReplicaSet]) -> Vec<i32> {
    let mut sizes: Vec<i32> = active.iter().map(replicas).collect();
    let current: i32 = sizes.iter().sum();
    let want = desired(d);
    let (surge, _) = fenceposts(d);
    let allowed = if want > 0 { want + surge } else { 0 };
    let to_add = allowed - current;
    if to_add == 0 || active.is_empty() {
        return sizes;
    }
    // Bigger first; among equals the newer when growing, the older when shrinking.
    let mut order: Vec<usize> = (0..active.len()).collect();
    let created = |i: usize| active[i].metadata.creation_timestamp.as_ref().map(|t| t.0);
    order.sort_by(|&a, &b| {
        sizes[b].cmp(&sizes[a]).then_with(|| {
            if to_add > 0 {
                created(b).cmp(&created(a))
            } else {
                created(a).cmp(&created(b))
            }
        })
    });
    let status_replicas = d.status.as_ref().map_or(0, |s| s.replicas);
    let mut added = 0;
    for &i in &order {
        let rs = &active[i];
        let proportion = if replicas(rs) == 0 || added == to_add {
            0
        } else {
            let fraction = if want == 0 {
                -replicas(rs)
            } else {
                let annotated = replicas_annotation(rs, MAX_REPLICAS_ANNOTATION)
                    .filter(|a| *a > 0)
                    .unwrap_or(status_replicas.max(1));
                let size = f64::from(replicas(rs)) * f64::from(want + surge) / f64::from(annotated);
                // f64::round rounds half away from zero, like Go's math.Round.
                size.round() as i32 - replicas(rs)
            };
            let left = to_add - added;
            if to_add > 0 {
                fraction.min(left)
            } else {
                fraction.max(left)
            }
        };
        sizes[i] += proportion;
        added += proportion;
    }
    // Rounding leftovers go to the biggest ReplicaSet.
    let first = order[0];
    sizes[first] = (sizes[first] + to_add - added).max(0);
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::revision::MAX_REPLICAS_ANNOTATION;
    use crate::deployment::rolling::tests::{deployment, rs};
    use tug_proto::meta::v1::Time;
    use tug_proto::IntOrString;

    fn active(replicas: i32, max: i32, created: i64) -> ReplicaSet {
        let mut r = rs(replicas, replicas);
        r.metadata
            .annotations
            .insert(MAX_REPLICAS_ANNOTATION.into(), max.to_string());
        r.metadata.creation_timestamp =
            Some(Time(chrono::DateTime::from_timestamp(created, 0).unwrap()));
        r
    }

    #[test]
    fn replicas_are_spread_in_proportion_to_size() {
        let i = IntOrString::Int;
        let cases = [
            // Kubernetes' example: 10 replicas + 3 surge mid-rollout (8 old, 5 new), scaled
            // to 15 (+3 surge = 18): 5 more pods, old gets 3, new gets 2.
            (
                "grow mid rollout",
                deployment(15, i(3), i(2)),
                vec![active(8, 13, 1), active(5, 13, 2)],
                vec![11, 7],
            ),
            (
                "shrink mid rollout",
                deployment(5, i(3), i(2)),
                vec![active(8, 13, 1), active(5, 13, 2)],
                vec![5, 3],
            ),
            (
                "to zero",
                deployment(0, i(1), i(0)),
                vec![active(2, 4, 1), active(2, 4, 2)],
                vec![0, 0],
            ),
            (
                "no change",
                deployment(10, i(3), i(2)),
                vec![active(8, 13, 1), active(5, 13, 2)],
                vec![8, 5],
            ),
        ];
        for (name, d, rss, want) in cases {
            let got = proportional_sizes(&d, &rss);
            assert_eq!(got, want, "{name}");
        }
    }
}
