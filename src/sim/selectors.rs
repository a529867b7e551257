//! Field selectors, parsed from query strings as apimachinery's `fields.ParseSelector` parses
//! them (escapes, `=`, `==`, `!=`, its messages), held to the field labels the apiserver supports
//! for each kind (its field label conversion functions: `spec.nodeName` for pods,
//! `spec.unschedulable` for nodes, `type` for secrets, and `metadata.name` and
//! `metadata.namespace` for most others), and matched server-side against stored objects the
//! way each kind's selectable fields read them (`metadata.name`, `metadata.namespace`,
//! `spec.nodeName`, `status.phase` from extracted metadata; other fields from the object, with
//! the apiserver's defaults: `false` for an absent boolean, `0` for an absent count). Label
//! selectors live in `crate::labels`.

use serde_json::Value;

pub use crate::labels::LabelSelector;

use super::registry::ResourceDef;

/// One requirement: field, whether it must equal (or differ from) the value, and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    field: String,
    eq: bool,
    value: String,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<Term>);

/// `splitTerms`: commas not escaped by a backslash separate terms (escapes are kept).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return vec![];
    }
    let mut terms = Vec::new();
    let (mut start, mut in_slash) = (0, false);
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// `UnescapeValue`: `\\`, `\,` and `\=` are the only escapes; a bare `,` or `=` is an error.
fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => return Err(format!("invalid field selector: invalid escape sequence: \\{c}")),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune as its number.
            ',' | '=' => return Err(format!("invalid field selector: unescaped character in value: {}", c as u32)),
            c => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".into());
    }
    Ok(out)
}

/// How the apiserver converts a field label for one kind: the label it means, or its refusal.
fn convert_label(def: &ResourceDef, label: &str) -> Result<String, String> {
    let not_supported = || Err(format!("field label not supported: {label}"));
    let one_of = |labels: &[&str]| if labels.contains(&label) { Ok(label.to_string()) } else { not_supported() };
    if def.custom {
        return match label {
            "metadata.name" => Ok(label.into()),
            "metadata.namespace" if def.namespaced => Ok(label.into()),
            _ => not_supported(),
        };
    }
    match (def.group.as_str(), def.version.as_str(), def.kind.as_str()) {
        ("", "v1", "Pod") => match label {
            // For old v1 clients.
            "spec.host" => Ok("spec.nodeName".into()),
            _ => one_of(&[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ]),
        },
        ("", "v1", "Node") => one_of(&["metadata.name", "spec.unschedulable"]),
        ("", "v1", "ReplicationController") => one_of(&["metadata.name", "metadata.namespace", "status.replicas"]),
        ("", "v1", "Event") => one_of(&[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "metadata.namespace",
            "metadata.name",
        ]),
        ("", "v1", "Namespace") => one_of(&["status.phase", "metadata.name"]),
        ("", "v1", "Secret") => one_of(&["type", "metadata.namespace", "metadata.name"]),
        ("", "v1", "Service") => one_of(&["metadata.namespace", "metadata.name", "spec.clusterIP", "spec.type"]),
        ("events.k8s.io", "v1" | "v1beta1", "Event") => match label {
            "reason" | "type" | "metadata.namespace" | "metadata.name" => Ok(label.into()),
            "reportingController" => Ok("reportingComponent".into()),
            _ => match label.strip_prefix("regarding.") {
                Some(f @ ("kind" | "namespace" | "name" | "uid" | "apiVersion" | "resourceVersion" | "fieldPath")) => {
                    Ok(format!("involvedObject.{f}"))
                }
                _ => not_supported(),
            },
        },
        ("apps", v @ ("v1beta1" | "v1beta2"), "StatefulSet") => match label {
            "metadata.name" | "metadata.namespace" | "status.successful" => Ok(label.into()),
            _ => Err(format!("field label not supported for apps{v}.StatefulSet: {label}")),
        },
        ("batch", "v1", "Job") => match label {
            "metadata.name" | "metadata.namespace" | "status.successful" => Ok(label.into()),
            _ => Err(format!("field label \"{label}\" not supported for Job")),
        },
        ("batch", "v1beta1", kind @ ("Job" | "JobTemplate" | "CronJob")) => match label {
            "metadata.name" | "metadata.namespace" | "status.successful" => Ok(label.into()),
            _ => Err(format!("field label \"{label}\" not supported for \"{kind}\"")),
        },
        ("certificates.k8s.io", _, "CertificateSigningRequest") => one_of(&["metadata.name", "spec.signerName"]),
        ("resource.k8s.io", v, "ResourceSlice") => match label {
            "metadata.name" | "spec.nodeName" | "spec.driver" => Ok(label.into()),
            _ => Err(format!("field label not supported for resource.k8s.io/{v}, Kind=ResourceSlice: {label}")),
        },
        // Every other built-in kind: the default conversion.
        _ => match label {
            "metadata.name" | "metadata.namespace" => Ok(label.into()),
            _ => Err(format!(
                "\"{label}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            )),
        },
    }
}

impl FieldSelector {
    /// Parses a selector as `fields.ParseSelector` does (no check of the field labels yet; see
    /// [`FieldSelector::for_resource`]). The error is the apiserver's message.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            // No escaping on the left: the first operator splits the term.
            let split = part.char_indices().find_map(|(i, _)| {
                let rest = &part[i..];
                ["!=", "==", "="].into_iter().find(|op| rest.starts_with(op)).map(|op| (i, op))
            });
            let Some((i, op)) = split else {
                return Err(format!("invalid selector: '{s}'; can't understand '{part}'"));
            };
            let value = unescape(&part[i + op.len()..])?;
            terms.push(Term { field: part[..i].to_string(), eq: op != "!=", value });
        }
        Ok(FieldSelector(terms))
    }

    /// Holds every field label to what the apiserver supports for `def`'s kind, mapping the
    /// aliases it maps (`spec.host`, `regarding.*`); the error is its message (a 400).
    pub fn for_resource(self, def: &ResourceDef) -> Result<Self, String> {
        self.0
            .into_iter()
            .map(|t| Ok(Term { field: convert_label(def, &t.field)?, ..t }))
            .collect::<Result<Vec<_>, String>>()
            .map(FieldSelector)
    }

    /// The value a `spec.nodeName=X` requirement asks for, for index lookups.
    pub fn node_name(&self) -> Option<&str> {
        // The index holds bound pods only; `spec.nodeName=` (unbound) is a plain filter.
        self.0.iter().find(|t| t.field == "spec.nodeName" && t.eq && !t.value.is_empty()).map(|t| t.value.as_str())
    }

    /// Matches a stored object, from its extracted fields where possible.
    pub fn matches_stored(&self, obj: &super::store::Stored) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let m = &obj.meta;
        let fast = self.0.iter().all(|t| {
            matches!(t.field.as_str(), "metadata.name" | "metadata.namespace" | "spec.nodeName" | "status.phase")
        });
        if !fast {
            return self.matches(&obj.value());
        }
        self.0.iter().all(|t| {
            let got: &str = match t.field.as_str() {
                "metadata.name" => &m.name,
                "metadata.namespace" => &m.namespace,
                "spec.nodeName" => &m.node_name,
                _ => &m.phase,
            };
            (got == t.value) == t.eq
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|t| (selectable_field(obj, &t.field) == t.value) == t.eq)
    }
}

