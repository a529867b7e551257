//! The oracle: request accounting and the safety facts tests assert on (`GET /sim/stats`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::Serialize;

/// A pod removed by a plain DELETE while a PodDisruptionBudget allowed no disruption.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub pod: String,
    pub pdb: String,
}

/// The least ready replicas a workload had while the simulator ran.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    pub desired: i64,
    pub min_ready: i64,
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<String, u64>,
    watches_opened: u64,
    sent_429: u64,
    pdb_429: u64,
    injected: BTreeMap<u16, u64>,
    evictions: u64,
    violations: Vec<Violation>,
    /// Nodes that began an upgrade restart with a volume attached that no pod there used.
    restarted_with_volumes: Vec<String>,
    deprecated: BTreeSet<(String, String, String, String, String)>,
    availability: BTreeMap<String, Availability>,
    /// Pods the scheduler found no node for, by `namespace/name` (bounded).
    unschedulable: BTreeMap<String, Unplaced>,
    unauthorized: u64,
    forbidden: u64,
    authorizations: BTreeMap<Decided, u64>,
    /// When the apiserver process that answers `/metrics` started (unix seconds).
    apiserver_started: f64,
}

/// One distinct authorization decision: (user, verb, group, resource[/sub], namespace, path, allowed).
type Decided = (String, String, String, String, String, String, bool);

/// A pod the scheduler could not place: since when (unix seconds), until when it was bound.
#[derive(Debug, Clone)]
struct Unplaced {
    workload: String,
    message: String,
    since: f64,
    until: Option<f64>,
}

/// Unschedulable pods remembered (a bound: a cluster out of room can have thousands).
const MAX_UNPLACED: usize = 10_000;

/// Distinct authorization decisions kept (a bound: clients choose the strings).
const MAX_AUTHORIZATIONS: usize = 20_000;

