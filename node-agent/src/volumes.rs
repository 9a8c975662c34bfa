//! Pod volumes on the node: emptyDir (disk or tmpfs), hostPath with the kubelet's type
//! checks, and configMap / secret / downwardAPI / projected files kept up to date with
//! the kubelet's atomic writer; plus the bind mounts a container gets from them.
//!
//! Layout under the agent's pods dir (`<agent root>/pods`):
//!
//! ```text
//! <uid>/volumes/empty-dir/<name>      emptyDir (a tmpfs mount point for medium: Memory)
//! <uid>/volumes/configmap/<name>      atomic-writer dirs (see atomic_writer.rs)
//! <uid>/volumes/secret/<name>         ... on tmpfs when the agent is root, as the kubelet
//! <uid>/volumes/projected/<name>      ... on tmpfs when the agent is root
//! <uid>/volumes/downward-api/<name>
//! ```
//!
//! hostPath volumes have no dir here: the container binds the host path itself, so
//! teardown can never reach into the host's files.

mod atomic_writer;
mod host_fs;
mod projection;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use tug_client::{Api, Client};
use tug_proto::core::v1::{ConfigMap, Container, Pod, Secret, Volume};
use tug_runtime::{Mount, MountKind};

pub use atomic_writer::{AtomicWriter, FileProjection, Payload};
use projection::DEFAULT_MODE;

/// Errors of volume setup, refresh, mounts and teardown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A volume could not be set up; `reason` is what the kubelet would say after
    /// `MountVolume.SetUp failed for volume "x" : `, e.g. `configmap "app" not found`.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {reason}")]
    SetUp { volume: String, reason: String },
    #[error("cannot find volume {volume:?} to mount into container {container:?}")]
    UnknownVolume { volume: String, container: String },
    #[error(
        "invalid subPath {sub_path:?} of volume {volume:?} in container {container:?}: {reason}"
    )]
    SubPath {
        volume: String,
        container: String,
        sub_path: String,
        reason: String,
    },
    #[error("pod {pod} has no uid: volumes are kept per pod uid")]
    NoUid { pod: String },
    #[error("tearing down the volumes of pod {uid}: {source}")]
    Teardown {
        uid: String,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The container waiting reason the kubelet shows for this error: volumes that
    /// cannot be set up keep the pod `ContainerCreating` (with a `FailedMount` event);
    /// bad mounts of one container are a `CreateContainerConfigError`.
    pub fn waiting_reason(&self) -> &'static str {
        match self {
            Error::SetUp { .. } | Error::NoUid { .. } | Error::Teardown { .. } => {
                "ContainerCreating"
            }
            Error::UnknownVolume { .. } | Error::SubPath { .. } => "CreateContainerConfigError",
        }
    }

    /// The event reason to record with this error (`FailedMount` as the kubelet, or
    /// `Failed` for container config errors).
    pub fn event_reason(&self) -> &'static str {
        match self.waiting_reason() {
            "ContainerCreating" => "FailedMount",
            _ => "Failed",
        }
    }
}

/// The kind of a volume, from whichever source field is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    EmptyDir,
    HostPath,
    ConfigMap,
    Secret,
    DownwardApi,
    Projected,
}

impl Kind {
    fn of(v: &Volume) -> Result<Kind, String> {
        let unsupported = |what: &str| {
            Err(format!(
                "{what} volumes are not supported by tug; use emptyDir, hostPath, configMap, \
                 secret, downwardAPI or projected"
            ))
        };
        if v.empty_dir.is_some() {
            Ok(Kind::EmptyDir)
        } else if v.host_path.is_some() {
            Ok(Kind::HostPath)
        } else if v.config_map.is_some() {
            Ok(Kind::ConfigMap)
        } else if v.secret.is_some() {
            Ok(Kind::Secret)
        } else if v.downward_api.is_some() {
            Ok(Kind::DownwardApi)
        } else if v.projected.is_some() {
            Ok(Kind::Projected)
        } else if v.persistent_volume_claim.is_some() {
            unsupported("persistentVolumeClaim")
        } else if v.nfs.is_some() {
            unsupported("nfs")
        } else if v.image.is_some() {
            unsupported("image")
        } else if v.ephemeral.is_some() {
            unsupported("ephemeral")
        } else if v.csi.is_some() {
            unsupported("csi")
        } else {
            // The API defaults a volume without a source to emptyDir.
            Ok(Kind::EmptyDir)
        }
    }

