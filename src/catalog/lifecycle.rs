//! Kubernetes' own API lifecycle markers, read from the Go sources of the API modules.
//!
//! Every pre-release (alpha, beta) type in `k8s.io/api`, `k8s.io/apiextensions-apiserver` and
//! `k8s.io/kube-aggregator` carries generated `APILifecycleIntroduced`, `...Deprecated`,
//! `...Replacement` and `...Removed` methods in `zz_generated.prerelease-lifecycle.go`; the
//! apiserver stops serving a type once its minor reaches the `Removed` value, so these markers are
//! the source of truth for `apis.yaml`. This module owns reading one package: the markers, the
//! group name from `register.go`, and from `types.go` which types are top-level resources
//! (`+genclient`, not `+genclient:noVerbs`) and which are cluster-scoped
//! (`+genclient:nonNamespaced`). It parses the generated code's fixed shapes, never evaluates Go,
//! and is pure: the caller reads the files.

use std::collections::BTreeMap;

use super::schema::Gvk;
use crate::version::Minor;

/// What the markers of one package say about one resource kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub namespaced: bool,
    pub introduced: Option<Minor>,
    pub deprecated: Option<Minor>,
    pub removed: Option<Minor>,
    pub replacement: Option<Gvk>,
}

/// The Go files of one API package that the markers are read from.
pub struct PackageSource<'a> {
    /// `zz_generated.prerelease-lifecycle.go`; GA-only packages have none.
    pub lifecycle: Option<&'a str>,
    /// `register.go` (holds `const GroupName`).
    pub register: &'a str,
    /// Every other non-generated `.go` file of the package (`types.go` and friends).
    pub types: Vec<&'a str>,
}

/// Reads one package; `version` is the package's directory name (`v1beta1`).
pub fn read_package(version: &str, src: &PackageSource<'_>) -> Result<Vec<Lifecycle>, String> {
    let group = group_name(src.register).ok_or("register.go has no `const GroupName = \"...\"`")?;
    let mut markers = match src.lifecycle {
        Some(text) => markers(text)?,
        None => BTreeMap::new(),
    };
    let mut resources = BTreeMap::new();
    for text in &src.types {
        resources.extend(resource_kinds(text));
    }
    let mut out = Vec::new();
    // Every resource, GA ones included (they have no markers): when a GA kind first appears in
    // the sources is when it was first served. Lists, subresources (Scale, Eviction) and
    // payloads (AdmissionReview) are no resources.
    for (kind, namespaced) in resources {
        let m = markers.remove(&kind).unwrap_or_default();
        out.push(Lifecycle {
            group: group.clone(),
            version: version.to_string(),
            kind,
            namespaced,
            introduced: m.introduced,
            deprecated: m.deprecated,
            removed: m.removed,
            replacement: m.replacement,
        });
    }
    Ok(out)
}

#[derive(Default)]
struct Markers {
    introduced: Option<Minor>,
    deprecated: Option<Minor>,
    removed: Option<Minor>,
    replacement: Option<Gvk>,
}

/// The markers per type name, from the generated methods
/// `func (in *Kind) APILifecycleX() ... { return 1, 16 }`.
fn markers(text: &str) -> Result<BTreeMap<String, Markers>, String> {
    let mut out: BTreeMap<String, Markers> = BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(rest) = line.strip_prefix("func (in *") else { continue };
        let Some((kind, rest)) = rest.split_once(") ") else {
            return Err(format!("line {}: unexpected method header {line:?}", n + 1));
        };
        let Some((method, _)) = rest.split_once('(') else {
            return Err(format!("line {}: unexpected method header {line:?}", n + 1));
        };
        let body = lines
            .by_ref()
            .map(|(_, l)| l.trim())
            .find(|l| l.starts_with("return"))
            .ok_or_else(|| format!("line {}: {kind}.{method} has no return", n + 1))?;
        let value = body.trim_start_matches("return").trim();
        let entry = out.entry(kind.to_string()).or_default();
        let minor = || parse_minor(value).ok_or_else(|| format!("line {}: {kind}.{method} returns {value:?}", n + 1));
        match method {
            "APILifecycleIntroduced" => entry.introduced = Some(minor()?),
            "APILifecycleDeprecated" => entry.deprecated = Some(minor()?),
            "APILifecycleRemoved" => entry.removed = Some(minor()?),
            "APILifecycleReplacement" => {
                entry.replacement =
                    Some(parse_gvk(value).ok_or_else(|| format!("line {}: {kind}.{method} returns {value:?}", n + 1))?)
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `1, 16` → 1.16.
fn parse_minor(value: &str) -> Option<Minor> {
    let (major, minor) = value.split_once(',')?;
    Some(Minor::new(major.trim().parse().ok()?, minor.trim().parse().ok()?))
}

/// `schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}`.
fn parse_gvk(value: &str) -> Option<Gvk> {
    let inner = value.strip_prefix("schema.GroupVersionKind{")?.strip_suffix('}')?;
    let mut fields = BTreeMap::new();
    for part in inner.split(',') {
        let (k, v) = part.split_once(':')?;
        fields.insert(k.trim(), v.trim().strip_prefix('"')?.strip_suffix('"')?.to_string());
    }
    Some(Gvk { group: fields.remove("Group")?, version: fields.remove("Version")?, kind: fields.remove("Kind")? })
}

/// `const GroupName = "apps"` (the core group's is empty).
fn group_name(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("const GroupName")?.trim().strip_prefix('=')?.trim();
        Some(rest.strip_prefix('"')?.split('"').next()?.to_string())
    })
}

/// The types a client is generated for (`+genclient`, not `+genclient:noVerbs`), each with
/// whether it is namespaced. The tags sit in the comments above the type, possibly in an earlier
/// comment group separated by a blank line, so every comment since the last code line counts.
fn resource_kinds(text: &str) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    let mut tags: Vec<&str> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(comment) = t.strip_prefix("//") {
            tags.push(comment.trim());
            continue;
        }
        if let Some(rest) = t.strip_prefix("type ")
            && let Some((name, def)) = rest.split_once(' ')
            && def.trim_start().starts_with("struct")
            && tags.contains(&"+genclient")
            && !tags.contains(&"+genclient:noVerbs")
        {
            out.insert(name.to_string(), !tags.contains(&"+genclient:nonNamespaced"));
        }
        tags.clear();
    }
    out
}

