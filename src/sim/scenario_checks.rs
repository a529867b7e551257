//! The checks of a scenario file that hold it to what a real cluster accepts, before anything is
//! built: names of nodes, namespaces, workloads and the objects made from them (the apiserver's
//! rules for each kind, and for the labels those names end up in), node names unique across
//! pools, label keys and values, CPU and memory quantities, PodDisruptionBudget values, add-on
//! versions and images, Helm release names, and replica counts within the simulator's ceiling.
//! Each error is one line naming the field path, showing the bad value (quoted, with escapes
//! visible, long ones cut) and saying what is accepted, in the apiserver's words where it has
//! them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::replicas::MAX_REPLICAS;
use super::scenario::{NodePool, PdbSpec, Scenario, Workload, WorkloadKind};
use crate::k8s::validation::{self, go_quote};

/// A failed check: the field path and what is wrong with its value.
pub struct Refusal {
    pub field: String,
    pub message: String,
}

type Checked = Result<(), Refusal>;

/// A value as an error shows it: Go-quoted (control characters escaped), cut after 64
/// characters with the full length said.
pub fn shown(value: &str) -> String {
    let count = value.chars().count();
    if count <= 64 {
        return go_quote(value);
    }
    let cut: String = value.chars().take(64).collect();
    format!("{}... ({count} characters)", go_quote(&cut))
}

fn refuse(field: impl Into<String>, value: &str, why: impl std::fmt::Display) -> Refusal {
    Refusal { field: field.into(), message: format!("invalid value {}: {why}", shown(value)) }
}

/// Fails with the apiserver's messages (joined by `; `) when there are any.
fn check_messages(field: &str, value: &str, messages: Vec<String>, accepted: &str) -> Checked {
    if messages.is_empty() {
        return Ok(());
    }
    let tail = if accepted.is_empty() { String::new() } else { format!("; {accepted}") };
    Err(refuse(field, value, format!("{}{tail}", messages.join("; "))))
}

/// A name as the apiserver checks it for objects of `group`/`resource`.
fn check_name(field: &str, group: &str, resource: &str, name: &str, what: &str) -> Checked {
    if name.is_empty() {
        return Err(refuse(field, name, "Required value: a name is required"));
    }
    check_messages(field, name, super::names::name_problems(group, resource, name), what)
}

/// A name that also becomes a label value somewhere (`app: NAME`, a node's hostname label).
fn check_label_value(field: &str, value: &str, where_: &str) -> Checked {
    check_messages(field, value, validation::label_value(value), where_)
}

fn check_labels(field: &str, labels: &BTreeMap<String, String>) -> Checked {
    for (k, v) in labels {
        check_messages(field, k, validation::label_key(k), "the key of a label")?;
        check_messages(field, v, validation::label_value(v), "the value of a label")?;
    }
    Ok(())
}

fn check_namespace(field: &str, ns: &str) -> Checked {
    check_name(field, "", "namespaces", ns, "a namespace name is a lowercase RFC 1123 label")
}

/// Most a scenario quantity may be: beyond an int64 of units the simulator cannot count.
const MAX_QUANTITY: f64 = 9.2e18;

/// A CPU or memory quantity: Kubernetes' syntax, not negative, and finite for the simulator.
fn check_quantity(field: &str, q: &str) -> Checked {
    const ACCEPTED: &str = "expected a quantity such as 8, 500m, 1.5, 32Gi or 512Mi";
    match crate::quantity::parse_strict(q) {
        Err(e) => Err(refuse(field, q, format!("{e}; {ACCEPTED}"))),
        Ok(v) if v < 0.0 => Err(refuse(field, q, format!("must be greater than or equal to 0; {ACCEPTED}"))),
        Ok(v) if !v.is_finite() || v > MAX_QUANTITY => {
            Err(refuse(field, q, format!("more than the simulator can count (at most 9.2e18); {ACCEPTED}")))
        }
        Ok(_) => Ok(()),
    }
}

