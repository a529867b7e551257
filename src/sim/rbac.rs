//! RBAC authorization for the simulated apiserver, with kube-apiserver's semantics: the rule
//! matching of `pkg/apis/rbac/v1/evaluation_helpers.go`, the binding walk and allow/deny reasons
//! of `plugin/pkg/auth/authorizer/rbac` and `pkg/registry/rbac/validation/rule.go`, the
//! SelfSubjectRulesReview answer, the 403 text of `responsewriters.Forbidden`, the
//! clusterrole-aggregation controller's rule union, and the bootstrap policy a fresh cluster
//! starts with. Pure: stored JSON objects in, decisions out; no I/O and no panics on input.
//!
//! The `system:masters` short cut stands for the privileged-group authorizer kube-apiserver runs
//! before RBAC.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

use crate::k8s::validation::go_quote;

/// The user every `system:masters` member is: a superuser that RBAC never refuses (kube-apiserver's privileged-group authorizer runs before RBAC).
pub const SUPERUSER_GROUP: &str = "system:masters";

const RBAC_API_VERSION: &str = "rbac.authorization.k8s.io/v1";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const SA_PREFIX: &str = "system:serviceaccount:";

/// Who is asking (after authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

/// What is asked (the apiserver's authorizer.Attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    Resource {
        verb: String,
        group: String,
        resource: String,
        /// `""` if none.
        subresource: String,
        /// `""` = cluster scope.
        namespace: String,
        /// `""` if none.
        name: String,
    },
    NonResource {
        /// Lowercase HTTP verb: get, post, put, patch, delete, head.
        verb: String,
        path: String,
    },
}

impl Attributes {
    /// A resource request; `resource` may carry its subresource as `resource/subresource`.
    pub fn resource(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Attributes {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The namespace the binding walk uses; a non-resource request has none, which is why
    /// RoleBindings can never grant one.
    fn namespace(&self) -> &str {
        match self {
            Attributes::Resource { namespace, .. } => namespace,
            Attributes::NonResource { .. } => "",
        }
    }
}

/// The authorizer's answer. `reason` follows RBAC: on an allow it names the binding, role and
/// subject; on a deny it is empty unless a matching binding pointed at a role that could not be
/// resolved, in which case it carries the resolution errors (`RBAC: clusterrole... not found`),
/// which kube-apiserver appends to the 403 message after `": "`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// A policy rule as in rbac.authorization.k8s.io/v1 (camelCase serde, fields default to empty).
/// `null` lists read as empty, as Go's decoder reads them as nil.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyRule {
    #[serde(deserialize_with = "null_as_empty")]
    pub verbs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub api_groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub resources: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub resource_names: Vec<String>,
    #[serde(rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_empty")]
    pub non_resource_urls: Vec<String>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Rule evaluation (evaluation_helpers.go and rbac.go RuleAllows)
// ---------------------------------------------------------------------------------------------

fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    match attrs {
        Attributes::Resource { verb, group, resource, subresource, name, .. } => {
            verb_matches(rule, verb)
                && api_group_matches(rule, group)
                && resource_matches(rule, resource, subresource)
                && resource_name_matches(rule, name)
        }
        Attributes::NonResource { verb, path } => verb_matches(rule, verb) && non_resource_url_matches(rule, path),
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == "*" || g == group)
}

/// Upstream supports `*` and `*/sub` but deliberately not `res/*`: a grant on every subresource
/// of pods would silently extend to subresources added later (kubernetes/kubernetes#78936).
fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || is_combined(r, resource, subresource)
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// `rule == resource + "/" + subresource` without building the combined string: this runs on
/// every rule of every request.
fn is_combined(rule_resource: &str, resource: &str, subresource: &str) -> bool {
    if subresource.is_empty() {
        return rule_resource == resource;
    }
    rule_resource.strip_prefix(resource).and_then(|rest| rest.strip_prefix('/')) == Some(subresource)
}

fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls
        .iter()
        .any(|u| u == "*" || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*'))))
}

// ---------------------------------------------------------------------------------------------
// Stored objects, as far as RBAC reads them
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ObjectMeta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RoleJson {
    metadata: ObjectMeta,
    #[serde(default)]
    rules: Option<Vec<PolicyRule>>,
}

#[derive(Deserialize)]
struct ClusterRoleJson {
    metadata: ObjectMeta,
    #[serde(default)]
    rules: Option<Vec<PolicyRule>>,
    #[serde(default, rename = "aggregationRule")]
    aggregation_rule: Option<AggregationRuleJson>,
}

#[derive(Deserialize)]
struct AggregationRuleJson {
    #[serde(default, rename = "clusterRoleSelectors")]
    cluster_role_selectors: Option<Vec<LabelSelectorJson>>,
}

#[derive(Deserialize)]
struct LabelSelectorJson {
    #[serde(default, rename = "matchLabels")]
    match_labels: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "matchExpressions")]
    match_expressions: Option<Vec<LabelSelectorRequirementJson>>,
}

#[derive(Deserialize)]
struct LabelSelectorRequirementJson {
    key: String,
    operator: String,
    #[serde(default)]
    values: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct BindingJson {
    metadata: ObjectMeta,
    #[serde(default)]
    subjects: Option<Vec<SubjectJson>>,
    #[serde(rename = "roleRef")]
    role_ref: RoleRefJson,
}

#[derive(Deserialize)]
struct SubjectJson {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct RoleRefJson {
    kind: String,
    name: String,
}

/// Reads a stored object; anything that does not have the shape the apiserver would have
/// stored (or has no name) is treated as absent rather than guessed at.
fn parse<'a, T: Deserialize<'a>>(value: &'a Value) -> Option<T> {
    T::deserialize(value).ok()
}

// ---------------------------------------------------------------------------------------------
// The compiled snapshot
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

#[derive(Debug, Clone)]
struct Binding {
    cluster: bool,
    name: String,
    namespace: String,
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
    /// The referenced role's rules, resolved once; the error text is what the resolver would
    /// report for a dangling reference.
    rules: Result<Arc<[PolicyRule]>, String>,
}

impl Binding {
    /// `source.String()` of the upstream describers, for the allow reason.
    fn describe(&self, subject: usize) -> String {
        let subject = self.subjects.get(subject).map(|s| describe_subject(s, &self.namespace)).unwrap_or_default();
        if self.cluster {
            format!(
                "ClusterRoleBinding {} of {} {} to {}",
                go_quote(&self.name),
                self.role_kind,
                go_quote(&self.role_name),
                subject
            )
        } else {
            // Upstream prints name/namespace (not namespace/name) here.
            format!(
                "RoleBinding {} of {} {} to {}",
                go_quote(&format!("{}/{}", self.name, self.namespace)),
                self.role_kind,
                go_quote(&self.role_name),
                subject
            )
        }
    }
}

fn describe_subject(s: &Subject, binding_namespace: &str) -> String {
    if s.kind == "ServiceAccount" {
        let ns = if s.namespace.is_empty() { binding_namespace } else { &s.namespace };
        format!("{} {}", s.kind, go_quote(&format!("{}/{}", s.name, ns)))
    } else {
        format!("{} {}", s.kind, go_quote(&s.name))
    }
}

/// (binding index, subject index) in a [`BindingSet`].
type Hit = (usize, usize);

/// The bindings of one scope (cluster, or one namespace) in visit order, indexed by subject so
/// a request only looks at bindings naming its user or one of its groups.
#[derive(Debug, Clone, Default)]
struct BindingSet {
    bindings: Vec<Binding>,
    /// User subjects and ServiceAccount subjects, the latter under their
    /// `system:serviceaccount:ns:name` user name, which is exactly what `MatchesUsername` compares.
    by_user: HashMap<String, Vec<Hit>>,
    by_group: HashMap<String, Vec<Hit>>,
}

impl BindingSet {
    /// `bindings` must already be in visit order (by name).
    fn new(bindings: Vec<Binding>) -> BindingSet {
        let mut by_user: HashMap<String, Vec<Hit>> = HashMap::new();
        let mut by_group: HashMap<String, Vec<Hit>> = HashMap::new();
        for (bi, b) in bindings.iter().enumerate() {
            for (si, s) in b.subjects.iter().enumerate() {
                match s.kind.as_str() {
                    "User" => by_user.entry(s.name.clone()).or_default().push((bi, si)),
                    "Group" => by_group.entry(s.name.clone()).or_default().push((bi, si)),
                    "ServiceAccount" => {
                        // A RoleBinding's subject without namespace means the binding's own; a
                        // ClusterRoleBinding has none to lend, so such a subject matches nobody.
                        let ns = if s.namespace.is_empty() { &b.namespace } else { &s.namespace };
                        if !ns.is_empty() {
                            by_user.entry(format!("{SA_PREFIX}{ns}:{}", s.name)).or_default().push((bi, si));
                        }
                    }
                    _ => {}
                }
            }
        }
        BindingSet { bindings, by_user, by_group }
    }

