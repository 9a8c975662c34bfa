//! The recorded cluster (`state.json`): written before anything is made, read by every verb.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::Binaries;

/// The file in a cluster dir that records it.
pub const STATE_FILE: &str = "state.json";
/// Node subnets are 172.31.<k>.0/24: private, and rarely used by hosts (not Docker's
/// 172.17-172.30 defaults). The host keeps .1 on the bridge; nodes get .2 onwards.
pub const SUBNET_BASE: [u8; 2] = [172, 31];
/// The API port on every control-plane node.
pub const API_PORT: u16 = 6443;
/// The raft peer port on every control-plane node.
pub const PEER_PORT: u16 = 2380;

/// Everything `tug cluster` made for one cluster, and how to (re)start its processes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterState {
    pub name: String,
    /// The cluster dir (this file's directory).
    pub dir: PathBuf,
    /// `k` of the node subnet 172.31.k.0/24.
    pub subnet: u8,
    /// The host bridge every node's veth is plugged into.
    pub bridge: String,
    pub nodes: Vec<NodeState>,
    /// The API load balancer on the host (clusters with several control planes).
    #[serde(default)]
    pub lb: Option<ProcessSpec>,
}

/// One node: its namespace, link and processes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeState {
    pub name: String,
    pub control_plane: bool,
    pub ip: Ipv4Addr,
    /// The node's network namespace under /run/netns.
    pub netns: String,
    /// The host end of the node's veth (the node end is `eth0` in the namespace).
    pub veth: String,
    pub pod_cidr: String,
    /// Started in this order; stopped in reverse.
    pub processes: Vec<ProcessSpec>,
}

/// A process of a node: what to run and where its log goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessSpec {
    /// `apiserver`, `scheduler`, `controllers` or `agent`.
    pub name: String,
    pub argv: Vec<String>,
}

/// What `create` was asked for (beyond the name).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub control_planes: usize,
    pub workers: usize,
    /// Extra flags for every `tug-controllers` (e.g. shorter grace periods for tests).
    pub controllers_args: Vec<String>,
    /// Extra flags for every `tug-agent`.
    pub agent_args: Vec<String>,
}

