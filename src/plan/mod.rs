//! The plan: a versioned document (`kind: UpgradePlan`) built by one pure function.
//!
//! `plan(&Inventory, &Catalog, &PathRequest)` finds the path (graph), runs the checks over the
//! inventory and every hop, and orders the steps: each fix is placed right before the hop that
//! needs it (rewriting objects whose API a hop removes goes before that hop), then the
//! control-plane hops and node rolls in the order the graph chose. No I/O, no clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::checks::{self, Finding, FindingCode, Severity};
use crate::graph::{self, Component, Note, PathError, PathRequest};
use crate::inventory::Inventory;
use crate::version::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    ControlPlane,
    Nodes,
    MigrateApi,
    Addon,
    HelmRelease,
    Prerequisite,
}

impl StepKind {
    /// The name the plan document uses (kebab-case).
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::ControlPlane => "control-plane",
            StepKind::Nodes => "nodes",
            StepKind::MigrateApi => "migrate-api",
            StepKind::Addon => "addon",
            StepKind::HelmRelease => "helm-release",
            StepKind::Prerequisite => "prerequisite",
        }
    }
}

/// What a step does, typed: the executor acts on this and never on the step's wording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum StepAction {
    /// Every control-plane node (or the managed control plane) moves from `from` to `to`.
    ControlPlane { from: Version, to: Version },
    /// Nodes whose kubelet is at a move's `from` (or between it and its `to`) move to its `to`.
    Nodes { moves: Vec<graph::KubeletMove> },
    /// Objects using `apiVersion` `kind` must be rewritten (to `replacement`, when there is one)
    /// before the control plane moves to `before`, which stops serving them.
    MigrateApi {
        api_version: String,
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replacement: Option<String>,
        before: Version,
        /// The objects, as the findings name them (`CronJob shop/nightly`).
        objects: Vec<String>,
    },
    /// A Helm release whose stored manifest uses APIs that `before` stops serving.
    HelmRelease { namespace: String, release: String, revision: u32, apis: Vec<String>, before: Version },
    /// A condition that blocks the control plane's move to `before` until the operator clears it
    /// (`name` is the catalog's blocked edge); the hop checks the cluster again itself.
    Prerequisite { name: String, fix: String, before: Version },
    /// An add-on workload moves to the version line `line`.
    Addon { addon: String, workload: String, line: String },
    /// Something only the operator can do, described in the step's text.
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub order: usize,
    pub kind: StepKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Version>,
    pub description: String,
    /// For a node roll: which kubelet versions move to which.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<graph::KubeletMove>,
    /// Indexes into `findings` that this step resolves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolves: Vec<usize>,
    pub action: StepAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub blockers: usize,
    pub warnings: usize,
    pub infos: usize,
}

/// The envelope of every document this tool writes.
pub const API_VERSION: &str = graph::API_VERSION;
pub const KIND: &str = "UpgradePlan";
/// Largest plan document read back (`apply --plan`): a plan of a 5,000-node cluster with every
/// finding is a few megabytes.
pub const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub api_version: String,
    pub kind: String,
    pub distro: String,
    pub from: Version,
    pub to: Version,
    pub kubelets: Vec<Version>,
    pub steps: Vec<Step>,
    pub findings: Vec<Finding>,
    pub summary: Summary,
    pub notes: Vec<Note>,
    /// Problems met while collecting the inventory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory_warnings: Vec<String>,
}

/// Why a plan document cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DocumentError {
    #[error("not YAML or JSON: {0}")]
    Syntax(String),
    #[error(
        "{found_api_version:?} {found_kind:?} is not a plan this build reads (it reads {API_VERSION} {KIND}); save it again with `k8s-upgrade plan --save` from this build"
    )]
    Version { found_api_version: String, found_kind: String },
    #[error("not a valid {KIND}: {0}; save it again with `k8s-upgrade plan --save`")]
    Shape(String),
}

impl Plan {
    pub fn has_blockers(&self) -> bool {
        self.summary.blockers > 0
    }

