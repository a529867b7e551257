//! Managed node-pool upgrades, as EKS managed node groups, GKE node pools and AKS agent pools
//! perform them: the provider surges a replacement node at the target (same pool labels, a new
//! name), cordons one old node, evicts its pods through the Eviction API (so disruption budgets
//! hold, and a budget that allows nothing holds the drain), deletes the old node, and repeats until
//! no old node is left. `POST /sim/pools/{pool}/upgrade` starts one (refused while one runs, as
//! EKS refuses a second update), `GET /sim/pools/{pool}` reads its progress for a provider CLI to
//! report, and `failAfter` makes it fail after that many nodes were replaced. Delays follow the
//! simulator's time scale.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use super::Sim;
use super::clock::now_rfc3339;
use super::pdb::{self, pods_key};
use super::store::{StorageKey, name_suffix};
use crate::version::Version;

/// Labels that name a node's managed pool (the simulator's own pool label last).
pub const POOL_LABELS: &[&str] = &[
    "eks.amazonaws.com/nodegroup",
    "cloud.google.com/gke-nodepool",
    "kubernetes.azure.com/agentpool",
    "sim.k8s-upgrade.dev/pool",
];

/// Simulated seconds a surged node takes to register and become Ready.
const LAUNCH_SECONDS: f64 = 8.0;
/// Simulated seconds between eviction rounds of a drain that a budget holds up.
const EVICT_RETRY_SECONDS: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    InProgress,
    Successful,
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// A replacement node is booting; Ready at the instant.
    Launch {
        node: String,
        ready_at: Instant,
    },
    /// Pick, cordon and drain the next old node (evictions retried at the instant).
    Drain {
        old: String,
        next_try: Instant,
    },
    Done,
}

/// One pool's upgrade.
#[derive(Debug, Clone)]
pub struct PoolUpgrade {
    pub id: String,
    pub pool: String,
    pub version: Version,
    pub status: Status,
    pub errors: Vec<Value>,
    /// Old nodes when it started (name order); the ones still present are still to go.
    pub old: Vec<String>,
    pub replaced: Vec<String>,
    pub added: Vec<String>,
    pub fail_after: Option<usize>,
    pub started_at: String,
    phase: Phase,
}

impl PoolUpgrade {
    pub fn document(&self) -> Value {
        json!({
            "id": self.id,
            "pool": self.pool,
            "version": self.version.to_string(),
            "status": self.status,
            "errors": self.errors,
            "oldNodes": self.old,
            "replaced": self.replaced,
            "added": self.added,
            "createdAt": self.started_at,
        })
    }
}

fn nodes_key() -> StorageKey {
    StorageKey::core("nodes")
}

/// The pool a node belongs to, by its labels.
fn pool_of(node: &Value) -> Option<String> {
    POOL_LABELS.iter().find_map(|k| {
        node.pointer(&format!("/metadata/labels/{}", k.replace('/', "~1"))).and_then(Value::as_str).map(str::to_string)
    })
}

fn kubelet(node: &Value) -> Option<Version> {
    node.pointer("/status/nodeInfo/kubeletVersion").and_then(Value::as_str).and_then(|s| s.parse().ok())
}

/// The nodes of `pool`, with their kubelet versions.
fn pool_nodes(sim: &Sim, pool: &str) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = sim
        .store
        .all(&nodes_key())
        .iter()
        .map(|n| (n.name().to_string(), n.value().into_owned()))
        .filter(|(_, v)| pool_of(v).as_deref() == Some(pool))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `POST /sim/pools/{pool}/upgrade` with `{"version": "1.31", "failAfter": 1}`.
