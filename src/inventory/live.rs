//! The live collector: reads a running cluster through kube-rs into an [`Inventory`].
//!
//! Independent reads run in parallel; every list is paginated (`limit`/`continue`). It collects
//! the apiserver version and served group-versions, nodes (kubelet, kube-proxy, roles, taints,
//! node info), control-plane components from mirror pods, add-ons recognised by the catalog's
//! image patterns, workloads, pods and budgets, Helm v3 release Secrets decoded in memory
//! (size-bounded; only manifests are kept, never values), objects served at deprecated
//! group-versions with their last-applied apiVersion, and the
//! `apiserver_requested_deprecated_apis` metric. Cluster data is untrusted: sizes are bounded
//! and nothing from it reaches a shell.

use std::collections::BTreeMap;

use futures::future::try_join5;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, ObjectList};
use kube::core::{ApiResource, GroupVersionKind};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    AccessGap, AddonFacts, ClusterFacts, ComponentFacts, EvictionProbe, Evidence, HelmReleaseFacts, Inventory,
    NodeFacts, ObservedObject, PdbFacts, PodFacts, ProbeOutcome, WorkloadFacts,
};
use crate::catalog::Catalog;
use crate::graph::NodeInfoFacts;
use crate::kubeapi::permissions::{Check, Verdict};
use crate::version::Version;

/// Page size of every list.
const PAGE: u32 = 500;
/// Most disruption budgets probed with a dry-run eviction, and how many probes run at once.
pub const MAX_EVICTION_PROBES: usize = 500;
const PROBES_AT_ONCE: usize = 8;

/// Told after every page: what is being listed and how many items so far.
pub type Progress = std::sync::Arc<dyn Fn(&str, usize) + Send + Sync>;

/// How the collector reads the cluster.
#[derive(Clone, Default)]
pub struct CollectOptions {
    /// Ask the apiserver, with server dry-run evictions, whether each budget would let a pod go.
    pub dry_run_evictions: bool,
    /// Read the Node events, for how long the cluster's recent node restarts took (a rehearsal).
    pub node_events: bool,
    pub progress: Option<Progress>,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("reading {what} from the cluster failed: {message}")]
    Read { what: String, message: String },
    #[error(
        "reading {what} from the cluster was refused (403 Forbidden): {message}; grant the roles from `k8s-upgrade rbac --for plan`, or use an identity that has them"
    )]
    Forbidden { what: String, message: String },
}

fn read_error(what: &str, e: kube::Error) -> LiveError {
    match &e {
        kube::Error::Api(s) if s.code == 403 => LiveError::Forbidden { what: what.into(), message: s.message.clone() },
        // The deprecated-API reads skip a kind the group-version does not serve by this reason.
        kube::Error::Api(s) if s.code == 404 => {
            LiveError::Read { what: what.into(), message: format!("NotFound: {}", s.message) }
        }
        _ => LiveError::Read { what: what.into(), message: crate::kubeapi::errors::describe(&e, "the apiserver") },
    }
}

async fn list_all<K>(api: Api<K>, what: &str, progress: Option<&Progress>) -> Result<Vec<K>, LiveError>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    list_map(api, what, progress, |k: K| k).await
}

/// Lists page by page and keeps only what `f` extracts, so a 150,000-pod cluster never sits in
/// memory as typed objects.
async fn list_map<K, T>(
    api: Api<K>,
    what: &str,
    progress: Option<&Progress>,
    mut f: impl FnMut(K) -> T,
) -> Result<Vec<T>, LiveError>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut lp = ListParams::default().limit(PAGE);
    loop {
        let page: ObjectList<K> = with_retries(|| api.list(&lp)).await.map_err(|e| read_error(what, e))?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        out.extend(page.items.into_iter().map(&mut f));
        if let Some(p) = progress {
            p(what, out.len());
        }
        match next {
            Some(c) => lp.continue_token = Some(c),
            None => return Ok(out),
        }
    }
}

pub use crate::kubeapi::retry::{jitter, transient, with_retries};

/// What the apiserver's `/metrics` says about requests to deprecated APIs: the
/// `apiserver_requested_deprecated_apis` gauge as `group/version resource` (`version resource`
/// for the core group), and when that apiserver process started (`process_start_time_seconds`),
/// since the gauge only says "requested since this process started".
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeprecatedRequests {
    pub resources: std::collections::BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apiserver_started: Option<f64>,
}

/// The labels of one Prometheus text-format sample (`name{a="x",b="y\"z"} 1`), unescaped
/// (`\\`, `\"`, `\n`); empty when the line has none or is malformed. Exact label names: `resource`
/// is not found inside `subresource`.
fn prometheus_labels(line: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let Some(start) = line.find('{') else { return out };
    let mut chars = line[start + 1..].chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != '}')).collect();
        match chars.next() {
            Some('=') if chars.next() == Some('"') => {}
            _ => return out,
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => return Default::default(),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Default::default(),
            }
        }
        out.insert(name.trim().to_string(), value);
    }
}

