//! Managed control planes, managed node pools and EKS add-ons through the providers' CLIs
//! (`--upgrader eks|gke|aks`). Every call is an argv run through [`super::command`]: no shell,
//! its own process group, a timeout, bounded output kept in the journal (lines that look like
//! credentials left out).
//!
//! A managed pool is not upgraded node by node in place: the provider surges replacement nodes
//! at the target (new names), drains the old ones itself (honouring disruption budgets) and
//! deletes them. So a node roll here goes pool by pool: the window and lock checks, the provider's
//! upgrade started (its update id journaled before anything waits on it), the replacement
//! followed until the pool has at least its starting count at the target and none of its old
//! nodes, then the health gates. A resumed run never starts a second update of a pool whose
//! update is in progress (EKS refuses that): it waits on the journaled one, and starts the pool
//! again only when the provider reported it failed.
//!
//! The argv builders and the replacement bookkeeping are pure and unit-tested here.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::command::{self, CommandError, CommandSpec};
use super::journal::{PoolPhase, PoolRecord};
use super::node::reached;
use super::{Event, ExecError, Executor};
use crate::graph::KubeletMove;
use crate::k8s::node as nodes;
use crate::plan::Step;
use crate::version::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Eks,
    Gke,
    Aks,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Eks => "eks",
            Provider::Gke => "gke",
            Provider::Aks => "aks",
        }
    }

    /// The CLI run when `--provider-cli` is not given (found on PATH).
    pub fn default_cli(self) -> &'static str {
        match self {
            Provider::Eks => "aws",
            Provider::Gke => "gcloud",
            Provider::Aks => "az",
        }
    }

    /// The node labels that name the provider's managed pool.
    pub fn pool_labels(self) -> &'static [&'static str] {
        match self {
            Provider::Eks => &["eks.amazonaws.com/nodegroup"],
            Provider::Gke => &["cloud.google.com/gke-nodepool"],
            Provider::Aks => &["kubernetes.azure.com/agentpool", "agentpool"],
        }
    }

    /// What the provider calls a pool.
    pub fn pool_word(self) -> &'static str {
        match self {
            Provider::Eks => "managed node group",
            Provider::Gke => "node pool",
            Provider::Aks => "agent pool",
        }
    }
}

/// EKS add-ons `aws eks update-addon` manages (the plan's add-on name → the EKS add-on name).
pub fn eks_addon_name(addon: &str) -> Option<&'static str> {
    Some(match addon {
        "aws-vpc-cni" | "vpc-cni" => "vpc-cni",
        "coredns" => "coredns",
        "kube-proxy" => "kube-proxy",
        "aws-ebs-csi-driver" => "aws-ebs-csi-driver",
        "aws-efs-csi-driver" => "aws-efs-csi-driver",
        "eks-pod-identity-agent" => "eks-pod-identity-agent",
        "snapshot-controller" => "snapshot-controller",
        _ => return None,
    })
}

/// How to reach the provider and the cluster there.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedCli {
    pub provider: Provider,
    /// The CLI program (`aws`, `gcloud`, `az`, or a path).
    pub cli: String,
    pub cluster: String,
    /// EKS: `--region` (else the CLI's configured region).
    pub region: Option<String>,
    /// GKE: `--location` (a region or zone).
    pub location: Option<String>,
    /// GKE: `--project` (else the CLI's configured project).
    pub project: Option<String>,
    /// AKS: `--resource-group`.
    pub resource_group: Option<String>,
    /// A call that returns at once (EKS starts, describe calls).
    pub call_timeout: Duration,
    /// A whole control-plane upgrade (and a GKE/AKS call, which waits for its operation).
    pub upgrade_timeout: Duration,
    /// A whole pool; `None`: the node timeout for each of its nodes, plus one.
    pub pool_timeout: Option<Duration>,
    /// Between two `describe-update` calls.
    pub poll: Duration,
}

impl ManagedCli {
    fn with_region(&self, mut argv: Vec<String>) -> Vec<String> {
        if let Some(r) = &self.region {
            argv.extend(["--region".into(), r.clone()]);
        }
        argv.extend(["--output".into(), "json".into()]);
        argv
    }

    fn gcloud_tail(&self, mut argv: Vec<String>) -> Vec<String> {
        if let Some(l) = &self.location {
            argv.extend(["--location".into(), l.clone()]);
        }
        if let Some(p) = &self.project {
            argv.extend(["--project".into(), p.clone()]);
        }
        argv.push("--quiet".into());
        argv
    }

    fn strings(&self, args: &[&str]) -> Vec<String> {
        std::iter::once(self.cli.as_str()).chain(args.iter().copied()).map(str::to_string).collect()
    }

    /// Starts the control plane's upgrade to `to`'s minor (the provider picks the patch).
    pub fn control_plane_argv(&self, to: &Version) -> Vec<String> {
        let v = to.minor_version().to_string();
        let (n, g) = (self.cluster.as_str(), self.resource_group.as_deref().unwrap_or_default());
        match self.provider {
            Provider::Eks => self.with_region(self.strings(&[
                "eks",
                "update-cluster-version",
                "--name",
                n,
                "--kubernetes-version",
                &v,
            ])),
            Provider::Gke => self.gcloud_tail(self.strings(&[
                "container",
                "clusters",
                "upgrade",
                n,
                "--master",
                "--cluster-version",
                &v,
            ])),
            Provider::Aks => self.strings(&[
                "aks",
                "upgrade",
                "--resource-group",
                g,
                "--name",
                n,
                "--control-plane-only",
                "--kubernetes-version",
                &v,
                "--yes",
                "--output",
                "json",
            ]),
        }
    }

    /// Starts a managed pool's upgrade to `to`'s minor.
    pub fn pool_argv(&self, pool: &str, to: &Version) -> Vec<String> {
        let v = to.minor_version().to_string();
        let (n, g) = (self.cluster.as_str(), self.resource_group.as_deref().unwrap_or_default());
        match self.provider {
            Provider::Eks => self.with_region(self.strings(&[
                "eks",
                "update-nodegroup-version",
                "--cluster-name",
                n,
                "--nodegroup-name",
                pool,
                "--kubernetes-version",
                &v,
            ])),
            Provider::Gke => self.gcloud_tail(self.strings(&[
                "container",
                "clusters",
                "upgrade",
                n,
                "--node-pool",
                pool,
                "--cluster-version",
                &v,
            ])),
            Provider::Aks => self.strings(&[
                "aks",
                "nodepool",
                "upgrade",
                "--resource-group",
                g,
                "--cluster-name",
                n,
                "--name",
                pool,
                "--kubernetes-version",
                &v,
                "--yes",
                "--output",
                "json",
            ]),
        }
    }

