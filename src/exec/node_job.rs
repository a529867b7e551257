//! The `kubeadm` upgrader: upgrades a node from inside the cluster, without SSH, the way
//! system-upgrade-controller does. For each node a privileged pod pinned to it (`nodeName`, the
//! host's PID, network and IPC namespaces, every taint tolerated) enters the host with `nsenter`
//! and runs a versioned script (`node-upgrade.sh`, or the operator's `--node-script`) that
//! follows kubeadm's documented procedure. The script is the same text for every node: the
//! target version, the role and the node's name reach it only as environment variables, so
//! nothing read from the cluster is ever interpreted by a shell.
//!
//! This module owns the pod's spec (pure, tested, and checked against a real apiserver), the
//! preflight that runs before the first node (the namespace's Pod Security level, a server-side
//! dry run of the real pod, and a short-lived probe pod that proves the image can be pulled and
//! the host has what the script needs), and following one job: its log streamed into the
//! journal's bounded output, its exit code as the result, a pod that never starts or never ends
//! stopped with the reason. A job found from an earlier, interrupted run is followed rather than
//! started twice.

use std::time::Duration;

use tokio::time::Instant;

use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::cancel::Cancel;
use super::command::{Collector, Output, humanize};
use super::upgrader::{Action, Role};

/// The built-in script (its first line names its version).
pub const SCRIPT: &str = include_str!("node-upgrade.sh");
/// A small image with `nsenter` (BusyBox's applet); pin it by digest with `--node-job-image`.
pub const DEFAULT_IMAGE: &str = "docker.io/library/busybox:1.37.0";
pub const DEFAULT_NAMESPACE: &str = "kube-system";
/// Label on every pod this upgrader creates: `upgrade` for a node's job, `probe` for the
/// preflight's.
pub const LABEL: &str = "k8s-upgrade.dev/node-job";
pub const ANNOTATION_NODE: &str = "k8s-upgrade.dev/node";
pub const ANNOTATION_TARGET: &str = "k8s-upgrade.dev/target";
pub const ANNOTATION_SCRIPT: &str = "k8s-upgrade.dev/script";
pub const CONTAINER: &str = "upgrade";
/// Largest `--node-script` (it travels in the pod's spec, and objects are limited to ~1.5 MB).
pub const MAX_SCRIPT_BYTES: u64 = 256 * 1024;
/// Waiting reasons that no retry of the kubelet will fix.
const TERMINAL_WAITING: &[&str] = &[
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "ErrImageNeverPull",
];
/// The probe: the image runs, `nsenter` reaches the host, and the host has what the built-in
/// script calls.
const PROBE_BUILTIN: &str = "set -e
command -v kubeadm >/dev/null 2>&1 || { echo 'kubeadm is not installed on this host'; exit 1; }
command -v systemctl >/dev/null 2>&1 || { echo 'systemctl is not on this host (the script restarts the kubelet with it)'; exit 1; }
command -v apt-get >/dev/null 2>&1 || command -v dnf >/dev/null 2>&1 || command -v yum >/dev/null 2>&1 || { echo 'neither apt-get nor dnf nor yum on this host'; exit 1; }
echo \"host ready: kubeadm $(kubeadm version -o short)\"";
const PROBE_CUSTOM: &str = "echo host reached";

/// What runs on each node.
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    Builtin,
    /// `--node-script FILE`, read once at start.
    Custom {
        path: String,
        text: String,
    },
}

impl Script {
    pub fn text(&self) -> &str {
        match self {
            Script::Builtin => SCRIPT,
            Script::Custom { text, .. } => text,
        }
    }

    /// What the pod's annotation records: the built-in script's version line, or the file and
    /// a hash of its text.
    pub fn id(&self) -> String {
        match self {
            Script::Builtin => SCRIPT.lines().next().unwrap_or_default().trim_start_matches("# ").to_string(),
            Script::Custom { path, text } => format!("{path} (fnv {:016x})", fnv(text.as_bytes())),
        }
    }

