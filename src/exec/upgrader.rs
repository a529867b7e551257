//! Upgraders: what actually upgrades a node or an add-on. `command` runs an operator-given argv
//! template per action (node name, role, phase and target as separate arguments and
//! `K8S_UPGRADE_*` variables, never a shell string), with a timeout and its output captured;
//! `manual` tells the operator what to do and lets the executor wait for the node to report the
//! target; `sim` sets the simulator's upgrade annotation or rewrites an add-on's image tag.

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Clone)]
pub enum Upgrader {
    Sim,
    Command { argv: Vec<String>, timeout: Duration },
    Manual,
}

/// One thing to upgrade.
#[derive(Debug, Clone)]
pub struct Action {
    /// Node name, or the add-on / release name.
    pub subject: String,
    /// `control-plane`, `worker`, `addon` or `helm-release`.
    pub role: &'static str,
    /// `control-plane`, `nodes`, `addon` or `helm-release`: the plan step kind.
    pub phase: &'static str,
    /// Target version (or version line for an add-on).
    pub target: String,
    /// For add-ons: the workload (`Deployment ns/name`).
    pub workload: Option<String>,
}

/// What the upgrader did.
pub enum Done {
    /// Performed (or started: the executor waits for the result).
    Started,
    /// The operator has to act; the text says what.
    Manual(String),
}

impl Upgrader {
    pub fn name(&self) -> &'static str {
        match self {
            Upgrader::Sim => "sim",
            Upgrader::Command { .. } => "command",
            Upgrader::Manual => "manual",
        }
    }

    /// Runs the action; `log` receives the command's output lines.
    pub async fn run(&self, client: &Client, action: &Action, log: &mut Vec<String>) -> Result<Done, String> {
        match self {
            Upgrader::Sim => sim(client, action).await.map(|()| Done::Started),
            Upgrader::Command { argv, timeout } => command(argv, *timeout, action, log).await.map(|()| Done::Started),
            Upgrader::Manual => Ok(Done::Manual(match action.role {
                "addon" => format!(
                    "upgrade add-on {} ({}) to {}",
                    action.subject,
                    action.workload.as_deref().unwrap_or("its workload"),
                    action.target
                ),
                "helm-release" => format!("upgrade or rewrite Helm release {}", action.subject),
                role => format!(
                    "upgrade {role} node {} to {} now (kubeadm: `kubeadm upgrade {}` then kubelet and kubectl packages, restart kubelet); waiting for it to report {}",
                    action.subject,
                    action.target,
                    if role == "control-plane" { "apply/node" } else { "node" },
                    action.target
                ),
            })),
        }
    }
}

/// The argv with `{node}`, `{role}`, `{phase}` and `{version}` replaced inside each argument.
/// Values from the cluster only ever become whole arguments or parts of one; nothing is split
/// or interpreted by a shell.
pub fn render_argv(template: &[String], action: &Action) -> Vec<String> {
    template
        .iter()
        .map(|a| {
            a.replace("{node}", &action.subject)
                .replace("{role}", action.role)
                .replace("{phase}", action.phase)
                .replace("{version}", &action.target)
        })
        .collect()
}

