//! Real containers through [`ShimRuntime`] (root required, as in CI): a busybox rootfs
//! built from /usr/bin/busybox, each test in its own temp dir and cgroup parent
//! `tug-test/<random>`, cleaned up by guards even when a test fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tug_runtime::{
    cgroup_exists, create_pod_cgroup, create_sandbox, remove_pod_cgroup, remove_sandbox,
    ContainerConfig, ContainerState, Error, ExecConfig, Resources, Runtime, SandboxNamespaces,
    ShimCommand, ShimRuntime,
};

fn shim() -> ShimCommand {
    ShimCommand {
        program: env!("CARGO_BIN_EXE_tug-shim").into(),
        args: vec![],
    }
}

/// Builds a busybox rootfs: /bin/busybox plus one symlink per applet.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "etc", "tmp", "root"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox"))
        .expect("copying /usr/bin/busybox (apt-get install busybox-static)");
    let list = std::process::Command::new("/usr/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
        }
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    rootfs
}

/// One test's world. Drop kills everything under its cgroup parent, waits for the shims
/// to finish, removes the sandbox, the cgroups and the temp dir.
struct Env {
    dir: tempfile::TempDir,
    rootfs: PathBuf,
    cgroup_parent: String,
    sandbox: Option<PathBuf>,
    rt: ShimRuntime,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("tug-rt-")
            .tempdir()
            .unwrap();
        let rootfs = busybox_rootfs(dir.path());
        let cgroup_parent = format!(
            "tug-test/{}-{}",
            std::process::id(),
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace('.', "")
        );
        create_pod_cgroup(&cgroup_parent, &Resources::default()).unwrap();
        let rt = ShimRuntime::new(dir.path().join("root"), shim()).unwrap();
        Env {
            dir,
            rootfs,
            cgroup_parent,
            sandbox: None,
            rt,
        }
    }

    fn with_sandbox(mut self, hostname: &str) -> Env {
        let sb = self.dir.path().join("sandbox");
        create_sandbox(&sb, hostname).unwrap();
        self.sandbox = Some(sb);
        self
    }

    fn config(&self, id: &str, args: &[&str]) -> ContainerConfig {
        let namespaces = match &self.sandbox {
            Some(sb) => SandboxNamespaces {
                net: None,
                ipc: sb.join("ipc"),
                uts: sb.join("uts"),
            },
            None => SandboxNamespaces::default(),
        };
        ContainerConfig {
            id: id.into(),
            rootfs: self.rootfs.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![("GREETING".into(), "hello".into())],
            hostname: "pod-a".into(),
            namespaces,
            cgroup_parent: self.cgroup_parent.clone(),
            log_path: self.log_path(id),
            ..Default::default()
        }
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.dir.path().join("logs").join(id).join("0.log")
    }

    fn log_lines(&self, id: &str) -> Vec<String> {
        std::fs::read_to_string(self.log_path(id))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_once(' ').map_or("", |x| x.1).to_string())
            .collect()
    }

    fn container_cgroup(&self, id: &str) -> String {
        format!("{}/{id}", self.cgroup_parent)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Killing the cgroup tree ends every container; their shims then exit.
        let _ = remove_pod_cgroup(&self.cgroup_parent);
        let containers = self.dir.path().join("root");
        for _ in 0..500 {
            let alive = std::fs::read_dir(&containers)
                .map(|d| d.flatten().any(|e| shim_alive(&e.path())))
                .unwrap_or(false);
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = remove_pod_cgroup(&self.cgroup_parent);
        if let Some(sb) = &self.sandbox {
            let _ = remove_sandbox(sb);
        }
        // The shared parent goes only when no other test uses it.
        let _ = remove_empty_cgroup("tug-test");
    }
}

fn shim_alive(dir: &Path) -> bool {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(dir.join("exit"))
    else {
        return false;
    };
    matches!(f.read(&mut [0u8; 8]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

fn remove_empty_cgroup(path: &str) -> std::io::Result<()> {
    for entry in std::fs::read_dir("/sys/fs/cgroup")? {
        let _ = std::fs::remove_dir(entry?.path().join(path));
    }
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(path));
    Ok(())
}

fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(dir.to_str().unwrap()))
        .map(String::from)
        .collect()
}

fn exited(state: &ContainerState) -> (i32, bool, Option<i32>) {
    match state {
        ContainerState::Exited {
            exit_code,
            oom_killed,
            signal,
            ..
        } => (*exit_code, *oom_killed, *signal),
        other => panic!("not exited: {other:?}"),
    }
}

