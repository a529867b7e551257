//! Add-on compatibility along the path: for each installed add-on the catalog knows, whether its
//! version's Kubernetes window (a line of `addons.yaml`, or a rule such as "same minor as
//! Kubernetes" or the kube-proxy skew) covers every hop target, and if not, which line to move
//! to before which hop, or the two-step bridge when no single line spans the hop. Windows are
//! described in the vendor's own word: a `tested` window means "untested outside", never
//! "unsupported". Planned upgrades carry forward, so there is one finding per needed upgrade.

use serde_json::json;

use super::{Details, Finding, FindingCode, HopRef, Severity};
use crate::catalog::{Addon, Catalog, ComponentSkew, KubernetesRange, Meaning, VersionRuleKind};
use crate::inventory::{AddonFacts, Inventory};
use crate::version::{Minor, Version};

/// One Kubernetes window an add-on version falls in: a catalog line, or a window derived from a
/// version rule.
#[derive(Debug, Clone)]
struct Window {
    /// The semver requirement over the add-on's own version (`~1.11`, `>=1.19.0, <1.20.0`).
    versions: String,
    range: KubernetesRange,
    meaning: Meaning,
    latest: Option<String>,
    /// Position in the catalog's list (newer lines come later); rule windows use the minor.
    order: u64,
}

impl Window {
    fn covers(&self, m: Minor) -> bool {
        self.range.contains(m)
    }
}

fn covers_all(ws: &[Window], m: Minor) -> bool {
    ws.iter().any(|w| w.covers(m))
}

/// The add-on version as semver: leading `v` dropped, `-…`/`+…` build suffixes dropped, a
/// missing patch taken as 0 (`v1.9` → `1.9.0`).
pub(crate) fn parse_addon_version(raw: &str) -> Option<semver::Version> {
    let s = raw.trim();
    let s = s.strip_prefix('v').or_else(|| s.strip_prefix('V')).unwrap_or(s);
    let core = s.split(['-', '+']).next().unwrap_or_default();
    let parts = core.split('.').count();
    let padded = match parts {
        1 => format!("{core}.0.0"),
        2 => format!("{core}.0"),
        _ => core.to_string(),
    };
    semver::Version::parse(&padded).ok()
}

fn range_words(r: &KubernetesRange) -> String {
    match r.max {
        Some(max) if max == r.min => format!("Kubernetes {max} only"),
        Some(max) => format!("Kubernetes {}–{max}", r.min),
        None => format!("Kubernetes {} and later", r.min),
    }
}

/// A window in the vendor's word, and what being outside it means.
fn window_words(w: &Window) -> String {
    let range = range_words(&w.range);
    match w.meaning {
        Meaning::Tested => {
            format!("tested on {range} (untested outside that window)")
        }
        Meaning::Supported => format!("supported on {range} (unsupported by its vendor outside that window)"),
        Meaning::InstalledByDefault => {
            format!("the version installed by default with {range} (not the default outside that window)")
        }
        Meaning::MustMatch => format!("required to match {range} (it must not run outside that window)"),
        Meaning::BuiltAgainst => {
            format!("built against {range} client libraries (not built for other Kubernetes versions)")
        }
    }
}

fn windows_words(ws: &[Window]) -> String {
    ws.iter().map(window_words).collect::<Vec<_>>().join("; and ")
}

fn severity_of(ws: &[Window]) -> Severity {
    if ws.iter().any(|w| w.meaning == Meaning::MustMatch) { Severity::Blocker } else { Severity::Warning }
}

fn meaning_of(ws: &[Window]) -> &'static str {
    ws.iter().map(|w| w.meaning).max().map_or("unknown", Meaning::as_str)
}

/// How many hops from `start` on a window keeps covering without a break.
fn reach(w: &Window, targets: &[Minor], start: usize) -> usize {
    targets[start..].iter().take_while(|m| w.covers(**m)).count()
}

/// The best window among `candidates` covering every minor in `need`: the one that keeps
/// covering the most later hops, then the newest.
fn best<'a>(candidates: &'a [Window], need: &[Minor], targets: &[Minor], start: usize) -> Option<&'a Window> {
    candidates
        .iter()
        .filter(|w| need.iter().all(|m| w.covers(*m)))
        .max_by_key(|w| (reach(w, targets, start), w.range.max.is_none(), w.range.max, w.order))
}

