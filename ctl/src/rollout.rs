//! `tug rollout status | history | undo | restart | pause | resume deployment/NAME`:
//! kubectl's rollout verbs, built on the Deployment's ReplicaSets and their
//! `deployment.kubernetes.io/revision` annotations.

use crate::apply::server_error;
use crate::kinds::{self, KindInfo};
use crate::style::{self, Color};
use crate::{printer, Ctx};
use anyhow::Context as _;
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use tug_client::{DynamicApi, ListParams, PatchKind};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Args)]
pub struct Target {
    /// `deployment/NAME` or `deployment NAME`.
    #[arg(required = true)]
    pub target: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Wait until the rollout finishes, printing its progress.
    Status {
        #[command(flatten)]
        target: Target,
        /// Give up after this long (`30s`, `5m`, `1h`; 0 waits forever).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        timeout: Duration,
        /// Print the current status once instead of waiting.
        #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set)]
        watch: bool,
    },
    /// List the revisions (or show one with --revision).
    History {
        #[command(flatten)]
        target: Target,
        /// Show this revision's pod template.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        revision: Option<i64>,
    },
    /// Roll back to the previous revision (or --to-revision).
    Undo {
        #[command(flatten)]
        target: Target,
        /// The revision to go back to; 0 means the previous one.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
        to_revision: i64,
    },
    /// Replace every pod by changing the template's restartedAt annotation.
    Restart {
        #[command(flatten)]
        target: Target,
    },
    /// Stop rolling out template changes.
    Pause {
        #[command(flatten)]
        target: Target,
    },
    /// Roll out template changes again.
    Resume {
        #[command(flatten)]
        target: Target,
    },
}

/// `30s`, `5m`, `1h30m`, `250ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration; write e.g. 30s, 5m or 1h");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let secs = match unit.as_str() {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(secs);
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(bad());
    }
    Ok(total)
}

fn deployment_target(target: &Target) -> anyhow::Result<(&'static KindInfo, String)> {
    let (kind, names) = kinds::targets(&target.target).map_err(anyhow::Error::msg)?;
    if kind.kind != "Deployment" {
        anyhow::bail!(
            "no rollout support for {}: use deployment/NAME",
            kind.display_plural()
        );
    }
    match names.as_slice() {
        [name] => Ok((kind, name.clone())),
        [] => anyhow::bail!("a deployment name is required: deployment/NAME"),
        _ => anyhow::bail!("one deployment at a time, got {}", names.len()),
    }
}

pub async fn run(ctx: &mut Ctx<'_>, args: &Args) -> anyhow::Result<bool> {
    match &args.command {
        Sub::Status {
            target,
            timeout,
            watch,
        } => {
            let (kind, name) = deployment_target(target)?;
            let api = api(ctx, kind);
            if timeout.is_zero() {
                status(ctx, &api, &name, *watch).await
            } else {
                match tokio::time::timeout(*timeout, status(ctx, &api, &name, *watch)).await {
                    Ok(r) => r,
                    Err(_) => anyhow::bail!(
                        "timed out waiting for deployment \"{name}\" to roll out after {timeout:?}; see `tug describe deployment {name}`"
                    ),
                }
            }
        }
        Sub::History { target, revision } => {
            let (kind, name) = deployment_target(target)?;
            history(ctx, kind, &name, *revision).await
        }
        Sub::Undo {
            target,
            to_revision,
        } => {
            let (kind, name) = deployment_target(target)?;
            undo(ctx, kind, &name, *to_revision).await
        }
        Sub::Restart { target } => {
            let (kind, name) = deployment_target(target)?;
            let api = api(ctx, kind);
            let d = api
                .get(&name)
                .await
                .map_err(|e| anyhow::anyhow!(server_error(&e)))?;
            if d.pointer("/spec/paused") == Some(&Value::Bool(true)) {
                anyhow::bail!(
                    "can't restart paused deployment \"{name}\" (run `tug rollout resume deployment/{name}` first)"
                );
            }
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let patch =
                json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}});
            api.patch(&name, PatchKind::Merge, &patch)
                .await
                .map_err(|e| anyhow::anyhow!(server_error(&e)))?;
            writeln!(ctx.out, "{}/{name} restarted", kind.display())?;
            Ok(true)
        }
        Sub::Pause { target } => set_paused(ctx, target, true).await,
        Sub::Resume { target } => set_paused(ctx, target, false).await,
    }
}

