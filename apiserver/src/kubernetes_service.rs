//! The `default/kubernetes` Service (cluster IP 10.96.0.1, port 443) and its Endpoints,
//! through which pods reach the API as `kubernetes.default.svc`, as in Kubernetes.
//!
//! Every replica ensures the Service exists and adds its own advertise address to the
//! Endpoints. Replicas that go away are not removed yet (Kubernetes reconciles that with
//! leases); a dead address only costs clients a retry on another endpoint.

use std::net::SocketAddr;

use serde_json::{json, Value};
use tug_store::{Op, Precondition, Read, TxnResult};

use crate::error::Result;
use crate::registry;
use crate::state::AppState;
use crate::{object, strategy};

/// The first address of the service CIDR belongs to this Service.
pub const CLUSTER_IP: &str = "10.96.0.1";

fn fresh(kind: &str, body: Value) -> Value {
    let mut obj = json!({
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": object::now(),
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
    });
    if let (Some(o), Some(b)) = (obj.as_object_mut(), body.as_object()) {
        o.extend(b.clone());
    }
    obj
}

/// Ensures the Service and adds `advertise` (if any) to the Endpoints.
pub async fn ensure(state: &AppState, advertise: Option<SocketAddr>) -> Result<()> {
    let services = registry::lookup("", "v1", "services").expect("services are served");
    let mut svc = fresh(
        "Service",
        json!({"spec": {
            "type": "ClusterIP",
            "clusterIP": CLUSTER_IP,
            "clusterIPs": [CLUSTER_IP],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": advertise.map_or(6443, |a| a.port())}],
        }}),
    );
    object::set_meta(&mut svc, "generation", Some(json!(1)));
    strategy::prepare_for_create(services, &mut svc);
    // Reserve the IP like any allocation, so no other Service can take it; it may
    // already be ours from an earlier start.
    let _ = state
        .store
        .txn(Op::Put {
            key: format!("/registry/ipallocations/{CLUSTER_IP}"),
            value: json!({"owner": "default/kubernetes"})
                .to_string()
                .into_bytes(),
            precondition: Precondition::Absent,
        })
        .await?;
    state
        .store
        .txn(Op::Put {
            key: services.key(Some("default"), "kubernetes"),
            value: object::encode(&svc)?,
            precondition: Precondition::Absent,
        })
        .await?;

    let Some(addr) = advertise.filter(|a| !a.ip().is_loopback() && !a.ip().is_unspecified()) else {
        return Ok(());
    };
    let endpoints = registry::lookup("", "v1", "endpoints").expect("endpoints are served");
    let key = endpoints.key(Some("default"), "kubernetes");
    let me = json!({"ip": addr.ip().to_string()});
    for _ in 0..16 {
        let current = state.store.get(&key, Read::Linearizable).await?.kv;
        let (mut obj, precondition) = match &current {
            Some(kv) => (
                object::decode(kv)?,
                Precondition::ModRevision(kv.mod_revision),
            ),
            None => (
                fresh(
                    "Endpoints",
                    json!({"subsets": [{"addresses": [], "ports": [{"name": "https", "port": addr.port(), "protocol": "TCP"}]}]}),
                ),
                Precondition::Absent,
            ),
        };
        let addresses = &mut obj["subsets"][0]["addresses"];
        if !addresses.is_array() {
            *addresses = json!([]);
        }
        let list = addresses.as_array_mut().expect("made an array above");
        if list.iter().any(|a| a["ip"] == me["ip"]) {
            return Ok(());
        }
        list.push(me.clone());
        let put = Op::Put {
            key: key.clone(),
            value: object::encode(&obj)?,
            precondition,
        };
        if let TxnResult::Applied { .. } = state.store.txn(put).await? {
            return Ok(());
        }
    }
    Ok(())
}
