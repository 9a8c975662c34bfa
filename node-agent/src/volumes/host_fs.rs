//! The host side of volumes: tmpfs mounts, the mount table, and removal that never
//! leaves the pod's own filesystem.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Mounts a tmpfs at `dir` (which must exist) unless something is mounted there
/// already, so a second setup after an agent restart keeps the data.
pub fn mount_tmpfs(dir: &Path, size: Option<u64>, mode: u32) -> io::Result<bool> {
    if is_mount_point(dir)? {
        return Ok(false);
    }
    let mut data = format!("mode={mode:o}");
    if let Some(size) = size {
        data.push_str(&format!(",size={size}"));
    }
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(io::Error::from)?;
    Ok(true)
}

/// Whether `dir` is a mount point, from the mount table (a bind mount of a dir on the
/// same filesystem has the same st_dev, so comparing devices is not enough).
pub fn is_mount_point(dir: &Path) -> io::Result<bool> {
    let dir = fs::canonicalize(dir)?;
    Ok(mount_points()?.contains(&dir))
}

/// Every mount point of this mount namespace, in mount order.
pub fn mount_points() -> io::Result<Vec<PathBuf>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse_mountinfo(&text))
}

fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_octal(p)))
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts everything mounted at or below `dir`, deepest first (lazy detach, so a
/// container still holding a bind of it cannot make teardown fail).
pub fn unmount_all_under(dir: &Path) -> io::Result<()> {
    let dir = match fs::canonicalize(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut under: Vec<PathBuf> = mount_points()?
        .into_iter()
        .filter(|m| m.starts_with(&dir))
        .collect();
    // Mount order reversed: later (possibly stacked or nested) mounts go first.
    under.reverse();
    under.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in under {
        match umount2(&m, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                let kind = io::Error::from(e).kind();
                return Err(io::Error::new(
                    kind,
                    format!("unmounting {}: {e}", m.display()),
                ));
            }
        }
    }
    Ok(())
}

/// Removes `path` and everything below it without ever following a symlink and without
/// descending into another filesystem (something still mounted below it is an error, not
/// a recursive delete of whatever is mounted there, e.g. a host path).
pub fn remove_tree_same_fs(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_below(path, &meta, meta.dev())
}

fn remove_below(path: &Path, meta: &fs::Metadata, dev: u64) -> io::Result<()> {
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    if meta.dev() != dev {
        return Err(io::Error::other(format!(
            "refusing to remove {}: another filesystem is still mounted there",
            path.display()
        )));
    }
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let child = entry.path();
        // symlink_metadata: a symlink is removed as a link, never followed.
        let child_meta = fs::symlink_metadata(&child)?;
        remove_below(&child, &child_meta, dev)?;
    }
    fs::remove_dir(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        let text = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 0:5 / /proc rw - proc proc rw\n";
        assert_eq!(
            parse_mountinfo(text),
            vec![PathBuf::from("/mnt/with space"), PathBuf::from("/proc")]
        );
        assert_eq!(unescape_octal("a\\134b"), "a\\b");
        assert_eq!(unescape_octal("trailing\\"), "trailing\\");
    }

    #[test]
    fn removing_a_tree_never_follows_symlinks_out_of_it() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("precious"), "keep me").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/b/file"), "x").unwrap();
        symlink(outside.path(), tree.join("a/link-to-dir")).unwrap();
        symlink(outside.path().join("precious"), tree.join("link-to-file")).unwrap();

        remove_tree_same_fs(&tree).unwrap();
        assert!(!tree.exists());
        assert_eq!(
            fs::read_to_string(outside.path().join("precious")).unwrap(),
            "keep me"
        );
        remove_tree_same_fs(&tree).unwrap();
    }
}