fn api(ctx: &Ctx<'_>, kind: &KindInfo) -> DynamicApi {
    DynamicApi::dynamic(
        ctx.client.clone(),
        kind.api_resource(),
        Some(&ctx.namespace),
    )
}

async fn set_paused(ctx: &mut Ctx<'_>, target: &Target, paused: bool) -> anyhow::Result<bool> {
    let (kind, name) = deployment_target(target)?;
    let api = api(ctx, kind);
    let d = api
        .get(&name)
        .await
        .map_err(|e| anyhow::anyhow!(server_error(&e)))?;
    let is_paused = d.pointer("/spec/paused") == Some(&Value::Bool(true));
    if is_paused == paused {
        let state = if paused {
            "already paused"
        } else {
            "not paused"
        };
        anyhow::bail!("{}/{name} is {state}", kind.display());
    }
    api.patch(
        &name,
        PatchKind::Merge,
        &json!({"spec": {"paused": paused}}),
    )
    .await
    .map_err(|e| anyhow::anyhow!(server_error(&e)))?;
    let verb = if paused { "paused" } else { "resumed" };
    writeln!(ctx.out, "{}/{name} {verb}", kind.display())?;
    Ok(true)
}

/// kubectl's DeploymentStatusViewer: the progress line, and whether the rollout is done.
pub fn status_message(name: &str, d: &Value) -> Result<(String, bool), String> {
    let int = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let generation = int("/metadata/generation");
    let observed = int("/status/observedGeneration");
    if generation > observed {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    let progressing = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"));
    if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return Err(format!(
            "deployment \"{name}\" exceeded its progress deadline"
        ));
    }
    let spec_replicas = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let replicas = int("/status/replicas");
    let updated = int("/status/updatedReplicas");
    let available = int("/status/availableReplicas");
    let msg = if updated < spec_replicas {
        format!("Waiting for deployment \"{name}\" rollout to finish: {updated} out of {spec_replicas} new replicas have been updated...")
    } else if replicas > updated {
        format!(
            "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        )
    } else if available < updated {
        format!("Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available...")
    } else {
        return Ok((
            format!("deployment \"{name}\" successfully rolled out"),
            true,
        ));
    };
    Ok((msg, false))
}

/// Prints each new progress line until the rollout is done, following the Deployment
/// with a watch (re-listed when the watch ends).
async fn status(
    ctx: &mut Ctx<'_>,
    api: &DynamicApi,
    name: &str,
    watch: bool,
) -> anyhow::Result<bool> {
    let color = style::enabled();
    let mut last = String::new();
    loop {
        let d = api
            .get(name)
            .await
            .map_err(|e| anyhow::anyhow!(server_error(&e)))?;
        if report(ctx, name, &d, &mut last, color)? {
            return Ok(true);
        }
        if !watch {
            return Ok(true);
        }
        let rv = d
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let lp = ListParams::default().fields(&format!("metadata.name={name}"));
        let path = format!("{}{}", api.collection_path(), lp.to_watch_query(&rv));
        let mut lines = match api.client().request_lines(&path, None).await {
            Ok(l) => l,
            Err(e) if e.is_gone() => continue,
            Err(e) => return Err(e).context("watching the deployment"),
        };
        while let Some(line) = lines.next().await {
            let Ok(line) = line else { break };
            let ev: Value = serde_json::from_slice(&line).context("decoding a watch event")?;
            match ev["type"].as_str() {
                Some("MODIFIED") | Some("ADDED")
                    if report(ctx, name, &ev["object"], &mut last, color)? =>
                {
                    return Ok(true);
                }
                Some("DELETED") => {
                    anyhow::bail!("deployment \"{name}\" was deleted while waiting for its rollout")
                }
                _ => {}
            }
        }
        // The watch ended (server timeout, compaction): read again and go on.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn report(
    ctx: &mut Ctx<'_>,
    name: &str,
    d: &Value,
    last: &mut String,
    color: bool,
) -> anyhow::Result<bool> {
    let (msg, done) = status_message(name, d).map_err(anyhow::Error::msg)?;
    if msg != *last {
        let shown = style::paint(color, if done { Color::Green } else { Color::Yellow }, &msg);
        writeln!(ctx.out, "{shown}")?;
        ctx.out.flush()?;
        *last = msg;
    }
    Ok(done)
}

/// The Deployment's ReplicaSets (controller owner reference to its uid), oldest revision
/// first.
async fn owned_replicasets(ctx: &Ctx<'_>, d: &Value) -> anyhow::Result<Vec<(i64, Value)>> {
    let uid = d
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let rs_kind = kinds::resolve("replicasets")?;
    let api = DynamicApi::dynamic(
        ctx.client.clone(),
        rs_kind.api_resource(),
        Some(&ctx.namespace),
    );
    let list = api
        .list_all(&ListParams::default())
        .await
        .map_err(|e| anyhow::anyhow!(server_error(&e)))?;
    let mut out: Vec<(i64, Value)> = list
        .items
        .into_iter()
        .filter(|rs| {
            rs.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r["uid"] == uid && r["controller"] == true)
                })
        })
        .map(|rs| (revision_of(&rs), rs))
        .collect();
    out.sort_by_key(|(r, _)| *r);
    Ok(out)
}

