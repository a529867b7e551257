//! `k8s-upgrade fleet`: many clusters at once, one per kubeconfig context. `fleet plan` plans
//! each through the same path as `plan` (a bounded number at a time), prints one table and
//! writes each plan document; `fleet jobs` prints, for a management cluster, one upgrade Job per
//! cluster with that cluster's minified kubeconfig in a Secret. Context names are the user's
//! free text: they are sanitized into file names and DNS names (with a hash, so two contexts
//! never share one) and never reach a path or a shell as they are.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use kube::config::Kubeconfig;
use serde::Serialize;
use serde_json::{Value, json};

use super::args::{CatalogArgs, KubeArgs};
use super::job::{ApplyPassArgs, DEFAULT_IMAGE, JobSpec, dns_label_flag, documents, job_manifest};
use super::plan::{PlanInputs, parse_target, plan_inventory};
use super::source::SourceArgs;
use super::{CliError, Exit, print_stdout, render};
use crate::checks::Severity;
use crate::plan::{Plan, StepKind};

/// Most clusters one invocation takes: a bound on threads, files and the table.
const MAX_CONTEXTS: usize = 1000;
/// Longest context name taken (kubectl has no limit; a Kubernetes name has 253).
const MAX_CONTEXT_NAME: usize = 253;
/// Largest file inlined into a kubeconfig Secret (a CA bundle, a certificate, a key, a token).
const MAX_INLINED_BYTES: u64 = 1024 * 1024;
/// Where a fleet Job's pod finds its cluster's kubeconfig.
const KUBECONFIG_MOUNT: &str = "/etc/k8s-upgrade/kubeconfig";

#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum FleetCommand {
    /// Plan every cluster concurrently and print one table; exits 3 if any cluster blocks.
    Plan(FleetPlanArgs),
    /// Print, for a management cluster, one upgrade Job per cluster with its kubeconfig Secret.
    ///
    /// The Secrets hold credentials: refused on a terminal; pipe into `kubectl apply -f -` or
    /// write files with --out-dir.
    Jobs(FleetJobsArgs),
}

/// Which clusters: kubeconfig contexts.
#[derive(Debug, Clone, Args)]
pub struct ContextArgs {
    /// Kubeconfig contexts, comma-separated (repeatable).
    #[arg(long, value_name = "A,B,C", value_delimiter = ',', required_unless_present = "all_contexts")]
    pub contexts: Vec<String>,

    /// Every context of the kubeconfig.
    #[arg(long, conflicts_with = "contexts")]
    pub all_contexts: bool,

    /// Kubeconfig file (default: KUBECONFIG, merged, or ~/.kube/config).
    #[arg(long, value_name = "FILE", env = "K8S_UPGRADE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

impl ContextArgs {
    fn load(&self) -> Result<Kubeconfig, CliError> {
        let (result, what) = match &self.kubeconfig {
            Some(p) => (Kubeconfig::read_from(p), p.display().to_string()),
            None => (Kubeconfig::read(), "KUBECONFIG or ~/.kube/config".to_string()),
        };
        result.map_err(|e| {
            CliError::error(format!(
                "cannot load the kubeconfig from {what}: {}; check --kubeconfig / KUBECONFIG",
                e.to_string().lines().next().unwrap_or_default()
            ))
        })
    }