/// A container image as pod validation takes it: not empty, no surrounding whitespace, and (for
/// the simulator's sake) no whitespace or control characters anywhere.
fn check_image(field: &str, image: &str) -> Checked {
    const ACCEPTED: &str = "expected an image reference such as registry.k8s.io/pause:3.9";
    if image.is_empty() {
        return Err(refuse(field, image, format!("Required value; {ACCEPTED}")));
    }
    if image.trim() != image {
        return Err(refuse(field, image, format!("must not have leading or trailing whitespace; {ACCEPTED}")));
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) || image.len() > 1024 {
        return Err(refuse(
            field,
            image,
            format!("no spaces or control characters, at most 1024 characters; {ACCEPTED}"),
        ));
    }
    Ok(())
}

/// `minAvailable` or `maxUnavailable` as the PodDisruptionBudget validation takes it: an integer
/// of 0 or more, or a percentage (`50%`) of at most 100%.
fn check_int_or_percent(field: &str, v: &Value) -> Checked {
    const ACCEPTED: &str = "expected an integer of 0 or more, or a percentage such as 50% (at most 100%)";
    match v {
        Value::Number(n) => match n.as_i64().filter(|n| i32::try_from(*n).is_ok()) {
            Some(n) if n < 0 => {
                Err(refuse(field, &n.to_string(), format!("must be greater than or equal to 0; {ACCEPTED}")))
            }
            Some(_) => Ok(()),
            None => Err(refuse(field, &n.to_string(), format!("not an integer; {ACCEPTED}"))),
        },
        Value::String(s) => {
            check_messages(field, s, validation::percent(s), ACCEPTED)?;
            let percent: u64 = s.trim_end_matches('%').parse().unwrap_or(u64::MAX);
            if percent > 100 {
                return Err(refuse(field, s, format!("must not be greater than 100%; {ACCEPTED}")));
            }
            Ok(())
        }
        other => Err(refuse(field, &other.to_string(), format!("not an integer or a string; {ACCEPTED}"))),
    }
}

fn check_pdb(field: &str, p: &PdbSpec) -> Checked {
    if let Some(name) = &p.name {
        check_name(&format!("{field}.name"), "policy", "poddisruptionbudgets", name, "")?;
    }
    if p.min_available.is_some() && p.max_unavailable.is_some() {
        return Err(Refusal {
            field: field.to_string(),
            message: "minAvailable and maxUnavailable cannot be both set".into(),
        });
    }
    if let Some(v) = &p.min_available {
        check_int_or_percent(&format!("{field}.minAvailable"), v)?;
    }
    if let Some(v) = &p.max_unavailable {
        check_int_or_percent(&format!("{field}.maxUnavailable"), v)?;
    }
    Ok(())
}

/// The name of node `i` (from 1) of a pool: its entry in `names`, else NAME-i (NAME alone for
/// a pool of one).
pub fn node_name(pool: &NodePool, i: u32) -> String {
    if let Some(n) = (i as usize).checked_sub(1).and_then(|k| pool.names.get(k)) {
        return n.clone();
    }
    if pool.count == 1 { pool.name.clone() } else { format!("{}-{i}", pool.name) }
}

/// A node name as the apiserver takes it, which is also the node's kubernetes.io/hostname
/// label value.
fn check_node_name(field: &str, shown_as: &str, n: &str, what: &str) -> Checked {
    check_name(field, "", "nodes", n, what)?;
    check_messages(
        field,
        shown_as,
        validation::label_value(n).into_iter().map(|m| format!("node {}: {m}", shown(n))).collect(),
        "a node name is also its kubernetes.io/hostname label value, at most 63 characters",
    )
}