    fn dir_name(self) -> &'static str {
        match self {
            Kind::EmptyDir => "empty-dir",
            Kind::HostPath => "host-path",
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
            Kind::DownwardApi => "downward-api",
            Kind::Projected => "projected",
        }
    }

    /// configMap, secret, downwardAPI and projected volumes are always mounted
    /// read-only, as the kubelet does since 1.10.
    fn forced_read_only(self) -> bool {
        matches!(
            self,
            Kind::ConfigMap | Kind::Secret | Kind::DownwardApi | Kind::Projected
        )
    }

    /// The kubelet keeps secret and projected volumes on tmpfs so secrets never reach disk.
    fn on_tmpfs_when_root(self) -> bool {
        matches!(self, Kind::Secret | Kind::Projected)
    }
}

/// A pod's volumes on this node.
pub struct Volumes {
    root: PathBuf,
    client: Client,
    /// Serializes atomic writes (setup and refresh may race on one pod's volume).
    write_lock: Mutex<()>,
}

impl Volumes {
    /// `root` is `<agent root>/pods`; configMaps and secrets are read through `client`.
    pub fn new(root: impl Into<PathBuf>, client: Client) -> Self {
        Volumes {
            root: root.into(),
            client,
            write_lock: Mutex::new(()),
        }
    }

    /// `<root>/<uid>/volumes`.
    pub fn volumes_dir(&self, pod_uid: &str) -> PathBuf {
        self.root.join(pod_uid).join("volumes")
    }

