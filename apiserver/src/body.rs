//! Request bodies: size limit, content type, and JSON/YAML decoding with errors that
//! point at the line and column.

use axum::body::{Body, Bytes};
use http::HeaderMap;
use serde_json::Value;

use crate::error::{ApiError, Result};

/// Larger request bodies are refused before parsing (Kubernetes' 3 MiB limit).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

const OBJECT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

/// Reads the whole body, answering 413 beyond [`MAX_BODY_BYTES`].
pub async fn read(body: Body) -> Result<Bytes> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_large {
                ApiError::too_large(format!(
                    "the request body is larger than {MAX_BODY_BYTES} bytes; split the object or the request"
                ))
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })
}

/// The media type of the request without parameters, lower-cased; JSON when absent.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "application/json".to_string())
}

/// Decodes an object body sent as JSON or YAML into a JSON object.
pub fn decode_object(headers: &HeaderMap, bytes: &[u8]) -> Result<Value> {
    let ct = content_type(headers);
    let value = match ct.as_str() {
        "application/json" | "*/*" => decode_json(bytes)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(bytes)?,
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(bytes)?,
        other => return Err(ApiError::unsupported_media_type(other, OBJECT_TYPES)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "the request body must be a single object, got {}",
            kind_of(&value)
        )));
    }
    Ok(value)
}

/// An optional body (DELETE options): empty means `None`.
pub fn decode_optional(headers: &HeaderMap, bytes: &[u8]) -> Result<Option<Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    decode_object(headers, bytes).map(Some)
}

pub fn decode_json(bytes: &[u8]) -> Result<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; send the object as JSON or YAML",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "malformed JSON in the request body: {e}; fix the syntax at that position"
        ))
    })
}

fn decode_yaml(bytes: &[u8]) -> Result<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; send the object as JSON or YAML",
        ));
    }
    yaml_serde::from_slice::<Value>(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "malformed YAML in the request body: {e}; fix the syntax at that position"
        ))
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    type Case<'a> = (&'a str, &'a str, Result<(), (u16, &'a str)>);

    #[test]
    fn bodies_decode_or_name_the_position_of_the_error() {
        let cases: &[Case] = &[
            ("application/json", r#"{"a":1}"#, Ok(())),
            ("application/json; charset=utf-8", r#"{"a":1}"#, Ok(())),
            ("application/yaml", "a: 1\nb: [x]\n", Ok(())),
            (
                "application/json",
                "{\"a\":\n 1,,}",
                Err((400, "line 2 column 4")),
            ),
            ("application/yaml", "a: 1\n b: : [\n", Err((400, "line 2"))),
            ("application/json", "[1]", Err((400, "single object"))),
            ("application/json", "", Err((400, "empty"))),
            (
                "application/vnd.kubernetes.protobuf",
                "x",
                Err((400, "magic")),
            ),
            ("application/cbor", "x", Err((415, "unknown format"))),
        ];
        for (ct, body, want) in cases {
            let got = decode_object(&headers(ct), body.as_bytes());
            match (got, want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err((code, text))) => {
                    assert_eq!(e.code, *code, "{body}: {}", e.message);
                    assert!(e.message.contains(text), "{body}: {}", e.message);
                }
                (got, want) => panic!("{ct} {body}: got {got:?}, want {want:?}"),
            }
        }
    }
}
