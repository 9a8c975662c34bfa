//! kubectl's JSONPath templates (`-o jsonpath='{.items[*].metadata.name}'`) and custom
//! columns (`-o custom-columns=NAME:.metadata.name,IP:.status.podIP`).
//!
//! The subset kubectl documents: `$`, `@`, `.field`, `['field']`, `..field`, `*`,
//! `[n]`, `[-n]`, `[a:b:s]`, `[a,b]`, `[?(@.x == "y")]` (also `!=`, `<`, `<=`, `>`, `>=`
//! and plain existence), `{range ...}...{end}` and quoted literals like `{"\n"}`.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("error parsing jsonpath {template:?}: {message}")]
    Parse { template: String, message: String },
    #[error("{path} is not found")]
    NotFound { path: String },
    #[error("custom-columns: {0}")]
    Columns(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    /// `..name` or `..*`.
    Descend(Option<String>),
    Wildcard,
    Index(i64),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Union(Vec<Selector>),
    Filter(Box<Filter>),
}

#[derive(Clone, Debug, PartialEq)]
enum Selector {
    Index(i64),
    Field(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Operand {
    Path(Vec<Step>),
    Literal(Value),
}

#[derive(Clone, Debug, PartialEq)]
struct Filter {
    left: Operand,
    /// `None`: the left path only has to exist.
    op: Option<(String, Operand)>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    /// A path; `relative` means it starts at the current element (`@`, `.x` inside a
    /// range), which for a top-level expression is the root anyway.
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// A parsed template, ready to run on many objects.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    template: String,
    nodes: Vec<Node>,
}

impl JsonPath {
    /// Parses `template`; like kubectl, a template without braces is one expression.
    pub fn parse(template: &str) -> Result<JsonPath> {
        let wrapped;
        let t = if template.contains('{') {
            template
        } else {
            wrapped = format!("{{{template}}}");
            &wrapped
        };
        let err = |message: String| Error::Parse {
            template: template.to_string(),
            message,
        };
        let mut stack: Vec<(Vec<Step>, Vec<Node>)> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut rest = t;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                nodes.push(Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                nodes.push(Node::Text(rest[..open].to_string()));
            }
            let close = matching_brace(&rest[open..])
                .ok_or_else(|| err("unclosed action: a `{` has no `}`".into()))?;
            let inner = rest[open + 1..open + close].trim();
            rest = &rest[open + close + 1..];
            if let Some(path) = inner.strip_prefix("range ") {
                let steps = parse_path(path.trim()).map_err(err)?;
                stack.push((steps, std::mem::take(&mut nodes)));
            } else if inner == "end" {
                let (steps, outer) = stack
                    .pop()
                    .ok_or_else(|| err("`{end}` without a `{range ...}`".into()))?;
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(steps, body));
            } else if inner.starts_with('"') || inner.starts_with('\'') {
                nodes.push(Node::Text(parse_string(inner).map_err(err)?));
            } else {
                nodes.push(Node::Path(parse_path(inner).map_err(err)?));
            }
        }
        if !stack.is_empty() {
            return Err(err("`{range ...}` without an `{end}`".into()));
        }
        Ok(JsonPath {
            template: template.to_string(),
            nodes,
        })
    }

    /// Renders the template on `root`; a path that matches nothing prints nothing
    /// (kubectl's default, `--allow-missing-template-keys=true`).
    pub fn render(&self, root: &Value) -> String {
        let mut out = String::new();
        // Infallible when missing keys are allowed.
        let _ = render_nodes(&self.nodes, root, root, &mut out, false);
        out
    }

    /// Renders the template; a path that matches nothing is an error naming it
    /// (`--allow-missing-template-keys=false`).
    pub fn render_strict(&self, root: &Value) -> Result<String> {
        let mut out = String::new();
        render_nodes(&self.nodes, root, root, &mut out, true)?;
        Ok(out)
    }

