//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded to
//! JSON for the kinds and fields kubectl's typed commands send (`kubectl create
//! namespace|configmap|secret|deployment|job|service`, `kubectl run`).
//!
//! The wire format is the `k8s\0` magic, a `runtime.Unknown` envelope (type meta + raw
//! bytes) and the object's message per Kubernetes' `generated.proto`. Only the messages
//! below are known; a field they do not list is passed over when it holds its zero value
//! (Go writes every non-pointer field) and otherwise refused with a 415 that says to send
//! JSON or YAML instead, never silently dropped. Responses are always JSON (every
//! Kubernetes client also accepts JSON).

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, Result};

const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Int,
    /// A pointer field in Go (`*int32`): present means set, so 0 is kept.
    OptInt,
    /// A `*bool` whose unset default is true: `false` is kept.
    OptBool,
    /// `bytes`: base64 in JSON.
    Bytes,
    Msg(&'static [Field]),
    /// `map<string, V>`.
    Map(&'static Ty),
    /// meta/v1 Time: RFC 3339, or absent when zero.
    Time,
    /// resource.Quantity: its string form.
    Quantity,
    IntOrString,
}

#[derive(Clone, Copy)]
struct Field {
    num: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
}

const fn f(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: false,
    }
}

const fn r(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: true,
    }
}

const STR_MAP: Ty = Ty::Map(&Ty::Str);
const EMPTY: Ty = Ty::Msg(&[]);

const OWNER_REFERENCE: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "controller", Ty::Bool),
    f(7, "blockOwnerDeletion", Ty::Bool),
];

const OBJECT_META: &[Field] = &[
    f(1, "name", Ty::Str),
    f(2, "generateName", Ty::Str),
    f(3, "namespace", Ty::Str),
    f(4, "selfLink", Ty::Str),
    f(5, "uid", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "generation", Ty::Int),
    f(8, "creationTimestamp", Ty::Time),
    f(9, "deletionTimestamp", Ty::Time),
    f(10, "deletionGracePeriodSeconds", Ty::OptInt),
    f(11, "labels", STR_MAP),
    f(12, "annotations", STR_MAP),
    r(13, "ownerReferences", Ty::Msg(OWNER_REFERENCE)),
    r(14, "finalizers", Ty::Str),
];

const LABEL_SELECTOR: &[Field] = &[
    f(1, "matchLabels", STR_MAP),
    r(
        2,
        "matchExpressions",
        Ty::Msg(&[
            f(1, "key", Ty::Str),
            f(2, "operator", Ty::Str),
            r(3, "values", Ty::Str),
        ]),
    ),
];

const CONTAINER: &[Field] = &[
    f(1, "name", Ty::Str),
    f(2, "image", Ty::Str),
    r(3, "command", Ty::Str),
    r(4, "args", Ty::Str),
    f(5, "workingDir", Ty::Str),
    r(
        6,
        "ports",
        Ty::Msg(&[
            f(1, "name", Ty::Str),
            f(2, "hostPort", Ty::Int),
            f(3, "containerPort", Ty::Int),
            f(4, "protocol", Ty::Str),
            f(5, "hostIP", Ty::Str),
        ]),
    ),
    r(
        7,
        "env",
        Ty::Msg(&[f(1, "name", Ty::Str), f(2, "value", Ty::Str)]),
    ),
    f(
        8,
        "resources",
        Ty::Msg(&[
            f(1, "limits", Ty::Map(&Ty::Quantity)),
            f(2, "requests", Ty::Map(&Ty::Quantity)),
        ]),
    ),
    f(13, "terminationMessagePath", Ty::Str),
    f(14, "imagePullPolicy", Ty::Str),
    f(16, "stdin", Ty::Bool),
    f(17, "stdinOnce", Ty::Bool),
    f(18, "tty", Ty::Bool),
    f(20, "terminationMessagePolicy", Ty::Str),
    f(24, "restartPolicy", Ty::Str),
];

const POD_SPEC: &[Field] = &[
    r(2, "containers", Ty::Msg(CONTAINER)),
    f(3, "restartPolicy", Ty::Str),
    f(4, "terminationGracePeriodSeconds", Ty::OptInt),
    f(5, "activeDeadlineSeconds", Ty::OptInt),
    f(6, "dnsPolicy", Ty::Str),
    f(7, "nodeSelector", STR_MAP),
    f(8, "serviceAccountName", Ty::Str),
    f(9, "serviceAccount", Ty::Str),
    f(10, "nodeName", Ty::Str),
    f(11, "hostNetwork", Ty::Bool),
    f(14, "securityContext", EMPTY),
    f(16, "hostname", Ty::Str),
    f(17, "subdomain", Ty::Str),
    f(19, "schedulerName", Ty::Str),
    r(20, "initContainers", Ty::Msg(CONTAINER)),
    r(
        22,
        "tolerations",
        Ty::Msg(&[
            f(1, "key", Ty::Str),
            f(2, "operator", Ty::Str),
            f(3, "value", Ty::Str),
            f(4, "effect", Ty::Str),
            f(5, "tolerationSeconds", Ty::OptInt),
        ]),
    ),
    f(25, "priority", Ty::OptInt),
    f(30, "enableServiceLinks", Ty::OptBool),
];

