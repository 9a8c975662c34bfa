//! The running scheduler: informers feed the cache and the queue (keys only, state
//! re-read from the informer stores), and while leading, one loop pops pods, runs a
//! cycle against the cache, assumes the pod on the chosen node and binds it in the
//! background (bounded), so the next pod is scheduled while Bindings are in flight.

use crate::cache::Cache;
use crate::cycle::{self, ScheduleError};
use crate::framework::{Code, Profile};
use crate::queue::SchedulingQueue;
use crate::Config;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tug_client::events::{EventRecorder, NORMAL, WARNING};
use tug_client::{Api, Client, ObjectKey, PatchKind, Store, WorkQueue};
use tug_proto::core::v1::{Node, Pod};
use tug_proto::Time;

pub(crate) struct Scheduler {
    pub(crate) client: Client,
    pub(crate) config: Config,
    pub(crate) profile: Profile,
    pub(crate) cache: Mutex<Cache>,
    pub(crate) queue: SchedulingQueue,
    pub(crate) pods: Store<Pod>,
    pub(crate) nodes: Store<Node>,
    pub(crate) recorder: EventRecorder,
    pub(crate) binds: Arc<Semaphore>,
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.phase(), "Succeeded" | "Failed")
}

impl Scheduler {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `pod` is ours to place: unbound, alive, and asking for this scheduler.
    fn wants(&self, pod: &Pod) -> bool {
        let Some(spec) = &pod.spec else {
            return false;
        };
        let ours = spec
            .scheduler_name
            .as_deref()
            .is_none_or(|n| n.is_empty() || n == self.config.scheduler_name);
        ours && pod.node_name().is_none()
            && pod.metadata.deletion_timestamp.is_none()
            && !is_terminal(pod)
    }

    /// Brings cache and queue in line with the store's view of one pod.
    pub(crate) fn sync_pod(&self, key: &ObjectKey) {
        let Some(pod) = self.pods.get_key(key) else {
            self.cache().remove_pod(key);
            self.queue.done(key);
            self.queue.move_all_to_active();
            return;
        };
        if pod.node_name().is_some() {
            let freed = is_terminal(&pod) && self.cache().has_pod(key);
            self.cache().update_pod(pod);
            self.queue.done(key);
            if freed {
                self.queue.move_all_to_active();
            }
        } else if self.wants(&pod) {
            let mut cache = self.cache();
            // Deleted and re-created under the same name while we held the old one
            // (the key queue merged the two events): the old one is gone.
            if cache
                .pod_uid(key)
                .is_some_and(|uid| uid != pod.metadata.uid)
            {
                cache.remove_pod(key);
            }
            let held = cache.has_pod(key);
            drop(cache);
            if !held {
                let priority = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
                self.queue.add(key.clone(), priority);
            }
        } else {
            self.cache().update_pod(pod);
            self.queue.done(key);
        }
    }

    /// Brings the cache in line with one node; a new or changed node may let parked
    /// pods fit. Status-only heartbeats change nothing the plugins read.
    pub(crate) fn sync_node(&self, name: &str) {
        let mut cache = self.cache();
        let Some(node) = self.nodes.get("", name) else {
            cache.remove_node(name);
            return;
        };
        let changed = cache
            .node(name)
            .and_then(|i| i.node.clone())
            .is_none_or(|old| {
                old.metadata.labels != node.metadata.labels
                    || old.spec != node.spec
                    || old.status.as_ref().map(|s| &s.allocatable)
                        != node.status.as_ref().map(|s| &s.allocatable)
            });
        cache.upsert_node(node);
        drop(cache);
        if changed {
            self.queue.move_all_to_active();
        }
    }

    /// Applies the keys the informers queue, one worker per kind.
    pub(crate) async fn dispatch_pods(self: Arc<Self>, keys: WorkQueue<ObjectKey>) {
        while let Some(key) = keys.get().await {
            self.sync_pod(&key);
            keys.done(&key);
        }
    }

    pub(crate) async fn dispatch_nodes(self: Arc<Self>, keys: WorkQueue<ObjectKey>) {
        while let Some(key) = keys.get().await {
            self.sync_node(&key.name);
            keys.done(&key);
        }
    }

