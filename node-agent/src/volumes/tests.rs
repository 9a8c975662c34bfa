//! Unit tests of volumes that need no apiserver (emptyDir, hostPath, downwardAPI,
//! mounts, teardown). configMap/secret projection is tested in tests/volumes.rs.

use super::*;
use std::os::unix::fs::symlink;
use tug_proto::core::v1::{
    DownwardAPIVolumeFile, DownwardAPIVolumeSource, EmptyDirVolumeSource, EnvVar,
    HostPathVolumeSource, ObjectFieldSelector, PodSpec, VolumeMount,
};
use tug_proto::{ObjectMeta, Quantity};

/// A `Volumes` on a temp dir whose client points nowhere (these tests never call the API).
/// Tears the test pods down on drop, so a failed assertion leaves no tmpfs behind.
struct Env {
    dir: tempfile::TempDir,
    volumes: Volumes,
    uids: Vec<String>,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = tug_client::Config::new("http://127.0.0.1:9".parse().unwrap());
        let volumes = Volumes::new(dir.path().join("pods"), Client::new(config).unwrap());
        Env {
            dir,
            volumes,
            uids: Vec::new(),
        }
    }

    fn pod(&mut self, uid: &str, volumes: Vec<Volume>, mounts: Vec<VolumeMount>) -> Pod {
        self.uids.push(uid.to_string());
        let mut meta = ObjectMeta::namespaced("default", "p");
        meta.uid = Some(uid.into());
        Pod {
            metadata: meta,
            spec: Some(PodSpec {
                volumes,
                containers: vec![Container {
                    name: "c".into(),
                    volume_mounts: mounts,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for uid in &self.uids {
            let _ = self.volumes.teardown(uid);
        }
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn host_path(name: &str, path: &Path, ty: &str) -> Volume {
    Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: path.to_string_lossy().into_owned(),
            type_: Some(ty.into()),
        }),
        ..Default::default()
    }
}

fn vm(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn container(pod: &Pod) -> &Container {
    &pod.spec.as_ref().unwrap().containers[0]
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[tokio::test]
async fn empty_dirs_are_world_writable_and_mounted_read_write_with_sub_paths_created() {
    let mut env = Env::new();
    let mut ro = vm("scratch", "/ro");
    ro.read_only = Some(true);
    let mut sub = vm("scratch", "data");
    sub.sub_path = Some("a/b".into());
    let pod = env.pod(
        "uid-1",
        vec![empty_dir("scratch")],
        vec![vm("scratch", "/scratch"), ro, sub],
    );
    env.volumes.setup(&pod).await.unwrap();
    let dir = env.volumes.volumes_dir("uid-1").join("empty-dir/scratch");
    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o777);
    // A second setup (agent restart) keeps the data.
    fs::write(dir.join("kept"), "x").unwrap();
    env.volumes.setup(&pod).await.unwrap();
    assert!(dir.join("kept").exists());

    let mounts = env.volumes.mounts(&pod, container(&pod)).unwrap();
    let real = fs::canonicalize(&dir).unwrap();
    let got: Vec<_> = mounts
        .iter()
        .map(|m| {
            (
                m.source.clone(),
                m.destination.as_str(),
                m.read_only,
                m.kind,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (dir.clone(), "/scratch", false, MountKind::Bind),
            (dir.clone(), "/ro", true, MountKind::Bind),
            (real.join("a/b"), "/data", false, MountKind::Bind),
        ]
    );
    assert!(real.join("a/b").is_dir());
}

#[tokio::test]
async fn mounts_name_unknown_volumes_and_bad_sub_paths() {
    let mut env = Env::new();
    let outside = tempfile::tempdir().unwrap();
    let mut up = vm("scratch", "/x");
    up.sub_path = Some("../../etc".into());
    let mut abs = vm("scratch", "/x");
    abs.sub_path = Some("/etc".into());
    let mut escape = vm("scratch", "/x");
    escape.sub_path = Some("evil".into());
    let pod = env.pod("uid-2", vec![empty_dir("scratch")], vec![]);
    env.volumes.setup(&pod).await.unwrap();
    // A container could plant this symlink in its own emptyDir.
    let dir = env.volumes.volumes_dir("uid-2").join("empty-dir/scratch");
    symlink(outside.path(), dir.join("evil")).unwrap();

    let cases = [
        (
            vm("nope", "/x"),
            "cannot find volume \"nope\" to mount into container \"c\"",
        ),
        (up, "must not contain '..'"),
        (abs, "must be a relative path"),
        (escape, "outside of the volume"),
    ];
    for (mount, want) in cases {
        let mut p = pod.clone();
        p.spec.as_mut().unwrap().containers[0].volume_mounts = vec![mount];
        let err = env.volumes.mounts(&p, container(&p)).unwrap_err();
        assert!(err.to_string().contains(want), "{err} (want {want})");
        assert_eq!(err.waiting_reason(), "CreateContainerConfigError");
    }
}

#[tokio::test]
async fn sub_path_expr_expands_the_containers_env_and_pod_fields() {
    let mut env = Env::new();
    let mut m = vm("scratch", "/logs");
    m.sub_path_expr = Some("$(POD_NAME)/$(KIND)/$(MISSING)/$$".into());
    let mut pod = env.pod("uid-3", vec![empty_dir("scratch")], vec![m]);
    pod.spec.as_mut().unwrap().containers[0].env = vec![
        EnvVar {
            name: "KIND".into(),
            value: Some("web".into()),
            value_from: None,
        },
        EnvVar {
            name: "POD_NAME".into(),
            value: None,
            value_from: Some(tug_proto::core::v1::EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: "metadata.name".into(),
                }),
                ..Default::default()
            }),
        },
    ];
    env.volumes.setup(&pod).await.unwrap();
    let mounts = env.volumes.mounts(&pod, container(&pod)).unwrap();
    assert!(
        mounts[0].source.ends_with("scratch/p/web/$(MISSING)/$"),
        "{:?}",
        mounts[0].source
    );
}

#[tokio::test]
async fn host_path_types_are_checked_like_kubernetes() {
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    fs::create_dir(h.join("dir")).unwrap();
    fs::write(h.join("file"), "x").unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(h.join("sock")).unwrap();

    let cases: Vec<(&str, PathBuf, &str, Option<String>)> = vec![
        ("", h.join("missing"), "unset type checks nothing", None),
        ("Directory", h.join("dir"), "dir is a dir", None),
        (
            "Directory",
            h.join("file"),
            "file is not a dir",
            Some(format!(
                "hostPath type check failed: {}/file is not a directory",
                h.display()
            )),
        ),
        (
            "Directory",
            h.join("missing"),
            "missing is not a dir",
            Some(format!(
                "hostPath type check failed: {}/missing is not a directory",
                h.display()
            )),
        ),
        ("DirectoryOrCreate", h.join("new/deep"), "created", None),
        ("File", h.join("file"), "file is a file", None),
        (
            "File",
            h.join("dir"),
            "dir is not a file",
            Some(format!(
                "hostPath type check failed: {}/dir is not a file",
                h.display()
            )),
        ),
        ("FileOrCreate", h.join("newfile"), "file created", None),
        ("Socket", h.join("sock"), "socket", None),
        (
            "Socket",
            h.join("file"),
            "not a socket",
            Some(format!(
                "hostPath type check failed: {}/file is not a socket file",
                h.display()
            )),
        ),
        ("CharDevice", PathBuf::from("/dev/null"), "char dev", None),
        (
            "CharDevice",
            h.join("file"),
            "not a char dev",
            Some(format!(
                "hostPath type check failed: {}/file is not a character device",
                h.display()
            )),
        ),
        (
            "BlockDevice",
            PathBuf::from("/dev/null"),
            "not a block dev",
            Some("hostPath type check failed: /dev/null is not a block device".into()),
        ),
        (
            "Bogus",
            h.join("dir"),
            "bad type",
            Some("Bogus is an invalid volume type".into()),
        ),
    ];
    for (ty, path, name, want) in cases {
        let mut env = Env::new();
        let pod = env.pod("uid-hp", vec![host_path("hp", &path, ty)], vec![]);
        match (env.volumes.setup(&pod).await, want) {
            (Ok(()), None) => {}
            (Err(e), Some(want)) => assert_eq!(
                e.to_string(),
                format!("MountVolume.SetUp failed for volume \"hp\" : {want}"),
                "{name}"
            ),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
    assert!(h.join("new/deep").is_dir());
    assert!(h.join("newfile").is_file());
}

#[tokio::test]
async fn teardown_removes_the_pods_volumes_but_never_host_files() {
    let mut env = Env::new();
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("precious"), "keep").unwrap();
    let mut sub = vm("hp", "/h");
    sub.sub_path = Some("made-by-subpath".into());
    let pod = env.pod(
        "uid-4",
        vec![
            empty_dir("scratch"),
            host_path("hp", host.path(), "Directory"),
        ],
        vec![vm("scratch", "/s"), sub],
    );
    env.volumes.setup(&pod).await.unwrap();
    let mounts = env.volumes.mounts(&pod, container(&pod)).unwrap();
    assert_eq!(
        mounts[1].source,
        fs::canonicalize(host.path())
            .unwrap()
            .join("made-by-subpath")
    );
    let scratch = env.volumes.volumes_dir("uid-4").join("empty-dir/scratch");
    symlink(host.path(), scratch.join("link-to-host")).unwrap();

    env.volumes.teardown("uid-4").unwrap();
    assert!(!env.volumes.volumes_dir("uid-4").exists());
    assert_eq!(
        fs::read_to_string(host.path().join("precious")).unwrap(),
        "keep"
    );
    // Idempotent, and refuses paths that are not a uid.
    env.volumes.teardown("uid-4").unwrap();
    assert!(env.volumes.teardown("../x").is_err());
    assert!(env.dir.path().join("pods/uid-4").exists());
}

#[tokio::test]
async fn memory_empty_dir_is_a_sized_tmpfs_that_teardown_unmounts() {
    if !is_root() {
        eprintln!("skipped: mounting tmpfs needs root");
        return;
    }
    let mut env = Env::new();
    let mut vol = empty_dir("mem");
    vol.empty_dir = Some(EmptyDirVolumeSource {
        medium: Some("Memory".into()),
        size_limit: Some(Quantity::parse("1Mi").unwrap()),
    });
    let pod = env.pod("uid-5", vec![vol], vec![vm("mem", "/mem")]);
    env.volumes.setup(&pod).await.unwrap();
    let dir = env.volumes.volumes_dir("uid-5").join("empty-dir/mem");
    assert!(host_fs::is_mount_point(&dir).unwrap());
    let stat = nix::sys::statfs::statfs(&dir).unwrap();
    assert_eq!(stat.filesystem_type(), nix::sys::statfs::TMPFS_MAGIC);
    assert_eq!(stat.blocks() * stat.block_size() as u64, 1024 * 1024);
    // Setting up again does not stack a second tmpfs over the first.
    fs::write(dir.join("kept"), "x").unwrap();
    env.volumes.setup(&pod).await.unwrap();
    assert!(dir.join("kept").exists());
    let mounted = host_fs::mount_points().unwrap();
    let real = fs::canonicalize(&dir).unwrap();
    assert_eq!(mounted.iter().filter(|m| **m == real).count(), 1);

    env.volumes.teardown("uid-5").unwrap();
    assert!(!host_fs::mount_points().unwrap().contains(&real));
    assert!(!dir.exists());
}

#[tokio::test]
async fn downward_api_volumes_follow_label_changes_on_refresh() {
    let mut env = Env::new();
    let vol = Volume {
        name: "info".into(),
        downward_api: Some(DownwardAPIVolumeSource {
            items: vec![DownwardAPIVolumeFile {
                path: "labels".into(),
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: "metadata.labels".into(),
                }),
                resource_field_ref: None,
                mode: None,
            }],
            default_mode: None,
        }),
        ..Default::default()
    };
    let mut pod = env.pod("uid-6", vec![vol], vec![vm("info", "/etc/podinfo")]);
    pod.metadata.labels.insert("app".into(), "a".into());
    env.volumes.setup(&pod).await.unwrap();
    let dir = env.volumes.volumes_dir("uid-6").join("downward-api/info");
    assert_eq!(fs::read_to_string(dir.join("labels")).unwrap(), "app=\"a\"");
    assert!(!env.volumes.refresh(&pod).await.unwrap());
    pod.metadata.labels.insert("app".into(), "b".into());
    assert!(env.volumes.refresh(&pod).await.unwrap());
    assert_eq!(fs::read_to_string(dir.join("labels")).unwrap(), "app=\"b\"");
    let mounts = env.volumes.mounts(&pod, container(&pod)).unwrap();
    assert!(
        mounts[0].read_only,
        "downwardAPI volumes are always read-only"
    );
}

#[tokio::test]
async fn unsupported_volume_types_fail_setup_with_a_clear_reason() {
    let mut env = Env::new();
    let vol = Volume {
        name: "data".into(),
        persistent_volume_claim: Some(Default::default()),
        ..Default::default()
    };
    let pod = env.pod("uid-7", vec![vol], vec![]);
    let err = env.volumes.setup(&pod).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("MountVolume.SetUp failed for volume \"data\" : persistentVolumeClaim volumes are not supported"),
        "{err}"
    );
    assert_eq!(err.event_reason(), "FailedMount");
}

