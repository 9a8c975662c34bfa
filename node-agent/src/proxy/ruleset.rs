//! The proxy's nftables objects, rendered as one `nft -f` script (pure text, no I/O).
//!
//! They live in the node's tug-net table (`table ip tug-<node>`), next to tug-net's own
//! chains, so that the network's `cleanup_all` (node removal, `--cleanup`) removes them
//! with everything else; every name here starts with `services`, `service-`,
//! `no-endpoint-`, `svc-`, `ext-`, `ep-` or `aff-`, never one of tug-net's.
//!
//! ```text
//!   services-prerouting / services-output (dstnat)  -> jump services
//!   services:  ip daddr . l4proto . dport  vmap @service-ips        -> goto svc-<id>
//!              fib daddr local: l4proto . dport vmap @service-nodeports -> goto ext-<id>
//!   ext-<id>:  mark for masquerade, goto svc-<id>            (NodePort traffic)
//!   svc-<id>:  ip saddr @aff-<ep> goto ep-<ep>  (ClientIP affinity, per endpoint)
//!              numgen random mod N vmap { 0: goto ep-a, 1: goto ep-b, ... }
//!   ep-<ep>:   ip saddr <ep ip> mark for masquerade     (hairpin: a pod via its own service)
//!              update @aff-<ep> { ip saddr }            (affinity only)
//!              dnat to <ep ip>:<port>
//!   services-postrouting (srcnat): mark & 0x4000 -> masquerade
//!   services-forward / services-filter-output / services-input: new connections to
//!              services without ready endpoints -> services-reject (tcp reset, else icmp
//!              port-unreachable)
//! ```
//!
//! Per-service objects are named after the Service (`svc-<ns>/<name>/<proto>/<port>`), so
//! `nft list table` reads like the cluster. A sync flushes and refills every chain and map
//! and deletes the stale ones in the same transaction; affinity sets are never flushed
//! (that would forget the clients' chosen endpoints), only deleted with their endpoint.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::model::ServicePortRule;

/// The packet mark bit asking `services-postrouting` to masquerade (kube-proxy's bit).
pub const MASQ_MARK: u32 = 0x4000;

/// Base chains: (name, hook spec).
const BASE_CHAINS: &[(&str, &str)] = &[
    (
        "services-prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
    ),
    // nft 1.0.6 accepts the "dstnat" keyword only in prerouting; -100 is its value.
    (
        "services-output",
        "type nat hook output priority -100; policy accept;",
    ),
    (
        "services-postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
    ),
    (
        "services-forward",
        "type filter hook forward priority -10; policy accept;",
    ),
    (
        "services-filter-output",
        "type filter hook output priority -10; policy accept;",
    ),
    (
        "services-input",
        "type filter hook input priority -10; policy accept;",
    ),
];

/// Regular chains every ruleset has.
const FIXED_CHAINS: &[&str] = &["services", "services-reject"];

/// Verdict maps: (name, key type).
const MAPS: &[(&str, &str)] = &[
    ("service-ips", "ipv4_addr . inet_proto . inet_service"),
    ("service-nodeports", "inet_proto . inet_service"),
    (
        "no-endpoint-services",
        "ipv4_addr . inet_proto . inet_service",
    ),
    ("no-endpoint-nodeports", "inet_proto . inet_service"),
];

/// The per-service chains and sets a ruleset created (to delete them once stale).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Objects {
    pub chains: BTreeSet<String>,
    pub sets: BTreeSet<String>,
}

fn svc_chain(r: &ServicePortRule) -> String {
    format!("svc-{}", r.id())
}

fn ext_chain(r: &ServicePortRule) -> String {
    format!("ext-{}", r.id())
}

fn ep_chain(r: &ServicePortRule, ep: (std::net::Ipv4Addr, u16)) -> String {
    format!("ep-{}/{}/{}", r.id(), ep.0, ep.1)
}

fn aff_set(r: &ServicePortRule, ep: (std::net::Ipv4Addr, u16), timeout: u32) -> String {
    // The timeout is part of the name: a set's timeout cannot change in place.
    format!("aff-{}/{}/{}/{timeout}", r.id(), ep.0, ep.1)
}