    /// Reads a saved plan (YAML or JSON). The envelope is checked before anything else, so a
    /// document of another kind or version is refused with what it is, not with a field error.
    pub fn from_document(text: &str) -> Result<Plan, DocumentError> {
        let doc: serde_json::Value = serde_saphyr::from_str(text)
            .map_err(|e| DocumentError::Syntax(e.to_string().lines().next().unwrap_or_default().to_string()))?;
        let field = |k: &str| doc.get(k).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        if api_version != API_VERSION || kind != KIND {
            return Err(DocumentError::Version { found_api_version: api_version, found_kind: kind });
        }
        serde_json::from_value(doc).map_err(|e| DocumentError::Shape(e.to_string()))
    }

    /// Blockers that no step resolves.
    pub fn unresolved_blockers(&self) -> Vec<&Finding> {
        let resolved: std::collections::BTreeSet<usize> =
            self.steps.iter().flat_map(|s| s.resolves.iter().copied()).collect();
        self.findings
            .iter()
            .enumerate()
            .filter(|(i, f)| f.severity == Severity::Blocker && !resolved.contains(i))
            .map(|(_, f)| f)
            .collect()
    }
}

/// What differs between a saved plan and the plan made now, one line each (empty: the same
/// steps from the same version). Wording and findings may change; the actions may not.
pub fn diff(saved: &Plan, now: &Plan) -> Vec<String> {
    let line = |s: &Step| match &s.action {
        StepAction::ControlPlane { from, to } => format!("control-plane {from} → {to}"),
        StepAction::Nodes { moves } => {
            format!("nodes {}", moves.iter().map(|m| format!("{}→{}", m.from, m.to)).collect::<Vec<_>>().join(","))
        }
        StepAction::MigrateApi { api_version, kind, before, .. } => {
            format!("migrate-api {api_version} {kind} before {}", before.minor_version())
        }
        StepAction::HelmRelease { namespace, release, before, .. } => {
            format!("helm-release {namespace}/{release} before {}", before.minor_version())
        }
        StepAction::Addon { addon, line, .. } => format!("addon {addon} {line}"),
        StepAction::Prerequisite { name, before, .. } => {
            format!("prerequisite {name} before {}", before.minor_version())
        }
        StepAction::Manual => format!("manual {}", s.description),
    };
    let a: Vec<String> = saved.steps.iter().map(line).collect();
    let b: Vec<String> = now.steps.iter().map(line).collect();
    let mut out = Vec::new();
    if saved.from != now.from {
        out.push(format!("from: plan {} / cluster now {}", saved.from, now.from));
    }
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => out.push(format!(
                "step {}: plan `{}` / cluster now `{}`",
                i + 1,
                x.map_or("-", String::as_str),
                y.map_or("-", String::as_str)
            )),
        }
    }
    out
}

/// A blocked edge the operator can clear, as the blocker that the step before its hop resolves.
fn prerequisite_finding(b: &graph::BlockedHop) -> Finding {
    let fix = b.fix.clone().unwrap_or_default();
    let mut facts = serde_json::Map::new();
    facts.insert("fix".into(), serde_json::json!(fix));
    facts.insert("source".into(), serde_json::json!(b.source));
    Finding {
        code: FindingCode::HopPrerequisite,
        severity: Severity::Blocker,
        hop: Some(checks::HopRef { from: b.from.clone(), to: b.to.clone() }),
        subject: b.name.clone(),
        message: format!("{} → {} cannot be taken yet: {} ({})", b.from, b.to.minor_version(), b.reason, b.because),
        evidence: None,
        remediation: format!("{fix} before the control plane moves to {}", b.to.minor_version()),
        details: checks::Details::facts(facts),
    }
}

/// Builds the plan. Fails only when there is no path at all.
#[allow(clippy::result_large_err)] // built once per run; the path error carries its evidence
pub fn plan(inv: &Inventory, catalog: &Catalog, req: &PathRequest) -> Result<Plan, PathError> {
    plan_drain_scoped(inv, catalog, req, None)
}

