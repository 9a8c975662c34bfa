//! `tug cordon` and `tug uncordon`.

use crate::support::{cluster, node, tug, write};

#[tokio::test]
async fn cordon_and_uncordon_flip_unschedulable_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), false).await;
    let s = &c.server;
    let n = write(dir.path(), "node.yaml", &node("n1"));
    assert_eq!(tug(s, &["apply", "-f", &n]).await.code, 0);

    let r = tug(s, &["cordon", "n1"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "node/n1 cordoned\n"),
        "{}",
        r.err
    );
    let r = tug(
        s,
        &["get", "node", "n1", "-o", "jsonpath={.spec.unschedulable}"],
    )
    .await;
    assert_eq!(r.out, "true");
    let r = tug(s, &["cordon", "n1"]).await;
    assert_eq!((r.code, r.out.as_str()), (0, "node/n1 already cordoned\n"));

    let r = tug(s, &["uncordon", "n1"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "node/n1 uncordoned\n"),
        "{}",
        r.err
    );
    let r = tug(s, &["get", "node", "n1", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert!(
        v.pointer("/spec/unschedulable").is_none_or(|u| u == false),
        "{v}"
    );
    let r = tug(s, &["uncordon", "n1"]).await;
    assert_eq!(r.out, "node/n1 already uncordoned\n");

    let r = tug(s, &["cordon", "n1", "ghost"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.out, "node/n1 cordoned\n");
    assert!(
        r.err.contains("NotFound") && r.err.contains("\"ghost\""),
        "{}",
        r.err
    );
    let r = tug(s, &["uncordon"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("<NODES>"), "{}", r.err);
    c.shutdown().await;
}
