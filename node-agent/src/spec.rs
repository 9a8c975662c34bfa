//! From a Pod's container and its image to what the runtime runs: argv, environment,
//! user and cgroup limits, with Kubernetes' rules for each.
//!
//! Everything here is pure: the worker fetches the ConfigMaps and Secrets a container
//! refers to into [`EnvSources`] first, so these rules are table-tested without a cluster.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tug_proto::core::v1::{Container, EnvVar, Pod};
use tug_proto::Quantity;

/// Why a container's configuration cannot be built; the worker reports it as the
/// container's waiting reason `CreateContainerConfigError` with this message.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
    #[error("env {var}: unsupported fieldPath {path:?}")]
    FieldPath { var: String, path: String },
    #[error("env {var}: unsupported resource {resource:?}")]
    Resource { var: String, resource: String },
    #[error("container {container:?} has no command: the pod gives none and its image has neither Entrypoint nor Cmd")]
    NoCommand { container: String },
    #[error("unable to find user {user:?}: no matching entries in the image's /etc/passwd")]
    UnknownUser { user: String },
    #[error("unable to find group {group:?}: no matching entries in the image's /etc/group")]
    UnknownGroup { group: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The ConfigMaps and Secrets of the pod's namespace a container refers to, by name;
/// a name mapped to `None` was looked up and does not exist.
#[derive(Debug, Default, Clone)]
pub struct EnvSources {
    pub config_maps: HashMap<String, Option<BTreeMap<String, String>>>,
    pub secrets: HashMap<String, Option<BTreeMap<String, String>>>,
}

impl EnvSources {
    /// The ConfigMap and Secret names `container` refers to in env and envFrom.
    pub fn wanted(container: &Container) -> (Vec<String>, Vec<String>) {
        let mut cms = Vec::new();
        let mut secrets = Vec::new();
        for from in &container.env_from {
            if let Some(r) = &from.config_map_ref {
                cms.push(r.name.clone().unwrap_or_default());
            }
            if let Some(r) = &from.secret_ref {
                secrets.push(r.name.clone().unwrap_or_default());
            }
        }
        for var in &container.env {
            let Some(src) = &var.value_from else { continue };
            if let Some(r) = &src.config_map_key_ref {
                cms.push(r.name.clone().unwrap_or_default());
            }
            if let Some(r) = &src.secret_key_ref {
                secrets.push(r.name.clone().unwrap_or_default());
            }
        }
        cms.sort();
        cms.dedup();
        secrets.sort();
        secrets.dedup();
        (cms, secrets)
    }
}

/// Facts about the running pod that `fieldRef` env vars read.
#[derive(Debug, Default, Clone)]
pub struct PodFacts {
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub node_name: String,
}

/// argv per Kubernetes: `command` replaces the image's Entrypoint (and drops its Cmd),
/// `args` replaces its Cmd; `$(VAR)` in both expands from the container's environment.
pub fn argv(
    container: &Container,
    entrypoint: &[String],
    cmd: &[String],
    env: &[(String, String)],
) -> Result<Vec<String>> {
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_all = |v: &[String]| v.iter().map(|s| expand(s, &vars)).collect::<Vec<_>>();
    let mut out = if !container.command.is_empty() {
        expand_all(&container.command)
    } else {
        entrypoint.to_vec()
    };
    if !container.args.is_empty() {
        out.extend(expand_all(&container.args));
    } else if container.command.is_empty() {
        out.extend(cmd.iter().cloned());
    }
    if out.is_empty() {
        return Err(Error::NoCommand {
            container: container.name.clone(),
        });
    }
    Ok(out)
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` escapes a `$`,
/// and anything else (undefined names, unterminated references) is left as written.
pub fn expand(input: &str, vars: &HashMap<&str, &str>) -> String {
    expand_with(input, |name| vars.get(name).map(|v| v.to_string()))
}

/// [`expand`] with any source of variables (subPathExpr reads the downward API too).
pub fn expand_with(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment in Kubernetes' order: the image's Env, then the service
/// link variables, then envFrom (in order, with its prefix), then env (each value may
/// refer to variables defined before it). Later definitions win.
pub fn environment(
    pod: &Pod,
    container: &Container,
    image_env: &[String],
    service_env: &[(String, String)],
    sources: &EnvSources,
    facts: &PodFacts,
) -> Result<Vec<(String, String)>> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| match env
        .iter_mut()
        .find(|(name, _)| *name == k)
    {
        Some(slot) => slot.1 = v,
        None => env.push((k, v)),
    };
    for kv in image_env {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        set(&mut env, k.to_string(), v.to_string());
    }
    for (k, v) in service_env {
        set(&mut env, k.clone(), v.clone());
    }
    for from in &container.env_from {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, optional) = if let Some(r) = &from.config_map_ref {
            let name = r.name.clone().unwrap_or_default();
            match sources.config_maps.get(&name).cloned().flatten() {
                Some(d) => (Some(d), true),
                None if r.optional.unwrap_or(false) => (None, true),
                None => return Err(Error::ConfigMapNotFound(name)),
            }
        } else if let Some(r) = &from.secret_ref {
            let name = r.name.clone().unwrap_or_default();
            match sources.secrets.get(&name).cloned().flatten() {
                Some(d) => (Some(d), true),
                None if r.optional.unwrap_or(false) => (None, true),
                None => return Err(Error::SecretNotFound(name)),
            }
        } else {
            (None, true)
        };
        let _ = optional;
        for (k, v) in data.unwrap_or_default() {
            set(&mut env, format!("{prefix}{k}"), v);
        }
    }
    for var in &container.env {
        if let Some(value) = env_value(pod, container, var, &namespace, sources, facts, &env)? {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(env)
}

fn env_value(
    pod: &Pod,
    container: &Container,
    var: &EnvVar,
    namespace: &str,
    sources: &EnvSources,
    facts: &PodFacts,
    defined: &[(String, String)],
) -> Result<Option<String>> {
    let Some(src) = &var.value_from else {
        let vars: HashMap<&str, &str> = defined
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        return Ok(Some(expand(var.value.as_deref().unwrap_or(""), &vars)));
    };
    if let Some(r) = &src.config_map_key_ref {
        let name = r.name.clone().unwrap_or_default();
        let optional = r.optional.unwrap_or(false);
        return match sources.config_maps.get(&name).cloned().flatten() {
            None if optional => Ok(None),
            None => Err(Error::ConfigMapNotFound(name)),
            Some(data) => match data.get(&r.key) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(Error::KeyNotFound {
                    kind: "configmap",
                    namespace: namespace.to_string(),
                    name,
                    key: r.key.clone(),
                }),
            },
        };
    }
    if let Some(r) = &src.secret_key_ref {
        let name = r.name.clone().unwrap_or_default();
        let optional = r.optional.unwrap_or(false);
        return match sources.secrets.get(&name).cloned().flatten() {
            None if optional => Ok(None),
            None => Err(Error::SecretNotFound(name)),
            Some(data) => match data.get(&r.key) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(Error::KeyNotFound {
                    kind: "secret",
                    namespace: namespace.to_string(),
                    name,
                    key: r.key.clone(),
                }),
            },
        };
    }
    if let Some(f) = &src.field_ref {
        let m = &pod.metadata;
        let spec = pod.spec.as_ref();
        let path = f.field_path.as_str();
        let value = match path {
            "metadata.name" => m.name.clone().unwrap_or_default(),
            "metadata.namespace" => namespace.to_string(),
            "metadata.uid" => m.uid.clone().unwrap_or_default(),
            "spec.nodeName" => facts.node_name.clone(),
            "spec.serviceAccountName" => spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_default(),
            "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
            "status.podIP" | "status.podIPs" => facts.pod_ip.clone().unwrap_or_default(),
            _ => {
                let label = |prefix: &str, map: &BTreeMap<String, String>| {
                    path.strip_prefix(prefix)
                        .and_then(|rest| rest.strip_prefix("['"))
                        .and_then(|rest| rest.strip_suffix("']"))
                        .map(|key| map.get(key).cloned().unwrap_or_default())
                };
                match label("metadata.labels", &m.labels)
                    .or_else(|| label("metadata.annotations", &m.annotations))
                {
                    Some(v) => v,
                    None => {
                        return Err(Error::FieldPath {
                            var: var.name.clone(),
                            path: path.to_string(),
                        })
                    }
                }
            }
        };
        return Ok(Some(value));
    }
    if let Some(r) = &src.resource_field_ref {
        let target = match r.container_name.as_deref() {
            Some(name) if !name.is_empty() => pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == name))
                .unwrap_or(container),
            _ => container,
        };
        let res = target.resources.clone().unwrap_or_default();
        let (map, key) = match r.resource.split_once('.') {
            Some(("limits", k)) => (&res.limits, k),
            Some(("requests", k)) => (&res.requests, k),
            _ => {
                return Err(Error::Resource {
                    var: var.name.clone(),
                    resource: r.resource.clone(),
                })
            }
        };
        let divisor = r.divisor.as_ref().filter(|d| !d.is_zero());
        let value = match (map.get(key), key) {
            (Some(q), _) => *q,
            // An unset limit reads as the node's allocatable, like the kubelet; an unset
            // request as zero.
            (None, _) => Quantity::from_milli(0),
        };
        let out = match divisor {
            Some(d) => {
                let n = value.as_nanos();
                let dn = d.as_nanos().max(1);
                ((n + dn - 1) / dn).to_string()
            }
            None if key == "cpu" => ((value.as_milli() + 999) / 1000).to_string(),
            None => value.as_i64_bytes().to_string(),
        };
        return Ok(Some(out));
    }
    Ok(Some(String::new()))
}

/// uid, gid and supplementary groups: securityContext (container over pod) first, else
/// the image's `User` (`name`, `uid`, `name:group`, `uid:gid`), resolved against the
/// image's /etc/passwd and /etc/group when not numeric.
pub fn user(
    pod: &Pod,
    container: &Container,
    image_user: &str,
    rootfs: &Path,
) -> Result<(u32, u32, Vec<u32>)> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = container.security_context.as_ref();
    let sc_uid = csc
        .and_then(|c| c.run_as_user)
        .or(psc.and_then(|p| p.run_as_user));
    let sc_gid = csc
        .and_then(|c| c.run_as_group)
        .or(psc.and_then(|p| p.run_as_group));
    let mut groups: Vec<u32> = psc
        .map(|p| p.supplemental_groups.iter().map(|g| *g as u32).collect())
        .unwrap_or_default();
    if let Some(fs) = psc.and_then(|p| p.fs_group) {
        groups.push(fs as u32);
    }
    let (image_u, image_g) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    let (mut uid, mut gid) = (0u32, 0u32);
    if let Some(u) = sc_uid {
        uid = u as u32;
        gid = passwd_entry(rootfs, |e| e.2 == uid)
            .map(|e| e.3)
            .unwrap_or(0);
    } else if !image_u.is_empty() {
        match image_u.parse::<u32>() {
            Ok(n) => {
                uid = n;
                gid = passwd_entry(rootfs, |e| e.2 == n).map(|e| e.3).unwrap_or(0);
            }
            Err(_) => {
                let e =
                    passwd_entry(rootfs, |e| e.0 == image_u).ok_or_else(|| Error::UnknownUser {
                        user: image_u.to_string(),
                    })?;
                uid = e.2;
                gid = e.3;
            }
        }
    }
    if let Some(g) = sc_gid {
        gid = g as u32;
    } else if let Some(g) = image_g.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_id(rootfs, g).ok_or_else(|| Error::UnknownGroup {
                group: g.to_string(),
            })?,
        };
    }
    groups.sort_unstable();
    groups.dedup();
    Ok((uid, gid, groups))
}

/// (name, _, uid, gid) of the first /etc/passwd line of the image matching `pred`.
fn passwd_entry(
    rootfs: &Path,
    pred: impl Fn(&(String, String, u32, u32)) -> bool,
) -> Option<(String, String, u32, u32)> {
    let text = std::fs::read_to_string(rootfs.join("etc/passwd")).ok()?;
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some((
                f[0].to_string(),
                f[1].to_string(),
                f[2].parse().ok()?,
                f[3].parse().ok()?,
            ))
        })
        .find(|e| pred(e))
}

fn group_id(rootfs: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(rootfs.join("etc/group")).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == name)
            .then(|| f[2].parse().ok())
            .flatten()
    })
}

/// cgroup limits from `resources`: memory limit, CPU quota from the CPU limit (period
/// 100 ms), CPU shares from the request (or the limit when only that is set, as
/// Kubernetes defaults requests to limits), and the node's per-pod pids limit.
pub fn resources(container: &Container, pids_limit: Option<i64>) -> tug_runtime::Resources {
    let res = container.resources.clone().unwrap_or_default();
    let memory_limit = res
        .limits
        .get("memory")
        .map(|q| q.as_i64_bytes())
        .filter(|b| *b > 0);
    let cpu_limit = res
        .limits
        .get("cpu")
        .map(|q| q.as_milli())
        .filter(|m| *m > 0);
    let cpu_request = res.requests.get("cpu").map(|q| q.as_milli()).or(cpu_limit);
    let period: u64 = 100_000;
    tug_runtime::Resources {
        memory_limit,
        cpu_quota: cpu_limit.map(|m| (m * period as i64 / 1000).max(1000)),
        cpu_period: cpu_limit.map(|_| period),
        cpu_shares: Some(
            cpu_request
                .map(|m| ((m * 1024) / 1000).max(2) as u64)
                .unwrap_or(2),
        ),
        pids_limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn argv_follows_kubernetes_command_and_args_rules() {
        let ep = s(&["/entry"]);
        let cmd = s(&["--default"]);
        let cases = [
            (json!({"name": "c"}), vec!["/entry", "--default"]),
            (json!({"name": "c", "command": ["/bin/x"]}), vec!["/bin/x"]),
            (json!({"name": "c", "args": ["a"]}), vec!["/entry", "a"]),
            (
                json!({"name": "c", "command": ["/bin/x"], "args": ["a"]}),
                vec!["/bin/x", "a"],
            ),
            (
                json!({"name": "c", "command": ["echo", "$(GREETING) $$(X) $(MISSING)"]}),
                vec!["echo", "hi $(X) $(MISSING)"],
            ),
        ];
        let env = vec![("GREETING".to_string(), "hi".to_string())];
        for (c, want) in cases {
            let got = argv(&container(c.clone()), &ep, &cmd, &env).unwrap();
            assert_eq!(got, want, "{c}");
        }
    }

    #[test]
    fn a_container_without_any_command_is_a_config_error() {
        let err = argv(&container(json!({"name": "c"})), &[], &[], &[]).unwrap_err();
        assert!(err.to_string().contains("no command"), "{err}");
    }

    #[test]
    fn expansion_leaves_unterminated_references_alone() {
        let vars = HashMap::from([("A", "1")]);
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("x$", &vars), "x$");
        assert_eq!(expand("$A", &vars), "$A");
        assert_eq!(expand("$(A)$(A)", &vars), "11");
    }

    #[test]
    fn environment_layers_image_envfrom_and_env_in_order() {
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}}, "spec": {"containers": []}}),
        );
        let c = container(json!({
            "name": "c",
            "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
            "env": [
                {"name": "PATH", "value": "/custom"},
                {"name": "GREETING", "value": "hello $(NAME)"},
                {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "AGAIN", "value": "$(NAME)!"},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}
            ],
            "resources": {"limits": {"memory": "64Mi"}}
        }));
        let mut sources = EnvSources::default();
        sources.config_maps.insert(
            "cm".into(),
            Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        );
        sources.secrets.insert(
            "s".into(),
            Some(BTreeMap::from([("password".to_string(), "pw".to_string())])),
        );
        let facts = PodFacts {
            pod_ip: Some("10.244.0.5".into()),
            host_ip: "10.0.0.1".into(),
            node_name: "n1".into(),
        };
        let env = environment(
            &p,
            &c,
            &s(&["PATH=/bin", "LANG=C"]),
            &[("WEB_SERVICE_HOST".into(), "10.96.0.10".into())],
            &sources,
            &facts,
        )
        .unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/custom"));
        assert_eq!(get("LANG"), Some("C"));
        assert_eq!(get("CM_k"), Some("v"));
        assert_eq!(get("WEB_SERVICE_HOST"), Some("10.96.0.10"));
        // $(NAME) is not defined yet when GREETING is, so it stays as written.
        assert_eq!(get("GREETING"), Some("hello $(NAME)"));
        assert_eq!(get("AGAIN"), Some("p!"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.244.0.5"));
        assert_eq!(get("PASS"), Some("pw"));
        assert_eq!(get("MEM"), Some("64"));
    }

    #[test]
    fn a_missing_configmap_is_an_error_unless_optional() {
        let p =
            pod(json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": []}}));
        let mut sources = EnvSources::default();
        sources.config_maps.insert("gone".into(), None);
        let c = container(
            json!({"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]}),
        );
        let err = environment(&p, &c, &[], &[], &sources, &PodFacts::default()).unwrap_err();
        assert_eq!(err.to_string(), "configmap \"gone\" not found");
        let c = container(
            json!({"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}}]}),
        );
        let env = environment(&p, &c, &[], &[], &sources, &PodFacts::default()).unwrap();
        assert!(env.is_empty());
        sources
            .config_maps
            .insert("cm".into(), Some(BTreeMap::new()));
        let c = container(
            json!({"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}),
        );
        let err = environment(&p, &c, &[], &[], &sources, &PodFacts::default()).unwrap_err();
        assert_eq!(err.to_string(), "couldn't find key k in configmap ns/cm");
    }

    #[test]
    fn user_comes_from_security_context_then_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "securityContext": {"supplementalGroups": [7]}}}),
        );
        let c = container(json!({"name": "c"}));
        assert_eq!(user(&p, &c, "", dir.path()).unwrap(), (0, 0, vec![7]));
        assert_eq!(
            user(&p, &c, "web", dir.path()).unwrap(),
            (1000, 1001, vec![7])
        );
        assert_eq!(
            user(&p, &c, "web:staff", dir.path()).unwrap(),
            (1000, 50, vec![7])
        );
        assert_eq!(
            user(&p, &c, "42:43", dir.path()).unwrap(),
            (42, 43, vec![7])
        );
        let c = container(json!({"name": "c", "securityContext": {"runAsUser": 1000}}));
        assert_eq!(
            user(&p, &c, "nobody", dir.path()).unwrap(),
            (1000, 1001, vec![7])
        );
        let c = container(json!({"name": "c"}));
        assert!(matches!(
            user(&p, &c, "ghost", dir.path()),
            Err(Error::UnknownUser { .. })
        ));
    }

    #[test]
    fn resources_map_limits_and_requests_to_cgroup_values() {
        let c = container(
            json!({"name": "c", "resources": {"limits": {"memory": "20Mi", "cpu": "500m"}, "requests": {"cpu": "250m"}}}),
        );
        let r = resources(&c, Some(1024));
        assert_eq!(r.memory_limit, Some(20 * 1024 * 1024));
        assert_eq!(r.cpu_quota, Some(50_000));
        assert_eq!(r.cpu_period, Some(100_000));
        assert_eq!(r.cpu_shares, Some(256));
        assert_eq!(r.pids_limit, Some(1024));
        let c = container(json!({"name": "c"}));
        let r = resources(&c, None);
        assert_eq!(
            (r.memory_limit, r.cpu_quota, r.cpu_shares),
            (None, None, Some(2))
        );
    }
}
