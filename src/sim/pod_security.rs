//! Pod Security admission, as the apiserver's built-in plugin enforces it on pod creation: a
//! namespace labelled `pod-security.kubernetes.io/enforce: baseline` or `restricted` refuses
//! pods that break the level, with the plugin's message (`violates PodSecurity
//! "baseline:latest": host namespaces (hostNetwork=true), privileged (container "c" must not set
//! securityContext.privileged=true)`). The checks are the ones a privileged node job, a
//! hostPath volume or a host port trips; the restricted level adds the container hardening
//! fields. Unlabelled namespaces are privileged (the apiserver's default configuration).

use serde_json::Value;

/// Capabilities the baseline level allows a container to add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];
/// Volume types the restricted level allows.
const RESTRICTED_VOLUMES: &[&str] =
    &["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect()
}

fn name(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
}

fn plural(names: &[&str], one: &str, many: &str) -> String {
    format!("{} {}", if names.len() == 1 { one } else { many }, quoted(names))
}

/// The checks of `level` (`baseline` or `restricted`) the pod fails, in the plugin's wording.
pub fn violations(level: &str, pod: &Value) -> Vec<String> {
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let cs = containers(&spec);
    let mut out = Vec::new();
    let host: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|k| spec.get(**k).and_then(Value::as_bool) == Some(true))
        .map(|k| format!("{k}=true"))
        .collect();
    if !host.is_empty() {
        out.push(format!("host namespaces ({})", host.join(", ")));
    }
    let privileged: Vec<&str> = cs
        .iter()
        .filter(|c| c.pointer("/securityContext/privileged").and_then(Value::as_bool) == Some(true))
        .map(|c| name(c))
        .collect();
    if !privileged.is_empty() {
        out.push(format!(
            "privileged ({} must not set securityContext.privileged=true)",
            plural(&privileged, "container", "containers")
        ));
    }
    let volumes: Vec<&Value> =
        spec.get("volumes").and_then(Value::as_array).map(|v| v.iter().collect()).unwrap_or_default();
    let host_path: Vec<&str> = volumes
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .map(|v| v.get("name").and_then(Value::as_str).unwrap_or_default())
        .collect();
    if !host_path.is_empty() {
        out.push(format!("hostPath volumes ({})", plural(&host_path, "volume", "volumes")));
    }
    let ports: Vec<String> = cs
        .iter()
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("hostPort").and_then(Value::as_i64).filter(|p| *p != 0))
                .map(move |p| format!("container \"{}\" uses hostPort {p}", name(c)))
        })
        .collect();
    if !ports.is_empty() {
        out.push(format!("hostPort ({})", ports.join(", ")));
    }
    let caps: Vec<String> = cs
        .iter()
        .flat_map(|c| {
            c.pointer("/securityContext/capabilities/add")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|cap| !BASELINE_CAPABILITIES.contains(cap))
                .map(move |cap| {
                    format!("container \"{}\" must not include \"{cap}\" in securityContext.capabilities.add", name(c))
                })
        })
        .collect();
    if !caps.is_empty() {
        out.push(format!("non-default capabilities ({})", caps.join(", ")));
    }
    if level != "restricted" {
        return out;
    }
    let restricted_volumes: Vec<&str> = volumes
        .iter()
        .filter(|v| {
            v.as_object().is_some_and(|o| o.keys().any(|k| k != "name" && !RESTRICTED_VOLUMES.contains(&k.as_str())))
        })
        .map(|v| v.get("name").and_then(Value::as_str).unwrap_or_default())
        .collect();
    if !restricted_volumes.is_empty() {
        out.push(format!("restricted volume types ({})", plural(&restricted_volumes, "volume", "volumes")));
    }
    let escalation: Vec<&str> = cs
        .iter()
        .filter(|c| c.pointer("/securityContext/allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false))
        .map(|c| name(c))
        .collect();
    if !escalation.is_empty() {
        out.push(format!(
            "allowPrivilegeEscalation != false ({} must set securityContext.allowPrivilegeEscalation=false)",
            plural(&escalation, "container", "containers")
        ));
    }
    let undropped: Vec<&str> = cs
        .iter()
        .filter(|c| {
            !c.pointer("/securityContext/capabilities/drop")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x == "ALL"))
        })
        .map(|c| name(c))
        .collect();
    if !undropped.is_empty() {
        out.push(format!(
            "unrestricted capabilities ({} must set securityContext.capabilities.drop=[\"ALL\"])",
            plural(&undropped, "container", "containers")
        ));
    }
    let pod_non_root = spec.pointer("/securityContext/runAsNonRoot").and_then(Value::as_bool) == Some(true);
    let root: Vec<&str> = cs
        .iter()
        .filter(|c| match c.pointer("/securityContext/runAsNonRoot").and_then(Value::as_bool) {
            Some(v) => !v,
            None => !pod_non_root,
        })
        .map(|c| name(c))
        .collect();
    if !root.is_empty() {
        out.push(format!(
            "runAsNonRoot != true (pod or {} must set securityContext.runAsNonRoot=true)",
            plural(&root, "container", "containers")
        ));
    }
    let good = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|t| t == "RuntimeDefault" || t == "Localhost");
    let pod_seccomp = good(spec.pointer("/securityContext/seccompProfile/type"));
    let seccomp: Vec<&str> = cs
        .iter()
        .filter(|c| match c.pointer("/securityContext/seccompProfile/type") {
            Some(t) => !good(Some(t)),
            None => !pod_seccomp,
        })
        .map(|c| name(c))
        .collect();
    if !seccomp.is_empty() {
        out.push(format!(
            "seccompProfile (pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            plural(&seccomp, "container", "containers")
        ));
    }
    out
}

/// The level a namespace enforces (`privileged` when unlabelled or unknown).
pub fn enforced(namespace: &Value) -> String {
    namespace
        .pointer("/metadata/labels/pod-security.kubernetes.io~1enforce")
        .and_then(Value::as_str)
        .filter(|l| matches!(*l, "baseline" | "restricted"))
        .unwrap_or("privileged")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node_job() -> Value {
        json!({"spec": {"hostPID": true, "hostNetwork": true, "hostIPC": true, "containers": [
            {"name": "upgrade", "image": "busybox", "securityContext": {"privileged": true}}
        ]}})
    }

    #[test]
    fn baseline_refuses_a_privileged_node_job_in_the_plugins_words() {
        assert_eq!(
            violations("baseline", &node_job()),
            vec![
                "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)".to_string(),
                "privileged (container \"upgrade\" must not set securityContext.privileged=true)".to_string(),
            ]
        );
    }

    #[test]
    fn restricted_adds_the_hardening_fields_and_a_hardened_pod_passes() {
        let plain = json!({"spec": {"containers": [{"name": "app", "image": "x"}]}});
        assert!(violations("baseline", &plain).is_empty());
        assert_eq!(violations("restricted", &plain).len(), 4);
        let hardened = json!({"spec": {"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "containers": [{"name": "app", "image": "x", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}});
        assert!(violations("restricted", &hardened).is_empty(), "{:?}", violations("restricted", &hardened));
    }

    #[test]
    fn unlabelled_namespaces_are_privileged() {
        assert_eq!(enforced(&json!({"metadata": {"name": "x"}})), "privileged");
        assert_eq!(
            enforced(&json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}})),
            "baseline"
        );
    }
}