const POD_TEMPLATE_SPEC: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(POD_SPEC)),
];

const SERVICE_SPEC: &[Field] = &[
    r(
        1,
        "ports",
        Ty::Msg(&[
            f(1, "name", Ty::Str),
            f(2, "protocol", Ty::Str),
            f(3, "port", Ty::Int),
            f(4, "targetPort", Ty::IntOrString),
            f(5, "nodePort", Ty::Int),
            f(6, "appProtocol", Ty::Str),
        ]),
    ),
    f(2, "selector", STR_MAP),
    f(3, "clusterIP", Ty::Str),
    f(4, "type", Ty::Str),
    r(5, "externalIPs", Ty::Str),
    f(7, "sessionAffinity", Ty::Str),
    f(10, "externalName", Ty::Str),
    f(11, "externalTrafficPolicy", Ty::Str),
    f(17, "ipFamilyPolicy", Ty::Str),
    r(18, "clusterIPs", Ty::Str),
    r(19, "ipFamilies", Ty::Str),
    f(22, "internalTrafficPolicy", Ty::Str),
];

const DEPLOYMENT_SPEC: &[Field] = &[
    f(1, "replicas", Ty::OptInt),
    f(2, "selector", Ty::Msg(LABEL_SELECTOR)),
    f(3, "template", Ty::Msg(POD_TEMPLATE_SPEC)),
    f(
        4,
        "strategy",
        Ty::Msg(&[
            f(1, "type", Ty::Str),
            f(
                2,
                "rollingUpdate",
                Ty::Msg(&[
                    f(1, "maxUnavailable", Ty::IntOrString),
                    f(2, "maxSurge", Ty::IntOrString),
                ]),
            ),
        ]),
    ),
    f(5, "minReadySeconds", Ty::Int),
    f(6, "revisionHistoryLimit", Ty::OptInt),
    f(7, "paused", Ty::Bool),
    f(9, "progressDeadlineSeconds", Ty::OptInt),
];

const JOB_SPEC: &[Field] = &[
    f(1, "parallelism", Ty::OptInt),
    f(2, "completions", Ty::OptInt),
    f(3, "activeDeadlineSeconds", Ty::OptInt),
    f(4, "selector", Ty::Msg(LABEL_SELECTOR)),
    f(5, "manualSelector", Ty::Bool),
    f(6, "template", Ty::Msg(POD_TEMPLATE_SPEC)),
    f(7, "backoffLimit", Ty::OptInt),
    f(8, "ttlSecondsAfterFinished", Ty::OptInt),
    f(9, "completionMode", Ty::Str),
    f(10, "suspend", Ty::Bool),
];

/// (kind, the object's message). Status messages are accepted only empty (clients send
/// none on create; the server resets status anyway).
const KINDS: &[(&str, &[Field])] = &[
    (
        "Namespace",
        &[
            f(1, "metadata", Ty::Msg(OBJECT_META)),
            f(2, "spec", Ty::Msg(&[r(1, "finalizers", Ty::Str)])),
            f(3, "status", Ty::Msg(&[f(1, "phase", Ty::Str)])),
        ],
    ),
    (
        "ConfigMap",
        &[
            f(1, "metadata", Ty::Msg(OBJECT_META)),
            f(2, "data", STR_MAP),
            f(3, "binaryData", Ty::Map(&Ty::Bytes)),
            f(4, "immutable", Ty::Bool),
        ],
    ),
    (
        "Secret",
        &[
            f(1, "metadata", Ty::Msg(OBJECT_META)),
            f(2, "data", Ty::Map(&Ty::Bytes)),
            f(3, "type", Ty::Str),
            f(4, "stringData", STR_MAP),
            f(5, "immutable", Ty::Bool),
        ],
    ),
    (
        "Pod",
        &[
            f(1, "metadata", Ty::Msg(OBJECT_META)),
            f(2, "spec", Ty::Msg(POD_SPEC)),
            f(3, "status", EMPTY),
        ],
    ),
    (
        "Service",
        &[
            f(1, "metadata", Ty::Msg(OBJECT_META)),
            f(2, "spec", Ty::Msg(SERVICE_SPEC)),
            f(3, "status", Ty::Msg(&[f(1, "loadBalancer", EMPTY)])),
        ],
    ),
    (
        "Deployment",
        &[
            f(1, "metadata", Ty::Msg(OBJECT_META)),
            f(2, "spec", Ty::Msg(DEPLOYMENT_SPEC)),
            f(3, "status", EMPTY),
        ],
    ),
    (
        "Job",
        &[
            f(1, "metadata", Ty::Msg(OBJECT_META)),
            f(2, "spec", Ty::Msg(JOB_SPEC)),
            f(3, "status", EMPTY),
        ],
    ),
];

