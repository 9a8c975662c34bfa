//! `tug drain NODE`: cordon, then evict (or delete) the node's pods that a controller
//! will replace; unmanaged pods, DaemonSet pods and pods with emptyDir data need a flag,
//! as in kubectl.

use crate::apply::server_error;
use crate::cordon::set_unschedulable;
use crate::kinds;
use crate::rollout::parse_duration;
use crate::Ctx;
use serde_json::{json, Value};
use std::time::Duration;
use tug_client::{DeleteParams, DynamicApi, ListParams};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node to drain.
    pub node: String,
    /// Leave DaemonSet-managed pods alone (the DaemonSet would recreate them anyway).
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Also delete pods no controller manages (they are gone for good).
    #[arg(long)]
    pub force: bool,
    /// Also delete pods using emptyDir volumes (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Seconds each pod gets to stop; -1 uses the pod's own terminationGracePeriodSeconds.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..))]
    pub grace_period: i64,
    /// Give up after this long (`30s`, `5m`; 0 waits forever).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Only drain pods matching this label selector.
    #[arg(long = "pod-selector")]
    pub pod_selector: Option<String>,
}

/// Why a pod may or may not be removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delete,
    /// Skipped silently (mirror pods) or with a warning (DaemonSet pods with the flag).
    Skip(Option<&'static str>),
    /// Refused: the message names the flag that would allow it.
    Refuse(&'static str),
    /// Deleted, with a warning.
    DeleteWarn(&'static str),
}

const DAEMONSET_REFUSE: &str =
    "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)";
const DAEMONSET_WARN: &str = "ignoring DaemonSet-managed Pods";
const UNMANAGED_REFUSE: &str =
    "cannot delete Pods that declare no controller (use --force to override)";
const UNMANAGED_WARN: &str = "deleting Pods that declare no controller";
const EMPTYDIR_REFUSE: &str =
    "cannot delete Pods with local storage (use --delete-emptydir-data to override)";

/// kubectl's pod filters, in its order: mirror pods, finished pods, DaemonSet pods,
/// unmanaged pods, local storage.
pub fn verdict(pod: &Value, args: &Args) -> Verdict {
    let annotations = pod.pointer("/metadata/annotations");
    if annotations
        .and_then(|a| a.get("kubernetes.io/config.mirror"))
        .is_some()
    {
        return Verdict::Skip(None);
    }
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed") {
        return Verdict::Delete;
    }
    let controller = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| refs.iter().find(|r| r["controller"] == true));
    let mut warn = None;
    match controller {
        Some(c) if c["kind"] == "DaemonSet" => {
            return if args.ignore_daemonsets {
                Verdict::Skip(Some(DAEMONSET_WARN))
            } else {
                Verdict::Refuse(DAEMONSET_REFUSE)
            };
        }
        Some(_) => {}
        None if args.force => warn = Some(UNMANAGED_WARN),
        None => return Verdict::Refuse(UNMANAGED_REFUSE),
    }
    let empty_dir = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .is_some_and(|vs| vs.iter().any(|v| v.get("emptyDir").is_some()));
    if empty_dir && !args.delete_emptydir_data {
        return Verdict::Refuse(EMPTYDIR_REFUSE);
    }
    match warn {
        Some(w) => Verdict::DeleteWarn(w),
        None => Verdict::Delete,
    }
}

