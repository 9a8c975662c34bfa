//! `tug version`: the client always, the server's `/version` when it is reachable.

use crate::support::{cluster, run, tug, write};

#[tokio::test]
async fn version_prints_client_and_server() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), false).await;
    let r = tug(&c.server, &["version"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(
        lines[0],
        format!("Client Version: v{}", env!("CARGO_PKG_VERSION"))
    );
    assert!(lines[1].starts_with("Server Version: v1."), "{}", r.out);

    let r = tug(&c.server, &["version", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert!(v["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap()
        .starts_with("v1."));
    assert_eq!(
        v["clientVersion"]["gitVersion"],
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );

    let r = tug(&c.server, &["version", "-o", "toml"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("toml"), "{}", r.err);
    c.shutdown().await;
}

#[tokio::test]
async fn the_client_version_needs_no_cluster_or_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none").to_string_lossy().into_owned();
    let r = run(&["--kubeconfig", &missing, "version", "--client"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        r.out,
        format!("Client Version: v{}\n", env!("CARGO_PKG_VERSION"))
    );

    // Without --client the client line still comes first, then the failure.
    let kc = write(
        dir.path(),
        "config",
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\ncontexts: [{name: x, context: {cluster: c}}]\n",
    );
    let r = run(&["--kubeconfig", &kc, "version"]).await;
    assert_eq!(r.code, 1);
    assert!(r.out.starts_with("Client Version: v"), "{}", r.out);
    assert!(r.err.contains("error: "), "{}", r.err);
}
