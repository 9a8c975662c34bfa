//! Real pods on this host through a real agent: the "how to know it works".
//! Each test has its own apiserver, agent, bridge, pod CIDR and cgroup root.

mod harness;

use harness::{
    container_status, has_phase, http_get_retrying, is_ready, is_running, terminated, TestNode,
};
use serde_json::json;
use std::time::Duration;

fn pod_ip(p: &tug_proto::core::v1::Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("podIP")
}

async fn exec(node: &TestNode, pod: &str, container: &str, cmd: &[&str]) -> (i32, String) {
    let agent = node.agent.as_ref().expect("agent");
    let p = agent.ctx.index.get("default", pod).expect("indexed pod");
    let id = p.running.get(container).expect("running container").clone();
    let mut proc = agent
        .ctx
        .runtime
        .exec(
            &id,
            tug_runtime::ExecConfig {
                args: cmd.iter().map(|s| s.to_string()).collect(),
                env: vec![],
                tty: false,
                stdin: false,
            },
        )
        .await
        .expect("exec");
    let mut out = String::new();
    if let Some(mut stdout) = proc.stdout.take() {
        use tokio::io::AsyncReadExt;
        stdout.read_to_string(&mut out).await.expect("read stdout");
    }
    let code = proc.wait().await.expect("wait");
    (code, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hello_pod_answers_on_its_pod_ip_and_its_log_holds_the_request() {
    let node = TestNode::start().await;
    node.create_pod("hello", json!({"containers": [{"name": "hello", "image": "hello", "imagePullPolicy": "Never", "ports": [{"containerPort": 8080}]}]})).await;
    let p = node
        .wait_pod("hello", "Running and Ready", |p| {
            is_running(p) && is_ready(p)
        })
        .await;
    let ip = pod_ip(&p);
    assert!(
        ip.starts_with(&node.pod_cidr[..node.pod_cidr.len() - 5]),
        "{ip} in {}",
        node.pod_cidr
    );
    let body = http_get_retrying(&format!("{ip}:8080")).await;
    assert!(body.contains("Hello Kubernetes Beginners!"), "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !read_log(&node, "hello", "hello").contains("GET /") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "log: {}",
            read_log(&node, "hello", "hello")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cs = container_status(&p, "hello").unwrap();
    assert!(cs.ready);
    assert_eq!(cs.restart_count, 0);
    assert!(cs
        .container_id
        .as_deref()
        .unwrap_or_default()
        .starts_with("tug://"));
    assert!(cs.image_id.contains("sha256:"), "{}", cs.image_id);
    let status = p.status.as_ref().unwrap();
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    assert!(status.start_time.is_some());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_containers_of_a_pod_talk_over_localhost() {
    let node = TestNode::start().await;
    node.create_pod("duo", json!({"containers": [
        {"name": "web", "image": "hello", "imagePullPolicy": "Never"},
        {"name": "client", "image": "busybox", "imagePullPolicy": "Never",
         "command": ["sh", "-c", "until wget -qO- http://127.0.0.1:8080/; do sleep 0.2; done; sleep 3600"]}
    ]})).await;
    node.wait_pod("duo", "Running", |p| is_running(p) && is_ready(p))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let logs = read_log(&node, "duo", "client");
        if logs.contains("Hello Kubernetes Beginners!") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "client log: {logs}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    node.shutdown().await;
}

fn read_log(node: &TestNode, pod: &str, container: &str) -> String {
    let agent = node.agent.as_ref().unwrap();
    let uid = agent
        .ctx
        .index
        .get("default", pod)
        .map(|p| p.uid)
        .unwrap_or_default();
    let dir = agent.ctx.pod_log_dir("default", pod, &uid).join(container);
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            out.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memconsumer_over_its_limit_is_oom_killed_and_restarted_and_runs_with_enough() {
    let node = TestNode::start().await;
    node.create_pod(
        "small",
        json!({"containers": [{"name": "mem", "image": "memconsumer", "imagePullPolicy": "Never",
        "resources": {"limits": {"memory": "20Mi"}}}]}),
    )
    .await;
    node.create_pod(
        "big",
        json!({"containers": [{"name": "mem", "image": "memconsumer", "imagePullPolicy": "Never",
        "resources": {"limits": {"memory": "100Mi"}}}]}),
    )
    .await;
    let p = node
        .wait_pod("small", "an OOMKilled restart", |p| {
            container_status(p, "mem").is_some_and(|c| {
                c.restart_count >= 1
                    && c.last_state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref())
                        .is_some_and(|t| {
                            t.reason.as_deref() == Some("OOMKilled") && t.exit_code == 137
                        })
            })
        })
        .await;
    let _ = p;
    // The big one reaches 50 MB and keeps running.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let logs = read_log(&node, "big", "mem");
        if logs.contains("holding 50 MiB") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "big's log: {logs}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let p = node.pods().get("big").await.unwrap();
    let c = container_status(&p, "mem").unwrap();
    assert_eq!(c.restart_count, 0, "{c:?}");
    assert!(c.state.as_ref().unwrap().running.is_some(), "{c:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_container_restarts_with_back_off_and_reports_crash_loop() {
    let node = TestNode::start().await;
    node.create_pod(
        "crash",
        json!({"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
        "command": ["sh", "-c", "echo boom; exit 3"]}]}),
    )
    .await;
    let p = node
        .wait_pod("crash", "restartCount >= 3 and CrashLoopBackOff", |p| {
            container_status(p, "c").is_some_and(|c| {
                c.restart_count >= 3
                    && c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        == Some("CrashLoopBackOff")
            })
        })
        .await;
    let c = container_status(&p, "c").unwrap();
    let last = c.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(last.exit_code, 3);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    assert!(!is_ready(&p));
    // A Never pod that fails ends Failed and is not restarted.
    node.create_pod("once", json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
        "command": ["sh", "-c", "exit 1"]}]})).await;
    let p = node
        .wait_pod("once", "Failed", |p| has_phase(p, "Failed"))
        .await;
    assert_eq!(container_status(&p, "c").unwrap().restart_count, 0);
    // And one that succeeds ends Succeeded with reason Completed.
    node.create_pod("ok", json!({"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
        "command": ["true"]}]})).await;
    let p = node
        .wait_pod("ok", "Succeeded", |p| has_phase(p, "Succeeded"))
        .await;
    let t = terminated(&p, "c");
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_liveness_probe_restarts_and_a_failing_readiness_probe_keeps_ready_false() {
    let node = TestNode::start().await;
    node.create_pod("live", json!({"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
        "command": ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600"],
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 1}}]})).await;
    node.create_pod(
        "unready",
        json!({"containers": [{"name": "web", "image": "hello", "imagePullPolicy": "Never",
        "readinessProbe": {"httpGet": {"path": "/", "port": 9999}, "periodSeconds": 1}}]}),
    )
    .await;
    node.create_pod(
        "ready",
        json!({"containers": [{"name": "web", "image": "hello", "imagePullPolicy": "Never",
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}),
    )
    .await;
    node.wait_pod("live", "a liveness restart", |p| {
        container_status(p, "c").is_some_and(|c| c.restart_count >= 1)
    })
    .await;
    node.wait_pod("ready", "Ready", is_ready).await;
    let p = node.wait_pod("unready", "Running", is_running).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p2 = node.pods().get("unready").await.unwrap();
    assert!(!is_ready(&p2), "{:?}", p2.status);
    assert_eq!(container_status(&p2, "web").unwrap().restart_count, 0);
    let _ = p;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sees_the_pod_hostname_and_only_the_containers_processes() {
    let node = TestNode::start().await;
    node.create_pod(
        "box",
        json!({"containers": [{"name": "sh", "image": "busybox", "imagePullPolicy": "Never",
        "command": ["sleep", "3600"]}]}),
    )
    .await;
    node.wait_pod("box", "Running", is_running).await;
    let (code, out) = exec(&node, "box", "sh", &["hostname"]).await;
    assert_eq!((code, out.trim()), (0, "box"));
    let (code, out) = exec(&node, "box", "sh", &["ps", "-o", "pid,args"]).await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert!(lines.iter().any(|l| l.contains("sleep 3600")), "{out}");
    assert!(lines.len() <= 3, "only the pod's processes: {out}");
    let (code, _) = exec(&node, "box", "sh", &["sh", "-c", "exit 7"]).await;
    assert_eq!(code, 7);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_restarted_readopts_running_containers_and_sees_exits() {
    let mut node = TestNode::start().await;
    node.create_pod(
        "keeper",
        json!({"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
        "command": ["sleep", "3600"]}]}),
    )
    .await;
    node.create_pod("quitter", json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
        "command": ["sh", "-c", "sleep 2; exit 5"]}]})).await;
    let before = node.wait_pod("keeper", "Running", is_running).await;
    node.wait_pod("quitter", "Running", is_running).await;
    let id_before = container_status(&before, "c").unwrap().container_id.clone();
    node.crash_agent();
    // quitter exits while no agent runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    node.start_agent().await;
    let p = node
        .wait_pod("quitter", "Failed with exit code 5", |p| {
            has_phase(p, "Failed")
        })
        .await;
    let t = terminated(&p, "c");
    assert_eq!(t.exit_code, 5);
    let after = node.pods().get("keeper").await.unwrap();
    let c = container_status(&after, "c").unwrap();
    assert_eq!(c.container_id, id_before, "the same container, adopted");
    assert_eq!(c.restart_count, 0);
    assert!(is_running(&after));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_pods_stops_them_gracefully_and_leaves_nothing_behind() {
    let node = TestNode::start().await;
    node.create_pod(
        "web",
        json!({"containers": [{"name": "web", "image": "hello", "imagePullPolicy": "Never",
        "ports": [{"containerPort": 8080, "hostPort": 0}]}], "terminationGracePeriodSeconds": 5}),
    )
    .await;
    node.create_pod("stubborn", json!({"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
        "command": ["sh", "-c", "trap '' TERM; sleep 3600"]}]})).await;
    node.wait_pod("web", "Running", is_running).await;
    node.wait_pod("stubborn", "Running", is_running).await;
    node.delete_pod("web", 5).await;
    node.delete_pod("stubborn", 1).await;
    node.wait_gone("web").await;
    node.wait_gone("stubborn").await;
    let agent = node.agent.as_ref().unwrap();
    // No pod dirs, containers, mounts, cgroups or netns of this node remain.
    let pods_dir = agent.ctx.root.join("pods");
    let left: Vec<_> = std::fs::read_dir(&pods_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "pod dirs left: {left:?}");
    let containers = agent.ctx.runtime.list().await.unwrap();
    assert!(containers.is_empty(), "containers left: {containers:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = agent.ctx.root.to_string_lossy().to_string();
    let ours: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(&root) && !l.contains("/images/"))
        .collect();
    assert!(ours.is_empty(), "mounts left: {ours:?}");
    for ctrl in ["memory", "pids", "cpu"] {
        let dir = std::path::Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join(&node.cgroup_root);
        let children: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            children.is_empty(),
            "cgroups left under {}: {children:?}",
            dir.display()
        );
    }
    let netns = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.contains(&node.name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(netns.is_empty(), "netns left: {netns:?}");
    node.shutdown().await;
}

