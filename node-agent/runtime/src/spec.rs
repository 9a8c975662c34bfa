//! [`ContainerConfig`] -> OCI runtime spec (`config.json`): namespaces, mounts, devices,
//! capabilities and cgroup limits, Docker/containerd defaults where Kubernetes is silent.

use std::path::PathBuf;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, MountBuilder, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::cgroups;
use crate::{ContainerConfig, Error, MountKind, Result};

/// Docker's default capability set (moby `oci/caps/defaults.go`).
const DEFAULT_CAPS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths hidden from the container (moby's defaults).
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Checks what the shim and libcontainer need from `cfg` before anything is written.
pub(crate) fn validate(cfg: &ContainerConfig) -> Result<()> {
    let bad = |msg: String| Error::InvalidConfig {
        id: cfg.id.clone(),
        msg,
    };
    if cfg.id.is_empty()
        || cfg.id.len() > 64
        || !cfg
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad(
            "id must be 1-64 characters of [a-z0-9-] (it names files and a cgroup)".into(),
        ));
    }
    if cfg.args.is_empty() || cfg.args[0].is_empty() {
        return Err(bad(
            "args is empty: give the resolved command (image entrypoint + cmd)".into(),
        ));
    }
    if !cfg.rootfs.is_absolute() {
        return Err(bad(format!(
            "rootfs {} must be an absolute path",
            cfg.rootfs.display()
        )));
    }
    if !cfg.cwd.is_empty() && !cfg.cwd.starts_with('/') {
        return Err(bad(format!("cwd {:?} must be absolute", cfg.cwd)));
    }
    for m in &cfg.mounts {
        if !m.destination.starts_with('/') {
            return Err(bad(format!(
                "mount destination {:?} must be absolute",
                m.destination
            )));
        }
    }
    if let Some(p) = cfg
        .namespaces
        .net
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty())
    {
        if !p.is_absolute() {
            return Err(bad(format!(
                "net namespace {} must be absolute",
                p.display()
            )));
        }
    }
    if cfg.cgroup_parent.split('/').any(|c| c == "..") {
        return Err(bad(format!(
            "cgroup_parent {:?} must not contain ..",
            cfg.cgroup_parent
        )));
    }
    Ok(())
}

/// The container's cgroup path as written into the spec: `/<cgroup_parent>/<id>`.
pub(crate) fn cgroup_path(cfg: &ContainerConfig) -> String {
    let parent = cfg.cgroup_parent.trim_matches('/');
    if parent.is_empty() {
        format!("/{}", cfg.id)
    } else {
        format!("/{parent}/{}", cfg.id)
    }
}

/// Builds the OCI runtime spec of `cfg` for this host's cgroup mode.
pub fn build_spec(cfg: &ContainerConfig) -> Result<Spec> {
    validate(cfg)?;
    build_spec_for(cfg, cgroups::mode().swap_accounting())
}

