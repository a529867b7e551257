//! Annotation and label keys: ours (under `k8s-upgrade.dev/`), Kubernetes' own, and those of
//! the autoscalers whose opinion on evicting a pod we honour.

/// On a node we cordoned: the run id that cordoned it.
pub const CORDONED_BY: &str = "k8s-upgrade.dev/cordoned-by";
/// On a node in a run: what the run is doing to it.
pub const PHASE: &str = "k8s-upgrade.dev/phase";
/// Label on a node the run skipped and left cordoned for the operator.
pub const QUARANTINED: &str = "k8s-upgrade.dev/quarantined";
/// Why a node was quarantined.
pub const QUARANTINE_REASON: &str = "k8s-upgrade.dev/quarantine-reason";
/// On a pod: the wave (0 to 9) a drain evicts it in; higher waves wait for lower ones.
pub const DRAIN_ORDER: &str = "k8s-upgrade.dev/drain-order";
/// A `PreferNoSchedule` taint on nodes still waiting to roll, so evicted pods avoid them.
pub const UPGRADE_PENDING_TAINT: &str = "k8s-upgrade.dev/upgrade-pending";
/// The simulator's kubelet upgrades to this version when the annotation appears.
pub const SIM_UPGRADE_TO: &str = "sim.k8s-upgrade.dev/upgrade-to";

/// A static pod's mirror in the API.
pub const MIRROR_POD: &str = "kubernetes.io/config.mirror";
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Node role labels: the current one and the name used before 1.20.
pub const ROLE_CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";
pub const ROLE_MASTER: &str = "node-role.kubernetes.io/master";
pub const HOSTNAME: &str = "kubernetes.io/hostname";

/// cluster-autoscaler: `"false"` on a pod means it must not be evicted to scale down.
pub const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/// Karpenter: `"true"` on a pod means it must not be disrupted voluntarily.
pub const DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
