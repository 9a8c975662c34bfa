//! `GET /containerLogs/{ns}/{pod}/{container}`: CRI log files as plain text, with the
//! kubelet's options (follow across rotation, previous, tailLines, timestamps,
//! sinceSeconds/sinceTime, limitBytes).
//!
//! A CRI log line is `<RFC3339Nano> <stdout|stderr> <P|F> <message>`: `P` is a piece of
//! a longer line whose end comes in a later `F` line of the same stream. Pieces are
//! joined, so every line the client sees is whole and, with `timestamps`, carries the
//! time of its first piece.
//!
//! `follow` polls the file (the shim writes it; there is no inotify in this crate's
//! dependencies and a poll every 100 ms is cheap). When the shim rotates it (renames it
//! to `.1` and starts a new one), the rest of the old file is read, then the new one
//! from its start. Following ends when the client goes away, or when the container's
//! instance ended ([`PodBackend::is_running`] is false or the current log path changed
//! because it restarted), after a last read.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::StatusCode;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::{flag, status_response, PodBackend};

/// How often a follower looks for new bytes.
const POLL: Duration = Duration::from_millis(100);
/// How often a follower asks whether the container still runs (every Nth poll).
const LIVENESS_EVERY: u32 = 5;
/// A line's pieces are joined up to this size; beyond it the joined part is sent as is,
/// so a writer that never ends a line cannot make the agent buffer without bound.
const MAX_JOINED: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;

/// The kubelet's log options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    /// Only the last N lines (of the current file).
    pub tail_lines: Option<u64>,
    /// Only lines at or after this time (`sinceSeconds` is turned into it).
    pub since: Option<DateTime<Utc>>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

impl LogOptions {
    /// Parses the query parameters; errors name the parameter and what it accepts.
    pub fn from_query(q: &HashMap<String, String>, now: DateTime<Utc>) -> Result<Self, String> {
        let get = |k: &str| q.get(k).map(String::as_str);
        let number = |k: &str| -> Result<Option<i64>, String> {
            match get(k) {
                None | Some("") => Ok(None),
                Some(v) => v
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| format!("{k}={v:?} is not an integer")),
            }
        };
        let mut opts = LogOptions {
            follow: flag(get("follow")).map_err(|e| format!("follow: {e}"))?,
            previous: flag(get("previous")).map_err(|e| format!("previous: {e}"))?,
            timestamps: flag(get("timestamps")).map_err(|e| format!("timestamps: {e}"))?,
            ..Default::default()
        };
        if let Some(n) = number("tailLines")? {
            // Kubernetes: a negative tailLines means "everything".
            if n >= 0 {
                opts.tail_lines = Some(n as u64);
            }
        }
        if let Some(n) = number("limitBytes")? {
            if n < 1 {
                return Err(format!("limitBytes={n}: must be greater than 0"));
            }
            opts.limit_bytes = Some(n as u64);
        }
        let since_seconds = number("sinceSeconds")?;
        let since_time = get("sinceTime").filter(|s| !s.is_empty());
        match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err("sinceSeconds and sinceTime cannot both be set; use one".into())
            }
            (Some(s), None) => {
                if s < 1 {
                    return Err(format!("sinceSeconds={s}: must be greater than 0"));
                }
                opts.since = Some(now - chrono::Duration::seconds(s));
            }
            (None, Some(t)) => {
                let t = DateTime::parse_from_rfc3339(t).map_err(|e| {
                    format!(
                        "sinceTime={t:?} is not an RFC 3339 time ({e}); e.g. 2024-01-02T15:04:05Z"
                    )
                })?;
                opts.since = Some(t.with_timezone(&Utc));
            }
            (None, None) => {}
        }
        Ok(opts)
    }
}

/// One parsed CRI log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriLine<'a> {
    pub timestamp: &'a str,
    pub stream: Stream,
    /// `false` for a `P` (partial) piece.
    pub full: bool,
    pub message: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Parses one CRI log line (without its newline); `None` if it is not one.
pub fn parse_cri_line(line: &[u8]) -> Option<CriLine<'_>> {
    let mut rest = line;
    let mut field = || -> Option<&[u8]> {
        let end = rest.iter().position(|b| *b == b' ');
        let (f, r) = match end {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = r;
        Some(f)
    };
    let timestamp = std::str::from_utf8(field()?).ok()?;
    let stream = match field()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    // Tags are `:`-separated; the first one is P or F.
    let tags = field()?;
    let full = match tags.split(|b| *b == b':').next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    if timestamp.is_empty() {
        return None;
    }
    Some(CriLine {
        timestamp,
        stream,
        full,
        message: rest,
    })
}

/// A whole line for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The timestamp of its first piece, as written.
    pub timestamp: String,
    /// The text, with its newline (none when cut at [`MAX_JOINED`] or at the end of a
    /// log that ended mid-line).
    pub text: Vec<u8>,
}

