//! Scenarios: a documented YAML description of a cluster (`docs/scenarios.md`), the built-in
//! ones (`demo`, `blocked`, `large`), and building a settled simulated cluster from one.
//!
//! A scenario names the cluster version and distro, node pools, workloads (with budgets and
//! volumes), add-ons (as the Deployments and DaemonSets a real install creates, with real image
//! names), raw manifests, Helm releases (stored as real Helm v3 release Secrets), timings and
//! faults. Building places every pod up front so the cluster starts settled; the controllers keep
//! it that way.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::controllers::template_hash;
use super::faults::Faults;
use super::placement::{NodeInfo, PodRules, Snapshot};
use super::registry::{ExtraKind, Registry, plural_of};
use super::store::{StorageKey, Store, name_suffix, parse_quantity as quantity};
use super::{Sim, Timings};
use crate::catalog::Catalog;
use crate::version::Version;

/// Largest scenario file accepted.
pub const MAX_SCENARIO_BYTES: usize = 16 * 1024 * 1024;
/// Largest generated cluster (nodes) a scenario may ask for.
pub const MAX_NODES: u32 = 20_000;
/// Largest number of pods a scenario may ask for.
pub const MAX_PODS: u64 = 500_000;

const DEMO: &str = include_str!("../../scenarios/demo.yaml");
const BLOCKED: &str = include_str!("../../scenarios/blocked.yaml");
const POOLS: &str = include_str!("../../scenarios/pools.yaml");

/// Names of the built-in scenarios.
pub const BUILTIN: [&str; 4] = ["demo", "blocked", "pools", "large"];

#[derive(Debug, thiserror::Error)]
#[error("scenario {file}: {message}")]
pub struct ScenarioError {
    pub file: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub cluster: ClusterSpec,
    #[serde(default)]
    pub timings: Option<Timings>,
    #[serde(default)]
    pub faults: Option<Faults>,
    pub node_pools: Vec<NodePool>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub workloads: Vec<Workload>,
    #[serde(default)]
    pub addons: Vec<AddonSpec>,
    /// Raw multi-document YAML, created as given.
    #[serde(default)]
    pub manifests: Option<String>,
    #[serde(default)]
    pub helm_releases: Vec<HelmRelease>,
    /// Requests clients already made, as `group/version/resource` (`/v1/pods` for core), so the
    /// apiserver's deprecated-API metric starts with them (real clusters have history).
    #[serde(default)]
    pub past_requests: Vec<String>,
    /// Who may use the API (users, tokens, ServiceAccounts) and whom the written kubeconfig acts
    /// as. RBAC objects themselves come through `manifests`.
    #[serde(default)]
    pub access: Access,
    /// Where the scenario came from (file path or built-in name), for error messages.
    #[serde(skip)]
    pub source: String,
}

/// Identities the simulated apiserver knows besides the default admin.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Access {
    /// Whom the written kubeconfig acts as: a user below, `system:serviceaccount:NS:NAME` for a
    /// ServiceAccount below, or (unset) the admin `kubernetes-admin` in `kubeadm:cluster-admins`.
    #[serde(default)]
    pub kubeconfig_user: Option<String>,
    #[serde(default)]
    pub users: Vec<AccessUser>,
    #[serde(default)]
    pub service_accounts: Vec<AccessServiceAccount>,
}

/// A user: authenticated by a static bearer token when one is given, else by a client
/// certificate the simulator issues (CN = name, O = groups).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessUser {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub token: Option<String>,
}

/// A ServiceAccount (created in its namespace) and the bearer token that authenticates as it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessServiceAccount {
    pub namespace: String,
    pub name: String,
    pub token: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// The apiserver version, e.g. `1.24.17`.
    pub version: String,
    pub distro: String,
    /// etcd image tag on control-plane nodes (kubeadm-style clusters).
    #[serde(default)]
    pub etcd_version: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePool {
    pub name: String,
    pub count: u32,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Kubelet version; defaults to the cluster version.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub capacity: Capacity,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<Taint>,
    #[serde(default = "default_os")]
    pub os_image: String,
    #[serde(default = "default_runtime")]
    pub container_runtime: String,
    #[serde(default = "default_kernel")]
    pub kernel_version: String,
    /// Start cordoned.
    #[serde(default)]
    pub unschedulable: bool,
    /// The pool's node names, one per node (as in the cluster being copied); by default
    /// `NAME-1` … `NAME-N` (or `NAME` for a pool of one).
    #[serde(default)]
    pub names: Vec<String>,
}

