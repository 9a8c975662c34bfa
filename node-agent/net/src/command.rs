//! Running `ip` and `nft`: the only place this crate talks to the kernel's network stack
//! (besides [`crate::sysctl`]), so swapping in netlink later touches one module.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// Runs `program args...`, feeding `stdin` if given; returns stdout.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: program.to_string(),
        source,
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error (EPIPE) means the program exited early; its status says why.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| Error::Spawn {
        program: program.to_string(),
        source,
    })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let mut command = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(input) = stdin {
        // Scripts are short; the failing line is what the operator needs to see.
        command.push_str(" <<EOF\n");
        command.push_str(input.trim_end());
        command.push_str("\nEOF");
    }
    Err(Error::Command {
        command,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// `ip args...`.
pub fn ip(args: &[&str]) -> Result<String> {
    run("ip", args, None)
}

/// `ip [-n netns] -batch -` with one command per line: several changes for one process.
pub fn ip_batch(netns: Option<&str>, script: &str) -> Result<()> {
    match netns {
        Some(ns) => run("ip", &["-n", ns, "-batch", "-"], Some(script)),
        None => run("ip", &["-batch", "-"], Some(script)),
    }
    .map(drop)
}

/// `ip -j args...` parsed as JSON (iproute2 prints an array of objects).
pub fn ip_json(args: &[&str]) -> Result<Vec<serde_json::Value>> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = ip(&full)?;
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&out).map_err(|e| Error::Parse {
        command: format!("ip {}", full.join(" ")),
        reason: e.to_string(),
    })
}

/// `nft -f -`: the whole script is one kernel transaction (all or nothing).
pub fn nft_script(script: &str) -> Result<()> {
    run("nft", &["-f", "-"], Some(script)).map(drop)
}

/// Whether a failure is the kernel saying "that object does not exist" (for idempotent
/// deletes: "already gone" is success).
pub fn is_not_found(err: &Error) -> bool {
    match err {
        Error::Command { stderr, .. } => {
            let s = stderr.to_ascii_lowercase();
            s.contains("cannot find device")
                || s.contains("no such file or directory")
                || s.contains("no such process")
                || s.contains("does not exist")
        }
        _ => false,
    }
}

/// Whether a failure is "File exists" (for idempotent creates).
pub fn is_exists(err: &Error) -> bool {
    matches!(err, Error::Command { stderr, .. } if stderr.contains("File exists"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_command_and_stderr() {
        let err = run("sh", &["-c", "echo boom >&2; exit 3"], None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("sh -c") && msg.contains("boom") && msg.contains('3'),
            "{msg}"
        );
        assert_eq!(run("sh", &["-c", "cat"], Some("hi")).unwrap(), "hi");
        assert!(matches!(
            run("/nonexistent/tug-x", &[], None),
            Err(Error::Spawn { .. })
        ));
    }

    #[test]
    fn not_found_and_exists_classification() {
        let e = |s: &str| Error::Command {
            command: "ip".into(),
            status: "exit status: 1".into(),
            stderr: s.into(),
        };
        assert!(is_not_found(&e("Cannot find device \"veth1\"")));
        assert!(is_not_found(&e(
            "Cannot remove namespace file \"/run/netns/x\": No such file or directory"
        )));
        assert!(!is_not_found(&e("RTNETLINK answers: File exists")));
        assert!(is_exists(&e("RTNETLINK answers: File exists")));
    }
}
