//! The plan, and an `apply` run, as one self-contained HTML page that people look at and paste
//! into change tickets: the path drawn as an inline SVG made here (control-plane versions left to
//! right, each hop an arrow, the steps a hop needs placed before it, node rolls after the hop
//! they follow, blockers in red), the blockers first, the findings grouped by hop with their
//! evidence, the ordered steps and, for a run, each step's status and time and a chart of every
//! node's phases. The page loads nothing: its only CSS is inline and allowed by its hash in a
//! Content-Security-Policy that forbids everything else, and it has no script. Every string that
//! came from a cluster or a file is clipped and escaped, and every list is capped with an "and N
//! more" line, so a hostile name cannot run and a plan with thousands of findings stays usable.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use base64::Engine as _;

use crate::checks::{Finding, FindingCode, Severity};
use crate::cli::printable::clip;
use crate::exec::journal::{Journal, JournalStep, NodePhase, NodeRecord, Stamp, StepStatus};
use crate::plan::{Plan, Step, StepAction, StepKind};
use crate::version::Version;

/// Characters of one untrusted string shown (a message, a name, a note).
const MAX_TEXT: usize = 1000;
/// Blockers listed in the banner; the rest are in their hop's group.
const MAX_BANNER: usize = 6;
/// Characters of a blocker's fix in the banner (the whole fix is in its hop's group).
const BANNER_FIX: usize = 220;
/// Findings of each severity shown in one hop's group.
const MAX_GROUP_ROWS: usize = 100;
/// Items of any other list: a step's objects, notes, inventory warnings.
const MAX_LIST: usize = 100;
/// Step cards drawn before one hop, and node-roll cards after one version, in the picture.
const MAX_CARDS: usize = 6;
/// Nodes drawn in the run's timeline (the ones left cordoned are always among them).
const MAX_TIMELINE_NODES: usize = 200;

/// Fill of the version boxes in the path picture. No other element of the page uses it, so a
/// screenshot shows whether the picture is on screen.
pub const VERSION_BOX_FILL: &str = "#1e5bb8";

const INK: &str = "#1f2328";
const MUTED: &str = "#59636e";
const RED: &str = "#cf222e";
const RED_BG: &str = "#ffebe9";
const AMBER_BG: &str = "#fff8c5";
const TEAL: &str = "#1b7c83";
const GREEN: &str = "#1a7f37";
const TEAL_BG: &str = "#e0f4f3";
const GREY_BG: &str = "#f6f8fa";
const GREY_LINE: &str = "#8c959f";
const FONT: &str = "-apple-system, 'Segoe UI', 'Noto Sans', 'Liberation Sans', Helvetica, Arial, sans-serif";

/// HTML-escapes text for an element or a quoted attribute. Control characters and the
/// bidirectional overrides (which can make a name read as another) are shown as `\u{..}` so
/// that what the cluster holds is what the reader sees.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() || is_bidi_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Untrusted text, clipped and escaped.
fn text(s: &str) -> String {
    escape(&clip(s, MAX_TEXT))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `3 more findings`.
fn more(n: usize, one: &str, many: &str) -> String {
    format!("{n} more {}", if n == 1 { one } else { many })
}

/// `12.3s`, `4m05s`, `2h10m`.
fn duration(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!("{}h{:02}m", (secs / 3600.0) as u64, ((secs % 3600.0) / 60.0) as u64)
    }
}

/// `17:45:02.123` (UTC).
fn clock(t: Stamp) -> String {
    let ts = t.0;
    let z = ts.to_zoned(jiff::tz::TimeZone::UTC);
    format!("{:02}:{:02}:{:02}.{:03}", z.hour(), z.minute(), z.second(), z.millisecond())
}

/// `2026-11-27 01:00:00 UTC`, for "generated at".
pub fn generated_at(t: Stamp) -> String {
    let z = t.0.to_zoned(jiff::tz::TimeZone::UTC);
    format!("{} {:02}:{:02}:{:02} UTC", z.date(), z.hour(), z.minute(), z.second())
}

const STYLE: &str = r#"
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --red: #cf222e; --red-bg: #ffebe9;
  --amber: #9a6700; --amber-bg: #fff8c5; --green: #1a7f37; --green-bg: #dafbe1; --teal: #1b7c83; --teal-bg: #e0f4f3; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; font: 14px/1.45 -apple-system, "Segoe UI", "Noto Sans", "Liberation Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 20px 28px 40px; }