impl DeprecatedRequests {
    /// Reads the gauge out of Prometheus text.
    pub fn parse(text: &str) -> DeprecatedRequests {
        let mut out = DeprecatedRequests::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("process_start_time_seconds ") {
                out.apiserver_started = rest.trim().parse().ok();
            } else if line.starts_with("apiserver_requested_deprecated_apis{") {
                let labels = prometheus_labels(line);
                let label = |k: &str| labels.get(k).map_or("", String::as_str);
                let (group, version, resource) = (label("group"), label("version"), label("resource"));
                let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
                out.resources.insert(format!("{gv} {resource}"));
            }
        }
        out
    }

    /// What was requested after `earlier` was read: everything, when the apiserver restarted
    /// since (a new process starts its gauge empty); otherwise what is new.
    pub fn since(&self, earlier: &DeprecatedRequests) -> std::collections::BTreeSet<String> {
        match (self.apiserver_started, earlier.apiserver_started) {
            (Some(now), Some(then)) if now > then => self.resources.clone(),
            _ => self.resources.difference(&earlier.resources).cloned().collect(),
        }
    }

    /// Reads it from the cluster.
    pub async fn read(client: &Client) -> Result<DeprecatedRequests, String> {
        let req = http::Request::get("/metrics").body(Vec::new()).map_err(|e| e.to_string())?;
        let text = client.request_text(req).await.map_err(|e| format!("cannot read the apiserver's /metrics: {e}"))?;
        Ok(DeprecatedRequests::parse(&text))
    }
}

/// The compact view of a pod the collector keeps (plus its control-plane component, if any).
struct PodRecord {
    facts: PodFacts,
    owner_rs: Option<String>,
    component: Option<ComponentFacts>,
}

fn pod_record(p: Pod) -> PodRecord {
    let facts = pod_facts(&p, &BTreeMap::new());
    let owner_rs = p
        .metadata
        .owner_references
        .as_ref()
        .and_then(|os| os.iter().find(|o| o.controller == Some(true) && o.kind == "ReplicaSet"))
        .map(|o| o.name.clone());
    let component = p.metadata.labels.as_ref().and_then(|l| l.get("component")).cloned().filter(|c| {
        facts.mirror && matches!(c.as_str(), "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "etcd")
    });
    let component = component.map(|component| {
        let image =
            p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone()).unwrap_or_default();
        let (_, tag) = split_image(&image);
        ComponentFacts {
            node: facts.node.clone(),
            component,
            version: parse_version(tag.trim_start_matches('v')).or_else(|| parse_version(&tag)),
            image,
        }
    });
    PodRecord { facts, owner_rs, component }
}

fn parse_version(s: &str) -> Option<Version> {
    s.parse().ok()
}

pub use crate::k8s::image::split_image;

/// The catalog add-on whose image patterns match `image`, if any.
pub fn recognise_addon<'c>(catalog: &'c Catalog, image: &str) -> Option<&'c str> {
    let (repo, _) = split_image(image);
    catalog.addons.addons.iter().find_map(|a| {
        a.detect.images.iter().any(|pat| repo == *pat || repo.ends_with(&format!("/{pat}"))).then_some(a.name.as_str())
    })
}

fn node_facts(n: &Node) -> NodeFacts {
    let labels = n.metadata.labels.clone().unwrap_or_default();
    let mut roles: Vec<String> =
        labels.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/").map(str::to_string)).collect();
    roles.sort();
    let status = n.status.clone().unwrap_or_default();
    let info = status.node_info.clone().unwrap_or_default();
    let q = |m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>, k: &str| {
        m.as_ref().and_then(|m| m.get(k)).map_or(0.0, |q| crate::quantity::parse_quantity(&q.0))
    };
    NodeFacts {
        name: n.metadata.name.clone().unwrap_or_default(),
        roles,
        kubelet: parse_version(&info.kubelet_version),
        kube_proxy: parse_version(&info.kube_proxy_version),
        ready: crate::k8s::node::is_ready(n),
        unschedulable: n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
        taints: n
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .iter()
            .map(|t| format!("{}={}:{}", t.key, t.value.clone().unwrap_or_default(), t.effect))
            .collect(),
        node_info: NodeInfoFacts {
            container_runtime_version: info.container_runtime_version.clone(),
            os_image: info.os_image.clone(),
            kernel_version: info.kernel_version.clone(),
        },
        allocatable: (q(&status.allocatable, "pods"), q(&status.allocatable, "cpu"), q(&status.allocatable, "memory")),
        labels,
    }
}

/// The placement rules of a pod's spec (`nodeSelector`, `affinity`, `tolerations`,
/// `topologySpreadConstraints`), those it has, or `None`. Bounded: a spec whose rules take more
/// than 64 KiB as JSON keeps none of them, and the twin then places the pod anywhere.
fn placement(spec: &k8s_openapi::api::core::v1::PodSpec) -> Option<serde_json::Value> {
    let mut rules = serde_json::Map::new();
    let mut put = |key: &str, value: Option<serde_json::Value>| {
        if let Some(v) = value.filter(|v| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty())) {
            rules.insert(key.to_string(), v);
        }
    };
    put(
        "nodeSelector",
        spec.node_selector.as_ref().filter(|m| !m.is_empty()).and_then(|m| serde_json::to_value(m).ok()),
    );
    put("affinity", spec.affinity.as_ref().and_then(|a| serde_json::to_value(a).ok()));
    put("tolerations", spec.tolerations.as_ref().filter(|t| !t.is_empty()).and_then(|t| serde_json::to_value(t).ok()));
    put(
        "topologySpreadConstraints",
        spec.topology_spread_constraints.as_ref().filter(|t| !t.is_empty()).and_then(|t| serde_json::to_value(t).ok()),
    );
    let rules = serde_json::Value::Object(rules);
    (rules.as_object().is_some_and(|o| !o.is_empty()) && rules.to_string().len() <= 64 * 1024).then_some(rules)
}

