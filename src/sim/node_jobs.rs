//! The simulator's hosts for the `kubeadm` upgrader: a running pod labelled
//! `k8s-upgrade.dev/node-job` does on its node what the node script would do on a real host,
//! read from the pod's spec (the target version, the role and whether it runs `kubeadm upgrade
//! apply` from its environment), with the log lines a host would print. The upgrade itself is
//! the simulated kubelet's (the same restart the `sim` upgrader starts), so a node job's node
//! goes NotReady, moves its static pods and comes back at the target; the job then exits 0.
//!
//! As on a real host: `kubeadm upgrade apply` refuses to skip a minor and runs only on a
//! control-plane node; a job whose node is named in the `nodeJobsFail` fault exits 100 as apt
//! does when the pinned version is missing; one in `nodeJobsHang` never ends; a pod past its
//! `activeDeadlineSeconds` is failed with `DeadlineExceeded`. This module also keeps every
//! pod's log (bounded) for `GET …/pods/NAME/log`.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::time::Instant;

use serde_json::{Value, json};

use super::Sim;
use super::clock::now_rfc3339;
use super::pdb::pods_key;
use super::store::Stored;
use crate::exec::node_job::{CONTAINER, LABEL};
use crate::version::Version;

/// Lines kept per pod; older lines are dropped first, as a rotated container log would.
const MAX_LINES: usize = 5000;
const MAX_LINE: usize = 4096;
/// Simulated seconds between the script's stages.
const STAGE_SECONDS: f64 = 3.0;

/// Every pod's log, by pod uid: (RFC 3339 time, line).
#[derive(Default)]
pub struct PodLogs {
    lines: Mutex<HashMap<String, Vec<(String, String)>>>,
}

impl PodLogs {
    pub fn push(&self, uid: &str, line: &str) {
        let mut all = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let log = all.entry(uid.to_string()).or_default();
        log.push((now_rfc3339(), line.chars().take(MAX_LINE).collect()));
        if log.len() > MAX_LINES {
            let extra = log.len() - MAX_LINES;
            log.drain(..extra);
        }
    }

    /// The lines from `from` on.
    pub fn since(&self, uid: &str, from: usize) -> Vec<(String, String)> {
        let all = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        all.get(uid).map(|l| l.iter().skip(from).cloned().collect()).unwrap_or_default()
    }

    /// Forgets the logs of pods that are gone.
    pub fn remove(&self, uid: &str) {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }

    pub fn retain(&self, alive: &std::collections::HashSet<String>) {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| alive.contains(k));
    }
}

/// Where a job's script is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Packages and repository done at `next`; then kubeadm runs.
    Packages,
    /// kubeadm ran and the kubelet was told to restart; waiting for it at the target.
    Kubelet,
    /// Never ends (fault).
    Hung,
}

#[derive(Debug, Clone)]
pub struct Run {
    stage: Stage,
    next: Instant,
    started: Instant,
    /// The pod's namespace and name.
    key: (String, String),
}

/// Job runs by pod uid.
#[derive(Debug, Default, Clone)]
pub struct Runs {
    runs: HashMap<String, Run>,
}

impl Runs {
    pub fn next_due(&self) -> Option<Instant> {
        self.runs.values().filter(|r| r.stage != Stage::Hung).map(|r| r.next).min()
    }
}

fn env(pod: &Value, name: &str) -> Option<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(CONTAINER))?
        .get("env")
        .and_then(Value::as_array)?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|e| e.get("value").and_then(Value::as_str))
        .map(str::to_string)
}

fn kubelet_of(node: &Value) -> Option<Version> {
    node.pointer("/status/nodeInfo/kubeletVersion").and_then(Value::as_str).and_then(|v| v.parse().ok())
}

