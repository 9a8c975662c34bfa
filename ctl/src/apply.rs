//! `tug apply -f`: create each object, or update it with a three-way merge of the last
//! applied configuration, the file and the live object (kubectl's client-side apply).

use crate::manifest::{self, Manifest, Mode};
use crate::Ctx;
use serde_json::{Map, Value};
use tug_client::DynamicApi;

/// The annotation kubectl keeps the previous `apply` input in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Metadata the server owns: never sent from a file, never compared.
const SERVER_METADATA: &[&str] = &[
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A manifest file, a directory of them, or `-` for stdin (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub filenames: Vec<String>,
    /// Also read the manifests in subdirectories of `-f` directories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// `-f` arguments with `-R`: each directory becomes its manifest files at any depth,
/// sorted by path. A directory without any stays as it is, so reading it reports that.
pub fn expand_recursive(filenames: &[String], recursive: bool) -> Vec<String> {
    if !recursive {
        return filenames.to_vec();
    }
    let mut out = Vec::new();
    for arg in filenames {
        let path = std::path::Path::new(arg);
        if arg == "-" || !path.is_dir() {
            out.push(arg.clone());
            continue;
        }
        let mut found = Vec::new();
        let mut dirs = vec![path.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let p = entry.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                ) {
                    found.push(p.to_string_lossy().into_owned());
                }
            }
        }
        if found.is_empty() {
            out.push(arg.clone());
        }
        found.sort();
        out.extend(found);
    }
    out
}

/// What apply did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// Applies every valid document and reports each bad one; `Ok(false)` if any failed.
pub async fn run(ctx: &mut Ctx<'_>, args: &Args) -> anyhow::Result<bool> {
    let sources = manifest::read_sources(&expand_recursive(&args.filenames, args.recursive))?;
    let mut ok = true;
    let mut any = false;
    for (source, text) in &sources {
        for result in manifest::parse(source, text, Mode::Strict) {
            any = true;
            let m = match result {
                Ok(m) => m,
                Err(e) => {
                    ctx.error(e);
                    ok = false;
                    continue;
                }
            };
            match apply_one(ctx, &m).await {
                Ok(outcome) => {
                    writeln!(
                        ctx.out,
                        "{}/{} {}",
                        m.kind.display(),
                        m.name,
                        outcome.as_str()
                    )?;
                }
                Err(message) => {
                    ctx.error(format_args!("{}: {message}", m.origin));
                    ok = false;
                }
            }
        }
    }
    if !any {
        ctx.error("no objects passed to apply");
        ok = false;
    }
    Ok(ok)
}

/// Picks the namespace like kubectl: the document's, else `-n`/context; a document
/// namespace that contradicts an explicit `-n` is an error.
pub fn namespace_for(ctx_ns: &str, explicit: bool, m: &Manifest) -> Result<Option<String>, String> {
    if !m.kind.namespaced {
        return Ok(None);
    }
    match &m.namespace {
        Some(ns) if explicit && ns != ctx_ns => Err(format!(
            "the namespace from the provided object \"{ns}\" does not match the namespace \"{ctx_ns}\"; pass --namespace={ns} or remove metadata.namespace"
        )),
        Some(ns) => Ok(Some(ns.clone())),
        None => Ok(Some(ctx_ns.to_string())),
    }
}

