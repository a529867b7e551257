//! Controllers and kubelets: what makes the store behave like a cluster.
//!
//! One loop reconciles whenever the store changed or a timer fell due: deployments roll replica
//! sets, replica sets, stateful sets, daemon sets and jobs keep their pods, a scheduler binds
//! pending pods to Ready, schedulable nodes with room, kubelets start pods, finish graceful
//! deletions and restart themselves at a new version when a node carries the upgrade annotation
//! (refusing to come back when that would break the skew policy), and budgets get fresh status.
//! All delays are scaled by the simulator's time scale.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use serde_json::{Value, json};

use super::clock::now_rfc3339;
use super::delta::{Delta, Key};
use super::pdb::{self, pods_key};
use super::store::{StorageKey, Stored, name_suffix};
use super::{Sim, UPGRADE_ANNOTATION, placement, replicas, volumes};
use crate::version::Version;

const NODES: &str = "nodes";

fn apps(resource: &'static str) -> StorageKey {
    StorageKey::new("apps", resource)
}

pub(super) fn nodes_key() -> StorageKey {
    StorageKey::core(NODES)
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn int_at(v: &Value, p: &str, default: i64) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(default)
}

fn owner_ref(obj: &Value, kind: &str, api_version: &str) -> Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": str_at(obj, "/metadata/name"), "uid": str_at(obj, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true}])
}

pub fn node_ready(node: &Value) -> bool {
    ready_in(node)
}

/// Ready per the object's `Ready` condition (nodes and pods alike), by the shared rule.
pub fn ready_in(obj: &Value) -> bool {
    obj.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
        crate::k8s::node::ready_from(
            cs.iter().map(|c| (c["type"].as_str().unwrap_or_default(), c["status"].as_str().unwrap_or_default())),
        )
    })
}

fn image_version(image: &str) -> Option<Version> {
    image.rsplit_once(':').and_then(|(_, tag)| tag.parse().ok())
}

/// The oldest kube-apiserver among control-plane mirror pods, if the cluster runs its own.
pub fn oldest_apiserver(sim: &Sim) -> Option<Version> {
    sim.store
        .in_namespace(pods_key(), "kube-system")
        .iter()
        .filter(|p| p.meta.label("component").unwrap_or_default() == "kube-apiserver")
        .filter_map(|p| image_version(str_at(&p.value(), "/spec/containers/0/image")))
        .min()
}

fn apiserver_on(sim: &Sim, node: &str) -> Option<Version> {
    sim.store
        .pods_on_node(node)
        .iter()
        .filter(|p| p.meta.label("component").unwrap_or_default() == "kube-apiserver")
        .filter_map(|p| image_version(str_at(&p.value(), "/spec/containers/0/image")))
        .min()
}

/// When something falls due, and the namespaced object it concerns.
#[derive(Debug, Clone)]
struct Due {
    at: Instant,
    key: Key,
}

#[derive(Default, Clone)]
struct Timers {
    /// Pod uid → when it becomes Running and Ready.
    pod_ready_at: HashMap<String, Due>,
    /// Pod uid → when its graceful deletion completes.
    pod_gone_at: HashMap<String, Due>,
    /// Node name → when its kubelet restart completes.
    node_back_at: HashMap<String, Instant>,
    /// Job pod uid → when it succeeds (the key is the Job's).
    job_done_at: HashMap<String, Due>,
    /// VolumeAttachment name → when its volume has detached.
    volume_detach_at: HashMap<String, Instant>,
    /// The kubeadm upgrader's node jobs, by pod uid.
    node_jobs: super::node_jobs::Runs,
    /// When a managed pool upgrade next needs a pass.
    pools_due: Option<Instant>,
    /// Each controller's place in the store's change log.
    cursors: HashMap<&'static str, u64>,
    /// This pass looks at everything (the faults changed).
    force_full: bool,
    /// The pod ceiling stopped pod creation before this pass: the workload controllers look at
    /// every workload (room may come from a pod leaving or the ceiling rising).
    starved: bool,
    /// The scheduler's view of the nodes, kept between passes.
    scheduler: SchedulerState,
    /// Nodes whose status lists volumes (None: not known yet).
    volume_status_nodes: Option<std::collections::BTreeSet<String>>,
    /// Budgets whose status holds disruptions, which expire with time.
    budgets_with_disruptions: std::collections::BTreeSet<Key>,
    /// Each Deployment's pod template hash, by uid, with the generation it was computed at
    /// (the template only changes with the generation; every status write makes a new version).
    template_hashes: TemplateHashes,
    /// The last incremental delta with the log range it covers: the next controller whose
    /// cursor is where it began, with nothing written since, gets the same one (most
    /// controllers write nothing in most passes).
    last_delta: Option<(u64, u64, Arc<Delta>)>,
}

impl Timers {
    /// What changed since the controller `name` last looked.
    fn delta(&mut self, sim: &Sim, name: &'static str) -> Arc<Delta> {
        let cursor = self.cursors.entry(name).or_insert(0);
        let latest = sim.store.current_rv();
        if !self.force_full
            && let Some((from, to, d)) = &self.last_delta
            && *from == *cursor
            && *to == latest
        {
            *cursor = latest;
            return d.clone();
        }
        let from = *cursor;
        let d = Arc::new(Delta::since(&sim.store, cursor, self.force_full));
        self.last_delta = (!d.full && *cursor == latest).then(|| (from, latest, d.clone()));
        d
    }
}

impl Timers {
    fn next_due(&self) -> Option<Instant> {
        [&self.pod_ready_at, &self.pod_gone_at, &self.job_done_at]
            .iter()
            .flat_map(|m| m.values())
            .map(|d| d.at)
            .chain([&self.node_back_at, &self.volume_detach_at].iter().flat_map(|m| m.values()).copied())
            .chain(self.node_jobs.next_due())
            .chain(self.pools_due)
            .min()
    }
}