fn check_pools(pools: &[NodePool]) -> Checked {
    // Node name → the pool it came from; total nodes were bounded before this runs.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, p) in pools.iter().enumerate() {
        let field = format!("nodePools[{i}].name");
        if p.name.is_empty() {
            return Err(refuse(field, &p.name, "a pool needs a name (its nodes are NAME, or NAME-1 … NAME-N)"));
        }
        if let Some(j) = pools[..i].iter().position(|q| q.name == p.name) {
            return Err(refuse(field, &p.name, format!("the name of nodePools[{j}] too; pool names must be unique")));
        }
        if !p.names.is_empty() {
            if p.names.len() != p.count as usize {
                return Err(Refusal {
                    field: format!("nodePools[{i}].names"),
                    message: format!(
                        "{} names for a pool of {} nodes; give one name per node (count), or none",
                        p.names.len(),
                        p.count
                    ),
                });
            }
            for (k, n) in p.names.iter().enumerate() {
                check_node_name(
                    &format!("nodePools[{i}].names[{k}]"),
                    n,
                    n,
                    "node names are lowercase RFC 1123 subdomains",
                )?;
            }
        } else if p.count > 0 {
            for n in [node_name(p, 1), node_name(p, p.count)] {
                check_node_name(
                    &field,
                    &p.name,
                    &n,
                    "node names (NAME, or NAME-1 … NAME-N) are lowercase RFC 1123 subdomains",
                )?;
            }
        }
        check_label_value(&field, &p.name, "the pool name is each node's sim.k8s-upgrade.dev/pool label value")?;
        for k in 1..=p.count {
            let n = node_name(p, k);
            if let Some(j) = seen.insert(n.clone(), i) {
                if !p.names.is_empty() {
                    let same = if j == i {
                        "an earlier name of this pool".to_string()
                    } else {
                        format!("a node of nodePools[{j}] ({})", shown(&pools[j].name))
                    };
                    return Err(refuse(
                        format!("nodePools[{i}].names[{}]", k - 1),
                        &n,
                        format!("also {same}; each node name must be unique"),
                    ));
                }
                return Err(refuse(
                    field,
                    &p.name,
                    format!(
                        "its node {} is also a node of nodePools[{j}] ({}); each node name must be unique, so no pool may be named like another pool's nodes (NAME-1 … NAME-N)",
                        shown(&n),
                        shown(&pools[j].name)
                    ),
                ));
            }
        }
        for (r, role) in p.roles.iter().enumerate() {
            let key = format!("node-role.kubernetes.io/{role}");
            check_messages(
                &format!("nodePools[{i}].roles[{r}]"),
                role,
                validation::label_key(&key),
                "a role becomes the label key node-role.kubernetes.io/ROLE",
            )?;
        }
        check_labels(&format!("nodePools[{i}].labels"), &p.labels)?;
        for (t, taint) in p.taints.iter().enumerate() {
            check_messages(
                &format!("nodePools[{i}].taints[{t}].key"),
                &taint.key,
                validation::label_key(&taint.key),
                "a taint key is a label key",
            )?;
            if let Some(v) = &taint.value {
                check_label_value(&format!("nodePools[{i}].taints[{t}].value"), v, "a taint value is a label value")?;
            }
        }
        check_quantity(&format!("nodePools[{i}].capacity.cpu"), &p.capacity.cpu)?;
        check_quantity(&format!("nodePools[{i}].capacity.memory"), &p.capacity.memory)?;
    }
    Ok(())
}

/// The API group and resource of a workload kind, and the longest suffix the simulator adds to
/// its name for the objects it makes (ReplicaSets and pods, StatefulSet ordinals).
fn kind_of(w: &Workload) -> (&'static str, &'static str, usize) {
    let digits = |n: u32| n.saturating_sub(1).to_string().len();
    match w.kind {
        // NAME-HASH10-xxxxx
        WorkloadKind::Deployment => ("apps", "deployments", 17),
        WorkloadKind::StatefulSet => ("apps", "statefulsets", 1 + digits(w.replicas)),
        WorkloadKind::DaemonSet => ("apps", "daemonsets", 6),
        WorkloadKind::Job => ("batch", "jobs", 6),
        WorkloadKind::Pod if w.replicas > 1 => ("", "pods", 1 + digits(w.replicas)),
        WorkloadKind::Pod => ("", "pods", 0),
    }
}