/// Joins `P` pieces per stream.
#[derive(Debug, Default)]
pub struct Joiner {
    pending: [Option<LogLine>; 2],
}

impl Joiner {
    /// Feeds one raw file line (without `\n`); returns a whole line when one is complete.
    pub fn push(&mut self, raw: &[u8]) -> Option<LogLine> {
        let Some(cri) = parse_cri_line(raw) else {
            tracing::debug!(
                "skipping a log line that is not in the CRI format: {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(80)])
            );
            return None;
        };
        let slot = &mut self.pending[cri.stream as usize];
        let line = slot.get_or_insert_with(|| LogLine {
            timestamp: cri.timestamp.to_string(),
            text: Vec::new(),
        });
        line.text.extend_from_slice(cri.message);
        if cri.full {
            line.text.push(b'\n');
            return slot.take();
        }
        if line.text.len() >= MAX_JOINED {
            return slot.take();
        }
        None
    }

    /// The unfinished lines (a log that ended mid-line), oldest first.
    pub fn drain(&mut self) -> Vec<LogLine> {
        let mut out: Vec<LogLine> = self.pending.iter_mut().filter_map(Option::take).collect();
        out.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
        out
    }
}

/// Turns whole lines into output bytes: the `since` filter, the tail window, timestamps
/// and the byte limit.
struct Emitter {
    opts: LogOptions,
    /// While reading the existing file for `tailLines`: the last lines seen.
    tail: Option<VecDeque<LogLine>>,
    out: Vec<u8>,
    written: u64,
}

impl Emitter {
    fn new(opts: LogOptions) -> Self {
        let tail = opts
            .tail_lines
            .map(|n| VecDeque::with_capacity(n.min(10_000) as usize));
        Emitter {
            opts,
            tail,
            out: Vec::new(),
            written: 0,
        }
    }

    fn limit_reached(&self) -> bool {
        self.opts.limit_bytes.is_some_and(|l| self.written >= l)
    }

    fn line(&mut self, line: LogLine) {
        if let Some(since) = self.opts.since {
            match DateTime::parse_from_rfc3339(&line.timestamp) {
                Ok(t) if t.with_timezone(&Utc) < since => return,
                _ => {}
            }
        }
        if let Some(tail) = &mut self.tail {
            let n = self.opts.tail_lines.unwrap_or(0) as usize;
            if n == 0 {
                return;
            }
            if tail.len() == n {
                tail.pop_front();
            }
            tail.push_back(line);
            return;
        }
        self.write(&line);
    }

    /// The existing file has been read: from now on lines go straight out.
    fn end_tail(&mut self) {
        if let Some(lines) = self.tail.take() {
            for l in lines {
                self.write(&l);
            }
        }
    }

