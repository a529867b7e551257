//! Reads the cluster refused. A plan made without them is not silent about it: each gap becomes
//! a finding naming what was not read, the permission that would allow it, and what the plan
//! could not check. Gaps that hide drain or removed-API blockers (nodes, pods, workloads, budgets,
//! objects at deprecated versions) block; missing evidence of one kind (Helm releases, the
//! request metric, dry-run evictions) warns.

use super::{Finding, Severity};
use crate::inventory::Inventory;

pub fn access(inv: &Inventory) -> Vec<Finding> {
    let Some(cluster) = &inv.cluster else { return vec![] };
    cluster
        .access_gaps
        .iter()
        .map(|g| {
            let mut details = serde_json::Map::new();
            details.insert("permission".into(), serde_json::json!(g.permission));
            Finding {
                code: "READ_FORBIDDEN",
                severity: if g.blocks { Severity::Blocker } else { Severity::Warning },
                hop: None,
                subject: g.what.clone(),
                message: format!("could not read {}: no `{}`; {}", g.what, g.permission, g.consequence),
                evidence: None,
                remediation: format!(
                    "grant `{}` (see `k8s-upgrade rbac --for plan`) and plan again, or plan as an identity that has it",
                    g.permission
                ),
                details,
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
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].message.starts_with("could not read Helm releases: no `list secrets (all namespaces)`"),
            "{}",
            f[0].message
        );
        assert_eq!(f[1].severity, Severity::Blocker);
    }
}
