//! What configMap, secret, downwardAPI and projected volumes contain: the kubelet's
//! payload rules (items, modes, optional keys) as pure functions of the objects.

use std::collections::BTreeMap;

use tug_proto::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, ResourceFieldSelector, Secret,
};
use tug_proto::quantity::Format;
use tug_proto::Quantity;

use super::atomic_writer::{FileProjection, Payload};

/// The mode files get when neither `items[].mode` nor `defaultMode` says otherwise.
pub const DEFAULT_MODE: i32 = 0o644;

/// `items` over a key -> bytes map, as the kubelet's `MakePayload`: no items means every
/// key under its own name; an item whose key is missing is an error unless `optional`.
fn key_payload(
    keys: &BTreeMap<String, &[u8]>,
    items: &[KeyToPath],
    default_mode: i32,
    optional: bool,
    missing_key: fn(&str) -> String,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    if items.is_empty() {
        for (key, data) in keys {
            payload.insert(key.clone(), projection(data, default_mode));
        }
        return Ok(payload);
    }
    for item in items {
        let Some(data) = keys.get(&item.key) else {
            if optional {
                continue;
            }
            return Err(missing_key(&item.key));
        };
        payload.insert(
            item.path.clone(),
            projection(data, item.mode.unwrap_or(default_mode)),
        );
    }
    Ok(payload)
}

fn projection(data: &[u8], mode: i32) -> FileProjection {
    FileProjection {
        data: data.to_vec(),
        mode: (mode as u32) & 0o7777,
    }
}

pub fn config_map_payload(
    cm: &ConfigMap,
    items: &[KeyToPath],
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    let mut keys: BTreeMap<String, &[u8]> = BTreeMap::new();
    for (k, v) in &cm.data {
        keys.insert(k.clone(), v.as_bytes());
    }
    for (k, v) in &cm.binary_data {
        keys.insert(k.clone(), &v.0);
    }
    key_payload(&keys, items, default_mode, optional, |k| {
        format!("configmap references non-existent config key: {k}")
    })
}

pub fn secret_payload(
    secret: &Secret,
    items: &[KeyToPath],
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    let mut keys: BTreeMap<String, &[u8]> = BTreeMap::new();
    // The apiserver folds stringData into data on write; accept it anyway.
    for (k, v) in &secret.string_data {
        keys.insert(k.clone(), v.as_bytes());
    }
    for (k, v) in &secret.data {
        keys.insert(k.clone(), &v.0);
    }
    key_payload(&keys, items, default_mode, optional, |k| {
        format!("secret references non-existent secret key: {k}")
    })
}

/// downwardAPI files (the kubelet's `CollectData`): metadata fields of the pod.
pub fn downward_payload(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    for item in items {
        let mode = item.mode.unwrap_or(default_mode);
        let value = if let Some(f) = &item.field_ref {
            field_value(pod, &f.field_path)?
        } else if let Some(r) = &item.resource_field_ref {
            resource_value(pod, r)?
        } else {
            return Err(format!(
                "downwardAPI item {:?}: set fieldRef.fieldPath",
                item.path
            ));
        };
        payload.insert(item.path.clone(), projection(value.as_bytes(), mode));
    }
    Ok(payload)
}

