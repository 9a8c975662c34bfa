//! `Informer`: a watcher feeding a cache, whose events only enqueue keys.

use crate::api::Api;
use crate::queue::WorkQueue;
use crate::store::{ObjectKey, Store, Writer};
use crate::watcher::{self, watcher, Event};
use futures::StreamExt;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tug_proto::Resource;

type Mapper<K> = Arc<dyn Fn(&K) -> Vec<ObjectKey> + Send + Sync>;

/// list+watch -> cache -> keys into queues. Build it, take [`store`](Self::store)
/// handles and queue subscriptions, then [`spawn`](Self::spawn) it.
pub struct Informer<K: Resource> {
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    subscribers: Vec<(WorkQueue<ObjectKey>, Mapper<K>)>,
}

impl<K: Resource> Informer<K> {
    pub fn new(api: Api<K>, config: watcher::Config) -> Self {
        Informer {
            api,
            config,
            writer: Writer::new(),
            subscribers: Vec::new(),
        }
    }

    /// A read handle on the cache.
    pub fn store(&self) -> Store<K> {
        self.writer.store()
    }

    /// On every change of an object, queue its own key.
    pub fn enqueue_into(&mut self, queue: WorkQueue<ObjectKey>) -> &mut Self {
        self.enqueue_mapped(queue, |o| vec![ObjectKey::of(o)])
    }

    /// On every change of an object, queue the keys `map` derives from it (for example
    /// the owning ReplicaSet of a Pod).
    pub fn enqueue_mapped(
        &mut self,
        queue: WorkQueue<ObjectKey>,
        map: impl Fn(&K) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> &mut Self {
        self.subscribers.push((queue, Arc::new(map)));
        self
    }

    /// On every change, queue the key of the object's controller owner if it is of
    /// `kind` (`metadata.ownerReferences[controller=true]`), in the object's namespace.
    pub fn enqueue_owner(&mut self, queue: WorkQueue<ObjectKey>, kind: &'static str) -> &mut Self {
        self.enqueue_mapped(queue, move |o| {
            let m = o.metadata();
            m.controller_ref()
                .filter(|r| r.kind == kind)
                .map(|r| {
                    vec![ObjectKey::new(
                        m.namespace.clone().unwrap_or_default(),
                        r.name.clone(),
                    )]
                })
                .unwrap_or_default()
        })
    }

    /// Runs until dropped: applies events to the cache first (so a worker woken by a
    /// key always reads at least that state), then enqueues keys.
    pub async fn run(self) {
        let Informer {
            api,
            config,
            writer,
            subscribers,
        } = self;
        let mut events = std::pin::pin!(watcher(api, config));
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(kind = K::KIND, error = %e, "watch failed; retrying");
                    continue;
                }
            };
            // Objects deleted while the watch was down only show up as missing from
            // the re-list; tell their subscribers with the last state we had.
            let before: Vec<Arc<K>> = if matches!(event, Event::Restarted(_)) {
                writer.store().list()
            } else {
                Vec::new()
            };
            let gone = writer.apply(&event);
            for (queue, map) in &subscribers {
                for obj in event.objects() {
                    for key in map(obj) {
                        queue.add(key);
                    }
                }
                for obj in before
                    .iter()
                    .filter(|o| gone.contains(&ObjectKey::of(o.as_ref())))
                {
                    for key in map(obj) {
                        queue.add(key);
                    }
                }
            }
        }
    }

    /// Runs on a tokio task; abort the handle (or drop the runtime) to stop.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }
}