/// A workload (or an add-on made into one) at `field`.
pub fn check_workload(field: &str, w: &Workload) -> Checked {
    let (group, resource, suffix) = kind_of(w);
    check_namespace(&format!("{field}.namespace"), &w.namespace)?;
    let name_field = format!("{field}.name");
    check_name(&name_field, group, resource, &w.name, "")?;
    let longest = format!("{}{}", w.name, "x".repeat(suffix));
    if suffix > 0 && !validation::dns1123_subdomain(&longest).is_empty() {
        return Err(refuse(
            &name_field,
            &w.name,
            format!("the names of its pods add {suffix} characters and would be more than 253"),
        ));
    }
    if w.kind == WorkloadKind::StatefulSet && longest.len() > 63 {
        return Err(refuse(
            &name_field,
            &w.name,
            format!(
                "a StatefulSet's pod names ({}-N) are label values too: at most 63 characters with the ordinal",
                w.name
            ),
        ));
    }
    if !w.labels.contains_key("app") {
        check_label_value(
            &name_field,
            &w.name,
            "the name is also the pods' app label value unless labels.app is given",
        )?;
    }
    check_labels(&format!("{field}.labels"), &w.labels)?;
    check_labels(&format!("{field}.nodeSelector"), &w.node_selector)?;
    if i64::from(w.replicas) > MAX_REPLICAS {
        return Err(refuse(
            format!("{field}.replicas"),
            &w.replicas.to_string(),
            format!("at most {MAX_REPLICAS} replicas for one workload (the simulator's limit, as through its API)"),
        ));
    }
    if let Some(image) = &w.image {
        check_image(&format!("{field}.image"), image)?;
    }
    if let Some(r) = &w.requests {
        if let Some(cpu) = &r.cpu {
            check_quantity(&format!("{field}.requests.cpu"), cpu)?;
        }
        if let Some(memory) = &r.memory {
            check_quantity(&format!("{field}.requests.memory"), memory)?;
        }
    }
    if let Some(g) = w.termination_grace_period_seconds
        && g < 0
    {
        return Err(refuse(
            format!("{field}.terminationGracePeriodSeconds"),
            &g.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    if let Some(p) = &w.pdb {
        check_pdb(&format!("{field}.pdb"), p)?;
    }
    check_scheduling(field, w)
}

/// Most terms, expressions, tolerations or constraints one list of a workload may have.
const MAX_TERMS: usize = 100;

fn json_shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn refuse_json(field: impl Into<String>, v: &Value, why: impl std::fmt::Display) -> Refusal {
    refuse(field, &json_shown(v), why)
}

/// An optional list of at most [`MAX_TERMS`] entries.
fn list<'v>(field: &str, v: Option<&'v Value>) -> Result<&'v [Value], Refusal> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) if a.len() <= MAX_TERMS => Ok(a),
        Some(Value::Array(a)) => {
            Err(Refusal { field: field.to_string(), message: format!("{} entries; at most {MAX_TERMS}", a.len()) })
        }
        Some(other) => Err(refuse_json(field, other, "must be a list")),
    }
}

fn object<'v>(field: &str, v: &'v Value) -> Result<&'v serde_json::Map<String, Value>, Refusal> {
    v.as_object().ok_or_else(|| refuse_json(field, v, "must be an object"))
}

/// Only these keys in an object (as strict decoding has it).
fn known_keys(field: &str, m: &serde_json::Map<String, Value>, keys: &[&str]) -> Checked {
    match m.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(refuse(field, k, format!("unknown field; expected one of {}", keys.join(", ")))),
        None => Ok(()),
    }
}

fn string_values(field: &str, v: Option<&Value>) -> Result<Vec<String>, Refusal> {
    list(field, v)?
        .iter()
        .enumerate()
        .map(|(k, x)| {
            x.as_str().map(str::to_string).ok_or_else(|| refuse_json(format!("{field}[{k}]"), x, "must be a string"))
        })
        .collect()
}

