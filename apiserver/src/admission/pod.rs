//! Pods and pod templates: defaulting (pkg/apis/core/v1/defaults.go plus the
//! DefaultTolerationSeconds admission plugin), `ValidatePodSpec` and the pod update rules.

use super::access::{child, default, each_mut, list_at, str_at};
use super::field::Errors;
use super::meta;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use tug_proto::validation as names;
use tug_proto::Quantity;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TOLERATION_OPERATORS: &[&str] = &["Equal", "Exists"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const PROBE_HANDLERS: &[&str] = &["exec", "httpGet", "tcpSocket", "grpc"];
const ENV_SOURCES: &[&str] = &[
    "fieldRef",
    "resourceFieldRef",
    "configMapKeyRef",
    "secretKeyRef",
];
/// Seconds a pod stays bound to a not-ready or unreachable node before eviction.
const DEFAULT_TOLERATION_SECONDS: i64 = 300;
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// `SetDefaults_Pod`: the spec and requests from limits; at create also the
/// not-ready/unreachable tolerations and the initial status (Pending, QoS class).
pub fn default_pod(pod: &mut Value, create: bool) {
    let spec = child(pod, "spec");
    default_pod_spec(spec, true);
    default(spec, "enableServiceLinks", json!(true));
    for key in ["containers", "initContainers"] {
        each_mut(spec, key, requests_from_limits);
    }
    if !create {
        return;
    }
    add_default_tolerations(spec);
    // The Priority admission plugin, with no PriorityClass marked globalDefault.
    if spec
        .get("priorityClassName")
        .is_none_or(|c| c.is_null() || c == "")
    {
        default(spec, "priority", json!(0));
    }
    default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    let qos = qos_class(spec);
    let status = child(pod, "status");
    default(status, "phase", json!("Pending"));
    default(status, "qosClass", json!(qos));
}

/// `SetDefaults_PodSpec` and the defaults of everything inside it. Job templates get no
/// restartPolicy default: Kubernetes makes users choose OnFailure or Never.
pub fn default_pod_spec(spec: &mut Value, default_restart_policy: bool) {
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    if default_restart_policy {
        default(spec, "restartPolicy", json!("Always"));
    }
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    let host_network = spec.get("hostNetwork") == Some(&Value::Bool(true));
    for key in ["containers", "initContainers"] {
        each_mut(spec, key, |c| default_container(c, host_network));
    }
    each_mut(spec, "volumes", default_volume);
}

fn default_container(c: &mut Value, host_network: bool) {
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    let policy = pull_policy_for(str_at(c, "image"));
    default(c, "imagePullPolicy", json!(policy));
    each_mut(c, "ports", |p| {
        default(p, "protocol", json!("TCP"));
        if host_network {
            if let Some(port) = p.get("containerPort").cloned() {
                default(p, "hostPort", port);
            }
        }
    });
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
                default(h, "path", json!("/"));
                default(h, "scheme", json!("HTTP"));
            }
        }
    }
    each_mut(c, "env", |e| {
        if let Some(f) = e
            .pointer_mut("/valueFrom/fieldRef")
            .filter(|f| f.is_object())
        {
            default(f, "apiVersion", json!("v1"));
        }
    });
}

