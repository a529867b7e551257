//! Cordon and drain through the Eviction API (policy/v1). Every evictable pod of a node is
//! evicted concurrently; mirror and DaemonSet pods are skipped; emptyDir pods need
//! `--delete-emptydir-data` and bare pods `--force`, and a node that needs either is refused
//! before it is cordoned, with every reason at once. A 429 is retried with capped exponential
//! backoff and jitter while naming the budget and its health; a budget that can never allow a
//! disruption is reported at once; a 500 (a pod under two budgets) is an error; a 404 means gone.
//! Deletion is observed through the run's pod watch (a new UID counts as gone), not by polling.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams};
use serde_json::json;

use super::cache::{Cache, Kind};
use super::cancel::Cancel;
use super::events::{Event, EventSink};
use crate::k8s::pod::{self as pods, reference as pod_ref};
use crate::kubeapi::retry::{jitter, transient, with_retries};

pub use crate::k8s::annotations::{
    CORDONED_BY as ANNOTATION_CORDONED_BY, PHASE as ANNOTATION_PHASE, QUARANTINED as LABEL_QUARANTINED,
};

#[derive(Debug, Clone)]
pub struct DrainPolicy {
    pub delete_emptydir_data: bool,
    pub force: bool,
    pub timeout: Duration,
    pub dry_run: bool,
    /// Longest pause between eviction retries.
    pub max_backoff: Duration,
    /// How long a budget an operator manages may refuse before the drain gives up on it.
    pub budget_patience: Duration,
    /// Pods terminating for longer than this are not waited for (kubectl's
    /// `--skip-wait-for-delete-timeout`; `None`: always wait).
    pub skip_wait_for_delete: Option<Duration>,
    /// Grace period given to evicted pods (`None`: each pod's own).
    pub grace_period: Option<i64>,
    /// Only pods matching this selector are evicted (kubectl's `--pod-selector`).
    pub pod_selector: Option<crate::labels::LabelSelector>,
    /// How long to wait for the volumes of evicted pods to detach before the upgrade action
    /// (`None`: do not wait).
    pub volume_detach_timeout: Option<Duration>,
    /// The pod this run executes in (`k8s-upgrade job`: namespace and name from the downward
    /// API). It is never evicted: evicting it would stop the upgrade half-way through a node.
    /// It stays on its node; if the node goes away the pod dies with it, and the Job's retry
    /// continues from the journal.
    pub own_pod: Option<(String, String)>,
}

impl DrainPolicy {
    /// The policy for a node whose kubelet cannot be reached, as Cluster API drains one: pods
    /// there never confirm they stopped, so they get a 1 s grace period and are not waited for
    /// once they have been terminating for a second.
    pub fn for_unreachable_node(&self) -> DrainPolicy {
        DrainPolicy { grace_period: Some(1), skip_wait_for_delete: Some(Duration::from_secs(1)), ..self.clone() }
    }
}

/// How long a pod has been terminating, if it is.
fn terminating_for(p: &Pod) -> Option<Duration> {
    let since = p.metadata.deletion_timestamp.as_ref()?.0;
    let d = crate::clock::now().duration_since(since);
    Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
}

/// Whether the drain no longer waits for a pod: terminating for longer than the policy allows.
fn past_waiting(p: &Pod, policy: &DrainPolicy) -> bool {
    matches!((policy.skip_wait_for_delete, terminating_for(p)), (Some(limit), Some(t)) if t > limit)
}

