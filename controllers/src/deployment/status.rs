//! Deployment status: counts summed from its ReplicaSets, the `Available` condition, and
//! the `Progressing` condition with its deadline.

use super::rolling::{desired, fenceposts};
use chrono::{DateTime, Utc};
use tug_proto::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use tug_proto::meta::v1::Time;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Sets a condition; keeps `lastTransitionTime` when the status did not change, and
/// does nothing when status and reason are the same (so an unchanged condition does
/// not bump `lastUpdateTime` on every sync).
pub fn set_condition(
    status: &mut DeploymentStatus,
    type_: &str,
    cond_status: &str,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) {
    let mut transition = Some(Time(now));
    if let Some(old) = condition(status, type_) {
        if old.status == cond_status && old.reason.as_deref() == Some(reason) {
            return;
        }
        if old.status == cond_status {
            transition = old.last_transition_time;
        }
    }
    status.conditions.retain(|c| c.type_ != type_);
    status.conditions.push(DeploymentCondition {
        type_: type_.to_string(),
        status: cond_status.to_string(),
        last_update_time: Some(Time(now)),
        last_transition_time: transition,
        reason: Some(reason.to_string()),
        message: Some(message),
    });
}

/// Status counts from the ReplicaSets, plus `Available`; other conditions are kept.
pub fn calculate_status(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
    now: DateTime<Utc>,
) -> DeploymentStatus {
    let rs_status = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let spec_replicas: i32 = all.iter().map(|rs| super::rolling::replicas(rs)).sum();
    let available: i32 = all.iter().map(|rs| rs_status(rs).available_replicas).sum();
    let mut status = d.status.clone().unwrap_or_default();
    status.observed_generation = d.metadata.generation.unwrap_or(0);
    status.replicas = all.iter().map(|rs| rs_status(rs).replicas).sum();
    status.updated_replicas = new_rs.map_or(0, |rs| rs_status(rs).replicas);
    status.ready_replicas = all.iter().map(|rs| rs_status(rs).ready_replicas).sum();
    status.available_replicas = available;
    status.unavailable_replicas = (spec_replicas - available).max(0);
    let (_, max_unavailable) = fenceposts(d);
    if available >= desired(d) - max_unavailable {
        set_condition(
            &mut status,
            AVAILABLE,
            "True",
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.".into(),
            now,
        );
    } else {
        set_condition(
            &mut status,
            AVAILABLE,
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            now,
        );
    }
    status
}

/// `progressDeadlineSeconds`, unless unset or "never" (MaxInt32).
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

/// Every pod updated and available, and the status is of the current generation.
pub fn is_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let want = desired(d);
    status.updated_replicas == want
        && status.replicas == want
        && status.available_replicas == want
        && status.observed_generation >= d.metadata.generation.unwrap_or(0)
}

/// Something moved since the last recorded status.
pub fn is_progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let old_old = old.replicas - old.updated_replicas;
    let new_old = new.replicas - new.updated_replicas;
    new.updated_replicas > old.updated_replicas
        || new_old < old_old
        || new.ready_replicas > old.ready_replicas
        || new.available_replicas > old.available_replicas
}

/// The Progressing condition has not been updated for longer than the deadline.
pub fn is_timed_out(d: &Deployment, status: &DeploymentStatus, now: DateTime<Utc>) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = condition(status, PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) | Some(PAUSED) => return false,
        Some(TIMED_OUT) => return true,
        _ => {}
    }
    let Some(from) = c.last_update_time.as_ref() else {
        return false;
    };
    from.0 + chrono::Duration::seconds(i64::from(deadline)) < now
}

/// The status after a rollout step: counts, `Available`, and `Progressing` moved along
/// (complete, progressing, or past its deadline).
pub fn rollout_status(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
    now: DateTime<Utc>,
) -> DeploymentStatus {
    let mut status = calculate_status(d, new_rs, all, now);
    // A ReplicaSet that cannot create pods (quota, invalid template) says so on the
    // Deployment too.
    let failure = new_rs
        .into_iter()
        .chain(all.iter().copied())
        .filter_map(|rs| rs.status.as_ref())
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == REPLICA_FAILURE && c.status == "True")
        .cloned();
    match failure {
        Some(c) => set_condition(
            &mut status,
            REPLICA_FAILURE,
            "True",
            c.reason.as_deref().unwrap_or("FailedCreate"),
            c.message.unwrap_or_default(),
            now,
        ),
        None => status.conditions.retain(|c| c.type_ != REPLICA_FAILURE),
    }
    if progress_deadline(d).is_none() {
        status.conditions.retain(|c| c.type_ != PROGRESSING);
        return status;
    }
    let complete_before = condition(&status, PROGRESSING)
        .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE))
        && status.replicas == status.updated_replicas;
    if complete_before {
        return status;
    }
    let rs_name = new_rs.map_or("", |rs| rs.metadata.name());
    let old = d.status.clone().unwrap_or_default();
    if is_complete(d, &status) {
        set_condition(
            &mut status,
            PROGRESSING,
            "True",
            NEW_RS_AVAILABLE,
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            now,
        );
    } else if is_progressing(&old, &status) {
        // Progress renews the deadline: always bump lastUpdateTime.
        let transition = condition(&status, PROGRESSING)
            .filter(|c| c.status == "True")
            .and_then(|c| c.last_transition_time)
            .or(Some(Time(now)));
        status.conditions.retain(|c| c.type_ != PROGRESSING);
        status.conditions.push(DeploymentCondition {
            type_: PROGRESSING.into(),
            status: "True".into(),
            last_update_time: Some(Time(now)),
            last_transition_time: transition,
            reason: Some(RS_UPDATED.into()),
            message: Some(format!("ReplicaSet \"{rs_name}\" is progressing.")),
        });
    } else if is_timed_out(d, &status, now) {
        set_condition(
            &mut status,
            PROGRESSING,
            "False",
            TIMED_OUT,
            format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
            now,
        );
    }
    status
}

