//! Container root filesystems: an overlay of shared read-only layer dirs plus a
//! per-container upper/work dir, and its teardown.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rootfs {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("rootfs {path}: mounting the overlay failed: {source} (options: {options})")]
    Mount {
        path: PathBuf,
        options: String,
        source: nix::Error,
    },
    #[error("rootfs {path}: unmounting failed: {source}")]
    Unmount { path: PathBuf, source: nix::Error },
    #[error("rootfs {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// mount(2) copies its data argument into one page; longer overlay options fail with
/// a confusing EINVAL, so they are refused up front with a clear message.
const MAX_OPTIONS: usize = 4000;

/// Mounts `lowers` (top first) with `dir/upper` and `dir/work` at `dir/rootfs`.
/// A single lower dir is fine because there is always an upper dir.
pub fn mount_overlay(lowers: &[PathBuf], dir: &Path) -> Result<PathBuf> {
    let rootfs = dir.join("rootfs");
    let upper = dir.join("upper");
    let work = dir.join("work");
    for d in [&rootfs, &upper, &work] {
        fs::create_dir_all(d).map_err(io_err(d))?;
    }
    if is_mountpoint(&rootfs).map_err(io_err(&rootfs))? {
        return Ok(rootfs);
    }
    // The merged root takes its mode from the upper dir; containers running as
    // non-root users must be able to traverse "/".
    fs::set_permissions(&upper, fs::Permissions::from_mode(0o755)).map_err(io_err(&upper))?;
    let mut all: Vec<&Path> = lowers.iter().map(|p| p.as_path()).collect();
    all.push(&upper);
    all.push(&work);
    for p in &all {
        let s = p.to_string_lossy();
        if s.contains(',') || s.contains(':') {
            return Err(Error::Invalid {
                path: p.to_path_buf(),
                reason: "overlay paths may not contain ',' or ':'; choose another root dir".into(),
            });
        }
    }
    let lowerdir = lowers
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let options = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    if options.len() > MAX_OPTIONS {
        return Err(Error::Invalid {
            path: rootfs,
            reason: format!(
                "{} layers make overlay options of {} bytes (limit {MAX_OPTIONS}); use a shorter root dir",
                lowers.len(),
                options.len()
            ),
        });
    }
    mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|source| Error::Mount {
        path: rootfs.clone(),
        options,
        source,
    })?;
    Ok(rootfs)
}

/// Unmounts `dir/rootfs` (lazily when busy) and removes rootfs, upper and work, then
/// `dir` itself if that left it empty.
pub fn unmount_overlay(dir: &Path) -> Result<()> {
    let rootfs = dir.join("rootfs");
    // Stacked mounts (a bind over the overlay) are peeled one by one.
    for _ in 0..8 {
        if !is_mountpoint(&rootfs).map_err(io_err(&rootfs))? {
            break;
        }
        match umount2(&rootfs, MntFlags::empty()) {
            Ok(()) => {}
            Err(nix::Error::EBUSY) => {
                umount2(&rootfs, MntFlags::MNT_DETACH).map_err(|source| Error::Unmount {
                    path: rootfs.clone(),
                    source,
                })?
            }
            Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => break,
            Err(source) => {
                return Err(Error::Unmount {
                    path: rootfs.clone(),
                    source,
                })
            }
        }
    }
    if is_mountpoint(&rootfs).map_err(io_err(&rootfs))? {
        return Err(Error::Invalid {
            path: rootfs,
            reason: "still mounted after unmounting 8 times".into(),
        });
    }
    for name in ["rootfs", "upper", "work"] {
        let p = dir.join(name);
        match fs::remove_dir_all(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Io { path: p, source }),
        }
    }
    let _ = fs::remove_dir(dir);
    Ok(())
}

/// Whether `path` is a mount point in this process's mount namespace.
pub fn is_mountpoint(path: &Path) -> io::Result<bool> {
    let canon = match path.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mountinfo.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|mp| Path::new(&unescape(mp)) == canon)
    }))
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/a\134b"), r"/a\b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn releasing_a_missing_rootfs_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        unmount_overlay(&dir.path().join("nothing")).unwrap();
    }
}
