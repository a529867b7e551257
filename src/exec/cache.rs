//! The run's view of the cluster: one watch each on nodes, pods, Deployments, StatefulSets,
//! PodDisruptionBudgets and VolumeAttachments, kept in reflector stores for the whole run. Gates, the drain's "is this
//! pod gone yet", the wait for a node to come back and the batch planner read these stores
//! instead of listing again, so a roll costs a handful of requests per node and notices a change
//! as soon as the API server sends it.
//!
//! A store is only trusted while its watch is healthy: a watch that failed or is relisting marks
//! its kind stale until the next event, and callers then read the API directly instead
//! ([`Cache::stale`]). Managed fields, and the parts of pods and nodes the run never reads, are
//! dropped on the way in to keep memory down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::runtime::reflector::{ObjectRef, Store, store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::labels::LabelSelector;

/// The kinds the run watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Nodes,
    Pods,
    Deployments,
    StatefulSets,
    Budgets,
    VolumeAttachments,
}

impl Kind {
    /// The resource's plural name, as errors and messages say it.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Nodes => "nodes",
            Kind::Pods => "pods",
            Kind::Deployments => "deployments",
            Kind::StatefulSets => "statefulsets",
            Kind::Budgets => "poddisruptionbudgets",
            Kind::VolumeAttachments => "volumeattachments",
        }
    }
}

/// Kinds whose watch is failing or relisting, with the last error.
type Health = Arc<Mutex<BTreeMap<Kind, String>>>;

/// A lookup kept beside a reflector store by its watch task, so that a question about one node
/// or one namespace reads what concerns it rather than every object of the cluster: on a
/// 150,000-pod cluster, a drain's "which pods are on this node" and "which budgets cover this
/// pod" are asked thousands of times. Entries are the store's own objects: an index follows
/// each event the store applied, and is rebuilt from the store when a relist completes.
trait Index<K>: Default + Send + 'static {
    fn apply(&mut self, o: Arc<K>);
    fn delete(&mut self, o: &K);
    fn rebuild(&mut self, all: Vec<Arc<K>>) {
        *self = Self::default();
        for o in all {
            self.apply(o);
        }
    }
}

type Shared<I> = Arc<Mutex<I>>;

type NamespacedKey = (String, String);

fn namespaced_key<K: Resource>(o: &K) -> NamespacedKey {
    (o.meta().namespace.clone().unwrap_or_default(), o.meta().name.clone().unwrap_or_default())
}

/// Pods by the node they are bound to, and the pods in phase Pending (what a gate compares
/// with its baseline, so that no gate reads every pod of the cluster).
#[derive(Default)]
struct PodsByNode {
    node_of: std::collections::HashMap<NamespacedKey, String>,
    on: std::collections::HashMap<String, BTreeMap<NamespacedKey, Arc<Pod>>>,
    pending: std::collections::BTreeSet<NamespacedKey>,
}

impl Index<Pod> for PodsByNode {
    fn apply(&mut self, p: Arc<Pod>) {
        let key = namespaced_key(&*p);
        if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending") {
            if !self.pending.contains(&key) {
                self.pending.insert(key.clone());
            }
        } else {
            self.pending.remove(&key);
        }
        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            self.unbind(&key);
            return;
        };
        // Most updates leave the pod where it was: only its entry is replaced.
        if self.node_of.get(&key) != Some(&node) {
            self.unbind(&key);
            self.node_of.insert(key.clone(), node.clone());
        }
        self.on.entry(node).or_default().insert(key, p);
    }

    fn delete(&mut self, p: &Pod) {
        let key = namespaced_key(p);
        self.pending.remove(&key);
        self.unbind(&key);
    }
}

impl PodsByNode {
    /// Takes the pod off the node it was on.
    fn unbind(&mut self, key: &NamespacedKey) {
        if let Some(node) = self.node_of.remove(key)
            && let Some(pods) = self.on.get_mut(&node)
        {
            pods.remove(key);
            if pods.is_empty() {
                self.on.remove(&node);
            }
        }
    }
}

/// A budget's selector as the disruption controller reads it: none (a null selector) selects
/// no pod, an empty one every pod of the namespace; one that cannot be parsed, none.
struct CompiledBudget {
    budget: Arc<PodDisruptionBudget>,
    selector: Option<LabelSelector>,
}

impl CompiledBudget {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_some_and(|s| s.matches_map(labels))
    }
}

fn selector_of(b: &PodDisruptionBudget) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector> {
    b.spec.as_ref().and_then(|s| s.selector.as_ref())
}

