//! PodDisruptionBudgets: who manages one, and whether it can let a given pod go as things stand.

use std::collections::BTreeMap;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;

/// `app.kubernetes.io/managed-by` values that are deployment tools, not operators: a budget they
/// apply is the user's, and does not change by itself.
const DEPLOYERS: &[&str] = &["helm", "kustomize", "kubectl", "argocd", "flux", "terraform", "pulumi", "kapp"];

/// The operator that manages a budget (and relaxes it itself when it is safe, as Longhorn's
/// instance managers, KubeVirt's live migrations and Rook's OSD budgets do): its controlling
/// owner, or the `app.kubernetes.io/managed-by` label when that names no deployment tool.
pub fn operator_from(owners: &[(String, String, bool)], labels: &BTreeMap<String, String>) -> Option<String> {
    if let Some((kind, name, _)) = owners.iter().find(|o| o.2).or(owners.first()) {
        return Some(format!("{kind} {name}"));
    }
    labels
        .get("app.kubernetes.io/managed-by")
        .filter(|m| !DEPLOYERS.contains(&m.to_ascii_lowercase().as_str()))
        .cloned()
}

pub fn operator_of(pdb: &PodDisruptionBudget) -> Option<String> {
    let owners: Vec<(String, String, bool)> = pdb
        .metadata
        .owner_references
        .iter()
        .flatten()
        .map(|o| (o.kind.clone(), o.name.clone(), o.controller == Some(true)))
        .collect();
    operator_from(&owners, pdb.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
}

/// Whether a budget in this state refuses to let this pod go until something changes: no
/// disruption allowed and no room to allow one. A pod that is not ready may still go when the
/// budget's `unhealthyPodEvictionPolicy` is `AlwaysAllow`, or under the default
/// `IfHealthyBudget` while the budget is healthy.
pub fn refuses(
    current_healthy: i64,
    desired_healthy: i64,
    expected_pods: i64,
    disruptions_allowed: i64,
    pod_ready: bool,
    unhealthy_policy: Option<&str>,
) -> bool {
    if disruptions_allowed > 0 || expected_pods <= 0 || desired_healthy < expected_pods {
        return false;
    }
    if !pod_ready {
        let policy = unhealthy_policy.unwrap_or("IfHealthyBudget");
        if policy == "AlwaysAllow" || current_healthy >= desired_healthy {
            return false;
        }
    }
    true
}

/// [`refuses`] for a budget object.
pub fn refuses_pod(pdb: &PodDisruptionBudget, pod_ready: bool) -> bool {
    let st = pdb.status.clone().unwrap_or_default();
    let policy = pdb.spec.as_ref().and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
    refuses(
        i64::from(st.current_healthy),
        i64::from(st.desired_healthy),
        i64::from(st.expected_pods),
        i64::from(st.disruptions_allowed),
        pod_ready,
        policy,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_owners_or_non_deployer_managers() {
        let none = BTreeMap::new();
        let owner = vec![("VirtualMachineInstance".to_string(), "vm-1".to_string(), true)];
        assert_eq!(operator_from(&owner, &none).as_deref(), Some("VirtualMachineInstance vm-1"));
        let label = |v: &str| BTreeMap::from([("app.kubernetes.io/managed-by".to_string(), v.to_string())]);
        assert_eq!(operator_from(&[], &label("rook-ceph-operator")).as_deref(), Some("rook-ceph-operator"));
        assert_eq!(operator_from(&[], &label("Helm")), None);
        assert_eq!(operator_from(&[], &none), None);
    }

    #[test]
    fn a_budget_refuses_only_without_room_and_lets_unready_pods_go_by_its_policy() {
        // minAvailable = replicas: nothing may go.
        assert!(refuses(1, 1, 1, 0, true, None));
        // Room to allow one later (a pod is restarting): not a refusal for good.
        assert!(!refuses(1, 1, 2, 0, true, None));
        assert!(!refuses(2, 1, 2, 1, true, None));
        // An unready pod under a broken budget: only AlwaysAllow lets it go.
        assert!(refuses(0, 1, 1, 0, false, None));
        assert!(!refuses(0, 1, 1, 0, false, Some("AlwaysAllow")));
        // An unready pod while the budget is healthy goes under the default policy.
        assert!(!refuses(1, 1, 1, 0, false, Some("IfHealthyBudget")));
    }
}
