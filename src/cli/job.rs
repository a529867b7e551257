//! `k8s-upgrade job`: the upgrade as a Kubernetes Job inside the target cluster, printed as YAML
//! for `kubectl apply -f -`: a ServiceAccount, the roles of `rbac --for plan` and `--for apply`
//! bound to it, and a batch/v1 Job whose pod runs `apply --yes` with the journal in the cluster,
//! so the upgrade carries on when the operator's laptop goes to sleep. This module also owns the
//! pod template and the apply command line that `fleet jobs` reuses, and reading back the pod's
//! own identity (the downward API) so the drain never evicts the pod running it.

use clap::Args;
use serde_json::{Value, json};

use super::apply::UpgraderKind;
use super::args::CatalogArgs;
use super::rbac::{JournalPlace, RbacJob, role};
use super::{CliError, Exit, print_stdout, render};
use crate::kubeapi::permissions::{Subject, manifests_bound_as};

/// The image a Job runs unless `--image` says otherwise; the tag follows the crate version, as
/// the Dockerfile's labels and the README do.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/k8s-upgrade/k8s-upgrade:v", env!("CARGO_PKG_VERSION"));

/// Downward-API variables the Job sets: the pod's namespace and name. Ours, not the common
/// `POD_NAME`, so a variable left in an operator's shell is never taken for a pod identity.
pub const POD_NAMESPACE_ENV: &str = "K8S_UPGRADE_POD_NAMESPACE";
pub const POD_NAME_ENV: &str = "K8S_UPGRADE_POD_NAME";

/// Where the pod keeps what it writes (HOME and state): an emptyDir, the root filesystem being
/// read-only.
const STATE_DIR: &str = "/var/lib/k8s-upgrade";
/// The distroless `nonroot` user and group, which the Dockerfile runs as too.
const NONROOT: i64 = 65532;
/// Retries of a failed pod. Each retry resumes from the journal, so a few cover a node that went
/// away under the pod; more would repeat a failure that is not going away.
const BACKOFF_LIMIT: i64 = 3;
/// Exit codes after which retrying cannot help (docs/exit-codes.md): usage, blockers, and the
/// end of the maintenance window. The Job fails at once instead of spending its retries.
const FINAL_EXIT_CODES: [i64; 3] = [2, 3, 4];

/// The pod this process runs in, when a Job started it (both downward-API variables set and
/// well-formed); the drain leaves that pod alone.
pub(crate) fn own_pod() -> Option<(String, String)> {
    let ns = std::env::var(POD_NAMESPACE_ENV).ok()?;
    let name = std::env::var(POD_NAME_ENV).ok()?;
    (is_dns_label(&ns) && is_dns_subdomain(&name)).then_some((ns, name))
}

/// A DNS-1123 label: what namespaces and (here) Job and ServiceAccount names must be.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Checks a name flag: a DNS-1123 label, or exit 2 naming the flag and the value.
pub(crate) fn dns_label_flag(flag: &str, value: &str) -> Result<(), CliError> {
    if is_dns_label(value) {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "{flag} '{}': not a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)",
            value.escape_debug()
        )))
    }
}

/// The flags of `apply` a Job passes through to the pod's command line.
#[derive(Debug, Clone, Args)]
pub struct ApplyPassArgs {
    /// What upgrades a node from inside the pod: manual (wait for each node to report the
    /// target), kubeadm (node jobs), or sim (the built-in simulator's).
    #[arg(long, value_enum, default_value_t = UpgraderKind::Manual)]
    pub upgrader: UpgraderKind,

    /// Distribution (default: from the cluster).
    #[arg(long, value_name = "DISTRO")]
    pub distro: Option<String>,

    /// The cluster is on its provider's long-term-support plan (see `apply --lts`).
    #[arg(long)]
    pub lts: bool,

    /// Nodes of each pool upgraded at once after the canary: a count or a percentage.
    #[arg(long, value_name = "N|P%", value_parser = pass_max_unavailable)]
    pub max_unavailable: Option<String>,

    /// At most this many nodes of the whole cluster upgraded at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_parallel: Option<u32>,

    /// Give up on a node's drain after this long.
    #[arg(long, value_name = "DURATION", value_parser = pass_duration)]
    pub drain_timeout: Option<String>,

    /// Wait this long for an upgraded node to come back Ready at its target.
    #[arg(long, value_name = "DURATION", value_parser = pass_duration)]
    pub node_timeout: Option<String>,

    /// Delete pods that use emptyDir (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,

    /// Delete pods that no controller manages (they are gone for good).
    #[arg(long)]
    pub force: bool,

