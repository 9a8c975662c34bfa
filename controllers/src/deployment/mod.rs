//! The Deployment controller: rolls a pod template out through ReplicaSets named
//! `<deployment>-<pod-template-hash>` (RollingUpdate or Recreate), scales them in
//! proportion when replicas change mid-rollout, reuses an old ReplicaSet on rollback,
//! keeps `revisionHistoryLimit` old ones, and reports status and conditions.
//!
//! - `hash.rs`: the pod-template-hash. `rolling.rs`: surge/unavailable arithmetic.
//! - `proportional.rs`: proportional scaling. `revision.rs`: annotations and history.
//! - `status.rs`: status counts and the Available / Progressing conditions.

pub mod hash;
pub mod proportional;
pub mod revision;
pub mod rolling;
pub mod status;

use crate::claim::{self, claim};
use crate::context::Context;
use crate::pod_control::controller_ref;
use crate::recorder::{EventType, Recorder};
use chrono::Utc;
use hash::{equal_ignoring_hash, pod_template_hash, POD_TEMPLATE_HASH_LABEL};
use revision::{max_revision, revision, set_replicas_annotations, REVISION_ANNOTATION};
use rolling::{desired, fenceposts, is_recreate, replicas};
use std::sync::Arc;
use tug_client::{Action, Api, Client, ObjectKey, PatchKind, Store, WorkQueue};
use tug_proto::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use tug_proto::core::v1::Pod;
use tug_proto::labels::Selector;
use tug_proto::ObjectMeta;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Claim(#[from] claim::Error),
    #[error("{action} for Deployment {deployment}: {source}")]
    Api {
        deployment: ObjectKey,
        action: String,
        #[source]
        source: tug_client::Error,
    },
    #[error("ReplicaSet {name} exists with another template (hash collision); retrying with collisionCount {count}")]
    HashCollision { name: String, count: i32 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the Deployment controller until `ctx.shutdown` is cancelled.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: WorkQueue<ObjectKey> = WorkQueue::default();
    let deployments = ctx.informers.get::<Deployment>();
    let replicasets = ctx.informers.get::<ReplicaSet>();
    let pods = ctx.informers.get::<Pod>();
    let d_store = deployments.store();
    let rs_store = replicasets.store();
    deployments.enqueue_into(queue.clone());
    deployments.resync_into(
        queue.clone(),
        ctx.options.resync_period,
        ctx.shutdown.clone(),
    );
    {
        let d_store = d_store.clone();
        replicasets.subscribe(queue.clone(), move |rs| owners_of_rs(&d_store, rs));
    }
    {
        let (d_store, rs_store) = (d_store.clone(), rs_store.clone());
        // Only Recreate waits on pods (for the old ones to be gone).
        pods.subscribe(queue.clone(), move |pod| {
            let ns = pod.metadata.namespace();
            let Some(r) = pod
                .metadata
                .controller_ref()
                .filter(|r| r.kind == "ReplicaSet")
            else {
                return Vec::new();
            };
            let Some(rs) = rs_store.get(ns, &r.name) else {
                return Vec::new();
            };
            rs.metadata
                .controller_ref()
                .filter(|r| r.kind == "Deployment")
                .and_then(|r| d_store.get(ns, &r.name))
                .filter(|d| is_recreate(d))
                .map(|d| vec![ObjectKey::of(d.as_ref())])
                .unwrap_or_default()
        });
    }
    let controller = Arc::new(DeploymentController {
        client: ctx.client.clone(),
        recorder: ctx.recorder.clone(),
        deployments: d_store,
        replicasets: rs_store,
        pods: pods.store(),
    });
    let c = controller.clone();
    let caches_ready = async move {
        c.deployments.wait_until_ready().await;
        c.replicasets.wait_until_ready().await;
        c.pods.wait_until_ready().await;
    };
    let workers = ctx.options.concurrent_deployment_syncs;
    ctx.run_workers(queue, caches_ready, workers, move |key| {
        let c = controller.clone();
        async move { c.reconcile(&key).await }
    })
    .await;
    Ok(())
}

/// The Deployments to sync when `rs` changes: its controller, or for an orphan every
/// Deployment of its namespace that selects it.
fn owners_of_rs(deployments: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectKey> {
    let ns = rs.metadata.namespace();
    if let Some(r) = rs.metadata.controller_ref() {
        return if r.kind == "Deployment" {
            vec![ObjectKey::new(ns, r.name.clone())]
        } else {
            Vec::new()
        };
    }
    deployments
        .list_by_namespace(ns)
        .into_iter()
        .filter(|d| selector_of(d).is_some_and(|s| s.matches(&rs.metadata.labels)))
        .map(|d| ObjectKey::of(d.as_ref()))
        .collect()
}

/// The Deployment's selector, unless missing, invalid or empty (selecting everything).
fn selector_of(d: &Deployment) -> Option<Selector> {
    let ls = d.spec.as_ref()?.selector.as_ref()?;
    Selector::from_label_selector(ls)
        .ok()
        .filter(|s| !s.is_everything())
}

fn by_creation(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| {
        let t = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(a).cmp(&t(b))
            .then_with(|| a.metadata.name().cmp(b.metadata.name()))
    });
}

struct DeploymentController {
    client: Client,
    recorder: Recorder,
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
}

/// One sync's view: the Deployment (with in-memory status changes) and its
/// ReplicaSets as last read or written.
struct Rollout {
    key: ObjectKey,
    d: Deployment,
    /// The status as cached, to write only when it changed.
    stored_status: Option<DeploymentStatus>,
    new_rs: Option<ReplicaSet>,
    /// Oldest first.
    old: Vec<ReplicaSet>,
}

impl Rollout {
    fn all(&self) -> Vec<&ReplicaSet> {
        self.new_rs.iter().chain(self.old.iter()).collect()
    }

    fn err(&self, action: impl Into<String>) -> impl FnOnce(tug_client::Error) -> Error + '_ {
        let action = action.into();
        move |source| Error::Api {
            deployment: self.key.clone(),
            action,
            source,
        }
    }
}

