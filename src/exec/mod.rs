//! The executor behind `k8s-upgrade apply`: runs a plan's steps in order against a live cluster.
//!
//! It takes the journal of a run (made from a typed [`crate::plan::Plan`], or read back for
//! `--resume`), a client, an [`Operator`] to ask, an [`EventSink`] to tell, and a [`Cancel`]
//! that says when to stop, and returns an [`Outcome`] or an [`ExecError`]. It never prints,
//! never reads the terminal and never picks an exit code; `cli` does those.
//!
//! By phase: [`control_plane`] upgrades each control-plane node (first one, then the others) or
//! waits for a managed control plane; [`rollout`] picks batches for a node roll; [`node`] is the
//! per-node state machine (cordon, drain through the Eviction API, upgrade, wait Ready at the
//! target, uncordon); [`managed`] drives the providers' CLIs for managed control planes, node
//! pools (replaced pool by pool) and EKS add-ons; [`steps`] runs add-on and operator steps;
//! [`window`] decides whether a node can still finish before the maintenance window closes;
//! [`gates`] holds the cluster to its baseline health between them. Every phase is written to the journal before the next action,
//! so a run stopped anywhere (a stop request, the window, a crash, SIGKILL) resumes at the exact
//! point.

pub mod cache;
pub mod cancel;
pub mod command;
mod control_plane;
pub mod drain;
pub mod error;
pub mod events;
pub mod gates;
pub mod journal;
pub mod lock;
pub mod managed;
mod node;
pub mod node_job;
pub mod operator;
mod removals;
pub mod rollout;
mod steps;
pub mod store;
pub mod upgrader;
pub mod volumes;
pub mod window;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams};

pub use cancel::{Cancel, CancelLevel};
pub use error::ExecError;
pub use events::{Event, EventSink, NodeMilestone};
pub use operator::{Answer, Operator, Question};

use crate::plan::StepAction;
use journal::{Journal, StepStatus};
use upgrader::Upgrader;

/// How the run behaves; everything the operator sets.
#[derive(Debug, Clone)]
pub struct Options {
    pub upgrader: Upgrader,
    pub max_unavailable: rollout::MaxUnavailable,
    /// Nodes of the whole cluster upgraded at once, across pools (`None`: only the pools' limits).
    pub max_parallel: Option<usize>,
    pub drain: drain::DrainPolicy,
    pub gates: gates::GateOptions,
    /// Soak after each batch (watched by a gate at its end).
    pub pause: Duration,
    pub dry_run: bool,
    pub window_end: Option<SystemTime>,
    /// What a node is assumed to take before any has been measured (window estimates).
    pub node_estimate: Duration,
    /// How long a node may take to come back Ready at its target.
    pub node_timeout: Duration,
    /// How often node state is read while waiting.
    pub poll: Duration,
    /// Runs per Helm-release step (argv template; `{node}` is the release).
    pub release_command: Option<Vec<String>>,
    /// Where command output goes in full (one file per run); none: only the kept lines.
    pub log_file: Option<PathBuf>,
    /// A node or managed control plane counts as upgraded at any patch of the target minor that
    /// moved past where it started (providers choose their own patches); `false`: the target's
    /// patch or newer.
    pub any_patch: bool,
    /// The catalog the plan was made with (the removed-API check before each hop uses it).
    pub catalog: std::sync::Arc<crate::catalog::Catalog>,
    /// Cross removal hops without looking again (the operator owns every migration).
    pub acknowledge_all: bool,
    /// Whether the cluster lock is still ours; checked before every step and node phase.
    pub lock: lock::LockWatch,
    /// Taint nodes waiting to roll `PreferNoSchedule`, so evicted pods avoid them.
    pub taint_pending: bool,
    /// The cluster is the built-in simulator: its stand-in operator performs the steps an
    /// operator does on a real cluster (API migrations, add-ons no upgrader moves), whatever
    /// upgrades the nodes.
    pub sim_operator: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Nodes finished by this process, with their seconds.
    pub nodes_done: Vec<(String, f64)>,
    /// Nodes skipped and left cordoned and labelled (the whole run's).
    pub quarantined: Vec<String>,
    /// Operator steps this run could neither perform nor verify.
    pub left_to_operator: Vec<String>,
}

pub struct Executor<'a> {
    client: Client,
    cache: cache::Cache,
    journal: tokio::sync::Mutex<Journal>,
    options: Options,
    operator: &'a dyn Operator,
    events: EventSink,
    cancel: Cancel,
    baseline: tokio::sync::Mutex<gates::Baseline>,
    /// Seconds each node took, this run and the journal's (for the window estimate).
    durations: Mutex<Vec<f64>>,
    outcome: Mutex<Outcome>,
    saving: tokio::sync::Mutex<()>,
    /// Changes made to the journal so far, and how many of them the store holds: a save finds
    /// its change already written when a save that began after it wrote the whole journal.
    changes: AtomicU64,
    written: AtomicU64,
    /// Where each save goes (the journal's file unless [`Executor::with_store`] says otherwise).
    store: store::JournalStore,
    /// Whether saves reach the store (a rehearsal's journal is thrown away with its twin).
    persist: bool,
}