/// Whether a node's kubelet cannot be reached: Ready Unknown, or the unreachable taint.
pub fn unreachable(n: &Node) -> bool {
    let unknown = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "Unknown"));
    let tainted = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.key == "node.kubernetes.io/unreachable"));
    unknown || tainted
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DrainError {
    #[error("{node} cannot be drained as asked: {}", reasons.join("; "))]
    Refused { node: String, reasons: Vec<String> },
    #[error(
        "PodDisruptionBudget {pdb} can never allow evicting {pod} (currentHealthy {current}, desiredHealthy {desired}, expectedPods {expected}): scale the workload up or relax the budget"
    )]
    NeverAllowed { pod: String, pdb: String, current: i32, desired: i32, expected: i32 },
    #[error(
        "PodDisruptionBudget {pdb}, managed by {operator}, allowed no eviction of {pod} for {} (currentHealthy {current}, desiredHealthy {desired}): find out why {operator} keeps it closed (volumes still attached, a migration not finishing), or raise --budget-patience",
        super::command::humanize(*waited)
    )]
    OperatorHeld { pod: String, pdb: String, operator: String, waited: Duration, current: i32, desired: i32 },
    #[error("{pod} is covered by more than one PodDisruptionBudget; the Eviction API refuses it (500): {message}")]
    MultipleBudgets { pod: String, message: String },
    #[error("the drain of {node} did not finish within {timeout:?}; still waiting on: {}", waiting.join(", "))]
    Timeout { node: String, timeout: Duration, waiting: Vec<String> },
    #[error("stopped during the drain of {node} (second stop request)")]
    Interrupted { node: String },
    #[error("{0}")]
    Api(String),
}

fn is_own_pod(p: &Pod, policy: &DrainPolicy) -> bool {
    policy.own_pod.as_ref().is_some_and(|(ns, name)| {
        p.metadata.namespace.as_deref() == Some(ns.as_str()) && p.metadata.name.as_deref() == Some(name.as_str())
    })
}

/// The pods a drain of `node` evicts out of `pods` (the pods bound to it), or every reason it
/// cannot.
pub fn classify(node: &str, pods: Vec<Pod>, policy: &DrainPolicy) -> Result<Vec<Pod>, DrainError> {
    let mut out = Vec::new();
    let mut reasons = Vec::new();
    for p in pods {
        if past_waiting(&p, policy) || is_own_pod(&p, policy) {
            continue;
        }
        if let Some(sel) = &policy.pod_selector
            && !sel.matches_map(p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
        {
            continue;
        }
        let needs = match pods::disposition(&p) {
            pods::Disposition::Stays => continue,
            pods::Disposition::Finished => Vec::new(),
            pods::Disposition::Evicted { needs } => needs,
        };
        for need in needs {
            match need {
                pods::Need::OwnerConsent(veto) => reasons.push(format!(
                    "{} is annotated {veto}: its owner asked that it not be evicted (remove the annotation once it may go, or leave it out with --pod-selector)",
                    pod_ref(&p)
                )),
                pods::Need::Force if !policy.force => {
                    reasons.push(format!("{} has no controller (pass --force to delete it for good)", pod_ref(&p)))
                }
                pods::Need::DeleteEmptyDirData if !policy.delete_emptydir_data => reasons
                    .push(format!("{} uses emptyDir (pass --delete-emptydir-data to lose its data)", pod_ref(&p))),
                pods::Need::Force | pods::Need::DeleteEmptyDirData => {}
            }
        }
        out.push(p);
    }
    if reasons.is_empty() { Ok(out) } else { Err(DrainError::Refused { node: node.to_string(), reasons }) }
}

/// The pods a drain of `node` evicts, listed fresh from the API server (the drain itself works
/// from this list, as `kubectl drain` does after cordoning).
pub async fn evictable_pods(client: &Client, node: &str, policy: &DrainPolicy) -> Result<Vec<Pod>, DrainError> {
    let pods: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let list = with_retries(|| pods.list(&lp))
        .await
        .map_err(|e| DrainError::Api(format!("cannot list the pods of {node}: {e}")))?;
    classify(node, list.items, policy)
}

/// The same check from the run's watch, for the preflight before cordoning.
pub async fn preflight(client: &Client, cache: &Cache, node: &str, policy: &DrainPolicy) -> Result<(), DrainError> {
    let pods = if cache.is_stale(Kind::Pods) {
        evictable_pods(client, node, policy).await?
    } else {
        classify(node, cache.pods_on(node).iter().map(|p| Pod::clone(p)).collect(), policy)?
    };
    // A budget that can let none of its pods go (and that no operator will relax) would stop
    // the drain after every other pod was evicted: refuse before the node is touched.
    let mut reasons = Vec::new();
    for p in pods.iter().filter(|p| !pods::is_finished(p)) {
        for b in budgets_of(client, cache, p).await {
            if crate::k8s::budget::refuses_pod(&b, pods::is_ready(p)) && crate::k8s::budget::operator_of(&b).is_none() {
                let st = b.status.clone().unwrap_or_default();
                reasons.push(format!(
                    "PodDisruptionBudget {}/{} can never allow evicting {} (currentHealthy {}, desiredHealthy {}, expectedPods {}): scale the workload up or relax the budget",
                    b.metadata.namespace.as_deref().unwrap_or_default(),
                    b.metadata.name.as_deref().unwrap_or_default(),
                    pod_ref(p),
                    st.current_healthy,
                    st.desired_healthy,
                    st.expected_pods
                ));
            }
        }
    }
    if reasons.is_empty() { Ok(()) } else { Err(DrainError::Refused { node: node.to_string(), reasons }) }
}

/// What cordoning found on the node.
#[derive(Debug, Clone, PartialEq)]
pub struct Cordon {
    /// It was unschedulable before this call.
    pub already: bool,
    /// The run id in our `cordoned-by` annotation, if any.
    pub by: Option<String>,
}

/// Cordons `node` (and notes it on the node). A schedulable node is taken from the run's watch
/// and the patch carries its resourceVersion, so a change made since (someone else cordoning
/// it) makes the server refuse with 409 and the node is read again: one request when nothing
/// raced. A node the watch shows cordoned is read fresh before that is believed.
pub async fn cordon(client: &Client, cache: &Cache, node: &str, run_id: &str) -> Result<Cordon, String> {
    let nodes: Api<Node> = Api::all(client.clone());
    // The watch is trusted only to say "not cordoned" (the patch's precondition checks that);
    // "already cordoned" decides whether we uncordon later, so it is read fresh.
    let mut seen = if cache.is_stale(Kind::Nodes) {
        None
    } else {
        cache
            .node(node)
            .filter(|n| !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false))
            .map(|n| Node::clone(&n))
    };
    for _ in 0..5 {
        let n = match seen.take() {
            Some(n) => n,
            None => with_retries(|| nodes.get(node)).await.map_err(|e| format!("cannot read node {node}: {e}"))?,
        };
        let by = n.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_CORDONED_BY)).cloned();
        if n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
            return Ok(Cordon { already: true, by });
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": n.metadata.resource_version,
                "annotations": {ANNOTATION_CORDONED_BY: run_id, ANNOTATION_PHASE: "cordoned"}
            },
            "spec": {"unschedulable": true}
        });
        match patch_node(&nodes, node, &patch).await {
            Ok(_) => return Ok(Cordon { already: false, by: Some(run_id.to_string()) }),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(format!("cannot cordon {node}: {e}")),
        }
    }
    Err(format!("cannot cordon {node}: it kept changing under us (5 conflicts in a row)"))
}

