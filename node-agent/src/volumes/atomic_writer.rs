//! Kubernetes' atomic writer: a volume's files swapped in one `rename` so running
//! containers never see a half-updated configMap or secret.
//!
//! Layout of a target dir (the same as the kubelet's, so tools that know it work):
//!
//! ```text
//! <target>/..2026_11_22_07_45_50.123456789/   the payload (real files)
//! <target>/..data -> ..2026_11_22_07_45_50.123456789
//! <target>/<key>  -> ..data/<key>               one per top-level path of the payload
//! ```
//!
//! An update writes a fresh timestamped dir, points `..data_tmp` at it and renames that
//! over `..data` (atomic on one filesystem), then fixes the user-visible symlinks and
//! removes the old dir. All symlinks are relative, so they resolve inside the container.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";

/// One file of a payload: its bytes and permission bits.
#[derive(Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

impl std::fmt::Debug for FileProjection {
    // Payloads are often secrets: never print the bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FileProjection(<{} bytes>, {:o})",
            self.data.len(),
            self.mode
        )
    }
}

/// Relative path (as written in `items[].path` or a key) -> file.
pub type Payload = BTreeMap<String, FileProjection>;

/// Checks one payload path the way the kubelet's `validatePath` does.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("invalid path: must not be empty".into());
    }
    if path.len() > 4096 {
        return Err(format!(
            "invalid path {path:?}: must be less than 4096 characters"
        ));
    }
    if Path::new(path).is_absolute() {
        return Err(format!("invalid path {path:?}: must be relative path"));
    }
    if path.split('/').any(|seg| seg == "..") {
        return Err(format!("invalid path {path:?}: must not contain '..'"));
    }
    if path.starts_with("..") {
        return Err(format!("invalid path {path:?}: must not start with '..'"));
    }
    if path.split('/').any(|seg| seg.len() > 255) {
        return Err(format!(
            "invalid path {path:?}: each path element must be at most 255 characters"
        ));
    }
    Ok(())
}

/// Writes payloads into one target dir.
pub struct AtomicWriter {
    target: PathBuf,
    gid: Option<u32>,
}

impl AtomicWriter {
    pub fn new(target: impl Into<PathBuf>) -> Self {
        AtomicWriter {
            target: target.into(),
            gid: None,
        }
    }

    /// Files and dirs of new payloads get this group (the pod's fsGroup).
    pub fn with_gid(mut self, gid: Option<u32>) -> Self {
        self.gid = gid;
        self
    }

    /// Makes the target dir show exactly `payload`. Returns whether anything changed
    /// (false when the current contents already match: no new dir, no rename).
    pub fn write(&self, payload: &Payload) -> io::Result<bool> {
        for path in payload.keys() {
            validate_path(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        }
        fs::create_dir_all(&self.target)?;
        let old_ts = match fs::read_link(self.target.join(DATA_DIR)) {
            Ok(link) => Some(link),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let new_top: BTreeSet<String> = payload.keys().map(|p| top_level(p)).collect();

        if let Some(old) = &old_ts {
            let current = read_payload(&self.target.join(old))?;
            if current == *payload && self.visible_links_ok(&new_top)? {
                return Ok(false);
            }
        }

        let ts_name = self.new_ts_dir()?;
        let ts_dir = self.target.join(&ts_name);
        let written = write_payload(&ts_dir, payload, self.gid);
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&ts_dir);
            return Err(e);
        }

        // The switch: a fresh symlink renamed over `..data` in one step.
        let tmp = self.target.join(DATA_DIR_TMP);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        symlink(&ts_name, &tmp)?;
        fs::rename(&tmp, self.target.join(DATA_DIR))?;

        // User-visible names: add the new ones, drop the ones the payload lost.
        for name in &new_top {
            let link = self.target.join(name);
            if fs::symlink_metadata(&link).is_err() {
                symlink(Path::new(DATA_DIR).join(name), &link)?;
            }
        }
        for entry in fs::read_dir(&self.target)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("..") || new_top.contains(&name) {
                continue;
            }
            // Only our own links: a subPath dir someone created here stays.
            if entry.file_type()?.is_symlink() {
                let dest = fs::read_link(entry.path())?;
                if dest.starts_with(DATA_DIR) {
                    fs::remove_file(entry.path())?;
                }
            }
        }

