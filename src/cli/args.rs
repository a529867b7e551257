//! Flag groups shared by several commands, each flag with a `K8S_UPGRADE_*` env fallback.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::CliError;
use crate::catalog::{Catalog, Date, MAX_FILE_BYTES, SourceFile};
use crate::version::Version;

/// How to reach a cluster, as kubectl's flags say it.
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// Kubeconfig file (default: KUBECONFIG, merged, or ~/.kube/config).
    #[arg(long, value_name = "FILE", env = "K8S_UPGRADE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use (default: its current-context).
    #[arg(long, value_name = "NAME", env = "K8S_UPGRADE_CONTEXT")]
    pub context: Option<String>,

    /// Longest a kubeconfig `exec` credential plugin may run before it is killed (default 60s,
    /// 5m when it may prompt on a terminal).
    #[arg(long, value_name = "DURATION", env = "K8S_UPGRADE_EXEC_TIMEOUT", value_parser = super::apply::parse_duration)]
    pub exec_timeout: Option<std::time::Duration>,

    /// Longest reaching the server may take: connection, TLS handshake and its first answer.
    #[arg(long, value_name = "DURATION", default_value = "20s", env = "K8S_UPGRADE_CONNECT_TIMEOUT", value_parser = super::apply::parse_duration)]
    pub connect_timeout: std::time::Duration,

    /// Longest one API request may take, its whole answer included (as kubectl's flag; 0: no
    /// limit). Watches are not bounded by it; one silent for 150s is cut and started again.
    #[arg(long, value_name = "DURATION", default_value = "60s", env = "K8S_UPGRADE_REQUEST_TIMEOUT", value_parser = super::apply::parse_duration)]
    pub request_timeout: std::time::Duration,
}

impl KubeArgs {
    /// Connects as these flags say, checking the server once; errors are one line. In a pod,
    /// with no kubeconfig named (no --kubeconfig, --context or KUBECONFIG), as its ServiceAccount.
    pub async fn connect(&self) -> Result<crate::kubeapi::Connection, CliError> {
        let opts = crate::kubeapi::ConnectOptions {
            context: self.context.clone(),
            exec_timeout: self.exec_timeout,
            connect_timeout: Some(self.connect_timeout),
            request_timeout: (!self.request_timeout.is_zero()).then_some(self.request_timeout),
            watch_silence: None,
        };
        let source = match self.in_cluster() {
            Some(ic) => crate::kubeapi::KubeconfigSource::InCluster(ic),
            None => crate::kubeapi::KubeconfigSource::from_flag(self.kubeconfig.as_deref()),
        };
        crate::kubeapi::connect(source, &opts).await.map_err(|e| CliError::error(e.to_string()))
    }

    /// The pod's ServiceAccount, when this runs in a pod and no kubeconfig was named (as
    /// client-go falls back to the in-cluster config only then).
    pub fn in_cluster(&self) -> Option<crate::kubeapi::incluster::InCluster> {
        let kubeconfig_env = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
        if self.kubeconfig.is_some() || self.context.is_some() || kubeconfig_env {
            return None;
        }
        crate::kubeapi::incluster::detect()
    }
}

/// Connects to a simulator started in this process, with the credential its scenario names,
/// handing the kubeconfig over in memory.
pub async fn connect_simulator(running: &crate::sim::Running) -> Result<crate::kubeapi::Connection, CliError> {
    let kubeconfig = running.kubeconfig(&running.default_credential()).map_err(|e| CliError::error(e.to_string()))?;
    crate::kubeapi::connect(
        crate::kubeapi::KubeconfigSource::Inline(Box::new(kubeconfig)),
        &crate::kubeapi::ConnectOptions {
            request_timeout: Some(crate::kubeapi::client::REQUEST_TIMEOUT),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| CliError::error(e.to_string()))
}

/// Where the upgrade-paths data comes from.
#[derive(Debug, Clone, Args)]
pub struct CatalogArgs {
    /// Read upgrade-paths data from DIR instead of the copy built into the binary.
    #[arg(long = "paths", value_name = "DIR", env = "K8S_UPGRADE_PATHS")]
    pub paths: Option<PathBuf>,

    /// Evaluate support dates as of this day (YYYY-MM-DD) instead of today.
    #[arg(long, value_name = "DATE", env = "K8S_UPGRADE_TODAY", hide = true)]
    pub today: Option<String>,
}

impl CatalogArgs {
    pub fn load(&self) -> Result<Catalog, CliError> {
        match &self.paths {
            None => Ok(Catalog::embedded()?),
            Some(dir) => Ok(Catalog::from_sources(&dir.display().to_string(), read_catalog_dir(dir)?)?),
        }
    }

    pub fn today(&self) -> Result<Date, CliError> {
        match &self.today {
            Some(s) => s.parse().map_err(|e| CliError::usage(format!("--today: {e}"))),
            None => Ok(today_utc()),
        }
    }
}

/// Today's date in UTC from the system clock.
pub fn today_utc() -> Date {
    Date::from_timestamp(jiff::Timestamp::now()).unwrap_or(Date::UNIX_EPOCH)
}

fn read_file_bounded(path: &Path) -> Result<String, CliError> {
    crate::limits::read_text(path, "catalog file", MAX_FILE_BYTES).map_err(|e| CliError::error(e.to_string()))
}

/// Reads `kubernetes.yaml`, `skew.yaml`, `apis.yaml`, `addons.yaml` and `distros/*.yaml`.
fn read_catalog_dir(dir: &Path) -> Result<Vec<SourceFile>, CliError> {
    if !dir.is_dir() {
        return Err(CliError::error(format!(
            "--paths {}: not a directory; point it at a copy of upgrade-paths/",
            dir.display()
        )));
    }
    let mut files = Vec::new();
    for name in crate::catalog::CORE_FILES {
        let path = dir.join(name);
        if path.exists() {
            files.push(SourceFile { name: name.to_string(), text: read_file_bounded(&path)? });
        }
    }
    let distros = dir.join("distros");
    if let Ok(entries) = std::fs::read_dir(&distros) {
        let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")).take(256) {
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else { continue };
            let name = format!("distros/{file}");
            let text = read_file_bounded(&path)?;
            files.push(SourceFile { name, text });
        }
    }
    Ok(files)
}

/// `-o/--output` for documents that can also be drawn as a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
    Dot,
    Mermaid,
}

/// Parses a version flag value, naming the flag and the value on failure (exit 2).
pub fn parse_version_flag(flag: &str, value: &str) -> Result<Version, CliError> {
    value.parse().map_err(|e| CliError::usage(format!("{flag}: {e}")))
}
