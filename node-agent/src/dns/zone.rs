//! The cluster zone: answers for names under the cluster domain, computed from the
//! Services and Endpoints caches (pure lookups, no I/O).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use hickory_proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tug_client::Store;
use tug_proto::core::v1::{Endpoints, Service};

/// Answers' TTL, as CoreDNS's kubernetes plugin (short: endpoints change).
pub const TTL: u32 = 5;

/// What the zone says about a name.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// The name exists; these are its records of the asked type (may be empty: NODATA).
    Records(Vec<Record>),
    /// No such name in the cluster domain.
    NxDomain,
    /// Not under the cluster domain: someone else's name.
    NotOurs,
}

/// The cluster domain (`cluster.local`) over the caches.
#[derive(Clone)]
pub struct Zone {
    domain: String,
    services: Store<Service>,
    endpoints: Store<Endpoints>,
}

impl Zone {
    pub fn new(domain: &str, services: Store<Service>, endpoints: Store<Endpoints>) -> Zone {
        Zone {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            services,
            endpoints,
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The SOA put in the authority section of negative answers (so resolvers cache
    /// them for [`TTL`] seconds only).
    pub fn soa(&self) -> Option<Record> {
        let origin = Name::from_ascii(format!("{}.", self.domain)).ok()?;
        let mname = Name::from_ascii(format!("ns.dns.{}.", self.domain)).ok()?;
        let rname = Name::from_ascii(format!("hostmaster.{}.", self.domain)).ok()?;
        let soa = SOA::new(mname, rname, 1, 7200, 1800, 86400, TTL);
        Some(Record::from_rdata(origin, TTL, RData::SOA(soa)))
    }

    /// Looks `name` up for records of `qtype`.
    pub fn resolve(&self, name: &Name, qtype: RecordType) -> Answer {
        let full = name.to_ascii().to_ascii_lowercase();
        let full = full.trim_end_matches('.');
        let rest = if full == self.domain {
            ""
        } else {
            match full.strip_suffix(&format!(".{}", self.domain)) {
                Some(r) => r,
                None => return Answer::NotOurs,
            }
        };
        let labels: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('.').collect()
        };
        let owner = || Name::from_ascii(format!("{full}.")).ok();
        match labels.as_slice() {
            // The domain itself and the `svc`/`pod` subtrees exist without records.
            [] | ["svc"] | ["pod"] => Answer::Records(Vec::new()),
            [ns, "svc"] | [ns, "pod"] => {
                if self.services.list_by_namespace(ns).is_empty() {
                    Answer::NxDomain
                } else {
                    Answer::Records(Vec::new())
                }
            }
            [svc, ns, "svc"] => self.service(ns, svc, qtype, owner),
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                self.srv(ns, svc, &port[1..], &proto[1..], qtype, owner)
            }
            [host, svc, ns, "svc"] => self.endpoint_host(ns, svc, host, qtype, owner),
            [dashed, _ns, "pod"] => match dashed.replace('-', ".").parse::<Ipv4Addr>() {
                // As CoreDNS's `pods insecure`: the name is the answer.
                Ok(ip) => Answer::Records(a_records(owner, qtype, [ip])),
                Err(_) => Answer::NxDomain,
            },
            _ => Answer::NxDomain,
        }
    }

    fn ready_addresses(&self, ns: &str, svc: &str) -> Vec<(Ipv4Addr, Option<String>)> {
        let mut out: Vec<(Ipv4Addr, Option<String>)> = self
            .endpoints
            .get(ns, svc)
            .iter()
            .flat_map(|e| e.subsets.iter())
            .flat_map(|s| s.addresses.iter())
            .filter_map(|a| Some((a.ip.parse().ok()?, a.hostname.clone())))
            .collect();
        out.sort();
        out.dedup_by_key(|(ip, _)| *ip);
        out
    }

    fn service(
        &self,
        ns: &str,
        svc: &str,
        qtype: RecordType,
        owner: impl Fn() -> Option<Name>,
    ) -> Answer {
        let Some(s) = self.services.get(ns, svc) else {
            return Answer::NxDomain;
        };
        let spec = s.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            let target = spec
                .external_name
                .as_deref()
                .and_then(|n| Name::from_ascii(format!("{}.", n.trim_end_matches('.'))).ok());
            return match (owner(), target) {
                (Some(o), Some(t)) => {
                    Answer::Records(vec![Record::from_rdata(o, TTL, RData::CNAME(CNAME(t)))])
                }
                _ => Answer::Records(Vec::new()),
            };
        }
        match spec.cluster_ip.as_deref() {
            Some("None") => {
                let ips = self.ready_addresses(ns, svc).into_iter().map(|(ip, _)| ip);
                Answer::Records(a_records(owner, qtype, ips))
            }
            Some(ip) => match ip.parse::<Ipv4Addr>() {
                Ok(ip) => Answer::Records(a_records(owner, qtype, [ip])),
                Err(_) => Answer::Records(Vec::new()),
            },
            None => Answer::Records(Vec::new()),
        }
    }

