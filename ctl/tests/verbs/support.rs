//! A control plane for the tests (apiserver + controllers + a stand-in kubelet), and
//! `tug` run in-process.

use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tug_apiserver::testing::TestServer;
use tug_client::{ApiResource, Client, DeleteParams, DynamicApi, ListParams, PatchKind};

/// Background tasks aborted when the test ends, whatever way it ends.
pub struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

pub struct Cluster {
    pub server: TestServer,
    _tasks: Tasks,
}

impl Cluster {
    pub async fn shutdown(self) {
        let Cluster { server, _tasks } = self;
        drop(_tasks);
        server.shutdown().await;
    }
}

/// The apiserver and tug-controllers. With `kubelet`, a stand-in node agent binds
/// pending pods to the first schedulable Node, marks them Running and Ready, and
/// finishes graceful deletions: what the scheduler and a real agent would do, so
/// rollouts complete and drains end.
pub async fn cluster(dir: &Path, kubelet: bool) -> Cluster {
    let server = tug_apiserver::testing::single(dir).await;
    let config = tug_client::Config::from_kubeconfig_file(&server.kubeconfig).unwrap();
    let client = Client::new(config).unwrap();
    let mut controllers = tug_controllers::Config::new(client.clone());
    controllers.leader_elect = false;
    let mut tasks = vec![tokio::spawn(async move {
        if let Err(e) = tug_controllers::run(controllers).await {
            eprintln!("tug-controllers stopped: {e:#}");
        }
    })];
    if kubelet {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                if let Err(e) = fake_kubelet_pass(&c).await {
                    eprintln!("fake kubelet: {e}");
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }));
    }
    Cluster {
        server,
        _tasks: Tasks(tasks),
    }
}

fn pods(client: &Client, ns: Option<&str>) -> DynamicApi {
    DynamicApi::dynamic(
        client.clone(),
        ApiResource::new("", "v1", "Pod", "pods", true),
        ns,
    )
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

async fn fake_kubelet_pass(client: &Client) -> Result<(), tug_client::Error> {
    let nodes = DynamicApi::dynamic(
        client.clone(),
        ApiResource::new("", "v1", "Node", "nodes", false),
        None,
    )
    .list_all(&ListParams::default())
    .await?
    .items;
    let target = nodes
        .iter()
        .find(|n| n.pointer("/spec/unschedulable") != Some(&Value::Bool(true)))
        .map(|n| s(n, "/metadata/name").to_string());
    for pod in pods(client, None)
        .list_all(&ListParams::default())
        .await?
        .items
    {
        let ns = s(&pod, "/metadata/namespace");
        let name = s(&pod, "/metadata/name");
        let api = pods(client, Some(ns));
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            let _ = api.delete(name, &dp).await;
            continue;
        }
        if s(&pod, "/spec/nodeName").is_empty() {
            let Some(t) = &target else { continue };
            if api.bind(name, t).await.is_err() {
                continue;
            }
        }
        if s(&pod, "/status/phase") == "Running" {
            continue;
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let containers: Vec<Value> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": true,
                    "restartCount": 0, "started": true, "state": {"running": {"startedAt": now}}})
            })
            .collect();
        let status = json!({"status": {
            "phase": "Running", "podIP": "10.244.0.9", "hostIP": "192.168.0.1", "startTime": now,
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}
            ],
            "containerStatuses": containers
        }});
        let _ = api.patch_status(name, PatchKind::Merge, &status).await;
    }
    Ok(())
}

pub struct Output {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Runs `tug --kubeconfig <the test server's> ARGS...`.
pub async fn tug(server: &TestServer, args: &[&str]) -> Output {
    let kubeconfig = server.kubeconfig.to_string_lossy().into_owned();
    let mut full = vec!["--kubeconfig", kubeconfig.as_str()];
    full.extend_from_slice(args);
    run(&full).await
}

/// Runs `tug ARGS...` with no implied flags.
pub async fn run(args: &[&str]) -> Output {
    let mut full = vec!["tug"];
    full.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = tug_ctl::run(full, &mut out, &mut err).await;
    Output {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// Polls `tug ARGS` until `done(output)` holds (at most ~60 s), returning the last output.
pub async fn eventually(
    server: &TestServer,
    args: &[&str],
    done: impl Fn(&Output) -> bool,
) -> Output {
    let mut last = tug(server, args).await;
    for _ in 0..300 {
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = tug(server, args).await;
    }
    panic!(
        "tug {args:?} never reached the expected state; last out:\n{}\nerr:\n{}",
        last.out, last.err
    );
}

pub const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata:\n  name: NAME\n  labels: {kubernetes.io/hostname: NAME}\n";

pub fn node(name: &str) -> String {
    NODE.replace("NAME", name)
}
