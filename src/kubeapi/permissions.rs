//! What `plan` and `apply` are allowed to ask of a cluster, written once. The same table renders
//! the ClusterRoles `k8s-upgrade rbac` prints and drives the SelfSubjectAccessReview preflights,
//! so the roles we ship and the checks we run can never drift apart. Every rule says why it
//! exists. Discovery, `/version` and `/readyz` are not here: every cluster grants them to all
//! authenticated users through the default `system:discovery` and `system:public-info-viewer`
//! roles.

use std::collections::BTreeSet;

use futures::StreamExt;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::catalog::Catalog;

/// The lease that serialises applies (see `exec::lock`).
pub const LOCK_LEASE: &str = "k8s-upgrade-lock";
pub const LOCK_NAMESPACE: &str = "kube-system";

/// One RBAC rule with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `None`: a ClusterRole rule; `Some(ns)`: a Role rule in that namespace.
    pub namespace: Option<String>,
    pub verbs: Vec<&'static str>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<&'static str>,
    pub non_resource_urls: Vec<&'static str>,
    pub why: &'static str,
}

impl Rule {
    fn resource(verbs: &[&'static str], group: &str, resources: &[&str], why: &'static str) -> Rule {
        Rule {
            namespace: None,
            verbs: verbs.to_vec(),
            api_groups: vec![group.to_string()],
            resources: resources.iter().map(|r| r.to_string()).collect(),
            resource_names: vec![],
            non_resource_urls: vec![],
            why,
        }
    }

    /// The access reviews that prove this rule is held: one per verb × group × resource (×
    /// name), or per verb × URL.
    pub fn checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        for verb in &self.verbs {
            for url in &self.non_resource_urls {
                out.push(Check::NonResource { verb: verb.to_string(), path: url.to_string() });
            }
            for group in &self.api_groups {
                for resource in &self.resources {
                    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
                    let names: Vec<&str> =
                        if self.resource_names.is_empty() { vec![""] } else { self.resource_names.clone() };
                    for name in names {
                        out.push(Check::Resource {
                            verb: verb.to_string(),
                            group: group.clone(),
                            resource: resource.to_string(),
                            subresource: subresource.to_string(),
                            namespace: self.namespace.clone().unwrap_or_default(),
                            name: name.to_string(),
                        });
                    }
                }
            }
        }
        out
    }
}

/// One permission, as an access review asks it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    Resource { verb: String, group: String, resource: String, subresource: String, namespace: String, name: String },
    NonResource { verb: String, path: String },
}

impl Check {
    /// `verb` on `resource` (optionally `resource/subresource`) of `group`, in every namespace.
    pub fn cluster_wide(verb: &str, group: &str, resource: &str) -> Check {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Check::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: String::new(),
            name: String::new(),
        }
    }
}

impl std::fmt::Display for Check {
    /// `list secrets (all namespaces)`, `create pods/eviction (all namespaces)`,
    /// `update leases.coordination.k8s.io "k8s-upgrade-lock" in kube-system`, `get /metrics`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::NonResource { verb, path } => write!(f, "{verb} {path}"),
            Check::Resource { verb, group, resource, subresource, namespace, name } => {
                write!(f, "{verb} {resource}")?;
                if !subresource.is_empty() {
                    write!(f, "/{subresource}")?;
                }
                if !group.is_empty() {
                    write!(f, ".{group}")?;
                }
                if !name.is_empty() {
                    write!(f, " \"{name}\"")?;
                }
                if namespace.is_empty() { write!(f, " (all namespaces)") } else { write!(f, " in {namespace}") }
            }
        }
    }
}