/// The per-service objects `rules` need.
pub fn objects(rules: &[ServicePortRule]) -> Objects {
    let mut o = Objects::default();
    for r in rules.iter().filter(|r| !r.endpoints.is_empty()) {
        o.chains.insert(svc_chain(r));
        if r.node_port.is_some() {
            o.chains.insert(ext_chain(r));
        }
        for ep in &r.endpoints {
            o.chains.insert(ep_chain(r, *ep));
            if let Some(t) = r.affinity {
                o.sets.insert(aff_set(r, *ep, t));
            }
        }
    }
    o
}

/// The script that makes the proxy's objects in table `ip <table>` exactly `rules`.
/// `existing` are the per-service objects the kernel has now (from the previous sync, or
/// [`parse_listing`] of the table).
pub fn render(table: &str, rules: &[ServicePortRule], existing: &Objects) -> String {
    let t = format!("ip {table}");
    let want = objects(rules);
    let mut s = String::new();
    let _ = writeln!(s, "add table {t}");
    for (name, spec) in BASE_CHAINS {
        let _ = writeln!(s, "add chain {t} {name} {{ {spec} }}");
    }
    let all_chains: BTreeSet<&String> = existing.chains.iter().chain(want.chains.iter()).collect();
    for c in FIXED_CHAINS {
        let _ = writeln!(s, "add chain {t} {c}");
    }
    for c in &all_chains {
        let _ = writeln!(s, "add chain {t} {c}");
    }
    for (name, key) in MAPS {
        let _ = writeln!(s, "add map {t} {name} {{ type {key} : verdict; }}");
    }
    for r in rules {
        if let Some(timeout) = r.affinity {
            for ep in &r.endpoints {
                let _ = writeln!(
                    s,
                    "add set {t} {} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}",
                    aff_set(r, *ep, timeout)
                );
            }
        }
    }
    for (name, _) in BASE_CHAINS {
        let _ = writeln!(s, "flush chain {t} {name}");
    }
    for c in FIXED_CHAINS {
        let _ = writeln!(s, "flush chain {t} {c}");
    }
    for c in &all_chains {
        let _ = writeln!(s, "flush chain {t} {c}");
    }
    for (name, _) in MAPS {
        let _ = writeln!(s, "flush map {t} {name}");
    }
    // Fixed rules.
    let _ = writeln!(s, "add rule {t} services-prerouting jump services");
    let _ = writeln!(s, "add rule {t} services-output jump services");
    let _ = writeln!(
        s,
        "add rule {t} services-postrouting meta mark & {MASQ_MARK:#x} == {MASQ_MARK:#x} masquerade"
    );
    let _ = writeln!(
        s,
        "add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips"
    );
    let _ = writeln!(
        s,
        "add rule {t} services fib daddr type local meta l4proto . th dport vmap @service-nodeports"
    );
    for chain in ["services-forward", "services-filter-output"] {
        let _ = writeln!(
            s,
            "add rule {t} {chain} ct state new ip daddr . meta l4proto . th dport vmap @no-endpoint-services"
        );
    }
    let _ = writeln!(
        s,
        "add rule {t} services-input ct state new fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports"
    );
    let _ = writeln!(
        s,
        "add rule {t} services-reject meta l4proto tcp reject with tcp reset"
    );
    let _ = writeln!(s, "add rule {t} services-reject reject");
    // Per service port.
    for r in rules {
        let proto = r.protocol.nft();
        let comment = format!("comment \"{}\"", r.id());
        if r.endpoints.is_empty() {
            if let Some(ip) = r.cluster_ip {
                let _ = writeln!(
                    s,
                    "add element {t} no-endpoint-services {{ {ip} . {proto} . {} : goto services-reject }}",
                    r.port
                );
            }
            if let Some(np) = r.node_port {
                let _ = writeln!(
                    s,
                    "add element {t} no-endpoint-nodeports {{ {proto} . {np} : goto services-reject }}"
                );
            }
            continue;
        }
        let svc = svc_chain(r);
        if let Some(ip) = r.cluster_ip {
            let _ = writeln!(
                s,
                "add element {t} service-ips {{ {ip} . {proto} . {} : goto {svc} }}",
                r.port
            );
        }
        if let Some(np) = r.node_port {
            let ext = ext_chain(r);
            let _ = writeln!(
                s,
                "add element {t} service-nodeports {{ {proto} . {np} : goto {ext} }}"
            );
            // Traffic arriving on a node port may be answered from another node: the
            // reply must come back through this node to be un-NATed (kube-proxy's
            // externalTrafficPolicy: Cluster).
            let _ = writeln!(
                s,
                "add rule {t} {ext} meta mark set meta mark | {MASQ_MARK:#x} {comment}"
            );
            let _ = writeln!(s, "add rule {t} {ext} goto {svc}");
        }
        if let Some(timeout) = r.affinity {
            for ep in &r.endpoints {
                let _ = writeln!(
                    s,
                    "add rule {t} {svc} ip saddr @{} goto {} {comment}",
                    aff_set(r, *ep, timeout),
                    ep_chain(r, *ep)
                );
            }
        }
        if r.endpoints.len() == 1 {
            let _ = writeln!(
                s,
                "add rule {t} {svc} goto {} {comment}",
                ep_chain(r, r.endpoints[0])
            );
        } else {
            let arms: Vec<String> = r
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, ep)| format!("{i} : goto {}", ep_chain(r, *ep)))
                .collect();
            let _ = writeln!(
                s,
                "add rule {t} {svc} numgen random mod {} vmap {{ {} }} {comment}",
                r.endpoints.len(),
                arms.join(", ")
            );
        }
        for ep in &r.endpoints {
            let chain = ep_chain(r, *ep);
            // Hairpin: a pod reaching itself through its service would see its own
            // address as the source; masquerade exactly that case.
            let _ = writeln!(
                s,
                "add rule {t} {chain} ip saddr {} meta mark set meta mark | {MASQ_MARK:#x}",
                ep.0
            );
            if let Some(timeout) = r.affinity {
                let _ = writeln!(
                    s,
                    "add rule {t} {chain} update @{} {{ ip saddr }}",
                    aff_set(r, *ep, timeout)
                );
            }
            let _ = writeln!(
                s,
                "add rule {t} {chain} meta l4proto {proto} dnat to {}:{}",
                ep.0, ep.1
            );
        }
    }
    // Stale objects: every rule referencing them was flushed above.
    for c in existing.chains.difference(&want.chains) {
        let _ = writeln!(s, "delete chain {t} {c}");
    }
    for set in existing.sets.difference(&want.sets) {
        let _ = writeln!(s, "delete set {t} {set}");
    }
    s
}