async fn apply_one(ctx: &mut Ctx<'_>, m: &Manifest) -> Result<Outcome, String> {
    let namespace = namespace_for(&ctx.namespace, ctx.namespace_explicit, m)?;
    let api = DynamicApi::dynamic(
        ctx.client.clone(),
        m.kind.api_resource(),
        namespace.as_deref(),
    );
    let desired = desired_object(&m.value, namespace.as_deref())?;
    // A concurrent writer can change the object between GET and PUT; start over then.
    let mut last_err = String::new();
    for _ in 0..5 {
        let current = api.get_opt(&m.name).await.map_err(|e| server_error(&e))?;
        match current {
            None => match api.create(&desired).await {
                Ok(_) => return Ok(Outcome::Created),
                Err(e) if e.is_already_exists() => last_err = server_error(&e),
                Err(e) => return Err(server_error(&e)),
            },
            Some(current) => {
                let last = last_applied(&current);
                let mut merged = three_way(&current, last.as_ref(), &desired);
                if merged == current {
                    return Ok(Outcome::Unchanged);
                }
                // The PUT carries the live resourceVersion (optimistic concurrency) and
                // status (the server ignores it on the main resource anyway).
                if let (Some(rv), Some(obj)) = (
                    current.pointer("/metadata/resourceVersion").cloned(),
                    merged.get_mut("metadata").and_then(Value::as_object_mut),
                ) {
                    obj.insert("resourceVersion".into(), rv);
                }
                match api.replace(&m.name, &merged).await {
                    Ok(_) => return Ok(Outcome::Configured),
                    Err(e) if e.is_conflict() || e.is_not_found() => last_err = server_error(&e),
                    Err(e) => return Err(server_error(&e)),
                }
            }
        }
    }
    Err(format!("gave up after repeated conflicts: {last_err}"))
}

/// The object to send: the file's content without server-owned fields, with the
/// namespace filled in and the last-applied annotation set to that same content.
pub fn desired_object(value: &Value, namespace: Option<&str>) -> Result<Value, String> {
    let mut desired = value.clone();
    let obj = desired
        .as_object_mut()
        .ok_or("expected an object".to_string())?;
    obj.remove("status");
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or("metadata: expected an object".to_string())?;
    for field in SERVER_METADATA {
        meta.remove(*field);
    }
    match namespace {
        Some(ns) => {
            meta.insert("namespace".into(), Value::String(ns.into()));
        }
        None => {
            meta.remove("namespace");
        }
    }
    if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
        ann.remove(LAST_APPLIED);
        if ann.is_empty() {
            meta.remove("annotations");
        }
    }
    let applied = serde_json::to_string(&desired).map_err(|e| e.to_string())?;
    let meta = desired
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or("metadata: expected an object".to_string())?;
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !ann.is_object() {
        return Err("metadata.annotations: expected a map of strings".into());
    }
    if let Some(ann) = ann.as_object_mut() {
        ann.insert(LAST_APPLIED.into(), Value::String(applied));
    }
    Ok(desired)
}

fn last_applied(current: &Value) -> Option<Value> {
    current
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
}

/// kubectl's three-way merge: fields in `desired` win; fields that were in the last
/// applied configuration but are gone from `desired` are removed; everything else on
/// the live object (server defaults like a Service's clusterIP, status, fields other
/// writers own) stays. Lists of objects are merged by `name` when every element has
/// one (containers, ports, env), else by position when the lengths agree, else replaced.
pub fn three_way(current: &Value, last: Option<&Value>, desired: &Value) -> Value {
    match (current, desired) {
        (Value::Object(c), Value::Object(d)) => {
            let l = last.and_then(Value::as_object);
            let mut out = c.clone();
            if let Some(l) = l {
                for k in l.keys() {
                    if !d.contains_key(k) {
                        out.remove(k);
                    }
                }
            }
            for (k, dv) in d {
                let lv = l.and_then(|l| l.get(k));
                let merged = match c.get(k) {
                    Some(cv) => three_way(cv, lv, dv),
                    None => dv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(c), Value::Array(d)) if d.iter().all(Value::is_object) => {
            let l = last.and_then(Value::as_array);
            let named = |v: &Vec<Value>| {
                v.iter()
                    .all(|e| e.get("name").is_some_and(Value::is_string))
            };
            if named(c) && named(d) {
                Value::Array(
                    d.iter()
                        .map(|de| {
                            let name = &de["name"];
                            match find(Some(c), name) {
                                Some(ce) => three_way(ce, find(l, name), de),
                                None => de.clone(),
                            }
                        })
                        .collect(),
                )
            } else if c.len() == d.len() {
                Value::Array(
                    c.iter()
                        .zip(d)
                        .enumerate()
                        .map(|(i, (ce, de))| three_way(ce, l.and_then(|l| l.get(i)), de))
                        .collect(),
                )
            } else {
                desired.clone()
            }
        }
        _ => desired.clone(),
    }
}

fn find<'a>(list: Option<&'a Vec<Value>>, name: &Value) -> Option<&'a Value> {
    list.and_then(|list| list.iter().find(|e| e.get("name") == Some(name)))
}

