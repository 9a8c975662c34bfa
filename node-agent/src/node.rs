//! The Node object and its heartbeat: registration with capacity read from the host,
//! the Lease in `kube-node-lease` renewed every 10 s, and node status updates.

use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tug_client::{Api, Client, PatchKind};
use tug_proto::coordination::v1::Lease;
use tug_proto::core::v1::{Node, Taint};
use tug_proto::meta::v1::{MicroTime, Time};
use tug_proto::Quantity;

/// What the agent says about its host.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub ip: String,
    pub hostname: String,
    pub port: u16,
    pub pod_cidr: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub max_pods: u32,
}

/// Host facts read once at start.
#[derive(Debug, Clone)]
pub struct Host {
    pub cpus: usize,
    pub memory_bytes: i64,
    pub kernel: String,
    pub os_image: String,
    pub boot_id: String,
    pub machine_id: String,
}

impl Host {
    pub fn read() -> Host {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let memory_kib: i64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".to_string());
        Host {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_bytes: memory_kib * 1024,
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image,
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            machine_id: read("/etc/machine-id"),
        }
    }
}

pub const KUBELET_VERSION: &str = "v1.32.0-tug";

fn status_json(
    info: &NodeInfo,
    host: &Host,
    ready: bool,
    disk_pressure: bool,
    images: serde_json::Value,
) -> serde_json::Value {
    let now = Time::now();
    let capacity = json!({
        "cpu": Quantity::new(host.cpus as i64, tug_proto::quantity::Format::DecimalSI),
        "memory": Quantity::from_bytes(host.memory_bytes),
        "pods": info.max_pods.to_string(),
    });
    let cond = |type_: &str, status: bool, reason: &str, message: &str| {
        json!({
            "type": type_,
            "status": if status { "True" } else { "False" },
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        })
    };
    json!({
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            cond("MemoryPressure", false, "KubeletHasSufficientMemory", "tug-agent has sufficient memory available"),
            if disk_pressure {
                cond("DiskPressure", true, "KubeletHasDiskPressure", "tug-agent has disk pressure: less than 10% of the root dir's filesystem is available")
            } else {
                cond("DiskPressure", false, "KubeletHasNoDiskPressure", "tug-agent has no disk pressure")
            },
            cond("PIDPressure", false, "KubeletHasSufficientPID", "tug-agent has sufficient PID available"),
            if ready {
                cond("Ready", true, "KubeletReady", "tug-agent is posting ready status")
            } else {
                cond("Ready", false, "KubeletNotReady", "tug-agent is starting")
            },
        ],
        "addresses": [
            {"type": "InternalIP", "address": info.ip},
            {"type": "Hostname", "address": info.hostname},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": info.port}},
        "nodeInfo": {
            "machineID": host.machine_id,
            "systemUUID": host.machine_id,
            "bootID": host.boot_id,
            "kernelVersion": host.kernel,
            "osImage": host.os_image,
            "containerRuntimeVersion": concat!("tug://", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        },
        "images": images,
    })
}

/// Creates the Node or, when it exists (an agent restart), refreshes its labels and
/// status without touching what the control plane owns (spec.podCIDR, taints added by
/// controllers, unschedulable). Returns the Node as stored.
pub async fn register(
    client: &Client,
    info: &NodeInfo,
    host: &Host,
) -> Result<Node, tug_client::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut labels = info.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), info.hostname.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert(
        "kubernetes.io/arch".into(),
        std::env::consts::ARCH
            .replace("x86_64", "amd64")
            .replace("aarch64", "arm64"),
    );
    let node = match nodes.get_opt(&info.name).await? {
        Some(existing) => {
            nodes
                .patch(
                    &info.name,
                    PatchKind::Merge,
                    &json!({"metadata": {"labels": labels}}),
                )
                .await?;
            let mut spec_patch = serde_json::Map::new();
            let spec = existing.spec.clone().unwrap_or_default();
            if spec.pod_cidr.is_none() {
                if let Some(cidr) = &info.pod_cidr {
                    spec_patch.insert("podCIDR".into(), json!(cidr));
                    spec_patch.insert("podCIDRs".into(), json!([cidr]));
                }
            }
            if !spec_patch.is_empty() {
                nodes
                    .patch(&info.name, PatchKind::Merge, &json!({"spec": spec_patch}))
                    .await?;
            }
            existing
        }
        None => {
            let node: Node = serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": info.name, "labels": labels},
                "spec": {
                    "podCIDR": info.pod_cidr,
                    "podCIDRs": info.pod_cidr.iter().collect::<Vec<_>>(),
                    "taints": info.taints,
                },
            }))
            .map_err(tug_client::Error::Encode)?;
            match nodes.create(&node).await {
                Ok(n) => n,
                Err(e) if e.is_already_exists() => nodes.get(&info.name).await?,
                Err(e) => return Err(e),
            }
        }
    };
    let _ = node;
    nodes
        .patch_status(
            &info.name,
            PatchKind::Merge,
            &json!({"status": status_json(info, host, false, false, json!([]))}),
        )
        .await
}

