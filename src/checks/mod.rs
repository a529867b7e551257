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
mod skew;

pub use access::access;
pub use addons::addons;
pub use calendar::support_calendar;
pub use drain::drainability;
pub use removed_apis::removed_apis;
pub use skew::skew;

use serde::Serialize;

use crate::inventory::Evidence;
use crate::version::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Blocker,
    Warning,
    Info,
}

/// A control-plane hop a finding belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HopRef {
    pub from: Version,
    pub to: Version,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Stable identifier of the kind of finding, e.g. `API_REMOVED`.
    pub code: &'static str,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hop: Option<HopRef>,
    pub subject: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    pub remediation: String,
    /// Facts specific to the finding (removedIn, replacement, ...).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}
