//! Steps that are not node rolls: add-on upgrades through the upgrader, Helm releases through
//! `--release-command`, and operator steps (API migrations, Helm rewrites, anything manual)
//! asked on a terminal (in the simulator, the `sim` upgrader performs API migrations and Helm
//! rewrites as an operator would). An unattended run does not pretend an operator step was
//! done: it is left to the operator, and the control-plane hop it protects checks the cluster
//! itself first.

use std::time::Duration;

use super::upgrader::{Action, Role, Started, Upgrader};
use super::{Answer, Event, ExecError, Executor, Question};
use crate::plan::{Step, StepAction};

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
        match self.run_upgrader(&self.options.upgrader, &action).await {
            Ok(Started::OperatorAction(text)) => return self.ask_operator(step, &text).await,
            Ok(Started::Performed) => self.say(format!("{addon} ({workload}) set to {line}")),
            Err(e) => return Err(ExecError::Blocked(format!("add-on {addon}: {e}"))),
        }
        self.gate(&format!("add-on {addon}")).await?;
        Ok(None)
    }

    pub(super) async fn operator_step(&self, step: &Step) -> Result<Option<String>, ExecError> {
        if let StepAction::HelmRelease { namespace, release, .. } = &step.action
            && let Some(argv) = &self.options.release_command
            && !self.options.dry_run
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
        if matches!(self.options.upgrader, Upgrader::Sim)
            && matches!(step.action, StepAction::MigrateApi { .. } | StepAction::HelmRelease { .. })
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
