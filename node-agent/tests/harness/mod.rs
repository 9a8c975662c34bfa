//! A real apiserver on loopback plus a real agent on this host: its own bridge, pod
//! CIDR, cgroup root and state dir per test (tests run in parallel processes), and the
//! demo images imported. Dropping a [`TestNode`] deletes its pods, stops the agent and
//! removes everything it made, also when the test failed.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tug_agent::agent::{Agent, Config, Options};
use tug_agent::node::NodeInfo;
use tug_apiserver::testing::TestServer;
use tug_client::{Api, Client, DeleteParams};
use tug_proto::core::v1::Pod;

/// The demo images, built once per machine into target/ and shared by all tests (test
/// processes run in parallel: a file lock serializes the build).
pub fn demo_images() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tug-demo-images");
    std::fs::create_dir_all(&dir).expect("creating the demo images dir");
    let lock = std::fs::File::create(dir.join(".lock")).expect("lock file");
    let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("locking the demo images dir");
    tug_image::demo::build_demo(&tug_image::demo::DemoOptions::new(&dir))
        .expect("building the demo images");
    dir
}

pub struct TestNode {
    pub server: Option<TestServer>,
    pub agent: Option<Agent>,
    pub client: Client,
    pub name: String,
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub bridge: String,
    pub pod_cidr: String,
    pub cgroup_root: String,
    pub opts: Options,
}

fn unique() -> u32 {
    // Distinct per test process: pid and time.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    (std::process::id() ^ t) & 0xfff
}

pub fn fast_options() -> Options {
    Options {
        backoff_base: Duration::from_millis(500),
        backoff_max: Duration::from_secs(4),
        lease_renew: Duration::from_secs(2),
        status_update: Duration::from_secs(2),
        resync: Duration::from_secs(2),
        probe_kill_grace_secs: 2,
        ..Options::default()
    }
}

impl TestNode {
    pub async fn start() -> TestNode {
        Self::start_with(fast_options()).await
    }

