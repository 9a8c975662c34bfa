//! Request parameters (`ListParams`, `DeleteParams`, `PatchKind`) and URL building.

use tug_proto::meta::v1::{propagation, DeleteOptions, Preconditions};
use tug_proto::Resource;

/// Which REST collection a request goes to: enough to build URLs without a Rust type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ApiResource {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    /// `v1` or `group/version`.
    pub api_version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl ApiResource {
    /// The facts of a typed kind.
    pub fn of<K: Resource>() -> Self {
        ApiResource {
            group: K::GROUP.to_string(),
            version: K::VERSION.to_string(),
            api_version: K::API_VERSION.to_string(),
            kind: K::KIND.to_string(),
            plural: K::PLURAL.to_string(),
            namespaced: K::NAMESPACED,
        }
    }

    /// A resource given by hand (`group` empty for core).
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version,
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced,
        }
    }

    /// `/api/v1` or `/apis/{group}/{version}`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The collection URL path: `/api/v1/namespaces/{ns}/pods`, or cluster-wide
    /// (`/api/v1/pods`) when `namespace` is `None` or the kind is cluster-scoped.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!(
                "{}/namespaces/{}/{}",
                self.group_version_path(),
                encode_segment(ns),
                self.plural
            ),
            _ => format!("{}/{}", self.group_version_path(), self.plural),
        }
    }

    /// The object URL path, with an optional subresource (`status`, `scale`, `binding`).
    pub fn object_path(&self, namespace: Option<&str>, name: &str, sub: Option<&str>) -> String {
        let mut p = format!(
            "{}/{}",
            self.collection_path(namespace),
            encode_segment(name)
        );
        if let Some(sub) = sub {
            p.push('/');
            p.push_str(sub);
        }
        p
    }
}

/// Options for list, watch and deletecollection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<u32>,
    pub continue_token: Option<String>,
    /// `resourceVersion` for list: `"0"` lets the server answer from its cache.
    pub resource_version: Option<String>,
    /// Server-side timeout of a watch, so dead connections cannot hang a watcher.
    pub timeout_seconds: Option<u32>,
    /// Ask the server for BOOKMARK events on watches.
    pub allow_bookmarks: bool,
}

impl ListParams {
    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.to_string());
        self
    }

    pub fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.to_string());
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The list query string (`?labelSelector=...`), empty when there is nothing to send.
    pub fn to_query(&self) -> String {
        self.query().0
    }

    /// The watch query string (`?watch=true&resourceVersion=...`).
    pub fn to_watch_query(&self, resource_version: &str) -> String {
        self.watch_query(resource_version).0
    }

    pub(crate) fn query(&self) -> Query {
        let mut q = Query::default();
        q.opt("labelSelector", self.label_selector.as_deref());
        q.opt("fieldSelector", self.field_selector.as_deref());
        if let Some(l) = self.limit {
            q.push("limit", &l.to_string());
        }
        q.opt("continue", self.continue_token.as_deref());
        q.opt("resourceVersion", self.resource_version.as_deref());
        q
    }

    pub(crate) fn watch_query(&self, resource_version: &str) -> Query {
        let mut q = Query::default();
        q.push("watch", "true");
        q.opt("labelSelector", self.label_selector.as_deref());
        q.opt("fieldSelector", self.field_selector.as_deref());
        if !resource_version.is_empty() {
            q.push("resourceVersion", resource_version);
        }
        if let Some(t) = self.timeout_seconds {
            q.push("timeoutSeconds", &t.to_string());
        }
        if self.allow_bookmarks {
            q.push("allowWatchBookmarks", "true");
        }
        q
    }
}

/// How `delete` treats dependents (`--cascade`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationPolicy {
    Orphan,
    Background,
    Foreground,
}

/// Options for delete and deletecollection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteParams {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<PropagationPolicy>,
    /// Only delete if the object still has this resourceVersion.
    pub precondition_resource_version: Option<String>,
    pub precondition_uid: Option<String>,
    pub dry_run: bool,
}

