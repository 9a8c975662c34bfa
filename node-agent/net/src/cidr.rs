//! IPv4 CIDR parsing and the address arithmetic of a podCIDR (gateway, pod range).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::{Error, Result};

/// An IPv4 network, always stored with its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// `a.b.c.d/n`; host bits must be zero (as in `spec.podCIDR`). A bare address is a /32.
    pub fn parse(s: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::Invalid {
            field: "CIDR",
            value: s.to_string(),
            reason: format!("{reason}; expected an IPv4 network like \"10.244.1.0/24\""),
        };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (
                a,
                p.parse::<u8>()
                    .map_err(|_| invalid("the prefix length is not a number"))?,
            ),
            None => (s.trim(), 32),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid("not an IPv4 address"))?;
        if prefix > 32 {
            return Err(invalid("the prefix length is above 32"));
        }
        let cidr = Ipv4Cidr {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        };
        if cidr.network != addr {
            return Err(invalid(&format!(
                "host bits are set (the network is {cidr})"
            )));
        }
        Ok(cidr)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The last address of the network.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    /// The first usable address: the bridge's address and the pods' default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(1))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// The addresses pods may get: after the gateway, before the broadcast address.
    /// Empty for networks smaller than a /30.
    pub fn pod_range(&self) -> impl Iterator<Item = Ipv4Addr> + Clone {
        let first = u32::from(self.network).saturating_add(2);
        let last = u32::from(self.broadcast()).saturating_sub(1);
        let (first, last) = if self.prefix >= 31 {
            (1, 0)
        } else {
            (first, last)
        };
        (first..=last).map(Ipv4Addr::from)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ipv4Cidr::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, Option<(&str, u8)>)] = &[
            ("10.244.1.0/24", Some(("10.244.1.0", 24))),
            ("10.244.0.0/16", Some(("10.244.0.0", 16))),
            (" 10.0.0.0/8 ", Some(("10.0.0.0", 8))),
            ("10.1.2.3", Some(("10.1.2.3", 32))),
            ("0.0.0.0/0", Some(("0.0.0.0", 0))),
            ("10.244.1.5/24", None),
            ("10.244.1.0/33", None),
            ("10.244.1.0/x", None),
            ("fd00::/64", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = Ipv4Cidr::parse(input)
                .ok()
                .map(|c| (c.network().to_string(), c.prefix()));
            assert_eq!(
                got,
                want.map(|(n, p)| (n.to_string(), p)),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn gateway_range_and_contains() {
        let c = Ipv4Cidr::parse("10.244.1.0/24").unwrap();
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 244, 1, 255));
        let range: Vec<_> = c.pod_range().collect();
        assert_eq!(range.len(), 253);
        assert_eq!(range[0], Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(range[252], Ipv4Addr::new(10, 244, 1, 254));
        assert!(c.contains(Ipv4Addr::new(10, 244, 1, 77)));
        assert!(!c.contains(Ipv4Addr::new(10, 244, 2, 1)));
        assert_eq!(
            Ipv4Cidr::parse("10.0.0.0/30").unwrap().pod_range().count(),
            1
        );
        assert_eq!(
            Ipv4Cidr::parse("10.0.0.0/31").unwrap().pod_range().count(),
            0
        );
        assert_eq!(c.to_string(), "10.244.1.0/24");
    }
}
