//! A bounded closed-loop load generator: N clients issue operations back to back until a
//! fixed total is done, and the latencies become throughput and percentiles.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub clients: usize,
    pub ops: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl Report {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "clients={:<3} ops={:<6} errors={:<4} {:>9.0} ops/s  p50={:>7.2}ms  p99={:>7.2}ms",
            self.clients,
            self.ops,
            self.errors,
            self.ops_per_sec(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
        )
    }
}

/// Runs `total` operations spread over `clients` concurrent loops. `op(i)` performs the
/// i-th operation (0-based, unique across clients). Errors are counted, not retried;
/// the run also stops at `deadline` so a wedged system cannot hang the benchmark.
pub async fn run<F, Fut, E>(clients: usize, total: u64, deadline: Duration, op: F) -> Report
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    run_clients(clients, total, deadline, move |_, i| op(i)).await
}

/// Like [`run`], but `op(client, i)` also learns which client loop (0..clients) runs it,
/// so a client can stick to one server the way a real client stays on its connection.
pub async fn run_clients<F, Fut, E>(clients: usize, total: u64, deadline: Duration, op: F) -> Report
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    // A JoinSet aborts the client loops if this future is dropped (e.g. on Ctrl-C).
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (op, next, errors) = (op.clone(), next.clone(), errors.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || start.elapsed() > deadline {
                    break;
                }
                let t = Instant::now();
                match op(client, i).await {
                    Ok(()) => latencies.push(t.elapsed()),
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("  op {i} failed: {e}");
                        }
                    }
                }
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.unwrap_or_default());
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    Report {
        clients,
        ops: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    }
}

/// The `q` quantile of sorted samples (nearest rank); zero when there are none.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_uses_nearest_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let samples: Vec<Duration> = (1..=100).map(ms).collect();
        let cases = [(0.50, ms(50)), (0.99, ms(99)), (1.0, ms(100)), (0.0, ms(1))];
        for (q, want) in cases {
            assert_eq!(percentile(&samples, q), want, "q={q}");
        }
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[tokio::test]
    async fn run_counts_every_operation_once_and_errors_separately() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let report = run(4, 40, Duration::from_secs(60), move |i| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(i);
                if i % 10 == 0 {
                    Err("boom")
                } else {
                    Ok(())
                }
            }
        })
        .await;
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        assert_eq!(report.ops, 36);
        assert_eq!(report.errors, 4);
    }

    #[tokio::test]
    async fn run_clients_tells_each_operation_its_client() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let report = run_clients(3, 30, Duration::from_secs(60), move |c, i| {
            s.lock().unwrap().push((c, i));
            async { Ok::<(), &str>(()) }
        })
        .await;
        assert_eq!(report.ops, 30);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 30);
        assert!(seen.iter().all(|(c, _)| *c < 3), "{seen:?}");
    }

    #[tokio::test]
    async fn dropping_a_run_stops_its_client_loops() {
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let run = run(2, u64::MAX, Duration::from_secs(60), move |_| {
            c.fetch_add(1, Ordering::Relaxed);
            async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok::<(), &str>(())
            }
        });
        let _ = tokio::time::timeout(Duration::from_millis(50), run).await;
        let after_drop = calls.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(calls.load(Ordering::Relaxed), after_drop);
    }
}