/// Runs until the task is aborted.
pub async fn run(sim: Arc<Sim>) {
    let mut timers = Timers::default();
    let mut seen_rv = 0u64;
    let mut seen_epoch = 0u64;
    let idle = Duration::from_millis(500);
    let mut settling = 0u32;
    let hold_watches =
        tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread;
    loop {
        let notified = sim.changed.notified();
        let rv = sim.store.current_rv();
        let epoch = sim.fault_epoch.load(std::sync::atomic::Ordering::Relaxed);
        let due = timers.next_due().is_some_and(|t| t <= Instant::now());
        if rv != seen_rv || due || epoch != seen_epoch {
            // New faults change what every controller would do to objects that did not change.
            timers.force_full = epoch != seen_epoch;
            seen_epoch = epoch;
            // Remember the version seen *before* reconciling: if this pass wrote anything, the
            // next pass runs too, until one pass changes nothing.
            seen_rv = rv;
            // No panic is caught here: a controller that panics ends this task, and the
            // simulator stops serving and reports it (see `super::supervise`). A cluster whose
            // controllers silently skipped a pass would go on answering as if all were well.
            // On a thread of its own, as a controller manager runs beside the apiserver: the
            // clients' requests and watches go on meanwhile (a paused clock does not advance
            // while a pass runs). A panic in a pass ends this task as if it happened here. On a
            // single-threaded runtime (a rehearsal's twin) every watch event would wake that
            // thread from this one: the pass sends them in bursts.
            let pass = {
                let sim = sim.clone();
                let mut timers = std::mem::take(&mut timers);
                tokio::task::spawn_blocking(move || {
                    let _held = hold_watches.then(|| sim.store.hold_watches());
                    reconcile(&sim, &mut timers);
                    timers
                })
            };
            timers = match pass.await {
                Ok(timers) => timers,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // The runtime is shutting down.
                Err(_) => return,
            };
            timers.force_full = false;
            // A pass that wrote (a pod gone on its timer, say) runs the controllers again at
            // once, the way a real controller reacts to its own writes; bounded so that a
            // controller that never settles cannot spin.
            if sim.store.current_rv() == seen_rv {
                settling = 0;
                audit(&sim, &timers);
            } else if settling < 50 {
                settling += 1;
                tokio::task::yield_now().await;
                continue;
            }
        }
        let wait = timers
            .next_due()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(idle)
            .clamp(Duration::from_millis(5), idle);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = notified => {
                // Let a burst of writes land before reconciling.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

fn reconcile(sim: &Sim, timers: &mut Timers) {
    // Unit tests only: proves a panicking pass is not swallowed. Nothing a client sends can set it.
    #[cfg(test)]
    if sim.test_panic_in_pass.load(std::sync::atomic::Ordering::Relaxed) {
        panic!("test fault: a controller pass panicked");
    }
    timers.starved = sim.pod_ceiling_reached.load(std::sync::atomic::Ordering::Relaxed);
    let d = timers.delta(sim, "nodelifecycle");
    unreachable_nodes(sim, &d);
    let d = timers.delta(sim, "kubelet");
    kubelets(sim, timers, &d);
    let d = timers.delta(sim, "deployment");
    deployments(sim, &d, &mut timers.template_hashes);
    let d = timers.delta(sim, "replicaset");
    replica_sets(sim, &d, timers.starved);
    let d = timers.delta(sim, "statefulset");
    stateful_sets(sim, &d, timers.starved);
    let d = timers.delta(sim, "daemonset");
    daemon_sets(sim, &d, timers.starved);
    let d = timers.delta(sim, "job");
    jobs(sim, timers, &d);
    let d = timers.delta(sim, "garbagecollector");
    garbage_collect(sim, &d);
    let d = timers.delta(sim, "scheduler");
    schedule(sim, &mut timers.scheduler, &d);
    let d = timers.delta(sim, "attachdetach");
    volumes::reconcile(sim, &mut timers.volume_detach_at, &mut timers.volume_status_nodes, &d);
    let d = timers.delta(sim, "kubelet-pods");
    pod_lifecycle(sim, timers, &d);
    let d = timers.delta(sim, "nodejobs");
    super::node_jobs::reconcile(sim, &mut timers.node_jobs, &d);
    namespaces(sim);
    let d = timers.delta(sim, "disruption");
    pdb::refresh(sim, &d, &mut timers.budgets_with_disruptions);
    let d = timers.delta(sim, "workloadstatus");
    workload_status(sim, &d, &mut timers.template_hashes);
    timers.pools_due = super::pools::reconcile(sim);
    let d = timers.delta(sim, "observe");
    observe(sim, &d);
}

/// Debug builds check the incremental passes (on a single-threaded runtime): once they settle, a full pass on a copy of the
/// controllers' state must find nothing to do. Whatever it would write is an object the
/// incremental controllers missed, so the check stops the simulator (see `super::supervise`)
/// rather than let a test pass on a cluster that stopped reacting. Skipped above 20,000 pods,
/// where a full pass in a debug build takes seconds.
fn audit(sim: &Sim, timers: &Timers) {
    if !cfg!(debug_assertions) || sim.store.count(pods_key()) > 20_000 {
        return;
    }
    // On a multi-threaded runtime, clients write while the check runs, and the full pass would
    // rightly act on their writes; on a single thread (the rehearsal's twin, unit tests) nothing
    // writes between the settled pass and the check.
    if tokio::runtime::Handle::try_current()
        .map_or(true, |h| h.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread)
    {
        return;
    }
    // What falls due with time but has no timer (a budget's disruptions expiring, a volume's
    // unmount showing) or falls due within the check itself would differ without a miss.
    let soon = Instant::now() + Duration::from_secs(1);
    if timers.next_due().is_some_and(|t| t <= soon)
        || !timers.budgets_with_disruptions.is_empty()
        || !timers.volume_detach_at.is_empty()
    {
        return;
    }
    let before = sim.store.current_rv();
    let mut copy = timers.clone();
    copy.force_full = true;
    reconcile(sim, &mut copy);
    let missed: Vec<String> = sim
        .store
        .changes_since(before)
        .unwrap_or_default()
        .iter()
        .map(|c| format!("{} {}/{}/{}", c.kind.as_str(), c.key.resource, c.object.namespace(), c.object.name()))
        .collect();
    assert!(missed.is_empty(), "the incremental controller passes missed what a full pass does: {missed:?}");
}

/// Whether a node is cut off (a `nodesUnreachable` fault) and not yet replaced by an upgrade.
fn unreachable(sim: &Sim, node: &Value) -> bool {
    let name = str_at(node, "/metadata/name");
    sim.faults().nodes_unreachable.iter().any(|n| *n == name) && upgrade_target(node).is_none()
}

/// What the node lifecycle controller does to a node whose kubelet stopped posting status:
/// Ready becomes Unknown and the unreachable taint goes on; both leave once the node is back.
fn unreachable_nodes(sim: &Sim, d: &Delta) {
    const TAINT: &str = "node.kubernetes.io/unreachable";
    for node in changed_nodes(sim, d) {
        let v = node.value();
        let cut = unreachable(sim, &v);
        let tainted =
            v.pointer("/spec/taints").and_then(Value::as_array).is_some_and(|t| t.iter().any(|t| t["key"] == TAINT));
        let unknown = v
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "Unknown"));
        if cut == (tainted && unknown) && (cut || !tainted) {
            continue;
        }
        let _ = sim.store.mutate(&nodes_key(), "", node.name(), None, false, |n| {
            let mut taints: Vec<Value> =
                n.pointer("/spec/taints").and_then(Value::as_array).cloned().unwrap_or_default();
            taints.retain(|t| t["key"] != TAINT);
            if cut {
                taints.push(json!({"key": TAINT, "effect": "NoExecute", "timeAdded": now_rfc3339()}));
                let mut conds: Vec<Value> =
                    n.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
                for c in conds.iter_mut().filter(|c| c["type"] == "Ready") {
                    c["status"] = json!("Unknown");
                    c["reason"] = json!("NodeStatusUnknown");
                    c["message"] = json!("Kubelet stopped posting node status.");
                    c["lastTransitionTime"] = json!(now_rfc3339());
                }
                n["status"]["conditions"] = Value::Array(conds);
            }
            if taints.is_empty() {
                if let Some(spec) = n.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("taints");
                }
            } else {
                n["spec"]["taints"] = Value::Array(taints);
            }
            Ok(())
        });
    }
}

/// Every node on a full pass, else the nodes that changed (and still exist).
fn changed_nodes(sim: &Sim, d: &Delta) -> Vec<Arc<Stored>> {
    if d.full {
        return sim.store.all(&nodes_key());
    }
    d.nodes().filter_map(|n| sim.store.get(&nodes_key(), "", n)).collect()
}

/// Objects of `key` with these keys that still exist.
fn existing(sim: &Sim, key: &StorageKey, keys: impl IntoIterator<Item = Key>) -> Vec<Arc<Stored>> {
    let keys: std::collections::BTreeSet<Key> = keys.into_iter().collect();
    keys.iter().filter_map(|(ns, n)| sim.store.get(key, ns, n)).collect()
}

fn upgrade_target(node: &Value) -> Option<&str> {
    node.get("metadata")?.get("annotations")?.get(UPGRADE_ANNOTATION)?.as_str()
}

/// The namespace controller's last step: a Terminating namespace goes once its pods are gone.
fn namespaces(sim: &Sim) {
    let key = StorageKey::core("namespaces");
    for ns in sim.store.all(&key).iter().filter(|n| n.meta.terminating) {
        if sim.store.in_namespace(pods_key(), ns.name()).is_empty() {
            let _ = sim.store.delete(&key, "", ns.name(), false);
        }
    }
}

/// A node condition: kubelets renew its heartbeat on every status update.
fn set_condition(conds: &mut Vec<Value>, ty: &str, status: bool, reason: &str, message: &str) {
    upsert_condition(conds, ty, status, reason, message, true);
}

/// A pod condition, as a kubelet writes it: no heartbeat, and no empty reason or message.
fn set_pod_condition(conds: &mut Vec<Value>, ty: &str, status: bool, reason: &str, message: &str) {
    upsert_condition(conds, ty, status, reason, message, false);
}

fn upsert_condition(conds: &mut Vec<Value>, ty: &str, status: bool, reason: &str, message: &str, heartbeat: bool) {
    let now = now_rfc3339();
    let st = if status { "True" } else { "False" };
    let fresh = || {
        let mut c = json!({"type": ty, "status": st, "lastTransitionTime": now});
        if heartbeat {
            c["lastHeartbeatTime"] = json!(now);
        }
        c
    };
    let c = match conds.iter_mut().position(|c| c["type"] == ty) {
        Some(i) => {
            if conds[i]["status"] != st {
                conds[i]["lastTransitionTime"] = json!(now);
            }
            conds[i]["status"] = json!(st);
            if heartbeat {
                conds[i]["lastHeartbeatTime"] = json!(now);
            }
            &mut conds[i]
        }
        None => {
            conds.push(fresh());
            conds.last_mut().expect("just pushed")
        }
    };
    let Some(c) = c.as_object_mut() else { return };
    for (k, v) in [("reason", reason), ("message", message)] {
        if v.is_empty() && !heartbeat {
            c.remove(k);
        } else {
            c.insert(k.into(), json!(v));
        }
    }
}

fn set_node_ready(sim: &Sim, name: &str, ready: bool, reason: &str, message: &str, f: impl FnOnce(&mut Value)) {
    let _ = sim.store.mutate(&nodes_key(), "", name, None, false, |n| {
        let mut conds: Vec<Value> =
            n.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        set_condition(&mut conds, "Ready", ready, reason, message);
        n["status"]["conditions"] = Value::Array(conds);
        f(n);
        Ok(())
    });
}

/// An Event about a node, as a kubelet records it: in `default`, named after the node and the
/// moment, with a time of whole seconds (a rehearsal reads restart times off these).
fn record_node_event(sim: &Sim, node: &str, reason: &str, message: &str) {
    let now = crate::clock::now();
    let stamp = super::clock::rfc3339(now.as_second());
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        // A kubelet names its events NODE.HEX-NANOS; the reason is added so that two recorded at
        // one instant (the twin's virtual clock stands still between them) do not collide.
        "metadata": {"name": format!("{node}.{:x}.{}", now.as_nanosecond(), reason.to_ascii_lowercase()), "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": node, "uid": node},
        "reason": reason,
        "message": message,
        "source": {"component": "kubelet", "host": node},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": "Normal",
        "reportingComponent": "kubelet",
        "reportingInstance": node,
    });
    let _ = sim.store.create(&StorageKey::core("events"), event, false);
}

