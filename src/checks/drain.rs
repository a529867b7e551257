//! Drainability: what will make a node drain stall, fail or lose data when nodes roll. It reads
//! the cluster facts of the inventory only: PodDisruptionBudgets that allow no disruption now or
//! stay blocked because their pods are unhealthy, budgets over single-replica workloads, pods
//! without a controller, pods with emptyDir or node-local storage, and whether the busiest
//! worker's pods fit on the other nodes while it is drained. The findings are about the cluster
//! as it is, so they carry no hop and no evidence; their details name the namespace, the object
//! and the node.

use std::collections::{BTreeSet, HashMap};

use serde_json::json;

use super::{Details, Finding, FindingCode, Severity};
use crate::inventory::{ClusterFacts, Inventory, NodeFacts, PdbFacts, PodFacts, WorkloadFacts};
use crate::k8s::pod::{Disposition, DrainView, Need, disposition};
use crate::labels::LabelSelector;

/// Pods a drain evicts (the drain's own rule, [`disposition`]) that are bound to a node.
fn evicted_by_drain(p: &PodFacts) -> bool {
    matches!(disposition(p), Disposition::Evicted { .. }) && !p.node.is_empty()
}

/// The pods a budget selects (same namespace; a budget without a selector selects nothing).
fn selected<'a>(pdb: &PdbFacts, by_namespace: &HashMap<&str, Vec<&'a PodFacts>>) -> Vec<&'a PodFacts> {
    if pdb.selector.is_null() {
        return Vec::new();
    }
    let Ok(sel) = LabelSelector::from_json(&pdb.selector) else { return Vec::new() };
    by_namespace
        .get(pdb.namespace.as_str())
        .into_iter()
        .flatten()
        .copied()
        .filter(|p| !p.finished())
        .filter(|p| sel.matches_map(&p.labels))
        .collect()
}

/// The workload a pod belongs to, from the inventory's workload list.
type WorkloadIndex<'a> = HashMap<(&'a str, &'a str, &'a str), &'a WorkloadFacts>;

fn workload_of<'a>(pod: &PodFacts, workloads: &WorkloadIndex<'a>) -> Option<&'a WorkloadFacts> {
    let owner = pod.workload.as_deref().or(pod.controller.as_deref())?;
    let (kind, name) = owner.split_once('/')?;
    workloads.get(&(pod.namespace.as_str(), kind, name)).copied()
}

fn nodes_of(pods: &[&PodFacts]) -> Vec<String> {
    pods.iter().map(|p| p.node.clone()).filter(|n| !n.is_empty()).collect::<BTreeSet<_>>().into_iter().collect()
}

fn pdb_details(pdb: &PdbFacts, pods: &[&PodFacts]) -> serde_json::Map<String, serde_json::Value> {
    let mut d = serde_json::Map::new();
    d.insert("namespace".into(), json!(pdb.namespace));
    d.insert("name".into(), json!(pdb.name));
    d.insert("nodes".into(), json!(nodes_of(pods)));
    d.insert("currentHealthy".into(), json!(pdb.current_healthy));
    d.insert("desiredHealthy".into(), json!(pdb.desired_healthy));
    d.insert("disruptionsAllowed".into(), json!(pdb.disruptions_allowed));
    d.insert("expectedPods".into(), json!(pdb.expected_pods));
    if let Some(m) = &pdb.min_available {
        d.insert("minAvailable".into(), m.clone());
    }
    if let Some(m) = &pdb.max_unavailable {
        d.insert("maxUnavailable".into(), m.clone());
    }
    d
}

fn pod_details(p: &PodFacts) -> serde_json::Map<String, serde_json::Value> {
    let mut d = serde_json::Map::new();
    d.insert("namespace".into(), json!(p.namespace));
    d.insert("name".into(), json!(p.name));
    d.insert("node".into(), json!(p.node));
    if let Some(w) = p.workload.as_deref().or(p.controller.as_deref()) {
        d.insert("workload".into(), json!(w));
    }
    d
}

