//! `-v` levels and `--log-format json`: diagnostics on stderr that a log pipeline can parse, the
//! command's own output untouched on stdout, and never a credential in a log line.

use crate::common::{command, stderr, stdout};

const TOKEN: &str = "logtest-admin-token-7c6b5a4d3e2f1a0b9c8d";

/// A small kubeadm cluster whose kubeconfig authenticates with a bearer token, so a log that
/// printed headers would show it.
fn token_scenario(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("token.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
name: token
cluster: {{ version: "1.24.17", distro: kubeadm }}
timings: {{ nodeRestartSeconds: 1, podStartSeconds: 0.5, apiserverRestartSeconds: 0.5 }}
nodePools:
  - {{ name: cp, count: 1, roles: [control-plane], taints: [{{ key: node-role.kubernetes.io/control-plane, effect: NoSchedule }}] }}
  - {{ name: w, count: 2, roles: [worker] }}
addons:
  - {{ name: kube-proxy, version: "1.24.17" }}
workloads:
  - {{ kind: Deployment, name: web, replicas: 2, pdb: {{ maxUnavailable: 1 }} }}
access:
  kubeconfigUser: token-admin
  users:
    - {{ name: token-admin, token: "{TOKEN}" }}
manifests: |
  apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {{ name: token-admin }}
  roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin }}
  subjects: [{{ kind: User, apiGroup: rbac.authorization.k8s.io, name: token-admin }}]
"#
        ),
    )
    .unwrap();
    path
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-it-logging-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l:?}\n{text}")))
        .collect()
}

#[test]
fn default_output_has_no_log_lines_and_plan_stdout_is_the_same_at_every_level() {
    let quiet = command().args(["plan", "--simulate", "demo", "--to", "1.26", "-o", "json"]).output().unwrap();
    let loud = command().args(["plan", "--simulate", "demo", "--to", "1.26", "-o", "json", "-vv"]).output().unwrap();
    assert_eq!(quiet.status.code(), loud.status.code());
    // The run id and times differ between runs; the plan's steps must not.
    let steps =
        |o: &std::process::Output| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["steps"].to_string();
    assert_eq!(steps(&quiet), steps(&loud));
    assert!(!stderr(&quiet).contains(" DEBUG ") && !stderr(&quiet).contains(" INFO "), "{}", stderr(&quiet));
    let loud_err = stderr(&loud);
    assert!(loud_err.contains(" INFO ") && loud_err.contains("connected"), "{loud_err}");
    assert!(loud_err.contains(" DEBUG ") && loud_err.contains("path=/api/v1/nodes"), "{loud_err}");
}

#[test]
fn json_format_makes_stderr_a_pure_log_stream_for_apply() {
    let dir = scratch("apply");
    let scenario = token_scenario(&dir);
    let o = command()
        .env("K8S_UPGRADE_TIME_SCALE", "0.05")
        .args(["apply", "--simulate"])
        .arg(&scenario)
        .args(["--to", "1.25", "--yes", "--log-format", "json", "-vv", "--journal"])
        .arg(dir.join("journal.json"))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}\n{}", stdout(&o));
    let lines = json_lines(&err);
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    // The run's own progress lines are log events, with the level and target a pipeline needs.
    assert!(messages.iter().any(|m| m.contains("cordoned")), "{messages:?}");
    assert!(messages.contains(&"cluster lock taken"), "{messages:?}");
    assert!(lines.iter().all(|l| l["level"].is_string() && l["timestamp"].is_string() && l["target"].is_string()));
    let requests = lines.iter().filter(|l| l["message"] == "request").count();
    let evictions: Vec<_> = lines.iter().filter(|l| l["message"] == "eviction").collect();
    assert!(requests > 50, "{requests} request lines");
    assert!(!evictions.is_empty() && evictions.iter().all(|e| e["code"].is_u64() && e["pod"].is_string()));
    // The summary is the command's output: stdout, not the log.
    assert!(stdout(&o).contains("Finished 1.24.17 → 1.25."), "{}", stdout(&o));
    assert!(!messages.iter().any(|m| m.starts_with("Finished")), "the summary leaked into the log");
    assert!(!err.contains(TOKEN), "the bearer token reached the log");
}

#[test]
fn the_most_verbose_level_never_logs_the_token() {
    let dir = scratch("trace");
    let scenario = token_scenario(&dir);
    let o = command()
        .args(["plan", "--simulate"])
        .arg(&scenario)
        .args(["--to", "1.25", "-vvvv"])
        .env("K8S_UPGRADE_LOG", "trace")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.code().is_some_and(|c| c == 0 || c == 3), "{err}");
    assert!(err.contains("TRACE") || err.contains("DEBUG"), "nothing logged at trace: {err}");
    assert!(!err.contains(TOKEN), "the bearer token reached a trace log");
    assert!(!err.to_ascii_lowercase().contains("authorization: bearer"), "{err}");
}

#[test]
fn a_bad_filter_is_named_and_the_verbose_level_kept() {
    let o = command()
        .args(["paths", "--distro", "kubeadm", "--from", "1.30", "--to", "1.31", "-v"])
        .env("K8S_UPGRADE_LOG", "k8s_upgrade=[[[")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: K8S_UPGRADE_LOG=\"k8s_upgrade=[[[\" is not a valid filter"),
        "{}",
        stderr(&o)
    );
    let o = command().args(["paths", "--log-format", "xml"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("xml"), "{}", stderr(&o));
}
