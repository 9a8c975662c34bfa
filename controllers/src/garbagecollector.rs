//! The garbage collector: deletes objects whose owners (by `ownerReferences` uid) are
//! all gone, and carries out foreground (`foregroundDeletion` finalizer) and orphan
//! (`orphan` finalizer) deletion of owners, over the kinds in [`KINDS`].
//!
//! The owner -> dependents graph is an index kept up to date from the shared informers
//! of every supported kind; an owner missing from the cache is confirmed with a live
//! GET before anything is deleted, so a slow cache never deletes a live object's
//! dependents.

use crate::Context;
use futures::future::BoxFuture;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tug_client::{
    controller, Action, ApiResource, Client, DeleteParams, DynamicApi, ObjectKey,
    PropagationPolicy, Store, WorkQueue,
};
use tug_proto::apps::v1::{Deployment, ReplicaSet};
use tug_proto::batch::v1::Job;
use tug_proto::coordination::v1::Lease;
use tug_proto::core::v1::{ConfigMap, Endpoints, Node, Pod, Secret, Service, ServiceAccount};
use tug_proto::meta::v1::OwnerReference;
use tug_proto::{ObjectMeta, Resource};

pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
pub const ORPHAN_FINALIZER: &str = "orphan";

/// The kinds the collector watches (as owners and as dependents), by kind name.
pub const KINDS: &[&str] = &[
    "Pod",
    "ReplicaSet",
    "Deployment",
    "Job",
    "Endpoints",
    "ConfigMap",
    "Secret",
    "Service",
    "ServiceAccount",
    "Lease",
    "Node",
];

/// How often an owner waiting for blocking dependents is looked at even without events.
const FOREGROUND_RECHECK: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("garbage collector: {kind} {key}: {action}: {source}")]
    Api {
        kind: String,
        key: ObjectKey,
        action: String,
        source: tug_client::Error,
    },
    #[error("garbage collector: discovery ({path}): {message}")]
    Discovery { path: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the garbage collector until `ctx.shutdown` is cancelled.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    // A kind the server does not serve would never finish its first list (and block
    // everything else): only watch what discovery lists.
    let served = served(&ctx.client).await?;
    let mut kinds = Vec::new();
    let mut subscribe: Vec<Subscribe> = Vec::new();
    let mut b = Builder {
        ctx: &ctx,
        served: &served,
        kinds: &mut kinds,
        subscribe: &mut subscribe,
    };
    b.add::<Pod>();
    b.add::<ReplicaSet>();
    b.add::<Deployment>();
    b.add::<Job>();
    b.add::<Endpoints>();
    b.add::<ConfigMap>();
    b.add::<Secret>();
    b.add::<Service>();
    b.add::<ServiceAccount>();
    b.add::<Lease>();
    b.add::<Node>();
    let ready = futures::future::join_all(kinds.iter().map(|k| k.cache.wait_ready()));
    tokio::select! {
        _ = ready => {}
        _ = ctx.shutdown.cancelled() => return Ok(()),
    }
    let gc = Arc::new(Collector {
        ctx: ctx.clone(),
        kinds,
        index: Mutex::default(),
    });
    for s in subscribe {
        s(Arc::downgrade(&gc));
    }
    let stop = {
        let (gc, shutdown) = (gc.clone(), ctx.shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            for k in &gc.kinds {
                k.queue.shutdown();
            }
        })
    };
    let workers = ctx.options.workers.max(1);
    let loops = (0..gc.kinds.len()).map(|i| {
        let gc = gc.clone();
        controller::run_keys(
            gc.kinds[i].queue.clone(),
            move |key| {
                let gc = gc.clone();
                async move { gc.reconcile(i, key).await }
            },
            workers,
        )
    });
    futures::future::join_all(loops).await;
    stop.abort();
    Ok(())
}

type Subscribe = Box<dyn FnOnce(Weak<Collector>) + Send>;

/// Metadata-only view of one kind's cache.
trait Cache: Send + Sync {
    fn meta(&self, namespace: &str, name: &str) -> Option<ObjectMeta>;
    fn wait_ready(&self) -> BoxFuture<'static, ()>;
}