/// A finding about an add-on at one hop (they all name the hop and carry no object evidence).
fn addon_finding(
    code: FindingCode,
    severity: Severity,
    h: &(Version, Version),
    subject: String,
    message: String,
    remediation: String,
    details: serde_json::Map<String, serde_json::Value>,
) -> Finding {
    Finding {
        code,
        severity,
        hop: Some(hop_ref(h)),
        subject,
        message,
        evidence: None,
        remediation,
        details: Details::facts(details),
    }
}

fn hop_ref(h: &(Version, Version)) -> HopRef {
    HopRef { from: h.0.clone(), to: h.1.clone() }
}

fn base_details(addon: &AddonFacts, meaning: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut d = serde_json::Map::new();
    d.insert("addon".into(), json!(addon.name));
    d.insert("installed".into(), json!(addon.version));
    d.insert("workload".into(), json!(addon.workload));
    d.insert("meaning".into(), json!(meaning));
    d
}

fn unknown_version(addon: &AddonFacts, spec: &Addon, why: String) -> Finding {
    let mut details = serde_json::Map::new();
    details.insert("addon".into(), json!(addon.name));
    details.insert("installed".into(), json!(addon.version));
    details.insert("workload".into(), json!(addon.workload));
    Finding {
        code: FindingCode::AddonUnknownVersion,
        severity: Severity::Info,
        hop: None,
        subject: format!("addon {}", addon.name),
        message: format!(
            "{} {}: {why}, so its compatibility along the path was not checked",
            spec.display_name, addon.version
        ),
        evidence: None,
        remediation: format!(
            "check the {} release notes for the Kubernetes versions {} supports",
            spec.display_name, addon.version
        ),
        details: Details::facts(details),
    }
}

/// The window a version rule gives an add-on of minor `m`: the apiserver minors it may run
/// against (`None` for the kube-proxy rule when `skew.yaml` has no kube-proxy entry).
fn rule_window(kind: VersionRuleKind, meaning: Meaning, skew: Option<&ComponentSkew>, m: Minor) -> Option<Window> {
    let range = match kind {
        VersionRuleKind::SameMinorAsKubernetes => KubernetesRange { min: m, max: Some(m) },
        VersionRuleKind::KubeProxySkew => {
            let s = skew?;
            let older = match s.older_than {
                Some(o) if m < o.version => o.max_older,
                _ => s.max_older,
            };
            KubernetesRange { min: m.minus(s.max_newer), max: Some(m.plus(older)) }
        }
    };
    Some(Window {
        versions: format!("~{m}"),
        range,
        meaning,
        latest: None,
        order: (u64::from(m.major) << 32) | u64::from(m.minor),
    })
}

/// Add-on findings for the control-plane hops of a path starting at `from`.
pub fn addons(inv: &Inventory, catalog: &Catalog, from: &Version, hops: &[(Version, Version)]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(cluster) = &inv.cluster else { return out };
    if hops.is_empty() {
        return out;
    }
    let targets: Vec<Minor> = hops.iter().map(|h| h.1.minor_version()).collect();
    for addon in &cluster.addons {
        let Some(spec) = catalog.addon(&addon.name) else { continue };
        if let Some(r) = &spec.retired {
            let mut details = base_details(addon, "retired");
            details.insert("source".into(), json!(r.source));
            out.push(Finding {
                code: FindingCode::AddonRetired,
                severity: Severity::Warning,
                hop: None,
                subject: format!("addon {}", addon.name),
                message: format!(
                    "{} {} is retired: maintenance ended {} and no release will follow, so no version will cover a newer Kubernetes or fix its vulnerabilities",
                    spec.display_name, addon.version, r.since
                ),
                evidence: None,
                remediation: r.instead.clone(),
                details: Details::facts(details),
            });
        }
        if spec.lines.is_empty() && spec.version_rule.is_none() {
            continue;
        }
        let Some(installed) = parse_addon_version(&addon.version) else {
            out.push(unknown_version(addon, spec, "the version could not be read".into()));
            continue;
        };
        let ctx = Ctx { addon, spec, from, hops, targets: &targets };
        match &spec.version_rule {
            Some(rule) => {
                let skew = catalog.component_skew("kube-proxy");
                rule_findings(&ctx, rule.kind, rule.meaning, skew, &installed, &mut out);
            }
            None => line_findings(&ctx, &installed, &mut out),
        }
    }
    out
}