/// A budget's selector, parsed (see [`CompiledBudget`] for what `None` means).
pub fn budget_selector(b: &PodDisruptionBudget) -> Option<LabelSelector> {
    selector_of(b).and_then(|s| serde_json::to_value(s).ok()).and_then(|v| LabelSelector::from_json(&v).ok())
}

/// Budgets by namespace, with their selectors compiled once (a status update, which every
/// eviction causes, keeps the compiled selector).
#[derive(Default)]
struct BudgetsByNamespace(std::collections::HashMap<String, BTreeMap<String, CompiledBudget>>);

impl Index<PodDisruptionBudget> for BudgetsByNamespace {
    fn apply(&mut self, b: Arc<PodDisruptionBudget>) {
        let (ns, name) = namespaced_key(&*b);
        let in_ns = self.0.entry(ns).or_default();
        match in_ns.get_mut(&name) {
            Some(c) if selector_of(&c.budget) == selector_of(&b) => c.budget = b,
            _ => {
                let selector = budget_selector(&b);
                in_ns.insert(name, CompiledBudget { budget: b, selector });
            }
        }
    }

    fn delete(&mut self, b: &PodDisruptionBudget) {
        let (ns, name) = namespaced_key(b);
        if let Some(in_ns) = self.0.get_mut(&ns) {
            in_ns.remove(&name);
            if in_ns.is_empty() {
                self.0.remove(&ns);
            }
        }
    }
}

/// Signals for tasks that wait on one object each (a drain waits for each evicted pod to go, and
/// for the budget that refused a pod to allow again): an event wakes the waiters of its object
/// only. With one signal for every change, each of a batch's thousands of waiters would wake on
/// every event of the cluster and look its object up again.
#[derive(Default)]
struct ObjectSignals {
    senders: std::collections::HashMap<NamespacedKey, tokio::sync::watch::Sender<u64>>,
    /// Entries after the last sweep of signals nobody waits on any more.
    swept_to: usize,
}

impl ObjectSignals {
    fn subscribe(&mut self, key: NamespacedKey) -> tokio::sync::watch::Receiver<u64> {
        if self.senders.len() >= 2 * self.swept_to.max(64) {
            self.senders.retain(|_, s| s.receiver_count() > 0);
            self.swept_to = self.senders.len();
        }
        self.senders.entry(key).or_insert_with(|| tokio::sync::watch::channel(0).0).subscribe()
    }

