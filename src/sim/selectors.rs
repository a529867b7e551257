//! Label and field selectors, parsed from query strings and matched server-side.
//!
//! Label selectors accept the equality-based (`a=b`, `a==b`, `a!=b`) and set-based (`a in (x,y)`,
//! `a notin (x)`, `a`, `!a`) forms. Field selectors accept `=`, `==` and `!=` on the fields the
//! apiserver supports for the resources we serve (`metadata.name`, `metadata.namespace`,
//! `spec.nodeName`, `status.phase`, ...), looked up by JSON path in the object.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelReq>);

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 317 && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn parse_set(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let bad = || format!("invalid label selector requirement '{part}'");
            let req = if let Some(k) = part.strip_prefix('!') {
                LabelReq::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelReq::NotEq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==") {
                LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('=') {
                LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                LabelReq::NotIn(k.trim().to_string(), parse_set(rest).ok_or_else(bad)?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                LabelReq::In(k.trim().to_string(), parse_set(rest).ok_or_else(bad)?)
            } else {
                LabelReq::Exists(part.to_string())
            };
            let key = match &req {
                LabelReq::Eq(k, _)
                | LabelReq::NotEq(k, _)
                | LabelReq::In(k, _)
                | LabelReq::NotIn(k, _)
                | LabelReq::Exists(k)
                | LabelReq::NotExists(k) => k,
            };
            if !valid_key(key) {
                return Err(bad());
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// Builds a selector from a `metav1.LabelSelector` JSON value (matchLabels + matchExpressions).
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if let Some(m) = v.get("matchLabels").and_then(Value::as_object) {
            for (k, val) in m {
                reqs.push(LabelReq::Eq(k.clone(), val.as_str().unwrap_or_default().to_string()));
            }
        }
        if let Some(exprs) = v.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                let req = match e.get("operator").and_then(Value::as_str) {
                    Some("In") => LabelReq::In(key, values),
                    Some("NotIn") => LabelReq::NotIn(key, values),
                    Some("Exists") => LabelReq::Exists(key),
                    Some("DoesNotExist") => LabelReq::NotExists(key),
                    other => return Err(format!("unknown selector operator {other:?}")),
                };
                reqs.push(req);
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Matches extracted labels (see `store::Meta`).
    pub fn matches_labels(&self, labels: &[(Box<str>, Box<str>)]) -> bool {
        let get = |k: &str| labels.iter().find(|(lk, _)| &**lk == k).map(|(_, v)| &**v);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }

    /// Matches an object's `metadata.labels` in place (no copies: this runs per pod per budget).
    pub fn matches_value(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        let empty = serde_json::Map::new();
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object).unwrap_or(&empty);
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            LabelReq::Exists(k) => labels.contains_key(k),
            LabelReq::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// The labels of an object as a map.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
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