/// When to look again so a stuck rollout is marked timed out on time.
pub fn requeue_for_deadline(
    d: &Deployment,
    status: &DeploymentStatus,
    now: DateTime<Utc>,
) -> Option<std::time::Duration> {
    let deadline = progress_deadline(d)?;
    let c = condition(status, PROGRESSING)?;
    if c.status != "True" || c.reason.as_deref() == Some(NEW_RS_AVAILABLE) || is_complete(d, status)
    {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0;
    let at =
        from + chrono::Duration::seconds(i64::from(deadline)) + chrono::Duration::milliseconds(100);
    let after = (at - now).to_std().unwrap_or_default();
    Some(after.max(std::time::Duration::from_millis(100)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::rolling::tests::{deployment, rs};
    use tug_proto::IntOrString;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn status_sums_replicasets_and_sets_availability() {
        let d = deployment(4, IntOrString::Int(1), IntOrString::Int(1));
        let new_rs = rs(2, 1);
        let old = rs(3, 3);
        let s = calculate_status(&d, Some(&new_rs), &[&new_rs, &old], at(0));
        assert_eq!(
            (
                s.replicas,
                s.updated_replicas,
                s.ready_replicas,
                s.available_replicas,
                s.unavailable_replicas
            ),
            (5, 2, 4, 4, 1)
        );
        assert_eq!(
            condition(&s, AVAILABLE).unwrap().reason.as_deref(),
            Some(MINIMUM_REPLICAS_AVAILABLE)
        );
        let few = rs(4, 2);
        let s = calculate_status(&d, Some(&few), &[&few], at(0));
        assert_eq!(condition(&s, AVAILABLE).unwrap().status, "False");
    }

    #[test]
    fn progressing_moves_from_updated_to_available_or_times_out() {
        let mut d = deployment(2, IntOrString::Int(1), IntOrString::Int(0));
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(10);
        let mut st = DeploymentStatus::default();
        set_condition(
            &mut st,
            PROGRESSING,
            "True",
            NEW_RS_CREATED,
            "created".into(),
            at(0),
        );
        d.status = Some(st);

        // A step forward renews the condition.
        let new_rs = rs(1, 0);
        let s = rollout_status(&d, Some(&new_rs), &[&new_rs], at(5));
        let c = condition(&s, PROGRESSING).unwrap();
        assert_eq!(
            (c.reason.as_deref(), c.last_update_time),
            (Some(RS_UPDATED), Some(Time(at(5))))
        );
        d.status = Some(s);

        // Nothing moves past the deadline: timed out.
        let s = rollout_status(&d, Some(&new_rs), &[&new_rs], at(9));
        assert_eq!(
            condition(&s, PROGRESSING).unwrap().reason.as_deref(),
            Some(RS_UPDATED)
        );
        assert!(requeue_for_deadline(&d, &s, at(9)).is_some());
        let s = rollout_status(&d, Some(&new_rs), &[&new_rs], at(16));
        let c = condition(&s, PROGRESSING).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some(TIMED_OUT))
        );

        // All available: complete, and it stays complete.
        let done = rs(2, 2);
        let s = rollout_status(&d, Some(&done), &[&done], at(20));
        assert_eq!(
            condition(&s, PROGRESSING).unwrap().reason.as_deref(),
            Some(NEW_RS_AVAILABLE)
        );
        d.status = Some(s);
        let s = rollout_status(&d, Some(&done), &[&done], at(100));
        assert_eq!(
            condition(&s, PROGRESSING).unwrap().reason.as_deref(),
            Some(NEW_RS_AVAILABLE)
        );
    }

    #[test]
    fn a_replicaset_failure_shows_on_the_deployment_until_it_clears() {
        let d = deployment(1, IntOrString::Int(1), IntOrString::Int(0));
        let mut failing = rs(1, 0);
        failing.status.as_mut().unwrap().conditions.push(
            tug_proto::apps::v1::ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some("FailedCreate".into()),
                message: Some("quota exceeded".into()),
                ..Default::default()
            },
        );
        let s = rollout_status(&d, Some(&failing), &[&failing], at(0));
        let c = condition(&s, REPLICA_FAILURE).unwrap();
        assert_eq!(
            (c.reason.as_deref(), c.message.as_deref()),
            (Some("FailedCreate"), Some("quota exceeded"))
        );
        let mut d = d;
        d.status = Some(s);
        let fine = rs(1, 1);
        let s = rollout_status(&d, Some(&fine), &[&fine], at(1));
        assert!(condition(&s, REPLICA_FAILURE).is_none());
    }

    #[test]
    fn without_a_deadline_there_is_no_progressing_condition() {
        let d = deployment(1, IntOrString::Int(1), IntOrString::Int(0));
        let r = rs(1, 1);
        let s = rollout_status(&d, Some(&r), &[&r], at(0));
        assert!(condition(&s, PROGRESSING).is_none());
    }
}
