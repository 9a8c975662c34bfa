//! The controller runner: workers take keys from a [`WorkQueue`] and reconcile them;
//! errors requeue with back-off, `Action` says when to look again.

use crate::api::Api;
use crate::informer::Informer;
use crate::queue::WorkQueue;
use crate::store::{ObjectKey, Store};
use crate::watcher;
use futures::future::BoxFuture;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tug_proto::Resource;

/// What a successful reconcile asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Look at the key again after this long even if nothing changes.
    Requeue(Duration),
    /// Only look again when a watched object changes.
    AwaitChange,
}

/// Runs `workers` workers on `queue` until it is shut down. Each key is reconciled by
/// one worker at a time; on `Err` the key is requeued with its rate-limited back-off,
/// on `Ok` its back-off is forgotten.
pub async fn run<T, F, Fut, E>(queue: WorkQueue<T>, reconcile: F, workers: usize)
where
    T: std::hash::Hash + Eq + Clone + Display + Send + Sync + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let reconcile = Arc::new(reconcile);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let reconcile = reconcile.clone();
        tasks.spawn(async move {
            while let Some(key) = queue.get().await {
                // A panicking reconcile must not kill the worker or leave the key
                // marked as processing forever.
                let fut = reconcile(key.clone());
                let result = tokio::spawn(fut).await;
                match result {
                    Ok(Ok(Action::Requeue(after))) => {
                        queue.forget(&key);
                        queue.add_after(key.clone(), after);
                    }
                    Ok(Ok(Action::AwaitChange)) => queue.forget(&key),
                    Ok(Err(e)) => {
                        tracing::warn!(%key, error = %e, retries = queue.num_requeues(&key), "reconcile failed; requeueing with back-off");
                        queue.add_rate_limited(key.clone());
                    }
                    Err(join) => {
                        tracing::error!(%key, error = %join, "reconcile panicked; requeueing with back-off");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// A convenience over [`run`] for the common shape: reconcile `ObjectKey`s.
pub async fn run_keys<F, Fut, E>(queue: WorkQueue<ObjectKey>, reconcile: F, workers: usize)
where
    F: Fn(ObjectKey) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    run(queue, reconcile, workers).await
}

/// A controller for kind `K`: an informer on `K` whose changes enqueue their own keys,
/// optional informers on other kinds that enqueue mapped keys (`owns`, `watches`), and
/// workers running `reconcile(key)`.
pub struct Controller<K: Resource> {
    queue: WorkQueue<ObjectKey>,
    store: Store<K>,
    /// (informer run future, its cache's readiness) per informer.
    informers: Vec<(BoxFuture<'static, ()>, BoxFuture<'static, ()>)>,
}

impl<K: Resource> Controller<K> {
    /// Watches `api`'s collection (filtered by `config`'s selectors).
    pub fn new(api: Api<K>, config: watcher::Config) -> Self {
        let queue = WorkQueue::default();
        let mut informer = Informer::new(api, config);
        informer.enqueue_into(queue.clone());
        let store = informer.store();
        let mut c = Controller {
            queue,
            store,
            informers: Vec::new(),
        };
        c.push(informer);
        c
    }

    fn push<C: Resource>(&mut self, informer: Informer<C>) {
        let store = informer.store();
        self.informers.push((
            Box::pin(informer.run()),
            Box::pin(async move { store.wait_until_ready().await }),
        ));
    }

    /// The cache of `K`.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The queue; call `shutdown()` on it to stop [`run`](Self::run).
    pub fn queue(&self) -> WorkQueue<ObjectKey> {
        self.queue.clone()
    }

    /// Also watches `C` objects controlled by a `K` (ownerReference with
    /// `controller: true`, e.g. Pods of a ReplicaSet) and reconciles their owner.
    pub fn owns<C: Resource>(&mut self, api: Api<C>, config: watcher::Config) -> Store<C> {
        let mut informer = Informer::new(api, config);
        informer.enqueue_owner(self.queue.clone(), K::KIND);
        let store = informer.store();
        self.push(informer);
        store
    }

    /// Also watches `C` objects and reconciles the keys `map` derives from each.
    pub fn watches<C: Resource>(
        &mut self,
        api: Api<C>,
        config: watcher::Config,
        map: impl Fn(&C) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Store<C> {
        let mut informer = Informer::new(api, config);
        informer.enqueue_mapped(self.queue.clone(), map);
        let store = informer.store();
        self.push(informer);
        store
    }

    /// Starts the informers, waits until every cache has its first list (so reconcile
    /// never mistakes "not loaded" for "absent"), then runs `workers` workers until the
    /// queue is shut down. The informers stop when this returns.
    pub async fn run<F, Fut, E>(self, reconcile: F, workers: usize)
    where
        F: Fn(ObjectKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let mut tasks = tokio::task::JoinSet::new();
        let mut readiness = Vec::new();
        for (run_informer, ready) in self.informers {
            tasks.spawn(run_informer);
            readiness.push(ready);
        }
        let queue = self.queue.clone();
        tokio::select! {
            _ = futures::future::join_all(readiness) => {}
            _ = queue.closed() => return,
        }
        run(self.queue, reconcile, workers).await;
        // Dropping the JoinSet aborts the informers.
        tasks.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[tokio::test(start_paused = true)]
    async fn errors_back_off_and_requeue_asks_are_honoured() {
        let queue: WorkQueue<String> = WorkQueue::default();
        let calls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let runner = {
            let calls = calls.clone();
            tokio::spawn(run(
                queue.clone(),
                move |key: String| {
                    let calls = calls.clone();
                    async move {
                        let n = {
                            let mut c = calls.lock().unwrap();
                            let n = c.entry(key.clone()).or_insert(0);
                            *n += 1;
                            *n
                        };
                        match key.as_str() {
                            // Fails twice, then settles.
                            "flaky" if n < 3 => Err(format!("attempt {n} failed")),
                            "periodic" => Ok(Action::Requeue(Duration::from_secs(10))),
                            "panics" if n == 1 => panic!("bug"),
                            _ => Ok(Action::AwaitChange),
                        }
                    }
                },
                2,
            ))
        };
        for k in ["flaky", "periodic", "once", "panics"] {
            queue.add(k.to_string());
        }
        tokio::time::sleep(Duration::from_secs(35)).await;
        queue.shutdown();
        runner.await.unwrap();
        let calls = calls.lock().unwrap();
        assert_eq!(calls["flaky"], 3);
        assert_eq!(calls["once"], 1);
        assert_eq!(calls["panics"], 2);
        // At 0s, 10s, 20s, 30s.
        assert_eq!(calls["periodic"], 4);
        assert_eq!(queue.num_requeues(&"flaky".to_string()), 0);
    }
}