/// The value of a downward API field path, as the kubelet's
/// `ExtractFieldPathAsString` renders it.
pub fn field_value(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    if let Some(key) = subscript(path, "metadata.labels") {
        return Ok(meta.labels.get(key).cloned().unwrap_or_default());
    }
    if let Some(key) = subscript(path, "metadata.annotations") {
        return Ok(meta.annotations.get(key).cloned().unwrap_or_default());
    }
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let v = match path {
        "metadata.name" => meta.name().to_string(),
        "metadata.namespace" => meta.namespace().to_string(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(&meta.labels),
        "metadata.annotations" => format_map(&meta.annotations),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        other => return Err(format!("unsupported fieldPath: {other}")),
    };
    Ok(v)
}

/// A container's resource for a downwardAPI file (the kubelet's
/// `ExtractContainerResourceValue`): CPU in units of the divisor (default 1 core) and
/// memory in units of the divisor (default 1 byte), rounded up. An unset limit is the
/// node's capacity, as the kubelet fills in node allocatable.
pub fn resource_value(pod: &Pod, sel: &ResourceFieldSelector) -> Result<String, String> {
    let name = sel
        .container_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            format!(
                "resourceFieldRef {:?}: containerName is required in volumes",
                sel.resource
            )
        })?;
    let spec = pod.spec.as_ref();
    let container = spec
        .into_iter()
        .flat_map(|s| s.containers.iter().chain(s.init_containers.iter()))
        .find(|c| c.name == name)
        .ok_or_else(|| format!("resourceFieldRef: container {name:?} not found in the pod"))?;
    let resources = container.resources.clone().unwrap_or_default();
    let (map, key) = match sel.resource.split_once('.') {
        Some(("limits", key)) => (&resources.limits, key),
        Some(("requests", key)) => (&resources.requests, key),
        _ => return Err(format!("unsupported container resource : {}", sel.resource)),
    };
    let divisor = sel
        .divisor
        .filter(|d| !d.is_zero())
        .unwrap_or_else(|| Quantity::new(1, Format::DecimalSI));
    let is_limit = sel.resource.starts_with("limits.");
    let amount = |default_capacity: fn() -> Quantity| match map.get(key) {
        Some(q) => *q,
        None if is_limit => default_capacity(),
        None => Quantity::new(0, Format::DecimalSI),
    };
    let ceil_div = |a: i64, b: i64| -> i64 {
        if b <= 0 {
            return 0;
        }
        a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
    };
    match key {
        "cpu" => Ok(ceil_div(amount(node_cpu).as_milli(), divisor.as_milli()).to_string()),
        "memory" | "ephemeral-storage" => {
            Ok(ceil_div(amount(node_memory).value(), divisor.value()).to_string())
        }
        _ => Err(format!("unsupported container resource : {}", sel.resource)),
    }
}

fn node_cpu() -> Quantity {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    Quantity::new(n as i64, Format::DecimalSI)
}

fn node_memory() -> Quantity {
    let kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .unwrap_or(0);
    Quantity::new(kib * 1024, Format::BinarySI)
}

/// `metadata.labels['app']` -> `app`.
fn subscript<'a>(path: &'a str, field: &str) -> Option<&'a str> {
    path.strip_prefix(field)?
        .strip_prefix("['")?
        .strip_suffix("']")
}

