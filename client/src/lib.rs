//! tug-client: a typed Kubernetes REST + watch client, kubeconfig loading, TLS, and the
//! informer machinery (watcher, cache, work queue, controller runner).
//!
//! # Layout
//!
//! - `config.rs`: kubeconfig files and the resolved [`Config`] (server, CA, identity,
//!   token, namespace).
//! - `tls.rs`: the rustls client config (ring provider).
//! - `client.rs`: [`Client`], the HTTP(S) connection pool, auth, and raw requests.
//! - `params.rs`: [`ApiResource`] (URL facts of a kind), [`ListParams`],
//!   [`DeleteParams`], [`PatchKind`].
//! - `api.rs`: [`Api<K>`] typed verbs (get/list/create/replace/patch/delete/watch and
//!   subresources) and [`DynamicApi`] on `serde_json::Value`.
//! - `error.rs`: [`Error`], with the server's `Status` for API errors.
//! - `watcher.rs`: [`watcher()`], list + watch as one stream of [`watcher::Event`]s with
//!   re-list on 410 Gone and back-off.
//! - `store.rs`: the cache, one [`Writer`] and many [`Store`] readers, keyed by
//!   [`ObjectKey`].
//! - `queue.rs`: [`WorkQueue`], deduplicating, delaying, rate-limited.
//! - `informer.rs`: [`Informer`], watcher -> cache -> keys into queues.
//! - `leader.rs`: [`LeaderElector`], Lease-based leader election.
//! - `events.rs`: [`EventRecorder`], core/v1 Events with repeat folding.
//! - `controller.rs`: [`Controller`] (informers + queue + workers) and
//!   [`controller::run`], workers reconciling keys, returning [`Action`].

mod api;
mod client;
pub mod config;
pub mod controller;
mod error;
pub mod events;
mod informer;
pub mod leader;
mod params;
mod queue;
mod store;
pub mod tls;
pub mod watcher;

pub use api::{Api, Deleted, DynamicApi};
pub use client::{Body, Client};
pub use config::{Config, Kubeconfig, KubeconfigExt, LoadOptions};
pub use controller::{Action, Controller};
pub use error::{Error, Result};
pub use events::EventRecorder;
pub use informer::Informer;
pub use leader::{LeaderElector, LeaseTiming};
pub use params::{ApiResource, DeleteParams, ListParams, PatchKind, PropagationPolicy};
pub use queue::{RateLimit, WorkQueue};
pub use store::{ObjectKey, Store, Writer};
pub use watcher::watcher;
