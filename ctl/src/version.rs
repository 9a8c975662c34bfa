//! `tug version [--client] [-o json|yaml]`: this binary's version and the server's
//! `/version`.

use crate::{printer, Cli};
use anyhow::Context as _;
use serde_json::{json, Value};
use std::io::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Json,
    Yaml,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the client version: no kubeconfig or server needed.
    #[arg(long)]
    pub client: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
}

/// The client's version in the shape of the server's `/version`.
pub fn client_info() -> Value {
    json!({
        "major": env!("CARGO_PKG_VERSION_MAJOR"),
        "minor": env!("CARGO_PKG_VERSION_MINOR"),
        "gitVersion": format!("v{}", env!("CARGO_PKG_VERSION")),
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

/// Prints the client version, then (unless `--client`) asks the server. The client line
/// is printed first so it is there even when the server is unreachable.
pub async fn run(cli: &Cli, args: &Args, out: &mut dyn Write) -> anyhow::Result<bool> {
    let client = client_info();
    if args.client {
        print(out, args.output, &client, None)?;
        return Ok(true);
    }
    if args.output.is_none() {
        print(out, None, &client, None)?;
    }
    let server = async {
        let (api, _) = crate::connect(cli)?;
        let bytes = api
            .raw_get("/version", None)
            .await
            .context("asking the server for its version")?;
        let v: Value = serde_json::from_slice(&bytes).context("decoding the server's /version")?;
        anyhow::Ok(v)
    }
    .await?;
    match args.output {
        None => writeln!(out, "Server Version: {}", git_version(&server))?,
        Some(_) => print(out, args.output, &client, Some(&server))?,
    }
    Ok(true)
}

fn git_version(v: &Value) -> &str {
    v.get("gitVersion").and_then(Value::as_str).unwrap_or("")
}

fn print(
    out: &mut dyn Write,
    format: Option<Output>,
    client: &Value,
    server: Option<&Value>,
) -> anyhow::Result<()> {
    let mut both = json!({ "clientVersion": client });
    if let Some(server) = server {
        both["serverVersion"] = server.clone();
    }
    match format {
        None => writeln!(out, "Client Version: {}", git_version(client))?,
        Some(Output::Json) => write!(out, "{}", printer::json(&both))?,
        Some(Output::Yaml) => write!(out, "{}", printer::yaml(&both))?,
    }
    Ok(())
}
