//! `tug get KIND [NAME...]`: the server's Table (or YAML/JSON/names), optionally watched.

use crate::kinds::{self, KindInfo};
use crate::printer::{self, Table, TablePrinter, TABLE_ACCEPT};
use crate::Ctx;
use anyhow::Context as _;
use futures::StreamExt;
use serde_json::Value;
use tug_client::{DynamicApi, ListParams};

#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Yaml,
    Json,
    Wide,
    Name,
    /// `jsonpath=TEMPLATE` (validated when the flag is parsed).
    JsonPath(String),
    /// `custom-columns=HEADER:PATH,...`.
    CustomColumns(String),
}

/// Parses `-o`: `yaml`, `json`, `wide`, `name`, `jsonpath=...`, `custom-columns=...`.
pub fn parse_output(s: &str) -> Result<Output, String> {
    let (format, arg) = match s.split_once('=') {
        Some((f, a)) => (f, Some(a)),
        None => (s, None),
    };
    let template = |a: Option<&str>| {
        a.filter(|a| !a.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("{format} needs a template: -o {format}=..."))
    };
    match format {
        "yaml" => Ok(Output::Yaml),
        "json" => Ok(Output::Json),
        "wide" => Ok(Output::Wide),
        "name" => Ok(Output::Name),
        "jsonpath" => {
            let t = template(arg)?;
            crate::jsonpath::JsonPath::parse(&t).map_err(|e| e.to_string())?;
            Ok(Output::JsonPath(t))
        }
        "custom-columns" => {
            let t = template(arg)?;
            crate::jsonpath::parse_columns(&t).map_err(|e| e.to_string())?;
            Ok(Output::CustomColumns(t))
        }
        other => Err(format!(
            "unknown output format {other:?}; use one of: json, yaml, wide, name, jsonpath=TEMPLATE, custom-columns=SPEC"
        )),
    }
}

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Kind: plural, singular, short name (po, svc, deploy, ...) or `kind.group`; or
    /// `KIND/NAME` arguments (`pod/web-1 svc/web`).
    pub kind: String,
    /// Names of objects to show (all when omitted).
    pub names: Vec<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector, e.g. `app=web,tier!=db`.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector, e.g. `status.phase=Running`.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Output format: json, yaml, wide, name, jsonpath=TEMPLATE, custom-columns=SPEC.
    #[arg(short = 'o', long, value_parser = parse_output)]
    pub output: Option<Output>,
    /// After listing, keep printing changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// With -o jsonpath, print nothing for a key an object lacks instead of failing.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub allow_missing_template_keys: bool,
}

pub async fn run(ctx: &mut Ctx<'_>, args: &Args) -> anyhow::Result<bool> {
    if !args.kind.contains('/') {
        return run_kind(ctx, args).await;
    }
    // `tug get pod/a svc/b pod/c`: one pass per kind, in the order kinds first appear.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for arg in std::iter::once(&args.kind).chain(&args.names) {
        let Some((kind, name)) = arg.split_once('/') else {
            anyhow::bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (got {arg:?})");
        };
        match groups.iter_mut().find(|(k, _)| k == kind) {
            Some((_, names)) => names.push(name.to_string()),
            None => groups.push((kind.to_string(), vec![name.to_string()])),
        }
    }
    if args.watch && groups.len() > 1 {
        anyhow::bail!("watch is only supported on one kind at a time");
    }
    let objects_out = matches!(
        args.output,
        Some(Output::Json | Output::Yaml | Output::JsonPath(_) | Output::CustomColumns(_))
    );
    let mut ok = true;
    let mut all_objects = Vec::new();
    for (i, (kind, names)) in groups.into_iter().enumerate() {
        let group = Args {
            kind,
            names,
            ..args.clone()
        };
        if objects_out {
            let info = kinds::resolve(&group.kind)?;
            let namespace = (!args.all_namespaces).then(|| ctx.namespace.clone());
            let api = DynamicApi::dynamic(
                ctx.client.clone(),
                info.api_resource(),
                namespace.as_deref(),
            );
            let (objects, _, found) =
                fetch_objects(ctx, &api, info, &group, &ListParams::default()).await?;
            all_objects.extend(objects);
            ok &= found;
            continue;
        }
        if i > 0 && args.output.as_ref().is_none_or(|o| *o == Output::Wide) {
            writeln!(ctx.out)?;
        }
        ok &= run_kind(ctx, &group).await?;
    }
    if let Some(format) = args
        .output
        .as_ref()
        .filter(|_| objects_out && !all_objects.is_empty())
    {
        let v = if all_objects.len() == 1 {
            all_objects.pop().unwrap_or_default()
        } else {
            printer::as_list(all_objects)
        };
        print_object(ctx, format, &v, args.allow_missing_template_keys)?;
    }
    Ok(ok)
}

