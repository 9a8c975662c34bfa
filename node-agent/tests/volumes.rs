//! configMap, secret and projected volumes against a real apiserver: projection, items
//! and modes, optional sources, updates swapped in by `refresh`, and the error a pod
//! gets for a missing object.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tug_agent::volumes::Volumes;
use tug_client::{Api, Client};
use tug_proto::core::v1::{
    ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, Container, KeyToPath, Pod, PodSpec,
    ProjectedVolumeSource, Secret, SecretProjection, SecretVolumeSource, Volume, VolumeMount,
    VolumeProjection,
};
use tug_proto::{ByteString, ObjectMeta};

/// Tears every pod's volumes down even when an assertion fails (tmpfs mounts as root).
struct Cleanup<'a> {
    volumes: &'a Volumes,
    uids: Vec<&'static str>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for uid in &self.uids {
            let _ = self.volumes.teardown(uid);
        }
    }
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta::namespaced("default", name),
        data: data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
    .with_type_meta()
}

fn pod(uid: &str, volumes: Vec<Volume>) -> Pod {
    let mut meta = ObjectMeta::namespaced("default", "web");
    meta.uid = Some(uid.into());
    let mounts = volumes
        .iter()
        .map(|v| VolumeMount {
            name: v.name.clone(),
            mount_path: format!("/etc/{}", v.name),
            ..Default::default()
        })
        .collect();
    Pod {
        metadata: meta,
        spec: Some(PodSpec {
            volumes,
            containers: vec![Container {
                name: "app".into(),
                volume_mounts: mounts,
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}

fn visible(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".."))
        .collect();
    names.sort();
    names
}

fn is_tmpfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).unwrap().filesystem_type() == nix::sys::statfs::TMPFS_MAGIC
}

#[tokio::test]
async fn config_maps_and_secrets_are_projected_and_updates_are_swapped_in() {
    let tmp = tempfile::tempdir().unwrap();
    let server = tug_apiserver::testing::single(&tmp.path().join("api")).await;
    let client =
        Client::new(tug_client::Config::from_kubeconfig_file(&server.kubeconfig).unwrap()).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    cms.create(&config_map("app", &[("a.conf", "A1"), ("b.conf", "B1")]))
        .await
        .unwrap();
    let mut secret = Secret {
        metadata: ObjectMeta::namespaced("default", "creds"),
        ..Default::default()
    }
    .with_type_meta();
    secret
        .data
        .insert("password".into(), ByteString::from("hunter2"));
    secrets.create(&secret).await.unwrap();

    let volumes = Volumes::new(tmp.path().join("pods"), client.clone());
    let _cleanup = Cleanup {
        volumes: &volumes,
        uids: vec!["uid-a", "uid-b"],
    };
    let p = pod(
        "uid-a",
        vec![
            Volume {
                name: "cfg".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: Some("app".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "sec".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some("creds".into()),
                    default_mode: Some(0o400),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "all".into(),
                projected: Some(ProjectedVolumeSource {
                    sources: vec![
                        VolumeProjection {
                            config_map: Some(ConfigMapProjection {
                                name: Some("app".into()),
                                items: vec![KeyToPath {
                                    key: "a.conf".into(),
                                    path: "conf/a".into(),
                                    mode: Some(0o600),
                                }],
                                optional: None,
                            }),
                            ..Default::default()
                        },
                        VolumeProjection {
                            secret: Some(SecretProjection {
                                name: Some("creds".into()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ],
                    default_mode: None,
                }),
                ..Default::default()
            },
            Volume {
                name: "maybe".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: Some("does-not-exist".into()),
                    optional: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
    );
    volumes.setup(&p).await.unwrap();

    let vdir = volumes.volumes_dir("uid-a");
    let cfg = vdir.join("configmap/cfg");
    let sec = vdir.join("secret/sec");
    let all = vdir.join("projected/all");
    assert_eq!(visible(&cfg), ["a.conf", "b.conf"]);
    assert_eq!(read(&cfg, "a.conf"), "A1");
    assert_eq!(read(&sec, "password"), "hunter2");
    let mode = fs::metadata(sec.join("password"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o400);
    assert_eq!(visible(&all), ["conf", "password"]);
    assert_eq!(read(&all, "conf/a"), "A1");
    let mode = fs::metadata(all.join("conf/a"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(visible(&vdir.join("configmap/maybe")).is_empty());
    if nix::unistd::geteuid().is_root() {
        assert!(is_tmpfs(&sec), "secret volumes live on tmpfs");
        assert!(!is_tmpfs(&cfg));
    }

    let mounts = volumes
        .mounts(&p, &p.spec.as_ref().unwrap().containers[0])
        .unwrap();
    let by_dest: BTreeMap<&str, (&PathBuf, bool)> = mounts
        .iter()
        .map(|m| (m.destination.as_str(), (&m.source, m.read_only)))
        .collect();
    assert_eq!(by_dest["/etc/cfg"], (&cfg, true));
    assert_eq!(by_dest["/etc/sec"], (&sec, true));

    // Nothing changed yet: refresh is a no-op that keeps the same ..data dir.
    let data_before = fs::read_link(cfg.join("..data")).unwrap();
    assert!(!volumes.refresh(&p).await.unwrap());
    assert_eq!(fs::read_link(cfg.join("..data")).unwrap(), data_before);

    // An update: a changed key, a removed key, a new secret value.
    cms.replace("app", &config_map("app", &[("a.conf", "A2")]))
        .await
        .unwrap();
    let mut s = secrets.get("creds").await.unwrap();
    s.data
        .insert("password".into(), ByteString::from("correct horse"));
    secrets.replace("creds", &s).await.unwrap();

    assert!(volumes.refresh(&p).await.unwrap());
    assert_eq!(visible(&cfg), ["a.conf"]);
    assert_eq!(read(&cfg, "a.conf"), "A2");
    assert_eq!(read(&sec, "password"), "correct horse");
    assert_eq!(read(&all, "conf/a"), "A2");
    assert_eq!(read(&all, "password"), "correct horse");
    assert!(!volumes.refresh(&p).await.unwrap());

    // Deleting the configMap keeps the last contents and reports why.
    cms.delete("app", &Default::default()).await.unwrap();
    let err = volumes.refresh(&p).await.unwrap_err();
    assert!(
        err.to_string().contains("configmap \"app\" not found"),
        "{err}"
    );
    assert_eq!(read(&cfg, "a.conf"), "A2");

    // A pod whose non-optional source is missing cannot start, and says which object.
    let missing = pod(
        "uid-b",
        vec![Volume {
            name: "cfg".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: Some("absent".into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
    );
    let err = volumes.setup(&missing).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"absent\" not found"
    );
    assert_eq!(err.waiting_reason(), "ContainerCreating");

    volumes.teardown("uid-a").unwrap();
    volumes.teardown("uid-b").unwrap();
    assert!(!vdir.exists());
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&tmp.path().to_string_lossy().into_owned()));
    server.shutdown().await;
}
