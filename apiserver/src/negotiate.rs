//! Response content negotiation: plain JSON or YAML, `as=Table` (kubectl get) and
//! `as=PartialObjectMetadata`, chosen from the `Accept` header like Kubernetes does.

use std::collections::HashMap;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::error::{ApiError, Result};
use crate::registry::ResourceInfo;

/// What shape the client asked the objects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Object,
    /// meta.k8s.io Table; the string is its apiVersion (`v1` or `v1beta1`).
    Table(&'static str),
    PartialMetadata(&'static str),
}

/// What a Table row's `object` holds (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    pub shape: Shape,
    pub yaml: bool,
    pub include: IncludeObject,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            shape: Shape::Object,
            yaml: false,
            include: IncludeObject::Metadata,
        }
    }
}

impl Output {
    /// Picks the first acceptable media range of `Accept` (clients list preferences in
    /// order; kubectl lists Table first and plain JSON as the fallback).
    pub fn negotiate(headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Output> {
        let include = match query.get("includeObject").map(String::as_str) {
            None | Some("") | Some("Metadata") => IncludeObject::Metadata,
            Some("Object") => IncludeObject::Object,
            Some("None") => IncludeObject::None,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid includeObject {other:?}: must be None, Metadata or Object"
                )))
            }
        };
        let accept = headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim();
        if accept.is_empty() {
            return Ok(Output {
                include,
                ..Output::default()
            });
        }
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let params: HashMap<String, String> = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let json_like = matches!(media.as_str(), "application/json" | "*/*" | "application/*");
            let yaml = media == "application/yaml";
            if !json_like && !yaml {
                continue;
            }
            let shape = match params.get("as").map(String::as_str) {
                None => Shape::Object,
                Some(kind) => {
                    if params.get("g").map(String::as_str) != Some("meta.k8s.io") {
                        continue;
                    }
                    let version = match params.get("v").map(String::as_str) {
                        Some("v1") => "v1",
                        Some("v1beta1") => "v1beta1",
                        _ => continue,
                    };
                    match kind {
                        "Table" => Shape::Table(version),
                        "PartialObjectMetadata" | "PartialObjectMetadataList" => {
                            Shape::PartialMetadata(version)
                        }
                        _ => continue,
                    }
                }
            };
            return Ok(Output {
                shape,
                yaml,
                include,
            });
        }
        Err(ApiError::not_acceptable(accept))
    }

    /// One object in the requested shape.
    pub fn object(&self, code: StatusCode, info: &ResourceInfo, obj: Value) -> Response {
        let body = match self.shape {
            Shape::Object => obj,
            Shape::Table(v) => {
                let rv = obj["metadata"]["resourceVersion"].clone();
                self.table(info, &[obj], json!({"resourceVersion": rv}), v)
            }
            Shape::PartialMetadata(v) => partial(&obj, v),
        };
        self.send(code, &body)
    }

    /// A list in the requested shape; `list_meta` is `{resourceVersion, continue}`.
    pub fn list(&self, info: &ResourceInfo, items: Vec<Value>, list_meta: Value) -> Response {
        let body = self.list_value(info, items, list_meta);
        self.send(StatusCode::OK, &body)
    }

    /// True when a list can be encoded item by item as it is read (plain JSON objects):
    /// see [`JsonListWriter`].
    pub fn streams_lists(&self) -> bool {
        self.shape == Shape::Object && !self.yaml
    }

    pub fn list_value(&self, info: &ResourceInfo, items: Vec<Value>, list_meta: Value) -> Value {
        match self.shape {
            Shape::Object => json!({
                "kind": info.list_kind(),
                "apiVersion": info.api_version(),
                "metadata": list_meta,
                "items": items,
            }),
            Shape::Table(v) => self.table(info, &items, list_meta, v),
            Shape::PartialMetadata(v) => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": format!("meta.k8s.io/{v}"),
                "metadata": list_meta,
                "items": items.iter().map(|o| partial(o, v)).collect::<Vec<_>>(),
            }),
        }
    }

    /// The object of one watch event in the requested shape.
    pub fn event_object(&self, info: &ResourceInfo, obj: Value) -> Value {
        match self.shape {
            Shape::Object => obj,
            Shape::Table(v) => {
                let rv = obj["metadata"]["resourceVersion"].clone();
                self.table(info, &[obj], json!({"resourceVersion": rv}), v)
            }
            Shape::PartialMetadata(v) => partial(&obj, v),
        }
    }

    fn table(&self, info: &ResourceInfo, items: &[Value], list_meta: Value, v: &str) -> Value {
        let mut table = crate::table::to_table(info.kind, items, list_meta, chrono::Utc::now());
        table["apiVersion"] = json!(format!("meta.k8s.io/{v}"));
        if let Some(rows) = table["rows"].as_array_mut() {
            for (row, obj) in rows.iter_mut().zip(items) {
                let Some(row) = row.as_object_mut() else {
                    continue;
                };
                match self.include {
                    IncludeObject::None => {
                        row.remove("object");
                    }
                    IncludeObject::Metadata => {
                        row.insert("object".into(), partial(obj, "v1"));
                    }
                    IncludeObject::Object => {
                        row.insert("object".into(), obj.clone());
                    }
                }
            }
        }
        table
    }

    pub fn send(&self, code: StatusCode, body: &Value) -> Response {
        if self.yaml {
            match yaml_serde::to_string(body) {
                Ok(text) => {
                    let mut resp = (code, text).into_response();
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/yaml"),
                    );
                    resp
                }
                Err(e) => ApiError::internal(format!("cannot encode YAML: {e}")).into_response(),
            }
        } else {
            json_response(code, body)
        }
    }
}

