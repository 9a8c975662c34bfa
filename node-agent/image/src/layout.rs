//! Building images in memory and writing them as OCI-layout or `docker save` tarballs
//! (the demo images, tests, and anyone who needs an image without a registry).

use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::blobs::sha256_digest;
use crate::manifest::{self, ConfigFile, Descriptor, Index, Manifest, Platform, RootFs, RunConfig};

/// A layer tarball under construction; entries are owned by root with a fixed mtime
/// so builds are reproducible.
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub fn new() -> Self {
        LayerBuilder {
            tar: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<&mut Self> {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.tar.append_data(&mut h, path, io::empty())?;
        Ok(self)
    }

    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> io::Result<&mut Self> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.tar.append_data(&mut h, path, data)?;
        Ok(self)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<&mut Self> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.tar.append_link(&mut h, path, target)?;
        Ok(self)
    }

    pub fn finish(self) -> io::Result<Vec<u8>> {
        self.tar.into_inner()
    }
}

/// An image held in memory: its blobs and their digests.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    /// `(digest, blob)` bottom to top, as distributed (gzip when built so).
    pub layers: Vec<(String, Vec<u8>)>,
    /// Uncompressed tar of each layer (what `docker save` carries).
    pub layer_tars: Vec<Vec<u8>>,
}

/// Assembles an image for this host's platform from uncompressed layer tars.
pub fn build_image(layer_tars: Vec<Vec<u8>>, run: RunConfig, gzip: bool) -> io::Result<BuiltImage> {
    let (os, arch) = manifest::host_platform();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in &layer_tars {
        diff_ids.push(sha256_digest(tar));
        let blob = if gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(tar)?;
            gz.finish()?
        } else {
            tar.clone()
        };
        layers.push((sha256_digest(&blob), blob));
    }
    let config = ConfigFile {
        architecture: arch.into(),
        os: os.into(),
        config: Some(run),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        created: Some("2023-11-14T22:13:20Z".into()),
    };
    let config = serde_json::to_vec(&config).map_err(io::Error::other)?;
    let config_digest = sha256_digest(&config);
    let layer_media = if gzip {
        manifest::OCI_LAYER_GZIP
    } else {
        manifest::OCI_LAYER
    };
    let m = Manifest {
        schema_version: 2,
        media_type: Some(manifest::OCI_MANIFEST.into()),
        config: descriptor(manifest::OCI_CONFIG, &config_digest, config.len()),
        layers: layers
            .iter()
            .map(|(d, b)| descriptor(layer_media, d, b.len()))
            .collect(),
    };
    let manifest = serde_json::to_vec(&m).map_err(io::Error::other)?;
    Ok(BuiltImage {
        manifest_digest: sha256_digest(&manifest),
        manifest,
        config_digest,
        config,
        layers,
        layer_tars,
    })
}

fn descriptor(media_type: &str, digest: &str, size: usize) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: digest.into(),
        size: size as i64,
        platform: None,
        annotations: BTreeMap::new(),
    }
}

fn append(tar: &mut tar::Builder<impl Write>, path: &str, data: &[u8]) -> io::Result<()> {
    let mut h = LayerBuilder::header(tar::EntryType::Regular, 0o644, data.len() as u64);
    tar.append_data(&mut h, path, data)
}

/// Writes an OCI image layout tarball naming each image by its reference (both the
/// `org.opencontainers.image.ref.name` and containerd's annotation carry it).
pub fn write_oci_layout(w: impl Write, images: &[(&str, &BuiltImage)]) -> io::Result<()> {
    let mut tar = tar::Builder::new(w);
    append(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let (os, arch) = manifest::host_platform();
    let mut index = Index {
        schema_version: 2,
        media_type: Some(manifest::OCI_INDEX.into()),
        manifests: Vec::new(),
    };
    let mut written = std::collections::HashSet::new();
    for (reference, img) in images {
        let mut d = descriptor(
            manifest::OCI_MANIFEST,
            &img.manifest_digest,
            img.manifest.len(),
        );
        d.platform = Some(Platform {
            architecture: arch.into(),
            os: os.into(),
            variant: None,
        });
        d.annotations
            .insert(manifest::REF_NAME.into(), reference.to_string());
        d.annotations
            .insert(manifest::CONTAINERD_NAME.into(), reference.to_string());
        index.manifests.push(d);
        let blobs = [
            (&img.manifest_digest, &img.manifest),
            (&img.config_digest, &img.config),
        ];
        for (digest, data) in blobs
            .into_iter()
            .chain(img.layers.iter().map(|(d, b)| (d, b)))
        {
            if written.insert(digest.clone()) {
                let path = format!("blobs/sha256/{}", &digest["sha256:".len()..]);
                append(&mut tar, &path, data)?;
            }
        }
    }
    let index = serde_json::to_vec(&index).map_err(io::Error::other)?;
    append(&mut tar, "index.json", &index)?;
    tar.into_inner()?.flush()
}

/// Writes a classic `docker save` tarball (`manifest.json`, `<id>.json`,
/// `<layer>/layer.tar`), with `manifest.json` last as some tools write it.
pub fn write_docker_save(w: impl Write, images: &[(&str, &BuiltImage)]) -> io::Result<()> {
    let mut tar = tar::Builder::new(w);
    let mut entries = Vec::new();
    for (reference, img) in images {
        let config_name = format!("{}.json", &img.config_digest["sha256:".len()..]);
        append(&mut tar, &config_name, &img.config)?;
        let mut layers = Vec::new();
        for t in &img.layer_tars {
            let id = &sha256_digest(t)["sha256:".len()..];
            let path = format!("{id}/layer.tar");
            append(&mut tar, &path, t)?;
            layers.push(path);
        }
        entries.push(serde_json::json!({
            "Config": config_name,
            "RepoTags": [reference],
            "Layers": layers,
        }));
    }
    let manifest = serde_json::to_vec(&entries).map_err(io::Error::other)?;
    append(&mut tar, "manifest.json", &manifest)?;
    tar.into_inner()?.flush()
}