    /// The contexts asked for, in order, each once; an unknown one is refused by name.
    fn resolve(&self, kc: &Kubeconfig) -> Result<Vec<String>, CliError> {
        let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        let wanted: Vec<String> = if self.all_contexts {
            known.iter().map(|s| s.to_string()).collect()
        } else {
            self.contexts.iter().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect()
        };
        let mut out: Vec<String> = Vec::new();
        for c in wanted {
            // The name travels into annotations, file names and messages: keep it bounded.
            if c.chars().count() > MAX_CONTEXT_NAME {
                return Err(CliError::usage(format!(
                    "context '{}…': longer than {MAX_CONTEXT_NAME} characters; rename it in the kubeconfig",
                    printable(&c.chars().take(40).collect::<String>())
                )));
            }
            if !known.contains(&c.as_str()) {
                return Err(CliError::usage(format!(
                    "--contexts: context '{}' is not in the kubeconfig (contexts: {})",
                    c.escape_debug(),
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )));
            }
            if !out.contains(&c) {
                out.push(c);
            }
        }
        if out.is_empty() {
            return Err(CliError::usage("no contexts to work on: the kubeconfig has none; pass --contexts A,B"));
        }
        if out.len() > MAX_CONTEXTS {
            return Err(CliError::usage(format!(
                "{} contexts: more than {MAX_CONTEXTS} at once; pass a shorter --contexts list",
                out.len()
            )));
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FleetFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Exit codes: 0 every cluster planned and none blocks, 1 a cluster could not be planned (and none\nblocks), 2 usage, 3 a cluster blocks.\n\nExamples:\n  k8s-upgrade fleet plan --all-contexts --to 1.33 --out-dir plans/\n  k8s-upgrade fleet plan --contexts prod-eu,prod-us --to latest -o json"
)]
pub struct FleetPlanArgs {
    #[command(flatten)]
    pub targets: ContextArgs,

    /// Version to reach, or `latest`.
    #[arg(long, value_name = "VERSION|latest")]
    pub to: String,

    /// Clusters read at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub concurrency: u32,

    /// Write each cluster's plan document to DIR/<context>.plan.json (as `plan --save` writes it).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = FleetFormat::Table, env = "K8S_UPGRADE_OUTPUT")]
    pub output: FleetFormat,

    /// Longest reaching each server may take: connection, TLS handshake and its first answer.
    #[arg(long, value_name = "DURATION", default_value = "20s", env = "K8S_UPGRADE_CONNECT_TIMEOUT", value_parser = super::apply::parse_duration)]
    pub connect_timeout: std::time::Duration,

    /// Longest one API request may take, its whole answer included (0: no limit).
    #[arg(long, value_name = "DURATION", default_value = "60s", env = "K8S_UPGRADE_REQUEST_TIMEOUT", value_parser = super::apply::parse_duration)]
    pub request_timeout: std::time::Duration,

    /// Longest a kubeconfig `exec` credential plugin may run (default 60s).
    #[arg(long, value_name = "DURATION", env = "K8S_UPGRADE_EXEC_TIMEOUT", value_parser = super::apply::parse_duration)]
    pub exec_timeout: Option<std::time::Duration>,

    #[command(flatten)]
    pub catalog: CatalogArgs,
}

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Each Job runs `apply --to V --yes --journal cluster --resume-or-start --kubeconfig ...` against its\ncluster, so the journal lives in the target cluster. See docs/fleet.md.\n\nExamples:\n  k8s-upgrade fleet jobs --all-contexts --to 1.33 --namespace upgrades | kubectl --context mgmt apply -f -\n  k8s-upgrade fleet jobs --contexts prod-eu,prod-us --to 1.33 --out-dir jobs/"
)]
pub struct FleetJobsArgs {
    #[command(flatten)]
    pub targets: ContextArgs,

    /// Version to reach, or `latest`.
    #[arg(long, value_name = "VERSION|latest")]
    pub to: String,

    /// Namespace of the Jobs and Secrets in the management cluster.
    #[arg(long, short = 'n', value_name = "NS", default_value = "k8s-upgrade")]
    pub namespace: String,

    /// The image the Jobs run.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_IMAGE, env = "K8S_UPGRADE_IMAGE")]
    pub image: String,

    /// Write one file per cluster (mode 0600) to DIR instead of stdout.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    #[command(flatten)]
    pub apply: ApplyPassArgs,
}

pub fn run(args: FleetArgs) -> Result<Exit, CliError> {
    match args.command {
        FleetCommand::Plan(a) => plan(a),
        FleetCommand::Jobs(a) => jobs(a),
    }
}

// ---------------------------------------------------------------------------------------------
// Names