impl DeploymentController {
    async fn reconcile(&self, key: &ObjectKey) -> Result<Action> {
        let Some(d) = self.deployments.get_key(key) else {
            return Ok(Action::AwaitChange);
        };
        let d = (*d).clone();
        let Some(selector) = selector_of(&d) else {
            self.recorder.event(
                &d,
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            return Ok(Action::AwaitChange);
        };
        let candidates: Vec<Arc<ReplicaSet>> = self.replicasets.list_by_namespace(&key.namespace);
        let mut rss: Vec<ReplicaSet> = claim(&self.client, &d, &selector, candidates)
            .await?
            .into_iter()
            .map(|rs| (*rs).clone())
            .collect();
        by_creation(&mut rss);
        let mut r = Rollout {
            key: key.clone(),
            stored_status: d.status.clone(),
            d,
            new_rs: None,
            old: rss,
        };
        if r.d.metadata.deletion_timestamp.is_some() {
            self.split(&mut r);
            return self.write_status(&mut r, false).await;
        }
        check_paused_conditions(&mut r.d);
        let paused = r.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused {
            return self.sync_scale(r, true).await;
        }
        self.split(&mut r);
        if is_scaling_event(&r) {
            return self.sync_scale(r, false).await;
        }
        if is_recreate(&r.d) {
            self.recreate(r).await
        } else {
            self.rolling(r).await
        }
    }

    /// Splits the ReplicaSets into the new one (template equals the Deployment's,
    /// oldest first wins) and the old ones.
    fn split(&self, r: &mut Rollout) {
        let mut all: Vec<ReplicaSet> = r.new_rs.take().into_iter().chain(r.old.drain(..)).collect();
        by_creation(&mut all);
        let template =
            r.d.spec
                .as_ref()
                .map(|s| s.template.clone())
                .unwrap_or_default();
        if let Some(i) = all.iter().position(|rs| {
            rs.spec
                .as_ref()
                .is_some_and(|s| equal_ignoring_hash(&s.template, &template))
        }) {
            r.new_rs = Some(all.remove(i));
        }
        r.old = all;
    }

    /// Finds (or with `create`, creates) the new ReplicaSet and gives it the newest
    /// revision; the Deployment's revision annotation follows it.
    async fn sync_revision(&self, r: &mut Rollout, create: bool) -> Result<()> {
        self.split(r);
        let new_revision = max_revision(&r.old) + 1;
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &r.key.namespace);
        let min_ready = r.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let has_deadline = status::progress_deadline(&r.d).is_some();
        let now = Utc::now();
        if let Some(mut rs) = r.new_rs.clone() {
            let mut changed = false;
            if revision(&rs) < new_revision {
                // A rollback lands here: the old ReplicaSet becomes the newest revision.
                rs.metadata
                    .annotations
                    .insert(REVISION_ANNOTATION.into(), new_revision.to_string());
                changed = true;
            }
            if let Some(spec) = rs.spec.as_mut() {
                if spec.min_ready_seconds != min_ready {
                    spec.min_ready_seconds = min_ready;
                    changed = true;
                }
            }
            if changed {
                let name = rs.metadata.name().to_string();
                rs = api
                    .replace(&name, &rs)
                    .await
                    .map_err(r.err(format!("updating ReplicaSet {name}")))?;
            }
            let status = r.d.status.get_or_insert_with(Default::default);
            if has_deadline && status::condition(status, status::PROGRESSING).is_none() {
                status::set_condition(
                    status,
                    status::PROGRESSING,
                    "True",
                    status::FOUND_NEW_RS,
                    format!("Found new replica set \"{}\"", rs.metadata.name()),
                    now,
                );
            }
            r.new_rs = Some(rs);
        } else if create {
            let rs = self.create_new_rs(r, new_revision, &api).await?;
            if has_deadline {
                let status = r.d.status.get_or_insert_with(Default::default);
                status::set_condition(
                    status,
                    status::PROGRESSING,
                    "True",
                    status::NEW_RS_CREATED,
                    format!("Created new replica set \"{}\"", rs.metadata.name()),
                    now,
                );
            }
            r.new_rs = Some(rs);
        }
        // The Deployment's revision is its new ReplicaSet's.
        if let Some(rev) = r.new_rs.as_ref().map(revision) {
            let rev = rev.to_string();
            if r.d.metadata.annotations.get(REVISION_ANNOTATION) != Some(&rev) {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), &r.key.namespace);
                let patch =
                    serde_json::json!({"metadata": {"annotations": {REVISION_ANNOTATION: rev}}});
                let updated = api
                    .patch(&r.key.name, PatchKind::Merge, &patch)
                    .await
                    .map_err(r.err("setting the revision annotation"))?;
                r.d.metadata.annotations = updated.metadata.annotations;
            }
        }
        Ok(())
    }

    async fn create_new_rs(
        &self,
        r: &mut Rollout,
        new_revision: i64,
        api: &Api<ReplicaSet>,
    ) -> Result<ReplicaSet> {
        let d = &r.d;
        let spec = d.spec.clone().unwrap_or_default();
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = pod_template_hash(&spec.template, collision_count);
        let name = format!("{}-{}", d.metadata.name(), hash);
        let mut template = spec.template.clone();
        template
            .metadata
            .labels
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let mut selector = spec.selector.clone().unwrap_or_default();
        selector
            .match_labels
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let mut metadata = ObjectMeta::namespaced(&r.key.namespace, &name);
        metadata.labels = template.metadata.labels.clone();
        metadata.owner_references.push(controller_ref(d));
        metadata
            .annotations
            .insert(REVISION_ANNOTATION.into(), new_revision.to_string());
        let mut rs = ReplicaSet {
            metadata,
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector: Some(selector),
                template,
            }),
            status: None,
            ..Default::default()
        }
        .with_type_meta();
        let (surge, _) = fenceposts(d);
        set_replicas_annotations(&mut rs, desired(d), desired(d) + surge);
        let size = rolling::new_rs_replicas(d, &rs, &r.old);
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(size);
        }
        match api.create(&rs).await {
            Ok(created) => {
                self.recorder.event(
                    d,
                    EventType::Normal,
                    "ScalingReplicaSet",
                    format!("Scaled up replica set {name} from 0 to {size}"),
                );
                Ok(created)
            }
            Err(e) if e.is_already_exists() => {
                let existing = api
                    .get(&name)
                    .await
                    .map_err(r.err(format!("reading ReplicaSet {name}")))?;
                let ours = existing
                    .metadata
                    .controller_ref()
                    .is_some_and(|o| Some(&o.uid) == d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .is_some_and(|s| equal_ignoring_hash(&s.template, &spec.template));
                if ours && same {
                    return Ok(existing);
                }
                // Another template hashed to the same name: bump collisionCount so
                // the next sync computes a different one.
                let count = collision_count.unwrap_or(0) + 1;
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), &r.key.namespace);
                let patch = serde_json::json!({"status": {"collisionCount": count}});
                api.patch_status(&r.key.name, PatchKind::Merge, &patch)
                    .await
                    .map_err(r.err("bumping collisionCount"))?;
                Err(Error::HashCollision { name, count })
            }
            Err(source) => Err(r.err(format!("creating ReplicaSet {name}"))(source)),
        }
    }

    /// Sets `rs` to `size` replicas (and the desired/max annotations) with the
    /// resourceVersion we read, so a stale cache fails with a conflict instead of
    /// acting twice.
    async fn scale(&self, r: &Rollout, rs: &ReplicaSet, size: i32) -> Result<ReplicaSet> {
        let mut copy = rs.clone();
        let from = replicas(rs);
        let (surge, _) = fenceposts(&r.d);
        let annotations_changed =
            set_replicas_annotations(&mut copy, desired(&r.d), desired(&r.d) + surge);
        if from == size && !annotations_changed {
            return Ok(copy);
        }
        copy.spec.get_or_insert_with(Default::default).replicas = Some(size);
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &r.key.namespace);
        let name = rs.metadata.name().to_string();
        let updated = api
            .replace(&name, &copy)
            .await
            .map_err(r.err(format!("scaling ReplicaSet {name} to {size}")))?;
        if from != size {
            let dir = if size > from { "up" } else { "down" };
            self.recorder.event(
                &r.d,
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {dir} replica set {name} from {from} to {size}"),
            );
        }
        Ok(updated)
    }

    async fn rolling(&self, mut r: Rollout) -> Result<Action> {
        self.sync_revision(&mut r, true).await?;
        let Some(new_rs) = r.new_rs.clone() else {
            return self.write_status(&mut r, true).await;
        };
        // Grow (or trim) the new ReplicaSet first.
        let want = desired(&r.d);
        if replicas(&new_rs) != want {
            let target = if replicas(&new_rs) > want {
                want
            } else {
                rolling::new_rs_replicas(&r.d, &new_rs, &r.old)
            };
            if target != replicas(&new_rs) {
                r.new_rs = Some(self.scale(&r, &new_rs, target).await?);
                return self.write_status(&mut r, true).await;
            }
        }
        // Then shrink the old ones as far as availability allows.
        let sizes = rolling::old_rs_sizes(&r.d, &new_rs, &r.old);
        let mut scaled = false;
        for (i, size) in sizes.into_iter().enumerate() {
            if size != replicas(&r.old[i]) {
                let old = r.old[i].clone();
                r.old[i] = self.scale(&r, &old, size).await?;
                scaled = true;
            }
        }
        if scaled {
            return self.write_status(&mut r, true).await;
        }
        if r.d
            .status
            .as_ref()
            .is_some_and(|s| status::is_complete(&r.d, s))
        {
            self.cleanup_history(&r).await?;
        }
        self.write_status(&mut r, true).await
    }

    async fn recreate(&self, mut r: Rollout) -> Result<Action> {
        self.sync_revision(&mut r, false).await?;
        let mut scaled = false;
        for i in 0..r.old.len() {
            if replicas(&r.old[i]) > 0 {
                let old = r.old[i].clone();
                r.old[i] = self.scale(&r, &old, 0).await?;
                scaled = true;
            }
        }
        if scaled || self.old_pods_running(&r) {
            return self.write_status(&mut r, true).await;
        }
        if r.new_rs.is_none() {
            self.sync_revision(&mut r, true).await?;
        }
        if let Some(new_rs) = r.new_rs.clone() {
            let want = desired(&r.d);
            if replicas(&new_rs) != want {
                r.new_rs = Some(self.scale(&r, &new_rs, want).await?);
            }
        }
        if r.d
            .status
            .as_ref()
            .is_some_and(|s| status::is_complete(&r.d, s))
        {
            self.cleanup_history(&r).await?;
        }
        self.write_status(&mut r, true).await
    }

    /// Whether any pod of an old ReplicaSet still exists (Recreate waits for them).
    fn old_pods_running(&self, r: &Rollout) -> bool {
        if r.old
            .iter()
            .any(|rs| rs.status.as_ref().is_some_and(|s| s.replicas > 0))
        {
            return true;
        }
        let old_uids: Vec<&str> = r
            .old
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        self.pods
            .list_by_namespace(&r.key.namespace)
            .iter()
            .any(|p| {
                p.metadata
                    .controller_ref()
                    .is_some_and(|o| old_uids.contains(&o.uid.as_str()))
                    && !matches!(p.phase(), "Succeeded" | "Failed")
            })
    }

    /// Scaling (replicas changed) or paused: resize what exists, roll nothing.
    async fn sync_scale(&self, mut r: Rollout, paused: bool) -> Result<Action> {
        self.sync_revision(&mut r, false).await?;
        let want = desired(&r.d);
        let active: Vec<usize> = (0..r.old.len())
            .filter(|&i| replicas(&r.old[i]) > 0)
            .collect();
        let new_active = r.new_rs.as_ref().is_some_and(|rs| replicas(rs) > 0);
        let active_count = active.len() + usize::from(new_active);
        if active_count <= 1 {
            // One ReplicaSet (the active one, else the new one, else the newest old one)
            // takes all replicas.
            if new_active || (active.is_empty() && r.new_rs.is_some()) {
                let rs = r.new_rs.clone().unwrap_or_default();
                r.new_rs = Some(self.scale(&r, &rs, want).await?);
            } else if let Some(&i) = active.first().or(r.old.len().checked_sub(1).as_ref()) {
                let rs = r.old[i].clone();
                r.old[i] = self.scale(&r, &rs, want).await?;
            }
        } else if r.new_rs.as_ref().is_some_and(|rs| {
            replicas(rs) == want
                && revision::replicas_annotation(rs, revision::DESIRED_REPLICAS_ANNOTATION)
                    == Some(want)
                && rs
                    .status
                    .as_ref()
                    .is_some_and(|s| s.available_replicas >= want)
        }) {
            // The new ReplicaSet is saturated: the old ones are not needed.
            for i in active {
                let rs = r.old[i].clone();
                r.old[i] = self.scale(&r, &rs, 0).await?;
            }
        } else if !is_recreate(&r.d) {
            let mut idx: Vec<Option<usize>> = Vec::new();
            let mut rss = Vec::new();
            if new_active {
                idx.push(None);
                rss.push(r.new_rs.clone().unwrap_or_default());
            }
            for i in active {
                idx.push(Some(i));
                rss.push(r.old[i].clone());
            }
            let sizes = proportional::proportional_sizes(&r.d, &rss);
            for ((slot, rs), size) in idx.into_iter().zip(rss).zip(sizes) {
                let updated = self.scale(&r, &rs, size).await?;
                match slot {
                    None => r.new_rs = Some(updated),
                    Some(i) => r.old[i] = updated,
                }
            }
        }
        if paused {
            self.cleanup_history(&r).await?;
        }
        self.write_status(&mut r, false).await
    }

    async fn cleanup_history(&self, r: &Rollout) -> Result<()> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &r.key.namespace);
        for name in revision::history_to_delete(&r.d, &r.old) {
            match api
                .delete(&name, &tug_client::DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(source) => {
                    return Err(r.err(format!("deleting old ReplicaSet {name}"))(source))
                }
            }
        }
        Ok(())
    }

    /// Writes the recomputed status (with `Progressing` moved along when `rollout`)
    /// if it changed; asks to look again when a progress deadline is pending.
    async fn write_status(&self, r: &mut Rollout, rollout: bool) -> Result<Action> {
        let now = Utc::now();
        let all = r.all();
        let st = if rollout {
            status::rollout_status(&r.d, r.new_rs.as_ref(), &all, now)
        } else {
            status::calculate_status(&r.d, r.new_rs.as_ref(), &all, now)
        };
        let requeue = status::requeue_for_deadline(&r.d, &st, now);
        if r.stored_status.as_ref() != Some(&st) {
            let api: Api<Deployment> = Api::namespaced(self.client.clone(), &r.key.namespace);
            // Every field explicitly: a merge patch leaves omitted (zero) fields alone.
            let mut patch = serde_json::json!({"status": {
                "observedGeneration": st.observed_generation,
                "replicas": st.replicas,
                "updatedReplicas": st.updated_replicas,
                "readyReplicas": st.ready_replicas,
                "availableReplicas": st.available_replicas,
                "unavailableReplicas": st.unavailable_replicas,
                "conditions": st.conditions,
            }});
            // Never clear collisionCount: a stale cache must not undo a bump.
            if let Some(count) = st.collision_count {
                patch["status"]["collisionCount"] = count.into();
            }
            match api
                .patch_status(&r.key.name, PatchKind::Merge, &patch)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(Action::AwaitChange),
                Err(source) => return Err(r.err("updating status")(source)),
            }
            r.stored_status = Some(st.clone());
        }
        r.d.status = Some(st);
        Ok(requeue.map_or(Action::AwaitChange, Action::Requeue))
    }
}