    /// The values the template's single expression selects (custom columns).
    pub fn values<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut found = Vec::new();
        for n in &self.nodes {
            if let Node::Path(steps) = n {
                found.extend(eval(steps, root, root));
            }
        }
        found
    }

    pub fn template(&self) -> &str {
        &self.template
    }
}

fn render_nodes(
    nodes: &[Node],
    root: &Value,
    cur: &Value,
    out: &mut String,
    strict: bool,
) -> Result<()> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(steps) => {
                let found = eval(steps, root, cur);
                if strict && found.is_empty() && !steps.is_empty() {
                    return Err(Error::NotFound {
                        path: describe(steps),
                    });
                }
                let texts: Vec<String> = found.into_iter().map(text).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(steps, body) => {
                for item in eval(steps, root, cur) {
                    render_nodes(body, root, item, out, strict)?;
                }
            }
        }
    }
    Ok(())
}

/// A value as kubectl prints it: strings bare, everything else as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn describe(steps: &[Step]) -> String {
    let mut s = String::new();
    for step in steps {
        match step {
            Step::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Step::Descend(f) => {
                s.push_str("..");
                s.push_str(f.as_deref().unwrap_or("*"));
            }
            Step::Wildcard => s.push_str("[*]"),
            Step::Index(i) => s.push_str(&format!("[{i}]")),
            Step::Slice(..) | Step::Union(_) | Step::Filter(_) => s.push_str("[...]"),
        }
    }
    s
}

