//! The shim process: one per container, like conmon or containerd-shim. It runs
//! libcontainer (which forks, changes the caller's cwd, dumpable flag and oom_score_adj,
//! and must not run in a multi-threaded process), stays the container's parent, copies
//! its stdout/stderr into the CRI log, reaps it, records the exit code and OOM kill in
//! `exit.json`, removes libcontainer's state and the container cgroup, and exits.
//!
//! It is hosted by another binary as a subcommand (`tug-agent shim ...`, `bench shim
//! ...`, this crate's `tug-shim`): that binary calls [`main`] (or [`run_if_invoked`])
//! first thing in `main`, before any thread exists.
//!
//! Modes:
//! - `run <container-dir>`: create + start the container of the bundle in `<dir>`, then
//!   supervise it. The shim calls `setsid` and outlives the agent; it reports "ok <pid>"
//!   or "error <message>" as one line on its stdout, then detaches stdout.
//! - `exec <container-dir> <request-json>`: start a process in the running container
//!   with libcontainer's tenant builder (it joins the init's namespaces, cgroup, root,
//!   capabilities and user from the container's own spec — the same code path as the
//!   container itself, rather than a second, hand-written setns path), wait for it and
//!   exit with its exit code (126 if it could not be started; the reason is on stderr).
//!   With a tty, libcontainer creates the pty inside the container and sends its master
//!   to the runtime's console socket.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::cri_log::{CriLog, Stream};
use crate::records::{self, ExitRecord, ShimConfig, StateRecord};

/// Exit code of `exec` when the process could not be started (as `docker exec`).
pub const EXEC_FAILED: i32 = 126;

/// What `exec` mode runs (JSON in its second argument).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExecRequest {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// With a tty: the unix socket the pty master is sent to.
    pub console_socket: Option<PathBuf>,
}

/// Runs the shim with `args` = the arguments after the hosting binary's shim
/// subcommand word (`run <dir>` or `exec <dir> <json>`). Returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let mut args = args.into_iter();
    let mode = args.next().unwrap_or_default();
    let dir = args.next().map(PathBuf::from);
    match (mode.to_str(), dir) {
        (Some("run"), Some(dir)) => run(&dir),
        (Some("exec"), Some(dir)) => {
            let req = args
                .next()
                .and_then(|a| a.into_string().ok())
                .and_then(|a| serde_json::from_str::<ExecRequest>(&a).ok());
            match req {
                Some(req) => exec(&dir, req),
                None => {
                    eprintln!("tug shim exec: the third argument must be the exec request JSON");
                    2
                }
            }
        }
        _ => {
            eprintln!("usage: shim run <container-dir> | shim exec <container-dir> <request-json>");
            2
        }
    }
}

/// If this process was started as `<binary> <subcommand> ...`, runs the shim and exits;
/// otherwise returns. Call it first thing in `main`.
pub fn run_if_invoked(subcommand: &str) {
    let mut argv = std::env::args_os();
    if argv.nth(1).as_deref() == Some(std::ffi::OsStr::new(subcommand)) {
        std::process::exit(main(argv.collect()));
    }
}

fn run(dir: &Path) -> i32 {
    // The sync channel to the runtime is our stdout; everything else goes to shim.log.
    let mut sync = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(_) => return 1,
    };
    if let Ok(log) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(records::SHIM_LOG))
    {
        let _ = nix::unistd::dup2(log.as_raw_fd(), 2);
    }
    // Its own session: no terminal signal or agent process-group kill reaches it.
    let _ = nix::unistd::setsid();
    let _ = nix::unistd::chdir("/");

    let started = match start(dir) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("start failed: {msg}");
            let _ = writeln!(sync, "error {}", msg.replace('\n', " "));
            return 1;
        }
    };
    let _ = writeln!(sync, "ok {}", started.pid);
    drop(sync);
    if let Ok(null) = File::open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }
    supervise(dir, started)
}

struct Started {
    cfg: ShimConfig,
    pid: Pid,
    started_at_ns: u128,
    stdout: File,
    stderr: File,
    signals: SignalFd,
    ctl: File,
    /// Held open (never read) until the shim exits: the runtime sees EOF then.
    _alive: File,
}