/// Kubernetes pulls `:latest` and untagged images every time, pinned tags once.
fn pull_policy_for(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

fn default_volume(v: &mut Value) {
    let has_source = v.as_object().is_some_and(|m| m.keys().any(|k| k != "name"));
    if !has_source {
        if let Some(m) = v.as_object_mut() {
            m.insert("emptyDir".into(), json!({}));
        }
    }
    for source in ["configMap", "secret", "projected", "downwardAPI"] {
        if let Some(s) = v.get_mut(source).filter(|s| s.is_object()) {
            default(s, "defaultMode", json!(420));
        }
    }
}

/// `SetDefaults_Pod`: a resource with only a limit gets a request equal to it.
fn requests_from_limits(c: &mut Value) {
    let Some(limits) = c
        .pointer("/resources/limits")
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    let requests = child(child(c, "resources"), "requests");
    for (k, v) in limits {
        default(requests, &k, v);
    }
}

/// The DefaultTolerationSeconds admission plugin.
fn add_default_tolerations(spec: &mut Value) {
    let tolerations = list_at(spec, "tolerations").to_vec();
    let tolerates = |taint: &str| {
        tolerations.iter().any(|t| {
            let key = str_at(t, "key");
            let effect = str_at(t, "effect");
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        })
    };
    let mut added = Vec::new();
    for taint in [NOT_READY_TAINT, UNREACHABLE_TAINT] {
        if !tolerates(taint) {
            added.push(
                json!({"key": taint, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}),
            );
        }
    }
    if added.is_empty() {
        return;
    }
    if let Some(m) = spec.as_object_mut() {
        let list = m.entry("tolerations").or_insert_with(|| json!([]));
        if let Some(list) = list.as_array_mut() {
            list.extend(added);
        } else {
            *list = Value::Array(added);
        }
    }
}

/// Guaranteed, Burstable or BestEffort, from the containers' requests and limits
/// (after requests were defaulted from limits).
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = list_at(spec, "containers")
        .iter()
        .chain(list_at(spec, "initContainers"))
        .collect();
    let compute = |m: Option<&Map<String, Value>>, r: &str| m.and_then(|m| m.get(r)).cloned();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        for r in ["cpu", "memory"] {
            let (req, lim) = (compute(requests, r), compute(limits, r));
            any |= req.is_some() || lim.is_some();
            let same = match (&req, &lim) {
                (Some(a), Some(b)) => quantity(a) == quantity(b),
                _ => false,
            };
            guaranteed &= same;
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

fn quantity(v: &Value) -> Option<Quantity> {
    match v {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    }
}

/// `ValidatePodSpec` at `path` (`spec` or `spec.template.spec`).
pub fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Errors) {
    let volumes = validate_volumes(spec, path, errs);
    let host_network = spec.get("hostNetwork") == Some(&Value::Bool(true));
    let mut names = HashSet::new();
    let containers = list_at(spec, "containers");
    if containers.is_empty() {
        errs.required(&format!("{path}.containers"), "");
    }
    for (i, c) in list_at(spec, "initContainers").iter().enumerate() {
        let p = format!("{path}.initContainers[{i}]");
        validate_container(c, &p, host_network, &volumes, &mut names, errs);
        if let Some(rp) = c.get("restartPolicy") {
            errs.one_of(&format!("{p}.restartPolicy"), Some(rp), &["Always"]);
        }
    }
    for (i, c) in containers.iter().enumerate() {
        let p = format!("{path}.containers[{i}]");
        validate_container(c, &p, host_network, &volumes, &mut names, errs);
        if c.get("restartPolicy").is_some() {
            errs.forbidden(
                &format!("{p}.restartPolicy"),
                "may not be set for non-init containers",
            );
        }
    }
    errs.one_of(
        &format!("{path}.restartPolicy"),
        spec.get("restartPolicy"),
        RESTART_POLICIES,
    );
    errs.one_of(
        &format!("{path}.dnsPolicy"),
        spec.get("dnsPolicy"),
        DNS_POLICIES,
    );
    errs.non_negative(
        &format!("{path}.terminationGracePeriodSeconds"),
        spec.get("terminationGracePeriodSeconds"),
    );
    if let Some(v) = spec.get("activeDeadlineSeconds") {
        if v.as_i64().is_none_or(|n| n < 1) {
            errs.invalid(
                &format!("{path}.activeDeadlineSeconds"),
                v,
                "must be between 1 and 2147483647, inclusive",
            );
        }
    }
    meta::validate_labels(
        spec.get("nodeSelector"),
        &format!("{path}.nodeSelector"),
        errs,
    );
    for key in ["hostname", "subdomain"] {
        let v = str_at(spec, key);
        if !v.is_empty() {
            errs.invalid_each(&format!("{path}.{key}"), v, names::dns1123_label(v));
        }
    }
    for key in ["nodeName", "serviceAccountName"] {
        let v = str_at(spec, key);
        if !v.is_empty() {
            errs.invalid_each(&format!("{path}.{key}"), v, names::dns1123_subdomain(v));
        }
    }
    for (i, t) in list_at(spec, "tolerations").iter().enumerate() {
        validate_toleration(t, &format!("{path}.tolerations[{i}]"), errs);
    }
}

fn validate_toleration(t: &Value, path: &str, errs: &mut Errors) {
    let key = str_at(t, "key");
    if !key.is_empty() {
        errs.invalid_each(&format!("{path}.key"), key, names::qualified_name(key));
    }
    let op = str_at(t, "operator");
    match op {
        "" | "Equal" if key.is_empty() => errs.invalid(
            &format!("{path}.operator"),
            &json!(op),
            "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ),
        "Exists" if !str_at(t, "value").is_empty() => errs.invalid(
            &format!("{path}.operator"),
            &t["value"],
            "value must be empty when `operator` is 'Exists'",
        ),
        "" | "Equal" | "Exists" => {}
        _ => errs.not_supported(&format!("{path}.operator"), &json!(op), TOLERATION_OPERATORS),
    }
    let effect = str_at(t, "effect");
    if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
        errs.not_supported(&format!("{path}.effect"), &json!(effect), TAINT_EFFECTS);
    }
    if t.get("tolerationSeconds").is_some_and(|s| !s.is_null()) && effect != "NoExecute" {
        errs.invalid(
            &format!("{path}.effect"),
            &json!(effect),
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        );
    }
}

/// Validates `spec.volumes` and returns the volume names for volumeMount checks.
fn validate_volumes(spec: &Value, path: &str, errs: &mut Errors) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (i, v) in list_at(spec, "volumes").iter().enumerate() {
        let p = format!("{path}.volumes[{i}]");
        let name = str_at(v, "name");
        if name.is_empty() {
            errs.required(&format!("{p}.name"), "");
        } else {
            errs.invalid_each(&format!("{p}.name"), name, names::dns1123_label(name));
            if !seen.insert(name.to_string()) {
                errs.duplicate(&format!("{p}.name"), &json!(name));
            }
        }
        let sources: Vec<&String> = v
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "name").collect())
            .unwrap_or_default();
        match sources.as_slice() {
            [] => errs.required(&p, "must specify a volume type"),
            [_] => {}
            [_, rest @ ..] => {
                for s in rest {
                    errs.forbidden(
                        &format!("{p}.{s}"),
                        "may not specify more than 1 volume type",
                    );
                }
            }
        }
    }
    seen
}

