//! tug-scheduler: parses flags and runs [`tug_scheduler::run`].

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "tug-scheduler", about = "Binds pending Pods to Nodes")]
struct Args {
    /// Kubeconfig to reach the apiserver (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Run several copies; only the holder of the Lease schedules.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    #[arg(long, default_value = "kube-system")]
    lease_namespace: String,
    /// This instance's identity in the Lease (default: hostname_random).
    #[arg(long)]
    id: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = tug_scheduler::Config {
        kubeconfig: args.kubeconfig,
        leader_elect: args.leader_elect,
        lease_namespace: args.lease_namespace,
        id: args.id.unwrap_or_else(tug_scheduler::default_id),
        ..Default::default()
    };
    tug_scheduler::run(config).await?;
    Ok(())
}
