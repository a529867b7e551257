//! Human-readable tables, read top to bottom.

use super::columns;
use crate::cli::paths::VersionList;
use crate::graph::{Component, Severity, UpgradePath};

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The path as numbered steps, then notes (warnings first).
pub fn path_table(p: &UpgradePath) -> String {
    let mut out = format!(
        "{}: {} → {}   {}, {}\n",
        p.distro,
        p.from,
        p.to,
        plural(p.summary.control_plane_hops, "control-plane hop", "control-plane hops"),
        plural(p.summary.node_rolls, "node roll", "node rolls"),
    );
    let kubelets: Vec<String> = p.kubelets.iter().map(ToString::to_string).collect();
    out.push_str(&format!("kubelets now: {}\n\n", kubelets.join(", ")));
    if p.hops.is_empty() {
        out.push_str(&format!("Already at {}: nothing to do.\n", p.to));
    } else {
        let mut rows = vec![vec!["STEP".into(), "COMPONENT".into(), "FROM".into(), "TO".into(), "WHY".into()]];
        for (i, h) in p.hops.iter().enumerate() {
            let component = match h.component {
                Component::ControlPlane => "control-plane",
                Component::Nodes => "nodes (roll)",
            };
            rows.push(vec![
                (i + 1).to_string(),
                component.into(),
                h.from.to_string(),
                h.to.to_string(),
                h.reason.clone(),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    if !p.prerequisites.is_empty() {
        out.push_str("\nBefore a hop (blocked until done):\n");
        for b in &p.prerequisites {
            out.push_str(&format!(
                "  {} → {}  {}: {} ({})\n",
                b.from,
                b.to,
                b.name,
                b.fix.as_deref().unwrap_or("clear the condition"),
                b.because
            ));
            out.push_str(&format!("           source: {}\n", b.source));
        }
    }
    if !p.notes.is_empty() {
        out.push_str("\nNotes:\n");
        let mut notes: Vec<_> = p.notes.iter().collect();
        notes.sort_by_key(|n| std::cmp::Reverse(n.severity));
        for n in notes {
            let tag = match n.severity {
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            out.push_str(&format!("  {tag:<8} {}\n", n.message));
            if let Some(src) = &n.source {
                out.push_str(&format!("           source: {src}\n"));
            }
        }
    }
    out
}

/// What a distro offers, newest first.
pub fn versions_table(l: &VersionList) -> String {
    let mut out = format!("{} ({}) as of {}; catalog data of {}\n", l.display_name, l.distro, l.as_of, l.data_date);
    if let Some(p) = &l.support_policy {
        out.push_str(&format!("support: {p}\n"));
    }
    out.push('\n');
    let dash = || "-".to_string();
    let mut rows = vec![vec![
        "MINOR".into(),
        "NEWEST PATCH".into(),
        "RELEASED".into(),
        "STANDARD UNTIL".into(),
        "EXTENDED UNTIL".into(),
        "CHANNELS".into(),
        "STATUS".into(),
    ]];
    for v in &l.versions {
        rows.push(vec![
            v.minor.to_string(),
            v.latest_patch.as_ref().map_or_else(dash, ToString::to_string),
            v.released.map_or_else(dash, |d| d.to_string()),
            v.end_of_standard_support.map_or_else(dash, |d| d.to_string()),
            v.end_of_extended_support.map_or_else(dash, |d| d.to_string()),
            if v.channels.is_empty() { dash() } else { v.channels.join(",") },
            v.status.clone(),
        ]);
    }
    out.push_str(&columns(&rows));
    out
}