impl ClusterState {
    /// Lays out a cluster: node names like kind's (`<name>-control-plane`,
    /// `<name>-control-plane2`, `<name>-worker`, `<name>-worker2`), IPs, links and argv.
    pub fn plan(name: &str, dir: &Path, subnet: u8, plan: &Plan, bins: &Binaries) -> Self {
        let bridge = if name.len() <= 10 {
            format!("tugc-{name}")
        } else {
            format!("tugc{subnet}")
        };
        let total = plan.control_planes + plan.workers;
        let mut nodes: Vec<NodeState> = (0..total)
            .map(|i| {
                let control_plane = i < plan.control_planes;
                let (role, nth) = if control_plane {
                    ("control-plane", i + 1)
                } else {
                    ("worker", i - plan.control_planes + 1)
                };
                let node = if nth == 1 {
                    format!("{name}-{role}")
                } else {
                    format!("{name}-{role}{nth}")
                };
                NodeState {
                    netns: format!("tugc-{node}"),
                    name: node,
                    control_plane,
                    ip: Ipv4Addr::new(SUBNET_BASE[0], SUBNET_BASE[1], subnet, 2 + i as u8),
                    veth: format!("tugc{subnet}-{i}"),
                    pod_cidr: format!("10.244.{i}.0/24"),
                    processes: Vec::new(),
                }
            })
            .collect();
        let peers = nodes
            .iter()
            .filter(|n| n.control_plane)
            .enumerate()
            .map(|(i, n)| format!("{}={}:{PEER_PORT}", i + 1, n.ip))
            .collect::<Vec<_>>()
            .join(",");
        let cp_ips: Vec<Ipv4Addr> = nodes
            .iter()
            .filter(|n| n.control_plane)
            .map(|n| n.ip)
            .collect();
        let pki = dir.join("pki");
        let images = dir.join("images");
        let s = |p: &Path| p.display().to_string();
        let bin = |b: &str| s(&bins.path(b));
        let gateway = Ipv4Addr::new(SUBNET_BASE[0], SUBNET_BASE[1], subnet, 1);
        let lb = (cp_ips.len() > 1).then(|| {
            let mut argv = vec![
                bin("tug"),
                "cluster".into(),
                "lb".into(),
                "--listen".into(),
                format!("{gateway}:{API_PORT}"),
            ];
            for ip in &cp_ips {
                argv.push("--backend".into());
                argv.push(format!("{ip}:{API_PORT}"));
            }
            ProcessSpec {
                name: "lb".into(),
                argv,
            }
        });
        let mut worker_n = 0;
        for (i, n) in nodes.iter_mut().enumerate() {
            let node_dir = dir.join("nodes").join(&n.name);
            let server = if n.control_plane {
                n.ip
            } else if lb.is_some() {
                // Through the load balancer: a stopped control plane does not cut it off.
                gateway
            } else {
                // Workers spread over the control planes, each talking to one.
                worker_n += 1;
                cp_ips[(worker_n - 1) % cp_ips.len()]
            };
            if n.control_plane {
                let kubeconfig = s(&node_dir.join("kubeconfig"));
                n.processes.push(ProcessSpec {
                    name: "apiserver".into(),
                    argv: vec![
                        bin("tug-apiserver"),
                        "--id".into(),
                        (i + 1).to_string(),
                        "--peers".into(),
                        peers.clone(),
                        "--listen".into(),
                        format!("{}:{API_PORT}", n.ip),
                        "--advertise-address".into(),
                        n.ip.to_string(),
                        "--data-dir".into(),
                        s(&node_dir.join("apiserver")),
                        "--pki-dir".into(),
                        s(&pki),
                        "--cluster-name".into(),
                        name.into(),
                    ],
                });
                n.processes.push(ProcessSpec {
                    name: "scheduler".into(),
                    argv: vec![
                        bin("tug-scheduler"),
                        "--kubeconfig".into(),
                        kubeconfig.clone(),
                    ],
                });
                let mut argv = vec![bin("tug-controllers"), "--kubeconfig".into(), kubeconfig];
                argv.extend(plan.controllers_args.iter().cloned());
                n.processes.push(ProcessSpec {
                    name: "controllers".into(),
                    argv,
                });
            }
            let mut argv = vec![
                bin("tug-agent"),
                "--node-name".into(),
                n.name.clone(),
                "--node-ip".into(),
                n.ip.to_string(),
                "--server".into(),
                format!("https://{server}:{API_PORT}"),
                "--pki-dir".into(),
                s(&pki),
                "--root-dir".into(),
                s(&node_dir.join("agent")),
                "--pod-cidr".into(),
                n.pod_cidr.clone(),
                "--cgroup-root".into(),
                format!("tug/{name}/{}", n.name),
                "--listen".into(),
                format!("{}:10250", n.ip),
                "--preload-images".into(),
                s(&images),
            ];
            if n.control_plane {
                argv.push("--node-labels".into());
                argv.push("node-role.kubernetes.io/control-plane=".into());
                if plan.workers > 0 {
                    argv.push("--register-with-taints".into());
                    argv.push("node-role.kubernetes.io/control-plane:NoSchedule".into());
                }
            }
            argv.extend(plan.agent_args.iter().cloned());
            n.processes.push(ProcessSpec {
                name: "agent".into(),
                argv,
            });
        }
        ClusterState {
            name: name.into(),
            dir: dir.to_path_buf(),
            subnet,
            bridge,
            nodes,
            lb,
        }
    }

