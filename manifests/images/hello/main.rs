//! hello: the seeds' "Hello Kubernetes Beginners!" web server (HTTP/1.1 on 0.0.0.0:8080),
//! logging each request line to stdout. Also the seeds' static `site` image: with
//! `--site DIR` (or env SITE_DIR) it serves the files of DIR (index.html for "/").
//!
//! Flags (env): `--port N` (PORT, default 8080), `--site DIR` (SITE_DIR), `--once`
//! (print the greeting and exit 0: a Job-friendly mode).
//! std only: built by `tug-image build-demo` with
//! `rustc -O -C target-feature=+crt-static --edition 2021`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

const GREETING: &str = "Hello Kubernetes Beginners!\n";

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(status: i32) -> !;
}

extern "C" fn on_terminate(_: i32) {
    // SAFETY: _exit is async-signal-safe; nothing needs flushing (stdout is line-buffered).
    unsafe { _exit(0) }
}

/// As PID 1 of a container, signals without a handler are ignored: install one so
/// SIGTERM (and SIGINT) stop the server at once instead of waiting for SIGKILL.
fn exit_on_sigterm() {
    // SAFETY: installs a handler that only calls _exit.
    unsafe {
        signal(15, on_terminate);
        signal(2, on_terminate);
    }
}

fn main() {
    exit_on_sigterm();
    let mut port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let mut site: Option<PathBuf> = std::env::var_os("SITE_DIR").map(PathBuf::from);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => match args.next().and_then(|p| p.parse().ok()) {
                Some(p) => port = p,
                None => fail("--port needs a port number"),
            },
            "--site" => match args.next() {
                Some(d) => site = Some(PathBuf::from(d)),
                None => fail("--site needs a directory"),
            },
            "--once" => {
                print!("{GREETING}");
                return;
            }
            other => fail(&format!(
                "unknown argument {other:?}; usage: hello [--port N] [--site DIR] [--once]"
            )),
        }
    }
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => fail(&format!("listening on 0.0.0.0:{port}: {e}")),
    };
    match &site {
        Some(dir) => println!("serving {} on 0.0.0.0:{port}", dir.display()),
        None => println!("listening on 0.0.0.0:{port}"),
    }
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let site = site.clone();
        std::thread::spawn(move || {
            let _ = serve(conn, site.as_deref());
        });
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("hello: {msg}");
    std::process::exit(2)
}

/// Serves requests on one connection (keep-alive) until the client closes it.
fn serve(conn: TcpStream, site: Option<&Path>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let peer = conn.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let request_line = line.trim_end().to_string();
        let mut close = request_line.ends_with("HTTP/1.0");
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                } else if k == "connection" {
                    close = v == "close";
                }
            }
        }
        std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink())?;
        println!("{peer} {request_line}");
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("/");
        let (status, ctype, body) = match (method, site) {
            ("GET" | "HEAD", None) => (
                "200 OK",
                "text/plain; charset=utf-8",
                GREETING.as_bytes().to_vec(),
            ),
            ("GET" | "HEAD", Some(dir)) => static_file(dir, path),
            _ => (
                "405 Method Not Allowed",
                "text/plain",
                b"method not allowed\n".to_vec(),
            ),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        out.write_all(head.as_bytes())?;
        if method != "HEAD" {
            out.write_all(&body)?;
        }
        out.flush()?;
        if close {
            return Ok(());
        }
    }
}

fn static_file(dir: &Path, path: &str) -> (&'static str, &'static str, Vec<u8>) {
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let mut file = dir.to_path_buf();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => file.push(p),
            Component::ParentDir => {
                return ("400 Bad Request", "text/plain", b"bad path\n".to_vec())
            }
            _ => {}
        }
    }
    if file.is_dir() {
        file.push("index.html");
    }
    match std::fs::read(&file) {
        Ok(bytes) => {
            let ctype = match file.extension().and_then(|e| e.to_str()) {
                Some("html") | Some("htm") => "text/html; charset=utf-8",
                Some("css") => "text/css",
                Some("js") => "application/javascript",
                Some("png") => "image/png",
                Some("svg") => "image/svg+xml",
                Some("json") => "application/json",
                _ => "text/plain; charset=utf-8",
            };
            ("200 OK", ctype, bytes)
        }
        Err(_) => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
    }
}
