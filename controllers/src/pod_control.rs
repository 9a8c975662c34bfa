//! Pods owned by a controller: building them from a template with an owner reference,
//! availability, and the order in which surplus pods are deleted.

use chrono::{DateTime, Utc};
use std::cmp::Ordering;
use tug_proto::core::v1::{Pod, PodTemplateSpec};
use tug_proto::meta::v1::OwnerReference;
use tug_proto::{ObjectMeta, Resource};

/// The controller owner reference pointing at `owner` (`controller` and
/// `blockOwnerDeletion` true, so foreground deletion waits for the pods).
pub fn controller_ref<K: Resource>(owner: &K) -> OwnerReference {
    let m = owner.metadata();
    OwnerReference {
        api_version: K::API_VERSION.to_string(),
        kind: K::KIND.to_string(),
        name: m.name().to_string(),
        uid: m.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `obj` is controlled by the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.controller_ref().is_some_and(|r| r.uid == uid)
}

/// A pod to create for `owner` from `template`, named `<prefix>-<5 random chars>` by the
/// apiserver (generateName).
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    prefix: &str,
    owner: OwnerReference,
) -> Pod {
    let mut metadata = ObjectMeta {
        namespace: Some(namespace.to_string()),
        generate_name: Some(format!("{prefix}-")),
        labels: template.metadata.labels.clone(),
        annotations: template.metadata.annotations.clone(),
        finalizers: template.metadata.finalizers.clone(),
        ..Default::default()
    };
    metadata.owner_references.push(owner);
    Pod {
        metadata,
        spec: template.spec.clone(),
        status: None,
        ..Default::default()
    }
    .with_type_meta()
}

/// Running or about to run: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !matches!(pod.phase(), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's `Ready` condition last became `True`, if it is ready.
pub fn ready_since(pod: &Pod) -> Option<DateTime<Utc>> {
    let c = pod.status.as_ref()?.condition("Ready")?;
    if c.status != "True" {
        return None;
    }
    Some(
        c.last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    )
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => since + chrono::Duration::seconds(i64::from(min_ready_seconds)) <= now,
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .map(|s| {
            s.container_statuses
                .iter()
                .map(|c| c.restart_count)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.phase() {
        "Pending" | "" => 0,
        "Unknown" => 1,
        _ => 2,
    }
}

/// Orders pods so that the ones to delete first come first (Kubernetes' `ActivePods`):
/// unassigned before assigned, pending before unknown before running, not ready before
/// ready, ready more recently before longer, more restarts before fewer, newer before
/// older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let assigned = |p: &Pod| p.node_name().is_some_and(|n| !n.is_empty());
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| a.is_ready().cmp(&b.is_ready()))
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| created(b).cmp(&created(a)))
        .then_with(|| a.metadata.name().cmp(b.metadata.name()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tug_proto::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use tug_proto::meta::v1::Time;

    /// A pod for tests: `node` (empty: unassigned), phase, ready since `ready_at` (secs
    /// since epoch), restarts, created at `created` (secs since epoch).
    pub(crate) fn pod(
        name: &str,
        node: &str,
        phase: &str,
        ready_at: Option<i64>,
        restarts: i32,
        created: i64,
    ) -> Pod {
        let t = |s: i64| Time(DateTime::from_timestamp(s, 0).unwrap());
        let mut p = Pod {
            metadata: ObjectMeta::namespaced("ns", name),
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.to_string()),
                container_statuses: vec![ContainerStatus {
                    name: "c".into(),
                    restart_count: restarts,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        p.metadata.creation_timestamp = Some(t(created));
        if let Some(at) = ready_at {
            p.status.as_mut().unwrap().conditions.push(PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(t(at)),
                ..Default::default()
            });
        }
        p
    }

    #[test]
    fn surplus_pods_are_deleted_least_valuable_first() {
        let mut pods = [
            pod("ready-old", "n1", "Running", Some(100), 0, 10),
            pod("ready-new", "n1", "Running", Some(200), 0, 10),
            pod("notready", "n1", "Running", None, 0, 10),
            pod("pending", "n1", "Pending", None, 0, 10),
            pod("unassigned", "", "Pending", None, 0, 10),
            pod("unknown", "n1", "Unknown", None, 0, 10),
            pod("ready-new-crashy", "n1", "Running", Some(200), 5, 10),
            pod("notready-newer", "n1", "Running", None, 0, 20),
        ];
        pods.sort_by(deletion_order);
        let names: Vec<&str> = pods.iter().map(|p| p.metadata.name()).collect();
        assert_eq!(
            names,
            [
                "unassigned",
                "pending",
                "unknown",
                "notready-newer",
                "notready",
                "ready-new-crashy",
                "ready-new",
                "ready-old",
            ]
        );
    }

    #[test]
    fn availability_honours_min_ready_seconds() {
        let now = DateTime::from_timestamp(1000, 0).unwrap();
        let cases = [
            ("not ready", None, 0, false),
            ("ready, no minimum", Some(999), 0, true),
            ("ready long enough", Some(990), 10, true),
            ("ready too recently", Some(995), 10, false),
        ];
        for (name, ready_at, min, want) in cases {
            let p = pod("p", "n", "Running", ready_at, 0, 0);
            assert_eq!(is_available(&p, min, now), want, "{name}");
        }
    }

    #[test]
    fn finished_and_terminating_pods_are_not_active() {
        let mut terminating = pod("t", "n", "Running", None, 0, 0);
        terminating.metadata.deletion_timestamp = Some(Time::now());
        let cases = [
            (pod("r", "n", "Running", None, 0, 0), true),
            (pod("p", "", "Pending", None, 0, 0), true),
            (pod("s", "n", "Succeeded", None, 0, 0), false),
            (pod("f", "n", "Failed", None, 0, 0), false),
            (terminating, false),
        ];
        for (p, want) in cases {
            assert_eq!(is_active(&p), want, "{}", p.metadata.name());
        }
    }

    #[test]
    fn pods_from_a_template_carry_labels_and_a_controller_reference() {
        let mut template = PodTemplateSpec::default();
        template.metadata.labels.insert("app".into(), "web".into());
        let owner = OwnerReference {
            name: "web-abc".into(),
            uid: "u".into(),
            kind: "ReplicaSet".into(),
            api_version: "apps/v1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let p = pod_from_template(&template, "ns", "web-abc", owner);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(p.metadata.labels["app"], "web");
        assert!(is_controlled_by(&p.metadata, "u"));
        assert_eq!(p.kind, "Pod");
    }
}
