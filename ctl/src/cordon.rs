//! `tug cordon NODE...` and `tug uncordon NODE...`: set or clear a node's
//! `spec.unschedulable`.

use crate::apply::server_error;
use crate::kinds;
use crate::Ctx;
use serde_json::{json, Value};
use tug_client::{DynamicApi, PatchKind};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The nodes to change.
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

pub async fn run(ctx: &mut Ctx<'_>, args: &Args, cordon: bool) -> anyhow::Result<bool> {
    let mut ok = true;
    for node in &args.nodes {
        match set_unschedulable(ctx, node, cordon).await {
            Ok(line) => writeln!(ctx.out, "{line}")?,
            Err(message) => {
                writeln!(ctx.err, "{message}")?;
                ok = false;
            }
        }
    }
    Ok(ok)
}

/// Cordons (or uncordons) one node; returns kubectl's line (`node/n1 cordoned`,
/// `node/n1 already cordoned`) or the error to print.
pub async fn set_unschedulable(ctx: &Ctx<'_>, node: &str, cordon: bool) -> Result<String, String> {
    let kind = kinds::resolve("nodes").map_err(|e| e.to_string())?;
    let api = DynamicApi::dynamic(ctx.client.clone(), kind.api_resource(), None);
    let n = api.get(node).await.map_err(|e| server_error(&e))?;
    let is = n.pointer("/spec/unschedulable") == Some(&Value::Bool(true));
    let verb = if cordon { "cordoned" } else { "uncordoned" };
    if is == cordon {
        return Ok(format!("node/{node} already {verb}"));
    }
    // Clearing removes the field, as kubectl leaves it.
    let value = if cordon {
        Value::Bool(true)
    } else {
        Value::Null
    };
    api.patch(
        node,
        PatchKind::Merge,
        &json!({"spec": {"unschedulable": value}}),
    )
    .await
    .map_err(|e| server_error(&e))?;
    Ok(format!("node/{node} {verb}"))
}
