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
pub mod authn;
mod clock;
mod controllers;
mod delta;
pub mod faults;
mod jobs;
mod names;
mod node_jobs;
mod operator;
mod patch;
mod pdb;
mod placement;
mod pod_security;
pub mod pools;
mod proto;
pub mod rbac;
pub mod registry;
pub mod replicas;
pub mod scenario;
mod scenario_checks;
pub(crate) mod selectors;
mod serve;
pub mod stats;
mod status;
pub(crate) mod store;
mod tables;
pub mod tls;
pub mod token;
pub mod twin;
mod volumes;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{Notify, watch};

pub use faults::Faults;
pub use pod_security::violations as pod_security_violations;
pub use scenario::{Scenario, ScenarioError};
pub use store::StorageKey;

use crate::catalog::Catalog;
use crate::version::{Minor, Version};
use registry::{ExtraKind, Registry};
use stats::Stats;
use store::Store;

/// Annotation that asks a simulated kubelet to restart at a new version.
pub const UPGRADE_ANNOTATION: &str = crate::k8s::annotations::SIM_UPGRADE_TO;

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
    #[error("simulator credentials: {0}")]
    Credential(String),
    /// The controllers panicked: the simulated cluster stopped serving rather than go on
    /// without them.
    #[error("the simulator failed: its controllers panicked ({0}); the simulated cluster stopped serving")]
    ControllersFailed(String),
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
    /// From the last pod on a node letting go of a block volume to its VolumeAttachment being
    /// gone (the CSI driver's detach).
    pub volume_detach_seconds: f64,
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
            volume_detach_seconds: 5.0,
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
    /// Bearer tokens of the scenario's users and ServiceAccounts (tests may add more).
    pub tokens: authn::Tokens,
    /// RBAC as of the last change to a Role, ClusterRole or binding.
    /// The compiled snapshot and the RBAC generation it was built from.
    pub authorizer: RwLock<(u64, Arc<rbac::Authorizer>)>,
    /// Set by every write to an RBAC object; the next request rebuilds the authorizer.
    pub rbac_generation: AtomicU64,
    pub rbac_rebuild: Mutex<()>,
    pub access: scenario::Access,
    /// Container logs (the node jobs' lines), served at `pods/NAME/log`.
    pub pod_logs: node_jobs::PodLogs,
    /// Managed node-pool upgrades by pool (see [`pools`]).
    pub pools: Mutex<std::collections::BTreeMap<String, pools::PoolUpgrade>>,
    /// Most pods the controllers create (see [`replicas::POD_CEILING`]; tests lower it).
    pub pod_ceiling: std::sync::atomic::AtomicUsize,
    /// The controllers stand at the pod ceiling (reported once each time it is reached).
    pub pod_ceiling_reached: std::sync::atomic::AtomicBool,
    /// Unit tests only: the next controller pass panics.
    #[cfg(test)]
    pub(crate) test_panic_in_pass: std::sync::atomic::AtomicBool,
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

    /// The authorizer for the RBAC objects as stored now. After a write to any of them it first
    /// folds aggregated ClusterRoles (as kube-controller-manager's aggregation controller does),
    /// then compiles the bindings once; requests in between share the compiled snapshot.
    pub fn authorizer(&self) -> Arc<rbac::Authorizer> {
        use std::sync::atomic::Ordering;
        let current = || self.authorizer.read().unwrap_or_else(|p| p.into_inner()).clone();
        let (built, snapshot) = current();
        if built == self.rbac_generation.load(Ordering::Acquire) {
            return snapshot;
        }
        // A stale snapshot is never served: requests wait for the one rebuild under way, and
        // each rebuild records the generation it read, so an older one never lands last.
        let _rebuilding = self.rbac_rebuild.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.rbac_generation.load(Ordering::Acquire);
        let (built, snapshot) = current();
        if built == generation {
            return snapshot;
        }
        let cluster_roles_key = StorageKey::new("rbac.authorization.k8s.io", "clusterroles");
        let values = |k: &StorageKey| -> Vec<serde_json::Value> {
            self.store.all(k).iter().map(|o| o.value().into_owned()).collect()
        };
        for (name, rules) in rbac::aggregate(&values(&cluster_roles_key)) {
            let rules = serde_json::to_value(&rules).unwrap_or_default();
            let current = self.store.get(&cluster_roles_key, "", &name);
            if current.is_some_and(|c| c.value().get("rules") != Some(&rules)) {
                let _ = self.store.mutate(&cluster_roles_key, "", &name, None, false, |cur| {
                    cur["rules"] = rules.clone();
                    Ok(())
                });
            }
        }
        let a = Arc::new(rbac::Authorizer::new(
            &values(&StorageKey::new("rbac.authorization.k8s.io", "roles")),
            &values(&cluster_roles_key),
            &values(&StorageKey::new("rbac.authorization.k8s.io", "rolebindings")),
            &values(&StorageKey::new("rbac.authorization.k8s.io", "clusterrolebindings")),
        ));
        *self.authorizer.write().unwrap_or_else(|p| p.into_inner()) = (generation, a.clone());
        a
    }

    /// Called after every write to an RBAC object: the next request compiles the rules again.
    pub fn rbac_changed(&self) {
        self.rbac_generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub fn in_blip(&self) -> bool {
        self.blip_until.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| Instant::now() < t)
    }

    pub fn start_blip(&self) {
        let until = Instant::now() + self.scaled(self.timings.apiserver_restart_seconds);
        *self.blip_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(until);
    }
}

