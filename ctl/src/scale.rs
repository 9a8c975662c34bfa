//! `tug scale deployment/web --replicas=N [--current-replicas=M]`: sets replicas through
//! the `scale` subresource of Deployments and ReplicaSets.

use crate::apply::server_error;
use crate::kinds;
use crate::Ctx;
use tug_client::DynamicApi;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `deployment/NAME`, `rs/NAME`, or `deployment NAME...`.
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// The new number of replicas.
    #[arg(long, required = true, value_parser = clap::value_parser!(i32).range(0..))]
    pub replicas: i32,
    /// Only scale when the current replicas are this many (a precondition).
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub current_replicas: Option<i32>,
}

pub async fn run(ctx: &mut Ctx<'_>, args: &Args) -> anyhow::Result<bool> {
    let (kind, names) = kinds::targets(&args.targets).map_err(anyhow::Error::msg)?;
    if !matches!(kind.kind, "Deployment" | "ReplicaSet") {
        anyhow::bail!(
            "cannot scale {}: only deployments and replicasets have a scale subresource",
            kind.display_plural()
        );
    }
    if names.is_empty() {
        anyhow::bail!(
            "resource(s) were provided, but no name was specified: tug scale {}/NAME --replicas=N",
            kind.singular
        );
    }
    let api = DynamicApi::dynamic(
        ctx.client.clone(),
        kind.api_resource(),
        Some(&ctx.namespace),
    );
    let mut ok = true;
    for name in &names {
        if let Some(want) = args.current_replicas {
            match api.get_scale(name).await {
                Ok(scale) => {
                    let have = scale
                        .pointer("/spec/replicas")
                        .and_then(serde_json::Value::as_i64)
                        .unwrap_or(0);
                    if have != i64::from(want) {
                        ctx.error(format_args!(
                            "{}/{name}: expected replicas to be {want}, was {have}; nothing changed",
                            kind.display()
                        ));
                        ok = false;
                        continue;
                    }
                }
                Err(e) => {
                    writeln!(ctx.err, "{}", server_error(&e))?;
                    ok = false;
                    continue;
                }
            }
        }
        match api.scale(name, args.replicas).await {
            Ok(_) => writeln!(ctx.out, "{}/{name} scaled", kind.display())?,
            Err(e) => {
                writeln!(ctx.err, "{}", server_error(&e))?;
                ok = false;
            }
        }
    }
    Ok(ok)
}
