//! tug-ctl: the `tug` command line, kubectl's verbs against a tug (or Kubernetes) cluster.
//!
//! # Layout
//!
//! - `lib.rs`: global flags ([`Cli`]), the shared [`Ctx`], and [`run`].
//! - One file per verb: `apply.rs`, `get.rs`, `delete.rs`, `logs.rs`, `exec.rs` (exec's
//!   `Dialer`, a raw HTTP/1.1 connection for streams and WebSockets, serves logs too).
//! - Verbs beyond those: `create.rs`, `describe.rs`, `scale.rs`, `rollout.rs`,
//!   `cordon.rs` (cordon/uncordon), `drain.rs`, `events.rs`, `version.rs`,
//!   `completion.rs`, `config.rs` (`tug config ...`: kubeconfig contexts, no cluster).
//! - `cluster/`: `tug cluster ...`, local multi-node clusters (no kubeconfig needed).
//! - `jsonpath.rs`: kubectl's JSONPath templates and custom columns for `get -o`.
//! - `style.rs`: colours, on a terminal only.
//! - `kinds.rs`: names users type (`po`, `deploy`, `deployments.apps`) and manifest
//!   `apiVersion`/`kind` to REST facts, with each kind's strict decoder.
//! - `manifest.rs`: reading files/dirs/stdin, splitting on `---`, local decoding with
//!   errors naming file, document and field.
//! - `printer.rs`: Table, YAML, JSON and name output.

pub mod apply;
pub mod cluster;
pub mod completion;
pub mod config;
pub mod cordon;
pub mod create;
pub mod delete;
pub mod describe;
pub mod drain;
pub mod events;
pub mod exec;
pub mod get;
pub mod jsonpath;
pub mod kinds;
pub mod logs;
pub mod manifest;
pub mod printer;
pub mod rollout;
pub mod scale;
pub mod style;
pub mod version;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use tug_client::{Client, Config, LoadOptions};

/// tug controls a tug cluster: the kubectl of tug.
#[derive(Debug, Parser)]
#[command(name = "tug", version, about)]
pub struct Cli {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace for this request (default: the context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from files (`-f FILE|DIR|-`).
    Apply(apply::Args),
    /// Show objects as a table, YAML, JSON or names.
    Get(get::Args),
    /// Delete objects by kind and name, or those in files.
    Delete(delete::Args),
    /// Create objects from files (never update), or a Deployment/Namespace by name.
    Create(create::Args),
    /// Show an object in detail, with its Events.
    Describe(describe::Args),
    /// Set the replicas of a Deployment or ReplicaSet.
    Scale(scale::Args),
    /// Manage a Deployment's rollout: status, history, undo, restart, pause, resume.
    Rollout(rollout::Args),
    /// Mark a node unschedulable.
    Cordon(cordon::Args),
    /// Mark a node schedulable again.
    Uncordon(cordon::Args),
    /// Cordon a node and evict its pods.
    Drain(drain::Args),
    /// List events, oldest first.
    Events(events::Args),
    /// Print the client and server versions.
    Version(version::Args),
    /// Print a shell completion script (bash, zsh or fish).
    Completion(completion::Args),
    /// Show or change the kubeconfig: contexts, current context, a redacted view.
    Config(config::Args),
    /// Local clusters: create, list, kubeconfig, stop-node, start-node, delete.
    Cluster(cluster::Args),
    /// Print (or follow with -f) the log of a container in a pod.
    Logs(logs::Args),
    /// Run a command in a container: `tug exec [-i] [-t] POD [-c C] -- CMD...`.
    Exec(exec::Args),
}

/// What every verb needs: the client, the namespace, and where to write.
pub struct Ctx<'a> {
    pub client: Client,
    /// `-n`, else the kubeconfig context's namespace, else `default`.
    pub namespace: String,
    /// Whether `-n` was given (a manifest's own namespace must then agree with it).
    pub namespace_explicit: bool,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

impl Ctx<'_> {
    /// Prints an `error: ...` line; the verb goes on with the next object.
    pub fn error(&mut self, message: impl std::fmt::Display) {
        let _ = writeln!(self.err, "error: {message}");
    }
}