    fn write(&mut self, line: &LogLine) {
        if self.limit_reached() {
            return;
        }
        let start = self.out.len();
        if self.opts.timestamps {
            self.out.extend_from_slice(line.timestamp.as_bytes());
            self.out.push(b' ');
        }
        self.out.extend_from_slice(&line.text);
        let mut n = (self.out.len() - start) as u64;
        if let Some(limit) = self.opts.limit_bytes {
            let left = limit - self.written;
            if n > left {
                self.out.truncate(start + left as usize);
                n = left;
            }
        }
        self.written += n;
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// Reads one file: raw lines, keeping a trailing unfinished line for the next read.
struct FileReader {
    file: tokio::fs::File,
    inode: u64,
    pos: u64,
    carry: Vec<u8>,
}

impl FileReader {
    async fn open(path: &Path) -> std::io::Result<Option<FileReader>> {
        match tokio::fs::File::open(path).await {
            Ok(file) => {
                let inode = file.metadata().await?.ino();
                Ok(Some(FileReader {
                    file,
                    inode,
                    pos: 0,
                    carry: Vec::new(),
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads to the current end; feeds every whole raw line. Returns bytes read.
    async fn read_available(
        &mut self,
        joiner: &mut Joiner,
        emit: &mut Emitter,
    ) -> std::io::Result<u64> {
        let mut total = 0u64;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = self.file.read(&mut buf).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            self.pos += n as u64;
            let mut chunk = &buf[..n];
            while let Some(i) = chunk.iter().position(|b| *b == b'\n') {
                let raw: &[u8] = if self.carry.is_empty() {
                    &chunk[..i]
                } else {
                    self.carry.extend_from_slice(&chunk[..i]);
                    &self.carry
                };
                if let Some(line) = joiner.push(raw) {
                    emit.line(line);
                }
                self.carry.clear();
                chunk = &chunk[i + 1..];
            }
            self.carry.extend_from_slice(chunk);
            if emit.limit_reached() {
                return Ok(total);
            }
        }
    }
}

/// What the stream task needs to know about the container while following.
struct Liveness {
    backend: Arc<dyn PodBackend>,
    ns: String,
    pod: String,
    container: String,
    path: PathBuf,
}

impl Liveness {
    fn ended(&self) -> bool {
        !self
            .backend
            .is_running(&self.ns, &self.pod, &self.container)
            || self
                .backend
                .log_path(&self.ns, &self.pod, &self.container, false)
                .map(|p| p != self.path)
                .unwrap_or(true)
    }
}

/// Streams `path` into `tx` per `opts`. Returns when done, when the client left, or on a
/// read error (logged: the body just ends, as the kubelet's does).
async fn stream(
    path: PathBuf,
    opts: LogOptions,
    liveness: Option<Liveness>,
    tx: mpsc::Sender<Bytes>,
) {
    if let Err(e) = stream_inner(&path, opts, liveness, &tx).await {
        tracing::warn!("reading log {}: {e}", path.display());
    }
}

async fn stream_inner(
    path: &Path,
    opts: LogOptions,
    liveness: Option<Liveness>,
    tx: &mpsc::Sender<Bytes>,
) -> std::io::Result<()> {
    let follow = opts.follow && liveness.is_some();
    let mut emit = Emitter::new(opts);
    let mut joiner = Joiner::default();
    let send = |emit: &mut Emitter| {
        let out = emit.take();
        let tx = tx.clone();
        async move {
            if out.is_empty() {
                return true;
            }
            tx.send(Bytes::from(out)).await.is_ok()
        }
    };

    let mut reader = FileReader::open(path).await?;
    if let Some(r) = &mut reader {
        r.read_available(&mut joiner, &mut emit).await?;
    }
    emit.end_tail();
    if !send(&mut emit).await || emit.limit_reached() {
        return Ok(());
    }
    let Some(liveness) = liveness.filter(|_| follow) else {
        for line in joiner.drain() {
            emit.line(line);
        }
        send(&mut emit).await;
        return Ok(());
    };

    let mut polls = 0u32;
    loop {
        tokio::select! {
            _ = tx.closed() => return Ok(()),
            _ = tokio::time::sleep(POLL) => {}
        }
        polls = polls.wrapping_add(1);
        // The liveness answer is taken before the read so that bytes written just before
        // the container ended are still read below.
        let ended = polls % LIVENESS_EVERY == 0 && liveness.ended();
        let mut got = 0;
        match &mut reader {
            None => reader = FileReader::open(path).await?,
            Some(r) => {
                got = r.read_available(&mut joiner, &mut emit).await?;
                if got == 0 {
                    // Rotated (renamed away, a new file in its place) or truncated?
                    let replaced = match tokio::fs::metadata(path).await {
                        Ok(m) => m.ino() != r.inode || m.len() < r.pos,
                        Err(_) => false,
                    };
                    if replaced {
                        // The old file may have grown between our read and the rename.
                        r.read_available(&mut joiner, &mut emit).await?;
                        // A fresh handle reads from the start: right for a new file and
                        // for one truncated in place.
                        if let Some(mut new) = FileReader::open(path).await? {
                            got = new.read_available(&mut joiner, &mut emit).await?;
                            reader = Some(new);
                        }
                    }
                }
            }
        }
        if !send(&mut emit).await || emit.limit_reached() {
            return Ok(());
        }
        if ended && got == 0 {
            for line in joiner.drain() {
                emit.line(line);
            }
            send(&mut emit).await;
            return Ok(());
        }
    }
}

/// The handler: asks the backend for the file, then streams it.
pub(crate) async fn handle(
    State(backend): State<Arc<dyn PodBackend>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let q: HashMap<String, String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let opts = match LogOptions::from_query(&q, Utc::now()) {
        Ok(o) => o,
        Err(e) => return status_response(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    let path = match backend.log_path(&ns, &pod, &container, opts.previous) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // A previous instance has ended: there is nothing to follow.
    let liveness = (opts.follow && !opts.previous).then(|| Liveness {
        backend: backend.clone(),
        ns,
        pod,
        container,
        path: path.clone(),
    });
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(stream(path, opts, liveness, tx));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines_parse() {
        /// (line, (timestamp, stream, full, message) or not a CRI line)
        type Case<'a> = (&'a str, Option<(&'a str, Stream, bool, &'a str)>);
        let cases: &[Case] = &[
            (
                "2024-01-02T03:04:05.123456789Z stdout F hello world",
                Some((
                    "2024-01-02T03:04:05.123456789Z",
                    Stream::Stdout,
                    true,
                    "hello world",
                )),
            ),
            (
                "2024-01-02T03:04:05Z stderr P part",
                Some(("2024-01-02T03:04:05Z", Stream::Stderr, false, "part")),
            ),
            (
                "2024-01-02T03:04:05Z stdout F",
                Some(("2024-01-02T03:04:05Z", Stream::Stdout, true, "")),
            ),
            (
                "2024-01-02T03:04:05Z stdout F:x  two spaces",
                Some(("2024-01-02T03:04:05Z", Stream::Stdout, true, " two spaces")),
            ),
            ("2024-01-02T03:04:05Z stdin F x", None),
            ("2024-01-02T03:04:05Z stdout X x", None),
            ("garbage", None),
            ("", None),
        ];
        for (line, want) in cases {
            let got = parse_cri_line(line.as_bytes()).map(|c| {
                (
                    c.timestamp,
                    c.stream,
                    c.full,
                    std::str::from_utf8(c.message).unwrap(),
                )
            });
            assert_eq!(got, *want, "{line:?}");
        }
    }

    #[test]
    fn partial_pieces_are_joined_per_stream_with_the_first_timestamp() {
        let mut j = Joiner::default();
        assert_eq!(j.push(b"t1 stdout P hel"), None);
        assert_eq!(
            j.push(b"t2 stderr F err"),
            Some(LogLine {
                timestamp: "t2".into(),
                text: b"err\n".to_vec()
            })
        );
        assert_eq!(j.push(b"t3 stdout P lo "), None);
        assert_eq!(
            j.push(b"t4 stdout F world"),
            Some(LogLine {
                timestamp: "t1".into(),
                text: b"hello world\n".to_vec()
            })
        );
        assert_eq!(j.push(b"t5 stdout P unfinished"), None);
        assert_eq!(
            j.drain(),
            vec![LogLine {
                timestamp: "t5".into(),
                text: b"unfinished".to_vec()
            }]
        );
    }

    #[test]
    fn query_options_parse_and_bad_values_name_the_parameter() {
        let now: DateTime<Utc> = "2024-01-02T00:10:00Z".parse().unwrap();
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let o = LogOptions::from_query(
            &q(&[
                ("follow", "true"),
                ("tailLines", "5"),
                ("timestamps", "1"),
                ("sinceSeconds", "60"),
                ("limitBytes", "100"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(
            o,
            LogOptions {
                follow: true,
                previous: false,
                timestamps: true,
                tail_lines: Some(5),
                since: Some("2024-01-02T00:09:00Z".parse().unwrap()),
                limit_bytes: Some(100),
            }
        );
        let o =
            LogOptions::from_query(&q(&[("sinceTime", "2024-01-01T00:00:00+01:00")]), now).unwrap();
        assert_eq!(o.since, Some("2023-12-31T23:00:00Z".parse().unwrap()));
        assert_eq!(
            LogOptions::from_query(&q(&[("tailLines", "-1")]), now)
                .unwrap()
                .tail_lines,
            None
        );
        for (pairs, want) in [
            (vec![("tailLines", "x")], "tailLines"),
            (vec![("follow", "maybe")], "follow"),
            (vec![("limitBytes", "0")], "limitBytes"),
            (vec![("sinceSeconds", "0")], "sinceSeconds"),
            (vec![("sinceTime", "yesterday")], "sinceTime"),
            (
                vec![("sinceSeconds", "1"), ("sinceTime", "2024-01-01T00:00:00Z")],
                "cannot both",
            ),
        ] {
            let err = LogOptions::from_query(&q(&pairs), now).unwrap_err();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn emitter_applies_since_tail_timestamps_and_limit() {
        let line = |t: &str, s: &str| LogLine {
            timestamp: t.into(),
            text: format!("{s}\n").into_bytes(),
        };
        let lines = [
            line("2024-01-01T00:00:01Z", "a"),
            line("2024-01-01T00:00:02Z", "b"),
            line("2024-01-01T00:00:03Z", "c"),
        ];
        let run = |opts: LogOptions| {
            let mut e = Emitter::new(opts);
            for l in &lines {
                e.line(l.clone());
            }
            e.end_tail();
            String::from_utf8(e.take()).unwrap()
        };
        assert_eq!(run(LogOptions::default()), "a\nb\nc\n");
        let tail = |n| LogOptions {
            tail_lines: Some(n),
            ..Default::default()
        };
        assert_eq!(run(tail(2)), "b\nc\n");
        assert_eq!(run(tail(0)), "");
        assert_eq!(run(tail(10)), "a\nb\nc\n");
        assert_eq!(
            run(LogOptions {
                since: Some("2024-01-01T00:00:02Z".parse().unwrap()),
                ..Default::default()
            }),
            "b\nc\n"
        );
        assert_eq!(
            run(LogOptions {
                timestamps: true,
                tail_lines: Some(1),
                ..Default::default()
            }),
            "2024-01-01T00:00:03Z c\n"
        );
        assert_eq!(
            run(LogOptions {
                limit_bytes: Some(3),
                ..Default::default()
            }),
            "a\nb"
        );
    }
}
