//! `Resources`: cpu (milli), memory (bytes), pod count and extended resources, and what a
//! pod requests of them.

use std::collections::BTreeMap;
use tug_proto::core::v1::Pod;
use tug_proto::Quantity;

/// Requests used for scoring a pod (or container) that requests nothing, so that such
/// pods still spread out (kube-scheduler's `DefaultMilliCPURequest`/`DefaultMemoryRequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of every resource the scheduler accounts for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    /// Number of pods (only meaningful for allocatable).
    pub pods: i64,
    /// Extended resources, hugepages, ephemeral-storage: whole units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// From a `capacity`/`allocatable`/`requests` map.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut r = Resources::default();
        for (name, q) in list {
            match name.as_str() {
                "cpu" => r.milli_cpu = q.as_milli(),
                "memory" => r.memory = q.value(),
                "pods" => r.pods = q.value(),
                _ => {
                    r.scalar.insert(name.clone(), q.value());
                }
            }
        }
        r
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Element-wise maximum (init containers run one at a time).
    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

/// What `pod` asks of a node: max(sum of containers, largest init container) plus the
/// pod overhead, like kube-scheduler's `computePodResourceRequest`.
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = &pod.spec else {
        return Resources::default();
    };
    let mut sum = Resources::default();
    for c in &spec.containers {
        if let Some(r) = &c.resources {
            sum.add(&Resources::from_list(&r.requests));
        }
    }
    for c in &spec.init_containers {
        if let Some(r) = &c.resources {
            sum.max_with(&Resources::from_list(&r.requests));
        }
    }
    sum.add(&Resources::from_list(&spec.overhead));
    sum.pods = 0;
    sum
}

/// cpu and memory requests for scoring, with defaults for containers that request none.
pub fn non_zero_requests(pod: &Pod) -> (i64, i64) {
    let Some(spec) = &pod.spec else {
        return (0, 0);
    };
    let mut cpu = 0;
    let mut mem = 0;
    for c in &spec.containers {
        let requests = c.resources.as_ref().map(|r| &r.requests);
        let get = |name: &str| requests.and_then(|r| r.get(name));
        cpu += get("cpu").map_or(DEFAULT_MILLI_CPU_REQUEST, Quantity::as_milli);
        mem += get("memory").map_or(DEFAULT_MEMORY_REQUEST, Quantity::value);
    }
    (cpu, mem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tug_proto::core::v1::{Container, PodSpec, ResourceRequirements};

    fn container(cpu: &str, mem: &str) -> Container {
        let mut requests = BTreeMap::new();
        if !cpu.is_empty() {
            requests.insert("cpu".to_string(), Quantity::parse(cpu).unwrap());
        }
        if !mem.is_empty() {
            requests.insert("memory".to_string(), Quantity::parse(mem).unwrap());
        }
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pod_requests_take_the_larger_of_containers_and_init_containers_plus_overhead() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![container("100m", "64Mi"), container("200m", "")],
                init_containers: vec![container("500m", "32Mi")],
                overhead: [("cpu".to_string(), Quantity::parse("10m").unwrap())].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = pod_requests(&pod);
        assert_eq!(r.milli_cpu, 510);
        assert_eq!(r.memory, 64 * 1024 * 1024);
        assert_eq!(
            non_zero_requests(&pod),
            (300, 64 * 1024 * 1024 + DEFAULT_MEMORY_REQUEST)
        );
    }
}
