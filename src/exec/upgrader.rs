//! Upgraders: what actually upgrades a node, the managed control plane, an add-on or a Helm
//! release. `command` runs an operator-given argv template per action (subject, role, phase,
//! versions and whether this is the first control-plane node, as separate arguments and
//! `K8S_UPGRADE_*` variables, never a shell string) through [`super::command`]; `manual` tells
//! the operator what to do and lets the executor wait for the result; `kubeadm` runs a node job
//! on each node (see [`super::node_job`]); `sim` sets the simulator's upgrade annotation or
//! rewrites an add-on's image tag; `Provider` (`eks`, `gke`, `aks`) has the executor drive the
//! provider's CLI for the managed control plane, managed node pools (replaced) and EKS add-ons
//! (see [`super::managed`]).

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::cancel::Cancel;
use super::command::{self, CommandError, CommandSpec, Output};

#[derive(Debug, Clone)]
pub enum Upgrader {
    Sim,
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
    Manual,
    /// A privileged pod on each node runs kubeadm's procedure there.
    NodeJob(super::node_job::NodeJob),
    Provider(super::managed::ManagedCli),
}

/// What is being upgraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A control-plane node; `first` is the first of its hop (`kubeadm upgrade apply` there,
    /// `kubeadm upgrade node` on the others).
    ControlPlane {
        first: bool,
    },
    Worker,
    /// A control plane the provider runs (no nodes of ours).
    ManagedControlPlane,
    Addon,
    HelmRelease,
}

impl Role {
    /// The `{role}` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane { .. } | Role::ManagedControlPlane => "control-plane",
            Role::Worker => "worker",
            Role::Addon => "addon",
            Role::HelmRelease => "helm-release",
        }
    }

    /// The `{phase}` value: the plan step kind the action belongs to.
    pub fn phase(self) -> &'static str {
        match self {
            Role::ControlPlane { .. } | Role::ManagedControlPlane => "control-plane",
            Role::Worker => "nodes",
            Role::Addon => "addon",
            Role::HelmRelease => "helm-release",
        }
    }
}

/// One thing to upgrade.
#[derive(Debug, Clone)]
pub struct Action {
    /// Node name, or the add-on / release name.
    pub subject: String,
    pub role: Role,
    /// Target version (or version line for an add-on).
    pub target: String,
    /// The version it comes from, when known.
    pub from: Option<String>,
    /// For add-ons: the workload (`Deployment ns/name`); for Helm releases: its namespace.
    pub workload: Option<String>,
}

/// What the upgrader did.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    /// Performed, or started: the executor waits for the result.
    Performed,
    /// The operator has to act; the text says what.
    OperatorAction(String),
}

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    NodeJob(#[from] super::node_job::JobError),
    #[error("{0}")]
    Api(String),
}

impl UpgradeError {
    /// The command's kept output, when it ran.
    pub fn output(&self) -> Option<&Output> {
        match self {
            UpgradeError::Command(
                CommandError::Timeout { output, .. }
                | CommandError::Cancelled { output, .. }
                | CommandError::Failed { output, .. },
            ) => Some(output),
            UpgradeError::NodeJob(e) => e.output(),
            _ => None,
        }
    }
}

