//! The seed scenarios (issue 5) and the service checks (issue 6) against ONE real local
//! cluster (`tug cluster create --control-planes 3 --workers 2`, root only; skipped
//! otherwise), each from a manifest in `manifests/` (the seeds') or
//! `manifests/scenarios/`. One test runs them in order, as named steps; every step runs even when an earlier one failed, and the summary at the
//! end says which passed, which were skipped (with why) and which failed. The cluster is
//! deleted when the test ends, fails, panics or is terminated (SIGTERM from nextest).

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use serde_json::{json, Value};
use tug_client::{Api, Client, PatchKind};
use tug_e2e::cluster::{is_root, Cluster, Options};
use tug_proto::apps::v1::Deployment;

const NAME: &str = "e2e-scen";

/// How a step ended when it did not fail.
enum Outcome {
    Pass,
    /// Not applicable on this build, with the reason (e.g. issue 6 not wired yet).
    Skip(String),
}

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .join("manifests")
}

fn manifest(name: &str) -> String {
    manifests().join(name).display().to_string()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// `tug ARGS`, which must succeed; its stdout.
fn tug(c: &Cluster, args: &[&str]) -> Result<String> {
    let out = c.tug(args)?;
    ensure!(
        out.status.success(),
        "tug {}: {}",
        args.join(" "),
        text(&out)
    );
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// `tug get ARGS -o json`.
fn get_json(c: &Cluster, args: &[&str]) -> Result<Value> {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    let s = tug(c, &a)?;
    serde_json::from_str(&s).with_context(|| format!("parsing `tug {}`: {s}", a.join(" ")))
}

/// Live (not terminating) pods matching a label selector.
fn pods(c: &Cluster, selector: &str) -> Result<Vec<Value>> {
    let list = get_json(c, &["pods", "-l", selector])?;
    Ok(list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect())
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for k in path {
        cur = &cur[*k];
    }
    cur.as_str().unwrap_or("")
}

fn pod_name(p: &Value) -> String {
    s(p, &["metadata", "name"]).to_string()
}
fn pod_node(p: &Value) -> String {
    s(p, &["spec", "nodeName"]).to_string()
}
fn pod_ip(p: &Value) -> String {
    s(p, &["status", "podIP"]).to_string()
}
fn pod_phase(p: &Value) -> String {
    s(p, &["status", "phase"]).to_string()
}
fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Polls `check` every 500 ms until it yields a value; an error after `timeout` names
/// `what` and the last observation.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>>>,
{
    let start = Instant::now();
    let mut last;
    loop {
        match check().await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(seen)) => last = seen,
            Err(e) => last = format!("error: {e:#}"),
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until `n` live pods match `selector`, all Running and Ready.
async fn wait_ready_pods(
    c: &Cluster,
    selector: &str,
    n: usize,
    timeout: Duration,
) -> Result<Vec<Value>> {
    eventually(&format!("{n} ready pods {selector}"), timeout, || async {
        let ps = pods(c, selector)?;
        let ok = ps.len() == n
            && ps
                .iter()
                .all(|p| pod_phase(p) == "Running" && pod_ready(p) && !pod_ip(p).is_empty());
        let seen: Vec<String> = ps
            .iter()
            .map(|p| format!("{}@{} {}", pod_name(p), pod_node(p), pod_phase(p)))
            .collect();
        Ok(if ok { Ok(ps) } else { Err(format!("{seen:?}")) })
    })
    .await
}

/// Waits until a Deployment's status shows `n` updated, ready, available replicas and
/// nothing else.
async fn wait_deployment(c: &Cluster, name: &str, n: u64, timeout: Duration) -> Result<Value> {
    eventually(
        &format!("deployment {name} at {n} replicas"),
        timeout,
        || async {
            let d = get_json(c, &["deployment", name])?;
            let st = &d["status"];
            let num = |k: &str| st[k].as_u64().unwrap_or(0);
            let ok = d["metadata"]["generation"].as_u64() <= st["observedGeneration"].as_u64()
                && num("replicas") == n
                && num("updatedReplicas") == n
                && num("readyReplicas") == n
                && num("availableReplicas") == n;
            Ok(if ok { Ok(d) } else { Err(st.to_string()) })
        },
    )
    .await
}

/// Runs a command in a node's network namespace.
fn in_netns(netns: &str, cmd: &[&str]) -> Result<Output> {
    Command::new("ip")
        .args(["netns", "exec", netns])
        .args(cmd)
        .output()
        .with_context(|| format!("ip netns exec {netns} {}", cmd.join(" ")))
}

/// An HTTP GET from the host, or from a node's network namespace; the body on success.
/// curl when the machine has it, else busybox's wget (CI installs busybox-static).
fn http_get(netns: Option<&str>, url: &str) -> Result<String> {
    let curl = Path::new("/usr/bin/curl").exists();
    let mut cmd: Vec<&str> = Vec::new();
    if let Some(ns) = netns {
        cmd.extend(["ip", "netns", "exec", ns]);
    }
    if curl {
        cmd.extend(["curl", "-sS", "-m", "3", url]);
    } else {
        cmd.extend(["timeout", "5", "busybox", "wget", "-qO-", url]);
    }
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .with_context(|| cmd.join(" "))?;
    ensure!(out.status.success(), "{}: {}", cmd.join(" "), text(&out));
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// A GET from a node's network namespace.
fn curl_from(netns: &str, url: &str) -> Result<String> {
    http_get(Some(netns), url)
}

/// `tug exec POD -- CMD`: (success, stdout+stderr). For busybox's wget use `timeout 5
/// wget`, not `wget -T 5`: Debian's static busybox 1.35 wget segfaults (exit 139) with -T.
fn exec(c: &Cluster, pod: &str, cmd: &[&str]) -> Result<(bool, String)> {
    let mut a = vec!["exec", pod, "--"];
    a.extend_from_slice(cmd);
    let out = c.tug(&a)?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

fn netns_of<'a>(c: &'a Cluster, node: &str) -> Result<&'a str> {
    Ok(&c.node(node)?.netns)
}

/// What of issue 6 the worker node shows, for skip messages.
fn network_wiring(c: &Cluster) -> String {
    let Some(w) = c.workers().first().map(|w| w.netns.clone()) else {
        return "no worker".into();
    };
    let tables = in_netns(&w, &["nft", "list", "tables"])
        .map(|o| String::from_utf8_lossy(&o.stdout).replace('\n', "; "))
        .unwrap_or_default();
    let routes = in_netns(&w, &["ip", "route"])
        .map(|o| String::from_utf8_lossy(&o.stdout).replace('\n', "; "))
        .unwrap_or_default();
    format!("worker nft tables: [{tables}] routes: [{routes}]")
}

// ---------------------------------------------------------------------------------------
// The steps.

async fn greeter_job_completes(c: &Cluster) -> Result<Outcome> {
    tug(c, &["apply", "-f", &manifest("greeter-job.yaml")])?;
    eventually("job greeter Complete", Duration::from_secs(90), || async {
        let j = get_json(c, &["job", "greeter"])?;
        let done = j["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|x| x["type"] == "Complete" && x["status"] == "True")
        });
        Ok(if done {
            Ok(())
        } else {
            Err(j["status"].to_string())
        })
    })
    .await?;
    let log = tug(c, &["logs", "job/greeter"])?;
    ensure!(
        log.contains("Hello Kubernetes Beginners!"),
        "greeter's log lacks the greeting: {log:?}"
    );
    Ok(Outcome::Pass)
}

async fn static_site_on_two_workers(c: &Cluster) -> Result<Outcome> {
    tug(
        c,
        &["apply", "-f", &manifest("static-site-deployment.yaml")],
    )?;
    tug(c, &["apply", "-f", &manifest("web-service.yaml")])?;
    let ps = wait_ready_pods(c, "app=static-site", 2, Duration::from_secs(90)).await?;
    let nodes: BTreeSet<String> = ps.iter().map(pod_node).collect();
    let workers: BTreeSet<String> = c.workers().iter().map(|w| w.name.clone()).collect();
    ensure!(
        nodes == workers,
        "the two pods should be on the two workers {workers:?}, are on {nodes:?}"
    );
    let ips: BTreeSet<String> = ps.iter().map(pod_ip).collect();
    eventually(
        "Endpoints web list both pods",
        Duration::from_secs(30),
        || async {
            let ep = get_json(c, &["endpoints", "web"])?;
            let got: BTreeSet<String> = ep["subsets"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|ss| ss["addresses"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a["ip"].as_str().map(str::to_string))
                .collect();
            Ok(if got == ips {
                Ok(())
            } else {
                Err(format!("{ep}"))
            })
        },
    )
    .await?;
    // Each pod answers on its IP, from its own node (no cross-node routing needed).
    for p in &ps {
        let url = format!("http://{}:80/", pod_ip(p));
        let body = eventually(
            &format!("{url} answering"),
            Duration::from_secs(20),
            || async { Ok(curl_from(netns_of(c, &pod_node(p))?, &url).map_err(|e| e.to_string())) },
        )
        .await?;
        ensure!(
            body.contains("Hello from the static site!"),
            "{url}: unexpected page {body:?}"
        );
    }
    Ok(Outcome::Pass)
}

async fn toolbox_running(c: &Cluster) -> Result<Value> {
    tug(c, &["apply", "-f", &manifest("scenarios/toolbox.yaml")])?;
    eventually("pod toolbox Running", Duration::from_secs(60), || async {
        let p = get_json(c, &["pod", "toolbox"])?;
        Ok(if pod_phase(&p) == "Running" {
            Ok(p)
        } else {
            Err(p["status"].to_string())
        })
    })
    .await
}

async fn pod_reaches_pod_on_other_worker(c: &Cluster) -> Result<Outcome> {
    let tb = toolbox_running(c).await?;
    let site = pods(c, "app=static-site")?;
    let other = site
        .iter()
        .find(|p| pod_node(p) != pod_node(&tb))
        .ok_or_else(|| anyhow!("no static-site pod on a node other than toolbox's"))?;
    let url = format!("http://{}:80/", pod_ip(other));
    let start = Instant::now();
    loop {
        let (ok, out) = exec(c, "toolbox", &["timeout", "5", "wget", "-qO-", &url])?;
        if ok && out.contains("Hello from the static site!") {
            return Ok(Outcome::Pass);
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Ok(Outcome::Skip(format!(
                "toolbox on {} cannot reach {} on {} ({out:?}) — cross-node pod routes (issue 6) not wired? {}",
                pod_node(&tb),
                url,
                pod_node(other),
                network_wiring(c)
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn clusterip_by_name_reaches_every_backend(c: &Cluster) -> Result<Outcome> {
    toolbox_running(c).await?;
    let url = "http://web.default.svc.cluster.local/";
    let start = Instant::now();
    loop {
        let (ok, out) = exec(c, "toolbox", &["timeout", "5", "wget", "-qO-", url])?;
        if ok && out.contains("Hello from the static site!") {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Ok(Outcome::Skip(format!(
                "wget {url} from toolbox fails ({out:?}) — service proxy / cluster DNS (issue 6) not wired? {}",
                network_wiring(c)
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Many requests with a tag in the path; every backend's log must show some.
    for i in 0..20 {
        let u = format!("{url}rr-{i}");
        let (_, _) = exec(c, "toolbox", &["timeout", "5", "wget", "-qO-", &u])?;
    }
    for p in pods(c, "app=static-site")? {
        let log = tug(c, &["logs", &pod_name(&p)])?;
        ensure!(
            log.contains("/rr-"),
            "backend {} got none of 20 requests through the ClusterIP: {log}",
            pod_name(&p)
        );
    }
    Ok(Outcome::Pass)
}

async fn nodeport_answers_on_each_node(c: &Cluster) -> Result<Outcome> {
    let svc = get_json(c, &["service", "web"])?;
    let Some(port) = svc["spec"]["ports"][0]["nodePort"].as_u64() else {
        bail!("service web (type LoadBalancer) has no nodePort: {svc}");
    };
    let mut failures = Vec::new();
    for n in c.nodes() {
        let url = format!("http://{}:{port}/", n.ip);
        match http_get(None, &url) {
            Ok(body) if body.contains("Hello from the static site!") => {}
            Ok(body) => failures.push(format!("{} ({url}): {body:?}", n.name)),
            Err(e) => failures.push(format!("{} ({url}): {e:#}", n.name)),
        }
    }
    if failures.len() == c.nodes().len() {
        return Ok(Outcome::Skip(format!(
            "NodePort {port} answers on no node — service proxy (issue 6) not wired? {failures:?}"
        )));
    }
    ensure!(
        failures.is_empty(),
        "NodePort {port} fails on: {failures:#?}"
    );
    Ok(Outcome::Pass)
}

async fn headless_and_external_name_resolve(c: &Cluster) -> Result<Outcome> {
    toolbox_running(c).await?;
    tug(
        c,
        &[
            "apply",
            "-f",
            &manifest("scenarios/web-headless-service.yaml"),
        ],
    )?;
    tug(c, &["apply", "-f", &manifest("prod-external-service.yaml")])?;
    let ips: BTreeSet<String> = pods(c, "app=static-site")?.iter().map(pod_ip).collect();
    let name = "web-headless.default.svc.cluster.local";
    let start = Instant::now();
    loop {
        let (_, out) = exec(c, "toolbox", &["nslookup", name])?;
        if ips.iter().all(|ip| out.contains(ip.as_str())) {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Ok(Outcome::Skip(format!(
                "nslookup {name} does not list the pod IPs {ips:?}: {out:?} — cluster DNS (issue 6) not wired?"
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let ext = "my-service.prod.svc.cluster.local";
    let (_, out) = exec(c, "toolbox", &["nslookup", "-type=CNAME", ext])?;
    ensure!(
        out.contains("my.database.example.com"),
        "nslookup {ext} should give the CNAME my.database.example.com: {out:?}"
    );
    Ok(Outcome::Pass)
}

/// Sends `n` tagged requests to `url` from the toolbox pod (answers do not matter: the
/// backends' logs show where they went).
fn tagged_requests(c: &Cluster, url: &str, tag: &str, n: usize) -> Result<()> {
    for i in 0..n {
        let u = format!("{url}{tag}-{i}");
        exec(c, "toolbox", &["timeout", "5", "wget", "-qO-", &u])?;
    }
    Ok(())
}

fn log_has(c: &Cluster, pod: &str, needle: &str) -> Result<bool> {
    Ok(tug(c, &["logs", pod])?.contains(needle))
}

async fn unready_backend_gets_no_traffic(c: &Cluster) -> Result<Outcome> {
    toolbox_running(c).await?;
    tug(
        c,
        &["apply", "-f", &manifest("scenarios/readiness-gated.yaml")],
    )?;
    eventually(
        "Endpoints gated: gated-ready ready, gated-unready not ready",
        Duration::from_secs(60),
        || async {
            let ep = get_json(c, &["endpoints", "gated"])?;
            let names = |k: &str| -> Vec<String> {
                ep["subsets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|ss| ss[k].as_array().cloned().unwrap_or_default())
                    .map(|a| s(&a, &["targetRef", "name"]).to_string())
                    .collect()
            };
            let ok = names("addresses") == ["gated-ready"]
                && names("notReadyAddresses") == ["gated-unready"];
            Ok(if ok { Ok(()) } else { Err(ep.to_string()) })
        },
    )
    .await?;
    let url = "http://gated.default.svc.cluster.local/";
    let (ok, out) = exec(c, "toolbox", &["timeout", "5", "wget", "-qO-", url])?;
    if !ok {
        return Ok(Outcome::Skip(format!(
            "wget {url} from toolbox fails ({out:?}) — service proxy / cluster DNS (issue 6) not wired?"
        )));
    }
    tagged_requests(c, url, "gated", 10)?;
    ensure!(
        log_has(c, "gated-ready", "/gated-")?,
        "the ready backend got none of the requests"
    );
    ensure!(
        !log_has(c, "gated-unready", "/gated-")?,
        "the unready backend got traffic: {}",
        tug(c, &["logs", "gated-unready"])?
    );
    tug(
        c,
        &["delete", "-f", &manifest("scenarios/readiness-gated.yaml")],
    )?;
    Ok(Outcome::Pass)
}

async fn scaled_backends_join_and_leave_the_rotation(c: &Cluster) -> Result<Outcome> {
    toolbox_running(c).await?;
    let url = "http://web.default.svc.cluster.local/";
    let (ok, out) = exec(c, "toolbox", &["timeout", "5", "wget", "-qO-", url])?;
    if !ok {
        return Ok(Outcome::Skip(format!(
            "wget {url} from toolbox fails ({out:?}) — service proxy / cluster DNS (issue 6) not wired?"
        )));
    }
    let dep = "deployment/static-site-deployment";
    let before: BTreeSet<String> = pods(c, "app=static-site")?.iter().map(pod_name).collect();
    tug(c, &["scale", dep, "--replicas", "3"])?;
    let ps = wait_ready_pods(c, "app=static-site", 3, Duration::from_secs(60)).await?;
    let ready_at = Instant::now();
    let new = ps
        .iter()
        .map(pod_name)
        .find(|n| !before.contains(n))
        .ok_or_else(|| anyhow!("no new pod after scaling to 3"))?;
    // Requests until the new pod gets one; the time it took is printed, not asserted.
    let mut i = 0;
    let joined = eventually(
        &format!("new backend {new} in the rotation"),
        Duration::from_secs(30),
        || {
            i += 1;
            let u = format!("{url}join-{i}");
            let new = new.clone();
            async move {
                exec(c, "toolbox", &["timeout", "5", "wget", "-qO-", &u])?;
                Ok(if log_has(c, &new, "/join-")? {
                    Ok(ready_at.elapsed())
                } else {
                    Err("not yet".to_string())
                })
            }
        },
    )
    .await?;
    eprintln!(
        "    the new backend got traffic {:.1}s after it was Ready (goal: within 2 s)",
        joined.as_secs_f64()
    );
    // Scale down: the removed pod leaves the rotation (no request fails or hangs).
    tug(c, &["scale", dep, "--replicas", "2"])?;
    wait_ready_pods(c, "app=static-site", 2, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut failed = Vec::new();
    for i in 0..10 {
        let (ok, out) = exec(c, "toolbox", &["timeout", "5", "wget", "-qO-", url])?;
        if !ok {
            failed.push(format!("request {i}: {out}"));
        }
    }
    ensure!(
        failed.is_empty(),
        "requests failed 2 s after scaling down to 2: {failed:#?}"
    );
    Ok(Outcome::Pass)
}

async fn scale_roll_and_undo(c: &Cluster) -> Result<Outcome> {
    let d = "static-site-deployment";
    let dep = format!("deployment/{d}");
    for n in [5u64, 1] {
        tug(c, &["scale", &dep, "--replicas", &n.to_string()])?;
        wait_deployment(c, d, n, Duration::from_secs(90)).await?;
        wait_ready_pods(c, "app=static-site", n as usize, Duration::from_secs(60)).await?;
    }
    // Roll with 4 replicas: the default maxUnavailable 25% allows one pod down.
    tug(c, &["scale", &dep, "--replicas", "4"])?;
    wait_deployment(c, d, 4, Duration::from_secs(90)).await?;
    let (replicas, max_unavailable) = (4usize, 1usize);
    let api: Api<Deployment> = Api::namespaced(c.client()?, "default");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "site-container", "image": "hello", "imagePullPolicy": "Never",
        "env": [{"name": "PORT", "value": "80"}],
        "ports": [{"containerPort": 80}],
    }]}}}});
    api.patch(d, PatchKind::Merge, &patch)
        .await
        .context("patching the image")?;
    let start = Instant::now();
    let mut min_ready = usize::MAX;
    loop {
        let ps = pods(c, "app=static-site")?;
        let ready = ps.iter().filter(|p| pod_ready(p)).count();
        min_ready = min_ready.min(ready);
        let done = ps.len() == replicas
            && ps
                .iter()
                .all(|p| pod_ready(p) && p["spec"]["containers"][0]["image"] == "hello");
        if done {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(120),
            "rollout to hello not done after 120 s: {:?}",
            ps.iter()
                .map(|p| format!(
                    "{} {} ready={}",
                    pod_name(p),
                    p["spec"]["containers"][0]["image"],
                    pod_ready(p)
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_deployment(c, d, 4, Duration::from_secs(60)).await?;
    ensure!(
        min_ready >= replicas - max_unavailable,
        "only {min_ready} ready pods at one point of the rollout (want >= {})",
        replicas - max_unavailable
    );
    eprintln!("    rollout: at least {min_ready} of {replicas} pods ready throughout");
    tug(c, &["rollout", "undo", &dep])?;
    eventually(
        "rollout undo back to image site",
        Duration::from_secs(120),
        || async {
            let ps = pods(c, "app=static-site")?;
            let images: Vec<String> = ps
                .iter()
                .map(|p| format!("{}:{}", p["spec"]["containers"][0]["image"], pod_ready(p)))
                .collect();
            let ok = ps.len() == replicas
                && ps
                    .iter()
                    .all(|p| pod_ready(p) && p["spec"]["containers"][0]["image"] == "site");
            Ok(if ok {
                Ok(())
            } else {
                Err(format!("{images:?}"))
            })
        },
    )
    .await?;
    let dj = get_json(c, &["deployment", d])?;
    ensure!(
        dj["spec"]["template"]["spec"]["containers"][0]["image"] == "site",
        "the Deployment's template after undo: {}",
        dj["spec"]["template"]
    );
    // Back to the manifest's 2 for the later steps.
    tug(c, &["scale", &dep, "--replicas", "2"])?;
    wait_deployment(c, d, 2, Duration::from_secs(90)).await?;
    Ok(Outcome::Pass)
}

async fn memconsumer_oom_and_fit(c: &Cluster) -> Result<Outcome> {
    tug(
        c,
        &["apply", "-f", &manifest("scenarios/memconsumer-20mi.yaml")],
    )?;
    tug(
        c,
        &["apply", "-f", &manifest("scenarios/memconsumer-100mi.yaml")],
    )?;
    eventually(
        "memconsumer-20mi OOMKilled (137) and restarted",
        Duration::from_secs(90),
        || async {
            let p = get_json(c, &["pod", "memconsumer-20mi"])?;
            let cs = &p["status"]["containerStatuses"][0];
            let last = &cs["lastState"]["terminated"];
            let ok = cs["restartCount"].as_u64().unwrap_or(0) >= 1
                && last["reason"] == "OOMKilled"
                && last["exitCode"] == 137;
            Ok(if ok { Ok(()) } else { Err(cs.to_string()) })
        },
    )
    .await?;
    eventually(
        "memconsumer-100mi holding 50 MiB",
        Duration::from_secs(60),
        || async {
            let log = tug(c, &["logs", "memconsumer-100mi"])?;
            Ok(if log.contains("holding 50 MiB") {
                Ok(())
            } else {
                Err(log.lines().last().unwrap_or("").to_string())
            })
        },
    )
    .await?;
    let p = get_json(c, &["pod", "memconsumer-100mi"])?;
    let cs = &p["status"]["containerStatuses"][0];
    ensure!(
        pod_phase(&p) == "Running" && cs["restartCount"].as_u64() == Some(0),
        "memconsumer-100mi should run without restarts: {cs}"
    );
    tug(
        c,
        &[
            "delete",
            "-f",
            &manifest("scenarios/memconsumer-20mi.yaml"),
            "-f",
            &manifest("scenarios/memconsumer-100mi.yaml"),
        ],
    )?;
    Ok(Outcome::Pass)
}

/// One GET to the frontend pod (from its node): the visitor number.
fn visit(c: &Cluster, p: &Value) -> Result<Result<u64, String>> {
    let url = format!("http://{}:8080/", pod_ip(p));
    let body = match curl_from(netns_of(c, &pod_node(p))?, &url) {
        Ok(b) => b,
        Err(e) => return Ok(Err(e.to_string())),
    };
    Ok(body
        .split('#')
        .nth(1)
        .and_then(|r| r.trim().trim_end_matches('.').parse().ok())
        .ok_or(body))
}

async fn pageview_keeps_count_across_frontend_restart(c: &Cluster) -> Result<Outcome> {
    tug(c, &["apply", "-f", &manifest("scenarios/pageview.yaml")])?;
    wait_ready_pods(c, "app=pageview-backend", 1, Duration::from_secs(60)).await?;
    let front = wait_ready_pods(c, "app=pageview", 1, Duration::from_secs(60)).await?;
    let first = &front[0];
    let start = Instant::now();
    let n1 = loop {
        match visit(c, first)? {
            Ok(n) => break n,
            Err(seen) if start.elapsed() > Duration::from_secs(30) => {
                let log = tug(c, &["logs", &pod_name(first)]).unwrap_or_default();
                return Ok(Outcome::Skip(format!(
                    "the frontend does not count through its backend ({seen:?}; its log: {log:?}) — it finds pageview-backend by service name, so it needs cluster DNS and ClusterIP (issue 6)"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    let n2 = visit(c, first)?.map_err(|e| anyhow!("second visit: {e}"))?;
    ensure!(n2 == n1 + 1, "second visit #{n2} after #{n1}");
    tug(c, &["delete", "pod", &pod_name(first)])?;
    let replaced = eventually(
        "a new pageview frontend pod ready",
        Duration::from_secs(60),
        || async {
            let ps = pods(c, "app=pageview")?;
            let ok = ps.len() == 1
                && pod_name(&ps[0]) != pod_name(first)
                && pod_ready(&ps[0])
                && !pod_ip(&ps[0]).is_empty();
            Ok(if ok {
                Ok(ps[0].clone())
            } else {
                Err(format!("{:?}", ps.iter().map(pod_name).collect::<Vec<_>>()))
            })
        },
    )
    .await?;
    let n3 = eventually(
        "the new frontend answering",
        Duration::from_secs(30),
        || async { visit(c, &replaced) },
    )
    .await?;
    ensure!(
        n3 == n2 + 1,
        "the count restarted with the frontend: #{n3} after #{n2}"
    );
    Ok(Outcome::Pass)
}

/// (kind, namespace, name) of the objects bad input could have made.
fn inventory(c: &Cluster) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for kind in [
        "deployments",
        "configmaps",
        "namespaces",
        "pods",
        "services",
    ] {
        let list = get_json(c, &[kind, "-A"])?;
        for i in list["items"].as_array().into_iter().flatten() {
            out.insert(format!(
                "{kind} {}/{}",
                s(i, &["metadata", "namespace"]),
                s(i, &["metadata", "name"])
            ));
        }
    }
    Ok(out)
}

async fn bad_input_is_refused_clearly(c: &Cluster) -> Result<Outcome> {
    // (file, what the message must name besides the file)
    let cases = [
        ("scenarios/bad/unknown-field.yaml", "replicaz"),
        ("scenarios/bad/wrong-type.yaml", "replicas"),
        ("scenarios/bad/missing-namespace.yaml", "no-such-namespace"),
        ("scenarios/bad/invalid-yaml.yaml", "line"),
    ];
    let before = inventory(c)?;
    let mut problems = Vec::new();
    for (file, needle) in cases {
        let path = manifest(file);
        let out = c.tug(&["apply", "-f", &path])?;
        let msg = String::from_utf8_lossy(&out.stderr).to_string();
        eprintln!("    {file}: {}", msg.trim());
        if out.status.success() {
            problems.push(format!("{file} was accepted: {}", text(&out)));
            continue;
        }
        let base = Path::new(file).file_name().unwrap().to_string_lossy();
        if !msg.contains(base.as_ref()) {
            problems.push(format!("{file}: the message does not name the file: {msg}"));
        }
        if !msg.to_lowercase().contains(needle) {
            problems.push(format!(
                "{file}: the message does not name {needle:?}: {msg}"
            ));
        }
    }
    let after = inventory(c)?;
    if before != after {
        problems.push(format!(
            "bad input changed the cluster: new {:?}, gone {:?}",
            after.difference(&before).collect::<Vec<_>>(),
            before.difference(&after).collect::<Vec<_>>()
        ));
    }
    ensure!(problems.is_empty(), "{problems:#?}");
    Ok(Outcome::Pass)
}

async fn stopped_worker_pods_move(c: &Cluster) -> Result<Outcome> {
    tug(
        c,
        &[
            "apply",
            "-f",
            &manifest("scenarios/failover-deployment.yaml"),
        ],
    )?;
    let ps = wait_ready_pods(c, "app=failover", 2, Duration::from_secs(60)).await?;
    let victim = pod_node(&ps[0]);
    let survivor = c
        .workers()
        .iter()
        .map(|w| w.name.clone())
        .find(|w| *w != victim)
        .ok_or_else(|| anyhow!("no second worker"))?;
    eprintln!("    stopping worker {victim}");
    c.stop_node(&victim)?;
    let result = async {
        c.wait_node_ready(&victim, false, Duration::from_secs(60))
            .await?;
        eventually(
            &format!("both failover pods Running on {survivor}"),
            Duration::from_secs(90),
            || async {
                let ps = pods(c, "app=failover")?;
                let ok = ps.len() == 2
                    && ps
                        .iter()
                        .all(|p| pod_node(p) == survivor && pod_phase(p) == "Running");
                let seen: Vec<String> = ps
                    .iter()
                    .map(|p| format!("{}@{} {}", pod_name(p), pod_node(p), pod_phase(p)))
                    .collect();
                Ok(if ok { Ok(()) } else { Err(format!("{seen:?}")) })
            },
        )
        .await
    }
    .await;
    eprintln!("    starting worker {victim} again");
    c.start_node(&victim)?;
    c.wait_node_ready(&victim, true, Duration::from_secs(60))
        .await?;
    result?;
    tug(
        c,
        &[
            "delete",
            "-f",
            &manifest("scenarios/failover-deployment.yaml"),
        ],
    )?;
    Ok(Outcome::Pass)
}

/// A metric of one control plane's apiserver, read through its own kubeconfig.
async fn metric(c: &Cluster, node: &str, name: &str) -> Result<u64> {
    let kc = c
        .node_kubeconfig(node)
        .ok_or_else(|| anyhow!("{node} is not a control plane"))?;
    let client = Client::new(tug_client::Config::from_kubeconfig_file(&kc)?)?;
    let body = tokio::time::timeout(Duration::from_secs(3), client.raw_get("/metrics", None))
        .await
        .map_err(|_| anyhow!("/metrics of {node} timed out"))??;
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
        .ok_or_else(|| anyhow!("no metric {name} on {node}"))
}

async fn raft_leader_stop_keeps_cluster_working(c: &Cluster) -> Result<Outcome> {
    let cps: Vec<String> = c.control_planes().iter().map(|n| n.name.clone()).collect();
    let leader = eventually("a raft leader", Duration::from_secs(30), || async {
        for n in &cps {
            if metric(c, n, "tug_raft_is_leader ").await? == 1 {
                return Ok(Ok(n.clone()));
            }
        }
        Ok(Err("no replica says it leads".into()))
    })
    .await?;
    eprintln!("    raft leader is {leader}; stopping it");
    c.stop_node(&leader)?;
    let result = async {
        // Writes and scheduling go on: a namespace and a Deployment whose pod is bound.
        // A write in flight while the survivors elect a new leader may time out (as in
        // Kubernetes, the client retries); a retry of a write that did land finds it.
        let stopped = Instant::now();
        for args in [
            &["create", "namespace", "after-leader-stop"][..],
            // Its image may not be pullable here: being bound to a node is what counts.
            &[
                "create",
                "deployment",
                "after-leader-stop",
                "--image=hello",
                "-n",
                "after-leader-stop",
            ][..],
        ] {
            eventually(
                &format!("`tug {}` accepted", args.join(" ")),
                Duration::from_secs(60),
                || async {
                    let out = c.tug(args)?;
                    let t = text(&out);
                    Ok(if out.status.success() || t.contains("already exists") {
                        Ok(())
                    } else {
                        eprintln!(
                            "    retrying `tug {}`: {}",
                            args.join(" "),
                            t.replace('\n', " | ")
                        );
                        Err(t)
                    })
                },
            )
            .await?;
            eprintln!(
                "    `tug {}` accepted {:.1}s after the stop",
                args.join(" "),
                stopped.elapsed().as_secs_f64()
            );
        }
        eventually(
            "the new Deployment's pod scheduled",
            Duration::from_secs(120),
            || async {
                let list = get_json(c, &["pods", "-n", "after-leader-stop"])?;
                let items = list["items"].as_array().cloned().unwrap_or_default();
                let bound = items.iter().any(|p| !pod_node(p).is_empty());
                Ok(if bound {
                    Ok(())
                } else {
                    Err(format!("{} pods, none bound", items.len()))
                })
            },
        )
        .await?;
        let mut new_leader = String::new();
        for n in cps.iter().filter(|n| **n != leader) {
            if metric(c, n, "tug_raft_is_leader ").await.unwrap_or(0) == 1 {
                new_leader = n.clone();
            }
        }
        ensure!(
            !new_leader.is_empty(),
            "no new raft leader among the others"
        );
        eprintln!("    new raft leader: {new_leader}");
        metric(c, &new_leader, "tug_store_revision ").await
    }
    .await;
    eprintln!("    starting {leader} again");
    c.start_node(&leader)?;
    let revision = result?;
    c.wait_node_ready(&leader, true, Duration::from_secs(60))
        .await?;
    eventually(
        &format!("{leader} catching up to revision {revision}"),
        Duration::from_secs(60),
        || async {
            let r = metric(c, &leader, "tug_store_revision ").await?;
            Ok(if r >= revision {
                Ok(())
            } else {
                Err(format!("at {r}"))
            })
        },
    )
    .await?;
    // Its own apiserver serves what was written while it was away.
    let kc = c.node_kubeconfig(&leader).unwrap();
    let out = Command::new(c.tug_binary())
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["get", "namespace", "after-leader-stop"])
        .output()?;
    ensure!(
        out.status.success(),
        "{leader}'s apiserver after catching up: {}",
        text(&out)
    );
    tug(c, &["delete", "namespace", "after-leader-stop"])?;
    Ok(Outcome::Pass)
}

/// What of the cluster the host still shows beyond [`tug_e2e::cluster::Footprint::leftovers`]: pod network
/// namespaces (`tug-<node>_<id>`), nftables tables and routes naming the cluster or its
/// bridge.
fn host_leftovers(bridge: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().to_string();
        if n.contains(NAME) {
            out.push(format!("network namespace {n}"));
        }
    }
    let lines = |cmd: &[&str]| -> Vec<String> {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    for l in lines(&["nft", "list", "tables"]) {
        if l.contains(NAME) {
            out.push(format!("nftables {l}"));
        }
    }
    for l in lines(&["ip", "route"]) {
        if l.split_whitespace().any(|w| w == bridge) {
            out.push(format!("route {l}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------

async fn run_steps(c: &Cluster, results: &mut Vec<(String, Result<Outcome>, Duration)>) {
    macro_rules! step {
        ($name:expr, $f:expr) => {{
            eprintln!("=== {}", $name);
            let t = Instant::now();
            let r = $f.await;
            let d = t.elapsed();
            match &r {
                Ok(Outcome::Pass) => eprintln!("--- PASS {} ({:.1}s)", $name, d.as_secs_f64()),
                Ok(Outcome::Skip(why)) => eprintln!("--- SKIP {}: {why}", $name),
                Err(e) => eprintln!("--- FAIL {}: {e:#}", $name),
            }
            results.push(($name.to_string(), r, d));
        }};
    }
    step!(
        "1 greeter Job completes with the greeting",
        greeter_job_completes(c)
    );
    step!(
        "2 static site: two pods on two workers, Endpoints, pod IPs answer",
        static_site_on_two_workers(c)
    );
    step!(
        "6a pod on one worker reaches a pod on the other by IP",
        pod_reaches_pod_on_other_worker(c)
    );
    step!(
        "6b web.default.svc.cluster.local answers and reaches every backend",
        clusterip_by_name_reaches_every_backend(c)
    );
    step!(
        "6c NodePort answers on each node IP",
        nodeport_answers_on_each_node(c)
    );
    step!(
        "6d headless and ExternalName resolve",
        headless_and_external_name_resolve(c)
    );
    step!(
        "6e an unready backend gets no traffic",
        unready_backend_gets_no_traffic(c)
    );
    step!(
        "6f a scaled-up backend joins the rotation, a scaled-down one leaves it",
        scaled_backends_join_and_leave_the_rotation(c)
    );
    step!(
        "3 scale 2->5->1, rolling update keeps replicas-maxUnavailable ready, undo",
        scale_roll_and_undo(c)
    );
    step!(
        "4 memconsumer OOMKilled at 20Mi, runs at 100Mi",
        memconsumer_oom_and_fit(c)
    );
    step!(
        "5 pageview keeps its count when the frontend pod is replaced",
        pageview_keeps_count_across_frontend_restart(c)
    );
    step!(
        "8 bad input fails clearly and changes nothing",
        bad_input_is_refused_clearly(c)
    );
    step!(
        "6 a stopped worker goes NotReady and its pods move",
        stopped_worker_pods_move(c)
    );
    step!(
        "7 the raft leader's node stops: writes and scheduling go on, it catches up",
        raft_leader_stop_keeps_cluster_working(c)
    );
}

#[test]
fn the_seed_scenarios_pass_on_a_three_plus_two_cluster() {
    if !is_root() {
        eprintln!("skipping: `tug cluster` needs root");
        return;
    }
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut opts = Options::new(NAME, 3, 2);
    // Agents renew their Lease every 10 s: a 15 s grace makes only a stopped node
    // NotReady, and soon.
    opts.controllers_args = vec![
        "--node-monitor-grace-period=15s".into(),
        "--node-monitor-period=1s".into(),
        "--pod-eviction-timeout=10s".into(),
    ];
    opts.wait = Duration::from_secs(180);
    let cluster = Cluster::create(&opts).expect("creating the 3+2 cluster");
    eprintln!(
        "cluster {NAME} ready after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let mut results = Vec::new();
    // A SIGTERM (nextest's timeout) ends the steps early so the cluster is still deleted.
    let terminated = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = run_steps(&cluster, &mut results) => false,
            _ = term.recv() => true,
        }
    });
    let footprint = cluster.footprint();
    let bridge = cluster.bridge().to_string();
    let t = Instant::now();
    let deleted = cluster.delete();
    let mut left = footprint.leftovers();
    left.extend(host_leftovers(&bridge));
    let delete_step: Result<Outcome> = match deleted {
        Err(e) => Err(anyhow!("tug cluster delete: {e}")),
        Ok(()) if !left.is_empty() => Err(anyhow!("left behind: {left:#?}")),
        Ok(()) => Ok(Outcome::Pass),
    };
    results.push((
        "9 tug cluster delete leaves nothing behind".into(),
        delete_step,
        t.elapsed(),
    ));

    eprintln!(
        "\nsummary ({:.0}s in all):",
        started.elapsed().as_secs_f64()
    );
    let mut failed = Vec::new();
    for (name, r, d) in &results {
        match r {
            Ok(Outcome::Pass) => eprintln!("  PASS {name} ({:.1}s)", d.as_secs_f64()),
            Ok(Outcome::Skip(why)) => eprintln!("  SKIP {name}: {why}"),
            Err(e) => {
                eprintln!("  FAIL {name}: {e:#}");
                failed.push(name.clone());
            }
        }
    }
    assert!(!terminated, "terminated (SIGTERM) before all steps ran");
    assert!(failed.is_empty(), "failed steps: {failed:#?}");
}
