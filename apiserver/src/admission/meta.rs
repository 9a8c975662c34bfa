//! `ObjectMeta` validation (`ValidateObjectMeta`, `ValidateObjectMetaUpdate`) and label
//! selectors.

use super::access::{list_at, map_at, str_at};
use super::field::Errors;
use serde_json::{json, Value};
use tug_proto::validation as names;

/// Kubernetes caps all annotations of one object together at 256 KiB.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Which name syntax a kind's objects must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// Most kinds: `my-app.v2`.
    Subdomain,
    /// Namespaces: no dots.
    Label,
    /// Services: a label that starts with a letter.
    Dns1035,
}

impl NameRule {
    fn check(self, name: &str) -> Vec<String> {
        match self {
            NameRule::Subdomain => names::dns1123_subdomain(name),
            NameRule::Label => names::dns1123_label(name),
            NameRule::Dns1035 => names::dns1035_label(name),
        }
    }
}

/// `ValidateObjectMeta` for a top-level object.
pub fn validate(obj: &Value, rule: NameRule, namespaced: bool, errs: &mut Errors) {
    let meta = obj.get("metadata").unwrap_or(&Value::Null);
    let name = str_at(meta, "name");
    if name.is_empty() {
        errs.required("metadata.name", "name or generateName is required");
    } else {
        errs.invalid_each("metadata.name", name, rule.check(name));
    }
    let namespace = str_at(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.required("metadata.namespace", "");
        } else {
            errs.invalid_each(
                "metadata.namespace",
                namespace,
                names::dns1123_label(namespace),
            );
        }
    } else if !namespace.is_empty() {
        errs.forbidden("metadata.namespace", "not allowed on this type");
    }
    errs.non_negative("metadata.generation", meta.get("generation"));
    errs.non_negative(
        "metadata.deletionGracePeriodSeconds",
        meta.get("deletionGracePeriodSeconds"),
    );
    validate_labels(meta.get("labels"), "metadata.labels", errs);
    validate_annotations(meta.get("annotations"), "metadata.annotations", errs);
    for (i, f) in list_at(meta, "finalizers").iter().enumerate() {
        let s = f.as_str().unwrap_or("");
        errs.invalid_each(
            &format!("metadata.finalizers[{i}]"),
            s,
            names::qualified_name(s),
        );
    }
    let owners = list_at(meta, "ownerReferences");
    for (i, o) in owners.iter().enumerate() {
        let path = format!("metadata.ownerReferences[{i}]");
        for key in ["apiVersion", "kind", "name", "uid"] {
            if str_at(o, key).is_empty() {
                errs.required(&format!("{path}.{key}"), "");
            }
        }
    }
    let controllers = owners
        .iter()
        .filter(|o| o.get("controller") == Some(&Value::Bool(true)))
        .count();
    if controllers > 1 {
        errs.invalid(
            "metadata.ownerReferences",
            &json!(owners),
            "Only one reference can have Controller set to true",
        );
    }
}

/// `ValidateLabels`: keys are qualified names, values label values; errors are reported
/// on the map's path, like Kubernetes does.
pub fn validate_labels(labels: Option<&Value>, path: &str, errs: &mut Errors) {
    let Some(labels) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in labels {
        errs.invalid_each(path, k, names::qualified_name(k));
        let v = v.as_str().unwrap_or("");
        errs.invalid_each(path, v, names::label_value(v));
    }
}

/// `ValidateAnnotations`: keys are qualified names; the total size is capped.
pub fn validate_annotations(annotations: Option<&Value>, path: &str, errs: &mut Errors) {
    let Some(annotations) = annotations.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0;
    for (k, v) in annotations {
        errs.invalid_each(path, k, names::qualified_name(&k.to_lowercase()));
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT);
    }
}

/// `ValidateObjectMetaUpdate`: identity fields never change.
pub fn validate_update(new: &Value, old: &Value, errs: &mut Errors) {
    let (nm, om) = (&new["metadata"], &old["metadata"]);
    for key in ["name", "namespace", "uid", "creationTimestamp"] {
        let (n, o) = (nm.get(key), om.get(key));
        if n != o {
            errs.invalid(
                &format!("metadata.{key}"),
                n.unwrap_or(&Value::String(String::new())),
                "field is immutable",
            );
        }
    }
}

