//! `tug describe KIND [NAME...]`: an object in words, kubectl's layout, with the Events
//! about it. Pods, Deployments, ReplicaSets, Services, Nodes and Jobs have their own
//! pages; other kinds print their fields as nested key/value lines.

use crate::apply::server_error;
use crate::events;
use crate::kinds::{self, KindInfo};
use crate::Ctx;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tug_client::{DynamicApi, ListParams};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `KIND [NAME...]` or `KIND/NAME...`; without names, every object of the kind.
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// Label selector (when no names are given).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Across all namespaces (when no names are given).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Include the Events section.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub show_events: bool,
}

pub async fn run(ctx: &mut Ctx<'_>, args: &Args) -> anyhow::Result<bool> {
    let (kind, names) = kinds::targets(&args.targets).map_err(anyhow::Error::msg)?;
    let namespace = (!(args.all_namespaces && names.is_empty())).then(|| ctx.namespace.clone());
    let api = DynamicApi::dynamic(
        ctx.client.clone(),
        kind.api_resource(),
        namespace.as_deref(),
    );
    let mut ok = true;
    let mut objects = Vec::new();
    if names.is_empty() {
        let mut lp = ListParams::default();
        if let Some(sel) = &args.selector {
            lp = lp.labels(sel);
        }
        objects = api
            .list_all(&lp)
            .await
            .map_err(|e| anyhow::anyhow!(server_error(&e)))?
            .items;
        if objects.is_empty() {
            match namespace.as_deref().filter(|_| kind.namespaced) {
                Some(ns) => writeln!(ctx.err, "No resources found in {ns} namespace.")?,
                None => writeln!(ctx.err, "No resources found")?,
            }
        }
    } else {
        for name in &names {
            match api.get(name).await {
                Ok(o) => objects.push(o),
                Err(e) => {
                    writeln!(ctx.err, "{}", server_error(&e))?;
                    ok = false;
                }
            }
        }
    }
    let now = Utc::now();
    for (i, obj) in objects.iter().enumerate() {
        if i > 0 {
            writeln!(ctx.out)?;
            writeln!(ctx.out)?;
        }
        let mut page = Page::default();
        describe(ctx, kind, obj, &mut page, now).await?;
        if args.show_events {
            let evs = events_for(ctx, kind, obj).await?;
            events_section(&mut page, &evs, now);
        }
        write!(ctx.out, "{}", page.render())?;
    }
    Ok(ok)
}

/// Lines of a describe page: `Key:  value` pairs aligned per block, and free text.
#[derive(Default)]
pub struct Page {
    lines: Vec<(usize, String, Option<String>)>,
}

impl Page {
    pub fn kv(&mut self, indent: usize, key: &str, value: impl Into<String>) {
        self.lines
            .push((indent, format!("{key}:"), Some(value.into())));
    }

    pub fn text(&mut self, indent: usize, text: impl Into<String>) {
        self.lines.push((indent, text.into(), None));
    }

    /// Pairs at one indent share a value column, two spaces after the longest key, for
    /// as long as no line at a smaller indent (or free text at theirs) comes between;
    /// deeper lines do not break the block. Multi-line values continue in that column.
    pub fn render(&self) -> String {
        let n = self.lines.len();
        let mut widths = vec![0; n];
        for i in 0..n {
            let (d, _, v) = &self.lines[i];
            if v.is_none() || widths[i] != 0 {
                continue;
            }
            let mut members = vec![i];
            for j in i + 1..n {
                let (dj, _, vj) = &self.lines[j];
                if dj > d {
                    continue;
                }
                if dj == d && vj.is_some() {
                    members.push(j);
                    continue;
                }
                break;
            }
            let w = members
                .iter()
                .map(|&m| self.lines[m].1.chars().count())
                .max()
                .unwrap_or(0)
                + 2;
            for m in members {
                widths[m] = w;
            }
        }
        let mut out = String::new();
        for (i, (indent, key, value)) in self.lines.iter().enumerate() {
            let pad = " ".repeat(*indent);
            let Some(value) = value else {
                out.push_str(&pad);
                out.push_str(key);
                out.push('\n');
                continue;
            };
            let width = widths[i];
            let mut parts = value.split('\n');
            let first = parts.next().unwrap_or("");
            let line = format!("{pad}{key:<width$}{first}");
            out.push_str(line.trim_end());
            out.push('\n');
            for more in parts {
                let line = format!("{}{more}", " ".repeat(indent + width));
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        out
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.into()
    }
}

fn int(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// `Sun, 22 Nov 2026 08:00:00 +0000`, kubectl's RFC 1123 with numeric zone.
pub fn timestamp(v: &Value, p: &str) -> String {
    match DateTime::parse_from_rfc3339(s(v, p)) {
        Ok(t) => t
            .with_timezone(&Utc)
            .format("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        Err(_) => "<unset>".into(),
    }
}

/// `a=b` lines, sorted, or `<none>`.
fn map_lines(v: Option<&Value>, sep: &str) -> String {
    let Some(m) = v.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}{sep}{}",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            )
        })
        .collect();
    pairs.sort();
    pairs.join("\n")
}

fn selector_text(v: Option<&Value>) -> String {
    let Some(v) = v else { return "<none>".into() };
    let mut parts: Vec<String> = Vec::new();
    let labels = v.get("matchLabels").or(Some(v)).and_then(Value::as_object);
    if let Some(m) = labels {
        for (k, val) in m {
            if let Some(val) = val.as_str() {
                parts.push(format!("{k}={val}"));
            }
        }
    }
    for e in v
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let key = s(e, "/key");
        parts.push(match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    or_none(&parts.join(","))
}

fn metadata(page: &mut Page, kind: &KindInfo, o: &Value) {
    page.kv(0, "Name", s(o, "/metadata/name"));
    if kind.namespaced {
        page.kv(0, "Namespace", s(o, "/metadata/namespace"));
    }
    page.kv(
        0,
        "CreationTimestamp",
        timestamp(o, "/metadata/creationTimestamp"),
    );
    page.kv(0, "Labels", map_lines(o.pointer("/metadata/labels"), "="));
    page.kv(0, "Annotations", annotations(o));
}

/// Annotations without kubectl's last-applied blob (huge, and already in the file).
fn annotations(o: &Value) -> String {
    let mut a = o
        .pointer("/metadata/annotations")
        .cloned()
        .unwrap_or_default();
    if let Some(m) = a.as_object_mut() {
        m.remove(crate::apply::LAST_APPLIED);
    }
    map_lines(Some(&a), ": ")
}

fn controlled_by(o: &Value) -> Option<String> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r["controller"] == true)
        .map(|r| format!("{}/{}", s(r, "/kind"), s(r, "/name")))
}