impl<K: Resource> Cache for Store<K> {
    fn meta(&self, namespace: &str, name: &str) -> Option<ObjectMeta> {
        self.get(namespace, name).map(|o| o.metadata().clone())
    }

    fn wait_ready(&self) -> BoxFuture<'static, ()> {
        let s = self.clone();
        Box::pin(async move { s.wait_until_ready().await })
    }
}

struct Kind {
    res: ApiResource,
    cache: Box<dyn Cache>,
    queue: WorkQueue<ObjectKey>,
}

struct Builder<'a> {
    ctx: &'a Context,
    served: &'a HashSet<(String, String)>,
    kinds: &'a mut Vec<Kind>,
    subscribe: &'a mut Vec<Subscribe>,
}

impl Builder<'_> {
    /// Watches `K` if the server serves it.
    fn add<K: Resource>(&mut self) {
        if !self
            .served
            .contains(&(K::GROUP.to_string(), K::PLURAL.to_string()))
        {
            tracing::info!(kind = K::KIND, "not served by the apiserver; not collected");
            return;
        }
        let i = self.kinds.len();
        let shared = self.ctx.informers.get::<K>();
        let queue = WorkQueue::default();
        self.kinds.push(Kind {
            res: ApiResource::of::<K>(),
            cache: Box::new(shared.store()),
            queue: queue.clone(),
        });
        self.subscribe.push(Box::new(move |gc: Weak<Collector>| {
            shared.subscribe(queue, move |o: &K| match gc.upgrade() {
                Some(gc) => gc.observe(i, o.metadata()),
                None => Vec::new(),
            });
        }));
    }
}

/// `(group, plural)` of every resource the apiserver serves, from discovery.
async fn served(client: &Client) -> Result<HashSet<(String, String)>> {
    let get = |path: String| async move {
        let bytes = client
            .raw_get(&path, Some("application/json"))
            .await
            .map_err(|source| Error::Discovery {
                path: path.clone(),
                message: source.to_string(),
            })?;
        serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| Error::Discovery {
            path,
            message: e.to_string(),
        })
    };
    let mut lists = vec![(String::new(), get("/api/v1".into()).await?)];
    let groups = get("/apis".into()).await?;
    for g in groups["groups"].as_array().into_iter().flatten() {
        let (Some(name), Some(gv)) = (
            g["name"].as_str(),
            g["preferredVersion"]["groupVersion"].as_str(),
        ) else {
            continue;
        };
        lists.push((name.to_string(), get(format!("/apis/{gv}")).await?));
    }
    let mut out = HashSet::new();
    for (group, list) in lists {
        for r in list["resources"].as_array().into_iter().flatten() {
            if let Some(plural) = r["name"].as_str().filter(|n| !n.contains('/')) {
                out.insert((group.clone(), plural.to_string()));
            }
        }
    }
    Ok(out)
}

/// A node of the graph: kind index and key.
type NodeId = (usize, ObjectKey);

/// owner uid -> dependents, and the reverse, from the objects' `ownerReferences`.
#[derive(Default, Debug)]
pub struct Index {
    dependents: HashMap<String, HashSet<NodeId>>,
    owners: HashMap<NodeId, Vec<String>>,
}

impl Index {
    /// Records that `node` now has owners `uids` (replacing what it had).
    fn set(&mut self, node: NodeId, uids: Vec<String>) {
        if let Some(old) = self.owners.remove(&node) {
            for uid in old {
                if let Some(set) = self.dependents.get_mut(&uid) {
                    set.remove(&node);
                    if set.is_empty() {
                        self.dependents.remove(&uid);
                    }
                }
            }
        }
        if uids.is_empty() {
            return;
        }
        for uid in &uids {
            self.dependents
                .entry(uid.clone())
                .or_default()
                .insert(node.clone());
        }
        self.owners.insert(node, uids);
    }

    fn dependents_of(&self, uid: &str) -> Vec<NodeId> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// What to do with an object given which of its owners still exist.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every owner exists (or is of a kind we cannot check).
    Keep,
    /// No owner exists any more: delete the object.
    Delete,
    /// Some owners are gone: drop the references to these uids.
    DropRefs(Vec<String>),
}

