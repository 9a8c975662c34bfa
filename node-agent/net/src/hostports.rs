//! hostPort mappings: persisted per pod (`<state_dir>/hostports/<pod-key>.json`, written
//! atomically) and rendered into the `hostports` nft chain, which is rebuilt from all pods'
//! files in one transaction on every change (and on agent start).

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::names::pod_key;
use crate::nft::HOSTPORTS_CHAIN;
use crate::{io_err, Error, HostPort, Result};

/// One pod's published ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodPorts {
    pub uid: String,
    pub ip: Ipv4Addr,
    pub ports: Vec<HostPort>,
}

/// The directory of per-pod hostPort files.
#[derive(Debug)]
pub struct HostPortStore {
    dir: PathBuf,
}

impl HostPortStore {
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        Ok(HostPortStore {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, uid: &str) -> PathBuf {
        self.dir.join(format!("{}.json", pod_key(uid)))
    }

    /// Every pod's ports, sorted by uid (stable rule order).
    pub fn load_all(&self) -> Result<Vec<PodPorts>> {
        let mut all = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let path = entry.map_err(io_err(&self.dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let data = fs::read(&path).map_err(io_err(&path))?;
            let pod: PodPorts = serde_json::from_slice(&data).map_err(|e| Error::Parse {
                command: format!("read {}", path.display()),
                reason: format!("{e}; delete the file and restart the agent"),
            })?;
            all.push(pod);
        }
        all.sort_by(|a, b| a.uid.cmp(&b.uid));
        Ok(all)
    }

    pub fn get(&self, uid: &str) -> Result<Option<PodPorts>> {
        Ok(self.load_all()?.into_iter().find(|p| p.uid == uid))
    }

    /// Stores (or, with no ports, removes) a pod's ports.
    pub fn put(&self, pod: &PodPorts) -> Result<()> {
        if pod.ports.is_empty() {
            return self.remove(&pod.uid);
        }
        let path = self.path(&pod.uid);
        let tmp = path.with_extension("json.tmp");
        let data = serde_json::to_vec(pod).map_err(|e| Error::Parse {
            command: "encode hostports".into(),
            reason: e.to_string(),
        })?;
        fs::write(&tmp, data).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    pub fn remove(&self, uid: &str) -> Result<()> {
        let path = self.path(uid);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path)(e)),
            _ => Ok(()),
        }
    }

    /// Removes every file (node cleanup).
    pub fn clear(&self) -> Result<()> {
        for pod in self.load_all()? {
            self.remove(&pod.uid)?;
        }
        Ok(())
    }
}

/// Rejects ports that are malformed, duplicated within the pod, or already published by
/// another pod on an overlapping address.
pub fn validate(uid: &str, ports: &[HostPort], others: &[PodPorts]) -> Result<()> {
    for (i, p) in ports.iter().enumerate() {
        if p.host_port == 0 || p.container_port == 0 {
            return Err(Error::Invalid {
                field: "hostPort",
                value: format!("{}:{}", p.host_port, p.container_port),
                reason: format!("pod {uid}: hostPort and containerPort must be 1-65535"),
            });
        }
        let clash = |q: &HostPort| {
            q.host_port == p.host_port && q.protocol == p.protocol && overlaps(q.host_ip, p.host_ip)
        };
        if ports[..i].iter().any(clash) {
            return Err(Error::HostPortConflict {
                uid: uid.into(),
                other: uid.into(),
                port: p.host_port,
                protocol: p.protocol,
            });
        }
        if let Some(other) = others
            .iter()
            .find(|o| o.uid != uid && o.ports.iter().any(clash))
        {
            return Err(Error::HostPortConflict {
                uid: uid.into(),
                other: other.uid.clone(),
                port: p.host_port,
                protocol: p.protocol,
            });
        }
    }
    Ok(())
}

fn any_addr(ip: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    ip.filter(|ip| !ip.is_unspecified())
}

