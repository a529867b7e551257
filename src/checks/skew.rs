//! Version skew as the cluster stands today: kubelets newer than the apiserver or further behind
//! than the distro's node window, control-plane components (controller manager, scheduler, cloud
//! controller manager) outside their window around the oldest apiserver, kube-proxy too far from
//! its node's kubelet or the apiserver, and HA apiservers further apart than the policy allows.
//! Placing node rolls along the path is the graph's job; this module only reports what is
//! already out of bounds before the first hop. Nodes that share a violation are grouped into one
//! finding that lists them.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Details, Finding, FindingCode, Severity};
use crate::catalog::{Catalog, ComponentSkew, DistroFile};
use crate::graph::allowed_lag;
use crate::inventory::{ClusterFacts, Inventory};
use crate::version::{Minor, Version};

/// Components whose skew is checked against the apiserver from the control-plane pods.
const CONTROL_PLANE: [&str; 3] = ["kube-controller-manager", "kube-scheduler", "cloud-controller-manager"];

/// How many minors older than the apiserver a component of `version` may be.
fn allowed_older(rule: &ComponentSkew, version: Minor) -> u32 {
    crate::k8s::skew::allowed_lag(rule.max_older, rule.older_than.as_ref(), version)
}

/// The oldest apiserver of a read cluster: `/version` and every kube-apiserver static pod (a
/// load balancer may answer `/version` from an apiserver already upgraded).
pub fn oldest_apiserver(cluster: &ClusterFacts) -> Option<Version> {
    apiservers(cluster).1
}

/// Control-plane nodes one minor past the oldest apiserver whose own kube-apiserver already runs
/// their kubelet's minor: a control-plane upgrade half-way through (kubeadm upgrades the first
/// control-plane node, apiserver and kubelet, before the others). Their kubelets are not a skew
/// violation but the upgrade in progress, which the plan's first hop completes.
pub fn control_plane_upgrade_in_progress(cluster: &ClusterFacts) -> Vec<(String, Version)> {
    let Some(oldest) = oldest_apiserver(cluster) else { return vec![] };
    let base = oldest.minor_version();
    cluster
        .nodes
        .iter()
        .filter(|n| n.is_control_plane())
        .filter_map(|n| {
            let k = n.kubelet.as_ref()?;
            let km = k.minor_version();
            let own_apiserver = cluster
                .control_plane
                .iter()
                .find(|c| c.node == n.name && c.component == "kube-apiserver")
                .and_then(|c| c.version.as_ref())?;
            (km.minors_since(base) == 1 && own_apiserver.minor_version() >= km).then(|| (n.name.clone(), k.clone()))
        })
        .collect()
}