/// What every per-add-on step needs to know.
struct Ctx<'a> {
    addon: &'a AddonFacts,
    spec: &'a Addon,
    from: &'a Version,
    hops: &'a [(Version, Version)],
    /// The minor each hop lands on.
    targets: &'a [Minor],
}

fn rule_findings(
    ctx: &Ctx<'_>,
    kind: VersionRuleKind,
    meaning: Meaning,
    skew: Option<&ComponentSkew>,
    installed: &semver::Version,
    out: &mut Vec<Finding>,
) {
    let Ctx { addon, spec, from, hops, targets } = *ctx;
    let (Ok(major), Ok(minor)) = (u32::try_from(installed.major), u32::try_from(installed.minor)) else { return };
    let Some(mut current) = rule_window(kind, meaning, skew, Minor::new(major, minor)) else { return };
    let mut current_label = addon.version.clone();
    for (i, h) in hops.iter().enumerate() {
        let (a, b) = (h.0.minor_version(), h.1.minor_version());
        if current.covers(b) {
            continue;
        }
        let already = if current_label != addon.version || current.covers(from.minor_version()) {
            String::new()
        } else {
            format!(" (already outside it at {from})")
        };
        let mut details = base_details(addon, meaning.as_str());
        let message = format!(
            "{} {current_label} is {}{already}; the hop to {b} leaves that window",
            spec.display_name,
            window_words(&current)
        );
        match kind {
            VersionRuleKind::SameMinorAsKubernetes => {
                // No version spans two minors: the add-on moves with the control plane.
                let next = rule_window(kind, meaning, skew, b).unwrap_or_else(|| current.clone());
                details.insert("line".into(), json!(next.versions));
                details.insert("afterHop".into(), json!(i));
                out.push(addon_finding(
                    FindingCode::AddonUpgrade,
                    severity_of(std::slice::from_ref(&current)),
                    h,
                    format!("addon {}", addon.name),
                    message,
                    format!(
                        "upgrade {} to {} right after the control plane moves to {b} (its minor follows Kubernetes)",
                        addon.name, next.versions
                    ),
                    details,
                ));
                current_label = next.versions.clone();
                current = next;
            }
            VersionRuleKind::KubeProxySkew => {
                let candidates: Vec<Window> = (0..=6u32)
                    .flat_map(|d| [a.minus(d), a.plus(d)])
                    .filter_map(|m| rule_window(kind, meaning, skew, m))
                    .collect();
                match best(&candidates, &[a, b], targets, i) {
                    Some(next) => {
                        details.insert("line".into(), json!(next.versions));
                        details.insert("beforeHop".into(), json!(i));
                        out.push(addon_finding(
                            FindingCode::AddonUpgrade,
                            severity_of(std::slice::from_ref(&current)),
                            h,
                            format!("addon {}", addon.name),
                            message,
                            format!(
                                "upgrade {} to {} (covers {a} and {b}) before the control plane moves to {b}",
                                addon.name, next.versions
                            ),
                            details,
                        ));
                        current_label = next.versions.clone();
                        current = next.clone();
                    }
                    None => {
                        // The skew rule always admits the current minor's version; only a
                        // malformed rule gets here.
                        return;
                    }
                }
            }
        }
    }
}

