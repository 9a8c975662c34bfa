//! `tug describe`.

use crate::support::{cluster, eventually, node, tug, write};

#[tokio::test]
async fn describe_shows_each_kind_with_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path(), true).await;
    let s = &c.server;
    let n = write(dir.path(), "node.yaml", &node("n1"));
    assert_eq!(tug(s, &["apply", "-f", &n]).await.code, 0);
    assert_eq!(
        tug(
            s,
            &[
                "create",
                "deployment",
                "web",
                "--image=hello:1",
                "--port=80"
            ]
        )
        .await
        .code,
        0
    );
    let svc = write(
        dir.path(),
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: 80}]\n\
         ---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {color: blue}\n\
         ---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox, command: [echo, hi]}]\n",
    );
    assert_eq!(tug(s, &["apply", "-f", &svc]).await.code, 0,);
    let r = eventually(
        s,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[0].metadata.name} {.items[0].status.phase}",
        ],
        |r| r.out.ends_with(" Running"),
    )
    .await;
    let pod = r.out.split(' ').next().unwrap().to_string();

    // An event about the pod, found through its uid.
    let uid = tug(s, &["get", "pod", &pod, "-o", "jsonpath={.metadata.uid}"])
        .await
        .out;
    let ev = write(
        dir.path(),
        "ev.yaml",
        &format!(
            "apiVersion: v1\nkind: Event\nmetadata: {{name: pulled}}\ninvolvedObject: {{kind: Pod, name: {pod}, namespace: default, uid: {uid}}}\n\
             type: Normal\nreason: Pulled\nmessage: Image pulled\nsource: {{component: tug-agent}}\nlastTimestamp: '{}'\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    );
    assert_eq!(tug(s, &["apply", "-f", &ev]).await.code, 0);

    let r = tug(s, &["describe", "pod", &pod]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    for want in [
        format!("Name:             {pod}\n"),
        "Namespace:        default\n".into(),
        "Node:             n1/192.168.0.1\n".into(),
        "Start Time:       ".into(),
        "Labels:           app=web\n".into(),
        "Status:           Running\n".into(),
        "IP:               10.244.0.9\n".into(),
        "Controlled By:    ReplicaSet/web-".into(),
        "Containers:\n  hello:\n".into(),
        "    Image:          hello:1\n".into(),
        "    Port:           80/TCP\n".into(),
        "    State:          Running\n".into(),
        "    Ready:          True\n".into(),
        "    Restart Count:  0\n".into(),
        "Conditions:\n  Type ".into(),
        "Events:\n  Type    Reason  Age".into(),
        "  Normal  Pulled  ".into(),
    ] {
        assert!(r.out.contains(&want), "missing {want:?} in\n{}", r.out);
    }

    let r = eventually(s, &["describe", "deployment/web"], |r| {
        r.out.contains("1 available")
    })
    .await;
    for want in [
        "Name:                   web\n",
        "Selector:               app=web\n",
        "Replicas:               1 desired | 1 updated | 1 total | 1 available | 0 unavailable\n",
        "StrategyType:           RollingUpdate\n",
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge\n",
        "Pod Template:\n  Labels:  app=web\n  Containers:\n   hello:\n",
        "OldReplicaSets:  <none>\nNewReplicaSet:   web-",
        "ScalingReplicaSet",
    ] {
        assert!(r.out.contains(want), "missing {want:?} in\n{}", r.out);
    }

    let r = tug(s, &["describe", "rs"]).await;
    assert!(
        r.out.contains("Controlled By:  Deployment/web\n"),
        "{}",
        r.out
    );
    assert!(
        r.out
            .contains("Pods Status:    1 Running / 0 Waiting / 0 Succeeded / 0 Failed\n"),
        "{}",
        r.out
    );
    assert!(r.out.contains("SuccessfulCreate"), "{}", r.out);

    let r = eventually(s, &["describe", "svc", "web"], |r| {
        r.out.contains("10.244.0.9:80")
    })
    .await;
    assert!(r.out.contains("Selector:          app=web\n"), "{}", r.out);
    assert!(
        r.out.contains("Port:              http  80/TCP\n"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("Endpoints:         10.244.0.9:80\n"),
        "{}",
        r.out
    );

    let r = tug(s, &["describe", "node", "n1"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("Unschedulable:      false\n"), "{}", r.out);
    assert!(r.out.contains("Non-terminated Pods:"), "{}", r.out);
    assert!(r.out.contains(&pod), "{}", r.out);

    let r = tug(s, &["describe", "job", "once"]).await;
    assert!(r.out.contains("Pods Statuses:"), "{}", r.out);
    assert!(
        r.out.contains("      echo\n      hi\n") || r.out.contains("echo"),
        "{}",
        r.out
    );

    let r = tug(s, &["describe", "cm", "settings"]).await;
    assert!(r.out.contains("Name:         settings\n"), "{}", r.out);
    assert!(
        r.out.contains("Data:\n  Color:  blue\n") || r.out.contains("color"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("Events:       <none>\n") || r.out.contains("Events:  <none>"),
        "{}",
        r.out
    );

    // Errors: a missing object, an unknown kind, no kind at all.
    let r = tug(s, &["describe", "pod", "ghost"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("NotFound") && r.err.contains("\"ghost\""),
        "{}",
        r.err
    );
    let r = tug(s, &["describe", "gizmo", "x"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("doesn't have a resource type \"gizmo\""),
        "{}",
        r.err
    );
    let r = tug(s, &["describe"]).await;
    assert_eq!(r.code, 1);
    let r = tug(s, &["describe", "pods", "-l", "app=none"]).await;
    assert_eq!(
        (r.code, r.err.as_str()),
        (0, "No resources found in default namespace.\n")
    );
    c.shutdown().await;
}
