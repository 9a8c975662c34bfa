//! Cluster IPs and node ports of Services, allocated by the apiserver as in Kubernetes.
//!
//! Each allocated IP or port is a reservation key in the store
//! (`/registry/ipallocations/{ip}`, `/registry/nodeports/{port}`) created with
//! `Precondition::Absent`, so two replicas can never hand out the same one. A reservation
//! is taken before the Service is written and released if that write fails, and when the
//! Service is removed (or stops using a node port).

use std::net::Ipv4Addr;

use rand::Rng;
use serde_json::{json, Value};
use tug_store::{Op, Precondition, Read, TxnResult};

use crate::error::{ApiError, FieldCause, Result};
use crate::object;
use crate::state::AppState;

/// Kubernetes' default service CIDR and node port range.
pub const DEFAULT_SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 12);
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Random picks before giving up on a nearly full range.
const ATTEMPTS: usize = 64;

fn ip_key(ip: &str) -> String {
    format!("/registry/ipallocations/{ip}")
}

fn port_key(port: i64) -> String {
    format!("/registry/nodeports/{port}")
}

/// Reservations taken for one write; `release` undoes them if the write fails.
#[derive(Default, Debug)]
pub struct Reservations {
    keys: Vec<String>,
}

impl Reservations {
    pub async fn release(self, state: &AppState) {
        for key in self.keys {
            release_key(state, &key).await;
        }
    }
}

async fn release_key(state: &AppState, key: &str) {
    let op = Op::Delete {
        key: key.to_string(),
        precondition: Precondition::Exists,
    };
    if let Err(e) = state.store.txn(op).await {
        tracing::warn!("releasing {key}: {e}; it stays reserved");
    }
}

fn invalid(svc: &Value, field: &str, message: String) -> ApiError {
    ApiError::invalid_kind(
        "Service",
        "",
        object::name(svc),
        &[FieldCause {
            field: field.into(),
            reason: "FieldValueInvalid".into(),
            message,
        }],
    )
}

/// Reserves `key` for `owner`; false if someone holds it.
async fn reserve(state: &AppState, key: String, owner: &str) -> Result<bool> {
    let op = Op::Put {
        key,
        value: json!({"owner": owner}).to_string().into_bytes(),
        precondition: Precondition::Absent,
    };
    Ok(matches!(
        state.store.txn(op).await?,
        TxnResult::Applied { .. }
    ))
}

fn owner(svc: &Value) -> String {
    format!("{}/{}", object::namespace(svc), object::name(svc))
}

fn wants_node_ports(svc: &Value) -> bool {
    matches!(
        svc["spec"]["type"].as_str(),
        Some("NodePort" | "LoadBalancer")
    )
}

/// Allocates the cluster IP and node ports of a new Service (in place).
pub async fn allocate_for_create(state: &AppState, svc: &mut Value) -> Result<Reservations> {
    let mut res = Reservations::default();
    match allocate_inner(state, svc, &mut res, None).await {
        Ok(()) => Ok(res),
        Err(e) => {
            res.release(state).await;
            Err(e)
        }
    }
}

/// Allocates node ports a changed Service newly needs; returns the reservations taken and
/// the node ports of `old` that the new object no longer uses (release after the write).
pub async fn allocate_for_update(
    state: &AppState,
    svc: &mut Value,
    old: &Value,
) -> Result<(Reservations, Vec<String>)> {
    let mut res = Reservations::default();
    if let Err(e) = allocate_inner(state, svc, &mut res, Some(old)).await {
        res.release(state).await;
        return Err(e);
    }
    let kept = node_ports(svc);
    let dropped = node_ports(old)
        .into_iter()
        .filter(|p| !kept.contains(p))
        .map(port_key)
        .collect();
    Ok((res, dropped))
}

/// Releases everything a removed Service held.
pub async fn release_all(state: &AppState, svc: &Value) {
    let ip = svc["spec"]["clusterIP"].as_str().unwrap_or_default();
    if !ip.is_empty() && ip != "None" {
        release_key(state, &ip_key(ip)).await;
    }
    for p in node_ports(svc) {
        release_key(state, &port_key(p)).await;
    }
}

pub async fn release_keys(state: &AppState, keys: Vec<String>) {
    for k in keys {
        release_key(state, &k).await;
    }
}

fn node_ports(svc: &Value) -> Vec<i64> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64())
        .filter(|p| *p != 0)
        .collect()
}

