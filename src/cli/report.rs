//! Reporters for `apply`: the executor's [`Event`]s drawn as indicatif bars with log lines
//! above them on a terminal, as plain timestamped lines on stderr otherwise, and as JSON lines
//! in the `--events` file either way (each event serialized with its time and the seconds since
//! the run began).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::exec::{Event, NodeMilestone};

pub struct Reporter {
    events: Option<Mutex<std::fs::File>>,
    /// Set once a write to the events file failed (said once, not per event).
    events_failed: AtomicBool,
    bars: Option<Bars>,
    started: Instant,
}

struct Bars {
    multi: indicatif::MultiProgress,
    /// While a question is on screen the bars are hidden, and log lines go straight to stderr
    /// (a hidden MultiProgress drops what it is asked to print).
    hidden: AtomicBool,
    overall: indicatif::ProgressBar,
    batch: Mutex<Option<indicatif::ProgressBar>>,
    nodes: Mutex<BTreeMap<String, indicatif::ProgressBar>>,
}

fn style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Reporter {
    /// Bars when stderr is a terminal (and not in CI), plain lines otherwise.
    pub fn new(events: Option<&Path>, steps: usize) -> Result<Reporter, String> {
        let events = match events {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("cannot open --events {}: {e}", p.display()))?,
            )),
            None => None,
        };
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("CI").is_none()
            && !super::logging::logs_on_stderr();
        let bars = terminal.then(|| {
            let multi = indicatif::MultiProgress::new();
            let overall = multi.add(indicatif::ProgressBar::new(steps as u64));
            overall.set_style(style("{bar:30} step {pos}/{len} {elapsed_precise} {msg}"));
            Bars {
                multi,
                hidden: AtomicBool::new(false),
                overall,
                batch: Mutex::new(None),
                nodes: Mutex::new(BTreeMap::new()),
            }
        });
        Ok(Reporter { events, events_failed: AtomicBool::new(false), bars, started: Instant::now() })
    }

    /// A log line (above the bars on a terminal).
    pub fn say(&self, line: &str) {
        let line = &*super::printable::printable(line);
        let t = self.started.elapsed().as_secs_f64();
        if super::logging::json() {
            tracing::info!(target: "k8s_upgrade::apply", elapsed = (t * 10.0).round() / 10.0, "{line}");
            return;
        }
        let text = format!("[{t:7.1}s] {line}");
        match &self.bars {
            Some(b) if !b.hidden.load(Ordering::SeqCst) => {
                let _ = b.multi.println(text);
            }
            _ => super::logging::say(&text),
        }
    }

    /// A JSON line in the `--events` file: `fields` (an object) with the time added.
    pub fn record(&self, fields: serde_json::Value) {
        let Some(f) = &self.events else { return };
        let mut doc = serde_json::json!({
            "time": k8s_openapi::jiff::Timestamp::now().to_string(),
            "elapsed": self.started.elapsed().as_secs_f64(),
        });
        if let (Some(d), serde_json::Value::Object(extra)) = (doc.as_object_mut(), fields) {
            d.extend(extra);
        }
        if let Err(e) = writeln!(lock(f), "{doc}")
            && !self.events_failed.swap(true, Ordering::SeqCst)
        {
            // The run goes on (the journal, not this file, is what resume reads), but whoever
            // reads the events must know they are incomplete from here.
            self.say(&format!("warning: cannot write to the --events file ({e}); later events are missing from it"));
        }
    }

    pub fn handle(&self, event: &Event) {
        if self.events.is_some()
            && let Ok(v) = serde_json::to_value(event)
        {
            self.record(v);
        }
        match event {
            Event::Baseline { workloads, budgets, pending, from_journal } => self.say(&format!(
                "baseline{}: {workloads} workloads, {budgets} disruption budgets, {pending} pods Pending",
                if *from_journal { " (from the journal, taken when the run began)" } else { "" },
            )),
            Event::StepStart { index, step, total, kind, description } => {
                if let Some(b) = &self.bars {
                    b.overall.set_position(*index as u64);
                    b.overall.set_message(super::printable::one_line(description));
                }
                self.say(&format!("step {step}/{total} {}: {description}", kind.as_str()));
            }
            Event::StepDone { .. } | Event::StepStopped { .. } | Event::Gate { passed: true, .. } => {}
            Event::Gate { after, failures, .. } => {
                self.say(&format!("health gate after {after} failing: {}", failures.join("; ")));
            }
            Event::BatchStart { label, nodes } => {
                self.say(&format!("{label} {}", nodes.join(", ")));
                self.batch_started(label, nodes.len());
            }
            Event::BatchStatus { status } => {
                if let Some(b) = &self.bars
                    && let Some(bar) = &*lock(&b.batch)
                {
                    bar.set_message(super::printable::one_line(status));
                }
            }
            Event::Node { node, phase: NodeMilestone::Done, seconds, uncordoned, .. } => {
                self.say(&format!(
                    "{node}: done in {:.1}s{}",
                    seconds.unwrap_or(0.0),
                    if *uncordoned == Some(false) {
                        " (left cordoned: it was cordoned before the run)"
                    } else {
                        ", uncordoned"
                    }
                ));
                self.node_finished(node);
                if let Some(b) = &self.bars
                    && let Some(bar) = &*lock(&b.batch)
                {
                    bar.inc(1);
                }
            }
            Event::Node { node, phase: NodeMilestone::Quarantined, why, .. } => {
                self.say(&format!("{node}: quarantined: {}", why.as_deref().unwrap_or("")));
                self.node_finished(node);
            }
            Event::Node { .. } => {}
            Event::NodeActivity { node, activity } => {
                if let Some(bar) = self.node_bar(node) {
                    bar.set_style(style("{spinner} {prefix:>12} {msg}"));
                    bar.set_message(super::printable::one_line(activity));
                }
            }
            Event::PodsLeft { node, left, total } => {
                if let Some(bar) = self.node_bar(node) {
                    bar.set_style(style("{spinner} {prefix:>12} draining {bar:20} {msg}"));
                    bar.set_length(*total as u64);
                    bar.set_position((total - (*left).min(*total)) as u64);
                    bar.set_message(format!("{left} of {total} pods left"));
                }
            }
            Event::PoolProgress { at_target, old_left, joining, old_total, .. } => {
                if let Some(b) = &self.bars
                    && let Some(bar) = &*lock(&b.batch)
                {
                    bar.set_position(old_total.saturating_sub(*old_left) as u64);
                    bar.set_message(format!("{at_target} at the target, {joining} joining, {old_left} old left"));
                }
            }
            Event::EvictionRefused { node, pod, why, .. } => {
                self.say(&format!("{node}: waiting to evict {pod}: {why}"))
            }
            Event::Log { node: Some(node), line } => self.say(&format!("{node}: {line}")),
            Event::Log { node: None, line } => self.say(line),
            Event::OperatorStepLeft { step, what } => self.say(&format!(
                "step {step}: left to the operator (unattended run, not performed by this tool): {what}"
            )),
        }
    }

    fn batch_started(&self, label: &str, nodes: usize) {
        let Some(b) = &self.bars else { return };
        let bar = b.multi.add(indicatif::ProgressBar::new(nodes as u64));
        bar.set_style(style("{prefix:>12} {bar:20} {pos}/{len} nodes {msg}"));
        bar.set_prefix(super::printable::one_line(label));
        if let Some(old) = lock(&b.batch).replace(bar) {
            old.finish_and_clear();
        }
    }

    fn node_bar(&self, node: &str) -> Option<indicatif::ProgressBar> {
        let b = self.bars.as_ref()?;
        let mut nodes = lock(&b.nodes);
        let bar = nodes.entry(node.to_string()).or_insert_with(|| {
            let bar = b.multi.add(indicatif::ProgressBar::new(0));
            bar.set_style(style("{spinner} {prefix:>12} {msg}"));
            bar.set_prefix(super::printable::one_line(&node.chars().take(40).collect::<String>()));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Some(bar.clone())
    }

    fn node_finished(&self, node: &str) {
        let Some(b) = &self.bars else { return };
        if let Some(bar) = lock(&b.nodes).remove(node) {
            bar.finish_and_clear();
        }
    }

    /// Takes the bars off the screen for a question.
    pub fn hide(&self) {
        if let Some(b) = &self.bars {
            let _ = b.multi.clear();
            b.multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            b.hidden.store(true, Ordering::SeqCst);
        }
    }

    pub fn show(&self) {
        if let Some(b) = &self.bars {
            b.hidden.store(false, Ordering::SeqCst);
            b.multi.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bars {
            for (_, bar) in std::mem::take(&mut *lock(&b.nodes)) {
                bar.finish_and_clear();
            }
            if let Some(bar) = lock(&b.batch).take() {
                bar.finish_and_clear();
            }
            b.overall.finish_and_clear();
        }
    }
}
