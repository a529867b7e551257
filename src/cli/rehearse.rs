//! `k8s-upgrade rehearse`: read the cluster (only read), build its twin in the simulator, run
//! the same executor `apply` would run on the twin, in virtual time, and report what will
//! happen: the predicted time of each step and of the whole run against the window, the drains
//! that stall and on which budget, the pods that find no room during the roll and the node they
//! wait for, the most replicas any workload loses at once, and whether any budget is broken.
//!
//! The twin runs in a paused single-threaded runtime with no socket between the executor and
//! the simulated apiserver, so its clock jumps over every wait: hours of a roll take the CPU
//! time of its requests. The executor runs with apply's real intervals and the sim upgrader;
//! what the live cluster cannot tell (how long a node's upgrade takes, how long its pods take to
//! stop) comes from flags, and is printed with the forecast.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;
use tokio::time::Instant;

use super::apply::{ApplyArgs, parse_duration};
use super::printable::{clip, one_line};
use super::{CliError, Exit};
use crate::exec::command::humanize;
use crate::exec::events::{Event, NodeMilestone};
use crate::exec::journal::Journal;
use crate::exec::operator::Unattended;
use crate::exec::{Cancel, EventSink, Executor};
use crate::graph::Target;
use crate::sim::twin::{self, Twin, TwinTimings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForecastFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Args)]
// apply's flags that a rehearsal refuses (see `run`) stay out of its help.
#[command(
    mut_arg("resume", |a| a.hide(true)),
    mut_arg("resume_or_start", |a| a.hide(true)),
    mut_arg("journal", |a| a.hide(true)),
    mut_arg("break_lock", |a| a.hide(true)),
    mut_arg("dry_run", |a| a.hide(true)),
    mut_arg("plan", |a| a.hide(true)),
    mut_arg("save_html", |a| a.hide(true)),
    mut_arg("events", |a| a.hide(true)),
    after_help = "Exit codes: 0 the rehearsal finished within the window with no budget broken, 1 error, 2 usage, 3 the run would not start (blockers), stall, stop or miss the window.\n\nExamples:\n  k8s-upgrade rehearse --to 1.33 --window-end 2026-12-05T04:00:00Z\n  k8s-upgrade rehearse --simulate blocked --to 1.32\n  k8s-upgrade rehearse --inventory inv.yaml --to 1.32 --node-restart 3m -o json"
)]
pub struct RehearseArgs {
    #[command(flatten)]
    pub apply: ApplyArgs,

    /// Rehearse on the twin of an inventory saved with `k8s-upgrade inventory -o yaml`
    /// instead of reading a cluster.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kubeconfig", "context", "simulate"])]
    pub inventory: Option<PathBuf>,

    /// How long one node's upgrade takes, from the upgrade action to Ready at the new version
    /// (default: the median of the node restarts in the cluster's Node events, from NotReady
    /// to Ready, else 90s; events live an hour, so measure one node and give it here).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub node_restart: Option<Duration>,

    /// How long a pod takes from being placed to Ready (default: the median of the cluster's
    /// running pods, from their start time to their Ready condition).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub pod_start: Option<Duration>,

    /// How long a pod takes to stop once evicted (at most its grace period).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub pod_stop: Duration,

    /// Output format of the forecast.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: ForecastFormat,

    /// Also write the forecast to FILE (YAML; JSON when FILE ends in .json).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
}

