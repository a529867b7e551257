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

/// Why an owner asked that a pod not be evicted, if one did: cluster-autoscaler's
/// `safe-to-evict: "false"` or Karpenter's `do-not-disrupt: "true"`.
pub fn eviction_vetoed(p: &Pod) -> Option<String> {
    let a = p.metadata.annotations.as_ref()?;
    if a.get(super::annotations::SAFE_TO_EVICT).is_some_and(|v| v.eq_ignore_ascii_case("false")) {
        return Some(format!("{}=false", super::annotations::SAFE_TO_EVICT));
    }
    if a.get(super::annotations::DO_NOT_DISRUPT).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Some(format!("{}=true", super::annotations::DO_NOT_DISRUPT));
    }
    None
}

/// Namespaces of storage and service-mesh agents: their pods leave a node last, once the
/// workloads that use them are gone (Cluster API's drain order puts them last too).
const LATE_NAMESPACES: &[&str] = &[
    "longhorn-system",
    "rook-ceph",
    "openebs",
    "portworx",
    "piraeus-datastore",
    "istio-system",
    "linkerd",
    "kuma-system",
];

/// The wave a drain evicts a pod in (lower first): `k8s-upgrade.dev/drain-order` when set (0 to
/// 9), else 1 for storage and mesh agents and 0 for everything else.
pub fn drain_wave(p: &Pod) -> u8 {
    if let Some(order) = p.metadata.annotations.as_ref().and_then(|a| a.get(super::annotations::DRAIN_ORDER))
        && let Ok(n) = order.trim().parse::<u8>()
    {
        return n.min(9);
    }
    let ns = p.metadata.namespace.as_deref().unwrap_or_default();
    let name = p.metadata.name.as_deref().unwrap_or_default();
    u8::from(LATE_NAMESPACES.contains(&ns) || name.contains("csi-") || name.starts_with("csi"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, annotations: &[(&str, &str)]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name, "annotations": annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()}
        }))
        .unwrap()
    }

    #[test]
    fn owners_can_veto_an_eviction_and_agents_leave_last() {
        assert_eq!(
            eviction_vetoed(&pod("a", "b", &[("cluster-autoscaler.kubernetes.io/safe-to-evict", "false")])).as_deref(),
            Some("cluster-autoscaler.kubernetes.io/safe-to-evict=false")
        );
        assert!(eviction_vetoed(&pod("a", "b", &[("karpenter.sh/do-not-disrupt", "true")])).is_some());
        assert!(
            eviction_vetoed(&pod("a", "b", &[("cluster-autoscaler.kubernetes.io/safe-to-evict", "true")])).is_none()
        );
        assert_eq!(drain_wave(&pod("shop", "web-1", &[])), 0);
        assert_eq!(drain_wave(&pod("longhorn-system", "instance-manager-x", &[])), 1);
        assert_eq!(drain_wave(&pod("kube-system", "csi-ebs-controller-0", &[])), 1);
        assert_eq!(drain_wave(&pod("shop", "db-0", &[("k8s-upgrade.dev/drain-order", "5")])), 5);
        assert_eq!(drain_wave(&pod("shop", "db-0", &[("k8s-upgrade.dev/drain-order", "99")])), 9);
    }
}
