//! The serde shape of every file in `upgrade-paths/` (see `docs/catalog.md`).
//!
//! These types are the schema: unknown keys are refused so that a typo in a data file is an
//! error naming the field, not a silently ignored fact. Semantic checks (ordering, cross
//! references) live in `validate.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Date;
use crate::version::{Minor, Version};

/// Schema version this build reads.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesFile {
    pub schema_version: u32,
    pub data_date: Date,
    pub releases: Vec<Release>,
}

/// One upstream minor release.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Release {
    pub minor: Minor,
    pub released: Date,
    /// End of upstream patch support; absent while no official page we read states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_life: Option<Date>,
    /// Newest patch confirmed by the source (the final one for ended minors).
    pub latest_patch: Version,
    /// Release date of `latest_patch`: how fresh the patch figure is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_patch_date: Option<Date>,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkewFile {
    pub schema_version: u32,
    pub data_date: Date,
    pub source: String,
    pub apiserver: ApiserverSkew,
    pub components: Vec<ComponentSkew>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiserverSkew {
    pub max_minor_step: u32,
    pub ha_max_skew: u32,
}

/// How far one component may drift from the (oldest) kube-apiserver.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentSkew {
    pub name: String,
    pub max_older: u32,
    pub max_newer: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<OlderThan>,
}

