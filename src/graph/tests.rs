use super::*;
use crate::catalog::{Catalog, Condition, Matcher};
use proptest::prelude::*;

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn catalog() -> Catalog {
    Catalog::embedded().expect("embedded catalog loads")
}

fn today() -> Date {
    "2026-11-26".parse().unwrap()
}

fn request(distro: &str, from: &str, to: &str, kubelets: &[&str]) -> PathRequest {
    PathRequest {
        distro: distro.into(),
        from: v(from),
        to: to.parse().unwrap(),
        via: vec![],
        kubelets: kubelets.iter().map(|k| v(k)).collect(),
        facts: Facts::default(),
        today: today(),
    }
}

fn latest(c: &Catalog, distro: &str, minor: &str) -> Version {
    c.latest_patch(c.distro(distro).unwrap(), minor.parse().unwrap()).unwrap()
}

fn shape(p: &UpgradePath) -> Vec<String> {
    p.hops.iter().map(|h| format!("{} {}", h.component, h.to.minor_version())).collect()
}

#[test]
fn control_plane_moves_one_minor_at_a_time_to_newest_patches() {
    let c = catalog();
    for distro in ["kubeadm", "generic", "eks", "gke", "aks"] {
        let p = find_path(&c, &request(distro, "1.27.3", "1.30", &[])).unwrap();
        let cp: Vec<&Hop> = p.hops.iter().filter(|h| h.component == Component::ControlPlane).collect();
        let tos: Vec<Version> = cp.iter().map(|h| h.to.clone()).collect();
        assert_eq!(
            tos,
            vec![latest(&c, distro, "1.28"), latest(&c, distro, "1.29"), latest(&c, distro, "1.30")],
            "{distro}"
        );
        assert_eq!(cp[0].from, v("1.27.3"));
        assert_eq!(p.to, latest(&c, distro, "1.30"));
    }
}

#[test]
fn generic_1_27_to_1_31_needs_two_node_rolls() {
    let c = catalog();
    let p = find_path(&c, &request("generic", "1.27.3", "1.31", &["1.27.3"])).unwrap();
    assert_eq!(
        shape(&p),
        [
            "control-plane 1.28",
            "control-plane 1.29",
            "control-plane 1.30",
            "nodes 1.30",
            "control-plane 1.31",
            "nodes 1.31"
        ]
    );
    assert_eq!(p.summary, Summary { control_plane_hops: 4, node_rolls: 2 });
    assert!(p.hops[3].reason.contains("4 minors behind"), "{}", p.hops[3].reason);
}

#[test]
fn kubelets_older_than_1_25_get_the_two_minor_window() {
    let c = catalog();
    // 1.24 kubelets may trail by two: the roll must come before the apiserver reaches 1.27.
    let p = find_path(&c, &request("generic", "1.24.17", "1.28", &["1.24.17"])).unwrap();
    assert_eq!(
        shape(&p),
        [
            "control-plane 1.25",
            "control-plane 1.26",
            "nodes 1.26",
            "control-plane 1.27",
            "control-plane 1.28",
            "nodes 1.28"
        ]
    );
    // 1.22 kubelets under a 1.23 control plane: roll at 1.24, then the new 1.24 kubelets still
    // only get two minors.
    let p = find_path(&c, &request("generic", "1.23.17", "1.27", &["1.22.17"])).unwrap();
    assert_eq!(
        shape(&p),
        [
            "control-plane 1.24",
            "nodes 1.24",
            "control-plane 1.25",
            "control-plane 1.26",
            "nodes 1.26",
            "control-plane 1.27",
            "nodes 1.27"
        ]
    );
}

#[test]
fn distro_without_node_skipping_rolls_every_minor() {
    let mut c = catalog();
    c.distros.get_mut("generic").unwrap().nodes.max_minor_step = Some(1);
    let p = find_path(&c, &request("generic", "1.27.3", "1.31", &[])).unwrap();
    assert_eq!(p.summary.node_rolls, 4);
    let nodes: Vec<String> =
        p.hops.iter().filter(|h| h.component == Component::Nodes).map(|h| h.to.minor_version().to_string()).collect();
    assert_eq!(nodes, ["1.28", "1.29", "1.30", "1.31"]);
    // Every control-plane hop still respects the skew window.
    check_skew_holds(&c, "generic", &p);
}

