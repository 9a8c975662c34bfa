//! Claiming dependents (Kubernetes' ControllerRefManager): a controller keeps the objects
//! it owns that still match its selector, adopts matching orphans, and releases owned
//! objects that stopped matching.

use std::sync::Arc;
use tug_client::{Api, Client, PatchKind};
use tug_proto::labels::Selector;
use tug_proto::meta::v1::OwnerReference;
use tug_proto::Resource;

use crate::pod_control::controller_ref;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("adopting {kind} {namespace}/{name}: {source}")]
    Adopt {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: tug_client::Error,
    },
    #[error("releasing {kind} {namespace}/{name}: {source}")]
    Release {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: tug_client::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Claims the objects `owner` should manage among `candidates` (objects of its
/// namespace). Returns those it now owns. An owner being deleted adopts nothing.
pub async fn claim<O: Resource, K: Resource>(
    client: &Client,
    owner: &O,
    selector: &Selector,
    candidates: Vec<Arc<K>>,
) -> Result<Vec<Arc<K>>> {
    let m = owner.metadata();
    let uid = m.uid.clone().unwrap_or_default();
    let namespace = m.namespace().to_string();
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let mut owned = Vec::new();
    for obj in candidates {
        let meta = obj.metadata();
        let name = meta.name().to_string();
        let matches = selector.matches(&meta.labels);
        let refs = match meta.controller_ref() {
            Some(r) if r.uid == uid && matches => {
                owned.push(obj);
                continue;
            }
            Some(r) if r.uid == uid => {
                let refs: Vec<OwnerReference> = meta
                    .owner_references
                    .iter()
                    .filter(|r| r.uid != uid)
                    .cloned()
                    .collect();
                Some((refs, false))
            }
            None if matches
                && m.deletion_timestamp.is_none()
                && meta.deletion_timestamp.is_none() =>
            {
                let mut refs = meta.owner_references.clone();
                refs.push(controller_ref(owner));
                Some((refs, true))
            }
            _ => None,
        };
        let Some((refs, adopt)) = refs else { continue };
        // The resourceVersion makes the patch fail if the object changed meanwhile.
        let patch = serde_json::json!({"metadata": {
            "ownerReferences": refs,
            "resourceVersion": meta.resource_version,
        }});
        match api.patch(&name, PatchKind::Merge, &patch).await {
            Ok(updated) if adopt => owned.push(Arc::new(updated)),
            Ok(_) => {}
            // Gone, or changed meanwhile: the next sync looks again.
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(source) if adopt => {
                return Err(Error::Adopt {
                    kind: K::KIND,
                    namespace,
                    name,
                    source,
                })
            }
            Err(source) => {
                return Err(Error::Release {
                    kind: K::KIND,
                    namespace,
                    name,
                    source,
                })
            }
        }
    }
    Ok(owned)
}