fn validate_container(
    c: &Value,
    path: &str,
    host_network: bool,
    volumes: &HashSet<String>,
    seen_names: &mut HashSet<String>,
    errs: &mut Errors,
) {
    let name = str_at(c, "name");
    if name.is_empty() {
        errs.required(&format!("{path}.name"), "");
    } else {
        errs.invalid_each(&format!("{path}.name"), name, names::dns1123_label(name));
        if !seen_names.insert(name.to_string()) {
            errs.duplicate(&format!("{path}.name"), &json!(name));
        }
    }
    if str_at(c, "image").trim().is_empty() {
        errs.required(&format!("{path}.image"), "");
    }
    errs.one_of(
        &format!("{path}.imagePullPolicy"),
        c.get("imagePullPolicy"),
        PULL_POLICIES,
    );
    errs.one_of(
        &format!("{path}.terminationMessagePolicy"),
        c.get("terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
    );
    validate_ports(c, path, host_network, errs);
    validate_env(c, path, errs);
    validate_resources(c, path, errs);
    let mut mount_paths = HashSet::new();
    for (i, m) in list_at(c, "volumeMounts").iter().enumerate() {
        let p = format!("{path}.volumeMounts[{i}]");
        let vname = str_at(m, "name");
        if vname.is_empty() {
            errs.required(&format!("{p}.name"), "");
        } else if !volumes.contains(vname) {
            errs.not_found(&format!("{p}.name"), &json!(vname));
        }
        let mp = str_at(m, "mountPath");
        if mp.is_empty() {
            errs.required(&format!("{p}.mountPath"), "");
        } else if !mount_paths.insert(mp.to_string()) {
            errs.invalid(&format!("{p}.mountPath"), &json!(mp), "must be unique");
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get(probe).filter(|p| p.is_object()) {
            validate_probe(
                p,
                &format!("{path}.{probe}"),
                probe != "readinessProbe",
                errs,
            );
        }
    }
}

fn validate_port_number(v: Option<&Value>, path: &str, required: bool, errs: &mut Errors) {
    match v.and_then(Value::as_i64) {
        None | Some(0) if required => errs.required(path, ""),
        None | Some(0) => {}
        Some(n) if !(1..=65535).contains(&n) => {
            errs.invalid(path, &json!(n), "must be between 1 and 65535, inclusive")
        }
        Some(_) => {}
    }
}

fn validate_ports(c: &Value, path: &str, host_network: bool, errs: &mut Errors) {
    let mut names_seen = HashSet::new();
    for (i, port) in list_at(c, "ports").iter().enumerate() {
        let p = format!("{path}.ports[{i}]");
        let name = str_at(port, "name");
        if !name.is_empty() {
            errs.invalid_each(&format!("{p}.name"), name, names::port_name(name));
            if !names_seen.insert(name.to_string()) {
                errs.duplicate(&format!("{p}.name"), &json!(name));
            }
        }
        validate_port_number(
            port.get("containerPort"),
            &format!("{p}.containerPort"),
            true,
            errs,
        );
        validate_port_number(port.get("hostPort"), &format!("{p}.hostPort"), false, errs);
        // With the host's network namespace the container port is the host port.
        if host_network {
            if let Some(hp) = port
                .get("hostPort")
                .filter(|hp| *hp != &port["containerPort"])
            {
                errs.invalid(
                    &format!("{p}.hostPort"),
                    hp,
                    "must match `containerPort` when `hostNetwork` is true",
                );
            }
        }
        errs.one_of(&format!("{p}.protocol"), port.get("protocol"), PROTOCOLS);
    }
}

fn validate_env(c: &Value, path: &str, errs: &mut Errors) {
    for (i, e) in list_at(c, "env").iter().enumerate() {
        let p = format!("{path}.env[{i}]");
        let name = str_at(e, "name");
        if name.is_empty() {
            errs.required(&format!("{p}.name"), "");
        } else {
            errs.invalid_each(&format!("{p}.name"), name, names::env_var_name(name));
        }
        let Some(from) = e.get("valueFrom").filter(|v| v.is_object()) else {
            continue;
        };
        if !str_at(e, "value").is_empty() {
            errs.invalid(
                &format!("{p}.valueFrom"),
                &json!(""),
                "may not be specified when `value` is not empty",
            );
        }
        if let Some(fp) = from.pointer("/fieldRef/fieldPath") {
            validate_env_field_path(fp, &format!("{p}.valueFrom.fieldRef.fieldPath"), errs);
        }
        let n = ENV_SOURCES
            .iter()
            .filter(|s| from.get(**s).is_some())
            .count();
        match n {
            0 => errs.required(
                &format!("{p}.valueFrom"),
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ),
            1 => {}
            _ => errs.invalid(
                &format!("{p}.valueFrom"),
                &json!(""),
                "may not have more than one field specified at a time",
            ),
        }
    }
}

/// Pod fields the downward API can put in an environment variable.
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

fn validate_env_field_path(fp: &Value, path: &str, errs: &mut Errors) {
    let s = fp.as_str().unwrap_or("");
    // `metadata.labels['key']` and `metadata.annotations['key']` select one entry.
    let subscript = ["metadata.labels['", "metadata.annotations['"]
        .iter()
        .find_map(|p| s.strip_prefix(p)?.strip_suffix("']"));
    match subscript {
        Some(key) => errs.invalid_each(path, key, names::qualified_name(key)),
        None if ENV_FIELD_PATHS.contains(&s) => {}
        None => errs.not_supported(path, fp, ENV_FIELD_PATHS),
    }
}

fn validate_resources(c: &Value, path: &str, errs: &mut Errors) {
    let requests = c.pointer("/resources/requests").and_then(Value::as_object);
    let limits = c.pointer("/resources/limits").and_then(Value::as_object);
    for (which, list) in [("limits", limits), ("requests", requests)] {
        for (name, v) in list.into_iter().flatten() {
            let p = format!("{path}.resources.{which}[{name}]");
            errs.invalid_each(&p, name, names::qualified_name(name));
            match quantity(v) {
                None => errs.invalid(&p, v, "must be a quantity like 100m, 1.5 or 64Mi"),
                Some(q) if q.as_nanos() < 0 => {
                    errs.invalid(&p, v, "must be greater than or equal to 0")
                }
                Some(_) => {}
            }
        }
    }
    for (name, req) in requests.into_iter().flatten() {
        let (Some(r), Some(l)) = (
            quantity(req),
            limits.and_then(|l| l.get(name)).and_then(quantity),
        ) else {
            continue;
        };
        if r > l {
            errs.invalid(
                &format!("{path}.resources.requests[{name}]"),
                &json!(r.to_string()),
                &format!("must be less than or equal to {name} limit of {l}"),
            );
        }
    }
}

fn validate_probe(p: &Value, path: &str, success_must_be_one: bool, errs: &mut Errors) {
    let handlers: Vec<&&str> = PROBE_HANDLERS
        .iter()
        .filter(|h| p.get(**h).is_some())
        .collect();
    match handlers.as_slice() {
        [] => errs.required(path, "must specify a handler type"),
        [_] => {}
        [_, rest @ ..] => {
            for h in rest {
                errs.forbidden(
                    &format!("{path}.{h}"),
                    "may not specify more than 1 handler type",
                );
            }
        }
    }
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        errs.non_negative(&format!("{path}.{key}"), p.get(key));
    }
    if success_must_be_one {
        if let Some(v) = p.get("successThreshold").filter(|v| v.as_i64() != Some(1)) {
            errs.invalid(&format!("{path}.successThreshold"), v, "must be 1");
        }
    }
    for handler in ["httpGet", "tcpSocket"] {
        if let Some(port) = p.get(handler).and_then(|h| h.get("port")) {
            validate_int_or_name_port(port, &format!("{path}.{handler}.port"), errs);
        }
    }
    if let Some(h) = p.get("httpGet") {
        errs.one_of(
            &format!("{path}.httpGet.scheme"),
            h.get("scheme"),
            &["HTTP", "HTTPS"],
        );
    }
}

/// A port given as a number (1-65535) or an IANA port name.
pub fn validate_int_or_name_port(port: &Value, path: &str, errs: &mut Errors) {
    match port {
        Value::Number(n) => {
            if !n.as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
                errs.invalid(path, port, "must be between 1 and 65535, inclusive");
            }
        }
        Value::String(s) => errs.invalid_each(path, s, names::port_name(s)),
        _ => errs.invalid(path, port, "must be a port number or name"),
    }
}

