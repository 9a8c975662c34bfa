//! Label selectors: parse `a=b,c!=d,e in (x,y),f notin (z),g,!h`, match label sets, print.

use crate::meta::v1::LabelSelector;
use crate::validation;
use std::collections::BTreeMap;
use std::fmt;

/// A label key's problems (`[prefix/]name`), joined; `Ok` when it is valid.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    joined(validation::qualified_name(key))
}

/// A label value's problems, joined; `Ok` when it is valid.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    joined(validation::label_value(value))
}

fn joined(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Why a selector was rejected; messages name the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid label selector {selector:?}: {message}")]
    Parse { selector: String, message: String },
    #[error("invalid label selector requirement on key {key:?}: {message}")]
    Requirement { key: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a requirement compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One ANDed term of a selector. Values are kept sorted and deduplicated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, checking the key, the values and their count for `operator`.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self> {
        let err = |message: String| Error::Requirement {
            key: key.to_string(),
            message,
        };
        validate_label_key(key).map_err(|m| err(format!("key: {m}")))?;
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(err(
                    "for 'in', 'notin' operators, values set can't be empty".into(),
                ))
            }
            Operator::Equals | Operator::NotEquals if values.len() != 1 => {
                return Err(err(
                    "exact-match compatibility requires one single value".into()
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(err(
                    "values set must be empty for exists and does not exist".into(),
                ))
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err(err(
                        "for 'Gt', 'Lt' operators, exactly one value is required".into(),
                    ));
                }
                if values[0].parse::<i64>().is_err() {
                    return Err(err(format!(
                        "for 'Gt', 'Lt' operators, the value must be an integer, not {:?}",
                        values[0]
                    )));
                }
            }
            _ => {}
        }
        for v in &values {
            validate_label_value(v).map_err(|m| err(format!("value {v:?}: {m}")))?;
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a label set satisfies this requirement. A missing key satisfies `!=`,
    /// `notin` and `!key`, as in Kubernetes.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        let has = |v: &String| self.values.binary_search(v).is_ok();
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(has),
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(has),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(v), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let one = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Equals => write!(f, "{key}={one}"),
            Operator::NotEquals => write!(f, "{key}!={one}"),
            Operator::GreaterThan => write!(f, "{key}>{one}"),
            Operator::LessThan => write!(f, "{key}<{one}"),
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::In => write!(f, "{key} in ({})", self.values.join(",")),
            Operator::NotIn => write!(f, "{key} notin ({})", self.values.join(",")),
        }
    }
}

/// A parsed label selector: requirements ANDed together, sorted by key. The empty
/// selector matches everything; [`Selector::nothing`] matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// Matches every label set.
    pub fn everything() -> Self {
        Selector::default()
    }

    /// Matches no label set (what a missing `LabelSelector` means to controllers).
    pub fn nothing() -> Self {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// A selector from requirements (sorted by key for stable printing).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Selector {
            requirements,
            nothing: false,
        }
    }

    /// `key=value` for each entry (a Service's or ReplicaSet's `matchLabels`). Keys and
    /// values are not validated: they come from stored objects. An empty map matches
    /// everything.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        Selector::from_requirements(
            labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
        )
    }

    /// Converts a structured `LabelSelector`. An empty one matches everything; use
    /// [`Selector::nothing`] for an absent one.
    pub fn from_label_selector(ls: &LabelSelector) -> Result<Self> {
        let mut reqs = Vec::new();
        for (k, v) in &ls.match_labels {
            reqs.push(Requirement::new(k, Operator::Equals, vec![v.clone()])?);
        }
        for e in &ls.match_expressions {
            let op = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(Error::Requirement {
                        key: e.key.clone(),
                        message: format!(
                            "{other:?} is not a valid label selector operator (use In, NotIn, Exists or DoesNotExist)"
                        ),
                    })
                }
            };
            reqs.push(Requirement::new(&e.key, op, e.values.clone())?);
        }
        Ok(Selector::from_requirements(reqs))
    }

    /// Like [`Selector::from_label_selector`], mapping `None` to [`Selector::nothing`].
    pub fn from_optional(ls: Option<&LabelSelector>) -> Result<Self> {
        ls.map_or_else(|| Ok(Selector::nothing()), Selector::from_label_selector)
    }

    /// Parses the string syntax used by `?labelSelector=` and `tug get -l`.
    pub fn parse(input: &str) -> Result<Self> {
        Parser::new(input)?.parse()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True when this selector matches every label set.
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The value a `key=value` / `key in (value)` requirement pins `key` to, if any.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| {
                r.key == key
                    && matches!(r.operator, Operator::Equals | Operator::In)
                    && r.values.len() == 1
            })
            .map(|r| r.values[0].as_str())
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

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Not,
    Greater,
    Less,
    Open,
    Close,
    Comma,
    End,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "'{s}'"),
            Token::In => f.write_str("'in'"),
            Token::NotIn => f.write_str("'notin'"),
            Token::Equals => f.write_str("'='"),
            Token::DoubleEquals => f.write_str("'=='"),
            Token::NotEquals => f.write_str("'!='"),
            Token::Not => f.write_str("'!'"),
            Token::Greater => f.write_str("'>'"),
            Token::Less => f.write_str("'<'"),
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
            Token::Comma => f.write_str("','"),
            Token::End => f.write_str("end of string"),
        }
    }
}

