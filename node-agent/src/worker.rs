//! One worker per pod: a task that drives the pod from bound to running to gone.
//!
//! The worker reconciles; it never acts on an event's delta alone. Each pass
//! ([`Worker::sync`]) compares the pod's spec with its [`PodRecord`] and does the next
//! step: sandbox (network, IPC/UTS namespaces, cgroup, volumes, pod files) -> images ->
//! init containers in order -> containers -> probes; restarts per restartPolicy with
//! exponential back-off; on deletion a graceful stop (SIGTERM, grace period, SIGKILL),
//! release of everything, then the final delete of the Pod object. It wakes on a new
//! version of the pod, a container exit, a probe result or a back-off deadline, and
//! writes the status back whenever what it would report changed.

use crate::agent::Ctx;
use crate::probe::{
    ProbeContext, ProbeKind, ProbeReport, ProbeState, ProbeTiming, ProbeWorker, WorkerOptions,
};
use crate::record::{ContainerRecord, PodRecord};
use crate::spec::{self, EnvSources, PodFacts};
use crate::status;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tug_client::{Api, DeleteParams, PatchKind};
use tug_proto::core::v1::{
    ConfigMap, Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, Pod,
    PodStatus, Secret,
};
use tug_proto::meta::v1::Time;
use tug_runtime::{ContainerConfig, ContainerState as RtState, SandboxNamespaces};

/// What the dispatcher tells a worker.
#[derive(Clone)]
pub enum PodUpdate {
    /// The current version of the pod object.
    Pod(Arc<Pod>),
    /// The pod object no longer exists (or is no longer bound here): stop and clean up.
    Gone,
}

enum Event {
    Exited {
        name: String,
        id: String,
        state: RtState,
    },
    Probe {
        name: String,
        kind: ProbeKind,
        state: ProbeState,
    },
}

struct Probes {
    // Held for their Drop: dropping a ProbeWorker stops it.
    _workers: Vec<ProbeWorker>,
    readiness: Option<bool>,
    startup_done: bool,
    has_startup: bool,
    has_readiness: bool,
}

pub struct Worker {
    ctx: Arc<Ctx>,
    uid: String,
    record: PodRecord,
    dir: PathBuf,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    probes: HashMap<String, Probes>,
    /// Containers a waiter task is already watching (by runtime id).
    waiting_on: std::collections::HashSet<String>,
    last_status: Option<serde_json::Value>,
    /// The pod-level problem to report when the sandbox cannot be built.
    sandbox_error: Option<String>,
    sandbox_retry: Option<Instant>,
    net_ns: Option<PathBuf>,
    /// The pod's restartPolicy (Always, OnFailure, Never).
    policy: String,
    /// Stopping for good (deletion): exits are final, nothing restarts.
    stopping: bool,
}

/// Runs a pod's worker until the pod is gone (cleaned up) or the agent stops (the
/// update channel closes; containers keep running for the next agent to adopt).
pub async fn run(ctx: Arc<Ctx>, uid: String, mut updates: watch::Receiver<PodUpdate>) {
    let dir = ctx.pod_dir(&uid);
    let record = match PodRecord::load(&dir) {
        Ok(Some(r)) => r,
        Ok(None) => PodRecord::default(),
        Err(e) => {
            tracing::warn!(pod = %uid, error = %e, "starting the pod's record afresh");
            PodRecord::default()
        }
    };
    let (events_tx, events) = mpsc::unbounded_channel();
    let mut w = Worker {
        ctx,
        uid,
        record,
        dir,
        events_tx,
        events,
        probes: HashMap::new(),
        waiting_on: Default::default(),
        last_status: None,
        sandbox_error: None,
        sandbox_retry: None,
        net_ns: None,
        policy: "Always".to_string(),
        stopping: false,
    };
    w.readopt().await;
    loop {
        let update = updates.borrow_and_update().clone();
        let next = match update {
            PodUpdate::Gone => {
                w.stop_everything(Duration::from_secs(2)).await;
                w.forget().await;
                return;
            }
            PodUpdate::Pod(pod) if pod.metadata.deletion_timestamp.is_some() => {
                let grace = pod
                    .metadata
                    .deletion_grace_period_seconds
                    .or(pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds))
                    .unwrap_or(30)
                    .max(0) as u64;
                w.stop_everything(Duration::from_secs(grace)).await;
                w.push_status(&pod).await;
                w.final_delete(&pod).await;
                w.forget().await;
                return;
            }
            PodUpdate::Pod(pod) => {
                let next = w.sync(&pod).await;
                w.push_status(&pod).await;
                next
            }
        };
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    // The agent is stopping: leave containers running.
                    return;
                }
            }
            Some(ev) = w.events.recv() => {
                w.handle(ev).await;
                // Drain what else arrived so one pass handles a burst.
                while let Ok(ev) = w.events.try_recv() {
                    w.handle(ev).await;
                }
            }
            _ = sleep => {}
        }
    }
}

