//! The simulator's object store: every object of every resource, versioned like etcd.
//!
//! Objects are JSON values keyed by storage key (group + resource, independent of the served
//! version), namespace and name, each kept together with its serialized bytes so that large
//! lists are a concatenation rather than a re-serialization. Every write bumps one global
//! `resourceVersion`, is appended to a bounded history (watches resume from it; older resource
//! versions are `410 Gone`) and is broadcast to live watches. Pods are indexed by node for the
//! `spec.nodeName` field selector that drains use. All locking is short and synchronous; no
//! lock is held across an await.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::clock::now_rfc3339;
use super::status::ApiError;

/// Where objects of one resource live, whatever version they are served as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey {
    pub group: Cow<'static, str>,
    pub resource: Cow<'static, str>,
}

impl StorageKey {
    /// Built-in resources are named by literals, which cost no allocation: controllers make
    /// these keys on every pass.
    pub fn new(group: impl Into<Cow<'static, str>>, resource: impl Into<Cow<'static, str>>) -> Self {
        Self { group: group.into(), resource: resource.into() }
    }
    pub fn core(resource: impl Into<Cow<'static, str>>) -> Self {
        Self::new("", resource)
    }
}

/// The controller owner of an object, from `metadata.ownerReferences`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub kind: Box<str>,
    pub name: Box<str>,
    pub uid: Box<str>,
}

/// What controllers, selectors and indexes read, extracted once per write so that scans over
/// 150,000 pods never parse JSON.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub api_version: Box<str>,
    pub namespace: Box<str>,
    pub name: Box<str>,
    pub uid: Box<str>,
    pub rv: u64,
    /// Shared: the controllers' change log and passes hold on to a pod's labels.
    pub labels: Labels,
    pub owner: Option<Owner>,
    /// `spec.nodeName` (pods).
    pub node_name: Box<str>,
    /// `status.phase` (pods).
    pub phase: Box<str>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    /// The simulator's never-ready annotation is set (pods).
    pub never_ready: bool,
    /// Summed container requests: CPU cores and memory bytes (pods).
    pub requests: (f64, f64),
    /// The PersistentVolumeClaims its volumes name (pods).
    pub claims: Box<[Box<str>]>,
    /// It has required pod anti-affinity terms (pods), which the scheduler must honour for
    /// pods placed after it.
    pub required_anti_affinity: bool,
    /// `spec.terminationGracePeriodSeconds` (pods).
    pub grace_seconds: Option<i64>,
    /// `metadata.deletionGracePeriodSeconds`: the grace a deletion gave (pods being deleted).
    pub deletion_grace_seconds: Option<i64>,
    /// `spec.selector`, parsed (PodDisruptionBudgets: every eviction and every disruption
    /// controller pass matches pods against it). `None`: no selector, or one that does not parse.
    pub selector: Option<Arc<crate::labels::LabelSelector>>,
}

pub use crate::quantity::parse_quantity;

fn quantity(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::String(s)) => parse_quantity(s),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn boxed(v: &Value, p: &str) -> Box<str> {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default().into()
}

impl Meta {
    /// Runs on every write: each part of the object is looked up once, not per field.
    fn of(v: &Value) -> Meta {
        let metadata = v.get("metadata");
        let spec = v.get("spec");
        let meta = |f: &str| metadata.and_then(|m| m.get(f));
        let spec_field = |f: &str| spec.and_then(|s| s.get(f));
        let text = |x: Option<&Value>| -> Box<str> { x.and_then(Value::as_str).unwrap_or_default().into() };
        let labels: Labels = meta("labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter().map(|(k, v)| (Box::from(k.as_str()), Box::from(v.as_str().unwrap_or_default()))).collect()
            })
            .unwrap_or_default();
        let owner = meta("ownerReferences")
            .and_then(Value::as_array)
            .and_then(|os| os.iter().find(|o| o["controller"] == true))
            .map(|o| Owner { kind: boxed(o, "/kind"), name: boxed(o, "/name"), uid: boxed(o, "/uid") });
        Meta {
            api_version: text(v.get("apiVersion")),
            namespace: text(meta("namespace")),
            name: text(meta("name")),
            uid: text(meta("uid")),
            rv: meta("resourceVersion").and_then(Value::as_str).and_then(|s| s.parse().ok()).unwrap_or(0),
            labels,
            owner,
            node_name: text(spec_field("nodeName")),
            phase: text(v.get("status").and_then(|s| s.get("phase"))),
            ready: super::controllers::ready_in(v),
            terminating: meta("deletionTimestamp").is_some(),
            never_ready: meta("annotations")
                .and_then(|a| a.get("sim.k8s-upgrade.dev/never-ready"))
                .and_then(Value::as_str)
                == Some("true"),
            requests: spec_field("containers").and_then(Value::as_array).map_or((0.0, 0.0), |cs| {
                cs.iter().fold((0.0, 0.0), |(c, m), ctr| {
                    (
                        c + quantity(ctr.pointer("/resources/requests/cpu")),
                        m + quantity(ctr.pointer("/resources/requests/memory")),
                    )
                })
            }),
            claims: spec_field("volumes")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName").and_then(Value::as_str))
                        .map(Box::from)
                        .collect()
                })
                .unwrap_or_default(),
            required_anti_affinity: spec_field("affinity")
                .and_then(|a| a.pointer("/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution"))
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()),
            grace_seconds: spec_field("terminationGracePeriodSeconds").and_then(Value::as_i64),
            deletion_grace_seconds: meta("deletionGracePeriodSeconds").and_then(Value::as_i64),
            selector: None,
        }
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }
}

/// One stored object: its JSON bytes, its extracted [`Meta`], and for everything but pods the
/// parsed value (pods are parsed on demand: they are most of the objects and most of the memory).
#[derive(Debug)]
pub struct Stored {
    pub json: Bytes,
    pub meta: Meta,
    cached: Option<Value>,
    /// Length of the leading `{"kind":…,"apiVersion":…,` of `json` (0 when absent): list items
    /// are served without it, as an apiserver serves them, by slicing rather than re-encoding.
    type_prefix: usize,
}

