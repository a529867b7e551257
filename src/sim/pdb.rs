//! PodDisruptionBudgets and the Eviction subresource, with the apiserver's semantics.
//!
//! An eviction is refused with exactly the 429 kubectl expects (no `Retry-After`) when it would
//! take a budget below its desired healthy count, fails with 500 when more than one budget covers
//! the pod, and otherwise starts a graceful deletion. As in the apiserver, an allowed eviction
//! first records the pod in the budget's `status.disruptedPods` (the disruption controller then
//! counts it as gone for up to two minutes unless it is deleted) and only then checks the
//! request's preconditions: an eviction whose UID or resourceVersion precondition fails still
//! costs the budget a disruption until the entry expires. Pods the apiserver evicts without
//! consulting a budget (pending, finished, already terminating) are deleted after the same
//! precondition check. A plain DELETE bypasses budgets, as in a real cluster, but is counted as
//! a violation in `/sim/stats` when the budget allowed none.

use serde_json::{Value, json};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::Sim;
use super::clock::now_rfc3339;
use super::delta::{Delta, Key, Labels};
use super::selectors::LabelSelector;
use super::stats::Violation;
use super::status::ApiError;
use super::store::{StorageKey, Stored};
use axum::body::Bytes;
use axum::response::Response;

// Keys read on every write and every controller pass are made once.
pub fn pods_key() -> &'static StorageKey {
    static KEY: std::sync::LazyLock<StorageKey> = std::sync::LazyLock::new(|| StorageKey::core("pods"));
    &KEY
}

pub fn pdb_key() -> &'static StorageKey {
    static KEY: std::sync::LazyLock<StorageKey> =
        std::sync::LazyLock::new(|| StorageKey::new("policy", "poddisruptionbudgets"));
    &KEY
}

/// The computed status of one budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdbStatus {
    pub expected: i64,
    pub current_healthy: i64,
    pub desired_healthy: i64,
    pub disruptions_allowed: i64,
}

fn int_or_percent(v: &Value, total: i64, round_up: bool) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let pct: f64 = s.strip_suffix('%')?.parse().ok()?;
            let x = pct / 100.0 * total as f64;
            Some(if round_up { x.ceil() } else { x.floor() } as i64)
        }
        _ => None,
    }
}

pub fn compute(sim: &Sim, pdb: &Stored) -> PdbStatus {
    // A selector with a `key=value` every match carries is answered from the label index.
    let selector = pdb.meta.selector.as_deref();
    let (candidates, all_match) = match selector.and_then(LabelSelector::required_pair) {
        Some((k, v)) => {
            (sim.store.pods_labelled(pdb.namespace(), k, v), selector.is_some_and(|s| s.is_only_required_pair()))
        }
        None => (sim.store.in_namespace(pods_key(), pdb.namespace()), false),
    };
    compute_with(sim, pdb, &candidates, all_match)
}

/// Status of `pdb` given the candidate pods of its namespace (`all_match`: the selector was
/// answered exactly by the label index). Works on extracted pod fields only: no pod is parsed.
fn compute_with(sim: &Sim, pdb: &Stored, candidates: &[std::sync::Arc<Stored>], all_match: bool) -> PdbStatus {
    let spec = pdb.value();
    let ns = pdb.namespace();
    let pods: Vec<&std::sync::Arc<Stored>> = match &pdb.meta.selector {
        Some(_) if all_match => candidates.iter().collect(),
        // policy/v1: an empty selector matches every pod in the namespace.
        Some(sel) => candidates.iter().filter(|p| sel.matches_labels(&p.meta.labels)).collect(),
        None => vec![],
    };
    // As the disruption controller counts: maxUnavailable and a percentage minAvailable against
    // the scale of the pods' controllers (pods without one add nothing; each controller is read
    // once), an integer minAvailable against the pods the selector matches. The pods of a
    // budget mostly share one controller: a short list beats a map.
    let mut owners: Vec<(&str, &str)> = Vec::new();
    for p in &pods {
        if let Some((kind @ ("ReplicaSet" | "StatefulSet"), name, _)) = p.owner()
            && !owners.contains(&(kind, name))
        {
            owners.push((kind, name));
        }
    }
    let scale = owners
        .iter()
        .map(|(kind, name)| {
            let resource = if *kind == "ReplicaSet" { "replicasets" } else { "statefulsets" };
            sim.store
                .get(&StorageKey::new("apps", resource), ns, name)
                .map_or(0, |o| o.value().pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1))
        })
        .sum::<i64>();
    let disrupted = live_disruptions(sim, &spec);
    let current_healthy =
        pods.iter().filter(|p| p.meta.ready && !p.meta.terminating && !disrupted.contains_key(p.name())).count() as i64;
    let (expected, desired_healthy) = match (spec.pointer("/spec/maxUnavailable"), spec.pointer("/spec/minAvailable")) {
        (Some(max), _) => (scale, (scale - int_or_percent(max, scale, true).unwrap_or(0)).max(0)),
        (None, Some(min)) if min.is_string() => (scale, int_or_percent(min, scale, true).unwrap_or(0)),
        (None, Some(min)) => (pods.len() as i64, int_or_percent(min, pods.len() as i64, true).unwrap_or(0)),
        (None, None) => (pods.len() as i64, 0),
    };
    let never = sim.faults().pdbs_never_allow.iter().any(|p| p.split_once('/') == Some((ns, pdb.name())));
    // Nothing is allowed while nothing is expected (pods whose controllers have no scale).
    let allowed = if never || expected <= 0 { 0 } else { (current_healthy - desired_healthy).max(0) };
    PdbStatus { expected, current_healthy, desired_healthy, disruptions_allowed: allowed }
}

