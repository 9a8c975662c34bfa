//! The kinds the CLI knows: names users type (plural, singular, short, `kind.group`) to
//! REST facts, and each kind's strict local decoder.

use serde_json::Value;
use tug_client::ApiResource;
use tug_proto::apps::v1 as apps;
use tug_proto::batch::v1 as batch;
use tug_proto::core::v1 as core;
use tug_proto::rbac::v1 as rbac;

/// Decodes a manifest into the kind's Rust type, failing with the field path.
pub type Validate = fn(&Value) -> Result<(), String>;

/// One kind the CLI knows.
#[derive(Clone, Copy, Debug)]
pub struct KindInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short: &'static [&'static str],
    pub namespaced: bool,
    /// Strict decoder from `tug-proto`, when the kind has a Rust type there.
    pub validate: Option<Validate>,
}

impl KindInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource::new(
            self.group,
            self.version,
            self.kind,
            self.plural,
            self.namespaced,
        )
    }

    /// kubectl's way of naming the kind in messages: `pod`, `deployment.apps`.
    pub fn display(&self) -> String {
        if self.group.is_empty() {
            self.singular.to_string()
        } else {
            format!("{}.{}", self.singular, self.group)
        }
    }

    /// kubectl's plural form in Status messages and "No resources" lines.
    pub fn display_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// Decodes `value` as `K` (whose types deny unknown fields) and reports the failing
/// field path, e.g. `spec.replicas: invalid type: string "two", expected i32`.
pub fn strict<K: serde::de::DeserializeOwned>(value: &Value) -> Result<(), String> {
    tug_proto::decode::from_value::<K>(value.clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

macro_rules! kind {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, [$($short:expr),*], $ns:expr, $validate:expr) => {
        KindInfo {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short: &[$($short),*],
            namespaced: $ns,
            validate: $validate,
        }
    };
}

/// Every kind the CLI can resolve without asking the server: the kinds `tug-proto` has
/// types for.
#[rustfmt::skip]
pub static KINDS: &[KindInfo] = &[
    kind!("", "v1", "Pod", "pods", "pod", ["po"], true, Some(strict::<core::Pod>)),
    kind!("", "v1", "Service", "services", "service", ["svc"], true, Some(strict::<core::Service>)),
    kind!("", "v1", "Namespace", "namespaces", "namespace", ["ns"], false, Some(strict::<core::Namespace>)),
    kind!("", "v1", "Node", "nodes", "node", ["no"], false, Some(strict::<core::Node>)),
    kind!("", "v1", "ConfigMap", "configmaps", "configmap", ["cm"], true, Some(strict::<core::ConfigMap>)),
    kind!("", "v1", "Secret", "secrets", "secret", [], true, Some(strict::<core::Secret>)),
    kind!("", "v1", "Event", "events", "event", ["ev"], true, Some(strict::<core::Event>)),
    kind!("", "v1", "Endpoints", "endpoints", "endpoints", ["ep"], true, Some(strict::<core::Endpoints>)),
    kind!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", ["sa"], true, Some(strict::<core::ServiceAccount>)),
    kind!("apps", "v1", "Deployment", "deployments", "deployment", ["deploy"], true, Some(strict::<apps::Deployment>)),
    kind!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", ["rs"], true, Some(strict::<apps::ReplicaSet>)),
    kind!("batch", "v1", "Job", "jobs", "job", [], true, Some(strict::<batch::Job>)),
    kind!("coordination.k8s.io", "v1", "Lease", "leases", "lease", [], true, Some(strict::<tug_proto::coordination::v1::Lease>)),
    kind!("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", [], true, Some(strict::<rbac::Role>)),
    kind!("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", [], false, Some(strict::<rbac::ClusterRole>)),
    kind!("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", [], true, Some(strict::<rbac::RoleBinding>)),
    kind!("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", [], false, Some(strict::<rbac::ClusterRoleBinding>)),
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("the server doesn't have a resource type \"{0}\"; try one of: {1}")]
    UnknownResource(String, String),
    #[error("no kind \"{kind}\" is registered for version \"{api_version}\"")]
    UnknownKind { api_version: String, kind: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Resolves what a user typed after `tug get`: `pods`, `pod`, `po`, `Pod`,
/// `deployments.apps`, `deploy.apps`, `deployments.v1.apps`.
pub fn resolve(name: &str) -> Result<&'static KindInfo> {
    let lower = name.to_ascii_lowercase();
    let (resource, group) = match lower.split_once('.') {
        Some((r, g)) => (r, Some(g)),
        None => (lower.as_str(), None),
    };
    let matches = |k: &KindInfo| {
        resource == k.plural
            || resource == k.singular
            || resource == k.kind.to_ascii_lowercase()
            || k.short.contains(&resource)
    };
    let group_matches = |k: &KindInfo| match group {
        None => true,
        Some(g) => g == k.group || g == format!("{}.{}", k.version, k.group),
    };
    KINDS
        .iter()
        .find(|k| matches(k) && group_matches(k))
        .ok_or_else(|| Error::UnknownResource(name.to_string(), known_names()))
}

/// Reads `KIND/NAME...` or `KIND NAME...` arguments of one kind (scale, rollout,
/// describe): `["deploy/web"]`, `["deployment", "web", "api"]`.
pub fn targets(args: &[String]) -> Result<(&'static KindInfo, Vec<String>), String> {
    let Some(first) = args.first() else {
        return Err("you must specify the type of resource and a name, e.g. deployment/web".into());
    };
    if let Some((kind, _)) = first.split_once('/') {
        let info = resolve(kind).map_err(|e| e.to_string())?;
        let mut names = Vec::new();
        for a in args {
            match a.split_once('/') {
                Some((k, n))
                    if resolve(k).map_err(|e| e.to_string())?.kind == info.kind
                        && !n.is_empty() =>
                {
                    names.push(n.to_string())
                }
                _ => {
                    return Err(format!(
                        "{a:?}: expected {}/NAME like the first argument",
                        info.singular
                    ))
                }
            }
        }
        return Ok((info, names));
    }
    let info = resolve(first).map_err(|e| e.to_string())?;
    Ok((info, args[1..].to_vec()))
}

/// Finds the kind of a manifest by its `apiVersion` and `kind`.
pub fn by_api_version(api_version: &str, kind: &str) -> Result<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.kind == kind && k.api_version() == api_version)
        .ok_or_else(|| Error::UnknownKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })
}