h1 { font-size: 24px; margin: 2px 0 8px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
.eyebrow { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .06em; }
.meta { color: var(--muted); font-size: 12.5px; margin: 6px 0 0; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; margin: 4px 0; }
.chip { display: inline-block; border: 1px solid var(--line); border-radius: 999px; padding: 1px 10px; font-size: 12.5px; background: var(--soft); white-space: nowrap; }
.chip.bad { background: var(--red-bg); border-color: var(--red); color: var(--red); font-weight: 600; }
.chip.warn { background: var(--amber-bg); border-color: #d4a72c; color: var(--amber); }
.chip.ok { background: var(--green-bg); border-color: var(--green); color: var(--green); }
.banner { border: 1px solid var(--line); border-left-width: 6px; border-radius: 6px; padding: 10px 16px; margin: 16px 0; background: var(--soft); }
.banner h2 { border: 0; margin: 0 0 6px; padding: 0; font-size: 16px; }
.banner summary { cursor: pointer; }
.banner summary h2 { display: inline; margin: 0; }
.banner.bad { border-color: var(--red); background: var(--red-bg); }
.banner.bad h2 { color: var(--red); }
.banner.warn { border-color: #d4a72c; background: var(--amber-bg); }
.banner.ok { border-color: var(--green); background: var(--green-bg); }
.banner ol { margin: 4px 0 2px; padding-left: 22px; }
.banner li { margin: 3px 0; }
.where { display: inline-block; font-size: 11.5px; font-weight: 600; color: #fff; background: var(--red); border-radius: 4px; padding: 0 6px; margin-right: 4px; }
.fix { color: #3d444d; font-size: 12.5px; }
.banner .fix { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.by { font-size: 12px; color: var(--muted); }
.by.none { color: var(--red); font-weight: 600; }
.by.ok { color: var(--green); font-weight: 600; }
.picture { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; background: #fff; padding: 6px; }
.picture svg { display: block; margin: 0 auto; }
.picture svg.fit { max-width: 100%; height: auto; }
.legend { list-style: none; padding: 0; margin: 8px 0 0; display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 12.5px; color: var(--muted); }
.sw { display: inline-block; width: 14px; height: 10px; border-radius: 2px; border: 1px solid var(--muted); margin-right: 6px; vertical-align: -1px; }
.sw.version { background: #2f6fd0; border-color: #2f6fd0; }
.sw.fix { background: var(--red-bg); border-color: var(--red); }
.sw.warn { background: var(--amber-bg); border-color: #bf8700; }
.sw.step { background: var(--soft); border-color: #8c959f; }
.sw.roll { background: var(--teal-bg); border-color: var(--teal); }
.sw.blocked { background: var(--red); border-color: var(--red); }
.sw.p-cordoned { background: #d4a72c; border-color: #d4a72c; }
.sw.p-drained { background: #e5c07b; border-color: #e5c07b; }
.sw.p-upgrading { background: #8250df; border-color: #8250df; }
.sw.p-waiting { background: #54aeff; border-color: #54aeff; }
.sw.p-upgraded { background: #4ac26b; border-color: #4ac26b; }
.sw.p-left { background: #fff; border: 2px solid var(--red); }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: var(--soft); }
td.num { white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.blocker td:first-child { box-shadow: inset 4px 0 0 var(--red); }
tr.warning td:first-child { box-shadow: inset 4px 0 0 #d4a72c; }
.sev { display: inline-block; font-size: 11.5px; font-weight: 600; border-radius: 4px; padding: 0 6px; }
.sev.blocker { background: var(--red); color: #fff; }
.sev.warning { background: var(--amber-bg); color: var(--amber); border: 1px solid #d4a72c; }
.sev.info { background: var(--soft); color: var(--muted); border: 1px solid var(--line); }
.code { font-size: 10.5px; color: var(--muted); margin-top: 3px; white-space: nowrap; }
table.findings th:nth-child(1) { width: 170px; }
table.findings th:nth-child(2) { width: 30%; }
table.findings th:nth-child(3) { width: 28%; }
table.steps th:nth-child(1) { width: 36px; }
.subject { font-weight: 600; word-break: break-word; }
.evidence { font-size: 12.5px; word-break: break-word; }
.kv { margin: 3px 0 0; font-size: 12px; color: var(--muted); word-break: break-word; }
.kv b { color: var(--ink); font-weight: 500; }
details.group { border: 1px solid var(--line); border-radius: 6px; margin: 10px 0; padding: 0 12px; }
details.group > summary { cursor: pointer; padding: 8px 0; font-weight: 600; }
details.group > summary .chip { font-weight: 500; margin-left: 6px; }
details.more-items > summary, details.notes > summary { cursor: pointer; color: var(--muted); font-size: 12.5px; margin: 4px 0; }
.more { color: var(--muted); font-style: italic; font-size: 12.5px; }
.kind { display: inline-block; font-size: 11.5px; border-radius: 4px; padding: 0 6px; border: 1px solid var(--line); background: var(--soft); white-space: nowrap; }
.kind.control-plane { background: #2f6fd0; border-color: #2f6fd0; color: #fff; }
.kind.nodes { background: var(--teal-bg); border-color: var(--teal); color: var(--teal); }
.st { display: inline-block; font-size: 11.5px; font-weight: 600; border-radius: 4px; padding: 0 6px; white-space: nowrap; }
.st.done { background: var(--green-bg); color: var(--green); }
.st.skipped { background: var(--amber-bg); color: var(--amber); }
.st.failed { background: var(--red); color: #fff; }
.st.running, .st.stopped { background: var(--red-bg); color: var(--red); }
.st.pending { background: var(--soft); color: var(--muted); }
.note { font-size: 12.5px; color: var(--muted); margin-top: 3px; word-break: break-word; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; word-break: break-word; }
ul.plain { margin: 4px 0; padding-left: 20px; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
@media print {
  @page { margin: 14mm; }
  body { font-size: 11px; }
  main { max-width: none; padding: 0; }
  .picture { overflow: visible; border: 0; padding: 0; }
  .picture svg { max-width: 100%; height: auto; }
  details::details-content { content-visibility: visible; display: block; }
  details > summary { list-style: none; }
  tr, .banner li, details.group { break-inside: avoid; }
  .banner .fix { white-space: normal; }
  h2 { break-after: avoid; }
  .banner, .chip, .sev, .st, .kind, .where, .sw { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
}
"#;

/// `sha256-…` of the stylesheet, for the Content-Security-Policy.
fn style_hash() -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, STYLE.as_bytes());
    format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src '{}'; img-src 'none'; base-uri 'none'; form-action 'none'\">\n<meta name=\"referrer\" content=\"no-referrer\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"k8s-upgrade {}\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        style_hash(),
        env!("CARGO_PKG_VERSION"),
    )
}

/// The plan as a page; `generated` says when (a time the caller read, so tests stay fixed).
pub fn plan_html(p: &Plan, generated: &str) -> String {
    let mut body = String::new();
    header(&mut body, p, "Upgrade plan", generated, true);
    blockers_banner(&mut body, p, None);
    path_section(&mut body, p, None);
    findings_section(&mut body, p);
    steps_section(&mut body, p, None);
    notes_section(&mut body, p);
    footer(&mut body, p);
    page(&title(p, "Upgrade plan"), &body)
}

/// What an `apply` run did, for its report.
pub struct RunView<'a> {
    pub journal: &'a Journal,
    /// The run's exit code.
    pub exit: u8,
    /// Why the run stopped, when it did.
    pub error: Option<String>,
    /// Nodes skipped and left cordoned and labelled.
    pub quarantined: &'a [String],
    /// Nodes this process finished.
    pub nodes_done: usize,
    pub took: std::time::Duration,
    pub dry_run: bool,
    /// The command that continues the run, when it can be continued.
    pub continue_with: Option<String>,
    /// When the run ended (open bars of the timeline end here).
    pub ended: Stamp,
    /// Where the journal lives: a file, or the ConfigMap in the cluster.
    pub journal_at: String,
}

/// The report of an `apply` run: the plan it ran (read back from the journal when the run was
/// resumed, which keeps the steps but not the findings) and the run.
pub fn apply_html(plan: Option<&Plan>, run: &RunView<'_>) -> String {
    let j = run.journal;
    let rebuilt;
    let p = match plan {
        Some(p) => p,
        None => {
            rebuilt = plan_of_journal(j);
            &rebuilt
        }
    };
    let mut body = String::new();
    let kind = if run.dry_run { "Upgrade run (dry run: nothing changed)" } else { "Upgrade run" };
    header(&mut body, p, kind, &generated_at(run.ended), plan.is_some());
    run_summary(&mut body, run);
    if plan.is_some() {
        blockers_banner(&mut body, p, Some(j));
    }
    path_section(&mut body, p, Some(j));
    timeline_section(&mut body, run);
    steps_section(&mut body, p, Some(j));
    if plan.is_some() {
        findings_section(&mut body, p);
    } else {
        body.push_str("<h2>Findings</h2>\n<p class=\"more\">This run was resumed from its journal, which keeps the steps but not the plan's findings; <code>k8s-upgrade plan -o html</code> shows the cluster's findings now.</p>\n");
    }
    notes_section(&mut body, p);
    footer(&mut body, p);
    page(&title(p, "Upgrade run"), &body)
}

fn plan_of_journal(j: &Journal) -> Plan {
    Plan {
        api_version: crate::plan::API_VERSION.into(),
        kind: crate::plan::KIND.into(),
        distro: j.distro.clone(),
        from: j.from.clone(),
        to: j.to.clone(),
        kubelets: vec![],
        steps: j.steps.iter().map(|s| s.step.clone()).collect(),
        findings: vec![],
        summary: crate::plan::Summary { blockers: 0, warnings: 0, infos: 0 },
        notes: vec![],
        inventory_warnings: vec![],
    }
}

fn title(p: &Plan, what: &str) -> String {
    format!("{what}: {} {} → {}", text(&p.distro), p.from, p.to)
}

/// The title, the counts and when; `findings` is false for a plan read back from a journal,
/// which does not keep them.
fn header(out: &mut String, p: &Plan, what: &str, generated: &str, findings: bool) {
    let hops = p.steps.iter().filter(|s| s.kind == StepKind::ControlPlane).count();
    let rolls = p.steps.iter().filter(|s| s.kind == StepKind::Nodes).count();
    let _ = writeln!(out, "<header>\n<div class=\"eyebrow\">k8s-upgrade · {}</div>", escape(what));
    let _ = writeln!(out, "<h1>{} {} → {}</h1>\n<div class=\"chips\">", text(&p.distro), p.from, p.to);
    if !findings {
        out.push_str("<span class=\"chip\">findings not in the journal</span>");
    } else if p.summary.blockers > 0 {
        let _ = write!(out, "<span class=\"chip bad\">✗ {}</span>", plural(p.summary.blockers, "blocker", "blockers"));
    } else {
        out.push_str("<span class=\"chip ok\">✓ no blockers</span>");
    }
    if findings && p.summary.warnings > 0 {
        let _ = write!(out, "<span class=\"chip warn\">{}</span>", plural(p.summary.warnings, "warning", "warnings"));
    }
    if findings {
        let _ = write!(out, "<span class=\"chip\">{}</span>", plural(p.summary.infos, "note", "notes"));
    }
    let _ = writeln!(
        out,
        "<span class=\"chip\">{}</span><span class=\"chip\">{}</span><span class=\"chip\">{}</span>\n</div>",
        plural(p.steps.len(), "step", "steps"),
        plural(hops, "control-plane hop", "control-plane hops"),
        plural(rolls, "node roll", "node rolls"),
    );
    let kubelets: BTreeSet<String> = p.kubelets.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "<p class=\"meta\">Generated {} by k8s-upgrade {} · {} {}{}</p>\n</header>",
        escape(generated),
        env!("CARGO_PKG_VERSION"),
        text(&p.api_version),
        text(&p.kind),
        if kubelets.is_empty() {
            String::new()
        } else {
            format!(" · kubelets now: {}", text(&kubelets.into_iter().collect::<Vec<_>>().join(", ")))
        }
    );
}

/// Codes of the findings that stop a node's drain: without a hop, they bite at the node rolls.
fn is_drain_finding(code: FindingCode) -> bool {
    matches!(
        code,
        FindingCode::EvictionMultiplePdbs
            | FindingCode::EvictionProbeFailed
            | FindingCode::EvictionRefused
            | FindingCode::NoSpareCapacity
            | FindingCode::PdbBlocksDrain
            | FindingCode::PdbSingleReplica
            | FindingCode::PdbUnhealthy
            | FindingCode::PodEmptydir
            | FindingCode::PodEvictionVetoed
            | FindingCode::PodLocalVolume
            | FindingCode::PodNoController
    )
}

/// The order of the first step that resolves each finding, by the finding's index.
fn resolved_by(p: &Plan) -> BTreeMap<usize, usize> {
    let mut m = BTreeMap::new();
    for s in &p.steps {
        for i in &s.resolves {
            m.entry(*i).or_insert(s.order);
        }
    }
    m
}

fn where_it_bites(f: &Finding) -> String {
    match &f.hop {
        Some(h) => format!("before {}", h.to.minor_version()),
        None if is_drain_finding(f.code) => "at the node rolls".into(),
        None => "before the upgrade".into(),
    }
}

/// The state of a plan's step in a run: `None` when the run has not reached it (or for a plan).
fn step_status(run: Option<&Journal>, order: usize) -> Option<&JournalStep> {
    run?.steps.iter().find(|s| s.step.order == order)
}

/// A step's mark in the picture of a run: its label and colour, when it has begun.
fn run_mark(run: Option<&Journal>, order: usize) -> Option<(&'static str, &'static str)> {
    let js = step_status(run, order)?;
    match js.status {
        StepStatus::Done => Some(("✓ done", GREEN)),
        StepStatus::Skipped => Some(("skipped", "#9a6700")),
        StepStatus::Failed => Some(("✗ failed", RED)),
        StepStatus::Running => Some(("running", RED)),
        StepStatus::Pending if js.started.is_some() => Some(("stopped", RED)),
        StepStatus::Pending => None,
    }
}

/// The blockers, each with where it bites and the step that fixes it; for a run, whether that
/// step has been done.
fn blockers_banner(out: &mut String, p: &Plan, run: Option<&Journal>) {
    let blockers: Vec<(usize, &Finding)> =
        p.findings.iter().enumerate().filter(|(_, f)| f.severity == Severity::Blocker).collect();
    if blockers.is_empty() {
        out.push_str("<section class=\"banner ok\"><strong>✓ No blockers.</strong> Nothing found stops this path; read the warnings below before the window opens.</section>\n");
        return;
    }
    let by = resolved_by(p);
    let done = |order: usize| step_status(run, order).is_some_and(|s| s.status == StepStatus::Done);
    let open = blockers.iter().filter(|(i, _)| !by.get(i).is_some_and(|o| done(*o))).count();
    let unresolved = blockers.iter().filter(|(i, _)| !by.contains_key(i)).count();
    let no_step = if unresolved > 0 { format!(" ({unresolved} with no step that fixes it)") } else { String::new() };
    let (class, heading) = match (run, open) {
        (None, _) => (
            "bad",
            format!("✗ {} — fix each before the point named{no_step}", plural(blockers.len(), "blocker", "blockers")),
        ),
        (Some(_), 0) => (
            "ok",
            format!(
                "✓ The plan's {} were each fixed by a step this run completed",
                plural(blockers.len(), "blocker", "blockers")
            ),
        ),
        (Some(_), _) => (
            "bad",
            format!("✗ {open} of the plan's {} still open{no_step}", plural(blockers.len(), "blocker", "blockers")),
        ),
    };
    // Once a run has fixed them all they are history: folded, so the run's picture comes first.
    let folded = run.is_some() && open == 0;
    let _ = writeln!(
        out,
        "<section class=\"banner {class}\" id=\"blockers\">\n{}<h2>{}</h2>{}\n<ol>",
        if folded { "<details><summary>" } else { "" },
        escape(&heading),
        if folded { "</summary>" } else { "" }
    );
    for (i, f) in blockers.iter().take(MAX_BANNER) {
        let step = match by.get(i) {
            Some(order) if done(*order) => format!("<span class=\"by ok\">✓ fixed by step {order}</span>"),
            Some(order) => format!("<span class=\"by\">step {order} fixes it</span>"),
            None => "<span class=\"by none\">no step fixes it: the run stops here until it is fixed</span>".into(),
        };
        let _ = writeln!(
            out,
            "<li><span class=\"where\">{}</span> <span class=\"subject\">{}</span>: {} {step}<div class=\"fix\">fix: {}</div></li>",
            escape(&where_it_bites(f)),
            text(&f.subject),
            text(&f.message),
            escape(&clip(&f.remediation, BANNER_FIX))
        );
    }
    out.push_str("</ol>\n");
    if blockers.len() > MAX_BANNER {
        let _ = writeln!(
            out,
            "<p class=\"more\">and {}, listed with their hop under Findings.</p>",
            more(blockers.len() - MAX_BANNER, "blocker", "blockers")
        );
    }
    if folded {
        out.push_str("</details>");
    }
    out.push_str("</section>\n");
}

/// The plan's steps arranged around its control-plane versions, as the picture draws them.
struct Layout<'a> {
    /// The control-plane versions, left to right: where it starts, then each hop's target.
    versions: Vec<Version>,
    /// The control-plane step of hop `i` (from `versions[i]` to `versions[i + 1]`).
    hops: Vec<&'a Step>,
    /// The steps that must be done before hop `i`.
    before: Vec<Vec<&'a Step>>,
    /// The steps that follow version `i`: node rolls, add-ons locked to the version, and steps
    /// with no hop after them.
    after: Vec<Vec<&'a Step>>,
}

fn layout(p: &Plan) -> Layout<'_> {
    let mut l = Layout { versions: vec![p.from.clone()], hops: vec![], before: vec![], after: vec![vec![]] };
    let mut pending = Vec::new();
    for s in &p.steps {
        let follows_hop = s.kind == StepKind::Addon
            && s.resolves.iter().any(|i| p.findings.get(*i).is_some_and(|f| f.details.after_hop.is_some()));
        match &s.action {
            StepAction::ControlPlane { to, .. } => {
                l.before.push(std::mem::take(&mut pending));
                l.hops.push(s);
                l.versions.push(to.clone());
                l.after.push(vec![]);
            }
            StepAction::Nodes { .. } => l.after.last_mut().into_iter().for_each(|a| a.push(s)),
            _ if follows_hop => l.after.last_mut().into_iter().for_each(|a| a.push(s)),
            _ => pending.push(s),
        }
    }
    if let Some(last) = l.after.last_mut() {
        last.extend(pending);
    }
    l
}

/// `flowcontrol v1beta3 → v1` for a move within a group (a card has room for ~30 characters);
/// the whole group-versions otherwise.
fn short_move(from: &str, to: &str) -> String {
    match (from.rsplit_once('/'), to.rsplit_once('/')) {
        (Some((g1, v1)), Some((g2, v2))) if g1 == g2 => {
            format!("{} {v1} → {v2}", g1.split('.').next().unwrap_or(g1))
        }
        _ => format!("{from} → {to}"),
    }
}

/// What a step card says: a heading and one line.
fn card_lines(s: &Step) -> (String, String) {
    let (head, body) = match &s.action {
        StepAction::MigrateApi { api_version, kind, replacement, objects, .. } => (
            format!("migrate {} {kind}", objects.len()),
            match replacement {
                Some(r) => short_move(api_version, r),
                None => format!("{api_version}: remove"),
            },
        ),
        StepAction::HelmRelease { namespace, release, revision, .. } => {
            ("Helm release".to_string(), format!("{namespace}/{release} rev {revision}"))
        }
        StepAction::Addon { addon, line, .. } => (format!("add-on {addon}"), format!("upgrade to {line}")),
        StepAction::Prerequisite { name, .. } => ("prerequisite".to_string(), name.clone()),
        StepAction::Nodes { moves } => {
            let moves: Vec<String> =
                moves.iter().map(|m| format!("{}→{}", m.from.minor_version(), m.to.minor_version())).collect();
            ("node roll".to_string(), format!("kubelets {}", moves.join(", ")))
        }
        StepAction::ControlPlane { from, to } => ("control plane".to_string(), format!("{from} → {to}")),
        StepAction::Manual => ("by hand".to_string(), s.description.clone()),
    };
    (format!("{} {}", s.order, clip(&head, 28)), clip(&body, 31))
}

#[derive(Clone, Copy)]
enum Tone {
    Step,
    Fix,
    Warn,
    Roll,
}

impl Tone {
    fn colours(self) -> (&'static str, &'static str) {
        match self {
            Tone::Step => (GREY_BG, GREY_LINE),
            Tone::Fix => (RED_BG, RED),
            Tone::Warn => (AMBER_BG, "#bf8700"),
            Tone::Roll => (TEAL_BG, TEAL),
        }
    }
}

fn tone_of(p: &Plan, s: &Step, extra_blockers: usize, run: Option<&Journal>) -> Tone {
    // A step the run failed or stopped at is what the reader looks for first.
    if run_mark(run, s.order).is_some_and(|(_, colour)| colour == RED) {
        return Tone::Fix;
    }
    let severities = s.resolves.iter().filter_map(|i| p.findings.get(*i)).map(|f| f.severity);
    let worst = severities.min();
    if extra_blockers > 0 || worst == Some(Severity::Blocker) {
        Tone::Fix
    } else if s.kind == StepKind::Nodes {
        Tone::Roll
    } else if worst == Some(Severity::Warning) {
        Tone::Warn
    } else {
        Tone::Step
    }
}

const BOX_W: f64 = 136.0;
const BOX_H: f64 = 60.0;
const GAP: f64 = 252.0;
const CARD_W: f64 = 212.0;
const CARD_H: f64 = 40.0;
const CARD_GAP: f64 = 10.0;
const PAD_X: f64 = 56.0;
const PAD_Y: f64 = 18.0;
/// Widest picture shrunk to fit the page (about 3/4 of its size on a 1280-pixel page).
const FIT_WIDTH: f64 = 1700.0;

#[allow(clippy::too_many_arguments)]
fn card(
    out: &mut String,
    x: f64,
    y: f64,
    tone: Tone,
    head: &str,
    body: &str,
    tooltip: &str,
    badge: Option<(&str, &str)>,
) {
    let (fill, stroke) = tone.colours();
    let _ = write!(
        out,
        "<g class=\"card\"><title>{}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{CARD_W}\" height=\"{CARD_H}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.3\"/>",
        text(tooltip)
    );
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" font-weight=\"700\" fill=\"{stroke}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"{INK}\">{}</text>",
        x + 10.0,
        y + 15.0,
        escape(head),
        x + 10.0,
        y + 31.0,
        escape(body)
    );
    if let Some((b, colour)) = badge {
        let w = 12.0 + 6.6 * b.chars().count() as f64;
        // On the card's top edge, clear of its text.
        let bx = x + CARD_W - w + 6.0;
        let _ = write!(
            out,
            "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"16\" rx=\"8\" fill=\"{colour}\" stroke=\"#ffffff\" stroke-width=\"1.5\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10.5\" font-weight=\"700\" fill=\"#ffffff\" text-anchor=\"middle\">{}</text>",
            y - 9.0,
            bx + w / 2.0,
            y + 2.5,
            escape(b)
        );
    }
    out.push_str("</g>\n");
}

/// The path as an SVG: control-plane versions as boxes left to right, each hop an arrow
/// labelled with its step, the steps before a hop stacked above it, node rolls below the
/// version they follow; hops with blockers dashed red, steps that fix a blocker red.
pub fn path_svg(p: &Plan, run: Option<&Journal>) -> String {
    let l = layout(p);
    let by = resolved_by(p);
    let blockers: Vec<(usize, &Finding)> =
        p.findings.iter().enumerate().filter(|(_, f)| f.severity == Severity::Blocker).collect();
    // Blockers of each hop, and the unresolved ones without a hop: those of drains go on the
    // first node roll, the others on the starting version.
    let hop_blockers: Vec<usize> = l
        .hops
        .iter()
        .map(|s| match &s.action {
            StepAction::ControlPlane { from, to } => {
                blockers.iter().filter(|(_, f)| f.hop.as_ref().is_some_and(|h| h.from == *from && h.to == *to)).count()
            }
            _ => 0,
        })
        .collect();
    let loose: Vec<&Finding> =
        blockers.iter().filter(|(i, f)| f.hop.is_none() && !by.contains_key(i)).map(|(_, f)| *f).collect();
    let first_roll = l.after.iter().flatten().find(|s| s.kind == StepKind::Nodes).map(|s| s.order);
    let drain_blockers =
        if first_roll.is_some() { loose.iter().filter(|f| is_drain_finding(f.code)).count() } else { 0 };
    let start_blockers = loose.len() - drain_blockers;

    let shown = |n: usize| if n > MAX_CARDS { MAX_CARDS + 1 } else { n };
    let max_before = l.before.iter().map(|b| shown(b.len())).max().unwrap_or(0);
    let max_after = l.after.iter().map(|a| shown(a.len())).max().unwrap_or(0);
    let stack = |n: usize| n as f64 * (CARD_H + CARD_GAP);
    let y0 = PAD_Y + stack(max_before) + if max_before > 0 { 26.0 } else { 8.0 };
    let arrow_y = y0 + BOX_H / 2.0;
    let roll_top = y0 + BOX_H + if start_blockers > 0 { 62.0 } else { 42.0 };
    let height = (roll_top + stack(max_after) + PAD_Y).max(y0 + BOX_H + 64.0);
    let n = l.versions.len() as f64;
    let width = PAD_X * 2.0 + n * BOX_W + (n - 1.0) * GAP;
    let box_x = |i: usize| PAD_X + i as f64 * (BOX_W + GAP);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"path-picture\"{} width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-labelledby=\"path-title\" font-family=\"{FONT}\">",
        // Shrunk to the page up to a point; a longer path scrolls sideways, still readable.
        if width <= FIT_WIDTH { " class=\"fit\"" } else { "" }
    );
    let _ = writeln!(
        out,
        "<title id=\"path-title\">{} upgrade path {} → {}: {}, {}</title>",
        text(&p.distro),
        p.from,
        p.to,
        plural(l.hops.len(), "control-plane hop", "control-plane hops"),
        plural(blockers.len(), "blocker", "blockers")
    );
    let _ = writeln!(
        out,
        "<defs><marker id=\"arrow-ink\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{INK}\"/></marker><marker id=\"arrow-red\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{RED}\"/></marker><marker id=\"arrow-green\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{GREEN}\"/></marker></defs>"
    );

    // Hops: the arrow, its step, its blockers, and the steps placed before it.
    for (i, hop) in l.hops.iter().enumerate() {
        let x1 = box_x(i) + BOX_W;
        let x2 = box_x(i + 1);
        let mid = (x1 + x2) / 2.0;
        // In a run, a hop crossed is green whatever blocked it in the plan.
        let mark = run_mark(run, hop.order);
        let crossed = mark.is_some_and(|(_, c)| c == GREEN);
        let blocked = hop_blockers[i] > 0 && !crossed;
        let (colour, marker, dash) = if crossed {
            (GREEN, "arrow-green", "")
        } else if blocked {
            (RED, "arrow-red", " stroke-dasharray=\"7 4\"")
        } else {
            (INK, "arrow-ink", "")
        };
        let status = mark
            .map(|(label, c)| format!(" · <tspan fill=\"{c}\" font-weight=\"700\">{}</tspan>", escape(label)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<g class=\"hop\"><title>step {}: {}</title><line x1=\"{:.1}\" y1=\"{arrow_y:.1}\" x2=\"{:.1}\" y2=\"{arrow_y:.1}\" stroke=\"{colour}\" stroke-width=\"2.5\"{dash} marker-end=\"url(#{marker})\"/><text x=\"{mid:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"{MUTED}\" text-anchor=\"middle\">step {} · control plane{status}</text></g>",
            hop.order,
            text(&hop.description),
            x1 + 4.0,
            x2 - 4.0,
            arrow_y + 20.0,
            hop.order
        );
        if blocked {
            let label = format!("✗ {}", plural(hop_blockers[i], "blocker", "blockers"));
            let w = 16.0 + 6.8 * label.chars().count() as f64;
            let _ = writeln!(
                out,
                "<g class=\"blocked\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"19\" rx=\"9.5\" fill=\"{RED}\"/><text x=\"{mid:.1}\" y=\"{:.1}\" font-size=\"11.5\" font-weight=\"700\" fill=\"#ffffff\" text-anchor=\"middle\">{}</text></g>",
                mid - w / 2.0,
                arrow_y + 28.0,
                arrow_y + 41.5,
                escape(&label)
            );
        }
        let before = &l.before[i];
        if before.is_empty() {
            continue;
        }
        let count = shown(before.len());
        let top = y0 - 26.0 - stack(count) + CARD_GAP;
        let fixes_blocker = before.iter().any(|s| matches!(tone_of(p, s, 0, run), Tone::Fix));
        let all_done = before.iter().all(|s| run_mark(run, s.order).is_some_and(|(_, c)| c == GREEN));
        let line = if all_done {
            GREEN
        } else if fixes_blocker {
            RED
        } else {
            GREY_LINE
        };
        let bottom = top + stack(count) - CARD_GAP;
        let _ = writeln!(
            out,
            "<line x1=\"{mid:.1}\" y1=\"{bottom:.1}\" x2=\"{mid:.1}\" y2=\"{arrow_y:.1}\" stroke=\"{line}\" stroke-width=\"1.5\" stroke-dasharray=\"3 3\"/><circle cx=\"{mid:.1}\" cy=\"{arrow_y:.1}\" r=\"4\" fill=\"{line}\"/>"
        );
        for (k, s) in before.iter().take(MAX_CARDS).enumerate() {
            let (head, body) = card_lines(s);
            let y = top + stack(k);
            card(
                &mut out,
                mid - CARD_W / 2.0,
                y,
                tone_of(p, s, 0, run),
                &head,
                &body,
                &s.description,
                run_mark(run, s.order),
            );
        }
        if before.len() > MAX_CARDS {
            let rest = &before[MAX_CARDS..];
            let tone =
                if rest.iter().any(|s| matches!(tone_of(p, s, 0, run), Tone::Fix)) { Tone::Fix } else { Tone::Step };
            let first = rest.first().map_or(0, |s| s.order);
            let last = rest.last().map_or(0, |s| s.order);
            card(
                &mut out,
                mid - CARD_W / 2.0,
                top + stack(MAX_CARDS),
                tone,
                &format!("+ {}", more(rest.len(), "step", "steps")),
                &format!("steps {first}–{last}, listed below"),
                "the steps table below lists every step",
                None,
            );
        }
    }

    // Versions, and what follows each.
    for (i, v) in l.versions.iter().enumerate() {
        let x = box_x(i);
        let cx = x + BOX_W / 2.0;
        let role = match (i, l.versions.len()) {
            (0, 1) => "control plane stays",
            (0, _) => "now",
            (i, n) if i + 1 == n => "target",
            _ => "control plane",
        };
        let outline = if i == 0 && l.versions.len() > 1 {
            " stroke=\"#0b3a7e\" stroke-width=\"2\" stroke-dasharray=\"5 3\""
        } else if i + 1 == l.versions.len() {
            " stroke=\"#0b3a7e\" stroke-width=\"3\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<g class=\"version\"><title>{v} ({role})</title><rect x=\"{x:.1}\" y=\"{y0:.1}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"8\" fill=\"{VERSION_BOX_FILL}\"{outline}/><text x=\"{cx:.1}\" y=\"{:.1}\" font-size=\"17\" font-weight=\"700\" fill=\"#ffffff\" text-anchor=\"middle\">{v}</text><text x=\"{cx:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#dce8fb\" text-anchor=\"middle\">{role}</text></g>",
            y0 + 27.0,
            y0 + 45.0
        );
        if i == 0 && start_blockers > 0 {
            let label = format!("✗ {} before the upgrade", plural(start_blockers, "blocker", "blockers"));
            let w = 16.0 + 6.6 * label.chars().count() as f64;
            let _ = writeln!(
                out,
                "<g class=\"blocked\"><title>{}</title><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"19\" rx=\"9.5\" fill=\"{RED}\"/><text x=\"{cx:.1}\" y=\"{:.1}\" font-size=\"11.5\" font-weight=\"700\" fill=\"#ffffff\" text-anchor=\"middle\">{}</text></g>",
                text(
                    &loose
                        .iter()
                        .filter(|f| first_roll.is_none() || !is_drain_finding(f.code))
                        .map(|f| f.subject.as_str())
                        .take(20)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                cx - w / 2.0,
                y0 + BOX_H + 10.0,
                y0 + BOX_H + 23.5,
                escape(&label)
            );
        }
        let after = &l.after[i];
        if after.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<line x1=\"{cx:.1}\" y1=\"{:.1}\" x2=\"{cx:.1}\" y2=\"{roll_top:.1}\" stroke=\"{TEAL}\" stroke-width=\"1.5\"/>",
            y0 + BOX_H + if i == 0 && start_blockers > 0 { 31.0 } else { 0.0 }
        );
        for (k, s) in after.iter().take(MAX_CARDS).enumerate() {
            let (head, body) = card_lines(s);
            let extra = if Some(s.order) == first_roll { drain_blockers } else { 0 };
            let drain_badge = (extra > 0).then(|| format!("✗ {extra}"));
            let badge = run_mark(run, s.order).or(drain_badge.as_deref().map(|b| (b, RED)));
            let tooltip = if extra > 0 {
                format!(
                    "{}; drain {}: {}",
                    s.description,
                    if extra == 1 { "blocker" } else { "blockers" },
                    loose
                        .iter()
                        .filter(|f| is_drain_finding(f.code))
                        .map(|f| f.subject.as_str())
                        .take(20)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                s.description.clone()
            };
            card(
                &mut out,
                cx - CARD_W / 2.0,
                roll_top + stack(k),
                tone_of(p, s, extra, run),
                &head,
                &body,
                &tooltip,
                badge,
            );
        }
        if after.len() > MAX_CARDS {
            card(
                &mut out,
                cx - CARD_W / 2.0,
                roll_top + stack(MAX_CARDS),
                Tone::Roll,
                &format!("+ {}", more(after.len() - MAX_CARDS, "step", "steps")),
                "listed below",
                "the steps table below lists every step",
                None,
            );
        }
    }
    out.push_str("</svg>");
    out
}

fn path_section(out: &mut String, p: &Plan, run: Option<&Journal>) {
    out.push_str("<section id=\"path\">\n<h2>Path</h2>\n<div class=\"picture\">\n");
    out.push_str(&path_svg(p, run));
    out.push_str("\n</div>\n<ul class=\"legend\"><li><span class=\"sw version\"></span>control-plane version (dashed: now, bold: target)</li><li><span class=\"sw step\"></span>step before the hop it is attached to</li><li><span class=\"sw fix\"></span>step that fixes a blocker</li><li><span class=\"sw warn\"></span>step that answers a warning</li><li><span class=\"sw roll\"></span>node roll after the hop above it</li><li><span class=\"sw blocked\"></span>blocked: fix before crossing</li></ul>\n</section>\n");
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Blocker => "blocker",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// A finding's details as `key: value` pairs for the reader (scalars and short lists).
fn details_line(f: &Finding) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&f.details) else { return String::new() };
    let mut parts = Vec::new();
    for (k, v) in map.iter().filter(|(k, _)| !matches!(k.as_str(), "beforeHop" | "afterHop")).take(10) {
        let value = match v {
            serde_json::Value::String(s) => clip(s, 200),
            serde_json::Value::Array(a) => {
                let items: Vec<String> = a
                    .iter()
                    .take(20)
                    .map(|x| match x {
                        serde_json::Value::String(s) => clip(s, 100),
                        other => clip(&other.to_string(), 100),
                    })
                    .collect();
                let more = if a.len() > 20 { format!(" and {} more", a.len() - 20) } else { String::new() };
                format!("{}{more}", items.join(", "))
            }
            other => clip(&other.to_string(), 200),
        };
        parts.push(format!("{}: <b>{}</b>", escape(&clip(k, 60)), escape(&value)));
    }
    if parts.is_empty() { String::new() } else { format!("<div class=\"kv\">{}</div>", parts.join(" · ")) }
}

fn finding_row(out: &mut String, f: &Finding, step: Option<usize>) {
    let sev = severity_name(f.severity);
    let evidence = f.evidence.as_ref().map(|e| text(&e.describe())).unwrap_or_default();
    let fixed_by = match (step, f.severity) {
        (Some(order), _) => format!("<div class=\"by\">step {order} fixes it</div>"),
        (None, Severity::Blocker) => "<div class=\"by none\">no step fixes it</div>".into(),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "<tr class=\"{sev}\"><td><span class=\"sev {sev}\">{sev}</span><div class=\"code\">{}</div></td><td><div class=\"subject\">{}</div>{}</td><td class=\"evidence\">{evidence}{}</td><td>{}{fixed_by}</td></tr>",
        f.code,
        text(&f.subject),
        text(&f.message),
        details_line(f),
        text(&f.remediation)
    );
}

fn findings_section(out: &mut String, p: &Plan) {
    out.push_str("<section id=\"findings\">\n<h2>Findings by hop</h2>\n");
    if p.findings.is_empty() {
        out.push_str("<p class=\"more\">No findings.</p>\n</section>\n");
        return;
    }
    let by = resolved_by(p);
    // Groups in path order, then the findings tied to no hop.
    let mut groups: Vec<(String, Vec<(usize, &Finding)>)> = p
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            StepAction::ControlPlane { from, to } => Some((format!("Hop {from} → {to}"), vec![])),
            _ => None,
        })
        .collect();
    let hop_keys: Vec<(Version, Version)> = p
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            StepAction::ControlPlane { from, to } => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect();
    let mut other_hops: BTreeMap<(Version, Version), Vec<(usize, &Finding)>> = BTreeMap::new();
    let mut loose = Vec::new();
    for (i, f) in p.findings.iter().enumerate() {
        match &f.hop {
            Some(h) => match hop_keys.iter().position(|(a, b)| *a == h.from && *b == h.to) {
                Some(g) => groups[g].1.push((i, f)),
                None => other_hops.entry((h.from.clone(), h.to.clone())).or_default().push((i, f)),
            },
            None => loose.push((i, f)),
        }
    }
    groups.extend(other_hops.into_iter().map(|((a, b), v)| (format!("Hop {a} → {b}"), v)));
    groups.push(("Not tied to one hop: drains, version skew, access, support".into(), loose));
    for (title, items) in groups.into_iter().filter(|(_, v)| !v.is_empty()) {
        let count = |s: Severity| items.iter().filter(|(_, f)| f.severity == s).count();
        let (b, w, n) = (count(Severity::Blocker), count(Severity::Warning), count(Severity::Info));
        let mut chips = String::new();
        if b > 0 {
            let _ = write!(chips, "<span class=\"chip bad\">{}</span>", plural(b, "blocker", "blockers"));
        }
        if w > 0 {
            let _ = write!(chips, "<span class=\"chip warn\">{}</span>", plural(w, "warning", "warnings"));
        }
        if n > 0 {
            let _ = write!(chips, "<span class=\"chip\">{}</span>", plural(n, "note", "notes"));
        }
        let _ = writeln!(
            out,
            "<details class=\"group\"{}>\n<summary>{} {chips}</summary>",
            if b + w > 0 { " open" } else { "" },
            escape(&title)
        );
        let actionable: Vec<&(usize, &Finding)> = items.iter().filter(|(_, f)| f.severity != Severity::Info).collect();
        if !actionable.is_empty() {
            out.push_str("<table class=\"findings\"><thead><tr><th>severity</th><th>finding</th><th>evidence</th><th>fix</th></tr></thead><tbody>\n");
            for (i, f) in actionable.iter().take(MAX_GROUP_ROWS) {
                finding_row(out, f, by.get(i).copied());
            }
            out.push_str("</tbody></table>\n");
            if actionable.len() > MAX_GROUP_ROWS {
                let _ = writeln!(
                    out,
                    "<p class=\"more\">and {} in this group; <code>k8s-upgrade plan -o json</code> lists every one.</p>",
                    more(actionable.len() - MAX_GROUP_ROWS, "finding", "findings")
                );
            }
        }
        let infos: Vec<&(usize, &Finding)> = items.iter().filter(|(_, f)| f.severity == Severity::Info).collect();
        if !infos.is_empty() {
            let _ = writeln!(
                out,
                "<details class=\"notes\"{}><summary>{}</summary><ul class=\"plain\">",
                if actionable.is_empty() { " open" } else { "" },
                plural(infos.len(), "note", "notes")
            );
            for (_, f) in infos.iter().take(MAX_GROUP_ROWS) {
                let evidence =
                    f.evidence.as_ref().map(|e| format!(" <span class=\"by\">({})</span>", text(&e.describe())));
                let _ = writeln!(out, "<li>{}{}</li>", text(&f.message), evidence.unwrap_or_default());
            }
            out.push_str("</ul>");
            if infos.len() > MAX_GROUP_ROWS {
                let _ =
                    write!(out, "<p class=\"more\">and {}.</p>", more(infos.len() - MAX_GROUP_ROWS, "note", "notes"));
            }
            out.push_str("</details>\n");
        }
        out.push_str("</details>\n");
    }
    out.push_str("</section>\n");
}

/// A list of untrusted items in a `<details>`, capped.
fn item_list(out: &mut String, summary: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = write!(out, "<details class=\"more-items\"><summary>{}</summary><ul class=\"plain\">", escape(summary));
    for item in items.iter().take(MAX_LIST) {
        let _ = write!(out, "<li>{}</li>", text(item));
    }
    out.push_str("</ul>");
    if items.len() > MAX_LIST {
        let _ = write!(out, "<p class=\"more\">and {} more.</p>", items.len() - MAX_LIST);
    }
    out.push_str("</details>");
}

fn status_name(s: StepStatus, stopped_here: bool) -> &'static str {
    match s {
        StepStatus::Done => "done",
        StepStatus::Skipped => "skipped",
        StepStatus::Failed => "failed",
        StepStatus::Running => "running",
        // A step put back to pending after it began is where a resumable run stopped.
        StepStatus::Pending if stopped_here => "stopped",
        StepStatus::Pending => "pending",
    }
}

fn steps_section(out: &mut String, p: &Plan, run: Option<&Journal>) {
    out.push_str("<section id=\"steps\">\n<h2>Steps, in order</h2>\n<table class=\"steps\"><thead><tr><th>#</th><th>step</th><th>target</th><th>what</th><th>fixes</th>");
    if run.is_some() {
        out.push_str("<th>status</th><th>started</th><th>took</th>");
    }
    out.push_str("</tr></thead><tbody>\n");
    for (i, s) in p.steps.iter().enumerate() {
        let kind = s.kind.as_str();
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td><span class=\"kind {kind}\">{kind}</span></td><td class=\"num\">{}</td><td>{}",
            s.order,
            s.target.as_ref().map_or_else(|| "–".to_string(), ToString::to_string),
            text(&s.description)
        );
        match &s.action {
            StepAction::MigrateApi { objects, .. } => {
                item_list(out, &plural(objects.len(), "object", "objects"), objects);
            }
            StepAction::HelmRelease { apis, .. } => item_list(out, &plural(apis.len(), "API", "APIs"), apis),
            StepAction::Nodes { moves } if moves.len() > 1 => {
                let moves: Vec<String> = moves.iter().map(|m| format!("{} → {}", m.from, m.to)).collect();
                item_list(out, &plural(moves.len(), "kubelet move", "kubelet moves"), &moves);
            }
            _ => {}
        }
        let journal_step: Option<&JournalStep> = run.and_then(|j| j.steps.get(i)).filter(|js| js.step.order == s.order);
        if let Some(note) = journal_step.and_then(|js| js.note.as_deref()) {
            let _ = write!(out, "<div class=\"note\">{}</div>", text(note));
        }
        let resolved: Vec<&Finding> = s.resolves.iter().filter_map(|i| p.findings.get(*i)).collect();
        let blockers = resolved.iter().filter(|f| f.severity == Severity::Blocker).count();
        let fixes = match (resolved.len(), blockers) {
            (0, _) => String::new(),
            (n, 0) => plural(n, "finding", "findings"),
            (n, b) if n == b => format!("<span class=\"by none\">{}</span>", plural(b, "blocker", "blockers")),
            (n, b) => format!(
                "<span class=\"by none\">{}</span>, {}",
                plural(b, "blocker", "blockers"),
                plural(n - b, "other", "others")
            ),
        };
        let _ = write!(out, "</td><td>{fixes}</td>");
        if let Some(j) = run {
            match journal_step {
                Some(js) => {
                    let stopped_here = js.status == StepStatus::Pending && js.started.is_some();
                    let st = status_name(js.status, stopped_here);
                    let took = match (js.started, js.ended) {
                        (Some(a), Some(b)) if js.status != StepStatus::Pending => duration(b.seconds_since(a)),
                        _ => "–".into(),
                    };
                    let _ = write!(
                        out,
                        "<td><span class=\"st {st}\">{st}</span>{}</td><td class=\"num\">{}</td><td class=\"num\">{took}</td>",
                        if j.acknowledged.contains(&s.order) { "<div class=\"note\">acknowledged</div>" } else { "" },
                        js.started.map_or_else(|| "–".to_string(), clock)
                    );
                }
                None => out.push_str("<td>–</td><td>–</td><td>–</td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n</section>\n");
}

fn notes_section(out: &mut String, p: &Plan) {
    if p.notes.is_empty() && p.inventory_warnings.is_empty() {
        return;
    }
    out.push_str("<section id=\"notes\">\n<h2>Notes</h2>\n");
    if !p.notes.is_empty() {
        out.push_str("<ul class=\"plain\">");
        for n in p.notes.iter().take(MAX_LIST) {
            let _ = write!(out, "<li>{}</li>", text(&n.message));
        }
        out.push_str("</ul>\n");
        if p.notes.len() > MAX_LIST {
            let _ = writeln!(out, "<p class=\"more\">and {} more.</p>", p.notes.len() - MAX_LIST);
        }
    }
    if !p.inventory_warnings.is_empty() {
        out.push_str("<h3>While reading the cluster and files</h3>\n");
        item_list(
            out,
            &plural(p.inventory_warnings.len(), "warning", "warnings"),
            &p.inventory_warnings.iter().take(MAX_LIST + 1).cloned().collect::<Vec<_>>(),
        );
        if p.inventory_warnings.len() > MAX_LIST + 1 {
            let _ = writeln!(out, "<p class=\"more\">{} in all.</p>", p.inventory_warnings.len());
        }
    }
    out.push_str("</section>\n");
}

fn footer(out: &mut String, p: &Plan) {
    let _ = writeln!(
        out,
        "<footer>{} {} · {} {} → {} · this page loads nothing and runs no script; <code>k8s-upgrade plan -o json</code> gives the same plan as data.</footer>",
        text(&p.api_version),
        text(&p.kind),
        text(&p.distro),
        p.from,
        p.to
    );
}

fn exit_meaning(code: u8) -> &'static str {
    match code {
        0 => "done",
        1 => "error",
        2 => "usage",
        3 => "stopped at a blocker or gate",
        4 => "stopped before the maintenance window closes; resumable",
        130 => "interrupted",
        _ => "unknown",
    }
}

/// Nodes this run cordoned and did not uncordon, other than the quarantined ones.
fn left_cordoned<'a>(run: &RunView<'a>) -> Vec<(&'a str, NodePhase)> {
    run.journal.left_cordoned().into_iter().filter(|(n, _)| !run.quarantined.iter().any(|q| q == n)).collect()
}

fn run_summary(out: &mut String, run: &RunView<'_>) {
    let j = run.journal;
    let done = j.steps.iter().filter(|s| s.status == StepStatus::Done).count();
    let skipped = j.steps.iter().filter(|s| s.status == StepStatus::Skipped).count();
    let cordoned = left_cordoned(run);
    let (class, word) = match (&run.error, run.quarantined.is_empty() && cordoned.is_empty()) {
        (None, true) => ("ok", "✓ Finished"),
        (None, false) => ("warn", "Finished, with nodes left for the operator"),
        (Some(_), _) if run.exit == 4 || run.exit == 130 => ("warn", "Stopped"),
        (Some(_), _) => ("bad", "✗ Stopped"),
    };
    let _ = writeln!(
        out,
        "<section class=\"banner {class}\" id=\"run\">\n<h2>{word} · exit {} ({})</h2>\n<div>{} → {} in {}: {done} of {} steps done, {skipped} left to the operator, {} upgraded by this run.</div>",
        run.exit,
        exit_meaning(run.exit),
        j.from,
        j.to,
        duration(run.took.as_secs_f64()),
        j.steps.len(),
        plural(run.nodes_done, "node", "nodes"),
    );
    out.push_str("<dl class=\"facts\">");
    let _ = write!(out, "<dt>run</dt><dd class=\"mono\">{}</dd>", text(&j.run_id));
    let _ = write!(out, "<dt>cluster</dt><dd class=\"mono\">{}</dd>", text(&j.cluster));
    let _ = write!(
        out,
        "<dt>journal</dt><dd class=\"mono\">{}{}</dd>",
        text(&run.journal_at),
        if run.dry_run { " (dry run: not written)" } else { "" }
    );
    if let Some(e) = &run.error {
        let _ = write!(out, "<dt>why it stopped</dt><dd>{}</dd>", text(e));
    }
    if let Some(c) = &run.continue_with {
        let _ = write!(out, "<dt>to continue</dt><dd><code>{}</code></dd>", text(c));
    }
    if !run.quarantined.is_empty() {
        let _ = write!(
            out,
            "<dt>quarantined</dt><dd><strong>{}</strong>: skipped and left cordoned with the label {}=true. Look at why, then <code>kubectl uncordon</code> each, remove the label, and run apply again to upgrade them.</dd>",
            text(&run.quarantined.iter().take(MAX_LIST).cloned().collect::<Vec<_>>().join(", ")),
            escape(crate::exec::drain::LABEL_QUARANTINED)
        );
    }
    if !cordoned.is_empty() {
        let names: Vec<String> =
            cordoned.iter().take(MAX_LIST).map(|(n, p)| format!("{n} ({})", phase_name(*p))).collect();
        let _ = write!(
            out,
            "<dt>left cordoned</dt><dd><strong>{}</strong> by this run; {}.</dd>",
            text(&names.join(", ")),
            if run.continue_with.is_some() {
                "the command above continues with them"
            } else {
                "<code>kubectl uncordon</code> each once it is healthy"
            }
        );
    }
    out.push_str("</dl>\n</section>\n");
}

fn phase_name(p: NodePhase) -> &'static str {
    match p {
        NodePhase::Started => "started",
        NodePhase::Cordoned => "cordoned",
        NodePhase::Drained => "drained",
        NodePhase::UpgradeStarted => "upgrade started",
        NodePhase::UpgradeFinished => "upgrade finished",
        NodePhase::Upgraded => "ready at the target",
        NodePhase::Done => "done",
        NodePhase::Quarantined => "quarantined",
    }
}

/// What a node does from the moment it reached `p` until its next phase, and its colour.
fn phase_span(p: NodePhase) -> (&'static str, &'static str) {
    match p {
        NodePhase::Started => ("starting", "#afb8c1"),
        NodePhase::Cordoned => ("draining", "#d4a72c"),
        NodePhase::Drained => ("drained, before the upgrade", "#e5c07b"),
        NodePhase::UpgradeStarted => ("upgrading", "#8250df"),
        NodePhase::UpgradeFinished => ("waiting for Ready at the target", "#54aeff"),
        NodePhase::Upgraded => ("checks and uncordon", "#4ac26b"),
        NodePhase::Done => ("done", "#1a7f37"),
        NodePhase::Quarantined => ("quarantined", RED),
    }
}

const TL_LABEL: f64 = 260.0;
const TL_CHART: f64 = 880.0;
const TL_ROW: f64 = 22.0;
const TL_TOP: f64 = 34.0;

enum Lane<'a> {
    Step(&'a JournalStep),
    Node(&'a str, &'a NodeRecord),
}

/// A tick interval that puts at most eight ticks on `span` seconds.
fn tick_interval(span: f64) -> f64 {
    const NICE: [f64; 22] = [
        0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        10800.0, 21600.0, 43200.0, 86400.0,
    ];
    NICE.iter().copied().find(|t| span / t <= 8.0).unwrap_or(span / 8.0)
}

fn offset_label(secs: f64, interval: f64) -> String {
    if secs == 0.0 {
        "0".into()
    } else if interval < 1.0 {
        format!("+{secs:.1}s")
    } else if interval < 60.0 {
        format!("+{}s", secs.round() as u64)
    } else if interval < 3600.0 {
        let s = secs.round() as u64;
        if s.is_multiple_of(60) { format!("+{}m", s / 60) } else { format!("+{}m{:02}s", s / 60, s % 60) }
    } else {
        let m = (secs / 60.0).round() as u64;
        if m.is_multiple_of(60) { format!("+{}h", m / 60) } else { format!("+{}h{:02}m", m / 60, m % 60) }
    }
}

/// Each step and each node of the run on one time axis: a step's bar from its start to its
/// end, a node's bar cut into its phases; nodes quarantined or left cordoned are drawn red to
/// the end of the run. `None` when the journal holds no times (written before they were kept).
pub fn timeline_svg(j: &Journal, ended: Stamp, quarantined: &[String]) -> Option<String> {
    let stamps = j
        .steps
        .iter()
        .flat_map(|s| [s.started, s.ended])
        .flatten()
        .chain(j.nodes.values().flat_map(|r| r.times.iter().map(|t| t.at)));
    let (mut t0, mut t1) = (None::<Stamp>, None::<Stamp>);
    for s in stamps {
        t0 = Some(t0.map_or(s, |t| t.min(s)));
        t1 = Some(t1.map_or(s, |t| t.max(s)));
    }
    let (t0, last) = (t0?, t1?);
    let t1 = last.max(ended);
    let span = t1.seconds_since(t0).max(0.001);
    let x = |t: Stamp| TL_LABEL + (t.seconds_since(t0) / span).clamp(0.0, 1.0) * TL_CHART;

    // Nodes by step, in the order they began; those left cordoned always make the cut.
    let left: BTreeSet<&str> = j.left_cordoned().into_iter().map(|(n, _)| n).collect();
    let trouble = |node: &str| left.contains(node) || quarantined.iter().any(|q| q == node);
    let mut nodes: Vec<(&str, &NodeRecord)> = j.nodes.iter().map(|(k, r)| (Journal::node_of(k), r)).collect();
    nodes.sort_by_key(|(n, r)| (r.step, r.times.first().map(|t| t.at), n.to_string()));
    let kept: BTreeSet<(usize, &str)> = {
        let mut kept: BTreeSet<(usize, &str)> =
            nodes.iter().filter(|(n, _)| trouble(n)).take(MAX_TIMELINE_NODES).map(|(n, r)| (r.step, *n)).collect();
        for (n, r) in &nodes {
            if kept.len() >= MAX_TIMELINE_NODES {
                break;
            }
            kept.insert((r.step, n));
        }
        kept
    };
    let hidden = nodes.len() - kept.len();
    let mut lanes: Vec<Lane> = Vec::new();
    for s in j.steps.iter().filter(|s| s.started.is_some()) {
        lanes.push(Lane::Step(s));
        lanes.extend(
            nodes
                .iter()
                .filter(|(n, r)| r.step == s.step.order && kept.contains(&(r.step, *n)))
                .map(|(n, r)| Lane::Node(n, r)),
        );
    }
    // Nodes of steps with no recorded start (a journal from before steps were timed).
    let timed: BTreeSet<usize> = j.steps.iter().filter(|s| s.started.is_some()).map(|s| s.step.order).collect();
    lanes.extend(
        nodes
            .iter()
            .filter(|(n, r)| !timed.contains(&r.step) && kept.contains(&(r.step, *n)))
            .map(|(n, r)| Lane::Node(n, r)),
    );

    let width = TL_LABEL + TL_CHART + 24.0;
    let height = TL_TOP + lanes.len() as f64 * TL_ROW + 30.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"timeline\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-labelledby=\"timeline-title\" font-family=\"{FONT}\">\n<title id=\"timeline-title\">Run {}: steps and node phases from {} to {} UTC</title>",
        text(&j.run_id),
        clock(t0),
        clock(t1)
    );
    let interval = tick_interval(span);
    let mut k = 0.0;
    while k <= span + 1e-9 {
        let tx = TL_LABEL + k / span * TL_CHART;
        let _ = writeln!(
            out,
            "<line x1=\"{tx:.1}\" y1=\"{:.1}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#eaeef2\"/><text x=\"{tx:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"{MUTED}\" text-anchor=\"middle\">{}</text>",
            TL_TOP - 8.0,
            height - 26.0,
            TL_TOP - 14.0,
            offset_label(k, interval)
        );
        k += interval;
    }
    for (row, lane) in lanes.iter().enumerate() {
        let y = TL_TOP + row as f64 * TL_ROW;
        match lane {
            Lane::Step(s) => {
                let (Some(a), b) = (s.started, s.ended) else { continue };
                let open = b.is_none() || matches!(s.status, StepStatus::Running);
                let end = if open { t1 } else { b.unwrap_or(t1) };
                let stopped = s.status == StepStatus::Pending;
                let colour = match s.status {
                    StepStatus::Done => "#57606a",
                    StepStatus::Skipped => "#bf8700",
                    StepStatus::Failed => RED,
                    StepStatus::Running | StepStatus::Pending => RED,
                };
                let label = format!("step {} · {}", s.step.order, s.step.kind.as_str());
                let _ = writeln!(
                    out,
                    "<g class=\"step-lane\"><title>step {}: {} ({}, {} → {}, {})</title><rect x=\"0\" y=\"{y:.1}\" width=\"{width:.0}\" height=\"{TL_ROW}\" fill=\"{GREY_BG}\"/><text x=\"8\" y=\"{:.1}\" font-size=\"12\" font-weight=\"700\" fill=\"{INK}\">{}</text><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"8\" rx=\"2\" fill=\"{colour}\"/></g>",
                    s.step.order,
                    text(&s.step.description),
                    status_name(s.status, stopped),
                    clock(a),
                    clock(end),
                    duration(end.seconds_since(a)),
                    y + 15.0,
                    escape(&clip(&label, 34)),
                    x(a),
                    y + 7.0,
                    (x(end) - x(a)).max(2.0)
                );
            }
            Lane::Node(name, r) => {
                let bad = trouble(name);
                let state = if quarantined.iter().any(|q| q == name) {
                    " · quarantined"
                } else if left.contains(name) {
                    " · left cordoned"
                } else {
                    ""
                };
                let label = format!("{}{state}", clip(name, 30));
                let _ = writeln!(
                    out,
                    "<text x=\"22\" y=\"{:.1}\" font-size=\"12\" fill=\"{}\"{}>{}</text>",
                    y + 15.0,
                    if bad { RED } else { INK },
                    if bad { " font-weight=\"700\"" } else { "" },
                    escape(&label)
                );
                for (k, t) in r.times.iter().enumerate() {
                    let next = r.times.get(k + 1).map(|n| n.at);
                    let (what, colour) = phase_span(t.phase);
                    match (t.phase, next) {
                        (NodePhase::Done, None) => {
                            let cx = x(t.at);
                            let _ = writeln!(
                                out,
                                "<g><title>{}: done at {}{}</title><path d=\"M{:.1},{:.1} l5,5 l-5,5 l-5,-5 z\" fill=\"{colour}\"/></g>",
                                escape(name),
                                clock(t.at),
                                r.seconds.map(|s| format!(", {} in all", duration(s))).unwrap_or_default(),
                                cx,
                                y + 6.0
                            );
                        }
                        (_, Some(n)) => {
                            let _ = writeln!(
                                out,
                                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"12\" fill=\"{colour}\"><title>{}: {what}, {} → {} ({})</title></rect>",
                                x(t.at),
                                y + 5.0,
                                (x(n) - x(t.at)).max(1.5),
                                escape(name),
                                clock(t.at),
                                clock(n),
                                duration(n.seconds_since(t.at))
                            );
                        }
                        (phase, None) => {
                            // The phase the node was left in, open to the end of the run.
                            let outline =
                                if bad { format!(" stroke=\"{RED}\" stroke-width=\"2\"") } else { String::new() };
                            let fill = if phase == NodePhase::Quarantined { RED } else { colour };
                            let _ = writeln!(
                                out,
                                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"12\" fill=\"{fill}\" fill-opacity=\"0.45\"{outline}><title>{}: {} since {} (still at the end of the run)</title></rect>",
                                x(t.at),
                                y + 5.0,
                                (x(t1) - x(t.at)).max(1.5),
                                escape(name),
                                phase_name(phase),
                                clock(t.at)
                            );
                        }
                    }
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "<text x=\"{TL_LABEL}\" y=\"{:.1}\" font-size=\"11\" fill=\"{MUTED}\">start {} UTC · end {} UTC · {}{}</text>",
        height - 8.0,
        clock(t0),
        clock(t1),
        duration(span),
        if hidden > 0 {
            format!(" · {} not drawn (the journal has them all)", more(hidden, "node", "nodes"))
        } else {
            String::new()
        }
    );
    out.push_str("</svg>");
    Some(out)
}

fn timeline_section(out: &mut String, run: &RunView<'_>) {
    out.push_str("<section id=\"run-timeline\">\n<h2>Timeline</h2>\n");
    match timeline_svg(run.journal, run.ended, run.quarantined) {
        Some(svg) => {
            out.push_str("<div class=\"picture\">\n");
            out.push_str(&svg);
            out.push_str("\n</div>\n<ul class=\"legend\"><li><span class=\"sw p-cordoned\"></span>cordoned, draining</li><li><span class=\"sw p-drained\"></span>drained</li><li><span class=\"sw p-upgrading\"></span>upgrading</li><li><span class=\"sw p-waiting\"></span>waiting for Ready</li><li><span class=\"sw p-upgraded\"></span>ready, uncordoning</li><li>◆ done</li><li><span class=\"sw p-left\"></span>quarantined or left cordoned</li></ul>\n");
        }
        None => out.push_str("<p class=\"more\">The journal holds no times: it was written by a version that did not record them, or no step has started.</p>\n"),
    }
    out.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Details, HopRef};
    use crate::exec::journal::PhaseTime;
    use crate::graph::KubeletMove;
    use crate::inventory::Evidence;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn finding(code: FindingCode, severity: Severity, hop: Option<(&str, &str)>, subject: &str) -> Finding {
        Finding {
            code,
            severity,
            hop: hop.map(|(a, b)| HopRef { from: v(a), to: v(b) }),
            subject: subject.into(),
            message: format!("message about {subject}"),
            evidence: Some(Evidence::Manifest { file: "deploy/app.yaml".into(), document: 2 }),
            remediation: format!("fix {subject}"),
            details: Details::default(),
        }
    }

    fn step(order: usize, kind: StepKind, target: Option<&str>, action: StepAction, resolves: Vec<usize>) -> Step {
        Step {
            order,
            kind,
            target: target.map(v),
            description: format!("step {order} {}", kind.as_str()),
            moves: vec![],
            resolves,
            action,
        }
    }

    /// 1.29.4 → 1.30.2 → 1.31.1: a migration and a Helm release before the first hop (both
    /// fixing blockers), node rolls after each hop, a drain blocker no step fixes.
    fn sample() -> Plan {
        let findings = vec![
            finding(FindingCode::ApiRemoved, Severity::Blocker, Some(("1.29.4", "1.30.2")), "FlowSchema fs"),
            finding(FindingCode::ApiRemoved, Severity::Blocker, Some(("1.29.4", "1.30.2")), "Ingress shop/web"),
            finding(FindingCode::PdbBlocksDrain, Severity::Blocker, None, "PodDisruptionBudget pay/strict"),
            finding(FindingCode::SupportEnding, Severity::Warning, Some(("1.30.2", "1.31.1")), "Kubernetes 1.31"),
            finding(FindingCode::ApiRemovalsAtHop, Severity::Info, Some(("1.30.2", "1.31.1")), "hop 1.31"),
        ];
        let steps = vec![
            step(
                1,
                StepKind::MigrateApi,
                None,
                StepAction::MigrateApi {
                    api_version: "flowcontrol.apiserver.k8s.io/v1beta2".into(),
                    kind: "FlowSchema".into(),
                    replacement: Some("flowcontrol.apiserver.k8s.io/v1".into()),
                    before: v("1.30.2"),
                    objects: vec!["FlowSchema fs".into()],
                },
                vec![0],
            ),
            step(
                2,
                StepKind::HelmRelease,
                None,
                StepAction::HelmRelease {
                    namespace: "shop".into(),
                    release: "web".into(),
                    revision: 4,
                    apis: vec!["extensions/v1beta1 Ingress".into()],
                    before: v("1.30.2"),
                },
                vec![1],
            ),
            step(
                3,
                StepKind::ControlPlane,
                Some("1.30.2"),
                StepAction::ControlPlane { from: v("1.29.4"), to: v("1.30.2") },
                vec![],
            ),
            step(
                4,
                StepKind::Nodes,
                Some("1.30.2"),
                StepAction::Nodes { moves: vec![KubeletMove { from: v("1.29.4"), to: v("1.30.2") }] },
                vec![],
            ),
            step(
                5,
                StepKind::ControlPlane,
                Some("1.31.1"),
                StepAction::ControlPlane { from: v("1.30.2"), to: v("1.31.1") },
                vec![],
            ),
            step(
                6,
                StepKind::Nodes,
                Some("1.31.1"),
                StepAction::Nodes { moves: vec![KubeletMove { from: v("1.30.2"), to: v("1.31.1") }] },
                vec![],
            ),
        ];
        Plan {
            api_version: crate::plan::API_VERSION.into(),
            kind: crate::plan::KIND.into(),
            distro: "kubeadm".into(),
            from: v("1.29.4"),
            to: v("1.31.1"),
            kubelets: vec![v("1.29.4")],
            steps,
            findings,
            summary: crate::plan::Summary { blockers: 3, warnings: 1, infos: 1 },
            notes: vec![],
            inventory_warnings: vec![],
        }
    }

    #[test]
    fn escaping_covers_markup_quotes_ampersands_and_control_characters() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(escape("a\u{1b}[31mred\u{0}\u{7f}\u{85}"), "a\\u{1b}[31mred\\u{0}\\u{7f}\\u{85}");
        // A right-to-left override would make `gpj.exe` read as `exe.jpg`.
        assert_eq!(escape("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(escape("line\nnext\ttab"), "line\nnext\ttab");
        assert_eq!(escape("ünïcödé → ✓"), "ünïcödé → ✓");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
        assert_eq!(text(&"x".repeat(5000)).chars().count(), MAX_TEXT);
    }

    /// Every untrusted field of a plan set to a hostile string: the page holds it only escaped.
    #[test]
    fn hostile_names_from_the_cluster_are_escaped_everywhere() {
        let evil = "<script>alert(1)</script><img src=x onerror=\"alert(2)\">'&amp;\u{1b}]8;;";
        let mut p = sample();
        p.distro = evil.into();
        for f in &mut p.findings {
            f.subject = evil.into();
            f.message = evil.into();
            f.remediation = evil.into();
            f.evidence = Some(Evidence::HelmRelease { release: evil.into(), namespace: evil.into(), revision: 1 });
            f.details.facts.insert(evil.into(), serde_json::json!([evil, 3, {"k": evil}]));
        }
        for s in &mut p.steps {
            s.description = evil.into();
        }
        if let StepAction::MigrateApi { objects, kind, .. } = &mut p.steps[0].action {
            *objects = vec![evil.into(); 3];
            *kind = evil.into();
        }
        p.notes.push(crate::graph::Note { severity: crate::graph::Severity::Info, message: evil.into(), source: None });
        p.inventory_warnings.push(evil.into());
        let html = plan_html(&p, evil);
        for bad in ["<script", "<img", "onerror=\"", "\u{1b}", "'&amp;"] {
            assert!(!html.contains(bad), "{bad:?} unescaped in the page");
        }
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;&#39;&amp;amp;\\u{1b}]8;;"));
        // The only elements are ours: no script, no external reference of any kind.
        assert!(!html.to_lowercase().contains("<script"));
        for reference in ["src=\"", "href=", "url(http", "@import", "xlink:href"] {
            assert!(!html.contains(reference), "{reference}");
        }
    }

    #[test]
    fn the_page_is_self_contained_under_a_strict_policy() {
        let html = plan_html(&sample(), "2026-11-27 01:00:00 UTC");
        assert!(html.starts_with("<!DOCTYPE html>"));
        let csp = html.split("Content-Security-Policy\" content=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        // The hash is the stylesheet's, so the browser applies it and nothing else.
        let style = html.split("<style>").nth(1).unwrap().split("</style>").next().unwrap();
        assert_eq!(style, STYLE);
        let digest = ring::digest::digest(&ring::digest::SHA256, style.as_bytes());
        assert!(csp.contains(&base64::engine::general_purpose::STANDARD.encode(digest.as_ref())));
        // Inline style attributes would be refused by that policy: there are none.
        assert!(!html.contains(" style=\""));
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("@media print"));
        // Blockers come first, then the picture, then the findings, then the steps.
        let at = |s: &str| html.find(s).unwrap_or_else(|| panic!("{s} missing"));
        assert!(at("id=\"blockers\"") < at("id=\"path\"") && at("id=\"path\"") < at("id=\"findings\""));
        assert!(at("id=\"findings\"") < at("id=\"steps\""));
        assert!(html.contains("no step fixes it"), "the drain blocker has no step");
        assert!(html.contains("step 1 fixes it"));
    }

    #[test]
    fn the_picture_places_steps_before_their_hop_and_rolls_after_it() {
        let p = sample();
        let l = layout(&p);
        assert_eq!(l.versions, [v("1.29.4"), v("1.30.2"), v("1.31.1")]);
        let orders = |v: &Vec<&Step>| v.iter().map(|s| s.order).collect::<Vec<_>>();
        assert_eq!(l.before.iter().map(orders).collect::<Vec<_>>(), [vec![1, 2], vec![]]);
        assert_eq!(l.after.iter().map(orders).collect::<Vec<_>>(), [vec![], vec![4], vec![6]]);
        let svg = path_svg(&p, None);
        insta::assert_snapshot!("path_svg_two_hops", svg);
        // Three version boxes in the box colour, the first hop dashed red with its two blockers,
        // the second solid; the drain blocker on the first node roll.
        assert_eq!(svg.matches(&format!("fill=\"{VERSION_BOX_FILL}\"")).count(), 3);
        assert!(svg.contains("✗ 2 blockers"));
        assert_eq!(svg.matches("marker-end=\"url(#arrow-red)\"").count(), 1);
        assert_eq!(svg.matches("marker-end=\"url(#arrow-ink)\"").count(), 1);
        assert!(svg.contains(">✗ 1</text>"));
    }

    #[test]
    fn thousands_of_findings_make_a_bounded_page_that_says_what_it_left_out() {
        let mut p = sample();
        let base = p.findings[0].clone();
        for i in 0..5000 {
            let mut f = base.clone();
            f.subject = format!("CronJob ns/job-{i}");
            f.message = "m".repeat(3000);
            p.findings.push(f);
        }
        let objects: Vec<String> = (0..5000).map(|i| format!("CronJob ns/job-{i}")).collect();
        if let StepAction::MigrateApi { objects: o, .. } = &mut p.steps[0].action {
            *o = objects;
        }
        // Forty migrations before the first hop.
        for k in 0..40 {
            let mut s = p.steps[0].clone();
            s.order = 100 + k;
            p.steps.insert(1, s);
        }
        p.summary.blockers = p.findings.iter().filter(|f| f.severity == Severity::Blocker).count();
        let html = plan_html(&p, "now");
        assert!(html.len() < 1_500_000, "{} bytes", html.len());
        assert!(html.contains("and 4902 more findings in this group"), "5002 blockers at the hop, 100 shown");
        assert!(html.contains("and 4900 more.</p>"), "objects of the migration capped");
        assert!(html.contains("and 4997 more blockers, listed with their hop"));
        assert!(html.contains("+ 36 more steps"));
    }

    fn journal_for(p: &Plan) -> Journal {
        let mut j = Journal::new("/var/lib/k/run.journal.json".into(), "r-1", "https://10.0.0.1:6443", p);
        let at = |s: &str| Stamp(format!("2026-11-27T01:{s}Z").parse().unwrap());
        for (i, s) in j.steps.iter_mut().enumerate().take(4) {
            s.status = StepStatus::Done;
            s.started = Some(at(&format!("0{i}:00")));
            s.ended = Some(at(&format!("0{i}:50")));
        }
        j.steps[4].status = StepStatus::Pending;
        j.steps[4].started = Some(at("04:00"));
        j.steps[4].ended = Some(at("04:30"));
        j.steps[4].note = Some("health gate after <b>batch</b> did not pass".into());
        let record = |phase, times: &[(NodePhase, &str)]| NodeRecord {
            step: 4,
            target: v("1.30.2"),
            phase,
            from: Some(v("1.29.4")),
            we_cordoned: true,
            note: None,
            seconds: Some(40.0),
            log: vec![],
            times: times.iter().map(|(p, t)| PhaseTime { phase: *p, at: at(t) }).collect(),
        };
        j.nodes.insert(
            "4/w-1".into(),
            record(
                NodePhase::Done,
                &[
                    (NodePhase::Cordoned, "03:01"),
                    (NodePhase::Drained, "03:10"),
                    (NodePhase::UpgradeStarted, "03:11"),
                    (NodePhase::UpgradeFinished, "03:30"),
                    (NodePhase::Upgraded, "03:40"),
                    (NodePhase::Done, "03:41"),
                ],
            ),
        );
        j.nodes.insert(
            "4/w-<2>".into(),
            record(NodePhase::Quarantined, &[(NodePhase::Cordoned, "03:02"), (NodePhase::Quarantined, "03:45")]),
        );
        j.nodes.insert(
            "4/w-3".into(),
            record(NodePhase::Drained, &[(NodePhase::Cordoned, "03:05"), (NodePhase::Drained, "03:20")]),
        );
        j
    }

    #[test]
    fn a_run_shows_each_step_and_each_node_phase_on_one_time_axis() {
        let p = sample();
        let j = journal_for(&p);
        let quarantined = vec!["w-<2>".to_string()];
        let ended = Stamp("2026-11-27T01:05:00Z".parse().unwrap());
        let svg = timeline_svg(&j, ended, &quarantined).unwrap();
        insta::assert_snapshot!("timeline_svg_stopped_run", svg);
        // 5 minutes: ticks every minute, the axis from the first step to the end of the run.
        assert!(svg.contains(">+1m</text>") && svg.contains(">+5m</text>"));
        assert!(svg.contains("start 01:00:00.000 UTC · end 01:05:00.000 UTC"));
        assert!(svg.contains("w-&lt;2&gt; · quarantined"));
        assert!(svg.contains("w-3 · left cordoned"));
        assert!(svg.contains("w-1: upgrading, 01:03:11.000 → 01:03:30.000 (19.0s)"));
        assert!(svg.contains("w-1: done at 01:03:41.000, 40.0s in all"));
        let run = RunView {
            journal: &j,
            exit: 3,
            error: Some("health gate after batch <1> did not pass".into()),
            quarantined: &quarantined,
            nodes_done: 1,
            took: std::time::Duration::from_secs(300),
            dry_run: false,
            continue_with: Some("k8s-upgrade apply --resume --journal '/var/lib/k/run.journal.json'".into()),
            ended,
            journal_at: "/var/lib/k/run.journal.json".into(),
        };
        let html = apply_html(Some(&p), &run);
        assert!(html.contains("✗ Stopped · exit 3 (stopped at a blocker or gate)"));
        assert!(html.contains("health gate after batch &lt;1&gt; did not pass"));
        assert!(html.contains("<span class=\"st stopped\">stopped</span>"));
        // The picture shows how far the run got: the first hop crossed, the second stopped.
        assert!(html.contains("step 3 · control plane · <tspan fill=\"#1a7f37\" font-weight=\"700\">✓ done</tspan>"));
        assert!(html.contains("step 5 · control plane · <tspan fill=\"#cf222e\" font-weight=\"700\">stopped</tspan>"));
        assert_eq!(html.matches("marker-end=\"url(#arrow-green)\"").count(), 1);
        // Its blockers were fixed by steps it completed, but the drain blocker is still open.
        assert!(html.contains("✗ 1 of the plan&#39;s 3 blockers still open"));
        assert!(html.contains("✓ fixed by step 1"));
        assert!(html.contains("health gate after &lt;b&gt;batch&lt;/b&gt; did not pass"));
        assert!(html.contains("<dt>left cordoned</dt><dd><strong>w-3 (drained)</strong>"));
        assert!(html.contains("<dt>quarantined</dt><dd><strong>w-&lt;2&gt;</strong>"));
        assert!(html.contains("--resume --journal &#39;/var/lib/k/run.journal.json&#39;"));
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(!html.contains(" style=\""));
        // A resumed run has no findings to show, and says so.
        let html = apply_html(None, &run);
        assert!(html.contains("keeps the steps but not the plan's findings"));
        assert!(html.contains("findings not in the journal") && !html.contains("no blockers"));
        assert!(!html.contains("id=\"blockers\""));
    }

    #[test]
    fn a_large_roll_draws_a_bounded_timeline_that_keeps_the_nodes_left_cordoned() {
        let p = sample();
        let mut j = journal_for(&p);
        let template = j.nodes["4/w-1"].clone();
        for i in 0..500 {
            let mut r = template.clone();
            for t in &mut r.times {
                t.at = Stamp(t.at.0 + jiff::SignedDuration::from_millis(i));
            }
            j.nodes.insert(format!("4/bulk-{i:03}"), r);
        }
        // The two nodes in trouble sort last among 503 but are drawn all the same.
        let svg = timeline_svg(&j, Stamp::now(), &["w-<2>".to_string()]).unwrap();
        // Drawn: the two in trouble, w-1 and 197 of the bulk, each with five phases and its end.
        assert_eq!(svg.matches("<title>bulk-").count(), (MAX_TIMELINE_NODES - 3) * 6);
        assert!(svg.contains("w-&lt;2&gt; · quarantined") && svg.contains("w-3 · left cordoned"));
        assert!(svg.contains("303 more nodes not drawn (the journal has them all)"));
    }

    #[test]
    fn a_journal_without_times_says_so_instead_of_drawing() {
        let p = sample();
        let mut j = journal_for(&p);
        for s in &mut j.steps {
            s.started = None;
            s.ended = None;
        }
        for r in j.nodes.values_mut() {
            r.times.clear();
        }
        assert!(timeline_svg(&j, Stamp::now(), &[]).is_none());
        let run = RunView {
            journal: &j,
            exit: 0,
            error: None,
            quarantined: &[],
            nodes_done: 0,
            took: std::time::Duration::ZERO,
            dry_run: true,
            continue_with: None,
            ended: Stamp::now(),
            journal_at: "ConfigMap kube-system/k8s-upgrade-journal in the cluster".into(),
        };
        let html = apply_html(Some(&p), &run);
        assert!(html.contains("The journal holds no times"));
        assert!(html.contains("dry run: nothing changed"));
    }

    #[test]
    fn ticks_and_durations_read_well_at_every_scale() {
        assert_eq!(tick_interval(0.8), 0.1);
        assert_eq!(tick_interval(7.0), 1.0);
        assert_eq!(tick_interval(300.0), 60.0);
        assert_eq!(tick_interval(5.0 * 3600.0), 3600.0);
        assert_eq!(offset_label(0.5, 0.1), "+0.5s");
        assert_eq!(offset_label(90.0, 30.0), "+90s");
        assert_eq!(offset_label(150.0, 60.0), "+2m30s");
        assert_eq!(offset_label(7200.0, 3600.0), "+2h");
        assert_eq!(duration(12.34), "12.3s");
        assert_eq!(duration(245.0), "4m05s");
        assert_eq!(duration(7800.0), "2h10m");
        assert_eq!(clock(Stamp("2026-11-27T01:02:03.456789Z".parse().unwrap())), "01:02:03.456");
    }
}
