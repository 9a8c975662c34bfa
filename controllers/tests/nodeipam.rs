//! The node IPAM controller against an in-process apiserver: nodes get distinct
//! podCIDRs, set ones are kept, deleted nodes' blocks are reused, and a restarted
//! controller continues from the nodes it finds.

mod harness;

use harness::{eventually, Cluster};
use tug_client::{Api, DeleteParams};
use tug_controllers::{nodeipam, Context, Options};
use tug_proto::core::v1::{Node, NodeSpec};
use tug_proto::ObjectMeta;

fn node(name: &str, pod_cidr: Option<&str>) -> Node {
    Node {
        metadata: ObjectMeta::named(name),
        spec: Some(NodeSpec {
            pod_cidr: pod_cidr.map(str::to_string),
            pod_cidrs: pod_cidr.map(str::to_string).into_iter().collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
    .with_type_meta()
}

async fn cidr_of(api: &Api<Node>, name: &str) -> String {
    let what = format!("node {name} gets a podCIDR");
    eventually(&what, || async {
        let n = api.get_opt(name).await.ok().flatten()?;
        let spec = n.spec?;
        assert_eq!(
            spec.pod_cidrs.first(),
            spec.pod_cidr.as_ref(),
            "podCIDRs mirrors podCIDR"
        );
        spec.pod_cidr
    })
    .await
}

#[tokio::test]
async fn nodes_get_distinct_pod_cidrs_that_are_kept_released_and_survive_a_restart() {
    let cluster = Cluster::start_with(Options::default(), nodeipam::run).await;
    let api: Api<Node> = Api::all(cluster.client.clone());
    // A node registered with its own podCIDR keeps it and its block is taken.
    api.create(&node("fixed", Some("10.244.0.0/24")))
        .await
        .unwrap();
    for n in ["a", "b", "c"] {
        api.create(&node(n, None)).await.unwrap();
    }
    let mut got = Vec::new();
    for n in ["fixed", "a", "b", "c"] {
        got.push(cidr_of(&api, n).await);
    }
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "10.244.0.0/24",
            "10.244.1.0/24",
            "10.244.2.0/24",
            "10.244.3.0/24"
        ],
        "distinct blocks, none reused: {got:?}"
    );
    assert_eq!(got[0], "10.244.0.0/24");

    // Deleting a node releases its block.
    let b = got[2].clone();
    api.delete("b", &DeleteParams::default()).await.unwrap();
    eventually("b is gone", || async {
        api.get_opt("b")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    api.create(&node("d", None)).await.unwrap();
    assert_eq!(cidr_of(&api, "d").await, b);

    // A new controller (restart) starts from the nodes it finds.
    cluster.ctx.shutdown.cancel();
    let ctx = Context::new(cluster.client.clone(), Options::default());
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(nodeipam::run(ctx));
    api.create(&node("e", None)).await.unwrap();
    assert_eq!(cidr_of(&api, "e").await, "10.244.4.0/24");
    for n in ["fixed", "a", "c", "d"] {
        let before = got
            .iter()
            .zip(["fixed", "a", "b", "c"])
            .find(|(_, name)| *name == n)
            .map(|(c, _)| c.clone())
            .unwrap_or(b.clone());
        assert_eq!(cidr_of(&api, n).await, before, "{n} keeps its podCIDR");
    }
    shutdown.cancel();
}
