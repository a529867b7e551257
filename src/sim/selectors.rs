//! Field selectors, parsed from query strings and matched server-side against stored objects
//! (`metadata.name`, `metadata.namespace`, `spec.nodeName`, `status.phase` from extracted
//! metadata; other fields by JSON path). Label selectors live in `crate::labels`.

use serde_json::Value;

pub use crate::labels::LabelSelector;

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in crate::labels::split_top_level(s) {
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!("invalid field selector requirement '{part}'"));
            };
            let field = field.trim();
            if !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') || field.is_empty() {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    /// The value a `spec.nodeName=X` requirement asks for, for index lookups.
    pub fn node_name(&self) -> Option<&str> {
        // The index holds bound pods only; `spec.nodeName=` (unbound) is a plain filter.
        self.0.iter().find(|(f, eq, v)| f == "spec.nodeName" && *eq && !v.is_empty()).map(|(_, _, v)| v.as_str())
    }

    /// Matches a stored object, from its extracted fields where possible.
    pub fn matches_stored(&self, obj: &super::store::Stored) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let m = &obj.meta;
        let fast = self.0.iter().all(|(f, _, _)| {
            matches!(f.as_str(), "metadata.name" | "metadata.namespace" | "spec.nodeName" | "status.phase")
        });
        if !fast {
            return self.matches(&obj.value());
        }
        self.0.iter().all(|(field, eq, want)| {
            let got: &str = match field.as_str() {
                "metadata.name" => &m.name,
                "metadata.namespace" => &m.namespace,
                "spec.nodeName" => &m.node_name,
                _ => &m.phase,
            };
            (got == want) == *eq
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, want)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let got = match obj.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            (got == *want) == *eq
        })
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
}