/// What an apiserver at its defaults fills into a new pod: the API defaults, and the admission
/// plugins that are on by default (ServiceAccount, Priority, DefaultTolerationSeconds), and the
/// QoS class in status. ServiceAccount tokens are not projected (the simulator issues none).
fn default_pod(pod: &mut Value) {
    let mirror = pod.pointer("/metadata/annotations/kubernetes.io~1config.mirror").is_some();
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let mut defaults = vec![
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("securityContext", json!({})),
        ("schedulerName", json!("default-scheduler")),
        ("enableServiceLinks", json!(true)),
        ("preemptionPolicy", json!("PreemptLowerPriority")),
    ];
    if !spec.contains_key("priorityClassName") {
        defaults.push(("priority", json!(0)));
    }
    for (k, v) in defaults {
        spec.entry(k.to_string()).or_insert(v);
    }
    if !mirror {
        let account = spec.get("serviceAccountName").cloned().unwrap_or_else(|| json!("default"));
        spec.insert("serviceAccountName".into(), account.clone());
        spec.insert("serviceAccount".into(), account);
    }
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(ts) = tolerations.as_array_mut() {
        for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
            let covered = ts.iter().any(|t| {
                (t["key"] == key || (t.get("key").is_none() && t["operator"] == "Exists"))
                    && (t.get("effect").is_none() || t["effect"] == "NoExecute")
            });
            if !covered {
                ts.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    let mut requests_or_limits = false;
    let mut guaranteed = true;
    for list in ["initContainers", "containers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(c) = c.as_object_mut() else { continue };
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let tag = image.rsplit('/').next().and_then(|last| last.split_once(':')).map(|(_, t)| t);
            let pull =
                if image.contains('@') || tag.is_some_and(|t| t != "latest") { "IfNotPresent" } else { "Always" };
            c.entry("imagePullPolicy").or_insert(json!(pull));
            c.entry("terminationMessagePath").or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            let resources = c.entry("resources").or_insert(json!({}));
            let requests = resources.get("requests").and_then(Value::as_object);
            let limits = resources.get("limits").and_then(Value::as_object);
            requests_or_limits |= requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty());
            // Guaranteed: cpu and memory limits everywhere, requests (when given) equal to them.
            guaranteed &= ["cpu", "memory"].iter().all(|r| {
                limits.and_then(|l| l.get(*r)).is_some_and(|l| requests.and_then(|q| q.get(*r)).is_none_or(|q| q == l))
            });
        }
    }
    let qos = if !requests_or_limits {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    };
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    if pod.pointer("/status/phase").is_none() {
        pod["status"]["phase"] = json!("Pending");
    }
    pod["status"]["qosClass"] = json!(qos);
}

/// `value` with `kind` and `apiVersion` as its first two keys, and the byte length of their
/// encoding with the opening brace and the comma after them (0 when either is missing or nothing
/// follows them).
fn type_meta_first(value: Value) -> (Value, usize) {
    let Value::Object(mut map) = value else { return (value, 0) };
    // Objects the store wrote before come back in order (most writes): nothing to move.
    let mut first_two = map.iter();
    if let (Some((k0, kind)), Some((k1, api_version))) = (first_two.next(), first_two.next())
        && k0 == "kind"
        && k1 == "apiVersion"
    {
        let prefix = if map.len() == 2 { 0 } else { format!("{{\"kind\":{kind},\"apiVersion\":{api_version},").len() };
        return (Value::Object(map), prefix);
    }
    // shift_remove keeps the order of the other fields (remove would swap the last one in).
    let (kind, api_version) = match (map.shift_remove("kind"), map.shift_remove("apiVersion")) {
        (Some(kind), Some(api_version)) => (kind, api_version),
        (kind, api_version) => {
            map.extend(kind.map(|k| ("kind".to_string(), k)));
            map.extend(api_version.map(|a| ("apiVersion".to_string(), a)));
            return (Value::Object(map), 0);
        }
    };
    let prefix = if map.is_empty() { 0 } else { format!("{{\"kind\":{kind},\"apiVersion\":{api_version},").len() };
    let mut ordered = serde_json::Map::with_capacity(map.len() + 2);
    ordered.insert("kind".into(), kind);
    ordered.insert("apiVersion".into(), api_version);
    ordered.extend(map);
    (Value::Object(ordered), prefix)
}

impl Stored {
    /// The controller owner as (kind, name, uid).
    pub fn owner(&self) -> Option<(&str, &str, &str)> {
        self.meta.owner.as_ref().map(|o| (&*o.kind, &*o.name, &*o.uid))
    }

    pub(crate) fn new(key: &StorageKey, value: Value) -> Arc<Self> {
        let (value, type_prefix) = type_meta_first(value);
        let json = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        let mut meta = Meta::of(&value);
        if key.resource == "poddisruptionbudgets" {
            meta.selector = value
                .pointer("/spec/selector")
                .map(crate::labels::LabelSelector::from_json)
                .and_then(Result::ok)
                .map(Arc::new);
        }
        let is_pod = key.group.is_empty() && key.resource == "pods";
        Arc::new(Stored { json, meta, cached: (!is_pod).then_some(value), type_prefix })
    }

    /// The object as a list item: without `kind` and `apiVersion`.
    pub fn list_item(&self) -> Bytes {
        if self.type_prefix == 0 {
            return self.json.clone();
        }
        let mut out = Vec::with_capacity(self.json.len() + 1 - self.type_prefix);
        out.push(b'{');
        out.extend_from_slice(&self.json[self.type_prefix..]);
        Bytes::from(out)
    }

    /// The object as JSON (borrowed when cached, parsed otherwise).
    pub fn value(&self) -> Cow<'_, Value> {
        match &self.cached {
            Some(v) => Cow::Borrowed(v),
            None => Cow::Owned(serde_json::from_slice(&self.json).unwrap_or(Value::Null)),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.meta.namespace
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn resource_version(&self) -> u64 {
        self.meta.rv
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub key: StorageKey,
    pub kind: EventType,
    pub object: Arc<Stored>,
    /// The labels the object had before a modification that changed them (the controllers'
    /// incremental passes need both to know which budgets a pod left; watches send `object`).
    pub previous_labels: Option<Labels>,
    /// A controller's status write ([`Store::write_status`]): nothing but `status` changed, so
    /// the controllers that act on spec and ownership have nothing to look at.
    pub status_only: bool,
}

type ObjKey = (String, String);

/// The hasher of the store's maps, looked up several times on every write and read. Keys are
/// names from clients; the simulator serves loopback only, and a seeded fast hash is enough there.
type Hasher = foldhash::fast::RandomState;

/// A hash map with the store's hasher.
pub type FastMap<K, V> = HashMap<K, V, Hasher>;

/// An [`ObjKey`] borrowed from a request: point reads look an object up without building its
/// key. Hashes as the owned key does (a tuple hashes its fields in order, `String` as `str`).
#[derive(Hash)]
struct KeyRef<'a>(&'a str, &'a str);

impl indexmap::Equivalent<ObjKey> for KeyRef<'_> {
    fn equivalent(&self, key: &ObjKey) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// Labels as extracted into [`Meta`].
pub type Labels = Arc<[(Box<str>, Box<str>)]>;

/// (namespace, label key, label value).
type LabelKey = (Box<str>, Box<str>, Box<str>);

/// A [`LabelKey`] borrowed from a pod's extracted fields. Hashes as the owned key does.
#[derive(Hash)]
struct LabelRef<'a>(&'a str, &'a str, &'a str);

impl indexmap::Equivalent<LabelKey> for LabelRef<'_> {
    fn equivalent(&self, key: &LabelKey) -> bool {
        self.0 == &*key.0 && self.1 == &*key.1 && self.2 == &*key.2
    }
}

