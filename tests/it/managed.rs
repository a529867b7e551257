//! `apply --upgrader eks|gke|aks` against the simulator, through fake `aws`, `gcloud` and `az`
//! executables (tests/fixtures/providers/bin) that record their argv, check it, and drive the
//! simulator as the provider would: the control plane moves, each managed pool is replaced by
//! surge (new node names), its old nodes drained through the Eviction API and deleted.
//!
//! The fakes reach the simulator with kubectl, so these tests follow the kubectl skip rule. The
//! provider CLI is always passed by path (and the fakes come first on PATH): the real CLIs
//! installed on a machine are never run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{stderr, stdout};
use crate::sim::{Cluster, kubectl_available};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/providers")
}

fn cluster(scenario: &str) -> Cluster {
    let path = fixtures().join("scenarios").join(format!("{scenario}.yaml"));
    Cluster::start(k8s_upgrade::sim::Scenario::load(path.to_str().unwrap()).unwrap(), 0.02)
}

/// The flags naming the cluster at each provider.
fn identity(provider: &str) -> Vec<String> {
    let cli = fixtures().join("bin").join(match provider {
        "eks" => "aws",
        "gke" => "gcloud",
        _ => "az",
    });
    let mut v: Vec<String> = vec!["--upgrader".into(), provider.into(), "--cluster-name".into(), "prod".into()];
    v.extend(
        match provider {
            "eks" => vec!["--region", "eu-west-1"],
            "gke" => vec!["--location", "europe-west1", "--project", "acme"],
            _ => vec!["--resource-group", "rg-prod"],
        }
        .into_iter()
        .map(String::from),
    );
    v.extend(["--provider-cli".into(), cli.display().to_string(), "--provider-poll".into(), "100ms".into()]);
    v
}

