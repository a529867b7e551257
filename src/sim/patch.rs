//! PATCH bodies: JSON merge patch (RFC 7386), a strategic merge patch that merges the well-known
//! keyed lists of core types, and JSON patch (RFC 6902).

use serde_json::{Map, Value};

/// Lists that strategic merge merges by a key instead of replacing (the common core ones).
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env" | "imagePullSecrets" => {
            Some("name")
        }
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ports" => Some("containerPort"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// RFC 7386: objects merge recursively, `null` removes a key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Strategic merge: like merge patch, but keyed lists merge element by element and
/// `$patch: delete` removes an element.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" {
            continue;
        }
        match (v, merge_key(k)) {
            (Value::Null, _) => {
                t.remove(k);
            }
            (Value::Array(items), Some(key)) => {
                let existing = t.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
                if !existing.is_array() {
                    *existing = Value::Array(vec![]);
                }
                let list = existing.as_array_mut().expect("array");
                for item in items {
                    let id = item.get(key).cloned();
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    let pos = id.as_ref().and_then(|id| list.iter().position(|e| e.get(key) == Some(id)));
                    match (pos, delete) {
                        (Some(i), true) => {
                            list.remove(i);
                        }
                        (Some(i), false) => strategic_merge_patch(&mut list[i], item),
                        (None, true) => {}
                        (None, false) => list.push(item.clone()),
                    }
                }
            }
            (Value::Object(_), _) => strategic_merge_patch(t.entry(k.clone()).or_insert(Value::Null), v),
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn parent_and_key<'a>(root: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let tokens: Vec<String> = path.split('/').skip(1).map(unescape).collect();
    let (last, init) = tokens.split_last().ok_or_else(|| format!("invalid JSON patch path '{path}'"))?;
    let mut cur = root;
    for t in init {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or_else(|| format!("path '{path}' does not exist"))?,
            Value::Array(a) => {
                let i: usize = t.parse().map_err(|_| format!("invalid array index in '{path}'"))?;
                a.get_mut(i).ok_or_else(|| format!("path '{path}' does not exist"))?
            }
            _ => return Err(format!("path '{path}' does not exist")),
        };
    }
    Ok((cur, last.clone()))
}

/// RFC 6902 operations: add, remove, replace, test (move and copy are rare from clients).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be an array of operations")?;
    for op in ops {
        let path = op.get("path").and_then(Value::as_str).ok_or("a JSON patch operation needs a path")?;
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        if path.is_empty() {
            match kind {
                "replace" | "add" => *target = value,
                _ => return Err(format!("unsupported JSON patch op '{kind}' on the root")),
            }
            continue;
        }
        let (parent, key) = parent_and_key(target, path)?;
        match (kind, parent) {
            ("add", Value::Object(m)) | ("replace", Value::Object(m)) => {
                if kind == "replace" && !m.contains_key(&key) {
                    return Err(format!("path '{path}' does not exist"));
                }
                m.insert(key, value);
            }
            ("add", Value::Array(a)) => {
                if key == "-" {
                    a.push(value);
                } else {
                    let i: usize = key.parse().map_err(|_| format!("invalid array index in '{path}'"))?;
                    if i > a.len() {
                        return Err(format!("index out of range in '{path}'"));
                    }
                    a.insert(i, value);
                }
            }
            ("replace", Value::Array(a)) => {
                let i: usize = key.parse().map_err(|_| format!("invalid array index in '{path}'"))?;
                *a.get_mut(i).ok_or_else(|| format!("index out of range in '{path}'"))? = value;
            }
            ("remove", Value::Object(m)) => {
                m.remove(&key).ok_or_else(|| format!("path '{path}' does not exist"))?;
            }
            ("remove", Value::Array(a)) => {
                let i: usize = key.parse().map_err(|_| format!("invalid array index in '{path}'"))?;
                if i >= a.len() {
                    return Err(format!("index out of range in '{path}'"));
                }
                a.remove(i);
            }
            ("test", parent) => {
                let got = match parent {
                    Value::Object(m) => m.get(&key),
                    Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                };
                if got != Some(&value) {
                    return Err(format!("test failed at '{path}'"));
                }
            }
            (other, _) => return Err(format!("unsupported JSON patch op '{other}' at '{path}'")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_null_removes() {
        let mut node = json!({"spec": {"unschedulable": true, "podCIDR": "10.0.0.0/24"}});
        merge_patch(&mut node, &json!({"spec": {"unschedulable": null}}));
        assert_eq!(node, json!({"spec": {"podCIDR": "10.0.0.0/24"}}));
    }

    #[test]
    fn strategic_merges_keyed_lists() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}});
        strategic_merge_patch(&mut pod, &json!({"spec": {"containers": [{"name": "b", "image": "y:2"}]}}));
        assert_eq!(pod["spec"]["containers"][1]["image"], "y:2");
        assert_eq!(pod["spec"]["containers"][0]["image"], "x:1");
        strategic_merge_patch(&mut pod, &json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}));
        assert_eq!(pod["spec"]["containers"].as_array().unwrap().len(), 1);
        strategic_merge_patch(&mut pod, &json!({"metadata": {"annotations": {"k": "v"}}}));
        assert_eq!(pod["metadata"]["annotations"]["k"], "v");
    }

    #[test]
    fn json_patch_ops() {
        let mut v = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2]});
        json_patch(
            &mut v,
            &json!([
                {"op": "add", "path": "/metadata/labels/k8s-upgrade.dev~1state", "value": "x"},
                {"op": "replace", "path": "/list/0", "value": 9},
                {"op": "add", "path": "/list/-", "value": 3},
                {"op": "remove", "path": "/metadata/labels/a"},
                {"op": "test", "path": "/list/1", "value": 2}
            ]),
        )
        .unwrap();
        assert_eq!(v, json!({"metadata": {"labels": {"k8s-upgrade.dev/state": "x"}}, "list": [9, 2, 3]}));
        assert!(json_patch(&mut v, &json!([{"op": "test", "path": "/list/0", "value": 1}])).is_err());
        assert!(json_patch(&mut v, &json!([{"op": "remove", "path": "/nope/x"}])).is_err());
    }
}