/// The kubelet side of upgrades: restart, then come back at the new version (or refuse).
fn kubelets(sim: &Sim, timers: &mut Timers, d: &Delta) {
    let now = Instant::now();
    // A restart whose node is gone, or whose upgrade annotation was withdrawn, is over: the
    // kubelet comes back at the version it runs.
    let withdrawn: Vec<String> = timers
        .node_back_at
        .keys()
        .filter(|n| sim.store.get(&nodes_key(), "", n).is_none_or(|node| upgrade_target(&node.value()).is_none()))
        .cloned()
        .collect();
    for name in withdrawn {
        timers.node_back_at.remove(&name);
        set_node_ready(sim, &name, true, "KubeletReady", "kubelet is posting ready status", |_| {});
    }
    // The nodes that changed, and those restarting (their restart may be over).
    let mut nodes = changed_nodes(sim, d);
    if !d.full {
        let seen: HashSet<String> = nodes.iter().map(|n| n.name().to_string()).collect();
        let restarting: Vec<String> = timers.node_back_at.keys().filter(|n| !seen.contains(*n)).cloned().collect();
        nodes.extend(restarting.iter().filter_map(|n| sim.store.get(&nodes_key(), "", n)));
    }
    for node in nodes {
        let name = node.name().to_string();
        let Some(target) = upgrade_target(&node.value()).map(str::to_string) else {
            continue;
        };
        let Ok(target) = target.parse::<Version>() else { continue };
        let current = str_at(&node.value(), "/status/nodeInfo/kubeletVersion").parse::<Version>().ok();
        let target_tag = format!("v{}", target.without_suffix().core());
        if current.as_ref().is_some_and(|c| c.without_suffix().core() == target.without_suffix().core())
            && node_ready(&node.value())
        {
            timers.node_back_at.remove(&name);
            continue;
        }
        let control_plane = node.value().pointer("/metadata/labels/node-role.kubernetes.io~1control-plane").is_some();
        match timers.node_back_at.get(&name).copied() {
            None => {
                let left = volumes::left_attached(sim, &name);
                if !left.is_empty() {
                    sim.stats.restarted_with_volumes(&name, left);
                }
                timers.node_back_at.insert(name.clone(), now + sim.scaled(sim.timings.node_restart_seconds));
                set_node_ready(
                    sim,
                    &name,
                    false,
                    "KubeletNotReady",
                    &format!("kubelet is restarting to upgrade to {target_tag}"),
                    |_| {},
                );
                record_node_event(sim, &name, "NodeNotReady", &format!("Node {name} status is now: NodeNotReady"));
                if control_plane {
                    sim.start_blip();
                }
            }
            Some(back) if back <= now => {
                if sim.faults().nodes_never_ready.contains(&name) {
                    set_node_ready(
                        sim,
                        &name,
                        false,
                        "KubeletNotReady",
                        "kubelet stopped posting node status (simulated fault: this node never comes back)",
                        |_| {},
                    );
                    timers.node_back_at.insert(name.clone(), now + Duration::from_secs(86_400 * 365));
                    continue;
                }
                if control_plane {
                    upgrade_static_pods(sim, &name, &target_tag);
                    sim.refresh_registry();
                    sim.stats.apiserver_restarted();
                }
                let reference = if control_plane {
                    apiserver_on(sim, &name).or_else(|| oldest_apiserver(sim))
                } else {
                    oldest_apiserver(sim)
                }
                .unwrap_or_else(|| sim.server_version());
                match skew_problem(sim, &target, &reference) {
                    Some(problem) => {
                        set_node_ready(sim, &name, false, "KubeletVersionSkew", &problem, |_| {});
                        // Check again later: the apiserver may catch up.
                        timers.node_back_at.insert(name.clone(), now + sim.scaled(sim.timings.node_restart_seconds));
                    }
                    None => {
                        timers.node_back_at.remove(&name);
                        set_node_ready(sim, &name, true, "KubeletReady", "kubelet is posting ready status", |n| {
                            n["status"]["nodeInfo"]["kubeletVersion"] = json!(target_tag);
                            n["status"]["nodeInfo"]["kubeProxyVersion"] = json!(target_tag);
                        });
                        record_node_event(sim, &name, "Starting", "Starting kubelet.");
                        record_node_event(sim, &name, "NodeReady", &format!("Node {name} status is now: NodeReady"));
                    }
                }
            }
            Some(_) => {}
        }
    }
}

/// Why a kubelet at `kubelet` may not run against an apiserver at `apiserver`, per the catalog.
fn skew_problem(sim: &Sim, kubelet: &Version, apiserver: &Version) -> Option<String> {
    let lag = apiserver.minor_version().minors_since(kubelet.minor_version());
    if lag < 0 {
        return Some(format!(
            "kubelet v{} is newer than the oldest kube-apiserver v{}; the version skew policy never allows that: upgrade the control plane first",
            kubelet.core(),
            apiserver.core()
        ));
    }
    let rule = sim.catalog.component_skew("kubelet")?;
    let allowed = crate::k8s::skew::allowed_lag(rule.max_older, rule.older_than.as_ref(), kubelet.minor_version());
    (lag > i64::from(allowed)).then(|| {
        format!(
            "kubelet v{} is {lag} minors older than kube-apiserver v{} (at most {allowed} allowed)",
            kubelet.core(),
            apiserver.core()
        )
    })
}

fn upgrade_static_pods(sim: &Sim, node: &str, tag: &str) {
    let minor = tag.trim_start_matches('v').parse::<Version>().ok().map(|v| v.minor_version());
    let etcd = minor.and_then(|m| {
        sim.catalog
            .distro(&sim.distro)
            .and_then(|d| d.component_versions.iter().find(|c| c.minor == m))
            .and_then(|c| c.etcd.clone())
    });
    for pod in sim.store.pods_on_node(node) {
        let component = pod.meta.label("component").unwrap_or_default().to_string();
        let image = str_at(&pod.value(), "/spec/containers/0/image").to_string();
        let new_image = match component.as_str() {
            "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" => {
                format!("{}:{tag}", image.rsplit_once(':').map_or(image.as_str(), |(repo, _)| repo))
            }
            "etcd" => match &etcd {
                Some(e) => format!("{}:{e}", image.rsplit_once(':').map_or(image.as_str(), |(repo, _)| repo)),
                None => continue,
            },
            _ => continue,
        };
        if new_image != image {
            let _ = sim.store.mutate(pods_key(), pod.namespace(), pod.name(), None, false, |p| {
                p["spec"]["containers"][0]["image"] = json!(new_image);
                Ok(())
            });
        }
    }
    // kubeadm moves CoreDNS with the first control-plane node of a minor.
    if let Some(coredns) = minor.and_then(|m| {
        sim.catalog
            .distro(&sim.distro)
            .and_then(|d| d.component_versions.iter().find(|c| c.minor == m))
            .and_then(|c| c.coredns.clone())
    }) && let Some(dep) = sim.store.get(&apps("deployments"), "kube-system", "coredns")
    {
        let image = str_at(&dep.value(), "/spec/template/spec/containers/0/image").to_string();
        if let Some((repo, _)) = image.rsplit_once(':') {
            let new_image = format!("{repo}:{coredns}");
            if new_image != image {
                let _ = sim.store.mutate(&apps("deployments"), "kube-system", "coredns", None, false, |d| {
                    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(new_image);
                    Ok(())
                });
            }
        }
    }
}

#[derive(Default, Clone)]
struct TemplateHashes(HashMap<Box<str>, (i64, String)>);

impl TemplateHashes {
    /// `dep`'s template hash, computed once per generation.
    fn of(&mut self, dep: &Stored) -> String {
        let value = dep.value();
        let Some(generation) = value.pointer("/metadata/generation").and_then(Value::as_i64) else {
            // Without a generation a changed template could not be told apart.
            return template_hash(value.pointer("/spec/template").unwrap_or(&json!({})));
        };
        if let Some((g, hash)) = self.0.get(&*dep.meta.uid)
            && *g == generation
        {
            return hash.clone();
        }
        // Deleted Deployments leave entries behind; the map is started over before it grows
        // far past what the cluster holds.
        if self.0.len() >= 100_000 {
            self.0.clear();
        }
        let hash = template_hash(value.pointer("/spec/template").unwrap_or(&json!({})));
        self.0.insert(dep.meta.uid.clone(), (generation, hash.clone()));
        hash
    }
}

pub(crate) fn template_hash(template: &Value) -> String {
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    name_suffix(h).chars().chain(name_suffix(h >> 20).chars()).take(10).collect()
}

