//! Which resources the simulated apiserver serves, and its discovery documents.
//!
//! The served set follows the simulated Kubernetes version: the built-in GA resources, plus every
//! deprecated group-version of the catalog's `apis.yaml` that the version still serves
//! (`introducedIn <= version < removedIn`), plus group-version-kinds that scenario manifests or
//! CustomResourceDefinitions bring (served generically). Discovery is answered in the legacy form
//! and in aggregated form (v2 or v2beta1), chosen by the `Accept` header as kubectl expects.

use serde_json::{Value, json};

use super::store::StorageKey;
use crate::catalog::Catalog;
use crate::version::Minor;

pub const ALL_VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const NAMESPACE_VERBS: [&str; 7] = ["create", "delete", "get", "list", "patch", "update", "watch"];

/// A subresource as discovery lists it.
#[derive(Debug, Clone)]
pub struct SubDef {
    pub name: &'static str,
    pub kind: String,
    pub group: String,
    pub version: String,
    pub verbs: Vec<&'static str>,
}

/// One served resource at one group-version.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Vec<SubDef>,
    pub storage: StorageKey,
    /// `Some(removed_in)` for a deprecated version ("" when no removal is scheduled).
    pub deprecated: Option<String>,
    /// A create-only review (SelfSubjectAccessReview and kin): answered, never stored.
    pub review: bool,
    /// A kind a scenario brought (a CRD's, or an unknown group's): served as
    /// apiextensions-apiserver serves custom resources, not as a built-in.
    pub custom: bool,
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn singular(&self) -> String {
        self.kind.to_lowercase()
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        if self.review {
            &["create"]
        } else if self.group.is_empty() && self.resource == "namespaces" {
            // The namespace registry has no DELETE on the collection.
            &NAMESPACE_VERBS
        } else {
            &ALL_VERBS
        }
    }
}

fn def(group: &str, version: &str, resource: &str, kind: &str, namespaced: bool, short: &[&str]) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        version: version.into(),
        resource: resource.into(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: vec![],
        subresources: vec![],
        storage: StorageKey::new(group.to_string(), resource.to_string()),
        deprecated: None,
        review: false,
        custom: false,
    }
}

fn sub(name: &'static str, def: &ResourceDef, verbs: &[&'static str]) -> SubDef {
    SubDef {
        name,
        kind: def.kind.clone(),
        group: def.group.clone(),
        version: def.version.clone(),
        verbs: verbs.to_vec(),
    }
}

