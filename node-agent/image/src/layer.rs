//! Unpacking one layer (tar, optionally gzip) into a directory usable as an overlayfs
//! lower dir: OCI whiteouts become overlay whiteouts, paths may not escape the layer.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use crate::blobs::HashingReader;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("layer {layer}: entry {entry:?} escapes the layer (contains '..'); the image is malformed or malicious")]
    PathEscape { layer: String, entry: String },
    #[error("layer {layer}: uncompressed content has digest {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },
    #[error(
        "layer {layer}: {compression} compressed layers are not supported (only tar and tar+gzip)"
    )]
    UnsupportedCompression { layer: String, compression: String },
    #[error("layer {layer}: entry {entry:?}: {source}")]
    Entry {
        layer: String,
        entry: String,
        source: io::Error,
    },
    #[error("layer {layer}: {source}")]
    Io { layer: String, source: io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// Wraps a layer blob in a gzip decoder when it starts with the gzip magic.
pub fn decompress<'a>(layer: &str, r: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let head = r.fill_buf().map_err(|source| Error::Io {
        layer: layer.to_string(),
        source,
    })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(Error::UnsupportedCompression {
            layer: layer.to_string(),
            compression: "zstd".into(),
        })
    } else {
        Ok(Box::new(r))
    }
}

/// Unpacks a layer blob (tar or tar+gzip) into `dst` (which must exist and be empty).
/// With `diff_id`, the uncompressed stream must hash to it. Returns the unpacked size
/// in bytes (sum of regular file sizes).
pub fn unpack(layer: &str, blob: impl Read, dst: &Path, diff_id: Option<&str>) -> Result<u64> {
    let io_err = |source| Error::Io {
        layer: layer.to_string(),
        source,
    };
    let hashing = HashingReader::new(decompress(layer, blob)?);
    let mut archive = tar::Archive::new(hashing);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    // The layer root must be traversable by non-root users; a "./" entry may refine it.
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755)).map_err(io_err)?;
    let canon_dst = dst.canonicalize().map_err(io_err)?;
    let mut size = 0u64;
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let raw = entry.path().map_err(io_err)?.into_owned();
        let entry_err = |source: io::Error| Error::Entry {
            layer: layer.to_string(),
            entry: raw.display().to_string(),
            source,
        };
        let rel = relative_path(&raw).ok_or_else(|| Error::PathEscape {
            layer: layer.to_string(),
            entry: raw.display().to_string(),
        })?;
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644);
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        if rel.as_os_str().is_empty() {
            if kind.is_dir() {
                fs::set_permissions(dst, fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(entry_err)?;
                std::os::unix::fs::lchown(dst, Some(uid), Some(gid)).map_err(entry_err)?;
            }
            continue;
        }
        let name = rel
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let parent = safe_parent(&canon_dst, parent_rel).map_err(entry_err)?;
            if name == OPAQUE_WHITEOUT {
                // The directory hides everything below it in lower layers.
                xattr::set(&parent, "trusted.overlay.opaque", b"y").map_err(entry_err)?;
            } else if hidden.starts_with(".wh.") {
                // Other AUFS meta files (.wh..wh.plnk, ...) carry nothing for overlay.
            } else {
                let target = parent.join(hidden);
                remove_any(&target).map_err(entry_err)?;
                mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                    .map_err(|e| entry_err(io::Error::from(e)))?;
            }
            continue;
        }
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let parent = safe_parent(&canon_dst, parent_rel).map_err(entry_err)?;
            let target = parent.join(&name);
            remove_any(&target).map_err(entry_err)?;
            let (flag, dev) = if kind.is_fifo() {
                (SFlag::S_IFIFO, 0)
            } else {
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let flag = if kind.is_character_special() {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                (flag, makedev(major as u64, minor as u64))
            };
            mknod(&target, flag, Mode::from_bits_truncate(mode & 0o7777), dev)
                .map_err(|e| entry_err(io::Error::from(e)))?;
            std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).map_err(entry_err)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode & 0o7777))
                .map_err(entry_err)?;
            continue;
        }
        if kind.is_file() {
            size += header.size().unwrap_or(0);
        }
        // tar's unpack_in refuses writes through symlinks that leave `dst` and hard
        // links pointing outside it; '..' was rejected above.
        let unpacked = entry.unpack_in(&canon_dst).map_err(entry_err)?;
        if !unpacked {
            return Err(Error::PathEscape {
                layer: layer.to_string(),
                entry: raw.display().to_string(),
            });
        }
    }
    let (actual, _) = archive.into_inner().finish().map_err(io_err)?;
    if let Some(expected) = diff_id {
        if expected != actual {
            return Err(Error::DiffIdMismatch {
                layer: layer.to_string(),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    Ok(size)
}

/// The entry path relative to the layer root; None when it contains '..'.
fn relative_path(raw: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return None,
        }
    }
    Some(out)
}

/// Creates `root/rel` as directories (if missing) and checks that, with symlinks
/// resolved, it is still inside `root`.
fn safe_parent(root: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&cur)?,
            Err(e) => return Err(e),
        }
        let canon = cur.canonicalize()?;
        if !canon.starts_with(root) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} resolves outside the layer", cur.display()),
            ));
        }
        cur = canon;
    }
    Ok(cur)
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Bytes used by a directory tree (apparent sizes of files; directories count 4 KiB).
pub fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    let mut total = 4096;
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            total += tree_size(&e.path());
        }
    }
    total
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    /// One tar entry for test archives.
    pub enum E<'a> {
        Dir(&'a str, u32),
        File(&'a str, &'a [u8], u32),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
        Owned(&'a str, &'a [u8], u64, u64),
    }

    /// Builds a tar with raw (unvalidated) paths so tests can write malicious ones.
    pub fn build_tar(entries: &[E]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            let (path, data, kind, mode): (&str, &[u8], tar::EntryType, u32) = match e {
                E::Dir(p, m) => (p, b"", tar::EntryType::Directory, *m),
                E::File(p, d, m) => (p, d, tar::EntryType::Regular, *m),
                E::Owned(p, d, uid, gid) => {
                    h.set_uid(*uid);
                    h.set_gid(*gid);
                    (p, d, tar::EntryType::Regular, 0o640)
                }
                E::Symlink(p, t) => {
                    h.set_link_name(t).unwrap();
                    (p, b"", tar::EntryType::Symlink, 0o777)
                }
                E::Hardlink(p, t) => {
                    h.set_link_name(t).unwrap();
                    (p, b"", tar::EntryType::Link, 0o644)
                }
            };
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(data.len() as u64);
            h.set_mtime(1_700_000_000);
            // Write the name bytes directly: set_path refuses '..', which tests need.
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn unpack_into(tar: &[u8]) -> (tempfile::TempDir, Result<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let r = unpack("test", tar, dir.path(), None);
        (dir, r)
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts_and_opaque_dirs() {
        let tar = build_tar(&[
            E::Dir("etc/", 0o755),
            E::File("etc/.wh.passwd", b"", 0o644),
            E::Dir("var/cache/", 0o755),
            E::File("var/cache/.wh..wh..opq", b"", 0o644),
            E::File("var/cache/new", b"x", 0o644),
            E::File("gone/.wh.dir", b"", 0o644),
        ]);
        let (dir, r) = unpack_into(&tar);
        r.unwrap();
        let wh = fs::symlink_metadata(dir.path().join("etc/passwd")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!dir.path().join("etc/.wh.passwd").exists());
        let opaque = xattr::get(dir.path().join("var/cache"), "trusted.overlay.opaque").unwrap();
        assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
        assert!(!dir.path().join("var/cache/.wh..wh..opq").exists());
        assert!(dir.path().join("var/cache/new").is_file());
        // A whiteout in a directory the layer never listed creates that directory.
        assert!(fs::symlink_metadata(dir.path().join("gone/dir"))
            .unwrap()
            .file_type()
            .is_char_device());
    }

    #[test]
    fn modes_owners_symlinks_and_hardlinks_are_kept() {
        let tar = build_tar(&[
            E::Dir("./", 0o755),
            E::Dir("bin/", 0o755),
            E::File("bin/tool", b"#!/bin/sh\n", 0o4755),
            E::Symlink("bin/alias", "tool"),
            E::Symlink("bin/abs", "/etc/shadow"),
            E::Hardlink("bin/tool2", "bin/tool"),
            E::Owned("home/data", b"secret", 1000, 1001),
        ]);
        let (dir, r) = unpack_into(&tar);
        assert_eq!(r.unwrap(), 16);
        let p = dir.path();
        let tool = fs::metadata(p.join("bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o4755);
        assert_eq!(
            fs::read_link(p.join("bin/alias")).unwrap(),
            Path::new("tool")
        );
        // Absolute symlinks are meant for inside the container; they stay as written.
        assert_eq!(
            fs::read_link(p.join("bin/abs")).unwrap(),
            Path::new("/etc/shadow")
        );
        assert_eq!(fs::metadata(p.join("bin/tool2")).unwrap().ino(), tool.ino());
        let data = fs::metadata(p.join("home/data")).unwrap();
        assert_eq!(
            (data.uid(), data.gid(), data.mode() & 0o777),
            (1000, 1001, 0o640)
        );
    }

    #[test]
    fn entries_escaping_the_layer_are_rejected() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("pwned");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dotdot", build_tar(&[E::File("../pwned", b"x", 0o644)])),
            (
                "nested dotdot",
                build_tar(&[E::File("a/../../pwned", b"x", 0o644)]),
            ),
            (
                "through symlink",
                build_tar(&[
                    E::Symlink("link", outside.path().to_str().unwrap()),
                    E::File("link/pwned", b"x", 0o644),
                ]),
            ),
            (
                "whiteout through symlink",
                build_tar(&[
                    E::Symlink("link", outside.path().to_str().unwrap()),
                    E::File("link/.wh.pwned", b"", 0o644),
                ]),
            ),
            (
                "hardlink outside",
                build_tar(&[E::Hardlink("h", "../../../../../../etc/hostname")]),
            ),
        ];
        for (name, tar) in cases {
            let (_dir, r) = unpack_into(&tar);
            assert!(r.is_err(), "{name}: unpack succeeded");
            assert!(!target.exists(), "{name}: wrote outside the layer");
        }
    }

    #[test]
    fn gzip_layers_are_detected_and_diff_ids_verified() {
        use std::io::Write;
        let tar = build_tar(&[E::File("a", b"hello", 0o644)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let diff_id = crate::blobs::sha256_digest(&tar);
        let dir = tempfile::tempdir().unwrap();
        unpack("gz", &gz[..], dir.path(), Some(&diff_id)).unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"hello");
        let dir = tempfile::tempdir().unwrap();
        let wrong = crate::blobs::sha256_digest(b"nope");
        let err = unpack("gz", &gz[..], dir.path(), Some(&wrong)).unwrap_err();
        assert!(matches!(err, Error::DiffIdMismatch { .. }), "{err}");
    }
}
