//! tug-controllers: the control loops that turn desired state into actual state
//! (kube-controller-manager's job), all run under one leader-election Lease.
//!
//! # Layout
//!
//! - `context.rs`: [`Context`] handed to every controller and its [`Options`].
//! - `informers.rs`: [`Informers`], one shared watch + cache per kind.
//! - `recorder.rs`: [`Recorder`], posting `Event`s about objects.
//! - `manager.rs`: [`run`] and its [`Config`]: leader election, then every enabled
//!   controller, each restarted with back-off if it fails.
//! - `expectations.rs`: creations/deletions a controller is waiting to see in its cache.
//! - `claim.rs`: adopting matching orphans and releasing dependents that stopped matching.
//! - `pod_control.rs`: pods from a template with owner references, availability, and
//!   the ranking of pods for deletion.
//! - `replicaset.rs`: the ReplicaSet controller.
//! - `deployment/`: the Deployment controller (rolling update, recreate, rollback,
//!   proportional scaling, progress conditions).
//! - `job.rs`, `endpoints.rs`, `nodelifecycle.rs`, `garbagecollector.rs`,
//!   `namespace.rs`, `nodeipam.rs`: the other controllers; each exposes
//!   `pub async fn run(ctx: Context) -> anyhow::Result<()>`.

pub mod claim;
mod context;
pub mod deployment;
pub mod endpoints;
pub mod expectations;
pub mod garbagecollector;
mod informers;
pub mod job;
mod manager;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod pod_control;
mod recorder;
pub mod replicaset;

pub use context::{Context, Options};
pub use informers::{Informers, SharedInformer};
pub use manager::{default_identity, run, run_controllers, Config, Error, CONTROLLERS};
pub use recorder::{EventType, Recorder};
