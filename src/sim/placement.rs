//! Where a pod may run: kube-scheduler's filters, shared by the scheduler controller and by
//! scenario building so the two never disagree.
//!
//! The filters run in kube-scheduler's plugin order and a node is rejected by the first that
//! fails: NodeUnschedulable (cordoned nodes, unless the pod tolerates the unschedulable taint),
//! TaintToleration (NoSchedule and NoExecute taints; a node that is not Ready carries the
//! not-ready or unreachable taint), NodeAffinity (`nodeSelector` and required node affinity),
//! NodeResourcesFit (pods, CPU, memory), PodTopologySpread (`DoNotSchedule` constraints) and
//! InterPodAffinity (required pod affinity and anti-affinity, and the required anti-affinity of
//! pods already running). A pod that fits nowhere gets the scheduler's own message
//! ([`fit_error`]). Among the nodes that pass, [`Snapshot::best`] scores as kube-scheduler's
//! default plugins do (taints preferred against, preferred node and pod affinity, least
//! allocated and balanced resources, soft and default topology spread), so that a pod displaced
//! by a drain lands where a real scheduler would put it, and a twin's later drains meet the same
//! budgets.
//!
//! Pods without affinity or spread rules cost nothing extra: the pods a rule counts are read
//! from the store only when a pod with such a rule is placed, by namespace, and kept up to date
//! as pods are bound.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::store::{FastMap, StorageKey, Store, Stored};
use crate::labels::LabelSelector;

pub type Labels = BTreeMap<String, String>;

/// Extracted pod labels, as the store keeps them.
type PodLabels = super::store::Labels;

const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

impl Taint {
    fn of(v: &Value) -> Taint {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        Taint { key: s("key"), value: s("value"), effect: s("effect") }
    }
}

#[derive(Debug, Clone)]
struct Toleration {
    key: String,
    operator: String,
    value: String,
    effect: String,
}

impl Toleration {
    /// `Toleration.ToleratesTaint`.
    fn tolerates(&self, t: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != t.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != t.key {
            return false;
        }
        match self.operator.as_str() {
            "" | "Equal" => self.value == t.value,
            "Exists" => true,
            _ => false,
        }
    }
}

/// A node as the filters see it, with the room left on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub labels: Labels,
    /// Taints in the node's order.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    /// Free pod slots, CPU cores and memory bytes (allocatable less what bound pods request).
    pub pods: f64,
    pub cpu: f64,
    pub mem: f64,
    /// Allocatable CPU cores and memory bytes (what the resource scores divide by).
    pub cpu_allocatable: f64,
    pub mem_allocatable: f64,
    /// The `topology.kubernetes.io/zone` label, read once (the default spread weighs it).
    zone: Option<String>,
}

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

fn quantity_at(v: &Value, p: &str) -> f64 {
    match v.pointer(p) {
        Some(Value::String(s)) => super::store::parse_quantity(s),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    }
}

impl NodeInfo {
    /// A node object with all its allocatable room free, its taints as they are (the DaemonSet
    /// controller's view).
    pub fn of(node: &Value) -> NodeInfo {
        let labels = crate::labels::labels_of(node);
        NodeInfo {
            name: node.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string(),
            zone: labels.get(ZONE_LABEL).cloned(),
            labels,
            taints: node
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .map_or_else(Vec::new, |ts| ts.iter().map(Taint::of).collect()),
            unschedulable: node.pointer("/spec/unschedulable") == Some(&Value::Bool(true)),
            pods: quantity_at(node, "/status/allocatable/pods").max(1.0),
            cpu: quantity_at(node, "/status/allocatable/cpu"),
            mem: quantity_at(node, "/status/allocatable/memory"),
            cpu_allocatable: quantity_at(node, "/status/allocatable/cpu"),
            mem_allocatable: quantity_at(node, "/status/allocatable/memory"),
        }
    }

    /// The scheduler's view: a node that is not Ready also carries the NoSchedule taint the
    /// node lifecycle controller puts on it (`not-ready`, or `unreachable` when Unknown).
    pub fn for_scheduler(node: &Value) -> NodeInfo {
        let mut info = NodeInfo::of(node);
        let ready = node
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .and_then(|c| c["status"].as_str())
            .unwrap_or("Unknown");
        if ready != "True" {
            let key = if ready == "False" { NOT_READY_TAINT } else { UNREACHABLE_TAINT };
            if !info.taints.iter().any(|t| t.key == key && t.effect == "NoSchedule") {
                info.taints.push(Taint { key: key.into(), value: String::new(), effect: "NoSchedule".into() });
            }
        }
        info
    }

    /// Takes a pod's requests off the room.
    pub fn take(&mut self, (cpu, mem): (f64, f64)) {
        self.pods -= 1.0;
        self.cpu -= cpu;
        self.mem -= mem;
    }
}

/// A `nodeSelectorRequirement` or `labelSelectorRequirement` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
    /// Anything else: never matches (kube-scheduler cannot build the selector).
    Bad,
}

#[derive(Debug, Clone)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

impl Requirement {
    fn of(v: &Value) -> Requirement {
        let op = match v.get("operator").and_then(Value::as_str).unwrap_or_default() {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" => Op::Gt,
            "Lt" => Op::Lt,
            _ => Op::Bad,
        };
        Requirement {
            key: v.get("key").and_then(Value::as_str).unwrap_or_default().to_string(),
            op,
            values: v
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        }
    }

    /// Whether the value found under the key (none when the label is absent) satisfies it.
    fn matches(&self, found: Option<&str>) -> bool {
        let number = |s: &str| s.parse::<i64>().ok();
        let bound = || if self.values.len() == 1 { number(&self.values[0]) } else { None };
        match self.op {
            Op::In => found.is_some_and(|f| self.values.iter().any(|v| v == f)),
            Op::NotIn => found.is_none_or(|f| !self.values.iter().any(|v| v == f)),
            Op::Exists => found.is_some(),
            Op::DoesNotExist => found.is_none(),
            Op::Gt => matches!((found.and_then(number), bound()), (Some(f), Some(b)) if f > b),
            Op::Lt => matches!((found.and_then(number), bound()), (Some(f), Some(b)) if f < b),
            Op::Bad => false,
        }
    }
}

/// A `nodeSelectorTerm`: label expressions and field expressions, all of which must hold; an
/// empty term matches no node.
#[derive(Debug, Clone)]
struct NodeTerm {
    expressions: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl NodeTerm {
    fn of(v: &Value) -> NodeTerm {
        let reqs = |k: &str| {
            v.get(k).and_then(Value::as_array).map_or_else(Vec::new, |a| a.iter().map(Requirement::of).collect())
        };
        NodeTerm { expressions: reqs("matchExpressions"), fields: reqs("matchFields") }
    }

    fn matches(&self, node: &NodeInfo) -> bool {
        if self.expressions.is_empty() && self.fields.is_empty() {
            return false;
        }
        self.expressions.iter().all(|r| r.matches(node.labels.get(&r.key).map(String::as_str)))
            && self
                .fields
                .iter()
                .all(|r| r.key == "metadata.name" && matches!(r.op, Op::In | Op::NotIn) && r.matches(Some(&node.name)))
    }
}

/// A required pod (anti-)affinity term.
#[derive(Debug, Clone)]
struct PodTerm {
    /// `None`: no selector, which matches no pod.
    selector: Option<LabelSelector>,
    namespaces: HashSet<String>,
    /// `namespaceSelector`, matched against a namespace's `kubernetes.io/metadata.name` label.
    namespace_selector: Option<LabelSelector>,
    topology_key: String,
}

fn selector_of(v: Option<&Value>) -> Option<LabelSelector> {
    v.filter(|v| v.is_object()).and_then(|v| LabelSelector::from_json(v).ok())
}

impl PodTerm {
    fn of(v: &Value, own_namespace: &str) -> PodTerm {
        let mut namespaces: HashSet<String> = v
            .get("namespaces")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let namespace_selector = v.get("namespaceSelector").filter(|s| !s.is_null()).map(|s| {
            // A selector that cannot be read selects nothing.
            LabelSelector::from_json(s).unwrap_or_else(|_| LabelSelector::parse("a,!a").unwrap_or_default())
        });
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.insert(own_namespace.to_string());
        }
        PodTerm {
            selector: selector_of(v.get("labelSelector")),
            namespaces,
            namespace_selector,
            topology_key: v.get("topologyKey").and_then(Value::as_str).unwrap_or_default().to_string(),
        }
    }

