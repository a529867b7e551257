//! The rewrite of a stored manifest, as `helm mapkubeapis` does it: each YAML document whose
//! `apiVersion` and `kind` the catalog says stop being served by the target moves to the version
//! the planner chooses for it ([`ServedApis::migrations`]: served now and as far towards the
//! target as any, through interim versions where the chain needs them); a document whose API has
//! no replacement is dropped; every other byte of the manifest stays as it was. Documents are
//! read as Helm renders them (block style, `apiVersion:` and `kind:` at the start of a line); a
//! document written another way (flow style, JSON) is left alone.

use std::ops::Range;

use crate::catalog::Gvk;
use crate::catalog::served::ServedApis;
use crate::version::Minor;

/// What happens to one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Keep,
    /// Its `apiVersion` becomes this one.
    Move(String),
    /// Nothing replaces its API: the document goes.
    Drop,
}

/// One document the rewrite changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: String,
    /// `metadata.name`, when the document gives one plainly.
    pub name: Option<String>,
    pub from: String,
    /// `None`: dropped.
    pub to: Option<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name.as_deref().map(|n| format!(" {n}")).unwrap_or_default();
        match &self.to {
            Some(to) => write!(f, "{} {}{name} → {to}", self.from, self.kind),
            None => write!(f, "{} {}{name} dropped (no replacement)", self.from, self.kind),
        }
    }
}

/// Where the cluster is and where it goes: `now` is the minor it runs, `hops` the control-plane
/// hops of the plan (the planner's own; none when it stays), `before` the minor whose removals
/// the rewrite must be done for (the hop the step precedes, or the target).
#[derive(Debug, Clone)]
pub struct Target {
    pub now: Minor,
    pub hops: Vec<(Minor, Minor)>,
    pub before: Minor,
}

impl Target {
    /// Every minor from `now` to `to`, one hop each (what `helm-fix --to` means); `to == now`:
    /// only the APIs `now` already does not serve.
    pub fn minor_by_minor(now: Minor, to: Minor) -> Target {
        let hops = (now.minor..to.minor.max(now.minor))
            .map(|m| (Minor::new(now.major, m), Minor::new(now.major, m + 1)))
            .collect();
        Target { now, hops, before: to.max(now) }
    }
}

fn gvk_of(api_version: &str, kind: &str) -> Gvk {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Gvk { group: group.to_string(), version: version.to_string(), kind: kind.to_string() }
}

/// The planner's decision for an object of `api_version` `kind`: the moves it must make along
/// the hops, those before `before`, as far as versions served now reach (an interim version's
/// next move waits for the step before its own hop).
pub fn decide(served: &ServedApis, target: &Target, api_version: &str, kind: &str) -> Decision {
    let start = gvk_of(api_version, kind);
    // With no hop, a plan that stays: only what the current version already does not serve.
    let hops = if target.hops.is_empty() { vec![(target.now, target.now)] } else { target.hops.clone() };
    let mut current = start.clone();
    for mv in served.migrations(&start, &hops) {
        if hops[mv.hop].1 > target.before {
            break;
        }
        match mv.to {
            None => return Decision::Drop,
            Some(to) if served.serves(&to, target.now) => current = to,
            Some(_) => break,
        }
    }
    if current == start { Decision::Keep } else { Decision::Move(current.api_version()) }
}

/// The byte ranges of the manifest's documents: each from the start of its `---` line (or of the
/// text) to the start of the next one.
fn documents(text: &str) -> Vec<Range<usize>> {
    let mut starts = vec![0];
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let separator = bare == "---" || bare.strip_prefix("---").is_some_and(|r| r.starts_with([' ', '\t']));
        if separator && at > 0 {
            starts.push(at);
        }
        at += line.len();
    }
    let mut out: Vec<Range<usize>> = starts.windows(2).map(|w| w[0]..w[1]).collect();
    out.push(*starts.last().unwrap_or(&0)..text.len());
    out
}

/// A top-level scalar field of a document: its value and the byte range of the value (inside
/// any quotes) relative to the document.
fn field(doc: &str, key: &str) -> Option<(String, Range<usize>)> {
    let mut at = 0;
    for line in doc.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            let value_start = at + key.len() + 1;
            let trimmed = rest.trim_start();
            let lead = rest.len() - trimmed.len();
            let bare = trimmed.trim_end_matches(['\n', '\r']);
            let bare = match bare.find(" #") {
                Some(i) => &bare[..i],
                None => bare,
            }
            .trim_end();
            let (value, offset) = match bare.chars().next() {
                Some(q @ ('"' | '\'')) if bare.len() >= 2 && bare.ends_with(q) => (&bare[1..bare.len() - 1], 1),
                _ => (bare, 0),
            };
            if value.is_empty() {
                return None;
            }
            let start = value_start + lead + offset;
            return Some((value.to_string(), start..start + value.len()));
        }
        at += line.len();
    }
    None
}

/// `metadata.name` when the document writes it plainly (`metadata:` then an indented `name:`).
fn metadata_name(doc: &str) -> Option<String> {
    let mut lines = doc.lines().skip_while(|l| !l.starts_with("metadata:"));
    lines.next()?;
    let mut indent = None;
    for l in lines {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        let n = l.len() - l.trim_start().len();
        if n == 0 {
            return None;
        }
        if *indent.get_or_insert(n) != n {
            continue;
        }
        if let Some(v) = l.trim_start().strip_prefix("name:") {
            return Some(v.trim().trim_matches(['"', '\'']).to_string()).filter(|v| !v.is_empty());
        }
    }
    None
}

