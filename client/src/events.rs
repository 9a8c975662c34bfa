//! `EventRecorder`: writes core/v1 Events about objects, folding repeats into a count.
//!
//! Like client-go's recorder with its correlator: the same (object, type, reason,
//! message) seen again within [`DEDUP_WINDOW`] bumps `count` and `lastTimestamp` of the
//! Event already written instead of creating another. Recording never fails the
//! caller: an Event is a hint to humans, and losing one must not stop a reconcile.

use crate::api::Api;
use crate::client::Client;
use crate::params::PatchKind;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tug_proto::core::v1::{Event, EventSource, ObjectReference};
use tug_proto::{ObjectMeta, Resource, Time};

/// How long a repeat is folded into the earlier Event (client-go's correlator uses 10 minutes).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(600);
/// The most distinct Events remembered; beyond it the oldest are forgotten.
const CACHE_SIZE: usize = 4096;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// The reference an Event uses for `obj` (kind, namespace, name, uid, apiVersion).
pub fn object_reference<K: Resource>(obj: &K) -> ObjectReference {
    let m = obj.metadata();
    ObjectReference {
        kind: Some(K::KIND.to_string()),
        namespace: m.namespace.clone(),
        name: m.name.clone(),
        uid: m.uid.clone(),
        api_version: Some(K::API_VERSION.to_string()),
        resource_version: m.resource_version.clone(),
        ..Default::default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct DedupKey {
    namespace: String,
    kind: String,
    name: String,
    uid: String,
    type_: String,
    reason: String,
    message: String,
}

#[derive(Clone, Debug)]
struct Seen {
    event_name: String,
    count: i32,
    last: Instant,
}

/// Records Events for one component (`source.component`, `reportingComponent`).
pub struct EventRecorder {
    client: Client,
    component: String,
    host: Option<String>,
    seen: Mutex<HashMap<DedupKey, Seen>>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("component", &self.component)
            .field("host", &self.host)
            .finish()
    }
}

/// What to write for one `record` call, decided under the cache lock.
enum Write {
    Create { name: String },
    Bump { name: String, count: i32 },
}

impl EventRecorder {
    pub fn new(client: Client, component: &str, host: Option<String>) -> Self {
        EventRecorder {
            client,
            component: component.to_string(),
            host,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// [`record`](Self::record) about a typed object.
    pub async fn record_for<K: Resource>(&self, obj: &K, type_: &str, reason: &str, message: &str) {
        self.record(&object_reference(obj), type_, reason, message)
            .await
    }

    /// Writes (or bumps) an Event about `involved` in its namespace (`default` for
    /// cluster-scoped objects, as Kubernetes does). Errors are logged, never returned.
    pub async fn record(
        &self,
        involved: &ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let namespace = involved
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let key = DedupKey {
            namespace: namespace.clone(),
            kind: involved.kind.clone().unwrap_or_default(),
            name: involved.name.clone().unwrap_or_default(),
            uid: involved.uid.clone().unwrap_or_default(),
            type_: type_.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
        };
        let write = self.decide(&key);
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Time::now();
        if let Write::Bump { name, count } = &write {
            let patch = serde_json::json!({ "count": count, "lastTimestamp": now });
            match api.patch(name, PatchKind::Merge, &patch).await {
                Ok(_) => return,
                // The Event expired or was deleted: write a fresh one under the same name.
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::warn!(event = %name, reason, error = %e, "could not update event");
                    return;
                }
            }
        }
        let (name, count) = match write {
            Write::Create { name } => (name, 1),
            Write::Bump { name, count } => (name, count),
        };
        let event = Event {
            metadata: ObjectMeta::namespaced(namespace, name.clone()),
            involved_object: involved.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            first_timestamp: Some(now),
            last_timestamp: Some(now),
            count: Some(count),
            type_: Some(type_.to_string()),
            event_time: None,
            reporting_component: self.component.clone(),
            reporting_instance: self.host.clone().unwrap_or_default(),
            ..Default::default()
        }
        .with_type_meta();
        if let Err(e) = api.create(&event).await {
            tracing::warn!(event = %name, reason, error = %e, "could not create event");
        }
    }

    fn decide(&self, key: &DedupKey) -> Write {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some(s) = seen.get_mut(key) {
            if now.duration_since(s.last) < DEDUP_WINDOW {
                s.count += 1;
                s.last = now;
                return Write::Bump {
                    name: s.event_name.clone(),
                    count: s.count,
                };
            }
        }
        if seen.len() >= CACHE_SIZE {
            seen.retain(|_, s| now.duration_since(s.last) < DEDUP_WINDOW);
            if seen.len() >= CACHE_SIZE {
                // Still full of live entries: forget the oldest half.
                let mut lasts: Vec<Instant> = seen.values().map(|s| s.last).collect();
                lasts.sort();
                let cut = lasts[lasts.len() / 2];
                seen.retain(|_, s| s.last > cut);
            }
        }
        let name = format!("{}.{:016x}", key.name, rand::random::<u64>());
        seen.insert(
            key.clone(),
            Seen {
                event_name: name.clone(),
                count: 1,
                last: now,
            },
        );
        Write::Create { name }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ListParams;
    use tug_proto::core::v1::ConfigMap;

    #[tokio::test]
    async fn repeats_bump_the_count_of_one_event_and_new_messages_make_new_events() {
        let dir = tempfile::tempdir().unwrap();
        let server = tug_apiserver::testing::single(dir.path()).await;
        let config = crate::Config::from_kubeconfig_file(&server.kubeconfig).unwrap();
        let client = Client::new(config).unwrap();
        let mut cm = ConfigMap {
            metadata: ObjectMeta::namespaced("default", "cfg"),
            ..Default::default()
        };
        cm.metadata.uid = Some("u1".into());
        let rec = EventRecorder::new(client.clone(), "tester", Some("host-1".into()));
        rec.record_for(&cm, WARNING, "Broken", "it broke").await;
        rec.record_for(&cm, WARNING, "Broken", "it broke").await;
        rec.record_for(&cm, WARNING, "Broken", "it broke").await;
        rec.record_for(&cm, NORMAL, "Fixed", "it works").await;
        let api: Api<Event> = Api::namespaced(client, "default");
        let mut events = api.list(&ListParams::default()).await.unwrap().items;
        events.sort_by_key(|e| e.reason.clone());
        assert_eq!(events.len(), 2, "{events:#?}");
        let broken = &events[0];
        assert_eq!(broken.reason.as_deref(), Some("Broken"));
        assert_eq!(broken.count, Some(3));
        assert_eq!(broken.type_.as_deref(), Some(WARNING));
        assert!(broken.metadata.name().starts_with("cfg."));
        assert_eq!(broken.involved_object.kind.as_deref(), Some("ConfigMap"));
        assert_eq!(broken.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(
            broken.source.as_ref().unwrap().component.as_deref(),
            Some("tester")
        );
        assert_eq!(broken.reporting_component, "tester");
        assert_eq!(events[1].count, Some(1));
    }
}
