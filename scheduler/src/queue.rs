//! The scheduling queue: active (priority, then FIFO), back-off (per-pod exponential,
//! 1 s doubling to 10 s) and unschedulable (parked until the cluster changes, and at
//! most 60 s).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tug_client::ObjectKey;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often even if nothing seems to change.
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(60);

/// A pod waiting in the queue.
#[derive(Clone, Debug)]
pub struct QueuedPod {
    pub key: ObjectKey,
    pub priority: i32,
    /// Scheduling attempts so far (sets the back-off).
    pub attempts: u32,
    /// When the last attempt ended.
    last_attempt: Instant,
}

impl QueuedPod {
    fn backoff(&self) -> Duration {
        let exp = self.attempts.saturating_sub(1).min(16);
        INITIAL_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF)
    }

    fn backoff_expiry(&self) -> Instant {
        self.last_attempt + self.backoff()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    Active(u64),
    Backoff,
    Unschedulable,
    /// Popped and being scheduled.
    InFlight,
}

#[derive(Default)]
struct Inner {
    /// (priority, FIFO sequence); entries whose sequence no longer matches `pods` are stale.
    active: BinaryHeap<(i32, Reverse<u64>)>,
    by_seq: HashMap<u64, ObjectKey>,
    seq: u64,
    pods: HashMap<ObjectKey, (QueuedPod, Where)>,
    /// Incremented for every pop; a cluster change records the cycle it happened in, so
    /// a pod whose attempt overlapped a change goes to back-off, not to sleep.
    scheduling_cycle: u64,
    move_request_cycle: u64,
    last_unschedulable_flush: Option<Instant>,
    closed: bool,
}

impl Inner {
    fn push_active(&mut self, pod: QueuedPod) {
        self.seq += 1;
        self.active.push((pod.priority, Reverse(self.seq)));
        self.by_seq.insert(self.seq, pod.key.clone());
        self.pods
            .insert(pod.key.clone(), (pod, Where::Active(self.seq)));
    }

    /// Back-off pods whose time is up, and (every minute) all unschedulable ones.
    fn flush(&mut self, now: Instant) {
        let flush_all = self
            .last_unschedulable_flush
            .is_none_or(|t| now.duration_since(t) >= UNSCHEDULABLE_FLUSH);
        if flush_all {
            self.last_unschedulable_flush = Some(now);
        }
        let ready: Vec<QueuedPod> = self
            .pods
            .values()
            .filter(|(p, w)| match w {
                Where::Backoff => p.backoff_expiry() <= now,
                Where::Unschedulable => {
                    flush_all && now.duration_since(p.last_attempt) >= UNSCHEDULABLE_FLUSH
                }
                _ => false,
            })
            .map(|(p, _)| p.clone())
            .collect();
        for p in ready {
            self.push_active(p);
        }
    }

    fn next_backoff_expiry(&self) -> Option<Instant> {
        self.pods
            .values()
            .filter(|(_, w)| *w == Where::Backoff)
            .map(|(p, _)| p.backoff_expiry())
            .min()
    }
}

