//! `tug config get-contexts | current-context | use-context | set-context | view`: the
//! kubeconfig files themselves, read and written without contacting any cluster.

use crate::{printer, Cli};
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NameOutput {
    Name,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ViewOutput {
    Yaml,
    Json,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// List the contexts (all, or the ones named); `*` marks the current one.
    GetContexts {
        names: Vec<String>,
        /// `-o name`: only the names.
        #[arg(short = 'o', long, value_enum)]
        output: Option<NameOutput>,
    },
    /// Print the current context's name.
    CurrentContext,
    /// Make NAME the current context (written to the file that holds current-context).
    UseContext { name: String },
    /// Change a context's namespace (the global `-n/--namespace`), cluster or user
    /// (`--current` for the current one).
    SetContext {
        /// The context to change (created when missing).
        name: Option<String>,
        /// Change the current context.
        #[arg(long, conflicts_with = "name")]
        current: bool,
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
    /// Show the merged kubeconfig; certificate data and tokens are redacted.
    View {
        /// Show secrets too.
        #[arg(long)]
        raw: bool,
        /// Only the current context, its cluster and its user.
        #[arg(long)]
        minify: bool,
        #[arg(short = 'o', long, value_enum, default_value = "yaml")]
        output: ViewOutput,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no kubeconfig found: pass --kubeconfig, set $KUBECONFIG, or create ~/.kube/config")]
    NotFound,
    #[error("cannot read kubeconfig {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kubeconfig {path} is not valid YAML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write kubeconfig {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("current-context is not set; pick one with `tug config use-context NAME` (see `tug config get-contexts`)")]
    NoCurrentContext,
    #[error("no context exists with the name: \"{0}\"; see `tug config get-contexts`")]
    NoSuchContext(String),
    #[error("pass a context name or --current")]
    NoContextGiven,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kubeconfig files in effect, in precedence order, each with its parsed content.
#[derive(Debug)]
pub struct Files {
    pub files: Vec<(PathBuf, Value)>,
}

impl Files {
    /// `--kubeconfig`, else every existing `$KUBECONFIG` entry, else `~/.kube/config`.
    pub fn load(explicit: Option<&Path>) -> Result<Files> {
        let paths: Vec<PathBuf> = match explicit {
            Some(p) => vec![p.to_path_buf()],
            None => default_paths().into_iter().filter(|p| p.exists()).collect(),
        };
        if paths.is_empty() {
            return Err(Error::NotFound);
        }
        let mut files = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            let v: Value = if text.trim().is_empty() {
                Value::Object(Map::new())
            } else {
                yaml_serde::from_str(&text).map_err(|e| Error::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            };
            files.push((path, v));
        }
        Ok(Files { files })
    }

    /// kubectl's merge: the first file to define a name (or current-context) wins.
    pub fn merged(&self) -> Value {
        let mut out = Map::new();
        out.insert("apiVersion".into(), "v1".into());
        out.insert("kind".into(), "Config".into());
        let mut current = String::new();
        for list in ["clusters", "contexts", "users"] {
            let mut items: Vec<Value> = Vec::new();
            for (_, f) in &self.files {
                for item in f.get(list).and_then(Value::as_array).into_iter().flatten() {
                    if !items.iter().any(|x| x.get("name") == item.get("name")) {
                        items.push(item.clone());
                    }
                }
            }
            out.insert(list.into(), Value::Array(items));
        }
        for (_, f) in &self.files {
            if current.is_empty() {
                current = str_of(f, "current-context").to_string();
            }
        }
        out.insert("current-context".into(), Value::String(current));
        out.insert("preferences".into(), Value::Object(Map::new()));
        Value::Object(out)
    }

    /// Where `current-context` is written: the first file that sets it, else the first.
    fn current_context_file(&mut self) -> &mut (PathBuf, Value) {
        let i = self
            .files
            .iter()
            .position(|(_, v)| !str_of(v, "current-context").is_empty())
            .unwrap_or(0);
        &mut self.files[i]
    }

    /// The file that defines context `name` (the first, as in the merge).
    fn context_file(&mut self, name: &str) -> Option<&mut (PathBuf, Value)> {
        self.files
            .iter_mut()
            .find(|(_, v)| find_named(v, "contexts", name).is_some())
    }
}

fn default_paths() -> Vec<PathBuf> {
    if let Some(v) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    std::env::var_os("HOME")
        .map(|home| vec![PathBuf::from(home).join(".kube").join("config")])
        .unwrap_or_default()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn find_named<'a>(v: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    v.get(list)?
        .as_array()?
        .iter()
        .find(|x| str_of(x, "name") == name)
}

fn save(path: &Path, v: &Value) -> Result<()> {
    let text = yaml_serde::to_string(v).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    // Write beside and rename: an interrupted write never leaves half a kubeconfig.
    let tmp = path.with_extension("tug-tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Replaces secrets like kubectl: certificate/key data `DATA+OMITTED`, tokens and
/// passwords `REDACTED`.
pub fn redact(v: &mut Value) {
    for list in ["clusters", "users"] {
        let Some(items) = v.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for item in items {
            for inner in ["cluster", "user"] {
                let Some(obj) = item.get_mut(inner).and_then(Value::as_object_mut) else {
                    continue;
                };
                for (k, val) in obj.iter_mut() {
                    if k.ends_with("-data") {
                        *val = "DATA+OMITTED".into();
                    } else if k == "token" || k == "password" {
                        *val = "REDACTED".into();
                    }
                }
            }
        }
    }
}

/// Keeps only the current context and the cluster and user it names.
fn minify(v: &mut Value) -> Result<()> {
    let current = str_of(v, "current-context").to_string();
    if current.is_empty() {
        return Err(Error::NoCurrentContext);
    }
    let ctx = find_named(v, "contexts", &current)
        .cloned()
        .ok_or_else(|| Error::NoSuchContext(current.clone()))?;
    let cluster = ctx
        .pointer("/context/cluster")
        .and_then(Value::as_str)
        .unwrap_or("");
    let user = ctx
        .pointer("/context/user")
        .and_then(Value::as_str)
        .unwrap_or("");
    for (list, keep) in [
        ("clusters", cluster),
        ("users", user),
        ("contexts", current.as_str()),
    ] {
        let kept: Vec<Value> = find_named(v, list, keep).cloned().into_iter().collect();
        v[list] = Value::Array(kept);
    }
    Ok(())
}

pub fn run(cli: &Cli, args: &Args, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut files = Files::load(cli.kubeconfig.as_deref())?;
    match &args.command {
        Sub::GetContexts { names, output } => {
            let merged = files.merged();
            let current = str_of(&merged, "current-context");
            let contexts: Vec<&Value> = merged["contexts"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            for n in names {
                if !contexts.iter().any(|c| str_of(c, "name") == n) {
                    return Err(Error::NoSuchContext(n.clone()).into());
                }
            }
            let shown = contexts
                .into_iter()
                .filter(|c| names.is_empty() || names.iter().any(|n| n == str_of(c, "name")));
            if output.is_some() {
                for c in shown {
                    writeln!(out, "{}", str_of(c, "name"))?;
                }
                return Ok(true);
            }
            let mut table = printer::Table {
                columns: ["Current", "Name", "Cluster", "AuthInfo", "Namespace"]
                    .iter()
                    .map(|n| printer::Column {
                        name: n.to_string(),
                        priority: 0,
                    })
                    .collect(),
                rows: Vec::new(),
            };
            for c in shown {
                let name = str_of(c, "name");
                let field = |f: &str| {
                    c.pointer(&format!("/context/{f}"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                table.rows.push(printer::Row {
                    cells: vec![
                        if name == current { "*" } else { "" }.to_string(),
                        name.to_string(),
                        field("cluster"),
                        field("user"),
                        field("namespace"),
                    ],
                    namespace: String::new(),
                });
            }
            write!(
                out,
                "{}",
                printer::TablePrinter::new(false, false).render(&table, true)
            )?;
        }
        Sub::CurrentContext => {
            let merged = files.merged();
            let current = str_of(&merged, "current-context");
            if current.is_empty() {
                return Err(Error::NoCurrentContext.into());
            }
            writeln!(out, "{current}")?;
        }
        Sub::UseContext { name } => {
            if find_named(&files.merged(), "contexts", name).is_none() {
                return Err(Error::NoSuchContext(name.clone()).into());
            }
            let (path, v) = files.current_context_file();
            set_key(v, "current-context", Value::String(name.clone()));
            save(path, v)?;
            writeln!(out, "Switched to context \"{name}\".")?;
        }
        Sub::SetContext {
            name,
            current,
            cluster,
            user,
        } => {
            let name = match (name, current) {
                (Some(n), _) => n.clone(),
                (None, true) => {
                    let c = str_of(&files.merged(), "current-context").to_string();
                    if c.is_empty() {
                        return Err(Error::NoCurrentContext.into());
                    }
                    c
                }
                (None, false) => return Err(Error::NoContextGiven.into()),
            };
            let existed = files.context_file(&name).is_some();
            let (path, v) = match files.context_file(&name) {
                Some(f) => f,
                None => &mut files.files[0],
            };
            set_context_fields(v, &name, &cli.namespace, cluster, user);
            save(path, v)?;
            let verb = if existed { "modified" } else { "created" };
            writeln!(out, "Context \"{name}\" {verb}.")?;
        }
        Sub::View {
            raw,
            minify: min,
            output,
        } => {
            let mut merged = files.merged();
            // `--context` picks what --minify keeps, as in kubectl.
            if let Some(c) = &cli.context {
                set_key(&mut merged, "current-context", Value::String(c.clone()));
            }
            if *min {
                minify(&mut merged)?;
            }
            if !raw {
                redact(&mut merged);
            }
            match output {
                ViewOutput::Yaml => write!(out, "{}", printer::yaml(&merged))?,
                ViewOutput::Json => write!(out, "{}", printer::json(&merged))?,
            }
        }
    }
    Ok(true)
}

fn set_key(v: &mut Value, key: &str, val: Value) {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    if let Some(obj) = v.as_object_mut() {
        obj.insert(key.into(), val);
    }
}

fn set_context_fields(
    v: &mut Value,
    name: &str,
    ns: &Option<String>,
    cluster: &Option<String>,
    user: &Option<String>,
) {
    if !v.get("contexts").is_some_and(Value::is_array) {
        set_key(v, "contexts", Value::Array(Vec::new()));
    }
    let Some(list) = v.get_mut("contexts").and_then(Value::as_array_mut) else {
        return;
    };
    let i = match list.iter().position(|c| str_of(c, "name") == name) {
        Some(i) => i,
        None => {
            list.push(serde_json::json!({"name": name, "context": {"cluster": "", "user": ""}}));
            list.len() - 1
        }
    };
    let ctx = &mut list[i]["context"];
    for (key, val) in [("namespace", ns), ("cluster", cluster), ("user", user)] {
        if let Some(val) = val {
            set_key(ctx, key, Value::String(val.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_like_kubectl() {
        let mut v = json!({
            "clusters": [{"name": "c", "cluster": {"server": "https://x", "certificate-authority-data": "QUJD"}}],
            "users": [{"name": "u", "user": {"client-key-data": "S0VZ", "token": "t0k", "client-certificate": "/p"}}]
        });
        redact(&mut v);
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            "DATA+OMITTED"
        );
        assert_eq!(v["clusters"][0]["cluster"]["server"], "https://x");
        assert_eq!(v["users"][0]["user"]["client-key-data"], "DATA+OMITTED");
        assert_eq!(v["users"][0]["user"]["token"], "REDACTED");
        assert_eq!(v["users"][0]["user"]["client-certificate"], "/p");
    }

    #[test]
    fn the_first_file_to_name_something_wins_the_merge() {
        let files = Files {
            files: vec![
                (
                    PathBuf::from("a"),
                    json!({"contexts": [{"name": "x", "context": {"cluster": "a"}}]}),
                ),
                (
                    PathBuf::from("b"),
                    json!({"current-context": "y", "contexts": [
                        {"name": "x", "context": {"cluster": "b"}},
                        {"name": "y", "context": {"cluster": "b"}}]}),
                ),
            ],
        };
        let m = files.merged();
        assert_eq!(m["current-context"], "y");
        assert_eq!(m["contexts"][0]["context"]["cluster"], "a");
        assert_eq!(m["contexts"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn minify_keeps_only_what_the_current_context_uses() {
        let mut v = json!({"current-context": "x",
            "contexts": [{"name": "x", "context": {"cluster": "c1", "user": "u1"}}, {"name": "y", "context": {"cluster": "c2", "user": "u2"}}],
            "clusters": [{"name": "c1", "cluster": {}}, {"name": "c2", "cluster": {}}],
            "users": [{"name": "u1", "user": {}}, {"name": "u2", "user": {}}]});
        minify(&mut v).unwrap();
        assert_eq!(v["clusters"], json!([{"name": "c1", "cluster": {}}]));
        assert_eq!(v["users"], json!([{"name": "u1", "user": {}}]));
        assert_eq!(v["contexts"].as_array().unwrap().len(), 1);
    }
}