impl<'a> Executor<'a> {
    pub fn new(
        client: Client,
        cache: cache::Cache,
        journal: Journal,
        options: Options,
        operator: &'a dyn Operator,
        events: EventSink,
        cancel: Cancel,
    ) -> Self {
        let durations = journal.nodes.values().filter_map(|r| r.seconds).collect();
        let store = store::JournalStore::File(journal.path.clone());
        Executor {
            client,
            cache,
            journal: tokio::sync::Mutex::new(journal),
            options,
            operator,
            events,
            cancel,
            baseline: tokio::sync::Mutex::new(gates::Baseline::default()),
            durations: Mutex::new(durations),
            outcome: Mutex::new(Outcome::default()),
            saving: tokio::sync::Mutex::new(()),
            changes: AtomicU64::new(0),
            written: AtomicU64::new(0),
            store,
            persist: true,
        }
    }

    /// Keeps the journal in memory only: for a run whose cluster is thrown away after it (a
    /// rehearsal's twin), where there is no crash to recover from.
    pub fn in_memory(mut self) -> Self {
        self.persist = false;
        self
    }

    /// Keeps the journal in `store` (a cluster journal, say) instead of its file.
    pub fn with_store(mut self, store: store::JournalStore) -> Self {
        self.store = store;
        self
    }

    /// The journal as it stands.
    pub async fn journal(&self) -> Journal {
        self.journal.lock().await.clone()
    }

    /// What the run did so far (also after an error).
    pub fn outcome(&self) -> Outcome {
        self.outcome.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn emit(&self, event: Event) {
        self.events.emit(event);
    }

    fn say(&self, line: impl Into<String>) {
        self.emit(Event::log(line));
    }

    /// Changes the journal and returns once the change is in the store. Nodes rolling together
    /// change it at once: one write carries every change made before it began (a group commit),
    /// so a batch of many nodes costs a few writes of the whole journal, not one per change.
    async fn save<F: FnOnce(&mut Journal)>(&self, f: F) -> Result<(), ExecError> {
        let mine = {
            let mut j = self.journal.lock().await;
            f(&mut j);
            self.changes.fetch_add(1, Ordering::SeqCst) + 1
        };
        if self.options.dry_run || !self.persist {
            return Ok(());
        }
        // One write at a time: they share the journal's temp file and the ConfigMap's
        // resourceVersion, and a later write must never be overtaken by an earlier one.
        let _one = self.saving.lock().await;
        if self.written.load(Ordering::SeqCst) >= mine {
            return Ok(());
        }
        let (copy, upto) = {
            let j = self.journal.lock().await;
            (j.clone(), self.changes.load(Ordering::SeqCst))
        };
        let started = Instant::now();
        self.store.save(&copy).await?;
        self.written.store(upto, Ordering::SeqCst);
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "journal written");
        Ok(())
    }

