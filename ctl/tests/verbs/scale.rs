//! `tug scale`.

use crate::support::{cluster, eventually, tug};

#[tokio::test]
async fn scale_sets_replicas_with_an_optional_precondition() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), false).await;
    let s = &c.server;
    assert_eq!(
        tug(s, &["create", "deployment", "web", "--image=hello"])
            .await
            .code,
        0
    );

    let r = tug(s, &["scale", "deployment/web", "--replicas=3"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "deployment.apps/web scaled\n"),
        "{}",
        r.err
    );
    let r = tug(
        s,
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
    )
    .await;
    assert_eq!(r.out, "3");
    // The controllers follow: the ReplicaSet is scaled too.
    eventually(
        s,
        &["get", "rs", "-o", "jsonpath={.items[*].spec.replicas}"],
        |r| r.out == "3",
    )
    .await;

    let r = tug(
        s,
        &[
            "scale",
            "deploy",
            "web",
            "--replicas=1",
            "--current-replicas=2",
        ],
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("expected replicas to be 2, was 3"),
        "{}",
        r.err
    );
    let r = tug(
        s,
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
    )
    .await;
    assert_eq!(r.out, "3");
    let r = tug(
        s,
        &[
            "scale",
            "deploy",
            "web",
            "--replicas=1",
            "--current-replicas=3",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.err);

    let r = tug(s, &["scale", "deployment/nope", "--replicas=1"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("NotFound") && r.err.contains("\"nope\""),
        "{}",
        r.err
    );
    let r = tug(s, &["scale", "pod/x", "--replicas=1"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("only deployments and replicasets"),
        "{}",
        r.err
    );
    let r = tug(s, &["scale", "deployment/web", "--replicas=-2"]).await;
    assert_eq!(r.code, 1);
    let r = tug(s, &["scale", "deployment/web"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("--replicas"), "{}", r.err);
    let r = tug(s, &["scale", "deployment", "--replicas=1"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("no name was specified"), "{}", r.err);
    c.shutdown().await;
}