/// Decides from `refs` and, for each, whether its owner exists (`None`: unknown kind,
/// treated as existing).
pub fn verdict(
    refs: &[OwnerReference],
    exists: impl Fn(&OwnerReference) -> Option<bool>,
) -> Verdict {
    if refs.is_empty() {
        return Verdict::Keep;
    }
    let gone: Vec<String> = refs
        .iter()
        .filter(|r| exists(r) == Some(false))
        .map(|r| r.uid.clone())
        .collect();
    if gone.is_empty() {
        Verdict::Keep
    } else if gone.len() == refs.len() {
        Verdict::Delete
    } else {
        Verdict::DropRefs(gone)
    }
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

struct Collector {
    ctx: Context,
    kinds: Vec<Kind>,
    index: Mutex<Index>,
}

impl Collector {
    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kind_of(&self, r: &OwnerReference) -> Option<usize> {
        let group = group_of(&r.api_version);
        self.kinds
            .iter()
            .position(|k| k.res.kind == r.kind && k.res.group == group)
    }

    /// The key an owner reference points at, seen from a dependent in `namespace`.
    fn owner_key(&self, j: usize, namespace: &str, name: &str) -> ObjectKey {
        let ns = if self.kinds[j].res.namespaced {
            namespace
        } else {
            ""
        };
        ObjectKey::new(ns, name)
    }

    /// Called for every change of an object of kind `i` (added, modified or deleted):
    /// updates the graph and queues the object, its dependents (their owner may be
    /// gone) and its owners (they may be waiting for it to go).
    fn observe(&self, i: usize, meta: &ObjectMeta) -> Vec<ObjectKey> {
        let key = ObjectKey::new(meta.namespace(), meta.name());
        let uids = meta
            .owner_references
            .iter()
            .map(|r| r.uid.clone())
            .collect();
        let dependents = {
            let mut index = self.index();
            index.set((i, key.clone()), uids);
            meta.uid
                .as_deref()
                .map(|u| index.dependents_of(u))
                .unwrap_or_default()
        };
        for (j, k) in dependents {
            self.kinds[j].queue.add(k);
        }
        for r in &meta.owner_references {
            if let Some(j) = self.kind_of(r) {
                self.kinds[j]
                    .queue
                    .add(self.owner_key(j, meta.namespace(), &r.name));
            }
        }
        vec![key]
    }

    fn api(&self, j: usize, namespace: &str) -> DynamicApi {
        let ns = (!namespace.is_empty()).then_some(namespace);
        DynamicApi::dynamic(self.ctx.client.clone(), self.kinds[j].res.clone(), ns)
    }

    fn err(
        &self,
        i: usize,
        key: &ObjectKey,
        action: &str,
    ) -> impl FnOnce(tug_client::Error) -> Error {
        let (kind, key, action) = (
            self.kinds[i].res.kind.clone(),
            key.clone(),
            action.to_string(),
        );
        move |source| Error::Api {
            kind,
            key,
            action,
            source,
        }
    }

    async fn reconcile(&self, i: usize, key: ObjectKey) -> Result<Action> {
        let Some(meta) = self.kinds[i].cache.meta(&key.namespace, &key.name) else {
            self.index().set((i, key), Vec::new());
            return Ok(Action::AwaitChange);
        };
        if meta.deletion_timestamp.is_some() {
            if meta.finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
                return self.orphan(i, &key, &meta).await;
            }
            if meta.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
                return self.foreground(i, &key, &meta).await;
            }
            return Ok(Action::AwaitChange);
        }
        self.collect(i, &key, &meta).await
    }

    /// Deletes `key` if all its owners are gone (confirmed live), or drops references
    /// to the owners that are gone.
    async fn collect(&self, i: usize, key: &ObjectKey, meta: &ObjectMeta) -> Result<Action> {
        let cached = |r: &OwnerReference| {
            let j = self.kind_of(r)?;
            let k = self.owner_key(j, meta.namespace(), &r.name);
            Some(
                self.kinds[j]
                    .cache
                    .meta(&k.namespace, &k.name)
                    .is_some_and(|m| m.uid.as_deref() == Some(r.uid.as_str())),
            )
        };
        if verdict(&meta.owner_references, cached) == Verdict::Keep {
            return Ok(Action::AwaitChange);
        }
        // The cache says some owners are gone; ask the API before acting on that.
        let mut live: HashMap<String, bool> = HashMap::new();
        for r in &meta.owner_references {
            let Some(j) = self.kind_of(r) else { continue };
            let k = self.owner_key(j, meta.namespace(), &r.name);
            let got = self
                .api(j, &k.namespace)
                .get_opt(&k.name)
                .await
                .map_err(self.err(i, key, &format!("looking up owner {} {}", r.kind, r.name)))?;
            let exists = got.is_some_and(|o| o["metadata"]["uid"].as_str() == Some(r.uid.as_str()));
            live.insert(r.uid.clone(), exists);
        }
        let api = self.api(i, &key.namespace);
        match verdict(&meta.owner_references, |r| live.get(&r.uid).copied()) {
            Verdict::Keep => Ok(Action::AwaitChange),
            Verdict::Delete => {
                tracing::info!(kind = %self.kinds[i].res.kind, %key, "deleting: all its owners are gone");
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    precondition_uid: meta.uid.clone(),
                    ..Default::default()
                };
                match api.delete(&key.name, &dp).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() || e.is_conflict() => {}
                    Err(e) => return Err(self.err(i, key, "deleting")(e)),
                }
                Ok(Action::AwaitChange)
            }
            Verdict::DropRefs(uids) => {
                self.drop_refs(i, key, &uids).await?;
                Ok(Action::AwaitChange)
            }
        }
    }

    /// Foreground deletion: delete the dependents, wait for those that block their
    /// owner's deletion, then remove the finalizer so the owner goes.
    async fn foreground(&self, i: usize, key: &ObjectKey, meta: &ObjectMeta) -> Result<Action> {
        let uid = meta.uid.clone().unwrap_or_default();
        let mut blocking = 0;
        // Bound first: the index lock must not be held across the awaits below.
        let dependents = self.index().dependents_of(&uid);
        for (j, k) in dependents {
            let Some(dep) = self.kinds[j].cache.meta(&k.namespace, &k.name) else {
                continue;
            };
            let Some(r) = dep.owner_references.iter().find(|r| r.uid == uid) else {
                continue;
            };
            let blocks = r.block_owner_deletion == Some(true);
            if blocks {
                blocking += 1;
            }
            if dep.deletion_timestamp.is_some() {
                continue;
            }
            // Blocking dependents go in the foreground too, so a chain
            // (Deployment -> ReplicaSet -> Pod) is removed bottom-up.
            let dp = DeleteParams {
                propagation_policy: Some(if blocks {
                    PropagationPolicy::Foreground
                } else {
                    PropagationPolicy::Background
                }),
                precondition_uid: dep.uid.clone(),
                ..Default::default()
            };
            match self.api(j, &k.namespace).delete(&k.name, &dp).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => return Err(self.err(j, &k, "deleting a dependent")(e)),
            }
        }
        if blocking > 0 {
            return Ok(Action::Requeue(FOREGROUND_RECHECK));
        }
        self.remove_finalizer(i, key, &uid, FOREGROUND_FINALIZER)
            .await?;
        Ok(Action::AwaitChange)
    }

    /// Orphan deletion: remove the owner's reference from every dependent, then the
    /// finalizer.
    async fn orphan(&self, i: usize, key: &ObjectKey, meta: &ObjectMeta) -> Result<Action> {
        let uid = meta.uid.clone().unwrap_or_default();
        let dependents = self.index().dependents_of(&uid);
        for (j, k) in dependents {
            self.drop_refs(j, &k, std::slice::from_ref(&uid)).await?;
        }
        self.remove_finalizer(i, key, &uid, ORPHAN_FINALIZER)
            .await?;
        Ok(Action::AwaitChange)
    }

    /// Removes owner references to `uids` from `key` (read-modify-write; a conflict
    /// retries the whole reconcile).
    async fn drop_refs(&self, j: usize, key: &ObjectKey, uids: &[String]) -> Result<()> {
        let api = self.api(j, &key.namespace);
        let Some(mut obj) = api
            .get_opt(&key.name)
            .await
            .map_err(self.err(j, key, "reading"))?
        else {
            return Ok(());
        };
        let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() else {
            return Ok(());
        };
        let before = refs.len();
        refs.retain(|r| !uids.iter().any(|u| r["uid"].as_str() == Some(u.as_str())));
        if refs.len() == before {
            return Ok(());
        }
        api.replace(&key.name, &obj).await.map_err(self.err(
            j,
            key,
            "removing owner references",
        ))?;
        Ok(())
    }

    async fn remove_finalizer(
        &self,
        i: usize,
        key: &ObjectKey,
        uid: &str,
        finalizer: &str,
    ) -> Result<()> {
        let api = self.api(i, &key.namespace);
        let Some(mut obj) = api
            .get_opt(&key.name)
            .await
            .map_err(self.err(i, key, "reading"))?
        else {
            return Ok(());
        };
        if obj["metadata"]["uid"].as_str() != Some(uid) {
            return Ok(());
        }
        let Some(list) = obj["metadata"]["finalizers"].as_array_mut() else {
            return Ok(());
        };
        let before = list.len();
        list.retain(|f| f.as_str() != Some(finalizer));
        if list.len() == before {
            return Ok(());
        }
        match api.replace(&key.name, &obj).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(self.err(
                i,
                key,
                &format!("removing the {finalizer} finalizer"),
            )(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(kind: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: format!("{kind}-{uid}"),
            uid: uid.into(),
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_follow_which_owners_exist() {
        let rs = owner("ReplicaSet", "a");
        let other = owner("Other", "b");
        // (refs, uids that exist, unknown uids, want)
        type Case = (
            Vec<OwnerReference>,
            Vec<&'static str>,
            Vec<&'static str>,
            Verdict,
        );
        let cases: Vec<Case> = vec![
            (vec![], vec![], vec![], Verdict::Keep),
            (vec![rs.clone()], vec!["a"], vec![], Verdict::Keep),
            (vec![rs.clone()], vec![], vec![], Verdict::Delete),
            (
                vec![rs.clone(), other.clone()],
                vec!["b"],
                vec![],
                Verdict::DropRefs(vec!["a".into()]),
            ),
            (
                vec![rs.clone(), other.clone()],
                vec![],
                vec!["b"],
                Verdict::DropRefs(vec!["a".into()]),
            ),
            (vec![other.clone()], vec![], vec!["b"], Verdict::Keep),
        ];
        for (refs, exist, unknown, want) in cases {
            let got = verdict(&refs, |r| {
                if unknown.contains(&r.uid.as_str()) {
                    None
                } else {
                    Some(exist.contains(&r.uid.as_str()))
                }
            });
            assert_eq!(got, want, "{refs:?} exist={exist:?}");
        }
    }

    #[test]
    fn the_index_follows_owner_reference_changes() {
        let mut index = Index::default();
        let pod = (0, ObjectKey::new("ns", "p"));
        let rs = (1, ObjectKey::new("ns", "rs"));
        index.set(pod.clone(), vec!["rs-uid".into()]);
        index.set(rs.clone(), vec!["deploy-uid".into()]);
        assert_eq!(index.dependents_of("rs-uid"), vec![pod.clone()]);
        assert_eq!(index.dependents_of("deploy-uid"), vec![rs.clone()]);
        // Adopted by another owner.
        index.set(pod.clone(), vec!["rs2-uid".into()]);
        assert!(index.dependents_of("rs-uid").is_empty());
        assert_eq!(index.dependents_of("rs2-uid"), vec![pod.clone()]);
        // Orphaned, then gone.
        index.set(pod.clone(), vec![]);
        assert!(index.dependents_of("rs2-uid").is_empty());
        assert!(!index.dependents.contains_key("rs2-uid"));
        assert_eq!(index.owners.len(), 1);
    }

    #[test]
    fn owner_groups_come_from_api_version() {
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("coordination.k8s.io/v1"), "coordination.k8s.io");
    }
}
