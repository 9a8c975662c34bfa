//! The CRI container log file: `<RFC3339Nano> <stdout|stderr> <F|P> <content>\n` per
//! line (kubelet's format), lines over 16 KiB split into `P` parts, rotated at 10 MiB
//! keeping one `<path>.1`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};

/// Longest line content written as one record (containerd's default).
pub(crate) const MAX_LINE: usize = 16 * 1024;
/// Size at which the file is rotated.
pub(crate) const MAX_FILE: u64 = 10 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One writer per container, fed by both streams; each stream keeps its own partial
/// line.
pub(crate) struct CriLog {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_file: u64,
    partial: [Vec<u8>; 2],
}

impl CriLog {
    /// Opens (appends to) `path`, creating its parent directories.
    pub fn open(path: &Path) -> std::io::Result<CriLog> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(CriLog {
            path: path.to_path_buf(),
            file: Some(file),
            size,
            max_file: MAX_FILE,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Feeds bytes read from `stream`; writes every complete line.
    pub fn write(&mut self, stream: Stream, mut data: &[u8]) {
        let idx = stream as usize;
        while !data.is_empty() {
            match data.iter().position(|b| *b == b'\n') {
                Some(nl) => {
                    let mut line = std::mem::take(&mut self.partial[idx]);
                    line.extend_from_slice(&data[..nl]);
                    self.emit_line(stream, &line, true);
                    data = &data[nl + 1..];
                }
                None => {
                    self.partial[idx].extend_from_slice(data);
                    data = &[];
                }
            }
        }
        // Over-long partial content goes out as P records now, so memory stays bounded.
        while self.partial[idx].len() >= MAX_LINE {
            let rest = self.partial[idx].split_off(MAX_LINE);
            let chunk = std::mem::replace(&mut self.partial[idx], rest);
            self.record(stream, &chunk, false);
        }
    }

    /// The stream ended: what is left of its line is written as a full line.
    pub fn close_stream(&mut self, stream: Stream) {
        let rest = std::mem::take(&mut self.partial[stream as usize]);
        if !rest.is_empty() {
            self.emit_line(stream, &rest, true);
        }
    }

    fn emit_line(&mut self, stream: Stream, line: &[u8], full: bool) {
        let mut chunks = line.chunks(MAX_LINE).peekable();
        if line.is_empty() {
            self.record(stream, b"", full);
            return;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.record(stream, chunk, full && last);
        }
    }

    fn record(&mut self, stream: Stream, content: &[u8], full: bool) {
        let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        let mut rec = Vec::with_capacity(content.len() + 48);
        rec.extend_from_slice(ts.as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.name().as_bytes());
        rec.extend_from_slice(if full { b" F " } else { b" P " });
        rec.extend_from_slice(content);
        rec.push(b'\n');
        if self.size + rec.len() as u64 > self.max_file && self.size > 0 {
            self.rotate();
        }
        if let Some(f) = self.file.as_mut() {
            // A full disk loses log lines but must not stop the container's supervision.
            if f.write_all(&rec).is_ok() {
                self.size += rec.len() as u64;
            }
        }
    }

    fn rotate(&mut self) {
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".1");
        self.file = None;
        let _ = fs::rename(&self.path, &rotated);
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .ok();
        self.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<(String, String, String)> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let mut p = l.splitn(4, ' ');
                let ts = p.next().unwrap();
                assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
                (
                    p.next().unwrap().to_string(),
                    p.next().unwrap().to_string(),
                    p.next().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn lines_are_framed_per_stream_and_partial_lines_wait_for_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/0.log");
        let mut log = CriLog::open(&path).unwrap();
        log.write(Stream::Stdout, b"hel");
        log.write(Stream::Stderr, b"oops\n");
        log.write(Stream::Stdout, b"lo\n\nworld");
        log.close_stream(Stream::Stdout);
        let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(
            lines(&path),
            vec![
                s("stderr", "F", "oops"),
                s("stdout", "F", "hello"),
                s("stdout", "F", ""),
                s("stdout", "F", "world"),
            ]
        );
    }

    #[test]
    fn long_lines_are_split_into_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = CriLog::open(&path).unwrap();
        let mut data = vec![b'x'; MAX_LINE * 2 + 10];
        data.push(b'\n');
        log.write(Stream::Stdout, &data);
        let got: Vec<(String, usize)> = lines(&path)
            .into_iter()
            .map(|(_, tag, c)| (tag, c.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("P".to_string(), MAX_LINE),
                ("P".to_string(), MAX_LINE),
                ("F".to_string(), 10)
            ]
        );
    }

    #[test]
    fn the_file_rotates_keeping_one_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = CriLog::open(&path).unwrap();
        log.max_file = 200;
        for i in 0..20 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        let current = lines(&path);
        let previous = lines(&dir.path().join("0.log.1"));
        assert!(!current.is_empty() && !previous.is_empty());
        assert_eq!(current.last().unwrap().2, "line 19");
        assert!(fs::metadata(&path).unwrap().len() <= 200);
    }
}