impl Upgrader {
    pub fn name(&self) -> &'static str {
        match self {
            Upgrader::Sim => "sim",
            Upgrader::Command { .. } => "command",
            Upgrader::Manual => "manual",
            Upgrader::NodeJob(_) => "kubeadm",
            Upgrader::Provider(m) => m.provider.name(),
        }
    }

    /// Runs the action. `log_file` receives all of a command's output; `on_line` each line.
    pub async fn run(
        &self,
        client: &Client,
        action: &Action,
        cancel: &Cancel,
        log_file: Option<PathBuf>,
        on_line: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(Started, Output), UpgradeError> {
        match self {
            Upgrader::Sim => sim(client, action).await.map(|()| (Started::Performed, Output::default())),
            Upgrader::Command { argv, timeout } => {
                let spec =
                    CommandSpec { argv: render_argv(argv, action), env: env(action), timeout: *timeout, log_file };
                Ok((Started::Performed, command::run(&spec, cancel, on_line).await?))
            }
            Upgrader::Manual => Ok((Started::OperatorAction(manual_text(action)), Output::default())),
            Upgrader::NodeJob(job) => match action.role {
                Role::ControlPlane { .. } | Role::Worker => {
                    let out = super::node_job::run(client, job, action, cancel, log_file, on_line).await?;
                    Ok((Started::Performed, out))
                }
                // kubeadm moves kube-proxy and CoreDNS itself, with `kubeadm upgrade apply`;
                // other add-ons are the operator's (their own charts or manifests).
                _ => Ok((Started::OperatorAction(manual_text(action)), Output::default())),
            },
            // The executor drives managed control planes, pools and EKS add-ons itself; what
            // reaches here is left to the operator, except nodes the provider does not run.
            Upgrader::Provider(m) => match action.role {
                Role::ControlPlane { .. } | Role::Worker => Err(UpgradeError::Api(format!(
                    "the {} upgrader upgrades a managed control plane and managed node pools, not node {} in place",
                    m.provider.name(),
                    action.subject
                ))),
                _ => Ok((Started::OperatorAction(manual_text(action)), Output::default())),
            },
        }
    }
}

fn manual_text(action: &Action) -> String {
    match action.role {
        Role::Addon => format!(
            "upgrade add-on {} ({}) to {}",
            action.subject,
            action.workload.as_deref().unwrap_or("its workload"),
            action.target
        ),
        Role::HelmRelease => format!("upgrade or rewrite Helm release {}", action.subject),
        Role::ManagedControlPlane => format!(
            "upgrade the managed control plane to {} now (your provider's console or CLI); waiting for the apiserver to report it",
            action.target
        ),
        Role::ControlPlane { first } => format!(
            "upgrade control-plane node {} to {} now (kubeadm: `kubeadm upgrade {}` then the kubelet and kubectl packages, restart the kubelet); waiting for it to report {}",
            action.subject,
            action.target,
            if first { format!("apply v{}", action.target.trim_start_matches('v')) } else { "node".into() },
            action.target
        ),
        Role::Worker => format!(
            "upgrade worker node {} to {} now (kubeadm: `kubeadm upgrade node` then the kubelet and kubectl packages, restart the kubelet); waiting for it to report {}",
            action.subject, action.target, action.target
        ),
    }
}

fn env(action: &Action) -> Vec<(String, String)> {
    vec![
        ("K8S_UPGRADE_NODE".into(), action.subject.clone()),
        ("K8S_UPGRADE_ROLE".into(), action.role.as_str().into()),
        ("K8S_UPGRADE_PHASE".into(), action.role.phase().into()),
        ("K8S_UPGRADE_VERSION".into(), action.target.clone()),
        ("K8S_UPGRADE_FROM".into(), action.from.clone().unwrap_or_default()),
        ("K8S_UPGRADE_FIRST".into(), matches!(action.role, Role::ControlPlane { first: true }).to_string()),
        ("K8S_UPGRADE_WORKLOAD".into(), action.workload.clone().unwrap_or_default()),
    ]
}

/// The argv with `{node}`, `{role}`, `{phase}`, `{version}`, `{from}` and `{first}` replaced
/// inside each argument. Values from the cluster only ever become whole arguments or parts of
/// one; nothing is split or interpreted by a shell.
pub fn render_argv(template: &[String], action: &Action) -> Vec<String> {
    let first = matches!(action.role, Role::ControlPlane { first: true }).to_string();
    template
        .iter()
        .map(|a| {
            a.replace("{node}", &action.subject)
                .replace("{role}", action.role.as_str())
                .replace("{phase}", action.role.phase())
                .replace("{version}", &action.target)
                .replace("{from}", action.from.as_deref().unwrap_or(""))
                .replace("{first}", &first)
        })
        .collect()
}

