//! `apis.yaml` generated from Kubernetes' lifecycle markers plus a small hand-kept input.
//!
//! The markers ([`super::lifecycle`]) of every listed module version are merged, the newest
//! version's marker winning (markers were corrected over time: flowcontrol v1beta1's replacement
//! moved from v1beta2 to v1beta3). A type whose Go type was deleted from a module before the
//! removal its last marker announced is removed where it disappeared: an apiserver cannot serve
//! a type it no longer has. The hand-kept input (`tools/apis/inputs.yaml`) adds what markers
//! cannot say: which minor first served a GA replacement, which betas kube-apiserver serves by
//! default, the deprecation guide's migration notes, rows from before the markers existed, and
//! corrections of known marker mistakes, each with its source. [`generate`] is pure and
//! [`render`] is deterministic, so a test compares the file with a fresh generation and a
//! catalog update is one command (`tools/generate-apis`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Date;
use super::lifecycle::{self, Lifecycle, PackageSource};
use super::schema::{ApiEntry, ApisFile, Gvk};
use crate::version::Minor;

/// The hand-kept input of the generator.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inputs {
    pub data_date: Date,
    pub modules: Vec<ModuleVersions>,
    pub off_by_default: OffByDefault,
    /// GA kinds that replace a pre-release one, with the minor that first served them.
    pub served_since: Vec<ServedSince>,
    /// The deprecation guide's notes for a group/version/kind, with the guide's anchor.
    #[serde(default)]
    pub guide: Vec<GuideNote>,
    /// Resources whose plural is not the usual one (a kind that is already plural).
    #[serde(default)]
    pub resource_names: Vec<ResourceName>,
    /// Marker values that are wrong, replaced here with the reason.
    #[serde(default)]
    pub corrections: Vec<Correction>,
    /// Rows the markers cannot give.
    #[serde(default)]
    pub rows: Vec<ApiEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModuleVersions {
    /// Go module path (`k8s.io/api`).
    pub module: String,
    /// The module's GitHub repository, for source links (`kubernetes/api`).
    pub repository: String,
    /// Directory under the module holding the `group/version` packages (`.` or `pkg/apis`).
    pub packages: String,
    /// Versions read, oldest first; the newest is the one the rows cite.
    pub versions: Vec<String>,
}