    /// Evict only the pods matching this label selector.
    #[arg(long, value_name = "SELECTOR")]
    pub pod_selector: Option<String>,

    /// Do not start a node that cannot finish before this time (RFC 3339). The pod then exits 4
    /// and the Job fails without retrying; a new Job for the next window resumes the run.
    #[arg(long, value_name = "TIME")]
    pub window_end: Option<String>,

    /// With --upgrader kubeadm: the node job's image.
    #[arg(long, value_name = "IMAGE")]
    pub node_job_image: Option<String>,

    /// With --upgrader kubeadm: where node jobs run (its Pod Security level must be privileged).
    #[arg(long, value_name = "NAMESPACE", default_value = crate::exec::node_job::DEFAULT_NAMESPACE)]
    pub node_job_namespace: String,
}

fn pass_max_unavailable(s: &str) -> Result<String, String> {
    s.parse::<crate::exec::rollout::MaxUnavailable>().map(|_| s.trim().to_string())
}

fn pass_duration(s: &str) -> Result<String, String> {
    super::apply::parse_duration(s).map(|_| s.trim().to_string())
}

fn upgrader_name(u: UpgraderKind) -> String {
    clap::ValueEnum::to_possible_value(&u).map(|v| v.get_name().to_string()).unwrap_or_default()
}

/// An image reference as a pod spec may carry it: no whitespace or control characters, bounded.
pub(crate) fn check_image(flag: &str, image: &str) -> Result<(), CliError> {
    if image.is_empty() || image.len() > 512 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CliError::usage(format!(
            "{flag} '{}': not an image reference (e.g. registry.example.com/k8s-upgrade:v1)",
            image.escape_debug()
        )));
    }
    Ok(())
}

impl ApplyPassArgs {
    /// Refuses what cannot work inside the pod, naming the value (exit 2).
    pub fn validate(&self) -> Result<(), CliError> {
        match self.upgrader {
            UpgraderKind::Manual | UpgraderKind::Kubeadm | UpgraderKind::Sim => {}
            other => {
                let name = upgrader_name(other);
                let needs = match other {
                    UpgraderKind::Command => "an upgrade command",
                    UpgraderKind::Eks => "the aws CLI",
                    UpgraderKind::Gke => "gcloud",
                    _ => "the az CLI",
                };
                return Err(CliError::usage(format!(
                    "--upgrader {name}: needs {needs}, which the image does not carry; run `k8s-upgrade apply` where it is installed, or use manual or kubeadm in a Job"
                )));
            }
        }
        if let Some(d) = &self.distro
            && (d.is_empty()
                || d.len() > 32
                || !d.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        {
            return Err(CliError::usage(format!(
                "--distro '{}': not a distro name (generic, kubeadm, eks, gke, aks, k3s, rke2)",
                d.escape_debug()
            )));
        }
        if let Some(s) = &self.pod_selector {
            crate::labels::LabelSelector::parse(s)
                .map_err(|e| CliError::usage(format!("--pod-selector '{}': {e}", s.escape_debug())))?;
        }
        if let Some(t) = &self.window_end {
            t.parse::<k8s_openapi::jiff::Timestamp>().map_err(|e| {
                CliError::usage(format!(
                    "--window-end '{}': {e} (use RFC 3339, e.g. 2026-11-27T04:00:00Z)",
                    t.escape_debug()
                ))
            })?;
        }
        if let Some(image) = &self.node_job_image {
            check_image("--node-job-image", image)?;
        }
        dns_label_flag("--node-job-namespace", &self.node_job_namespace)
    }

    /// The pod's command line after the image's entrypoint: the `apply` of the cluster-journal
    /// contract (`--journal cluster --resume-or-start`, so a retried pod continues the run),
    /// then the passed-through flags. Each value is its own argument: no shell ever sees them.
    pub fn argv(&self, to: &str) -> Vec<String> {
        let mut out: Vec<String> = ["apply", "--to", to, "--yes", "--journal", "cluster", "--resume-or-start"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut flag = |name: &str, value: Option<&str>| {
            out.push(name.to_string());
            if let Some(v) = value {
                out.push(v.to_string());
            }
        };
        flag("--upgrader", Some(&upgrader_name(self.upgrader)));
        if let Some(d) = &self.distro {
            flag("--distro", Some(d));
        }
        if self.lts {
            flag("--lts", None);
        }
        if let Some(v) = &self.max_unavailable {
            flag("--max-unavailable", Some(v));
        }
        if let Some(n) = self.max_parallel {
            flag("--max-parallel", Some(&n.to_string()));
        }
        if let Some(v) = &self.drain_timeout {
            flag("--drain-timeout", Some(v));
        }
        if let Some(v) = &self.node_timeout {
            flag("--node-timeout", Some(v));
        }
        if self.delete_emptydir_data {
            flag("--delete-emptydir-data", None);
        }
        if self.force {
            flag("--force", None);
        }
        if let Some(v) = &self.pod_selector {
            flag("--pod-selector", Some(v));
        }
        if let Some(v) = &self.window_end {
            flag("--window-end", Some(v));
        }
        if self.upgrader == UpgraderKind::Kubeadm {
            if let Some(v) = &self.node_job_image {
                flag("--node-job-image", Some(v));
            }
            flag("--node-job-namespace", Some(&self.node_job_namespace));
        }
        out
    }
}

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "The pod runs `k8s-upgrade apply --to V --yes --journal cluster --resume-or-start`: the journal lives\nin the ConfigMap k8s-upgrade-journal in kube-system, so a retried pod continues the run. Exit codes\n2, 3 and 4 (usage, blockers, window) fail the Job at once; other failures are retried up to 3 times,\nand a pod lost with its node is not counted. See docs/in-cluster.md.\n\nExamples:\n  k8s-upgrade job --to 1.33 --upgrader kubeadm | kubectl apply -f -\n  kubectl -n kube-system logs -f job/k8s-upgrade"
)]
pub struct JobArgs {
    /// Version to reach, or `latest`.
    #[arg(long, value_name = "VERSION|latest")]
    pub to: String,

