//! `fleet plan` and `fleet jobs` against several simulators at once, one context of the
//! kubeconfig pointing at a closed loopback port.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine;
use k8s_upgrade::plan::Plan;
use serde_json::{Value, json};

use crate::common::{self, stderr, stdout};
use crate::sim::{Cluster, credentials_in, kubectl_available, small};

/// A loopback port nothing listens on: bound, then let go.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

/// The cluster and user entries of a simulator's kubeconfig.
fn entries(c: &Cluster) -> (Value, Value) {
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let kc: Value = serde_saphyr::from_str(&text).unwrap();
    (kc["clusters"][0]["cluster"].clone(), kc["users"][0]["user"].clone())
}

/// A kubeconfig with one context per (name, cluster, user), written 0600 into `dir` under a
/// name the credential checks of [`Cluster`] look at.
fn merged(dir: &Path, contexts: &[(&str, Value, Value)]) -> PathBuf {
    let mut kc = json!({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": [],
        "current-context": contexts[0].0});
    for (i, (name, cluster, user)) in contexts.iter().enumerate() {
        kc["clusters"].as_array_mut().unwrap().push(json!({"name": format!("c{i}"), "cluster": cluster}));
        kc["users"].as_array_mut().unwrap().push(json!({"name": format!("u{i}"), "user": user}));
        kc["contexts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": name, "context": {"cluster": format!("c{i}"), "user": format!("u{i}")}}));
    }
    let path = dir.join("fleet.kubeconfig");
    k8s_upgrade::sim::write_private(&path, &kc.to_string()).unwrap();
    path
}

struct Fleet {
    good: Cluster,
    blocked: Cluster,
    past: Cluster,
    kubeconfig: PathBuf,
}

/// Four contexts: `good` (1.31, nothing blocks 1.33), `prod/blocked` (a budget that never
/// allows a disruption), `past` (already on 1.34) and `down` (a closed port).
fn fleet() -> Fleet {
    let good = Cluster::start(small("1.31.2"), 0.02);
    let blocked = Cluster::builtin("blocked", 0.02);
    let past = Cluster::start(small("1.34.1"), 0.02);
    let (good_c, good_u) = entries(&good);
    let (blocked_c, blocked_u) = entries(&blocked);
    let (past_c, past_u) = entries(&past);
    let mut down_c = good_c.clone();
    down_c["server"] = json!(format!("https://127.0.0.1:{}", closed_port()));
    let kubeconfig = merged(
        &good.dir,
        &[
            ("good", good_c, good_u.clone()),
            ("prod/blocked", blocked_c, blocked_u),
            ("past", past_c, past_u),
            ("down", down_c, good_u),
        ],
    );
    Fleet { good, blocked, past, kubeconfig }
}

fn fleet_plan(f: &Fleet, extra: &[&str]) -> Output {
    let mut args = vec!["fleet", "plan", "--kubeconfig", f.kubeconfig.to_str().unwrap(), "--to", "1.33"];
    args.extend_from_slice(extra);
    common::run(&args)
}

/// The table's data rows, by cluster name (first column).
fn rows(o: &Output) -> Vec<(String, String)> {
    stdout(o)
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| (l.split_whitespace().next().unwrap_or_default().to_string(), l.to_string()))
        .collect()
}

