//! cgroup v1/v2 detection, pod cgroups (the parents of the containers' cgroups), OOM
//! counters, and removal of cgroups a dead shim left behind.
//!
//! libcontainer creates and removes each container's own cgroup; this module owns only
//! what is above it (`<cgroup_parent>`) and the post-mortem reads.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::{Error, Resources, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// v1 controllers: every one libcontainer puts a container's cgroup in, so pod cgroups
/// parent them all and cleanup finds them all.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "pids",
    "devices",
    "freezer",
    "blkio",
    "hugetlb",
    "perf_event",
    "net_cls",
    "net_prio",
];

/// Which cgroup hierarchy this host uses for resource control. A hybrid host (v1
/// controllers plus an empty cgroup2 at /sys/fs/cgroup/unified) counts as V1, as for
/// libcontainer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    V1,
    V2,
}

/// This host's mode (read once).
pub fn mode() -> CgroupMode {
    static MODE: OnceLock<CgroupMode> = OnceLock::new();
    *MODE.get_or_init(|| match nix::sys::statfs::statfs(CGROUP_ROOT) {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => CgroupMode::V2,
        _ => CgroupMode::V1,
    })
}

impl CgroupMode {
    /// Whether memory+swap can be limited (v1 `memory.memsw.*`, v2 `memory.swap.max`).
    pub fn swap_accounting(self) -> bool {
        match self {
            CgroupMode::V1 => v1_mount("memory")
                .map(|m| m.join("memory.memsw.limit_in_bytes").exists())
                .unwrap_or(false),
            // The root cgroup has no memory.swap.max; our own cgroup does when swap
            // accounting is on.
            CgroupMode::V2 => own_v2_cgroup()
                .map(|p| p.join("memory.swap.max").exists())
                .unwrap_or(false),
        }
    }
}

fn own_v2_cgroup() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(Path::new(CGROUP_ROOT).join(rel.trim_start_matches('/')))
}

/// Mount points of the v1 hierarchies, by controller name (from /proc/self/mountinfo,
/// so co-mounted `cpu,cpuacct` resolve to the same directory).
fn v1_mounts() -> &'static Vec<(String, PathBuf)> {
    static MOUNTS: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    MOUNTS.get_or_init(|| {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        parse_v1_mounts(&text)
    })
}

fn parse_v1_mounts(mountinfo: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // "<id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype> <source> <super opts>"
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut right = right.split(' ');
        if right.next() != Some("cgroup") {
            continue;
        }
        let super_opts = right.nth(1).unwrap_or("");
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        for opt in super_opts.split(',') {
            if V1_CONTROLLERS.contains(&opt) {
                out.push((opt.to_string(), PathBuf::from(mount_point)));
            }
        }
    }
    out
}

fn v1_mount(controller: &str) -> Option<PathBuf> {
    v1_mounts()
        .iter()
        .find(|(c, _)| c == controller)
        .map(|(_, p)| p.clone())
}

/// Every directory that holds `path` (one per v1 hierarchy, deduplicated; one on v2).
fn dirs_of(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_matches('/');
    match mode() {
        CgroupMode::V2 => vec![Path::new(CGROUP_ROOT).join(rel)],
        CgroupMode::V1 => {
            let mut dirs: Vec<PathBuf> = V1_CONTROLLERS
                .iter()
                .filter_map(|c| v1_mount(c))
                .map(|m| m.join(rel))
                .collect();
            dirs.sort();
            dirs.dedup();
            dirs
        }
    }
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|e| Error::Cgroup {
        path: path.display().to_string(),
        msg: format!("writing {value:?}: {e}"),
    })
}

fn mkdir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| Error::Cgroup {
        path: path.display().to_string(),
        msg: format!("creating: {e}"),
    })
}

fn check_parent(cgroup_parent: &str) -> Result<()> {
    let rel = cgroup_parent.trim_matches('/');
    if rel.is_empty()
        || rel
            .split('/')
            .any(|c| c == ".." || c == "." || c.is_empty())
    {
        return Err(Error::Cgroup {
            path: cgroup_parent.to_string(),
            msg: "a pod cgroup must be a non-empty relative path without . or .. (e.g. tug/node-1/pod<uid>)".into(),
        });
    }
    Ok(())
}