    fn notify(&self, key: &NamespacedKey) {
        if let Some(s) = self.senders.get(key) {
            s.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// After a relist: objects may have gone without a delete event.
    fn notify_all(&self) {
        for s in self.senders.values() {
            s.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// An index no one reads.
#[derive(Default)]
struct NoIndex;

impl<K> Index<K> for NoIndex {
    fn apply(&mut self, _: Arc<K>) {}
    fn delete(&mut self, _: &K) {}
    fn rebuild(&mut self, _: Vec<Arc<K>>) {}
}

pub struct Cache {
    pub nodes: Store<Node>,
    pub pods: Store<Pod>,
    pub deployments: Store<Deployment>,
    pub statefulsets: Store<StatefulSet>,
    pub budgets: Store<PodDisruptionBudget>,
    /// Watched only when the run waits for volumes to detach.
    pub attachments: Option<Store<VolumeAttachment>>,
    changes: tokio::sync::watch::Receiver<u64>,
    health: Health,
    pods_by_node: Shared<PodsByNode>,
    budgets_by_namespace: Shared<BudgetsByNamespace>,
    pod_signals: Shared<ObjectSignals>,
    budget_signals: Shared<ObjectSignals>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Keeps only what the run reads from a pod: identity, labels, owners, the annotations a drain
/// heeds (mirror, eviction vetoes, drain order),
/// its node, emptyDir volumes, phase and Ready condition, and container images of kube-system
/// pods (the static control-plane pods). Pods are most of a cluster's objects; the rest of each is dropped.
fn trim_pod(p: &mut Pod) {
    let kube_system = p.metadata.namespace.as_deref() == Some("kube-system");
    if let Some(a) = &mut p.metadata.annotations {
        use crate::k8s::annotations::{DO_NOT_DISRUPT, DRAIN_ORDER, MIRROR_POD, SAFE_TO_EVICT};
        a.retain(|k, _| [MIRROR_POD, SAFE_TO_EVICT, DO_NOT_DISRUPT, DRAIN_ORDER].contains(&k.as_str()));
    }
    if let Some(spec) = &mut p.spec {
        if let Some(v) = &mut spec.volumes {
            // emptyDir for the drain's rules, claims for the wait for volumes to detach.
            v.retain(|v| v.empty_dir.is_some() || v.persistent_volume_claim.is_some());
        }
        spec.init_containers = None;
        if kube_system {
            for c in &mut spec.containers {
                *c = k8s_openapi::api::core::v1::Container {
                    name: std::mem::take(&mut c.name),
                    image: c.image.take(),
                    ..Default::default()
                };
            }
        } else {
            spec.containers.clear();
        }
        spec.affinity = None;
        spec.tolerations = None;
    }
    if let Some(status) = &mut p.status {
        let ready = status.conditions.take().map(|c| c.into_iter().filter(|c| c.type_ == "Ready").collect());
        *status = k8s_openapi::api::core::v1::PodStatus {
            phase: status.phase.take(),
            conditions: ready,
            ..Default::default()
        };
    }
}

/// Node images lists are long and never read here.
fn trim_node(n: &mut Node) {
    if let Some(s) = &mut n.status {
        s.images = None;
    }
}

/// Workloads: the replicas asked for and the status; templates are never read here.
fn trim_deployment(d: &mut Deployment) {
    d.spec = d
        .spec
        .take()
        .map(|s| k8s_openapi::api::apps::v1::DeploymentSpec { replicas: s.replicas, ..Default::default() });
}

fn trim_statefulset(d: &mut StatefulSet) {
    d.spec = d
        .spec
        .take()
        .map(|s| k8s_openapi::api::apps::v1::StatefulSetSpec { replicas: s.replicas, ..Default::default() });
}

/// Attachments: which volume on which node, and whether it is attached.
fn trim_attachment(va: &mut VolumeAttachment) {
    if let Some(s) = &mut va.status {
        s.attachment_metadata = None;
        s.attach_error = None;
        s.detach_error = None;
    }
}

fn spawn_watch<K, I>(
    client: &Client,
    kind: Kind,
    trim: fn(&mut K),
    changed: Arc<tokio::sync::watch::Sender<u64>>,
    health: Health,
    index: Shared<I>,
    signals: Shared<ObjectSignals>,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    I: Index<K>,
{
    let (reader, mut writer) = store::<K>();
    let api: Api<K> = Api::all(client.clone());
    let store = reader.clone();
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(250);
        loop {
            // A watch that failed is started over with a fresh list rather than resumed in
            // place: resuming says nothing when it succeeds, so the store could never be known
            // to be current again; a list ends in InitDone, which says so.
            let stream = watcher(api.clone(), watcher::Config::default()).modify(move |o: &mut K| {
                o.managed_fields_mut().clear();
                trim(o);
            });
            let mut stream = std::pin::pin!(stream);
            let mut failed = None;
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                };
                writer.apply_watcher_event(&event);
                match &event {
                    watcher::Event::Apply(o) => {
                        if let Some(stored) = store.get(&ObjectRef::from_obj(o)) {
                            index.lock().unwrap_or_else(|e| e.into_inner()).apply(stored);
                        }
                        signals.lock().unwrap_or_else(|e| e.into_inner()).notify(&namespaced_key(o));
                    }
                    watcher::Event::Delete(o) => {
                        index.lock().unwrap_or_else(|e| e.into_inner()).delete(o);
                        signals.lock().unwrap_or_else(|e| e.into_inner()).notify(&namespaced_key(o));
                    }
                    watcher::Event::InitDone => {
                        index.lock().unwrap_or_else(|e| e.into_inner()).rebuild(store.state());
                        signals.lock().unwrap_or_else(|e| e.into_inner()).notify_all();
                    }
                    watcher::Event::Init | watcher::Event::InitApply(_) => {}
                }
                let mut h = health.lock().unwrap_or_else(|e| e.into_inner());
                match &event {
                    watcher::Event::Init | watcher::Event::InitApply(_) => {
                        h.entry(kind).or_insert_with(|| "relisting".into());
                    }
                    watcher::Event::InitDone => {
                        h.remove(&kind);
                        backoff = Duration::from_millis(250);
                    }
                    watcher::Event::Apply(_) | watcher::Event::Delete(_) => {}
                }
                drop(h);
                if !matches!(event, watcher::Event::Init | watcher::Event::InitApply(_)) {
                    changed.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
            health
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(kind, failed.unwrap_or_else(|| "the watch ended".into()));
            tokio::time::sleep(backoff + crate::kubeapi::retry::jitter(backoff)).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    });
    (reader, task)
}

impl Cache {
    /// Starts the watches and waits until every store holds a full list. VolumeAttachments are
    /// watched only with `attachments` (the run waits for volumes to detach).
    pub async fn start(client: &Client, timeout: Duration, attachments: bool) -> Result<Cache, String> {
        let (tx, changes) = tokio::sync::watch::channel(0u64);
        let tx = Arc::new(tx);
        let health: Health = Arc::default();
        let pods_by_node: Shared<PodsByNode> = Arc::default();
        let budgets_by_namespace: Shared<BudgetsByNamespace> = Arc::default();
        let pod_signals: Shared<ObjectSignals> = Arc::default();
        let budget_signals: Shared<ObjectSignals> = Arc::default();
        let none = || -> Shared<NoIndex> { Arc::default() };
        let unread = || -> Shared<ObjectSignals> { Arc::default() };
        let (nodes, t1) =
            spawn_watch::<Node, _>(client, Kind::Nodes, trim_node, tx.clone(), health.clone(), none(), unread());
        let (pods, t2) = spawn_watch::<Pod, _>(
            client,
            Kind::Pods,
            trim_pod,
            tx.clone(),
            health.clone(),
            pods_by_node.clone(),
            pod_signals.clone(),
        );
        let (deployments, t3) = spawn_watch::<Deployment, _>(
            client,
            Kind::Deployments,
            trim_deployment,
            tx.clone(),
            health.clone(),
            none(),
            unread(),
        );
        let (statefulsets, t4) = spawn_watch::<StatefulSet, _>(
            client,
            Kind::StatefulSets,
            trim_statefulset,
            tx.clone(),
            health.clone(),
            none(),
            unread(),
        );
        let (budgets, t5) = spawn_watch::<PodDisruptionBudget, _>(
            client,
            Kind::Budgets,
            |_| {},
            tx.clone(),
            health.clone(),
            budgets_by_namespace.clone(),
            budget_signals.clone(),
        );
        let mut tasks = vec![t1, t2, t3, t4, t5];
        let attachments = attachments.then(|| {
            let (store, task) = spawn_watch::<VolumeAttachment, _>(
                client,
                Kind::VolumeAttachments,
                trim_attachment,
                tx,
                health.clone(),
                none(),
                unread(),
            );
            tasks.push(task);
            store
        });
        let cache = Cache {
            nodes,
            pods,
            deployments,
            statefulsets,
            budgets,
            attachments,
            changes,
            health,
            pods_by_node,
            budgets_by_namespace,
            pod_signals,
            budget_signals,
            tasks,
        };
        let ready = async {
            let _ = futures::join!(
                cache.nodes.wait_until_ready(),
                cache.pods.wait_until_ready(),
                cache.deployments.wait_until_ready(),
                cache.statefulsets.wait_until_ready(),
                cache.budgets.wait_until_ready(),
                async {
                    if let Some(a) = &cache.attachments {
                        let _ = a.wait_until_ready().await;
                    }
                },
            );
        };
        if tokio::time::timeout(timeout, ready).await.is_err() {
            let failing = cache.stale();
            return Err(format!(
                "cannot watch the cluster within {timeout:?}{}",
                if failing.is_empty() { String::new() } else { format!(": {}", failing.join("; ")) }
            ));
        }
        Ok(cache)
    }

    /// `kind: last error` for every watch that cannot be trusted right now.
    pub fn stale(&self) -> Vec<String> {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, e)| format!("{}: {e}", k.resource()))
            .collect()
    }

    /// Whether a kind's store cannot be trusted now (a kind not watched never can).
    pub fn is_stale(&self, kind: Kind) -> bool {
        (kind == Kind::VolumeAttachments && self.attachments.is_none())
            || self.health.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&kind)
    }

    /// The VolumeAttachments that name `node` (none when they are not watched).
    pub fn attachments_on(&self, node: &str) -> Vec<Arc<VolumeAttachment>> {
        self.attachments.as_ref().map(|a| a.state_filter(|va| va.spec.node_name == node)).unwrap_or_default()
    }

    /// A receiver that wakes on every change to any store.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.clone()
    }

    pub fn node(&self, name: &str) -> Option<Arc<Node>> {
        self.nodes.get(&ObjectRef::new(name))
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods.get(&ObjectRef::new(name).within(namespace))
    }

    pub fn budget(&self, namespace: &str, name: &str) -> Option<Arc<PodDisruptionBudget>> {
        self.budgets.get(&ObjectRef::new(name).within(namespace))
    }

    /// The pods bound to `node`, by namespace and name.
    pub fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        let index = self.pods_by_node.lock().unwrap_or_else(|e| e.into_inner());
        index.on.get(node).map(|pods| pods.values().cloned().collect()).unwrap_or_default()
    }

    /// The pods in phase Pending, as `ns/name`.
    pub fn pending_pods(&self) -> std::collections::BTreeSet<String> {
        let index = self.pods_by_node.lock().unwrap_or_else(|e| e.into_inner());
        index.pending.iter().map(|(ns, name)| format!("{ns}/{name}")).collect()
    }

    /// The budgets whose selector matches a pod with `labels` in `namespace` (`ns/name`).
    pub fn budget_keys_matching(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<String> {
        let index = self.budgets_by_namespace.lock().unwrap_or_else(|e| e.into_inner());
        index.0.get(namespace).map_or_else(Vec::new, |in_ns| {
            in_ns.iter().filter(|(_, b)| b.matches(labels)).map(|(name, _)| format!("{namespace}/{name}")).collect()
        })
    }

    /// The budgets covering `pod`.
    pub fn budgets_of(&self, pod: &Pod) -> Vec<Arc<PodDisruptionBudget>> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let empty = BTreeMap::new();
        let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let index = self.budgets_by_namespace.lock().unwrap_or_else(|e| e.into_inner());
        index.0.get(ns).map_or_else(Vec::new, |in_ns| {
            in_ns.values().filter(|b| b.matches(labels)).map(|b| b.budget.clone()).collect()
        })
    }

    /// A receiver that wakes on every event about one pod (and after every relist of pods).
    pub fn pod_changes(&self, namespace: &str, name: &str) -> tokio::sync::watch::Receiver<u64> {
        self.pod_signals.lock().unwrap_or_else(|e| e.into_inner()).subscribe((namespace.into(), name.into()))
    }

    /// A receiver that wakes on every event about one budget (and after every relist of budgets).
    pub fn budget_changes(&self, namespace: &str, name: &str) -> tokio::sync::watch::Receiver<u64> {
        self.budget_signals.lock().unwrap_or_else(|e| e.into_inner()).subscribe((namespace.into(), name.into()))
    }

    /// Waits for the next change a receiver signals, or `max`, whichever comes first.
    pub async fn next_change(rx: &mut tokio::sync::watch::Receiver<u64>, max: Duration) {
        if let Ok(Err(_)) = tokio::time::timeout(max, rx.changed()).await {
            // Every watch has ended (the run is shutting down): do not spin.
            tokio::time::sleep(max).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> NamespacedKey {
        ("team".into(), name.into())
    }

    #[test]
    fn an_event_wakes_the_waiters_of_its_object_only() {
        let mut signals = ObjectSignals::default();
        let mut a = signals.subscribe(key("a"));
        let mut a_too = signals.subscribe(key("a"));
        let b = signals.subscribe(key("b"));
        signals.notify(&key("a"));
        assert!(a.has_changed().unwrap() && a_too.has_changed().unwrap(), "both waiters of a are woken");
        assert!(!b.has_changed().unwrap(), "b's waiter sleeps through a's event");
        a.borrow_and_update();
        a_too.borrow_and_update();
        // An object nobody waits on costs nothing and wakes nobody.
        signals.notify(&key("c"));
        assert!(!a.has_changed().unwrap() && !b.has_changed().unwrap());
        // A relist may have dropped objects without a delete event: every waiter looks again.
        signals.notify_all();
        assert!(a.has_changed().unwrap() && a_too.has_changed().unwrap() && b.has_changed().unwrap());
    }

    #[test]
    fn signals_nobody_waits_on_are_swept_as_waiters_come_and_go() {
        let mut signals = ObjectSignals::default();
        for i in 0..10_000 {
            // Each waiter is done (its receiver dropped) before the next one comes.
            drop(signals.subscribe(key(&format!("pod-{i}"))));
        }
        assert!(signals.senders.len() <= 128, "{} signals kept for 10,000 finished waits", signals.senders.len());
        let live = signals.subscribe(key("kept"));
        for i in 0..1_000 {
            drop(signals.subscribe(key(&format!("later-{i}"))));
        }
        assert!(signals.senders.contains_key(&key("kept")), "a signal someone waits on is never swept");
        drop(live);
    }
}
