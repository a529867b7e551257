//! The plan: a versioned document (`kind: UpgradePlan`) built by one pure function.
//!
//! `plan(&Inventory, &Catalog, &PathRequest)` finds the path (graph), runs the checks over the
//! inventory and every hop, and orders the steps: each fix is placed right before the hop that
//! needs it (rewriting objects whose API a hop removes goes before that hop), then the
//! control-plane hops and node rolls in the order the graph chose. No I/O, no clock.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::checks::{self, Finding, Severity};
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
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub blockers: usize,
    pub warnings: usize,
    pub infos: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub distro: String,
    pub from: Version,
    pub to: Version,
    pub kubelets: Vec<Version>,
    pub steps: Vec<Step>,
    pub findings: Vec<Finding>,
    pub summary: Summary,
    pub notes: Vec<Note>,
    /// Problems met while collecting the inventory.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inventory_warnings: Vec<String>,
}

impl Plan {
    pub fn has_blockers(&self) -> bool {
        self.summary.blockers > 0
    }
}

/// Builds the plan. Fails only when there is no path at all.
#[allow(clippy::result_large_err)] // built once per run; the path error carries its evidence
pub fn plan(inv: &Inventory, catalog: &Catalog, req: &PathRequest) -> Result<Plan, PathError> {
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
    findings.extend(checks::drainability(inv));
    findings.extend(checks::support_calendar(catalog, distro, &cp_hops, req.today));
    findings.extend(checks::access(inv));
    // Blockers first, then warnings, then information; stable within each.
    findings.sort_by_key(|f| f.severity);

    // Migration steps, grouped by the hop they must precede and the API they replace; Helm
    // releases get their own step, since their stored manifest must be rewritten too.
    let mut migrations: BTreeMap<(usize, String, String), Vec<usize>> = BTreeMap::new();
    let mut helm: BTreeMap<(usize, String, String, u32), Vec<usize>> = BTreeMap::new();
    for (i, f) in findings.iter().enumerate() {
        if f.code != "API_REMOVED" {
            continue;
        }
        let hop_index =
            f.hop.as_ref().and_then(|h| cp_hops.iter().position(|c| c.0 == h.from && c.1 == h.to)).unwrap_or(0);
        if let Some(crate::inventory::Evidence::HelmRelease { release, namespace, revision }) = &f.evidence {
            helm.entry((hop_index, namespace.clone(), release.clone(), *revision)).or_default().push(i);
            continue;
        }
        let api = f.details.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let kind = f.details.get("kind").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        migrations.entry((hop_index, api, kind)).or_default().push(i);
    }
    // Add-on upgrades, placed before (or, for version-locked add-ons, right after) their hop.
    let mut addon_before: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut addon_after: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, f) in findings.iter().enumerate() {
        if !f.code.starts_with("ADDON_UPGRADE") && f.code != "ADDON_NO_BRIDGE" {
            continue;
        }
        if let Some(h) = f.details.get("beforeHop").and_then(|v| v.as_u64()) {
            addon_before.entry(h as usize).or_default().push(i);
        } else if let Some(h) = f.details.get("afterHop").and_then(|v| v.as_u64()) {
            addon_after.entry(h as usize).or_default().push(i);
        }
    }
    let addon_step = |i: usize| Step {
        order: 0,
        kind: StepKind::Addon,
        target: None,
        description: findings[i].remediation.clone(),
        moves: vec![],
        resolves: vec![i],
    };
    let mut steps = Vec::new();
    let mut cp_index = 0;
    for hop in &path.hops {
        if hop.component == Component::ControlPlane {
            for i in addon_before.get(&cp_index).into_iter().flatten() {
                steps.push(addon_step(*i));
            }
            for ((i, ns, release, revision), idx) in helm.iter().filter(|((i, ..), _)| *i == cp_index) {
                let apis: std::collections::BTreeSet<String> = idx
                    .iter()
                    .map(|f| {
                        let d = &findings[*f].details;
                        let get = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                        format!("{} {}", get("apiVersion"), get("kind"))
                    })
                    .collect();
                steps.push(Step {
                    order: 0,
                    kind: StepKind::HelmRelease,
                    target: None,
                    description: format!(
                        "Helm release {ns}/{release} (revision {revision}) stores {}: upgrade the chart to current APIs or rewrite the stored release (helm mapkubeapis) before the control plane moves to {}, or helm upgrade fails afterwards",
                        apis.into_iter().collect::<Vec<_>>().join(", "),
                        cp_hops.get(*i).map(|h| h.1.minor_version().to_string()).unwrap_or_default()
                    ),
                    moves: vec![],
                    resolves: idx.clone(),
                });
            }
            for ((i, api, kind), idx) in migrations.iter().filter(|((i, _, _), _)| *i == cp_index) {
                let f = &findings[idx[0]];
                let replacement = f
                    .details
                    .get("replacement")
                    .and_then(|v| v.as_str())
                    .map(|r| format!(" to {r}"))
                    .unwrap_or_default();
                steps.push(Step {
                    order: 0,
                    kind: StepKind::MigrateApi,
                    target: None,
                    description: format!(
                        "migrate {} {kind} object{} from {api}{replacement} before the control plane moves to {}",
                        idx.len(),
                        if idx.len() == 1 { "" } else { "s" },
                        cp_hops.get(*i).map(|h| h.1.minor_version().to_string()).unwrap_or_default()
                    ),
                    moves: vec![],
                    resolves: idx.clone(),
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
        api_version: graph::API_VERSION,
        kind: "UpgradePlan",
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
fn with_cluster_facts(inv: &Inventory, req: &PathRequest) -> PathRequest {
    let mut req = req.clone();
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
    req.facts.apis_in_use.get_or_insert(apis);
    let Some(c) = &inv.cluster else { return req };
    if req.kubelets.is_empty() {
        req.kubelets = c.nodes.iter().filter_map(|n| n.kubelet.clone()).collect();
    }
    req.facts.kubelets.get_or_insert_with(|| req.kubelets.clone());
    req.facts.node_infos.get_or_insert_with(|| c.nodes.iter().map(|n| n.node_info.clone()).collect());
    req.facts.addons.get_or_insert_with(|| c.addons.iter().map(|a| a.name.clone()).collect());
    req.facts.components.get_or_insert_with(|| {
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
            let (_, tag) = crate::inventory::live::split_image(&p.image);
            if let Ok(v) = tag.trim_start_matches('v').parse::<Version>() {
                let e = m.entry("etcd".to_string()).or_insert(v.clone());
                if v < *e {
                    *e = v;
                }
            }
        }
        m
    });
    req
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

    #[test]
    fn removed_apis_block_and_their_migration_precedes_the_hop() {
        let c = Catalog::embedded().unwrap();
        let inv = Inventory {
            cluster: None,
            objects: vec![
                obj("policy/v1beta1", "PodDisruptionBudget", "web"),
                obj("batch/v1beta1", "CronJob", "nightly"),
                obj("autoscaling/v2beta2", "HorizontalPodAutoscaler", "web"),
                obj("apps/v1", "Deployment", "web"),
            ],
            warnings: vec![],
        };
        let p = plan(&inv, &c, &req("1.23.17", "1.27")).unwrap();
        assert_eq!(p.summary.blockers, 3);
        assert!(p.has_blockers());
        let pdb = p.findings.iter().find(|f| f.subject.contains("PodDisruptionBudget")).unwrap();
        assert_eq!(pdb.hop.as_ref().unwrap().to.minor_version().to_string(), "1.25");
        assert_eq!(pdb.details["replacement"], "policy/v1");
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
        assert!(
            p.findings
                .iter()
                .any(|f| f.code == "API_REMOVALS_AT_HOP" && f.message.contains("no API removals at the hop to 1.24"))
        );
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
