//! `?watch=true` (and the legacy `/watch/` prefix): newline-delimited JSON watch events,
//! one chunk per event, with selector-aware ADDED/DELETED transitions and bookmarks.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tug_store::{Event, EventKind, Read};

use super::Req;
use crate::error::{ApiError, Result};
use crate::negotiate::Output;
use crate::object;
use crate::registry::ResourceInfo;
use crate::selector::Selectors;
use crate::state::AppState;

/// Watch timing; tests shorten the bookmark interval.
#[derive(Debug, Clone, Copy)]
pub struct WatchConfig {
    /// How often an idle watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// How long a watch without `timeoutSeconds` lasts (Kubernetes: 30-60 min).
    pub default_timeout: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            bookmark_interval: Duration::from_secs(5),
            default_timeout: Duration::from_secs(45 * 60),
        }
    }
}

/// Events buffered between the store stream and a slow client.
const CLIENT_BUFFER: usize = 256;

pub async fn watch(state: Arc<AppState>, req: Req, name: Option<String>) -> Result<Response> {
    let info = req.info();
    let mut selectors =
        Selectors::parse(info, req.param("labelSelector"), req.param("fieldSelector"))?;
    if let Some(name) = name {
        selectors = selectors.with_name(&name);
    }
    let timeout = match req.param("timeoutSeconds").filter(|t| !t.is_empty()) {
        None => state.watch.default_timeout,
        Some(t) => Duration::from_secs(t.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid timeoutSeconds {t:?}: must be a non-negative integer"
            ))
        })?),
    };
    let bookmarks = matches!(req.param("allowWatchBookmarks"), Some("true" | "1"));
    let prefix = info.prefix(req.target.namespace.as_deref());

    // Unset or "0": start with the current state as ADDED events, then go live.
    let mut initial = Vec::new();
    let mut listed_revs = HashMap::new();
    let start = match req
        .param("resourceVersion")
        .filter(|rv| !rv.is_empty() && *rv != "0")
    {
        Some(rv) => object::parse_resource_version(rv)?,
        None => {
            let read = if req.param("resourceVersion") == Some("0") {
                Read::Local
            } else {
                Read::Linearizable
            };
            let listed = state.store.list(&prefix, None, None, read).await?;
            for kv in &listed.kvs {
                listed_revs.insert(kv.key.clone(), kv.mod_revision);
                let obj = object::decode(kv)?;
                if selectors.matches(&obj) {
                    initial.push(("ADDED", obj));
                }
            }
            listed.revision
        }
    };
    // Compacted history is an HTTP 410 here, before anything was streamed.
    let stream = state
        .store
        .watch(&prefix, start)
        .await
        .map_err(|e| match e {
            tug_store::Error::Compacted { .. } => gone(&e),
            e => ApiError::from(e),
        })?;

    let (tx, rx) = mpsc::channel::<Bytes>(CLIENT_BUFFER);
    let task = Stream {
        state: state.clone(),
        info,
        out: req.out,
        selectors,
        tx,
        last_rev: start,
        listed_until: listed_revs.values().copied().max().unwrap_or(0),
        listed_revs,
    };
    tokio::spawn(task.run(initial, stream, timeout, bookmarks));

    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    let mut resp = (StatusCode::OK, body).into_response();
    let ct = if req.out.yaml {
        "application/yaml"
    } else {
        "application/json"
    };
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

fn gone(e: &tug_store::Error) -> ApiError {
    ApiError::gone(format!("too old resource version: {e}"))
}

/// One running watch: turns store events into watch events for one client.
struct Stream {
    state: Arc<AppState>,
    info: &'static ResourceInfo,
    out: Output,
    selectors: Selectors,
    tx: mpsc::Sender<Bytes>,
    /// Highest revision delivered or filtered: what a bookmark may promise.
    last_rev: u64,
    /// The initial list's keys and revisions. The store reports the list's revision as
    /// of just before the read, so the stream may replay writes the list already showed;
    /// those are skipped. Dropped once the stream is past all of them.
    listed_revs: HashMap<String, u64>,
    listed_until: u64,
}

impl Stream {
    async fn run(
        mut self,
        initial: Vec<(&'static str, Value)>,
        mut events: tug_store::WatchStream,
        timeout: Duration,
        bookmarks: bool,
    ) {
        for (ty, obj) in initial {
            if !self.send(ty, obj).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let period = self
            .state
            .watch
            .bookmark_interval
            .max(Duration::from_millis(10));
        let mut bookmark = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut shutdown = self.state.shutdown.subscribe();
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
                _ = shutdown.changed() => return,
                _ = bookmark.tick(), if bookmarks => {
                    let obj = json!({
                        "kind": self.info.kind,
                        "apiVersion": self.info.api_version(),
                        "metadata": {"resourceVersion": self.last_rev.to_string()},
                    });
                    if !self.send_raw("BOOKMARK", obj).await {
                        return;
                    }
                }
                ev = events.next() => {
                    // The store ended the stream (this watcher lagged, or shutdown): the
                    // client re-watches from the last resourceVersion it saw.
                    let Some(ev) = ev else { return };
                    self.last_rev = ev.kv.mod_revision;
                    let already_listed = self
                        .listed_revs
                        .get(&ev.kv.key)
                        .is_some_and(|listed| ev.kv.mod_revision <= *listed);
                    if self.last_rev >= self.listed_until {
                        self.listed_revs = HashMap::new();
                    }
                    if already_listed {
                        continue;
                    }
                    if let Some((ty, obj)) = self.convert(&ev) {
                        if !self.send(ty, obj).await {
                            return;
                        }
                        bookmark.reset();
                    }
                }
            }
        }
    }

    /// The watch event a store event means for this watcher's selectors, if any.
    fn convert(&self, ev: &Event) -> Option<(&'static str, Value)> {
        let rev = ev.kv.mod_revision;
        let decode = |kv: &tug_store::KeyValue| object::decode(kv).ok();
        let new = decode(&ev.kv)?;
        let old = ev.prev.as_ref().and_then(decode);
        match ev.kind {
            EventKind::Added => self.selectors.matches(&new).then_some(("ADDED", new)),
            EventKind::Deleted => {
                let mut last = old.unwrap_or(new);
                object::set_meta(&mut last, "resourceVersion", Some(json!(rev.to_string())));
                self.selectors.matches(&last).then_some(("DELETED", last))
            }
            EventKind::Modified => {
                let now_matches = self.selectors.matches(&new);
                let was_matching = old.as_ref().is_some_and(|o| self.selectors.matches(o));
                match (was_matching, now_matches) {
                    (true, true) => Some(("MODIFIED", new)),
                    (false, true) => Some(("ADDED", new)),
                    (true, false) => {
                        // Left the selection: the last matching state, at this revision.
                        let mut gone = old.expect("was_matching implies old");
                        object::set_meta(
                            &mut gone,
                            "resourceVersion",
                            Some(json!(rev.to_string())),
                        );
                        Some(("DELETED", gone))
                    }
                    (false, false) => None,
                }
            }
        }
    }

    async fn send(&mut self, ty: &str, obj: Value) -> bool {
        let obj = self.out.event_object(self.info, obj);
        self.send_raw(ty, obj).await
    }

    async fn send_raw(&mut self, ty: &str, obj: Value) -> bool {
        let event = json!({"type": ty, "object": obj});
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        self.state.metrics.watch_event();
        self.tx.send(Bytes::from(line)).await.is_ok()
    }
}