fn apply_cmd(c: &Cluster, provider: &str, fail_pool: Option<&str>, args: &[&str]) -> Command {
    let path = format!("{}:{}", fixtures().join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = crate::common::command();
    cmd.env("HOME", c.dir.join("home"))
        .env("PATH", path)
        .env("FAKE_PROVIDER_KUBECONFIG", &c.kubeconfig)
        .env("FAKE_PROVIDER_LOG", c.dir.join("argv.jsonl"))
        .env("FAKE_PROVIDER_STATE", c.dir.join("provider-state"))
        .env("FAKE_PROVIDER_CLUSTER", "prod")
        .env_remove("FAKE_PROVIDER_FAIL_POOL")
        .arg("apply")
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .arg("--journal")
        .arg(c.dir.join("journal.json"))
        .arg("--events")
        .arg(c.dir.join("events.jsonl"))
        .args(["--yes", "--gate-passes", "1", "--gate-interval", "100ms"])
        .args(identity(provider))
        .args(args)
        .stdin(Stdio::null());
    if let Some(p) = fail_pool {
        cmd.env("FAKE_PROVIDER_FAIL_POOL", p);
    }
    cmd
}

fn apply(c: &Cluster, provider: &str, fail_pool: Option<&str>, args: &[&str]) -> Output {
    let o = apply_cmd(c, provider, fail_pool, args).output().expect("run apply");
    c.assert_no_credentials(&[&stdout(&o), &stderr(&o)]);
    o
}

/// Every provider call the fakes saw, in order.
fn argv_log(c: &Cluster) -> Vec<Vec<String>> {
    std::fs::read_to_string(c.dir.join("argv.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The calls that change something (reads of an update's progress left out).
fn mutations(log: &[Vec<String>]) -> Vec<Vec<String>> {
    log.iter().filter(|a| !a.iter().any(|x| x == "describe-update")).cloned().collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn events(c: &Cluster) -> Vec<Value> {
    std::fs::read_to_string(c.dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn journal(c: &Cluster) -> Value {
    serde_json::from_str(&std::fs::read_to_string(c.dir.join("journal.json")).unwrap()).unwrap()
}

/// Every node at `minor`, Ready and schedulable, none of `old` left, the same node count, no
/// budget violated and no pod lost.
fn assert_replaced(c: &Cluster, minor: &str, old: &[&str]) {
    let stats = c.stats();
    assert_eq!(stats["pdbViolations"], 0, "{stats}");
    assert_eq!(stats["podsLost"], 0, "{stats}");
    assert!(stats["serverVersion"].as_str().unwrap().starts_with(&format!("{minor}.")), "{stats}");
    let nodes = stats["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), old.len(), "{stats}");
    for n in nodes {
        assert!(n["kubeletVersion"].as_str().unwrap().starts_with(&format!("v{minor}.")), "{n}");
        assert_eq!((n["ready"].as_bool(), n["schedulable"].as_bool()), (Some(true), Some(true)), "{n}");
        assert!(!old.contains(&n["name"].as_str().unwrap()), "{n} is an old node");
    }
}

/// The pools' batches and the gates after them, in event order: `[pool-start, gate-after, ...]`.
fn pool_sequence(ev: &[Value]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match e["event"].as_str() {
            Some("batch-start") => Some(format!("start {}", e["label"].as_str().unwrap())),
            Some("gate") if e["passed"] == true => Some(format!("gate {}", e["after"].as_str().unwrap())),
            _ => None,
        })
        .collect()
}

#[test]
fn eks_two_hops_replace_both_node_groups_between_control_plane_hops_with_gates_and_no_disruption() {
    if !kubectl_available("eks_two_hops_replace_both_node_groups") {
        return;
    }
    let c = cluster("eks");
    let t = Instant::now();
    let o = apply(&c, "eks", None, &["--to", "1.32"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    eprintln!("eks two hops, two node groups: {:.1}s", t.elapsed().as_secs_f64());
    assert_replaced(&c, "1.32", &["ng-a-1", "ng-a-2", "ng-b-1", "ng-b-2"]);
    let log = argv_log(&c);
    let base = ["--region", "eu-west-1", "--output", "json"];
    let with = |v: &[&str]| -> Vec<String> { strs(v).into_iter().chain(strs(&base)).collect() };
    assert_eq!(
        mutations(&log),
        vec![
            with(&["aws", "eks", "update-cluster-version", "--name", "prod", "--kubernetes-version", "1.31"]),
            with(&[
                "aws",
                "eks",
                "update-nodegroup-version",
                "--cluster-name",
                "prod",
                "--nodegroup-name",
                "ng-a",
                "--kubernetes-version",
                "1.31"
            ]),
            with(&[
                "aws",
                "eks",
                "update-nodegroup-version",
                "--cluster-name",
                "prod",
                "--nodegroup-name",
                "ng-b",
                "--kubernetes-version",
                "1.31"
            ]),
            with(&["aws", "eks", "update-cluster-version", "--name", "prod", "--kubernetes-version", "1.32"]),
            with(&[
                "aws",
                "eks",
                "update-nodegroup-version",
                "--cluster-name",
                "prod",
                "--nodegroup-name",
                "ng-a",
                "--kubernetes-version",
                "1.32"
            ]),
            with(&[
                "aws",
                "eks",
                "update-nodegroup-version",
                "--cluster-name",
                "prod",
                "--nodegroup-name",
                "ng-b",
                "--kubernetes-version",
                "1.32"
            ]),
        ]
    );
    // Every progress read names the update it follows, and the node group for a group's.
    let reads: Vec<&Vec<String>> = log.iter().filter(|a| a.iter().any(|x| x == "describe-update")).collect();
    assert!(reads.len() >= 6, "{reads:?}");
    for r in &reads {
        assert_eq!(r[..5], strs(&["aws", "eks", "describe-update", "--name", "prod"]), "{r:?}");
        assert_eq!(r[5], "--update-id");
        assert!(r.len() == 11 || (r.len() == 13 && r[7] == "--nodegroup-name"), "{r:?}");
    }
    // Pools one at a time, each followed by its gate, the hops interleaved with the rolls.
    let seq = pool_sequence(&events(&c));
    let expect_roll =
        |p: &str, i: u32| vec![format!("start managed node group {p} ({i}/2)"), format!("gate managed node group {p}")];
    let roll: Vec<String> = expect_roll("ng-a", 1).into_iter().chain(expect_roll("ng-b", 2)).collect();
    let kinds: Vec<String> = events(&c)
        .iter()
        .filter(|e| e["event"] == "step-start")
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["control-plane", "nodes", "control-plane", "nodes"]);
    assert_eq!(seq, roll.iter().chain(roll.iter()).cloned().collect::<Vec<_>>());
    // The replacement is reported as it goes: old nodes leave, new ones join at the target.
    let ev = events(&c);
    let last_a = ev.iter().rfind(|e| e["event"] == "pool-progress" && e["pool"] == "ng-a" && e["step"] == 2).unwrap();
    assert_eq!(
        (last_a["oldLeft"].as_u64(), last_a["atTarget"].as_u64(), last_a["oldTotal"].as_u64()),
        (Some(0), Some(2), Some(2)),
        "{last_a}"
    );
    assert!(ev.iter().any(|e| e["event"] == "log"
        && e["node"] == "ng-a-1"
        && e["line"].as_str().unwrap().contains("removed from managed node group ng-a")));
    // The journal keeps each pool's update id and says finished.
    let j = journal(&c);
    assert_eq!(j["finished"], true);
    for k in ["2/ng-a", "2/ng-b", "4/ng-a", "4/ng-b"] {
        assert_eq!(j["pools"][k]["phase"], "done", "{k}: {}", j["pools"]);
        assert!(j["pools"][k]["updateId"].as_str().is_some_and(|s| !s.is_empty()), "{k}");
        assert_eq!(j["pools"][k]["oldNodes"].as_array().unwrap().len(), 2, "{k}");
    }
    let out = stdout(&o);
    assert!(out.contains("Finished 1.30.9") && out.contains("8 nodes upgraded"), "{out}");
}

#[test]
fn gke_replaces_each_node_pool_through_gcloud() {
    if !kubectl_available("gke_replaces_each_node_pool_through_gcloud") {
        return;
    }
    let c = cluster("gke");
    let o = apply(&c, "gke", None, &["--to", "1.31"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_replaced(&c, "1.31", &["default-pool-1", "default-pool-2", "highmem-1", "highmem-2"]);
    let tail = ["--location", "europe-west1", "--project", "acme", "--quiet"];
    let gc = |v: &[&str]| -> Vec<String> { strs(v).into_iter().chain(strs(&tail)).collect() };
    assert_eq!(
        argv_log(&c),
        vec![
            gc(&["gcloud", "container", "clusters", "upgrade", "prod", "--master", "--cluster-version", "1.31"]),
            gc(&[
                "gcloud",
                "container",
                "clusters",
                "upgrade",
                "prod",
                "--node-pool",
                "default-pool",
                "--cluster-version",
                "1.31"
            ]),
            gc(&[
                "gcloud",
                "container",
                "clusters",
                "upgrade",
                "prod",
                "--node-pool",
                "highmem",
                "--cluster-version",
                "1.31"
            ]),
        ]
    );
    assert_eq!(
        pool_sequence(&events(&c)),
        [
            "start node pool default-pool (1/2)",
            "gate node pool default-pool",
            "start node pool highmem (2/2)",
            "gate node pool highmem"
        ]
    );
}

#[test]
fn aks_replaces_each_agent_pool_through_az() {
    if !kubectl_available("aks_replaces_each_agent_pool_through_az") {
        return;
    }
    let c = cluster("aks");
    let o = apply(&c, "aks", None, &["--to", "1.33", "--distro", "aks"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_replaced(&c, "1.33", &["nodepool1-1", "nodepool1-2", "nodepool2-1", "nodepool2-2"]);
    let pool = |p: &str| {
        strs(&[
            "az",
            "aks",
            "nodepool",
            "upgrade",
            "--resource-group",
            "rg-prod",
            "--cluster-name",
            "prod",
            "--name",
            p,
            "--kubernetes-version",
            "1.33",
            "--yes",
            "--output",
            "json",
        ])
    };
    assert_eq!(
        argv_log(&c),
        vec![
            strs(&[
                "az",
                "aks",
                "upgrade",
                "--resource-group",
                "rg-prod",
                "--name",
                "prod",
                "--control-plane-only",
                "--kubernetes-version",
                "1.33",
                "--yes",
                "--output",
                "json",
            ]),
            pool("nodepool1"),
            pool("nodepool2"),
        ]
    );
    assert_eq!(
        pool_sequence(&events(&c)),
        [
            "start agent pool nodepool1 (1/2)",
            "gate agent pool nodepool1",
            "start agent pool nodepool2 (2/2)",
            "gate agent pool nodepool2"
        ]
    );
}

#[test]
fn a_provider_failure_mid_pool_stops_with_exit_3_naming_the_pool_and_resume_restarts_it() {
    if !kubectl_available("a_provider_failure_mid_pool_stops_with_exit_3") {
        return;
    }
    let c = cluster("eks");
    let o = apply(&c, "eks", Some("ng-b"), &["--to", "1.31"]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("managed node group ng-b") && out.contains("PodEvictionFailure"), "{out}");
    assert!(out.contains("1 of 2 node(s) replaced"), "{out}");
    let j = journal(&c);
    assert_eq!(j["pools"]["2/ng-a"]["phase"], "done");
    assert_eq!(j["pools"]["2/ng-b"]["phase"], "failed");
    let first_id = j["pools"]["2/ng-b"]["updateId"].as_str().unwrap().to_string();
    // The group is half replaced: one old node gone, one left.
    let names: Vec<String> =
        c.stats()["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names.iter().filter(|n| *n == "ng-b-1" || *n == "ng-b-2").count(), 1, "{names:?}");
    assert_eq!(names.len(), 4, "{names:?}");

    let o = apply(&c, "eks", None, &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_replaced(&c, "1.31", &["ng-a-1", "ng-a-2", "ng-b-1", "ng-b-2"]);
    let starts: Vec<Vec<String>> = mutations(&argv_log(&c));
    let groups: Vec<&str> = starts
        .iter()
        .filter(|a| a[2] == "update-nodegroup-version")
        .map(|a| a[a.iter().position(|x| x == "--nodegroup-name").unwrap() + 1].as_str())
        .collect();
    // ng-a once; ng-b failed once and was started again by the resume; the control plane once.
    assert_eq!(groups, ["ng-a", "ng-b", "ng-b"]);
    assert_eq!(starts.iter().filter(|a| a[2] == "update-cluster-version").count(), 1);
    let j = journal(&c);
    assert_eq!(j["pools"]["2/ng-b"]["phase"], "done");
    assert_ne!(j["pools"]["2/ng-b"]["updateId"].as_str().unwrap(), first_id);
    assert_eq!(j["finished"], true);
}

#[test]
fn a_run_killed_while_a_pool_is_replaced_resumes_by_waiting_on_the_same_update() {
    if !kubectl_available("a_run_killed_while_a_pool_is_replaced") {
        return;
    }
    let c = cluster("eks");
    let mut child =
        apply_cmd(&c, "eks", None, &["--to", "1.31"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Killed as soon as ng-a's update is journaled as started.
    let start = Instant::now();
    let started = || {
        std::fs::read_to_string(c.dir.join("journal.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|j| j["pools"]["2/ng-a"]["phase"] == "started")
    };
    while !started() {
        assert!(start.elapsed() < Duration::from_secs(120), "ng-a's update never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let j = journal(&c);
    assert_eq!(j["pools"]["2/ng-a"]["phase"], "started", "{}", j["pools"]);
    let id = j["pools"]["2/ng-a"]["updateId"].as_str().unwrap().to_string();

    let o = apply(&c, "eks", None, &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_replaced(&c, "1.31", &["ng-a-1", "ng-a-2", "ng-b-1", "ng-b-2"]);
    let log = argv_log(&c);
    let ng_a_starts =
        log.iter().filter(|a| a[2] == "update-nodegroup-version" && a.iter().any(|x| x == "ng-a")).count();
    assert_eq!(ng_a_starts, 1, "a second update was started for ng-a: {log:?}");
    assert!(
        log.iter().any(|a| a[2] == "describe-update" && a.contains(&id) && a.iter().any(|x| x == "ng-a")),
        "the resume did not read the update {id}"
    );
    assert!(stderr(&o).contains(&format!("waiting on the update {id} started before")), "{}", stderr(&o));
}

#[test]
fn nodes_in_no_managed_pool_stop_the_roll_with_their_names_and_bad_flags_are_usage_errors() {
    let o = crate::common::run(&[
        "apply",
        "--simulate",
        "--to",
        "1.25",
        "--yes",
        "--upgrader",
        "gke",
        "--cluster-name",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--location"), "{}", stderr(&o));
    let o = crate::common::run(&[
        "apply",
        "--simulate",
        "--to",
        "1.25",
        "--yes",
        "--upgrader",
        "eks",
        "--cluster-name",
        "x",
        "--resource-group",
        "g",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--resource-group"), "{}", stderr(&o));
    if !kubectl_available("nodes_in_no_managed_pool_stop_the_roll") {
        return;
    }
    // The GKE cluster's nodes carry no EKS node-group label: the eks upgrader names them.
    let c = cluster("gke");
    let o = apply(&c, "eks", None, &["--to", "1.31", "--distro", "eks"]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("4 node(s) in no EKS managed node group: default-pool-1"), "{}", stdout(&o));
    // No node was touched.
    assert!(mutations(&argv_log(&c)).iter().all(|a| a[2] != "update-nodegroup-version"));
}

#[test]
fn the_simulator_replaces_a_pool_through_its_budgets_and_refuses_a_second_update_while_one_runs() {
    let c = cluster("eks");
    let post = |body: &str| c.http("POST", "/sim/pools/ng-a/upgrade", "application/json", body);
    // A node group may not go past the control plane.
    let (status, body) = post(r#"{"version": "1.31"}"#);
    assert_eq!(status, 400, "{body}");
    let (status, _) = c.http("PUT", "/sim/control-plane", "application/json", r#"{"version": "1.31.5-eks-f8a3c21"}"#);
    assert_eq!(status, 200);
    let (status, body) = post(r#"{"version": "1.31"}"#);
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
    let (status, body) = post(r#"{"version": "1.31"}"#);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("ResourceInUseException") && body.contains(&id), "{body}");
    assert_eq!(c.http("GET", "/sim/pools/nope", "", "").0, 404);
    c.wait_for("ng-a replaced", Duration::from_secs(60), || c.get_json("/sim/pools/ng-a")["status"] == "Successful");
    let doc = c.get_json("/sim/pools/ng-a");
    assert_eq!(doc["replaced"], serde_json::json!(["ng-a-1", "ng-a-2"]), "{doc}");
    let nodes = c.get_json("/api/v1/nodes");
    let ng_a: Vec<&Value> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] == "ng-a")
        .collect();
    assert_eq!(ng_a.len(), 2);
    for n in ng_a {
        assert!(!["ng-a-1", "ng-a-2"].contains(&n["metadata"]["name"].as_str().unwrap()), "{n}");
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.31.5");
        assert_eq!(n["metadata"]["labels"]["eks.amazonaws.com/capacityType"], "ON_DEMAND");
    }
    let stats = c.stats();
    assert_eq!(stats["pdbViolations"], 0, "{stats}");
    assert!(stats["evictions"].as_u64().unwrap() > 0, "{stats}");
}

#[test]
fn an_eks_add_on_step_runs_update_addon_with_a_version_eks_offers_on_both_sides_of_the_hop() {
    if !kubectl_available("an_eks_add_on_step_runs_update_addon") {
        return;
    }
    let c = cluster("eks-addons");
    let o = apply(&c, "eks", None, &["--to", "1.31"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_replaced(&c, "1.31", &["ng-a-1", "ng-a-2", "ng-b-1", "ng-b-2"]);
    let with = |v: &[&str]| -> Vec<String> {
        strs(v).into_iter().chain(strs(&["--region", "eu-west-1", "--output", "json"])).collect()
    };
    let log = argv_log(&c);
    let m = mutations(&log);
    assert_eq!(
        m[..4],
        [
            with(&["aws", "eks", "describe-addon-versions", "--addon-name", "vpc-cni", "--kubernetes-version", "1.30"]),
            with(&["aws", "eks", "describe-addon-versions", "--addon-name", "vpc-cni", "--kubernetes-version", "1.31"]),
            with(&[
                "aws",
                "eks",
                "update-addon",
                "--cluster-name",
                "prod",
                "--addon-name",
                "vpc-cni",
                "--addon-version",
                "v1.19.2-eksbuild.1",
                "--resolve-conflicts",
                "PRESERVE",
            ]),
            with(&["aws", "eks", "update-cluster-version", "--name", "prod", "--kubernetes-version", "1.31"]),
        ]
    );
    assert!(
        log.iter()
            .any(|a| a[2] == "describe-update" && a.windows(2).any(|w| w[0] == "--addon-name" && w[1] == "vpc-cni"))
    );
    let ds = c.get_json("/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node");
    assert!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().ends_with(":v1.19.2-eksbuild.1"),
        "{}",
        ds["spec"]["template"]["spec"]["containers"][0]["image"]
    );
    assert_eq!(journal(&c)["pools"]["1/addon:vpc-cni"]["phase"], "done");
}

#[test]
fn a_gcloud_failure_mid_pool_stops_with_exit_3_and_resume_runs_the_pool_again() {
    if !kubectl_available("a_gcloud_failure_mid_pool_stops_with_exit_3") {
        return;
    }
    let c = cluster("gke");
    let o = apply(&c, "gke", Some("highmem"), &["--to", "1.31"]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("node pool highmem: the upgrade failed with 1 of 2 node(s) replaced"), "{out}");
    assert!(out.contains("finished with error: Reached max retries"), "{out}");
    assert_eq!(journal(&c)["pools"]["2/highmem"]["phase"], "failed");
    let o = apply(&c, "gke", None, &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_replaced(&c, "1.31", &["default-pool-1", "default-pool-2", "highmem-1", "highmem-2"]);
    let pools: Vec<String> = argv_log(&c)
        .iter()
        .filter_map(|a| a.iter().position(|x| x == "--node-pool").map(|i| a[i + 1].clone()))
        .collect();
    assert_eq!(pools, ["default-pool", "highmem", "highmem"]);
}