    /// Reads `--node-script FILE` within [`MAX_SCRIPT_BYTES`].
    pub fn read(path: &std::path::Path) -> Result<Script, String> {
        use std::io::Read;
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("--node-script {shown}: {e}"))?;
        let mut bytes = Vec::new();
        file.take(MAX_SCRIPT_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("--node-script {shown}: {e}"))?;
        if bytes.len() as u64 > MAX_SCRIPT_BYTES {
            return Err(format!(
                "--node-script {shown} is larger than {} KiB (it travels in each node job's pod spec): keep the script short and have it fetch what it needs",
                MAX_SCRIPT_BYTES / 1024
            ));
        }
        let text = String::from_utf8(bytes).map_err(|_| format!("--node-script {shown} is not UTF-8 text"))?;
        if text.trim().is_empty() {
            return Err(format!("--node-script {}: the file is empty", path.display()));
        }
        Ok(Script::Custom { path: path.display().to_string(), text })
    }
}

/// How node jobs run.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeJob {
    pub image: String,
    pub namespace: String,
    pub script: Script,
    /// A job still running after this long is stopped (its pod deleted).
    pub timeout: Duration,
    /// A pod whose container has not started after this long (image pull, kubelet down) is
    /// stopped with the kubelet's reason.
    pub start_timeout: Duration,
    /// How often the pod is read while waiting.
    pub poll: Duration,
}

/// Which job: `namespace/pod on node`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRef {
    pub namespace: String,
    pub pod: String,
    pub node: String,
}

impl std::fmt::Display for JobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} on {}", self.namespace, self.pod, self.node)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Api(String),
    #[error(
        "node job {job} exited with code {code}{}; the pod is kept for inspection (kubectl -n {} logs {}) and apply --resume replaces it",
        last(.output), .job.namespace, .job.pod
    )]
    Failed { job: Box<JobRef>, code: i32, output: Output },
    #[error("node job {job} did not start within {}: {reason}; the pod was deleted", humanize(*after))]
    NotStarted { job: Box<JobRef>, after: Duration, reason: String, output: Output },
    #[error(
        "node job {job} did not finish within {}{}; the pod was deleted, which stops the script wherever it was: look at the node before resuming",
        humanize(*after),
        last(.output)
    )]
    Timeout { job: Box<JobRef>, after: Duration, output: Output },
    #[error("stopped following node job {job}; it keeps running on the node, and apply --resume follows it to its end")]
    Interrupted { job: Box<JobRef>, output: Output },
}

fn last(o: &Output) -> String {
    o.last_line().map(|l| format!(" (last line: {l})")).unwrap_or_default()
}

impl JobError {
    pub fn output(&self) -> Option<&Output> {
        match self {
            JobError::Api(_) => None,
            JobError::Failed { output, .. }
            | JobError::NotStarted { output, .. }
            | JobError::Timeout { output, .. }
            | JobError::Interrupted { output, .. } => Some(output),
        }
    }
}

