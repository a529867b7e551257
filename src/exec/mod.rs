//! The executor behind `k8s-upgrade apply`: runs a plan's steps in order against a live cluster.
//!
//! Control-plane hops upgrade each control-plane node through the upgrader (first one, then the
//! others) and wait for its static pods and `/readyz`; node rolls go in batches of
//! `--max-unavailable`, canary first, ordered so one batch does not hold two pods of the same
//! budget where avoidable; each node is journaled, cordoned (remembering whether it already
//! was), drained through the Eviction API, upgraded, waited for (Ready at the target kubelet),
//! gated, and uncordoned only if we cordoned it. Add-on steps go through the upgrader; manual
//! steps are prompted for. Every phase is written to the journal before the next action, so a
//! run stopped anywhere (Ctrl-C, window end, crash, SIGKILL) resumes at the exact point.

pub mod cache;
pub mod drain;
pub mod gates;
pub mod journal;
pub mod lock;
pub mod upgrader;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::plan::{Step, StepKind};
use crate::version::Version;
use drain::{DrainError, DrainPolicy, Stop};
use journal::{Journal, JournalStep, NodePhase, NodeRecord, StepStatus};
use upgrader::{Action, Done, Upgrader};

/// How the run behaves; everything the operator sets.
#[derive(Debug, Clone)]
pub struct Options {
    pub upgrader: Upgrader,
    pub max_unavailable: usize,
    pub drain: DrainPolicy,
    pub gates: gates::GateOptions,
    pub pause: Duration,
    pub yes: bool,
    pub dry_run: bool,
    pub window_end: Option<SystemTime>,
    /// How long a node may take to come back Ready at its target.
    pub node_timeout: Duration,
    /// How often node state is read while waiting.
    pub poll: Duration,
    /// Runs per Helm-release step (argv template; `{node}` is the release).
    pub release_command: Option<Vec<String>>,
    /// Stop before anything else, as a test hook: after this many nodes are done.
    pub stop_after_nodes: Option<usize>,
}

/// Why a run stopped early; `code` is the process exit code.
#[derive(Debug, Clone, PartialEq)]
pub struct Halt {
    pub code: u8,
    pub message: String,
}

impl Halt {
    fn error(message: impl Into<String>) -> Self {
        Halt { code: 1, message: message.into() }
    }
    fn blocked(message: impl Into<String>) -> Self {
        Halt { code: 3, message: message.into() }
    }
}

/// An add-on upgrade as the plan describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddonTarget {
    pub addon: String,
    pub workload: String,
    pub line: String,
}

/// The part of a plan document the executor needs, from `plan` or from a saved file.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    pub distro: String,
    pub from: Version,
    pub to: Version,
    pub steps: Vec<Step>,
    pub addons: BTreeMap<usize, AddonTarget>,
    /// Blockers no step resolves, as `CODE subject: message`.
    pub unresolved: Vec<String>,
}

