//! Health gates between steps, read from the run's watches ([`Cache`]). A baseline is taken
//! before the run; a gate passes when every node that was Ready then is Ready, the apiserver's
//! `/readyz` answers ok, every workload is back to the available replicas it had (or to its
//! size now, if it was scaled down since), every budget is back to its healthy count (or to the
//! pods it expects now), no pod is Pending that was not Pending then, and the operator's
//! `--gate-command` exits 0. Gates need `passes` consecutive passes: breakage from before the
//! run does not block; regressions do.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{Api, ListParams};

use super::cache::Cache;
use super::cancel::Cancel;
use super::command::{self, CommandSpec};

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    /// `Kind ns/name` → available replicas.
    pub workloads: BTreeMap<String, i64>,
    /// `Kind ns/name` → replicas asked for now (a workload scaled down since the baseline is
    /// held to its new size, not its old one).
    #[serde(default, skip_serializing)]
    pub desired: BTreeMap<String, i64>,
    /// `ns/name` → currentHealthy.
    pub budgets: BTreeMap<String, i64>,
    /// `ns/name` → expectedPods now (a budget over a workload scaled down since is held to
    /// what it can have now).
    #[serde(default, skip_serializing)]
    pub budget_expected: BTreeMap<String, i64>,
    pub pending: usize,
    /// Pods Pending (`ns/name`): a gate fails on a pod Pending now that was not before, not on
    /// a count that old and new Pending pods can balance.
    #[serde(default)]
    pub pending_pods: std::collections::BTreeSet<String>,
    /// Nodes not Ready: broken before the run, so not held against a gate.
    #[serde(default)]
    pub not_ready: std::collections::BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct GateOptions {
    pub passes: u32,
    pub timeout: Duration,
    pub interval: Duration,
    pub command: Option<Vec<String>>,
    /// Longest a single `--gate-command` run may take.
    pub command_timeout: Duration,
}

async fn list<K>(client: &Client, what: &str) -> Result<Vec<K>, String>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    {
        let lp = ListParams::default();
        crate::kubeapi::retry::with_retries(|| api.list(&lp)).await
    }
    .map(|l| l.items)
    .map_err(|e| format!("cannot list {what}: {e}"))
}

