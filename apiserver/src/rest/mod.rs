//! The resource endpoints: parses `/api/v1/...` and `/apis/{group}/{version}/...` paths
//! into a [`Target`], and dispatches each verb to its own module.

mod binding;
mod create;
mod delete;
mod get;
mod list;
mod patch;
mod pod_proxy;
mod scale;
mod update;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method};
use serde_json::Value;
use tug_store::{KeyValue, Read};

use crate::admission;
use crate::error::{ApiError, FieldCause, Result};
use crate::negotiate::Output;
use crate::object;
use crate::registry::{self, ResourceInfo};
use crate::state::AppState;
use crate::strategy::Part;

pub use watch::WatchConfig;

/// What a resource path names.
#[derive(Debug, Clone)]
pub struct Target {
    pub info: &'static ResourceInfo,
    /// The namespace in the URL (`None` for cluster-scoped kinds and all-namespace lists).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// Reached through the legacy `/watch/` prefix.
    pub legacy_watch: bool,
}

impl Target {
    pub fn key(&self) -> String {
        self.info.key(
            self.namespace.as_deref(),
            self.name.as_deref().unwrap_or_default(),
        )
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

/// Parses the segments after `/api/v1` or `/apis/{group}/{version}`.
pub fn parse_target(group: &str, version: &str, rest: &str) -> Option<Target> {
    let mut segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let legacy_watch = segs.first() == Some(&"watch");
    if legacy_watch {
        segs.remove(0);
    }
    let lookup = |plural: &str| registry::lookup(group, version, plural);
    let target = match segs.as_slice() {
        // The older collection form of pods/{name}/binding.
        ["namespaces", ns, "bindings"] if group.is_empty() => Target {
            info: lookup("pods")?,
            namespace: Some((*ns).to_string()),
            name: None,
            subresource: Some("binding".to_string()),
            legacy_watch,
        },
        // `namespaces/{ns}/{plural}...`, unless the third segment is a subresource of
        // the namespace itself (`namespaces/x/status`).
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            let info = lookup(plural)?;
            if !info.namespaced {
                return None;
            }
            let (name, sub) = match tail {
                [] => (None, None),
                [name] => (Some(*name), None),
                [name, sub] => (Some(*name), Some(*sub)),
                _ => return None,
            };
            Target {
                info,
                namespace: Some((*ns).to_string()),
                name: name.map(str::to_string),
                subresource: sub.map(str::to_string),
                legacy_watch,
            }
        }
        [plural, tail @ ..] => {
            let info = lookup(plural)?;
            let (name, sub) = match tail {
                [] => (None, None),
                [name] if !info.namespaced => (Some(*name), None),
                [name, sub] if !info.namespaced => (Some(*name), Some(*sub)),
                _ => return None,
            };
            Target {
                info,
                namespace: None,
                name: name.map(str::to_string),
                subresource: sub.map(str::to_string),
                legacy_watch,
            }
        }
        [] => return None,
    };
    Some(target)
}

/// One resource request with everything the verb modules need.
pub struct Req {
    pub target: Target,
    pub method: Method,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub out: Output,
    /// The query string as sent (repeated parameters such as exec's `command` intact).
    pub raw_query: String,
    /// The HTTP/1.1 upgrade of the connection (exec's WebSocket), if any.
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Req {
    pub fn info(&self) -> &'static ResourceInfo {
        self.target.info
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// `resourceVersion=0` may be served from this replica; anything else is a quorum read.
    pub fn read_mode(&self) -> Read {
        if self.param("resourceVersion") == Some("0") {
            Read::Local
        } else {
            Read::Linearizable
        }
    }

    pub fn dry_run(&self) -> bool {
        self.param("dryRun").is_some_and(|v| v == "All")
    }

    fn is_watch(&self) -> bool {
        self.target.legacy_watch
            || matches!(self.param("watch"), Some("true") | Some("1") | Some("True"))
    }
}

/// Runs one resource request and turns failures into `Status` responses.
pub async fn handle(state: Arc<AppState>, req: Req, body: Body) -> Result<Response> {
    let t = &req.target;
    if let Some(ns) = &t.namespace {
        check_path_segment("namespace", ns)?;
    }
    if let Some(name) = &t.name {
        check_path_segment("name", name)?;
    }
    let sub = t.subresource.as_deref();
    let has_name = t.name.is_some();
    match (&req.method, has_name, sub) {
        (&Method::GET, false, None) if req.is_watch() => watch::watch(state, req, None).await,
        (&Method::GET, false, None) => list::list(&state, &req).await,
        (&Method::GET, true, None) if req.is_watch() => {
            let name = t.name.clone();
            watch::watch(state, req, name).await
        }
        (&Method::GET, true, None | Some("status")) => get::get(&state, &req).await,
        (&Method::POST, false, None) => create::create(&state, &req, body).await,
        (&Method::PUT, true, None) => update::put(&state, &req, body, Part::Main).await,
        (&Method::PUT, true, Some("status")) if t.info.status => {
            update::put(&state, &req, body, Part::Status).await
        }
        (&Method::PATCH, true, None) => patch::patch(&state, &req, body, Part::Main).await,
        (&Method::PATCH, true, Some("status")) if t.info.status => {
            patch::patch(&state, &req, body, Part::Status).await
        }
        (&Method::PUT, true, Some("finalize")) if t.info.plural == "namespaces" => {
            update::put(&state, &req, body, Part::Finalize).await
        }
        (&Method::DELETE, true, None) => delete::delete(&state, &req, body).await,
        // Kubernetes serves no deletecollection for namespaces.
        (&Method::DELETE, false, None) if t.info.plural != "namespaces" => {
            delete::delete_collection(&state, &req, body).await
        }
        (&Method::GET, true, Some("scale")) if t.info.scale => scale::get(&state, &req).await,
        (&Method::PUT, true, Some("scale")) if t.info.scale => scale::put(&state, &req, body).await,
        (&Method::PATCH, true, Some("scale")) if t.info.scale => {
            scale::patch(&state, &req, body).await
        }
        (&Method::POST, _, Some("binding")) if t.info.plural == "pods" => {
            binding::bind(&state, &req, body).await
        }
        (_, true, Some("log" | "exec" | "attach" | "portforward")) if t.info.plural == "pods" => {
            pod_proxy::proxy(&state, req).await
        }
        (_, _, Some(sub))
            if !matches!(sub, "status" | "scale" | "binding" | "finalize")
                || (sub == "finalize" && t.info.plural != "namespaces")
                || (sub == "status" && !t.info.status)
                || (sub == "scale" && !t.info.scale)
                || (sub == "binding" && t.info.plural != "pods") =>
        {
            Err(ApiError::no_route(&format!(
                "{}/{}/{sub}",
                t.info.plural,
                t.name()
            )))
        }
        (method, _, _) => Err(ApiError::method_not_allowed(
            method,
            &format!(
                "{}{}",
                t.info.plural,
                sub.map(|s| format!("/{s}")).unwrap_or_default()
            ),
        )),
    }
}

/// Names end up in storage keys and URLs: refuse the few values that would break them
/// (Kubernetes' path segment rule), whatever admission says about the rest.
pub fn check_path_segment(what: &str, value: &str) -> Result<()> {
    if value == "." || value == ".." || value.contains('/') || value.contains('%') {
        return Err(ApiError::bad_request(format!(
            "invalid {what} {value:?}: may not be '.' or '..' and may not contain '/' or '%'"
        )));
    }
    Ok(())
}

/// Reads one object (with its store revision stamped in).
pub async fn read_object(
    state: &AppState,
    key: &str,
    read: Read,
) -> Result<Option<(Value, KeyValue)>> {
    let got = state.store.get(key, read).await?;
    match got.kv {
        None => Ok(None),
        Some(kv) => Ok(Some((object::decode(&kv)?, kv))),
    }
}

/// Maps an admission failure to 400 (decoding) or 422 (validation).
pub fn admission_error(info: &ResourceInfo, name: &str, e: admission::Error) -> ApiError {
    match e {
        admission::Error::Decode { path, message } => {
            let text = if path.is_empty() || message.contains(&path) {
                message
            } else {
                format!("{path}: {message}")
            };
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {text}",
                info.kind, info.version, info.kind
            ))
        }
        admission::Error::Invalid(errors) => {
            let causes: Vec<FieldCause> = errors
                .into_iter()
                .map(|e| FieldCause {
                    field: e.field,
                    reason: e.reason.to_string(),
                    message: e.message,
                })
                .collect();
            ApiError::invalid(info, name, &causes)
        }
    }
}