/// The disruption controller's `DeletionTimeout`: an evicted pod not deleted within it counts again.
const DELETION_TIMEOUT_SECONDS: f64 = 120.0;

/// The budget's `status.disruptedPods` entries still in force: recorded by an eviction less than
/// [`DELETION_TIMEOUT_SECONDS`] (scaled) ago, for a pod that still exists and is not terminating
/// (a deletion the controller has seen ends the entry).
fn live_disruptions(sim: &Sim, pdb: &Value) -> std::collections::BTreeMap<String, Value> {
    let Some(map) = pdb.pointer("/status/disruptedPods").and_then(Value::as_object) else { return Default::default() };
    let ns = pdb.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
    let now = super::clock::unix_now();
    let timeout = sim.scaled(DELETION_TIMEOUT_SECONDS).as_secs_f64().max(1.0);
    map.iter()
        .filter(|(_, at)| {
            at.as_str().and_then(super::clock::parse_rfc3339).is_some_and(|t| ((now - t) as f64) < timeout)
        })
        .filter(|(pod, _)| sim.store.get(pods_key(), ns, pod).is_some_and(|p| !p.meta.terminating))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The disruption controller's pass: writes computed status into the budgets whose numbers may
/// have changed. That is all of them on a full pass; else those that changed, those that select
/// a pod that changed (by its labels now or before the change), those that select the pods of a
/// ReplicaSet or StatefulSet that changed (its scale is what the budget expects), and those
/// holding disruptions, which expire with time (`with_disruptions`, kept up to date here).
pub fn refresh(sim: &Sim, d: &Delta, with_disruptions: &mut BTreeSet<Key>) {
    let budgets: Vec<Arc<Stored>> = if d.full {
        with_disruptions.clear();
        sim.store.all(pdb_key())
    } else {
        let mut keys: BTreeSet<Key> = d.changed(pdb_key()).cloned().collect();
        keys.extend(with_disruptions.iter().cloned());
        // Pods of one workload share their labels: each distinct set is matched once.
        let mut label_sets: BTreeMap<String, BTreeSet<Labels>> = BTreeMap::new();
        for (ns, labels) in &d.pod_labels {
            match label_sets.get_mut(&**ns) {
                Some(sets) if sets.contains(labels) => {}
                Some(sets) => {
                    sets.insert(labels.clone());
                }
                None => {
                    label_sets.insert(ns.to_string(), BTreeSet::from([labels.clone()]));
                }
            }
        }
        for key in [StorageKey::new("apps", "replicasets"), StorageKey::new("apps", "statefulsets")] {
            for (ns, name) in d.changed_beyond_status(&key) {
                let owner = sim.store.get(&key, ns, name).or_else(|| {
                    d.deleted
                        .iter()
                        .find(|o| o.namespace() == ns && o.name() == name && o.meta.api_version.starts_with("apps/"))
                        .cloned()
                });
                if let Some(owner) = owner {
                    let labels =
                        crate::labels::labels_of(owner.value().pointer("/spec/template").unwrap_or(&Value::Null));
                    let labels: Labels =
                        labels.into_iter().map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str())).collect();
                    label_sets.entry(owner.namespace().to_string()).or_default().insert(labels);
                }
            }
        }
        for (ns, sets) in &label_sets {
            for pdb in sim.store.in_namespace(pdb_key(), ns) {
                if pdb.meta.selector.as_ref().is_some_and(|sel| sets.iter().any(|l| sel.matches_labels(l))) {
                    keys.insert((pdb.namespace().to_string(), pdb.name().to_string()));
                }
            }
        }
        keys.iter().filter_map(|(ns, n)| sim.store.get(pdb_key(), ns, n)).collect()
    };
    for pdb in budgets {
        // Evictions wait while a budget's status is computed and written, and the budget is
        // read again first: an eviction allowed since it was read wrote its disruption into the
        // status, which this write must keep (the disruption controller's update would conflict
        // and be retried with the budget as it is now).
        let _evictions = sim.eviction_lock.lock().unwrap_or_else(|p| p.into_inner());
        let key = (pdb.namespace().to_string(), pdb.name().to_string());
        let Some(pdb) = sim.store.get(pdb_key(), &key.0, &key.1) else {
            with_disruptions.remove(&key);
            continue;
        };
        let s = compute(sim, &pdb);
        let holds = write_status(sim, &pdb, s);
        if holds {
            with_disruptions.insert(key);
        } else {
            with_disruptions.remove(&key);
        }
    }
}

