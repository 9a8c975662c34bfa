//! The namespace controller (placeholder until its owner lands it).

use crate::Context;

/// Runs the namespace controller until `ctx.shutdown` is cancelled.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    ctx.shutdown.cancelled().await;
    Ok(())
}
