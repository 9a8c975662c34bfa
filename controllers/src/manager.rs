//! The controller manager: waits to lead (Lease `tug-controllers`), then runs every
//! enabled controller on a shared [`Context`], restarting any that fails.

use crate::context::{Context, Options};
use futures::future::BoxFuture;
use futures::FutureExt;
use std::time::Duration;
use tug_client::{Client, LeaderElector, LeaseTiming};

/// Every controller this crate has, by its `--controllers` name.
pub const CONTROLLERS: &[&str] = &[
    "replicaset",
    "deployment",
    "job",
    "endpoints",
    "nodelifecycle",
    "garbagecollector",
    "namespace",
    "nodeipam",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown controller {0:?} in --controllers (known: {known})", known = CONTROLLERS.join(", "))]
    UnknownController(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What `tug-controllers` was asked to do.
#[derive(Clone)]
pub struct Config {
    pub client: Client,
    /// Only the holder of the Lease runs controllers.
    pub leader_elect: bool,
    pub lease_namespace: String,
    pub lease_name: String,
    /// This process's identity in the Lease (hostname + random suffix by default).
    pub identity: String,
    pub lease_timing: LeaseTiming,
    /// Names from [`CONTROLLERS`]; `*` or empty means all.
    pub controllers: Vec<String>,
    pub options: Options,
}

impl Config {
    pub fn new(client: Client) -> Self {
        Config {
            client,
            leader_elect: true,
            lease_namespace: "kube-system".into(),
            lease_name: "tug-controllers".into(),
            identity: default_identity(),
            lease_timing: LeaseTiming::default(),
            controllers: vec!["*".into()],
            options: Options::default(),
        }
    }

    /// The enabled controllers, validated. `-name` disables one (`*,-job`).
    pub fn enabled(&self) -> Result<Vec<&'static str>> {
        let mut all = false;
        let mut on = Vec::new();
        let mut off = Vec::new();
        for c in self
            .controllers
            .iter()
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
        {
            if c == "*" {
                all = true;
                continue;
            }
            let (list, name) = match c.strip_prefix('-') {
                Some(n) => (&mut off, n),
                None => (&mut on, c),
            };
            let known = CONTROLLERS
                .iter()
                .find(|k| **k == name)
                .ok_or_else(|| Error::UnknownController(name.to_string()))?;
            list.push(*known);
        }
        if self.controllers.iter().all(|c| c.trim().is_empty()) {
            all = true;
        }
        Ok(CONTROLLERS
            .iter()
            .copied()
            .filter(|c| (all || on.contains(c)) && !off.contains(c))
            .collect())
    }
}

/// `hostname_<random>`, so two copies on one host differ.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tug-controllers".into());
    format!("{host}_{:08x}", rand::random::<u32>())
}

fn start(name: &str, ctx: Context) -> BoxFuture<'static, anyhow::Result<()>> {
    match name {
        "replicaset" => crate::replicaset::run(ctx).boxed(),
        "deployment" => crate::deployment::run(ctx).boxed(),
        "job" => crate::job::run(ctx).boxed(),
        "endpoints" => crate::endpoints::run(ctx).boxed(),
        "nodelifecycle" => crate::nodelifecycle::run(ctx).boxed(),
        "garbagecollector" => crate::garbagecollector::run(ctx).boxed(),
        "namespace" => crate::namespace::run(ctx).boxed(),
        "nodeipam" => crate::nodeipam::run(ctx).boxed(),
        _ => async { Ok(()) }.boxed(),
    }
}

/// Runs `names` on `ctx` until `ctx.shutdown` is cancelled; a controller that fails
/// (or returns early) is restarted after a back-off.
pub async fn run_controllers(ctx: Context, names: Vec<&'static str>) {
    // Dropped (leadership lost, process stopping) or done: stop informers too.
    let _stop = ctx.shutdown.clone().drop_guard();
    let mut tasks = tokio::task::JoinSet::new();
    for name in names {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let mut backoff = Duration::from_secs(1);
            loop {
                tracing::info!(controller = name, "starting controller");
                let result = tokio::select! {
                    r = start(name, ctx.clone()) => r,
                    _ = ctx.shutdown.cancelled() => return,
                };
                if ctx.shutdown.is_cancelled() {
                    return;
                }
                match result {
                    Ok(()) => tracing::warn!(controller = name, "controller returned early; restarting"),
                    Err(e) => tracing::error!(controller = name, error = %format!("{e:#}"), "controller failed; restarting"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = ctx.shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Runs the controller manager until the process stops. With leader election, waits
/// for the Lease, runs every enabled controller while holding it, stops them all (and
/// their informers) when it is lost, and contends again.
pub async fn run(config: Config) -> Result<()> {
    let names = config.enabled()?;
    if !config.leader_elect {
        let ctx = Context::new(config.client.clone(), config.options.clone());
        run_controllers(ctx, names).await;
        return Ok(());
    }
    let elector = LeaderElector::new(
        config.client.clone(),
        &config.lease_namespace,
        &config.lease_name,
        &config.identity,
        config.lease_timing,
    );
    tracing::info!(lease = %format!("{}/{}", config.lease_namespace, config.lease_name), identity = %config.identity, "waiting to lead");
    elector
        .run(|token| {
            tracing::info!(identity = %config.identity, "leading: starting controllers");
            let ctx = Context::with_shutdown(config.client.clone(), config.options.clone(), token);
            run_controllers(ctx, names.clone())
        })
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_flag_selects_enables_and_disables() {
        let client = Client::new(tug_client::Config::new(
            "http://127.0.0.1:1".parse().unwrap(),
        ))
        .unwrap();
        let cases: [(&[&str], Option<Vec<&str>>); 5] = [
            (&["*"], Some(CONTROLLERS.to_vec())),
            (&[], Some(CONTROLLERS.to_vec())),
            (
                &["replicaset", "deployment"],
                Some(vec!["replicaset", "deployment"]),
            ),
            (
                &["*", "-job", "-namespace"],
                Some(vec![
                    "replicaset",
                    "deployment",
                    "endpoints",
                    "nodelifecycle",
                    "garbagecollector",
                    "nodeipam",
                ]),
            ),
            (&["replicaset", "nope"], None),
        ];
        for (flag, want) in cases {
            let mut c = Config::new(client.clone());
            c.controllers = flag.iter().map(|s| s.to_string()).collect();
            assert_eq!(c.enabled().ok(), want, "{flag:?}");
        }
    }
}