/// Reads of `plan`. Workloads, budgets and the catalog's deprecated APIs share one rule: RBAC
/// rules are a product of groups and resources, and the deprecated APIs span `apps` and `policy`
/// too, so separate rules would overlap and one of them would never be needed.
pub fn plan_rules(catalog: &Catalog) -> Vec<Rule> {
    let (mut groups, mut resources) = deprecated_reads(catalog);
    groups.extend(["apps".to_string(), "policy".to_string()]);
    resources
        .extend(["deployments", "replicasets", "statefulsets", "daemonsets", "poddisruptionbudgets"].map(String::from));
    vec![
        Rule::resource(
            &["list"],
            "",
            &["nodes"],
            "kubelet versions, roles, taints and OS images of every node: skew, node rolls and drain capacity",
        ),
        Rule::resource(
            &["list"],
            "",
            &["pods"],
            "control-plane static pods (component versions), add-on images, and every pod a drain would evict",
        ),
        Rule {
            namespace: None,
            verbs: vec!["list"],
            api_groups: groups.into_iter().collect(),
            resources: resources.into_iter().collect(),
            resource_names: vec![],
            non_resource_urls: vec![],
            why: "workloads (pod owners, add-on versions), disruption budgets that would stall a drain, and objects still stored at API versions a hop removes (the catalog's deprecated APIs, read through their replacement where it is served)",
        },
        Rule {
            namespace: None,
            verbs: vec!["get"],
            api_groups: vec![],
            resources: vec![],
            resource_names: vec![],
            non_resource_urls: vec!["/metrics"],
            why: "the apiserver's apiserver_requested_deprecated_apis metric: clients still calling removed APIs",
        },
    ]
}

/// The lists a run makes of the plan role's resources (its watches start with them).
pub fn run_reads() -> Vec<Check> {
    [("", "nodes"), ("", "pods"), ("apps", "deployments"), ("apps", "statefulsets"), ("policy", "poddisruptionbudgets")]
        .iter()
        .map(|(group, resource)| Check::cluster_wide("list", group, resource))
        .collect()
}

/// Groups and resources the collector lists for the catalog's deprecated APIs.
pub fn deprecated_reads(catalog: &Catalog) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut groups = BTreeSet::new();
    let mut resources = BTreeSet::new();
    for api in &catalog.apis.apis {
        groups.insert(api.group.clone());
        if let Some(r) = &api.replacement {
            groups.insert(r.group.clone());
        }
        resources.insert(api.resource.clone());
    }
    (groups, resources)
}

/// What `rehearse` reads beyond `plan`: the Node events, for how long the cluster's recent node
/// restarts took. Kept apart so the plan role stays what `plan` reads.
pub fn rehearse_rules() -> Vec<Rule> {
    vec![Rule::resource(
        &["list"],
        "",
        &["events"],
        "Node events (NodeNotReady, Starting, Rebooted, NodeReady): how long the cluster's recent node restarts took, the rehearsal's node upgrade time",
    )]
}

/// Helm v3 keeps each release in a Secret of type `helm.sh/release.v1`; there is no RBAC rule
/// for one type of Secret, so this grants reading all of them and is kept apart.
pub fn helm_rules() -> Vec<Rule> {
    vec![Rule::resource(
        &["list"],
        "",
        &["secrets"],
        "Helm release manifests (Secrets of type helm.sh/release.v1, owner=helm), checked for removed APIs; values are never read out",
    )]
}

/// Rewriting a Helm release (`helm-fix`, and `apply` for its Helm release steps unless
/// `--release-command` does them): read the release's revisions, create the new one and mark
/// the old one superseded. Kept apart for the same reason as [`helm_rules`]; cluster-wide here,
/// a Role in the releases' namespaces is enough.
pub fn helm_fix_rules() -> Vec<Rule> {
    vec![
        Rule::resource(
            &["list"],
            "",
            &["secrets"],
            "the revisions of the release being rewritten (Secrets labelled owner=helm,name=RELEASE); values are never printed",
        ),
        Rule::resource(
            &["create", "update"],
            "",
            &["secrets"],
            "write the rewritten release as a new revision (sh.helm.release.v1.RELEASE.vN+1) and mark the previous one superseded, as Helm does",
        ),
    ]
}