pub(crate) fn build_spec_for(cfg: &ContainerConfig, swap_accounting: bool) -> Result<Spec> {
    let caps: Capabilities = DEFAULT_CAPS.iter().copied().collect();
    // Like containerd for non-root users: the bounding set stays, but the process starts
    // without effective/permitted capabilities (the kernel would clear them on setuid
    // anyway; libcontainer keeps them across setuid, so say it explicitly).
    let process_caps = if cfg.uid == 0 {
        caps.clone()
    } else {
        Capabilities::new()
    };
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps)
        .effective(process_caps.clone())
        .permitted(process_caps)
        .build()?;
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);

    let mut env: Vec<String> = Vec::with_capacity(cfg.env.len() + 2);
    if !cfg.env.iter().any(|(k, _)| k == "PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if !cfg.env.iter().any(|(k, _)| k == "HOSTNAME") && !cfg.hostname.is_empty() {
        env.push(format!("HOSTNAME={}", cfg.hostname));
    }
    env.extend(cfg.env.iter().map(|(k, v)| format!("{k}={v}")));

    let mut user = UserBuilder::default().uid(cfg.uid).gid(cfg.gid);
    if !cfg.additional_gids.is_empty() {
        user = user.additional_gids(cfg.additional_gids.clone());
    }
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user.build()?)
        .args(cfg.args.clone())
        .env(env)
        .cwd(if cfg.cwd.is_empty() { "/" } else { &cfg.cwd })
        .no_new_privileges(false)
        .capabilities(capabilities)
        .build()?;
    // ProcessBuilder's defaults include an RLIMIT_NOFILE of 1024; inherit the shim's.
    let mut process = process;
    process.set_rlimits(None);

    let mut namespaces = vec![
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Pid)
            .build()?,
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Mount)
            .build()?,
    ];
    let join = |typ: LinuxNamespaceType, path: &PathBuf| {
        let b = LinuxNamespaceBuilder::default().typ(typ);
        if path.as_os_str().is_empty() {
            b.build()
        } else {
            b.path(path.clone()).build()
        }
    };
    namespaces.push(join(LinuxNamespaceType::Ipc, &cfg.namespaces.ipc)?);
    namespaces.push(join(LinuxNamespaceType::Uts, &cfg.namespaces.uts)?);
    if let Some(net) = &cfg.namespaces.net {
        // An empty path means "a new, empty network namespace" (loopback only).
        namespaces.push(join(LinuxNamespaceType::Network, net)?);
    }
    // No cgroup namespace: libcontainer would add one by default in its own spec
    // template; containers see their cgroup paths like Docker on v1 hosts.

    // Devices: deny everything, then the standard set (libcgroups also appends its
    // defaults after ours on v1; the explicit list keeps v2/eBPF and runc identical).
    let mut device_rules = vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?];
    for (major, minor) in [
        (1, Some(3)), // null
        (1, Some(5)), // zero
        (1, Some(7)), // full
        (1, Some(8)), // random
        (1, Some(9)), // urandom
        (5, Some(0)), // tty
        (5, Some(1)), // console
        (5, Some(2)), // ptmx
        (136, None),  // pts/*
    ] {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(major)
            .access("rwm");
        if let Some(minor) = minor {
            b = b.minor(minor);
        }
        device_rules.push(b.build()?);
    }

    let mut resources = LinuxResourcesBuilder::default().devices(device_rules);
    let r = &cfg.resources;
    if let Some(limit) = r.memory_limit.filter(|l| *l > 0) {
        let mut mem = LinuxMemoryBuilder::default().limit(limit);
        // memory+swap = limit: the container OOMs at the limit instead of swapping.
        if swap_accounting {
            mem = mem.swap(limit);
        }
        resources = resources.memory(mem.build()?);
    }
    if r.cpu_quota.is_some() || r.cpu_shares.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(quota) = r.cpu_quota.filter(|q| *q > 0) {
            cpu = cpu.quota(quota).period(r.cpu_period.unwrap_or(100_000));
        }
        if let Some(shares) = r.cpu_shares {
            cpu = cpu.shares(shares.clamp(2, 262_144));
        }
        resources = resources.cpu(cpu.build()?);
    }
    if let Some(pids) = r.pids_limit.filter(|p| *p > 0) {
        resources = resources.pids(LinuxPidsBuilder::default().limit(pids).build()?);
    }

    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(cgroup_path(cfg)))
        .resources(resources.build()?)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .build()?;

    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(cfg.rootfs.clone())
                .readonly(cfg.readonly_rootfs)
                .build()?,
        )
        .process(process)
        .mounts(mounts(cfg)?)
        .linux(linux)
        .build()?;
    // Only a new UTS namespace gets a hostname; a joined one (the sandbox's) has it.
    let new_uts = cfg.namespaces.uts.as_os_str().is_empty();
    spec.set_hostname((new_uts && !cfg.hostname.is_empty()).then(|| cfg.hostname.clone()));
    Ok(spec)
}

