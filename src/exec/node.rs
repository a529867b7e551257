//! One node's roll as a state machine over its journaled [`NodePhase`]: cordon (after a
//! preflight that names every reason the drain would refuse), drain, start the upgrade, see it
//! finish, wait until the node is Ready at the target with its DaemonSet pods ready, and
//! uncordon it (only if this run cordoned it). Each transition is journaled before the next
//! action, so a resumed run continues from the phase it finds; an upgrade that was started and
//! not seen to finish is started again unless the node already reports the target.

use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};

use super::drain::{self, DrainError};
use super::journal::{NodePhase, NodeRecord};
use super::upgrader::{Action, Role, Started};
use super::{Answer, Event, ExecError, Executor, NodeMilestone, Question};
use crate::k8s::{node as nodes, pod as pods};
use crate::version::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NodeRole {
    ControlPlane { first: bool },
    Worker,
}

/// How a node's roll ended, when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Rolled {
    /// Ready at the target (or done before); not yet uncordoned.
    Upgraded,
    /// The operator chose to skip it: it stays cordoned and labelled.
    Skipped(String),
}

/// Whether a kubelet (or apiserver) at `seen` counts as upgraded to `target`: the same minor,
/// and the target's patch or newer; with `any_patch` (providers pick their own patches) any
/// patch of the minor that moved past where the node started.
pub fn reached(seen: &Version, target: &Version, from: Option<&Version>, any_patch: bool) -> bool {
    let (seen, target) = (seen.without_suffix(), target.without_suffix());
    if seen.minor_version() != target.minor_version() {
        return false;
    }
    if seen.core() >= target.core() {
        return true;
    }
    any_patch
        && from.is_none_or(|f| f.minor_version() != target.minor_version() || seen.core() > f.without_suffix().core())
}

