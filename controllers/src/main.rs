//! tug-controllers: parses flags and runs [`tug_controllers::run`].

use anyhow::Context as _;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use tug_client::{Client, LoadOptions};

#[derive(Parser)]
#[command(
    name = "tug-controllers",
    about = "Runs tug's controllers (ReplicaSet, Deployment, Job, ...)"
)]
struct Args {
    /// Kubeconfig to reach the apiserver (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Run several copies; only the holder of the Lease runs controllers.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    #[arg(long, default_value = "kube-system")]
    lease_namespace: String,
    #[arg(long, default_value = "tug-controllers")]
    lease_name: String,
    /// This instance's identity in the Lease (default: hostname_random).
    #[arg(long)]
    id: Option<String>,
    /// Controllers to run: `*` for all, names to pick, `-name` to leave one out
    /// (replicaset, deployment, job, endpoints, nodelifecycle, garbagecollector, namespace,
    /// nodeipam).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    controllers: Vec<String>,
    /// How long a node may miss heartbeats before it is marked NotReady/Unknown.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// How long a new node may take to post its first status.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    node_startup_grace_period: Duration,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: Duration,
    /// How long pods stay bound to an unreachable node before they are evicted.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pod_eviction_timeout: Duration,
    /// Workers per controller (where no specific flag exists).
    #[arg(long, default_value_t = 5)]
    concurrent_syncs: usize,
    #[arg(long, default_value_t = 5)]
    concurrent_replicaset_syncs: usize,
    #[arg(long, default_value_t = 5)]
    concurrent_deployment_syncs: usize,
    /// The pod network, carved into one podCIDR per node by the nodeipam controller.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// Prefix length of each node's podCIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
}

/// `300ms`, `40s`, `5m`, `1h`, or bare seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration {s:?}: use a number with ms, s, m or h (e.g. 40s)")
    })?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let client_config = tug_client::Config::load(&LoadOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: None,
    })
    .context("loading the kubeconfig (set --kubeconfig or $KUBECONFIG)")?;
    let client = Client::new(client_config).context("building the API client")?;
    let mut config = tug_controllers::Config::new(client);
    config.leader_elect = args.leader_elect;
    config.lease_namespace = args.lease_namespace;
    config.lease_name = args.lease_name;
    config.identity = args.id.unwrap_or_else(tug_controllers::default_identity);
    config.controllers = args.controllers;
    config.options = tug_controllers::Options {
        node_monitor_grace_period: args.node_monitor_grace_period,
        node_startup_grace_period: args.node_startup_grace_period,
        node_monitor_period: args.node_monitor_period,
        pod_eviction_timeout: args.pod_eviction_timeout,
        workers: args.concurrent_syncs,
        concurrent_replicaset_syncs: args.concurrent_replicaset_syncs,
        concurrent_deployment_syncs: args.concurrent_deployment_syncs,
        cluster_cidr: args.cluster_cidr,
        node_cidr_mask_size: args.node_cidr_mask_size,
        ..Default::default()
    };
    tokio::select! {
        r = tug_controllers::run(config) => r.context("running the controllers")?,
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_kube_controller_manager_flags() {
        let cases = [
            ("40s", Some(Duration::from_secs(40))),
            ("5m", Some(Duration::from_secs(300))),
            ("1h", Some(Duration::from_secs(3600))),
            ("250ms", Some(Duration::from_millis(250))),
            ("300", Some(Duration::from_secs(300))),
            ("5 minutes", None),
            ("s", None),
            ("-1s", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input).ok(), want, "{input}");
        }
    }
}
