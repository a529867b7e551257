//! The apply journal kept in the cluster (`--journal cluster`): a run killed on one machine is
//! finished from another with nothing of the first's disk, a second writer stops the run,
//! `--resume-or-start` continues or starts, and a pod's ServiceAccount (with a token from the
//! simulator's TokenRequest API, issued by real `kubectl create token`) plans and applies with
//! the journal in the cluster by default.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{stderr, stdout};
use crate::sim::Cluster;

const CM_PATH: &str = "/api/v1/namespaces/kube-system/configmaps/k8s-upgrade-journal";

/// A machine of its own: HOME and XDG_STATE_HOME under `dir`, events in `dir`, and the
/// cluster's kubeconfig.
struct Machine {
    dir: PathBuf,
    kubeconfig: PathBuf,
}

impl Machine {
    fn new(c: &Cluster, name: &str) -> Machine {
        let dir = c.dir.join(name);
        std::fs::create_dir_all(dir.join("home")).unwrap();
        Machine { dir, kubeconfig: c.kubeconfig.clone() }
    }

    /// The same, reaching the cluster by another URL (as a laptop's load balancer and a pod's
    /// service address differ): `localhost` for `127.0.0.1`, both in the serving certificate.
    fn elsewhere(c: &Cluster, name: &str) -> Machine {
        let m = Machine::new(c, name);
        let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
        assert!(text.contains("https://127.0.0.1:"), "{text}");
        // Named *.kubeconfig in the cluster's dir, so its credential is searched for in outputs.
        let kubeconfig = c.dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&kubeconfig, text.replace("https://127.0.0.1:", "https://localhost:")).unwrap();
        Machine { kubeconfig, ..m }
    }

    fn events(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// `k8s-upgrade apply ARGS` from this machine, unattended, with the sim upgrader.
    fn apply(&self, args: &[&str]) -> Command {
        let mut cmd = crate::common::command();
        cmd.current_dir(&self.dir)
            .env("HOME", self.dir.join("home"))
            .env("XDG_STATE_HOME", self.dir.join("state"))
            .arg("apply")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--events")
            .arg(self.events())
            .args(["--yes", "--gate-passes", "1", "--upgrader", "sim", "--delete-emptydir-data", "--force"])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.apply(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn apply")
    }

    fn run(&self, c: &Cluster, args: &[&str]) -> Output {
        let o = self.apply(args).output().expect("run apply");
        c.assert_no_credentials(&[&stdout(&o), &stderr(&o)]);
        o
    }

    /// Waits until this machine's events file shows `pred`, or panics after `limit`.
    fn wait_event(&self, limit: Duration, pred: impl Fn(&Value) -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if read_events(&self.events()).iter().any(&pred) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("event not seen within {limit:?}: {:?}", read_events(&self.events()).last());
    }

    /// Files under the machine's state directory (where a file journal would go).
    fn state_files(&self) -> Vec<String> {
        let mut out = vec![];
        let mut dirs = vec![self.dir.join("state"), self.dir.join("home")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().filter_map(Result::ok) {
                if e.path().is_dir() {
                    dirs.push(e.path());
                } else {
                    out.push(e.path().display().to_string());
                }
            }
        }
        out
    }
}

fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// A worker's cordon: the run is draining it.
fn worker_cordoned(e: &Value) -> bool {
    e["event"] == "node"
        && e["phase"] == "cordoned"
        && e["kind"].is_null()
        && e["node"].as_str().is_some_and(|n| n.starts_with("pool-"))
}

/// The journal's ConfigMap, or `None`.
fn journal_cm(c: &Cluster) -> Option<Value> {
    let (status, body) = c.http("GET", CM_PATH, "application/json", "");
    match status {
        404 => None,
        200 => Some(serde_json::from_str(&body).unwrap()),
        _ => panic!("GET {CM_PATH}: {status} {body}"),
    }
}

/// The journal inside the ConfigMap, decoded as the tool stores it.
fn stored_journal(cm: &Value) -> Value {
    use base64::Engine;
    use std::io::Read;
    let b64 = cm["binaryData"]["journal.json.gz"].as_str().expect("binaryData journal.json.gz");
    let gz = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let mut json = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut json).unwrap();
    serde_json::from_str(&json).unwrap()
}