/// Whether a chain or set name is one of the proxy's.
pub fn is_ours(name: &str) -> bool {
    name.starts_with("services")
        || name.starts_with("service-")
        || name.starts_with("no-endpoint-")
        || ["svc-", "ext-", "ep-", "aff-"]
            .iter()
            .any(|p| name.starts_with(p) && name.contains('/'))
}

/// The proxy's objects found in `nft -j list table` output, split into the per-service
/// ones ([`Objects`]) and everything of ours (chains, maps, sets) for removal.
pub fn parse_listing(json: &str) -> (Objects, Objects, BTreeSet<String>) {
    let mut per_service = Objects::default();
    let mut all = Objects::default();
    let mut maps = BTreeSet::new();
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    for item in v["nftables"].as_array().into_iter().flatten() {
        for (kind, obj) in item.as_object().into_iter().flatten() {
            let Some(name) = obj["name"].as_str().filter(|n| is_ours(n)) else {
                continue;
            };
            let dynamic = ["svc-", "ext-", "ep-", "aff-"]
                .iter()
                .any(|p| name.starts_with(p));
            match kind.as_str() {
                "chain" => {
                    all.chains.insert(name.to_string());
                    if dynamic {
                        per_service.chains.insert(name.to_string());
                    }
                }
                "set" => {
                    all.sets.insert(name.to_string());
                    if dynamic {
                        per_service.sets.insert(name.to_string());
                    }
                }
                "map" => {
                    maps.insert(name.to_string());
                }
                _ => {}
            }
        }
    }
    (per_service, all, maps)
}