/// How the simulator talks to its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS with the simulator's own CA, as every real apiserver serves.
    Https(tls::ServingCert),
    /// Plain HTTP, for debugging with tools that cannot do TLS. Authentication still applies:
    /// requests without a bearer token are `system:anonymous`.
    PlainHttp,
}

impl Default for Transport {
    fn default() -> Self {
        Transport::Https(tls::ServingCert::Valid)
    }
}

/// Options for [`start`].
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub listen: SocketAddr,
    pub time_scale: f64,
    pub transport: Transport,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions { listen: SocketAddr::from(([127, 0, 0, 1], 0)), time_scale: 1.0, transport: Transport::default() }
    }
}

/// The admin a kubeconfig acts as unless the scenario names someone else: kubeadm's admin.conf
/// user since 1.29, bound to `cluster-admin` through the `kubeadm:cluster-admins` group.
pub const ADMIN_USER: &str = "kubernetes-admin";
pub const ADMIN_GROUP: &str = "kubeadm:cluster-admins";

/// How a kubeconfig authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A client certificate the simulator issues: CN = user, O = groups.
    ClientCert { user: String, groups: Vec<String> },
    /// A bearer token the simulator accepts.
    Token(String),
    /// Nothing: the requests are `system:anonymous`.
    None,
}

impl Credential {
    pub fn admin() -> Credential {
        Credential::ClientCert { user: ADMIN_USER.into(), groups: vec![ADMIN_GROUP.into()] }
    }
}

/// A running simulator; dropping it (or [`Running::shutdown`]) stops the server and controllers.
pub struct Running {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    pki: Option<Arc<tls::Pki>>,
    /// Over plain HTTP: a random token for the admin (made at start, known only to this process
    /// and the kubeconfig it writes).
    admin_token: Option<String>,
    /// Serving, stopping, or failed (the server stops on either of the last two).
    phase: Arc<watch::Sender<Phase>>,
    server: Option<tokio::task::JoinHandle<()>>,
    controllers: Option<tokio::task::AbortHandle>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
}

/// Where a running simulator is: the server serves while `Serving` and stops on anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Serving,
    Stopping,
    /// The controllers panicked, with this message.
    Failed(String),
}