/// Creates the pod-level cgroup `cgroup_parent` (and its ancestors) with the pod's
/// summed limits. Idempotent: limits are rewritten when it exists.
pub fn create_pod_cgroup(cgroup_parent: &str, res: &Resources) -> Result<()> {
    check_parent(cgroup_parent)?;
    let rel = cgroup_parent.trim_matches('/');
    match mode() {
        CgroupMode::V1 => {
            for controller in V1_CONTROLLERS {
                let Some(mount) = v1_mount(controller) else {
                    continue;
                };
                let dir = mount.join(rel);
                mkdir(&dir)?;
                if *controller == "cpuset" {
                    // A new v1 cpuset is empty, and a task cannot join an empty cpuset:
                    // copy cpus/mems down from the first non-empty ancestor.
                    fill_cpuset(&mount, rel)?;
                }
            }
            if let Some(mem) = v1_mount("memory").map(|m| m.join(rel)) {
                let limit = res.memory_limit.filter(|l| *l > 0).unwrap_or(-1);
                let memsw = mem.join("memory.memsw.limit_in_bytes");
                // memsw must stay >= limit: raise it first when raising, lower it last.
                if memsw.exists() && limit == -1 {
                    write(&memsw, "-1")?;
                    write(&mem.join("memory.limit_in_bytes"), "-1")?;
                } else {
                    write(&mem.join("memory.limit_in_bytes"), &limit.to_string()).or_else(
                        |_| {
                            if memsw.exists() {
                                write(&memsw, &limit.to_string())?;
                            }
                            write(&mem.join("memory.limit_in_bytes"), &limit.to_string())
                        },
                    )?;
                    if memsw.exists() {
                        write(&memsw, &limit.to_string())?;
                    }
                }
            }
            if let Some(cpu) = v1_mount("cpu").map(|m| m.join(rel)) {
                if let Some(shares) = res.cpu_shares {
                    write(
                        &cpu.join("cpu.shares"),
                        &shares.clamp(2, 262_144).to_string(),
                    )?;
                }
                let period = res.cpu_period.unwrap_or(100_000);
                write(&cpu.join("cpu.cfs_period_us"), &period.to_string())?;
                let quota = res.cpu_quota.filter(|q| *q > 0).unwrap_or(-1);
                write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
            if let Some(pids) = v1_mount("pids").map(|m| m.join(rel)) {
                let max = res
                    .pids_limit
                    .filter(|p| *p > 0)
                    .map_or("max".to_string(), |p| p.to_string());
                write(&pids.join("pids.max"), &max)?;
            }
        }
        CgroupMode::V2 => {
            let root = Path::new(CGROUP_ROOT);
            // Enable the controllers on the way down so the pod (and its containers)
            // can use them.
            let mut dir = root.to_path_buf();
            for component in rel.split('/') {
                enable_v2_controllers(&dir)?;
                dir.push(component);
                mkdir(&dir)?;
            }
            enable_v2_controllers(&dir)?;
            let max = |v: Option<i64>| v.filter(|v| *v > 0).map_or("max".into(), |v| v.to_string());
            write(&dir.join("memory.max"), &max(res.memory_limit))?;
            if dir.join("memory.swap.max").exists() {
                write(
                    &dir.join("memory.swap.max"),
                    if res.memory_limit.is_some() {
                        "0"
                    } else {
                        "max"
                    },
                )?;
            }
            let period = res.cpu_period.unwrap_or(100_000);
            write(
                &dir.join("cpu.max"),
                &format!("{} {period}", max(res.cpu_quota)),
            )?;
            if let Some(shares) = res.cpu_shares {
                write(
                    &dir.join("cpu.weight"),
                    &shares_to_weight(shares).to_string(),
                )?;
            }
            write(&dir.join("pids.max"), &max(res.pids_limit))?;
        }
    }
    Ok(())
}

/// The cgroup v1 shares -> v2 weight mapping of runc/crun.
fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

fn enable_v2_controllers(dir: &Path) -> Result<()> {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<String> = available
        .split_whitespace()
        .filter(|c| ["cpu", "cpuset", "memory", "pids", "io"].contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if !wanted.is_empty() {
        write(&dir.join("cgroup.subtree_control"), &wanted.join(" "))?;
    }
    Ok(())
}

fn fill_cpuset(mount: &Path, rel: &str) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mut dir = mount.to_path_buf();
        let mut value = fs::read_to_string(dir.join(file)).unwrap_or_default();
        for component in rel.split('/') {
            dir.push(component);
            let current = fs::read_to_string(dir.join(file)).unwrap_or_default();
            if current.trim().is_empty() {
                write(&dir.join(file), value.trim())?;
            } else {
                value = current;
            }
        }
    }
    Ok(())
}