pub fn start(sim: &Sim, pool: &str, body: &Value) -> Result<Value, (u16, String)> {
    let asked = body
        .get("version")
        .and_then(Value::as_str)
        .and_then(|s| s.trim_start_matches('v').parse::<Version>().ok())
        .ok_or((400, "expected {\"version\": \"1.31\"}".to_string()))?;
    let server = sim.server_version();
    if asked.minor_version() > server.minor_version() {
        return Err((
            400,
            format!(
                "InvalidParameterException: the requested version {} is newer than the control plane's {}",
                asked.minor_version(),
                server.minor_version()
            ),
        ));
    }
    // The provider picks the patch: the control plane's when on its minor.
    let version = if asked.minor_version() == server.minor_version() {
        server.without_suffix()
    } else if asked.is_minor_only() {
        asked.minor_version().with_patch(0)
    } else {
        asked.without_suffix()
    };
    let nodes = pool_nodes(sim, pool);
    if nodes.is_empty() {
        return Err((404, format!("ResourceNotFoundException: no node pool {pool}")));
    }
    let mut pools = sim.pools.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(u) = pools.get(pool)
        && u.status == Status::InProgress
    {
        return Err((
            409,
            format!("ResourceInUseException: an update ({}) is already in progress for node pool {pool}", u.id),
        ));
    }
    let old: Vec<String> = nodes
        .iter()
        .filter(|(_, v)| kubelet(v).is_none_or(|k| k.without_suffix().core() != version.core()))
        .map(|(n, _)| n.clone())
        .collect();
    let serial = sim.fault_counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        fastrand::u32(..),
        serial & 0xffff,
        fastrand::u16(..0x1000),
        fastrand::u16(..0x1000),
        fastrand::u64(..1 << 48)
    );
    let fail_after = body.get("failAfter").and_then(Value::as_u64).map(|n| n as usize);
    let mut u = PoolUpgrade {
        id,
        pool: pool.to_string(),
        version,
        status: Status::InProgress,
        errors: vec![],
        old,
        replaced: vec![],
        added: vec![],
        fail_after,
        started_at: now_rfc3339(),
        phase: Phase::Done,
    };
    if u.old.is_empty() {
        u.status = Status::Successful;
    } else {
        u.phase = launch(sim, &mut u, &nodes);
    }
    let doc = u.document();
    pools.insert(pool.to_string(), u);
    drop(pools);
    sim.changed.notify_waiters();
    Ok(doc)
}

/// `GET /sim/pools/{pool}`.
pub fn describe(sim: &Sim, pool: &str) -> Option<Value> {
    sim.pools.lock().unwrap_or_else(|p| p.into_inner()).get(pool).map(PoolUpgrade::document)
}

/// Every pool's last upgrade.
pub fn all(sim: &Sim) -> Value {
    let pools = sim.pools.lock().unwrap_or_else(|p| p.into_inner());
    Value::Array(pools.values().map(PoolUpgrade::document).collect())
}

/// Adds a replacement node like the pool's others, NotReady until it has booted.
fn launch(sim: &Sim, u: &mut PoolUpgrade, nodes: &[(String, Value)]) -> Phase {
    let Some((_, template)) = nodes.first() else { return Phase::Done };
    let serial = sim.fault_counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = format!("{}-{}", u.pool, name_suffix(serial.wrapping_mul(0x9e37_79b9) ^ fastrand::u64(..)));
    while sim.store.get(&nodes_key(), "", &name).is_some() {
        name.push('x');
    }
    let mut node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
    labels["kubernetes.io/hostname"] = json!(name);
    node["metadata"]["labels"] = labels;
    let mut spec = json!({"podCIDR": format!("10.245.{}.0/24", serial % 256)});
    // The pool's own taints come along; the ones a run or a drain put on an old node do not.
    if let Some(taints) = template.pointer("/spec/taints").and_then(Value::as_array) {
        let kept: Vec<Value> = taints
            .iter()
            .filter(|t| {
                let key = t["key"].as_str().unwrap_or_default();
                !key.starts_with("k8s-upgrade.dev/") && !key.starts_with("node.kubernetes.io/")
            })
            .cloned()
            .collect();
        if !kept.is_empty() {
            spec["taints"] = Value::Array(kept);
        }
    }
    node["spec"] = spec;
    let tag = format!("v{}", u.version.core());
    let ip = format!("10.200.{}.{}", (serial >> 8) & 0xff, serial & 0xff);
    let now = now_rfc3339();
    let mut status = template.get("status").cloned().unwrap_or(json!({}));
    status["nodeInfo"]["kubeletVersion"] = json!(tag);
    status["nodeInfo"]["kubeProxyVersion"] = json!(tag);
    status["addresses"] = json!([{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]);
    status["conditions"] = json!([
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "", "lastHeartbeatTime": now, "lastTransitionTime": now},
        {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "", "lastHeartbeatTime": now, "lastTransitionTime": now},
        {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": "", "lastHeartbeatTime": now, "lastTransitionTime": now},
        {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "container runtime network not ready", "lastHeartbeatTime": now, "lastTransitionTime": now},
    ]);
    if let Some(o) = status.as_object_mut() {
        o.remove("volumesAttached");
        o.remove("volumesInUse");
    }
    node["status"] = status;
    if sim.store.create(&nodes_key(), node, false).is_err() {
        u.status = Status::Failed;
        u.errors.push(json!({"errorCode": "NodeCreationFailure", "errorMessage": format!("could not add node {name}"), "resourceIds": [u.pool]}));
        return Phase::Done;
    }
    u.added.push(name.clone());
    Phase::Launch { node: name, ready_at: Instant::now() + sim.scaled(LAUNCH_SECONDS) }
}

fn set_ready(sim: &Sim, name: &str) {
    let _ = sim.store.mutate(&nodes_key(), "", name, None, false, |n| {
        let now = now_rfc3339();
        if let Some(conds) = n.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
            for c in conds.iter_mut().filter(|c| c["type"] == "Ready") {
                *c = json!({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now});
            }
        }
        Ok(())
    });
}