/// The manifest rewritten as `decide(apiVersion, kind)` says, and what changed.
pub fn rewrite(manifest: &str, mut decide: impl FnMut(&str, &str) -> Decision) -> (String, Vec<Change>) {
    let mut out = String::with_capacity(manifest.len());
    let mut changes = Vec::new();
    for range in documents(manifest) {
        let doc = &manifest[range];
        let (Some((api_version, span)), Some((kind, _))) = (field(doc, "apiVersion"), field(doc, "kind")) else {
            out.push_str(doc);
            continue;
        };
        match decide(&api_version, &kind) {
            Decision::Keep => out.push_str(doc),
            Decision::Move(to) => {
                out.push_str(&doc[..span.start]);
                out.push_str(&to);
                out.push_str(&doc[span.end..]);
                changes.push(Change { kind, name: metadata_name(doc), from: api_version, to: Some(to) });
            }
            Decision::Drop => changes.push(Change { kind, name: metadata_name(doc), from: api_version, to: None }),
        }
    }
    (out, changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn m(minor: u32) -> Minor {
        Minor::new(1, minor)
    }

    const MANIFEST: &str = "---\n# Source: reports/templates/pdb.yaml\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: reports\n  namespace: reports\nspec:\n  minAvailable: 1\n---\n# Source: reports/templates/psp.yaml\napiVersion: policy/v1beta1\nkind: PodSecurityPolicy\nmetadata:\n  name: restricted\nspec: {}\n---\n# Source: reports/templates/cronjob.yaml\napiVersion: \"batch/v1beta1\"   # quoted, with a comment\nkind: CronJob\nmetadata:\n  labels:\n    name: not-this\n  name: nightly-report\nspec:\n  jobTemplate:\n    apiVersion: batch/v1beta1\n---\n# Source: reports/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  apiVersion: policy/v1beta1\n";

    fn rewrite_to(now: u32, to: u32) -> (String, Vec<Change>) {
        let served = ServedApis::new(&Catalog::embedded().unwrap().apis);
        let target = Target::minor_by_minor(m(now), m(to));
        rewrite(MANIFEST, |a, k| decide(&served, &target, a, k))
    }

    #[test]
    fn removed_apis_move_a_document_without_replacement_goes_and_nothing_else_changes() {
        let (out, changes) = rewrite_to(24, 25);
        let expected = MANIFEST
            .replace("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget", "apiVersion: policy/v1\nkind: PodDisruptionBudget")
            .replace("---\n# Source: reports/templates/psp.yaml\napiVersion: policy/v1beta1\nkind: PodSecurityPolicy\nmetadata:\n  name: restricted\nspec: {}\n", "")
            .replace("apiVersion: \"batch/v1beta1\"   # quoted", "apiVersion: \"batch/v1\"   # quoted");
        assert_eq!(out, expected);
        let said: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "policy/v1beta1 PodDisruptionBudget reports → policy/v1",
                "policy/v1beta1 PodSecurityPolicy restricted dropped (no replacement)",
                "batch/v1beta1 CronJob nightly-report → batch/v1",
            ]
        );
    }

    #[test]
    fn a_target_before_the_removal_changes_nothing_and_the_current_version_fixes_only_what_it_lacks() {
        assert_eq!(rewrite_to(22, 24), (MANIFEST.to_string(), vec![]));
        // At 1.25 with no hop: what 1.25 no longer serves.
        let (_, changes) = rewrite_to(25, 25);
        assert_eq!(changes.len(), 3, "{changes:?}");
    }

    #[test]
    fn an_interim_version_is_used_when_the_final_one_is_not_served_yet() {
        let served = ServedApis::new(&Catalog::embedded().unwrap().apis);
        let doc = "apiVersion: flowcontrol.apiserver.k8s.io/v1beta1\nkind: FlowSchema\nmetadata:\n  name: f\n";
        // From 1.25 to 1.29: v1beta2 now (v1beta3 is not served at 1.25); v1beta3 waits for 1.28.
        let target = Target::minor_by_minor(m(25), m(29));
        let (out, _) = rewrite(doc, |a, k| decide(&served, &target, a, k));
        assert!(out.starts_with("apiVersion: flowcontrol.apiserver.k8s.io/v1beta2\n"), "{out}");
        let target = Target::minor_by_minor(m(28), m(29));
        let (out2, _) = rewrite(&out, |a, k| decide(&served, &target, a, k));
        assert!(out2.starts_with("apiVersion: flowcontrol.apiserver.k8s.io/v1beta3\n"), "{out2}");
        // A step before the first hop of a longer plan rewrites only for that hop.
        let plan = Target { now: m(25), hops: Target::minor_by_minor(m(25), m(29)).hops, before: m(26) };
        assert_eq!(
            decide(&served, &plan, "flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema"),
            Decision::Move("flowcontrol.apiserver.k8s.io/v1beta2".into())
        );
        assert_eq!(decide(&served, &plan, "batch/v1", "CronJob"), Decision::Keep);
    }

    #[test]
    fn documents_split_on_separator_lines_only() {
        let text = "a: 1\n---\nb: 2\n--- # c\nc: 3\n----\nd\n";
        let docs: Vec<&str> = documents(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(docs, ["a: 1\n", "---\nb: 2\n", "--- # c\nc: 3\n----\nd\n"]);
        assert_eq!(documents("").len(), 1);
    }
}
