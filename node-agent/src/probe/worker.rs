//! [`ProbeWorker`]: one probe of one container attempt on its schedule, with the
//! kubelet's thresholds, startup gating and hold-after-failure, publishing a
//! [`ProbeState`] through a watch channel.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tug_proto::core::v1::{ContainerPort, Probe};
use tug_runtime::Runtime;

use super::{probe_timeout, probe_with_timeout, ProbeOutcome, ProbeTarget, MAX_PROBE_RETRIES};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// `Liveness`, `Readiness` or `Startup`, as in the kubelet's event messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// The thresholded result of a probe.
///
/// How the integrator reads it, matching the kubelet: a container is *ready* only when
/// its readiness state is `Success` (no readiness probe: ready once started); it is
/// *started* when its startup state is `Success` (no startup probe: started at once);
/// a liveness or startup `Failure` means kill and restart the container per its
/// restartPolicy (the worker then holds: a new container attempt gets a new worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeState {
    /// No verdict yet (initial delay, waiting for startup, or not enough results).
    Unknown,
    Success,
    Failure {
        message: String,
    },
}

/// Every unsuccessful probe attempt, for `Unhealthy` events (the kubelet records one
/// per failed probe, not per threshold crossing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub kind: ProbeKind,
    pub outcome: ProbeOutcome,
}

impl ProbeReport {
    /// The kubelet's event message, e.g. `Liveness probe failed: HTTP probe failed with
    /// statuscode: 500` or `Readiness probe errored: port http not found`. Use with
    /// reason `Unhealthy`, type Warning.
    pub fn message(&self) -> String {
        match &self.outcome {
            ProbeOutcome::Success => format!("{} probe succeeded", self.kind.as_str()),
            ProbeOutcome::Failure(m) => format!("{} probe failed: {m}", self.kind.as_str()),
            ProbeOutcome::Error(m) => format!("{} probe errored: {m}", self.kind.as_str()),
        }
    }
}

/// When and how often a probe runs, and how many results in a row flip its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeTiming {
    /// The probe's fields with Kubernetes' defaults (delay 0, period 10 s, timeout 1 s,
    /// success 1, failure 3). Liveness and startup probes always use a success
    /// threshold of 1, as the API enforces.
    pub fn from_probe(probe: &Probe, kind: ProbeKind) -> ProbeTiming {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        let success = match kind {
            ProbeKind::Readiness => probe.success_threshold.unwrap_or(1).max(1) as u32,
            ProbeKind::Liveness | ProbeKind::Startup => 1,
        };
        ProbeTiming {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: probe_timeout(probe),
            success_threshold: success,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }

    /// For a container that has already been running for `running` (re-adopted after an
    /// agent restart): the initial delay counts from the container's start.
    pub fn after_running_for(mut self, running: Duration) -> ProbeTiming {
        self.initial_delay = self.initial_delay.saturating_sub(running);
        self
    }
}

/// Owned [`ProbeTarget`] parts, for a worker that outlives its caller's borrows.
#[derive(Clone)]
pub struct ProbeContext {
    pub pod_ip: String,
    pub ports: Vec<ContainerPort>,
    pub container_id: String,
    pub runtime: Arc<dyn Runtime>,
}

impl ProbeContext {
    pub fn target(&self) -> ProbeTarget<'_> {
        ProbeTarget {
            pod_ip: &self.pod_ip,
            ports: &self.ports,
            container_id: &self.container_id,
            runtime: &*self.runtime,
        }
    }
}

/// Optional wiring of a worker.
#[derive(Default)]
pub struct WorkerOptions {
    /// For liveness and readiness: the startup worker's state. The probe does not run
    /// (and its initial delay does not elapse) until this is `Success`.
    pub started: Option<watch::Receiver<ProbeState>>,
    /// Receives every non-successful attempt (for events).
    pub reports: Option<mpsc::UnboundedSender<ProbeReport>>,
}