/// FNV-1a: a stable short fingerprint of a context name (not a security boundary; it keeps
/// names that sanitize alike apart).
fn fingerprint(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", (h >> 32) ^ (h & 0xffff_ffff))
}

/// A file name for a context: letters, digits, `.`, `_` and `-` kept, anything else (a `/`, a
/// `..`, a control character) replaced, and a fingerprint appended whenever the name had to
/// change, so no context can name a path outside DIR or land on another's file.
pub(crate) fn file_stem(context: &str) -> String {
    let cleaned: String = context
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' })
        .take(100)
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned == context && !cleaned.is_empty() {
        cleaned
    } else {
        let base = if cleaned.is_empty() { "context".to_string() } else { cleaned };
        format!("{base}-{}", fingerprint(context))
    }
}

/// A DNS-1123 label of at most `max` characters for a context: lowercase letters, digits and
/// `-`, then the fingerprint, so every context gets its own.
pub(crate) fn dns_name(prefix: &str, context: &str, max: usize) -> String {
    let mut cleaned = String::new();
    for c in context.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if !(c == '-' && (cleaned.ends_with('-') || cleaned.is_empty())) {
            cleaned.push(c);
        }
    }
    let hash = fingerprint(context);
    let room = max.saturating_sub(prefix.len() + hash.len() + 2);
    let cleaned: String = cleaned.chars().take(room).collect();
    let cleaned = cleaned.trim_matches('-');
    if cleaned.is_empty() { format!("{prefix}-{hash}") } else { format!("{prefix}-{cleaned}-{hash}") }
}

/// Context text as one printable line (a kubeconfig is the user's file, but a table must not be
/// redrawn by an escape sequence in it).
fn printable(s: &str) -> String {
    super::printable::one_line(s)
}

// ---------------------------------------------------------------------------------------------
// fleet plan

/// Runs `f` over `items` with at most `limit` running at once, on threads of this process;
/// results come back in the order of `items`.
pub(crate) fn bounded<T: Sync, R: Send>(items: &[T], limit: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..limit.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().flatten().collect()
}

/// What became of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Planned, nothing blocks.
    Ready,
    /// Planned, with blockers.
    Blocked,
    /// Already at the target.
    AtTarget,
    /// Newer than the target: nothing to do (not a downgrade to plan).
    PastTarget,
    /// Could not be read or planned.
    Error,
}

/// One row of the fleet table (and of `-o json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub cluster: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distro: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hops: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blockers: Option<usize>,
    /// The first blocker's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_blocker: Option<String>,
    /// End of (standard) support of the version the cluster runs now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_of_support: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_file: Option<String>,
    /// Why the cluster could not be planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What else the row says (why there is nothing to do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Row {
    fn failed(cluster: &str, error: String) -> Row {
        Row {
            cluster: cluster.to_string(),
            status: Status::Error,
            distro: None,
            version: None,
            target: None,
            hops: None,
            blockers: None,
            first_blocker: None,
            end_of_support: None,
            plan_file: None,
            error: Some(error),
            note: None,
        }
    }

    fn planned(cluster: &str, plan: &Plan, catalog: &crate::catalog::Catalog) -> Row {
        let hops = plan.steps.iter().filter(|s| s.kind == StepKind::ControlPlane).count();
        let status = if plan.has_blockers() {
            Status::Blocked
        } else if plan.from >= plan.to {
            Status::AtTarget
        } else {
            Status::Ready
        };
        let end = catalog
            .distro(&plan.distro)
            .and_then(|d| crate::checks::end_of_support(catalog, d, plan.from.minor_version()))
            .map(|(standard, _)| standard.to_string());
        Row {
            cluster: cluster.to_string(),
            status,
            distro: Some(plan.distro.clone()),
            version: Some(plan.from.to_string()),
            target: Some(plan.to.to_string()),
            hops: Some(hops),
            blockers: Some(plan.summary.blockers),
            first_blocker: plan
                .findings
                .iter()
                .find(|f| f.severity == Severity::Blocker)
                .map(|f| format!("{}: {}", f.subject, f.message)),
            end_of_support: end,
            plan_file: None,
            error: None,
            note: None,
        }
    }

    fn note(&self) -> String {
        let text = match self.status {
            Status::Error => format!("error: {}", self.error.as_deref().unwrap_or_default()),
            Status::AtTarget => "at the target".to_string(),
            Status::PastTarget => format!("past the target ({})", self.note.as_deref().unwrap_or_default()),
            Status::Blocked => self.first_blocker.clone().unwrap_or_default(),
            Status::Ready => String::new(),
        };
        shorten(&printable(&text), 160)
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}

