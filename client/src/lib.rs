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

mod api;
mod client;
pub mod config;
mod error;
mod params;
pub mod tls;

pub use api::{Api, Deleted, DynamicApi};
pub use client::{Body, Client};
pub use config::{Config, Kubeconfig, KubeconfigExt, LoadOptions};
pub use error::{Error, Result};
pub use params::{ApiResource, DeleteParams, ListParams, PatchKind, PropagationPolicy};
