//! Plans for people: a table read top to bottom, and Markdown for a change ticket.

use super::columns;
use crate::checks::{Finding, Severity};
use crate::plan::Plan;

fn sev(s: Severity) -> &'static str {
    match s {
        Severity::Blocker => "BLOCKER",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

fn actionable(p: &Plan) -> impl Iterator<Item = &Finding> {
    p.findings.iter().filter(|f| f.severity != Severity::Info)
}

pub fn plan_table(p: &Plan) -> String {
    let mut out = format!(
        "{}: {} → {}   {} blocker(s), {} warning(s)\n\n",
        p.distro, p.from, p.to, p.summary.blockers, p.summary.warnings
    );
    if p.summary.blockers > 0 {
        out.push_str("Blockers (fix before the hop named):\n");
        for f in p.findings.iter().filter(|f| f.severity == Severity::Blocker) {
            let hop = f.hop.as_ref().map(|h| format!(" [before {}]", h.to.minor_version())).unwrap_or_default();
            out.push_str(&format!("  ✗ {}{hop}: {}\n    fix: {}\n", f.subject, f.message, f.remediation));
        }
        out.push('\n');
    }
    out.push_str("Steps:\n");
    let mut rows = vec![vec!["#".into(), "STEP".into(), "TARGET".into(), "WHAT".into()]];
    for s in &p.steps {
        rows.push(vec![
            s.order.to_string(),
            s.kind.as_str().into(),
            s.target.as_ref().map_or_else(|| "-".into(), ToString::to_string),
            s.description.clone(),
        ]);
    }
    out.push_str(&columns(&rows));
    let warnings: Vec<&Finding> = p.findings.iter().filter(|f| f.severity == Severity::Warning).collect();
    if !warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for f in warnings {
            out.push_str(&format!("  ! {}: {}\n    fix: {}\n", f.subject, f.message, f.remediation));
        }
    }
    let infos: Vec<&Finding> = p.findings.iter().filter(|f| f.severity == Severity::Info).collect();
    if !infos.is_empty() || !p.notes.is_empty() {
        out.push_str("\nNotes:\n");
        for f in infos {
            out.push_str(&format!("  - {}\n", f.message));
        }
        for n in &p.notes {
            out.push_str(&format!("  - {}\n", n.message));
        }
    }
    out
}

pub fn plan_markdown(p: &Plan) -> String {
    let mut out = format!("# Upgrade plan: {} {} → {}\n\n", p.distro, p.from, p.to);
    out.push_str(&format!("**{} blocker(s), {} warning(s).**\n\n## Steps\n\n", p.summary.blockers, p.summary.warnings));
    for s in &p.steps {
        out.push_str(&format!("{}. **{}** {}\n", s.order, s.kind.as_str(), s.description.replace('|', "\\|")));
    }
    let findings: Vec<&Finding> = actionable(p).collect();
    if !findings.is_empty() {
        out.push_str("\n## Findings\n\n| severity | hop | subject | finding | fix |\n|---|---|---|---|---|\n");
        for f in findings {
            let hop = f
                .hop
                .as_ref()
                .map(|h| format!("{} → {}", h.from.minor_version(), h.to.minor_version()))
                .unwrap_or_default();
            let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
            out.push_str(&format!(
                "| {} | {hop} | {} | {} | {} |\n",
                sev(f.severity),
                cell(&f.subject),
                cell(&f.message),
                cell(&f.remediation)
            ));
        }
    }
    if !p.notes.is_empty() {
        out.push_str("\n## Notes\n\n");
        for n in &p.notes {
            out.push_str(&format!("- {}\n", n.message));
        }
    }
    out
}