/// The Deployment (namespace, name) that owns a ReplicaSet, from the store or, for one just
/// deleted, from its last state.
fn deployment_of_replica_set(sim: &Sim, d: &Delta, (ns, name): &Key) -> Option<Key> {
    let rs = sim.store.get(&apps("replicasets"), ns, name).or_else(|| {
        d.deleted
            .iter()
            .find(|o| o.namespace() == ns && o.name() == name && o.meta.api_version.starts_with("apps/"))
            .cloned()
    })?;
    match rs.owner() {
        Some(("Deployment", dep, _)) => Some((ns.clone(), dep.to_string())),
        _ => None,
    }
}

/// The controllers of `kind` to look at: all on a full pass (or while the pod ceiling stops pod
/// creation, `starved`), else those that changed or whose pods changed.
fn workloads_to_sync(sim: &Sim, d: &Delta, key: &StorageKey, kind: &str, starved: bool) -> Vec<Arc<Stored>> {
    if d.full || starved {
        return sim.store.all(key);
    }
    existing(sim, key, d.changed_beyond_status(key).cloned().chain(d.pod_owners_of(kind)))
}

/// Deployments to look at: all on a full pass, else those that changed or whose ReplicaSets or
/// their pods did.
fn deployments_to_sync(sim: &Sim, d: &Delta) -> Vec<Arc<Stored>> {
    if d.full {
        return sim.store.all(&apps("deployments"));
    }
    let replica_sets: Vec<Key> =
        d.changed_beyond_status(&apps("replicasets")).cloned().chain(d.pod_owners_of("ReplicaSet")).collect();
    let owners = replica_sets.iter().filter_map(|rs| deployment_of_replica_set(sim, d, rs));
    existing(sim, &apps("deployments"), d.changed_beyond_status(&apps("deployments")).cloned().chain(owners))
}

fn deployments(sim: &Sim, d: &Delta, hashes: &mut TemplateHashes) {
    let dirty = deployments_to_sync(sim, d);
    for dep in dirty {
        let ns = dep.namespace().to_string();
        let uid = &*dep.meta.uid;
        let desired = int_at(&dep.value(), "/spec/replicas", 1);
        let hash = hashes.of(&dep);
        let owned_sets = sim.store.owned_by(&apps("replicasets"), uid);
        let owned: Vec<&Arc<Stored>> = owned_sets.iter().collect();
        let current = owned.iter().find(|rs| rs.meta.label("pod-template-hash").unwrap_or_default() == hash);
        if current.is_none() {
            let rs_name = format!("{}-{hash}", dep.name());
            let template = dep.value().pointer("/spec/template").cloned().unwrap_or(json!({}));
            let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
            labels["pod-template-hash"] = json!(hash);
            let mut tpl = template.clone();
            tpl["metadata"]["labels"] = labels.clone();
            let mut selector = dep.value().pointer("/spec/selector").cloned().unwrap_or(json!({}));
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs_name, "namespace": ns, "labels": labels, "ownerReferences": owner_ref(&dep.value(), "Deployment", "apps/v1")},
                "spec": {"replicas": if owned.is_empty() { desired } else { 0 }, "selector": selector, "template": tpl},
            });
            let _ = sim.store.create(&apps("replicasets"), rs, false);
            continue;
        }
        // Rolling: the new set grows to the desired count; old sets shrink as new pods get ready.
        // The store counts each controller's Ready pods that are not terminating.
        let new_ready = current.map_or(0, |rs| i64::from(sim.store.pod_counts(&rs.meta.uid).ready));
        // Old sets give up, in turn, as many replicas as new ones became ready beyond the
        // desired count, so availability never drops below what the rollout can serve.
        let old_total: i64 = owned
            .iter()
            .filter(|r| r.meta.label("pod-template-hash") != Some(hash.as_str()))
            .map(|r| int_at(&r.value(), "/spec/replicas", 0))
            .sum();
        let mut excess = (old_total + new_ready - desired).max(0);
        for rs in &owned {
            let is_new = rs.meta.label("pod-template-hash") == Some(hash.as_str());
            let current = int_at(&rs.value(), "/spec/replicas", 0);
            let want = if is_new {
                desired
            } else {
                let give = excess.min(current);
                excess -= give;
                current - give
            };
            if int_at(&rs.value(), "/spec/replicas", -1) != want {
                let _ = sim.store.mutate(&apps("replicasets"), &ns, rs.name(), None, false, |r| {
                    r["spec"]["replicas"] = json!(want);
                    Ok(())
                });
            }
        }
    }
}

fn new_pod(owner: &Value, owner_kind: &str, name: &str, template: &Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": str_at(owner, "/metadata/namespace"), "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                     "ownerReferences": owner_ref(owner, owner_kind, if owner_kind == "Job" { "batch/v1" } else { "apps/v1" })},
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
        "status": {"phase": "Pending"},
    });
    if let Some(a) = template.pointer("/metadata/annotations") {
        pod["metadata"]["annotations"] = a.clone();
    }
    pod
}

fn replica_sets(sim: &Sim, d: &Delta, starved: bool) {
    for rs in workloads_to_sync(sim, d, &apps("replicasets"), "ReplicaSet", starved) {
        let desired = int_at(&rs.value(), "/spec/replicas", 1);
        let uid = &*rs.meta.uid;
        let pods = sim.store.owned_by(pods_key(), uid);
        let mut active: Vec<&Arc<Stored>> = pods.iter().filter(|p| !p.meta.terminating).collect();
        let have = active.len() as i64;
        let template = rs.value().pointer("/spec/template").cloned().unwrap_or(json!({}));
        // Like the real controller's burst limit: at most 500 new pods per pass.
        for i in have..desired.min(have + 500) {
            if !replicas::may_create_pod(sim) {
                break;
            }
            let seed = sim.store.current_rv().wrapping_add(i as u64).wrapping_mul(31);
            let name = format!("{}-{}", rs.name(), name_suffix(seed ^ uid.len() as u64 ^ (i as u64) << 40));
            let _ = sim.store.create(pods_key(), new_pod(&rs.value(), "ReplicaSet", &name, &template), false);
        }
        if have > desired {
            // Scale down: not-ready and unscheduled pods go first, like the real controller.
            active.sort_by_key(|p| (p.meta.ready, !p.meta.node_name.is_empty()));
            for p in active.iter().take((have - desired) as usize) {
                let _ = pdb::delete_pod(sim, p.namespace(), p.name(), None, false);
            }
        }
    }
}

fn stateful_sets(sim: &Sim, d: &Delta, starved: bool) {
    for sts in workloads_to_sync(sim, d, &apps("statefulsets"), "StatefulSet", starved) {
        let ns = sts.namespace().to_string();
        let desired = int_at(&sts.value(), "/spec/replicas", 1);
        let template = sts.value().pointer("/spec/template").cloned().unwrap_or(json!({}));
        // A burst limit as for replica sets: at most 500 new pods per pass.
        let mut created = 0;
        for i in 0..desired {
            if created >= 500 {
                break;
            }
            let name = format!("{}-{i}", sts.name());
            if sim.store.get(pods_key(), &ns, &name).is_none() {
                if !replicas::may_create_pod(sim) {
                    break;
                }
                created += 1;
                let mut pod = new_pod(&sts.value(), "StatefulSet", &name, &template);
                pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] = json!(name);
                volumes::add_to_pod(&mut pod, volumes::ensure_claims(&sim.store, &sts.value(), &ns, &name));
                let _ = sim.store.create(pods_key(), pod, false);
            }
        }
        for p in sim.store.owned_by(pods_key(), &sts.meta.uid) {
            let ordinal = p.name().rsplit_once('-').and_then(|(_, o)| o.parse::<i64>().ok());
            if ordinal.is_some_and(|o| o >= desired) && !p.meta.terminating {
                let _ = pdb::delete_pod(sim, &ns, p.name(), None, false);
            }
        }
    }
}

