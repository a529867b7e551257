//! PATCH bodies: a strategic merge patch that merges the well-known keyed lists of core types,
//! and JSON patch (RFC 6902). JSON merge patch (RFC 7396) is `json_patch::merge` itself.
//!
//! The `json-patch` crate (already in the tree as kube-core's dependency) does the work for
//! RFC 6902 and RFC 7396; only strategic merge is written here, because it is Kubernetes' own
//! format (keyed lists merged by key, `$patch: delete`) and no crate implements it.

use serde::Deserialize;
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

/// Why a JSON patch was refused, in the apiserver's two classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonPatchError {
    /// The body is not a list of operation objects: the apiserver answers 400 BadRequest,
    /// "error decoding patch: ..." with Go's decoding message.
    Decode(String),
    /// An operation failed or is malformed: 422 Invalid with a generic message (the apiserver
    /// does not pass the patch library's reason on). The reason is kept for tests and logs.
    Apply(String),
}

/// Go's name for a JSON value's type in an unmarshal error.
fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
    }
}

/// RFC 6902: add, remove, replace, move, copy and test, all or nothing (on an error `target` is
/// left as it was), refused as the apiserver refuses: see [`JsonPatchError`]. `null` is an empty
/// patch, as Go decodes it.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), JsonPatchError> {
    let list = match ops {
        Value::Null => return Ok(()),
        Value::Array(list) => list,
        other => {
            return Err(JsonPatchError::Decode(format!(
                "json: cannot unmarshal {} into Go value of type []handlers.jsonPatchOp",
                go_kind(other)
            )));
        }
    };
    if let Some(bad) = list.iter().find(|op| !op.is_object() && !op.is_null()) {
        return Err(JsonPatchError::Decode(format!(
            "json: cannot unmarshal {} into Go value of type handlers.jsonPatchOp",
            go_kind(bad)
        )));
    }
    let ops = list
        .iter()
        .enumerate()
        .map(|(i, op)| {
            json_patch::PatchOperation::deserialize(op).map_err(|e| {
                let kind = op.get("op").and_then(Value::as_str).unwrap_or("?");
                JsonPatchError::Apply(format!("JSON patch operation {i} ({kind}) is malformed: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ops = json_patch::Patch(ops);
    json_patch::patch(target, &ops).map_err(|e| {
        let kind = list.get(e.operation).and_then(|op| op.get("op")).and_then(Value::as_str).unwrap_or("?");
        JsonPatchError::Apply(format!(
            "JSON patch operation {} ({kind}) failed at path '{}': {}",
            e.operation, e.path, e.kind
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_null_removes() {
        // The callers' merge patch, pinned for what the apiserver's does: null removes a key,
        // objects merge, lists replace.
        let mut node = json!({"spec": {"unschedulable": true, "podCIDR": "10.0.0.0/24", "taints": [1, 2]}});
        json_patch::merge(&mut node, &json!({"spec": {"unschedulable": null, "taints": [3]}}));
        assert_eq!(node, json!({"spec": {"podCIDR": "10.0.0.0/24", "taints": [3]}}));
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
        json_patch(
            &mut v,
            &json!([
                {"op": "copy", "from": "/list/0", "path": "/spec", "value": "ignored"},
                {"op": "move", "from": "/metadata/labels/k8s-upgrade.dev~1state", "path": "/metadata/state"}
            ]),
        )
        .unwrap();
        assert_eq!(v, json!({"metadata": {"labels": {}, "state": "x"}, "list": [9, 2, 3], "spec": 9}));
    }

    #[test]
    fn json_patch_refusals_name_the_op_and_path_and_change_nothing() {
        let before = json!({"list": [9, 2, 3], "spec": {"replicas": 1}});
        let mut v = before.clone();
        let err = json_patch(
            &mut v,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "test", "path": "/list/0", "value": 1}
            ]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            JsonPatchError::Apply("JSON patch operation 1 (test) failed at path '/list/0': value did not match".into())
        );
        assert_eq!(v, before, "a failed patch applies none of its operations");
        for (ops, want) in [
            (json!([{"op": "remove", "path": "/nope/x"}]), "operation 0 (remove) failed at path '/nope/x'"),
            (json!([{"op": "replace", "path": "/spec/nope", "value": 1}]), "(replace) failed at path '/spec/nope'"),
            (json!([{"op": "add", "path": "/list/9", "value": 1}]), "(add) failed at path '/list/9'"),
            (json!([{"op": "remove", "path": ""}]), "(remove) failed at path ''"),
            (json!([{"op": "move", "from": "/spec", "path": "/spec/inner"}]), "(move) failed at path '/spec/inner'"),
            (json!([{"op": "frob", "path": "/x"}]), "operation 0 (frob) is malformed: unknown variant `frob`"),
            (json!([{"op": "add", "path": "/x"}]), "operation 0 (add) is malformed: missing field `value`"),
            (json!([{"path": "/x", "value": 1}]), "operation 0 (?) is malformed"),
            (json!([{"op": "add", "path": "x", "value": 1}]), "operation 0 (add) is malformed"),
            (
                json!([{"op": "copy", "from": "/nope", "path": "/x"}]),
                "(copy) failed at path '/x': \"from\" path is invalid",
            ),
        ] {
            let JsonPatchError::Apply(err) = json_patch(&mut v, &ops).unwrap_err() else { panic!("{ops}") };
            assert!(err.contains(want), "{ops}: {err}");
            assert_eq!(v, before, "{ops}");
        }
        // A body that is not a list of objects does not decode, worded as Go's decoder words it.
        for (ops, want) in [
            (
                json!({"op": "add", "path": "/x", "value": 1}),
                "cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
            ),
            (json!("add"), "cannot unmarshal string into Go value of type []handlers.jsonPatchOp"),
            (json!([1]), "cannot unmarshal number into Go value of type handlers.jsonPatchOp"),
        ] {
            assert_eq!(json_patch(&mut v, &ops), Err(JsonPatchError::Decode(format!("json: {want}"))), "{ops}");
        }
        json_patch(&mut v, &Value::Null).unwrap();
        assert_eq!(v, before, "null is an empty patch");
        // The whole document is the root path: replace swaps it, as the apiserver allows.
        json_patch(&mut v, &json!([{"op": "replace", "path": "", "value": {"a": 1}}])).unwrap();
        assert_eq!(v, json!({"a": 1}));
    }
}