    /// The bindings that apply to `user`, in visit order, each with its first matching subject
    /// (the one upstream's `appliesTo` reports).
    fn applicable(&self, user: &UserInfo) -> Vec<Hit> {
        let mut hits: Vec<Hit> = Vec::new();
        if let Some(h) = self.by_user.get(user.name.as_str()) {
            hits.extend_from_slice(h);
        }
        for g in &user.groups {
            if let Some(h) = self.by_group.get(g.as_str()) {
                hits.extend_from_slice(h);
            }
        }
        hits.sort_unstable();
        hits.dedup_by_key(|h| h.0);
        hits
    }
}

/// A compiled snapshot of every Role, ClusterRole, RoleBinding and ClusterRoleBinding.
///
/// Bindings are visited ClusterRoleBindings first, then the RoleBindings of the request's
/// namespace, each group by name (upstream's lister order is unspecified; by name makes allow
/// reasons reproducible).
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    cluster: BindingSet,
    namespaced: HashMap<String, BindingSet>,
}

impl Authorizer {
    /// Builds from the stored objects as JSON values (each a full object with apiVersion, kind, metadata, rules/subjects/roleRef/aggregationRule).
    /// Malformed objects are skipped, never a panic.
    pub fn new(
        roles: &[Value],
        cluster_roles: &[Value],
        role_bindings: &[Value],
        cluster_role_bindings: &[Value],
    ) -> Authorizer {
        let mut role_rules: HashMap<(String, String), Arc<[PolicyRule]>> = HashMap::new();
        for r in roles.iter().filter_map(parse::<RoleJson>) {
            let ns = r.metadata.namespace.unwrap_or_default();
            if ns.is_empty() || r.metadata.name.is_empty() {
                continue;
            }
            role_rules.insert((ns, r.metadata.name), r.rules.unwrap_or_default().into());
        }
        let mut cluster_role_rules: HashMap<String, Arc<[PolicyRule]>> = HashMap::new();
        for r in cluster_roles.iter().filter_map(parse::<RoleJson>) {
            if r.metadata.name.is_empty() {
                continue;
            }
            cluster_role_rules.insert(r.metadata.name, r.rules.unwrap_or_default().into());
        }

        // GetRoleReferenceRules: a Role is looked up in the binding's namespace (a
        // ClusterRoleBinding has none, so its Role reference never resolves).
        let resolve = |kind: &str, name: &str, ns: &str| -> Result<Arc<[PolicyRule]>, String> {
            match kind {
                "Role" => role_rules
                    .get(&(ns.to_string(), name.to_string()))
                    .cloned()
                    .ok_or_else(|| format!("role.rbac.authorization.k8s.io {} not found", go_quote(name))),
                "ClusterRole" => cluster_role_rules
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("clusterrole.rbac.authorization.k8s.io {} not found", go_quote(name))),
                other => Err(format!("unsupported role reference kind: {}", go_quote(other))),
            }
        };
        let compile = |b: BindingJson, cluster: bool| -> Option<Binding> {
            let namespace = if cluster { String::new() } else { b.metadata.namespace.unwrap_or_default() };
            if b.metadata.name.is_empty() || (!cluster && namespace.is_empty()) {
                return None;
            }
            let rules = resolve(&b.role_ref.kind, &b.role_ref.name, &namespace);
            let subjects = b
                .subjects
                .unwrap_or_default()
                .into_iter()
                .map(|s| Subject { kind: s.kind, name: s.name, namespace: s.namespace.unwrap_or_default() })
                .collect();
            Some(Binding {
                cluster,
                name: b.metadata.name,
                namespace,
                role_kind: b.role_ref.kind,
                role_name: b.role_ref.name,
                subjects,
                rules,
            })
        };

        // Keyed maps give name order and let a later duplicate replace an earlier one.
        let mut cluster: BTreeMap<String, Binding> = BTreeMap::new();
        for b in cluster_role_bindings.iter().filter_map(parse::<BindingJson>) {
            if let Some(b) = compile(b, true) {
                cluster.insert(b.name.clone(), b);
            }
        }
        let mut namespaced: HashMap<String, BTreeMap<String, Binding>> = HashMap::new();
        for b in role_bindings.iter().filter_map(parse::<BindingJson>) {
            if let Some(b) = compile(b, false) {
                namespaced.entry(b.namespace.clone()).or_default().insert(b.name.clone(), b);
            }
        }
        Authorizer {
            cluster: BindingSet::new(cluster.into_values().collect()),
            namespaced: namespaced
                .into_iter()
                .map(|(ns, bs)| (ns, BindingSet::new(bs.into_values().collect())))
                .collect(),
        }
    }

    /// `VisitRulesFor` at binding granularity: every binding that applies to `user` for a
    /// request in `namespace`, in upstream's order, until `f` breaks.
    fn visit<'a>(&'a self, user: &UserInfo, namespace: &str, mut f: impl FnMut(&'a Binding, usize) -> ControlFlow<()>) {
        let local = if namespace.is_empty() { None } else { self.namespaced.get(namespace) };
        for set in std::iter::once(&self.cluster).chain(local) {
            for (bi, si) in set.applicable(user) {
                if let Some(b) = set.bindings.get(bi)
                    && f(b, si).is_break()
                {
                    return;
                }
            }
        }
    }

    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        if is_superuser(user) {
            // The privileged-group authorizer allows with an empty reason.
            return Decision { allowed: true, reason: String::new() };
        }
        let mut allowed_by: Option<(&Binding, usize)> = None;
        let mut errors: Vec<&str> = Vec::new();
        self.visit(user, attrs.namespace(), |b, si| {
            match &b.rules {
                Ok(rules) => {
                    if rules.iter().any(|r| rule_allows(attrs, r)) {
                        allowed_by = Some((b, si));
                        return ControlFlow::Break(());
                    }
                }
                Err(e) => errors.push(e),
            }
            ControlFlow::Continue(())
        });
        if let Some((b, si)) = allowed_by {
            return Decision { allowed: true, reason: format!("RBAC: allowed by {}", b.describe(si)) };
        }
        let reason = if errors.is_empty() { String::new() } else { format!("RBAC: {}", aggregate_errors(&errors)) };
        Decision { allowed: false, reason }
    }

    /// The rules that apply to `user` in `namespace` (cluster-wide rules from ClusterRoleBindings plus the RoleBindings of that namespace), as SelfSubjectRulesReview reports them: (resourceRules, nonResourceRules). Resource rules carry verbs/apiGroups/resources/resourceNames; non-resource rules carry verbs/nonResourceURLs.
    ///
    /// A rule with both resources and nonResourceURLs yields one of each, as upstream splits it.
    /// Identical rules are reported once. Bindings to missing roles contribute nothing.
    /// The first permission `rules` grant that `user` does not hold in `namespace` ("" = cluster
    /// scope), as `verb resource in API group "g"` or `verb /path`; `None` when it holds them all.
    /// RBAC's escalation check asks this before a role or binding is written.
    pub fn first_unheld(&self, user: &UserInfo, rules: &[PolicyRule], namespace: &str) -> Option<String> {
        for rule in rules {
            for verb in &rule.verbs {
                for path in &rule.non_resource_urls {
                    let attrs = Attributes::NonResource { verb: verb.clone(), path: path.clone() };
                    if !self.authorize(user, &attrs).allowed {
                        return Some(format!("{verb} {path}"));
                    }
                }
                for group in &rule.api_groups {
                    for resource in &rule.resources {
                        let names: &[String] =
                            if rule.resource_names.is_empty() { &[String::new()] } else { &rule.resource_names };
                        for name in names {
                            if !self
                                .authorize(user, &Attributes::resource(verb, group, resource, namespace, name))
                                .allowed
                            {
                                return Some(format!("{verb} {resource} in API group \"{group}\""));
                            }
                        }
                    }
                }
            }
        }
        None
    }

    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<PolicyRule>) {
        if is_superuser(user) {
            let all = || vec!["*".to_string()];
            let resource = PolicyRule { verbs: all(), api_groups: all(), resources: all(), ..PolicyRule::default() };
            let non_resource = PolicyRule { verbs: all(), non_resource_urls: all(), ..PolicyRule::default() };
            return (vec![resource], vec![non_resource]);
        }
        let mut resource_rules: Vec<PolicyRule> = Vec::new();
        let mut non_resource_rules: Vec<PolicyRule> = Vec::new();
        self.visit(user, namespace, |b, _| {
            for rule in b.rules.as_deref().unwrap_or_default() {
                if !rule.resources.is_empty() {
                    push_unique(
                        &mut resource_rules,
                        PolicyRule {
                            verbs: rule.verbs.clone(),
                            api_groups: rule.api_groups.clone(),
                            resources: rule.resources.clone(),
                            resource_names: rule.resource_names.clone(),
                            non_resource_urls: Vec::new(),
                        },
                    );
                }
                if !rule.non_resource_urls.is_empty() {
                    push_unique(
                        &mut non_resource_rules,
                        PolicyRule {
                            verbs: rule.verbs.clone(),
                            non_resource_urls: rule.non_resource_urls.clone(),
                            ..PolicyRule::default()
                        },
                    );
                }
            }
            ControlFlow::Continue(())
        });
        (resource_rules, non_resource_rules)
    }
}

fn is_superuser(user: &UserInfo) -> bool {
    user.groups.iter().any(|g| g == SUPERUSER_GROUP)
}

fn push_unique(rules: &mut Vec<PolicyRule>, rule: PolicyRule) {
    if !rules.contains(&rule) {
        rules.push(rule);
    }
}

