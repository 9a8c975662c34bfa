//! What the proxy wants programmed: one [`ServicePortRule`] per (Service, port), with its
//! ready endpoints, computed from the Services and Endpoints caches (no I/O).

use std::net::Ipv4Addr;
use tug_net::Protocol;
use tug_proto::core::v1::{Endpoints, Service};

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

/// One port of one Service, as the data path sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePortRule {
    pub namespace: String,
    pub name: String,
    /// `ports[].name`, or the port number when unnamed (for chain names only).
    pub port_name: String,
    pub protocol: Protocol,
    /// The ClusterIP; `None` for services without one (NodePort rules may remain).
    pub cluster_ip: Option<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP` timeout in seconds.
    pub affinity: Option<u32>,
    /// Ready endpoints (ip, target port), sorted and deduplicated.
    pub endpoints: Vec<(Ipv4Addr, u16)>,
}

impl ServicePortRule {
    /// `<ns>/<name>/<proto>/<port>`: the readable part of this port's nft object names.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.protocol.nft(),
            self.port_name
        )
    }
}

/// Every Service port that needs rules, sorted by id (stable scripts). Headless
/// (`clusterIP: None`) and ExternalName services get none; ports of other protocols
/// (SCTP) are skipped. `endpoints_of(ns, name)` looks up the Service's Endpoints.
pub fn desired<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    endpoints_of: impl Fn(&str, &str) -> Option<std::sync::Arc<Endpoints>>,
) -> Vec<ServicePortRule> {
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ip = match spec.cluster_ip.as_deref() {
            Some("None") => continue,
            Some(ip) => ip.parse::<Ipv4Addr>().ok(),
            None => None,
        };
        let node_ports_allowed = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .filter(|t| *t > 0)
                .map(|t| t as u32)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        });
        let eps = endpoints_of(&ns, &name);
        for p in &spec.ports {
            let Ok(protocol) = p.protocol.as_deref().unwrap_or("TCP").parse::<Protocol>() else {
                continue;
            };
            let Ok(port) = u16::try_from(p.port) else {
                continue;
            };
            if port == 0 {
                continue;
            }
            let node_port = p
                .node_port
                .filter(|_| node_ports_allowed)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0);
            if cluster_ip.is_none() && node_port.is_none() {
                continue;
            }
            let pname = p.name.clone().unwrap_or_default();
            let mut endpoints = Vec::new();
            for subset in eps.iter().flat_map(|e| e.subsets.iter()) {
                // Endpoints ports carry the Service port's name (empty for a single
                // unnamed port) with the resolved target port.
                let Some(ep_port) = subset.ports.iter().find(|ep| {
                    ep.name.clone().unwrap_or_default() == pname
                        && ep
                            .protocol
                            .as_deref()
                            .unwrap_or("TCP")
                            .parse::<Protocol>()
                            .ok()
                            == Some(protocol)
                }) else {
                    continue;
                };
                let Ok(target) = u16::try_from(ep_port.port) else {
                    continue;
                };
                for a in &subset.addresses {
                    if let Ok(ip) = a.ip.parse::<Ipv4Addr>() {
                        endpoints.push((ip, target));
                    }
                }
            }
            endpoints.sort();
            endpoints.dedup();
            out.push(ServicePortRule {
                namespace: ns.clone(),
                name: name.clone(),
                port_name: if pname.is_empty() {
                    p.port.to_string()
                } else {
                    pname
                },
                protocol,
                cluster_ip,
                port,
                node_port,
                affinity,
                endpoints,
            });
        }
    }
    out.sort_by_key(|r| r.id());
    out.dedup_by_key(|r| r.id());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn eps(v: serde_json::Value) -> Arc<Endpoints> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn desired_rules_from_services_and_endpoints() {
        let web = svc(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "type": "NodePort", "sessionAffinity": "ClientIP",
                "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}));
        let headless = svc(json!({"metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}));
        let ext = svc(json!({"metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}}));
        let plain = svc(json!({"metadata": {"name": "plain", "namespace": "x"},
            "spec": {"clusterIP": "10.96.0.11", "ports": [{"port": 8080, "nodePort": 30001}]}}));
        let web_eps = eps(
            json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": [
            {"addresses": [{"ip": "10.244.1.3"}, {"ip": "10.244.1.2"}], "notReadyAddresses": [{"ip": "10.244.1.9"}],
             "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]}]}),
        );
        let all = [web, headless, ext, plain];
        let rules = desired(all.iter(), |ns, name| {
            (ns == "default" && name == "web").then(|| web_eps.clone())
        });
        let ids: Vec<String> = rules.iter().map(|r| r.id()).collect();
        assert_eq!(
            ids,
            [
                "default/web/tcp/http",
                "default/web/udp/dns",
                "x/plain/tcp/8080"
            ]
        );
        let http = &rules[0];
        assert_eq!(http.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 10)));
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.affinity, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert_eq!(
            http.endpoints,
            vec![
                (Ipv4Addr::new(10, 244, 1, 2), 8080),
                (Ipv4Addr::new(10, 244, 1, 3), 8080)
            ],
            "ready addresses only, sorted"
        );
        assert_eq!(rules[1].endpoints[0].1, 5353);
        let plain = &rules[2];
        assert_eq!(
            plain.node_port, None,
            "a ClusterIP service has no node port"
        );
        assert!(plain.endpoints.is_empty());
        assert_eq!(plain.affinity, None);
    }
}
