//! A tug control plane of N replicas as separate processes on loopback: the calling
//! binary re-executed as `<exe> replica --id .. --peers ..` (see [`ReplicaArgs`]).
//!
//! Every replica is a child started by [`ControlPlane::start`] with a pipe as its stdin.
//! A replica stops when that pipe closes, on SIGTERM or on Ctrl-C; so dropping the
//! [`ControlPlane`] (or the parent dying in any way) stops the replicas, and the children
//! are also SIGKILLed by PID on drop (`kill_on_drop`). The temp dir goes with it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, ChildStdin, Command};
use tug_pki::PkiPaths;

use crate::ports::free_port;

/// The hidden subcommand of the re-executed binary that runs one replica.
pub const REPLICA_SUBCOMMAND: &str = "replica";

/// How long [`ControlPlane::start`] waits for every replica's `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`ControlPlane::stop`] lets a replica shut down before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How much of a failed replica's log goes into the error.
const LOG_TAIL_BYTES: usize = 4000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a control plane needs at least one replica")]
    NoReplicas,
    #[error("creating the control plane's temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("picking a free loopback port: {0}")]
    Port(#[source] std::io::Error),
    #[error("creating the cluster PKI in {dir}: {source}")]
    Pki {
        dir: PathBuf,
        #[source]
        source: tug_pki::cluster::Error,
    },
    #[error("creating replica {id}'s log file {path}: {source}")]
    Log {
        id: u64,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting replica {id} as `{exe} {REPLICA_SUBCOMMAND}`: {source}")]
    Spawn {
        id: u64,
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("replica {id} exited before becoming ready ({status}); its log:\n{log}")]
    Exited {
        id: u64,
        status: String,
        log: String,
    },
    #[error(
        "replica {id} at {url} was not ready after {secs} s (last answer: {last}); its log:\n{log}"
    )]
    NotReady {
        id: u64,
        url: String,
        secs: u64,
        last: String,
        log: String,
    },
    #[error("building a client for replica {id} at {url} from {kubeconfig}: {reason}")]
    Client {
        id: u64,
        url: String,
        kubeconfig: PathBuf,
        reason: String,
    },
    #[error("--peers entry {spec:?}: {reason}; expected id=host:port, e.g. 1=127.0.0.1:2380")]
    BadPeer { spec: String, reason: String },
    #[error("--peers has no entry for this replica's --id {id}")]
    SelfNotInPeers { id: u64 },
    #[error("replica {id}: {message}")]
    Replica { id: u64, message: String },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no VmRSS line; is process {pid} a zombie?")]
    NoRss { pid: u32, path: PathBuf },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Flags of the hidden `replica` subcommand: one apiserver replica with its store.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct ReplicaArgs {
    /// This replica's raft id.
    #[arg(long)]
    pub id: u64,
    /// Every replica's peer address, `id=host:port`, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub peers: Vec<String>,
    /// Where the store keeps its raft log and state.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The PKI directory written by `tug_pki::init_cluster_pki`.
    #[arg(long)]
    pub pki_dir: PathBuf,
    /// The API address.
    #[arg(long)]
    pub listen: SocketAddr,
}

impl ReplicaArgs {
    /// The command line (after the subcommand) that parses back into `self`.
    pub fn to_args(&self) -> Vec<OsString> {
        vec![
            "--id".into(),
            self.id.to_string().into(),
            "--peers".into(),
            self.peers.join(",").into(),
            "--data-dir".into(),
            self.data_dir.clone().into(),
            "--pki-dir".into(),
            self.pki_dir.clone().into(),
            "--listen".into(),
            self.listen.to_string().into(),
        ]
    }

    /// `--peers` as raft id -> peer address.
    pub fn peer_map(&self) -> Result<BTreeMap<u64, String>> {
        let mut peers = BTreeMap::new();
        for spec in &self.peers {
            let bad = |reason: &str| Error::BadPeer {
                spec: spec.clone(),
                reason: reason.to_string(),
            };
            let (id, addr) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
            let id: u64 = id
                .trim()
                .parse()
                .map_err(|_| bad("the id is not a number"))?;
            if addr.trim().is_empty() {
                return Err(bad("the address is empty"));
            }
            if peers.insert(id, addr.trim().to_string()).is_some() {
                return Err(bad("this id appears twice"));
            }
        }
        if !peers.contains_key(&self.id) {
            return Err(Error::SelfNotInPeers { id: self.id });
        }
        Ok(peers)
    }
}

