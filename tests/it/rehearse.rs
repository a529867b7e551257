//! `k8s-upgrade rehearse`: the forecast made on a twin, checked against the cluster it was made
//! from: nothing changes there, a budget that stalls is named, pods with no room are found with
//! the node they wait for, and the predicted time holds against a real `apply`.

use std::process::{Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::common::{stderr, stdout};
use crate::sim::Cluster;

fn rehearse(c: &Cluster, args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_k8s-upgrade"))
        .env("HOME", c.dir.join("home"))
        .arg("rehearse")
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rehearse");
    c.assert_no_credentials(&[&stdout(&o), &stderr(&o)]);
    o
}

/// The cluster's resourceVersion once its own controllers are done (the same for 3 s). Read
/// through the API: the first request a simulator serves makes its lazily created objects.
fn settled(c: &Cluster) -> u64 {
    let _ = c.get_json("/api/v1/namespaces");
    let mut last = c.sim().store.current_rv();
    let mut same = 0;
    while same < 6 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = c.sim().store.current_rv();
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}

fn forecast(o: &Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

#[test]
fn a_budget_that_never_allows_is_named_and_the_cluster_is_not_touched() {
    let c = Cluster::builtin("blocked", 1.0);
    let before = settled(&c);
    let o = rehearse(&c, &["--to", "1.31", "-o", "json"]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    let f = forecast(&o);
    // apply would not start, and if told to, its drain would stop on the budget.
    let blockers = f["blockers"].to_string();
    assert!(blockers.contains("PDB_BLOCKS_DRAIN") && blockers.contains("ledger-strict"), "{f:#}");
    assert_eq!(f["finished"], false, "{f:#}");
    assert!(f["outcome"].as_str().unwrap().contains("PodDisruptionBudget payments/ledger-strict"), "{f:#}");
    // Nothing was written to the cluster it read: not one object changed.
    assert_eq!(settled(&c), before, "the rehearsal changed the cluster");
    let stats = c.stats();
    let writes: Vec<&String> = stats["requests"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| ["create ", "update ", "patch ", "delete "].iter().any(|v| k.starts_with(v)))
        .filter(|k| !k.contains("selfsubject"))
        .collect();
    assert!(writes.is_empty(), "writes to the live cluster: {writes:?}");
    // The table says the same in words.
    let o = rehearse(&c, &["--to", "1.31"]);
    let out = stdout(&o);
    assert!(out.contains("apply would not start") && out.contains("payments/ledger-strict"), "{out}");
}

/// Three workers at 90% of their memory: a drained node's pods fit nowhere else.
const FULL: &str = r#"
name: full
cluster: { version: "1.31.4", distro: kubeadm }
timings: { podStartSeconds: 2, nodeRestartSeconds: 20, defaultGraceSeconds: 2 }
nodePools:
  - { name: cp, count: 1, roles: [control-plane], taints: [{ key: node-role.kubernetes.io/control-plane, effect: NoSchedule }] }
  - { name: worker, count: 3, roles: [worker], version: "1.30.8", capacity: { cpu: "8", memory: "10Gi", pods: 110 } }
namespaces: [shop]
workloads:
  - { kind: Deployment, name: big, namespace: shop, replicas: 9, requests: { cpu: 100m, memory: 3Gi } }
"#;

#[test]
fn at_ninety_percent_memory_the_pods_of_a_drained_node_find_no_room_and_wait_for_it() {
    let scenario = k8s_upgrade::sim::Scenario::parse("full", FULL).unwrap();
    let c = Cluster::start(scenario, 1.0);
    let o = rehearse(&c, &["--to", "1.31", "-o", "json", "--node-restart", "20s", "--pod-stop", "2s"]);
    let f = forecast(&o);
    assert_eq!(f["finished"], true, "{f:#}");
    let unplaced = f["unplaceable"].as_array().unwrap();
    assert_eq!(unplaced.len(), 1, "{f:#}");
    let u = &unplaced[0];
    assert_eq!(u["workload"], "Deployment shop/big", "{u:#}");
    assert!(u["message"].as_str().unwrap().contains("Insufficient memory"), "{u:#}");
    // Each worker's three pods wait for that worker to come back.
    let waits: Vec<&str> = u["waitsFor"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert_eq!(waits, ["worker-1", "worker-2", "worker-3"], "{u:#}");
    assert_eq!(u["pods"], 9, "{u:#}");
    let lost = &f["replicasLost"][0];
    assert_eq!((lost["workload"].as_str(), lost["lost"].as_i64()), (Some("Deployment shop/big"), Some(3)), "{f:#}");
    let out = stdout(&rehearse(&c, &["--to", "1.31", "--node-restart", "20s", "--pod-stop", "2s"]));
    assert!(out.contains("Pods that find no node during the roll (1 workload)"), "{out}");
    assert!(out.contains("they wait for worker-1, worker-2, worker-3"), "{out}");
}

/// The forecast against the run: the `pools` roll rehearsed, then applied for real on the same
/// cluster (a quarter of pools' own delays, so the test takes about a minute), with apply's
/// default gates and intervals on both sides.
#[test]
fn the_predicted_time_of_the_pools_roll_is_within_a_fifth_of_the_measured_apply() {
    let scale = 0.25;
    let c = Cluster::builtin("pools", scale);
    // The twin is told the cluster's delays at that scale (the API cannot tell them).
    let o = rehearse(
        &c,
        &["--to", "1.31", "-o", "json", "--node-restart", "2.5s", "--pod-start", "0.5s", "--pod-stop", "0.75s"],
    );
    let f = forecast(&o);
    assert_eq!(f["finished"], true, "{f:#}");
    assert_eq!(f["pdbViolations"], 0, "{f:#}");
    let predicted = f["predictedSeconds"].as_f64().unwrap();
    let events = c.dir.join("events.jsonl");
    let started = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_k8s-upgrade"))
        .env("HOME", c.dir.join("home"))
        .args(["apply", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .args(["--to", "1.31", "--yes", "--upgrader", "sim", "--journal"])
        .arg(c.dir.join("journal.json"))
        .arg("--events")
        .arg(&events)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let measured = started.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    c.assert_finished_clean("1.31");
    let ratio = predicted / measured;
    println!("pools roll: predicted {predicted:.1}s, measured {measured:.1}s (ratio {ratio:.2})");
    assert!((0.8..=1.2).contains(&ratio), "predicted {predicted:.1}s, measured {measured:.1}s");
    // Stalls and unplaceable pods: the same on both sides (none here, as the budgets allow
    // each batch they are given).
    let measured_stalls: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "eviction-refused")
        .collect();
    assert_eq!(f["stalls"].as_array().unwrap().len(), measured_stalls.len(), "{f:#}\n{measured_stalls:?}");
    let unplaced_live = c.stats()["unschedulable"].as_array().unwrap().len();
    assert_eq!(
        f["unplaceable"].as_array().unwrap().iter().map(|u| u["pods"].as_u64().unwrap()).sum::<u64>() as usize,
        unplaced_live
    );
    // The run's node restarts are in the cluster's Node events now, as a kubelet records them:
    // a rehearsal told nothing takes their median (2.5 s here; event times are whole seconds).
    let f = forecast(&rehearse(&c, &["--to", "1.31", "-o", "json"]));
    let restart = f["twin"]["nodeRestartSeconds"].as_f64().unwrap();
    let source = f["twin"]["nodeRestartSource"].as_str().unwrap();
    assert!(source.contains("node restarts in the cluster's Node events"), "{source}");
    assert!((2.0..=4.0).contains(&restart), "{restart}: {source}");
}

#[test]
fn apply_only_flags_are_not_offered_in_help_and_are_refused_by_name() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_k8s-upgrade")).args(args).stdin(Stdio::null()).output().expect("run")
    };
    let help = stdout(&run(&["rehearse", "--help"]));
    assert!(help.contains("--max-unavailable") && help.contains("--node-restart"), "{help}");
    for flag in [
        "--resume",
        "--resume-or-start",
        "--journal",
        "--break-lock",
        "--dry-run",
        "--plan ",
        "--save-html",
        "--events",
    ] {
        assert!(!help.contains(&format!("  {flag}")), "rehearse --help offers {flag}:\n{help}");
    }
    assert!(stdout(&run(&["apply", "--help"])).contains("--journal"));
    let o = run(&["rehearse", "--simulate", "demo", "--to", "1.31", "--journal", "j.json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--journal is for apply"), "{}", stderr(&o));
}
