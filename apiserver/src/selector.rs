//! Label and field selectors of list, watch and deletecollection requests, evaluated on
//! stored JSON objects.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::registry::ResourceInfo;

/// One `field=value` / `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    equal: bool,
}

/// The parsed `labelSelector` and `fieldSelector` of one request.
#[derive(Debug, Default)]
pub struct Selectors {
    labels: Option<tug_proto::labels::Selector>,
    fields: Vec<FieldTerm>,
}

impl Selectors {
    /// Parses both selectors, rejecting field labels the resource does not support (400,
    /// like Kubernetes' `field label not supported`).
    pub fn parse(
        info: &ResourceInfo,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Selectors> {
        let labels = match label_selector.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(tug_proto::labels::Selector::parse(s).map_err(|e| {
                ApiError::bad_request(format!(
                    "unable to parse requirement: labelSelector {s:?}: {e}"
                ))
            })?),
        };
        let fields = match field_selector.map(str::trim).filter(|s| !s.is_empty()) {
            None => Vec::new(),
            Some(s) => parse_fields(s)?,
        };
        for t in &fields {
            if !info.supports_field(&t.field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {} (supported for {}: metadata.name{}{})",
                    t.field,
                    info.plural,
                    if info.namespaced {
                        ", metadata.namespace"
                    } else {
                        ""
                    },
                    info.field_selectors
                        .iter()
                        .map(|f| format!(", {f}"))
                        .collect::<String>()
                )));
            }
        }
        Ok(Selectors { labels, fields })
    }

    /// A selector naming exactly one object (`GET .../watch/.../pods/x`).
    pub fn with_name(mut self, name: &str) -> Self {
        self.fields.push(FieldTerm {
            field: "metadata.name".into(),
            value: name.into(),
            equal: true,
        });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(sel) = &self.labels {
            let labels: BTreeMap<String, String> = obj["metadata"]["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if !sel.matches(&labels) {
                return false;
            }
        }
        self.fields
            .iter()
            .all(|t| (field_value(obj, &t.field) == t.value) == t.equal)
    }
}

/// The string value of a field label: missing fields are `""`, booleans and numbers are
/// printed, and the few defaulted fields read as Kubernetes reports them.
fn field_value(obj: &Value, field: &str) -> String {
    let mut v = obj;
    for part in field.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => match field {
            "spec.hostNetwork" | "spec.unschedulable" => "false".into(),
            "status.replicas" | "status.successful" => "0".into(),
            _ => String::new(),
        },
        other => other.to_string(),
    }
}

/// Parses `a=b,c!=d,e==f`; `\,`, `\=` and `\\` escape inside values.
fn parse_fields(s: &str) -> Result<Vec<FieldTerm>> {
    let mut terms = Vec::new();
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push('\\');
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    for part in parts {
        let bad = || {
            ApiError::bad_request(format!(
                "invalid field selector {s:?}: term {part:?} must be field=value, field==value or field!=value"
            ))
        };
        let (field, value, equal) = if let Some(i) = find_unescaped(&part, "!=") {
            (&part[..i], &part[i + 2..], false)
        } else if let Some(i) = find_unescaped(&part, "==") {
            (&part[..i], &part[i + 2..], true)
        } else if let Some(i) = find_unescaped(&part, "=") {
            (&part[..i], &part[i + 1..], true)
        } else {
            return Err(bad());
        };
        let field = field.trim();
        if field.is_empty() {
            return Err(bad());
        }
        terms.push(FieldTerm {
            field: field.to_string(),
            value: unescape(value.trim()),
            equal,
        });
    }
    Ok(terms)
}

fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if s[i..].starts_with(pat) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;
    use serde_json::json;

    #[test]
    fn field_selectors_match_like_kubernetes() {
        let pods = lookup("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "web"}},
                         "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let cases = [
            ("metadata.name=a", true),
            ("metadata.name==a", true),
            ("metadata.name!=a", false),
            ("spec.nodeName=n1,status.phase=Running", true),
            ("spec.nodeName=", false),
            ("spec.nodeName!=", true),
            ("spec.hostNetwork=false", true),
            ("metadata.namespace=ns", true),
        ];
        for (sel, want) in cases {
            let s = Selectors::parse(pods, None, Some(sel)).unwrap();
            assert_eq!(s.matches(&pod), want, "{sel}");
        }
    }

    #[test]
    fn label_selectors_match() {
        let pods = lookup("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "fe"}}});
        let cases = [
            ("app=web", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("tier notin (fe)", false),
            ("tier", true),
            ("!tier", false),
            ("app=web,tier=be", false),
        ];
        for (sel, want) in cases {
            let s = Selectors::parse(pods, Some(sel), None).unwrap();
            assert_eq!(s.matches(&pod), want, "{sel}");
        }
    }

    #[test]
    fn unsupported_field_labels_are_rejected_with_400() {
        let pods = lookup("", "v1", "pods").unwrap();
        let err = Selectors::parse(pods, None, Some("spec.foo=bar")).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err.message.contains("field label not supported: spec.foo"));
        let err = Selectors::parse(pods, None, Some("nonsense")).unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn escaped_commas_stay_inside_values() {
        let t = parse_fields(r"metadata.name=a\,b").unwrap();
        assert_eq!(t[0].value, "a,b");
    }
}
