//! The real `helm` (built from the helm.sh/helm Go module by `e2e/helm.sh`) against a real control
//! plane: a release whose stored manifest uses an API the cluster no longer serves makes
//! `helm upgrade` fail; after `k8s-upgrade helm-fix` the same upgrade succeeds, and Helm's own
//! history shows the revision the rewrite wrote.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use serde_json::{Value, json};

use crate::cluster::{Options, RealCluster, available, scratch, text, tool, versions};

/// The helm binary `e2e/helm.sh build` made, or why there is none.
fn helm_binary() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/helm.sh");
    let o = Command::new(script).arg("status").output().map_err(|e| format!("cannot run e2e/helm.sh: {e}"))?;
    if o.status.success() { Ok(PathBuf::from(text(&o.stdout).trim())) } else { Err(text(&o.stderr).trim().to_string()) }
}

fn helm(bin: &Path, home: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .output()
        .expect("run helm")
}

/// Revision 1 of release `web` as Helm stores it, its manifest holding a budget at
/// policy/v1beta1 (not served since 1.25).
fn release_secret() -> Value {
    let manifest = "---\n# Source: web/templates/pdb.yaml\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app: web\n";
    let release = json!({
        "name": "web",
        "info": {"first_deployed": "2021-06-01T10:00:00Z", "last_deployed": "2021-06-01T10:00:00Z", "deleted": "",
                 "description": "Install complete", "status": "deployed"},
        "chart": {"metadata": {"name": "web", "version": "1.0.0", "apiVersion": "v2"}, "templates": [], "values": {}},
        "config": {"team": "shop"},
        "manifest": manifest,
        "version": 1,
        "namespace": "shop",
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(release.to_string().as_bytes()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": "sh.helm.release.v1.web.v1", "namespace": "shop",
                     "labels": {"owner": "helm", "name": "web", "status": "deployed", "version": "1"}},
        "data": {"release": b64.encode(b64.encode(gz.finish().unwrap()))},
    })
}

/// The chart's next version, written for the APIs served now.
fn chart(dir: &Path) -> PathBuf {
    let chart = dir.join("web");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: web\nversion: 1.0.1\n").unwrap();
    std::fs::write(
        chart.join("templates/pdb.yaml"),
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels:\n      app: web\n",
    )
    .unwrap();
    chart
}

#[test]
fn helm_upgrade_fails_on_a_removed_api_and_works_after_helm_fix() {
    let test = "helm_upgrade_fails_on_a_removed_api_and_works_after_helm_fix";
    let v = versions();
    if !available(test, &v[..1]) {
        return;
    }
    let helm_bin = match helm_binary() {
        Ok(b) => b,
        Err(reason) => {
            if std::env::var("K8S_UPGRADE_REQUIRE_REAL").as_deref() == Ok("1") {
                panic!("{test}: helm is required (K8S_UPGRADE_REQUIRE_REAL=1): {reason}");
            }
            eprintln!("skipping {test}: {reason} (set K8S_UPGRADE_REQUIRE_REAL=1 to fail instead)");
            return;
        }
    };
    let cluster = RealCluster::up("helm", &Options { version: &v[0], workers: 1, ..Options::default() });
    let work = scratch("helm-work");
    cluster.kubectl_ok(&["create", "namespace", "shop"]);
    let secret_file = work.join("release.json");
    std::fs::write(&secret_file, release_secret().to_string()).unwrap();
    cluster.kubectl_ok(&["create", "-f", secret_file.to_str().unwrap()]);
    let chart = chart(&work);
    let chart = chart.to_str().unwrap();

    // Helm cannot upgrade a release whose stored manifest names an API the cluster lacks.
    let o = helm(&helm_bin, &work, &cluster.kubeconfig, &["upgrade", "web", chart, "-n", "shop"]);
    assert!(!o.status.success(), "helm upgrade passed before the fix:\n{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains("policy/v1beta1") && err.contains("PodDisruptionBudget"), "{err}");

    // The rewrite, for the version the cluster runs (the default).
    let kubeconfig = cluster.kubeconfig.to_str().unwrap();
    let o = tool(&work).args(["helm-fix", "web", "-n", "shop", "--yes", "--kubeconfig", kubeconfig]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "helm-fix: {}\n{}", text(&o.stderr), text(&o.stdout));
    assert!(text(&o.stdout).contains("-apiVersion: policy/v1beta1\n+apiVersion: policy/v1\n"), "{}", text(&o.stdout));

    // Helm reads what it wrote: revision 2, deployed, with the rewrite's description.
    let o = helm(&helm_bin, &work, &cluster.kubeconfig, &["history", "web", "-n", "shop", "-o", "json"]);
    assert!(o.status.success(), "helm history: {}", text(&o.stderr));
    let history: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let statuses: Vec<(u64, &str, &str)> = history
        .iter()
        .map(|h| (h["revision"].as_u64().unwrap(), h["status"].as_str().unwrap(), h["description"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            (1, "superseded", "Install complete"),
            (2, "deployed", "Kubernetes deprecated API upgrade - DO NOT rollback from this version")
        ]
    );
    let o = helm(&helm_bin, &work, &cluster.kubeconfig, &["get", "manifest", "web", "-n", "shop"]);
    assert!(text(&o.stdout).contains("apiVersion: policy/v1\nkind: PodDisruptionBudget"), "{}", text(&o.stdout));
    let o = helm(&helm_bin, &work, &cluster.kubeconfig, &["get", "values", "web", "-n", "shop", "-o", "json"]);
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap(), json!({"team": "shop"}), "values kept");

    // Now the upgrade goes through, and the budget exists at policy/v1.
    let o = helm(&helm_bin, &work, &cluster.kubeconfig, &["upgrade", "web", chart, "-n", "shop"]);
    assert!(o.status.success(), "helm upgrade after the fix: {}\n{}", text(&o.stderr), text(&o.stdout));
    cluster.kubectl_ok(&["get", "poddisruptionbudgets.v1.policy", "web", "-n", "shop"]);
    let o = helm(&helm_bin, &work, &cluster.kubeconfig, &["history", "web", "-n", "shop", "-o", "json"]);
    let history: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(history.last().unwrap()["revision"], 3, "{history:?}");
    assert_eq!(history.last().unwrap()["status"], "deployed", "{history:?}");
    let _ = std::fs::remove_dir_all(&work);
}