async fn describe(
    ctx: &mut Ctx<'_>,
    kind: &KindInfo,
    o: &Value,
    page: &mut Page,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    match kind.kind {
        "Pod" => pod(page, o),
        "Deployment" => deployment(ctx, page, o).await?,
        "ReplicaSet" => replicaset(ctx, page, o).await?,
        "Service" => service(ctx, page, o).await?,
        "Node" => node(ctx, page, o, now).await?,
        "Job" => job(page, o),
        _ => generic(page, kind, o),
    }
    Ok(())
}

fn pod(page: &mut Page, o: &Value) {
    page.kv(0, "Name", s(o, "/metadata/name"));
    page.kv(0, "Namespace", s(o, "/metadata/namespace"));
    page.kv(0, "Priority", int(o, "/spec/priority").to_string());
    page.kv(
        0,
        "Service Account",
        or_none(s(o, "/spec/serviceAccountName")),
    );
    let node = s(o, "/spec/nodeName");
    let host_ip = s(o, "/status/hostIP");
    page.kv(
        0,
        "Node",
        match (node, host_ip) {
            ("", _) => "<none>".to_string(),
            (n, "") => n.to_string(),
            (n, ip) => format!("{n}/{ip}"),
        },
    );
    if o.pointer("/status/startTime").is_some() {
        page.kv(0, "Start Time", timestamp(o, "/status/startTime"));
    }
    page.kv(0, "Labels", map_lines(o.pointer("/metadata/labels"), "="));
    page.kv(0, "Annotations", annotations(o));
    let mut status = s(o, "/status/phase").to_string();
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        status = "Terminating".into();
        page.kv(
            0,
            "Status",
            format!(
                "{status} (lasts {}s)",
                int(o, "/metadata/deletionGracePeriodSeconds")
            ),
        );
        page.kv(
            0,
            "Termination Grace Period",
            format!("{}s", int(o, "/spec/terminationGracePeriodSeconds")),
        );
    } else {
        page.kv(0, "Status", or_none(&status));
    }
    let reason = s(o, "/status/reason");
    if !reason.is_empty() {
        page.kv(0, "Reason", reason);
        page.kv(0, "Message", s(o, "/status/message"));
    }
    page.kv(0, "IP", s(o, "/status/podIP"));
    let ips: Vec<&str> = o
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|ip| s(ip, "/ip"))
        .collect();
    if ips.is_empty() {
        page.kv(0, "IPs", "<none>");
    } else {
        page.text(0, "IPs:");
        for ip in ips {
            page.kv(2, "IP", ip);
        }
    }
    if let Some(c) = controlled_by(o) {
        page.kv(0, "Controlled By", c);
    }
    let statuses = |field: &str| -> Vec<Value> {
        o.pointer(&format!("/status/{field}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if o.pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        page.text(0, "Init Containers:");
        containers(
            page,
            o.pointer("/spec/initContainers"),
            &statuses("initContainerStatuses"),
            2,
        );
    }
    page.text(0, "Containers:");
    containers(
        page,
        o.pointer("/spec/containers"),
        &statuses("containerStatuses"),
        2,
    );
    let conditions: Vec<Value> = statuses("conditions");
    if conditions.is_empty() {
        page.kv(0, "Conditions", "<none>");
    } else {
        page.text(0, "Conditions:");
        let mut rows = vec![vec!["Type".to_string(), "Status".to_string()]];
        for c in &conditions {
            rows.push(vec![s(c, "/type").to_string(), s(c, "/status").to_string()]);
        }
        table(page, 2, &rows);
    }
    volumes(page, o.pointer("/spec/volumes"));
    page.kv(0, "QoS Class", or_none(s(o, "/status/qosClass")));
    page.kv(
        0,
        "Node-Selectors",
        map_lines(o.pointer("/spec/nodeSelector"), "="),
    );
    let tolerations: Vec<String> = o
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(toleration)
        .collect();
    page.kv(0, "Tolerations", or_none(&tolerations.join("\n")));
}

fn toleration(t: &Value) -> String {
    let mut out = s(t, "/key").to_string();
    let value = s(t, "/value");
    if !value.is_empty() {
        out.push('=');
        out.push_str(value);
    }
    let effect = s(t, "/effect");
    if !effect.is_empty() {
        out.push(':');
        out.push_str(effect);
    }
    if s(t, "/operator") == "Exists" && value.is_empty() {
        out.push_str(" op=Exists");
    }
    if let Some(secs) = t.get("tolerationSeconds").and_then(Value::as_i64) {
        out.push_str(&format!(" for {secs}s"));
    }
    out
}

/// Rows aligned like kubectl's tab-separated sub-tables, with a dashes line under the
/// header.
fn table(page: &mut Page, indent: usize, rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|x| x.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut with_dashes = rows.to_vec();
    if let Some(header) = rows.first() {
        with_dashes.insert(
            1,
            header
                .iter()
                .map(|h| "-".repeat(h.chars().count()))
                .collect(),
        );
    }
    for row in with_dashes {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        page.text(indent, line.trim_end().to_string());
    }
}

fn ports(c: &Value) -> (String, String) {
    let ps: Vec<&Value> = c
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if ps.is_empty() {
        return ("<none>".into(), "<none>".into());
    }
    let proto = |p: &Value| match s(p, "/protocol") {
        "" => "TCP".to_string(),
        x => x.to_string(),
    };
    let port = ps
        .iter()
        .map(|p| format!("{}/{}", int(p, "/containerPort"), proto(p)))
        .collect::<Vec<_>>()
        .join(", ");
    let host = ps
        .iter()
        .map(|p| format!("{}/{}", int(p, "/hostPort"), proto(p)))
        .collect::<Vec<_>>()
        .join(", ");
    (port, host)
}

fn state_lines(page: &mut Page, indent: usize, label: &str, state: Option<&Value>) {
    let Some(state) = state.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        page.kv(indent, label, "Waiting");
        return;
    };
    if let Some(r) = state.get("running") {
        page.kv(indent, label, "Running");
        page.kv(indent + 2, "Started", timestamp(r, "/startedAt"));
    } else if let Some(w) = state.get("waiting") {
        page.kv(indent, label, "Waiting");
        page.kv(indent + 2, "Reason", s(w, "/reason"));
        let msg = s(w, "/message");
        if !msg.is_empty() {
            page.kv(indent + 2, "Message", msg);
        }
    } else if let Some(t) = state.get("terminated") {
        page.kv(indent, label, "Terminated");
        page.kv(indent + 2, "Reason", s(t, "/reason"));
        let msg = s(t, "/message");
        if !msg.is_empty() {
            page.kv(indent + 2, "Message", msg);
        }
        page.kv(indent + 2, "Exit Code", int(t, "/exitCode").to_string());
        page.kv(indent + 2, "Started", timestamp(t, "/startedAt"));
        page.kv(indent + 2, "Finished", timestamp(t, "/finishedAt"));
    }
}