/// The node's taints without our upgrade-pending one, and whether it had it.
fn without_pending(n: &Node) -> (Vec<k8s_openapi::api::core::v1::Taint>, bool) {
    let taints = n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let before = taints.len();
    let kept: Vec<_> = taints.into_iter().filter(|t| t.key != crate::k8s::annotations::UPGRADE_PENDING_TAINT).collect();
    let had = kept.len() != before;
    (kept, had)
}

/// A patch that changes `node` as `change` says, applied against the version the run's watch
/// holds (one request) and, on a conflict, against a fresh read: a taint list is replaced whole,
/// so it must be the current one.
async fn patch_current(
    client: &Client,
    cache: &Cache,
    node: &str,
    change: impl Fn(&Node) -> Option<serde_json::Value>,
) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut seen = if cache.is_stale(Kind::Nodes) { None } else { cache.node(node).map(|n| Node::clone(&n)) };
    for _ in 0..5 {
        let n = match seen.take() {
            Some(n) => n,
            None => with_retries(|| nodes.get(node)).await.map_err(|e| format!("cannot read node {node}: {e}"))?,
        };
        let Some(mut patch) = change(&n) else { return Ok(()) };
        patch["metadata"]["resourceVersion"] = json!(n.metadata.resource_version);
        match patch_node(&nodes, node, &patch).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(format!("cannot update node {node}: {e}")),
        }
    }
    Err(format!("cannot update node {node}: it kept changing under us (5 conflicts in a row)"))
}