    /// The image the Job runs.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_IMAGE, env = "K8S_UPGRADE_IMAGE")]
    pub image: String,

    /// Namespace of the Job and its ServiceAccount.
    #[arg(long, short = 'n', value_name = "NS", default_value = "kube-system")]
    pub namespace: String,

    /// Name of the Job and its ServiceAccount.
    #[arg(long, value_name = "NAME", default_value = "k8s-upgrade")]
    pub name: String,

    #[command(flatten)]
    pub apply: ApplyPassArgs,

    #[command(flatten)]
    pub catalog: CatalogArgs,
}

/// What varies between the Jobs this tool prints.
pub(crate) struct JobSpec<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub image: &'a str,
    pub args: Vec<String>,
    /// `Some`: the pod talks to its own cluster with this ServiceAccount (and knows its own
    /// identity, so the drain leaves it alone). `None`: the pod reaches another cluster through
    /// a kubeconfig and needs no token of its own cluster.
    pub service_account: Option<&'a str>,
    /// A Secret mounted read-only at `mount` (a kubeconfig).
    pub secret: Option<(&'a str, &'a str)>,
    pub annotations: Value,
}

fn labels(name: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "k8s-upgrade",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": env!("CARGO_PKG_VERSION"),
        "app.kubernetes.io/component": "upgrade",
    })
}

/// The batch/v1 Job. Why each setting:
/// - one pod at a time (parallelism and completions 1): two applies would fight over the lock;
/// - `backoffLimit` 3 and a pod failure policy: exit codes 2, 3 and 4 end the Job at once, a
///   pod disrupted with its node (`DisruptionTarget`) is not counted, other failures are
///   retried and resume from the journal;
/// - no `activeDeadlineSeconds`: killing the pod at a deadline could leave a node drained
///   mid-roll; `--window-end` stops at a safe point instead, and every wait inside has its own
///   timeout;
/// - no `ttlSecondsAfterFinished`: the finished Job and its pod's log are the record of the run;
/// - `restartPolicy: Never`: a failure is a new pod the Job counts (and the failure policy
///   requires it);
/// - scheduled preferably on a control-plane node (tolerating its taints): those are few and
///   usually upgraded in place, so the pod rarely has to move;
/// - Pod Security `restricted`: non-root, read-only root, no capabilities, RuntimeDefault
///   seccomp, with an emptyDir for HOME and state.
pub(crate) fn job_manifest(spec: &JobSpec) -> Value {
    let mut env = vec![json!({"name": "HOME", "value": STATE_DIR}), json!({"name": "NO_COLOR", "value": "1"})];
    if spec.service_account.is_some() {
        env.push(json!({"name": POD_NAMESPACE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}));
        env.push(json!({"name": POD_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}));
    }
    let mut mounts = vec![json!({"name": "state", "mountPath": STATE_DIR})];
    let mut volumes = vec![json!({"name": "state", "emptyDir": {"sizeLimit": "64Mi"}})];
    if let Some((secret, mount)) = spec.secret {
        mounts.push(json!({"name": "kubeconfig", "mountPath": mount, "readOnly": true}));
        volumes.push(json!({"name": "kubeconfig", "secret": {"secretName": secret, "defaultMode": 0o440}}));
    }
    let mut pod = json!({
        "restartPolicy": "Never",
        // Time to stop at a safe point on SIGTERM (as on Ctrl-C) before the kubelet kills it.
        "terminationGracePeriodSeconds": 120,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": NONROOT,
            "runAsGroup": NONROOT,
            "fsGroup": NONROOT,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "preference": {"matchExpressions": [{"key": crate::k8s::annotations::ROLE_CONTROL_PLANE, "operator": "Exists"}]},
        }]}},
        "tolerations": [
            {"key": crate::k8s::annotations::ROLE_CONTROL_PLANE, "operator": "Exists", "effect": "NoSchedule"},
            {"key": crate::k8s::annotations::ROLE_MASTER, "operator": "Exists", "effect": "NoSchedule"},
        ],
        "containers": [{
            "name": "apply",
            "image": spec.image,
            "imagePullPolicy": "IfNotPresent",
            "args": spec.args,
            "env": env,
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"},
            },
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    });
    match spec.service_account {
        Some(sa) => pod["serviceAccountName"] = json!(sa),
        None => pod["automountServiceAccountToken"] = json!(false),
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": labels(spec.name),
            "annotations": spec.annotations,
        },
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": BACKOFF_LIMIT,
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": "apply", "operator": "In", "values": FINAL_EXIT_CODES}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]},
            "template": {"metadata": {"labels": labels(spec.name)}, "spec": pod},
        },
    })
}