/// Containers of a pod (with their statuses) or of a pod template (statuses empty).
fn containers(page: &mut Page, spec: Option<&Value>, statuses: &[Value], indent: usize) {
    let list: Vec<&Value> = spec
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let template = statuses.is_empty();
    for c in list {
        let name = s(c, "/name");
        page.text(indent, format!("{name}:"));
        let st = statuses.iter().find(|st| s(st, "/name") == name);
        let i = indent + 2;
        if let Some(st) = st {
            page.kv(i, "Container ID", s(st, "/containerID"));
        }
        page.kv(i, "Image", s(c, "/image"));
        if let Some(st) = st {
            page.kv(i, "Image ID", s(st, "/imageID"));
        }
        let (port, host) = ports(c);
        page.kv(i, "Port", port);
        page.kv(i, "Host Port", host);
        if let Some(cmd) = c.get("command").and_then(Value::as_array) {
            page.text(i, "Command:");
            for a in cmd {
                page.text(i + 2, crate::jsonpath::text(a));
            }
        }
        if let Some(args) = c.get("args").and_then(Value::as_array) {
            page.text(i, "Args:");
            for a in args {
                page.text(i + 2, crate::jsonpath::text(a));
            }
        }
        if let Some(st) = st {
            state_lines(page, i, "State", st.get("state"));
            if st
                .get("lastState")
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
            {
                state_lines(page, i, "Last State", st.get("lastState"));
            }
            page.kv(
                i,
                "Ready",
                if st["ready"] == true { "True" } else { "False" },
            );
            page.kv(i, "Restart Count", int(st, "/restartCount").to_string());
        } else if !template {
            page.kv(i, "State", "Waiting");
            page.kv(i, "Ready", "False");
            page.kv(i, "Restart Count", "0");
        }
        for (field, label) in [("limits", "Limits"), ("requests", "Requests")] {
            if let Some(m) = c
                .pointer(&format!("/resources/{field}"))
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
            {
                page.text(i, format!("{label}:"));
                for (k, v) in m {
                    page.kv(i + 2, k, crate::jsonpath::text(v));
                }
            }
        }
        let env: Vec<&Value> = c
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect();
        if env.is_empty() {
            page.kv(i, "Environment", "<none>");
        } else {
            page.text(i, "Environment:");
            for e in env {
                let value = match e.get("valueFrom") {
                    Some(from) => format!(
                        "<set from {}>",
                        from.as_object()
                            .and_then(|m| m.keys().next())
                            .map_or("", |k| k.as_str())
                    ),
                    None => s(e, "/value").to_string(),
                };
                page.kv(i + 2, s(e, "/name"), value);
            }
        }
        let mounts: Vec<String> = c
            .get("volumeMounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|m| {
                let ro = if m["readOnly"] == true { "ro" } else { "rw" };
                format!("{} from {} ({ro})", s(m, "/mountPath"), s(m, "/name"))
            })
            .collect();
        page.kv(i, "Mounts", or_none(&mounts.join("\n")));
    }
}