/// A DaemonSet that changed, or whose pods did, is synced on every node; the others only on the
/// nodes that changed (a DaemonSet's wish for a node depends on that node and its pods there).
fn daemon_sets(sim: &Sim, d: &Delta, starved: bool) {
    let key = apps("daemonsets");
    if sim.store.count(&key) == 0 {
        return;
    }
    let dirty: HashSet<Key> = d.changed_beyond_status(&key).cloned().chain(d.pod_owners_of("DaemonSet")).collect();
    let changed_nodes: Vec<String> = d.nodes().map(str::to_string).collect();
    if !d.full && !starved && dirty.is_empty() && changed_nodes.is_empty() {
        return;
    }
    let mut all_nodes: Option<Vec<Arc<Stored>>> = None;
    for ds in sim.store.all(&key) {
        let whole = d.full || starved || dirty.contains(&(ds.namespace().to_string(), ds.name().to_string()));
        let uid = &*ds.meta.uid;
        let (nodes, owned): (Vec<Arc<Stored>>, Vec<Arc<Stored>>) = if whole {
            let nodes = all_nodes.get_or_insert_with(|| sim.store.all(&nodes_key())).clone();
            (nodes, sim.store.owned_by(pods_key(), uid))
        } else {
            let nodes = changed_nodes.iter().filter_map(|n| sim.store.get(&nodes_key(), "", n)).collect();
            let owned = changed_nodes
                .iter()
                .flat_map(|n| sim.store.pods_on_node(n))
                .filter(|p| p.owner().is_some_and(|(_, _, u)| u == uid))
                .collect();
            (nodes, owned)
        };
        let template = ds.value().pointer("/spec/template").cloned().unwrap_or(json!({}));
        let rules = placement::PodRules::of(ds.namespace(), &template, (0.0, 0.0));
        let mut wanted = HashSet::new();
        for node in &nodes {
            if !rules.daemon_fits(&placement::NodeInfo::of(&node.value())) {
                continue;
            }
            wanted.insert(node.name().to_string());
            if owned.iter().any(|p| &*p.meta.node_name == node.name() && !p.meta.terminating) {
                continue;
            }
            let seed = (node.name().len() as u64) << 32 ^ sim.store.current_rv();
            let name = format!(
                "{}-{}",
                ds.name(),
                name_suffix(
                    seed ^ u64::from(
                        node.name().bytes().fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)))
                    )
                )
            );
            if !replicas::may_create_pod(sim) {
                continue;
            }
            let mut pod = new_pod(&ds.value(), "DaemonSet", &name, &template);
            pod["spec"]["nodeName"] = json!(node.name());
            let _ = sim.store.create(pods_key(), pod, false);
        }
        for p in owned.iter().filter(|p| !wanted.contains(&*p.meta.node_name) && !p.meta.terminating) {
            let _ = pdb::delete_pod(sim, p.namespace(), p.name(), Some(0), false);
        }
    }
}

fn jobs(sim: &Sim, timers: &mut Timers, d: &Delta) {
    let key = StorageKey::new("batch", "jobs");
    let mut dirty = workloads_to_sync(sim, d, &key, "Job", timers.starved);
    if !d.full {
        for gone in &d.deleted {
            timers.job_done_at.remove(&*gone.meta.uid);
        }
        let now = Instant::now();
        let due: Vec<Key> = timers.job_done_at.values().filter(|t| t.at <= now).map(|t| t.key.clone()).collect();
        let seen: HashSet<Key> = dirty.iter().map(|j| (j.namespace().to_string(), j.name().to_string())).collect();
        dirty.extend(existing(sim, &key, due.into_iter().filter(|k| !seen.contains(k))));
    }
    for job in dirty {
        let uid = &*job.meta.uid;
        let owned = sim.store.owned_by(pods_key(), uid);
        // A Job remembers its completions (tracked with finalizers since 1.26): deleting a
        // finished pod, as a drain does, must not run the Job again.
        let succeeded = (owned.iter().filter(|p| &*p.meta.phase == "Succeeded").count() as i64).max(int_at(
            &job.value(),
            "/status/succeeded",
            0,
        ));
        let active =
            owned.iter().filter(|p| !matches!(&*p.meta.phase, "Succeeded" | "Failed") && !p.meta.terminating).count()
                as i64;
        let completions = int_at(&job.value(), "/spec/completions", 1);
        if succeeded + active < completions && active == 0 && replicas::may_create_pod(sim) {
            let template = job.value().pointer("/spec/template").cloned().unwrap_or(json!({}));
            let name = format!("{}-{}", job.name(), name_suffix(sim.store.current_rv()));
            let _ = sim.store.create(pods_key(), new_pod(&job.value(), "Job", &name, &template), false);
        }
        if int_at(&job.value(), "/status/succeeded", -1) != succeeded
            || int_at(&job.value(), "/status/active", -1) != active
        {
            let _ = sim.store.mutate(&key, job.namespace(), job.name(), None, false, |j| {
                j["status"]["succeeded"] = json!(succeeded);
                j["status"]["active"] = json!(active);
                Ok(())
            });
        }
        for p in owned.iter().filter(|p| &*p.meta.phase == "Running") {
            let uid = p.meta.uid.to_string();
            let run = p
                .value()
                .pointer("/metadata/annotations/sim.k8s-upgrade.dev~1run-seconds")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or(5.0);
            let at = timers
                .job_done_at
                .entry(uid.clone())
                .or_insert_with(|| Due {
                    at: Instant::now() + sim.scaled(run),
                    key: (job.namespace().to_string(), job.name().to_string()),
                })
                .at;
            if at <= Instant::now() {
                timers.job_done_at.remove(&uid);
                let _ = sim.store.mutate(pods_key(), p.namespace(), p.name(), None, false, |pod| {
                    pod["status"]["phase"] = json!("Succeeded");
                    if let Some(cs) = pod.pointer_mut("/status/containerStatuses").and_then(Value::as_array_mut) {
                        for c in cs {
                            c["ready"] = json!(false);
                            c["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now_rfc3339()}});
                        }
                    }
                    let mut conds: Vec<Value> = pod.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
                    set_pod_condition(&mut conds, "Ready", false, "PodCompleted", "");
                    pod["status"]["conditions"] = Value::Array(conds);
                    Ok(())
                });
            }
        }
    }
}

/// The resource of a controller kind whose dependents the collector deletes.
fn controller_resource(kind: &str) -> Option<StorageKey> {
    match kind {
        "ReplicaSet" => Some(apps("replicasets")),
        "Deployment" => Some(apps("deployments")),
        "StatefulSet" => Some(apps("statefulsets")),
        "DaemonSet" => Some(apps("daemonsets")),
        "Job" => Some(StorageKey::new("batch", "jobs")),
        _ => None,
    }
}

/// Deletes pods and replica sets whose controller is gone: on a full pass by looking at all of
/// them, else the dependents of controllers just deleted and the objects that changed.
fn garbage_collect(sim: &Sim, d: &Delta) {
    if d.full {
        return garbage_collect_all(sim);
    }
    let orphan = |o: &Stored| -> bool {
        let Some((kind, name, uid)) = o.owner() else { return false };
        let Some(key) = controller_resource(kind) else { return false };
        sim.store.get(&key, o.namespace(), name).is_none_or(|c| &*c.meta.uid != uid)
    };
    let mut orphans: Vec<(StorageKey, Arc<Stored>)> = Vec::new();
    for gone in &d.deleted {
        for key in [apps("replicasets"), pods_key().clone()] {
            orphans.extend(sim.store.owned_by(&key, &gone.meta.uid).into_iter().map(|o| (key.clone(), o)));
        }
    }
    for key in [apps("replicasets"), pods_key().clone()] {
        for (ns, name) in d.changed_beyond_status(&key) {
            if let Some(o) = sim.store.get(&key, ns, name) {
                orphans.push((key.clone(), o));
            }
        }
    }
    for (key, o) in orphans {
        let collectable = match (key == *pods_key(), o.owner()) {
            (false, Some(("Deployment", _, _))) => true,
            (true, Some((kind, _, _))) => matches!(kind, "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job"),
            _ => false,
        };
        if !collectable || !orphan(&o) {
            continue;
        }
        if key == *pods_key() {
            if !o.meta.terminating {
                let _ = pdb::delete_pod(sim, o.namespace(), o.name(), None, false);
            }
        } else {
            let _ = sim.store.delete(&key, o.namespace(), o.name(), false);
        }
    }
}

fn garbage_collect_all(sim: &Sim) {
    let mut live: HashSet<String> = HashSet::new();
    for key in [
        apps("replicasets"),
        apps("deployments"),
        apps("statefulsets"),
        apps("daemonsets"),
        StorageKey::new("batch", "jobs"),
        nodes_key(),
    ] {
        for o in sim.store.all(&key) {
            live.insert(o.meta.uid.to_string());
        }
    }
    for rs in sim.store.all(&apps("replicasets")) {
        if let Some(("Deployment", _, uid)) = rs.owner()
            && !live.contains(uid)
        {
            let _ = sim.store.delete(&apps("replicasets"), rs.namespace(), rs.name(), false);
        }
    }
    for p in sim.store.all(pods_key()) {
        if let Some((kind, _, uid)) = p.owner()
            && matches!(kind, "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job")
            && !live.contains(uid)
            && !p.meta.terminating
        {
            let _ = pdb::delete_pod(sim, p.namespace(), p.name(), None, false);
        }
    }
}

/// The scheduler's cache of nodes, kept between passes and refreshed from what changed.
#[derive(Default, Clone)]
struct SchedulerState {
    /// Nodes in name order, as read (their room is set from the pods' load on each pass).
    nodes: Vec<placement::NodeInfo>,
    /// Allocatable pod slots, CPU and memory of each node.
    allocatable: Vec<(f64, f64, f64)>,
    /// kube-scheduler's `nextStartNodeIndex`: where the next search for feasible nodes starts.
    next_start: usize,
}

impl SchedulerState {
    fn read(node: &Value) -> (placement::NodeInfo, (f64, f64, f64)) {
        let info = placement::NodeInfo::for_scheduler(node);
        let room = (info.pods, info.cpu, info.mem);
        (info, room)
    }

    /// Brings the cache up to date: rereads changed nodes, or all of them when nodes came or went.
    fn refresh(&mut self, sim: &Sim, d: &Delta) {
        let mut rebuild = d.full || self.nodes.is_empty();
        if !rebuild {
            for name in d.nodes() {
                match (
                    self.nodes.binary_search_by(|n| n.name.as_str().cmp(name)),
                    sim.store.get(&nodes_key(), "", name),
                ) {
                    (Ok(i), Some(node)) => (self.nodes[i], self.allocatable[i]) = Self::read(&node.value()),
                    (Err(_), None) => {}
                    _ => rebuild = true,
                }
            }
        }
        if rebuild {
            (self.nodes, self.allocatable) = sim.store.all(&nodes_key()).iter().map(|n| Self::read(&n.value())).unzip();
        }
        let loads = sim.store.node_loads();
        for (info, &(pods, cpu, mem)) in self.nodes.iter_mut().zip(&self.allocatable) {
            let load = loads.get(info.name.as_str()).copied().unwrap_or_default();
            let (used_cpu, used_mem) = load.requests();
            info.pods = pods - f64::from(load.pods);
            info.cpu = cpu - used_cpu;
            info.mem = mem - used_mem;
        }
    }
}

/// kube-scheduler's `numFeasibleNodesToFind` at the default `percentageOfNodesToScore` (adaptive):
/// every node below 100; above, 50% less 1% per 125 nodes, at least 5% and at least 100 nodes.
/// The search for a pod's node stops once it found that many feasible ones.
fn feasible_nodes_to_find(all: usize) -> usize {
    const MIN_FEASIBLE_NODES: usize = 100;
    const MIN_FEASIBLE_PERCENT: usize = 5;
    if all < MIN_FEASIBLE_NODES {
        return all;
    }
    let percent = 50usize.saturating_sub(all / 125).max(MIN_FEASIBLE_PERCENT);
    (all * percent / 100).max(MIN_FEASIBLE_NODES)
}

/// Binds pending pods as kube-scheduler does: to a node that passes every filter of
/// [`placement`] (the one with the most free pod slots among those whose PreferNoSchedule taints
/// the pod tolerates); a pod no node takes gets kube-scheduler's Unschedulable message. Like
/// kube-scheduler, it looks at nodes from where the last search stopped and stops once it found
/// [`feasible_nodes_to_find`] feasible ones; and a pod it could not place is tried again only
/// once something changed that could make room: a node, or a pod that left.
fn schedule(sim: &Sim, state: &mut SchedulerState, d: &Delta) {
    let retry_all = d.full || d.pods_left || d.nodes().next().is_some();
    let changed: HashSet<&Key> = d.changed(pods_key()).collect();
    let pending: Vec<Arc<Stored>> = sim
        .store
        .unbound_pods()
        .into_iter()
        .filter(|p| !p.meta.terminating && &*p.meta.phase != "Succeeded")
        .filter(|p| retry_all || changed.contains(&(p.namespace().to_string(), p.name().to_string())))
        .collect();
    state.refresh(sim, d);
    if pending.is_empty() {
        return;
    }
    let mut snapshot = placement::Snapshot::new(&sim.store, std::mem::take(&mut state.nodes));
    snapshot.set_anti_holders(sim.store.anti_affinity_pods().iter());
    let all = snapshot.nodes.len();
    let to_find = feasible_nodes_to_find(all);
    for pod in &pending {
        let value = pod.value();
        let rules = placement::PodRules::of(pod.namespace(), &value, pod.meta.requests);
        let prep = snapshot.prepare(&rules);
        let mut rejections = Vec::new();
        let mut feasible = Vec::new();
        let mut processed = 0;
        for k in 0..all {
            let i = (state.next_start + k) % all;
            processed += 1;
            match snapshot.filter(&rules, &prep, i) {
                Err(r) => rejections.push(r),
                Ok(()) => {
                    feasible.push(i);
                    if feasible.len() >= to_find {
                        break;
                    }
                }
            }
        }
        if all > 0 {
            state.next_start = (state.next_start + processed) % all;
        }
        // The cluster's default spread counts the pods of the same controller.
        let siblings: Option<Vec<usize>> = match pod.owner() {
            Some(("ReplicaSet" | "StatefulSet" | "ReplicationController", _, uid)) if feasible.len() > 1 => Some(
                sim.store
                    .owned_by(pods_key(), uid)
                    .iter()
                    .filter(|p| !p.meta.node_name.is_empty() && !p.meta.terminating)
                    .filter_map(|p| snapshot.index_of(&p.meta.node_name))
                    .collect(),
            ),
            _ => None,
        };
        let best = snapshot.best(&rules, siblings.as_deref(), &feasible);
        match best {
            Some(i) => {
                snapshot.bind(&rules, i);
                if sim.stats.any_unschedulable() {
                    sim.stats.placed(&format!("{}/{}", pod.namespace(), pod.name()));
                }
                let node = snapshot.nodes[i].name.clone();
                let _ = sim.store.mutate(pods_key(), pod.namespace(), pod.name(), None, false, |p| {
                    p["spec"]["nodeName"] = json!(node);
                    let mut conds: Vec<Value> =
                        p.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
                    set_pod_condition(&mut conds, "PodScheduled", true, "", "");
                    p["status"]["conditions"] = Value::Array(conds);
                    Ok(())
                });
            }
            None => {
                let msg = placement::fit_error(snapshot.nodes.len(), &rejections);
                if str_at(&value, "/status/conditions/0/message") != msg {
                    sim.stats.unschedulable(&format!("{}/{}", pod.namespace(), pod.name()), &workload_of(pod), &msg);
                    let _ = sim.store.mutate(pods_key(), pod.namespace(), pod.name(), None, false, |p| {
                        p["status"]["phase"] = json!("Pending");
                        p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg, "lastTransitionTime": now_rfc3339()}]);
                        Ok(())
                    });
                }
            }
        }
    }
    state.nodes = std::mem::take(&mut snapshot.nodes);
}

