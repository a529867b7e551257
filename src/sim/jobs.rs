//! Validation of batch/v1 Jobs as the apiserver's `ValidateJob` does it, for the fields a Job
//! of ours (or a test) uses: the counts and limits of the spec, the pod failure policy (rules,
//! actions, exit codes, pod conditions, and the `Never` restart policy it requires), and the
//! pod template (restart policy, containers with names and images, volume mounts that name a
//! volume, unique volume names, requests within limits). Errors carry the field path and the
//! apiserver's wording, as a 422 `Invalid` with one cause per field. Clusters before 1.26 drop
//! `podFailurePolicy` on write, as the apiserver did while its feature gate was off.

use serde_json::Value;

use super::status::ApiError;
use crate::version::Minor;

/// One field error, as `field.Error` renders it: `spec.backoffLimit: Invalid value: -1: must be
/// greater than or equal to 0`.
struct FieldError {
    field: String,
    reason: &'static str,
    detail: String,
}

fn invalid(field: impl Into<String>, value: &Value, why: &str) -> FieldError {
    FieldError { field: field.into(), reason: "FieldValueInvalid", detail: format!("Invalid value: {value}: {why}") }
}

fn required(field: impl Into<String>, why: &str) -> FieldError {
    let detail = if why.is_empty() { "Required value".to_string() } else { format!("Required value: {why}") };
    FieldError { field: field.into(), reason: "FieldValueRequired", detail }
}

fn unsupported(field: impl Into<String>, value: &Value, supported: &[&str]) -> FieldError {
    let list = supported.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    FieldError {
        field: field.into(),
        reason: "FieldValueNotSupported",
        detail: format!("Unsupported value: {value}: supported values: {list}"),
    }
}

fn not_found(field: impl Into<String>, value: &Value) -> FieldError {
    FieldError { field: field.into(), reason: "FieldValueNotFound", detail: format!("Not found: {value}") }
}

fn duplicate(field: impl Into<String>, value: &Value) -> FieldError {
    FieldError { field: field.into(), reason: "FieldValueDuplicate", detail: format!("Duplicate value: {value}") }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

const DNS_LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Drops what this version's apiserver would not keep, before validation.
pub fn prepare(minor: Minor, obj: &mut Value) {
    if minor < Minor::new(1, 26)
        && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("podFailurePolicy");
    }
}

/// Validates a Job; the error lists every field the apiserver would name.
pub fn validate(obj: &Value) -> Result<(), ApiError> {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    for field in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"] {
        if let Some(v) = spec.get(field) {
            if !v.is_i64() && !v.is_u64() {
                errs.push(invalid(format!("spec.{field}"), v, "must be an integer"));
            } else if v.as_i64().is_some_and(|n| n < 0) {
                errs.push(invalid(format!("spec.{field}"), v, "must be greater than or equal to 0"));
            }
        }
    }
    let template = spec.pointer("/template/spec").cloned().unwrap_or(Value::Null);
    if template.is_null() {
        errs.push(required("spec.template.spec.containers", ""));
    } else {
        pod_template(&template, &mut errs);
    }
    let restart = template.get("restartPolicy").cloned().unwrap_or(Value::Null);
    match restart.as_str() {
        Some("Never" | "OnFailure") => {}
        None => errs.push(required("spec.template.spec.restartPolicy", "valid values: \"OnFailure\", \"Never\"")),
        Some(_) => errs.push(unsupported("spec.template.spec.restartPolicy", &restart, &["OnFailure", "Never"])),
    }
    if let Some(policy) = spec.get("podFailurePolicy") {
        if restart.as_str().is_some_and(|r| r != "Never") {
            errs.push(invalid(
                "spec.template.spec.restartPolicy",
                &restart,
                "only \"Never\" is supported when podFailurePolicy is specified",
            ));
        }
        pod_failure_policy(policy, &template, &mut errs);
    }
    if errs.is_empty() {
        return Ok(());
    }
    let message = format!(
        "Job.batch \"{name}\" is invalid: [{}]",
        errs.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join(", ")
    );
    let message = if errs.len() == 1 {
        format!("Job.batch \"{name}\" is invalid: {}: {}", errs[0].field, errs[0].detail)
    } else {
        message
    };
    let causes: Vec<Value> =
        errs.iter().map(|e| serde_json::json!({"reason": e.reason, "message": e.detail, "field": e.field})).collect();
    Err(ApiError::invalid_causes("Job", name, "batch", message, causes))
}