/// Seconds from a Ready pod's start to its Ready condition.
fn start_seconds(p: &Pod) -> Option<f64> {
    let status = p.status.as_ref()?;
    let started = status.start_time.as_ref()?.0;
    let ready = status.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
    let at = ready.last_transition_time.as_ref()?.0;
    let secs = at.duration_since(started).as_secs_f64();
    (0.0..=3600.0).contains(&secs).then_some(secs)
}

fn pod_facts(p: &Pod, rs_owner: &BTreeMap<(String, String), String>) -> PodFacts {
    let ns = p.metadata.namespace.clone().unwrap_or_default();
    let owner = p.metadata.owner_references.as_ref().and_then(|os| os.iter().find(|o| o.controller == Some(true)));
    let controller = owner.map(|o| format!("{}/{}", o.kind, o.name));
    let workload = owner.map(|o| match o.kind.as_str() {
        "ReplicaSet" => {
            rs_owner.get(&(ns.clone(), o.name.clone())).cloned().unwrap_or_else(|| format!("ReplicaSet/{}", o.name))
        }
        _ => format!("{}/{}", o.kind, o.name),
    });
    let spec = p.spec.clone().unwrap_or_default();
    let volumes = spec.volumes.clone().unwrap_or_default();
    let status = p.status.clone().unwrap_or_default();
    let requests = spec.containers.iter().fold((0.0, 0.0), |(c, m), ctr| {
        let r = ctr.resources.as_ref().and_then(|r| r.requests.clone()).unwrap_or_default();
        (
            c + r.get("cpu").map_or(0.0, |q| crate::quantity::parse_quantity(&q.0)),
            m + r.get("memory").map_or(0.0, |q| crate::quantity::parse_quantity(&q.0)),
        )
    });
    PodFacts {
        namespace: ns,
        name: p.metadata.name.clone().unwrap_or_default(),
        node: spec.node_name.clone().unwrap_or_default(),
        controller,
        workload,
        phase: status.phase.clone().unwrap_or_default(),
        ready: crate::k8s::pod::is_ready(p) && p.metadata.deletion_timestamp.is_none(),
        mirror: crate::k8s::pod::is_mirror(p),
        daemonset: owner.is_some_and(|o| o.kind == "DaemonSet"),
        empty_dir: volumes.iter().any(|v| v.empty_dir.is_some()),
        local_volume: volumes.iter().any(|v| v.host_path.is_some()),
        eviction_veto: crate::k8s::pod::eviction_vetoed(p),
        labels: p.metadata.labels.clone().unwrap_or_default(),
        requests,
        placement: placement(&spec),
        start_seconds: start_seconds(p),
        grace_seconds: spec.termination_grace_period_seconds,
    }
}

/// A Helm release Secret's release JSON (bounded by `helm::storage`).
fn decode_helm(secret: &Secret) -> Result<crate::helm::ReleaseDoc, crate::helm::HelmError> {
    let what = format!(
        "{}/{}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default()
    );
    let payload = secret.data.as_ref().and_then(|d| d.get("release")).map(|b| b.0.as_slice()).unwrap_or_default();
    crate::helm::ReleaseDoc::from_payload(&what, payload)
}

/// Another version of `api`'s kind that this cluster serves, to read through: its group-version is
/// in discovery and the catalog says this release serves the kind there (certificates.k8s.io/v1
/// is served for CertificateSigningRequests long before it has ClusterTrustBundles). The
/// catalog's replacement first, then the newest of the others that outlive it; a replacement that
/// is not served yet (flowcontrol v1beta1 names v1beta3, from 1.26) is passed over.
fn served_alternative(
    api: &crate::catalog::ApiEntry,
    facts: &ClusterFacts,
    served: &crate::catalog::served::ServedApis,
) -> Option<crate::catalog::Gvk> {
    let me = api.gvk();
    let minor = facts.server_version.as_ref().map(Version::minor_version);
    // Only a version that outlives this one: reading v1beta2 through v1beta1 would put this
    // tool's own reads of v1beta1 into the deprecated-API metric.
    let outlives = |g: &crate::catalog::Gvk| match (served.window(g).and_then(|w| w.until), api.removed_in) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(u), Some(r)) => u > r,
    };
    api.replacement.iter().cloned().chain(served.other_versions(&me)).find(|g| {
        g.kind == api.kind
            && outlives(g)
            && facts.served_group_versions.contains(&g.api_version())
            && minor.is_none_or(|m| served.serves(g, m))
    })
}

