//! The endpoints controller: keeps an `Endpoints` object per selector Service listing
//! the IPs and resolved ports of the pods it selects, ready or not.

use crate::Context;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tug_client::{controller, Action, Api, DeleteParams, ObjectKey, Store, WorkQueue};
use tug_proto::core::v1::ServicePort;
use tug_proto::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use tug_proto::labels::Selector;
use tug_proto::{IntOrString, ObjectMeta};

/// Set on the Endpoints of a headless (`clusterIP: None`) Service, as Kubernetes does.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("endpoints {key}: {source}")]
    Api {
        key: ObjectKey,
        source: tug_client::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the endpoints controller until `ctx.shutdown` is cancelled.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: WorkQueue<ObjectKey> = WorkQueue::default();
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let endpoints = ctx.informers.get::<Endpoints>();
    let svc_store = services.store();
    let pod_store = pods.store();
    let ep_store = endpoints.store();
    tokio::select! {
        _ = async {
            svc_store.wait_until_ready().await;
            pod_store.wait_until_ready().await;
            ep_store.wait_until_ready().await;
        } => {}
        _ = ctx.shutdown.cancelled() => return Ok(()),
    }
    services.enqueue_into(queue.clone());
    // An Endpoints object edited or deleted by someone else is put back.
    endpoints.enqueue_into(queue.clone());
    pods.subscribe(queue.clone(), pod_mapper(svc_store.clone()));

    let stop = {
        let (queue, shutdown) = (queue.clone(), ctx.shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            queue.shutdown();
        })
    };
    let workers = ctx.options.workers;
    controller::run_keys(
        queue,
        move |key| {
            let (ctx, svcs, pods, eps) = (
                ctx.clone(),
                svc_store.clone(),
                pod_store.clone(),
                ep_store.clone(),
            );
            async move { reconcile(&ctx, &svcs, &pods, &eps, key).await }
        },
        workers,
    )
    .await;
    stop.abort();
    Ok(())
}

/// Maps a pod to the Services selecting it now and those that selected it the last
/// time it was seen, so a pod whose labels changed leaves its old Service too.
fn pod_mapper(services: Store<Service>) -> impl Fn(&Pod) -> Vec<ObjectKey> + Send + Sync {
    let last: Mutex<HashMap<ObjectKey, Vec<ObjectKey>>> = Mutex::default();
    move |pod: &Pod| {
        let ns = pod.metadata.namespace();
        let now: Vec<ObjectKey> = services
            .list_by_namespace(ns)
            .iter()
            .filter(|s| service_selects(s, pod))
            .map(|s| ObjectKey::of(s.as_ref()))
            .collect();
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        let pod_key = ObjectKey::of(pod);
        let mut keys: HashSet<ObjectKey> = now.iter().cloned().collect();
        if let Some(before) = last.get(&pod_key) {
            keys.extend(before.iter().cloned());
        }
        if now.is_empty() {
            last.remove(&pod_key);
        } else {
            last.insert(pod_key, now);
        }
        keys.into_iter().collect()
    }
}

fn service_selects(svc: &Service, pod: &Pod) -> bool {
    match svc.spec.as_ref() {
        Some(spec) if manages_endpoints(svc) => {
            Selector::from_labels(&spec.selector).matches(&pod.metadata.labels)
        }
        _ => false,
    }
}

/// Only Services with a selector (and not ExternalName) get controller-managed Endpoints.
fn manages_endpoints(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .is_some_and(|s| !s.selector.is_empty() && s.type_.as_deref() != Some("ExternalName"))
}

async fn reconcile(
    ctx: &Context,
    services: &Store<Service>,
    pods: &Store<Pod>,
    endpoints: &Store<Endpoints>,
    key: ObjectKey,
) -> Result<Action> {
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let err = |source| Error::Api {
        key: key.clone(),
        source,
    };
    let Some(svc) = services.get_key(&key) else {
        // The Service is gone: so are its Endpoints (a selector-less Service's
        // hand-made Endpoints go with it too, as in Kubernetes).
        if endpoints.get_key(&key).is_some() {
            match api.delete(&key.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(err(e)),
            }
        }
        return Ok(Action::AwaitChange);
    };
    if !manages_endpoints(&svc) {
        return Ok(Action::AwaitChange);
    }
    let spec = svc.spec.clone().unwrap_or_default();
    let selector = Selector::from_labels(&spec.selector);
    let selected: Vec<Arc<Pod>> = pods.list_matching(Some(&key.namespace), &selector);
    let want = desired(&svc, selected.iter().map(|p| p.as_ref()));
    match endpoints.get_key(&key) {
        None => match api.create(&want).await {
            Ok(_) => {}
            // Our cache is behind; the next event brings the object and a compare.
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(err(e)),
        },
        Some(current) => {
            if current.subsets == want.subsets && current.metadata.labels == want.metadata.labels {
                return Ok(Action::AwaitChange);
            }
            let mut next = (*current).clone();
            next.subsets = want.subsets;
            next.metadata.labels = want.metadata.labels;
            next.set_type_meta();
            api.replace(&key.name, &next).await.map_err(err)?;
        }
    }
    Ok(Action::AwaitChange)
}

