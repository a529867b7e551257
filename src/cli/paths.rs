//! `k8s-upgrade paths`: the supported route between two versions, or a distro's version list.

use clap::Args;
use serde::Serialize;

use super::args::{CatalogArgs, OutputFormat, parse_version_flag};
use super::render;
use super::{CliError, Exit, print_stdout};
use crate::catalog::{Catalog, Date, DistroFile, Offers};
use crate::graph::{self, Facts, PathRequest, Target};
use crate::version::{Minor, Version};

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Examples:\n  k8s-upgrade paths --distro kubeadm --from 1.29 --to 1.33\n  k8s-upgrade paths --distro generic --from 1.27.3 --to 1.31 --kubelet 1.27.3 -o json\n  k8s-upgrade paths --distro eks --from 1.30 --to latest -o dot | dot -Tsvg > path.svg\n  k8s-upgrade paths --distro aks --list"
)]
pub struct PathsArgs {
    /// Distribution whose rules apply: generic, kubeadm, eks, gke, aks, k3s, rke2.
    #[arg(long, value_name = "DISTRO", env = "K8S_UPGRADE_DISTRO")]
    pub distro: String,

    /// Version the cluster runs now (1.29 means its newest patch; v1.29.3-eks-4a1b2c3 works too).
    #[arg(long, value_name = "VERSION", required_unless_present = "list")]
    pub from: Option<String>,

    /// Version to reach, or `latest` for the newest version the distro offers.
    #[arg(long, value_name = "VERSION|latest", required_unless_present = "list")]
    pub to: Option<String>,

    /// Current kubelet version of a node pool (repeatable or comma-separated); default: --from.
    #[arg(long = "kubelet", value_name = "VERSION", value_delimiter = ',')]
    pub kubelets: Vec<String>,

    /// Pass through this version on the way (repeatable).
    #[arg(long, value_name = "VERSION", value_delimiter = ',')]
    pub via: Vec<String>,

    /// The cluster is on its provider's long-term-support plan (AKS LTS): minors may be skipped
    /// to a higher minor still in long-term support. The Kubernetes API does not say, so tell it.
    #[arg(long)]
    pub lts: bool,

    /// List the versions the distro offers, with their support dates, instead of a path.
    #[arg(long, conflicts_with_all = ["from", "to", "kubelets", "via"])]
    pub list: bool,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table, env = "K8S_UPGRADE_OUTPUT")]
    pub output: OutputFormat,

    #[command(flatten)]
    pub catalog: CatalogArgs,
}

pub fn run(args: PathsArgs) -> Result<Exit, CliError> {
    let catalog = args.catalog.load()?;
    let today = args.catalog.today()?;
    if args.list {
        let distro = catalog.distro(&args.distro).ok_or_else(|| {
            CliError::error(format!(
                "unknown distro '{}'; known distros: {}",
                args.distro,
                catalog.distro_names().join(", ")
            ))
        })?;
        let doc = version_list(&catalog, distro, today);
        let text = match args.output {
            OutputFormat::Table => render::versions_table(&doc),
            OutputFormat::Json => render::json(&doc)?,
            OutputFormat::Yaml => render::yaml(&doc)?,
            OutputFormat::Dot | OutputFormat::Mermaid => {
                return Err(CliError::usage("--list prints a table, json or yaml; dot and mermaid draw a path"));
            }
        };
        print_stdout(&text)?;
        return Ok(Exit::Success);
    }
    let request = build_request(&args, today)?;
    let path = graph::find_path(&catalog, &request)?;
    let text = match args.output {
        OutputFormat::Table => render::path_table(&path),
        OutputFormat::Json => render::json(&path)?,
        OutputFormat::Yaml => render::yaml(&path)?,
        OutputFormat::Dot => render::path_dot(&path),
        OutputFormat::Mermaid => render::path_mermaid(&path),
    };
    print_stdout(&text)?;
    Ok(Exit::Success)
}

fn build_request(args: &PathsArgs, today: Date) -> Result<PathRequest, CliError> {
    // clap guarantees both are present without --list.
    let from = parse_version_flag("--from", args.from.as_deref().unwrap_or_default())?;
    let to_raw = args.to.as_deref().unwrap_or_default();
    let to = to_raw.parse::<Target>().map_err(|e| CliError::usage(format!("--to: {e} (or `latest`)")))?;
    let kubelets =
        args.kubelets.iter().map(|k| parse_version_flag("--kubelet", k)).collect::<Result<Vec<Version>, _>>()?;
    let via = args.via.iter().map(|v| parse_version_flag("--via", v)).collect::<Result<Vec<Version>, _>>()?;
    Ok(PathRequest {
        distro: args.distro.clone(),
        from,
        to,
        via,
        kubelets,
        facts: Facts { lts: args.lts, ..Facts::default() },
        today,
    })
}

/// `kind: DistroVersions`: what a distro offers, with support status as of a day.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionList {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub distro: String,
    pub display_name: String,
    pub as_of: Date,
    pub data_date: Date,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support_policy: Option<String>,
    pub versions: Vec<OfferedVersion>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferedVersion {
    pub minor: Minor,
    pub latest_patch: Option<Version>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<Date>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_of_standard_support: Option<Date>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_of_extended_support: Option<Date>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    pub status: String,
    pub source: String,
}

fn version_list(catalog: &Catalog, distro: &DistroFile, today: Date) -> VersionList {
    let versions = catalog
        .offered_minors(distro)
        .into_iter()
        .rev()
        .map(|minor| {
            let dv = catalog.distro_version(distro, minor);
            let release = catalog.release(minor);
            let (released, std_end, ext_end) = match (distro.offers, dv) {
                (Offers::Listed, Some(dv)) => (dv.released, dv.end_of_standard_support, dv.end_of_extended_support),
                (_, dv) => (
                    dv.and_then(|d| d.released).or(release.map(|r| r.released)),
                    dv.and_then(|d| d.end_of_standard_support).or(release.and_then(|r| r.end_of_life)),
                    dv.and_then(|d| d.end_of_extended_support),
                ),
            };
            let status = support_status(today, released, std_end, ext_end);
            OfferedVersion {
                minor,
                latest_patch: catalog.latest_patch(distro, minor),
                released,
                end_of_standard_support: std_end,
                end_of_extended_support: ext_end,
                channels: dv.map(|d| d.channels.clone()).unwrap_or_default(),
                status,
                source: dv.map(|d| d.source.clone()).or(release.map(|r| r.source.clone())).unwrap_or_default(),
            }
        })
        .collect();
    VersionList {
        api_version: graph::API_VERSION,
        kind: "DistroVersions",
        distro: distro.name.clone(),
        display_name: distro.display_name.clone(),
        as_of: today,
        data_date: catalog.data_date(),
        support_policy: distro.support.as_ref().map(|s| s.policy.clone()),
        versions,
    }
}

fn support_status(today: Date, released: Option<Date>, std_end: Option<Date>, ext_end: Option<Date>) -> String {
    if released.is_some_and(|r| r > today) {
        return "not yet released".into();
    }
    match (std_end, ext_end) {
        (Some(s), _) if today <= s => format!("supported ({} days left)", today.days_until(s)),
        (Some(_), Some(e)) if today <= e => format!("extended support ({} days left)", today.days_until(e)),
        (Some(_), _) => "end of life".into(),
        (None, _) => "unknown (no end date in the catalog)".into(),
    }
}
