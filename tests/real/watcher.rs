//! An observer independent of the tool: its own watches on pods and PodDisruptionBudgets, on its
//! own connection and runtime. It counts the moments when an eviction left a budget's healthy pods
//! below the budget's minimum, and the running pods of a controller that disappeared without an
//! eviction (lost).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Config};

#[derive(Debug, Default, Clone)]
pub struct Report {
    /// "budget ns/name: h healthy < m after evicting pod" lines.
    pub violations: Vec<String>,
    /// Pods of a controller that went away without the eviction API (deleted, or lost).
    pub lost: Vec<String>,
    /// Evictions seen (a pod marked DisruptionTarget/EvictionByEvictionAPI, then deleted).
    pub evictions: usize,
    /// Pods of a controller deleted before they ever ran (not a disruption).
    pub unstarted_deleted: usize,
    /// `namespace/name` of the pods the scheduler found no node for, at some point.
    pub unschedulable: BTreeSet<String>,
}

#[derive(Clone)]
struct PodView {
    labels: BTreeMap<String, String>,
    healthy: bool,
    evicted: bool,
    managed: bool,
    terminating: bool,
    uid: String,
    /// When this watcher first saw this pod (this UID).
    seen_at: Instant,
}

/// A pod that appeared within this long of its same-name predecessor's removal, and went within
/// this long of appearing, was removed by kwok's second delete by name (see [`World::gone`]).
const NAME_RACE: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct Budget {
    selector: BTreeMap<String, String>,
    desired_healthy: i32,
}

#[derive(Default)]
struct World {
    pods: HashMap<(String, String), PodView>,
    budgets: HashMap<(String, String), Budget>,
    /// Watches that have finished their first list.
    listed: usize,
    /// When the last pod of each name was removed.
    removed_at: HashMap<(String, String), Instant>,
    report: Report,
}

impl World {
    fn healthy(&self, ns: &str, selector: &BTreeMap<String, String>) -> i32 {
        self.pods
            .iter()
            .filter(|((pns, _), p)| pns == ns && p.healthy && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .count() as i32
    }

    /// `before` stopped counting (it began terminating, or went away): through the eviction API,
    /// and did a budget fall below its minimum? Otherwise, was it a controller's pod (lost)?
    fn gone(&mut self, ns: &str, name: &str, before: &PodView, evicted: bool) {
        self.gone_racing(ns, name, before, evicted, false)
    }

    /// `name_race`: the pod appeared right after its same-name predecessor was removed and went
    /// right after (kwok, unlike a kubelet, deletes by name without a UID precondition; a second
    /// delete of the old pod removed the StatefulSet's replacement, which kwok had already
    /// marked Ready within milliseconds: seen in kwok's log as two "Delete pod" for one name).
    fn gone_racing(&mut self, ns: &str, name: &str, before: &PodView, evicted: bool, name_race: bool) {
        if !evicted {
            // Running work of a controller, gone without the eviction API. A replacement that
            // never ran is not lost work (kwok, unlike a kubelet, deletes by name without a UID
            // precondition, and so may remove a StatefulSet's fresh replacement).
            if before.managed && before.healthy && !name_race {
                self.report.lost.push(format!("{ns}/{name}"));
            } else if before.managed {
                self.report.unstarted_deleted += 1;
            }
            return;
        }
        self.report.evictions += 1;
        if !before.healthy {
            return;
        }
        let budgets: Vec<_> = self
            .budgets
            .iter()
            .filter(|((bns, _), b)| bns == ns && b.selector.iter().all(|(k, v)| before.labels.get(k) == Some(v)))
            .map(|((_, bname), b)| (bname.clone(), b.clone()))
            .collect();
        for (bname, b) in budgets {
            let healthy = self.healthy(ns, &b.selector);
            if healthy < b.desired_healthy {
                self.report.violations.push(format!(
                    "budget {ns}/{bname}: {healthy} healthy < {} after evicting pod {ns}/{name}",
                    b.desired_healthy
                ));
            }
        }
    }
}

fn view(p: &Pod) -> PodView {
    let status = p.status.as_ref();
    let condition =
        |t: &str| status.and_then(|s| s.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == t));
    let ready = condition("Ready").is_some_and(|c| c.status == "True");
    let evicted = condition("DisruptionTarget")
        .is_some_and(|c| c.status == "True" && c.reason.as_deref() == Some("EvictionByEvictionAPI"));
    let owner = p
        .metadata
        .owner_references
        .as_ref()
        .and_then(|os| os.iter().find(|o| o.controller == Some(true)))
        .map(|o| o.kind.as_str());
    let terminating = p.metadata.deletion_timestamp.is_some();
    PodView {
        labels: p.metadata.labels.clone().unwrap_or_default(),
        healthy: ready && !terminating,
        evicted,
        managed: matches!(owner, Some("ReplicaSet" | "StatefulSet")),
        terminating,
        uid: p.metadata.uid.clone().unwrap_or_default(),
        seen_at: Instant::now(),
    }
}

