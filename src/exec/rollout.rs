//! Node rolls: which nodes a roll takes (kubelets at one of the step's moves), and in which
//! batches: a canary first, then batches of `--max-unavailable` where no two nodes hold pods of
//! the same disruption budget when that can be avoided. Each batch's nodes roll together; the
//! ones that upgraded are uncordoned before anything else is reported, then a health gate
//! decides whether the next batch may start.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::drain;
use super::journal::{NodePhase, NodeRecord};
use super::node::Rolled;
use super::{Answer, Event, ExecError, Executor, Question};
use crate::graph::KubeletMove;
use crate::k8s::node as nodes;
use crate::version::Version;

/// Labels that name a node's pool: EKS node groups, GKE node pools, AKS agent pools, kops
/// instance groups, Cluster API MachineDeployments, Karpenter node pools, and the simulator's.
pub const POOL_LABELS: &[&str] = &[
    "eks.amazonaws.com/nodegroup",
    "cloud.google.com/gke-nodepool",
    "kubernetes.azure.com/agentpool",
    "agentpool",
    "kops.k8s.io/instancegroup",
    "cluster.x-k8s.io/deployment-name",
    "karpenter.sh/nodepool",
    "sim.k8s-upgrade.dev/pool",
];

/// The pool a node belongs to (empty: no pool label; such nodes form one pool).
pub fn pool_of(labels: Option<&BTreeMap<String, String>>) -> String {
    labels.and_then(|l| POOL_LABELS.iter().find_map(|k| l.get(*k).cloned())).unwrap_or_default()
}

/// `--max-unavailable`: nodes of each pool upgraded at once, as a count or a share of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxUnavailable {
    Count(usize),
    /// Percent of the pool, rounded down, at least 1 (as Kubernetes rounds maxUnavailable).
    Percent(u32),
}

impl MaxUnavailable {
    pub fn for_pool(self, pool_size: usize) -> usize {
        match self {
            MaxUnavailable::Count(n) => n.max(1),
            MaxUnavailable::Percent(p) => (pool_size * p as usize / 100).max(1),
        }
    }
}

impl std::str::FromStr for MaxUnavailable {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            match p.trim().parse::<u32>() {
                Ok(p) if (1..=100).contains(&p) => Ok(MaxUnavailable::Percent(p)),
                _ => Err(format!("'{s}' is not a percentage from 1% to 100%")),
            }
        } else {
            match t.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(MaxUnavailable::Count(n)),
                _ => Err(format!("'{s}' is not a node count (1 or more) or a percentage like 25%")),
            }
        }
    }
}

/// A node waiting to roll, as the batch choice sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub target: Version,
    pub pool: String,
    /// Budget (`ns/name`) → pods of it on the node.
    pub budgets: BTreeMap<String, u32>,
}

/// The next batch out of `remaining` (indexes, in name order): at most `limit[pool]` nodes of each
/// pool and `cap` in all, and together never more pods of a budget than it allows disrupting now
/// (`allowed`, absent: unguarded). A node that alone holds more than a budget allows goes alone:
/// its drain then waits for the budget, as a single node would.
pub fn next_batch(
    remaining: &[Candidate],
    allowed: &BTreeMap<String, u32>,
    limit: &BTreeMap<String, usize>,
    cap: usize,
) -> Vec<usize> {
    let mut taken: Vec<usize> = Vec::new();
    let mut per_pool: BTreeMap<&str, usize> = BTreeMap::new();
    let mut used: BTreeMap<&str, u32> = BTreeMap::new();
    for (i, c) in remaining.iter().enumerate() {
        if taken.len() >= cap.max(1) {
            break;
        }
        let pool_used = per_pool.get(c.pool.as_str()).copied().unwrap_or(0);
        if pool_used >= limit.get(&c.pool).copied().unwrap_or(1).max(1) {
            continue;
        }
        let fits = c
            .budgets
            .iter()
            .all(|(b, n)| allowed.get(b).is_none_or(|a| used.get(b.as_str()).copied().unwrap_or(0) + n <= *a));
        if !fits && !taken.is_empty() {
            continue;
        }
        taken.push(i);
        *per_pool.entry(c.pool.as_str()).or_default() += 1;
        for (b, n) in &c.budgets {
            *used.entry(b.as_str()).or_default() += n;
        }
        if !fits {
            // Over a budget on its own: it goes alone.
            break;
        }
    }
    taken
}