/// A server rejection with its field causes (422) listed when the message lacks them.
pub fn server_error(e: &tug_client::Error) -> String {
    let mut s = e.to_string();
    if let Some(details) = e.status().and_then(|s| s.details.as_ref()) {
        for cause in &details.causes {
            let field = cause.field.as_deref().unwrap_or("");
            let message = cause.message.as_deref().unwrap_or("");
            let line = if field.is_empty() {
                message.to_string()
            } else {
                format!("{field}: {message}")
            };
            if !line.is_empty() && !s.contains(&line) && !s.contains(message) {
                s.push_str("\n  * ");
                s.push_str(&line);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn three_way_merge_keeps_server_fields_and_drops_removed_ones() {
        let current = json!({
            "metadata": {"name": "web", "resourceVersion": "9", "labels": {"a": "1", "gone": "x"}},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
            "status": {"loadBalancer": {}}
        });
        let last = json!({"metadata": {"name": "web", "labels": {"a": "1", "gone": "x"}},
            "spec": {"ports": [{"name": "http", "port": 80}]}});
        let desired = json!({"metadata": {"name": "web", "labels": {"a": "2"}},
            "spec": {"ports": [{"name": "http", "port": 8080}]}});
        let merged = three_way(&current, Some(&last), &desired);
        assert_eq!(
            merged,
            json!({
                "metadata": {"name": "web", "resourceVersion": "9", "labels": {"a": "2"}},
                "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
                "status": {"loadBalancer": {}}
            })
        );
    }

    #[test]
    fn applying_the_same_file_twice_changes_nothing() {
        let file = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}});
        let desired = desired_object(&file, Some("default")).unwrap();
        // What the server stores: the sent object plus defaults and server metadata.
        let mut live = desired.clone();
        live["metadata"]["resourceVersion"] = json!("5");
        live["metadata"]["uid"] = json!("u");
        live["spec"]["clusterIP"] = json!("10.96.0.3");
        live["spec"]["ports"][0]["protocol"] = json!("TCP");
        let again = desired_object(&file, Some("default")).unwrap();
        let merged = three_way(&live, last_applied(&live).as_ref(), &again);
        assert_eq!(merged, live);
    }

    #[test]
    fn desired_object_strips_server_fields_and_records_itself() {
        let file = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "resourceVersion": "3", "uid": "x", "namespace": "other"},
            "data": {"k": "v"}, "status": {}});
        let d = desired_object(&file, Some("team")).unwrap();
        assert_eq!(d["metadata"]["namespace"], "team");
        assert!(d["metadata"].get("resourceVersion").is_none());
        assert!(d.get("status").is_none());
        let recorded: Value =
            serde_json::from_str(d["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap())
                .unwrap();
        assert_eq!(
            recorded,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "team"}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn a_document_namespace_must_agree_with_an_explicit_flag() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: a}\n";
        let m = manifest::parse("f", text, Mode::Strict).remove(0).unwrap();
        assert_eq!(
            namespace_for("default", false, &m).unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(namespace_for("a", true, &m).unwrap().as_deref(), Some("a"));
        assert!(namespace_for("b", true, &m)
            .unwrap_err()
            .contains("--namespace=a"));
        let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n";
        let m = manifest::parse("f", ns, Mode::Strict).remove(0).unwrap();
        assert_eq!(namespace_for("b", true, &m).unwrap(), None);
    }

    #[test]
    fn invalid_causes_are_listed_when_the_message_lacks_them() {
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"Invalid","code":422,
            "message":"Deployment.apps \"web\" is invalid",
            "details":{"causes":[{"reason":"FieldValueInvalid","field":"spec.replicas","message":"must be greater than or equal to 0"}]}}"#;
        let status: tug_proto::meta::v1::Status = serde_json::from_slice(body).unwrap();
        let e = tug_client::Error::Api(Box::new(status));
        assert_eq!(
            server_error(&e),
            "Error from server (Invalid): Deployment.apps \"web\" is invalid\n  * spec.replicas: must be greater than or equal to 0"
        );
    }
}