    /// EKS: reads an update of the cluster, of a node group or of an add-on.
    pub fn describe_update_argv(&self, id: &str, of: UpdateOf<'_>) -> Vec<String> {
        let mut argv = self.strings(&["eks", "describe-update", "--name", &self.cluster, "--update-id", id]);
        match of {
            UpdateOf::Cluster => {}
            UpdateOf::Nodegroup(g) => argv.extend(["--nodegroup-name".into(), g.to_string()]),
            UpdateOf::Addon(a) => argv.extend(["--addon-name".into(), a.to_string()]),
        }
        self.with_region(argv)
    }

    /// EKS: the add-on versions for a Kubernetes minor (the default one is marked).
    pub fn addon_versions_argv(&self, addon: &str, minor: &str) -> Vec<String> {
        self.with_region(self.strings(&[
            "eks",
            "describe-addon-versions",
            "--addon-name",
            addon,
            "--kubernetes-version",
            minor,
        ]))
    }

    /// EKS: moves an add-on to `version`, keeping the operator's configuration changes.
    pub fn update_addon_argv(&self, addon: &str, version: &str) -> Vec<String> {
        self.with_region(self.strings(&[
            "eks",
            "update-addon",
            "--cluster-name",
            &self.cluster,
            "--addon-name",
            addon,
            "--addon-version",
            version,
            "--resolve-conflicts",
            "PRESERVE",
        ]))
    }

    /// What is missing to reach the cluster at the provider.
    pub fn validate(&self) -> Result<(), String> {
        let need = |flag: &str, v: &Option<String>| match v {
            Some(s) if !s.trim().is_empty() => Ok(()),
            _ => Err(format!("--upgrader {} needs {flag}", self.provider.name())),
        };
        if self.cluster.trim().is_empty() {
            return Err(format!("--upgrader {} needs --cluster-name NAME", self.provider.name()));
        }
        match self.provider {
            Provider::Eks => Ok(()),
            Provider::Gke => need("--location LOCATION", &self.location),
            Provider::Aks => need("--resource-group GROUP", &self.resource_group),
        }
    }
}

/// What an EKS update belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOf<'a> {
    Cluster,
    Nodegroup(&'a str),
    Addon(&'a str),
}

/// An EKS update as `update-*` and `describe-update` print it.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub id: String,
    /// `InProgress`, `Successful`, `Failed` or `Cancelled`.
    pub status: String,
    /// `errorCode: errorMessage (resources)` for each error the provider gave.
    pub errors: Vec<String>,
}

impl Update {
    pub fn failed(&self) -> bool {
        matches!(self.status.as_str(), "Failed" | "Cancelled")
    }

    pub fn successful(&self) -> bool {
        self.status == "Successful"
    }

    pub fn why(&self) -> String {
        if self.errors.is_empty() { "no error given".into() } else { self.errors.join("; ") }
    }
}

/// Reads `{"update": {"id", "status", "errors": [...]}}`.
pub fn parse_update(text: &str) -> Result<Update, String> {
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| format!("unreadable answer ({e})"))?;
    let u = v.get("update").ok_or("no update in the answer")?;
    let id = u.get("id").and_then(Value::as_str).ok_or("no update id in the answer")?.to_string();
    let status = u.get("status").and_then(Value::as_str).unwrap_or("InProgress").to_string();
    let errors = u
        .get("errors")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .map(|e| {
                    let code = e.get("errorCode").and_then(Value::as_str).unwrap_or("Error");
                    let msg = e.get("errorMessage").and_then(Value::as_str).unwrap_or("");
                    let ids: Vec<&str> = e
                        .get("resourceIds")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let mut s = format!("{code}: {msg}");
                    if !ids.is_empty() {
                        s.push_str(&format!(" ({})", ids.join(", ")));
                    }
                    s.chars().take(1000).collect()
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Update { id, status, errors })
}

/// The add-on versions `describe-addon-versions` lists for `minor`, each with whether EKS marks it
/// the default there.
pub fn addon_versions(text: &str, minor: &str) -> Vec<(String, bool)> {
    let Ok(v) = serde_json::from_str::<Value>(text.trim()) else { return vec![] };
    let mut out = Vec::new();
    for a in v.get("addons").and_then(Value::as_array).into_iter().flatten() {
        for av in a.get("addonVersions").and_then(Value::as_array).into_iter().flatten() {
            let Some(version) = av.get("addonVersion").and_then(Value::as_str) else { continue };
            let compat: Vec<&Value> = av
                .get("compatibilities")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .filter(|c| c.get("clusterVersion").and_then(Value::as_str).is_none_or(|cv| cv == minor))
                        .collect()
                })
                .unwrap_or_default();
            if compat.is_empty() {
                continue;
            }
            let default = compat.iter().any(|c| c.get("defaultVersion").and_then(Value::as_bool) == Some(true));
            out.push((version.to_string(), default));
        }
    }
    out
}

/// `v1.19.2-eksbuild.1` as numbers for ordering: `[1, 19, 2, 1]`.
fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).filter_map(|p| p.parse().ok()).collect()
}

/// The version for an add-on step run while the cluster is on `now`, before the control plane
/// moves to the minor of `next` (the same list when no hop follows): EKS's default for the next
/// minor when it is offered for the current one too, else the newest offered for both.
pub fn pick_addon_version(now: &[(String, bool)], next: &[(String, bool)]) -> Option<String> {
    let offered_now = |v: &str| now.iter().any(|(n, _)| n == v);
    if let Some((v, _)) = next.iter().find(|(v, default)| *default && offered_now(v)) {
        return Some(v.clone());
    }
    next.iter().filter(|(v, _)| offered_now(v)).max_by_key(|(v, _)| version_key(v)).map(|(v, _)| v.clone())
}

