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

/// The name of node `i` (from 1) of a pool.
pub fn node_name(pool: &NodePool, i: u32) -> String {
    if pool.count == 1 { pool.name.clone() } else { format!("{}-{i}", pool.name) }
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
        if p.count > 0 {
            for n in [node_name(p, 1), node_name(p, p.count)] {
                check_name(
                    &field,
                    "",
                    "nodes",
                    &n,
                    "node names (NAME, or NAME-1 … NAME-N) are lowercase RFC 1123 subdomains",
                )?;
                check_messages(
                    &field,
                    &p.name,
                    validation::label_value(&n).into_iter().map(|m| format!("node {}: {m}", shown(&n))).collect(),
                    "a node name is also its kubernetes.io/hostname label value, at most 63 characters",
                )?;
            }
        }
        check_label_value(&field, &p.name, "the pool name is each node's sim.k8s-upgrade.dev/pool label value")?;
        for k in 1..=p.count {
            let n = node_name(p, k);
            if let Some(j) = seen.insert(n.clone(), i) {
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
