//! `k8s-upgrade apply`: plan (or read a saved plan and check it against the cluster), take the
//! cluster lock, and run the executor with a journal, confirmations, Ctrl-C handling and a
//! final summary that says exactly how to continue.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, ValueEnum};

use super::args::CatalogArgs;
use super::prompt::{self, TerminalOperator};
use super::report::Reporter;
use super::{CliError, Exit, render};
use crate::exec::command::{quote, split_argv};
use crate::exec::drain::DrainPolicy;
use crate::exec::journal::{self, Journal, StepStatus};
use crate::exec::managed::Provider;
use crate::exec::operator::Unattended;
use crate::exec::store::{CLUSTER_ARG, JournalStore};
use crate::exec::upgrader::Upgrader;
use crate::exec::{Cancel, CancelLevel, EventSink, ExecError, Executor, Operator, Options, Outcome};
use crate::graph::{Facts, PathRequest, Target};
use crate::inventory::live;
use crate::plan::Plan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpgraderKind {
    /// Run --upgrade-command per node (argv template, no shell).
    Command,
    /// Tell the operator what to do on which node, and wait for the node to report the target.
    Manual,
    /// Set the simulator's upgrade annotation (the default with --simulate).
    Sim,
    /// Run kubeadm's upgrade procedure on each node through a privileged pod pinned to it
    /// (no SSH); see --node-job-image, --node-job-namespace and --node-script.
    Kubeadm,
    /// Amazon EKS through the aws CLI: the control plane, managed node groups (replaced), EKS add-ons.
    Eks,
    /// Google GKE through gcloud: the control plane and node pools (replaced).
    Gke,
    /// Azure AKS through az: the control plane and agent pools (replaced).
    Aks,
}

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Exit codes: 0 done, 1 error, 2 usage, 3 stopped at a blocker or gate, 4 maintenance window closing, 130 Ctrl-C.\n\nExamples:\n  k8s-upgrade apply --simulate --to 1.33 --yes\n  k8s-upgrade apply --plan plan.yaml --upgrader command --upgrade-command 'ssh-upgrade {node} {version}'\n  k8s-upgrade apply --resume"
)]
pub struct ApplyArgs {
    /// Version to reach (plans first and shows the plan).
    #[arg(long, value_name = "VERSION|latest", required_unless_present_any = ["plan", "resume"])]
    pub to: Option<String>,

    /// Run a plan saved with `plan --save` (refused when the cluster drifted from it).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["to", "resume"])]
    pub plan: Option<PathBuf>,

    /// Continue the run recorded in the journal.
    #[arg(long)]
    pub resume: bool,

    /// Continue the unfinished run in the journal if there is one (refused when it goes to
    /// another version than --to), else start a new run: a retried Job runs the same command.
    #[arg(long, requires = "to", conflicts_with_all = ["resume", "plan", "simulate"])]
    pub resume_or_start: bool,

    /// The cluster is on its provider's long-term-support plan (AKS LTS): minors may be skipped
    /// to a higher minor still in long-term support. The Kubernetes API does not say, so tell it.
    #[arg(long)]
    pub lts: bool,

    /// Distribution (default: from the cluster).
    #[arg(long, value_name = "DISTRO")]
    pub distro: Option<String>,

    #[command(flatten)]
    pub kube: super::args::KubeArgs,

    /// Run against the built-in simulator (scenario demo, blocked, pools, large or a file).
    #[arg(long, value_name = "SCENARIO", num_args = 0..=1, default_missing_value = "demo", conflicts_with_all = ["kubeconfig", "context", "resume"])]
    pub simulate: Option<String>,

    /// With --simulate: multiply every simulated delay by F.
    #[arg(long, value_name = "F", default_value_t = 0.02)]
    pub time_scale: f64,

    /// What upgrades a node (default: sim with --simulate, manual otherwise).
    #[arg(long, value_enum)]
    pub upgrader: Option<UpgraderKind>,

    /// Argv template for --upgrader command, split into words as a shell would (quotes group
    /// words) but run without one; {node} {role} {phase} {version} {from} {first} are replaced
    /// inside arguments. K8S_UPGRADE_NODE/ROLE/PHASE/VERSION/FROM/FIRST are set too.
    #[arg(long, value_name = "ARGV")]
    pub upgrade_command: Option<String>,

    #[command(flatten)]
    pub provider: super::provider::ProviderArgs,

    /// Kill an upgrade command, or stop a node job, after this long.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub upgrade_timeout: Duration,

    /// With --upgrader kubeadm: the node job's image; it needs only `nsenter` and `sh` (pin it
    /// by digest in production, or point it at your registry mirror).
    #[arg(long, value_name = "IMAGE", default_value = crate::exec::node_job::DEFAULT_IMAGE)]
    pub node_job_image: String,

    /// With --upgrader kubeadm: where node jobs run; its Pod Security level must be privileged.
    #[arg(long, value_name = "NAMESPACE", default_value = crate::exec::node_job::DEFAULT_NAMESPACE)]
    pub node_job_namespace: String,

    /// With --upgrader kubeadm: run this script on each node instead of the built-in one (it
    /// gets K8S_UPGRADE_VERSION, K8S_UPGRADE_ROLE, K8S_UPGRADE_FIRST and K8S_UPGRADE_NODE in its
    /// environment, runs as root in the host's namespaces, and its exit code is the result).
    #[arg(long, value_name = "FILE")]
    pub node_script: Option<PathBuf>,

    /// With --upgrader kubeadm: a node job whose container has not started after this long
    /// (image pull failing, kubelet down) stops the run with the kubelet's reason.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub node_job_start_timeout: Duration,

    /// Argv template run for each Helm-release step ({node} is the release); otherwise asked.
    #[arg(long, value_name = "ARGV")]
    pub release_command: Option<String>,

    /// Nodes of each pool upgraded at once after the canary: a count, or a percentage of the
    /// pool (25%). Batches never take more pods of a disruption budget than it allows.
    #[arg(long, value_name = "N|P%", default_value = "1")]
    pub max_unavailable: crate::exec::rollout::MaxUnavailable,

    /// At most this many nodes of the whole cluster upgraded at once, across pools (as kured's
    /// --concurrency); 1 rolls the cluster one node at a time. Default: only --max-unavailable.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_parallel: Option<u32>,