async fn command(template: &[String], timeout: Duration, action: &Action, log: &mut Vec<String>) -> Result<(), String> {
    let argv = render_argv(template, action);
    let Some((program, args)) = argv.split_first() else {
        return Err("--upgrade-command is empty".into());
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("K8S_UPGRADE_NODE", &action.subject)
        .env("K8S_UPGRADE_ROLE", action.role)
        .env("K8S_UPGRADE_PHASE", action.phase)
        .env("K8S_UPGRADE_VERSION", &action.target)
        .env("K8S_UPGRADE_WORKLOAD", action.workload.as_deref().unwrap_or(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read = async {
        let mut lines = Vec::new();
        if let Some(out) = stdout {
            let mut r = BufReader::new(out).lines();
            while let Ok(Some(l)) = r.next_line().await {
                lines.push(format!("{}: {l}", action.subject));
            }
        }
        if let Some(err) = stderr {
            let mut r = BufReader::new(err).lines();
            while let Ok(Some(l)) = r.next_line().await {
                lines.push(format!("{} (stderr): {l}", action.subject));
            }
        }
        lines
    };
    let run = async {
        let lines = read.await;
        (lines, child.wait().await)
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Err(format!("{program} did not finish within {timeout:?} for {}; it was killed", action.subject)),
        Ok((lines, status)) => {
            let last = lines.last().cloned().unwrap_or_default();
            log.extend(lines);
            let status = status.map_err(|e| format!("{program}: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{program} failed for {} ({status}){}",
                    action.subject,
                    if last.is_empty() { String::new() } else { format!(": {last}") }
                ))
            }
        }
    }
}

async fn sim(client: &Client, action: &Action) -> Result<(), String> {
    match action.role {
        "control-plane" | "worker" => {
            let nodes: Api<Node> = Api::all(client.clone());
            let patch = json!({"metadata": {"annotations": {crate::sim::UPGRADE_ANNOTATION: action.target}}});
            let (pp, merge) = (PatchParams::default(), Patch::Merge(&patch));
            crate::inventory::live::with_retries(|| nodes.patch(&action.subject, &pp, &merge))
                .await
                .map(|_| ())
                .map_err(|e| format!("cannot annotate node {}: {e}", action.subject))
        }
        "addon" => sim_addon(client, action).await,
        _ => Ok(()),
    }
}

/// A concrete tag for a version line: the upper bound of a range, `X.Y.0` for `~X.Y`.
pub fn concrete_version(line: &str) -> Option<String> {
    let line = line.trim();
    if let Some(upper) = line.split(',').find_map(|p| p.trim().strip_prefix("<=")) {
        return Some(upper.trim().to_string());
    }
    if let Some(v) = line.strip_prefix('~') {
        let v = v.trim();
        return Some(if v.matches('.').count() >= 2 { v.to_string() } else { format!("{v}.0") });
    }
    line.trim_start_matches(">=").split_whitespace().next().map(str::to_string)
}

async fn sim_addon(client: &Client, action: &Action) -> Result<(), String> {
    let workload = action.workload.as_deref().ok_or("no workload named for the add-on")?;
    let (kind, rest) = workload.split_once(' ').ok_or_else(|| format!("cannot read workload '{workload}'"))?;
    let (ns, name) = rest.split_once('/').ok_or_else(|| format!("cannot read workload '{workload}'"))?;
    let plural = match kind {
        "Deployment" => "deployments",
        "DaemonSet" => "daemonsets",
        "StatefulSet" => "statefulsets",
        other => return Err(format!("cannot upgrade a {other} in the simulator")),
    };
    let version = concrete_version(&action.target).ok_or_else(|| format!("no version in '{}'", action.target))?;
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("apps", "v1", kind), plural);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let obj = api.get(name).await.map_err(|e| format!("cannot read {workload}: {e}"))?;
    let containers =
        obj.data.pointer("/spec/template/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
    let patched: Vec<Value> = containers
        .iter()
        .map(|c| {
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let (repo, tag) = crate::inventory::live::split_image(image);
            let v = if tag.starts_with('v') {
                format!("v{}", version.trim_start_matches('v'))
            } else {
                version.trim_start_matches('v').to_string()
            };
            json!({"name": c.get("name"), "image": format!("{repo}:{v}")})
        })
        .collect();
    let patch = json!({"spec": {"template": {"spec": {"containers": patched}}}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot update {workload}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_placeholders_stay_inside_their_argument() {
        let action = Action {
            subject: "node-1; rm -rf / #$(reboot)".into(),
            role: "worker",
            phase: "nodes",
            target: "1.31.2".into(),
            workload: None,
        };
        let argv = render_argv(&["upgrade.sh".into(), "--node={node}".into(), "{version}".into()], &action);
        assert_eq!(argv, vec!["upgrade.sh", "--node=node-1; rm -rf / #$(reboot)", "1.31.2"]);
    }

    #[test]
    fn version_lines_become_concrete_tags() {
        assert_eq!(concrete_version(">=1.7.1, <=1.8.4").as_deref(), Some("1.8.4"));
        assert_eq!(concrete_version("~1.12").as_deref(), Some("1.12.0"));
        assert_eq!(concrete_version("~1.29.3").as_deref(), Some("1.29.3"));
    }
}
