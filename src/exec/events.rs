//! What the executor tells the world: one typed [`Event`] per thing that happened, sent to an
//! [`EventSink`]. The executor never prints; reporters in `cli` turn events into progress bars,
//! log lines and the `--events` JSON lines (one serialized event per line, `event` naming it).

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::plan::StepKind;

/// A node's journaled phase, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeMilestone {
    Cordoned,
    Drained,
    /// The upgrade action was started (the upgrader ran or the operator was told).
    Upgrading,
    /// Ready at the target and its node-level checks passed.
    Upgraded,
    /// Uncordoned (when we cordoned it) and finished.
    Done,
    /// Left cordoned and labelled for the operator.
    Quarantined,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum Event {
    /// The health the gates compare against.
    Baseline {
        workloads: usize,
        budgets: usize,
        pending: usize,
        from_journal: bool,
    },
    StepStart {
        index: usize,
        step: usize,
        total: usize,
        kind: StepKind,
        description: String,
    },
    StepDone {
        step: usize,
        seconds: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<String>,
    },
    StepStopped {
        step: usize,
        message: String,
    },
    /// A group of nodes starts: the control plane, the canary, or a batch.
    BatchStart {
        label: String,
        nodes: Vec<String>,
    },
    /// What the current group waits on ("health gates"), empty when nothing.
    BatchStatus {
        status: String,
    },
    /// A node reached a journaled phase.
    Node {
        step: usize,
        node: String,
        phase: NodeMilestone,
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        seconds: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        why: Option<String>,
        /// For `done`: whether the run uncordoned it (false: it was cordoned before the run).
        #[serde(skip_serializing_if = "Option::is_none")]
        uncordoned: Option<bool>,
    },
    /// What a node is doing right now (for a spinner).
    NodeActivity {
        node: String,
        activity: String,
    },
    /// Pods still to evict from a node.
    PodsLeft {
        node: String,
        left: usize,
        total: usize,
    },
    /// An eviction refused with 429 (a disruption budget, or the apiserver throttling): the
    /// drain of `node` waits on `pod`. Sent when the reason changes, not on every retry.
    EvictionRefused {
        node: String,
        /// `namespace/name` of the pod.
        pod: String,
        /// `namespace/name` of the budget that refused it, when one covers the pod.
        #[serde(skip_serializing_if = "Option::is_none")]
        budget: Option<String>,
        why: String,
    },
    /// A line worth telling the operator, about a node when `node` is set.
    Log {
        #[serde(skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        line: String,
    },
    /// A health gate finished.
    Gate {
        after: String,
        passed: bool,
        checks: u32,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        failures: Vec<String>,
    },
    /// A managed pool's replacement moved on (its provider surges new nodes and removes the
    /// old ones): nodes Ready at the target, old nodes still there, nodes still joining, and the
    /// old nodes it started with.
    PoolProgress {
        step: usize,
        pool: String,
        at_target: usize,
        old_left: usize,
        joining: usize,
        old_total: usize,
    },
    /// An operator step the run could not perform or verify, left to the operator.
    OperatorStepLeft {
        step: usize,
        what: String,
    },
}

impl Event {
    pub fn log(line: impl Into<String>) -> Event {
        Event::Log { node: None, line: line.into() }
    }

    pub fn node_log(node: &str, line: impl Into<String>) -> Event {
        Event::Log { node: Some(node.to_string()), line: line.into() }
    }
}

/// Where events go. Cheap to clone; every clone feeds the same receiver.
#[derive(Clone)]
pub struct EventSink(Arc<dyn Fn(Event) + Send + Sync>);

impl EventSink {
    pub fn new(f: impl Fn(Event) + Send + Sync + 'static) -> EventSink {
        EventSink(Arc::new(f))
    }

    pub fn emit(&self, event: Event) {
        (self.0)(event);
    }

    /// A sink that keeps every event, for tests.
    pub fn collecting() -> (EventSink, Arc<Mutex<Vec<Event>>>) {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let k = kept.clone();
        (EventSink::new(move |e| k.lock().unwrap_or_else(|p| p.into_inner()).push(e)), kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_json_lines_named_by_event() {
        let e = Event::Node {
            step: 3,
            node: "pool-a-1".into(),
            phase: NodeMilestone::Cordoned,
            target: Some("1.31.2".into()),
            seconds: None,
            why: None,
            uncordoned: None,
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"event": "node", "step": 3, "node": "pool-a-1", "phase": "cordoned", "target": "1.31.2"})
        );
        let s = Event::StepStart { index: 0, step: 1, total: 4, kind: StepKind::ControlPlane, description: "x".into() };
        assert_eq!(serde_json::to_value(&s).unwrap()["event"], "step-start");
        assert_eq!(serde_json::to_value(&s).unwrap()["kind"], "control-plane");
    }
}