    /// Give up on a node's drain after this long.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Do not wait for pods that have been terminating for longer than this (kubectl's flag of the
    /// same name; a finalizer or a dead kubelet can hold a pod forever). Default: always wait.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub skip_wait_for_delete_timeout: Option<Duration>,

    /// Evict only the pods matching this label selector (as kubectl drain's flag); the others stay.
    #[arg(long, value_name = "SELECTOR")]
    pub pod_selector: Option<String>,

    /// Seconds each evicted pod gets to terminate (default: the pod's own
    /// terminationGracePeriodSeconds).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(i64).range(0..=86_400))]
    pub grace_period: Option<i64>,

    /// How long a disruption budget that an operator manages (Longhorn, KubeVirt, Rook: they
    /// relax their budgets when it is safe) may refuse an eviction before the drain gives up.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub budget_patience: Duration,

    /// After a drain, wait this long for the network volumes of the evicted pods to detach from
    /// the node before its upgrade (as Cluster API does); 0 does not wait.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub volume_detach_timeout: Duration,

    /// Wait this long for an upgraded node to come back Ready at its target.
    #[arg(long, value_name = "DURATION", default_value = "20m", value_parser = parse_duration)]
    pub node_timeout: Duration,

    /// What a node is assumed to take for --window-end until one has been measured.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub node_estimate: Duration,

    /// Delete pods that use emptyDir (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,

    /// Delete pods that no controller manages (they are gone for good).
    #[arg(long)]
    pub force: bool,

    /// Consecutive passes each health gate needs.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub gate_passes: u32,

    /// Give up on a health gate after this long.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub gate_timeout: Duration,

    /// Time between gate checks (default 2s; with --simulate it follows --time-scale).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub gate_interval: Option<Duration>,

    /// An extra gate: argv (split into words as a shell would, run without one) that must exit 0.
    #[arg(long, value_name = "ARGV")]
    pub gate_command: Option<String>,

    /// Stop a --gate-command run (with its process group) after this long.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub gate_command_timeout: Duration,

    /// Do not taint nodes waiting to roll PreferNoSchedule (by default they are, so pods evicted
    /// from one node avoid the next ones to drain; the taint leaves with the node's roll).
    #[arg(long)]
    pub no_taint_pending: bool,

    /// Soak after each batch.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub pause: Duration,

    /// Do not start a node that cannot finish before this time (RFC 3339, e.g. 2026-11-27T04:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub window_end: Option<String>,

    /// Walk the whole run with server dry-run evictions and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Answer yes to every confirmation (required without a terminal).
    #[arg(short, long)]
    pub yes: bool,

    /// Start even though the plan has blockers no step resolves.
    #[arg(long)]
    pub ignore_blockers: bool,

    /// The operator step STEP (its number in the plan) is dealt with: before the hop it protects,
    /// what it covers is not checked again. Repeatable; recorded in the journal.
    #[arg(long, value_name = "STEP")]
    pub acknowledge: Vec<usize>,

    /// Cross every hop that removes APIs without checking the cluster again (the operator owns
    /// every migration).
    #[arg(long)]
    pub acknowledge_all: bool,

    /// Take the cluster lock even from a live holder (asks first).
    #[arg(long)]
    pub break_lock: bool,

    /// Where the journal is kept: `cluster` for the ConfigMap kube-system/k8s-upgrade-journal
    /// (resumable from any machine; the default in a pod), or a file (`./cluster` for a file of
    /// that name). Default: a file under the user's state directory, named by cluster.
    #[arg(long, value_name = "FILE|cluster")]
    pub journal: Option<PathBuf>,

    /// Also write every event as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,

    /// At the end of the run (done, stopped, window or Ctrl-C), write one self-contained HTML
    /// page to FILE: the plan's picture, blockers and findings, each step's status and time, and
    /// a timeline of every node's phases. A failure to write it is reported but does not change
    /// the run's exit code.
    #[arg(long, value_name = "FILE")]
    pub save_html: Option<PathBuf>,

    #[command(flatten)]
    pub catalog: CatalogArgs,
}

/// A Go-style duration as kubectl takes it (`90s`, `5m`, `1h30m`, `500ms`), or plain seconds;
/// 0 to 7 days.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        Duration::from_secs(t.parse::<u64>().map_err(|_| format!("'{s}' is out of range (0 to 7 days)"))?)
    } else {
        let d: kube::core::Duration =
            t.parse().map_err(|e| format!("'{s}' is not a duration ({e}; use e.g. 90s, 5m, 1h30m)"))?;
        if d.is_negative() {
            return Err(format!("'{s}' is negative"));
        }
        Duration::from(d)
    };
    if d > Duration::from_secs(7 * 86400) {
        return Err(format!("'{s}' is out of range (0 to 7 days)"));
    }
    Ok(d)
}

fn argv(flag: &str, s: &Option<String>) -> Result<Option<Vec<String>>, CliError> {
    match s {
        None => Ok(None),
        Some(t) => split_argv(t)
            .map(Some)
            .ok_or_else(|| CliError::usage(format!("{flag} '{t}' is empty or has an unclosed quote"))),
    }
}

fn identity(run_id: &str) -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    // The kernel's node name (what `hostname` prints), bounded: it goes into a Lease.
    let host: String = rustix::system::uname().nodename().to_string_lossy().chars().take(64).collect();
    let host = if host.is_empty() { "unknown-host".to_string() } else { host };
    // The PID and nonce tell this process from another resuming the same run.
    format!("{user}@{host}/{run_id}/{}.{:08x}", std::process::id(), fastrand::u32(..))
}

fn new_run_id() -> String {
    let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    format!("{:x}-{:x}", t.as_secs(), std::process::id() ^ t.subsec_nanos())
}

