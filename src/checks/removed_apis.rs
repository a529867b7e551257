//! Removed APIs, hop by hop: which objects use a group-version that stops being served at a hop
//! of the path, what replaces it and since when, and "no removals at this hop" said explicitly.

use std::collections::HashMap;

use serde_json::json;

use super::{Details, Finding, FindingCode, HopRef, Severity};
use crate::catalog::served::ServedApis;
use crate::catalog::{ApiEntry, Catalog, Gvk};
use crate::inventory::Inventory;
use crate::version::Minor;
use crate::version::Version;

/// One finding's worth of text for every object of one catalog entry: a move the object must
/// make before a hop, or a deprecation warning. Worked out once per entry, since a large
/// manifest tree has many thousands of objects per entry.
struct MoveText {
    /// Index of the control-plane hop the move must precede (`None`: before any hop).
    hop: Option<usize>,
    /// A removal that blocks the hop (else a deprecation warning).
    blocks: bool,
    catalog_details: serde_json::Map<String, serde_json::Value>,
    fix_and_notes: String,
    message: String,
}

/// The moves an object of `api` must make along `hops`, each as the finding will word it; a
/// deprecation warning when it needs none but its version (or the last one it is moved to) is
/// deprecated by the target.
fn entry_texts(
    api: &ApiEntry,
    catalog: &Catalog,
    served: &ServedApis,
    from: &Version,
    target: Minor,
    hops: &[(Version, Version)],
) -> Vec<MoveText> {
    let start = api.gvk();
    let minors: Vec<(Minor, Minor)> = hops.iter().map(|h| (h.0.minor_version(), h.1.minor_version())).collect();
    let moves = served.migrations(&start, &minors);
    let kind = &api.kind;
    let entry_of =
        |g: &Gvk| catalog.apis.apis.iter().find(|a| a.group == g.group && a.version == g.version && a.kind == g.kind);
    let mut out = Vec::new();
    for (n, mv) in moves.iter().enumerate() {
        let here = mv.from.api_version();
        let window = served.window(&mv.from);
        let removed = window.and_then(|w| w.until).unwrap_or(minors[mv.hop].1);
        let mut details = serde_json::Map::new();
        details.insert("removedIn".into(), json!(removed.to_string()));
        if let Some(d) = window.and_then(|w| w.deprecated) {
            details.insert("deprecatedIn".into(), json!(d.to_string()));
        }
        if n > 0 {
            // The object's own apiVersion is in the finding's details; this move starts from
            // where the previous one put it.
            details.insert("movedTo".into(), json!(here));
        }
        let fix = match &mv.to {
            Some(to) => {
                let to_window = served.window(to);
                let since = to_window.and_then(|w| w.from);
                details.insert("replacement".into(), json!(to.api_version()));
                if let Some(s) = since {
                    details.insert("replacementAvailableIn".into(), json!(s.to_string()));
                }
                let mut fix = match since {
                    Some(s) if s <= from.minor_version() => {
                        format!(
                            "rewrite it as {} {kind} now (served since {s}, so before the upgrade)",
                            to.api_version()
                        )
                    }
                    Some(s) => format!(
                        "rewrite it as {} {kind} once the control plane reaches {s} (which first serves it), before the hop to {removed}",
                        to.api_version()
                    ),
                    None => format!("rewrite it as {} {kind} before the hop to {removed}", to.api_version()),
                };
                // An interim version: say what comes next.
                if let Some(next) = moves.get(n + 1).and_then(|m| m.to.as_ref()) {
                    fix.push_str(&format!(
                        " ({} is itself removed in {}; the plan moves it on to {} before that hop)",
                        to.api_version(),
                        to_window.and_then(|w| w.until).map_or("a later release".into(), |u| u.to_string()),
                        next.api_version()
                    ));
                } else if let Some(w) = to_window
                    && w.deprecated.is_some_and(|d| d <= target)
                {
                    let later = served
                        .migrations(to, &[(target, w.until.unwrap_or(target.plus(1)))])
                        .first()
                        .and_then(|m| m.to.clone());
                    fix.push_str(&format!(
                        " ({} is deprecated{}; it is the only version served on both sides of that hop{})",
                        to.api_version(),
                        w.until.map(|u| format!(" and removed in {u}")).unwrap_or_default(),
                        later
                            .map(|l| format!(": move on to {} after the upgrade", l.api_version()))
                            .unwrap_or_default()
                    ));
                }
                fix
            }
            None => match entry_of(&mv.from).and_then(|e| e.replacement.as_ref()) {
                Some(r) => format!(
                    "{here} has no replacement served on both sides of the hop to {removed} ({} is served only from {}): export the objects, delete them before the hop and create them again as {} after it",
                    r.api_version(),
                    served.window(r).and_then(|w| w.from).map_or("later".into(), |f| f.to_string()),
                    r.api_version()
                ),
                None => {
                    format!("{here} has no replacement: remove it or move to what the deprecation guide recommends")
                }
            },
        };
        let e = entry_of(&mv.from);
        let notes = e.and_then(|e| e.notes.as_deref()).map(|n| format!(" Note: {n}")).unwrap_or_default();
        let guide = e.and_then(|e| e.guide.as_deref()).map(|g| format!(" See {g}")).unwrap_or_default();
        let message = if n == 0 && removed <= from.minor_version() {
            format!("{here} {kind} is not served since {removed}, which is at or before the current version {from}")
        } else if n == 0 {
            format!("{here} {kind} is no longer served from {removed}")
        } else {
            format!(
                "{here} {kind}, where the move before the hop to {} puts it, is no longer served from {removed}",
                minors[moves[n - 1].hop].1
            )
        };
        out.push(MoveText {
            hop: Some(mv.hop),
            blocks: true,
            catalog_details: details,
            fix_and_notes: format!("{fix}.{notes}{guide}"),
            message,
        });
    }
    if out.is_empty() {
        let mut details = serde_json::Map::new();
        if let Some(r) = api.removed_in {
            details.insert("removedIn".into(), json!(r.to_string()));
        }
        if let Some(d) = api.deprecated_in {
            details.insert("deprecatedIn".into(), json!(d.to_string()));
        }
        // No hop at all (a plan to the version it runs): a version it already lacks still counts.
        if hops.is_empty()
            && let Some(removed) = api.removed_in.filter(|r| *r <= from.minor_version())
        {
            out.push(MoveText {
                hop: None,
                blocks: true,
                catalog_details: details,
                fix_and_notes: format!(
                    "{} {kind} is not served by this version: rewrite it as {}.",
                    api.api_version(),
                    api.replacement.as_ref().map_or("what the deprecation guide recommends".into(), Gvk::api_version)
                ),
                message: format!(
                    "{} {kind} is not served since {removed}, at or before the current version {from}",
                    api.api_version()
                ),
            });
        } else if api.deprecated_in.is_some_and(|d| d <= target) {
            let removal =
                api.removed_in.map(|r| format!(" and removed in {r}, after this upgrade")).unwrap_or_default();
            let instead = served
                .migrations(&start, &[(target, api.removed_in.unwrap_or(target.plus(1)))])
                .first()
                .and_then(|m| m.to.clone())
                .or(api.replacement.clone());
            out.push(MoveText {
                hop: None,
                blocks: false,
                catalog_details: details,
                fix_and_notes: format!(
                    "{}.{}",
                    instead.map_or("plan its removal".into(), |r| format!("move it to {} {kind}", r.api_version())),
                    api.notes.as_deref().map(|n| format!(" Note: {n}")).unwrap_or_default()
                ),
                message: format!("{} {kind} is deprecated{removal}", api.api_version()),
            });
        }
    }
    out
}

