//! Every kernel-visible name tug-net creates, derived from the node name and pod uid, and
//! the validation that keeps those names legal and unambiguous.

use crate::{Error, Result};

/// Where `ip netns` keeps named network namespaces (machine-wide, hence the node name in
/// every name we put there).
pub const NETNS_DIR: &str = "/run/netns";

/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// A node name must be a Kubernetes node name (DNS subdomain: lowercase letters, digits,
/// '-', '.'); it ends up in netns file names, link aliases and the nft table name.
pub fn validate_node(node: &str) -> Result<()> {
    let ok = !node.is_empty()
        && node.len() <= 128
        && node
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && node.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: "node name",
            value: node.to_string(),
            reason:
                "use 1-128 lowercase letters, digits, '-' or '.', starting with a letter or digit"
                    .into(),
        })
    }
}

/// A bridge name must be a legal interface name that nft can quote safely.
pub fn validate_bridge(bridge: &str) -> Result<()> {
    let ok = !bridge.is_empty()
        && bridge.len() <= IFNAME_MAX
        && bridge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && bridge != "."
        && bridge != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: "bridge name",
            value: bridge.to_string(),
            reason: format!(
                "use 1-{IFNAME_MAX} letters, digits, '-', '_' or '.' (agent flag --bridge)"
            ),
        })
    }
}

/// A file-name-safe token for a pod uid: the uid itself when it is short and made of
/// lowercase letters, digits and '-' (every Kubernetes uid), else `x` + a 16-hex hash.
pub fn pod_key(uid: &str) -> String {
    let plain = !uid.is_empty()
        && uid.len() <= 64
        && uid
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if plain {
        uid.to_string()
    } else {
        format!("x{:016x}", fnv1a64(uid.as_bytes()))
    }
}

/// The prefix of every pod netns name of `node` (`_` never occurs in node names, so no
/// other node's prefix can match).
pub fn netns_prefix(node: &str) -> String {
    format!("tug-{node}_")
}

/// The pod's network namespace name under [`NETNS_DIR`].
pub fn netns_name(node: &str, uid: &str) -> String {
    format!("{}{}", netns_prefix(node), pod_key(uid))
}

/// The host-side veth name: `veth` + 8 hex of a hash of node and uid (12 chars), unique
/// across nodes even if several share a namespace.
pub fn veth_name(node: &str, uid: &str) -> String {
    let mut key = Vec::with_capacity(node.len() + uid.len() + 1);
    key.extend_from_slice(node.as_bytes());
    key.push(0);
    key.extend_from_slice(uid.as_bytes());
    format!("veth{:08x}", fnv1a64(&key) as u32)
}

/// The alias (`ip link set ... alias`) marking the bridge as this node's.
pub fn bridge_alias(node: &str) -> String {
    format!("tug:{node}")
}

/// The prefix of the aliases of this node's pod veths.
pub fn veth_alias_prefix(node: &str) -> String {
    format!("tug:{node}:")
}

/// The alias marking a host-side veth as this node's, for this pod.
pub fn veth_alias(node: &str, uid: &str) -> String {
    format!("{}{}", veth_alias_prefix(node), pod_key(uid))
}

/// The nftables table (family `ip`) holding this node's NAT rules.
pub fn nft_table(node: &str) -> String {
    format!("tug-{node}")
}

/// FNV-1a, 64 bit: a stable, dependency-free hash for short names (not for security).
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for good in ["node-1", "n", "worker.example.com", "0abc"] {
            assert!(validate_node(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Node",
            "a_b",
            "-a",
            "a b",
            "a/b",
            "a:b",
            &"a".repeat(129),
        ] {
            assert!(validate_node(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bridge_names() {
        assert!(validate_bridge("tug0").is_ok());
        assert!(validate_bridge("cni-br.1_x").is_ok());
        for bad in ["", "abcdefghijklmnop", "a\"b", "a b", ".."] {
            assert!(validate_bridge(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_short_unique_and_node_scoped() {
        let uid = "6f1c2a3b-1b2c-4d5e-8f90-123456789abc";
        let v = veth_name("node-1", uid);
        assert!(v.len() <= IFNAME_MAX && v.starts_with("veth"), "{v}");
        assert_ne!(v, veth_name("node-2", uid));
        assert_ne!(v, veth_name("node-1", "6f1c2a3b-other"));
        assert_eq!(v, veth_name("node-1", uid), "stable across restarts");
        assert_eq!(netns_name("node-1", uid), format!("tug-node-1_{uid}"));
        // node "a" must never claim node "a-b"'s namespaces.
        assert!(!netns_name("a-b", "x").starts_with(&netns_prefix("a")));
        assert!(!veth_alias("a-b", "x").starts_with(&veth_alias_prefix("a")));
    }

    #[test]
    fn pod_keys_are_file_name_safe() {
        assert_eq!(pod_key("abc-123"), "abc-123");
        for odd in ["../etc", "A", "a/b", "", &"a".repeat(65)] {
            let k = pod_key(odd);
            assert!(k.starts_with('x') && k.len() == 17, "{odd:?} -> {k}");
        }
        assert_ne!(pod_key("a/b"), pod_key("a/c"));
    }
}