    fn namespace_matches(&self, ns: &str) -> bool {
        self.namespaces.contains(ns)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                s.matches_map(&BTreeMap::from([("kubernetes.io/metadata.name".to_string(), ns.to_string())]))
            })
    }

    fn matches(&self, ns: &str, labels: &PodLabels) -> bool {
        self.namespace_matches(ns) && self.selector.as_ref().is_some_and(|s| s.matches_labels(labels))
    }
}

/// A topology spread constraint (`DoNotSchedule` ones filter, `ScheduleAnyway` ones score).
#[derive(Debug, Clone)]
struct Spread {
    max_skew: i64,
    topology_key: String,
    selector: Option<LabelSelector>,
    min_domains: i64,
    /// `nodeAffinityPolicy: Honor` (the default): only nodes the pod may select are domains.
    honor_affinity: bool,
    /// `nodeTaintsPolicy: Honor`: only nodes whose taints the pod tolerates are domains.
    honor_taints: bool,
}

impl Spread {
    /// The pod's `topologySpreadConstraints` with this `whenUnsatisfiable`.
    fn all(constraints: Option<&Vec<Value>>, when: &str) -> Vec<Spread> {
        let Some(cs) = constraints else { return vec![] };
        cs.iter()
            .filter(|c| c.get("whenUnsatisfiable").and_then(Value::as_str) == Some(when))
            .map(|c| Spread {
                max_skew: c.get("maxSkew").and_then(Value::as_i64).unwrap_or(1).max(1),
                topology_key: c.get("topologyKey").and_then(Value::as_str).unwrap_or_default().to_string(),
                selector: selector_of(c.get("labelSelector")),
                min_domains: c.get("minDomains").and_then(Value::as_i64).unwrap_or(1),
                honor_affinity: c.get("nodeAffinityPolicy").and_then(Value::as_str) != Some("Ignore"),
                honor_taints: c.get("nodeTaintsPolicy").and_then(Value::as_str) == Some("Honor"),
            })
            .collect()
    }
}

/// What the filters need of a pod, read once from its spec.
#[derive(Debug, Clone, Default)]
pub struct PodRules {
    pub namespace: String,
    labels: PodLabels,
    pub requests: (f64, f64),
    tolerations: Vec<Toleration>,
    node_selector: Vec<(String, String)>,
    /// Required node affinity terms (ORed); `None` when there are none.
    node_affinity: Option<Vec<NodeTerm>>,
    affinity: Vec<PodTerm>,
    anti_affinity: Vec<PodTerm>,
    spread: Vec<Spread>,
    /// What the scoring plugins weigh (preferred terms, `ScheduleAnyway` constraints).
    soft: Soft,
}

/// A pod's preferences: rules kube-scheduler scores nodes by instead of filtering them.
#[derive(Debug, Clone, Default)]
struct Soft {
    /// Preferred node affinity: weight and term.
    node_terms: Vec<(i64, NodeTerm)>,
    /// Preferred pod affinity (positive weight) and anti-affinity (negative weight).
    pod_terms: Vec<(i64, PodTerm)>,
    /// `ScheduleAnyway` topology spread constraints.
    spread: Vec<Spread>,
    /// Whether the pod has topology spread constraints of its own (then the cluster's default
    /// constraints do not apply).
    own_spread: bool,
}

impl PodRules {
    /// The rules of a pod object (or of a pod template with its namespace given).
    pub fn of(namespace: &str, pod: &Value, requests: (f64, f64)) -> PodRules {
        let labels: PodLabels = pod
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter().map(|(k, v)| (Box::from(k.as_str()), Box::from(v.as_str().unwrap_or_default()))).collect()
            })
            .unwrap_or_default();
        let spec = pod.get("spec").unwrap_or(&Value::Null);
        let tolerations = spec.get("tolerations").and_then(Value::as_array).map_or_else(Vec::new, |ts| {
            ts.iter()
                .map(|t| {
                    let s = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                    Toleration { key: s("key"), operator: s("operator"), value: s("value"), effect: s("effect") }
                })
                .collect()
        });
        let node_selector = spec.get("nodeSelector").and_then(Value::as_object).map_or_else(Vec::new, |m| {
            m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()
        });
        let affinity = spec.get("affinity").unwrap_or(&Value::Null);
        let node_affinity = affinity
            .pointer("/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution")
            .filter(|r| !r.is_null())
            .map(|r| {
                r.get("nodeSelectorTerms")
                    .and_then(Value::as_array)
                    .map_or_else(Vec::new, |ts| ts.iter().map(NodeTerm::of).collect())
            });
        let terms = |p: &str| {
            affinity
                .pointer(p)
                .and_then(Value::as_array)
                .map_or_else(Vec::new, |ts| ts.iter().map(|t| PodTerm::of(t, namespace)).collect())
        };
        let constraints = spec.get("topologySpreadConstraints").and_then(Value::as_array);
        let spread = Spread::all(constraints, "DoNotSchedule");
        let weighted = |p: &str, sign: i64| -> Vec<(i64, PodTerm)> {
            affinity.pointer(p).and_then(Value::as_array).map_or_else(Vec::new, |ts| {
                ts.iter()
                    .filter_map(|t| {
                        let w = t.get("weight").and_then(Value::as_i64)?;
                        Some((sign * w, PodTerm::of(t.get("podAffinityTerm")?, namespace)))
                    })
                    .collect()
            })
        };
        let mut pod_terms = weighted("/podAffinity/preferredDuringSchedulingIgnoredDuringExecution", 1);
        pod_terms.extend(weighted("/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution", -1));
        let node_terms = affinity
            .pointer("/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |ts| {
                ts.iter()
                    .filter_map(|t| {
                        Some((t.get("weight").and_then(Value::as_i64)?, NodeTerm::of(t.get("preference")?)))
                    })
                    .collect()
            });
        let soft = Soft {
            node_terms,
            pod_terms,
            spread: Spread::all(constraints, "ScheduleAnyway"),
            own_spread: constraints.is_some_and(|cs| !cs.is_empty()),
        };
        PodRules {
            namespace: namespace.to_string(),
            labels,
            requests,
            tolerations,
            node_selector,
            node_affinity,
            affinity: terms("/podAffinity/requiredDuringSchedulingIgnoredDuringExecution"),
            anti_affinity: terms("/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution"),
            spread,
            soft,
        }
    }

    /// A copy of the pod's rules with one more label (a label the controller adds per pod).
    pub fn with_label(&self, key: &str, value: &str) -> PodRules {
        let mut r = self.clone();
        let mut labels: Vec<(Box<str>, Box<str>)> = r.labels.iter().filter(|(k, _)| &**k != key).cloned().collect();
        labels.push((key.into(), value.into()));
        r.labels = labels.into();
        r
    }

    /// Whether placing this pod depends on where other pods run.
    pub fn counts_pods(&self) -> bool {
        !self.affinity.is_empty() || !self.anti_affinity.is_empty() || !self.spread.is_empty()
    }

    fn tolerates(&self, t: &Taint) -> bool {
        self.tolerations.iter().any(|x| x.tolerates(t))
    }

    /// The first NoSchedule or NoExecute taint of the node the pod does not tolerate.
    fn untolerated<'n>(&self, node: &'n NodeInfo) -> Option<&'n Taint> {
        node.taints.iter().find(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") && !self.tolerates(t))
    }

    /// `nodeSelector` and required node affinity (the NodeAffinity filter).
    fn selects(&self, node: &NodeInfo) -> bool {
        self.node_selector.iter().all(|(k, v)| node.labels.get(k) == Some(v))
            && self.node_affinity.as_ref().is_none_or(|terms| terms.iter().any(|t| t.matches(node)))
    }

    /// Where the DaemonSet controller runs a daemon pod: the node's taints are tolerated and
    /// its labels selected (resources and other pods do not matter).
    pub fn daemon_fits(&self, node: &NodeInfo) -> bool {
        self.untolerated(node).is_none() && self.selects(node)
    }

    fn matches_own_affinity(&self) -> bool {
        self.affinity.iter().all(|t| t.matches(&self.namespace, &self.labels))
    }
}