/// The executor's options from apply's flags. `sim_scale`: the simulator's time scale when the
/// run is against the built-in simulator (gate and poll intervals follow its clock). With
/// `twin` (a rehearsal's twin) nodes are upgraded by the simulator whatever
/// --upgrader says, and intervals stay the real run's.
pub(crate) fn executor_options(
    args: &ApplyArgs,
    catalog: &crate::catalog::Catalog,
    sim_scale: Option<f64>,
    twin: bool,
) -> Result<Options, CliError> {
    let upgrader = match (if twin { Some(UpgraderKind::Sim) } else { args.upgrader }, args.simulate.is_some() || twin) {
        (Some(UpgraderKind::Command), _) => Upgrader::Command {
            argv: argv("--upgrade-command", &args.upgrade_command)?
                .ok_or_else(|| CliError::usage("--upgrader command needs --upgrade-command ARGV"))?,
            timeout: args.upgrade_timeout,
        },
        (Some(UpgraderKind::Kubeadm), _) => {
            let script = match &args.node_script {
                None => crate::exec::node_job::Script::Builtin,
                Some(path) => crate::exec::node_job::Script::read(path).map_err(CliError::usage)?,
            };
            Upgrader::NodeJob(crate::exec::node_job::NodeJob {
                image: args.node_job_image.clone(),
                namespace: args.node_job_namespace.clone(),
                script,
                timeout: args.upgrade_timeout,
                start_timeout: args.node_job_start_timeout,
                poll: Duration::from_secs(2),
            })
        }
        (Some(UpgraderKind::Eks), _) => Upgrader::Provider(args.provider.managed(Provider::Eks)?),
        (Some(UpgraderKind::Gke), _) => Upgrader::Provider(args.provider.managed(Provider::Gke)?),
        (Some(UpgraderKind::Aks), _) => Upgrader::Provider(args.provider.managed(Provider::Aks)?),
        (Some(UpgraderKind::Sim), _) | (None, true) => Upgrader::Sim,
        (Some(UpgraderKind::Manual), _) | (None, false) => Upgrader::Manual,
    };
    let window_end = match &args.window_end {
        None => None,
        Some(t) => {
            let ts: k8s_openapi::jiff::Timestamp = t.parse().map_err(|e| {
                CliError::usage(format!("--window-end {t}: {e} (use RFC 3339, e.g. 2026-11-27T04:00:00Z)"))
            })?;
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(ts.as_second().max(0) as u64))
        }
    };
    // Gate and poll intervals follow the simulator's clock, so a fast simulation is not slowed
    // by waits sized for real nodes.
    let poll = Duration::from_secs_f64(sim_scale.map_or(2.0, |s| (s * 0.5).clamp(0.01, 2.0)));
    let options = Options {
        upgrader,
        max_unavailable: args.max_unavailable,
        max_parallel: args.max_parallel.map(|n| n as usize),
        drain: DrainPolicy {
            delete_emptydir_data: args.delete_emptydir_data,
            force: args.force,
            timeout: args.drain_timeout,
            dry_run: args.dry_run,
            max_backoff: Duration::from_secs_f64(sim_scale.map_or(5.0, |s| (s * 5.0).clamp(0.05, 5.0))),
            budget_patience: args.budget_patience,
            volume_detach_timeout: Some(args.volume_detach_timeout).filter(|d| !d.is_zero()),
            own_pod: super::job::own_pod(),
            skip_wait_for_delete: args.skip_wait_for_delete_timeout.filter(|d| !d.is_zero()),
            grace_period: args.grace_period,
            pod_selector: match &args.pod_selector {
                None => None,
                Some(s) => Some(
                    crate::labels::LabelSelector::parse(s)
                        .map_err(|e| CliError::usage(format!("--pod-selector '{s}': {e}")))?,
                ),
            },
        },
        gates: crate::exec::gates::GateOptions {
            passes: args.gate_passes,
            timeout: args.gate_timeout,
            interval: args.gate_interval.unwrap_or(poll),
            command: argv("--gate-command", &args.gate_command)?,
            command_timeout: args.gate_command_timeout,
        },
        pause: args.pause,
        dry_run: args.dry_run,
        window_end,
        node_estimate: args.node_estimate,
        node_timeout: args.node_timeout,
        poll: poll / 4,
        release_command: argv("--release-command", &args.release_command)?,
        log_file: None,
        any_patch: false,
        catalog: Arc::new(catalog.clone()),
        acknowledge_all: args.acknowledge_all,
        lock: crate::exec::lock::LockWatch::never(),
        taint_pending: !args.no_taint_pending,
        sim_operator: args.simulate.is_some(),
    };
    let mut options = options;
    if let Upgrader::NodeJob(job) = &mut options.upgrader {
        job.poll = poll;
    } else if args.node_script.is_some() {
        return Err(CliError::usage("--node-script is for --upgrader kubeadm"));
    }
    Ok(options)
}

pub fn run(args: ApplyArgs) -> Result<Exit, CliError> {
    let catalog = args.catalog.load()?;
    let today = args.catalog.today()?;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if !args.yes && !interactive && !args.dry_run {
        return Err(CliError::usage(
            "apply asks for confirmation and there is no terminal: pass --yes to run unattended",
        ));
    }
    let time_scale = super::simulate::parse_time_scale(args.time_scale)?;
    let options = executor_options(&args, &catalog, args.simulate.as_ref().map(|_| time_scale), false)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::error(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let mut simulator = None;
        let conn = if let Some(scenario) = &args.simulate {
            let scenario = crate::sim::Scenario::load(scenario).map_err(|e| CliError::error(e.to_string()))?;
            let running = crate::sim::start(
                scenario,
                Arc::new(catalog.clone()),
                crate::sim::SimOptions { time_scale, ..Default::default() },
            )
            .await
            .map_err(|e| CliError::error(e.to_string()))?;
            let c = super::args::connect_simulator(&running).await;
            simulator = Some(running);
            c?
        } else {
            args.kube.connect().await?
        };
        let (client, server) = (conn.client, conn.server);
        let result = apply(&args, &catalog, today, client.clone(), &server, options, interactive, simulator.is_some()).await;
        if let Some(running) = simulator {
            if let Ok(req) = http::Request::get("/sim/stats").body(Vec::new())
                && let Ok(text) = client.request_text(req).await
                && let Ok(stats) = serde_json::from_str::<serde_json::Value>(&text)
            {
                super::print_result(&format!(
                    "simulator: {} PDB violations, {} pods lost, {} evictions ({} refused by a budget), {} API requests\n",
                    stats["pdbViolations"], stats["podsLost"], stats["evictions"], stats["pdb429"], stats["totalRequests"]
                ));
            }
            // Controllers that panicked fail the run whatever it reported: the cluster it talked to
            // had stopped.
            let stopped = running.shutdown().await;
            // The simulator's cluster is gone with it: a journal in the state directory could
            // never be resumed, only mistaken for a real cluster's (one named with --journal
            // is the user's to keep).
            if args.journal.is_none() {
                let path = journal::default_path(&server);
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(path.with_extension("log"));
            }
            stopped.map_err(|e| CliError::error(e.to_string()))?;
        }
        result
    })
}