/// `utilerrors.NewAggregate(errs).Error()`: a lone error as is, several deduplicated in brackets.
fn aggregate_errors(errors: &[&str]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(e) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [one] => (*one).to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

// ---------------------------------------------------------------------------------------------
// The 403 message
// ---------------------------------------------------------------------------------------------

/// The 403 message kube-apiserver writes for a denial, e.g.
///   `nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope`
///   `pods "web-1" is forbidden: User "alice" cannot create resource "pods/eviction" in API group "" in the namespace "shop"`
///   `forbidden: User "system:anonymous" cannot get path "/metrics"`
///
/// This is `apierrors.NewForbidden(groupResource, name, forbiddenMessage(attrs))` with the
/// message HTML-sanitized as `responsewriters.Forbidden` does. When the authorizer's deny reason
/// is non-empty, kube-apiserver appends it: `format!("{message}: {reason}")`.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    match attrs {
        Attributes::NonResource { verb, path } => {
            let msg = format!("User {} cannot {} path {}", go_quote(&user.name), verb, go_quote(path));
            format!("forbidden: {}", sanitize_html(&msg))
        }
        Attributes::Resource { verb, group, resource, subresource, namespace, name } => {
            let combined = if subresource.is_empty() { resource.clone() } else { format!("{resource}/{subresource}") };
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {}", go_quote(namespace))
            };
            let msg = format!(
                "User {} cannot {} resource {} in API group {} {}",
                go_quote(&user.name),
                verb,
                go_quote(&combined),
                go_quote(group),
                scope
            );
            let msg = sanitize_html(&msg);
            let group_resource = if group.is_empty() { resource.clone() } else { format!("{resource}.{group}") };
            if group_resource.is_empty() {
                format!("forbidden: {msg}")
            } else if name.is_empty() {
                format!("{group_resource} is forbidden: {msg}")
            } else {
                format!("{group_resource} {} is forbidden: {msg}", go_quote(name))
            }
        }
    }
}

/// responsewriters' `sanitizer`: the message must not read as HTML.
fn sanitize_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// ClusterRole aggregation (clusterroleaggregation_controller.go)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Requirement {
    Equals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// `metav1.LabelSelectorAsSelector`: an empty selector selects everything; any invalid part
/// makes the whole selector an error.
fn compile_selector(sel: &LabelSelectorJson) -> Option<Vec<Requirement>> {
    let mut reqs = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        if !valid_label_key(k) || !valid_label_value(v) {
            return None;
        }
        reqs.push(Requirement::Equals(k.clone(), v.clone()));
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default();
        if !valid_label_key(&e.key) || !values.iter().all(|v| valid_label_value(v)) {
            return None;
        }
        let key = e.key.clone();
        reqs.push(match e.operator.as_str() {
            "In" if !values.is_empty() => Requirement::In(key, values),
            "NotIn" if !values.is_empty() => Requirement::NotIn(key, values),
            "Exists" if values.is_empty() => Requirement::Exists(key),
            "DoesNotExist" if values.is_empty() => Requirement::DoesNotExist(key),
            _ => return None,
        });
    }
    Some(reqs)
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 long.
fn valid_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn valid_label_value(s: &str) -> bool {
    s.is_empty() || valid_label_name(s)
}

/// A qualified name: `[dns-subdomain/]name`.
fn valid_label_key(s: &str) -> bool {
    match s.split_once('/') {
        None => valid_label_name(s),
        Some((prefix, name)) => valid_dns_subdomain(prefix) && valid_label_name(name),
    }
}

fn valid_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
            b.first().is_some_and(edge) && b.last().is_some_and(edge) && b.iter().all(|c| edge(c) || *c == b'-')
        })
}

