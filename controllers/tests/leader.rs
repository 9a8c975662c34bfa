//! Two controller managers on one apiserver: only the Lease holder acts, and the other
//! takes over when it goes away.

mod harness;

use harness::{eventually, selector, template};
use std::time::Duration;
use tug_client::{Api, Client, LeaseTiming};
use tug_proto::apps::v1::{ReplicaSet, ReplicaSetSpec};
use tug_proto::coordination::v1::Lease;
use tug_proto::core::v1::Pod;
use tug_proto::ObjectMeta;

fn manager(client: &Client, id: &str) -> tug_controllers::Config {
    let mut c = tug_controllers::Config::new(client.clone());
    c.identity = id.into();
    c.controllers = vec!["replicaset".into()];
    c.lease_timing = LeaseTiming {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(200),
    };
    c
}

async fn holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    leases
        .get("tug-controllers")
        .await
        .ok()?
        .spec?
        .holder_identity
}

#[tokio::test]
async fn only_the_leader_runs_controllers_and_a_standby_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let server = tug_apiserver::testing::single(dir.path()).await;
    let config = tug_client::Config::from_kubeconfig_file(&server.kubeconfig).unwrap();
    let client = Client::new(config).unwrap();
    let a = tokio::spawn(tug_controllers::run(manager(&client, "a")));
    let leader = eventually("a leader", || async { holder(&client).await }).await;
    assert_eq!(leader, "a");
    let b = tokio::spawn(tug_controllers::run(manager(&client, "b")));

    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rs = ReplicaSet {
        metadata: ObjectMeta::named("ha"),
        spec: Some(ReplicaSetSpec {
            replicas: Some(3),
            selector: Some(selector("ha")),
            template: template("ha", "img:v1"),
            ..Default::default()
        }),
        ..Default::default()
    }
    .with_type_meta();
    rs_api.create(&rs).await.unwrap();
    let count = || async {
        pods.list(&tug_client::ListParams::default().labels("app=ha"))
            .await
            .map(|l| l.items.len())
            .unwrap_or(0)
    };
    eventually("3 pods", || async { (count().await == 3).then_some(()) }).await;

    // The leader goes away without releasing: the standby waits for expiry, then acts.
    a.abort();
    let _ = a.await;
    let leader = eventually("b leads", || async {
        holder(&client).await.filter(|h| h == "b")
    })
    .await;
    assert_eq!(leader, "b");
    harness::retry_conflicts(|| rs_api.scale("ha", 5))
        .await
        .unwrap();
    eventually("5 pods under the new leader", || async {
        (count().await == 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count().await, 5, "two leaders would over-create");
    b.abort();
    let _ = b.await;
    server.shutdown().await;
}