/// The access reviews for rewriting Helm releases in `namespaces`.
pub fn helm_fix_checks<'a>(namespaces: impl IntoIterator<Item = &'a str>) -> Vec<Check> {
    let mut out = Vec::new();
    for ns in namespaces {
        for rule in helm_fix_rules() {
            for mut check in rule.checks() {
                if let Check::Resource { namespace, .. } = &mut check {
                    *namespace = ns.to_string();
                }
                out.push(check);
            }
        }
    }
    out
}

/// What `apply` needs beyond `plan`. `sim_upgrader`: the built-in simulator's upgrader, which
/// also patches add-on workloads; `node_jobs`: the namespace the `kubeadm` upgrader runs its
/// node jobs in.
pub fn apply_rules(sim_upgrader: bool, node_jobs: Option<&str>) -> Vec<Rule> {
    let mut rules = vec![
        Rule::resource(
            &["get", "watch", "patch"],
            "",
            &["nodes"],
            "watch nodes come back Ready at the target; cordon, uncordon and record progress in k8s-upgrade.dev/ annotations",
        ),
        Rule::resource(&["watch"], "", &["pods"], "see evicted pods go and replacements become ready, without polling"),
        Rule::resource(
            &["create"],
            "",
            &["pods/eviction"],
            "drain through the Eviction API, so every PodDisruptionBudget is honoured",
        ),
        Rule::resource(
            &["watch"],
            "apps",
            &["deployments", "statefulsets"],
            "health gates: workloads back at their ready replicas between nodes",
        ),
        Rule::resource(
            &["list", "watch"],
            "storage.k8s.io",
            &["volumeattachments"],
            "after a drain, wait until the volumes of the evicted pods have detached from the node",
        ),
        Rule::resource(
            &["list"],
            "",
            &["persistentvolumes"],
            "which attached volumes belong to pods that stay on a drained node (their claims), so only the others are waited for",
        ),
        Rule::resource(
            &["watch"],
            "policy",
            &["poddisruptionbudgets"],
            "retry an eviction as soon as its budget allows a disruption again",
        ),
        Rule {
            namespace: Some(LOCK_NAMESPACE.into()),
            ..Rule::resource(
                &["create"],
                "coordination.k8s.io",
                &["leases"],
                "take the cluster lock, so two applies never run at once (create cannot be limited to one name)",
            )
        },
        Rule {
            namespace: Some(LOCK_NAMESPACE.into()),
            resource_names: vec![LOCK_LEASE],
            ..Rule::resource(
                &["get", "update", "patch", "delete"],
                "coordination.k8s.io",
                &["leases"],
                "read, renew and release the cluster lock, and nothing but it",
            )
        },
    ];
    if sim_upgrader {
        rules.push(Rule::resource(
            &["get", "patch"],
            "apps",
            &["deployments", "daemonsets", "statefulsets"],
            "the simulator's upgrader moves add-on images to their new version",
        ));
    }
    if let Some(ns) = node_jobs {
        rules.push(Rule {
            namespace: Some(ns.to_string()),
            ..Rule::resource(
                &["create", "get", "delete"],
                "",
                &["pods"],
                "the kubeadm upgrader: start each node's upgrade job (and the preflight's probe), follow it, and remove it once it succeeded",
            )
        });
        rules.push(Rule {
            namespace: Some(ns.to_string()),
            ..Rule::resource(
                &["get"],
                "",
                &["pods/log"],
                "the kubeadm upgrader: stream each node job's log into the journal",
            )
        });
    }
    rules
}

/// The journal's ConfigMap (see `exec::store`), name and namespace.
pub const JOURNAL_CONFIGMAP: &str = "k8s-upgrade-journal";

