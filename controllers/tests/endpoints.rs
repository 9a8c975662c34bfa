//! The endpoints controller against an in-process apiserver; the test plays the
//! kubelet by writing pod IPs and readiness.

mod harness;

use harness::{eventually, Cluster};
use tug_client::{Api, DeleteParams, PatchKind};
use tug_controllers::{endpoints, Options};
use tug_proto::core::v1::{
    Container, ContainerPort, EndpointAddress, EndpointSubset, Endpoints, Pod, PodSpec, Service,
    ServicePort, ServiceSpec,
};
use tug_proto::{IntOrString, ObjectMeta, Time};

async fn start() -> Cluster {
    Cluster::start_with(Options::default(), endpoints::run).await
}

fn service(name: &str, selector: Option<&str>) -> Service {
    Service {
        metadata: ObjectMeta::named(name),
        spec: Some(ServiceSpec {
            selector: selector
                .map(|app| [("app".to_string(), app.to_string())].into())
                .unwrap_or_default(),
            ports: vec![ServicePort {
                name: Some("web".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .with_type_meta()
}

fn pod(name: &str, port: i32) -> Pod {
    Pod {
        metadata: ObjectMeta {
            labels: [("app".to_string(), "web".to_string())].into(),
            ..ObjectMeta::named(name)
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("web".into()),
                ports: vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: port,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .with_type_meta()
}

/// Plays kubelet: Running with an IP, Ready or not.
async fn report(api: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let patch = serde_json::json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                        "lastTransitionTime": Time::now()}],
    }});
    api.patch_status(name, PatchKind::Merge, &patch)
        .await
        .expect("pod status");
}

fn ips(a: &[EndpointAddress]) -> Vec<&str> {
    a.iter().map(|a| a.ip.as_str()).collect()
}

/// Waits until the Endpoints `name` has exactly these (ready, not ready) IPs.
async fn wait_for(
    api: &Api<Endpoints>,
    name: &str,
    ready: &[&str],
    not_ready: &[&str],
) -> Endpoints {
    eventually(
        &format!("{name}: ready {ready:?}, not ready {not_ready:?}"),
        || async {
            let ep = api.get_opt(name).await.ok()??;
            let all = |f: fn(&EndpointSubset) -> &Vec<EndpointAddress>| {
                let mut v: Vec<String> = ep
                    .subsets
                    .iter()
                    .flat_map(|s| ips(f(s)))
                    .map(str::to_string)
                    .collect();
                v.sort();
                v
            };
            (all(|s| &s.addresses) == ready && all(|s| &s.not_ready_addresses) == not_ready)
                .then_some(ep.clone())
        },
    )
    .await
}

#[tokio::test]
async fn endpoints_follow_pod_readiness_and_go_with_their_service() {
    let env = start().await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let services: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let eps: Api<Endpoints> = Api::namespaced(env.client.clone(), "default");

    services
        .create(&service("web", Some("web")))
        .await
        .expect("service");
    let empty = wait_for(&eps, "web", &[], &[]).await;
    assert!(empty.subsets.is_empty());

    let a = pods.create(&pod("a", 8080)).await.expect("pod a");
    pods.create(&pod("b", 8080)).await.expect("pod b");
    report(&pods, "a", "10.244.0.2", false).await;
    report(&pods, "b", "10.244.0.3", true).await;
    let ep = wait_for(&eps, "web", &["10.244.0.3"], &["10.244.0.2"]).await;
    assert_eq!(ep.subsets.len(), 1);
    let port = &ep.subsets[0].ports[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("web"), 8080, Some("TCP"))
    );
    let target = ep.subsets[0].not_ready_addresses[0]
        .target_ref
        .clone()
        .unwrap();
    assert_eq!(target.kind.as_deref(), Some("Pod"));
    assert_eq!(target.name.as_deref(), Some("a"));
    assert_eq!(target.uid, a.metadata.uid);

    // Ready now.
    report(&pods, "a", "10.244.0.2", true).await;
    wait_for(&eps, "web", &["10.244.0.2", "10.244.0.3"], &[]).await;

    // A pod whose named port is a different number gets its own subset.
    pods.create(&pod("c", 9090)).await.expect("pod c");
    report(&pods, "c", "10.244.0.4", true).await;
    let ep = wait_for(
        &eps,
        "web",
        &["10.244.0.2", "10.244.0.3", "10.244.0.4"],
        &[],
    )
    .await;
    assert_eq!(ep.subsets.len(), 2);

    // A pod that leaves (deleted, or relabelled) leaves the Endpoints.
    pods.delete("b", &DeleteParams::default())
        .await
        .expect("delete b");
    let relabel = serde_json::json!({"metadata": {"labels": {"app": "other"}}});
    pods.patch("c", PatchKind::Merge, &relabel)
        .await
        .expect("relabel c");
    wait_for(&eps, "web", &["10.244.0.2"], &[]).await;

    // Edits by hand are put back.
    let mut edited = eps.get("web").await.unwrap();
    edited.subsets.clear();
    eps.replace("web", &edited).await.expect("edit endpoints");
    wait_for(&eps, "web", &["10.244.0.2"], &[]).await;

    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete service");
    eventually("the Endpoints to go with the Service", || async {
        eps.get_opt("web").await.ok()?.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn endpoints_of_services_without_a_selector_are_left_to_their_author() {
    let env = start().await;
    let services: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let eps: Api<Endpoints> = Api::namespaced(env.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");

    services
        .create(&service("manual", None))
        .await
        .expect("service");
    let mine = Endpoints {
        metadata: ObjectMeta::named("manual"),
        subsets: vec![EndpointSubset {
            addresses: vec![EndpointAddress {
                ip: "192.0.2.10".into(),
                ..Default::default()
            }],
            ports: vec![tug_proto::core::v1::EndpointPort {
                name: Some("web".into()),
                port: 5432,
                protocol: Some("TCP".into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
    .with_type_meta();
    let created = eps.create(&mine).await.expect("endpoints");
    // Something the controller does see, so we know it has been running meanwhile.
    services
        .create(&service("web", Some("web")))
        .await
        .expect("service");
    pods.create(&pod("a", 8080)).await.expect("pod");
    report(&pods, "a", "10.244.0.2", true).await;
    wait_for(&eps, "web", &["10.244.0.2"], &[]).await;

    let now = eps.get("manual").await.expect("still there");
    assert_eq!(
        now.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(ips(&now.subsets[0].addresses), ["192.0.2.10"]);
}