/// [`plan`] for drains that evict only the pods `drain_scope` selects (`--pod-selector`): pods
/// left out raise no drain finding, as the drain will not touch them.
#[allow(clippy::result_large_err)] // as `plan`
pub fn plan_drain_scoped(
    inv: &Inventory,
    catalog: &Catalog,
    req: &PathRequest,
    drain_scope: Option<&crate::labels::LabelSelector>,
) -> Result<Plan, PathError> {
    let req = with_cluster_facts(inv, req);
    let path = graph::find_path(catalog, &req)?;
    let Some(distro) = catalog.distro(&path.distro) else {
        return Err(PathError::UnknownDistro { name: path.distro.clone(), known: catalog.distro_names().join(", ") });
    };
    let cp_hops: Vec<(Version, Version)> = path
        .hops
        .iter()
        .filter(|h| h.component == Component::ControlPlane)
        .map(|h| (h.from.clone(), h.to.clone()))
        .collect();
    let mut findings = checks::removed_apis(inv, catalog, &path.from, &cp_hops);
    findings.extend(checks::addons(inv, catalog, &path.from, &cp_hops));
    findings.extend(checks::skew(inv, catalog, distro));
    findings.extend(checks::drainability(inv, drain_scope));
    findings.extend(checks::support_calendar(catalog, distro, &cp_hops, req.today));
    findings.extend(checks::access(inv));
    findings.extend(path.prerequisites.iter().map(prerequisite_finding));
    // Blockers first, then warnings, then information; stable within each.
    findings.sort_by_key(|f| f.severity);

    // Migration steps, grouped by the hop they must precede and the API they replace; Helm
    // releases get their own step, since their stored manifest must be rewritten too.
    let mut migrations: BTreeMap<(usize, String, String), Vec<usize>> = BTreeMap::new();
    let mut helm: BTreeMap<(usize, String, String, u32), Vec<usize>> = BTreeMap::new();
    for (i, f) in findings.iter().enumerate() {
        if f.code != FindingCode::ApiRemoved {
            continue;
        }
        let hop_index =
            f.hop.as_ref().and_then(|h| cp_hops.iter().position(|c| c.0 == h.from && c.1 == h.to)).unwrap_or(0);
        if let Some(crate::inventory::Evidence::HelmRelease { release, namespace, revision }) = &f.evidence {
            helm.entry((hop_index, namespace.clone(), release.clone(), *revision)).or_default().push(i);
            continue;
        }
        let api = f.details.api_version.clone().unwrap_or_default();
        let kind = f.details.kind.clone().unwrap_or_default();
        migrations.entry((hop_index, api, kind)).or_default().push(i);
    }
    // Add-on upgrades, placed before (or, for version-locked add-ons, right after) their hop.
    let mut addon_before: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut addon_after: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, f) in findings.iter().enumerate() {
        if !matches!(f.code, FindingCode::AddonUpgrade | FindingCode::AddonNoBridge) {
            continue;
        }
        if let Some(h) = f.details.before_hop {
            addon_before.entry(h).or_default().push(i);
        } else if let Some(h) = f.details.after_hop {
            addon_after.entry(h).or_default().push(i);
        }
    }
    let addon_step = |i: usize| {
        let d = &findings[i].details;
        Step {
            order: 0,
            kind: StepKind::Addon,
            target: None,
            description: findings[i].remediation.clone(),
            moves: vec![],
            resolves: vec![i],
            action: match (&d.addon, &d.workload, &d.line) {
                (Some(addon), Some(workload), Some(line)) => {
                    StepAction::Addon { addon: addon.clone(), workload: workload.clone(), line: line.clone() }
                }
                // A bridge over two releases names no single line: the operator picks.
                _ => StepAction::Manual,
            },
        }
    };
    let mut steps = Vec::new();
    let mut cp_index = 0;
    for hop in &path.hops {
        if hop.component == Component::ControlPlane {
            for (i, f) in findings.iter().enumerate().filter(|(_, f)| {
                f.code == FindingCode::HopPrerequisite
                    && f.hop.as_ref().is_some_and(|h| h.from == hop.from && h.to == hop.to)
            }) {
                steps.push(Step {
                    order: 0,
                    kind: StepKind::Prerequisite,
                    target: None,
                    description: f.remediation.clone(),
                    moves: vec![],
                    resolves: vec![i],
                    action: StepAction::Prerequisite {
                        name: f.subject.clone(),
                        fix: f.details.facts.get("fix").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
                        before: hop.to.clone(),
                    },
                });
            }
            for i in addon_before.get(&cp_index).into_iter().flatten() {
                steps.push(addon_step(*i));
            }
            for ((i, ns, release, revision), idx) in helm.iter().filter(|((i, ..), _)| *i == cp_index) {
                let apis: std::collections::BTreeSet<String> = idx
                    .iter()
                    .map(|f| {
                        let d = &findings[*f].details;
                        format!("{} {}", d.api_version.as_deref().unwrap_or(""), d.kind.as_deref().unwrap_or(""))
                    })
                    .collect();
                let before = cp_hops.get(*i).map(|h| h.1.clone()).unwrap_or_else(|| path.to.clone());
                steps.push(Step {
                    order: 0,
                    kind: StepKind::HelmRelease,
                    target: None,
                    description: format!(
                        "Helm release {ns}/{release} (revision {revision}) stores {}: upgrade the chart to current APIs or rewrite the stored release (helm mapkubeapis) before the control plane moves to {}, or helm upgrade fails afterwards",
                        apis.iter().cloned().collect::<Vec<_>>().join(", "),
                        before.minor_version()
                    ),
                    moves: vec![],
                    resolves: idx.clone(),
                    action: StepAction::HelmRelease {
                        namespace: ns.clone(),
                        release: release.clone(),
                        revision: *revision,
                        apis: apis.into_iter().collect(),
                        before,
                    },
                });
            }
            for ((i, api, kind), idx) in migrations.iter().filter(|((i, _, _), _)| *i == cp_index) {
                let f = &findings[idx[0]];
                let replacement = f.details.replacement.as_deref().map(|r| format!(" to {r}")).unwrap_or_default();
                let before = cp_hops.get(*i).map(|h| h.1.clone()).unwrap_or_else(|| path.to.clone());
                steps.push(Step {
                    order: 0,
                    kind: StepKind::MigrateApi,
                    target: None,
                    description: format!(
                        "migrate {} {kind} object{} from {api}{replacement} before the control plane moves to {}",
                        idx.len(),
                        if idx.len() == 1 { "" } else { "s" },
                        before.minor_version()
                    ),
                    moves: vec![],
                    resolves: idx.clone(),
                    action: StepAction::MigrateApi {
                        api_version: api.clone(),
                        kind: kind.clone(),
                        replacement: f.details.replacement.clone(),
                        before,
                        objects: idx.iter().map(|i| findings[*i].subject.clone()).collect(),
                    },
                });
            }
            cp_index += 1;
        }
        steps.push(Step {
            order: 0,
            kind: match hop.component {
                Component::ControlPlane => StepKind::ControlPlane,
                Component::Nodes => StepKind::Nodes,
            },
            target: Some(hop.to.clone()),
            description: match hop.moves.as_slice() {
                [_, _, ..] => format!(
                    "nodes {}: {}",
                    hop.moves.iter().map(|m| format!("{} → {}", m.from, m.to)).collect::<Vec<_>>().join(", "),
                    hop.reason
                ),
                _ => format!("{} {} → {}: {}", hop.component, hop.from, hop.to, hop.reason),
            },
            moves: hop.moves.clone(),
            resolves: vec![],
            action: match hop.component {
                Component::ControlPlane => StepAction::ControlPlane { from: hop.from.clone(), to: hop.to.clone() },
                Component::Nodes => StepAction::Nodes { moves: hop.moves.clone() },
            },
        });
        if hop.component == Component::ControlPlane {
            for i in addon_after.get(&(cp_index - 1)).into_iter().flatten() {
                steps.push(addon_step(*i));
            }
        }
    }
    for (i, s) in steps.iter_mut().enumerate() {
        s.order = i + 1;
    }
    let count = |sev| findings.iter().filter(|f| f.severity == sev).count();
    let summary = Summary {
        blockers: count(Severity::Blocker),
        warnings: count(Severity::Warning),
        infos: count(Severity::Info),
    };
    Ok(Plan {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        distro: path.distro,
        from: path.from,
        to: path.to,
        kubelets: path.kubelets,
        steps,
        findings,
        summary,
        notes: path.notes,
        inventory_warnings: inv.warnings.clone(),
    })
}