/// The plan apply runs on a cluster read into `inv`: from its oldest apiserver to `to`, through
/// the waypoints of `via` still ahead, judging the pods --pod-selector selects. `distro`
/// defaults to what the cluster shows. (`rehearse` plans its twin with this too.)
pub(crate) fn plan_as_apply(
    args: &ApplyArgs,
    inv: &crate::inventory::Inventory,
    catalog: &crate::catalog::Catalog,
    today: crate::catalog::Date,
    to: Target,
    distro: Option<String>,
    via: Vec<crate::version::Version>,
) -> Result<Plan, CliError> {
    let from = inv.cluster.as_ref().and_then(crate::checks::skew::oldest_apiserver);
    let distro =
        distro.or_else(|| super::source::infer_distro(inv).map(str::to_string)).unwrap_or_else(|| "generic".into());
    let from = from.ok_or_else(|| CliError::error("the cluster did not report its version"))?;
    // A waypoint the cluster has reached is behind it: the plan from here no longer passes it
    // (and differs from the saved one, which the drift check then says).
    let via = via.into_iter().filter(|v| *v > from).collect();
    let req = PathRequest {
        distro,
        from,
        to,
        via,
        kubelets: vec![],
        facts: Facts { lts: args.lts, ..Facts::default() },
        today,
    };
    // The drain evicts only what --pod-selector selects: the plan judges those pods.
    let scope = args.pod_selector.as_deref().and_then(|s| crate::labels::LabelSelector::parse(s).ok());
    crate::plan::plan_drain_scoped(inv, catalog, &req, scope.as_ref()).map_err(CliError::from)
}

/// Asks the cluster, with SelfSubjectAccessReview, for every permission this run will use, and
/// refuses with the whole list of what is missing before anything is locked or cordoned.
async fn preflight(
    client: &kube::Client,
    args: &ApplyArgs,
    upgrader: &Upgrader,
    cluster_journal: bool,
) -> Result<(), CliError> {
    use crate::kubeapi::permissions::{self, Verdict};
    let sim_upgrader = matches!(upgrader, Upgrader::Sim);
    // A new run plans first, and the collector checks each read it makes (a refused one blocks
    // the plan, so apply stops there, before the lock); a resumed run reads without planning.
    let mut checks: Vec<permissions::Check> =
        if args.resume || args.resume_or_start { permissions::run_reads() } else { Vec::new() };
    // A dry run is checked for the same permissions: it rehearses the run it stands for.
    let node_jobs = match upgrader {
        Upgrader::NodeJob(job) => Some(job.namespace.as_str()),
        _ => None,
    };
    checks.extend(permissions::apply_rules(sim_upgrader, node_jobs).iter().flat_map(permissions::Rule::checks));
    if cluster_journal {
        checks.extend(permissions::cluster_journal_rules().iter().flat_map(permissions::Rule::checks));
    }
    // Without the wait for volumes to detach, their reads are never made.
    if args.volume_detach_timeout.is_zero() {
        checks.retain(|c| !matches!(c, permissions::Check::Resource { resource, .. } if resource == "volumeattachments" || resource == "persistentvolumes"));
    }
    let answers = permissions::review(client, &checks).await;
    let missing = permissions::denied(&answers);
    if !missing.is_empty() {
        return Err(CliError::error(format!(
            "apply needs {} permission(s) it does not have, so nothing was started (no lock, no cordon): {}; grant the roles from `k8s-upgrade rbac --for plan` and `k8s-upgrade rbac --for apply`",
            missing.len(),
            missing.join(", ")
        )));
    }
    if let Some((_, Verdict::Unknown(why))) = answers.iter().find(|(_, v)| matches!(v, Verdict::Unknown(_))) {
        super::logging::warn(&format!(
            "could not check permissions up front ({why}); a refused request will stop the run where it happens"
        ));
    }
    Ok(())
}

/// Before anything is locked or cordoned: node jobs can run on this cluster (see
/// [`crate::exec::node_job::preflight`]), probed on the first control-plane node.
async fn node_job_preflight(
    client: &kube::Client,
    job: &crate::exec::node_job::NodeJob,
    distro: &str,
    dry_run: bool,
    cancel: &Cancel,
) -> Result<(), CliError> {
    use crate::exec::upgrader::{Action, Role};
    if !matches!(distro, "kubeadm" | "generic") {
        return Err(CliError::usage(format!(
            "--upgrader kubeadm runs kubeadm's procedure on each node; this cluster is {distro}, which upgrades its own way: choose the upgrader for {distro} (see docs/upgraders.md)"
        )));
    }
    let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let mut nodes = api
        .list(&kube::api::ListParams::default())
        .await
        .map_err(|e| CliError::error(format!("cannot list nodes for the node-job preflight: {e}")))?
        .items;
    nodes.sort_by_key(|n| (!crate::k8s::node::is_control_plane(n), crate::k8s::node::name(n).to_string()));
    let Some(first) = nodes.first() else {
        return Err(CliError::error("the cluster has no nodes: nothing for node jobs to run on"));
    };
    let action = Action {
        subject: crate::k8s::node::name(first).to_string(),
        role: if crate::k8s::node::is_control_plane(first) { Role::ControlPlane { first: true } } else { Role::Worker },
        target: crate::k8s::node::kubelet_version(first).map(|v| v.to_string()).unwrap_or_default(),
        from: None,
        workload: None,
    };
    let verified = crate::exec::node_job::preflight(client, job, &action, dry_run, cancel)
        .await
        .map_err(|e| CliError { exit: Exit::Blockers, message: e })?;
    for line in verified {
        super::logging::say(&format!("node jobs: {line}"));
    }
    Ok(())
}