/// Writes the status; true when the budget holds disruptions after it.
fn write_status(sim: &Sim, pdb: &Stored, s: PdbStatus) -> bool {
    write_status_with(sim, pdb, s, None)
}

/// Writes the status, with `evicted` added to `disruptedPods` (an eviction just allowed), unless
/// its numbers and disruptions are those stored (the condition's time alone is no change). True
/// when the budget holds disruptions after it.
fn write_status_with(sim: &Sim, pdb: &Stored, s: PdbStatus, evicted: Option<&str>) -> bool {
    let stored = pdb.value();
    let mut disrupted = live_disruptions(sim, &stored);
    if let Some(pod) = evicted {
        disrupted.insert(pod.to_string(), json!(now_rfc3339()));
    }
    let old = stored.get("status");
    let number = |k: &str| old.and_then(|o| o.get(k)).and_then(Value::as_i64);
    let same_disruptions = match (old.and_then(|o| o.get("disruptedPods")), disrupted.is_empty()) {
        (None, true) => true,
        (Some(Value::Object(m)), false) => {
            m.len() == disrupted.len() && disrupted.iter().all(|(k, v)| m.get(k) == Some(v))
        }
        _ => false,
    };
    let same = same_disruptions
        && number("disruptionsAllowed") == Some(s.disruptions_allowed)
        && number("currentHealthy") == Some(s.current_healthy)
        && number("desiredHealthy") == Some(s.desired_healthy)
        && number("expectedPods") == Some(s.expected);
    if same {
        return !disrupted.is_empty();
    }
    let holds = !disrupted.is_empty();
    let mut status = json!({
        "observedGeneration": stored.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        "disruptionsAllowed": s.disruptions_allowed,
        "currentHealthy": s.current_healthy,
        "desiredHealthy": s.desired_healthy,
        "expectedPods": s.expected,
        "conditions": [{
            "type": "DisruptionAllowed",
            "status": if s.disruptions_allowed > 0 { "True" } else { "False" },
            "reason": if s.disruptions_allowed > 0 { "SufficientPods" } else { "InsufficientPods" },
            "message": "",
            "lastTransitionTime": now_rfc3339(),
            "observedGeneration": stored.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        }],
    });
    if holds {
        status["disruptedPods"] = json!(disrupted);
    }
    let _ = sim.store.write_status(pdb_key(), pdb.namespace(), pdb.name(), status);
    holds
}

/// The budgets that select `pod` (read from its extracted labels: no pod is parsed).
pub fn covering(sim: &Sim, pod: &Stored) -> Vec<std::sync::Arc<Stored>> {
    sim.store
        .in_namespace(pdb_key(), pod.namespace())
        .into_iter()
        .filter(|pdb| pdb.meta.selector.as_ref().is_some_and(|sel| sel.matches_labels(&pod.meta.labels)))
        .collect()
}

/// Ready and not terminating, from the extracted fields.
fn healthy(pod: &Stored) -> bool {
    pod.meta.ready && !pod.meta.terminating
}

fn created_status() -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    let mut r = Response::new(axum::body::Body::from(Bytes::from(serde_json::to_vec(&body).unwrap_or_default())));
    *r.status_mut() = axum::http::StatusCode::CREATED;
    r.headers_mut().insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    r
}

