//! `/metrics` in the Prometheus text format: request counts by verb, resource and code,
//! watch events sent, and the store's raft state.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tug_store::StoreStatus;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    watch_events: AtomicU64,
}

impl Metrics {
    pub fn request(&self, verb: &'static str, resource: &str, code: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((verb, resource.to_string(), code)).or_default() += 1;
        }
    }

    pub fn watch_event(&self) {
        self.watch_events.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, store: &StoreStatus, oldest_revision: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Requests by verb, resource and HTTP code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((verb, resource, code), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {n}"
                );
            }
        }
        let gauges: [(&str, &str, &str, u64); 8] = [
            (
                "apiserver_watch_events_total",
                "counter",
                "Watch events sent to clients.",
                self.watch_events.load(Ordering::Relaxed),
            ),
            (
                "tug_store_revision",
                "gauge",
                "The store revision this replica has applied.",
                store.revision,
            ),
            (
                "tug_store_oldest_revision",
                "gauge",
                "The oldest revision a watch can resume from.",
                oldest_revision,
            ),
            ("tug_raft_term", "gauge", "Current raft term.", store.term),
            (
                "tug_raft_leader",
                "gauge",
                "Raft id of the known leader (0 = none).",
                store.leader.unwrap_or(0),
            ),
            (
                "tug_raft_is_leader",
                "gauge",
                "1 if this replica is the raft leader.",
                u64::from(store.is_leader),
            ),
            (
                "tug_raft_commit_index",
                "gauge",
                "Raft commit index.",
                store.commit_index,
            ),
            (
                "tug_raft_applied_index",
                "gauge",
                "Raft index applied to the state machine.",
                store.applied_index,
            ),
        ];
        for (name, ty, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {ty}\n{name} {value}"
            );
        }
        out
    }
}
