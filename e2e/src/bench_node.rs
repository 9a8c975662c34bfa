//! A one-node cluster for benchmarks: one control-plane replica process and one node
//! agent process (both the calling binary re-executed: `replica` and `agent`), the demo
//! images preloaded. [`BenchNode::stop`] deletes the pods, stops the agent, runs its
//! `--cleanup` and stops the control plane, whatever the benchmark did.

use crate::tugcp::ControlPlane;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tug_client::{Api, Client, DeleteParams};
use tug_proto::core::v1::{Node, Pod};

/// The hidden subcommand of the benchmark binary that runs `tug_agent::cli::main`.
pub const AGENT_SUBCOMMAND: &str = "agent";

/// What makes one benchmark's node distinct from another's on the same host.
pub struct NodeSpec<'a> {
    pub name: &'a str,
    pub pod_cidr: &'a str,
    pub bridge: &'a str,
}

pub struct BenchNode {
    cp: Option<ControlPlane>,
    pub client: Client,
    pub name: String,
    /// The agent's `--root-dir`.
    pub root: PathBuf,
    agent: Child,
    args: Vec<String>,
    // Declared last: removed after the agent and control plane are gone.
    work: tempfile::TempDir,
}

impl BenchNode {
    /// Starts the control plane and the agent and waits until the Node is Ready.
    pub async fn start(exe: &Path, node: NodeSpec<'_>) -> Result<BenchNode> {
        let cp = ControlPlane::start(exe, 1)
            .await
            .context("starting the control plane")?;
        let work = tempfile::Builder::new()
            .prefix("tug-bench-node-")
            .tempdir()?;
        let images = work.path().join("images");
        tug_image::demo::build_demo(&tug_image::demo::DemoOptions::new(&images))
            .context("building the demo images")?;
        let root = work.path().join("agent");
        let pki = cp.dir().join("pki");
        let args: Vec<String> = [
            exe.to_string_lossy().as_ref(),
            AGENT_SUBCOMMAND,
            "--server",
            &cp.urls()[0],
            "--pki-dir",
            &pki.to_string_lossy(),
            "--root-dir",
            &root.to_string_lossy(),
            "--node-name",
            node.name,
            "--node-ip",
            "127.0.0.1",
            "--pod-cidr",
            node.pod_cidr,
            "--bridge",
            node.bridge,
            "--listen",
            "127.0.0.1:0",
            "--preload-images",
            &images.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = std::fs::File::create(work.path().join("agent.log"))?;
        let agent = Command::new(&args[0])
            .args(&args[1..])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the agent")?;
        let client = cp.client(0)?;
        let mut bn = BenchNode {
            cp: Some(cp),
            client,
            name: node.name.to_string(),
            root,
            agent,
            args,
            work,
        };
        if let Err(e) = bn.wait_ready().await {
            bn.stop().await;
            return Err(e);
        }
        Ok(bn)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let start = Instant::now();
        loop {
            if let Some(status) = self.agent.try_wait()? {
                let log =
                    std::fs::read_to_string(self.work.path().join("agent.log")).unwrap_or_default();
                bail!("the agent exited ({status}):\n{log}");
            }
            if let Ok(Some(n)) = nodes.get_opt(&self.name).await {
                let ready = n.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                if ready {
                    println!("node ready after {:.2}s", start.elapsed().as_secs_f64());
                    return Ok(());
                }
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("the node did not become Ready in 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn agent_pid(&self) -> u32 {
        self.agent.id()
    }

    /// The agent's command line (the benchmark binary and its `agent` arguments).
    pub fn agent_args(&self) -> &[String] {
        &self.args
    }

    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// Deletes every pod, stops the agent, removes everything it made and stops the
    /// control plane. The cleanup's log goes to the agent's log so that a benchmark's
    /// result stays the last line printed.
    pub async fn stop(mut self) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        let grace = DeleteParams {
            grace_period_seconds: Some(1),
            ..Default::default()
        };
        let _ = api.delete_collection(&Default::default(), &grace).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match api.list(&Default::default()).await {
                Ok(l) if l.items.is_empty() => break,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let _ = self.agent.kill();
        let _ = self.agent.wait();
        let cleanup_log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.work.path().join("agent.log"))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let status = Command::new(&self.args[0])
            .args(&self.args[1..])
            .arg("--cleanup")
            .stdout(Stdio::null())
            .stderr(cleanup_log)
            .status();
        if !status.map(|s| s.success()).unwrap_or(false) {
            eprintln!(
                "warning: the agent's --cleanup failed; see {}",
                self.work.path().display()
            );
        }
        if let Some(cp) = self.cp.take() {
            cp.stop().await;
        }
    }
}

impl Drop for BenchNode {
    /// A benchmark cut short (an error before `stop`, Ctrl-C): at least the agent goes.
    fn drop(&mut self) {
        let _ = self.agent.kill();
        let _ = self.agent.wait();
    }
}