/// YAML documents joined for `kubectl apply -f -`.
pub(crate) fn documents(docs: &[Value]) -> Result<String, CliError> {
    let mut out = Vec::new();
    for d in docs {
        out.push(render::yaml(d)?);
    }
    Ok(out.join("---\n"))
}

pub fn run(args: JobArgs) -> Result<Exit, CliError> {
    super::plan::parse_target(&args.to)?;
    dns_label_flag("--namespace", &args.namespace)?;
    dns_label_flag("--name", &args.name)?;
    check_image("--image", &args.image)?;
    args.apply.validate()?;
    let catalog = args.catalog.load()?;
    print_stdout(&render_job(&args, &catalog)?)?;
    Ok(Exit::Success)
}

fn render_job(args: &JobArgs, catalog: &crate::catalog::Catalog) -> Result<String, CliError> {
    let subject = Subject::ServiceAccount { namespace: args.namespace.clone(), name: args.name.clone() };
    let account = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": args.name, "namespace": args.namespace, "labels": labels(&args.name)},
    });
    let mut text = format!(
        "# k8s-upgrade {}: the upgrade to {} as a Job in {}; apply with `kubectl apply -f -`,\n# follow with `kubectl -n {} logs -f job/{}`.\n",
        env!("CARGO_PKG_VERSION"),
        args.to,
        args.namespace,
        args.namespace,
        args.name
    );
    text.push_str(&documents(&[account])?);
    for job in [RbacJob::Plan, RbacJob::Apply] {
        // The Job runs apply with its journal in the cluster: its roles carry the ConfigMap's rules.
        let (role_name, rules) =
            role(job, args.apply.upgrader, &args.apply.node_job_namespace, JournalPlace::Cluster, catalog);
        // Bindings of their own, so an operator's `rbac --for plan` binding keeps its subjects.
        let binding = format!("{role_name}-{}-{}", args.namespace, args.name);
        text.push_str("---\n");
        text.push_str(&manifests_bound_as(role_name, &binding, &rules, std::slice::from_ref(&subject)));
    }
    let job = job_manifest(&JobSpec {
        namespace: &args.namespace,
        name: &args.name,
        image: &args.image,
        args: args.apply.argv(&args.to),
        service_account: Some(&args.name),
        secret: None,
        annotations: json!({"k8s-upgrade.dev/target": args.to}),
    });
    text.push_str("---\n");
    text.push_str(&documents(&[job])?);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(extra: &[&str]) -> JobArgs {
        let mut argv = vec!["k8s-upgrade", "job", "--to", "1.33"];
        argv.extend_from_slice(extra);
        match super::super::Cli::try_parse_from(argv).unwrap().command {
            super::super::Command::Job(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    /// The pod's command line is one this build's `apply` accepts (the flags of the
    /// cluster-journal contract aside, which arrive with that feature).
    #[test]
    fn the_pod_command_line_parses_as_apply() {
        let args = parse(&[
            "--upgrader",
            "kubeadm",
            "--max-unavailable",
            "25%",
            "--drain-timeout",
            "20m",
            "--pod-selector",
            "app!=batch",
            "--window-end",
            "2026-11-27T04:00:00Z",
            "--delete-emptydir-data",
            "--max-parallel",
            "2",
        ]);
        args.apply.validate().unwrap();
        let argv = args.apply.argv("1.33");
        assert_eq!(argv[..7], ["apply", "--to", "1.33", "--yes", "--journal", "cluster", "--resume-or-start"]);
        let mut line = vec!["k8s-upgrade".to_string()];
        line.extend(argv.into_iter().filter(|a| a != "--resume-or-start"));
        let parsed = super::super::Cli::try_parse_from(&line).unwrap();
        let super::super::Command::Apply(apply) = parsed.command else { panic!("not apply") };
        assert_eq!(apply.upgrader, Some(UpgraderKind::Kubeadm));
        assert!(apply.yes && apply.delete_emptydir_data);
        assert_eq!(apply.pod_selector.as_deref(), Some("app!=batch"));
        assert_eq!(apply.max_parallel, Some(2));
    }

    #[test]
    fn values_that_cannot_work_in_a_pod_are_refused_by_name() {
        for (extra, needle) in [
            (&["--upgrader", "eks"][..], "--upgrader eks"),
            (&["--upgrader", "command"][..], "--upgrader command"),
            (&["--window-end", "tomorrow"][..], "--window-end 'tomorrow'"),
            (&["--pod-selector", "a in (b"][..], "--pod-selector 'a in (b'"),
            (&["--node-job-namespace", "Kube_System"][..], "--node-job-namespace 'Kube_System'"),
            (&["--distro", "Kube adm"][..], "--distro 'Kube adm'"),
        ] {
            let e = parse(extra).apply.validate().unwrap_err();
            assert_eq!(e.exit, Exit::Usage, "{extra:?}");
            assert!(e.message.contains(needle), "{extra:?}: {}", e.message);
        }
        assert!(is_dns_label("kube-system") && is_dns_label("a") && is_dns_label("a1-b2"));
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn the_job_is_one_pod_retried_a_little_and_hardened() {
        let catalog = crate::catalog::Catalog::embedded().unwrap();
        let text = render_job(&parse(&["--namespace", "ops", "--name", "upgrade-1"]), &catalog).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "Job"
            ]
        );
        let job = docs.last().unwrap();
        assert_eq!(job["spec"]["backoffLimit"], 3);
        assert_eq!(job["spec"]["parallelism"], 1);
        assert!(
            job["spec"].get("ttlSecondsAfterFinished").is_none() && job["spec"].get("activeDeadlineSeconds").is_none()
        );
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["serviceAccountName"], "upgrade-1");
        let c = &pod["containers"][0];
        assert_eq!(c["image"], DEFAULT_IMAGE);
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        let env: Vec<&str> = c["env"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
        assert!(env.contains(&POD_NAME_ENV) && env.contains(&POD_NAMESPACE_ENV));
        assert!(crate::sim::pod_security_violations("restricted", &json!({"spec": pod})).is_empty());
        // Bindings named for this ServiceAccount, never the operator's `k8s-upgrade-plan`.
        let bindings: Vec<&str> = docs
            .iter()
            .filter(|d| d["kind"].as_str().unwrap().ends_with("Binding"))
            .map(|d| d["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            bindings,
            ["k8s-upgrade-plan-ops-upgrade-1", "k8s-upgrade-apply-ops-upgrade-1", "k8s-upgrade-apply-ops-upgrade-1"]
        );
        assert_eq!(docs[2]["roleRef"]["name"], "k8s-upgrade-plan");
        assert_eq!(docs[2]["subjects"][0]["namespace"], "ops");
    }

    /// The default image, the Dockerfile's labels and the docs name the same tag; a version bump
    /// that forgets one of them fails here.
    #[test]
    fn the_image_tag_is_the_same_everywhere() {
        let root = env!("CARGO_MANIFEST_DIR");
        let read = |f: &str| std::fs::read_to_string(format!("{root}/{f}")).unwrap();
        let dockerfile = read("Dockerfile");
        assert!(dockerfile.contains(&format!("ARG VERSION={}\n", env!("CARGO_PKG_VERSION"))), "Dockerfile ARG VERSION");
        assert!(dockerfile.contains("ghcr.io/k8s-upgrade/k8s-upgrade:v${VERSION}"));
        assert!(dockerfile.contains(&format!("docker build -t {DEFAULT_IMAGE} .")));
        assert!(read("README.md").contains(DEFAULT_IMAGE));
        assert!(read("docs/in-cluster.md").contains(&format!("docker build -t {DEFAULT_IMAGE} .")));
    }
}