const TYPE_META: &[Field] = &[f(1, "apiVersion", Ty::Str), f(2, "kind", Ty::Str)];

fn unsupported(why: String) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!("{why}; send the object as JSON or YAML instead (e.g. kubectl apply -f)"),
    )
}

/// Decodes a protobuf request body into the JSON object it stands for.
pub fn decode(bytes: &[u8]) -> Result<Value> {
    let body = bytes.strip_prefix(MAGIC).ok_or_else(|| {
        ApiError::bad_request("protobuf body does not start with the k8s\\0 magic")
    })?;
    let mut raw = Vec::new();
    let mut envelope = Map::new();
    // runtime.Unknown: typeMeta = 1, raw = 2 (contentEncoding and contentType unused).
    let mut reader = Reader { buf: body, pos: 0 };
    while let Some((num, wire)) = reader.key()? {
        match (num, wire) {
            (2, 2) => raw = reader.bytes()?.to_vec(),
            (1, 2) => {
                let tm = reader.bytes()?;
                envelope = message(tm, TYPE_META, "TypeMeta")?
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
            }
            _ => reader.skip(wire)?,
        }
    }
    let kind = envelope
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let api_version = envelope
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let fields = KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, fields)| *fields)
        .ok_or_else(|| {
            unsupported(format!(
                "tug cannot decode {kind:?} objects sent as protobuf"
            ))
        })?;
    let mut obj = message(&raw, fields, &kind)?;
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
    Ok(obj)
}

/// Decodes one message; zero values are left out, as Kubernetes' JSON omits them.
fn message(buf: &[u8], fields: &[Field], path: &str) -> Result<Value> {
    let mut out = Map::new();
    let mut reader = Reader { buf, pos: 0 };
    while let Some((num, wire)) = reader.key()? {
        let Some(field) = fields.iter().find(|f| f.num == num) else {
            // Go writes every non-pointer field, zero or not; a zero value is what an
            // absent field means in Kubernetes' JSON, so it is safe to pass over.
            let zero = match wire {
                0 => reader.varint()? == 0,
                2 => reader.bytes()?.is_empty(),
                _ => false,
            };
            if zero {
                continue;
            }
            return Err(unsupported(format!(
                "protobuf field {num} of {path} is not supported by tug"
            )));
        };
        let name = format!("{path}.{}", field.name);
        let value = value(&mut reader, wire, field.ty, &name)?;
        match field.ty {
            Ty::Map(_) => {
                let entry = out.entry(field.name).or_insert_with(|| json!({}));
                if let (Some(target), Value::Object(kv)) = (entry.as_object_mut(), value) {
                    target.extend(kv);
                }
            }
            _ if field.repeated => {
                match (out.entry(field.name).or_insert_with(|| json!([])), value) {
                    (Value::Array(list), Value::Array(packed)) => list.extend(packed),
                    (Value::Array(list), v) => list.push(v),
                    _ => {}
                }
            }
            _ if is_zero(&value) && !matches!(field.ty, Ty::OptInt | Ty::OptBool) => {}
            _ => {
                out.insert(field.name.to_string(), value);
            }
        }
    }
    out.retain(|_, v| !is_empty(v));
    Ok(Value::Object(out))
}