fn key(kind: &str, meta: &kube::core::ObjectMeta) -> String {
    format!("{kind} {}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
}

use crate::k8s::node::is_ready as ready;

impl Baseline {
    /// The health figures of a set of objects.
    pub fn of<'a>(
        deployments: impl IntoIterator<Item = &'a Deployment>,
        statefulsets: impl IntoIterator<Item = &'a StatefulSet>,
        budgets: impl IntoIterator<Item = &'a PodDisruptionBudget>,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> Baseline {
        let mut b = Baseline::default();
        for d in deployments {
            let k = key("Deployment", &d.metadata);
            if let Some(spec) = &d.spec {
                b.desired.insert(k.clone(), spec.replicas.map_or(1, i64::from));
            }
            b.workloads.insert(k, d.status.as_ref().and_then(|s| s.available_replicas).map_or(0, i64::from));
        }
        for s in statefulsets {
            let k = key("StatefulSet", &s.metadata);
            if let Some(spec) = &s.spec {
                b.desired.insert(k.clone(), spec.replicas.map_or(1, i64::from));
            }
            b.workloads.insert(k, s.status.as_ref().and_then(|s| s.available_replicas).map_or(0, i64::from));
        }
        for p in budgets {
            let k = format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.name.as_deref().unwrap_or_default()
            );
            b.budgets.insert(k.clone(), p.status.as_ref().map_or(0, |s| i64::from(s.current_healthy)));
            b.budget_expected.insert(k, p.status.as_ref().map_or(0, |s| i64::from(s.expected_pods)));
        }
        b.pending_pods = pods
            .into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"))
            .map(crate::k8s::pod::reference)
            .collect();
        b.pending = b.pending_pods.len();
        b
    }

    /// The baseline, with the nodes that are not Ready now.
    pub fn with_nodes<'a>(mut self, nodes: impl IntoIterator<Item = &'a Node>) -> Baseline {
        self.not_ready =
            nodes.into_iter().filter(|n| !ready(n)).map(|n| crate::k8s::node::name(n).to_string()).collect();
        self
    }

    /// The cluster as the run's watches see it now.
    pub fn from_cache(cache: &Cache) -> Baseline {
        let (d, s, b) = (cache.deployments.state(), cache.statefulsets.state(), cache.budgets.state());
        // Pending pods from the cache's index: a gate polls, and the cluster may hold 150,000 pods.
        let mut baseline =
            Baseline::of(d.iter().map(|x| &**x), s.iter().map(|x| &**x), b.iter().map(|x| &**x), std::iter::empty());
        baseline.pending_pods = cache.pending_pods();
        baseline.pending = baseline.pending_pods.len();
        baseline.with_nodes(cache.nodes.state().iter().map(|n| &**n))
    }

    /// What got worse than `self` in `now`, with nodes that are not Ready (and were before).
    fn regressions<'a>(&self, now: &Baseline, nodes: impl IntoIterator<Item = &'a Node>) -> Vec<String> {
        let mut failures: Vec<String> = nodes
            .into_iter()
            .filter(|n| !ready(n) && !self.not_ready.contains(crate::k8s::node::name(n)))
            .map(|n| format!("node {} is not Ready", crate::k8s::node::name(n)))
            .collect();
        // Workloads and budgets deleted since the baseline are not waited for.
        for (w, before) in &self.workloads {
            let Some(&have) = now.workloads.get(w) else { continue };
            let want = now.desired.get(w).map_or(*before, |d| (*d).min(*before));
            if have < want {
                failures.push(format!("{w} has {have} available replicas (was {before})"));
            }
        }
        for (b, before) in &self.budgets {
            let Some(&have) = now.budgets.get(b) else { continue };
            let want = now.budget_expected.get(b).map_or(*before, |e| (*e).min(*before));
            if have < want {
                failures.push(format!("PodDisruptionBudget {b} has {have} healthy pods (was {before})"));
            }
        }
        let new_pending: Vec<&String> = now.pending_pods.difference(&self.pending_pods).collect();
        if !new_pending.is_empty() {
            let named: Vec<&str> = new_pending.iter().take(5).map(|s| s.as_str()).collect();
            failures.push(format!(
                "{} pod{} Pending that {} not before: {}{}",
                new_pending.len(),
                if new_pending.len() == 1 { "" } else { "s" },
                if new_pending.len() == 1 { "was" } else { "were" },
                named.join(", "),
                if new_pending.len() > 5 { ", …" } else { "" }
            ));
        }
        failures
    }
}

/// Observes the cluster by listing it (used while a watch cannot be trusted).
pub async fn observe(client: &Client) -> Result<(Baseline, Vec<Node>), String> {
    let (deployments, statefulsets, budgets, pods, nodes) = futures::try_join!(
        list::<Deployment>(client, "deployments"),
        list::<StatefulSet>(client, "statefulsets"),
        list::<PodDisruptionBudget>(client, "poddisruptionbudgets"),
        list::<Pod>(client, "pods"),
        async {
            let api: Api<Node> = Api::all(client.clone());
            let lp = ListParams::default();
            crate::kubeapi::retry::with_retries(|| api.list(&lp))
                .await
                .map(|l| l.items)
                .map_err(|e| format!("cannot list nodes: {e}"))
        },
    )?;
    Ok((Baseline::of(&deployments, &statefulsets, &budgets, &pods).with_nodes(&nodes), nodes))
}

/// The checks that need no request: from the watches when they are healthy (unless `direct`),
/// else by listing. The flag says whether the answer came from the watches (free to ask again).
async fn check_objects(client: &Client, cache: &Cache, baseline: &Baseline, direct: bool) -> (Vec<String>, bool) {
    if !direct && cache.stale().is_empty() {
        return (baseline.regressions(&Baseline::from_cache(cache), cache.nodes.state().iter().map(|n| &**n)), true);
    }
    match observe(client).await {
        Ok((now, nodes)) => (baseline.regressions(&now, &nodes), false),
        Err(e) => (vec![e], false),
    }
}