/// The lowercase plural a resource of `kind` is served under, by the rule Kubernetes' own
/// generators and most CRDs follow (`Ingress` → `ingresses`, `NetworkPolicy` →
/// `networkpolicies`, `Gateway` → `gateways`); irregular ones are listed where they are used.
pub fn resource_of(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.ends_with('s') || lower.ends_with("ch") || lower.ends_with("sh") || lower.ends_with('x') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y').filter(|s| !s.ends_with(['a', 'e', 'i', 'o', 'u'])) {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFECYCLE: &str = r#"
package v1beta1

// APILifecycleIntroduced is an autogenerated function.
func (in *FlowSchema) APILifecycleIntroduced() (major, minor int) {
	return 1, 20
}

func (in *FlowSchema) APILifecycleDeprecated() (major, minor int) {
	return 1, 23
}

func (in *FlowSchema) APILifecycleReplacement() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta3", Kind: "FlowSchema"}
}

func (in *FlowSchema) APILifecycleRemoved() (major, minor int) {
	return 1, 26
}

func (in *FlowSchemaList) APILifecycleRemoved() (major, minor int) {
	return 1, 26
}

func (in *Eviction) APILifecycleRemoved() (major, minor int) {
	return 1, 25
}
"#;

    const TYPES: &str = r#"
// +genclient
// +genclient:nonNamespaced
// +k8s:prerelease-lifecycle-gen:introduced=1.20

// FlowSchema defines the schema of a group of flows.
type FlowSchema struct {
	metav1.TypeMeta `json:",inline"`
}

// FlowSchemaList is a list of FlowSchema objects.
type FlowSchemaList struct {
}

// +genclient
// +genclient:noVerbs

// Eviction evicts a pod.
type Eviction struct {
}
"#;

    #[test]
    fn reads_markers_scope_and_group() {
        let src = PackageSource {
            lifecycle: Some(LIFECYCLE),
            register: "const GroupName = \"flowcontrol.apiserver.k8s.io\"\n",
            types: vec![TYPES],
        };
        let rows = read_package("v1beta1", &src).unwrap();
        assert_eq!(
            rows,
            vec![Lifecycle {
                group: "flowcontrol.apiserver.k8s.io".into(),
                version: "v1beta1".into(),
                kind: "FlowSchema".into(),
                namespaced: false,
                introduced: Some(Minor::new(1, 20)),
                deprecated: Some(Minor::new(1, 23)),
                removed: Some(Minor::new(1, 26)),
                replacement: Some(Gvk {
                    group: "flowcontrol.apiserver.k8s.io".into(),
                    version: "v1beta3".into(),
                    kind: "FlowSchema".into()
                }),
            }]
        );
    }

    #[test]
    fn the_core_group_is_empty_and_a_broken_marker_is_named() {
        assert_eq!(group_name("const GroupName = \"\"").as_deref(), Some(""));
        let broken = "func (in *X) APILifecycleRemoved() (major, minor int) {\n\treturn one, two\n}\n";
        let err = markers(broken).err().unwrap();
        assert!(err.contains("X.APILifecycleRemoved") && err.contains("one, two"), "{err}");
    }

    #[test]
    fn plural_resource_names() {
        for (kind, resource) in [
            ("Ingress", "ingresses"),
            ("NetworkPolicy", "networkpolicies"),
            ("IPAddress", "ipaddresses"),
            ("ServiceCIDR", "servicecidrs"),
            ("PriorityClass", "priorityclasses"),
            ("Lease", "leases"),
            ("Gateway", "gateways"),
        ] {
            assert_eq!(resource_of(kind), resource);
        }
    }
}