fn manifest_objects(manifest: &str, evidence: &Evidence, inv: &mut Inventory) {
    let mut scratch = Inventory::default();
    // The release names the source in warnings (a document it could not read, a duplicate key).
    let source = evidence.describe();
    if let Err(e) = super::manifests::parse_text(&source, manifest, &mut scratch) {
        inv.warnings.push(e.to_string());
    }
    inv.warnings.append(&mut scratch.warnings);
    for mut o in scratch.objects {
        o.evidence = evidence.clone();
        inv.objects.push(o);
    }
}

/// Reads the cluster.
pub async fn collect(client: &Client, catalog: &Catalog, options: &CollectOptions) -> Result<Inventory, LiveError> {
    let progress = options.progress.as_ref();
    let server = client.apiserver_version().await.map_err(|e| read_error("the version", e))?;
    let version = server.git_version.parse::<Version>().map_err(|e| LiveError::Read {
        what: "the version".into(),
        message: format!(
            "the server reports gitVersion {:?}, which is not a Kubernetes version ({e}); the plan needs the server's version to know where the path starts",
            server.git_version.chars().take(80).map(|c| if c.is_control() { '?' } else { c }).collect::<String>()
        ),
    })?;
    let mut facts = ClusterFacts { server_version: Some(version), ..Default::default() };
    // Both answers are awaited, so a refusal of both is always reported for /api first.
    let (core, groups) = futures::join!(client.list_core_api_versions(), client.list_api_groups());
    let core = core.map_err(|e| read_error("discovery", e))?;
    let groups = groups.map_err(|e| read_error("discovery", e))?;
    facts.served_group_versions = core.versions.clone();
    for g in &groups.groups {
        facts.served_group_versions.extend(g.versions.iter().map(|v| v.group_version.clone()));
    }
    let access = Access::preflight(client, options).await;
    let list = |resource: &str, group: &str| list_check(resource, group);
    const WORKLOADS: &str = "pod owners and add-on versions: drain, add-on and workload checks are incomplete";
    let (nodes, pods, deployments, replicasets, pdbs) = try_join5(
        access.read(
            "nodes",
            list("nodes", ""),
            "node versions: skew, node rolls and drain capacity cannot be checked",
            true,
            list_all(Api::<Node>::all(client.clone()), "nodes", progress),
        ),
        access.read(
            "pods",
            list("pods", ""),
            "control-plane versions and the pods a drain evicts cannot be checked",
            true,
            list_map(Api::<Pod>::all(client.clone()), "pods", progress, pod_record),
        ),
        access.read(
            "deployments",
            list("deployments", "apps"),
            WORKLOADS,
            true,
            list_all(Api::<Deployment>::all(client.clone()), "deployments", progress),
        ),
        access.read(
            "replicasets",
            list("replicasets", "apps"),
            WORKLOADS,
            true,
            list_all(Api::<ReplicaSet>::all(client.clone()), "replicasets", progress),
        ),
        access.read(
            "PodDisruptionBudgets",
            list("poddisruptionbudgets", "policy"),
            "budgets that would stall a drain cannot be checked",
            true,
            list_all(Api::<PodDisruptionBudget>::all(client.clone()), "poddisruptionbudgets", progress),
        ),
    )
    .await?;
    let (statefulsets, daemonsets) = futures::try_join!(
        access.read(
            "statefulsets",
            list("statefulsets", "apps"),
            WORKLOADS,
            true,
            list_all(Api::<StatefulSet>::all(client.clone()), "statefulsets", progress)
        ),
        access.read(
            "daemonsets",
            list("daemonsets", "apps"),
            WORKLOADS,
            true,
            list_all(Api::<DaemonSet>::all(client.clone()), "daemonsets", progress)
        ),
    )?;
    let helm_api: Api<Secret> = Api::all(client.clone());
    let helm_secrets = access
        .read(
            "Helm releases",
            list("secrets", ""),
            "removed APIs in Helm release manifests are not checked (grant `k8s-upgrade rbac --for helm-releases`)",
            false,
            async {
                let mut out = Vec::new();
                let mut lp = ListParams::default().labels("owner=helm").fields("type=helm.sh/release.v1").limit(50);
                loop {
                    let page = with_retries(|| helm_api.list(&lp)).await.map_err(|e| read_error("Helm releases", e))?;
                    let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
                    out.extend(page.items);
                    match next {
                        Some(c) => lp.continue_token = Some(c),
                        None => break Ok(out),
                    }
                }
            },
        )
        .await?;

    let mut inv = Inventory::default();
    facts.nodes = nodes.iter().map(node_facts).collect();
    let rs_owner: BTreeMap<(String, String), String> = replicasets
        .iter()
        .filter_map(|rs| {
            let o = rs.metadata.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true))?;
            Some(((rs.metadata.namespace.clone()?, rs.metadata.name.clone()?), format!("{}/{}", o.kind, o.name)))
        })
        .collect();
    for mut r in pods {
        if let Some(rs) = &r.owner_rs
            && let Some(w) = rs_owner.get(&(r.facts.namespace.clone(), rs.clone()))
        {
            r.facts.workload = Some(w.clone());
        }
        if let Some(c) = r.component {
            facts.control_plane.push(c);
        }
        facts.pods.push(r.facts);
    }
    let mut push_workload =
        |kind: &str, meta: &kube::core::ObjectMeta, replicas: i64, ready: i64, images: Vec<String>| {
            let ns = meta.namespace.clone().unwrap_or_default();
            let name = meta.name.clone().unwrap_or_default();
            facts.workloads.push(WorkloadFacts {
                kind: kind.into(),
                namespace: ns.clone(),
                name: name.clone(),
                replicas,
                ready,
            });
            for image in images {
                if let Some(addon) = recognise_addon(catalog, &image) {
                    let (_, tag) = split_image(&image);
                    facts.addons.push(AddonFacts {
                        name: addon.into(),
                        version: tag,
                        image,
                        workload: format!("{kind} {ns}/{name}"),
                    });
                }
            }
        };
    let images = |spec: Option<&k8s_openapi::api::core::v1::PodSpec>| -> Vec<String> {
        spec.map(|s| s.containers.iter().filter_map(|c| c.image.clone()).collect()).unwrap_or_default()
    };
    for d in &deployments {
        let spec = d.spec.as_ref();
        push_workload(
            "Deployment",
            &d.metadata,
            spec.and_then(|s| s.replicas).map_or(1, i64::from),
            d.status.as_ref().and_then(|s| s.ready_replicas).map_or(0, i64::from),
            images(spec.and_then(|s| s.template.spec.as_ref())),
        );
    }
    for s in &statefulsets {
        let spec = s.spec.as_ref();
        push_workload(
            "StatefulSet",
            &s.metadata,
            spec.and_then(|s| s.replicas).map_or(1, i64::from),
            s.status.as_ref().and_then(|s| s.ready_replicas).map_or(0, i64::from),
            images(spec.and_then(|s| s.template.spec.as_ref())),
        );
    }
    for d in &daemonsets {
        let status = d.status.as_ref();
        push_workload(
            "DaemonSet",
            &d.metadata,
            status.map_or(0, |s| i64::from(s.desired_number_scheduled)),
            status.map_or(0, |s| i64::from(s.number_ready)),
            images(d.spec.as_ref().and_then(|s| s.template.spec.as_ref())),
        );
    }
    facts.pdbs = pdbs
        .iter()
        .map(|p| {
            let spec = p.spec.clone().unwrap_or_default();
            let status = p.status.clone().unwrap_or_default();
            let ios = |v: Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>| {
                v.map(|v| match v {
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => Value::from(i),
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => Value::from(s),
                })
            };
            PdbFacts {
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone().unwrap_or_default(),
                selector: serde_json::to_value(&spec.selector).unwrap_or(Value::Null),
                min_available: ios(spec.min_available),
                max_unavailable: ios(spec.max_unavailable),
                current_healthy: i64::from(status.current_healthy),
                desired_healthy: i64::from(status.desired_healthy),
                disruptions_allowed: i64::from(status.disruptions_allowed),
                expected_pods: i64::from(status.expected_pods),
                operator: crate::k8s::budget::operator_of(p),
                disrupted_pods: status.disrupted_pods.map(|d| d.into_keys().take(100).collect()).unwrap_or_default(),
            }
        })
        .collect();

    // Helm: deployed releases only; manifests (and hook manifests) become evidence, values never leave.
    for s in &helm_secrets {
        let labels = s.metadata.labels.clone().unwrap_or_default();
        let status = labels.get("status").cloned().unwrap_or_default();
        let release = match decode_helm(s) {
            Ok(r) => r,
            Err(e) => {
                inv.warnings.push(format!("{e}; its manifest was not checked"));
                continue;
            }
        };
        let name = release.name().unwrap_or_default();
        let namespace = release.namespace().unwrap_or_default();
        let revision = release.version().unwrap_or(0) as u32;
        let chart = release.chart_name().unwrap_or_default();
        facts.helm_releases.push(HelmReleaseFacts {
            name: name.clone(),
            namespace: namespace.clone(),
            revision,
            status: status.clone(),
            chart,
        });
        if status != "deployed" {
            continue;
        }
        let evidence = Evidence::HelmRelease { release: name, namespace, revision };
        if let Some(m) = release.manifest() {
            manifest_objects(&m, &evidence, &mut inv);
        }
        for m in release.hook_manifests() {
            manifest_objects(&m, &evidence, &mut inv);
        }
    }

    // Group-versions this collector has to read directly (served, with no served replacement to
    // read through): its own reads land in the apiserver's deprecated-API gauge, so from the
    // second run on that gauge cannot tell them from anyone else's. Their objects are listed
    // directly instead, as served-object evidence.
    let served_apis = crate::catalog::served::ServedApis::new(&catalog.apis);
    let read_directly: std::collections::HashSet<(String, String, String)> = catalog
        .apis
        .apis
        .iter()
        .filter(|api| facts.served_group_versions.contains(&api.api_version()))
        .filter(|api| served_alternative(api, &facts, &served_apis).is_none())
        .map(|api| (api.group.clone(), api.version.clone(), api.resource.clone()))
        .collect();
    let mut ignored_metric = Vec::new();
    // Who requested deprecated APIs, per the apiserver: read before our own reads of deprecated
    // versions below, which would otherwise show up in the metric themselves.
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| LiveError::Read { what: "metrics".into(), message: e.to_string() })?;
    let metrics_check = Check::NonResource { verb: "get".into(), path: "/metrics".into() };
    const METRICS: &str =
        "clients still calling removed APIs (the apiserver_requested_deprecated_apis metric) are not seen";
    let metrics = if access.is_denied(&metrics_check) {
        access.gap("the apiserver's metrics", &metrics_check, METRICS, false);
        None
    } else {
        match client.request_text(request).await {
            Err(kube::Error::Api(st)) if st.code == 403 => {
                access.gap("the apiserver's metrics", &metrics_check, METRICS, false);
                None
            }
            other => Some(other),
        }
    };
    match metrics {
        None => {}
        Some(Ok(text)) => {
            for line in text.lines().filter(|l| l.starts_with("apiserver_requested_deprecated_apis{")) {
                let labels = prometheus_labels(line);
                let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
                let (group, version, resource) = (label("group"), label("version"), label("resource"));
                if read_directly.contains(&(group.clone(), version.clone(), resource.clone())) {
                    ignored_metric.push(format!("{group}/{version} {resource}"));
                    continue;
                }
                let api_version = if group.is_empty() { version.clone() } else { format!("{group}/{version}") };
                let kind = catalog
                    .apis
                    .apis
                    .iter()
                    .find(|a| a.group == group && a.version == version && a.resource == resource)
                    .map(|a| a.kind.clone())
                    .unwrap_or_else(|| resource.clone());
                inv.objects.push(ObservedObject {
                    api_version,
                    kind,
                    name: "(requests)".into(),
                    namespace: None,
                    evidence: Evidence::RequestMetric { resource: resource.clone() },
                });
            }
        }
        Some(Err(e)) => inv.warnings.push(format!("apiserver metrics not readable ({e}); request evidence is missing")),
    }
    if !ignored_metric.is_empty() {
        inv.warnings.push(format!(
            "request metric not used for {}: no replacement is served to read through, so this tool's own reads show up in it; the objects stored there are listed instead",
            ignored_metric.join(", ")
        ));
    }
    // Deprecated group-versions still served: what they hold, and how it was last applied.
    for api in &catalog.apis.apis {
        let gv = api.api_version();
        if !facts.served_group_versions.contains(&gv) {
            continue;
        }
        // Reading through an old version says nothing about how an object was written when
        // another version of its kind is served too (the apiserver converts); only then is it
        // evidence.
        let other_served = served_alternative(api, &facts, &served_apis);
        let replacement_served = other_served.is_some();
        // Read through the other version when one is served: a read at the deprecated version
        // would itself land in the apiserver's deprecated-API metric (and in our next plan).
        let (read_group, read_version, read_kind) = match &other_served {
            Some(r) => (r.group.as_str(), r.version.as_str(), r.kind.as_str()),
            None => (api.group.as_str(), api.version.as_str(), api.kind.as_str()),
        };
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(read_group, read_version, read_kind),
            &api.resource,
        );
        let check = list_check(&api.resource, read_group);
        const DEPRECATED: &str = "objects stored at API versions a hop removes are not found";
        let what = format!("{} ({gv})", api.resource);
        let objects = match list_all(
            Api::<DynamicObject>::all_with(client.clone(), &ar),
            &format!("{gv} {}", api.resource),
            progress,
        )
        .await
        {
            Ok(o) => o,
            Err(LiveError::Forbidden { .. }) => {
                access.gap(&what, &check, DEPRECATED, true);
                continue;
            }
            // The group-version is served but not this kind at it (e.g. storage.k8s.io/v1beta1
            // still serving CSIStorageCapacity after CSIDriver moved on).
            Err(LiveError::Read { message, .. }) if message.contains("NotFound") => continue,
            Err(e) => {
                inv.warnings.push(e.to_string());
                continue;
            }
        };
        for o in objects {
            let name = o.metadata.name.clone().unwrap_or_default();
            let ns = o.metadata.namespace.clone();
            let reference = match &ns {
                Some(ns) => format!("{} {ns}/{name}", api.kind),
                None => format!("{} {name}", api.kind),
            };
            if !replacement_served {
                inv.objects.push(ObservedObject {
                    api_version: gv.clone(),
                    kind: api.kind.clone(),
                    name: name.clone(),
                    namespace: ns.clone(),
                    evidence: Evidence::ServedObjects { object: reference.clone() },
                });
            }
            if let Some(applied) =
                o.metadata.annotations.as_ref().and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
                && applied.len() <= 1024 * 1024
                && let Ok(v) = serde_json::from_str::<Value>(applied)
                && let Some(av) = v.get("apiVersion").and_then(Value::as_str)
            {
                inv.objects.push(ObservedObject {
                    api_version: av.to_string(),
                    kind: v.get("kind").and_then(Value::as_str).unwrap_or(&api.kind).to_string(),
                    name,
                    namespace: ns,
                    evidence: Evidence::LastApplied { object: reference },
                });
            }
        }
    }

    // One object read through several aliases of the same storage is one piece of evidence.
    let mut seen = std::collections::HashSet::new();
    inv.objects.retain(|o| {
        seen.insert((o.api_version.clone(), o.kind.clone(), o.namespace.clone(), o.name.clone(), o.evidence.clone()))
    });
    if options.dry_run_evictions {
        let evict = Check::cluster_wide("create", "", "pods/eviction");
        if access.is_denied(&evict) {
            access.gap(
                "dry-run evictions",
                &evict,
                "drain blockers are predicted, not confirmed by the apiserver",
                false,
            );
        } else {
            facts.eviction_probes = probe_evictions(client, &facts, &mut inv.warnings).await;
        }
    }
    if options.node_events {
        let mut warnings = Vec::new();
        let read = access
            .read(
                "Node events",
                list_check("events", ""),
                "node restart times: a rehearsal assumes the --node-restart default (grant `k8s-upgrade rbac --for rehearse`)",
                false,
                list_node_events(client, &mut warnings),
            )
            .await;
        // Only a default rests on them: a failed read is said, and the collection goes on.
        match read {
            Ok(events) => facts.node_restarts = super::node_events::restarts(&events),
            Err(e) => warnings.push(format!("{e}; node restart times come from --node-restart or its default")),
        }
        inv.warnings.extend(warnings);
    }
    facts.access_gaps = access.into_gaps();
    inv.cluster = Some(facts);
    Ok(inv)
}

