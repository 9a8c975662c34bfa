//! `tug cluster lb` (hidden): the API endpoint of a cluster with several control planes,
//! like kind's external load balancer. It runs on the host, listens on the bridge's
//! address (.1:6443, in the API certificate) and passes each TCP connection through to the
//! first control plane that accepts it, round-robin; TLS stays end to end. The admin
//! kubeconfig and the workers' agents use it, so one stopped control plane does not cut
//! them off.

use anyhow::Context as _;
use clap::Args as ClapArgs;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Where to listen.
    #[arg(long)]
    pub listen: SocketAddr,
    /// A control plane's API address (repeatable).
    #[arg(long = "backend", required = true)]
    pub backends: Vec<SocketAddr>,
}

/// A control plane that does not accept within this long is skipped (a stopped node's
/// unplugged link answers nothing at all).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// A control plane that failed is tried last for this long, so that new connections do
/// not each wait for it.
const DOWN_FOR: Duration = Duration::from_secs(5);

/// The backends and, for each, until when it counts as down (ms since `epoch`).
struct Backends {
    addrs: Vec<SocketAddr>,
    down_until: Vec<AtomicU64>,
    epoch: Instant,
}

impl Backends {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Backends from `start` round-robin, those that recently failed last.
    fn order(&self, start: usize) -> Vec<usize> {
        let now = self.now_ms();
        let n = self.addrs.len();
        let (mut up, mut down): (Vec<usize>, Vec<usize>) = (0..n)
            .map(|i| (start + i) % n)
            .partition(|&i| self.down_until[i].load(Ordering::Relaxed) <= now);
        up.append(&mut down);
        up
    }

    fn mark_down(&self, i: usize) {
        let until = self.now_ms() + DOWN_FOR.as_millis() as u64;
        self.down_until[i].store(until, Ordering::Relaxed);
    }
}

pub async fn run(args: &Args) -> anyhow::Result<bool> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let backends = Arc::new(Backends {
        down_until: args.backends.iter().map(|_| AtomicU64::new(0)).collect(),
        addrs: args.backends.clone(),
        epoch: Instant::now(),
    });
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let backends = backends.clone();
        let start = next.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if let Err(e) = pass(client, &backends, start).await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}

async fn pass(mut client: TcpStream, backends: &Backends, start: usize) -> anyhow::Result<()> {
    let _ = client.set_nodelay(true);
    for i in backends.order(start) {
        let addr = backends.addrs[i];
        let r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
        if !matches!(r, Ok(Ok(_))) {
            backends.mark_down(i);
        }
        match r {
            Ok(Ok(mut server)) => {
                let _ = server.set_nodelay(true);
                tokio::io::copy_bidirectional(&mut client, &mut server).await?;
                return Ok(());
            }
            Ok(Err(e)) => tracing::debug!(%addr, error = %e, "control plane refused"),
            Err(_) => tracing::debug!(%addr, "control plane did not answer"),
        }
    }
    anyhow::bail!("no control plane accepted the connection")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_that_failed_is_tried_last_until_its_time_is_up() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b = Backends {
            addrs: vec![addr; 3],
            down_until: (0..3).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        };
        assert_eq!(b.order(1), [1, 2, 0]);
        b.mark_down(1);
        assert_eq!(b.order(1), [2, 0, 1]);
        assert_eq!(b.order(0), [0, 2, 1]);
        b.down_until[1].store(0, Ordering::Relaxed);
        assert_eq!(b.order(1), [1, 2, 0]);
    }
}