/// Runs the CLI on `args` (including the program name) and returns the exit code:
/// 0 when everything worked, 1 otherwise.
pub async fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                write!(err, "{text}")
            } else {
                write!(out, "{text}")
            };
            return code;
        }
    };
    match execute(cli, out, err).await {
        Ok(true) => 0,
        Ok(false) => 1,
        // `tug get pods | head -1`: the reader left; stop quietly like a process killed
        // by SIGPIPE would (128 + 13).
        Err(e) if is_broken_pipe(&e) => 141,
        // `tug exec`: the remote command's exit code is ours, as with kubectl.
        Err(e) if e.downcast_ref::<exec::RemoteExit>().is_some() => {
            let _ = writeln!(err, "{e}");
            e.downcast_ref::<exec::RemoteExit>().map_or(1, |x| x.0)
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            1
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Returns `Ok(false)` when the verb reported per-object failures itself.
async fn execute(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<bool> {
    // Verbs that need no cluster run before the kubeconfig is turned into a client, so
    // they work with an unreachable server or a broken context.
    match &cli.command {
        Command::Config(args) => return config::run(&cli, args, out),
        Command::Completion(args) => return completion::run(args, out),
        // The client version prints even when the server cannot be reached.
        Command::Version(args) => return version::run(&cli, args, out).await,
        Command::Cluster(args) => return cluster::run(args, out, err).await,
        _ => {}
    }
    let (client, namespace) = connect(&cli)?;
    let mut ctx = Ctx {
        client,
        namespace,
        namespace_explicit: cli.namespace.is_some(),
        out,
        err,
    };
    let ok = match &cli.command {
        Command::Apply(args) => apply::run(&mut ctx, args).await?,
        Command::Get(args) => get::run(&mut ctx, args).await?,
        Command::Delete(args) => delete::run(&mut ctx, args).await?,
        Command::Create(args) => create::run(&mut ctx, args).await?,
        Command::Describe(args) => describe::run(&mut ctx, args).await?,
        Command::Scale(args) => scale::run(&mut ctx, args).await?,
        Command::Rollout(args) => rollout::run(&mut ctx, args).await?,
        Command::Cordon(args) => cordon::run(&mut ctx, args, true).await?,
        Command::Uncordon(args) => cordon::run(&mut ctx, args, false).await?,
        Command::Drain(args) => drain::run(&mut ctx, args).await?,
        Command::Events(args) => events::run(&mut ctx, args).await?,
        // Handled above, before connecting.
        Command::Config(_) | Command::Completion(_) | Command::Version(_) | Command::Cluster(_) => {
            true
        }
        Command::Logs(args) => logs::run(&mut ctx, &cli, args).await?,
        Command::Exec(args) => exec::run(&mut ctx, &cli, args).await?,
    };
    ctx.out.flush()?;
    Ok(ok)
}

/// The client and namespace of the kubeconfig context the global flags select.
pub fn connect(cli: &Cli) -> anyhow::Result<(Client, String)> {
    let config = Config::load(&LoadOptions {
        kubeconfig: cli.kubeconfig.clone(),
        context: cli.context.clone(),
    })
    .context("loading the kubeconfig")?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.namespace.clone());
    let client = Client::new(config).context("building the API client")?;
    Ok((client, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed");
        let e = anyhow::Error::from(io).context("printing the table");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[tokio::test]
    async fn usage_errors_exit_1_and_help_exits_0() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run(["tug", "get"], &mut out, &mut err).await, 1);
        assert!(String::from_utf8_lossy(&err).contains("<KIND>"));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run(["tug", "apply", "--help"], &mut out, &mut err).await, 0);
        assert!(String::from_utf8_lossy(&out).contains("--filename"));
    }
}