/// Whether an output line looks like it carries a credential (it is then kept out of the journal).
pub fn looks_secret(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    [
        "secretaccesskey",
        "sessiontoken",
        "accesstoken",
        "access_token",
        "\"token\"",
        "password",
        "client_secret",
        "bearer ",
    ]
    .iter()
    .any(|k| l.contains(k))
        || line.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
            (w.starts_with("AKIA") || w.starts_with("ASIA"))
                && w.len() == 20
                && w.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
}

/// A node as the replacement bookkeeping sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolNode {
    pub name: String,
    pub kubelet: Option<Version>,
    pub ready: bool,
}

/// Where a pool's replacement stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoolProgress {
    /// Ready nodes of the pool at the target minor.
    pub at_target: Vec<String>,
    /// Old nodes (from the start) still present.
    pub old_left: Vec<String>,
    /// Nodes neither old nor Ready at the target (booting replacements).
    pub joining: Vec<String>,
    /// At least the starting count at the target and no old node left.
    pub done: bool,
}

/// The pool's state from its nodes now, its old nodes and its size when it started.
pub fn pool_progress(old: &[String], start_count: usize, now: &[PoolNode], target: &Version) -> PoolProgress {
    let mut p = PoolProgress::default();
    for n in now {
        if old.contains(&n.name) {
            p.old_left.push(n.name.clone());
        } else if n.ready && n.kubelet.as_ref().is_some_and(|k| reached(k, target, None, true)) {
            p.at_target.push(n.name.clone());
        } else {
            p.joining.push(n.name.clone());
        }
    }
    p.done = p.old_left.is_empty() && p.at_target.len() >= start_count;
    p
}

/// Splits the nodes a roll takes into the provider's pools; the second list has the nodes in no
/// pool of the provider.
pub fn group_by_pool(
    taken: &[(String, Option<&BTreeMap<String, String>>)],
    provider: Provider,
) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut pools: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut loose = Vec::new();
    for (name, labels) in taken {
        match labels.and_then(|l| provider.pool_labels().iter().find_map(|k| l.get(*k))) {
            Some(pool) if !pool.is_empty() => pools.entry(pool.clone()).or_default().push(name.clone()),
            _ => loose.push(name.clone()),
        }
    }
    for names in pools.values_mut() {
        names.sort();
    }
    loose.sort();
    (pools, loose)
}

/// A provider call running while the pool is followed.
type CallFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, CommandError>> + Send + 'a>>;

fn key(step: usize, what: &str) -> String {
    format!("{step}/{what}")
}