/// The fleet document `-o json` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FleetDocument<'a> {
    api_version: &'static str,
    kind: &'static str,
    target: &'a str,
    clusters: &'a [Row],
}

fn plan(args: FleetPlanArgs) -> Result<Exit, CliError> {
    let catalog = args.catalog.load()?;
    let inputs = PlanInputs {
        to: parse_target(&args.to)?,
        from: None,
        distro: None,
        kubelets: vec![],
        via: vec![],
        lts: false,
        scope: None,
        today: args.catalog.today()?,
    };
    let kc = args.targets.load()?;
    let contexts = args.targets.resolve(&kc)?;
    drop(kc);
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::error(format!("cannot create --out-dir {}: {e}", dir.display())))?;
    }
    let total = contexts.len();
    let done = AtomicUsize::new(0);
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} planning clusters {pos}/{len} ({elapsed}): {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let rows = bounded(&contexts, args.concurrency as usize, |context| {
        let row = plan_one(&args, &inputs, &catalog, context);
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        match &bar {
            Some(bar) => {
                bar.set_message(printable(context));
                bar.inc(1);
            }
            None => {
                let what = match row.status {
                    Status::Error => "error",
                    Status::Blocked => "blocked",
                    Status::AtTarget | Status::PastTarget => "nothing to do",
                    Status::Ready => "planned",
                };
                super::logging::say(&format!("fleet: {} {what} ({n}/{total})", printable(context)));
            }
        }
        row
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let text = match args.output {
        FleetFormat::Json | FleetFormat::Yaml => {
            let doc = FleetDocument {
                api_version: crate::plan::API_VERSION,
                kind: "FleetPlan",
                target: &args.to,
                clusters: &rows,
            };
            if args.output == FleetFormat::Json { render::json(&doc)? } else { render::yaml(&doc)? }
        }
        FleetFormat::Table => table(&rows),
    };
    print_stdout(&text)?;
    Ok(exit_of(&rows))
}

/// 3 when a cluster blocks (it needs work before anything else), else 1 when one failed.
fn exit_of(rows: &[Row]) -> Exit {
    if rows.iter().any(|r| r.status == Status::Blocked) {
        Exit::Blockers
    } else if rows.iter().any(|r| r.status == Status::Error) {
        Exit::Error
    } else {
        Exit::Success
    }
}

fn plan_one(args: &FleetPlanArgs, inputs: &PlanInputs, catalog: &crate::catalog::Catalog, context: &str) -> Row {
    let source = SourceArgs {
        kube: KubeArgs {
            kubeconfig: args.targets.kubeconfig.clone(),
            context: Some(context.to_string()),
            exec_timeout: args.exec_timeout,
            connect_timeout: args.connect_timeout,
            request_timeout: args.request_timeout,
        },
        simulate: None,
        inventory: None,
        manifests: vec![],
        max_manifest_bytes: 64 * 1024 * 1024,
        dry_run_evictions: false,
        quiet: true,
        node_events: false,
    };
    let inv = match source.collect(catalog, true) {
        Ok(inv) => inv,
        Err(e) => return Row::failed(context, e.message),
    };
    let plan = match plan_inventory(inputs, &inv, catalog) {
        Ok(Ok(plan)) => plan,
        // Newer than the target: nothing to do here, which is no failure.
        Ok(Err(crate::graph::PathError::Downgrade { from, to })) => {
            // As the plan names versions: without the `v` and the distro's suffix.
            let from = from.without_suffix();
            return Row {
                status: Status::PastTarget,
                distro: super::source::infer_distro(&inv).map(str::to_string),
                version: Some(from.to_string()),
                target: Some(to.to_string()),
                error: None,
                note: Some(format!("{from} is newer than {to}")),
                ..Row::failed(context, String::new())
            };
        }
        Ok(Err(e)) => return Row::failed(context, first_line(&e.to_string())),
        Err(e) => return Row::failed(context, e.message),
    };
    let mut row = Row::planned(context, &plan, catalog);
    if let Some(dir) = &args.out_dir {
        let path = dir.join(format!("{}.plan.json", file_stem(context)));
        match write_plan(&plan, &path) {
            Ok(()) => row.plan_file = Some(path.display().to_string()),
            Err(e) => return Row::failed(context, e.message),
        }
    }
    row
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn write_plan(plan: &Plan, path: &Path) -> Result<(), CliError> {
    let text = render::json(plan)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| CliError::error(format!("cannot write the plan to {}: {e}", path.display())))
}

fn table(rows: &[Row]) -> String {
    let dash = || "-".to_string();
    let mut cells = vec![
        ["CLUSTER", "DISTRO", "VERSION", "TARGET", "HOPS", "BLOCKERS", "END OF SUPPORT", "NOTE"]
            .map(String::from)
            .to_vec(),
    ];
    for r in rows {
        cells.push(vec![
            shorten(&printable(&r.cluster), 60),
            r.distro.clone().unwrap_or_else(dash),
            r.version.clone().unwrap_or_else(dash),
            r.target.clone().unwrap_or_else(dash),
            r.hops.map_or_else(dash, |h| h.to_string()),
            r.blockers.map_or_else(dash, |b| b.to_string()),
            r.end_of_support.clone().unwrap_or_else(dash),
            r.note(),
        ]);
    }
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    let mut out = render::columns(&cells);
    out.push_str(&format!(
        "\n{} cluster(s): {} ready, {} blocked, {} with nothing to do, {} failed\n",
        rows.len(),
        count(Status::Ready),
        count(Status::Blocked),
        count(Status::AtTarget) + count(Status::PastTarget),
        count(Status::Error)
    ));
    out
}

// ---------------------------------------------------------------------------------------------
// fleet jobs

fn read_inlined(context: &str, what: &str, path: &str) -> Result<Vec<u8>, CliError> {
    let refuse = |why: String| {
        CliError::error(format!(
            "context '{}': cannot inline its {what} file {path}: {why}; a pod cannot read files of this machine",
            printable(context)
        ))
    };
    crate::limits::read(std::path::Path::new(path), what, MAX_INLINED_BYTES).map_err(|e| refuse(e.to_string()))
}

/// The kubeconfig of one context, alone and self-contained (every file inlined), as a JSON
/// value; refused, naming the context, when its credential cannot work inside a pod.
pub(crate) fn minify(kc: &Kubeconfig, context: &str) -> Result<Value, CliError> {
    let ctx_name = printable(context);
    let refuse = |why: &str| CliError::error(format!("context '{ctx_name}': {why}"));
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| refuse("not in the kubeconfig"))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| refuse(&format!("its cluster '{}' is not in the kubeconfig", printable(&ctx.cluster))))?;
    let user_name = ctx.user.clone().unwrap_or_default();
    let user = kc
        .auth_infos
        .iter()
        .find(|u| u.name == user_name)
        .and_then(|u| u.auth_info.clone())
        .ok_or_else(|| refuse("has no user, so the Job would reach the cluster anonymously"))?;
    let b64 = base64::engine::general_purpose::STANDARD;

    let server = cluster.server.clone().ok_or_else(|| refuse("its cluster has no server"))?;
    let mut c = serde_json::Map::new();
    c.insert("server".into(), json!(server));
    match (&cluster.certificate_authority_data, &cluster.certificate_authority) {
        (Some(data), _) => {
            c.insert("certificate-authority-data".into(), json!(data));
        }
        (None, Some(path)) => {
            let ca = read_inlined(context, "certificate-authority", path)?;
            c.insert("certificate-authority-data".into(), json!(b64.encode(ca)));
        }
        (None, None) => {}
    }
    if cluster.insecure_skip_tls_verify == Some(true) {
        c.insert("insecure-skip-tls-verify".into(), json!(true));
    }
    if let Some(name) = &cluster.tls_server_name {
        c.insert("tls-server-name".into(), json!(name));
    }
    if let Some(proxy) = &cluster.proxy_url {
        c.insert("proxy-url".into(), json!(proxy));
    }

    if let Some(exec) = &user.exec {
        return Err(refuse(&format!(
            "its user runs the exec plugin '{}', which a pod does not have; give the Job a ServiceAccount token or a client certificate instead",
            printable(exec.command.as_deref().unwrap_or_default())
        )));
    }
    if let Some(provider) = &user.auth_provider {
        return Err(refuse(&format!(
            "its user uses the auth-provider '{}', which no longer works (kubectl 1.26 removed it); give the Job a ServiceAccount token or a client certificate",
            printable(&provider.name)
        )));
    }
    if user.username.is_some() || user.password.is_some() {
        return Err(refuse(
            "its user logs in with a username and password, which Kubernetes stopped accepting in 1.19; give the Job a ServiceAccount token or a client certificate",
        ));
    }
    let mut u = serde_json::Map::new();
    // kube keeps the token and key as secret strings; its serializer is the one way to read them.
    let exposed = serde_json::to_value(&user).unwrap_or(Value::Null);
    let secret_field = |k: &str| exposed.get(k).and_then(Value::as_str).map(str::to_string);
    match (secret_field("token"), &user.token_file) {
        (Some(token), _) => {
            u.insert("token".into(), json!(token));
        }
        (None, Some(path)) => {
            let token = read_inlined(context, "token", path)?;
            let token = String::from_utf8(token).map_err(|_| refuse(&format!("its token file {path} is not text")))?;
            u.insert("token".into(), json!(token.trim()));
        }
        (None, None) => {}
    }
    let cert = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(path)) => Some(b64.encode(read_inlined(context, "client-certificate", path)?)),
        (None, None) => None,
    };
    let key = match (secret_field("client-key-data"), &user.client_key) {
        (Some(d), _) => Some(d),
        (None, Some(path)) => Some(b64.encode(read_inlined(context, "client-key", path)?)),
        (None, None) => None,
    };
    match (cert, key) {
        (Some(cert), Some(key)) => {
            u.insert("client-certificate-data".into(), json!(cert));
            u.insert("client-key-data".into(), json!(key));
        }
        (None, None) => {}
        _ => {
            return Err(refuse("its user has a client certificate without its key (or a key without its certificate)"));
        }
    }
    if u.is_empty() {
        return Err(refuse(
            "its user has no token and no client certificate, so the Job would reach the cluster anonymously",
        ));
    }
    if let Some(who) = &user.impersonate {
        u.insert("as".into(), json!(who));
    }
    if let Some(groups) = &user.impersonate_groups {
        u.insert("as-groups".into(), json!(groups));
    }
    let mut context_body = json!({"cluster": "cluster", "user": "user"});
    if let Some(ns) = &ctx.namespace {
        context_body["namespace"] = json!(ns);
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": c}],
        "users": [{"name": "user", "user": u}],
        "contexts": [{"name": context, "context": context_body}],
        "current-context": context,
    }))
}

