//! The typed client, watch, informer and work queue against a real in-process apiserver.

use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tug_client::{
    controller, watcher, Action, Api, ApiResource, Config, Controller, DeleteParams, Deleted,
    DynamicApi, Informer, ListParams, ObjectKey, PatchKind, WorkQueue,
};
use tug_proto::core::v1::ConfigMap;
use tug_proto::ObjectMeta;

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    let mut cm = ConfigMap {
        metadata: ObjectMeta::named(name),
        data: data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    };
    cm.metadata.labels.insert("app".into(), "test".into());
    cm.with_type_meta()
}

async fn client_for(server: &tug_apiserver::testing::TestServer) -> tug_client::Client {
    let config = Config::from_kubeconfig_file(&server.kubeconfig).expect("kubeconfig");
    tug_client::Client::new(config).expect("client")
}

/// Polls `check` until it holds; fails the test after a generous deadline.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..600 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn typed_crud_with_kubernetes_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = tug_apiserver::testing::single(dir.path()).await;
    let client = client_for(&server).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let created = api.create(&config_map("a", &[("k", "v1")])).await.unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    let rv1 = created.metadata.resource_version.clone().unwrap();

    let err = api.create(&config_map("a", &[])).await.unwrap_err();
    assert!(err.is_already_exists(), "{err}");

    let mut got = api.get("a").await.unwrap();
    assert_eq!(got.data["k"], "v1");
    got.data.insert("k".into(), "v2".into());
    let replaced = api.replace("a", &got).await.unwrap();
    assert_ne!(
        replaced.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );

    // The stale resourceVersion loses.
    let err = api.replace("a", &got).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");

    let patched = api
        .patch(
            "a",
            PatchKind::Merge,
            &serde_json::json!({"data": {"extra": "x"}}),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["extra"], "x");
    let patched = api
        .patch(
            "a",
            PatchKind::Json,
            &serde_json::json!([{"op": "remove", "path": "/data/extra"}]),
        )
        .await
        .unwrap();
    assert!(!patched.data.contains_key("extra"));

    api.create(&config_map("b", &[])).await.unwrap();
    let list = api
        .list(&ListParams::default().labels("app=test"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let all = api.list_all(&ListParams::default().limit(1)).await.unwrap();
    assert!(all.items.len() >= 2);

    let err = api.get("missing").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.code(), Some(404));
    assert!(api.get_opt("missing").await.unwrap().is_none());

    match api.delete("a", &DeleteParams::default()).await.unwrap() {
        Deleted::Object(_) | Deleted::Status(_) => {}
    }
    assert!(api.get("a").await.unwrap_err().is_not_found());
    api.delete_collection(
        &ListParams::default().labels("app=test"),
        &DeleteParams::default(),
    )
    .await
    .unwrap();
    assert!(api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());

    // The dynamic API sees the same collection.
    let dynamic = DynamicApi::dynamic(
        client.clone(),
        ApiResource::new("", "v1", "ConfigMap", "configmaps", true),
        Some("default"),
    );
    dynamic
        .create(&serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dyn"}}))
        .await
        .unwrap();
    assert_eq!(api.get("dyn").await.unwrap().metadata.name(), "dyn");

    // Raw GET for discovery.
    let body = client.raw_get("/api/v1", None).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["kind"], "APIResourceList");

    server.shutdown().await;
}

