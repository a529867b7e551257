//! Node rolls: which nodes a roll takes (kubelets at one of the step's moves), and in which
//! batches: a canary first, then batches of `--max-unavailable` where no two nodes hold pods of
//! the same disruption budget when that can be avoided. Each batch's nodes roll together; the
//! ones that upgraded are uncordoned before anything else is reported, then a health gate
//! decides whether the next batch may start.

use std::collections::{BTreeMap, BTreeSet};

use super::drain;
use super::journal::{NodePhase, NodeRecord};
use super::node::Rolled;
use super::{Answer, Event, ExecError, Executor, Question};
use crate::graph::KubeletMove;
use crate::k8s::node as nodes;
use crate::version::Version;

/// Canary (one node) first, then batches of `size` where no two nodes share a budget, when
/// that can be avoided. `todo` is (node, target); the order within is by name.
pub fn plan_batches(
    mut todo: Vec<(String, Version)>,
    budgets_per_node: &BTreeMap<String, BTreeSet<String>>,
    size: usize,
) -> Vec<Vec<(String, Version)>> {
    todo.sort();
    let mut out: Vec<Vec<(String, Version)>> = Vec::new();
    if !todo.is_empty() {
        out.push(vec![todo.remove(0)]);
    }
    let size = size.max(1);
    while !todo.is_empty() {
        let mut batch: Vec<(String, Version)> = Vec::new();
        let mut held: BTreeSet<&String> = BTreeSet::new();
        let mut i = 0;
        while i < todo.len() && batch.len() < size {
            let b = budgets_per_node.get(&todo[i].0);
            if b.is_none_or(|b| b.iter().all(|x| !held.contains(x))) {
                held.extend(b.into_iter().flatten());
                batch.push(todo.remove(i));
            } else {
                i += 1;
            }
        }
        // Unavoidable overlap: fill up anyway (the budgets still guard each eviction).
        while batch.len() < size && !todo.is_empty() {
            batch.push(todo.remove(0));
        }
        out.push(batch);
    }
    out
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
        let batches = plan_batches(todo.clone(), &self.budgets_per_node(), self.options.max_unavailable);
        // Pods evicted from one node should not land on the next one to drain.
        if self.options.taint_pending && !self.options.dry_run && batches.len() > 1 {
            let marks = todo.iter().map(|(n, _)| drain::mark_pending(&self.client, &self.cache, n, true));
            for ((name, _), r) in todo.iter().zip(futures::future::join_all(marks).await) {
                if let Err(e) = r {
                    self.emit(Event::node_log(name, format!("warning: {e} (pods evicted elsewhere may land on it)")));
                }
            }
        }
        let widen = batches.len() > 1 && recorded.is_empty();
        for (i, batch) in batches.iter().enumerate() {
            if self.cancel.is_stop_requested() {
                return Err(ExecError::Interrupted("stopped on request between batches".into()));
            }
            for (name, _) in batch {
                self.window_check(name)?;
            }
            let names: Vec<String> = batch.iter().map(|(n, _)| n.clone()).collect();
            let label =
                if i == 0 { "canary".to_string() } else { format!("batch {i}/{}", batches.len().saturating_sub(1)) };
            self.emit(Event::BatchStart { label, nodes: names.clone() });
            let rolls = batch
                .iter()
                .map(|(name, target)| self.roll_one(step.order, name, target, super::node::NodeRole::Worker));
            let results = futures::future::join_all(rolls).await;
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
            let last = i + 1 == batches.len();
            if i == 0 && widen && self.operator.attended() && !self.options.dry_run {
                let q = Question::AfterCanary {
                    canary: names.clone(),
                    skipped: skipped.clone(),
                    batch_size: self.options.max_unavailable,
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

    /// Budgets (`ns/name`) each node holds pods of, from the run's watches.
    fn budgets_per_node(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let (pods, pdbs) = (self.cache.pods.state(), self.cache.budgets.state());
        let selectors: Vec<(String, String, kube::core::Selector)> = pdbs
            .iter()
            .filter_map(|b| {
                let sel = b.spec.as_ref()?.selector.clone()?;
                let ns = b.metadata.namespace.clone()?;
                let key = format!("{ns}/{}", b.metadata.name.clone()?);
                Some((ns, key, kube::core::Selector::try_from(sel).ok()?))
            })
            .collect();
        for p in pods.iter() {
            let (Some(node), Some(ns)) =
                (p.spec.as_ref().and_then(|s| s.node_name.clone()), p.metadata.namespace.clone())
            else {
                continue;
            };
            let Some(labels) = &p.metadata.labels else { continue };
            for (bns, key, sel) in &selectors {
                if *bns == ns && kube::core::SelectorExt::matches(sel, labels) {
                    out.entry(node.clone()).or_default().insert(key.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn a_canary_then_batches_that_share_no_budget_when_avoidable() {
        let todo: Vec<(String, Version)> =
            ["n4", "n1", "n3", "n2", "n5"].iter().map(|n| (n.to_string(), v("1.31.2"))).collect();
        let budgets: BTreeMap<String, BTreeSet<String>> = [
            ("n2", &["shop/web"][..]),
            ("n3", &["shop/web"][..]),
            ("n4", &["data/db"][..]),
            ("n5", &["data/db", "shop/web"][..]),
        ]
        .iter()
        .map(|(n, b)| (n.to_string(), b.iter().map(|x| x.to_string()).collect()))
        .collect();
        let names = |b: &Vec<Vec<(String, Version)>>| -> Vec<Vec<String>> {
            b.iter().map(|x| x.iter().map(|(n, _)| n.clone()).collect()).collect()
        };
        let b = plan_batches(todo.clone(), &budgets, 2);
        assert_eq!(names(&b), vec![vec!["n1"], vec!["n2", "n4"], vec!["n3", "n5"]]);
        // Size 1: one at a time, canary first.
        assert_eq!(plan_batches(todo.clone(), &budgets, 1).len(), 5);
        // Size larger than what can avoid overlap: fills up anyway.
        assert_eq!(names(&plan_batches(todo, &budgets, 4)), vec![vec!["n1"], vec!["n2", "n4", "n3", "n5"]]);
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