#[derive(Default)]
pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl SchedulingQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new or changed pending pod. Already queued: left where it is, except that a
    /// parked (unschedulable) pod whose spec may have changed gets another try.
    pub fn add(&self, key: ObjectKey, priority: i32) {
        let mut q = self.lock();
        match q.pods.get(&key).map(|(p, w)| (p.clone(), *w)) {
            None => q.push_active(QueuedPod {
                key,
                priority,
                attempts: 0,
                last_attempt: Instant::now(),
            }),
            Some((mut p, Where::Unschedulable)) => {
                p.priority = priority;
                q.push_active(p);
            }
            Some(_) => return,
        }
        drop(q);
        self.notify.notify_one();
    }

    /// The next pod to schedule and the cycle number; waits while none is ready.
    /// `None` once closed.
    pub async fn pop(&self) -> Option<(QueuedPod, u64)> {
        loop {
            let notified = self.notify.notified();
            let wake = {
                let mut q = self.lock();
                if q.closed {
                    return None;
                }
                q.flush(Instant::now());
                while let Some((_, Reverse(seq))) = q.active.pop() {
                    let Some(key) = q.by_seq.remove(&seq) else {
                        continue;
                    };
                    let Some((pod, w)) = q.pods.get_mut(&key) else {
                        continue;
                    };
                    if *w != Where::Active(seq) {
                        continue;
                    }
                    *w = Where::InFlight;
                    pod.attempts += 1;
                    let pod = pod.clone();
                    q.scheduling_cycle += 1;
                    return Some((pod, q.scheduling_cycle));
                }
                let next = q.next_backoff_expiry();
                let minute = Instant::now() + UNSCHEDULABLE_FLUSH;
                next.map_or(minute, |n| n.min(minute))
            };
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// The pod fit nowhere in cycle `cycle`: park it until the cluster changes, unless it
    /// already changed during the attempt (then back off and retry).
    pub fn add_unschedulable(&self, key: &ObjectKey, cycle: u64) {
        let mut q = self.lock();
        let moved = q.move_request_cycle >= cycle;
        if let Some((p, w)) = q.pods.get_mut(key) {
            p.last_attempt = Instant::now();
            *w = if moved {
                Where::Backoff
            } else {
                Where::Unschedulable
            };
        }
        drop(q);
        self.notify.notify_one();
    }

    /// An attempt failed for a reason worth retrying soon (plugin error, bind error).
    pub fn add_backoff(&self, key: &ObjectKey) {
        let mut q = self.lock();
        if let Some((p, w)) = q.pods.get_mut(key) {
            p.last_attempt = Instant::now();
            *w = Where::Backoff;
        }
        drop(q);
        self.notify.notify_one();
    }

    /// The pod is placed (or gone): forget it.
    pub fn done(&self, key: &ObjectKey) {
        self.lock().pods.remove(key);
    }

    /// Something changed that may let parked pods fit (a node came or changed, a pod
    /// left): parked pods go to back-off if still backing off, else straight to active.
    pub fn move_all_to_active(&self) {
        let mut q = self.lock();
        q.move_request_cycle = q.scheduling_cycle;
        let now = Instant::now();
        let parked: Vec<QueuedPod> = q
            .pods
            .values()
            .filter(|(_, w)| *w == Where::Unschedulable)
            .map(|(p, _)| p.clone())
            .collect();
        for p in parked {
            if p.backoff_expiry() > now {
                q.pods.get_mut(&p.key).expect("listed above").1 = Where::Backoff;
            } else {
                q.push_active(p);
            }
        }
        drop(q);
        self.notify.notify_one();
    }

    /// (active, backoff, unschedulable, in flight) counts.
    #[cfg(test)]
    pub fn stats(&self) -> (usize, usize, usize, usize) {
        let q = self.lock();
        let mut s = (0, 0, 0, 0);
        for (_, w) in q.pods.values() {
            match w {
                Where::Active(_) => s.0 += 1,
                Where::Backoff => s.1 += 1,
                Where::Unschedulable => s.2 += 1,
                Where::InFlight => s.3 += 1,
            }
        }
        s
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> ObjectKey {
        ObjectKey::new("default", n)
    }

    #[tokio::test(start_paused = true)]
    async fn higher_priority_first_then_fifo() {
        let q = SchedulingQueue::default();
        q.add(key("a"), 0);
        q.add(key("b"), 10);
        q.add(key("c"), 0);
        q.add(key("a"), 0);
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(q.pop().await.unwrap().0.key.name);
        }
        assert_eq!(order, ["b", "a", "c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_wait_for_a_cluster_change_then_back_off() {
        let q = SchedulingQueue::default();
        q.add(key("a"), 0);
        let (_, cycle) = q.pop().await.unwrap();
        q.add_unschedulable(&key("a"), cycle);
        assert_eq!(q.stats(), (0, 0, 1, 0));
        q.move_all_to_active();
        // One attempt: a 1 s back-off from the attempt's end.
        assert_eq!(q.stats(), (0, 1, 0, 0));
        let t0 = Instant::now();
        let (p, _) = q.pop().await.unwrap();
        assert_eq!(p.attempts, 2);
        assert!(Instant::now() - t0 >= INITIAL_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_during_the_attempt_is_not_lost() {
        let q = SchedulingQueue::default();
        q.add(key("a"), 0);
        let (_, cycle) = q.pop().await.unwrap();
        q.move_all_to_active();
        q.add_unschedulable(&key("a"), cycle);
        assert_eq!(q.stats(), (0, 1, 0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn parked_pods_are_retried_every_minute_and_back_off_grows_to_ten_seconds() {
        let q = SchedulingQueue::default();
        q.add(key("a"), 0);
        let (_, cycle) = q.pop().await.unwrap();
        q.add_unschedulable(&key("a"), cycle);
        let t0 = Instant::now();
        q.pop().await.unwrap();
        assert!(Instant::now() - t0 >= UNSCHEDULABLE_FLUSH);
        let mut p = QueuedPod {
            key: key("a"),
            priority: 0,
            attempts: 1,
            last_attempt: Instant::now(),
        };
        let mut got = Vec::new();
        for attempts in 1..7 {
            p.attempts = attempts;
            got.push(p.backoff().as_secs());
        }
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
    }
}
