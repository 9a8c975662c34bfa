//! The HTTP routes: health, version, discovery, metrics and the resource paths, behind
//! authentication; every unknown path is a 404 Status.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use http::{HeaderValue, Method, StatusCode, Uri};
use serde_json::Value;

use crate::error::ApiError;
use crate::negotiate::{json_response, Output};
use crate::rest::{self, Req, Target};
use crate::state::AppState;
use crate::{authn, discovery};

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/version",
            get(|| async { json_ok(&discovery::version_info()) }),
        )
        .route("/metrics", get(metrics))
        .route("/openapi/v2", get(openapi_v2))
        .route(
            "/api",
            get(|h: http::HeaderMap| async move { root_discovery(&h, true) }),
        )
        .route(
            "/apis",
            get(|h: http::HeaderMap| async move { root_discovery(&h, false) }),
        )
        .route(
            "/api/v1",
            get(|| async { discovery_doc(discovery::resource_list("", "v1"), "/api/v1") }),
        )
        .route("/apis/{group}", get(api_group))
        .route("/apis/{group}/{version}", get(group_version))
        .route("/api/v1/{*rest}", any(core_resource))
        .route("/apis/{group}/{version}/{*rest}", any(group_resource))
        .fallback(|uri: Uri| async move { ApiError::no_route(uri.path()).into_response() })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::method_not_allowed(&method, uri.path()).into_response()
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authn::authenticate,
        ))
        .with_state(state)
}

fn json_ok(v: &Value) -> Response {
    json_response(StatusCode::OK, v)
}

/// `/api` and `/apis`: aggregated discovery (one document for everything) when the
/// client asks for it, else the classic documents.
fn root_discovery(headers: &http::HeaderMap, legacy: bool) -> Response {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let wants_aggregated = accept.split(',').any(|range| {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    });
    if wants_aggregated {
        let mut resp = json_ok(&discovery::aggregated(legacy));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
        );
        return resp;
    }
    if legacy {
        json_ok(&discovery::api_versions())
    } else {
        json_ok(&discovery::api_group_list())
    }
}

fn discovery_doc(doc: Option<Value>, path: &str) -> Response {
    match doc {
        Some(d) => json_ok(&d),
        None => ApiError::no_route(path).into_response(),
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    (StatusCode::OK, "ok").into_response()
}

/// Ready once the initial namespaces exist and the store knows a leader.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if !state.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "[-]bootstrap: initial namespaces not created yet",
        )
            .into_response();
    }
    if state.store.status().leader.is_none() {
        return (StatusCode::SERVICE_UNAVAILABLE, "[-]store: no raft leader").into_response();
    }
    (StatusCode::OK, "ok").into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state
        .metrics
        .render(&state.store.status(), state.store.oldest_revision());
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

/// An empty OpenAPI v2 document. kubectl downloads it before validating manifests
/// (client-side validation then finds no schema and skips; the server validates
/// strictly anyway). TODO: publish real schemas so `kubectl explain` works.
async fn openapi_v2(headers: http::HeaderMap) -> Response {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("protobuf") {
        // The empty protobuf message is a valid, empty `openapi_v2.Document`.
        let mut resp = (StatusCode::OK, Vec::<u8>::new()).into_response();
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
        );
        return resp;
    }
    json_ok(&serde_json::json!({
        "swagger": "2.0",
        "info": {"title": "tug", "version": "v1"},
        "paths": {},
        "definitions": {},
    }))
}

async fn api_group(Path(group): Path<String>) -> Response {
    discovery_doc(discovery::api_group(&group), &format!("/apis/{group}"))
}

async fn group_version(Path((group, version)): Path<(String, String)>) -> Response {
    discovery_doc(
        discovery::resource_list(&group, &version),
        &format!("/apis/{group}/{version}"),
    )
}

async fn core_resource(
    State(state): State<Arc<AppState>>,
    Path(rest): Path<String>,
    req: Request,
) -> Response {
    resource(state, "", "v1", &rest, req).await
}

async fn group_resource(
    State(state): State<Arc<AppState>>,
    Path((group, version, rest)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    resource(state, &group, &version, &rest, req).await
}

async fn resource(
    state: Arc<AppState>,
    group: &str,
    version: &str,
    rest: &str,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    if let Some(user) = parts.extensions.get::<authn::User>() {
        tracing::debug!(user = %user.0.user, method = %parts.method, uri = %parts.uri, "request");
    }
    let Some(target) = rest::parse_target(group, version, rest) else {
        return ApiError::no_route(parts.uri.path()).into_response();
    };
    let verb = verb_of(&parts.method, &target, &parts.uri);
    let plural = match &target.subresource {
        Some(sub) => format!("{}/{sub}", target.info.plural),
        None => target.info.plural.to_string(),
    };
    let resp = match handle(state.clone(), parts, target, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    state.metrics.request(verb, &plural, resp.status().as_u16());
    resp
}

async fn handle(
    state: Arc<AppState>,
    mut parts: http::request::Parts,
    target: Target,
    body: Body,
) -> Result<Response, ApiError> {
    let query: HashMap<String, String> = match parts.uri.query() {
        None => HashMap::new(),
        Some(q) => axum::extract::Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map(|q| q.0)
            .map_err(|e| ApiError::bad_request(format!("invalid query string {q:?}: {e}")))?,
    };
    let out = Output::negotiate(&parts.headers, &query)?;
    let req = Req {
        target,
        method: parts.method,
        query,
        headers: parts.headers,
        out,
        raw_query: parts.uri.query().unwrap_or_default().to_string(),
        upgrade: parts.extensions.remove::<hyper::upgrade::OnUpgrade>(),
    };
    rest::handle(state, req, body).await
}

/// The Kubernetes verb of a request, for metrics.
fn verb_of(method: &Method, t: &Target, uri: &Uri) -> &'static str {
    let watch = t.legacy_watch
        || uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    match (method.as_str(), t.name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "other",
    }
}