fn revision_of(o: &Value) -> i64 {
    o.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn history(
    ctx: &mut Ctx<'_>,
    kind: &KindInfo,
    name: &str,
    revision: Option<i64>,
) -> anyhow::Result<bool> {
    let d = api(ctx, kind)
        .get(name)
        .await
        .map_err(|e| anyhow::anyhow!(server_error(&e)))?;
    let sets = owned_replicasets(ctx, &d).await?;
    if let Some(want) = revision {
        let Some((_, rs)) = sets.iter().find(|(r, _)| *r == want) else {
            anyhow::bail!("unable to find the specified revision {want} of deployment \"{name}\"; see `tug rollout history deployment/{name}`");
        };
        writeln!(ctx.out, "{}/{name} with revision #{want}", kind.display())?;
        writeln!(ctx.out, "Pod Template:")?;
        let template = without_hash(rs.pointer("/spec/template").cloned().unwrap_or_default());
        for line in printer::yaml(&template).lines() {
            writeln!(ctx.out, "  {line}")?;
        }
        return Ok(true);
    }
    writeln!(ctx.out, "{}/{name}", kind.display())?;
    let mut table = printer::Table {
        columns: ["REVISION", "CHANGE-CAUSE"]
            .iter()
            .map(|n| printer::Column {
                name: n.to_string(),
                priority: 0,
            })
            .collect(),
        rows: Vec::new(),
    };
    let cause_of = |o: &Value| {
        o.pointer("/metadata/annotations")
            .and_then(|a| a.get(CHANGE_CAUSE))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let current = revision_of(&d);
    for (rev, rs) in sets.iter().filter(|(r, _)| *r > 0) {
        // Kubernetes' controller copies the Deployment's change-cause onto the new
        // ReplicaSet; when it is not there yet, the current revision's is the
        // Deployment's own.
        let cause = cause_of(rs)
            .or_else(|| (*rev == current).then(|| cause_of(&d)).flatten())
            .unwrap_or_else(|| "<none>".to_string());
        table.rows.push(printer::Row {
            cells: vec![rev.to_string(), cause.to_string()],
            namespace: String::new(),
        });
    }
    write!(
        ctx.out,
        "{}",
        printer::TablePrinter::new(false, false).render(&table, true)
    )?;
    writeln!(ctx.out)?;
    Ok(true)
}

/// Annotations the controller or kubectl own, never copied between a ReplicaSet and its
/// Deployment on rollback (kubectl's `annotationsToSkip`).
const SKIPPED_ANNOTATIONS: &[&str] = &[
    crate::apply::LAST_APPLIED,
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// kubectl's rollback: the Deployment takes the ReplicaSet's annotations (its
/// change-cause, for one), keeping its own skipped ones.
fn copy_annotations(d: &mut Value, rs: &Value) {
    let mut out = serde_json::Map::new();
    if let Some(own) = d
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (k, v) in own {
            if SKIPPED_ANNOTATIONS.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(theirs) = rs
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (k, v) in theirs {
            if !SKIPPED_ANNOTATIONS.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("annotations".into(), Value::Object(out));
    }
}

/// A ReplicaSet's template without the `pod-template-hash` label the controller adds.
fn without_hash(mut template: Value) -> Value {
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
    }
    template
}

async fn undo(ctx: &mut Ctx<'_>, kind: &KindInfo, name: &str, to: i64) -> anyhow::Result<bool> {
    let api = api(ctx, kind);
    for _ in 0..5 {
        let mut d = api
            .get(name)
            .await
            .map_err(|e| anyhow::anyhow!(server_error(&e)))?;
        if d.pointer("/spec/paused") == Some(&Value::Bool(true)) {
            anyhow::bail!("you cannot rollback a paused deployment; resume it first with `tug rollout resume deployment/{name}` and try again");
        }
        let sets = owned_replicasets(ctx, &d).await?;
        let current = revision_of(&d);
        let target = if to == 0 {
            // The newest revision before the current one, as kubectl picks it.
            sets.iter().rev().find(|(r, _)| *r != current && *r > 0)
        } else {
            sets.iter().find(|(r, _)| *r == to)
        };
        let Some((rev, rs)) = target else {
            if to == 0 {
                anyhow::bail!("no rollout history found for deployment \"{name}\": there is no previous revision to go back to");
            }
            anyhow::bail!("unable to find specified revision {to} in history of deployment \"{name}\"; see `tug rollout history deployment/{name}`");
        };
        let template = without_hash(rs.pointer("/spec/template").cloned().unwrap_or_default());
        if d.pointer("/spec/template") == Some(&template) {
            writeln!(
                ctx.out,
                "{}/{name} skipped rollback (current template already matches revision {rev})",
                kind.display()
            )?;
            return Ok(true);
        }
        d["spec"]["template"] = template;
        copy_annotations(&mut d, rs);
        match api.replace(name, &d).await {
            Ok(_) => {
                writeln!(ctx.out, "{}/{name} rolled back", kind.display())?;
                return Ok(true);
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) => anyhow::bail!(server_error(&e)),
        }
    }
    anyhow::bail!("deployment \"{name}\" kept changing while rolling back; try again")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_takes_the_replicasets_annotations_but_keeps_the_deployments_own() {
        let mut d = json!({"metadata": {"annotations": {REVISION: "3", "kubernetes.io/change-cause": "v3", "team": "a"}}});
        let rs = json!({"metadata": {"annotations": {REVISION: "1", "kubernetes.io/change-cause": "v1",
            "deployment.kubernetes.io/desired-replicas": "2"}}});
        copy_annotations(&mut d, &rs);
        assert_eq!(
            d["metadata"]["annotations"],
            json!({REVISION: "3", "kubernetes.io/change-cause": "v1"})
        );
    }

    #[test]
    fn durations_parse_like_kubectl_flags() {
        let cases = [
            ("30s", Some(30_000)),
            ("5m", Some(300_000)),
            ("1h30m", Some(5_400_000)),
            ("250ms", Some(250)),
            ("10", Some(10_000)),
            ("0s", Some(0)),
            ("ten", None),
            ("5x", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(
                parse_duration(s).ok().map(|d| d.as_millis() as u64),
                want,
                "{s}"
            );
        }
    }

    #[test]
    fn status_messages_follow_the_rollout() {
        let d = |gen: i64, obs: i64, spec: i64, reps: i64, upd: i64, avail: i64| {
            json!({"metadata": {"generation": gen}, "spec": {"replicas": spec},
                "status": {"observedGeneration": obs, "replicas": reps, "updatedReplicas": upd, "availableReplicas": avail}})
        };
        let cases = [
            (d(2, 1, 2, 2, 2, 2), "Waiting for deployment spec update to be observed...", false),
            (d(2, 2, 2, 2, 1, 1), "Waiting for deployment \"x\" rollout to finish: 1 out of 2 new replicas have been updated...", false),
            (d(2, 2, 2, 3, 2, 2), "Waiting for deployment \"x\" rollout to finish: 1 old replicas are pending termination...", false),
            (d(2, 2, 2, 2, 2, 1), "Waiting for deployment \"x\" rollout to finish: 1 of 2 updated replicas are available...", false),
            (d(2, 2, 2, 2, 2, 2), "deployment \"x\" successfully rolled out", true),
        ];
        for (obj, want, done) in cases {
            assert_eq!(status_message("x", &obj).unwrap(), (want.to_string(), done));
        }
        let stuck = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}});
        assert!(status_message("x", &stuck)
            .unwrap_err()
            .contains("progress deadline"));
    }
}
