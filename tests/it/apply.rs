//! `k8s-upgrade apply` against the simulator: the whole demo path, and each fault the executor
//! must survive (budgets, dead nodes, API errors, dropped watches, SIGKILL, Ctrl-C, the lock).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{stderr, stdout};
use crate::sim::Cluster;

/// An apply command against the harness cluster: isolated HOME, journal and events in its dir.
fn apply_cmd(c: &Cluster, args: &[&str]) -> Command {
    apply_cmd_at(c, &journal(c), &events(c), args)
}

/// The same with its own journal and events files (for a second run on the same cluster).
fn apply_cmd_at(c: &Cluster, journal: &Path, events: &Path, args: &[&str]) -> Command {
    let mut cmd = crate::common::command();
    cmd.env("HOME", c.dir.join("home"))
        .arg("apply")
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .arg("--journal")
        .arg(journal)
        .arg("--events")
        .arg(events)
        .args(["--yes", "--gate-passes", "1"])
        .args(args)
        .args(if args.contains(&"--upgrader") { &[][..] } else { &["--upgrader", "sim"][..] })
        .stdin(Stdio::null());
    cmd
}

/// A kubeadm cluster at 1.30.4 with kube-proxy: `control_planes` control-plane nodes (tainted),
/// the worker pools given as `nodePools` YAML lines, and `rest` (workloads, timings, ...) as YAML.
fn scenario_130(
    name: &str,
    control_planes: u32,
    worker_pools: &str,
    rest: &str,
) -> Result<k8s_upgrade::sim::Scenario, k8s_upgrade::sim::ScenarioError> {
    k8s_upgrade::sim::Scenario::parse(
        name,
        &format!(
            "name: {name}\ncluster: {{ version: \"1.30.4\", distro: kubeadm }}\nnodePools:\n  - {{ name: cp, count: {control_planes}, roles: [control-plane], taints: [{{ key: node-role.kubernetes.io/control-plane, effect: NoSchedule }}] }}\n{}addons:\n  - {{ name: kube-proxy, version: \"1.30.4\" }}\n{}",
            worker_pools.trim_start_matches('\n'),
            rest.trim_start_matches('\n'),
        ),
    )
}

fn journal(c: &Cluster) -> PathBuf {
    c.dir.join("journal.json")
}

fn events(c: &Cluster) -> PathBuf {
    c.dir.join("events.jsonl")
}

fn apply(c: &Cluster, args: &[&str]) -> Output {
    let o = apply_cmd(c, args).output().expect("run apply");
    c.assert_no_credentials(&[&stdout(&o), &stderr(&o)]);
    o
}

fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn node_doc(c: &Cluster, name: &str) -> Value {
    c.get_json(&format!("/api/v1/nodes/{name}"))
}