/// Pods by (namespace, label key, label value).
type LabelIndex = indexmap::IndexMap<LabelKey, Entries, Hasher>;

/// Objects by key: an index entry holds the object itself (replaced on every write, as the
/// index is), so reading through an index costs no second lookup among all objects.
type Entries = BTreeMap<ObjKey, Arc<Stored>>;

#[derive(Default)]
struct Bucket {
    /// Every object by key. A hash map: reads and replacements (most writes) cost one hash,
    /// where a tree of 150,000 pods costs some twenty string comparisons.
    objects: indexmap::IndexMap<ObjKey, Arc<Stored>, Hasher>,
    /// The keys in the order lists return them (etcd's key order); changes on create and delete.
    order: BTreeSet<ObjKey>,
    /// Pods by `spec.nodeName` (only filled for pods).
    by_node: FastMap<String, Entries>,
    /// Objects by the uid of their controller.
    by_owner: FastMap<Box<str>, Entries>,
    /// The indexes only pods have.
    pods: PodIndexes,
}

/// Pod indexes that let the controllers answer "which pods?" without walking every pod.
#[derive(Default)]
struct PodIndexes {
    /// Pods with no `spec.nodeName`.
    unbound: Entries,
    /// Pods with a required pod anti-affinity.
    anti_affinity: Entries,
    /// Pods that use PersistentVolumeClaims.
    with_claims: Entries,
    /// Pods by (namespace, label key, label value).
    by_label: LabelIndex,
    /// Per node, what its unfinished pods request (terminating ones included: they hold their
    /// room until they are gone).
    load: FastMap<Box<str>, NodeLoad>,
    /// Per controller uid, its pods that are not terminating and how many of those are Ready
    /// (what a workload's status counts, without reading its pods).
    by_owner_counts: FastMap<Box<str>, PodCounts>,
}

/// A controller's pods that are not terminating, and how many of them are Ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodCounts {
    pub active: u32,
    pub ready: u32,
}

/// The requests of the unfinished pods on a node, in exact units (nanocores and bytes), so that
/// adding and taking pods away leaves no rounding behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeLoad {
    pub pods: u32,
    pub nanocores: i128,
    pub bytes: i128,
}

impl NodeLoad {
    fn apply(&mut self, (cpu, mem): (f64, f64), add: bool) {
        let sign = if add { 1 } else { -1 };
        self.pods = if add { self.pods + 1 } else { self.pods.saturating_sub(1) };
        self.nanocores += sign * (cpu * 1e9).round() as i128;
        self.bytes += sign * mem.round() as i128;
    }

    /// CPU cores and memory bytes.
    pub fn requests(&self) -> (f64, f64) {
        (self.nanocores as f64 / 1e9, self.bytes as f64)
    }
}

/// Puts `obj` under `k`: in place when `k` is there (a replacement), else as a new entry.
fn put(entries: &mut Entries, k: &ObjKey, obj: &Arc<Stored>) {
    match entries.get_mut(k) {
        Some(slot) => *slot = obj.clone(),
        None => {
            entries.insert(k.clone(), obj.clone());
        }
    }
}

/// Adds `obj` under `k` to the entries of `key` (made when missing), or takes it away (the
/// entries go once empty). Looked up by the borrowed key: nothing is copied for entries that exist.
fn set_index<K, Q>(map: &mut FastMap<K, Entries>, key: &Q, k: &ObjKey, obj: &Arc<Stored>, add: bool)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq + for<'a> From<&'a Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if add {
        match map.get_mut(key) {
            Some(entries) => put(entries, k, obj),
            None => {
                map.insert(K::from(key), Entries::from([(k.clone(), obj.clone())]));
            }
        }
    } else if let Some(entries) = map.get_mut(key) {
        entries.remove(k);
        if entries.is_empty() {
            map.remove(key);
        }
    }
}

/// [`set_index`] for the label index, looked up by a borrowed [`LabelRef`].
fn label_index(map: &mut LabelIndex, label: LabelRef<'_>, k: &ObjKey, obj: &Arc<Stored>, add: bool) {
    if add {
        match map.get_mut(&label) {
            Some(entries) => put(entries, k, obj),
            None => {
                let LabelRef(ns, key, value) = label;
                map.insert((ns.into(), key.into(), value.into()), Entries::from([(k.clone(), obj.clone())]));
            }
        }
    } else if let Some(entries) = map.get_mut(&label) {
        entries.remove(k);
        if entries.is_empty() {
            map.swap_remove(&label);
        }
    }
}

fn flag_index(set: &mut Entries, on: bool, k: &ObjKey, obj: &Arc<Stored>, add: bool) {
    if on {
        if add {
            put(set, k, obj);
        } else {
            set.remove(k);
        }
    }
}

/// A flag index as an object goes from `was` to `is`.
fn flag_move(set: &mut Entries, was: bool, is: bool, k: &ObjKey, obj: &Arc<Stored>) {
    match (was, is) {
        (true, true) | (false, true) => put(set, k, obj),
        (true, false) => {
            set.remove(k);
        }
        (false, false) => {}
    }
}

fn is_pods(key: &StorageKey) -> bool {
    key.group.is_empty() && key.resource == "pods"
}

/// The node whose room a pod takes, and what it requests (unbound and finished pods take none).
fn counted_load(m: &Meta) -> Option<(&str, (f64, f64))> {
    (!m.node_name.is_empty() && !matches!(&*m.phase, "Succeeded" | "Failed")).then_some((&*m.node_name, m.requests))
}

/// What a pod adds to its controller's counts: nothing while terminating, else whether it is Ready.
fn counted_as(m: &Meta) -> Option<bool> {
    (!m.terminating).then_some(m.ready)
}

impl PodIndexes {
    fn load_apply(&mut self, node: &str, requests: (f64, f64), add: bool) {
        let load = match self.load.get_mut(node) {
            Some(load) => load,
            None => self.load.entry(Box::from(node)).or_default(),
        };
        load.apply(requests, add);
        if load.pods == 0 {
            self.load.remove(node);
        }
    }

    fn count_apply(&mut self, owner_uid: &str, ready: bool, add: bool) {
        let counts = match self.by_owner_counts.get_mut(owner_uid) {
            Some(counts) => counts,
            None => self.by_owner_counts.entry(Box::from(owner_uid)).or_default(),
        };
        let step = |n: u32| if add { n + 1 } else { n.saturating_sub(1) };
        counts.active = step(counts.active);
        if ready {
            counts.ready = step(counts.ready);
        }
        if counts.active == 0 {
            self.by_owner_counts.remove(owner_uid);
        }
    }
}

