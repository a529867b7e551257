//! Bounds on how many pods the simulated cluster can be asked to run, so that no request and no
//! scenario makes it grow without end. A real apiserver takes any int32 as a workload's
//! `spec.replicas` (and quota, if any, stops the pods); the simulator keeps every object in
//! memory, so it takes at most [`MAX_REPLICAS`] per Deployment, ReplicaSet or StatefulSet —
//! the cap its scale subresource always had — and refuses more as the apiserver refuses a bad
//! field (422 Invalid), whichever way the value arrives (create, update, any patch, a scenario
//! manifest). Behind that, the controllers stop creating pods once the cluster holds
//! [`POD_CEILING`] of them, and say so loudly, so that many workloads at the cap, or nodes added
//! for DaemonSets without end, are bounded too.

use serde_json::{Value, json};

use super::Sim;
use super::status::ApiError;

/// Most `spec.replicas` one workload may ask for (also the scale subresource's cap).
pub const MAX_REPLICAS: i64 = 100_000;

/// Most pods the controllers create in total: the scenario limit of workload pods, plus room for
/// DaemonSet and control-plane pods on the largest cluster a scenario may describe.
pub const POD_CEILING: usize = 600_000;

/// What is wrong with a `spec.replicas` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not an int32 at all: what Go's JSON decoder calls it (`string`, `number 1.5`, ...).
    NotInt32(String),
    Negative(i64),
    AboveCeiling(i64),
}

impl Problem {
    /// The field error's detail, as the apiserver words it (the ceiling is the simulator's own).
    pub fn detail(&self) -> String {
        match self {
            Problem::NotInt32(what) => format!("cannot unmarshal {what} into an int32"),
            Problem::Negative(n) => format!("Invalid value: {n}: must be greater than or equal to 0"),
            Problem::AboveCeiling(n) => format!(
                "Invalid value: {n}: must be no more than {MAX_REPLICAS} (the simulator's limit of replicas for one workload)"
            ),
        }
    }
}

/// Checks a `spec.replicas` value (absent or null is the default, 1).
pub fn check(v: Option<&Value>) -> Result<(), Problem> {
    let v = match v {
        None | Some(Value::Null) => return Ok(()),
        Some(v) => v,
    };
    let n = match v {
        Value::Number(n) => match n.as_i64().filter(|n| i32::try_from(*n).is_ok()) {
            Some(n) => n,
            None => return Err(Problem::NotInt32(format!("number {n}"))),
        },
        Value::String(_) => return Err(Problem::NotInt32("string".into())),
        Value::Bool(_) => return Err(Problem::NotInt32("bool".into())),
        Value::Array(_) => return Err(Problem::NotInt32("array".into())),
        Value::Object(_) => return Err(Problem::NotInt32("object".into())),
        Value::Null => return Ok(()),
    };
    if n < 0 {
        return Err(Problem::Negative(n));
    }
    if n > MAX_REPLICAS {
        return Err(Problem::AboveCeiling(n));
    }
    Ok(())
}

/// Whether a write of this resource carries a `spec.replicas` the simulator bounds.
pub fn bounded(group: &str, resource: &str) -> bool {
    group == "apps" && matches!(resource, "deployments" | "replicasets" | "statefulsets")
}

/// The API's answer to a bad `spec.replicas` in a written object: a value that is no int32 does
/// not decode (400 on create and update, the patch's 422 on a patch), a negative one or one
/// above the ceiling is an invalid field (422).
pub fn refusal(kind: &str, group: &str, version: &str, name: &str, patched: Option<&Value>, p: &Problem) -> ApiError {
    let qualified = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
    match p {
        Problem::NotInt32(what) => {
            let decode =
                format!("json: cannot unmarshal {what} into Go struct field {kind}Spec.spec.replicas of type int32");
            match patched {
                None => ApiError::bad_request(&format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: {decode}"
                )),
                Some(obj) => {
                    let text = crate::k8s::validation::go_quote(&obj.to_string());
                    let detail = format!("Invalid value: {text}: {decode}");
                    ApiError::invalid_causes(
                        "",
                        "",
                        "",
                        format!(" \"\" is invalid: patch: {detail}"),
                        vec![json!({"reason": "FieldValueInvalid", "message": detail, "field": "patch"})],
                    )
                }
            }
        }
        Problem::Negative(_) | Problem::AboveCeiling(_) => {
            let detail = p.detail();
            ApiError::invalid_causes(
                kind,
                name,
                group,
                format!("{qualified} \"{name}\" is invalid: spec.replicas: {detail}"),
                vec![json!({"reason": "FieldValueInvalid", "message": detail, "field": "spec.replicas"})],
            )
        }
    }
}

/// Whether the controllers may create another pod. At the ceiling they may not, and the first
/// refusal is reported on stderr and in `/sim/stats` (`podCeilingReached`); once the cluster is
/// below it again, creating resumes and a later refusal is reported anew.
pub fn may_create_pod(sim: &Sim) -> bool {
    use std::sync::atomic::Ordering;
    let pods = sim.store.count(super::pdb::pods_key());
    let ceiling = sim.pod_ceiling.load(Ordering::Relaxed);
    if pods < ceiling {
        sim.pod_ceiling_reached.store(false, Ordering::Relaxed);
        return true;
    }
    if !sim.pod_ceiling_reached.swap(true, Ordering::Relaxed) {
        eprintln!(
            "simulator: WARNING: the cluster holds {pods} pods, the simulator's ceiling ({ceiling}); controllers create no more pods until some are gone"
        );
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_int32_not_negative_and_at_most_the_ceiling() {
        for ok in [json!(0), json!(3), json!(MAX_REPLICAS), Value::Null] {
            assert_eq!(check(Some(&ok)), Ok(()), "{ok}");
        }
        assert_eq!(check(None), Ok(()));
        assert_eq!(check(Some(&json!(100_000_000))), Err(Problem::AboveCeiling(100_000_000)));
        assert_eq!(check(Some(&json!(-1))), Err(Problem::Negative(-1)));
        assert_eq!(check(Some(&json!(3_000_000_000u64))), Err(Problem::NotInt32("number 3000000000".into())));
        assert_eq!(check(Some(&json!(1.5))), Err(Problem::NotInt32("number 1.5".into())));
        assert_eq!(check(Some(&json!("3"))), Err(Problem::NotInt32("string".into())));
        let e = refusal("Deployment", "apps", "v1", "web", None, &Problem::AboveCeiling(100_000_000));
        assert_eq!(e.code, 422);
        assert!(
            e.message.starts_with("Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: 100000000: must be no more than 100000"),
            "{}",
            e.message
        );
        let e = refusal("Deployment", "apps", "v1", "web", None, &Problem::NotInt32("string".into()));
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
        );
    }
}
