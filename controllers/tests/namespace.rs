//! The namespace controller against an in-process apiserver: deleting a namespace
//! removes everything in it, then the namespace.

mod harness;

use harness::{eventually, Cluster};
use serde_json::json;
use tug_client::{Api, ApiResource, Client, DeleteParams, DynamicApi, ListParams};
use tug_controllers::{namespace, Options};
use tug_proto::core::v1::Namespace;
use tug_proto::ObjectMeta;

async fn start() -> Cluster {
    Cluster::start_with(Options::default(), namespace::run).await
}

fn api(client: &Client, group: &str, kind: &str, plural: &str) -> DynamicApi {
    DynamicApi::dynamic(
        client.clone(),
        ApiResource::new(group, "v1", kind, plural, true),
        Some("team"),
    )
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_contents_then_the_namespace() {
    let env = start().await;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let ns = Namespace {
        metadata: ObjectMeta::named("team"),
        ..Default::default()
    };
    namespaces
        .create(&ns.with_type_meta())
        .await
        .expect("namespace");

    let configmaps = api(&env.client, "", "ConfigMap", "configmaps");
    let pods = api(&env.client, "", "Pod", "pods");
    let deployments = api(&env.client, "apps", "Deployment", "deployments");
    configmaps
        .create(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                        "data": {"k": "v"}}),
        )
        .await
        .expect("configmap");
    deployments
        .create(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "web"}]}}}}),
        )
        .await
        .expect("deployment");
    for (name, node) in [("loose", None), ("bound", Some("gone-node"))] {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "web"}]}});
        if let Some(node) = node {
            pod["spec"]["nodeName"] = json!(node);
        }
        pods.create(&pod).await.expect("pod");
    }

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .expect("delete namespace");
    // While it still exists it is Terminating.
    if let Some(ns) = namespaces.get_opt("team").await.unwrap() {
        assert!(ns.metadata.deletion_timestamp.is_some());
        assert_eq!(
            ns.status.and_then(|s| s.phase).as_deref(),
            Some("Terminating")
        );
    }
    // The bound pod has no agent to confirm its stop: it is force-deleted after its
    // grace period.
    eventually("the namespace to go", || async {
        namespaces
            .get_opt("team")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    for api in [&configmaps, &pods, &deployments] {
        let left = api.list(&ListParams::default()).await.unwrap().items;
        assert!(left.is_empty(), "{left:?}");
    }
}