/// One line for a failed request: the apiserver's message and code, or the transport error.
fn brief(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string().lines().next().unwrap_or_default().to_string(),
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// A DNS-label-safe pod name for a node's job: a readable prefix of the node's name and a hash
/// of the node and the target (node names may be 253 characters of DNS subdomain).
pub fn pod_name(kind: &str, node: &str, target: &str) -> String {
    let readable: String = node
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .take(30)
        .collect::<String>()
        .trim_matches('-')
        .to_string();
    let hash = fnv(format!("{node}\n{target}").as_bytes()) & 0xffff_ffff;
    if readable.is_empty() {
        format!("k8s-upgrade-{kind}-{hash:08x}")
    } else {
        format!("k8s-upgrade-{kind}-{readable}-{hash:08x}")
    }
}

/// The target as the script reads it: `X.Y.Z`, no `v`, no distribution suffix.
fn plain_version(target: &str) -> String {
    target
        .parse::<crate::version::Version>()
        .map(|v| v.without_suffix().core().to_string())
        .unwrap_or_else(|_| target.trim_start_matches('v').to_string())
}

fn role_env(action: &Action) -> (&'static str, bool) {
    match action.role {
        Role::ControlPlane { first } => ("control-plane", first),
        _ => ("worker", false),
    }
}

/// The pod that upgrades `action.subject`.
pub fn job_pod(job: &NodeJob, action: &Action) -> Value {
    let version = plain_version(&action.target);
    let (role, first) = role_env(action);
    let name = pod_name("node", &action.subject, &version);
    let env = json!([
        {"name": "K8S_UPGRADE_VERSION", "value": version},
        {"name": "K8S_UPGRADE_ROLE", "value": role},
        {"name": "K8S_UPGRADE_FIRST", "value": first.to_string()},
        {"name": "K8S_UPGRADE_NODE", "value": action.subject},
    ]);
    // The kubelet stops the pod a little after our own timeout, should this process be gone.
    let deadline = job.timeout.as_secs().saturating_add(120).max(60);
    privileged_pod(job, &name, &action.subject, "upgrade", &version, job.script.text(), env, deadline)
}

/// The preflight's probe on `node`.
pub fn probe_pod(job: &NodeJob, node: &str) -> Value {
    let script = if job.script == Script::Builtin { PROBE_BUILTIN } else { PROBE_CUSTOM };
    let name = pod_name("probe", node, "probe");
    let deadline = job.start_timeout.as_secs().saturating_add(60).max(60);
    privileged_pod(job, &name, node, "probe", "", script, json!([]), deadline)
}

#[allow(clippy::too_many_arguments)]
fn privileged_pod(
    job: &NodeJob,
    name: &str,
    node: &str,
    kind: &str,
    version: &str,
    script: &str,
    env: Value,
    deadline: u64,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": job.namespace,
            "labels": {"app.kubernetes.io/managed-by": "k8s-upgrade", LABEL: kind},
            "annotations": {ANNOTATION_NODE: node, ANNOTATION_TARGET: version, ANNOTATION_SCRIPT: job.script.id()},
        },
        "spec": {
            "nodeName": node,
            "hostPID": true,
            "hostNetwork": true,
            "hostIPC": true,
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            // The node is cordoned and may carry any taint: the job must run there regardless.
            "tolerations": [{"operator": "Exists"}],
            "activeDeadlineSeconds": deadline,
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": CONTAINER,
                "image": job.image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "sh", "-c", script, "k8s-upgrade-node"],
                "env": env,
                "securityContext": {"privileged": true},
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
            }],
        },
    })
}

fn typed(pod: Value) -> Result<Pod, JobError> {
    serde_json::from_value(pod).map_err(|e| JobError::Api(format!("cannot build the node job's pod: {e}")))
}