/// Whether a filter's rejection could be undone by preempting pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unschedulable,
    UnschedulableAndUnresolvable,
}

/// Why a node was rejected: the first failing filter's reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: Code,
    pub reasons: Vec<String>,
}

fn reject(code: Code, reason: impl Into<String>) -> Rejection {
    Rejection { code, reasons: vec![reason.into()] }
}

/// What the pod's inter-pod and spread filters compare against, computed once per pod
/// (kube-scheduler's PreFilter state).
#[derive(Debug, Default)]
pub struct Prepared {
    affinity_counts: HashMap<(String, String), i64>,
    anti_counts: HashMap<(String, String), i64>,
    /// Topology domains where a running pod's required anti-affinity rules this pod out.
    existing_anti: HashSet<(String, String)>,
    /// Per spread constraint: pods matching it per domain, and the smallest count.
    spread: Vec<(HashMap<String, i64>, i64)>,
}

/// A running pod with required anti-affinity.
#[derive(Debug, Clone)]
struct AntiHolder {
    node: usize,
    terms: Vec<PodTerm>,
}

/// The nodes of a cluster and, read lazily, the bound pods the rules count.
pub struct Snapshot<'s> {
    store: &'s Store,
    pub nodes: Vec<NodeInfo>,
    index: FastMap<String, usize>,
    /// Bound, live pods by namespace (node index, labels): namespaces read so far.
    by_namespace: HashMap<String, Vec<(usize, PodLabels)>>,
    all_namespaces: bool,
    anti: Option<Vec<AntiHolder>>,
}

/// Whether a stored pod counts for the rules: bound, not terminating, not finished.
fn live_bound(p: &Stored) -> bool {
    !p.meta.node_name.is_empty() && !p.meta.terminating && !matches!(&*p.meta.phase, "Succeeded" | "Failed")
}

impl<'s> Snapshot<'s> {
    pub fn new(store: &'s Store, nodes: Vec<NodeInfo>) -> Snapshot<'s> {
        let index = nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();
        Snapshot { store, nodes, index, by_namespace: HashMap::new(), all_namespaces: false, anti: None }
    }

    pub fn index_of(&self, node: &str) -> Option<usize> {
        self.index.get(node).copied()
    }

    /// Declares the running pods with required anti-affinity (so the store need not be scanned
    /// for them); pods without any may be passed too.
    pub fn set_anti_holders<'a>(&mut self, pods: impl IntoIterator<Item = &'a Arc<Stored>>) {
        let mut holders = Vec::new();
        for p in pods.into_iter().filter(|p| p.meta.required_anti_affinity && live_bound(p)) {
            let Some(node) = self.index_of(&p.meta.node_name) else { continue };
            let rules = PodRules::of(&p.meta.namespace, &p.value(), (0.0, 0.0));
            if !rules.anti_affinity.is_empty() {
                holders.push(AntiHolder { node, terms: rules.anti_affinity });
            }
        }
        self.anti = Some(holders);
    }

    /// Reads the running pods with required anti-affinity from the store, unless declared.
    fn anti_holders(&mut self) {
        if self.anti.is_none() {
            let pods = self.store.all(&StorageKey::core("pods"));
            self.set_anti_holders(pods.iter());
        }
    }

    fn load_namespace(&mut self, ns: &str) {
        if self.all_namespaces || self.by_namespace.contains_key(ns) {
            return;
        }
        let pods = self.store.in_namespace(&StorageKey::core("pods"), ns);
        let list = pods
            .iter()
            .filter(|p| live_bound(p))
            .filter_map(|p| Some((self.index_of(&p.meta.node_name)?, p.meta.labels.clone())))
            .collect();
        self.by_namespace.insert(ns.to_string(), list);
    }

    fn load_all(&mut self) {
        if self.all_namespaces {
            return;
        }
        let mut by_namespace: HashMap<String, Vec<(usize, PodLabels)>> = HashMap::new();
        for p in self.store.all(&StorageKey::core("pods")).iter().filter(|p| live_bound(p)) {
            if let Some(i) = self.index_of(&p.meta.node_name) {
                by_namespace.entry(p.meta.namespace.to_string()).or_default().push((i, p.meta.labels.clone()));
            }
        }
        // Pods bound in this pass but not yet in the store stay counted.
        for (ns, list) in std::mem::take(&mut self.by_namespace) {
            let stored = by_namespace.entry(ns).or_default();
            for entry in list {
                if !stored.contains(&entry) {
                    stored.push(entry);
                }
            }
        }
        self.by_namespace = by_namespace;
        self.all_namespaces = true;
    }

    fn topology_pair(&self, node: usize, key: &str) -> Option<(String, String)> {
        self.nodes[node].labels.get(key).map(|v| (key.to_string(), v.clone()))
    }

