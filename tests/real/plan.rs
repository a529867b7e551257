//! `plan` on a real 1.35 cluster holding objects at versions that 1.37 stops serving: every kind
//! of evidence a real cluster produces must appear.

use std::io::Write;

use base64::Engine;
use serde_json::{Value, json};

use crate::cluster::{Options, RealCluster, available, scratch, text, tool, versions};

/// A Helm v3 release Secret (base64 of gzip of the release JSON) whose manifest holds `manifest`.
fn helm_release_secret(name: &str, namespace: &str, manifest: &str) -> Value {
    let release = json!({
        "name": name, "namespace": namespace, "version": 1,
        "info": {"status": "deployed", "description": "Install complete"},
        "chart": {"metadata": {"name": name, "version": "1.0.0", "apiVersion": "v2"}},
        "manifest": manifest,
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(release.to_string().as_bytes()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let helm_value = b64.encode(gz.finish().unwrap());
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": format!("sh.helm.release.v1.{name}.v1"), "namespace": namespace,
                     "labels": {"owner": "helm", "name": name, "status": "deployed", "version": "1"}},
        "data": {"release": b64.encode(helm_value)},
    })
}

#[test]
fn plan_on_a_real_cluster_finds_every_kind_of_evidence() {
    let v = versions();
    if !available("plan_on_a_real_cluster_finds_every_kind_of_evidence", &v[..1]) {
        return;
    }
    let cluster = RealCluster::up(
        "plan",
        &Options {
            version: &v[0],
            workers: 2,
            // Pre-release versions that 1.37 stops serving, switched on as a cluster that
            // enabled them would have.
            runtime_config: "networking.k8s.io/v1beta1=true,storage.k8s.io/v1beta1=true,certificates.k8s.io/v1alpha1=true",
            feature_gates: "ClusterTrustBundle=true",
            ..Options::default()
        },
    );
    let work = scratch("plan-work");
    let ca = std::fs::read_to_string(cluster.dir.join("pki/ca.crt")).unwrap();
    // kubectl apply: a last-applied annotation at the old version, and a request in the metric.
    let service_cidr = work.join("service-cidr.yaml");
    std::fs::write(
        &service_cidr,
        "apiVersion: networking.k8s.io/v1beta1\nkind: ServiceCIDR\nmetadata: {name: extra-services}\nspec: {cidrs: [10.97.0.0/24]}\n",
    )
    .unwrap();
    cluster.apply_file(&service_cidr);
    // Stored at a version whose replacement is not served: only the old version reads it back.
    let bundle = json!({"apiVersion": "certificates.k8s.io/v1alpha1", "kind": "ClusterTrustBundle",
        "metadata": {"name": "corp-roots"}, "spec": {"trustBundle": ca}});
    let bundle_file = work.join("bundle.json");
    std::fs::write(&bundle_file, bundle.to_string()).unwrap();
    cluster.kubectl_ok(&["create", "-f", bundle_file.to_str().unwrap()]);
    // A Helm release whose stored manifest uses a removed version.
    cluster.kubectl_ok(&["create", "namespace", "storage"]);
    let secret = helm_release_secret(
        "gold-class",
        "storage",
        "---\n# Source: gold-class/templates/class.yaml\napiVersion: storage.k8s.io/v1beta1\nkind: VolumeAttributesClass\nmetadata:\n  name: gold\ndriverName: csi.example.com\n",
    );
    let secret_file = work.join("release.json");
    std::fs::write(&secret_file, secret.to_string()).unwrap();
    cluster.kubectl_ok(&["create", "-f", secret_file.to_str().unwrap()]);

    let o = tool(&work)
        .args(["plan", "--kubeconfig", cluster.kubeconfig.to_str().unwrap(), "--to", &v[2], "-o", "json"])
        .output()
        .unwrap();
    // Removed APIs still in use block the hop: exit 3.
    assert_eq!(o.status.code(), Some(3), "stderr: {}\nstdout: {}", text(&o.stderr), text(&o.stdout));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let findings = plan["findings"].as_array().expect("findings");
    let evidence: Vec<(String, String)> = findings
        .iter()
        .filter(|f| f["code"] == "API_REMOVED")
        .map(|f| (f["evidence"]["source"].as_str().unwrap_or("").to_string(), f["evidence"].to_string()))
        .collect();
    for (source, what) in [
        ("served-objects", "ClusterTrustBundle corp-roots"),
        ("request-metric", "servicecidrs"),
        ("last-applied", "ServiceCIDR extra-services"),
        ("helm-release", "gold-class"),
    ] {
        assert!(
            evidence.iter().any(|(s, e)| s == source && e.contains(what)),
            "no {source} evidence naming {what} among the removed-API findings: {evidence:?}"
        );
    }
    // Every finding is placed before the hop to the release that stops serving it.
    for f in findings.iter().filter(|f| f["code"] == "API_REMOVED") {
        assert_eq!(f["details"]["removedIn"], "1.37", "{f}");
        assert!(f["hop"]["to"].as_str().unwrap().starts_with("1.37."), "{f}");
    }
    // The distro is recognised from the control-plane static pods, the server's version is read.
    assert_eq!(plan["distro"], "kubeadm", "{}", plan["distro"]);
    let _ = std::fs::remove_dir_all(&work);
}