/// Checks, before any node is touched, that node jobs can run: the apiserver admits the real
/// pod (server-side dry run: the namespace's Pod Security level, webhooks, validation), and,
/// unless `dry_run`, a probe pod pulls the image on `node` and finds what the
/// script needs on the host. Returns what was verified.
pub async fn preflight(
    client: &Client,
    job: &NodeJob,
    first: &Action,
    dry_run: bool,
    cancel: &Cancel,
) -> Result<Vec<String>, String> {
    let mut verified = Vec::new();
    // The real pod, dry-run on the server: the namespace's (or the cluster's default) Pod
    // Security level, admission webhooks and validation all answer, and nothing is created.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &job.namespace);
    let pod = typed(job_pod(job, first)).map_err(|e| e.to_string())?;
    match pods.create(&PostParams { dry_run: true, ..Default::default() }, &pod).await {
        Ok(_) => verified.push(format!(
            "the apiserver admits a privileged node job in namespace {} (server-side dry run)",
            job.namespace
        )),
        // A job of an interrupted run is still there: it was admitted then.
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(format!(
                "the node-job namespace {} does not exist: create it, or choose another with --node-job-namespace",
                job.namespace
            ));
        }
        Err(kube::Error::Api(s)) if s.message.contains("PodSecurity") => {
            return Err(format!(
                "namespace {} does not admit the privileged node-job pods ({}): use --node-job-namespace with a namespace labelled pod-security.kubernetes.io/enforce=privileged (kube-system usually is), or label this one",
                job.namespace, s.message
            ));
        }
        Err(e) => {
            return Err(format!(
                "the apiserver refuses the node-job pod in namespace {} (server-side dry run): {}",
                job.namespace,
                brief(&e)
            ));
        }
    }
    if dry_run {
        verified.push("the probe pod is not started in a dry run".into());
        return Ok(verified);
    }
    let probe = typed(probe_pod(job, &first.subject)).map_err(|e| e.to_string())?;
    let name = probe.metadata.name.clone().unwrap_or_default();
    let _ = delete_and_wait(&pods, &name, job.poll).await;
    pods.create(&PostParams::default(), &probe)
        .await
        .map_err(|e| format!("cannot start the probe pod {}/{name}: {}", job.namespace, brief(&e)))?;
    let probe_job = NodeJob { timeout: job.start_timeout + Duration::from_secs(60), ..job.clone() };
    let result = follow(client, &probe_job, &name, &first.subject, cancel, None, &|_| {}).await;
    let _ = pods.delete(&name, &DeleteParams::background()).await;
    match result {
        Ok(out) => {
            verified.push(format!(
                "image {} runs on {}: {}",
                job.image,
                first.subject,
                out.last_line().unwrap_or("the probe passed")
            ));
            Ok(verified)
        }
        Err(e) => Err(format!("the node-job probe failed, so no node was touched: {e}")),
    }
}

/// Deletes a pod and waits (bounded) until it is gone.
async fn delete_and_wait(pods: &Api<Pod>, name: &str, poll: Duration) -> Result<(), String> {
    match pods.delete(name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(format!("cannot delete pod {name}: {}", brief(&e))),
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match pods.get_opt(name).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) | Err(_) => tokio::time::sleep(poll).await,
        }
    }
    Err(format!("pod {name} was deleted and is still there after 2m"))
}

/// Runs `action`'s node job to its end: starts it (or follows the one an interrupted run left),
/// streams its log, and returns the kept output when it exits 0.
pub async fn run(
    client: &Client,
    job: &NodeJob,
    action: &Action,
    cancel: &Cancel,
    log_file: Option<std::path::PathBuf>,
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> Result<Output, JobError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &job.namespace);
    let pod = typed(job_pod(job, action))?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let version = plain_version(&action.target);
    let existing = pods
        .get_opt(&name)
        .await
        .map_err(|e| JobError::Api(format!("cannot read node job {}/{name}: {}", job.namespace, brief(&e))))?;
    let adopt = existing.as_ref().is_some_and(|p| {
        let same = p.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_TARGET)) == Some(&version)
            && p.metadata.deletion_timestamp.is_none();
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        same && phase != "Failed"
    });
    if adopt {
        on_line(&format!("following node job {}/{name}, started by an earlier run", job.namespace));
    } else {
        if existing.is_some() {
            delete_and_wait(&pods, &name, job.poll).await.map_err(JobError::Api)?;
        }
        pods.create(&PostParams::default(), &pod).await.map_err(|e| {
            JobError::Api(format!(
                "cannot create node job {}/{name} for {}: {}",
                job.namespace,
                action.subject,
                brief(&e)
            ))
        })?;
    }
    let result = follow(client, job, &name, &action.subject, cancel, log_file, on_line).await;
    if result.is_ok() {
        // A finished job has nothing more to say; its log is in the journal.
        let _ = pods.delete(&name, &DeleteParams::background()).await;
    }
    result
}

/// Where a pod is, as far as following it goes.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Not started; the kubelet's waiting reason and message, when it gave one.
    Waiting(Option<(String, String)>),
    Running,
    Exited(i32),
    Gone,
}