/// The apiserver versions seen, by node; and the oldest apiserver, the reference for every rule.
fn apiservers(cluster: &ClusterFacts) -> (Vec<(&str, &Version)>, Option<Version>) {
    let seen: Vec<(&str, &Version)> = cluster
        .control_plane
        .iter()
        .filter(|c| c.component == "kube-apiserver")
        .filter_map(|c| c.version.as_ref().map(|v| (c.node.as_str(), v)))
        .collect();
    let oldest = seen.iter().map(|(_, v)| *v).chain(cluster.server_version.as_ref()).min().cloned();
    (seen, oldest)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The oldest kubelet minor the distro's node window accepts under an apiserver of `api`.
fn oldest_allowed_kubelet(distro: &DistroFile, api: Minor) -> Minor {
    let mut oldest = api;
    for d in 1..=api.minor {
        let m = api.minus(d);
        if d > allowed_lag(&distro.nodes, m) {
            break;
        }
        oldest = m;
    }
    oldest
}

fn kubelet_findings(cluster: &ClusterFacts, distro: &DistroFile, api: &Version, out: &mut Vec<Finding>) {
    // (kubelet version, newer?) → nodes
    let mut groups: BTreeMap<(Version, bool), Vec<String>> = BTreeMap::new();
    let mut lagging: BTreeMap<Version, Vec<String>> = BTreeMap::new();
    let in_progress = control_plane_upgrade_in_progress(cluster);
    if let Some((_, k)) = in_progress.first() {
        let nodes: Vec<String> = in_progress.iter().map(|(n, _)| n.clone()).collect();
        let mut details = serde_json::Map::new();
        details.insert("nodes".into(), json!(nodes));
        details.insert("apiserver".into(), json!(api.to_string()));
        details.insert("to".into(), json!(k.to_string()));
        out.push(Finding {
            code: FindingCode::UpgradeInProgress,
            severity: Severity::Warning,
            hop: None,
            subject: format!("control plane {} → {}", api.minor_version(), k.minor_version()),
            message: format!(
                "a control-plane upgrade to {} is in progress: {} already run{} kube-apiserver and kubelet {}, the oldest apiserver is {api}; the plan starts from {api} and its first hop finishes that upgrade",
                k.minor_version(),
                nodes_named(&nodes),
                if nodes.len() == 1 { "s" } else { "" },
                k.minor_version(),
            ),
            evidence: None,
            remediation: "finish it with this plan (or with `kubeadm upgrade node` on the remaining control-plane nodes) before anything else changes".into(),
            details: Details::facts(details),
        });
    }
    for n in &cluster.nodes {
        let Some(k) = &n.kubelet else { continue };
        if in_progress.iter().any(|(name, _)| *name == n.name) {
            continue;
        }
        let lag = api.minor_version().minors_since(k.minor_version());
        let newer = lag < 0;
        if newer || lag > i64::from(allowed_lag(&distro.nodes, k.minor_version())) {
            groups.entry((k.clone(), newer)).or_default().push(n.name.clone());
        } else if lag > 0 {
            lagging.entry(k.clone()).or_default().push(n.name.clone());
        }
    }
    // Inside the window today, but the room left decides how early the node rolls must start.
    for (k, nodes) in lagging {
        let km = k.minor_version();
        let am = api.minor_version();
        let lag = am.minors_since(km);
        let allowed = allowed_lag(&distro.nodes, km);
        let mut details = serde_json::Map::new();
        details.insert("kubelet".into(), json!(k.to_string()));
        details.insert("apiserver".into(), json!(api.to_string()));
        details.insert("nodes".into(), json!(nodes));
        details.insert("lag".into(), json!(lag));
        details.insert("allowedLag".into(), json!(allowed));
        details.insert("source".into(), json!(distro.nodes.source));
        let on = nodes_named(&nodes);
        let room = i64::from(allowed) - lag;
        out.push(Finding {
            code: FindingCode::SkewKubeletBehind,
            severity: Severity::Info,
            hop: None,
            subject: format!("kubelet {k}"),
            message: format!(
                "kubelet {k} on {on} is {} behind the apiserver {api}; {} allows {allowed}, so the control plane can move {} before they must roll",
                plural(lag as usize, "minor", "minors"),
                distro.display_name,
                if room > 0 { plural(room as usize, "more minor", "more minors") } else { "no further minor".into() },
            ),
            evidence: None,
            remediation: "the plan's node rolls bring them up in time; nothing to do before the first hop".into(),
            details: Details::facts(details),
        });
    }
    for ((k, newer), nodes) in groups {
        let km = k.minor_version();
        let am = api.minor_version();
        let allowed = allowed_lag(&distro.nodes, km);
        let mut details = serde_json::Map::new();
        details.insert("kubelet".into(), json!(k.to_string()));
        details.insert("apiserver".into(), json!(api.to_string()));
        details.insert("nodes".into(), json!(nodes));
        details.insert("lag".into(), json!(am.minors_since(km)));
        details.insert("allowedLag".into(), json!(allowed));
        details.insert("source".into(), json!(distro.nodes.source));
        let on = nodes_named(&nodes);
        let (message, remediation) = if newer {
            (
                format!(
                    "kubelet {k} on {on} is newer than the apiserver {api}; kubelets must never be newer than the control plane"
                ),
                format!("upgrade the control plane to {km} first, or replace those nodes with nodes at {am}"),
            )
        } else {
            (
                format!(
                    "kubelet {k} on {on} is {} minors behind the apiserver {api}; {} allows at most {allowed}",
                    am.minors_since(km),
                    distro.display_name
                ),
                format!(
                    "upgrade those nodes to at least {} before any control-plane hop",
                    oldest_allowed_kubelet(distro, am)
                ),
            )
        };
        out.push(Finding {
            code: FindingCode::SkewKubelet,
            severity: Severity::Blocker,
            hop: None,
            subject: format!("kubelet {k}"),
            message,
            evidence: None,
            remediation,
            details: Details::facts(details),
        });
    }
}

fn control_plane_findings(cluster: &ClusterFacts, catalog: &Catalog, api: &Version, out: &mut Vec<Finding>) {
    for c in &cluster.control_plane {
        if !CONTROL_PLANE.contains(&c.component.as_str()) {
            continue;
        }
        let (Some(v), Some(rule)) = (&c.version, catalog.component_skew(&c.component)) else { continue };
        let lag = api.minor_version().minors_since(v.minor_version());
        let older = allowed_older(rule, v.minor_version());
        let problem = if lag < -i64::from(rule.max_newer) {
            format!("is newer than the oldest apiserver {api}")
        } else if lag > i64::from(older) {
            format!("is {lag} minors behind the oldest apiserver {api} (at most {older} allowed)")
        } else {
            continue;
        };
        let mut details = serde_json::Map::new();
        details.insert("component".into(), json!(c.component));
        details.insert("node".into(), json!(c.node));
        details.insert("version".into(), json!(v.to_string()));
        details.insert("apiserver".into(), json!(api.to_string()));
        details.insert("maxOlder".into(), json!(older));
        details.insert("maxNewer".into(), json!(rule.max_newer));
        details.insert("source".into(), json!(catalog.skew.source));
        out.push(Finding {
            code: FindingCode::SkewControlPlane,
            severity: Severity::Blocker,
            hop: None,
            subject: format!("{} on {}", c.component, c.node),
            message: format!("{} {v} on {} {problem}", c.component, c.node),
            evidence: None,
            remediation: format!(
                "bring {} on {} to the apiserver's minor {} before upgrading further",
                c.component,
                c.node,
                api.minor_version()
            ),
            details: Details::facts(details),
        });
    }
}

fn kube_proxy_findings(cluster: &ClusterFacts, catalog: &Catalog, api: Option<&Version>, out: &mut Vec<Finding>) {
    let Some(rule) = catalog.component_skew("kube-proxy") else { return };
    // (kube-proxy, against, reference) → nodes
    let mut groups: BTreeMap<(Version, &str, Version), Vec<String>> = BTreeMap::new();
    for n in &cluster.nodes {
        let Some(kp) = &n.kube_proxy else { continue };
        let window = i64::from(allowed_older(rule, kp.minor_version()));
        if let Some(kubelet) = &n.kubelet {
            // Older or newer than the kubelet on its node, by the same number of minors.
            if kubelet.minor_version().minors_since(kp.minor_version()).abs() > window {
                groups.entry((kp.clone(), "kubelet", kubelet.clone())).or_default().push(n.name.clone());
            }
        }
        if let Some(api) = api {
            let lag = api.minor_version().minors_since(kp.minor_version());
            if lag < -i64::from(rule.max_newer) || lag > window {
                groups.entry((kp.clone(), "kube-apiserver", api.clone())).or_default().push(n.name.clone());
            }
        }
    }
    for ((kp, against, reference), nodes) in groups {
        let distance = reference.minor_version().minors_since(kp.minor_version());
        let window = allowed_older(rule, kp.minor_version());
        let mut details = serde_json::Map::new();
        details.insert("kubeProxy".into(), json!(kp.to_string()));
        details.insert("against".into(), json!(against));
        details.insert(if against == "kubelet" { "kubelet" } else { "apiserver" }.into(), json!(reference.to_string()));
        details.insert("nodes".into(), json!(nodes));
        details.insert("allowed".into(), json!(window));
        details.insert("source".into(), json!(catalog.skew.source));
        let on = nodes_named(&nodes);
        let how = if distance < 0 {
            format!("{} minors newer than", -distance)
        } else {
            format!("{distance} minors older than")
        };
        let limit = if against == "kubelet" {
            format!("at most {window} either way")
        } else {
            format!("at most {window} older and never newer")
        };
        out.push(Finding {
            code: FindingCode::SkewKubeProxy,
            severity: Severity::Warning,
            hop: None,
            subject: format!("kube-proxy {kp}"),
            message: format!("kube-proxy {kp} on {on} is {how} the {against} {reference} ({limit})"),
            evidence: None,
            remediation: format!(
                "upgrade kube-proxy on those nodes to the {against}'s minor {} (it usually moves with the node or the kube-proxy add-on)",
                reference.minor_version()
            ),
            details: Details::facts(details),
        });
    }
}

fn apiserver_findings(catalog: &Catalog, seen: &[(&str, &Version)], out: &mut Vec<Finding>) {
    let (Some(oldest), Some(newest)) = (seen.iter().min_by_key(|(_, v)| *v), seen.iter().max_by_key(|(_, v)| *v))
    else {
        return;
    };
    let spread = newest.1.minor_version().minors_since(oldest.1.minor_version());
    let max = catalog.skew.apiserver.ha_max_skew;
    if spread <= i64::from(max) {
        return;
    }
    let mut details = serde_json::Map::new();
    details.insert(
        "apiservers".into(),
        json!(seen.iter().map(|(n, v)| json!({"node": n, "version": v.to_string()})).collect::<Vec<_>>()),
    );
    details.insert("spread".into(), json!(spread));
    details.insert("haMaxSkew".into(), json!(max));
    details.insert("source".into(), json!(catalog.skew.source));
    out.push(Finding {
        code: FindingCode::SkewApiservers,
        severity: Severity::Blocker,
        hop: None,
        subject: "kube-apiserver".into(),
        message: format!(
            "the apiservers are {spread} minors apart ({} on {}, {} on {}); an HA control plane allows at most {max}",
            oldest.1, oldest.0, newest.1, newest.0
        ),
        evidence: None,
        remediation: format!(
            "finish the interrupted control-plane upgrade: bring every apiserver to {} before anything else",
            newest.1.minor_version()
        ),
        details: Details::facts(details),
    });
}

/// Skew violations in the cluster as it is (none without a cluster).
pub fn skew(inv: &Inventory, catalog: &Catalog, distro: &DistroFile) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(cluster) = &inv.cluster else { return out };
    let (seen, api) = apiservers(cluster);
    apiserver_findings(catalog, &seen, &mut out);
    if let Some(api) = &api {
        control_plane_findings(cluster, catalog, api, &mut out);
        kubelet_findings(cluster, distro, api, &mut out);
    }
    kube_proxy_findings(cluster, catalog, api.as_ref(), &mut out);
    out
}

