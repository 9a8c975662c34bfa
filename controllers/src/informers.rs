//! `Informers`: one shared cluster-wide informer (watch + cache) per kind, started on
//! first use, so several controllers watching Pods cost one watch.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio_util::sync::CancellationToken;
use tug_client::{watcher, Api, Client, Informer, ObjectKey, Store, WorkQueue};
use tug_proto::Resource;

type Mapper<K> = Arc<dyn Fn(&K) -> Vec<ObjectKey> + Send + Sync>;
type Subscribers<K> = Arc<RwLock<Vec<(WorkQueue<ObjectKey>, Mapper<K>)>>>;

/// The factory: `informers.get::<Pod>()` returns the shared informer of Pods.
#[derive(Clone)]
pub struct Informers {
    client: Client,
    shutdown: CancellationToken,
    started: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
}

impl Informers {
    /// Informers stop when `shutdown` is cancelled.
    pub fn new(client: Client, shutdown: CancellationToken) -> Self {
        Informers {
            client,
            shutdown,
            started: Arc::default(),
        }
    }

    /// The shared informer of `K` over all namespaces, started (on the current tokio
    /// runtime) the first time it is asked for.
    pub fn get<K: Resource>(&self) -> SharedInformer<K> {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = started
            .get(&TypeId::of::<K>())
            .and_then(|b| b.downcast_ref::<SharedInformer<K>>())
        {
            return shared.clone();
        }
        let mut informer = Informer::new(
            Api::<K>::all(self.client.clone()),
            watcher::Config::default(),
        );
        let subscribers: Subscribers<K> = Arc::default();
        let fan_out = subscribers.clone();
        // The informer has one subscriber that fans out to the dynamic list, so
        // controllers can subscribe after the informer started.
        informer.enqueue_mapped(WorkQueue::default(), move |obj: &K| {
            let subs = fan_out.read().unwrap_or_else(|p| p.into_inner());
            for (queue, map) in subs.iter() {
                for key in map(obj) {
                    queue.add(key);
                }
            }
            Vec::new()
        });
        let shared = SharedInformer {
            store: informer.store(),
            subscribers,
        };
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = informer.run() => {}
                _ = shutdown.cancelled() => {}
            }
        });
        started.insert(TypeId::of::<K>(), Box::new(shared.clone()));
        shared
    }
}

/// A handle on one kind's shared informer: its cache and its subscriptions.
pub struct SharedInformer<K> {
    store: Store<K>,
    subscribers: Subscribers<K>,
}

impl<K> Clone for SharedInformer<K> {
    fn clone(&self) -> Self {
        SharedInformer {
            store: self.store.clone(),
            subscribers: self.subscribers.clone(),
        }
    }
}

impl<K: Resource> SharedInformer<K> {
    /// A read handle on the cache (wait for [`Store::wait_until_ready`] before trusting
    /// an absence).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// On every change of an object (and once now for every cached object), queue the
    /// keys `map` derives from it.
    pub fn subscribe(
        &self,
        queue: WorkQueue<ObjectKey>,
        map: impl Fn(&K) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) {
        let map: Mapper<K> = Arc::new(map);
        self.subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push((queue.clone(), map.clone()));
        // Objects listed before we subscribed would otherwise never be seen.
        for obj in self.store.list() {
            for key in map(&obj) {
                queue.add(key);
            }
        }
    }

    /// Queue an object's own key on every change.
    pub fn enqueue_into(&self, queue: WorkQueue<ObjectKey>) {
        self.subscribe(queue, |o| vec![ObjectKey::of(o)]);
    }

    /// Queue the key of the object's controller owner when it is of `kind`.
    pub fn enqueue_owner(&self, queue: WorkQueue<ObjectKey>, kind: &'static str) {
        self.subscribe(queue, move |o| {
            let m = o.metadata();
            m.controller_ref()
                .filter(|r| r.kind == kind)
                .map(|r| vec![ObjectKey::new(m.namespace(), r.name.clone())])
                .unwrap_or_default()
        });
    }

    /// Every `period`, queue every cached object's key (a safety net for anything a
    /// watch missed), until `shutdown` is cancelled.
    pub fn resync_into(
        &self,
        queue: WorkQueue<ObjectKey>,
        period: std::time::Duration,
        shutdown: CancellationToken,
    ) {
        if period.is_zero() {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.cancelled() => return,
                }
                for obj in store.list() {
                    queue.add(ObjectKey::of(obj.as_ref()));
                }
            }
        });
    }
}
