//! `tug rollout status | history | undo | restart | pause | resume`.

use crate::support::{cluster, eventually, node, tug, write};

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: IMAGE}]
";

#[tokio::test]
async fn a_rollout_is_followed_listed_undone_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), true).await;
    let s = &c.server;
    let n = write(dir.path(), "node.yaml", &node("n1"));
    assert_eq!(tug(s, &["apply", "-f", &n]).await.code, 0);
    let v1 = write(dir.path(), "v1.yaml", &DEPLOY.replace("IMAGE", "hello:1"));
    let v2 = write(
        dir.path(),
        "v2.yaml",
        &DEPLOY.replace("IMAGE", "hello:2").replace(
            "metadata: {name: web}",
            "metadata: {name: web, annotations: {kubernetes.io/change-cause: image 2}}",
        ),
    );
    assert_eq!(tug(s, &["apply", "-f", &v1]).await.code, 0);

    let r = tug(s, &["rollout", "status", "deployment/web", "--timeout=60s"]).await;
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert_eq!(
        r.out.lines().last(),
        Some("deployment \"web\" successfully rolled out"),
        "{}",
        r.out
    );
    assert!(r.out.lines().all(|l| l.starts_with("Waiting for deployment") || l.starts_with("deployment \"web\"")), "{}", r.out);

    assert_eq!(tug(s, &["apply", "-f", &v2]).await.code, 0);
    let r = tug(
        s,
        &["rollout", "status", "deploy", "web", "--timeout", "60s"],
    )
    .await;
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);

    let r = tug(s, &["rollout", "history", "deployment/web"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        r.out,
        "deployment.apps/web\nREVISION   CHANGE-CAUSE\n1          <none>\n2          image 2\n\n"
    );
    let r = tug(s, &["rollout", "history", "deployment/web", "--revision=1"]).await;
    assert!(
        r.out
            .starts_with("deployment.apps/web with revision #1\nPod Template:\n"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("image: hello:1") && !r.out.contains("pod-template-hash"),
        "{}",
        r.out
    );
    let r = tug(s, &["rollout", "history", "deployment/web", "--revision=7"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("revision 7"), "{}", r.err);

    // Undo goes back to revision 1's template (as revision 3).
    let r = tug(s, &["rollout", "undo", "deployment/web"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "deployment.apps/web rolled back\n"),
        "{}",
        r.err
    );
    let image = [
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ];
    assert_eq!(tug(s, &image).await.out, "hello:1");
    let r = tug(s, &["rollout", "status", "deployment/web", "--timeout=60s"]).await;
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    eventually(s, &["rollout", "history", "deployment/web"], |r| {
        r.out.contains("\n3 ")
    })
    .await;
    let r = tug(s, &["rollout", "undo", "deployment/web", "--to-revision=2"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(tug(s, &image).await.out, "hello:2");
    // Revision 2's ReplicaSet is revision 4 now, as in Kubernetes; undoing to it again
    // changes nothing.
    eventually(s, &["rollout", "history", "deployment/web"], |r| {
        r.out.contains("\n4 ")
    })
    .await;
    let r = tug(s, &["rollout", "undo", "deployment/web", "--to-revision=4"]).await;
    assert_eq!(
        r.out,
        "deployment.apps/web skipped rollback (current template already matches revision 4)\n",
        "{}",
        r.err
    );
    let r = tug(
        s,
        &["rollout", "undo", "deployment/web", "--to-revision=42"],
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("unable to find specified revision 42"),
        "{}",
        r.err
    );

    // Restart stamps the template, which rolls out new pods.
    let r = tug(s, &["rollout", "restart", "deployment/web"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "deployment.apps/web restarted\n"),
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
            "jsonpath={.spec.template.metadata.annotations}",
        ],
    )
    .await;
    assert!(
        r.out.contains("kubectl.kubernetes.io/restartedAt"),
        "{}",
        r.out
    );
    let r = tug(s, &["rollout", "status", "deployment/web", "--timeout=60s"]).await;
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);

    // Pause and resume, each only once.
    let r = tug(s, &["rollout", "pause", "deployment/web"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "deployment.apps/web paused\n"),
        "{}",
        r.err
    );
    let r = tug(s, &["rollout", "pause", "deployment/web"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("already paused"), "{}", r.err);
    let r = tug(s, &["rollout", "restart", "deployment/web"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("rollout resume"), "{}", r.err);
    let r = tug(s, &["rollout", "undo", "deployment/web"]).await;
    assert_eq!(r.code, 1);
    let r = tug(s, &["rollout", "resume", "deployment/web"]).await;
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "deployment.apps/web resumed\n"),
        "{}",
        r.err
    );
    let r = tug(s, &["rollout", "resume", "deployment/web"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("not paused"), "{}", r.err);
    c.shutdown().await;
}

#[tokio::test]
async fn rollout_status_times_out_and_rejects_bad_targets() {
    let dir = tempfile::tempdir().unwrap();
    // No kubelet: pods never become available.
    let c = cluster(dir.path(), false).await;
    let s = &c.server;
    assert_eq!(
        tug(s, &["create", "deployment", "web", "--image=hello"])
            .await
            .code,
        0
    );
    let r = tug(s, &["rollout", "status", "deployment/web", "--timeout=2s"]).await;
    assert_eq!(r.code, 1);
    assert!(r.out.contains("Waiting for deployment"), "{}", r.out);
    assert!(
        r.err.contains("timed out waiting for deployment \"web\""),
        "{}",
        r.err
    );
    let r = tug(s, &["rollout", "status", "deployment/web", "--watch=false"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.out.lines().count(), 1, "{}", r.out);

    let r = tug(s, &["rollout", "undo", "deployment/web"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("no previous revision"), "{}", r.err);
    let r = tug(s, &["rollout", "status", "deployment/nope"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("NotFound"), "{}", r.err);
    let r = tug(s, &["rollout", "status", "rs/web"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("no rollout support"), "{}", r.err);
    let r = tug(
        s,
        &["rollout", "status", "deployment/web", "--timeout=soon"],
    )
    .await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("not a duration"), "{}", r.err);
    let r = tug(s, &["rollout", "history", "deployment/a", "deployment/b"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("one deployment at a time"), "{}", r.err);
    c.shutdown().await;
}