/// Runs one replica until its stdin closes, SIGTERM or Ctrl-C; then shuts it down.
/// This is the body of the hidden `replica` subcommand.
pub async fn run_replica(args: ReplicaArgs) -> Result<()> {
    let id = args.id;
    let failed = |e: anyhow::Error| Error::Replica {
        id,
        message: format!("{e:#}"),
    };
    let peers = args.peer_map()?;
    let opts = tug_apiserver::Options::from_pki_dir(
        &args.pki_dir,
        id,
        peers,
        args.data_dir.clone(),
        args.listen,
    )
    .map_err(failed)?;
    let server = tug_apiserver::start(opts).await.map_err(failed)?;
    tracing::info!(id, url = %server.url, "replica serving");
    wait_for_stop().await;
    server.shutdown().await;
    Ok(())
}

/// Resolves when the parent closes our stdin (it stopped or died), or on SIGTERM/Ctrl-C.
async fn wait_for_stop() {
    // tokio's stdin cannot be cancelled and would hold up runtime shutdown; a plain
    // thread does not (the process exits when main returns).
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = eof_tx.send(());
    });
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = eof_rx => {}
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// One replica process.
pub struct Replica {
    pub id: u64,
    /// `https://127.0.0.1:port` of its API.
    pub url: String,
    pub pid: u32,
    /// Its stderr (tracing output at `RUST_LOG`, default warn).
    pub log: PathBuf,
    child: Child,
    /// Closing this pipe asks the replica to stop.
    stdin: Option<ChildStdin>,
}

