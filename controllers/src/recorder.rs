//! `Recorder`: posts core/v1 `Event`s about objects through the client's
//! `EventRecorder` (which folds repeats), in the background so a failed event never
//! slows or fails a sync.

use std::sync::Arc;
use tug_client::{Client, EventRecorder};
use tug_proto::Resource;

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

/// Cheap to clone; every controller shares one (and its repeat folding).
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<EventRecorder>,
}

impl Recorder {
    pub fn new(client: Client, component: &str) -> Self {
        Recorder {
            inner: Arc::new(EventRecorder::new(client, component, None)),
        }
    }

    /// Records `reason: message` on `obj` in the background; failures are logged by the
    /// client's recorder.
    pub fn event<K: Resource>(&self, obj: &K, type_: EventType, reason: &str, message: String) {
        let inner = self.inner.clone();
        let reference = tug_client::events::object_reference(obj);
        let reason = reason.to_string();
        tokio::spawn(async move {
            inner
                .record(&reference, type_.as_str(), &reason, &message)
                .await;
        });
    }

    /// The client's recorder, for callers that want to await the write.
    pub fn client_recorder(&self) -> &EventRecorder {
        &self.inner
    }
}
