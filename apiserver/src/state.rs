//! What every request handler shares: the store, authentication data, watch settings,
//! metrics and the shutdown signal.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;
use tug_pki::TokenFile;

use crate::metrics::Metrics;
use crate::rest::WatchConfig;

pub struct AppState {
    pub store: tug_store::Store,
    /// Bearer tokens; `None` = tokens are not accepted.
    pub tokens: Option<TokenFile>,
    pub watch: WatchConfig,
    pub metrics: Metrics,
    /// Flips to `true` once on shutdown; long-running tasks (watches) end on it.
    pub shutdown: watch::Sender<bool>,
    /// The initial namespaces exist (`/readyz`).
    pub ready: AtomicBool,
    /// Where pods reach this replica (the `kubernetes` Endpoints).
    pub advertise: Option<std::net::SocketAddr>,
    /// TLS towards node agents (logs, exec); `None` = those answer 503.
    pub kubelet_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl AppState {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}
