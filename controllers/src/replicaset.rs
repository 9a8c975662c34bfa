//! The ReplicaSet controller: keeps `spec.replicas` pods matching the selector, owned
//! through controller references, and reports what it sees in `status`.

use crate::claim::{self, claim};
use crate::context::Context;
use crate::expectations::{Expectations, Observed};
use crate::pod_control::{self, controller_ref, deletion_order, is_active, is_available};
use crate::recorder::{EventType, Recorder};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tug_client::{Action, Api, Client, DeleteParams, ObjectKey, PatchKind, Store, WorkQueue};
use tug_proto::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use tug_proto::core::v1::Pod;
use tug_proto::labels::Selector;
use tug_proto::meta::v1::Time;

/// At most this many pods are created or deleted in one sync (Kubernetes' burstReplicas).
pub const BURST_REPLICAS: usize = 500;
/// The first creation batch; each following batch doubles (slow start).
pub const SLOW_START_INITIAL_BATCH: usize = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Claim(#[from] claim::Error),
    #[error("creating pods for ReplicaSet {rs}: {source}")]
    Create {
        rs: ObjectKey,
        #[source]
        source: tug_client::Error,
    },
    #[error("deleting pod {pod} of ReplicaSet {rs}: {source}")]
    Delete {
        rs: ObjectKey,
        pod: String,
        #[source]
        source: tug_client::Error,
    },
    #[error("updating the status of ReplicaSet {rs}: {source}")]
    Status {
        rs: ObjectKey,
        #[source]
        source: tug_client::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the ReplicaSet controller until `ctx.shutdown` is cancelled.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: WorkQueue<ObjectKey> = WorkQueue::default();
    let replicasets = ctx.informers.get::<ReplicaSet>();
    let pods = ctx.informers.get::<Pod>();
    let rs_store = replicasets.store();
    replicasets.enqueue_into(queue.clone());
    replicasets.resync_into(
        queue.clone(),
        ctx.options.resync_period,
        ctx.shutdown.clone(),
    );
    {
        let rs_store = rs_store.clone();
        pods.subscribe(queue.clone(), move |pod| owners_of(&rs_store, pod));
    }
    let controller = Arc::new(ReplicaSetController {
        client: ctx.client.clone(),
        recorder: ctx.recorder.clone(),
        replicasets: rs_store,
        pods: pods.store(),
        expectations: Expectations::default(),
    });
    let c = controller.clone();
    let caches_ready = async move {
        c.replicasets.wait_until_ready().await;
        c.pods.wait_until_ready().await;
    };
    let workers = ctx.options.concurrent_replicaset_syncs;
    ctx.run_workers(queue, caches_ready, workers, move |key| {
        let c = controller.clone();
        async move { c.reconcile(&key).await }
    })
    .await;
    Ok(())
}

/// The ReplicaSets to sync when `pod` changes: its controller if that is a
/// ReplicaSet, else (an orphan) every ReplicaSet in its namespace that selects it.
fn owners_of(replicasets: &Store<ReplicaSet>, pod: &Pod) -> Vec<ObjectKey> {
    let ns = pod.metadata.namespace();
    if let Some(r) = pod.metadata.controller_ref() {
        return if r.kind == "ReplicaSet" {
            vec![ObjectKey::new(ns, r.name.clone())]
        } else {
            Vec::new()
        };
    }
    replicasets
        .list_by_namespace(ns)
        .into_iter()
        .filter(|rs| {
            selector_of(rs).is_some_and(|s| !s.is_everything() && s.matches(&pod.metadata.labels))
        })
        .map(|rs| ObjectKey::of(rs.as_ref()))
        .collect()
}

fn selector_of(rs: &ReplicaSet) -> Option<Selector> {
    let ls = rs.spec.as_ref()?.selector.as_ref()?;
    Selector::from_label_selector(ls).ok()
}

struct ReplicaSetController {
    client: Client,
    recorder: Recorder,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    expectations: Expectations,
}

impl ReplicaSetController {
    async fn reconcile(&self, key: &ObjectKey) -> Result<Action> {
        let Some(rs) = self.replicasets.get_key(key) else {
            self.expectations.forget(key);
            return Ok(Action::AwaitChange);
        };
        let Some(selector) = selector_of(&rs).filter(|s| !s.is_everything()) else {
            // The apiserver rejects these; an old object may still have one.
            tracing::warn!(replicaset = %key, "invalid or empty selector; not managing pods");
            return Ok(Action::AwaitChange);
        };
        let pods_store = &self.pods;
        let ns = key.namespace.clone();
        let satisfied = self.expectations.satisfied(key, |name| {
            pods_store.get(&ns, name).map(|p| Observed {
                uid: p.metadata.uid.clone().unwrap_or_default(),
                terminating: p.metadata.deletion_timestamp.is_some(),
            })
        });
        let candidates: Vec<Arc<Pod>> = self
            .pods
            .list_by_namespace(&key.namespace)
            .into_iter()
            .filter(|p| is_active(p))
            .collect();
        let pods = claim(&self.client, rs.as_ref(), &selector, candidates).await?;

        let manage = if satisfied && rs.metadata.deletion_timestamp.is_none() {
            self.manage_replicas(key, &rs, pods.clone()).await
        } else {
            Ok(())
        };
        let now = Utc::now();
        let status = calculate_status(&rs, &pods, manage.as_ref().err(), now);
        self.write_status(key, &rs, status).await?;
        manage?;

        // A pod that is ready but not yet available becomes available without any
        // event: look again when it should.
        let min_ready = rs
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        if min_ready > 0
            && pods
                .iter()
                .any(|p| p.is_ready() && !is_available(p, min_ready, now))
        {
            return Ok(Action::Requeue(Duration::from_secs(
                u64::try_from(min_ready).unwrap_or(1),
            )));
        }
        Ok(Action::AwaitChange)
    }

    async fn manage_replicas(
        &self,
        key: &ObjectKey,
        rs: &ReplicaSet,
        mut pods: Vec<Arc<Pod>>,
    ) -> Result<()> {
        let want = rs
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0);
        let want = usize::try_from(want).unwrap_or(0);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        if pods.len() < want {
            let missing = (want - pods.len()).min(BURST_REPLICAS);
            let template = rs
                .spec
                .as_ref()
                .map(|s| s.template.clone())
                .unwrap_or_default();
            let owner = controller_ref(rs);
            let pod = pod_control::pod_from_template(&template, &key.namespace, &key.name, owner);
            let mut created = 0;
            for batch in slow_start_batches(missing, SLOW_START_INITIAL_BATCH) {
                let results = futures::future::join_all((0..batch).map(|_| api.create(&pod))).await;
                let mut first_error = None;
                for r in results {
                    match r {
                        Ok(p) => {
                            created += 1;
                            self.expectations.expect_creation(key, p.metadata.name());
                            self.recorder.event(
                                rs,
                                EventType::Normal,
                                "SuccessfulCreate",
                                format!("Created pod: {}", p.metadata.name()),
                            );
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                if let Some(source) = first_error {
                    self.recorder.event(
                        rs,
                        EventType::Warning,
                        "FailedCreate",
                        format!("Error creating: {source}"),
                    );
                    tracing::warn!(replicaset = %key, created, missing, error = %source, "pod creation failed; skipping the remaining batches");
                    return Err(Error::Create {
                        rs: key.clone(),
                        source,
                    });
                }
            }
        } else if pods.len() > want {
            let surplus = (pods.len() - want).min(BURST_REPLICAS);
            pods.sort_by(|a, b| deletion_order(a, b));
            let victims = &pods[..surplus];
            for p in victims {
                self.expectations.expect_deletion(
                    key,
                    p.metadata.name(),
                    p.metadata.uid.as_deref().unwrap_or(""),
                );
            }
            let results = futures::future::join_all(victims.iter().map(|p| {
                let api = api.clone();
                async move {
                    (
                        p,
                        api.delete(p.metadata.name(), &DeleteParams::default())
                            .await,
                    )
                }
            }))
            .await;
            let mut first_error = None;
            for (p, r) in results {
                match r {
                    Ok(_) => self.recorder.event(
                        rs,
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", p.metadata.name()),
                    ),
                    Err(e) if e.is_not_found() => {}
                    Err(source) => {
                        self.expectations.deletion_failed(key, p.metadata.name());
                        self.recorder.event(
                            rs,
                            EventType::Warning,
                            "FailedDelete",
                            format!("Error deleting: {source}"),
                        );
                        first_error.get_or_insert(Error::Delete {
                            rs: key.clone(),
                            pod: p.metadata.name().to_string(),
                            source,
                        });
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(())
    }

    async fn write_status(
        &self,
        key: &ObjectKey,
        rs: &ReplicaSet,
        status: ReplicaSetStatus,
    ) -> Result<()> {
        if rs.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &key.namespace);
        // Every field explicitly, so zeros and an empty condition list are written too
        // (a merge patch leaves omitted fields alone).
        let patch = serde_json::json!({ "status": {
            "replicas": status.replicas,
            "fullyLabeledReplicas": status.fully_labeled_replicas,
            "readyReplicas": status.ready_replicas,
            "availableReplicas": status.available_replicas,
            "observedGeneration": status.observed_generation,
            "conditions": if status.conditions.is_empty() { serde_json::Value::Null } else { serde_json::to_value(&status.conditions).unwrap_or_default() },
        }});
        match api.patch_status(&key.name, PatchKind::Merge, &patch).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(source) => Err(Error::Status {
                rs: key.clone(),
                source,
            }),
        }
    }
}

/// Batch sizes for creating `count` pods: 1, 2, 4, ... (the last one what is left), so
/// a failing template costs one request rather than `count`.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut left = count;
    let mut size = initial.max(1);
    while left > 0 {
        let b = size.min(left);
        batches.push(b);
        left -= b;
        size *= 2;
    }
    batches
}

/// The status of `rs` given the pods it owns (active ones) and the error of this sync's
/// create/delete, if any.
pub fn calculate_status(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    manage_error: Option<&Error>,
    now: DateTime<Utc>,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let template_labels = spec.map(|s| &s.template.metadata.labels);
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let fully_labeled = count(&|p| {
        template_labels.is_none_or(|want| {
            want.iter()
                .all(|(k, v)| p.metadata.labels.get(k) == Some(v))
        })
    });
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = old
        .conditions
        .into_iter()
        .filter(|c| c.type_ != "ReplicaFailure")
        .collect();
    let failure = match manage_error {
        Some(Error::Create { source, .. }) => Some(("FailedCreate", source.to_string())),
        Some(Error::Delete { source, .. }) => Some(("FailedDelete", source.to_string())),
        _ => None,
    };
    if let Some((reason, message)) = failure {
        let previous = rs.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        });
        conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            last_transition_time: previous
                .and_then(|c| c.last_transition_time)
                .or(Some(Time(now))),
            reason: Some(reason.into()),
            message: Some(message),
        });
    }
    ReplicaSetStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: fully_labeled,
        ready_replicas: count(&|p| p.is_ready()),
        available_replicas: count(&|p| is_available(p, min_ready, now)),
        terminating_replicas: old.terminating_replicas,
        observed_generation: rs.metadata.generation.unwrap_or(0),
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_control::tests::pod;
    use tug_proto::apps::v1::ReplicaSetSpec;

    #[test]
    fn creations_start_slow_and_double() {
        let cases = [
            (0, vec![]),
            (1, vec![1]),
            (3, vec![1, 2]),
            (5, vec![1, 2, 2]),
            (10, vec![1, 2, 4, 3]),
            (16, vec![1, 2, 4, 8, 1]),
        ];
        for (count, want) in cases {
            assert_eq!(slow_start_batches(count, 1), want, "{count}");
        }
    }

    #[test]
    fn status_counts_labeled_ready_and_available_pods() {
        let now = DateTime::from_timestamp(1000, 0).unwrap();
        let mut rs = ReplicaSet {
            spec: Some(ReplicaSetSpec {
                replicas: Some(4),
                min_ready_seconds: Some(10),
                ..Default::default()
            }),
            ..Default::default()
        };
        rs.metadata.generation = Some(7);
        rs.spec
            .as_mut()
            .unwrap()
            .template
            .metadata
            .labels
            .insert("app".into(), "web".into());
        let labeled = |mut p: Pod| {
            p.metadata.labels.insert("app".into(), "web".into());
            Arc::new(p)
        };
        let pods = vec![
            labeled(pod("a", "n", "Running", Some(900), 0, 0)),
            labeled(pod("b", "n", "Running", Some(995), 0, 0)),
            labeled(pod("c", "n", "Pending", None, 0, 0)),
            Arc::new(pod("d", "n", "Running", None, 0, 0)),
        ];
        let s = calculate_status(&rs, &pods, None, now);
        assert_eq!(
            (
                s.replicas,
                s.fully_labeled_replicas,
                s.ready_replicas,
                s.available_replicas,
                s.observed_generation
            ),
            (4, 3, 2, 1, 7)
        );
        assert!(s.conditions.is_empty());
    }

    #[test]
    fn a_create_error_sets_replica_failure_and_success_clears_it() {
        let now = DateTime::from_timestamp(1000, 0).unwrap();
        let mut rs = ReplicaSet::default();
        let err = Error::Create {
            rs: ObjectKey::new("ns", "rs"),
            source: tug_client::Error::Encode(serde_json::from_str::<u8>("x").unwrap_err()),
        };
        let s = calculate_status(&rs, &[], Some(&err), now);
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(s.conditions[0].reason.as_deref(), Some("FailedCreate"));
        rs.status = Some(s);
        let s = calculate_status(&rs, &[], None, now);
        assert!(s.conditions.is_empty());
    }

    #[test]
    fn orphans_map_to_every_replicaset_that_selects_them() {
        // Covered through `owners_of` in the integration tests; here the controller
        // reference path.
        let w = tug_client::Writer::<ReplicaSet>::new();
        let mut p = pod("p", "", "Pending", None, 0, 0);
        p.metadata
            .owner_references
            .push(tug_proto::meta::v1::OwnerReference {
                kind: "ReplicaSet".into(),
                name: "web".into(),
                controller: Some(true),
                ..Default::default()
            });
        assert_eq!(owners_of(&w.store(), &p), vec![ObjectKey::new("ns", "web")]);
        p.metadata.owner_references[0].kind = "Job".into();
        assert!(owners_of(&w.store(), &p).is_empty());
    }
}