fn tokenize(input: &str) -> Vec<Token> {
    let special = |c: char| c.is_whitespace() || "!=<>(),".contains(c);
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        chars.next();
        let next_is_eq = chars.peek().map(|&(_, n)| n) == Some('=');
        let tok = match c {
            '!' if next_is_eq => {
                chars.next();
                Token::NotEquals
            }
            '!' => Token::Not,
            '=' if next_is_eq => {
                chars.next();
                Token::DoubleEquals
            }
            '=' => Token::Equals,
            '>' => Token::Greater,
            '<' => Token::Less,
            '(' => Token::Open,
            ')' => Token::Close,
            ',' => Token::Comma,
            _ => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, n)) = chars.peek() {
                    if special(n) {
                        break;
                    }
                    end = j + n.len_utf8();
                    chars.next();
                }
                match &input[i..end] {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    word => Token::Ident(word.to_string()),
                }
            }
        };
        out.push(tok);
    }
    out.push(Token::End);
    out
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Result<Self> {
        Ok(Parser {
            input,
            tokens: tokenize(input),
            pos: 0,
        })
    }

    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    fn fail<T>(&self, message: String) -> Result<T> {
        Err(Error::Parse {
            selector: self.input.to_string(),
            message,
        })
    }

    fn parse(mut self) -> Result<Selector> {
        let mut reqs = Vec::new();
        if *self.peek() == Token::End {
            return Ok(Selector::everything());
        }
        loop {
            reqs.push(self.requirement()?);
            match self.next() {
                Token::End => break,
                Token::Comma => {
                    if *self.peek() == Token::End {
                        return self
                            .fail("found end of string, expected: identifier after ','".into());
                    }
                }
                t => return self.fail(format!("found {t}, expected: ',' or end of string")),
            }
        }
        Ok(Selector::from_requirements(reqs))
    }

    fn requirement(&mut self) -> Result<Requirement> {
        let negated = *self.peek() == Token::Not;
        if negated {
            self.next();
        }
        let key = match self.next() {
            Token::Ident(k) => k,
            t => return self.fail(format!("found {t}, expected: identifier")),
        };
        if matches!(self.peek(), Token::End | Token::Comma) {
            let op = if negated {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return Requirement::new(&key, op, Vec::new());
        }
        if negated {
            let t = self.peek().clone();
            return self.fail(format!(
                "found {t} after '!{key}', expected: ',' or end of string"
            ));
        }
        let op = match self.next() {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals | Token::DoubleEquals => Operator::Equals,
            Token::NotEquals => Operator::NotEquals,
            Token::Greater => Operator::GreaterThan,
            Token::Less => Operator::LessThan,
            t => {
                return self.fail(format!(
                    "found {t} after {key:?}, expected: in, notin, =, ==, !=, >, <"
                ))
            }
        };
        let values = if matches!(op, Operator::In | Operator::NotIn) {
            self.set_values(&key)?
        } else {
            match self.peek().clone() {
                Token::Ident(v) => {
                    self.next();
                    vec![v]
                }
                // `key=` selects the empty value.
                Token::End | Token::Comma => vec![String::new()],
                t => return self.fail(format!("found {t} after {key:?}, expected: a value")),
            }
        };
        Requirement::new(&key, op, values)
    }

    fn set_values(&mut self, key: &str) -> Result<Vec<String>> {
        match self.next() {
            Token::Open => {}
            t => return self.fail(format!("found {t} after {key:?} in/notin, expected: '('")),
        }
        let mut values = Vec::new();
        // `(a,,b)` and `(a,)` include the empty value, like Kubernetes.
        let mut expect_value = true;
        loop {
            match self.next() {
                Token::Ident(v) if expect_value => {
                    values.push(v);
                    expect_value = false;
                }
                Token::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Token::Close => {
                    if expect_value && !values.is_empty() {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                t => {
                    return self.fail(format!(
                        "found {t} in the value set of {key:?}, expected: ',' or ')'"
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_parse_and_print_canonically() {
        let cases = [
            ("", ""),
            ("a=b", "a=b"),
            ("a==b", "a=b"),
            ("a = b", "a=b"),
            ("a!=b", "a!=b"),
            ("a=", "a="),
            ("x in (b, a)", "x in (a,b)"),
            ("x notin (z)", "x notin (z)"),
            ("g", "g"),
            ("!h", "!h"),
            (
                "a=b,c!=d,e in (x,y),f notin (z),g,!h",
                "a=b,c!=d,e in (x,y),f notin (z),g,!h",
            ),
            ("z=1,a=2", "a=2,z=1"),
            ("app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
            ("n>5,m<10", "m<10,n>5"),
            ("e in (x,)", "e in (,x)"),
        ];
        for (input, want) in cases {
            let s = Selector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(s.to_string(), want, "{input}");
            assert_eq!(Selector::parse(want).unwrap(), s, "{want}");
        }
    }

    #[test]
    fn bad_selectors_are_rejected_naming_the_bad_part() {
        let cases = [
            ("a=b,", "after ','"),
            ("a b", "'b'"),
            ("a in b", "'('"),
            ("a in ()", "can't be empty"),
            ("a in (b", "end of string"),
            ("=b", "'='"),
            ("!a=b", "'='"),
            ("a=b=c", "'='"),
            ("a==", "a="),
            ("-bad=x", "\"-bad\""),
            ("a=-bad", "\"-bad\""),
            ("n>x", "integer"),
            ("a,,b", "','"),
        ];
        for (input, want) in cases {
            match Selector::parse(input) {
                Ok(s) if input == "a==" => assert_eq!(s.to_string(), want),
                Ok(s) => panic!("{input:?} parsed as {s}"),
                Err(e) => assert!(e.to_string().contains(want), "{input:?}: {e}"),
            }
        }
    }

    #[test]
    fn selectors_match_label_sets_like_kubernetes() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "7")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (db,web)", true),
            ("app notin (db,web)", false),
            ("missing notin (x)", true),
            ("missing in (x)", false),
            ("tier", true),
            ("missing", false),
            ("!missing", true),
            ("!tier", false),
            ("n>5", true),
            ("n<5", false),
            ("app>5", false),
            ("app=web,tier=back", false),
            ("missing=", false),
        ];
        for (sel, want) in cases {
            assert_eq!(Selector::parse(sel).unwrap().matches(&l), want, "{sel}");
        }
        assert!(!Selector::nothing().matches(&l));
        assert!(Selector::everything().matches(&l));
    }

    #[test]
    fn structured_label_selectors_convert() {
        let ls = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: vec!["front".into(), "edge".into()],
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: vec![],
                },
            ],
        };
        let s = Selector::from_label_selector(&ls).unwrap();
        assert_eq!(s.to_string(), "app=web,!canary,tier in (edge,front)");
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "edge")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("tier", "edge"),
            ("canary", "1")
        ])));
        assert!(Selector::from_label_selector(&LabelSelector::default())
            .unwrap()
            .is_everything());
        assert!(Selector::from_optional(None).unwrap().is_nothing());
        assert_eq!(s.requires_exact_match("app"), Some("web"));

        let bad = LabelSelector {
            match_expressions: vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "in".into(),
                values: vec!["x".into()],
            }],
            ..Default::default()
        };
        let err = Selector::from_label_selector(&bad).unwrap_err().to_string();
        assert!(err.contains("\"in\"") && err.contains("tier"), "{err}");
        let bad = LabelSelector {
            match_expressions: vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Exists".into(),
                values: vec!["x".into()],
            }],
            ..Default::default()
        };
        assert!(Selector::from_label_selector(&bad).is_err());
    }

    #[test]
    fn label_key_and_value_validators_are_exported() {
        assert!(validate_label_key("app.kubernetes.io/name").is_ok());
        assert!(validate_label_key("bad key").is_err());
        assert!(validate_label_value("").is_ok());
        assert!(validate_label_value("bad value").is_err());
    }
}
