//! The kubeadm upgrader's pods as a real apiserver judges them: the node job and the probe pass
//! validation and admission (server-side dry run) where Pod Security allows privileged pods, a
//! baseline namespace refuses them with the message the simulator gives, and the apply role that
//! `rbac --for apply --upgrader kubeadm` prints grants pod create/get/delete and pods/log in the
//! node-job namespace and nowhere else.

use std::time::Duration;

use k8s_upgrade::exec::node_job::{self, NodeJob, Script};
use k8s_upgrade::exec::upgrader::{Action, Role};
use serde_json::Value;

use crate::cluster::{Options, RealCluster, available, scratch, text, tool, versions};

fn job(namespace: &str) -> NodeJob {
    NodeJob {
        image: node_job::DEFAULT_IMAGE.into(),
        namespace: namespace.into(),
        script: Script::Builtin,
        timeout: Duration::from_secs(1800),
        start_timeout: Duration::from_secs(300),
        poll: Duration::from_secs(2),
    }
}

#[test]
fn node_job_pods_pass_a_real_apiserver_and_a_baseline_namespace_refuses_them_as_the_simulator_does() {
    let v = versions();
    let needed = [v[1].clone()];
    if !available(
        "node_job_pods_pass_a_real_apiserver_and_a_baseline_namespace_refuses_them_as_the_simulator_does",
        &needed,
    ) {
        return;
    }
    let cluster = RealCluster::up("nodejobs", &Options { version: &v[1], workers: 1, ..Options::default() });
    let work = scratch("nodejobs-work");
    let node = cluster.kubectl_ok(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let action = Action {
        subject: node.clone(),
        role: Role::ControlPlane { first: true },
        target: v[1].clone(),
        from: None,
        workload: None,
    };
    let dry_run = |pod: &Value, name: &str| {
        let file = work.join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec(pod).unwrap()).unwrap();
        cluster.kubectl(&["create", "--dry-run=server", "-o", "json", "-f", file.to_str().unwrap()])
    };

    for (name, pod) in [
        ("job", node_job::job_pod(&job("kube-system"), &action)),
        ("probe", node_job::probe_pod(&job("kube-system"), &node)),
    ] {
        let o = dry_run(&pod, name);
        assert!(o.status.success(), "the real apiserver refuses the {name} pod: {}", text(&o.stderr));
        let admitted: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(admitted["spec"]["nodeName"], node.as_str());
        assert_eq!(admitted["spec"]["hostPID"], true);
        assert_eq!(admitted["spec"]["containers"][0]["securityContext"]["privileged"], true);
        assert_eq!(admitted["spec"]["containers"][0]["command"], pod["spec"]["containers"][0]["command"]);
    }

    cluster.kubectl_ok(&["create", "namespace", "upgrades"]);
    cluster.kubectl_ok(&["label", "namespace", "upgrades", "pod-security.kubernetes.io/enforce=baseline"]);
    let o = dry_run(&node_job::job_pod(&job("upgrades"), &action), "baseline");
    assert!(!o.status.success(), "a baseline namespace admitted a privileged node job");
    let err = text(&o.stderr);
    // The same words the simulator's Pod Security admission uses (tests/it/node_jobs.rs).
    assert!(
        err.contains("is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true, hostPID=true, hostIPC=true), privileged (container \"upgrade\" must not set securityContext.privileged=true)"),
        "{err}"
    );

    // The apply role for this upgrader: pods and their logs in the node-job namespace only.
    let operator = cluster.user("node-job-operator");
    let operator = operator.to_str().unwrap();
    for job in ["plan", "apply"] {
        let o = tool(&work)
            .args(["rbac", "--for", job, "--upgrader", "kubeadm", "--user", "node-job-operator"])
            .output()
            .unwrap();
        assert!(o.status.success(), "rbac --for {job}: {}", text(&o.stderr));
        let file = work.join(format!("rbac-{job}.yaml"));
        std::fs::write(&file, &o.stdout).unwrap();
        cluster.apply_file(&file);
    }
    let can = |args: &[&str]| {
        std::process::Command::new(cluster.bin().join("kubectl"))
            .args(["--kubeconfig", operator, "auth", "can-i"])
            .args(args)
            .env("HOME", &work)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    cluster.wait_for("the new bindings to take effect", Duration::from_secs(30), |_| {
        can(&["create", "pods", "-n", "kube-system"])
    });
    for allowed in [
        &["get", "pods", "-n", "kube-system"][..],
        &["delete", "pods", "-n", "kube-system"],
        &["get", "pods", "--subresource=log", "-n", "kube-system"],
    ] {
        assert!(can(allowed), "the apply role does not grant {allowed:?}");
    }
    for refused in [
        &["create", "pods", "-n", "default"][..],
        &["delete", "pods", "-n", "default"],
        &["get", "pods", "--subresource=log", "-n", "default"],
        &["create", "pods", "--all-namespaces"],
    ] {
        assert!(!can(refused), "the apply role grants more than node jobs need: {refused:?}");
    }
}