/// What the rehearsal predicts.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Forecast {
    pub api_version: String,
    pub kind: String,
    /// The cluster the twin was made from.
    pub cluster: String,
    pub from: String,
    pub to: String,
    pub twin: TwinSummary,
    /// Blockers no step resolves: `apply` would refuse to start without --ignore-blockers. The
    /// rehearsal goes on past them to show where they bite.
    pub blockers: Vec<String>,
    /// Whether the run would finish every step.
    pub finished: bool,
    /// How it ends: `finished`, or the executor's reason for stopping.
    pub outcome: String,
    /// Predicted wall time of the run, in seconds.
    pub predicted_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowVerdict>,
    pub steps: Vec<StepForecast>,
    /// Node upgrades: how many, and their median and longest predicted time.
    pub nodes: NodeSummary,
    /// Evictions refused while draining: the drain of `node` waited on `pod`.
    pub stalls: Vec<Stall>,
    /// Pods no node could take during the roll.
    pub unplaceable: Vec<Unplaceable>,
    /// Workloads that lost replicas at some point, most first.
    pub replicas_lost: Vec<ReplicasLost>,
    pub pdb_violations: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pdb_violation_details: Vec<serde_json::Value>,
    /// Wall time the rehearsal itself took, in seconds.
    pub rehearsal_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TwinSummary {
    pub nodes: usize,
    pub pods: usize,
    pub workloads: usize,
    pub budgets: usize,
    pub node_restart_seconds: f64,
    pub node_restart_source: String,
    pub pod_start_seconds: f64,
    pub pod_start_source: String,
    pub pod_stop_seconds: f64,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowVerdict {
    pub end: String,
    pub predicted_end: String,
    pub fits: bool,
    /// Seconds to spare (negative: past the end).
    pub margin_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepForecast {
    pub step: usize,
    pub kind: String,
    pub description: String,
    /// Predicted seconds; `None` when the step did not run.
    pub seconds: Option<f64>,
    pub outcome: String,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    pub upgraded: usize,
    pub median_seconds: f64,
    pub longest_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longest_node: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stall {
    pub node: String,
    pub pod: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    pub why: String,
    /// Predicted seconds the drain waited on this pod.
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unplaceable {
    /// `Kind namespace/name`.
    pub workload: String,
    pub pods: usize,
    /// Longest predicted wait of one of them, in seconds.
    pub longest_seconds: f64,
    /// Nodes being upgraded that ran this workload's pods when they waited: what would need
    /// to be free (back and uncordoned) for them to be placed.
    pub waits_for: Vec<String>,
    /// Whether some never found a node before the run ended.
    pub still_pending: bool,
    /// The scheduler's reason, in its words.
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicasLost {
    /// `Kind namespace/name`.
    pub workload: String,
    pub desired: i64,
    pub lowest_ready: i64,
    pub lost: i64,
}

pub fn run(args: RehearseArgs) -> Result<Exit, CliError> {
    let a = &args.apply;
    for (set, flag) in [
        (a.resume, "--resume"),
        (a.resume_or_start, "--resume-or-start"),
        (a.journal.is_some(), "--journal"),
        (a.break_lock, "--break-lock"),
        (a.dry_run, "--dry-run"),
        (a.plan.is_some(), "--plan"),
        (a.save_html.is_some(), "--save-html"),
        (a.events.is_some(), "--events"),
    ] {
        if set {
            return Err(CliError::usage(format!(
                "{flag} is for apply; rehearse reads the cluster, runs the upgrade on its twin and changes nothing"
            )));
        }
    }
    if a.to.is_none() {
        return Err(CliError::usage("rehearse needs --to VERSION (or latest)"));
    }
    let catalog = a.catalog.load()?;
    let today = a.catalog.today()?;
    let source = super::source::SourceArgs {
        kube: a.kube.clone(),
        simulate: a.simulate.clone(),
        inventory: args.inventory.clone(),
        manifests: vec![],
        max_manifest_bytes: 64 * 1024 * 1024,
        dry_run_evictions: false,
        quiet: false,
        node_events: true,
    };
    let cluster = match (&args.inventory, &a.simulate) {
        (Some(p), _) => format!("inventory {}", p.display()),
        (None, Some(s)) => format!("simulated cluster '{s}'"),
        (None, None) => match &a.kube.context {
            Some(c) => format!("context {c}"),
            None => "the current kubeconfig context".to_string(),
        },
    };
    let inv = source.collect(&catalog, true)?;
    let timings = TwinTimings {
        node_restart_seconds: args.node_restart.map(|d| d.as_secs_f64()),
        pod_start_seconds: args.pod_start.map(|d| d.as_secs_f64()),
        pod_stop_seconds: args.pod_stop.as_secs_f64(),
    };
    let distro = a
        .distro
        .clone()
        .or_else(|| super::source::infer_distro(&inv).map(str::to_string))
        .unwrap_or_else(|| "generic".into());
    let twin = twin::from_inventory(&inv, &distro, timings)
        .map_err(|e| CliError::error(format!("cannot build the twin: {e}")))?;
    let options = super::apply::executor_options(a, &catalog, None, true)?;
    let window_end = options.window_end;
    crate::clock::use_virtual_time();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| CliError::error(format!("cannot start the async runtime: {e}")))?;
    let started = std::time::Instant::now();
    super::logging::say(&format!(
        "rehearsing on the twin of {cluster} ({} nodes, {} pods) in virtual time",
        inv.cluster.as_ref().map_or(0, |c| c.nodes.len()),
        inv.cluster.as_ref().map_or(0, |c| c.pods.len())
    ));
    let mut forecast = runtime.block_on(rehearse(&args, &catalog, today, &inv, &twin, options, cluster))?;
    forecast.rehearsal_seconds = started.elapsed().as_secs_f64();
    if let Some(end) = window_end {
        let start = std::time::SystemTime::now();
        let predicted_end = start + Duration::from_secs_f64(forecast.predicted_seconds);
        let margin = match end.duration_since(predicted_end) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        let stamp = |t: std::time::SystemTime| {
            jiff::Timestamp::try_from(t)
                .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
                .unwrap_or_default()
        };
        forecast.window = Some(WindowVerdict {
            end: stamp(end),
            predicted_end: stamp(predicted_end),
            fits: margin >= 0.0 && forecast.finished,
            margin_seconds: margin,
        });
    }
    if let Some(path) = &args.save {
        let text = if path.extension().is_some_and(|e| e == "json") {
            super::render::json(&forecast)?
        } else {
            super::render::yaml(&forecast)?
        };
        super::plan::write_atomically(path, &text)
            .map_err(|e| CliError::error(format!("cannot write the forecast to {}: {e}", path.display())))?;
    }
    let text = match args.output {
        ForecastFormat::Table => table(&forecast),
        ForecastFormat::Json => super::render::json(&forecast)?,
        ForecastFormat::Yaml => super::render::yaml(&forecast)?,
    };
    super::print_stdout(&text)?;
    let clean = forecast.blockers.is_empty()
        && forecast.finished
        && forecast.pdb_violations == 0
        && forecast.window.as_ref().is_none_or(|w| w.fits);
    Ok(if clean { Exit::Success } else { Exit::Blockers })
}

/// Events with the virtual moment they happened, seconds from the start.
type Timeline = Arc<Mutex<Vec<(f64, Event)>>>;

async fn rehearse(
    args: &RehearseArgs,
    catalog: &crate::catalog::Catalog,
    today: crate::catalog::Date,
    inv: &crate::inventory::Inventory,
    twin: &Twin,
    options: crate::exec::Options,
    cluster: String,
) -> Result<Forecast, CliError> {
    let a = &args.apply;
    let c = inv.cluster.as_ref().ok_or_else(|| CliError::error("the inventory holds no cluster to rehearse"))?;
    let to_text = a.to.as_deref().unwrap_or("latest");
    let to = to_text.parse::<Target>().map_err(|e| CliError::usage(format!("--to: {e} (or `latest`)")))?;
    // The plan is apply's plan of the cluster itself (its blockers, steps and nodes; the twin
    // keeps the node and workload names), carried out on the twin.
    let plan = super::apply::plan_as_apply(a, inv, catalog, today, to, a.distro.clone(), vec![])?;
    let sim = crate::sim::InMemory::start(twin.scenario.clone(), Arc::new(catalog.clone()), 1.0)
        .map_err(|e| CliError::error(format!("cannot build the twin: {e}")))?;
    let client = sim.client.clone();
    let blockers: Vec<String> = plan
        .unresolved_blockers()
        .iter()
        .map(|f| one_line(&format!("{} {}: {}", f.code, f.subject, f.message)))
        .collect();
    let run_id = format!("rehearsal-{:x}", fastrand::u64(..));
    // The twin's journal lives in memory and goes with the twin: nothing to resume.
    let mut journal = Journal::new(PathBuf::from("rehearsal"), &run_id, "twin", &plan);
    for order in &a.acknowledge {
        if journal.steps.iter().any(|s| s.step.order == *order) {
            journal.acknowledged.insert(*order);
        }
    }
    let cache = crate::exec::cache::Cache::start(
        &client,
        Duration::from_secs(120),
        options.drain.volume_detach_timeout.is_some(),
    )
    .await
    .map_err(|e| CliError::error(format!("the twin's watches did not start: {e}")))?;
    let t0 = Instant::now();
    let t0_unix = crate::clock::system_now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let timeline: Timeline = Arc::new(Mutex::new(Vec::new()));
    let events = {
        let timeline = timeline.clone();
        let started = std::time::Instant::now();
        EventSink::new(move |e| {
            let at = t0.elapsed().as_secs_f64();
            // Where the rehearsal is, in the twin's time and ours: a large cluster takes a while.
            let progress = match &e {
                Event::StepStart { step, total, description, .. } => {
                    Some(format!("step {step}/{total}: {description}"))
                }
                Event::BatchStart { label, nodes } => Some(format!("{label}: {} node(s)", nodes.len())),
                _ => None,
            };
            if let Some(what) = progress {
                super::logging::say(&format!(
                    "[twin {} | {:.1}s] {}",
                    secs(at),
                    started.elapsed().as_secs_f64(),
                    one_line(&what)
                ));
            }
            timeline.lock().unwrap_or_else(|p| p.into_inner()).push((at, e));
        })
    };
    let steps: Vec<(usize, String, String)> = journal
        .steps
        .iter()
        .map(|s| (s.step.order, s.step.kind.as_str().to_string(), s.step.description.clone()))
        .collect();
    let unattended = Unattended;
    let mut options = options;
    // As apply: providers choose their own patches.
    options.any_patch = matches!(plan.distro.as_str(), "eks" | "gke" | "aks");
    let executor =
        Executor::new(client.clone(), cache, journal, options, &unattended, events, Cancel::new()).in_memory();
    let result = executor.run().await;
    let predicted = t0.elapsed().as_secs_f64();
    if sim.controllers_stopped() {
        return Err(CliError::error("the twin's controllers stopped (a simulator fault); the rehearsal is void"));
    }
    let (finished, outcome) = match &result {
        Ok(o) if o.quarantined.is_empty() => (true, "finished".to_string()),
        Ok(o) => (false, format!("finished, but skipped and quarantined {}", o.quarantined.join(", "))),
        Err(e) => (false, one_line(&e.to_string())),
    };
    let stats = sim.sim.stats.snapshot();
    let pending_before = stats["unschedulable"]
        .as_array()
        .map_or(0, |rs| rs.iter().filter(|r| r["since"].as_f64().is_some_and(|s| s < t0_unix)).count());
    let events = timeline.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let pods = sim.sim.store.count(&crate::sim::StorageKey::core("pods"));
    drop(sim);
    Ok(Forecast {
        api_version: "k8s-upgrade.dev/v1".into(),
        kind: "Rehearsal".into(),
        cluster,
        from: plan.from.to_string(),
        to: plan.to.to_string(),
        twin: TwinSummary {
            nodes: twin.scenario.node_pools.iter().map(|p| p.count as usize).sum(),
            pods,
            workloads: twin.scenario.workloads.len(),
            budgets: c.pdbs.len(),
            node_restart_seconds: twin.node_restart.0,
            node_restart_source: twin.node_restart.1.clone(),
            pod_start_seconds: twin.pod_start.0,
            pod_start_source: twin.pod_start.1.clone(),
            pod_stop_seconds: args.pod_stop.as_secs_f64(),
            notes: {
                let mut notes = twin.notes.clone();
                if pending_before > 0 {
                    notes.push(format!(
                        "{pending_before} pod(s) found no node in the twin before the run began (as pending pods of the cluster do, or because the twin could not place what the cluster runs); they are not counted below"
                    ));
                }
                notes
            },
        },
        blockers,
        finished,
        outcome,
        predicted_seconds: predicted,
        window: None,
        steps: step_forecasts(&steps, &events),
        nodes: node_summary(&events),
        stalls: stalls(&events),
        unplaceable: unplaceable(&stats, &events, &twin.placements, t0_unix, predicted),
        replicas_lost: replicas_lost(&stats),
        pdb_violations: stats["pdbViolations"].as_u64().unwrap_or(0) as usize,
        pdb_violation_details: stats["pdbViolationDetails"].as_array().cloned().unwrap_or_default(),
        rehearsal_seconds: 0.0,
    })
}

fn step_forecasts(steps: &[(usize, String, String)], events: &[(f64, Event)]) -> Vec<StepForecast> {
    steps
        .iter()
        .map(|(order, kind, description)| {
            let mut seconds = None;
            let mut outcome = "not reached".to_string();
            for (_, e) in events {
                match e {
                    Event::StepDone { step, seconds: s, skipped } if step == order => {
                        seconds = Some(*s);
                        outcome = skipped.as_ref().map_or("done".into(), |why| format!("skipped: {}", one_line(why)));
                    }
                    Event::StepStopped { step, message } if step == order => {
                        outcome = format!("stopped: {}", one_line(message))
                    }
                    _ => {}
                }
            }
            StepForecast { step: *order, kind: kind.clone(), description: one_line(description), seconds, outcome }
        })
        .collect()
}

fn node_summary(events: &[(f64, Event)]) -> NodeSummary {
    let mut done: Vec<(f64, &str)> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Node { node, phase: NodeMilestone::Done, seconds: Some(s), .. } => Some((*s, node.as_str())),
            _ => None,
        })
        .collect();
    if done.is_empty() {
        return NodeSummary::default();
    }
    done.sort_by(|a, b| a.0.total_cmp(&b.0));
    let longest = done[done.len() - 1];
    NodeSummary {
        upgraded: done.len(),
        median_seconds: done[done.len() / 2].0,
        longest_seconds: longest.0,
        longest_node: Some(longest.1.to_string()),
    }
}

/// Each refused eviction, from the first refusal to the node's next milestone (or the end).
fn stalls(events: &[(f64, Event)]) -> Vec<Stall> {
    let end = events.last().map_or(0.0, |(t, _)| *t);
    let mut open: BTreeMap<(String, String), (f64, Option<String>, String)> = BTreeMap::new();
    let mut out = Vec::new();
    let close = |open: &mut BTreeMap<(String, String), (f64, Option<String>, String)>,
                 node: &str,
                 at: f64,
                 out: &mut Vec<Stall>| {
        let keys: Vec<(String, String)> = open.keys().filter(|(n, _)| n == node).cloned().collect();
        for k in keys {
            if let Some((since, budget, why)) = open.remove(&k) {
                out.push(Stall { node: k.0, pod: k.1, budget, why, seconds: at - since });
            }
        }
    };
    for (at, e) in events {
        match e {
            Event::EvictionRefused { node, pod, budget, why } => {
                let entry = open.entry((node.clone(), pod.clone())).or_insert((*at, budget.clone(), why.clone()));
                entry.1 = budget.clone();
                entry.2 = one_line(why);
            }
            // A refused pod is retried quietly (a refusal is sent when its reason changes), so
            // its wait ends, at the latest, with the node's next milestone.
            Event::Node { node, .. } => close(&mut open, node, *at, &mut out),
            _ => {}
        }
    }
    for ((node, pod), (since, budget, why)) in open {
        out.push(Stall { node, pod, budget, why, seconds: end - since });
    }
    out.sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then_with(|| a.node.cmp(&b.node)));
    out
}

/// Nodes of the run that were cordoned and not yet done at `at`.
fn nodes_out_at(events: &[(f64, Event)], at: f64) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (t, e) in events {
        if *t > at {
            break;
        }
        if let Event::Node { node, phase, .. } = e {
            match phase {
                NodeMilestone::Cordoned => {
                    out.insert(node.clone());
                }
                NodeMilestone::Done => {
                    out.remove(node);
                }
                _ => {}
            }
        }
    }
    out
}

