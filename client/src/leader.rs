//! Leader election on a `coordination.k8s.io/v1` Lease, like client-go's leaderelection.
//!
//! Every candidate runs a [`LeaderElector`] on the same Lease. The holder renews
//! `spec.renewTime` every `retry_period`; the others take the Lease over once it has
//! expired (`renewTime + leaseDurationSeconds < now`). Every write is a PUT (or create)
//! carrying the resourceVersion that was read, so of two candidates racing for an expired
//! Lease exactly one wins and the other gets 409 Conflict.

use crate::api::Api;
use crate::client::Client;
use crate::error::Result;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tug_proto::coordination::v1::{Lease, LeaseSpec};
use tug_proto::{MicroTime, ObjectMeta};

/// The three durations of client-go's LeaderElectionConfig.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a Lease stays valid after its last renewal; the others wait this long
    /// before taking over from a silent leader.
    pub lease_duration: Duration,
    /// The leader steps down when it could not renew for this long. Must be shorter
    /// than `lease_duration`, so it stops before anyone else may start.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    /// Kubernetes' defaults: 15 s, 10 s, 2 s.
    fn default() -> Self {
        LeaseTiming {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// One candidate for the Lease `namespace/name`. Clone it to keep an
/// [`is_leader`](Self::is_leader) handle while [`run`](Self::run) consumes the original.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    leading: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("lease", &self.name)
            .field("identity", &self.identity)
            .field("timing", &self.timing)
            .finish()
    }
}

/// What one acquire-or-renew attempt found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the Lease now.
    Held,
    /// Someone else holds a valid Lease, or won the race for it.
    Lost,
}

impl LeaderElector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            leading: Arc::new(watch::channel(false).0),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether this candidate currently holds the Lease.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Follows leadership changes (`true` while leading).
    pub fn watch_leader(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// Contends for the Lease forever. While holding it, runs `lead(token)`; when a
    /// renewal has failed for `renew_deadline`, cancels `token`, waits for that future
    /// to finish, and contends again. If `lead` returns on its own, the Lease is
    /// released (so another candidate need not wait for expiry) and `run` returns.
    /// Dropping the `run` future stops renewing; the others take over after expiry.
    pub async fn run<F, Fut>(self, mut lead: F)
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        // Dropping this future means we stop renewing: stop claiming to lead, too.
        let _resign = Resign(&self.leading);
        loop {
            self.acquire().await;
            let token = CancellationToken::new();
            let work = lead(token.clone());
            tokio::pin!(work);
            let finished = tokio::select! {
                _ = &mut work => true,
                _ = self.renew_until_lost() => false,
            };
            if finished {
                self.leading.send_replace(false);
                self.release().await;
                return;
            }
            tracing::warn!(lease = %self.name, identity = %self.identity, "lost the lease; stopping leader work");
            token.cancel();
            work.await;
            self.leading.send_replace(false);
        }
    }

    /// Retries every `retry_period` until we hold the Lease.
    async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "acquired the lease");
                    self.leading.send_replace(true);
                    return;
                }
                Ok(Attempt::Lost) => {}
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "could not read or write the lease")
                }
            }
            tokio::time::sleep(jittered(self.timing.retry_period)).await;
        }
    }

    /// Renews every `retry_period`; returns once no renewal succeeded for `renew_deadline`.
    async fn renew_until_lost(&self) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => last_renewed = Instant::now(),
                Ok(Attempt::Lost) => {
                    // Someone else wrote the Lease: it is theirs, stop at once.
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "could not renew the lease")
                }
            }
            if last_renewed.elapsed() > self.timing.renew_deadline {
                return;
            }
        }
    }

    async fn try_acquire_or_renew(&self) -> Result<Attempt> {
        let now = MicroTime::now();
        let duration_secs = self.timing.lease_duration.as_secs().max(1) as i32;
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta::named(self.name.clone()),
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .with_type_meta();
            return match self.api.create(&lease).await {
                Ok(_) => Ok(Attempt::Held),
                Err(e) if e.is_already_exists() || e.is_conflict() => Ok(Attempt::Lost),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.identity;
        if !ours && !holder.is_empty() && !expired(spec, now) {
            return Ok(Attempt::Lost);
        }
        if !ours {
            spec.acquire_time = Some(now);
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(duration_secs);
        spec.renew_time = Some(now);
        // `lease` still carries the resourceVersion we read: a concurrent writer makes
        // this a 409 and we lose the round.
        match self.api.replace(&self.name, &lease).await {
            Ok(_) => Ok(Attempt::Held),
            Err(e) if e.is_conflict() || e.is_not_found() => Ok(Attempt::Lost),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up (holder cleared, 1 s duration) if we still hold it.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime::now());
        if let Err(e) = self.api.replace(&self.name, &lease).await {
            tracing::warn!(lease = %self.name, error = %e, "could not release the lease");
        }
    }
}

struct Resign<'a>(&'a watch::Sender<bool>);

impl Drop for Resign<'_> {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