/// Checks (and fills in when absent) `apiVersion` and `kind` of a request body.
pub fn check_type_meta(
    info: &ResourceInfo,
    obj: &mut Value,
    kind: &str,
    api_version: &str,
) -> Result<()> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be an object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(api_version.into()));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version}) for {}",
                info.qualified()
            )))
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(kind.into()));
        }
        Some(k) if k == kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "{k} in version \"{api_version}\" cannot be handled as a {kind}: the kind in the data ({k}) does not match the expected kind ({kind})"
            )))
        }
    }
    Ok(())
}

/// The namespace a body must live in: the URL's, checked against the body's.
pub fn reconcile_namespace(t: &Target, obj: &mut Value) -> Result<()> {
    if !t.info.namespaced {
        object::set_meta(obj, "namespace", None);
        return Ok(());
    }
    let url_ns = t.namespace.as_deref().ok_or_else(|| {
        ApiError::method_not_allowed(
            &Method::POST,
            &format!(
                "{} in all namespaces; use /namespaces/{{ns}}/{}",
                t.info.plural, t.info.plural
            ),
        )
    })?;
    let body_ns = object::namespace(obj);
    if !body_ns.is_empty() && body_ns != url_ns {
        return Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({url_ns})"
        )));
    }
    object::set_meta(obj, "namespace", Some(Value::String(url_ns.to_string())));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (plural, namespace, name, subresource, legacy watch)
    type Parsed<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        bool,
    );
    type Case<'a> = (&'a str, &'a str, &'a str, Option<Parsed<'a>>);

    #[test]
    fn paths_parse_into_targets() {
        let cases: &[Case] = &[
            (
                "",
                "v1",
                "namespaces/default/pods",
                Some(("pods", Some("default"), None, None, false)),
            ),
            (
                "",
                "v1",
                "namespaces/default/pods/x",
                Some(("pods", Some("default"), Some("x"), None, false)),
            ),
            (
                "",
                "v1",
                "namespaces/default/pods/x/status",
                Some(("pods", Some("default"), Some("x"), Some("status"), false)),
            ),
            ("", "v1", "pods", Some(("pods", None, None, None, false))),
            (
                "",
                "v1",
                "watch/namespaces/a/pods",
                Some(("pods", Some("a"), None, None, true)),
            ),
            (
                "",
                "v1",
                "watch/pods",
                Some(("pods", None, None, None, true)),
            ),
            (
                "",
                "v1",
                "namespaces",
                Some(("namespaces", None, None, None, false)),
            ),
            (
                "",
                "v1",
                "namespaces/x",
                Some(("namespaces", None, Some("x"), None, false)),
            ),
            (
                "",
                "v1",
                "namespaces/x/status",
                Some(("namespaces", None, Some("x"), Some("status"), false)),
            ),
            (
                "",
                "v1",
                "nodes/n1/status",
                Some(("nodes", None, Some("n1"), Some("status"), false)),
            ),
            (
                "apps",
                "v1",
                "namespaces/a/deployments/d/scale",
                Some(("deployments", Some("a"), Some("d"), Some("scale"), false)),
            ),
            ("", "v1", "pods/x", None),
            ("", "v1", "namespaces/a/nodes", None),
            ("", "v1", "namespaces/a/widgets", None),
            ("apps", "v1", "pods", None),
        ];
        for (group, version, path, want) in cases {
            let got = parse_target(group, version, path).map(|t| {
                (
                    t.info.plural,
                    t.namespace.clone(),
                    t.name.clone(),
                    t.subresource.clone(),
                    t.legacy_watch,
                )
            });
            let want = want.map(|(p, ns, n, s, w)| {
                (
                    p,
                    ns.map(String::from),
                    n.map(String::from),
                    s.map(String::from),
                    w,
                )
            });
            assert_eq!(got, want, "{group}/{version}/{path}");
        }
    }
}
