//! `tug create` and `tug apply -R`.

use crate::support::{cluster, tug, write};

#[tokio::test]
async fn create_makes_objects_once_and_reports_existing_ones_like_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), false).await;
    let s = &c.server;

    let r = tug(
        s,
        &[
            "create",
            "deployment",
            "web",
            "--image=hello:1",
            "--replicas=2",
        ],
    )
    .await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "deployment.apps/web created\n"),
        "{}",
        r.err
    );
    let r = tug(
        s,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].name}",
        ],
    )
    .await;
    assert_eq!(r.out, "2 hello");

    let r = tug(s, &["create", "deployment", "web", "--image=hello:1"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err,
        "Error from server (AlreadyExists): deployments.apps \"web\" already exists\n"
    );

    let r = tug(s, &["create", "namespace", "team"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "namespace/team created\n"),
        "{}",
        r.err
    );
    let r = tug(s, &["create", "ns", "team"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("(AlreadyExists)") && r.err.contains("\"team\""),
        "{}",
        r.err
    );

    let file = write(
        dir.path(),
        "cms.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
    );
    let r = tug(s, &["create", "-f", &file]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "configmap/a created\nconfigmap/b created\n"),
        "{}",
        r.err
    );
    // create never records last-applied (unless --save-config).
    let r = tug(s, &["get", "cm", "a", "-o", "json"]).await;
    assert!(!r.out.contains("last-applied-configuration"), "{}", r.out);
    let r = tug(s, &["create", "-f", &file]).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.out, "");
    assert_eq!(
        r.err,
        "Error from server (AlreadyExists): configmaps \"a\" already exists\n\
         Error from server (AlreadyExists): configmaps \"b\" already exists\n"
    );

    // --dry-run=client prints the object and creates nothing.
    let r = tug(
        s,
        &[
            "create",
            "deployment",
            "api",
            "--image=hello",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.starts_with("apiVersion: apps/v1\nkind: Deployment\n"),
        "{}",
        r.out
    );
    let r = tug(s, &["create", "ns", "dry", "--dry-run=client"]).await;
    assert_eq!(r.out, "namespace/dry created (dry run)\n");
    assert_eq!(tug(s, &["get", "deploy", "api"]).await.code, 1);
    assert_eq!(tug(s, &["get", "ns", "dry"]).await.code, 1);
    let r = tug(s, &["create", "ns", "real", "-o", "name"]).await;
    assert_eq!(r.out, "namespace/real\n");
    let r = tug(s, &["create", "ns", "x", "--dry-run=server"]).await;
    assert_eq!(r.code, 1);

    // Bad input: negative replicas, no image, nothing to create, a bad document.
    let r = tug(
        s,
        &["create", "deployment", "x", "--image=i", "--replicas=-1"],
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("--replicas"), "{}", r.err);
    let r = tug(s, &["create", "deployment", "x"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("--image"), "{}", r.err);
    let r = tug(s, &["create"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("must specify one of -f"), "{}", r.err);
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: [1]\n",
    );
    let r = tug(s, &["create", "-f", &bad]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("document 1") && r.err.contains("data"),
        "{}",
        r.err
    );
    c.shutdown().await;
}

#[tokio::test]
async fn apply_and_create_recurse_into_directories_with_r() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), false).await;
    let s = &c.server;
    let tree = dir.path().join("tree");
    write(
        &tree,
        "top.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: top}\n",
    );
    write(
        &tree,
        "sub/deeper/low.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: low}\n",
    );
    write(&tree, "sub/notes.txt", "not a manifest");
    let t = tree.to_string_lossy().into_owned();

    // Without -R only the top directory is read.
    let r = tug(s, &["apply", "-f", &t]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "configmap/top created\n"),
        "{}",
        r.err
    );
    let r = tug(s, &["apply", "-R", "-f", &t]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "configmap/low created\nconfigmap/top unchanged\n"),
        "{}",
        r.err
    );
    let r = tug(s, &["create", "-R", "-f", &t]).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.err.matches("AlreadyExists").count(), 2, "{}", r.err);

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("nested")).unwrap();
    let r = tug(s, &["apply", "-R", "-f", &empty.to_string_lossy()]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("no .yaml, .yml or .json files"), "{}", r.err);
    c.shutdown().await;
}