/// Runs one probe of one container attempt until dropped.
pub struct ProbeWorker {
    kind: ProbeKind,
    state: watch::Receiver<ProbeState>,
    task: JoinHandle<()>,
}

impl ProbeWorker {
    /// Starts probing with the probe's own timing.
    pub fn start(kind: ProbeKind, probe: Probe, ctx: ProbeContext, opts: WorkerOptions) -> Self {
        let timing = ProbeTiming::from_probe(&probe, kind);
        ProbeWorker::start_with_timing(kind, probe, timing, ctx, opts)
    }

    /// Starts probing with explicit timing (re-adopted containers, tests).
    pub fn start_with_timing(
        kind: ProbeKind,
        probe: Probe,
        timing: ProbeTiming,
        ctx: ProbeContext,
        opts: WorkerOptions,
    ) -> Self {
        let (tx, rx) = watch::channel(ProbeState::Unknown);
        let task = tokio::spawn(run(kind, probe, timing, ctx, opts, tx));
        ProbeWorker {
            kind,
            state: rx,
            task,
        }
    }

    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// The current state.
    pub fn state(&self) -> ProbeState {
        self.state.borrow().clone()
    }

    /// A receiver to await changes on (e.g. in the pod worker's select loop, or as the
    /// `started` gate of the container's liveness and readiness workers).
    pub fn subscribe(&self) -> watch::Receiver<ProbeState> {
        self.state.clone()
    }
}

impl Drop for ProbeWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    kind: ProbeKind,
    probe: Probe,
    timing: ProbeTiming,
    ctx: ProbeContext,
    opts: WorkerOptions,
    tx: watch::Sender<ProbeState>,
) {
    let created = Instant::now();
    if kind != ProbeKind::Startup {
        if let Some(mut started) = opts.started {
            if started
                .wait_for(|s| *s == ProbeState::Success)
                .await
                .is_err()
            {
                return; // The startup worker is gone: so is the container attempt.
            }
        }
    }
    tokio::time::sleep_until(created + timing.initial_delay).await;

    let mut ticker = tokio::time::interval(timing.period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last: Option<bool> = None;
    let mut run_length: u32 = 0;
    loop {
        ticker.tick().await;
        let mut outcome = ProbeOutcome::Error(String::new());
        for _ in 0..MAX_PROBE_RETRIES {
            outcome = probe_with_timeout(&probe, &ctx.target(), timing.timeout).await;
            if !matches!(outcome, ProbeOutcome::Error(_)) {
                break;
            }
        }
        if outcome != ProbeOutcome::Success {
            if let Some(reports) = &opts.reports {
                let _ = reports.send(ProbeReport {
                    kind,
                    outcome: outcome.clone(),
                });
            }
        }
        let (ok, message) = match outcome {
            ProbeOutcome::Success => (true, String::new()),
            ProbeOutcome::Failure(m) => (false, m),
            // A prober error says nothing about the container: throw it away.
            ProbeOutcome::Error(_) => continue,
        };
        if last == Some(ok) {
            run_length = run_length.saturating_add(1);
        } else {
            last = Some(ok);
            run_length = 1;
        }
        let threshold = if ok {
            timing.success_threshold
        } else {
            timing.failure_threshold
        };
        if run_length < threshold {
            continue;
        }
        let new = if ok {
            ProbeState::Success
        } else {
            ProbeState::Failure { message }
        };
        tx.send_if_modified(|s| {
            let changed = *s != new;
            *s = new;
            changed
        });
        let done = match kind {
            // Started (the kubelet stops running startup probes) or failed for good.
            ProbeKind::Startup => true,
            // The container will be restarted; the next attempt gets a new worker.
            ProbeKind::Liveness => !ok,
            ProbeKind::Readiness => false,
        };
        if done {
            // Keep the sender (and so the published state) alive until dropped.
            std::future::pending::<()>().await;
        }
    }
}
