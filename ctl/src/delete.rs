//! `tug delete KIND NAME... | -f FILE`: delete objects, printing `pod "x" deleted`.

use crate::apply::namespace_for;
use crate::kinds::{self, KindInfo};
use crate::manifest::{self, Mode};
use crate::Ctx;
use std::time::Duration;
use tug_client::{DeleteParams, Deleted, DynamicApi, ListParams, PropagationPolicy};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Cascade {
    Background,
    Orphan,
    Foreground,
    /// kubectl's old spelling of `background`.
    True,
    /// kubectl's old spelling of `orphan`.
    False,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kind (`pods`, `deploy`, ...), followed by names; or `KIND/NAME` arguments.
    pub kind: Option<String>,
    pub names: Vec<String>,
    /// Delete the objects described in these files, directories or `-` (repeatable).
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Delete the objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete every object of the kind in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Seconds the object gets to terminate (0: immediately); the kind's default if unset.
    #[arg(long, allow_negative_numbers = true)]
    pub grace_period: Option<i64>,
    /// What happens to dependents (the ReplicaSets of a Deployment, ...).
    #[arg(long, value_enum, default_value = "background")]
    pub cascade: Cascade,
    /// Treat a missing object as deleted.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Wait until objects that are terminating (grace period, finalizers) are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// Give up waiting after this many seconds (0: wait as long as it takes).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
}

impl Args {
    fn params(&self) -> DeleteParams {
        DeleteParams {
            // kubectl: a negative grace period means "use the default".
            grace_period_seconds: self.grace_period.filter(|g| *g >= 0),
            propagation_policy: Some(match self.cascade {
                Cascade::Background | Cascade::True => PropagationPolicy::Background,
                Cascade::Orphan | Cascade::False => PropagationPolicy::Orphan,
                Cascade::Foreground => PropagationPolicy::Foreground,
            }),
            ..Default::default()
        }
    }
}

/// One object to delete.
struct Target {
    kind: &'static KindInfo,
    namespace: Option<String>,
    name: String,
}

pub async fn run(ctx: &mut Ctx<'_>, args: &Args) -> anyhow::Result<bool> {
    let mut ok = true;
    let targets = match targets(ctx, args).await {
        Ok(t) => t,
        Err(e) => return Err(e),
    };
    let targets = targets.into_iter().filter_map(|t| match t {
        Ok(t) => Some(t),
        Err(message) => {
            ctx.error(message);
            ok = false;
            None
        }
    });
    let targets: Vec<Target> = targets.collect();
    let params = args.params();
    let mut terminating = Vec::new();
    for t in targets {
        let api = DynamicApi::dynamic(
            ctx.client.clone(),
            t.kind.api_resource(),
            t.namespace.as_deref(),
        );
        match api.delete(&t.name, &params).await {
            Ok(answer) => {
                writeln!(ctx.out, "{} \"{}\" deleted", t.kind.display(), t.name)?;
                // An object answer with a deletionTimestamp is still terminating; a
                // Status (or an object without one) means it is already gone.
                if let Deleted::Object(o) = answer {
                    if o.pointer("/metadata/deletionTimestamp")
                        .is_some_and(|v| !v.is_null())
                    {
                        let uid = o
                            .pointer("/metadata/uid")
                            .and_then(|u| u.as_str())
                            .map(str::to_string);
                        terminating.push((t, api, uid));
                    }
                }
            }
            Err(e) if e.is_not_found() && args.ignore_not_found => {}
            Err(e) => {
                writeln!(ctx.err, "{e}")?;
                ok = false;
            }
        }
    }
    if args.wait && !terminating.is_empty() {
        ctx.out.flush()?;
        let deadline = (args.timeout > 0)
            .then(|| tokio::time::Instant::now() + Duration::from_secs(args.timeout));
        for (t, api, uid) in terminating {
            if !wait_gone(&api, &t.name, uid.as_deref(), deadline).await? {
                ctx.error(format_args!(
                    "timed out waiting for {} \"{}\" to be deleted; it is still terminating",
                    t.kind.display(),
                    t.name
                ));
                ok = false;
            }
        }
    }
    Ok(ok)
}