/// Fills what the graph needs from a read cluster: kubelet versions and the facts blocked-edge
/// conditions test (node info, component and add-on versions, APIs in use).
/// What the blocked-edge conditions can ask of an inventory (only what it knows is filled in).
pub fn cluster_facts(inv: &Inventory) -> graph::Facts {
    let (mut facts, mut kubelets) = (graph::Facts::default(), Vec::new());
    fill_facts(inv, &mut facts, &mut kubelets);
    facts
}

fn with_cluster_facts(inv: &Inventory, req: &PathRequest) -> PathRequest {
    let mut req = req.clone();
    let given_kubelets = !req.kubelets.is_empty();
    fill_facts(inv, &mut req.facts, &mut req.kubelets);
    // Control-plane nodes already past the oldest apiserver in an upgrade half-way through are
    // where the first hop lands, not kubelets to plan rolls for.
    if let Some(c) = &inv.cluster
        && !given_kubelets
    {
        let ahead = checks::skew::control_plane_upgrade_in_progress(c);
        if !ahead.is_empty() {
            req.kubelets = c
                .nodes
                .iter()
                .filter(|n| !ahead.iter().any(|(name, _)| *name == n.name))
                .filter_map(|n| n.kubelet.clone())
                .collect();
            req.facts.kubelets = Some(req.kubelets.clone());
        }
    }
    req
}

