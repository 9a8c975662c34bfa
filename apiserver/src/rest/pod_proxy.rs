//! `pods/{name}/log`, `exec`, `attach`, `portforward`: proxied to the node agent.
//!
//! TODO(node-agent): the agent's logs/exec server does not exist yet (see DESIGN.md
//! "Node agent": `tug logs` and `tug exec` go apiserver -> agent over TLS). Until it
//! lands these answer 404 for a missing pod and 501 otherwise; proxy to the agent of
//! `spec.nodeName` here once it serves them.

use axum::response::Response;
use tug_store::Read;

use super::{read_object, Req};
use crate::error::{ApiError, Result};
use crate::state::AppState;

pub async fn not_yet(state: &AppState, req: &Req) -> Result<Response> {
    let info = req.info();
    let name = req.target.name();
    if read_object(state, &req.target.key(), Read::Linearizable)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(info, name));
    }
    let sub = req.target.subresource.as_deref().unwrap_or_default();
    Err(ApiError::not_implemented(format!(
        "pods/{sub} for pod {name:?} is not available yet: the node agent's log/exec server is not implemented"
    )))
}