/// Position of the `}` closing the `{` at 0, skipping quoted strings.
fn matching_brace(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_string(s: &str) -> std::result::Result<String, String> {
    let q = s.chars().next().unwrap_or('"');
    let body = s
        .strip_prefix(q)
        .and_then(|b| b.strip_suffix(q))
        .ok_or_else(|| format!("unterminated string {s}"))?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Ok(out)
}

fn parse_path(s: &str) -> std::result::Result<Vec<Step>, String> {
    let mut p = Parser { s, i: 0 };
    let steps = p.steps()?;
    if p.i < s.len() {
        return Err(format!("unexpected {:?} at position {}", &s[p.i..], p.i));
    }
    Ok(steps)
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    fn eat(&mut self, prefix: &str) -> bool {
        if self.s[self.i..].starts_with(prefix) {
            self.i += prefix.len();
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || matches!(c, '_' | '-' | '/') {
                self.i += c.len_utf8();
            } else {
                break;
            }
        }
        self.s[start..self.i].to_string()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
    }

    /// Steps until the end or a character that cannot continue a path.
    fn steps(&mut self) -> std::result::Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        // `$` and `@` name the root / current element: both are where we start.
        let _ = self.eat("$") || self.eat("@");
        loop {
            if self.eat("..") {
                if self.eat("*") {
                    steps.push(Step::Descend(None));
                } else {
                    let name = self.ident();
                    if name.is_empty() {
                        return Err(format!("a field name must follow `..` at {}", self.i));
                    }
                    steps.push(Step::Descend(Some(name)));
                }
            } else if self.eat(".") {
                if self.eat("*") {
                    steps.push(Step::Wildcard);
                } else if self.peek() == Some('[') {
                    // `.[0]`: kubectl accepts it.
                } else {
                    let name = self.ident();
                    if name.is_empty() && self.i < self.s.len() {
                        return Err(format!("a field name must follow `.` at {}", self.i));
                    }
                    if !name.is_empty() {
                        steps.push(Step::Field(name));
                    }
                }
            } else if self.eat("[") {
                steps.push(self.bracket()?);
            } else if self.peek().is_some_and(|c| c.is_alphabetic()) && steps.is_empty() {
                // kubectl tolerates a missing leading dot: `{metadata.name}`.
                steps.push(Step::Field(self.ident()));
            } else {
                break;
            }
        }
        Ok(steps)
    }

    fn bracket(&mut self) -> std::result::Result<Step, String> {
        self.skip_ws();
        if self.eat("*") {
            self.skip_ws();
            self.expect("]")?;
            return Ok(Step::Wildcard);
        }
        if self.eat("?(") {
            let filter = self.filter()?;
            self.skip_ws();
            self.expect(")")?;
            self.skip_ws();
            self.expect("]")?;
            return Ok(Step::Filter(Box::new(filter)));
        }
        let end = self.s[self.i..]
            .find(']')
            .ok_or_else(|| "unclosed `[`".to_string())?;
        let inner = self.s[self.i..self.i + end].trim().to_string();
        self.i += end + 1;
        if inner.contains(':') {
            let parts: Vec<&str> = inner.split(':').collect();
            if parts.len() > 3 {
                return Err(format!("bad slice [{inner}]"));
            }
            let num = |s: &str| -> std::result::Result<Option<i64>, String> {
                let s = s.trim();
                if s.is_empty() {
                    Ok(None)
                } else {
                    s.parse()
                        .map(Some)
                        .map_err(|_| format!("bad slice [{inner}]"))
                }
            };
            return Ok(Step::Slice(
                num(parts[0])?,
                num(parts.get(1).copied().unwrap_or(""))?,
                num(parts.get(2).copied().unwrap_or(""))?,
            ));
        }
        let mut sels = Vec::new();
        for part in inner.split(',') {
            let part = part.trim();
            if part.starts_with('\'') || part.starts_with('"') {
                sels.push(Selector::Field(parse_string(part)?));
            } else {
                sels.push(Selector::Index(part.parse().map_err(|_| {
                    format!("bad index [{inner}]: expected a number or a quoted name")
                })?));
            }
        }
        Ok(match sels.as_slice() {
            [Selector::Index(i)] => Step::Index(*i),
            [Selector::Field(f)] => Step::Field(f.clone()),
            _ => Step::Union(sels),
        })
    }

    fn expect(&mut self, what: &str) -> std::result::Result<(), String> {
        if self.eat(what) {
            Ok(())
        } else {
            Err(format!("expected `{what}` at position {}", self.i))
        }
    }

    fn operand(&mut self) -> std::result::Result<Operand, String> {
        self.skip_ws();
        match self.peek() {
            Some('@') | Some('$') | Some('.') => Ok(Operand::Path(self.steps()?)),
            Some(q @ ('"' | '\'')) => {
                let rest = &self.s[self.i + 1..];
                let end = rest
                    .find(q)
                    .ok_or_else(|| "unterminated string in filter".to_string())?;
                let v = rest[..end].to_string();
                self.i += end + 2;
                Ok(Operand::Literal(Value::String(v)))
            }
            _ => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '-')
                {
                    self.i += 1;
                }
                let word = &self.s[start..self.i];
                let v = serde_json::from_str::<Value>(word)
                    .map_err(|_| format!("bad value {word:?} in filter"))?;
                Ok(Operand::Literal(v))
            }
        }
    }

    fn filter(&mut self) -> std::result::Result<Filter, String> {
        let left = self.operand()?;
        self.skip_ws();
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.eat(op) {
                let right = self.operand()?;
                return Ok(Filter {
                    left,
                    op: Some((op.to_string(), right)),
                });
            }
        }
        Ok(Filter { left, op: None })
    }
}

fn eval<'a>(steps: &[Step], root: &'a Value, cur: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![cur];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            apply(step, root, v, &mut next);
        }
        current = next;
    }
    current
}

fn index(len: usize, i: i64) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

fn apply<'a>(step: &Step, root: &'a Value, v: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Field(f) => out.extend(v.get(f.as_str())),
        Step::Wildcard => match v {
            Value::Array(a) => out.extend(a.iter()),
            Value::Object(m) => out.extend(m.values()),
            _ => {}
        },
        Step::Index(i) => {
            if let Value::Array(a) = v {
                out.extend(index(a.len(), *i).map(|i| &a[i]));
            }
        }
        Step::Slice(start, end, step) => {
            if let Value::Array(a) = v {
                let len = a.len() as i64;
                let clamp = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let s = start.map_or(0, clamp);
                let e = end.map_or(len, clamp);
                let st = step.unwrap_or(1).max(1);
                let mut i = s;
                while i < e {
                    out.push(&a[i as usize]);
                    i += st;
                }
            }
        }
        Step::Union(sels) => {
            for sel in sels {
                match (sel, v) {
                    (Selector::Index(i), Value::Array(a)) => {
                        out.extend(index(a.len(), *i).map(|i| &a[i]))
                    }
                    (Selector::Field(f), Value::Object(m)) => out.extend(m.get(f)),
                    _ => {}
                }
            }
        }
        Step::Descend(name) => descend(name.as_deref(), v, out),
        Step::Filter(f) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                Value::Object(m) => m.values().collect(),
                _ => Vec::new(),
            };
            out.extend(items.into_iter().filter(|item| matches(f, root, item)));
        }
    }
}