/// A running control plane. Dropping it kills its replicas (by PID) and removes its
/// temp dir; [`ControlPlane::stop`] does it gracefully.
pub struct ControlPlane {
    replicas: Vec<Replica>,
    kubeconfig: PathBuf,
    // Declared last so it is removed after the replicas are killed.
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts `n` replicas of `exe REPLICA_SUBCOMMAND ...` on loopback with a fresh PKI
    /// and waits until every one answers `/readyz`.
    pub async fn start(exe: &Path, n: usize) -> Result<ControlPlane> {
        if n == 0 {
            return Err(Error::NoReplicas);
        }
        let dir = tempfile::Builder::new()
            .prefix("tugcp-")
            .tempdir()
            .map_err(Error::TempDir)?;
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let ids: Vec<u64> = (1..=n as u64).collect();
        let mut api = Vec::new();
        let mut peers = Vec::new();
        for id in &ids {
            api.push(SocketAddr::new(loopback, free_port().map_err(Error::Port)?));
            peers.push(format!(
                "{id}={}",
                SocketAddr::new(loopback, free_port().map_err(Error::Port)?)
            ));
        }
        let pki_dir = dir.path().join("pki");
        let replicas: Vec<(String, Vec<IpAddr>)> = ids
            .iter()
            .map(|id| (tug_apiserver::replica_name(*id), vec![loopback]))
            .collect();
        tug_pki::init_cluster_pki(
            &pki_dir,
            "tug-bench",
            &format!("https://{}", api[0]),
            (&[], &[loopback]),
            &replicas,
        )
        .map_err(|source| Error::Pki {
            dir: pki_dir.clone(),
            source,
        })?;

        let mut cp = ControlPlane {
            replicas: Vec::new(),
            kubeconfig: PkiPaths::new(&pki_dir).admin_kubeconfig(),
            dir,
        };
        for (id, listen) in ids.iter().zip(&api) {
            let args = ReplicaArgs {
                id: *id,
                peers: peers.clone(),
                data_dir: cp.dir.path().join(format!("data-{id}")),
                pki_dir: pki_dir.clone(),
                listen: *listen,
            };
            let replica = spawn(exe, &args, cp.dir.path())?;
            cp.replicas.push(replica);
        }
        cp.wait_ready(READY_TIMEOUT).await?;
        Ok(cp)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        for i in 0..self.replicas.len() {
            let client = self.client(i)?;
            loop {
                let r = &mut self.replicas[i];
                if let Ok(Some(status)) = r.child.try_wait() {
                    return Err(Error::Exited {
                        id: r.id,
                        status: status.to_string(),
                        log: log_tail(&r.log),
                    });
                }
                let last = match client.raw_get("/readyz", Some("text/plain")).await {
                    Ok(_) => break,
                    Err(e) => e.to_string(),
                };
                if start.elapsed() > timeout {
                    return Err(Error::NotReady {
                        id: r.id,
                        url: r.url.clone(),
                        secs: timeout.as_secs(),
                        last,
                        log: log_tail(&r.log),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// Every replica's API URL, in id order.
    pub fn urls(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.url.clone()).collect()
    }

    /// Every replica's PID, in id order.
    pub fn pids(&self) -> Vec<u32> {
        self.replicas.iter().map(|r| r.pid).collect()
    }

    /// The admin kubeconfig (its server is replica 1).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The control plane's temp dir (PKI, data dirs, replica logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client for replica `index` (0-based) with the admin client certificate. Each
    /// `Client` is one connection pool: with HTTP/2 its requests share one connection.
    pub fn client(&self, index: usize) -> Result<tug_client::Client> {
        let r = &self.replicas[index];
        let failed = |reason: String| Error::Client {
            id: r.id,
            url: r.url.clone(),
            kubeconfig: self.kubeconfig.clone(),
            reason,
        };
        let mut config = tug_client::Config::from_kubeconfig_file(&self.kubeconfig)
            .map_err(|e| failed(e.to_string()))?;
        config.server = r.url.parse().map_err(|e| failed(format!("{e}")))?;
        tug_client::Client::new(config).map_err(|e| failed(e.to_string()))
    }

    /// Asks every replica to stop (closes its stdin), waits up to 5 s each, SIGKILLs the
    /// ones still running, then removes the temp dir.
    pub async fn stop(mut self) {
        for r in &mut self.replicas {
            r.stdin.take();
        }
        for r in &mut self.replicas {
            if tokio::time::timeout(STOP_GRACE, r.child.wait())
                .await
                .is_err()
            {
                let _ = r.child.kill().await;
            }
        }
    }
}

fn spawn(exe: &Path, args: &ReplicaArgs, dir: &Path) -> Result<Replica> {
    let log = dir.join(format!("replica-{}.log", args.id));
    let log_file = std::fs::File::create(&log).map_err(|source| Error::Log {
        id: args.id,
        path: log.clone(),
        source,
    })?;
    let mut child = Command::new(exe)
        .arg(REPLICA_SUBCOMMAND)
        .args(args.to_args())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Spawn {
            id: args.id,
            exe: exe.to_path_buf(),
            source,
        })?;
    let pid = child.id().unwrap_or_default();
    let stdin = child.stdin.take();
    Ok(Replica {
        id: args.id,
        url: format!("https://{}", args.listen),
        pid,
        log,
        child,
        stdin,
    })
}

/// The end of a replica's log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(LOG_TAIL_BYTES);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// Resident set size of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let status = std::fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    parse_vm_rss_kib(&status).ok_or(Error::NoRss { pid, path })
}

/// The `VmRSS:   1234 kB` line of a `/proc/<pid>/status` text, in KiB.
fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        replica: ReplicaArgs,
    }

    fn args(id: u64, peers: &[&str]) -> ReplicaArgs {
        ReplicaArgs {
            id,
            peers: peers.iter().map(|s| s.to_string()).collect(),
            data_dir: "/tmp/d 1".into(),
            pki_dir: "/tmp/pki".into(),
            listen: "127.0.0.1:6443".parse().unwrap(),
        }
    }

    #[test]
    fn replica_args_round_trip_through_the_command_line() {
        let want = args(2, &["1=127.0.0.1:1", "2=127.0.0.1:2", "3=127.0.0.1:3"]);
        let mut argv: Vec<OsString> = vec!["bench".into()];
        argv.extend(want.to_args());
        let got = Cli::try_parse_from(argv).unwrap().replica;
        assert_eq!(got, want);
    }

    #[test]
    fn peer_map_accepts_well_formed_peers_and_names_the_bad_entry() {
        let cases: &[(&str, u64, &[&str], Option<&str>)] = &[
            ("three peers", 1, &["1=a:1", "2=b:2", "3=c:3"], None),
            ("one peer", 1, &["1=127.0.0.1:2380"], None),
            ("no equals sign", 1, &["1=a:1", "b:2"], Some("\"b:2\"")),
            (
                "id not a number",
                1,
                &["1=a:1", "x=b:2"],
                Some("not a number"),
            ),
            ("empty address", 1, &["1="], Some("address is empty")),
            ("id twice", 1, &["1=a:1", "1=b:2"], Some("twice")),
            ("self missing", 4, &["1=a:1"], Some("--id 4")),
        ];
        for (name, id, peers, want_err) in cases {
            let got = args(*id, peers).peer_map();
            match (got, want_err) {
                (Ok(map), None) => assert_eq!(map.len(), peers.len(), "{name}"),
                (Err(e), Some(want)) => {
                    assert!(e.to_string().contains(want), "{name}: {e}")
                }
                (got, want) => panic!("{name}: got {got:?}, want error {want:?}"),
            }
        }
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let cases = [
            (
                "Name:\tx\nVmRSS:\t   12345 kB\nVmSwap:\t0 kB\n",
                Some(12345),
            ),
            ("VmRSS: 7\n", Some(7)),
            ("VmRSS: 7 MB\n", None),
            ("Name:\tzombie\n", None),
            ("VmRSS: lots kB\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_vm_rss_kib(text), want, "{text:?}");
        }
    }

    #[test]
    fn rss_of_this_process_is_positive() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn log_tail_keeps_the_end_on_a_char_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let text = format!("{}{}", "é".repeat(LOG_TAIL_BYTES), "end");
        std::fs::write(&path, &text).unwrap();
        let tail = log_tail(&path);
        assert!(tail.ends_with("end") && tail.len() <= LOG_TAIL_BYTES);
        assert_eq!(log_tail(&dir.path().join("missing")), "");
    }
}