fn line_findings(ctx: &Ctx<'_>, installed: &semver::Version, out: &mut Vec<Finding>) {
    let Ctx { addon, spec, from, hops, targets } = *ctx;
    let lines: Vec<(Window, Option<semver::VersionReq>)> = spec
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                Window {
                    versions: l.versions.clone(),
                    range: l.kubernetes,
                    meaning: l.meaning,
                    latest: l.latest.clone(),
                    order: i as u64,
                },
                semver::VersionReq::parse(&l.versions).ok(),
            )
        })
        .collect();
    let mut current: Vec<Window> = lines
        .iter()
        .filter(|(_, req)| req.as_ref().is_some_and(|r| r.matches(installed)))
        .map(|(w, _)| w.clone())
        .collect();
    if current.is_empty() {
        out.push(unknown_version(addon, spec, "no line of the catalog matches this version".into()));
        return;
    }
    let mut current_label = addon.version.clone();
    for (i, h) in hops.iter().enumerate() {
        let (a, b) = (h.0.minor_version(), h.1.minor_version());
        if covers_all(&current, b) {
            continue;
        }
        // Only move forward: lines at or after the newest line the add-on is on now.
        let floor = current.iter().map(|w| w.order).max().unwrap_or(0);
        let candidates: Vec<Window> = lines.iter().map(|(w, _)| w).filter(|w| w.order >= floor).cloned().collect();
        // Only the installed version can be outside its window today; a line an earlier hop's
        // step moves to is not installed yet.
        let already = if current_label != addon.version || covers_all(&current, from.minor_version()) {
            String::new()
        } else {
            format!(" (already outside it at {from})")
        };
        let message_head = format!("{} {current_label} is {}{already}", spec.display_name, windows_words(&current));
        let mut details = base_details(addon, meaning_of(&current));
        let subject = format!("addon {}", addon.name);
        // A default is not a limit: each release installs its own CoreDNS, and the version of
        // the release before is not incompatible with the next. Said once per hop, no step.
        if current.iter().all(|w| w.meaning == Meaning::InstalledByDefault)
            && let Some(next) = best(&candidates, &[b], targets, i).filter(|w| w.meaning == Meaning::InstalledByDefault)
        {
            details.insert("line".into(), json!(next.versions));
            details.insert("afterHop".into(), json!(i));
            out.push(addon_finding(
                FindingCode::AddonDefaultChanges,
                Severity::Info,
                h,
                subject,
                format!("{message_head}; Kubernetes {b} installs {} by default", next.versions),
                format!(
                    "where the distro manages {0} (kubeadm upgrade apply does), it installs the new default itself; if {0} is managed another way, move it to {1} after the control plane reaches {b}",
                    addon.name, next.versions
                ),
                details,
            ));
            current_label = next.versions.clone();
            current = vec![next.clone()];
            continue;
        }
        if let Some(next) = best(&candidates, &[a, b], targets, i) {
            details.insert("line".into(), json!(next.versions));
            if let Some(latest) = &next.latest {
                details.insert("latest".into(), json!(latest));
            }
            details.insert("beforeHop".into(), json!(i));
            let latest = next.latest.as_deref().map(|l| format!(", newest known {l}")).unwrap_or_default();
            out.push(addon_finding(
                FindingCode::AddonUpgrade,
                severity_of(&current),
                h,
                subject,
                format!("{message_head}; the hop to {b} leaves that window"),
                format!(
                    "upgrade {} to {}{latest} (covers {a} and {b}) before the control plane moves to {b}",
                    addon.name, next.versions
                ),
                details,
            ));
            current_label = next.versions.clone();
            current = vec![next.clone()];
            continue;
        }
        let Some(second) = best(&candidates, &[b], targets, i) else {
            // The catalog knows no line for b at all: a gap in the data, not a known conflict.
            details.insert("beforeHop".into(), json!(i));
            out.push(addon_finding(
                FindingCode::AddonUncovered,
                Severity::Warning,
                h,
                subject,
                format!(
                    "{message_head}; the catalog lists no {} version for Kubernetes {b}",
                    spec.display_name
                ),
                format!(
                    "check the {} release notes for a version that covers {a} and {b} before the control plane moves to {b}",
                    spec.display_name
                ),
                details,
            ));
            return;
        };
        let first = candidates
            .iter()
            .filter(|w| w.covers(a) && w.order <= second.order)
            .max_by_key(|w| w.order)
            .or_else(|| current.iter().find(|w| w.covers(a)));
        let mut bridge = Vec::new();
        let mut steps = Vec::new();
        if let Some(f) = first {
            bridge.push(json!({"line": f.versions, "covers": f.range, "when": format!("before the hop to {b}")}));
            steps.push(format!("move {} to {} (covers {a}) before the hop", addon.name, f.versions));
        }
        bridge.push(
            json!({"line": second.versions, "covers": second.range, "when": format!("right after the hop to {b}")}),
        );
        steps.push(format!("then to {} (covers {b}) right after the control plane reaches {b}", second.versions));
        details.insert("beforeHop".into(), json!(i));
        details.insert("bridge".into(), json!(bridge));
        out.push(addon_finding(
            FindingCode::AddonNoBridge,
            Severity::Blocker,
            h,
            subject,
            format!(
                "{message_head}; no {} line covers both {a} and {b}, so it runs outside its window during the hop to {b} whatever the order",
                spec.display_name
            ),
            format!(
                "{}; keep the time between the two short, or check with the vendor whether a newer release spans both",
                steps.join(", ")
            ),
            details,
        ));
        current_label = second.versions.clone();
        current = vec![second.clone()];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{AddonLine, Detect};
    use crate::inventory::ClusterFacts;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn path(ms: &[&str]) -> Vec<(Version, Version)> {
        ms.windows(2).map(|w| (v(w[0]), v(w[1]))).collect()
    }

    fn inv(addons: &[(&str, &str)]) -> Inventory {
        Inventory {
            cluster: Some(ClusterFacts {
                addons: addons
                    .iter()
                    .map(|(n, ver)| AddonFacts {
                        name: (*n).into(),
                        version: (*ver).into(),
                        image: format!("registry.example/{n}:{ver}"),
                        workload: format!("Deployment kube-system/{n}"),
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn line(versions: &str, min: &str, max: Option<&str>, meaning: Meaning) -> AddonLine {
        AddonLine {
            versions: versions.into(),
            kubernetes: KubernetesRange { min: min.parse().unwrap(), max: max.map(|m| m.parse().unwrap()) },
            meaning,
            latest: None,
            source: "https://example.test".into(),
        }
    }

    fn catalog_with(name: &str, lines: Vec<AddonLine>) -> Catalog {
        let mut c = Catalog::embedded().unwrap();
        c.addons.addons.push(Addon {
            name: name.into(),
            display_name: name.into(),
            detect: Detect { images: vec![name.into()], labels: Default::default(), namespaces: vec![] },
            version_rule: None,
            lines,
            retired: None,
        });
        c
    }

    #[test]
    fn parses_vendor_version_strings() {
        assert_eq!(parse_addon_version("v1.10.1"), Some(semver::Version::new(1, 10, 1)));
        assert_eq!(parse_addon_version("1.9.1-eksbuild.2"), Some(semver::Version::new(1, 9, 1)));
        assert_eq!(parse_addon_version("v1.19.2+build"), Some(semver::Version::new(1, 19, 2)));
        assert_eq!(parse_addon_version("v3.27"), Some(semver::Version::new(3, 27, 0)));
        assert_eq!(parse_addon_version("latest"), None);
    }

    #[test]
    fn covered_path_gives_no_findings() {
        let c = Catalog::embedded().unwrap();
        // cert-manager 1.15 covers 1.25..=1.32.
        let f =
            addons(&inv(&[("cert-manager", "v1.15.3")]), &c, &v("1.29.4"), &path(&["1.29.4", "1.30.14", "1.31.14"]));
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn tested_window_upgrade_before_the_hop_is_a_warning_in_the_vendors_word() {
        let c = Catalog::embedded().unwrap();
        // calico 3.27 is tested on 1.24..=1.28.
        let hops = path(&["1.28.15", "1.29.14", "1.30.14"]);
        let f = addons(&inv(&[("calico", "v3.27.3")]), &c, &v("1.28.15"), &hops);
        assert_eq!(f.len(), 1, "one upgrade covers both hops: {f:#?}");
        let x = &f[0];
        assert_eq!(x.code, FindingCode::AddonUpgrade);
        assert_eq!(x.severity, Severity::Warning);
        assert_eq!(x.hop, Some(HopRef { from: v("1.28.15"), to: v("1.29.14") }));
        assert_eq!(x.subject, "addon calico");
        assert!(x.message.contains("tested on Kubernetes 1.24–1.28"), "{}", x.message);
        assert!(x.message.contains("untested outside"), "{}", x.message);
        assert!(!x.message.contains("unsupported"), "{}", x.message);
        // ~3.28 covers 1.27..=1.30, so it covers 1.28, 1.29 and 1.30 in one step.
        assert_eq!(x.details.get("line"), json!("~3.28"));
        assert_eq!(x.details.get("beforeHop"), json!(0));
        assert_eq!(x.details.get("meaning"), json!("tested"));
        assert_eq!(x.details.get("installed"), json!("v3.27.3"));
        assert_eq!(
            x.remediation,
            "upgrade calico to ~3.28 (covers 1.28 and 1.29) before the control plane moves to 1.29"
        );
    }

    #[test]
    fn upgraded_line_carries_forward_to_later_hops() {
        let c = Catalog::embedded().unwrap();
        // calico 3.27 → ~3.28 (to 1.30) → a line covering 1.30 and 1.31.
        let hops = path(&["1.28.15", "1.29.14", "1.30.14", "1.31.14"]);
        let f = addons(&inv(&[("calico", "3.27.0")]), &c, &v("1.28.15"), &hops);
        let codes: Vec<_> = f.iter().map(|x| (x.code, x.details.get("beforeHop").clone())).collect();
        assert_eq!(codes, vec![(FindingCode::AddonUpgrade, json!(0)), (FindingCode::AddonUpgrade, json!(2))], "{f:#?}");
        assert_eq!(f[1].details.get("line"), json!("~3.29"));
        assert!(f[1].message.contains("Calico ~3.28 is tested on Kubernetes 1.27–1.30"), "{}", f[1].message);
    }

    #[test]
    fn supported_window_says_unsupported_and_must_match_blocks() {
        let c = catalog_with(
            "demo",
            vec![
                line("~1.0", "1.28", Some("1.29"), Meaning::MustMatch),
                line("~1.1", "1.29", Some("1.31"), Meaning::MustMatch),
            ],
        );
        let f = addons(&inv(&[("demo", "1.0.4")]), &c, &v("1.29.1"), &path(&["1.29.1", "1.30.2"]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Blocker);
        assert_eq!(f[0].details.get("meaning"), json!("must-match"));
        let c = Catalog::embedded().unwrap();
        // metrics-server 0.3 is supported up to 1.21.
        let f = addons(&inv(&[("metrics-server", "v0.3.7")]), &c, &v("1.21.14"), &path(&["1.21.14", "1.22.17"]));
        assert_eq!(f[0].code, FindingCode::AddonUpgrade);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].message.contains("unsupported by its vendor outside"), "{}", f[0].message);
    }

    #[test]
    fn no_single_line_spanning_the_hop_is_a_blocker_with_a_bridge() {
        let c = catalog_with(
            "demo",
            vec![
                line("~1.0", "1.27", Some("1.28"), Meaning::Supported),
                line("~1.1", "1.28", Some("1.28"), Meaning::Supported),
                line("~2.0", "1.29", Some("1.31"), Meaning::Supported),
            ],
        );
        let hops = path(&["1.28.3", "1.29.4", "1.30.1"]);
        let f = addons(&inv(&[("demo", "v1.0.2")]), &c, &v("1.28.3"), &hops);
        assert_eq!(f.len(), 1, "the bridge's second line covers 1.30 too: {f:#?}");
        let x = &f[0];
        assert_eq!(x.code, FindingCode::AddonNoBridge);
        assert_eq!(x.severity, Severity::Blocker);
        assert_eq!(x.hop, Some(HopRef { from: v("1.28.3"), to: v("1.29.4") }));
        let bridge = x.details.get("bridge").as_array().unwrap().clone();
        assert_eq!(bridge.len(), 2);
        assert_eq!(bridge[0]["line"], json!("~1.1"));
        assert_eq!(bridge[1]["line"], json!("~2.0"));
        assert!(x.remediation.contains("~1.1 (covers 1.28)"), "{}", x.remediation);
        assert!(x.remediation.contains("~2.0 (covers 1.29)"), "{}", x.remediation);
    }

    #[test]
    fn no_known_line_for_the_target_is_a_data_gap_warning() {
        let c = Catalog::embedded().unwrap();
        // cilium: only ~1.18 (1.30..=1.33) is in the catalog.
        let hops = path(&["1.33.5", "1.34.9", "1.35.9"]);
        let f = addons(&inv(&[("cilium", "1.18.2")]), &c, &v("1.33.5"), &hops);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].code, FindingCode::AddonUncovered);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].message.contains("untested outside"), "{}", f[0].message);
    }

    #[test]
    fn a_retired_addon_is_a_warning_that_says_what_to_do_instead() {
        let c = Catalog::embedded().unwrap();
        let hops = path(&["1.33.5", "1.34.9"]);
        let f = addons(&inv(&[("ingress-nginx", "v1.14.1")]), &c, &v("1.33.5"), &hops);
        let retired: Vec<&Finding> = f.iter().filter(|x| x.code == FindingCode::AddonRetired).collect();
        assert_eq!(retired.len(), 1, "{f:#?}");
        assert_eq!(retired[0].severity, Severity::Warning);
        assert!(retired[0].message.contains("retired") && retired[0].remediation.contains("Gateway API"));
    }

    #[test]
    fn unknown_version_is_one_info_finding() {
        let c = Catalog::embedded().unwrap();
        let hops = path(&["1.29.1", "1.30.1", "1.31.1"]);
        let f = addons(&inv(&[("cert-manager", "v9.9.9"), ("calico", "latest")]), &c, &v("1.29.1"), &hops);
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|x| x.code == FindingCode::AddonUnknownVersion && x.severity == Severity::Info));
    }

    #[test]
    fn addons_without_lines_or_rules_and_unknown_addons_are_skipped() {
        let c = Catalog::embedded().unwrap();
        let hops = path(&["1.29.1", "1.30.1"]);
        let f = addons(&inv(&[("flannel", "v0.22.0"), ("not-in-catalog", "1.0.0")]), &c, &v("1.29.1"), &hops);
        assert!(f.is_empty(), "{f:#?}");
        assert!(addons(&Inventory::default(), &c, &v("1.29.1"), &hops).is_empty());
    }

    #[test]
    fn same_minor_rule_moves_with_each_hop() {
        let c = Catalog::embedded().unwrap();
        let hops = path(&["1.29.3", "1.30.14", "1.31.14"]);
        let f = addons(&inv(&[("cluster-autoscaler", "v1.29.2")]), &c, &v("1.29.3"), &hops);
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(f.iter().all(|x| x.code == FindingCode::AddonUpgrade && x.severity == Severity::Warning));
        assert_eq!(f[0].details.get("line"), json!("~1.30"));
        assert_eq!(f[0].details.get("afterHop"), json!(0));
        assert_eq!(f[1].details.get("line"), json!("~1.31"));
        assert!(f[0].message.contains("tested on Kubernetes 1.29 only"), "{}", f[0].message);
        // A patch hop keeps the minor: nothing to do.
        let f = addons(&inv(&[("cluster-autoscaler", "1.29.2")]), &c, &v("1.29.1"), &path(&["1.29.1", "1.29.9"]));
        assert!(f.is_empty());
    }

    #[test]
    fn kube_proxy_rule_uses_the_component_skew() {
        let c = Catalog::embedded().unwrap();
        // kube-proxy 1.27 may be 3 minors older than the apiserver: fine through 1.30.
        let hops = path(&["1.29.1", "1.30.1", "1.31.1"]);
        let f = addons(&inv(&[("kube-proxy", "v1.27.4-eksbuild.2")]), &c, &v("1.29.1"), &hops);
        assert_eq!(f.len(), 1, "{f:#?}");
        let x = &f[0];
        assert_eq!(x.code, FindingCode::AddonUpgrade);
        assert_eq!(x.severity, Severity::Blocker, "the kube-proxy rule is must-match");
        assert_eq!(x.hop, Some(HopRef { from: v("1.30.1"), to: v("1.31.1") }));
        assert_eq!(x.details.get("line"), json!("~1.30"));
        assert_eq!(x.details.get("beforeHop"), json!(1));
        // 1.24 is older than 1.25: only two minors.
        let f = addons(&inv(&[("kube-proxy", "v1.24.0")]), &c, &v("1.26.1"), &path(&["1.26.1", "1.27.1"]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].details.get("line"), json!("~1.26"));
    }
}