fn descend<'a>(name: Option<&str>, v: &'a Value, out: &mut Vec<&'a Value>) {
    let children: Vec<&Value> = match v {
        Value::Object(m) => {
            if let Some(n) = name {
                out.extend(m.get(n));
            }
            m.values().collect()
        }
        Value::Array(a) => a.iter().collect(),
        _ => Vec::new(),
    };
    for c in children {
        if name.is_none() {
            out.push(c);
        }
        descend(name, c, out);
    }
}

fn operand_values<'a>(o: &'a Operand, root: &'a Value, item: &'a Value) -> Vec<&'a Value> {
    match o {
        Operand::Path(steps) => eval(steps, root, item),
        Operand::Literal(v) => vec![v],
    }
}

fn matches(f: &Filter, root: &Value, item: &Value) -> bool {
    let left = operand_values(&f.left, root, item);
    let Some((op, right)) = &f.op else {
        return !left.is_empty();
    };
    let right = operand_values(right, root, item);
    left.iter().any(|l| {
        right.iter().any(|r| match op.as_str() {
            "==" => equal(l, r),
            "!=" => !equal(l, r),
            _ => match (l.as_f64(), r.as_f64()) {
                (Some(a), Some(b)) => match op.as_str() {
                    "<" => a < b,
                    "<=" => a <= b,
                    ">" => a > b,
                    _ => a >= b,
                },
                _ => false,
            },
        })
    })
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// One `-o custom-columns` column: a header and a JSONPath.
#[derive(Clone, Debug)]
pub struct Column {
    pub header: String,
    pub path: JsonPath,
}

/// Parses `NAME:.metadata.name,IP:.status.podIP`.
pub fn parse_columns(spec: &str) -> Result<Vec<Column>> {
    let mut cols = Vec::new();
    for part in spec.split(',') {
        let Some((header, path)) = part.split_once(':') else {
            return Err(Error::Columns(format!(
                "{part:?} is not HEADER:JSONPATH; write e.g. NAME:.metadata.name"
            )));
        };
        let path = path.trim();
        let expr = if path.starts_with('{') {
            path.to_string()
        } else {
            format!("{{{path}}}")
        };
        cols.push(Column {
            header: header.to_string(),
            path: JsonPath::parse(&expr)?,
        });
    }
    if cols.is_empty() {
        return Err(Error::Columns("no columns given".into()));
    }
    Ok(cols)
}

/// Custom columns as an aligned table: missing values print `<none>`, several values
/// are joined with commas.
pub fn render_columns(cols: &[Column], items: &[Value], headers: bool) -> String {
    let table = crate::printer::Table {
        columns: cols
            .iter()
            .map(|c| crate::printer::Column {
                name: c.header.clone(),
                priority: 0,
            })
            .collect(),
        rows: items
            .iter()
            .map(|item| crate::printer::Row {
                cells: cols
                    .iter()
                    .map(|c| {
                        let vals = c.path.values(item);
                        if vals.is_empty() {
                            "<none>".to_string()
                        } else {
                            vals.into_iter().map(text).collect::<Vec<_>>().join(",")
                        }
                    })
                    .collect(),
                namespace: String::new(),
            })
            .collect(),
    };
    // kubectl prints custom headers as written, not upper-cased.
    let mut printer = crate::printer::TablePrinter::new(false, false);
    printer.keep_header_case = true;
    printer.render(&table, headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app": "web", "k8s.io/x": "1"}}, "status": {"podIP": "10.0.0.1", "phase": "Running"},
             "spec": {"containers": [{"name": "c1", "image": "i1"}, {"name": "c2", "image": "i2"}]}},
            {"metadata": {"name": "b", "labels": {"app": "db"}}, "status": {"podIP": "10.0.0.2", "phase": "Pending"},
             "spec": {"containers": [{"name": "c3", "image": "i3"}]}}
        ]})
    }

    #[test]
    fn templates_render_like_kubectl() {
        let cases = [
            ("{.items[*].metadata.name}", "a b"),
            ("{.items[0].status.podIP}", "10.0.0.1"),
            ("{.items[-1].metadata.name}", "b"),
            ("{range .items[*]}{.metadata.name}{\"\\n\"}{end}", "a\nb\n"),
            (
                "{range .items[*]}{.metadata.name}{'\\t'}{.status.phase}{'\\n'}{end}",
                "a\tRunning\nb\tPending\n",
            ),
            (
                "{.items[?(@.status.phase==\"Running\")].metadata.name}",
                "a",
            ),
            ("{.items[?(@.metadata.name!='a')].metadata.name}", "b"),
            ("{.items[*].spec.containers[*].image}", "i1 i2 i3"),
            ("{..image}", "i1 i2 i3"),
            ("{.items[0:1].metadata.name}", "a"),
            ("{.items[0].metadata.labels['k8s.io/x']}", "1"),
            (
                "{.items[0].metadata.labels}",
                "{\"app\":\"web\",\"k8s.io/x\":\"1\"}",
            ),
            ("names: {.items[*].metadata.name}!", "names: a b!"),
            (".items[1].metadata.name", "b"),
            ("{$.kind}", "List"),
            ("{.items[?(@.spec.containers[1])].metadata.name}", "a"),
            (
                "{range .items[*]}[{range .spec.containers[*]}{.name} {end}]{end}",
                "[c1 c2 ][c3 ]",
            ),
            ("{.items[0,1].metadata.name}", "a b"),
        ];
        for (template, want) in cases {
            let jp = JsonPath::parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
            assert_eq!(jp.render_strict(&pods()).unwrap(), want, "{template}");
        }
    }

    #[test]
    fn numbers_compare_in_filters() {
        let v = json!({"items": [{"n": "x", "r": 1}, {"n": "y", "r": 3}]});
        let jp = JsonPath::parse("{.items[?(@.r > 2)].n}").unwrap();
        assert_eq!(jp.render(&v), "y");
        let jp = JsonPath::parse("{.items[?(@.r == 1)].n}").unwrap();
        assert_eq!(jp.render(&v), "x");
    }

    #[test]
    fn bad_templates_and_missing_keys_are_errors() {
        for bad in [
            "{.items[",
            "{range .items[*]}{.a}",
            "{end}",
            "{.items[x]}",
            "{.a",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad} parsed");
        }
        let jp = JsonPath::parse("{.status.nothing}").unwrap();
        assert_eq!(
            jp.render_strict(&json!({"status": {}}))
                .unwrap_err()
                .to_string(),
            ".status.nothing is not found"
        );
        assert_eq!(jp.render(&json!({"status": {}})), "");
        let all = JsonPath::parse("{.items[*].metadata.name}").unwrap();
        assert_eq!(all.render(&json!({"items": []})), "");
    }

    #[test]
    fn custom_columns_print_a_table() {
        let cols = parse_columns(
            "NAME:.metadata.name,IP:.status.podIP,Images:.spec.containers[*].image,X:.nope",
        )
        .unwrap();
        let items = pods()["items"].as_array().unwrap().clone();
        assert_eq!(
            render_columns(&cols, &items, true),
            "NAME   IP         Images   X\n\
             a      10.0.0.1   i1,i2    <none>\n\
             b      10.0.0.2   i3       <none>\n"
        );
        assert!(parse_columns("NAME").is_err());
    }
}
