//! The image store: image records (references -> manifest and config), unpacked layers
//! shared by all images, import, pull, removal, garbage collection and disk usage.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::blobs::{self, BlobStore};
use crate::manifest::{self, ConfigFile, Document, Manifest};
use crate::reference::{self, Reference};
use crate::registry::{self, PullOptions, RegistryAuth};
use crate::{import, layer};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] reference::Error),
    #[error(transparent)]
    Blob(#[from] blobs::Error),
    #[error(transparent)]
    Layer(#[from] layer::Error),
    #[error(transparent)]
    Import(#[from] import::Error),
    #[error(transparent)]
    Pull(#[from] registry::Error),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::Error),
    #[error("image {0} not found in the store")]
    NotFound(String),
    #[error("image {image}: {reason}")]
    Invalid { image: String, reason: String },
    #[error("image store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when a pull failed because the image or tag does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::NotFound(_) | Error::Pull(registry::Error::NotFound { .. })
        )
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An image as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// `sha256:<config digest>` (Docker's and the CRI's image id).
    pub id: String,
    /// Normalized references (`docker.io/library/busybox:latest`) naming this image.
    pub references: Vec<String>,
    /// `<repository>@sha256:<manifest digest>` when pulled from a registry.
    pub repo_digest: Option<String>,
    pub config: ImageConfig,
    /// Bytes of the image's blobs (compressed layers + config).
    pub size: u64,
}

/// The parts of the image config a container needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// `8080/tcp` style.
    pub exposed_ports: Vec<String>,
}

impl ImageConfig {
    fn from_config(c: &ConfigFile) -> ImageConfig {
        let rc = c.config.clone().unwrap_or_default();
        ImageConfig {
            entrypoint: rc.entrypoint.unwrap_or_default(),
            cmd: rc.cmd.unwrap_or_default(),
            env: rc.env.unwrap_or_default(),
            working_dir: rc.working_dir.unwrap_or_default(),
            user: rc.user.unwrap_or_default(),
            exposed_ports: rc.exposed_ports.unwrap_or_default().into_keys().collect(),
        }
    }
}

/// A layer of an image: the blob as distributed and its uncompressed digest (which
/// names the unpacked directory, so gzip and plain copies share one).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LayerRef {
    blob: String,
    diff_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    image: Image,
    manifest_digest: String,
    /// Bottom to top.
    layers: Vec<LayerRef>,
    /// Unix seconds of the last pull/import/prepare_rootfs (GC removes the oldest first).
    last_used: u64,
}

struct State {
    records: Vec<Record>,
    /// Imports and pulls in flight: their blobs and layers are not referenced by any
    /// record yet, so GC must not sweep orphans meanwhile.
    active: usize,
}