/// The findings for a run of objects, and which hops they put removals on.
fn object_findings(
    objects: &[&crate::inventory::ObservedObject],
    index: &HashMap<(&str, &str, &str), usize>,
    texts: &[Vec<MoveText>],
    hops: &[(Version, Version)],
) -> (Vec<Finding>, Vec<bool>) {
    let mut out = Vec::new();
    let mut hops_with_removals = vec![false; hops.len()];
    let hop_ref = |i: usize| HopRef { from: hops[i].0.clone(), to: hops[i].1.clone() };
    for obj in objects {
        let (group, version) = obj.group_version();
        let Some(&api_index) = index.get(&(group, version, obj.kind.as_str())) else { continue };
        for text in &texts[api_index] {
            // apiVersion, kind, name, namespace, then what the catalog says: the order people read.
            let mut details = serde_json::Map::with_capacity(4 + text.catalog_details.len());
            details.insert(
                "apiVersion".into(),
                text.catalog_details.get("movedTo").cloned().unwrap_or_else(|| json!(obj.api_version)),
            );
            details.insert("kind".into(), json!(obj.kind));
            details.insert("name".into(), json!(obj.name));
            if let Some(ns) = &obj.namespace {
                details.insert("namespace".into(), json!(ns));
            }
            details.extend(text.catalog_details.iter().map(|(k, v)| (k.clone(), v.clone())));
            if text.catalog_details.contains_key("movedTo") {
                details.insert("objectApiVersion".into(), json!(obj.api_version));
            }
            let remediation = format!("{}: {}", obj.evidence.describe(), text.fix_and_notes);
            if text.blocks {
                if let Some(i) = text.hop {
                    hops_with_removals[i] = true;
                }
                out.push(Finding {
                    code: FindingCode::ApiRemoved,
                    severity: Severity::Blocker,
                    hop: text.hop.or((!hops.is_empty()).then_some(0)).map(hop_ref),
                    subject: obj.reference(),
                    message: text.message.clone(),
                    evidence: Some(obj.evidence.clone()),
                    remediation,
                    details: Details::facts(details),
                });
            } else {
                out.push(Finding {
                    code: FindingCode::ApiDeprecated,
                    severity: Severity::Warning,
                    hop: None,
                    subject: obj.reference(),
                    message: text.message.clone(),
                    evidence: Some(obj.evidence.clone()),
                    remediation,
                    details: Details::facts(details),
                });
            }
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
    let served = ServedApis::new(&catalog.apis);
    let texts: Vec<Vec<MoveText>> =
        catalog.apis.apis.iter().map(|api| entry_texts(api, catalog, &served, from, target, hops)).collect();
    // An object the apiserver serves at several deprecated versions of one kind is one object:
    // it is followed from the version removed first, whose moves cover the later ones.
    let mut first_removed: HashMap<(&str, Option<&str>, &str), (Minor, usize)> = HashMap::new();
    for (i, o) in inv.objects.iter().enumerate() {
        if let crate::inventory::Evidence::ServedObjects { .. } = o.evidence {
            let (group, version) = o.group_version();
            let g = Gvk { group: group.into(), version: version.into(), kind: o.kind.clone() };
            let until = served.window(&g).and_then(|w| w.until).unwrap_or(Minor::new(u32::MAX, 0));
            let key = (o.kind.as_str(), o.namespace.as_deref(), o.name.as_str());
            let e = first_removed.entry(key).or_insert((until, i));
            if until < e.0 {
                *e = (until, i);
            }
        }
    }
    let objects: Vec<&crate::inventory::ObservedObject> = inv
        .objects
        .iter()
        .enumerate()
        .filter(|(i, o)| match o.evidence {
            crate::inventory::Evidence::ServedObjects { .. } => {
                first_removed.get(&(o.kind.as_str(), o.namespace.as_deref(), o.name.as_str())).is_none_or(|e| e.1 == *i)
            }
            _ => true,
        })
        .map(|(_, o)| o)
        .collect();
    // Objects are independent: a large manifest tree is split across the cores, and the parts
    // are joined in order so the findings are the same as a sequential pass.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = objects.len().div_ceil(workers).max(4096);
    let parts: Vec<(Vec<Finding>, Vec<bool>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = objects
            .chunks(chunk)
            .map(|objects| scope.spawn(|| object_findings(objects, &index, &texts, hops)))
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
        // Versions a cluster serves only when switched on are counted, not listed: they matter
        // to the clusters that use them, and those have objects that raise their own findings.
        let (mut removed_here, mut off_by_default) = (Vec::new(), 0);
        for a in &catalog.apis.apis {
            if a.removed_in.is_some_and(|r| h.0.minor_version() < r && r <= h.1.minor_version()) {
                if a.served_by_default == Some(false) {
                    off_by_default += 1;
                } else {
                    removed_here.push(format!("{} {}", a.api_version(), a.kind));
                }
            }
        }
        let off = match off_by_default {
            0 => String::new(),
            1 => " (and 1 version served only when switched on)".to_string(),
            n => format!(" (and {n} versions served only when switched on)"),
        };
        out.push(Finding {
            code: FindingCode::ApiRemovalsAtHop,
            severity: Severity::Info,
            hop: Some(HopRef { from: h.0.clone(), to: h.1.clone() }),
            subject: format!("{} → {}", h.0.minor_version(), h.1.minor_version()),
            message: if removed_here.is_empty() {
                format!("no API removals at the hop to {}{off}", h.1.minor_version())
            } else {
                format!(
                    "{} stop being served at {}{off}; nothing in the inventory uses them",
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
