//! `k8s-upgrade plan`: the upgrade plan for a path, with every finding placed on its hop.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::args::{CatalogArgs, parse_version_flag};
use super::source::{SourceArgs, infer_distro};
use super::{CliError, Exit, print_stdout, render};
use crate::graph::{Facts, PathRequest, Target};
use crate::plan::Plan;
use crate::version::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Table,
    Json,
    Yaml,
    Markdown,
    /// One self-contained page: the path as a picture, blockers, findings by hop, steps.
    Html,
}

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Exit codes: 0 nothing blocking, 1 error, 2 usage, 3 blockers found.\n\nExamples:\n  k8s-upgrade plan --distro kubeadm --from 1.21.5 --to 1.33 --manifests ./deploy\n  helm template ./chart | k8s-upgrade plan --distro eks --from 1.24 --to 1.29 --manifests - -o json"
)]
pub struct PlanArgs {
    /// Distribution whose rules apply: generic, kubeadm, eks, gke, aks, k3s, rke2 (default: from
    /// the cluster's version string).
    #[arg(long, value_name = "DISTRO", env = "K8S_UPGRADE_DISTRO")]
    pub distro: Option<String>,

    /// Version the cluster runs now (default: read from the cluster).
    #[arg(long, value_name = "VERSION")]
    pub from: Option<String>,

    /// Version to reach, or `latest`.
    #[arg(long, value_name = "VERSION|latest")]
    pub to: String,

    /// Current kubelet version of a node pool (repeatable); default: --from.
    #[arg(long = "kubelet", value_name = "VERSION", value_delimiter = ',')]
    pub kubelets: Vec<String>,

    /// Pass through this version on the way (repeatable).
    #[arg(long, value_name = "VERSION", value_delimiter = ',')]
    pub via: Vec<String>,

    /// The cluster is on its provider's long-term-support plan (AKS LTS): minors may be skipped
    /// to a higher minor still in long-term support. The Kubernetes API does not say, so tell it.
    #[arg(long)]
    pub lts: bool,

    /// Judge the drains as `apply --pod-selector` runs them: only the pods this label selector
    /// selects are evicted, so only they can stop a drain.
    #[arg(long, value_name = "SELECTOR")]
    pub pod_selector: Option<String>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = PlanFormat::Table, env = "K8S_UPGRADE_OUTPUT")]
    pub output: PlanFormat,

    /// Also write the plan document (YAML) to FILE.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,

    /// Also write the plan as one self-contained HTML page (as `-o html`) to FILE.
    #[arg(long, value_name = "FILE")]
    pub save_html: Option<PathBuf>,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub catalog: CatalogArgs,
}

/// The request of one plan, validated from flags; `fleet plan` builds one for every cluster.
pub(crate) struct PlanInputs {
    pub to: Target,
    pub from: Option<Version>,
    pub distro: Option<String>,
    pub kubelets: Vec<Version>,
    pub via: Vec<Version>,
    pub lts: bool,
    pub scope: Option<crate::labels::LabelSelector>,
    pub today: crate::catalog::Date,
}

impl PlanArgs {
    fn inputs(&self, today: crate::catalog::Date) -> Result<PlanInputs, CliError> {
        Ok(PlanInputs {
            to: parse_target(&self.to)?,
            from: self.from.as_deref().map(|f| parse_version_flag("--from", f)).transpose()?,
            distro: self.distro.clone(),
            kubelets: self
                .kubelets
                .iter()
                .map(|k| parse_version_flag("--kubelet", k))
                .collect::<Result<Vec<Version>, _>>()?,
            via: self.via.iter().map(|v| parse_version_flag("--via", v)).collect::<Result<Vec<Version>, _>>()?,
            lts: self.lts,
            scope: match &self.pod_selector {
                None => None,
                Some(s) => Some(
                    crate::labels::LabelSelector::parse(s)
                        .map_err(|e| CliError::usage(format!("--pod-selector '{s}': {e}")))?,
                ),
            },
            today,
        })
    }
}

/// `--to` as `plan` reads it: a version or `latest` (exit 2 naming the value otherwise).
pub(crate) fn parse_target(to: &str) -> Result<Target, CliError> {
    to.parse::<Target>().map_err(|e| CliError::usage(format!("--to: {e} (or `latest`)")))
}