fn start(dir: &Path) -> Result<Started, String> {
    let cfg: ShimConfig = records::read_json(dir, records::SHIM_CONFIG)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} is missing", dir.join(records::SHIM_CONFIG).display()))?;
    let open_fifo = |name: &str, flags: i32| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags)
            .open(dir.join(name))
            .map_err(|e| format!("opening {}: {e}", dir.join(name).display()))
    };
    let alive = open_fifo(records::EXIT_FIFO, 0)?;
    let ctl = open_fifo(records::CTL_FIFO, libc::O_NONBLOCK)?;
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;

    let lc_root = dir.join(records::LIBCONTAINER_ROOT);
    let mut container = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_root_path(&lc_root)
        .map_err(|e| e.to_string())?
        .with_stdout(out_w)
        .with_stderr(err_w)
        .as_init(dir)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| format!("creating the container: {}", error_chain(&e)))?;
    // The builder dropped its copies of the pipes' write ends: only the container holds
    // them now, so EOF means every process of it is gone.

    // SIGCHLD goes to a signalfd. Blocked only now: the container's init was cloned
    // above and must not inherit a blocked SIGCHLD.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    let signals = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC))
        .map_err(|e| format!("signalfd: {e}"))?;

    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(format!("starting the container: {}", error_chain(&e)));
    }
    let pid = container
        .pid()
        .ok_or_else(|| "libcontainer reported no init pid".to_string())?;
    let started_at_ns = records::now_ns();
    records::write_json(
        dir,
        records::STATE,
        &StateRecord {
            pid: pid.as_raw(),
            shim_pid: std::process::id() as i32,
            started_at_ns,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(Started {
        cfg,
        pid,
        started_at_ns,
        stdout: File::from(out_r),
        stderr: File::from(err_r),
        signals,
        ctl,
        _alive: alive,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

fn supervise(dir: &Path, mut s: Started) -> i32 {
    let mut log = match CriLog::open(&s.cfg.log_path) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("opening log {}: {e}", s.cfg.log_path.display());
            None
        }
    };
    let mut open = [true, true];
    let mut status: Option<WaitStatus> = reap(s.pid);
    let mut buf = vec![0u8; 64 * 1024];
    let mut ctl_buf = Vec::new();
    loop {
        if status.is_some() && !open[0] && !open[1] {
            break;
        }
        let mut fds = vec![
            PollFd::new(s.signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(s.ctl.as_fd(), PollFlags::POLLIN),
        ];
        if open[0] {
            fds.push(PollFd::new(s.stdout.as_fd(), PollFlags::POLLIN));
        }
        if open[1] {
            fds.push(PollFd::new(s.stderr.as_fd(), PollFlags::POLLIN));
        }
        // After the init is reaped every process of its pid namespace is gone, so the
        // pipes close at once; the timeout only guards against a leaked writer.
        let timeout = if status.is_some() {
            PollTimeout::from(2000u16)
        } else {
            PollTimeout::NONE
        };
        let n = match nix::poll::poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("poll: {e}");
                break;
            }
        };
        if n == 0 {
            break;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            while let Ok(Some(_)) = s.signals.read_signal() {}
            if status.is_none() {
                status = reap(s.pid);
            }
            // Other children (none expected) are reaped too, so no zombie stays.
            while let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
                waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG))
            {}
        }
        if ready[1] {
            let mut chunk = [0u8; 256];
            while let Ok(n @ 1..) = s.ctl.read(&mut chunk) {
                ctl_buf.extend_from_slice(&chunk[..n]);
            }
            while let Some(nl) = ctl_buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = ctl_buf.drain(..=nl).collect();
                let sig = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|l| l.trim().parse::<i32>().ok())
                    .and_then(|n| Signal::try_from(n).ok());
                // Only while unreaped: the pid cannot have been reused yet.
                if let (Some(sig), None) = (sig, &status) {
                    let _ = nix::sys::signal::kill(s.pid, sig);
                }
            }
        }
        let mut idx = 2;
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if !open[i] {
                continue;
            }
            if ready[idx] {
                let file = if i == 0 { &mut s.stdout } else { &mut s.stderr };
                match file.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        open[i] = false;
                        if let Some(log) = log.as_mut() {
                            log.close_stream(stream);
                        }
                    }
                    Ok(n) => {
                        if let Some(log) = log.as_mut() {
                            log.write(stream, &buf[..n]);
                        }
                    }
                }
            }
            idx += 1;
        }
    }
    for stream in [Stream::Stdout, Stream::Stderr] {
        if let Some(log) = log.as_mut() {
            log.close_stream(stream);
        }
    }
    let status = match status {
        Some(s) => s,
        // Pipes stayed open past the timeout without an exit: wait for it for real.
        None => loop {
            match waitpid(s.pid, None) {
                Ok(ws @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break ws,
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break WaitStatus::Exited(s.pid, 255),
            }
        },
    };
    let (exit_code, signal) = match status {
        WaitStatus::Exited(_, code) => (code, None),
        WaitStatus::Signaled(_, sig, _) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    let oom_killed = crate::cgroups::oom_kill_count(&s.cfg.cgroup_path) > 0;
    // Cleanup before the record: once exit.json exists the runtime may remove
    // everything, and must find nothing of the container left.
    cleanup_libcontainer(dir, &s.cfg);
    let record = ExitRecord {
        exit_code,
        signal,
        oom_killed,
        started_at_ns: s.started_at_ns,
        finished_at_ns: records::now_ns(),
    };
    if let Err(e) = records::write_json(dir, records::EXIT, &record) {
        eprintln!("writing the exit record: {e}");
    }
    0
}

/// The pid's exit status if it has exited (reaping it).
fn reap(pid: Pid) -> Option<WaitStatus> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(ws @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => Some(ws),
        Ok(_) => None,
        // ECHILD: already reaped elsewhere; treat as gone.
        Err(nix::errno::Errno::ECHILD) => Some(WaitStatus::Exited(pid, 255)),
        Err(_) => None,
    }
}

