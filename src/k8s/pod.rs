//! Pods as a drain sees them, as `kubectl drain` does: mirror pods and DaemonSet pods stay,
//! finished pods go without ceremony, pods without a controller need `--force`, pods with
//! emptyDir need `--delete-emptydir-data`, and a pod whose owner vetoed eviction needs that
//! owner's consent. [`disposition`] is that rule, once: the planner applies it to an inventory's
//! pods and the drain to live ones, through [`DrainView`].

use k8s_openapi::api::core::v1::Pod;

use super::annotations::MIRROR_POD;

/// What a drain needs to know about a pod, whatever form the pod comes in.
pub trait DrainView {
    fn mirror(&self) -> bool;
    fn daemonset(&self) -> bool;
    fn finished(&self) -> bool;
    fn controlled(&self) -> bool;
    fn empty_dir(&self) -> bool;
    /// The annotation by which an owner vetoed eviction (`safe-to-evict=false`, ...).
    fn veto(&self) -> Option<String>;
}

/// What a drain must be allowed before it may evict a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// No controller recreates it: `--force` deletes it for good.
    Force,
    /// Its emptyDir data is lost: `--delete-emptydir-data`.
    DeleteEmptyDirData,
    /// Its owner vetoed eviction with this annotation; no flag overrides that.
    OwnerConsent(String),
}

/// What a drain does with a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Mirror and DaemonSet pods stay on the node.
    Stays,
    /// Succeeded or Failed: deleted without eviction, budget or permission.
    Finished,
    /// Evicted once everything in `needs` is allowed.
    Evicted { needs: Vec<Need> },
}

pub fn disposition(p: &impl DrainView) -> Disposition {
    if p.mirror() || p.daemonset() {
        return Disposition::Stays;
    }
    if p.finished() {
        return Disposition::Finished;
    }
    let mut needs = Vec::new();
    if let Some(veto) = p.veto() {
        needs.push(Need::OwnerConsent(veto));
    }
    if !p.controlled() {
        needs.push(Need::Force);
    }
    if p.empty_dir() {
        needs.push(Need::DeleteEmptyDirData);
    }
    Disposition::Evicted { needs }
}

impl DrainView for Pod {
    fn mirror(&self) -> bool {
        is_mirror(self)
    }
    fn daemonset(&self) -> bool {
        is_daemonset(self)
    }
    fn finished(&self) -> bool {
        is_finished(self)
    }
    fn controlled(&self) -> bool {
        has_controller(self)
    }
    fn empty_dir(&self) -> bool {
        uses_empty_dir(self)
    }
    fn veto(&self) -> Option<String> {
        eviction_vetoed(self)
    }
}

impl DrainView for crate::inventory::PodFacts {
    fn mirror(&self) -> bool {
        self.mirror
    }
    fn daemonset(&self) -> bool {
        self.daemonset
    }
    fn finished(&self) -> bool {
        matches!(self.phase.as_str(), "Succeeded" | "Failed")
    }
    fn controlled(&self) -> bool {
        self.controller.is_some()
    }
    fn empty_dir(&self) -> bool {
        self.empty_dir
    }
    fn veto(&self) -> Option<String> {
        self.eviction_veto.clone()
    }
}

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

    /// The planner's view of a pod (an inventory's facts) and the drain's (the live object) get
    /// the same answer from the one rule.
    #[test]
    fn a_live_pod_and_its_inventory_facts_get_the_same_disposition() {
        use crate::inventory::PodFacts;
        let owned = |kind: &str| serde_json::json!([{"apiVersion": "apps/v1", "kind": kind, "name": "o", "uid": "u", "controller": true}]);
        let cases = [
            (
                serde_json::json!({"metadata": {"name": "a", "namespace": "x", "ownerReferences": owned("ReplicaSet")}}),
                Disposition::Evicted { needs: vec![] },
            ),
            (
                serde_json::json!({"metadata": {"name": "a", "namespace": "x"}, "spec": {"containers": [], "volumes": [{"name": "s", "emptyDir": {}}]}}),
                Disposition::Evicted { needs: vec![Need::Force, Need::DeleteEmptyDirData] },
            ),
            (
                serde_json::json!({"metadata": {"name": "a", "namespace": "x", "ownerReferences": owned("DaemonSet")}}),
                Disposition::Stays,
            ),
            (
                serde_json::json!({"metadata": {"name": "a", "namespace": "x", "annotations": {"kubernetes.io/config.mirror": "h"}}}),
                Disposition::Stays,
            ),
            (
                serde_json::json!({"metadata": {"name": "a", "namespace": "x"}, "status": {"phase": "Failed"}}),
                Disposition::Finished,
            ),
            (
                serde_json::json!({"metadata": {"name": "a", "namespace": "x", "ownerReferences": owned("ReplicaSet"), "annotations": {"karpenter.sh/do-not-disrupt": "true"}}}),
                Disposition::Evicted { needs: vec![Need::OwnerConsent("karpenter.sh/do-not-disrupt=true".into())] },
            ),
        ];
        for (json, expected) in cases {
            let live: Pod = serde_json::from_value(json.clone()).unwrap();
            let facts = PodFacts {
                controller: has_controller(&live).then(|| "Kind/o".to_string()),
                phase: live.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default(),
                mirror: is_mirror(&live),
                daemonset: is_daemonset(&live),
                empty_dir: uses_empty_dir(&live),
                eviction_veto: eviction_vetoed(&live),
                ..Default::default()
            };
            assert_eq!(disposition(&live), expected, "{json}");
            assert_eq!(disposition(&facts), expected, "{json}");
        }
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