    /// kube-scheduler's PreFilter for the pod: counts the pods its rules look at.
    pub fn prepare(&mut self, pod: &PodRules) -> Prepared {
        let mut prep = Prepared::default();
        // Running pods whose required anti-affinity this pod matches (the symmetric rule).
        self.anti_holders();
        for h in self.anti.iter().flatten() {
            for t in h.terms.iter().filter(|t| t.matches(&pod.namespace, &pod.labels)) {
                if let Some(pair) = self.topology_pair(h.node, &t.topology_key) {
                    prep.existing_anti.insert(pair);
                }
            }
        }
        if !pod.counts_pods() {
            return prep;
        }
        let terms = pod.affinity.iter().chain(&pod.anti_affinity);
        if terms.clone().any(|t| t.namespace_selector.is_some()) {
            self.load_all();
        } else {
            let mut namespaces: Vec<String> = terms.flat_map(|t| t.namespaces.iter().cloned()).collect();
            namespaces.push(pod.namespace.clone());
            for ns in namespaces {
                self.load_namespace(&ns);
            }
        }
        let empty = Vec::new();
        let candidates: Vec<(&String, &Vec<(usize, PodLabels)>)> = self.by_namespace.iter().collect();
        for (ns, pods) in &candidates {
            for (node, labels) in pods.iter() {
                if !pod.affinity.is_empty() && pod.affinity.iter().all(|t| t.matches(ns, labels)) {
                    for t in &pod.affinity {
                        if let Some(pair) = self.topology_pair(*node, &t.topology_key) {
                            *prep.affinity_counts.entry(pair).or_default() += 1;
                        }
                    }
                }
                for t in pod.anti_affinity.iter().filter(|t| t.matches(ns, labels)) {
                    if let Some(pair) = self.topology_pair(*node, &t.topology_key) {
                        *prep.anti_counts.entry(pair).or_default() += 1;
                    }
                }
            }
        }
        let own = self.by_namespace.get(&pod.namespace).unwrap_or(&empty);
        for c in &pod.spread {
            let eligible: Vec<bool> = self
                .nodes
                .iter()
                .map(|n| {
                    pod.spread.iter().all(|c| n.labels.contains_key(&c.topology_key))
                        && (!c.honor_affinity || pod.selects(n))
                        && (!c.honor_taints || pod.untolerated(n).is_none())
                })
                .collect();
            let mut counts: HashMap<String, i64> = HashMap::new();
            for (_, n) in self.nodes.iter().enumerate().filter(|(i, _)| eligible[*i]) {
                counts.entry(n.labels[&c.topology_key].clone()).or_default();
            }
            for (node, labels) in own.iter().filter(|(node, _)| eligible[*node]) {
                if c.selector.as_ref().is_some_and(|s| s.matches_labels(labels)) {
                    *counts.entry(self.nodes[*node].labels[&c.topology_key].clone()).or_default() += 1;
                }
            }
            let min = if (counts.len() as i64) < c.min_domains {
                0
            } else {
                counts.values().copied().min().unwrap_or(i64::MAX)
            };
            prep.spread.push((counts, min));
        }
        prep
    }