/// Runs the node jobs one controller pass further.
/// Looks at the pods that changed and those with a run (every pod on a full pass).
pub fn reconcile(sim: &Sim, runs: &mut Runs, delta: &super::delta::Delta) {
    let now = Instant::now();
    let pods = if delta.full {
        sim.store.all(pods_key())
    } else {
        for gone in &delta.deleted {
            runs.runs.remove(&*gone.meta.uid);
            sim.pod_logs.remove(&gone.meta.uid);
        }
        let keys: std::collections::BTreeSet<&(String, String)> =
            delta.changed(pods_key()).chain(runs.runs.values().map(|r| &r.key)).collect();
        keys.into_iter().filter_map(|(ns, n)| sim.store.get(pods_key(), ns, n)).collect()
    };
    let mut alive = std::collections::HashSet::new();
    for pod in pods {
        alive.insert(pod.meta.uid.to_string());
        let Some(kind) = pod.meta.label(LABEL).map(str::to_string) else { continue };
        if &*pod.meta.phase != "Running" || pod.meta.terminating {
            continue;
        }
        let uid = pod.meta.uid.to_string();
        let run = runs.runs.entry(uid.clone()).or_insert_with(|| Run {
            stage: Stage::Packages,
            next: now,
            started: now,
            key: (pod.namespace().to_string(), pod.name().to_string()),
        });
        let deadline = pod.value().pointer("/spec/activeDeadlineSeconds").and_then(Value::as_f64);
        if let Some(d) = deadline
            && now >= run.started + sim.scaled(d)
        {
            runs.runs.remove(&uid);
            finish(
                sim,
                &pod,
                None,
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            );
            continue;
        }
        if run.stage == Stage::Hung || run.next > now {
            continue;
        }
        let step = if kind == "probe" { probe(sim, &pod) } else { upgrade(sim, &pod, run.stage) };
        match step {
            Next::Stage(stage) => {
                run.stage = stage;
                run.next = now + sim.scaled(STAGE_SECONDS);
            }
            Next::Wait => run.next = now + sim.scaled(0.5),
            Next::Exit(code) => {
                runs.runs.remove(&uid);
                finish(sim, &pod, Some(code), if code == 0 { "Completed" } else { "Error" }, "");
            }
        }
    }
    if delta.full {
        runs.runs.retain(|k, _| alive.contains(k));
        sim.pod_logs.retain(&alive);
    }
}

enum Next {
    Stage(Stage),
    Wait,
    Exit(i32),
}

fn probe(sim: &Sim, pod: &Stored) -> Next {
    let node = sim.store.get(&super::controllers::nodes_key(), "", &pod.meta.node_name);
    let kubelet = node.as_ref().and_then(|n| kubelet_of(&n.value())).map(|v| format!("v{}", v.core()));
    sim.pod_logs.push(&pod.meta.uid, &format!("host ready: kubeadm {}", kubelet.unwrap_or_else(|| "unknown".into())));
    Next::Exit(0)
}