fn is_daemon_or_mirror(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations/kubernetes.io~1config.mirror").is_some()
        || pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|o| o.iter().any(|r| r["kind"] == "DaemonSet"))
}

/// Advances every running pool upgrade; returns when it next needs a pass.
pub fn reconcile(sim: &Sim) -> Option<Instant> {
    let mut pools = sim.pools.lock().unwrap_or_else(|p| p.into_inner());
    let mut due: Option<Instant> = None;
    for u in pools.values_mut().filter(|u| u.status == Status::InProgress) {
        // A few steps per pass at most: each one waits on the cluster anyway.
        for _ in 0..4 {
            let now = Instant::now();
            let next = match u.phase.clone() {
                Phase::Done => break,
                Phase::Launch { node, ready_at } => {
                    if now < ready_at {
                        due = Some(due.map_or(ready_at, |d| d.min(ready_at)));
                        break;
                    }
                    set_ready(sim, &node);
                    match next_old(sim, u) {
                        Some(old) => {
                            let _ = sim.store.mutate(&nodes_key(), "", &old, None, false, |n| {
                                n["spec"]["unschedulable"] = json!(true);
                                Ok(())
                            });
                            Phase::Drain { old, next_try: now }
                        }
                        None => {
                            u.status = Status::Successful;
                            Phase::Done
                        }
                    }
                }
                Phase::Drain { old, next_try } => {
                    if now < next_try {
                        due = Some(due.map_or(next_try, |d| d.min(next_try)));
                        break;
                    }
                    if drained(sim, &old) {
                        remove_node(sim, &old);
                        u.replaced.push(old.clone());
                        if u.fail_after.is_some_and(|n| u.replaced.len() >= n) && next_old(sim, u).is_some() {
                            u.status = Status::Failed;
                            u.errors.push(json!({
                                "errorCode": "PodEvictionFailure",
                                "errorMessage": format!("Reached max retries while trying to evict pods from nodes in node group {} (simulated failure after {} node(s) replaced)", u.pool, u.replaced.len()),
                                "resourceIds": [u.pool],
                            }));
                            Phase::Done
                        } else if next_old(sim, u).is_some() {
                            let nodes = pool_nodes(sim, &u.pool);
                            launch(sim, u, &nodes)
                        } else {
                            u.status = Status::Successful;
                            Phase::Done
                        }
                    } else {
                        let retry = now + sim.scaled(EVICT_RETRY_SECONDS).max(Duration::from_millis(20));
                        due = Some(due.map_or(retry, |d| d.min(retry)));
                        u.phase = Phase::Drain { old, next_try: retry };
                        break;
                    }
                }
            };
            u.phase = next;
        }
    }
    due
}

/// The next old node still present.
fn next_old(sim: &Sim, u: &PoolUpgrade) -> Option<String> {
    u.old.iter().find(|n| sim.store.get(&nodes_key(), "", n).is_some()).cloned()
}

/// Evicts what is left on `node` (budgets decide); true once only DaemonSet and mirror pods
/// remain.
fn drained(sim: &Sim, node: &str) -> bool {
    let mut left = 0;
    for p in sim.store.pods_on_node(node) {
        let v = p.value();
        if is_daemon_or_mirror(&v) || matches!(&*p.meta.phase, "Succeeded" | "Failed") {
            continue;
        }
        left += 1;
        if p.meta.terminating {
            continue;
        }
        let _ = pdb::evict(sim, p.namespace(), p.name(), &bytes::Bytes::from_static(b"{}"), false);
    }
    left == 0
}

/// The node's instance is terminated: its remaining pods go with it.
fn remove_node(sim: &Sim, node: &str) {
    for p in sim.store.pods_on_node(node) {
        let _ = sim.store.delete(pods_key(), p.namespace(), p.name(), false);
    }
    let _ = sim.store.delete(&nodes_key(), "", node, false);
    sim.changed.notify_waiters();
}

/// The pools' last upgrades by name (for `/sim/stats`).
pub fn summary(sim: &Sim) -> BTreeMap<String, String> {
    sim.pools
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, u)| (k.clone(), format!("{:?}", u.status)))
        .collect()
}