/// `Kind namespace/name` of the workload a pod belongs to (a ReplicaSet's pods to its
/// Deployment, named as the Deployment controller names its ReplicaSets).
fn workload_of(pod: &Stored) -> String {
    match pod.owner() {
        Some(("ReplicaSet", rs, _)) => {
            format!("Deployment {}/{}", pod.namespace(), rs.rsplit_once('-').map_or(rs, |(d, _)| d))
        }
        Some((kind, name, _)) => format!("{kind} {}/{name}", pod.namespace()),
        None => format!("Pod {}/{}", pod.namespace(), pod.name()),
    }
}

fn set_pod_running(p: &mut Value, ready: bool, node_ip: &str) {
    p["status"]["phase"] = json!("Running");
    if p.pointer("/status/startTime").is_none() {
        p["status"]["startTime"] = json!(now_rfc3339());
    }
    if p.pointer("/status/podIP").is_none() {
        let n = p
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map_or(0, |u| u.bytes().fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b))));
        let ip = format!("10.{}.{}.{}", 64 + (n >> 16) % 64, (n >> 8) % 256, n % 254 + 1);
        p["status"]["podIPs"] = json!([{"ip": ip}]);
        p["status"]["podIP"] = json!(ip);
        p["status"]["hostIPs"] = json!([{"ip": node_ip}]);
        p["status"]["hostIP"] = json!(node_ip);
    }
    let never_ready =
        p.pointer("/metadata/annotations/sim.k8s-upgrade.dev~1never-ready").and_then(Value::as_str) == Some("true");
    let ready = ready && !never_ready;
    let mut conds: Vec<Value> = p.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    set_pod_condition(&mut conds, "PodScheduled", true, "", "");
    set_pod_condition(&mut conds, "Initialized", true, "", "");
    set_pod_condition(&mut conds, "ContainersReady", ready, if ready { "" } else { "ContainersNotReady" }, "");
    set_pod_condition(&mut conds, "Ready", ready, if ready { "" } else { "ContainersNotReady" }, "");
    p["status"]["conditions"] = Value::Array(conds);
    let statuses: Vec<Value> = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| json!({"name": c["name"], "image": c["image"], "ready": ready, "restartCount": 0, "started": true, "state": {"running": {"startedAt": now_rfc3339()}}}))
                .collect()
        })
        .unwrap_or_default();
    p["status"]["containerStatuses"] = Value::Array(statuses);
}

/// The first container image of a pod that no node can pull (a fault).
fn unpullable_image(pod: &Stored, faults: &super::faults::Faults) -> Option<String> {
    // Without the fault no pod is parsed.
    if faults.unpullable_images.is_empty() {
        return None;
    }
    pod.value()
        .pointer("/spec/containers")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .find(|i| faults.unpullable(i))
        .map(str::to_string)
}