fn jobs(args: FleetJobsArgs) -> Result<Exit, CliError> {
    parse_target(&args.to)?;
    dns_label_flag("--namespace", &args.namespace)?;
    super::job::check_image("--image", &args.image)?;
    args.apply.validate()?;
    if args.out_dir.is_none() && std::io::stdout().is_terminal() {
        return Err(CliError::usage(
            "refusing to print kubeconfig Secrets (credentials) to a terminal; pipe into `kubectl apply -f -` or pass --out-dir DIR",
        ));
    }
    let kc = args.targets.load()?;
    let contexts = args.targets.resolve(&kc)?;
    // Every context first: one that cannot work stops the whole output, so nothing half-made
    // reaches `kubectl apply`.
    let mut per_cluster = Vec::new();
    for context in &contexts {
        let kubeconfig = minify(&kc, context)?;
        per_cluster.push((context, cluster_documents(&args, context, &kubeconfig)?));
    }
    match &args.out_dir {
        None => {
            let text: Vec<String> = per_cluster.into_iter().map(|(_, t)| t).collect();
            print_stdout(&text.join("---\n"))?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::error(format!("cannot create --out-dir {}: {e}", dir.display())))?;
            for (context, text) in per_cluster {
                let path = dir.join(format!("{}.yaml", file_stem(context)));
                write_private(&path, &text)?;
                super::logging::say(&format!("fleet: {} → {}", printable(context), path.display()));
            }
        }
    }
    Ok(Exit::Success)
}