#[tokio::test]
async fn fs_group_makes_volumes_group_owned_and_readable() {
    use std::os::unix::fs::MetadataExt;
    if !is_root() {
        eprintln!("skipped: changing a file's group needs root");
        return;
    }
    let mut env = Env::new();
    let info = Volume {
        name: "info".into(),
        downward_api: Some(DownwardAPIVolumeSource {
            items: vec![DownwardAPIVolumeFile {
                path: "deep/name".into(),
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: "metadata.name".into(),
                }),
                resource_field_ref: None,
                mode: None,
            }],
            default_mode: Some(0o400),
        }),
        ..Default::default()
    };
    let mut pod = env.pod("uid-8", vec![empty_dir("scratch"), info], vec![]);
    pod.spec.as_mut().unwrap().security_context = Some(tug_proto::core::v1::PodSecurityContext {
        fs_group: Some(1234),
        ..Default::default()
    });
    env.volumes.setup(&pod).await.unwrap();
    let vdir = env.volumes.volumes_dir("uid-8");
    let scratch = fs::metadata(vdir.join("empty-dir/scratch")).unwrap();
    assert_eq!(scratch.gid(), 1234);
    assert_eq!(scratch.mode() & 0o7777, 0o2777);
    let file = fs::metadata(vdir.join("downward-api/info/deep/name")).unwrap();
    assert_eq!(file.gid(), 1234);
    assert_eq!(file.mode() & 0o777, 0o440);
    let deep = fs::metadata(vdir.join("downward-api/info/deep")).unwrap();
    assert_eq!(deep.gid(), 1234);
    // The group-read bit is part of the payload: a refresh does not rewrite.
    assert!(!env.volumes.refresh(&pod).await.unwrap());
}

#[tokio::test]
async fn volume_names_cannot_walk_out_of_the_pods_dir() {
    let mut env = Env::new();
    let pod = env.pod("uid-9", vec![empty_dir("../../escape")], vec![]);
    let err = env.volumes.setup(&pod).await.unwrap_err();
    assert!(err.to_string().contains("must be a DNS label"), "{err}");
    assert!(!env.dir.path().join("escape").exists());
}
