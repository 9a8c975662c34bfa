//! Nodes: taints and pod CIDRs (`ValidateNode`, `ValidateNodeUpdate`).

use super::access::{list_at, str_at};
use super::field::Errors;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::IpAddr;
use tug_proto::validation as names;

const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
        (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32,
        (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128,
        _ => false,
    }
}

/// The pod CIDRs of a node: `podCIDRs`, or the older single `podCIDR`.
fn pod_cidrs(node: &Value) -> Vec<String> {
    let list: Vec<String> = list_at(&node["spec"], "podCIDRs")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if !list.is_empty() {
        return list;
    }
    match str_at(&node["spec"], "podCIDR") {
        "" => Vec::new(),
        one => vec![one.to_string()],
    }
}

/// `ValidateNode` (spec part).
pub fn validate_node(node: &Value, errs: &mut Errors) {
    let spec = &node["spec"];
    let mut seen = HashSet::new();
    for (i, t) in list_at(spec, "taints").iter().enumerate() {
        let path = format!("spec.taints[{i}]");
        let key = str_at(t, "key");
        errs.invalid_each(&format!("{path}.key"), key, names::qualified_name(key));
        let value = str_at(t, "value");
        errs.invalid_each(&format!("{path}.value"), value, names::label_value(value));
        let effect = str_at(t, "effect");
        if effect.is_empty() {
            errs.required(&format!("{path}.effect"), "");
        } else if !TAINT_EFFECTS.contains(&effect) {
            errs.not_supported(&format!("{path}.effect"), &json!(effect), TAINT_EFFECTS);
        }
        if !seen.insert((key.to_string(), effect.to_string())) {
            errs.duplicate(&path, &json!({"key": key, "effect": effect}));
        }
    }
    let cidr = str_at(spec, "podCIDR");
    if !cidr.is_empty() && !is_cidr(cidr) {
        errs.invalid("spec.podCIDR", &json!(cidr), CIDR_MSG);
    }
    for (i, c) in list_at(spec, "podCIDRs").iter().enumerate() {
        let c = c.as_str().unwrap_or("");
        if !is_cidr(c) {
            errs.invalid(&format!("spec.podCIDRs[{i}]"), &json!(c), CIDR_MSG);
        }
    }
}

/// A node's pod CIDRs, once assigned, never change.
pub fn validate_update(new: &Value, old: &Value, errs: &mut Errors) {
    let old_cidrs = pod_cidrs(old);
    if !old_cidrs.is_empty() && pod_cidrs(new) != old_cidrs {
        errs.forbidden(
            "spec.podCIDRs",
            "node updates may not change podCIDR except from \"\" to valid",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_cases() {
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("ok", json!({"spec": {"podCIDR": "10.244.1.0/24", "taints": [{"key": "a", "effect": "NoSchedule"}]}}), vec![]),
            (
                "bad effect",
                json!({"spec": {"taints": [{"key": "a", "effect": "Never"}]}}),
                vec!["spec.taints[0].effect: Unsupported value: \"Never\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""],
            ),
            ("missing effect", json!({"spec": {"taints": [{"key": "a"}]}}), vec!["spec.taints[0].effect: Required value"]),
            (
                "bad cidr",
                json!({"spec": {"podCIDR": "10.244.1.0"}}),
                vec!["spec.podCIDR: Invalid value: \"10.244.1.0\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"],
            ),
        ];
        for (name, node, want) in cases {
            let mut errs = Errors::default();
            validate_node(&node, &mut errs);
            let got: Vec<String> = errs
                .0
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn pod_cidr_may_be_set_once() {
        let unset = json!({"spec": {}});
        let set = json!({"spec": {"podCIDR": "10.244.1.0/24"}});
        let other = json!({"spec": {"podCIDR": "10.244.2.0/24"}});
        let count = |new: &Value, old: &Value| {
            let mut errs = Errors::default();
            validate_update(new, old, &mut errs);
            errs.0.len()
        };
        assert_eq!(count(&set, &unset), 0);
        assert_eq!(count(&set, &set), 0);
        assert_eq!(count(&other, &set), 1);
    }
}