/// The Secret and the Job of one cluster.
fn cluster_documents(args: &FleetJobsArgs, context: &str, kubeconfig: &Value) -> Result<String, CliError> {
    // Pods are named after their Job plus 6 characters; 52 keeps those within 63.
    let name = dns_name("k8s-upgrade", context, 52);
    let secret_name = format!("{name}-kubeconfig");
    let config = serde_json::to_string(kubeconfig).map_err(|e| CliError::error(format!("cannot render: {e}")))?;
    let annotations = json!({"k8s-upgrade.dev/context": context, "k8s-upgrade.dev/target": args.to});
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name,
            "namespace": args.namespace,
            "labels": {"app.kubernetes.io/name": "k8s-upgrade", "app.kubernetes.io/instance": name},
            "annotations": {"k8s-upgrade.dev/context": context},
        },
        "type": "Opaque",
        "data": {"config": base64::engine::general_purpose::STANDARD.encode(config)},
    });
    let mut argv = args.apply.argv(&args.to);
    argv.push("--kubeconfig".into());
    argv.push(format!("{KUBECONFIG_MOUNT}/config"));
    let job = job_manifest(&JobSpec {
        namespace: &args.namespace,
        name: &name,
        image: &args.image,
        args: argv,
        service_account: None,
        secret: Some((&secret_name, KUBECONFIG_MOUNT)),
        annotations,
    });
    documents(&[secret, job])
}