    /// `<root>/<uid>/volumes/<kind>/<name>`; the name becomes a path component, so it
    /// must be one (the API only admits DNS labels; this agent does not rely on that).
    fn volume_dir(&self, pod_uid: &str, kind: Kind, vol: &Volume) -> Result<PathBuf> {
        let name = vol.name.as_str();
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(set_up(
                vol,
                "the volume name must be a DNS label (lowercase letters, digits and '-')".into(),
            ));
        }
        Ok(self.volumes_dir(pod_uid).join(kind.dir_name()).join(name))
    }

    /// Makes every volume of the pod ready to be mounted. Idempotent: after an agent
    /// restart it keeps emptyDir data and existing tmpfs mounts.
    pub async fn setup(&self, pod: &Pod) -> Result<()> {
        let uid = pod_uid(pod)?;
        for vol in pod_volumes(pod) {
            let kind = Kind::of(vol).map_err(|reason| set_up(vol, reason))?;
            let dir = self.volume_dir(uid, kind, vol)?;
            match kind {
                Kind::EmptyDir => {
                    setup_empty_dir(vol, &dir, fs_group(pod)).map_err(|r| set_up(vol, r))?
                }
                Kind::HostPath => setup_host_path(vol).map_err(|r| set_up(vol, r))?,
                _ => {
                    let payload = self.payload(pod, vol, kind).await?;
                    self.write_files(pod, vol, kind, &dir, &payload)?;
                }
            }
        }
        Ok(())
    }

    /// Re-reads the configMaps and secrets (and the pod's metadata for downwardAPI)
    /// behind the pod's file volumes and swaps in new contents atomically. Returns
    /// whether any volume changed. A source that has gone missing keeps its old files
    /// (as the kubelet); the first such error is returned after all volumes were tried.
    pub async fn refresh(&self, pod: &Pod) -> Result<bool> {
        let uid = pod_uid(pod)?;
        let mut changed = false;
        let mut first_err = None;
        for vol in pod_volumes(pod) {
            let Ok(kind) = Kind::of(vol) else { continue };
            if matches!(kind, Kind::EmptyDir | Kind::HostPath) {
                continue;
            }
            let result = async {
                let dir = self.volume_dir(uid, kind, vol)?;
                let payload = self.payload(pod, vol, kind).await?;
                self.write_files(pod, vol, kind, &dir, &payload)
            }
            .await;
            match result {
                Ok(c) => changed |= c,
                Err(e) => {
                    tracing::warn!(pod = %pod.metadata.name(), volume = %vol.name, "volume refresh: {e}");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(changed),
        }
    }

    /// The bind mounts of `container`'s volumeMounts (after [`Volumes::setup`]).
    pub fn mounts(&self, pod: &Pod, container: &Container) -> Result<Vec<Mount>> {
        let uid = pod_uid(pod)?;
        let volumes: BTreeMap<&str, &Volume> =
            pod_volumes(pod).map(|v| (v.name.as_str(), v)).collect();
        let mut out = Vec::with_capacity(container.volume_mounts.len());
        for vm in &container.volume_mounts {
            let vol = volumes
                .get(vm.name.as_str())
                .ok_or_else(|| Error::UnknownVolume {
                    volume: vm.name.clone(),
                    container: container.name.clone(),
                })?;
            let kind = Kind::of(vol).map_err(|reason| set_up(vol, reason))?;
            let base = match (kind, &vol.host_path) {
                (Kind::HostPath, Some(hp)) => PathBuf::from(&hp.path),
                _ => self.volume_dir(uid, kind, vol)?,
            };
            let sub_path = match (&vm.sub_path, &vm.sub_path_expr) {
                (Some(p), _) if !p.is_empty() => Some(p.clone()),
                (_, Some(expr)) if !expr.is_empty() => Some(expand_env(expr, pod, container)),
                _ => None,
            };
            let source = match sub_path {
                None => base,
                Some(sub) => resolve_sub_path(&base, &sub).map_err(|reason| Error::SubPath {
                    volume: vol.name.clone(),
                    container: container.name.clone(),
                    sub_path: sub.clone(),
                    reason,
                })?,
            };
            let destination = if vm.mount_path.starts_with('/') {
                vm.mount_path.clone()
            } else {
                format!("/{}", vm.mount_path)
            };
            out.push(Mount {
                source,
                destination,
                read_only: vm.read_only.unwrap_or(false) || kind.forced_read_only(),
                kind: MountKind::Bind,
            });
        }
        Ok(out)
    }

    /// Unmounts the pod's tmpfs volumes and removes `<root>/<uid>/volumes`. Never
    /// descends into another filesystem (so neither into a host path nor into anything
    /// still mounted) and never follows symlinks. Ok when already gone.
    pub fn teardown(&self, pod_uid: &str) -> Result<()> {
        if pod_uid.is_empty() || pod_uid.contains('/') || pod_uid.starts_with('.') {
            return Err(Error::Teardown {
                uid: pod_uid.to_string(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a pod uid"),
            });
        }
        let dir = self.volumes_dir(pod_uid);
        let err = |source| Error::Teardown {
            uid: pod_uid.to_string(),
            source,
        };
        host_fs::unmount_all_under(&dir).map_err(err)?;
        host_fs::remove_tree_same_fs(&dir).map_err(err)
    }

    /// The payload of a configMap, secret, downwardAPI or projected volume; with an
    /// fsGroup, files are also group-readable (the kubelet's `SetVolumeOwnership`).
    async fn payload(&self, pod: &Pod, vol: &Volume, kind: Kind) -> Result<Payload> {
        let mut payload = self.source_payload(pod, vol, kind).await?;
        if fs_group(pod).is_some() {
            for file in payload.values_mut() {
                file.mode |= 0o440;
            }
        }
        Ok(payload)
    }

    async fn source_payload(&self, pod: &Pod, vol: &Volume, kind: Kind) -> Result<Payload> {
        let ns = pod.metadata.namespace();
        let fail = |reason: String| set_up(vol, reason);
        match kind {
            Kind::ConfigMap => {
                let src = vol.config_map.clone().unwrap_or_default();
                let name = src.name.unwrap_or_default();
                let optional = src.optional.unwrap_or(false);
                let mode = src.default_mode.unwrap_or(DEFAULT_MODE);
                match self.config_map(ns, &name).await.map_err(fail)? {
                    Some(cm) => projection::config_map_payload(&cm, &src.items, mode, optional)
                        .map_err(fail),
                    None if optional => Ok(Payload::new()),
                    None => Err(fail(format!("configmap {name:?} not found"))),
                }
            }
            Kind::Secret => {
                let src = vol.secret.clone().unwrap_or_default();
                let name = src.secret_name.unwrap_or_default();
                let optional = src.optional.unwrap_or(false);
                let mode = src.default_mode.unwrap_or(DEFAULT_MODE);
                match self.secret(ns, &name).await.map_err(fail)? {
                    Some(s) => {
                        projection::secret_payload(&s, &src.items, mode, optional).map_err(fail)
                    }
                    None if optional => Ok(Payload::new()),
                    None => Err(fail(format!("secret {name:?} not found"))),
                }
            }
            Kind::DownwardApi => {
                let src = vol.downward_api.clone().unwrap_or_default();
                let mode = src.default_mode.unwrap_or(DEFAULT_MODE);
                projection::downward_payload(pod, &src.items, mode).map_err(fail)
            }
            Kind::Projected => {
                let src = vol.projected.clone().unwrap_or_default();
                let mode = src.default_mode.unwrap_or(DEFAULT_MODE);
                let mut payload = Payload::new();
                for source in &src.sources {
                    let part = if let Some(cm) = &source.config_map {
                        let name = cm.name.clone().unwrap_or_default();
                        let optional = cm.optional.unwrap_or(false);
                        match self.config_map(ns, &name).await.map_err(fail)? {
                            Some(obj) => {
                                projection::config_map_payload(&obj, &cm.items, mode, optional)
                                    .map_err(fail)?
                            }
                            None if optional => Payload::new(),
                            None => return Err(fail(format!("configmap {name:?} not found"))),
                        }
                    } else if let Some(s) = &source.secret {
                        let name = s.name.clone().unwrap_or_default();
                        let optional = s.optional.unwrap_or(false);
                        match self.secret(ns, &name).await.map_err(fail)? {
                            Some(obj) => projection::secret_payload(&obj, &s.items, mode, optional)
                                .map_err(fail)?,
                            None if optional => Payload::new(),
                            None => return Err(fail(format!("secret {name:?} not found"))),
                        }
                    } else if let Some(d) = &source.downward_api {
                        projection::downward_payload(pod, &d.items, mode).map_err(fail)?
                    } else if let Some(t) = &source.service_account_token {
                        // No token issuer in tug yet: leave the file out rather than
                        // keep the pod from starting.
                        tracing::warn!(
                            pod = %pod.metadata.name(), volume = %vol.name, path = %t.path,
                            "serviceAccountToken projections are not supported by tug; skipped"
                        );
                        Payload::new()
                    } else {
                        Payload::new()
                    };
                    payload.extend(part);
                }
                Ok(payload)
            }
            Kind::EmptyDir | Kind::HostPath => Ok(Payload::new()),
        }
    }

    fn write_files(
        &self,
        pod: &Pod,
        vol: &Volume,
        kind: Kind,
        dir: &Path,
        payload: &Payload,
    ) -> Result<bool> {
        let fail = |what: &str, e: io::Error| set_up(vol, format!("{what} {}: {e}", dir.display()));
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        fs::create_dir_all(dir).map_err(|e| fail("creating", e))?;
        if kind.on_tmpfs_when_root() && nix::unistd::geteuid().is_root() {
            host_fs::mount_tmpfs(dir, None, 0o755).map_err(|e| fail("mounting tmpfs at", e))?;
        }
        let gid = fs_group(pod);
        if gid.is_some() {
            std::os::unix::fs::chown(dir, None, gid)
                .map_err(|e| fail("changing the group of", e))?;
        }
        AtomicWriter::new(dir)
            .with_gid(gid)
            .write(payload)
            .map_err(|e| fail("writing files into", e))
    }

    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, String> {
        Api::<ConfigMap>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|e| format!("couldn't get configmap {ns}/{name}: {e}"))
    }

    async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, String> {
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|e| format!("couldn't get secret {ns}/{name}: {e}"))
    }
}

