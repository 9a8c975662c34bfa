//! `tug get -o jsonpath=... | custom-columns=...`, and the pod table's columns.

use crate::support::{cluster, eventually, node, tug, write};

#[tokio::test]
async fn jsonpath_and_custom_columns_print_what_they_select() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), true).await;
    let s = &c.server;
    let n = write(dir.path(), "node.yaml", &node("n1"));
    assert_eq!(tug(s, &["apply", "-f", &n]).await.code, 0);
    let pods = write(
        dir.path(),
        "pods.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {app: web}}\nspec:\n  containers: [{name: c, image: hello}]\n\
         ---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: b, labels: {app: db}}\nspec:\n  containers: [{name: c, image: busybox}]\n",
    );
    assert_eq!(tug(s, &["apply", "-f", &pods]).await.code, 0);
    // The stand-in kubelet binds them and reports Running with an IP.
    eventually(
        s,
        &["get", "pods", "-o", "jsonpath={.items[*].status.phase}"],
        |r| r.out == "Running Running",
    )
    .await;

    let r = tug(
        s,
        &["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"],
    )
    .await;
    assert_eq!((r.code, r.out.as_str()), (0, "a b"), "{}", r.err);
    let r = tug(s, &["get", "pod", "a", "-o", "jsonpath={.status.podIP}"]).await;
    assert_eq!(r.out, "10.244.0.9");
    let r = tug(
        s,
        &[
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{\"\\t\"}{.spec.nodeName}{\"\\n\"}{end}",
        ],
    )
    .await;
    assert_eq!(r.out, "a\tn1\nb\tn1\n");
    let r = tug(
        s,
        &["get", "pods", "-o", "jsonpath={.items[0].metadata.name}"],
    )
    .await;
    assert_eq!(r.out, "a");
    let r = tug(
        s,
        &[
            "get",
            "pods",
            "-o",
            "jsonpath={.items[?(@.metadata.labels.app==\"db\")].spec.containers[0].image}",
        ],
    )
    .await;
    assert_eq!(r.out, "busybox");

    let r = tug(
        s,
        &[
            "get",
            "pods",
            "-o",
            "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[*].image",
        ],
    )
    .await;
    assert_eq!(r.out, "NAME   IMAGE\na      hello\nb      busybox\n");

    // The server's Table: kubectl's pod columns.
    let r = tug(s, &["get", "pods"]).await;
    let header: Vec<&str> = r.out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{}",
        r.out
    );
    let row: Vec<&str> = r.out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["a", "1/1", "Running", "0"], "{}", r.out);

    // Bad templates fail at flag parsing, missing keys when printing.
    let r = tug(s, &["get", "pods", "-o", "jsonpath={.items["]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("jsonpath"), "{}", r.err);
    let r = tug(s, &["get", "pods", "-o", "jsonpath="]).await;
    assert_eq!(r.code, 1);
    // Missing keys print nothing, like kubectl, unless asked to fail.
    let r = tug(s, &["get", "pod", "a", "-o", "jsonpath={.status.nothing}"]).await;
    assert_eq!((r.code, r.out.as_str()), (0, ""), "{}", r.err);
    let r = tug(
        s,
        &[
            "get",
            "pod",
            "a",
            "-o",
            "jsonpath={.status.nothing}",
            "--allow-missing-template-keys=false",
        ],
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains(".status.nothing is not found"), "{}", r.err);
    let r = tug(
        s,
        &[
            "get",
            "svc",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    )
    .await;
    assert_eq!((r.code, r.out.as_str()), (0, ""), "{}", r.err);
    let r = tug(s, &["get", "pods", "-o", "custom-columns=NAME"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("HEADER:JSONPATH"), "{}", r.err);
    let r = tug(s, &["get", "pods", "-o", "xml"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("unknown output format"), "{}", r.err);
    c.shutdown().await;
}