/// Budget findings; with a `scope` (`--pod-selector`), only budgets over a pod the drain evicts.
fn pdb_findings(cluster: &ClusterFacts, scope: Option<&LabelSelector>, out: &mut Vec<Finding>) {
    // Indexes first: budgets, pods and workloads run to the thousands on large clusters.
    let mut by_namespace: HashMap<&str, Vec<&PodFacts>> = HashMap::new();
    for p in &cluster.pods {
        by_namespace.entry(p.namespace.as_str()).or_default().push(p);
    }
    let workloads: WorkloadIndex<'_> =
        cluster.workloads.iter().map(|w| ((w.namespace.as_str(), w.kind.as_str(), w.name.as_str()), w)).collect();
    for pdb in &cluster.pdbs {
        let pods = selected(pdb, &by_namespace);
        if let Some(s) = scope
            && !pods.iter().any(|p| evicted_by_drain(p) && s.matches_map(&p.labels))
        {
            continue;
        }
        let subject = format!("PodDisruptionBudget {}/{}", pdb.namespace, pdb.name);
        let single: Vec<&WorkloadFacts> = {
            let mut ws: Vec<&WorkloadFacts> =
                pods.iter().filter_map(|p| workload_of(p, &workloads)).filter(|w| w.replicas <= 1).collect();
            ws.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
            ws.dedup_by(|a, b| a.kind == b.kind && a.name == b.name);
            ws
        };
        let workload_names: Vec<String> = single.iter().map(|w| format!("{}/{}", w.kind, w.name)).collect();
        if pdb.current_healthy < pdb.desired_healthy {
            let unready: Vec<&PodFacts> = pods.iter().copied().filter(|p| !p.ready).collect();
            let mut details = pdb_details(pdb, &pods);
            details.insert(
                "unreadyPods".into(),
                json!(unready.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect::<Vec<_>>()),
            );
            let why = if unready.is_empty() {
                "fewer of its pods exist than the budget wants".to_string()
            } else {
                format!(
                    "{} of its pods {} not ready ({})",
                    unready.len(),
                    if unready.len() == 1 { "is" } else { "are" },
                    unready.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            };
            out.push(Finding {
                code: FindingCode::PdbUnhealthy,
                severity: Severity::Blocker,
                hop: None,
                subject,
                message: format!(
                    "{} has currentHealthy {} below desiredHealthy {} because {why}: the budget allows no eviction until they recover, so drains of their nodes wait",
                    pdb.name, pdb.current_healthy, pdb.desired_healthy
                ),
                evidence: None,
                remediation: format!(
                    "make the pods of {}/{} ready (or fix what keeps them from starting) before the nodes roll",
                    pdb.namespace, pdb.name
                ),
                details: Details::facts(details),
            });
            continue;
        }
        if pdb.disruptions_allowed <= 0
            && pdb.expected_pods > 0
            && !pdb.disrupted_pods.is_empty()
            && pdb.current_healthy + pdb.disrupted_pods.len() as i64 > pdb.desired_healthy
        {
            // Held only by evictions granted moments ago (a drain in flight, or a run killed
            // between its eviction and the pod's deletion): the disruption controller forgets
            // them within two minutes.
            let mut details = pdb_details(pdb, &pods);
            details.insert("disruptedPods".into(), json!(pdb.disrupted_pods));
            out.push(Finding {
                code: FindingCode::PdbBlocksDrain,
                severity: Severity::Warning,
                hop: None,
                subject,
                message: format!(
                    "{} allows 0 disruptions now only because it still counts {} granted eviction(s) whose pods are not gone ({}); the disruption controller drops them within two minutes, then drains of their nodes go on",
                    pdb.name,
                    pdb.disrupted_pods.len(),
                    pdb.disrupted_pods.join(", ")
                ),
                evidence: None,
                remediation: "nothing to do unless it stays so: another drain or an interrupted apply run evicted them; apply waits for the budget".into(),
                details: Details::facts(details),
            });
            continue;
        }
        if pdb.disruptions_allowed <= 0
            && pdb.expected_pods > 0
            && let Some(operator) = &pdb.operator
        {
            let mut details = pdb_details(pdb, &pods);
            details.insert("operator".into(), json!(operator));
            out.push(Finding {
                code: FindingCode::PdbBlocksDrain,
                severity: Severity::Warning,
                hop: None,
                subject,
                message: format!(
                    "{} allows 0 disruptions now (currentHealthy {}, desiredHealthy {}), and is managed by {operator}, which relaxes it itself when its pods may go: drains of their nodes wait for it",
                    pdb.name, pdb.current_healthy, pdb.desired_healthy
                ),
                evidence: None,
                remediation: format!(
                    "make sure {operator} can let go during the window (volumes detached, migrations possible); apply waits up to --budget-patience for it"
                ),
                details: Details::facts(details),
            });
            continue;
        }
        if pdb.disruptions_allowed <= 0 && pdb.expected_pods > 0 {
            let mut details = pdb_details(pdb, &pods);
            if !workload_names.is_empty() {
                details.insert("singleReplicaWorkloads".into(), json!(workload_names));
            }
            let single_note = if workload_names.is_empty() {
                String::new()
            } else {
                format!(" ({} runs a single replica)", workload_names.join(", "))
            };
            out.push(Finding {
                code: FindingCode::PdbBlocksDrain,
                severity: Severity::Blocker,
                hop: None,
                subject,
                message: format!(
                    "{} allows 0 disruptions with its pods healthy (currentHealthy {}, desiredHealthy {}){single_note}: every eviction of its pods is refused and the drain of their nodes never finishes",
                    pdb.name, pdb.current_healthy, pdb.desired_healthy
                ),
                evidence: None,
                remediation: format!(
                    "scale up the workload behind {}/{} or relax the budget (lower minAvailable or raise maxUnavailable) before the node rolls",
                    pdb.namespace, pdb.name
                ),
                details: Details::facts(details),
            });
            continue;
        }
        if !single.is_empty() {
            let mut details = pdb_details(pdb, &pods);
            details.insert("singleReplicaWorkloads".into(), json!(workload_names));
            out.push(Finding {
                code: FindingCode::PdbSingleReplica,
                severity: Severity::Warning,
                hop: None,
                subject,
                message: format!(
                    "{} guards {}, which runs a single replica: draining its node means downtime, or a stuck drain when the budget leaves no room",
                    pdb.name,
                    workload_names.join(", ")
                ),
                evidence: None,
                remediation: format!(
                    "run at least two replicas of {} (spread over nodes) before the nodes roll, or accept the downtime",
                    workload_names.join(", ")
                ),
                details: Details::facts(details),
            });
        }
    }
}

/// What the drain will refuse or lose, pod by pod, among the pods it evicts (`scope`: only those
/// `--pod-selector` selects).
fn pod_findings(cluster: &ClusterFacts, scope: Option<&LabelSelector>, out: &mut Vec<Finding>) {
    for p in &cluster.pods {
        if p.node.is_empty() || scope.is_some_and(|s| !s.matches_map(&p.labels)) {
            continue;
        }
        let Disposition::Evicted { needs } = disposition(p) else { continue };
        let subject = format!("Pod {}/{}", p.namespace, p.name);
        for need in needs {
            let (code, severity, message, remediation) = match need {
                Need::OwnerConsent(veto) => (
                    FindingCode::PodEvictionVetoed,
                    Severity::Blocker,
                    format!(
                        "{}/{} on node {} is annotated {veto}: its owner asked that it not be evicted, so the drain of {} stops before the node is cordoned",
                        p.namespace, p.name, p.node, p.node
                    ),
                    format!(
                        "ask the owner of {}/{} to remove the annotation for the window (or move the pod), or leave it out of the drain with apply --pod-selector",
                        p.namespace, p.name
                    ),
                ),
                Need::Force => (
                    FindingCode::PodNoController,
                    Severity::Warning,
                    format!(
                        "{}/{} on node {} has no controller: draining the node deletes it for good, and the drain needs --force",
                        p.namespace, p.name, p.node
                    ),
                    format!(
                        "run {} under a Deployment, StatefulSet or Job, or save what it does and accept that it is deleted when {} drains",
                        p.name, p.node
                    ),
                ),
                Need::DeleteEmptyDirData => (
                    FindingCode::PodEmptydir,
                    Severity::Warning,
                    format!(
                        "{}/{} on node {} uses an emptyDir volume: its data is lost when the node drains (the drain needs --delete-emptydir-data)",
                        p.namespace, p.name, p.node
                    ),
                    "move data that must survive to a PersistentVolume, or confirm it is scratch space".into(),
                ),
            };
            out.push(Finding {
                code,
                severity,
                hop: None,
                subject: subject.clone(),
                message,
                evidence: None,
                remediation,
                details: Details::facts(pod_details(p)),
            });
        }
        if p.local_volume {
            out.push(Finding {
                code: FindingCode::PodLocalVolume,
                severity: Severity::Warning,
                hop: None,
                subject,
                message: format!(
                    "{}/{} uses storage local to node {}: once evicted it cannot run elsewhere and stays Pending until that node is back, and the data is gone if the node is replaced",
                    p.namespace, p.name, p.node
                ),
                evidence: None,
                remediation: format!(
                    "back up its data and plan downtime for {}, or move it to network-attached storage before {} rolls",
                    p.name, p.node
                ),
                details: Details::facts(pod_details(p)),
            });
        }
    }
}

/// Free pods, CPU and memory on a node after the pods it runs now.
fn free_room(node: &NodeFacts, usage: &HashMap<&str, (f64, f64, f64)>) -> (f64, f64, f64) {
    let (pods, cpu, mem) = usage.get(node.name.as_str()).copied().unwrap_or_default();
    (node.allocatable.0 - pods, node.allocatable.1 - cpu, node.allocatable.2 - mem)
}

/// Pods, CPU and memory in use per node (running pods only), in one pass.
fn usage(pods: &[PodFacts]) -> HashMap<&str, (f64, f64, f64)> {
    let mut m: HashMap<&str, (f64, f64, f64)> = HashMap::new();
    for p in pods.iter().filter(|p| !p.finished() && !p.node.is_empty()) {
        let e = m.entry(p.node.as_str()).or_default();
        e.0 += 1.0;
        e.1 += p.requests.0;
        e.2 += p.requests.1;
    }
    m
}

fn blocks_scheduling(taint: &str) -> bool {
    taint.ends_with(":NoSchedule") || taint.ends_with(":NoExecute")
}

pub(crate) fn fmt_cpu(cores: f64) -> String {
    if cores.abs() < 1.0 { format!("{}m", (cores * 1000.0).round()) } else { format!("{:.2}", cores) }
}

pub(crate) fn fmt_bytes(b: f64) -> String {
    const GI: f64 = 1024.0 * 1024.0 * 1024.0;
    const MI: f64 = 1024.0 * 1024.0;
    if b.abs() >= GI { format!("{:.1}Gi", b / GI) } else { format!("{:.0}Mi", b / MI) }
}

/// Whether the pods of `node` can be placed on `others`, each pod on the node with the most free
/// CPU that has room for it (as the scheduler's least-allocated scoring would). Returns the
/// first pod that does not fit.
fn place<'a>(movable: &[&'a PodFacts], others: &[(f64, f64, f64)]) -> Option<&'a PodFacts> {
    let mut room = others.to_vec();
    let mut order = movable.to_vec();
    order.sort_by(|a, b| b.requests.0.total_cmp(&a.requests.0).then(b.requests.1.total_cmp(&a.requests.1)));
    for p in order {
        let slot = room
            .iter_mut()
            .filter(|r| r.0 >= 1.0 && r.1 >= p.requests.0 && r.2 >= p.requests.1)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match slot {
            Some(r) => {
                r.0 -= 1.0;
                r.1 -= p.requests.0;
                r.2 -= p.requests.1;
            }
            None => return Some(p),
        }
    }
    None
}