    /// Reads `<dir>/state.json`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(STATE_FILE);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !dir.exists() {
            anyhow::bail!(
                "cluster {name:?} does not exist (no {}); see `tug cluster list`",
                dir.display()
            );
        }
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "reading {} (an incomplete cluster: remove it with `tug cluster delete --name \
                 {name}`)",
                path.display()
            )
        })?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes `<dir>/state.json` atomically.
    pub fn save(&self) -> anyhow::Result<()> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.dir.join("pki")
    }

    pub fn images_dir(&self) -> PathBuf {
        self.dir.join("images")
    }

    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join("nodes").join(node)
    }

    /// `172.31.k` (without the last octet).
    pub fn subnet_prefix(&self) -> String {
        format!("{}.{}.{}", SUBNET_BASE[0], SUBNET_BASE[1], self.subnet)
    }

    /// The host's address on the bridge (.1), the nodes' default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(SUBNET_BASE[0], SUBNET_BASE[1], self.subnet, 1)
    }

    pub fn node(&self, name: &str) -> anyhow::Result<&NodeState> {
        self.nodes.iter().find(|n| n.name == name).with_context(|| {
            format!(
                "cluster {} has no node {name:?}; its nodes are: {}",
                self.name,
                self.nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// The `server:` of the admin kubeconfig: the load balancer, else the control plane.
    pub fn server_url(&self) -> String {
        let ip = match &self.lb {
            Some(_) => self.gateway(),
            None => self
                .nodes
                .iter()
                .find(|n| n.control_plane)
                .map_or(self.gateway(), |n| n.ip),
        };
        format!("https://{ip}:{API_PORT}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(cp: usize, w: usize) -> ClusterState {
        let bins = Binaries {
            dir: "/bin/x".into(),
        };
        let p = Plan {
            control_planes: cp,
            workers: w,
            controllers_args: vec!["--node-monitor-grace-period=10s".into()],
            agent_args: vec![],
        };
        ClusterState::plan("dev", Path::new("/c/dev"), 7, &p, &bins)
    }

    fn arg<'a>(p: &'a ProcessSpec, flag: &str) -> Option<&'a str> {
        p.argv
            .iter()
            .position(|a| a == flag)
            .map(|i| p.argv[i + 1].as_str())
    }

    #[test]
    fn nodes_are_named_and_addressed_like_kind() {
        let st = plan(3, 2);
        let names: Vec<_> = st.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev-control-plane",
                "dev-control-plane2",
                "dev-control-plane3",
                "dev-worker",
                "dev-worker2"
            ]
        );
        let ips: Vec<_> = st.nodes.iter().map(|n| n.ip.to_string()).collect();
        assert_eq!(
            ips,
            [
                "172.31.7.2",
                "172.31.7.3",
                "172.31.7.4",
                "172.31.7.5",
                "172.31.7.6"
            ]
        );
        assert_eq!(st.bridge, "tugc-dev");
        assert!(st.nodes.iter().all(|n| n.veth.len() <= 15));
        assert_eq!(st.nodes[4].pod_cidr, "10.244.4.0/24");
        assert_eq!(st.server_url(), "https://172.31.7.1:6443");
        assert_eq!(plan(1, 2).server_url(), "https://172.31.7.2:6443");
    }

    #[test]
    fn control_planes_run_every_component_and_peer_with_each_other() {
        let st = plan(3, 2);
        let cp2 = &st.nodes[1];
        let names: Vec<_> = cp2.processes.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["apiserver", "scheduler", "controllers", "agent"]);
        let api = &cp2.processes[0];
        assert_eq!(arg(api, "--id"), Some("2"));
        assert_eq!(
            arg(api, "--peers"),
            Some("1=172.31.7.2:2380,2=172.31.7.3:2380,3=172.31.7.4:2380")
        );
        assert_eq!(arg(api, "--listen"), Some("172.31.7.3:6443"));
        assert!(cp2.processes[2]
            .argv
            .contains(&"--node-monitor-grace-period=10s".to_string()));
        let agent = &cp2.processes[3];
        assert_eq!(arg(agent, "--server"), Some("https://172.31.7.3:6443"));
        assert_eq!(
            arg(agent, "--register-with-taints"),
            Some("node-role.kubernetes.io/control-plane:NoSchedule")
        );
        assert_eq!(
            arg(agent, "--cgroup-root"),
            Some("tug/dev/dev-control-plane2")
        );
    }

    #[test]
    fn workers_reach_the_api_through_the_load_balancer_and_a_lone_control_plane_is_schedulable() {
        let st = plan(3, 2);
        let server = |i: usize| arg(st.nodes[i].processes.last().unwrap(), "--server");
        assert_eq!(server(3), Some("https://172.31.7.1:6443"));
        assert_eq!(server(4), Some("https://172.31.7.1:6443"));
        assert_eq!(st.nodes[3].processes.len(), 1);
        let lb = st.lb.as_ref().unwrap();
        assert_eq!(
            lb.argv[1..].join(" "),
            "cluster lb --listen 172.31.7.1:6443 --backend 172.31.7.2:6443 --backend \
             172.31.7.3:6443 --backend 172.31.7.4:6443"
        );
        let single = plan(1, 2);
        assert!(single.lb.is_none());
        assert_eq!(
            arg(single.nodes[1].processes.last().unwrap(), "--server"),
            Some("https://172.31.7.2:6443")
        );
        let alone = plan(1, 0);
        assert_eq!(
            arg(&alone.nodes[0].processes[3], "--register-with-taints"),
            None
        );
    }

    #[test]
    fn long_cluster_names_get_a_bridge_name_that_fits_ifnamsiz() {
        let bins = Binaries { dir: "/b".into() };
        let st = ClusterState::plan(
            "a-rather-long-name",
            Path::new("/c"),
            200,
            &Plan {
                control_planes: 1,
                workers: 1,
                ..Plan::default()
            },
            &bins,
        );
        assert_eq!(st.bridge, "tugc200");
    }
}
