//! The scheduling framework: one trait per extension point (filter, score, bind), the
//! `Status` every plugin answers with, and the per-cycle state plugins share.

use crate::node_info::NodeInfo;
use futures::future::BoxFuture;
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use tug_proto::core::v1::Pod;

/// The highest score a plugin gives one node (kube-scheduler's `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// What a plugin decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    Success,
    /// Does not fit now, might after the cluster changes (a pod leaves, ...).
    Unschedulable,
    /// Does not fit, and no change of other pods would help (taints, selectors).
    UnschedulableAndUnresolvable,
    /// The plugin failed; the pod is retried with back-off.
    Error,
    /// The plugin has nothing to say about this pod.
    Skip,
}

/// A code with the human reasons behind it (one per failed check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
}

impl Status {
    pub fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
        }
    }

    pub fn skip() -> Self {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
        }
    }

    pub fn unschedulable(reason: impl Into<String>) -> Self {
        Status {
            code: Code::Unschedulable,
            reasons: vec![reason.into()],
        }
    }

    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Status {
            code: Code::UnschedulableAndUnresolvable,
            reasons: vec![reason.into()],
        }
    }

    pub fn error(reason: impl Into<String>) -> Self {
        Status {
            code: Code::Error,
            reasons: vec![reason.into()],
        }
    }

    /// Success and Skip both let the pod through.
    pub fn is_success(&self) -> bool {
        matches!(self.code, Code::Success | Code::Skip)
    }

    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message())
    }
}

/// Data computed once per scheduling cycle (in `pre_filter`/`pre_score`) and read for
/// every node, keyed by the plugin's name.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

impl CycleState {
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    pub fn read<T: Any>(&self, key: &'static str) -> Option<&T> {
        self.data.get(key).and_then(|v| v.downcast_ref())
    }
}

pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
}

/// Rules a node must pass. `pre_filter` sees every node once per cycle (for
/// cluster-wide facts like anti-affinity domains); `filter` decides one node.
pub trait FilterPlugin: Plugin {
    fn pre_filter(&self, _state: &mut CycleState, _pod: &Pod, _nodes: &[NodeInfo]) -> Status {
        Status::success()
    }
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status;
}

/// Preferences among feasible nodes: `score` in 0..=100 per node (or any range that
/// `normalize` maps onto 0..=100), multiplied by `weight`.
pub trait ScorePlugin: Plugin {
    fn pre_score(&self, _state: &mut CycleState, _pod: &Pod, _nodes: &[&NodeInfo]) -> Status {
        Status::success()
    }
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> i64;
    /// Maps raw scores onto 0..=MAX_NODE_SCORE; the default leaves them as they are.
    fn normalize(&self, _scores: &mut [i64]) {}
    fn weight(&self) -> i64 {
        1
    }
}

/// Makes the decision real: writes the Binding.
pub trait BindPlugin: Plugin {
    fn bind<'a>(&'a self, pod: &'a Pod, node: &'a str) -> BoxFuture<'a, Status>;
}

/// The plugins one scheduler profile runs, in order.
#[derive(Clone)]
pub struct Profile {
    pub filters: Vec<Arc<dyn FilterPlugin>>,
    pub scores: Vec<Arc<dyn ScorePlugin>>,
    pub binder: Arc<dyn BindPlugin>,
}

/// Scales `scores` so the largest becomes MAX_NODE_SCORE (all zero stays zero); with
/// `reverse`, the largest raw score becomes 0 instead (fewer is better).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let scaled = MAX_NODE_SCORE * *s / max;
        *s = if reverse {
            MAX_NODE_SCORE - scaled
        } else {
            scaled
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_scales_to_the_maximum_and_reverses() {
        let cases: [(&str, Vec<i64>, bool, Vec<i64>); 4] = [
            ("scale", vec![1, 2, 4], false, vec![25, 50, 100]),
            ("reverse", vec![0, 2, 4], true, vec![100, 50, 0]),
            ("all zero", vec![0, 0], false, vec![0, 0]),
            ("all zero reversed", vec![0, 0], true, vec![100, 100]),
        ];
        for (name, mut scores, reverse, want) in cases {
            default_normalize(&mut scores, reverse);
            assert_eq!(scores, want, "{name}");
        }
    }
}