/// The Node events (`involvedObject.kind=Node`, every namespace), page by page, up to
/// [`MAX_NODE_EVENTS`](super::node_events::MAX_NODE_EVENTS): only what the restart times need.
async fn list_node_events(
    client: &Client,
    warnings: &mut Vec<String>,
) -> Result<Vec<super::node_events::NodeEvent>, LiveError> {
    use super::node_events::{MAX_NODE_EVENTS, NodeEvent};
    let api: Api<Event> = Api::all(client.clone());
    let mut lp = ListParams::default().fields("involvedObject.kind=Node").limit(PAGE);
    let mut out = Vec::new();
    loop {
        let page = with_retries(|| api.list(&lp)).await.map_err(|e| read_error("Node events", e))?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        for e in page.items {
            let at = e
                .event_time
                .map(|t| t.0)
                .or(e.last_timestamp.map(|t| t.0))
                .or(e.first_timestamp.map(|t| t.0))
                .or(e.metadata.creation_timestamp.map(|t| t.0));
            let (Some(node), Some(reason), Some(at)) = (e.involved_object.name, e.reason, at) else { continue };
            // A node name is a DNS subdomain; a reason is a short CamelCase word.
            if node.len() > 253 || reason.len() > 128 {
                continue;
            }
            let at = at.as_second() as f64 + f64::from(at.subsec_nanosecond()) / 1e9;
            out.push(NodeEvent { node, reason, at });
        }
        if out.len() >= MAX_NODE_EVENTS {
            warnings
                .push(format!("read the first {MAX_NODE_EVENTS} Node events only; node restart times come from those"));
            break;
        }
        match next {
            Some(c) => lp.continue_token = Some(c),
            None => break,
        }
    }
    Ok(out)
}