#[test]
fn mixed_kubelets_roll_together() {
    let c = catalog();
    let p = find_path(&c, &request("generic", "1.29.1", "1.32", &["1.27.2", "1.29.1"])).unwrap();
    // 1.27 kubelets allow 1.30 but not 1.31: one roll at 1.30, one at the end.
    assert_eq!(
        shape(&p),
        ["control-plane 1.30", "nodes 1.30", "control-plane 1.31", "control-plane 1.32", "nodes 1.32"]
    );
    assert_eq!(p.hops[1].from, v("1.27.2"));
}

#[test]
fn patch_only_upgrade() {
    let c = catalog();
    let p = find_path(&c, &request("kubeadm", "1.30.1", "1.30", &[])).unwrap();
    assert_eq!(shape(&p), ["control-plane 1.30", "nodes 1.30"]);
    assert!(p.hops[0].reason.contains("newest patch"));
}

#[test]
fn already_at_target_is_an_empty_path() {
    let c = catalog();
    let t = latest(&c, "kubeadm", "1.30");
    let p = find_path(&c, &request("kubeadm", &t.to_string(), &t.to_string(), &[])).unwrap();
    assert!(p.hops.is_empty());
}

#[test]
fn refusals_name_the_value() {
    let c = catalog();
    let err = find_path(&c, &request("kubeadm", "1.30.2", "1.28", &[])).unwrap_err();
    assert!(matches!(err, PathError::Downgrade { .. }), "{err}");
    assert!(err.to_string().contains("1.28") && err.to_string().contains("1.30.2"));

    let err = find_path(&c, &request("openshift", "1.30.2", "1.31", &[])).unwrap_err();
    assert!(err.to_string().contains("unknown distro 'openshift'") && err.to_string().contains("kubeadm"), "{err}");

    let err = find_path(&c, &request("kubeadm", "1.30.2", "1.99", &[])).unwrap_err();
    assert!(matches!(err, PathError::BeyondCatalog { .. }), "{err}");
    assert!(err.to_string().contains("1.99") && err.to_string().contains("--paths"));

    let err = find_path(&c, &request("kubeadm", "1.12.0", "1.30", &[])).unwrap_err();
    assert!(matches!(err, PathError::TooOld { .. }), "{err}");

    let err = find_path(&c, &request("kubeadm", "1.29.0", "1.30.999", &[])).unwrap_err();
    assert!(matches!(err, PathError::BeyondCatalog { .. }), "{err}");

    let err = find_path(&c, &request("kubeadm", "1.29.0", "1.31", &["1.30.1"])).unwrap_err();
    assert!(matches!(err, PathError::KubeletNewer { .. }), "{err}");
}

#[test]
fn listed_distros_refuse_versions_they_do_not_offer() {
    let mut c = catalog();
    let eks = c.distros.get_mut("eks").unwrap();
    eks.versions.retain(|dv| dv.minor != "1.29".parse().unwrap());
    let err = find_path(&c, &request("eks", "1.27.3", "1.29", &[])).unwrap_err();
    assert!(matches!(err, PathError::NotOffered { .. }), "{err}");
    let err = find_path(&c, &request("eks", "1.27.3", "1.30", &[])).unwrap_err();
    assert!(matches!(err, PathError::NoRoute { .. }), "{err}");
    assert!(err.to_string().contains("does not offer 1.29"), "{err}");
}

fn block(c: &mut Catalog, name: &str, from: &str, to: &str, condition: Option<Vec<Matcher>>) {
    c.distros.get_mut("generic").unwrap().blocked_edges.push(crate::catalog::BlockedEdge {
        name: name.into(),
        from: from.into(),
        to: v(to),
        reason: format!("{name} breaks things"),
        fix: None,
        source: "https://example.org/known-issue".into(),
        condition: condition.map(|any_of| Condition { any_of }),
    });
}

