//! The content-addressed blob store: `<root>/blobs/sha256/<hex>`, every write verified.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256};

use crate::reference::validate_digest;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "blob {digest}: content has digest {actual}; the source is corrupt or was tampered with"
    )]
    DigestMismatch { digest: String, actual: String },
    #[error("blob {digest}: {reason}")]
    InvalidDigest { digest: String, reason: String },
    #[error("blob {0} is not in the store")]
    Missing(String),
    #[error("blob store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex(ring::digest::digest(&SHA256, bytes).as_ref())
    )
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A reader that hashes (sha256) and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    ctx: Context,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            ctx: Context::new(&SHA256),
            count: 0,
        }
    }

    /// Reads the rest of the stream (tar archives may carry padding past their end
    /// marker, which is part of the digest) and returns `(sha256:<hex>, bytes)`.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex(self.ctx.finish().as_ref())),
            self.count,
        ))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// An incremental writer into the store: bytes go to a temp file, and `commit` moves
/// it into place under its digest once verified.
pub struct BlobWriter {
    file: tempfile::NamedTempFile,
    ctx: Context,
    size: u64,
    dir: PathBuf,
}

impl BlobWriter {
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.ctx.update(bytes);
        self.size += bytes.len() as u64;
        self.file.write_all(bytes).map_err(|source| Error::Io {
            path: self.file.path().to_path_buf(),
            source,
        })
    }

    /// Moves the blob into place. With `expected`, the content must hash to it.
    /// Returns `(digest, size)`.
    pub fn commit(self, expected: Option<&str>) -> Result<(String, u64)> {
        let actual = format!("sha256:{}", hex(self.ctx.finish().as_ref()));
        if let Some(expected) = expected {
            if expected != actual {
                return Err(Error::DigestMismatch {
                    digest: expected.to_string(),
                    actual,
                });
            }
        }
        let dst = self.dir.join(&actual["sha256:".len()..]);
        self.file.as_file().sync_all().map_err(io_err(&dst))?;
        // Another writer may have stored the same content meanwhile: identical bytes,
        // so replacing it is harmless.
        self.file.persist(&dst).map_err(|e| Error::Io {
            path: dst.clone(),
            source: e.error,
        })?;
        Ok((actual, self.size))
    }
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    pub fn open(root: &Path) -> Result<BlobStore> {
        let dir = root.join("blobs").join("sha256");
        let tmp = root.join("tmp");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        Ok(BlobStore { dir, tmp })
    }

    pub fn path(&self, digest: &str) -> Result<PathBuf> {
        validate_digest(digest).map_err(|reason| Error::InvalidDigest {
            digest: digest.to_string(),
            reason,
        })?;
        Ok(self.dir.join(&digest["sha256:".len()..]))
    }

    pub fn has(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    pub fn writer(&self) -> Result<BlobWriter> {
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.tmp)
            .map_err(io_err(&self.tmp))?;
        Ok(BlobWriter {
            file,
            ctx: Context::new(&SHA256),
            size: 0,
            dir: self.dir.clone(),
        })
    }

    /// Copies a stream into the store; `expected` is verified when given.
    pub fn put_reader(&self, mut r: impl Read, expected: Option<&str>) -> Result<(String, u64)> {
        if let Some(expected) = expected {
            self.path(expected)?;
        }
        let mut w = self.writer()?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf).map_err(io_err(&self.dir))?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n])?;
        }
        w.commit(expected)
    }

    pub fn put_bytes(&self, bytes: &[u8], expected: Option<&str>) -> Result<String> {
        Ok(self.put_reader(bytes, expected)?.0)
    }

    pub fn open_blob(&self, digest: &str) -> Result<File> {
        let path = self.path(digest)?;
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::Missing(digest.to_string())
            } else {
                Error::Io { path, source: e }
            }
        })
    }

    /// Reads a (small: manifest, config) blob and re-verifies it, so a corrupted file on
    /// disk is never trusted.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.path(digest)?;
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(io_err(&path))?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                digest: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    pub fn size(&self, digest: &str) -> Option<u64> {
        fs::metadata(self.path(digest).ok()?).ok().map(|m| m.len())
    }

    /// All stored digests.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            if let Some(name) = entry.file_name().to_str() {
                out.push(format!("sha256:{name}"));
            }
        }
        Ok(out)
    }

    pub fn remove(&self, digest: &str) -> Result<u64> {
        let path = self.path(digest)?;
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        match fs::remove_file(&path) {
            Ok(()) => Ok(size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(source) => Err(Error::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_stored_under_their_digest_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = store.put_bytes(b"hello", None).unwrap();
        assert_eq!(d, sha256_digest(b"hello"));
        assert!(store.has(&d));
        assert_eq!(store.read(&d).unwrap(), b"hello");
        let wrong = sha256_digest(b"other");
        let err = store.put_bytes(b"hello", Some(&wrong)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!store.has(&wrong));
        // A corrupted file on disk is detected on read.
        fs::write(store.path(&d).unwrap(), b"evil").unwrap();
        assert!(matches!(store.read(&d), Err(Error::DigestMismatch { .. })));
        assert_eq!(store.list().unwrap(), vec![d.clone()]);
        store.remove(&d).unwrap();
        assert!(store.list().unwrap().is_empty());
    }
}
