//! `meta.k8s.io/v1` Table rendering (server-side printing) with kubectl's columns and
//! cell logic for every kind, and kubectl's `HumanDuration` for ages.
//!
//! Every column is always rendered (as the apiserver does); kubectl hides priority-1
//! columns unless `-o wide`.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// One column: name, type, format and priority (0 = default, 1 = wide).
struct Column(&'static str, &'static str, &'static str, u8, &'static str);

const NAME: Column = Column(
    "Name",
    "string",
    "name",
    0,
    "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
);
const AGE: Column = Column(
    "Age",
    "string",
    "",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.",
);
const CONTAINERS: Column = Column(
    "Containers",
    "string",
    "",
    1,
    "Names of each container in the template.",
);
const IMAGES: Column = Column(
    "Images",
    "string",
    "",
    1,
    "Images referenced by each container in the template.",
);
const SELECTOR: Column = Column("Selector", "string", "", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.");

fn columns(kind: &str) -> Vec<Column> {
    match kind {
        "Pod" => vec![
            NAME,
            Column("Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."),
            Column("Status", "string", "", 0, "The aggregate status of the containers in this pod."),
            Column("Restarts", "string", "", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            AGE,
            Column("IP", "string", "", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            Column("Node", "string", "", 1, "NodeName is a request to schedule this pod onto a specific node."),
            Column("Nominated Node", "string", "", 1, "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
            Column("Readiness Gates", "string", "", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
        ],
        "Deployment" => vec![
            NAME,
            Column("Ready", "string", "", 0, "Number of the pod with ready state"),
            Column("Up-to-date", "integer", "", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            Column("Available", "integer", "", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "ReplicaSet" => vec![
            NAME,
            Column("Desired", "integer", "", 0, "Replicas is the number of desired replicas."),
            Column("Current", "integer", "", 0, "Replicas is the most recently observed number of replicas."),
            Column("Ready", "integer", "", 0, "The number of ready replicas for this replica set."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "Job" => vec![
            NAME,
            Column("Status", "string", "", 0, "Status of the job."),
            Column("Completions", "string", "", 0, "The desired number of successfully finished pods the job should be run with."),
            Column("Duration", "string", "", 0, "Time required to complete the job."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "Service" => vec![
            NAME,
            Column("Type", "string", "", 0, "type determines how the Service is exposed."),
            Column("Cluster-IP", "string", "", 0, "clusterIP is the IP address of the service and is usually assigned randomly."),
            Column("External-IP", "string", "", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            Column("Port(s)", "string", "", 0, "The list of ports that are exposed by this service."),
            AGE,
            Column("Selector", "string", "", 1, "Route service traffic to pods with label keys and values matching this selector."),
        ],
        "Endpoints" => vec![
            NAME,
            Column("Endpoints", "string", "", 0, "Endpoints of the service."),
            AGE,
        ],
        "Namespace" => vec![
            NAME,
            Column("Status", "string", "", 0, "The status of the namespace"),
            AGE,
        ],
        "Node" => vec![
            NAME,
            Column("Status", "string", "", 0, "The status of the node"),
            Column("Roles", "string", "", 0, "The roles of the node"),
            AGE,
            Column("Version", "string", "", 0, "Kubelet Version reported by the node."),
            Column("Internal-IP", "string", "", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
            Column("External-IP", "string", "", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
            Column("OS-Image", "string", "", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            Column("Kernel-Version", "string", "", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            Column("Container-Runtime", "string", "", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ],
        "ConfigMap" => vec![
            NAME,
            Column("Data", "integer", "", 0, "Data contains the configuration data."),
            AGE,
        ],
        "Secret" => vec![
            NAME,
            Column("Type", "string", "", 0, "Used to facilitate programmatic handling of secret data."),
            Column("Data", "integer", "", 0, "Data contains the secret data."),
            AGE,
        ],
        "Event" => vec![
            Column("Last Seen", "string", "", 0, "The time at which the most recent occurrence of this event was recorded."),
            Column("Type", "string", "", 0, "Type of this event (Normal, Warning), new types could be added in the future."),
            Column("Reason", "string", "", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            Column("Object", "string", "", 0, "The object that this event is about."),
            Column("Subobject", "string", "", 1, "The subobject that this event is about."),
            Column("Source", "string", "", 1, "The component reporting this event."),
            Column("Message", "string", "", 0, "A human-readable description of the status of this operation."),
            Column("First Seen", "string", "", 1, "The time at which the event was first recorded."),
            Column("Count", "integer", "", 1, "The number of times this event has occurred."),
            Column("Name", "string", "name", 1, NAME.4),
        ],
        "Lease" => vec![
            NAME,
            Column("Holder", "string", "", 0, "holderIdentity contains the identity of the holder of a current lease."),
            AGE,
        ],
        _ => vec![
            NAME,
            Column("Created At", "date", "", 0, AGE.4),
        ],
    }
}

/// Renders `items` of `kind` as a Table, like the apiserver does for
/// `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`. `list_meta` becomes the
/// Table's metadata (resourceVersion, continue); `now` is the reference for ages.
pub fn to_table(kind: &str, items: &[Value], list_meta: Value, now: DateTime<Utc>) -> Value {
    let column_definitions: Vec<Value> = columns(kind)
        .into_iter()
        .map(|Column(name, ty, format, priority, description)| {
            json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut row = json!({
                "cells": cells(kind, item, now),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item.get("metadata").cloned().unwrap_or_else(|| json!({})),
                },
            });
            if kind == "Pod" {
                if let Some(c) = pod_conditions(item) {
                    row["conditions"] = c;
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": if list_meta.is_object() { list_meta } else { json!({}) },
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn list<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s.to_string()
    }
}

fn time_at(v: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    let t = s(v, pointer);
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// kubectl's `translateTimestampSince`.
fn since(v: &Value, pointer: &str, now: DateTime<Utc>) -> String {
    match time_at(v, pointer) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".to_string(),
    }
}

fn age(item: &Value, now: DateTime<Utc>) -> String {
    since(item, "/metadata/creationTimestamp", now)
}

fn cells(kind: &str, item: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = json!(s(item, "/metadata/name"));
    match kind {
        "Pod" => pod_cells(item, now),
        "Deployment" => {
            let mut c = vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(item, "/status/readyReplicas"),
                    n(item, "/spec/replicas")
                )),
                json!(n(item, "/status/updatedReplicas")),
                json!(n(item, "/status/availableReplicas")),
                json!(age(item, now)),
            ];
            c.extend(template_cells(item));
            c
        }
        "ReplicaSet" => {
            let mut c = vec![
                name,
                json!(n(item, "/spec/replicas")),
                json!(n(item, "/status/replicas")),
                json!(n(item, "/status/readyReplicas")),
                json!(age(item, now)),
            ];
            c.extend(template_cells(item));
            c
        }
        "Job" => {
            let mut c = vec![
                name,
                json!(job_status(item)),
                json!(job_completions(item)),
                json!(job_duration(item, now)),
                json!(age(item, now)),
            ];
            c.extend(template_cells(item));
            c
        }
        "Service" => {
            let ip = list(item, "/spec/clusterIPs")
                .first()
                .and_then(Value::as_str)
                .unwrap_or_else(|| s(item, "/spec/clusterIP"));
            vec![
                name,
                json!(s(item, "/spec/type")),
                json!(or_none(ip)),
                json!(service_external_ip(item)),
                json!(or_none(&service_ports(item))),
                json!(age(item, now)),
                json!(format_labels(item.pointer("/spec/selector"))),
            ]
        }
        "Endpoints" => vec![name, json!(format_endpoints(item)), json!(age(item, now))],
        "Namespace" => vec![name, json!(s(item, "/status/phase")), json!(age(item, now))],
        "Node" => node_cells(item, now),
        "ConfigMap" => {
            let count = ["/data", "/binaryData"]
                .iter()
                .filter_map(|p| item.pointer(p).and_then(Value::as_object))
                .map(|m| m.len())
                .sum::<usize>();
            vec![name, json!(count), json!(age(item, now))]
        }
        "Secret" => {
            let count = item
                .pointer("/data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            vec![
                name,
                json!(s(item, "/type")),
                json!(count),
                json!(age(item, now)),
            ]
        }
        "Event" => event_cells(item, now),
        "Lease" => vec![
            name,
            json!(s(item, "/spec/holderIdentity")),
            json!(age(item, now)),
        ],
        _ => vec![name, json!(s(item, "/metadata/creationTimestamp"))],
    }
}

/// CONTAINERS, IMAGES and SELECTOR of a workload.
fn template_cells(item: &Value) -> Vec<Value> {
    let containers = list(item, "/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    vec![
        json!(names.join(",")),
        json!(images.join(",")),
        json!(format_label_selector(item.pointer("/spec/selector"))),
    ]
}

fn is_restartable_init(c: Option<&Value>) -> bool {
    c.is_some_and(|c| s(c, "/restartPolicy") == "Always")
}

/// kubectl's `printPod`.
fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let init_specs = list(pod, "/spec/initContainers");
    let init_spec = |name: &str| init_specs.iter().find(|c| s(c, "/name") == name);
    let total = list(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| is_restartable_init(Some(c)))
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut restartable_init_restarts = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut note_restart = |status: &Value| {
        if let Some(t) = time_at(status, "/lastState/terminated/finishedAt") {
            if last_restart.is_none_or(|l| l < t) {
                last_restart = Some(t);
            }
        }
    };
    let mut reason = s(pod, "/status/phase").to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    let conditions = list(pod, "/status/conditions");
    if conditions
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }
    let mut initializing = false;
    for (i, c) in list(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        restarts += n(c, "/restartCount");
        note_restart(c);
        let restartable = is_restartable_init(init_spec(s(c, "/name")));
        if restartable {
            restartable_init_restarts += n(c, "/restartCount");
        }
        let terminated = c.pointer("/state/terminated").filter(|t| t.is_object());
        let waiting_reason = s(c, "/state/waiting/reason");
        if terminated.is_some_and(|t| n(t, "/exitCode") == 0) {
            continue;
        }
        if restartable && c.pointer("/started") == Some(&Value::Bool(true)) {
            if c.pointer("/ready") == Some(&Value::Bool(true)) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            if !s(t, "/reason").is_empty() {
                format!("Init:{}", s(t, "/reason"))
            } else if n(t, "/signal") != 0 {
                format!("Init:Signal:{}", n(t, "/signal"))
            } else {
                format!("Init:ExitCode:{}", n(t, "/exitCode"))
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }
    let initialized = conditions
        .iter()
        .any(|c| s(c, "/type") == "Initialized" && s(c, "/status") == "True");
    if !initializing || initialized {
        restarts = restartable_init_restarts;
        let mut has_running = false;
        for c in list(pod, "/status/containerStatuses").iter().rev() {
            restarts += n(c, "/restartCount");
            note_restart(c);
            let waiting = s(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated").filter(|t| t.is_object());
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = if !s(t, "/reason").is_empty() {
                    s(t, "/reason").to_string()
                } else if n(t, "/signal") != 0 {
                    format!("Signal:{}", n(t, "/signal"))
                } else {
                    format!("ExitCode:{}", n(t, "/exitCode"))
                };
            } else if c.pointer("/ready") == Some(&Value::Bool(true))
                && c.pointer("/state/running").is_some_and(Value::is_object)
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }
    let phase = s(pod, "/status/phase");
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        if s(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }
    }
    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };
    let pod_ip = list(pod, "/status/podIPs")
        .first()
        .map(|p| s(p, "/ip"))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| s(pod, "/status/podIP"));
    let gates = list(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ok = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| s(c, "/type") == s(g, "/conditionType"))
                    .is_some_and(|c| s(c, "/status") == "True")
            })
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        json!(s(pod, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(age(pod, now)),
        json!(or_none(pod_ip)),
        json!(or_none(s(pod, "/spec/nodeName"))),
        json!(or_none(s(pod, "/status/nominatedNodeName"))),
        json!(readiness_gates),
    ]
}

/// Finished pods carry a `Completed` row condition (kubectl uses it to filter).
fn pod_conditions(pod: &Value) -> Option<Value> {
    let message = match s(pod, "/status/phase") {
        "Succeeded" => "The pod has completed successfully.",
        "Failed" => "The pod failed.",
        _ => return None,
    };
    Some(
        json!([{"type": "Completed", "status": "True", "reason": s(pod, "/status/phase"), "message": message}]),
    )
}

fn has_true_condition(item: &Value, ty: &str) -> bool {
    list(item, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == ty && s(c, "/status") == "True")
}

fn job_status(job: &Value) -> &'static str {
    if has_true_condition(job, "Complete") {
        "Complete"
    } else if has_true_condition(job, "Failed") {
        "Failed"
    } else if job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        "Terminating"
    } else if has_true_condition(job, "Suspended") {
        "Suspended"
    } else if has_true_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_true_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

fn job_completions(job: &Value) -> String {
    let succeeded = n(job, "/status/succeeded");
    match (
        job.pointer("/spec/completions").and_then(Value::as_i64),
        job.pointer("/spec/parallelism").and_then(Value::as_i64),
    ) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    }
}

fn job_duration(job: &Value, now: DateTime<Utc>) -> String {
    match (
        time_at(job, "/status/startTime"),
        time_at(job, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    }
}

/// kubectl's `getServiceExternalIP`.
fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = list(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match s(svc, "/spec/type") {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_string()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut ips: Vec<&str> = list(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    if s(i, "/ip").is_empty() {
                        s(i, "/hostname")
                    } else {
                        s(i, "/ip")
                    }
                })
                .filter(|x| !x.is_empty())
                .collect();
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".to_string()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// kubectl's `makePortString`: `80/TCP,443:30443/TCP`.
fn service_ports(svc: &Value) -> String {
    list(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let (port, proto) = (n(p, "/port"), s(p, "/protocol"));
            match n(p, "/nodePort") {
                np if np > 0 => format!("{port}:{np}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// kubectl's `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
fn format_endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = list(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut shown = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addresses = list(ss, "/addresses");
        let ports = list(ss, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if shown.len() < MAX {
                    shown.push(s(a, "/ip").to_string());
                }
            }
        } else {
            for p in ports {
                count += addresses.len();
                for a in addresses {
                    if shown.len() < MAX {
                        let ip = s(a, "/ip");
                        let port = n(p, "/port");
                        shown.push(if ip.contains(':') {
                            format!("[{ip}]:{port}")
                        } else {
                            format!("{ip}:{port}")
                        });
                    }
                }
            }
        }
    }
    let joined = shown.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut status: Vec<String> = list(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| s(c, "/type") == "Ready")
        .map(|c| {
            if s(c, "/status") == "True" {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            }
        })
        .into_iter()
        .collect();
    if status.is_empty() {
        status.push("Unknown".to_string());
    }
    if node.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        status.push("SchedulingDisabled".to_string());
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    let roles: Vec<String> = roles.into_iter().collect();
    let address = |ty: &str| {
        list(node, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == ty)
            .map_or("<none>".to_string(), |a| s(a, "/address").to_string())
    };
    let info = |key: &str| {
        let v = s(node, &format!("/status/nodeInfo/{key}"));
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        json!(s(node, "/metadata/name")),
        json!(status.join(",")),
        json!(or_none(&roles.join(","))),
        json!(age(node, now)),
        json!(s(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn event_cells(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let first = if time_at(ev, "/firstTimestamp").is_some() {
        since(ev, "/firstTimestamp", now)
    } else {
        since(ev, "/eventTime", now)
    };
    let mut last = if time_at(ev, "/lastTimestamp").is_some() {
        since(ev, "/lastTimestamp", now)
    } else {
        first.clone()
    };
    let mut count = n(ev, "/count");
    if ev.pointer("/series").is_some_and(Value::is_object) {
        last = since(ev, "/series/lastObservedTime", now);
        count = n(ev, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = s(ev, "/involvedObject/kind").to_lowercase();
    let target = match s(ev, "/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let source = {
        let component = match s(ev, "/source/component") {
            "" => s(ev, "/reportingComponent"),
            c => c,
        };
        let host = match s(ev, "/source/host") {
            "" => s(ev, "/reportingInstance"),
            h => h,
        };
        if host.is_empty() {
            component.to_string()
        } else {
            format!("{component}, {host}")
        }
    };
    vec![
        json!(last),
        json!(s(ev, "/type")),
        json!(s(ev, "/reason")),
        json!(target),
        json!(s(ev, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(ev, "/message").trim()),
        json!(first),
        json!(count),
        json!(s(ev, "/metadata/name")),
    ]
}

/// `labels.FormatLabels`: `a=b,c=d` sorted by key, or `<none>`.
fn format_labels(labels: Option<&Value>) -> String {
    let pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|m| {
            let mut v: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    or_none(&pairs.join(","))
}

/// `metav1.FormatLabelSelector`: `app=web,tier in (a,b),!legacy`, or `<none>`.
fn format_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return "<none>".to_string();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in list(sel, "/matchExpressions") {
        let key = s(e, "/key");
        let mut values: Vec<&str> = list(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort();
        let text = match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<error>".to_string(),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort();
    or_none(
        &reqs
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// kubectl's `duration.HumanDuration`: `5s`, `3m2s`, `10m`, `2h5m`, `2d3h`, `3y10d`.
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    // Up to a second in the future is clock skew, not an error.
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn human_durations_match_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (3 * 86400, "3d"),
            (30 * 86400, "30d"),
            (800 * 86400, "2y70d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(
                human_duration(chrono::Duration::seconds(secs)),
                want,
                "{secs}s"
            );
        }
    }

    fn pod(status: Value, extra_spec: Value) -> Value {
        let mut spec = json!({"containers": [{"name": "a", "image": "x"}]});
        for (k, v) in extra_spec.as_object().unwrap() {
            spec[k] = v.clone();
        }
        json!({"metadata": {"name": "p", "creationTimestamp": "2024-06-01T11:55:00Z"}, "spec": spec, "status": status})
    }

    #[test]
    fn pod_status_column_matches_kubectl() {
        let running = json!({"state": {"running": {}}, "ready": true, "name": "a"});
        let cases: Vec<(&str, Value, Value, &str, &str, &str)> = vec![
            (
                "pending",
                pod(json!({"phase": "Pending"}), json!({})),
                json!(null),
                "0/1",
                "Pending",
                "0",
            ),
            (
                "running and ready",
                pod(
                    json!({"phase": "Running", "containerStatuses": [running]}),
                    json!({}),
                ),
                json!(null),
                "1/1",
                "Running",
                "0",
            ),
            (
                "crash loop with restarts",
                pod(
                    json!({"phase": "Running", "containerStatuses": [{"name": "a", "restartCount": 3,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-06-01T11:58:00Z"}}}]}),
                    json!({}),
                ),
                json!(null),
                "0/1",
                "CrashLoopBackOff",
                "3 (2m ago)",
            ),
            (
                "completed",
                pod(
                    json!({"phase": "Succeeded", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                    json!({}),
                ),
                json!(null),
                "0/1",
                "Completed",
                "0",
            ),
            (
                "exit code without reason",
                pod(
                    json!({"phase": "Failed", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 2}}}]}),
                    json!({}),
                ),
                json!(null),
                "0/1",
                "ExitCode:2",
                "0",
            ),
            (
                "init container running",
                pod(
                    json!({"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"running": {}}}]}),
                    json!({"initContainers": [{"name": "i", "image": "x"}]}),
                ),
                json!(null),
                "0/1",
                "Init:0/1",
                "0",
            ),
            (
                "init container crashing",
                pod(
                    json!({"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                    json!({"initContainers": [{"name": "i", "image": "x"}]}),
                ),
                json!(null),
                "0/1",
                "Init:CrashLoopBackOff",
                "0",
            ),
            (
                "terminating",
                pod(
                    json!({"phase": "Running", "containerStatuses": [running]}),
                    json!({}),
                ),
                json!("2024-06-01T11:59:00Z"),
                "1/1",
                "Terminating",
                "0",
            ),
            (
                "image pull",
                pod(
                    json!({"phase": "Pending", "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
                    json!({}),
                ),
                json!(null),
                "0/1",
                "ErrImagePull",
                "0",
            ),
        ];
        for (name, mut p, deletion, ready, status, restarts) in cases {
            if !deletion.is_null() {
                p["metadata"]["deletionTimestamp"] = deletion;
            }
            let t = to_table("Pod", &[p], json!({"resourceVersion": "7"}), now());
            let cells = &t["rows"][0]["cells"];
            assert_eq!(cells[1], ready, "{name}");
            assert_eq!(cells[2], status, "{name}");
            assert_eq!(cells[3], restarts, "{name}");
            assert_eq!(cells[4], "5m", "{name}");
            assert_eq!(
                cells.as_array().unwrap().len(),
                t["columnDefinitions"].as_array().unwrap().len(),
                "{name}"
            );
        }
    }

    #[test]
    fn table_shape_is_meta_v1_table() {
        let t = to_table(
            "ConfigMap",
            &[json!({"metadata": {"name": "c", "uid": "1"}, "data": {"a": "1", "b": "2"}})],
            json!({"resourceVersion": "9"}),
            now(),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"]["resourceVersion"], "9");
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["rows"][0]["cells"], json!(["c", 2, "<unknown>"]));
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "c", "uid": "1"}})
        );
    }

    #[test]
    fn every_kind_has_as_many_cells_as_columns() {
        let item = json!({"metadata": {"name": "x", "creationTimestamp": "2024-06-01T10:00:00Z"}});
        for kind in [
            "Pod",
            "Deployment",
            "ReplicaSet",
            "Job",
            "Service",
            "Endpoints",
            "Namespace",
            "Node",
            "ConfigMap",
            "Secret",
            "Event",
            "Lease",
            "Widget",
        ] {
            let t = to_table(kind, std::slice::from_ref(&item), json!({}), now());
            assert_eq!(
                t["rows"][0]["cells"].as_array().unwrap().len(),
                t["columnDefinitions"].as_array().unwrap().len(),
                "{kind}"
            );
        }
    }

    #[test]
    fn kind_cells() {
        let created = "2024-06-01T09:00:00Z";
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "Deployment",
                json!({"metadata": {"name": "web", "creationTimestamp": created},
                    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "side", "image": "busybox"}]}}},
                    "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
                json!([
                    "web",
                    "2/3",
                    3,
                    2,
                    "3h",
                    "web,side",
                    "nginx:1.27,busybox",
                    "app=web"
                ]),
            ),
            (
                "ReplicaSet",
                json!({"metadata": {"name": "web-1", "creationTimestamp": created},
                    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]}, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
                    "status": {"replicas": 3}}),
                json!([
                    "web-1",
                    3,
                    3,
                    0,
                    "3h",
                    "web",
                    "nginx",
                    "app=web,tier in (a,b)"
                ]),
            ),
            (
                "Job",
                json!({"metadata": {"name": "pi", "creationTimestamp": created},
                    "spec": {"completions": 1, "parallelism": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}}, "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
                    "status": {"succeeded": 1, "startTime": "2024-06-01T10:00:00Z", "completionTime": "2024-06-01T10:00:42Z",
                        "conditions": [{"type": "Complete", "status": "True"}]}}),
                json!([
                    "pi",
                    "Complete",
                    "1/1",
                    "42s",
                    "3h",
                    "pi",
                    "perl",
                    "batch.kubernetes.io/controller-uid=u"
                ]),
            ),
            (
                "Service",
                json!({"metadata": {"name": "web", "creationTimestamp": created},
                    "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}], "selector": {"app": "web"}}}),
                json!([
                    "web",
                    "NodePort",
                    "10.96.0.10",
                    "<none>",
                    "80:30080/TCP,53/UDP",
                    "3h",
                    "app=web"
                ]),
            ),
            (
                "Endpoints",
                json!({"metadata": {"name": "web", "creationTimestamp": created},
                    "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}], "ports": [{"port": 80}]}]}),
                json!([
                    "web",
                    "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...",
                    "3h"
                ]),
            ),
            (
                "Node",
                json!({"metadata": {"name": "n1", "creationTimestamp": created, "labels": {"node-role.kubernetes.io/control-plane": ""}},
                    "spec": {"unschedulable": true},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "10.1.0.1"}],
                        "nodeInfo": {"kubeletVersion": "v1.32.0-tug", "osImage": "Debian", "kernelVersion": "6.1", "containerRuntimeVersion": "tug://0.1"}}}),
                json!([
                    "n1",
                    "Ready,SchedulingDisabled",
                    "control-plane",
                    "3h",
                    "v1.32.0-tug",
                    "10.1.0.1",
                    "<none>",
                    "Debian",
                    "6.1",
                    "tug://0.1"
                ]),
            ),
            (
                "Namespace",
                json!({"metadata": {"name": "default", "creationTimestamp": created}, "status": {"phase": "Active"}}),
                json!(["default", "Active", "3h"]),
            ),
            (
                "Secret",
                json!({"metadata": {"name": "s", "creationTimestamp": created}, "type": "Opaque", "data": {"a": "eA=="}}),
                json!(["s", "Opaque", 1, "3h"]),
            ),
            (
                "Lease",
                json!({"metadata": {"name": "l", "creationTimestamp": created}, "spec": {"holderIdentity": "sched-1"}}),
                json!(["l", "sched-1", "3h"]),
            ),
            (
                "Event",
                json!({"metadata": {"name": "p.1"}, "type": "Warning", "reason": "FailedScheduling", "message": " no nodes ",
                    "involvedObject": {"kind": "Pod", "name": "p"}, "source": {"component": "default-scheduler"},
                    "firstTimestamp": "2024-06-01T11:00:00Z", "lastTimestamp": "2024-06-01T11:59:30Z", "count": 4}),
                json!([
                    "30s",
                    "Warning",
                    "FailedScheduling",
                    "pod/p",
                    "",
                    "default-scheduler",
                    "no nodes",
                    "60m",
                    4,
                    "p.1"
                ]),
            ),
        ];
        for (kind, item, want) in cases {
            let t = to_table(kind, &[item], json!({}), now());
            assert_eq!(t["rows"][0]["cells"], want, "{kind}");
        }
    }
}