/// New beta versions are off by default from `beta_introduced_from` (KEP-3136), except those
/// kube-apiserver kept on.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OffByDefault {
    pub beta_introduced_from: Minor,
    pub source: String,
    #[serde(default)]
    pub exceptions: Vec<GroupVersionSource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupVersionSource {
    pub group: String,
    pub version: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServedSince {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub since: Minor,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuideNote {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub notes: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceName {
    pub kind: String,
    pub resource: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Correction {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The replacement the marker should have named.
    #[serde(default)]
    pub replacement: Option<Gvk>,
    /// Why the marker is wrong, with its evidence.
    pub why: String,
}

/// Markers merged across module versions, with where each came from.
#[derive(Debug, Clone)]
pub struct Observed {
    pub lifecycle: Lifecycle,
    /// `https://github.com/kubernetes/api/blob/v0.37.2/apps/v1beta1/zz_generated.prerelease-lifecycle.go`.
    pub source: String,
    /// The oldest and newest module minor whose sources have the type.
    pub first_seen: Minor,
    pub last_seen: Minor,
}

/// What reading the module sources found, keyed by (group, version, kind).
pub type Observations = BTreeMap<(String, String, String), Observed>;

/// `v0.37.2` of `k8s.io/api` is Kubernetes 1.37.
fn module_minor(version: &str) -> Option<Minor> {
    let mut parts = version.strip_prefix("v0.")?.split('.');
    Some(Minor::new(1, parts.next()?.parse().ok()?))
}

/// Reads every listed module version from a Go module cache (`GOMODCACHE`).
pub fn read_modules(inputs: &Inputs, modcache: &Path) -> Result<Observations, String> {
    let mut out = Observations::new();
    for m in &inputs.modules {
        for version in &m.versions {
            let minor = module_minor(version).ok_or_else(|| format!("{} {version}: not a v0.X.Y version", m.module))?;
            let root: PathBuf = modcache.join(format!("{}@{version}", m.module)).join(&m.packages);
            if !root.is_dir() {
                return Err(format!(
                    "{} is not in the Go module cache ({}); run tools/generate-apis to download it",
                    format_args!("{}@{version}", m.module),
                    root.display()
                ));
            }
            for (rel, rows) in read_module_tree(&root)? {
                for l in rows {
                    let key = (l.group.clone(), l.version.clone(), l.kind.clone());
                    let source = format!(
                        "https://github.com/{}/blob/{version}/{}{rel}/zz_generated.prerelease-lifecycle.go",
                        m.repository,
                        if m.packages == "." { String::new() } else { format!("{}/", m.packages) }
                    );
                    // Versions are read oldest first, so a later read is a newer marker.
                    let first_seen = out.get(&key).map_or(minor, |o: &Observed| o.first_seen);
                    out.insert(key, Observed { lifecycle: l, source, first_seen, last_seen: minor });
                }
            }
        }
    }
    Ok(out)
}

/// Every `group/version` package under `root`, with its resources and their markers.
fn read_module_tree(root: &Path) -> Result<Vec<(String, Vec<Lifecycle>)>, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut out = Vec::new();
    let mut groups: Vec<PathBuf> = dir_entries(root)?.into_iter().filter(|p| p.is_dir()).collect();
    groups.sort();
    for group in groups {
        let mut versions: Vec<PathBuf> = dir_entries(&group)?.into_iter().filter(|p| p.is_dir()).collect();
        versions.sort();
        for dir in versions {
            let marker_file = dir.join("zz_generated.prerelease-lifecycle.go");
            let register_file = dir.join("register.go");
            if !register_file.is_file() {
                continue;
            }
            let lifecycle_text = if marker_file.is_file() { Some(read(&marker_file)?) } else { None };
            let register = read(&register_file)?;
            let mut types = Vec::new();
            let mut files = dir_entries(&dir)?;
            files.sort();
            for f in files {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if name.ends_with(".go") && !name.starts_with("zz_generated") && !name.ends_with("_test.go") {
                    types.push(read(&f)?);
                }
            }
            let version = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            let src = PackageSource {
                lifecycle: lifecycle_text.as_deref(),
                register: &register,
                types: types.iter().map(String::as_str).collect(),
            };
            let rows =
                lifecycle::read_package(&version, &src).map_err(|e| format!("{}: {e}", marker_file.display()))?;
            let rel = dir.strip_prefix(root).unwrap_or(&dir).to_string_lossy().replace('\\', "/");
            out.push((rel, rows));
        }
    }
    Ok(out)
}

fn dir_entries(dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .map(|e| e.map(|e| e.path()).map_err(|e| format!("{}: {e}", dir.display())))
        .collect()
}

/// The newest GA version (`v1`, `v2`) of `group` that has `kind` in the newest sources read.
fn ga_version_of(observed: &Observations, group: &str, kind: &str) -> Option<Gvk> {
    let newest = observed.values().map(|o| o.last_seen).max()?;
    observed
        .values()
        .filter(|o| o.last_seen == newest && o.lifecycle.group == group && o.lifecycle.kind == kind)
        .filter(|o| !o.lifecycle.version.contains("alpha") && !o.lifecycle.version.contains("beta"))
        .map(|o| &o.lifecycle.version)
        .max_by_key(|v| v.trim_start_matches('v').parse::<u32>().unwrap_or(0))
        .map(|v| Gvk { group: group.to_string(), version: v.clone(), kind: kind.to_string() })
}

fn is_alpha(version: &str) -> bool {
    version.contains("alpha")
}

/// The catalog rows, sorted by removal, then group, version and kind.
pub fn generate(inputs: &Inputs, observed: &Observations) -> Result<ApisFile, String> {
    let newest = inputs
        .modules
        .iter()
        .flat_map(|m| m.versions.iter().filter_map(|v| module_minor(v)))
        .max()
        .ok_or("inputs list no module versions")?;
    let key = |g: &str, v: &str, k: &str| (g.to_string(), v.to_string(), k.to_string());
    let corrections: BTreeMap<_, _> =
        inputs.corrections.iter().map(|c| (key(&c.group, &c.version, &c.kind), c)).collect();
    let guide: BTreeMap<_, _> = inputs.guide.iter().map(|g| (key(&g.group, &g.version, &g.kind), g)).collect();
    let served_since: BTreeMap<_, _> =
        inputs.served_since.iter().map(|s| (key(&s.group, &s.version, &s.kind), s.since)).collect();
    let mut rows: BTreeMap<(String, String, String), ApiEntry> = BTreeMap::new();
    for (k, o) in observed {
        let l = &o.lifecycle;
        // A type that left the module sources is not served from the next minor, whatever its
        // last marker planned.
        let gone = (o.last_seen < newest).then(|| o.last_seen.plus(1));
        let removed = match (l.removed, gone) {
            (Some(r), Some(g)) => Some(r.min(g)),
            (r, g) => r.or(g),
        };
        if l.deprecated.is_none() && removed.is_none() {
            continue;
        }
        // No replacement marker: the same kind at the group's GA version, when one exists.
        let mut replacement = l.replacement.clone().or_else(|| ga_version_of(observed, &l.group, &l.kind));
        if let Some(c) = corrections.get(k)
            && c.replacement.is_some()
        {
            replacement = c.replacement.clone();
        }
        // Alpha is never on by default; a beta from `betaIntroducedFrom` on is not either, unless
        // kube-apiserver made an exception for it.
        let off = is_alpha(&l.version)
            || (l.introduced.is_some_and(|i| i >= inputs.off_by_default.beta_introduced_from)
                && !inputs.off_by_default.exceptions.iter().any(|e| e.group == l.group && e.version == l.version));
        let served_by_default = off.then_some(false);
        let g = guide.get(k);
        rows.insert(
            k.clone(),
            ApiEntry {
                group: l.group.clone(),
                version: l.version.clone(),
                kind: l.kind.clone(),
                resource: inputs
                    .resource_names
                    .iter()
                    .find(|r| r.kind == l.kind)
                    .map_or_else(|| lifecycle::resource_of(&l.kind), |r| r.resource.clone()),
                namespaced: l.namespaced,
                introduced_in: l.introduced,
                deprecated_in: l.deprecated.filter(|d| removed.is_none_or(|r| *d < r)),
                removed_in: removed,
                replacement_available_in: None,
                replacement,
                notes: g.map(|g| g.notes.clone()),
                guide: g.map(|g| g.source.clone()),
                served_by_default,
                source: o.source.clone(),
            },
        );
    }
    for r in &inputs.rows {
        let k = key(&r.group, &r.version, &r.kind);
        if rows.contains_key(&k) {
            return Err(format!(
                "hand-kept row {}/{} {} is also in the markers; drop it from the inputs",
                r.group, r.version, r.kind
            ));
        }
        rows.insert(k, r.clone());
    }
    // Replacement availability: a pre-release replacement's own introduction; for a GA kind, the
    // first minor whose sources have it, unless it predates the oldest version read (then the
    // hand-kept table says).
    let oldest = inputs.modules.iter().flat_map(|m| m.versions.iter().filter_map(|v| module_minor(v))).min();
    let since_of = |rk: &(String, String, String)| -> Option<Minor> {
        let o = observed.get(rk);
        // The guide's date first: some GA markers date a kind by when the marker was added
        // (authorization.k8s.io/v1 SubjectAccessReview "1.19", served since 1.6).
        served_since
            .get(rk)
            .copied()
            .or_else(|| o.and_then(|o| o.lifecycle.introduced))
            .or_else(|| o.map(|o| o.first_seen).filter(|f| Some(*f) > oldest))
    };
    let mut undated = Vec::new();
    for (k, row) in rows.iter_mut() {
        let Some(rep) = &row.replacement else { continue };
        let rk = key(&rep.group, &rep.version, &rep.kind);
        let since = since_of(&rk);
        let hand_kept = inputs.rows.iter().any(|r| key(&r.group, &r.version, &r.kind) == *k);
        if since.is_none() && !hand_kept {
            undated.push(format!("{}/{} {}", rep.group, rep.version, rep.kind));
        }
        if row.replacement_available_in.is_none() {
            row.replacement_available_in = since;
        }
    }
    if !undated.is_empty() {
        undated.sort();
        undated.dedup();
        return Err(format!(
            "no marker, source or servedSince entry says since when these replacements are served: {}; add them to servedSince",
            undated.join(", ")
        ));
    }
    let mut apis: Vec<ApiEntry> = rows.into_values().collect();
    apis.sort_by(|a, b| {
        let removal = |e: &ApiEntry| e.removed_in.unwrap_or(Minor::new(u32::MAX, 0));
        (removal(a), &a.group, &a.version, &a.kind).cmp(&(removal(b), &b.group, &b.version, &b.kind))
    });
    Ok(ApisFile { schema_version: super::SCHEMA_VERSION, data_date: inputs.data_date, apis })
}

/// `apis.yaml` as text: a header saying how it is made, then one block per row.
pub fn render(file: &ApisFile, inputs: &Inputs) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"));
    let mut out = String::new();
    out.push_str("# Generated by tools/generate-apis; do not edit. Edit tools/apis/inputs.yaml and run it again.\n");
    out.push_str("# Rows come from the prerelease-lifecycle markers of ");
    let modules: Vec<String> = inputs
        .modules
        .iter()
        .map(|m| format!("{}@{}", m.module, m.versions.last().map(String::as_str).unwrap_or("?")))
        .collect();
    out.push_str(&modules.join(", "));
    out.push_str(" (and older versions for types since deleted);\n# `source` is the marker file a row was read from, `guide` the deprecation guide's section.\n");
    out.push_str(&format!(
        "schemaVersion: {}\ndataDate: {}\napis:\n",
        file.schema_version,
        q(&file.data_date.to_string())
    ));
    for a in &file.apis {
        out.push_str(&format!("  - group: {}\n", q(&a.group)));
        out.push_str(&format!("    version: {}\n", a.version));
        out.push_str(&format!("    kind: {}\n", a.kind));
        out.push_str(&format!("    resource: {}\n", a.resource));
        out.push_str(&format!("    namespaced: {}\n", a.namespaced));
        let minor = |name: &str, m: Option<Minor>, out: &mut String| {
            if let Some(m) = m {
                out.push_str(&format!("    {name}: \"{m}\"\n"));
            }
        };
        minor("introducedIn", a.introduced_in, &mut out);
        minor("deprecatedIn", a.deprecated_in, &mut out);
        minor("removedIn", a.removed_in, &mut out);
        if let Some(r) = &a.replacement {
            out.push_str(&format!(
                "    replacement: {{ group: {}, version: {}, kind: {} }}\n",
                q(&r.group),
                r.version,
                r.kind
            ));
        }
        minor("replacementAvailableIn", a.replacement_available_in, &mut out);
        if a.served_by_default == Some(false) {
            out.push_str("    servedByDefault: false\n");
        }
        if let Some(n) = &a.notes {
            out.push_str(&format!("    notes: {}\n", q(n)));
        }
        if let Some(g) = &a.guide {
            out.push_str(&format!("    guide: {g}\n"));
        }
        out.push_str(&format!("    source: {}\n", a.source));
    }
    out
}

/// Where `go` keeps downloaded modules: `GOMODCACHE`, else `GOPATH/pkg/mod`, else `~/go/pkg/mod`.
pub fn go_module_cache() -> Option<PathBuf> {
    if let Ok(out) = std::process::Command::new("go").args(["env", "GOMODCACHE"]).output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !dir.is_empty() {
            return Some(PathBuf::from(dir));
        }
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join("go/pkg/mod"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/apis/inputs.yaml")).unwrap();
        serde_saphyr::from_str(&text).unwrap()
    }

    /// `apis.yaml` is exactly what the generator makes from the pinned module versions. The
    /// modules come from the Go module cache (`tools/generate-apis` downloads them); without
    /// them the test says so and passes, unless the real components are required.
    #[test]
    fn apis_yaml_is_generated_from_the_markers() {
        let inputs = inputs();
        let required = std::env::var("K8S_UPGRADE_REQUIRE_REAL").as_deref() == Ok("1");
        let Some(cache) = go_module_cache() else {
            assert!(!required, "no Go module cache found");
            eprintln!("skipped: no Go module cache; run tools/generate-apis");
            return;
        };
        let observed = match read_modules(&inputs, &cache) {
            Ok(o) => o,
            Err(e) if !required => {
                eprintln!("skipped: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let file = generate(&inputs, &observed).unwrap();
        let text = render(&file, &inputs);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/upgrade-paths/apis.yaml");
        if std::env::var("K8S_UPGRADE_WRITE_APIS").as_deref() == Ok("1") {
            std::fs::write(path, &text).unwrap();
            return;
        }
        let current = std::fs::read_to_string(path).unwrap();
        if current != text {
            let diff: Vec<String> = current
                .lines()
                .zip(text.lines())
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .take(5)
                .map(|(i, (a, b))| format!("line {}: file {a:?} / generated {b:?}", i + 1))
                .collect();
            panic!(
                "upgrade-paths/apis.yaml differs from the generator's output ({} vs {} lines); run tools/generate-apis. First differences:\n{}",
                current.lines().count(),
                text.lines().count(),
                diff.join("\n")
            );
        }
    }

    #[test]
    fn a_type_deleted_from_the_sources_is_removed_where_it_disappeared() {
        let mut inputs = inputs();
        inputs.rows.clear();
        inputs.guide.clear();
        let l = Lifecycle {
            group: "storagemigration.k8s.io".into(),
            version: "v1alpha1".into(),
            kind: "StorageVersionMigration".into(),
            namespaced: false,
            introduced: Some(Minor::new(1, 30)),
            deprecated: Some(Minor::new(1, 33)),
            removed: Some(Minor::new(1, 36)),
            replacement: None,
        };
        let mut observed = Observations::new();
        observed.insert(
            ("storagemigration.k8s.io".into(), "v1alpha1".into(), "StorageVersionMigration".into()),
            Observed {
                lifecycle: l,
                source: "https://example.invalid/x".into(),
                first_seen: Minor::new(1, 30),
                last_seen: Minor::new(1, 34),
            },
        );
        let file = generate(&inputs, &observed).unwrap();
        let row = &file.apis[0];
        assert_eq!(row.removed_in, Some(Minor::new(1, 35)));
        assert_eq!(row.served_by_default, Some(false));
        assert_eq!(row.resource, "storageversionmigrations");
    }
}