    /// `<hostname>.<svc>.<ns>.svc`: an endpoint of a headless service with a hostname
    /// (StatefulSet pods).
    fn endpoint_host(
        &self,
        ns: &str,
        svc: &str,
        host: &str,
        qtype: RecordType,
        owner: impl Fn() -> Option<Name>,
    ) -> Answer {
        let ips: Vec<Ipv4Addr> = self
            .ready_addresses(ns, svc)
            .into_iter()
            .filter(|(_, h)| h.as_deref() == Some(host))
            .map(|(ip, _)| ip)
            .collect();
        if ips.is_empty() {
            return Answer::NxDomain;
        }
        Answer::Records(a_records(owner, qtype, ips))
    }

    /// `_<port>._<proto>.<svc>.<ns>.svc` SRV: the named port on the service name (or on
    /// each endpoint's name for headless services with hostnames).
    fn srv(
        &self,
        ns: &str,
        svc: &str,
        port_name: &str,
        proto: &str,
        qtype: RecordType,
        owner: impl Fn() -> Option<Name>,
    ) -> Answer {
        let Some(s) = self.services.get(ns, svc) else {
            return Answer::NxDomain;
        };
        let spec = s.spec.clone().unwrap_or_default();
        let Some(port) = spec.ports.iter().find(|p| {
            p.name.as_deref() == Some(port_name)
                && p.protocol
                    .as_deref()
                    .unwrap_or("TCP")
                    .eq_ignore_ascii_case(proto)
        }) else {
            return Answer::NxDomain;
        };
        if !matches!(qtype, RecordType::SRV | RecordType::ANY) {
            return Answer::Records(Vec::new());
        }
        let Some(owner) = owner() else {
            return Answer::Records(Vec::new());
        };
        let base = format!("{svc}.{ns}.svc.{}.", self.domain);
        let mut targets: BTreeSet<(String, u16)> = BTreeSet::new();
        if spec.cluster_ip.as_deref() == Some("None") {
            // Headless: the endpoints' own names and target ports.
            let eps = self.endpoints.get(ns, svc);
            for subset in eps.iter().flat_map(|e| e.subsets.iter()) {
                let Some(ep_port) = subset
                    .ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(port_name))
                else {
                    continue;
                };
                for a in &subset.addresses {
                    let host = a.hostname.clone().unwrap_or_else(|| a.ip.replace('.', "-"));
                    targets.insert((format!("{host}.{base}"), ep_port.port as u16));
                }
            }
        } else {
            targets.insert((base, port.port as u16));
        }
        Answer::Records(
            targets
                .into_iter()
                .filter_map(|(t, p)| {
                    let t = Name::from_ascii(t).ok()?;
                    Some(Record::from_rdata(
                        owner.clone(),
                        TTL,
                        RData::SRV(SRV::new(0, 100, p, t)),
                    ))
                })
                .collect(),
        )
    }
}

fn a_records(
    owner: impl Fn() -> Option<Name>,
    qtype: RecordType,
    ips: impl IntoIterator<Item = Ipv4Addr>,
) -> Vec<Record> {
    if !matches!(qtype, RecordType::A | RecordType::ANY) {
        return Vec::new();
    }
    let Some(owner) = owner() else {
        return Vec::new();
    };
    ips.into_iter()
        .map(|ip| Record::from_rdata(owner.clone(), TTL, RData::A(A(ip))))
        .collect()
}
