//! Server-side `Table` answers (`meta.k8s.io/v1`), so `kubectl get` shows real columns.

use std::sync::Arc;

use serde_json::{Value, json};

use super::clock::{age, unix_now};
use super::registry::ResourceDef;
use super::store::Stored;

fn col(name: &str, ty: &str, format: &str, priority: u8, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn s(v: &Value, p: &str) -> String {
    match v.pointer(p) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn or_none(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

fn node_status(v: &Value) -> String {
    let ready = v
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| match c["status"].as_str() {
            Some("True") => "Ready",
            Some("False") => "NotReady",
            _ => "Unknown",
        })
        .unwrap_or("Unknown");
    if v.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        format!("{ready},SchedulingDisabled")
    } else {
        ready.to_string()
    }
}

fn node_roles(v: &Value) -> String {
    let mut roles: Vec<String> = v
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/").map(str::to_string)).collect())
        .unwrap_or_default();
    roles.sort();
    or_none(roles.join(","))
}

fn node_address(v: &Value, kind: &str) -> String {
    or_none(
        v.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x["type"] == kind))
            .map(|x| s(x, "/address"))
            .unwrap_or_default(),
    )
}

fn pod_ready(v: &Value) -> String {
    let total = v.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
    let ready = v
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(0, |cs| cs.iter().filter(|c| c["ready"] == true).count());
    format!("{ready}/{total}")
}

fn pod_status(v: &Value) -> String {
    if v.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let reason = s(v, "/status/reason");
    if !reason.is_empty() {
        return reason;
    }
    or_none(s(v, "/status/phase"))
}

fn int_or_string(v: &Value, p: &str) -> String {
    match v.pointer(p) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "N/A".into(),
    }
}

fn columns_and_cells(def: &ResourceDef, v: &Value, now: i64) -> (Vec<Value>, Vec<Value>) {
    let name = s(v, "/metadata/name");
    let created = s(v, "/metadata/creationTimestamp");
    let age = age(&created, now);
    let name_col = col("Name", "string", "name", 0, "Name must be unique within a namespace.");
    let age_col = col(
        "Age",
        "string",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match (def.group.as_str(), def.resource.as_str()) {
        ("", "nodes") => (
            vec![
                name_col,
                col("Status", "string", "", 0, "The status of the node"),
                col("Roles", "string", "", 0, "The roles of the node"),
                age_col,
                col("Version", "string", "", 0, "Kubelet Version reported by the node."),
                col("Internal-IP", "string", "", 1, "List of addresses reachable to the node."),
                col("External-IP", "string", "", 1, "List of addresses reachable to the node."),
                col("OS-Image", "string", "", 1, "OS Image reported by the node from /etc/os-release."),
                col("Kernel-Version", "string", "", 1, "Kernel Version reported by the node."),
                col("Container-Runtime", "string", "", 1, "Container Runtime Version reported by the node."),
            ],
            vec![
                json!(name),
                json!(node_status(v)),
                json!(node_roles(v)),
                json!(age),
                json!(s(v, "/status/nodeInfo/kubeletVersion")),
                json!(node_address(v, "InternalIP")),
                json!(node_address(v, "ExternalIP")),
                json!(s(v, "/status/nodeInfo/osImage")),
                json!(s(v, "/status/nodeInfo/kernelVersion")),
                json!(s(v, "/status/nodeInfo/containerRuntimeVersion")),
            ],
        ),
        ("", "pods") => (
            vec![
                name_col,
                col("Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."),
                col("Status", "string", "", 0, "The aggregate status of the containers in this pod."),
                col("Restarts", "string", "", 0, "The number of times the containers in this pod have been restarted."),
                age_col,
                col("IP", "string", "", 1, "IP address allocated to the pod."),
                col("Node", "string", "", 1, "Name of the Node this pod is assigned to."),
                col("Nominated Node", "string", "", 1, "Name of the node nominated by the scheduler."),
                col("Readiness Gates", "string", "", 1, "Pod readiness gates."),
            ],
            vec![
                json!(name),
                json!(pod_ready(v)),
                json!(pod_status(v)),
                json!("0"),
                json!(age),
                json!(or_none(s(v, "/status/podIP"))),
                json!(or_none(s(v, "/spec/nodeName"))),
                json!("<none>"),
                json!("<none>"),
            ],
        ),
        ("policy", "poddisruptionbudgets") => (
            vec![
                name_col,
                col("Min Available", "string", "", 0, "The minimum number of pods that must be available."),
                col("Max Unavailable", "string", "", 0, "The maximum number of pods that may be unavailable."),
                col(
                    "Allowed Disruptions",
                    "integer",
                    "",
                    0,
                    "Calculated number of pods that may be disrupted at this time.",
                ),
                age_col,
            ],
            vec![
                json!(name),
                json!(int_or_string(v, "/spec/minAvailable")),
                json!(int_or_string(v, "/spec/maxUnavailable")),
                json!(v.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0)),
                json!(age),
            ],
        ),
        ("apps", "deployments" | "statefulsets") => {
            let desired = v.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            let ready = v.pointer("/status/readyReplicas").and_then(Value::as_i64).unwrap_or(0);
            let mut cols = vec![name_col, col("Ready", "string", "", 0, "Number of ready replicas.")];
            let mut cells = vec![json!(name), json!(format!("{ready}/{desired}"))];
            if def.resource == "deployments" {
                cols.push(col("Up-to-date", "integer", "", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."));
                cols.push(col("Available", "integer", "", 0, "Total number of available pods."));
                cells.push(json!(v.pointer("/status/updatedReplicas").and_then(Value::as_i64).unwrap_or(0)));
                cells.push(json!(v.pointer("/status/availableReplicas").and_then(Value::as_i64).unwrap_or(0)));
            }
            cols.push(age_col);
            cells.push(json!(age));
            (cols, cells)
        }
        ("apps", "daemonsets") => (
            vec![
                name_col,
                col("Desired", "integer", "", 0, "The total number of nodes that should be running the daemon pod."),
                col("Current", "integer", "", 0, "The number of nodes running at least one daemon pod."),
                col(
                    "Ready",
                    "integer",
                    "",
                    0,
                    "The number of nodes that should be running the daemon pod and have one ready.",
                ),
                age_col,
            ],
            vec![
                json!(name),
                json!(v.pointer("/status/desiredNumberScheduled").and_then(Value::as_i64).unwrap_or(0)),
                json!(v.pointer("/status/currentNumberScheduled").and_then(Value::as_i64).unwrap_or(0)),
                json!(v.pointer("/status/numberReady").and_then(Value::as_i64).unwrap_or(0)),
                json!(age),
            ],
        ),
        _ => (vec![name_col, age_col], vec![json!(name), json!(age)]),
    }
}

/// A Table of `items` (rows carry PartialObjectMetadata, so `-A` shows namespaces).
pub fn table(def: &ResourceDef, items: &[Arc<Stored>], rv: u64, continue_token: Option<&str>) -> Value {
    let now = unix_now();
    let mut columns = None;
    let mut rows = Vec::with_capacity(items.len());
    for item in items {
        let (cols, cells) = columns_and_cells(def, &item.value(), now);
        columns.get_or_insert(cols);
        rows.push(json!({
            "cells": cells,
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item.value().get("metadata").cloned().unwrap_or(json!({}))},
        }));
    }
    let columns = columns.unwrap_or_else(|| columns_and_cells(def, &json!({}), now).0);
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = continue_token {
        meta["continue"] = json!(c);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns, "rows": rows})
}
