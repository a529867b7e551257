//! `k8s-upgrade plan` offline: removed APIs from manifests, per hop, with exit codes.

use std::path::Path;
use std::process::Command;

use crate::common::{TODAY, stderr, stdout};

/// Runs `k8s-upgrade plan` in `dir`, with a fixed today and no inherited output or kubeconfig.
fn plan_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_k8s-upgrade"))
        .arg("plan")
        .args(args)
        .current_dir(dir)
        .env("K8S_UPGRADE_TODAY", TODAY)
        .env_remove("K8S_UPGRADE_OUTPUT")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn manifests_tree(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-plan-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("deploy/sub")).unwrap();
    std::fs::write(
        dir.join("deploy/app.yaml"),
        "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: shop\n  namespace: web\n---\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n  namespace: web\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("deploy/sub/jobs.yml"),
        "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: report\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Values.name }}\n  labels: [oops\n",
    )
    .unwrap();
    std::fs::write(dir.join("deploy/sub/list.json"), r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"flowcontrol.apiserver.k8s.io/v1beta3","kind":"FlowSchema","metadata":{"name":"fs"}}]}"#).unwrap();
    std::fs::write(dir.join("deploy/README.md"), "apiVersion: policy/v1beta1\nkind: PodSecurityPolicy\n").unwrap();
    dir
}