/// What a gate check found, and whether asking again costs nothing.
pub struct Checked {
    pub failures: Vec<String>,
    /// The failures came from the watched objects alone: no request, no command was run.
    pub free: bool,
}

/// What fails now, compared with the baseline; empty when the gate passes. The apiserver and
/// the operator's command are asked only once the cluster's objects look healthy.
pub async fn check(
    client: &Client,
    cache: &Cache,
    baseline: &Baseline,
    options: &GateOptions,
    cancel: &Cancel,
) -> Checked {
    check_with(client, cache, baseline, options, false, cancel).await
}

/// [`check`], reading the objects directly when `direct` (the watches are not trusted).
async fn check_with(
    client: &Client,
    cache: &Cache,
    baseline: &Baseline,
    options: &GateOptions,
    direct: bool,
    cancel: &Cancel,
) -> Checked {
    let (mut failures, free) = check_objects(client, cache, baseline, direct).await;
    if !failures.is_empty() {
        return Checked { failures, free };
    }
    let readyz = http::Request::get("/readyz").body(Vec::new());
    match readyz {
        Ok(req) => {
            if let Err(e) = client.request_text(req).await {
                failures.push(format!("apiserver /readyz: {}", e.to_string().lines().next().unwrap_or_default()));
            }
        }
        Err(e) => failures.push(e.to_string()),
    }
    if let Some(argv) = &options.command {
        let spec = CommandSpec { argv: argv.clone(), env: vec![], timeout: options.command_timeout, log_file: None };
        if let Err(e) = command::run(&spec, cancel, &|_| {}).await {
            failures.push(format!("--gate-command: {}", e.to_string().chars().take(400).collect::<String>()));
        }
    }
    Checked { failures, free: false }
}

/// For each workload short of replicas in `failures`, up to three of its pods that are not Ready
/// and why, as the scheduler and kubelet say it: what the operator would run `kubectl describe`
/// for. Read from the API once, when the gate gives up (the run's cache keeps no templates,
/// selectors or container states). Text from the cluster is cut to one short printable line.
async fn why_unavailable(client: &Client, failures: &[String]) -> Vec<String> {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(240).collect::<String>().trim().to_string()
    };
    let mut out = Vec::new();
    for f in failures.iter().take(5) {
        let Some((kind, rest)) = f.split_once(' ') else { continue };
        let Some((reference, _)) = rest.split_once(" has ") else { continue };
        if !rest.contains(" available replicas") {
            continue;
        }
        let Some((ns, name)) = reference.split_once('/') else { continue };
        // A list by name, not a get: the roles grant list and watch on workloads.
        let by_name = ListParams::default().fields(&format!("metadata.name={name}"));
        let selector = match kind {
            "Deployment" => Api::<Deployment>::namespaced(client.clone(), ns)
                .list(&by_name)
                .await
                .ok()
                .and_then(|l| l.items.into_iter().find(|d| d.metadata.name.as_deref() == Some(name)))
                .and_then(|d| d.spec.map(|s| s.selector)),
            "StatefulSet" => Api::<StatefulSet>::namespaced(client.clone(), ns)
                .list(&by_name)
                .await
                .ok()
                .and_then(|l| l.items.into_iter().find(|d| d.metadata.name.as_deref() == Some(name)))
                .and_then(|d| d.spec.map(|s| s.selector)),
            _ => None,
        };
        let Some(selector) = selector else { continue };
        let Some(matcher) = serde_json::to_value(&selector)
            .ok()
            .and_then(|v| crate::labels::LabelSelector::from_json(&v).ok())
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        // matchLabels narrows the list on the server; the whole selector is applied here.
        let narrow: Vec<String> = selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
        let lp = ListParams::default().labels(&narrow.join(",")).limit(500);
        let Ok(pods) = Api::<Pod>::namespaced(client.clone(), ns).list(&lp).await else { continue };
        let stuck = pods.items.into_iter().filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && matcher.matches_map(p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
                && !crate::k8s::pod::is_ready(p)
        });
        for p in stuck.take(3) {
            let status = p.status.clone().unwrap_or_default();
            let phase = status.phase.as_deref().unwrap_or("Unknown");
            let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("no node");
            let condition = |t: &str| {
                status.conditions.iter().flatten().find(|c| c.type_ == t && c.status == "False").map(|c| {
                    format!("{}: {}", c.reason.as_deref().unwrap_or(t), c.message.as_deref().unwrap_or_default())
                })
            };
            let waiting = status.container_statuses.iter().flatten().find_map(|c| {
                c.state.as_ref().and_then(|s| s.waiting.as_ref()).map(|w| {
                    format!(
                        "container {} waiting: {} {}",
                        c.name,
                        w.reason.as_deref().unwrap_or_default(),
                        w.message.as_deref().unwrap_or_default()
                    )
                })
            });
            let why = condition("PodScheduled")
                .or(waiting)
                .or_else(|| condition("Ready"))
                .unwrap_or_else(|| "not Ready".to_string());
            out.push(format!(
                "{kind} {reference}: pod {} {phase} on {}: {}",
                clean(&crate::k8s::pod::reference(&p)),
                clean(node),
                clean(&why)
            ));
        }
    }
    out
}

