//! `Context`: what every controller gets from the manager (client, event recorder,
//! shared informers, options, shutdown signal).

use crate::informers::Informers;
use crate::recorder::Recorder;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tug_client::{controller, Action, Client, ObjectKey, WorkQueue};

/// Tunables shared by all controllers (kube-controller-manager's flags of the same names).
#[derive(Clone, Debug)]
pub struct Options {
    /// How long a node may go without a heartbeat before it is marked `Unknown`.
    pub node_monitor_grace_period: Duration,
    /// How long a node may take to post its first status after registering.
    pub node_startup_grace_period: Duration,
    /// How often the node lifecycle controller checks node heartbeats.
    pub node_monitor_period: Duration,
    /// How long pods stay on an unreachable node before they are evicted.
    pub pod_eviction_timeout: Duration,
    /// Default number of workers (concurrent reconciles) per controller.
    pub workers: usize,
    /// Workers of the ReplicaSet controller (`--concurrent-replicaset-syncs`).
    pub concurrent_replicaset_syncs: usize,
    /// Workers of the Deployment controller (`--concurrent-deployment-syncs`).
    pub concurrent_deployment_syncs: usize,
    /// How often a controller re-reconciles every object even without changes.
    pub resync_period: Duration,
    /// Pod network of the cluster, carved into node podCIDRs (`--cluster-cidr`).
    pub cluster_cidr: String,
    /// Prefix length of each node's podCIDR (`--node-cidr-mask-size`).
    pub node_cidr_mask_size: u8,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            node_monitor_grace_period: Duration::from_secs(40),
            node_startup_grace_period: Duration::from_secs(60),
            node_monitor_period: Duration::from_secs(5),
            pod_eviction_timeout: Duration::from_secs(300),
            workers: 5,
            concurrent_replicaset_syncs: 5,
            concurrent_deployment_syncs: 5,
            resync_period: Duration::from_secs(300),
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask_size: 24,
        }
    }
}

/// Handed to every controller's `run(ctx)`; cheap to clone.
///
/// A controller's `run` must return (promptly) once `shutdown` is cancelled, for
/// example when this process loses the leader Lease, and stop every task it spawned.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    /// Posts `Event`s about objects (`SuccessfulCreate`, `ScalingReplicaSet`, ...).
    pub recorder: Recorder,
    /// Cluster-wide informers shared by all controllers: one watch per kind.
    pub informers: Informers,
    pub options: Options,
    /// Cancelled when the controllers must stop.
    pub shutdown: CancellationToken,
}

impl Context {
    /// A context with its own informers and a fresh shutdown token.
    pub fn new(client: Client, options: Options) -> Self {
        Self::with_shutdown(client, options, CancellationToken::new())
    }

    /// A context whose controllers and informers stop when `shutdown` is cancelled
    /// (one per leadership term).
    pub fn with_shutdown(client: Client, options: Options, shutdown: CancellationToken) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), "tug-controllers"),
            informers: Informers::new(client.clone(), shutdown.clone()),
            client,
            options,
            shutdown,
        }
    }

    /// Waits for `caches_ready`, then runs `reconcile` on `workers` workers for the keys
    /// of `queue` until `shutdown` is cancelled, which shuts the queue down. Returns at
    /// once if `shutdown` comes first: reconciling against a cold cache would act on a
    /// partial view (create pods that exist, miss owners that do).
    pub(crate) async fn run_workers<F, Fut, E>(
        &self,
        queue: WorkQueue<ObjectKey>,
        caches_ready: impl Future<Output = ()>,
        workers: usize,
        reconcile: F,
    ) where
        F: Fn(ObjectKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        tokio::select! {
            _ = caches_ready => {}
            _ = self.shutdown.cancelled() => return,
        }
        let runner = controller::run_keys(queue.clone(), reconcile, workers);
        tokio::select! {
            _ = runner => {}
            _ = self.shutdown.cancelled() => queue.shutdown(),
        }
    }
}