    /// Runs the filters for one node, in kube-scheduler's order; the first failing one says why.
    pub fn filter(&self, pod: &PodRules, prep: &Prepared, node: usize) -> Result<(), Rejection> {
        use Code::*;
        let n = &self.nodes[node];
        if n.unschedulable {
            let taint = Taint { key: UNSCHEDULABLE_TAINT.into(), value: String::new(), effect: "NoSchedule".into() };
            if !pod.tolerates(&taint) {
                return Err(reject(UnschedulableAndUnresolvable, "node(s) were unschedulable"));
            }
        }
        if let Some(t) = pod.untolerated(n) {
            return Err(reject(
                UnschedulableAndUnresolvable,
                format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value),
            ));
        }
        if !pod.selects(n) {
            return Err(reject(UnschedulableAndUnresolvable, "node(s) didn't match Pod's node affinity/selector"));
        }
        let (cpu, mem) = pod.requests;
        let mut short = Vec::new();
        if n.pods < 1.0 {
            short.push("Too many pods".to_string());
        }
        if cpu > 0.0 || mem > 0.0 {
            const EPSILON: f64 = 1e-9;
            if n.cpu + EPSILON < cpu {
                short.push("Insufficient cpu".to_string());
            }
            if n.mem + EPSILON < mem {
                short.push("Insufficient memory".to_string());
            }
        }
        if !short.is_empty() {
            return Err(Rejection { code: Unschedulable, reasons: short });
        }
        for (c, (counts, min)) in pod.spread.iter().zip(&prep.spread) {
            let Some(domain) = n.labels.get(&c.topology_key) else {
                return Err(reject(
                    UnschedulableAndUnresolvable,
                    "node(s) didn't match pod topology spread constraints (missing required label)",
                ));
            };
            let self_match = i64::from(c.selector.as_ref().is_some_and(|s| s.matches_labels(&pod.labels)));
            let skew = counts.get(domain).copied().unwrap_or(0) + self_match - min;
            if skew > c.max_skew {
                return Err(reject(Unschedulable, "node(s) didn't match pod topology spread constraints"));
            }
        }
        if !pod.affinity.is_empty() {
            let mut pods_exist = true;
            for t in &pod.affinity {
                match n.labels.get(&t.topology_key) {
                    Some(v) => {
                        if prep.affinity_counts.get(&(t.topology_key.clone(), v.clone())).copied().unwrap_or(0) <= 0 {
                            pods_exist = false;
                        }
                    }
                    None => {
                        return Err(reject(UnschedulableAndUnresolvable, "node(s) didn't match pod affinity rules"));
                    }
                }
            }
            // The first of a group of pods with affinity to each other may go anywhere.
            let first_of_group = prep.affinity_counts.is_empty() && pod.matches_own_affinity();
            if !pods_exist && !first_of_group {
                return Err(reject(UnschedulableAndUnresolvable, "node(s) didn't match pod affinity rules"));
            }
        }
        for t in &pod.anti_affinity {
            if let Some(v) = n.labels.get(&t.topology_key)
                && prep.anti_counts.get(&(t.topology_key.clone(), v.clone())).copied().unwrap_or(0) > 0
            {
                return Err(reject(Unschedulable, "node(s) didn't match pod anti-affinity rules"));
            }
        }
        if prep.existing_anti.iter().any(|(k, v)| n.labels.get(k) == Some(v)) {
            return Err(reject(Unschedulable, "node(s) didn't satisfy existing pods anti-affinity rules"));
        }
        Ok(())
    }

    /// kube-scheduler's scoring of the nodes that passed the filters, with its default plugins
    /// and weights: TaintToleration (3: untolerated PreferNoSchedule taints), NodeAffinity (2:
    /// preferred node affinity), NodeResourcesFit (1: least allocated CPU and memory),
    /// PodTopologySpread (2: `ScheduleAnyway` constraints, or the cluster's default ones, at most
    /// 3 apart by node and 5 by zone, over the pods of the same controller, for a pod without
    /// constraints of its own), InterPodAffinity (2: preferred pod affinity and anti-affinity)
    /// and NodeResourcesBalancedAllocation (1). Not scored: ImageLocality (the simulator keeps
    /// no images on nodes) and other pods' preferred terms towards this pod. `siblings` are the
    /// nodes of the pods of the pod's controller, if it has one. kube-scheduler picks at random
    /// among the best; here the node with the most free pod slots, then the first by name.
    pub fn best(&mut self, pod: &PodRules, siblings: Option<&[usize]>, feasible: &[usize]) -> Option<usize> {
        if feasible.len() <= 1 {
            return feasible.first().copied();
        }
        let mut total = vec![0i64; feasible.len()];
        let add = |total: &mut Vec<i64>, scores: Vec<i64>, weight: i64| {
            for (t, s) in total.iter_mut().zip(scores) {
                *t += weight * s;
            }
        };
        let taints: Vec<i64> = feasible
            .iter()
            .map(|&i| {
                self.nodes[i].taints.iter().filter(|t| t.effect == "PreferNoSchedule" && !pod.tolerates(t)).count()
                    as i64
            })
            .collect();
        add(&mut total, normalize_default(taints, true), 3);
        if !pod.soft.node_terms.is_empty() {
            let raw = feasible
                .iter()
                .map(|&i| pod.soft.node_terms.iter().filter(|(_, t)| t.matches(&self.nodes[i])).map(|(w, _)| *w).sum())
                .collect();
            add(&mut total, normalize_default(raw, false), 2);
        }
        let (cpu, mem) = pod.requests;
        for (t, &i) in total.iter_mut().zip(feasible) {
            let n = &self.nodes[i];
            // The share of the allocatable requested once the pod runs there.
            let share = |alloc: f64, free: f64, req: f64| if alloc > 0.0 { (alloc - free + req) / alloc } else { 1.0 };
            let (cpu_share, mem_share) = (share(n.cpu_allocatable, n.cpu, cpu), share(n.mem_allocatable, n.mem, mem));
            let least = |share: f64| (((1.0 - share) * 100.0).floor() as i64).clamp(0, 100);
            *t += (least(cpu_share) + least(mem_share)) / 2;
            if cpu > 0.0 || mem > 0.0 {
                let deviation = (cpu_share.min(1.0) - mem_share.min(1.0)).abs() / 2.0;
                *t += ((1.0 - deviation) * 100.0) as i64;
            }
        }
        if let Some(scores) = self.spread_scores(pod, siblings, feasible) {
            add(&mut total, scores, 2);
        }
        if !pod.soft.pod_terms.is_empty() {
            let scores = self.pod_affinity_scores(pod, feasible);
            add(&mut total, scores, 2);
        }
        let mut best = 0;
        for k in 1..feasible.len() {
            let (a, b) = (&self.nodes[feasible[k]], &self.nodes[feasible[best]]);
            let better =
                total[k].cmp(&total[best]).then_with(|| a.pods.total_cmp(&b.pods)).then_with(|| b.name.cmp(&a.name));
            if better.is_gt() {
                best = k;
            }
        }
        Some(feasible[best])
    }

    /// PodTopologySpread's scores: fewer matching pods in a node's domains scores higher.
    fn spread_scores(&mut self, pod: &PodRules, siblings: Option<&[usize]>, feasible: &[usize]) -> Option<Vec<i64>> {
        if pod.soft.own_spread {
            if pod.soft.spread.is_empty() {
                return None;
            }
            return Some(self.own_spread_scores(pod, feasible));
        }
        // The cluster's default constraints over the controller's pods: by host at most 3 apart,
        // by zone at most 5; a node without the zone label just scores nothing for it.
        let siblings = siblings?;
        let mut on_node: FastMap<usize, i64> = FastMap::default();
        let mut in_zone: FastMap<&str, i64> = FastMap::default();
        for &node in siblings {
            let n = &self.nodes[node];
            if pod.selects(n) {
                *on_node.entry(node).or_default() += 1;
                if let Some(zone) = &n.zone {
                    *in_zone.entry(zone.as_str()).or_default() += 1;
                }
            }
        }
        let host_weight = (feasible.len() as f64 + 2.0).ln();
        let zones: std::collections::HashSet<&str> =
            feasible.iter().filter_map(|&i| self.nodes[i].zone.as_deref()).collect();
        let zone_weight = (zones.len() as f64 + 2.0).ln();
        let raw: Vec<i64> = feasible
            .iter()
            .map(|&i| {
                let mut score = *on_node.get(&i).unwrap_or(&0) as f64 * host_weight + 2.0;
                if let Some(zone) = &self.nodes[i].zone {
                    score += *in_zone.get(zone.as_str()).unwrap_or(&0) as f64 * zone_weight + 4.0;
                }
                score.round() as i64
            })
            .collect();
        Some(normalize_spread(&raw, &vec![false; raw.len()]))
    }

    /// The scores of the pod's own `ScheduleAnyway` constraints: nodes without a constraint's
    /// topology label are left out (score 0).
    fn own_spread_scores(&mut self, pod: &PodRules, feasible: &[usize]) -> Vec<i64> {
        self.load_namespace(&pod.namespace);
        let own = self.by_namespace.get(&pod.namespace).map_or(&[][..], Vec::as_slice);
        // (topology key, max skew, matching pods per domain)
        let mut constraints: Vec<(&str, i64, HashMap<&str, i64>)> = Vec::new();
        for c in &pod.soft.spread {
            let mut counts: HashMap<&str, i64> = HashMap::new();
            for (node, labels) in own {
                let n = &self.nodes[*node];
                if (c.honor_affinity && !pod.selects(n)) || (c.honor_taints && pod.untolerated(n).is_some()) {
                    continue;
                }
                if c.selector.as_ref().is_some_and(|s| s.matches_labels(labels))
                    && let Some(domain) = n.labels.get(&c.topology_key)
                {
                    *counts.entry(domain.as_str()).or_default() += 1;
                }
            }
            constraints.push((c.topology_key.as_str(), c.max_skew, counts));
        }
        let ignored: Vec<bool> = feasible
            .iter()
            .map(|&i| constraints.iter().any(|(key, ..)| !self.nodes[i].labels.contains_key(*key)))
            .collect();
        let weights: Vec<f64> = constraints
            .iter()
            .map(|(key, ..)| {
                let domains: std::collections::HashSet<&str> = feasible
                    .iter()
                    .zip(&ignored)
                    .filter(|(_, ignored)| !**ignored)
                    .filter_map(|(&i, _)| self.nodes[i].labels.get(*key).map(String::as_str))
                    .collect();
                (domains.len() as f64 + 2.0).ln()
            })
            .collect();
        let raw: Vec<i64> = feasible
            .iter()
            .map(|&i| {
                let n = &self.nodes[i];
                let mut score = 0.0;
                for ((key, max_skew, counts), weight) in constraints.iter().zip(&weights) {
                    if let Some(domain) = n.labels.get(*key) {
                        score += *counts.get(domain.as_str()).unwrap_or(&0) as f64 * weight + (*max_skew - 1) as f64;
                    }
                }
                score.round() as i64
            })
            .collect();
        normalize_spread(&raw, &ignored)
    }

    /// InterPodAffinity's scores: the weights of the preferred terms the pods in a node's
    /// domains match, affinity adding and anti-affinity taking away, scaled to 0..=100.
    fn pod_affinity_scores(&mut self, pod: &PodRules, feasible: &[usize]) -> Vec<i64> {
        if pod.soft.pod_terms.iter().any(|(_, t)| t.namespace_selector.is_some()) {
            self.load_all();
        } else {
            let mut namespaces: Vec<String> =
                pod.soft.pod_terms.iter().flat_map(|(_, t)| t.namespaces.iter().cloned()).collect();
            namespaces.push(pod.namespace.clone());
            for ns in namespaces {
                self.load_namespace(&ns);
            }
        }
        let mut by_domain: HashMap<(&str, &str), i64> = HashMap::new();
        for (ns, pods) in &self.by_namespace {
            for (node, labels) in pods {
                for (weight, t) in pod.soft.pod_terms.iter().filter(|(_, t)| t.matches(ns, labels)) {
                    if let Some(domain) = self.nodes[*node].labels.get(&t.topology_key) {
                        *by_domain.entry((t.topology_key.as_str(), domain.as_str())).or_default() += weight;
                    }
                }
            }
        }
        let mut keys: Vec<&str> = pod.soft.pod_terms.iter().map(|(_, t)| t.topology_key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let raw: Vec<i64> = feasible
            .iter()
            .map(|&i| {
                keys.iter()
                    .filter_map(|k| {
                        self.nodes[i].labels.get(*k).map(|v| by_domain.get(&(*k, v.as_str())).unwrap_or(&0))
                    })
                    .sum()
            })
            .collect();
        let (min, max) = (raw.iter().copied().min().unwrap_or(0), raw.iter().copied().max().unwrap_or(0));
        raw.iter()
            .map(|&s| if max > min { (100.0 * (s - min) as f64 / (max - min) as f64) as i64 } else { 0 })
            .collect()
    }

    /// Records the pod as bound to the node: its room, and the pods the rules count.
    pub fn bind(&mut self, pod: &PodRules, node: usize) {
        self.nodes[node].take(pod.requests);
        if let Some(list) = self.by_namespace.get_mut(&pod.namespace) {
            list.push((node, pod.labels.clone()));
        } else if self.all_namespaces {
            self.by_namespace.insert(pod.namespace.clone(), vec![(node, pod.labels.clone())]);
        }
        if !pod.anti_affinity.is_empty()
            && let Some(holders) = &mut self.anti
        {
            holders.push(AntiHolder { node, terms: pod.anti_affinity.clone() });
        }
    }
}

