//! Reads the cluster refused. A plan made without them is not silent about it: each gap becomes
//! a finding naming what was not read, the permission that would allow it, and what the plan
//! could not check. Gaps that hide drain or removed-API blockers (nodes, pods, workloads, budgets,
//! objects at deprecated versions) block; missing evidence of one kind (Helm releases, the
//! request metric, dry-run evictions) warns.

use super::{Details, Finding, FindingCode, Severity};
use crate::inventory::Inventory;

pub fn access(inv: &Inventory) -> Vec<Finding> {
    let Some(cluster) = &inv.cluster else { return vec![] };
    // Gaps with one consequence (the deprecated APIs come one read per resource) are one finding.
    let mut groups: Vec<(&str, bool, Vec<&str>, Vec<&str>)> = Vec::new();
    for g in &cluster.access_gaps {
        match groups.iter_mut().find(|(c, b, _, _)| *c == g.consequence && *b == g.blocks) {
            Some((_, _, whats, perms)) => {
                whats.push(&g.what);
                if !perms.contains(&g.permission.as_str()) {
                    perms.push(&g.permission);
                }
            }
            None => groups.push((&g.consequence, g.blocks, vec![&g.what], vec![&g.permission])),
        }
    }
    groups
        .into_iter()
        .map(|(consequence, blocks, whats, perms)| {
            let mut details = serde_json::Map::new();
            details.insert("permissions".into(), serde_json::json!(perms));
            let quoted: Vec<String> = perms.iter().map(|p| format!("`{p}`")).collect();
            // Helm's release Secrets have a role of their own: `plan`'s does not read Secrets.
            let role = if perms.iter().all(|p| p.contains(" secrets ")) { "helm-releases" } else { "plan" };
            Finding {
                code: FindingCode::ReadForbidden,
                severity: if blocks { Severity::Blocker } else { Severity::Warning },
                hop: None,
                subject: whats.join(", "),
                message: format!("could not read {}: no {}; {consequence}", whats.join(", "), quoted.join(", ")),
                evidence: None,
                remediation: format!(
                    "grant {} (see `k8s-upgrade rbac --for {role}`) and plan again, or plan as an identity that has it",
                    quoted.join(", ")
                ),
                details: Details::facts(details),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{AccessGap, ClusterFacts};

    #[test]
    fn each_gap_is_a_finding_naming_the_permission() {
        let inv = Inventory {
            cluster: Some(ClusterFacts {
                access_gaps: vec![
                    AccessGap {
                        what: "Helm releases".into(),
                        permission: "list secrets (all namespaces)".into(),
                        consequence: "c".into(),
                        blocks: false,
                    },
                    AccessGap {
                        what: "nodes".into(),
                        permission: "list nodes (all namespaces)".into(),
                        consequence: "d".into(),
                        blocks: true,
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let f = access(&inv);
        assert_eq!(f.len(), 2);
        assert!(f[1].remediation.contains("`list nodes (all namespaces)`"), "{}", f[1].remediation);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].message.starts_with("could not read Helm releases: no `list secrets (all namespaces)`"),
            "{}",
            f[0].message
        );
        assert_eq!(f[1].severity, Severity::Blocker);
    }
}
