//! `k8s-upgrade rbac`: print the least-privilege roles for a job, generated from the same table
//! the preflights check (`kubeapi::permissions`), as YAML for `kubectl apply -f -`.

use clap::{Args, ValueEnum};

use super::args::CatalogArgs;
use super::{CliError, Exit, print_stdout};
use crate::kubeapi::permissions::{self, Subject};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RbacJob {
    /// Read-only: what `plan` and `inventory` read (no Secrets).
    Plan,
    /// What `apply` needs beyond `plan` (bind both roles to the operator).
    Apply,
    /// What `rehearse` reads beyond `plan`: Node events, for how long node restarts take.
    Rehearse,
    /// Reading Helm release Secrets, so `plan` can check Helm manifests for removed APIs.
    HelmReleases,
    /// Rewriting Helm releases: `helm-fix`, and `apply` for its Helm release steps (unless
    /// --release-command does them).
    HelmFix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JournalPlace {
    /// A file on the machine that runs apply.
    File,
    /// The ConfigMap kube-system/k8s-upgrade-journal.
    Cluster,
}

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Every rule carries a comment saying why it exists. Discovery, /version and /readyz are granted\nto every authenticated user by the default roles system:discovery and system:public-info-viewer.\n\nExamples:\n  k8s-upgrade rbac --for plan --group platform-team | kubectl apply -f -\n  k8s-upgrade rbac --for apply --service-account ops:upgrader | kubectl apply -f -\n  k8s-upgrade rbac --for apply --journal cluster --service-account kube-system:k8s-upgrade\n  k8s-upgrade rbac --for rehearse --group platform-team\n  k8s-upgrade rbac --for helm-releases --user alice@example.com\n  k8s-upgrade rbac --for helm-fix --user alice@example.com"
)]
pub struct RbacArgs {
    /// Which job the roles are for.
    #[arg(long = "for", value_enum, value_name = "JOB")]
    pub job: RbacJob,

    /// For `--for apply`: the upgrader apply will run (`sim` also patches add-on workloads;
    /// `kubeadm` runs node jobs in --node-job-namespace).
    #[arg(long, value_enum, default_value_t = super::apply::UpgraderKind::Manual)]
    pub upgrader: super::apply::UpgraderKind,

    /// For `--for apply --upgrader kubeadm`: the namespace node jobs run in.
    #[arg(long, value_name = "NAMESPACE", default_value = crate::exec::node_job::DEFAULT_NAMESPACE)]
    pub node_job_namespace: String,

    /// For `--for apply`: where apply keeps its journal; `cluster` adds the rules for its
    /// ConfigMap in kube-system (`--journal cluster`, and the default in a pod).
    #[arg(long, value_enum, default_value_t = JournalPlace::File)]
    pub journal: JournalPlace,

    /// Bind the roles to this user (repeatable).
    #[arg(long, value_name = "NAME")]
    pub user: Vec<String>,

    /// Bind the roles to this group (repeatable).
    #[arg(long, value_name = "NAME")]
    pub group: Vec<String>,

    /// Bind the roles to this ServiceAccount, as NAMESPACE:NAME (repeatable).
    #[arg(long, value_name = "NS:NAME")]
    pub service_account: Vec<String>,

    #[command(flatten)]
    pub catalog: CatalogArgs,
}

/// The role printed for `job`: its name and rules (`k8s-upgrade job` binds the same ones).
pub(crate) fn role(
    job: RbacJob,
    upgrader: super::apply::UpgraderKind,
    node_job_namespace: &str,
    journal: JournalPlace,
    catalog: &crate::catalog::Catalog,
) -> (&'static str, Vec<permissions::Rule>) {
    match job {
        RbacJob::Plan => ("k8s-upgrade-plan", permissions::plan_rules(catalog)),
        RbacJob::Apply => {
            let sim = upgrader == super::apply::UpgraderKind::Sim;
            let node_jobs = (upgrader == super::apply::UpgraderKind::Kubeadm).then_some(node_job_namespace);
            let mut rules = permissions::apply_rules_beyond_plan(catalog, sim, node_jobs);
            if journal == JournalPlace::Cluster {
                rules.extend(permissions::cluster_journal_rules());
            }
            ("k8s-upgrade-apply", rules)
        }
        RbacJob::Rehearse => ("k8s-upgrade-rehearse", permissions::rehearse_rules()),
        RbacJob::HelmReleases => ("k8s-upgrade-helm-releases", permissions::helm_rules()),
        RbacJob::HelmFix => ("k8s-upgrade-helm-fix", permissions::helm_fix_rules()),
    }
}

pub fn run(args: RbacArgs) -> Result<Exit, CliError> {
    let catalog = args.catalog.load()?;
    let (name, rules) = role(args.job, args.upgrader, &args.node_job_namespace, args.journal, &catalog);
    let mut subjects: Vec<Subject> = Vec::new();
    subjects.extend(args.user.iter().cloned().map(Subject::User));
    subjects.extend(args.group.iter().cloned().map(Subject::Group));
    for sa in &args.service_account {
        let (namespace, sa_name) = sa
            .split_once(':')
            .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
            .ok_or_else(|| CliError::usage(format!("--service-account {sa}: expected NAMESPACE:NAME")))?;
        subjects.push(Subject::ServiceAccount { namespace: namespace.into(), name: sa_name.into() });
    }
    let header = match args.job {
        RbacJob::Plan => "# k8s-upgrade plan: read-only. Bind it to whoever plans upgrades.\n",
        RbacJob::Apply => "# k8s-upgrade apply: what apply needs beyond the k8s-upgrade-plan role; bind both.\n",
        RbacJob::Rehearse => {
            "# k8s-upgrade rehearse: what rehearse reads beyond the k8s-upgrade-plan role (Node events: how long node restarts take); bind both.\n"
        }
        RbacJob::HelmReleases => {
            "# k8s-upgrade plan, Helm releases: lets plan read Helm release Secrets (their manifests only).\n# RBAC cannot grant one type of Secret, so this reads every Secret: grant it only where that is acceptable.\n"
        }
        RbacJob::HelmFix => {
            "# k8s-upgrade helm-fix, and apply's Helm release steps: rewrite a release as a new revision.\n# RBAC cannot grant one type of Secret, so this reads and writes every Secret: grant it only where that is acceptable (bind it with a RoleBinding in the releases' namespaces, say).\n"
        }
    };
    print_stdout(&format!("{header}{}", permissions::manifests(name, &rules, &subjects)))?;
    Ok(Exit::Success)
}