fn now_utc() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn to_time(t: std::time::SystemTime) -> Time {
    Time(chrono::DateTime::<chrono::Utc>::from(t))
}

impl Worker {
    fn save(&self) {
        if let Err(e) = self.record.save(&self.dir) {
            tracing::error!(pod = %self.uid, error = %e, "cannot save the pod record");
        }
    }

    fn policy(pod: &Pod) -> String {
        pod.spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".to_string())
    }

    /// After an agent restart: re-attach to containers the record says are running
    /// (their exit, if it happened meanwhile, is read from the runtime's exit record).
    async fn readopt(&mut self) {
        if self.record.sandbox_ready && !self.record.released {
            if let Some(net) = self.ctx.net.pod(&self.uid) {
                self.net_ns = Some(net.netns.clone());
            }
        }
        let running = self.record.running();
        for (name, id) in running {
            match self.ctx.runtime.state(&id).await {
                Ok(RtState::Running { .. }) => self.watch_exit(&name, &id),
                Ok(state) => {
                    let _ = self.events_tx.send(Event::Exited { name, id, state });
                }
                Err(e) => {
                    let state = RtState::Unknown(e.to_string());
                    let _ = self.events_tx.send(Event::Exited { name, id, state });
                }
            }
        }
    }

    fn watch_exit(&mut self, name: &str, id: &str) {
        if !self.waiting_on.insert(id.to_string()) {
            return;
        }
        let runtime = self.ctx.runtime.clone();
        let tx = self.events_tx.clone();
        let (name, id) = (name.to_string(), id.to_string());
        tokio::spawn(async move {
            let state = match runtime.wait(&id).await {
                Ok(s) => s,
                Err(e) => RtState::Unknown(e.to_string()),
            };
            let _ = tx.send(Event::Exited { name, id, state });
        });
    }

    async fn handle(&mut self, ev: Event) {
        match ev {
            Event::Exited { name, id, state } => self.on_exit(&name, &id, state).await,
            Event::Probe { name, kind, state } => {
                let Some(p) = self.probes.get_mut(&name) else {
                    return;
                };
                match (kind, state) {
                    (ProbeKind::Startup, ProbeState::Success) => p.startup_done = true,
                    (ProbeKind::Startup | ProbeKind::Liveness, ProbeState::Failure { .. }) => {
                        self.kill_for_probe(&name, kind).await;
                    }
                    (ProbeKind::Readiness, ProbeState::Success) => p.readiness = Some(true),
                    (ProbeKind::Readiness, ProbeState::Failure { .. }) => p.readiness = Some(false),
                    _ => {}
                }
                self.update_readiness(&name);
            }
        }
    }

    fn update_readiness(&mut self, name: &str) {
        let Some(rec) = self.record.containers.get_mut(name) else {
            return;
        };
        let p = self.probes.get(name);
        let started = p.is_none_or(|p| !p.has_startup || p.startup_done);
        let ready = rec.is_running()
            && started
            && p.is_none_or(|p| !p.has_readiness || p.readiness == Some(true));
        if rec.started != started || rec.ready != ready {
            rec.started = started;
            rec.ready = ready;
            self.save();
        }
    }

    async fn kill_for_probe(&mut self, name: &str, kind: ProbeKind) {
        let Some(id) = self.record.containers.get(name).and_then(|r| r.id.clone()) else {
            return;
        };
        tracing::info!(pod = %self.record.name, container = name, probe = kind.as_str(), "probe failed; restarting the container");
        let msg = format!(
            "Container {name} failed {} probe, will be restarted",
            kind.as_str().to_lowercase()
        );
        self.ctx
            .event_for(&self.record, "Normal", "Killing", &msg)
            .await;
        let runtime = self.ctx.runtime.clone();
        let grace = Duration::from_secs(self.ctx.opts.probe_kill_grace_secs);
        tokio::spawn(async move {
            let _ = runtime.kill(&id, libc::SIGTERM).await;
            tokio::time::sleep(grace).await;
            let _ = runtime.kill(&id, libc::SIGKILL).await;
        });
    }

