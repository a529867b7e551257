//! Where the inventory comes from: a live cluster (kubeconfig/context), the built-in simulator
//! (`--simulate`), an inventory file, or nothing (offline), plus manifests. Shared by `plan` and
//! `inventory`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::CliError;
use super::args::{KubeArgs, connect_simulator};
use crate::catalog::Catalog;
use crate::inventory::{Inventory, live, manifests};

#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    #[command(flatten)]
    pub kube: KubeArgs,

    /// Run against the built-in simulator (scenario demo, blocked, pools, large or a file).
    #[arg(long, value_name = "SCENARIO", num_args = 0..=1, default_missing_value = "demo", conflicts_with_all = ["kubeconfig", "context", "inventory"])]
    pub simulate: Option<String>,

    /// Read an inventory saved with `k8s-upgrade inventory -o yaml` instead of a cluster.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kubeconfig", "context"])]
    pub inventory: Option<PathBuf>,

    /// Manifest file or directory to check too (repeatable; `-` reads stdin).
    #[arg(long = "manifests", value_name = "DIR|FILE|-")]
    pub manifests: Vec<PathBuf>,

    /// Largest manifest file (or stdin) read, in bytes or with a suffix (64Mi, 1Gi); a larger
    /// one is an error, never cut short.
    #[arg(long, value_name = "BYTES", default_value = "64Mi", value_parser = parse_max_manifest_bytes)]
    pub max_manifest_bytes: u64,

    /// Confirm drain blockers with the apiserver: one server dry-run eviction per
    /// PodDisruptionBudget (nothing is evicted; needs create on pods/eviction).
    #[arg(long)]
    pub dry_run_evictions: bool,

    /// No spinner even on a terminal: `fleet plan` reads several clusters at once and reports
    /// each as one line.
    #[arg(skip)]
    pub quiet: bool,

    /// Also read the Node events, for how long recent node restarts took (`rehearse`).
    #[arg(skip)]
    pub node_events: bool,
}

/// Largest inventory file read.
const MAX_INVENTORY_BYTES: u64 = 512 * 1024 * 1024;

/// Reads a saved inventory, JSON or YAML. The YAML parser's resource budget grows with the file
/// (already bounded by [`MAX_INVENTORY_BYTES`]), so the inventory of a large cluster reads back;
/// aliases keep the default limits, which are what stops an alias bomb.
/// Reads a saved inventory file given with `flag`.
pub fn read_inventory(path: &std::path::Path, flag: &str) -> Result<Inventory, CliError> {
    let text = crate::limits::read_text(path, flag, MAX_INVENTORY_BYTES).map_err(|e| CliError::error(e.to_string()))?;
    parse_inventory(&text).map_err(|e| CliError::error(format!("{flag} {}: {e}", path.display())))
}

pub fn parse_inventory(text: &str) -> Result<Inventory, String> {
    let first_line = |e: String| e.lines().next().unwrap_or_default().to_string();
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| first_line(e.to_string()));
    }
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(MAX_INVENTORY_BYTES as usize);
    budget.max_events = budget.max_events.max(text.len().saturating_mul(2));
    budget.max_nodes = budget.max_nodes.max(text.len());
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(text.len());
    let options = serde_saphyr::options! { budget: Some(budget), with_snippet: false };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| first_line(e.to_string()))
}

impl SourceArgs {
    /// True when a cluster (real or simulated) or an inventory file should be read even without
    /// `--from`.
    pub fn wants_cluster(&self, have_from: bool) -> bool {
        self.simulate.is_some()
            || self.kube.kubeconfig.is_some()
            || self.kube.context.is_some()
            || (!have_from && self.inventory.is_none())
    }

