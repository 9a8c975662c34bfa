//! Services and Endpoints: defaulting, validation and the update rules (an allocated
//! clusterIP never changes).

use super::access::{child, default, each_mut, list_at, str_at};
use super::field::Errors;
use super::{meta, pod};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::IpAddr;
use tug_proto::validation as names;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

/// `SetDefaults_Service`. Cluster IPs and node ports are allocated elsewhere.
pub fn default_service(svc: &mut Value) {
    let spec = child(svc, "spec");
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    each_mut(spec, "ports", |p| {
        default(p, "protocol", json!("TCP"));
        if let Some(port) = p.get("port").cloned() {
            default(p, "targetPort", port);
        }
    });
    let ty = str_at(spec, "type").to_string();
    if ty != "ExternalName" {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
}

/// `ValidateService` (spec part).
pub fn validate_service(svc: &Value, errs: &mut Errors) {
    let spec = &svc["spec"];
    let ty = str_at(spec, "type");
    errs.one_of("spec.type", spec.get("type"), TYPES);
    errs.one_of(
        "spec.sessionAffinity",
        spec.get("sessionAffinity"),
        &["ClientIP", "None"],
    );
    for key in ["internalTrafficPolicy", "externalTrafficPolicy"] {
        errs.one_of(&format!("spec.{key}"), spec.get(key), &["Cluster", "Local"]);
    }
    let cluster_ip = str_at(spec, "clusterIP");
    let headless = cluster_ip == "None";
    if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<IpAddr>().is_err() {
        errs.invalid(
            "spec.clusterIP",
            &json!(cluster_ip),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        );
    }
    if ty == "ExternalName" {
        let ext = str_at(spec, "externalName");
        if ext.is_empty() {
            errs.required("spec.externalName", "");
        } else {
            errs.invalid_each(
                "spec.externalName",
                ext,
                names::dns1123_subdomain(ext.trim_end_matches('.')),
            );
        }
        if !cluster_ip.is_empty() {
            errs.forbidden("spec.clusterIP", "may not be set for ExternalName services");
        }
    }
    let ports = list_at(spec, "ports");
    if ports.is_empty() && ty != "ExternalName" && !headless {
        errs.required("spec.ports", "");
    }
    let mut port_names = HashSet::new();
    let mut port_keys = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let name = str_at(p, "name");
        if name.is_empty() {
            if ports.len() > 1 {
                errs.required(&format!("{path}.name"), "");
            }
        } else {
            errs.invalid_each(&format!("{path}.name"), name, names::dns1123_label(name));
            if !port_names.insert(name.to_string()) {
                errs.duplicate(&format!("{path}.name"), &json!(name));
            }
        }
        match p.get("port").and_then(Value::as_i64) {
            None | Some(0) => errs.required(&format!("{path}.port"), ""),
            Some(n) if !(1..=65535).contains(&n) => errs.invalid(
                &format!("{path}.port"),
                &json!(n),
                "must be between 1 and 65535, inclusive",
            ),
            Some(_) => {}
        }
        errs.one_of(&format!("{path}.protocol"), p.get("protocol"), PROTOCOLS);
        if let Some(t) = p.get("targetPort") {
            pod::validate_int_or_name_port(t, &format!("{path}.targetPort"), errs);
        }
        if let Some(np) = p
            .get("nodePort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            if ty == "ClusterIP" || ty == "ExternalName" {
                errs.forbidden(
                    &format!("{path}.nodePort"),
                    &format!("may not be used when `type` is '{ty}'"),
                );
            } else if !NODE_PORT_RANGE.contains(&np) {
                errs.invalid(
                    &format!("{path}.nodePort"),
                    &json!(np),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                );
            }
        }
        let key = (p.get("port").cloned(), str_at(p, "protocol").to_string());
        if !port_keys
            .insert(key.0.as_ref().map(Value::to_string).unwrap_or_default() + "/" + &key.1)
        {
            errs.duplicate(&path, &json!({"port": key.0, "protocol": key.1}));
        }
    }
    meta::validate_labels(spec.get("selector"), "spec.selector", errs);
}

/// Keeps what the cluster allocated when a PUT body leaves it out, like Kubernetes'
/// `patchAllocatedValues`.
pub fn carry_over(new: &mut Value, old: &Value) {
    let old_spec = &old["spec"];
    let spec = child(new, "spec");
    for key in ["clusterIP", "clusterIPs"] {
        if let Some(v) = old_spec.get(key) {
            if spec.get(key).is_none_or(|x| x.is_null() || x == "") {
                spec[key] = v.clone();
            }
        }
    }
    let old_ports = list_at(old_spec, "ports").to_vec();
    each_mut(spec, "ports", |p| {
        if p.get("nodePort").is_some() {
            return;
        }
        // Defaults come later, so an unset protocol means TCP here.
        let protocol = |x: &Value| match str_at(x, "protocol") {
            "" => "TCP".to_string(),
            other => other.to_string(),
        };
        let same = old_ports
            .iter()
            .find(|o| o.get("port") == p.get("port") && protocol(o) == protocol(p));
        if let Some(np) = same.and_then(|o| o.get("nodePort")) {
            p["nodePort"] = np.clone();
        }
    });
}

/// An allocated clusterIP may not change.
pub fn validate_update(new: &Value, old: &Value, errs: &mut Errors) {
    let old_ip = str_at(&old["spec"], "clusterIP");
    let new_ip = str_at(&new["spec"], "clusterIP");
    if !old_ip.is_empty() && new_ip != old_ip && str_at(&new["spec"], "type") != "ExternalName" {
        errs.invalid("spec.clusterIP", &json!(new_ip), "field is immutable");
    }
}

/// `ValidateEndpoints`: addresses are IPs, ports are in range.
pub fn validate_endpoints(ep: &Value, errs: &mut Errors) {
    for (i, subset) in list_at(ep, "subsets").iter().enumerate() {
        for key in ["addresses", "notReadyAddresses"] {
            for (j, a) in list_at(subset, key).iter().enumerate() {
                let ip = str_at(a, "ip");
                if ip.parse::<IpAddr>().is_err() {
                    errs.invalid(
                        &format!("subsets[{i}].{key}[{j}].ip"),
                        &json!(ip),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    );
                }
            }
        }
        for (j, p) in list_at(subset, "ports").iter().enumerate() {
            let path = format!("subsets[{i}].ports[{j}]");
            if !p
                .get("port")
                .and_then(Value::as_i64)
                .is_some_and(|n| (1..=65535).contains(&n))
            {
                errs.invalid(
                    &format!("{path}.port"),
                    p.get("port").unwrap_or(&json!(0)),
                    "must be between 1 and 65535, inclusive",
                );
            }
            errs.one_of(&format!("{path}.protocol"), p.get("protocol"), PROTOCOLS);
        }
    }
}

/// `SetDefaults_EndpointPort`.
pub fn default_endpoints(ep: &mut Value) {
    each_mut(ep, "subsets", |s| {
        each_mut(s, "ports", |p| default(p, "protocol", json!("TCP")));
    });
}
