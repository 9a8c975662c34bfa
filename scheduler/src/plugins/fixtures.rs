//! Builders for plugin tests: terse pods and nodes.

use crate::node_info::NodeInfo;
use std::collections::BTreeMap;
use tug_proto::core::v1::{
    Container, ContainerPort, Node, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements,
    Taint, Toleration,
};
use tug_proto::{ObjectMeta, Quantity};

pub fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity::parse(v).unwrap()))
        .collect()
}

pub fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("default", name),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("img".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn spec(p: &mut Pod) -> &mut PodSpec {
    p.spec.get_or_insert_with(Default::default)
}

pub fn with_requests(mut p: Pod, pairs: &[(&str, &str)]) -> Pod {
    spec(&mut p).containers[0].resources = Some(ResourceRequirements {
        requests: quantities(pairs),
        ..Default::default()
    });
    p
}

pub fn with_labels(mut p: Pod, pairs: &[(&str, &str)]) -> Pod {
    for (k, v) in pairs {
        p.metadata.labels.insert(k.to_string(), v.to_string());
    }
    p
}

pub fn with_host_port(mut p: Pod, port: i32) -> Pod {
    spec(&mut p).containers[0].ports.push(ContainerPort {
        container_port: port,
        host_port: Some(port),
        ..Default::default()
    });
    p
}

pub fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Toleration {
        key: opt(key),
        operator: opt(op),
        value: opt(value),
        effect: opt(effect),
        toleration_seconds: None,
    }
}

pub fn with_tolerations(mut p: Pod, t: Vec<Toleration>) -> Pod {
    spec(&mut p).tolerations = t;
    p
}

pub fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta::named(name),
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: quantities(&[("cpu", "4"), ("memory", "8Gi"), ("pods", "110")]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn with_node_labels(mut n: Node, pairs: &[(&str, &str)]) -> Node {
    for (k, v) in pairs {
        n.metadata.labels.insert(k.to_string(), v.to_string());
    }
    n
}

pub fn with_allocatable(mut n: Node, pairs: &[(&str, &str)]) -> Node {
    n.status.get_or_insert_with(Default::default).allocatable = quantities(pairs);
    n
}

pub fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: (!value.is_empty()).then(|| value.to_string()),
        effect: effect.into(),
        time_added: None,
    }
}

pub fn with_taints(mut n: Node, taints: Vec<Taint>) -> Node {
    n.spec.get_or_insert_with(Default::default).taints = taints;
    n
}

pub fn info(n: Node, pods: Vec<Pod>) -> NodeInfo {
    let name = n.metadata.name().to_string();
    let pods = pods
        .into_iter()
        .map(|mut p| {
            spec(&mut p).node_name = Some(name.clone());
            p
        })
        .collect();
    NodeInfo::with_pods(n, pods)
}