fn upgrade(sim: &Sim, pod: &Stored, stage: Stage) -> Next {
    let uid = pod.meta.uid.to_string();
    let log = |line: &str| sim.pod_logs.push(&uid, line);
    let node_name = pod.meta.node_name.to_string();
    let Some(node) = sim.store.get(&super::controllers::nodes_key(), "", &node_name) else {
        return Next::Exit(1);
    };
    let Some(version) = env(&pod.value(), "K8S_UPGRADE_VERSION").and_then(|v| v.parse::<Version>().ok()) else {
        log("k8s-upgrade: error: target version '' is not X.Y.Z");
        return Next::Exit(1);
    };
    let role = env(&pod.value(), "K8S_UPGRADE_ROLE").unwrap_or_default();
    let first = env(&pod.value(), "K8S_UPGRADE_FIRST").as_deref() == Some("true");
    let faults = sim.faults();
    let minor = format!("{}.{}", version.major, version.minor);
    match stage {
        Stage::Packages => {
            log(&format!("k8s-upgrade: node {node_name} ({role}) to v{}", version.core()));
            log("k8s-upgrade: package manager: apt");
            log(&format!("k8s-upgrade: repository in /etc/apt/sources.list.d/kubernetes.list now at v{minor}"));
            log(&format!(
                "Hit:1 https://prod-cdn.packages.k8s.io/repositories/isv:/kubernetes:/core:/stable:/v{minor}/deb  InRelease"
            ));
            if faults.node_jobs_fail.contains(&node_name) {
                log(&format!("E: Version '{}-*' for 'kubeadm' was not found", version.core()));
                return Next::Exit(100);
            }
            if faults.node_jobs_hang.contains(&node_name) {
                log(
                    "Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)",
                );
                return Next::Stage(Stage::Hung);
            }
            log(&format!("Setting up kubeadm ({}-1.1) ...", version.core()));
            log(&format!("k8s-upgrade: kubeadm v{} installed", version.core()));
            let control_plane =
                node.value().pointer("/metadata/labels/node-role.kubernetes.io~1control-plane").is_some();
            if role == "control-plane" && first {
                if !control_plane {
                    log(
                        "error execution phase preflight: couldn't create a Kubernetes client from file \"/etc/kubernetes/admin.conf\": open /etc/kubernetes/admin.conf: no such file or directory",
                    );
                    return Next::Exit(1);
                }
                let current = super::controllers::oldest_apiserver(sim).unwrap_or_else(|| sim.server_version());
                if version.minor > current.minor + 1 {
                    log(&format!(
                        "[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\t- Specified version to upgrade to \"v{}\" is too high; kubeadm can upgrade only 1 minor version at a time",
                        version.core()
                    ));
                    return Next::Exit(1);
                }
                log(&format!(
                    "[upgrade/version] You have chosen to change the cluster version to \"v{}\"",
                    version.core()
                ));
                log(&format!(
                    "[upgrade/staticpods] Writing new Static Pod manifests to \"/etc/kubernetes/tmp/kubeadm-upgraded-manifests\" for v{}",
                    version.core()
                ));
                log(&format!(
                    "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"v{}\". Enjoy!",
                    version.core()
                ));
            } else {
                log("[upgrade] Reading configuration from the cluster...");
                if control_plane {
                    log(
                        "[upgrade/staticpods] Writing new Static Pod manifests to \"/etc/kubernetes/tmp/kubeadm-upgraded-manifests\"",
                    );
                }
                log("[upgrade] The configuration for this node was successfully updated!");
            }
            log(&format!("Setting up kubelet ({}-1.1) ...", version.core()));
            log(&format!("Setting up kubectl ({}-1.1) ...", version.core()));
            // `systemctl restart kubelet`: the simulated kubelet restarts at the target.
            let patch = |n: &mut Value| {
                if !n.pointer("/metadata/annotations").is_some_and(Value::is_object) {
                    n["metadata"]["annotations"] = json!({});
                }
                n["metadata"]["annotations"][super::UPGRADE_ANNOTATION] = json!(version.core().to_string());
                Ok(())
            };
            let _ = sim.store.mutate(&super::controllers::nodes_key(), "", &node_name, None, false, patch);
            Next::Stage(Stage::Kubelet)
        }
        Stage::Kubelet => {
            let at = kubelet_of(&node.value()).is_some_and(|k| k.core() == version.core());
            if at && super::controllers::node_ready(&node.value()) {
                log(&format!("k8s-upgrade: kubelet restarted at v{}", version.core()));
                Next::Exit(0)
            } else {
                Next::Wait
            }
        }
        Stage::Hung => Next::Wait,
    }
}

/// The container exits with `code` (`None`: the kubelet killed it), and the pod's phase
/// follows.
fn finish(sim: &Sim, pod: &Stored, code: Option<i32>, reason: &str, message: &str) {
    let ok = code == Some(0);
    let _ = sim.store.mutate(pods_key(), pod.namespace(), pod.name(), None, false, |p| {
        p["status"]["phase"] = json!(if ok { "Succeeded" } else { "Failed" });
        if code.is_none() {
            p["status"]["reason"] = json!(reason);
            p["status"]["message"] = json!(message);
        }
        if let Some(cs) = p.pointer_mut("/status/containerStatuses").and_then(Value::as_array_mut) {
            for c in cs {
                c["ready"] = json!(false);
                c["started"] = json!(false);
                c["state"] = json!({"terminated": {
                    "exitCode": code.unwrap_or(137),
                    "reason": if code.is_none() { "Error" } else { reason },
                    "startedAt": c.pointer("/state/running/startedAt").cloned().unwrap_or(json!(now_rfc3339())),
                    "finishedAt": now_rfc3339(),
                }});
            }
        }
        let mut conds: Vec<Value> =
            p.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        for c in conds.iter_mut() {
            if c["type"] == "Ready" || c["type"] == "ContainersReady" {
                c["status"] = json!("False");
                c["reason"] = json!("PodCompleted");
            }
        }
        p["status"]["conditions"] = Value::Array(conds);
        Ok(())
    });
}
