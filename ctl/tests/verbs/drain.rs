//! `tug drain`.

use crate::support::{cluster, eventually, node, tug, write};

#[tokio::test]
async fn drain_refuses_unmanaged_pods_without_force_then_evicts_everything() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), true).await;
    let s = &c.server;
    let nodes = write(
        dir.path(),
        "nodes.yaml",
        &format!("{}---\n{}", node("n1"), node("n2")),
    );
    assert_eq!(tug(s, &["apply", "-f", &nodes]).await.code, 0);
    // Everything lands on n1 while n2 is cordoned.
    assert_eq!(tug(s, &["cordon", "n2"]).await.code, 0);
    assert_eq!(
        tug(
            s,
            &[
                "create",
                "deployment",
                "web",
                "--image=hello",
                "--replicas=2"
            ]
        )
        .await
        .code,
        0
    );
    let solo = write(
        dir.path(),
        "solo.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: solo}\nspec:\n  containers: [{name: c, image: hello}]\n",
    );
    assert_eq!(tug(s, &["apply", "-f", &solo]).await.code, 0);
    let where_ = ["get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}"];
    eventually(s, &where_, |r| r.out == "n1 n1 n1").await;
    assert_eq!(tug(s, &["uncordon", "n2"]).await.code, 0);

    let r = tug(s, &["drain", "n1"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.out, "node/n1 cordoned\n");
    assert!(
        r.err.contains(
            "cannot delete Pods that declare no controller (use --force to override): default/solo"
        ),
        "{}",
        r.err
    );
    // Nothing was evicted.
    assert_eq!(tug(s, &where_).await.out, "n1 n1 n1");

    let r = tug(s, &["drain", "n1", "--force", "--timeout=60s"]).await;
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert!(r.out.starts_with("node/n1 already cordoned\n"), "{}", r.out);
    assert!(r.out.contains("evicting pod default/solo\n"), "{}", r.out);
    assert_eq!(r.out.matches("evicted\n").count(), 3, "{}", r.out);
    assert!(r.out.ends_with("node/n1 drained\n"), "{}", r.out);
    assert!(
        r.err
            .contains("Warning: deleting Pods that declare no controller: default/solo"),
        "{}",
        r.err
    );
    // The Deployment's pods come back on n2; solo is gone for good.
    eventually(s, &where_, |r| r.out == "n2 n2").await;

    let r = tug(s, &["drain", "ghost"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("NotFound"), "{}", r.err);
    let r = tug(s, &["drain", "n1", "--grace-period=-5"]).await;
    assert_eq!(r.code, 1);
    let r = tug(s, &["drain", "n1", "--timeout=forever"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("not a duration"), "{}", r.err);
    c.shutdown().await;
}
