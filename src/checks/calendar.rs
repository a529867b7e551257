//! Support calendar along the path: for each minor a hop lands on, how long the distro (or, for
//! distros that follow upstream, the Kubernetes project) still supports it on the day of
//! planning. Past all support, in extended support, or ending within [`ENDING_SOON_DAYS`] days,
//! each with its dates and source. "Today" is an argument: nothing here reads a clock.

use serde_json::json;

use super::{Details, Finding, FindingCode, HopRef, Severity};
use crate::catalog::{Catalog, Date, DistroFile, Offers};
use crate::version::{Minor, Version};

/// How close an end of support must be to be worth saying.
pub const ENDING_SOON_DAYS: i64 = 90;

/// Providers that stop offering a minor once its support is over.
const MANAGED: [&str; 3] = ["eks", "gke", "aks"];

/// The support dates known for one minor on one distro.
struct Dates {
    /// End of standard support (or upstream end of life).
    standard: Option<Date>,
    /// End of extended support, when the distro offers one.
    extended: Option<Date>,
    /// Whether the dates are upstream's rather than the distro's.
    upstream: bool,
    source: String,
}

fn dates_for(catalog: &Catalog, distro: &DistroFile, minor: Minor) -> Option<Dates> {
    let own = catalog
        .distro_version(distro, minor)
        .filter(|v| v.end_of_standard_support.is_some() || v.end_of_extended_support.is_some());
    if let Some(v) = own {
        return Some(Dates {
            standard: v.end_of_standard_support,
            extended: v.end_of_extended_support,
            upstream: false,
            source: v.source.clone(),
        });
    }
    if distro.offers == Offers::Upstream {
        let r = catalog.release(minor)?;
        return Some(Dates {
            standard: Some(r.end_of_life?),
            extended: None,
            upstream: true,
            source: r.source.clone(),
        });
    }
    None
}

/// When support for `minor` on `distro` ends, as the support findings date it: the end of
/// standard support (upstream end of life for distros that follow upstream), and the end of
/// extended support where the distro sells one.
pub fn end_of_support(catalog: &Catalog, distro: &DistroFile, minor: Minor) -> Option<(Date, Option<Date>)> {
    let d = dates_for(catalog, distro, minor)?;
    match (d.standard, d.extended) {
        (Some(s), e) => Some((s, e)),
        (None, Some(e)) => Some((e, None)),
        (None, None) => None,
    }
}