fn unplaceable(
    stats: &serde_json::Value,
    events: &[(f64, Event)],
    placements: &BTreeMap<String, BTreeSet<String>>,
    started: f64,
    end: f64,
) -> Vec<Unplaceable> {
    let Some(records) = stats["unschedulable"].as_array() else { return vec![] };
    let mut by: BTreeMap<String, Unplaceable> = BTreeMap::new();
    // In the order they began to wait, so the nodes waited for come in the order of the roll.
    let mut records: Vec<&serde_json::Value> = records.iter().collect();
    records.sort_by(|a, b| a["since"].as_f64().unwrap_or(0.0).total_cmp(&b["since"].as_f64().unwrap_or(0.0)));
    for r in records {
        let workload = r["workload"].as_str().unwrap_or_default().to_string();
        let since = r["since"].as_f64().unwrap_or(started) - started;
        // Pending before the run began: not the roll's doing (see `pending_before`).
        if since < 0.0 {
            continue;
        }
        let until = r["until"].as_f64().map(|u| u - started);
        let seconds = until.unwrap_or(end) - since;
        let out = nodes_out_at(events, since.max(0.0));
        let ran_on = placements.get(&workload);
        let mut waits: Vec<String> = out.iter().filter(|n| ran_on.is_some_and(|p| p.contains(*n))).cloned().collect();
        if waits.is_empty() {
            waits = out.into_iter().collect();
        }
        let e = by.entry(workload.clone()).or_insert_with(|| Unplaceable {
            workload: workload.clone(),
            pods: 0,
            longest_seconds: 0.0,
            waits_for: vec![],
            still_pending: false,
            message: one_line(r["message"].as_str().unwrap_or_default()),
        });
        e.pods += 1;
        e.longest_seconds = e.longest_seconds.max(seconds);
        e.still_pending |= until.is_none();
        for w in waits {
            if !e.waits_for.contains(&w) {
                e.waits_for.push(w);
            }
        }
    }
    let mut v: Vec<Unplaceable> = by.into_values().collect();
    v.sort_by(|a, b| b.longest_seconds.total_cmp(&a.longest_seconds).then_with(|| a.workload.cmp(&b.workload)));
    v
}