fn default_os() -> String {
    "Ubuntu 22.04.4 LTS".into()
}
fn default_runtime() -> String {
    "containerd://1.7.13".into()
}
fn default_kernel() -> String {
    "5.15.0-105-generic".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Capacity {
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity { cpu: "8".into(), memory: "32Gi".into(), pods: 110 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    pub effect: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    Pod,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
    #[serde(default = "default_ns")]
    pub namespace: String,
    #[serde(default = "one")]
    pub replicas: u32,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub requests: Option<Requests>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub empty_dir: bool,
    #[serde(default)]
    pub local_volume: bool,
    /// A StatefulSet's network block volume per replica (its size, e.g. `10Gi`): a
    /// `volumeClaimTemplates` entry, provisioned and attached by the simulated CSI driver.
    #[serde(default)]
    pub block_volume: Option<String>,
    #[serde(default)]
    pub pdb: Option<PdbSpec>,
    /// Pods run but never become Ready.
    #[serde(default)]
    pub never_ready: bool,
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub tolerate_all: bool,
    #[serde(default)]
    pub termination_grace_period_seconds: Option<i64>,
    /// The pods' `spec.affinity`, as is.
    #[serde(default)]
    pub affinity: Option<Value>,
    /// The pods' tolerations, besides the one `tolerateAll` adds.
    #[serde(default)]
    pub tolerations: Vec<Value>,
    /// The pods' `spec.topologySpreadConstraints`, as is.
    #[serde(default)]
    pub topology_spread_constraints: Vec<Value>,
    /// Where the pods run: replica `i` starts on `nodes[i]` when that node exists, whatever the
    /// rules say (the cluster being copied put it there); the others are placed by the rules.
    #[serde(default)]
    pub nodes: Vec<String>,
}

fn default_ns() -> String {
    "default".into()
}
fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requests {
    #[serde(default)]
    pub cpu: Option<String>,
    #[serde(default)]
    pub memory: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PdbSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub min_available: Option<Value>,
    #[serde(default)]
    pub max_unavailable: Option<Value>,
    /// `policy/v1` (default) or `policy/v1beta1` on clusters that still serve it.
    #[serde(default)]
    pub api_version: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddonSpec {
    /// An add-on name from the catalog's addons.yaml (coredns, ingress-nginx, ...).
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub replicas: Option<u32>,
    /// Full image repository, to override the built-in one.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub pdb: Option<PdbSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmRelease {
    pub name: String,
    #[serde(default = "default_ns")]
    pub namespace: String,
    pub chart: String,
    pub chart_version: String,
    #[serde(default)]
    pub app_version: Option<String>,
    #[serde(default = "one")]
    pub revision: u32,
    #[serde(default = "deployed")]
    pub status: String,
    /// The rendered manifest Helm stored for the release.
    pub manifest: String,
}

fn deployed() -> String {
    "deployed".into()
}

/// How an add-on is installed: kind, namespace, name, image repository, labels.
struct AddonInstall {
    kind: WorkloadKind,
    namespace: &'static str,
    name: &'static str,
    image: &'static str,
    tag_prefix: &'static str,
    labels: &'static [(&'static str, &'static str)],
    replicas: u32,
}

fn addon_install(name: &str) -> Option<AddonInstall> {
    use WorkloadKind::*;
    let a = |kind, namespace, name, image, tag_prefix, labels, replicas| AddonInstall {
        kind,
        namespace,
        name,
        image,
        tag_prefix,
        labels,
        replicas,
    };
    Some(match name {
        "coredns" => a(
            Deployment,
            "kube-system",
            "coredns",
            "registry.k8s.io/coredns/coredns",
            "v",
            &[("k8s-app", "kube-dns")][..],
            2,
        ),
        "kube-proxy" => a(
            DaemonSet,
            "kube-system",
            "kube-proxy",
            "registry.k8s.io/kube-proxy",
            "v",
            &[("k8s-app", "kube-proxy")][..],
            1,
        ),
        "metrics-server" => a(
            Deployment,
            "kube-system",
            "metrics-server",
            "registry.k8s.io/metrics-server/metrics-server",
            "v",
            &[("k8s-app", "metrics-server")][..],
            1,
        ),
        "ingress-nginx" => a(
            Deployment,
            "ingress-nginx",
            "ingress-nginx-controller",
            "registry.k8s.io/ingress-nginx/controller",
            "v",
            &[("app.kubernetes.io/name", "ingress-nginx"), ("app.kubernetes.io/component", "controller")][..],
            2,
        ),
        "cert-manager" => a(
            Deployment,
            "cert-manager",
            "cert-manager",
            "quay.io/jetstack/cert-manager-controller",
            "v",
            &[("app.kubernetes.io/name", "cert-manager"), ("app.kubernetes.io/component", "controller")][..],
            1,
        ),
        "cluster-autoscaler" => a(
            Deployment,
            "kube-system",
            "cluster-autoscaler",
            "registry.k8s.io/autoscaling/cluster-autoscaler",
            "v",
            &[("app", "cluster-autoscaler")][..],
            1,
        ),
        "calico" => a(
            DaemonSet,
            "kube-system",
            "calico-node",
            "docker.io/calico/node",
            "v",
            &[("k8s-app", "calico-node")][..],
            1,
        ),
        "cilium" => {
            a(DaemonSet, "kube-system", "cilium", "quay.io/cilium/cilium", "v", &[("k8s-app", "cilium")][..], 1)
        }
        "flannel" => a(
            DaemonSet,
            "kube-flannel",
            "kube-flannel-ds",
            "docker.io/flannel/flannel",
            "v",
            &[("app", "flannel")][..],
            1,
        ),
        "aws-vpc-cni" => a(
            DaemonSet,
            "kube-system",
            "aws-node",
            "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni",
            "v",
            &[("k8s-app", "aws-node")][..],
            1,
        ),
        "kube-state-metrics" => a(
            Deployment,
            "kube-system",
            "kube-state-metrics",
            "registry.k8s.io/kube-state-metrics/kube-state-metrics",
            "v",
            &[("app.kubernetes.io/name", "kube-state-metrics")][..],
            1,
        ),
        "istio" => a(Deployment, "istio-system", "istiod", "docker.io/istio/pilot", "", &[("app", "istiod")][..], 1),
        "argo-cd" => a(
            Deployment,
            "argocd",
            "argocd-server",
            "quay.io/argoproj/argocd",
            "v",
            &[("app.kubernetes.io/part-of", "argocd"), ("app.kubernetes.io/name", "argocd-server")][..],
            1,
        ),
        "aws-load-balancer-controller" => a(
            Deployment,
            "kube-system",
            "aws-load-balancer-controller",
            "public.ecr.aws/eks/aws-load-balancer-controller",
            "v",
            &[("app.kubernetes.io/name", "aws-load-balancer-controller")][..],
            2,
        ),
        _ => return None,
    })
}

impl Scenario {
    /// A built-in scenario by name, or a scenario file.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        match name_or_path {
            "demo" => Scenario::parse("demo (built in)", DEMO),
            "blocked" => Scenario::parse("blocked (built in)", BLOCKED),
            "pools" => Scenario::parse("pools (built in)", POOLS),
            "large" => Ok(large()),
            path => {
                let err = |m: String| ScenarioError { file: path.to_string(), message: m };
                let text = match crate::limits::read_text(
                    std::path::Path::new(path),
                    "scenario file",
                    MAX_SCENARIO_BYTES as u64,
                ) {
                    Ok(t) => t,
                    Err(crate::limits::ReadError::Io { message, .. }) => {
                        return Err(err(format!("{message}; built-in scenarios are {}", BUILTIN.join(", "))));
                    }
                    Err(e) => return Err(err(e.to_string())),
                };
                Scenario::parse(path, &text)
            }
        }
    }

    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let options = serde_saphyr::options! { with_snippet: false };
        // The path of the field being read when the parser failed, so a type error names it.
        let mut path = String::new();
        let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
            serde_path_to_error::deserialize::<_, Scenario>(de).map_err(|e| {
                path = e.path().to_string();
                e.into_inner()
            })
        });
        let s = parsed.map_err(|e| {
            let mut message =
                e.to_string().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
            if let Some(better) = type_error(&message, e.location(), text) {
                message = better;
            }
            let message = if path.is_empty() || path == "." { message } else { format!("field '{path}': {message}") };
            ScenarioError { file: file.to_string(), message }
        })?;
        s.validate(file)?;
        Ok(Scenario { source: file.to_string(), ..s })
    }

    fn validate_access(&self, file: &str) -> Result<(), ScenarioError> {
        let err =
            |field: String, m: &str| ScenarioError { file: file.to_string(), message: format!("field '{field}': {m}") };
        let a = &self.access;
        if a.users.len() + a.service_accounts.len() > 1_000 {
            return Err(err("access".into(), "at most 1000 users and ServiceAccounts"));
        }
        let mut tokens = std::collections::BTreeSet::new();
        for (i, u) in a.users.iter().enumerate() {
            if u.name.is_empty() || u.name.len() > 253 || u.name.chars().any(char::is_control) {
                return Err(err(format!("access.users[{i}].name"), "must be 1 to 253 printable characters"));
            }
            if u.groups.len() > 64
                || u.groups.iter().any(|g| g.is_empty() || g.len() > 253 || g.chars().any(char::is_control))
            {
                return Err(err(
                    format!("access.users[{i}].groups"),
                    "at most 64 groups of 1 to 253 printable characters",
                ));
            }
            if u.token.is_none() && u.groups.len() > 1 {
                return Err(err(
                    format!("access.users[{i}].groups"),
                    "a user without a token gets a client certificate, which carries one group; give the user a token for more",
                ));
            }
            if let Some(t) = &u.token
                && (!valid_token(t) || !tokens.insert(t.clone()))
            {
                return Err(err(
                    format!("access.users[{i}].token"),
                    "must be 8 to 1024 visible ASCII characters, unique",
                ));
            }
        }
        for (i, sa) in a.service_accounts.iter().enumerate() {
            for (field, v) in [("namespace", &sa.namespace), ("name", &sa.name)] {
                if !is_dns_label(v) {
                    return Err(err(format!("access.serviceAccounts[{i}].{field}"), "must be a DNS-1123 label"));
                }
            }
            if !self.namespaces.contains(&sa.namespace)
                && !matches!(sa.namespace.as_str(), "default" | "kube-system" | "kube-public" | "kube-node-lease")
            {
                return Err(err(
                    format!("access.serviceAccounts[{i}].namespace"),
                    "must be a namespace of the scenario",
                ));
            }
            if !valid_token(&sa.token) || !tokens.insert(sa.token.clone()) {
                return Err(err(
                    format!("access.serviceAccounts[{i}].token"),
                    "must be 8 to 1024 visible ASCII characters, unique",
                ));
            }
        }
        if let Some(who) = &a.kubeconfig_user {
            let known = a.users.iter().any(|u| &u.name == who)
                || a.service_accounts
                    .iter()
                    .any(|sa| *who == format!("system:serviceaccount:{}:{}", sa.namespace, sa.name));
            if !known {
                return Err(err(
                    "access.kubeconfigUser".into(),
                    "must name one of access.users or access.serviceAccounts (system:serviceaccount:NS:NAME)",
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn validate(&self, file: &str) -> Result<(), ScenarioError> {
        let err =
            |field: &str, m: String| ScenarioError { file: file.to_string(), message: format!("field '{field}': {m}") };
        self.cluster.version.parse::<Version>().map_err(|e| err("cluster.version", e.to_string()))?;
        self.validate_access(file)?;
        let mut nodes: u64 = 0;
        for (i, p) in self.node_pools.iter().enumerate() {
            if let Some(v) = &p.version {
                v.parse::<Version>().map_err(|e| err(&format!("nodePools[{i}].version"), e.to_string()))?;
            }
            nodes += u64::from(p.count);
            for t in &p.taints {
                if !matches!(t.effect.as_str(), "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
                    return Err(err(
                        &format!("nodePools[{i}].taints.effect"),
                        format!("'{}' is not NoSchedule, PreferNoSchedule or NoExecute", t.effect),
                    ));
                }
            }
        }
        if nodes == 0 {
            return Err(err("nodePools", "a cluster needs at least one node".into()));
        }
        if nodes > u64::from(MAX_NODES) {
            return Err(err("nodePools", format!("{nodes} nodes is more than the {MAX_NODES} allowed")));
        }
        let pods: u64 = self
            .workloads
            .iter()
            .map(|w| if w.kind == WorkloadKind::DaemonSet { nodes } else { u64::from(w.replicas) })
            .chain(self.addons.iter().map(|a| match addon_install(&a.name).map(|i| i.kind) {
                Some(WorkloadKind::DaemonSet) => nodes,
                _ => u64::from(a.replicas.unwrap_or(2)),
            }))
            .sum();
        if pods > MAX_PODS {
            return Err(err("workloads", format!("{pods} replicas is more than the {MAX_PODS} allowed")));
        }
        super::scenario_checks::check(self).map_err(|r| err(&r.field, r.message))?;
        for (i, w) in self.workloads.iter().enumerate() {
            let Some(size) = &w.block_volume else { continue };
            if w.kind != WorkloadKind::StatefulSet {
                return Err(err(
                    &format!("workloads[{i}].blockVolume"),
                    format!("only a StatefulSet claims block volumes; '{}' is a {:?}", w.name, w.kind),
                ));
            }
            let bytes = crate::quantity::parse_quantity(size);
            if !(bytes.is_finite() && bytes >= 1.0) {
                return Err(err(
                    &format!("workloads[{i}].blockVolume"),
                    format!("'{size}' is not a storage size such as 10Gi"),
                ));
            }
        }
        for (i, a) in self.addons.iter().enumerate() {
            if addon_install(&a.name).is_none() && a.image.is_none() {
                return Err(err(
                    &format!("addons[{i}].name"),
                    format!(
                        "unknown add-on '{}'; give its image or use one of coredns, kube-proxy, metrics-server, ingress-nginx, cert-manager, cluster-autoscaler, calico, cilium, flannel, aws-vpc-cni, kube-state-metrics, istio, argo-cd, aws-load-balancer-controller",
                        a.name
                    ),
                ));
            }
        }
        if let Some(t) = &self.timings {
            for (field, v) in [
                ("podStartSeconds", t.pod_start_seconds),
                ("nodeRestartSeconds", t.node_restart_seconds),
                ("apiserverRestartSeconds", t.apiserver_restart_seconds),
                ("defaultGraceSeconds", t.default_grace_seconds),
                ("maxGraceSeconds", t.max_grace_seconds),
                ("bookmarkSeconds", t.bookmark_seconds),
                ("volumeDetachSeconds", t.volume_detach_seconds),
            ] {
                if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
                    return Err(err(&format!("timings.{field}"), format!("{v} is not between 0 and 86400 seconds")));
                }
            }
        }
        if let Some(f) = &self.faults {
            f.validate().map_err(|m| err("faults", m))?;
        }
        Ok(())
    }
}

fn obj(api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Value {
    let mut v = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if let Some(ns) = ns {
        v["metadata"]["namespace"] = json!(ns);
    }
    v
}

struct Builder<'a> {
    store: &'a Store,
    registry: Registry,
    /// The nodes and the room left on them, and the pods placement rules count.
    snap: Snapshot<'a>,
    /// Where round-robin placement looks first.
    next_node: usize,
    seq: u64,
    node_ips: BTreeMap<String, String>,
    /// The first object a real apiserver would have refused (its name or labels): the build
    /// fails with it. The checks of [`Scenario::validate`] catch these earlier, naming the field.
    refused: Option<String>,
}

impl Builder<'_> {
    fn load(&mut self, key: &StorageKey, v: Value) {
        if let Err(e) = self.store.load(key, v)
            && self.refused.is_none()
        {
            self.refused = Some(e.message);
        }
    }

    fn uid_of(&self, key: &StorageKey, ns: &str, name: &str) -> String {
        self.store
            .get(key, ns, name)
            .and_then(|o| o.value().pointer("/metadata/uid").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default()
    }

    /// Picks a node for a pod as the scheduler's filters allow, round-robin over the nodes, or
    /// the node it is pinned to when that node exists; the pod's room is taken.
    fn place(&mut self, rules: &PodRules, pinned: Option<&str>) -> Option<String> {
        if let Some(i) = pinned.and_then(|n| self.snap.index_of(n)) {
            self.snap.bind(rules, i);
            return Some(self.snap.nodes[i].name.clone());
        }
        let n = self.snap.nodes.len();
        if n == 0 {
            return None;
        }
        let prep = self.snap.prepare(rules);
        for k in 0..n {
            let idx = (self.next_node + k) % n;
            if self.snap.filter(rules, &prep, idx).is_ok() {
                self.snap.bind(rules, idx);
                self.next_node = (idx + 1) % n;
                return Some(self.snap.nodes[idx].name.clone());
            }
        }
        None
    }
}

fn running_status() -> Value {
    let now = super::clock::now_rfc3339();
    json!({
        "phase": "Running",
        "hostIP": "",
        "startTime": now,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
    })
}

fn pod_template(w: &Workload, labels: &BTreeMap<String, String>, image: &str) -> Value {
    // A container name is a DNS-1123 label: the workload's name (a subdomain) without its dots.
    let container_name: String = w.name.replace('.', "-").chars().take(63).collect();
    let mut container = json!({"name": container_name.trim_end_matches('-'), "image": image});
    if let Some(r) = &w.requests {
        let mut req = json!({});
        if let Some(c) = &r.cpu {
            req["cpu"] = json!(c);
        }
        if let Some(m) = &r.memory {
            req["memory"] = json!(m);
        }
        container["resources"] = json!({"requests": req});
    }
    let mut spec = json!({"containers": [container]});
    let mut volumes = Vec::new();
    if w.empty_dir {
        volumes.push(json!({"name": "scratch", "emptyDir": {}}));
    }
    if w.local_volume {
        volumes.push(json!({"name": "local-data", "hostPath": {"path": format!("/var/lib/{}", w.name), "type": "DirectoryOrCreate"}}));
    }
    if !volumes.is_empty() {
        spec["volumes"] = Value::Array(volumes);
    }
    if !w.node_selector.is_empty() {
        spec["nodeSelector"] = json!(w.node_selector);
    }
    let mut tolerations = Vec::new();
    if w.tolerate_all {
        tolerations.push(json!({"operator": "Exists"}));
    }
    tolerations.extend(w.tolerations.iter().cloned());
    if !tolerations.is_empty() {
        spec["tolerations"] = Value::Array(tolerations);
    }
    if let Some(a) = &w.affinity {
        spec["affinity"] = a.clone();
    }
    if !w.topology_spread_constraints.is_empty() {
        spec["topologySpreadConstraints"] = Value::Array(w.topology_spread_constraints.clone());
    }
    if let Some(g) = w.termination_grace_period_seconds {
        spec["terminationGracePeriodSeconds"] = json!(g);
    }
    let mut tpl = json!({"metadata": {"labels": labels}, "spec": spec});
    if w.never_ready {
        tpl["metadata"]["annotations"] = json!({"sim.k8s-upgrade.dev/never-ready": "true"});
    }
    tpl
}

fn add_workload(b: &mut Builder<'_>, w: &Workload, image: &str) -> Result<(), String> {
    let ns = w.namespace.as_str();
    let mut labels = w.labels.clone();
    labels.entry("app".into()).or_insert_with(|| w.name.clone());
    let selector_labels: BTreeMap<String, String> = labels.clone();
    let tpl = pod_template(w, &labels, image);
    let (cpu, mem) = w.requests.as_ref().map_or((0.0, 0.0), |r| {
        (r.cpu.as_deref().map(quantity).unwrap_or(0.0), r.memory.as_deref().map(quantity).unwrap_or(0.0))
    });
    let rules = PodRules::of(ns, &tpl, (cpu, mem));
    let pinned = |i: u32| w.nodes.get(i as usize).map(String::as_str);
    let make_pod = |b: &mut Builder<'_>,
                    name: String,
                    owner: Option<(&str, &str, &str, &str)>,
                    node: Option<String>,
                    extra_labels: &[(&str, String)]| {
        let mut pod = obj("v1", "Pod", Some(ns), &name);
        let mut pl = tpl["metadata"]["labels"].clone();
        for (k, v) in extra_labels {
            pl[*k] = json!(v);
        }
        pod["metadata"]["labels"] = pl;
        if let Some(a) = tpl.pointer("/metadata/annotations") {
            pod["metadata"]["annotations"] = a.clone();
        }
        if let Some((api, kind, oname, uid)) = owner {
            pod["metadata"]["ownerReferences"] = json!([{"apiVersion": api, "kind": kind, "name": oname, "uid": uid, "controller": true, "blockOwnerDeletion": true}]);
        }
        pod["spec"] = tpl["spec"].clone();
        match node {
            Some(n) => {
                pod["spec"]["nodeName"] = json!(n);
                let mut st = running_status();
                b.seq += 1;
                st["podIP"] =
                    json!(format!("10.{}.{}.{}", 64 + (b.seq >> 16) % 64, (b.seq >> 8) % 256, b.seq % 254 + 1));
                if let Some(ip) = b.node_ips.get(&n) {
                    st["hostIP"] = json!(ip);
                }
                if w.never_ready {
                    st["conditions"][1]["status"] = json!("False");
                    st["conditions"][2]["status"] = json!("False");
                }
                let ready = !w.never_ready;
                st["containerStatuses"] = json!([{"name": tpl["spec"]["containers"][0]["name"], "image": image, "ready": ready, "restartCount": 0, "started": true, "state": {"running": {"startedAt": super::clock::now_rfc3339()}}}]);
                pod["status"] = st;
            }
            None => pod["status"] = json!({"phase": "Pending"}),
        }
        b.seq += 1;
        // Generated suffixes can collide; a pod must never overwrite another.
        let mut name = name;
        while b.store.get(&StorageKey::core("pods"), ns, &name).is_some() {
            b.seq += 1;
            name = format!(
                "{}-{}",
                name.rsplit_once('-').map_or(name.as_str(), |(stem, _)| stem),
                name_suffix(b.seq.wrapping_mul(6_700_417))
            );
        }
        pod["metadata"]["name"] = json!(name);
        b.load(&StorageKey::core("pods"), pod);
    };
    match w.kind {
        WorkloadKind::Deployment => {
            let mut dep = obj("apps/v1", "Deployment", Some(ns), &w.name);
            dep["metadata"]["labels"] = json!(labels);
            dep["spec"] =
                json!({"replicas": w.replicas, "selector": {"matchLabels": selector_labels}, "template": tpl});
            b.load(&StorageKey::new("apps", "deployments"), dep);
            let dep_uid = b.uid_of(&StorageKey::new("apps", "deployments"), ns, &w.name);
            let hash = template_hash(&tpl);
            let rs_name = format!("{}-{hash}", w.name);
            let mut rs_tpl = tpl.clone();
            rs_tpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut rs = obj("apps/v1", "ReplicaSet", Some(ns), &rs_name);
            rs["metadata"]["labels"] = rs_tpl["metadata"]["labels"].clone();
            rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": w.name, "uid": dep_uid, "controller": true, "blockOwnerDeletion": true}]);
            let mut sel = selector_labels.clone();
            sel.insert("pod-template-hash".into(), hash.clone());
            rs["spec"] = json!({"replicas": w.replicas, "selector": {"matchLabels": sel}, "template": rs_tpl});
            b.load(&StorageKey::new("apps", "replicasets"), rs);
            let rs_uid = b.uid_of(&StorageKey::new("apps", "replicasets"), ns, &rs_name);
            let rules = rules.with_label("pod-template-hash", &hash);
            for i in 0..w.replicas {
                let node = b.place(&rules, pinned(i));
                let name = format!("{rs_name}-{}", name_suffix(b.seq.wrapping_mul(7919) ^ u64::from(i)));
                make_pod(
                    b,
                    name,
                    Some(("apps/v1", "ReplicaSet", &rs_name, &rs_uid)),
                    node,
                    &[("pod-template-hash", hash.clone())],
                );
            }
        }
        WorkloadKind::StatefulSet => {
            let mut sts = obj("apps/v1", "StatefulSet", Some(ns), &w.name);
            sts["metadata"]["labels"] = json!(labels);
            sts["spec"] = json!({"replicas": w.replicas, "serviceName": w.name, "selector": {"matchLabels": selector_labels}, "template": tpl});
            if let Some(size) = &w.block_volume {
                sts["spec"]["volumeClaimTemplates"] = json!([{
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
                }]);
            }
            let sts_value = sts.clone();
            b.load(&StorageKey::new("apps", "statefulsets"), sts);
            let uid = b.uid_of(&StorageKey::new("apps", "statefulsets"), ns, &w.name);
            for i in 0..w.replicas {
                let name = format!("{}-{i}", w.name);
                let node = b.place(&rules.with_label("statefulset.kubernetes.io/pod-name", &name), pinned(i));
                make_pod(
                    b,
                    name.clone(),
                    Some(("apps/v1", "StatefulSet", &w.name, &uid)),
                    node,
                    &[("statefulset.kubernetes.io/pod-name", name.clone())],
                );
                let claims = super::volumes::ensure_claims(b.store, &sts_value, ns, &name);
                if !claims.is_empty() {
                    let _ = b.store.mutate(&StorageKey::core("pods"), ns, &name, None, false, |p| {
                        super::volumes::add_to_pod(p, claims);
                        Ok(())
                    });
                }
            }
        }
        WorkloadKind::DaemonSet => {
            let mut ds = obj("apps/v1", "DaemonSet", Some(ns), &w.name);
            ds["metadata"]["labels"] = json!(labels);
            let mut dtpl = tpl.clone();
            if w.tolerate_all || dtpl.pointer("/spec/tolerations").is_none() {
                dtpl["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
            }
            ds["spec"] = json!({"selector": {"matchLabels": selector_labels}, "template": dtpl});
            b.load(&StorageKey::new("apps", "daemonsets"), ds);
            let uid = b.uid_of(&StorageKey::new("apps", "daemonsets"), ns, &w.name);
            // The DaemonSet controller's choice of nodes: taints tolerated, labels selected.
            let rules = PodRules::of(ns, &dtpl, (cpu, mem));
            for i in 0..b.snap.nodes.len() {
                if !rules.daemon_fits(&b.snap.nodes[i]) {
                    continue;
                }
                b.snap.bind(&rules, i);
                let node = b.snap.nodes[i].name.clone();
                let name = format!("{}-{}", w.name, name_suffix(b.seq.wrapping_mul(104_729)));
                make_pod(b, name, Some(("apps/v1", "DaemonSet", &w.name, &uid)), Some(node), &[]);
            }
        }
        WorkloadKind::Job => {
            let mut job = obj("batch/v1", "Job", Some(ns), &w.name);
            let mut jtpl = tpl.clone();
            jtpl["spec"]["restartPolicy"] = json!("Never");
            job["spec"] = json!({"completions": w.replicas, "template": jtpl});
            b.load(&StorageKey::new("batch", "jobs"), job);
        }
        WorkloadKind::Pod => {
            for i in 0..w.replicas {
                let node = b.place(&rules, pinned(i));
                let name = if w.replicas == 1 { w.name.clone() } else { format!("{}-{i}", w.name) };
                make_pod(b, name, None, node, &[]);
            }
        }
    }
    if let Some(p) = &w.pdb {
        let api = p.api_version.clone().unwrap_or_else(|| "policy/v1".into());
        if b.registry.find_kind(&api, "PodDisruptionBudget").is_none() {
            return Err(format!(
                "workload {}: {api} PodDisruptionBudget is not served by Kubernetes {}",
                w.name, b.registry.minor
            ));
        }
        let name = p.name.clone().unwrap_or_else(|| format!("{}-pdb", w.name));
        let mut pdb = obj(&api, "PodDisruptionBudget", Some(ns), &name);
        let mut spec = json!({"selector": {"matchLabels": selector_labels}});
        if let Some(m) = &p.min_available {
            spec["minAvailable"] = m.clone();
        }
        if let Some(m) = &p.max_unavailable {
            spec["maxUnavailable"] = m.clone();
        }
        pdb["spec"] = spec;
        b.load(&StorageKey::new("policy", "poddisruptionbudgets"), pdb);
    }
    Ok(())
}

fn ensure_namespace(b: &mut Builder<'_>, ns: &str) {
    if b.store.get(&StorageKey::core("namespaces"), "", ns).is_none() {
        let mut n = obj("v1", "Namespace", None, ns);
        n["metadata"]["labels"] = json!({"kubernetes.io/metadata.name": ns});
        n["spec"] = json!({"finalizers": ["kubernetes"]});
        n["status"] = json!({"phase": "Active"});
        b.load(&StorageKey::core("namespaces"), n);
    }
}

fn helm_secret(r: &HelmRelease) -> Result<Value, String> {
    let release = json!({
        "name": r.name,
        "namespace": r.namespace,
        "version": r.revision,
        "info": {"first_deployed": super::clock::now_rfc3339(), "last_deployed": super::clock::now_rfc3339(), "deleted": "", "description": "Install complete", "status": r.status},
        "chart": {"metadata": {"name": r.chart, "version": r.chart_version, "appVersion": r.app_version, "apiVersion": "v2"}, "templates": [], "values": {}},
        "config": {},
        "manifest": r.manifest,
        "hooks": [],
    });
    // Helm stores base64(gzip(json)) as the Secret value; the API carries Secret data in base64.
    let helm_value = crate::helm::storage::encode_payload(&serde_json::to_vec(&release).map_err(|e| e.to_string())?);
    let b64 = base64::engine::general_purpose::STANDARD;
    let name = crate::helm::secret_name(&r.name, u64::from(r.revision));
    let mut s = obj("v1", "Secret", Some(&r.namespace), &name);
    s["type"] = json!(crate::helm::SECRET_TYPE);
    s["metadata"]["labels"] =
        json!({"owner": "helm", "name": r.name, "status": r.status, "version": r.revision.to_string()});
    s["data"] = json!({"release": b64.encode(&helm_value)});
    Ok(s)
}

/// Builds the simulator state for a scenario.
pub fn build(s: Scenario, catalog: Arc<Catalog>, time_scale: f64) -> Result<Sim, ScenarioError> {
    let file = if s.source.is_empty() { s.name.clone() } else { s.source.clone() };
    let err = |m: String| ScenarioError { file: file.clone(), message: m };
    if catalog.distro(&s.cluster.distro).is_none() {
        return Err(err(format!(
            "field 'cluster.distro': unknown distro '{}'; known: {}",
            s.cluster.distro,
            catalog.distro_names().join(", ")
        )));
    }
    let version: Version = s.cluster.version.parse().map_err(|e: crate::version::VersionError| err(e.to_string()))?;
    let minor = version.minor_version();
    let docs: Vec<Value> = match &s.manifests {
        Some(text) => {
            // The parser's budget grows with the text (bounded by the scenario's own size
            // limit), so a twin's 1,500 budgets, one document each, are read.
            let mut budget = serde_saphyr::Budget::default();
            budget.max_documents = budget.max_documents.max(text.len() / 16);
            budget.max_events = budget.max_events.max(text.len().saturating_mul(2));
            budget.max_nodes = budget.max_nodes.max(text.len());
            budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(text.len());
            let options = serde_saphyr::options! { budget: Some(budget), with_snippet: false };
            serde_saphyr::from_multiple_with_options::<Value>(text, options)
                .map_err(|e| err(format!("field 'manifests': {}", e.to_string().lines().next().unwrap_or_default())))?
                .into_iter()
                .filter(|d| !d.is_null())
                .collect()
        }
        None => vec![],
    };
    // Kinds the manifests bring that Kubernetes itself does not serve (CRDs, add-on APIs).
    let base = Registry::for_version(minor, &catalog, &[]);
    let mut extras = Vec::new();
    for d in &docs {
        if d["kind"] == "CustomResourceDefinition" {
            let group = d.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default();
            let plural = d.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or_default();
            let kind = d.pointer("/spec/names/kind").and_then(Value::as_str).unwrap_or_default();
            let namespaced = d.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
            for v in d.pointer("/spec/versions").and_then(Value::as_array).into_iter().flatten() {
                if let Some(version) = v.get("name").and_then(Value::as_str) {
                    extras.push(ExtraKind {
                        group: group.into(),
                        version: version.into(),
                        kind: kind.into(),
                        resource: plural.into(),
                        namespaced,
                    });
                }
            }
        }
    }
    for (i, d) in docs.iter().enumerate() {
        let api = d.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = d.get("kind").and_then(Value::as_str).unwrap_or_default();
        if api.is_empty() || kind.is_empty() {
            return Err(err(format!("field 'manifests': document {} has no apiVersion or kind", i + 1)));
        }
        if base.find_kind(api, kind).is_some()
            || extras.iter().any(|x| format!("{}/{}", x.group, x.version) == api && x.kind == kind)
        {
            continue;
        }
        let (group, ver) = api.split_once('/').unwrap_or(("", api));
        let known_group = base.defs.iter().any(|d| d.group == group)
            || catalog.apis.apis.iter().any(|a| a.group == group && a.version == ver);
        if known_group {
            return Err(err(format!(
                "field 'manifests': document {} ({api} {kind}) is not served by Kubernetes {minor}",
                i + 1
            )));
        }
        extras.push(ExtraKind {
            group: group.into(),
            version: ver.into(),
            kind: kind.into(),
            resource: plural_of(kind),
            namespaced: d.pointer("/metadata/namespace").is_some(),
        });
    }
    let registry = Registry::for_version(minor, &catalog, &extras);
    let store = Store::new(200_000);
    let mut b = Builder {
        store: &store,
        registry: registry.clone(),
        snap: Snapshot::new(&store, Vec::new()),
        next_node: 0,
        seq: 0,
        node_ips: BTreeMap::new(),
        refused: None,
    };

    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"]
        .iter()
        .map(|s| s.to_string())
        .chain(s.namespaces.iter().cloned())
    {
        ensure_namespace(&mut b, &ns);
    }
    for o in super::rbac::bootstrap_objects() {
        let resource = match o.get("kind").and_then(Value::as_str) {
            Some("ClusterRole") => "clusterroles",
            Some("ClusterRoleBinding") => "clusterrolebindings",
            Some("Role") => "roles",
            _ => "rolebindings",
        };
        b.load(&StorageKey::new("rbac.authorization.k8s.io", resource), o);
    }
    let tokens = super::authn::Tokens::default();
    for u in &s.access.users {
        if let Some(t) = &u.token {
            tokens.insert(t.clone(), super::rbac::UserInfo { name: u.name.clone(), groups: u.groups.clone() });
        }
    }
    for sa in &s.access.service_accounts {
        b.load(&StorageKey::core("serviceaccounts"), obj("v1", "ServiceAccount", Some(&sa.namespace), &sa.name));
        tokens.insert(sa.token.clone(), super::authn::service_account_user(&sa.namespace, &sa.name));
    }
    let mut node_index = 0u32;
    let mut node_infos = Vec::new();
    for pool in &s.node_pools {
        let kubelet: Version = pool
            .version
            .as_deref()
            .unwrap_or(&s.cluster.version)
            .parse()
            .map_err(|e: crate::version::VersionError| err(e.to_string()))?;
        for i in 0..pool.count {
            node_index += 1;
            let name = super::scenario_checks::node_name(pool, i + 1);
            let mut labels: BTreeMap<String, String> = pool.labels.clone();
            labels.insert("kubernetes.io/hostname".into(), name.clone());
            labels.insert("kubernetes.io/os".into(), "linux".into());
            labels.insert("kubernetes.io/arch".into(), "amd64".into());
            labels.insert("sim.k8s-upgrade.dev/pool".into(), pool.name.clone());
            for r in &pool.roles {
                labels.insert(format!("node-role.kubernetes.io/{r}"), String::new());
            }
            let ip = format!("10.{}.{}.{}", (node_index >> 16) & 0xff, (node_index >> 8) & 0xff, node_index & 0xff);
            let mut node = obj("v1", "Node", None, &name);
            node["metadata"]["labels"] = json!(labels);
            node["spec"] = json!({"podCIDR": format!("10.244.{}.0/24", node_index % 256)});
            if !pool.taints.is_empty() {
                node["spec"]["taints"] = Value::Array(
                    pool.taints
                        .iter()
                        .map(|t| {
                            let mut v = json!({"key": t.key, "effect": t.effect});
                            if let Some(val) = &t.value {
                                v["value"] = json!(val);
                            }
                            v
                        })
                        .collect(),
                );
            }
            if pool.unschedulable {
                node["spec"]["unschedulable"] = json!(true);
            }
            let tag = format!("v{}", kubelet.core());
            let now = super::clock::now_rfc3339();
            node["status"] = json!({
                "capacity": {"cpu": pool.capacity.cpu, "memory": pool.capacity.memory, "pods": pool.capacity.pods.to_string()},
                "allocatable": {"cpu": pool.capacity.cpu, "memory": pool.capacity.memory, "pods": pool.capacity.pods.to_string()},
                "conditions": [
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "", "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "", "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": "", "lastHeartbeatTime": now, "lastTransitionTime": now},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now},
                ],
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                "nodeInfo": {
                    "kubeletVersion": tag, "kubeProxyVersion": tag, "osImage": pool.os_image, "containerRuntimeVersion": pool.container_runtime,
                    "kernelVersion": pool.kernel_version, "operatingSystem": "linux", "architecture": "amd64",
                    "machineID": format!("{:032x}", u128::from(node_index) * 0x9e37_79b9), "systemUUID": format!("{:032x}", u128::from(node_index) * 0x7f4a_7c15), "bootID": format!("{:032x}", u128::from(node_index) * 0x2545_f491),
                },
            });
            node_infos.push(NodeInfo::for_scheduler(&node));
            b.load(&StorageKey::core("nodes"), node);
            b.node_ips.insert(name.clone(), ip.clone());
            if pool.roles.iter().any(|r| r == "control-plane") {
                let node_uid = b.uid_of(&StorageKey::core("nodes"), "", &name);
                let api_tag = format!("v{}", version.core());
                let etcd = s.cluster.etcd_version.clone().unwrap_or_else(|| "3.5.16-0".into());
                for (component, image) in [
                    ("kube-apiserver", format!("registry.k8s.io/kube-apiserver:{api_tag}")),
                    ("kube-controller-manager", format!("registry.k8s.io/kube-controller-manager:{api_tag}")),
                    ("kube-scheduler", format!("registry.k8s.io/kube-scheduler:{api_tag}")),
                    ("etcd", format!("registry.k8s.io/etcd:{etcd}")),
                ] {
                    let pod_name = format!("{component}-{name}");
                    let mut pod = obj("v1", "Pod", Some("kube-system"), &pod_name);
                    pod["metadata"]["labels"] = json!({"component": component, "tier": "control-plane"});
                    pod["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": format!("{:x}", node_index * 7919 + component.len() as u32), "kubernetes.io/config.source": "file"});
                    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid, "controller": true}]);
                    pod["spec"] = json!({"nodeName": name, "priorityClassName": "system-node-critical", "containers": [{"name": component, "image": image}], "tolerations": [{"operator": "Exists", "effect": "NoExecute"}]});
                    let mut st = running_status();
                    st["podIP"] = json!(ip);
                    st["hostIP"] = json!(ip);
                    st["containerStatuses"] =
                        json!([{"name": component, "image": image, "ready": true, "restartCount": 0, "started": true}]);
                    pod["status"] = st;
                    b.load(&StorageKey::core("pods"), pod);
                }
            }
        }
    }
    // The static pods take their slots.
    for info in &mut node_infos {
        for p in store.pods_on_node(&info.name) {
            info.take(p.meta.requests);
        }
    }
    b.snap = Snapshot::new(&store, node_infos);
    for a in &s.addons {
        let install = addon_install(&a.name);
        let (kind, ns, name, repo, prefix, labels, replicas) = match &install {
            Some(i) => (
                i.kind,
                i.namespace.to_string(),
                i.name.to_string(),
                i.image.to_string(),
                i.tag_prefix,
                i.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
                i.replicas,
            ),
            None => (
                WorkloadKind::Deployment,
                "default".into(),
                a.name.clone(),
                String::new(),
                "v",
                BTreeMap::from([("app".to_string(), a.name.clone())]),
                1,
            ),
        };
        let ns = a.namespace.clone().unwrap_or(ns);
        ensure_namespace(&mut b, &ns);
        let repo = a.image.clone().unwrap_or(repo);
        let version = a.version.trim_start_matches('v');
        let image = format!("{repo}:{prefix}{version}");
        let w = Workload {
            kind,
            name,
            namespace: ns,
            replicas: a.replicas.unwrap_or(replicas),
            image: Some(image.clone()),
            requests: Some(Requests { cpu: Some("100m".into()), memory: Some("128Mi".into()) }),
            labels,
            empty_dir: false,
            local_volume: false,
            block_volume: None,
            pdb: a.pdb.clone(),
            never_ready: false,
            node_selector: BTreeMap::new(),
            tolerate_all: kind == WorkloadKind::DaemonSet,
            termination_grace_period_seconds: None,
            affinity: None,
            // kubeadm's CoreDNS runs on control-plane nodes too (and, tolerating no more, is not
            // scheduled back onto a cordoned node).
            tolerations: if a.name == "coredns" {
                vec![
                    json!({"key": "CriticalAddonsOnly", "operator": "Exists"}),
                    json!({"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}),
                    json!({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}),
                ]
            } else {
                vec![]
            },
            topology_spread_constraints: vec![],
            nodes: vec![],
        };
        add_workload(&mut b, &w, &image).map_err(err)?;
    }
    for w in &s.workloads {
        ensure_namespace(&mut b, &w.namespace);
        let image = w.image.clone().unwrap_or_else(|| "registry.k8s.io/pause:3.9".into());
        add_workload(&mut b, w, &image).map_err(err)?;
    }
    for (i, d) in docs.iter().enumerate() {
        let api = d["apiVersion"].as_str().unwrap_or_default();
        let kind = d["kind"].as_str().unwrap_or_default();
        let def = registry
            .find_kind(api, kind)
            .ok_or_else(|| err(format!("field 'manifests': document {}: {api} {kind} is not served", i + 1)))?;
        let mut v = d.clone();
        if def.namespaced {
            let ns = v.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_string();
            ensure_namespace(&mut b, &ns);
            v["metadata"]["namespace"] = json!(ns);
        } else if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("namespace");
        }
        if v.pointer("/metadata/name").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(err(format!("field 'manifests': document {} ({api} {kind}) has no metadata.name", i + 1)));
        }
        if super::replicas::bounded(&def.group, &def.resource)
            && let Err(p) = super::replicas::check(v.pointer("/spec/replicas"))
        {
            return Err(err(format!(
                "field 'manifests': document {} ({api} {kind} {}): spec.replicas: {}",
                i + 1,
                super::scenario_checks::shown(v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()),
                p.detail()
            )));
        }
        let storage = def.storage.clone();
        b.store.load(&storage, v).map_err(|e| {
            err(format!(
                "field 'manifests': document {} ({api} {kind}) is refused as a real apiserver refuses it: {}",
                i + 1,
                e.message
            ))
        })?;
    }
    for r in &s.helm_releases {
        ensure_namespace(&mut b, &r.namespace);
        let secret = helm_secret(r).map_err(|e| err(format!("helm release {}: {e}", r.name)))?;
        b.load(&StorageKey::core("secrets"), secret);
    }
    if let Some(refused) = b.refused.take() {
        return Err(err(format!("the scenario makes an object a real apiserver refuses: {refused}")));
    }
    let stats = super::stats::Stats::default();
    for r in &s.past_requests {
        let parts: Vec<&str> = r.trim_matches('/').split('/').collect();
        let (group, version, resource) = match parts.as_slice() {
            [v, res] => ("", *v, *res),
            [g, v, res] => (*g, *v, *res),
            _ => return Err(err(format!("field 'pastRequests': '{r}' is not group/version/resource"))),
        };
        let def = registry
            .find(group, version, resource)
            .ok_or_else(|| err(format!("field 'pastRequests': {r} is not served by Kubernetes {minor}")))?;
        stats.request("list", resource);
        if let Some(removed) = &def.deprecated {
            stats.deprecated_request(group, version, resource, "", removed);
        }
    }
    let timings = s.timings.unwrap_or_default();
    let managed_version = version;
    Ok(Sim {
        store,
        catalog,
        registry: std::sync::RwLock::new(Arc::new(registry)),
        extras,
        stats,
        faults: std::sync::RwLock::new(s.faults.unwrap_or_default()),
        timings,
        time_scale,
        distro: s.cluster.distro.clone(),
        managed_version: std::sync::RwLock::new(managed_version),
        blip_until: std::sync::Mutex::new(None),
        fault_counter: std::sync::atomic::AtomicU64::new(0),
        fault_epoch: std::sync::atomic::AtomicU64::new(0),
        changed: tokio::sync::Notify::new(),
        eviction_lock: std::sync::Mutex::new(()),
        started: tokio::time::Instant::now(),
        tokens,
        authorizer: std::sync::RwLock::new((0, Arc::new(super::rbac::Authorizer::new(&[], &[], &[], &[])))),
        rbac_generation: std::sync::atomic::AtomicU64::new(1),
        rbac_rebuild: std::sync::Mutex::new(()),
        access: s.access.clone(),
        pod_logs: Default::default(),
        pools: std::sync::Mutex::new(BTreeMap::new()),
        pod_ceiling: std::sync::atomic::AtomicUsize::new(super::replicas::POD_CEILING),
        pod_ceiling_reached: Default::default(),
        #[cfg(test)]
        test_panic_in_pass: Default::default(),
    })
}