async fn read_all(r: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>) -> String {
    let mut out = String::new();
    if let Some(mut r) = r {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf).await;
        out = String::from_utf8_lossy(&buf).into_owned();
    }
    out
}

#[tokio::test]
async fn echo_is_logged_as_a_cri_line_and_exits_zero_and_remove_leaves_nothing() {
    let env = Env::new();
    let id = "echo";
    let state = env
        .rt
        .run(env.config(id, &["sh", "-c", "echo hi; echo $GREETING err >&2"]))
        .await
        .unwrap();
    assert!(
        matches!(
            state,
            ContainerState::Running { .. } | ContainerState::Exited { .. }
        ),
        "{state:?}"
    );
    let state = env.rt.wait(id).await.unwrap();
    assert_eq!(exited(&state), (0, false, None));
    let lines = env.log_lines(id);
    assert!(lines.contains(&"stdout F hi".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"stderr F hello err".to_string()),
        "{lines:?}"
    );

    env.rt.remove(id).await.unwrap();
    assert!(!env.rt.container_dir(id).exists());
    assert!(!cgroup_exists(&env.container_cgroup(id)));
    assert!(mounts_under(env.dir.path()).is_empty());
    assert!(matches!(env.rt.state(id).await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn exit_code_is_recorded() {
    let env = Env::new();
    env.rt
        .run(env.config("three", &["sh", "-c", "exit 3"]))
        .await
        .unwrap();
    let state = env.rt.wait("three").await.unwrap();
    assert_eq!(exited(&state), (3, false, None));
    // Waiting again (and state) answer from the exit record.
    assert_eq!(env.rt.wait("three").await.unwrap(), state);
    assert_eq!(env.rt.state("three").await.unwrap(), state);
    env.rt.remove("three").await.unwrap();
}

#[tokio::test]
async fn a_container_over_its_memory_limit_is_oom_killed_with_137() {
    let env = Env::new();
    let mut cfg = env.config(
        "hog",
        // The string doubles until the shell's heap passes the limit.
        &[
            "sh",
            "-c",
            "x=0123456789abcdef; while true; do x=$x$x; done",
        ],
    );
    cfg.resources.memory_limit = Some(20 << 20);
    env.rt.run(cfg).await.unwrap();
    let state = env.rt.wait("hog").await.unwrap();
    assert_eq!(exited(&state), (137, true, Some(9)));
    env.rt.remove("hog").await.unwrap();
    assert!(!cgroup_exists(&env.container_cgroup("hog")));
}

#[tokio::test]
async fn sigterm_and_sigkill_end_containers_with_143_and_137() {
    let env = Env::new();
    // pid 1 ignores signals it has no handler for, so the TERM case traps it.
    env.rt
        .run(env.config(
            "term",
            &[
                "sh",
                "-c",
                "trap 'exit 143' TERM; echo ready; while true; do sleep 0.1; done",
            ],
        ))
        .await
        .unwrap();
    env.rt
        .run(env.config("kill", &["sleep", "1000"]))
        .await
        .unwrap();
    // Wait until the trap is installed (the script printed "ready").
    for _ in 0..500 {
        if env.log_lines("term").iter().any(|l| l.ends_with("ready")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(env.rt.state("kill").await.unwrap().is_running());
    assert!(matches!(
        env.rt.remove("kill").await,
        Err(Error::StillRunning(_))
    ));
    env.rt.kill("term", 15).await.unwrap();
    env.rt.kill("kill", 9).await.unwrap();
    assert_eq!(
        exited(&env.rt.wait("term").await.unwrap()),
        (143, false, None)
    );
    assert_eq!(
        exited(&env.rt.wait("kill").await.unwrap()),
        (137, false, Some(9))
    );
    // Killing an exited container is fine.
    env.rt.kill("kill", 9).await.unwrap();
    env.rt.remove("term").await.unwrap();
    env.rt.remove("kill").await.unwrap();
}

#[tokio::test]
async fn exec_sees_the_pod_hostname_and_only_the_containers_processes() {
    let env = Env::new().with_sandbox("pod-a");
    env.rt
        .run(env.config("sleeper", &["sleep", "1000"]))
        .await
        .unwrap();

    let mut p = env
        .rt
        .exec(
            "sleeper",
            ExecConfig {
                args: vec!["hostname".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let out = read_all(p.stdout.take()).await;
    assert_eq!(p.wait().await.unwrap(), 0);
    assert_eq!(out.trim(), "pod-a");

    let mut p = env
        .rt
        .exec(
            "sleeper",
            ExecConfig {
                args: vec!["ps".into(), "-o".into(), "pid,args".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let out = read_all(p.stdout.take()).await;
    assert_eq!(p.wait().await.unwrap(), 0);
    let procs: Vec<&str> = out.lines().skip(1).map(str::trim).collect();
    assert_eq!(procs.len(), 2, "{out}");
    assert!(procs[0].starts_with("1 sleep 1000"), "{out}");
    assert!(procs[1].contains("ps -o pid,args"), "{out}");

    // Env of the container plus the exec's own, stdin piped through.
    let mut p = env
        .rt
        .exec(
            "sleeper",
            ExecConfig {
                args: vec![
                    "sh".into(),
                    "-c".into(),
                    "read x; echo $x $GREETING $EXTRA; exit 5".into(),
                ],
                env: vec![("EXTRA".into(), "extra".into())],
                stdin: true,
                tty: false,
            },
        )
        .await
        .unwrap();
    let mut stdin = p.stdin.take().unwrap();
    stdin.write_all(b"in\n").await.unwrap();
    drop(stdin);
    let out = read_all(p.stdout.take()).await;
    assert_eq!(p.wait().await.unwrap(), 5);
    assert_eq!(out.trim(), "in hello extra");

    // A missing binary: 126 and a reason on stderr.
    let mut p = env
        .rt
        .exec(
            "sleeper",
            ExecConfig {
                args: vec!["/no/such/binary".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let err = read_all(p.stderr.take()).await;
    assert_ne!(p.wait().await.unwrap(), 0, "{err}");

    env.rt.kill("sleeper", 9).await.unwrap();
    env.rt.wait("sleeper").await.unwrap();
    env.rt.remove("sleeper").await.unwrap();
}

#[tokio::test]
async fn exec_with_a_tty_gets_a_terminal_that_can_be_resized() {
    let env = Env::new().with_sandbox("pod-tty");
    env.rt
        .run(env.config("ttyc", &["sleep", "1000"]))
        .await
        .unwrap();
    let mut p = env
        .rt
        .exec(
            "ttyc",
            ExecConfig {
                args: vec!["sh".into()],
                tty: true,
                stdin: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(p.stderr.is_none());
    p.resize(120, 40).unwrap();
    let mut stdin = p.stdin.take().unwrap();
    stdin.write_all(b"tty; stty size; exit 4\n").await.unwrap();
    let out = read_all(p.stdout.take()).await;
    assert_eq!(p.wait().await.unwrap(), 4, "{out}");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("40 120"), "{out}");
    env.rt.kill("ttyc", 9).await.unwrap();
    env.rt.wait("ttyc").await.unwrap();
    env.rt.remove("ttyc").await.unwrap();
}

#[tokio::test]
async fn a_fresh_runtime_readopts_running_containers_and_sees_exits_that_happened_meanwhile() {
    let env = Env::new();
    let root = env.dir.path().join("root");
    {
        let first = ShimRuntime::new(root.clone(), shim()).unwrap();
        first
            .run(env.config("long", &["sleep", "1000"]))
            .await
            .unwrap();
        first
            .run(env.config("short", &["sh", "-c", "read x; exit 7"]))
            .await
            .unwrap();
        // "short" waits on stdin, which is /dev/null: it ends by itself right away.
    }
    let second = ShimRuntime::new(root, shim()).unwrap();
    let short = second.wait("short").await.unwrap();
    assert_eq!(exited(&short), (7, false, None));
    let list = second.list().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["long", "short"]);
    assert!(list[0].1.is_running(), "{list:?}");
    assert_eq!(list[1].1, short);
    second.kill("long", 9).await.unwrap();
    assert_eq!(exited(&second.wait("long").await.unwrap()).0, 137);
    second.remove("long").await.unwrap();
    second.remove("short").await.unwrap();
    assert!(second.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn start_failures_are_reported_and_leave_no_container_behind() {
    let env = Env::new();
    let err = env
        .rt
        .run(env.config("missing", &["/no/such/binary"]))
        .await;
    // libcontainer execs in the container after start: either start fails or the
    // container exits with an error code.
    match err {
        Err(Error::Start { .. }) => assert!(!env.rt.container_dir("missing").exists()),
        Ok(_) => {
            let (code, _, _) = exited(&env.rt.wait("missing").await.unwrap());
            assert_ne!(code, 0);
            env.rt.remove("missing").await.unwrap();
        }
        Err(e) => panic!("unexpected error {e}"),
    }
    let bad = env.rt.run(env.config("Bad_Id", &["true"])).await;
    assert!(matches!(bad, Err(Error::InvalidConfig { .. })), "{bad:?}");
    env.rt.run(env.config("dup", &["true"])).await.unwrap();
    assert!(matches!(
        env.rt.run(env.config("dup", &["true"])).await,
        Err(Error::AlreadyExists(_))
    ));
    env.rt.wait("dup").await.unwrap();
    env.rt.remove("dup").await.unwrap();
}

#[test]
fn sandbox_namespaces_are_bind_mounted_with_the_hostname_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let sb = dir.path().join("sb");
    let (ipc, uts) = create_sandbox(&sb, "my-pod").unwrap();
    assert_eq!(mounts_under(&sb).len(), 2);
    // Idempotent.
    create_sandbox(&sb, "my-pod").unwrap();
    assert_eq!(mounts_under(&sb).len(), 2);
    let out = std::process::Command::new("nsenter")
        .arg(format!("--uts={}", uts.display()))
        .arg("hostname")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "my-pod");
    assert_ne!(
        std::fs::metadata(&ipc)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap(),
        std::fs::metadata("/proc/self/ns/ipc")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap()
    );
    // This process's own hostname did not change.
    assert_ne!(nix_hostname(), "my-pod");
    remove_sandbox(&sb).unwrap();
    assert!(mounts_under(&sb).is_empty());
    assert!(!sb.exists());
    remove_sandbox(&sb).unwrap();
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn pod_cgroups_carry_the_limits_and_are_removed() {
    let parent = format!("tug-test/pod-{}", std::process::id());
    struct Guard(String);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = remove_pod_cgroup(&self.0);
        }
    }
    let _guard = Guard(parent.clone());
    create_pod_cgroup(
        &parent,
        &Resources {
            memory_limit: Some(50 << 20),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            cpu_shares: Some(512),
            pids_limit: Some(64),
        },
    )
    .unwrap();
    assert!(cgroup_exists(&parent));
    if tug_runtime::cgroup_mode() == tug_runtime::CgroupMode::V1 {
        let read = |c: &str, f: &str| {
            std::fs::read_to_string(format!("/sys/fs/cgroup/{c}/{parent}/{f}"))
                .unwrap()
                .trim()
                .to_string()
        };
        assert_eq!(
            read("memory", "memory.limit_in_bytes"),
            (50u64 << 20).to_string()
        );
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu", "cpu.shares"), "512");
        assert_eq!(read("pids", "pids.max"), "64");
    }
    // Lowering and removing limits works on an existing pod cgroup.
    create_pod_cgroup(&parent, &Resources::default()).unwrap();
    remove_pod_cgroup(&parent).unwrap();
    assert!(!cgroup_exists(&parent));
    remove_pod_cgroup(&parent).unwrap();
}

#[tokio::test]
async fn user_mounts_readonly_rootfs_and_limits_reach_the_container() {
    let env = Env::new();
    let vol = env.dir.path().join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("data.txt"), "from-the-host\n").unwrap();
    let mut cfg = env.config(
        "limits",
        &[
            "sh",
            "-c",
            "id -u; id -g; cat /data/data.txt; touch /data/x 2>/dev/null || echo data-ro; \
             touch /scratch/y && echo scratch-rw; touch /z 2>/dev/null || echo root-ro; \
             echo $GREETING; pwd; sleep 1000",
        ],
    );
    cfg.uid = 1000;
    cfg.gid = 1001;
    cfg.cwd = "/tmp".into();
    cfg.readonly_rootfs = true;
    cfg.mounts = vec![
        tug_runtime::Mount {
            source: vol.clone(),
            destination: "/data".into(),
            read_only: true,
            kind: tug_runtime::MountKind::Bind,
        },
        tug_runtime::Mount {
            source: PathBuf::new(),
            destination: "/scratch".into(),
            read_only: false,
            kind: tug_runtime::MountKind::Tmpfs {
                size: Some(1 << 20),
            },
        },
    ];
    cfg.resources = Resources {
        memory_limit: Some(64 << 20),
        cpu_quota: Some(20_000),
        cpu_period: Some(100_000),
        cpu_shares: Some(256),
        pids_limit: Some(32),
    };
    env.rt.run(cfg).await.unwrap();
    let want = [
        "1000",
        "1001",
        "from-the-host",
        "data-ro",
        "scratch-rw",
        "root-ro",
        "hello",
        "/tmp",
    ];
    let mut got = Vec::new();
    for _ in 0..500 {
        got = env.log_lines("limits");
        if got.len() >= want.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got: Vec<String> = got
        .iter()
        .map(|l| l.trim_start_matches("stdout F ").to_string())
        .collect();
    assert_eq!(got, want);
    if tug_runtime::cgroup_mode() == tug_runtime::CgroupMode::V1 {
        let cg = env.container_cgroup("limits");
        let read = |c: &str, f: &str| {
            std::fs::read_to_string(format!("/sys/fs/cgroup/{c}/{cg}/{f}"))
                .unwrap()
                .trim()
                .to_string()
        };
        assert_eq!(
            read("memory", "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "20000");
        assert_eq!(read("cpu", "cpu.shares"), "256");
        assert_eq!(read("pids", "pids.max"), "32");
        assert!(read("devices", "devices.list").contains("c 1:3 rwm"));
        assert!(!read("devices", "devices.list").contains("a *:* rwm"));
    }
    // exec runs as the container's user.
    let mut p = env
        .rt
        .exec(
            "limits",
            ExecConfig {
                args: vec!["id".into(), "-u".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let out = read_all(p.stdout.take()).await;
    assert_eq!(p.wait().await.unwrap(), 0);
    assert_eq!(out.trim(), "1000");
    env.rt.kill("limits", 9).await.unwrap();
    env.rt.wait("limits").await.unwrap();
    env.rt.remove("limits").await.unwrap();
    assert!(!cgroup_exists(&env.container_cgroup("limits")));
}

/// A named network namespace (`ip netns add`), deleted on drop.
struct NetNs(String);

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

#[tokio::test]
async fn containers_join_the_sandbox_network_namespace_or_use_the_host_network() {
    let env = Env::new().with_sandbox("pod-net");
    let netns = NetNs(format!("tug-rt-{}", std::process::id()));
    let ok = std::process::Command::new("ip")
        .args(["netns", "add", &netns.0])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "ip netns add {} failed (iproute2 installed?)", netns.0);
    let mut cfg = env.config("netc", &["cat", "/proc/net/dev"]);
    cfg.namespaces.net = Some(PathBuf::from(format!("/run/netns/{}", netns.0)));
    env.rt.run(cfg).await.unwrap();
    assert_eq!(exited(&env.rt.wait("netc").await.unwrap()).0, 0);
    let ifaces: Vec<String> = env
        .log_lines("netc")
        .iter()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|l| l.trim_start_matches("stdout F").trim().to_string())
        .collect();
    assert_eq!(ifaces, ["lo"]);
    env.rt.remove("netc").await.unwrap();

    // Host network: the same interfaces as this process sees.
    env.rt
        .run(env.config("hostnet", &["cat", "/proc/net/dev"]))
        .await
        .unwrap();
    env.rt.wait("hostnet").await.unwrap();
    let host = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .count();
    assert_eq!(env.log_lines("hostnet").len(), host);
    env.rt.remove("hostnet").await.unwrap();
}

#[tokio::test]
async fn a_container_whose_shim_died_is_unknown_and_remove_kills_what_is_left() {
    let env = Env::new();
    let state = env
        .rt
        .run(env.config("orphan", &["sleep", "1000"]))
        .await
        .unwrap();
    let ContainerState::Running { pid, .. } = state else {
        panic!("not running: {state:?}");
    };
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.rt.container_dir("orphan").join("state.json")).unwrap(),
    )
    .unwrap();
    let shim_pid = record["shim_pid"].as_i64().unwrap() as i32;
    // The shim crashes (SIGKILL through kill(1)).
    assert!(std::process::Command::new("kill")
        .args(["-9", &shim_pid.to_string()])
        .status()
        .unwrap()
        .success());
    let mut state = env.rt.state("orphan").await.unwrap();
    for _ in 0..500 {
        if matches!(state, ContainerState::Unknown(_)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        state = env.rt.state("orphan").await.unwrap();
    }
    assert!(matches!(state, ContainerState::Unknown(_)), "{state:?}");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    env.rt.remove("orphan").await.unwrap();
    assert!(!cgroup_exists(&env.container_cgroup("orphan")));
    // The container's init was killed with its cgroup (it may linger as a zombie of
    // init for a moment, so look at its state rather than its existence).
    for _ in 0..500 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z"), "{stat}");
}
