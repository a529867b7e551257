//! Plans that hold end to end: every removal of the deprecation guide found in manifests with
//! the guide's version and a replacement still served at the target, nothing still served
//! flagged, and blocked hops the operator can clear planned as steps.

use std::process::Command;

use k8s_upgrade::catalog::Catalog;
use k8s_upgrade::catalog::Gvk;
use k8s_upgrade::catalog::served::ServedApis;
use serde_json::Value;

use crate::common::{TODAY, stderr};

/// Every removal the Kubernetes deprecation guide lists, as (apiVersion, kind, removed in).
/// https://kubernetes.io/docs/reference/using-api/deprecation-guide/
const GUIDE: &[(&str, &str, &str)] = &[
    ("extensions/v1beta1", "Deployment", "1.16"),
    ("apps/v1beta1", "Deployment", "1.16"),
    ("apps/v1beta2", "Deployment", "1.16"),
    ("extensions/v1beta1", "DaemonSet", "1.16"),
    ("apps/v1beta2", "DaemonSet", "1.16"),
    ("apps/v1beta1", "StatefulSet", "1.16"),
    ("apps/v1beta2", "StatefulSet", "1.16"),
    ("extensions/v1beta1", "ReplicaSet", "1.16"),
    ("apps/v1beta1", "ReplicaSet", "1.16"),
    ("apps/v1beta2", "ReplicaSet", "1.16"),
    ("extensions/v1beta1", "NetworkPolicy", "1.16"),
    ("extensions/v1beta1", "PodSecurityPolicy", "1.16"),
    ("admissionregistration.k8s.io/v1beta1", "MutatingWebhookConfiguration", "1.22"),
    ("admissionregistration.k8s.io/v1beta1", "ValidatingWebhookConfiguration", "1.22"),
    ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition", "1.22"),
    ("apiregistration.k8s.io/v1beta1", "APIService", "1.22"),
    ("authentication.k8s.io/v1beta1", "TokenReview", "1.22"),
    ("authorization.k8s.io/v1beta1", "LocalSubjectAccessReview", "1.22"),
    ("authorization.k8s.io/v1beta1", "SelfSubjectAccessReview", "1.22"),
    ("authorization.k8s.io/v1beta1", "SubjectAccessReview", "1.22"),
    ("authorization.k8s.io/v1beta1", "SelfSubjectRulesReview", "1.22"),
    ("certificates.k8s.io/v1beta1", "CertificateSigningRequest", "1.22"),
    ("coordination.k8s.io/v1beta1", "Lease", "1.22"),
    ("extensions/v1beta1", "Ingress", "1.22"),
    ("networking.k8s.io/v1beta1", "Ingress", "1.22"),
    ("networking.k8s.io/v1beta1", "IngressClass", "1.22"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRole", "1.22"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRoleBinding", "1.22"),
    ("rbac.authorization.k8s.io/v1beta1", "Role", "1.22"),
    ("rbac.authorization.k8s.io/v1beta1", "RoleBinding", "1.22"),
    ("scheduling.k8s.io/v1beta1", "PriorityClass", "1.22"),
    ("storage.k8s.io/v1beta1", "CSIDriver", "1.22"),
    ("storage.k8s.io/v1beta1", "CSINode", "1.22"),
    ("storage.k8s.io/v1beta1", "StorageClass", "1.22"),
    ("storage.k8s.io/v1beta1", "VolumeAttachment", "1.22"),
    ("batch/v1beta1", "CronJob", "1.25"),
    ("discovery.k8s.io/v1beta1", "EndpointSlice", "1.25"),
    ("events.k8s.io/v1beta1", "Event", "1.25"),
    ("autoscaling/v2beta1", "HorizontalPodAutoscaler", "1.25"),
    ("policy/v1beta1", "PodDisruptionBudget", "1.25"),
    ("policy/v1beta1", "PodSecurityPolicy", "1.25"),
    ("node.k8s.io/v1beta1", "RuntimeClass", "1.25"),
    ("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema", "1.26"),
    ("flowcontrol.apiserver.k8s.io/v1beta1", "PriorityLevelConfiguration", "1.26"),
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler", "1.26"),
    ("storage.k8s.io/v1beta1", "CSIStorageCapacity", "1.27"),
    ("flowcontrol.apiserver.k8s.io/v1beta2", "FlowSchema", "1.29"),
    ("flowcontrol.apiserver.k8s.io/v1beta2", "PriorityLevelConfiguration", "1.29"),
    ("flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema", "1.32"),
    ("flowcontrol.apiserver.k8s.io/v1beta3", "PriorityLevelConfiguration", "1.32"),
];

