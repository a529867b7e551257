//! Steps that are not node rolls: add-on upgrades through the upgrader; Helm releases rewritten
//! by this tool (a new revision with the removed APIs mapped, as `helm mapkubeapis` does, with
//! any upgrader) unless `--release-command` does it; and operator steps (API migrations,
//! anything manual) asked on a terminal (in the simulator, the `sim` upgrader performs API
//! migrations as an operator would). An unattended run does not pretend an operator step was
//! done: it is left to the operator, and the control-plane hop it protects checks the cluster
//! itself first.

use std::time::Duration;

use crate::catalog::served::ServedApis;
use crate::helm::cluster::{self, Now};
use crate::helm::manifest::Target;
use crate::version::{Minor, Version};

use super::upgrader::{Action, Role, Started, Upgrader};
use super::{Answer, Event, ExecError, Executor, Question};
use crate::plan::{Step, StepAction};

/// Changed manifest lines of a Helm rewrite kept in the journal's log.
const JOURNAL_DIFF_LINES: usize = 40;

impl Executor<'_> {
    pub(super) async fn addon(
        &self,
        step: &Step,
        addon: &str,
        workload: &str,
        line: &str,
    ) -> Result<Option<String>, ExecError> {
        if let Upgrader::Provider(m) = &self.options.upgrader
            && let Some(done) = self.provider_addon(step, m, addon).await
        {
            return done;
        }
        if self.options.dry_run {
            self.say(format!("dry run: would upgrade {addon} ({workload}) to {line}"));
            return Ok(None);
        }
        let action = Action {
            subject: addon.into(),
            role: Role::Addon,
            target: line.into(),
            from: None,
            workload: Some(workload.into()),
        };
        let upgrader = match &self.options.upgrader {
            // kubeadm moves only kube-proxy and CoreDNS itself; in the simulator its stand-in
            // operator moves the rest, as someone would with their charts.
            Upgrader::NodeJob(_) if self.options.sim_operator => &Upgrader::Sim,
            other => other,
        };
        match self.run_upgrader(upgrader, &action).await {
            Ok(Started::OperatorAction(text)) => return self.ask_operator(step, &text).await,
            Ok(Started::Performed) => self.say(format!("{addon} ({workload}) set to {line}")),
            Err(e) => return Err(ExecError::Blocked(format!("add-on {addon}: {e}"))),
        }
        self.gate(&format!("add-on {addon}")).await?;
        Ok(None)
    }

    pub(super) async fn operator_step(&self, step: &Step) -> Result<Option<String>, ExecError> {
        if let StepAction::HelmRelease { namespace, release, before, .. } = &step.action {
            if self.options.release_command.is_none() {
                return self.rewrite_release(step, namespace, release, before).await;
            }
            if self.options.dry_run {
                self.say(format!("dry run: would run --release-command for Helm release {namespace}/{release}"));
                return Ok(None);
            }
        }
        if let StepAction::HelmRelease { namespace, release, .. } = &step.action
            && let Some(argv) = &self.options.release_command
        {
            let action = Action {
                subject: release.clone(),
                role: Role::HelmRelease,
                target: self.journal.lock().await.to.to_string(),
                from: None,
                workload: Some(namespace.clone()),
            };
            let cmd = Upgrader::Command { argv: argv.clone(), timeout: Duration::from_secs(1800) };
            self.run_upgrader(&cmd, &action).await.map_err(|e| {
                ExecError::Blocked(format!("step {} (Helm release {namespace}/{release}): {e}", step.order))
            })?;
            return Ok(None);
        }
        if (self.options.sim_operator || matches!(self.options.upgrader, Upgrader::Sim))
            && matches!(step.action, StepAction::MigrateApi { .. })
        {
            if self.options.dry_run {
                self.say(format!("dry run: the simulator's operator would: {}", step.description));
                return Ok(None);
            }
            let changed = super::upgrader::sim_operator_step(&self.client, &step.action)
                .await
                .map_err(|e| ExecError::Failed(format!("step {}: {e}", step.order)))?;
            self.say(format!("the simulator's operator did step {} ({changed} objects changed)", step.order));
            return Ok(None);
        }
        self.ask_operator(step, &step.description).await
    }

    /// Rewrites a Helm release's deployed revision for the hop to `before` (a new revision; the
    /// old one superseded), logging the diff's summary to the journal. A dry run reads and says
    /// what it would write. Idempotent: a retry after a crash finishes the job.
    async fn rewrite_release(
        &self,
        step: &Step,
        namespace: &str,
        release: &str,
        before: &Version,
    ) -> Result<Option<String>, ExecError> {
        let hops: Vec<(Minor, Minor)> = self
            .journal
            .lock()
            .await
            .steps
            .iter()
            .filter_map(|s| match &s.step.action {
                StepAction::ControlPlane { from, to } => Some((from.minor_version(), to.minor_version())),
                _ => None,
            })
            .collect();
        let before = before.minor_version();
        // The step runs while the control plane is at the start of the hop it precedes.
        let now = hops.iter().find(|h| h.1 == before && h.0 != h.1).map_or(before, |h| h.0);
        let target = Target { now, hops, before };
        let served = ServedApis::new(&self.options.catalog.apis);
        let failed = |e: crate::helm::cluster::FixError| {
            ExecError::Failed(format!(
                "step {} (Helm release {namespace}/{release}): {e}; or rewrite it yourself and pass --release-command",
                step.order
            ))
        };
        let prepared = cluster::prepare(&self.client, &served, &target, namespace, release, &Now::system())
            .await
            .map_err(failed)?;
        let summary = prepared.summary(&before.to_string());
        if self.options.dry_run {
            self.say(format!("dry run: would write: {summary}"));
            return Ok(None);
        }
        if !prepared.is_noop() {
            self.ensure_lock(&format!("rewriting Helm release {namespace}/{release}"))?;
            cluster::write(&self.client, &prepared).await.map_err(failed)?;
        }
        // The summary and the changed lines of the manifest (never values), bounded.
        let lines: Vec<String> = std::iter::once(summary.clone())
            .chain(
                prepared
                    .diff
                    .lines()
                    .skip(2)
                    .filter(|l| l.starts_with(['-', '+']))
                    .take(JOURNAL_DIFF_LINES)
                    .map(|l| format!("  {l}")),
            )
            .collect();
        self.save(|j| {
            for l in lines {
                j.push_log(l);
            }
        })
        .await?;
        self.say(summary);
        Ok(None)
    }

    /// A step only the operator can do: asked when someone is there; otherwise left to them.
    async fn ask_operator(&self, step: &Step, what: &str) -> Result<Option<String>, ExecError> {
        if self.options.dry_run {
            self.say(format!("dry run: operator step: {what}"));
            return Ok(None);
        }
        if !self.operator.attended() {
            self.emit(Event::OperatorStepLeft { step: step.order, what: what.to_string() });
            self.outcome.lock().unwrap_or_else(|e| e.into_inner()).left_to_operator.push(what.to_string());
            return Ok(Some("left to the operator (unattended run); not performed by this tool".into()));
        }
        match self.operator.ask(Question::OperatorStep { what: what.to_string() }).await {
            Answer::Yes => Ok(None),
            Answer::Cancelled => {
                Err(ExecError::Interrupted(format!("stopped on request at the operator step: {what}")))
            }
            _ => Err(ExecError::Declined(format!("waiting for the operator: {what}"))),
        }
    }
}
