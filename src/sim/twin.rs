//! The twin: a simulator scenario made from an inventory of a live cluster, so that an upgrade
//! can be rehearsed on a copy that has the cluster's nodes, pods, placement rules and budgets.
//!
//! Nodes keep their names, versions, labels, taints and allocatable resources, grouped into
//! pools of alike nodes. Every workload keeps its kind, namespace, name, replicas, requests,
//! labels, placement rules (node selector, affinities, tolerations, topology spread), volumes
//! and the nodes its pods run on now; bare pods stay on their nodes; budgets are copied with
//! their selectors. Add-ons are workloads whose image the catalog knows, so the twin's plan
//! finds them as the live one did. Nothing is read from Secrets. What the twin cannot copy is
//! said in [`Twin::notes`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use super::Timings;
use super::scenario::{Capacity, ClusterSpec, NodePool, Requests, Scenario, Taint, Workload, WorkloadKind};
use crate::inventory::{Inventory, NodeFacts, PodFacts};

/// A node's upgrade time when neither the operator nor the cluster's events tell it.
pub const DEFAULT_NODE_RESTART_SECONDS: f64 = 90.0;

/// What the inventory does not say and the rehearsal assumes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwinTimings {
    /// A node's upgrade, from the upgrade action to Ready at the new version; `None`: the
    /// median of the inventory's node restarts.
    pub node_restart_seconds: Option<f64>,
    /// A pod's start, from binding to Ready; `None`: measured from the inventory's pods.
    pub pod_start_seconds: Option<f64>,
    /// A pod's stop after SIGTERM (at most its grace period).
    pub pod_stop_seconds: f64,
}

/// A scenario made from an inventory, and what it could not copy.
#[derive(Debug, Clone)]
pub struct Twin {
    pub scenario: Scenario,
    /// Node upgrade time used, and how it was found.
    pub node_restart: (f64, String),
    /// Pod start time used, and how it was found.
    pub pod_start: (f64, String),
    /// What differs from the live cluster, one line each.
    pub notes: Vec<String>,
    /// `Kind namespace/name` of each workload → the nodes its pods ran on.
    pub placements: BTreeMap<String, BTreeSet<String>>,
}

/// Labels the node's kubelet or the node controller sets per node, which the simulator sets
/// itself.
fn per_node_label(key: &str) -> bool {
    matches!(key, "kubernetes.io/hostname") || key.starts_with("node-role.kubernetes.io/")
}

/// Labels the controllers put on pods, which the simulator's controllers put on them again.
fn controller_label(key: &str) -> bool {
    matches!(
        key,
        "pod-template-hash"
            | "controller-revision-hash"
            | "pod-template-generation"
            | "statefulset.kubernetes.io/pod-name"
            | "apps.kubernetes.io/pod-index"
            | "batch.kubernetes.io/controller-uid"
            | "controller-uid"
    )
}

/// Taints that the node lifecycle controller and cordoning manage; the simulator sets its own.
fn managed_taint(key: &str) -> bool {
    key.starts_with("node.kubernetes.io/") || key.starts_with("node.cloudprovider.kubernetes.io/")
}

/// Labels naming a node's pool on the common platforms, in order of preference.
const POOL_LABELS: [&str; 6] = [
    "eks.amazonaws.com/nodegroup",
    "cloud.google.com/gke-nodepool",
    "kubernetes.azure.com/agentpool",
    "karpenter.sh/nodepool",
    "node.kubernetes.io/pool",
    "node.kubernetes.io/instance-type",
];

fn parse_taint(text: &str) -> Option<Taint> {
    let (kv, effect) = text.rsplit_once(':')?;
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    Some(Taint {
        key: key.to_string(),
        value: (!value.is_empty()).then(|| value.to_string()),
        effect: effect.to_string(),
    })
}

fn millicores(cores: f64) -> String {
    format!("{}m", (cores * 1000.0).round().max(0.0) as u64)
}