fn volumes(page: &mut Page, v: Option<&Value>) {
    let list: Vec<&Value> = v.and_then(Value::as_array).into_iter().flatten().collect();
    if list.is_empty() {
        page.kv(0, "Volumes", "<none>");
        return;
    }
    page.text(0, "Volumes:");
    for vol in list {
        page.text(2, format!("{}:", s(vol, "/name")));
        let Some(m) = vol.as_object() else { continue };
        for (k, src) in m.iter().filter(|(k, _)| *k != "name") {
            let (ty, detail) = match k.as_str() {
                "emptyDir" => (
                    "EmptyDir (a temporary directory that shares a pod's lifetime)",
                    vec![("Medium", s(src, "/medium").to_string())],
                ),
                "hostPath" => (
                    "HostPath (bare host directory volume)",
                    vec![("Path", s(src, "/path").to_string())],
                ),
                "configMap" => (
                    "ConfigMap (a volume populated by a ConfigMap)",
                    vec![("Name", s(src, "/name").to_string())],
                ),
                "secret" => (
                    "Secret (a volume populated by a Secret)",
                    vec![("SecretName", s(src, "/secretName").to_string())],
                ),
                "projected" => (
                    "Projected (a volume that contains injected data from multiple sources)",
                    vec![],
                ),
                "downwardAPI" => (
                    "DownwardAPI (a volume populated by information about the pod)",
                    vec![],
                ),
                other => (other, vec![]),
            };
            page.kv(4, "Type", ty);
            for (key, val) in detail {
                page.kv(4, key, val);
            }
        }
    }
}

fn pod_template(page: &mut Page, t: Option<&Value>) {
    let Some(t) = t else { return };
    page.text(0, "Pod Template:");
    page.kv(2, "Labels", map_lines(t.pointer("/metadata/labels"), "="));
    if t.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        page.kv(
            2,
            "Annotations",
            map_lines(t.pointer("/metadata/annotations"), ": "),
        );
    }
    page.text(2, "Containers:");
    containers(page, t.pointer("/spec/containers"), &[], 3);
    let vols = t
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if vols {
        volumes(page, t.pointer("/spec/volumes"));
    }
}

fn conditions_table(page: &mut Page, o: &Value, with_reason: bool) {
    let conditions: Vec<&Value> = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if conditions.is_empty() {
        return;
    }
    page.text(0, "Conditions:");
    let mut rows = vec![if with_reason {
        vec![
            "Type".to_string(),
            "Status".to_string(),
            "Reason".to_string(),
        ]
    } else {
        vec!["Type".to_string(), "Status".to_string()]
    }];
    for c in conditions {
        let mut row = vec![s(c, "/type").to_string(), s(c, "/status").to_string()];
        if with_reason {
            row.push(s(c, "/reason").to_string());
        }
        rows.push(row);
    }
    table(page, 2, &rows);
}

