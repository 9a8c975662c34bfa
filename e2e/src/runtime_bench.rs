//! The runtime benchmark: the same trivial busybox `true` container run N times through
//! tug's runtime path (`ShimRuntime`: shim + libcontainer, run + wait + remove) and
//! through Debian's `runc run --bundle`, runs interleaved, medians printed; the last
//! line is `runtime: tug_ms=<median> runc_ms=<median> ratio=<tug/runc>`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tug_runtime::{
    create_pod_cgroup, remove_pod_cgroup, ContainerConfig, Resources, Runtime, SandboxNamespaces,
    ShimCommand, ShimRuntime,
};

/// Removes the benchmark's cgroups (killing anything left in them) on every exit path.
struct CgroupGuard(String);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let _ = remove_pod_cgroup(&self.0);
        // runc also makes this run's cgroup in the named (systemd) and unified
        // hierarchies: rmdir it there too, deepest first; then the shared "tug-bench"
        // parent, which goes only if no other run uses it.
        for entry in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            rmdir_tree(&entry.path().join(&self.0));
            let _ = std::fs::remove_dir(entry.path().join("tug-bench"));
        }
    }
}

/// Removes an (empty of processes) cgroup tree, children first; rmdir only.
fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// A busybox rootfs with just what `true` needs.
fn rootfs(dir: &Path) -> Result<PathBuf> {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "etc", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox"))
        .context("copying /usr/bin/busybox (apt-get install busybox-static)")?;
    for applet in ["true", "sh"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
    }
    Ok(rootfs)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return 0.0;
    }
    let m = s.len() / 2;
    if s.len().is_multiple_of(2) {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the benchmark; `shim` re-executes this binary's hidden `shim` subcommand.
pub async fn run(runs: usize, shim: ShimCommand, runc: PathBuf) -> Result<()> {
    ensure!(runs > 0, "--runs must be at least 1");
    ensure!(
        nix_is_root(),
        "the runtime benchmark creates containers: run it as root"
    );
    let dir = tempfile::Builder::new()
        .prefix("bench-runtime-")
        .tempdir()
        .context("creating the benchmark's temp dir")?;
    let rootfs = rootfs(dir.path())?;
    let cgroup_parent = format!("tug-bench/{}", std::process::id());
    create_pod_cgroup(&cgroup_parent, &Resources::default())?;
    let _cgroups = CgroupGuard(cgroup_parent.clone());

    let config = |id: &str| ContainerConfig {
        id: id.to_string(),
        rootfs: rootfs.clone(),
        args: vec!["/bin/true".into()],
        hostname: "bench".into(),
        // New IPC and UTS namespaces, host network: the same for both runtimes.
        namespaces: SandboxNamespaces::default(),
        cgroup_parent: cgroup_parent.clone(),
        log_path: dir.path().join("logs").join(format!("{id}.log")),
        ..Default::default()
    };

    // runc's bundle: the very spec tug's shim gets.
    let bundle = dir.path().join("runc-bundle");
    std::fs::create_dir_all(&bundle)?;
    tug_runtime::build_spec(&config("runc"))?
        .save(bundle.join("config.json"))
        .context("writing runc's config.json")?;
    let runc_root = dir.path().join("runc-state");

    let rt = ShimRuntime::new(dir.path().join("tug"), shim)?;
    let run_tug = |i: usize| {
        let (rt, cfg) = (&rt, config(&format!("tug-{i}")));
        async move {
            let id = cfg.id.clone();
            let t0 = Instant::now();
            rt.run(cfg).await?;
            let t1 = Instant::now();
            let state = rt.wait(&id).await?;
            let t2 = Instant::now();
            rt.remove(&id).await?;
            let t3 = Instant::now();
            match state {
                tug_runtime::ContainerState::Exited { exit_code: 0, .. } => {}
                other => bail!("tug container {id} ended as {other:?}"),
            }
            Ok::<_, anyhow::Error>([t3 - t0, t1 - t0, t2 - t1, t3 - t2])
        }
    };
    let run_runc = |i: usize| {
        let (runc, runc_root, bundle) = (&runc, &runc_root, &bundle);
        async move {
            let t0 = Instant::now();
            let status = tokio::process::Command::new(runc)
                .arg("--root")
                .arg(runc_root)
                .arg("run")
                .arg("--bundle")
                .arg(bundle)
                .arg(format!("runc-{i}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .status()
                .await
                .with_context(|| format!("running {}", runc.display()))?;
            ensure!(status.success(), "runc run exited with {status}");
            Ok::<_, anyhow::Error>(t0.elapsed())
        }
    };

    // One untimed round each: page cache, first-time cgroup setup.
    run_tug(runs).await.context("tug warm-up run")?;
    run_runc(runs).await.context("runc warm-up run")?;

    let (mut tug, mut tug_run, mut tug_wait, mut tug_remove, mut runc_ms) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        let [total, run, wait, remove] = run_tug(i).await?;
        tug.push(ms(total));
        tug_run.push(ms(run));
        tug_wait.push(ms(wait));
        tug_remove.push(ms(remove));
        runc_ms.push(ms(run_runc(i).await?));
    }
    println!(
        "tug  (shim + libcontainer): median {:.1} ms (run {:.1}, wait {:.1}, remove {:.1}), min {:.1}, max {:.1}",
        median(&tug),
        median(&tug_run),
        median(&tug_wait),
        median(&tug_remove),
        tug.iter().copied().fold(f64::MAX, f64::min),
        tug.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "runc ({}): median {:.1} ms, min {:.1}, max {:.1}",
        runc.display(),
        median(&runc_ms),
        runc_ms.iter().copied().fold(f64::MAX, f64::min),
        runc_ms.iter().copied().fold(0.0, f64::max),
    );
    let (t, r) = (median(&tug), median(&runc_ms));
    println!(
        "runtime: tug_ms={t:.1} runc_ms={r:.1} ratio={:.2}",
        if r > 0.0 { t / r } else { 0.0 }
    );
    Ok(())
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
