//! `k8s-upgrade job`: what it prints is accepted by the apiserver (server dry run through real
//! kubectl, with the simulator's Job validation and Pod Security admission), and the
//! ServiceAccount it binds may do what the plan and apply roles say, and no more.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use k8s_upgrade::catalog::Catalog;
use k8s_upgrade::kubeapi::permissions::{self, Check};
use serde_json::{Value, json};

use crate::common::{self, stderr, stdout};
use crate::sim::{Cluster, kubectl_available, small};

fn job(args: &[&str]) -> String {
    let mut argv = vec!["job", "--to", "1.33"];
    argv.extend_from_slice(args);
    let o = common::run(&argv);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

/// `kubectl ARGS -f -` with `input` on stdin. The simulator serves no OpenAPI documents, so
/// kubectl's schema validation is off (`--validate=false`); the apiserver's own checks (the Job
/// validation, Pod Security admission, RBAC) run as on a real cluster.
fn kubectl_stdin(c: &Cluster, args: &[&str], input: &str) -> Output {
    let mut child = Command::new("kubectl")
        .args(args)
        .args(["--validate=false", "-f", "-"])
        .env("HOME", c.dir.join("home"))
        .env("KUBECONFIG", &c.kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(text).unwrap()
}

#[test]
fn bad_values_exit_2_naming_them() {
    for (args, needle) in [
        (&["job", "--to", "1.x"][..], "'1.x'"),
        (&["job", "--to", "1.33", "--namespace", "Kube_System"][..], "--namespace 'Kube_System'"),
        (&["job", "--to", "1.33", "--name", "upgrade.v1"][..], "--name 'upgrade.v1'"),
        (&["job", "--to", "1.33", "--upgrader", "gke"][..], "--upgrader gke"),
        (&["job", "--to", "1.33", "--image", "a b"][..], "--image 'a b'"),
        (&["job", "--to", "1.33", "--max-unavailable", "lots"][..], "lots"),
    ] {
        let o = common::run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
        assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    }
}

/// `kubectl auth can-i` arguments for one check (cluster-wide checks with `-A`).
fn can_i_args(check: &Check) -> Vec<String> {
    match check {
        Check::NonResource { verb, path } => vec![verb.clone(), path.clone()],
        Check::Resource { verb, group, resource, subresource, namespace, name } => {
            let mut what = if group.is_empty() { resource.clone() } else { format!("{resource}.{group}") };
            if !name.is_empty() {
                what = format!("{what}/{name}");
            }
            let mut out = vec![verb.clone(), what];
            if !subresource.is_empty() {
                out.push(format!("--subresource={subresource}"));
            }
            if namespace.is_empty() {
                out.push("-A".into());
            } else {
                out.extend(["-n".to_string(), namespace.clone()]);
            }
            out
        }
    }
}

fn can_i(c: &Cluster, who: &str, args: &[String]) -> bool {
    let mut argv = vec!["auth".to_string(), "can-i".to_string()];
    argv.extend(args.iter().cloned());
    argv.push(format!("--as={who}"));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let o = c.kubectl(&argv);
    match o.status.code() {
        Some(0) => true,
        Some(1) if stdout(&o).trim() == "no" => false,
        _ => panic!("kubectl {argv:?}: {}\n{}", stderr(&o), stdout(&o)),
    }
}

#[test]
fn the_job_passes_a_server_dry_run_and_its_service_account_holds_the_apply_roles() {
    if !kubectl_available("the_job_passes_a_server_dry_run_and_its_service_account_holds_the_apply_roles") {
        return;
    }
    let c = Cluster::start(small("1.31.2"), 0.02);
    let text = job(&["--upgrader", "kubeadm", "--max-unavailable", "25%", "--window-end", "2026-11-27T04:00:00Z"]);
    let dry = kubectl_stdin(&c, &["apply", "--dry-run=server"], &text);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains("job.batch/k8s-upgrade created (server dry run)"), "{}", stdout(&dry));

    // The simulator validates Jobs as the apiserver does: the same Job with a restart policy
    // its failure policy does not allow is refused, by field.
    let mut broken = documents(&text).pop().unwrap();
    broken["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    let refused = kubectl_stdin(&c, &["apply", "--dry-run=server"], &broken.to_string());
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("only \"Never\" is supported when podFailurePolicy is specified"),
        "{}",
        stderr(&refused)
    );

    // Applied for real, the ServiceAccount may do every check of the plan and apply roles that
    // apply's preflight asks (a sample of the plan role's cross product), and nothing else.
    let applied = kubectl_stdin(&c, &["apply"], &text);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let sa = "system:serviceaccount:kube-system:k8s-upgrade";
    let catalog = Catalog::embedded().unwrap();
    let mut checks: Vec<Check> =
        permissions::apply_rules(false, Some("kube-system")).iter().flat_map(|r| r.checks()).collect();
    checks.extend(permissions::run_reads());
    checks.extend(permissions::plan_rules(&catalog).iter().flat_map(|r| r.checks()).filter(|c| match c {
        Check::NonResource { .. } => true,
        Check::Resource { resource, group, .. } => {
            matches!(
                (group.as_str(), resource.as_str()),
                ("", _) | ("apps", "daemonsets") | ("policy", "poddisruptionbudgets") | ("batch", "cronjobs")
            )
        }
    }));
    assert!(checks.len() > 20, "{checks:?}");
    for check in &checks {
        assert!(can_i(&c, sa, &can_i_args(check)), "the ServiceAccount cannot {check}");
    }
    for denied in [
        vec!["list", "secrets", "-A"],
        vec!["delete", "nodes", "-A"],
        vec!["create", "pods", "-n", "default"],
        vec!["update", "leases.coordination.k8s.io/someone-elses-lease", "-n", "kube-system"],
        vec!["create", "clusterrolebindings", "-A"],
    ] {
        let args: Vec<String> = denied.iter().map(|s| s.to_string()).collect();
        assert!(!can_i(&c, sa, &args), "the ServiceAccount may {denied:?}");
    }
    // Its bindings are its own: an operator's `rbac --for plan` binding is left untouched.
    let bindings = c.kubectl_ok(&["get", "clusterrolebindings", "-o", "name"]);
    assert!(bindings.contains("k8s-upgrade-plan-kube-system-k8s-upgrade"), "{bindings}");
}

#[test]
fn the_pod_passes_pod_security_restricted() {
    if !kubectl_available("the_pod_passes_pod_security_restricted") {
        return;
    }
    let c = Cluster::start(small("1.31.2"), 0.02);
    c.kubectl_ok(&["create", "namespace", "upgrades"]);
    c.kubectl_ok(&["label", "namespace", "upgrades", "pod-security.kubernetes.io/enforce=restricted"]);
    let text = job(&["--namespace", "upgrades", "--name", "upgrade-133"]);
    let applied = kubectl_stdin(&c, &["apply"], &text);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let job = documents(&text).pop().unwrap();
    assert_eq!(job["metadata"]["namespace"], "upgrades");
    // The pod the Job controller would create, created (dry run) where `restricted` is enforced.
    let pod = |spec: &Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "upgrade-133-probe", "namespace": "upgrades",
            "labels": job["spec"]["template"]["metadata"]["labels"]}, "spec": spec})
    };
    let spec = job["spec"]["template"]["spec"].clone();
    let ok = kubectl_stdin(&c, &["create", "--dry-run=server"], &pod(&spec).to_string());
    assert!(ok.status.success(), "{}", stderr(&ok));
    // The admission is real: the same pod allowed to escalate privileges is refused.
    let mut weaker = spec.clone();
    weaker["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    let refused = kubectl_stdin(&c, &["create", "--dry-run=server"], &pod(&weaker).to_string());
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("violates PodSecurity \"restricted:latest\""), "{}", stderr(&refused));
}

