//! GET of one object (also `/status`, which reads the whole object like Kubernetes).

use axum::response::Response;
use http::StatusCode;

use super::{read_object, Req};
use crate::error::{ApiError, Result};
use crate::state::AppState;

pub async fn get(state: &AppState, req: &Req) -> Result<Response> {
    let info = req.info();
    match read_object(state, &req.target.key(), req.read_mode()).await? {
        Some((obj, _)) => Ok(req.out.object(StatusCode::OK, info, obj)),
        None => Err(ApiError::not_found(info, req.target.name())),
    }
}