#[test]
fn routes_around_a_blocked_edge_through_the_newest_patch() {
    let mut c = catalog();
    block(&mut c, "EarlyPatchRegression", "<1.28.5", "1.29", None);
    let p = find_path(&c, &request("generic", "1.28.1", "1.29", &[])).unwrap();
    let cp: Vec<Version> =
        p.hops.iter().filter(|h| h.component == Component::ControlPlane).map(|h| h.to.clone()).collect();
    assert_eq!(cp, vec![latest(&c, "generic", "1.28"), latest(&c, "generic", "1.29")]);
}

#[test]
fn explains_an_unavoidable_block() {
    let mut c = catalog();
    block(&mut c, "BadMinor", "*", "1.29", None);
    let err = find_path(&c, &request("generic", "1.28.1", "1.30", &[])).unwrap_err();
    let PathError::Blocked { blocked, .. } = &err else { panic!("{err}") };
    assert_eq!(blocked[0].name, "BadMinor");
    assert!(err.to_string().contains("BadMinor") && err.to_string().contains("breaks things"), "{err}");
}

#[test]
fn conditional_blocks_use_known_facts_and_warn_otherwise() {
    let mut c = catalog();
    block(&mut c, "OldKubelets", "*", "1.27", Some(vec![Matcher::KubeletBelow { version: v("1.25.0") }]));
    // Unknown kubelets: the hop stays, with a warning naming the condition.
    let p = find_path(&c, &request("generic", "1.26.1", "1.27", &[])).unwrap();
    assert!(p.notes.iter().any(|n| n.severity == Severity::Warning && n.message.contains("OldKubelets")));
    // Known and matching: blocked.
    let err = find_path(&c, &request("generic", "1.26.1", "1.27", &["1.24.3"])).unwrap_err();
    assert!(matches!(err, PathError::Blocked { .. }), "{err}");
    // Known and clear: no warning.
    let p = find_path(&c, &request("generic", "1.26.1", "1.27", &["1.26.1"])).unwrap();
    assert!(!p.notes.iter().any(|n| n.message.contains("OldKubelets")));
}

#[test]
fn via_forces_a_waypoint_and_rejects_one_off_the_route() {
    let c = catalog();
    let mut r = request("generic", "1.27.3", "1.30", &[]);
    r.via = vec![v("1.29")];
    let p = find_path(&c, &r).unwrap();
    assert!(p.hops.iter().any(|h| h.to == latest(&c, "generic", "1.29")));
    r.via = vec![v("1.31")];
    assert!(matches!(find_path(&c, &r).unwrap_err(), PathError::ViaOutOfRange { .. }));
}

#[test]
fn aks_may_jump_from_an_unsupported_minor() {
    let c = catalog();
    let aks = c.distro("aks").unwrap();
    if !aks.control_plane.jump_from_unsupported {
        return;
    }
    let supported: Vec<Minor> =
        c.offered_minors(aks).into_iter().filter(|m| is_supported(&c, aks, *m, today())).collect();
    let (Some(lowest), Some(newest)) = (supported.first(), supported.last()) else { return };
    let from = lowest.minus(2).with_patch(0);
    let p = find_path(&c, &request("aks", &from.to_string(), &newest.to_string(), &[])).unwrap();
    let cp: Vec<&Hop> = p.hops.iter().filter(|h| h.component == Component::ControlPlane).collect();
    // Only to the lowest supported minor, then one minor at a time.
    assert!(cp[0].reason.contains("unsupported"), "{:#?}", p.hops);
    assert_eq!(cp[0].to.minor_version(), *lowest);
    assert_eq!(cp.len() as i64, 1 + newest.minors_since(*lowest));
    check_skew_holds(&c, "aks", &p);
}

#[test]
fn latest_means_the_newest_offered_minor() {
    let c = catalog();
    for distro in ["kubeadm", "eks", "gke", "aks"] {
        let d = c.distro(distro).unwrap();
        let newest = *c.offered_minors(d).last().unwrap();
        let from = newest.minus(1).to_version();
        let p = find_path(&c, &request(distro, &from.to_string(), "latest", &[])).unwrap();
        assert_eq!(p.to.minor_version(), newest, "{distro}");
    }
}

