//! The inventory: one pure value holding everything the planner knows about a cluster and its
//! manifests, with where each fact came from.
//!
//! Collectors fill it (`manifests` reads files; live and Helm collectors follow the same shape);
//! the planner only reads it. Every object carries its evidence, so a finding can say how we
//! know: a manifest file and document, a Helm release, a last-applied annotation, objects served
//! at a deprecated version, or the apiserver's request metric.

pub mod live;
pub mod manifests;
pub mod node_events;

use serde::{Deserialize, Serialize};

/// How we know an object uses an API version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum Evidence {
    /// A document in a manifest file (`document` counts from 1).
    #[serde(rename_all = "camelCase")]
    Manifest { file: String, document: usize },
    /// The stored manifest of a Helm release.
    #[serde(rename_all = "camelCase")]
    HelmRelease { release: String, namespace: String, revision: u32 },
    /// The `kubectl.kubernetes.io/last-applied-configuration` annotation of a live object.
    #[serde(rename_all = "camelCase")]
    LastApplied { object: String },
    /// The object is served at a deprecated group-version.
    #[serde(rename_all = "camelCase")]
    ServedObjects { object: String },
    /// `apiserver_requested_deprecated_apis` reported a request.
    #[serde(rename_all = "camelCase")]
    RequestMetric { resource: String },
}

impl Evidence {
    pub fn describe(&self) -> String {
        match self {
            Evidence::Manifest { file, document } => format!("{file} (document {document})"),
            Evidence::HelmRelease { release, namespace, revision } => {
                format!("Helm release {namespace}/{release} revision {revision}")
            }
            Evidence::LastApplied { object } => format!("last-applied annotation of {object}"),
            Evidence::ServedObjects { object } => format!("served object {object}"),
            Evidence::RequestMetric { resource } => format!("apiserver request metric for {resource}"),
        }
    }
}

/// One object seen through some evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub evidence: Evidence,
}

impl ObservedObject {
    /// `(group, version)` of the object's apiVersion (`""` for the core group).
    pub fn group_version(&self) -> (&str, &str) {
        self.api_version.split_once('/').unwrap_or(("", &self.api_version))
    }

    pub fn reference(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// Everything the planner reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    /// Facts about a running cluster, when one was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterFacts>,
    pub objects: Vec<ObservedObject>,
    /// Problems met while collecting (unparsable documents, unreadable files), each naming where.
    pub warnings: Vec<String>,
}

/// What the live collector (or an inventory file) knows about a running cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFacts {
    /// The apiserver's version (`/version`; the oldest apiserver in an HA control plane).
    pub server_version: Option<crate::version::Version>,
    pub nodes: Vec<NodeFacts>,
    /// Control-plane components seen as static (mirror) pods, one entry per node and component.
    pub control_plane: Vec<ComponentFacts>,
    pub addons: Vec<AddonFacts>,
    pub workloads: Vec<WorkloadFacts>,
    pub pods: Vec<PodFacts>,
    pub pdbs: Vec<PdbFacts>,
    /// Group-versions the apiserver serves (`v1`, `apps/v1`, `policy/v1beta1`, ...).
    pub served_group_versions: Vec<String>,
    pub helm_releases: Vec<HelmReleaseFacts>,
    /// Server dry-run evictions made at collection time (`--dry-run-evictions`): one pod per
    /// disruption budget, asking the apiserver whether it would evict it now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eviction_probes: Vec<EvictionProbe>,
    /// Reads the cluster refused (RBAC): what was not read, the permission it needs, and what the
    /// plan cannot check without it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_gaps: Vec<AccessGap>,
    /// Node restarts in the cluster's recent Node events (read for a rehearsal): how long each
    /// took from going down to Ready again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_restarts: Vec<NodeRestart>,
}

/// One node restart seen in the cluster's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRestart {
    pub node: String,
    pub seconds: f64,
    /// The event it began with: `NodeNotReady`, `Starting` or `Rebooted`.
    pub from: String,
}