impl DeleteParams {
    pub fn background() -> Self {
        DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        }
    }

    pub fn foreground() -> Self {
        DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..Default::default()
        }
    }

    pub fn orphan() -> Self {
        DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..Default::default()
        }
    }

    pub(crate) fn to_options(&self) -> DeleteOptions {
        let preconditions =
            if self.precondition_resource_version.is_some() || self.precondition_uid.is_some() {
                Some(Preconditions {
                    uid: self.precondition_uid.clone(),
                    resource_version: self.precondition_resource_version.clone(),
                })
            } else {
                None
            };
        DeleteOptions {
            api_version: "v1".into(),
            kind: "DeleteOptions".into(),
            grace_period_seconds: self.grace_period_seconds,
            preconditions,
            orphan_dependents: None,
            propagation_policy: self.propagation_policy.map(|p| {
                match p {
                    PropagationPolicy::Orphan => propagation::ORPHAN,
                    PropagationPolicy::Background => propagation::BACKGROUND,
                    PropagationPolicy::Foreground => propagation::FOREGROUND,
                }
                .to_string()
            }),
            dry_run: if self.dry_run {
                vec!["All".into()]
            } else {
                Vec::new()
            },
        }
    }
}

/// Patch flavours, by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// RFC 7386 JSON merge patch.
    Merge,
    /// RFC 6902 JSON patch (a list of operations).
    Json,
    /// Kubernetes strategic merge patch (built-in kinds only).
    Strategic,
}

impl PatchKind {
    pub fn content_type(self) -> &'static str {
        match self {
            PatchKind::Merge => "application/merge-patch+json",
            PatchKind::Json => "application/json-patch+json",
            PatchKind::Strategic => "application/strategic-merge-patch+json",
        }
    }
}

/// A URL query string under construction, percent-encoding values.
#[derive(Default, Debug)]
pub(crate) struct Query(String);

impl Query {
    pub(crate) fn push(&mut self, key: &str, value: &str) {
        self.0.push(if self.0.is_empty() { '?' } else { '&' });
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&encode_component(value));
    }

    pub(crate) fn opt(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.push(key, v);
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Names are DNS-ish and never need encoding, but a hostile name must not change the path.
fn encode_segment(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
    {
        s.to_string()
    } else {
        encode_component(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_kubernetes_layout() {
        let pods = ApiResource::new("", "v1", "Pod", "pods", true);
        let deploy = ApiResource::new("apps", "v1", "Deployment", "deployments", true);
        let nodes = ApiResource::new("", "v1", "Node", "nodes", false);
        let cases = [
            (
                pods.collection_path(Some("ns")),
                "/api/v1/namespaces/ns/pods",
            ),
            (pods.collection_path(None), "/api/v1/pods"),
            (
                pods.object_path(Some("ns"), "p", Some("binding")),
                "/api/v1/namespaces/ns/pods/p/binding",
            ),
            (
                deploy.object_path(Some("d"), "web", Some("scale")),
                "/apis/apps/v1/namespaces/d/deployments/web/scale",
            ),
            (
                nodes.object_path(Some("ignored"), "n1", None),
                "/api/v1/nodes/n1",
            ),
            (
                pods.object_path(Some("ns"), "../../x", None),
                "/api/v1/namespaces/ns/pods/..%2F..%2Fx",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        assert_eq!(deploy.api_version, "apps/v1");
    }

    #[test]
    fn selectors_are_percent_encoded() {
        let lp = ListParams::default()
            .labels("app in (a,b),tier!=db")
            .limit(10);
        assert_eq!(
            lp.query().as_str(),
            "?labelSelector=app%20in%20%28a%2Cb%29%2Ctier%21%3Ddb&limit=10"
        );
        assert_eq!(
            ListParams::default().watch_query("42").as_str(),
            "?watch=true&resourceVersion=42"
        );
    }

    #[test]
    fn delete_params_become_delete_options() {
        let o = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::foreground()
        }
        .to_options();
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"apiVersion":"v1","kind":"DeleteOptions","gracePeriodSeconds":0,"propagationPolicy":"Foreground"})
        );
    }
}
