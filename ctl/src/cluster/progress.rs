//! Step-by-step progress on stderr: a spinner and colours on a terminal, plain
//! `step ... done (1.2s)` lines otherwise (logs, CI, pipes).

use std::future::Future;
use std::io::{IsTerminal as _, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Progress<'a> {
    err: &'a mut dyn Write,
    tty: bool,
}

/// Animates a spinner on the real stderr until dropped.
struct Spinner {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    fn start(title: String) -> Spinner {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let thread = std::thread::spawn(move || {
            const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
            let mut i = 0;
            while !d.load(Ordering::Relaxed) {
                let _ = write!(std::io::stderr(), "\r\x1b[2K {} {title}", FRAMES[i % 10]);
                let _ = std::io::stderr().flush();
                i += 1;
                std::thread::sleep(Duration::from_millis(80));
            }
        });
        Spinner {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<'a> Progress<'a> {
    /// Spinner and colours only when stderr is a terminal and `NO_COLOR` is unset.
    pub fn new(err: &'a mut dyn Write) -> Self {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Progress { err, tty }
    }

    fn begin(&mut self, title: &str) -> Option<Spinner> {
        if self.tty {
            Some(Spinner::start(title.to_string()))
        } else {
            let _ = write!(self.err, "{title} ... ");
            let _ = self.err.flush();
            None
        }
    }

    fn end<T>(&mut self, title: &str, started: Instant, r: &anyhow::Result<T>) {
        let secs = started.elapsed().as_secs_f64();
        match (self.tty, r.is_ok()) {
            (true, true) => {
                let _ = writeln!(self.err, "\r\x1b[2K \x1b[32m✓\x1b[0m {title} ({secs:.1}s)");
            }
            (true, false) => {
                let _ = writeln!(self.err, "\r\x1b[2K \x1b[31m✗\x1b[0m {title}");
            }
            (false, true) => {
                let _ = writeln!(self.err, "done ({secs:.1}s)");
            }
            (false, false) => {
                let _ = writeln!(self.err, "failed");
            }
        }
        let _ = self.err.flush();
    }

    /// Runs one step and reports it.
    pub fn step<T>(
        &mut self,
        title: &str,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let spinner = self.begin(title);
        let r = f();
        drop(spinner);
        self.end(title, started, &r);
        r
    }

    /// Runs one asynchronous step and reports it.
    pub async fn step_async<T>(
        &mut self,
        title: &str,
        f: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let spinner = self.begin(title);
        let r = f.await;
        drop(spinner);
        self.end(title, started, &r);
        r
    }

    /// A line of its own (not a step).
    pub fn say(&mut self, text: &str) {
        let _ = writeln!(self.err, "{text}");
    }

    /// Bold on a terminal.
    pub fn bold(&self, text: &str) -> String {
        if self.tty {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_terminal_steps_are_plain_lines() {
        let mut buf = Vec::new();
        let mut p = Progress {
            err: &mut buf,
            tty: false,
        };
        p.step("Creating the network", || Ok(())).unwrap();
        let _ = p.step("Starting", || -> anyhow::Result<()> { anyhow::bail!("no") });
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.starts_with("Creating the network ... done ("),
            "{text}"
        );
        assert!(text.ends_with("Starting ... failed\n"), "{text}");
        assert!(!text.contains('\x1b'));
    }
}
