//! `watcher`: list + watch as one endless stream of events, re-listing on 410 Gone,
//! re-watching from the last resourceVersion when a watch ends, backing off on errors.

use crate::api::Api;
use crate::error::Error;
use crate::params::ListParams;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use std::time::Duration;
use tug_proto::meta::v1::event_type;
use tug_proto::{Resource, WatchEvent};

/// What the watcher saw.
#[derive(Clone, Debug)]
pub enum Event<K> {
    /// An object was added or modified.
    Applied(K),
    /// An object was deleted (its last state).
    Deleted(K),
    /// A (re-)list: these are all the objects there are now; anything else is gone.
    Restarted(Vec<K>),
}

impl<K> Event<K> {
    /// The objects the event carries.
    pub fn objects(&self) -> impl Iterator<Item = &K> {
        match self {
            Event::Applied(k) | Event::Deleted(k) => std::slice::from_ref(k).iter(),
            Event::Restarted(all) => all.iter(),
        }
    }
}

/// Exponential back-off with jitter: `initial`, doubling up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    current: Option<Duration>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(200), Duration::from_secs(30))
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            current: None,
        }
    }

    /// The next delay (with up to 20% jitter so many watchers do not retry in step).
    pub fn next_delay(&mut self) -> Duration {
        let d = match self.current {
            None => self.initial,
            Some(d) => (d * 2).min(self.max),
        };
        self.current = Some(d);
        let jitter = rand::random::<f64>() * 0.2;
        d.mul_f64(1.0 + jitter).min(self.max)
    }

    pub fn reset(&mut self) {
        self.current = None;
    }
}

/// Options of a watcher.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Label and field selectors (and page size via `limit`) for list and watch.
    pub list_params: ListParams,
    pub backoff: Backoff,
}

impl Config {
    pub fn labels(mut self, selector: &str) -> Self {
        self.list_params.label_selector = Some(selector.to_string());
        self
    }

    pub fn fields(mut self, selector: &str) -> Self {
        self.list_params.field_selector = Some(selector.to_string());
        self
    }
}

enum State<K> {
    /// Need a full list.
    Empty,
    /// Listed (or watched) up to this resourceVersion; open a watch from there.
    InitWatch(String),
    Watching {
        rv: String,
        stream: BoxStream<'static, crate::Result<WatchEvent<K>>>,
    },
}

/// An endless stream of [`Event`]s for `api`'s collection. Errors are yielded (so callers
/// can log them) and retried after a back-off; they never end the stream.
pub fn watcher<K: Resource>(
    api: Api<K>,
    config: Config,
) -> impl Stream<Item = Result<Event<K>, Error>> + Send + 'static {
    stream_from(api, config, State::Empty)
}

