//! Reading manifests: files, directories and stdin; multi-document YAML split on `---`;
//! each document decoded strictly with the `tug-proto` types before anything is sent.

use crate::kinds::{self, KindInfo};
use serde_json::Value;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a document came from, for error messages: `x.yaml: document 2 (Deployment "web")`.
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    pub source: String,
    /// 1-based index among the non-empty documents of the source.
    pub index: usize,
    /// 1-based item index inside a `kind: List` document.
    pub item: Option<usize>,
    pub kind: Option<String>,
    pub name: Option<String>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.source, self.index)?;
        if let Some(item) = self.item {
            write!(f, " item {item}")?;
        }
        match (&self.kind, &self.name) {
            (Some(k), Some(n)) => write!(f, " ({k} \"{n}\")"),
            (Some(k), None) => write!(f, " ({k})"),
            _ => Ok(()),
        }
    }
}

/// One decoded, locally valid object.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub origin: Origin,
    pub kind: &'static KindInfo,
    pub name: String,
    /// `metadata.namespace` as written (None when absent).
    pub namespace: Option<String>,
    pub value: Value,
}

/// A document that could not be used, with where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct Error {
    pub origin: Origin,
    pub message: String,
}

/// A source that could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: no .yaml, .yml or .json files in this directory")]
    EmptyDir(String),
}

/// Reads `-f` arguments: a file, a directory (its `.yaml`/`.yml`/`.json` files, sorted,
/// not recursive, like kubectl) or `-` for stdin. Returns `(source name, text)` pairs.
pub fn read_sources(args: &[String]) -> Result<Vec<(String, String)>, ReadError> {
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| ReadError::Io {
                    path: "<stdin>".into(),
                    source,
                })?;
            out.push(("<stdin>".to_string(), text));
            continue;
        }
        let path = Path::new(arg);
        let io = |source| ReadError::Io {
            path: arg.clone(),
            source,
        };
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("yaml" | "yml" | "json")
                        )
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(ReadError::EmptyDir(arg.clone()));
            }
            for file in files {
                let name = file.to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&file).map_err(|source| ReadError::Io {
                    path: name.clone(),
                    source,
                })?;
                out.push((name, text));
            }
        } else {
            out.push((arg.clone(), std::fs::read_to_string(path).map_err(io)?));
        }
    }
    Ok(out)
}

/// Splits a multi-document YAML text on `---` lines, dropping documents that hold only
/// whitespace and comments. Splitting by text (not by the YAML parser) keeps the
/// numbering right even when one document does not parse.
pub fn split(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        let is_separator = trimmed == "---"
            || (trimmed.starts_with("--- ") && trimmed[4..].trim_start().starts_with('#'))
            || trimmed == "...";
        if is_separator {
            docs.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs.into_iter().filter(|d| !is_blank(d)).collect()
}

fn is_blank(doc: &str) -> bool {
    doc.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    })
}

/// How strictly to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Decode with the kind's Rust type (apply): bad fields are errors.
    Strict,
    /// Only apiVersion, kind and name matter (delete -f).
    Identify,
}

/// Parses every document of one source. Each document is its own result: a bad one
/// does not hide the good ones.
pub fn parse(source: &str, text: &str, mode: Mode) -> Vec<Result<Manifest, Error>> {
    let mut out = Vec::new();
    for (i, doc) in split(text).into_iter().enumerate() {
        let origin = Origin {
            source: source.to_string(),
            index: i + 1,
            item: None,
            kind: None,
            name: None,
        };
        let value: Value = match yaml_serde::from_str(doc) {
            Ok(v) => v,
            Err(e) => {
                out.push(Err(Error {
                    origin,
                    message: format!("not valid YAML: {e}"),
                }));
                continue;
            }
        };
        if value.get("kind").and_then(Value::as_str) == Some("List") {
            match value.get("items").and_then(Value::as_array) {
                Some(items) => {
                    for (j, item) in items.iter().enumerate() {
                        let origin = Origin {
                            item: Some(j + 1),
                            ..origin.clone()
                        };
                        out.push(decode(origin, item.clone(), mode));
                    }
                }
                None => out.push(Err(Error {
                    origin,
                    message: "items: a List needs an `items` array".into(),
                })),
            }
            continue;
        }
        out.push(decode(origin, value, mode));
    }
    out
}

