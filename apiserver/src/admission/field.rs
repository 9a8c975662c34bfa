//! Field errors with Kubernetes' reasons and messages (`field.Required`, `field.Invalid`,
//! ...), and how values are printed in them.

use super::FieldError;
use serde_json::Value;

/// Accumulates the errors of one object so they are all reported at once.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: &str, reason: &'static str, message: String) {
        self.0.push(FieldError {
            field: field.to_string(),
            reason,
            message,
        });
    }

    /// `Required value` (with an optional detail).
    pub fn required(&mut self, field: &str, detail: &str) {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        self.push(field, "FieldValueRequired", message);
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(&mut self, field: &str, value: &Value, detail: &str) {
        let message = format!("Invalid value: {}: {detail}", go_value(value));
        self.push(field, "FieldValueInvalid", message);
    }

    /// One `Invalid` per message of a name check.
    pub fn invalid_each(&mut self, field: &str, value: &str, details: Vec<String>) {
        for d in details {
            self.invalid(field, &Value::String(value.to_string()), &d);
        }
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(&mut self, field: &str, value: &Value, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        let message = format!(
            "Unsupported value: {}: supported values: {}",
            go_value(value),
            list.join(", ")
        );
        self.push(field, "FieldValueNotSupported", message);
    }

    /// `Duplicate value: "x"`.
    pub fn duplicate(&mut self, field: &str, value: &Value) {
        let message = format!("Duplicate value: {}", go_value(value));
        self.push(field, "FieldValueDuplicate", message);
    }

    /// `Not found: "x"`.
    pub fn not_found(&mut self, field: &str, value: &Value) {
        let message = format!("Not found: {}", go_value(value));
        self.push(field, "FieldValueNotFound", message);
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(&mut self, field: &str, detail: &str) {
        self.push(field, "FieldValueForbidden", format!("Forbidden: {detail}"));
    }

    /// `Too long: must have at most <n> bytes`.
    pub fn too_long(&mut self, field: &str, max_bytes: usize) {
        let message = format!("Too long: must have at most {max_bytes} bytes");
        self.push(field, "FieldValueTooLong", message);
    }

    /// `Invalid value: <n>: must be greater than or equal to 0` when `value` is a
    /// negative number.
    pub fn non_negative(&mut self, field: &str, value: Option<&Value>) {
        if let Some(v) = value {
            if v.as_f64().is_some_and(|n| n < 0.0) {
                self.invalid(field, v, "must be greater than or equal to 0");
            }
        }
    }

    /// An enum-like string field: `Unsupported value` unless it is one of `supported`
    /// (absent is fine; defaulting or `required` handles that).
    pub fn one_of(&mut self, field: &str, value: Option<&Value>, supported: &[&str]) {
        if let Some(v) = value {
            if !v.as_str().is_some_and(|s| supported.contains(&s)) {
                self.not_supported(field, v, supported);
            }
        }
    }
}

/// Prints a value the way Go's `%#v`-ish formatting in field errors does: strings
/// quoted, numbers and booleans bare, string maps as `map[string]string{...}`.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        Value::Object(m) if m.values().all(Value::is_string) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v))
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_match_kubernetes() {
        let mut e = Errors::default();
        e.required("metadata.name", "");
        e.required(
            "spec.template.spec.restartPolicy",
            "valid values: \"OnFailure\", \"Never\"",
        );
        e.invalid(
            "spec.replicas",
            &json!(-1),
            "must be greater than or equal to 0",
        );
        e.not_supported(
            "spec.restartPolicy",
            &json!("Sometimes"),
            &["Always", "OnFailure", "Never"],
        );
        e.duplicate("spec.containers[1].name", &json!("a"));
        e.forbidden("spec", "pod updates may not change fields");
        e.invalid("x", &json!({"app": "web"}), "d");
        let got: Vec<(&str, &str)> = e.0.iter().map(|f| (f.reason, f.message.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("FieldValueRequired", "Required value"),
                ("FieldValueRequired", "Required value: valid values: \"OnFailure\", \"Never\""),
                ("FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0"),
                (
                    "FieldValueNotSupported",
                    "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
                ),
                ("FieldValueDuplicate", "Duplicate value: \"a\""),
                ("FieldValueForbidden", "Forbidden: pod updates may not change fields"),
                ("FieldValueInvalid", "Invalid value: map[string]string{\"app\":\"web\"}: d"),
            ]
        );
    }
}