/// A field as the apiserver's selectable field sets read it: the string at its path, with the
/// defaults and derivations of `GetAttrs` (absent booleans are `false`, absent counts `0`, a
/// pod's IP is its first `podIPs` entry, an event's source falls back to its reporting
/// component). A supported label with no such field is the empty string.
fn selectable_field(obj: &Value, field: &str) -> String {
    let at = |p: &str| -> Option<String> {
        match obj.pointer(p) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    };
    match field {
        "spec.unschedulable" | "spec.hostNetwork" => {
            at(&format!("/{}", field.replace('.', "/"))).unwrap_or_else(|| "false".into())
        }
        "status.successful" => at("/status/succeeded").unwrap_or_else(|| "0".into()),
        "status.replicas" => at("/status/replicas").unwrap_or_else(|| "0".into()),
        "status.podIP" => at("/status/podIPs/0/ip").or_else(|| at("/status/podIP")).unwrap_or_default(),
        // Accepted as a label, but not among the pod's selectable fields.
        "status.podIPs" => String::new(),
        "source" => at("/source/component")
            .filter(|s| !s.is_empty())
            .or_else(|| at("/reportingComponent"))
            .or_else(|| at("/reportingController"))
            .unwrap_or_default(),
        "reportingComponent" => at("/reportingComponent").or_else(|| at("/reportingController")).unwrap_or_default(),
        _ => at(&format!("/{}", field.replace('.', "/"))).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn obj(labels: &BTreeMap<String, String>) -> Value {
        json!({"metadata": {"labels": labels}})
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn equality_and_set_based() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        for (sel, want) in [
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("app in (web, api)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing,app in (web)", true),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches_value(&obj(&l)), want, "{sel}");
        }
        assert!(LabelSelector::parse("a in x").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn from_json_selector() {
        let s = LabelSelector::from_json(&json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]})).unwrap();
        assert!(s.matches_value(&obj(&labels(&[("app", "web"), ("tier", "front")]))));
        assert!(!s.matches_value(&obj(&labels(&[("app", "web")]))));
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(FieldSelector::parse("spec.nodeName=n1").unwrap().matches(&pod));
        assert!(!FieldSelector::parse("spec.nodeName=n2").unwrap().matches(&pod));
        assert!(FieldSelector::parse("status.phase!=Pending,metadata.namespace=default").unwrap().matches(&pod));
        assert_eq!(FieldSelector::parse("spec.nodeName=n1").unwrap().node_name(), Some("n1"));
        assert!(FieldSelector::parse("spec.nodeName").is_err());
    }

    fn registry() -> super::super::registry::Registry {
        let catalog = crate::catalog::Catalog::embedded().unwrap();
        let extra = super::super::registry::ExtraKind {
            group: "example.com".into(),
            version: "v1".into(),
            kind: "Widget".into(),
            resource: "widgets".into(),
            namespaced: false,
        };
        super::super::registry::Registry::for_version(crate::version::Minor::new(1, 31), &catalog, &[extra])
    }

    fn resolve(
        reg: &super::super::registry::Registry,
        group: &str,
        resource: &str,
        sel: &str,
    ) -> Result<FieldSelector, String> {
        let def = reg
            .defs
            .iter()
            .find(|d| d.group == group && d.resource == resource && !d.version.contains("beta"))
            .unwrap();
        FieldSelector::parse(sel)?.for_resource(def)
    }

    #[test]
    fn field_labels_are_those_the_apiserver_supports_per_kind() {
        let reg = registry();
        for (group, resource, sel) in [
            ("", "pods", "spec.nodeName=n,status.phase=Running,spec.hostNetwork=false,status.podIP=1.2.3.4"),
            ("", "pods", "spec.restartPolicy=Always,spec.schedulerName=x,spec.serviceAccountName=y"),
            ("", "pods", "status.nominatedNodeName=,status.podIPs=,metadata.namespace=default,metadata.name=p"),
            ("", "nodes", "metadata.name=n,spec.unschedulable=true"),
            ("", "namespaces", "status.phase=Active"),
            ("", "secrets", "type=Opaque"),
            ("", "events", "involvedObject.name=x,reason=Killing,source=kubelet"),
            ("events.k8s.io", "events", "regarding.name=x,reportingController=kubelet"),
            ("", "services", "spec.type=ClusterIP"),
            ("apps", "deployments", "metadata.name=web,metadata.namespace=default"),
            ("batch", "jobs", "status.successful=1"),
            ("example.com", "widgets", "metadata.name=w"),
        ] {
            assert!(
                resolve(&reg, group, resource, sel).is_ok(),
                "{resource}: {sel}: {:?}",
                resolve(&reg, group, resource, sel)
            );
        }
        for (group, resource, sel, message) in [
            ("", "pods", "spec.foo.bar=x", "field label not supported: spec.foo.bar"),
            ("", "nodes", "metadata.namespace=x", "field label not supported: metadata.namespace"),
            (
                "",
                "configmaps",
                "data.x=y",
                "\"data.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            ),
            (
                "apps",
                "deployments",
                "spec.replicas=3",
                "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            ),
            ("batch", "jobs", "spec.x=1", "field label \"spec.x\" not supported for Job"),
            ("example.com", "widgets", "metadata.namespace=x", "field label not supported: metadata.namespace"),
            // No trimming: the label is taken as written.
            ("", "pods", "spec.nodeName =n", "field label not supported: spec.nodeName "),
        ] {
            assert_eq!(resolve(&reg, group, resource, sel).unwrap_err(), message, "{sel}");
        }
        assert_eq!(resolve(&reg, "", "pods", "spec.host=n1").unwrap().node_name(), Some("n1"));
    }

    #[test]
    fn selectable_fields_read_as_the_apiserver_reads_them() {
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        assert!(FieldSelector::parse("spec.unschedulable=false").unwrap().matches(&node));
        assert!(!FieldSelector::parse("spec.unschedulable=true").unwrap().matches(&node));
        let pod = json!({"spec": {}, "status": {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]}});
        assert!(
            FieldSelector::parse("spec.hostNetwork=false,status.podIP=10.0.0.1,status.podIPs=").unwrap().matches(&pod)
        );
        let job = json!({"status": {}});
        assert!(FieldSelector::parse("status.successful=0").unwrap().matches(&job));
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err(),
            "invalid field selector: unescaped character in value: 61"
        );
        assert!(FieldSelector::parse(r"metadata.name=a\,b").unwrap().matches(&json!({"metadata": {"name": "a,b"}})));
        assert_eq!(FieldSelector::parse(r"a=b\x").unwrap_err(), r"invalid field selector: invalid escape sequence: \x");
        assert_eq!(FieldSelector::parse("abc").unwrap_err(), "invalid selector: 'abc'; can't understand 'abc'");
    }
}