/// PodTopologySpread's normalisation: the fewest matching pods scores 100; nodes left out, 0.
fn normalize_spread(raw: &[i64], ignored: &[bool]) -> Vec<i64> {
    let kept = || raw.iter().zip(ignored).filter(|(_, ignored)| !**ignored).map(|(s, _)| *s);
    let (min, max) = (kept().min().unwrap_or(0), kept().max().unwrap_or(0));
    raw.iter()
        .zip(ignored)
        .map(|(&s, &ignored)| match () {
            _ if ignored => 0,
            _ if max == 0 => 100,
            _ => 100 * (max + min - s) / max,
        })
        .collect()
}

/// kube-scheduler's `DefaultNormalizeScore`: scores scaled to 0..=100 by the highest, reversed
/// (fewer is better) when asked; all zero scores stay zero, or become 100 when reversed.
fn normalize_default(raw: Vec<i64>, reverse: bool) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.into_iter()
        .map(|s| match (max, reverse) {
            (0, true) => 100,
            (0, false) => 0,
            (_, true) => 100 - 100 * s / max,
            (_, false) => 100 * s / max,
        })
        .collect()
}

/// kube-scheduler's message for a pod no node takes: each node counted under its rejection's
/// reasons, `COUNT REASON` sorted as strings (as Go's `sort.Strings` does), then what
/// preemption found (no victims where the pod's priority is no higher than anyone's, which the
/// simulator assumes; nothing to gain where the rejection is unresolvable).
pub fn fit_error<'r>(nodes: usize, rejections: impl IntoIterator<Item = &'r Rejection>) -> String {
    if nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let mut preemption: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rejections {
        for reason in &r.reasons {
            *reasons.entry(reason).or_default() += 1;
        }
        let p = match r.code {
            Code::Unschedulable => "No preemption victims found for incoming pod",
            Code::UnschedulableAndUnresolvable => "Preemption is not helpful for scheduling",
        };
        *preemption.entry(p).or_default() += 1;
    }
    let histogram = |m: BTreeMap<&str, usize>| {
        let mut v: Vec<String> = m.into_iter().map(|(k, n)| format!("{n} {k}")).collect();
        v.sort();
        v.join(", ")
    };
    format!(
        "0/{nodes} nodes are available: {}. preemption: 0/{nodes} nodes are available: {}.",
        histogram(reasons),
        histogram(preemption)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: Value) -> Value {
        let mut l = labels;
        l["kubernetes.io/hostname"] = json!(name);
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": l}, "spec": {},
               "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "10"},
                          "conditions": [{"type": "Ready", "status": "True"}]}})
    }

    /// Loads bound pods (namespace, name, labels, node, spec) and returns the snapshot of the nodes.
    fn cluster<'s>(store: &'s Store, nodes: &[Value], pods: &[(&str, &str, Value, &str, Value)]) -> Snapshot<'s> {
        for (ns, name, labels, node, spec) in pods {
            let mut spec = spec.clone();
            spec["nodeName"] = json!(node);
            spec["containers"] = json!([{"name": "c", "image": "pause"}]);
            let pod = json!({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"namespace": ns, "name": name, "labels": labels},
                             "spec": spec, "status": {"phase": "Running"}});
            store.load(&StorageKey::core("pods"), pod).unwrap();
        }
        let mut infos: Vec<NodeInfo> = nodes.iter().map(NodeInfo::for_scheduler).collect();
        for info in &mut infos {
            for p in store.pods_on_node(&info.name) {
                info.take(p.meta.requests);
            }
        }
        Snapshot::new(store, infos)
    }

    fn rules(labels: Value, spec: Value) -> PodRules {
        PodRules::of("default", &json!({"metadata": {"labels": labels}, "spec": spec}), (0.0, 0.0))
    }

    /// The nodes the pod may go to, or each node's first reason.
    fn outcome(snap: &mut Snapshot<'_>, pod: &PodRules) -> Vec<Result<String, String>> {
        let prep = snap.prepare(pod);
        (0..snap.nodes.len())
            .map(|i| match snap.filter(pod, &prep, i) {
                Ok(()) => Ok(snap.nodes[i].name.clone()),
                Err(r) => Err(r.reasons.join("; ")),
            })
            .collect()
    }

    fn fits(snap: &mut Snapshot<'_>, pod: &PodRules) -> Vec<String> {
        outcome(snap, pod).into_iter().filter_map(Result::ok).collect()
    }

    fn required_nodes(terms: Value) -> Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    #[test]
    fn required_node_affinity_ors_terms_ands_expressions_with_gt_lt_and_match_fields() {
        let store = Store::new(1_000);
        let nodes = [
            node("a", json!({"zone": "z1", "cores": "8", "gpu": "yes"})),
            node("b", json!({"zone": "z2", "cores": "16"})),
            node("c", json!({"zone": "z3", "cores": "x"})),
        ];
        let mut snap = cluster(&store, &nodes, &[]);
        let expr = |e: Value| required_nodes(json!([{"matchExpressions": e}]));
        let case = |e: Value| rules(json!({}), expr(e));
        assert_eq!(
            fits(&mut snap, &case(json!([{"key": "zone", "operator": "In", "values": ["z1", "z2"]}]))),
            ["a", "b"]
        );
        assert_eq!(fits(&mut snap, &case(json!([{"key": "zone", "operator": "NotIn", "values": ["z1"]}]))), ["b", "c"]);
        assert_eq!(fits(&mut snap, &case(json!([{"key": "gpu", "operator": "Exists"}]))), ["a"]);
        assert_eq!(fits(&mut snap, &case(json!([{"key": "gpu", "operator": "DoesNotExist"}]))), ["b", "c"]);
        // Gt and Lt compare integers; a label that is not one matches neither.
        assert_eq!(fits(&mut snap, &case(json!([{"key": "cores", "operator": "Gt", "values": ["8"]}]))), ["b"]);
        assert_eq!(fits(&mut snap, &case(json!([{"key": "cores", "operator": "Lt", "values": ["16"]}]))), ["a"]);
        // Expressions of a term are ANDed.
        let both = json!([{"key": "zone", "operator": "In", "values": ["z1", "z2"]}, {"key": "cores", "operator": "Gt", "values": ["10"]}]);
        assert_eq!(fits(&mut snap, &case(both)), ["b"]);
        // Terms are ORed; matchFields select by name; an empty term matches nothing.
        let terms = json!([
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]},
            {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
            {}
        ]);
        assert_eq!(fits(&mut snap, &rules(json!({}), required_nodes(terms))), ["a", "c"]);
        let not_c = json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["c"]}]}]);
        assert_eq!(fits(&mut snap, &rules(json!({}), required_nodes(not_c))), ["a", "b"]);
        // nodeSelector too; preferred terms do not restrict.
        let spec = json!({"nodeSelector": {"zone": "z2"}, "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}}]}}});
        let out = outcome(&mut snap, &rules(json!({}), spec));
        assert_eq!(out[1], Ok("b".to_string()));
        assert_eq!(out[0], Err("node(s) didn't match Pod's node affinity/selector".to_string()));
    }

    #[test]
    fn cordons_taints_not_ready_and_room_are_checked_in_the_scheduler_s_order() {
        let store = Store::new(1_000);
        let mut cordoned = node("cordoned", json!({}));
        cordoned["spec"] = json!({"unschedulable": true, "taints": [{"key": "t", "effect": "NoSchedule"}]});
        let mut tainted = node("tainted", json!({}));
        tainted["spec"]["taints"] = json!([{"key": "soft", "effect": "PreferNoSchedule"}, {"key": "dedicated", "value": "db", "effect": "NoSchedule"}]);
        let mut down = node("down", json!({}));
        down["status"]["conditions"][0]["status"] = json!("False");
        let mut full = node("full", json!({}));
        full["status"]["allocatable"] = json!({"cpu": "1", "memory": "1Gi", "pods": "1"});
        let nodes = [cordoned, tainted, down, full, node("free", json!({"other": "x"}))];
        let mut snap = cluster(&store, &nodes, &[("default", "there", json!({}), "full", json!({}))]);
        let mut pod = rules(json!({}), json!({"nodeSelector": {"other": "x"}}));
        pod.requests = (2.0, 2.0 * 1024.0 * 1024.0 * 1024.0);
        let out = outcome(&mut snap, &pod);
        assert_eq!(
            out,
            [
                Err("node(s) were unschedulable".to_string()),
                Err("node(s) had untolerated taint {dedicated: db}".to_string()),
                Err("node(s) had untolerated taint {node.kubernetes.io/not-ready: }".to_string()),
                Err("node(s) didn't match Pod's node affinity/selector".to_string()),
                Ok("free".to_string()),
            ]
        );
        // Room: every short resource is a reason.
        let mut big = rules(json!({}), json!({}));
        big.requests = (2.0, 2.0 * 1024.0 * 1024.0 * 1024.0);
        let prep = snap.prepare(&big);
        let r = snap.filter(&big, &prep, 3).unwrap_err();
        assert_eq!(r.reasons, ["Too many pods", "Insufficient cpu", "Insufficient memory"]);
        assert_eq!(r.code, Code::Unschedulable);
        // Tolerating everything passes the cordon, the taints and the not-ready taint.
        let all = rules(json!({}), json!({"tolerations": [{"operator": "Exists"}]}));
        assert_eq!(fits(&mut snap, &all), ["cordoned", "tainted", "down", "free"]);
        let db = rules(
            json!({}),
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
        );
        assert!(fits(&mut snap, &db).contains(&"tainted".to_string()));
        // The PreferNoSchedule taint the pod does not tolerate costs the tainted node the choice.
        snap.nodes[4].take((3.0, 0.0));
        assert_eq!(snap.best(&db, None, &[1, 4]), Some(4));
        assert_eq!(snap.best(&all, None, &[1, 4]), Some(1));
    }

    fn pick(snap: &mut Snapshot<'_>, pod: &PodRules, siblings: Option<&[usize]>, feasible: &[usize]) -> String {
        let picked = snap.best(pod, siblings, feasible);
        picked.map(|i| snap.nodes[i].name.clone()).unwrap_or_default()
    }

    #[test]
    fn scoring_prefers_the_node_without_a_preferred_anti_affinity_match_and_with_fewer_siblings() {
        let store = Store::new(1_000);
        let nodes = [node("a", json!({})), node("b", json!({})), node("c", json!({}))];
        let api = json!({"app": "api"});
        let mut snap = cluster(
            &store,
            &nodes,
            &[("default", "api-1", api.clone(), "a", json!({})), ("default", "api-2", api.clone(), "b", json!({}))],
        );
        let all = [0, 1, 2];
        // Preferred anti-affinity by host: the node with no api pod.
        let spec = json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": api}, "topologyKey": "kubernetes.io/hostname"}}]}}});
        assert_eq!(pick(&mut snap, &rules(api.clone(), spec), None, &all), "c");
        // Preferred affinity: a node with one.
        let spec = json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": {"labelSelector": {"matchLabels": api}, "topologyKey": "kubernetes.io/hostname"}}]}}});
        assert_eq!(pick(&mut snap, &rules(json!({}), spec), None, &all), "a");
        // No rules of its own: the cluster's default spread over the controller's pods (two on
        // a, one on c) sends it to b.
        let plain = rules(json!({}), json!({}));
        assert_eq!(pick(&mut snap, &plain, Some(&[0, 0, 2]), &all), "b");
        // ScheduleAnyway spread of its own counts the pods its selector picks (api on a and b).
        let spec = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": api}}]});
        assert_eq!(pick(&mut snap, &rules(api.clone(), spec), Some(&[2, 2]), &all), "c");
        // Preferred node affinity.
        let spec = json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}}]}}});
        assert_eq!(pick(&mut snap, &rules(json!({}), spec), None, &all), "b");
    }

    #[test]
    fn scoring_prefers_the_least_allocated_node_and_breaks_ties_by_free_slots_then_name() {
        let store = Store::new(1_000);
        let nodes = [node("a", json!({})), node("b", json!({})), node("c", json!({}))];
        let mut snap = cluster(&store, &nodes, &[("default", "x", json!({}), "a", json!({}))]);
        let mut pod = rules(json!({}), json!({}));
        pod.requests = (1.0, 1024.0 * 1024.0 * 1024.0);
        // b and c alike: the first by name; a runs a pod.
        assert_eq!(pick(&mut snap, &pod, None, &[0, 1, 2]), "b");
        snap.nodes[1].take((2.0, 0.0));
        assert_eq!(pick(&mut snap, &pod, None, &[0, 1, 2]), "c");
        snap.nodes[2].take((3.0, 4.0 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(pick(&mut snap, &pod, None, &[0, 1, 2]), "a");
    }

    fn anti(labels: Value, key: &str) -> Value {
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": labels}, "topologyKey": key}]}}})
    }

    #[test]
    fn required_anti_affinity_by_host_and_zone_and_the_running_pods_rules_too() {
        let store = Store::new(1_000);
        let nodes = [
            node("a", json!({"zone": "z1"})),
            node("b", json!({"zone": "z1"})),
            node("c", json!({"zone": "z2"})),
            node("d", json!({})),
        ];
        let mut snap = cluster(
            &store,
            &nodes,
            &[
                ("default", "web-1", json!({"app": "web"}), "a", json!({})),
                ("other", "web-x", json!({"app": "web"}), "c", json!({})),
            ],
        );
        let web = rules(json!({"app": "web"}), anti(json!({"app": "web"}), "kubernetes.io/hostname"));
        let out = outcome(&mut snap, &web);
        assert_eq!(out[0], Err("node(s) didn't match pod anti-affinity rules".to_string()));
        // Another namespace's pods do not count unless the term names it.
        assert_eq!(fits(&mut snap, &web), ["b", "c", "d"]);
        let zone = rules(json!({"app": "web"}), anti(json!({"app": "web"}), "zone"));
        // A node without the topology label is in no domain.
        assert_eq!(fits(&mut snap, &zone), ["c", "d"]);
        let mut everywhere = anti(json!({"app": "web"}), "zone");
        everywhere["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["namespaces"] =
            json!(["default", "other"]);
        assert_eq!(fits(&mut snap, &rules(json!({}), everywhere)), ["d"]);
        // Binding updates the counts.
        snap.bind(&web, 1);
        assert_eq!(fits(&mut snap, &web), ["c", "d"]);
        // Symmetry: a running pod's required anti-affinity keeps matching pods out of its domain.
        let store2 = Store::new(1_000);
        let mut snap2 = cluster(
            &store2,
            &nodes,
            &[("default", "db-0", json!({"app": "db"}), "a", anti(json!({"app": "batch"}), "zone"))],
        );
        let batch = rules(json!({"app": "batch"}), json!({}));
        let out = outcome(&mut snap2, &batch);
        assert_eq!(out[1], Err("node(s) didn't satisfy existing pods anti-affinity rules".to_string()));
        assert_eq!(fits(&mut snap2, &batch), ["c", "d"]);
        assert_eq!(fits(&mut snap2, &rules(json!({"app": "web"}), json!({}))), ["a", "b", "c", "d"]);
        // Pods placed in the same pass with anti-affinity count for the next ones.
        let store3 = Store::new(1_000);
        let mut snap3 = cluster(&store3, &nodes, &[]);
        let holder = rules(json!({"app": "db"}), anti(json!({"app": "batch"}), "kubernetes.io/hostname"));
        assert_eq!(fits(&mut snap3, &holder).len(), 4);
        snap3.bind(&holder, 2);
        assert_eq!(fits(&mut snap3, &batch), ["a", "b", "d"]);
    }

    #[test]
    fn required_pod_affinity_needs_a_matching_pod_in_the_domain_except_for_the_first() {
        let store = Store::new(1_000);
        let nodes =
            [node("a", json!({"zone": "z1"})), node("b", json!({"zone": "z1"})), node("c", json!({"zone": "z2"}))];
        let mut snap = cluster(&store, &nodes, &[("default", "cache-0", json!({"app": "cache"}), "b", json!({}))]);
        let near = |key: &str, sel: Value, labels: Value| {
            rules(
                labels,
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": sel}, "topologyKey": key}]}}}),
            )
        };
        assert_eq!(fits(&mut snap, &near("zone", json!({"app": "cache"}), json!({}))), ["a", "b"]);
        assert_eq!(fits(&mut snap, &near("kubernetes.io/hostname", json!({"app": "cache"}), json!({}))), ["b"]);
        let out = outcome(&mut snap, &near("zone", json!({"app": "none"}), json!({})));
        assert_eq!(out[0], Err("node(s) didn't match pod affinity rules".to_string()));
        // The first of a group with affinity to itself may go anywhere the topology key exists.
        assert_eq!(fits(&mut snap, &near("zone", json!({"app": "group"}), json!({"app": "group"}))), ["a", "b", "c"]);
    }

    #[test]
    fn topology_spread_do_not_schedule_bounds_the_skew_over_eligible_domains() {
        let store = Store::new(1_000);
        let nodes = [
            node("a", json!({"zone": "z1", "pool": "p"})),
            node("b", json!({"zone": "z1", "pool": "p"})),
            node("c", json!({"zone": "z2", "pool": "p"})),
            node("d", json!({"zone": "z3"})),
            node("e", json!({"pool": "p"})),
        ];
        let web = |n: &str, node: &'static str| ("default", n.to_string(), json!({"app": "web"}), node, json!({}));
        let pods: Vec<(&str, String, Value, &str, Value)> = vec![web("w1", "a"), web("w2", "b"), web("w3", "c")];
        let pods: Vec<(&str, &str, Value, &str, Value)> =
            pods.iter().map(|(ns, n, l, node, s)| (*ns, n.as_str(), l.clone(), *node, s.clone())).collect();
        let mut snap = cluster(&store, &nodes, &pods);
        let spread = |skew: i64, when: &str, selector: Value| {
            rules(
                json!({"app": "web"}),
                json!({"nodeSelector": {"pool": "p"}, "topologySpreadConstraints": [
                    {"maxSkew": skew, "topologyKey": "zone", "whenUnsatisfiable": when, "labelSelector": {"matchLabels": selector}}]}),
            )
        };
        // Domains z1 (2 pods) and z2 (1); z3's node is not in the pool, so not a domain.
        let out = outcome(&mut snap, &spread(1, "DoNotSchedule", json!({"app": "web"})));
        assert_eq!(out[0], Err("node(s) didn't match pod topology spread constraints".to_string()));
        assert_eq!(out[2], Ok("c".to_string()));
        assert_eq!(
            out[4],
            Err("node(s) didn't match pod topology spread constraints (missing required label)".to_string())
        );
        assert_eq!(fits(&mut snap, &spread(2, "DoNotSchedule", json!({"app": "web"}))), ["a", "b", "c"]);
        // ScheduleAnyway does not restrict; a selector the pod does not match counts no self.
        assert_eq!(fits(&mut snap, &spread(1, "ScheduleAnyway", json!({"app": "web"}))), ["a", "b", "c", "e"]);
        assert_eq!(fits(&mut snap, &spread(1, "DoNotSchedule", json!({"app": "other"}))), ["a", "b", "c"]);
        // Binding to z2 evens the domains out.
        let pod = spread(1, "DoNotSchedule", json!({"app": "web"}));
        snap.bind(&pod, 2);
        assert_eq!(fits(&mut snap, &pod), ["a", "b", "c"]);
    }

    #[test]
    fn the_message_counts_nodes_per_reason_sorted_as_strings_then_preemption() {
        let r = |code, reasons: &[&str]| Rejection { code, reasons: reasons.iter().map(|s| s.to_string()).collect() };
        let mut all = vec![
            r(
                Code::UnschedulableAndUnresolvable,
                &["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"]
            );
            3
        ];
        all.extend(vec![r(Code::Unschedulable, &["Insufficient memory"]); 10]);
        all.extend(vec![r(Code::Unschedulable, &["node(s) didn't match pod anti-affinity rules"]); 20]);
        assert_eq!(
            fit_error(33, &all),
            "0/33 nodes are available: 10 Insufficient memory, 20 node(s) didn't match pod anti-affinity rules, \
             3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/33 nodes are \
             available: 3 Preemption is not helpful for scheduling, 30 No preemption victims found for incoming pod."
        );
        let both = [r(Code::Unschedulable, &["Insufficient cpu", "Insufficient memory"])];
        assert_eq!(
            fit_error(1, &both),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption: 0/1 nodes are available: \
             1 No preemption victims found for incoming pod."
        );
        assert_eq!(fit_error(0, &[]), "no nodes available to schedule pods");
    }
}
