//! Rolling-update arithmetic: maxSurge / maxUnavailable, how far the new ReplicaSet may
//! grow, and how far the old ones may shrink, all as pure functions of cached objects.

use tug_proto::apps::v1::{Deployment, ReplicaSet};
use tug_proto::IntOrString;

/// `spec.replicas` of a Deployment (1 when unset, as the apiserver defaults it).
pub fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0)
}

/// `spec.replicas` of a ReplicaSet.
pub fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(0)
        .max(0)
}

/// `status.availableReplicas`, never more than `spec.replicas`: a status not yet updated
/// after a scale-down must not count pods that are going away.
pub fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .map_or(0, |s| s.available_replicas)
        .clamp(0, replicas(rs))
}

pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// `(maxSurge, maxUnavailable)` of `d` resolved against its replicas: surge rounds up,
/// unavailable rounds down, both zero becomes unavailable 1 (else nothing could move),
/// and unavailable never exceeds replicas. Recreate has neither. Invalid values (which
/// validation rejects) count as the defaults, 25%.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    if is_recreate(d) {
        return (0, 0);
    }
    let replicas = desired(d);
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let default = IntOrString::String("25%".into());
    let surge_spec = ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&default);
    let unavailable_spec = ru
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&default);
    resolve_fenceposts(surge_spec, unavailable_spec, replicas)
}

/// [`fenceposts`] on raw values.
pub fn resolve_fenceposts(
    surge: &IntOrString,
    unavailable: &IntOrString,
    replicas: i32,
) -> (i32, i32) {
    let surge = surge
        .scaled_value(replicas, true)
        .or_else(|_| IntOrString::String("25%".into()).scaled_value(replicas, true))
        .unwrap_or(0)
        .max(0);
    let mut unavailable = unavailable
        .scaled_value(replicas, false)
        .or_else(|_| IntOrString::String("25%".into()).scaled_value(replicas, false))
        .unwrap_or(0)
        .max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(replicas))
}

/// The replicas the new ReplicaSet may have now: up to `replicas + maxSurge` pods in all
/// ReplicaSets together, never above `replicas`.
pub fn new_rs_replicas(d: &Deployment, new_rs: &ReplicaSet, old: &[ReplicaSet]) -> i32 {
    let want = desired(d);
    if is_recreate(d) {
        return want;
    }
    let (surge, _) = fenceposts(d);
    let current: i32 = replicas(new_rs) + old.iter().map(replicas).sum::<i32>();
    let max_total = want + surge;
    if current >= max_total {
        return replicas(new_rs);
    }
    let up = (max_total - current).min(want - replicas(new_rs)).max(0);
    replicas(new_rs) + up
}