#[test]
fn the_demo_path_runs_end_to_end_with_no_budget_violated_and_no_pod_lost() {
    let c = Cluster::builtin("demo", 0.02);
    let o = apply(&c, &["--to", "1.27", "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    c.assert_finished_clean("1.27");
    // Control plane before nodes at every hop, add-on steps before the hop that needs them.
    let ev = read_events(&events(&c));
    let steps: Vec<(String, String)> = ev
        .iter()
        .filter(|e| e["event"] == "step-start")
        .map(|e| (e["kind"].as_str().unwrap().to_string(), e["description"].as_str().unwrap().to_string()))
        .collect();
    let first_cp = steps.iter().position(|s| s.0 == "control-plane").unwrap();
    let first_nodes = steps.iter().position(|s| s.0 == "nodes").unwrap();
    assert!(first_cp < first_nodes, "{steps:?}");
    let kube_proxy = steps.iter().position(|s| s.0 == "addon" && s.1.contains("kube-proxy")).unwrap();
    let cp_127 = steps.iter().position(|s| s.0 == "control-plane" && s.1.contains("→ 1.27")).unwrap();
    assert!(kube_proxy < cp_127, "{steps:?}");
    // The node phases in order for one worker, and a journal that says finished.
    let phases: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "node" && e["node"] == "pool-a-1" && e["step"] == ev_step(&ev, "nodes"))
        .map(|e| e["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["cordoned", "drained", "upgrading", "upgraded", "done"]);
    let j: Value = serde_json::from_str(&std::fs::read_to_string(journal(&c)).unwrap()).unwrap();
    assert_eq!(j["finished"], true);
    assert!(stdout(&o).contains("Finished 1.24.17 → 1.27.16"), "{}", stdout(&o));
    // The lock is released.
    let (status, _) =
        c.http("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/k8s-upgrade-lock", "", "");
    assert_eq!(status, 404);
}

/// The order of the first step of `kind`.
fn ev_step(ev: &[Value], kind: &str) -> Value {
    ev.iter().find(|e| e["event"] == "step-start" && e["kind"] == kind).map(|e| e["step"].clone()).unwrap()
}

#[test]
fn a_budget_that_never_allows_stops_the_run_before_the_node_is_cordoned_with_the_budget_named() {
    let c = Cluster::builtin("blocked", 0.02);
    // The plan already sees it: apply does not start.
    let o = apply(&c, &["--to", "1.31"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("PDB_BLOCKS_DRAIN") && stderr(&o).contains("--ignore-blockers"), "{}", stderr(&o));
    // Told to go on anyway, it stops where the budget bites: before that node is touched, with
    // no pod of it evicted for nothing.
    let o = apply(&c, &["--to", "1.31", "--ignore-blockers", "--drain-timeout", "20s"]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("PodDisruptionBudget payments/ledger-strict can never allow"), "{out}");
    assert!(out.contains("the node was not cordoned"), "{out}");
    assert!(out.contains("to continue: k8s-upgrade apply --resume"), "{out}");
    let stats = c.stats();
    assert!(stats["nodes"].as_array().unwrap().iter().all(|n| n["schedulable"] == true), "{stats}");
    assert_eq!(stats["pdbViolations"], 0);
}

#[test]
fn a_budget_its_operator_relaxes_is_waited_for_and_named() {
    let c = pinned_cluster();
    // A KubeVirt-style budget: owned by the VM, minAvailable 1 over its one pod, relaxed by
    // the operator once a live migration is possible.
    let pdb = r#"{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"kubevirt-disruption-budget-x","namespace":"default","ownerReferences":[{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachineInstance","name":"vm-1","uid":"7c1e","controller":true}]},"spec":{"minAvailable":1,"selector":{"matchLabels":{"app":"pinned"}}}}"#;
    let (status, body) =
        c.http("POST", "/apis/policy/v1/namespaces/default/poddisruptionbudgets", "application/json", pdb);
    assert!(status < 300, "{status} {body}");
    let pods = c.get_json("/api/v1/namespaces/default/pods");
    let labels = &pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"].as_str().unwrap().starts_with("pinned"))
        .unwrap()["metadata"]["labels"];
    assert_eq!(labels["app"], "pinned", "{labels}");
    // The plan warns and names the operator instead of refusing.
    let mut child = spawn_apply(&c, &["--to", "1.31"]);
    wait_event(&c, Duration::from_secs(60), |e| {
        e["event"] == "eviction-refused"
            && e["budget"] == "default/kubevirt-disruption-budget-x"
            && e["why"].as_str().is_some_and(|l| l.contains("managed by VirtualMachineInstance vm-1"))
    });
    // The operator relaxes it.
    let (status, body) = c.http(
        "PATCH",
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/kubevirt-disruption-budget-x",
        "application/merge-patch+json",
        r#"{"spec":{"minAvailable":0}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(120), "apply did not finish once the budget was relaxed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    c.assert_finished_clean("1.31");
    // With a patience shorter than the operator takes, the drain gives up naming it.
    let c = pinned_cluster();
    let (status, body) =
        c.http("POST", "/apis/policy/v1/namespaces/default/poddisruptionbudgets", "application/json", pdb);
    assert!(status < 300, "{status} {body}");
    let o = apply(&c, &["--to", "1.31", "--budget-patience", "2s"]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("managed by VirtualMachineInstance vm-1, allowed no eviction"), "{}", stdout(&o));
}

#[test]
fn a_node_that_never_comes_back_stops_the_run_with_the_journal_intact() {
    let c = Cluster::builtin("demo", 0.02);
    let (status, body) = c.http("PATCH", "/sim/faults", "application/json", r#"{"nodesNeverReady": ["cp-2"]}"#);
    assert_eq!(status, 200, "{body}");
    let o = apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force", "--node-timeout", "3s"]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("cp-2 did not come back Ready at 1.25"), "{}", stdout(&o));
    let j: Value = serde_json::from_str(&std::fs::read_to_string(journal(&c)).unwrap()).unwrap();
    assert_eq!(j["finished"], false);
    let stuck: Vec<&Value> =
        j["nodes"].as_object().unwrap().values().filter(|r| r["phase"] == "upgrade-finished").collect();
    assert_eq!(stuck.len(), 1, "{j}");
    assert_eq!(stuck[0]["weCordoned"], true);
    // A fresh run does not write over that journal: it is the only record of what was cordoned.
    let before = std::fs::read_to_string(journal(&c)).unwrap();
    let o = apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("holds the unfinished run") && err.contains("which left cordoned cp-2"), "{err}");
    assert!(err.contains("k8s-upgrade apply --resume --journal") && err.contains("move"), "{err}");
    assert_eq!(std::fs::read_to_string(journal(&c)).unwrap(), before);
}

#[test]
fn transient_errors_429_storms_and_dropped_watches_are_ridden_out() {
    let c = Cluster::builtin("demo", 0.02);
    // The last two reach the add-on steps: kube-proxy is a DaemonSet read, CoreDNS a Deployment
    // patched (D28).
    let faults = r#"{"errors": [
        {"verb": "evict", "code": 429, "rate": 0.5},
        {"verb": "list", "resource": "pods", "code": 503, "rate": 0.2},
        {"verb": "patch", "resource": "nodes", "code": 500, "rate": 0.1},
        {"verb": "get", "resource": "nodes", "code": 503, "rate": 0.1},
        {"verb": "get", "resource": "daemonsets", "code": 503, "rate": 0.3},
        {"verb": "patch", "resource": "deployments", "code": 503, "rate": 0.3}
    ], "dropWatchesEverySeconds": 0.3}"#;
    let (status, body) = c.http("PUT", "/sim/faults", "application/json", faults);
    assert_eq!(status, 200, "{body}");
    let o = apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let stats = c.stats();
    assert_eq!(stats["pdbViolations"], 0, "{stats}");
    assert_eq!(stats["podsLost"], 0, "{stats}");
    let injected: u64 = stats["injectedErrors"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(injected > 10, "{stats}");
}

fn spawn_apply(c: &Cluster, args: &[&str]) -> Child {
    apply_cmd(c, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn apply")
}

/// Waits until the events file shows `pred`, or panics after `limit`.
fn wait_event(c: &Cluster, limit: Duration, pred: impl Fn(&Value) -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if read_events(&events(c)).iter().any(&pred) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("event not seen within {limit:?}: {:?}", read_events(&events(c)).last());
}

#[test]
fn sigkill_mid_drain_then_resume_finishes_without_draining_a_node_twice() {
    let c = Cluster::builtin("demo", 0.02);
    // Slow terminations so the kill lands while a drain waits.
    let (status, _) = c.http("PATCH", "/sim/faults", "application/json", r#"{"latencyMs": 5}"#);
    assert_eq!(status, 200);
    let mut child = spawn_apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force"]);
    wait_event(&c, Duration::from_secs(60), |e| {
        e["event"] == "node"
            && e["phase"] == "cordoned"
            && e["kind"].is_null()
            && e["node"].as_str().is_some_and(|n| n.starts_with("pool-"))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let before = read_events(&events(&c));
    let done_before: Vec<String> = before
        .iter()
        .filter(|e| e["event"] == "node" && e["phase"] == "done")
        .map(|e| format!("{}/{}", e["step"], e["node"]))
        .collect();
    std::fs::remove_file(events(&c)).unwrap();
    let o = apply(&c, &["--resume", "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    // Gated against the health from before the run, not what the kill left behind.
    assert!(stderr(&o).contains("baseline (from the journal, taken when the run began)"), "{}", stderr(&o));
    let after = read_events(&events(&c));
    for e in after.iter().filter(|e| e["event"] == "node" && e["phase"] == "cordoned") {
        let key = format!("{}/{}", e["step"], e["node"]);
        assert!(!done_before.contains(&key), "{key} was finished before the kill and drained again");
    }
    c.assert_finished_clean("1.25");
}

#[test]
fn ctrl_c_stops_at_a_safe_point_with_exit_130_and_resumes() {
    let c = Cluster::builtin("demo", 0.02);
    let child = spawn_apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force"]);
    wait_event(&c, Duration::from_secs(60), |e| e["event"] == "node" && e["phase"] == "drained");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("to continue: k8s-upgrade apply --resume"), "{}", stdout(&o));
    let o = apply(&c, &["--resume", "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let stats = c.stats();
    assert_eq!(stats["podsLost"], 0, "{stats}");
    assert!(stats["nodes"].as_array().unwrap().iter().all(|n| n["schedulable"] == true), "{stats}");
}

#[test]
fn a_second_apply_is_refused_by_the_lock_and_names_the_holder() {
    let c = Cluster::builtin("demo", 0.02);
    let lease = r#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"k8s-upgrade-lock","namespace":"kube-system"},"spec":{"holderIdentity":"alice@bastion/run-1","leaseDurationSeconds":600,"renewTime":"2099-01-01T00:00:00.000000Z"}}"#;
    let (status, body) =
        c.http("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", "application/json", lease);
    assert!(status < 300, "{status} {body}");
    let o = apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("alice@bastion/run-1") && stderr(&o).contains("--break-lock"), "{}", stderr(&o));
    assert!(c.stats()["nodes"].as_array().unwrap().iter().all(|n| n["schedulable"] == true));
}

#[test]
fn two_applies_started_together_one_runs_and_the_other_is_refused_naming_it() {
    let c = Cluster::builtin("demo", 0.02);
    let args = ["--to", "1.25", "--delete-emptydir-data", "--force"];
    let (ja, jb) = (c.dir.join("a.json"), c.dir.join("b.json"));
    let piped = |mut cmd: Command| cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn apply");
    let a = piped(apply_cmd_at(&c, &ja, &c.dir.join("a.jsonl"), &args));
    let b = piped(apply_cmd_at(&c, &jb, &c.dir.join("b.jsonl"), &args));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(codes, [Some(0), Some(1)], "a: {}\nb: {}", stderr(&a), stderr(&b));
    let (winner, loser) = if a.status.success() { (&ja, &b) } else { (&jb, &a) };
    let run_id = serde_json::from_str::<Value>(&std::fs::read_to_string(winner).unwrap()).unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(stderr(loser).contains(&run_id) && stderr(loser).contains("--break-lock"), "{}", stderr(loser));
    c.assert_finished_clean("1.25");
}

#[test]
fn a_node_cordoned_before_the_run_is_upgraded_and_left_cordoned() {
    let c = Cluster::builtin("demo", 0.02);
    let (status, body) =
        c.http("PATCH", "/api/v1/nodes/pool-a-2", "application/merge-patch+json", r#"{"spec":{"unschedulable":true}}"#);
    assert_eq!(status, 200, "{body}");
    let o = apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("pool-a-2: was already cordoned; it will stay cordoned"), "{}", stderr(&o));
    for n in c.stats()["nodes"].as_array().unwrap() {
        assert!(n["kubeletVersion"].as_str().unwrap().starts_with("v1.25."), "{n}");
        assert_eq!(n["schedulable"], n["name"] != "pool-a-2", "{n}");
    }
    // Our notes are not left on a node we did not cordon.
    let annotations = node_doc(&c, "pool-a-2")["metadata"]["annotations"].clone();
    assert!(
        annotations.get("k8s-upgrade.dev/cordoned-by").is_none() && annotations.get("k8s-upgrade.dev/phase").is_none(),
        "{annotations}"
    );
}

#[test]
fn cordon_does_not_trust_a_lagging_view_of_the_node() {
    let c = Cluster::builtin("demo", 0.02);
    let client = c.kube_client();
    let cache =
        c.rt.block_on(k8s_upgrade::exec::cache::Cache::start(&client, Duration::from_secs(30), true))
            .expect("watches start");
    // Someone cordons the node; whether or not the watch has seen it yet, cordon must find out.
    let (status, body) = c.http(
        "PATCH",
        "/api/v1/nodes/pool-b-1",
        "application/merge-patch+json",
        r#"{"spec":{"unschedulable":true},"metadata":{"annotations":{"k8s-upgrade.dev/cordoned-by":"other-run"}}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let found = c.rt.block_on(k8s_upgrade::exec::drain::cordon(&client, &cache, "pool-b-1", "this-run")).unwrap();
    assert_eq!(found, k8s_upgrade::exec::drain::Cordon { already: true, by: Some("other-run".into()) });
    let fresh = c.rt.block_on(k8s_upgrade::exec::drain::cordon(&client, &cache, "pool-b-2", "this-run")).unwrap();
    assert_eq!(fresh, k8s_upgrade::exec::drain::Cordon { already: false, by: Some("this-run".into()) });
    let doc = node_doc(&c, "pool-b-2");
    assert_eq!(doc["spec"]["unschedulable"], true);
    assert_eq!(doc["metadata"]["annotations"]["k8s-upgrade.dev/cordoned-by"], "this-run");
}

#[test]
fn the_command_upgrader_passes_hostile_names_as_single_arguments() {
    let c = Cluster::builtin("demo", 0.02);
    let script = c.dir.join("upgrade.sh");
    let record = c.dir.join("argv.log");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s|' \"$@\" >> {rec}\necho >> {rec}\nprintf 'env %s %s\\n' \"$K8S_UPGRADE_NODE\" \"$K8S_UPGRADE_VERSION\" >> {rec}\n",
            rec = record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // A node name full of shell metacharacters reaches the script as one argument, unexpanded.
    let hostile = "n1;touch pwned`id`$(id)";
    let action = k8s_upgrade::exec::upgrader::Action {
        subject: hostile.into(),
        role: k8s_upgrade::exec::upgrader::Role::Worker,
        target: "1.25.16".into(),
        from: None,
        workload: None,
    };
    let up = k8s_upgrade::exec::upgrader::Upgrader::Command {
        argv: vec![script.display().to_string(), "--node".into(), "{node}".into(), "{version}".into()],
        timeout: Duration::from_secs(10),
    };
    let client = c.kube_client();
    let cancel = k8s_upgrade::exec::Cancel::new();
    c.rt.block_on(up.run(&client, &action, &cancel, None, &|_| {})).map_err(|e| e.to_string()).unwrap();
    let text = std::fs::read_to_string(&record).unwrap();
    assert_eq!(text, format!("--node|{hostile}|1.25.16|\nenv {hostile} 1.25.16\n"));
    assert!(!c.dir.join("pwned").exists() && !Path::new("pwned").exists());
    // And through apply, the command upgrader drives real nodes (the sim annotation is set by
    // the script through kubectl-free HTTP here: it only records, so the node never upgrades).
    let o = apply(
        &c,
        &[
            "--to",
            "1.25",
            "--upgrader",
            "command",
            "--upgrade-command",
            &format!("{} {{node}} {{version}}", script.display()),
            "--node-timeout",
            "1s",
            "--delete-emptydir-data",
            "--force",
            "--acknowledge-all",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(
        std::fs::read_to_string(&record).unwrap().contains("cp-1|1.25.16|"),
        "{}",
        std::fs::read_to_string(&record).unwrap()
    );
}

#[test]
fn dry_run_changes_nothing() {
    let c = Cluster::builtin("demo", 0.02);
    let o = apply(&c, &["--to", "1.25", "--dry-run", "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("dry run: would evict"), "{}", stderr(&o));
    // The summary says what a dry run is: nothing done, nothing upgraded (D37).
    let out = stdout(&o);
    assert!(out.contains("Dry run finished 1.24.17 → 1.25.16"), "{out}");
    assert!(out.contains("steps walked through") && out.contains("nodes would be upgraded"), "{out}");
    assert!(out.contains("nothing was changed") && !out.contains("nodes upgraded"), "{out}");
    let stats = c.stats();
    assert_eq!(stats["evictions"], 0, "dry-run evictions are not counted as evictions: {stats}");
    assert!(
        stats["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["schedulable"] == true && n["kubeletVersion"].as_str().unwrap().starts_with("v1.2"))
    );
    assert!(!journal(&c).exists());
}

#[test]
fn apply_without_a_terminal_needs_yes_and_bad_flags_are_named() {
    let o = crate::common::run(&["apply", "--simulate", "--to", "1.25"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--yes"), "{}", stderr(&o));
    let o = crate::common::run(&["apply", "--simulate", "--to", "1.25", "--yes", "--drain-timeout", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'soon'"), "{}", stderr(&o));
    let o = crate::common::run(&["apply", "--simulate", "--to", "1.25", "--yes", "--window-end", "tomorrow"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--window-end tomorrow"), "{}", stderr(&o));
}

#[test]
fn a_saved_plan_runs_only_while_the_cluster_matches_it() {
    let c = Cluster::builtin("demo", 0.02);
    let saved = c.dir.join("plan.yaml");
    let kubeconfig = c.kubeconfig.to_str().unwrap().to_string();
    let o =
        crate::common::run(&["plan", "--kubeconfig", &kubeconfig, "--to", "1.25", "--save", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // A plan made when the cluster was elsewhere no longer matches it: refused with the difference.
    let text = std::fs::read_to_string(&saved).unwrap();
    assert!(text.contains("\nfrom: \"1.24.17\"\n"), "{text}");
    let stale = c.dir.join("stale.yaml");
    std::fs::write(&stale, text.replacen("\nfrom: \"1.24.17\"\n", "\nfrom: \"1.24.10\"\n", 1)).unwrap();
    let o = apply(&c, &["--plan", stale.to_str().unwrap(), "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("drifted") && stderr(&o).contains("from: plan 1.24.10 / cluster now 1.24.17"),
        "{}",
        stderr(&o)
    );
    assert!(!journal(&c).exists());
    // The saved plan itself runs.
    let o = apply(&c, &["--plan", saved.to_str().unwrap(), "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
}

#[test]
fn a_plan_saved_through_a_waypoint_is_checked_against_the_same_waypoint() {
    let c = Cluster::builtin("demo", 0.02);
    let saved = c.dir.join("plan.yaml");
    let kubeconfig = c.kubeconfig.to_str().unwrap().to_string();
    let o = crate::common::run(&[
        "plan",
        "--kubeconfig",
        &kubeconfig,
        "--to",
        "1.26",
        "--via",
        "1.25.3",
        "--save",
        saved.to_str().unwrap(),
    ]);
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&saved).unwrap().contains("1.25.3"));
    // Planned again without the waypoint, the first hop would land on 1.25's newest patch and
    // the saved plan would be refused as drifted.
    let o = apply(&c, &["--plan", saved.to_str().unwrap(), "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
}

#[test]
fn a_closing_window_stops_before_a_node_with_exit_4() {
    let c = Cluster::builtin("demo", 0.02);
    let o = apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force", "--window-end", "2000-01-01T00:00:00Z"]);
    assert_eq!(o.status.code(), Some(4), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("maintenance window closes before cp-1"), "{}", stdout(&o));
    assert!(stdout(&o).contains("to continue: k8s-upgrade apply --resume"), "{}", stdout(&o));
    assert!(c.stats()["nodes"].as_array().unwrap().iter().all(|n| n["schedulable"] == true));
}

#[test]
fn the_window_is_judged_by_the_node_estimate_before_any_node_and_by_measured_nodes_after_a_resume() {
    let c = Cluster::builtin("demo", 0.02);
    let in_minutes = |m: i64| {
        let t = k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(m * 60);
        t.to_string()
    };
    // Five minutes left and nothing measured: the 10-minute estimate says the first node
    // cannot finish.
    let end = in_minutes(5);
    let o = apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force", "--window-end", &end]);
    assert_eq!(o.status.code(), Some(4), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("the --node-estimate until one is measured"), "{}", stdout(&o));
    assert!(c.stats()["nodes"].as_array().unwrap().iter().all(|n| n["schedulable"] == true));
    // With a smaller estimate the resumed run starts and finishes in time.
    let o =
        apply(&c, &["--resume", "--delete-emptydir-data", "--force", "--window-end", &end, "--node-estimate", "1s"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
}

/// `'…'` for sh: the harness's own paths, never cluster data.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// What an apply on a terminal printed, and the prompts it asked in order.
struct TerminalRun {
    code: Option<i32>,
    output: String,
    prompts: Vec<String>,
}

/// Runs apply on a pseudo-terminal (through util-linux `script`), answering each prompt with
/// `answer(prompt)`. `None` (with the reason printed) when `script` is not installed.
fn apply_on_terminal(c: &Cluster, args: &[&str], answer: impl Fn(&str) -> &'static str) -> Option<TerminalRun> {
    use std::io::{Read, Write};
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed, so no pseudo-terminal for the prompts");
        return None;
    }
    let cmd = apply_cmd(c, args);
    let mut line: Vec<String> = vec![sh_quote(&cmd.get_program().to_string_lossy())];
    line.extend(cmd.get_args().filter(|a| *a != "--yes").map(|a| sh_quote(&a.to_string_lossy())));
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let mut child = script.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let mut prompts = Vec::new();
    let mut answered = 0;
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        let text = strip_ansi(&String::from_utf8_lossy(&seen.lock().unwrap()));
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let tail: String = text.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("apply on a terminal did not finish; prompts {prompts:#?}; output ends: {tail}");
        }
        let asked: Vec<usize> =
            text.match_indices("[y/N] ").chain(text.match_indices("[a]bort? ")).map(|(i, m)| i + m.len()).collect();
        let mut asked = asked;
        asked.sort();
        if let Some(&end) = asked.get(answered) {
            // The question's last two lines (a stuck drain says why on the line before).
            let since = if answered == 0 { 0 } else { asked[answered - 1] };
            let lines: Vec<&str> =
                text[since..end].split(['\n', '\r']).map(str::trim).filter(|l| !l.is_empty()).collect();
            let prompt = lines[lines.len().saturating_sub(2)..].join("\n");
            writeln!(stdin, "{}", answer(&prompt)).unwrap();
            prompts.push(prompt);
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    reader.join().unwrap();
    let output = strip_ansi(&String::from_utf8_lossy(&seen.lock().unwrap()));
    Some(TerminalRun { code, output, prompts })
}

/// `apply --to 1.25` on a fresh demo cluster on a terminal, every question answered `answer`.
fn demo_on_terminal(answer: &'static str) -> Option<(Cluster, TerminalRun)> {
    let c = Cluster::builtin("demo", 0.02);
    let run = apply_on_terminal(&c, &["--to", "1.25", "--delete-emptydir-data", "--force"], |_| answer)?;
    Some((c, run))
}

#[test]
fn on_a_terminal_apply_asks_before_starting_before_the_control_plane_and_after_the_canary() {
    let Some((c, run)) = demo_on_terminal("y") else { return };
    assert_eq!(run.code, Some(0), "{}", run.output);
    let p = &run.prompts;
    assert!(p[0].contains("Start 8 steps on"), "{p:#?}");
    let at = |needle: &str| p.iter().position(|q| q.contains(needle)).unwrap_or_else(|| panic!("{needle}: {p:#?}"));
    assert!(at("Upgrade the control plane to 1.25") < at("Canary pool-"), "{p:#?}");
    assert!(at("Continue with batches of up to 2?") > 0, "{p:#?}");
    // Apply rewrites the Helm release itself and the simulator's operator does the API
    // migrations, so none is asked.
    assert!(!p.iter().any(|q| q.contains("Is it done?")), "{p:#?}");
    assert!(run.output.contains("Helm release reports/reports: revision 3 → 4"), "{}", run.output);
    assert!(run.output.contains("the simulator's operator did step 4"), "{}", run.output);
    c.assert_finished_clean("1.25");
}

#[test]
fn on_a_terminal_declining_to_start_changes_nothing() {
    let Some((c, run)) = demo_on_terminal("n") else { return };
    assert_eq!(run.code, Some(130), "{}", run.output);
    assert_eq!(run.prompts.len(), 1, "{:#?}", run.prompts);
    assert!(run.output.contains("not started"), "{}", run.output);
    let stats = c.stats();
    assert_eq!(stats["evictions"], 0, "{stats}");
    assert!(stats["nodes"].as_array().unwrap().iter().all(|n| n["schedulable"] == true), "{stats}");
    let (status, _) =
        c.http("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/k8s-upgrade-lock", "", "");
    assert_eq!(status, 404);
}

/// The demo with the bare pod `tools/debug-shell` never finishing its termination.
fn demo_with_a_pod_stuck_terminating() -> Cluster {
    let c = Cluster::builtin("demo", 0.02);
    let (status, body) =
        c.http("PATCH", "/sim/faults", "application/json", r#"{"podsStuckTerminating": ["tools/debug-shell"]}"#);
    assert_eq!(status, 200, "{body}");
    c
}

/// Its drain gives up after 3 s.
const STUCK_ARGS: [&str; 6] = ["--to", "1.25", "--delete-emptydir-data", "--force", "--drain-timeout", "3s"];

#[test]
fn on_a_terminal_a_stuck_drain_offers_wait_skip_abort_and_skip_quarantines_the_node_and_goes_on() {
    let c = demo_with_a_pod_stuck_terminating();
    let args = STUCK_ARGS;
    let Some(run) = apply_on_terminal(&c, &args, |q| if q.contains("[s]kip this node") { "s" } else { "y" }) else {
        return;
    };
    let stuck: Vec<&String> = run.prompts.iter().filter(|q| q.contains("[w]ait again")).collect();
    assert!(!stuck.is_empty(), "{:#?}", run.prompts);
    assert!(stuck.iter().all(|q| q.contains("tools/debug-shell")), "{stuck:#?}");
    // Every step ran; the skipped node makes the exit 3 and is named with what to do, and
    // there is nothing to resume.
    assert_eq!(run.code, Some(3), "{}", run.output);
    assert!(run.output.contains("skipped and left cordoned"), "{}", run.output);
    assert!(!run.output.contains("apply --resume"), "{}", run.output);
    let nodes = c.stats()["nodes"].as_array().unwrap().clone();
    let held: Vec<&Value> = nodes.iter().filter(|n| n["schedulable"] == false).collect();
    assert_eq!(held.len(), 1, "{held:?}");
    let name = held[0]["name"].as_str().unwrap();
    assert_eq!(node_doc(&c, name)["metadata"]["labels"]["k8s-upgrade.dev/quarantined"], "true");
    for n in nodes.iter().filter(|n| n["name"] != name) {
        assert!(n["kubeletVersion"].as_str().unwrap().starts_with("v1.25."), "{n}");
    }
    assert_eq!(c.stats()["pdbViolations"], 0);
    // Resuming the finished run does not turn that into a success.
    let o = apply(&c, &["--resume", "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing to resume") && stderr(&o).contains(name), "{}", stderr(&o));
}

#[test]
fn on_a_terminal_waiting_again_on_a_stuck_drain_finishes_once_the_cause_is_fixed() {
    let c = demo_with_a_pod_stuck_terminating();
    let args = STUCK_ARGS;
    // The operator fixes the stuck pod, then asks to wait again.
    let answer = |q: &str| {
        if q.contains("[w]ait again") {
            let (status, body) = c.http("PATCH", "/sim/faults", "application/json", r#"{"podsStuckTerminating": []}"#);
            assert_eq!(status, 200, "{body}");
            "w"
        } else {
            "y"
        }
    };
    let Some(run) = apply_on_terminal(&c, &args, answer) else {
        return;
    };
    let stuck = run.prompts.iter().filter(|q| q.contains("[w]ait again")).count();
    assert_eq!(stuck, 1, "{:#?}", run.prompts);
    assert_eq!(run.code, Some(0), "{}", run.output);
    c.assert_finished_clean("1.25");
}

/// A cluster where some pods can only run on the node they are on: one pinned by hostname, and
/// the only node of a pool.
fn pinned_cluster() -> Cluster {
    let s = scenario_130(
        "pinned",
        1,
        r#"
  - { name: w, count: 2, roles: [worker] }
  - { name: gpu, count: 1, roles: [worker], labels: { pool: gpu } }
"#,
        r#"
workloads:
  - { kind: Deployment, name: web, replicas: 2, pdb: { maxUnavailable: 1 } }
  - { kind: Deployment, name: pinned, replicas: 1, nodeSelector: { kubernetes.io/hostname: w-1 } }
  - { kind: StatefulSet, name: trainer, replicas: 1, nodeSelector: { pool: gpu } }
"#,
    )
    .unwrap();
    Cluster::start(s, 0.02)
}

#[test]
fn pods_that_can_only_run_on_the_node_being_upgraded_do_not_deadlock_its_health_gate() {
    let c = pinned_cluster();
    // The gate would have to wait for the pinned pods, which can start only once their node is
    // schedulable again: the node is handed back before the gate, which then passes.
    let o = apply(&c, &["--to", "1.31", "--gate-timeout", "20s"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    c.assert_finished_clean("1.31");
    let pods = c.get_json("/api/v1/pods");
    for p in pods["items"].as_array().unwrap() {
        assert_eq!(p["status"]["phase"], "Running", "{}", p["metadata"]["name"]);
    }
}

/// An upgrade command that upgrades simulated nodes with kubectl (add-ons are left alone), after
/// running `before` (shell lines; `$1` node, `$2` version, `$3` role).
fn kubectl_upgrader(c: &Cluster, before: &str) -> PathBuf {
    let script = c.dir.join("kubectl-upgrade.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\n{before}\ncase \"$3\" in worker|control-plane) kubectl --kubeconfig {kc} annotate --overwrite node \"$1\" \"sim.k8s-upgrade.dev/upgrade-to=$2\" >/dev/null ;; esac\n",
            kc = c.kubeconfig.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

fn command_args(script: &Path) -> Vec<String> {
    vec![
        "--upgrader".into(),
        "command".into(),
        "--upgrade-command".into(),
        format!("{} {{node}} {{version}} {{role}}", script.display()),
    ]
}

#[test]
fn an_unattended_run_stops_before_a_hop_that_removes_apis_still_in_use_until_acknowledged() {
    if !crate::sim::kubectl_available("an_unattended_run_stops_before_a_hop") {
        return;
    }
    let c = Cluster::builtin("demo", 0.02);
    // Only operator steps can be acknowledged (step 6 is the control-plane hop).
    let o = apply(&c, &["--to", "1.25", "--acknowledge", "6"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("step 6 is a control-plane step"), "{}", stderr(&o));
    let script = kubectl_upgrader(&c, "");
    let mut args: Vec<String> = ["--to", "1.25", "--delete-emptydir-data", "--force"].map(String::from).to_vec();
    args.extend(command_args(&script));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    // --yes does not migrate anything: the hop to 1.25 would stop serving the CronJob and the
    // PodSecurityPolicy that are still there, so the run stops before touching a node. The Helm
    // release (step 3) is no longer among them: apply rewrote it, with this upgrader too.
    let o = apply(&c, &argv);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("the hop to 1.25 stops serving APIs still in use"), "{out}");
    assert!(out.contains("CronJob reports/nightly-report") && out.contains("PodSecurityPolicy restricted"), "{out}");
    assert!(stderr(&o).contains("Helm release reports/reports: revision 3 → 4"), "{}", stderr(&o));
    assert!(out.contains("Migrate them (steps 4, 5)") && out.contains("--acknowledge 4 --acknowledge 5"), "{out}");
    for n in c.stats()["nodes"].as_array().unwrap() {
        assert_eq!(n["schedulable"], true, "{n}");
        assert!(n["kubeletVersion"].as_str().unwrap().starts_with("v1.2"), "{n}");
    }
    assert!(
        c.stats()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| !n["kubeletVersion"].as_str().unwrap().starts_with("v1.25"))
    );
    // Acknowledging one of the two is not enough; both, recorded in the journal, is.
    let mut resume: Vec<&str> = vec!["--resume", "--delete-emptydir-data", "--force", "--acknowledge", "4"];
    let cmd = command_args(&script);
    resume.extend(cmd.iter().map(String::as_str));
    let o = apply(&c, &resume);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("pass --acknowledge 5"), "{}", stdout(&o));
    resume.extend(["--acknowledge", "5"]);
    let o = apply(&c, &resume);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let j: Value = serde_json::from_str(&std::fs::read_to_string(journal(&c)).unwrap()).unwrap();
    assert_eq!(j["acknowledged"], serde_json::json!([4, 5]), "{j}");
    c.assert_finished_clean("1.25");
}

#[test]
fn resume_after_a_failed_upgrade_command_runs_it_again() {
    if !crate::sim::kubectl_available("resume_after_a_failed_upgrade_command_runs_it_again") {
        return;
    }
    let c = pinned_cluster();
    let marker = c.dir.join("failed-once");
    // The first node's upgrade fails once (as a flaky package mirror would), after printing
    // more than a pipe holds on stderr.
    let script = kubectl_upgrader(
        &c,
        &format!(
            "if [ ! -e {m} ]; then touch {m}; i=0; while [ $i -lt 3000 ]; do echo 'E: Failed to fetch https://pkgs.k8s.io/core:/stable:/v1.31/deb/ 404' >&2; i=$((i+1)); done; exit 100; fi",
            m = marker.display()
        ),
    );
    let mut args: Vec<String> = ["--to", "1.31"].map(String::from).to_vec();
    args.extend(command_args(&script));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = apply(&c, &argv);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("exit status: 100") && stdout(&o).contains("apply --resume starts its upgrade again"),
        "{}",
        stdout(&o)
    );
    let j: Value = serde_json::from_str(&std::fs::read_to_string(journal(&c)).unwrap()).unwrap();
    assert!(j["nodes"].as_object().unwrap().values().any(|r| r["phase"] == "upgrade-started"), "{j}");
    // The journal keeps the first and last lines, the log file every one.
    let log = std::fs::read_to_string(journal(&c).with_extension("log")).unwrap();
    assert_eq!(log.lines().count(), 3000);
    let mut resume: Vec<&str> = vec!["--resume"];
    let cmd = command_args(&script);
    resume.extend(cmd.iter().map(String::as_str));
    let o = apply(&c, &resume);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    c.assert_finished_clean("1.31");
}

/// A cluster and a running `apply --to 1.31` whose upgrade command, in a process group of its
/// own, takes `seconds`, then writes its node to the returned file. apply leads its own process
/// group, as a shell's foreground job does. Returns once the command has started.
fn apply_with_a_slow_upgrade(seconds: u32) -> (Cluster, PathBuf, Child) {
    let c = pinned_cluster();
    let started = c.dir.join("started");
    let finished = c.dir.join("finished");
    let script = kubectl_upgrader(
        &c,
        &format!("touch {s}; sleep {seconds}; echo \"$1\" >> {f}", s = started.display(), f = finished.display()),
    );
    let mut args: Vec<String> = ["--to", "1.31"].map(String::from).to_vec();
    args.extend(command_args(&script));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = apply_cmd(&c, &argv).process_group(0).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let t = Instant::now();
    while !started.exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "the upgrade command never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    (c, finished, child)
}

#[test]
fn a_stop_signal_lets_the_running_upgrade_command_finish_and_a_second_one_stops_it() {
    if !crate::sim::kubectl_available("a_stop_signal_lets_the_running_upgrade_command_finish") {
        return;
    }
    for signal in ["INT", "TERM", "HUP"] {
        let (c, finished, child) = apply_with_a_slow_upgrade(2);
        // Sent to the group (Ctrl-C on a terminal): it reaches apply and not the command it runs.
        let group = format!("-{}", child.id());
        assert!(Command::new("kill").args([&format!("-{signal}"), "--", &group]).status().unwrap().success());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(130), "{signal}: {}\n{}", stdout(&o), stderr(&o));
        // The command was not killed: it finished, and its node came back at the target.
        let upgraded = std::fs::read_to_string(&finished).unwrap_or_default();
        assert_eq!(upgraded.lines().count(), 1, "{signal}: {upgraded}");
        let node = upgraded.trim();
        let doc = node_doc(&c, node);
        assert!(doc["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap().starts_with("v1.31"), "{signal}: {doc}");
        assert_eq!(doc["spec"]["unschedulable"], Value::Null, "{signal}: {doc}");
        assert!(stdout(&o).contains("to continue: k8s-upgrade apply --resume"), "{}", stdout(&o));
    }
    // A second signal stops the command with its process group.
    let (_c, finished, child) = apply_with_a_slow_upgrade(30);
    let t = Instant::now();
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(matches!(o.status.code(), Some(3 | 130)), "{}\n{}", stdout(&o), stderr(&o));
    std::thread::sleep(Duration::from_secs(1));
    assert!(!finished.exists(), "the upgrade command outlived the second stop");
}

#[test]
fn a_run_whose_lock_is_taken_stops_at_its_next_safe_point_and_leaves_the_lease_alone() {
    // Slow enough that the run outlives the renewer's next look (every 15 s).
    let c = Cluster::builtin("demo", 0.2);
    let mut child = spawn_apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force"]);
    wait_event(&c, Duration::from_secs(60), |e| e["event"] == "node" && e["phase"] == "cordoned");
    // A second process resuming the same run while this one lives is refused.
    let o = apply(&c, &["--resume", "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("is still running in another process"), "{}", stderr(&o));
    // Someone takes the lease (as --break-lock from another machine would).
    let path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/k8s-upgrade-lock";
    let (status, body) = c.http(
        "PATCH",
        path,
        "application/merge-patch+json",
        r#"{"spec":{"holderIdentity":"bob@other/run-9/0001","renewTime":"2099-01-01T00:00:00.000000Z"}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let t = Instant::now();
    let o = loop {
        if let Some(_status) = child.try_wait().unwrap() {
            break child.wait_with_output().unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(60), "the run did not notice its lock was taken");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("it was taken by bob@other/run-9/0001"), "{}", stdout(&o));
    // Its waits ended as soon as its renewer looked (every 15 s), not at the end of a drain.
    assert!(t.elapsed() < Duration::from_secs(25), "{:?}", t.elapsed());
    // The new holder keeps its lease: the stopped run does not delete what is not its own.
    let lease = c.get_json(path);
    assert_eq!(lease["spec"]["holderIdentity"], "bob@other/run-9/0001", "{lease}");
}

#[test]
fn a_lease_that_looks_stale_by_its_holders_clock_is_taken_only_once_it_stayed_unchanged() {
    let c = Cluster::builtin("demo", 0.02);
    // The holder's clock is years behind: by timestamps alone its lease looks long expired.
    let lease = r#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"k8s-upgrade-lock","namespace":"kube-system"},"spec":{"holderIdentity":"ghost@skewed/run-0/0001","leaseDurationSeconds":6,"renewTime":"2001-01-01T00:00:00.000000Z"}}"#;
    let path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
    let (status, body) = c.http("POST", path, "application/json", lease);
    assert!(status < 300, "{status} {body}");
    // ... but it is alive: this loop writes to it every 0.7 s while apply decides.
    let t = Instant::now();
    let mut n = 0;
    let mut child = spawn_apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force"]);
    let o = loop {
        n += 1;
        let (status, body) = c.http(
            "PATCH",
            &format!("{path}/k8s-upgrade-lock"),
            "application/merge-patch+json",
            &format!(r#"{{"metadata":{{"annotations":{{"beat":"{n}"}}}}}}"#),
        );
        assert_eq!(status, 200, "{body}");
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(30), "apply neither refused nor took the lock");
        std::thread::sleep(Duration::from_millis(700));
    };
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("ghost@skewed/run-0/0001"), "{}", stderr(&o));
    assert!(c.stats()["nodes"].as_array().unwrap().iter().all(|n| n["schedulable"] == true));
    // Once it stops renewing, the next run watches it stay unchanged for its 6 s, then takes it.
    let t = Instant::now();
    let o = apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(t.elapsed() >= Duration::from_secs(6), "{:?}", t.elapsed());
    assert!(stderr(&o).contains("watching it for 6s"), "{}", stderr(&o));
}

/// Runs the executor in-process against the harness cluster, as `apply --to TO --yes` would
/// but with `operator` answering, and returns its result, every event, and the journal.
fn run_in_process(
    c: &Cluster,
    to: &str,
    operator: &dyn k8s_upgrade::exec::Operator,
    tweak: impl FnOnce(&mut k8s_upgrade::exec::Options),
) -> (
    Result<k8s_upgrade::exec::Outcome, k8s_upgrade::exec::ExecError>,
    Vec<k8s_upgrade::exec::Event>,
    k8s_upgrade::exec::journal::Journal,
) {
    use k8s_upgrade::exec::{self, drain, gates, journal::Journal, lock::LockWatch, upgrader::Upgrader};
    let client = c.kube_client();
    c.rt.block_on(async {
        let catalog = k8s_upgrade::catalog::Catalog::embedded().unwrap();
        let inv = k8s_upgrade::inventory::live::collect(&client, &catalog, &Default::default()).await.unwrap();
        let from = inv.cluster.as_ref().unwrap().server_version.clone().unwrap();
        let req = k8s_upgrade::graph::PathRequest {
            distro: "kubeadm".into(),
            from,
            to: to.parse().unwrap(),
            via: vec![],
            kubelets: vec![],
            facts: Default::default(),
            today: crate::common::TODAY.parse().unwrap(),
        };
        let plan = k8s_upgrade::plan::plan(&inv, &catalog, &req).unwrap();
        let journal = Journal::new(c.dir.join("in-process.journal.json"), "in-process", "harness", &plan);
        let cache = exec::cache::Cache::start(&client, Duration::from_secs(30), true).await.unwrap();
        let mut options = exec::Options {
            upgrader: Upgrader::Sim,
            max_unavailable: exec::rollout::MaxUnavailable::Count(1),
            max_parallel: None,
            drain: drain::DrainPolicy {
                delete_emptydir_data: true,
                force: true,
                timeout: Duration::from_secs(20),
                dry_run: false,
                max_backoff: Duration::from_millis(100),
                budget_patience: Duration::from_secs(600),
                skip_wait_for_delete: None,
                grace_period: None,
                pod_selector: None,
                volume_detach_timeout: Some(Duration::from_secs(60)),
                own_pod: None,
            },
            gates: gates::GateOptions {
                passes: 1,
                timeout: Duration::from_secs(30),
                interval: Duration::from_millis(10),
                command: None,
                command_timeout: Duration::from_secs(60),
            },
            pause: Duration::ZERO,
            dry_run: false,
            window_end: None,
            node_estimate: Duration::from_secs(600),
            node_timeout: Duration::from_secs(60),
            poll: Duration::from_millis(5),
            release_command: None,
            log_file: None,
            any_patch: false,
            catalog: std::sync::Arc::new(catalog),
            acknowledge_all: false,
            lock: LockWatch::never(),
            taint_pending: true,
            sim_operator: true,
        };
        tweak(&mut options);
        // Every event is also printed: a failing test shows how far the run got.
        let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let events = {
            let kept = kept.clone();
            exec::EventSink::new(move |e| {
                eprintln!("{e:?}");
                kept.lock().unwrap().push(e);
            })
        };
        let ex = exec::Executor::new(client.clone(), cache, journal, options, operator, events, exec::Cancel::new());
        let result = ex.run().await;
        let events = kept.lock().unwrap().clone();
        (result, events, ex.journal().await)
    })
}

#[test]
fn a_worker_skipped_in_one_roll_stops_a_later_control_plane_hop_that_would_break_its_skew() {
    let s = k8s_upgrade::sim::Scenario::parse(
        "skewed",
        r#"
name: skewed
cluster: { version: "1.28.15", distro: kubeadm }
nodePools:
  - { name: cp, count: 1, roles: [control-plane], taints: [{ key: node-role.kubernetes.io/control-plane, effect: NoSchedule }] }
  - { name: w, count: 3, roles: [worker], version: "1.25.16" }
addons:
  - { name: kube-proxy, version: "1.28.15" }
workloads:
  - { kind: Deployment, name: web, replicas: 2, pdb: { maxUnavailable: 1 } }
  - { kind: Pod, name: stuck, nodeSelector: { kubernetes.io/hostname: w-1 } }
"#,
    )
    .unwrap();
    let c = Cluster::start(s, 0.02);
    let (status, body) =
        c.http("PATCH", "/sim/faults", "application/json", r#"{"podsStuckTerminating": ["default/stuck"]}"#);
    assert_eq!(status, 200, "{body}");
    use k8s_upgrade::exec::{Answer, Question, operator::Scripted};
    // The operator skips w-1, whose pod never finishes terminating.
    let operator = Scripted(|q: &Question| match q {
        Question::StuckDrain { node, .. } if node == "w-1" => Answer::Skip,
        Question::StuckDrain { .. } => Answer::Abort,
        _ => Answer::Yes,
    });
    let (result, events, journal) = run_in_process(&c, "1.30", &operator, |o| o.drain.timeout = Duration::from_secs(3));
    let e = result.unwrap_err();
    assert!(matches!(e, k8s_upgrade::exec::ExecError::Blocked(_)), "{e}");
    let text = e.to_string();
    assert!(text.contains("the hop to 1.29 would leave kubelets further behind"), "{text}");
    assert!(text.contains("w-1 (kubelet v1.25.16, skipped earlier in this run)"), "{text}");
    assert_eq!(journal.quarantined(), vec!["w-1"]);
    // w-2 rolled; the control plane did not move.
    assert!(events.iter().any(|e| matches!(e, k8s_upgrade::exec::Event::Node { node, phase: k8s_upgrade::exec::NodeMilestone::Done, .. } if node == "w-2")));
    let cp = node_doc(&c, "cp");
    assert!(cp["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap().starts_with("v1.28."), "{cp}");
}

#[test]
fn a_control_plane_node_the_operator_skips_stops_its_hop_as_a_blocker() {
    let s = scenario_130(
        "cp-stuck",
        2,
        r#"
  - { name: w, count: 2, roles: [worker] }
"#,
        r#"
workloads:
  - { kind: Deployment, name: pinned, replicas: 1, tolerateAll: true, nodeSelector: { kubernetes.io/hostname: cp-1 } }
"#,
    )
    .unwrap();
    let c = Cluster::start(s, 0.02);
    let (status, body) =
        c.http("PATCH", "/sim/faults", "application/json", r#"{"podsStuckTerminating": ["default/pinned-*"]}"#);
    assert_eq!(status, 200, "{body}");
    use k8s_upgrade::exec::{Answer, ExecError, Question, operator::Scripted};
    let operator = Scripted(|q: &Question| match q {
        Question::StuckDrain { .. } => Answer::Skip,
        _ => Answer::Yes,
    });
    let (result, _, journal) = run_in_process(&c, "1.31", &operator, |o| o.drain.timeout = Duration::from_secs(3));
    let e = result.unwrap_err();
    assert!(matches!(e, ExecError::Blocked(_)), "{e:?}");
    assert!(e.to_string().contains("control-plane node cp-1 was not upgraded"), "{e}");
    assert!(e.to_string().contains("the control plane must move as one"), "{e}");
    // The other control-plane node was not touched.
    assert!(
        journal.node(1, "cp-2").is_none() && journal.nodes.keys().all(|k| !k.ends_with("/cp-2")),
        "{:?}",
        journal.nodes
    );
}

#[test]
fn pods_terminating_longer_than_skip_wait_for_delete_timeout_are_not_waited_for() {
    // A pod held by a finalizer (simulated: it never finishes terminating), and a namespace
    // being deleted whose pod is stuck the same way.
    let c = demo_with_a_pod_stuck_terminating();
    let o = apply(
        &c,
        &[
            "--to",
            "1.25",
            "--delete-emptydir-data",
            "--force",
            "--drain-timeout",
            "60s",
            "--skip-wait-for-delete-timeout",
            "2s",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("tools/debug-shell has been terminating for more than 2s; not waited for"),
        "{}",
        stderr(&o)
    );
    let stats = c.stats();
    assert_eq!(stats["pdbViolations"], 0, "{stats}");
    assert!(stats["nodes"].as_array().unwrap().iter().all(|n| n["schedulable"] == true), "{stats}");
}

#[test]
fn a_namespace_being_deleted_refuses_evictions_and_its_stuck_pods_are_skipped() {
    let c = pinned_cluster();
    let ns = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"doomed"}}"#;
    assert!(c.http("POST", "/api/v1/namespaces", "application/json", ns).0 < 300);
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"leftover","namespace":"doomed"},"spec":{"nodeName":"w-1","containers":[{"name":"c","image":"busybox:1.36"}]}}"#;
    let (status, body) = c.http("POST", "/api/v1/namespaces/doomed/pods", "application/json", pod);
    assert!(status < 300, "{status} {body}");
    let (status, _) = c.http("PATCH", "/sim/faults", "application/json", r#"{"podsStuckTerminating": ["doomed/*"]}"#);
    assert_eq!(status, 200);
    let (status, body) = c.http("DELETE", "/api/v1/namespaces/doomed", "", "");
    assert_eq!(status, 200, "{body}");
    // Terminating, as the namespace controller leaves it while its pods go; nothing new gets in.
    assert_eq!(c.get_json("/api/v1/namespaces/doomed")["status"]["phase"], "Terminating");
    let (status, body) = c.http(
        "POST",
        "/api/v1/namespaces/doomed/pods/leftover/eviction",
        "application/json",
        r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"leftover","namespace":"doomed"}}"#,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("NamespaceTerminating") && body.contains("because it is being terminated"), "{body}");
    let o = apply(&c, &["--to", "1.31", "--force", "--skip-wait-for-delete-timeout", "1s", "--drain-timeout", "60s"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    // Not waited for: the pod is still terminating, its node was upgraded all the same.
    let left = c.get_json("/api/v1/namespaces/doomed/pods/leftover");
    assert!(left["metadata"]["deletionTimestamp"].is_string(), "{left}");
    assert!(node_doc(&c, "w-1")["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap().starts_with("v1.31."));
}

#[test]
fn an_unreachable_node_is_drained_without_waiting_for_pods_its_kubelet_cannot_stop() {
    let s = scenario_130(
        "unreachable",
        1,
        r#"
  - { name: w, count: 3, roles: [worker] }
"#,
        r#"
workloads:
  - { kind: Deployment, name: web, replicas: 3 }
"#,
    )
    .unwrap();
    let c = Cluster::start(s, 0.02);
    let (status, body) = c.http("PATCH", "/sim/faults", "application/json", r#"{"nodesUnreachable": ["w-2"]}"#);
    assert_eq!(status, 200, "{body}");
    c.wait_for("w-2 to read as unreachable", Duration::from_secs(10), || {
        node_doc(&c, "w-2")["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "Unknown")
    });
    // Its upgrade (a replacement, in effect) brings it back.
    let o = apply(&c, &["--to", "1.31", "--drain-timeout", "60s"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("w-2: is unreachable (Ready Unknown)"), "{}", stderr(&o));
    c.assert_finished_clean("1.31");
}

#[test]
fn a_pod_whose_owner_vetoes_eviction_stops_its_node_before_the_cordon_unless_left_out_by_the_pod_selector() {
    let c = pinned_cluster();
    let pods = c.get_json("/api/v1/namespaces/default/pods");
    let web = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"].as_str().unwrap().starts_with("web-") && p["spec"]["nodeName"] == "w-1")
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string());
    let Some(web) = web else { panic!("no web pod on w-1: {pods}") };
    let (status, body) = c.http(
        "PATCH",
        &format!("/api/v1/namespaces/default/pods/{web}"),
        "application/merge-patch+json",
        r#"{"metadata":{"annotations":{"cluster-autoscaler.kubernetes.io/safe-to-evict":"false"}}}"#,
    );
    assert_eq!(status, 200, "{body}");
    // The plan names it as a blocker, so apply does not start.
    let o = apply(&c, &["--to", "1.31"]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "default/{web} on node w-1 is annotated cluster-autoscaler.kubernetes.io/safe-to-evict=false"
        )),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("POD_EVICTION_VETOED") && stderr(&o).contains("apply does not start"),
        "{}",
        stderr(&o)
    );
    assert!(!journal(&c).exists());
    // Told to start anyway, the drain stops at the same pod, before the node is cordoned.
    let o = apply(&c, &["--to", "1.31", "--ignore-blockers"]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o)
            .contains(&format!("default/{web} is annotated cluster-autoscaler.kubernetes.io/safe-to-evict=false")),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("the node was not cordoned"), "{}", stdout(&o));
    assert!(c.stats()["nodes"].as_array().unwrap().iter().all(|n| n["schedulable"] == true));
    // Left out by --pod-selector, it stays where it is and the roll goes on: neither the plan
    // nor the drain holds it against the node.
    std::fs::remove_file(journal(&c)).unwrap();
    let o = apply(&c, &["--to", "1.31", "--pod-selector", "app!=web"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let still = c.get_json(&format!("/api/v1/namespaces/default/pods/{web}"));
    assert_eq!(still["spec"]["nodeName"], "w-1", "{still}");
}

#[test]
fn tainting_the_nodes_still_to_roll_spares_pods_a_second_eviction() {
    // The same roll twice: pods evicted from one node either avoid the nodes still to drain
    // (PreferNoSchedule, the default) or may land on the next one and be evicted again.
    let evictions = |extra: &[&str]| {
        let c = mixed_sizes_cluster();
        let mut args = vec!["--to", "1.31"];
        args.extend_from_slice(extra);
        let o = apply(&c, &args);
        assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
        c.assert_finished_clean("1.31");
        // No taint is left behind.
        for n in c.get_json("/api/v1/nodes")["items"].as_array().unwrap() {
            assert!(!n["spec"]["taints"].to_string().contains("upgrade-pending"), "{n}");
        }
        c.stats()["evictions"].as_u64().unwrap()
    };
    let tainted = evictions(&[]);
    let untainted = evictions(&["--no-taint-pending"]);
    eprintln!("evictions with the taint: {tainted}, without: {untainted}");
    assert!(tainted < untainted, "with the taint {tainted}, without {untainted}");
}

/// Two small workers that roll first and three big ones: pods evicted from a big node have
/// most room on the big nodes still to roll, and only the taint steers them to the small ones
/// already done.
fn mixed_sizes_cluster() -> Cluster {
    let s = scenario_130(
        "mixed",
        1,
        r#"
  - { name: a, count: 2, roles: [worker], capacity: { cpu: "8", memory: 32Gi, pods: 8 } }
  - { name: b, count: 3, roles: [worker], capacity: { cpu: "8", memory: 32Gi, pods: 40 } }
"#,
        r#"
workloads:
  - { kind: Deployment, name: web, replicas: 9, pdb: { maxUnavailable: 2 } }
"#,
    )
    .unwrap();
    Cluster::start(s, 0.02)
}

#[test]
fn parallel_batches_stay_within_each_pool_and_every_budget() {
    let c = Cluster::builtin("pools", 0.02);
    let o = apply(&c, &["--to", "1.31", "--max-unavailable", "30%"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    c.assert_finished_clean("1.31");
    let ev = read_events(&events(&c));
    let batches: Vec<Vec<String>> = ev
        .iter()
        .filter(|e| e["event"] == "batch-start" && e["label"] != "control plane")
        .map(|e| e["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect())
        .collect();
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 30, "{batches:?}");
    assert!(batches.iter().skip(1).any(|b| b.len() > 1), "never more than one node at a time: {batches:?}");
    for b in &batches {
        for pool in ["general", "compute", "memory"] {
            let n = b.iter().filter(|n| n.starts_with(pool)).count();
            assert!(n <= 3, "{n} nodes of pool {pool} at once (30% of 10 is 3): {b:?}");
        }
    }
    eprintln!("{} batches: {:?}", batches.len(), batches.iter().map(Vec::len).collect::<Vec<_>>());
}

/// Three workers under a StatefulSet whose replicas each have a block volume that takes 40
/// simulated seconds to detach once its pod has left the node.
fn volumes_cluster() -> Cluster {
    let s = scenario_130(
        "volumes",
        1,
        r#"
  - { name: w, count: 3, roles: [worker] }
"#,
        r#"
workloads:
  - { kind: StatefulSet, name: db, replicas: 2, blockVolume: 10Gi, pdb: { maxUnavailable: 1 } }
  - { kind: Deployment, name: web, replicas: 3 }
timings: { volumeDetachSeconds: 40 }
"#,
    )
    .unwrap();
    let c = Cluster::start(s, 0.05);
    c.wait_for("the block volumes to attach", Duration::from_secs(10), || {
        c.get_json("/apis/storage.k8s.io/v1/volumeattachments")["items"].as_array().is_some_and(|a| a.len() == 2)
    });
    c
}

fn restarts_with_volumes_attached(c: &Cluster) -> Vec<Value> {
    c.stats()["restartsWithVolumesAttached"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_node_is_upgraded_only_once_the_volumes_of_its_evicted_pods_have_detached() {
    // Without the wait (the behaviour of a plain drain loop), a node restarts with a volume
    // still attached that its StatefulSet pod, now elsewhere, waits for.
    let c = volumes_cluster();
    let o = apply(&c, &["--to", "1.31", "--volume-detach-timeout", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(!restarts_with_volumes_attached(&c).is_empty(), "{}", c.stats());

    let c = volumes_cluster();
    let o = apply(&c, &["--to", "1.31"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(restarts_with_volumes_attached(&c).is_empty(), "{}", c.stats());
    assert!(
        stderr(&o).contains("waiting for volumes to detach: kubernetes.io/csi/block.csi.k8s-upgrade.dev^pvc-"),
        "{}",
        stderr(&o)
    );
    c.assert_finished_clean("1.31");
    // The StatefulSet's volumes followed their pods.
    assert_eq!(c.get_json("/apis/storage.k8s.io/v1/volumeattachments")["items"].as_array().unwrap().len(), 2);
}

#[test]
fn a_volume_that_never_detaches_stops_the_run_with_its_node_cordoned_and_named() {
    let c = volumes_cluster();
    let pod = c.get_json("/api/v1/namespaces/default/pods/db-0");
    let node = pod["spec"]["nodeName"].as_str().unwrap().to_string();
    let (status, body) =
        c.http("PATCH", "/sim/faults", "application/json", &format!(r#"{{"volumesStuckAttached": ["{node}"]}}"#));
    assert_eq!(status, 200, "{body}");
    let o = apply(&c, &["--to", "1.31", "--volume-detach-timeout", "3s"]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&format!("1 volume(s) still attached to {node}")), "{out}");
    assert!(out.contains("kubectl get volumeattachments"), "{out}");
    assert!(out.contains(&format!("{node} stays cordoned")), "{out}");
    assert_eq!(node_doc(&c, &node)["spec"]["unschedulable"], true);
    assert!(restarts_with_volumes_attached(&c).is_empty(), "{}", c.stats());
    // Fixed out of band, the run resumes and finishes.
    let (status, body) = c.http("PATCH", "/sim/faults", "application/json", r#"{"volumesStuckAttached": []}"#);
    assert_eq!(status, 200, "{body}");
    let o = apply(&c, &["--to", "1.31", "--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    c.assert_finished_clean("1.31");
}

#[test]
fn max_unavailable_counts_per_pool_and_max_parallel_caps_the_whole_cluster() {
    let scenario = || {
        scenario_130(
            "two-pools",
            1,
            r#"
  - { name: a, count: 3, roles: [worker] }
  - { name: b, count: 3, roles: [worker] }
"#,
            r#"
workloads:
  - { kind: Deployment, name: web, replicas: 4 }
"#,
        )
        .unwrap()
    };
    let batch_sizes = |c: &Cluster| -> Vec<usize> {
        read_events(&events(c))
            .iter()
            .filter(|e| e["event"] == "batch-start" && e["label"] != "control plane")
            .map(|e| e["nodes"].as_array().unwrap().len())
            .collect()
    };
    let c = Cluster::start(scenario(), 0.02);
    let o = apply(&c, &["--to", "1.31", "--max-unavailable", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    c.assert_finished_clean("1.31");
    // The canary, then one node of each pool at a time.
    assert_eq!(batch_sizes(&c), [1, 2, 2, 1]);

    let c = Cluster::start(scenario(), 0.02);
    let o = apply(&c, &["--to", "1.31", "--max-unavailable", "1", "--max-parallel", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    c.assert_finished_clean("1.31");
    assert_eq!(batch_sizes(&c), [1; 6]);
}

#[test]
fn a_blocker_that_appeared_after_the_plan_was_saved_stops_apply_of_that_plan() {
    let c = pinned_cluster();
    let saved = c.dir.join("plan.yaml");
    let kubeconfig = c.kubeconfig.to_str().unwrap().to_string();
    let o =
        crate::common::run(&["plan", "--kubeconfig", &kubeconfig, "--to", "1.31", "--save", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    // After the save, an owner vetoes the eviction of one of its pods.
    let pods = c.get_json("/api/v1/namespaces/default/pods");
    let web = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .find(|n| n.starts_with("web-"))
        .expect("a web pod");
    let (status, body) = c.http(
        "PATCH",
        &format!("/api/v1/namespaces/default/pods/{web}"),
        "application/merge-patch+json",
        r#"{"metadata":{"annotations":{"karpenter.sh/do-not-disrupt":"true"}}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let o = apply(&c, &["--plan", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("POD_EVICTION_VETOED") && stderr(&o).contains(&web), "{}", stderr(&o));
    assert!(!journal(&c).exists(), "nothing started");
    // Left out by this run's --pod-selector, the same saved plan runs.
    let o = apply(&c, &["--plan", saved.to_str().unwrap(), "--pod-selector", "app!=web"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
}

#[test]
fn a_gate_that_times_out_names_the_stuck_pods_and_why() {
    let s = scenario_130(
        "stuck",
        1,
        "  - { name: w, count: 2, roles: [worker] }\n",
        "timings: { nodeRestartSeconds: 1, podStartSeconds: 0.5, apiserverRestartSeconds: 0.5 }\nworkloads:\n  - { kind: Deployment, name: web, replicas: 2, image: \"registry.example/web:1.0\", pdb: { maxUnavailable: 1 } }\n",
    )
    .unwrap();
    let c = Cluster::start(s, 0.05);
    // The replacement of an evicted pod can never start: its image cannot be pulled.
    let (status, body) =
        c.http("PATCH", "/sim/faults", "application/json", r#"{"unpullableImages": ["registry.example/web*"]}"#);
    assert_eq!(status, 200, "{body}");
    let o = apply(&c, &["--to", "1.31", "--gate-timeout", "4s"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(3), "{out}\n{}", stderr(&o));
    assert!(out.contains("Deployment default/web has 1 available replicas (was 2)"), "{out}");
    assert!(
        out.contains("Deployment default/web: pod default/web-") && out.contains("ImagePullBackOff"),
        "the gate does not say which pod is stuck and why:\n{out}"
    );
}

#[test]
fn a_closed_stdout_ends_nothing_early_and_the_summary_reaches_stderr() {
    let mut child = crate::common::command()
        .env("K8S_UPGRADE_TIME_SCALE", "0.02")
        .env("HOME", std::env::temp_dir().join(format!("k8s-upgrade-it-closed-stdout-{}", std::process::id())))
        .args(["apply", "--simulate", "demo", "--to", "1.25", "--yes", "--delete-emptydir-data", "--force"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // As `| head -1` does once it has its line: the reading end goes away.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("Finished 1.24.17 → 1.25.16"), "the summary was lost with stdout:\n{err}");
    assert!(err.contains("simulator: 0 PDB violations"), "{err}");
}

#[test]
fn a_control_plane_upgrade_killed_half_way_can_be_planned_again() {
    let c = Cluster::builtin("demo", 0.02);
    let (status, _) = c.http("PATCH", "/sim/faults", "application/json", r#"{"latencyMs": 5}"#);
    assert_eq!(status, 200);
    let mut child = spawn_apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force"]);
    // The first control-plane node is at 1.25 (apiserver and kubelet); the others are not.
    wait_event(&c, Duration::from_secs(60), |e| e["event"] == "node" && e["node"] == "cp-1" && e["phase"] == "done");
    child.kill().unwrap();
    child.wait().unwrap();
    let o = crate::common::command()
        .env("HOME", c.dir.join("home"))
        .args(["plan", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .args(["--to", "1.26", "-o", "json"])
        .output()
        .unwrap();
    assert!(matches!(o.status.code(), Some(0) | Some(3)), "{}\n{}", stdout(&o), stderr(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    // Planned from the oldest apiserver, with the upgrade in progress said, not refused (D12).
    assert!(plan["from"].as_str().unwrap().starts_with("1.24."), "{plan}");
    let in_progress: Vec<&Value> =
        plan["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "UPGRADE_IN_PROGRESS").collect();
    assert_eq!(in_progress.len(), 1, "{plan}");
    let message = in_progress[0]["message"].as_str().unwrap();
    assert!(message.contains("cp-1") && message.contains("in progress"), "{message}");
    assert!(
        !plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "SKEW_KUBELET" && f["message"].as_str().is_some_and(|m| m.contains("cp-1"))),
        "cp-1's kubelet is reported as a skew violation: {plan}"
    );
}

#[test]
fn a_drain_held_by_an_interrupted_run_s_granted_eviction_says_why_and_goes_on_once_it_lapses() {
    let s = scenario_130(
        "granted",
        1,
        "  - { name: w, count: 2, roles: [worker] }\n",
        "timings: { nodeRestartSeconds: 1, podStartSeconds: 0.5, apiserverRestartSeconds: 0.5 }\nworkloads:\n  - { kind: Deployment, name: web, replicas: 2, pdb: { maxUnavailable: 1 } }\n",
    )
    .unwrap();
    let c = Cluster::start(s, 0.05);
    // An eviction the apiserver granted and whose pod was never deleted (its client was killed
    // mid-request): the budget counts it for the disruption controller's two minutes (6 s here).
    let pods = c.get_json("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb");
    let held = pods["items"][0]["metadata"]["name"].as_str().unwrap().to_string();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"status": {"disruptedPods": {held.clone(): now}}}).to_string();
    let (status, body) = c.http(
        "PATCH",
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web-pdb/status",
        "application/merge-patch+json",
        &patch,
    );
    assert_eq!(status, 200, "{body}");
    let o = apply(&c, &["--to", "1.31"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("still counts 1 granted eviction whose pod is not gone ({held})")),
        "the wait is not explained:\n{err}"
    );
    c.assert_finished_clean("1.31");
}

#[test]
fn a_resume_refuses_a_journal_edited_to_a_future_version_a_downgrade_or_no_steps_d31() {
    if !crate::sim::kubectl_available(
        "a_resume_refuses_a_journal_edited_to_a_future_version_a_downgrade_or_no_steps_d31",
    ) {
        return;
    }
    let c = pinned_cluster();
    let script = kubectl_upgrader(&c, "exit 100");
    let mut args: Vec<String> = ["--to", "1.31"].map(String::from).to_vec();
    args.extend(command_args(&script));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = apply(&c, &argv);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    let original = std::fs::read_to_string(journal(&c)).unwrap();
    let mut resume: Vec<&str> = vec!["--resume"];
    let cmd = command_args(&script);
    resume.extend(cmd.iter().map(String::as_str));
    use serde_json::json;
    type Edit<'a> = (&'a str, &'a dyn Fn(&mut Value), &'a str);
    let edits: [Edit; 3] = [
        (
            "a node's target edited to 9.99.0",
            &|j: &mut Value| {
                for r in j["nodes"].as_object_mut().unwrap().values_mut() {
                    r["target"] = json!("9.99.0");
                }
            },
            "has the target 9.99.0, which its step does not move it to",
        ),
        (
            "every version edited down to 1.19.0",
            &|j: &mut Value| {
                let text = j.to_string().replace("1.30.4", "1.18.20").replace("1.31.14", "1.19.16");
                *j = serde_json::from_str(&text).unwrap();
            },
            "below the",
        ),
        ("the steps removed", &|j: &mut Value| j["steps"] = json!([]), "it lists no steps although it cordoned"),
    ];
    for (what, edit, phrase) in edits {
        let mut j: Value = serde_json::from_str(&original).unwrap();
        edit(&mut j);
        std::fs::write(journal(&c), serde_json::to_vec_pretty(&j).unwrap()).unwrap();
        let before = c.get_json("/api/v1/nodes");
        let o = apply(&c, &resume);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{what}: {}\n{err}", stdout(&o));
        assert!(err.contains("cannot be resumed") && err.contains(phrase), "{what}: {err}");
        let after = c.get_json("/api/v1/nodes");
        assert_eq!(
            before["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| &n["status"]["nodeInfo"]["kubeletVersion"])
                .collect::<Vec<_>>(),
            after["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| &n["status"]["nodeInfo"]["kubeletVersion"])
                .collect::<Vec<_>>(),
            "{what}: the refused resume changed a node"
        );
    }
    // The journal as the run wrote it still resumes.
    std::fs::write(journal(&c), &original).unwrap();
    let o = apply(&c, &resume);
    assert_eq!(o.status.code(), Some(3), "the upgrade command still fails: {}\n{}", stdout(&o), stderr(&o));
}

#[test]
fn a_first_stop_ends_the_wait_for_a_node_upgraded_by_hand_at_once_d38() {
    let c = pinned_cluster();
    let mut child = spawn_apply(&c, &["--to", "1.31", "--upgrader", "manual"]);
    wait_event(&c, Duration::from_secs(60), |e| e["event"] == "node" && e["phase"] == "upgrading");
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    // Nothing of ours is in flight: the run does not wait out --node-timeout (20 minutes).
    while child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(15), "the first stop did not end the wait");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(130), "{out}\n{err}");
    assert!(err.contains("a wait for a node you are upgrading by hand ends now"), "{err}");
    assert!(format!("{out}{err}").contains("to be upgraded by hand to 1.31"), "{out}\n{err}");
    assert!(out.contains("to continue: k8s-upgrade apply --resume"), "{out}");
    let j: Value = serde_json::from_str(&std::fs::read_to_string(journal(&c)).unwrap()).unwrap();
    assert!(j["nodes"].as_object().unwrap().values().any(|r| r["phase"] == "upgrade-finished"), "{j}");
}

#[test]
fn break_lock_waits_for_the_displaced_run_to_stop_before_it_acts_d9() {
    let c = Cluster::builtin("demo", 0.2);
    let mut a = spawn_apply(&c, &["--to", "1.25", "--delete-emptydir-data", "--force"]);
    wait_event(&c, Duration::from_secs(60), |e| e["event"] == "node" && e["phase"] == "cordoned");
    let (journal_b, events_b) = (c.dir.join("b.journal.json"), c.dir.join("b.events.jsonl"));
    let mut b =
        apply_cmd_at(&c, &journal_b, &events_b, &["--to", "1.25", "--break-lock", "--delete-emptydir-data", "--force"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let t = Instant::now();
    let a_out = loop {
        if a.try_wait().unwrap().is_some() {
            break a.wait_with_output().unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(90), "the displaced run went on");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The run that took the lock has touched no node yet: the two never acted together.
    let b_cordons = read_events(&events_b).iter().filter(|e| e["event"] == "node" && e["phase"] == "cordoned").count();
    assert_eq!(b_cordons, 0, "the breaking run cordoned a node while the displaced one still ran");
    assert_eq!(a_out.status.code(), Some(1), "{}\n{}", stdout(&a_out), stderr(&a_out));
    assert!(stdout(&a_out).contains("was taken by another run"), "{}", stdout(&a_out));
    assert!(stderr(&a_out).contains("stopping now; an upgrade command in flight finishes"), "{}", stderr(&a_out));
    let _ = b.kill();
    let b_out = b.wait_with_output().unwrap();
    assert!(stderr(&b_out).contains("waiting 20s for that run to notice and stop"), "{}", stderr(&b_out));
}
