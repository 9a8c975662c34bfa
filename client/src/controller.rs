//! The controller runner: workers take keys from a [`WorkQueue`] and reconcile them;
//! errors requeue with back-off, `Action` says when to look again.

use crate::queue::WorkQueue;
use crate::store::ObjectKey;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What a successful reconcile asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Look at the key again after this long even if nothing changes.
    Requeue(Duration),
    /// Only look again when a watched object changes.
    AwaitChange,
}

/// Runs `workers` workers on `queue` until it is shut down. Each key is reconciled by
/// one worker at a time; on `Err` the key is requeued with its rate-limited back-off,
/// on `Ok` its back-off is forgotten.
pub async fn run<T, F, Fut, E>(queue: WorkQueue<T>, reconcile: F, workers: usize)
where
    T: std::hash::Hash + Eq + Clone + Display + Send + Sync + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let reconcile = Arc::new(reconcile);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let reconcile = reconcile.clone();
        tasks.spawn(async move {
            while let Some(key) = queue.get().await {
                // A panicking reconcile must not kill the worker or leave the key
                // marked as processing forever.
                let fut = reconcile(key.clone());
                let result = tokio::spawn(fut).await;
                match result {
                    Ok(Ok(Action::Requeue(after))) => {
                        queue.forget(&key);
                        queue.add_after(key.clone(), after);
                    }
                    Ok(Ok(Action::AwaitChange)) => queue.forget(&key),
                    Ok(Err(e)) => {
                        tracing::warn!(%key, error = %e, retries = queue.num_requeues(&key), "reconcile failed; requeueing with back-off");
                        queue.add_rate_limited(key.clone());
                    }
                    Err(join) => {
                        tracing::error!(%key, error = %join, "reconcile panicked; requeueing with back-off");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// A convenience over [`run`] for the common shape: reconcile `ObjectKey`s.
pub async fn run_keys<F, Fut, E>(queue: WorkQueue<ObjectKey>, reconcile: F, workers: usize)
where
    F: Fn(ObjectKey) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    run(queue, reconcile, workers).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[tokio::test(start_paused = true)]
    async fn errors_back_off_and_requeue_asks_are_honoured() {
        let queue: WorkQueue<String> = WorkQueue::default();
        let calls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let runner = {
            let calls = calls.clone();
            tokio::spawn(run(
                queue.clone(),
                move |key: String| {
                    let calls = calls.clone();
                    async move {
                        let n = {
                            let mut c = calls.lock().unwrap();
                            let n = c.entry(key.clone()).or_insert(0);
                            *n += 1;
                            *n
                        };
                        match key.as_str() {
                            // Fails twice, then settles.
                            "flaky" if n < 3 => Err(format!("attempt {n} failed")),
                            "periodic" => Ok(Action::Requeue(Duration::from_secs(10))),
                            "panics" if n == 1 => panic!("bug"),
                            _ => Ok(Action::AwaitChange),
                        }
                    }
                },
                2,
            ))
        };
        for k in ["flaky", "periodic", "once", "panics"] {
            queue.add(k.to_string());
        }
        tokio::time::sleep(Duration::from_secs(35)).await;
        queue.shutdown();
        runner.await.unwrap();
        let calls = calls.lock().unwrap();
        assert_eq!(calls["flaky"], 3);
        assert_eq!(calls["once"], 1);
        assert_eq!(calls["panics"], 2);
        // At 0s, 10s, 20s, 30s.
        assert_eq!(calls["periodic"], 4);
        assert_eq!(queue.num_requeues(&"flaky".to_string()), 0);
    }
}