/// What `apply --journal cluster` needs besides [`apply_rules`]: its journal's ConfigMap next to
/// the lock, and nothing else of kube-system's ConfigMaps (writes replace it with the version
/// last read, so neither `patch` nor `list` is needed).
pub fn cluster_journal_rules() -> Vec<Rule> {
    vec![
        Rule {
            namespace: Some(LOCK_NAMESPACE.into()),
            ..Rule::resource(
                &["create"],
                "",
                &["configmaps"],
                "--journal cluster: create the run's journal (create cannot be limited to one name)",
            )
        },
        Rule {
            namespace: Some(LOCK_NAMESPACE.into()),
            resource_names: vec![JOURNAL_CONFIGMAP],
            ..Rule::resource(
                &["get", "update"],
                "",
                &["configmaps"],
                "--journal cluster: read the journal to resume it from any machine, and write it at every phase, and nothing but it",
            )
        },
    ]
}

/// The apply role as printed: [`apply_rules`] without the verbs the plan role already grants
/// (the two are bound together, and a duplicate would be a rule nobody could prove needed). The
/// catalog decides: listing VolumeAttachments, say, is in the plan role while the catalog lists
/// a removed `storage.k8s.io` version of them, and then apply adds only the watch.
pub fn apply_rules_beyond_plan(catalog: &Catalog, sim_upgrader: bool, node_jobs: Option<&str>) -> Vec<Rule> {
    let granted: BTreeSet<Check> = plan_rules(catalog).iter().flat_map(Rule::checks).collect();
    apply_rules(sim_upgrader, node_jobs)
        .into_iter()
        .filter_map(|rule| {
            let verbs: Vec<&'static str> = rule
                .verbs
                .iter()
                .copied()
                .filter(|verb| {
                    let alone = Rule { verbs: vec![*verb], ..rule.clone() };
                    !alone.checks().iter().all(|c| granted.contains(c))
                })
                .collect();
            (!verbs.is_empty()).then_some(Rule { verbs, ..rule })
        })
        .collect()
}

/// A subject the printed bindings name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
    ServiceAccount { namespace: String, name: String },
}

fn yaml_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| serde_json::Value::String(s.clone()).to_string()).collect::<Vec<_>>().join(", ")
    )
}

fn rule_yaml(r: &Rule) -> String {
    let mut out =
        format!("# {}\n- verbs: {}\n", r.why, yaml_list(&r.verbs.iter().map(|v| v.to_string()).collect::<Vec<_>>()));
    if !r.non_resource_urls.is_empty() {
        out.push_str(&format!(
            "  nonResourceURLs: {}\n",
            yaml_list(&r.non_resource_urls.iter().map(|v| v.to_string()).collect::<Vec<_>>())
        ));
    } else {
        out.push_str(&format!("  apiGroups: {}\n  resources: {}\n", yaml_list(&r.api_groups), yaml_list(&r.resources)));
        if !r.resource_names.is_empty() {
            out.push_str(&format!(
                "  resourceNames: {}\n",
                yaml_list(&r.resource_names.iter().map(|v| v.to_string()).collect::<Vec<_>>())
            ));
        }
    }
    out
}

fn subjects_yaml(subjects: &[Subject]) -> String {
    let mut out = String::from("subjects:\n");
    for s in subjects {
        let q = |v: &str| serde_json::Value::String(v.to_string()).to_string();
        match s {
            Subject::User(n) => {
                out.push_str(&format!("- kind: User\n  apiGroup: rbac.authorization.k8s.io\n  name: {}\n", q(n)))
            }
            Subject::Group(n) => {
                out.push_str(&format!("- kind: Group\n  apiGroup: rbac.authorization.k8s.io\n  name: {}\n", q(n)))
            }
            Subject::ServiceAccount { namespace, name } => {
                out.push_str(&format!("- kind: ServiceAccount\n  namespace: {}\n  name: {}\n", q(namespace), q(name)))
            }
        }
    }
    out
}

/// The objects granting `rules`, as multi-document YAML for `kubectl apply -f -`: a ClusterRole
/// named `name` for the cluster-wide rules, a Role of the same name in each namespace that has
/// rules, and (when `subjects` is not empty) a binding for each.
pub fn manifests(name: &str, rules: &[Rule], subjects: &[Subject]) -> String {
    manifests_bound_as(name, name, rules, subjects)
}