    /// Runs every step not yet done.
    pub async fn run(&self) -> Result<Outcome, ExecError> {
        // A resumed run holds the cluster to the health it had before the run began, not to
        // whatever the interruption left behind.
        let kept = self.journal.lock().await.baseline.clone();
        let from_journal = kept.is_some();
        let baseline = match kept {
            Some(b) => b,
            None if self.cache.stale().is_empty() => gates::Baseline::from_cache(&self.cache),
            None => gates::observe(&self.client).await.map_err(ExecError::Failed)?.0,
        };
        self.emit(Event::Baseline {
            workloads: baseline.workloads.len(),
            budgets: baseline.budgets.len(),
            pending: baseline.pending,
            from_journal,
        });
        self.save(|j| j.baseline = Some(baseline.clone())).await?;
        *self.baseline.lock().await = baseline;
        self.note_requests_at_start().await?;
        let total = self.journal.lock().await.steps.len();
        loop {
            let (index, step) = {
                let j = self.journal.lock().await;
                match j.next_step() {
                    None => break,
                    Some(i) => (i, j.steps[i].step.clone()),
                }
            };
            if self.cancel.is_stop_requested() {
                return Err(ExecError::Interrupted("stopped on request before the next step".into()));
            }
            self.ensure_lock("the next step")?;
            self.emit(Event::StepStart {
                index,
                step: step.order,
                total,
                kind: step.kind,
                description: step.description.clone(),
            });
            self.save(|j| {
                let s = &mut j.steps[index];
                s.status = StepStatus::Running;
                s.started.get_or_insert_with(journal::Stamp::now);
            })
            .await?;
            let started = Instant::now();
            let outcome = match &step.action {
                StepAction::ControlPlane { from, to } => self.control_plane(&step, from, to).await,
                StepAction::Nodes { moves } => self.node_roll(&step, moves).await,
                StepAction::Addon { addon, workload, line } => self.addon(&step, addon, workload, line).await,
                StepAction::MigrateApi { .. }
                | StepAction::HelmRelease { .. }
                | StepAction::Prerequisite { .. }
                | StepAction::Manual => self.operator_step(&step).await,
            };
            match outcome {
                Ok(note) => {
                    let status = if note.is_some() { StepStatus::Skipped } else { StepStatus::Done };
                    self.save(|j| {
                        j.steps[index].status = status;
                        j.steps[index].note = note.clone();
                        j.steps[index].ended = Some(journal::Stamp::now());
                    })
                    .await?;
                    self.emit(Event::StepDone {
                        step: step.order,
                        seconds: started.elapsed().as_secs_f64(),
                        skipped: note,
                    });
                }
                Err(e) => {
                    let status = if e.resumable() { StepStatus::Pending } else { StepStatus::Failed };
                    let message = e.to_string();
                    self.save(|j| {
                        j.steps[index].status = status;
                        j.steps[index].note = Some(message.chars().take(2000).collect());
                        j.steps[index].ended = Some(journal::Stamp::now());
                    })
                    .await?;
                    self.emit(Event::StepStopped { step: step.order, message });
                    self.record_quarantined().await;
                    return Err(e);
                }
            }
        }
        self.save(|j| j.finished = true).await?;
        self.record_quarantined().await;
        Ok(self.outcome())
    }

    async fn record_quarantined(&self) {
        let quarantined: Vec<String> =
            self.journal.lock().await.quarantined().into_iter().map(str::to_string).collect();
        self.outcome.lock().unwrap_or_else(|e| e.into_inner()).quarantined = quarantined;
    }

    /// Every node, from the run's watch while it is healthy.
    async fn nodes(&self) -> Result<Vec<Node>, ExecError> {
        if !self.cache.is_stale(cache::Kind::Nodes) {
            return Ok(self.cache.nodes.state().iter().map(|n| Node::clone(n)).collect());
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let lp = ListParams::default();
        crate::kubeapi::retry::with_retries(|| api.list(&lp))
            .await
            .map(|l| l.items)
            .map_err(|e| ExecError::Failed(format!("cannot list nodes: {e}")))
    }

    /// Runs a health gate; `after` names what it follows.
    async fn gate(&self, after: &str) -> Result<(), ExecError> {
        let baseline = self.baseline.lock().await.clone();
        match gates::wait(&self.client, &self.cache, &baseline, &self.options.gates, &self.cancel).await {
            Ok(checks) => {
                self.emit(Event::Gate { after: after.to_string(), passed: true, checks, failures: vec![] });
                Ok(())
            }
            Err(failures) => {
                self.emit(Event::Gate {
                    after: after.to_string(),
                    passed: false,
                    checks: 0,
                    failures: failures.clone(),
                });
                Err(ExecError::Blocked(format!(
                    "health gate after {after} did not pass within {}: {}",
                    command::humanize(self.options.gates.timeout),
                    failures.join("; ")
                )))
            }
        }
    }

    /// Stops when the cluster lock is no longer ours: another run may be acting on the cluster.
    fn ensure_lock(&self, before: &str) -> Result<(), ExecError> {
        match self.options.lock.lost() {
            None => Ok(()),
            Some(why) => Err(ExecError::LockLost(format!(
                "the cluster lock ({}/{}) is no longer this run's: {why}; stopped before {before}. Find out who holds it (kubectl -n {} get lease {} -o yaml) before resuming",
                lock::LEASE_NAMESPACE,
                lock::LEASE_NAME,
                lock::LEASE_NAMESPACE,
                lock::LEASE_NAME
            ))),
        }
    }

    /// Refuses to start a node that cannot finish before the window closes.
    fn window_check(&self, node: &str) -> Result<(), ExecError> {
        let Some(end) = self.options.window_end else { return Ok(()) };
        let durations = self.durations.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match window::check(crate::clock::system_now(), end, &durations, self.options.node_estimate) {
            Ok(()) => Ok(()),
            Err(need) => Err(ExecError::WindowClosing(format!(
                "the maintenance window closes before {node} could finish (a node takes up to {}{}); stopped before starting it",
                command::humanize(need),
                if durations.is_empty() { ", the --node-estimate until one is measured" } else { "" }
            ))),
        }
    }
}