/// The Endpoints `svc` should have, given the pods its selector matches.
pub fn desired<'a>(svc: &Service, pods: impl IntoIterator<Item = &'a Pod>) -> Endpoints {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut labels = svc.metadata.labels.clone();
    if spec.cluster_ip.as_deref() == Some("None") {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    let mut metadata = ObjectMeta::namespaced(svc.metadata.namespace(), svc.metadata.name());
    metadata.labels = labels;
    Endpoints {
        metadata,
        subsets: build_subsets(svc, pods),
        ..Default::default()
    }
    .with_type_meta()
}

/// One subset per distinct set of resolved ports; addresses sorted by IP so that
/// equal inputs always give equal (comparable) output.
pub fn build_subsets<'a>(
    svc: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let mut by_ports: BTreeMap<Vec<(String, i32, String)>, EndpointSubset> = BTreeMap::new();
    for pod in pods {
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        if matches!(pod.phase(), "Succeeded" | "Failed") {
            continue;
        }
        // Terminating pods leave Endpoints (their traffic is draining), unless the
        // Service asks for every address regardless of state.
        if pod.metadata.deletion_timestamp.is_some() && !publish_not_ready {
            continue;
        }
        let ports: Vec<EndpointPort> = spec
            .ports
            .iter()
            .filter_map(|sp| {
                let port = resolve_target_port(pod, sp)?;
                Some(EndpointPort {
                    name: sp.name.clone().filter(|n| !n.is_empty()),
                    port,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        // A pod that resolves none of the Service's ports serves nothing (a headless
        // Service without ports still lists its pods).
        if ports.is_empty() && !(spec.ports.is_empty() && headless) {
            continue;
        }
        let address = address_of(svc, pod, ip);
        let mut key: Vec<(String, i32, String)> = ports
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port,
                    p.protocol.clone().unwrap_or_default(),
                )
            })
            .collect();
        key.sort();
        let subset = by_ports.entry(key).or_insert_with(|| {
            let mut ports = ports.clone();
            ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
            EndpointSubset {
                ports,
                ..Default::default()
            }
        });
        if pod.is_ready() || publish_not_ready {
            subset.addresses.push(address);
        } else {
            subset.not_ready_addresses.push(address);
        }
    }
    let mut subsets: Vec<EndpointSubset> = by_ports.into_values().collect();
    for s in &mut subsets {
        s.addresses.sort_by(|a, b| a.ip.cmp(&b.ip));
        s.not_ready_addresses.sort_by(|a, b| a.ip.cmp(&b.ip));
    }
    subsets
}

/// A numeric targetPort is used as is; a named one is looked up in the pod's container
/// ports (same name and protocol); no targetPort means the Service port.
fn resolve_target_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    match sp.target_port.as_ref() {
        None | Some(IntOrString::Int(0)) => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let protocol = sp.protocol.as_deref().unwrap_or("TCP");
            pod.spec.as_ref().and_then(|s| {
                s.containers
                    .iter()
                    .flat_map(|c| c.ports.iter())
                    .find(|p| {
                        p.name.as_deref() == Some(name.as_str())
                            && p.protocol.as_deref().unwrap_or("TCP") == protocol
                    })
                    .map(|p| p.container_port)
            })
        }
    }
}