fn list_check(resource: &str, group: &str) -> Check {
    Check::cluster_wide("list", group, resource)
}

/// What the cluster lets the collector read: asked once up front with SelfSubjectAccessReview,
/// so a refused read is skipped and reported instead of failing the plan; a 403 met later (a
/// review that could not be made, or RBAC changing under us) is reported the same way.
struct Access {
    denied: std::collections::BTreeSet<Check>,
    gaps: std::sync::Mutex<Vec<AccessGap>>,
}

impl Access {
    /// The deprecated-API reads are not asked about: there may be a dozen, each is one list, and
    /// a 403 on it is recorded the same way.
    async fn preflight(client: &Client, options: &CollectOptions) -> Access {
        let mut checks = vec![
            list_check("nodes", ""),
            list_check("pods", ""),
            list_check("secrets", ""),
            list_check("poddisruptionbudgets", "policy"),
            Check::NonResource { verb: "get".into(), path: "/metrics".into() },
        ];
        for r in ["deployments", "replicasets", "statefulsets", "daemonsets"] {
            checks.push(list_check(r, "apps"));
        }
        if options.dry_run_evictions {
            checks.push(Check::cluster_wide("create", "", "pods/eviction"));
        }
        if options.node_events {
            checks.push(list_check("events", ""));
        }
        let denied = crate::kubeapi::permissions::review(client, &checks)
            .await
            .into_iter()
            .filter(|(_, v)| *v == Verdict::Denied)
            .map(|(c, _)| c)
            .collect();
        Access { denied, gaps: std::sync::Mutex::new(Vec::new()) }
    }