fn replicas_lost(stats: &serde_json::Value) -> Vec<ReplicasLost> {
    let Some(m) = stats["minAvailable"].as_object() else { return vec![] };
    let mut v: Vec<ReplicasLost> = m
        .iter()
        .filter_map(|(k, a)| {
            let desired = a["desired"].as_i64()?;
            let lowest = a["minReady"].as_i64()?;
            // Keys are `namespace/Kind/name`.
            let mut parts = k.splitn(3, '/');
            let (ns, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            (lowest < desired).then(|| ReplicasLost {
                workload: format!("{kind} {ns}/{name}"),
                desired,
                lowest_ready: lowest,
                lost: desired - lowest,
            })
        })
        .collect();
    v.sort_by(|a, b| b.lost.cmp(&a.lost).then_with(|| a.workload.cmp(&b.workload)));
    v
}

fn secs(s: f64) -> String {
    humanize(Duration::from_secs_f64(s.max(0.0)))
}

fn table(f: &Forecast) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let p = |s: &str| one_line(s);
    // The plan's versions are the control plane's: when it is there already, what moves is the
    // kubelets (or nothing).
    let what = match (f.from == f.to, f.steps.is_empty()) {
        (false, _) => format!("{} → {}", f.from, f.to),
        (true, false) => format!("the roll to {} (the control plane runs it already)", f.to),
        (true, true) => format!("{} (nothing to upgrade: the cluster runs it already)", f.to),
    };
    let _ = writeln!(
        o,
        "Rehearsal of {what} on the twin of {} ({} nodes, {} pods, {} workloads, {} budgets), in {:.1}s of wall time",
        p(&f.cluster),
        f.twin.nodes,
        f.twin.pods,
        f.twin.workloads,
        f.twin.budgets,
        f.rehearsal_seconds
    );
    let _ = writeln!(
        o,
        "Assumed: a node's upgrade takes {} ({}), pods start in {} ({}), pods stop in {} (--pod-stop)",
        secs(f.twin.node_restart_seconds),
        f.twin.node_restart_source,
        secs(f.twin.pod_start_seconds),
        f.twin.pod_start_source,
        secs(f.twin.pod_stop_seconds)
    );
    for n in &f.twin.notes {
        let _ = writeln!(o, "Twin: {}", p(n));
    }
    o.push('\n');
    if !f.blockers.is_empty() {
        let _ = writeln!(
            o,
            "apply would not start: {} blocker(s) no step resolves (rehearsed past them with --ignore-blockers to show where they bite):",
            f.blockers.len()
        );
        for b in &f.blockers {
            let _ = writeln!(o, "  {}", p(b));
        }
        o.push('\n');
    }
    let _ = writeln!(
        o,
        "Predicted: {} in total, {}; {} PDB violation(s)",
        secs(f.predicted_seconds),
        if f.finished { "every step finishes".to_string() } else { format!("the run stops: {}", p(&f.outcome)) },
        f.pdb_violations
    );
    if let Some(w) = &f.window {
        let _ = writeln!(
            o,
            "Window: ends {}, predicted end {}: {}",
            w.end,
            w.predicted_end,
            if w.fits {
                format!("fits with {} to spare", secs(w.margin_seconds))
            } else if w.margin_seconds < 0.0 {
                format!("misses it by {}", secs(-w.margin_seconds))
            } else {
                "the run would not finish".to_string()
            }
        );
    }
    if f.nodes.upgraded > 0 {
        let _ = writeln!(
            o,
            "Nodes: {} upgraded, median {}, longest {} ({})",
            f.nodes.upgraded,
            secs(f.nodes.median_seconds),
            secs(f.nodes.longest_seconds),
            p(f.nodes.longest_node.as_deref().unwrap_or_default())
        );
    }
    o.push('\n');
    let _ = writeln!(o, "{:<5} {:<14} {:>10}  {:<32} DESCRIPTION", "STEP", "KIND", "PREDICTED", "OUTCOME");
    for s in &f.steps {
        let _ = writeln!(
            o,
            "{:<5} {:<14} {:>10}  {:<32} {}",
            s.step,
            s.kind,
            s.seconds.map_or("-".to_string(), secs),
            clip(&s.outcome, 32),
            p(&s.description)
        );
    }
    o.push('\n');
    if f.stalls.is_empty() {
        let _ = writeln!(o, "Drains that stall: none");
    } else {
        let _ = writeln!(o, "Drains that stall ({}):", f.stalls.len());
        for s in f.stalls.iter().take(20) {
            let _ = writeln!(
                o,
                "  {} waits {} to evict {}{}: {}",
                p(&s.node),
                secs(s.seconds),
                p(&s.pod),
                s.budget.as_ref().map_or(String::new(), |b| format!(" (PodDisruptionBudget {})", p(b))),
                p(&s.why)
            );
        }
        if f.stalls.len() > 20 {
            let _ = writeln!(o, "  … and {} more (-o json lists them all)", f.stalls.len() - 20);
        }
    }
    if f.unplaceable.is_empty() {
        let _ = writeln!(o, "Pods that find no node during the roll: none");
    } else {
        let _ = writeln!(
            o,
            "Pods that find no node during the roll ({} workload{}):",
            f.unplaceable.len(),
            if f.unplaceable.len() == 1 { "" } else { "s" }
        );
        for u in f.unplaceable.iter().take(20) {
            let _ = writeln!(
                o,
                "  {}: {} pod(s) wait up to {}{}; they wait for {}. Scheduler: {}",
                p(&u.workload),
                u.pods,
                secs(u.longest_seconds),
                if u.still_pending { ", some still pending at the end" } else { "" },
                if u.waits_for.is_empty() {
                    "room no node being upgraded frees".to_string()
                } else {
                    p(&u.waits_for.join(", "))
                },
                p(&u.message)
            );
        }
    }
    if f.replicas_lost.is_empty() {
        let _ = writeln!(o, "Replicas lost at once: none");
    } else {
        let _ = writeln!(o, "Most replicas lost at once:");
        for r in f.replicas_lost.iter().take(10) {
            let _ = writeln!(o, "  {}: {} of {} (lowest ready {})", p(&r.workload), r.lost, r.desired, r.lowest_ready);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(at: f64, node: &str, phase: NodeMilestone) -> (f64, Event) {
        (
            at,
            Event::Node { step: 1, node: node.into(), phase, target: None, seconds: None, why: None, uncordoned: None },
        )
    }

    fn refused(at: f64, node: &str, pod: &str) -> (f64, Event) {
        (
            at,
            Event::EvictionRefused {
                node: node.into(),
                pod: pod.into(),
                budget: Some("shop/web".into()),
                why: "PodDisruptionBudget shop/web: currentHealthy 2/desiredHealthy 2".into(),
            },
        )
    }

    #[test]
    fn a_stall_lasts_from_the_first_refusal_to_the_node_s_next_milestone() {
        let events = vec![
            node(0.0, "a", NodeMilestone::Cordoned),
            refused(1.0, "a", "shop/web-1"),
            refused(5.0, "a", "shop/web-1"),
            node(31.0, "a", NodeMilestone::Drained),
            node(32.0, "b", NodeMilestone::Cordoned),
            refused(40.0, "b", "shop/web-2"),
            (50.0, Event::log("the run stops")),
        ];
        let s = stalls(&events);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].node.as_str(), s[0].pod.as_str(), s[0].seconds), ("a", "shop/web-1", 30.0));
        assert_eq!(s[0].budget.as_deref(), Some("shop/web"));
        // Still waiting when the run ended.
        assert_eq!((s[1].node.as_str(), s[1].seconds), ("b", 10.0));
    }

    #[test]
    fn unplaceable_pods_wait_for_the_nodes_out_that_ran_their_workload() {
        let events = vec![
            node(10.0, "w1", NodeMilestone::Cordoned),
            node(10.0, "w2", NodeMilestone::Cordoned),
            node(40.0, "w1", NodeMilestone::Done),
            node(45.0, "w2", NodeMilestone::Done),
        ];
        let placements: BTreeMap<String, BTreeSet<String>> =
            [("Deployment shop/big".to_string(), ["w1".to_string(), "w3".to_string()].into())].into();
        let started = 1000.0;
        let stats = json!({"unschedulable": [
            {"pod": "shop/big-1", "workload": "Deployment shop/big", "message": "0/3 nodes are available: 2 Insufficient memory.", "since": 1012.0, "until": 1041.0},
            {"pod": "shop/big-2", "workload": "Deployment shop/big", "message": "0/3 nodes are available: 2 Insufficient memory.", "since": 1012.0, "until": null},
            {"pod": "shop/old", "workload": "Pod shop/old", "message": "x", "since": 990.0, "until": null},
        ]});
        let u = unplaceable(&stats, &events, &placements, started, 60.0);
        assert_eq!(u.len(), 1, "{u:?}");
        assert_eq!(u[0].workload, "Deployment shop/big");
        assert_eq!(u[0].pods, 2);
        // Of the two nodes out, only w1 ran its pods.
        assert_eq!(u[0].waits_for, ["w1"]);
        assert!(u[0].still_pending);
        assert_eq!(u[0].longest_seconds, 48.0);
    }

    #[test]
    fn replicas_lost_are_the_dips_below_desired_most_first() {
        let stats = json!({"minAvailable": {
            "shop/Deployment/web": {"desired": 10, "minReady": 7},
            "data/StatefulSet/db": {"desired": 3, "minReady": 2},
            "shop/Deployment/calm": {"desired": 2, "minReady": 2},
        }});
        let r = replicas_lost(&stats);
        let got: Vec<(&str, i64)> = r.iter().map(|r| (r.workload.as_str(), r.lost)).collect();
        assert_eq!(got, [("Deployment shop/web", 3), ("StatefulSet data/db", 1)]);
    }
}