/// Node names as a message reads them: in natural order (`w-2` before `w-10`), at most eight,
/// then how many more (the finding's details keep them all).
fn nodes_named(nodes: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut sorted: Vec<&String> = nodes.iter().collect();
    sorted.sort_by_cached_key(|n| {
        let stem = n.trim_end_matches(|c: char| c.is_ascii_digit());
        (stem.to_string(), n[stem.len()..].parse::<u64>().unwrap_or(0), n.to_string())
    });
    let mut shown: Vec<String> = sorted.iter().take(SHOWN).map(|n| n.to_string()).collect();
    if sorted.len() > SHOWN {
        shown.push(format!("and {} more", sorted.len() - SHOWN));
    }
    format!("{} ({})", plural(nodes.len(), "node", "nodes"), shown.join(", "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn node_names_read_in_natural_order_and_long_lists_are_cut() {
        let names: Vec<String> = (1..=12).map(|i| format!("w-{i}")).collect();
        assert_eq!(super::nodes_named(&names), "12 nodes (w-1, w-2, w-3, w-4, w-5, w-6, w-7, w-8, and 4 more)");
        assert_eq!(super::nodes_named(&["b".into(), "a-10".into(), "a-9".into()]), "3 nodes (a-9, a-10, b)");
    }

    use super::*;
    use crate::inventory::{ComponentFacts, NodeFacts};

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    /// Everything but the informational findings.
    fn blocking(f: Vec<Finding>) -> Vec<Finding> {
        f.into_iter().filter(|x| x.severity != Severity::Info).collect()
    }

    fn node(name: &str, kubelet: &str, kube_proxy: Option<&str>) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            roles: vec!["worker".into()],
            kubelet: Some(v(kubelet)),
            kube_proxy: kube_proxy.map(v),
            ready: true,
            ..Default::default()
        }
    }

    fn comp(node: &str, component: &str, version: &str) -> ComponentFacts {
        ComponentFacts {
            node: node.into(),
            component: component.into(),
            image: format!("registry.k8s.io/{component}:{version}"),
            version: Some(v(version)),
        }
    }

    fn inv(server: &str, nodes: Vec<NodeFacts>, cp: Vec<ComponentFacts>) -> Inventory {
        Inventory {
            cluster: Some(ClusterFacts {
                server_version: Some(v(server)),
                nodes,
                control_plane: cp,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn codes(f: &[Finding]) -> Vec<FindingCode> {
        f.iter().map(|x| x.code).collect()
    }

    #[test]
    fn a_cluster_inside_every_window_has_no_findings() {
        let c = Catalog::embedded().unwrap();
        let kubeadm = c.distro("kubeadm").unwrap();
        let i = inv(
            "v1.30.4",
            vec![node("a", "v1.27.9", Some("v1.27.9")), node("b", "v1.30.4", Some("v1.30.4"))],
            vec![
                comp("cp1", "kube-apiserver", "v1.30.4"),
                comp("cp1", "kube-controller-manager", "v1.29.3"),
                comp("cp1", "kube-scheduler", "v1.30.4"),
                comp("cp1", "etcd", "3.5.15"),
            ],
        );
        let f = skew(&i, &c, kubeadm);
        assert_eq!(codes(&f), vec![FindingCode::SkewKubeletBehind], "{f:#?}");
        assert_eq!(f[0].severity, Severity::Info);
        assert_eq!(f[0].details.get("nodes"), json!(["a"]));
        assert!(
            f[0].message.contains("3 minors behind") && f[0].message.contains("no further minor"),
            "{}",
            f[0].message
        );
        assert!(skew(&Inventory::default(), &c, kubeadm).is_empty());
    }

    #[test]
    fn kubelets_too_old_or_newer_are_blockers_grouped_by_version() {
        let c = Catalog::embedded().unwrap();
        let kubeadm = c.distro("kubeadm").unwrap();
        let i = inv(
            "v1.30.4",
            vec![
                node("old-1", "v1.26.1", None),
                node("old-2", "v1.26.1", None),
                node("new", "v1.31.0", None),
                node("ok", "v1.27.0", None),
            ],
            vec![],
        );
        let f = blocking(skew(&i, &c, kubeadm));
        assert_eq!(codes(&f), vec![FindingCode::SkewKubelet, FindingCode::SkewKubelet]);
        assert!(f.iter().all(|x| x.severity == Severity::Blocker));
        assert_eq!(f[0].details.get("nodes"), json!(["old-1", "old-2"]));
        assert_eq!(f[0].details.get("lag"), json!(4));
        assert_eq!(f[0].details.get("allowedLag"), json!(3));
        assert!(f[0].remediation.contains("at least 1.27"), "{}", f[0].remediation);
        assert!(f[1].message.contains("newer than the apiserver"), "{}", f[1].message);
    }

    #[test]
    fn the_distro_node_window_applies() {
        let c = Catalog::embedded().unwrap();
        // GKE allows two minors, kubeadm three.
        let i = inv("v1.30.4", vec![node("a", "v1.27.9", None)], vec![]);
        assert!(blocking(skew(&i, &c, c.distro("kubeadm").unwrap())).is_empty());
        let f = blocking(skew(&i, &c, c.distro("gke").unwrap()));
        assert_eq!(codes(&f), vec![FindingCode::SkewKubelet]);
        assert_eq!(f[0].details.get("allowedLag"), json!(2));
        // Kubelets older than 1.25 get only two minors.
        let i = inv("v1.26.4", vec![node("a", "v1.23.9", None)], vec![]);
        assert_eq!(codes(&skew(&i, &c, c.distro("kubeadm").unwrap())), vec![FindingCode::SkewKubelet]);
    }

    #[test]
    fn control_plane_components_outside_their_window_block() {
        let c = Catalog::embedded().unwrap();
        let kubeadm = c.distro("kubeadm").unwrap();
        let i = inv(
            "v1.30.4",
            vec![],
            vec![
                comp("cp1", "kube-apiserver", "v1.30.4"),
                comp("cp1", "kube-controller-manager", "v1.28.3"),
                comp("cp1", "kube-scheduler", "v1.31.0"),
            ],
        );
        let f = skew(&i, &c, kubeadm);
        assert_eq!(codes(&f), vec![FindingCode::SkewControlPlane, FindingCode::SkewControlPlane]);
        assert_eq!(f[0].subject, "kube-controller-manager on cp1");
        assert!(f[0].message.contains("2 minors behind"), "{}", f[0].message);
        assert!(f[1].message.contains("newer than the oldest apiserver"), "{}", f[1].message);
    }

    #[test]
    fn kube_proxy_far_from_its_kubelet_warns() {
        let c = Catalog::embedded().unwrap();
        let kubeadm = c.distro("kubeadm").unwrap();
        // kube-proxy 1.26 next to kubelet 1.30: four minors apart (three allowed).
        let i = inv("v1.30.4", vec![node("a", "v1.30.4", Some("v1.26.0"))], vec![]);
        let f = blocking(skew(&i, &c, kubeadm));
        assert_eq!(codes(&f), vec![FindingCode::SkewKubeProxy, FindingCode::SkewKubeProxy], "{f:#?}");
        assert!(f.iter().all(|x| x.severity == Severity::Warning));
        let against: Vec<_> = f.iter().map(|x| x.details.get("against").clone()).collect();
        assert!(against.contains(&json!("kubelet")) && against.contains(&json!("kube-apiserver")));
        // kube-proxy newer than an old kubelet, but not newer than the apiserver.
        let i = inv("v1.30.4", vec![node("a", "v1.27.0", Some("v1.30.4"))], vec![]);
        assert!(blocking(skew(&i, &c, kubeadm)).is_empty());
        // kube-proxy < 1.25 gets only two minors either way.
        let i = inv("v1.26.4", vec![node("a", "v1.26.0", Some("v1.23.0"))], vec![]);
        let f = skew(&i, &c, kubeadm);
        assert!(f.iter().any(|x| x.details.get("against") == json!("kubelet")), "{f:#?}");
    }

    #[test]
    fn ha_apiservers_too_far_apart_block() {
        let c = Catalog::embedded().unwrap();
        let kubeadm = c.distro("kubeadm").unwrap();
        let cp = vec![
            comp("cp1", "kube-apiserver", "v1.28.9"),
            comp("cp2", "kube-apiserver", "v1.30.1"),
            comp("cp3", "kube-apiserver", "v1.29.2"),
        ];
        let f = skew(&inv("v1.28.9", vec![], cp), &c, kubeadm);
        assert_eq!(codes(&f), vec![FindingCode::SkewApiservers]);
        assert_eq!(f[0].severity, Severity::Blocker);
        assert_eq!(f[0].details.get("spread"), json!(2));
        assert!(f[0].message.contains("v1.28.9 on cp1") && f[0].message.contains("v1.30.1 on cp2"), "{}", f[0].message);
        // One minor apart is an upgrade in progress, which the policy allows.
        let cp = vec![comp("cp1", "kube-apiserver", "v1.29.9"), comp("cp2", "kube-apiserver", "v1.30.1")];
        assert!(skew(&inv("v1.29.9", vec![], cp), &c, kubeadm).is_empty());
    }
}
