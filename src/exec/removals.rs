//! The last look before a control-plane hop that stops serving APIs: the cluster is read again
//! (their last-applied configurations, Helm releases, clients that requested the API since the
//! run began, and objects of APIs that have no replacement) and the same removed-API check the
//! planner ran decides. Objects merely stored at a version that has a replacement are not held
//! against the hop: the apiserver converts them and serves them at the new version. Anything
//! still using an API the hop removes stops the run, unless the step that deals with it was
//! acknowledged by the operator (`--acknowledge STEP`, `--acknowledge-all`), who then owns it.
//! An unattended run therefore never crosses a removal on the strength of `--yes` alone.

use super::{Event, ExecError, Executor};
use crate::checks::{self, Finding, FindingCode};
use crate::inventory::Evidence;
use crate::inventory::live::{self, DeprecatedRequests};
use crate::plan::StepAction;
use crate::version::Version;

/// Findings named in a refusal; the rest are counted.
const NAMED: usize = 8;

impl Executor<'_> {
    /// Reads the deprecated-API request gauge at the start of a run (once per run).
    pub(super) async fn note_requests_at_start(&self) -> Result<(), ExecError> {
        if self.options.dry_run || self.journal.lock().await.requests_at_start.is_some() {
            return Ok(());
        }
        match DeprecatedRequests::read(&self.client).await {
            Ok(r) => self.save(|j| j.requests_at_start = Some(r)).await,
            Err(e) => {
                self.say(format!("warning: {e}; clients calling removed APIs cannot be checked before each hop"));
                Ok(())
            }
        }
    }

    /// Stops when a prerequisite the plan placed before this hop still holds on the cluster
    /// (etcd still older than the minor upgrade needs, nodes still on dockershim...): the
    /// operator's step is taken on trust only until the hop, which checks the cluster itself.
    pub(super) async fn check_prerequisites(&self, from: &Version, to: &Version) -> Result<(), ExecError> {
        let journal = self.journal.lock().await.clone();
        let wanted: Vec<(usize, String, String)> = journal
            .steps
            .iter()
            .filter_map(|s| match &s.step.action {
                // Acknowledged (--acknowledge): the operator answers for it (an external etcd that
                // the upgrade does not move, for one), so the hop takes their word.
                StepAction::Prerequisite { name, fix, before }
                    if before.minor_version() == to.minor_version()
                        && !journal.acknowledged.contains(&s.step.order) =>
                {
                    Some((s.step.order, name.clone(), fix.clone()))
                }
                _ => None,
            })
            .collect();
        let Some(distro) = self.options.catalog.distro(&journal.distro) else { return Ok(()) };
        if wanted.is_empty() {
            return Ok(());
        }
        let inv = live::collect(&self.client, &self.options.catalog, &live::CollectOptions::default()).await.map_err(
            |e| ExecError::Failed(format!("cannot read the cluster before the hop to {}: {e}", to.minor_version())),
        )?;
        let facts = crate::plan::cluster_facts(&inv);
        let still: Vec<String> = crate::graph::blocks_now(distro, from, to, &facts)
            .into_iter()
            .filter_map(|(name, because)| {
                wanted
                    .iter()
                    .find(|w| w.1 == name)
                    .map(|(order, _, fix)| format!("step {order} ({name}): {because}; {fix}"))
            })
            .collect();
        if still.is_empty() {
            self.emit(Event::log(format!("the hop to {}: its prerequisites hold", to.minor_version())));
            return Ok(());
        }
        let what = if self.options.dry_run { "dry run: the run would stop here: " } else { "" };
        Err(ExecError::Blocked(format!(
            "{what}the hop to {} is not ready: {}. Do it, then run apply --resume (or, when it does not apply to this cluster, --acknowledge the step)",
            to.minor_version(),
            still.join("; ")
        )))
    }

    /// Stops with the objects, releases and clients that still use an API `to` removes.
    pub(super) async fn check_removals(&self, order: usize, from: &Version, to: &Version) -> Result<(), ExecError> {
        let catalog = self.options.catalog.clone();
        let (lo, hi) = (from.minor_version(), to.minor_version());
        if !catalog.apis.apis.iter().any(|a| a.removed_in.is_some_and(|r| r > lo && r <= hi)) {
            return Ok(());
        }
        if self.options.acknowledge_all {
            self.say(format!(
                "the hop to {hi}: objects using APIs it removes were not checked again (--acknowledge-all)"
            ));
            return Ok(());
        }
        let mut inv = live::collect(&self.client, &catalog, &live::CollectOptions::default())
            .await
            .map_err(|e| ExecError::Failed(format!("cannot read the cluster before the hop to {hi}: {e}")))?;
        // Requests the plan already knew about are not held against the hop; ones since are.
        let (start, now) =
            (self.journal.lock().await.requests_at_start.clone(), DeprecatedRequests::read(&self.client).await);
        let since = match (&start, &now) {
            (Some(start), Ok(now)) => Some(now.since(start)),
            _ => None,
        };
        // An object merely stored at the old version is converted by the apiserver and served at
        // the new one after the hop; it matters only when the API has no replacement (its objects
        // stop being served at all). What breaks is whoever still writes or reads the old
        // version: manifests, Helm releases, last-applied configurations, clients.
        let has_replacement = |o: &crate::inventory::ObservedObject| {
            let (group, version) = o.group_version();
            catalog
                .apis
                .apis
                .iter()
                .any(|a| a.group == group && a.version == version && a.kind == o.kind && a.replacement.is_some())
        };
        inv.objects.retain(|o| match &o.evidence {
            Evidence::RequestMetric { resource } => {
                since.as_ref().is_some_and(|s| s.contains(&format!("{} {resource}", o.api_version)))
            }
            Evidence::ServedObjects { .. } => !has_replacement(o),
            _ => true,
        });
        let findings: Vec<Finding> = checks::removed_apis(&inv, &catalog, from, &[(from.clone(), to.clone())])
            .into_iter()
            .filter(|f| f.code == FindingCode::ApiRemoved)
            .collect();
        let journal = self.journal.lock().await.clone();
        let covering = |f: &Finding| -> Option<usize> {
            journal.steps.iter().map(|s| &s.step).find_map(|s| match (&s.action, &f.evidence) {
                (
                    StepAction::HelmRelease { namespace, release, before, .. },
                    Some(Evidence::HelmRelease { release: r, namespace: n, .. }),
                ) if namespace == n && release == r && before.minor_version() == hi => Some(s.order),
                (StepAction::MigrateApi { api_version, kind, before, .. }, evidence)
                    if !matches!(evidence, Some(Evidence::HelmRelease { .. }))
                        && f.details.api_version.as_deref() == Some(api_version.as_str())
                        && f.details.kind.as_deref() == Some(kind.as_str())
                        && before.minor_version() == hi =>
                {
                    Some(s.order)
                }
                _ => None,
            })
        };
        let mut left: Vec<(Option<usize>, &Finding)> = Vec::new();
        let mut acknowledged = 0;
        for f in &findings {
            match covering(f) {
                Some(order) if journal.acknowledged.contains(&order) => acknowledged += 1,
                step => left.push((step, f)),
            }
        }
        if left.is_empty() {
            self.emit(Event::log(format!(
                "the hop to {hi}: nothing still uses an API it removes{}",
                if acknowledged > 0 { format!(" ({acknowledged} acknowledged)") } else { String::new() }
            )));
            return Ok(());
        }
        let mut named: Vec<String> = left
            .iter()
            .take(NAMED)
            .map(|(_, f)| {
                format!(
                    "{} ({} {}, {})",
                    f.subject,
                    f.details.api_version.as_deref().unwrap_or(""),
                    f.details.kind.as_deref().unwrap_or(""),
                    f.evidence.as_ref().map(Evidence::describe).unwrap_or_default()
                )
            })
            .collect();
        if left.len() > NAMED {
            named.push(format!("and {} more", left.len() - NAMED));
        }
        let steps: std::collections::BTreeSet<usize> = left.iter().filter_map(|(s, _)| *s).collect();
        let unplanned = left.iter().filter(|(s, _)| s.is_none()).count();
        let what = if self.options.dry_run { "dry run: the run would stop here: " } else { "" };
        let message = format!(
            "{what}the hop to {hi} stops serving APIs still in use: {}. Migrate them{}; if they are dealt with another way, pass {}",
            named.join("; "),
            if steps.is_empty() {
                String::new()
            } else {
                format!(
                    " (step{} {})",
                    if steps.len() == 1 { "" } else { "s" },
                    steps.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
                )
            },
            if unplanned > 0 || steps.is_empty() {
                "--acknowledge-all (some appeared after the plan)".to_string()
            } else {
                steps.iter().map(|s| format!("--acknowledge {s}")).collect::<Vec<_>>().join(" ")
            }
        );
        if self.options.dry_run {
            self.say(message);
            return Ok(());
        }
        let _ = order;
        Err(ExecError::Blocked(message))
    }
}