fn capacity_finding(cluster: &ClusterFacts) -> Option<Finding> {
    if cluster.nodes.iter().all(|n| n.allocatable == (0.0, 0.0, 0.0)) {
        return None; // allocatable unknown: nothing to compute with
    }
    let used = usage(&cluster.pods);
    let mut by_node: HashMap<&str, Vec<&PodFacts>> = HashMap::new();
    for p in cluster.pods.iter().filter(|p| evicted_by_drain(p)) {
        by_node.entry(p.node.as_str()).or_default().push(p);
    }
    let movable_on = |n: &NodeFacts| -> Vec<&PodFacts> { by_node.get(n.name.as_str()).cloned().unwrap_or_default() };
    let eligible: Vec<&NodeFacts> = cluster
        .nodes
        .iter()
        .filter(|n| n.ready && !n.unschedulable)
        .filter(|n| !n.taints.iter().any(|t| blocks_scheduling(t)))
        .collect();
    let totals = |ps: &[&PodFacts]| ps.iter().fold((0.0, 0.0), |acc, p| (acc.0 + p.requests.0, acc.1 + p.requests.1));
    let mut workers: Vec<(&NodeFacts, Vec<&PodFacts>)> = cluster
        .nodes
        .iter()
        .filter(|n| !n.is_control_plane() && !n.unschedulable)
        .map(|n| (n, movable_on(n)))
        .collect();
    // Busiest first: most requested CPU, then memory, then pods.
    workers.sort_by(|a, b| {
        let (ta, tb) = (totals(&a.1), totals(&b.1));
        tb.0.total_cmp(&ta.0).then(tb.1.total_cmp(&ta.1)).then(b.1.len().cmp(&a.1.len()))
    });
    let mut failing: Vec<(&NodeFacts, Vec<&PodFacts>, Vec<&NodeFacts>, &PodFacts)> = Vec::new();
    // The busiest workers are the ones that can fail; checking a few keeps large clusters fast.
    for (node, movable) in workers.iter().take(8) {
        if movable.is_empty() {
            continue;
        }
        let others: Vec<&NodeFacts> = eligible.iter().copied().filter(|n| n.name != node.name).collect();
        let room: Vec<(f64, f64, f64)> = others.iter().map(|n| free_room(n, &used)).collect();
        if let Some(stuck) = place(movable, &room) {
            failing.push((node, movable.clone(), others, stuck));
        }
    }
    let (node, movable, others, stuck) = failing.first()?;
    let (cpu, mem) = totals(movable);
    let free = others
        .iter()
        .map(|n| free_room(n, &used))
        .fold((0.0, 0.0, 0.0), |acc, r| (acc.0 + r.0.max(0.0), acc.1 + r.1.max(0.0), acc.2 + r.2.max(0.0)));
    let mut details = serde_json::Map::new();
    details.insert("node".into(), json!(node.name));
    details.insert("pods".into(), json!(movable.len()));
    details.insert("cpuRequests".into(), json!(cpu));
    details.insert("memoryRequests".into(), json!(mem));
    details.insert("otherNodes".into(), json!(others.iter().map(|n| n.name.clone()).collect::<Vec<_>>()));
    details.insert("freePods".into(), json!(free.0));
    details.insert("freeCpu".into(), json!(free.1));
    details.insert("freeMemory".into(), json!(free.2));
    details.insert("unplaced".into(), json!({"namespace": stuck.namespace, "name": stuck.name}));
    details.insert("nodesWithoutRoom".into(), json!(failing.iter().map(|f| f.0.name.clone()).collect::<Vec<_>>()));
    Some(Finding {
        code: FindingCode::NoSpareCapacity,
        severity: Severity::Blocker,
        hop: None,
        subject: format!("Node {}", node.name),
        message: format!(
            "draining {} must move {} pods requesting {} CPU and {} memory, but the other {} Ready schedulable untainted node(s) have room for {} pods, {} CPU and {} memory in all; {}/{} ({} CPU, {} memory) would not fit anywhere",
            node.name,
            movable.len(),
            fmt_cpu(cpu),
            fmt_bytes(mem),
            others.len(),
            free.0,
            fmt_cpu(free.1),
            fmt_bytes(free.2),
            stuck.namespace,
            stuck.name,
            fmt_cpu(stuck.requests.0),
            fmt_bytes(stuck.requests.1)
        ),
        evidence: None,
        remediation:
            "add a node (or use surge upgrades that add one before draining) or lower requests before the nodes roll"
                .into(),
        details: Details::facts(details),
    })
}

