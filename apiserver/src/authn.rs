//! Authentication: a verified client certificate (CN = user, O = groups) or a bearer
//! token from the token file; anonymous requests reach only the health and version
//! endpoints, as in a default Kubernetes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tug_pki::Identity;

use crate::error::ApiError;
use crate::state::AppState;

/// The identity of a TLS connection's client certificate, attached to every request on
/// that connection by the accept loop.
#[derive(Debug, Clone, Default)]
pub struct ConnIdentity(pub Option<Identity>);

/// The authenticated user of one request.
#[derive(Debug, Clone)]
pub struct User(pub Identity);

/// Paths served to anyone.
fn is_anonymous_path(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/livez" | "/version" | "/version/"
    ) || path.starts_with("/healthz/")
        || path.starts_with("/readyz/")
        || path.starts_with("/livez/")
}

pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let from_cert = req
        .extensions()
        .get::<ConnIdentity>()
        .and_then(|c| c.0.clone());
    let bearer = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let from_token = bearer
        .as_deref()
        .and_then(|t| state.tokens.as_ref().and_then(|f| f.lookup(t)));
    let user = match (from_cert, from_token) {
        (Some(id), _) | (None, Some(id)) => Some(id),
        (None, None) => None,
    };
    match user {
        Some(id) => {
            req.extensions_mut().insert(User(id));
            next.run(req).await
        }
        // A token that does not check out is a 401 even where anonymous is fine.
        None if bearer.is_none() && is_anonymous_path(req.uri().path()) => {
            req.extensions_mut().insert(User(Identity {
                user: "system:anonymous".into(),
                groups: vec!["system:unauthenticated".into()],
            }));
            next.run(req).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}