/// Fills server-set identity fields a client may leave out of a PUT body.
pub fn carry_over(new: &mut Value, old: &Value) {
    for key in ["uid", "creationTimestamp", "generation"] {
        if let Some(v) = old["metadata"].get(key) {
            if new["metadata"].get(key).is_none_or(Value::is_null) {
                super::access::child(new, "metadata")[key] = v.clone();
            }
        }
    }
}

/// `ValidateLabelSelector` for `metav1.LabelSelector`.
pub fn validate_selector(sel: &Value, path: &str, errs: &mut Errors) {
    validate_labels(sel.get("matchLabels"), &format!("{path}.matchLabels"), errs);
    for (i, req) in list_at(sel, "matchExpressions").iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let op = str_at(req, "operator");
        let values = list_at(req, "values");
        match op {
            "In" | "NotIn" if values.is_empty() => errs.required(
                &format!("{p}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.forbidden(
                &format!("{p}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => errs.invalid(
                &format!("{p}.operator"),
                &json!(op),
                "not a valid selector operator",
            ),
        }
        let key = str_at(req, "key");
        errs.invalid_each(&format!("{p}.key"), key, names::qualified_name(key));
    }
}

/// Whether `sel` (a `metav1.LabelSelector`) is empty, i.e. would select everything.
pub fn selector_is_empty(sel: &Value) -> bool {
    map_at(sel, "matchLabels").is_none_or(|m| m.is_empty())
        && list_at(sel, "matchExpressions").is_empty()
}

/// Whether `sel` selects an object with `labels`.
pub fn selector_matches(sel: &Value, labels: Option<&Value>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let labels_ok =
        map_at(sel, "matchLabels").is_none_or(|m| m.iter().all(|(k, v)| get(k) == v.as_str()));
    labels_ok
        && list_at(sel, "matchExpressions").iter().all(|req| {
            let value = get(str_at(req, "key"));
            let values = list_at(req, "values");
            let listed = value.is_some_and(|v| values.iter().any(|x| x.as_str() == Some(v)));
            match str_at(req, "operator") {
                "In" => listed,
                "NotIn" => !listed,
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(obj: Value, rule: NameRule, namespaced: bool) -> Vec<String> {
        let mut errs = Errors::default();
        validate(&obj, rule, namespaced, &mut errs);
        errs.0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn object_meta_cases() {
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT + 1);
        let cases: Vec<(&str, Value, NameRule, bool, Vec<&str>)> = vec![
            ("valid", json!({"metadata": {"name": "a.b", "namespace": "default"}}), NameRule::Subdomain, true, vec![]),
            (
                "missing name",
                json!({"metadata": {"namespace": "default"}}),
                NameRule::Subdomain,
                true,
                vec!["metadata.name: Required value: name or generateName is required"],
            ),
            (
                "upper case name",
                json!({"metadata": {"name": "Foo", "namespace": "default"}}),
                NameRule::Subdomain,
                true,
                vec!["metadata.name: Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"],
            ),
            ("namespace name with a dot", json!({"metadata": {"name": "a.b"}}), NameRule::Label, false, vec!["metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
            ("namespace missing", json!({"metadata": {"name": "a"}}), NameRule::Subdomain, true, vec!["metadata.namespace: Required value"]),
            ("namespace on cluster kind", json!({"metadata": {"name": "a", "namespace": "x"}}), NameRule::Subdomain, false, vec!["metadata.namespace: Forbidden: not allowed on this type"]),
            (
                "bad label value",
                json!({"metadata": {"name": "a", "labels": {"app": "a b"}}}),
                NameRule::Subdomain,
                false,
                vec!["metadata.labels: Invalid value: \"a b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"],
            ),
            (
                "annotations too big",
                json!({"metadata": {"name": "a", "annotations": {"a": big}}}),
                NameRule::Subdomain,
                false,
                vec!["metadata.annotations: Too long: must have at most 262144 bytes"],
            ),
        ];
        for (name, obj, rule, namespaced, want) in cases {
            assert_eq!(fields(obj, rule, namespaced), want, "{name}");
        }
    }

    #[test]
    fn selectors_match_labels() {
        let labels = json!({"app": "web", "tier": "front"});
        let cases = [
            (json!({"matchLabels": {"app": "web"}}), true),
            (json!({"matchLabels": {"app": "db"}}), false),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
                true,
            ),
        ];
        for (sel, want) in cases {
            assert_eq!(selector_matches(&sel, Some(&labels)), want, "{sel}");
        }
    }
}
