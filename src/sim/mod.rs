//! The Kubernetes API simulator behind `k8s-upgrade simulate` and `--simulate`.
//!
//! It owns an in-memory apiserver that speaks the real REST API over HTTP on loopback (JSON
//! bodies, resourceVersions, Status errors, pagination, selectors, patches, watches, discovery
//! that follows the simulated version, server-side Tables, the Eviction subresource with real
//! PodDisruptionBudget semantics), plus the controllers and kubelets that make it behave like a
//! cluster: deployments own replica sets own pods, a scheduler binds pods to nodes with room,
//! kubelets start and stop pods and restart themselves at a new version when asked. Faults can be
//! injected, and `/sim/stats` reports what happened, including safety violations. Real `kubectl`
//! and `kube::runtime::watcher` are its proof (see `tests/it/`).

mod api;
mod clock;
mod controllers;
pub mod faults;
mod patch;
mod pdb;
pub mod registry;
pub mod scenario;
mod selectors;
pub mod stats;
mod status;
mod store;
mod tables;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

pub use faults::Faults;
pub use scenario::{Scenario, ScenarioError};
pub use store::StorageKey;

use crate::catalog::Catalog;
use crate::version::{Minor, Version};
use registry::{ExtraKind, Registry};
use stats::Stats;
use store::Store;

/// Annotation that asks a simulated kubelet to restart at a new version.
pub const UPGRADE_ANNOTATION: &str = "sim.k8s-upgrade.dev/upgrade-to";

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    #[error("refusing to listen on {0}: the simulator binds loopback addresses only (127.0.0.1, ::1)")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: SocketAddr, message: String },
    #[error("cannot write kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
}

/// Delays of the simulated cluster, in seconds before `--time-scale`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Timings {
    /// From binding to Running and Ready.
    pub pod_start_seconds: f64,
    /// A kubelet restart during an upgrade (NotReady for this long).
    pub node_restart_seconds: f64,
    /// The API answers 503 this long while an apiserver restarts.
    pub apiserver_restart_seconds: f64,
    /// Grace period when a pod does not set one.
    pub default_grace_seconds: f64,
    /// Cap on any pod's termination (so a 1-hour grace period does not stall a demo).
    pub max_grace_seconds: f64,
    /// Interval of watch bookmarks.
    pub bookmark_seconds: f64,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            pod_start_seconds: 2.0,
            node_restart_seconds: 10.0,
            apiserver_restart_seconds: 2.0,
            default_grace_seconds: 3.0,
            max_grace_seconds: 30.0,
            bookmark_seconds: 10.0,
        }
    }
}

/// The simulated cluster.
pub struct Sim {
    pub store: Arc<Store>,
    pub catalog: Arc<Catalog>,
    pub registry: RwLock<Arc<Registry>>,
    pub extras: Vec<ExtraKind>,
    pub stats: Stats,
    pub faults: RwLock<Faults>,
    pub timings: Timings,
    pub time_scale: f64,
    pub distro: String,
    /// Version reported when no control-plane node runs an apiserver (managed clusters).
    pub managed_version: RwLock<Version>,
    pub blip_until: Mutex<Option<Instant>>,
    pub fault_counter: AtomicU64,
    /// Bumped when faults change, so controllers re-evaluate (a cleared fault frees stuck work).
    pub fault_epoch: AtomicU64,
    pub changed: Notify,
    /// Serialises evictions, so two concurrent evictions cannot both spend one disruption.
    pub eviction_lock: Mutex<()>,
    pub started: Instant,
}

impl Sim {
    /// A simulated duration scaled to wall time.
    pub fn scaled(&self, secs: f64) -> Duration {
        // Bounded so that no configured delay can overflow an Instant (ten years is "never").
        Duration::from_secs_f64((secs * self.time_scale).clamp(0.0, 315_360_000.0))
    }

    pub fn faults(&self) -> Faults {
        self.faults.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The version `/version` reports: the oldest apiserver.
    pub fn server_version(&self) -> Version {
        controllers::oldest_apiserver(self)
            .unwrap_or_else(|| self.managed_version.read().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Rebuilds the served resources when the apiserver minor changed.
    pub fn refresh_registry(&self) {
        let minor: Minor = self.server_version().minor_version();
        if self.registry().minor != minor {
            let reg = Registry::for_version(minor, &self.catalog, &self.extras);
            *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(reg);
        }
    }

    pub fn in_blip(&self) -> bool {
        self.blip_until.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| Instant::now() < t)
    }

    pub fn start_blip(&self) {
        let until = Instant::now() + self.scaled(self.timings.apiserver_restart_seconds);
        *self.blip_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(until);
    }
}

/// Options for [`start`].
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub listen: SocketAddr,
    pub time_scale: f64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions { listen: SocketAddr::from(([127, 0, 0, 1], 0)), time_scale: 1.0 }
    }
}

/// A running simulator; dropping it (or [`Running::shutdown`]) stops the server and controllers.
pub struct Running {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    controllers: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(c) = self.controllers.take() {
            c.abort();
        }
        if let Some(s) = self.server.take() {
            // Long-lived watch streams would hold a graceful shutdown for minutes: give open
            // requests a moment, then cut them.
            let abort = s.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_millis(500), s).await.is_err() {
                abort.abort();
            }
        }
    }

    /// Writes a kubeconfig pointing at this simulator.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SimError> {
        write_kubeconfig(path, &self.url())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(c) = self.controllers.take() {
            c.abort();
        }
    }
}

/// The kubeconfig kubectl and kube-rs accept for a plain-HTTP loopback server.
pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: k8s-upgrade-sim\n  cluster:\n    server: {url}\ncontexts:\n- name: k8s-upgrade-sim\n  context:\n    cluster: k8s-upgrade-sim\n    user: k8s-upgrade-sim\n    namespace: default\ncurrent-context: k8s-upgrade-sim\nusers:\n- name: k8s-upgrade-sim\n  user: {{}}\npreferences: {{}}\n"
    )
}

pub fn write_kubeconfig(path: &Path, url: &str) -> Result<(), SimError> {
    let err = |e: std::io::Error| SimError::Kubeconfig { path: path.display().to_string(), message: e.to_string() };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, kubeconfig_yaml(url)).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Builds the simulated cluster from a scenario and serves it.
pub async fn start(scenario: Scenario, catalog: Arc<Catalog>, opts: SimOptions) -> Result<Running, SimError> {
    if !opts.listen.ip().is_loopback() {
        return Err(SimError::NotLoopback(opts.listen));
    }
    let sim = Arc::new(scenario::build(scenario, catalog, opts.time_scale)?);
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| SimError::Bind { addr: opts.listen, message: e.to_string() })?;
    let addr = listener.local_addr().map_err(|e| SimError::Bind { addr: opts.listen, message: e.to_string() })?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let app = api::router(sim.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await;
    });
    let controllers = tokio::spawn(controllers::run(sim.clone()));
    Ok(Running { addr, sim, stop: Some(stop_tx), server: Some(server), controllers: Some(controllers) })
}