/// Reports the node Ready with fresh conditions and the images it holds.
pub async fn update_status(
    client: &Client,
    info: &NodeInfo,
    host: &Host,
    images: Vec<(Vec<String>, u64)>,
    disk_pressure: bool,
) -> Result<Node, tug_client::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let images: Vec<serde_json::Value> = images
        .into_iter()
        .map(|(names, size)| json!({"names": names, "sizeBytes": size}))
        .collect();
    nodes
        .patch_status(
            &info.name,
            PatchKind::Merge,
            &json!({"status": status_json(info, host, true, disk_pressure, json!(images))}),
        )
        .await
}

/// Creates or renews the node's Lease (holder = node name).
pub async fn renew_lease(
    client: &Client,
    node: &str,
    duration: Duration,
) -> Result<(), tug_client::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = MicroTime::now();
    match leases.get_opt(node).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.renew_time = Some(now);
            spec.holder_identity = Some(node.to_string());
            spec.lease_duration_seconds = Some(duration.as_secs() as i32);
            leases.replace(node, &lease).await?;
        }
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": node, "namespace": "kube-node-lease"},
                "spec": {
                    "holderIdentity": node,
                    "leaseDurationSeconds": duration.as_secs(),
                    "renewTime": now,
                },
            }))
            .map_err(tug_client::Error::Encode)?;
            match leases.create(&lease).await {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_facts_are_read_from_this_machine() {
        let h = Host::read();
        assert!(h.cpus >= 1);
        assert!(h.memory_bytes > 0);
        assert!(!h.kernel.is_empty());
    }

    #[test]
    fn status_reports_capacity_addresses_and_the_kubelet_port() {
        let info = NodeInfo {
            name: "n1".into(),
            ip: "10.0.0.1".into(),
            hostname: "n1".into(),
            port: 10250,
            pod_cidr: None,
            labels: Default::default(),
            taints: vec![],
            max_pods: 110,
        };
        let host = Host {
            cpus: 2,
            memory_bytes: 1 << 30,
            kernel: "6.1".into(),
            os_image: "Debian".into(),
            boot_id: "b".into(),
            machine_id: "m".into(),
        };
        let s = status_json(&info, &host, true, false, json!([]));
        assert_eq!(s["capacity"]["cpu"], "2");
        assert_eq!(s["capacity"]["memory"], "1Gi");
        assert_eq!(s["capacity"]["pods"], "110");
        assert_eq!(s["addresses"][0]["address"], "10.0.0.1");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(s["conditions"][3]["type"], "Ready");
        assert_eq!(s["conditions"][3]["status"], "True");
        let node: Node =
            serde_json::from_value(json!({"metadata": {"name": "n1"}, "status": s})).unwrap();
        assert_eq!(node.status.unwrap().conditions.len(), 4);
    }
}
