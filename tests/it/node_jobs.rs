//! `apply --upgrader kubeadm` against the simulator: node jobs upgrade the demo end to end, and
//! a job that fails, hangs or never starts, a namespace whose Pod Security level refuses
//! privileged pods, and a missing namespace each stop the run with the reason.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{stderr, stdout};
use crate::sim::Cluster;

fn journal(c: &Cluster) -> PathBuf {
    c.dir.join("journal.json")
}

fn apply_cmd(c: &Cluster, args: &[&str]) -> Command {
    let mut cmd = crate::common::command();
    cmd.env("HOME", c.dir.join("home"))
        .arg("apply")
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .arg("--journal")
        .arg(journal(c))
        .args(["--yes", "--gate-passes", "1", "--upgrader", "kubeadm", "--delete-emptydir-data", "--force"])
        // Only `--simulate` has the simulator's stand-in operator migrate APIs; here the
        // migrations are taken as done, since these tests are about the node jobs.
        .arg("--acknowledge-all")
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn apply(c: &Cluster, args: &[&str]) -> Output {
    let o = apply_cmd(c, args).output().expect("run apply");
    c.assert_no_credentials(&[&stdout(&o), &stderr(&o)]);
    o
}

fn read_journal(c: &Cluster) -> Value {
    serde_json::from_str(&std::fs::read_to_string(journal(c)).unwrap()).unwrap()
}

fn faults(c: &Cluster, json: &str) {
    let (status, body) = c.http("PATCH", "/sim/faults", "application/json", json);
    assert_eq!(status, 200, "{body}");
}

fn node_job_pods(c: &Cluster) -> Vec<Value> {
    c.get_json("/api/v1/namespaces/kube-system/pods?labelSelector=k8s-upgrade.dev%2Fnode-job")["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn nothing_cordoned(c: &Cluster) -> bool {
    c.get_json("/api/v1/nodes")["items"].as_array().unwrap().iter().all(|n| n["spec"]["unschedulable"].is_null())
}

#[test]
fn node_jobs_upgrade_the_demo_two_minors_with_no_budget_violated_and_each_nodes_log_journaled() {
    let dir = tempdir("demo");
    let journal = dir.join("journal.json");
    let o = crate::common::command()
        .env("HOME", dir.join("home"))
        .args(["apply", "--simulate", "--to", "1.26", "--upgrader", "kubeadm", "--yes"])
        .args(["--delete-emptydir-data", "--force", "--journal", journal.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(stderr(&o).contains("node jobs: the apiserver admits a privileged node job"), "{}", stderr(&o));
    assert!(stderr(&o).contains("runs on cp-1: host ready: kubeadm v1.24.17"), "{}", stderr(&o));
    assert!(stderr(&o).contains("cp-1: upgrading to 1.25.16 (kubeadm upgrader)"), "{}", stderr(&o));
    assert!(
        out.contains("Finished 1.24.17 → 1.26.15") && out.contains("11 of 11 steps done, 0 left to the operator"),
        "{out}"
    );
    assert!(out.contains("simulator: 0 PDB violations, 0 pods lost"), "{out}");
    // Every node's record holds the end of its job's log: the control plane's first node ran
    // `kubeadm upgrade apply`, the others `kubeadm upgrade node`.
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    assert_eq!(j["finished"], true);
    let records = j["nodes"].as_object().unwrap();
    let nodes: std::collections::BTreeSet<&str> = records.keys().map(|k| k.split_once('/').unwrap().1).collect();
    assert_eq!(nodes.len(), 9, "{nodes:?}");
    for (key, r) in records {
        let log: Vec<&str> = r["log"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        let target = r["target"].as_str().unwrap();
        assert_eq!(r["phase"], "done", "{key}");
        assert!(log.last().is_some_and(|l| l.contains(&format!("kubelet restarted at v{target}"))), "{key}: {log:?}");
        assert!(log.len() <= 15, "{key}: a successful job keeps its last lines: {}", log.len());
    }
    let applied: Vec<&String> = records
        .iter()
        .filter(|(_, r)| {
            r["log"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("SUCCESS! Your cluster"))
        })
        .map(|(k, _)| k)
        .collect();
    assert_eq!(applied.len(), 2, "kubeadm upgrade apply once per control-plane hop, on cp-1: {applied:?}");
    assert!(applied.iter().all(|k| k.ends_with("/cp-1")), "{applied:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-it-nodejobs-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_failing_node_job_stops_the_run_its_pod_and_log_are_kept_and_resume_finishes() {
    let c = Cluster::builtin("demo", 0.02);
    faults(&c, r#"{"nodeJobsFail": ["pool-a-2"]}"#);
    let o = apply(&c, &["--to", "1.25"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(3), "{out}\n{}", stderr(&o));
    assert!(out.contains("on pool-a-2 exited with code 100"), "{out}");
    assert!(out.contains("E: Version '1.25.16-*' for 'kubeadm' was not found"), "{out}");
    assert!(out.contains("the pod is kept for inspection") && out.contains("apply --resume"), "{out}");
    let j = read_journal(&c);
    let nodes = j["nodes"].as_object().unwrap();
    let record = nodes.iter().find(|(k, _)| k.ends_with("/pool-a-2")).map(|(_, r)| r.clone());
    let record = record.unwrap_or_else(|| panic!("no record of pool-a-2: {:?}", nodes.keys().collect::<Vec<_>>()));
    assert_eq!(record["phase"], "upgrade-started", "{record}");
    assert!(record["log"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("E: Version")), "{record}");
    // The failed pod is there, and real kubectl reads its log from the simulator.
    let kept: Vec<Value> = node_job_pods(&c)
        .into_iter()
        .filter(|p| p["spec"]["nodeName"] == "pool-a-2" && p["status"]["phase"] == "Failed")
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 100);
    if crate::sim::kubectl_available("a_failing_node_job_stops_the_run_its_pod_and_log_are_kept_and_resume_finishes") {
        let name = kept[0]["metadata"]["name"].as_str().unwrap();
        let logs = c.kubectl_ok(&["-n", "kube-system", "logs", name]);
        assert!(logs.lines().last().is_some_and(|l| l.contains("E: Version")), "{logs}");
        let tail = c.kubectl_ok(&["-n", "kube-system", "logs", name, "--tail", "1", "--timestamps"]);
        assert_eq!(tail.lines().count(), 1, "{tail}");
        assert!(tail.starts_with("20") && tail.contains(" E: Version"), "{tail}");
    }
    // The repository is fixed: resume replaces the failed job and finishes.
    faults(&c, r#"{"nodeJobsFail": []}"#);
    let o = apply(&c, &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let stats = c.stats();
    assert_eq!((stats["pdbViolations"].as_u64(), stats["podsLost"].as_u64()), (Some(0), Some(0)), "{stats}");
    assert!(
        stats["nodes"].as_array().unwrap().iter().all(|n| n["kubeletVersion"].as_str().unwrap().starts_with("v1.25."))
    );
}

#[test]
fn a_hanging_node_job_is_stopped_at_the_upgrade_timeout_and_its_pod_deleted() {
    let c = Cluster::builtin("demo", 0.02);
    faults(&c, r#"{"nodeJobsHang": ["cp-2"]}"#);
    let o = apply(&c, &["--to", "1.25", "--upgrade-timeout", "4s"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(3), "{out}\n{}", stderr(&o));
    assert!(out.contains("on cp-2 did not finish within 4s (last line: "), "{out}");
    assert!(out.contains("the pod was deleted, which stops the script wherever it was"), "{out}");
    assert!(out.contains("Could not get lock /var/lib/dpkg/lock-frontend"), "the last line is shown: {out}");
    assert!(
        node_job_pods(&c)
            .iter()
            .all(|p| p["spec"]["nodeName"] != "cp-2" || p["metadata"]["deletionTimestamp"].is_string()),
        "the hung job is deleted"
    );
}

#[test]
fn an_image_that_cannot_be_pulled_is_found_by_the_probe_before_any_node_is_touched() {
    let c = Cluster::builtin("demo", 0.02);
    faults(&c, r#"{"unpullableImages": ["registry.example/mirror/*"]}"#);
    let o = apply(
        &c,
        &[
            "--to",
            "1.25",
            "--node-job-image",
            "registry.example/mirror/busybox:1.37.0",
            "--node-job-start-timeout",
            "3s",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{}\n{err}", stdout(&o));
    assert!(err.contains("the node-job probe failed, so no node was touched"), "{err}");
    assert!(err.contains("did not start within 3s: ImagePullBackOff: Back-off pulling image"), "{err}");
    assert!(nothing_cordoned(&c));
    assert!(node_job_pods(&c).iter().all(|p| p["metadata"]["deletionTimestamp"].is_string()), "the probe is removed");
    assert!(!journal(&c).exists() || read_journal(&c)["nodes"].as_object().unwrap().is_empty());
}

#[test]
fn a_job_whose_image_stops_pulling_mid_run_stops_with_the_kubelets_reason() {
    let c = Cluster::builtin("demo", 0.02);
    let child = apply_cmd(&c, &["--to", "1.25", "--node-job-start-timeout", "3s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first control-plane node is done, the registry goes away.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let done = read_journal_opt(&c).is_some_and(|j| {
            j["nodes"].as_object().is_some_and(|n| n.iter().any(|(k, r)| k.ends_with("/cp-1") && r["phase"] == "done"))
        });
        if done {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "cp-1 never finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    faults(&c, r#"{"unpullableImages": ["docker.io/library/busybox:*"]}"#);
    let o = child.wait_with_output().unwrap();
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(3), "{out}\n{}", stderr(&o));
    assert!(out.contains("did not start within 3s: ImagePullBackOff"), "{out}");
    assert!(out.contains("on cp-2") || out.contains("on cp-3"), "{out}");
}

fn read_journal_opt(c: &Cluster) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(journal(c)).ok()?).ok()
}

#[test]
fn a_namespace_that_refuses_privileged_pods_or_does_not_exist_is_named_before_anything_changes() {
    let c = Cluster::builtin("demo", 0.02);
    let (status, body) = c.http(
        "PATCH",
        "/api/v1/namespaces/kube-system",
        "application/merge-patch+json",
        r#"{"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let o = apply(&c, &["--to", "1.25"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{}\n{err}", stdout(&o));
    assert!(err.contains("namespace kube-system does not admit the privileged node-job pods"), "{err}");
    assert!(err.contains("violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true, hostPID=true, hostIPC=true), privileged (container \"upgrade\" must not set securityContext.privileged=true)"), "{err}");
    assert!(err.contains("--node-job-namespace"), "{err}");
    assert!(nothing_cordoned(&c));
    assert!(node_job_pods(&c).is_empty());

    let o = apply(&c, &["--to", "1.25", "--node-job-namespace", "upgrades"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("the node-job namespace upgrades does not exist"), "{err}");
    assert!(nothing_cordoned(&c));
}

#[test]
fn bad_node_job_flags_are_usage_errors() {
    let c = Cluster::builtin("demo", 0.02);
    let missing = c.dir.join("no-such-script.sh");
    let o = apply(&c, &["--to", "1.25", "--node-script", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--node-script") && stderr(&o).contains("no-such-script.sh"), "{}", stderr(&o));
    let big = c.dir.join("big.sh");
    std::fs::write(&big, "#".repeat(300 * 1024)).unwrap();
    let o = apply(&c, &["--to", "1.25", "--node-script", big.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("larger than 256 KiB"), "{}", stderr(&o));
    let o =
        crate::common::run(&["apply", "--simulate", "--to", "1.25", "--yes", "--node-script", big.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--node-script is for --upgrader kubeadm"), "{}", stderr(&o));
}