/// The script removing every object of ours (`all` chains and sets, `maps`) from the
/// table, leaving tug-net's alone.
pub fn removal(table: &str, all: &Objects, maps: &BTreeSet<String>) -> String {
    let t = format!("ip {table}");
    let mut s = String::new();
    for c in &all.chains {
        let _ = writeln!(s, "flush chain {t} {c}");
    }
    // Maps hold `goto` references to chains: they go before the chains.
    for m in maps {
        let _ = writeln!(s, "delete map {t} {m}");
    }
    for c in &all.chains {
        let _ = writeln!(s, "delete chain {t} {c}");
    }
    for set in &all.sets {
        let _ = writeln!(s, "delete set {t} {set}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tug_net::Protocol;

    fn rule(name: &str, eps: &[(u8, u16)]) -> ServicePortRule {
        ServicePortRule {
            namespace: "default".into(),
            name: name.into(),
            port_name: "http".into(),
            protocol: Protocol::Tcp,
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 10)),
            port: 80,
            node_port: None,
            affinity: None,
            endpoints: eps
                .iter()
                .map(|(last, port)| (Ipv4Addr::new(10, 244, 1, *last), *port))
                .collect(),
        }
    }

    fn lines_with<'a>(s: &'a str, needle: &str) -> Vec<&'a str> {
        s.lines().filter(|l| l.contains(needle)).collect()
    }

    #[test]
    fn rendering_table() {
        let three = rule("web", &[(2, 8080), (3, 8080), (4, 8080)]);
        let one = rule("one", &[(2, 8080)]);
        let none = ServicePortRule {
            node_port: Some(30080),
            ..rule("down", &[])
        };
        let affinity = ServicePortRule {
            affinity: Some(600),
            ..rule("sticky", &[(2, 8080), (3, 8080)])
        };
        let nodeport = ServicePortRule {
            node_port: Some(30081),
            ..rule("np", &[(5, 80)])
        };
        // (case, rules, lines that must appear, substrings that must not)
        type Case = (
            &'static str,
            Vec<ServicePortRule>,
            Vec<&'static str>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "three endpoints are picked at random",
                vec![three],
                vec![
                    "add element ip t service-ips { 10.96.0.10 . tcp . 80 : goto svc-default/web/tcp/http }",
                    "add rule ip t svc-default/web/tcp/http numgen random mod 3 vmap { 0 : goto ep-default/web/tcp/http/10.244.1.2/8080, 1 : goto ep-default/web/tcp/http/10.244.1.3/8080, 2 : goto ep-default/web/tcp/http/10.244.1.4/8080 } comment \"default/web/tcp/http\"",
                    "add rule ip t ep-default/web/tcp/http/10.244.1.3/8080 meta l4proto tcp dnat to 10.244.1.3:8080",
                    "add rule ip t ep-default/web/tcp/http/10.244.1.3/8080 ip saddr 10.244.1.3 meta mark set meta mark | 0x4000",
                ],
                vec!["add element ip t no-endpoint-services", "add set"],
            ),
            (
                "one endpoint needs no numgen",
                vec![one],
                vec!["add rule ip t svc-default/one/tcp/http goto ep-default/one/tcp/http/10.244.1.2/8080 comment \"default/one/tcp/http\""],
                vec!["numgen"],
            ),
            (
                "no endpoints: reject on the cluster IP and the node port",
                vec![none],
                vec![
                    "add element ip t no-endpoint-services { 10.96.0.10 . tcp . 80 : goto services-reject }",
                    "add element ip t no-endpoint-nodeports { tcp . 30080 : goto services-reject }",
                ],
                vec!["add element ip t service-ips", "svc-default/down", "dnat"],
            ),
            (
                "affinity remembers the client per endpoint",
                vec![affinity],
                vec![
                    "add set ip t aff-default/sticky/tcp/http/10.244.1.2/8080/600 { type ipv4_addr; flags dynamic,timeout; timeout 600s; }",
                    "add rule ip t svc-default/sticky/tcp/http ip saddr @aff-default/sticky/tcp/http/10.244.1.3/8080/600 goto ep-default/sticky/tcp/http/10.244.1.3/8080 comment \"default/sticky/tcp/http\"",
                    "add rule ip t ep-default/sticky/tcp/http/10.244.1.2/8080 update @aff-default/sticky/tcp/http/10.244.1.2/8080/600 { ip saddr }",
                ],
                vec!["flush set"],
            ),
            (
                "node ports are marked for masquerade",
                vec![nodeport],
                vec![
                    "add element ip t service-nodeports { tcp . 30081 : goto ext-default/np/tcp/http }",
                    "add rule ip t ext-default/np/tcp/http meta mark set meta mark | 0x4000 comment \"default/np/tcp/http\"",
                    "add rule ip t ext-default/np/tcp/http goto svc-default/np/tcp/http",
                ],
                vec![],
            ),
        ];
        for (name, rules, want, not) in cases {
            let s = render("t", &rules, &Objects::default());
            for w in want {
                assert!(s.lines().any(|l| l == w), "{name}: missing {w:?} in\n{s}");
            }
            for n in not {
                assert!(!s.contains(n), "{name}: unexpected {n:?} in\n{s}");
            }
            // Only marked traffic is masqueraded.
            assert_eq!(lines_with(&s, "masquerade").len(), 1, "{name}");
        }
    }

    #[test]
    fn a_sync_deletes_only_stale_objects_and_never_the_table() {
        let before = vec![ServicePortRule {
            affinity: Some(60),
            ..rule("web", &[(2, 8080), (3, 8080)])
        }];
        let after = vec![ServicePortRule {
            affinity: Some(60),
            ..rule("web", &[(3, 8080)])
        }];
        let existing = objects(&before);
        let next = render("t", &after, &existing);
        assert!(!next.contains("delete table"));
        assert_eq!(
            lines_with(&next, "delete "),
            vec![
                "delete chain ip t ep-default/web/tcp/http/10.244.1.2/8080",
                "delete set ip t aff-default/web/tcp/http/10.244.1.2/8080/60",
            ]
        );
        // The stale chain is flushed (dropping its references) before it is deleted.
        let flush = next
            .find("flush chain ip t ep-default/web/tcp/http/10.244.1.2/8080")
            .unwrap();
        assert!(flush < next.find("delete chain").unwrap());
    }

    #[test]
    fn rendered_scripts_pass_the_kernels_check() {
        // `nft -c` validates against the kernel without committing anything; needs root.
        if !nix::unistd::geteuid().is_root()
            || std::process::Command::new("nft")
                .arg("-v")
                .output()
                .is_err()
        {
            eprintln!("skipped: needs root and nft");
            return;
        }
        let rules = vec![
            ServicePortRule {
                node_port: Some(30080),
                affinity: Some(600),
                ..rule("web", &[(2, 8080), (3, 8080)])
            },
            ServicePortRule {
                protocol: Protocol::Udp,
                ..rule("dns", &[(4, 53)])
            },
            ServicePortRule {
                node_port: Some(30081),
                ..rule("down", &[])
            },
        ];
        let script = render("tugsvc-check", &rules, &Objects::default());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("printf '%s' \"$0\" | nft -c -f -")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn listing_finds_only_our_objects_and_removal_leaves_tug_nets() {
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "ip", "name": "t", "handle": 1}},
            {"chain": {"family": "ip", "table": "t", "name": "prerouting", "handle": 1}},
            {"chain": {"family": "ip", "table": "t", "name": "hostports", "handle": 2}},
            {"chain": {"family": "ip", "table": "t", "name": "services", "handle": 3}},
            {"chain": {"family": "ip", "table": "t", "name": "services-prerouting", "handle": 4}},
            {"chain": {"family": "ip", "table": "t", "name": "svc-default/web/tcp/http", "handle": 5}},
            {"map": {"family": "ip", "table": "t", "name": "service-ips", "handle": 6}},
            {"set": {"family": "ip", "table": "t", "name": "aff-default/web/tcp/http/10.244.1.2/8080/60", "handle": 7}},
            {"rule": {"family": "ip", "table": "t", "chain": "services", "handle": 8}}]}"#;
        let (per_service, all, maps) = parse_listing(listing);
        assert_eq!(
            per_service.chains.iter().collect::<Vec<_>>(),
            ["svc-default/web/tcp/http"]
        );
        assert_eq!(per_service.sets.len(), 1);
        assert_eq!(all.chains.len(), 3, "{all:?}");
        let script = removal("t", &all, &maps);
        assert!(
            !script.contains(" prerouting\n") && !script.contains("hostports"),
            "{script}"
        );
        let map_at = script.find("delete map ip t service-ips").unwrap();
        assert!(map_at < script.find("delete chain").unwrap(), "{script}");
        assert!(script.contains("delete set ip t aff-default/web/tcp/http/10.244.1.2/8080/60"));
    }
}
