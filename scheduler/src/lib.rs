//! tug-scheduler: binds pending Pods to Nodes through filter and score plugins.
//!
//! # Layout
//!
//! - `framework.rs`: the extension points ([`FilterPlugin`], [`ScorePlugin`],
//!   [`BindPlugin`]), [`Status`] and its [`Code`], [`CycleState`], [`Profile`].
//! - `plugins/`: one module per plugin (NodeName, NodeUnschedulable, TaintToleration,
//!   NodeAffinity, NodePorts, NodeResourcesFit, InterPodAntiAffinity,
//!   NodeResourcesLeastAllocated, NodeResourcesBalancedAllocation, SelectorSpread,
//!   DefaultBinder) and [`plugins::default_profile`].
//! - `resources.rs`: [`Resources`] and what a pod requests.
//! - `node_info.rs`: [`NodeInfo`], a node with its pods and their requests.
//! - `cache.rs`: every node with its bound and assumed pods.
//! - `queue.rs`: the scheduling queue (active, back-off, unschedulable).
//! - `cycle.rs`: one scheduling cycle (adaptive filtering, scoring, the FitError message).
//! - `scheduler.rs`: informers -> cache/queue, the scheduling loop, async binding,
//!   FailedScheduling reporting.
//! - `lib.rs`: [`Config`] and [`run`], with leader election.

mod cache;
pub mod cycle;
pub mod framework;
pub mod node_info;
pub mod plugins;
mod queue;
pub mod resources;
mod scheduler;

pub use framework::{BindPlugin, Code, CycleState, FilterPlugin, Profile, ScorePlugin, Status};
pub use node_info::NodeInfo;
pub use resources::Resources;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tug_client::events::EventRecorder;
use tug_client::leader::{LeaderElector, LeaseTiming};
use tug_client::{watcher, Api, Client, Informer, WorkQueue};
use tug_proto::core::v1::{Node, Pod};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting to the apiserver: {0}")]
    Client(#[from] tug_client::Error),
    #[error("loading the kubeconfig (pass --kubeconfig or set KUBECONFIG): {0}")]
    Kubeconfig(#[from] tug_client::config::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to run the scheduler.
#[derive(Clone, Debug)]
pub struct Config {
    /// `None`: `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Only the holder of the Lease `lease_namespace/lease_name` schedules.
    pub leader_elect: bool,
    pub lease_namespace: String,
    pub lease_name: String,
    pub lease_timing: LeaseTiming,
    /// This instance's identity in the Lease (and in its Events).
    pub id: String,
    /// Pods with this `spec.schedulerName` (or none) are ours.
    pub scheduler_name: String,
    /// Bindings in flight at once.
    pub max_binds_in_flight: usize,
    /// A `Scheduled` Normal event per bound pod, as kube-scheduler writes.
    pub record_scheduled_events: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kubeconfig: None,
            leader_elect: true,
            lease_namespace: "kube-system".into(),
            lease_name: "tug-scheduler".into(),
            lease_timing: LeaseTiming::default(),
            id: default_id(),
            scheduler_name: "default-scheduler".into(),
            max_binds_in_flight: 64,
            record_scheduled_events: true,
        }
    }
}

/// `hostname_<random>`, like kube-scheduler's default identity.
pub fn default_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "tug-scheduler".into());
    format!("{host}_{:08x}", rand::random::<u32>())
}

/// Connects with `config.kubeconfig` and runs until the future is dropped.
pub async fn run(config: Config) -> Result<()> {
    let client = match &config.kubeconfig {
        Some(path) => Client::new(tug_client::Config::from_kubeconfig_file(path)?)?,
        None => Client::infer()?,
    };
    run_with_client(client, config).await
}

/// Runs the scheduler on `client` until the future is dropped (which stops every task
/// it started).
pub async fn run_with_client(client: Client, config: Config) -> Result<()> {
    let mut tasks = JoinSet::new();
    let pod_keys = WorkQueue::default();
    let node_keys = WorkQueue::default();
    let mut pod_informer =
        Informer::new(Api::<Pod>::all(client.clone()), watcher::Config::default());
    pod_informer.enqueue_into(pod_keys.clone());
    let mut node_informer =
        Informer::new(Api::<Node>::all(client.clone()), watcher::Config::default());
    node_informer.enqueue_into(node_keys.clone());

    let sched = Arc::new(scheduler::Scheduler {
        client: client.clone(),
        profile: plugins::default_profile(client.clone()),
        cache: Mutex::new(cache::Cache::default()),
        queue: queue::SchedulingQueue::default(),
        pods: pod_informer.store(),
        nodes: node_informer.store(),
        recorder: EventRecorder::new(
            client.clone(),
            &config.scheduler_name,
            Some(config.id.clone()),
        ),
        binds: Arc::new(tokio::sync::Semaphore::new(
            config.max_binds_in_flight.max(1),
        )),
        config: config.clone(),
    });
    tasks.spawn(pod_informer.run());
    tasks.spawn(node_informer.run());
    tasks.spawn(sched.clone().dispatch_pods(pod_keys.clone()));
    tasks.spawn(sched.clone().dispatch_nodes(node_keys.clone()));

    if config.leader_elect {
        let elector = LeaderElector::new(
            client,
            &config.lease_namespace,
            &config.lease_name,
            &config.id,
            config.lease_timing,
        );
        elector.run(|stop| sched.clone().schedule_until(stop)).await;
    } else {
        sched.clone().schedule_until(CancellationToken::new()).await;
    }
    pod_keys.shutdown();
    node_keys.shutdown();
    sched.queue.close();
    Ok(())
}
