//! The informer cache: one [`Writer`] applies watcher events, many [`Store`] readers
//! get and list without touching the API.

use crate::watcher::Event;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;
use tug_proto::labels::Selector;
use tug_proto::Resource;

/// `namespace/name` (or just `name` for cluster-scoped objects), as client-go's keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of an object.
    pub fn of<K: Resource>(obj: &K) -> Self {
        let m = obj.metadata();
        ObjectKey::new(
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    }

    /// Parses `ns/name` or `name`.
    pub fn parse(s: &str) -> Self {
        match s.split_once('/') {
            Some((ns, name)) => ObjectKey::new(ns, name),
            None => ObjectKey::new("", s),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

type Map<K> = HashMap<ObjectKey, Arc<K>>;

/// A read handle on the cache; cheap to clone.
pub struct Store<K> {
    map: Arc<RwLock<Map<K>>>,
    ready: watch::Receiver<bool>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            map: self.map.clone(),
            ready: self.ready.clone(),
        }
    }
}

impl<K: Resource> Store<K> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map<K>> {
        // A panicking writer cannot leave the map half-updated (each update is one
        // insert/remove/swap), so a poisoned lock is still consistent.
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The object `namespace/name` (namespace `""` for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.read().get(&ObjectKey::new(namespace, name)).cloned()
    }

    pub fn get_key(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.read().get(key).cloned()
    }

    /// Every object, in no particular order.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().values().cloned().collect()
    }

    pub fn list_by_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.read()
            .iter()
            .filter(|(k, _)| k.namespace == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Objects in `namespace` (all namespaces when `None`) whose labels match.
    pub fn list_matching(&self, namespace: Option<&str>, selector: &Selector) -> Vec<Arc<K>> {
        self.read()
            .iter()
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .filter(|(_, v)| selector.matches(&v.metadata().labels))
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Whether the first list has been applied.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits for the first list, so a reconciler never mistakes "not loaded yet" for
    /// "does not exist". Returns at once if the writer is gone.
    pub async fn wait_until_ready(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|ready| *ready).await;
    }
}

/// The only writer of a cache.
pub struct Writer<K> {
    map: Arc<RwLock<Map<K>>>,
    ready: watch::Sender<bool>,
}

impl<K: Resource> Default for Writer<K> {
    fn default() -> Self {
        Writer {
            map: Arc::new(RwLock::new(HashMap::new())),
            ready: watch::channel(false).0,
        }
    }
}

impl<K: Resource> Writer<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader of this cache.
    pub fn store(&self) -> Store<K> {
        Store {
            map: self.map.clone(),
            ready: self.ready.subscribe(),
        }
    }

    /// Applies one watcher event. For a re-list, returns the keys that disappeared
    /// (deleted while the watch was down), so their owners can be told.
    pub fn apply(&self, event: &Event<K>) -> Vec<ObjectKey> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let gone = match event {
            Event::Applied(obj) => {
                map.insert(ObjectKey::of(obj), Arc::new(obj.clone()));
                Vec::new()
            }
            Event::Deleted(obj) => {
                map.remove(&ObjectKey::of(obj));
                Vec::new()
            }
            Event::Restarted(all) => {
                let fresh: Map<K> = all
                    .iter()
                    .map(|o| (ObjectKey::of(o), Arc::new(o.clone())))
                    .collect();
                let gone = map
                    .keys()
                    .filter(|k| !fresh.contains_key(*k))
                    .cloned()
                    .collect();
                *map = fresh;
                gone
            }
        };
        drop(map);
        if matches!(event, Event::Restarted(_)) {
            self.ready.send_replace(true);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tug_proto::coordination::v1::Lease;
    use tug_proto::ObjectMeta;

    fn lease(ns: &str, name: &str, app: &str) -> Lease {
        let mut l = Lease {
            metadata: ObjectMeta::namespaced(ns, name),
            ..Default::default()
        };
        l.metadata.labels.insert("app".into(), app.into());
        l
    }

    #[tokio::test]
    async fn the_cache_follows_events_and_reports_objects_gone_during_a_relist() {
        let w = Writer::<Lease>::new();
        let s = w.store();
        assert!(!s.is_ready());
        w.apply(&Event::Restarted(vec![
            lease("a", "x", "web"),
            lease("b", "y", "db"),
        ]));
        s.wait_until_ready().await;
        w.apply(&Event::Applied(lease("a", "z", "web")));
        assert_eq!(s.len(), 3);
        assert_eq!(s.list_by_namespace("a").len(), 2);
        let web = Selector::parse("app=web").unwrap();
        assert_eq!(s.list_matching(None, &web).len(), 2);
        assert_eq!(s.list_matching(Some("b"), &web).len(), 0);
        w.apply(&Event::Deleted(lease("a", "z", "web")));
        assert!(s.get("a", "z").is_none());
        let gone = w.apply(&Event::Restarted(vec![lease("b", "y", "db")]));
        assert_eq!(gone, vec![ObjectKey::new("a", "x")]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn keys_print_and_parse_like_client_go() {
        for (key, text) in [
            (ObjectKey::new("ns", "a"), "ns/a"),
            (ObjectKey::new("", "node-1"), "node-1"),
        ] {
            assert_eq!(key.to_string(), text);
            assert_eq!(ObjectKey::parse(text), key);
        }
    }
}