/// Whether a kubelet at `kubelet` is taken by `m` (at its `from`, or past it on the way).
pub fn takes(m: &KubeletMove, kubelet: &Version) -> bool {
    m.from.without_suffix().core() == kubelet.without_suffix().core()
        || (m.from.minor_version() == kubelet.minor_version() && *kubelet < m.to)
}

impl Executor<'_> {
    pub(super) async fn node_roll(
        &self,
        step: &crate::plan::Step,
        moves: &[KubeletMove],
    ) -> Result<Option<String>, ExecError> {
        // Managed pools are replaced by their provider, pool by pool (see `managed`).
        if let super::upgrader::Upgrader::Provider(m) = &self.options.upgrader {
            return self.provider_node_roll(step, m, moves).await;
        }
        let all = self.nodes().await?;
        let recorded: BTreeMap<String, NodeRecord> = {
            let j = self.journal.lock().await;
            j.nodes
                .iter()
                .filter_map(|(k, r)| k.strip_prefix(&format!("{}/", step.order)).map(|n| (n.to_string(), r.clone())))
                .collect()
        };
        let mut todo: Vec<(String, Version)> = Vec::new();
        for n in all.iter().filter(|n| !nodes::is_control_plane(n)) {
            let name = nodes::name(n).to_string();
            if let Some(r) = recorded.get(&name) {
                if !matches!(r.phase, NodePhase::Done | NodePhase::Quarantined) {
                    todo.push((name, r.target.clone()));
                }
                continue;
            }
            let Some(k) = nodes::kubelet_version(n) else { continue };
            if let Some(m) = moves.iter().find(|m| takes(m, &k)) {
                todo.push((name, m.to.clone()));
            }
        }
        if todo.is_empty() {
            return Ok(None);
        }
        todo.sort();
        // Pods evicted from one node should not land on the next one to drain.
        if self.options.taint_pending && !self.options.dry_run && todo.len() > 1 {
            let marks = todo.iter().map(|(n, _)| drain::mark_pending(&self.client, &self.cache, n, true));
            for ((name, _), r) in todo.iter().zip(futures::future::join_all(marks).await) {
                if let Err(e) = r {
                    self.emit(Event::node_log(name, format!("warning: {e} (pods evicted elsewhere may land on it)")));
                }
            }
        }
        let pools: BTreeMap<String, String> =
            all.iter().map(|n| (nodes::name(n).to_string(), pool_of(n.metadata.labels.as_ref()))).collect();
        let mut pool_sizes: BTreeMap<String, usize> = BTreeMap::new();
        for n in all.iter().filter(|n| !nodes::is_control_plane(n)) {
            *pool_sizes.entry(pool_of(n.metadata.labels.as_ref())).or_default() += 1;
        }
        let limit: BTreeMap<String, usize> =
            pool_sizes.iter().map(|(p, size)| (p.clone(), self.options.max_unavailable.for_pool(*size))).collect();
        let widen = todo.len() > 1 && recorded.is_empty();
        let total = todo.len();
        let mut remaining = todo.clone();
        // One node at a time (the defaults): the next node, with no need to weigh budgets over
        // every pod of the cluster before each node.
        let one_at_a_time = limit.values().sum::<usize>().min(self.options.max_parallel.unwrap_or(usize::MAX)) <= 1;
        let mut i = 0;
        while !remaining.is_empty() {
            // Chosen afresh before each batch: pods have moved and budgets recovered since.
            let batch: Vec<(String, Version)> = if i == 0 || one_at_a_time {
                vec![remaining.remove(0)]
            } else {
                let (per_node, allowed) = self.budget_state(remaining.iter().map(|(n, _)| n.as_str()));
                let candidates: Vec<Candidate> = remaining
                    .iter()
                    .map(|(name, target)| Candidate {
                        name: name.clone(),
                        target: target.clone(),
                        pool: pools.get(name).cloned().unwrap_or_default(),
                        budgets: per_node.get(name).cloned().unwrap_or_default(),
                    })
                    .collect();
                let mut picked =
                    next_batch(&candidates, &allowed, &limit, self.options.max_parallel.unwrap_or(usize::MAX));
                picked.sort_unstable_by(|a, b| b.cmp(a));
                let mut batch: Vec<(String, Version)> = picked.into_iter().map(|k| remaining.remove(k)).collect();
                batch.reverse();
                batch
            };
            if self.cancel.is_stop_requested() {
                return Err(ExecError::Interrupted("stopped on request between batches".into()));
            }
            for (name, _) in &batch {
                self.window_check(name)?;
            }
            let names: Vec<String> = batch.iter().map(|(n, _)| n.clone()).collect();
            let done = total - remaining.len();
            let label = if i == 0 { "canary".to_string() } else { format!("batch {i} ({done}/{total} nodes)") };
            self.emit(Event::BatchStart { label, nodes: names.clone() });
            let rolls = batch
                .iter()
                .map(|(name, target)| self.roll_one(step.order, name, target, super::node::NodeRole::Worker));
            let results = futures::future::join_all(rolls).await;
            i += 1;
            // Nodes that upgraded are handed back first, whatever happened to the others: no
            // node is left cordoned because its neighbour failed.
            let mut first_error = None;
            let mut skipped = Vec::new();
            for ((name, _), r) in batch.iter().zip(results) {
                match r {
                    Ok(Rolled::Upgraded) => {
                        if let Err(e) = self.finish_node(step.order, name).await {
                            first_error.get_or_insert(e);
                        }
                    }
                    Ok(Rolled::Skipped(why)) => {
                        self.emit(Event::node_log(name, why));
                        skipped.push(name.clone());
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
            self.emit(Event::BatchStatus { status: "health gates".into() });
            self.gate(&format!("batch {}", names.join(", "))).await?;
            self.emit(Event::BatchStatus { status: String::new() });
            let last = remaining.is_empty();
            if i == 1 && widen && !last && self.operator.attended() && !self.options.dry_run {
                let q = Question::AfterCanary {
                    canary: names.clone(),
                    skipped: skipped.clone(),
                    // Every pool's limit together, capped by --max-parallel (budgets may take less).
                    batch_size: limit
                        .values()
                        .sum::<usize>()
                        .min(self.options.max_parallel.unwrap_or(usize::MAX))
                        .max(1),
                };
                match self.operator.ask(q).await {
                    Answer::Yes => {}
                    Answer::Cancelled => {
                        return Err(ExecError::Interrupted("stopped on request after the canary".into()));
                    }
                    _ => return Err(ExecError::Declined("the operator stopped after the canary".into())),
                }
            }
            if !last && !self.options.pause.is_zero() {
                self.say(format!("soaking for {}", super::command::humanize(self.options.pause)));
                tokio::select! {
                    _ = tokio::time::sleep(self.options.pause) => {}
                    _ = self.cancel.stop_requested() => {
                        return Err(ExecError::Interrupted("stopped on request during the soak".into()));
                    }
                }
                // What the soak was for: a regression that shows only after a while.
                self.gate("the soak").await?;
            }
        }
        // Nodes left out (skipped) do not keep steering pods away.
        if self.options.taint_pending && !self.options.dry_run {
            for (name, _) in &todo {
                let _ = drain::mark_pending(&self.client, &self.cache, name, false).await;
            }
        }
        Ok(None)
    }

    /// From the run's watches: per node of `nodes`, the pods of each budget on it; per budget,
    /// the disruptions it allows now. Pods of one workload share their labels, so each distinct
    /// label set is matched against its namespace's budgets once.
    fn budget_state<'a>(
        &self,
        nodes: impl IntoIterator<Item = &'a str>,
    ) -> (BTreeMap<String, BTreeMap<String, u32>>, BTreeMap<String, u32>) {
        let allowed: BTreeMap<String, u32> = self
            .cache
            .budgets
            .state()
            .iter()
            .filter(|b| b.spec.as_ref().is_some_and(|s| s.selector.is_some()))
            .filter_map(|b| {
                let key = format!("{}/{}", b.metadata.namespace.as_deref()?, b.metadata.name.as_deref()?);
                let n = b.status.as_ref().map_or(0, |s| u32::try_from(s.disruptions_allowed).unwrap_or(0));
                Some((key, n))
            })
            .collect();
        let nodes: Vec<(&str, Vec<Arc<Pod>>)> = nodes.into_iter().map(|n| (n, self.cache.pods_on(n))).collect();
        let empty = BTreeMap::new();
        // Budgets are counted by number while nodes are read, and named once at the end.
        let mut budget_names: Vec<String> = Vec::new();
        let mut budget_ids: HashMap<String, usize> = HashMap::new();
        // Hashed once per pod of every node left, before each batch: a fast hash, as the keys
        // are the cluster's labels and this map lives for one call.
        let mut matched: HashMap<(&str, &BTreeMap<String, String>), Vec<usize>, foldhash::fast::RandomState> =
            HashMap::default();
        let mut per_node: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        for (node, pods) in &nodes {
            let mut on_node: BTreeMap<usize, u32> = BTreeMap::new();
            for p in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
                let ns = p.metadata.namespace.as_deref().unwrap_or_default();
                let labels = p.metadata.labels.as_ref().unwrap_or(&empty);
                let budgets = matched.entry((ns, labels)).or_insert_with(|| {
                    self.cache
                        .budget_keys_matching(ns, labels)
                        .into_iter()
                        .map(|key| {
                            *budget_ids.entry(key).or_insert_with_key(|key| {
                                budget_names.push(key.clone());
                                budget_names.len() - 1
                            })
                        })
                        .collect()
                });
                for &b in budgets.iter() {
                    *on_node.entry(b).or_default() += 1;
                }
            }
            if !on_node.is_empty() {
                per_node
                    .insert(node.to_string(), on_node.into_iter().map(|(b, n)| (budget_names[b].clone(), n)).collect());
            }
        }
        (per_node, allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn cand(name: &str, pool: &str, budgets: &[(&str, u32)]) -> Candidate {
        Candidate {
            name: name.into(),
            target: v("1.31.2"),
            pool: pool.into(),
            budgets: budgets.iter().map(|(b, n)| (b.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn a_batch_never_takes_more_from_a_budget_than_it_allows_and_respects_each_pool() {
        let nodes = vec![
            cand("a-1", "a", &[("shop/web", 1)]),
            cand("a-2", "a", &[("shop/web", 1)]),
            cand("a-3", "a", &[("data/db", 1)]),
            cand("b-1", "b", &[("shop/web", 1), ("data/db", 1)]),
            cand("b-2", "b", &[]),
            cand("c-1", "c", &[("shop/web", 3)]),
        ];
        let allowed: BTreeMap<String, u32> = [("shop/web".to_string(), 2), ("data/db".to_string(), 1)].into();
        let limit: BTreeMap<String, usize> = [("a".to_string(), 2), ("b".to_string(), 2), ("c".to_string(), 1)].into();
        // a-1, a-2 use web's 2; a-3 would exceed pool a's 2; b-1 needs web; b-2 is free; c-1 over.
        assert_eq!(next_batch(&nodes, &allowed, &limit, usize::MAX), vec![0, 1, 4]);
        // A node over a budget on its own goes alone.
        assert_eq!(next_batch(&nodes[5..], &allowed, &limit, usize::MAX), vec![0]);
        // Unguarded pools fill to their limit.
        let free = vec![cand("x-1", "x", &[]), cand("x-2", "x", &[]), cand("x-3", "x", &[])];
        assert_eq!(next_batch(&free, &allowed, &[("x".to_string(), 2)].into(), usize::MAX), vec![0, 1]);
        // The cluster-wide cap wins over the pools' limits.
        assert_eq!(next_batch(&nodes, &allowed, &limit, 1), vec![0]);
        assert_eq!(next_batch(&free, &allowed, &[("x".to_string(), 2)].into(), 1), vec![0]);
    }

    #[test]
    fn max_unavailable_is_a_count_or_a_share_of_each_pool() {
        assert_eq!("3".parse::<MaxUnavailable>().unwrap().for_pool(10), 3);
        assert_eq!("25%".parse::<MaxUnavailable>().unwrap().for_pool(10), 2);
        assert_eq!("25%".parse::<MaxUnavailable>().unwrap().for_pool(2), 1);
        assert!("0".parse::<MaxUnavailable>().unwrap_err().contains("'0'"));
        assert!("150%".parse::<MaxUnavailable>().is_err());
        let labels: BTreeMap<String, String> = [("eks.amazonaws.com/nodegroup".to_string(), "ng-1".to_string())].into();
        assert_eq!(pool_of(Some(&labels)), "ng-1");
        assert_eq!(pool_of(None), "");
    }

    #[test]
    fn a_move_takes_its_from_version_and_kubelets_part_way() {
        let m = KubeletMove { from: v("1.30.4"), to: v("1.31.2") };
        assert!(takes(&m, &v("1.30.4")));
        assert!(takes(&m, &v("1.30.9")));
        assert!(!takes(&m, &v("1.29.4")));
        assert!(!takes(&m, &v("1.31.2")));
    }
}
