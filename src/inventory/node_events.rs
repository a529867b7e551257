//! Node restarts read off a cluster's Node events: how long each of its recent restarts took,
//! from the node going down to Ready again. A rehearsal takes their median as the time one
//! node's upgrade takes when the operator does not give one.
//!
//! A kubelet records `Starting` when it starts and `NodeNotReady` / `NodeReady` when its Ready
//! condition changes; the node controller records `NodeNotReady` when a kubelet stops posting;
//! a kubelet that finds a new boot ID records `Rebooted`. A restart opens at the first of these
//! "down" events of a node and closes at that node's next `NodeReady`. Events live an hour by
//! default (the apiserver's `--event-ttl`), so these are the restarts of the last hour at most;
//! a restart quick enough that the node never reported NotReady leaves no pair and no sample.
//! Pure: the live collector lists the events and hands them here.

use std::collections::BTreeMap;

use super::NodeRestart;

/// Most Node events read: a large cluster's hour of node churn, and no more.
pub const MAX_NODE_EVENTS: usize = 20_000;
/// A pair further apart than this is not one restart (a node left down, an event lost).
const LONGEST_RESTART_SECONDS: f64 = 3600.0;

/// One Node event: the node it is about, its reason and when it happened (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEvent {
    pub node: String,
    pub reason: String,
    pub at: f64,
}

fn is_down(reason: &str) -> bool {
    matches!(reason, "NodeNotReady" | "Starting" | "Rebooted")
}

/// Each restart the events show, per node in time order, nodes by name.
pub fn restarts(events: &[NodeEvent]) -> Vec<NodeRestart> {
    let mut by_node: BTreeMap<&str, Vec<&NodeEvent>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.at.is_finite()) {
        by_node.entry(e.node.as_str()).or_default().push(e);
    }
    let mut out = Vec::new();
    for (node, mut evs) in by_node {
        // Timestamps have a resolution of a second: at the same second, down comes before up.
        evs.sort_by(|a, b| a.at.total_cmp(&b.at).then_with(|| is_down(&b.reason).cmp(&is_down(&a.reason))));
        let mut open: Option<&NodeEvent> = None;
        for e in evs {
            if is_down(&e.reason) {
                open.get_or_insert(e);
            } else if e.reason == "NodeReady"
                && let Some(down) = open.take()
            {
                let seconds = e.at - down.at;
                if (0.0..=LONGEST_RESTART_SECONDS).contains(&seconds) {
                    out.push(NodeRestart { node: node.to_string(), seconds, from: down.reason.clone() });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(node: &str, reason: &str, at: f64) -> NodeEvent {
        NodeEvent { node: node.into(), reason: reason.into(), at }
    }

    #[test]
    fn a_restart_runs_from_the_first_down_event_to_the_next_ready() {
        let events = [
            ev("a", "NodeNotSchedulable", 90.0),
            ev("a", "NodeNotReady", 100.0),
            ev("a", "Starting", 130.0),
            ev("a", "NodeReady", 142.0),
            ev("b", "Rebooted", 200.0),
            ev("b", "NodeReady", 260.0),
            // Out of order in the list; a Ready with nothing open is no restart.
            ev("a", "NodeReady", 50.0),
        ];
        let r = restarts(&events);
        assert_eq!(
            r,
            [
                NodeRestart { node: "a".into(), seconds: 42.0, from: "NodeNotReady".into() },
                NodeRestart { node: "b".into(), seconds: 60.0, from: "Rebooted".into() },
            ]
        );
    }

    #[test]
    fn same_second_down_and_up_is_a_zero_restart_and_stale_pairs_are_dropped() {
        let events = [
            ev("a", "NodeReady", 10.0),
            ev("a", "NodeNotReady", 10.0),
            ev("b", "NodeNotReady", 0.0),
            ev("b", "NodeReady", 7200.0),
            ev("c", "NodeNotReady", f64::NAN),
            ev("c", "NodeReady", 5.0),
        ];
        let r = restarts(&events);
        assert_eq!(r, [NodeRestart { node: "a".into(), seconds: 0.0, from: "NodeNotReady".into() }]);
    }
}