/// Encodes a plain JSON list one item at a time, so a large list costs its encoded size
/// in memory rather than a `Value` tree of every object (about ten times as much).
pub struct JsonListWriter {
    items: Vec<u8>,
    count: usize,
}

impl JsonListWriter {
    pub fn new() -> Self {
        JsonListWriter {
            items: Vec::new(),
            count: 0,
        }
    }

    pub fn push(&mut self, item: &Value) -> Result<()> {
        if self.count > 0 {
            self.items.push(b',');
        }
        serde_json::to_writer(&mut self.items, item)
            .map_err(|e| ApiError::internal(format!("cannot encode a list item: {e}")))?;
        self.count += 1;
        Ok(())
    }

    pub fn finish(self, info: &ResourceInfo, list_meta: &Value) -> Response {
        let head = json!({
            "kind": info.list_kind(),
            "apiVersion": info.api_version(),
            "metadata": list_meta,
        })
        .to_string();
        // `head` is `{...}`: reopen it to append the items array.
        let mut body = Vec::with_capacity(head.len() + self.items.len() + 16);
        body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        body.extend_from_slice(b",\"items\":[");
        body.extend_from_slice(&self.items);
        body.extend_from_slice(b"]}");
        json_bytes_response(StatusCode::OK, body)
    }
}

impl Default for JsonListWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// `PartialObjectMetadata`: just the metadata, as the metadata-only clients want it.
fn partial(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj["metadata"].clone(),
    })
}

pub fn json_response(code: StatusCode, body: &Value) -> Response {
    json_bytes_response(code, serde_json::to_vec(body).unwrap_or_default())
}

/// A JSON response from bytes that are already encoded.
pub fn json_bytes_response(code: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = (code, bytes).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiate(accept: &str) -> Result<Output> {
        let mut h = HeaderMap::new();
        if !accept.is_empty() {
            h.insert(http::header::ACCEPT, accept.parse().unwrap());
        }
        Output::negotiate(&h, &HashMap::new())
    }

    #[test]
    fn accept_headers_pick_the_first_supported_shape() {
        let cases: &[(&str, Option<(Shape, bool)>)] = &[
            ("", Some((Shape::Object, false))),
            ("application/json", Some((Shape::Object, false))),
            ("*/*", Some((Shape::Object, false))),
            ("application/yaml", Some((Shape::Object, true))),
            (
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
                Some((Shape::Table("v1"), false)),
            ),
            (
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
                Some((Shape::Table("v1beta1"), false)),
            ),
            (
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
                Some((Shape::PartialMetadata("v1"), false)),
            ),
            ("application/json;as=Table;v=v2;g=meta.k8s.io,application/json", Some((Shape::Object, false))),
            ("application/vnd.kubernetes.protobuf", None),
        ];
        for (accept, want) in cases {
            let got = negotiate(accept).ok().map(|o| (o.shape, o.yaml));
            assert_eq!(&got, want, "{accept}");
        }
    }
}
