//! Removed APIs, hop by hop: which objects use a group-version that stops being served at a hop
//! of the path, what replaces it and since when, and "no removals at this hop" said explicitly.

use serde_json::json;

use super::{Finding, HopRef, Severity};
use crate::catalog::{ApiEntry, Catalog};
use crate::inventory::Inventory;
use crate::version::Version;

fn entry_for<'a>(catalog: &'a Catalog, group: &str, version: &str, kind: &str) -> Option<&'a ApiEntry> {
    catalog.apis.apis.iter().find(|a| a.group == group && a.version == version && a.kind == kind)
}

/// Findings for every object whose API is removed at or before the target, placed on the hop
/// that removes it (or the first hop when the current version already does not serve it), and an
/// info finding for each hop without removals.
pub fn removed_apis(inv: &Inventory, catalog: &Catalog, from: &Version, hops: &[(Version, Version)]) -> Vec<Finding> {
    let mut out = Vec::new();
    let target = hops.last().map_or(from.minor_version(), |h| h.1.minor_version());
    let mut hops_with_removals = vec![false; hops.len()];
    for obj in &inv.objects {
        let (group, version) = obj.group_version();
        let Some(api) = entry_for(catalog, group, version, &obj.kind) else { continue };
        let mut details = serde_json::Map::new();
        details.insert("apiVersion".into(), json!(obj.api_version));
        details.insert("kind".into(), json!(obj.kind));
        details.insert("name".into(), json!(obj.name));
        if let Some(ns) = &obj.namespace {
            details.insert("namespace".into(), json!(ns));
        }
        if let Some(r) = api.removed_in {
            details.insert("removedIn".into(), json!(r.to_string()));
        }
        if let Some(d) = api.deprecated_in {
            details.insert("deprecatedIn".into(), json!(d.to_string()));
        }
        let replacement = api
            .replacement
            .as_ref()
            .map(|r| if r.group.is_empty() { r.version.clone() } else { format!("{}/{}", r.group, r.version) });
        if let Some(r) = &replacement {
            details.insert("replacement".into(), json!(r));
        }
        if let Some(s) = api.replacement_available_in {
            details.insert("replacementAvailableIn".into(), json!(s.to_string()));
        }
        let fix = match (&replacement, api.replacement_available_in) {
            (Some(r), Some(since)) if since <= from.minor_version() => {
                format!("rewrite it as {r} {} now (served since {since}, so before the upgrade)", obj.kind)
            }
            (Some(r), Some(since)) => format!(
                "rewrite it as {r} {} once the control plane reaches {since}, before the hop that removes {}",
                obj.kind, obj.api_version
            ),
            (Some(r), None) => format!("rewrite it as {r} {}", obj.kind),
            (None, _) => format!(
                "{} has no replacement: remove it or move to what the deprecation guide recommends",
                obj.api_version
            ),
        };
        let notes = api.notes.as_deref().map(|n| format!(" Note: {n}")).unwrap_or_default();
        match api.removed_in {
            Some(removed) if removed <= target => {
                let hop_index =
                    hops.iter().position(|h| h.0.minor_version() < removed && h.1.minor_version() >= removed);
                let hop = hop_index.map(|i| HopRef { from: hops[i].0.clone(), to: hops[i].1.clone() });
                if let Some(i) = hop_index {
                    hops_with_removals[i] = true;
                }
                let already = removed <= from.minor_version();
                out.push(Finding {
                    code: "API_REMOVED",
                    severity: Severity::Blocker,
                    hop: hop.or_else(|| hops.first().map(|h| HopRef { from: h.0.clone(), to: h.1.clone() })),
                    subject: obj.reference(),
                    message: if already {
                        format!(
                            "{} {} is not served since {removed}, which is at or before the current version {from}",
                            obj.api_version, obj.kind
                        )
                    } else {
                        format!("{} {} is no longer served from {removed}", obj.api_version, obj.kind)
                    },
                    evidence: Some(obj.evidence.clone()),
                    remediation: format!("{}: {fix}.{notes}", obj.evidence.describe()),
                    details,
                });
            }
            _ => {
                if api.deprecated_in.is_some_and(|d| d <= target) {
                    out.push(Finding {
                        code: "API_DEPRECATED",
                        severity: Severity::Warning,
                        hop: None,
                        subject: obj.reference(),
                        message: format!(
                            "{} {} is deprecated{}",
                            obj.api_version,
                            obj.kind,
                            api.removed_in
                                .map(|r| format!(" and removed in {r}, after this upgrade"))
                                .unwrap_or_default()
                        ),
                        evidence: Some(obj.evidence.clone()),
                        remediation: format!("{}: {fix}.{notes}", obj.evidence.describe()),
                        details,
                    });
                }
            }
        }
    }
    for (i, h) in hops.iter().enumerate() {
        if h.0.minor_version() == h.1.minor_version() || hops_with_removals[i] {
            continue;
        }
        let removed_here: Vec<String> = catalog
            .apis
            .apis
            .iter()
            .filter(|a| a.removed_in.is_some_and(|r| h.0.minor_version() < r && r <= h.1.minor_version()))
            .map(|a| format!("{} {}", a.api_version(), a.kind))
            .collect();
        out.push(Finding {
            code: "API_REMOVALS_AT_HOP",
            severity: Severity::Info,
            hop: Some(HopRef { from: h.0.clone(), to: h.1.clone() }),
            subject: format!("{} → {}", h.0.minor_version(), h.1.minor_version()),
            message: if removed_here.is_empty() {
                format!("no API removals at the hop to {}", h.1.minor_version())
            } else {
                format!(
                    "{} stop being served at {}; nothing in the inventory uses them",
                    removed_here.join(", "),
                    h.1.minor_version()
                )
            },
            evidence: None,
            remediation: "nothing to do".into(),
            details: serde_json::Map::new(),
        });
    }
    out
}