/// Objects at versions every release from 1.19 to the newest serves: none may be flagged.
const CURRENT: &[(&str, &str)] = &[
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("storage.k8s.io/v1", "StorageClass"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("batch/v1", "Job"),
];

/// `k8s-upgrade plan ARGS -o json` in `dir`, with a fixed today and nothing inherited.
fn plan_json(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_k8s-upgrade"))
        .arg("plan")
        .args(args)
        .args(["-o", "json"])
        .current_dir(dir)
        .env("K8S_UPGRADE_TODAY", TODAY)
        .env_remove("KUBECONFIG")
        .env_remove("K8S_UPGRADE_OUTPUT")
        .output()
        .unwrap();
    (o.status.code(), serde_json::from_slice(&o.stdout).unwrap_or_default(), stderr(&o))
}

fn name_of(api_version: &str, kind: &str) -> String {
    format!("{}-{}", api_version.replace(['/', '.'], "-"), kind).to_lowercase()
}

fn gvk(api_version: &str, kind: &str) -> Gvk {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Gvk { group: group.into(), version: version.into(), kind: kind.into() }
}

#[test]
fn offline_plan_from_1_19_to_the_newest_minor_reports_every_guide_removal_and_nothing_served() {
    let catalog = Catalog::embedded().unwrap();
    let served = ServedApis::new(&catalog.apis);
    let newest = catalog.newest_minor();
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-guide-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut docs = Vec::new();
    for (api_version, kind) in GUIDE.iter().map(|(a, k, _)| (a, k)).chain(CURRENT.iter().map(|(a, k)| (a, k))) {
        docs.push(format!(
            "apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {}\n  namespace: default\n",
            name_of(api_version, kind)
        ));
    }
    std::fs::write(dir.join("examples.yaml"), docs.join("---\n")).unwrap();
    let (code, plan, err) = plan_json(
        &dir,
        &["--distro", "generic", "--manifests", "examples.yaml", "--from", "1.19", "--to", &newest.to_string()],
    );
    assert_eq!(code, Some(3), "{err}");
    let findings = plan["findings"].as_array().unwrap();
    let about = |name: &str| -> Vec<&Value> {
        findings.iter().filter(|f| f["code"] == "API_REMOVED" && f["details"]["name"] == name).collect()
    };
    for (api_version, kind, removed) in GUIDE {
        let name = name_of(api_version, kind);
        let moves = about(&name);
        let first = moves.first().unwrap_or_else(|| panic!("{api_version} {kind}: no API_REMOVED finding"));
        assert_eq!(first["details"]["apiVersion"], *api_version, "{first}");
        assert_eq!(first["details"]["removedIn"], *removed, "{api_version} {kind}: {first}");
        // Where the last move puts it is served at the target (or it has no replacement at all).
        let last = moves.last().unwrap();
        match last["details"]["replacement"].as_str() {
            Some(to) => assert!(served.serves(&gvk(to, kind), newest), "{api_version} {kind} ends on {to}: {last}"),
            None => assert!(last["remediation"].as_str().unwrap().contains("no replacement"), "{last}"),
        }
    }
    for (api_version, kind) in CURRENT {
        let name = name_of(api_version, kind);
        assert!(
            !findings.iter().any(|f| f["details"]["name"] == name.as_str()),
            "{api_version} {kind} is served at every version but was flagged"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flowcontrol_v1beta1_moves_to_v1beta2_then_v1beta3_over_1_25_to_1_29() {
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-flowcontrol-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("apf.yaml"),
        "apiVersion: flowcontrol.apiserver.k8s.io/v1beta1\nkind: FlowSchema\nmetadata:\n  name: batch\n",
    )
    .unwrap();
    let (code, plan, err) =
        plan_json(&dir, &["--distro", "generic", "--manifests", "apf.yaml", "--from", "1.25", "--to", "1.29"]);
    assert_eq!(code, Some(3), "{err}");
    let steps: Vec<(String, String)> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap().to_string(), s["description"].as_str().unwrap().to_string()))
        .collect();
    let position = |pred: &dyn Fn(&(String, String)) -> bool| steps.iter().position(pred).unwrap_or(usize::MAX);
    let to_v1beta2 = position(&|s| {
        s.0 == "migrate-api"
            && s.1.contains("from flowcontrol.apiserver.k8s.io/v1beta1 to flowcontrol.apiserver.k8s.io/v1beta2")
    });
    let to_v1beta3 = position(&|s| {
        s.0 == "migrate-api"
            && s.1.contains("from flowcontrol.apiserver.k8s.io/v1beta2 to flowcontrol.apiserver.k8s.io/v1beta3")
    });
    let hop_126 = position(&|s| s.0 == "control-plane" && s.1.contains("→ 1.26"));
    let hop_129 = position(&|s| s.0 == "control-plane" && s.1.contains("→ 1.29"));
    assert!(to_v1beta2 < hop_126 && hop_126 < to_v1beta3 && to_v1beta3 < hop_129, "{steps:#?}");
    // v1beta3 is deprecated at 1.29: the plan says where to go after the upgrade.
    let second = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["details"]["apiVersion"] == "flowcontrol.apiserver.k8s.io/v1beta2")
        .expect("a finding for the interim version");
    assert_eq!(second["details"]["objectApiVersion"], "flowcontrol.apiserver.k8s.io/v1beta1");
    assert!(second["remediation"].as_str().unwrap().contains("move on to flowcontrol.apiserver.k8s.io/v1"), "{second}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_demo_to_the_newest_release_plans_the_etcd_step_before_the_1_34_hop() {
    let (code, plan, err) = plan_json(&std::env::temp_dir(), &["--simulate", "demo", "--to", "latest"]);
    assert_eq!(code, Some(3), "{err}");
    let steps = plan["steps"].as_array().unwrap();
    let etcd = steps
        .iter()
        .position(|s| s["kind"] == "prerequisite" && s["action"]["name"] == "EtcdMinorUpgradeNeedsRecent35")
        .unwrap_or_else(|| panic!("no etcd prerequisite step: {steps:#?}"));
    let hop = steps
        .iter()
        .position(|s| s["kind"] == "control-plane" && s["action"]["to"].as_str().unwrap().starts_with("1.34."))
        .unwrap();
    assert!(etcd < hop, "the etcd step ({etcd}) must precede the 1.34 hop ({hop})");
    // Nothing between them is another control-plane hop.
    assert!(steps[etcd..hop].iter().all(|s| s["kind"] != "control-plane"));
    let blocker = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "HOP_PREREQUISITE" && f["subject"] == "EtcdMinorUpgradeNeedsRecent35")
        .expect("the etcd blocker finding");
    assert_eq!(blocker["severity"], "blocker");
    assert!(plan["to"].as_str().unwrap().starts_with(&Catalog::embedded().unwrap().newest_minor().to_string()));
}