/// Rules for aggregated ClusterRoles: for every ClusterRole with an `aggregationRule.clusterRoleSelectors` (matchLabels and matchExpressions with In/NotIn/Exists/DoesNotExist), the union of rules of every other ClusterRole whose labels match any selector, deduplicated, in a stable order (by ClusterRole name, then rule order). Returns (name of the aggregated role, its rules) for each aggregated role. The simulator's controller writes these into the aggregated role's `rules`, as kube-controller-manager's clusterrole-aggregation controller does.
///
/// As the controller: selectors are taken in order, and for each the matching roles by name then
/// their rules in order. Aggregated roles can feed each other (upstream `edit` carries the
/// aggregate-to-admin label), so this returns the state the controller converges to. A role
/// whose selectors are invalid is left out, as the controller leaves it untouched.
pub fn aggregate(cluster_roles: &[Value]) -> Vec<(String, Vec<PolicyRule>)> {
    struct Role {
        labels: BTreeMap<String, String>,
        selectors: Option<Option<Vec<Vec<Requirement>>>>,
    }
    let mut roles: BTreeMap<String, Role> = BTreeMap::new();
    let mut current: BTreeMap<String, Vec<PolicyRule>> = BTreeMap::new();
    for r in cluster_roles.iter().filter_map(parse::<ClusterRoleJson>) {
        if r.metadata.name.is_empty() {
            continue;
        }
        let selectors = r.aggregation_rule.map(|a| {
            a.cluster_role_selectors.unwrap_or_default().iter().map(compile_selector).collect::<Option<Vec<_>>>()
        });
        current.insert(r.metadata.name.clone(), r.rules.unwrap_or_default());
        roles.insert(r.metadata.name, Role { labels: r.metadata.labels.unwrap_or_default(), selectors });
    }
    let aggregated: Vec<(&String, &Vec<Vec<Requirement>>)> = roles
        .iter()
        .filter_map(|(name, r)| match &r.selectors {
            Some(Some(s)) => Some((name, s)),
            _ => None,
        })
        .collect();

    // Each pass is one controller sync of every aggregated role; a dependency chain settles in
    // at most one pass per role, and the bound stops a selector cycle that never settles.
    for _ in 0..=roles.len() {
        let mut changed = false;
        for (name, selectors) in &aggregated {
            let mut rules: Vec<PolicyRule> = Vec::new();
            for selector in selectors.iter() {
                for (other, role) in &roles {
                    if other == *name || !selector.iter().all(|req| req.matches(&role.labels)) {
                        continue;
                    }
                    for rule in current.get(other).into_iter().flatten() {
                        if !rules.contains(rule) {
                            rules.push(rule.clone());
                        }
                    }
                }
            }
            if current.get(*name) != Some(&rules) {
                current.insert((*name).clone(), rules);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    aggregated.into_iter().map(|(name, _)| (name.clone(), current.get(name).cloned().unwrap_or_default())).collect()
}

// ---------------------------------------------------------------------------------------------
// Bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy)
// ---------------------------------------------------------------------------------------------

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

fn strings(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    // PolicyRuleBuilder sorts every list, which is why stored bootstrap rules read sorted.
    v.sort();
    v
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: strings(groups),
        resources: strings(resources),
        ..PolicyRule::default()
    }
}

fn url_rule(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule { verbs: strings(verbs), non_resource_urls: strings(urls), ..PolicyRule::default() }
}

fn string_array(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

fn rule_json(r: &PolicyRule) -> Value {
    let mut m = Map::new();
    m.insert("verbs".into(), string_array(&r.verbs));
    for (key, list) in [
        ("apiGroups", &r.api_groups),
        ("resources", &r.resources),
        ("resourceNames", &r.resource_names),
        ("nonResourceURLs", &r.non_resource_urls),
    ] {
        if !list.is_empty() {
            m.insert(key.into(), string_array(list));
        }
    }
    Value::Object(m)
}

fn bootstrap_metadata(name: &str, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = Map::new();
    labels.insert("kubernetes.io/bootstrapping".into(), "rbac-defaults".into());
    for (k, v) in extra_labels {
        labels.insert((*k).into(), (*v).into());
    }
    json!({
        "name": name,
        "labels": labels,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn bootstrap_cluster_role(name: &str, extra_labels: &[(&str, &str)], rules: &[PolicyRule]) -> Value {
    json!({
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": bootstrap_metadata(name, extra_labels),
        "rules": rules.iter().map(rule_json).collect::<Vec<_>>(),
    })
}

/// Created with no rules (`null`, as Go writes a nil slice); the aggregation controller fills them.
fn bootstrap_aggregated_role(name: &str, extra_labels: &[(&str, &str)], selects: &str) -> Value {
    json!({
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": bootstrap_metadata(name, extra_labels),
        "rules": null,
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {selects: "true"}}]},
    })
}

fn group_subjects(groups: &[&str]) -> Vec<Value> {
    groups.iter().map(|g| json!({"kind": "Group", "apiGroup": RBAC_GROUP, "name": g})).collect()
}

fn bootstrap_cluster_role_binding(name: &str, groups: &[&str]) -> Value {
    json!({
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": bootstrap_metadata(name, &[]),
        "subjects": group_subjects(groups),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
    })
}

const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

fn aggregate_to_view_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            READ,
            &[""],
            &[
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ],
        ),
        rule(
            READ,
            &[""],
            &[
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ],
        ),
        // Reading namespaces at namespace scope means reading *this* namespace.
        rule(READ, &[""], &["namespaces"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
        rule(
            READ,
            &["apps"],
            &[
                "controllerrevisions",
                "statefulsets",
                "statefulsets/status",
                "statefulsets/scale",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/status",
                "deployments/scale",
                "replicasets",
                "replicasets/status",
                "replicasets/scale",
            ],
        ),
        rule(READ, &["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
        rule(READ, &["batch"], &["jobs", "cronjobs", "cronjobs/status", "jobs/status"]),
        rule(
            READ,
            &["extensions"],
            &[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale",
                "networkpolicies",
            ],
        ),
        rule(READ, &["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        rule(READ, &["networking.k8s.io"], &["networkpolicies", "ingresses", "ingresses/status"]),
    ]
}

fn aggregate_to_edit_rules() -> Vec<PolicyRule> {
    vec![
        // Reading these escalates (exec, secrets), hence edit rather than view.
        rule(READ, &[""], &["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"]),
        rule(&["impersonate"], &[""], &["serviceaccounts"]),
        rule(WRITE, &[""], &["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(
            WRITE,
            &[""],
            &[
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/proxy",
                "persistentvolumeclaims",
                "configmaps",
                "secrets",
                "events",
            ],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(
            WRITE,
            &["apps"],
            &[
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
            ],
        ),
        rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(WRITE, &["batch"], &["jobs", "cronjobs"]),
        rule(
            WRITE,
            &["extensions"],
            &[
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "ingresses",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
                "networkpolicies",
            ],
        ),
        rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
        rule(WRITE, &["networking.k8s.io"], &["networkpolicies", "ingresses"]),
        rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
    ]
}

fn aggregate_to_admin_rules() -> Vec<PolicyRule> {
    vec![
        rule(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews"]),
        rule(READ_WRITE, &[RBAC_GROUP], &["roles", "rolebindings"]),
    ]
}

const PUBLIC_INFO_URLS: &[&str] = &["/livez", "/readyz", "/healthz", "/version", "/version/"];

/// The bootstrap policy a fresh kube-apiserver creates (a faithful subset), as JSON objects ready to store: ClusterRoles `cluster-admin` (all verbs on all resources in all groups, plus all nonResourceURLs), `admin`, `edit`, `view` (aggregated, with aggregationRule selecting the labels `rbac.authorization.k8s.io/aggregate-to-admin|edit|view: "true"`, and the aggregate-to-* ClusterRoles `system:aggregate-to-admin`, `system:aggregate-to-edit`, `system:aggregate-to-view` carrying a realistic subset of the real rules — read-only verbs get/list/watch for view on pods, services, configmaps, endpoints, persistentvolumeclaims, replicationcontrollers, namespaces (get/list/watch), apps deployments/replicasets/statefulsets/daemonsets, batch jobs/cronjobs, policy poddisruptionbudgets, networking.k8s.io ingresses/networkpolicies; edit adds create/delete/deletecollection/patch/update on those plus secrets, pods/eviction create, pods/exec etc.; admin adds roles/rolebindings — note view must NOT include secrets), `system:discovery` (get on /api, /api/*, /apis, /apis/*, /healthz, /livez, /readyz, /openapi, /openapi/*, /version, /version/), `system:basic-user` (create on authorization.k8s.io selfsubjectaccessreviews and selfsubjectrulesreviews, and authentication.k8s.io selfsubjectreviews), `system:public-info-viewer` (get on /healthz, /livez, /readyz, /version, /version/); ClusterRoleBindings `cluster-admin` → Group `system:masters`, `system:discovery` and `system:basic-user` → Group `system:authenticated`, `system:public-info-viewer` → Groups `system:authenticated` and `system:unauthenticated`, and `kubeadm:cluster-admins` → Group `kubeadm:cluster-admins` bound to `cluster-admin`. Every bootstrap object carries the label `kubernetes.io/bootstrapping: rbac-defaults` (except the kubeadm one) and the annotation `rbac.authorization.kubernetes.io/autoupdate: "true"`, as the real ones do.
///
/// The aggregate-to-* rules are upstream's in full. The kubeadm binding is created by kubeadm,
/// not the apiserver, and carries neither label nor annotation, as on a real kubeadm cluster.
pub fn bootstrap_objects() -> Vec<Value> {
    let mut discovery_urls = vec!["/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*"];
    discovery_urls.extend_from_slice(PUBLIC_INFO_URLS);
    vec![
        bootstrap_cluster_role("cluster-admin", &[], &[rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])]),
        bootstrap_aggregated_role("admin", &[], AGGREGATE_TO_ADMIN),
        bootstrap_aggregated_role("edit", &[(AGGREGATE_TO_ADMIN, "true")], AGGREGATE_TO_EDIT),
        bootstrap_aggregated_role("view", &[(AGGREGATE_TO_EDIT, "true")], AGGREGATE_TO_VIEW),
        bootstrap_cluster_role(
            "system:aggregate-to-admin",
            &[(AGGREGATE_TO_ADMIN, "true")],
            &aggregate_to_admin_rules(),
        ),
        bootstrap_cluster_role("system:aggregate-to-edit", &[(AGGREGATE_TO_EDIT, "true")], &aggregate_to_edit_rules()),
        bootstrap_cluster_role("system:aggregate-to-view", &[(AGGREGATE_TO_VIEW, "true")], &aggregate_to_view_rules()),
        bootstrap_cluster_role("system:discovery", &[], &[url_rule(&["get"], &discovery_urls)]),
        bootstrap_cluster_role(
            "system:basic-user",
            &[],
            &[
                rule(&["create"], &["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
                rule(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
            ],
        ),
        bootstrap_cluster_role("system:public-info-viewer", &[], &[url_rule(&["get"], PUBLIC_INFO_URLS)]),
        bootstrap_cluster_role_binding("cluster-admin", &[SUPERUSER_GROUP]),
        bootstrap_cluster_role_binding("system:discovery", &["system:authenticated"]),
        bootstrap_cluster_role_binding("system:basic-user", &["system:authenticated"]),
        bootstrap_cluster_role_binding(
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
        json!({
            "apiVersion": RBAC_API_VERSION,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "kubeadm:cluster-admins"},
            "subjects": group_subjects(&["kubeadm:cluster-admins"]),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    fn alice() -> UserInfo {
        user("alice", &["system:authenticated"])
    }

    fn res(verb: &str, group: &str, resource: &str, subresource: &str, namespace: &str, name: &str) -> Attributes {
        let resource = if subresource.is_empty() { resource.to_string() } else { format!("{resource}/{subresource}") };
        Attributes::resource(verb, group, &resource, namespace, name)
    }

    #[test]
    fn first_unheld_names_the_first_permission_a_user_lacks() {
        let view = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "pods-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
        let bind = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b", "namespace": "shop"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pods-reader"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}]});
        let a = Authorizer::new(&[], &[view], &[bind], &[]);
        let rule = |verbs: &[&str], resources: &[&str]| PolicyRule {
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            api_groups: vec![String::new()],
            resources: resources.iter().map(|r| r.to_string()).collect(),
            ..PolicyRule::default()
        };
        assert_eq!(a.first_unheld(&alice(), &[rule(&["list"], &["pods"])], "shop"), None);
        assert_eq!(
            a.first_unheld(&alice(), &[rule(&["list"], &["pods"])], ""),
            Some("list pods in API group \"\"".into())
        );
        assert_eq!(
            a.first_unheld(&alice(), &[rule(&["get", "delete"], &["pods"])], "shop"),
            Some("delete pods in API group \"\"".into())
        );
        assert_eq!(
            a.first_unheld(&alice(), &[rule(&["create"], &["pods/eviction"])], "shop"),
            Some("create pods/eviction in API group \"\"".into())
        );
        let urls = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/metrics".into()],
            ..PolicyRule::default()
        };
        assert_eq!(a.first_unheld(&alice(), &[urls], ""), Some("get /metrics".into()));
        let super_user = user("root", &[SUPERUSER_GROUP]);
        assert_eq!(a.first_unheld(&super_user, &[rule(&["*"], &["*"])], ""), None);
    }

    fn path(verb: &str, p: &str) -> Attributes {
        Attributes::NonResource { verb: verb.into(), path: p.into() }
    }

    fn role(ns: &str, name: &str, rules: Value) -> Value {
        json!({"apiVersion": RBAC_API_VERSION, "kind": "Role", "metadata": {"name": name, "namespace": ns}, "rules": rules})
    }

    fn cluster_role(name: &str, rules: Value) -> Value {
        json!({"apiVersion": RBAC_API_VERSION, "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})
    }

    fn role_binding(ns: &str, name: &str, kind: &str, role: &str, subjects: Value) -> Value {
        json!({
            "apiVersion": RBAC_API_VERSION, "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns},
            "subjects": subjects,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": role},
        })
    }

    fn cluster_binding(name: &str, role: &str, subjects: Value) -> Value {
        json!({
            "apiVersion": RBAC_API_VERSION, "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "subjects": subjects,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        })
    }

    fn user_subject(name: &str) -> Value {
        json!([{"kind": "User", "apiGroup": RBAC_GROUP, "name": name}])
    }

    /// alice holds exactly `rules`, cluster-wide.
    fn granting(rules: Value) -> Authorizer {
        Authorizer::new(&[], &[cluster_role("r", rules)], &[], &[cluster_binding("b", "r", user_subject("alice"))])
    }

    fn allowed(a: &Authorizer, u: &UserInfo, attrs: &Attributes) -> bool {
        a.authorize(u, attrs).allowed
    }

    #[test]
    fn list_and_watch_are_distinct_verbs() {
        let a = granting(json!([{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]));
        assert!(allowed(&a, &alice(), &res("list", "", "pods", "", "shop", "")));
        assert!(!allowed(&a, &alice(), &res("watch", "", "pods", "", "shop", "")));
        assert!(!allowed(&a, &alice(), &res("get", "", "pods", "", "shop", "web-1")));
        let all = granting(json!([{"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}]));
        assert!(allowed(&all, &alice(), &res("watch", "", "pods", "", "shop", "")));
        assert!(allowed(&all, &alice(), &res("deletecollection", "", "pods", "", "", "")));
    }

    #[test]
    fn patch_and_update_are_distinct_verbs() {
        let a = granting(json!([{"verbs": ["patch"], "apiGroups": ["apps"], "resources": ["deployments"]}]));
        assert!(allowed(&a, &alice(), &res("patch", "apps", "deployments", "", "shop", "web")));
        assert!(!allowed(&a, &alice(), &res("update", "apps", "deployments", "", "shop", "web")));
    }

    #[test]
    fn subresources_need_their_own_grant() {
        let evict = res("create", "", "pods", "eviction", "shop", "web-1");
        let pods = granting(json!([{"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}]));
        assert!(!allowed(&pods, &alice(), &evict), "a pods rule does not reach pods/eviction");
        let eviction = granting(json!([{"verbs": ["create"], "apiGroups": [""], "resources": ["pods/eviction"]}]));
        assert!(allowed(&eviction, &alice(), &evict));
        assert!(!allowed(&eviction, &alice(), &res("create", "", "pods", "", "shop", "")), "nor the reverse");
        // Upstream refuses `res/*` on purpose (kubernetes/kubernetes#78936): it would cover
        // subresources added later.
        let pods_star = granting(json!([{"verbs": ["*"], "apiGroups": [""], "resources": ["pods/*"]}]));
        assert!(!allowed(&pods_star, &alice(), &evict));
        assert!(!allowed(&pods_star, &alice(), &res("get", "", "pods", "", "shop", "web-1")));
        let any_eviction = granting(json!([{"verbs": ["create"], "apiGroups": [""], "resources": ["*/eviction"]}]));
        assert!(allowed(&any_eviction, &alice(), &evict));
        assert!(!allowed(&any_eviction, &alice(), &res("create", "", "pods", "exec", "shop", "web-1")));
        assert!(!allowed(&any_eviction, &alice(), &res("create", "", "pods", "", "shop", "")));
        let star = granting(json!([{"verbs": ["create"], "apiGroups": [""], "resources": ["*"]}]));
        assert!(allowed(&star, &alice(), &evict), "`*` covers subresources too");
    }

    #[test]
    fn resource_names_allow_the_named_object_only() {
        let a = granting(
            json!([{"verbs": ["get", "list", "create", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app-config"]}]),
        );
        assert!(allowed(&a, &alice(), &res("get", "", "configmaps", "", "shop", "app-config")));
        assert!(allowed(&a, &alice(), &res("update", "", "configmaps", "", "shop", "app-config")));
        assert!(!allowed(&a, &alice(), &res("get", "", "configmaps", "", "shop", "other")));
        assert!(!allowed(&a, &alice(), &res("list", "", "configmaps", "", "shop", "")), "a list has no name");
        assert!(!allowed(&a, &alice(), &res("create", "", "configmaps", "", "shop", "")), "nor has a create");
    }

    #[test]
    fn api_group_must_match() {
        let core = granting(json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["deployments"]}]));
        assert!(!allowed(&core, &alice(), &res("get", "apps", "deployments", "", "shop", "web")));
        let apps = granting(json!([{"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"]}]));
        assert!(allowed(&apps, &alice(), &res("get", "apps", "deployments", "", "shop", "web")));
        assert!(!allowed(&apps, &alice(), &res("get", "extensions", "deployments", "", "shop", "web")));
        let any = granting(json!([{"verbs": ["get"], "apiGroups": ["*"], "resources": ["deployments"]}]));
        assert!(allowed(&any, &alice(), &res("get", "extensions", "deployments", "", "shop", "web")));
        let none = granting(json!([{"verbs": ["get"], "resources": ["deployments"]}]));
        assert!(!allowed(&none, &alice(), &res("get", "", "deployments", "", "shop", "web")), "no groups, no match");
    }

    #[test]
    fn role_binding_to_cluster_role_is_limited_to_its_namespace() {
        let a = Authorizer::new(
            &[],
            &[cluster_role(
                "pod-reader",
                json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]),
            )],
            &[role_binding("shop", "read-pods", "ClusterRole", "pod-reader", user_subject("alice"))],
            &[],
        );
        assert!(allowed(&a, &alice(), &res("list", "", "pods", "", "shop", "")));
        assert!(!allowed(&a, &alice(), &res("list", "", "pods", "", "bank", "")));
        assert!(!allowed(&a, &alice(), &res("list", "", "pods", "", "", "")), "all-namespaces list is cluster scope");
    }

    #[test]
    fn role_binding_never_grants_cluster_scoped_requests() {
        let a = Authorizer::new(
            &[role("shop", "everything", json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]))],
            &[cluster_role("all", json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]))],
            &[
                role_binding("shop", "local", "Role", "everything", user_subject("alice")),
                role_binding("shop", "cluster", "ClusterRole", "all", user_subject("bob")),
            ],
            &[],
        );
        assert!(allowed(&a, &alice(), &res("delete", "", "secrets", "", "shop", "x")));
        assert!(!allowed(&a, &alice(), &res("list", "", "nodes", "", "", "")));
        assert!(!allowed(&a, &alice(), &res("get", "", "namespaces", "", "", "shop")));
        let bob = user("bob", &[]);
        assert!(allowed(&a, &bob, &res("delete", "", "secrets", "", "shop", "x")));
        assert!(!allowed(&a, &bob, &res("list", "", "nodes", "", "", "")));
    }

    #[test]
    fn role_binding_to_role_uses_the_role_of_its_own_namespace() {
        let a = Authorizer::new(
            &[
                role("shop", "reader", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])),
                role("bank", "writer", json!([{"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}])),
            ],
            &[],
            &[
                role_binding("shop", "r", "Role", "reader", user_subject("alice")),
                // A Role of that name exists, but in another namespace.
                role_binding("shop", "w", "Role", "writer", user_subject("alice")),
            ],
            &[],
        );
        assert!(allowed(&a, &alice(), &res("get", "", "pods", "", "shop", "p")));
        assert!(!allowed(&a, &alice(), &res("delete", "", "pods", "", "shop", "p")));
        assert!(!allowed(&a, &alice(), &res("delete", "", "pods", "", "bank", "p")));
    }

    #[test]
    fn service_account_subjects() {
        let reader = cluster_role("reader", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]));
        let a = Authorizer::new(
            &[],
            &[reader],
            &[
                // No namespace: the binding's own.
                role_binding(
                    "shop",
                    "local-sa",
                    "ClusterRole",
                    "reader",
                    json!([{"kind": "ServiceAccount", "name": "builder"}]),
                ),
                role_binding(
                    "shop",
                    "remote-sa",
                    "ClusterRole",
                    "reader",
                    json!([{"kind": "ServiceAccount", "name": "ci", "namespace": "tools"}]),
                ),
            ],
            &[
                cluster_binding(
                    "global-sa",
                    "reader",
                    json!([{"kind": "ServiceAccount", "name": "monitor", "namespace": "ops"}]),
                ),
                // A ClusterRoleBinding has no namespace to lend: this matches nobody.
                cluster_binding("bare-sa", "reader", json!([{"kind": "ServiceAccount", "name": "ghost"}])),
            ],
        );
        let get = |ns: &str| res("get", "", "pods", "", ns, "p");
        let builder = user("system:serviceaccount:shop:builder", &["system:serviceaccounts"]);
        assert!(allowed(&a, &builder, &get("shop")));
        assert!(!allowed(&a, &builder, &get("bank")));
        assert!(!allowed(&a, &user("system:serviceaccount:bank:builder", &[]), &get("shop")));
        assert!(!allowed(&a, &user("builder", &[]), &get("shop")), "the bare name is not the service account");
        let ci = user("system:serviceaccount:tools:ci", &[]);
        assert!(allowed(&a, &ci, &get("shop")));
        assert!(!allowed(&a, &user("system:serviceaccount:shop:ci", &[]), &get("shop")));
        let monitor = user("system:serviceaccount:ops:monitor", &[]);
        assert!(allowed(&a, &monitor, &get("anywhere")));
        assert!(allowed(&a, &monitor, &res("get", "", "pods", "", "", "")));
        for ns in ["", "default", "shop"] {
            assert!(!allowed(&a, &user(&format!("system:serviceaccount:{ns}:ghost"), &[]), &get("shop")));
        }
        assert_eq!(
            a.authorize(&builder, &get("shop")).reason,
            r#"RBAC: allowed by RoleBinding "local-sa/shop" of ClusterRole "reader" to ServiceAccount "builder/shop""#
        );
        assert_eq!(
            a.authorize(&monitor, &get("x")).reason,
            r#"RBAC: allowed by ClusterRoleBinding "global-sa" of ClusterRole "reader" to ServiceAccount "monitor/ops""#
        );
    }

    #[test]
    fn allow_reason_names_the_first_binding_and_first_matching_subject() {
        let reader = cluster_role("reader", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]));
        let a = Authorizer::new(
            &[],
            &[reader],
            &[role_binding("shop", "a-local", "ClusterRole", "reader", user_subject("dave"))],
            &[
                cluster_binding(
                    "z-readers",
                    "reader",
                    json!([
                        {"kind": "User", "name": "someone-else"},
                        {"kind": "Group", "name": "devs"},
                        {"kind": "User", "name": "alice"},
                    ]),
                ),
                cluster_binding("m-unrelated", "reader", user_subject("carol")),
            ],
        );
        let u = user("alice", &["devs"]);
        // ClusterRoleBindings are walked before RoleBindings, whatever the names.
        let d = a.authorize(&u, &res("get", "", "pods", "", "shop", "p"));
        assert_eq!(
            d,
            Decision {
                allowed: true,
                reason: r#"RBAC: allowed by ClusterRoleBinding "z-readers" of ClusterRole "reader" to Group "devs""#
                    .into()
            }
        );
        let d = a.authorize(&user("dave", &[]), &res("get", "", "pods", "", "shop", "p"));
        assert_eq!(d.reason, r#"RBAC: allowed by RoleBinding "a-local/shop" of ClusterRole "reader" to User "dave""#);
    }

    #[test]
    fn non_resource_urls_exact_prefix_and_star() {
        let a = granting(json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*", "/logs**"]}]));
        let u = alice();
        assert!(allowed(&a, &u, &path("get", "/healthz")));
        assert!(!allowed(&a, &u, &path("get", "/healthz/etcd")), "exact means exact");
        assert!(!allowed(&a, &u, &path("post", "/healthz")));
        assert!(allowed(&a, &u, &path("get", "/apis/apps/v1")));
        assert!(allowed(&a, &u, &path("get", "/apis/")));
        assert!(!allowed(&a, &u, &path("get", "/apis")), "the prefix keeps its slash");
        assert!(allowed(&a, &u, &path("get", "/logs")), "trailing stars are all trimmed");
        assert!(allowed(&a, &u, &path("get", "/logsx/y")));
        assert!(!allowed(&a, &u, &res("get", "", "healthz", "", "", "")), "URL rules grant no resources");
        let all = granting(json!([{"verbs": ["*"], "nonResourceURLs": ["*"]}]));
        assert!(allowed(&all, &u, &path("delete", "/anything/at/all")));
        assert!(!allowed(&all, &u, &res("get", "", "pods", "", "", "")));
    }

    #[test]
    fn non_resource_requests_are_never_granted_by_role_bindings() {
        let urls = json!([{"verbs": ["*"], "nonResourceURLs": ["*"]}]);
        let a = Authorizer::new(
            &[role("shop", "urls", urls.clone())],
            &[cluster_role("urls", urls)],
            &[
                role_binding("shop", "r", "Role", "urls", user_subject("alice")),
                role_binding("shop", "c", "ClusterRole", "urls", user_subject("alice")),
            ],
            &[],
        );
        assert!(!allowed(&a, &alice(), &path("get", "/metrics")));
        assert!(!allowed(&a, &alice(), &path("get", "/version")));
    }

    #[test]
    fn system_masters_is_always_allowed() {
        let empty = Authorizer::default();
        let admin = user("kubernetes-admin", &[SUPERUSER_GROUP, "system:authenticated"]);
        for attrs in [
            res("delete", "", "nodes", "", "", "n1"),
            res("create", "", "pods", "eviction", "shop", "p"),
            path("get", "/metrics"),
        ] {
            assert_eq!(empty.authorize(&admin, &attrs), Decision { allowed: true, reason: String::new() });
        }
        // A user *named* system:masters is not a member.
        assert!(!allowed(&empty, &user(SUPERUSER_GROUP, &[]), &path("get", "/metrics")));
    }

    #[test]
    fn binding_to_a_missing_role_grants_nothing_and_says_why() {
        let a = Authorizer::new(
            &[],
            &[cluster_role("real", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]))],
            &[role_binding("shop", "dangling-role", "Role", "nope", user_subject("alice"))],
            &[
                cluster_binding("dangling", "ghost", user_subject("alice")),
                cluster_binding("dangling-again", "ghost", user_subject("alice")),
                cluster_binding("works", "real", user_subject("alice")),
            ],
        );
        assert!(allowed(&a, &alice(), &res("get", "", "pods", "", "shop", "p")));
        let d = a.authorize(&alice(), &res("list", "", "nodes", "", "", ""));
        assert_eq!(
            d,
            Decision {
                allowed: false,
                reason: r#"RBAC: clusterrole.rbac.authorization.k8s.io "ghost" not found"#.into()
            }
        );
        let d = a.authorize(&alice(), &res("delete", "", "pods", "", "shop", "p"));
        assert!(!d.allowed);
        assert_eq!(
            d.reason,
            r#"RBAC: [clusterrole.rbac.authorization.k8s.io "ghost" not found, role.rbac.authorization.k8s.io "nope" not found]"#
        );
        // Somebody else's dangling binding is no concern of bob's.
        assert_eq!(
            a.authorize(&user("bob", &[]), &path("get", "/x")),
            Decision { allowed: false, reason: String::new() }
        );
        // A ClusterRoleBinding cannot point at a Role; an unknown kind resolves to nothing.
        let odd = Authorizer::new(
            &[role("shop", "r", json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]))],
            &[],
            &[],
            &[
                json!({"metadata": {"name": "to-role"}, "subjects": user_subject("alice"), "roleRef": {"kind": "Role", "name": "r"}}),
                json!({"metadata": {"name": "to-thing"}, "subjects": user_subject("alice"), "roleRef": {"kind": "Thing", "name": "r"}}),
            ],
        );
        let d = odd.authorize(&alice(), &res("get", "", "pods", "", "shop", "p"));
        assert_eq!(
            d.reason,
            r#"RBAC: [role.rbac.authorization.k8s.io "r" not found, unsupported role reference kind: "Thing"]"#
        );
    }

    #[test]
    fn malformed_objects_are_skipped() {
        let good_rules = json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]);
        let a = Authorizer::new(
            &[
                json!("not an object"),
                json!({"metadata": {"name": "no-namespace"}, "rules": good_rules}),
                json!({"metadata": {"namespace": "shop"}, "rules": good_rules}),
            ],
            &[
                json!(null),
                json!({"metadata": {"name": "bad-rules"}, "rules": "everything"}),
                json!({"metadata": {"name": "bad-verbs"}, "rules": [{"verbs": "*"}]}),
                json!({"metadata": {"name": 7}, "rules": good_rules}),
                json!({"metadata": {"name": "ok"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": null}]}),
                json!({"metadata": {"name": "null-rules"}, "rules": null}),
            ],
            &[
                json!({"metadata": {"name": "no-ns"}, "subjects": user_subject("alice"), "roleRef": {"kind": "ClusterRole", "name": "ok"}}),
                json!({"metadata": {"name": "x", "namespace": "shop"}, "subjects": user_subject("alice")}),
            ],
            &[
                json!([1, 2, 3]),
                json!({"metadata": {"name": "bad-subjects"}, "subjects": [{"kind": "User"}], "roleRef": {"kind": "ClusterRole", "name": "ok"}}),
                json!({"metadata": {"name": "bad-role"}, "subjects": user_subject("alice"), "roleRef": {"kind": "ClusterRole", "name": "bad-rules"}}),
                json!({"metadata": {"name": "no-subjects"}, "roleRef": {"kind": "ClusterRole", "name": "ok"}}),
                json!({"metadata": {"name": "null-subjects"}, "subjects": null, "roleRef": {"kind": "ClusterRole", "name": "ok"}}),
                json!({"metadata": {"name": "null-rules"}, "subjects": user_subject("carol"), "roleRef": {"kind": "ClusterRole", "name": "null-rules"}}),
                cluster_binding("good", "ok", user_subject("bob")),
            ],
        );
        let get = res("get", "", "pods", "", "shop", "p");
        assert!(allowed(&a, &user("bob", &[]), &get));
        let d = a.authorize(&alice(), &get);
        assert_eq!(
            d,
            Decision {
                allowed: false,
                reason: r#"RBAC: clusterrole.rbac.authorization.k8s.io "bad-rules" not found"#.into()
            }
        );
        assert_eq!(a.authorize(&user("carol", &[]), &get), Decision { allowed: false, reason: String::new() });
    }

    #[test]
    fn later_duplicates_replace_earlier_ones() {
        let a = Authorizer::new(
            &[],
            &[
                cluster_role("r", json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])),
                cluster_role("r", json!([{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}])),
            ],
            &[],
            &[cluster_binding("b", "r", user_subject("alice")), cluster_binding("b", "r", user_subject("bob"))],
        );
        assert!(!allowed(&a, &user("bob", &[]), &res("get", "", "pods", "", "x", "p")));
        assert!(allowed(&a, &user("bob", &[]), &res("list", "", "pods", "", "x", "")));
        assert!(!allowed(&a, &alice(), &res("list", "", "pods", "", "x", "")));
    }

    fn labelled(name: &str, labels: Value, rules: Value) -> Value {
        json!({"apiVersion": RBAC_API_VERSION, "kind": "ClusterRole", "metadata": {"name": name, "labels": labels}, "rules": rules})
    }

    fn aggregating(name: &str, labels: Value, selectors: Value) -> Value {
        json!({
            "apiVersion": RBAC_API_VERSION, "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels},
            "aggregationRule": {"clusterRoleSelectors": selectors},
        })
    }

    fn verbs_rule(verb: &str, resource: &str) -> PolicyRule {
        PolicyRule {
            verbs: vec![verb.into()],
            api_groups: vec!["".into()],
            resources: vec![resource.into()],
            ..PolicyRule::default()
        }
    }

    fn rule_value(verb: &str, resource: &str) -> Value {
        json!({"verbs": [verb], "apiGroups": [""], "resources": [resource]})
    }

    #[test]
    fn aggregation_with_match_labels_and_expressions() {
        let roles = vec![
            labelled(
                "b-pods",
                json!({"team": "a", "tier": "web"}),
                json!([rule_value("get", "pods"), rule_value("list", "pods")]),
            ),
            labelled("a-svc", json!({"team": "a"}), json!([rule_value("get", "services"), rule_value("get", "pods")])),
            labelled("c-secrets", json!({"team": "b", "sensitive": "yes"}), json!([rule_value("get", "secrets")])),
            labelled("d-nodes", json!({}), json!([rule_value("get", "nodes")])),
            aggregating("by-labels", json!({"team": "a"}), json!([{"matchLabels": {"team": "a"}}])),
            aggregating(
                "by-expressions",
                json!({}),
                json!([
                    {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}, {"key": "sensitive", "operator": "DoesNotExist"}]},
                    {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}, {"key": "team", "operator": "Exists"}]},
                ]),
            ),
            aggregating(
                "invalid",
                json!({}),
                json!([{"matchExpressions": [{"key": "team", "operator": "In", "values": []}]}]),
            ),
            aggregating(
                "bad-operator",
                json!({}),
                json!([{"matchExpressions": [{"key": "team", "operator": "Gt", "values": ["1"]}]}]),
            ),
            aggregating("everything", json!({}), json!([{}])),
            aggregating("nothing", json!({}), json!([])),
            json!({"metadata": {"name": "broken"}, "aggregationRule": "yes"}),
        ];
        let out: BTreeMap<String, Vec<PolicyRule>> = aggregate(&roles).into_iter().collect();
        assert_eq!(out.keys().collect::<Vec<_>>(), ["by-expressions", "by-labels", "everything", "nothing"]);
        // Name order (a-svc before b-pods), rule order within, duplicates once, itself excluded.
        assert_eq!(
            out["by-labels"],
            [verbs_rule("get", "services"), verbs_rule("get", "pods"), verbs_rule("list", "pods")]
        );
        // First selector: a-svc, b-pods (c-secrets is sensitive). Second: a-svc, c-secrets.
        assert_eq!(
            out["by-expressions"],
            [
                verbs_rule("get", "services"),
                verbs_rule("get", "pods"),
                verbs_rule("list", "pods"),
                verbs_rule("get", "secrets")
            ]
        );
        assert!(out["nothing"].is_empty());
        // `{}` selects every role, aggregated ones (as aggregated) included.
        let everything = &out["everything"];
        for r in [verbs_rule("get", "nodes"), verbs_rule("get", "secrets"), verbs_rule("list", "pods")] {
            assert!(everything.contains(&r), "{r:?}");
        }
        assert_eq!(everything.len(), 5);
    }

    #[test]
    fn aggregation_follows_chains_of_aggregated_roles() {
        let roles = vec![
            aggregating("top", json!({}), json!([{"matchLabels": {"to-top": "true"}}])),
            aggregating("middle", json!({"to-top": "true"}), json!([{"matchLabels": {"to-middle": "true"}}])),
            labelled("leaf", json!({"to-middle": "true"}), json!([rule_value("get", "pods")])),
            labelled("direct", json!({"to-top": "true"}), json!([rule_value("delete", "pods")])),
        ];
        let out: BTreeMap<String, Vec<PolicyRule>> = aggregate(&roles).into_iter().collect();
        assert_eq!(out["middle"], [verbs_rule("get", "pods")]);
        assert_eq!(out["top"], [verbs_rule("delete", "pods"), verbs_rule("get", "pods")]);
        // Stale stored rules of an aggregated role are replaced, not kept.
        let mut stale = roles.clone();
        stale[1]["rules"] = json!([rule_value("escalate", "everything")]);
        let out: BTreeMap<String, Vec<PolicyRule>> = aggregate(&stale).into_iter().collect();
        assert_eq!(out["top"], [verbs_rule("delete", "pods"), verbs_rule("get", "pods")]);
        // A selector cycle terminates.
        let cycle = vec![
            aggregating("x", json!({"to-y": "true"}), json!([{"matchLabels": {"to-x": "true"}}])),
            aggregating("y", json!({"to-x": "true"}), json!([{"matchLabels": {"to-y": "true"}}])),
        ];
        assert_eq!(aggregate(&cycle).len(), 2);
    }

    /// The bootstrap policy with aggregation applied, as a cluster shows it after the
    /// controller ran, plus `extra` bindings.
    fn bootstrapped(role_bindings: &[Value]) -> Authorizer {
        let objects = bootstrap_objects();
        let mut cluster_roles: Vec<Value> = objects.iter().filter(|o| o["kind"] == "ClusterRole").cloned().collect();
        for (name, rules) in aggregate(&cluster_roles) {
            for r in cluster_roles.iter_mut().filter(|r| r["metadata"]["name"] == name.as_str()) {
                r["rules"] = Value::Array(rules.iter().map(rule_json).collect());
            }
        }
        let bindings: Vec<Value> = objects.iter().filter(|o| o["kind"] == "ClusterRoleBinding").cloned().collect();
        Authorizer::new(&[], &cluster_roles, role_bindings, &bindings)
    }

    #[test]
    fn bootstrap_policy_for_authenticated_and_anonymous_users() {
        let a = bootstrapped(&[]);
        let authed = user("alice", &["system:authenticated"]);
        for p in [
            "/version",
            "/version/",
            "/apis",
            "/apis/apps/v1",
            "/api/v1",
            "/openapi/v3",
            "/healthz",
            "/livez",
            "/readyz",
        ] {
            assert!(allowed(&a, &authed, &path("get", p)), "{p}");
        }
        assert!(!allowed(&a, &authed, &path("get", "/metrics")));
        assert!(!allowed(&a, &authed, &path("post", "/apis")));
        let ssar = res("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", "");
        assert!(allowed(&a, &authed, &ssar));
        assert!(allowed(&a, &authed, &res("create", "authentication.k8s.io", "selfsubjectreviews", "", "", "")));
        assert!(!allowed(&a, &authed, &res("create", "authorization.k8s.io", "subjectaccessreviews", "", "", "")));
        let nodes = res("list", "", "nodes", "", "", "");
        assert_eq!(a.authorize(&authed, &nodes), Decision { allowed: false, reason: String::new() });
        assert_eq!(
            a.authorize(&authed, &path("get", "/version")).reason,
            r#"RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole "system:discovery" to Group "system:authenticated""#
        );

        let anonymous = user("system:anonymous", &["system:unauthenticated"]);
        assert!(allowed(&a, &anonymous, &path("get", "/readyz")));
        assert!(allowed(&a, &anonymous, &path("get", "/version")));
        assert!(!allowed(&a, &anonymous, &path("get", "/apis")));
        assert!(!allowed(&a, &anonymous, &path("get", "/metrics")));
        assert!(!allowed(&a, &anonymous, &ssar));
        assert_eq!(
            a.authorize(&anonymous, &path("get", "/readyz")).reason,
            r#"RBAC: allowed by ClusterRoleBinding "system:public-info-viewer" of ClusterRole "system:public-info-viewer" to Group "system:unauthenticated""#
        );
    }

    #[test]
    fn bootstrap_policy_kubeadm_cluster_admins_can_do_anything() {
        let a = bootstrapped(&[]);
        let admin = user("kubernetes-admin", &["kubeadm:cluster-admins", "system:authenticated"]);
        for attrs in [
            res("delete", "", "nodes", "", "", "n1"),
            res("escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", "x"),
            res("create", "", "pods", "eviction", "kube-system", "p"),
            path("get", "/metrics"),
            path("post", "/anything"),
        ] {
            assert!(allowed(&a, &admin, &attrs), "{attrs:?}");
        }
        assert_eq!(
            a.authorize(&admin, &path("get", "/metrics")).reason,
            r#"RBAC: allowed by ClusterRoleBinding "kubeadm:cluster-admins" of ClusterRole "cluster-admin" to Group "kubeadm:cluster-admins""#
        );
    }

    #[test]
    fn bootstrap_view_edit_admin_after_aggregation() {
        let bind =
            |name: &str, role: &str, who: &str| role_binding("shop", name, "ClusterRole", role, user_subject(who));
        let a = bootstrapped(&[bind("v", "view", "viewer"), bind("e", "edit", "editor"), bind("a", "admin", "admin")]);
        let (viewer, editor, admin) = (user("viewer", &[]), user("editor", &[]), user("admin", &[]));
        let in_shop = |verb: &str, group: &str, resource: &str, sub: &str| res(verb, group, resource, sub, "shop", "x");

        assert!(allowed(&a, &viewer, &in_shop("get", "", "pods", "")));
        assert!(allowed(&a, &viewer, &in_shop("watch", "apps", "deployments", "")));
        assert!(allowed(&a, &viewer, &in_shop("list", "policy", "poddisruptionbudgets", "")));
        assert!(allowed(&a, &viewer, &in_shop("get", "", "pods", "log")));
        assert!(!allowed(&a, &viewer, &in_shop("get", "", "secrets", "")), "view must not read secrets");
        assert!(!allowed(&a, &viewer, &in_shop("list", "", "secrets", "")));
        assert!(!allowed(&a, &viewer, &in_shop("create", "", "pods", "exec")));
        assert!(!allowed(&a, &viewer, &in_shop("delete", "", "pods", "")));
        assert!(!allowed(&a, &viewer, &res("get", "", "pods", "", "bank", "x")));

        assert!(allowed(&a, &editor, &in_shop("get", "", "secrets", "")));
        assert!(allowed(&a, &editor, &in_shop("create", "", "pods", "eviction")));
        assert!(allowed(&a, &editor, &in_shop("create", "", "pods", "exec")));
        assert!(allowed(&a, &editor, &in_shop("patch", "apps", "deployments", "scale")));
        assert!(allowed(&a, &editor, &in_shop("get", "", "pods", "")), "edit includes view");
        assert!(!allowed(&a, &editor, &in_shop("create", "rbac.authorization.k8s.io", "rolebindings", "")));
        assert!(!allowed(&a, &editor, &in_shop("update", "", "namespaces", "")));

        assert!(allowed(&a, &admin, &in_shop("create", "rbac.authorization.k8s.io", "rolebindings", "")));
        assert!(allowed(&a, &admin, &in_shop("delete", "", "secrets", "")), "admin includes edit");
        assert!(allowed(&a, &admin, &in_shop("list", "batch", "cronjobs", "")), "and view");
        assert!(!allowed(&a, &admin, &res("list", "", "nodes", "", "", "")));
    }

    #[test]
    fn bootstrap_objects_carry_upstream_metadata() {
        let objects = bootstrap_objects();
        let names: Vec<(String, String)> = objects
            .iter()
            .map(|o| {
                (o["kind"].as_str().unwrap_or("").to_string(), o["metadata"]["name"].as_str().unwrap_or("").to_string())
            })
            .collect();
        for (kind, name) in [
            ("ClusterRole", "cluster-admin"),
            ("ClusterRole", "admin"),
            ("ClusterRole", "edit"),
            ("ClusterRole", "view"),
            ("ClusterRole", "system:aggregate-to-admin"),
            ("ClusterRole", "system:aggregate-to-edit"),
            ("ClusterRole", "system:aggregate-to-view"),
            ("ClusterRole", "system:discovery"),
            ("ClusterRole", "system:basic-user"),
            ("ClusterRole", "system:public-info-viewer"),
            ("ClusterRoleBinding", "cluster-admin"),
            ("ClusterRoleBinding", "system:discovery"),
            ("ClusterRoleBinding", "system:basic-user"),
            ("ClusterRoleBinding", "system:public-info-viewer"),
            ("ClusterRoleBinding", "kubeadm:cluster-admins"),
        ] {
            assert!(names.contains(&(kind.to_string(), name.to_string())), "{kind} {name}");
        }
        assert_eq!(objects.len(), 15);
        for o in &objects {
            assert_eq!(o["apiVersion"], RBAC_API_VERSION);
            let meta = &o["metadata"];
            if meta["name"] == "kubeadm:cluster-admins" {
                assert!(meta.get("labels").is_none() && meta.get("annotations").is_none());
                assert_eq!(o["roleRef"]["name"], "cluster-admin");
                continue;
            }
            assert_eq!(meta["labels"]["kubernetes.io/bootstrapping"], "rbac-defaults", "{meta}");
            assert_eq!(meta["annotations"]["rbac.authorization.kubernetes.io/autoupdate"], "true", "{meta}");
        }
        let find = |kind: &str, name: &str| objects.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == name);
        let view = find("ClusterRole", "view").cloned().unwrap_or_default();
        assert_eq!(view["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"][AGGREGATE_TO_VIEW], "true");
        assert_eq!(view["metadata"]["labels"][AGGREGATE_TO_EDIT], "true");
        assert_eq!(
            find("ClusterRole", "edit").map(|e| e["metadata"]["labels"][AGGREGATE_TO_ADMIN].clone()),
            Some(json!("true"))
        );
        let discovery = find("ClusterRole", "system:discovery").cloned().unwrap_or_default();
        assert_eq!(
            discovery["rules"],
            json!([{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"]}])
        );
        let piv = find("ClusterRoleBinding", "system:public-info-viewer").cloned().unwrap_or_default();
        assert_eq!(
            piv["subjects"],
            json!([
                {"kind": "Group", "apiGroup": RBAC_GROUP, "name": "system:authenticated"},
                {"kind": "Group", "apiGroup": RBAC_GROUP, "name": "system:unauthenticated"},
            ])
        );
        let writes = find("ClusterRole", "system:aggregate-to-edit").cloned().unwrap_or_default();
        assert_eq!(writes["rules"][2]["verbs"], json!(["create", "delete", "deletecollection", "patch", "update"]));
    }

    #[test]
    fn forbidden_messages_match_kube_apiserver() {
        let alice = alice();
        assert_eq!(
            forbidden_message(&alice, &res("list", "", "nodes", "", "", "")),
            r#"nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope"#
        );
        assert_eq!(
            forbidden_message(&alice, &res("create", "", "pods", "eviction", "shop", "web-1")),
            r#"pods "web-1" is forbidden: User "alice" cannot create resource "pods/eviction" in API group "" in the namespace "shop""#
        );
        assert_eq!(
            forbidden_message(&user("system:anonymous", &["system:unauthenticated"]), &path("get", "/metrics")),
            r#"forbidden: User "system:anonymous" cannot get path "/metrics""#
        );
        assert_eq!(
            forbidden_message(&alice, &res("patch", "apps", "deployments", "scale", "shop", "web")),
            r#"deployments.apps "web" is forbidden: User "alice" cannot patch resource "deployments/scale" in API group "apps" in the namespace "shop""#
        );
        assert_eq!(
            forbidden_message(&alice, &res("list", "rbac.authorization.k8s.io", "clusterroles", "", "", "")),
            r#"clusterroles.rbac.authorization.k8s.io is forbidden: User "alice" cannot list resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope"#
        );
        // Quoting is Go's %q and the message part is HTML-sanitized; the name prefix is not.
        assert_eq!(
            forbidden_message(&user("a\"b<c>&", &[]), &res("get", "", "secrets", "", "ns", "x<y")),
            r#"secrets "x<y" is forbidden: User "a\"b&lt;c&gt;&amp;" cannot get resource "secrets" in API group "" in the namespace "ns""#
        );
        assert_eq!(go_quote("tab\there\n\u{1}"), r#""tab\there\n\x01""#);
    }

    #[test]
    fn rules_for_reports_what_applies_here() {
        let a = Authorizer::new(
            &[role(
                "shop",
                "local",
                json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cfg"]}]),
            )],
            &[
                cluster_role(
                    "mixed",
                    json!([
                        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "nonResourceURLs": ["/healthz"]},
                        {"verbs": ["get"], "nonResourceURLs": ["/version"]},
                    ]),
                ),
                cluster_role(
                    "again",
                    json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "nonResourceURLs": ["/version"]}]),
                ),
            ],
            &[
                role_binding("shop", "local", "Role", "local", user_subject("alice")),
                role_binding("bank", "elsewhere", "ClusterRole", "again", json!([{"kind": "User", "name": "alice"}])),
                role_binding("shop", "dangling", "Role", "missing", user_subject("alice")),
            ],
            &[
                cluster_binding("mixed", "mixed", user_subject("alice")),
                cluster_binding("again", "again", user_subject("alice")),
            ],
        );
        let (resources, non_resources) = a.rules_for(&alice(), "shop");
        let pods = verbs_rule("get", "pods");
        let cfg = PolicyRule { resource_names: vec!["cfg".into()], ..verbs_rule("get", "configmaps") };
        assert_eq!(resources, [pods.clone(), cfg]);
        let url = |u: &str| PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec![u.into()],
            ..PolicyRule::default()
        };
        // ClusterRoleBindings by name: `again` comes first; its /version is not repeated for `mixed`.
        assert_eq!(non_resources, [url("/version"), url("/healthz")]);

        let (resources, non_resources) = a.rules_for(&alice(), "");
        assert_eq!(resources, [pods]);
        assert_eq!(non_resources.len(), 2);
        assert_eq!(a.rules_for(&user("bob", &[]), "shop"), (vec![], vec![]));

        let (resources, non_resources) = Authorizer::default().rules_for(&user("root", &[SUPERUSER_GROUP]), "shop");
        assert_eq!(
            serde_json::to_value(&resources).ok(),
            Some(json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]))
        );
        assert_eq!(
            serde_json::to_value(&non_resources).ok(),
            Some(json!([{"verbs": ["*"], "nonResourceURLs": ["*"]}]))
        );
    }

    #[test]
    fn policy_rule_serde_uses_kubernetes_field_names() {
        let rule = PolicyRule { verbs: vec![], non_resource_urls: vec!["/x".into()], ..PolicyRule::default() };
        assert_eq!(serde_json::to_value(&rule).ok(), Some(json!({"verbs": [], "nonResourceURLs": ["/x"]})));
        let back: Option<PolicyRule> = serde_json::from_value(
            json!({"verbs": ["get"], "apiGroups": null, "resourceNames": ["a"], "nonResourceURLs": ["/y"]}),
        )
        .ok();
        assert_eq!(
            back,
            Some(PolicyRule {
                verbs: vec!["get".into()],
                resource_names: vec!["a".into()],
                non_resource_urls: vec!["/y".into()],
                ..PolicyRule::default()
            })
        );
        for r in aggregate_to_view_rules().iter().chain(&aggregate_to_edit_rules()) {
            assert_eq!(serde_json::to_value(r).ok(), Some(rule_json(r)));
        }
    }

    #[test]
    fn many_bindings_are_indexed_not_scanned() {
        let roles: Vec<Value> = (0..200)
            .map(|i| {
                cluster_role(
                    &format!("role-{i}"),
                    json!([{"verbs": ["get"], "apiGroups": [""], "resources": [format!("kind{i}")]}]),
                )
            })
            .collect();
        let bindings: Vec<Value> = (0..5000)
            .map(|i| {
                cluster_binding(&format!("b-{i:05}"), &format!("role-{}", i % 200), user_subject(&format!("user-{i}")))
            })
            .collect();
        let a = Authorizer::new(&[], &roles, &[], &bindings);
        assert_eq!(a.cluster.applicable(&user("user-4321", &["g1", "g2"])), vec![(4321, 0)]);
        assert!(allowed(&a, &user("user-4321", &[]), &res("get", "", "kind121", "", "", "")));
        assert!(!allowed(&a, &user("user-4321", &[]), &res("get", "", "kind122", "", "", "")));
    }
}