/// Polls until the object is gone (or replaced by a new one with another uid); `false`
/// when the deadline passed first.
async fn wait_gone(
    api: &DynamicApi,
    name: &str,
    uid: Option<&str>,
    deadline: Option<tokio::time::Instant>,
) -> anyhow::Result<bool> {
    let mut delay = Duration::from_millis(100);
    loop {
        match api.get_opt(name).await? {
            None => return Ok(true),
            Some(o)
                if uid.is_some() && o.pointer("/metadata/uid").and_then(|u| u.as_str()) != uid =>
            {
                return Ok(true)
            }
            Some(_) => {}
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() + delay > d) {
            return Ok(false);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

async fn targets(ctx: &mut Ctx<'_>, args: &Args) -> anyhow::Result<Vec<Result<Target, String>>> {
    let mut out = Vec::new();
    if !args.filenames.is_empty() {
        if args.kind.is_some() {
            anyhow::bail!("give either -f FILE or KIND NAME..., not both");
        }
        for (source, text) in manifest::read_sources(&args.filenames)? {
            for m in manifest::parse(&source, &text, Mode::Identify) {
                out.push(m.map_err(|e| e.to_string()).and_then(|m| {
                    let namespace = namespace_for(&ctx.namespace, ctx.namespace_explicit, &m)
                        .map_err(|e| format!("{}: {e}", m.origin))?;
                    Ok(Target {
                        kind: m.kind,
                        namespace,
                        name: m.name,
                    })
                }));
            }
        }
        // Deleting a namespace deletes what is in it; delete the contents first so each
        // object gets its own "deleted" line instead of a NotFound.
        out.sort_by_key(|t| matches!(t, Ok(t) if t.kind.kind == "Namespace"));
        return Ok(out);
    }
    let Some(first) = &args.kind else {
        anyhow::bail!("give KIND NAME..., KIND/NAME, or -f FILE; e.g. `tug delete pod web-1`");
    };
    let namespace = |kind: &KindInfo| kind.namespaced.then(|| ctx.namespace.clone());
    // `tug delete pod/a deploy/b`
    if first.contains('/') {
        for arg in std::iter::once(first).chain(&args.names) {
            let Some((kind, name)) = arg.split_once('/') else {
                anyhow::bail!(
                    "mix of KIND/NAME and plain names: {arg:?}; write every object as KIND/NAME"
                );
            };
            let kind = kinds::resolve(kind)?;
            out.push(Ok(Target {
                kind,
                namespace: namespace(kind),
                name: name.to_string(),
            }));
        }
        return Ok(out);
    }
    let kind = kinds::resolve(first)?;
    if args.names.is_empty() {
        if args.selector.is_none() && !args.all {
            anyhow::bail!(
                "resource(s) were provided, but no name was specified; give names, -l SELECTOR or --all"
            );
        }
        let api = DynamicApi::dynamic(
            ctx.client.clone(),
            kind.api_resource(),
            namespace(kind).as_deref(),
        );
        let lp = ListParams {
            label_selector: args.selector.clone(),
            ..Default::default()
        };
        let list = api.list_all(&lp).await?;
        if list.items.is_empty() {
            let where_ = match namespace(kind) {
                Some(ns) => format!(" in {ns} namespace"),
                None => String::new(),
            };
            writeln!(ctx.err, "No resources found{where_}")?;
        }
        for o in list.items {
            let name = o
                .pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string();
            out.push(Ok(Target {
                kind,
                namespace: namespace(kind),
                name,
            }));
        }
        return Ok(out);
    }
    for name in &args.names {
        out.push(Ok(Target {
            kind,
            namespace: namespace(kind),
            name: name.clone(),
        }));
    }
    Ok(out)
}