/// Uncordons `node`, removes our notes and our upgrade-pending taint from it.
pub async fn uncordon(client: &Client, cache: &Cache, node: &str) -> Result<(), String> {
    patch_current(client, cache, node, |n| {
        let (taints, _) = without_pending(n);
        Some(json!({
            "metadata": {"annotations": {ANNOTATION_CORDONED_BY: null, ANNOTATION_PHASE: null}},
            "spec": {"unschedulable": null, "taints": if taints.is_empty() { serde_json::Value::Null } else { json!(taints) }}
        }))
    })
    .await
    .map_err(|e| format!("cannot uncordon {node}: {e}"))
}

/// Puts (or takes off) the `PreferNoSchedule` taint that steers pods evicted elsewhere away from
/// a node still waiting to roll, as kops and kured do: without it, pods evicted from one node
/// land on the next one to drain and are disrupted again.
pub async fn mark_pending(client: &Client, cache: &Cache, node: &str, pending: bool) -> Result<(), String> {
    patch_current(client, cache, node, |n| {
        let (mut taints, had) = without_pending(n);
        if had == pending {
            return None;
        }
        if pending {
            taints.push(k8s_openapi::api::core::v1::Taint {
                key: crate::k8s::annotations::UPGRADE_PENDING_TAINT.into(),
                effect: "PreferNoSchedule".into(),
                ..Default::default()
            });
        }
        Some(json!({"spec": {"taints": if taints.is_empty() { serde_json::Value::Null } else { json!(taints) }}}))
    })
    .await
}

/// Removes our notes from a node this run did not cordon (it stays cordoned).
pub async fn clear_notes(client: &Client, node: &str) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"metadata": {"annotations": {ANNOTATION_PHASE: null}}});
    patch_node(&nodes, node, &patch).await.map(|_| ()).map_err(|e| format!("cannot update {node}: {e}"))
}

/// Notes a phase on the node, so that anyone looking at it knows what the run is doing.
pub async fn note_phase(client: &Client, node: &str, phase: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"metadata": {"annotations": {ANNOTATION_PHASE: phase}}});
    let _ = nodes.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await;
}

/// Leaves the node cordoned and labelled as quarantined, with the reason as an annotation.
pub async fn quarantine(client: &Client, node: &str, why: &str) -> Result<(), String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let why: String = why.chars().take(1000).collect();
    let patch = json!({
        "metadata": {"labels": {LABEL_QUARANTINED: "true"}, "annotations": {ANNOTATION_PHASE: "quarantined", "k8s-upgrade.dev/quarantine-reason": why}},
        "spec": {"unschedulable": true}
    });
    patch_node(&nodes, node, &patch).await.map(|_| ()).map_err(|e| format!("cannot label {node} as quarantined: {e}"))
}

