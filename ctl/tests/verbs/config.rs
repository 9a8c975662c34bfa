//! `tug config ...`: kubeconfig contexts, read and written without any cluster.

use crate::support::{run, write};

const KUBECONFIG: &str = "apiVersion: v1
kind: Config
current-context: alpha
clusters:
- name: c1
  cluster:
    server: https://127.0.0.1:1
    certificate-authority-data: QUJD
- name: c2
  cluster:
    server: https://127.0.0.1:2
contexts:
- name: alpha
  context: {cluster: c1, user: admin, namespace: team}
- name: beta
  context: {cluster: c2, user: admin}
users:
- name: admin
  user:
    token: s3cret-token
    client-key-data: S0VZ
";

#[tokio::test]
async fn contexts_are_listed_switched_and_viewed_without_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write(dir.path(), "config", KUBECONFIG);
    let k = kc.as_str();

    let r = run(&["--kubeconfig", k, "config", "get-contexts"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let lines: Vec<&str> = r.out.lines().map(str::trim_end).collect();
    assert_eq!(
        lines,
        [
            "CURRENT   NAME    CLUSTER   AUTHINFO   NAMESPACE",
            "*         alpha   c1        admin      team",
            "          beta    c2        admin",
        ]
    );
    let r = run(&["--kubeconfig", k, "config", "get-contexts", "-o", "name"]).await;
    assert_eq!(r.out, "alpha\nbeta\n");

    let r = run(&["--kubeconfig", k, "config", "current-context"]).await;
    assert_eq!((r.code, r.out.as_str()), (0, "alpha\n"));

    let r = run(&["--kubeconfig", k, "config", "use-context", "beta"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "Switched to context \"beta\".\n"),
        "{}",
        r.err
    );
    let r = run(&["--kubeconfig", k, "config", "current-context"]).await;
    assert_eq!(r.out, "beta\n");
    // The file itself changed, and kept everything else.
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(text.contains("current-context: beta"), "{text}");
    assert!(text.contains("s3cret-token"), "{text}");

    let r = run(&[
        "--kubeconfig",
        k,
        "config",
        "set-context",
        "--current",
        "--namespace",
        "prod",
    ])
    .await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "Context \"beta\" modified.\n"),
        "{}",
        r.err
    );
    let r = run(&["--kubeconfig", k, "config", "get-contexts", "beta"]).await;
    assert!(r.out.lines().nth(1).unwrap().ends_with("prod"), "{}", r.out);

    let r = run(&["--kubeconfig", k, "config", "view"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        !r.out.contains("s3cret-token") && !r.out.contains("S0VZ") && !r.out.contains("QUJD"),
        "{}",
        r.out
    );
    assert!(r.out.contains("token: REDACTED"), "{}", r.out);
    assert!(
        r.out.contains("certificate-authority-data: DATA+OMITTED"),
        "{}",
        r.out
    );
    let r = run(&[
        "--kubeconfig",
        k,
        "config",
        "view",
        "--raw",
        "--minify",
        "-o",
        "json",
    ])
    .await;
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["users"][0]["user"]["token"], "s3cret-token");
    assert_eq!(v["clusters"].as_array().unwrap().len(), 1);
    assert_eq!(v["clusters"][0]["name"], "c2");
    let r = run(&[
        "--kubeconfig",
        k,
        "--context",
        "alpha",
        "config",
        "view",
        "--minify",
        "-o",
        "json",
    ])
    .await;
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["clusters"][0]["name"], "c1", "{v}");
    assert_eq!(
        v["clusters"][0]["cluster"]["certificate-authority-data"],
        "DATA+OMITTED"
    );
}

#[tokio::test]
async fn unknown_contexts_and_missing_files_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write(dir.path(), "config", KUBECONFIG);
    let r = run(&["--kubeconfig", &kc, "config", "use-context", "gamma"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("no context exists with the name: \"gamma\""),
        "{}",
        r.err
    );
    assert!(std::fs::read_to_string(&kc)
        .unwrap()
        .contains("current-context: alpha"));

    let r = run(&["--kubeconfig", &kc, "config", "get-contexts", "gamma"]).await;
    assert_eq!(r.code, 1);

    let missing = dir.path().join("nope").to_string_lossy().into_owned();
    let r = run(&["--kubeconfig", &missing, "config", "current-context"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("nope"), "{}", r.err);

    let empty = write(dir.path(), "empty", "apiVersion: v1\nkind: Config\n");
    let r = run(&["--kubeconfig", &empty, "config", "current-context"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("current-context is not set"), "{}", r.err);

    let bad = write(dir.path(), "bad", "clusters: [\n");
    let r = run(&["--kubeconfig", &bad, "config", "view"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("not valid YAML"), "{}", r.err);
}

#[tokio::test]
async fn verbs_that_need_the_cluster_fail_cleanly_when_it_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write(dir.path(), "config", KUBECONFIG);
    let r = run(&["--kubeconfig", &kc, "get", "pods"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.starts_with("error: "), "{}", r.err);
}
