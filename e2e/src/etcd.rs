//! A 3-member etcd cluster on loopback (Debian's etcd-server), driven through etcd's own
//! gRPC KV API, as the yardstick for tug's store benchmark.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

use crate::ports::free_port;

pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

/// Running etcd members; dropping it kills them (they were started by us, by PID).
pub struct EtcdCluster {
    pub client_urls: Vec<String>,
    children: Vec<Child>,
}

/// Where the etcd binary is, if installed.
pub fn etcd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

impl EtcdCluster {
    /// Starts `members` etcd processes with data under `dir` and waits until a put succeeds.
    pub async fn start(binary: &Path, dir: &Path, members: usize) -> Result<EtcdCluster> {
        let peers: Vec<(String, u16, u16)> = (0..members)
            .map(|i| Ok((format!("m{i}"), free_port()?, free_port()?)))
            .collect::<Result<_>>()?;
        let initial = peers
            .iter()
            .map(|(n, _, p)| format!("{n}=http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut children = Vec::new();
        let mut client_urls = Vec::new();
        for (name, client, peer) in &peers {
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
            let child = Command::new(binary)
                .args(["--name", name])
                .arg("--data-dir")
                .arg(dir.join(name))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "tug-bench"])
                .args(["--log-level", "error"])
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            children.push(child);
            client_urls.push(client_url);
        }
        let cluster = EtcdCluster {
            client_urls,
            children,
        };
        cluster.wait_ready(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let mut ok = true;
            for url in &self.client_urls {
                let attempt = async {
                    let mut kv = self.kv(url).await?;
                    kv.put(pb::PutRequest {
                        key: b"/bench/ready".to_vec(),
                        value: b"1".to_vec(),
                        ..Default::default()
                    })
                    .await?;
                    anyhow::Ok(())
                };
                if attempt.await.is_err() {
                    ok = false;
                }
            }
            if ok {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("etcd cluster not ready after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A KV client on one member.
    pub async fn kv(
        &self,
        url: &str,
    ) -> Result<pb::kv_client::KvClient<tonic::transport::Channel>> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await?;
        Ok(pb::kv_client::KvClient::new(channel))
    }

    /// Stops every member (SIGKILL by PID) and waits for them.
    pub async fn stop(mut self) {
        for c in &mut self.children {
            let _ = c.kill().await;
        }
    }
}
