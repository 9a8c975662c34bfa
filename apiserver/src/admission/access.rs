//! Reading and defaulting fields of an object's JSON form.
//!
//! Admission works on JSON after a strict typed decode: field paths in errors are JSON
//! names anyway, and defaulting only ever adds fields.

use serde_json::{Map, Value};

/// The string at `key`, or `""`.
pub fn str_at<'a>(m: &'a Value, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The list at `key`, or an empty slice.
pub fn list_at<'a>(m: &'a Value, key: &str) -> &'a [Value] {
    m.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The map at `key`, if any.
pub fn map_at<'a>(m: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    m.get(key).and_then(Value::as_object)
}

/// The object at `key`, created empty when missing (or not an object).
pub fn child<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let m = v.as_object_mut().expect("just made an object");
    let c = m.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !c.is_object() {
        *c = Value::Object(Map::new());
    }
    c
}

/// Sets `key` to `value` when it is missing, null or an empty string.
pub fn default(v: &mut Value, key: &str, value: Value) {
    let Some(m) = v.as_object_mut() else { return };
    match m.get(key) {
        None | Some(Value::Null) => {
            m.insert(key.to_string(), value);
        }
        Some(Value::String(s)) if s.is_empty() => {
            m.insert(key.to_string(), value);
        }
        _ => {}
    }
}

/// Calls `f` on every element of the list at `key`, if there is one.
pub fn each_mut(v: &mut Value, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(list) = v.get_mut(key).and_then(Value::as_array_mut) {
        list.iter_mut().for_each(&mut f);
    }
}