/// Waits for the controllers' task to end. Only a shutdown ends it normally (by aborting it); a
/// panic fails the whole simulator at once: the panic hook has printed where, this prints what it
/// means, and the server stops, so that no client goes on talking to a cluster whose controllers
/// are gone. [`Running::failed`] and [`Running::shutdown`] report it to the caller.
async fn supervise(controllers: tokio::task::JoinHandle<()>, phase: Arc<watch::Sender<Phase>>) {
    let Err(e) = controllers.await else { return };
    if !e.is_panic() {
        return;
    }
    let payload = e.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    eprintln!("simulator: FATAL: the controllers panicked ({message}); the simulated cluster stops serving");
    phase.send_replace(Phase::Failed(message));
}

impl Running {
    pub fn url(&self) -> String {
        match self.pki {
            Some(_) => format!("https://{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// The cluster CA (PEM) clients must trust, when serving HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.pki.as_deref().map(tls::Pki::ca_pem)
    }

    /// A client certificate for `user` in `groups`, signed by the cluster CA.
    pub fn issue_client_cert(&self, user: &str, groups: &[String]) -> Result<tls::ClientCert, SimError> {
        let pki =
            self.pki.as_ref().ok_or_else(|| SimError::Credential("plain HTTP has no client certificates".into()))?;
        pki.issue_client(user, groups).map_err(|e| SimError::Credential(e.to_string()))
    }

    /// Stops the server and the controllers. An error says the controllers had panicked while it
    /// ran (the server had then stopped already): whatever the caller did against it failed for
    /// that reason, and the caller must fail too.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        if let Some(c) = self.controllers.take() {
            c.abort();
        }
        if let Some(s) = self.supervisor.take() {
            let _ = s.await;
        }
        let failure = match &*self.phase.borrow() {
            Phase::Failed(message) => Some(message.clone()),
            _ => None,
        };
        self.phase.send_if_modified(|p| {
            let serving = *p == Phase::Serving;
            if serving {
                *p = Phase::Stopping;
            }
            serving
        });
        if let Some(s) = self.server.take() {
            // Long-lived watch streams would hold a graceful shutdown for minutes: give open
            // requests a moment, then cut them.
            let abort = s.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_millis(500), s).await.is_err() {
                abort.abort();
            }
        }
        match failure {
            Some(message) => Err(SimError::ControllersFailed(message)),
            None => Ok(()),
        }
    }

    /// Resolves once the controllers have panicked (never otherwise), with the error that says
    /// so. A caller that serves until told to stop waits on this too and exits with it.
    pub async fn failed(&self) -> SimError {
        let mut rx = self.phase.subscribe();
        match rx.wait_for(|p| matches!(p, Phase::Failed(_))).await {
            Ok(p) => match &*p {
                Phase::Failed(message) => SimError::ControllersFailed(message.clone()),
                _ => unreachable!("wait_for returned a phase it did not ask for"),
            },
            // The sender lives as long as `self`: this is never reached.
            Err(_) => std::future::pending().await,
        }
    }

    /// The credential the scenario says the kubeconfig acts as (default: the admin; over plain
    /// HTTP, which carries no client certificate, the admin's token).
    pub fn default_credential(&self) -> Credential {
        let access = &self.sim.access;
        let Some(who) = &access.kubeconfig_user else {
            return match &self.admin_token {
                Some(t) => Credential::Token(t.clone()),
                None => Credential::admin(),
            };
        };
        if let Some(u) = access.users.iter().find(|u| &u.name == who) {
            return match &u.token {
                Some(t) => Credential::Token(t.clone()),
                None => Credential::ClientCert { user: u.name.clone(), groups: u.groups.clone() },
            };
        }
        access
            .service_accounts
            .iter()
            .find(|sa| *who == format!("system:serviceaccount:{}:{}", sa.namespace, sa.name))
            .map_or_else(Credential::admin, |sa| Credential::Token(sa.token.clone()))
    }

    /// A kubeconfig for this simulator acting with `cred`, as kind writes one: the server, the
    /// cluster CA as `certificate-authority-data`, and the credential inline.
    pub fn kubeconfig_yaml(&self, cred: &Credential) -> Result<String, SimError> {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let ca = match self.ca_pem() {
            Some(pem) => format!("    certificate-authority-data: {}\n", b64(pem)),
            None => String::new(),
        };
        let user = match cred {
            Credential::ClientCert { user, groups } => {
                let c = self.issue_client_cert(user, groups)?;
                format!("    client-certificate-data: {}\n    client-key-data: {}\n", b64(&c.cert_pem), b64(&c.key_pem))
            }
            Credential::Token(t) => format!("    token: {}\n", serde_json::Value::String(t.clone())),
            Credential::None => "    {}\n".into(),
        };
        Ok(format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k8s-upgrade-sim\n  cluster:\n    server: {url}\n{ca}contexts:\n- name: k8s-upgrade-sim\n  context:\n    cluster: k8s-upgrade-sim\n    user: k8s-upgrade-sim\n    namespace: default\ncurrent-context: k8s-upgrade-sim\nusers:\n- name: k8s-upgrade-sim\n  user:\n{user}preferences: {{}}\n",
            url = self.url()
        ))
    }

    /// The kubeconfig of [`Running::kubeconfig_yaml`] as kube-rs reads it (in memory: nothing
    /// with a credential is written to disk).
    pub fn kubeconfig(&self, cred: &Credential) -> Result<kube::config::Kubeconfig, SimError> {
        let text = self.kubeconfig_yaml(cred)?;
        kube::config::Kubeconfig::from_yaml(&text).map_err(|e| SimError::Credential(e.to_string()))
    }

    /// Writes a kubeconfig for the scenario's default credential, readable by its owner only.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), SimError> {
        self.write_kubeconfig_for(path, &self.default_credential())
    }

    pub fn write_kubeconfig_for(&self, path: &Path, cred: &Credential) -> Result<(), SimError> {
        write_private(path, &self.kubeconfig_yaml(cred)?)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.phase.send_if_modified(|p| {
            let serving = *p == Phase::Serving;
            if serving {
                *p = Phase::Stopping;
            }
            serving
        });
        if let Some(c) = self.controllers.take() {
            c.abort();
        }
    }
}