/// `renewTime + leaseDurationSeconds < now`; a Lease never renewed counts as expired.
fn expired(spec: &LeaseSpec, now: MicroTime) -> bool {
    let Some(renewed) = spec.renew_time else {
        return true;
    };
    let valid_ms = i64::from(spec.lease_duration_seconds.unwrap_or(0)) * 1000;
    renewed.0.timestamp_millis() + valid_ms < now.0.timestamp_millis()
}

/// Up to 20% more than `d`, so candidates started together do not retry in lock step.
fn jittered(d: Duration) -> Duration {
    d + d.mul_f64(rand::random::<f64>() * 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(renewed_ms_ago: i64, duration_secs: i32) -> (LeaseSpec, MicroTime) {
        let now = MicroTime::now();
        let renewed = MicroTime::from(now.0 - chrono_ms(renewed_ms_ago));
        (
            LeaseSpec {
                holder_identity: Some("a".into()),
                lease_duration_seconds: Some(duration_secs),
                renew_time: Some(renewed),
                ..Default::default()
            },
            now,
        )
    }

    fn chrono_ms(ms: i64) -> std::time::Duration {
        std::time::Duration::from_millis(ms as u64)
    }

    #[test]
    fn a_lease_expires_only_after_its_duration_since_the_last_renewal() {
        let cases = [
            ("fresh", 1_000, 15, false),
            ("just inside", 14_000, 15, false),
            ("past duration", 16_000, 15, true),
            ("zero duration", 10, 0, true),
        ];
        for (name, ago, dur, want) in cases {
            let (s, now) = spec(ago, dur);
            assert_eq!(expired(&s, now), want, "{name}");
        }
        assert!(expired(&LeaseSpec::default(), MicroTime::now()));
    }

    async fn client_for(server: &tug_apiserver::testing::TestServer) -> Client {
        let config = crate::Config::from_kubeconfig_file(&server.kubeconfig).expect("kubeconfig");
        Client::new(config).expect("client")
    }

    fn fast() -> LeaseTiming {
        LeaseTiming {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_millis(1500),
            retry_period: Duration::from_millis(200),
        }
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        for _ in 0..600 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for: {what}");
    }

    #[tokio::test]
    async fn only_one_of_two_candidates_leads_and_the_other_takes_over_after_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let server = tug_apiserver::testing::single(dir.path()).await;
        let client = client_for(&server).await;
        let a = LeaderElector::new(client.clone(), "kube-system", "sched", "a", fast());
        let b = LeaderElector::new(client.clone(), "kube-system", "sched", "b", fast());
        let (a_obs, b_obs) = (a.clone(), b.clone());
        let leading = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let max_leading = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let lead = |leading: Arc<std::sync::atomic::AtomicUsize>,
                    max: Arc<std::sync::atomic::AtomicUsize>| {
            move |token: CancellationToken| {
                let leading = leading.clone();
                let max = max.clone();
                async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    let n = leading.fetch_add(1, SeqCst) + 1;
                    max.fetch_max(n, SeqCst);
                    token.cancelled().await;
                    leading.fetch_sub(1, SeqCst);
                }
            }
        };
        let ta = tokio::spawn(a.run(lead(leading.clone(), max_leading.clone())));
        let tb = tokio::spawn(b.run(lead(leading.clone(), max_leading.clone())));
        eventually("someone leads", || a_obs.is_leader() || b_obs.is_leader()).await;
        // Several renew periods: the follower must never get in.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(a_obs.is_leader() ^ b_obs.is_leader());
        assert_eq!(max_leading.load(std::sync::atomic::Ordering::SeqCst), 1);
        let (winner_task, loser_task, winner, loser) = if a_obs.is_leader() {
            (ta, tb, a_obs.clone(), b_obs.clone())
        } else {
            (tb, ta, b_obs.clone(), a_obs.clone())
        };
        // The leader dies without releasing: the other takes over once the Lease expires.
        winner_task.abort();
        let _ = winner_task.await;
        assert!(
            !winner.is_leader(),
            "a dropped elector no longer claims to lead"
        );
        eventually("the other candidate takes over", || loser.is_leader()).await;
        let lease: Lease = Api::namespaced(client, "kube-system")
            .get("sched")
            .await
            .unwrap();
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(loser.identity()));
        assert_eq!(spec.lease_transitions, Some(1));
        loser_task.abort();
    }

    #[tokio::test]
    async fn a_leader_whose_work_returns_releases_the_lease_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let server = tug_apiserver::testing::single(dir.path()).await;
        let client = client_for(&server).await;
        let slow = LeaseTiming {
            lease_duration: Duration::from_secs(60),
            ..fast()
        };
        let a = LeaderElector::new(client.clone(), "default", "l", "a", slow);
        a.run(|_| async {}).await;
        let b = LeaderElector::new(client.clone(), "default", "l", "b", slow);
        let b_obs = b.clone();
        let tb = tokio::spawn(b.run(|t: CancellationToken| async move { t.cancelled().await }));
        // Well before the 60 s lease would expire.
        eventually("b leads after a released", || b_obs.is_leader()).await;
        tb.abort();
    }
}