/// A `Write` that appends to a shared buffer, for `tug` runs on another task.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn tug(node: &TestNode, args: &[&str]) -> (i32, String, String) {
    let kubeconfig = node
        .server
        .as_ref()
        .unwrap()
        .kubeconfig
        .to_string_lossy()
        .to_string();
    let mut argv = vec!["tug".to_string(), "--kubeconfig".to_string(), kubeconfig];
    argv.extend(args.iter().map(|s| s.to_string()));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = tug_ctl::run(argv, &mut out, &mut err).await;
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tug_logs_follow_streams_and_tug_exec_runs_inside_through_the_apiserver() {
    let node = TestNode::start().await;
    node.create_pod(
        "ticker",
        json!({"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
            "command": ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]}]}),
    )
    .await;
    node.wait_pod("ticker", "Running", is_running).await;
    // logs -f: lines keep arriving while the command runs.
    let kubeconfig = node
        .server
        .as_ref()
        .unwrap()
        .kubeconfig
        .to_string_lossy()
        .to_string();
    let out = Shared::default();
    // The CLI's writers are not Send: it runs on its own thread and runtime, and ends
    // when the pod is deleted at the end of the test.
    let follow = {
        let mut out = out.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut err = Vec::new();
            let argv = ["tug", "--kubeconfig", &kubeconfig, "logs", "-f", "ticker"];
            rt.block_on(tug_ctl::run(argv, &mut out, &mut err))
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !out.text().contains("tick 12") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "followed: {}",
            out.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!follow.is_finished(), "logs -f ended early: {}", out.text());
    let (code, text, err) = tug(&node, &["logs", "ticker", "--tail", "2"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(text.lines().count(), 2, "{text}");
    // exec: the pod's hostname, only its processes, and the remote exit code.
    let (code, text, err) = tug(&node, &["exec", "ticker", "--", "hostname"]).await;
    assert_eq!((code, text.trim()), (0, "ticker"), "{err}");
    let (code, text, _) = tug(&node, &["exec", "ticker", "--", "ps", "-o", "pid,args"]).await;
    assert_eq!(code, 0);
    assert!(text.contains("while true"), "{text}");
    assert!(
        text.lines().count() <= 5,
        "only the pod's processes: {text}"
    );
    let (code, _, _) = tug(&node, &["exec", "ticker", "--", "sh", "-c", "exit 4"]).await;
    assert_eq!(code, 4);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_errors_back_off_config_maps_are_projected_and_updated_and_host_ports_map() {
    let node = TestNode::start().await;
    // An image from a registry that does not answer: ErrImagePull, then ImagePullBackOff.
    node.create_pod(
        "pullfail",
        json!({"containers": [{"name": "c", "image": "127.0.0.1:1/nothing:v1", "imagePullPolicy": "IfNotPresent"}]}),
    )
    .await;
    // A ConfigMap projected as files, updated in place.
    let cms = node
        .create_config_map("cfg", json!({"greeting": "hi"}))
        .await;
    node.create_pod(
        "reader",
        json!({"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
            "command": ["sleep", "3600"], "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}]}),
    )
    .await;
    // hostPort: the node's port reaches the pod (the seeds' `docker run -p`).
    let host_port = 20000 + (std::process::id() % 10000) as u16;
    node.create_pod(
        "exposed",
        json!({"containers": [{"name": "web", "image": "hello", "imagePullPolicy": "Never",
            "ports": [{"containerPort": 8080, "hostPort": host_port}]}]}),
    )
    .await;
    node.wait_pod("reader", "Running", is_running).await;
    let (code, text) = exec(&node, "reader", "c", &["cat", "/etc/cfg/greeting"]).await;
    assert_eq!((code, text.as_str()), (0, "hi"));
    let mut cm = cms.get("cfg").await.unwrap();
    cm.data.insert("greeting".into(), "bye".into());
    cms.replace("cfg", &cm).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, text) = exec(&node, "reader", "c", &["cat", "/etc/cfg/greeting"]).await;
        if text == "bye" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {text:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    node.wait_pod("exposed", "Running", is_running).await;
    let body = http_get_retrying(&format!("127.0.0.1:{host_port}")).await;
    assert!(body.contains("Hello Kubernetes Beginners!"), "{body}");
    let reason = |p: &tug_proto::core::v1::Pod| {
        container_status(p, "c")
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
            .unwrap_or_default()
    };
    let p = node
        .wait_pod("pullfail", "ImagePullBackOff", |p| {
            reason(p) == "ImagePullBackOff"
        })
        .await;
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_handed_to_a_running_agent_are_imported() {
    let node = TestNode::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut layer = tug_image::layout::LayerBuilder::new();
    layer.file("hello.txt", b"inboxed\n", 0o644).unwrap();
    let image =
        tug_image::layout::build_image(vec![layer.finish().unwrap()], Default::default(), false)
            .unwrap();
    let tar = dir.path().join("inboxed.tar");
    tug_image::layout::write_oci_layout(
        std::fs::File::create(&tar).unwrap(),
        &[("docker.io/library/inboxed:v1", &image)],
    )
    .unwrap();
    let root = node.root.clone();
    let code = tokio::task::spawn_blocking(move || {
        tug_agent::cli::main(vec![
            "import-image".into(),
            "--root-dir".into(),
            root.into_os_string(),
            tar.into_os_string(),
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    let agent = node.agent.as_ref().unwrap();
    assert!(agent.ctx.images.get("inboxed:v1").is_some());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn args_env_env_from_working_dir_run_as_user_and_limits_are_honoured() {
    let node = TestNode::start().await;
    node.create_config_map("settings", json!({"MODE": "fast"}))
        .await;
    node.create_pod(
        "shaped",
        json!({"containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
            "command": ["sh", "-c"], "args": ["echo started as $(id -u) in $PWD; sleep 3600"],
            "workingDir": "/tmp",
            "env": [{"name": "GREETING", "value": "hello $(POD_NAME)"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "AGAIN", "value": "$(POD_NAME)!"}],
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
            "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}]}),
    )
    .await;
    node.wait_pod("shaped", "Running", is_running).await;
    let (_, out) = exec(
        &node,
        "shaped",
        "c",
        &["sh", "-c", "id -u; id -g; pwd; echo $AGAIN $APP_MODE"],
    )
    .await;
    assert_eq!(out, "1000\n1000\n/tmp\nshaped! fast\n");
    let (_, out) = exec(&node, "shaped", "c", &["sh", "-c", "echo $GREETING"]).await;
    // POD_NAME is defined after GREETING, so $(POD_NAME) stays as written (Kubernetes' rule).
    assert_eq!(out.trim(), "hello $(POD_NAME)");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !read_log(&node, "shaped", "c").contains("started as 1000 in /tmp") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            read_log(&node, "shaped", "c")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The container's cgroup carries the limits (cgroup v1 on this host; v2 elsewhere).
    let agent = node.agent.as_ref().unwrap();
    let uid = agent.ctx.index.get("default", "shaped").unwrap().uid;
    let cg = agent.ctx.pod_cgroup(&uid);
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory").join(&cg);
    if v1.exists() {
        let found = walk_find(
            &v1,
            "memory.limit_in_bytes",
            &(64 * 1024 * 1024).to_string(),
        );
        assert!(
            found,
            "no memory.limit_in_bytes of 64Mi under {}",
            v1.display()
        );
        let cpu = std::path::Path::new("/sys/fs/cgroup/cpu").join(&cg);
        assert!(
            walk_find(&cpu, "cpu.cfs_quota_us", "25000"),
            "no 250m quota under {}",
            cpu.display()
        );
    }
    node.shutdown().await;
}

/// Whether some cgroup dir under `dir` has `file` with exactly `value`.
fn walk_find(dir: &std::path::Path, file: &str, value: &str) -> bool {
    if std::fs::read_to_string(dir.join(file)).is_ok_and(|v| v.trim() == value) {
        return true;
    }
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .any(|e| walk_find(&e.path(), file, value))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_run_in_order_before_the_containers_and_host_network_shares_the_node() {
    let node = TestNode::start().await;
    node.create_pod(
        "staged",
        json!({
            "initContainers": [
                {"name": "first", "image": "busybox", "imagePullPolicy": "Never",
                 "command": ["sh", "-c", "echo one >> /work/order"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                {"name": "second", "image": "busybox", "imagePullPolicy": "Never",
                 "command": ["sh", "-c", "echo two >> /work/order"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]}
            ],
            "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
            "volumes": [{"name": "work", "emptyDir": {}}]
        }),
    )
    .await;
    node.create_pod(
        "hostnet",
        json!({"hostNetwork": true, "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
            "command": ["sleep", "3600"]}]}),
    )
    .await;
    let p = node.wait_pod("staged", "Running", is_running).await;
    let status = p.status.as_ref().unwrap();
    assert!(status
        .conditions
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == "True"));
    for init in &status.init_container_statuses {
        let t = init
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("terminated init");
        assert_eq!(
            (t.exit_code, t.reason.as_deref()),
            (0, Some("Completed")),
            "{}",
            init.name
        );
    }
    let (_, order) = exec(&node, "staged", "main", &["cat", "/work/order"]).await;
    assert_eq!(order, "one\ntwo\n");
    let p = node.wait_pod("hostnet", "Running", is_running).await;
    assert_eq!(
        p.status.as_ref().unwrap().pod_ip.as_deref(),
        Some("127.0.0.1")
    );
    // The host's network namespace: its interfaces include the node's pod bridge.
    let (_, links) = exec(&node, "hostnet", "c", &["ip", "link"]).await;
    assert!(links.contains(&node.bridge), "{links}");
    node.shutdown().await;
}