impl Bucket {
    fn index(&mut self, key: &StorageKey, k: &ObjKey, obj: &Arc<Stored>, add: bool) {
        if let Some(owner) = &obj.meta.owner {
            set_index(&mut self.by_owner, &*owner.uid, k, obj, add);
        }
        if !is_pods(key) {
            return;
        }
        let m = &obj.meta;
        if m.node_name.is_empty() {
            flag_index(&mut self.pods.unbound, true, k, obj, add);
        } else {
            set_index(&mut self.by_node, &*m.node_name, k, obj, add);
        }
        if let Some((node, requests)) = counted_load(m) {
            self.pods.load_apply(node, requests, add);
        }
        if let (Some(owner), Some(ready)) = (&m.owner, counted_as(m)) {
            self.pods.count_apply(&owner.uid, ready, add);
        }
        flag_index(&mut self.pods.anti_affinity, m.required_anti_affinity, k, obj, add);
        flag_index(&mut self.pods.with_claims, !m.claims.is_empty(), k, obj, add);
        for (lk, lv) in m.labels.iter() {
            label_index(&mut self.pods.by_label, LabelRef(&m.namespace, lk, lv), k, obj, add);
        }
    }

    /// The indexes as `old` becomes `new` under `k`: what did not move is replaced in place, so
    /// a write that changes no indexed field copies no key and rebalances no tree.
    fn reindex(&mut self, key: &StorageKey, k: &ObjKey, old: &Arc<Stored>, new: &Arc<Stored>) {
        let (o, n) = (&old.meta, &new.meta);
        if o.owner.as_ref().map(|x| &x.uid) != n.owner.as_ref().map(|x| &x.uid) || o.namespace != n.namespace {
            self.index(key, k, old, false);
            self.index(key, k, new, true);
            return;
        }
        if let Some(owner) = &n.owner {
            set_index(&mut self.by_owner, &*owner.uid, k, new, true);
        }
        if !is_pods(key) {
            return;
        }
        if o.node_name == n.node_name {
            if n.node_name.is_empty() {
                put(&mut self.pods.unbound, k, new);
            } else {
                set_index(&mut self.by_node, &*n.node_name, k, new, true);
            }
        } else {
            if o.node_name.is_empty() {
                self.pods.unbound.remove(k);
            } else {
                set_index(&mut self.by_node, &*o.node_name, k, old, false);
            }
            if n.node_name.is_empty() {
                put(&mut self.pods.unbound, k, new);
            } else {
                set_index(&mut self.by_node, &*n.node_name, k, new, true);
            }
        }
        if counted_load(o) != counted_load(n) {
            if let Some((node, requests)) = counted_load(o) {
                self.pods.load_apply(node, requests, false);
            }
            if let Some((node, requests)) = counted_load(n) {
                self.pods.load_apply(node, requests, true);
            }
        }
        if let Some(owner) = &n.owner
            && counted_as(o) != counted_as(n)
        {
            if let Some(ready) = counted_as(o) {
                self.pods.count_apply(&owner.uid, ready, false);
            }
            if let Some(ready) = counted_as(n) {
                self.pods.count_apply(&owner.uid, ready, true);
            }
        }
        flag_move(&mut self.pods.anti_affinity, o.required_anti_affinity, n.required_anti_affinity, k, new);
        flag_move(&mut self.pods.with_claims, !o.claims.is_empty(), !n.claims.is_empty(), k, new);
        if o.labels == n.labels {
            for (lk, lv) in n.labels.iter() {
                label_index(&mut self.pods.by_label, LabelRef(&n.namespace, lk, lv), k, new, true);
            }
        } else {
            for (lk, lv) in o.labels.iter() {
                label_index(&mut self.pods.by_label, LabelRef(&o.namespace, lk, lv), k, old, false);
            }
            for (lk, lv) in n.labels.iter() {
                label_index(&mut self.pods.by_label, LabelRef(&n.namespace, lk, lv), k, new, true);
            }
        }
    }

    fn fetch(entries: &Entries) -> Vec<Arc<Stored>> {
        entries.values().cloned().collect()
    }

    /// The objects whose keys `keys` yields, in that order.
    fn in_order<'a>(
        &'a self,
        keys: impl Iterator<Item = &'a ObjKey> + 'a,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Arc<Stored>)> + 'a {
        keys.filter_map(|k| self.objects.get(k).map(|o| (k, o)))
    }

    fn insert_new(&mut self, k: ObjKey, obj: Arc<Stored>) {
        self.order.insert(k.clone());
        self.objects.insert(k, obj);
    }

    fn take_out(&mut self, k: &ObjKey) {
        self.order.remove(k);
        self.objects.swap_remove(k);
    }
}

struct State {
    rv: u64,
    buckets: FastMap<StorageKey, Bucket>,
    /// One channel per resource, made when the first watch of it subscribes: a write wakes the
    /// watches of its own resource only.
    watchers: FastMap<StorageKey, broadcast::Sender<Arc<Change>>>,
    history: VecDeque<Arc<Change>>,
    history_cap: usize,
    /// Changes up to this version are no longer in history.
    compacted_rv: u64,
    /// While a controller pass holds the watches: the changes committed since, in order.
    held: Option<Vec<Arc<Change>>>,
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    state: RwLock<State>,
    uid: AtomicU64,
}

/// Watch events sent together while a pass holds them (see [`Store::hold_watches`]).
const HELD_BURST: usize = 256;

fn send(watchers: &FastMap<StorageKey, broadcast::Sender<Arc<Change>>>, change: Arc<Change>) {
    if let Some(tx) = watchers.get(&change.key)
        && tx.receiver_count() > 0
    {
        let _ = tx.send(change);
    }
}

/// Sends the held watch events when dropped (see [`Store::hold_watches`]), also when the pass
/// that held them panicked.
pub struct HeldWatches(Arc<Store>);

impl Drop for HeldWatches {
    fn drop(&mut self) {
        let mut st = self.0.write();
        for change in st.held.take().unwrap_or_default() {
            send(&st.watchers, change);
        }
    }
}

/// How many changes a watch may fall behind before it is ended with 410 Gone (and relists).
const WATCH_BUFFER: usize = 65_536;

/// A page of a list.
pub struct ListPage {
    pub items: Vec<Arc<Stored>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
}

fn obj_key(ns: &str, name: &str) -> ObjKey {
    (ns.to_string(), name.to_string())
}

fn meta_str<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or_default()
}