fn fill_facts(inv: &Inventory, facts: &mut graph::Facts, kubelets: &mut Vec<Version>) {
    // Borrowed first: a manifest tree has hundreds of thousands of objects and a few dozen APIs.
    let distinct: std::collections::HashSet<(&str, &str, &str)> = inv
        .objects
        .iter()
        .map(|o| {
            let (g, v) = o.group_version();
            (g, v, o.kind.as_str())
        })
        .collect();
    let apis: std::collections::BTreeSet<(String, String, String)> =
        distinct.into_iter().map(|(g, v, k)| (g.to_string(), v.to_string(), k.to_string())).collect();
    facts.apis_in_use.get_or_insert(apis);
    let Some(c) = &inv.cluster else { return };
    if kubelets.is_empty() {
        *kubelets = c.nodes.iter().filter_map(|n| n.kubelet.clone()).collect();
    }
    facts.kubelets.get_or_insert_with(|| kubelets.clone());
    facts.node_infos.get_or_insert_with(|| c.nodes.iter().map(|n| n.node_info.clone()).collect());
    facts.addons.get_or_insert_with(|| c.addons.iter().map(|a| a.name.clone()).collect());
    facts.components.get_or_insert_with(|| {
        let mut m = std::collections::BTreeMap::new();
        for a in &c.addons {
            if let Ok(v) = a.version.trim_start_matches('v').parse::<Version>() {
                let e = m.entry(a.name.clone()).or_insert(v.clone());
                if v < *e {
                    *e = v;
                }
            }
        }
        for p in c.control_plane.iter().filter(|p| p.component == "etcd") {
            let (_, tag) = crate::k8s::image::split_image(&p.image);
            if let Ok(v) = tag.trim_start_matches('v').parse::<Version>() {
                let e = m.entry("etcd".to_string()).or_insert(v.clone());
                if v < *e {
                    *e = v;
                }
            }
        }
        m
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Facts, Target};
    use crate::inventory::{Evidence, ObservedObject};

    fn obj(api: &str, kind: &str, name: &str) -> ObservedObject {
        ObservedObject {
            api_version: api.into(),
            kind: kind.into(),
            name: name.into(),
            namespace: Some("default".into()),
            evidence: Evidence::Manifest { file: "m.yaml".into(), document: 1 },
        }
    }

    fn req(from: &str, to: &str) -> PathRequest {
        PathRequest {
            distro: "kubeadm".into(),
            from: from.parse().unwrap(),
            to: Target::Version(to.parse().unwrap()),
            via: vec![],
            kubelets: vec![],
            facts: Facts::default(),
            today: "2026-11-26".parse().unwrap(),
        }
    }

    /// Objects through three APIs removed between 1.23 and 1.27, and `extra`.
    fn removed_api_inventory(extra: Vec<ObservedObject>, warnings: Vec<String>) -> Inventory {
        let mut objects = vec![
            obj("policy/v1beta1", "PodDisruptionBudget", "web"),
            obj("batch/v1beta1", "CronJob", "nightly"),
            obj("autoscaling/v2beta2", "HorizontalPodAutoscaler", "web"),
        ];
        objects.extend(extra);
        Inventory { cluster: None, objects, warnings }
    }

    #[test]
    fn removed_apis_block_and_their_migration_precedes_the_hop() {
        let c = Catalog::embedded().unwrap();
        let inv = removed_api_inventory(vec![obj("apps/v1", "Deployment", "web")], vec![]);
        let p = plan(&inv, &c, &req("1.23.17", "1.27")).unwrap();
        assert_eq!(p.summary.blockers, 3);
        assert!(p.has_blockers());
        let pdb = p.findings.iter().find(|f| f.subject.contains("PodDisruptionBudget")).unwrap();
        assert_eq!(pdb.hop.as_ref().unwrap().to.minor_version().to_string(), "1.25");
        assert_eq!(pdb.details.replacement.as_deref(), Some("policy/v1"));
        assert!(
            pdb.remediation.contains("m.yaml (document 1)") && pdb.remediation.contains("now"),
            "{}",
            pdb.remediation
        );
        let kinds: Vec<String> = p
            .steps
            .iter()
            .map(|s| {
                format!("{:?} {}", s.kind, s.target.as_ref().map(|t| t.minor_version().to_string()).unwrap_or_default())
            })
            .collect();
        let migrate_pdb = p
            .steps
            .iter()
            .position(|s| s.kind == StepKind::MigrateApi && s.description.contains("PodDisruptionBudget"))
            .unwrap();
        let to_125 = p
            .steps
            .iter()
            .position(|s| {
                s.kind == StepKind::ControlPlane && s.target.as_ref().unwrap().minor_version().to_string() == "1.25"
            })
            .unwrap();
        let migrate_hpa = p.steps.iter().position(|s| s.description.contains("HorizontalPodAutoscaler")).unwrap();
        let to_126 = p
            .steps
            .iter()
            .position(|s| {
                s.kind == StepKind::ControlPlane && s.target.as_ref().unwrap().minor_version().to_string() == "1.26"
            })
            .unwrap();
        assert!(migrate_pdb < to_125 && to_125 < migrate_hpa && migrate_hpa < to_126, "{kinds:?}");
        // Hops without removals say so.
        assert!(p.findings.iter().any(
            |f| f.code == FindingCode::ApiRemovalsAtHop && f.message.contains("no API removals at the hop to 1.24")
        ));
    }

    #[test]
    fn the_plan_document_round_trips_and_other_versions_are_refused() {
        let c = Catalog::embedded().unwrap();
        let inv = removed_api_inventory(vec![], vec!["a warning".into()]);
        let p = plan(&inv, &c, &req("1.23.17", "1.27")).unwrap();
        assert!(p.steps.iter().any(|s| matches!(&s.action, StepAction::MigrateApi { kind, before, objects, .. }
            if kind == "CronJob" && before.minor_version().to_string() == "1.25" && objects.len() == 1)));
        let json = serde_json::to_string_pretty(&p).unwrap();
        assert_eq!(Plan::from_document(&json).unwrap(), p);
        let yaml = serde_saphyr::to_string(&p).unwrap();
        assert_eq!(Plan::from_document(&yaml).unwrap(), p);
        // Another kind or version is named, not parsed field by field.
        let other = json.replacen("k8s-upgrade.dev/v1alpha1", "k8s-upgrade.dev/v9", 1);
        let e = Plan::from_document(&other).unwrap_err().to_string();
        assert!(e.contains("\"k8s-upgrade.dev/v9\"") && e.contains("plan --save"), "{e}");
        let e = Plan::from_document("apiVersion: k8s-upgrade.dev/v1alpha1\nkind: UpgradePath\n").unwrap_err();
        assert!(e.to_string().contains("UpgradePath"), "{e}");
        let e = Plan::from_document("apiVersion: k8s-upgrade.dev/v1alpha1\nkind: UpgradePlan\nsteps: 3\n").unwrap_err();
        assert!(matches!(e, DocumentError::Shape(_)), "{e}");
        assert!(matches!(Plan::from_document("{{{"), Err(DocumentError::Syntax(_))));
        // The drift check compares actions: the same plan has none, a changed hop is named.
        assert!(diff(&p, &p).is_empty());
        let mut later = p.clone();
        later.steps.retain(|s| !matches!(s.action, StepAction::MigrateApi { .. }));
        assert!(!diff(&p, &later).is_empty());
    }

    #[test]
    fn current_apis_only_means_no_blockers() {
        let c = Catalog::embedded().unwrap();
        let inv = Inventory {
            cluster: None,
            objects: vec![obj("apps/v1", "Deployment", "web"), obj("policy/v1", "PodDisruptionBudget", "web")],
            warnings: vec![],
        };
        let p = plan(&inv, &c, &req("1.29.3", "1.33")).unwrap();
        assert_eq!(p.summary.blockers, 0);
    }
}
