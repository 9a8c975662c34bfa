//! The logs/exec server's view of the agent: log files by pod and container, and exec
//! into running containers through the runtime.

use crate::agent::Ctx;
use crate::server::{BackendError, ExecRequest, ExecSession, PodBackend};
use futures::future::BoxFuture;
use futures::FutureExt;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Backend {
    pub ctx: Arc<Ctx>,
}

impl Backend {
    fn pod(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> Result<crate::agent::IndexedPod, BackendError> {
        let p = self.ctx.index.get(ns, pod).ok_or_else(|| {
            BackendError::NotFound(format!(
                "pod {pod:?} in namespace {ns:?} is not on this node"
            ))
        })?;
        if !p.containers.iter().any(|c| c == container) {
            return Err(BackendError::BadRequest(format!(
                "container {container} is not valid for pod {pod}"
            )));
        }
        Ok(p)
    }
}

/// The attempt numbers of a container's log files (`<n>.log`), ascending.
fn attempts(dir: &std::path::Path) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".log"))
                        .and_then(|n| n.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

impl PodBackend for Backend {
    fn log_path(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<PathBuf, BackendError> {
        let p = self.pod(ns, pod, container)?;
        let dir = self.ctx.pod_log_dir(ns, pod, &p.uid).join(container);
        let found = attempts(&dir);
        let pick = if previous {
            found.len().checked_sub(2).map(|i| found[i])
        } else {
            found.last().copied()
        };
        match pick {
            Some(n) => Ok(dir.join(format!("{n}.log"))),
            None if previous => Err(BackendError::BadRequest(format!(
                "previous terminated container {container:?} in pod {pod:?} not found"
            ))),
            None => Err(BackendError::BadRequest(format!(
                "container {container:?} in pod {pod:?} is waiting to start: ContainerCreating"
            ))),
        }
    }

    fn is_running(&self, ns: &str, pod: &str, container: &str) -> bool {
        self.ctx
            .index
            .get(ns, pod)
            .is_some_and(|p| p.running.contains_key(container))
    }

    fn exec(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        req: ExecRequest,
    ) -> BoxFuture<'_, Result<ExecSession, BackendError>> {
        let found = self.pod(ns, pod, container).and_then(|p| {
            p.running.get(container).cloned().ok_or_else(|| {
                BackendError::BadRequest(format!(
                    "unable to upgrade connection: container {container} in pod {pod} is not running"
                ))
            })
        });
        let runtime = self.ctx.runtime.clone();
        async move {
            let id = found?;
            let cfg = tug_runtime::ExecConfig {
                args: req.command,
                env: Vec::new(),
                tty: req.tty,
                stdin: req.stdin,
            };
            let mut process = runtime
                .exec(&id, cfg)
                .await
                .map_err(|e| BackendError::Internal(format!("exec in container {id}: {e}")))?;
            let stdin = process.stdin.take();
            let stdout = process.stdout.take();
            let stderr = process.stderr.take();
            let resize = req.tty.then(|| {
                let r = process.resizer();
                Box::new(move |cols: u16, rows: u16| {
                    r.resize(cols, rows)
                        .map_err(|e| std::io::Error::other(e.to_string()))
                }) as Box<dyn Fn(u16, u16) -> std::io::Result<()> + Send + Sync>
            });
            let exit = async move {
                process.wait().await.map_err(|e| {
                    BackendError::Internal(format!("waiting for the exec'd process: {e}"))
                })
            }
            .boxed();
            Ok(ExecSession {
                stdin,
                stdout,
                stderr,
                resize,
                exit,
            })
        }
        .boxed()
    }
}
