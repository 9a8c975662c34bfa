//! Field selectors: parse `metadata.name=web,spec.nodeName!=n1` and match object fields.

use std::fmt;

/// Why a field selector was rejected; messages name the offending term.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid field selector {selector:?}: can't understand {term:?} (want field=value, field==value or field!=value)")]
    Term { selector: String, term: String },
    #[error("invalid field selector {selector:?}: {term:?} has an unescaped '=' or an invalid escape sequence (write \\\\, \\, and \\= for literal \\, , and =)")]
    Escape { selector: String, term: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    Equals,
    NotEquals,
}

/// One term: `field=value` or `field!=value`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub field: String,
    pub operator: Operator,
    pub value: String,
}

impl Requirement {
    /// A missing field reads as `""`, as in Kubernetes' `fields.Set`.
    pub fn matches<F: Fn(&str) -> Option<String>>(&self, get: F) -> bool {
        let actual = get(&self.field).unwrap_or_default();
        (actual == self.value) == (self.operator == Operator::Equals)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// ANDed field requirements; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    pub fn everything() -> Self {
        Selector::default()
    }

    /// `field=value` for each pair.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Selector {
            requirements: pairs
                .into_iter()
                .map(|(f, v)| Requirement {
                    field: f.to_string(),
                    operator: Operator::Equals,
                    value: v.to_string(),
                })
                .collect(),
        }
    }

    /// Parses the `?fieldSelector=` syntax. Terms are comma-separated; in values, `\,`,
    /// `\=` and `\\` escape the special characters.
    pub fn parse(input: &str) -> Result<Self> {
        let mut requirements = Vec::new();
        for term in split_unescaped(input, ',') {
            if term.is_empty() {
                continue;
            }
            let term_err = || Error::Term {
                selector: input.to_string(),
                term: term.to_string(),
            };
            let (field, operator, raw) = split_term(term).ok_or_else(term_err)?;
            if field.is_empty() {
                return Err(term_err());
            }
            let value = unescape_value(raw).ok_or_else(|| Error::Escape {
                selector: input.to_string(),
                term: term.to_string(),
            })?;
            requirements.push(Requirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        requirements.sort_by(|a, b| a.field.cmp(&b.field));
        Ok(Selector { requirements })
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object matches; `get` returns a field's value by path
    /// (e.g. `spec.nodeName`); [`lookup`] does that for JSON objects.
    pub fn matches<F: Fn(&str) -> Option<String>>(&self, get: F) -> bool {
        self.requirements.iter().all(|r| r.matches(&get))
    }

    /// The value `field` must equal, if the selector pins it (used for indexed lookups
    /// such as pods by `spec.nodeName`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == Operator::Equals)
            .map(|r| r.value.as_str())
    }
}

impl std::str::FromStr for Selector {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Selector::parse(s)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Reads a dotted path (`metadata.name`, `spec.nodeName`, `status.phase`) from a JSON
/// object; strings come back as they are, numbers and bools as text, anything else `None`.
pub fn lookup(object: &serde_json::Value, path: &str) -> Option<String> {
    let v = path.split('.').try_fold(object, |v, part| v.get(part))?;
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Escapes `\`, `,` and `=` in a value.
pub fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn unescape_value(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                _ => return None,
            }
        } else if c == ',' || c == '=' {
            // An unescaped `=` in a value is ambiguous, as in Kubernetes.
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Splits at the first unescaped operator: `!=`, `==` or `=`.
fn split_term(term: &str) -> Option<(&str, Operator, &str)> {
    let b = term.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'!' if b.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], Operator::NotEquals, &term[i + 2..]))
            }
            b'=' if b.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], Operator::Equals, &term[i + 2..]))
            }
            b'=' => return Some((&term[..i], Operator::Equals, &term[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_selectors_parse_and_print() {
        let cases = [
            ("", ""),
            ("metadata.name=web", "metadata.name=web"),
            ("metadata.name==web", "metadata.name=web"),
            ("spec.nodeName!=n1", "spec.nodeName!=n1"),
            (
                "status.phase=Running,metadata.name=a",
                "metadata.name=a,status.phase=Running",
            ),
            ("spec.nodeName=", "spec.nodeName="),
            ("a=x\\,y", "a=x\\,y"),
            ("a=x\\=y\\\\", "a=x\\=y\\\\"),
            ("a=b,", "a=b"),
        ];
        for (input, want) in cases {
            let s = Selector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(s.to_string(), want, "{input}");
        }
        let s = Selector::parse("a=x\\,y").unwrap();
        assert_eq!(s.requirements()[0].value, "x,y");
    }

    #[test]
    fn bad_field_selectors_name_the_bad_term() {
        let cases = [
            ("metadata.name", "\"metadata.name\""),
            ("a=b,oops", "\"oops\""),
            ("=b", "\"=b\""),
            ("a=b\\x", "escape"),
            ("a=b=c", "escape"),
        ];
        for (input, want) in cases {
            let err = Selector::parse(input).expect_err(input).to_string();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn field_selectors_match_json_objects() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "prod"},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running"}
        });
        let get = |p: &str| lookup(&pod, p);
        let cases = [
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name!=web-1", false),
            ("spec.nodeName=n1,status.phase=Running", true),
            ("spec.nodeName=n2", false),
            ("spec.schedulerName=", true),
            ("spec.schedulerName!=", false),
        ];
        for (sel, want) in cases {
            assert_eq!(Selector::parse(sel).unwrap().matches(get), want, "{sel}");
        }
        let s = Selector::parse("spec.nodeName=n1").unwrap();
        assert_eq!(s.requires_exact_match("spec.nodeName"), Some("n1"));
        assert_eq!(Selector::from_pairs([("a", "b")]).to_string(), "a=b");
    }
}