/// Reads one source and plans it: the single path `plan` and `fleet plan` share.
pub(crate) fn plan_source(
    inputs: &PlanInputs,
    source: &SourceArgs,
    catalog: &crate::catalog::Catalog,
) -> Result<(crate::inventory::Inventory, Plan), CliError> {
    let inv = source.collect(catalog, source.wants_cluster(inputs.from.is_some()))?;
    let plan = plan_inventory(inputs, &inv, catalog)??;
    Ok((inv, plan))
}

/// Plans a collected inventory. The outer error is about the inputs (no version, no distro);
/// the inner result is the planner's, kept typed so `fleet plan` can tell a cluster already past
/// the target (a refused downgrade) from a failure.
#[allow(clippy::result_large_err)] // as `plan::plan`
pub(crate) fn plan_inventory(
    inputs: &PlanInputs,
    inv: &crate::inventory::Inventory,
    catalog: &crate::catalog::Catalog,
) -> Result<Result<Plan, crate::graph::PathError>, CliError> {
    let from =
        match inputs.from.clone().or_else(|| inv.cluster.as_ref().and_then(crate::checks::skew::oldest_apiserver)) {
            Some(v) => v,
            None => {
                return Err(CliError::usage(
                    "no --from given and no cluster read; pass --from VERSION or point at a cluster",
                ));
            }
        };
    let distro = match inputs.distro.clone().or_else(|| infer_distro(inv).map(str::to_string)) {
        Some(d) => d,
        None => {
            return Err(CliError::usage(
                "no --distro given; pass --distro (generic, kubeadm, eks, gke, aks, k3s, rke2)",
            ));
        }
    };
    let req = PathRequest {
        distro,
        from,
        to: inputs.to.clone(),
        via: inputs.via.clone(),
        kubelets: inputs.kubelets.clone(),
        facts: Facts { lts: inputs.lts, ..Facts::default() },
        today: inputs.today,
    };
    Ok(crate::plan::plan_drain_scoped(inv, catalog, &req, inputs.scope.as_ref()))
}

pub fn run(args: PlanArgs) -> Result<Exit, CliError> {
    let catalog = args.catalog.load()?;
    let inputs = args.inputs(args.catalog.today()?)?;
    if let Some(from) = &inputs.from
        && let Some(known) = catalog.release(from.minor_version()).map(|r| r.latest_patch.without_suffix())
        && !from.is_minor_only()
        && from.without_suffix() > known
    {
        super::logging::warn(&format!(
            "--from {from}: no such release is known; the newest {} patch in the catalog (data of {}) is {known}; check the version, or update the catalog if it is newer",
            from.minor_version(),
            catalog.data_date()
        ));
    }
    let (inv, plan) = plan_source(&inputs, &args.source, &catalog)?;
    for w in &inv.warnings {
        super::logging::warn(&w.to_string());
    }
    if let Some(path) = &args.save {
        save(&plan, path)?;
    }
    let generated = || render::html::generated_at(crate::exec::journal::Stamp::now());
    if let Some(path) = &args.save_html {
        write_atomically(path, &render::html::plan_html(&plan, &generated())).map_err(|e| {
            CliError::error(format!(
                "--save-html {}: {e}; check that its directory exists and is writable",
                path.display()
            ))
        })?;
    }
    let text = match args.output {
        PlanFormat::Table => render::plan_table(&plan),
        PlanFormat::Json => render::json(&plan)?,
        PlanFormat::Yaml => render::yaml(&plan)?,
        PlanFormat::Markdown => render::plan_markdown(&plan),
        PlanFormat::Html => render::html::plan_html(&plan, &generated()),
    };
    print_stdout(&text)?;
    let exit = if plan.has_blockers() { Exit::Blockers } else { Exit::Success };
    // The process ends right after this: freeing a large inventory and plan object by object
    // (hundreds of thousands of findings on a big manifest tree) costs a noticeable fraction of
    // the run and returns nothing the operating system does not reclaim anyway.
    std::mem::forget((inv, plan, text));
    Ok(exit)
}

/// Writes `text` to `path` through a temp file beside it and a rename, so a reader (or a crash)
/// sees the old file or the new one, never half of one.
pub(crate) fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let name = path.file_name().ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes the plan document (YAML) to `path` atomically (see [`write_atomically`]).
pub(crate) fn save(plan: &Plan, path: &std::path::Path) -> Result<(), CliError> {
    write_atomically(path, &render::yaml(plan)?).map_err(|e| {
        CliError::error(format!(
            "cannot save the plan to {}: {e}; check that its directory exists and is writable",
            path.display()
        ))
    })
}
