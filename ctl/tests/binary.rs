//! The `tug` binary itself: stdin manifests, exit codes, stdout/stderr split.

use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

async fn tug(kubeconfig: &std::path::Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tug"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running tug");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn the_binary_reads_stdin_and_exits_with_kubectl_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = tug_apiserver::testing::single(dir.path()).await;
    let kc = server.kubeconfig.clone();

    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-stdin}\ndata: {a: b}\n";
    let (code, out, err) = tug(&kc, &["apply", "-f", "-"], cm).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "configmap/from-stdin created\n"),
        "{err}"
    );

    let (code, out, _) = tug(&kc, &["get", "cm", "from-stdin", "-o", "name"], "").await;
    assert_eq!((code, out.as_str()), (0, "configmap/from-stdin\n"));

    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: [1]\n";
    let (code, out, err) = tug(&kc, &["apply", "-f", "-"], bad).await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with("error: <stdin>: document 1 (ConfigMap \"bad\"): data: "),
        "{err}"
    );

    let (code, _, err) = tug(&kc, &["get", "cm", "missing"], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("NotFound"), "{err}");

    let (code, out, _) = tug(&kc, &["--help"], "").await;
    assert_eq!(code, 0);
    assert!(out.contains("apply"), "{out}");

    let (code, _, err) = tug(&kc, &["frobnicate"], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("unrecognized subcommand"), "{err}");

    let missing = dir.path().join("nope.conf");
    let (code, _, err) = tug(&missing, &["get", "pods"], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("nope.conf"), "{err}");
    server.shutdown().await;
}