/// The demo cluster with drains slow enough for a kill to land in one.
fn slow_demo() -> Cluster {
    let c = Cluster::builtin("demo", 0.02);
    let (status, _) = c.http("PATCH", "/sim/faults", "application/json", r#"{"latencyMs": 5}"#);
    assert_eq!(status, 200);
    c
}

#[test]
fn a_run_killed_mid_drain_is_finished_from_another_home_with_the_journal_in_the_cluster() {
    let c = slow_demo();
    let a = Machine::new(&c, "machine-a");
    let mut child = a.spawn(&["--to", "1.25", "--journal", "cluster"]);
    a.wait_event(Duration::from_secs(90), worker_cordoned);
    child.kill().unwrap();
    child.wait().unwrap();
    let cm = journal_cm(&c).expect("the journal is in the cluster");
    assert_eq!(cm["metadata"]["labels"]["k8s-upgrade.dev/finished"], "false", "{}", cm["metadata"]);
    let to = cm["metadata"]["annotations"]["k8s-upgrade.dev/to"].as_str().unwrap().to_string();
    assert!(to.starts_with("1.25."), "{}", cm["metadata"]);
    let killed = stored_journal(&cm);
    let run_id = killed["runId"].as_str().unwrap().to_string();
    // The kill left a node this run cordoned in the middle of its roll (the wait above saw its
    // cordon; under load it may have reached its upgrade before the kill landed).
    assert!(
        killed["nodes"].as_object().unwrap().values().any(|r| r["weCordoned"] == true && r["phase"] != "done"),
        "the kill landed mid-roll: {}",
        killed["nodes"]
    );
    // Nothing of the journal was left on machine A's disk.
    assert!(!a.state_files().iter().any(|f| f.ends_with(".journal.json")), "{:?}", a.state_files());

    // Machine B: another HOME and state directory, the same credentials, another URL.
    let b = Machine::elsewhere(&c, "machine-b");
    let o = b.run(&c, &["--resume", "--journal", "cluster"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(&format!("run {run_id}")), "the same run continues: {}", stderr(&o));
    assert!(stderr(&o).contains("ConfigMap kube-system/k8s-upgrade-journal"), "{}", stderr(&o));
    assert!(stderr(&o).contains("baseline (from the journal"), "{}", stderr(&o));
    c.assert_finished_clean("1.25");
    let cm = journal_cm(&c).unwrap();
    assert_eq!(cm["metadata"]["labels"]["k8s-upgrade.dev/finished"], "true");
    assert_eq!(stored_journal(&cm)["finished"], true);
    assert_eq!(stored_journal(&cm)["runId"], run_id.as_str());
    // The lock was released, and B kept no journal file either.
    let (status, _) =
        c.http("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/k8s-upgrade-lock", "", "");
    assert_eq!(status, 404);
    assert!(!b.state_files().iter().any(|f| f.ends_with(".journal.json")), "{:?}", b.state_files());
    // Resuming a finished run says so and changes nothing.
    let o = b.run(&c, &["--resume", "--journal", "cluster"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("already finished"), "{}", stdout(&o));
}

#[test]
fn someone_else_writing_the_journal_stops_the_run_without_overwriting_it() {
    let c = slow_demo();
    let a = Machine::new(&c, "a");
    let child = a.spawn(&["--to", "1.25", "--journal", "cluster"]);
    a.wait_event(Duration::from_secs(90), worker_cordoned);
    let (status, body) = c.http(
        "PATCH",
        CM_PATH,
        "application/merge-patch+json",
        &json!({"metadata": {"annotations": {"edited-by": "someone"}}}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(out.contains("was written by someone else") && out.contains("stopped rather than overwrite it"), "{out}");
    assert!(out.contains("kubectl -n kube-system get configmap k8s-upgrade-journal -o yaml"), "{out}");
    // The other writer's change is still there: the run did not write over it.
    let cm = journal_cm(&c).unwrap();
    assert_eq!(cm["metadata"]["annotations"]["edited-by"], "someone");
    assert_eq!(cm["metadata"]["labels"]["k8s-upgrade.dev/finished"], "false");
}

#[test]
fn resume_or_start_starts_when_there_is_no_run_and_continues_an_unfinished_one_to_the_same_target() {
    let c = slow_demo();
    let a = Machine::new(&c, "first-pod");
    assert!(journal_cm(&c).is_none());
    let mut child = a.spawn(&["--to", "1.25", "--journal", "cluster", "--resume-or-start"]);
    a.wait_event(Duration::from_secs(90), worker_cordoned);
    child.kill().unwrap();
    child.wait().unwrap();
    let run_id = stored_journal(&journal_cm(&c).expect("a run was started"))["runId"].as_str().unwrap().to_string();

    let b = Machine::new(&c, "second-pod");
    // A new run is refused while this one is unfinished, with both ways on.
    let o = b.run(&c, &["--to", "1.25", "--journal", "cluster"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("holds the unfinished run {run_id}"))
            && err.contains("continue it with `k8s-upgrade apply --resume --journal cluster`")
            && err.contains("kubectl -n kube-system delete configmap k8s-upgrade-journal"),
        "{err}"
    );
    // Another target is another intent: refused, naming both.
    let o = b.run(&c, &["--to", "1.26", "--journal", "cluster", "--resume-or-start"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("run {run_id} to 1.25.")) && stderr(&o).contains("not --to 1.26"),
        "{}",
        stderr(&o)
    );
    // The same command line as the first pod's continues the run.
    let o = b.run(&c, &["--to", "1.25", "--journal", "cluster", "--resume-or-start"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(&format!("run {run_id}")), "{}", stderr(&o));
    c.assert_finished_clean("1.25");
    // A file named `cluster` is `./cluster`: a file journal, not the ConfigMap.
    let o = b.run(&c, &["--resume", "--journal", "./cluster"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot read the journal ./cluster: it does not exist"), "{}", stderr(&o));
    // Usage: it needs --to, and does not go with --resume.
    let o = b.run(&c, &["--journal", "cluster", "--resume-or-start"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = b.run(&c, &["--resume", "--journal", "cluster", "--resume-or-start", "--to", "1.25"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// The simulator's CA, a token and a namespace, laid out as the kubelet mounts them.
fn service_account_dir(c: &Cluster, token: &str) -> PathBuf {
    let dir = c.dir.join("serviceaccount");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.crt"), c.running.as_ref().unwrap().ca_pem().unwrap()).unwrap();
    std::fs::write(dir.join("namespace"), "kube-system").unwrap();
    std::fs::write(dir.join("token"), token).unwrap();
    dir
}

/// The binary as a pod runs it: service environment, mounted ServiceAccount, no kubeconfig.
fn in_pod(c: &Cluster, sa_dir: &Path, args: &[&str]) -> Output {
    let mut cmd = crate::common::command();
    cmd.env("HOME", c.dir.join("pod-home"))
        .env("XDG_STATE_HOME", c.dir.join("pod-state"))
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", c.addr().port().to_string())
        .env("K8S_UPGRADE_SERVICEACCOUNT_DIR", sa_dir)
        .args(args)
        .stdin(Stdio::null());
    cmd.output().expect("run k8s-upgrade")
}

/// Prints roles with `k8s-upgrade rbac ARGS` and creates them as the admin.
fn bind(c: &Cluster, args: &[&str]) -> Vec<Value> {
    let o = crate::common::command().arg("rbac").args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&stdout(&o)).unwrap();
    for d in &docs {
        c.create_rbac(d);
    }
    docs
}

#[test]
fn in_a_pod_the_service_account_s_token_from_kubectl_create_token_plans_and_applies_with_the_journal_in_the_cluster() {
    let test = "in_a_pod_the_service_account_s_token_from_kubectl_create_token_plans_and_applies";
    if !crate::sim::kubectl_available(test) {
        return;
    }
    let c = Cluster::start(crate::sim::small("1.24.17"), 0.02);
    let create_sa = || {
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "upgrader"}});
        let (status, body) =
            c.http("POST", "/api/v1/namespaces/kube-system/serviceaccounts", "application/json", &sa.to_string());
        assert_eq!(status, 201, "{body}");
    };
    create_sa();
    // The TokenRequest API as kubectl uses it: validation and a missing ServiceAccount first.
    let o = c.kubectl(&["create", "token", "upgrader", "-n", "kube-system", "--duration", "5m"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("may not specify a duration less than 10 minutes"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = c.kubectl(&["create", "token", "nobody", "-n", "kube-system"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(r#"serviceaccounts "nobody" not found"#),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let token = c.kubectl_ok(&["create", "token", "upgrader", "-n", "kube-system", "--duration", "1h"]);
    let token = token.trim();
    assert!(token.len() >= 32, "{token}");
    let sa_dir = service_account_dir(&c, token);

    // Unbound, the ServiceAccount reads nothing; bound to the plan role, it plans.
    let o = in_pod(&c, &sa_dir, &["plan", "--to", "1.25"]);
    assert!(stdout(&o).contains("could not read nodes"), "{}\n{}", stdout(&o), stderr(&o));
    bind(&c, &["--for", "plan", "--service-account", "kube-system:upgrader"]);
    let o = in_pod(&c, &sa_dir, &["plan", "--to", "1.25"]);
    assert!(matches!(o.status.code(), Some(0) | Some(3)), "{}\n{}", stdout(&o), stderr(&o));
    let users = c.stats()["authorizations"].as_array().unwrap().iter().any(|a| {
        a["user"] == "system:serviceaccount:kube-system:upgrader" && a["resource"] == "nodes" && a["allowed"] == true
    });
    assert!(users, "the plan read nodes as the ServiceAccount");
    assert!(!stdout(&o).contains(token) && !stderr(&o).contains(token), "the token leaked");

    // A token for another audience is no credential for the apiserver.
    let other = c.kubectl_ok(&["create", "token", "upgrader", "-n", "kube-system", "--audience", "vault"]);
    let o = in_pod(&c, &service_account_dir(&c, other.trim()), &["plan", "--to", "1.25"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("401") || stderr(&o).contains("Unauthorized"), "{}", stderr(&o));
    let sa_dir = service_account_dir(&c, token);

    // apply in the pod keeps its journal in the cluster by default; the apply role printed for
    // it carries the journal's rules, each of which apply checks before it starts.
    let docs = bind(
        &c,
        &["--for", "apply", "--upgrader", "sim", "--journal", "cluster", "--service-account", "kube-system:upgrader"],
    );
    let role = docs
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == "kube-system")
        .expect("a Role in kube-system")
        .clone();
    let rules = role["rules"].as_array().unwrap();
    let journal_rules: Vec<usize> = (0..rules.len())
        .filter(|i| rules[*i]["resources"].as_array().unwrap().iter().any(|r| r == "configmaps"))
        .collect();
    assert_eq!(journal_rules.len(), 2, "{role}");
    let apply_args = ["apply", "--to", "1.25", "--yes", "--upgrader", "sim", "--gate-passes", "1"];
    let replace = |role: &Value| {
        let path = "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles/k8s-upgrade-apply";
        let (status, body) = c.http("PUT", path, "application/json", &role.to_string());
        assert_eq!(status, 200, "{body}");
    };
    for i in journal_rules {
        let mut narrowed = role.clone();
        let removed = narrowed["rules"].as_array_mut().unwrap().remove(i);
        replace(&narrowed);
        let o = in_pod(&c, &sa_dir, &apply_args);
        assert_eq!(o.status.code(), Some(1), "without {removed}: {}", stderr(&o));
        let verb = removed["verbs"][0].as_str().unwrap();
        assert!(
            stderr(&o).contains("nothing was started") && stderr(&o).contains(&format!("{verb} configmaps")),
            "without {removed}: {}",
            stderr(&o)
        );
        assert!(journal_cm(&c).is_none());
        replace(&role);
    }
    let o = in_pod(&c, &sa_dir, &apply_args);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("journal ConfigMap kube-system/k8s-upgrade-journal"), "{}", stderr(&o));
    assert_eq!(
        journal_cm(&c).expect("the journal is in the cluster")["metadata"]["labels"]["k8s-upgrade.dev/finished"],
        "true"
    );
    c.assert_finished_clean("1.25");

    // Once the ServiceAccount is gone, so is its token; a recreated one does not inherit it.
    let (status, body) = c.http("DELETE", "/api/v1/namespaces/kube-system/serviceaccounts/upgrader", "", "");
    assert_eq!(status, 200, "{body}");
    create_sa();
    let o = in_pod(&c, &sa_dir, &["plan", "--to", "1.25"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}