fn check_skew_holds(c: &Catalog, distro: &str, p: &UpgradePath) {
    let rule = &c.distro(distro).unwrap().nodes;
    let mut kubelets: Vec<Version> = p.kubelets.clone();
    let mut cp = p.from.clone();
    for h in &p.hops {
        match h.component {
            Component::ControlPlane => {
                cp = h.to.clone();
                for k in &kubelets {
                    assert!(
                        skew_ok(rule, cp.minor_version(), k.minor_version()),
                        "kubelet {k} vs apiserver {cp}: {:#?}",
                        p.hops
                    );
                }
            }
            Component::Nodes => {
                assert!(h.to <= cp, "nodes never pass the control plane");
                for k in kubelets.iter_mut() {
                    if *k < h.to {
                        if let Some(step) = rule.max_minor_step {
                            assert!(h.to.minor_version().minors_since(k.minor_version()) <= i64::from(step));
                        }
                        *k = h.to.clone();
                    }
                }
            }
        }
    }
    assert!(kubelets.iter().all(|k| *k >= p.to), "kubelets end at the target");
}

/// Brute force: the least number of rolls over every subset of roll positions (unlimited step).
fn brute_force_rolls(route: &[Version], kubelets: &[Version], rule: &NodeRule) -> usize {
    let n = route.len();
    let mut best = usize::MAX;
    for mask in 0u32..(1 << n) {
        let mut ks = kubelets.to_vec();
        let mut ok = true;
        for i in 0..n {
            if mask & (1 << i) != 0 {
                for k in ks.iter_mut() {
                    if *k < route[i] {
                        *k = route[i].clone();
                    }
                }
            }
            if i + 1 < n && !ks.iter().all(|k| skew_ok(rule, route[i + 1].minor_version(), k.minor_version())) {
                ok = false;
                break;
            }
        }
        if ok && ks.iter().all(|k| *k >= route[n - 1]) {
            best = best.min(mask.count_ones() as usize);
        }
    }
    best
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn node_rolls_are_minimal_and_safe(from in 19u32..30, span in 0u32..9, lags in proptest::collection::vec(0u32..3, 1..3)) {
        let c = catalog();
        let from_m = Minor::new(1, from);
        let to_m = from_m.plus(span);
        prop_assume!(to_m <= c.newest_minor());
        let kubelets: Vec<Version> = lags.iter().map(|l| latest(&c, "generic", &from_m.minus(*l).max(c.oldest_minor()).to_string())).collect();
        let from_v = latest(&c, "generic", &from_m.to_string());
        let mut r = request("generic", &from_v.to_string(), &to_m.to_string(), &[]);
        r.kubelets = kubelets.clone();
        let p = find_path(&c, &r).unwrap();
        check_skew_holds(&c, "generic", &p);
        let mut route = vec![p.from.clone()];
        route.extend(p.hops.iter().filter(|h| h.component == Component::ControlPlane).map(|h| h.to.clone()));
        let mut ks = kubelets.clone();
        ks.sort();
        ks.dedup();
        let rule = &c.distro("generic").unwrap().nodes;
        prop_assert_eq!(p.summary.node_rolls, brute_force_rolls(&route, &ks, rule));
    }
}

#[test]
fn minors_the_distro_no_longer_lists_and_chosen_patches() {
    let c = catalog();
    // 1.26 is not in AKS's list: the path still starts there instead of panicking.
    let r = find_path(&c, &request("aks", "1.26.3", "latest", &[]));
    assert!(r.is_ok() || matches!(r, Err(PathError::NoRoute { .. })), "{r:?}");
    // A patch below the newest is a valid target.
    let p = find_path(&c, &request("kubeadm", "1.30.2", "1.30.5", &[])).unwrap();
    assert_eq!(p.to, v("1.30.5"));
    assert_eq!(shape(&p), ["control-plane 1.30", "nodes 1.30"]);
}

#[test]
fn a_catalog_older_than_120_days_is_called_stale_with_the_way_out() {
    let c = catalog();
    let data = c.data_date();
    let day = |n: i64| Date::from_days_since_epoch(data.days_since_epoch() + n).unwrap();
    assert!(staleness_note(&c, day(STALE_AFTER_DAYS)).is_none());
    let note = staleness_note(&c, day(STALE_AFTER_DAYS + 1)).expect("stale");
    assert_eq!(note.severity, Severity::Warning);
    assert!(note.message.contains(&data.to_string()) && note.message.contains("--paths DIR"), "{}", note.message);
    let mut r = request("kubeadm", "1.35.2", "1.36", &[]);
    r.today = day(200);
    let p = find_path(&c, &r).unwrap();
    assert!(p.notes.iter().any(|n| n.message.contains("200 days ago")), "{:?}", p.notes);
}