/// Removes libcontainer's state dir and the container's cgroup. Done here rather than
/// by libcontainer's `delete`, which for a stopped container does the same two things
/// but first builds a cgroup manager that re-reads mountinfo once per controller.
pub(crate) fn cleanup_libcontainer(dir: &Path, cfg: &ShimConfig) {
    if let Err(e) = crate::cgroups::remove_container_cgroup(&cfg.cgroup_path) {
        eprintln!("{e}");
    }
    let state_dir = dir.join(records::LIBCONTAINER_ROOT).join(&cfg.id);
    if let Err(e) = fs::remove_dir_all(&state_dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("removing {}: {e}", state_dir.display());
        }
    }
}

fn exec(dir: &Path, req: ExecRequest) -> i32 {
    match exec_start(dir, &req) {
        Ok(pid) => loop {
            match waitpid(pid, None) {
                Ok(WaitStatus::Exited(_, code)) => return code,
                Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("tug exec: waiting for the process: {e}");
                    return EXEC_FAILED;
                }
            }
        },
        Err(msg) => {
            eprintln!("tug exec: {msg}");
            EXEC_FAILED
        }
    }
}

fn exec_start(dir: &Path, req: &ExecRequest) -> Result<Pid, String> {
    let cfg: ShimConfig = records::read_json(dir, records::SHIM_CONFIG)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the container has no shim config (not created by tug?)".to_string())?;
    let spec = oci_spec::runtime::Spec::load(dir.join(records::SPEC))
        .map_err(|e| format!("loading the container's spec: {e}"))?;
    let mut process = spec
        .process()
        .clone()
        .ok_or("the container's spec has no process")?;
    if req.args.is_empty() {
        return Err("no command given".into());
    }
    // The container's own process (user, cwd, capabilities, ...) with the exec's
    // command, env on top, and the terminal flag: the tenant builder has no tty switch,
    // so the whole process goes in as a file.
    let overridden: HashMap<&str, &str> = req
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut env: Vec<String> = process
        .env()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|kv| !overridden.contains_key(kv.split('=').next().unwrap_or_default()))
        .collect();
    env.extend(req.env.iter().map(|(k, v)| format!("{k}={v}")));
    process.set_env(Some(env));
    process.set_args(Some(req.args.clone()));
    process.set_terminal(Some(req.console_socket.is_some()));
    let process_file = dir.join(format!("exec-{}.json", std::process::id()));
    let bytes = serde_json::to_vec(&process).map_err(|e| e.to_string())?;
    fs::write(&process_file, bytes)
        .map_err(|e| format!("writing {}: {e}", process_file.display()))?;
    struct RemoveOnDrop(PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }
    let _remove = RemoveOnDrop(process_file.clone());
    let mut builder = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_root_path(dir.join(records::LIBCONTAINER_ROOT))
        .map_err(|e| e.to_string())?;
    // Without a tty the process inherits our stdin/stdout/stderr (the runtime's pipes).
    if let Some(sock) = &req.console_socket {
        builder = builder.with_console_socket(Some(sock));
    }
    builder
        .as_tenant()
        .with_process(Some(&process_file))
        .with_detach(req.console_socket.is_some())
        .build()
        .map_err(|e| error_chain(&e))
}