impl Store {
    pub fn new(history_cap: usize) -> Arc<Self> {
        Arc::new(Store {
            state: RwLock::new(State {
                rv: 1,
                buckets: FastMap::default(),
                watchers: FastMap::default(),
                history: VecDeque::new(),
                history_cap,
                compacted_rv: 0,
                held: None,
            }),
            uid: AtomicU64::new(1),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh UID in the usual 8-4-4-4-12 form.
    pub fn new_uid(&self) -> String {
        let n = self.uid.fetch_add(1, Ordering::Relaxed);
        let salt = 0x6b38_7375_7067_u64; // fixed, so runs are reproducible
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (n >> 16) as u32 ^ 0x5eed_0000,
            n & 0xffff,
            (n >> 8) & 0xfff,
            n & 0xfff,
            (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt) & 0xffff_ffff_ffff
        )
    }

    pub fn current_rv(&self) -> u64 {
        self.read().rv
    }

    /// The changes to one resource from now on.
    pub fn subscribe(&self, key: &StorageKey) -> broadcast::Receiver<Arc<Change>> {
        let mut st = self.write();
        st.watchers.entry(key.clone()).or_insert_with(|| broadcast::channel(WATCH_BUFFER).0).subscribe()
    }

    /// Changes after `rv` from history, or `Err` when `rv` is older than what history holds.
    pub fn changes_since(&self, rv: u64) -> Result<Vec<Arc<Change>>, ApiError> {
        let st = self.read();
        if rv < st.compacted_rv {
            return Err(ApiError::gone(rv));
        }
        // History is in resourceVersion order.
        let from = st.history.partition_point(|c| c.rv <= rv);
        Ok(st.history.range(from..).cloned().collect())
    }

    /// Drops all history, like an etcd compaction: watches resuming from before now get 410.
    pub fn compact(&self) -> u64 {
        let mut st = self.write();
        st.history.clear();
        st.compacted_rv = st.rv;
        st.rv
    }

    fn commit(
        &self,
        st: &mut State,
        key: &StorageKey,
        kind: EventType,
        object: Arc<Stored>,
        previous_labels: Option<Labels>,
        status_only: bool,
    ) {
        let change = Arc::new(Change { rv: st.rv, key: key.clone(), kind, object, previous_labels, status_only });
        st.history.push_back(change.clone());
        while st.history.len() > st.history_cap {
            if let Some(dropped) = st.history.pop_front() {
                st.compacted_rv = dropped.rv;
            }
        }
        match &mut st.held {
            Some(held) if held.len() + 1 < HELD_BURST => held.push(change),
            Some(held) => {
                let burst = std::mem::take(held);
                for change in burst.into_iter().chain([change]) {
                    send(&st.watchers, change);
                }
            }
            None => send(&st.watchers, change),
        }
    }

    /// Holds back the watch events of every write (whoever makes it) until the guard is
    /// dropped, sending them in bursts of [`HELD_BURST`] meanwhile, in the order they were
    /// committed. A controller pass runs on a thread of its own: on a single-threaded runtime,
    /// sent one by one, each of its thousands of writes would wake the runtime's thread on its
    /// own; held to the end of the pass, the watches would wait idle while it runs. (A client's
    /// write during a pass waits for the burst too: a real watch cache delivers late as well.) Reads, lists and new watches see every
    /// write at once (new watches read the history; what they read twice is dropped by its
    /// version).
    pub fn hold_watches(self: &Arc<Self>) -> HeldWatches {
        let mut st = self.write();
        if st.held.is_none() {
            st.held = Some(Vec::new());
        }
        HeldWatches(self.clone())
    }

    fn stamp(&self, st: &mut State, v: &mut Value) {
        st.rv += 1;
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), Value::String(st.rv.to_string()));
        }
    }

    /// Creates an object; fills uid, creationTimestamp, generation and resourceVersion.
    pub fn create(&self, key: &StorageKey, mut obj: Value, dry_run: bool) -> Result<Arc<Stored>, ApiError> {
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        let generate = meta_str(&obj, "generateName").to_string();
        if meta_str(&obj, "name").is_empty() {
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    &key.resource,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            let suffix = self.uid.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x2545_f491_4f6c_dd1d);
            obj["metadata"]["name"] = Value::String(format!("{generate}{}", short_suffix(suffix)));
        }
        let name = meta_str(&obj, "name").to_string();
        check_meta(key, &obj)?;
        if key.group.is_empty() && key.resource == "pods" {
            default_pod(&mut obj);
        }
        if key.group.is_empty() && key.resource == "namespaces" {
            // As the namespace strategy and admission do: the name label, and the finalizer the
            // namespace controller removes once the namespace is empty.
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = Value::String(name.clone());
            if obj.pointer("/spec/finalizers").is_none() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
        }
        let ns = meta_str(&obj, "namespace").to_string();
        let k = obj_key(&ns, &name);
        let mut st = self.write();
        if st.buckets.get(key).is_some_and(|b| b.objects.contains_key(&k)) {
            return Err(ApiError::already_exists(&key.resource, &name));
        }
        {
            let m = obj["metadata"].as_object_mut().expect("metadata is an object");
            m.insert("uid".into(), Value::String(self.new_uid()));
            m.entry("creationTimestamp").or_insert_with(|| Value::String(now_rfc3339()));
            if has_generation(key) {
                m.insert("generation".into(), json!(1));
            }
        }
        if key.group == "batch" && key.resource == "jobs" {
            generate_job_selector(&mut obj);
        }
        if dry_run {
            let mut preview = obj;
            preview["metadata"]["resourceVersion"] = Value::String(String::new());
            return Ok(Stored::new(key, preview));
        }
        self.stamp(&mut st, &mut obj);
        let stored = Stored::new(key, obj);
        let bucket = st.buckets.entry(key.clone()).or_default();
        bucket.index(key, &k, &stored, true);
        bucket.insert_new(k, stored.clone());
        self.commit(&mut st, key, EventType::Added, stored.clone(), None, false);
        Ok(stored)
    }

    pub fn get(&self, key: &StorageKey, ns: &str, name: &str) -> Option<Arc<Stored>> {
        self.read().buckets.get(key).and_then(|b| b.objects.get(&KeyRef(ns, name)).cloned())
    }

    /// Read-modify-write under the store lock. `expect_rv` enforces optimistic concurrency
    /// (409 Conflict when the stored version moved on).
    pub fn mutate(
        &self,
        key: &StorageKey,
        ns: &str,
        name: &str,
        expect_rv: Option<u64>,
        dry_run: bool,
        f: impl FnOnce(&mut Value) -> Result<(), ApiError>,
    ) -> Result<Arc<Stored>, ApiError> {
        let k = obj_key(ns, name);
        let mut st = self.write();
        let current = existing(&st, key, &k)?;
        if let Some(rv) = expect_rv
            && rv != current.resource_version()
        {
            return Err(ApiError::conflict(&key.resource, name));
        }
        let old = current.value();
        // Finalizer state before the change, read from the one parse of a pod.
        let was_held = has_finalizers(&old) && old.pointer("/metadata/deletionTimestamp").is_some();
        let mut next = Value::clone(&old);
        f(&mut next)?;
        // Identity fields are immutable.
        for field in ["uid", "creationTimestamp", "name", "namespace"] {
            if let Some(v) = old.get("metadata").and_then(|m| m.get(field))
                && next.get("metadata").and_then(|m| m.get(field)) != Some(v)
            {
                next["metadata"][field] = v.clone();
            }
        }
        if next == *old {
            return Ok(current);
        }
        if let Some(g) = old.pointer("/metadata/generation").and_then(Value::as_i64)
            && old.get("spec") != next.get("spec")
        {
            next["metadata"]["generation"] = json!(g + 1);
        }
        drop(old);
        if dry_run {
            return Ok(Stored::new(key, next));
        }
        // The last finalizer of an object marked deleted with no grace left is gone: so is the
        // object (the apiserver's shouldDeleteDuringUpdate).
        if finalizes(key) && was_held && marked_deleted(&next) && !has_finalizers(&next) {
            return Ok(self.remove(&mut st, key, &k, &current, next));
        }
        Ok(self.replace(&mut st, key, k, &current, next, false))
    }

    /// Replaces an object's `status`, as a controller writes its status subresource: the rest
    /// is copied as stored, so identity, spec, generation and finalizers cannot change and need
    /// no comparing. A status equal to the stored one writes nothing (returns the stored object).
    pub fn write_status(&self, key: &StorageKey, ns: &str, name: &str, status: Value) -> Result<Arc<Stored>, ApiError> {
        let mut st = self.write();
        let current = st
            .buckets
            .get(key)
            .and_then(|b| b.objects.get(&KeyRef(ns, name)).cloned())
            .ok_or_else(|| ApiError::not_found(&key.resource, name))?;
        let next = match current.value() {
            Cow::Borrowed(old) if old.get("status") == Some(&status) => return Ok(current),
            // Cached: copy all but the status, which takes its place.
            Cow::Borrowed(Value::Object(fields)) => {
                let mut status = Some(status);
                let mut next: serde_json::Map<String, Value> = fields
                    .iter()
                    .map(|(k, v)| {
                        (k.clone(), if k == "status" { status.take().unwrap_or_default() } else { v.clone() })
                    })
                    .collect();
                if let Some(status) = status {
                    next.insert("status".into(), status);
                }
                Value::Object(next)
            }
            Cow::Borrowed(old) => {
                let mut next = old.clone();
                next["status"] = status;
                next
            }
            // Parsed for this write (pods): already ours.
            Cow::Owned(old) if old.get("status") == Some(&status) => return Ok(current),
            Cow::Owned(mut next) => {
                next["status"] = status;
                next
            }
        };
        Ok(self.replace(&mut st, key, obj_key(ns, name), &current, next, true))
    }

    /// Stores `next` in place of `current` (stamped, reindexed) and sends it as Modified.
    fn replace(
        &self,
        st: &mut State,
        key: &StorageKey,
        k: ObjKey,
        current: &Arc<Stored>,
        mut next: Value,
        status_only: bool,
    ) -> Arc<Stored> {
        self.stamp(st, &mut next);
        let stored = Stored::new(key, next);
        let bucket = st.buckets.entry(key.clone()).or_default();
        bucket.reindex(key, &k, current, &stored);
        bucket.objects.insert(k, stored.clone());
        let before = (current.meta.labels != stored.meta.labels).then(|| current.meta.labels.clone());
        self.commit(st, key, EventType::Modified, stored.clone(), before, status_only);
        stored
    }

    /// Removes `current`, whose last state `gone` (stamped) is sent as Deleted.
    fn remove(
        &self,
        st: &mut State,
        key: &StorageKey,
        k: &ObjKey,
        current: &Arc<Stored>,
        mut gone: Value,
    ) -> Arc<Stored> {
        self.stamp(st, &mut gone);
        let stored = Stored::new(key, gone);
        if let Some(bucket) = st.buckets.get_mut(key) {
            bucket.index(key, k, current, false);
            bucket.take_out(k);
        }
        self.commit(st, key, EventType::Deleted, stored.clone(), None, false);
        stored
    }

    /// Removes an object now (graceful pod deletion is the kubelet's business). An object with
    /// finalizers is only marked deleted (`deletionTimestamp`), as the apiserver does, and goes
    /// when an update removes its last finalizer.
    pub fn delete(&self, key: &StorageKey, ns: &str, name: &str, dry_run: bool) -> Result<Arc<Stored>, ApiError> {
        let k = obj_key(ns, name);
        let mut st = self.write();
        let current = existing(&st, key, &k)?;
        if dry_run {
            return Ok(current);
        }
        // One parse of a pod serves the finalizer check and the object's last state.
        let value = current.value();
        if finalizes(key) && has_finalizers(&value) {
            // Marked deleted with no grace left; the last finalizer's removal then deletes it.
            if marked_deleted(&value) {
                return Ok(current);
            }
            let mut marked = value.into_owned();
            if marked.pointer("/metadata/deletionTimestamp").is_none() {
                marked["metadata"]["deletionTimestamp"] = Value::String(now_rfc3339());
            }
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            return Ok(self.replace(&mut st, key, k, &current, marked, false));
        }
        let gone = value.into_owned();
        Ok(self.remove(&mut st, key, &k, &current, gone))
    }

    /// All objects of a resource (optionally one namespace), in key order, filtered, paginated.
    /// `continue` tokens carry the last key returned.
    pub fn list(
        &self,
        key: &StorageKey,
        namespace: Option<&str>,
        node: Option<&str>,
        limit: Option<usize>,
        continue_token: Option<&str>,
        filter: impl Fn(&Stored) -> bool,
    ) -> Result<ListPage, ApiError> {
        let (after, snapshot) = match continue_token {
            Some(t) if !t.is_empty() => {
                let (k, rv) = decode_continue(t)?;
                (Some(k), Some(rv))
            }
            _ => (None, None),
        };
        let st = self.read();
        if snapshot.is_some_and(|rv| rv < st.compacted_rv) {
            return Err(ApiError::gone_continue());
        }
        let rv = snapshot.unwrap_or(st.rv);
        let Some(bucket) = st.buckets.get(key) else {
            return Ok(ListPage { items: vec![], resource_version: rv, continue_token: None });
        };
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        let lower = match &after {
            Some(k) => std::ops::Bound::Excluded(k.clone()),
            None => match namespace {
                Some(ns) => std::ops::Bound::Included((ns.to_string(), String::new())),
                None => std::ops::Bound::Unbounded,
            },
        };
        let mut visit = |k: &ObjKey, obj: &Arc<Stored>| -> bool {
            if let Some(ns) = namespace
                && k.0 != ns
            {
                return k.0.as_str() < ns;
            }
            if !filter(obj) {
                return true;
            }
            if items.len() < limit {
                items.push(obj.clone());
                last = Some(k.clone());
                true
            } else {
                // One more match is enough to know there is a next page; counting the rest
                // would make paging through a large list quadratic (so, like the apiserver with
                // selectors, no remainingItemCount).
                more = true;
                false
            }
        };
        match node {
            Some(n) => {
                if let Some(entries) = bucket.by_node.get(n) {
                    for (k, obj) in entries.range((lower, std::ops::Bound::Unbounded)) {
                        if !visit(k, obj) {
                            break;
                        }
                    }
                }
            }
            None => {
                for (k, obj) in bucket.in_order(bucket.order.range((lower, std::ops::Bound::Unbounded))) {
                    if !visit(k, obj) {
                        break;
                    }
                }
            }
        }
        let continue_token = if more { last.map(|k| encode_continue(&k, rv)) } else { None };
        Ok(ListPage { items, resource_version: rv, continue_token })
    }

    /// Every object of a resource, for controllers (no copies of values, just `Arc`s).
    pub fn all(&self, key: &StorageKey) -> Vec<Arc<Stored>> {
        let st = self.read();
        let Some(b) = st.buckets.get(key) else { return vec![] };
        b.in_order(b.order.iter()).map(|(_, o)| o.clone()).collect()
    }

    /// Objects of a resource in one namespace.
    pub fn in_namespace(&self, key: &StorageKey, ns: &str) -> Vec<Arc<Stored>> {
        let st = self.read();
        let Some(b) = st.buckets.get(key) else { return vec![] };
        b.in_order(b.order.range((ns.to_string(), String::new())..).take_while(|k| k.0 == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Pods bound to a node.
    pub fn pods_on_node(&self, node: &str) -> Vec<Arc<Stored>> {
        let st = self.read();
        let Some(b) = st.buckets.get(&StorageKey::core("pods")) else { return vec![] };
        b.by_node.get(node).map(Bucket::fetch).unwrap_or_default()
    }

    /// Objects of `key` whose controller has `uid`.
    pub fn owned_by(&self, key: &StorageKey, uid: &str) -> Vec<Arc<Stored>> {
        let st = self.read();
        let Some(b) = st.buckets.get(key) else { return vec![] };
        b.by_owner.get(uid).map(Bucket::fetch).unwrap_or_default()
    }

    fn pod_index(&self, pick: impl FnOnce(&Bucket) -> Vec<Arc<Stored>>) -> Vec<Arc<Stored>> {
        self.read().buckets.get(&StorageKey::core("pods")).map(pick).unwrap_or_default()
    }

    /// The pods of the controller with `uid` that are not terminating, and the Ready ones.
    pub fn pod_counts(&self, uid: &str) -> PodCounts {
        let st = self.read();
        st.buckets
            .get(&StorageKey::core("pods"))
            .and_then(|b| b.pods.by_owner_counts.get(uid).copied())
            .unwrap_or_default()
    }

    /// Pods not bound to a node.
    pub fn unbound_pods(&self) -> Vec<Arc<Stored>> {
        self.pod_index(|b| Bucket::fetch(&b.pods.unbound))
    }

    /// Pods with a required pod anti-affinity.
    pub fn anti_affinity_pods(&self) -> Vec<Arc<Stored>> {
        self.pod_index(|b| Bucket::fetch(&b.pods.anti_affinity))
    }

    /// Pods that use PersistentVolumeClaims.
    pub fn pods_with_claims(&self) -> Vec<Arc<Stored>> {
        self.pod_index(|b| Bucket::fetch(&b.pods.with_claims))
    }

    /// Pods of `ns` labelled `key=value`.
    pub fn pods_labelled(&self, ns: &str, key: &str, value: &str) -> Vec<Arc<Stored>> {
        self.pod_index(|b| b.pods.by_label.get(&LabelRef(ns, key, value)).map(Bucket::fetch).unwrap_or_default())
    }

    /// What the unfinished pods on each node request.
    pub fn node_loads(&self) -> FastMap<Box<str>, NodeLoad> {
        let st = self.read();
        st.buckets.get(&StorageKey::core("pods")).map(|b| b.pods.load.clone()).unwrap_or_default()
    }

    /// How many objects a resource holds.
    pub fn count(&self, key: &StorageKey) -> usize {
        self.read().buckets.get(key).map_or(0, |b| b.objects.len())
    }

    /// Storage keys that hold at least one object.
    pub fn keys(&self) -> Vec<StorageKey> {
        let st = self.read();
        let mut keys: Vec<StorageKey> =
            st.buckets.iter().filter(|(_, b)| !b.objects.is_empty()).map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys
    }

    /// Bulk load without history or broadcast (scenario start-up of large clusters). The object
    /// is held to the same checks of name and labels as one created through the API.
    pub fn load(&self, key: &StorageKey, mut obj: Value) -> Result<(), ApiError> {
        check_meta(key, &obj)?;
        let mut st = self.write();
        if obj.pointer("/metadata/uid").is_none() {
            obj["metadata"]["uid"] = Value::String(self.new_uid());
        }
        if obj.pointer("/metadata/creationTimestamp").is_none() {
            obj["metadata"]["creationTimestamp"] = Value::String(now_rfc3339());
        }
        // As if created: the apiserver gives every object with a spec its generation.
        if has_generation(key) && obj.pointer("/metadata/generation").is_none() {
            obj["metadata"]["generation"] = json!(1);
        }
        st.rv += 1;
        // Loaded objects never enter history, so nothing before them can be resumed from.
        st.compacted_rv = st.rv;
        obj["metadata"]["resourceVersion"] = Value::String(st.rv.to_string());
        let k = obj_key(meta_str(&obj, "namespace"), meta_str(&obj, "name"));
        let stored = Stored::new(key, obj);
        let bucket = st.buckets.entry(key.clone()).or_default();
        bucket.index(key, &k, &stored, true);
        bucket.insert_new(k, stored);
        Ok(())
    }
}

/// As the Job strategy does on create unless `spec.manualSelector` is true: the template gets
/// the job's name and uid as labels (the legacy keys and the `batch.kubernetes.io/` ones, each
/// unless already set) and the selector matches the uid, so each Job's pods carry them.
fn generate_job_selector(job: &mut Value) {
    if job.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let name = meta_str(job, "name").to_string();
    let uid = meta_str(job, "uid").to_string();
    let Some(spec) = job.get_mut("spec").filter(|s| s.is_object()) else { return };
    let labels = object_at(spec, &["template", "metadata", "labels"]);
    for (key, value) in [
        ("job-name", &name),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("batch.kubernetes.io/controller-uid", &uid),
    ] {
        labels.entry(key).or_insert_with(|| Value::String(value.clone()));
    }
    object_at(spec, &["selector", "matchLabels"])
        .entry("batch.kubernetes.io/controller-uid")
        .or_insert_with(|| Value::String(uid));
}

/// The object at `path` under `v`, made (in place of anything that is not an object) where
/// missing.
fn object_at<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut serde_json::Map<String, Value> {
    let mut at = v;
    for key in path {
        if !at.get(key).is_some_and(Value::is_object) {
            at[key] = json!({});
        }
        at = &mut at[key];
    }
    if !at.is_object() {
        *at = json!({});
    }
    at.as_object_mut().expect("made an object above")
}

/// Whether the apiserver keeps `metadata.generation` for the resource (its strategy counts spec
/// changes).
fn has_generation(key: &StorageKey) -> bool {
    !matches!(&*key.resource, "pods" | "nodes" | "namespaces" | "events" | "secrets" | "configmaps" | "leases")
}

/// Whether `metadata.finalizers` hold a deletion of this resource (namespaces have their own
/// `spec.finalizers`, which the simulated namespace controller handles).
fn finalizes(key: &StorageKey) -> bool {
    !(key.group.is_empty() && key.resource == "namespaces")
}

/// Marked deleted with no grace left: only finalizers keep the object.
fn marked_deleted(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp").is_some()
        && v.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64) == Some(0)
}

fn has_finalizers(v: &Value) -> bool {
    v.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty())
}

