//! The files every container of a pod sees under /etc: `hosts` (localhost plus the
//! pod's own name and IP, and hostAliases), `hostname`, and `resolv.conf` (the cluster
//! DNS with Kubernetes' search path when the agent knows one, else the node's), plus the
//! small pod-level facts the sandbox needs (host ports, the pod cgroup's limits).

use crate::agent::Options;
use std::path::Path;
use tug_proto::core::v1::{Container, Pod, Service};
use tug_runtime::{Mount, MountKind};

/// The pod's hostname: `spec.hostname`, else its name (at most 63 characters).
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    name.chars().take(63).collect()
}

fn hosts_file(pod: &Pod, ip: &str, opts: &Options) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let name = hostname(pod);
    if !ip.is_empty() && !host_network {
        match (&spec.subdomain, &pod.metadata.namespace) {
            (Some(sub), Some(ns)) if !sub.is_empty() => out.push_str(&format!(
                "{ip}\t{name}.{sub}.{ns}.svc.{}\t{name}\n",
                opts.cluster_domain
            )),
            _ => out.push_str(&format!("{ip}\t{name}\n")),
        }
    }
    for alias in &spec.host_aliases {
        out.push_str(&format!(
            "\n# Entries added by HostAliases.\n{}\t{}\n",
            alias.ip,
            alias.hostnames.join("\t")
        ));
    }
    out
}

fn resolv_conf(pod: &Pod, opts: &Options) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec
        .dns_policy
        .clone()
        .unwrap_or_else(|| "ClusterFirst".to_string());
    let host_network = spec.host_network.unwrap_or(false);
    let node = || std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = match (&opts.cluster_dns, policy.as_str(), host_network) {
        (Some(dns), "ClusterFirst", false) | (Some(dns), "ClusterFirstWithHostNet", _) => {
            let ns = pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string());
            let d = &opts.cluster_domain;
            format!("search {ns}.svc.{d} svc.{d} {d}\nnameserver {dns}\noptions ndots:5\n")
        }
        (_, "None", _) => String::new(),
        _ => node(),
    };
    if let Some(cfg) = &spec.dns_config {
        for ns in &cfg.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !cfg.searches.is_empty() {
            out.push_str(&format!("search {}\n", cfg.searches.join(" ")));
        }
    }
    out
}

/// Writes `<pod dir>/etc/{hosts,hostname,resolv.conf}`.
pub fn write(dir: &Path, pod: &Pod, ip: &str, opts: &Options) -> std::io::Result<()> {
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc)?;
    std::fs::write(etc.join("hosts"), hosts_file(pod, ip, opts))?;
    std::fs::write(etc.join("hostname"), format!("{}\n", hostname(pod)))?;
    std::fs::write(etc.join("resolv.conf"), resolv_conf(pod, opts))?;
    Ok(())
}

/// Bind mounts of the pod's /etc files, unless the container mounts something there
/// itself.
pub fn mounts(dir: &Path, _pod: &Pod, c: &Container) -> Vec<Mount> {
    ["hosts", "hostname", "resolv.conf"]
        .into_iter()
        .map(|f| (f, format!("/etc/{f}")))
        .filter(|(_, dest)| !c.volume_mounts.iter().any(|m| &m.mount_path == dest))
        .map(|(f, destination)| Mount {
            source: dir.join("etc").join(f),
            destination,
            read_only: false,
            kind: MountKind::Bind,
        })
        .collect()
}

/// The pod's `hostPort` mappings.
pub fn host_ports(pod: &Pod) -> Vec<tug_net::HostPort> {
    let spec = pod.spec.clone().unwrap_or_default();
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter())
        .filter_map(|p| {
            let host_port = p.host_port.filter(|h| *h > 0)?;
            Some(tug_net::HostPort {
                host_port: host_port as u16,
                container_port: p.container_port as u16,
                protocol: if p.protocol.as_deref() == Some("UDP") {
                    tug_net::Protocol::Udp
                } else {
                    tug_net::Protocol::Tcp
                },
                host_ip: p.host_ip.as_deref().and_then(|ip| ip.parse().ok()),
            })
        })
        .collect()
}

/// Limits of the pod cgroup: the sum of the containers' limits when every container has
/// one (else unlimited), as the kubelet sizes the pod-level cgroup.
pub fn pod_resources(pod: &Pod) -> tug_runtime::Resources {
    let spec = pod.spec.clone().unwrap_or_default();
    let sum = |key: &str, f: fn(&tug_proto::Quantity) -> i64| -> Option<i64> {
        let mut total = 0i64;
        for c in &spec.containers {
            let q = c.resources.as_ref().and_then(|r| r.limits.get(key))?;
            total += f(q);
        }
        Some(total).filter(|t| *t > 0)
    };
    let memory = sum("memory", |q| q.as_i64_bytes());
    let cpu_milli = sum("cpu", |q| q.as_milli());
    tug_runtime::Resources {
        memory_limit: memory,
        cpu_quota: cpu_milli.map(|m| (m * 100).max(1000)),
        cpu_period: cpu_milli.map(|_| 100_000),
        cpu_shares: None,
        pids_limit: None,
    }
}