/// [`manifests`] with bindings named `binding` instead of after the role: a binding of its own
/// (for one ServiceAccount, say) leaves the subjects of the usual `name` binding alone, since
/// `kubectl apply` of a binding replaces its whole subject list.
pub fn manifests_bound_as(name: &str, binding: &str, rules: &[Rule], subjects: &[Subject]) -> String {
    let labels = "  labels:\n    app.kubernetes.io/name: k8s-upgrade\n";
    let mut docs = Vec::new();
    let cluster: Vec<&Rule> = rules.iter().filter(|r| r.namespace.is_none()).collect();
    if !cluster.is_empty() {
        let body: String = cluster.iter().map(|r| rule_yaml(r)).collect();
        docs.push(format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {name}\n{labels}rules:\n{body}"));
        if !subjects.is_empty() {
            docs.push(format!(
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {binding}\n{labels}roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: {name}\n{}",
                subjects_yaml(subjects)
            ));
        }
    }
    let namespaces: BTreeSet<&str> = rules.iter().filter_map(|r| r.namespace.as_deref()).collect();
    for ns in namespaces {
        let body: String = rules.iter().filter(|r| r.namespace.as_deref() == Some(ns)).map(rule_yaml).collect();
        docs.push(format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}\n  namespace: {ns}\n{labels}rules:\n{body}"));
        if !subjects.is_empty() {
            docs.push(format!(
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {binding}\n  namespace: {ns}\n{labels}roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: {name}\n{}",
                subjects_yaml(subjects)
            ));
        }
    }
    docs.join("---\n")
}

/// The answer to one access review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// The review itself failed (the cluster refused SelfSubjectAccessReview, or it errored).
    Unknown(String),
}

/// Asks the server about every check with SelfSubjectAccessReview, eight at a time.
/// The checks a review refused, named and sorted, for one error line.
pub fn denied(answers: &[(Check, Verdict)]) -> Vec<String> {
    let mut missing: Vec<String> =
        answers.iter().filter(|(_, v)| *v == Verdict::Denied).map(|(c, _)| c.to_string()).collect();
    missing.sort();
    missing
}