async fn sim(client: &Client, action: &Action) -> Result<(), UpgradeError> {
    match action.role {
        Role::ControlPlane { .. } | Role::Worker => {
            let nodes: Api<Node> = Api::all(client.clone());
            let patch = json!({"metadata": {"annotations": {crate::k8s::annotations::SIM_UPGRADE_TO: action.target}}});
            let (pp, merge) = (PatchParams::default(), Patch::Merge(&patch));
            crate::kubeapi::retry::with_retries(|| nodes.patch(&action.subject, &pp, &merge))
                .await
                .map(|_| ())
                .map_err(|e| UpgradeError::Api(format!("cannot annotate node {}: {e}", action.subject)))
        }
        Role::Addon => sim_addon(client, action).await.map_err(UpgradeError::Api),
        Role::ManagedControlPlane => {
            let body = serde_json::to_vec(&json!({"version": action.target})).unwrap_or_default();
            sim_control(client, http::Method::PUT, "/sim/control-plane", body).await.map(drop)
        }
        Role::HelmRelease => Ok(()),
    }
}

/// The simulator performs an operator step (an API migration, a Helm release rewrite) as the
/// operator would on a real cluster; returns how many objects it changed.
pub async fn sim_operator_step(client: &Client, step: &crate::plan::StepAction) -> Result<usize, UpgradeError> {
    let body = serde_json::to_vec(step).map_err(|e| UpgradeError::Api(e.to_string()))?;
    let answer = sim_control(client, http::Method::POST, "/sim/operator-step", body).await?;
    Ok(answer.get("changed").and_then(Value::as_u64).unwrap_or(0) as usize)
}

async fn sim_control(client: &Client, method: http::Method, path: &str, body: Vec<u8>) -> Result<Value, UpgradeError> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| UpgradeError::Api(e.to_string()))?;
    let text =
        client.request_text(req).await.map_err(|e| UpgradeError::Api(format!("the simulator refused {path}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| UpgradeError::Api(format!("{path}: {e}")))
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
    // Add-on steps often follow a control-plane restart: a 503 then is the apiserver coming
    // back, retried like every other read and the (idempotent) patch below.
    let one_line = |e: &kube::Error| crate::kubeapi::errors::describe(e, "the API server");
    let obj = crate::kubeapi::retry::with_retries(|| api.get(name))
        .await
        .map_err(|e| format!("cannot read {workload}: {}", one_line(&e)))?;
    let containers =
        obj.data.pointer("/spec/template/spec/containers").and_then(Value::as_array).cloned().unwrap_or_default();
    let patched: Vec<Value> = containers
        .iter()
        .map(|c| {
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let (repo, tag) = crate::k8s::image::split_image(image);
            let v = if tag.starts_with('v') {
                format!("v{}", version.trim_start_matches('v'))
            } else {
                version.trim_start_matches('v').to_string()
            };
            json!({"name": c.get("name"), "image": format!("{repo}:{v}")})
        })
        .collect();
    let patch = json!({"spec": {"template": {"spec": {"containers": patched}}}});
    let (params, patch) = (PatchParams::default(), Patch::Strategic(&patch));
    crate::kubeapi::retry::with_retries(|| api.patch(name, &params, &patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot update {workload}: {}", one_line(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_placeholders_stay_inside_their_argument() {
        let action = Action {
            subject: "node-1; rm -rf / #$(reboot)".into(),
            role: Role::ControlPlane { first: true },
            target: "1.31.2".into(),
            from: Some("1.30.4".into()),
            workload: None,
        };
        let argv = render_argv(
            &["upgrade.sh".into(), "--node={node}".into(), "{version}".into(), "{role}:{first}:{from}".into()],
            &action,
        );
        assert_eq!(
            argv,
            vec!["upgrade.sh", "--node=node-1; rm -rf / #$(reboot)", "1.31.2", "control-plane:true:1.30.4"]
        );
        assert!(manual_text(&action).contains("kubeadm upgrade apply v1.31.2"));
    }

    #[test]
    fn version_lines_become_concrete_tags() {
        assert_eq!(concrete_version(">=1.7.1, <=1.8.4").as_deref(), Some("1.8.4"));
        assert_eq!(concrete_version("~1.12").as_deref(), Some("1.12.0"));
        assert_eq!(concrete_version("~1.29.3").as_deref(), Some("1.29.3"));
    }
}
