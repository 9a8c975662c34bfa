//! The Pod status the agent reports, computed from its [`PodRecord`] the way the kubelet
//! computes it: phase, the four conditions, podIP/hostIP, startTime and container
//! statuses.

use crate::record::{ContainerRecord, PodRecord};
use std::collections::BTreeMap;
use tug_proto::core::v1::{
    Container, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use tug_proto::meta::v1::Time;

/// The phase per Kubernetes' rules (kubelet `getPhase`).
pub fn phase(pod: &Pod, record: &PodRecord) -> String {
    if let Some(p) = &record.terminal_phase {
        return p.clone();
    }
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if !record.initialized {
        let failed_for_good = policy == "Never"
            && record
                .init_containers
                .values()
                .any(|c| c.terminated().is_some_and(|t| t.exit_code != 0));
        return if failed_for_good { "Failed" } else { "Pending" }.to_string();
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &spec.containers {
        let Some(r) = record.containers.get(&c.name) else {
            waiting += 1;
            continue;
        };
        if r.is_running() {
            running += 1;
        } else if let Some(t) = r.terminated() {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if r.last_state.is_some() {
            // Waiting to restart after having run: counts as stopped-but-alive.
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    let n = spec.containers.len();
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped == n {
        match policy {
            "Always" => "Running",
            "OnFailure" if succeeded == n => "Succeeded",
            "OnFailure" => "Running",
            _ if succeeded == n => "Succeeded",
            _ => "Failed",
        }
    } else {
        "Pending"
    }
    .to_string()
}

/// Whether a container that just ended should be started again.
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

fn condition(
    previous: &[PodCondition],
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    now: &Time,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let last = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time);
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_transition_time: Some(last.unwrap_or(*now)),
        reason: if ok { None } else { reason.map(str::to_string) },
        ..Default::default()
    }
}

fn container_status(c: &Container, r: Option<&ContainerRecord>) -> ContainerStatus {
    let image = c.image.clone().unwrap_or_default();
    match r {
        None => ContainerStatus {
            name: c.name.clone(),
            image,
            state: Some(ContainerRecord::waiting("ContainerCreating", None)),
            started: Some(false),
            ..Default::default()
        },
        Some(r) => ContainerStatus {
            name: c.name.clone(),
            state: Some(r.state.clone()),
            last_state: Some(tug_proto::core::v1::ContainerState {
                terminated: r.last_state.clone(),
                ..Default::default()
            })
            .filter(|s| s.terminated.is_some()),
            ready: r.ready && r.is_running(),
            restart_count: r.restart_count,
            image: if r.image.is_empty() {
                image
            } else {
                r.image.clone()
            },
            image_id: r.image_id.clone(),
            container_id: r
                .id
                .as_ref()
                .filter(|_| r.has_run())
                .map(|id| format!("tug://{id}")),
            started: Some(r.started && r.is_running()),
            ..Default::default()
        },
    }
}

/// The whole status. `previous` is the status currently stored (its PodScheduled
/// condition and transition times are kept).
pub fn pod_status(pod: &Pod, record: &PodRecord, host_ip: &str, now: &Time) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let previous = pod.status.clone().unwrap_or_default();
    let phase = phase(pod, record);
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, record.containers.get(&c.name)))
        .collect();
    let init_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .map(|c| {
            let mut s = container_status(c, record.init_containers.get(&c.name));
            if record.initialized && s.state.as_ref().is_some_and(|s| s.waiting.is_some()) {
                s.state = None;
            }
            if s.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                == Some("ContainerCreating")
            {
                s.state = Some(ContainerRecord::waiting("PodInitializing", None));
            }
            s
        })
        .collect();
    let regular_waiting_reason = if record.initialized {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<ContainerStatus> = statuses
        .into_iter()
        .map(|mut s| {
            if let Some(w) = s.state.as_mut().and_then(|st| st.waiting.as_mut()) {
                if w.reason.as_deref() == Some("ContainerCreating") {
                    w.reason = Some(regular_waiting_reason.to_string());
                }
            }
            s
        })
        .collect();
    let containers_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready);
    let terminal = phase == "Succeeded" || phase == "Failed";
    let mut conditions = Vec::new();
    let scheduled = previous
        .conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition(&[], "PodScheduled", true, None, now));
    conditions.push(condition(
        &previous.conditions,
        "PodReadyToStartContainers",
        record.sandbox_ready && !record.released,
        None,
        now,
    ));
    conditions.push(condition(
        &previous.conditions,
        "Initialized",
        record.initialized,
        Some("ContainersNotInitialized"),
        now,
    ));
    let not_ready_reason = if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    conditions.push(condition(
        &previous.conditions,
        "Ready",
        containers_ready && !terminal,
        Some(not_ready_reason),
        now,
    ));
    conditions.push(condition(
        &previous.conditions,
        "ContainersReady",
        containers_ready && !terminal,
        Some(not_ready_reason),
        now,
    ));
    conditions.push(scheduled);
    let mut cond_messages: BTreeMap<&str, String> = BTreeMap::new();
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    if !unready.is_empty() && !terminal {
        let msg = format!("containers with unready status: [{}]", unready.join(" "));
        cond_messages.insert("Ready", msg.clone());
        cond_messages.insert("ContainersReady", msg);
    }
    if !record.initialized {
        let pending: Vec<&str> = init_statuses
            .iter()
            .filter(|s| {
                s.state
                    .as_ref()
                    .is_none_or(|st| st.terminated.as_ref().is_none_or(|t| t.exit_code != 0))
            })
            .map(|s| s.name.as_str())
            .collect();
        if !pending.is_empty() {
            cond_messages.insert(
                "Initialized",
                format!("containers with incomplete status: [{}]", pending.join(" ")),
            );
        }
    }
    for c in &mut conditions {
        if c.status == "False" {
            c.message = cond_messages.get(c.type_.as_str()).cloned();
        }
    }
    let pod_ip = record.pod_ip.clone();
    PodStatus {
        phase: Some(phase),
        conditions,
        host_ip: Some(host_ip.to_string()),
        host_ips: vec![HostIP {
            ip: host_ip.to_string(),
        }],
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.into_iter().map(|ip| PodIP { ip }).collect(),
        start_time: record.start_time,
        init_container_statuses: init_statuses,
        container_statuses: statuses,
        qos_class: Some(qos_class(pod)),
        ..Default::default()
    }
}

