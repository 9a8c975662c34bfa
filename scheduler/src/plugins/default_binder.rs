//! DefaultBinder: binds through `POST pods/{name}/binding`.

use crate::framework::{BindPlugin, Plugin, Status};
use futures::future::BoxFuture;
use futures::FutureExt;
use tug_client::{Api, Client};
use tug_proto::core::v1::Pod;

pub struct DefaultBinder {
    client: Client,
}

impl DefaultBinder {
    pub fn new(client: Client) -> Self {
        DefaultBinder { client }
    }
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        "DefaultBinder"
    }
}

/// Why a bind failed, as the scheduler needs to tell: lost the race (already bound or
/// gone) versus worth retrying.
pub const REASON_CONFLICT: &str = "conflict";
pub const REASON_NOT_FOUND: &str = "not found";

impl BindPlugin for DefaultBinder {
    fn bind<'a>(&'a self, pod: &'a Pod, node: &'a str) -> BoxFuture<'a, Status> {
        async move {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), pod.metadata.namespace());
            match api.bind(pod.metadata.name(), node).await {
                Ok(()) => Status::success(),
                Err(e) if e.is_conflict() || e.is_already_exists() => {
                    Status::unresolvable(REASON_CONFLICT)
                }
                Err(e) if e.is_not_found() => Status::unresolvable(REASON_NOT_FOUND),
                Err(e) => Status::error(format!(
                    "binding pod {}/{} to node {node}: {e}",
                    pod.metadata.namespace(),
                    pod.metadata.name()
                )),
            }
        }
        .boxed()
    }
}