/// `key="value"` lines sorted by key, values quoted like Go's `%q`.
fn format_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tug_proto::core::v1::ObjectFieldSelector;
    use tug_proto::{ByteString, ObjectMeta};

    fn cm() -> ConfigMap {
        let mut cm = ConfigMap {
            metadata: ObjectMeta::namespaced("default", "app"),
            ..Default::default()
        };
        cm.data.insert("a.conf".into(), "A".into());
        cm.binary_data
            .insert("b.bin".into(), ByteString(vec![0, 1, 2]));
        cm
    }

    fn ktp(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    #[test]
    fn config_map_payloads_follow_items_modes_and_optional() {
        struct Case {
            name: &'static str,
            items: Vec<KeyToPath>,
            optional: bool,
            want: Result<Vec<(&'static str, u32)>, &'static str>,
        }
        let cases = vec![
            Case {
                name: "no items: every key, default mode",
                items: vec![],
                optional: false,
                want: Ok(vec![("a.conf", 0o644), ("b.bin", 0o644)]),
            },
            Case {
                name: "items pick and rename with their own mode",
                items: vec![ktp("a.conf", "etc/app.conf", Some(0o400))],
                optional: false,
                want: Ok(vec![("etc/app.conf", 0o400)]),
            },
            Case {
                name: "missing key is an error",
                items: vec![ktp("nope", "x", None)],
                optional: false,
                want: Err("configmap references non-existent config key: nope"),
            },
            Case {
                name: "missing key of an optional source is skipped",
                items: vec![ktp("nope", "x", None), ktp("b.bin", "b", None)],
                optional: true,
                want: Ok(vec![("b", 0o644)]),
            },
        ];
        for c in cases {
            let got = config_map_payload(&cm(), &c.items, DEFAULT_MODE, c.optional);
            match (got, c.want) {
                (Ok(p), Ok(want)) => {
                    let got: Vec<_> = p.iter().map(|(k, f)| (k.as_str(), f.mode)).collect();
                    assert_eq!(got, want, "{}", c.name);
                }
                (Err(e), Err(want)) => assert_eq!(e, want, "{}", c.name),
                (got, want) => panic!("{}: got {got:?}, want {want:?}", c.name),
            }
        }
        let p = config_map_payload(&cm(), &[], DEFAULT_MODE, false).unwrap();
        assert_eq!(p["b.bin"].data, vec![0, 1, 2]);
    }

    #[test]
    fn secret_payloads_use_the_decoded_bytes() {
        let mut s = Secret::default();
        s.data.insert("token".into(), ByteString::from("s3cr3t"));
        let p = secret_payload(&s, &[], 0o400, false).unwrap();
        assert_eq!(p["token"].data, b"s3cr3t");
        assert_eq!(p["token"].mode, 0o400);
        let err = secret_payload(&s, &[ktp("x", "x", None)], 0o400, false).unwrap_err();
        assert_eq!(err, "secret references non-existent secret key: x");
    }

    #[test]
    fn downward_api_renders_metadata_like_the_kubelet() {
        let mut pod = Pod {
            metadata: ObjectMeta::namespaced("ns1", "web-0"),
            ..Default::default()
        };
        pod.metadata.labels.insert("app".into(), "web".into());
        pod.metadata.labels.insert("tier".into(), "front".into());
        pod.metadata
            .annotations
            .insert("note".into(), "say \"hi\"\n".into());
        let item = |path: &str, field: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: field.into(),
            }),
            resource_field_ref: None,
            mode: None,
        };
        let p = downward_payload(
            &pod,
            &[
                item("name", "metadata.name"),
                item("ns", "metadata.namespace"),
                item("labels", "metadata.labels"),
                item("app", "metadata.labels['app']"),
                item("annotations", "metadata.annotations"),
            ],
            DEFAULT_MODE,
        )
        .unwrap();
        let text = |k: &str| String::from_utf8(p[k].data.clone()).unwrap();
        assert_eq!(text("name"), "web-0");
        assert_eq!(text("ns"), "ns1");
        assert_eq!(text("labels"), "app=\"web\"\ntier=\"front\"");
        assert_eq!(text("app"), "web");
        assert_eq!(text("annotations"), "note=\"say \\\"hi\\\"\\n\"");
        let err = downward_payload(&pod, &[item("x", "spec.bogus")], DEFAULT_MODE).unwrap_err();
        assert_eq!(err, "unsupported fieldPath: spec.bogus");
    }

    #[test]
    fn resource_fields_are_rounded_up_in_divisor_units() {
        use tug_proto::core::v1::{Container, PodSpec, ResourceRequirements};
        let q = |s: &str| Quantity::parse(s).unwrap();
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    resources: Some(ResourceRequirements {
                        limits: [
                            ("cpu".to_string(), q("250m")),
                            ("memory".to_string(), q("64Mi")),
                        ]
                        .into(),
                        requests: [("cpu".to_string(), q("100m"))].into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let sel = |resource: &str, divisor: Option<&str>| ResourceFieldSelector {
            container_name: Some("app".into()),
            resource: resource.into(),
            divisor: divisor.map(q),
        };
        let cases = [
            (sel("limits.cpu", None), Ok("1".to_string())),
            (sel("limits.cpu", Some("1m")), Ok("250".to_string())),
            (sel("requests.cpu", Some("1m")), Ok("100".to_string())),
            (sel("limits.memory", Some("1Mi")), Ok("64".to_string())),
            (
                sel("limits.memory", None),
                Ok((64 * 1024 * 1024).to_string()),
            ),
            (sel("requests.memory", None), Ok("0".to_string())),
            (
                sel("limits.gpu", None),
                Err("unsupported container resource : limits.gpu".to_string()),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(resource_value(&pod, &s), want, "{}", s.resource);
        }
        // An unset limit is the node's capacity.
        let mut unset = pod.clone();
        unset.spec.as_mut().unwrap().containers[0].resources = None;
        let cpus: i64 = resource_value(&unset, &sel("limits.cpu", None))
            .unwrap()
            .parse()
            .unwrap();
        assert!(cpus >= 1);
    }
}