fn pod_template(spec: &Value, errs: &mut Vec<FieldError>) {
    let base = "spec.template.spec";
    let mut volumes: Vec<&str> = Vec::new();
    for (i, v) in spec.get("volumes").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        let field = format!("{base}.volumes[{i}].name");
        if name.is_empty() {
            errs.push(required(field, ""));
        } else if !is_dns_label(name) {
            errs.push(invalid(field, &Value::from(name), DNS_LABEL_MESSAGE));
        } else if volumes.contains(&name) {
            errs.push(duplicate(field, &Value::from(name)));
        } else {
            volumes.push(name);
        }
    }
    let containers = spec.get("containers").and_then(Value::as_array).cloned().unwrap_or_default();
    if containers.is_empty() {
        errs.push(required(format!("{base}.containers"), ""));
    }
    let mut names: Vec<String> = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let at = format!("{base}.containers[{i}]");
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            errs.push(required(format!("{at}.name"), ""));
        } else if !is_dns_label(name) {
            errs.push(invalid(format!("{at}.name"), &Value::from(name), DNS_LABEL_MESSAGE));
        } else if names.iter().any(|n| n == name) {
            errs.push(duplicate(format!("{at}.name"), &Value::from(name)));
        } else {
            names.push(name.to_string());
        }
        // Pod templates of workloads must name an image (a bare pod may leave it to a webhook).
        if c.get("image").and_then(Value::as_str).is_none_or(|s| s.trim().is_empty()) {
            errs.push(required(format!("{at}.image"), ""));
        }
        for (j, m) in c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let mount = m.get("name").and_then(Value::as_str).unwrap_or_default();
            if !volumes.contains(&mount) {
                errs.push(not_found(format!("{at}.volumeMounts[{j}].name"), &Value::from(mount)));
            }
            if m.get("mountPath").and_then(Value::as_str).is_none_or(str::is_empty) {
                errs.push(required(format!("{at}.volumeMounts[{j}].mountPath"), ""));
            }
        }
        for resource in ["cpu", "memory"] {
            let request = c.pointer(&format!("/resources/requests/{resource}")).and_then(Value::as_str);
            let limit = c.pointer(&format!("/resources/limits/{resource}")).and_then(Value::as_str);
            if let (Some(r), Some(l)) = (request, limit)
                && crate::quantity::parse_quantity(r) > crate::quantity::parse_quantity(l)
            {
                errs.push(invalid(
                    format!("{at}.resources.requests"),
                    &Value::from(r),
                    &format!("must be less than or equal to {resource} limit of {l}"),
                ));
            }
        }
    }
}