/// The kubelet's report for a pod whose image cannot be pulled: Pending, its containers
/// waiting in `ImagePullBackOff` (written once).
fn set_pull_backoff(sim: &Sim, pod: &Stored, image: &str) {
    let waiting = pod
        .value()
        .pointer("/status/containerStatuses/0/state/waiting/reason")
        .and_then(Value::as_str)
        .is_some_and(|r| r == "ImagePullBackOff");
    if waiting {
        return;
    }
    let message = format!(
        "Back-off pulling image \"{image}\": ErrImagePull: failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": not found"
    );
    let _ = sim.store.mutate(pods_key(), pod.namespace(), pod.name(), None, false, |p| {
        let statuses: Vec<Value> = p
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false, "restartCount": 0, "started": false, "state": {"waiting": {"reason": "ImagePullBackOff", "message": message}}}))
                    .collect()
            })
            .unwrap_or_default();
        p["status"]["containerStatuses"] = Value::Array(statuses);
        let mut conds: Vec<Value> = p.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        set_pod_condition(&mut conds, "PodScheduled", true, "", "");
        let names: Vec<&str> = statuses_names(p);
        set_pod_condition(&mut conds, "Ready", false, "ContainersNotReady", &format!("containers with unready status: [{}]", names.join(" ")));
        p["status"]["conditions"] = Value::Array(conds);
        Ok(())
    });
}

fn statuses_names(p: &Value) -> Vec<&str> {
    p.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).collect())
        .unwrap_or_default()
}

/// Kubelet work on pods: start bound pods, follow node readiness, finish graceful deletions.
/// The pods the kubelets look at: all on a full pass, else the pods that changed, those whose
/// timer fell due, and those on nodes that changed or whose volumes did.
fn pods_for_kubelets(sim: &Sim, timers: &mut Timers, d: &Delta, now: Instant) -> Vec<Arc<Stored>> {
    if d.full {
        return sim.store.all(pods_key());
    }
    for gone in &d.deleted {
        timers.pod_ready_at.remove(&*gone.meta.uid);
        timers.pod_gone_at.remove(&*gone.meta.uid);
    }
    let mut keys: std::collections::BTreeSet<Key> = d.changed(pods_key()).cloned().collect();
    for due in timers.pod_ready_at.values().chain(timers.pod_gone_at.values()).filter(|t| t.at <= now) {
        keys.insert(due.key.clone());
    }
    let mut pods: Vec<Arc<Stored>> = keys.iter().filter_map(|(ns, n)| sim.store.get(pods_key(), ns, n)).collect();
    let nodes: std::collections::BTreeSet<&str> =
        d.nodes().chain(d.attachment_nodes.iter().map(String::as_str)).collect();
    for node in nodes {
        pods.extend(
            sim.store
                .pods_on_node(node)
                .into_iter()
                .filter(|p| !keys.contains(&(p.namespace().to_string(), p.name().to_string()))),
        );
    }
    pods
}

fn pod_lifecycle(sim: &Sim, timers: &mut Timers, d: &Delta) {
    let now = Instant::now();
    let faults = sim.faults();
    let mut nodes: HashMap<String, Option<Arc<Stored>>> = HashMap::new();
    let mut alive: HashSet<String> = HashSet::new();
    for pod in pods_for_kubelets(sim, timers, d, now) {
        let node = nodes
            .entry(pod.meta.node_name.to_string())
            .or_insert_with(|| sim.store.get(&nodes_key(), "", &pod.meta.node_name))
            .clone();
        let uid = pod.meta.uid.to_string();
        alive.insert(uid.clone());
        if pod.meta.terminating {
            // A kubelet that cannot be reached never confirms the pod stopped.
            let cut_off = node.as_ref().is_some_and(|n| unreachable(sim, &n.value()));
            if faults.pod_stuck(pod.namespace(), pod.name()) || cut_off {
                timers.pod_gone_at.remove(&uid);
                continue;
            }
            // A pod at the API's default grace period (30 s, which every pod created through
            // the API gets when it sets none) stops after the simulator's default, as most
            // processes exit on SIGTERM well before their grace runs out; one that set another
            // waits that long. None waits longer than the cap. (Pods built with the scenario
            // and pods their controllers create later are treated alike.)
            let given = pod.meta.deletion_grace_seconds.unwrap_or(30) as f64;
            let grace = if given != 30.0 { given } else { sim.timings.default_grace_seconds }
                .min(sim.timings.max_grace_seconds);
            let at = timers
                .pod_gone_at
                .entry(uid.clone())
                .or_insert_with(|| Due { at: now + sim.scaled(grace), key: pod_key(&pod) })
                .at;
            if at <= now {
                timers.pod_gone_at.remove(&uid);
                let _ = sim.store.delete(pods_key(), pod.namespace(), pod.name(), false);
            }
            continue;
        }
        let Some(node) = node else { continue };
        let phase = &*pod.meta.phase;
        if matches!(phase, "Succeeded" | "Failed") {
            continue;
        }
        let node_up = node_ready(&node.value());
        let node_ip = node
            .value()
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
            .map(|x| str_at(x, "/address").to_string())
            .unwrap_or_default();
        if phase != "Running" {
            // The kubelet mounts before it starts containers: a block volume still attached to
            // the node the pod left keeps it waiting here.
            if !node_up || !volumes::attached_for(sim, &pod) {
                timers.pod_ready_at.remove(&uid);
                continue;
            }
            if let Some(image) = unpullable_image(&pod, &faults) {
                timers.pod_ready_at.remove(&uid);
                set_pull_backoff(sim, &pod, &image);
                continue;
            }
            let at = timers
                .pod_ready_at
                .entry(uid.clone())
                .or_insert_with(|| Due { at: now + sim.scaled(sim.timings.pod_start_seconds), key: pod_key(&pod) })
                .at;
            if at <= now {
                timers.pod_ready_at.remove(&uid);
                let _ = sim.store.mutate(pods_key(), pod.namespace(), pod.name(), None, false, |p| {
                    set_pod_running(p, true, &node_ip);
                    Ok(())
                });
            }
            continue;
        }
        // Running pods follow their node's readiness (a restarting kubelet reports none ready).
        let never_ready = pod.meta.never_ready;
        if pod.meta.ready != (node_up && !never_ready) {
            let _ = sim.store.mutate(pods_key(), pod.namespace(), pod.name(), None, false, |p| {
                set_pod_running(p, node_up, &node_ip);
                Ok(())
            });
        }
    }
    if d.full {
        timers.pod_ready_at.retain(|k, _| alive.contains(k));
        timers.pod_gone_at.retain(|k, _| alive.contains(k));
        timers.job_done_at.retain(|k, _| alive.contains(k));
    }
}

fn pod_key(pod: &Stored) -> Key {
    (pod.namespace().to_string(), pod.name().to_string())
}

/// Status of the workloads that changed or whose pods did (all on a full pass).
fn workload_status(sim: &Sim, d: &Delta, hashes: &mut TemplateHashes) {
    let count = |uid: &str| -> (i64, i64) {
        let c = sim.store.pod_counts(uid);
        (i64::from(c.active), i64::from(c.ready))
    };
    let dirty = |key: &StorageKey, kind: &str| -> Vec<Arc<Stored>> {
        if d.full {
            sim.store.all(key)
        } else {
            existing(sim, key, d.changed_beyond_status(key).cloned().chain(d.pod_owners_of(kind)))
        }
    };
    let rs_all = dirty(&apps("replicasets"), "ReplicaSet");
    let deployments = deployments_to_sync(sim, d);
    for rs in &rs_all {
        let (n, ready) = count(&rs.meta.uid);
        update_status(
            sim,
            &apps("replicasets"),
            rs,
            json!({"replicas": n, "readyReplicas": ready, "availableReplicas": ready, "fullyLabeledReplicas": n, "observedGeneration": rs.value().pointer("/metadata/generation")}),
        );
    }
    for dep in deployments {
        let uid = &*dep.meta.uid;
        let tpl_hash = hashes.of(&dep);
        let (mut n, mut ready, mut updated) = (0, 0, 0);
        for rs in &sim.store.owned_by(&apps("replicasets"), uid) {
            let (rn, rr) = count(&rs.meta.uid);
            n += rn;
            ready += rr;
            if rs.meta.label("pod-template-hash").unwrap_or_default() == tpl_hash {
                updated += rn;
            }
        }
        let desired = int_at(&dep.value(), "/spec/replicas", 1);
        update_status(
            sim,
            &apps("deployments"),
            &dep,
            json!({
                "replicas": n, "readyReplicas": ready, "availableReplicas": ready, "updatedReplicas": updated,
                "unavailableReplicas": (desired - ready).max(0), "observedGeneration": dep.value().pointer("/metadata/generation"),
            }),
        );
    }
    for sts in dirty(&apps("statefulsets"), "StatefulSet") {
        let (n, ready) = count(&sts.meta.uid);
        update_status(
            sim,
            &apps("statefulsets"),
            &sts,
            json!({"replicas": n, "readyReplicas": ready, "availableReplicas": ready, "currentReplicas": n, "updatedReplicas": n, "observedGeneration": sts.value().pointer("/metadata/generation")}),
        );
    }
    for ds in dirty(&apps("daemonsets"), "DaemonSet") {
        let (n, ready) = count(&ds.meta.uid);
        update_status(
            sim,
            &apps("daemonsets"),
            &ds,
            json!({"desiredNumberScheduled": n, "currentNumberScheduled": n, "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": n, "numberMisscheduled": 0, "observedGeneration": ds.value().pointer("/metadata/generation")}),
        );
    }
}

