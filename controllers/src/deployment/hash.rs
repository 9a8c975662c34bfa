//! The `pod-template-hash`: a short, stable name suffix for a pod template, and template
//! equality that ignores it.

use tug_proto::core::v1::PodTemplateSpec;

/// The label (on ReplicaSet selector, template and pods) that tells ReplicaSets of one
/// Deployment apart.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Kubernetes' `SafeEncodeString` alphabet: no vowels (no words) and no confusable
/// characters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a (32 bit) of the template's JSON plus the collision count, printed in decimal
/// and mapped onto [`ALPHANUMS`], as Kubernetes' `ComputeHash` + `SafeEncodeString`.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    // Structs serialize in field order and maps are BTreeMaps: the bytes are stable.
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(c) = collision_count {
        feed(&c.to_le_bytes());
    }
    hash.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Whether two templates are the same once the hash label is ignored (a ReplicaSet's
/// template carries it, the Deployment's does not).
pub fn equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        t.metadata.labels.remove(POD_TEMPLATE_HASH_LABEL);
        t
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tug_proto::core::v1::{Container, PodSpec};

    fn template(image: &str) -> PodTemplateSpec {
        let mut t = PodTemplateSpec {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        t.metadata.labels.insert("app".into(), "web".into());
        t
    }

    #[test]
    fn the_hash_is_stable_short_and_safe() {
        let h = pod_template_hash(&template("nginx:1"), None);
        assert_eq!(h, pod_template_hash(&template("nginx:1"), None));
        assert!(h.len() <= 10 && !h.is_empty(), "{h}");
        assert!(h.bytes().all(|b| ALPHANUMS.contains(&b)), "{h}");
    }

    #[test]
    fn the_hash_changes_with_the_template_and_the_collision_count() {
        let a = pod_template_hash(&template("nginx:1"), None);
        let cases = [
            pod_template_hash(&template("nginx:2"), None),
            pod_template_hash(&template("nginx:1"), Some(1)),
        ];
        for other in cases {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn templates_compare_equal_without_the_hash_label() {
        let mut labelled = template("nginx:1");
        labelled
            .metadata
            .labels
            .insert(POD_TEMPLATE_HASH_LABEL.into(), "abc".into());
        assert!(equal_ignoring_hash(&labelled, &template("nginx:1")));
        assert!(!equal_ignoring_hash(&labelled, &template("nginx:2")));
    }
}