        if let Some(old) = old_ts {
            if old != Path::new(&ts_name) && is_plain_name(&old) {
                fs::remove_dir_all(self.target.join(old))?;
            }
        }
        // Leftovers of an interrupted write (a crash between mkdir and the rename).
        for entry in fs::read_dir(&self.target)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("..")
                && name != DATA_DIR
                && name != ts_name
                && entry.file_type()?.is_dir()
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(true)
    }

    fn visible_links_ok(&self, names: &BTreeSet<String>) -> io::Result<bool> {
        for name in names {
            match fs::read_link(self.target.join(name)) {
                Ok(dest) if dest == Path::new(DATA_DIR).join(name) => {}
                Ok(_) => return Ok(false),
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.kind() == io::ErrorKind::InvalidInput =>
                {
                    return Ok(false)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// `..<UTC timestamp>.<nanos>`, created empty (0755); unique within the target.
    fn new_ts_dir(&self) -> io::Result<String> {
        let now = chrono::Utc::now();
        let base = now.format("..%Y_%m_%d_%H_%M_%S").to_string();
        let mut nanos = now.timestamp_subsec_nanos();
        loop {
            let name = format!("{base}.{nanos:09}");
            match fs::create_dir(self.target.join(&name)) {
                Ok(()) => {
                    fs::set_permissions(
                        self.target.join(&name),
                        fs::Permissions::from_mode(0o755),
                    )?;
                    return Ok(name);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => nanos = nanos.wrapping_add(1),
                Err(e) => return Err(e),
            }
        }
    }
}

fn top_level(path: &str) -> String {
    path.split('/')
        .find(|s| !s.is_empty() && *s != ".")
        .unwrap_or(path)
        .to_string()
}

fn is_plain_name(p: &Path) -> bool {
    let mut comps = p.components();
    matches!(comps.next(), Some(Component::Normal(_))) && comps.next().is_none()
}

fn write_payload(dir: &Path, payload: &Payload, gid: Option<u32>) -> io::Result<()> {
    if gid.is_some() {
        chown(dir, None, gid)?;
    }
    for (path, file) in payload {
        let dest = dir.join(path);
        if let Some(parent) = dest.parent() {
            if parent != dir {
                fs::create_dir_all(parent)?;
                fs::set_permissions(parent, fs::Permissions::from_mode(0o755))?;
                if gid.is_some() {
                    // Every level between `dir` and the file.
                    for p in parent.ancestors().take_while(|p| *p != dir) {
                        chown(p, None, gid)?;
                    }
                }
            }
        }
        fs::write(&dest, &file.data)?;
        if gid.is_some() {
            chown(&dest, None, gid)?;
        }
        fs::set_permissions(&dest, fs::Permissions::from_mode(file.mode & 0o7777))?;
    }
    Ok(())
}

/// The files under `dir` as a payload (paths relative to `dir`).
fn read_payload(dir: &Path) -> io::Result<Payload> {
    let mut out = Payload::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let entries = match fs::read_dir(dir.join(&rel)) {
            Ok(e) => e,
            // A dangling `..data` (its dir removed by hand) reads as empty: rewrite.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Payload::new()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let ty = entry.file_type()?;
            let rel_path = rel.join(entry.file_name());
            if ty.is_dir() {
                stack.push(rel_path);
            } else if ty.is_file() {
                let meta = entry.metadata()?;
                out.insert(
                    rel_path.to_string_lossy().into_owned(),
                    FileProjection {
                        data: fs::read(entry.path())?,
                        mode: meta.permissions().mode() & 0o7777,
                    },
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(p, d, m)| (p.to_string(), file(d, *m)))
            .collect()
    }

    fn names(dir: &Path) -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn first_write_creates_the_kubelet_layout() {
        let dir = tempfile::tempdir().unwrap();
        let w = AtomicWriter::new(dir.path());
        let p = payload(&[("a", "1", 0o644), ("sub/b", "2", 0o600)]);
        assert!(w.write(&p).unwrap());

        let data = fs::read_link(dir.path().join("..data")).unwrap();
        assert!(data.to_string_lossy().starts_with("..20"), "{data:?}");
        assert_eq!(
            fs::read_link(dir.path().join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(
            fs::read_link(dir.path().join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(dir.path().join("sub/b")).unwrap(), "2");
        let mode = fs::metadata(dir.path().join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_identical_payload_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let w = AtomicWriter::new(dir.path());
        let p = payload(&[("a", "1", 0o644)]);
        assert!(w.write(&p).unwrap());
        let before = fs::read_link(dir.path().join("..data")).unwrap();
        assert!(!w.write(&p).unwrap());
        assert_eq!(fs::read_link(dir.path().join("..data")).unwrap(), before);
    }

    #[test]
    fn an_update_swaps_contents_and_removes_dropped_keys_and_the_old_dir() {
        let dir = tempfile::tempdir().unwrap();
        let w = AtomicWriter::new(dir.path());
        assert!(w
            .write(&payload(&[("a", "1", 0o644), ("b", "2", 0o644)]))
            .unwrap());
        // A subPath dir made by someone else must survive updates.
        fs::create_dir(dir.path().join("keep")).unwrap();
        assert!(w
            .write(&payload(&[("a", "new", 0o644), ("c", "3", 0o644)]))
            .unwrap());

        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "new");
        assert_eq!(fs::read_to_string(dir.path().join("c")).unwrap(), "3");
        let got = names(dir.path());
        assert!(!got.contains("b"), "{got:?}");
        assert!(got.contains("keep"), "{got:?}");
        let ts_dirs: Vec<_> = got
            .iter()
            .filter(|n| n.starts_with("..") && *n != "..data")
            .collect();
        assert_eq!(ts_dirs.len(), 1, "{got:?}");
    }

    #[test]
    fn a_mode_change_alone_is_an_update() {
        let dir = tempfile::tempdir().unwrap();
        let w = AtomicWriter::new(dir.path());
        assert!(w.write(&payload(&[("a", "1", 0o644)])).unwrap());
        assert!(w.write(&payload(&[("a", "1", 0o400)])).unwrap());
        let mode = fs::metadata(dir.path().join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
    }

    #[test]
    fn an_empty_payload_leaves_only_the_data_link() {
        let dir = tempfile::tempdir().unwrap();
        let w = AtomicWriter::new(dir.path());
        assert!(w.write(&payload(&[("a", "1", 0o644)])).unwrap());
        assert!(w.write(&Payload::new()).unwrap());
        let visible: Vec<_> = names(dir.path())
            .into_iter()
            .filter(|n| !n.starts_with(".."))
            .collect();
        assert!(visible.is_empty(), "{visible:?}");
    }

    #[test]
    fn bad_paths_are_rejected_like_the_kubelet() {
        let cases = [
            ("", "must not be empty"),
            ("/etc/passwd", "must be relative path"),
            ("a/../../b", "must not contain '..'"),
            ("..data", "must not start with '..'"),
        ];
        for (path, want) in cases {
            let err = validate_path(path).unwrap_err();
            assert!(err.contains(want), "{path:?}: {err}");
        }
        assert!(validate_path("dir/.hidden").is_ok());
        let dir = tempfile::tempdir().unwrap();
        let err = AtomicWriter::new(dir.path())
            .write(&payload(&[("../escape", "x", 0o644)]))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(!dir.path().parent().unwrap().join("escape").exists());
    }
}