/// Writes a file only its owner can read (it holds credentials): a new file beside it, created
/// 0600 and never through an existing path (a planted symlink is not followed), renamed over.
fn write_private(path: &Path, text: &str) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| CliError::error(format!("cannot write {}: {e}", path.display()));
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(err)?;
    f.write_all(text.as_bytes()).and_then(|()| f.flush()).map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_never_leave_the_directory_and_never_collide() {
        assert_eq!(file_stem("prod-eu"), "prod-eu");
        for evil in [
            "../../etc/passwd",
            "..",
            ".",
            "/abs",
            "a/b",
            "a\\b",
            "x\u{1b}[2J",
            "",
            "arn:aws:eks:eu-west-1:1:cluster/prod",
        ] {
            let stem = file_stem(evil);
            assert!(
                !stem.contains('/') && !stem.contains('\\') && !stem.starts_with('.') && !stem.is_empty(),
                "{evil:?} → {stem}"
            );
            assert!(stem.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')), "{stem}");
        }
        assert_ne!(file_stem("a/b"), file_stem("a_b"));
        assert_ne!(file_stem("a/b"), file_stem("a:b"));
    }

    #[test]
    fn dns_names_are_labels_unique_per_context() {
        for ctx in
            ["prod-eu", "Prod_EU", "arn:aws:eks:eu-west-1:123456789012:cluster/prod", "---", "", &"x".repeat(300)]
        {
            let n = dns_name("k8s-upgrade", ctx, 52);
            assert!(super::super::job::is_dns_label(&n) && n.len() <= 52, "{ctx:?} → {n}");
        }
        assert_ne!(dns_name("k", "prod-eu", 52), dns_name("k", "Prod_EU", 52));
    }

    #[test]
    fn at_most_the_limit_runs_at_once_and_results_keep_their_order() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<usize> = (0..12).collect();
        let out = bounded(&items, 3, |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(30));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3, "three at once, never more");
        assert_eq!(bounded(&items, 1, |i| *i), items);
        assert!(bounded(&Vec::<usize>::new(), 4, |i| *i).is_empty());
    }

    #[test]
    fn exit_codes_put_blockers_before_failures() {
        let ok = Row { status: Status::Ready, ..Row::failed("a", String::new()) };
        let failed = Row::failed("b", "connection refused".into());
        let blocked = Row { status: Status::Blocked, ..Row::failed("c", String::new()) };
        assert_eq!(exit_of(std::slice::from_ref(&ok)), Exit::Success);
        assert_eq!(exit_of(&[ok.clone(), failed.clone()]), Exit::Error);
        assert_eq!(exit_of(&[ok, failed, blocked]), Exit::Blockers);
    }

    fn kubeconfig(user: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(&format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'https://127.0.0.1:6443', certificate-authority-data: Q0E=}}\nusers:\n- name: u\n  user: {user}\ncontexts:\n- name: prod\n  context: {{cluster: c, user: u, namespace: ops}}\ncurrent-context: prod\n"
        ))
        .unwrap()
    }

    #[test]
    fn minify_keeps_one_context_with_its_credential_inlined() {
        let kc = kubeconfig("{token: abc.def}");
        let m = minify(&kc, "prod").unwrap();
        assert_eq!(m["current-context"], "prod");
        assert_eq!(m["users"][0]["user"]["token"], "abc.def");
        assert_eq!(m["clusters"][0]["cluster"]["certificate-authority-data"], "Q0E=");
        assert_eq!(m["contexts"][0]["context"]["namespace"], "ops");
        let parsed = Kubeconfig::from_yaml(&m.to_string()).unwrap();
        assert_eq!(parsed.contexts.len(), 1);
    }

    #[test]
    fn credentials_that_cannot_work_in_a_pod_are_refused_naming_the_context() {
        for (user, needle) in [
            (
                "{exec: {apiVersion: client.authentication.k8s.io/v1, command: aws, args: [eks, get-token]}}",
                "exec plugin 'aws'",
            ),
            ("{auth-provider: {name: gcp}}", "auth-provider 'gcp'"),
            ("{username: admin, password: hunter2}", "username and password"),
            ("{}", "no token and no client certificate"),
            ("{client-certificate-data: Q0VSVA==}", "without its key"),
            ("{tokenFile: /nonexistent/token}", "/nonexistent/token"),
        ] {
            let e = minify(&kubeconfig(user), "prod").unwrap_err();
            assert!(e.message.starts_with("context 'prod': "), "{}", e.message);
            assert!(e.message.contains(needle), "{user}: {}", e.message);
            assert!(!e.message.contains("hunter2"));
        }
    }

    #[test]
    fn contexts_are_resolved_in_order_once_and_bounded() {
        let long = "x".repeat(MAX_CONTEXT_NAME + 1);
        let kc = Kubeconfig::from_yaml(&format!(
            "apiVersion: v1\nkind: Config\ncontexts:\n- name: a\n  context: {{cluster: c}}\n- name: b\n  context: {{cluster: c}}\n- name: {long}\n  context: {{cluster: c}}\n"
        ))
        .unwrap();
        let args = |contexts: &[&str], all: bool| ContextArgs {
            contexts: contexts.iter().map(|s| s.to_string()).collect(),
            all_contexts: all,
            kubeconfig: None,
        };
        assert_eq!(args(&["b", "a", "b", " a "], false).resolve(&kc).unwrap(), ["b", "a"]);
        let e = args(&[], true).resolve(&kc).unwrap_err();
        assert!(e.exit == Exit::Usage && e.message.contains("longer than 253 characters"), "{}", e.message);
        let e = args(&["c"], false).resolve(&kc).unwrap_err();
        assert!(e.message.contains("context 'c' is not in the kubeconfig"), "{}", e.message);
    }
}