async fn list(
    ctx: &Ctx<'_>,
    kind: &str,
    ns: Option<&str>,
    lp: &ListParams,
) -> anyhow::Result<Vec<Value>> {
    let info = kinds::resolve(kind)?;
    let api = DynamicApi::dynamic(ctx.client.clone(), info.api_resource(), ns);
    Ok(api
        .list_all(lp)
        .await
        .map_err(|e| anyhow::anyhow!(server_error(&e)))?
        .items)
}

fn owned_by<'a>(items: &'a [Value], owner: &Value) -> Vec<&'a Value> {
    let uid = s(owner, "/metadata/uid");
    items
        .iter()
        .filter(|i| {
            i.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r["uid"] == uid && r["controller"] == true)
                })
        })
        .collect()
}

async fn deployment(ctx: &mut Ctx<'_>, page: &mut Page, o: &Value) -> anyhow::Result<()> {
    metadata(page, kinds::resolve("deployments")?, o);
    page.kv(0, "Selector", selector_text(o.pointer("/spec/selector")));
    let desired = o
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    page.kv(
        0,
        "Replicas",
        format!(
            "{desired} desired | {} updated | {} total | {} available | {} unavailable",
            int(o, "/status/updatedReplicas"),
            int(o, "/status/replicas"),
            int(o, "/status/availableReplicas"),
            int(o, "/status/unavailableReplicas"),
        ),
    );
    let strategy = match s(o, "/spec/strategy/type") {
        "" => "RollingUpdate",
        x => x,
    };
    page.kv(0, "StrategyType", strategy);
    page.kv(
        0,
        "MinReadySeconds",
        int(o, "/spec/minReadySeconds").to_string(),
    );
    if strategy == "RollingUpdate" {
        let text = |p: &str| match o.pointer(p) {
            Some(v) => crate::jsonpath::text(v),
            None => "25%".into(),
        };
        page.kv(
            0,
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                text("/spec/strategy/rollingUpdate/maxUnavailable"),
                text("/spec/strategy/rollingUpdate/maxSurge")
            ),
        );
    }
    if o.pointer("/spec/paused") == Some(&Value::Bool(true)) {
        page.kv(0, "Paused", "true");
    }
    pod_template(page, o.pointer("/spec/template"));
    conditions_table(page, o, true);
    let ns = s(o, "/metadata/namespace");
    let sets = list(ctx, "replicasets", Some(ns), &ListParams::default()).await?;
    let owned = owned_by(&sets, o);
    let revision = |x: &Value| {
        x.pointer("/metadata/annotations")
            .and_then(|a| a.get(crate::rollout::REVISION))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let current = revision(o);
    let rs_line = |rs: &Value| {
        format!(
            "{} ({}/{} replicas created)",
            s(rs, "/metadata/name"),
            int(rs, "/status/replicas"),
            rs.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        )
    };
    let new = owned
        .iter()
        .find(|rs| !current.is_empty() && revision(rs) == current);
    let old: Vec<String> = owned
        .iter()
        .filter(|rs| Some(**rs) != new.copied() && int(rs, "/spec/replicas") > 0)
        .map(|rs| rs_line(rs))
        .collect();
    page.kv(0, "OldReplicaSets", or_none(&old.join(", ")));
    page.kv(
        0,
        "NewReplicaSet",
        new.map_or("<none>".to_string(), |rs| rs_line(rs)),
    );
    Ok(())
}

/// `2 Running / 0 Waiting / 0 Succeeded / 0 Failed` for the pods a controller owns.
fn pod_phases(pods: &[&Value]) -> String {
    let count = |phase: &str| {
        pods.iter()
            .filter(|p| s(p, "/status/phase") == phase)
            .count()
    };
    format!(
        "{} Running / {} Waiting / {} Succeeded / {} Failed",
        count("Running"),
        count("Pending"),
        count("Succeeded"),
        count("Failed")
    )
}

async fn replicaset(ctx: &mut Ctx<'_>, page: &mut Page, o: &Value) -> anyhow::Result<()> {
    page.kv(0, "Name", s(o, "/metadata/name"));
    page.kv(0, "Namespace", s(o, "/metadata/namespace"));
    page.kv(0, "Selector", selector_text(o.pointer("/spec/selector")));
    page.kv(0, "Labels", map_lines(o.pointer("/metadata/labels"), "="));
    page.kv(0, "Annotations", annotations(o));
    if let Some(c) = controlled_by(o) {
        page.kv(0, "Controlled By", c);
    }
    page.kv(
        0,
        "Replicas",
        format!(
            "{} current / {} desired",
            int(o, "/status/replicas"),
            o.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        ),
    );
    let pods = list(
        ctx,
        "pods",
        Some(s(o, "/metadata/namespace")),
        &ListParams::default(),
    )
    .await?;
    page.kv(0, "Pods Status", pod_phases(&owned_by(&pods, o)));
    pod_template(page, o.pointer("/spec/template"));
    conditions_table(page, o, true);
    Ok(())
}

