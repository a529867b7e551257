//! Removed APIs, hop by hop: which objects use a group-version that stops being served at a hop
//! of the path, what replaces it and since when, and "no removals at this hop" said explicitly.

use std::collections::HashMap;

use serde_json::json;

use super::{Details, Finding, FindingCode, HopRef, Severity};
use crate::catalog::{ApiEntry, Catalog};
use crate::inventory::Inventory;
use crate::version::Version;

/// What a finding says about one catalog entry, the same for every object that uses it: worked
/// out once per entry, since a large manifest tree has many thousands of objects per entry.
struct EntryText {
    api: usize,
    catalog_details: serde_json::Map<String, serde_json::Value>,
    fix_and_notes: String,
    message: String,
    removed_on_hop: Option<Option<usize>>,
}

fn entry_text(
    api_index: usize,
    api: &ApiEntry,
    from: &Version,
    target: crate::version::Minor,
    hops: &[(Version, Version)],
) -> EntryText {
    let api_version = api.api_version();
    let mut details = serde_json::Map::new();
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
    let kind = &api.kind;
    let fix = match (&replacement, api.replacement_available_in) {
        (Some(r), Some(since)) if since <= from.minor_version() => {
            format!("rewrite it as {r} {kind} now (served since {since}, so before the upgrade)")
        }
        (Some(r), Some(since)) => format!(
            "rewrite it as {r} {kind} once the control plane reaches {since}, before the hop that removes {api_version}"
        ),
        (Some(r), None) => format!("rewrite it as {r} {kind}"),
        (None, _) => {
            format!("{api_version} has no replacement: remove it or move to what the deprecation guide recommends")
        }
    };
    let notes = api.notes.as_deref().map(|n| format!(" Note: {n}")).unwrap_or_default();
    let (message, removed_on_hop) = match api.removed_in {
        Some(removed) if removed <= target => {
            let hop = hops.iter().position(|h| h.0.minor_version() < removed && h.1.minor_version() >= removed);
            let message = if removed <= from.minor_version() {
                format!(
                    "{api_version} {kind} is not served since {removed}, which is at or before the current version {from}"
                )
            } else {
                format!("{api_version} {kind} is no longer served from {removed}")
            };
            (message, Some(hop))
        }
        _ => {
            let removal =
                api.removed_in.map(|r| format!(" and removed in {r}, after this upgrade")).unwrap_or_default();
            (format!("{api_version} {kind} is deprecated{removal}"), None)
        }
    };
    EntryText {
        api: api_index,
        catalog_details: details,
        fix_and_notes: format!("{fix}.{notes}"),
        message,
        removed_on_hop,
    }
}

/// The findings for a run of objects, and which hops they put removals on.
fn object_findings(
    objects: &[crate::inventory::ObservedObject],
    catalog: &Catalog,
    index: &HashMap<(&str, &str, &str), usize>,
    texts: &[EntryText],
    target: crate::version::Minor,
    hops: &[(Version, Version)],
) -> (Vec<Finding>, Vec<bool>) {
    let mut out = Vec::new();
    let mut hops_with_removals = vec![false; hops.len()];
    let hop_ref = |i: usize| HopRef { from: hops[i].0.clone(), to: hops[i].1.clone() };
    for obj in objects {
        let (group, version) = obj.group_version();
        let Some(&api_index) = index.get(&(group, version, obj.kind.as_str())) else { continue };
        let text = &texts[api_index];
        let api = &catalog.apis.apis[text.api];
        if text.removed_on_hop.is_none() && api.deprecated_in.is_none_or(|d| d > target) {
            continue;
        }
        // apiVersion, kind, name, namespace, then what the catalog says: the order people read.
        let mut details = serde_json::Map::with_capacity(4 + text.catalog_details.len());
        details.insert("apiVersion".into(), json!(obj.api_version));
        details.insert("kind".into(), json!(obj.kind));
        details.insert("name".into(), json!(obj.name));
        if let Some(ns) = &obj.namespace {
            details.insert("namespace".into(), json!(ns));
        }
        details.extend(text.catalog_details.iter().map(|(k, v)| (k.clone(), v.clone())));
        let remediation = format!("{}: {}", obj.evidence.describe(), text.fix_and_notes);
        match text.removed_on_hop {
            Some(hop_index) => {
                if let Some(i) = hop_index {
                    hops_with_removals[i] = true;
                }
                out.push(Finding {
                    code: FindingCode::ApiRemoved,
                    severity: Severity::Blocker,
                    hop: hop_index.or((!hops.is_empty()).then_some(0)).map(hop_ref),
                    subject: obj.reference(),
                    message: text.message.clone(),
                    evidence: Some(obj.evidence.clone()),
                    remediation,
                    details: Details::facts(details),
                });
            }
            None => out.push(Finding {
                code: FindingCode::ApiDeprecated,
                severity: Severity::Warning,
                hop: None,
                subject: obj.reference(),
                message: text.message.clone(),
                evidence: Some(obj.evidence.clone()),
                remediation,
                details: Details::facts(details),
            }),
        }
    }
    (out, hops_with_removals)
}

/// Findings for every object whose API is removed at or before the target, placed on the hop
/// that removes it (or the first hop when the current version already does not serve it), and an
/// info finding for each hop without removals.
pub fn removed_apis(inv: &Inventory, catalog: &Catalog, from: &Version, hops: &[(Version, Version)]) -> Vec<Finding> {
    let target = hops.last().map_or(from.minor_version(), |h| h.1.minor_version());
    let index: HashMap<(&str, &str, &str), usize> = catalog
        .apis
        .apis
        .iter()
        .enumerate()
        .map(|(i, a)| ((a.group.as_str(), a.version.as_str(), a.kind.as_str()), i))
        .collect();
    let texts: Vec<EntryText> =
        catalog.apis.apis.iter().enumerate().map(|(i, api)| entry_text(i, api, from, target, hops)).collect();
    // Objects are independent: a large manifest tree is split across the cores, and the parts
    // are joined in order so the findings are the same as a sequential pass.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = inv.objects.len().div_ceil(workers).max(4096);
    let parts: Vec<(Vec<Finding>, Vec<bool>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = inv
            .objects
            .chunks(chunk)
            .map(|objects| scope.spawn(|| object_findings(objects, catalog, &index, &texts, target, hops)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum::<usize>() + hops.len());
    let mut hops_with_removals = vec![false; hops.len()];
    for (findings, removals) in parts {
        out.extend(findings);
        for (seen, here) in hops_with_removals.iter_mut().zip(removals) {
            *seen |= here;
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
            code: FindingCode::ApiRemovalsAtHop,
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
            details: Details::default(),
        });
    }
    out
}
