//! `WorkQueue`: deduplicating, delaying, rate-limited queue of keys; a key being
//! processed is never handed out twice at once.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Per-key exponential back-off for [`WorkQueue::add_rate_limited`].
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RateLimit {
    /// client-go's defaults: 5ms doubling up to 1000s.
    fn default() -> Self {
        RateLimit {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }
    }
}

struct State<T> {
    /// Ready to hand out, in order.
    queue: VecDeque<T>,
    /// Waiting to be handed out (in `queue`, or re-added while processing).
    dirty: HashSet<T>,
    /// Handed out and not yet `done`.
    processing: HashSet<T>,
    /// Delayed keys and when they become ready (the earliest request wins).
    waiting: HashMap<T, Instant>,
    /// The same deadlines ordered by time, so `get` does not scan every delayed key.
    /// Entries whose deadline no longer matches `waiting` are stale and skipped.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Which key a heap entry stands for (by sequence number).
    by_seq: HashMap<u64, T>,
    seq: u64,
    failures: HashMap<T, u32>,
    shutdown: bool,
}

/// A cheap-to-clone handle to one queue.
pub struct WorkQueue<T> {
    state: Arc<Mutex<State<T>>>,
    notify: Arc<Notify>,
    /// Flips to true on shutdown; for [`WorkQueue::closed`].
    closed: Arc<tokio::sync::watch::Sender<bool>>,
    rate: RateLimit,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        WorkQueue {
            state: self.state.clone(),
            notify: self.notify.clone(),
            closed: self.closed.clone(),
            rate: self.rate,
        }
    }
}

impl<T: Hash + Eq + Clone + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        Self::new(RateLimit::default())
    }
}

