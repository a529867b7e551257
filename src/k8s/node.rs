//! Nodes: readiness, the control-plane role and the kubelet version, over plain values and over
//! `k8s-openapi` nodes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;

use super::annotations::{ROLE_CONTROL_PLANE, ROLE_MASTER};
use crate::version::Version;

/// Ready when the `Ready` condition is `True` (conditions as `(type, status)` pairs).
pub fn ready_from<'a>(mut conditions: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
    conditions.any(|(t, s)| t == "Ready" && s == "True")
}

/// A control-plane node carries the control-plane role label (or the pre-1.20 master one).
pub fn control_plane_from(labels: &BTreeMap<String, String>) -> bool {
    labels.contains_key(ROLE_CONTROL_PLANE) || labels.contains_key(ROLE_MASTER)
}

pub fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| ready_from(c.iter().map(|c| (c.type_.as_str(), c.status.as_str()))))
}

pub fn is_control_plane(n: &Node) -> bool {
    n.metadata.labels.as_ref().is_some_and(control_plane_from)
}

pub fn kubelet_version(n: &Node) -> Option<Version> {
    n.status.as_ref().and_then(|s| s.node_info.as_ref()).and_then(|i| i.kubelet_version.parse().ok())
}

pub fn name(n: &Node) -> &str {
    n.metadata.name.as_deref().unwrap_or_default()
}

pub fn is_unschedulable(n: &Node) -> bool {
    n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
}