fn job(page: &mut Page, o: &Value) {
    page.kv(0, "Name", s(o, "/metadata/name"));
    page.kv(0, "Namespace", s(o, "/metadata/namespace"));
    page.kv(0, "Selector", selector_text(o.pointer("/spec/selector")));
    page.kv(0, "Labels", map_lines(o.pointer("/metadata/labels"), "="));
    page.kv(0, "Annotations", annotations(o));
    if let Some(c) = controlled_by(o) {
        page.kv(0, "Controlled By", c);
    }
    let num = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_i64)
            .map_or("<unset>".to_string(), |n| n.to_string())
    };
    page.kv(0, "Parallelism", num("/spec/parallelism"));
    page.kv(0, "Completions", num("/spec/completions"));
    page.kv(0, "Backoff Limit", num("/spec/backoffLimit"));
    if o.pointer("/status/startTime").is_some() {
        page.kv(0, "Start Time", timestamp(o, "/status/startTime"));
    }
    if o.pointer("/status/completionTime").is_some() {
        page.kv(0, "Completed At", timestamp(o, "/status/completionTime"));
        let t = |p: &str| DateTime::parse_from_rfc3339(s(o, p)).ok();
        if let (Some(a), Some(b)) = (t("/status/startTime"), t("/status/completionTime")) {
            page.kv(
                0,
                "Duration",
                events::human_duration((b - a).num_seconds().max(0)),
            );
        }
    }
    page.kv(
        0,
        "Pods Statuses",
        format!(
            "{} Active / {} Succeeded / {} Failed",
            int(o, "/status/active"),
            int(o, "/status/succeeded"),
            int(o, "/status/failed")
        ),
    );
    pod_template(page, o.pointer("/spec/template"));
    conditions_table(page, o, true);
}

async fn service(ctx: &mut Ctx<'_>, page: &mut Page, o: &Value) -> anyhow::Result<()> {
    page.kv(0, "Name", s(o, "/metadata/name"));
    page.kv(0, "Namespace", s(o, "/metadata/namespace"));
    page.kv(0, "Labels", map_lines(o.pointer("/metadata/labels"), "="));
    page.kv(0, "Annotations", annotations(o));
    page.kv(0, "Selector", selector_text(o.pointer("/spec/selector")));
    page.kv(0, "Type", or_none(s(o, "/spec/type")));
    page.kv(0, "IP Family Policy", or_none(s(o, "/spec/ipFamilyPolicy")));
    page.kv(0, "IP", or_none(s(o, "/spec/clusterIP")));
    let ns = s(o, "/metadata/namespace");
    let name = s(o, "/metadata/name");
    let ep_kind = kinds::resolve("endpoints")?;
    let eps = DynamicApi::dynamic(ctx.client.clone(), ep_kind.api_resource(), Some(ns))
        .get_opt(name)
        .await
        .map_err(|e| anyhow::anyhow!(server_error(&e)))?;
    for p in o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let pname = or_none(s(p, "/name")).replace("<none>", "<unset>");
        let proto = match s(p, "/protocol") {
            "" => "TCP",
            x => x,
        };
        page.kv(0, "Port", format!("{pname}  {}/{proto}", int(p, "/port")));
        let target = p
            .get("targetPort")
            .map_or_else(|| int(p, "/port").to_string(), crate::jsonpath::text);
        page.kv(0, "TargetPort", format!("{target}/{proto}"));
        if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
            page.kv(0, "NodePort", format!("{pname}  {np}/{proto}"));
        }
        let mut addrs = Vec::new();
        for subset in eps
            .as_ref()
            .and_then(|e| e.get("subsets"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let sport = subset["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|sp| s(sp, "/name") == s(p, "/name"))
                .map(|sp| int(sp, "/port"));
            for a in subset["addresses"].as_array().into_iter().flatten() {
                if let Some(sp) = sport {
                    addrs.push(format!("{}:{sp}", s(a, "/ip")));
                }
            }
        }
        page.kv(0, "Endpoints", addrs.join(","));
    }
    page.kv(
        0,
        "Session Affinity",
        or_none(s(o, "/spec/sessionAffinity")),
    );
    Ok(())
}