/// A scalar of the wrong type (`invalid u32 at line 5, column 12`) said with the value found and
/// what the field takes.
fn type_error(message: &str, location: Option<serde_saphyr::Location>, text: &str) -> Option<String> {
    let ty = message.strip_prefix("invalid ")?.split_whitespace().next()?;
    let expected = match ty {
        "u8" | "u16" | "u32" | "u64" | "usize" => {
            let max = match ty {
                "u8" => u64::from(u8::MAX),
                "u16" => u64::from(u16::MAX),
                "u32" => u64::from(u32::MAX),
                _ => u64::MAX,
            };
            format!("a whole number from 0 to {max}")
        }
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "bool" => "true or false".to_string(),
        _ => return None,
    };
    let location = location?;
    let (line, column) = (location.line(), location.column());
    let row = text.lines().nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let found: String = row
        .chars()
        .skip(usize::try_from(column).ok()?.saturating_sub(1))
        .take_while(|c| !matches!(c, ',' | '}' | ']' | '#'))
        .collect();
    let found = found.trim().trim_matches(['"', '\'']);
    Some(format!(
        "invalid value {} at line {line}, column {column}: expected {expected}",
        super::scenario_checks::shown(found)
    ))
}

fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn valid_token(t: &str) -> bool {
    (8..=1024).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_graphic())
}

