//! `tug events`.

use crate::support::{tug, write};

fn event(
    name: &str,
    ns: &str,
    kind: &str,
    obj: &str,
    ty: &str,
    reason: &str,
    ago_s: i64,
) -> String {
    let t = (chrono::Utc::now() - chrono::Duration::seconds(ago_s))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!(
        "apiVersion: v1\nkind: Event\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         involvedObject: {{kind: {kind}, name: {obj}, namespace: {ns}}}\n\
         type: {ty}\nreason: {reason}\nmessage: {reason} happened\n\
         firstTimestamp: '{t}'\nlastTimestamp: '{t}'\ncount: 1\nsource: {{component: test}}\n---\n"
    )
}

#[tokio::test]
async fn events_are_listed_oldest_first_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let c = crate::support::cluster(dir.path(), false).await;
    let s = &c.server;
    assert_eq!(tug(s, &["create", "ns", "ev"]).await.code, 0);
    assert_eq!(tug(s, &["create", "ns", "other"]).await.code, 0);
    let r = tug(s, &["events", "-n", "ev"]).await;
    assert_eq!(
        (r.code, r.err.as_str()),
        (0, "No events found in ev namespace.\n")
    );

    let text = [
        event("e1", "ev", "Pod", "a", "Normal", "Pulled", 30),
        event("e2", "ev", "Pod", "b", "Warning", "BackOff", 300),
        event(
            "e3",
            "ev",
            "Deployment",
            "web",
            "Normal",
            "ScalingReplicaSet",
            5,
        ),
        event("e4", "other", "Pod", "z", "Normal", "Started", 10),
    ]
    .concat();
    let file = write(dir.path(), "events.yaml", &text);
    let r = tug(s, &["apply", "-f", &file]).await;
    assert_eq!(r.code, 0, "{}", r.err);

    let r = tug(s, &["events", "-n", "ev"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    let lines: Vec<&str> = r.out.lines().collect();
    let header: Vec<&str> = lines[0]
        .split("   ")
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .collect();
    assert_eq!(header, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    assert_eq!(lines.len(), 4, "{}", r.out);
    assert!(
        lines[1].contains("Warning")
            && lines[1].contains("Pod/b")
            && lines[1].contains("BackOff happened"),
        "{}",
        r.out
    );
    assert!(lines[2].contains("Pod/a"), "{}", r.out);
    assert!(lines[3].contains("Deployment/web"), "{}", r.out);

    let r = tug(s, &["events", "-n", "ev", "--for", "pod/a"]).await;
    assert_eq!(r.out.lines().count(), 2, "{}", r.out);
    assert!(r.out.contains("Pulled"), "{}", r.out);
    let r = tug(s, &["events", "-n", "ev", "--types", "Warning"]).await;
    assert_eq!(r.out.lines().count(), 2, "{}", r.out);
    assert!(r.out.contains("BackOff"), "{}", r.out);

    let r = tug(s, &["events", "-A", "--for", "pod/z"]).await;
    assert!(r.out.starts_with("NAMESPACE "), "{}", r.out);
    assert!(
        r.out.lines().nth(1).unwrap().starts_with("other "),
        "{}",
        r.out
    );

    let r = tug(s, &["events", "--for", "pod"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("KIND/NAME"), "{}", r.err);
    let r = tug(s, &["events", "--for", "gizmo/x"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("gizmo"), "{}", r.err);
    let r = tug(s, &["events", "--types", "Bad"]).await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("Normal or Warning"), "{}", r.err);
    c.shutdown().await;
}

#[tokio::test]
async fn events_watch_prints_new_events_as_they_happen() {
    let dir = tempfile::tempdir().unwrap();
    let c = crate::support::cluster(dir.path(), false).await;
    let s = &c.server;
    assert_eq!(tug(s, &["create", "ns", "ev"]).await.code, 0);
    let later = write(
        dir.path(),
        "later.yaml",
        &event("late", "ev", "Pod", "p", "Warning", "Failed", 0),
    );
    let kubeconfig = s.kubeconfig.to_string_lossy().into_owned();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let watch = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tug_ctl::run(
            [
                "tug",
                "--kubeconfig",
                &kubeconfig,
                "-n",
                "ev",
                "events",
                "-w",
            ],
            &mut out,
            &mut err,
        ),
    );
    let change = async {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        tug(s, &["apply", "-f", &later]).await
    };
    let (watched, applied) = tokio::join!(watch, change);
    assert!(
        watched.is_err(),
        "events -w ended: {}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(applied.code, 0, "{}", applied.err);
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("LAST SEEN "), "{out}");
    assert!(lines[1].contains("Failed happened"), "{out}");
    c.shutdown().await;
}