async fn node(
    ctx: &mut Ctx<'_>,
    page: &mut Page,
    o: &Value,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    page.kv(0, "Name", s(o, "/metadata/name"));
    let roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .collect();
    page.kv(0, "Roles", or_none(&roles.join(",")));
    page.kv(0, "Labels", map_lines(o.pointer("/metadata/labels"), "="));
    page.kv(0, "Annotations", annotations(o));
    page.kv(
        0,
        "CreationTimestamp",
        timestamp(o, "/metadata/creationTimestamp"),
    );
    let taints: Vec<String> = o
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            let v = s(t, "/value");
            if v.is_empty() {
                format!("{}:{}", s(t, "/key"), s(t, "/effect"))
            } else {
                format!("{}={v}:{}", s(t, "/key"), s(t, "/effect"))
            }
        })
        .collect();
    page.kv(0, "Taints", or_none(&taints.join("\n")));
    page.kv(
        0,
        "Unschedulable",
        if o.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
            "true"
        } else {
            "false"
        },
    );
    let conditions: Vec<&Value> = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if !conditions.is_empty() {
        page.text(0, "Conditions:");
        let mut rows = vec![["Type", "Status", "LastHeartbeatTime", "Reason", "Message"]
            .map(String::from)
            .to_vec()];
        for c in conditions {
            rows.push(vec![
                s(c, "/type").into(),
                s(c, "/status").into(),
                timestamp(c, "/lastHeartbeatTime"),
                s(c, "/reason").into(),
                s(c, "/message").into(),
            ]);
        }
        table(page, 2, &rows);
    }
    let addrs: Vec<&Value> = o
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if !addrs.is_empty() {
        page.text(0, "Addresses:");
        for a in addrs {
            page.kv(2, s(a, "/type"), s(a, "/address"));
        }
    }
    for (field, label) in [("capacity", "Capacity"), ("allocatable", "Allocatable")] {
        if let Some(m) = o
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_object)
        {
            page.text(0, format!("{label}:"));
            for (k, v) in m {
                page.kv(2, k, crate::jsonpath::text(v));
            }
        }
    }
    if let Some(info) = o.pointer("/status/nodeInfo").and_then(Value::as_object) {
        page.text(0, "System Info:");
        // kubectl's labels and order for the nodeInfo fields.
        let labels = [
            ("machineID", "Machine ID"),
            ("systemUUID", "System UUID"),
            ("bootID", "Boot ID"),
            ("kernelVersion", "Kernel Version"),
            ("osImage", "OS Image"),
            ("operatingSystem", "Operating System"),
            ("architecture", "Architecture"),
            ("containerRuntimeVersion", "Container Runtime Version"),
            ("kubeletVersion", "Kubelet Version"),
            ("kubeProxyVersion", "Kube-Proxy Version"),
        ];
        for (key, label) in labels {
            if let Some(v) = info.get(key) {
                page.kv(2, label, crate::jsonpath::text(v));
            }
        }
    }
    page.kv(0, "PodCIDR", or_none(s(o, "/spec/podCIDR")));
    let name = s(o, "/metadata/name");
    let pods = list(
        ctx,
        "pods",
        None,
        &ListParams::default().fields(&format!("spec.nodeName={name}")),
    )
    .await?;
    let running: Vec<&Value> = pods
        .iter()
        .filter(|p| !matches!(s(p, "/status/phase"), "Succeeded" | "Failed"))
        .collect();
    page.text(
        0,
        format!("Non-terminated Pods:  ({} in total)", running.len()),
    );
    if !running.is_empty() {
        let mut rows = vec![["Namespace", "Name", "Age"].map(String::from).to_vec()];
        for p in running {
            let created = DateTime::parse_from_rfc3339(s(p, "/metadata/creationTimestamp")).ok();
            rows.push(vec![
                s(p, "/metadata/namespace").into(),
                s(p, "/metadata/name").into(),
                created.map_or("<unknown>".into(), |t| {
                    events::age(t.with_timezone(&Utc), now)
                }),
            ]);
        }
        table(page, 2, &rows);
    }
    Ok(())
}

/// `kernelVersion` -> `Kernel Version`.
fn title(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

/// Kinds without a page of their own: metadata, then the rest as nested key/values.
fn generic(page: &mut Page, kind: &KindInfo, o: &Value) {
    page.kv(0, "Name", s(o, "/metadata/name"));
    if kind.namespaced {
        page.kv(0, "Namespace", s(o, "/metadata/namespace"));
    }
    page.kv(0, "Labels", map_lines(o.pointer("/metadata/labels"), "="));
    page.kv(0, "Annotations", annotations(o));
    let Some(m) = o.as_object() else { return };
    for (k, v) in m
        .iter()
        .filter(|(k, _)| *k != "metadata" && *k != "apiVersion" && *k != "kind")
    {
        // Secrets show sizes only, as in kubectl.
        if kind.kind == "Secret" && k == "data" {
            page.text(0, "Data");
            page.text(0, "====");
            for (key, val) in val_map(v) {
                let len = val.as_str().map_or(0, base64_len);
                page.kv(0, key, format!("{len} bytes"));
            }
            continue;
        }
        nested(page, 0, &title(k), v);
    }
}

/// The decoded size of base64 text, without decoding it.
fn base64_len(b64: &str) -> usize {
    let b64 = b64.trim();
    let pad = b64.bytes().rev().take_while(|b| *b == b'=').count();
    (b64.len() / 4 * 3).saturating_sub(pad)
}

fn val_map(v: &Value) -> Vec<(&String, &Value)> {
    v.as_object()
        .map(|m| m.iter().collect())
        .unwrap_or_default()
}

fn nested(page: &mut Page, indent: usize, key: &str, v: &Value) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            page.text(indent, format!("{key}:"));
            for (k, v) in m {
                nested(page, indent + 2, &title(k), v);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            page.text(indent, format!("{key}:"));
            for item in a {
                match item {
                    Value::Object(_) => nested(page, indent + 2, "-", item),
                    other => page.text(indent + 2, crate::jsonpath::text(other)),
                }
            }
        }
        Value::Object(_) | Value::Array(_) => page.kv(indent, key, "<none>"),
        other => page.kv(indent, key, crate::jsonpath::text(other)),
    }
}