/// The generated `large` scenario: 5,000 nodes, 150,000 pods, 2,000 deployments, 1,500 PDBs.
pub fn large() -> Scenario {
    let mut workloads = Vec::with_capacity(2_000);
    for i in 0..2_000u32 {
        workloads.push(Workload {
            kind: WorkloadKind::Deployment,
            name: format!("app-{i:04}"),
            namespace: format!("team-{:02}", i % 50),
            replicas: 75,
            image: Some("registry.k8s.io/pause:3.9".into()),
            requests: Some(Requests { cpu: Some("10m".into()), memory: Some("16Mi".into()) }),
            labels: BTreeMap::new(),
            empty_dir: false,
            local_volume: false,
            block_volume: None,
            pdb: (i < 1_500).then(|| PdbSpec {
                name: None,
                min_available: None,
                max_unavailable: Some(json!(1)),
                api_version: None,
            }),
            never_ready: false,
            node_selector: BTreeMap::new(),
            tolerate_all: false,
            termination_grace_period_seconds: None,
            affinity: None,
            tolerations: vec![],
            topology_spread_constraints: vec![],
            nodes: vec![],
        });
    }
    Scenario {
        name: "large".into(),
        description: "Generated: 5,000 nodes, 150,000 pods, 2,000 deployments, 1,500 PDBs".into(),
        cluster: ClusterSpec { version: "1.31.14".into(), distro: "generic".into(), etcd_version: None },
        timings: None,
        faults: None,
        node_pools: vec![
            NodePool {
                name: "cp".into(),
                count: 3,
                roles: vec!["control-plane".into()],
                version: None,
                capacity: Capacity::default(),
                labels: BTreeMap::new(),
                taints: vec![Taint {
                    key: "node-role.kubernetes.io/control-plane".into(),
                    value: None,
                    effect: "NoSchedule".into(),
                }],
                os_image: default_os(),
                container_runtime: default_runtime(),
                kernel_version: default_kernel(),
                unschedulable: false,
                names: vec![],
            },
            NodePool {
                name: "worker".into(),
                count: 4_997,
                roles: vec![],
                version: None,
                capacity: Capacity { cpu: "16".into(), memory: "64Gi".into(), pods: 110 },
                labels: BTreeMap::new(),
                taints: vec![],
                os_image: default_os(),
                container_runtime: default_runtime(),
                kernel_version: default_kernel(),
                unschedulable: false,
                names: vec![],
            },
        ],
        namespaces: (0..50).map(|i| format!("team-{i:02}")).collect(),
        workloads,
        addons: vec![],
        manifests: None,
        helm_releases: vec![],
        past_requests: vec![],
        access: Access::default(),
        source: "large (built in)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scenario file with `extra` appended (top-level keys) and `pools` as its node pools.
    fn file(pools: &str, extra: &str) -> String {
        format!("name: t\ncluster: {{ version: \"1.30.4\", distro: kubeadm }}\nnodePools:\n{pools}{extra}")
    }

    fn refused(text: &str) -> String {
        match Scenario::parse("s.yaml", text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    const ONE_POOL: &str = "  - { name: w, count: 2 }\n";

    #[test]
    fn pools_and_node_names_are_unique_and_valid_d32() {
        let e = refused(&file("  - { name: w, count: 2 }\n  - { name: w, count: 2 }\n", ""));
        assert!(e.contains("field 'nodePools[1].name'") && e.contains("pool names must be unique"), "{e}");
        let e = refused(&file("  - { name: w, count: 2 }\n  - { name: w-1, count: 1 }\n", ""));
        assert!(e.contains("field 'nodePools[1].name'") && e.contains("\"w-1\" is also a node of nodePools[0]"), "{e}");
        for (name, phrase) in [
            ("''", "a pool needs a name"),
            ("'x/y'", "lowercase RFC 1123 subdomain"),
            ("'../etc'", "\"../etc\""),
            ("'a b;rm -rf x#'", "\"a b;rm -rf x#\""),
            ("'$(touch /tmp/x);x'", "lowercase RFC 1123"),
            ("'--help'", "lowercase RFC 1123"),
            ("\"esc\\e[2J\"", "\\x1b"),
            ("UPPER", "lowercase RFC 1123"),
        ] {
            let e = refused(&file(&format!("  - {{ name: {name}, count: 1 }}\n"), ""));
            assert!(e.starts_with("scenario s.yaml: field 'nodePools[0].name': invalid value "), "{e}");
            assert!(e.contains(phrase), "{name}: {e}");
            assert!(!e.contains('\u{1b}') && !e.contains('\n'), "{e}");
        }
        let e = refused(&file(&format!("  - {{ name: {}, count: 1 }}\n", "a".repeat(5000)), ""));
        assert!(e.contains("(5000 characters)") && e.len() < 600, "{e}");
        // A node name is also its hostname label: at most 63 characters.
        let e = refused(&file(&format!("  - {{ name: {}, count: 1 }}\n", "a".repeat(64)), ""));
        assert!(e.contains("kubernetes.io/hostname"), "{e}");
    }

    #[test]
    fn namespaces_workloads_quantities_budgets_and_addons_are_checked_d32() {
        for (extra, field, phrase) in [
            ("namespaces: ['']\n", "namespaces[0]", "a name is required"),
            ("namespaces: ['../etc']\n", "namespaces[0]", "RFC 1123 label"),
            ("namespaces: [UPPER]\n", "namespaces[0]", "RFC 1123 label"),
            ("namespaces: ['a/b']\n", "namespaces[0]", "RFC 1123 label"),
            ("workloads: [{ kind: Deployment, name: 'x/y' }]\n", "workloads[0].name", "RFC 1123 subdomain"),
            ("workloads: [{ kind: StatefulSet, name: 'a.b' }]\n", "workloads[0].name", "must not contain dots"),
            (
                "workloads: [{ kind: Pod, name: web, namespace: 'Bad NS' }]\n",
                "workloads[0].namespace",
                "RFC 1123 label",
            ),
            (
                "workloads: [{ kind: Deployment, name: web, requests: { cpu: abc } }]\n",
                "workloads[0].requests.cpu",
                "quantities must match",
            ),
            (
                "workloads: [{ kind: Deployment, name: web, requests: { memory: lots } }]\n",
                "workloads[0].requests.memory",
                "quantities must match",
            ),
            (
                "workloads: [{ kind: Deployment, name: web, requests: { cpu: '1e400' } }]\n",
                "workloads[0].requests.cpu",
                "more than the simulator can count",
            ),
            (
                "workloads: [{ kind: Deployment, name: web, replicas: 100001 }]\n",
                "workloads[0].replicas",
                "at most 100000",
            ),
            (
                "workloads: [{ kind: Deployment, name: web, pdb: { minAvailable: -3 } }]\n",
                "workloads[0].pdb.minAvailable",
                "greater than or equal to 0",
            ),
            (
                "workloads: [{ kind: Deployment, name: web, pdb: { minAvailable: abc } }]\n",
                "workloads[0].pdb.minAvailable",
                "a valid percent string",
            ),
            (
                "workloads: [{ kind: Deployment, name: web, pdb: { maxUnavailable: '150%' } }]\n",
                "workloads[0].pdb.maxUnavailable",
                "must not be greater than 100%",
            ),
            (
                "workloads: [{ kind: Deployment, name: web, pdb: { minAvailable: 1, maxUnavailable: 1 } }]\n",
                "workloads[0].pdb",
                "cannot be both set",
            ),
            ("workloads: [{ kind: Deployment, name: web, image: '' }]\n", "workloads[0].image", "Required value"),
            (
                "workloads: [{ kind: Deployment, name: web, labels: { app: 'a b' } }]\n",
                "workloads[0].labels",
                "a valid label must be",
            ),
            (
                "addons: [{ name: coredns, version: not-a-version }]\n",
                "addons[0].version",
                "expected the add-on's version",
            ),
            ("addons: [{ name: coredns, version: '1.11.1', image: '' }]\n", "addons[0].image", "Required value"),
            (
                "addons: [{ name: coredns, version: '1.11.1', pdb: { minAvailable: '150%' } }]\n",
                "addons[0].pdb.minAvailable",
                "100%",
            ),
        ] {
            let e = refused(&file(ONE_POOL, extra));
            assert!(e.contains(&format!("field '{field}': ")) && e.contains(phrase), "{extra}: {e}");
        }
        for (pool, field, phrase) in [
            (
                "  - { name: w, count: 1, capacity: { cpu: abc } }\n",
                "nodePools[0].capacity.cpu",
                "quantities must match",
            ),
            (
                "  - { name: w, count: 1, capacity: { memory: -5Gi } }\n",
                "nodePools[0].capacity.memory",
                "greater than or equal to 0",
            ),
            ("  - { name: w, count: 1, labels: { 'a/b/c': x } }\n", "nodePools[0].labels", "label key"),
        ] {
            let e = refused(&file(pool, ""));
            assert!(e.contains(&format!("field '{field}': ")) && e.contains(phrase), "{pool}: {e}");
        }
        // What is valid still is.
        let ok = file(
            "  - { name: cp, count: 1, roles: [control-plane] }\n  - { name: pool.a, count: 3, capacity: { cpu: 1500m, memory: 1.5Gi } }\n",
            "namespaces: [team-a]\nworkloads:\n  - { kind: Deployment, name: web.v2, namespace: team-a, requests: { cpu: 100m, memory: 64Mi }, pdb: { minAvailable: '50%' } }\n  - { kind: StatefulSet, name: db, replicas: 3, pdb: { maxUnavailable: 0 } }\naddons: [{ name: coredns, version: v1.11.1 }]\n",
        );
        Scenario::parse("ok.yaml", &ok).unwrap();
        for name in ["demo", "blocked", "pools"] {
            Scenario::load(name).unwrap();
        }
    }

    #[test]
    fn a_type_error_names_the_field_d32() {
        let e = refused(&file("  - { name: w, count: many }\n", ""));
        assert!(e.contains("field 'nodePools[0].count'") && e.contains("line"), "{e}");
        let e = refused(&file(ONE_POOL, "workloads: [{ kind: Deployment, name: web, replicas: -2 }]\n"));
        assert!(e.contains("field 'workloads[0].replicas'"), "{e}");
        let e = refused(&file(ONE_POOL, "workloads: [{ kind: Deployment, name: web, tolerateAll: maybe }]\n"));
        assert!(e.contains("field 'workloads[0].tolerateAll'"), "{e}");
    }

    #[test]
    fn manifests_are_held_to_the_api_s_rules_d32_d33() {
        let catalog = Arc::new(Catalog::embedded().unwrap());
        let build = |manifests: &str| {
            let text = file(
                ONE_POOL,
                &format!("manifests: |\n{}", manifests.lines().map(|l| format!("  {l}\n")).collect::<String>()),
            );
            let s = Scenario::parse("m.yaml", &text).unwrap();
            super::build(s, catalog.clone(), 1.0).err().map(|e| e.to_string()).unwrap_or_default()
        };
        let e = build(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec: { replicas: 100000000, selector: { matchLabels: { app: web } }, template: { metadata: { labels: { app: web } } } }\n",
        );
        assert!(
            e.contains("document 1")
                && e.contains("spec.replicas: Invalid value: 100000000: must be no more than 100000"),
            "{e}"
        );
        let e = build("apiVersion: v1\nkind: ConfigMap\nmetadata: { name: 'x/y' }\n");
        assert!(e.contains("document 1") && e.contains("ConfigMap \"x/y\" is invalid: metadata.name"), "{e}");
        let e = build("apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ok, namespace: '../etc' }\n");
        assert!(e.contains("refuses") && e.contains("Namespace \"../etc\" is invalid"), "{e}");
    }

    #[test]
    fn pool_names_and_scheduling_fields_are_loaded_and_checked() {
        let s = Scenario::parse("s.yaml", &file("  - { name: w, count: 2, names: [node-x, node-y] }\n", "")).unwrap();
        assert_eq!(s.node_pools[0].names, ["node-x", "node-y"]);
        let e = refused(&file("  - { name: w, count: 3, names: [a, b] }\n", ""));
        assert!(e.contains("field 'nodePools[0].names'") && e.contains("2 names for a pool of 3 nodes"), "{e}");
        let e = refused(&file("  - { name: w, count: 2, names: [a, 'B'] }\n", ""));
        assert!(e.contains("field 'nodePools[0].names[1]'") && e.contains("RFC 1123"), "{e}");
        let e = refused(&file("  - { name: w, count: 2, names: [a, a] }\n", ""));
        assert!(e.contains("field 'nodePools[0].names[1]'") && e.contains("unique"), "{e}");
        let e = refused(&file("  - { name: w, count: 2 }\n  - { name: v, count: 1, names: [w-2] }\n", ""));
        assert!(e.contains("field 'nodePools[1].names[0]'") && e.contains("a node of nodePools[0]"), "{e}");
        let w = |fields: &str| format!("workloads:\n  - {{ kind: Deployment, name: web, replicas: 2, {fields} }}\n");
        let ok = w(
            "affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: web } }, topologyKey: kubernetes.io/hostname }] } }, \
                    tolerations: [{ key: dedicated, operator: Equal, value: db, effect: NoSchedule }], \
                    topologySpreadConstraints: [{ maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule, labelSelector: { matchLabels: { app: web } } }], \
                    nodes: [w-1]",
        );
        let s = Scenario::parse("s.yaml", &file(ONE_POOL, &ok)).unwrap();
        assert!(s.workloads[0].affinity.is_some() && s.workloads[0].tolerations.len() == 1);
        let expr = |op: &str, values: &str| {
            w(&format!(
                "affinity: {{ nodeAffinity: {{ requiredDuringSchedulingIgnoredDuringExecution: {{ nodeSelectorTerms: [{{ matchExpressions: [{{ key: zone, operator: {op}, values: {values} }}] }}] }} }} }}"
            ))
        };
        let terms = "[".to_string() + &vec!["{ labelSelector: {}, topologyKey: zone }"; 101].join(", ") + "]";
        for (extra, field, phrase) in [
            (w("affinity: [x]"), "workloads[0].affinity", "must be an object"),
            (w("affinity: { nodeAfinity: {} }"), "workloads[0].affinity", "unknown field"),
            (
                expr("Near", "[a]"),
                "workloads[0].affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator",
                "In, NotIn, Exists, DoesNotExist, Gt, Lt",
            ),
            (expr("Gt", "[a]"), "matchExpressions[0].values", "one integer"),
            (expr("In", "[]"), "matchExpressions[0].values", "must be specified"),
            (
                w(
                    "affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: {}, topologyKey: '' }] } }",
                ),
                "workloads[0].affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
                "can not be empty",
            ),
            (
                w(&format!(
                    "affinity: {{ podAntiAffinity: {{ requiredDuringSchedulingIgnoredDuringExecution: {terms} }} }}"
                )),
                "workloads[0].affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution",
                "at most 100",
            ),
            (
                w("topologySpreadConstraints: [{ maxSkew: 0, topologyKey: zone, whenUnsatisfiable: DoNotSchedule }]"),
                "workloads[0].topologySpreadConstraints[0].maxSkew",
                "greater than zero",
            ),
            (
                w("topologySpreadConstraints: [{ maxSkew: 1, topologyKey: zone, whenUnsatisfiable: Maybe }]"),
                "workloads[0].topologySpreadConstraints[0].whenUnsatisfiable",
                "DoNotSchedule",
            ),
            (
                w("topologySpreadConstraints: [{ maxSkew: 1, topologyKey: '', whenUnsatisfiable: ScheduleAnyway }]"),
                "workloads[0].topologySpreadConstraints[0].topologyKey",
                "can not be empty",
            ),
            (
                w("tolerations: [{ operator: Equal, value: x }]"),
                "workloads[0].tolerations[0].operator",
                "must be Exists",
            ),
            (w("nodes: [a, b, c]"), "workloads[0].nodes", "at most one node per replica"),
            (w("nodes: ['A']"), "workloads[0].nodes[0]", "RFC 1123"),
            (
                "workloads: [{ kind: DaemonSet, name: d, nodes: [w-1] }]\n".to_string(),
                "workloads[0].nodes",
                "only a Deployment, StatefulSet or Pod",
            ),
        ] {
            let e = refused(&file(ONE_POOL, &extra));
            assert!(e.contains(&format!("{field}'")) && e.contains(phrase), "{extra}: {e}");
        }
    }
}