/// Evicts `pods` concurrently and waits for each to be gone.
pub async fn drain(
    client: &Client,
    cache: &Cache,
    node: &str,
    pods: Vec<Pod>,
    policy: &DrainPolicy,
    cancel: &Cancel,
    events: &EventSink,
) -> Result<usize, DrainError> {
    // Pods on a node whose kubelet is gone never confirm they stopped.
    let unreachable_policy;
    let policy = match cache.node(node) {
        Some(n) if unreachable(&n) => {
            events.emit(Event::node_log(
                node,
                "is unreachable (Ready Unknown): evicting with a 1s grace period and not waiting for pods its kubelet cannot stop",
            ));
            unreachable_policy = policy.for_unreachable_node();
            &unreachable_policy
        }
        _ => policy,
    };
    let deadline = Instant::now() + policy.timeout;
    let left: std::sync::Mutex<BTreeMap<String, String>> =
        std::sync::Mutex::new(pods.iter().map(|p| (pod_ref(p), "evicting".to_string())).collect());
    let count = pods.len();
    let left = &left;
    // In waves: storage and mesh agents (and pods ordered later) go once the pods that use them
    // are gone; within a wave, all at once. A wave that fails stops the drain.
    let mut waves: BTreeMap<u8, Vec<Pod>> = BTreeMap::new();
    for p in pods {
        waves.entry(pods::drain_wave(&p)).or_default().push(p);
    }
    let mut results = Vec::new();
    for (_, wave) in waves {
        let tasks = wave.into_iter().map(|p| async move {
            let r = evict_one(client, cache, node, &p, policy, deadline, cancel, events, left).await;
            if r.is_ok() {
                let n = {
                    let mut l = left.lock().unwrap_or_else(|e| e.into_inner());
                    l.remove(&pod_ref(&p));
                    l.len()
                };
                events.emit(Event::PodsLeft { node: node.to_string(), left: n, total: count });
            }
            r
        });
        results.extend(futures::future::join_all(tasks).await);
        if results.iter().any(Result::is_err) {
            break;
        }
    }
    // Report the most telling failure: a budget that never allows beats a timeout.
    let mut errors: Vec<DrainError> = results.into_iter().filter_map(Result::err).collect();
    errors.sort_by_key(|e| match e {
        DrainError::NeverAllowed { .. } | DrainError::OperatorHeld { .. } => 0,
        DrainError::MultipleBudgets { .. } => 1,
        DrainError::Api(_) => 2,
        DrainError::Interrupted { .. } => 3,
        _ => 4,
    });
    match errors.into_iter().next() {
        None => Ok(count),
        Some(DrainError::Timeout { .. }) => {
            let waiting =
                left.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(p, why)| format!("{p} ({why})")).collect();
            Err(DrainError::Timeout { node: node.to_string(), timeout: policy.timeout, waiting })
        }
        Some(e) => Err(e),
    }
}

/// The budgets covering a pod (from the run's watch while it is healthy).
async fn budgets_of(client: &Client, cache: &Cache, pod: &Pod) -> Vec<PodDisruptionBudget> {
    if !cache.is_stale(Kind::Budgets) {
        return cache.budgets_of(pod).iter().map(|b| PodDisruptionBudget::clone(b)).collect();
    }
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    let Ok(list) = api.list(&ListParams::default()).await else { return vec![] };
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    list.items
        .into_iter()
        .filter(|b| super::cache::budget_selector(b).is_some_and(|s| s.matches_map(&labels)))
        .collect()
}