/// With Helm release steps left to run and no --release-command, apply rewrites the releases
/// itself: it must be allowed to read, create and update Secrets in their namespaces. Asked only
/// then, so a plan without Helm steps needs no Secret write at all.
async fn helm_preflight(client: &kube::Client, journal: &Journal, release_command: bool) -> Result<(), CliError> {
    use crate::kubeapi::permissions;
    if release_command {
        return Ok(());
    }
    let namespaces: std::collections::BTreeSet<&str> = journal
        .steps
        .iter()
        .filter(|s| !matches!(s.status, StepStatus::Done | StepStatus::Skipped))
        .filter_map(|s| match &s.step.action {
            crate::plan::StepAction::HelmRelease { namespace, .. } => Some(namespace.as_str()),
            _ => None,
        })
        .collect();
    if namespaces.is_empty() {
        return Ok(());
    }
    let answers = permissions::review(client, &permissions::helm_fix_checks(namespaces)).await;
    let missing = permissions::denied(&answers);
    if !missing.is_empty() {
        return Err(CliError::error(format!(
            "apply rewrites the plan's Helm releases and needs {} permission(s) for it that it does not have, so nothing was started (no lock, no cordon): {}; grant the role from `k8s-upgrade rbac --for helm-fix`, or pass --release-command to rewrite them another way",
            missing.len(),
            missing.join(", ")
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn apply(
    args: &ApplyArgs,
    catalog: &crate::catalog::Catalog,
    today: crate::catalog::Date,
    client: kube::Client,
    server: &str,
    options: Options,
    interactive: bool,
    simulated: bool,
) -> Result<Exit, CliError> {
    let store = match args.journal.as_deref() {
        Some(p) if p.as_os_str() == CLUSTER_ARG => JournalStore::cluster(&client),
        Some(p) => JournalStore::File(p.to_path_buf()),
        // In a pod the local disk goes with the pod: the journal lives in the cluster.
        None if !simulated && args.kube.in_cluster().is_some() => JournalStore::cluster(&client),
        None => JournalStore::File(journal::default_path(server)),
    };
    let journal_path = match &store {
        JournalStore::File(p) => p.clone(),
        JournalStore::Cluster(_) => PathBuf::new(),
    };
    preflight(&client, args, &options.upgrader, store.is_cluster()).await?;
    // The run's watches start while the plan is collected; they only read.
    let watches = {
        let client = client.clone();
        let attachments = options.drain.volume_detach_timeout.is_some();
        tokio::spawn(async move {
            crate::exec::cache::Cache::start(&client, std::time::Duration::from_secs(120), attachments).await
        })
    };
    // The plan this run carries out, for --save-html (a resumed run has only its journal).
    let mut report_plan = None;
    let existing = if args.resume || args.resume_or_start { Some(read_journal(&store).await) } else { None };
    let continued = match existing {
        None => None,
        Some(Ok(Some(j))) if args.resume_or_start && !j.finished => {
            same_target(&j, args.to.as_deref().unwrap_or("latest"), &store)?;
            Some(j)
        }
        Some(found) if args.resume_or_start => {
            refuse_unfinished_journal(&store, found)?;
            None
        }
        Some(Ok(Some(j))) => Some(j),
        Some(Ok(None)) => {
            return Err(CliError::error(match &store {
                JournalStore::Cluster(_) => format!(
                    "there is no journal in the cluster ({}): nothing to resume; pass --journal FILE if the run kept its journal in a file",
                    store.describe()
                ),
                JournalStore::File(p) => format!(
                    "cannot read the journal {}: it does not exist; pass --journal FILE (or --journal cluster) if the run used another journal",
                    p.display()
                ),
            }));
        }
        Some(Err(e)) => {
            return Err(CliError::error(format!(
                "{e}; pass --journal FILE (or --journal cluster) if the run used another journal"
            )));
        }
    };
    let journal = if let Some(j) = continued {
        // A journal read from the cluster belongs to it whatever URL reaches it from here (an
        // in-cluster service address, a laptop's load balancer); a file is checked.
        if !store.is_cluster() && j.cluster != server {
            return Err(CliError::error(format!(
                "the journal {} belongs to the cluster at {}, not {server}",
                journal_path.display(),
                j.cluster
            )));
        }
        if !j.finished {
            // Resuming executes the journal's targets: an edited or damaged one is refused
            // rather than trusted (one /version tells where the control plane is now).
            let now = client
                .apiserver_version()
                .await
                .ok()
                .and_then(|info| info.git_version.parse::<crate::version::Version>().ok());
            if let Err(why) = j.check_resumable(catalog, now.as_ref()) {
                return Err(CliError::error(format!(
                    "the journal {} cannot be resumed: {}; it was edited or damaged. Restore the journal the run wrote, {} and plan again (kubectl get nodes shows what is cordoned)",
                    store.describe(),
                    why,
                    discard_hint(&store)
                )));
            }
        }
        if j.finished {
            let quarantined = j.quarantined();
            if !quarantined.is_empty() {
                return Err(CliError {
                    exit: Exit::Blockers,
                    message: format!(
                        "the run {} finished, but skipped and quarantined {}: there is nothing to resume; look at why, `kubectl uncordon` them, remove the label {}, and run apply again to upgrade them",
                        j.run_id,
                        quarantined.join(", "),
                        crate::exec::drain::LABEL_QUARANTINED
                    ),
                });
            }
            super::print_result(&format!("the run {} already finished; nothing to resume\n", j.run_id));
            return Ok(Exit::Success);
        }
        j
    } else {
        if !args.resume_or_start {
            refuse_unfinished_journal(&store, read_journal(&store).await)?;
        }
        let inv = live::collect(&client, catalog, &live::CollectOptions::default())
            .await
            .map_err(|e| CliError::error(e.to_string().lines().next().unwrap_or_default().to_string()))?;
        let live_plan = |to: Target, distro: Option<String>, via: Vec<crate::version::Version>| {
            plan_as_apply(args, &inv, catalog, today, to, distro, via)
        };
        let plan = if let Some(file) = &args.plan {
            let text = crate::limits::read_text(file, "--plan", crate::plan::MAX_DOCUMENT_BYTES)
                .map_err(|e| CliError::error(e.to_string()))?;
            let saved =
                Plan::from_document(&text).map_err(|e| CliError::error(format!("--plan {}: {e}", file.display())))?;
            // Planned again through the saved plan's own control-plane releases, so a plan made
            // with --via (or before a newer patch appeared) is compared hop for hop.
            let waypoints: Vec<crate::version::Version> = saved
                .steps
                .iter()
                .filter_map(|s| match &s.action {
                    crate::plan::StepAction::ControlPlane { to, .. } if *to != saved.to => Some(to.clone()),
                    _ => None,
                })
                .collect();
            let now = live_plan(Target::Version(saved.to.clone()), Some(saved.distro.clone()), waypoints)?;
            let drift = crate::plan::diff(&saved, &now);
            if !drift.is_empty() {
                return Err(CliError {
                    exit: Exit::Blockers,
                    message: format!(
                        "the cluster drifted from {}; plan again. Differences: {}",
                        file.display(),
                        drift.join("; ")
                    ),
                });
            }
            // The saved plan's steps run; the blockers are the cluster's now (a blocker fixed
            // since the save no longer holds the run, one that appeared since does, and both are
            // judged with this run's --pod-selector).
            (saved, now)
        } else {
            let to_text = args.to.as_deref().unwrap_or("latest");
            let to = to_text.parse::<Target>().map_err(|e| CliError::usage(format!("--to: {e} (or `latest`)")))?;
            let plan = live_plan(to, args.distro.clone(), vec![])?;
            super::print_stdout(&render::plan_table(&plan))?;
            (plan.clone(), plan)
        };
        let (plan, now) = plan;
        let unresolved: Vec<String> =
            now.unresolved_blockers().iter().map(|f| format!("{} {}: {}", f.code, f.subject, f.message)).collect();
        if !unresolved.is_empty() && !args.ignore_blockers {
            return Err(CliError {
                exit: Exit::Blockers,
                message: format!(
                    "{} blocker(s) that no step resolves, so apply does not start (fix them, or pass --ignore-blockers to stop where they bite): {}",
                    unresolved.len(),
                    unresolved.join(" | ")
                ),
            });
        }
        let run_id = new_run_id();
        report_plan = Some(plan.clone());
        Journal::new(journal_path.clone(), &run_id, server, &plan)
    };
    let mut journal = journal;
    for order in &args.acknowledge {
        match journal.steps.iter().find(|s| s.step.order == *order) {
            Some(s)
                if matches!(
                    s.step.action,
                    crate::plan::StepAction::MigrateApi { .. }
                        | crate::plan::StepAction::HelmRelease { .. }
                        | crate::plan::StepAction::Prerequisite { .. }
                        | crate::plan::StepAction::Manual
                ) =>
            {
                journal.acknowledged.insert(*order);
            }
            Some(s) => {
                return Err(CliError::usage(format!(
                    "--acknowledge {order}: step {order} is a {} step, not an operator step",
                    s.step.kind.as_str()
                )));
            }
            None => {
                return Err(CliError::usage(format!(
                    "--acknowledge {order}: the plan has steps 1 to {}",
                    journal.steps.len()
                )));
            }
        }
    }
    helm_preflight(&client, &journal, options.release_command.is_some()).await?;
    let cancel = Cancel::new();
    if let crate::exec::upgrader::Upgrader::NodeJob(job) = &options.upgrader {
        node_job_preflight(&client, job, &journal.distro, args.dry_run, &cancel).await?;
    }
    if !args.yes && interactive && !args.dry_run {
        let question = format!("Start {} steps on {server}?", journal.steps.len());
        if prompt::confirm(&question, &cancel).await != Some(true) {
            return Err(CliError { exit: Exit::Interrupted, message: "not started".into() });
        }
    }
    if args.break_lock
        && !args.yes
        && interactive
        && prompt::confirm("Break the cluster lock held by another run?", &cancel).await != Some(true)
    {
        return Err(CliError { exit: Exit::Interrupted, message: "lock left alone".into() });
    }
    let cache = watches
        .await
        .map_err(|e| CliError::error(format!("the cluster watches stopped: {e}")))?
        .map_err(CliError::error)?;
    let run_id = journal.run_id.clone();
    let reporter = Arc::new(Reporter::new(args.events.as_deref(), journal.steps.len()).map_err(CliError::error)?);
    let lock = if args.dry_run {
        None
    } else {
        let say = {
            let reporter = reporter.clone();
            move |line: String| reporter.say(&line)
        };
        Some(
            crate::exec::lock::acquire(&client, &identity(&run_id), args.break_lock, &say)
                .await
                .map_err(|e| CliError { exit: Exit::Error, message: e.to_string() })?,
        )
    };
    if !args.dry_run
        && let Err(e) = store.save(&journal).await
    {
        if let Some(l) = &lock {
            l.release().await;
        }
        return Err(CliError::error(format!("{e}; nothing was started and the lock is released")));
    }
    reporter.say(&format!(
        "run {run_id} on {server}: {}, journal {}{}",
        if journal.from == journal.to {
            format!("control plane stays at {}, nodes catch up", journal.to)
        } else {
            format!("{} → {}", journal.from, journal.to)
        },
        store.describe(),
        if args.dry_run { " (dry run: nothing changes)" } else { "" }
    ));
    reporter
        .record(serde_json::json!({"event": "run-start", "run": run_id, "cluster": server, "dryRun": args.dry_run}));
    let signals = spawn_signal_handler(cancel.clone(), reporter.clone(), matches!(options.upgrader, Upgrader::Manual));
    let terminal;
    let operator: &dyn Operator = if args.yes || !interactive {
        &Unattended
    } else {
        terminal = TerminalOperator::new(reporter.clone(), cancel.clone());
        &terminal
    };
    let events = {
        let reporter = reporter.clone();
        EventSink::new(move |e| reporter.handle(&e))
    };
    let mut options = options;
    // Providers choose their own patches: a node or control plane at another patch of the
    // target minor is upgraded.
    options.any_patch =
        matches!(journal.distro.as_str(), "eks" | "gke" | "aks") || matches!(options.upgrader, Upgrader::Provider(_));
    // Full command output stays on this machine: next to a file journal, or under the user's
    // state directory for a journal in the cluster.
    options.log_file = (!args.dry_run).then(|| match &store {
        JournalStore::File(p) => p.with_extension("log"),
        JournalStore::Cluster(_) => journal::default_path(server).with_extension("log"),
    });
    options.lock = lock.as_ref().map_or_else(crate::exec::lock::LockWatch::never, |l| l.watch());
    let journal_arg = store.arg();
    let journal_at = store.describe();
    let executor =
        Executor::new(client.clone(), cache, journal, options, operator, events, cancel.clone()).with_store(store);
    // Another run took the lock (--break-lock): waits end now and nothing new starts; an
    // upgrade command in flight is left to finish.
    let lock_loss = {
        let mut watch = options_lock_watch(&lock);
        let (cancel, reporter) = (cancel.clone(), reporter.clone());
        tokio::spawn(async move {
            if let Some(why) = watch.wait_lost().await {
                reporter.say(&format!(
                    "the cluster lock is no longer this run's ({why}): stopping now; an upgrade command in flight finishes, every wait ends"
                ));
                cancel.end_waits();
            }
        })
    };
    let started = std::time::Instant::now();
    let result = executor.run().await;
    // The executor can notice the lost lock at a step boundary before the watcher task runs:
    // let the task say why the run stops rather than cutting it off mid-message.
    if lock.as_ref().and_then(|l| l.watch().lost()).is_some() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), lock_loss).await;
    } else {
        lock_loss.abort();
    }
    // A wait cut short because the lock was lost is that, not an interruption.
    let result = match (result, lock.as_ref().and_then(|l| l.watch().lost())) {
        (Err(ExecError::Interrupted(what)), Some(why)) => Err(ExecError::LockLost(format!(
            "the cluster lock ({}/{}) was taken by another run: {why}; this run {what}. Find out who holds it (kubectl -n {} get lease {} -o yaml) before resuming",
            crate::exec::lock::LEASE_NAMESPACE,
            crate::exec::lock::LEASE_NAME,
            crate::exec::lock::LEASE_NAMESPACE,
            crate::exec::lock::LEASE_NAME
        ))),
        (result, _) => result,
    };
    signals.abort();
    reporter.finish();
    if let Some(l) = lock {
        l.release().await;
    }
    let outcome = match &result {
        Ok(o) => o.clone(),
        Err(_) => executor.outcome(),
    };
    let j = executor.journal().await;
    let exit = exit_of(&result);
    summary(&j, &outcome, result.as_ref().err(), started.elapsed(), args, simulated, &journal_arg);
    if let Some(file) = &args.save_html {
        save_html(
            file,
            report_plan.as_ref(),
            &j,
            &outcome,
            &result,
            exit,
            started.elapsed(),
            args,
            simulated,
            &journal_arg,
            journal_at,
        );
    }
    reporter.record(serde_json::json!({"event": "run-end", "exit": exit as u8}));
    Ok(exit)
}

/// Writes the run's HTML report; a failure is said on stderr and leaves the exit code alone.
#[allow(clippy::too_many_arguments)]
fn save_html(
    file: &std::path::Path,
    plan: Option<&Plan>,
    j: &Journal,
    outcome: &Outcome,
    result: &Result<Outcome, ExecError>,
    exit: Exit,
    took: Duration,
    args: &ApplyArgs,
    simulated: bool,
    journal_arg: &str,
    journal_at: String,
) {
    let error = result.as_ref().err();
    let run = render::html::RunView {
        journal: j,
        exit: exit as u8,
        error: error.map(ToString::to_string),
        quarantined: &outcome.quarantined,
        nodes_done: outcome.nodes_done.len(),
        took,
        dry_run: args.dry_run,
        continue_with: (error.is_some() && !j.finished && !simulated && !args.dry_run)
            .then(|| resume_command(journal_arg)),
        ended: journal::Stamp::now(),
        journal_at,
    };
    match super::plan::write_atomically(file, &render::html::apply_html(plan, &run)) {
        Ok(()) => super::logging::say(&format!("HTML report written to {}", file.display())),
        Err(e) => super::logging::warn(&format!(
            "--save-html {}: {e}; the report was not written (the run's exit code is unchanged)",
            file.display()
        )),
    }
}

/// The journal in `store`, if there is one (a file journal that does not exist is none).
async fn read_journal(store: &JournalStore) -> Result<Option<Journal>, journal::JournalError> {
    match store {
        JournalStore::File(p) if !p.exists() => Ok(None),
        JournalStore::File(p) => Journal::load(p).map(Some),
        JournalStore::Cluster(c) => c.load().await,
    }
}

/// How to throw a journal away, for messages.
fn discard_hint(store: &JournalStore) -> String {
    match store {
        JournalStore::File(p) => format!("or move {} away to discard it", p.display()),
        JournalStore::Cluster(_) => format!(
            "or discard it with `kubectl -n {} delete configmap {}`",
            crate::exec::store::CONFIGMAP_NAMESPACE,
            crate::exec::store::CONFIGMAP_NAME
        ),
    }
}

/// A new run must not write over the journal of one that has not finished: that journal is the
/// only record of which nodes it cordoned.
fn refuse_unfinished_journal(
    store: &JournalStore,
    found: Result<Option<Journal>, journal::JournalError>,
) -> Result<(), CliError> {
    let discard = discard_hint(store);
    match found {
        Ok(None) => Ok(()),
        Ok(Some(j)) if j.finished => Ok(()),
        Ok(Some(j)) => {
            let cordoned: Vec<String> = j.left_cordoned().into_iter().map(|(n, p)| format!("{n} ({p:?})")).collect();
            Err(CliError::error(format!(
                "the journal {} holds the unfinished run {}{}: continue it with `k8s-upgrade apply --resume --journal {}`, {discard} (its nodes stay as they are)",
                store.describe(),
                j.run_id,
                if cordoned.is_empty() {
                    String::new()
                } else {
                    format!(", which left cordoned {}", cordoned.join(", "))
                },
                quote(&store.arg()),
            )))
        }
        Err(e) => Err(CliError::error(format!("{e}; a new run will not write over it: look at it, {discard}"))),
    }
}

/// `--resume-or-start` continues an unfinished run only towards the version it was asked for:
/// a Job's command line names its target, and a different one means a different intent.
fn same_target(j: &Journal, to: &str, store: &JournalStore) -> Result<(), CliError> {
    let wanted = to.parse::<Target>().map_err(|e| CliError::usage(format!("--to: {e} (or `latest`)")))?;
    let same = match &wanted {
        // What `latest` meant is decided when a run is planned; the run under way decided it.
        Target::Latest => true,
        Target::Version(v) => {
            v.minor_version() == j.to.minor_version() && v.patch.is_none_or(|p| j.to.patch == Some(p))
        }
    };
    if same {
        return Ok(());
    }
    Err(CliError::error(format!(
        "the journal {} holds the unfinished run {} to {}, not --to {to}: finish it with `k8s-upgrade apply --resume --journal {}`, {} (its nodes stay as they are), then start again",
        store.describe(),
        j.run_id,
        j.to,
        quote(&store.arg()),
        discard_hint(store)
    )))
}

fn options_lock_watch(lock: &Option<crate::exec::lock::Held>) -> crate::exec::lock::LockWatch {
    lock.as_ref().map_or_else(crate::exec::lock::LockWatch::never, |l| l.watch())
}

/// The documented exit code of a run's result.
fn exit_of(result: &Result<Outcome, ExecError>) -> Exit {
    match result {
        // Every step ran, but nodes the operator skipped are still on their old version.
        Ok(o) if !o.quarantined.is_empty() => Exit::Blockers,
        Ok(_) => Exit::Success,
        Err(ExecError::Blocked(_)) => Exit::Blockers,
        Err(ExecError::WindowClosing(_)) => Exit::Window,
        Err(ExecError::Interrupted(_) | ExecError::Declined(_)) => Exit::Interrupted,
        Err(ExecError::LockLost(_) | ExecError::Journal(_) | ExecError::Failed(_)) => Exit::Error,
    }
}

/// Ctrl-C, SIGTERM and SIGHUP: the first stops at the next safe point, the next stops now.
fn spawn_signal_handler(cancel: Cancel, reporter: Arc<Reporter>, manual: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
            return;
        };
        loop {
            let name = tokio::select! {
                r = tokio::signal::ctrl_c() => { if r.is_err() { return; } "Ctrl-C" }
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
            };
            match cancel.escalate() {
                CancelLevel::Stop if manual => reporter.say(&format!(
                    "{name}: stopping at the next safe point; a drain in flight finishes, a wait for a node you are upgrading by hand ends now with the node left cordoned (send it again to stop now)"
                )),
                CancelLevel::Stop => reporter.say(&format!(
                    "{name}: stopping at the next safe point; the node in flight finishes (send it again to stop now)"
                )),
                CancelLevel::Abort => reporter
                    .say(&format!("{name} again: stopping now; running commands are stopped; the journal is kept")),
            }
        }
    })
}

