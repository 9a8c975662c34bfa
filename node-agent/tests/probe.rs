//! exec probes in a real container (root required, as in CI): a busybox container run
//! by the ShimRuntime through this crate's own binary (`tug-agent shim`), probed with
//! commands that succeed, fail and hang. Cleaned up by a guard even when a test fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tug_agent::probe::{probe_with_timeout, ProbeContext, ProbeOutcome};
use tug_proto::core::v1::{ExecAction, Probe};
use tug_runtime::{
    create_pod_cgroup, remove_pod_cgroup, ContainerConfig, Resources, Runtime, ShimCommand,
    ShimRuntime,
};

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

/// Removing the pod cgroup kills whatever still runs in it; the temp dir goes last.
struct Cleanup {
    cgroup_parent: String,
    _dir: tempfile::TempDir,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for _ in 0..200 {
            if remove_pod_cgroup(&self.cgroup_parent).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The shared parent goes only when no other test uses it.
        for entry in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(entry.path().join("tug-probe-test"));
        }
    }
}

fn exec_probe(command: &[&str]) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: command.iter().map(|s| s.to_string()).collect(),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn exec_probes_in_a_real_container_succeed_fail_and_time_out() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: running containers needs root");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("tug-probe-")
        .tempdir()
        .unwrap();
    let cgroup_parent = format!(
        "tug-probe-test/{}-{}",
        std::process::id(),
        dir.path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('.', "")
    );
    let rootfs = busybox_rootfs(dir.path());
    let root = dir.path().join("root");
    let log_path = dir.path().join("logs/0.log");
    create_pod_cgroup(&cgroup_parent, &Resources::default()).unwrap();
    let _cleanup = Cleanup {
        cgroup_parent: cgroup_parent.clone(),
        _dir: dir,
    };
    let runtime = Arc::new(
        ShimRuntime::new(
            root,
            ShimCommand {
                program: PathBuf::from(env!("CARGO_BIN_EXE_tug-agent")),
                args: vec!["shim".into()],
            },
        )
        .unwrap(),
    );
    let state = runtime
        .run(ContainerConfig {
            id: "probe-target".into(),
            rootfs,
            args: vec!["sleep".into(), "600".into()],
            cgroup_parent: cgroup_parent.clone(),
            log_path,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(state.is_running(), "{state:?}");

    let ctx = ProbeContext {
        pod_ip: "127.0.0.1".into(),
        ports: Vec::new(),
        container_id: "probe-target".into(),
        runtime: runtime.clone(),
    };
    let long = Duration::from_secs(20);
    let cases = [
        (exec_probe(&["true"]), long, ProbeOutcome::Success),
        (
            exec_probe(&["sh", "-c", "echo not ready; exit 3"]),
            long,
            ProbeOutcome::Failure("not ready".into()),
        ),
        (
            exec_probe(&["false"]),
            long,
            ProbeOutcome::Failure("command \"false\" exited with code 1".into()),
        ),
        (
            exec_probe(&["sleep", "30"]),
            Duration::from_secs(1),
            ProbeOutcome::Failure("command \"sleep 30\" timed out".into()),
        ),
    ];
    for (probe, timeout, want) in cases {
        assert_eq!(
            probe_with_timeout(&probe, &ctx.target(), timeout).await,
            want
        );
    }

    runtime.kill("probe-target", libc::SIGKILL).await.unwrap();
    runtime.wait("probe-target").await.unwrap();
    runtime.remove("probe-target").await.unwrap();
}