async fn run_kind(ctx: &mut Ctx<'_>, args: &Args) -> anyhow::Result<bool> {
    let kind = kinds::resolve(&args.kind)?;
    if args.watch && args.names.len() > 1 {
        anyhow::bail!(
            "watch is only supported on a single object or a list; got {} names",
            args.names.len()
        );
    }
    let namespace = (!args.all_namespaces).then(|| ctx.namespace.clone());
    let api = DynamicApi::dynamic(
        ctx.client.clone(),
        kind.api_resource(),
        namespace.as_deref(),
    );
    let lp = ListParams {
        label_selector: args.selector.clone(),
        field_selector: field_selector(args),
        ..Default::default()
    };
    let with_namespace = args.all_namespaces && kind.namespaced;
    match &args.output {
        None | Some(Output::Wide) => {
            let mut printer = TablePrinter::new(args.output == Some(Output::Wide), with_namespace);
            let (table, rv, ok) = fetch_table(ctx, &api, args, &lp).await?;
            if table.rows.is_empty() && ok {
                if args.names.is_empty() {
                    no_resources(ctx, kind, namespace.as_deref(), args.all_namespaces)?;
                }
            } else if !table.rows.is_empty() {
                write!(ctx.out, "{}", printer.render(&table, true))?;
            }
            if args.watch {
                let first = table.rows.is_empty();
                watch_table(ctx, &api, &lp, &rv, printer, first).await?;
            }
            Ok(ok)
        }
        Some(format) => {
            let (objects, rv, ok) = fetch_objects(ctx, &api, kind, args, &lp).await?;
            if *format == Output::Name {
                for o in &objects {
                    writeln!(ctx.out, "{}", name_of(kind, o))?;
                }
            } else if objects.is_empty() && !args.names.is_empty() {
                // Every name was NotFound (already reported): nothing to print.
            } else {
                let v = if objects.len() == 1 && !args.names.is_empty() {
                    objects.into_iter().next().unwrap_or_default()
                } else {
                    printer::as_list(objects)
                };
                print_object(ctx, format, &v, args.allow_missing_template_keys)?;
            }
            if args.watch {
                let allow = args.allow_missing_template_keys;
                watch_objects(ctx, &api, kind, &lp, &rv, format, allow).await?;
            }
            Ok(ok)
        }
    }
}

/// A single watched name becomes a `metadata.name` field selector, as in kubectl.
fn field_selector(args: &Args) -> Option<String> {
    match (&args.field_selector, args.watch, args.names.as_slice()) {
        (fs, true, [name]) => Some(match fs {
            Some(fs) => format!("{fs},metadata.name={name}"),
            None => format!("metadata.name={name}"),
        }),
        (fs, _, _) => fs.clone(),
    }
}

fn no_resources(
    ctx: &mut Ctx<'_>,
    kind: &KindInfo,
    namespace: Option<&str>,
    all: bool,
) -> anyhow::Result<()> {
    match namespace {
        Some(ns) if kind.namespaced && !all => {
            writeln!(ctx.err, "No resources found in {ns} namespace.")?
        }
        _ => writeln!(ctx.err, "No resources found")?,
    }
    Ok(())
}

/// The Table for the names (one GET each; NotFound reported, others still shown) or the
/// whole collection. Returns the table, the resourceVersion to watch from, and whether
/// every name was found.
async fn fetch_table(
    ctx: &mut Ctx<'_>,
    api: &DynamicApi,
    args: &Args,
    lp: &ListParams,
) -> anyhow::Result<(Table, String, bool)> {
    let client = api.client().clone();
    if args.names.is_empty() || args.watch {
        let path = format!("{}{}", api.collection_path(), lp.to_query());
        let bytes = client.raw_get(&path, Some(TABLE_ACCEPT)).await?;
        let v: Value = serde_json::from_slice(&bytes).context("decoding the server's table")?;
        let rv = rv_of(&v);
        let table = Table::from_value(&v).unwrap_or_else(|| Table::names_only(items_of(&v)));
        return Ok((table, rv, true));
    }
    let mut table = Table::default();
    let mut ok = true;
    for name in &args.names {
        match client
            .raw_get(&api.object_path(name, None), Some(TABLE_ACCEPT))
            .await
        {
            Ok(bytes) => {
                let v: Value =
                    serde_json::from_slice(&bytes).context("decoding the server's table")?;
                let t = Table::from_value(&v)
                    .unwrap_or_else(|| Table::names_only(std::slice::from_ref(&v)));
                if table.columns.is_empty() {
                    table.columns = t.columns;
                }
                table.rows.extend(t.rows);
            }
            Err(e) => {
                writeln!(ctx.err, "{e}")?;
                ok = false;
            }
        }
    }
    Ok((table, String::new(), ok))
}

async fn fetch_objects(
    ctx: &mut Ctx<'_>,
    api: &DynamicApi,
    kind: &KindInfo,
    args: &Args,
    lp: &ListParams,
) -> anyhow::Result<(Vec<Value>, String, bool)> {
    let api_version = kind.api_version();
    let typed = |o: Value| printer::with_type_meta(o, &api_version, kind.kind);
    if args.names.is_empty() || args.watch {
        let list = api.list_all(lp).await?;
        let rv = list.metadata.resource_version.clone().unwrap_or_default();
        return Ok((list.items.into_iter().map(typed).collect(), rv, true));
    }
    let mut objects = Vec::new();
    let mut ok = true;
    for name in &args.names {
        match api.get(name).await {
            Ok(o) => objects.push(typed(o)),
            Err(e) => {
                writeln!(ctx.err, "{e}")?;
                ok = false;
            }
        }
    }
    Ok((objects, String::new(), ok))
}