fn known_names() -> String {
    KINDS
        .iter()
        .map(|k| k.plural)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_users_type_resolve_to_kinds() {
        let cases = [
            ("pods", "Pod"),
            ("pod", "Pod"),
            ("po", "Pod"),
            ("Pod", "Pod"),
            ("svc", "Service"),
            ("deploy", "Deployment"),
            ("deployments.apps", "Deployment"),
            ("deployment.v1.apps", "Deployment"),
            ("rs", "ReplicaSet"),
            ("ns", "Namespace"),
            ("no", "Node"),
            ("cm", "ConfigMap"),
            ("ev", "Event"),
            ("ep", "Endpoints"),
            ("endpoints", "Endpoints"),
            ("jobs.batch", "Job"),
            ("leases.coordination.k8s.io", "Lease"),
        ];
        for (typed, want) in cases {
            assert_eq!(resolve(typed).unwrap().kind, want, "{typed}");
        }
    }

    #[test]
    fn unknown_names_and_wrong_groups_are_errors() {
        for typed in ["pdos", "deployments.batch", ""] {
            let err = resolve(typed).unwrap_err().to_string();
            assert!(err.contains("doesn't have a resource type"), "{err}");
        }
    }

    #[test]
    fn manifests_resolve_by_api_version_and_kind() {
        assert_eq!(
            by_api_version("apps/v1", "Deployment").unwrap().plural,
            "deployments"
        );
        assert_eq!(by_api_version("v1", "Service").unwrap().plural, "services");
        assert!(by_api_version("apps/v1beta1", "Deployment").is_err());
        assert!(by_api_version("v1", "Deployment").is_err());
    }

    #[test]
    fn every_known_kind_is_decoded_locally_before_it_is_sent() {
        for k in KINDS {
            let validate = k
                .validate
                .unwrap_or_else(|| panic!("{} has no decoder", k.kind));
            let minimal = serde_json::json!({"apiVersion": k.api_version(), "kind": k.kind,
                "metadata": {"name": "x"}});
            validate(&minimal).unwrap_or_else(|e| panic!("{}: {e}", k.kind));
            let typo = serde_json::json!({"apiVersion": k.api_version(), "kind": k.kind,
                "metadata": {"name": "x", "lables": {}}});
            let err = validate(&typo).unwrap_err();
            assert!(
                err.starts_with("metadata.lables: unknown field"),
                "{}: {err}",
                k.kind
            );
        }
    }

    #[test]
    fn display_names_match_kubectl() {
        assert_eq!(resolve("deploy").unwrap().display(), "deployment.apps");
        assert_eq!(resolve("po").unwrap().display(), "pod");
    }

    #[test]
    fn strict_decoding_names_the_field() {
        let v = serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": "ten"}});
        let err = strict::<tug_proto::coordination::v1::Lease>(&v).unwrap_err();
        assert!(
            err.starts_with("spec.leaseDurationSeconds: invalid type: string \"ten\""),
            "{err}"
        );
    }
}
