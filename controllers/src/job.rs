//! The Job controller: runs pods to completion (completions, parallelism, backoffLimit
//! with exponential re-creation back-off, activeDeadlineSeconds, suspend,
//! ttlSecondsAfterFinished) and keeps the Job's status and conditions.
//!
//! Pods are tracked by counting the terminated pods the Job owns (no
//! `batch.kubernetes.io/job-tracking` finalizer): the Job never deletes its finished
//! pods, and `succeeded`/`failed` never go down even if someone else deletes them.

use crate::{Context, EventType};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tug_client::{controller, Action, Api, DeleteParams, ObjectKey, PatchKind, Store, WorkQueue};
use tug_proto::batch::v1::{Job, JobCondition, JobStatus};
use tug_proto::core::v1::Pod;
use tug_proto::meta::v1::OwnerReference;
use tug_proto::{ObjectMeta, Time};

/// Labels on a Job's pods (both spellings, as Kubernetes sets them).
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const LEGACY_CONTROLLER_UID: &str = "controller-uid";
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
pub const LEGACY_JOB_NAME: &str = "job-name";

/// How long a created pod may take to show up in the cache before we stop counting it.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("job {key}: {action}: {source}")]
    Api {
        key: ObjectKey,
        action: String,
        source: tug_client::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Knobs of the Job controller.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// First delay before re-creating a pod after a failure; doubles per failure.
    pub backoff_base: Duration,
    /// Cap of that delay.
    pub backoff_max: Duration,
}

impl Default for Config {
    /// Kubernetes' values: 10 s doubling, capped at 6 minutes.
    fn default() -> Self {
        Config {
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(360),
        }
    }
}

/// Runs the Job controller until `ctx.shutdown` is cancelled.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    run_with(ctx, Config::default()).await
}

/// [`run`] with explicit knobs (tests use a short back-off).
pub async fn run_with(ctx: Context, config: Config) -> anyhow::Result<()> {
    let queue: WorkQueue<ObjectKey> = WorkQueue::default();
    let jobs = ctx.informers.get::<Job>();
    let pods = ctx.informers.get::<Pod>();
    let (job_store, pod_store) = (jobs.store(), pods.store());
    tokio::select! {
        _ = async { job_store.wait_until_ready().await; pod_store.wait_until_ready().await } => {}
        _ = ctx.shutdown.cancelled() => return Ok(()),
    }
    jobs.enqueue_into(queue.clone());
    pods.enqueue_owner(queue.clone(), "Job");
    let stop = {
        let (queue, shutdown) = (queue.clone(), ctx.shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            queue.shutdown();
        })
    };
    let state = Arc::new(Reconciler {
        ctx: ctx.clone(),
        config,
        jobs: job_store,
        pods: pod_store,
        memory: Mutex::default(),
    });
    controller::run_keys(
        queue,
        move |key| {
            let state = state.clone();
            async move { state.reconcile(key).await }
        },
        ctx.options.workers,
    )
    .await;
    stop.abort();
    Ok(())
}

/// What the controller remembers between syncs of one Job (by uid).
#[derive(Default)]
struct Memory {
    /// Pods created but not yet seen in the cache (so they are not created twice).
    expected: HashMap<String, (HashSet<String>, Instant)>,
    /// The failure count last seen and when it last went up (the back-off clock).
    failures: HashMap<String, (i32, Instant)>,
}

struct Reconciler {
    ctx: Context,
    config: Config,
    jobs: Store<Job>,
    pods: Store<Pod>,
    memory: Mutex<Memory>,
}

/// The pods of one Job, sorted by what they mean for it.
#[derive(Debug, Default, PartialEq)]
pub struct Counts {
    /// Not finished and not being deleted.
    pub active: Vec<String>,
    pub ready: i32,
    pub succeeded: i32,
    pub failed: i32,
    /// Container restarts of the Job's pods (`restartPolicy: OnFailure` failures).
    pub restarts: i32,
}

/// Classifies the pods owned by a Job.
pub fn count_pods<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Counts {
    let mut c = Counts::default();
    for p in pods {
        match p.phase() {
            "Succeeded" => c.succeeded += 1,
            "Failed" => c.failed += 1,
            _ if p.metadata.deletion_timestamp.is_some() => {}
            _ => {
                c.active.push(p.metadata.name().to_string());
                if p.is_ready() {
                    c.ready += 1;
                }
                if let Some(s) = &p.status {
                    c.restarts += s
                        .container_statuses
                        .iter()
                        .chain(&s.init_container_statuses)
                        .map(|cs| cs.restart_count)
                        .sum::<i32>();
                }
            }
        }
    }
    c
}

