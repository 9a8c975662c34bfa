//! pageview: the seeds' visitor counter. HTTP/1.1 on 0.0.0.0:8080; each GET answers
//! "Hello, you're visitor #N.\n".
//!
//! - `pageview`: counts in memory, or in a backend with `--backend host:port` (env
//!   PAGEVIEW_BACKEND), so the count survives restarts of the web container.
//! - `pageview backend [--data FILE]` (env PAGEVIEW_DATA): the counter store, HTTP on
//!   8080: `POST /incr` adds one and answers the new count, `GET /count` answers it.
//!   With a data file the count is persisted (put it on a volume).
//!
//! Flags (env): `--port N` (PORT). Backend host names are resolved through /etc/hosts
//! and the DNS servers of /etc/resolv.conf (search domains and ndots honoured), because
//! glibc's resolver does not work in a static binary.
//! std only: built by `tug-image build-demo` with
//! `rustc -O -C target-feature=+crt-static --edition 2021`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(status: i32) -> !;
}

extern "C" fn on_terminate(_: i32) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

/// As PID 1 of a container, signals without a handler are ignored.
fn exit_on_sigterm() {
    // SAFETY: installs a handler that only calls _exit.
    unsafe {
        signal(15, on_terminate);
        signal(2, on_terminate);
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("pageview: {msg}");
    std::process::exit(2)
}

enum Counter {
    Local(AtomicU64),
    Backend(String),
    Store {
        count: Mutex<u64>,
        data: Option<PathBuf>,
    },
}

fn main() {
    exit_on_sigterm();
    let mut port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let mut backend = std::env::var("PAGEVIEW_BACKEND")
        .ok()
        .filter(|s| !s.is_empty());
    let mut data = std::env::var_os("PAGEVIEW_DATA").map(PathBuf::from);
    let mut store_mode = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "backend" => store_mode = true,
            "--port" => match args.next().and_then(|p| p.parse().ok()) {
                Some(p) => port = p,
                None => fail("--port needs a port number"),
            },
            "--backend" => match args.next() {
                Some(b) => backend = Some(b),
                None => fail("--backend needs host:port"),
            },
            "--data" => match args.next() {
                Some(d) => data = Some(PathBuf::from(d)),
                None => fail("--data needs a file path"),
            },
            other => fail(&format!(
                "unknown argument {other:?}; usage: pageview [--port N] [--backend HOST:PORT] | pageview backend [--port N] [--data FILE]"
            )),
        }
    }
    let counter = if store_mode {
        let start = data
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        println!("backend: count starts at {start}");
        Counter::Store {
            count: Mutex::new(start),
            data,
        }
    } else if let Some(b) = backend {
        println!("keeping the count in backend {b}");
        Counter::Backend(b)
    } else {
        Counter::Local(AtomicU64::new(0))
    };
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => fail(&format!("listening on 0.0.0.0:{port}: {e}")),
    };
    println!("listening on 0.0.0.0:{port}");
    let counter = Arc::new(counter);
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let counter = counter.clone();
        std::thread::spawn(move || {
            let _ = serve(conn, &counter);
        });
    }
}

fn serve(conn: TcpStream, counter: &Counter) -> std::io::Result<()> {
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
        let mut length = 0u64;
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
        std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink())?;
        println!("{peer} {request_line}");
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("/");
        let (status, body) = respond(counter, method, path);
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        out.write_all(head.as_bytes())?;
        out.write_all(body.as_bytes())?;
        out.flush()?;
        if close {
            return Ok(());
        }
    }
}

fn respond(counter: &Counter, method: &str, path: &str) -> (&'static str, String) {
    // Browsers ask for a favicon on every visit; it is not a visitor.
    if path == "/favicon.ico" {
        return ("404 Not Found", "not found\n".into());
    }
    match counter {
        Counter::Local(n) => {
            let n = n.fetch_add(1, Ordering::SeqCst) + 1;
            ("200 OK", format!("Hello, you're visitor #{n}.\n"))
        }
        Counter::Backend(addr) => match incr_in_backend(addr) {
            Ok(n) => ("200 OK", format!("Hello, you're visitor #{n}.\n")),
            Err(e) => {
                eprintln!("backend {addr}: {e}");
                (
                    "503 Service Unavailable",
                    format!("backend {addr} unavailable: {e}\n"),
                )
            }
        },
        Counter::Store { count, data } => {
            let mut c = count.lock().unwrap_or_else(|e| e.into_inner());
            match (method, path) {
                ("POST", "/incr") => {
                    *c += 1;
                    if let Some(d) = data {
                        let tmp = d.with_extension("tmp");
                        if let Err(e) = std::fs::write(&tmp, format!("{c}\n"))
                            .and_then(|_| std::fs::rename(&tmp, d))
                        {
                            eprintln!("saving the count to {}: {e}", d.display());
                        }
                    }
                    ("200 OK", format!("{c}\n"))
                }
                ("GET", "/count") | ("GET", "/") => ("200 OK", format!("{c}\n")),
                _ => ("404 Not Found", "use POST /incr or GET /count\n".into()),
            }
        }
    }
}