fn pod_failure_policy(policy: &Value, template: &Value, errs: &mut Vec<FieldError>) {
    let base = "spec.podFailurePolicy.rules";
    let rules = policy.get("rules").and_then(Value::as_array).cloned().unwrap_or_default();
    if rules.len() > 20 {
        errs.push(FieldError {
            field: base.into(),
            reason: "FieldValueTooMany",
            detail: format!("Too many: {}: must have at most 20 items", rules.len()),
        });
        return;
    }
    let containers: Vec<&str> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| template.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{base}[{i}]");
        let action = rule.get("action").cloned().unwrap_or(Value::Null);
        match action.as_str() {
            Some("FailJob" | "Ignore" | "Count") => {}
            None => errs.push(required(format!("{at}.action"), "")),
            Some(_) => {
                errs.push(unsupported(format!("{at}.action"), &action, &["Count", "FailIndex", "FailJob", "Ignore"]))
            }
        }
        match (rule.get("onExitCodes"), rule.get("onPodConditions")) {
            (Some(_), Some(_)) => errs.push(invalid(
                at.clone(),
                &Value::from(""),
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (None, None) => errs.push(invalid(
                at.clone(),
                &Value::from(""),
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            (Some(codes), None) => exit_codes(codes, &containers, &format!("{at}.onExitCodes"), errs),
            (None, Some(conditions)) => {
                for (j, c) in conditions.as_array().into_iter().flatten().enumerate() {
                    let cat = format!("{at}.onPodConditions[{j}]");
                    if c.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
                        errs.push(required(format!("{cat}.type"), ""));
                    }
                    let status = c.get("status").cloned().unwrap_or(Value::Null);
                    if !matches!(status.as_str(), Some("True" | "False" | "Unknown")) {
                        errs.push(unsupported(format!("{cat}.status"), &status, &["False", "True", "Unknown"]));
                    }
                }
            }
        }
    }
}

fn exit_codes(codes: &Value, containers: &[&str], at: &str, errs: &mut Vec<FieldError>) {
    if let Some(name) = codes.get("containerName").and_then(Value::as_str)
        && !containers.contains(&name)
    {
        errs.push(invalid(
            format!("{at}.containerName"),
            &Value::from(name),
            "must be one of the container or initContainer names in the pod template",
        ));
    }
    let operator = codes.get("operator").cloned().unwrap_or(Value::Null);
    if !matches!(operator.as_str(), Some("In" | "NotIn")) {
        errs.push(unsupported(format!("{at}.operator"), &operator, &["In", "NotIn"]));
    }
    let values: Vec<i64> =
        codes.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_i64).collect();
    if values.is_empty() {
        errs.push(required(format!("{at}.values"), "at least one value is required"));
    }
    for (k, v) in values.iter().enumerate() {
        let field = format!("{at}.values[{k}]");
        if k > 0 && values[k - 1] == *v {
            errs.push(duplicate(field.clone(), &Value::from(*v)));
        } else if k > 0 && values[k - 1] > *v {
            errs.push(invalid(field.clone(), &Value::from(*v), "must be ordered"));
        }
        if operator.as_str() == Some("In") && *v == 0 {
            errs.push(invalid(field, &Value::from(*v), "must not be 0 for the In operator"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(spec: Value) -> Value {
        json!({"metadata": {"name": "j"}, "spec": spec})
    }

    fn template() -> Value {
        json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "apply", "image": "x"}]}})
    }

    fn fields(e: ApiError) -> Vec<String> {
        e.details["causes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn a_plain_job_passes_and_each_broken_field_is_named() {
        validate(&job(json!({"backoffLimit": 3, "template": template()}))).unwrap();
        let e = validate(&job(json!({"backoffLimit": -1, "template": {"spec": {"containers": []}}}))).unwrap_err();
        assert_eq!(
            fields(e),
            ["spec.backoffLimit", "spec.template.spec.containers", "spec.template.spec.restartPolicy"]
        );
        let e =
            validate(&job(json!({"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "A"}]}}})))
                .unwrap_err();
        assert_eq!(
            fields(e),
            [
                "spec.template.spec.containers[0].name",
                "spec.template.spec.containers[0].image",
                "spec.template.spec.restartPolicy"
            ]
        );
    }

    #[test]
    fn mounts_name_volumes_and_requests_stay_within_limits() {
        let t = json!({"spec": {"restartPolicy": "Never", "volumes": [{"name": "state", "emptyDir": {}}],
            "containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "state", "mountPath": "/s"}, {"name": "gone", "mountPath": "/g"}],
            "resources": {"requests": {"cpu": "2", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        let e = validate(&job(json!({"template": t}))).unwrap_err();
        assert_eq!(
            fields(e),
            [
                "spec.template.spec.containers[0].volumeMounts[1].name",
                "spec.template.spec.containers[0].resources.requests"
            ]
        );
    }

    #[test]
    fn pod_failure_policies_are_checked_rule_by_rule() {
        let ok = json!({"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "apply", "operator": "In", "values": [2, 3, 4]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]});
        validate(&job(json!({"podFailurePolicy": ok, "template": template()}))).unwrap();
        let on_failure =
            json!({"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "apply", "image": "x"}]}});
        let e = validate(&job(json!({"podFailurePolicy": ok, "template": on_failure}))).unwrap_err();
        assert_eq!(fields(e), ["spec.template.spec.restartPolicy"]);
        let bad = json!({"rules": [
            {"action": "Retry", "onExitCodes": {"containerName": "other", "operator": "In", "values": [0, 4, 3]}},
            {"action": "Ignore"}]});
        let e = validate(&job(json!({"podFailurePolicy": bad, "template": template()}))).unwrap_err();
        assert_eq!(
            fields(e),
            [
                "spec.podFailurePolicy.rules[0].action",
                "spec.podFailurePolicy.rules[0].onExitCodes.containerName",
                "spec.podFailurePolicy.rules[0].onExitCodes.values[0]",
                "spec.podFailurePolicy.rules[0].onExitCodes.values[2]",
                "spec.podFailurePolicy.rules[1]"
            ]
        );
    }

    #[test]
    fn before_1_26_the_policy_is_dropped_as_a_disabled_feature() {
        let mut j = job(json!({"podFailurePolicy": {"rules": []}, "template": template()}));
        prepare(Minor::new(1, 25), &mut j);
        assert!(j["spec"].get("podFailurePolicy").is_none());
        let mut j = job(json!({"podFailurePolicy": {"rules": []}, "template": template()}));
        prepare(Minor::new(1, 26), &mut j);
        assert!(j["spec"].get("podFailurePolicy").is_some());
    }
}
