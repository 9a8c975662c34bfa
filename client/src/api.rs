//! `Api<K>`: typed verbs on one REST collection; `DynamicApi` is the same on `serde_json::Value`.

use crate::client::{Body, Client};
use crate::error::{Error, Result};
use crate::params::{ApiResource, DeleteParams, ListParams, PatchKind};
use futures::stream::BoxStream;
use futures::StreamExt;
use http::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use tug_proto::meta::v1::{event_type, Status};
use tug_proto::{List, Resource, WatchEvent};

/// Verbs on one collection: a namespace's objects, all namespaces, or a cluster-scoped kind.
pub struct Api<K> {
    client: Client,
    resource: ApiResource,
    /// `None`: all namespaces (or a cluster-scoped kind).
    namespace: Option<String>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api {
            client: self.client.clone(),
            resource: self.resource.clone(),
            namespace: self.namespace.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Api<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("resource", &self.resource)
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// Untyped access for the CLI and for kinds without a Rust type.
pub type DynamicApi = Api<serde_json::Value>;

/// What a delete answered: the object (still terminating, or with finalizers) or a Status.
#[derive(Clone, Debug)]
pub enum Deleted<K> {
    Object(K),
    Status(Box<Status>),
}

impl<K: Resource> Api<K> {
    /// Objects of `K` in `namespace`.
    pub fn namespaced(client: Client, namespace: &str) -> Self {
        Self::with(client, ApiResource::of::<K>(), Some(namespace))
    }

    /// Objects of `K` in the kubeconfig context's namespace.
    pub fn default_namespaced(client: Client) -> Self {
        let ns = client.default_namespace().to_string();
        Self::namespaced(client, &ns)
    }

    /// Objects of `K` in all namespaces (list/watch), or a cluster-scoped kind.
    pub fn all(client: Client) -> Self {
        Self::with(client, ApiResource::of::<K>(), None)
    }
}

impl DynamicApi {
    /// Untyped access to `resource`; `namespace` `None` means all namespaces.
    pub fn dynamic(client: Client, resource: ApiResource, namespace: Option<&str>) -> Self {
        Self::with(client, resource, namespace)
    }
}

impl<K> Api<K> {
    fn with(client: Client, resource: ApiResource, namespace: Option<&str>) -> Self {
        let namespace = if resource.namespaced {
            namespace.map(str::to_string)
        } else {
            None
        };
        Api {
            client,
            resource,
            namespace,
            _kind: PhantomData,
        }
    }

    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The collection's URL path.
    pub fn collection_path(&self) -> String {
        self.resource.collection_path(self.namespace.as_deref())
    }

    /// An object's URL path, optionally with a subresource.
    pub fn object_path(&self, name: &str, sub: Option<&str>) -> String {
        self.resource
            .object_path(self.namespace.as_deref(), name, sub)
    }
}

impl<K> Api<K>
where
    K: Serialize + DeserializeOwned + Default + Send + 'static,
{
    pub async fn get(&self, name: &str) -> Result<K> {
        self.client
            .request(Method::GET, &self.object_path(name, None), None)
            .await
    }

    /// `get`, with NotFound as `None`.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(k) => Ok(Some(k)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of the collection (follow `metadata.continue` for the next).
    pub async fn list(&self, lp: &ListParams) -> Result<List<K>> {
        let path = format!("{}{}", self.collection_path(), lp.query().as_str());
        self.client.request(Method::GET, &path, None).await
    }

    /// Every page of the collection; the list's resourceVersion is the first page's.
    pub async fn list_all(&self, lp: &ListParams) -> Result<List<K>> {
        let mut lp = lp.clone();
        let mut all = self.list(&lp).await?;
        while let Some(token) = all.metadata.continue_.take().filter(|t| !t.is_empty()) {
            lp.continue_token = Some(token);
            let page = self.list(&lp).await?;
            all.items.extend(page.items);
            all.metadata.continue_ = page.metadata.continue_;
        }
        Ok(all)
    }

    pub async fn create(&self, obj: &K) -> Result<K> {
        self.client
            .request(
                Method::POST,
                &self.collection_path(),
                Some(Body::json(obj)?),
            )
            .await
    }

    /// PUT: the object's resourceVersion must be current, else 409 Conflict.
    pub async fn replace(&self, name: &str, obj: &K) -> Result<K> {
        self.client
            .request(
                Method::PUT,
                &self.object_path(name, None),
                Some(Body::json(obj)?),
            )
            .await
    }

    pub async fn replace_status(&self, name: &str, obj: &K) -> Result<K> {
        self.client
            .request(
                Method::PUT,
                &self.object_path(name, Some("status")),
                Some(Body::json(obj)?),
            )
            .await
    }

    pub async fn patch<P: Serialize + ?Sized>(
        &self,
        name: &str,
        kind: PatchKind,
        patch: &P,
    ) -> Result<K> {
        self.patch_at(name, None, kind, patch).await
    }

    pub async fn patch_status<P: Serialize + ?Sized>(
        &self,
        name: &str,
        kind: PatchKind,
        patch: &P,
    ) -> Result<K> {
        self.patch_at(name, Some("status"), kind, patch).await
    }

    async fn patch_at<P: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        name: &str,
        sub: Option<&str>,
        kind: PatchKind,
        patch: &P,
    ) -> Result<T> {
        let body = Body {
            content_type: kind.content_type(),
            bytes: serde_json::to_vec(patch).map_err(Error::Encode)?,
        };
        self.client
            .request(Method::PATCH, &self.object_path(name, sub), Some(body))
            .await
    }

    pub async fn delete(&self, name: &str, dp: &DeleteParams) -> Result<Deleted<K>> {
        let body = Body::json(&dp.to_options())?;
        let v: serde_json::Value = self
            .client
            .request(Method::DELETE, &self.object_path(name, None), Some(body))
            .await?;
        let url = self.object_path(name, None);
        decode_deleted(v, &url)
    }