impl Executor<'_> {
    /// Cordon, drain, upgrade and wait for one node, continuing from its journaled phase.
    pub(super) async fn roll_one(
        &self,
        step: usize,
        node: &str,
        target: &Version,
        role: NodeRole,
    ) -> Result<Rolled, ExecError> {
        let started = Instant::now();
        let existing = self.journal.lock().await.node(step, node).cloned();
        let mut record = match existing.clone() {
            Some(r) => r,
            None => NodeRecord {
                step,
                target: target.clone(),
                phase: NodePhase::Started,
                from: self.cache.node(node).and_then(|n| nodes::kubelet_version(&n)),
                we_cordoned: false,
                note: None,
                seconds: None,
                log: vec![],
                times: vec![],
            },
        };
        let milestone = |phase: NodeMilestone| Event::Node {
            step,
            node: node.to_string(),
            phase,
            target: Some(target.to_string()),
            seconds: None,
            why: None,
            uncordoned: None,
        };
        loop {
            if !matches!(record.phase, NodePhase::Upgraded | NodePhase::Done | NodePhase::Quarantined) {
                self.ensure_lock(&format!("{node}'s next phase ({:?})", record.phase))?;
            }
            match record.phase {
                NodePhase::Upgraded | NodePhase::Done => return Ok(Rolled::Upgraded),
                NodePhase::Quarantined => {
                    return Ok(Rolled::Skipped(format!("skipped before: {}", record.note.clone().unwrap_or_default())));
                }
                NodePhase::Started => {
                    self.cordon(step, node, &mut record).await?;
                    self.emit(milestone(NodeMilestone::Cordoned));
                }
                NodePhase::Cordoned => {
                    if let Some(skipped) = self.drain(step, node, &mut record).await? {
                        return Ok(skipped);
                    }
                    self.emit(milestone(NodeMilestone::Drained));
                    if self.options.dry_run {
                        self.emit(Event::node_log(
                            node,
                            format!(
                                "dry run: would upgrade to {target} with the {} upgrader",
                                self.options.upgrader.name()
                            ),
                        ));
                        self.outcome.lock().unwrap_or_else(|e| e.into_inner()).nodes_done.push((node.to_string(), 0.0));
                        return Ok(Rolled::Upgraded);
                    }
                }
                NodePhase::Drained => {
                    // Only on the way out of the drain: a resumed upgrade already passed it (and
                    // a node its upgrade replaced has nothing left to detach).
                    self.wait_volumes(node).await?;
                    self.upgrade(step, node, target, role, &mut record).await?;
                    self.emit(milestone(NodeMilestone::Upgrading));
                }
                NodePhase::UpgradeStarted => {
                    // Started before and not seen to finish (killed, failed, timed out): start
                    // it again, unless the node already reports the target.
                    let now = self.cache.node(node).and_then(|n| nodes::kubelet_version(&n));
                    if now.is_some_and(|k| reached(&k, target, record.from.as_ref(), self.options.any_patch)) {
                        record.phase = NodePhase::UpgradeFinished;
                        self.save(|j| j.set_node(&record, node)).await?;
                    } else {
                        self.emit(Event::node_log(
                            node,
                            "the upgrade was started before and not seen to finish: starting it again",
                        ));
                        self.upgrade(step, node, target, role, &mut record).await?;
                        self.emit(milestone(NodeMilestone::Upgrading));
                    }
                }
                NodePhase::UpgradeFinished => {
                    self.emit(Event::NodeActivity {
                        node: node.into(),
                        activity: format!("waiting for Ready at {target}"),
                    });
                    self.wait_node(node, target, record.from.as_ref(), matches!(role, NodeRole::ControlPlane { .. }))
                        .await?;
                    record.phase = NodePhase::Upgraded;
                    record.seconds = Some(
                        started.elapsed().as_secs_f64() + existing.as_ref().and_then(|e| e.seconds).unwrap_or(0.0),
                    );
                    self.save(|j| j.set_node(&record, node)).await?;
                    self.emit(Event::node_log(node, format!("Ready at {target}")));
                    self.emit(milestone(NodeMilestone::Upgraded));
                }
            }
        }
    }

    async fn cordon(&self, step: usize, node: &str, record: &mut NodeRecord) -> Result<(), ExecError> {
        // Every reason a drain would refuse, before the node is touched.
        if let Err(e) = drain::preflight(&self.client, &self.cache, node, &self.options.drain).await {
            return Err(ExecError::Blocked(format!("{e}; the node was not cordoned")));
        }
        self.emit(Event::NodeActivity { node: node.into(), activity: "cordoning".into() });
        if self.options.dry_run {
            self.emit(Event::node_log(node, "dry run: would cordon"));
            record.phase = NodePhase::Cordoned;
            return Ok(());
        }
        let run_id = self.journal.lock().await.run_id.clone();
        // Journaled first: a crash between this save and the cordon finds the node's
        // annotation naming this run.
        self.save(|j| j.set_node(record, node)).await?;
        let found = drain::cordon(&self.client, &self.cache, node, &run_id).await.map_err(ExecError::Failed)?;
        let already = found.already;
        // Cordoned before a crash by this run: the node's annotation says so.
        let ours_before = already && found.by.as_deref() == Some(run_id.as_str());
        record.we_cordoned = !already || ours_before || record.we_cordoned;
        record.phase = NodePhase::Cordoned;
        self.save(|j| j.set_node(record, node)).await?;
        self.emit(Event::node_log(
            node,
            if already && !ours_before { "was already cordoned; it will stay cordoned" } else { "cordoned" },
        ));
        let _ = step;
        Ok(())
    }

    /// Drains the node; `Some` when the operator chose to skip it.
    async fn drain(&self, step: usize, node: &str, record: &mut NodeRecord) -> Result<Option<Rolled>, ExecError> {
        loop {
            let pods = match drain::evictable_pods(&self.client, node, &self.options.drain).await {
                Ok(pods) => pods,
                // A pod that arrived since the preflight: hand the node back as it was.
                Err(e @ DrainError::Refused { .. }) if record.we_cordoned && !self.options.dry_run => {
                    drain::uncordon(&self.client, &self.cache, node).await.map_err(|u| {
                        ExecError::Blocked(format!("{e}; and the node could not be uncordoned again: {u}"))
                    })?;
                    self.save(|j| {
                        j.nodes.remove(&super::journal::Journal::key(step, node));
                    })
                    .await?;
                    return Err(ExecError::Blocked(format!("{e}; the node was uncordoned again")));
                }
                Err(e @ DrainError::Refused { .. }) if self.options.dry_run => {
                    return Err(ExecError::Blocked(format!("dry run: {e}")));
                }
                Err(e @ DrainError::Refused { .. }) => {
                    return Err(ExecError::Blocked(format!(
                        "{e}; it stays cordoned (it was cordoned before this run)"
                    )));
                }
                Err(e) => {
                    return Err(ExecError::Blocked(format!(
                        "{e}; {node} stays cordoned (journal kept: apply --resume)"
                    )));
                }
            };
            let count = pods.len();
            self.emit(Event::PodsLeft { node: node.into(), left: count, total: count });
            match drain::drain(&self.client, &self.cache, node, pods, &self.options.drain, &self.cancel, &self.events)
                .await
            {
                Ok(n) => {
                    self.emit(Event::node_log(
                        node,
                        format!("{} {n} pods", if self.options.dry_run { "dry run: would evict" } else { "evicted" }),
                    ));
                    break;
                }
                Err(DrainError::Interrupted { .. }) => {
                    return Err(ExecError::Interrupted(format!(
                        "stopped during the drain of {node}; it stays cordoned"
                    )));
                }
                Err(e) if self.options.dry_run => return Err(ExecError::Blocked(format!("dry run: {e}"))),
                Err(e) => {
                    let can_wait = matches!(e, DrainError::Timeout { .. });
                    let answer = self
                        .operator
                        .ask(Question::StuckDrain {
                            node: node.into(),
                            error: e.to_string(),
                            pods: count,
                            can_wait,
                            quarantine_label: drain::LABEL_QUARANTINED.into(),
                        })
                        .await;
                    match answer {
                        Answer::Wait if can_wait => continue,
                        Answer::Skip => {
                            self.quarantine(step, node, record, &e.to_string()).await?;
                            return Ok(Some(Rolled::Skipped(format!("skipped and quarantined: {e}"))));
                        }
                        Answer::Cancelled => {
                            return Err(ExecError::Interrupted(format!(
                                "stopped on request while the drain of {node} was stuck ({e}); it stays cordoned"
                            )));
                        }
                        _ => {
                            self.quarantine(step, node, record, &e.to_string()).await?;
                            return Err(ExecError::Blocked(format!(
                                "{e}. {node} stays cordoned and is labelled {}=true",
                                drain::LABEL_QUARANTINED
                            )));
                        }
                    }
                }
            }
        }
        if !self.options.dry_run {
            record.phase = NodePhase::Drained;
            self.save(|j| j.set_node(record, node)).await?;
        }
        Ok(None)
    }

    /// Starts the upgrade: journaled as started first, as finished once the upgrader returns.
    async fn upgrade(
        &self,
        _step: usize,
        node: &str,
        target: &Version,
        role: NodeRole,
        record: &mut NodeRecord,
    ) -> Result<(), ExecError> {
        record.phase = NodePhase::UpgradeStarted;
        self.save(|j| j.set_node(record, node)).await?;
        self.emit(Event::NodeActivity { node: node.into(), activity: format!("upgrading to {target}") });
        drain::note_phase(&self.client, node, "upgrading").await;
        let action = Action {
            subject: node.into(),
            role: match role {
                NodeRole::ControlPlane { first } => Role::ControlPlane { first },
                NodeRole::Worker => Role::Worker,
            },
            target: target.to_string(),
            from: record.from.as_ref().map(ToString::to_string),
            workload: None,
        };
        let (result, lines) = self.run_upgrader_kept(&self.options.upgrader, &action).await;
        record.log = if result.is_ok() {
            lines[lines.len().saturating_sub(super::journal::NODE_LOG_DONE)..].to_vec()
        } else {
            lines
        };
        if !record.log.is_empty() {
            self.save(|j| j.set_node(record, node)).await?;
        }
        match result {
            Ok(Started::OperatorAction(text)) => self.emit(Event::node_log(node, text)),
            Ok(Started::Performed) => self.emit(Event::node_log(
                node,
                format!("upgrading to {target} ({} upgrader)", self.options.upgrader.name()),
            )),
            Err(e) => {
                return Err(ExecError::Blocked(format!(
                    "the upgrade of {node} failed: {e}; it stays cordoned, and apply --resume starts its upgrade again"
                )));
            }
        }
        record.phase = NodePhase::UpgradeFinished;
        self.save(|j| j.set_node(record, node)).await?;
        Ok(())
    }

    /// Waits for the volumes the node's evicted pods used to detach (see [`super::volumes`]).
    async fn wait_volumes(&self, node: &str) -> Result<(), ExecError> {
        let Some(timeout) = self.options.drain.volume_detach_timeout else { return Ok(()) };
        let emit_wait = |left: &[String]| {
            self.emit(Event::NodeActivity {
                node: node.into(),
                activity: format!("waiting for {} volume(s) to detach", left.len()),
            });
            self.emit(Event::node_log(node, format!("waiting for volumes to detach: {}", left.join(", "))));
        };
        // The pods still bound to the node are the ones the drain left there (DaemonSet and
        // mirror pods, pods outside --pod-selector, pods given up on): their volumes stay.
        let staying = || {
            self.cache
                .pods_on(node)
                .into_iter()
                .filter(|p| !crate::k8s::pod::is_finished(p))
                .map(|p| Pod::clone(&p))
                .collect::<Vec<Pod>>()
        };
        super::volumes::wait_detached(
            &self.client,
            &self.cache,
            node,
            timeout,
            self.options.poll,
            &self.cancel,
            staying,
            emit_wait,
        )
        .await
        .map_err(|e| match e {
            super::volumes::DetachError::Interrupted { .. } => {
                ExecError::Interrupted(format!("{e}; {node} stays cordoned (journal kept: apply --resume)"))
            }
            _ => ExecError::Blocked(format!("{e}. {node} stays cordoned (journal kept)")),
        })
    }

    /// Runs an upgrader action, keeping its output's first and last lines in the journal.
    pub(super) async fn run_upgrader(
        &self,
        upgrader: &super::upgrader::Upgrader,
        action: &Action,
    ) -> Result<Started, super::upgrader::UpgradeError> {
        self.run_upgrader_kept(upgrader, action).await.0
    }

    /// [`Self::run_upgrader`], also returning the kept output lines. A node's progress shows
    /// the last line its upgrade printed.
    pub(super) async fn run_upgrader_kept(
        &self,
        upgrader: &super::upgrader::Upgrader,
        action: &Action,
    ) -> (Result<Started, super::upgrader::UpgradeError>, Vec<String>) {
        let subject = action.subject.clone();
        let on_line = |line: &str| {
            if matches!(action.role, Role::ControlPlane { .. } | Role::Worker) {
                let shown: String = line.chars().filter(|c| !c.is_control()).take(120).collect();
                self.emit(Event::NodeActivity { node: subject.clone(), activity: shown });
            }
        };
        let result = upgrader.run(&self.client, action, &self.cancel, self.options.log_file.clone(), &on_line).await;
        let lines = match &result {
            Ok((_, out)) => out.lines(),
            Err(e) => e.output().map(|o| o.lines()).unwrap_or_default(),
        };
        if !lines.is_empty() {
            let _ = self
                .save(|j| {
                    for l in &lines {
                        j.push_log(format!("{subject}: {l}"));
                    }
                })
                .await;
        }
        (result.map(|(started, _)| started), lines)
    }

    async fn quarantine(&self, step: usize, node: &str, record: &mut NodeRecord, why: &str) -> Result<(), ExecError> {
        let labelled = drain::quarantine(&self.client, node, why).await;
        record.phase = NodePhase::Quarantined;
        record.note = Some(why.chars().take(500).collect());
        self.save(|j| j.set_node(record, node)).await?;
        self.emit(Event::Node {
            step,
            node: node.into(),
            phase: NodeMilestone::Quarantined,
            target: None,
            seconds: None,
            why: Some(why.chars().take(500).collect()),
            uncordoned: None,
        });
        labelled.map_err(ExecError::Failed)
    }

    /// Uncordons (only if we cordoned) and marks the node done.
    pub(super) async fn finish_node(&self, step: usize, node: &str) -> Result<(), ExecError> {
        let Some(mut record) = self.journal.lock().await.node(step, node).cloned() else { return Ok(()) };
        if self.options.dry_run || record.phase != NodePhase::Upgraded {
            return Ok(());
        }
        self.ensure_lock(&format!("uncordoning {node}"))?;
        if record.we_cordoned {
            drain::uncordon(&self.client, &self.cache, node).await.map_err(ExecError::Failed)?;
        } else if let Err(e) = drain::clear_notes(&self.client, node).await {
            self.emit(Event::node_log(
                node,
                format!("warning: {e} (the {} annotation stays)", drain::ANNOTATION_PHASE),
            ));
        }
        record.phase = NodePhase::Done;
        let seconds = record.seconds.unwrap_or(0.0);
        self.save(|j| j.set_node(&record, node)).await?;
        self.durations.lock().unwrap_or_else(|e| e.into_inner()).push(seconds);
        self.outcome.lock().unwrap_or_else(|e| e.into_inner()).nodes_done.push((node.to_string(), seconds));
        self.emit(Event::Node {
            step,
            node: node.into(),
            phase: NodeMilestone::Done,
            target: Some(record.target.to_string()),
            seconds: Some(seconds),
            why: None,
            uncordoned: Some(record.we_cordoned),
        });
        Ok(())
    }

    /// Waits until the node is Ready at the target with its DaemonSet pods ready (and, for a
    /// control-plane node, its apiserver static pod at the target and `/readyz` ok). Read from
    /// the run's node watch, cross-checked by a direct read now and then.
    async fn wait_node(
        &self,
        node: &str,
        target: &Version,
        from: Option<&Version>,
        control_plane: bool,
    ) -> Result<(), ExecError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let deadline = Instant::now() + self.options.node_timeout;
        let mut changes = self.cache.changes();
        let mut last;
        // A watch can go quiet without failing: the node is also read directly now and then.
        let mut last_direct = Instant::now();
        loop {
            if self.cancel.is_abort_requested() {
                return Err(ExecError::Interrupted(format!("stopped while waiting for {node}; it stays cordoned")));
            }
            // With the manual upgrader nothing of ours is in flight while the operator works on
            // the node, so a first stop request ends the wait at once instead of holding on for
            // up to --node-timeout; the journal keeps the phase and a resume waits again.
            if self.cancel.is_stop_requested() && matches!(self.options.upgrader, super::upgrader::Upgrader::Manual) {
                return Err(ExecError::Interrupted(format!(
                    "stopped while waiting for {node} to be upgraded by hand to {target}; it stays cordoned, and `apply --resume` waits for it again"
                )));
            }
            changes.borrow_and_update();
            let stale = self.cache.is_stale(super::cache::Kind::Nodes)
                || last_direct.elapsed() >= super::gates::DIRECT_CROSS_CHECK;
            if stale {
                last_direct = Instant::now();
            }
            let seen = if stale {
                api.get(node).await.map_err(|e| e.to_string())
            } else {
                self.cache.node(node).map(|n| Node::clone(&n)).ok_or_else(|| format!("node {node} is gone"))
            };
            let mut slow_check = false;
            match seen {
                Ok(n) => {
                    let ready = nodes::is_ready(&n);
                    let kubelet = nodes::kubelet_version(&n);
                    if ready && kubelet.as_ref().is_some_and(|k| reached(k, target, from, self.options.any_patch)) {
                        let daemons = self.daemon_pods_not_ready(node).await;
                        if !daemons.is_empty() {
                            last = format!("Ready, DaemonSet pods not ready: {}", daemons.join(", "));
                        } else if !control_plane || self.control_plane_ready(node, target).await {
                            if let Some(k) =
                                kubelet.filter(|k| k.without_suffix().core() != target.without_suffix().core())
                            {
                                self.emit(Event::node_log(
                                    node,
                                    format!("reports {k} (the plan said {target}: the provider chose the patch)"),
                                ));
                            }
                            return Ok(());
                        } else {
                            slow_check = true;
                            last = "static pods or /readyz not at the target yet".into();
                        }
                    } else {
                        last = format!(
                            "{}, kubelet {}",
                            if ready { "Ready" } else { "NotReady" },
                            kubelet.map(|k| k.to_string()).unwrap_or_else(|| "unknown".into())
                        );
                    }
                }
                Err(e) => last = e,
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ExecError::Blocked(format!(
                    "{node} did not come back Ready at {target} within {} (last seen: {last}); it stays cordoned and the journal is intact: fix the node, then run apply --resume",
                    super::command::humanize(self.options.node_timeout)
                )));
            }
            let pause = async {
                if stale || slow_check {
                    // Direct reads, static pods and /readyz: at most once per poll interval.
                    tokio::time::sleep(self.options.poll.min(remaining)).await;
                } else {
                    super::cache::Cache::next_change(&mut changes, Duration::from_secs(5).min(remaining)).await;
                }
            };
            tokio::select! {
                _ = pause => {}
                _ = self.cancel.abort_requested() => {}
            }
        }
    }

    /// DaemonSet pods on the node that run but are not Ready (CNI, kube-proxy, CSI node
    /// plugins: a node without them is not ready for workloads whatever its condition says).
    async fn daemon_pods_not_ready(&self, node: &str) -> Vec<String> {
        let on_node: Vec<Pod> = if self.cache.is_stale(super::cache::Kind::Pods) {
            let api: Api<Pod> = Api::all(self.client.clone());
            let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
            match api.list(&lp).await {
                Ok(l) => l.items,
                Err(_) => return vec!["(cannot list the node's pods)".into()],
            }
        } else {
            self.cache.pods_on(node).iter().map(|p| Pod::clone(p)).collect()
        };
        on_node
            .iter()
            .filter(|p| pods::is_daemonset(p) && !pods::is_finished(p) && p.metadata.deletion_timestamp.is_none())
            .filter(|p| !pods::is_ready(p))
            .map(pods::reference)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn a_provider_patch_counts_when_any_patch_is_allowed_and_never_an_older_minor() {
        // Exact-or-newer by default: a newer patch from the package repository counts.
        assert!(reached(&v("1.31.2"), &v("1.31.2"), None, false));
        assert!(reached(&v("1.31.5"), &v("1.31.2"), None, false));
        assert!(!reached(&v("1.31.1"), &v("1.31.2"), None, false));
        // EKS picked 1.31.1-eks for a plan that said 1.31.14.
        assert!(reached(&v("1.31.1-eks-4a1b"), &v("1.31.14"), Some(&v("1.30.9")), true));
        assert!(!reached(&v("1.30.9"), &v("1.31.14"), Some(&v("1.30.9")), true));
        // A patch-only move must move.
        assert!(!reached(&v("1.31.1"), &v("1.31.14"), Some(&v("1.31.1")), true));
        assert!(reached(&v("1.31.3"), &v("1.31.14"), Some(&v("1.31.1")), true));
        assert!(!reached(&v("1.32.0"), &v("1.31.14"), None, true));
    }
}
