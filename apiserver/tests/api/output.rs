//! Response shapes: Table for kubectl get, PartialObjectMetadata, discovery, metrics.

use serde_json::Value;

use crate::{env, pod};

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_receives_tables() {
    let env = env().await;
    let c = env.server.client();
    c.post("/api/v1/namespaces/default/pods", &pod("a")).await;
    c.post("/api/v1/namespaces/default/pods", &pod("b")).await;
    let get = |path: &'static str| {
        let c = c.clone();
        async move {
            let r = c
                .request("GET", path, &[("accept", TABLE)], Vec::new())
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()
        }
    };
    let table = get("/api/v1/namespaces/default/pods").await;
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert!(table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "Name"));
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(rows[0]["object"]["metadata"]["name"], "a");
    assert!(table["metadata"]["resourceVersion"].is_string());

    let one = get("/api/v1/namespaces/default/pods/b").await;
    assert_eq!(one["kind"], "Table");
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);

    let full = get("/api/v1/namespaces/default/pods?includeObject=Object").await;
    assert_eq!(full["rows"][0]["object"]["kind"], "Pod");
    let none = get("/api/v1/namespaces/default/pods?includeObject=None").await;
    assert!(none["rows"][0].get("object").is_none());
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_only_clients_get_partial_object_metadata() {
    let env = env().await;
    let c = env.server.client();
    c.post("/api/v1/namespaces/default/pods", &pod("a")).await;
    let r = c
        .request(
            "GET",
            "/api/v1/namespaces/default/pods",
            &[(
                "accept",
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            )],
            Vec::new(),
        )
        .await
        .unwrap();
    let list = r.json();
    assert_eq!(list["kind"], "PartialObjectMetadataList", "{list}");
    assert_eq!(list["items"][0]["metadata"]["name"], "a");
    assert!(list["items"][0].get("spec").is_none());
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_metrics_are_served() {
    let env = env().await;
    let c = env.server.client();
    let (code, api) = c.get("/api").await;
    assert_eq!(code, 200);
    assert_eq!(api["kind"], "APIVersions");
    let (code, apis) = c.get("/apis").await;
    assert_eq!(code, 200);
    assert_eq!(apis["kind"], "APIGroupList");
    let (code, v1) = c.get("/api/v1").await;
    assert_eq!(code, 200, "{v1}");
    let (code, _) = c.get("/apis/nope.example.com/v1").await;
    assert_eq!(code, 404);

    // kubectl asks for aggregated discovery first.
    let r = c
        .request(
            "GET",
            "/apis",
            &[("accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .contains("as=APIGroupDiscoveryList"));
    assert_eq!(r.json()["kind"], "APIGroupDiscoveryList");
    // kubectl apply downloads the OpenAPI document before validating.
    let r = c
        .request(
            "GET",
            "/openapi/v2",
            &[(
                "accept",
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            )],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    c.get("/api/v1/namespaces/default/pods").await;
    let r = c.request("GET", "/metrics", &[], Vec::new()).await.unwrap();
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.contains("apiserver_request_total{verb=\"list\",resource=\"pods\",code=\"200\"}"),
        "{text}"
    );
    assert!(text.contains("tug_store_revision"));
    assert!(text.contains("tug_raft_term"));
    let _: Value = Value::Null;
    env.done().await;
}
