//! Test support: an in-process apiserver with chosen controllers running against it,
//! a "kubelet" that marks pods ready, and polling helpers.

#![allow(dead_code)]

use futures::StreamExt;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tug_client::{Api, Client, Config, ListParams, PatchKind};
use tug_controllers::{Context, Options};
use tug_proto::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use tug_proto::meta::v1::{LabelSelector, Time};
use tug_proto::ObjectMeta;

/// A running apiserver plus controllers; everything stops when it is dropped.
pub struct Cluster {
    pub client: Client,
    pub ctx: Context,
    pub server: Option<tug_apiserver::testing::TestServer>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.ctx.shutdown.cancel();
    }
}

impl Cluster {
    /// Runs the named controllers under `run_controllers`, as the manager does.
    pub async fn start(controllers: &[&'static str]) -> Cluster {
        let controllers = controllers.to_vec();
        Cluster::start_with(Options::default(), |ctx| {
            tug_controllers::run_controllers(ctx, controllers)
        })
        .await
    }

    /// Spawns `run` (one controller's loop, e.g. `endpoints::run`) with a context
    /// built from `options`, for tests that need non-default knobs.
    pub async fn start_with<F, Fut>(options: Options, run: F) -> Cluster
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = tug_apiserver::testing::single(dir.path()).await;
        let config = Config::from_kubeconfig_file(&server.kubeconfig).expect("kubeconfig");
        let client = Client::new(config).expect("client");
        let ctx = Context::new(client.clone(), options);
        tokio::spawn(run(ctx.clone()));
        Cluster {
            client,
            ctx,
            server: Some(server),
            _dir: dir,
        }
    }

    pub fn api<K: tug_proto::Resource>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Pods of `default` matching `selector`, without terminating ones.
    pub async fn live_pods(&self, selector: &str) -> Vec<Pod> {
        let pods = self
            .api::<Pod>()
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list pods");
        pods.items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// Plays kubelet: every pod matching `selector` that is not ready yet becomes
    /// Running and Ready after `delay` (unless `never` says so for its labels).
    pub fn kubelet(&self, selector: &str, delay: Duration) -> tokio::task::JoinHandle<()> {
        let api = self.api::<Pod>();
        let lp = ListParams::default().labels(selector);
        let shutdown = self.ctx.shutdown.clone();
        tokio::spawn(async move {
            let work = async {
                loop {
                    let Ok(mut events) = api.watch(&lp, "").await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    while let Some(Ok(ev)) = events.next().await {
                        let pod = ev.object;
                        if ev.type_ == "DELETED"
                            || pod.is_ready()
                            || pod.metadata.deletion_timestamp.is_some()
                        {
                            continue;
                        }
                        let api = api.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = mark_ready(&api, pod.metadata.name()).await;
                        });
                    }
                }
            };
            tokio::select! {
                _ = work => {}
                _ = shutdown.cancelled() => {}
            }
        })
    }
}

/// Writes pod status: Running with a Ready condition, as the node agent would.
pub async fn mark_ready(api: &Api<Pod>, name: &str) -> tug_client::Result<Pod> {
    let patch = serde_json::json!({"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": Time::now()}],
    }});
    api.patch_status(name, PatchKind::Merge, &patch).await
}

/// A pod template labelled `app=<app>` running `image`.
pub fn template(app: &str, image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: ObjectMeta {
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

pub fn selector(app: &str) -> LabelSelector {
    LabelSelector {
        match_labels: BTreeMap::from([("app".to_string(), app.to_string())]),
        ..Default::default()
    }
}

/// Polls `check` until it returns `Some`; panics with `what` after a generous deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Runs `op` again while it fails with 409 Conflict. The apiserver answers a patch that
/// raced with another write with a Conflict (Kubernetes retries those internally).
pub async fn retry_conflicts<T, F, Fut>(mut op: F) -> tug_client::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = tug_client::Result<T>>,
{
    let mut attempts = 0;
    loop {
        match op().await {
            Err(e) if e.is_conflict() && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}
