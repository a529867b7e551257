//! Semantic checks over a parsed catalog: ordering, ranges and cross references.
//!
//! Serde already refuses unknown keys and malformed values; this pass refuses data that parses
//! but cannot be true (a removal before its deprecation, an end of life before the release, a
//! distro offering a minor upstream never released, a blocked edge naming an unknown add-on).

use std::collections::BTreeSet;

use super::{Catalog, CatalogError, Date, Matcher, Offers};
use crate::version::Minor;

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, entry: impl Into<String>, field: &str, message: impl Into<String>) -> CatalogError {
        CatalogError::Invalid {
            file: self.file.to_string(),
            entry: entry.into(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn source(&self, entry: &str, field: &str, url: &str) -> Result<(), CatalogError> {
        let ok = url.starts_with("https://")
            && url.len() > "https://".len() + 3
            && url.len() <= 2048
            && !url.chars().any(char::is_whitespace);
        if ok { Ok(()) } else { Err(self.err(entry, field, format!("'{url}' is not an https:// URL"))) }
    }

    fn dates(
        &self,
        entry: &str,
        earlier: (&str, Option<Date>),
        later: (&str, Option<Date>),
    ) -> Result<(), CatalogError> {
        if let (Some(a), Some(b)) = (earlier.1, later.1)
            && a > b
        {
            return Err(self.err(entry, later.0, format!("{b} is before {} {a}", earlier.0)));
        }
        Ok(())
    }
}

pub(super) fn validate(c: &Catalog) -> Result<(), CatalogError> {
    kubernetes(c)?;
    skew(c)?;
    apis(c)?;
    addons(c)?;
    for (name, _) in c.distros.iter() {
        distro(c, name)?;
    }
    Ok(())
}

fn kubernetes(c: &Catalog) -> Result<(), CatalogError> {
    let cx = Ctx { file: "kubernetes.yaml" };
    let releases = &c.kubernetes.releases;
    let Some(first) = releases.first() else {
        return Err(cx.err("releases", "releases", "the list is empty"));
    };
    if first.minor != Minor::new(1, 19) {
        return Err(cx.err(format!("releases[{}]", first.minor), "minor", "the list must start at 1.19"));
    }
    for (i, r) in releases.iter().enumerate() {
        let entry = format!("releases[{}]", r.minor);
        if i > 0 && r.minor != releases[i - 1].minor.plus(1) {
            return Err(cx.err(
                &entry,
                "minor",
                format!("expected {} after {}", releases[i - 1].minor.plus(1), releases[i - 1].minor),
            ));
        }
        cx.dates(&entry, ("released", Some(r.released)), ("endOfLife", r.end_of_life))?;
        cx.dates(&entry, ("released", Some(r.released)), ("latestPatchDate", r.latest_patch_date))?;
        if r.latest_patch.minor_version() != r.minor || r.latest_patch.patch.is_none() {
            return Err(cx.err(
                &entry,
                "latestPatch",
                format!("'{}' is not a patch release of {}", r.latest_patch, r.minor),
            ));
        }
        if r.released > c.kubernetes.data_date {
            return Err(cx.err(
                &entry,
                "released",
                format!("{} is after the file's dataDate {}", r.released, c.kubernetes.data_date),
            ));
        }
        cx.source(&entry, "source", &r.source)?;
    }
    Ok(())
}

fn skew(c: &Catalog) -> Result<(), CatalogError> {
    let cx = Ctx { file: "skew.yaml" };
    cx.source("top level", "source", &c.skew.source)?;
    if c.skew.apiserver.max_minor_step == 0 {
        return Err(cx.err("apiserver", "maxMinorStep", "must be at least 1"));
    }
    let mut seen = BTreeSet::new();
    for comp in &c.skew.components {
        let entry = format!("components[{}]", comp.name);
        if !seen.insert(comp.name.as_str()) {
            return Err(cx.err(&entry, "name", "appears twice"));
        }
        if let Some(o) = comp.older_than
            && o.max_older > comp.max_older
        {
            return Err(cx.err(&entry, "olderThan.maxOlder", "is wider than maxOlder; it must be the stricter window"));
        }
    }
    for required in ["kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler", "kubectl"] {
        if !seen.contains(required) {
            return Err(cx.err(format!("components[{required}]"), "name", "missing; the skew policy needs it"));
        }
    }
    Ok(())
}

fn apis(c: &Catalog) -> Result<(), CatalogError> {
    let cx = Ctx { file: "apis.yaml" };
    let mut seen = BTreeSet::new();
    for a in &c.apis.apis {
        let entry = format!("apis[{}/{}]", a.api_version(), a.kind);
        if !seen.insert((a.group.clone(), a.version.clone(), a.kind.clone())) {
            return Err(cx.err(&entry, "kind", "appears twice"));
        }
        if a.version.is_empty() || a.kind.is_empty() || a.resource.is_empty() {
            return Err(cx.err(&entry, "version", "group version, kind and resource must not be empty"));
        }
        if a.deprecated_in.is_none() && a.removed_in.is_none() {
            return Err(cx.err(&entry, "removedIn", "an entry needs deprecatedIn or removedIn"));
        }
        if let (Some(d), Some(r)) = (a.deprecated_in, a.removed_in)
            && r <= d
        {
            return Err(cx.err(&entry, "removedIn", format!("{r} is not after deprecatedIn {d}")));
        }
        if let (Some(i), Some(r)) = (a.introduced_in, a.removed_in)
            && r <= i
        {
            return Err(cx.err(&entry, "removedIn", format!("{r} is not after introducedIn {i}")));
        }
        // A replacement served only after the removal is a fact of some markers (flowcontrol
        // v1alpha1 names v1beta3): the planner bridges it with an interim version.
        if a.replacement_available_in.is_some() && a.replacement.is_none() {
            return Err(cx.err(&entry, "replacement", "replacementAvailableIn is set but replacement is not"));
        }
        cx.source(&entry, "source", &a.source)?;
    }
    Ok(())
}

fn addons(c: &Catalog) -> Result<(), CatalogError> {
    let cx = Ctx { file: "addons.yaml" };
    let mut seen = BTreeSet::new();
    for a in &c.addons.addons {
        let entry = format!("addons[{}]", a.name);
        if !seen.insert(a.name.as_str()) {
            return Err(cx.err(&entry, "name", "appears twice"));
        }
        if a.detect.images.is_empty() || a.detect.images.iter().any(|i| i.trim().is_empty()) {
            return Err(cx.err(&entry, "detect.images", "needs at least one non-empty image pattern"));
        }
        if let Some(rule) = &a.version_rule {
            cx.source(&entry, "versionRule.source", &rule.source)?;
        }
        for (i, line) in a.lines.iter().enumerate() {
            let entry = format!("addons[{}].lines[{i}] ({})", a.name, line.versions);
            if let Err(e) = semver::VersionReq::parse(&line.versions) {
                return Err(cx.err(
                    &entry,
                    "versions",
                    format!("'{}' is not a semver requirement: {e}", line.versions),
                ));
            }
            if let Some(max) = line.kubernetes.max
                && max < line.kubernetes.min
            {
                return Err(cx.err(&entry, "kubernetes.max", format!("{max} is below min {}", line.kubernetes.min)));
            }
            cx.source(&entry, "source", &line.source)?;
        }
    }
    Ok(())
}

fn distro(c: &Catalog, name: &str) -> Result<(), CatalogError> {
    let file = format!("distros/{name}.yaml");
    let cx = Ctx { file: &file };
    let d = &c.distros[name];
    cx.source("versionFormat", "source", &d.version_format.source)?;
    cx.source("controlPlane", "source", &d.control_plane.source)?;
    cx.source("nodes", "source", &d.nodes.source)?;
    if let Some(s) = &d.support {
        cx.source("support", "source", &s.source)?;
    }
    if d.control_plane.max_minor_step == 0 {
        return Err(cx.err("controlPlane", "maxMinorStep", "must be at least 1"));
    }
    if d.nodes.max_minor_step == Some(0) {
        return Err(cx.err("nodes", "maxMinorStep", "must be at least 1 (or null for any)"));
    }
    if d.offers == Offers::Listed && d.versions.is_empty() {
        return Err(cx.err("versions", "versions", "offers: listed needs at least one version"));
    }
    let mut seen = BTreeSet::new();
    for v in &d.versions {
        let entry = format!("versions[{}]", v.minor);
        if !seen.insert(v.minor) {
            return Err(cx.err(&entry, "minor", "appears twice"));
        }
        if c.release(v.minor).is_none() {
            return Err(cx.err(&entry, "minor", format!("{} is not in kubernetes.yaml", v.minor)));
        }
        if let Some(p) = &v.latest_patch
            && (p.minor_version() != v.minor || p.patch.is_none())
        {
            return Err(cx.err(&entry, "latestPatch", format!("'{p}' is not a patch release of {}", v.minor)));
        }
        cx.dates(&entry, ("released", v.released), ("endOfStandardSupport", v.end_of_standard_support))?;
        cx.dates(
            &entry,
            ("endOfStandardSupport", v.end_of_standard_support),
            ("endOfExtendedSupport", v.end_of_extended_support),
        )?;
        cx.source(&entry, "source", &v.source)?;
    }
    for cv in &d.component_versions {
        let entry = format!("componentVersions[{}]", cv.minor);
        if c.release(cv.minor).is_none() {
            return Err(cx.err(&entry, "minor", format!("{} is not in kubernetes.yaml", cv.minor)));
        }
        cx.source(&entry, "source", &cv.source)?;
    }
    let mut names = BTreeSet::new();
    for e in &d.blocked_edges {
        let entry = format!("blockedEdges[{}]", e.name);
        if !names.insert(e.name.as_str()) {
            return Err(cx.err(&entry, "name", "appears twice"));
        }
        if let Err(err) = semver::VersionReq::parse(&e.from) {
            return Err(cx.err(&entry, "from", format!("'{}' is not a semver requirement: {err}", e.from)));
        }
        if c.release(e.to.minor_version()).is_none() {
            return Err(cx.err(&entry, "to", format!("{} is not in kubernetes.yaml", e.to)));
        }
        if e.reason.trim().is_empty() {
            return Err(cx.err(&entry, "reason", "must say what goes wrong"));
        }
        cx.source(&entry, "source", &e.source)?;
        if let Some(cond) = &e.condition {
            if cond.any_of.is_empty() {
                return Err(cx.err(&entry, "condition.anyOf", "is empty; drop the condition to block always"));
            }
            for m in &cond.any_of {
                match m {
                    Matcher::AddonPresent { addon } if c.addon(addon).is_none() => {
                        return Err(cx.err(
                            &entry,
                            "condition.anyOf.addon",
                            format!("'{addon}' is not in addons.yaml"),
                        ));
                    }
                    Matcher::ComponentBelow { component, .. }
                        if !matches!(component.as_str(), "etcd" | "coredns") && c.addon(component).is_none() =>
                    {
                        return Err(cx.err(
                            &entry,
                            "condition.anyOf.component",
                            format!("'{component}' is neither etcd, coredns nor an add-on in addons.yaml"),
                        ));
                    }
                    Matcher::NodeInfoPrefix { prefix: text, .. } | Matcher::NodeInfoEquals { value: text, .. }
                        if text.is_empty() =>
                    {
                        return Err(cx.err(&entry, "condition.anyOf", "a node-info match must not be empty"));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}