/// How often a gate that keeps failing on the watched objects checks them by listing instead
/// (and the node wait reads the node directly): a watch can go quiet without failing.
pub(super) const DIRECT_CROSS_CHECK: Duration = Duration::from_secs(30);

/// Waits for `passes` consecutive passes; on timeout returns the last failures.
pub async fn wait(
    client: &Client,
    cache: &Cache,
    baseline: &Baseline,
    options: &GateOptions,
    cancel: &Cancel,
) -> Result<u32, Vec<String>> {
    let deadline = Instant::now() + options.timeout;
    let mut streak = 0;
    let mut checks = 0;
    let mut changes = cache.changes();
    // A watch can go quiet without failing (a restarted apiserver, a proxy): a gate that keeps
    // failing on the watched objects alone is cross-checked by listing them, at this pace.
    let mut last_direct = Instant::now();
    // Once a listing passed where the watches failed, they are behind: list until the gate ends.
    let mut trust_watches = true;
    let mut last_failures = Vec::new();
    loop {
        changes.borrow_and_update();
        let direct = !trust_watches || last_direct.elapsed() >= DIRECT_CROSS_CHECK;
        if direct {
            last_direct = Instant::now();
        }
        let Checked { failures, free } = check_with(client, cache, baseline, options, direct, cancel).await;
        if direct && failures.is_empty() {
            trust_watches = false;
        }
        checks += 1;
        if failures.is_empty() {
            streak += 1;
            if streak >= options.passes {
                return Ok(checks);
            }
        } else {
            streak = 0;
            if Instant::now() >= deadline {
                let mut failures = failures;
                failures.extend(why_unavailable(client, &failures).await);
                return Err(failures);
            }
        }
        if !failures.is_empty() {
            last_failures.clone_from(&failures);
        }
        if cancel.is_abort_requested() {
            // Say what the gate was waiting for: that is what the operator looks at next.
            let mut why = vec!["stopped on request".to_string()];
            why.extend(last_failures.iter().map(|f| format!("still failing: {f}")));
            return Err(why);
        }
        let pause = async {
            if streak == 0 && free {
                // Failing on the watched objects: look again as soon as something changes (that
                // look sends no request), letting a burst of changes settle first.
                Cache::next_change(&mut changes, options.interval).await;
                tokio::time::sleep(options.interval.min(Duration::from_millis(20))).await;
            } else {
                // Failing on /readyz, the operator's command or a direct list, or passing (the
                // next pass must be a separate look): once per interval.
                tokio::time::sleep(options.interval).await;
            }
        };
        tokio::select! {
            _ = pause => {}
            _ = cancel.abort_requested() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline(
        workloads: &[(&str, i64)],
        desired: &[(&str, i64)],
        budgets: &[(&str, i64)],
        pending: usize,
    ) -> Baseline {
        let map = |v: &[(&str, i64)]| v.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        Baseline {
            workloads: map(workloads),
            desired: map(desired),
            budgets: map(budgets),
            pending,
            pending_pods: (0..pending).map(|i| format!("batch/job-{i}")).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn regressions_are_against_the_baseline_not_perfection() {
        // web was already short of its 3 replicas before the run: 2 available is not a regression.
        let before = baseline(&[("Deployment shop/web", 2), ("StatefulSet data/db", 3)], &[], &[("data/db-pdb", 3)], 1);
        let same = baseline(
            &[("Deployment shop/web", 2), ("StatefulSet data/db", 3)],
            &[("Deployment shop/web", 3), ("StatefulSet data/db", 3)],
            &[("data/db-pdb", 3)],
            1,
        );
        assert!(before.regressions(&same, []).is_empty());
        let worse = baseline(
            &[("Deployment shop/web", 1), ("StatefulSet data/db", 3)],
            &[("Deployment shop/web", 3), ("StatefulSet data/db", 3)],
            &[("data/db-pdb", 2)],
            2,
        );
        let f = before.regressions(&worse, []);
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f[0].contains("Deployment shop/web has 1 available replicas (was 2)"), "{f:?}");
        assert!(f[1].contains("PodDisruptionBudget data/db-pdb has 2 healthy pods (was 3)"), "{f:?}");
        assert!(f[2].contains("1 pod Pending that was not before: batch/job-1"), "{f:?}");
    }

    #[test]
    fn a_budget_over_a_workload_scaled_down_since_is_held_to_what_it_can_have_and_old_pending_pods_do_not_count() {
        let mut before = baseline(&[("Deployment shop/web", 5)], &[], &[("shop/web-pdb", 5)], 2);
        // An HPA took web from 5 to 3 replicas; two old Pending pods resolved, one new one came.
        let mut now = baseline(&[("Deployment shop/web", 3)], &[("Deployment shop/web", 3)], &[("shop/web-pdb", 3)], 0);
        now.budget_expected.insert("shop/web-pdb".into(), 3);
        assert!(before.regressions(&now, []).is_empty(), "{:?}", before.regressions(&now, []));
        now.pending_pods.insert("shop/web-7f9".into());
        let f = before.regressions(&now, []);
        assert_eq!(f, vec!["1 pod Pending that was not before: shop/web-7f9".to_string()]);
        // The count alone would have hidden it: 1 Pending now, 2 before.
        before.pending_pods.insert("shop/web-7f9".into());
        assert!(before.regressions(&now, []).is_empty());
    }

    #[test]
    fn a_workload_scaled_down_or_deleted_since_the_baseline_does_not_hold_the_gate() {
        let before =
            baseline(&[("Deployment shop/web", 3), ("Deployment shop/old", 2)], &[], &[("shop/old-pdb", 2)], 0);
        let now = baseline(&[("Deployment shop/web", 1)], &[("Deployment shop/web", 1)], &[], 0);
        assert!(before.regressions(&now, []).is_empty(), "{:?}", before.regressions(&now, []));
    }

    #[test]
    fn a_node_not_ready_fails_the_gate_and_the_baseline_survives_the_journal() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pool-a-1"},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}
        }))
        .unwrap();
        let b = baseline(&[("Deployment shop/web", 3)], &[("Deployment shop/web", 3)], &[], 0);
        assert_eq!(b.regressions(&b.clone(), [&node]), vec!["node pool-a-1 is not Ready".to_string()]);
        // Not Ready before the run: not held against the gate.
        let before = b.clone().with_nodes([&node]);
        assert!(before.regressions(&b.clone(), [&node]).is_empty());
        // What a resumed run reads back: the figures, without the momentary desired sizes.
        let back: Baseline = serde_json::from_value(serde_json::to_value(&b).unwrap()).unwrap();
        assert_eq!(back.workloads, b.workloads);
        assert!(back.desired.is_empty());
    }
}