fn address_of(svc: &Service, pod: &Pod, ip: String) -> EndpointAddress {
    let spec = pod.spec.as_ref();
    // DNS names per pod (`host.svc.ns...`) only when the pod asked for this subdomain.
    let hostname = spec
        .filter(|s| s.subdomain.as_deref() == Some(svc.metadata.name()))
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty());
    EndpointAddress {
        ip,
        hostname,
        node_name: pod.node_name().map(str::to_string),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tug_proto::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServiceSpec,
    };

    fn service(ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta::namespaced("ns", "web"),
            spec: Some(ServiceSpec {
                selector: [("app".to_string(), "web".to_string())].into(),
                ports,
                cluster_ip: Some("10.0.0.10".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sport(name: &str, port: i32, target: Option<IntOrString>) -> ServicePort {
        ServicePort {
            name: Some(name.into()),
            port,
            target_port: target,
            ..Default::default()
        }
    }

    fn pod(name: &str, ip: &str, ready: bool, ports: &[(&str, i32)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::namespaced("ns", name)
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: ports
                        .iter()
                        .map(|(n, p)| ContainerPort {
                            name: Some(n.to_string()),
                            container_port: *p,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: (!ip.is_empty()).then(|| ip.to_string()),
                conditions: vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ips(a: &[EndpointAddress]) -> Vec<&str> {
        a.iter().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn named_target_ports_resolve_per_pod_into_separate_subsets() {
        let svc = service(vec![sport(
            "http",
            80,
            Some(IntOrString::String("web".into())),
        )]);
        let pods = [
            pod("a", "10.1.0.2", true, &[("web", 8080)]),
            pod("b", "10.1.0.3", true, &[("web", 9090)]),
            pod("c", "10.1.0.1", false, &[("web", 8080)]),
            // No port named `web`: serves nothing.
            pod("d", "10.1.0.4", true, &[("other", 1)]),
        ];
        let subsets = build_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 2, "{subsets:#?}");
        let s8080 = subsets.iter().find(|s| s.ports[0].port == 8080).unwrap();
        assert_eq!(ips(&s8080.addresses), ["10.1.0.2"]);
        assert_eq!(ips(&s8080.not_ready_addresses), ["10.1.0.1"]);
        assert_eq!(s8080.ports[0].name.as_deref(), Some("http"));
        assert_eq!(s8080.ports[0].protocol.as_deref(), Some("TCP"));
        let s9090 = subsets.iter().find(|s| s.ports[0].port == 9090).unwrap();
        assert_eq!(ips(&s9090.addresses), ["10.1.0.3"]);
        let a = &s8080.addresses[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        let r = a.target_ref.as_ref().unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (Some("Pod"), Some("a"), Some("uid-a"))
        );
    }

    #[test]
    fn which_pods_are_listed_and_where() {
        let mut terminating = pod("t", "10.1.0.9", true, &[]);
        terminating.metadata.deletion_timestamp = Some(tug_proto::Time::now());
        let mut done = pod("s", "10.1.0.8", false, &[]);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let all = [
            pod("ready", "10.1.0.1", true, &[]),
            pod("unready", "10.1.0.2", false, &[]),
            pod("no-ip", "", true, &[]),
            terminating,
            done,
        ];
        let numeric = service(vec![sport("", 80, Some(IntOrString::Int(8080)))]);
        let mut publish = numeric.clone();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        // (service, ready IPs, not-ready IPs)
        let cases = [
            (numeric, vec!["10.1.0.1"], vec!["10.1.0.2"]),
            (publish, vec!["10.1.0.1", "10.1.0.2", "10.1.0.9"], vec![]),
        ];
        for (svc, ready, not_ready) in cases {
            let subsets = build_subsets(&svc, &all);
            assert_eq!(subsets.len(), 1);
            assert_eq!(ips(&subsets[0].addresses), ready);
            assert_eq!(ips(&subsets[0].not_ready_addresses), not_ready);
            assert_eq!(subsets[0].ports[0].port, 8080);
            assert_eq!(subsets[0].ports[0].name, None);
        }
    }

    #[test]
    fn headless_services_are_labelled_and_list_pods_without_ports() {
        let mut svc = service(vec![]);
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        svc.metadata.labels.insert("team".into(), "a".into());
        let ep = desired(&svc, &[pod("a", "10.1.0.1", true, &[])]);
        assert_eq!(ep.metadata.labels[HEADLESS_LABEL], "");
        assert_eq!(ep.metadata.labels["team"], "a");
        assert_eq!(ep.subsets.len(), 1);
        assert!(ep.subsets[0].ports.is_empty());
        assert_eq!(ips(&ep.subsets[0].addresses), ["10.1.0.1"]);
    }

    #[test]
    fn no_pods_means_no_subsets_and_selectorless_services_are_left_alone() {
        let svc = service(vec![sport("http", 80, None)]);
        assert!(build_subsets(&svc, &[]).is_empty());
        let mut manual = svc.clone();
        manual.spec.as_mut().unwrap().selector.clear();
        assert!(!manages_endpoints(&manual));
        let mut external = svc.clone();
        external.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        assert!(!manages_endpoints(&external));
        assert!(manages_endpoints(&svc));
    }
}