#[tokio::test]
async fn bearer_tokens_authenticate_without_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = tug_apiserver::testing::single(dir.path()).await;
    let mut config = Config::new(server.url.parse().unwrap());
    config.ca_pem = Some(server.ca_pem.as_bytes().to_vec());
    config.token = Some(server.token.clone());
    let api: Api<ConfigMap> =
        Api::namespaced(tug_client::Client::new(config.clone()).unwrap(), "default");
    api.list(&ListParams::default()).await.unwrap();

    config.token = Some("wrong".into());
    let api: Api<ConfigMap> = Api::namespaced(tug_client::Client::new(config).unwrap(), "default");
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn watch_streams_changes_after_a_resource_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = tug_apiserver::testing::single(dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(client_for(&server).await, "default");
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut events = api.watch(&ListParams::default(), &rv).await.unwrap();

    api.create(&config_map("w", &[])).await.unwrap();
    api.patch(
        "w",
        PatchKind::Merge,
        &serde_json::json!({"data": {"a": "b"}}),
    )
    .await
    .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("watch event in time")
            .expect("stream open")
            .expect("event");
        if ev.type_ == "BOOKMARK" {
            continue;
        }
        seen.push((ev.type_, ev.object.metadata.name.clone().unwrap()));
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED".to_string(), "w".to_string()),
            ("MODIFIED".to_string(), "w".to_string()),
            ("DELETED".to_string(), "w".to_string())
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tug_apiserver::testing::TestOptions {
        history_limit: 5,
        ..Default::default()
    };
    let server = tug_apiserver::testing::single_with(dir.path(), opts).await;
    let api: Api<ConfigMap> = Api::namespaced(client_for(&server).await, "default");
    let first = api.create(&config_map("old", &[])).await.unwrap();
    for i in 0..20 {
        api.create(&config_map(&format!("n{i}"), &[]))
            .await
            .unwrap();
    }
    let rv = first.metadata.resource_version.unwrap();
    let gone = match api.watch(&ListParams::default(), &rv).await {
        Err(e) => e.is_gone(),
        Ok(mut stream) => {
            let ev = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .expect("an answer in time")
                .expect("one item");
            ev.unwrap_err().is_gone()
        }
    };
    assert!(
        gone,
        "a watch from a compacted resourceVersion must be 410 Gone"
    );

    // The watcher gets past it by listing: it starts with Restarted(all objects).
    let mut events = Box::pin(watcher(api.clone(), watcher::Config::default()));
    let first = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        watcher::Event::Restarted(all) => assert_eq!(all.len(), 21),
        other => panic!("expected Restarted, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_informer_feeds_the_cache_and_the_queue_drives_reconcile() {
    let dir = tempfile::tempdir().unwrap();
    let server = tug_apiserver::testing::single(dir.path()).await;
    let client = client_for(&server).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&config_map("pre", &[("want", "1")]))
        .await
        .unwrap();

    let queue: WorkQueue<ObjectKey> = WorkQueue::default();
    let mut informer = Informer::new(api.clone(), watcher::Config::default().labels("app=test"));
    informer.enqueue_into(queue.clone());
    let store = informer.store();
    let informer_task = informer.spawn();

    // Reconcile: copy `data.want` into the `seen` label (through the API), and remember
    // which keys were found missing (deleted).
    let deleted: Arc<Mutex<Vec<ObjectKey>>> = Arc::default();
    let runner = {
        let (store, api, deleted) = (store.clone(), api.clone(), deleted.clone());
        tokio::spawn(controller::run(
            queue.clone(),
            move |key: ObjectKey| {
                let (store, api, deleted) = (store.clone(), api.clone(), deleted.clone());
                async move {
                    let Some(cm) = store.get_key(&key) else {
                        deleted.lock().unwrap().push(key);
                        return Ok::<_, tug_client::Error>(Action::AwaitChange);
                    };
                    let want = cm.data.get("want").cloned().unwrap_or_default();
                    if cm.metadata.labels.get("seen") != Some(&want) {
                        let patch = serde_json::json!({"metadata": {"labels": {"seen": want}}});
                        api.patch(&key.name, PatchKind::Merge, &patch).await?;
                    }
                    Ok(Action::AwaitChange)
                }
            },
            2,
        ))
    };

    store.wait_until_ready().await;
    api.create(&config_map("new", &[("want", "2")]))
        .await
        .unwrap();
    let labelled = |name: &str, want: &str| {
        store
            .get("default", name)
            .is_some_and(|cm| cm.metadata.labels.get("seen").map(String::as_str) == Some(want))
    };
    eventually("pre and new reconciled", || {
        labelled("pre", "1") && labelled("new", "2")
    })
    .await;

    api.patch(
        "new",
        PatchKind::Merge,
        &serde_json::json!({"data": {"want": "3"}}),
    )
    .await
    .unwrap();
    eventually("new re-reconciled after a change", || labelled("new", "3")).await;

    api.delete("pre", &DeleteParams::default()).await.unwrap();
    eventually("the deletion reached reconcile", || {
        deleted
            .lock()
            .unwrap()
            .contains(&ObjectKey::new("default", "pre"))
    })
    .await;
    assert!(store.get("default", "pre").is_none());

    queue.shutdown();
    runner.await.unwrap();
    informer_task.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn a_controller_reconciles_the_owner_when_an_owned_object_changes() {
    use tug_proto::core::v1::Secret;
    use tug_proto::meta::v1::OwnerReference;

    let dir = tempfile::tempdir().unwrap();
    let server = tug_apiserver::testing::single(dir.path()).await;
    let client = client_for(&server).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let owner = cms.create(&config_map("owner", &[])).await.unwrap();

    let mut controller = Controller::new(cms.clone(), watcher::Config::default());
    let owned = controller.owns(secrets.clone(), watcher::Config::default());
    let queue = controller.queue();
    // Reconcile records how many owned secrets each key had in the cache at the time.
    let seen: Arc<Mutex<Vec<(ObjectKey, usize)>>> = Arc::default();
    let runner = {
        let seen = seen.clone();
        tokio::spawn(controller.run(
            move |key: ObjectKey| {
                let (owned, seen) = (owned.clone(), seen.clone());
                async move {
                    let n = owned
                        .list_by_namespace(&key.namespace)
                        .iter()
                        .filter(|s| {
                            s.metadata
                                .controller_ref()
                                .is_some_and(|r| r.name == key.name)
                        })
                        .count();
                    seen.lock().unwrap().push((key, n));
                    Ok::<_, std::convert::Infallible>(Action::AwaitChange)
                }
            },
            1,
        ))
    };

    let key = ObjectKey::new("default", "owner");
    eventually("the initial reconcile of the owner", || {
        seen.lock().unwrap().contains(&(key.clone(), 0))
    })
    .await;

    let mut secret = Secret {
        metadata: ObjectMeta::named("child"),
        ..Default::default()
    }
    .with_type_meta();
    secret.metadata.owner_references.push(OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().unwrap(),
        controller: Some(true),
        block_owner_deletion: None,
    });
    secrets.create(&secret).await.unwrap();
    eventually("the owner reconciled after its secret appeared", || {
        seen.lock().unwrap().contains(&(key.clone(), 1))
    })
    .await;

    queue.shutdown();
    runner.await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn subresources_scale_bind_and_status() {
    use tug_proto::apps::v1::Deployment;
    use tug_proto::core::v1::Pod;

    let dir = tempfile::tempdir().unwrap();
    let server = tug_apiserver::testing::single(dir.path()).await;
    let client = client_for(&server).await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    }))
    .unwrap();
    deployments.create(&d).await.unwrap();
    let scale = deployments.scale("web", 4).await.unwrap();
    assert_eq!(scale["spec"]["replicas"], 4);
    assert_eq!(
        deployments.get_scale("web").await.unwrap()["spec"]["replicas"],
        4
    );
    assert_eq!(
        deployments.get("web").await.unwrap().spec.unwrap().replicas,
        Some(4)
    );

    // Strategic merge patch merges containers by name instead of replacing the list.
    let patched = deployments
        .patch(
            "web",
            PatchKind::Strategic,
            &serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}),
        )
        .await
        .unwrap();
    let containers = &patched.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].image.as_deref(), Some("nginx:2"));

    // Status goes through its own subresource.
    let st = deployments
        .patch_status(
            "web",
            PatchKind::Merge,
            &serde_json::json!({"status": {"replicas": 4, "readyReplicas": 2}}),
        )
        .await
        .unwrap();
    assert_eq!(st.status.clone().unwrap().ready_replicas, 2);
    let mut current = deployments.get("web").await.unwrap();
    current.status.as_mut().unwrap().ready_replicas = 4;
    let replaced = deployments.replace_status("web", &current).await.unwrap();
    assert_eq!(replaced.status.unwrap().ready_replicas, 4);

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    }))
    .unwrap();
    pods.create(&pod).await.unwrap();
    pods.bind("p", "node-1").await.unwrap();
    assert_eq!(
        pods.get("p")
            .await
            .unwrap()
            .spec
            .unwrap()
            .node_name
            .as_deref(),
        Some("node-1")
    );

    server.shutdown().await;
}
