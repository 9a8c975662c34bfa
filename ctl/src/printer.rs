//! Output: the server's `meta.k8s.io/v1` Table as aligned columns (kubectl's look), and
//! objects as YAML, JSON or `kind/name`.

use serde_json::Value;

/// `Accept` for kubectl-style tables, with plain JSON as the fallback.
pub const TABLE_ACCEPT: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// Gap between columns, as in kubectl's tabwriter.
const GAP: usize = 3;

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub priority: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub cells: Vec<String>,
    pub namespace: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

impl Table {
    /// Reads a `Table` response; `None` when the server answered something else.
    pub fn from_value(v: &Value) -> Option<Table> {
        if v.get("kind").and_then(Value::as_str) != Some("Table") {
            return None;
        }
        let columns = v
            .get("columnDefinitions")?
            .as_array()?
            .iter()
            .map(|c| Column {
                name: c.get("name").and_then(Value::as_str).unwrap_or("").into(),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
            })
            .collect();
        let rows = v
            .get("rows")
            .and_then(Value::as_array)
            .map(|rows| {
                rows.iter()
                    .map(|r| Row {
                        cells: r
                            .get("cells")
                            .and_then(Value::as_array)
                            .map(|cells| cells.iter().map(cell).collect())
                            .unwrap_or_default(),
                        namespace: r
                            .pointer("/object/metadata/namespace")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Table { columns, rows })
    }

    /// A NAME/AGE-less fallback for servers that do not speak Table: one NAME column.
    pub fn names_only(items: &[Value]) -> Table {
        Table {
            columns: vec![Column {
                name: "Name".into(),
                priority: 0,
            }],
            rows: items
                .iter()
                .map(|o| Row {
                    cells: vec![str_at(o, "/metadata/name")],
                    namespace: str_at(o, "/metadata/namespace"),
                })
                .collect(),
        }
    }
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "<none>".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Renders tables as kubectl does: upper-case headers, columns padded to the widest cell
/// plus three spaces, no trailing blanks. `wide` shows priority > 0 columns;
/// `with_namespace` prepends NAMESPACE.
#[derive(Clone, Debug, Default)]
pub struct TablePrinter {
    pub wide: bool,
    pub with_namespace: bool,
    /// Print headers as given instead of upper-cased (`-o custom-columns`).
    pub keep_header_case: bool,
    /// Widths of the previous output, so watch rows line up with the first table.
    widths: Vec<usize>,
}

impl TablePrinter {
    pub fn new(wide: bool, with_namespace: bool) -> Self {
        TablePrinter {
            wide,
            with_namespace,
            keep_header_case: false,
            widths: Vec::new(),
        }
    }

    fn visible(&self, table: &Table) -> Vec<usize> {
        table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| self.wide || c.priority == 0)
            .map(|(i, _)| i)
            .collect()
    }

    fn lines(&mut self, table: &Table, headers: bool) -> Vec<Vec<String>> {
        let visible = self.visible(table);
        let mut lines = Vec::new();
        if headers {
            let mut h: Vec<String> = visible
                .iter()
                .map(|&i| {
                    let name = &table.columns[i].name;
                    if self.keep_header_case {
                        name.clone()
                    } else {
                        name.to_uppercase()
                    }
                })
                .collect();
            if self.with_namespace {
                h.insert(0, "NAMESPACE".into());
            }
            lines.push(h);
        }
        for row in &table.rows {
            let mut cells: Vec<String> = visible
                .iter()
                .map(|&i| row.cells.get(i).cloned().unwrap_or_default())
                .collect();
            if self.with_namespace {
                cells.insert(0, row.namespace.clone());
            }
            lines.push(cells);
        }
        for line in &lines {
            for (i, c) in line.iter().enumerate() {
                if self.widths.len() <= i {
                    self.widths.push(0);
                }
                self.widths[i] = self.widths[i].max(c.chars().count());
            }
        }
        lines
    }

    /// The table as text, headers included when asked.
    pub fn render(&mut self, table: &Table, headers: bool) -> String {
        let lines = self.lines(table, headers);
        let mut out = String::new();
        for line in lines {
            let last = line.len().saturating_sub(1);
            for (i, c) in line.iter().enumerate() {
                out.push_str(c);
                if i < last {
                    let pad = self.widths[i] + GAP - c.chars().count();
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// Fills in `apiVersion`/`kind` on an object that came without them (list items).
pub fn with_type_meta(mut obj: Value, api_version: &str, kind: &str) -> Value {
    if let Some(map) = obj.as_object_mut() {
        if !map.contains_key("kind") || !map.contains_key("apiVersion") {
            let mut typed = serde_json::Map::new();
            typed.insert("apiVersion".into(), Value::String(api_version.into()));
            typed.insert("kind".into(), Value::String(kind.into()));
            for (k, v) in std::mem::take(map) {
                if k != "apiVersion" && k != "kind" {
                    typed.insert(k, v);
                }
            }
            *map = typed;
        }
    }
    obj
}

/// Several objects as kubectl prints them: a `v1` `List`.
pub fn as_list(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": items,
    })
}

/// `-o yaml`.
pub fn yaml(v: &Value) -> String {
    yaml_serde::to_string(v).unwrap_or_else(|e| format!("# cannot print as YAML: {e}\n"))
}

/// `-o json`, pretty with a trailing newline.
pub fn json(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods_table() -> Value {
        json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "7"},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "priority": 0},
                {"name": "Ready", "type": "string", "priority": 0},
                {"name": "Status", "type": "string", "priority": 0},
                {"name": "Restarts", "type": "integer", "priority": 0},
                {"name": "IP", "type": "string", "priority": 1}
            ],
            "rows": [
                {"cells": ["web-1", "1/1", "Running", 0, "10.0.0.5"], "object": {"metadata": {"name": "web-1", "namespace": "default"}}},
                {"cells": ["a-much-longer-name", "0/1", "Pending", 12, null], "object": {"metadata": {"name": "x", "namespace": "kube-system"}}}
            ]
        })
    }

    #[test]
    fn tables_print_aligned_like_kubectl() {
        let t = Table::from_value(&pods_table()).unwrap();
        let cases = [
            (
                false,
                false,
                "NAME                 READY   STATUS    RESTARTS\n\
                 web-1                1/1     Running   0\n\
                 a-much-longer-name   0/1     Pending   12\n",
            ),
            (
                true,
                true,
                "NAMESPACE     NAME                 READY   STATUS    RESTARTS   IP\n\
                 default       web-1                1/1     Running   0          10.0.0.5\n\
                 kube-system   a-much-longer-name   0/1     Pending   12         <none>\n",
            ),
        ];
        for (wide, ns, want) in cases {
            assert_eq!(TablePrinter::new(wide, ns).render(&t, true), want);
        }
    }

    #[test]
    fn watch_rows_keep_the_first_tables_widths() {
        let t = Table::from_value(&pods_table()).unwrap();
        let mut p = TablePrinter::new(false, false);
        p.render(&t, true);
        let next = Table {
            rows: vec![Row {
                cells: vec!["w".into(), "1/1".into(), "Running".into(), "1".into()],
                namespace: String::new(),
            }],
            ..t
        };
        assert_eq!(
            p.render(&next, false),
            "w                    1/1     Running   1\n"
        );
    }

    #[test]
    fn non_tables_are_not_mistaken_for_tables() {
        assert!(Table::from_value(&json!({"kind": "PodList", "items": []})).is_none());
    }

    #[test]
    fn type_meta_is_added_first() {
        let v = with_type_meta(json!({"metadata": {"name": "a"}}), "apps/v1", "Deployment");
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"}}"#
        );
    }
}