#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn request(&self, verb: &str, resource: &str) {
        *self.lock().requests.entry(format!("{verb} {resource}")).or_default() += 1;
    }

    /// A node began its upgrade restart while volumes of pods that left it were still attached.
    pub fn restarted_with_volumes(&self, node: &str, volumes: Vec<String>) {
        let mut s = self.lock();
        if s.restarted_with_volumes.len() < 10_000 {
            s.restarted_with_volumes.push(format!("{node}: {}", volumes.join(", ")));
        }
    }

    pub fn unauthorized(&self) {
        self.lock().unauthorized += 1;
    }

    /// Records one authorization decision, so tests can see which permissions a tool used.
    pub fn authorization(&self, user: &str, attrs: &super::rbac::Attributes, allowed: bool) {
        use super::rbac::Attributes;
        // Clients choose these strings: keep each short, so the map stays small in bytes too.
        let clip = |t: &str| t.chars().take(200).collect::<String>();
        let key = match attrs {
            Attributes::Resource { verb, group, resource, subresource, namespace, .. } => {
                let r =
                    if subresource.is_empty() { clip(resource) } else { clip(&format!("{resource}/{subresource}")) };
                (clip(user), clip(verb), clip(group), r, clip(namespace), String::new(), allowed)
            }
            Attributes::NonResource { verb, path } => {
                (clip(user), clip(verb), String::new(), String::new(), String::new(), clip(path), allowed)
            }
        };
        let mut s = self.lock();
        if !allowed {
            s.forbidden += 1;
        }
        if s.authorizations.len() < MAX_AUTHORIZATIONS || s.authorizations.contains_key(&key) {
            *s.authorizations.entry(key).or_default() += 1;
        }
    }

    pub fn watch_opened(&self) {
        self.lock().watches_opened += 1;
    }

    pub fn sent_429(&self, pdb: bool) {
        let mut s = self.lock();
        s.sent_429 += 1;
        if pdb {
            s.pdb_429 += 1;
        }
    }

    pub fn injected(&self, code: u16) {
        *self.lock().injected.entry(code).or_default() += 1;
    }

    pub fn evicted(&self) {
        self.lock().evictions += 1;
    }

    pub fn violation(&self, v: Violation) {
        self.lock().violations.push(v);
    }

    pub fn deprecated_request(&self, group: &str, version: &str, resource: &str, sub: &str, removed: &str) {
        self.lock().deprecated.insert((group.into(), version.into(), resource.into(), sub.into(), removed.into()));
    }

    /// Records a workload's ready replicas; keeps the minimum seen.
    /// The scheduler found no node for a pod (`namespace/name`, of `workload`).
    pub fn unschedulable(&self, pod: &str, workload: &str, message: &str) {
        let mut s = self.lock();
        if s.unschedulable.len() >= MAX_UNPLACED && !s.unschedulable.contains_key(pod) {
            return;
        }
        let e = s.unschedulable.entry(pod.to_string()).or_insert_with(|| Unplaced {
            workload: workload.to_string(),
            message: String::new(),
            since: now_unix(),
            until: None,
        });
        e.message = message.chars().take(1024).collect();
        e.until = None;
    }

    /// A pod recorded as unschedulable was bound to a node.
    pub fn placed(&self, pod: &str) {
        let mut s = self.lock();
        if let Some(e) = s.unschedulable.get_mut(pod)
            && e.until.is_none()
        {
            e.until = Some(now_unix());
        }
    }

    /// Whether any pod was ever recorded as unschedulable (a cheap check before `placed`).
    pub fn any_unschedulable(&self) -> bool {
        !self.lock().unschedulable.is_empty()
    }

    pub fn observe_availability(&self, workload: &str, desired: i64, ready: i64) {
        let mut s = self.lock();
        let e = s.availability.entry(workload.to_string()).or_insert(Availability { desired, min_ready: ready });
        e.desired = desired;
        e.min_ready = e.min_ready.min(ready);
    }

    /// An apiserver restarted (a control-plane upgrade): its gauges start empty, as a new
    /// process's do.
    pub fn apiserver_restarted(&self) {
        let mut s = self.lock();
        s.deprecated.clear();
        s.apiserver_started = now_unix();
    }

    pub fn total_requests(&self) -> u64 {
        self.lock().requests.values().sum()
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.lock().violations.clone()
    }

    /// Prometheus text for `apiserver_requested_deprecated_apis`.
    pub fn metrics_text(&self) -> String {
        let s = self.lock();
        let mut out = String::from(
            "# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested, broken out by API group, version, resource, subresource, and removed_release.\n# TYPE apiserver_requested_deprecated_apis gauge\n",
        );
        for (g, v, r, sub, removed) in &s.deprecated {
            out.push_str(&format!(
                "apiserver_requested_deprecated_apis{{group=\"{g}\",removed_release=\"{removed}\",resource=\"{r}\",subresource=\"{sub}\",version=\"{v}\"}} 1\n"
            ));
        }
        let started = if s.apiserver_started > 0.0 { s.apiserver_started } else { process_start() };
        out.push_str(&format!(
            "# HELP process_start_time_seconds [ALPHA] Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {started:.2}\n"
        ));
        out.push_str("# HELP apiserver_request_total [STABLE] Counter of apiserver requests.\n# TYPE apiserver_request_total counter\n");
        for (k, n) in &s.requests {
            let (verb, resource) = k.split_once(' ').unwrap_or((k, ""));
            out.push_str(&format!(
                "apiserver_request_total{{resource=\"{resource}\",verb=\"{}\"}} {n}\n",
                verb.to_uppercase()
            ));
        }
        out
    }

    pub fn snapshot(&self) -> serde_json::Value {
        let s = self.lock();
        serde_json::json!({
            "requests": s.requests,
            "totalRequests": s.requests.values().sum::<u64>(),
            "watchesOpened": s.watches_opened,
            "sent429": s.sent_429,
            "pdb429": s.pdb_429,
            "injectedErrors": s.injected.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<String, u64>>(),
            "evictions": s.evictions,
            "pdbViolations": s.violations.len(),
            "pdbViolationDetails": s.violations,
            "restartsWithVolumesAttached": s.restarted_with_volumes,
            "deprecatedApisRequested": s.deprecated.iter().map(|(g, v, r, sub, rm)| serde_json::json!({"group": g, "version": v, "resource": r, "subresource": sub, "removedRelease": rm})).collect::<Vec<_>>(),
            "minAvailable": s.availability,
            "unschedulable": s.unschedulable.iter().map(|(pod, u)| serde_json::json!({
                "pod": pod, "workload": u.workload, "message": u.message, "since": u.since, "until": u.until,
            })).collect::<Vec<_>>(),
            "unauthorized": s.unauthorized,
            "forbidden": s.forbidden,
            "authorizations": s.authorizations.iter().map(|((user, verb, group, resource, namespace, path, allowed), n)| serde_json::json!({
                "user": user, "verb": verb, "group": group, "resource": resource, "namespace": namespace, "path": path, "allowed": allowed, "count": n,
            })).collect::<Vec<_>>(),
        })
    }
}

fn now_unix() -> f64 {
    crate::clock::system_now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// When this simulator process started, for an apiserver that never restarted.
fn process_start() -> f64 {
    static START: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *START.get_or_init(now_unix)
}