#[test]
fn a_fixable_block_is_a_prerequisite_of_its_hop_and_a_wall_refuses() {
    let mut c = catalog();
    let edge = |fix: Option<&str>| crate::catalog::BlockedEdge {
        name: "OldThing".into(),
        from: "<1.31.0".into(),
        to: "1.31".parse().unwrap(),
        reason: "the thing breaks".into(),
        fix: fix.map(str::to_string),
        source: "https://example.org".into(),
        condition: None,
    };
    c.distros.get_mut("generic").unwrap().blocked_edges.push(edge(Some("replace the thing")));
    let p = find_path(&c, &request("generic", "1.29.3", "1.32", &[])).unwrap();
    assert_eq!(p.prerequisites.len(), 1, "{:?}", p.prerequisites);
    assert_eq!(p.prerequisites[0].to.minor_version(), Minor::new(1, 31));
    assert_eq!(p.prerequisites[0].fix.as_deref(), Some("replace the thing"));
    c.distros.get_mut("generic").unwrap().blocked_edges.last_mut().unwrap().fix = None;
    let e = find_path(&c, &request("generic", "1.29.3", "1.32", &[])).unwrap_err();
    assert!(matches!(e, PathError::Blocked { .. }), "{e:?}");
}

#[test]
fn aks_jumps_from_an_unsupported_minor_only_to_the_lowest_supported_and_lts_skips_with_lts() {
    let c = catalog();
    let mut r = request("aks", "1.33.5", "1.37", &[]);
    r.today = "2026-12-03".parse().unwrap();
    let p = find_path(&c, &r).unwrap();
    let cp: Vec<Minor> =
        p.hops.iter().filter(|h| h.component == Component::ControlPlane).map(|h| h.to.minor_version()).collect();
    // 1.33 and 1.34 have ended on AKS by then: the lowest supported minor is 1.35.
    assert_eq!(cp, [Minor::new(1, 35), Minor::new(1, 36), Minor::new(1, 37)], "{}", shape(&p).join("; "));
    assert!(p.hops[0].reason.contains("lowest supported minor"), "{}", p.hops[0].reason);
    // A supported cluster never skips without the LTS plan, and may with it.
    let mut r = request("aks", "1.35.2", "1.37", &[]);
    r.today = "2026-12-03".parse().unwrap();
    let p = find_path(&c, &r).unwrap();
    assert_eq!(p.summary.control_plane_hops, 2);
    r.facts.lts = true;
    let p = find_path(&c, &r).unwrap();
    assert_eq!(p.summary.control_plane_hops, 1, "{}", shape(&p).join("; "));
    assert!(p.hops.iter().any(|h| h.reason.contains("long-term support")));
    // Other distros have no LTS rule: --lts changes nothing.
    let mut r = request("kubeadm", "1.35.2", "1.37", &[]);
    r.facts.lts = true;
    assert_eq!(find_path(&c, &r).unwrap().summary.control_plane_hops, 2);
}

#[test]
fn eks_rolls_nodes_to_the_control_planes_minor_before_each_hop() {
    let c = catalog();
    let p = find_path(&c, &request("eks", "1.30.14", "1.33", &["1.29.0"])).unwrap();
    let mut kubelet_min = Minor::new(1, 29);
    let mut cp = Minor::new(1, 30);
    for h in &p.hops {
        match h.component {
            Component::Nodes => kubelet_min = h.moves.iter().map(|m| m.to.minor_version()).min().unwrap_or(kubelet_min),
            Component::ControlPlane => {
                if h.to.minor_version() > cp {
                    assert_eq!(kubelet_min, cp, "nodes behind before the hop to {}: {}", h.to, shape(&p).join("; "));
                }
                cp = h.to.minor_version();
            }
        }
    }
}