/// The GA resources every simulated version serves (those that exist at `minor`).
fn builtins(minor: Minor) -> Vec<ResourceDef> {
    let mut out = Vec::new();
    let mut push = |mut d: ResourceDef, subs: &[&'static str], all: bool| {
        for s in subs {
            let verbs: &[&'static str] =
                if *s == "scale" || *s == "status" { &["get", "patch", "update"] } else { &["create"] };
            let mut sd = sub(s, &d, verbs);
            // The scale subresource speaks autoscaling/v1 Scale, whatever its parent's kind.
            if *s == "scale" {
                sd.group = "autoscaling".into();
                sd.version = "v1".into();
                sd.kind = "Scale".into();
            }
            d.subresources.push(sd);
        }
        if all {
            d.categories.push("all".into());
        }
        out.push(d);
    };
    push(def("", "v1", "namespaces", "Namespace", false, &["ns"]), &["status"], false);
    push(def("", "v1", "nodes", "Node", false, &["no"]), &["status"], false);
    let mut pods = def("", "v1", "pods", "Pod", true, &["po"]);
    pods.subresources.push(SubDef {
        name: "eviction",
        kind: "Eviction".into(),
        group: "policy".into(),
        version: "v1".into(),
        verbs: vec!["create"],
    });
    push(pods, &["status"], true);
    push(def("", "v1", "events", "Event", true, &["ev"]), &[], false);
    push(def("", "v1", "secrets", "Secret", true, &[]), &[], false);
    push(def("", "v1", "configmaps", "ConfigMap", true, &["cm"]), &[], false);
    push(def("", "v1", "services", "Service", true, &["svc"]), &["status"], true);
    push(def("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]), &[], false);
    push(def("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, &["pvc"]), &["status"], false);
    push(def("", "v1", "persistentvolumes", "PersistentVolume", false, &["pv"]), &["status"], false);
    push(def("apps", "v1", "deployments", "Deployment", true, &["deploy"]), &["status", "scale"], true);
    push(def("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"]), &["status", "scale"], true);
    push(def("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"]), &["status", "scale"], true);
    push(def("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"]), &["status"], true);
    push(def("batch", "v1", "jobs", "Job", true, &[]), &["status"], true);
    if minor >= Minor::new(1, 21) {
        push(def("batch", "v1", "cronjobs", "CronJob", true, &["cj"]), &["status"], true);
    }
    if minor >= Minor::new(1, 21) {
        push(def("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"]), &["status"], false);
    }
    push(def("coordination.k8s.io", "v1", "leases", "Lease", true, &[]), &[], false);
    let mut ev = def("events.k8s.io", "v1", "events", "Event", true, &["ev"]);
    ev.storage = StorageKey::core("events");
    push(ev, &[], false);
    push(
        def(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
        ),
        &["status"],
        false,
    );
    push(def("networking.k8s.io", "v1", "ingresses", "Ingress", true, &["ing"]), &["status"], false);
    push(def("networking.k8s.io", "v1", "ingressclasses", "IngressClass", false, &[]), &[], false);
    push(def("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"]), &[], false);
    push(def("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[]), &[], false);
    push(def("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[]), &[], false);
    push(def("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[]), &[], false);
    push(def("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[]), &[], false);
    push(def("storage.k8s.io", "v1", "storageclasses", "StorageClass", false, &["sc"]), &[], false);
    push(def("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", false, &[]), &["status"], false);
    for (group, resource, kind, since) in [
        ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview", 19),
        ("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview", 19),
        ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", 28),
    ] {
        if minor >= Minor::new(1, since) {
            let mut d = def(group, "v1", resource, kind, false, &[]);
            d.review = true;
            push(d, &[], false);
        }
    }
    push(
        def(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            false,
            &[],
        ),
        &[],
        false,
    );
    push(
        def(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            false,
            &[],
        ),
        &[],
        false,
    );
    push(def("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", false, &["pc"]), &[], false);
    if minor >= Minor::new(1, 23) {
        push(
            def("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, &["hpa"]),
            &["status"],
            true,
        );
    }
    if minor >= Minor::new(1, 29) {
        push(def("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", "FlowSchema", false, &[]), &["status"], false);
        push(
            def(
                "flowcontrol.apiserver.k8s.io",
                "v1",
                "prioritylevelconfigurations",
                "PriorityLevelConfiguration",
                false,
                &[],
            ),
            &["status"],
            false,
        );
    }
    out
}

/// A group-version-kind a scenario brings that the built-ins do not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraKind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub resource: String,
    pub namespaced: bool,
}

/// Guesses the plural resource name of a kind the way most CRDs spell it.
pub fn plural_of(kind: &str) -> String {
    crate::catalog::lifecycle::resource_of(kind)
}

/// Everything served at one version.
#[derive(Debug, Clone)]
pub struct Registry {
    pub minor: Minor,
    pub defs: Vec<ResourceDef>,
}

impl Registry {
    pub fn for_version(minor: Minor, catalog: &Catalog, extras: &[ExtraKind]) -> Registry {
        let mut defs = builtins(minor);
        for api in &catalog.apis.apis {
            let served = api.removed_in.is_none_or(|r| minor < r) && api.introduced_in.is_none_or(|i| minor >= i);
            // Versions removed before 1.19 never show up in a cluster we can simulate.
            let ancient = api.removed_in.is_some_and(|r| r <= Minor::new(1, 19));
            // Off unless --runtime-config turns it on: a cluster at its defaults does not serve it.
            if !served || ancient || api.served_by_default == Some(false) {
                continue;
            }
            if defs.iter().any(|d| d.group == api.group && d.version == api.version && d.resource == api.resource) {
                if let Some(d) = defs
                    .iter_mut()
                    .find(|d| d.group == api.group && d.version == api.version && d.resource == api.resource)
                {
                    d.deprecated = Some(api.removed_in.map(|r| r.to_string()).unwrap_or_default());
                }
                continue;
            }
            let mut d = def(&api.group, &api.version, &api.resource, &api.kind, api.namespaced, &[]);
            // Same group and kind as a GA resource: the same objects, served at another version.
            if let Some(ga) = defs.iter().find(|g| g.group == api.group && g.kind == api.kind && g.deprecated.is_none())
            {
                d.storage = ga.storage.clone();
                d.short_names = ga.short_names.clone();
            }
            d.deprecated = Some(api.removed_in.map(|r| r.to_string()).unwrap_or_default());
            defs.push(d);
        }
        for x in extras {
            if defs.iter().any(|d| d.group == x.group && d.version == x.version && d.kind == x.kind) {
                continue;
            }
            let mut d = def(&x.group, &x.version, &x.resource, &x.kind, x.namespaced, &[]);
            d.custom = true;
            defs.push(d);
        }
        Registry { minor, defs }
    }

    pub fn find(&self, group: &str, version: &str, resource: &str) -> Option<&ResourceDef> {
        self.defs.iter().find(|d| d.group == group && d.version == version && d.resource == resource)
    }

    /// The def for an object's apiVersion and kind (for scenario manifests).
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceDef> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.defs.iter().find(|d| d.group == group && d.version == version && d.kind == kind)
    }

    /// Served groups in order, each with its versions (preferred first).
    fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for d in self.defs.iter().filter(|d| !d.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == d.group) {
                Some((_, vs)) => {
                    if !vs.contains(&d.version) {
                        vs.push(d.version.clone());
                    }
                }
                None => groups.push((d.group.clone(), vec![d.version.clone()])),
            }
        }
        for (_, vs) in groups.iter_mut() {
            vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }

    pub fn serves_group_version(&self, group: &str, version: &str) -> bool {
        self.defs.iter().any(|d| d.group == group && d.version == version)
    }

    /// `/api` (legacy).
    pub fn api_versions(&self) -> Value {
        json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
    }

    /// `/apis` (legacy).
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .into_iter()
            .map(|(g, vs)| {
                let versions: Vec<Value> =
                    vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
                json!({"name": g, "versions": versions, "preferredVersion": versions[0].clone()})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `/api/v1` or `/apis/G/V`.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        if !self.serves_group_version(group, version) {
            return None;
        }
        let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        let mut resources = Vec::new();
        for d in self.defs.iter().filter(|d| d.group == group && d.version == version) {
            let mut r = json!({
                "name": d.resource, "singularName": d.singular(), "namespaced": d.namespaced, "kind": d.kind,
                "verbs": d.verbs(),
            });
            if !d.short_names.is_empty() {
                r["shortNames"] = json!(d.short_names);
            }
            if !d.categories.is_empty() {
                r["categories"] = json!(d.categories);
            }
            resources.push(r);
            for s in &d.subresources {
                let mut sr = json!({"name": format!("{}/{}", d.resource, s.name), "singularName": "", "namespaced": d.namespaced, "kind": s.kind, "verbs": s.verbs});
                if s.group != d.group || s.version != d.version {
                    sr["group"] = json!(s.group);
                    sr["version"] = json!(s.version);
                }
                resources.push(sr);
            }
        }
        // The core group's list carries no apiVersion; the named groups' lists do.
        Some(if group.is_empty() {
            json!({"kind": "APIResourceList", "groupVersion": gv, "resources": resources})
        } else {
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
        })
    }

    fn discovery_resources(&self, group: &str, version: &str) -> Vec<Value> {
        self.defs
            .iter()
            .filter(|d| d.group == group && d.version == version)
            .map(|d| {
                let mut r = json!({
                    "resource": d.resource,
                    "responseKind": {"group": d.group, "version": d.version, "kind": d.kind},
                    "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": d.singular(),
                    "verbs": d.verbs(),
                });
                if !d.short_names.is_empty() {
                    r["shortNames"] = json!(d.short_names);
                }
                if !d.categories.is_empty() {
                    r["categories"] = json!(d.categories);
                }
                if !d.subresources.is_empty() {
                    r["subresources"] = Value::Array(
                        d.subresources
                            .iter()
                            .map(|s| json!({"subresource": s.name, "responseKind": {"group": s.group, "version": s.version, "kind": s.kind}, "verbs": s.verbs}))
                            .collect(),
                    );
                }
                r
            })
            .collect()
    }

    /// Aggregated discovery for `/api` (core) or `/apis` (groups), at `api_version`
    /// (`apidiscovery.k8s.io/v2` or `/v2beta1`).
    pub fn aggregated(&self, core: bool, api_version: &str) -> Value {
        let items: Vec<Value> = if core {
            vec![
                json!({"metadata": {"creationTimestamp": null}, "versions": [{"version": "v1", "resources": self.discovery_resources("", "v1"), "freshness": "Current"}]}),
            ]
        } else {
            self.groups()
                .into_iter()
                .map(|(g, vs)| {
                    let versions: Vec<Value> = vs
                        .iter()
                        .map(|v| json!({"version": v, "resources": self.discovery_resources(&g, v), "freshness": "Current"}))
                        .collect();
                    json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
                })
                .collect()
        };
        json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
    }
}

/// Kubernetes version priority: GA > beta > alpha, then by number.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let (major, tail) = rest.split_at(rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len()));
    let major: u32 = major.parse().unwrap_or(0);
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(minor: u32) -> Registry {
        Registry::for_version(Minor::new(1, minor), &Catalog::embedded().unwrap(), &[])
    }

    #[test]
    fn deprecated_versions_follow_the_version() {
        assert!(reg(24).serves_group_version("policy", "v1beta1"));
        assert!(reg(24).serves_group_version("batch", "v1beta1"));
        assert!(!reg(25).serves_group_version("policy", "v1beta1"));
        assert!(!reg(25).serves_group_version("batch", "v1beta1"));
        assert!(reg(25).serves_group_version("flowcontrol.apiserver.k8s.io", "v1beta2"));
        assert!(!reg(29).serves_group_version("flowcontrol.apiserver.k8s.io", "v1beta2"));
        assert!(reg(21).serves_group_version("extensions", "v1beta1"));
        assert!(!reg(22).serves_group_version("extensions", "v1beta1"));
    }

    #[test]
    fn aliases_share_storage() {
        let r = reg(24);
        let old = r.find("policy", "v1beta1", "poddisruptionbudgets").unwrap();
        let new = r.find("policy", "v1", "poddisruptionbudgets").unwrap();
        assert_eq!(old.storage, new.storage);
        assert!(old.deprecated.is_some() && new.deprecated.is_none());
    }

    #[test]
    fn eviction_is_listed_for_pods() {
        let list = reg(30).resource_list("", "v1").unwrap();
        let ev = list["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods/eviction").unwrap();
        assert_eq!(ev["group"], "policy");
        assert_eq!(ev["kind"], "Eviction");
    }

    #[test]
    fn plurals() {
        assert_eq!(plural_of("Certificate"), "certificates");
        assert_eq!(plural_of("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural_of("Gateway"), "gateways");
        assert_eq!(plural_of("Ingress"), "ingresses");
    }

    #[test]
    fn preferred_versions() {
        let mut vs = vec!["v1beta1".to_string(), "v1".to_string(), "v2beta2".to_string(), "v2".to_string()];
        vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(vs, ["v2", "v1", "v2beta2", "v1beta1"]);
    }
}