impl<T: Hash + Eq + Clone + Send + 'static> WorkQueue<T> {
    pub fn new(rate: RateLimit) -> Self {
        WorkQueue {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                waiting: HashMap::new(),
                deadlines: BinaryHeap::new(),
                by_seq: HashMap::new(),
                seq: 0,
                failures: HashMap::new(),
                shutdown: false,
            })),
            notify: Arc::new(Notify::new()),
            closed: Arc::new(tokio::sync::watch::channel(false).0),
            rate,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // Every critical section leaves the state consistent before it could panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` now. A key already queued is not queued twice; a key being
    /// processed is queued again when its worker calls [`done`](Self::done).
    pub fn add(&self, item: T) {
        let mut s = self.lock();
        if Self::add_locked(&mut s, item) {
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Returns whether a worker should be woken.
    fn add_locked(s: &mut State<T>, item: T) -> bool {
        if s.shutdown || s.dirty.contains(&item) {
            return false;
        }
        s.waiting.remove(&item);
        s.dirty.insert(item.clone());
        if s.processing.contains(&item) {
            return false;
        }
        s.queue.push_back(item);
        true
    }

    /// Queues `item` after `delay` (at once if zero). An earlier pending deadline wins.
    pub fn add_after(&self, item: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(item);
        }
        let at = Instant::now() + delay;
        let mut s = self.lock();
        if s.shutdown || s.dirty.contains(&item) {
            return;
        }
        if s.waiting.get(&item).is_some_and(|existing| *existing <= at) {
            return;
        }
        s.waiting.insert(item.clone(), at);
        s.seq += 1;
        let seq = s.seq;
        s.deadlines.push(Reverse((at, seq)));
        s.by_seq.insert(seq, item);
        drop(s);
        // Sleeping workers recompute their wake-up time.
        self.notify.notify_waiters();
    }

    /// Queues `item` after its back-off: base * 2^failures, capped.
    pub fn add_rate_limited(&self, item: T) {
        let delay = {
            let mut s = self.lock();
            let n = s.failures.entry(item.clone()).or_insert(0);
            let exp = (*n).min(30);
            *n = n.saturating_add(1);
            self.rate
                .base
                .saturating_mul(1u32 << exp)
                .min(self.rate.max)
        };
        self.add_after(item, delay);
    }

    /// Clears `item`'s failure count (after a successful reconcile).
    pub fn forget(&self, item: &T) {
        self.lock().failures.remove(item);
    }

    /// How many times `item` was rate-limited since the last `forget`.
    pub fn num_requeues(&self, item: &T) -> u32 {
        self.lock().failures.get(item).copied().unwrap_or(0)
    }

    /// The next key to process; waits for one. `None` once the queue is shut down.
    /// The caller must call [`done`](Self::done) with it afterwards.
    pub async fn get(&self) -> Option<T> {
        loop {
            // Register interest before looking, so an add between the look and the
            // wait is not missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_deadline = {
                let mut s = self.lock();
                if s.shutdown {
                    return None;
                }
                let now = Instant::now();
                let next = Self::promote_due(&mut s, now);
                if let Some(item) = s.queue.pop_front() {
                    s.dirty.remove(&item);
                    s.processing.insert(item.clone());
                    return Some(item);
                }
                next
            };
            match next_deadline {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Moves delayed keys whose time has come into the queue; returns the next deadline.
    fn promote_due(s: &mut State<T>, now: Instant) -> Option<Instant> {
        while let Some(Reverse((at, seq))) = s.deadlines.peek().copied() {
            let current = s
                .by_seq
                .get(&seq)
                .is_some_and(|item| s.waiting.get(item) == Some(&at));
            if !current {
                // Superseded by an earlier deadline, or added/forgotten meanwhile.
                s.deadlines.pop();
                s.by_seq.remove(&seq);
                continue;
            }
            if at > now {
                return Some(at);
            }
            s.deadlines.pop();
            if let Some(item) = s.by_seq.remove(&seq) {
                s.waiting.remove(&item);
                Self::add_locked(s, item);
            }
        }
        None
    }

    /// Marks `item` finished; if it was added again meanwhile, it is queued now.
    pub fn done(&self, item: &T) {
        let mut s = self.lock();
        s.processing.remove(item);
        if s.dirty.contains(item) && !s.shutdown {
            s.queue.push_back(item.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Keys ready to be handed out now.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys waiting for their delay.
    pub fn delayed(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Stops handing out keys: every `get` returns `None`.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.notify.notify_waiters();
        self.closed.send_replace(true);
    }

    /// Resolves once the queue is shut down.
    pub async fn closed(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }

    pub fn is_shutdown(&self) -> bool {
        self.lock().shutdown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new(RateLimit {
            base: Duration::from_millis(10),
            max: Duration::from_secs(1),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_adds_are_handed_out_once_in_order() {
        let q = queue();
        for k in ["a", "b", "a", "c", "b"] {
            q.add(k);
        }
        assert_eq!(q.len(), 3);
        for want in ["a", "b", "c"] {
            let got = q.get().await.unwrap();
            assert_eq!(got, want);
            q.done(&got);
        }
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_re_added_while_processing_waits_for_done() {
        let q = queue();
        q.add("a");
        let a = q.get().await.unwrap();
        q.add("a");
        q.add("b");
        // "a" is being processed: only "b" may be handed out.
        assert_eq!(q.get().await.unwrap(), "b");
        let blocked = tokio::time::timeout(Duration::from_secs(60), q.get()).await;
        assert!(blocked.is_err(), "a was handed out twice at once");
        q.done(&a);
        assert_eq!(q.get().await.unwrap(), "a");
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_come_out_after_their_delay_and_the_earliest_wins() {
        let q = queue();
        let start = Instant::now();
        q.add_after("slow", Duration::from_secs(10));
        q.add_after("fast", Duration::from_secs(5));
        q.add_after("slow", Duration::from_secs(2));
        assert_eq!(q.delayed(), 2);
        assert_eq!(q.get().await.unwrap(), "slow");
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert_eq!(q.get().await.unwrap(), "fast");
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_immediate_add_overrides_a_pending_delay() {
        let q = queue();
        q.add_after("a", Duration::from_secs(100));
        q.add("a");
        let start = Instant::now();
        assert_eq!(q.get().await.unwrap(), "a");
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(q.delayed(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_keys_back_off_exponentially_until_forgotten() {
        let q = queue();
        let mut waits = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            q.add_rate_limited("k");
            let k = q.get().await.unwrap();
            waits.push(start.elapsed());
            q.done(&k);
        }
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(waits, vec![ms(10), ms(20), ms(40), ms(80), ms(160)]);
        assert_eq!(q.num_requeues(&"k"), 5);
        q.forget(&"k");
        let start = Instant::now();
        q.add_rate_limited("k");
        q.get().await.unwrap();
        assert_eq!(start.elapsed(), ms(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_back_off_is_capped() {
        let q = queue();
        for _ in 0..20 {
            q.add_rate_limited("k");
            let k = q.get().await.unwrap();
            q.done(&k);
        }
        let start = Instant::now();
        q.add_rate_limited("k");
        q.get().await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_worker_wakes_for_a_new_key_and_for_shutdown() {
        let q = queue();
        let worker = {
            let q = q.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while let Some(k) = q.get().await {
                    seen.push(k);
                    q.done(&k);
                }
                seen
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        q.add("x");
        q.add_after("y", Duration::from_secs(3));
        tokio::time::sleep(Duration::from_secs(5)).await;
        q.shutdown();
        assert_eq!(worker.await.unwrap(), vec!["x", "y"]);
        q.add("z");
        assert!(q.get().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn many_workers_never_share_a_key() {
        let q: WorkQueue<u32> = WorkQueue::default();
        let active = Arc::new(Mutex::new(HashSet::new()));
        let mut workers = Vec::new();
        for _ in 0..4 {
            let (q, active) = (q.clone(), active.clone());
            workers.push(tokio::spawn(async move {
                let mut handled = 0;
                while let Some(k) = q.get().await {
                    assert!(active.lock().unwrap().insert(k), "key {k} handed out twice");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    active.lock().unwrap().remove(&k);
                    q.done(&k);
                    handled += 1;
                }
                handled
            }));
        }
        for round in 0..50u32 {
            q.add(round % 5);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        q.shutdown();
        let mut total = 0;
        for w in workers {
            total += w.await.unwrap();
        }
        assert!(total >= 5, "{total}");
        assert!(q.is_empty());
    }
}
