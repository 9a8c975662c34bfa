//! The node lifecycle controller: notices nodes whose heartbeat (Lease renewals, or
//! the agent's Ready condition) stopped, marks them `Unknown` and taints them, and
//! evicts (deletes) their pods once the pods' tolerations for those taints run out.
//!
//! Eviction of a pod from a node whose heartbeat stopped deletes it with
//! `gracePeriodSeconds=0`: no kubelet is there to confirm a graceful stop (Kubernetes
//! deletes gracefully and its pod GC force-deletes later; this is the short path).

use crate::{Context, EventType};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tug_client::{controller, Action, Api, DeleteParams, ObjectKey, PatchKind, Store, WorkQueue};
use tug_proto::coordination::v1::Lease;
use tug_proto::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use tug_proto::Time;

/// The namespace of node heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const NO_EXECUTE: &str = "NoExecute";
const NO_SCHEDULE: &str = "NoSchedule";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("node {node}: {action}: {source}")]
    Api {
        node: String,
        action: String,
        source: tug_client::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the node lifecycle controller until `ctx.shutdown` is cancelled
/// (`ctx.options.node_monitor_grace_period`, `ctx.options.pod_eviction_timeout`).
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: WorkQueue<ObjectKey> = WorkQueue::default();
    let nodes = ctx.informers.get::<Node>();
    let leases = ctx.informers.get::<Lease>();
    let pods = ctx.informers.get::<Pod>();
    let (node_store, lease_store, pod_store) = (nodes.store(), leases.store(), pods.store());
    tokio::select! {
        _ = async {
            node_store.wait_until_ready().await;
            lease_store.wait_until_ready().await;
            pod_store.wait_until_ready().await;
        } => {}
        _ = ctx.shutdown.cancelled() => return Ok(()),
    }
    nodes.enqueue_into(queue.clone());
    leases.subscribe(queue.clone(), |l: &Lease| {
        if l.metadata.namespace() == LEASE_NAMESPACE {
            vec![ObjectKey::new("", l.metadata.name())]
        } else {
            Vec::new()
        }
    });
    // A pod bound to a tainted node must be looked at (evicted) too.
    pods.subscribe(queue.clone(), |p: &Pod| {
        p.node_name()
            .map(|n| vec![ObjectKey::new("", n)])
            .unwrap_or_default()
    });
    let stop = {
        let (queue, shutdown) = (queue.clone(), ctx.shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            queue.shutdown();
        })
    };
    let reconciler = Arc::new(Reconciler {
        ctx: ctx.clone(),
        nodes: node_store,
        leases: lease_store,
        pods: pod_store,
        probes: Mutex::default(),
    });
    controller::run_keys(
        queue,
        move |key| {
            let r = reconciler.clone();
            async move { r.reconcile(key).await }
        },
        ctx.options.workers,
    )
    .await;
    stop.abort();
    Ok(())
}

/// The last heartbeat seen from a node, and when (local clock) it changed.
struct Probe {
    lease_renew: Option<String>,
    heartbeat: Option<String>,
    changed_at: Instant,
}

struct Reconciler {
    ctx: Context,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    probes: Mutex<HashMap<String, Probe>>,
}

/// Whether `toleration` tolerates `taint` (Kubernetes' `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => key.is_empty() || key == taint.key,
        "Equal" | "" => {
            key == taint.key
                && toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// When a pod with `tolerations` must leave a node with `taints` (only `NoExecute`
/// ones count): `None` means never. A taint the pod does not tolerate evicts it at
/// once, except the node lifecycle taints for a pod that says nothing about them
/// (created without the default-toleration admission): those wait `default_timeout`.
/// Each taint's clock starts at its `timeAdded`.
pub fn eviction_deadline(
    taints: &[Taint],
    tolerations: &[Toleration],
    default_timeout: Duration,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut deadline: Option<DateTime<Utc>> = None;
    for taint in taints.iter().filter(|t| t.effect == NO_EXECUTE) {
        let added = taint.time_added.as_ref().map(|t| t.0).unwrap_or(now);
        let seconds = match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(t) => match t.toleration_seconds {
                None => continue,
                Some(s) => s.max(0),
            },
            None => {
                let lifecycle = taint.key == TAINT_NOT_READY || taint.key == TAINT_UNREACHABLE;
                let mentioned = tolerations.iter().any(|t| {
                    let key = t.key.as_deref().unwrap_or("");
                    let effect = t.effect.as_deref().unwrap_or("");
                    (key == taint.key || key.is_empty())
                        && (effect == NO_EXECUTE || effect.is_empty())
                });
                if lifecycle && !mentioned {
                    default_timeout.as_secs() as i64
                } else {
                    return Some(now);
                }
            }
        };
        let at = added + chrono::Duration::seconds(seconds);
        deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
    deadline
}

/// The node's taints with the controller-managed ones made to match `want` (keys of
/// [`TAINT_UNREACHABLE`], [`TAINT_NOT_READY`], [`TAINT_UNSCHEDULABLE`]); taints already
/// present keep their `timeAdded`, others are left alone.
pub fn reconcile_taints(current: &[Taint], want: &[(&str, &str)], now: &Time) -> Vec<Taint> {
    let managed = [TAINT_UNREACHABLE, TAINT_NOT_READY, TAINT_UNSCHEDULABLE];
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            !managed.contains(&t.key.as_str())
                || want.iter().any(|(k, e)| *k == t.key && *e == t.effect)
        })
        .cloned()
        .collect();
    for (key, effect) in want {
        if !out.iter().any(|t| t.key == *key && t.effect == *effect) {
            out.push(Taint {
                key: key.to_string(),
                value: None,
                effect: effect.to_string(),
                time_added: Some(*now),
            });
        }
    }
    out
}