/// The scheduler marked it PodScheduled=False for want of a node.
fn unschedulable(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
    })
}

fn key(meta: &kube::api::ObjectMeta) -> (String, String) {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

pub struct Watcher {
    world: Arc<Mutex<World>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching with the credentials of `kubeconfig`; returns once both watches have listed.
    pub fn start(kubeconfig: &Path) -> Watcher {
        let world = Arc::new(Mutex::new(World::default()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let kubeconfig = kubeconfig.to_path_buf();
        let shared = world.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let config = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
                let config =
                    Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default()).await.unwrap();
                let client = Client::try_from(config).unwrap();
                let pods = watch_pods(Api::<Pod>::all(client.clone()), shared.clone());
                let budgets = watch_budgets(Api::<PodDisruptionBudget>::all(client), shared.clone());
                let ready = async {
                    while shared.lock().unwrap().listed < 2 {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    let _ = ready_tx.send(());
                };
                tokio::select! {
                    _ = pods => {}
                    _ = budgets => {}
                    _ = stop_rx => {}
                    _ = async { ready.await; std::future::pending::<()>().await } => {}
                }
            });
        });
        ready_rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the watcher's first lists");
        Watcher { world, stop: Some(stop_tx), thread: Some(thread) }
    }

    pub fn report(&self) -> Report {
        self.world.lock().unwrap().report.clone()
    }

    pub fn stop(mut self) -> Report {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.report()
    }
}

async fn watch_pods(api: Api<Pod>, world: Arc<Mutex<World>>) {
    // Retried with backoff: the control-plane upgrade restarts the apiserver under the watch.
    let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut relisted: Option<HashSet<(String, String)>> = None;
    while let Some(event) = stream.next().await {
        let Ok(event) = event else { continue };
        let mut w = world.lock().unwrap();
        match event {
            Event::Apply(p) | Event::InitApply(p) => {
                let k = key(&p.metadata);
                if unschedulable(&p) {
                    w.report.unschedulable.insert(format!("{}/{}", k.0, k.1));
                }
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(k.clone());
                }
                let mut now = view(&p);
                // Once approved by the eviction API, always: the disruption controller clears a
                // DisruptionTarget condition no deletion followed within two minutes (an apply
                // killed mid-eviction), and the resumed run's eviction may then delete the pod
                // before the condition is set again.
                if let Some(prev) = w.pods.get(&k) {
                    now.evicted |= prev.evicted;
                    if prev.uid == now.uid {
                        now.seen_at = prev.seen_at;
                    }
                }
                let before = w.pods.insert(k.clone(), now.clone());
                if let Some(before) = before
                    && now.terminating
                    && !before.terminating
                {
                    w.gone(&k.0, &k.1, &before, now.evicted);
                }
            }
            Event::Delete(p) => {
                let k = key(&p.metadata);
                let now = view(&p);
                let predecessor_removed = w.removed_at.insert(k.clone(), Instant::now());
                if let Some(before) = w.pods.remove(&k)
                    && !before.terminating
                {
                    let name_race = before.seen_at.elapsed() < NAME_RACE
                        && predecessor_removed.is_some_and(|t| before.seen_at.saturating_duration_since(t) < NAME_RACE);
                    w.gone_racing(&k.0, &k.1, &before, now.evicted || before.evicted, name_race);
                }
            }
            Event::Init => relisted = Some(HashSet::new()),
            Event::InitDone => {
                // A pod that went away while the watch was down has no Delete event.
                let seen = relisted.take().unwrap_or_default();
                let vanished: Vec<_> = w.pods.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                for k in vanished {
                    if let Some(before) = w.pods.remove(&k)
                        && !before.terminating
                    {
                        let evicted = before.evicted;
                        w.gone(&k.0, &k.1, &before, evicted);
                    }
                }
                w.listed += 1;
            }
        }
    }
}

async fn watch_budgets(api: Api<PodDisruptionBudget>, world: Arc<Mutex<World>>) {
    let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let Ok(event) = event else { continue };
        let mut w = world.lock().unwrap();
        match event {
            Event::Apply(b) | Event::InitApply(b) => {
                let selector = b
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .and_then(|s| s.match_labels.clone())
                    .unwrap_or_default();
                let desired_healthy = b.status.as_ref().map_or(0, |s| s.desired_healthy);
                w.budgets.insert(key(&b.metadata), Budget { selector, desired_healthy });
            }
            Event::Delete(b) => {
                w.budgets.remove(&key(&b.metadata));
            }
            Event::InitDone => w.listed += 1,
            Event::Init => {}
        }
    }
}
