//! Watch streams: the retained history from sled first, then live events from the apply
//! loop's broadcast, in revision order and without gaps or repeats.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::broadcast;

use crate::node::Published;
use crate::store::Inner;
use crate::{Error, Event, Result};

/// Events for one prefix; ends when the watcher fell too far behind or the store stopped
/// (re-watch from the last revision seen).
pub struct WatchStream {
    inner: Pin<Box<dyn Stream<Item = Event> + Send>>,
}

impl Stream for WatchStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchStream")
    }
}

/// History is read in chunks so a long backlog never sits in memory at once.
const HISTORY_CHUNK: usize = 512;

struct State {
    store: Weak<Inner>,
    live: broadcast::Receiver<Published>,
    prefix: String,
    /// Highest revision already looked at (sent or filtered out).
    seen: u64,
    history_done: bool,
    ready: VecDeque<Event>,
}

impl State {
    /// Takes events in revision order; false when a gap means the stream cannot go on.
    fn take(&mut self, events: impl IntoIterator<Item = Event>) -> bool {
        for e in events {
            let rev = e.kv.mod_revision;
            if rev <= self.seen {
                continue;
            }
            if rev != self.seen + 1 {
                return false;
            }
            self.seen = rev;
            if e.kv.key.starts_with(&self.prefix) {
                self.ready.push_back(e);
            }
        }
        true
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            if !self.history_done {
                let inner = self.store.upgrade()?;
                let sm = inner.state_machine().ok()?;
                let chunk = sm.history_from(self.seen + 1, HISTORY_CHUNK).ok()?;
                self.history_done = chunk.len() < HISTORY_CHUNK;
                if !self.take(chunk) {
                    return None;
                }
                continue;
            }
            match self.live.recv().await {
                Ok(Published::Events(batch)) => {
                    if !self.take(batch.iter().cloned()) {
                        return None;
                    }
                }
                // Reset, lagged or closed: the client re-watches from its last revision.
                Ok(Published::Reset) | Err(_) => return None,
            }
        }
    }
}

pub(crate) fn start(
    inner: &std::sync::Arc<Inner>,
    prefix: &str,
    after: u64,
) -> Result<WatchStream> {
    // Subscribe before reading history: every event applied after this point is either
    // in the history we read or arrives live (duplicates are skipped by revision).
    let live = inner.shared.events.subscribe();
    let sm = inner.state_machine()?;
    let oldest = sm.oldest_revision()?;
    if after < oldest {
        return Err(Error::Compacted {
            requested: after,
            oldest,
        });
    }
    let state = State {
        store: std::sync::Arc::downgrade(inner),
        live,
        prefix: prefix.to_string(),
        seen: after,
        history_done: false,
        ready: VecDeque::new(),
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        let e = s.next().await?;
        Some((e, s))
    });
    Ok(WatchStream {
        inner: Box::pin(stream),
    })
}