    /// Schedules until `stop` is cancelled (leadership lost). Binds still in flight are
    /// finished before returning, so a new leader never races our own Bindings.
    pub(crate) async fn schedule_until(self: Arc<Self>, stop: CancellationToken) {
        self.pods.wait_until_ready().await;
        self.nodes.wait_until_ready().await;
        // Everything the informers know, before the first decision: a pod placed
        // against a half-filled cache could overcommit a node.
        for node in self.nodes.list() {
            self.sync_node(node.metadata.name());
        }
        for pod in self.pods.list() {
            self.sync_pod(&ObjectKey::of(pod.as_ref()));
        }
        tracing::info!(
            nodes = self.nodes.len(),
            pods = self.pods.len(),
            "scheduling"
        );
        let mut rng = StdRng::from_entropy();
        let mut next_start = 0usize;
        let mut tasks = JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            let popped = tokio::select! {
                _ = stop.cancelled() => break,
                p = self.queue.pop() => p,
            };
            let Some((queued, cycle)) = popped else {
                break;
            };
            let key = queued.key;
            let pod = match self.pods.get_key(&key) {
                Some(p) if self.wants(&p) && !self.cache().has_pod(&key) => p,
                _ => {
                    self.queue.done(&key);
                    continue;
                }
            };
            let result = {
                let mut cache = self.cache();
                let r = cycle::schedule(
                    &self.profile,
                    &pod,
                    cache.nodes(),
                    &mut next_start,
                    &mut rng,
                );
                if let Ok(p) = &r {
                    cache.assume(&pod, &p.node);
                }
                r
            };
            match result {
                Ok(placement) => {
                    let permit = tokio::select! {
                        _ = stop.cancelled() => {
                            self.cache().forget(&key);
                            self.queue.add_backoff(&key);
                            break;
                        }
                        p = self.binds.clone().acquire_owned() => p,
                    };
                    let Ok(permit) = permit else { break };
                    let this = self.clone();
                    tasks.spawn(async move {
                        this.bind(&pod, &key, &placement.node).await;
                        drop(permit);
                    });
                }
                Err(ScheduleError::Unschedulable(fit)) => {
                    self.queue.add_unschedulable(&key, cycle);
                    let message = fit.to_string();
                    tracing::debug!(pod = %key, %message, "unschedulable");
                    let this = self.clone();
                    tasks.spawn(async move { this.report_unschedulable(&pod, &message).await });
                }
                Err(ScheduleError::Internal(e)) => {
                    tracing::warn!(pod = %key, error = %e, "scheduling failed; retrying with back-off");
                    self.queue.add_backoff(&key);
                }
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn bind(&self, pod: &Pod, key: &ObjectKey, node: &str) {
        let status = self.profile.binder.bind(pod, node).await;
        match status.code {
            Code::Success | Code::Skip => {
                self.queue.done(key);
                if self.config.record_scheduled_events {
                    let msg = format!("Successfully assigned {key} to {node}");
                    self.recorder
                        .record_for(pod, NORMAL, "Scheduled", &msg)
                        .await;
                }
            }
            Code::Unschedulable | Code::UnschedulableAndUnresolvable => {
                // Bound by someone else, or deleted: nothing left for us to do.
                tracing::debug!(pod = %key, reason = %status.message(), "binding lost the race");
                self.cache().forget(key);
                self.queue.done(key);
            }
            Code::Error => {
                tracing::warn!(pod = %key, error = %status.message(), "binding failed; retrying");
                self.cache().forget(key);
                self.queue.add_backoff(key);
            }
        }
    }

    /// `PodScheduled=False/Unschedulable` with the message, and a FailedScheduling event.
    async fn report_unschedulable(&self, pod: &Pod, message: &str) {
        self.recorder
            .record_for(pod, WARNING, "FailedScheduling", message)
            .await;
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.condition("PodScheduled"));
        if current.is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(message)) {
            return;
        }
        let patch = serde_json::json!({
            "status": { "conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": Time::now(),
            }]}
        });
        let api: Api<Pod> = Api::namespaced(self.client.clone(), pod.metadata.namespace());
        if let Err(e) = api
            .patch_status(pod.metadata.name(), PatchKind::Strategic, &patch)
            .await
        {
            tracing::warn!(pod = %ObjectKey::of(pod), error = %e, "could not set PodScheduled=False");
        }
    }
}