fn pod_uid(pod: &Pod) -> Result<&str> {
    match pod.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() && !uid.contains('/') && !uid.starts_with('.') => Ok(uid),
        _ => Err(Error::NoUid {
            pod: format!("{}/{}", pod.metadata.namespace(), pod.metadata.name()),
        }),
    }
}

fn pod_volumes(pod: &Pod) -> impl Iterator<Item = &Volume> {
    pod.spec.iter().flat_map(|s| s.volumes.iter())
}

fn set_up(vol: &Volume, reason: String) -> Error {
    Error::SetUp {
        volume: vol.name.clone(),
        reason,
    }
}

/// The pod's `securityContext.fsGroup`: volumes are made group-accessible to it.
fn fs_group(pod: &Pod) -> Option<u32> {
    let gid = pod.spec.as_ref()?.security_context.as_ref()?.fs_group?;
    u32::try_from(gid).ok()
}

fn setup_empty_dir(vol: &Volume, dir: &Path, fs_group: Option<u32>) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let src = vol.empty_dir.clone().unwrap_or_default();
    let result = match src.medium.as_deref().unwrap_or("") {
        // World-writable like the kubelet's, so any container user can write.
        "" => Ok(()),
        "Memory" => {
            let size = match &src.size_limit {
                Some(q) if !q.is_zero() => Some(
                    u64::try_from(q.as_i64_bytes())
                        .map_err(|_| format!("emptyDir.sizeLimit {q} must not be negative"))?,
                ),
                _ => None,
            };
            host_fs::mount_tmpfs(dir, size, 0o777)
                .map(|_| ())
                .map_err(|e| format!("mounting tmpfs at {}: {e}", dir.display()))
        }
        other => Err(format!(
            "emptyDir medium {other:?} is not supported: use \"\" (node disk) or \"Memory\""
        )),
    };
    result?;
    // With an fsGroup: owned by that group, and setgid so new files inherit it.
    let mode = match fs_group {
        Some(gid) => {
            std::os::unix::fs::chown(dir, None, Some(gid))
                .map_err(|e| format!("changing the group of {}: {e}", dir.display()))?;
            0o2777
        }
        None => 0o777,
    };
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("setting permissions of {}: {e}", dir.display()))
}