/// A `nodeSelectorRequirement` (`fields`: of `matchFields`, which only take `metadata.name`).
fn check_node_requirement(field: &str, r: &Value, fields: bool) -> Checked {
    let m = object(field, r)?;
    known_keys(field, m, &["key", "operator", "values"])?;
    let key = m.get("key").and_then(Value::as_str).unwrap_or_default();
    if fields {
        if key != "metadata.name" {
            return Err(refuse(format!("{field}.key"), key, "matchFields take only the key metadata.name"));
        }
    } else {
        check_messages(&format!("{field}.key"), key, validation::label_key(key), "a node label key")?;
    }
    let op = m.get("operator").and_then(Value::as_str).unwrap_or_default();
    let values = string_values(&format!("{field}.values"), m.get("values"))?;
    let ops: &[&str] = if fields { &["In", "NotIn"] } else { &["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] };
    if !ops.contains(&op) {
        return Err(refuse(
            format!("{field}.operator"),
            op,
            format!("not a supported operator; expected one of {}", ops.join(", ")),
        ));
    }
    let bad = |why: &str| Err(refuse(format!("{field}.values"), &values.join(","), why));
    match op {
        "In" | "NotIn" if fields && values.len() != 1 => bad("matchFields take exactly one value"),
        "In" | "NotIn" if values.is_empty() => bad("must be specified when `operator` is 'In' or 'NotIn'"),
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            bad("may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        }
        "Gt" | "Lt" if values.len() != 1 || values[0].parse::<i64>().is_err() => {
            bad("must be one integer when `operator` is 'Gt' or 'Lt'")
        }
        _ => Ok(()),
    }
}

fn check_node_term(field: &str, t: &Value) -> Checked {
    let m = object(field, t)?;
    known_keys(field, m, &["matchExpressions", "matchFields"])?;
    for (k, r) in list(&format!("{field}.matchExpressions"), m.get("matchExpressions"))?.iter().enumerate() {
        check_node_requirement(&format!("{field}.matchExpressions[{k}]"), r, false)?;
    }
    for (k, r) in list(&format!("{field}.matchFields"), m.get("matchFields"))?.iter().enumerate() {
        check_node_requirement(&format!("{field}.matchFields[{k}]"), r, true)?;
    }
    Ok(())
}

/// A `metav1.LabelSelector`: matchLabels and In/NotIn/Exists/DoesNotExist expressions.
fn check_label_selector(field: &str, v: &Value) -> Checked {
    let m = object(field, v)?;
    known_keys(field, m, &["matchLabels", "matchExpressions"])?;
    if let Some(ml) = m.get("matchLabels") {
        let ml = object(&format!("{field}.matchLabels"), ml)?;
        let mut labels = BTreeMap::new();
        for (k, v) in ml {
            let v = v.as_str().ok_or_else(|| refuse_json(format!("{field}.matchLabels"), v, "must be a string"))?;
            labels.insert(k.clone(), v.to_string());
        }
        check_labels(&format!("{field}.matchLabels"), &labels)?;
    }
    for (k, e) in list(&format!("{field}.matchExpressions"), m.get("matchExpressions"))?.iter().enumerate() {
        let f = format!("{field}.matchExpressions[{k}]");
        let em = object(&f, e)?;
        known_keys(&f, em, &["key", "operator", "values"])?;
        let key = em.get("key").and_then(Value::as_str).unwrap_or_default();
        check_messages(&format!("{f}.key"), key, validation::label_key(key), "a label key")?;
        let op = em.get("operator").and_then(Value::as_str).unwrap_or_default();
        let values = string_values(&format!("{f}.values"), em.get("values"))?;
        match op {
            "In" | "NotIn" if values.is_empty() => {
                return Err(refuse(format!("{f}.values"), "", "must be specified when `operator` is 'In' or 'NotIn'"));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(refuse(
                    format!("{f}.values"),
                    &values.join(","),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => {
                return Err(refuse(
                    format!("{f}.operator"),
                    op,
                    "not a valid label selector operator; expected one of In, NotIn, Exists, DoesNotExist",
                ));
            }
        }
    }
    Ok(())
}

fn check_topology_key(field: &str, v: Option<&Value>) -> Checked {
    let key = v.and_then(Value::as_str).unwrap_or_default();
    if key.is_empty() {
        return Err(refuse(field, key, "Required value: can not be empty"));
    }
    check_messages(field, key, validation::label_key(key), "a topology key is a node label key")
}

fn check_pod_term(field: &str, t: &Value) -> Checked {
    let m = object(field, t)?;
    known_keys(
        field,
        m,
        &["labelSelector", "namespaces", "namespaceSelector", "topologyKey", "matchLabelKeys", "mismatchLabelKeys"],
    )?;
    if let Some(sel) = m.get("labelSelector") {
        check_label_selector(&format!("{field}.labelSelector"), sel)?;
    }
    if let Some(sel) = m.get("namespaceSelector") {
        check_label_selector(&format!("{field}.namespaceSelector"), sel)?;
    }
    for (k, ns) in string_values(&format!("{field}.namespaces"), m.get("namespaces"))?.iter().enumerate() {
        check_namespace(&format!("{field}.namespaces[{k}]"), ns)?;
    }
    check_topology_key(&format!("{field}.topologyKey"), m.get("topologyKey"))
}

fn check_weight(field: &str, m: &serde_json::Map<String, Value>) -> Checked {
    let w = m.get("weight").unwrap_or(&Value::Null);
    match w.as_i64() {
        Some(1..=100) => Ok(()),
        _ => Err(refuse_json(format!("{field}.weight"), w, "must be in the range 1-100")),
    }
}

/// `spec.affinity` as pod validation takes it.
fn check_affinity(field: &str, a: &Value) -> Checked {
    let m = object(field, a)?;
    known_keys(field, m, &["nodeAffinity", "podAffinity", "podAntiAffinity"])?;
    if let Some(na) = m.get("nodeAffinity") {
        let f = format!("{field}.nodeAffinity");
        let nm = object(&f, na)?;
        known_keys(
            &f,
            nm,
            &["requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution"],
        )?;
        if let Some(req) = nm.get("requiredDuringSchedulingIgnoredDuringExecution") {
            let rf = format!("{f}.requiredDuringSchedulingIgnoredDuringExecution");
            let rm = object(&rf, req)?;
            known_keys(&rf, rm, &["nodeSelectorTerms"])?;
            let terms = list(&format!("{rf}.nodeSelectorTerms"), rm.get("nodeSelectorTerms"))?;
            if terms.is_empty() {
                return Err(Refusal {
                    field: format!("{rf}.nodeSelectorTerms"),
                    message: "Required value: must have at least one node selector term".into(),
                });
            }
            for (k, t) in terms.iter().enumerate() {
                check_node_term(&format!("{rf}.nodeSelectorTerms[{k}]"), t)?;
            }
        }
        let pf = format!("{f}.preferredDuringSchedulingIgnoredDuringExecution");
        for (k, p) in list(&pf, nm.get("preferredDuringSchedulingIgnoredDuringExecution"))?.iter().enumerate() {
            let pf = format!("{pf}[{k}]");
            let pm = object(&pf, p)?;
            known_keys(&pf, pm, &["weight", "preference"])?;
            check_weight(&pf, pm)?;
            check_node_term(&format!("{pf}.preference"), pm.get("preference").unwrap_or(&Value::Null))?;
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let Some(pa) = m.get(kind) else { continue };
        let f = format!("{field}.{kind}");
        let pm = object(&f, pa)?;
        known_keys(
            &f,
            pm,
            &["requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution"],
        )?;
        let rf = format!("{f}.requiredDuringSchedulingIgnoredDuringExecution");
        for (k, t) in list(&rf, pm.get("requiredDuringSchedulingIgnoredDuringExecution"))?.iter().enumerate() {
            check_pod_term(&format!("{rf}[{k}]"), t)?;
        }
        let pf = format!("{f}.preferredDuringSchedulingIgnoredDuringExecution");
        for (k, p) in list(&pf, pm.get("preferredDuringSchedulingIgnoredDuringExecution"))?.iter().enumerate() {
            let pf = format!("{pf}[{k}]");
            let wm = object(&pf, p)?;
            known_keys(&pf, wm, &["weight", "podAffinityTerm"])?;
            check_weight(&pf, wm)?;
            check_pod_term(&format!("{pf}.podAffinityTerm"), wm.get("podAffinityTerm").unwrap_or(&Value::Null))?;
        }
    }
    Ok(())
}

fn check_toleration(field: &str, t: &Value) -> Checked {
    let m = object(field, t)?;
    known_keys(field, m, &["key", "operator", "value", "effect", "tolerationSeconds"])?;
    let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
    let (key, op, value, effect) = (s("key"), s("operator"), s("value"), s("effect"));
    if !key.is_empty() {
        check_messages(&format!("{field}.key"), key, validation::label_key(key), "a taint key is a label key")?;
    }
    match op {
        "" | "Equal" if key.is_empty() => {
            return Err(refuse(
                format!("{field}.operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        "" | "Equal" => {}
        "Exists" if !value.is_empty() => {
            return Err(refuse(format!("{field}.operator"), value, "value must be empty when `operator` is 'Exists'"));
        }
        "Exists" => {}
        _ => {
            return Err(refuse(
                format!("{field}.operator"),
                op,
                "not a supported toleration operator; expected Equal or Exists",
            ));
        }
    }
    if !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(refuse(
            format!("{field}.effect"),
            effect,
            "not a supported taint effect; expected NoSchedule, PreferNoSchedule or NoExecute",
        ));
    }
    Ok(())
}

fn check_spread(field: &str, c: &Value) -> Checked {
    let m = object(field, c)?;
    known_keys(
        field,
        m,
        &[
            "maxSkew",
            "topologyKey",
            "whenUnsatisfiable",
            "labelSelector",
            "minDomains",
            "nodeAffinityPolicy",
            "nodeTaintsPolicy",
            "matchLabelKeys",
        ],
    )?;
    let skew = m.get("maxSkew").unwrap_or(&Value::Null);
    if !skew.as_i64().is_some_and(|s| (1..=i64::from(i32::MAX)).contains(&s)) {
        return Err(refuse_json(format!("{field}.maxSkew"), skew, "must be an integer greater than zero"));
    }
    check_topology_key(&format!("{field}.topologyKey"), m.get("topologyKey"))?;
    let when = m.get("whenUnsatisfiable").and_then(Value::as_str).unwrap_or_default();
    if !matches!(when, "DoNotSchedule" | "ScheduleAnyway") {
        return Err(refuse(
            format!("{field}.whenUnsatisfiable"),
            when,
            "supported values: \"DoNotSchedule\", \"ScheduleAnyway\"",
        ));
    }
    if let Some(sel) = m.get("labelSelector") {
        check_label_selector(&format!("{field}.labelSelector"), sel)?;
    }
    if let Some(d) = m.get("minDomains") {
        if d.as_i64().is_none_or(|d| d < 1) {
            return Err(refuse_json(format!("{field}.minDomains"), d, "must be greater than 0"));
        }
        if when != "DoNotSchedule" {
            return Err(refuse_json(
                format!("{field}.minDomains"),
                d,
                "can only use minDomains if whenUnsatisfiable=DoNotSchedule",
            ));
        }
    }
    for policy in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
        if let Some(p) = m.get(policy)
            && !matches!(p.as_str(), Some("Honor" | "Ignore"))
        {
            return Err(refuse_json(format!("{field}.{policy}"), p, "supported values: \"Honor\", \"Ignore\""));
        }
    }
    Ok(())
}

/// Affinity, tolerations, topology spread and pinned nodes of a workload.
fn check_scheduling(field: &str, w: &Workload) -> Checked {
    if let Some(a) = &w.affinity {
        check_affinity(&format!("{field}.affinity"), a)?;
    }
    if w.tolerations.len() > MAX_TERMS {
        return Err(Refusal {
            field: format!("{field}.tolerations"),
            message: format!("{} entries; at most {MAX_TERMS}", w.tolerations.len()),
        });
    }
    for (k, t) in w.tolerations.iter().enumerate() {
        check_toleration(&format!("{field}.tolerations[{k}]"), t)?;
    }
    if w.topology_spread_constraints.len() > MAX_TERMS {
        return Err(Refusal {
            field: format!("{field}.topologySpreadConstraints"),
            message: format!("{} entries; at most {MAX_TERMS}", w.topology_spread_constraints.len()),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, c) in w.topology_spread_constraints.iter().enumerate() {
        let f = format!("{field}.topologySpreadConstraints[{k}]");
        check_spread(&f, c)?;
        let pair = (c["topologyKey"].as_str().unwrap_or_default(), c["whenUnsatisfiable"].as_str().unwrap_or_default());
        if !seen.insert(pair) {
            return Err(refuse(
                format!("{f}.{{topologyKey, whenUnsatisfiable}}"),
                &format!("{}, {}", pair.0, pair.1),
                "Duplicate value",
            ));
        }
    }
    if !w.nodes.is_empty() {
        let f = format!("{field}.nodes");
        if matches!(w.kind, WorkloadKind::DaemonSet | WorkloadKind::Job) {
            return Err(Refusal {
                field: f,
                message: format!(
                    "only a Deployment, StatefulSet or Pod is placed on given nodes; this is a {:?}",
                    w.kind
                ),
            });
        }
        if w.nodes.len() > w.replicas as usize {
            return Err(Refusal {
                field: f,
                message: format!("{} nodes for {} replicas; at most one node per replica", w.nodes.len(), w.replicas),
            });
        }
        for (k, n) in w.nodes.iter().enumerate() {
            check_node_name(&format!("{f}[{k}]"), n, n, "a node name is a lowercase RFC 1123 subdomain")?;
        }
    }
    Ok(())
}

/// Everything above, for a whole scenario (node counts were bounded before).
pub fn check(s: &Scenario) -> Checked {
    check_pools(&s.node_pools)?;
    for (i, ns) in s.namespaces.iter().enumerate() {
        check_namespace(&format!("namespaces[{i}]"), ns)?;
    }
    for (i, w) in s.workloads.iter().enumerate() {
        check_workload(&format!("workloads[{i}]"), w)?;
    }
    for (i, a) in s.addons.iter().enumerate() {
        let field = format!("addons[{i}]");
        if let Err(e) = a.version.parse::<crate::version::Version>() {
            return Err(refuse(
                format!("{field}.version"),
                &a.version,
                format!("{e}; expected the add-on's version, such as 1.11.1 or v1.11.1"),
            ));
        }
        if let Some(image) = &a.image {
            check_image(&format!("{field}.image"), image)?;
        }
        if let Some(ns) = &a.namespace {
            check_namespace(&format!("{field}.namespace"), ns)?;
        }
        if let Some(r) = a.replicas
            && i64::from(r) > MAX_REPLICAS
        {
            return Err(refuse(
                format!("{field}.replicas"),
                &r.to_string(),
                format!("at most {MAX_REPLICAS} replicas for one workload (the simulator's limit, as through its API)"),
            ));
        }
        if let Some(p) = &a.pdb {
            check_pdb(&format!("{field}.pdb"), p)?;
        }
    }
    for (i, r) in s.helm_releases.iter().enumerate() {
        let field = format!("helmReleases[{i}]");
        check_namespace(&format!("{field}.namespace"), &r.namespace)?;
        let secret = crate::helm::secret_name(&r.name, u64::from(r.revision));
        check_messages(
            &format!("{field}.name"),
            &r.name,
            validation::dns1123_subdomain(&secret).into_iter().chain(validation::label_value(&r.name)).collect(),
            "Helm stores a release as the Secret sh.helm.release.v1.NAME.vREVISION labelled name: NAME",
        )?;
        if r.name.is_empty() {
            return Err(refuse(format!("{field}.name"), &r.name, "a release needs a name"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shown_quoted_escaped_and_cut() {
        assert_eq!(shown("x/y"), "\"x/y\"");
        assert_eq!(shown("a\u{1b}[2J"), "\"a\\x1b[2J\"");
        let long = shown(&"a".repeat(5000));
        assert!(long.ends_with("... (5000 characters)") && long.len() < 100, "{long}");
    }

    #[test]
    fn quantities_and_budget_values() {
        assert!(check_quantity("f", "500m").is_ok());
        for bad in ["abc", "-5Gi", "1e400", "lots", ""] {
            let e = check_quantity("f", bad).unwrap_err();
            assert!(e.message.contains("expected a quantity such as"), "{bad}: {}", e.message);
        }
        assert!(check_int_or_percent("f", &serde_json::json!(0)).is_ok());
        assert!(check_int_or_percent("f", &serde_json::json!("100%")).is_ok());
        for bad in [
            serde_json::json!(-3),
            serde_json::json!("abc"),
            serde_json::json!("150%"),
            serde_json::json!(1.5),
            serde_json::json!(true),
        ] {
            assert!(check_int_or_percent("f", &bad).is_err(), "{bad}");
        }
    }
}