/// Writes `text` to `path` with mode 0600, through a new file beside it that must not exist yet
/// (so a planted symlink is never followed), then renamed over the target.
pub fn write_private(path: &Path, text: &str) -> Result<(), SimError> {
    use std::io::Write;
    let err = |e: std::io::Error| SimError::Kubeconfig { path: path.display().to_string(), message: e.to_string() };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| Path::new("."));
    if !dir.is_dir() {
        return Err(SimError::Kubeconfig {
            path: path.display().to_string(),
            message: format!("the directory {} does not exist", dir.display()),
        });
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "kubeconfig".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp).map_err(err)?;
    let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// 32 random bytes from the system's generator, hex.
pub(crate) fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Builds the simulated cluster from a scenario and serves it.
pub async fn start(scenario: Scenario, catalog: Arc<Catalog>, opts: SimOptions) -> Result<Running, SimError> {
    if !opts.listen.ip().is_loopback() {
        return Err(SimError::NotLoopback(opts.listen));
    }
    let sim = Arc::new(scenario::build(scenario, catalog, opts.time_scale)?);
    let pki = match opts.transport {
        Transport::Https(serving) => {
            Some(Arc::new(tls::Pki::new(serving).map_err(|e| SimError::Credential(e.to_string()))?))
        }
        Transport::PlainHttp => None,
    };
    let admin_token = match opts.transport {
        Transport::PlainHttp => {
            let token = random_token().map_err(|e| SimError::Credential(format!("cannot make a token: {e}")))?;
            sim.tokens
                .insert(token.clone(), rbac::UserInfo { name: ADMIN_USER.into(), groups: vec![ADMIN_GROUP.into()] });
            Some(token)
        }
        Transport::Https(_) => None,
    };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| SimError::Bind { addr: opts.listen, message: e.to_string() })?;
    let addr = listener.local_addr().map_err(|e| SimError::Bind { addr: opts.listen, message: e.to_string() })?;
    let (phase, stop) = watch::channel(Phase::Serving);
    let phase = Arc::new(phase);
    let app = api::router(sim.clone());
    let server = tokio::spawn(serve::run(listener, app, pki.clone(), async move {
        let mut stop = stop;
        let _ = stop.wait_for(|p| *p != Phase::Serving).await;
    }));
    let controllers = tokio::spawn(controllers::run(sim.clone()));
    let controllers_abort = controllers.abort_handle();
    let supervisor = tokio::spawn(supervise(controllers, phase.clone()));
    Ok(Running {
        addr,
        sim,
        pki,
        admin_token,
        phase,
        server: Some(server),
        controllers: Some(controllers_abort),
        supervisor: Some(supervisor),
    })
}