async fn allocate_inner(
    state: &AppState,
    svc: &mut Value,
    res: &mut Reservations,
    old: Option<&Value>,
) -> Result<()> {
    let who = owner(svc);
    let ty = svc["spec"]["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    if old.is_none() && ty != "ExternalName" {
        let requested = svc["spec"]["clusterIP"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ip = match requested.as_str() {
            "None" => None,
            "" => Some(allocate_ip(state, &who, res).await?),
            ip => {
                let parsed: Ipv4Addr = ip.parse().map_err(|_| {
                    invalid(
                        svc,
                        "spec.clusterIP",
                        format!("Invalid value: {ip:?}: must be a valid IPv4 address"),
                    )
                })?;
                if !in_cidr(parsed) {
                    return Err(invalid(
                        svc,
                        "spec.clusterIP",
                        format!("Invalid value: {ip:?}: provided IP is not in the valid range. The range of valid IPs is {}/{}", DEFAULT_SERVICE_CIDR.0, DEFAULT_SERVICE_CIDR.1),
                    ));
                }
                let key = ip_key(ip);
                if !reserve(state, key.clone(), &who).await? {
                    return Err(invalid(
                        svc,
                        "spec.clusterIP",
                        format!("Invalid value: {ip:?}: provided IP is already allocated"),
                    ));
                }
                res.keys.push(key);
                Some(ip.to_string())
            }
        };
        let spec = &mut svc["spec"];
        match ip {
            Some(ip) => {
                spec["clusterIP"] = json!(ip);
                spec["clusterIPs"] = json!([ip]);
                if spec.get("ipFamilies").is_none() {
                    spec["ipFamilies"] = json!(["IPv4"]);
                }
                if spec.get("ipFamilyPolicy").is_none() {
                    spec["ipFamilyPolicy"] = json!("SingleStack");
                }
            }
            None => {
                spec["clusterIPs"] = json!(["None"]);
            }
        }
    }
    if !wants_node_ports(svc) {
        return Ok(());
    }
    let held: Vec<i64> = old.map(node_ports).unwrap_or_default();
    let count = svc["spec"]["ports"].as_array().map_or(0, Vec::len);
    for i in 0..count {
        let requested = svc["spec"]["ports"][i]["nodePort"].as_i64().unwrap_or(0);
        let field = format!("spec.ports[{i}].nodePort");
        let port = if requested == 0 {
            allocate_port(state, &who, res).await?
        } else if held.contains(&requested) {
            requested
        } else {
            if !(i64::from(*NODE_PORTS.start())..=i64::from(*NODE_PORTS.end())).contains(&requested)
            {
                return Err(invalid(
                    svc,
                    &field,
                    format!("Invalid value: {requested}: provided port is not in the valid range. The range of valid ports is 30000-32767"),
                ));
            }
            let key = port_key(requested);
            if !reserve(state, key.clone(), &who).await? {
                return Err(invalid(
                    svc,
                    &field,
                    format!("Invalid value: {requested}: provided port is already allocated"),
                ));
            }
            res.keys.push(key);
            requested
        };
        svc["spec"]["ports"][i]["nodePort"] = json!(port);
    }
    Ok(())
}

fn in_cidr(ip: Ipv4Addr) -> bool {
    let (base, bits) = DEFAULT_SERVICE_CIDR;
    let mask = u32::MAX << (32 - bits);
    u32::from(ip) & mask == u32::from(base)
}

async fn allocate_ip(state: &AppState, who: &str, res: &mut Reservations) -> Result<String> {
    let (base, bits) = DEFAULT_SERVICE_CIDR;
    let size = 1u32 << (32 - bits);
    for _ in 0..ATTEMPTS {
        // .0 is the network, .1 is the `kubernetes` Service's, the last is broadcast.
        let offset = rand::thread_rng().gen_range(2..size - 1);
        let ip = Ipv4Addr::from(u32::from(base) + offset).to_string();
        let key = ip_key(&ip);
        if reserve(state, key.clone(), who).await? {
            res.keys.push(key);
            return Ok(ip);
        }
    }
    Err(ApiError::internal(
        "no free cluster IP found in the service CIDR",
    ))
}

async fn allocate_port(state: &AppState, who: &str, res: &mut Reservations) -> Result<i64> {
    for _ in 0..ATTEMPTS {
        let port = i64::from(rand::thread_rng().gen_range(NODE_PORTS));
        let key = port_key(port);
        if reserve(state, key.clone(), who).await? {
            res.keys.push(key);
            return Ok(port);
        }
    }
    // Nearly full: walk the range once.
    for port in NODE_PORTS {
        let key = port_key(i64::from(port));
        if state
            .store
            .get(&key, Read::Linearizable)
            .await?
            .kv
            .is_none()
            && reserve(state, key.clone(), who).await?
        {
            res.keys.push(key);
            return Ok(i64::from(port));
        }
    }
    Err(ApiError::internal("no free node port left in 30000-32767"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_cidr_is_kubernetes_default() {
        assert!(in_cidr("10.96.0.10".parse().unwrap()));
        assert!(in_cidr("10.111.255.254".parse().unwrap()));
        assert!(!in_cidr("10.112.0.1".parse().unwrap()));
        assert!(!in_cidr("192.168.0.1".parse().unwrap()));
    }
}