fn rv_of(v: &Value) -> String {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn items_of(v: &Value) -> &[Value] {
    v.get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_else(|| std::slice::from_ref(v))
}

/// `pod/x`, `deployment.apps/web`.
pub fn name_of(kind: &KindInfo, o: &Value) -> String {
    format!(
        "{}/{}",
        kind.display(),
        o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

fn print_object(
    ctx: &mut Ctx<'_>,
    format: &Output,
    v: &Value,
    allow_missing: bool,
) -> anyhow::Result<()> {
    match format {
        Output::Json => write!(ctx.out, "{}", printer::json(v))?,
        Output::JsonPath(t) => {
            let jp = crate::jsonpath::JsonPath::parse(t)?;
            let text = if allow_missing {
                jp.render(v)
            } else {
                jp.render_strict(v)?
            };
            write!(ctx.out, "{text}")?;
        }
        Output::CustomColumns(spec) => {
            let cols = crate::jsonpath::parse_columns(spec)?;
            let items = v
                .get("items")
                .filter(|_| v.get("kind").and_then(Value::as_str) == Some("List"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_else(|| vec![v.clone()]);
            write!(
                ctx.out,
                "{}",
                crate::jsonpath::render_columns(&cols, &items, true)
            )?;
        }
        _ => write!(ctx.out, "{}", printer::yaml(v))?,
    }
    Ok(())
}

/// Streams Table rows for every change after `rv` (the server renders watch events as
/// one-row Tables when asked for `as=Table`).
async fn watch_table(
    ctx: &mut Ctx<'_>,
    api: &DynamicApi,
    lp: &ListParams,
    rv: &str,
    mut printer: TablePrinter,
    mut need_headers: bool,
) -> anyhow::Result<()> {
    let path = watch_path(api, lp, rv);
    let mut lines = api
        .client()
        .request_lines(&path, Some(TABLE_ACCEPT))
        .await?;
    while let Some(line) = lines.next().await {
        let ev: Value = serde_json::from_slice(&line?).context("decoding a watch event")?;
        check_error_event(&ev)?;
        let obj = &ev["object"];
        let table =
            Table::from_value(obj).unwrap_or_else(|| Table::names_only(std::slice::from_ref(obj)));
        if table.rows.is_empty() {
            continue;
        }
        write!(ctx.out, "{}", printer.render(&table, need_headers))?;
        need_headers = false;
        ctx.out.flush()?;
    }
    Ok(())
}

async fn watch_objects(
    ctx: &mut Ctx<'_>,
    api: &DynamicApi,
    kind: &KindInfo,
    lp: &ListParams,
    rv: &str,
    format: &Output,
    allow_missing: bool,
) -> anyhow::Result<()> {
    let path = watch_path(api, lp, rv);
    let mut lines = api.client().request_lines(&path, None).await?;
    while let Some(line) = lines.next().await {
        let ev: Value = serde_json::from_slice(&line?).context("decoding a watch event")?;
        check_error_event(&ev)?;
        if ev["type"] == "BOOKMARK" {
            continue;
        }
        let obj = printer::with_type_meta(ev["object"].clone(), &kind.api_version(), kind.kind);
        match format {
            Output::Name => writeln!(ctx.out, "{}", name_of(kind, &obj))?,
            Output::Json | Output::JsonPath(_) | Output::CustomColumns(_) => {
                print_object(ctx, format, &obj, allow_missing)?
            }
            _ => write!(ctx.out, "---\n{}", printer::yaml(&obj))?,
        }
        ctx.out.flush()?;
    }
    Ok(())
}

fn watch_path(api: &DynamicApi, lp: &ListParams, rv: &str) -> String {
    format!("{}{}", api.collection_path(), lp.to_watch_query(rv))
}

fn check_error_event(ev: &Value) -> anyhow::Result<()> {
    if ev["type"] == "ERROR" {
        let msg = ev
            .pointer("/object/message")
            .and_then(Value::as_str)
            .unwrap_or("watch failed");
        anyhow::bail!("watch ended by the server: {msg}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(names: &[&str], watch: bool, fs: Option<&str>) -> Args {
        Args {
            kind: "pods".into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            all_namespaces: false,
            selector: None,
            field_selector: fs.map(str::to_string),
            output: None,
            allow_missing_template_keys: true,
            watch,
        }
    }

    #[test]
    fn watching_one_name_selects_it_by_field() {
        let cases = [
            (args(&["web"], true, None), Some("metadata.name=web")),
            (
                args(&["web"], true, Some("status.phase=Running")),
                Some("status.phase=Running,metadata.name=web"),
            ),
            (args(&["web"], false, None), None),
            (
                args(&[], true, Some("spec.nodeName=n1")),
                Some("spec.nodeName=n1"),
            ),
        ];
        for (a, want) in cases {
            assert_eq!(field_selector(&a).as_deref(), want);
        }
    }
}
