//! `k8s-upgrade helm-fix`: rewrite a Helm release whose stored manifest uses APIs the cluster
//! stops serving (what `helm mapkubeapis` does): prints the manifest diff, asks, then writes
//! revision N+1 and marks N superseded. The target defaults to the version the cluster runs now
//! (only the APIs it already does not serve), never to the newest release anyone offers: a
//! manifest moved to a version the cluster does not serve yet would break the release the other
//! way.

use std::sync::Arc;

use clap::Args;

use super::args::{CatalogArgs, KubeArgs, parse_version_flag};
use super::{CliError, Exit, print_stdout, prompt};
use crate::catalog::served::ServedApis;
use crate::helm::cluster::{self, FixError, Now};
use crate::helm::manifest::Target;

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "The diff shows the release manifest (what `helm get manifest` prints); values are never printed.\nExit codes: 0 done or nothing to do, 1 error, 2 usage.\n\nExamples:\n  k8s-upgrade helm-fix reports -n reports --dry-run\n  k8s-upgrade helm-fix reports -n reports --to 1.25 --yes\n  k8s-upgrade helm-fix reports -n reports --simulate --to 1.25 --yes"
)]
pub struct HelmFixArgs {
    /// The Helm release.
    #[arg(value_name = "RELEASE")]
    pub release: String,

    /// Its namespace (default: the kubeconfig context's namespace, else `default`).
    #[arg(short, long, value_name = "NAMESPACE", env = "K8S_UPGRADE_NAMESPACE")]
    pub namespace: Option<String>,

    /// Rewrite for this version: APIs it (or any version up to it) stops serving are moved.
    /// Default: the version the cluster runs now, i.e. only APIs it already does not serve.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,

    /// Print the diff and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Write without asking (needed when there is no terminal).
    #[arg(long, short = 'y', env = "K8S_UPGRADE_YES")]
    pub yes: bool,

    #[command(flatten)]
    pub kube: KubeArgs,

    /// Run against the built-in simulator (scenario demo, blocked, pools, large or a file).
    #[arg(long, value_name = "SCENARIO", num_args = 0..=1, default_missing_value = "demo", conflicts_with_all = ["kubeconfig", "context"])]
    pub simulate: Option<String>,

    #[command(flatten)]
    pub catalog: CatalogArgs,
}

pub fn run(args: HelmFixArgs) -> Result<Exit, CliError> {
    let catalog = args.catalog.load()?;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if !args.yes && !interactive && !args.dry_run {
        return Err(CliError::usage(
            "helm-fix asks before it writes a revision and there is no terminal: pass --yes to write it, or --dry-run to only see the diff",
        ));
    }
    let to = args.to.as_deref().map(|t| parse_version_flag("--to", t)).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::error(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        if let Some(scenario) = &args.simulate {
            let scenario = crate::sim::Scenario::load(scenario).map_err(|e| CliError::error(e.to_string()))?;
            let running = crate::sim::start(scenario, Arc::new(catalog.clone()), crate::sim::SimOptions::default())
                .await
                .map_err(|e| CliError::error(e.to_string()))?;
            let result = async {
                let conn = super::args::connect_simulator(&running).await?;
                fix(&args, &catalog, to, &conn.client, interactive).await
            }
            .await;
            running.shutdown().await.map_err(|e| CliError::error(e.to_string()))?;
            return result;
        }
        let conn = args.kube.connect().await?;
        fix(&args, &catalog, to, &conn.client, interactive).await
    })
}

async fn fix(
    args: &HelmFixArgs,
    catalog: &crate::catalog::Catalog,
    to: Option<crate::version::Version>,
    client: &kube::Client,
    interactive: bool,
) -> Result<Exit, CliError> {
    let server = client.apiserver_version().await.map_err(|e| {
        CliError::error(format!(
            "cannot read the cluster's version: {}",
            crate::kubeapi::errors::describe(&e, "the apiserver")
        ))
    })?;
    let current: crate::version::Version = server.git_version.parse().map_err(|e| {
        CliError::error(format!("the cluster reports the version '{}', which cannot be read: {e}", server.git_version))
    })?;
    let now = current.minor_version();
    let to_minor = to.as_ref().map_or(now, |v| v.minor_version());
    if to_minor < now {
        return Err(CliError::usage(format!(
            "--to {}: the cluster already runs {current}; give {now} or later (the default is {now}: only the APIs it already does not serve)",
            to.map(|v| v.to_string()).unwrap_or_default()
        )));
    }
    let namespace = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let target = Target::minor_by_minor(now, to_minor);
    let served = ServedApis::new(&catalog.apis);
    let fail = |e: FixError| CliError::error(e.to_string());
    let prepared =
        cluster::prepare(client, &served, &target, &namespace, &args.release, &Now::system()).await.map_err(fail)?;
    print_stdout(&prepared.diff)?;
    if prepared.is_noop() {
        super::logging::say(&prepared.summary(&to_minor.to_string()));
        return Ok(Exit::Success);
    }
    if args.dry_run {
        super::logging::say(&format!("dry run, nothing written: {}", prepared.summary(&to_minor.to_string())));
        return Ok(Exit::Success);
    }
    if !args.yes && interactive {
        let question = format!(
            "Write revision {} of Helm release {namespace}/{} and mark revision {} superseded?",
            prepared.next, args.release, prepared.base
        );
        let question = if prepared.changes.is_empty() {
            format!(
                "Mark revision(s) {} of Helm release {namespace}/{}, left deployed by a rewrite that stopped, superseded?",
                prepared.unfinished.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
                args.release
            )
        } else {
            question
        };
        if prompt::confirm(&question, &crate::exec::Cancel::new()).await != Some(true) {
            return Err(CliError { exit: Exit::Interrupted, message: "nothing written".into() });
        }
    }
    cluster::write(client, &prepared).await.map_err(fail)?;
    super::logging::say(&prepared.summary(&to_minor.to_string()));
    Ok(Exit::Success)
}