/// How many pods should be running now: up to `parallelism`, never more than the
/// completions still missing; without `completions` (a work queue), none once one
/// pod succeeded.
pub fn wanted_active(parallelism: i32, completions: Option<i32>, succeeded: i32) -> i32 {
    let parallelism = parallelism.max(0);
    match completions {
        Some(c) => (c - succeeded).clamp(0, parallelism),
        None if succeeded > 0 => 0,
        None => parallelism,
    }
}

/// Whether the Job is complete.
pub fn is_complete(completions: Option<i32>, succeeded: i32, active: usize) -> bool {
    match completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active == 0,
    }
}

/// Whether the failures exceed `backoffLimit`, counting kubelet restarts of
/// `OnFailure` pods the way Kubernetes does.
pub fn past_backoff_limit(limit: i32, restart_policy: &str, failed: i32, restarts: i32) -> bool {
    if failed > limit {
        return true;
    }
    if restart_policy != "OnFailure" {
        return false;
    }
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// The wait before re-creating a pod after the `failed`-th failure: base·2^(failed-1),
/// capped.
pub fn backoff_delay(config: &Config, failed: i32) -> Duration {
    if failed <= 0 {
        return Duration::ZERO;
    }
    let exp = (failed - 1).min(30) as u32;
    config
        .backoff_base
        .saturating_mul(1u32 << exp)
        .min(config.backoff_max)
}

fn condition_true<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job has finished (Complete or Failed).
pub fn is_finished(job: &Job) -> bool {
    condition_true(job, "Complete").is_some() || condition_true(job, "Failed").is_some()
}

/// When a finished Job may be deleted, if it has `ttlSecondsAfterFinished`.
pub fn ttl_deadline(job: &Job) -> Option<DateTime<Utc>> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let status = job.status.as_ref()?;
    let finished = status.completion_time.as_ref().map(|t| t.0).or_else(|| {
        status
            .conditions
            .iter()
            .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
    })?;
    Some(finished + chrono::Duration::seconds(ttl.max(0) as i64))
}

fn set_condition(status: &mut JobStatus, type_: &str, value: &str, reason: &str, message: &str) {
    let now = Time::now();
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == value => {}
        Some(c) => {
            c.status = value.into();
            c.reason = Some(reason.to_string()).filter(|r| !r.is_empty());
            c.message = Some(message.to_string()).filter(|m| !m.is_empty());
            c.last_probe_time = Some(now);
            c.last_transition_time = Some(now);
        }
        None => status.conditions.push(JobCondition {
            type_: type_.into(),
            status: value.into(),
            reason: Some(reason.to_string()).filter(|r| !r.is_empty()),
            message: Some(message.to_string()).filter(|m| !m.is_empty()),
            last_probe_time: Some(now),
            last_transition_time: Some(now),
        }),
    }
}