/// New sizes for the old ReplicaSets (oldest first, same order as `old`): first drop
/// their unavailable pods, then available ones while at least `replicas -
/// maxUnavailable` pods stay available in all ReplicaSets together.
pub fn old_rs_sizes(d: &Deployment, new_rs: &ReplicaSet, old: &[ReplicaSet]) -> Vec<i32> {
    let mut sizes: Vec<i32> = old.iter().map(replicas).collect();
    let old_pods: i32 = sizes.iter().sum();
    if old_pods == 0 {
        return sizes;
    }
    let (_, max_unavailable) = fenceposts(d);
    let min_available = desired(d) - max_unavailable;
    let all_pods = old_pods + replicas(new_rs);
    let new_unavailable = replicas(new_rs) - available(new_rs);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return sizes;
    }
    // Unhealthy pods first: removing them costs no availability.
    let mut cleaned = 0;
    for (size, rs) in sizes.iter_mut().zip(old) {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = *size - available(rs);
        if unhealthy <= 0 {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(unhealthy);
        *size -= n;
        cleaned += n;
    }
    let available_now: i32 = available(new_rs)
        + sizes
            .iter()
            .zip(old)
            .map(|(size, rs)| available(rs).min(*size))
            .sum::<i32>();
    if available_now <= min_available {
        return sizes;
    }
    let total = available_now - min_available;
    let mut scaled = 0;
    for size in sizes.iter_mut() {
        if scaled >= total {
            break;
        }
        let n = (*size).min(total - scaled);
        *size -= n;
        scaled += n;
    }
    sizes
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tug_proto::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };

    pub(crate) fn deployment(
        replicas: i32,
        surge: IntOrString,
        unavailable: IntOrString,
    ) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub(crate) fn rs(replicas: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                available_replicas: available,
                ready_replicas: available,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        let s = |v: &str| IntOrString::String(v.into());
        let i = IntOrString::Int;
        let cases = [
            ("defaults of 10", s("25%"), s("25%"), 10, (3, 2)),
            ("defaults of 1", s("25%"), s("25%"), 1, (1, 0)),
            ("defaults of 4", s("25%"), s("25%"), 4, (1, 1)),
            ("ints", i(2), i(1), 5, (2, 1)),
            ("both zero allows one unavailable", i(0), i(0), 3, (0, 1)),
            ("percent zero too", s("0%"), s("10%"), 5, (0, 1)),
            ("unavailable capped at replicas", i(1), i(10), 3, (1, 3)),
            ("zero replicas", s("25%"), s("25%"), 0, (0, 0)),
            ("invalid counts as default", s("lots"), s("25%"), 8, (2, 2)),
        ];
        for (name, surge, unavailable, replicas, want) in cases {
            assert_eq!(
                resolve_fenceposts(&surge, &unavailable, replicas),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn the_new_replicaset_grows_within_the_surge() {
        let i = IntOrString::Int;
        let cases = [
            (
                "fresh rollout, surge 1",
                deployment(3, i(1), i(0)),
                rs(0, 0),
                vec![rs(3, 3)],
                1,
            ),
            (
                "at the cap",
                deployment(3, i(1), i(0)),
                rs(1, 0),
                vec![rs(3, 3)],
                1,
            ),
            (
                "old shrank",
                deployment(3, i(1), i(0)),
                rs(1, 1),
                vec![rs(2, 2)],
                2,
            ),
            (
                "never above replicas",
                deployment(3, i(5), i(0)),
                rs(0, 0),
                vec![rs(1, 1)],
                3,
            ),
            ("no old", deployment(4, i(1), i(1)), rs(0, 0), vec![], 4),
        ];
        for (name, d, new_rs, old, want) in cases {
            assert_eq!(new_rs_replicas(&d, &new_rs, &old), want, "{name}");
        }
    }

    #[test]
    fn old_replicasets_shrink_without_breaking_min_available() {
        let i = IntOrString::Int;
        let cases = [
            // replicas 3, maxUnavailable 1: min available 2.
            (
                "new pods not ready yet",
                deployment(3, i(1), i(1)),
                rs(1, 0),
                vec![rs(3, 3)],
                vec![2],
            ),
            (
                "one new available",
                deployment(3, i(1), i(1)),
                rs(2, 1),
                vec![rs(2, 2)],
                vec![1],
            ),
            (
                "unavailable old pods go first",
                deployment(3, i(0), i(1)),
                rs(0, 0),
                vec![rs(3, 1)],
                vec![2],
            ),
            (
                "oldest first",
                deployment(4, i(0), i(2)),
                rs(0, 0),
                vec![rs(2, 2), rs(2, 2)],
                vec![0, 2],
            ),
            (
                "stale status counts at most spec",
                deployment(3, i(1), i(1)),
                rs(1, 0),
                vec![rs(2, 3)],
                vec![2],
            ),
            (
                "nothing old",
                deployment(3, i(1), i(1)),
                rs(3, 3),
                vec![rs(0, 0)],
                vec![0],
            ),
            (
                "max unavailable 0 waits",
                deployment(3, i(1), i(0)),
                rs(1, 0),
                vec![rs(3, 3)],
                vec![3],
            ),
        ];
        for (name, d, new_rs, old, want) in cases {
            assert_eq!(old_rs_sizes(&d, &new_rs, &old), want, "{name}");
        }
    }
}