fn stream_from<K: Resource>(
    api: Api<K>,
    config: Config,
    initial: State<K>,
) -> impl Stream<Item = Result<Event<K>, Error>> + Send + 'static {
    let mut lp = config.list_params.clone();
    // A server-side timeout ends every watch within ~5 minutes, so a connection that
    // died silently cannot stall the watcher forever.
    if lp.timeout_seconds.is_none() {
        lp.timeout_seconds = Some(290 + rand::random::<u32>() % 60);
    }
    lp.allow_bookmarks = true;
    futures::stream::unfold(
        (api, lp, config.backoff, initial),
        |(api, lp, mut backoff, state)| async move {
            let mut state = state;
            loop {
                match state {
                    State::Empty => {
                        let mut list_lp = lp.clone();
                        list_lp.timeout_seconds = None;
                        match api.list_all(&list_lp).await {
                            Ok(list) => {
                                backoff.reset();
                                let rv = list.metadata.resource_version.clone().unwrap_or_default();
                                let next = State::InitWatch(rv);
                                return Some((
                                    Ok(Event::Restarted(list.items)),
                                    (api, lp, backoff, next),
                                ));
                            }
                            Err(e) => {
                                tokio::time::sleep(backoff.next_delay()).await;
                                return Some((Err(e), (api, lp, backoff, State::Empty)));
                            }
                        }
                    }
                    State::InitWatch(rv) => match api.watch(&lp, &rv).await {
                        Ok(stream) => state = State::Watching { rv, stream },
                        Err(e) if e.is_gone() => {
                            tracing::debug!(
                                kind = K::KIND,
                                "resourceVersion {rv} is gone; re-listing"
                            );
                            state = State::Empty;
                        }
                        Err(e) => {
                            tokio::time::sleep(backoff.next_delay()).await;
                            return Some((Err(e), (api, lp, backoff, State::InitWatch(rv))));
                        }
                    },
                    State::Watching { rv, mut stream } => match stream.next().await {
                        Some(Ok(ev)) => {
                            backoff.reset();
                            let new_rv = ev
                                .object
                                .metadata()
                                .resource_version
                                .clone()
                                .filter(|v| !v.is_empty())
                                .unwrap_or(rv);
                            let out = match ev.type_.as_str() {
                                event_type::ADDED | event_type::MODIFIED => {
                                    Event::Applied(ev.object)
                                }
                                event_type::DELETED => Event::Deleted(ev.object),
                                // BOOKMARK only moves the resourceVersion forward.
                                _ => {
                                    state = State::Watching { rv: new_rv, stream };
                                    continue;
                                }
                            };
                            let next = State::Watching { rv: new_rv, stream };
                            return Some((Ok(out), (api, lp, backoff, next)));
                        }
                        Some(Err(e)) if e.is_gone() => {
                            tracing::debug!(kind = K::KIND, "watch expired at {rv}; re-listing");
                            state = State::Empty;
                        }
                        Some(Err(e)) => {
                            tokio::time::sleep(backoff.next_delay()).await;
                            return Some((Err(e), (api, lp, backoff, State::InitWatch(rv))));
                        }
                        // The server ended the watch (timeout): continue where it stopped.
                        None => state = State::InitWatch(rv),
                    },
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tug_proto::core::v1::ConfigMap;

    async fn next<S: Stream<Item = Result<Event<ConfigMap>, Error>> + Unpin>(
        s: &mut S,
    ) -> Event<ConfigMap> {
        tokio::time::timeout(Duration::from_secs(30), s.next())
            .await
            .expect("an event in time")
            .expect("the watcher never ends")
            .expect("no error")
    }

    fn cm(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: tug_proto::ObjectMeta::named(name),
            ..Default::default()
        }
        .with_type_meta()
    }

    #[tokio::test]
    async fn a_watch_that_expired_is_replaced_by_a_relist() {
        let dir = tempfile::tempdir().unwrap();
        let opts = tug_apiserver::testing::TestOptions {
            history_limit: 5,
            ..Default::default()
        };
        let server = tug_apiserver::testing::single_with(dir.path(), opts).await;
        let config = crate::Config::from_kubeconfig_file(&server.kubeconfig).unwrap();
        let api: Api<ConfigMap> = Api::namespaced(crate::Client::new(config).unwrap(), "default");
        let old = api.create(&cm("old")).await.unwrap();
        for i in 0..10 {
            api.create(&cm(&format!("c{i}"))).await.unwrap();
        }
        // Resume from a version the server has compacted away.
        let rv = old.metadata.resource_version.unwrap();
        let mut events = Box::pin(stream_from(
            api.clone(),
            Config::default(),
            State::InitWatch(rv),
        ));
        match next(&mut events).await {
            Event::Restarted(all) => assert_eq!(all.len(), 11),
            other => panic!("expected a re-list, got {other:?}"),
        }
        api.create(&cm("after")).await.unwrap();
        match next(&mut events).await {
            Event::Applied(o) => assert_eq!(o.metadata.name(), "after"),
            other => panic!("expected the new object, got {other:?}"),
        }
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_watch_the_server_ends_is_resumed_without_losing_events() {
        let dir = tempfile::tempdir().unwrap();
        let server = tug_apiserver::testing::single(dir.path()).await;
        let config = crate::Config::from_kubeconfig_file(&server.kubeconfig).unwrap();
        let api: Api<ConfigMap> = Api::namespaced(crate::Client::new(config).unwrap(), "default");
        let mut wc = Config::default();
        wc.list_params.timeout_seconds = Some(1);
        let mut events = Box::pin(watcher(api.clone(), wc));
        assert!(matches!(next(&mut events).await, Event::Restarted(v) if v.is_empty()));
        // Outlive several server-side watch timeouts.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        api.create(&cm("late")).await.unwrap();
        api.delete("late", &crate::DeleteParams::default())
            .await
            .unwrap();
        assert!(
            matches!(next(&mut events).await, Event::Applied(o) if o.metadata.name() == "late")
        );
        assert!(
            matches!(next(&mut events).await, Event::Deleted(o) if o.metadata.name() == "late")
        );
        server.shutdown().await;
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let delays: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        for (d, base) in delays.iter().zip([100u64, 200, 400, 500, 500]) {
            let base = Duration::from_millis(base);
            assert!(
                *d >= base && *d <= (base.mul_f64(1.2)).min(Duration::from_millis(500)),
                "{d:?} vs {base:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(121));
    }
}