#[test]
fn offline_plan_reports_every_removed_api_object_and_exits_3() {
    let dir = manifests_tree("removed");
    let o = plan_in(
        &dir,
        &["--distro", "kubeadm", "--from", "1.21.5", "--to", "1.33", "--manifests", "deploy", "-o", "json"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    assert_eq!(doc["kind"], "UpgradePlan");
    let removed: Vec<&serde_json::Value> =
        doc["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "API_REMOVED").collect();
    let mut got: Vec<String> = removed
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} {} {}",
                f["evidence"]["file"].as_str().unwrap(),
                f["evidence"]["document"],
                f["details"]["kind"].as_str().unwrap(),
                f["details"]["name"].as_str().unwrap(),
                f["details"]["removedIn"].as_str().unwrap(),
                f["details"]["replacement"].as_str().unwrap()
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "deploy/app.yaml 1 Ingress shop 1.22 networking.k8s.io/v1",
            "deploy/app.yaml 2 PodDisruptionBudget web 1.25 policy/v1",
            "deploy/sub/jobs.yml 1 CronJob report 1.25 batch/v1",
            "deploy/sub/list.json 1 FlowSchema fs 1.32 flowcontrol.apiserver.k8s.io/v1",
        ]
    );
    assert!(removed.iter().all(|f| f["severity"] == "blocker" && f["evidence"]["source"] == "manifest"));
    // The README is not a manifest; the Helm template is a warning naming file and document.
    assert!(!stdout(&o).contains("PodSecurityPolicy"));
    let err = stderr(&o);
    assert!(err.contains("deploy/sub/jobs.yml: document 2 is not valid YAML"), "{err}");
    // Every hop without removals says so.
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "API_REMOVALS_AT_HOP" && f["message"] == "no API removals at the hop to 1.23")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn offline_plan_with_current_apis_exits_0_and_renders() {
    let dir = manifests_tree("current");
    std::fs::remove_dir_all(dir.join("deploy")).unwrap();
    std::fs::create_dir_all(dir.join("ok")).unwrap();
    std::fs::write(dir.join("ok/app.yaml"), "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n").unwrap();
    let base = ["--distro", "kubeadm", "--from", "1.29.3", "--to", "1.31", "--kubelet", "1.29.3", "--manifests", "ok"];
    let o = plan_in(&dir, &[&base[..], &["--save", "plan.yaml"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    insta::assert_snapshot!("plan_kubeadm_1_29_to_1_31_table", stdout(&o));
    let saved = std::fs::read_to_string(dir.join("plan.yaml")).unwrap();
    assert!(saved.contains("kind: UpgradePlan"), "{saved}");
    let o = plan_in(&dir, &[&base[..], &["-o", "markdown"]].concat());
    insta::assert_snapshot!("plan_kubeadm_1_29_to_1_31_markdown", stdout(&o));
    // An unreadable manifest path is one clear line and exit 1.
    let o = plan_in(&dir, &["--distro", "kubeadm", "--from", "1.29.3", "--to", "1.31", "--manifests", "missing-dir"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("error: cannot read manifests at missing-dir"), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim_end().lines().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn plan_cmd(args: &[&str]) -> std::process::Output {
    plan_in(&std::env::temp_dir(), args)
}

#[test]
fn plan_against_the_simulated_demo_shows_every_evidence_kind() {
    let o = plan_cmd(&["--simulate", "--to", "1.27", "-o", "json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["distro"], "kubeadm", "inferred from the control-plane static pods");
    assert_eq!(doc["from"], "1.24.17");
    let sources: std::collections::BTreeSet<String> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "API_REMOVED")
        .filter_map(|f| f["evidence"]["source"].as_str().map(str::to_string))
        .collect();
    for s in ["helm-release", "last-applied", "served-objects", "request-metric"] {
        assert!(sources.contains(s), "evidence {s} missing: {sources:?}");
    }
    // The Helm release is named, never its values.
    let text = stdout(&o);
    assert!(text.contains(r#""release": "reports""#), "{text}");
    insta::assert_snapshot!("plan_simulate_demo_json", text);
    let o = plan_cmd(&["--simulate", "--to", "1.27"]);
    insta::assert_snapshot!("plan_simulate_demo_table", stdout(&o));
    let o = plan_cmd(&["--simulate", "--to", "1.27", "-o", "markdown"]);
    insta::assert_snapshot!("plan_simulate_demo_markdown", stdout(&o));
    let o = plan_cmd(&["--simulate", "--to", "1.27", "-o", "yaml"]);
    assert!(stdout(&o).starts_with("apiVersion: k8s-upgrade.dev/v1alpha1\nkind: UpgradePlan\n"), "{}", stdout(&o));
    insta::assert_snapshot!("plan_simulate_demo_yaml", stdout(&o));
}

#[test]
fn cluster_errors_are_one_line_and_exit_1() {
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-plan-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage");
    std::fs::write(&garbage, "this: [is not a kubeconfig").unwrap();
    let unreachable = dir.join("unreachable");
    std::fs::write(
        &unreachable,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n",
    )
    .unwrap();
    for (args, needle) in [
        (vec!["--kubeconfig", garbage.to_str().unwrap(), "--to", "1.30"], "kubeconfig"),
        (vec!["--kubeconfig", unreachable.to_str().unwrap(), "--context", "nope", "--to", "1.30"], "context 'nope'"),
        (vec!["--kubeconfig", unreachable.to_str().unwrap(), "--to", "1.30"], "127.0.0.1:1"),
    ] {
        let o = plan_cmd(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
        assert!(!err.contains("panicked"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dry_run_evictions_confirm_budgets_without_evicting_anything() {
    let c = crate::sim::Cluster::builtin("blocked", 50.0);
    let pods_before = c.stats()["objects"]["pods"].clone();
    let kubeconfig = c.kubeconfig.to_str().unwrap().to_string();
    let o = plan_cmd(&["--kubeconfig", &kubeconfig, "--to", "1.31", "--dry-run-evictions", "-o", "json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let blocker = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "PDB_BLOCKS_DRAIN")
        .expect("the strict budget blocks");
    assert_eq!(blocker["details"]["dryRunEviction"]["result"], "refused", "{blocker}");
    assert_eq!(blocker["details"]["dryRunEviction"]["status"], 429, "{blocker}");
    assert!(blocker["message"].as_str().unwrap().contains("Confirmed: the apiserver refused"), "{blocker}");
    // Dry run: nothing was evicted.
    let stats = c.stats();
    assert_eq!(stats["objects"]["pods"], pods_before, "{stats}");
    assert_eq!(stats["podsLost"], 0, "{stats}");
    // Without the flag, no eviction request reaches the server at all.
    let before = c.stats()["evictions"].clone();
    let o = plan_cmd(&["--kubeconfig", &kubeconfig, "--to", "1.31", "-o", "json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!stdout(&o).contains("dryRunEviction"));
    assert_eq!(c.stats()["evictions"], before);
}

/// A plain-HTTP server on loopback that answers every request with `body` (JSON), as an
/// apiserver that reports a version it made up.
fn fake_apiserver(body: &'static str) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn a_server_version_that_is_not_a_version_is_named() {
    let addr = fake_apiserver(
        r#"{"major":"1","minor":"29","gitVersion":"v1.29.3.4","gitCommit":"","gitTreeState":"","buildDate":"","goVersion":"","compiler":"","platform":"linux/amd64"}"#,
    );
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-it-badversion-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"http://{addr}\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let o = crate::common::run(&["plan", "--kubeconfig", kubeconfig.to_str().unwrap(), "--to", "1.30"]);
    let err = crate::common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("gitVersion \"v1.29.3.4\"") && err.contains("not a Kubernetes version"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn escape_sequences_and_newlines_never_reach_the_terminal_raw() {
    // An OSC window title, a clear-screen and a forged second line in values we print back.
    for bad in ["1.25\u{1b}]0;owned\u{7}", "1.25\u{1b}[2J", "1.25\nerror: forged", "1.2\u{202e}5"] {
        let o = crate::common::run(&["paths", "--distro", "kubeadm", "--from", "1.24", "--to", bad]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {err}");
        assert!(!err.contains('\u{1b}') && !err.contains('\u{7}') && !err.contains('\u{202e}'), "{bad:?}: {err:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{bad:?}: {err:?}");
    }
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-it-esc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("esc.yaml");
    std::fs::write(
        &scenario,
        "name: \"esc\\e]0;owned\\a\"\ncluster: { version: \"1.24.17\\e[2J\", distro: kubeadm }\n",
    )
    .unwrap();
    let o = crate::common::run(&["plan", "--simulate", scenario.to_str().unwrap(), "--to", "1.25"]);
    let err = stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
}

#[test]
fn a_usage_error_from_the_parser_never_prints_the_escapes_it_quotes() {
    let o =
        crate::common::run(&["apply", "--simulate", "--to", "1.25", "--yes", "--drain-timeout", "\u{1b}]0;owned\u{7}"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("invalid value") && err.contains("--drain-timeout"), "{err:?}");
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    // Help still comes out as clap writes it.
    let o = crate::common::run(&["paths", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("--distro"));
}

#[test]
fn the_inventory_of_a_mid_sized_cluster_reads_back_in_yaml_and_json() {
    // 120 nodes and 9,000 pods: past the YAML parser's default budget of 250,000 nodes (D11).
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-it-inventory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("mid.yaml");
    std::fs::write(
        &scenario,
        "name: mid\ncluster: { version: \"1.29.10\", distro: kubeadm }\nnodePools:\n  - { name: cp, count: 1, roles: [control-plane], taints: [{ key: node-role.kubernetes.io/control-plane, effect: NoSchedule }] }\n  - { name: w, count: 120, roles: [worker] }\nworkloads:\n  - { kind: Deployment, name: web, replicas: 9000 }\n",
    )
    .unwrap();
    for format in ["yaml", "json"] {
        let o = crate::common::run(&["inventory", "--simulate", scenario.to_str().unwrap(), "-o", format]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let file = dir.join(format!("inv.{format}"));
        std::fs::write(&file, &o.stdout).unwrap();
        let o = crate::common::run(&["plan", "--inventory", file.to_str().unwrap(), "--to", "1.30", "-o", "json"]);
        assert!(matches!(o.status.code(), Some(0) | Some(3)), "{format}: {}", stderr(&o));
        let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(plan["from"].as_str().unwrap().starts_with("1.29."), "{plan}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
