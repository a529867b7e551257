//! Pods as a drain sees them, as `kubectl drain` does: mirror pods and DaemonSet pods stay,
//! finished pods go without ceremony, pods without a controller need `--force`, pods with
//! emptyDir need `--delete-emptydir-data`.

use k8s_openapi::api::core::v1::Pod;

use super::annotations::MIRROR_POD;

pub fn is_mirror(p: &Pod) -> bool {
    p.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(MIRROR_POD))
}

/// Owned by a DaemonSet controller.
pub fn is_daemonset(p: &Pod) -> bool {
    p.metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|r| r.kind == "DaemonSet" && r.controller == Some(true)))
}

/// Succeeded or Failed: nothing runs any more.
pub fn is_finished(p: &Pod) -> bool {
    matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

pub fn has_controller(p: &Pod) -> bool {
    p.metadata.owner_references.as_ref().is_some_and(|o| o.iter().any(|r| r.controller == Some(true)))
}

pub fn uses_empty_dir(p: &Pod) -> bool {
    p.spec.as_ref().and_then(|s| s.volumes.as_ref()).is_some_and(|v| v.iter().any(|v| v.empty_dir.is_some()))
}

/// `namespace/name`.
pub fn reference(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or_default(),
        p.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Ready when the pod's `Ready` condition is `True`.
pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| super::node::ready_from(c.iter().map(|c| (c.type_.as_str(), c.status.as_str()))))
}