/// Replicas changed: some active ReplicaSet was sized for another replica count.
fn is_scaling_event(r: &Rollout) -> bool {
    let want = desired(&r.d);
    r.all().into_iter().filter(|rs| replicas(rs) > 0).any(|rs| {
        revision::replicas_annotation(rs, revision::DESIRED_REPLICAS_ANNOTATION)
            .is_some_and(|d| d != want)
    })
}

/// `Progressing` says Unknown/DeploymentPaused while paused and DeploymentResumed once
/// resumed (so the deadline does not count paused time).
fn check_paused_conditions(d: &mut Deployment) {
    if status::progress_deadline(d).is_none() {
        return;
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let st = d.status.get_or_insert_with(Default::default);
    let reason = status::condition(st, status::PROGRESSING).and_then(|c| c.reason.clone());
    let now = Utc::now();
    if paused && reason.as_deref() != Some(status::PAUSED) {
        status::set_condition(
            st,
            status::PROGRESSING,
            "Unknown",
            status::PAUSED,
            "Deployment is paused".into(),
            now,
        );
    } else if !paused && reason.as_deref() == Some(status::PAUSED) {
        status::set_condition(
            st,
            status::PROGRESSING,
            "Unknown",
            status::RESUMED,
            "Deployment is resumed".into(),
            now,
        );
    }
}