fn overlaps(a: Option<Ipv4Addr>, b: Option<Ipv4Addr>) -> bool {
    match (any_addr(a), any_addr(b)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// The nft script replacing the `hostports` chain with every pod's DNAT rules. The chain is
/// only entered for packets to a local address (see [`crate::nft::base_script`]).
pub fn chain_script(table: &str, pods: &[PodPorts]) -> String {
    let t = format!("ip {table}");
    let mut s = format!("add chain {t} {HOSTPORTS_CHAIN}\nflush chain {t} {HOSTPORTS_CHAIN}\n");
    for pod in pods {
        for p in &pod.ports {
            let daddr = any_addr(p.host_ip)
                .map(|ip| format!("ip daddr {ip} "))
                .unwrap_or_default();
            s.push_str(&format!(
                "add rule {t} {HOSTPORTS_CHAIN} {daddr}{proto} dport {hp} dnat to {ip}:{cp} comment \"pod {key}\"\n",
                proto = p.protocol.nft(),
                hp = p.host_port,
                ip = pod.ip,
                cp = p.container_port,
                key = pod_key(&pod.uid),
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;

    fn hp(
        host_port: u16,
        container_port: u16,
        protocol: Protocol,
        host_ip: Option<[u8; 4]>,
    ) -> HostPort {
        HostPort {
            host_port,
            container_port,
            protocol,
            host_ip: host_ip.map(Ipv4Addr::from),
        }
    }

    #[test]
    fn chain_script_renders_dnat_per_port() {
        let pods = vec![PodPorts {
            uid: "u1".into(),
            ip: Ipv4Addr::new(10, 244, 1, 2),
            ports: vec![
                hp(8080, 80, Protocol::Tcp, None),
                hp(53, 5353, Protocol::Udp, Some([192, 168, 1, 5])),
            ],
        }];
        let s = chain_script("tug-n1", &pods);
        assert_eq!(
            s,
            "add chain ip tug-n1 hostports\nflush chain ip tug-n1 hostports\n\
             add rule ip tug-n1 hostports tcp dport 8080 dnat to 10.244.1.2:80 comment \"pod u1\"\n\
             add rule ip tug-n1 hostports ip daddr 192.168.1.5 udp dport 53 dnat to 10.244.1.2:5353 comment \"pod u1\"\n"
        );
    }

    #[test]
    fn validate_table() {
        let other = vec![PodPorts {
            uid: "other".into(),
            ip: Ipv4Addr::new(10, 0, 0, 2),
            ports: vec![hp(8080, 80, Protocol::Tcp, Some([10, 9, 9, 9]))],
        }];
        let cases: Vec<(&str, Vec<HostPort>, bool)> = vec![
            (
                "distinct port",
                vec![hp(8081, 80, Protocol::Tcp, None)],
                true,
            ),
            (
                "same port other protocol",
                vec![hp(8080, 80, Protocol::Udp, None)],
                true,
            ),
            (
                "same port other host ip",
                vec![hp(8080, 80, Protocol::Tcp, Some([10, 1, 1, 1]))],
                true,
            ),
            (
                "same port any address",
                vec![hp(8080, 80, Protocol::Tcp, None)],
                false,
            ),
            (
                "same port 0.0.0.0",
                vec![hp(8080, 80, Protocol::Tcp, Some([0, 0, 0, 0]))],
                false,
            ),
            ("zero port", vec![hp(0, 80, Protocol::Tcp, None)], false),
            (
                "duplicate within pod",
                vec![
                    hp(9000, 80, Protocol::Tcp, None),
                    hp(9000, 81, Protocol::Tcp, None),
                ],
                false,
            ),
        ];
        for (name, ports, ok) in cases {
            assert_eq!(validate("me", &ports, &other).is_ok(), ok, "{name}");
        }
        // A pod may re-publish its own ports (idempotent set_host_ports).
        assert!(validate("other", &other[0].ports, &other).is_ok());
    }

    #[test]
    fn store_round_trips_and_empty_ports_remove_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = HostPortStore::open(dir.path()).unwrap();
        let pod = PodPorts {
            uid: "u/1".into(),
            ip: Ipv4Addr::new(10, 0, 0, 2),
            ports: vec![hp(1, 2, Protocol::Tcp, None)],
        };
        store.put(&pod).unwrap();
        assert_eq!(store.load_all().unwrap(), vec![pod.clone()]);
        assert_eq!(store.get("u/1").unwrap(), Some(pod.clone()));
        store
            .put(&PodPorts {
                ports: vec![],
                ..pod
            })
            .unwrap();
        assert!(store.load_all().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
