//! Runs the scheduler benchmark: `cargo run --release -p tug-e2e --example sched_bench -- NODES PODS`.

#[path = "../src/sched_bench.rs"]
mod sched_bench;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let nodes = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let pods = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    sched_bench::run(nodes, pods).await
}