/// Sets every condition but `NetworkUnavailable` to `Unknown` (as Kubernetes does);
/// returns whether Ready changed.
pub fn mark_unknown(conditions: &mut Vec<NodeCondition>, now: &Time) -> bool {
    let mut ready_changed = false;
    if !conditions.iter().any(|c| c.type_ == "Ready") {
        conditions.push(NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            reason: Some("NodeStatusNeverUpdated".into()),
            message: Some("Kubelet never posted node status.".into()),
            last_transition_time: Some(*now),
            last_heartbeat_time: None,
        });
        return true;
    }
    for c in conditions.iter_mut() {
        if c.type_ == "NetworkUnavailable" || c.status == "Unknown" {
            continue;
        }
        c.status = "Unknown".into();
        c.reason = Some("NodeStatusUnknown".into());
        c.message = Some("Kubelet stopped posting node status.".into());
        c.last_transition_time = Some(*now);
        if c.type_ == "Ready" {
            ready_changed = true;
        }
    }
    ready_changed
}

fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

impl Reconciler {
    fn err(node: &str, action: &str) -> impl FnOnce(tug_client::Error) -> Error {
        let (node, action) = (node.to_string(), action.to_string());
        move |source| Error::Api {
            node,
            action,
            source,
        }
    }

    /// How long since the node's heartbeat last changed (as seen here).
    fn since_heartbeat(&self, node: &Node) -> Duration {
        let name = node.metadata.name();
        let lease_renew = self
            .leases
            .get(LEASE_NAMESPACE, name)
            .and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.to_string()));
        let heartbeat = node.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Ready")?
                .last_heartbeat_time
                .as_ref()
                .map(|t| t.to_string())
        });
        let mut probes = self.probes.lock().unwrap_or_else(|p| p.into_inner());
        let probe = probes.entry(name.to_string()).or_insert_with(|| Probe {
            lease_renew: lease_renew.clone(),
            heartbeat: heartbeat.clone(),
            changed_at: Instant::now(),
        });
        if probe.lease_renew != lease_renew || probe.heartbeat != heartbeat {
            probe.lease_renew = lease_renew;
            probe.heartbeat = heartbeat;
            probe.changed_at = Instant::now();
        }
        probe.changed_at.elapsed()
    }

    async fn reconcile(&self, key: ObjectKey) -> Result<Action> {
        let Some(node) = self.nodes.get_key(&key) else {
            self.probes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key.name);
            return Ok(Action::AwaitChange);
        };
        let name = key.name.clone();
        let grace = self.ctx.options.node_monitor_grace_period;
        let mut node: Node = (*node).clone();
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        let silent_for = self.since_heartbeat(&node);
        let stale = silent_for >= grace;
        let now = Time::now();
        let mut requeue = if stale {
            self.ctx
                .options
                .node_monitor_period
                .max(Duration::from_secs(1))
        } else {
            grace - silent_for + Duration::from_millis(100)
        };

        if stale {
            let mut status = node.status.clone().unwrap_or_default();
            let before = status.conditions.clone();
            let ready_changed = mark_unknown(&mut status.conditions, &now);
            if status.conditions != before {
                node.status = Some(status);
                node.set_type_meta();
                node = api
                    .replace_status(&name, &node)
                    .await
                    .map_err(Self::err(&name, "marking it Unknown"))?;
                if ready_changed {
                    self.ctx.recorder.event(
                        &node,
                        EventType::Normal,
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    );
                }
            }
            self.mark_pods_not_ready(&name).await?;
        }

        // As Kubernetes: NoExecute evicts (after each pod's toleration), and the NoSchedule
        // twin (TaintNodesByCondition) keeps replacements from landing on the same node,
        // since pods' default tolerations cover only NoExecute.
        let mut want: Vec<(&str, &str)> = Vec::new();
        if stale {
            want.push((TAINT_UNREACHABLE, NO_SCHEDULE));
            want.push((TAINT_UNREACHABLE, NO_EXECUTE));
        } else if ready_status(&node) == Some("False") {
            want.push((TAINT_NOT_READY, NO_SCHEDULE));
            want.push((TAINT_NOT_READY, NO_EXECUTE));
        }
        let spec = node.spec.clone().unwrap_or_default();
        if spec.unschedulable == Some(true) {
            want.push((TAINT_UNSCHEDULABLE, NO_SCHEDULE));
        }
        let taints = reconcile_taints(&spec.taints, &want, &now);
        if taints != spec.taints {
            let mut spec = spec;
            spec.taints = taints.clone();
            node.spec = Some(spec);
            node.set_type_meta();
            node = api
                .replace(&name, &node)
                .await
                .map_err(Self::err(&name, "updating its taints"))?;
        }

        if let Some(wait) = self.evict(&node, &taints, stale).await? {
            requeue = requeue.min(wait);
        }
        Ok(Action::Requeue(requeue))
    }

    /// Deletes the pods on `node` whose tolerations ran out; returns when to look
    /// again for the next one.
    async fn evict(
        &self,
        node: &Node,
        taints: &[Taint],
        unreachable: bool,
    ) -> Result<Option<Duration>> {
        if !taints.iter().any(|t| t.effect == NO_EXECUTE) {
            return Ok(None);
        }
        let name = node.metadata.name();
        let now = Utc::now();
        let default_timeout = self.ctx.options.pod_eviction_timeout;
        let mut next: Option<Duration> = None;
        let mut soonest = |d: Duration| next = Some(next.map_or(d, |n: Duration| n.min(d)));
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list()
            .into_iter()
            .filter(|p| p.node_name() == Some(name))
            .collect();
        for pod in pods {
            let ns = pod.metadata.namespace();
            let pod_name = pod.metadata.name();
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
            let force = DeleteParams {
                grace_period_seconds: Some(0),
                precondition_uid: pod.metadata.uid.clone(),
                ..Default::default()
            };
            if let Some(deleting) = &pod.metadata.deletion_timestamp {
                // Already being deleted; on an unreachable node nobody will finish it.
                if unreachable {
                    if deleting.0 <= now {
                        self.delete(&api, pod_name, &force).await?;
                    } else {
                        soonest((deleting.0 - now).to_std().unwrap_or_default());
                    }
                }
                continue;
            }
            let tolerations = pod
                .spec
                .as_ref()
                .map(|s| s.tolerations.clone())
                .unwrap_or_default();
            let Some(at) = eviction_deadline(taints, &tolerations, default_timeout, now) else {
                continue;
            };
            if at > now {
                soonest((at - now).to_std().unwrap_or_default());
                continue;
            }
            let dp = if unreachable {
                force.clone()
            } else {
                DeleteParams {
                    precondition_uid: pod.metadata.uid.clone(),
                    ..Default::default()
                }
            };
            if self.delete(&api, pod_name, &dp).await? {
                self.ctx.recorder.event(
                    pod.as_ref(),
                    EventType::Normal,
                    "TaintManagerEviction",
                    format!("Marking for deletion Pod {ns}/{pod_name}"),
                );
            }
        }
        Ok(next)
    }

    /// Returns whether this call deleted (or marked) the pod.
    async fn delete(&self, api: &Api<Pod>, pod: &str, dp: &DeleteParams) -> Result<bool> {
        match api.delete(pod, dp).await {
            Ok(_) => Ok(true),
            // Gone already, or replaced by a pod of the same name (uid precondition).
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(false),
            Err(e) => Err(Self::err(pod, "evicting a pod")(e)),
        }
    }

    /// Pods on an unreachable node are no longer Ready (so Services stop sending
    /// them traffic), as Kubernetes' `MarkPodsNotReady`.
    async fn mark_pods_not_ready(&self, node: &str) -> Result<()> {
        for pod in self.pods.list() {
            if pod.node_name() != Some(node) || !pod.is_ready() {
                continue;
            }
            let mut conditions = pod
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            for c in conditions.iter_mut().filter(|c| c.type_ == "Ready") {
                c.status = "False".into();
                c.last_transition_time = Some(Time::now());
            }
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), pod.metadata.namespace());
            let patch = serde_json::json!({"status": {"conditions": conditions}});
            match api
                .patch_status(pod.metadata.name(), PatchKind::Merge, &patch)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(Self::err(node, "marking its pods not ready")(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, effect: &str, added: DateTime<Utc>) -> Taint {
        Taint {
            key: key.into(),
            value: None,
            effect: effect.into(),
            time_added: Some(Time(added)),
        }
    }

    fn tol(key: &str, op: &str, effect: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.to_string()),
            operator: Some(op.into()),
            value: None,
            effect: (!effect.is_empty()).then(|| effect.to_string()),
            toleration_seconds: seconds,
        }
    }

    #[test]
    fn eviction_waits_for_the_shortest_matching_toleration() {
        let t0 = Time::parse("2024-01-01T00:00:00Z").unwrap().0;
        let now = t0 + chrono::Duration::seconds(10);
        let unreachable = vec![taint(TAINT_UNREACHABLE, NO_EXECUTE, t0)];
        let default = Duration::from_secs(300);
        let secs = |s: i64| Some(t0 + chrono::Duration::seconds(s));
        // (name, taints, tolerations, deadline)
        type Case = (
            &'static str,
            Vec<Taint>,
            Vec<Toleration>,
            Option<DateTime<Utc>>,
        );
        let cases: Vec<Case> = vec![
            (
                "default admission toleration",
                unreachable.clone(),
                vec![tol(TAINT_UNREACHABLE, "Exists", NO_EXECUTE, Some(300))],
                secs(300),
            ),
            (
                "short toleration",
                unreachable.clone(),
                vec![tol(TAINT_UNREACHABLE, "Exists", NO_EXECUTE, Some(2))],
                secs(2),
            ),
            (
                "toleration without seconds: never",
                unreachable.clone(),
                vec![tol(TAINT_UNREACHABLE, "Exists", NO_EXECUTE, None)],
                None,
            ),
            (
                "tolerate everything",
                unreachable.clone(),
                vec![tol("", "Exists", "", None)],
                None,
            ),
            (
                "no toleration at all: the eviction timeout",
                unreachable.clone(),
                vec![],
                secs(300),
            ),
            (
                "a toleration for the key that does not match: at once",
                unreachable.clone(),
                vec![Toleration {
                    value: Some("x".into()),
                    ..tol(TAINT_UNREACHABLE, "Equal", NO_EXECUTE, Some(100))
                }],
                Some(now),
            ),
            (
                "an untolerated user taint: at once",
                vec![taint("dedicated", NO_EXECUTE, t0)],
                vec![],
                Some(now),
            ),
            (
                "NoSchedule taints never evict",
                vec![taint(TAINT_UNSCHEDULABLE, NO_SCHEDULE, t0)],
                vec![],
                None,
            ),
            (
                "negative seconds mean now",
                unreachable.clone(),
                vec![tol(TAINT_UNREACHABLE, "Exists", NO_EXECUTE, Some(-5))],
                secs(0),
            ),
        ];
        for (name, taints, tolerations, want) in cases {
            assert_eq!(
                eviction_deadline(&taints, &tolerations, default, now),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn managed_taints_follow_the_wanted_set_and_keep_their_time() {
        let then = Time::parse("2024-01-01T00:00:00Z").unwrap();
        let now = Time::now();
        let user = taint("dedicated", NO_SCHEDULE, then.0);
        let current = vec![user.clone(), taint(TAINT_NOT_READY, NO_EXECUTE, then.0)];
        let out = reconcile_taints(&current, &[(TAINT_UNREACHABLE, NO_EXECUTE)], &now);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], user);
        assert_eq!(out[1].key, TAINT_UNREACHABLE);
        assert_eq!(out[1].time_added, Some(now));
        let again = reconcile_taints(&out, &[(TAINT_UNREACHABLE, NO_EXECUTE)], &Time::now());
        assert_eq!(again, out, "an existing taint keeps its timeAdded");
        assert_eq!(reconcile_taints(&out, &[], &now), vec![user]);
    }

    #[test]
    fn a_silent_node_gets_unknown_conditions() {
        let now = Time::now();
        let mut conds = vec![
            NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            },
            NodeCondition {
                type_: "NetworkUnavailable".into(),
                status: "False".into(),
                ..Default::default()
            },
            NodeCondition {
                type_: "MemoryPressure".into(),
                status: "False".into(),
                ..Default::default()
            },
        ];
        assert!(mark_unknown(&mut conds, &now));
        assert_eq!(conds[0].status, "Unknown");
        assert_eq!(conds[0].reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            conds[0].message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(conds[1].status, "False");
        assert_eq!(conds[2].status, "Unknown");
        assert!(!mark_unknown(&mut conds, &now), "already Unknown");
        let mut none = Vec::new();
        assert!(mark_unknown(&mut none, &now));
        assert_eq!(none[0].status, "Unknown");
    }
}