    async fn on_exit(&mut self, name: &str, id: &str, state: RtState) {
        self.waiting_on.remove(id);
        let init = self.record.init_containers.contains_key(name);
        let rec = if init {
            self.record.init_containers.get_mut(name)
        } else {
            self.record.containers.get_mut(name)
        };
        let Some(rec) = rec else { return };
        if rec.id.as_deref() != Some(id) || rec.terminated().is_some() {
            return;
        }
        let started_at = rec.state.running.as_ref().and_then(|r| r.started_at);
        let term = match state {
            RtState::Exited {
                exit_code,
                oom_killed,
                signal,
                started_at: s,
                finished_at,
            } => ContainerStateTerminated {
                exit_code,
                signal,
                reason: Some(
                    if oom_killed {
                        "OOMKilled"
                    } else if exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    }
                    .to_string(),
                ),
                started_at: Some(started_at.unwrap_or_else(|| to_time(s))),
                finished_at: Some(to_time(finished_at)),
                container_id: Some(format!("tug://{id}")),
                ..Default::default()
            },
            RtState::Running { .. } => return,
            RtState::Unknown(msg) => ContainerStateTerminated {
                exit_code: 137,
                reason: Some("ContainerStatusUnknown".to_string()),
                message: Some(format!(
                    "The container could not be located when the pod was terminated: {msg}"
                )),
                started_at,
                finished_at: Some(Time::now()),
                container_id: Some(format!("tug://{id}")),
                ..Default::default()
            },
        };
        let policy = if init && self.policy != "Never" {
            "OnFailure"
        } else {
            self.policy.as_str()
        };
        let opts = &self.ctx.opts;
        if !self.stopping && status::should_restart(policy, term.exit_code) {
            // Crash back-off as the kubelet: the first restart is immediate, then base,
            // doubling up to max; a container that ran for 2 x max starts afresh.
            let ran = match (&term.started_at, &term.finished_at) {
                (Some(s), Some(f)) => (f.0 - s.0).to_std().unwrap_or_default(),
                _ => Duration::ZERO,
            };
            if ran > opts.backoff_max * 2 {
                rec.backoff_secs = 0;
            }
            let delay = Duration::from_millis(rec.backoff_secs);
            let next = if delay.is_zero() {
                opts.backoff_base
            } else {
                (delay * 2).min(opts.backoff_max)
            };
            rec.backoff_secs = next.as_millis() as u64;
            rec.not_before =
                Some(now_utc() + chrono::Duration::from_std(delay).unwrap_or_default());
            if delay.is_zero() {
                rec.state = ContainerState {
                    terminated: Some(term),
                    ..Default::default()
                };
            } else {
                rec.last_state = Some(term);
                rec.state = ContainerRecord::waiting(
                    "CrashLoopBackOff",
                    Some(format!(
                        "back-off {} restarting failed container={name} pod={}_{}({})",
                        fmt_duration(delay),
                        self.record.name,
                        self.record.namespace,
                        self.uid
                    )),
                );
            }
        } else {
            rec.state = ContainerState {
                terminated: Some(term),
                ..Default::default()
            };
        }
        let rec = if init {
            self.record.init_containers.get_mut(name)
        } else {
            self.record.containers.get_mut(name)
        };
        if let Some(rec) = rec {
            rec.ready = false;
            rec.started = false;
        }
        self.probes.remove(name);
        self.save();
        if let Err(e) = self.ctx.runtime.remove(id).await {
            tracing::warn!(container = id, error = %e, "removing an exited container");
        }
        if let Err(e) = tug_image::ImageStore::release_rootfs(&self.container_dir(id)) {
            tracing::warn!(container = id, error = %e, "releasing a container's rootfs");
        }
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join("containers").join(id)
    }

    fn container_id(&self, name: &str, attempt: i32) -> String {
        let uid: String = self.uid.chars().filter(|c| *c != '-').take(12).collect();
        let short: String = name.chars().take(40).collect();
        format!("{uid}-{short}-{attempt}")
    }

    /// One reconcile pass. Returns when it wants to be woken even without events.
    async fn sync(&mut self, pod: &Pod) -> Option<Instant> {
        if self.record.uid.is_empty() {
            self.record.uid = self.uid.clone();
            self.record.namespace = pod.metadata.namespace.clone().unwrap_or_default();
            self.record.name = pod.metadata.name.clone().unwrap_or_default();
            self.record.start_time = Some(Time::now());
            self.save();
        }
        if self.record.released {
            return None;
        }
        if self.record.terminal_phase.is_some() {
            self.release().await;
            return None;
        }
        if !self.record.sandbox_ready {
            if let Some(at) = self.sandbox_retry.filter(|at| *at > Instant::now()) {
                return Some(at);
            }
            match self.create_sandbox(pod).await {
                Ok(()) => {
                    self.sandbox_error = None;
                    self.record.sandbox_ready = true;
                    self.save();
                }
                Err(msg) => {
                    tracing::warn!(pod = %self.record.name, error = %msg, "creating the pod sandbox");
                    if self.sandbox_error.as_deref() != Some(&msg) {
                        self.ctx
                            .event_for(&self.record, "Warning", "FailedCreatePodSandBox", &msg)
                            .await;
                    }
                    self.sandbox_error = Some(msg);
                    let at = Instant::now() + Duration::from_secs(2);
                    self.sandbox_retry = Some(at);
                    return Some(at);
                }
            }
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = Self::policy(pod);
        self.policy = policy.clone();
        let mut wake: Option<Instant> = None;
        let mut earliest = |at: Instant| {
            wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
        };
        // Init containers: one at a time, in order, each to success.
        if !self.record.initialized {
            let mut all_done = true;
            for c in &spec.init_containers {
                let rec = self
                    .record
                    .init_containers
                    .entry(c.name.clone())
                    .or_default()
                    .clone();
                if rec.terminated().is_some_and(|t| t.exit_code == 0) {
                    continue;
                }
                all_done = false;
                if rec.is_running() {
                    break;
                }
                let init_policy = if policy == "Never" {
                    "Never"
                } else {
                    "OnFailure"
                };
                if let Some(t) = rec.terminated() {
                    if !status::should_restart(init_policy, t.exit_code) {
                        // Failed for good: the pod fails.
                        self.record.terminal_phase = Some("Failed".to_string());
                        self.save();
                        self.release().await;
                        return None;
                    }
                }
                if let Some(at) = self.start_if_due(pod, c, true, init_policy).await {
                    earliest(at);
                }
                break;
            }
            if !all_done {
                return wake;
            }
            self.record.initialized = true;
            self.save();
        }
        for c in &spec.containers {
            let rec = self
                .record
                .containers
                .entry(c.name.clone())
                .or_default()
                .clone();
            if rec.is_running() {
                if let Some(id) = rec.id.clone() {
                    self.watch_exit(&c.name, &id);
                    self.ensure_probes(c, &id);
                }
                continue;
            }
            if let Some(t) = rec.terminated() {
                if !status::should_restart(&policy, t.exit_code) {
                    continue;
                }
            }
            if let Some(at) = self.start_if_due(pod, c, false, &policy).await {
                earliest(at);
            }
        }
        let phase = status::phase(pod, &self.record);
        if phase == "Succeeded" || phase == "Failed" {
            self.record.terminal_phase = Some(phase);
            self.save();
            self.release().await;
            return None;
        }
        // Periodic pass: refresh projected ConfigMaps/Secrets.
        if let Err(e) = self.ctx.volumes.refresh(pod).await {
            tracing::debug!(pod = %self.record.name, error = %e, "refreshing volumes");
        }
        let periodic = Instant::now() + self.ctx.opts.resync;
        Some(wake.map_or(periodic, |w| w.min(periodic)))
    }

    /// Starts `c` (again) unless it is in back-off; returns when to come back.
    async fn start_if_due(
        &mut self,
        pod: &Pod,
        c: &Container,
        init: bool,
        policy: &str,
    ) -> Option<Instant> {
        let map = if init {
            &mut self.record.init_containers
        } else {
            &mut self.record.containers
        };
        let rec = map.entry(c.name.clone()).or_default();
        if let Some(nb) = rec.not_before {
            let now = now_utc();
            if nb > now {
                let left = (nb - now).to_std().unwrap_or_default();
                return Some(Instant::now() + left);
            }
        }
        let _ = policy;
        match self.start_container(pod, c, init).await {
            Ok(()) => None,
            Err((reason, message)) => {
                let backoff = self.bump_backoff(&c.name, init);
                let map = if init {
                    &mut self.record.init_containers
                } else {
                    &mut self.record.containers
                };
                let rec = map.entry(c.name.clone()).or_default();
                let reason = match reason {
                    // The first failure of a pull says ErrImagePull; while backing off
                    // to retry it, ImagePullBackOff (as the kubelet).
                    "ErrImagePull"
                        if rec.state.waiting.as_ref().and_then(|w| w.reason.as_deref())
                            == Some("ErrImagePull") =>
                    {
                        "ImagePullBackOff"
                    }
                    r => r,
                };
                let message = if reason == "ImagePullBackOff" {
                    format!(
                        "Back-off pulling image {:?}: {message}",
                        c.image.clone().unwrap_or_default()
                    )
                } else {
                    message
                };
                if rec.state.waiting.as_ref().and_then(|w| w.reason.as_deref()) != Some(reason) {
                    let kind = if reason == "ImagePullBackOff" {
                        "BackOff"
                    } else {
                        "Failed"
                    };
                    let msg = message.clone();
                    let record = self.record.clone();
                    self.ctx.event_for(&record, "Warning", kind, &msg).await;
                }
                let map = if init {
                    &mut self.record.init_containers
                } else {
                    &mut self.record.containers
                };
                let rec = map.entry(c.name.clone()).or_default();
                rec.state = ContainerRecord::waiting(reason, Some(message));
                self.save();
                Some(Instant::now() + backoff)
            }
        }
    }

    /// Next back-off for a container: 0 on the first failure, then base, doubling up to
    /// the maximum (10 s .. 5 min by default, as the kubelet).
    fn bump_backoff(&mut self, name: &str, init: bool) -> Duration {
        let opts = &self.ctx.opts;
        let map = if init {
            &mut self.record.init_containers
        } else {
            &mut self.record.containers
        };
        let rec = map.entry(name.to_string()).or_default();
        let current = Duration::from_millis(rec.backoff_secs);
        let next = if current.is_zero() {
            opts.backoff_base
        } else {
            (current * 2).min(opts.backoff_max)
        };
        rec.backoff_secs = next.as_millis() as u64;
        rec.not_before = Some(now_utc() + chrono::Duration::from_std(next).unwrap_or_default());
        next
    }

    async fn start_container(
        &mut self,
        pod: &Pod,
        c: &Container,
        init: bool,
    ) -> Result<(), (&'static str, String)> {
        let (image, pulled) = self.ctx.ensure_image(pod, c).await?;
        let reference = c.image.clone().unwrap_or_default();
        let pulled_msg = match pulled {
            Some(took) => format!(
                "Successfully pulled image {reference:?} in {:.3}s",
                took.as_secs_f64()
            ),
            None => format!("Container image {reference:?} already present on machine"),
        };
        self.ctx
            .event_for(&self.record, "Normal", "Pulled", &pulled_msg)
            .await;
        let attempt = {
            let map = if init {
                &self.record.init_containers
            } else {
                &self.record.containers
            };
            map.get(&c.name).map(|r| r.attempts).unwrap_or(0)
        };
        let id = self.container_id(&c.name, attempt);
        let cdir = self.container_dir(&id);
        // Unpacking a layer the first time can take a while: off the async threads.
        let (images, img, dir) = (self.ctx.images.clone(), image.clone(), cdir.clone());
        let rootfs = tokio::task::spawn_blocking(move || images.prepare_rootfs(&img, &dir))
            .await
            .map_err(|e| {
                (
                    "CreateContainerError",
                    format!("preparing the root filesystem: {e}"),
                )
            })?
            .map_err(|e| {
                (
                    "CreateContainerError",
                    format!("preparing the root filesystem: {e}"),
                )
            })?;
        self.ctx
            .event_for(
                &self.record,
                "Normal",
                "Created",
                &format!("Created container {}", c.name),
            )
            .await;
        let result = self
            .build_and_run(pod, c, &image, &id, rootfs, attempt)
            .await;
        let started = match result {
            Ok(s) => s,
            Err(e) => {
                let _ = tug_image::ImageStore::release_rootfs(&cdir);
                return Err(e);
            }
        };
        let previous_term = {
            let map = if init {
                &self.record.init_containers
            } else {
                &self.record.containers
            };
            map.get(&c.name).and_then(|r| r.terminated().cloned())
        };
        let map = if init {
            &mut self.record.init_containers
        } else {
            &mut self.record.containers
        };
        let rec = map.entry(c.name.clone()).or_default();
        if let Some(t) = previous_term {
            rec.last_state = Some(t);
        }
        rec.id = Some(id.clone());
        rec.attempts = attempt + 1;
        rec.restart_count = attempt;
        rec.image = c.image.clone().unwrap_or_default();
        rec.image_id = image
            .repo_digest
            .clone()
            .unwrap_or_else(|| image.id.clone());
        rec.state = ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(to_time(started)),
            }),
            ..Default::default()
        };
        rec.ready = false;
        rec.started = false;
        rec.not_before = None;
        self.save();
        let record = self.record.clone();
        self.ctx
            .event_for(
                &record,
                "Normal",
                "Started",
                &format!("Started container {}", c.name),
            )
            .await;
        self.watch_exit(&c.name, &id);
        if !init {
            self.probes.remove(&c.name);
            self.ensure_probes(c, &id);
            self.update_readiness(&c.name);
        }
        Ok(())
    }

    async fn build_and_run(
        &mut self,
        pod: &Pod,
        c: &Container,
        image: &tug_image::Image,
        id: &str,
        rootfs: PathBuf,
        attempt: i32,
    ) -> Result<std::time::SystemTime, (&'static str, String)> {
        let cfg_err = |e: String| ("CreateContainerConfigError", e);
        let sources = self.env_sources(pod, c).await.map_err(cfg_err)?;
        let facts = PodFacts {
            pod_ip: self.record.pod_ip.clone(),
            host_ip: self.ctx.node.ip.clone(),
            node_name: self.ctx.node.name.clone(),
        };
        let service_env = self.ctx.service_env(pod);
        let env = spec::environment(pod, c, &image.config.env, &service_env, &sources, &facts)
            .map_err(|e| cfg_err(e.to_string()))?;
        let args = spec::argv(c, &image.config.entrypoint, &image.config.cmd, &env)
            .map_err(|e| cfg_err(e.to_string()))?;
        let (uid, gid, groups) =
            spec::user(pod, c, &image.config.user, &rootfs).map_err(|e| cfg_err(e.to_string()))?;
        let mut mounts = self
            .ctx
            .volumes
            .mounts(pod, c)
            .map_err(|e| cfg_err(e.to_string()))?;
        mounts.extend(crate::podfiles::mounts(&self.dir, pod, c));
        let cwd = c
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .or_else(|| Some(image.config.working_dir.clone()).filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".to_string());
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let cfg = ContainerConfig {
            id: id.to_string(),
            rootfs,
            args,
            env,
            cwd,
            uid,
            gid,
            additional_gids: groups,
            hostname: crate::podfiles::hostname(pod),
            namespaces: SandboxNamespaces {
                net: if host_network {
                    None
                } else {
                    self.net_ns.clone()
                },
                ipc: self.dir.join("ns/ipc"),
                uts: self.dir.join("ns/uts"),
            },
            cgroup_parent: self.ctx.pod_cgroup(&self.uid),
            resources: spec::resources(c, self.ctx.opts.pids_limit),
            mounts,
            log_path: self.ctx.log_path(
                &self.record.namespace,
                &self.record.name,
                &self.uid,
                &c.name,
                attempt,
            ),
            readonly_rootfs: c
                .security_context
                .as_ref()
                .and_then(|s| s.read_only_root_filesystem)
                .unwrap_or(false),
        };
        match self.ctx.runtime.run(cfg).await {
            Ok(RtState::Running { started_at, .. }) => Ok(started_at),
            Ok(RtState::Exited { started_at, .. }) => Ok(started_at),
            Ok(RtState::Unknown(msg)) => Err(("RunContainerError", msg)),
            Err(e) => Err(("RunContainerError", e.to_string())),
        }
    }

    /// Reads the ConfigMaps and Secrets `c`'s env refers to (missing ones as `None`).
    async fn env_sources(&self, pod: &Pod, c: &Container) -> Result<EnvSources, String> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let (cms, secrets) = EnvSources::wanted(c);
        let mut out = EnvSources::default();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &ns);
        for name in cms {
            let data = cm_api
                .get_opt(&name)
                .await
                .map_err(|e| format!("reading configmap {name:?}: {e}"))?;
            out.config_maps.insert(name, data.map(|cm| cm.data));
        }
        let secret_api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &ns);
        for name in secrets {
            let data = secret_api
                .get_opt(&name)
                .await
                .map_err(|e| format!("reading secret {name:?}: {e}"))?;
            out.secrets.insert(
                name,
                data.map(|s| {
                    let mut m: std::collections::BTreeMap<String, String> = s
                        .data
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect();
                    m.extend(s.string_data);
                    m
                }),
            );
        }
        Ok(out)
    }

    fn ensure_probes(&mut self, c: &Container, id: &str) {
        if self.probes.contains_key(&c.name) {
            return;
        }
        let pctx = ProbeContext {
            pod_ip: self
                .record
                .pod_ip
                .clone()
                .unwrap_or_else(|| self.ctx.node.ip.clone()),
            ports: c.ports.clone(),
            container_id: id.to_string(),
            runtime: self.ctx.runtime.clone(),
        };
        // A re-adopted container has been running a while: initial delays count from
        // its start, not from the agent's.
        let running_for = self
            .record
            .containers
            .get(&c.name)
            .and_then(|r| r.state.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .and_then(|t| (chrono::Utc::now() - t.0).to_std().ok())
            .unwrap_or_default();
        // Every failed attempt becomes an Unhealthy event, as the kubelet records them.
        let (reports_tx, mut reports) = mpsc::unbounded_channel::<ProbeReport>();
        let ctx = self.ctx.clone();
        let record = self.record.clone();
        tokio::spawn(async move {
            while let Some(r) = reports.recv().await {
                ctx.event_for(&record, "Warning", "Unhealthy", &r.message())
                    .await;
            }
        });
        let start = |kind: ProbeKind,
                     probe: &tug_proto::core::v1::Probe,
                     started: Option<watch::Receiver<ProbeState>>| {
            let timing = ProbeTiming::from_probe(probe, kind).after_running_for(running_for);
            ProbeWorker::start_with_timing(
                kind,
                probe.clone(),
                timing,
                pctx.clone(),
                WorkerOptions {
                    started,
                    reports: Some(reports_tx.clone()),
                },
            )
        };
        let mut workers = Vec::new();
        let startup = c
            .startup_probe
            .as_ref()
            .map(|p| start(ProbeKind::Startup, p, None));
        let started_rx = startup.as_ref().map(|w| w.subscribe());
        let has_startup = startup.is_some();
        workers.extend(startup);
        if let Some(p) = &c.liveness_probe {
            workers.push(start(ProbeKind::Liveness, p, started_rx.clone()));
        }
        if let Some(p) = &c.readiness_probe {
            workers.push(start(ProbeKind::Readiness, p, started_rx.clone()));
        }
        for w in &workers {
            let mut rx = w.subscribe();
            let kind = w.kind();
            let tx = self.events_tx.clone();
            let name = c.name.clone();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let state = rx.borrow_and_update().clone();
                    let ev = Event::Probe {
                        name: name.clone(),
                        kind,
                        state,
                    };
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
            });
        }
        self.probes.insert(
            c.name.clone(),
            Probes {
                _workers: workers,
                readiness: None,
                startup_done: !has_startup,
                has_startup,
                has_readiness: c.readiness_probe.is_some(),
            },
        );
    }

    async fn create_sandbox(&mut self, pod: &Pod) -> Result<(), String> {
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        if host_network {
            self.record.pod_ip = Some(self.ctx.node.ip.clone());
        } else {
            // `ip`/`nft` run as child processes: off the async threads.
            let (network, uid) = (self.ctx.net.clone(), self.uid.clone());
            let net = tokio::task::spawn_blocking(move || network.setup_pod(&uid))
                .await
                .map_err(|e| format!("setting up the pod network: {e}"))?
                .map_err(|e| format!("setting up the pod network: {e}"))?;
            self.record.pod_ip = Some(net.ip.to_string());
            self.net_ns = Some(net.netns.clone());
            let ports = crate::podfiles::host_ports(pod);
            if !ports.is_empty() {
                self.ctx
                    .net
                    .set_host_ports(&self.uid, net.ip, &ports)
                    .map_err(|e| format!("mapping host ports: {e}"))?;
            }
        }
        self.save();
        let hostname = crate::podfiles::hostname(pod);
        tug_runtime::create_sandbox(&self.dir.join("ns"), &hostname)
            .map_err(|e| format!("creating the pod's IPC and UTS namespaces: {e}"))?;
        tug_runtime::create_pod_cgroup(
            &self.ctx.pod_cgroup(&self.uid),
            &crate::podfiles::pod_resources(pod),
        )
        .map_err(|e| format!("creating the pod cgroup: {e}"))?;
        self.ctx
            .volumes
            .setup(pod)
            .await
            .map_err(|e| format!("MountVolume.SetUp failed: {e}"))?;
        crate::podfiles::write(
            &self.dir,
            pod,
            self.record.pod_ip.as_deref().unwrap_or(""),
            &self.ctx.opts,
        )
        .map_err(|e| format!("writing the pod's /etc files: {e}"))?;
        Ok(())
    }

    /// SIGTERM every running container, SIGKILL what is left after `grace`, and wait
    /// for their exits to be recorded.
    async fn stop_everything(&mut self, grace: Duration) {
        self.stopping = true;
        self.probes.clear();
        let running = self.record.running();
        for (name, id) in &running {
            self.watch_exit(name, id);
            if let Err(e) = self.ctx.runtime.kill(id, libc::SIGTERM).await {
                tracing::debug!(container = %id, error = %e, "SIGTERM");
            }
        }
        let deadline = Instant::now() + grace;
        let mut killed = false;
        loop {
            let any_running = self
                .record
                .containers
                .values()
                .chain(self.record.init_containers.values())
                .any(|r| r.is_running());
            if !any_running {
                break;
            }
            let timeout = if killed {
                Instant::now() + Duration::from_secs(10)
            } else {
                deadline
            };
            match tokio::time::timeout_at(timeout, self.events.recv()).await {
                Ok(Some(Event::Exited { name, id, state })) => {
                    self.on_exit(&name, &id, state).await
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) if !killed => {
                    killed = true;
                    for (_, id) in &running {
                        let _ = self.ctx.runtime.kill(id, libc::SIGKILL).await;
                    }
                }
                Err(_) => {
                    tracing::warn!(pod = %self.record.name, "containers did not exit after SIGKILL");
                    break;
                }
            }
        }
        self.release().await;
    }

    /// Gives back what a finished pod holds: containers, rootfs, cgroup, namespaces,
    /// network and volumes. Logs and the record stay until the pod object is gone.
    async fn release(&mut self) {
        if self.record.released {
            return;
        }
        self.probes.clear();
        let ids: Vec<String> = self
            .record
            .containers
            .values()
            .chain(self.record.init_containers.values())
            .filter_map(|r| r.id.clone())
            .collect();
        for id in ids {
            let _ = self.ctx.runtime.remove(&id).await;
            let _ = tug_image::ImageStore::release_rootfs(&self.container_dir(&id));
        }
        if let Err(e) = self.ctx.volumes.teardown(&self.uid) {
            tracing::warn!(pod = %self.record.name, error = %e, "tearing down volumes");
        }
        if let Err(e) = tug_runtime::remove_sandbox(&self.dir.join("ns")) {
            tracing::warn!(pod = %self.record.name, error = %e, "removing the sandbox namespaces");
        }
        if let Err(e) = tug_runtime::remove_pod_cgroup(&self.ctx.pod_cgroup(&self.uid)) {
            tracing::warn!(pod = %self.record.name, error = %e, "removing the pod cgroup");
        }
        let (network, uid) = (self.ctx.net.clone(), self.uid.clone());
        let torn = tokio::task::spawn_blocking(move || network.teardown_pod(&uid)).await;
        if let Ok(Err(e)) = torn {
            tracing::warn!(pod = %self.record.name, error = %e, "tearing down the pod network");
        }
        self.net_ns = None;
        self.record.released = true;
        self.save();
    }

    async fn final_delete(&self, pod: &Pod) {
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.record.namespace);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            precondition_uid: pod.metadata.uid.clone(),
            ..Default::default()
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        match pods.delete(&name, &dp).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => tracing::warn!(pod = %name, error = %e, "final delete of the pod"),
        }
    }

    /// Removes the pod's directory and logs: nothing of it remains on the node.
    async fn forget(&mut self) {
        let logs = self
            .ctx
            .pod_log_dir(&self.record.namespace, &self.record.name, &self.uid);
        let _ = std::fs::remove_dir_all(&logs);
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "removing the pod dir");
            }
        }
        self.ctx.index.remove(&self.uid);
    }

    async fn push_status(&mut self, pod: &Pod) {
        self.ctx.index.update(&self.record);
        let mut status: PodStatus =
            status::pod_status(pod, &self.record, &self.ctx.node.ip, &Time::now());
        if let Some(msg) = &self.sandbox_error {
            status.message = Some(msg.clone());
        }
        let value = match serde_json::to_value(&status) {
            Ok(v) => v,
            Err(_) => return,
        };
        if self.last_status.as_ref() == Some(&value) {
            return;
        }
        // Merge patch: arrays (conditions, containerStatuses) are replaced whole; reason
        // and message are cleared explicitly when there is none.
        let mut patch = value.clone();
        if let Some(obj) = patch.as_object_mut() {
            for key in ["message", "reason"] {
                obj.entry(key).or_insert(serde_json::Value::Null);
            }
        }
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.record.namespace);
        let name = pod.metadata.name.clone().unwrap_or_default();
        match pods
            .patch_status(&name, PatchKind::Merge, &json!({"status": patch}))
            .await
        {
            Ok(_) => self.last_status = Some(value),
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!(pod = %name, error = %e, "updating pod status"),
        }
    }
}

/// `10s`, `1m20s`: how the kubelet prints a back-off.
fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m0s"),
        (m, s) => format!("{m}m{s}s"),
    }
}
