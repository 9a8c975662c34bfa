//! `tug events [-A] [--for KIND/NAME] [--types T,...]`: events oldest first, as
//! LAST SEEN, TYPE, REASON, OBJECT, MESSAGE.

use crate::apply::server_error;
use crate::kinds;
use crate::printer::{Column, Row, Table, TablePrinter};
use crate::Ctx;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tug_client::{DynamicApi, ListParams};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events of all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only events about this object, e.g. `pod/web-1` or `deployment/web`.
    #[arg(long = "for")]
    pub for_object: Option<String>,
    /// Only these types (comma-separated): Normal, Warning.
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// After listing, keep printing new events.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

pub async fn run(ctx: &mut Ctx<'_>, args: &Args) -> anyhow::Result<bool> {
    for t in &args.types {
        if t != "Normal" && t != "Warning" {
            anyhow::bail!("--types: {t:?} is not an event type; use Normal or Warning");
        }
    }
    let mut fields = Vec::new();
    if let Some(target) = &args.for_object {
        let Some((kind, name)) = target.split_once('/').filter(|(_, n)| !n.is_empty()) else {
            anyhow::bail!("--for {target:?}: expected KIND/NAME, e.g. pod/web-1");
        };
        let info = kinds::resolve(kind)?;
        fields.push(format!("involvedObject.kind={}", info.kind));
        fields.push(format!("involvedObject.name={name}"));
    }
    let kind = kinds::resolve("events")?;
    let namespace = (!args.all_namespaces).then(|| ctx.namespace.clone());
    let api = DynamicApi::dynamic(
        ctx.client.clone(),
        kind.api_resource(),
        namespace.as_deref(),
    );
    let mut lp = ListParams::default();
    if !fields.is_empty() {
        lp = lp.fields(&fields.join(","));
    }
    let list = api
        .list_all(&lp)
        .await
        .map_err(|e| anyhow::anyhow!(server_error(&e)))?;
    let rv = list.metadata.resource_version.clone().unwrap_or_default();
    let mut events = list.items;
    events.retain(|e| {
        args.types.is_empty() || args.types.iter().any(|t| e["type"].as_str() == Some(t))
    });
    let mut printer = TablePrinter::new(false, args.all_namespaces);
    if events.is_empty() && !args.watch {
        match &namespace {
            Some(ns) => writeln!(ctx.err, "No events found in {ns} namespace.")?,
            None => writeln!(ctx.err, "No events found.")?,
        }
        return Ok(true);
    }
    events.sort_by_key(last_seen);
    if !events.is_empty() {
        write!(ctx.out, "{}", printer.render(&table(&events), true))?;
    }
    if args.watch {
        watch(ctx, &api, &lp, &rv, args, printer, events.is_empty()).await?;
    }
    Ok(true)
}

/// Prints a row for every event added or changed after `rv`.
async fn watch(
    ctx: &mut Ctx<'_>,
    api: &DynamicApi,
    lp: &ListParams,
    rv: &str,
    args: &Args,
    mut printer: TablePrinter,
    mut headers: bool,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use futures::StreamExt;
    let path = format!("{}{}", api.collection_path(), lp.to_watch_query(rv));
    let mut lines = api
        .client()
        .request_lines(&path, None)
        .await
        .map_err(|e| anyhow::anyhow!(server_error(&e)))?;
    while let Some(line) = lines.next().await {
        let ev: Value = serde_json::from_slice(&line?).context("decoding a watch event")?;
        if !matches!(ev["type"].as_str(), Some("ADDED" | "MODIFIED")) {
            continue;
        }
        let e = &ev["object"];
        if !args.types.is_empty() && !args.types.iter().any(|t| e["type"].as_str() == Some(t)) {
            continue;
        }
        write!(
            ctx.out,
            "{}",
            printer.render(&table(std::slice::from_ref(e)), headers)
        )?;
        headers = false;
        ctx.out.flush()?;
    }
    Ok(())
}

/// The events as LAST SEEN, TYPE, REASON, OBJECT, MESSAGE rows.
fn table(events: &[Value]) -> Table {
    let now = Utc::now();
    Table {
        columns: ["Last Seen", "Type", "Reason", "Object", "Message"]
            .iter()
            .map(|n| Column {
                name: n.to_string(),
                priority: 0,
            })
            .collect(),
        rows: events
            .iter()
            .map(|e| Row {
                cells: vec![
                    seen(e, now),
                    s(e, "/type").to_string(),
                    s(e, "/reason").to_string(),
                    format!(
                        "{}/{}",
                        s(e, "/involvedObject/kind"),
                        s(e, "/involvedObject/name")
                    ),
                    s(e, "/message").trim().to_string(),
                ],
                namespace: s(e, "/metadata/namespace").to_string(),
            })
            .collect(),
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn time_at(v: &Value, p: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s(v, p))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// When an event last happened: lastTimestamp, else eventTime, else its creation.
pub fn last_seen(e: &Value) -> Option<DateTime<Utc>> {
    time_at(e, "/lastTimestamp")
        .or_else(|| time_at(e, "/eventTime"))
        .or_else(|| time_at(e, "/firstTimestamp"))
        .or_else(|| time_at(e, "/metadata/creationTimestamp"))
}

/// When it first happened.
pub fn first_seen(e: &Value) -> Option<DateTime<Utc>> {
    time_at(e, "/firstTimestamp")
        .or_else(|| time_at(e, "/eventTime"))
        .or_else(|| last_seen(e))
}

/// `5s`, or `2m (x3 over 10m)` for a repeated event.
pub fn seen(e: &Value, now: DateTime<Utc>) -> String {
    let last = last_seen(e).map_or("<unknown>".to_string(), |t| age(t, now));
    let count = e.get("count").and_then(Value::as_i64).unwrap_or(1);
    match first_seen(e) {
        Some(first) if count > 1 => format!("{last} (x{count} over {})", age(first, now)),
        _ => last,
    }
}

/// The time since `t`, as kubectl's HumanDuration prints it.
pub fn age(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    human_duration((now - t).num_seconds().max(0))
}

/// kubectl's `duration.HumanDuration`: `45s`, `2m30s`, `15m`, `3h20m`, `20h`, `3d4h`, `40d`, `2y30d`.
pub fn human_duration(secs: i64) -> String {
    let minutes = secs / 60;
    let hours = secs / 3600;
    let days = hours / 24;
    if secs < 120 {
        format!("{secs}s")
    } else if minutes < 10 {
        match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        }
    } else if hours < 3 {
        format!("{minutes}m")
    } else if hours < 8 {
        match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if days < 365 * 8 {
        match days % 365 {
            0 => format!("{}y", days / 365),
            d => format!("{}y{d}d", days / 365),
        }
    } else {
        format!("{}y", days / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_like_kubectl() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (150, "2m30s"),
            (180, "3m"),
            (900, "15m"),
            (3 * 3600 + 1200, "3h20m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (40 * 86400, "40d"),
            (800 * 86400, "2y70d"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn repeated_events_say_how_often() {
        let now = Utc::now();
        let at = |s: i64| (now - chrono::Duration::seconds(s)).to_rfc3339();
        let e = json!({"count": 3, "firstTimestamp": at(600), "lastTimestamp": at(30)});
        assert_eq!(seen(&e, now), "30s (x3 over 10m)");
        let once = json!({"eventTime": at(5)});
        assert_eq!(seen(&once, now), "5s");
    }
}
