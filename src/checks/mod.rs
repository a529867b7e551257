//! Checks: pure functions from the inventory and the upgrade path to findings.
//!
//! Each finding has a stable code, a severity, the hop where it matters, its subject, the
//! evidence that shows it and a remediation sentence. This module owns the finding types and the
//! removed-API check; add-on, skew, drainability and support-calendar checks follow the same
//! shape.

mod access;
mod addons;
mod calendar;
mod drain;
mod removed_apis;
pub mod skew;

pub use access::access;
pub use addons::addons;
pub use calendar::{end_of_support, support_calendar};
pub use drain::drainability;
pub use removed_apis::removed_apis;
pub use skew::skew;

use serde::{Deserialize, Serialize};

use crate::inventory::Evidence;
use crate::version::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Blocker,
    Warning,
    Info,
}

/// A control-plane hop a finding belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HopRef {
    pub from: Version,
    pub to: Version,
}

/// The kind of a finding: a stable name that scripts and the planner route on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FindingCode {
    AddonDefaultChanges,
    AddonNoBridge,
    AddonRetired,
    AddonUncovered,
    AddonUnknownVersion,
    AddonUpgrade,
    ApiDeprecated,
    ApiRemovalsAtHop,
    ApiRemoved,
    EvictionsConfirmed,
    HopPrerequisite,
    EvictionMultiplePdbs,
    EvictionProbeFailed,
    EvictionRefused,
    NoSpareCapacity,
    PdbBlocksDrain,
    PdbSingleReplica,
    PdbUnhealthy,
    PodEmptydir,
    PodEvictionVetoed,
    PodLocalVolume,
    PodNoController,
    ReadForbidden,
    SkewApiservers,
    SkewControlPlane,
    SkewKubelet,
    SkewKubeletBehind,
    SkewKubeProxy,
    SupportEnded,
    SupportEnding,
    SupportExtended,
    UpgradeInProgress,
}

impl FindingCode {
    /// The name the plan document uses (SCREAMING_SNAKE).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::AddonDefaultChanges => "ADDON_DEFAULT_CHANGES",
            FindingCode::AddonNoBridge => "ADDON_NO_BRIDGE",
            FindingCode::AddonRetired => "ADDON_RETIRED",
            FindingCode::AddonUncovered => "ADDON_UNCOVERED",
            FindingCode::AddonUnknownVersion => "ADDON_UNKNOWN_VERSION",
            FindingCode::AddonUpgrade => "ADDON_UPGRADE",
            FindingCode::ApiDeprecated => "API_DEPRECATED",
            FindingCode::ApiRemovalsAtHop => "API_REMOVALS_AT_HOP",
            FindingCode::ApiRemoved => "API_REMOVED",
            FindingCode::EvictionsConfirmed => "EVICTIONS_CONFIRMED",
            FindingCode::HopPrerequisite => "HOP_PREREQUISITE",
            FindingCode::EvictionMultiplePdbs => "EVICTION_MULTIPLE_PDBS",
            FindingCode::EvictionProbeFailed => "EVICTION_PROBE_FAILED",
            FindingCode::EvictionRefused => "EVICTION_REFUSED",
            FindingCode::NoSpareCapacity => "NO_SPARE_CAPACITY",
            FindingCode::PdbBlocksDrain => "PDB_BLOCKS_DRAIN",
            FindingCode::PdbSingleReplica => "PDB_SINGLE_REPLICA",
            FindingCode::PdbUnhealthy => "PDB_UNHEALTHY",
            FindingCode::PodEmptydir => "POD_EMPTYDIR",
            FindingCode::PodEvictionVetoed => "POD_EVICTION_VETOED",
            FindingCode::PodLocalVolume => "POD_LOCAL_VOLUME",
            FindingCode::PodNoController => "POD_NO_CONTROLLER",
            FindingCode::ReadForbidden => "READ_FORBIDDEN",
            FindingCode::SkewApiservers => "SKEW_APISERVERS",
            FindingCode::SkewControlPlane => "SKEW_CONTROL_PLANE",
            FindingCode::SkewKubelet => "SKEW_KUBELET",
            FindingCode::SkewKubeletBehind => "SKEW_KUBELET_BEHIND",
            FindingCode::SkewKubeProxy => "SKEW_KUBE_PROXY",
            FindingCode::UpgradeInProgress => "UPGRADE_IN_PROGRESS",
            FindingCode::SupportEnded => "SUPPORT_ENDED",
            FindingCode::SupportEnding => "SUPPORT_ENDING",
            FindingCode::SupportExtended => "SUPPORT_EXTENDED",
        }
    }
}

impl std::fmt::Display for FindingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Facts specific to a finding. The ones the planner turns into steps are typed fields; the
/// rest (dates, counts, node names) are facts for the reader, kept under their own keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    /// The group-version an API finding is about (`batch/v1beta1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The group-version to move to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// The add-on an add-on finding is about, its workload (`Deployment ns/name`) and the
    /// version line to move to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// The control-plane hop (index among the path's control-plane hops) the fix must precede,
    /// or, for a version-locked add-on, follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_hop: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_hop: Option<usize>,
    #[serde(flatten)]
    pub facts: serde_json::Map<String, serde_json::Value>,
}

impl Details {
    pub fn is_empty(&self) -> bool {
        *self == Details::default()
    }

    /// Details from a map of facts; keys that name a typed field land in it, as they would when
    /// the plan document is read back.
    pub fn facts(facts: serde_json::Map<String, serde_json::Value>) -> Details {
        serde_json::from_value(serde_json::Value::Object(facts.clone()))
            .unwrap_or_else(|_| Details { facts, ..Default::default() })
    }

    /// Any detail by its document key (`null` when absent), typed fields included.
    pub fn get(&self, key: &str) -> serde_json::Value {
        serde_json::to_value(self)
            .ok()
            .and_then(|mut v| v.get_mut(key).map(serde_json::Value::take))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Stable identifier of the kind of finding, e.g. `API_REMOVED`.
    pub code: FindingCode,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop: Option<HopRef>,
    pub subject: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    pub remediation: String,
    /// Facts specific to the finding (removedIn, replacement, ...).
    #[serde(default, skip_serializing_if = "Details::is_empty")]
    pub details: Details,
}
