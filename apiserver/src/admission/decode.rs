//! Strict decoding into the kind's typed struct, and re-encoding to normalized JSON.

use super::Error;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use tug_proto::{apps, autoscaling, batch, coordination, core};

/// Decodes `obj` as `T` (unknown fields and wrong types are errors naming the field
/// path) and encodes it back, which drops empty fields and orders keys canonically.
fn roundtrip<T: DeserializeOwned + Serialize>(obj: Value) -> Result<Value, Error> {
    let typed: T = serde_path_to_error::deserialize(obj).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        decode_error(path, &inner)
    })?;
    serde_json::to_value(&typed).map_err(|e| Error::Decode {
        path: String::new(),
        message: format!("cannot encode the object: {e}"),
    })
}

/// Builds a Kubernetes-like message: `strict decoding error: unknown field "spec.x"`.
fn decode_error(path: String, serde_message: &str) -> Error {
    if let Some(rest) = serde_message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let full = match path.as_str() {
            "" | "." => field.to_string(),
            p if p.ends_with(field) => p.to_string(),
            p => format!("{p}.{field}"),
        };
        return Error::Decode {
            message: format!("strict decoding error: unknown field {full:?}"),
            path: full,
        };
    }
    let at = if path.is_empty() || path == "." {
        "the object".to_string()
    } else {
        path.clone()
    };
    Error::Decode {
        message: format!("cannot decode {at}: {serde_message}"),
        path,
    }
}

/// Strictly decodes and re-encodes an object of `kind`; kinds without a type here are
/// returned unchanged.
pub fn normalize(kind: &str, obj: Value) -> Result<Value, Error> {
    match kind {
        "Pod" => roundtrip::<core::v1::Pod>(obj),
        "Service" => roundtrip::<core::v1::Service>(obj),
        "Endpoints" => roundtrip::<core::v1::Endpoints>(obj),
        "Namespace" => roundtrip::<core::v1::Namespace>(obj),
        "Node" => roundtrip::<core::v1::Node>(obj),
        "ConfigMap" => roundtrip::<core::v1::ConfigMap>(obj),
        "Secret" => roundtrip::<core::v1::Secret>(obj),
        "Event" => roundtrip::<core::v1::Event>(obj),
        "Binding" => roundtrip::<core::v1::Binding>(obj),
        "Deployment" => roundtrip::<apps::v1::Deployment>(obj),
        "ReplicaSet" => roundtrip::<apps::v1::ReplicaSet>(obj),
        "Job" => roundtrip::<batch::v1::Job>(obj),
        "Lease" => roundtrip::<coordination::v1::Lease>(obj),
        "Scale" => roundtrip::<autoscaling::v1::Scale>(obj),
        _ => Ok(obj),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decode_errors_name_the_field() {
        let cases = [
            (
                "unknown field in a container",
                "Pod",
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x", "imagePullPolcy": "Always"}]}}),
                "spec.containers[0].imagePullPolcy",
                "strict decoding error: unknown field \"spec.containers[0].imagePullPolcy\"",
            ),
            (
                "unknown top-level field",
                "ConfigMap",
                json!({"metadata": {"name": "c"}, "dta": {}}),
                "dta",
                "strict decoding error: unknown field \"dta\"",
            ),
            (
                "wrong type in a deployment",
                "Deployment",
                json!({"metadata": {"name": "d"}, "spec": {"replicas": "three"}}),
                "spec.replicas",
                "",
            ),
        ];
        for (name, kind, obj, want_path, want_message) in cases {
            match normalize(kind, obj) {
                Err(Error::Decode { path, message }) => {
                    assert_eq!(path, want_path, "{name}: {message}");
                    if !want_message.is_empty() {
                        assert_eq!(message, want_message, "{name}");
                    } else {
                        assert!(message.contains(want_path), "{name}: {message}");
                    }
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn empty_fields_are_dropped() {
        let got = normalize(
            "ConfigMap",
            json!({"metadata": {"name": "c", "labels": null}, "data": {}}),
        )
        .unwrap();
        assert_eq!(got["metadata"], json!({"name": "c"}));
        assert!(got.get("data").is_none());
    }
}