/// Guaranteed (every container has cpu and memory limits equal to requests),
/// BestEffort (no requests or limits at all) or Burstable.
pub fn qos_class(pod: &Pod) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let r = c.resources.clone().unwrap_or_default();
        if !r.limits.is_empty() || !r.requests.is_empty() {
            any = true;
        }
        for key in ["cpu", "memory"] {
            let limit = r.limits.get(key);
            let request = r.requests.get(key).or(limit);
            if limit.is_none() || limit.map(|q| q.as_nanos()) != request.map(|q| q.as_nanos()) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tug_proto::core::v1::{ContainerState, ContainerStateRunning, ContainerStateTerminated};

    fn pod(policy: &str, containers: &[&str]) -> Pod {
        let cs: Vec<_> = containers
            .iter()
            .map(|n| json!({"name": n, "image": "busybox"}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"restartPolicy": policy, "containers": cs}
        }))
        .unwrap()
    }

    fn running() -> ContainerRecord {
        ContainerRecord {
            attempts: 1,
            started: true,
            ready: true,
            state: ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time::now()),
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn exited(code: i32) -> ContainerRecord {
        ContainerRecord {
            attempts: 1,
            state: ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn record(containers: Vec<(&str, ContainerRecord)>) -> PodRecord {
        PodRecord {
            initialized: true,
            sandbox_ready: true,
            containers: containers
                .into_iter()
                .map(|(n, r)| (n.to_string(), r))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn phase_follows_the_kubelet_rules() {
        let backing_off = ContainerRecord {
            attempts: 1,
            last_state: Some(Default::default()),
            state: ContainerRecord::waiting("CrashLoopBackOff", None),
            ..Default::default()
        };
        let cases = [
            ("Always", vec![("a", running())], "Running"),
            ("Always", vec![], "Pending"),
            ("Always", vec![("a", exited(0))], "Running"),
            ("Never", vec![("a", exited(0))], "Succeeded"),
            ("Never", vec![("a", exited(1))], "Failed"),
            ("OnFailure", vec![("a", exited(1))], "Running"),
            ("OnFailure", vec![("a", exited(0))], "Succeeded"),
            ("Always", vec![("a", backing_off.clone())], "Running"),
            ("Never", vec![("a", running()), ("b", exited(1))], "Running"),
        ];
        for (policy, containers, want) in cases {
            let names: Vec<&str> = if containers.len() == 2 {
                vec!["a", "b"]
            } else {
                vec!["a"]
            };
            let p = pod(policy, &names);
            assert_eq!(
                phase(&p, &record(containers.clone())),
                want,
                "{policy} {containers:?}"
            );
        }
    }

    #[test]
    fn a_failed_init_container_fails_the_pod_only_under_restart_policy_never() {
        let mut r = record(vec![]);
        r.initialized = false;
        r.init_containers.insert("init".into(), exited(1));
        assert_eq!(phase(&pod("Never", &["a"]), &r), "Failed");
        assert_eq!(phase(&pod("Always", &["a"]), &r), "Pending");
    }

    #[test]
    fn restart_policy_table() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("Always", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(should_restart("OnFailure", 137));
        assert!(!should_restart("Never", 1));
    }

    #[test]
    fn ready_conditions_follow_container_readiness() {
        let p = pod("Always", &["a", "b"]);
        let mut unready = running();
        unready.ready = false;
        let r = record(vec![("a", running()), ("b", unready)]);
        let s = pod_status(&p, &r, "10.0.0.1", &Time::now());
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [b]")
        );
        let r = record(vec![("a", running()), ("b", running())]);
        let s = pod_status(&p, &r, "10.0.0.1", &Time::now());
        assert!(
            s.conditions.iter().all(|c| c.status == "True"),
            "{:?}",
            s.conditions
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    }

    #[test]
    fn a_container_not_yet_created_reports_container_creating() {
        let p = pod("Always", &["a"]);
        let s = pod_status(&p, &record(vec![]), "10.0.0.1", &Time::now());
        let w = s.container_statuses[0]
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap();
        assert_eq!(w.reason.as_deref(), Some("ContainerCreating"));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
    }

    #[test]
    fn qos_classes() {
        let mk = |res: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "resources": res}]}})).unwrap()
        };
        assert_eq!(qos_class(&mk(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&mk(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&mk(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
    }
}
