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

fn spawn_watch<K>(
    client: &Client,
    kind: Kind,
    trim: fn(&mut K),
    changed: Arc<tokio::sync::watch::Sender<u64>>,
    health: Health,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, mut writer) = store::<K>();
    let api: Api<K> = Api::all(client.clone());
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
        let (nodes, t1) = spawn_watch::<Node>(client, Kind::Nodes, trim_node, tx.clone(), health.clone());
        let (pods, t2) = spawn_watch::<Pod>(client, Kind::Pods, trim_pod, tx.clone(), health.clone());
        let (deployments, t3) =
            spawn_watch::<Deployment>(client, Kind::Deployments, trim_deployment, tx.clone(), health.clone());
        let (statefulsets, t4) =
            spawn_watch::<StatefulSet>(client, Kind::StatefulSets, trim_statefulset, tx.clone(), health.clone());
        let (budgets, t5) =
            spawn_watch::<PodDisruptionBudget>(client, Kind::Budgets, |_| {}, tx.clone(), health.clone());
        let mut tasks = vec![t1, t2, t3, t4, t5];
        let attachments = attachments.then(|| {
            let (store, task) =
                spawn_watch::<VolumeAttachment>(client, Kind::VolumeAttachments, trim_attachment, tx, health.clone());
            tasks.push(task);
            store
        });
        let cache = Cache { nodes, pods, deployments, statefulsets, budgets, attachments, changes, health, tasks };
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

    /// The pods bound to `node`.
    pub fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        self.pods.state_filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
    }

    pub fn budgets_in(&self, namespace: &str) -> Vec<Arc<PodDisruptionBudget>> {
        self.budgets.state_filter(|b| b.namespace().as_deref() == Some(namespace))
    }

    /// Waits for the next change to any store, or `max`, whichever comes first.
    pub async fn next_change(rx: &mut tokio::sync::watch::Receiver<u64>, max: Duration) {
        if let Ok(Err(_)) = tokio::time::timeout(max, rx.changed()).await {
            // Every watch has ended (the run is shutting down): do not spin.
            tokio::time::sleep(max).await;
        }
    }
}