fn update_status(sim: &Sim, key: &StorageKey, obj: &Stored, status: Value) {
    if obj.value().get("status") != Some(&status) {
        let _ = sim.store.write_status(key, obj.namespace(), obj.name(), status);
    }
}

/// Records each workload's ready replicas for the availability oracle.
fn observe(sim: &Sim, d: &Delta) {
    for (key, kind) in [(apps("deployments"), "Deployment"), (apps("statefulsets"), "StatefulSet")] {
        let changed = if d.full { sim.store.all(&key) } else { existing(sim, &key, d.changed(&key).cloned()) };
        for w in changed {
            let desired = int_at(&w.value(), "/spec/replicas", 1);
            let ready = int_at(&w.value(), "/status/readyReplicas", 0);
            // Only once the workload first came up, so start-up does not count as a dip.
            if w.value().pointer("/status/readyReplicas").is_some() {
                sim.stats.observe_availability(&format!("{}/{kind}/{}", w.namespace(), w.name()), desired, ready);
            }
        }
    }
}

/// `GET /sim/stats`: request accounting plus the cluster's safety facts now.
pub fn stats_document(sim: &Sim) -> Value {
    let mut doc = sim.stats.snapshot();
    let nodes: Vec<Value> = sim
        .store
        .all(&nodes_key())
        .iter()
        .map(|n| {
            json!({
                "name": n.name(),
                "kubeletVersion": str_at(&n.value(), "/status/nodeInfo/kubeletVersion"),
                "ready": node_ready(&n.value()),
                "schedulable": n.value().pointer("/spec/unschedulable") != Some(&json!(true)),
            })
        })
        .collect();
    let mut lost = Vec::new();
    for (key, kind) in [(apps("deployments"), "Deployment"), (apps("statefulsets"), "StatefulSet")] {
        for w in sim.store.all(&key) {
            let desired = int_at(&w.value(), "/spec/replicas", 1);
            let have = int_at(&w.value(), "/status/replicas", 0);
            if have < desired {
                lost.push(json!({"workload": format!("{}/{kind}/{}", w.namespace(), w.name()), "desired": desired, "replicas": have}));
            }
        }
    }
    let pods_lost: i64 = lost.iter().map(|l| int_at(l, "/desired", 0) - int_at(l, "/replicas", 0)).sum();
    doc["nodes"] = Value::Array(nodes);
    doc["podsLost"] = json!(pods_lost);
    doc["podsLostDetails"] = Value::Array(lost);
    doc["serverVersion"] = json!(sim.server_version().to_string());
    doc["podCeiling"] = json!(sim.pod_ceiling.load(std::sync::atomic::Ordering::Relaxed));
    doc["podCeilingReached"] = json!(sim.pod_ceiling_reached.load(std::sync::atomic::Ordering::Relaxed));
    doc["poolUpgrades"] = json!(super::pools::summary(sim));
    doc["objects"] = json!({
        "nodes": sim.store.count(&nodes_key()),
        "pods": sim.store.count(pods_key()),
        "deployments": sim.store.count(&apps("deployments")),
        "poddisruptionbudgets": sim.store.count(pdb::pdb_key()),
    });
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn controllers_stop_creating_pods_at_the_ceiling_and_say_so() {
        let catalog = Arc::new(crate::catalog::Catalog::embedded().unwrap());
        let scenario = super::super::Scenario::load("demo").unwrap();
        let sim = super::super::scenario::build(scenario, catalog, 0.01).unwrap();
        let before = sim.store.count(pods_key());
        sim.pod_ceiling.store(before + 25, Ordering::Relaxed);
        let dep = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "many", "namespace": "default"},
            "spec": {"replicas": 100_000, "selector": {"matchLabels": {"app": "many"}},
                     "template": {"metadata": {"labels": {"app": "many"}}, "spec": {"containers": [{"name": "c", "image": "pause"}]}}},
        });
        sim.store.create(&apps("deployments"), dep, false).unwrap();
        let sts = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"replicas": 100_000, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "pause"}]}}},
        });
        sim.store.create(&apps("statefulsets"), sts, false).unwrap();
        let mut timers = Timers::default();
        for _ in 0..5 {
            reconcile(&sim, &mut timers);
        }
        assert_eq!(sim.store.count(pods_key()), before + 25, "the ceiling holds");
        assert!(sim.pod_ceiling_reached.load(Ordering::Relaxed));
        let stats = stats_document(&sim);
        assert_eq!(stats["podCeilingReached"], true, "{stats}");
        // Room again: creating resumes, in bursts.
        sim.pod_ceiling.store(before + 2_000, Ordering::Relaxed);
        reconcile(&sim, &mut timers);
        let after = sim.store.count(pods_key());
        // Two bursts of 500 (the ReplicaSet's and the StatefulSet's), and whatever else a pass starts.
        assert!(after > before + 25 + 900 && after <= before + 25 + 1_100, "{after}");
        assert!(!sim.pod_ceiling_reached.load(Ordering::Relaxed));
    }

    #[test]
    fn replicas_anti_affinity_leaves_without_a_node_stay_pending_with_the_scheduler_s_message() {
        let text = r#"
name: t
cluster: { version: "1.30.4", distro: kubeadm }
nodePools:
  - { name: cp, count: 1, roles: [control-plane], taints: [{ key: node-role.kubernetes.io/control-plane, effect: NoSchedule }] }
  - { name: w, count: 3, names: [w-a, w-b, w-c], labels: { disk: ssd } }
workloads:
  - kind: Deployment
    name: web
    replicas: 5
    affinity:
      podAntiAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: { matchLabels: { app: web } }
            topologyKey: kubernetes.io/hostname
  - kind: Pod
    name: pinned
    replicas: 2
    nodes: [w-c]
    nodeSelector: { disk: hdd }
"#;
        let catalog = Arc::new(crate::catalog::Catalog::embedded().unwrap());
        let scenario = super::super::Scenario::parse("t.yaml", text).unwrap();
        let sim = super::super::scenario::build(scenario, catalog, 0.01).unwrap();
        let web = |sim: &Sim| -> Vec<Arc<Stored>> {
            sim.store.in_namespace(pods_key(), "default").into_iter().filter(|p| p.name().starts_with("web-")).collect()
        };
        let mut nodes: Vec<String> =
            web(&sim).iter().filter(|p| !p.meta.node_name.is_empty()).map(|p| p.meta.node_name.to_string()).collect();
        nodes.sort();
        assert_eq!(nodes, ["w-a", "w-b", "w-c"], "one replica per worker, none on the control plane");
        // Pinned where the copied cluster ran it, whatever its selector says; the next by the rules.
        let pinned = |n: &str| sim.store.get(pods_key(), "default", n).unwrap();
        assert_eq!(&*pinned("pinned-0").meta.node_name, "w-c");
        assert_eq!(&*pinned("pinned-1").meta.node_name, "");
        schedule(&sim, &mut SchedulerState::default(), &Delta::full());
        let expected = "0/4 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
                        3 node(s) didn't match pod anti-affinity rules. preemption: 0/4 nodes are available: \
                        1 Preemption is not helpful for scheduling, 3 No preemption victims found for incoming pod.";
        let pending: Vec<Arc<Stored>> = web(&sim).into_iter().filter(|p| p.meta.node_name.is_empty()).collect();
        assert_eq!(pending.len(), 2);
        for p in &pending {
            let v = p.value();
            assert_eq!(v["status"]["phase"], "Pending");
            assert_eq!(v["status"]["conditions"][0]["reason"], "Unschedulable");
            assert_eq!(v["status"]["conditions"][0]["message"], expected);
        }
        // Written once: another pass leaves the pods alone.
        let rv = sim.store.current_rv();
        schedule(&sim, &mut SchedulerState::default(), &Delta::full());
        assert_eq!(sim.store.current_rv(), rv);
        // A cordoned worker is counted as unschedulable; freeing a node lets one replica in.
        let _ = sim.store.mutate(&nodes_key(), "", "w-a", None, false, |n| {
            n["spec"]["unschedulable"] = json!(true);
            Ok(())
        });
        let on_b = web(&sim).into_iter().find(|p| &*p.meta.node_name == "w-b").unwrap();
        sim.store.delete(pods_key(), "default", on_b.name(), false).unwrap();
        schedule(&sim, &mut SchedulerState::default(), &Delta::full());
        let placed: Vec<Arc<Stored>> = web(&sim).into_iter().filter(|p| &*p.meta.node_name == "w-b").collect();
        assert_eq!(placed.len(), 1);
        let still = web(&sim).into_iter().find(|p| p.meta.node_name.is_empty()).unwrap();
        let msg = still.value()["status"]["conditions"][0]["message"].as_str().unwrap().to_string();
        assert!(
            msg.starts_with("0/4 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 1 node(s) were unschedulable, 2 node(s) didn't match pod anti-affinity rules."),
            "{msg}"
        );
    }
}