/// `ValidatePodUpdate`: only images, activeDeadlineSeconds, terminationGracePeriodSeconds
/// and added tolerations may change in a running pod's spec.
pub fn validate_update(new: &Value, old: &Value, errs: &mut Errors) {
    let (new_spec, old_spec) = (&new["spec"], &old["spec"]);
    let mut munged = new_spec.clone();
    for key in ["containers", "initContainers"] {
        let old_list = list_at(old_spec, key);
        if let Some(list) = munged.get_mut(key).and_then(Value::as_array_mut) {
            if list.len() == old_list.len() {
                for (c, o) in list.iter_mut().zip(old_list) {
                    if let (Some(m), Some(img)) = (c.as_object_mut(), o.get("image")) {
                        m.insert("image".into(), img.clone());
                    }
                }
            }
        }
    }
    if let Some(m) = munged.as_object_mut() {
        for key in [
            "activeDeadlineSeconds",
            "terminationGracePeriodSeconds",
            "tolerations",
        ] {
            match old_spec.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
    }
    // Existing tolerations may only gain siblings (or a shorter tolerationSeconds).
    let without_seconds = |t: &Value| {
        let mut t = t.clone();
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    let new_tolerations: Vec<Value> = list_at(new_spec, "tolerations")
        .iter()
        .map(without_seconds)
        .collect();
    if list_at(old_spec, "tolerations")
        .iter()
        .any(|t| !new_tolerations.contains(&without_seconds(t)))
    {
        errs.forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        );
    }
    if munged != *old_spec {
        let changed = changed_fields(&munged, old_spec);
        errs.forbidden(
            "spec",
            &format!(
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative) (changed: {})",
                changed.join(", ")
            ),
        );
    }
}

/// Top-level spec fields that differ, to tell the user what they tried to change.
fn changed_fields(a: &Value, b: &Value) -> Vec<String> {
    let empty = Map::new();
    let (am, bm) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = am.keys().chain(bm.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| am.get(*k) != bm.get(*k))
        .map(|k| format!("spec.{k}"))
        .collect()
}
