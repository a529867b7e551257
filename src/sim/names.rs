//! The names and labels the apiserver accepts on an object it stores, kind by kind, as its
//! validation checks them on create (`ValidateObjectMeta` with each kind's name function, then
//! the generic path-segment check every stored object passes): most kinds take a DNS-1123
//! subdomain, namespaces and StatefulSets a DNS-1123 label, Services a DNS-1035 label, RBAC
//! objects, PodDisruptionBudgets and core Events anything that is a path segment. Label keys and
//! values are checked too. Every object the simulator stores goes through this: created through
//! the API, and loaded from a scenario.

use serde_json::Value;

use crate::k8s::validation::{self, go_quote};

/// The name function a kind's validation applies; a name that passes it must still be a path
/// segment (checked after, and reported only when the kind's own check found nothing).
pub fn name_problems(group: &str, resource: &str, name: &str) -> Vec<String> {
    let own = match (group, resource) {
        ("", "namespaces") | ("apps", "statefulsets") => validation::dns1123_label(name),
        ("", "services") => validation::dns1035_label(name),
        ("rbac.authorization.k8s.io", _) | ("policy", "poddisruptionbudgets") | ("", "events") => vec![],
        ("certificates.k8s.io", "certificatesigningrequests") => vec![],
        _ => validation::dns1123_subdomain(name),
    };
    if own.is_empty() { validation::path_segment_name(name) } else { own }
}

/// One field error: the field, the cause's reason, and the detail after the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub reason: &'static str,
    pub detail: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.detail)
    }
}

/// The field errors of an object's name and labels, in the apiserver's order.
pub fn problems(group: &str, resource: &str, obj: &Value) -> Vec<FieldError> {
    let invalid = |field, value: &str, m: String| FieldError {
        field,
        reason: "FieldValueInvalid",
        detail: format!("Invalid value: {}: {m}", go_quote(value)),
    };
    let mut errs = Vec::new();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        errs.push(FieldError {
            field: "metadata.name",
            reason: "FieldValueRequired",
            detail: "Required value: name or generateName is required".into(),
        });
    } else {
        errs.extend(name_problems(group, resource, name).into_iter().map(|m| invalid("metadata.name", name, m)));
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            errs.extend(validation::label_key(k).into_iter().map(|m| invalid("metadata.labels", k, m)));
            let v = v.as_str().unwrap_or_default();
            errs.extend(validation::label_value(v).into_iter().map(|m| invalid("metadata.labels", v, m)));
        }
    }
    errs
}

/// The label errors of a workload's pod template (`spec.template.metadata.labels`), which the
/// apiserver checks on every write of a Deployment, ReplicaSet, StatefulSet, DaemonSet or Job:
/// its pods would carry them.
pub fn template_label_problems(obj: &Value) -> Vec<FieldError> {
    let field = "spec.template.metadata.labels";
    let mut errs = Vec::new();
    for (k, v) in obj.pointer("/spec/template/metadata/labels").and_then(Value::as_object).into_iter().flatten() {
        let invalid = |value: &str, m: String| FieldError {
            field,
            reason: "FieldValueInvalid",
            detail: format!("Invalid value: {}: {m}", go_quote(value)),
        };
        errs.extend(validation::label_key(k).into_iter().map(|m| invalid(k, m)));
        let v = v.as_str().unwrap_or_default();
        errs.extend(validation::label_value(v).into_iter().map(|m| invalid(v, m)));
    }
    errs
}

/// The apiserver's answer to those errors on `Kind.group "name"`: 422 Invalid, one cause each,
/// the message listing them (one as it is, several in brackets).
pub fn refusal(kind: &str, group: &str, name: &str, errs: &[FieldError]) -> super::status::ApiError {
    let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
    let list = match errs {
        [one] => one.to_string(),
        _ => format!("[{}]", errs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    };
    let causes =
        errs.iter().map(|e| serde_json::json!({"reason": e.reason, "message": e.detail, "field": e.field})).collect();
    super::status::ApiError::invalid_causes(
        kind,
        name,
        group,
        format!("{qualified} {} is invalid: {list}", go_quote(name)),
        causes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kind_gets_its_name_rule() {
        let named = |n: &str| json!({"metadata": {"name": n}});
        assert!(problems("", "pods", &named("web-1.x")).is_empty());
        assert!(problems("", "namespaces", &named("a.b"))[0].detail.ends_with("must not contain dots"));
        assert!(!problems("apps", "statefulsets", &named("a.b")).is_empty());
        assert!(!problems("", "services", &named("1abc")).is_empty());
        assert!(problems("rbac.authorization.k8s.io", "clusterroles", &named("system:controller:x")).is_empty());
        assert_eq!(
            problems("rbac.authorization.k8s.io", "roles", &named("a/b"))[0].to_string(),
            "metadata.name: Invalid value: \"a/b\": may not contain '/'"
        );
        assert!(problems("policy", "poddisruptionbudgets", &named("Web_PDB")).is_empty());
        for bad in ["", "x/y", "../etc", "a b;rm", "$(touch x)", "--help", "UPPER", "a\u{1b}[2J"] {
            assert!(!problems("", "nodes", &named(bad)).is_empty(), "{bad:?}");
        }
        assert!(!problems("", "nodes", &named(&"a".repeat(254))).is_empty());
        let labelled = json!({"metadata": {"name": "p", "labels": {"app": "x".repeat(64), "a/b/c": "v"}}});
        assert_eq!(problems("", "pods", &labelled).len(), 2);
        let template = json!({"spec": {"template": {"metadata": {"labels": {"app": "a b"}}}}});
        assert_eq!(template_label_problems(&template)[0].field, "spec.template.metadata.labels");
        assert_eq!(
            refusal("Pod", "", "x/y", &problems("", "pods", &named("x/y"))).message,
            "Pod \"x/y\" is invalid: metadata.name: Invalid value: \"x/y\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
    }
}