#[allow(clippy::too_many_arguments)] // one pod's eviction: each argument is a different piece of the drain
async fn evict_one(
    client: &Client,
    cache: &Cache,
    node: &str,
    pod: &Pod,
    policy: &DrainPolicy,
    deadline: Instant,
    cancel: &Cancel,
    events: &EventSink,
    left: &std::sync::Mutex<BTreeMap<String, String>>,
) -> Result<(), DrainError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let reference = pod_ref(pod);
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut params = EvictParams::default();
    // The UID precondition: a retry never evicts a same-name replacement (a StatefulSet's web-0
    // recreated elsewhere); the apiserver answers 409 and the pod we meant is gone.
    let mut delete = kube::api::DeleteParams {
        dry_run: policy.dry_run,
        preconditions: Some(kube::api::Preconditions { uid: Some(uid.clone()), resource_version: None }),
        ..Default::default()
    };
    if let Some(g) = policy.grace_period {
        delete.grace_period_seconds = u32::try_from(g).ok();
    }
    params.post_options.dry_run = policy.dry_run;
    params.delete_options = Some(delete);
    let mut backoff = Duration::from_millis(250);
    let mut last_said = String::new();
    // Since when an operator's budget has refused this pod.
    let mut held_since: Option<Instant> = None;
    // A pod already terminating is not evicted again: it is waited for (or skipped).
    let already_terminating = pod.metadata.deletion_timestamp.is_some();
    if !already_terminating {
        loop {
            if cancel.is_abort_requested() {
                return Err(DrainError::Interrupted { node: node.to_string() });
            }
            if Instant::now() >= deadline {
                return Err(DrainError::Timeout { node: String::new(), timeout: policy.timeout, waiting: vec![] });
            }
            // The budget that refused this round, as the watch saw it then.
            let mut refused_by: Option<(String, Option<String>)> = None;
            let answer = api.evict(&name, &params).await;
            if tracing::enabled!(tracing::Level::DEBUG) {
                let code = match &answer {
                    Ok(_) => 201,
                    Err(kube::Error::Api(s)) => s.code,
                    Err(_) => 0,
                };
                tracing::debug!(node, pod = %reference, code, "eviction");
            }
            match answer {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                // The UID precondition failed: the pod we meant is gone; a namesake is not ours.
                Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
                // Evictions in a namespace being deleted are refused; the namespace controller
                // deletes the pod itself: once it is terminating, wait for it (as kubectl does).
                Err(kube::Error::Api(s)) if s.code == 403 && namespace_terminating(&s) => {
                    let terminating = api.get_opt(&name).await.ok().flatten();
                    match terminating {
                        None => return Ok(()),
                        Some(p) if p.metadata.uid.as_deref() != Some(uid.as_str()) => return Ok(()),
                        Some(p) if p.metadata.deletion_timestamp.is_some() => break,
                        Some(_) => {
                            left.lock().unwrap_or_else(|e| e.into_inner()).insert(
                                reference.clone(),
                                format!("namespace {ns} is being deleted; waiting for its controller"),
                            );
                        }
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 429 => {
                    let budgets = budgets_of(client, cache, pod).await;
                    let mut why = format!("429: {}", s.message);
                    if let Some(b) = budgets.first() {
                        let st = b.status.clone().unwrap_or_default();
                        let pdb = format!("{ns}/{}", b.metadata.name.as_deref().unwrap_or_default());
                        // No disruption allowed and no room for one: the budget forbids this eviction
                        // however long we wait, unless an operator relaxes it.
                        if crate::k8s::budget::refuses_pod(b, pods::is_ready(pod)) {
                            let Some(operator) = crate::k8s::budget::operator_of(b) else {
                                return Err(DrainError::NeverAllowed {
                                    pod: reference,
                                    pdb,
                                    current: st.current_healthy,
                                    desired: st.desired_healthy,
                                    expected: st.expected_pods,
                                });
                            };
                            let since = *held_since.get_or_insert_with(Instant::now);
                            if since.elapsed() >= policy.budget_patience {
                                return Err(DrainError::OperatorHeld {
                                    pod: reference,
                                    pdb,
                                    operator,
                                    waited: since.elapsed(),
                                    current: st.current_healthy,
                                    desired: st.desired_healthy,
                                });
                            }
                            why = format!(
                                "PodDisruptionBudget {pdb}, managed by {operator}, allows no eviction yet (currentHealthy {}/desiredHealthy {}); waiting up to {} for it to relax",
                                st.current_healthy,
                                st.desired_healthy,
                                super::command::humanize(policy.budget_patience)
                            );
                        } else {
                            held_since = None;
                            why = format!(
                                "PodDisruptionBudget {pdb}: currentHealthy {}/desiredHealthy {}",
                                st.current_healthy, st.desired_healthy
                            );
                            // Evictions the apiserver granted whose pods are not gone yet hold the
                            // budget for up to two minutes (the disruption controller's timeout):
                            // after a run killed mid-eviction, this is why the resume waits.
                            let in_flight: Vec<&String> = st.disrupted_pods.iter().flatten().map(|(p, _)| p).collect();
                            if !in_flight.is_empty() {
                                why.push_str(&format!(
                                    "; it still counts {} granted eviction{} whose pod{} not gone ({}{}), for up to 2 minutes",
                                    in_flight.len(),
                                    if in_flight.len() == 1 { "" } else { "s" },
                                    if in_flight.len() == 1 { " is" } else { "s are" },
                                    in_flight.iter().take(3).map(|p| p.as_str()).collect::<Vec<_>>().join(", "),
                                    if in_flight.len() > 3 { ", …" } else { "" }
                                ));
                            }
                        }
                        refused_by = b.metadata.name.clone().map(|n| (n, b.metadata.resource_version.clone()));
                    }
                    if why != last_said {
                        events.emit(Event::EvictionRefused {
                            node: node.to_string(),
                            pod: reference.clone(),
                            budget: budgets
                                .first()
                                .map(|b| format!("{ns}/{}", b.metadata.name.as_deref().unwrap_or_default())),
                            why: why.clone(),
                        });
                        last_said = why.clone();
                    }
                    left.lock().unwrap_or_else(|e| e.into_inner()).insert(reference.clone(), why);
                }
                Err(kube::Error::Api(s)) if s.code == 500 && s.message.contains("more than one") => {
                    return Err(DrainError::MultipleBudgets { pod: reference, message: s.message });
                }
                Err(e) if transient(&e) || matches!(&e, kube::Error::Api(s) if s.code >= 500) => {
                    left.lock().unwrap_or_else(|e| e.into_inner()).insert(reference.clone(), format!("retrying: {e}"));
                }
                Err(e) => return Err(DrainError::Api(format!("cannot evict {reference}: {e}"))),
            }
            let pause = (backoff + jitter(backoff)).min(policy.max_backoff);
            let until = Instant::now() + pause.min(deadline.saturating_duration_since(Instant::now()));
            match refused_by {
                // Backoff is the longest wait; the budget's own status, once it changes to allow a
                // disruption, is the signal to try again at once.
                Some((pdb, seen)) if !cache.is_stale(Kind::Budgets) => {
                    let mut changes = cache.budget_changes(&ns, &pdb);
                    loop {
                        changes.borrow_and_update();
                        let allows = cache.budget(&ns, &pdb).is_some_and(|b| {
                            b.metadata.resource_version != seen
                                && b.status.as_ref().is_some_and(|s| s.disruptions_allowed > 0)
                        });
                        let now = Instant::now();
                        if allows || now >= until || cancel.is_abort_requested() {
                            break;
                        }
                        tokio::select! {
                            _ = Cache::next_change(&mut changes, until - now) => {}
                            _ = cancel.abort_requested() => {}
                        }
                    }
                }
                _ => {
                    tokio::select! {
                        _ = tokio::time::sleep(until.saturating_duration_since(Instant::now())) => {}
                        _ = cancel.abort_requested() => {}
                    }
                }
            }
            backoff = (backoff * 2).min(policy.max_backoff);
        }
    }
    if policy.dry_run {
        return Ok(());
    }
    left.lock().unwrap_or_else(|e| e.into_inner()).insert(reference.clone(), "terminating".into());
    // Gone is seen through the run's pod watch (a new UID under the same name counts as gone);
    // while that watch cannot be trusted, the pod is read directly.
    let mut changes = cache.pod_changes(&ns, &name);
    let same_pod = |p: &Pod| p.metadata.uid.as_deref() == Some(uid.as_str());
    // A pod the watch never showed (created just before the drain listed it) is not taken as
    // gone on the watch's word alone.
    let mut watched = cache.pod(&ns, &name).is_some_and(|p| same_pod(&p));
    loop {
        if cancel.is_abort_requested() {
            return Err(DrainError::Interrupted { node: node.to_string() });
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(DrainError::Timeout { node: String::new(), timeout: policy.timeout, waiting: vec![] });
        }
        changes.borrow_and_update();
        if cache.is_stale(Kind::Pods) || !watched {
            match api.get_opt(&name).await {
                Ok(None) => return Ok(()),
                Ok(Some(p)) if !same_pod(&p) => return Ok(()),
                Ok(Some(p)) if past_waiting(&p, policy) => return skipped(events, node, &reference, policy),
                _ => tokio::time::sleep(Duration::from_secs(1).min(remaining)).await,
            }
            watched = cache.pod(&ns, &name).is_some_and(|p| same_pod(&p));
            continue;
        }
        match cache.pod(&ns, &name) {
            Some(p) if same_pod(&p) && past_waiting(&p, policy) => return skipped(events, node, &reference, policy),
            // Woken at least once a second while a skip timeout runs, so it is noticed.
            Some(p) if same_pod(&p) => {
                let nap =
                    if policy.skip_wait_for_delete.is_some() { Duration::from_secs(1) } else { Duration::from_secs(5) };
                tokio::select! {
                    _ = Cache::next_change(&mut changes, remaining.min(nap)) => {}
                    _ = cancel.abort_requested() => {}
                }
            }
            _ => return Ok(()),
        }
    }
}

/// A pod given up on: terminating for longer than the drain waits.
fn skipped(events: &EventSink, node: &str, reference: &str, policy: &DrainPolicy) -> Result<(), DrainError> {
    events.emit(Event::node_log(
        node,
        format!(
            "{reference} has been terminating for more than {}; not waited for (--skip-wait-for-delete-timeout, or the node is unreachable)",
            super::command::humanize(policy.skip_wait_for_delete.unwrap_or_default())
        ),
    ));
    Ok(())
}

/// A 403 because the pod's namespace is being deleted (cause `NamespaceTerminating`).
fn namespace_terminating(s: &kube::core::Status) -> bool {
    s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
}

/// A merge patch on a node, retried on transient errors.
async fn patch_node(nodes: &Api<Node>, node: &str, patch: &serde_json::Value) -> Result<Node, kube::Error> {
    let (pp, merge) = (PatchParams::default(), Patch::Merge(patch));
    with_retries(|| nodes.patch(node, &pp, &merge)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kubectl drain's defaults with a one-minute timeout.
    fn test_policy() -> DrainPolicy {
        DrainPolicy {
            delete_emptydir_data: false,
            force: false,
            timeout: Duration::from_secs(60),
            dry_run: false,
            max_backoff: Duration::from_secs(5),
            budget_patience: Duration::from_secs(600),
            skip_wait_for_delete: None,
            grace_period: None,
            pod_selector: None,
            volume_detach_timeout: None,
            own_pod: None,
        }
    }

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_namespace_terminating_refusal_is_told_from_other_403s() {
        let refusal: kube::core::Status = serde_json::from_value(json!({
            "status": "Failure", "code": 403, "reason": "Forbidden",
            "message": "pods \"web-0\" is forbidden: unable to create new content in namespace shop because it is being terminated",
            "details": {"name": "web-0", "kind": "pods", "causes": [{"reason": "NamespaceTerminating", "message": "namespace shop is being terminated", "field": "metadata.namespace"}]}
        }))
        .unwrap();
        assert!(namespace_terminating(&refusal));
        let rbac: kube::core::Status =
            serde_json::from_value(json!({"status": "Failure", "code": 403, "reason": "Forbidden", "message": "no"}))
                .unwrap();
        assert!(!namespace_terminating(&rbac));
    }

    #[test]
    fn pods_terminating_past_the_skip_timeout_are_left_out_and_others_are_kept() {
        let long_ago = pod(
            json!({"metadata": {"name": "a", "namespace": "x", "deletionTimestamp": "2020-01-01T00:00:00Z",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true}]}}),
        );
        let running = pod(json!({"metadata": {"name": "b", "namespace": "x",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true}]}}));
        let policy = test_policy();
        let kept = classify("n", vec![long_ago.clone(), running.clone()], &policy).unwrap();
        assert_eq!(kept.len(), 2);
        let kept = classify("n", vec![long_ago, running], &policy.for_unreachable_node()).unwrap();
        assert_eq!(kept.iter().map(|p| p.metadata.name.clone().unwrap()).collect::<Vec<_>>(), ["b"]);
    }

    /// The run's own pod (a Job's, with an emptyDir for its state) is left where it is, and a
    /// pod of the same name in another namespace is not mistaken for it.
    #[test]
    fn the_run_s_own_pod_is_never_evicted_and_does_not_refuse_the_drain() {
        let job_pod = |ns: &str| {
            pod(json!({"metadata": {"name": "k8s-upgrade-x7k2q", "namespace": ns,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "k8s-upgrade", "uid": "u", "controller": true}]},
                "spec": {"containers": [{"name": "apply", "image": "i"}], "volumes": [{"name": "state", "emptyDir": {}}]}}))
        };
        let policy = DrainPolicy { own_pod: Some(("kube-system".into(), "k8s-upgrade-x7k2q".into())), ..test_policy() };
        assert!(classify("n", vec![job_pod("kube-system")], &policy).unwrap().is_empty());
        // Without the identity, the same pod is a pod with emptyDir like any other.
        let anonymous = DrainPolicy { own_pod: None, ..policy.clone() };
        assert!(matches!(classify("n", vec![job_pod("kube-system")], &anonymous), Err(DrainError::Refused { .. })));
        assert!(matches!(classify("n", vec![job_pod("shop")], &policy), Err(DrainError::Refused { .. })));
    }
}