/// The kubelet's hostPath type check (`checkTypeInternal`), with its messages.
fn setup_host_path(vol: &Volume) -> Result<(), String> {
    let src = vol.host_path.clone().unwrap_or_default();
    let path = Path::new(&src.path);
    let p = &src.path;
    let ty = src.type_.as_deref().unwrap_or("");
    let meta = fs::metadata(path);
    let exists = meta.is_ok();
    let ft = meta.as_ref().ok().map(|m| m.file_type());
    let not = |what: &str| Err(format!("hostPath type check failed: {p} is not {what}"));
    match ty {
        "" => Ok(()),
        "DirectoryOrCreate" | "Directory" => {
            if ty == "DirectoryOrCreate" && !exists {
                fs::create_dir_all(path).map_err(|e| format!("creating {p}: {e}"))?;
                return fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                    .map_err(|e| format!("setting permissions of {p}: {e}"));
            }
            if ft.is_some_and(|t| t.is_dir()) {
                Ok(())
            } else {
                not("a directory")
            }
        }
        "FileOrCreate" | "File" => {
            if ty == "FileOrCreate" && !exists {
                // Like the kubelet: the parent must exist; only the file is created.
                return fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .and_then(|f| f.set_permissions(fs::Permissions::from_mode(0o644)))
                    .map_err(|e| format!("creating {p}: {e}"));
            }
            if ft.is_some_and(|t| t.is_file()) {
                Ok(())
            } else {
                not("a file")
            }
        }
        "Socket" if ft.is_some_and(|t| t.is_socket()) => Ok(()),
        "Socket" => not("a socket file"),
        "CharDevice" if ft.is_some_and(|t| t.is_char_device()) => Ok(()),
        "CharDevice" => not("a character device"),
        "BlockDevice" if ft.is_some_and(|t| t.is_block_device()) => Ok(()),
        "BlockDevice" => not("a block device"),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

/// `base/sub` for a volumeMount's subPath: relative, no `..`, created (with the volume
/// root's mode, as the kubelet) when missing, and still inside `base` once symlinks
/// are resolved (a symlink in a writable volume must not expose the host).
fn resolve_sub_path(base: &Path, sub: &str) -> Result<PathBuf, String> {
    let rel = Path::new(sub);
    if rel.is_absolute() {
        return Err("must be a relative path".into());
    }
    if rel.components().any(|c| c == Component::ParentDir) {
        return Err("must not contain '..'".into());
    }
    let base_real = fs::canonicalize(base)
        .map_err(|e| format!("volume path {} is not usable: {e}", base.display()))?;
    let path = base_real.join(rel);
    if fs::symlink_metadata(&path).is_err() {
        let mode = fs::metadata(&base_real)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o755);
        fs::create_dir_all(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("setting permissions of {}: {e}", path.display()))?;
    }
    let real = fs::canonicalize(&path).map_err(|e| format!("resolving {}: {e}", path.display()))?;
    if !real.starts_with(&base_real) {
        return Err(format!(
            "it resolves to {}, outside of the volume",
            real.display()
        ));
    }
    Ok(real)
}

/// `$(VAR)` in a subPathExpr, from the container's literal env and the downward API
/// fields the kubelet allows there; unknown references stay as written (Kubernetes'
/// expansion rules, `$$` escapes a `$`).
fn expand_env(expr: &str, pod: &Pod, container: &Container) -> String {
    let lookup = |name: &str| -> Option<String> {
        let var = container.env.iter().rev().find(|e| e.name == name)?;
        if let Some(v) = &var.value {
            return Some(v.clone());
        }
        let field = var.value_from.as_ref()?.field_ref.as_ref()?;
        projection::field_value(pod, &field.field_path).ok()
    };
    crate::spec::expand_with(expr, lookup)
}

#[cfg(test)]
mod tests;
