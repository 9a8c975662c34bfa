//! Label and field selectors, and paging with limit + continue.

use serde_json::json;

use crate::{env, labeled_pod, names, pod};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_field_selectors_filter_lists() {
    let env = env().await;
    let c = env.server.client();
    let pods = "/api/v1/namespaces/default/pods";
    c.post(pods, &labeled_pod("a", json!({"app": "web", "tier": "fe"})))
        .await;
    c.post(pods, &labeled_pod("b", json!({"app": "web", "tier": "be"})))
        .await;
    c.post(pods, &labeled_pod("c", json!({"app": "db"}))).await;
    let mut bound = pod("d");
    bound["spec"]["nodeName"] = json!("node1");
    c.post(pods, &bound).await;

    let cases = [
        ("labelSelector=app%3Dweb", vec!["a", "b"]),
        ("labelSelector=app%3Dweb,tier!%3Dfe", vec!["b"]),
        ("labelSelector=tier", vec!["a", "b"]),
        ("labelSelector=!tier", vec!["c", "d"]),
        ("labelSelector=app%20in%20(db,web)", vec!["a", "b", "c"]),
        ("fieldSelector=metadata.name%3Dc", vec!["c"]),
        ("fieldSelector=spec.nodeName%3Dnode1", vec!["d"]),
        ("fieldSelector=spec.nodeName%3D", vec!["a", "b", "c"]),
        (
            "fieldSelector=status.phase%3DPending",
            vec!["a", "b", "c", "d"],
        ),
        (
            "fieldSelector=metadata.namespace%3Ddefault&labelSelector=app%3Ddb",
            vec!["c"],
        ),
    ];
    for (query, want) in cases {
        let (code, list) = c.get(&format!("{pods}?{query}")).await;
        assert_eq!(code, 200, "{query}: {list}");
        assert_eq!(names(&list), want, "{query}");
    }

    let (code, status) = c.get(&format!("{pods}?fieldSelector=spec.foo%3Dbar")).await;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"].as_str().unwrap().contains("spec.foo"),
        "{status}"
    );
    let (code, _) = c.get(&format!("{pods}?labelSelector=a%20in%20(")).await;
    assert_eq!(code, 400);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_continue_page_through_a_collection() {
    let env = env().await;
    let c = env.server.client();
    let cms = "/api/v1/namespaces/default/configmaps";
    for i in 0..7 {
        let (code, body) = c.post(cms, &crate::configmap(&format!("cm-{i}"))).await;
        assert_eq!(code, 201, "{body}");
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            None => format!("{cms}?limit=3"),
            Some(t) => format!("{cms}?limit=3&continue={t}"),
        };
        let (code, page) = c.get(&path).await;
        assert_eq!(code, 200, "{page}");
        pages += 1;
        let got = names(&page);
        assert!(got.len() <= 3);
        seen.extend(got);
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..7).map(|i| format!("cm-{i}")).collect();
    assert_eq!(seen, want);

    // With a selector the limit counts matching objects.
    let (_, page) = c
        .get(&format!(
            "{cms}?limit=2&fieldSelector=metadata.name!%3Dcm-0"
        ))
        .await;
    assert_eq!(names(&page), ["cm-1", "cm-2"]);

    let (code, status) = c.get(&format!("{cms}?limit=2&continue=garbage")).await;
    assert_eq!(code, 400, "{status}");
    env.done().await;
}