fn existing(st: &State, key: &StorageKey, k: &ObjKey) -> Result<Arc<Stored>, ApiError> {
    st.buckets.get(key).and_then(|b| b.objects.get(k).cloned()).ok_or_else(|| ApiError::not_found(&key.resource, &k.1))
}

fn short_suffix(mut n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut s = String::with_capacity(5);
    for _ in 0..5 {
        s.push(ALPHABET[(n % ALPHABET.len() as u64) as usize] as char);
        n /= ALPHABET.len() as u64;
    }
    s
}

/// A random-looking 5-character suffix for generated names.
pub fn name_suffix(seed: u64) -> String {
    short_suffix(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x9e37_79b9)
}

/// The name and labels of an object about to be stored, held to the apiserver's validation of
/// its kind (see [`super::names`]).
fn check_meta(key: &StorageKey, obj: &Value) -> Result<(), ApiError> {
    let errs = super::names::problems(&key.group, &key.resource, obj);
    if errs.is_empty() {
        return Ok(());
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or(&key.resource);
    Err(super::names::refusal(kind, &key.group, meta_str(obj, "name"), &errs))
}

/// A continue token carries the last key returned and the resourceVersion of the first page,
/// so every page of one list reports the same version (a watch started from it misses nothing).
fn encode_continue(k: &ObjKey, rv: u64) -> String {
    use base64::Engine;
    let raw = serde_json::to_vec(&json!([k.0, k.1, rv])).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(t: &str) -> Result<(ObjKey, u64), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request(&format!("invalid continue token '{}'", t.chars().take(64).collect::<String>()));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t).map_err(|_| bad())?;
    let (ns, name, rv): (String, String, u64) = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok(((ns, name), rv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, owner_uid: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": owner_uid, "controller": true}
            ]},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        })
    }

    fn set_ready(store: &Store, name: &str, ready: bool) {
        store
            .mutate(&StorageKey::core("pods"), "shop", name, None, false, |p| {
                p["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]});
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_new_job_selects_its_pods_by_its_uid_as_the_job_strategy_does() {
        let store = Store::new(100);
        let jobs = StorageKey::new("batch", "jobs");
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "backup", "namespace": "ops"},
            "spec": {"template": {"metadata": {"labels": {"app": "backup", "job-name": "kept"}}, "spec": {"containers": []}}}});
        let stored = store.create(&jobs, job, false).unwrap();
        let v = stored.value();
        let uid = v["metadata"]["uid"].as_str().unwrap();
        let labels = &v["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["app"], "backup");
        assert_eq!(labels["job-name"], "kept", "a label already set stays");
        assert_eq!(labels["batch.kubernetes.io/job-name"], "backup");
        assert_eq!(labels["controller-uid"], uid);
        assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
        assert_eq!(v["spec"]["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
        // manualSelector: the user's selector and labels as given.
        let manual = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "own", "namespace": "ops"},
            "spec": {"manualSelector": true, "selector": {"matchLabels": {"app": "own"}},
                     "template": {"metadata": {"labels": {"app": "own"}}, "spec": {"containers": []}}}});
        let v = store.create(&jobs, manual, false).unwrap().value().into_owned();
        assert_eq!(v["spec"]["selector"], json!({"matchLabels": {"app": "own"}}));
        assert_eq!(v["spec"]["template"]["metadata"]["labels"], json!({"app": "own"}));
    }

    #[test]
    fn a_controllers_pod_counts_follow_every_write_of_its_pods() {
        let store = Store::new(1000);
        let pods = StorageKey::core("pods");
        let counts = |active, ready| PodCounts { active, ready };
        for name in ["a", "b", "c"] {
            store.create(&pods, pod(name, "rs-uid"), false).unwrap();
        }
        store.create(&pods, pod("other", "rs-other"), false).unwrap();
        assert_eq!(store.pod_counts("rs-uid"), counts(3, 0));
        set_ready(&store, "a", true);
        set_ready(&store, "b", true);
        assert_eq!(store.pod_counts("rs-uid"), counts(3, 2));
        set_ready(&store, "b", false);
        assert_eq!(store.pod_counts("rs-uid"), counts(3, 1));
        // A terminating pod no longer counts, ready or not.
        store
            .mutate(&pods, "shop", "a", None, false, |p| {
                p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                Ok(())
            })
            .unwrap();
        assert_eq!(store.pod_counts("rs-uid"), counts(2, 0));
        store.delete(&pods, "shop", "a", false).unwrap();
        store.delete(&pods, "shop", "c", false).unwrap();
        assert_eq!(store.pod_counts("rs-uid"), counts(1, 0));
        store.delete(&pods, "shop", "b", false).unwrap();
        assert_eq!(store.pod_counts("rs-uid"), PodCounts::default());
        assert_eq!(store.pod_counts("rs-other"), counts(1, 0));
        // Dry runs change nothing.
        store.create(&pods, pod("d", "rs-uid"), true).unwrap();
        assert_eq!(store.pod_counts("rs-uid"), PodCounts::default());
    }
}