    /// Deletes every object matching `lp`'s selectors.
    pub async fn delete_collection(&self, lp: &ListParams, dp: &DeleteParams) -> Result<()> {
        let body = Body::json(&dp.to_options())?;
        let path = format!("{}{}", self.collection_path(), lp.query().as_str());
        let _: serde_json::Value = self
            .client
            .request(Method::DELETE, &path, Some(body))
            .await?;
        Ok(())
    }

    /// Reads a subresource (`scale`, ...) as `T`.
    pub async fn get_subresource<T: DeserializeOwned>(&self, sub: &str, name: &str) -> Result<T> {
        self.client
            .request(Method::GET, &self.object_path(name, Some(sub)), None)
            .await
    }

    /// PUTs a subresource (`scale`, `status`).
    pub async fn replace_subresource<B: Serialize, T: DeserializeOwned>(
        &self,
        sub: &str,
        name: &str,
        body: &B,
    ) -> Result<T> {
        self.client
            .request(
                Method::PUT,
                &self.object_path(name, Some(sub)),
                Some(Body::json(body)?),
            )
            .await
    }

    /// POSTs to a subresource (`binding`, `eviction`).
    pub async fn create_subresource<B: Serialize, T: DeserializeOwned>(
        &self,
        sub: &str,
        name: &str,
        body: &B,
    ) -> Result<T> {
        self.client
            .request(
                Method::POST,
                &self.object_path(name, Some(sub)),
                Some(Body::json(body)?),
            )
            .await
    }

    /// The `scale` subresource (Deployments, ReplicaSets, StatefulSets) as JSON
    /// (`autoscaling/v1` Scale: `spec.replicas`, `status.replicas`, `status.selector`).
    pub async fn get_scale(&self, name: &str) -> Result<serde_json::Value> {
        self.get_subresource("scale", name).await
    }

    /// Sets `spec.replicas` through the `scale` subresource.
    pub async fn scale(&self, name: &str, replicas: i32) -> Result<serde_json::Value> {
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        self.patch_at(name, Some("scale"), PatchKind::Merge, &patch)
            .await
    }

    /// Binds a pod to a node: POST `pods/{name}/binding` with a `v1` Binding.
    pub async fn bind(&self, name: &str, node: &str) -> Result<()> {
        let binding = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": { "name": name, "namespace": self.namespace.as_deref().unwrap_or_default() },
            "target": { "apiVersion": "v1", "kind": "Node", "name": node },
        });
        let _: serde_json::Value = self.create_subresource("binding", name, &binding).await?;
        Ok(())
    }

    /// Watches the collection from `resource_version` (empty: from "now", after a
    /// synthetic ADDED for every existing object). ERROR events become `Err` items;
    /// a 410 there means the version was compacted: re-list.
    pub async fn watch(
        &self,
        lp: &ListParams,
        resource_version: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<K>>>> {
        let path = format!(
            "{}{}",
            self.collection_path(),
            lp.watch_query(resource_version).as_str()
        );
        let lines = self.client.request_lines(&path, None).await?;
        Ok(lines
            .map(move |line| decode_event::<K>(&line?, &path))
            .boxed())
    }
}

fn decode_deleted<K: DeserializeOwned>(v: serde_json::Value, url: &str) -> Result<Deleted<K>> {
    if v.get("kind").and_then(|k| k.as_str()) == Some("Status") {
        let status = serde_json::from_value(v).map_err(|source| Error::Decode {
            url: url.to_string(),
            source,
        })?;
        return Ok(Deleted::Status(Box::new(status)));
    }
    serde_json::from_value(v)
        .map(Deleted::Object)
        .map_err(|source| Error::Decode {
            url: url.to_string(),
            source,
        })
}

/// One watch line: `{"type":..., "object":...}`; ERROR carries a Status.
pub(crate) fn decode_event<K: DeserializeOwned>(line: &[u8], url: &str) -> Result<WatchEvent<K>> {
    let raw: WatchEvent<serde_json::Value> =
        serde_json::from_slice(line).map_err(|source| Error::WatchLine {
            url: url.to_string(),
            source,
        })?;
    if raw.type_ == event_type::ERROR {
        let code = raw
            .object
            .get("code")
            .and_then(|c| c.as_u64())
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(500);
        let body = serde_json::to_vec(&raw.object).unwrap_or_default();
        return Err(Error::from_response(code, &body));
    }
    let object = serde_json::from_value(raw.object).map_err(|source| Error::WatchLine {
        url: url.to_string(),
        source,
    })?;
    Ok(WatchEvent {
        type_: raw.type_,
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_error_events_become_gone_errors() {
        let line = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}}"#;
        let err = decode_event::<serde_json::Value>(line, "/api/v1/pods").unwrap_err();
        assert!(err.is_gone(), "{err:?}");
    }

    #[test]
    fn watch_events_decode_their_object() {
        let line = br#"{"type":"ADDED","object":{"metadata":{"name":"a"}}}"#;
        let ev = decode_event::<serde_json::Value>(line, "/x").unwrap();
        assert_eq!(ev.type_, "ADDED");
        assert_eq!(ev.object["metadata"]["name"], "a");
    }

    #[test]
    fn delete_answers_are_status_or_object() {
        let s = decode_deleted::<serde_json::Value>(
            serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success"}),
            "/x",
        )
        .unwrap();
        assert!(matches!(s, Deleted::Status(_)));
        let o =
            decode_deleted::<serde_json::Value>(serde_json::json!({"kind":"Pod"}), "/x").unwrap();
        assert!(matches!(o, Deleted::Object(_)));
    }
}