/// `POST .../pods/NAME/eviction`.
/// Dry run when either the `dryRun=All` query or the eviction's `deleteOptions.dryRun` asks.
pub fn evict(sim: &Sim, ns: &str, name: &str, body: &Bytes, query_dry_run: bool) -> Result<Response, ApiError> {
    let eviction: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let opts = eviction.get("deleteOptions").cloned().unwrap_or(Value::Null);
    let dry_run =
        query_dry_run || opts.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == "All"));
    let grace = opts.get("gracePeriodSeconds").and_then(Value::as_i64);
    let _one_at_a_time = sim.eviction_lock.lock().unwrap_or_else(|p| p.into_inner());
    let pod = sim.store.get(pods_key(), ns, name).ok_or_else(|| ApiError::not_found("pods", name))?;
    if pod.meta.terminating {
        check_eviction_preconditions(&opts, &pod)?;
        return Ok(created_status());
    }
    // Like the apiserver, pods that are not running (Pending, Succeeded, Failed) go without
    // consulting any budget.
    if matches!(&*pod.meta.phase, "Pending" | "Succeeded" | "Failed") {
        check_eviction_preconditions(&opts, &pod)?;
        delete_pod(sim, ns, name, grace, dry_run)?;
        if !dry_run {
            sim.stats.evicted();
        }
        return Ok(created_status());
    }
    let pdbs = covering(sim, &pod);
    if pdbs.len() > 1 {
        return Err(ApiError::internal_unreasoned(
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
        ));
    }
    if let Some(pdb) = pdbs.first() {
        let s = compute(sim, pdb);
        let healthy = healthy(&pod);
        let policy = pdb
            .value()
            .pointer("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str)
            .unwrap_or("IfHealthyBudget")
            .to_string();
        let allowed = if healthy {
            s.disruptions_allowed > 0
        } else {
            // IfHealthyBudget: an unhealthy pod may go while the application is healthy.
            policy == "AlwaysAllow" || s.current_healthy >= s.desired_healthy
        };
        if !allowed {
            sim.stats.sent_429(true);
            write_status(sim, pdb, s);
            return Err(ApiError::too_many_requests(
                "Cannot evict pod as it would violate the pod's disruption budget.".into(),
                json!({"causes": [{"reason": "DisruptionBudget", "message": if s.current_healthy <= s.desired_healthy {
                    format!("The disruption budget {} needs {} healthy pods and has {} currently", pdb.name(), s.desired_healthy, s.current_healthy)
                } else {
                    format!("The disruption budget {} does not allow evicting pods currently", pdb.name())
                }}]}),
            ));
        }
        if !dry_run && healthy {
            let after = PdbStatus {
                current_healthy: s.current_healthy - 1,
                disruptions_allowed: (s.disruptions_allowed - 1).max(0),
                ..s
            };
            write_status_with(sim, pdb, after, Some(name));
        }
    }
    // The preconditions are checked at the delete, after the budget paid for the disruption.
    check_eviction_preconditions(&opts, &pod)?;
    delete_pod(sim, ns, name, grace, dry_run)?;
    if !dry_run {
        sim.stats.evicted();
    }
    Ok(created_status())
}

/// The delete options' UID and resourceVersion preconditions against the pod, worded as the
/// eviction subresource words a mismatch.
fn check_eviction_preconditions(options: &Value, pod: &Stored) -> Result<(), ApiError> {
    let Some(p) = options.get("preconditions") else { return Ok(()) };
    if let Some(uid) = p.get("uid").and_then(Value::as_str).filter(|u| !u.is_empty())
        && uid != &*pod.meta.uid
    {
        return Err(ApiError::eviction_uid_mismatch(pod.name(), uid, &pod.meta.uid));
    }
    if let Some(rv) = p.get("resourceVersion").and_then(Value::as_str).filter(|r| !r.is_empty())
        && rv != pod.resource_version().to_string()
    {
        return Err(ApiError::eviction_rv_mismatch(pod.name(), rv, &pod.resource_version().to_string()));
    }
    Ok(())
}

/// Counts a plain DELETE of a healthy pod whose budget allows no disruption.
pub fn account_direct_delete(sim: &Sim, ns: &str, name: &str) {
    let Some(pod) = sim.store.get(pods_key(), ns, name) else { return };
    if !healthy(&pod) {
        return;
    }
    for pdb in covering(sim, &pod) {
        if compute(sim, &pdb).disruptions_allowed <= 0 {
            sim.stats.violation(Violation { pod: format!("{ns}/{name}"), pdb: format!("{ns}/{}", pdb.name()) });
        }
    }
}

/// Starts a graceful deletion (the kubelet finishes it), or removes the pod at once with grace 0
/// or when it is not bound to a node.
pub fn delete_pod(
    sim: &Sim,
    ns: &str,
    name: &str,
    grace: Option<i64>,
    dry_run: bool,
) -> Result<std::sync::Arc<Stored>, ApiError> {
    let pod = sim.store.get(pods_key(), ns, name).ok_or_else(|| ApiError::not_found("pods", name))?;
    let bound = !pod.meta.node_name.is_empty();
    let grace = grace.or(pod.meta.grace_seconds).unwrap_or(30);
    if grace <= 0 || !bound {
        let gone = sim.store.delete(pods_key(), ns, name, dry_run)?;
        if !dry_run {
            sim.changed.notify_waiters();
        }
        return Ok(gone);
    }
    let stored = sim.store.mutate(pods_key(), ns, name, None, dry_run, |p| {
        if p.pointer("/metadata/deletionTimestamp").is_none() {
            p["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        }
        Ok(())
    })?;
    if !dry_run {
        sim.changed.notify_waiters();
    }
    Ok(stored)
}