fn decode(mut origin: Origin, value: Value, mode: Mode) -> Result<Manifest, Error> {
    let fail = |origin: &Origin, message: String| Error {
        origin: origin.clone(),
        message,
    };
    if !value.is_object() {
        return Err(fail(
            &origin,
            "expected an object with apiVersion, kind and metadata".into(),
        ));
    }
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    let kind = value.get("kind").and_then(Value::as_str);
    origin.kind = kind.map(str::to_string);
    origin.name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        let missing = if api_version.is_none() {
            "apiVersion"
        } else {
            "kind"
        };
        return Err(fail(
            &origin,
            format!("{missing}: required (e.g. `apiVersion: apps/v1` and `kind: Deployment`)"),
        ));
    };
    let info =
        kinds::by_api_version(api_version, kind).map_err(|e| fail(&origin, e.to_string()))?;
    let Some(name) = origin.name.clone().filter(|n| !n.is_empty()) else {
        return Err(fail(&origin, "metadata.name: required".into()));
    };
    let namespace = match value.pointer("/metadata/namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(ns)) if ns.is_empty() => None,
        Some(Value::String(ns)) => Some(ns.clone()),
        Some(other) => {
            return Err(fail(
                &origin,
                format!("metadata.namespace: expected a string, got {other}"),
            ))
        }
    };
    if mode == Mode::Strict {
        if let Some(validate) = info.validate {
            validate(&value).map_err(|m| fail(&origin, m))?;
        }
    }
    Ok(Manifest {
        origin,
        kind: info,
        name,
        namespace,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_handles_separators_comments_and_empty_documents() {
        let cases: [(&str, usize); 6] = [
            ("a: 1\n", 1),
            ("---\na: 1\n---\nb: 2\n", 2),
            ("a: 1\n---\n# only a comment\n---\nb: 2\n---\n", 2),
            ("a: 1\n--- # next\nb: 2", 2),
            ("", 0),
            ("a: |\n  ---x\nb: 2\n", 1),
        ];
        for (text, want) in cases {
            assert_eq!(split(text).len(), want, "{text:?}");
        }
    }

    const LEASES: &str = r#"
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: ok}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: bad, namespace: kube-system}
spec:
  leaseDurationSeconds: "two"
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: typo}
spec:
  holderIdentityy: me
---
kind: Lease
metadata: {name: nover}
---
apiVersion: apps/v1beta9
kind: Deployment
metadata: {name: old}
---
apiVersion: v1
kind: Service
metadata: {}
---
: : not yaml [
"#;

    #[test]
    fn errors_name_the_file_the_document_and_the_field() {
        let results = parse("manifests/x.yaml", LEASES, Mode::Strict);
        assert_eq!(results.len(), 7);
        assert_eq!(results[0].as_ref().unwrap().name, "ok");
        let errs: Vec<String> = results[1..]
            .iter()
            .map(|r| r.as_ref().unwrap_err().to_string())
            .collect();
        let want_prefixes = [
            "manifests/x.yaml: document 2 (Lease \"bad\"): spec.leaseDurationSeconds: invalid type: string \"two\", expected i32",
            "manifests/x.yaml: document 3 (Lease \"typo\"): spec.holderIdentityy: unknown field `holderIdentityy`, expected one of `holderIdentity`",
            "manifests/x.yaml: document 4 (Lease \"nover\"): apiVersion: required",
            "manifests/x.yaml: document 5 (Deployment \"old\"): no kind \"Deployment\" is registered for version \"apps/v1beta9\"",
            "manifests/x.yaml: document 6 (Service): metadata.name: required",
            "manifests/x.yaml: document 7: not valid YAML",
        ];
        for (got, want) in errs.iter().zip(want_prefixes) {
            assert!(got.starts_with(want), "got:  {got}\nwant: {want}");
        }
    }

    #[test]
    fn a_bad_deployment_field_is_reported_before_anything_is_sent() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n\
            apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: two\n";
        let r = parse("manifests/x.yaml", text, Mode::Strict);
        assert!(r[0].is_ok());
        assert_eq!(
            r[1].as_ref().unwrap_err().to_string(),
            "manifests/x.yaml: document 2 (Deployment \"web\"): spec.replicas: invalid type: string \"two\", expected i32"
        );
    }

    #[test]
    fn namespace_is_taken_from_the_document() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: team}\n";
        let m = parse("c.yaml", text, Mode::Strict).remove(0).unwrap();
        assert_eq!(m.namespace.as_deref(), Some("team"));
        assert_eq!(m.kind.plural, "configmaps");
    }

    #[test]
    fn list_documents_are_expanded_into_items() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{}}]}"#;
        let r = parse("l.json", text, Mode::Strict);
        assert_eq!(r[0].as_ref().unwrap().name, "a");
        let err = r[1].as_ref().unwrap_err().to_string();
        assert!(
            err.starts_with("l.json: document 1 item 2 (ConfigMap)"),
            "{err}"
        );
    }

    #[test]
    fn identify_mode_skips_the_strict_decoder() {
        let text = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: x}\nspec: {bogus: 1}\n";
        assert!(parse("f", text, Mode::Strict)[0].is_err());
        assert!(parse("f", text, Mode::Identify)[0].is_ok());
    }

    #[test]
    fn directories_read_their_manifest_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), "b: 1").unwrap();
        std::fs::write(dir.path().join("a.yml"), "a: 1").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let got = read_sources(&[dir.path().to_string_lossy().into_owned()]).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|(n, _)| n.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml"]);
        let err = read_sources(&["/nonexistent/x.yaml".into()]).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/x.yaml: "),
            "{err}"
        );
    }
}
