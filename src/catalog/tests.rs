use super::*;

fn sources() -> Vec<SourceFile> {
    EMBEDDED.iter().map(|(n, t)| SourceFile { name: (*n).to_string(), text: (*t).to_string() }).collect()
}

fn with_file(name: &str, edit: impl Fn(&str) -> String) -> Vec<SourceFile> {
    sources().into_iter().map(|f| if f.name == name { SourceFile { text: edit(&f.text), ..f } } else { f }).collect()
}

#[test]
fn embedded_catalog_loads_and_is_complete() {
    let c = Catalog::embedded().expect("embedded catalog is valid");
    for d in REQUIRED_DISTROS {
        assert!(c.distro(d).is_some(), "distro {d}");
    }
    assert_eq!(c.oldest_minor(), Minor::new(1, 19));
    assert!(c.newest_minor() >= Minor::new(1, 33));
    assert!(!c.apis.apis.is_empty());
    assert!(!c.addons.addons.is_empty());
    for required in [
        "coredns",
        "kube-proxy",
        "cluster-autoscaler",
        "metrics-server",
        "ingress-nginx",
        "cert-manager",
        "calico",
        "cilium",
        "flannel",
        "aws-vpc-cni",
        "kube-state-metrics",
        "istio",
        "argo-cd",
    ] {
        assert!(c.addon(required).is_some(), "add-on {required}");
    }
    // Every offered minor resolves to a newest patch.
    for d in c.distros.values() {
        for m in c.offered_minors(d) {
            assert!(c.latest_patch(d, m).is_some(), "{} {m}", d.name);
        }
    }
}

#[test]
fn removals_in_the_guide_are_present() {
    let c = Catalog::embedded().unwrap();
    let removed = |gv: &str, kind: &str| {
        c.apis
            .apis
            .iter()
            .find(|a| a.api_version() == gv && a.kind == kind)
            .and_then(|a| a.removed_in)
            .map(|m| m.to_string())
    };
    assert_eq!(removed("policy/v1beta1", "PodDisruptionBudget").as_deref(), Some("1.25"));
    assert_eq!(removed("batch/v1beta1", "CronJob").as_deref(), Some("1.25"));
    assert_eq!(removed("extensions/v1beta1", "Ingress").as_deref(), Some("1.22"));
    assert_eq!(removed("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema").as_deref(), Some("1.26"));
    assert_eq!(removed("flowcontrol.apiserver.k8s.io/v1beta2", "FlowSchema").as_deref(), Some("1.29"));
    assert_eq!(removed("flowcontrol.apiserver.k8s.io/v1beta3", "PriorityLevelConfiguration").as_deref(), Some("1.32"));
    assert_eq!(removed("autoscaling/v2beta2", "HorizontalPodAutoscaler").as_deref(), Some("1.26"));
}

#[test]
fn skew_policy_matches_the_documented_rules() {
    let c = Catalog::embedded().unwrap();
    let kubelet = c.component_skew("kubelet").unwrap();
    assert_eq!((kubelet.max_older, kubelet.max_newer), (3, 0));
    assert_eq!(kubelet.older_than, Some(OlderThan { version: Minor::new(1, 25), max_older: 2 }));
    assert_eq!(c.component_skew("kube-scheduler").unwrap().max_older, 1);
    let kubectl = c.component_skew("kubectl").unwrap();
    assert_eq!((kubectl.max_older, kubectl.max_newer), (1, 1));
    assert_eq!(c.skew.apiserver.max_minor_step, 1);
}

#[test]
fn every_source_is_https() {
    // The loader already refuses others; this pins that the embedded data went through it.
    let c = Catalog::embedded().unwrap();
    let yaml = serde_json::to_string(&c.kubernetes).unwrap() + &serde_json::to_string(&c.distros).unwrap();
    assert!(!yaml.contains("\"source\":\"http://"));
}

#[test]
fn unknown_field_names_file_and_field() {
    let files = with_file("skew.yaml", |t| t.replacen("apiserver:", "apiserver:\n  maxMinorStepz: 1", 1));
    let err = Catalog::from_sources("test", files).unwrap_err().to_string();
    assert!(err.contains("skew.yaml") && err.contains("maxMinorStepz"), "{err}");
}