fn state_of(pod: &Pod) -> State {
    if pod.metadata.deletion_timestamp.is_some() {
        return State::Gone;
    }
    let status = pod.status.as_ref();
    let container = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER))
        .and_then(|c| c.state.clone());
    if let Some(t) = container.as_ref().and_then(|s| s.terminated.as_ref()) {
        return State::Exited(t.exit_code);
    }
    match status.and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => return State::Exited(0),
        // Failed without a container status: the kubelet refused or stopped it
        // (activeDeadlineSeconds, eviction); the reason is on the pod.
        Some("Failed") => return State::Exited(-1),
        _ => {}
    }
    if container.as_ref().is_some_and(|s| s.running.is_some()) {
        return State::Running;
    }
    State::Waiting(
        container.and_then(|s| s.waiting).map(|w| (w.reason.unwrap_or_default(), w.message.unwrap_or_default())),
    )
}

/// Follows a created pod until it exits; its log lines go to `on_line`, the log file and the
/// kept output.
async fn follow(
    client: &Client,
    job: &NodeJob,
    name: &str,
    node: &str,
    cancel: &Cancel,
    log_file: Option<std::path::PathBuf>,
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> Result<Output, JobError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &job.namespace);
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let mut reader: Option<tokio::task::JoinHandle<()>> = None;
    let mut collector = Collector::default();
    let mut log = match &log_file {
        Some(path) => tokio::fs::OpenOptions::new().create(true).append(true).open(path).await.ok(),
        None => None,
    };
    let mut running_since: Option<Instant> = None;
    let mut last_waiting: Option<(String, String)> = None;
    let ids = || Box::new(JobRef { namespace: job.namespace.clone(), pod: name.to_string(), node: node.to_string() });
    let exit = loop {
        let pod = match pods.get_opt(name).await {
            Ok(Some(p)) => Some(state_of(&p)),
            Ok(None) => Some(State::Gone),
            // A refusal does not pass by itself: say so now rather than at the timeout. The job
            // keeps running on the node, and a resume follows it.
            Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => {
                let _ = done_tx.send(true);
                return Err(JobError::Api(format!(
                    "cannot follow node job {}: {} ({}); it keeps running on the node, and apply --resume follows it once the permission is back",
                    ids(),
                    s.message,
                    s.code
                )));
            }
            // The apiserver restarts during a control-plane upgrade: keep waiting.
            Err(_) => None,
        };
        match pod {
            Some(State::Exited(code)) => break Ok(code),
            Some(State::Gone) => break Err("the pod was deleted by someone else before it finished".to_string()),
            Some(State::Running) => {
                running_since.get_or_insert_with(Instant::now);
            }
            Some(State::Waiting(w)) => {
                if let Some((reason, message)) = &w
                    && TERMINAL_WAITING.contains(&reason.as_str())
                {
                    let _ = delete_and_wait(&pods, name, job.poll).await;
                    let which = ids();
                    return Err(JobError::NotStarted {
                        job: which,
                        after: started.elapsed(),
                        reason: format!("{reason}: {message}"),
                        output: collector.finish(on_line),
                    });
                }
                if w.is_some() {
                    last_waiting = w;
                }
            }
            None => {}
        }
        if reader.is_none() && running_since.is_some() {
            reader =
                Some(tokio::spawn(read_log(pods.clone(), name.to_string(), tx.clone(), done_rx.clone(), job.poll)));
        }
        if running_since.is_none() && started.elapsed() > job.start_timeout {
            let _ = delete_and_wait(&pods, name, job.poll).await;
            let which = ids();
            return Err(JobError::NotStarted {
                job: which,
                after: job.start_timeout,
                reason: last_waiting
                    .map(|(r, m)| if m.is_empty() { r } else { format!("{r}: {m}") })
                    .unwrap_or_else(|| "the kubelet never started its container (is the node's kubelet up?)".into()),
                output: collector.finish(on_line),
            });
        }
        if started.elapsed() > job.timeout {
            let _ = done_tx.send(true);
            let _ = delete_and_wait(&pods, name, job.poll).await;
            let which = ids();
            return Err(JobError::Timeout { job: which, after: job.timeout, output: collector.finish(on_line) });
        }
        tokio::select! {
            Some(bytes) = rx.recv() => {
                if let Some(f) = log.as_mut() {
                    let _ = f.write_all(&bytes).await;
                }
                collector.feed(0, &bytes, on_line);
            }
            _ = tokio::time::sleep(job.poll) => {}
            _ = cancel.kill_requested() => {
                let _ = done_tx.send(true);
                let which = ids();
                return Err(JobError::Interrupted { job: which, output: collector.finish(on_line) });
            }
        }
    };
    // The container ended: read what the log still holds, then stop the reader.
    let _ = done_tx.send(true);
    if reader.is_none() {
        // Ended before it was seen running: read the whole log once.
        reader = Some(tokio::spawn(read_log(pods.clone(), name.to_string(), tx.clone(), done_rx.clone(), job.poll)));
    }
    drop(tx);
    let drain_until = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(bytes) => {
                    if let Some(f) = log.as_mut() {
                        let _ = f.write_all(&bytes).await;
                    }
                    collector.feed(0, &bytes, on_line);
                }
                None => break,
            },
            _ = tokio::time::sleep_until(drain_until) => break,
        }
    }
    if let Some(r) = reader {
        r.abort();
    }
    let output = collector.finish(on_line);
    let which = ids();
    match exit {
        Ok(0) => Ok(output),
        Ok(code) => Err(JobError::Failed { job: which, code, output }),
        Err(why) => Err(JobError::Api(format!("node job {which}: {why}"))),
    }
}