fn bytes(b: f64) -> String {
    format!("{}", b.round().max(0.0) as u64)
}

/// A name usable as a pool name (a DNS label), from `hint`.
fn pool_name(hint: &str, taken: &mut BTreeSet<String>) -> String {
    let mut base: String = hint
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(40)
        .collect();
    base = base.trim_end_matches('-').to_string();
    if base.is_empty() {
        base = "pool".into();
    }
    let mut name = base.clone();
    let mut i = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}-{i}");
        i += 1;
    }
    name
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    Some(xs[xs.len() / 2])
}

fn node_pools(nodes: &[NodeFacts], cluster_version: &str, notes: &mut Vec<String>) -> Vec<NodePool> {
    // Nodes alike in everything the simulator models share a pool.
    let mut groups: BTreeMap<String, (NodePool, Vec<String>)> = BTreeMap::new();
    let mut taken = BTreeSet::new();
    let mut unknown_kubelet = 0;
    for n in nodes {
        let labels: BTreeMap<String, String> =
            n.labels.iter().filter(|(k, _)| !per_node_label(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        let taints: Vec<Taint> =
            n.taints.iter().filter_map(|t| parse_taint(t)).filter(|t| !managed_taint(&t.key)).collect();
        let version = match &n.kubelet {
            Some(v) => v.core(),
            None => {
                unknown_kubelet += 1;
                cluster_version.to_string()
            }
        };
        let capacity = Capacity {
            cpu: millicores(n.allocatable.1),
            memory: bytes(n.allocatable.2),
            pods: (n.allocatable.0.round().clamp(1.0, 10_000.0)) as u32,
        };
        let key = serde_json::to_string(&json!([
            n.roles,
            version,
            capacity.cpu,
            capacity.memory,
            capacity.pods,
            labels,
            taints.iter().map(|t| (&t.key, &t.value, &t.effect)).collect::<Vec<_>>(),
            n.unschedulable,
            n.node_info.os_image,
            n.node_info.container_runtime_version,
            n.node_info.kernel_version
        ]))
        .unwrap_or_default();
        let entry = groups.entry(key).or_insert_with(|| {
            let hint = if n.is_control_plane() {
                "control-plane".to_string()
            } else {
                POOL_LABELS.iter().find_map(|l| labels.get(*l).cloned()).unwrap_or_else(|| "pool".into())
            };
            let pool = NodePool {
                name: pool_name(&hint, &mut taken),
                count: 0,
                roles: n.roles.clone(),
                version: Some(version.clone()),
                capacity,
                labels,
                taints,
                os_image: n.node_info.os_image.clone(),
                container_runtime: n.node_info.container_runtime_version.clone(),
                kernel_version: n.node_info.kernel_version.clone(),
                unschedulable: n.unschedulable,
                names: Vec::new(),
            };
            (pool, Vec::new())
        });
        entry.1.push(n.name.clone());
    }
    if unknown_kubelet > 0 {
        notes.push(format!(
            "{unknown_kubelet} node(s) did not report a kubelet version; the twin gives them the cluster's"
        ));
    }
    groups
        .into_values()
        .map(|(mut pool, names)| {
            pool.count = names.len() as u32;
            pool.names = names;
            pool
        })
        .collect()
}

/// The pods of each workload (`Kind namespace/name`), skipping mirror pods and finished ones.
fn pods_by_workload(pods: &[PodFacts]) -> BTreeMap<String, Vec<&PodFacts>> {
    let mut by: BTreeMap<String, Vec<&PodFacts>> = BTreeMap::new();
    for p in pods.iter().filter(|p| !p.mirror && !matches!(p.phase.as_str(), "Succeeded" | "Failed")) {
        let key = match &p.workload {
            Some(w) => {
                let (kind, name) = w.split_once('/').unwrap_or(("", w));
                format!("{kind} {}/{name}", p.namespace)
            }
            None => format!("Pod {}/{}", p.namespace, p.name),
        };
        by.entry(key).or_default().push(p);
    }
    by
}

/// The workload the twin runs for one live workload (or bare pod).
fn workload(
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
    replicas: u32,
    pods: &[&PodFacts],
    image: Option<String>,
) -> Workload {
    let first = pods.first();
    let mut pods_sorted: Vec<&&PodFacts> = pods.iter().collect();
    // A StatefulSet's pod N is replica N.
    pods_sorted.sort_by_key(|p| {
        let ordinal = p.name.rsplit_once('-').and_then(|(_, o)| o.parse::<u64>().ok()).unwrap_or(u64::MAX);
        (ordinal, p.name.clone())
    });
    let placement = first.and_then(|p| p.placement.clone()).unwrap_or(Value::Null);
    let node_selector: BTreeMap<String, String> = placement
        .get("nodeSelector")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    let requests = first
        .map(|p| p.requests)
        .filter(|(c, m)| *c > 0.0 || *m > 0.0)
        .map(|(c, m)| Requests { cpu: (c > 0.0).then(|| millicores(c)), memory: (m > 0.0).then(|| bytes(m)) });
    Workload {
        kind,
        name: name.to_string(),
        namespace: namespace.to_string(),
        replicas,
        image,
        requests,
        labels: first
            .map(|p| {
                p.labels.iter().filter(|(k, _)| !controller_label(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
            })
            .unwrap_or_default(),
        empty_dir: pods.iter().any(|p| p.empty_dir),
        local_volume: pods.iter().any(|p| p.local_volume),
        block_volume: None,
        pdb: None,
        never_ready: !pods.is_empty() && pods.iter().all(|p| !p.ready),
        node_selector,
        tolerate_all: false,
        termination_grace_period_seconds: first.and_then(|p| p.grace_seconds),
        affinity: placement.get("affinity").cloned(),
        tolerations: placement.get("tolerations").and_then(Value::as_array).cloned().unwrap_or_default(),
        topology_spread_constraints: placement
            .get("topologySpreadConstraints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        // A DaemonSet's pods go where its rules say, one per node.
        nodes: if kind == WorkloadKind::DaemonSet {
            Vec::new()
        } else {
            pods_sorted.iter().filter(|p| !p.node.is_empty()).map(|p| p.node.clone()).collect()
        },
    }
}

/// Builds the twin of the cluster in `inv`.
pub fn from_inventory(inv: &Inventory, distro: &str, timings: TwinTimings) -> Result<Twin, String> {
    let cluster = inv.cluster.as_ref().ok_or("the inventory holds no cluster facts (it was made from manifests only); save one with `k8s-upgrade inventory` against the cluster")?;
    let version = crate::checks::skew::oldest_apiserver(cluster)
        .or_else(|| cluster.server_version.clone())
        .ok_or("the inventory does not say the cluster's version")?;
    if cluster.nodes.is_empty() {
        return Err("the inventory lists no nodes".into());
    }
    let mut notes = Vec::new();
    let distro = distro.to_string();
    let node_pools = node_pools(&cluster.nodes, &version.core(), &mut notes);
    let known_nodes: BTreeSet<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();

    // Add-on workloads keep their image, so the twin's plan finds them as the live one did.
    let addon_images: HashMap<String, String> =
        cluster.addons.iter().map(|a| (a.workload.clone(), a.image.clone())).collect();
    let by_workload = pods_by_workload(&cluster.pods);
    let mut workloads = Vec::new();
    let mut placements: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut jobs = 0usize;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for w in &cluster.workloads {
        let kind = match w.kind.as_str() {
            "Deployment" => WorkloadKind::Deployment,
            "StatefulSet" => WorkloadKind::StatefulSet,
            "DaemonSet" => WorkloadKind::DaemonSet,
            "ReplicaSet" => WorkloadKind::Deployment,
            "Job" => {
                jobs += 1;
                continue;
            }
            _ => continue,
        };
        let key = format!("{} {}/{}", w.kind, w.namespace, w.name);
        // A Deployment's ReplicaSets are folded into it by the collector.
        if !seen.insert(key.clone()) {
            continue;
        }
        let pods = by_workload.get(&key).cloned().unwrap_or_default();
        if w.kind == "ReplicaSet" && pods.is_empty() {
            continue;
        }
        let replicas = u32::try_from(w.replicas.max(0)).unwrap_or(u32::MAX);
        let twin = workload(kind, &w.namespace, &w.name, replicas, &pods, addon_images.get(&key).cloned());
        placements.insert(key.clone(), pods.iter().filter(|p| !p.node.is_empty()).map(|p| p.node.clone()).collect());
        workloads.push((key, twin));
    }
    for (key, pods) in &by_workload {
        if !key.starts_with("Pod ") {
            continue;
        }
        let p = pods[0];
        if p.node.is_empty() || !known_nodes.contains(p.node.as_str()) {
            continue;
        }
        let twin = workload(WorkloadKind::Pod, &p.namespace, &p.name, 1, pods, None);
        placements.insert(key.clone(), twin.nodes.iter().cloned().collect());
        workloads.push((key.clone(), twin));
    }
    let mut kept = Vec::new();
    for (key, w) in workloads {
        match super::scenario_checks::check_workload(&key, &w) {
            Ok(()) => kept.push(w),
            Err(e) => skipped.push(format!("{key} ({}: {})", e.field, e.message)),
        }
    }
    if jobs > 0 {
        notes.push(format!("{jobs} Job(s) are not copied: a drain waits for their pods as for any other, but the twin does not run them"));
    }
    if !skipped.is_empty() {
        notes.push(format!(
            "{} workload(s) the simulator cannot model are left out: {}",
            skipped.len(),
            skipped.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    if !cluster.helm_releases.is_empty() {
        notes.push(format!(
            "{} Helm release(s) are not copied (their manifests are in Secrets, which the twin does not read); release steps are rehearsed as operator steps",
            cluster.helm_releases.len()
        ));
    }
    // Budgets keep their selectors; the simulator's disruption controller computes their status.
    let mut manifests = String::new();
    for b in &cluster.pdbs {
        let mut spec = json!({"selector": b.selector});
        if let Some(m) = &b.min_available {
            spec["minAvailable"] = m.clone();
        }
        if let Some(m) = &b.max_unavailable {
            spec["maxUnavailable"] = m.clone();
        }
        let doc = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": b.name, "namespace": b.namespace}, "spec": spec});
        manifests.push_str("---\n");
        manifests.push_str(&doc.to_string());
        manifests.push('\n');
    }
    let namespaces: BTreeSet<String> = kept
        .iter()
        .map(|w| w.namespace.clone())
        .chain(cluster.pdbs.iter().map(|b| b.namespace.clone()))
        .filter(|ns| !matches!(ns.as_str(), "default" | "kube-system" | "kube-public" | "kube-node-lease"))
        .collect();
    let measured = median(cluster.pods.iter().filter_map(|p| p.start_seconds).collect());
    let pod_start = match (timings.pod_start_seconds, measured) {
        (Some(s), _) => (s, "given with --pod-start".to_string()),
        (None, Some(m)) => (
            m.clamp(0.5, 600.0),
            format!(
                "the median start-to-Ready time of {} running pods",
                cluster.pods.iter().filter(|p| p.start_seconds.is_some()).count()
            ),
        ),
        (None, None) => {
            (Timings::default().pod_start_seconds, "assumed (no pod reported its start); pass --pod-start".into())
        }
    };
    let restarts = &cluster.node_restarts;
    let node_restart = match (timings.node_restart_seconds, median(restarts.iter().map(|r| r.seconds).collect())) {
        (Some(s), _) => (s, "given with --node-restart".to_string()),
        (None, Some(m)) => (
            m.clamp(1.0, 3600.0),
            format!(
                "the median of {} node restart{} in the cluster's Node events, from down to Ready",
                restarts.len(),
                if restarts.len() == 1 { "" } else { "s" }
            ),
        ),
        (None, None) => {
            let why = if cluster.access_gaps.iter().any(|g| g.what == "Node events") {
                "the cluster refused to list its events (grant `k8s-upgrade rbac --for rehearse`)"
            } else {
                "no node restart in the cluster's recent Node events"
            };
            (DEFAULT_NODE_RESTART_SECONDS, format!("assumed: {why}; pass --node-restart"))
        }
    };
    let scenario = Scenario {
        name: "twin".into(),
        description: format!("twin of a {distro} cluster at {version} ({} nodes)", cluster.nodes.len()),
        cluster: ClusterSpec { version: version.core(), distro, etcd_version: None },
        timings: Some(Timings {
            pod_start_seconds: pod_start.0,
            node_restart_seconds: node_restart.0,
            default_grace_seconds: timings.pod_stop_seconds,
            max_grace_seconds: timings.pod_stop_seconds,
            ..Timings::default()
        }),
        faults: None,
        node_pools,
        namespaces: namespaces.into_iter().collect(),
        workloads: kept,
        addons: vec![],
        manifests: (!manifests.is_empty()).then_some(manifests),
        helm_releases: vec![],
        past_requests: vec![],
        access: Default::default(),
        source: "twin".into(),
    };
    // Held to what a scenario file is held to, so a twin that the simulator could not build
    // faithfully is refused here with the field named.
    scenario.validate("twin").map_err(|e| e.message)?;
    Ok(Twin { scenario, node_restart, pod_start, notes, placements })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::catalog::Catalog;
    use crate::sim::InMemory;

    const TIMINGS: TwinTimings =
        TwinTimings { node_restart_seconds: Some(30.0), pod_start_seconds: None, pod_stop_seconds: 2.0 };

    /// A node as compared: name, taints, kubelet version, allocatable.
    type NodeShape = (String, Vec<String>, String, (f64, f64, f64));

    /// Where each workload's pods run, and each node's facts, as the collector reads them.
    fn shape(inv: &Inventory) -> (BTreeMap<String, Vec<String>>, Vec<NodeShape>) {
        let c = inv.cluster.as_ref().unwrap();
        let mut placed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in c.pods.iter().filter(|p| !p.mirror) {
            placed
                .entry(p.workload.clone().unwrap_or_else(|| format!("Pod/{}", p.name)))
                .or_default()
                .push(p.node.clone());
        }
        placed.values_mut().for_each(|v| v.sort());
        let mut nodes: Vec<_> = c
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    n.taints.clone(),
                    n.kubelet.as_ref().map(|v| v.core()).unwrap_or_default(),
                    n.allocatable,
                )
            })
            .collect();
        nodes.sort_by(|a, b| a.0.cmp(&b.0));
        (placed, nodes)
    }

    async fn collect(client: &kube::Client, catalog: &Catalog) -> Inventory {
        crate::inventory::live::collect(client, catalog, &crate::inventory::live::CollectOptions::default())
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_twin_of_a_cluster_has_its_nodes_pods_where_they_run_and_its_budgets() {
        let catalog = Arc::new(Catalog::embedded().unwrap());
        let live = InMemory::start(Scenario::load("pools").unwrap(), catalog.clone(), 1.0).unwrap();
        let inv = collect(&live.client, &catalog).await;
        let twin = from_inventory(&inv, "kubeadm", TIMINGS).unwrap();
        // Alike nodes share a pool and keep their names.
        let workers: Vec<&NodePool> = twin.scenario.node_pools.iter().filter(|p| p.roles == ["worker"]).collect();
        assert_eq!(workers.len(), 3, "{:?}", twin.scenario.node_pools.iter().map(|p| &p.name).collect::<Vec<_>>());
        assert!(workers.iter().any(|p| p.names.contains(&"memory-7".to_string()) && p.count == 10));
        let copy = InMemory::start(twin.scenario.clone(), catalog.clone(), 1.0).unwrap();
        let again = collect(&copy.client, &catalog).await;
        let (live_pods, live_nodes) = shape(&inv);
        let (twin_pods, twin_nodes) = shape(&again);
        assert_eq!(twin_nodes, live_nodes);
        // Every workload's pods on the same nodes (names differ: the twin's controllers made them).
        let by_workload = |m: BTreeMap<String, Vec<String>>| -> BTreeMap<String, Vec<String>> {
            m.into_iter().filter(|(k, _)| !k.starts_with("Pod/")).collect()
        };
        assert_eq!(by_workload(twin_pods), by_workload(live_pods));
        let budgets = |i: &Inventory| -> Vec<(String, String, Option<Value>, Option<Value>)> {
            let mut v: Vec<_> = i
                .cluster
                .as_ref()
                .unwrap()
                .pdbs
                .iter()
                .map(|b| (b.namespace.clone(), b.name.clone(), b.min_available.clone(), b.max_unavailable.clone()))
                .collect();
            v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            v
        };
        assert_eq!(budgets(&again), budgets(&inv));
        // The same add-ons are found, so the plan is the same.
        let addons = |i: &Inventory| {
            i.cluster
                .as_ref()
                .unwrap()
                .addons
                .iter()
                .map(|a| (a.name.clone(), a.version.clone()))
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(addons(&again), addons(&inv));
    }

    #[test]
    fn placement_rules_and_bare_pods_are_copied_and_what_is_not_is_said() {
        let rules = json!({
            "nodeSelector": {"disk": "ssd"},
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        });
        let node = |name: &str| NodeFacts {
            name: name.into(),
            roles: vec!["worker".into()],
            kubelet: Some("1.30.4".parse().unwrap()),
            ready: true,
            taints: vec!["dedicated=db:NoSchedule".into(), "node.kubernetes.io/unschedulable=:NoSchedule".into()],
            allocatable: (110.0, 4.0, 8.0 * 1024.0 * 1024.0 * 1024.0),
            labels: [("disk".to_string(), "ssd".to_string()), ("kubernetes.io/hostname".to_string(), name.to_string())]
                .into(),
            ..Default::default()
        };
        let pod = |name: &str, node: &str, workload: Option<&str>| PodFacts {
            namespace: "data".into(),
            name: name.into(),
            node: node.into(),
            controller: workload.map(str::to_string),
            workload: workload.map(str::to_string),
            phase: "Running".into(),
            ready: true,
            labels: [
                ("app".to_string(), "db".to_string()),
                ("controller-revision-hash".to_string(), "db-5f7".to_string()),
            ]
            .into(),
            requests: (0.5, 1024.0 * 1024.0 * 1024.0),
            placement: workload.map(|_| rules.clone()),
            start_seconds: Some(4.0),
            ..Default::default()
        };
        let inv = Inventory {
            cluster: Some(crate::inventory::ClusterFacts {
                server_version: Some("1.30.4".parse().unwrap()),
                nodes: vec![node("db-a"), node("db-b")],
                workloads: vec![
                    crate::inventory::WorkloadFacts {
                        kind: "StatefulSet".into(),
                        namespace: "data".into(),
                        name: "db".into(),
                        replicas: 2,
                        ready: 2,
                    },
                    crate::inventory::WorkloadFacts {
                        kind: "Job".into(),
                        namespace: "data".into(),
                        name: "backup".into(),
                        replicas: 1,
                        ready: 1,
                    },
                ],
                pods: vec![
                    pod("db-1", "db-b", Some("StatefulSet/db")),
                    pod("db-0", "db-a", Some("StatefulSet/db")),
                    pod("debug", "db-a", None),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let twin = from_inventory(&inv, "kubeadm", TIMINGS).unwrap();
        let pools = &twin.scenario.node_pools;
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].names, ["db-a", "db-b"]);
        // The cordon taint is the simulator's to set; the pool's own taint stays.
        assert_eq!(pools[0].taints.len(), 1);
        assert_eq!((pools[0].taints[0].key.as_str(), pools[0].taints[0].value.as_deref()), ("dedicated", Some("db")));
        assert_eq!(pools[0].capacity.memory, "8589934592");
        let db = twin.scenario.workloads.iter().find(|w| w.name == "db").unwrap();
        assert_eq!(db.kind, WorkloadKind::StatefulSet);
        // Replica N on the node pod N runs on.
        assert_eq!(db.nodes, ["db-a", "db-b"]);
        assert_eq!(db.node_selector.get("disk").map(String::as_str), Some("ssd"));
        assert!(db.affinity.as_ref().unwrap()["podAntiAffinity"].is_object());
        assert_eq!(db.tolerations.len(), 1);
        assert!(!db.labels.contains_key("controller-revision-hash"));
        assert_eq!(db.requests.as_ref().unwrap().cpu.as_deref(), Some("500m"));
        let bare = twin.scenario.workloads.iter().find(|w| w.name == "debug").unwrap();
        assert_eq!((bare.kind, bare.nodes.as_slice()), (WorkloadKind::Pod, &["db-a".to_string()][..]));
        assert_eq!(twin.pod_start.0, 4.0);
        assert!(twin.notes.iter().any(|n| n.contains("1 Job(s) are not copied")), "{:?}", twin.notes);
        // A twin is a scenario like any other: written out, it reads back.
        let text = serde_saphyr::to_string(&twin.scenario).unwrap();
        let back = Scenario::parse("twin.yaml", &text).unwrap();
        assert_eq!(back.workloads.len(), twin.scenario.workloads.len());
    }

    #[test]
    fn the_node_restart_is_given_else_the_median_of_the_events_else_assumed_and_said_so() {
        use crate::inventory::{ClusterFacts, NodeRestart};
        let node = |name: &str| NodeFacts {
            name: name.into(),
            roles: vec!["worker".into()],
            kubelet: "1.30.8".parse().ok(),
            ready: true,
            allocatable: (110.0, 4.0, 8.0 * 1024.0 * 1024.0 * 1024.0),
            ..Default::default()
        };
        let restart =
            |node: &str, seconds: f64| NodeRestart { node: node.into(), seconds, from: "NodeNotReady".into() };
        let mut inv = Inventory {
            cluster: Some(ClusterFacts {
                server_version: "1.31.4".parse().ok(),
                nodes: vec![node("a"), node("b"), node("c")],
                node_restarts: vec![restart("a", 40.0), restart("b", 75.0), restart("c", 300.0)],
                ..Default::default()
            }),
            ..Default::default()
        };
        let unset = TwinTimings { node_restart_seconds: None, ..TIMINGS };
        let twin = from_inventory(&inv, "kubeadm", unset).unwrap();
        assert_eq!(twin.node_restart.0, 75.0);
        assert!(twin.node_restart.1.contains("median of 3 node restarts"), "{}", twin.node_restart.1);
        assert_eq!(twin.scenario.timings.as_ref().unwrap().node_restart_seconds, 75.0);
        let given = from_inventory(&inv, "kubeadm", TIMINGS).unwrap();
        assert_eq!(given.node_restart, (30.0, "given with --node-restart".to_string()));
        inv.cluster.as_mut().unwrap().node_restarts.clear();
        let assumed = from_inventory(&inv, "kubeadm", unset).unwrap();
        assert_eq!(assumed.node_restart.0, DEFAULT_NODE_RESTART_SECONDS);
        assert!(assumed.node_restart.1.contains("pass --node-restart"), "{}", assumed.node_restart.1);
    }

    #[test]
    fn an_inventory_without_cluster_facts_is_refused_with_what_to_do() {
        let e = from_inventory(&Inventory::default(), "kubeadm", TIMINGS).unwrap_err();
        assert!(e.contains("k8s-upgrade inventory"), "{e}");
    }
}