fn mounts(cfg: &ContainerConfig) -> Result<Vec<oci_spec::runtime::Mount>> {
    let m = |dest: &str, typ: &str, src: &str, opts: &[&str]| {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(src)
            .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
    };
    let mut out = vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        m(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        m(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
    ];
    for mount in &cfg.mounts {
        let built = match mount.kind {
            MountKind::Bind => {
                let mut opts = vec!["rbind", "rprivate"];
                if mount.read_only {
                    opts.push("ro");
                }
                MountBuilder::default()
                    .destination(&mount.destination)
                    .typ("bind")
                    .source(mount.source.clone())
                    .options(opts.into_iter().map(String::from).collect::<Vec<_>>())
                    .build()?
            }
            MountKind::Tmpfs { size } => {
                let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
                if let Some(size) = size {
                    opts.push(format!("size={size}"));
                }
                if mount.read_only {
                    opts.push("ro".into());
                }
                MountBuilder::default()
                    .destination(&mount.destination)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(opts)
                    .build()?
            }
        };
        out.push(built);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mount, Resources, SandboxNamespaces};

    fn cfg() -> ContainerConfig {
        ContainerConfig {
            id: "c1".into(),
            rootfs: "/rootfs".into(),
            args: vec!["/bin/sh".into()],
            hostname: "pod-a".into(),
            cgroup_parent: "tug/n1/podx".into(),
            namespaces: SandboxNamespaces {
                net: Some("/run/netns/x".into()),
                ipc: "/sb/ipc".into(),
                uts: "/sb/uts".into(),
            },
            ..Default::default()
        }
    }

    #[test]
    fn invalid_configs_are_rejected_with_the_field_named() {
        type Mutate = Box<dyn Fn(&mut ContainerConfig)>;
        let cases: Vec<(&str, Mutate, &str)> = vec![
            ("empty id", Box::new(|c| c.id.clear()), "id must be"),
            ("upper id", Box::new(|c| c.id = "A".into()), "id must be"),
            ("long id", Box::new(|c| c.id = "a".repeat(65)), "id must be"),
            ("no args", Box::new(|c| c.args.clear()), "args is empty"),
            (
                "relative rootfs",
                Box::new(|c| c.rootfs = "r".into()),
                "rootfs",
            ),
            ("relative cwd", Box::new(|c| c.cwd = "x".into()), "cwd"),
            (
                "relative mount",
                Box::new(|c| {
                    c.mounts.push(Mount {
                        source: "/a".into(),
                        destination: "b".into(),
                        read_only: false,
                        kind: MountKind::Bind,
                    })
                }),
                "mount destination",
            ),
            (
                "dotdot cgroup",
                Box::new(|c| c.cgroup_parent = "tug/../x".into()),
                "cgroup_parent",
            ),
        ];
        for (name, mutate, want) in cases {
            let mut c = cfg();
            mutate(&mut c);
            let err = validate(&c).expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
        validate(&cfg()).unwrap();
    }

    #[test]
    fn sandbox_namespaces_are_joined_and_pid_mount_are_new() {
        let spec = build_spec_for(&cfg(), true).unwrap();
        let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        let get = |t| ns.iter().find(|n| n.typ() == t).map(|n| n.path().clone());
        assert_eq!(get(LinuxNamespaceType::Pid), Some(None));
        assert_eq!(get(LinuxNamespaceType::Mount), Some(None));
        assert_eq!(get(LinuxNamespaceType::Ipc), Some(Some("/sb/ipc".into())));
        assert_eq!(get(LinuxNamespaceType::Uts), Some(Some("/sb/uts".into())));
        assert_eq!(
            get(LinuxNamespaceType::Network),
            Some(Some("/run/netns/x".into()))
        );
        assert_eq!(get(LinuxNamespaceType::Cgroup), None);
        // Joined UTS namespace: no hostname, which libcontainer would not set anyway.
        assert_eq!(spec.hostname(), &None);
        assert_eq!(
            spec.linux().as_ref().unwrap().cgroups_path(),
            &Some(PathBuf::from("/tug/n1/podx/c1"))
        );
    }

    #[test]
    fn host_network_has_no_network_namespace_and_new_uts_gets_the_hostname() {
        let mut c = cfg();
        c.namespaces = SandboxNamespaces {
            net: None,
            ipc: PathBuf::new(),
            uts: PathBuf::new(),
        };
        let spec = build_spec_for(&c, false).unwrap();
        let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        assert_eq!(spec.hostname(), &Some("pod-a".into()));
    }

    #[test]
    fn devices_start_with_deny_all() {
        let spec = build_spec_for(&cfg(), true).unwrap();
        let devs = spec
            .linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        assert!(!devs[0].allow());
        assert_eq!(devs[0].typ(), None);
        assert!(devs[1..].iter().all(|d| d.allow()));
    }

    #[test]
    fn memory_limit_sets_swap_only_with_swap_accounting() {
        let mut c = cfg();
        c.resources = Resources {
            memory_limit: Some(20 << 20),
            cpu_quota: Some(50_000),
            cpu_shares: Some(1),
            pids_limit: Some(100),
            ..Default::default()
        };
        for (swap_accounting, want_swap) in [(true, Some(20 << 20)), (false, None)] {
            let spec = build_spec_for(&c, swap_accounting).unwrap();
            let res = spec.linux().as_ref().unwrap().resources().clone().unwrap();
            let mem = res.memory().unwrap();
            assert_eq!(mem.limit(), Some(20 << 20));
            assert_eq!(mem.swap(), want_swap);
            let cpu = res.cpu().clone().unwrap();
            assert_eq!(cpu.quota(), Some(50_000));
            assert_eq!(cpu.period(), Some(100_000));
            assert_eq!(
                cpu.shares(),
                Some(2),
                "shares are clamped to the kernel's minimum"
            );
            assert_eq!(res.pids().unwrap().limit(), 100);
        }
    }

    #[test]
    fn non_root_users_start_without_effective_capabilities() {
        let mut c = cfg();
        c.uid = 1000;
        let spec = build_spec_for(&c, true).unwrap();
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert!(caps.effective().as_ref().unwrap().is_empty());
        assert!(caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::Chown));
        let spec = build_spec_for(&cfg(), true).unwrap();
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert!(caps
            .effective()
            .as_ref()
            .unwrap()
            .contains(&Capability::Kill));
    }

    #[test]
    fn readonly_bind_and_sized_tmpfs_mounts_carry_their_options() {
        let mut c = cfg();
        c.mounts = vec![
            Mount {
                source: "/v".into(),
                destination: "/data".into(),
                read_only: true,
                kind: MountKind::Bind,
            },
            Mount {
                source: PathBuf::new(),
                destination: "/cache".into(),
                read_only: false,
                kind: MountKind::Tmpfs { size: Some(1024) },
            },
        ];
        let spec = build_spec_for(&c, true).unwrap();
        let mounts = spec.mounts().clone().unwrap();
        let data = mounts
            .iter()
            .find(|m| m.destination() == &PathBuf::from("/data"))
            .unwrap();
        assert!(data.options().as_ref().unwrap().contains(&"ro".to_string()));
        let cache = mounts
            .iter()
            .find(|m| m.destination() == &PathBuf::from("/cache"))
            .unwrap();
        assert_eq!(cache.typ().as_deref(), Some("tmpfs"));
        assert!(cache
            .options()
            .as_ref()
            .unwrap()
            .contains(&"size=1024".to_string()));
    }
}