impl ExecPlan {
    /// Reads a plan document (as JSON/YAML value).
    pub fn from_document(doc: &Value) -> Result<ExecPlan, String> {
        if doc.get("kind").and_then(Value::as_str) != Some("UpgradePlan") {
            return Err("not an UpgradePlan document (kind must be UpgradePlan)".into());
        }
        let field = |k: &str| doc.get(k).cloned().ok_or_else(|| format!("the plan has no {k}"));
        let distro: String = serde_json::from_value(field("distro")?).map_err(|e| format!("distro: {e}"))?;
        let from: Version = serde_json::from_value(field("from")?).map_err(|e| format!("from: {e}"))?;
        let to: Version = serde_json::from_value(field("to")?).map_err(|e| format!("to: {e}"))?;
        let steps: Vec<Step> = serde_json::from_value(field("steps")?).map_err(|e| format!("steps: {e}"))?;
        let findings = doc.get("findings").and_then(Value::as_array).cloned().unwrap_or_default();
        let resolved: BTreeSet<usize> = steps.iter().flat_map(|s| s.resolves.iter().copied()).collect();
        let unresolved = findings
            .iter()
            .enumerate()
            .filter(|(i, f)| f["severity"] == "blocker" && !resolved.contains(i))
            .map(|(_, f)| {
                format!(
                    "{} {}: {}",
                    f["code"].as_str().unwrap_or_default(),
                    f["subject"].as_str().unwrap_or_default(),
                    f["message"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let mut addons = BTreeMap::new();
        for s in steps.iter().filter(|s| s.kind == StepKind::Addon) {
            let Some(f) = s.resolves.first().and_then(|i| findings.get(*i)) else { continue };
            let d = &f["details"];
            if let (Some(addon), Some(workload), Some(line)) =
                (d["addon"].as_str(), d["workload"].as_str(), d["line"].as_str())
            {
                addons
                    .insert(s.order, AddonTarget { addon: addon.into(), workload: workload.into(), line: line.into() });
            }
        }
        Ok(ExecPlan { distro, from, to, steps, addons, unresolved })
    }

    /// What differs between two plans' steps, one line each (empty: same plan).
    pub fn drift(&self, live: &ExecPlan) -> Vec<String> {
        let line = |s: &Step| {
            format!(
                "{:?} {} {}",
                s.kind,
                s.target.as_ref().map(|t| t.to_string()).unwrap_or_default(),
                s.moves.iter().map(|m| format!("{}→{}", m.from, m.to)).collect::<Vec<_>>().join(",")
            )
        };
        let a: Vec<String> = self.steps.iter().map(line).collect();
        let b: Vec<String> = live.steps.iter().map(line).collect();
        let mut out = Vec::new();
        if self.from != live.from {
            out.push(format!("from: plan {} / cluster now {}", self.from, live.from));
        }
        for i in 0..a.len().max(b.len()) {
            match (a.get(i), b.get(i)) {
                (Some(x), Some(y)) if x == y => {}
                (x, y) => out.push(format!(
                    "step {}: plan `{}` / cluster now `{}`",
                    i + 1,
                    x.map_or("-", String::as_str),
                    y.map_or("-", String::as_str)
                )),
            }
        }
        out
    }
}

/// Where the run talks and prints. On a terminal: log lines above indicatif bars (the whole
/// run, the current batch, and one per node in flight showing its step and the pods left to
/// evict). Otherwise plain lines on stderr. `--events` gets a JSON line per event either way.
pub struct Ui {
    events: Option<std::sync::Mutex<std::fs::File>>,
    bars: Option<Bars>,
    started: Instant,
    pub interactive: bool,
    /// One question at a time: two nodes stuck at once must not read the same answer.
    asking: tokio::sync::Mutex<()>,
}

struct Bars {
    multi: indicatif::MultiProgress,
    /// While a question is on screen the bars are hidden, and log lines go straight to stderr
    /// (a hidden MultiProgress drops what it is asked to print).
    hidden: std::sync::atomic::AtomicBool,
    overall: indicatif::ProgressBar,
    batch: std::sync::Mutex<Option<indicatif::ProgressBar>>,
    nodes: std::sync::Mutex<BTreeMap<String, indicatif::ProgressBar>>,
}

fn style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}

impl Ui {
    pub fn new(events: Option<&std::path::Path>, steps: usize, interactive: bool) -> Result<Ui, String> {
        let events = match events {
            Some(p) => Some(std::sync::Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("cannot open --events {}: {e}", p.display()))?,
            )),
            None => None,
        };
        let bars = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let multi = indicatif::MultiProgress::new();
            let overall = multi.add(indicatif::ProgressBar::new(steps as u64));
            overall.set_style(style("{bar:30} step {pos}/{len} {elapsed_precise} {msg}"));
            Bars {
                multi,
                hidden: std::sync::atomic::AtomicBool::new(false),
                overall,
                batch: std::sync::Mutex::new(None),
                nodes: std::sync::Mutex::new(BTreeMap::new()),
            }
        });
        Ok(Ui { events, bars, started: Instant::now(), interactive, asking: tokio::sync::Mutex::new(()) })
    }

    /// A log line (above the bars on a terminal).
    pub fn say(&self, line: &str) {
        let t = self.started.elapsed().as_secs_f64();
        let text = format!("[{t:7.1}s] {line}");
        match &self.bars {
            Some(b) if !b.hidden.load(std::sync::atomic::Ordering::SeqCst) => {
                let _ = b.multi.println(text);
            }
            _ => eprintln!("{text}"),
        }
    }

    pub fn event(&self, kind: &str, fields: Value) {
        let Some(f) = &self.events else { return };
        let mut doc = json!({"time": k8s_openapi::jiff::Timestamp::now().to_string(), "elapsed": self.started.elapsed().as_secs_f64(), "event": kind});
        if let (Some(d), Some(extra)) = (doc.as_object_mut(), fields.as_object()) {
            d.extend(extra.clone());
        }
        let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(f, "{doc}");
    }

    fn progress(&self, pos: usize, msg: &str) {
        if let Some(b) = &self.bars {
            b.overall.set_position(pos as u64);
            b.overall.set_message(msg.to_string());
        }
    }

    /// Asks a yes/no question with the bars out of the way.
    pub async fn confirm(&self, question: &str) -> bool {
        let _one = self.asking.lock().await;
        self.hide_bars();
        let answer = confirm(question).await;
        self.show_bars();
        answer
    }

    /// Asks for one letter (the first of the answer, lowercased) with the bars out of the way.
    async fn choose(&self, question: &str) -> char {
        let _one = self.asking.lock().await;
        self.hide_bars();
        let answer = choose(question).await;
        self.show_bars();
        answer
    }

    fn hide_bars(&self) {
        if let Some(b) = &self.bars {
            let _ = b.multi.clear();
            b.multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            b.hidden.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn show_bars(&self) {
        if let Some(b) = &self.bars {
            b.hidden.store(false, std::sync::atomic::Ordering::SeqCst);
            b.multi.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }

    /// A new batch bar (`label` e.g. "canary" or "batch 2/4") over `nodes` nodes.
    fn batch_started(&self, label: &str, nodes: usize) {
        let Some(b) = &self.bars else { return };
        let bar = b.multi.add(indicatif::ProgressBar::new(nodes as u64));
        bar.set_style(style("{prefix:>12} {bar:20} {pos}/{len} nodes {msg}"));
        bar.set_prefix(label.to_string());
        if let Some(old) = b.batch.lock().unwrap_or_else(|e| e.into_inner()).replace(bar) {
            old.finish_and_clear();
        }
    }

    fn batch_message(&self, msg: &str) {
        let Some(b) = &self.bars else { return };
        if let Some(bar) = &*b.batch.lock().unwrap_or_else(|e| e.into_inner()) {
            bar.set_message(msg.to_string());
        }
    }

    fn batch_node_done(&self) {
        let Some(b) = &self.bars else { return };
        if let Some(bar) = &*b.batch.lock().unwrap_or_else(|e| e.into_inner()) {
            bar.inc(1);
        }
    }

    fn node_bar(&self, node: &str) -> Option<indicatif::ProgressBar> {
        let b = self.bars.as_ref()?;
        let mut nodes = b.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let bar = nodes.entry(node.to_string()).or_insert_with(|| {
            let bar = b.multi.add(indicatif::ProgressBar::new(0));
            bar.set_style(style("{spinner} {prefix:>12} {msg}"));
            bar.set_prefix(node.chars().take(40).collect::<String>());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Some(bar.clone())
    }

    /// What `node` is doing now.
    fn node_step(&self, node: &str, step: &str) {
        if let Some(bar) = self.node_bar(node) {
            bar.set_style(style("{spinner} {prefix:>12} {msg}"));
            bar.set_message(step.to_string());
        }
    }

    /// Pods still to evict from `node`.
    fn node_pods_left(&self, node: &str, left: usize, total: usize) {
        if let Some(bar) = self.node_bar(node) {
            bar.set_style(style("{spinner} {prefix:>12} draining {bar:20} {msg}"));
            bar.set_length(total as u64);
            bar.set_position((total - left.min(total)) as u64);
            bar.set_message(format!("{left} of {total} pods left"));
        }
    }

    fn node_finished(&self, node: &str) {
        let Some(b) = &self.bars else { return };
        if let Some(bar) = b.nodes.lock().unwrap_or_else(|e| e.into_inner()).remove(node) {
            bar.finish_and_clear();
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bars {
            for (_, bar) in std::mem::take(&mut *b.nodes.lock().unwrap_or_else(|e| e.into_inner())) {
                bar.finish_and_clear();
            }
            if let Some(bar) = b.batch.lock().unwrap_or_else(|e| e.into_inner()).take() {
                bar.finish_and_clear();
            }
            b.overall.finish_and_clear();
        }
    }
}

/// Asks a yes/no question on the terminal.
pub async fn confirm(question: &str) -> bool {
    matches!(read_answer(format!("{question} [y/N]")).await.trim(), "y" | "Y" | "yes")
}

/// Asks for one letter: the first of the answer, lowercased (`a` when there is none).
async fn choose(question: &str) -> char {
    read_answer(question.to_string()).await.trim().chars().next().unwrap_or('a').to_ascii_lowercase()
}

/// Prints `prompt` and reads one line from stdin on a blocking thread (empty when it cannot).
async fn read_answer(prompt: String) -> String {
    tokio::task::spawn_blocking(move || {
        eprint!("{prompt} ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        answer
    })
    .await
    .unwrap_or_default()
}

/// What a finished (or stopped) run did, for the summary.
#[derive(Debug, Default)]
pub struct Report {
    pub nodes_done: Vec<(String, f64)>,
    pub skipped: Vec<String>,
    pub halted: Option<Halt>,
}

pub struct Executor {
    pub client: Client,
    pub cache: cache::Cache,
    pub journal: tokio::sync::Mutex<Journal>,
    pub options: Options,
    pub ui: Arc<Ui>,
    pub stop: Stop,
    pub addons: BTreeMap<usize, AddonTarget>,
    baseline: tokio::sync::Mutex<gates::Baseline>,
    durations: std::sync::Mutex<Vec<f64>>,
    report: std::sync::Mutex<Report>,
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn kubelet_of(n: &Node) -> Option<Version> {
    n.status.as_ref().and_then(|s| s.node_info.as_ref()).and_then(|i| i.kubelet_version.parse().ok())
}

fn same_version(a: &Version, b: &Version) -> bool {
    a.without_suffix().core() == b.without_suffix().core()
}

fn is_control_plane(n: &Node) -> bool {
    n.metadata.labels.as_ref().is_some_and(|l| {
        l.contains_key("node-role.kubernetes.io/control-plane") || l.contains_key("node-role.kubernetes.io/master")
    })
}

impl Executor {
    pub fn new(
        client: Client,
        cache: cache::Cache,
        journal: Journal,
        options: Options,
        ui: Arc<Ui>,
        stop: Stop,
    ) -> Self {
        let addons = journal.addons.clone();
        Executor {
            client,
            cache,
            journal: tokio::sync::Mutex::new(journal),
            options,
            ui,
            stop,
            addons,
            baseline: tokio::sync::Mutex::new(gates::Baseline::default()),
            durations: std::sync::Mutex::new(Vec::new()),
            report: std::sync::Mutex::new(Report::default()),
        }
    }

    pub fn take_report(&self) -> Report {
        std::mem::take(&mut *self.report.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn say(&self, line: &str) {
        self.ui.say(line);
    }

    async fn save<F: FnOnce(&mut Journal)>(&self, f: F) -> Result<(), Halt> {
        let mut j = self.journal.lock().await;
        f(&mut j);
        if self.options.dry_run {
            return Ok(());
        }
        j.save().map_err(|e| Halt::error(e.to_string()))
    }

    /// Runs every step not yet done.
    pub async fn run(&self) -> Result<(), Halt> {
        // A resumed run holds the cluster to the health it had before the run began, not to
        // whatever the interruption left behind.
        let kept = self.journal.lock().await.baseline.clone();
        let from_journal = kept.is_some();
        let baseline = match kept {
            Some(b) => b,
            None if self.cache.stale().is_empty() => gates::Baseline::from_cache(&self.cache),
            None => gates::observe(&self.client).await.map_err(Halt::error)?.0,
        };
        self.say(&format!(
            "baseline{}: {} workloads, {} disruption budgets, {} pods Pending",
            if from_journal { " (from the journal, taken when the run began)" } else { "" },
            baseline.workloads.len(),
            baseline.budgets.len(),
            baseline.pending
        ));
        self.save(|j| j.baseline = Some(baseline.clone())).await?;
        *self.baseline.lock().await = baseline;
        let total = self.journal.lock().await.steps.len();
        loop {
            let (index, step) = {
                let j = self.journal.lock().await;
                match j.next_step() {
                    None => break,
                    Some(i) => (i, j.steps[i].step.clone()),
                }
            };
            if self.stop.graceful() {
                return Err(Halt { code: 130, message: "stopped by Ctrl-C before the next step".into() });
            }
            self.ui.progress(index, &step.description);
            self.say(&format!("step {}/{total} {}: {}", step.order, step.kind.as_str(), step.description));
            self.ui.event(
                "step-start",
                json!({"step": step.order, "kind": step.kind.as_str(), "description": step.description}),
            );
            self.save(|j| j.steps[index].status = StepStatus::Running).await?;
            let started = Instant::now();
            let outcome = match step.kind {
                StepKind::ControlPlane => self.control_plane(&step).await,
                StepKind::Nodes => self.node_roll(&step).await,
                StepKind::Addon => self.addon(&step).await,
                StepKind::MigrateApi | StepKind::HelmRelease => self.manual(index, &step).await,
            };
            match outcome {
                Ok(note) => {
                    let status = if note.is_some() { StepStatus::Skipped } else { StepStatus::Done };
                    self.save(|j| {
                        j.steps[index].status = status;
                        j.steps[index].note = note.clone();
                    })
                    .await?;
                    self.ui.event(
                        "step-done",
                        json!({"step": step.order, "seconds": started.elapsed().as_secs_f64(), "skipped": note}),
                    );
                }
                Err(h) => {
                    let status = if h.code == 130 || h.code == 4 { StepStatus::Pending } else { StepStatus::Failed };
                    self.save(|j| {
                        j.steps[index].status = status;
                        j.steps[index].note = Some(h.message.clone());
                    })
                    .await?;
                    self.ui.event("step-stopped", json!({"step": step.order, "code": h.code, "message": h.message}));
                    return Err(h);
                }
            }
        }
        self.ui.progress(total, "done");
        self.save(|j| j.finished = true).await?;
        // Every step ran, but a node the operator chose to skip is still on its old version.
        let quarantined: Vec<String> =
            self.journal.lock().await.quarantined().into_iter().map(str::to_string).collect();
        if !quarantined.is_empty() {
            return Err(Halt::blocked(format!(
                "{} skipped and left cordoned with the label {}=true: {}. Look at why, then `kubectl uncordon` it, remove the label, and run apply again to upgrade it",
                if quarantined.len() == 1 { "a node was" } else { "nodes were" },
                drain::LABEL_QUARANTINED,
                quarantined.join(", ")
            )));
        }
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<Node>, Halt> {
        if !self.cache.is_stale("nodes") {
            return Ok(self.cache.nodes.state().iter().map(|n| Node::clone(n)).collect());
        }
        let api: Api<Node> = Api::all(self.client.clone());
        {
            let lp = ListParams::default();
            crate::inventory::live::with_retries(|| api.list(&lp)).await
        }
        .map(|l| l.items)
        .map_err(|e| Halt::error(format!("cannot list nodes: {e}")))
    }

    async fn control_plane(&self, step: &Step) -> Result<Option<String>, Halt> {
        let target = step.target.clone().ok_or_else(|| Halt::error("control-plane step without a target"))?;
        if !self.options.yes && self.ui.interactive && !self.options.dry_run {
            let done = self.journal.lock().await.nodes.keys().any(|k| k.starts_with(&format!("{}/", step.order)));
            if !done && !self.ui.confirm(&format!("Upgrade the control plane to {target}?")).await {
                return Err(Halt { code: 130, message: "the operator declined the control-plane hop".into() });
            }
        }
        let mut cps: Vec<Node> = self.nodes().await?.into_iter().filter(is_control_plane).collect();
        cps.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        if cps.is_empty() {
            // A managed control plane: the provider upgrades it; wait for the apiserver version.
            return self.managed_control_plane(&target).await;
        }
        self.ui.batch_started("control plane", cps.len());
        for n in cps {
            let name = n.metadata.name.clone().unwrap_or_default();
            if self.stop.graceful() {
                return Err(Halt { code: 130, message: format!("stopped by Ctrl-C before control-plane node {name}") });
            }
            self.window_check(&name).await?;
            self.roll_one(step.order, &name, &target, "control-plane").await?;
            self.ui.batch_message("health gates");
            self.gate(&format!("control-plane node {name}")).await?;
            self.finish_node(step.order, &name).await?;
        }
        Ok(None)
    }

    async fn managed_control_plane(&self, target: &Version) -> Result<Option<String>, Halt> {
        let action = Action {
            subject: "control-plane".into(),
            role: "control-plane",
            phase: "control-plane",
            target: target.to_string(),
            workload: None,
        };
        if !self.options.dry_run {
            match self.run_upgrader(&self.options.upgrader, &action).await?.map_err(Halt::error)? {
                Done::Manual(text) => self.say(&text),
                Done::Started => {}
            }
        }
        let deadline = Instant::now() + self.options.node_timeout;
        loop {
            if let Ok(v) = self.client.apiserver_version().await
                && v.git_version.parse::<Version>().is_ok_and(|v| same_version(&v, target))
            {
                return Ok(None);
            }
            if self.options.dry_run {
                return Ok(Some("dry run: the managed control plane was not upgraded".into()));
            }
            if Instant::now() > deadline {
                return Err(Halt::blocked(format!(
                    "the control plane did not report {target} within {:?}",
                    self.options.node_timeout
                )));
            }
            tokio::time::sleep(self.options.poll).await;
        }
    }

    async fn node_roll(&self, step: &Step) -> Result<Option<String>, Halt> {
        let nodes = self.nodes().await?;
        let recorded: BTreeMap<String, NodeRecord> = {
            let j = self.journal.lock().await;
            j.nodes
                .iter()
                .filter_map(|(k, r)| k.strip_prefix(&format!("{}/", step.order)).map(|n| (n.to_string(), r.clone())))
                .collect()
        };
        let mut todo: Vec<(String, Version)> = Vec::new();
        for n in nodes.iter().filter(|n| !is_control_plane(n)) {
            let name = n.metadata.name.clone().unwrap_or_default();
            if let Some(r) = recorded.get(&name) {
                if !matches!(r.phase, NodePhase::Done | NodePhase::Quarantined) {
                    todo.push((name, r.target.clone()));
                }
                continue;
            }
            let Some(k) = kubelet_of(n) else { continue };
            if let Some(m) = step
                .moves
                .iter()
                .find(|m| same_version(&m.from, &k) || (m.from.minor_version() == k.minor_version() && k < m.to))
            {
                todo.push((name, m.to.clone()));
            }
        }
        if todo.is_empty() {
            return Ok(None);
        }
        let batches = self.batches(todo).await;
        let widen = batches.len() > 1 && recorded.is_empty();
        for (i, batch) in batches.iter().enumerate() {
            if self.stop.graceful() {
                return Err(Halt { code: 130, message: "stopped by Ctrl-C between batches".into() });
            }
            for (name, _) in batch {
                self.window_check(name).await?;
            }
            let names: Vec<&str> = batch.iter().map(|(n, _)| n.as_str()).collect();
            self.say(&format!("{} {}", if i == 0 { "canary" } else { "batch" }, names.join(", ")));
            self.ui.batch_started(
                &if i == 0 { "canary".to_string() } else { format!("batch {i}/{}", batches.len() - 1) },
                batch.len(),
            );
            let rolls = batch.iter().map(|(name, target)| self.roll_one(step.order, name, target, "worker"));
            let results = futures::future::join_all(rolls).await;
            // Finish what rolled before reporting what did not: no node is left half-done.
            let mut first_error = None;
            let mut skipped = Vec::new();
            for ((name, _), r) in batch.iter().zip(results) {
                match r {
                    Ok(()) => {}
                    Err(h) if h.code == 0 => {
                        self.say(&format!("{name}: {}", h.message));
                        skipped.push(name.as_str());
                    }
                    Err(h) => {
                        first_error.get_or_insert(h);
                    }
                }
            }
            if let Some(h) = first_error {
                return Err(h);
            }
            self.ui.batch_message("health gates");
            self.gate(&format!("batch {}", names.join(", "))).await?;
            self.ui.batch_message("");
            for (name, _) in batch {
                let phase = self.journal.lock().await.node(step.order, name).map(|r| r.phase);
                if phase == Some(NodePhase::Upgraded) {
                    self.finish_node(step.order, name).await?;
                }
            }
            if let Some(limit) = self.options.stop_after_nodes
                && self.report.lock().unwrap_or_else(|e| e.into_inner()).nodes_done.len() >= limit
            {
                return Err(Halt { code: 130, message: format!("stopped after {limit} nodes (test hook)") });
            }
            if i == 0 && widen && !self.options.yes && self.ui.interactive && !self.options.dry_run {
                let n = self.options.max_unavailable;
                if !self
                    .ui
                    .confirm(&if skipped.is_empty() {
                        format!("Canary {} is done and healthy. Continue with batches of {n}?", names.join(", "))
                    } else {
                        format!(
                            "Canary {} was skipped and quarantined, not upgraded. Continue with batches of {n} anyway?",
                            skipped.join(", ")
                        )
                    })
                    .await
                {
                    return Err(Halt { code: 130, message: "the operator stopped after the canary".into() });
                }
            }
            if !self.options.pause.is_zero() {
                self.say(&format!("soaking for {:?}", self.options.pause));
                tokio::time::sleep(self.options.pause).await;
            }
        }
        Ok(None)
    }

    /// Canary (one node) first, then batches of `max_unavailable` where no two nodes hold pods
    /// of the same budget, when that can be avoided.
    async fn batches(&self, mut todo: Vec<(String, Version)>) -> Vec<Vec<(String, Version)>> {
        todo.sort();
        let budgets = self.budgets_per_node().await;
        let mut out: Vec<Vec<(String, Version)>> = Vec::new();
        if !todo.is_empty() {
            out.push(vec![todo.remove(0)]);
        }
        let size = self.options.max_unavailable.max(1);
        while !todo.is_empty() {
            let mut batch: Vec<(String, Version)> = Vec::new();
            let mut held: BTreeSet<String> = BTreeSet::new();
            let mut i = 0;
            while i < todo.len() && batch.len() < size {
                let b = budgets.get(&todo[i].0).cloned().unwrap_or_default();
                if held.is_disjoint(&b) {
                    held.extend(b);
                    batch.push(todo.remove(i));
                } else {
                    i += 1;
                }
            }
            // Unavoidable overlap: fill up anyway (the budgets still guard each eviction).
            while batch.len() < size && !todo.is_empty() {
                batch.push(todo.remove(0));
            }
            out.push(batch);
        }
        out
    }

    async fn budgets_per_node(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let (pods, pdbs) = (self.cache.pods.state(), self.cache.budgets.state());
        let selectors: Vec<(String, String, crate::labels::LabelSelector)> = pdbs
            .iter()
            .filter_map(|b| {
                let sel = serde_json::to_value(b.spec.as_ref()?.selector.as_ref()?).ok()?;
                let ns = b.metadata.namespace.clone()?;
                Some((
                    ns.clone(),
                    format!("{ns}/{}", b.metadata.name.clone()?),
                    crate::labels::LabelSelector::from_json(&sel).ok()?,
                ))
            })
            .collect();
        for p in pods.iter() {
            let (Some(node), Some(ns)) =
                (p.spec.as_ref().and_then(|s| s.node_name.clone()), p.metadata.namespace.clone())
            else {
                continue;
            };
            let Some(labels) = &p.metadata.labels else { continue };
            for (bns, key, sel) in &selectors {
                if *bns == ns && sel.matches_map(labels) {
                    out.entry(node.clone()).or_default().insert(key.clone());
                }
            }
        }
        out
    }

    /// Refuses to start a node that cannot finish before the window closes (exit 4).
    async fn window_check(&self, node: &str) -> Result<(), Halt> {
        let Some(end) = self.options.window_end else { return Ok(()) };
        let longest = self.durations.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().fold(0.0, f64::max);
        let need = Duration::from_secs_f64(longest);
        if SystemTime::now() + need > end {
            return Err(Halt {
                code: 4,
                message: format!(
                    "the maintenance window closes before {node} could finish (a node takes up to {:.0}s); stopped before starting it",
                    longest
                ),
            });
        }
        Ok(())
    }

    /// Cordon, drain, upgrade and wait for one node, continuing from its journaled phase.
    async fn roll_one(&self, step: usize, node: &str, target: &Version, role: &'static str) -> Result<(), Halt> {
        let started = Instant::now();
        let existing = self.journal.lock().await.node(step, node).cloned();
        let mut record = existing.clone().unwrap_or(NodeRecord {
            step,
            target: target.clone(),
            phase: NodePhase::Started,
            we_cordoned: false,
            note: None,
            seconds: None,
        });
        if matches!(record.phase, NodePhase::Done | NodePhase::Quarantined | NodePhase::Upgraded) {
            return Ok(());
        }
        let tell = drain::Tell {
            say: {
                let ui = self.ui.clone();
                let node = node.to_string();
                Arc::new(move |line: String| ui.say(&format!("{node}: {line}")))
            },
            pods_left: {
                let ui = self.ui.clone();
                let node = node.to_string();
                Arc::new(move |left, total| ui.node_pods_left(&node, left, total))
            },
        };
        let say = |line: String| (tell.say)(line);
        let event = |phase: &str| {
            self.ui.event("node", json!({"step": step, "node": node, "phase": phase, "target": target.to_string()}))
        };
        let run_id = self.journal.lock().await.run_id.clone();

        if record.phase < NodePhase::Cordoned {
            // Every reason a drain would refuse, before the node is touched.
            if let Err(e) = drain::preflight(&self.client, &self.cache, node, &self.options.drain).await {
                return Err(Halt::blocked(format!("{e}; the node was not cordoned")));
            }
            self.ui.node_step(node, "cordoning");
            if self.options.dry_run {
                say("dry run: would cordon".into());
            } else {
                self.save(|j| {
                    j.nodes.insert(Journal::key(step, node), record.clone());
                })
                .await?;
                let found = drain::cordon(&self.client, &self.cache, node, &run_id).await.map_err(Halt::error)?;
                let already = found.already;
                // Cordoned before a crash by this run: the node's annotation says so.
                let ours_before = already && found.by.as_deref() == Some(run_id.as_str());
                record.we_cordoned = !already || ours_before || record.we_cordoned;
                record.phase = NodePhase::Cordoned;
                self.save(|j| {
                    j.nodes.insert(Journal::key(step, node), record.clone());
                })
                .await?;
                say(if already && !ours_before {
                    "was already cordoned; it will stay cordoned".into()
                } else {
                    "cordoned".into()
                });
            }
            event("cordoned");
        }
        if record.phase < NodePhase::Drained {
            loop {
                let pods = match drain::evictable_pods(&self.client, node, &self.options.drain).await {
                    Ok(pods) => pods,
                    // A pod that arrived since the preflight: hand the node back as it was.
                    Err(e @ DrainError::Refused { .. }) if record.we_cordoned && !self.options.dry_run => {
                        drain::uncordon(&self.client, node).await.map_err(|u| {
                            Halt::blocked(format!("{e}; and the node could not be uncordoned again: {u}"))
                        })?;
                        self.save(|j| {
                            j.nodes.remove(&Journal::key(step, node));
                        })
                        .await?;
                        return Err(Halt::blocked(format!("{e}; the node was uncordoned again")));
                    }
                    Err(e @ DrainError::Refused { .. }) if self.options.dry_run => {
                        return Err(Halt::blocked(format!("dry run: {e}")));
                    }
                    Err(e @ DrainError::Refused { .. }) => {
                        return Err(Halt::blocked(format!("{e}; it stays cordoned (it was cordoned before this run)")));
                    }
                    Err(e) => {
                        return Err(Halt::blocked(format!(
                            "{e}; {node} stays cordoned (journal kept: apply --resume)"
                        )));
                    }
                };
                let count = pods.len();
                self.ui.node_pods_left(node, count, count);
                match drain::drain(&self.client, &self.cache, node, pods, &self.options.drain, &self.stop, &tell).await
                {
                    Ok(n) => {
                        say(format!(
                            "{} {n} pods",
                            if self.options.dry_run { "dry run: would evict" } else { "evicted" }
                        ));
                        break;
                    }
                    Err(DrainError::Interrupted { .. }) => {
                        return Err(Halt {
                            code: 130,
                            message: format!("stopped during the drain of {node}; it stays cordoned"),
                        });
                    }
                    Err(e) if self.options.dry_run => return Err(Halt::blocked(format!("dry run: {e}"))),
                    Err(e) => {
                        let retryable = matches!(e, DrainError::Timeout { .. });
                        if self.ui.interactive && !self.options.yes {
                            let c = self.ui.choose(&format!(
                                "{e}\nDrain of {node} is stuck ({count} pod{}). [w]ait again, [s]kip this node (it stays cordoned and is labelled {}), or [a]bort?",
                                if count == 1 { "" } else { "s" },
                                drain::LABEL_QUARANTINED
                            ))
                            .await;
                            if c == 'w' && retryable {
                                continue;
                            }
                            if c == 's' {
                                self.quarantine(step, node, &mut record, &e.to_string()).await?;
                                return Err(Halt { code: 0, message: format!("skipped and quarantined: {e}") });
                            }
                        }
                        self.quarantine(step, node, &mut record, &e.to_string()).await?;
                        return Err(Halt::blocked(format!(
                            "{e}. {node} stays cordoned and is labelled {}=true",
                            drain::LABEL_QUARANTINED
                        )));
                    }
                }
            }
            if !self.options.dry_run {
                record.phase = NodePhase::Drained;
                self.save(|j| {
                    j.nodes.insert(Journal::key(step, node), record.clone());
                })
                .await?;
            }
            event("drained");
        }
        if self.options.dry_run {
            say(format!("dry run: would upgrade to {target} with the {} upgrader", self.options.upgrader.name()));
            self.report.lock().unwrap_or_else(|e| e.into_inner()).nodes_done.push((node.to_string(), 0.0));
            return Ok(());
        }
        if record.phase < NodePhase::Upgrading {
            record.phase = NodePhase::Upgrading;
            self.save(|j| {
                j.nodes.insert(Journal::key(step, node), record.clone());
            })
            .await?;
            self.ui.node_step(node, &format!("upgrading to {target}"));
            drain::note_phase(&self.client, node, "upgrading").await;
            let action = Action {
                subject: node.into(),
                role,
                phase: if role == "worker" { "nodes" } else { "control-plane" },
                target: target.to_string(),
                workload: None,
            };
            let result = self.run_upgrader(&self.options.upgrader, &action).await?;
            match result {
                Ok(Done::Manual(text)) => say(text),
                Ok(Done::Started) => say(format!("upgrading to {target} ({} upgrader)", self.options.upgrader.name())),
                Err(e) => {
                    return Err(Halt::blocked(format!(
                        "the upgrade of {node} failed: {e}; it stays cordoned (journal kept)"
                    )));
                }
            }
            event("upgrading");
        }
        self.ui.node_step(node, &format!("waiting for Ready at {target}"));
        self.wait_node(node, target, role == "control-plane").await?;
        self.ui.node_step(node, &format!("Ready at {target}; health gates"));
        record.phase = NodePhase::Upgraded;
        record.seconds = Some(started.elapsed().as_secs_f64() + existing.and_then(|e| e.seconds).unwrap_or(0.0));
        self.save(|j| {
            j.nodes.insert(Journal::key(step, node), record.clone());
        })
        .await?;
        say(format!("Ready at {target}"));
        event("upgraded");
        Ok(())
    }

    /// Runs an upgrader action and keeps its output in the journal's log.
    async fn run_upgrader(&self, upgrader: &Upgrader, action: &Action) -> Result<Result<Done, String>, Halt> {
        let mut log = Vec::new();
        let result = upgrader.run(&self.client, action, &mut log).await;
        self.save(|j| {
            for l in log {
                j.push_log(l);
            }
        })
        .await?;
        Ok(result)
    }

    async fn quarantine(&self, step: usize, node: &str, record: &mut NodeRecord, why: &str) -> Result<(), Halt> {
        let labelled = drain::quarantine(&self.client, node, why).await;
        record.phase = NodePhase::Quarantined;
        record.note = Some(why.chars().take(500).collect());
        self.save(|j| {
            j.nodes.insert(Journal::key(step, node), record.clone());
        })
        .await?;
        self.report.lock().unwrap_or_else(|e| e.into_inner()).skipped.push(format!("{node}: quarantined ({why})"));
        self.ui.node_finished(node);
        self.ui.event("node", json!({"step": step, "node": node, "phase": "quarantined", "why": why}));
        labelled.map_err(Halt::error)
    }

    /// Uncordons (only if we cordoned) and marks the node done.
    async fn finish_node(&self, step: usize, node: &str) -> Result<(), Halt> {
        let Some(mut record) = self.journal.lock().await.node(step, node).cloned() else { return Ok(()) };
        if self.options.dry_run || record.phase != NodePhase::Upgraded {
            return Ok(());
        }
        if record.we_cordoned {
            drain::uncordon(&self.client, node).await.map_err(Halt::error)?;
        } else {
            if let Err(e) = drain::clear_notes(&self.client, node).await {
                self.say(&format!("{node}: warning: {e} (the {} annotation stays)", drain::ANNOTATION_PHASE));
            }
        }
        record.phase = NodePhase::Done;
        let seconds = record.seconds.unwrap_or(0.0);
        self.save(|j| {
            j.nodes.insert(Journal::key(step, node), record.clone());
        })
        .await?;
        self.durations.lock().unwrap_or_else(|e| e.into_inner()).push(seconds);
        self.report.lock().unwrap_or_else(|e| e.into_inner()).nodes_done.push((node.to_string(), seconds));
        self.say(&format!(
            "{node}: done in {seconds:.1}s{}",
            if record.we_cordoned { ", uncordoned" } else { " (left cordoned: it was cordoned before the run)" }
        ));
        self.ui.event("node", json!({"step": step, "node": node, "phase": "done", "seconds": seconds}));
        self.ui.node_finished(node);
        self.ui.batch_node_done();
        Ok(())
    }

    /// Waits until the node is Ready at the target (and, for a control-plane node, its
    /// apiserver static pod runs the target and `/readyz` is ok). Read from the run's node
    /// watch; read directly while that watch cannot be trusted.
    async fn wait_node(&self, node: &str, target: &Version, control_plane: bool) -> Result<(), Halt> {
        let api: Api<Node> = Api::all(self.client.clone());
        let deadline = Instant::now() + self.options.node_timeout;
        let mut changes = self.cache.changes();
        let mut last;
        // A watch can go quiet without failing: the node is also read directly now and then.
        let mut last_direct = Instant::now();
        loop {
            if self.stop.now() {
                return Err(Halt {
                    code: 130,
                    message: format!("stopped while waiting for {node}; it stays cordoned"),
                });
            }
            changes.borrow_and_update();
            let stale = self.cache.is_stale("nodes") || last_direct.elapsed() >= gates::DIRECT_CROSS_CHECK;
            if stale {
                last_direct = Instant::now();
            }
            let seen = if stale {
                api.get(node).await.map_err(|e| e.to_string())
            } else {
                self.cache.node(node).map(|n| Node::clone(&n)).ok_or_else(|| format!("node {node} is gone"))
            };
            match seen {
                Ok(n) => {
                    let ready = node_ready(&n);
                    let kubelet = kubelet_of(&n);
                    if ready && kubelet.as_ref().is_some_and(|k| same_version(k, target)) {
                        if !control_plane || self.control_plane_ready(node, target).await {
                            return Ok(());
                        }
                        last = "static pods or /readyz not at the target yet".into();
                    } else {
                        last = format!(
                            "{}, kubelet {}",
                            if ready { "Ready" } else { "NotReady" },
                            kubelet.map(|k| k.to_string()).unwrap_or_else(|| "unknown".into())
                        );
                    }
                }
                Err(e) => last = e,
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Halt::blocked(format!(
                    "{node} did not come back Ready at {target} within {:?} (last seen: {last}); it stays cordoned and the journal is intact: fix the node, then run apply --resume",
                    self.options.node_timeout
                )));
            }
            if stale || last.starts_with("static pods") {
                // Direct reads, static pods and /readyz: at most once per poll interval.
                tokio::time::sleep(self.options.poll.min(remaining)).await;
            } else {
                cache::Cache::next_change(&mut changes, Duration::from_secs(5).min(remaining)).await;
            }
        }
    }

    async fn control_plane_ready(&self, node: &str, target: &Version) -> bool {
        let pods: Vec<Pod> = if self.cache.is_stale("pods") {
            let api: Api<Pod> = Api::namespaced(self.client.clone(), "kube-system");
            let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
            let Ok(list) = api.list(&lp).await else { return false };
            list.items
        } else {
            self.cache.pods_on(node).iter().map(|p| Pod::clone(p)).collect()
        };
        let tag = format!("v{}", target.without_suffix().core());
        let apiserver_ok = pods
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some("kube-system"))
            .filter(|p| p.metadata.name.as_deref().is_some_and(|n| n.starts_with("kube-apiserver")))
            .all(|p| {
                p.spec
                    .as_ref()
                    .is_some_and(|s| s.containers.iter().all(|c| c.image.as_deref().is_some_and(|i| i.ends_with(&tag))))
            });
        if !apiserver_ok {
            return false;
        }
        let Ok(req) = http::Request::get("/readyz").body(Vec::new()) else { return false };
        self.client.request_text(req).await.is_ok()
    }

    async fn gate(&self, after: &str) -> Result<(), Halt> {
        let baseline = self.baseline.lock().await.clone();
        match gates::wait(&self.client, &self.cache, &baseline, &self.options.gates, &self.stop).await {
            Ok(checks) => {
                self.ui.event("gate", json!({"after": after, "passed": true, "checks": checks}));
                Ok(())
            }
            Err(failures) => {
                self.ui.event("gate", json!({"after": after, "passed": false, "failures": failures}));
                Err(Halt::blocked(format!(
                    "health gate after {after} did not pass within {:?}: {}",
                    self.options.gates.timeout,
                    failures.join("; ")
                )))
            }
        }
    }

    async fn addon(&self, step: &Step) -> Result<Option<String>, Halt> {
        let Some(t) = self.addons.get(&step.order).cloned() else {
            return self.manual_text(&step.description).await;
        };
        if self.options.dry_run {
            self.say(&format!("dry run: would upgrade {} ({}) to {}", t.addon, t.workload, t.line));
            return Ok(None);
        }
        let action = Action {
            subject: t.addon.clone(),
            role: "addon",
            phase: "addon",
            target: t.line.clone(),
            workload: Some(t.workload.clone()),
        };
        let result = self.run_upgrader(&self.options.upgrader, &action).await?;
        match result.map_err(|e| Halt::blocked(format!("add-on {}: {e}", t.addon)))? {
            Done::Manual(text) => return self.manual_text(&text).await,
            Done::Started => self.say(&format!("{} ({}) set to {}", t.addon, t.workload, t.line)),
        }
        self.gate(&format!("add-on {}", t.addon)).await?;
        Ok(None)
    }

    async fn manual(&self, index: usize, step: &Step) -> Result<Option<String>, Halt> {
        if step.kind == StepKind::HelmRelease
            && let Some(argv) = &self.options.release_command
            && !self.options.dry_run
        {
            let subject = step.description.split_whitespace().nth(2).unwrap_or_default().to_string();
            let action = Action {
                subject,
                role: "helm-release",
                phase: "helm-release",
                target: self.journal.lock().await.to.to_string(),
                workload: None,
            };
            let cmd = Upgrader::Command { argv: argv.clone(), timeout: Duration::from_secs(1800) };
            let r = self.run_upgrader(&cmd, &action).await?;
            r.map_err(|e| Halt::blocked(format!("step {}: {e}", index + 1)))?;
            return Ok(None);
        }
        self.manual_text(&step.description).await
    }

    /// A step only the operator can do: asked on a terminal, acknowledged (and reported) with --yes.
    async fn manual_text(&self, what: &str) -> Result<Option<String>, Halt> {
        if self.options.dry_run {
            self.say(&format!("dry run: operator step: {what}"));
            return Ok(None);
        }
        if self.options.yes || !self.ui.interactive {
            self.say(&format!("operator step, acknowledged by --yes (not performed by this tool): {what}"));
            self.report
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .skipped
                .push(format!("operator step assumed done: {what}"));
            return Ok(Some("acknowledged by --yes; not performed by this tool".into()));
        }
        if self.ui.confirm(&format!("Operator step: {what}\nIs it done?")).await {
            Ok(None)
        } else {
            Err(Halt { code: 130, message: format!("waiting for the operator: {what}") })
        }
    }
}

/// A fresh journal for a plan.
pub fn new_journal(path: std::path::PathBuf, run_id: &str, cluster: &str, plan: &ExecPlan) -> Journal {
    Journal {
        api_version: journal::JOURNAL_API_VERSION.into(),
        kind: "ApplyJournal".into(),
        run_id: run_id.into(),
        cluster: cluster.into(),
        distro: plan.distro.clone(),
        from: plan.from.clone(),
        to: plan.to.clone(),
        steps: plan
            .steps
            .iter()
            .map(|s| JournalStep { step: s.clone(), status: StepStatus::Pending, note: None })
            .collect(),
        nodes: BTreeMap::new(),
        addons: plan.addons.clone(),
        log: vec![],
        baseline: None,
        finished: false,
        path,
    }
}