/// Drain blockers and risks in the cluster facts (none without a cluster).
pub fn drainability(inv: &Inventory, scope: Option<&LabelSelector>) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(cluster) = &inv.cluster else { return out };
    pdb_findings(cluster, scope, &mut out);
    probe_findings(cluster, scope, &mut out);
    pod_findings(cluster, scope, &mut out);
    out.extend(capacity_finding(cluster));
    out
}

/// Folds the server's dry-run eviction answers into the budget findings: a refusal confirms a
/// predicted blocker (or becomes one), an acceptance where a blocker was predicted is said, and
/// a probe that could not run is a warning, so a missing answer is never read as a yes.
/// Folds dry-run evictions into the findings; with a `scope`, only of pods the drain evicts.
fn probe_findings(cluster: &ClusterFacts, scope: Option<&LabelSelector>, out: &mut Vec<Finding>) {
    use crate::inventory::ProbeOutcome;
    let mut allowed = Vec::new();
    let in_scope = |ns: &str, name: &str| {
        scope.is_none_or(|s| {
            cluster.pods.iter().any(|p| p.namespace == ns && p.name == name && s.matches_map(&p.labels))
        })
    };
    for probe in cluster.eviction_probes.iter().filter(|p| in_scope(&p.namespace, &p.pod)) {
        let subject = format!("PodDisruptionBudget {}", probe.pdb);
        let pod = format!("{}/{}", probe.namespace, probe.pod);
        let predicted = out.iter_mut().find(|f| {
            f.subject == subject && matches!(f.code, FindingCode::PdbBlocksDrain | FindingCode::PdbUnhealthy)
        });
        let answer = match &probe.outcome {
            ProbeOutcome::Allowed => json!({"pod": pod, "result": "allowed"}),
            ProbeOutcome::Refused { status, message } => {
                json!({"pod": pod, "result": "refused", "status": status, "message": message})
            }
            ProbeOutcome::Failed { message } => json!({"pod": pod, "result": "failed", "message": message}),
        };
        match (&probe.outcome, predicted) {
            (ProbeOutcome::Refused { .. }, Some(f)) => {
                f.message.push_str(&format!(". Confirmed: the apiserver refused a dry-run eviction of {pod}"));
                f.details.facts.insert("dryRunEviction".into(), answer);
            }
            (ProbeOutcome::Allowed, Some(f)) => {
                f.message.push_str(&format!(
                    ". Yet the apiserver accepted a dry-run eviction of {pod} just now: the budget may be recovering, check it again before the window"
                ));
                f.details.facts.insert("dryRunEviction".into(), answer);
            }
            (ProbeOutcome::Allowed, None) => allowed.push(probe.pdb.clone()),
            (ProbeOutcome::Refused { status, message }, None) => {
                let multiple = *status == 500;
                out.push(Finding {
                    code: if multiple { FindingCode::EvictionMultiplePdbs } else { FindingCode::EvictionRefused },
                    severity: Severity::Blocker,
                    hop: None,
                    subject,
                    message: if multiple {
                        format!(
                            "the apiserver refused a dry-run eviction of {pod} on {} ({status}: {message}): a pod under more than one budget can never be evicted",
                            probe.node
                        )
                    } else {
                        format!(
                            "the apiserver refused a dry-run eviction of {pod} on {} ({status}: {message}): draining that node would stall on it",
                            probe.node
                        )
                    },
                    evidence: None,
                    remediation: if multiple {
                        "make the budgets' selectors disjoint so each pod has one budget".into()
                    } else {
                        format!("scale up the workload behind {} or relax the budget before the node rolls", probe.pdb)
                    },
                    details: Details::facts(answer.as_object().cloned().unwrap_or_default()),
                });
            }
            (ProbeOutcome::Failed { message }, _) => out.push(Finding {
                code: FindingCode::EvictionProbeFailed,
                severity: Severity::Warning,
                hop: None,
                subject,
                message: format!(
                    "the dry-run eviction of {pod} could not be made ({message}); this budget is unconfirmed"
                ),
                evidence: None,
                remediation: "check that your credentials may create pods/eviction, or drop --dry-run-evictions".into(),
                details: Details::facts(answer.as_object().cloned().unwrap_or_default()),
            }),
        }
    }
    if !allowed.is_empty() {
        out.push(Finding {
            code: FindingCode::EvictionsConfirmed,
            severity: Severity::Info,
            hop: None,
            subject: "PodDisruptionBudgets".into(),
            message: format!(
                "the apiserver accepted a dry-run eviction under {} of {} budgets probed ({})",
                allowed.len(),
                cluster.eviction_probes.len(),
                allowed.join(", ")
            ),
            evidence: None,
            remediation: "nothing to do".into(),
            details: Details::facts(serde_json::Map::from_iter([("allowed".to_string(), json!(allowed))])),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GI: f64 = 1024.0 * 1024.0 * 1024.0;

    fn node(name: &str, pods: f64, cpu: f64, mem_gi: f64) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            roles: vec!["worker".into()],
            ready: true,
            allocatable: (pods, cpu, mem_gi * GI),
            ..Default::default()
        }
    }

    fn pod(ns: &str, name: &str, node: &str, workload: Option<&str>, labels: &[(&str, &str)]) -> PodFacts {
        PodFacts {
            namespace: ns.into(),
            name: name.into(),
            node: node.into(),
            controller: workload.map(|w| w.replace("Deployment/", "ReplicaSet/") + "-7d9f"),
            workload: workload.map(str::to_string),
            phase: "Running".into(),
            ready: true,
            labels: labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            requests: (0.1, 0.1 * GI),
            ..Default::default()
        }
    }

    fn pdb(ns: &str, name: &str, app: &str, healthy: (i64, i64), allowed: i64, expected: i64) -> PdbFacts {
        PdbFacts {
            namespace: ns.into(),
            name: name.into(),
            selector: json!({"matchLabels": {"app": app}}),
            min_available: Some(json!(healthy.1)),
            max_unavailable: None,
            current_healthy: healthy.0,
            desired_healthy: healthy.1,
            disruptions_allowed: allowed,
            expected_pods: expected,
            operator: None,
            disrupted_pods: vec![],
        }
    }

    fn deploy(ns: &str, name: &str, replicas: i64) -> WorkloadFacts {
        WorkloadFacts { kind: "Deployment".into(), namespace: ns.into(), name: name.into(), replicas, ready: replicas }
    }

    fn cluster(nodes: Vec<NodeFacts>, pods: Vec<PodFacts>, pdbs: Vec<PdbFacts>, wl: Vec<WorkloadFacts>) -> Inventory {
        Inventory {
            cluster: Some(ClusterFacts { nodes, pods, pdbs, workloads: wl, ..Default::default() }),
            ..Default::default()
        }
    }

    fn codes(f: &[Finding]) -> Vec<FindingCode> {
        f.iter().map(|x| x.code).collect()
    }

    fn roomy_nodes() -> Vec<NodeFacts> {
        vec![node("n1", 110.0, 8.0, 32.0), node("n2", 110.0, 8.0, 32.0), node("n3", 110.0, 8.0, 32.0)]
    }

    #[test]
    fn no_cluster_no_findings() {
        assert!(drainability(&Inventory::default(), None).is_empty());
    }

    #[test]
    fn healthy_cluster_has_no_findings() {
        let pods = vec![
            pod("shop", "web-1", "n1", Some("Deployment/web"), &[("app", "web")]),
            pod("shop", "web-2", "n2", Some("Deployment/web"), &[("app", "web")]),
        ];
        let inv =
            cluster(roomy_nodes(), pods, vec![pdb("shop", "web", "web", (2, 1), 1, 2)], vec![deploy("shop", "web", 2)]);
        assert!(drainability(&inv, None).is_empty(), "{:#?}", drainability(&inv, None));
    }

    #[test]
    fn a_budget_held_only_by_granted_evictions_is_a_warning_not_a_blocker() {
        let pods = vec![
            pod("shop", "web-0", "n1", Some("Deployment/web"), &[("app", "web")]),
            pod("shop", "web-1", "n2", Some("Deployment/web"), &[("app", "web")]),
        ];
        // maxUnavailable 1 of 2: one eviction granted, its pod not gone yet.
        let mut budget = pdb("shop", "web", "web", (1, 1), 0, 2);
        budget.disrupted_pods = vec!["web-0".into()];
        let inv = cluster(roomy_nodes(), pods.clone(), vec![budget.clone()], vec![deploy("shop", "web", 2)]);
        let f = drainability(&inv, None);
        assert_eq!(codes(&f), vec![FindingCode::PdbBlocksDrain]);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].message.contains("still counts 1 granted eviction(s) whose pods are not gone (web-0)"),
            "{}",
            f[0].message
        );
        // A budget that allows nothing with every pod counted stays a blocker.
        budget.current_healthy = 0;
        let inv = cluster(roomy_nodes(), pods, vec![budget], vec![deploy("shop", "web", 2)]);
        assert_eq!(drainability(&inv, None)[0].severity, Severity::Blocker);
    }

    #[test]
    fn budget_with_zero_disruptions_blocks_the_drain() {
        let pods = vec![
            pod("shop", "db-0", "n1", Some("Deployment/db"), &[("app", "db")]),
            pod("shop", "db-1", "n2", Some("Deployment/db"), &[("app", "db")]),
        ];
        let inv =
            cluster(roomy_nodes(), pods, vec![pdb("shop", "db", "db", (2, 2), 0, 2)], vec![deploy("shop", "db", 2)]);
        let f = drainability(&inv, None);
        assert_eq!(codes(&f), vec![FindingCode::PdbBlocksDrain]);
        let x = &f[0];
        assert_eq!(x.severity, Severity::Blocker);
        assert_eq!(x.subject, "PodDisruptionBudget shop/db");
        assert!(x.message.contains("currentHealthy 2, desiredHealthy 2"), "{}", x.message);
        assert!(x.remediation.contains("scale up") && x.remediation.contains("relax the budget"));
        assert!(x.remediation.contains("before the node rolls"));
        assert_eq!(x.details.get("nodes"), json!(["n1", "n2"]));
        assert_eq!(x.details.get("namespace"), json!("shop"));
        assert!(x.evidence.is_none() && x.hop.is_none());
    }

    #[test]
    fn a_budget_over_pods_the_drain_leaves_out_blocks_nothing() {
        let pods = vec![
            pod("shop", "db-0", "n1", Some("Deployment/db"), &[("app", "db")]),
            pod("shop", "db-1", "n2", Some("Deployment/db"), &[("app", "db")]),
        ];
        let inv =
            cluster(roomy_nodes(), pods, vec![pdb("shop", "db", "db", (2, 2), 0, 2)], vec![deploy("shop", "db", 2)]);
        let outside = LabelSelector::parse("app!=db").unwrap();
        assert!(drainability(&inv, Some(&outside)).is_empty(), "{:#?}", drainability(&inv, Some(&outside)));
        let inside = LabelSelector::parse("app=db").unwrap();
        assert_eq!(codes(&drainability(&inv, Some(&inside))), vec![FindingCode::PdbBlocksDrain]);
    }

    #[test]
    fn budget_over_unready_pods_is_unhealthy() {
        let mut sick = pod("shop", "api-2", "n2", Some("Deployment/api"), &[("app", "api")]);
        sick.ready = false;
        let pods = vec![pod("shop", "api-1", "n1", Some("Deployment/api"), &[("app", "api")]), sick];
        let inv =
            cluster(roomy_nodes(), pods, vec![pdb("shop", "api", "api", (1, 2), 0, 2)], vec![deploy("shop", "api", 2)]);
        let f = drainability(&inv, None);
        assert_eq!(codes(&f), vec![FindingCode::PdbUnhealthy]);
        assert_eq!(f[0].severity, Severity::Blocker);
        assert_eq!(f[0].details.get("unreadyPods"), json!(["shop/api-2"]));
        assert!(f[0].message.contains("api-2"), "{}", f[0].message);
    }

    #[test]
    fn budget_over_a_single_replica_warns() {
        let pods = vec![pod("shop", "cache-0", "n1", Some("Deployment/cache"), &[("app", "cache")])];
        // maxUnavailable 1 over one replica: evictions pass, but the service goes down.
        let mut b = pdb("shop", "cache", "cache", (1, 0), 1, 1);
        b.min_available = None;
        b.max_unavailable = Some(json!(1));
        let inv = cluster(roomy_nodes(), pods, vec![b], vec![deploy("shop", "cache", 1)]);
        let f = drainability(&inv, None);
        assert_eq!(codes(&f), vec![FindingCode::PdbSingleReplica]);
        assert_eq!(f[0].severity, Severity::Warning);
        assert_eq!(f[0].details.get("singleReplicaWorkloads"), json!(["Deployment/cache"]));
        assert!(f[0].message.contains("downtime"));
    }

    #[test]
    fn selector_only_matches_pods_in_the_budget_namespace() {
        let pods = vec![pod("other", "web-1", "n1", Some("Deployment/web"), &[("app", "web")])];
        let inv = cluster(
            roomy_nodes(),
            pods,
            vec![pdb("shop", "web", "web", (0, 0), 1, 0)],
            vec![deploy("other", "web", 1)],
        );
        assert!(drainability(&inv, None).is_empty(), "{:#?}", drainability(&inv, None));
    }

    #[test]
    fn bare_emptydir_and_local_volume_pods_warn() {
        let mut bare = pod("dev", "debug", "n1", None, &[]);
        bare.controller = None;
        let mut mirror = pod("kube-system", "kube-apiserver-cp1", "n1", None, &[]);
        mirror.mirror = true;
        let mut scratch = pod("shop", "web-1", "n2", Some("Deployment/web"), &[]);
        scratch.empty_dir = true;
        let mut local = pod("data", "pg-0", "n3", Some("StatefulSet/pg"), &[]);
        local.local_volume = true;
        let mut ds = pod("kube-system", "fluentd-x", "n3", Some("DaemonSet/fluentd"), &[]);
        ds.daemonset = true;
        ds.empty_dir = true;
        let mut done = pod("dev", "job-done", "n3", None, &[]);
        done.phase = "Succeeded".into();
        let inv = cluster(roomy_nodes(), vec![bare, mirror, scratch, local, ds, done], vec![], vec![]);
        let f = drainability(&inv, None);
        assert_eq!(
            codes(&f),
            vec![FindingCode::PodNoController, FindingCode::PodEmptydir, FindingCode::PodLocalVolume]
        );
        assert!(f.iter().all(|x| x.severity == Severity::Warning));
        assert!(f[0].message.contains("--force"));
        assert_eq!(f[0].details.get("node"), json!("n1"));
        assert_eq!(f[1].details.get("name"), json!("web-1"));
        assert_eq!(f[2].details.get("namespace"), json!("data"));
    }

    #[test]
    fn a_pod_whose_owner_vetoed_eviction_blocks_its_node_at_plan_time_as_the_drain_would() {
        let mut vetoed = pod("shop", "batch-1", "n2", Some("Deployment/batch"), &[]);
        vetoed.eviction_veto = Some("cluster-autoscaler.kubernetes.io/safe-to-evict=false".into());
        let mut done = pod("shop", "batch-0", "n2", Some("Deployment/batch"), &[]);
        done.eviction_veto = Some("karpenter.sh/do-not-disrupt=true".into());
        done.phase = "Succeeded".into();
        let inv = cluster(roomy_nodes(), vec![vetoed, done], vec![], vec![]);
        let f = drainability(&inv, None);
        assert_eq!(codes(&f), vec![FindingCode::PodEvictionVetoed], "a finished pod is not evicted, vetoed or not");
        assert_eq!(f[0].severity, Severity::Blocker);
        assert!(
            f[0].message.contains("safe-to-evict=false") && f[0].message.contains("drain of n2"),
            "{}",
            f[0].message
        );
        assert!(f[0].remediation.contains("--pod-selector"));
    }

    #[test]
    fn busiest_worker_that_does_not_fit_elsewhere_is_a_blocker() {
        let mut nodes = vec![node("big", 110.0, 8.0, 32.0), node("small", 110.0, 2.0, 8.0)];
        let mut cp = node("cp1", 110.0, 8.0, 32.0);
        cp.roles = vec!["control-plane".into()];
        cp.taints = vec!["node-role.kubernetes.io/control-plane=:NoSchedule".into()];
        nodes.push(cp);
        let mut pods = Vec::new();
        for i in 0..6 {
            let mut p = pod("shop", &format!("worker-{i}"), "big", Some("Deployment/worker"), &[]);
            p.requests = (1.0, 2.0 * GI);
            pods.push(p);
        }
        // DaemonSet pods stay on the node and do not need room elsewhere.
        let mut ds = pod("kube-system", "proxy-big", "big", Some("DaemonSet/proxy"), &[]);
        ds.daemonset = true;
        ds.requests = (4.0, 0.0);
        pods.push(ds);
        let inv = cluster(nodes, pods, vec![], vec![deploy("shop", "worker", 6)]);
        let f = drainability(&inv, None);
        assert_eq!(codes(&f), vec![FindingCode::NoSpareCapacity], "{f:#?}");
        let x = &f[0];
        assert_eq!(x.severity, Severity::Blocker);
        assert_eq!(x.details.get("node"), json!("big"));
        assert_eq!(x.details.get("pods"), json!(6));
        assert_eq!(x.details.get("otherNodes"), json!(["small"]), "the tainted control plane takes no pods");
        assert!(x.message.contains("6 pods requesting 6.00 CPU and 12.0Gi memory"), "{}", x.message);
        assert!(x.message.contains("2.00 CPU"), "{}", x.message);
    }

    #[test]
    fn enough_room_elsewhere_passes_and_pod_count_limits_count() {
        let nodes = vec![node("a", 110.0, 8.0, 32.0), node("b", 110.0, 8.0, 32.0)];
        let mut pods: Vec<PodFacts> =
            (0..4).map(|i| pod("shop", &format!("w-{i}"), "a", Some("Deployment/w"), &[])).collect();
        let inv = cluster(nodes.clone(), pods.clone(), vec![], vec![]);
        assert!(drainability(&inv, None).is_empty());
        // Node b can take only 2 more pods.
        let mut nodes = nodes;
        nodes[1].allocatable.0 = 2.0;
        pods.truncate(3);
        let inv = cluster(nodes, pods, vec![], vec![]);
        let f = drainability(&inv, None);
        assert_eq!(codes(&f), vec![FindingCode::NoSpareCapacity]);
        assert_eq!(f[0].details.get("freePods"), json!(2.0));
    }

    #[test]
    fn not_ready_and_cordoned_nodes_give_no_room() {
        let mut nodes = vec![node("a", 110.0, 8.0, 32.0), node("b", 110.0, 8.0, 32.0), node("c", 110.0, 8.0, 32.0)];
        nodes[1].ready = false;
        nodes[2].unschedulable = true;
        let pods = vec![pod("shop", "w-0", "a", Some("Deployment/w"), &[])];
        let f = drainability(&cluster(nodes, pods, vec![], vec![]), None);
        assert_eq!(codes(&f), vec![FindingCode::NoSpareCapacity]);
        assert_eq!(f[0].details.get("otherNodes"), json!([]));
    }

    #[test]
    fn formats_quantities() {
        assert_eq!(fmt_cpu(0.25), "250m");
        assert_eq!(fmt_cpu(1.5), "1.50");
        assert_eq!(fmt_bytes(512.0 * 1024.0 * 1024.0), "512Mi");
        assert_eq!(fmt_bytes(3.0 * GI), "3.0Gi");
    }

    #[test]
    fn dry_run_answers_confirm_add_or_question_budget_findings() {
        use crate::inventory::{EvictionProbe, ProbeOutcome};
        let pods = vec![
            pod("shop", "db-0", "n1", Some("Deployment/db"), &[("app", "db")]),
            pod("shop", "db-1", "n2", Some("Deployment/db"), &[("app", "db")]),
            pod("shop", "web-0", "n1", Some("Deployment/web"), &[("app", "web")]),
            pod("shop", "web-1", "n2", Some("Deployment/web"), &[("app", "web")]),
        ];
        let mut inv = cluster(
            roomy_nodes(),
            pods,
            vec![pdb("shop", "db", "db", (2, 2), 0, 2), pdb("shop", "web", "web", (2, 1), 1, 2)],
            vec![deploy("shop", "db", 2), deploy("shop", "web", 2)],
        );
        let probe = |pdb: &str, pod: &str, outcome| EvictionProbe {
            namespace: "shop".into(),
            pod: pod.into(),
            node: "n1".into(),
            pdb: format!("shop/{pdb}"),
            outcome,
        };
        let refused = ProbeOutcome::Refused { status: 429, message: "Cannot evict pod".into() };
        inv.cluster.as_mut().unwrap().eviction_probes = vec![probe("db", "db-0", refused.clone())];
        let f = drainability(&inv, None);
        assert_eq!(codes(&f), vec![FindingCode::PdbBlocksDrain]);
        assert!(f[0].message.contains("Confirmed: the apiserver refused a dry-run eviction of shop/db-0"));
        assert_eq!(f[0].details.get("dryRunEviction")["status"], json!(429));

        // The server refuses where nothing was predicted: a blocker of its own.
        inv.cluster.as_mut().unwrap().eviction_probes = vec![probe("web", "web-0", refused)];
        let f = drainability(&inv, None);
        assert_eq!(codes(&f), vec![FindingCode::PdbBlocksDrain, FindingCode::EvictionRefused]);
        assert_eq!(f[1].severity, Severity::Blocker);

        // Accepted where a blocker was predicted: said, not hidden; accepted elsewhere: summarised.
        inv.cluster.as_mut().unwrap().eviction_probes =
            vec![probe("db", "db-0", ProbeOutcome::Allowed), probe("web", "web-0", ProbeOutcome::Allowed)];
        let f = drainability(&inv, None);
        assert_eq!(codes(&f), vec![FindingCode::PdbBlocksDrain, FindingCode::EvictionsConfirmed]);
        assert!(f[0].message.contains("may be recovering"), "{}", f[0].message);
        assert_eq!(f[1].details.get("allowed"), json!(["shop/web"]));

        // A probe that could not run never reads as a yes.
        inv.cluster.as_mut().unwrap().eviction_probes =
            vec![probe("web", "web-0", ProbeOutcome::Failed { message: "forbidden".into() })];
        let f = drainability(&inv, None);
        assert_eq!(codes(&f), vec![FindingCode::PdbBlocksDrain, FindingCode::EvictionProbeFailed]);
        assert_eq!(f[1].severity, Severity::Warning);
    }
}
