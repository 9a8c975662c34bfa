//! [`RuncRuntime`]: Debian's `runc` CLI behind the same [`Runtime`] trait, the baseline
//! of the runtime benchmark. Basic on purpose: each container runs under a foreground
//! `runc run` child of this process (its exit status is the container's), logs are the
//! raw stdout/stderr bytes, and nothing survives this process (no re-adoption, no exec).

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::watch;

use crate::{
    spec, ContainerConfig, ContainerState, Error, ExecConfig, ExecProcess, Result, Runtime,
};

type Exits = Arc<Mutex<HashMap<String, watch::Receiver<Option<ContainerState>>>>>;

/// `runc` (the binary on PATH unless given) with its state under `runc_root`.
#[derive(Clone)]
pub struct RuncRuntime {
    runc: PathBuf,
    runc_root: PathBuf,
    bundles: PathBuf,
    exits: Exits,
}

impl RuncRuntime {
    /// Bundles go to `<root>/runc-bundles/`, runc's own state to `<root>/runc-state/`.
    pub fn new(root: PathBuf, runc: Option<PathBuf>) -> Result<Self> {
        let bundles = root.join("runc-bundles");
        let runc_root = root.join("runc-state");
        for d in [&bundles, &runc_root] {
            fs::create_dir_all(d).map_err(Error::io("creating", d))?;
        }
        Ok(RuncRuntime {
            runc: runc.unwrap_or_else(|| "runc".into()),
            runc_root,
            bundles,
            exits: Arc::default(),
        })
    }

    fn cmd(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.runc);
        c.arg("--root").arg(&self.runc_root);
        c
    }

    async fn runc_state(&self, id: &str) -> Result<Option<(String, i32)>> {
        let out = self
            .cmd()
            .arg("state")
            .arg(id)
            .stderr(Stdio::null())
            .output()
            .await
            .map_err(|e| Error::Runc(format!("running runc state: {e}")))?;
        if !out.status.success() {
            return Ok(None);
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::Runc(format!("runc state output: {e}")))?;
        Ok(Some((
            v["status"].as_str().unwrap_or_default().to_string(),
            v["pid"].as_i64().unwrap_or_default() as i32,
        )))
    }

    async fn run_impl(&self, cfg: ContainerConfig) -> Result<ContainerState> {
        let spec = spec::build_spec(&cfg)?;
        let bundle = self.bundles.join(&cfg.id);
        if bundle.exists() {
            return Err(Error::AlreadyExists(cfg.id.clone()));
        }
        fs::create_dir_all(&bundle).map_err(Error::io("creating", &bundle))?;
        spec.save(bundle.join("config.json"))
            .map_err(|e| Error::Runc(format!("writing the bundle: {e}")))?;
        if let Some(p) = cfg.log_path.parent() {
            fs::create_dir_all(p).map_err(Error::io("creating", p))?;
        }
        let log = fs::File::create(&cfg.log_path).map_err(Error::io("creating", &cfg.log_path))?;
        let log2 = log
            .try_clone()
            .map_err(Error::io("opening", &cfg.log_path))?;
        let mut child = self
            .cmd()
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(&cfg.id)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| Error::Runc(format!("spawning {}: {e}", self.runc.display())))?;
        let started_at = SystemTime::now();
        let (tx, rx) = watch::channel(None);
        self.exits
            .lock()
            .unwrap()
            .insert(cfg.id.clone(), rx.clone());
        tokio::spawn(async move {
            let status = child.wait().await;
            let exit_code = status.ok().and_then(|s| s.code()).unwrap_or(255);
            let _ = tx.send(Some(ContainerState::Exited {
                exit_code,
                oom_killed: false,
                signal: (exit_code > 128).then_some(exit_code - 128),
                started_at,
                finished_at: SystemTime::now(),
            }));
        });
        // Running once runc says so, or exited already.
        loop {
            if let Some(done) = rx.borrow().clone() {
                return Ok(done);
            }
            if let Some((status, pid)) = self.runc_state(&cfg.id).await? {
                if status == "running" {
                    return Ok(ContainerState::Running { pid, started_at });
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn wait_impl(&self, id: &str) -> Result<ContainerState> {
        let rx = self.exits.lock().unwrap().get(id).cloned();
        let Some(mut rx) = rx else {
            return Err(Error::NotFound(id.to_string()));
        };
        let done = rx
            .wait_for(|s| s.is_some())
            .await
            .map_err(|_| Error::Runc("the runc run task ended without a status".into()))?;
        Ok(done
            .clone()
            .unwrap_or(ContainerState::Unknown("no status".into())))
    }
}

impl Runtime for RuncRuntime {
    fn run(&self, cfg: ContainerConfig) -> BoxFuture<'_, Result<ContainerState>> {
        self.run_impl(cfg).boxed()
    }

    fn state(&self, id: &str) -> BoxFuture<'_, Result<ContainerState>> {
        let id = id.to_string();
        async move {
            let rx = self.exits.lock().unwrap().get(&id).cloned();
            if let Some(done) = rx.as_ref().and_then(|rx| rx.borrow().clone()) {
                return Ok(done);
            }
            match self.runc_state(&id).await? {
                Some((status, pid)) if status == "running" => Ok(ContainerState::Running {
                    pid,
                    started_at: SystemTime::now(),
                }),
                Some((status, _)) => Ok(ContainerState::Unknown(format!("runc status {status}"))),
                None => Err(Error::NotFound(id)),
            }
        }
        .boxed()
    }

    fn wait(&self, id: &str) -> BoxFuture<'_, Result<ContainerState>> {
        let id = id.to_string();
        async move { self.wait_impl(&id).await }.boxed()
    }

    fn kill(&self, id: &str, signal: i32) -> BoxFuture<'_, Result<()>> {
        let id = id.to_string();
        async move {
            // Fails when already stopped, which is fine.
            let _ = self
                .cmd()
                .arg("kill")
                .arg(&id)
                .arg(signal.to_string())
                .stderr(Stdio::null())
                .status()
                .await;
            Ok(())
        }
        .boxed()
    }

    fn remove(&self, id: &str) -> BoxFuture<'_, Result<()>> {
        let id = id.to_string();
        async move {
            let _ = self
                .cmd()
                .arg("delete")
                .arg("--force")
                .arg(&id)
                .stderr(Stdio::null())
                .status()
                .await;
            self.exits.lock().unwrap().remove(&id);
            let bundle = self.bundles.join(&id);
            match fs::remove_dir_all(&bundle) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("removing", bundle)(e)),
            }
        }
        .boxed()
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<(String, ContainerState)>>> {
        async move {
            let ids: Vec<String> = self.exits.lock().unwrap().keys().cloned().collect();
            let mut out = Vec::new();
            for id in ids {
                let state = self.state(&id).await?;
                out.push((id, state));
            }
            Ok(out)
        }
        .boxed()
    }

    fn exec(&self, id: &str, _cfg: ExecConfig) -> BoxFuture<'_, Result<ExecProcess>> {
        let id = id.to_string();
        async move {
            Err(Error::Exec {
                id,
                msg: "the runc baseline runtime does not implement exec".into(),
            })
        }
        .boxed()
    }
}