/// A stricter window for components older than `version`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OlderThan {
    pub version: Minor,
    pub max_older: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DistroFile {
    pub schema_version: u32,
    pub data_date: Date,
    pub name: String,
    pub display_name: String,
    pub version_format: VersionFormat,
    pub control_plane: ControlPlaneRule,
    pub nodes: NodeRule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support: Option<SupportPolicy>,
    pub offers: Offers,
    #[serde(default)]
    pub versions: Vec<DistroVersion>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub component_versions: Vec<ComponentVersions>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_edges: Vec<BlockedEdge>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionFormat {
    pub example: String,
    pub description: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControlPlaneRule {
    pub max_minor_step: u32,
    /// A cluster on an unsupported minor may go straight to the lowest supported one (AKS).
    #[serde(default)]
    pub jump_from_unsupported: bool,
    /// A cluster on the long-term-support plan may skip minors to a higher minor still in
    /// long-term support (AKS); the plan needs `--lts` to know the cluster is on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lts_skips_to_higher_lts: Option<SourcedFact>,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourcedFact {
    /// The provider's sentence, quoted.
    pub rule: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeRule {
    pub max_older: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<OlderThan>,
    /// Minors one node upgrade may move; `None` means any number.
    #[serde(default)]
    pub max_minor_step: Option<u32>,
    /// The nodes must be on the control plane's minor before it moves to the next one (EKS, for
    /// managed node groups and Fargate); the plan holds every node to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_minor_before_control_plane_hop: Option<SameMinorRule>,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SameMinorRule {
    /// Which nodes the provider requires it of (`managed node groups and Fargate nodes`).
    pub required_for: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SupportPolicy {
    pub policy: String,
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Offers {
    /// Only the minors in `versions`.
    Listed,
    /// Every upstream minor in kubernetes.yaml.
    Upstream,
}

/// A minor as one distro offers it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DistroVersion {
    pub minor: Minor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_standard_support: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_extended_support: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_patch: Option<Version>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    pub source: String,
}

/// Component versions a distro installs for one minor (kubeadm's etcd and CoreDNS).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentVersions {
    pub minor: Minor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coredns: Option<String>,
    pub source: String,
}

/// A hop that is supported in general but must not be taken (when its condition matches).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockedEdge {
    pub name: String,
    /// Semver requirement on the version upgraded from, e.g. `<1.28.3` or `*`.
    pub from: String,
    /// The minor (`1.34`) or exact version (`1.34.1`) upgraded to.
    pub to: Version,
    pub reason: String,
    /// What the operator does to clear the condition (`bring etcd to 3.5.26 or later`): with
    /// it the edge becomes a step before the hop; without it nothing can fix it and the path
    /// must go around it or is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    pub any_of: Vec<Matcher>,
}

/// One fact about a cluster that makes a blocked edge apply.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Matcher {
    /// Some kubelet is older than `version`.
    KubeletBelow { version: Version },
    /// An installed component (etcd, coredns, an add-on) is older than `version`.
    ComponentBelow { component: String, version: Version },
    /// Some node's `status.nodeInfo.<field>` starts with `prefix`.
    NodeInfoPrefix { field: NodeInfoField, prefix: String },
    /// Some node's `status.nodeInfo.<field>` is exactly `value` (when a prefix would also match
    /// a newer value, as `Amazon Linux 2` does `Amazon Linux 2023`).
    NodeInfoEquals { field: NodeInfoField, value: String },
    /// The add-on is installed.
    AddonPresent { addon: String },
    /// Objects or requests of this group/version (and kind) exist.
    ApiInUse {
        group: String,
        version: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum NodeInfoField {
    ContainerRuntimeVersion,
    OsImage,
    KernelVersion,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApisFile {
    pub schema_version: u32,
    pub data_date: Date,
    pub apis: Vec<ApiEntry>,
}

/// A group/version/kind that is deprecated or removed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiEntry {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub resource: String,
    pub namespaced: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced_in: Option<Minor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_in: Option<Minor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_in: Option<Minor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<Gvk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_available_in: Option<Minor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// `false` for a pre-release version an apiserver serves only when `--runtime-config` (and
    /// perhaps a feature gate) turns it on; absent means served by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by_default: Option<bool>,
    /// The deprecation guide's section on this version, when it has one (the notes come from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guide: Option<String>,
    pub source: String,
}

impl ApiEntry {
    /// `group/version` as it appears in `apiVersion` (`v1` for the core group).
    pub fn api_version(&self) -> String {
        self.gvk().api_version()
    }

    pub fn gvk(&self) -> Gvk {
        Gvk { group: self.group.clone(), version: self.version.clone(), kind: self.kind.clone() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    /// `group/version` as it appears in `apiVersion` (`v1` for the core group).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddonsFile {
    pub schema_version: u32,
    pub data_date: Date,
    pub addons: Vec<Addon>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Addon {
    pub name: String,
    pub display_name: String,
    pub detect: Detect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_rule: Option<VersionRule>,
    #[serde(default)]
    pub lines: Vec<AddonLine>,
    /// The project is retired: no release will follow, so no line will cover a newer Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<Retirement>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retirement {
    /// When maintenance ended.
    pub since: Date,
    /// What the project says to do instead, in a sentence.
    pub instead: String,
    pub source: String,
}

/// How to recognise an add-on in a cluster.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Detect {
    /// Image repository suffixes, registry ignored (`coredns/coredns`).
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionRule {
    pub kind: VersionRuleKind,
    pub meaning: Meaning,
    pub source: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum VersionRuleKind {
    /// The add-on's minor equals the Kubernetes minor (cluster-autoscaler).
    SameMinorAsKubernetes,
    /// The add-on follows the kube-proxy skew rules of `skew.yaml`.
    KubeProxySkew,
}

/// What a vendor means by a Kubernetes range; kept in the vendor's own word.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Meaning {
    Tested,
    Supported,
    InstalledByDefault,
    MustMatch,
    BuiltAgainst,
}

impl Meaning {
    pub fn as_str(self) -> &'static str {
        match self {
            Meaning::Tested => "tested",
            Meaning::Supported => "supported",
            Meaning::InstalledByDefault => "installed-by-default",
            Meaning::MustMatch => "must-match",
            Meaning::BuiltAgainst => "built-against",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddonLine {
    /// Semver requirement over the add-on's own version, e.g. `~1.11`.
    pub versions: String,
    pub kubernetes: KubernetesRange,
    pub meaning: Meaning,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<String>,
    pub source: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesRange {
    pub min: Minor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Minor>,
}

impl KubernetesRange {
    pub fn contains(&self, m: Minor) -> bool {
        m >= self.min && self.max.is_none_or(|max| m <= max)
    }
}