    fn is_denied(&self, check: &Check) -> bool {
        self.denied.contains(check)
    }

    fn gap(&self, what: &str, check: &Check, consequence: &str, blocks: bool) {
        let mut gaps = self.gaps.lock().unwrap_or_else(|p| p.into_inner());
        let permission = check.to_string();
        if !gaps.iter().any(|g| g.permission == permission && g.what == what) {
            gaps.push(AccessGap { what: what.into(), permission, consequence: consequence.into(), blocks });
        }
    }

    /// Runs `read` unless the preflight found it refused; a refusal either way becomes a gap and
    /// an empty result.
    async fn read<T: Default>(
        &self,
        what: &str,
        check: Check,
        consequence: &str,
        blocks: bool,
        read: impl std::future::Future<Output = Result<T, LiveError>>,
    ) -> Result<T, LiveError> {
        if self.is_denied(&check) {
            self.gap(what, &check, consequence, blocks);
            return Ok(T::default());
        }
        match read.await {
            Err(LiveError::Forbidden { .. }) => {
                self.gap(what, &check, consequence, blocks);
                Ok(T::default())
            }
            other => other,
        }
    }

    fn into_gaps(self) -> Vec<AccessGap> {
        self.gaps.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

/// One server dry-run eviction per disruption budget, on a pod the budget covers that a drain
/// would evict (not a mirror or DaemonSet pod). Nothing is evicted: the apiserver runs its
/// admission and budget checks and answers as it would for a real drain.
async fn probe_evictions(client: &Client, facts: &ClusterFacts, warnings: &mut Vec<String>) -> Vec<EvictionProbe> {
    use futures::StreamExt;
    let mut chosen = Vec::new();
    for pdb in &facts.pdbs {
        // An unset selector selects no pods.
        if pdb.selector.is_null() {
            continue;
        }
        let Ok(selector) = crate::labels::LabelSelector::from_json(&pdb.selector) else { continue };
        let pod = facts.pods.iter().find(|p| {
            p.namespace == pdb.namespace
                && !p.mirror
                && !p.daemonset
                && !p.node.is_empty()
                && selector.matches_map(&p.labels)
        });
        if let Some(pod) = pod {
            chosen.push((pdb, pod));
        }
    }
    if chosen.len() > MAX_EVICTION_PROBES {
        warnings.push(format!(
            "{} disruption budgets: only the first {MAX_EVICTION_PROBES} were checked with a dry-run eviction",
            chosen.len()
        ));
        chosen.truncate(MAX_EVICTION_PROBES);
    }
    // Dry run asked both ways (query and deleteOptions), as kubectl drain --dry-run=server does.
    let params = kube::api::EvictParams {
        post_options: kube::api::PostParams { dry_run: true, field_manager: None },
        delete_options: Some(kube::api::DeleteParams { dry_run: true, ..Default::default() }),
    };
    futures::stream::iter(chosen)
        .map(|(pdb, pod)| {
            let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
            let params = &params;
            async move {
                let outcome = match api.evict(&pod.name, params).await {
                    Ok(_) => ProbeOutcome::Allowed,
                    Err(kube::Error::Api(status)) if matches!(status.code, 429 | 500) => {
                        ProbeOutcome::Refused { status: status.code, message: bounded(&status.message) }
                    }
                    Err(e) => ProbeOutcome::Failed { message: bounded(&e.to_string()) },
                };
                EvictionProbe {
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    node: pod.node.clone(),
                    pdb: format!("{}/{}", pdb.namespace, pdb.name),
                    outcome,
                }
            }
        })
        .buffered(PROBES_AT_ONCE)
        .collect()
        .await
}

/// A message from the cluster, cut to a length a terminal line can hold.
fn bounded(message: &str) -> String {
    const MAX: usize = 300;
    match message.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &message[..i]),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prometheus_labels_are_read_exactly_and_unescaped() {
        let line = r#"apiserver_requested_deprecated_apis{group="batch",removed_release="1.25",resource="cronjobs",subresource="",version="v1beta1"} 1"#;
        let l = super::prometheus_labels(line);
        assert_eq!(l["resource"], "cronjobs");
        assert_eq!(l["subresource"], "");
        assert_eq!(l["version"], "v1beta1");
        // Order does not matter and `resource` is never read out of `subresource`.
        let l = super::prometheus_labels(r#"m{subresource="status",resource="pods"} 1"#);
        assert_eq!(l["resource"], "pods");
        let l = super::prometheus_labels(r#"m{a="x\"y\\z\nw", b="2"} 1"#);
        assert_eq!(l["a"], "x\"y\\z\nw");
        assert_eq!(l["b"], "2");
        assert!(super::prometheus_labels(r#"m{a="unterminated} 1"#).is_empty());
        assert!(super::prometheus_labels("m 1").is_empty());
    }

    use super::*;

    #[test]
    fn the_deprecated_request_gauge_is_read_and_compared_across_a_restart() {
        let before = DeprecatedRequests::parse(
            "process_start_time_seconds 1000.5\napiserver_requested_deprecated_apis{group=\"batch\",removed_release=\"1.25\",resource=\"cronjobs\",subresource=\"\",version=\"v1beta1\"} 1\n",
        );
        assert_eq!(before.apiserver_started, Some(1000.5));
        assert_eq!(before.resources.iter().collect::<Vec<_>>(), ["batch/v1beta1 cronjobs"]);
        // Same process: only what is new counts as requested since.
        let same = DeprecatedRequests::parse(
            "process_start_time_seconds 1000.5\napiserver_requested_deprecated_apis{group=\"batch\",removed_release=\"1.25\",resource=\"cronjobs\",subresource=\"\",version=\"v1beta1\"} 1\napiserver_requested_deprecated_apis{group=\"\",removed_release=\"\",resource=\"componentstatuses\",subresource=\"\",version=\"v1\"} 1\n",
        );
        assert_eq!(same.since(&before).into_iter().collect::<Vec<_>>(), ["v1 componentstatuses"]);
        // A restarted apiserver: all it reports came after.
        let restarted = DeprecatedRequests { apiserver_started: Some(2000.0), ..before.clone() };
        assert_eq!(restarted.since(&before).len(), 1);
    }
}