/// Support findings for the minors the hops land on, as of `today`.
pub fn support_calendar(
    catalog: &Catalog,
    distro: &DistroFile,
    hops: &[(Version, Version)],
    today: Date,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let final_minor = hops.last().map(|h| h.1.minor_version());
    let mut seen: Vec<Minor> = Vec::new();
    for h in hops {
        let minor = h.1.minor_version();
        if seen.contains(&minor) {
            continue;
        }
        seen.push(minor);
        let Some(d) = dates_for(catalog, distro, minor) else { continue };
        let is_final = Some(minor) == final_minor;
        let who = if d.upstream { "the Kubernetes project".to_string() } else { distro.display_name.clone() };
        let mut details = serde_json::Map::new();
        details.insert("minor".into(), json!(minor.to_string()));
        details.insert("distro".into(), json!(distro.name));
        if d.upstream {
            details.insert("endOfLife".into(), json!(d.standard.map(|x| x.to_string())));
        } else {
            if let Some(s) = d.standard {
                details.insert("endOfStandardSupport".into(), json!(s.to_string()));
            }
            if let Some(e) = d.extended {
                details.insert("endOfExtendedSupport".into(), json!(e.to_string()));
            }
        }
        details.insert("today".into(), json!(today.to_string()));
        details.insert("finalTarget".into(), json!(is_final));
        details.insert("source".into(), json!(d.source));
        if let Some(p) = &distro.support {
            details.insert("policy".into(), json!(p.policy));
        }
        let end_of_all = d.extended.or(d.standard);
        let hop = Some(HopRef { from: h.0.clone(), to: h.1.clone() });
        let subject = format!("Kubernetes {minor} on {}", distro.name);
        let role = if is_final { "the target" } else { "a step of the path" };
        match (d.standard, end_of_all) {
            (_, Some(end)) if end < today => {
                let managed = MANAGED.contains(&distro.name.as_str());
                let blocker = is_final && managed;
                let what = if d.upstream { "end of life" } else { "end of all support" };
                details.insert("daysLeft".into(), json!(today.days_until(end)));
                out.push(Finding {
                    code: FindingCode::SupportEnded,
                    severity: if blocker { Severity::Blocker } else { Severity::Warning },
                    hop,
                    subject,
                    message: if managed {
                        format!(
                            "{minor}, {role}, reached its {what} on {} on {end}: {} no longer offers it as an upgrade target (and may upgrade the cluster itself)",
                            distro.display_name, distro.display_name
                        )
                    } else {
                        format!("{minor}, {role}, reached its {what} at {who} on {end}: no more patches, security fixes included")
                    },
                    evidence: None,
                    remediation: if is_final {
                        format!("aim for a newer minor than {minor} (one still supported on {})", distro.name)
                    } else {
                        format!("pass through {minor} quickly; do not stay on it")
                    },
                    details: Details::facts(details),
                });
            }
            (Some(standard), Some(end)) if standard < today => {
                details.insert("daysLeft".into(), json!(today.days_until(end)));
                out.push(Finding {
                    code: FindingCode::SupportExtended,
                    severity: Severity::Warning,
                    hop,
                    subject,
                    message: format!(
                        "{minor}, {role}, left standard support on {} on {standard} and is in extended support until {end} ({} days left); extended support may cost extra or need enabling",
                        distro.display_name,
                        today.days_until(end)
                    ),
                    evidence: None,
                    remediation: if is_final {
                        format!("prefer a minor still in standard support, or budget for extended support of {minor}")
                    } else {
                        format!("pass through {minor} without staying on it")
                    },
                    details: Details::facts(details),
                });
            }
            (Some(standard), _) if today.days_until(standard) <= ENDING_SOON_DAYS => {
                let left = today.days_until(standard);
                details.insert("daysLeft".into(), json!(left));
                let then = match d.extended {
                    Some(e) => format!("; extended support follows until {e}"),
                    None => String::new(),
                };
                let what = if d.upstream { "end of life" } else { "standard support ends" };
                out.push(Finding {
                    code: FindingCode::SupportEnding,
                    severity: Severity::Info,
                    hop,
                    subject,
                    message: format!("{minor}, {role}: {what} at {who} on {standard}, in {left} days{then}",),
                    evidence: None,
                    remediation: format!("plan the next upgrade beyond {minor} soon"),
                    details: Details::facts(details),
                });
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn path(ms: &[&str]) -> Vec<(Version, Version)> {
        ms.windows(2).map(|w| (v(w[0]), v(w[1]))).collect()
    }

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn codes(f: &[Finding]) -> Vec<(FindingCode, Severity, String)> {
        f.iter().map(|x| (x.code, x.severity, x.details.get("minor").as_str().unwrap().to_string())).collect()
    }

    #[test]
    fn eks_path_through_ended_extended_and_ending_minors() {
        let c = Catalog::embedded().unwrap();
        let eks = c.distro("eks").unwrap();
        // 2026-05-01: 1.29 ended (2026-03-23), 1.30 in extended (standard ended 2025-07-23),
        // 1.33 standard ends 2026-07-29 (89 days).
        let hops = path(&["1.28.15", "1.29.14", "1.30.14", "1.31.14", "1.32.8", "1.33.10"]);
        let f = support_calendar(&c, eks, &hops, date("2026-05-01"));
        assert_eq!(
            codes(&f),
            vec![
                (FindingCode::SupportEnded, Severity::Warning, "1.29".into()),
                (FindingCode::SupportExtended, Severity::Warning, "1.30".into()),
                (FindingCode::SupportExtended, Severity::Warning, "1.31".into()),
                (FindingCode::SupportExtended, Severity::Warning, "1.32".into()),
                (FindingCode::SupportEnding, Severity::Info, "1.33".into()),
            ]
        );
        assert_eq!(f[0].hop, Some(HopRef { from: v("1.28.15"), to: v("1.29.14") }));
        assert_eq!(f[0].details.get("endOfExtendedSupport"), json!("2026-03-23"));
        assert!(f[0].details.get("source").as_str().unwrap().starts_with("https://docs.aws.amazon.com/"));
        assert_eq!(f[4].details.get("daysLeft"), json!(89));
        assert!(f[4].message.contains("2027-07-29"), "{}", f[4].message);
    }

    #[test]
    fn ended_final_target_on_a_managed_provider_blocks() {
        let c = Catalog::embedded().unwrap();
        let eks = c.distro("eks").unwrap();
        let f = support_calendar(&c, eks, &path(&["1.28.15", "1.29.14"]), date("2026-05-01"));
        assert_eq!(codes(&f), vec![(FindingCode::SupportEnded, Severity::Blocker, "1.29".into())]);
        assert!(f[0].message.contains("no longer offers it"), "{}", f[0].message);
        assert_eq!(f[0].details.get("finalTarget"), json!(true));
    }

    #[test]
    fn upstream_distros_use_upstream_end_of_life_and_never_block() {
        let c = Catalog::embedded().unwrap();
        let kubeadm = c.distro("kubeadm").unwrap();
        // 1.33 end of life 2026-06-28; 1.34 2026-10-27; 1.35 2027-02-28.
        let hops = path(&["1.32.8", "1.33.10", "1.34.9", "1.35.9"]);
        let f = support_calendar(&c, kubeadm, &hops, date("2026-08-01"));
        assert_eq!(
            codes(&f),
            vec![
                (FindingCode::SupportEnded, Severity::Warning, "1.33".into()),
                (FindingCode::SupportEnding, Severity::Info, "1.34".into())
            ]
        );
        assert_eq!(f[0].details.get("endOfLife"), json!("2026-06-28"));
        assert!(f[0].message.contains("the Kubernetes project"), "{}", f[0].message);
        // The final target ended: still a warning off the managed providers.
        let f = support_calendar(&c, kubeadm, &path(&["1.32.8", "1.33.10"]), date("2026-08-01"));
        assert_eq!(codes(&f), vec![(FindingCode::SupportEnded, Severity::Warning, "1.33".into())]);
    }

    #[test]
    fn unknown_dates_and_well_supported_minors_say_nothing() {
        let c = Catalog::embedded().unwrap();
        // GKE lists 1.33 without dates.
        let gke = c.distro("gke").unwrap();
        assert!(support_calendar(&c, gke, &path(&["1.32.1", "1.33.1"]), date("2026-05-01")).is_empty());
        let aks = c.distro("aks").unwrap();
        assert!(support_calendar(&c, aks, &path(&["1.34.1", "1.35.1"]), date("2026-05-01")).is_empty());
        assert!(support_calendar(&c, aks, &[], date("2026-05-01")).is_empty());
    }

    #[test]
    fn patch_hop_counts_its_minor_once() {
        let c = Catalog::embedded().unwrap();
        let aks = c.distro("aks").unwrap();
        // 1.31: standard ended 2025-11-01, extended until 2026-11-30.
        let hops = path(&["1.30.3", "1.30.9", "1.31.4", "1.31.9"]);
        let f = support_calendar(&c, aks, &hops, date("2026-05-01"));
        assert_eq!(
            codes(&f),
            vec![
                (FindingCode::SupportExtended, Severity::Warning, "1.30".into()),
                (FindingCode::SupportExtended, Severity::Warning, "1.31".into())
            ]
        );
    }
}