/// Streams a pod's log into `tx`, reconnecting when the stream breaks (the apiserver or the
/// kubelet restarts during an upgrade) and skipping the lines already sent; ends after a
/// complete read once `done` is set.
async fn read_log(
    pods: Api<Pod>,
    name: String,
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    done: tokio::sync::watch::Receiver<bool>,
    poll: Duration,
) {
    let mut sent_lines: u64 = 0;
    loop {
        let finished_before = *done.borrow();
        let lp = LogParams { container: Some(CONTAINER.into()), follow: !finished_before, ..Default::default() };
        let mut complete = false;
        if let Ok(stream) = pods.log_stream(&name, &lp).await {
            let mut lines = stream.lines();
            let mut index: u64 = 0;
            complete = true;
            loop {
                match futures::StreamExt::next(&mut lines).await {
                    Some(Ok(line)) => {
                        index += 1;
                        if index > sent_lines {
                            sent_lines = index;
                            let mut bytes = line.into_bytes();
                            bytes.push(b'\n');
                            if tx.send(bytes).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some(Err(_)) => {
                        complete = false;
                        break;
                    }
                    None => break,
                }
            }
        }
        if complete && finished_before {
            return;
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> NodeJob {
        NodeJob {
            image: DEFAULT_IMAGE.into(),
            namespace: DEFAULT_NAMESPACE.into(),
            script: Script::Builtin,
            timeout: Duration::from_secs(1800),
            start_timeout: Duration::from_secs(300),
            poll: Duration::from_secs(2),
        }
    }

    fn action(node: &str, role: Role) -> Action {
        Action { subject: node.into(), role, target: "1.31.2".into(), from: Some("1.30.4".into()), workload: None }
    }

    #[test]
    fn the_pod_is_pinned_privileged_and_carries_cluster_data_only_as_environment() {
        let hostile = "node-1; rm -rf / #$(reboot)";
        let pod = job_pod(&job(), &action(hostile, Role::ControlPlane { first: true }));
        let spec = &pod["spec"];
        assert_eq!(spec["nodeName"], hostile);
        assert_eq!(spec["hostPID"], true);
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["tolerations"], json!([{"operator": "Exists"}]));
        assert_eq!(spec["automountServiceAccountToken"], false);
        let c = &spec["containers"][0];
        assert_eq!(c["securityContext"]["privileged"], true);
        let command: Vec<&str> = c["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(&command[..10], &["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "sh"]);
        // The script is the same text for every node; the node's name is not in it.
        assert_eq!(command[11], SCRIPT);
        assert!(!command.iter().any(|a| a.contains("reboot")));
        let env: Vec<(String, String)> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().into(), e["value"].as_str().unwrap().into()))
            .collect();
        assert!(env.contains(&("K8S_UPGRADE_VERSION".into(), "1.31.2".into())));
        assert!(env.contains(&("K8S_UPGRADE_ROLE".into(), "control-plane".into())));
        assert!(env.contains(&("K8S_UPGRADE_FIRST".into(), "true".into())));
        assert!(env.contains(&("K8S_UPGRADE_NODE".into(), hostile.into())));
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert!(name.len() <= 63 && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert!(typed(pod.clone()).is_ok());
    }

    #[test]
    fn workers_and_other_control_plane_nodes_run_kubeadm_upgrade_node() {
        for role in [Role::Worker, Role::ControlPlane { first: false }] {
            let pod = job_pod(&job(), &action("w", role));
            let env = &pod["spec"]["containers"][0]["env"];
            assert!(env.as_array().unwrap().contains(&json!({"name": "K8S_UPGRADE_FIRST", "value": "false"})));
        }
    }

    #[test]
    fn names_are_stable_distinct_and_valid_for_any_node_name() {
        let long = "a".repeat(253);
        for node in ["ip-10-0-1-5.ec2.internal", "UPPER_case.node", &long, "...", "ü"] {
            let n = pod_name("node", node, "1.31.2");
            assert!(n.len() <= 63, "{n}");
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{n}");
            assert!(!n.ends_with('-'));
            assert_eq!(n, pod_name("node", node, "1.31.2"));
        }
        assert_ne!(pod_name("node", "a", "1.31.2"), pod_name("node", "a", "1.32.0"));
        assert_ne!(pod_name("node", "a.b", "1.31.2"), pod_name("node", "a-b", "1.31.2"));
    }

    #[test]
    fn states_from_pod_status() {
        let pod = |status: Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
        };
        assert_eq!(
            state_of(&pod(
                json!({"phase": "Pending", "containerStatuses": [{"name": "upgrade", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]})
            )),
            State::Waiting(Some(("ImagePullBackOff".into(), "Back-off pulling image".into())))
        );
        assert_eq!(
            state_of(&pod(
                json!({"phase": "Failed", "containerStatuses": [{"name": "upgrade", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 100}}}]})
            )),
            State::Exited(100)
        );
        assert_eq!(state_of(&pod(json!({"phase": "Succeeded"}))), State::Exited(0));
        assert_eq!(state_of(&pod(json!({"phase": "Failed", "reason": "DeadlineExceeded"}))), State::Exited(-1));
        assert_eq!(state_of(&pod(json!({"phase": "Pending"}))), State::Waiting(None));
    }

    /// Runs the built-in script on a fake host: an `etc` with a pkgs.k8s.io repository file and
    /// package tools that record their arguments.
    fn run_script(manager: &str, role: &str, first: bool) -> Option<(String, String, i32)> {
        let which = |tool: &str| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let (sh, grep, sed) = (which("sh")?, which("grep")?, which("sed")?);
        let root =
            std::env::temp_dir().join(format!("k8s-upgrade-script-{}-{manager}-{role}-{first}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let (dir, file, line) = if manager == "apt" {
            (
                "etc/apt/sources.list.d",
                "kubernetes.list",
                "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n",
            )
        } else {
            (
                "etc/yum.repos.d",
                "kubernetes.repo",
                "[kubernetes]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\ngpgkey=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n",
            )
        };
        std::fs::create_dir_all(root.join(dir)).unwrap();
        std::fs::write(root.join(dir).join(file), line).unwrap();
        let record = root.join("record");
        let tools: Vec<&str> = if manager == "apt" { vec!["apt-get", "apt-mark"] } else { vec!["dnf"] };
        for tool in tools.into_iter().chain(["systemctl"]) {
            let path = bin.join(tool);
            std::fs::write(&path, format!("#!{sh}\necho \"{tool} $*\" >> {}\n", record.display())).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        let kubeadm = bin.join("kubeadm");
        std::fs::write(
            &kubeadm,
            format!(
                "#!{sh}\necho \"kubeadm $*\" >> {}\n[ \"$1\" = version ] && echo v1.31.2\nexit 0\n",
                record.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&kubeadm, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        for (name, target) in [("grep", &grep), ("sed", &sed)] {
            std::os::unix::fs::symlink(target, bin.join(name)).unwrap();
        }
        let o = std::process::Command::new(&sh)
            .args(["-c", SCRIPT, "k8s-upgrade-node"])
            .env_clear()
            .env("K8S_UPGRADE_TEST_ROOT", &root)
            .env("K8S_UPGRADE_TEST_PATH", &bin)
            .env("K8S_UPGRADE_VERSION", "1.31.2")
            .env("K8S_UPGRADE_ROLE", role)
            .env("K8S_UPGRADE_FIRST", first.to_string())
            .env("K8S_UPGRADE_NODE", "node-1; reboot")
            .output()
            .unwrap();
        let recorded = std::fs::read_to_string(&record).unwrap_or_default();
        let repo = std::fs::read_to_string(root.join(dir).join(file)).unwrap();
        let _ = std::fs::remove_dir_all(&root);
        assert!(o.status.success() || o.status.code().is_some(), "{o:?}");
        Some((recorded, repo, o.status.code().unwrap_or(-1)))
    }

    #[test]
    fn the_script_follows_kubeadms_procedure_on_an_apt_host() {
        let Some((recorded, repo, code)) = run_script("apt", "control-plane", true) else { return };
        assert_eq!(code, 0, "{recorded}");
        assert_eq!(
            recorded.lines().collect::<Vec<_>>(),
            vec![
                "apt-mark unhold kubeadm",
                "apt-get update -q",
                "apt-get install -y -q kubeadm=1.31.2-*",
                "apt-mark hold kubeadm",
                "kubeadm version -o short",
                "kubeadm upgrade plan v1.31.2",
                "kubeadm upgrade apply -y v1.31.2",
                "apt-mark unhold kubelet kubectl",
                "apt-get update -q",
                "apt-get install -y -q kubelet=1.31.2-* kubectl=1.31.2-*",
                "apt-mark hold kubelet kubectl",
                "systemctl daemon-reload",
                "systemctl restart kubelet",
            ]
        );
        assert!(repo.contains("https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /") && !repo.contains("v1.30"), "{repo}");
    }

    #[test]
    fn the_script_runs_kubeadm_upgrade_node_on_a_dnf_worker() {
        let Some((recorded, repo, code)) = run_script("dnf", "worker", false) else { return };
        assert_eq!(code, 0, "{recorded}");
        assert_eq!(
            recorded.lines().collect::<Vec<_>>(),
            vec![
                "dnf install -y kubeadm-1.31.2-* --disableexcludes=kubernetes",
                "kubeadm version -o short",
                "kubeadm upgrade node",
                "dnf install -y kubelet-1.31.2-* kubectl-1.31.2-* --disableexcludes=kubernetes",
                "systemctl daemon-reload",
                "systemctl restart kubelet",
            ]
        );
        assert_eq!(repo.matches("/v1.31/rpm/").count(), 2, "{repo}");
    }

    #[test]
    fn the_script_names_its_version_and_parses() {
        assert_eq!(Script::Builtin.id(), "k8s-upgrade node script v1");
        if std::process::Command::new("sh").arg("-c").arg("true").status().is_ok() {
            let status = std::process::Command::new("sh").arg("-n").arg("-c").arg(SCRIPT).status().unwrap();
            assert!(status.success(), "the node script does not parse");
        }
    }
}
