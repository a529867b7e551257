//! Helm releases rewritten, not only reported: `helm-fix` and apply's Helm release steps write
//! revision N+1 with the removed APIs mapped (as `helm mapkubeapis` does) and mark N superseded,
//! keeping everything else in both Secrets; a dry run changes nothing; a rerun after a stop
//! between the two writes finishes the job instead of writing N+2.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Output, Stdio};

use base64::Engine;
use serde_json::{Value, json};

use crate::common::{stderr, stdout};
use crate::sim::{Cluster, small};

const DESCRIPTION: &str = "Kubernetes deprecated API upgrade - DO NOT rollback from this version";

/// The stored manifest: a budget and a CronJob on APIs 1.25 removes, a PodSecurityPolicy (no
/// replacement) and a ConfigMap on v1.
const MANIFEST: &str = "---\n# Source: web/templates/pdb.yaml\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  minAvailable: 1\n---\n# Source: web/templates/psp.yaml\napiVersion: policy/v1beta1\nkind: PodSecurityPolicy\nmetadata:\n  name: web-restricted\nspec:\n  privileged: false\n---\n# Source: web/templates/cronjob.yaml\napiVersion: \"batch/v1beta1\"\nkind: CronJob\nmetadata:\n  name: web-cleanup\n  namespace: shop\nspec:\n  schedule: \"0 3 * * *\"\n---\n# Source: web/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  namespace: shop\ndata:\n  apiVersion: policy/v1beta1\n";

/// Values with a secret in them, and spacing Go would not write: kept byte for byte or not at all.
const CONFIG: &str = r#"{"password":"hunter2-do-not-print","float":1.50,"list":[ 1, 2 ],"html":"\u003cb\u003e"}"#;

/// A release JSON as Helm writes it (compact, Helm's field order).
fn release_json(manifest: &str, version: u64, status: &str, description: &str, last_deployed: &str) -> String {
    format!(
        r#"{{"name":"web","info":{{"first_deployed":"2024-01-02T03:04:05.123456789Z","last_deployed":{},"deleted":"","description":{},"status":"{status}","notes":"1. Get the URL"}},"chart":{{"metadata":{{"name":"web","version":"1.2.3","apiVersion":"v2"}},"lock":null,"templates":[{{"name":"templates/pdb.yaml","data":"YXBpVmVyc2lvbjo="}}],"values":{{"replicas":1}},"schema":null,"files":[]}},"config":{CONFIG},"manifest":{},"hooks":[{{"name":"web-test","kind":"Pod","path":"web/templates/test.yaml","manifest":"apiVersion: v1\nkind: Pod\n","events":["test"]}}],"version":{version},"namespace":"shop"}}"#,
        serde_json::to_string(last_deployed).unwrap(),
        serde_json::to_string(description).unwrap(),
        serde_json::to_string(manifest).unwrap(),
    )
}

fn payload(json: &str) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, json.as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
}

/// The release JSON in a Secret as the API returns it, decoded here independently of the tool.
fn decoded(secret: &Value) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let helm = b64.decode(secret["data"]["release"].as_str().unwrap()).unwrap();
    let gz = b64.decode(&helm).unwrap();
    let mut json = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut json).unwrap();
    json
}

fn secret(version: u64, status: &str, json: &str, extra_labels: Value) -> Value {
    let mut labels = json!({"owner": "helm", "name": "web", "status": status, "version": version.to_string()});
    labels.as_object_mut().unwrap().extend(extra_labels.as_object().unwrap().clone());
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": format!("sh.helm.release.v1.web.v{version}"), "namespace": "shop", "labels": labels},
        "data": {"release": base64::engine::general_purpose::STANDARD.encode(payload(json))},
    })
}

