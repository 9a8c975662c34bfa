//! Objects as the apiserver handles them: JSON values, with accessors for the metadata
//! fields the REST logic reads and writes, and the stored-bytes codec.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde_json::{Map, Value};
use tug_store::KeyValue;

use crate::error::{ApiError, Result};

/// Stored objects larger than this are refused (etcd's default limit in Kubernetes).
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

/// `metadata` as a map, created if missing or not an object.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("made an object above");
    let m = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut().expect("made an object above")
}

pub fn str_field<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

pub fn name(obj: &Value) -> &str {
    str_field(obj, "name")
}

pub fn namespace(obj: &Value) -> &str {
    str_field(obj, "namespace")
}

pub fn uid(obj: &Value) -> &str {
    str_field(obj, "uid")
}

pub fn resource_version(obj: &Value) -> &str {
    str_field(obj, "resourceVersion")
}

pub fn is_deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

pub fn has_finalizers(obj: &Value) -> bool {
    obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

/// Namespaces carry their own finalizers in `spec.finalizers` (the namespace
/// controller's `kubernetes`); a deleted namespace stays until those are gone too.
pub fn has_spec_finalizers(obj: &Value) -> bool {
    obj["spec"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

/// Sets or removes (for `None`) one metadata field.
pub fn set_meta(obj: &mut Value, field: &str, value: Option<Value>) {
    let m = meta_mut(obj);
    match value {
        Some(v) => {
            m.insert(field.to_string(), v);
        }
        None => {
            m.remove(field);
        }
    }
}

/// Decodes stored bytes and stamps `metadata.resourceVersion` with the store revision
/// (the stored copy never carries a trustworthy one).
pub fn decode(kv: &KeyValue) -> Result<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::internal(format!("stored object {} is not valid JSON: {e}", kv.key))
    })?;
    set_meta(
        &mut obj,
        "resourceVersion",
        Some(Value::String(kv.mod_revision.to_string())),
    );
    Ok(obj)
}

/// The bytes to store: the object without `resourceVersion` (the store revision is the
/// truth). Refuses objects above [`MAX_OBJECT_BYTES`].
pub fn encode(obj: &Value) -> Result<Vec<u8>> {
    let mut obj = obj.clone();
    set_meta(&mut obj, "resourceVersion", None);
    let bytes = serde_json::to_vec(&obj).map_err(|e| ApiError::internal(e.to_string()))?;
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(ApiError::too_large(format!(
            "{} {:?} is {} bytes, over the {} byte limit for one stored object; split the data across several objects",
            obj["kind"].as_str().unwrap_or("object"),
            name(&obj),
            bytes.len(),
            MAX_OBJECT_BYTES
        )));
    }
    Ok(bytes)
}

/// Everything that is neither metadata nor status: what `metadata.generation` tracks.
pub fn spec_part(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// RFC 3339 with second precision, as Kubernetes writes `metav1.Time`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn now() -> String {
    timestamp(Utc::now())
}

/// The 5-character suffix of `generateName`, from the alphabet Kubernetes uses (no
/// vowels, no confusable digits, so names never spell words).
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Parses a `resourceVersion` sent by a client.
pub fn parse_resource_version(rv: &str) -> Result<u64> {
    rv.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resourceVersion {rv:?}: must be a decimal number previously returned by the server"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decode_stamps_the_store_revision_over_any_stored_one() {
        let kv = KeyValue {
            key: "/registry/pods/a/b".into(),
            value: br#"{"metadata":{"name":"b","resourceVersion":"1"}}"#.to_vec(),
            create_revision: 3,
            mod_revision: 7,
        };
        assert_eq!(resource_version(&decode(&kv).unwrap()), "7");
    }

    #[test]
    fn encode_drops_resource_version_and_refuses_huge_objects() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "9"}});
        let bytes = encode(&obj).unwrap();
        assert!(!String::from_utf8(bytes)
            .unwrap()
            .contains("resourceVersion"));
        let big = json!({"kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": "a".repeat(MAX_OBJECT_BYTES)}});
        assert_eq!(encode(&big).unwrap_err().code, 413);
    }

    #[test]
    fn spec_part_ignores_metadata_and_status() {
        let a =
            json!({"kind": "Pod", "metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"p": 1}});
        let b =
            json!({"kind": "Pod", "metadata": {"name": "b"}, "spec": {"x": 1}, "status": {"p": 2}});
        assert_eq!(spec_part(&a), spec_part(&b));
    }

    #[test]
    fn name_suffix_is_five_safe_characters() {
        let s = name_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