/// The object's Events: selected by `involvedObject.uid` on the server (name and kind
/// when the object has no uid).
async fn events_for(ctx: &Ctx<'_>, kind: &KindInfo, o: &Value) -> anyhow::Result<Vec<Value>> {
    let uid = s(o, "/metadata/uid");
    let fields = if uid.is_empty() {
        format!(
            "involvedObject.kind={},involvedObject.name={}",
            kind.kind,
            s(o, "/metadata/name")
        )
    } else {
        format!("involvedObject.uid={uid}")
    };
    // Events about cluster-scoped objects (nodes) live in `default`, as in Kubernetes;
    // search all namespaces for them.
    let ns = kind.namespaced.then(|| s(o, "/metadata/namespace"));
    let mut evs = list(ctx, "events", ns, &ListParams::default().fields(&fields)).await?;
    evs.sort_by_key(events::last_seen);
    Ok(evs)
}

fn events_section(page: &mut Page, evs: &[Value], now: DateTime<Utc>) {
    if evs.is_empty() {
        page.kv(0, "Events", "<none>");
        return;
    }
    page.text(0, "Events:");
    let mut rows = vec![["Type", "Reason", "Age", "From", "Message"]
        .map(String::from)
        .to_vec()];
    for e in evs {
        let from = match s(e, "/source/component") {
            "" => s(e, "/reportingComponent"),
            c => c,
        };
        rows.push(vec![
            s(e, "/type").into(),
            s(e, "/reason").into(),
            events::seen(e, now),
            from.into(),
            s(e, "/message").trim().into(),
        ]);
    }
    table(page, 2, &rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_align_values_per_block() {
        let mut p = Page::default();
        p.kv(0, "Name", "web");
        p.kv(0, "Namespace", "default");
        p.kv(0, "Labels", "a=b\nc=d");
        p.text(0, "Containers:");
        p.kv(2, "Image", "hello");
        assert_eq!(
            p.render(),
            "Name:       web\nNamespace:  default\nLabels:     a=b\n            c=d\nContainers:\n  Image:  hello\n"
        );
    }

    #[test]
    fn a_pod_page_has_kubectls_sections() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc", "uid": "u", "controller": true, "apiVersion": "apps/v1"}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "hello", "ports": [{"containerPort": 80}]}],
                "volumes": [{"name": "scratch", "emptyDir": {}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "hostIP": "192.168.1.2", "startTime": "2026-11-22T08:00:00Z",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "web", "ready": true, "restartCount": 2, "image": "hello", "imageID": "",
                    "state": {"running": {"startedAt": "2026-11-22T08:00:01Z"}}}]}
        });
        let mut page = Page::default();
        super::pod(&mut page, &pod);
        let text = page.render();
        for want in [
            "Name:             web-1\n",
            "Node:             n1/192.168.1.2\n",
            "Start Time:       Sun, 22 Nov 2026 08:00:00 +0000\n",
            "Labels:           app=web\n",
            "Status:           Running\n",
            "IP:               10.0.0.5\n",
            "Controlled By:    ReplicaSet/web-abc\n",
            "Containers:\n  web:\n",
            "    Image:          hello\n",
            "    Port:           80/TCP\n",
            "    State:          Running\n",
            "      Started:  Sun, 22 Nov 2026 08:00:01 +0000\n",
            "    Ready:          True\n",
            "    Restart Count:  2\n",
            "Conditions:\n  Type   Status\n  ----   ------\n  Ready  True\n",
            "Volumes:\n  scratch:\n    Type:    EmptyDir",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn secret_sizes_are_the_decoded_sizes() {
        for (b64, want) in [
            ("", 0),
            ("YQ==", 1),
            ("YWI=", 2),
            ("YWJj", 3),
            ("c2VjcmV0", 6),
        ] {
            assert_eq!(base64_len(b64), want, "{b64}");
        }
    }

    #[test]
    fn selectors_print_as_label_queries() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]});
        assert_eq!(selector_text(Some(&sel)), "app=web,tier in (a,b)");
        assert_eq!(selector_text(Some(&json!({"app": "web"}))), "app=web");
        assert_eq!(selector_text(None), "<none>");
    }
}