fn until(deadline: DateTime<Utc>) -> Duration {
    (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

impl Reconciler {
    fn err(key: &ObjectKey, action: &str) -> impl FnOnce(tug_client::Error) -> Error {
        let key = key.clone();
        let action = action.to_string();
        move |source| Error::Api {
            key,
            action,
            source,
        }
    }

    async fn reconcile(&self, key: ObjectKey) -> Result<Action> {
        let Some(job) = self.jobs.get_key(&key) else {
            return Ok(Action::AwaitChange);
        };
        let job: Job = (*job).clone();
        let uid = job.metadata.uid.clone().unwrap_or_default();
        if job.metadata.deletion_timestamp.is_some() {
            return Ok(Action::AwaitChange);
        }
        let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let pod_api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &key.namespace);
        let owned: Vec<Arc<Pod>> = self
            .pods
            .list_by_namespace(&key.namespace)
            .into_iter()
            .filter(|p| p.metadata.controller_ref().is_some_and(|r| r.uid == uid))
            .collect();
        let mut counts = count_pods(owned.iter().map(|p| p.as_ref()));

        if is_finished(&job) {
            // A failed Job leaves nothing running.
            self.delete_pods(&job, &pod_api, &counts.active).await?;
            if let Some(deadline) = ttl_deadline(&job) {
                if Utc::now() < deadline {
                    return Ok(Action::Requeue(until(deadline)));
                }
                match api.delete(&key.name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(Self::err(&key, "deleting after its TTL")(e)),
                }
            }
            self.forget(&uid);
            return Ok(Action::AwaitChange);
        }

        let spec = job.spec.clone().unwrap_or_default();
        let old = job.status.clone().unwrap_or_default();
        let mut status = old.clone();
        // Pods we created that the cache has not shown yet count as active.
        let in_flight = self.in_flight(&uid, &owned);
        // Counted pods never go down: a deleted finished pod was still a result.
        counts.succeeded = counts.succeeded.max(old.succeeded);
        counts.failed = counts.failed.max(old.failed);
        let failures_rose_at = self.note_failures(&uid, counts.failed);

        let restart_policy = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Never".into());
        let suspended = spec.suspend == Some(true);
        let mut requeue: Option<Duration> = None;
        let mut finished: Option<(&str, &str, String)> = None;

        if suspended {
            self.delete_pods(&job, &pod_api, &counts.active).await?;
            counts.active.clear();
            counts.ready = 0;
            status.start_time = None;
            set_condition(
                &mut status,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
            );
        } else {
            if condition_true(&job, "Suspended").is_some() {
                set_condition(
                    &mut status,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                );
                status.start_time = None;
            }
            if status.start_time.is_none() {
                status.start_time = Some(Time::now());
            }
            let backoff_limit = spec.backoff_limit.unwrap_or(6);
            let deadline = spec.active_deadline_seconds.and_then(|s| {
                status
                    .start_time
                    .as_ref()
                    .map(|t| t.0 + chrono::Duration::seconds(s))
            });
            if is_complete(spec.completions, counts.succeeded, counts.active.len()) {
                finished = Some(("Complete", "", String::new()));
            } else if past_backoff_limit(
                backoff_limit,
                &restart_policy,
                counts.failed,
                counts.restarts,
            ) {
                finished = Some((
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit".into(),
                ));
            } else if deadline.is_some_and(|d| Utc::now() >= d) {
                finished = Some((
                    "Failed",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline".into(),
                ));
            } else {
                if let Some(d) = deadline {
                    requeue = Some(until(d));
                }
                let active = counts.active.len() as i32 + in_flight;
                let want = wanted_active(
                    spec.parallelism.unwrap_or(1),
                    spec.completions,
                    counts.succeeded,
                );
                if active < want {
                    let wait = failures_rose_at
                        .map(|at| {
                            (at + backoff_delay(&self.config, counts.failed))
                                .saturating_duration_since(Instant::now())
                        })
                        .unwrap_or_default();
                    if wait.is_zero() {
                        let created = self.create_pods(&job, &pod_api, want - active).await?;
                        counts.active.extend(created);
                    } else {
                        requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
                    }
                } else if active > want {
                    let excess = excess_pods(&owned, &counts.active, (active - want) as usize);
                    self.delete_pods(&job, &pod_api, &excess).await?;
                    counts.active.retain(|n| !excess.contains(n));
                }
            }
        }

        if let Some((type_, reason, message)) = &finished {
            if *type_ == "Failed" {
                self.delete_pods(&job, &pod_api, &counts.active).await?;
                counts.active.clear();
                counts.ready = 0;
                set_condition(&mut status, "Failed", "True", reason, message);
                self.ctx
                    .recorder
                    .event(&job, EventType::Warning, reason, message.clone());
            } else {
                set_condition(&mut status, "Complete", "True", "", "");
                status.completion_time = Some(Time::now());
                self.ctx.recorder.event(
                    &job,
                    EventType::Normal,
                    "Completed",
                    "Job completed".into(),
                );
            }
        }
        status.active = counts.active.len() as i32 + in_flight;
        if finished.is_some() {
            status.active = 0;
        }
        status.ready = Some(counts.ready);
        status.succeeded = counts.succeeded;
        status.failed = counts.failed;
        if status != old {
            let patch = serde_json::json!({ "status": status_patch(&status) });
            api.patch_status(&key.name, PatchKind::Merge, &patch)
                .await
                .map_err(Self::err(&key, "updating status"))?;
        }
        if finished.is_some() {
            // Look again for the TTL (the status write brings us back anyway).
            return Ok(Action::AwaitChange);
        }
        Ok(requeue.map_or(Action::AwaitChange, Action::Requeue))
    }

    /// Creates `n` pods from the Job's template; returns their names.
    async fn create_pods(&self, job: &Job, api: &Api<Pod>, n: i32) -> Result<Vec<String>> {
        let key = ObjectKey::of(job);
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let mut names = Vec::new();
        for _ in 0..n.max(0) {
            let pod = pod_from_template(job);
            let created = api
                .create(&pod)
                .await
                .map_err(Self::err(&key, "creating a pod"))?;
            let name = created.metadata.name().to_string();
            self.expect(&uid, &name);
            self.ctx.recorder.event(
                job,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created pod: {name}"),
            );
            names.push(name);
        }
        Ok(names)
    }

    async fn delete_pods(&self, job: &Job, api: &Api<Pod>, names: &[String]) -> Result<()> {
        let key = ObjectKey::of(job);
        for name in names {
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => self.ctx.recorder.event(
                    job,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(Self::err(&key, &format!("deleting pod {name}"))(e)),
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expect(&self, uid: &str, name: &str) {
        let mut m = self.lock();
        let e = m
            .expected
            .entry(uid.to_string())
            .or_insert_with(|| (HashSet::new(), Instant::now()));
        e.0.insert(name.to_string());
        e.1 = Instant::now();
    }

    /// Created pods not yet in the cache; forgets those seen (or waited for too long).
    fn in_flight(&self, uid: &str, owned: &[Arc<Pod>]) -> i32 {
        let mut m = self.lock();
        let Some((names, at)) = m.expected.get_mut(uid) else {
            return 0;
        };
        let seen: HashSet<&str> = owned.iter().map(|p| p.metadata.name()).collect();
        names.retain(|n| !seen.contains(n.as_str()));
        if names.is_empty() || at.elapsed() > EXPECTATION_TIMEOUT {
            m.expected.remove(uid);
            return 0;
        }
        names.len() as i32
    }

    /// Records the failure count; returns when it last went up (if ever).
    fn note_failures(&self, uid: &str, failed: i32) -> Option<Instant> {
        if failed == 0 {
            return None;
        }
        let mut m = self.lock();
        let e = m
            .failures
            .entry(uid.to_string())
            .or_insert((failed, Instant::now()));
        if failed > e.0 {
            *e = (failed, Instant::now());
        }
        Some(e.1)
    }

    fn forget(&self, uid: &str) {
        let mut m = self.lock();
        m.expected.remove(uid);
        m.failures.remove(uid);
    }
}

/// `status` as a merge patch: counters that dropped to zero (omitted when empty) and
/// times that were cleared must be written explicitly.
fn status_patch(status: &JobStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(status).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.insert("active".into(), status.active.into());
        m.insert("succeeded".into(), status.succeeded.into());
        m.insert("failed".into(), status.failed.into());
        for f in ["startTime", "completionTime"] {
            m.entry(f).or_insert(serde_json::Value::Null);
        }
    }
    v
}

/// Which active pods to delete first: not yet running, then not ready, then newest.
fn excess_pods(owned: &[Arc<Pod>], active: &[String], n: usize) -> Vec<String> {
    let mut ranked: Vec<&Pod> = owned
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| active.iter().any(|a| a == p.metadata.name()))
        .collect();
    ranked.sort_by_key(|p| {
        (
            p.node_name().is_some(),
            p.phase() == "Running",
            p.is_ready(),
            std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        )
    });
    ranked
        .into_iter()
        .take(n)
        .map(|p| p.metadata.name().to_string())
        .collect()
}

/// A new pod for `job`: its template, the Job's labels and a controller reference.
pub fn pod_from_template(job: &Job) -> Pod {
    let spec = job.spec.clone().unwrap_or_default();
    let name = job.metadata.name().to_string();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = spec.template.metadata.labels.clone();
    for (k, v) in [
        (CONTROLLER_UID, &uid),
        (LEGACY_CONTROLLER_UID, &uid),
        (JOB_NAME, &name),
        (LEGACY_JOB_NAME, &name),
    ] {
        labels.entry(k.to_string()).or_insert_with(|| v.clone());
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: job.metadata.namespace.clone(),
            labels,
            annotations: spec.template.metadata.annotations.clone(),
            owner_references: vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name,
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }],
            ..Default::default()
        },
        spec: spec.template.spec.clone(),
        ..Default::default()
    }
    .with_type_meta()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tug_proto::batch::v1::JobSpec;
    use tug_proto::core::v1::{ContainerStatus, PodStatus};

    fn pod(name: &str, phase: &str, restarts: i32) -> Pod {
        Pod {
            metadata: ObjectMeta::namespaced("ns", name),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: vec![ContainerStatus {
                    restart_count: restarts,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pods_are_counted_by_phase_and_restarts() {
        let mut deleting = pod("d", "Running", 0);
        deleting.metadata.deletion_timestamp = Some(Time::now());
        let pods = [
            pod("a", "Running", 2),
            pod("b", "Pending", 0),
            pod("c", "Succeeded", 0),
            pod("e", "Failed", 5),
            pod("f", "Failed", 0),
            deleting,
        ];
        let c = count_pods(&pods);
        assert_eq!(c.active, ["a", "b"]);
        assert_eq!((c.succeeded, c.failed, c.restarts, c.ready), (1, 2, 2, 0));
    }

    #[test]
    fn wanted_active_and_completion_follow_kubernetes() {
        // (parallelism, completions, succeeded, want)
        let cases = [
            (1, Some(1), 0, 1),
            (3, Some(5), 0, 3),
            (3, Some(5), 3, 2),
            (3, Some(5), 5, 0),
            (2, None, 0, 2),
            (2, None, 1, 0),
            (0, Some(3), 0, 0),
        ];
        for (p, c, s, want) in cases {
            assert_eq!(wanted_active(p, c, s), want, "{p} {c:?} {s}");
        }
        assert!(is_complete(Some(2), 2, 0));
        assert!(!is_complete(Some(2), 1, 0));
        assert!(is_complete(None, 1, 0));
        assert!(!is_complete(None, 1, 1));
    }

    #[test]
    fn backoff_limit_counts_failures_and_on_failure_restarts() {
        // (limit, policy, failed, restarts, past)
        let cases = [
            (6, "Never", 6, 0, false),
            (6, "Never", 7, 0, true),
            (0, "Never", 1, 0, true),
            (6, "Never", 0, 100, false),
            (6, "OnFailure", 0, 5, false),
            (6, "OnFailure", 0, 6, true),
            (0, "OnFailure", 0, 1, true),
            (0, "OnFailure", 0, 0, false),
        ];
        for (limit, policy, failed, restarts, past) in cases {
            assert_eq!(
                past_backoff_limit(limit, policy, failed, restarts),
                past,
                "{limit} {policy} {failed} {restarts}"
            );
        }
    }

    #[test]
    fn recreation_backoff_doubles_and_is_capped() {
        let c = Config::default();
        let cases = [
            (0, 0),
            (1, 10),
            (2, 20),
            (3, 40),
            (6, 320),
            (7, 360),
            (40, 360),
        ];
        for (failed, secs) in cases {
            assert_eq!(
                backoff_delay(&c, failed),
                Duration::from_secs(secs),
                "{failed}"
            );
        }
    }

    #[test]
    fn pods_from_the_template_are_owned_and_labelled() {
        let job = Job {
            metadata: ObjectMeta {
                uid: Some("u1".into()),
                ..ObjectMeta::namespaced("ns", "greeter")
            },
            spec: Some(JobSpec::default()),
            ..Default::default()
        };
        let p = pod_from_template(&job);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("greeter-"));
        for (k, v) in [
            (CONTROLLER_UID, "u1"),
            (LEGACY_CONTROLLER_UID, "u1"),
            (JOB_NAME, "greeter"),
            (LEGACY_JOB_NAME, "greeter"),
        ] {
            assert_eq!(p.metadata.labels[k], v);
        }
        let owner = p.metadata.controller_ref().unwrap();
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Job", "u1"));
        assert_eq!(owner.block_owner_deletion, Some(true));
    }

    #[test]
    fn ttl_runs_from_completion_time() {
        let done = Time::parse("2024-01-01T00:00:00Z").unwrap();
        let job = Job {
            spec: Some(JobSpec {
                ttl_seconds_after_finished: Some(30),
                ..Default::default()
            }),
            status: Some(JobStatus {
                completion_time: Some(done),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            ttl_deadline(&job),
            Some(done.0 + chrono::Duration::seconds(30))
        );
        let mut no_ttl = job.clone();
        no_ttl.spec = Some(JobSpec::default());
        assert_eq!(ttl_deadline(&no_ttl), None);
    }
}
