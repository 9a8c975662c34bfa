//! Reading image archives into the blob store: OCI image layouts and `docker save`
//! tarballs, either optionally gzip-compressed.
//!
//! The archive is streamed once: blobs go straight into the content-addressed store
//! (verified against their names), small metadata files are kept in memory, and the
//! images are resolved afterwards, because `manifest.json` may come after the layers.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::blobs::{self, BlobStore};
use crate::manifest::{self, Descriptor, Document, Manifest};
use crate::reference::normalize;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("import {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("import {path}: {source}")]
    Blob { path: PathBuf, source: blobs::Error },
    #[error("import {path}: {source}")]
    Layer {
        path: PathBuf,
        source: crate::layer::Error,
    },
    #[error("import {path}: {reason}")]
    Format { path: PathBuf, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An image found in an archive: its manifest (stored as a blob) and the names it carries.
#[derive(Debug, Clone)]
pub struct Found {
    pub manifest_digest: String,
    pub references: Vec<String>,
}

/// Metadata files larger than this are not kept in memory (no real one comes close).
const MAX_METADATA: u64 = 16 << 20;

/// Reads an OCI layout or `docker save` archive into `blobs` and lists its images.
pub fn read_archive(blobs: &BlobStore, path: &Path) -> Result<Vec<Found>> {
    let fail = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let blob_err = |source| Error::Blob {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let reader = crate::layer::decompress(&path.display().to_string(), file).map_err(|source| {
        Error::Layer {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let mut archive = tar::Archive::new(reader);
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let mut stored: HashMap<String, String> = HashMap::new(); // archive path -> digest
    let mut aliases: HashMap<String, String> = HashMap::new(); // symlink -> target path
    let not_tar = |e: io::Error| {
        fail(format!(
            "not a tar archive, or a truncated one ({e}); expected an OCI layout or docker save tarball"
        ))
    };
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        let raw = entry.path().map_err(io_err)?.into_owned();
        let Some(name) = clean(&raw) else {
            return Err(fail(format!(
                "entry {:?} escapes the archive (contains '..')",
                raw.display()
            )));
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Ok(Some(target)) = entry.link_name() {
                let base = if kind.is_symlink() {
                    Path::new(&name)
                        .parent()
                        .unwrap_or(Path::new(""))
                        .join(target)
                } else {
                    target.into_owned()
                };
                if let Some(t) = clean(&base) {
                    aliases.insert(name, t);
                }
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            let digest = format!("sha256:{hex}");
            // Re-importing a tarball (or one sharing layers) skips what the store has.
            if !blobs.has(&digest) {
                blobs
                    .put_reader(&mut entry, Some(&digest))
                    .map_err(blob_err)?;
            }
            stored.insert(name, digest);
        } else if !name.ends_with(".tar") && entry.header().size().unwrap_or(0) <= MAX_METADATA {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(io_err)?;
            small.insert(name, bytes);
        } else {
            let (digest, _) = blobs.put_reader(&mut entry, None).map_err(blob_err)?;
            stored.insert(name, digest);
        }
    }
    let archive = Archive {
        small,
        stored,
        aliases,
    };
    let docker_tags = match archive.small.get("manifest.json") {
        Some(bytes) => Some(
            serde_json::from_slice::<Vec<DockerSaveEntry>>(bytes)
                .map_err(|e| fail(format!("manifest.json is not a docker save manifest: {e}")))?,
        ),
        None => None,
    };
    if let Some(index) = archive.small.get("index.json") {
        let index: manifest::Index = serde_json::from_slice(index)
            .map_err(|e| fail(format!("index.json is not an OCI image index: {e}")))?;
        return oci_layout(blobs, &index, docker_tags.as_deref()).map_err(fail);
    }
    match docker_tags {
        Some(entries) => docker_save(blobs, &archive, &entries).map_err(fail),
        None => Err(fail(
            "neither index.json (OCI image layout) nor manifest.json (docker save) is in the archive".into(),
        )),
    }
}

struct Archive {
    small: HashMap<String, Vec<u8>>,
    stored: HashMap<String, String>,
    aliases: HashMap<String, String>,
}

impl Archive {
    /// The blob digest of an archive path, following symlinks (docker save links
    /// repeated layers to their first copy); small files are stored on demand.
    fn digest_of(&self, blobs: &BlobStore, path: &str) -> Result<String, String> {
        let mut path =
            clean(Path::new(path)).ok_or_else(|| format!("path {path:?} contains '..'"))?;
        for _ in 0..16 {
            if let Some(d) = self.stored.get(&path) {
                return Ok(d.clone());
            }
            if let Some(bytes) = self.small.get(&path) {
                return blobs.put_bytes(bytes, None).map_err(|e| e.to_string());
            }
            match self.aliases.get(&path) {
                Some(next) => path = next.clone(),
                None => break,
            }
        }
        Err(format!("{path:?} is referenced but not in the archive"))
    }
}

/// One image of a `docker save` manifest.json.
#[derive(Debug, Deserialize)]
struct DockerSaveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn docker_save(
    blobs: &BlobStore,
    archive: &Archive,
    entries: &[DockerSaveEntry],
) -> Result<Vec<Found>, String> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let at = |m: String| format!("manifest.json[{i}]: {m}");
        let config_digest = archive.digest_of(blobs, &e.config).map_err(at)?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let digest = archive.digest_of(blobs, l).map_err(at)?;
            layers.push(Descriptor {
                media_type: manifest::OCI_LAYER.into(),
                size: blobs.size(&digest).unwrap_or(0) as i64,
                digest,
                platform: None,
                annotations: Default::default(),
            });
        }
        // docker save has no manifest; synthesize an OCI one so every image in the
        // store has the same shape.
        let m = Manifest {
            schema_version: 2,
            media_type: Some(manifest::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: manifest::OCI_CONFIG.into(),
                size: blobs.size(&config_digest).unwrap_or(0) as i64,
                digest: config_digest,
                platform: None,
                annotations: Default::default(),
            },
            layers,
        };
        let bytes = serde_json::to_vec(&m).map_err(|e| at(e.to_string()))?;
        let manifest_digest = blobs
            .put_bytes(&bytes, None)
            .map_err(|e| at(e.to_string()))?;
        let mut references = Vec::new();
        for tag in e.repo_tags.iter().flatten() {
            references.push(normalize(tag).map_err(|e| at(format!("RepoTags: {e}")))?);
        }
        out.push(Found {
            manifest_digest,
            references,
        });
    }
    Ok(out)
}

fn oci_layout(
    blobs: &BlobStore,
    index: &manifest::Index,
    docker: Option<&[DockerSaveEntry]>,
) -> Result<Vec<Found>, String> {
    let mut out: Vec<Found> = Vec::new();
    for (i, d) in index.manifests.iter().enumerate() {
        let at = |m: String| format!("index.json manifests[{i}] {}: {m}", d.digest);
        let manifest_digest = resolve_manifest(blobs, d, 0).map_err(at)?;
        let mut references = Vec::new();
        // A bare tag ("latest") names no repository, so only full references count.
        for key in [manifest::CONTAINERD_NAME, manifest::REF_NAME] {
            if let Some(name) = d.annotations.get(key) {
                if name.contains('/') || name.contains(':') {
                    let r = normalize(name).map_err(|e| at(format!("annotation {key}: {e}")))?;
                    if !references.contains(&r) {
                        references.push(r);
                    }
                }
            }
        }
        if references.is_empty() {
            // Docker >= 25 writes both layouts; its names live in manifest.json.
            let config = manifest_config(blobs, &manifest_digest).map_err(at)?;
            for e in docker.into_iter().flatten() {
                if e.config.trim_start_matches("blobs/sha256/")
                    == config.trim_start_matches("sha256:")
                {
                    for tag in e.repo_tags.iter().flatten() {
                        references.push(normalize(tag).map_err(|e| at(format!("RepoTags: {e}")))?);
                    }
                }
            }
        }
        match out
            .iter_mut()
            .find(|f| f.manifest_digest == manifest_digest)
        {
            Some(f) => f.references.extend(references),
            None => out.push(Found {
                manifest_digest,
                references,
            }),
        }
    }
    Ok(out)
}

fn manifest_config(blobs: &BlobStore, digest: &str) -> Result<String, String> {
    let bytes = blobs.read(digest).map_err(|e| e.to_string())?;
    match manifest::parse_document(&bytes, None)? {
        Document::Manifest(m) => Ok(m.config.digest),
        Document::Index(_) => Err(format!("{digest} is an index, expected a manifest")),
    }
}

/// Follows nested indexes down to this platform's image manifest.
fn resolve_manifest(blobs: &BlobStore, d: &Descriptor, depth: u32) -> Result<String, String> {
    if depth > 4 {
        return Err("image indexes nest too deeply".into());
    }
    let bytes = blobs
        .read(&d.digest)
        .map_err(|e| format!("manifest blob: {e}"))?;
    match manifest::parse_document(&bytes, Some(&d.media_type))? {
        Document::Manifest(_) => Ok(d.digest.clone()),
        Document::Index(index) => {
            let (os, arch) = manifest::host_platform();
            let next = manifest::select_platform(&index)
                .ok_or_else(|| format!("the image index has no manifest for {os}/{arch}"))?;
            resolve_manifest(blobs, next, depth + 1)
        }
    }
}

/// A relative, '..'-free, '/'-separated archive path.
fn clean(raw: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_string()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    Some(parts.join("/"))
}