impl Executor<'_> {
    /// Runs one provider CLI call; returns its stdout. Kept lines go to the journal (credential-
    /// looking ones left out); every byte goes to the run's log file.
    async fn provider_call(&self, subject: &str, argv: Vec<String>, timeout: Duration) -> Result<String, CommandError> {
        let stdout = Mutex::new(String::new());
        let on_line = |l: &str| {
            if l.starts_with("(stderr) ") {
                return;
            }
            let mut s = stdout.lock().unwrap_or_else(|e| e.into_inner());
            if s.len() < 4 << 20 {
                s.push_str(l);
                s.push('\n');
            }
        };
        let shown: String = argv.iter().map(|a| command::quote(a)).collect::<Vec<_>>().join(" ");
        let _ = self.save(|j| j.push_log(format!("{subject}: $ {shown}"))).await;
        let spec = CommandSpec { argv, env: vec![], timeout, log_file: self.options.log_file.clone() };
        let result = command::run(&spec, &self.cancel, &on_line).await;
        let lines = match &result {
            Ok(out) => out.lines(),
            Err(
                CommandError::Failed { output, .. }
                | CommandError::Timeout { output, .. }
                | CommandError::Cancelled { output, .. },
            ) => output.lines(),
            Err(_) => vec![],
        };
        if !lines.is_empty() {
            let _ = self
                .save(|j| {
                    for l in lines {
                        let l = if looks_secret(&l) {
                            "(a line that looked like a credential was left out)".into()
                        } else {
                            l
                        };
                        j.push_log(format!("{subject}: {l}"));
                    }
                })
                .await;
        }
        result.map(|_| stdout.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    async fn save_pool(&self, k: &str, record: &PoolRecord) -> Result<(), ExecError> {
        let (k, record) = (k.to_string(), record.clone());
        self.save(move |j| {
            j.pools.insert(k, record);
        })
        .await
    }

    /// Polls an EKS update until it ends; `Ok` when Successful.
    async fn eks_wait_update(
        &self,
        m: &ManagedCli,
        id: &str,
        of: UpdateOf<'_>,
        deadline: Instant,
        what: &str,
    ) -> Result<Update, ExecError> {
        loop {
            let text = self
                .provider_call(what, m.describe_update_argv(id, of), m.call_timeout)
                .await
                .map_err(|e| ExecError::Blocked(format!("{what}: cannot read the provider's update {id}: {e}")))?;
            let u =
                parse_update(&text).map_err(|e| ExecError::Blocked(format!("{what}: describe-update {id}: {e}")))?;
            if u.successful() || u.failed() {
                return Ok(u);
            }
            if Instant::now() > deadline {
                return Err(ExecError::Blocked(format!(
                    "{what}: the provider's update {id} is still {} after the timeout; apply --resume waits on it again",
                    u.status
                )));
            }
            self.provider_sleep(m.poll, what).await?;
        }
    }

    async fn provider_sleep(&self, d: Duration, what: &str) -> Result<(), ExecError> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.cancel.abort_requested() => Err(ExecError::Interrupted(format!(
                "stopped while waiting on {what}; the provider's update goes on, and apply --resume waits on it"
            ))),
        }
    }

    /// The managed control plane's upgrade through the provider; the caller then waits for the
    /// apiserver to report the target.
    pub(super) async fn provider_control_plane(
        &self,
        step: usize,
        m: &ManagedCli,
        to: &Version,
    ) -> Result<(), ExecError> {
        let k = key(step, "control-plane");
        let what = format!("the {} control plane", m.provider.name());
        let existing = self.journal.lock().await.pools.get(&k).cloned();
        if let Ok(v) = self.client.apiserver_version().await
            && let Ok(seen) = v.git_version.parse::<Version>()
            && seen.minor_version() >= to.minor_version()
        {
            self.say(format!("{what} already reports {seen}"));
            return Ok(());
        }
        let mut record = existing.clone().unwrap_or(PoolRecord {
            step,
            target: to.clone(),
            phase: PoolPhase::Starting,
            update_id: None,
            old_nodes: vec![],
            start_count: 0,
            note: None,
            seconds: None,
        });
        let deadline = Instant::now() + m.upgrade_timeout;
        match m.provider {
            Provider::Eks => {
                let id = match (&record.phase, &record.update_id) {
                    (PoolPhase::Started, Some(id)) => {
                        self.say(format!("{what}: waiting on the update {id} started before"));
                        id.clone()
                    }
                    _ => {
                        record.phase = PoolPhase::Starting;
                        self.save_pool(&k, &record).await?;
                        let text = self
                            .provider_call("control-plane", m.control_plane_argv(to), m.call_timeout)
                            .await
                            .map_err(|e| {
                                ExecError::Blocked(format!(
                                    "{what}: the upgrade to {} was refused: {e}",
                                    to.minor_version()
                                ))
                            })?;
                        let u = parse_update(&text)
                            .map_err(|e| ExecError::Blocked(format!("{what}: update-cluster-version: {e}")))?;
                        record.phase = PoolPhase::Started;
                        record.update_id = Some(u.id.clone());
                        self.save_pool(&k, &record).await?;
                        self.say(format!("{what}: update {} started ({})", u.id, u.status));
                        u.id
                    }
                };
                let u = self.eks_wait_update(m, &id, UpdateOf::Cluster, deadline, &what).await?;
                if u.failed() {
                    record.phase = PoolPhase::Failed;
                    record.note = Some(u.why());
                    self.save_pool(&k, &record).await?;
                    return Err(ExecError::Blocked(format!(
                        "{what}: the provider reported the update {id} {}: {}; apply --resume starts it again",
                        u.status,
                        u.why()
                    )));
                }
            }
            Provider::Gke | Provider::Aks => {
                // The CLI waits for the provider's operation: it is the wait.
                record.phase = PoolPhase::Started;
                self.save_pool(&k, &record).await?;
                if let Err(e) = self.provider_call("control-plane", m.control_plane_argv(to), m.upgrade_timeout).await {
                    record.phase = PoolPhase::Failed;
                    record.note = Some(e.to_string());
                    self.save_pool(&k, &record).await?;
                    return Err(match e {
                        CommandError::Cancelled { .. } => ExecError::Interrupted(format!("{what}: {e}")),
                        _ => ExecError::Blocked(format!(
                            "{what}: the upgrade to {} failed: {e}; apply --resume runs it again",
                            to.minor_version()
                        )),
                    });
                }
            }
        }
        record.phase = PoolPhase::Done;
        self.save_pool(&k, &record).await?;
        Ok(())
    }

    /// An EKS add-on step through `update-addon`; `None` when the add-on is not an EKS add-on.
    pub(super) async fn provider_addon(
        &self,
        step: &Step,
        m: &ManagedCli,
        addon: &str,
    ) -> Option<Result<Option<String>, ExecError>> {
        if m.provider != Provider::Eks {
            return None;
        }
        let name = eks_addon_name(addon)?;
        Some(self.eks_addon(step, m, name).await)
    }

    async fn eks_addon(&self, step: &Step, m: &ManagedCli, name: &str) -> Result<Option<String>, ExecError> {
        let what = format!("EKS add-on {name}");
        if self.options.dry_run {
            self.say(format!("dry run: would update {what} to the default version for the cluster's minor"));
            return Ok(None);
        }
        let k = key(step.order, &format!("addon:{name}"));
        let minor = match self.client.apiserver_version().await.ok().and_then(|v| v.git_version.parse::<Version>().ok())
        {
            Some(v) => v.minor_version().to_string(),
            None => self.journal.lock().await.to.minor_version().to_string(),
        };
        // Placed before a control-plane hop, the add-on must run on both sides of it.
        let next_minor = {
            let j = self.journal.lock().await;
            j.steps
                .iter()
                .map(|s| &s.step)
                .filter(|s| s.order > step.order)
                .find_map(|s| match &s.action {
                    crate::plan::StepAction::ControlPlane { to, .. } => Some(to.minor_version().to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| minor.clone())
        };
        let existing = self.journal.lock().await.pools.get(&k).cloned();
        let mut record = existing.unwrap_or(PoolRecord {
            step: step.order,
            target: self.journal.lock().await.to.clone(),
            phase: PoolPhase::Starting,
            update_id: None,
            old_nodes: vec![],
            start_count: 0,
            note: None,
            seconds: None,
        });
        let id = match (&record.phase, &record.update_id) {
            (PoolPhase::Done, _) => return Ok(None),
            (PoolPhase::Started, Some(id)) => id.clone(),
            _ => {
                let what = &what;
                let list = |minor: String| async move {
                    let text =
                        self.provider_call(name, m.addon_versions_argv(name, &minor), m.call_timeout).await.map_err(
                            |e| ExecError::Blocked(format!("{what}: cannot read its versions for {minor}: {e}")),
                        )?;
                    Ok::<_, ExecError>(addon_versions(&text, &minor))
                };
                let now = list(minor.clone()).await?;
                let next = if next_minor == minor { now.clone() } else { list(next_minor.clone()).await? };
                let version = pick_addon_version(&now, &next).ok_or_else(|| {
                    ExecError::Blocked(format!(
                        "{what}: EKS offers no version for both Kubernetes {minor} and {next_minor}; update it by hand, then apply --resume"
                    ))
                })?;
                record.phase = PoolPhase::Starting;
                self.save_pool(&k, &record).await?;
                let text = self
                    .provider_call(name, m.update_addon_argv(name, &version), m.call_timeout)
                    .await
                    .map_err(|e| ExecError::Blocked(format!("{what}: the update to {version} was refused: {e}")))?;
                let u = parse_update(&text).map_err(|e| ExecError::Blocked(format!("{what}: update-addon: {e}")))?;
                record.phase = PoolPhase::Started;
                record.update_id = Some(u.id.clone());
                record.note = Some(version.clone());
                self.save_pool(&k, &record).await?;
                self.say(format!("{what}: update {} to {version} started", u.id));
                u.id
            }
        };
        let u = self.eks_wait_update(m, &id, UpdateOf::Addon(name), Instant::now() + m.upgrade_timeout, &what).await?;
        if u.failed() {
            record.phase = PoolPhase::Failed;
            self.save_pool(&k, &record).await?;
            return Err(ExecError::Blocked(format!(
                "{what}: the provider reported the update {id} {}: {}; apply --resume starts it again",
                u.status,
                u.why()
            )));
        }
        record.phase = PoolPhase::Done;
        self.save_pool(&k, &record).await?;
        self.gate(&what).await?;
        Ok(None)
    }

    /// A node roll on a managed cluster: pool by pool, by replacement.
    pub(super) async fn provider_node_roll(
        &self,
        step: &Step,
        m: &ManagedCli,
        moves: &[KubeletMove],
    ) -> Result<Option<String>, ExecError> {
        let all = self.nodes().await?;
        let recorded: BTreeMap<String, PoolRecord> = {
            let j = self.journal.lock().await;
            j.pools
                .iter()
                .filter_map(|(k, r)| k.strip_prefix(&format!("{}/", step.order)).map(|p| (p.to_string(), r.clone())))
                .filter(|(p, _)| p != "control-plane" && !p.starts_with("addon:"))
                .collect()
        };
        let workers: Vec<&k8s_openapi::api::core::v1::Node> =
            all.iter().filter(|n| !nodes::is_control_plane(n)).collect();
        let taken: Vec<(String, Option<&BTreeMap<String, String>>)> = workers
            .iter()
            .filter(|n| nodes::kubelet_version(n).is_some_and(|k| moves.iter().any(|mv| super::rollout::takes(mv, &k))))
            .map(|n| (nodes::name(n).to_string(), n.metadata.labels.as_ref()))
            .collect();
        let (mut pools, loose) = group_by_pool(&taken, m.provider);
        if !loose.is_empty() {
            return Err(ExecError::Blocked(format!(
                "{} node(s) in no {} {}: {}. The {} upgrader replaces managed pools only; upgrade or replace these nodes yourself (self-managed groups, Karpenter, or another apply with --upgrader command or manual), then run apply --resume",
                loose.len(),
                m.provider.name().to_uppercase(),
                m.provider.pool_word(),
                loose.join(", "),
                m.provider.name()
            )));
        }
        // A pool started before (and not done) is finished whatever its nodes say now.
        for (pool, r) in &recorded {
            if r.phase != PoolPhase::Done {
                pools.entry(pool.clone()).or_default();
            }
        }
        let target_of = |names: &[String]| -> Option<Version> {
            names.iter().find_map(|n| {
                let k = all.iter().find(|x| nodes::name(x) == n).and_then(nodes::kubelet_version)?;
                moves.iter().find(|mv| super::rollout::takes(mv, &k)).map(|mv| mv.to.clone())
            })
        };
        let total = pools.len();
        for (i, (pool, names)) in pools.iter().enumerate() {
            let record = recorded.get(pool).cloned();
            if record.as_ref().is_some_and(|r| r.phase == PoolPhase::Done) {
                continue;
            }
            let Some(target) = record.as_ref().map(|r| r.target.clone()).or_else(|| target_of(names)) else { continue };
            if self.cancel.is_stop_requested() {
                return Err(ExecError::Interrupted(format!(
                    "stopped on request before {} {pool}",
                    m.provider.pool_word()
                )));
            }
            self.ensure_lock(&format!("{} {pool}", m.provider.pool_word()))?;
            let members: Vec<&k8s_openapi::api::core::v1::Node> = workers
                .iter()
                .copied()
                .filter(|n| {
                    n.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| m.provider.pool_labels().iter().find_map(|k| l.get(*k)))
                        .is_some_and(|p| p == pool)
                })
                .collect();
            let count = record.as_ref().map_or(members.len(), |r| r.start_count.max(1));
            self.window_check_pool(pool, count)?;
            self.emit(Event::BatchStart {
                label: format!("{} {pool} ({}/{total})", m.provider.pool_word(), i + 1),
                nodes: names.clone(),
            });
            if self.options.dry_run {
                let argv = m.pool_argv(pool, &target);
                self.say(format!(
                    "dry run: would run {} and follow the replacement of {} node(s)",
                    argv.iter().map(|a| command::quote(a)).collect::<Vec<_>>().join(" "),
                    names.len()
                ));
                continue;
            }
            let started = Instant::now();
            let mut record = record.unwrap_or_else(|| PoolRecord {
                step: step.order,
                target: target.clone(),
                phase: PoolPhase::Starting,
                update_id: None,
                old_nodes: members
                    .iter()
                    .filter(|n| nodes::kubelet_version(n).is_none_or(|k| !reached(&k, &target, None, true)))
                    .map(|n| nodes::name(n).to_string())
                    .collect(),
                start_count: members.len(),
                note: None,
                seconds: None,
            });
            self.roll_pool(step.order, m, pool, &target, &mut record).await?;
            let secs = started.elapsed().as_secs_f64() + record.seconds.unwrap_or(0.0);
            record.phase = PoolPhase::Done;
            record.seconds = Some(secs);
            self.save_pool(&key(step.order, pool), &record).await?;
            let per_node = secs / record.old_nodes.len().max(1) as f64;
            {
                let mut d = self.durations.lock().unwrap_or_else(|e| e.into_inner());
                d.push(per_node);
            }
            {
                let mut o = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
                for n in &record.old_nodes {
                    o.nodes_done.push((n.clone(), per_node));
                }
            }
            self.say(format!(
                "{} {pool}: replaced {} node(s) in {:.1}s",
                m.provider.pool_word(),
                record.old_nodes.len(),
                secs
            ));
            self.emit(Event::BatchStatus { status: "health gates".into() });
            self.gate(&format!("{} {pool}", m.provider.pool_word())).await?;
            self.emit(Event::BatchStatus { status: String::new() });
        }
        Ok(None)
    }

    /// Refuses to start a pool that cannot finish before the window closes: the longest node
    /// measured (or the estimate) times the pool's nodes.
    fn window_check_pool(&self, pool: &str, count: usize) -> Result<(), ExecError> {
        let Some(end) = self.options.window_end else { return Ok(()) };
        let durations = self.durations.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let per = durations
            .iter()
            .copied()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
        let per = per.map_or(self.options.node_estimate, Duration::from_secs_f64);
        let need = per * count.max(1) as u32;
        match super::window::check(crate::clock::system_now(), end, &[], need) {
            Ok(()) => Ok(()),
            Err(need) => Err(ExecError::WindowClosing(format!(
                "the maintenance window closes before pool {pool} could be replaced ({count} node(s), up to {}); stopped before starting it",
                command::humanize(need)
            ))),
        }
    }

    /// The nodes of `pool` now.
    async fn pool_nodes(&self, m: &ManagedCli, pool: &str) -> Result<Vec<PoolNode>, ExecError> {
        Ok(self
            .nodes()
            .await?
            .iter()
            .filter(|n| {
                n.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| m.provider.pool_labels().iter().find_map(|k| l.get(*k)))
                    .is_some_and(|p| p == pool)
            })
            .map(|n| PoolNode {
                name: nodes::name(n).to_string(),
                kubelet: nodes::kubelet_version(n),
                ready: nodes::is_ready(n),
            })
            .collect())
    }

    /// Starts (or rejoins) one pool's upgrade and follows it to the end.
    async fn roll_pool(
        &self,
        step: usize,
        m: &ManagedCli,
        pool: &str,
        target: &Version,
        record: &mut PoolRecord,
    ) -> Result<(), ExecError> {
        let k = key(step, pool);
        let word = m.provider.pool_word();
        let what = format!("{word} {pool}");
        let timeout = m.pool_timeout.unwrap_or(self.options.node_timeout * (record.start_count as u32 + 1));
        let deadline = Instant::now() + timeout;
        // GKE and AKS: the CLI call waits for the operation; it runs while the nodes are followed.
        let mut blocking: Option<CallFuture<'_>> = None;
        let mut eks_id: Option<String> = None;
        let rejoin = record.phase == PoolPhase::Started;
        match m.provider {
            Provider::Eks => {
                if let (true, Some(id)) = (rejoin, record.update_id.clone()) {
                    // Started before: never a second update while this one runs.
                    let text = self
                        .provider_call(pool, m.describe_update_argv(&id, UpdateOf::Nodegroup(pool)), m.call_timeout)
                        .await
                        .map_err(|e| {
                            ExecError::Blocked(format!("{what}: cannot read the provider's update {id}: {e}"))
                        })?;
                    let u = parse_update(&text)
                        .map_err(|e| ExecError::Blocked(format!("{what}: describe-update {id}: {e}")))?;
                    if u.failed() {
                        self.emit(Event::log(format!(
                            "{what}: the update {id} started before {} ({}): starting the pool again",
                            u.status,
                            u.why()
                        )));
                        record.phase = PoolPhase::Failed;
                    } else {
                        self.emit(Event::log(format!(
                            "{what}: waiting on the update {id} started before ({})",
                            u.status
                        )));
                        eks_id = Some(id);
                    }
                }
                if eks_id.is_none() {
                    record.phase = PoolPhase::Starting;
                    self.save_pool(&k, record).await?;
                    let text =
                        self.provider_call(pool, m.pool_argv(pool, target), m.call_timeout).await.map_err(|e| {
                            ExecError::Blocked(format!(
                                "{what}: the provider refused the upgrade to {}: {e}",
                                target.minor_version()
                            ))
                        })?;
                    let u = parse_update(&text)
                        .map_err(|e| ExecError::Blocked(format!("{what}: update-nodegroup-version: {e}")))?;
                    record.phase = PoolPhase::Started;
                    record.update_id = Some(u.id.clone());
                    self.save_pool(&k, record).await?;
                    self.emit(Event::log(format!("{what}: update {} started", u.id)));
                    eks_id = Some(u.id);
                }
            }
            Provider::Gke | Provider::Aks => {
                // A call cut short (a kill, Ctrl-C) may have seen the provider finish meanwhile:
                // a pool already replaced is not upgraded again.
                if matches!(record.phase, PoolPhase::Started | PoolPhase::Failed)
                    && pool_progress(&record.old_nodes, record.start_count, &self.pool_nodes(m, pool).await?, target)
                        .done
                {
                    self.emit(Event::log(format!("{what}: already replaced since the last run")));
                    return Ok(());
                }
                if rejoin {
                    self.emit(Event::log(format!(
                        "{what}: its upgrade was started before and not seen to finish: running it again (the provider continues or restarts it)"
                    )));
                }
                record.phase = PoolPhase::Started;
                self.save_pool(&k, record).await?;
                blocking = Some(Box::pin(self.provider_call(pool, m.pool_argv(pool, target), timeout)));
                self.emit(Event::log(format!("{what}: upgrade to {} started", target.minor_version())));
            }
        }
        let mut provider_done = false;
        let mut last_poll = Instant::now();
        let mut seen = PoolProgress::default();
        loop {
            // The provider goes on either way; a run that lost the lock stops watching it.
            self.ensure_lock(&format!("the rest of {what}"))?;
            let now_nodes = self.pool_nodes(m, pool).await?;
            let p = pool_progress(&record.old_nodes, record.start_count, &now_nodes, target);
            for n in p.at_target.iter().filter(|n| !seen.at_target.contains(n)) {
                self.emit(Event::node_log(n, format!("joined {what} Ready at {}", target.minor_version())));
            }
            for n in seen.old_left.iter().filter(|n| !p.old_left.contains(n)) {
                self.emit(Event::node_log(n, format!("drained and removed from {what} by the provider")));
            }
            if p != seen {
                self.emit(Event::PoolProgress {
                    step,
                    pool: pool.to_string(),
                    at_target: p.at_target.len(),
                    old_left: p.old_left.len(),
                    joining: p.joining.len(),
                    old_total: record.old_nodes.len(),
                });
            }
            seen = p.clone();
            if let Some(id) = &eks_id
                && !provider_done
                && (last_poll.elapsed() >= m.poll || p.done)
            {
                last_poll = Instant::now();
                let text = self
                    .provider_call(pool, m.describe_update_argv(id, UpdateOf::Nodegroup(pool)), m.call_timeout)
                    .await
                    .map_err(|e| ExecError::Blocked(format!("{what}: cannot read the provider's update {id}: {e}")))?;
                let u = parse_update(&text)
                    .map_err(|e| ExecError::Blocked(format!("{what}: describe-update {id}: {e}")))?;
                if u.failed() {
                    record.phase = PoolPhase::Failed;
                    record.note = Some(u.why());
                    self.save_pool(&k, record).await?;
                    return Err(ExecError::Blocked(format!(
                        "{what}: the provider reported the update {id} {} with {} of {} node(s) replaced: {}; look at the pool, then apply --resume starts its upgrade again",
                        u.status,
                        record.old_nodes.len() - p.old_left.len(),
                        record.old_nodes.len(),
                        u.why()
                    )));
                }
                provider_done = u.successful();
            }
            if p.done && (provider_done || (eks_id.is_none() && blocking.is_none())) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ExecError::Blocked(format!(
                    "{what} was not replaced within {}: {} of {} at {}, old nodes left: {}; the provider's upgrade goes on, and apply --resume waits on it",
                    command::humanize(timeout),
                    p.at_target.len(),
                    record.start_count,
                    target.minor_version(),
                    if p.old_left.is_empty() { "none".to_string() } else { p.old_left.join(", ") }
                )));
            }
            let tick = self.options.poll.max(Duration::from_millis(50));
            match blocking.as_mut() {
                Some(call) => {
                    tokio::select! {
                        r = call => {
                            blocking = None;
                            if let Err(e) = r {
                                record.phase = PoolPhase::Failed;
                                record.note = Some(e.to_string());
                                self.save_pool(&k, record).await?;
                                // Read again: the provider may have replaced nodes since the last look.
                                let left = match self.pool_nodes(m, pool).await {
                                    Ok(now) => pool_progress(&record.old_nodes, record.start_count, &now, target).old_left.len(),
                                    Err(_) => p.old_left.len(),
                                };
                                return Err(match e {
                                    CommandError::Cancelled { .. } => ExecError::Interrupted(format!("{what}: {e}; apply --resume runs it again")),
                                    _ => ExecError::Blocked(format!(
                                        "{what}: the upgrade failed with {} of {} node(s) replaced: {e}; look at the pool, then apply --resume runs it again",
                                        record.old_nodes.len() - left,
                                        record.old_nodes.len(),
                                    )),
                                });
                            }
                            provider_done = true;
                        }
                        _ = tokio::time::sleep(tick) => {}
                    }
                }
                None => self.provider_sleep(tick, &what).await?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(provider: Provider) -> ManagedCli {
        ManagedCli {
            provider,
            cli: provider.default_cli().into(),
            cluster: "prod; rm -rf /".into(),
            region: Some("eu-west-1".into()),
            location: Some("europe-west1".into()),
            project: Some("acme".into()),
            resource_group: Some("rg-prod".into()),
            call_timeout: Duration::from_secs(60),
            upgrade_timeout: Duration::from_secs(3600),
            pool_timeout: None,
            poll: Duration::from_secs(15),
        }
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn argv_is_the_documented_command_with_every_value_its_own_argument() {
        let eks = cli(Provider::Eks);
        assert_eq!(
            eks.control_plane_argv(&v("1.31.14")),
            [
                "aws",
                "eks",
                "update-cluster-version",
                "--name",
                "prod; rm -rf /",
                "--kubernetes-version",
                "1.31",
                "--region",
                "eu-west-1",
                "--output",
                "json"
            ]
        );
        assert_eq!(
            eks.pool_argv("ng-a", &v("1.31.14")),
            [
                "aws",
                "eks",
                "update-nodegroup-version",
                "--cluster-name",
                "prod; rm -rf /",
                "--nodegroup-name",
                "ng-a",
                "--kubernetes-version",
                "1.31",
                "--region",
                "eu-west-1",
                "--output",
                "json"
            ]
        );
        assert_eq!(
            eks.describe_update_argv("u-1", UpdateOf::Nodegroup("ng-a")),
            [
                "aws",
                "eks",
                "describe-update",
                "--name",
                "prod; rm -rf /",
                "--update-id",
                "u-1",
                "--nodegroup-name",
                "ng-a",
                "--region",
                "eu-west-1",
                "--output",
                "json"
            ]
        );
        assert_eq!(
            eks.describe_update_argv("u-2", UpdateOf::Cluster)[..7],
            ["aws", "eks", "describe-update", "--name", "prod; rm -rf /", "--update-id", "u-2"]
        );
        assert_eq!(
            eks.addon_versions_argv("coredns", "1.31"),
            [
                "aws",
                "eks",
                "describe-addon-versions",
                "--addon-name",
                "coredns",
                "--kubernetes-version",
                "1.31",
                "--region",
                "eu-west-1",
                "--output",
                "json"
            ]
        );
        assert_eq!(
            eks.update_addon_argv("coredns", "v1.11.3-eksbuild.2"),
            [
                "aws",
                "eks",
                "update-addon",
                "--cluster-name",
                "prod; rm -rf /",
                "--addon-name",
                "coredns",
                "--addon-version",
                "v1.11.3-eksbuild.2",
                "--resolve-conflicts",
                "PRESERVE",
                "--region",
                "eu-west-1",
                "--output",
                "json"
            ]
        );
        let gke = cli(Provider::Gke);
        assert_eq!(
            gke.control_plane_argv(&v("1.31.2")),
            [
                "gcloud",
                "container",
                "clusters",
                "upgrade",
                "prod; rm -rf /",
                "--master",
                "--cluster-version",
                "1.31",
                "--location",
                "europe-west1",
                "--project",
                "acme",
                "--quiet"
            ]
        );
        assert_eq!(
            gke.pool_argv("default-pool", &v("1.31.2")),
            [
                "gcloud",
                "container",
                "clusters",
                "upgrade",
                "prod; rm -rf /",
                "--node-pool",
                "default-pool",
                "--cluster-version",
                "1.31",
                "--location",
                "europe-west1",
                "--project",
                "acme",
                "--quiet"
            ]
        );
        let aks = cli(Provider::Aks);
        assert_eq!(
            aks.control_plane_argv(&v("1.31.2")),
            [
                "az",
                "aks",
                "upgrade",
                "--resource-group",
                "rg-prod",
                "--name",
                "prod; rm -rf /",
                "--control-plane-only",
                "--kubernetes-version",
                "1.31",
                "--yes",
                "--output",
                "json"
            ]
        );
        assert_eq!(
            aks.pool_argv("nodepool1", &v("1.31.2")),
            [
                "az",
                "aks",
                "nodepool",
                "upgrade",
                "--resource-group",
                "rg-prod",
                "--cluster-name",
                "prod; rm -rf /",
                "--name",
                "nodepool1",
                "--kubernetes-version",
                "1.31",
                "--yes",
                "--output",
                "json"
            ]
        );
        // No region: the CLI's own configuration decides.
        let mut bare = cli(Provider::Eks);
        bare.region = None;
        assert!(!bare.pool_argv("ng", &v("1.31.2")).contains(&"--region".to_string()));
        let mut gke_no_location = cli(Provider::Gke);
        gke_no_location.location = None;
        assert!(gke_no_location.validate().unwrap_err().contains("--location"));
        let mut aks_no_group = cli(Provider::Aks);
        aks_no_group.resource_group = None;
        assert!(aks_no_group.validate().unwrap_err().contains("--resource-group"));
    }

    #[test]
    fn updates_and_addon_versions_are_read_from_the_cli_json() {
        let u = parse_update(
            r#"{"update": {"id": "b5f0ba18", "status": "InProgress", "type": "VersionUpdate", "errors": []}}"#,
        )
        .unwrap();
        assert_eq!((u.id.as_str(), u.failed(), u.successful()), ("b5f0ba18", false, false));
        let f = parse_update(
            r#"{"update": {"id": "x", "status": "Failed", "errors": [{"errorCode": "PodEvictionFailure", "errorMessage": "Reached max retries", "resourceIds": ["ng-b"]}]}}"#,
        )
        .unwrap();
        assert!(f.failed());
        assert_eq!(f.why(), "PodEvictionFailure: Reached max retries (ng-b)");
        assert!(parse_update("An error occurred").is_err());
        let list = |pairs: &[(&str, &str, bool)]| -> String {
            let vs: Vec<Value> = pairs
                .iter()
                .map(|(v, minor, d)| serde_json::json!({"addonVersion": v, "compatibilities": [{"clusterVersion": minor, "defaultVersion": d}]}))
                .collect();
            serde_json::json!({"addons": [{"addonName": "vpc-cni", "addonVersions": vs}]}).to_string()
        };
        let now = addon_versions(
            &list(&[
                ("v1.18.5-eksbuild.1", "1.30", true),
                ("v1.19.2-eksbuild.1", "1.30", false),
                ("v1.19.0-eksbuild.1", "1.30", false),
            ]),
            "1.30",
        );
        assert_eq!(now.len(), 3);
        let next = addon_versions(
            &list(&[("v1.19.2-eksbuild.1", "1.31", true), ("v1.19.0-eksbuild.1", "1.31", false)]),
            "1.31",
        );
        // The next minor's default, offered now too.
        assert_eq!(pick_addon_version(&now, &next).as_deref(), Some("v1.19.2-eksbuild.1"));
        // Its default not offered now: the newest offered for both.
        let next = addon_versions(
            &list(&[
                ("v1.20.4-eksbuild.2", "1.31", true),
                ("v1.19.0-eksbuild.1", "1.31", false),
                ("v1.19.2-eksbuild.1", "1.31", false),
            ]),
            "1.31",
        );
        assert_eq!(pick_addon_version(&now, &next).as_deref(), Some("v1.19.2-eksbuild.1"));
        // No hop after the step: the default for the cluster's minor.
        assert_eq!(pick_addon_version(&now, &now).as_deref(), Some("v1.18.5-eksbuild.1"));
        assert_eq!(
            pick_addon_version(&now, &addon_versions(&list(&[("v2.0.0-eksbuild.1", "1.31", true)]), "1.31")),
            None
        );
        assert!(addon_versions("not json", "1.31").is_empty());
        assert!(looks_secret(r#"  "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG""#));
        assert!(looks_secret("key AKIAIOSFODNN7EXAMPLE here"));
        assert!(!looks_secret(r#"  "status": "InProgress","#));
    }

    #[test]
    fn a_pool_is_replaced_once_its_old_nodes_are_gone_and_its_count_is_back_at_the_target() {
        let old = vec!["ng-a-1".to_string(), "ng-a-2".to_string()];
        let node = |n: &str, k: &str, ready: bool| PoolNode { name: n.into(), kubelet: Some(v(k)), ready };
        let t = v("1.31.14");
        // Surge: a replacement booting, both old nodes still there.
        let p = pool_progress(
            &old,
            2,
            &[node("ng-a-1", "1.30.4", true), node("ng-a-2", "1.30.4", true), node("ng-a-x1", "1.31.2", false)],
            &t,
        );
        assert_eq!((p.at_target.len(), p.old_left.len(), p.joining.len(), p.done), (0, 2, 1, false));
        // One old node gone, one replacement Ready (at a patch the provider chose).
        let p = pool_progress(&old, 2, &[node("ng-a-2", "1.30.4", true), node("ng-a-x1", "1.31.2", true)], &t);
        assert_eq!(
            (p.at_target, p.old_left.clone(), p.done),
            (vec!["ng-a-x1".to_string()], vec!["ng-a-2".to_string()], false)
        );
        // Old nodes gone but one replacement short: not done.
        let p = pool_progress(&old, 2, &[node("ng-a-x1", "1.31.2", true)], &t);
        assert!(!p.done);
        let p = pool_progress(&old, 2, &[node("ng-a-x1", "1.31.2", true), node("ng-a-x2", "1.31.2", true)], &t);
        assert!(p.done);
        // Nodes are grouped by the provider's pool label; others are named.
        let l = |k: &str, val: &str| -> BTreeMap<String, String> { [(k.to_string(), val.to_string())].into() };
        let (a, b, c) = (
            l("eks.amazonaws.com/nodegroup", "ng-a"),
            l("cloud.google.com/gke-nodepool", "p"),
            l("eks.amazonaws.com/nodegroup", "ng-b"),
        );
        let taken = vec![
            ("n1".to_string(), Some(&a)),
            ("n2".to_string(), Some(&b)),
            ("n3".to_string(), Some(&c)),
            ("n4".to_string(), None),
        ];
        let (pools, loose) = group_by_pool(&taken, Provider::Eks);
        assert_eq!(pools.keys().collect::<Vec<_>>(), ["ng-a", "ng-b"]);
        assert_eq!(loose, ["n2", "n4"]);
        assert_eq!(eks_addon_name("aws-vpc-cni"), Some("vpc-cni"));
        assert_eq!(eks_addon_name("ingress-nginx"), None);
    }
}