/// The value a pod's `valueFrom.fieldRef` would get, for the fields the Job uses.
fn field_ref(path: &str, pod: &str) -> String {
    match path {
        "metadata.name" => pod.to_string(),
        "metadata.namespace" => "kube-system".to_string(),
        other => panic!("the Job reads {other}, which this test does not provide"),
    }
}

#[test]
fn the_job_s_command_run_as_its_pod_would_run_it_upgrades_the_cluster_and_a_retry_changes_nothing() {
    let test = "the_job_s_command_run_as_its_pod_would_run_it_upgrades_the_cluster";
    if !kubectl_available(test) {
        return;
    }
    let c = Cluster::start(small("1.24.17"), 0.02);
    let text = {
        let o = common::run(&["job", "--to", "1.25", "--upgrader", "sim"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    };
    let applied = kubectl_stdin(&c, &["apply"], &text);
    assert!(applied.status.success(), "{}", stderr(&applied));

    // What the kubelet would start: the Job's pod template, read back from the apiserver.
    let stored = c.get_json("/apis/batch/v1/namespaces/kube-system/jobs/k8s-upgrade");
    let pod = &stored["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert!(container["command"].is_null(), "the image's entrypoint is the binary: {container}");
    let args: Vec<String> =
        container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    assert_eq!(args[..7], ["apply", "--to", "1.25", "--yes", "--journal", "cluster", "--resume-or-start"]);
    let sa = pod["serviceAccountName"].as_str().unwrap();

    // The projected ServiceAccount token, CA and namespace, as the kubelet mounts them.
    let token = c.kubectl_ok(&["create", "token", sa, "-n", "kube-system", "--duration", "1h"]);
    let sa_dir = c.dir.join("job-serviceaccount");
    std::fs::create_dir_all(&sa_dir).unwrap();
    std::fs::write(sa_dir.join("ca.crt"), c.running.as_ref().unwrap().ca_pem().unwrap()).unwrap();
    std::fs::write(sa_dir.join("namespace"), "kube-system").unwrap();
    std::fs::write(sa_dir.join("token"), token.trim()).unwrap();

    let run_pod = |pod_name: &str| {
        // Each emptyDir volume is a fresh directory, mounted where the container says.
        let mounts: Vec<(String, std::path::PathBuf)> = container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let dir = c.dir.join(pod_name).join(m["name"].as_str().unwrap());
                std::fs::create_dir_all(&dir).unwrap();
                (m["mountPath"].as_str().unwrap().to_string(), dir)
            })
            .collect();
        let mut cmd = common::command();
        cmd.env_remove("KUBECONFIG")
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", c.addr().port().to_string())
            .env("K8S_UPGRADE_SERVICEACCOUNT_DIR", &sa_dir)
            .env("XDG_STATE_HOME", c.dir.join(pod_name).join("unused-state"));
        for e in container["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap();
            let value = match (e["value"].as_str(), e["valueFrom"]["fieldRef"]["fieldPath"].as_str()) {
                (Some(v), _) => mounts
                    .iter()
                    .find(|(path, _)| v.starts_with(path.as_str()))
                    .map_or(v.to_string(), |(path, dir)| v.replacen(path.as_str(), &dir.display().to_string(), 1)),
                (None, Some(path)) => field_ref(path, pod_name),
                _ => panic!("env {e} is neither a value nor a fieldRef"),
            };
            cmd.env(name, value);
        }
        cmd.args(&args).stdin(Stdio::null()).output().unwrap()
    };

    // As the pod the Job controller made (the scheduler prefers a control-plane node for it, so
    // the drain of that node must know the pod it runs in and leave it be).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let own = loop {
        let pods = c.get_json("/api/v1/namespaces/kube-system/pods");
        let placed = pods["items"].as_array().unwrap().iter().find(|p| {
            p["metadata"]["ownerReferences"][0]["kind"] == "Job"
                && p["metadata"]["ownerReferences"][0]["name"] == "k8s-upgrade"
                && p["spec"]["nodeName"].is_string()
        });
        if let Some(pod) = placed {
            break pod["metadata"]["name"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "the Job controller made no pod that was placed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let o = run_pod(&own);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("journal ConfigMap kube-system/k8s-upgrade-journal"), "{}", stderr(&o));
    c.assert_finished_clean("1.25");
    let stats = c.stats();
    // The run acted as the Job's ServiceAccount, not as the test's admin.
    let as_sa = stats["authorizations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["user"] == format!("system:serviceaccount:kube-system:{sa}") && a["verb"] == "create");
    assert!(as_sa, "no write was authorized for the ServiceAccount");
    let cm = c.get_json("/api/v1/namespaces/kube-system/configmaps/k8s-upgrade-journal");
    assert_eq!(cm["metadata"]["labels"]["k8s-upgrade.dev/finished"], "true", "{cm}");
    assert!(!stdout(&o).contains(token.trim()) && !stderr(&o).contains(token.trim()), "the token leaked");

    // The Job controller retrying the pod (its node went away, say) runs the same command line:
    // the finished run is not done again.
    let evictions = c.stats()["evictions"].clone();
    let o = run_pod("k8s-upgrade-fghij");
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(c.stats()["evictions"], evictions, "a retry evicted pods again");
}
