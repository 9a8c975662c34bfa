//! Watch: initial state, live events, resumption, 410 past the retained history,
//! selector transitions, bookmarks, the legacy /watch/ prefix and timeoutSeconds.

use std::time::Duration;

use serde_json::json;
use tug_apiserver::testing::TestOptions;

use crate::{configmap, env, env_with, labeled_pod, rv};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sends_current_objects_then_every_change() {
    let env = env().await;
    let c = env.server.client();
    let cms = "/api/v1/namespaces/default/configmaps";
    c.post(cms, &configmap("before")).await;

    let mut w = c.watch(&format!("{cms}?watch=true")).await;
    let ev = w.next_change(WAIT).await.expect("initial ADDED");
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "before");

    let (_, created) = c.post(cms, &configmap("live")).await;
    let ev = w.next_change(WAIT).await.expect("ADDED");
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "live");
    assert_eq!(rv(&ev["object"]), rv(&created));

    let (_, patched) = c
        .patch(
            &format!("{cms}/live"),
            "application/merge-patch+json",
            &json!({"data": {"k": "2"}}),
        )
        .await;
    let ev = w.next_change(WAIT).await.expect("MODIFIED");
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(ev["object"]["data"]["k"], "2");
    assert_eq!(rv(&ev["object"]), rv(&patched));

    let (_, deleted) = c.delete(&format!("{cms}/live")).await;
    let ev = w.next_change(WAIT).await.expect("DELETED");
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["metadata"]["name"], "live");
    assert_eq!(rv(&ev["object"]), rv(&deleted));
    drop(w);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumes_after_a_resource_version() {
    let env = env().await;
    let c = env.server.client();
    let cms = "/api/v1/namespaces/default/configmaps";
    let (_, a) = c.post(cms, &configmap("a")).await;
    c.post(cms, &configmap("b")).await;
    c.delete(&format!("{cms}/a")).await;

    let mut w = c
        .watch(&format!("{cms}?watch=1&resourceVersion={}", rv(&a)))
        .await;
    let ev = w.next_change(WAIT).await.unwrap();
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("b"))
    );
    let ev = w.next_change(WAIT).await.unwrap();
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("a"))
    );
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_older_than_the_retained_history_is_410_gone() {
    let env = env_with(TestOptions {
        history_limit: 5,
        ..TestOptions::default()
    })
    .await;
    let c = env.server.client();
    let cms = "/api/v1/namespaces/default/configmaps";
    for i in 0..20 {
        c.post(cms, &configmap(&format!("cm-{i}"))).await;
    }
    let resp = match c
        .try_watch(&format!("{cms}?watch=true&resourceVersion=1"))
        .await
    {
        Ok(_) => panic!("a watch from revision 1 must fail after compaction"),
        Err(resp) => resp,
    };
    assert_eq!(resp.status, 410, "{}", resp.text());
    let status = resp.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Expired");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("too old resource version"));
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_entering_and_leaving_a_selector_are_added_and_deleted() {
    let env = env().await;
    let c = env.server.client();
    let pods = "/api/v1/namespaces/default/pods";
    let mut w = c
        .watch(&format!("{pods}?watch=true&labelSelector=app%3Dweb"))
        .await;
    c.post(pods, &labeled_pod("p", json!({"app": "db"}))).await;
    c.patch(
        &format!("{pods}/p"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"app": "web"}}}),
    )
    .await;
    let ev = w.next_change(WAIT).await.unwrap();
    assert_eq!(ev["type"], "ADDED", "{ev}");
    c.patch(
        &format!("{pods}/p"),
        "application/merge-patch+json",
        &json!({"metadata": {"labels": {"app": "db"}}}),
    )
    .await;
    let ev = w.next_change(WAIT).await.unwrap();
    assert_eq!(ev["type"], "DELETED", "{ev}");
    assert_eq!(ev["object"]["metadata"]["name"], "p");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watches_that_ask_for_bookmarks_get_them() {
    let env = env().await;
    let c = env.server.client();
    let cms = "/api/v1/namespaces/default/configmaps";
    let (_, created) = c.post(cms, &configmap("a")).await;
    let mut w = c
        .watch(&format!(
            "{cms}?watch=true&allowWatchBookmarks=true&resourceVersion={}",
            rv(&created)
        ))
        .await;
    let ev = w.next(WAIT).await.expect("a bookmark");
    assert_eq!(ev["type"], "BOOKMARK", "{ev}");
    assert_eq!(ev["object"]["kind"], "ConfigMap");
    assert!(rv(&ev["object"]) >= rv(&created));
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_watch_prefix_and_timeout_seconds_work() {
    let env = env().await;
    let c = env.server.client();
    c.post("/api/v1/namespaces/default/configmaps", &configmap("a"))
        .await;
    let mut w = c
        .watch("/api/v1/watch/namespaces/default/configmaps?timeoutSeconds=1")
        .await;
    let ev = w.next_change(WAIT).await.unwrap();
    assert_eq!(ev["type"], "ADDED");
    // The server ends the stream after timeoutSeconds.
    assert!(w.next_change(WAIT).await.is_none());

    // A single object by name through the legacy path.
    c.post("/api/v1/namespaces/default/configmaps", &configmap("b"))
        .await;
    let mut w = c
        .watch("/api/v1/watch/namespaces/default/configmaps/b")
        .await;
    let ev = w.next_change(WAIT).await.unwrap();
    assert_eq!(ev["object"]["metadata"]["name"], "b");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_can_be_tables() {
    let env = env().await;
    let c = env.server.client();
    c.post("/api/v1/namespaces/default/pods", &crate::pod("p"))
        .await;
    let (parts_ok, resp) = {
        let r = c
            .request(
                "GET",
                "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1",
                &[(
                    "accept",
                    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
                )],
                Vec::new(),
            )
            .await
            .unwrap();
        (r.status == 200, r.text())
    };
    assert!(parts_ok, "{resp}");
    let first: serde_json::Value = serde_json::from_str(resp.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["kind"], "Table", "{first}");
    assert_eq!(first["object"]["rows"].as_array().unwrap().len(), 1);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_started_during_writes_reports_each_object_added_once() {
    let env = env().await;
    let c = env.server.client();
    let cms = "/api/v1/namespaces/default/configmaps";
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                c.post(cms, &configmap(&format!("cm-{i}"))).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut w = c.watch(&format!("{cms}?watch=true")).await;
    writer.await.unwrap();
    let mut added = std::collections::BTreeMap::new();
    while let Some(ev) = w.next_change(Duration::from_secs(2)).await {
        assert_eq!(ev["type"], "ADDED", "{ev}");
        *added
            .entry(
                ev["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
            .or_insert(0) += 1;
    }
    assert_eq!(added.len(), 40, "{added:?}");
    assert!(added.values().all(|n| *n == 1), "duplicates: {added:?}");
    env.done().await;
}