fn incr_in_backend(addr: &str) -> std::io::Result<u64> {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| std::io::Error::other("the backend must be host:port"))?;
    let ips = resolve(host)?;
    let mut last = std::io::Error::other(format!("{host} has no address"));
    for ip in ips {
        let sa = SocketAddr::new(ip, port);
        match TcpStream::connect_timeout(&sa, Duration::from_secs(3)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                write!(
                    s,
                    "POST /incr HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )?;
                let mut resp = String::new();
                s.read_to_string(&mut resp)?;
                let ok = resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200");
                let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").trim();
                return match (ok, body.parse()) {
                    (true, Ok(n)) => Ok(n),
                    _ => Err(std::io::Error::other(format!(
                        "unexpected answer {:?}",
                        resp.lines().next().unwrap_or("")
                    ))),
                };
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// IP literal, /etc/hosts, then DNS A queries to the resolv.conf name servers.
fn resolve(host: &str) -> std::io::Result<Vec<IpAddr>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
        for line in hosts.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut f = line.split_whitespace();
            if let Some(ip) = f.next().and_then(|i| i.parse::<IpAddr>().ok()) {
                if f.any(|n| n.eq_ignore_ascii_case(host)) {
                    return Ok(vec![ip]);
                }
            }
        }
    }
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut servers = Vec::new();
    let mut search = Vec::new();
    let mut ndots = 1;
    for line in conf.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => {
                if let Some(ip) = f.next().and_then(|i| i.parse::<IpAddr>().ok()) {
                    servers.push(ip);
                }
            }
            Some("search") | Some("domain") => search = f.map(str::to_string).collect(),
            Some("options") => {
                for o in f {
                    if let Some(n) = o.strip_prefix("ndots:").and_then(|n| n.parse().ok()) {
                        ndots = n;
                    }
                }
            }
            _ => {}
        }
    }
    let mut names = Vec::new();
    if let Some(abs) = host.strip_suffix('.') {
        names.push(abs.to_string());
    } else {
        let searched: Vec<String> = search.iter().map(|d| format!("{host}.{d}")).collect();
        if host.matches('.').count() >= ndots {
            names.push(host.to_string());
            names.extend(searched);
        } else {
            names.extend(searched);
            names.push(host.to_string());
        }
    }
    for name in &names {
        for server in &servers {
            if let Ok(ips) = query_a(*server, name) {
                if !ips.is_empty() {
                    return Ok(ips.into_iter().map(IpAddr::V4).collect());
                }
            }
        }
    }
    Err(std::io::Error::other(format!(
        "cannot resolve {host} (tried {names:?} via {servers:?})"
    )))
}

fn query_a(server: IpAddr, name: &str) -> std::io::Result<Vec<Ipv4Addr>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let sock = UdpSocket::bind(bind)?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    sock.connect(SocketAddr::new(server, 53))?;
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    sock.send(&q)?;
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf)?;
    let r = &buf[..n];
    if n < 12 || r[0..2] != id.to_be_bytes() {
        return Err(std::io::Error::other("bad DNS answer"));
    }
    let qd = u16::from_be_bytes([r[4], r[5]]) as usize;
    let an = u16::from_be_bytes([r[6], r[7]]) as usize;
    let mut i = 12;
    let skip_name = |mut i: usize| -> Option<usize> {
        loop {
            let l = *r.get(i)? as usize;
            if l == 0 {
                return Some(i + 1);
            }
            if l & 0xc0 == 0xc0 {
                return Some(i + 2);
            }
            i += l + 1;
        }
    };
    for _ in 0..qd {
        i = skip_name(i).ok_or_else(|| std::io::Error::other("bad DNS answer"))? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        i = skip_name(i).ok_or_else(|| std::io::Error::other("bad DNS answer"))?;
        let Some(rr) = r.get(i..i + 10) else { break };
        let kind = u16::from_be_bytes([rr[0], rr[1]]);
        let len = u16::from_be_bytes([rr[8], rr[9]]) as usize;
        i += 10;
        if kind == 1 && len == 4 {
            if let Some(d) = r.get(i..i + 4) {
                out.push(Ipv4Addr::new(d[0], d[1], d[2], d[3]));
            }
        }
        i += len;
    }
    Ok(out)
}