/// Docker-link style variables (`WEB_SERVICE_HOST`, `WEB_SERVICE_PORT`, `WEB_PORT_80_TCP`,
/// ...) for the services of the pod's namespace that exist when it starts, and always
/// for `default/kubernetes`, as Kubernetes injects them (all of the namespace's only
/// while `enableServiceLinks` is true, the default).
pub fn service_env(pod: &Pod, services: &[std::sync::Arc<Service>]) -> Vec<(String, String)> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut out = Vec::new();
    let mut services: Vec<&Service> = services
        .iter()
        .map(|s| s.as_ref())
        .filter(|s| {
            let sns = s.metadata.namespace.as_deref().unwrap_or_default();
            (links && sns == ns)
                || (sns == "default" && s.metadata.name.as_deref() == Some("kubernetes"))
        })
        .collect();
    services.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for s in services {
        let spec = s.spec.clone().unwrap_or_default();
        let Some(ip) = spec
            .cluster_ip
            .clone()
            .filter(|ip| !ip.is_empty() && ip != "None")
        else {
            continue;
        };
        let name = s
            .metadata
            .name
            .clone()
            .unwrap_or_default()
            .to_uppercase()
            .replace('-', "_");
        let Some(first) = spec.ports.first() else {
            continue;
        };
        out.push((format!("{name}_SERVICE_HOST"), ip.clone()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &spec.ports {
            if let Some(pname) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pname.to_uppercase().replace('-', "_")
                    ),
                    p.port.to_string(),
                ));
            }
        }
        let proto = first.protocol.clone().unwrap_or_else(|| "TCP".into());
        out.push((
            format!("{name}_PORT"),
            format!("{}://{ip}:{}", proto.to_lowercase(), first.port),
        ));
        for p in &spec.ports {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((
                prefix.clone(),
                format!("{}://{ip}:{}", proto.to_lowercase(), p.port),
            ));
            out.push((format!("{prefix}_PROTO"), proto.to_lowercase()));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(dns: Option<&str>) -> Options {
        Options {
            cluster_dns: dns.map(|d| d.parse().unwrap()),
            ..Options::default()
        }
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn hosts_holds_localhost_and_the_pod_name_and_ip() {
        let p = pod(
            json!({"metadata": {"name": "web-1", "namespace": "default"}, "spec": {"containers": []}}),
        );
        let hosts = hosts_file(&p, "10.244.1.5", &opts(None));
        assert!(hosts.contains("127.0.0.1\tlocalhost\n"));
        assert!(hosts.contains("10.244.1.5\tweb-1\n"), "{hosts}");
    }

    #[test]
    fn resolv_conf_uses_the_cluster_dns_and_search_path_when_known() {
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": {"containers": []}}),
        );
        let r = resolv_conf(&p, &opts(Some("10.96.0.10")));
        assert_eq!(r, "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n");
    }

    #[test]
    fn service_links_name_the_namespaces_services_and_kubernetes() {
        let svc =
            |ns: &str, name: &str, ip: &str, ports: serde_json::Value| -> std::sync::Arc<Service> {
                std::sync::Arc::new(
                    serde_json::from_value(json!({
                        "metadata": {"name": name, "namespace": ns},
                        "spec": {"clusterIP": ip, "ports": ports}
                    }))
                    .unwrap(),
                )
            };
        let services = vec![
            svc(
                "shop",
                "web-front",
                "10.96.0.20",
                json!([{"name": "http", "port": 80}, {"port": 53, "protocol": "UDP"}]),
            ),
            svc("shop", "headless", "None", json!([{"port": 80}])),
            svc("other", "db", "10.96.0.30", json!([{"port": 5432}])),
            svc(
                "default",
                "kubernetes",
                "10.96.0.1",
                json!([{"name": "https", "port": 443}]),
            ),
        ];
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": {"containers": []}}),
        );
        let env: std::collections::BTreeMap<String, String> =
            service_env(&p, &services).into_iter().collect();
        assert_eq!(env["WEB_FRONT_SERVICE_HOST"], "10.96.0.20");
        assert_eq!(env["WEB_FRONT_SERVICE_PORT"], "80");
        assert_eq!(env["WEB_FRONT_SERVICE_PORT_HTTP"], "80");
        assert_eq!(env["WEB_FRONT_PORT"], "tcp://10.96.0.20:80");
        assert_eq!(env["WEB_FRONT_PORT_53_UDP_PROTO"], "udp");
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
        assert!(
            !env.keys()
                .any(|k| k.starts_with("DB_") || k.starts_with("HEADLESS_")),
            "{env:?}"
        );
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": {"containers": [], "enableServiceLinks": false}}),
        );
        let env: Vec<String> = service_env(&p, &services)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(env.iter().all(|k| k.starts_with("KUBERNETES_")), "{env:?}");
    }

    #[test]
    fn host_ports_and_pod_limits_come_from_the_containers() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "ports": [{"containerPort": 8080, "hostPort": 18080}, {"containerPort": 9090}],
             "resources": {"limits": {"memory": "20Mi", "cpu": "500m"}}},
            {"name": "b", "resources": {"limits": {"memory": "10Mi", "cpu": "1"}}}
        ]}}));
        let ports = host_ports(&p);
        assert_eq!(ports.len(), 1);
        assert_eq!((ports[0].host_port, ports[0].container_port), (18080, 8080));
        let r = pod_resources(&p);
        assert_eq!(r.memory_limit, Some(30 * 1024 * 1024));
        assert_eq!(r.cpu_quota, Some(150_000));
    }
}