pub async fn review(client: &Client, checks: &[Check]) -> Vec<(Check, Verdict)> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let unique: BTreeSet<Check> = checks.iter().cloned().collect();
    futures::stream::iter(unique)
        .map(|check| {
            let api = api.clone();
            async move {
                let spec = match &check {
                    Check::Resource { verb, group, resource, subresource, namespace, name } => {
                        SelfSubjectAccessReviewSpec {
                            resource_attributes: Some(ResourceAttributes {
                                verb: Some(verb.clone()),
                                group: Some(group.clone()),
                                resource: Some(resource.clone()),
                                subresource: (!subresource.is_empty()).then(|| subresource.clone()),
                                namespace: (!namespace.is_empty()).then(|| namespace.clone()),
                                name: (!name.is_empty()).then(|| name.clone()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }
                    }
                    Check::NonResource { verb, path } => SelfSubjectAccessReviewSpec {
                        non_resource_attributes: Some(NonResourceAttributes {
                            verb: Some(verb.clone()),
                            path: Some(path.clone()),
                        }),
                        ..Default::default()
                    },
                };
                let review = SelfSubjectAccessReview { spec, ..Default::default() };
                let pp = PostParams::default();
                let verdict = match crate::inventory::live::with_retries(|| api.create(&pp, &review)).await {
                    Ok(r) => match r.status {
                        Some(s) if s.allowed => Verdict::Allowed,
                        Some(_) => Verdict::Denied,
                        None => Verdict::Unknown("the review came back without a status".into()),
                    },
                    Err(e) => Verdict::Unknown(super::errors::cause(&e).describe("the apiserver")),
                };
                (check, verdict)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_expand_verbs_resources_names_and_urls() {
        let rules = apply_rules(false, None);
        let checks: Vec<String> = rules.iter().flat_map(Rule::checks).map(|c| c.to_string()).collect();
        assert!(checks.contains(&"create pods/eviction (all namespaces)".to_string()), "{checks:?}");
        assert!(checks.contains(&"update leases.coordination.k8s.io \"k8s-upgrade-lock\" in kube-system".to_string()));
        assert!(checks.contains(&"create leases.coordination.k8s.io in kube-system".to_string()));
        let plan = plan_rules(&Catalog::embedded().unwrap());
        let checks: Vec<String> = plan.iter().flat_map(Rule::checks).map(|c| c.to_string()).collect();
        assert!(checks.contains(&"get /metrics".to_string()));
        assert!(checks.contains(&"list nodes (all namespaces)".to_string()));
        assert!(!checks.iter().any(|c| c.contains("secrets")), "the plan role never reads Secrets: {checks:?}");
    }

    /// No rule may be implied by the others of its role: removing any rule must lose a check.
    #[test]
    fn no_rule_is_covered_by_the_others() {
        let catalog = Catalog::embedded().unwrap();
        for rules in [plan_rules(&catalog), apply_rules(true, Some("kube-system")), helm_rules(), helm_fix_rules()] {
            for (i, rule) in rules.iter().enumerate() {
                let others: BTreeSet<Check> =
                    rules.iter().enumerate().filter(|(j, _)| *j != i).flat_map(|(_, r)| r.checks()).collect();
                let covered = |c: &Check| {
                    others.contains(c)
                        || matches!(c, Check::Resource { verb, group, resource, subresource, namespace, .. }
                            if others.contains(&Check::Resource { verb: verb.clone(), group: group.clone(), resource: resource.clone(), subresource: subresource.clone(), namespace: namespace.clone(), name: String::new() }))
                };
                assert!(!rule.checks().iter().all(covered), "rule {i} ({}) adds nothing", rule.why);
            }
        }
    }

    #[test]
    fn helm_fix_checks_are_asked_in_each_release_namespace() {
        let checks: Vec<String> = helm_fix_checks(["shop", "reports"]).iter().map(ToString::to_string).collect();
        assert_eq!(
            checks,
            [
                "list secrets in shop",
                "create secrets in shop",
                "update secrets in shop",
                "list secrets in reports",
                "create secrets in reports",
                "update secrets in reports"
            ]
        );
    }

    #[test]
    fn the_printed_apply_role_leaves_out_what_the_plan_role_grants() {
        let catalog = Catalog::embedded().unwrap();
        let all = apply_rules(false, None);
        let printed = apply_rules_beyond_plan(&catalog, false, None);
        let lists_attachments = |rules: &[Rule]| {
            rules.iter().flat_map(Rule::checks).any(|c| c.to_string().starts_with("list volumeattachments"))
        };
        let watches_attachments = |rules: &[Rule]| {
            rules.iter().flat_map(Rule::checks).any(|c| c.to_string().starts_with("watch volumeattachments"))
        };
        assert!(lists_attachments(&all) && watches_attachments(&all));
        assert_eq!(lists_attachments(&printed), !lists_attachments(&plan_rules(&catalog)));
        assert!(watches_attachments(&printed));
    }

    #[test]
    fn manifests_are_valid_yaml_with_a_reason_per_rule() {
        let catalog = Catalog::embedded().unwrap();
        let mut rules = plan_rules(&catalog);
        rules.extend(apply_rules(true, Some("kube-system")));
        let text = manifests("k8s-upgrade", &rules, &[Subject::Group("ops".into())]);
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(kinds, ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]);
        let cluster_rules = docs[0]["rules"].as_array().unwrap();
        assert_eq!(cluster_rules.len(), rules.iter().filter(|r| r.namespace.is_none()).count());
        assert_eq!(text.matches("\n# ").count() + usize::from(text.starts_with("# ")), rules.len());
        assert_eq!(docs[3]["subjects"][0]["name"], "ops");
    }
}