/// The Secrets of namespace `shop`, by name.
fn secrets(c: &Cluster) -> BTreeMap<String, Value> {
    c.get_json("/api/v1/namespaces/shop/secrets")["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["metadata"]["name"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

/// A 1.24 cluster with release shop/web: revision 1 superseded, revision 2 deployed.
fn cluster_with_release() -> (Cluster, String) {
    let c = Cluster::start(small("1.24.17"), 0.05);
    let (status, body) = c.http(
        "POST",
        "/api/v1/namespaces",
        "application/json",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop"}}"#,
    );
    assert_eq!(status, 201, "{body}");
    let v1 = release_json(MANIFEST, 1, "superseded", "Install complete", "2024-01-02T03:04:05.123456789Z");
    let v2 = release_json(MANIFEST, 2, "deployed", "Upgrade complete", "2024-02-02T03:04:05Z");
    for s in [
        secret(1, "superseded", &v1, json!({"modifiedAt": "1704164645"})),
        secret(2, "deployed", &v2, json!({"createdAt": "1706843045", "team": "shop"})),
    ] {
        let (status, body) = c.http("POST", "/api/v1/namespaces/shop/secrets", "application/json", &s.to_string());
        assert_eq!(status, 201, "{body}");
    }
    (c, v2)
}

fn helm_fix(c: &Cluster, args: &[&str]) -> Output {
    let mut cmd = crate::common::command();
    cmd.env("HOME", c.dir.join("home"))
        .args(["helm-fix", "web", "-n", "shop", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .args(args)
        .stdin(Stdio::null());
    let o = cmd.output().expect("run helm-fix");
    c.assert_no_credentials(&[&stdout(&o), &stderr(&o)]);
    for text in [stdout(&o), stderr(&o)] {
        assert!(!text.contains("hunter2"), "values are never printed:\n{text}");
    }
    o
}

fn without_version(mut s: Value) -> Value {
    if let Some(m) = s["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    s
}

#[test]
fn helm_fix_writes_the_next_revision_supersedes_the_deployed_one_and_keeps_everything_else() {
    let (c, v2_json) = cluster_with_release();
    let before = secrets(&c);

    // Without a terminal and without --yes or --dry-run: a usage error, nothing written.
    let o = helm_fix(&c, &["--to", "1.25"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--yes"), "{}", stderr(&o));
    // A target behind the cluster is named.
    let o = helm_fix(&c, &["--to", "1.23", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--to 1.23") && stderr(&o).contains("1.24.17"), "{}", stderr(&o));
    // The default target is the version the cluster runs: 1.24 still serves all of it.
    let o = helm_fix(&c, &["--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).contains("nothing to rewrite"), "{}", stderr(&o));

    // --dry-run prints the diff and changes nothing.
    let o = helm_fix(&c, &["--to", "1.25", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let diff = stdout(&o);
    assert!(diff.starts_with("--- a/web revision 2\n+++ b/web revision 3\n"), "{diff}");
    for line in [
        "-apiVersion: policy/v1beta1\n+apiVersion: policy/v1\n kind: PodDisruptionBudget\n",
        "-kind: PodSecurityPolicy\n",
        "-apiVersion: \"batch/v1beta1\"\n+apiVersion: \"batch/v1\"\n",
    ] {
        assert!(diff.contains(line), "{line:?} in\n{diff}");
    }
    assert!(stderr(&o).contains("dry run, nothing written"), "{}", stderr(&o));
    assert_eq!(secrets(&c), before, "a dry run writes nothing");

    // Written.
    let o = helm_fix(&c, &["--to", "1.25", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), diff, "the same diff as the dry run");
    assert!(stderr(&o).contains("revision 2 → 3"), "{}", stderr(&o));
    let after = secrets(&c);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["sh.helm.release.v1.web.v1", "sh.helm.release.v1.web.v2", "sh.helm.release.v1.web.v3"]
    );
    // Revision 1: untouched.
    assert_eq!(after["sh.helm.release.v1.web.v1"], before["sh.helm.release.v1.web.v1"]);
    // Revision 2: superseded in its label and its info.status; nothing else.
    let (old, new_old) = (&before["sh.helm.release.v1.web.v2"], &after["sh.helm.release.v1.web.v2"]);
    assert_eq!(decoded(new_old), v2_json.replace(r#""status":"deployed""#, r#""status":"superseded""#));
    let mut expected = without_version(old.clone());
    expected["metadata"]["labels"]["status"] = json!("superseded");
    let mut got = without_version(new_old.clone());
    got["data"] = expected["data"].clone();
    assert_eq!(got, expected);
    // Revision 3: deployed, version 3, the mapkubeapis description, the rewritten manifest, and
    // every other byte of the release JSON (values, chart, hooks, notes) as in revision 2.
    let v3 = &after["sh.helm.release.v1.web.v3"];
    assert_eq!(v3["type"], "helm.sh/release.v1");
    let labels = v3["metadata"]["labels"].as_object().unwrap();
    assert_eq!(labels["owner"], "helm");
    assert_eq!(labels["name"], "web");
    assert_eq!(labels["status"], "deployed");
    assert_eq!(labels["version"], "3");
    assert_eq!(labels["team"], "shop", "labels Helm's user added stay");
    assert!(labels["createdAt"].as_str().unwrap().parse::<i64>().unwrap() > 1_706_843_045);
    assert_eq!(labels.len(), 6, "{labels:?}");
    let v3_json = decoded(v3);
    let release: Value = serde_json::from_str(&v3_json).unwrap();
    let last_deployed = release["info"]["last_deployed"].as_str().unwrap();
    assert!(last_deployed > "2026", "{last_deployed}");
    let manifest = MANIFEST
        .replace("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget", "apiVersion: policy/v1\nkind: PodDisruptionBudget")
        .replace(
            "---\n# Source: web/templates/psp.yaml\napiVersion: policy/v1beta1\nkind: PodSecurityPolicy\nmetadata:\n  name: web-restricted\nspec:\n  privileged: false\n",
            "",
        )
        .replace("apiVersion: \"batch/v1beta1\"", "apiVersion: \"batch/v1\"");
    assert_eq!(v3_json, release_json(&manifest, 3, "deployed", DESCRIPTION, last_deployed));
    assert!(v3_json.contains(&format!(r#""config":{CONFIG},"#)), "values byte for byte");

    // A stop between the two writes (revision 3 written, 2 still deployed): the rerun supersedes
    // 2 and writes no revision 4.
    let mut back = old.clone();
    back["metadata"]["resourceVersion"] = new_old["metadata"]["resourceVersion"].clone();
    let (status, body) = c.http(
        "PUT",
        "/api/v1/namespaces/shop/secrets/sh.helm.release.v1.web.v2",
        "application/json",
        &back.to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let o = helm_fix(&c, &["--to", "1.25", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "no manifest change left");
    assert!(stderr(&o).contains("revision 2 superseded (left deployed by a rewrite that stopped)"), "{}", stderr(&o));
    let again = secrets(&c);
    assert_eq!(again.len(), 3, "no revision 4: {:?}", again.keys());
    assert_eq!(again["sh.helm.release.v1.web.v3"], *v3);
    assert_eq!(again["sh.helm.release.v1.web.v2"]["metadata"]["labels"], new_old["metadata"]["labels"]);
    assert_eq!(decoded(&again["sh.helm.release.v1.web.v2"]), decoded(new_old));

    // Once more: nothing to do, nothing written.
    let o = helm_fix(&c, &["--to", "1.25", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("revision 3 uses no API that 1.25 does not serve; nothing to rewrite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(secrets(&c), again);

    // A release that is not there is named, with what to check.
    let mut cmd = crate::common::command();
    let o = cmd
        .env("HOME", c.dir.join("home"))
        .args(["helm-fix", "nope", "-n", "shop", "--dry-run", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no Helm release 'nope' in namespace 'shop'"), "{}", stderr(&o));
}

fn journal_of(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn demo_apply(c: &Cluster, tag: &str, args: &[&str]) -> (Output, std::path::PathBuf, std::path::PathBuf) {
    demo_apply_as(c, &c.kubeconfig, tag, args)
}

/// `apply --to 1.25` on the demo with `kubeconfig`, unattended; its output, journal and events.
fn demo_apply_as(
    c: &Cluster,
    kubeconfig: &Path,
    tag: &str,
    args: &[&str],
) -> (Output, std::path::PathBuf, std::path::PathBuf) {
    let (journal, events) = (c.dir.join(format!("journal-{tag}.json")), c.dir.join(format!("events-{tag}.jsonl")));
    let mut cmd = crate::common::command();
    cmd.env("HOME", c.dir.join("home"))
        .args(["apply", "--to", "1.25", "--yes", "--gate-passes", "1", "--upgrader", "sim"])
        .args(["--delete-emptydir-data", "--force", "--kubeconfig"])
        .arg(kubeconfig)
        .arg("--journal")
        .arg(&journal)
        .arg("--events")
        .arg(&events)
        .args(args)
        .stdin(Stdio::null());
    let o = cmd.output().expect("run apply");
    c.assert_no_credentials(&[&stdout(&o), &stderr(&o)]);
    (o, journal, events)
}

fn reports_secrets(c: &Cluster) -> BTreeMap<String, Value> {
    c.get_json("/api/v1/namespaces/reports/secrets")["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["metadata"]["name"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

#[test]
fn apply_performs_the_demo_s_helm_release_step_before_the_hop_that_removes_its_apis() {
    let c = Cluster::builtin("demo", 0.02);
    let before = reports_secrets(&c);

    // A dry run says what it would write, and writes nothing.
    let (o, _, _) = demo_apply(&c, "dry", &["--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        all.contains("dry run: would write: Helm release reports/reports: revision 3 → 4: policy/v1beta1 PodDisruptionBudget reports → policy/v1; batch/v1beta1 CronJob nightly-report → batch/v1"),
        "{all}"
    );
    assert_eq!(reports_secrets(&c), before);

    let (o, journal, events) = demo_apply(&c, "run", &[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("0 left to the operator"), "{all}");
    assert!(!all.contains("left to the operator (unattended run)") && !all.contains("acknowledge"), "{all}");
    let j = journal_of(&journal);
    let steps = j["steps"].as_array().unwrap();
    let helm = steps.iter().position(|s| s["step"]["kind"] == "helm-release").expect("a helm-release step");
    let hop = steps
        .iter()
        .position(|s| {
            s["step"]["kind"] == "control-plane" && s["step"]["action"]["to"].as_str().unwrap().starts_with("1.25")
        })
        .expect("the hop to 1.25");
    assert!(helm < hop, "the Helm step comes before the hop that removes its APIs");
    assert_eq!(steps[helm]["status"], "done", "performed, not skipped: {}", steps[helm]);
    assert!(steps[helm]["note"].is_null(), "{}", steps[helm]);
    assert!(j["acknowledged"].as_array().is_none_or(|a| a.is_empty()), "nothing acknowledged");
    let log: Vec<&str> = j["log"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(log.iter().any(|l| l.starts_with("Helm release reports/reports: revision 3 → 4")), "{log:?}");
    assert!(log.contains(&"  +apiVersion: policy/v1"), "{log:?}");
    // It ran before the hop started, and was not left to the operator.
    let ev: Vec<Value> =
        std::fs::read_to_string(&events).unwrap().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let at = |pred: &dyn Fn(&Value) -> bool| ev.iter().position(pred).unwrap();
    let helm_order = &steps[helm]["step"]["order"];
    let done = at(&|e| e["event"] == "step-done" && &e["step"] == helm_order);
    assert!(ev[done]["skipped"].is_null(), "{}", ev[done]);
    let hop_start = at(&|e| e["event"] == "step-start" && e["step"] == steps[hop]["step"]["order"]);
    assert!(done < hop_start);
    assert!(!ev.iter().any(|e| e["event"] == "operator-step-left"), "nothing left to the operator");

    // The release: revision 4 deployed with the mapped manifest, 3 superseded, 2 untouched.
    let after = reports_secrets(&c);
    assert_eq!(after["sh.helm.release.v1.reports.v2"], before["sh.helm.release.v1.reports.v2"]);
    let v3 = &after["sh.helm.release.v1.reports.v3"];
    assert_eq!(v3["metadata"]["labels"]["status"], "superseded");
    assert_eq!(
        decoded(v3),
        decoded(&before["sh.helm.release.v1.reports.v3"]).replace(r#""status":"deployed""#, r#""status":"superseded""#)
    );
    let v4 = &after["sh.helm.release.v1.reports.v4"];
    assert_eq!(v4["metadata"]["labels"]["status"], "deployed");
    let release: Value = serde_json::from_str(&decoded(v4)).unwrap();
    assert_eq!(release["version"], 4);
    assert_eq!(release["info"]["description"], DESCRIPTION);
    let manifest = release["manifest"].as_str().unwrap();
    assert!(manifest.contains("apiVersion: policy/v1\nkind: PodDisruptionBudget"), "{manifest}");
    assert!(manifest.contains("apiVersion: batch/v1\nkind: CronJob"), "{manifest}");
    assert!(!manifest.contains("v1beta1"), "{manifest}");
}

/// Prints roles with `k8s-upgrade rbac ARGS` and creates them as the admin.
fn bind(c: &Cluster, args: &[&str]) {
    let mut cmd = crate::common::command();
    let o = cmd.env("HOME", c.dir.join("home")).arg("rbac").args(args).stdin(Stdio::null()).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for d in serde_saphyr::from_multiple::<Value>(&stdout(&o)).unwrap() {
        c.create_rbac(&d);
    }
}

#[test]
fn apply_with_helm_steps_asks_for_the_secret_writes_up_front_unless_a_release_command_does_them() {
    let c = Cluster::builtin("demo", 0.02);
    bind(&c, &["--for", "plan", "--group", "ops"]);
    bind(&c, &["--for", "helm-releases", "--group", "ops"]);
    bind(&c, &["--for", "apply", "--upgrader", "sim", "--group", "ops"]);
    let operator = c.dir.join("operator.kubeconfig");
    c.running
        .as_ref()
        .unwrap()
        .write_kubeconfig_for(
            &operator,
            &k8s_upgrade::sim::Credential::ClientCert { user: "operator".into(), groups: vec!["ops".into()] },
        )
        .unwrap();
    let before = reports_secrets(&c);
    let run = |tag: &str, extra: &[&str]| {
        let mut args = vec!["--dry-run"];
        args.extend_from_slice(extra);
        demo_apply_as(&c, &operator, tag, &args).0
    };
    // The plan has a Helm release step (the operator may read releases) and nothing else does it:
    // apply needs to write Secrets in the release's namespace, and says so before it starts.
    let o = run("refused", &[]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    // (list is granted: the operator reads Helm releases to plan them.)
    assert!(
        err.contains("2 permission(s)") && err.contains("create secrets in reports, update secrets in reports"),
        "{err}"
    );
    assert!(err.contains("nothing was started") && err.contains("rbac --for helm-fix"), "{err}");
    // A release command does the Helm steps: no Secret write is asked for.
    let o = run("command", &["--release-command", "true"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(format!("{}{}", stdout(&o), stderr(&o)).contains("dry run: would run --release-command"));
    // With the helm-fix role, apply goes ahead.
    bind(&c, &["--for", "helm-fix", "--group", "ops"]);
    let o = run("granted", &[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(format!("{}{}", stdout(&o), stderr(&o)).contains("dry run: would write: Helm release reports/reports"));
    assert_eq!(reports_secrets(&c), before, "dry runs write nothing");
}