    pub async fn start_with(opts: Options) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = tug_apiserver::testing::single(&dir.path().join("api")).await;
        let client =
            Client::new(tug_client::Config::from_kubeconfig_file(&server.kubeconfig).unwrap())
                .unwrap();
        let id = unique();
        let name = format!("agent-{id:03x}");
        let mut node = TestNode {
            server: Some(server),
            agent: None,
            client,
            name,
            root: dir.path().join("agent"),
            dir,
            bridge: format!("tugt{id:03x}"),
            // 10.200.0.0/24 .. 10.215.255.0/24: one /24 per test process.
            pod_cidr: format!("10.{}.{}.0/24", 200 + (id >> 8), id & 0xff),
            cgroup_root: format!("tug-test-{id:03x}"),
            opts,
        };
        node.start_agent().await;
        node
    }

    pub async fn start_agent(&mut self) {
        let server = self.server.as_ref().expect("server");
        let certs = tug_agent::identity::ensure(
            &server.pki_dir,
            &self.root,
            &self.name,
            "127.0.0.1".parse().unwrap(),
            &self.name,
        )
        .expect("node certificates");
        let client =
            Client::new(tug_agent::identity::client_config(&server.url, &certs).unwrap()).unwrap();
        let tls = tug_agent::server::tls_config(&certs.serving, &certs.ca_pem).unwrap();
        let config = Config {
            node: NodeInfo {
                name: self.name.clone(),
                ip: "127.0.0.1".into(),
                hostname: self.name.clone(),
                port: 0,
                pod_cidr: Some(self.pod_cidr.clone()),
                labels: Default::default(),
                taints: vec![],
                max_pods: 110,
            },
            client,
            root: self.root.clone(),
            cgroup_root: self.cgroup_root.clone(),
            bridge: self.bridge.clone(),
            shim: tug_runtime::ShimCommand {
                program: PathBuf::from(env!("CARGO_BIN_EXE_tug-agent")),
                args: vec!["shim".into()],
            },
            server: Some(("127.0.0.1:0".parse().unwrap(), tls)),
            preload_images: std::fs::read_dir(demo_images())
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "tar"))
                .collect(),
            opts: self.opts.clone(),
        };
        self.agent = Some(Agent::start(config).await.expect("agent starts"));
    }

    /// Kills the agent's tasks as `kill -9` would: containers keep running.
    pub fn crash_agent(&mut self) {
        self.agent = None;
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a pod bound to this node from a JSON spec.
    pub async fn create_pod(&self, name: &str, spec: Value) -> Pod {
        let mut spec = spec;
        spec["nodeName"] = json!(self.name);
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }))
        .unwrap();
        self.pods().create(&pod).await.expect("create pod")
    }

    /// Creates a ConfigMap in `default`; returns the API to change it.
    pub async fn create_config_map(
        &self,
        name: &str,
        data: Value,
    ) -> Api<tug_proto::core::v1::ConfigMap> {
        let cms: Api<tug_proto::core::v1::ConfigMap> =
            Api::namespaced(self.client.clone(), "default");
        let cm = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"},
            "data": data,
        }))
        .expect("a valid ConfigMap");
        cms.create(&cm).await.expect("create ConfigMap");
        cms
    }

    /// Polls the pod until `check` says yes (30 s by default), printing its status on timeout.
    pub async fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
        self.wait_pod_for(name, what, Duration::from_secs(60), check)
            .await
    }

    pub async fn wait_pod_for(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Pod) -> bool,
    ) -> Pod {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = None;
        loop {
            // A busy machine can fail one request (timeout, reset): poll on.
            match self.pods().get_opt(name).await {
                Ok(Some(p)) if check(&p) => return p,
                Ok(pod) => last = pod,
                Err(e) => eprintln!("get pod {name}: {e} (retrying)"),
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "pod {name}: timed out waiting for {what}; status: {}",
                    serde_json::to_string_pretty(&last.map(|p| p.status)).unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_gone(&self, name: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !matches!(self.pods().get_opt(name).await, Ok(None)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "pod {name} was not removed"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn delete_pod(&self, name: &str, grace: i64) {
        let dp = DeleteParams {
            grace_period_seconds: Some(grace),
            ..Default::default()
        };
        let _ = self.pods().delete(name, &dp).await;
    }

    /// Deletes every pod and waits until the agent removed them, then stops everything.
    pub async fn shutdown(mut self) {
        self.cleanup().await;
    }

    async fn cleanup(&mut self) {
        if self.agent.is_none() && self.server.is_some() {
            // Restart the agent so it can clean up what a crashed one left.
            self.start_agent().await;
        }
        if let Ok(list) = self.pods().list(&Default::default()).await {
            for p in list.items {
                let name = p.metadata.name.clone().unwrap_or_default();
                self.delete_pod(&name, 1).await;
            }
            for p in self
                .pods()
                .list(&Default::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
            {
                let name = p.metadata.name.clone().unwrap_or_default();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while self.pods().get_opt(&name).await.ok().flatten().is_some()
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        if let Some(agent) = self.agent.take() {
            let net = agent.ctx.net.clone();
            drop(agent);
            let _ = net.cleanup_all();
        }
        force_cleanup(&self.root, &self.cgroup_root);
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// Last resort when a test failed half-way: kill processes of the node's cgroups,
/// unmount everything under its root, remove its cgroups.
pub fn force_cleanup(root: &Path, cgroup_root: &str) {
    for ctrl in [
        "memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio", "systemd",
        "unified",
    ] {
        let base = Path::new("/sys/fs/cgroup").join(ctrl).join(cgroup_root);
        if !base.exists() {
            continue;
        }
        kill_and_remove_cgroup(&base);
    }
    tug_agent::agent::unmount_under(root);
}

fn kill_and_remove_cgroup(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                kill_and_remove_cgroup(&e.path());
            }
        }
    }
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if self.server.is_none() {
            return;
        }
        // A failed test: clean up synchronously on a fresh runtime thread.
        let agent = self.agent.take();
        if let Some(agent) = agent {
            let ctx = agent.ctx.clone();
            drop(agent);
            let _ = ctx.net.cleanup_all();
        }
        force_cleanup(&self.root, &self.cgroup_root);
    }
}

/// GET http://ip:port/ from this host (pod IPs are reachable over the node bridge).
pub async fn http_get(addr: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect {addr}: timeout"))?
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf))
        .await
        .map_err(|_| "read timeout".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// [`http_get`] until it answers (a server in a just-started container may not listen
/// yet), for about 5 s; the body, or the last error.
pub async fn http_get_retrying(addr: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        match http_get(addr).await {
            Ok(body) => return body,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

pub fn container_status<'a>(
    pod: &'a Pod,
    name: &str,
) -> Option<&'a tug_proto::core::v1::ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .iter()
        .find(|c| c.name == name)
}

pub fn has_phase(pod: &Pod, phase: &str) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(phase)
}

/// The terminated state of `container` (panics when it is not terminated).
pub fn terminated(pod: &Pod, container: &str) -> tug_proto::core::v1::ContainerStateTerminated {
    container_status(pod, container)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.clone())
        .unwrap_or_else(|| panic!("container {container} is not terminated: {:?}", pod.status))
}

pub fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}