/// Removes the pod cgroup (kills what is left in it first). Ok if it is gone.
pub fn remove_pod_cgroup(cgroup_parent: &str) -> Result<()> {
    check_parent(cgroup_parent)?;
    for dir in dirs_of(cgroup_parent) {
        remove_tree(&dir)?;
    }
    Ok(())
}

/// Kills every process under `dir` and removes it, deepest first.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("reading cgroup", dir)(e)),
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    // A few tries: a killed process leaves the cgroup asynchronously.
    let mut last = None;
    for attempt in 0..50 {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(if attempt < 10 { 5 } else { 20 }));
    }
    Err(Error::Cgroup {
        path: dir.display().to_string(),
        msg: format!(
            "could not remove it: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ),
    })
}

/// Removes the container cgroup `path` (`/<parent>/<id>`) in every hierarchy.
pub(crate) fn remove_container_cgroup(path: &str) -> Result<()> {
    if path.trim_matches('/').is_empty() {
        return Ok(());
    }
    for dir in dirs_of(path) {
        remove_tree(&dir)?;
    }
    Ok(())
}

/// How many times the kernel OOM killer killed a task of cgroup `path`
/// (v1 `memory.oom_control` `oom_kill`, v2 `memory.events` `oom_kill`).
pub(crate) fn oom_kill_count(path: &str) -> u64 {
    let rel = path.trim_matches('/');
    let (file, key) = match mode() {
        CgroupMode::V1 => match v1_mount("memory") {
            Some(m) => (m.join(rel).join("memory.oom_control"), "oom_kill"),
            None => return 0,
        },
        CgroupMode::V2 => (
            Path::new(CGROUP_ROOT).join(rel).join("memory.events"),
            "oom_kill",
        ),
    };
    fs::read_to_string(file)
        .ok()
        .and_then(|t| parse_flat_keyed(&t, key))
        .unwrap_or(0)
}

fn parse_flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Whether `path` exists in any hierarchy (tests check for leaks with it).
pub fn cgroup_exists(path: &str) -> bool {
    dirs_of(path).iter().any(|d| d.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_v1_hierarchies_are_found_by_controller() {
        let text = "\
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid shared:9 - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
33 25 0:29 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
";
        let got = parse_v1_mounts(text);
        assert_eq!(
            got,
            vec![
                ("cpu".into(), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")),
                (
                    "cpuacct".into(),
                    PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
                ),
                ("memory".into(), PathBuf::from("/sys/fs/cgroup/memory")),
            ]
        );
    }

    #[test]
    fn oom_kill_counters_parse_from_v1_and_v2_files() {
        let cases = [
            ("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", Some(2)),
            (
                "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n",
                Some(1),
            ),
            ("oom_kill_disable 0\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_flat_keyed(text, "oom_kill"), want, "{text}");
        }
    }

    #[test]
    fn shares_map_to_weights_like_runc() {
        for (shares, weight) in [(2, 1), (1024, 39), (262_144, 10_000)] {
            assert_eq!(shares_to_weight(shares), weight);
        }
    }

    #[test]
    fn pod_cgroup_paths_must_be_plain_relative_paths() {
        for bad in ["", "/", "a/../b", "a//b", "./a"] {
            assert!(check_parent(bad).is_err(), "{bad:?}");
        }
        check_parent("tug/n1/pod1").unwrap();
        check_parent("/tug/n1/pod1").unwrap();
    }
}