fn key(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        pod.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

pub async fn run(ctx: &mut Ctx<'_>, args: &Args) -> anyhow::Result<bool> {
    let node = &args.node;
    match set_unschedulable(ctx, node, true).await {
        Ok(line) => writeln!(ctx.out, "{line}")?,
        Err(message) => anyhow::bail!(message),
    }
    let pod_kind = kinds::resolve("pods")?;
    let all = DynamicApi::dynamic(ctx.client.clone(), pod_kind.api_resource(), None);
    let mut lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    if let Some(sel) = &args.pod_selector {
        lp = lp.labels(sel);
    }
    let pods = all
        .list_all(&lp)
        .await
        .map_err(|e| anyhow::anyhow!(server_error(&e)))?
        .items;

    // Decide for every pod first: nothing is deleted if any pod is refused.
    let mut refused: Vec<(&'static str, Vec<String>)> = Vec::new();
    let mut warnings: Vec<(&'static str, Vec<String>)> = Vec::new();
    let mut delete = Vec::new();
    let group = |list: &mut Vec<(&'static str, Vec<String>)>, msg, pod: &Value| match list
        .iter_mut()
        .find(|(m, _)| *m == msg)
    {
        Some((_, pods)) => pods.push(key(pod)),
        None => list.push((msg, vec![key(pod)])),
    };
    for pod in &pods {
        match verdict(pod, args) {
            Verdict::Delete => delete.push(pod.clone()),
            Verdict::DeleteWarn(w) => {
                group(&mut warnings, w, pod);
                delete.push(pod.clone());
            }
            Verdict::Skip(Some(w)) => group(&mut warnings, w, pod),
            Verdict::Skip(None) => {}
            Verdict::Refuse(r) => group(&mut refused, r, pod),
        }
    }
    if !refused.is_empty() {
        let reasons: Vec<String> = refused
            .iter()
            .map(|(msg, pods)| format!("{msg}: {}", pods.join(", ")))
            .collect();
        anyhow::bail!(
            "unable to drain node \"{node}\" (it stays cordoned): {}",
            reasons.join("; ")
        );
    }
    for (msg, pods) in &warnings {
        writeln!(ctx.err, "Warning: {msg}: {}", pods.join(", "))?;
    }

    let work = async {
        for pod in &delete {
            evict(ctx, pod, args.grace_period).await?;
        }
        wait_gone(ctx, &delete).await
    };
    if args.timeout.is_zero() {
        work.await?;
    } else {
        tokio::time::timeout(args.timeout, work).await.map_err(|_| {
            anyhow::anyhow!(
                "drain of node \"{node}\" did not complete within {:?}; it stays cordoned, run drain again to continue",
                args.timeout
            )
        })??;
    }
    writeln!(ctx.out, "node/{node} drained")?;
    Ok(true)
}

/// Evicts through the `eviction` subresource (which honours PodDisruptionBudgets);
/// a server without it gets a plain delete.
async fn evict(ctx: &mut Ctx<'_>, pod: &Value, grace: i64) -> anyhow::Result<()> {
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = kinds::resolve("pods")?;
    let api = DynamicApi::dynamic(ctx.client.clone(), kind.api_resource(), Some(ns));
    writeln!(ctx.out, "evicting pod {ns}/{name}")?;
    let mut delete_options = json!({});
    if grace >= 0 {
        delete_options["gracePeriodSeconds"] = json!(grace);
    }
    let eviction = json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns},
        "deleteOptions": delete_options,
    });
    let evicted: Result<Value, _> = api.create_subresource("eviction", name, &eviction).await;
    match evicted {
        Ok(_) => {}
        // No eviction subresource (404 for a pod that exists, 405): delete instead.
        Err(e) if matches!(e.code(), Some(404 | 405)) => {
            let mut dp = DeleteParams::default();
            if grace >= 0 {
                dp.grace_period_seconds = Some(grace);
            }
            match api.delete(name, &dp).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => anyhow::bail!("deleting pod {ns}/{name}: {}", server_error(&e)),
            }
        }
        Err(e) => anyhow::bail!("evicting pod {ns}/{name}: {}", server_error(&e)),
    }
    writeln!(ctx.out, "pod/{name} evicted")?;
    Ok(())
}

/// Waits until each pod is gone (or replaced by a new pod of the same name).
async fn wait_gone(ctx: &Ctx<'_>, pods: &[Value]) -> anyhow::Result<()> {
    let kind = kinds::resolve("pods")?;
    for pod in pods {
        let ns = pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default");
        let name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let uid = pod.pointer("/metadata/uid").cloned().unwrap_or_default();
        let api = DynamicApi::dynamic(ctx.client.clone(), kind.api_resource(), Some(ns));
        let mut delay = Duration::from_millis(100);
        loop {
            match api.get_opt(name).await {
                Ok(None) => break,
                Ok(Some(p)) if p.pointer("/metadata/uid") != Some(&uid) => break,
                Ok(Some(_)) => {}
                Err(e) => anyhow::bail!("waiting for pod {ns}/{name} to go: {}", server_error(&e)),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: Args,
    }

    fn args(flags: &[&str]) -> Args {
        let mut argv = vec!["drain", "n1"];
        argv.extend_from_slice(flags);
        T::parse_from(argv).args
    }

    #[test]
    fn pods_are_sorted_like_kubectl_drain() {
        let owned = |kind: &str| json!({"metadata": {"ownerReferences": [{"kind": kind, "name": "o", "uid": "u", "controller": true, "apiVersion": "apps/v1"}]}});
        let bare = json!({"metadata": {"name": "p"}});
        let done = json!({"metadata": {"name": "p"}, "status": {"phase": "Succeeded"}});
        let mirror = json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}});
        let mut scratch = owned("ReplicaSet");
        scratch["spec"] = json!({"volumes": [{"name": "s", "emptyDir": {}}]});
        let cases = [
            (owned("ReplicaSet"), vec![], Verdict::Delete),
            (
                owned("DaemonSet"),
                vec![],
                Verdict::Refuse(DAEMONSET_REFUSE),
            ),
            (
                owned("DaemonSet"),
                vec!["--ignore-daemonsets"],
                Verdict::Skip(Some(DAEMONSET_WARN)),
            ),
            (bare.clone(), vec![], Verdict::Refuse(UNMANAGED_REFUSE)),
            (bare, vec!["--force"], Verdict::DeleteWarn(UNMANAGED_WARN)),
            (done, vec![], Verdict::Delete),
            (mirror, vec![], Verdict::Skip(None)),
            (scratch.clone(), vec![], Verdict::Refuse(EMPTYDIR_REFUSE)),
            (scratch, vec!["--delete-emptydir-data"], Verdict::Delete),
        ];
        for (i, (pod, flags, want)) in cases.into_iter().enumerate() {
            assert_eq!(verdict(&pod, &args(&flags)), want, "case {i}");
        }
    }
}