    /// Collects the inventory; `cluster` says whether to read a cluster at all.
    pub fn collect(&self, catalog: &Catalog, cluster: bool) -> Result<Inventory, CliError> {
        let mut inv = if let Some(path) = &self.inventory {
            read_inventory(path, "--inventory")?
        } else if cluster {
            self.collect_cluster(catalog)?
        } else {
            Inventory::default()
        };
        let options = manifests::ScanOptions { max_file_bytes: self.max_manifest_bytes };
        for m in &self.manifests {
            let summary = manifests::scan(m, &options, &mut inv).map_err(|e| CliError::error(e.to_string()))?;
            // Only a directory can pass files over; a file or stdin has nothing to add.
            if m.is_dir() {
                super::logging::say(&format!("--manifests {}: {summary}", m.display()));
            }
        }
        Ok(inv)
    }

    fn collect_cluster(&self, catalog: &Catalog) -> Result<Inventory, CliError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::error(format!("cannot start the async runtime: {e}")))?;
        let (options, bar) = self.collect_options();
        let result = runtime.block_on(async {
            if let Some(scenario) = &self.simulate {
                let scenario = crate::sim::Scenario::load(scenario).map_err(|e| CliError::error(e.to_string()))?;
                let running = crate::sim::start(scenario, Arc::new(catalog.clone()), crate::sim::SimOptions::default())
                    .await
                    .map_err(|e| CliError::error(e.to_string()))?;
                let result = async {
                    let conn = connect_simulator(&running).await?;
                    live::collect(&conn.client, catalog, &options)
                        .await
                        .map_err(|e| CliError::error(first_line(&e.to_string())))
                }
                .await;
                running.shutdown().await.map_err(|e| CliError::error(e.to_string()))?;
                return result;
            }
            let conn = self.kube.connect().await?;
            let (client, server) = (conn.client, conn.server);
            let deadline = std::time::Duration::from_secs(300);
            match tokio::time::timeout(deadline, live::collect(&client, catalog, &options)).await {
                Ok(Ok(inv)) => Ok(inv),
                Ok(Err(e)) => Err(CliError::error(first_line(&e.to_string()))),
                Err(_) => {
                    Err(CliError::error(format!("reading the cluster at {server} took longer than {deadline:?}")))
                }
            }
        });
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        result
    }

    /// Collector options, with a spinner that counts what has been listed when stderr is a
    /// terminal (nothing otherwise, so logs and pipes stay clean).
    fn collect_options(&self) -> (live::CollectOptions, Option<indicatif::ProgressBar>) {
        let mut options = live::CollectOptions {
            dry_run_evictions: self.dry_run_evictions,
            node_events: self.node_events,
            progress: None,
        };
        if self.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) || super::logging::logs_on_stderr() {
            return (options, None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} reading the cluster ({elapsed}): {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        let counts = std::sync::Mutex::new(BTreeMap::<String, usize>::new());
        let shown = bar.clone();
        options.progress = Some(Arc::new(move |what: &str, n: usize| {
            let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
            counts.insert(what.to_string(), n);
            let msg = counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(" · ");
            shown.set_message(msg);
        }));
        (options, Some(bar))
    }
}

fn parse_max_manifest_bytes(value: &str) -> Result<u64, String> {
    match crate::quantity::parse_bytes(value)? {
        0 => Err("0 bytes would refuse every manifest: give at least 1 (e.g. 64Mi)".into()),
        n => Ok(n),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// The distro a cluster's version string points to (`-eks-`, `-gke.`, `+k3s`, `+rke2`), or
/// kubeadm when control-plane static pods are visible, else generic.
pub fn infer_distro(inv: &Inventory) -> Option<&'static str> {
    let c = inv.cluster.as_ref()?;
    let suffix = c.server_version.as_ref().map(|v| v.suffix.clone()).unwrap_or_default();
    Some(if suffix.contains("-eks-") {
        "eks"
    } else if suffix.contains("-gke.") {
        "gke"
    } else if suffix.contains("+k3s") {
        "k3s"
    } else if suffix.contains("+rke2") {
        "rke2"
    } else if c.control_plane.iter().any(|p| p.component == "kube-apiserver") {
        "kubeadm"
    } else {
        "generic"
    })
}
