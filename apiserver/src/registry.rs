//! The table of served resources: one row per kind with its URL, storage and subresource facts.

/// Everything the generic REST handlers need to know about one resource.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group, `""` for core.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// URL and storage name, e.g. `pods`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    /// Served with a `/status` subresource: status is ignored on the main resource.
    pub status: bool,
    /// Served with an autoscaling/v1 `/scale` subresource.
    pub scale: bool,
    /// The kind has a `spec`, so objects carry `metadata.generation`.
    pub has_spec: bool,
    /// Field selector labels beyond `metadata.name` / `metadata.namespace`.
    pub field_selectors: &'static [&'static str],
}

impl ResourceInfo {
    /// `apiVersion` as written in objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `pods` or `deployments.apps`, as Kubernetes names resources in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{ns}/{name}", self.plural),
            _ => format!("/registry/{}/{name}", self.plural),
        }
    }

    /// Storage prefix of a collection (one namespace or all); always ends with `/` so
    /// that `default` never matches `default2`.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("/registry/{}/{ns}/", self.plural),
            _ => format!("/registry/{}/", self.plural),
        }
    }

    /// Whether `field` may be used in a field selector on this resource.
    pub fn supports_field(&self, field: &str) -> bool {
        field == "metadata.name"
            || (self.namespaced && field == "metadata.namespace")
            || self.field_selectors.contains(&field)
    }
}

const fn core(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> ResourceInfo {
    ResourceInfo {
        group: "",
        version: "v1",
        kind,
        plural,
        singular,
        short_names: &[],
        namespaced,
        status: false,
        scale: false,
        has_spec: false,
        field_selectors: &[],
    }
}

/// Every served resource. Field selectors follow Kubernetes' `GetAttrs` per kind.
pub static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        short_names: &["po"],
        status: true,
        has_spec: true,
        field_selectors: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ..core("Pod", "pods", "pod", true)
    },
    ResourceInfo {
        short_names: &["svc"],
        status: true,
        has_spec: true,
        ..core("Service", "services", "service", true)
    },
    ResourceInfo {
        short_names: &["ep"],
        ..core("Endpoints", "endpoints", "endpoints", true)
    },
    ResourceInfo {
        short_names: &["ns"],
        status: true,
        has_spec: true,
        field_selectors: &["status.phase"],
        ..core("Namespace", "namespaces", "namespace", false)
    },
    ResourceInfo {
        short_names: &["no"],
        status: true,
        has_spec: true,
        field_selectors: &["spec.unschedulable"],
        ..core("Node", "nodes", "node", false)
    },
    ResourceInfo {
        short_names: &["cm"],
        ..core("ConfigMap", "configmaps", "configmap", true)
    },
    ResourceInfo {
        field_selectors: &["type"],
        ..core("Secret", "secrets", "secret", true)
    },
    ResourceInfo {
        short_names: &["ev"],
        field_selectors: &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ..core("Event", "events", "event", true)
    },
    ResourceInfo {
        group: "apps",
        short_names: &["deploy"],
        status: true,
        scale: true,
        has_spec: true,
        ..core("Deployment", "deployments", "deployment", true)
    },
    ResourceInfo {
        group: "apps",
        short_names: &["rs"],
        status: true,
        scale: true,
        has_spec: true,
        field_selectors: &["status.replicas"],
        ..core("ReplicaSet", "replicasets", "replicaset", true)
    },
    ResourceInfo {
        group: "batch",
        status: true,
        has_spec: true,
        field_selectors: &["status.successful"],
        ..core("Job", "jobs", "job", true)
    },
    ResourceInfo {
        group: "coordination.k8s.io",
        has_spec: true,
        ..core("Lease", "leases", "lease", true)
    },
];

/// The resource served at `/api/v1/{plural}` (group `""`) or `/apis/{group}/{version}/{plural}`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Whether any resource is served in this group version.
pub fn serves_group_version(group: &str, version: &str) -> bool {
    RESOURCES
        .iter()
        .any(|r| r.group == group && r.version == version)
}

/// Namespaced resources, for emptying a namespace that is being deleted.
pub fn namespaced() -> impl Iterator<Item = &'static ResourceInfo> {
    RESOURCES.iter().filter(|r| r.namespaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_prefixes_follow_the_storage_layout() {
        let cases = [
            (
                "",
                "pods",
                Some("default"),
                "x",
                "/registry/pods/default/x",
                "/registry/pods/default/",
            ),
            (
                "",
                "nodes",
                None,
                "n1",
                "/registry/nodes/n1",
                "/registry/nodes/",
            ),
            (
                "apps",
                "deployments",
                Some("a"),
                "d",
                "/registry/deployments/a/d",
                "/registry/deployments/a/",
            ),
        ];
        for (group, plural, ns, name, key, prefix) in cases {
            let r = lookup(group, "v1", plural).unwrap();
            assert_eq!(r.key(ns, name), key);
            assert_eq!(r.prefix(ns), prefix);
        }
        assert_eq!(
            lookup("", "v1", "pods").unwrap().prefix(None),
            "/registry/pods/"
        );
    }

    #[test]
    fn every_plural_is_unique_so_storage_keys_never_collide() {
        let mut plurals: Vec<_> = RESOURCES.iter().map(|r| r.plural).collect();
        plurals.sort();
        plurals.dedup();
        assert_eq!(plurals.len(), RESOURCES.len());
    }

    #[test]
    fn field_selector_support_is_per_kind() {
        let pods = lookup("", "v1", "pods").unwrap();
        assert!(pods.supports_field("spec.nodeName"));
        assert!(pods.supports_field("metadata.namespace"));
        assert!(!pods.supports_field("spec.foo"));
        let nodes = lookup("", "v1", "nodes").unwrap();
        assert!(!nodes.supports_field("metadata.namespace"));
    }
}