/// The zero value of a scalar, which Kubernetes' JSON leaves out.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        other => is_empty(other),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn value(reader: &mut Reader, wire: u64, ty: Ty, path: &str) -> Result<Value> {
    let wrong = || {
        ApiError::bad_request(format!(
            "protobuf field {path} has the wrong wire type {wire}"
        ))
    };
    match ty {
        Ty::Int | Ty::Bool | Ty::OptInt | Ty::OptBool if wire == 2 => {
            // Packed repeated scalars.
            let bytes = reader.bytes()?;
            let mut inner = Reader { buf: bytes, pos: 0 };
            let mut list = Vec::new();
            while inner.pos < bytes.len() {
                let v = inner.varint()?;
                list.push(if matches!(ty, Ty::Bool | Ty::OptBool) {
                    json!(v != 0)
                } else {
                    json!(v as i64)
                });
            }
            Ok(Value::Array(list))
        }
        Ty::Int | Ty::OptInt if wire == 0 => Ok(json!(reader.varint()? as i64)),
        Ty::Bool | Ty::OptBool if wire == 0 => Ok(json!(reader.varint()? != 0)),
        _ if wire != 2 => Err(wrong()),
        Ty::Int | Ty::Bool | Ty::OptInt | Ty::OptBool => Err(wrong()),
        Ty::Str => {
            let b = reader.bytes()?;
            Ok(json!(std::str::from_utf8(b).map_err(|_| {
                ApiError::bad_request(format!("protobuf field {path} is not UTF-8"))
            })?))
        }
        Ty::Bytes => Ok(json!(
            base64::engine::general_purpose::STANDARD.encode(reader.bytes()?)
        )),
        Ty::Msg(fields) => message(reader.bytes()?, fields, path),
        Ty::Map(value_ty) => {
            let entry = reader.bytes()?;
            let mut inner = Reader { buf: entry, pos: 0 };
            let (mut key, mut val) = (String::new(), Value::Null);
            while let Some((num, w)) = inner.key()? {
                match num {
                    1 => {
                        key = value(&mut inner, w, Ty::Str, path)?
                            .as_str()
                            .unwrap_or_default()
                            .to_string()
                    }
                    2 => val = value(&mut inner, w, *value_ty, path)?,
                    _ => inner.skip(w)?,
                }
            }
            if val.is_null() {
                val = match value_ty {
                    Ty::Str | Ty::Bytes | Ty::Quantity => json!(""),
                    _ => Value::Null,
                };
            }
            let mut m = Map::new();
            m.insert(key, val);
            Ok(Value::Object(m))
        }
        Ty::Time => {
            let t = message(
                reader.bytes()?,
                &[f(1, "seconds", Ty::Int), f(2, "nanos", Ty::Int)],
                path,
            )?;
            match t["seconds"].as_i64() {
                None | Some(0) => Ok(Value::Null),
                Some(s) => Ok(chrono::DateTime::from_timestamp(s, 0)
                    .map(|t| json!(crate::object::timestamp(t)))
                    .unwrap_or(Value::Null)),
            }
        }
        Ty::Quantity => {
            let q = message(reader.bytes()?, &[f(1, "string", Ty::Str)], path)?;
            Ok(q.get("string").cloned().unwrap_or_else(|| json!("0")))
        }
        Ty::IntOrString => {
            let v = message(
                reader.bytes()?,
                &[
                    f(1, "type", Ty::Int),
                    f(2, "intVal", Ty::Int),
                    f(3, "strVal", Ty::Str),
                ],
                path,
            )?;
            Ok(if v["type"].as_i64() == Some(1) {
                v.get("strVal").cloned().unwrap_or_else(|| json!(""))
            } else {
                v.get("intVal").cloned().unwrap_or_else(|| json!(0))
            })
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn truncated() -> ApiError {
        ApiError::bad_request("protobuf body is truncated or malformed")
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(Self::truncated)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Self::truncated())
    }

    /// The next field number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, u64)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, k & 7)))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = usize::try_from(self.varint()?).map_err(|_| Self::truncated())?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(Self::truncated)?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    fn skip(&mut self, wire: u64) -> Result<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            _ => Err(Self::truncated()),
        }
    }

    fn advance(&mut self, n: usize) -> Result<()> {
        if self.pos + n > self.buf.len() {
            return Err(Self::truncated());
        }
        self.pos += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field(num: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        field(1, api_version.as_bytes(), &mut tm);
        field(2, kind.as_bytes(), &mut tm);
        let mut out = MAGIC.to_vec();
        field(1, &tm, &mut out);
        field(2, raw, &mut out);
        out
    }

    #[test]
    fn a_configmap_like_kubectl_create_sends_decodes_to_json() {
        let mut meta = Vec::new();
        field(1, b"cm", &mut meta);
        field(2, b"", &mut meta);
        field(8, b"", &mut meta); // zero creationTimestamp
        let mut entry = Vec::new();
        field(1, b"a", &mut entry);
        field(2, b"b", &mut entry);
        let mut raw = Vec::new();
        field(1, &meta, &mut raw);
        field(2, &entry, &mut raw);
        let obj = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            obj,
            json!({"metadata": {"name": "cm"}, "data": {"a": "b"}, "apiVersion": "v1", "kind": "ConfigMap"})
        );
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused_not_dropped() {
        let mut raw = Vec::new();
        field(9, b"x", &mut raw);
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", &raw)).unwrap_err().code,
            415
        );
        assert_eq!(
            decode(&envelope("v1", "Widget", &[])).unwrap_err().code,
            415
        );
        assert_eq!(decode(b"nope").unwrap_err().code, 400);
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", &[0x12, 0x05]))
                .unwrap_err()
                .code,
            400
        );
    }
}