/// A simulated cluster served in memory to clients of this process, with no socket: requests
/// go straight to the router as the admin. Nothing else can reach it, and, with no I/O to wait
/// on, a paused runtime's clock jumps over every wait (a rehearsal runs in virtual time).
pub struct InMemory {
    pub sim: Arc<Sim>,
    pub client: kube::Client,
    controllers: tokio::task::JoinHandle<()>,
}

impl InMemory {
    /// Builds the cluster and starts its controllers (inside a runtime).
    pub fn start(scenario: Scenario, catalog: Arc<Catalog>, time_scale: f64) -> Result<InMemory, SimError> {
        use tower::ServiceExt;
        let sim = Arc::new(scenario::build(scenario, catalog, time_scale)?);
        let token = random_token().map_err(|e| SimError::Credential(format!("cannot make a token: {e}")))?;
        sim.tokens.insert(token.clone(), rbac::UserInfo { name: ADMIN_USER.into(), groups: vec![ADMIN_GROUP.into()] });
        let bearer = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| SimError::Credential(format!("cannot make a token: {e}")))?;
        let app = api::router(sim.clone());
        let info = Arc::new(authn::ConnInfo::default());
        let service = tower::service_fn(move |mut req: http::Request<kube::client::Body>| {
            req.extensions_mut().insert(info.clone());
            req.headers_mut().insert(http::header::AUTHORIZATION, bearer.clone());
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let client = kube::Client::new(service, "default");
        let controllers = tokio::spawn(controllers::run(sim.clone()));
        Ok(InMemory { sim, client, controllers })
    }

    /// Whether the controllers stopped (a panic): whatever ran against this cluster is void.
    pub fn controllers_stopped(&self) -> bool {
        self.controllers.is_finished()
    }
}

impl Drop for InMemory {
    fn drop(&mut self) {
        self.controllers.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(rt: &tokio::runtime::Runtime) -> Running {
        let catalog = Arc::new(Catalog::embedded().expect("embedded catalog"));
        let options = SimOptions { transport: Transport::PlainHttp, ..Default::default() };
        rt.block_on(start(Scenario::load("demo").expect("demo"), catalog, options)).expect("simulator starts")
    }

    #[test]
    fn a_controller_that_panics_stops_the_simulator_and_is_reported() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let r = running(&rt);
        let addr = r.addr;
        assert!(std::net::TcpStream::connect(addr).is_ok(), "the simulator serves before the fault");
        r.sim.test_panic_in_pass.store(true, std::sync::atomic::Ordering::Relaxed);
        r.sim.changed.notify_waiters();
        let failed = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(20), r.failed()).await })
            .expect("the panic is reported, not swallowed");
        assert!(
            matches!(&failed, SimError::ControllersFailed(m) if m.contains("a controller pass panicked")),
            "{failed}"
        );
        // The server stopped on its own: nobody goes on talking to a cluster without controllers.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(addr).is_ok() {
            assert!(Instant::now() < deadline, "the server still accepts connections after the panic");
            std::thread::sleep(Duration::from_millis(20));
        }
        let e = rt.block_on(r.shutdown()).expect_err("shutdown reports the panic");
        assert!(e.to_string().contains("controllers panicked (test fault: a controller pass panicked)"), "{e}");
    }

    #[test]
    fn a_simulator_whose_controllers_did_not_panic_shuts_down_cleanly() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let r = running(&rt);
        std::thread::sleep(Duration::from_millis(200));
        rt.block_on(r.shutdown()).expect("a clean shutdown");
    }
}