#[test]
fn four_clusters_one_down_one_blocked_give_four_rows_and_exit_3() {
    let f = fleet();
    let out_dir = f.good.dir.join("plans");
    let o = fleet_plan(&f, &["--contexts", "good,prod/blocked,past,down", "--out-dir", out_dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    let rows = rows(&o);
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["good", "prod/blocked", "past", "down"], "{}", stdout(&o));
    let row = |n: &str| rows.iter().find(|(name, _)| name == n).unwrap().1.clone();
    assert!(row("down").contains("error: ") && row("down").contains("refused"), "{}", row("down"));
    assert!(
        row("good").contains("kubeadm") && row("good").contains("1.31.2") && row("good").contains("1.33."),
        "{}",
        row("good")
    );
    assert!(row("prod/blocked").contains("PodDisruptionBudget"), "the first blocker is named: {}", row("prod/blocked"));
    assert!(
        row("past").contains("1.34.1") && row("past").contains("past the target (1.34.1 is newer than 1.33"),
        "{}",
        row("past")
    );
    // Upstream end of life of 1.31 (kubeadm follows upstream).
    assert!(row("good").contains("2025-"), "{}", row("good"));
    assert!(stdout(&o).contains("4 cluster(s): 1 ready, 1 blocked, 1 with nothing to do, 1 failed"), "{}", stdout(&o));
    // Not a terminal: one progress line per cluster on stderr.
    assert_eq!(stderr(&o).lines().filter(|l| l.starts_with("fleet: ")).count(), 4, "{}", stderr(&o));

    // The plans, as `plan --save` documents, named safely inside DIR; none for the failures.
    let mut files: Vec<String> =
        std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.contains(&"good.plan.json".to_string()), "{files:?}");
    let blocked_file = files.iter().find(|n| n.starts_with("prod_blocked-")).expect("the slash is replaced");
    let blocked = Plan::from_document(&std::fs::read_to_string(out_dir.join(blocked_file)).unwrap()).unwrap();
    assert!(blocked.has_blockers());
    let good = Plan::from_document(&std::fs::read_to_string(out_dir.join("good.plan.json")).unwrap()).unwrap();
    assert_eq!(good.from.to_string(), "1.31.2");
    assert!(!good.has_blockers());

    // Only clusters that can be planned: 0; with a failure and no blocker: 1.
    let o = fleet_plan(&f, &["--contexts", "good,past"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let o = fleet_plan(&f, &["--contexts", "good,down", "--concurrency", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));

    // Every context, as one JSON document.
    let o = fleet_plan(&f, &["--all-contexts", "-o", "json"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["kind"], "FleetPlan");
    let statuses: Vec<(&str, &str)> = doc["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["cluster"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [("good", "ready"), ("prod/blocked", "blocked"), ("past", "past-target"), ("down", "error")]);
    assert_eq!(doc["clusters"][1]["blockers"], 1);
    let past = &doc["clusters"][2];
    assert_eq!((past["version"].as_str(), past["distro"].as_str()), (Some("1.34.1"), Some("kubeadm")));
    assert!(past.get("error").is_none(), "being past the target is no error: {past}");
    assert!(doc["clusters"][3]["error"].as_str().unwrap().contains("127.0.0.1"));
    drop((f.blocked, f.past));
}

#[test]
fn fleet_plan_refuses_unknown_contexts_and_out_of_range_concurrency() {
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-fleet-usage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = merged(&dir, &[("a", json!({"server": "https://127.0.0.1:1"}), json!({"token": "t0ken-for-a"}))]);
    let kc = kc.to_str().unwrap();
    let o = common::run(&["fleet", "plan", "--kubeconfig", kc, "--contexts", "a,nope", "--to", "1.33"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("context 'nope' is not in the kubeconfig (contexts: a)"), "{}", stderr(&o));
    for n in ["0", "33"] {
        let o =
            common::run(&["fleet", "plan", "--kubeconfig", kc, "--contexts", "a", "--to", "1.33", "--concurrency", n]);
        assert_eq!(o.status.code(), Some(2), "--concurrency {n}");
    }
    let o = common::run(&["fleet", "plan", "--kubeconfig", kc, "--contexts", "a", "--to", "1.x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'1.x'"), "{}", stderr(&o));
    let o = common::run(&["fleet", "plan", "--kubeconfig", kc, "--to", "1.33"]);
    assert_eq!(o.status.code(), Some(2), "--contexts or --all-contexts is required");
    // A lone unreachable cluster: exit 1, its row in the YAML document says why.
    let o = common::run(&["fleet", "plan", "--kubeconfig", kc, "--all-contexts", "--to", "1.33", "-o", "yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let doc: Value = serde_saphyr::from_str(&stdout(&o)).unwrap();
    assert_eq!((doc["kind"].as_str(), doc["clusters"][0]["status"].as_str()), (Some("FleetPlan"), Some("error")));
    assert!(doc["clusters"][0]["error"].as_str().unwrap().contains("https://127.0.0.1:1"), "{doc}");
    assert!(!stdout(&o).contains("t0ken-for-a") && !stderr(&o).contains("t0ken-for-a"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(text).unwrap()
}

#[test]
fn fleet_jobs_carry_a_working_kubeconfig_per_cluster_and_refuse_exec_plugins() {
    let good = Cluster::start(small("1.31.2"), 0.02);
    let blocked = Cluster::builtin("blocked", 0.02);
    let (good_c, good_u) = entries(&good);
    let (blocked_c, blocked_u) = entries(&blocked);
    let exec_user = json!({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "aws", "args": ["eks", "get-token"]}});
    let kubeconfig = merged(
        &good.dir,
        &[("good", good_c.clone(), good_u), ("prod/blocked", blocked_c, blocked_u), ("sso", good_c, exec_user)],
    );
    let kc = kubeconfig.to_str().unwrap();
    let o = common::run(&[
        "fleet",
        "jobs",
        "--kubeconfig",
        kc,
        "--contexts",
        "good,prod/blocked",
        "--to",
        "1.33",
        "-n",
        "upgrades",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let all = docs(&text);
    let kinds: Vec<&str> = all.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Secret", "Job", "Secret", "Job"]);
    // Credentials only inside the Secrets' data, never in clear, never on stderr.
    for secret in credentials_in(&kubeconfig) {
        assert!(!text.contains(&secret) && !stderr(&o).contains(&secret), "a credential is visible in the output");
    }
    for (pair, (context, expect_exit)) in all.chunks(2).zip([("good", 0), ("prod/blocked", 3)]) {
        let (secret, job) = (&pair[0], &pair[1]);
        assert_eq!(secret["metadata"]["annotations"]["k8s-upgrade.dev/context"], context);
        let name = job["metadata"]["name"].as_str().unwrap();
        assert!(
            name.len() <= 52 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name}"
        );
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false, "the pod needs no token of the management cluster");
        assert_eq!(pod["volumes"][1]["secret"]["secretName"], secret["metadata"]["name"]);
        let args: Vec<&str> =
            pod["containers"][0]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(args[..7], ["apply", "--to", "1.33", "--yes", "--journal", "cluster", "--resume-or-start"]);
        assert_eq!(args[args.len() - 2..], ["--kubeconfig", "/etc/k8s-upgrade/kubeconfig/config"]);
        let env: Vec<&str> =
            pod["containers"][0]["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert!(!env.iter().any(|e| e.contains("POD_NAME")), "its pod is not in the cluster it drains: {env:?}");
        // The kubeconfig in the Secret reaches its cluster alone: plan with it.
        let config =
            base64::engine::general_purpose::STANDARD.decode(secret["data"]["config"].as_str().unwrap()).unwrap();
        let file = good.dir.join(format!("secret-{}.kubeconfig", context.replace('/', "_")));
        k8s_upgrade::sim::write_private(&file, &String::from_utf8(config).unwrap()).unwrap();
        let p = common::run(&["plan", "--kubeconfig", file.to_str().unwrap(), "--to", "1.33"]);
        assert_eq!(p.status.code(), Some(expect_exit), "{context}: {}", stderr(&p));
        assert!(stdout(&p).starts_with("kubeadm: "), "{}", stdout(&p));
    }

    // An exec plugin cannot run in the pod: refused by context, and nothing is printed.
    let o = common::run(&["fleet", "jobs", "--kubeconfig", kc, "--contexts", "good,sso", "--to", "1.33"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("context 'sso'") && stderr(&o).contains("exec plugin 'aws'"), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "nothing half-made reaches kubectl apply");

    // On a terminal the Secrets are not printed (a pseudo-terminal from `script`).
    if std::process::Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let line = format!(
            "{} fleet jobs --kubeconfig {} --contexts good --to 1.33",
            env!("CARGO_BIN_EXE_k8s-upgrade"),
            kubeconfig.display()
        );
        let o = std::process::Command::new("script").args(["-qec", &line, "/dev/null"]).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
        assert!(
            stdout(&o).contains("refusing to print kubeconfig Secrets (credentials) to a terminal"),
            "{}",
            stdout(&o)
        );
        assert!(!stdout(&o).contains("kind: Secret"));
    } else {
        eprintln!("skipping the terminal check: `script` (util-linux) is not installed");
    }

    // --out-dir: one private file per cluster.
    let out = good.dir.join("jobs");
    let o = common::run(&[
        "fleet",
        "jobs",
        "--kubeconfig",
        kc,
        "--all-contexts",
        "--to",
        "1.33",
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "the sso context still refuses: {}", stderr(&o));
    let o = common::run(&[
        "fleet",
        "jobs",
        "--kubeconfig",
        kc,
        "--contexts",
        "good,prod/blocked",
        "--to",
        "1.33",
        "--out-dir",
        out.to_str().unwrap(),
        "-n",
        "upgrades",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let files: Vec<PathBuf> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
        assert!(f.parent() == Some(out.as_path()));
    }

    // The management cluster accepts them (server dry run; the simulator serves no OpenAPI, so
    // kubectl's schema validation is off), Pod Security `restricted` included.
    if kubectl_available("fleet_jobs_carry_a_working_kubeconfig_per_cluster_and_refuse_exec_plugins") {
        good.kubectl_ok(&["create", "namespace", "upgrades"]);
        good.kubectl_ok(&["label", "namespace", "upgrades", "pod-security.kubernetes.io/enforce=restricted"]);
        for f in &files {
            let applied =
                good.kubectl_ok(&["apply", "--dry-run=server", "--validate=false", "-f", f.to_str().unwrap()]);
            assert!(applied.contains("(server dry run)"), "{applied}");
        }
        let job = all[1].clone();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": "upgrades"},
            "spec": job["spec"]["template"]["spec"]});
        let file = good.dir.join("probe-pod.json");
        std::fs::write(&file, pod.to_string()).unwrap();
        good.kubectl_ok(&["create", "--dry-run=server", "--validate=false", "-f", file.to_str().unwrap()]);
    }
    drop(blocked);
}