fn summary(
    j: &Journal,
    outcome: &Outcome,
    error: Option<&ExecError>,
    took: Duration,
    args: &ApplyArgs,
    simulated: bool,
    journal_arg: &str,
) {
    let done = j.steps.iter().filter(|s| s.status == StepStatus::Done).count();
    let skipped: Vec<&journal::JournalStep> = j.steps.iter().filter(|s| s.status == StepStatus::Skipped).collect();
    let mut out = String::new();
    // A dry run changed nothing: it says what it walked through, never "done" or "upgraded".
    let (verb_done, verb_nodes) =
        if args.dry_run { ("walked through", "nodes would be upgraded") } else { ("done", "nodes upgraded") };
    out.push_str(&format!(
        "\n{} {} → {} in {:.1}s: {done} of {} steps {verb_done}, {} left to the operator, {} {verb_nodes}{}\n",
        match error {
            None if args.dry_run => "Dry run finished",
            None if outcome.quarantined.is_empty() => "Finished",
            None => "Finished (with nodes skipped)",
            Some(_) if args.dry_run => "Dry run stopped",
            Some(_) => "Stopped",
        },
        j.from,
        j.to,
        took.as_secs_f64(),
        j.steps.len(),
        skipped.len(),
        outcome.nodes_done.len(),
        if args.dry_run { "; nothing was changed (server-side dry run)" } else { "" }
    ));
    if !outcome.nodes_done.is_empty() {
        let mut secs: Vec<f64> = outcome.nodes_done.iter().map(|(_, s)| *s).collect();
        secs.sort_by(f64::total_cmp);
        out.push_str(&format!(
            "  node durations: median {:.1}s, longest {:.1}s\n",
            secs[secs.len() / 2],
            secs.last().copied().unwrap_or(0.0)
        ));
    }
    for s in &skipped {
        out.push_str(&format!(
            "  skipped step {}: {} ({})\n",
            s.step.order,
            s.step.description,
            s.note.as_deref().unwrap_or("")
        ));
    }
    if !outcome.quarantined.is_empty() {
        out.push_str(&format!(
            "  skipped and left cordoned with the label {}=true: {}. Look at why, then `kubectl uncordon` each, remove the label, and run apply again to upgrade them\n",
            crate::exec::drain::LABEL_QUARANTINED,
            outcome.quarantined.join(", ")
        ));
    }
    let cordoned: Vec<String> = j
        .left_cordoned()
        .into_iter()
        .filter(|(n, _)| !outcome.quarantined.iter().any(|q| q == n))
        .map(|(n, phase)| format!("{n} ({phase:?})"))
        .collect();
    if !cordoned.is_empty() {
        out.push_str(&format!("  left cordoned by this run: {}\n", cordoned.join(", ")));
    }
    if let Some(e) = error {
        out.push_str(&format!("  why it stopped: {e}\n"));
        if j.finished {
            // Every step ran; there is nothing to resume, only the nodes named above.
        } else if simulated {
            out.push_str("  (the simulator's state ends with this process, so this run cannot be resumed)\n");
        } else if !args.dry_run {
            out.push_str(&format!("  to continue: {}\n", resume_command(journal_arg)));
        }
    }
    super::print_result(&out);
}

/// The command that continues this run: the same flags, with --resume in place of --to/--plan.
fn resume_command(journal: &str) -> String {
    let mut out = vec!["k8s-upgrade".to_string(), "apply".into(), "--resume".into()];
    let mut args = std::env::args().skip(2).peekable();
    let mut has_journal = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--to" | "--plan" | "--events" => {
                args.next();
            }
            "--resume" | "--resume-or-start" => {}
            _ if a.starts_with("--to=") || a.starts_with("--plan=") || a.starts_with("--events=") => {}
            _ => {
                has_journal |= a == "--journal" || a.starts_with("--journal=");
                out.push(a);
            }
        }
    }
    if !has_journal {
        out.push("--journal".into());
        out.push(journal.to_string());
    }
    // Shown for copying: quoted where a shell would split or expand.
    out.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_garbage() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("soon").unwrap_err().contains("'soon'"));
        assert!(parse_duration("3d").unwrap_err().contains("'3d'"));
        assert!(parse_duration("-5m").unwrap_err().contains("negative"));
        assert!(parse_duration("9999h").is_err());
        assert_eq!(crate::exec::command::humanize(parse_duration("15m").unwrap()), "15m");
    }
}
