//! The roles `k8s-upgrade rbac` prints are enough on a real apiserver with RBAC on: a user bound
//! to them and nothing else plans with no access gap, and applies.

use std::time::Duration;

use serde_json::Value;

use crate::cluster::{Options, RealCluster, available, scratch, text, tool, versions};

#[test]
fn the_shipped_roles_are_enough_for_plan_and_apply_on_a_real_apiserver() {
    let v = versions();
    let needed = [v[1].clone()];
    if !available("the_shipped_roles_are_enough_for_plan_and_apply_on_a_real_apiserver", &needed) {
        return;
    }
    let target = &v[1];
    let cluster =
        RealCluster::up("rbac", &Options { version: target, workers: 2, kubelet: &v[0], ..Options::default() });
    cluster.apply_file(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real/fixtures/small.yaml"));
    cluster.wait_for("the workloads to be ready", Duration::from_secs(120), RealCluster::workloads_settled);
    let work = scratch("rbac-work");
    let operator = cluster.user("upgrade-operator");
    let operator = operator.to_str().unwrap();

    // Bound to nothing: the plan names what it could not read.
    let o = tool(&work).args(["plan", "--kubeconfig", operator, "--to", target, "-o", "json"]).output().unwrap();
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let denied = plan["findings"].as_array().map_or(0, |f| f.iter().filter(|f| f["code"] == "READ_FORBIDDEN").count());
    assert!(denied > 0, "an unbound user planned without an access gap: {}\n{}", text(&o.stdout), text(&o.stderr));

    // Bound to the roles `rbac` prints for plan and apply: no gap, and apply runs.
    for job in ["plan", "apply"] {
        let o = tool(&work).args(["rbac", "--for", job, "--user", "upgrade-operator"]).output().unwrap();
        assert!(o.status.success(), "rbac --for {job}: {}", text(&o.stderr));
        let file = work.join(format!("rbac-{job}.yaml"));
        std::fs::write(&file, &o.stdout).unwrap();
        cluster.apply_file(&file);
    }
    // The authorizer follows RBAC objects through a watch: wait until it sees the bindings.
    cluster.wait_for("the new bindings to take effect", Duration::from_secs(30), |c| {
        std::process::Command::new(c.bin().join("kubectl"))
            .args([
                "--kubeconfig",
                operator,
                "auth",
                "can-i",
                "create",
                "pods",
                "--subresource=eviction",
                "--all-namespaces",
            ])
            .env("HOME", &work)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let gaps = |job: &str| -> Vec<Value> {
        let o = tool(&work).args(["plan", "--kubeconfig", operator, "--to", target, "-o", "json"]).output().unwrap();
        assert!(matches!(o.status.code(), Some(0 | 3)), "plan ({job}): {}\n{}", text(&o.stdout), text(&o.stderr));
        let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
        plan["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "READ_FORBIDDEN").cloned().collect()
    };
    // The plan role reads everything but Helm's release Secrets, which have their own role.
    let left = gaps("plan role");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["severity"], "warning", "{left:?}");
    assert!(left[0]["remediation"].as_str().unwrap().contains("rbac --for helm-releases"), "{left:?}");
    let o = tool(&work).args(["rbac", "--for", "helm-releases", "--user", "upgrade-operator"]).output().unwrap();
    assert!(o.status.success(), "rbac --for helm-releases: {}", text(&o.stderr));
    let file = work.join("rbac-helm.yaml");
    std::fs::write(&file, &o.stdout).unwrap();
    cluster.apply_file(&file);
    cluster.wait_for("the Helm role to take effect", Duration::from_secs(30), |c| {
        std::process::Command::new(c.bin().join("kubectl"))
            .args(["--kubeconfig", operator, "auth", "can-i", "list", "secrets", "--all-namespaces"])
            .env("HOME", &work)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let left = gaps("plan and helm-releases roles");
    assert!(left.is_empty(), "the plan and helm-releases roles left gaps: {left:?}");
    let o = tool(&work).args(["plan", "--kubeconfig", operator, "--to", target, "-o", "json"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "plan as the bound user: {}\n{}", text(&o.stdout), text(&o.stderr));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        plan["inventoryWarnings"].as_array().is_none_or(|w| w.iter().all(|w| !w.to_string().contains("forbidden"))),
        "{}",
        plan["inventoryWarnings"]
    );

    let o = tool(&work)
        .args(["apply", "--kubeconfig", operator, "--to", target, "--yes", "--upgrader", "command"])
        .args(["--upgrade-command", &cluster.upgrade_command()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "apply as the bound user:\n{}\n{}", text(&o.stdout), text(&o.stderr));
    for (node, kubelet) in cluster.kubelets() {
        assert_eq!(kubelet, format!("v{target}"), "{node}");
    }
    let _ = std::fs::remove_dir_all(&work);
}