#[test]
fn bad_date_names_file_and_value() {
    let files = with_file("kubernetes.yaml", |t| t.replacen("released: \"2020-08-26\"", "released: \"2020-02-30\"", 1));
    let err = Catalog::from_sources("test", files).unwrap_err().to_string();
    assert!(err.contains("kubernetes.yaml") && err.contains("2020-02-30"), "{err}");
}

#[test]
fn removal_before_deprecation_is_refused_with_entry_and_field() {
    let mut c = Catalog::embedded().unwrap();
    let entry = c.apis.apis.iter_mut().find(|a| a.deprecated_in.is_some() && a.removed_in.is_some()).unwrap();
    entry.removed_in = entry.deprecated_in;
    let err = validate::validate(&c).unwrap_err();
    let CatalogError::Invalid { file, entry, field, .. } = &err else { panic!("{err}") };
    assert_eq!(file, "apis.yaml");
    assert!(entry.starts_with("apis["), "{entry}");
    assert_eq!(field, "removedIn");
}

#[test]
fn cross_references_are_checked() {
    let mut c = Catalog::embedded().unwrap();
    c.distros.get_mut("eks").unwrap().versions[0].minor = Minor::new(1, 99);
    assert!(matches!(validate::validate(&c), Err(CatalogError::Invalid { field, .. }) if field == "minor"));

    let mut c = Catalog::embedded().unwrap();
    c.distros.get_mut("kubeadm").unwrap().blocked_edges.push(BlockedEdge {
        name: "Ghost".into(),
        from: "*".into(),
        to: "1.30".parse().unwrap(),
        reason: "x".into(),
        fix: None,
        source: "https://example.org".into(),
        condition: Some(Condition { any_of: vec![Matcher::AddonPresent { addon: "no-such-addon".into() }] }),
    });
    let err = validate::validate(&c).unwrap_err().to_string();
    assert!(err.contains("distros/kubeadm.yaml") && err.contains("Ghost") && err.contains("no-such-addon"), "{err}");

    let mut c = Catalog::embedded().unwrap();
    let r = &mut c.kubernetes.releases[3];
    r.end_of_life = Some(Date::new(2000, 1, 1).unwrap());
    let err = validate::validate(&c).unwrap_err().to_string();
    assert!(err.contains("endOfLife"), "{err}");

    let mut c = Catalog::embedded().unwrap();
    let line =
        c.addons.addons.iter_mut().flat_map(|a| a.lines.iter_mut()).find(|l| l.kubernetes.max.is_some()).unwrap();
    line.kubernetes.max = Some(Minor::new(1, 1));
    let err = validate::validate(&c).unwrap_err().to_string();
    assert!(err.contains("addons.yaml") && err.contains("kubernetes.max"), "{err}");
}

#[test]
fn missing_files_and_schema_versions_are_named() {
    let files: Vec<SourceFile> = sources().into_iter().filter(|f| f.name != "distros/aks.yaml").collect();
    let err = Catalog::from_sources("test", files).unwrap_err();
    assert!(err.to_string().contains("distros/aks.yaml"), "{err}");

    let files = with_file("apis.yaml", |t| t.replacen("schemaVersion: 1", "schemaVersion: 9", 1));
    let err = Catalog::from_sources("test", files).unwrap_err();
    assert_eq!(err, CatalogError::Schema { file: "apis.yaml".into(), found: 9, supported: 1 });
    // A newer schema that also changed the fields is named by its version, not a missing field.
    let files = with_file("kubernetes.yaml", |_| "schemaVersion: 2\nreleases2: []\n".into());
    let err = Catalog::from_sources("test", files).unwrap_err();
    assert_eq!(err, CatalogError::Schema { file: "kubernetes.yaml".into(), found: 2, supported: 1 });

    let files = with_file("distros/gke.yaml", |t| t.replacen("name: gke", "name: gce", 1));
    let err = Catalog::from_sources("test", files).unwrap_err().to_string();
    assert!(err.contains("distros/gke.yaml") && err.contains("gce"), "{err}");
}

#[test]
fn broken_yaml_is_an_error_not_a_panic() {
    for garbage in ["{{{", "releases: [", "- - -\n  :", "schemaVersion: [1]", "\u{0}"] {
        let files = with_file("kubernetes.yaml", |_| garbage.to_string());
        let err = Catalog::from_sources("test", files).unwrap_err().to_string();
        assert!(err.starts_with("catalog file kubernetes.yaml"), "{err}");
    }
}