/// One read the collector could not make for want of a permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessGap {
    /// What was not read ("Helm releases").
    pub what: String,
    /// The permission missing, as `verb resource.group (scope)`.
    pub permission: String,
    /// What the plan cannot check without it.
    pub consequence: String,
    /// Whether the plan is unsafe to follow without it (nodes, pods, workloads, budgets,
    /// deprecated objects), as opposed to missing one kind of evidence.
    pub blocks: bool,
}

/// The answer to one server dry-run eviction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvictionProbe {
    pub namespace: String,
    pub pod: String,
    pub node: String,
    /// `namespace/name` of the budget the pod was chosen for.
    pub pdb: String,
    pub outcome: ProbeOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum ProbeOutcome {
    /// The apiserver would evict it.
    Allowed,
    /// Refused (429: a budget allows no disruption now; 500: more than one budget covers it).
    Refused { status: u16, message: String },
    /// Something else went wrong (not found, forbidden, network).
    Failed { message: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    pub name: String,
    pub roles: Vec<String>,
    pub kubelet: Option<crate::version::Version>,
    pub kube_proxy: Option<crate::version::Version>,
    pub ready: bool,
    pub unschedulable: bool,
    /// `key=value:effect` of each taint.
    pub taints: Vec<String>,
    pub node_info: crate::graph::NodeInfoFacts,
    /// Allocatable pods, CPU cores and memory bytes.
    pub allocatable: (f64, f64, f64),
    /// The node's labels (pool, zone, instance type: what pods select and spread over).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl NodeFacts {
    pub fn is_control_plane(&self) -> bool {
        self.roles.iter().any(|r| r == "control-plane" || r == "master")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentFacts {
    pub node: String,
    /// `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`, `etcd`.
    pub component: String,
    pub image: String,
    pub version: Option<crate::version::Version>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddonFacts {
    /// The catalog's add-on name.
    pub name: String,
    /// The version from the image tag, as written there (`v1.10.1`, `1.9.1-eksbuild.2`).
    pub version: String,
    pub image: String,
    /// `Kind namespace/name` of the workload that runs it.
    pub workload: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadFacts {
    /// Deployment, StatefulSet, DaemonSet, ReplicaSet, Job.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub replicas: i64,
    pub ready: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodFacts {
    pub namespace: String,
    pub name: String,
    pub node: String,
    /// Kind and name of the controller (`ReplicaSet/web-7d9f`), if any.
    pub controller: Option<String>,
    /// The top-level workload (`Deployment/web` for a ReplicaSet's pod).
    pub workload: Option<String>,
    pub phase: String,
    pub ready: bool,
    pub mirror: bool,
    pub daemonset: bool,
    pub empty_dir: bool,
    pub local_volume: bool,
    /// The annotation by which the pod's owner vetoed eviction (`...safe-to-evict=false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_veto: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// Requested CPU cores and memory bytes.
    pub requests: (f64, f64),
    /// Where the pod may run: the `nodeSelector`, `affinity`, `tolerations` and
    /// `topologySpreadConstraints` of its spec, those it has (a rehearsal's twin places pods by
    /// them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<serde_json::Value>,
    /// Seconds from the pod's start to its Ready condition, when it is Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_seconds: Option<f64>,
    /// `terminationGracePeriodSeconds` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PdbFacts {
    pub namespace: String,
    pub name: String,
    /// The `spec.selector` as JSON (`matchLabels` / `matchExpressions`).
    pub selector: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<serde_json::Value>,
    pub current_healthy: i64,
    pub desired_healthy: i64,
    pub disruptions_allowed: i64,
    pub expected_pods: i64,
    /// The operator that manages the budget and relaxes it itself when safe, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Pods in `status.disruptedPods`: evictions the apiserver granted whose pods are not gone
    /// yet. The budget counts them as disrupted until the disruption controller drops them
    /// (two minutes after the grant).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disrupted_pods: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmReleaseFacts {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    pub status: String,
    pub chart: String,
}