struct Inner {
    root: PathBuf,
    blobs: BlobStore,
    layers: PathBuf,
    state: Mutex<State>,
    /// One pull per reference at a time: pods starting together wait for the first
    /// pull instead of downloading the same blobs in parallel.
    pulls: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Size and free space of the file system holding the store (for disk-pressure GC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub capacity_bytes: u64,
    pub available_bytes: u64,
}

/// The image store of one node, rooted at a directory:
/// `blobs/sha256/<hex>`, `layers/<diff-id hex>/`, `images.json`, `tmp/`.
///
/// One process owns a store at a time (records are loaded at `open`, in-flight temp
/// files are swept there); clones share one store and are cheap.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

/// Marks an import or pull in flight (see `State::active`).
struct ActiveGuard<'a>(&'a Inner);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().active -= 1;
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every mutation is a
        // single push/retain), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(&self) -> ActiveGuard<'_> {
        self.lock().active += 1;
        ActiveGuard(self)
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    fn save(&self, records: &[Record]) -> Result<()> {
        let path = self.index_path();
        let bytes = serde_json::to_vec_pretty(records).map_err(|e| Error::Io {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        let tmp = self.root.join("images.json.tmp");
        fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.layers
            .join(diff_id.strip_prefix("sha256:").unwrap_or(diff_id))
    }

    /// Unpacks a layer unless already there: into a temp dir renamed into place, so a
    /// crash or a concurrent unpack of the same layer never leaves a half layer.
    fn ensure_layer(&self, l: &LayerRef) -> Result<()> {
        let dst = self.layer_dir(&l.diff_id);
        if dst.is_dir() {
            return Ok(());
        }
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&self.layers)
            .map_err(io_err(&self.layers))?;
        let blob = self.blobs.open_blob(&l.blob)?;
        layer::unpack(&l.blob, blob, tmp.path(), Some(&l.diff_id))?;
        let tmp_path = tmp.keep();
        match fs::rename(&tmp_path, &dst) {
            Ok(()) => Ok(()),
            Err(_) if dst.is_dir() => {
                let _ = fs::remove_dir_all(&tmp_path);
                Ok(())
            }
            Err(source) => {
                let _ = fs::remove_dir_all(&tmp_path);
                Err(Error::Io { path: dst, source })
            }
        }
    }

    /// Turns a stored manifest into an image record: reads the config, unpacks the
    /// layers, and moves `references` to this image (a tag names one image).
    fn commit(
        &self,
        manifest_digest: &str,
        references: &[String],
        repo_digest: Option<String>,
    ) -> Result<Image> {
        let invalid = |reason: String| Error::Invalid {
            image: manifest_digest.to_string(),
            reason,
        };
        let bytes = self.blobs.read(manifest_digest)?;
        let m: Manifest = match manifest::parse_document(&bytes, None).map_err(invalid)? {
            Document::Manifest(m) => m,
            Document::Index(_) => {
                return Err(invalid("expected an image manifest, found an index".into()))
            }
        };
        let config_bytes = self.blobs.read(&m.config.digest)?;
        let config: ConfigFile = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(format!("image config {}: {e}", m.config.digest)))?;
        if config.rootfs.diff_ids.len() != m.layers.len() {
            return Err(invalid(format!(
                "the manifest lists {} layers but the config's rootfs.diff_ids has {}",
                m.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        let mut size = config_bytes.len() as u64;
        for (d, diff_id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
            reference::validate_digest(diff_id).map_err(invalid)?;
            let l = LayerRef {
                blob: d.digest.clone(),
                diff_id: diff_id.clone(),
            };
            self.ensure_layer(&l)?;
            size += self.blobs.size(&l.blob).unwrap_or(0);
            layers.push(l);
        }
        let id = m.config.digest.clone();
        let mut st = self.lock();
        for r in st.records.iter_mut() {
            r.image.references.retain(|x| !references.contains(x));
        }
        let record = match st.records.iter_mut().find(|r| r.image.id == id) {
            Some(r) => r,
            None => {
                st.records.push(Record {
                    image: Image {
                        id: id.clone(),
                        references: Vec::new(),
                        repo_digest: None,
                        config: ImageConfig::from_config(&config),
                        size,
                    },
                    manifest_digest: manifest_digest.to_string(),
                    layers,
                    last_used: 0,
                });
                st.records.last_mut().expect("just pushed")
            }
        };
        record.image.references.extend(references.iter().cloned());
        if repo_digest.is_some() {
            record.image.repo_digest = repo_digest;
        }
        record.last_used = now();
        let image = record.image.clone();
        self.save(&st.records)?;
        Ok(image)
    }

    fn find(&self, st: &State, reference: &str) -> Option<usize> {
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        let is_hex = hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if is_hex {
            let matches: Vec<usize> = (0..st.records.len())
                .filter(|&i| st.records[i].image.id["sha256:".len()..].starts_with(hex))
                .collect();
            if matches.len() == 1 {
                return Some(matches[0]);
            }
        }
        let r = Reference::parse(reference).ok()?;
        let normalized = r.to_string();
        if let Some(i) = st
            .records
            .iter()
            .position(|x| x.image.references.contains(&normalized))
        {
            return Some(i);
        }
        // `repo@sha256:<manifest>` also names an image pulled or imported by tag.
        let digest = r.digest.as_deref()?;
        let repo_digest = format!("{}@{digest}", r.name());
        st.records.iter().position(|x| {
            x.image.repo_digest.as_deref() == Some(repo_digest.as_str())
                || (x.manifest_digest == digest
                    && x.image
                        .references
                        .iter()
                        .any(|n| Reference::parse(n).is_ok_and(|p| p.name() == r.name())))
        })
    }
}

/// Layer dir names used as lower dirs by overlays mounted in this mount namespace: a
/// safety net for a caller that forgets an image in `gc`'s `in_use`.
fn mounted_layers(layers: &Path) -> HashSet<String> {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return HashSet::new();
    };
    let prefix = format!("{}/", layers.display());
    let mut out = HashSet::new();
    for line in mountinfo.lines().filter(|l| l.contains(" - overlay ")) {
        for opt in line.rsplit(' ').next().unwrap_or("").split(',') {
            let Some(lower) = opt.strip_prefix("lowerdir=") else {
                continue;
            };
            for dir in lower.split(':') {
                if let Some(name) = dir.strip_prefix(&prefix) {
                    out.insert(name.to_string());
                }
            }
        }
    }
    out
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ImageStore {
    /// Opens (creating) a store; leftovers of interrupted imports are removed.
    pub fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root).map_err(io_err(root))?;
        let blobs = BlobStore::open(root)?;
        let layers = root.join("layers");
        fs::create_dir_all(&layers).map_err(io_err(&layers))?;
        for dir in [root.join("tmp"), layers.clone()] {
            for e in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if dir.ends_with("tmp") || name.starts_with(".tmp-") {
                    let p = e.path();
                    let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
                }
            }
        }
        let inner = Inner {
            root: root.to_path_buf(),
            blobs,
            layers,
            state: Mutex::new(State {
                records: Vec::new(),
                active: 0,
            }),
            pulls: Mutex::new(HashMap::new()),
        };
        let index = inner.index_path();
        match fs::read(&index) {
            Ok(bytes) => {
                let records: Vec<Record> =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Io {
                        path: index.clone(),
                        source: io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "corrupt image index ({e}); delete it and re-import the images"
                            ),
                        ),
                    })?;
                inner.lock().records = records;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    path: index,
                    source,
                })
            }
        }
        Ok(ImageStore {
            inner: Arc::new(inner),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Imports an OCI-layout or `docker save` tarball (gzip or not); returns its images.
    pub fn import(&self, tar: &Path) -> Result<Vec<Image>> {
        let _active = self.inner.begin();
        let found = import::read_archive(&self.inner.blobs, tar)?;
        let mut out = Vec::new();
        for f in found {
            out.push(self.inner.commit(&f.manifest_digest, &f.references, None)?);
        }
        Ok(out)
    }

    /// Pulls from an OCI / Docker v2 registry (http for loopback and
    /// `opts.insecure_registries`, https otherwise).
    pub async fn pull(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        opts: &PullOptions,
    ) -> Result<Image> {
        let r = Reference::parse(reference)?;
        let lock = {
            let mut pulls = self.inner.pulls.lock().unwrap_or_else(|e| e.into_inner());
            pulls.retain(|_, l| Arc::strong_count(l) > 1);
            pulls.entry(r.to_string()).or_default().clone()
        };
        let _serialized = lock.lock().await;
        let _active = self.inner.begin();
        let pulled = registry::pull(&self.inner.blobs, &r, auth, opts).await?;
        let inner = self.inner.clone();
        let repo_digest = format!("{}@{}", r.name(), pulled.resolved_digest);
        let references = vec![r.to_string()];
        // Unpacking is blocking file system work.
        tokio::task::spawn_blocking(move || {
            inner.commit(&pulled.manifest_digest, &references, Some(repo_digest))
        })
        .await
        .map_err(|e| Error::Io {
            path: self.inner.root.clone(),
            source: io::Error::other(e),
        })?
    }

    /// An image by normalized reference, `repo@digest`, id (`sha256:<hex>`) or unique id
    /// prefix (12+ hex characters).
    pub fn get(&self, reference: &str) -> Option<Image> {
        let st = self.inner.lock();
        let i = self.inner.find(&st, reference)?;
        Some(st.records[i].image.clone())
    }

    pub fn list(&self) -> Vec<Image> {
        self.inner
            .lock()
            .records
            .iter()
            .map(|r| r.image.clone())
            .collect()
    }

    /// Removes an image by reference or id. By reference with other references left,
    /// only that name is removed (like `docker rmi`). Blobs and layers go at the next GC.
    pub fn remove(&self, reference_or_id: &str) -> Result<()> {
        let mut st = self.inner.lock();
        let i = self
            .inner
            .find(&st, reference_or_id)
            .ok_or_else(|| Error::NotFound(reference_or_id.to_string()))?;
        let normalized = reference::normalize(reference_or_id).ok();
        let rec = &mut st.records[i];
        let by_name = normalized
            .as_ref()
            .is_some_and(|n| rec.image.references.contains(n));
        if by_name && rec.image.references.len() > 1 {
            rec.image
                .references
                .retain(|x| Some(x) != normalized.as_ref());
        } else {
            st.records.remove(i);
        }
        self.inner.save(&st.records)
    }

    /// Mounts the image's layers (unpacked once, shared) as an overlay at
    /// `dir/rootfs`, with `dir/upper` and `dir/work` holding the container's writes.
    /// Idempotent: an existing mount is reused (agent restart).
    pub fn prepare_rootfs(&self, image: &Image, dir: &Path) -> Result<PathBuf> {
        let layers = {
            let mut st = self.inner.lock();
            let rec = st
                .records
                .iter_mut()
                .find(|r| r.image.id == image.id)
                .ok_or_else(|| Error::NotFound(image.id.clone()))?;
            rec.last_used = now();
            rec.layers.clone()
        };
        let mut lowers = Vec::new();
        for l in layers.iter().rev() {
            // GC may have removed an unreferenced copy; blobs are still there.
            self.inner.ensure_layer(l)?;
            lowers.push(self.inner.layer_dir(&l.diff_id));
        }
        if lowers.is_empty() {
            let empty = self.inner.layers.join("empty");
            fs::create_dir_all(&empty).map_err(io_err(&empty))?;
            lowers.push(empty);
        }
        Ok(crate::rootfs::mount_overlay(&lowers, dir)?)
    }

    /// Unmounts and removes what `prepare_rootfs` made under `dir`; fine if absent.
    pub fn release_rootfs(dir: &Path) -> Result<()> {
        Ok(crate::rootfs::unmount_overlay(dir)?)
    }

    /// Removes images not in `in_use` (ids), least recently used first, until at least
    /// `target_free_bytes` are freed (0: no images, only orphans; `u64::MAX`: every
    /// unused image), then blobs and layers no image references. Returns removed ids.
    pub fn gc(&self, in_use: &HashSet<String>, target_free_bytes: u64) -> Result<Vec<String>> {
        let mut st = self.inner.lock();
        let mut candidates: Vec<(u64, String)> = st
            .records
            .iter()
            .filter(|r| !in_use.contains(&r.image.id))
            .map(|r| (r.last_used, r.image.id.clone()))
            .collect();
        candidates.sort();
        let mut removed = Vec::new();
        let mut freed = 0u64;
        for (_, id) in candidates {
            if freed >= target_free_bytes {
                break;
            }
            freed += self.exclusive_bytes(&st, &id);
            st.records.retain(|r| r.image.id != id);
            removed.push(id);
        }
        if !removed.is_empty() {
            self.inner.save(&st.records)?;
        }
        if st.active == 0 {
            self.sweep_orphans(&st)?;
        }
        Ok(removed)
    }

    /// Bytes freed by removing image `id` alone (blobs and layers no other image uses).
    fn exclusive_bytes(&self, st: &State, id: &str) -> u64 {
        let Some(rec) = st.records.iter().find(|r| r.image.id == id) else {
            return 0;
        };
        let others: HashSet<&str> = st
            .records
            .iter()
            .filter(|r| r.image.id != id)
            .flat_map(|r| {
                r.layers
                    .iter()
                    .flat_map(|l| [l.blob.as_str(), l.diff_id.as_str()])
            })
            .collect();
        let mut bytes = 0;
        for l in &rec.layers {
            if !others.contains(l.blob.as_str()) {
                bytes += self.inner.blobs.size(&l.blob).unwrap_or(0);
            }
            if !others.contains(l.diff_id.as_str()) {
                bytes += layer::tree_size(&self.inner.layer_dir(&l.diff_id));
            }
        }
        bytes
    }

    fn sweep_orphans(&self, st: &State) -> Result<()> {
        let mut keep_blobs: HashSet<String> = HashSet::new();
        let mut keep_layers: HashSet<String> = HashSet::new();
        for r in &st.records {
            keep_blobs.insert(r.manifest_digest.clone());
            keep_blobs.insert(r.image.id.clone());
            for l in &r.layers {
                keep_blobs.insert(l.blob.clone());
                keep_layers.insert(l.diff_id.trim_start_matches("sha256:").to_string());
            }
        }
        for d in self.inner.blobs.list()? {
            if !keep_blobs.contains(&d) {
                self.inner.blobs.remove(&d)?;
            }
        }
        let dir = &self.inner.layers;
        let mounted = mounted_layers(dir);
        for e in fs::read_dir(dir).map_err(io_err(dir))?.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name == "empty" || keep_layers.contains(&name) || mounted.contains(&name) {
                continue;
            }
            let p = e.path();
            // Layers of images with containers are kept because callers pass those
            // images in `in_use`; deleting a mounted lower dir would corrupt them.
            fs::remove_dir_all(&p).map_err(io_err(&p))?;
        }
        Ok(())
    }

    /// Capacity and free space of the store's file system.
    pub fn fs_stats(&self) -> Result<FsStats> {
        let st = nix::sys::statvfs::statvfs(&self.inner.root).map_err(|e| Error::Io {
            path: self.inner.root.clone(),
            source: io::Error::from(e),
        })?;
        let frag = st.fragment_size() as u64;
        Ok(FsStats {
            capacity_bytes: st.blocks() as u64 * frag,
            available_bytes: st.blocks_available() as u64 * frag,
        })
    }

    /// Bytes used by the store (blobs, unpacked layers, records).
    pub fn disk_usage(&self) -> Result<u64> {
        Ok(layer::tree_size(&self.inner.root))
    }

    /// Per-image unpacked layer directories, bottom to top (for tools and tests).
    pub fn layer_dirs(&self, image: &Image) -> Option<Vec<PathBuf>> {
        let st = self.inner.lock();
        let rec = st.records.iter().find(|r| r.image.id == image.id)?;
        Some(
            rec.layers
                .iter()
                .map(|l| self.inner.layer_dir(&l.diff_id))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn the_store_and_its_pull_future_can_move_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        assert_send(&store);
        let opts = PullOptions::default();
        let fut = store.pull("busybox", None, &opts);
        assert_send(&fut);
        let stats = store.fs_stats().unwrap();
        assert!(stats.capacity_bytes >= stats.available_bytes && stats.capacity_bytes > 0);
    }
}
