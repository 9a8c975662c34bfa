//! `Recorder`: posts core/v1 `Event`s about objects, best effort and off the
//! reconcile path (a failed event never fails a sync).

use tug_client::{Api, Client};
use tug_proto::core::v1::{Event, EventSource, ObjectReference};
use tug_proto::meta::v1::Time;
use tug_proto::{ObjectMeta, Resource};

/// `Normal` or `Warning`, as in Kubernetes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Cheap to clone; every controller shares one.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
}

impl Recorder {
    pub fn new(client: Client, component: &str) -> Self {
        Recorder {
            client,
            component: component.to_string(),
        }
    }

    /// Records `reason: message` on `obj` in the background; failures are logged.
    pub fn event<K: Resource>(&self, obj: &K, type_: EventType, reason: &str, message: String) {
        let event = self.build(ObjectReference::to(obj), type_, reason, message);
        let api: Api<Event> = Api::namespaced(self.client.clone(), event.metadata.namespace());
        tokio::spawn(async move {
            if let Err(e) = api.create(&event).await {
                tracing::debug!(reason = event.reason.as_deref().unwrap_or(""), error = %e, "could not record event");
            }
        });
    }

    fn build(
        &self,
        involved: ObjectReference,
        type_: EventType,
        reason: &str,
        message: String,
    ) -> Event {
        let now = chrono::Utc::now();
        let namespace = involved
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        let name = format!(
            "{}.{:x}",
            involved.name.as_deref().unwrap_or("unknown"),
            now.timestamp_nanos_opt().unwrap_or_default()
        );
        Event {
            metadata: ObjectMeta::namespaced(namespace, name),
            involved_object: involved,
            reason: Some(reason.to_string()),
            message: Some(message),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            type_: Some(type_.as_str().to_string()),
            reporting_component: self.component.clone(),
            reporting_instance: self.component.clone(),
            ..Default::default()
        }
        .with_type_meta()
    }
}
