//! Expectations: the pod creations and deletions a controller issued and has not yet
//! seen in its informer cache, so a lagging cache never makes it act twice (Kubernetes'
//! ControllerExpectations, keyed by pod name instead of counters).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tug_client::ObjectKey;

/// After this long unobserved, an expectation is dropped (a watch event can be lost when
/// the watch restarts; Kubernetes waits the same 5 minutes).
pub const EXPECTATIONS_TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Pending {
    /// Names of pods created but not yet seen in the cache.
    creates: HashSet<String>,
    /// Names and uids of pods deleted but still in the cache without a deletionTimestamp.
    deletes: HashMap<String, String>,
    since: Instant,
}

/// What the cache says about one pod name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub uid: String,
    pub terminating: bool,
}

/// Shared by a controller's workers; each owner key is only synced by one worker at a
/// time, so recording after a call returns cannot race with that owner's next sync.
#[derive(Debug, Default)]
pub struct Expectations {
    pending: Mutex<HashMap<ObjectKey, Pending>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry<'a>(map: &'a mut HashMap<ObjectKey, Pending>, key: &ObjectKey) -> &'a mut Pending {
        map.entry(key.clone()).or_insert_with(|| Pending {
            creates: HashSet::new(),
            deletes: HashMap::new(),
            since: Instant::now(),
        })
    }

    /// `key` created a pod named `name`.
    pub fn expect_creation(&self, key: &ObjectKey, name: &str) {
        let mut map = self.lock();
        let p = Self::entry(&mut map, key);
        p.creates.insert(name.to_string());
        p.since = Instant::now();
    }

    /// `key` is deleting the pod `name` with `uid`.
    pub fn expect_deletion(&self, key: &ObjectKey, name: &str, uid: &str) {
        let mut map = self.lock();
        let p = Self::entry(&mut map, key);
        p.deletes.insert(name.to_string(), uid.to_string());
        p.since = Instant::now();
    }

    /// A deletion that failed will never be observed.
    pub fn deletion_failed(&self, key: &ObjectKey, name: &str) {
        if let Some(p) = self.lock().get_mut(key) {
            p.deletes.remove(name);
        }
    }

    /// Whether every expectation of `key` has been observed through `lookup` (pod name ->
    /// what the cache holds), dropping those that were. Expired expectations count as
    /// observed.
    pub fn satisfied(&self, key: &ObjectKey, lookup: impl Fn(&str) -> Option<Observed>) -> bool {
        let mut map = self.lock();
        let Some(p) = map.get_mut(key) else {
            return true;
        };
        p.creates.retain(|name| lookup(name).is_none());
        p.deletes
            .retain(|name, uid| lookup(name).is_some_and(|o| o.uid == *uid && !o.terminating));
        let done =
            (p.creates.is_empty() && p.deletes.is_empty()) || p.since.elapsed() >= EXPECTATIONS_TTL;
        if done {
            map.remove(key);
        }
        done
    }

    /// The owner is gone: nothing to wait for.
    pub fn forget(&self, key: &ObjectKey) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn expectations_hold_until_the_cache_shows_every_create_and_delete() {
        let e = Expectations::default();
        let key = ObjectKey::new("ns", "rs");
        e.expect_creation(&key, "a");
        e.expect_deletion(&key, "old", "u1");
        let mut cache: BTreeMap<&str, Observed> = BTreeMap::new();
        let obs = |uid: &str, terminating| Observed {
            uid: uid.into(),
            terminating,
        };
        cache.insert("old", obs("u1", false));
        assert!(!e.satisfied(&key, |n| cache.get(n).cloned()));
        cache.insert("a", obs("u2", false));
        assert!(
            !e.satisfied(&key, |n| cache.get(n).cloned()),
            "old still there"
        );
        cache.insert("old", obs("u1", true));
        assert!(
            e.satisfied(&key, |n| cache.get(n).cloned()),
            "terminating counts as deleted"
        );
        // Once satisfied, the entry is gone.
        assert!(e.satisfied(&key, |_| None));
    }

    #[test]
    fn a_recreated_pod_with_the_same_name_counts_as_deleted() {
        let e = Expectations::default();
        let key = ObjectKey::new("ns", "rs");
        e.expect_deletion(&key, "p", "u1");
        let new = Observed {
            uid: "u2".into(),
            terminating: false,
        };
        assert!(e.satisfied(&key, |_| Some(new.clone())));
    }

    #[test]
    fn failed_deletions_and_forgotten_owners_are_not_waited_for() {
        let e = Expectations::default();
        let key = ObjectKey::new("ns", "rs");
        let present = Observed {
            uid: "u1".into(),
            terminating: false,
        };
        e.expect_deletion(&key, "p", "u1");
        e.deletion_failed(&key, "p");
        assert!(e.satisfied(&key, |_| Some(present.clone())));
        e.expect_creation(&key, "c");
        e.forget(&key);
        assert!(e.satisfied(&key, |_| None));
    }
}
