//! The hop graph: which version hops a distro supports, and the path through them.
//!
//! Owns path search over a petgraph of versions a distro offers (each minor at its newest patch,
//! plus the version a cluster runs today). Edges come from the distro's rules: one minor at a
//! time for the control plane, a patch hop to the newest patch, AKS's jump from an unsupported
//! minor. Blocked edges from the catalog remove a hop when their condition matches what we know
//! about the cluster, and leave a warning when we cannot tell. After the control-plane route is
//! fixed, node rolls are placed with a small shortest-path search over kubelet states so that no
//! hop breaks the skew rule and the number of rolls is the least possible (ties go to later
//! rolls, which land nodes on newer versions). Everything here is pure: the caller passes in the
//! catalog, the facts and today's date.

// A path error is built at most once per question; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt;

use petgraph::algo::astar;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::Serialize;

use crate::catalog::{BlockedEdge, Catalog, Date, DistroFile, Matcher, NodeInfoField, NodeRule};
use crate::version::{Minor, Version};

pub const API_VERSION: &str = "k8s-upgrade.dev/v1alpha1";

/// Where the path should end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The newest version the distro offers.
    Latest,
    Version(Version),
}

impl std::str::FromStr for Target {
    type Err = crate::version::VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("latest") { Ok(Target::Latest) } else { Ok(Target::Version(s.parse()?)) }
    }
}

/// One node's `status.nodeInfo`, as far as blocked-edge conditions need it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfoFacts {
    pub container_runtime_version: String,
    pub os_image: String,
    pub kernel_version: String,
}

impl NodeInfoFacts {
    fn field(&self, f: NodeInfoField) -> &str {
        match f {
            NodeInfoField::ContainerRuntimeVersion => &self.container_runtime_version,
            NodeInfoField::OsImage => &self.os_image,
            NodeInfoField::KernelVersion => &self.kernel_version,
        }
    }
}

/// What is known about the cluster when a path is searched. `None` means unknown: conditions
/// that need an unknown fact neither block nor clear a hop, they warn.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub kubelets: Option<Vec<Version>>,
    pub node_infos: Option<Vec<NodeInfoFacts>>,
    /// Installed component versions by name (`etcd`, `coredns`, add-on names).
    pub components: Option<BTreeMap<String, Version>>,
    pub addons: Option<BTreeSet<String>>,
    /// `(group, version, kind)` of APIs with objects or requests.
    pub apis_in_use: Option<BTreeSet<(String, String, String)>>,
    /// The cluster is on its provider's long-term-support plan (`--lts`; not visible through
    /// the Kubernetes API).
    pub lts: bool,
}

/// A path question.
#[derive(Debug, Clone)]
pub struct PathRequest {
    pub distro: String,
    pub from: Version,
    pub to: Target,
    pub via: Vec<Version>,
    /// Kubelet versions today; empty means "all kubelets at `from`".
    pub kubelets: Vec<Version>,
    pub facts: Facts,
    pub today: Date,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    ControlPlane,
    Nodes,
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Component::ControlPlane => "control-plane",
            Component::Nodes => "nodes",
        })
    }
}

/// One step of the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hop {
    pub from: Version,
    pub to: Version,
    pub component: Component,
    /// Why this hop is here, in one sentence.
    pub reason: String,
    /// For a node roll: which kubelet versions move where (each node moves from its version to
    /// the paired one; nodes on other versions stay).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<KubeletMove>,
}

/// Kubelets on `from` are upgraded to `to` in a node roll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KubeletMove {
    pub from: Version,
    pub to: Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub severity: Severity,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub control_plane_hops: usize,
    pub node_rolls: usize,
}

/// The answer: a versioned document (`kind: UpgradePath`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePath {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub distro: String,
    pub from: Version,
    pub to: Version,
    /// The kubelet versions the node rolls were planned for.
    pub kubelets: Vec<Version>,
    pub hops: Vec<Hop>,
    pub summary: Summary,
    pub notes: Vec<Note>,
    /// Blocked edges on the path that the operator can clear, each before its hop.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<BlockedHop>,
    /// The neighbourhood of the path, for `dot` and `mermaid` pictures.
    #[serde(skip)]
    pub view: GraphView,
}

/// The part of the hop graph around a path.
#[derive(Debug, Clone, Default)]
pub struct GraphView {
    pub nodes: Vec<Version>,
    pub edges: Vec<ViewEdge>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewEdge {
    pub from: Version,
    pub to: Version,
    pub kind: EdgeKind,
    pub on_path: bool,
    /// `Some((name, reason))` when the edge is blocked for this cluster.
    pub blocked: Option<(String, String)>,
    /// Names of conditional blocks that could not be evaluated.
    pub unverified: Vec<String>,
    /// On the path: the name of the block the operator clears before this hop.
    pub prerequisite: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// To the newest patch of the same minor.
    Patch,
    /// To the next minor(s), within the distro's step.
    Minor,
    /// From an unsupported minor straight to the lowest supported one (AKS).
    Jump,
    /// From a long-term-support minor to a higher one still in long-term support (AKS LTS).
    LtsSkip,
}

/// A blocked edge that stopped a hop, with what made it apply; one with a `fix` is a
/// prerequisite of the hop rather than a wall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedHop {
    pub from: Version,
    pub to: Version,
    pub name: String,
    pub reason: String,
    pub source: String,
    pub because: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Why no path could be given. Every variant names the values involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("unknown distro '{name}'; known distros: {known}")]
    UnknownDistro { name: String, known: String },
    #[error(
        "{to} is older than {from}: Kubernetes does not support downgrades; restore from backup or rebuild the cluster instead"
    )]
    Downgrade { from: Version, to: Version },
    #[error("unknown version {version}: the catalog starts at {oldest}")]
    TooOld { version: Version, oldest: Minor },
    #[error(
        "{version} is beyond the catalog (newest known: {newest}, data of {data_date}); pass --paths DIR with newer upgrade-paths data"
    )]
    BeyondCatalog { version: Version, newest: Version, data_date: Date },
    #[error(
        "{distro} does not offer {version} (it offers {offered}); see `k8s-upgrade paths --distro {distro} --list`"
    )]
    NotOffered { distro: String, version: Version, offered: String },
    #[error("--via {via} is not between {from} and {to}")]
    ViaOutOfRange { via: Version, from: Version, to: Version },
    #[error("no upgrade path from {from} to {to} on {distro}: {because}")]
    Blocked { distro: String, from: Version, to: Version, because: String, blocked: Vec<BlockedHop> },
    #[error("no upgrade path from {from} to {to} on {distro}: {because}")]
    NoRoute { distro: String, from: Version, to: Version, because: String },
    #[error(
        "kubelet {kubelet} is newer than the control plane {apiserver}; the skew policy never allows that — check --kubelet"
    )]
    KubeletNewer { kubelet: Version, apiserver: Version },
}

/// Tri-state verdict of a condition against the facts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Matches(String),
    Clear,
    Unknown(String),
}

fn describe(m: &Matcher) -> String {
    match m {
        Matcher::KubeletBelow { version } => format!("a kubelet is older than {version}"),
        Matcher::ComponentBelow { component, version } => format!("{component} is older than {version}"),
        Matcher::NodeInfoPrefix { field, prefix } => format!("a node's {} starts with '{prefix}'", field_name(*field)),
        Matcher::NodeInfoEquals { field, value } => format!("a node's {} is '{value}'", field_name(*field)),
        Matcher::AddonPresent { addon } => format!("{addon} is installed"),
        Matcher::ApiInUse { group, version, kind } => {
            let gv = if group.is_empty() { version.clone() } else { format!("{group}/{version}") };
            match kind {
                Some(k) => format!("{gv} {k} is in use"),
                None => format!("{gv} is in use"),
            }
        }
    }
}

fn field_name(f: NodeInfoField) -> &'static str {
    match f {
        NodeInfoField::ContainerRuntimeVersion => "containerRuntimeVersion",
        NodeInfoField::OsImage => "osImage",
        NodeInfoField::KernelVersion => "kernelVersion",
    }
}

fn evaluate_matcher(m: &Matcher, facts: &Facts) -> Option<bool> {
    match m {
        Matcher::KubeletBelow { version } => {
            facts.kubelets.as_ref().map(|ks| ks.iter().any(|k| k.to_semver() < version.to_semver()))
        }
        Matcher::ComponentBelow { component, version } => {
            facts.components.as_ref().map(|c| c.get(component).is_some_and(|v| v.to_semver() < version.to_semver()))
        }
        Matcher::NodeInfoPrefix { field, prefix } => {
            facts.node_infos.as_ref().map(|nodes| nodes.iter().any(|n| n.field(*field).starts_with(prefix.as_str())))
        }
        Matcher::NodeInfoEquals { field, value } => {
            facts.node_infos.as_ref().map(|nodes| nodes.iter().any(|n| n.field(*field) == value))
        }
        Matcher::AddonPresent { addon } => facts.addons.as_ref().map(|a| a.contains(addon)),
        Matcher::ApiInUse { group, version, kind } => facts.apis_in_use.as_ref().map(|apis| {
            apis.iter().any(|(g, v, k)| g == group && v == version && kind.as_ref().is_none_or(|want| want == k))
        }),
    }
}

fn evaluate(edge: &BlockedEdge, facts: &Facts) -> Verdict {
    let Some(cond) = &edge.condition else {
        return Verdict::Matches("always".into());
    };
    let mut unknown = Vec::new();
    for m in &cond.any_of {
        match evaluate_matcher(m, facts) {
            Some(true) => return Verdict::Matches(describe(m)),
            Some(false) => {}
            None => unknown.push(describe(m)),
        }
    }
    if unknown.is_empty() { Verdict::Clear } else { Verdict::Unknown(unknown.join(" or ")) }
}

/// The blocked edges of `distro` on `from -> to` whose condition holds on what `facts` say, each
/// as (name, what made it apply): for a hop that the plan let through on the operator's word.
pub fn blocks_now(distro: &DistroFile, from: &Version, to: &Version, facts: &Facts) -> Vec<(String, String)> {
    distro
        .blocked_edges
        .iter()
        .filter(|e| edge_applies(e, from, to))
        .filter_map(|e| match evaluate(e, facts) {
            Verdict::Matches(because) => Some((e.name.clone(), because)),
            Verdict::Clear | Verdict::Unknown(_) => None,
        })
        .collect()
}

fn edge_applies(edge: &BlockedEdge, from: &Version, to: &Version) -> bool {
    let Ok(req) = semver::VersionReq::parse(&edge.from) else {
        return false;
    };
    let to_matches = match edge.to.patch {
        None => edge.to.minor_version() == to.minor_version(),
        Some(_) => edge.to.to_semver() == to.to_semver(),
    };
    to_matches && req.matches(&from.to_semver())
}

#[derive(Debug, Clone)]
struct EdgeInfo {
    kind: EdgeKind,
    blocked: Option<BlockedHop>,
    unverified: Vec<(String, String, String)>,
}

/// The hop graph of one distro for one question.
struct HopGraph<'c> {
    catalog: &'c Catalog,
    distro: &'c DistroFile,
    g: DiGraph<Version, EdgeInfo>,
    index: HashMap<Version, NodeIndex>,
}

fn is_supported(catalog: &Catalog, distro: &DistroFile, minor: Minor, today: Date) -> bool {
    match catalog.distro_version(distro, minor) {
        Some(v) => v.released.is_none_or(|r| r <= today) && v.end_of_standard_support.is_none_or(|e| today <= e),
        None => false,
    }
}

impl<'c> HopGraph<'c> {
    fn build(
        catalog: &'c Catalog,
        distro: &'c DistroFile,
        from: &Version,
        extra: &[Version],
        kubelets: &[Version],
        req: &PathRequest,
    ) -> Self {
        let mut hg = HopGraph { catalog, distro, g: DiGraph::new(), index: HashMap::new() };
        let offered = catalog.offered_minors(distro);
        for m in &offered {
            if let Some(v) = catalog.latest_patch(distro, *m) {
                hg.node(v);
            }
        }
        hg.node(from.clone());
        for v in extra {
            hg.node(v.clone());
        }
        let step = distro.control_plane.max_minor_step;
        let nodes: Vec<Version> = hg.g.node_weights().cloned().collect();
        for u in &nodes {
            let mu = u.minor_version();
            if let Some(latest) = catalog.latest_patch(distro, mu)
                && *u < latest
                && (offered.contains(&mu) || u == from)
            {
                // A minor the distro no longer lists still has an upstream newest patch to go to.
                hg.node(latest.clone());
                hg.edge(u, &latest, EdgeKind::Patch, req);
            }
            // A chosen patch of the same minor (a target or waypoint below the newest patch).
            for v in extra.iter().filter(|v| v.minor_version() == mu && *v > u) {
                hg.edge(u, v, EdgeKind::Patch, req);
            }
            for v in &nodes {
                let d = v.minor_version().minors_since(mu);
                let is_latest = catalog.latest_patch(distro, v.minor_version()).as_ref() == Some(v);
                if d >= 1
                    && d <= i64::from(step)
                    && (is_latest || extra.contains(v))
                    && offered.contains(&v.minor_version())
                {
                    hg.edge(u, v, EdgeKind::Minor, req);
                }
            }
        }
        // Nodes can never be newer than the control plane, so a jump or skip may only go as far
        // as the oldest kubelet's skew window reaches.
        let reach = kubelets
            .iter()
            .map(|k| k.minor_version().plus(allowed_lag(&distro.nodes, k.minor_version())))
            .min()
            .unwrap_or(from.minor_version());
        if distro.control_plane.jump_from_unsupported && !is_supported(catalog, distro, from.minor_version(), req.today)
        {
            // Only to the lowest supported minor ("Use the oldest supported GA target").
            if let Some(m) =
                offered.iter().find(|m| **m > from.minor_version() && is_supported(catalog, distro, **m, req.today))
                && *m > from.minor_version().plus(step)
                && *m <= reach
                && let Some(v) = catalog.latest_patch(distro, *m)
            {
                hg.edge(from, &v, EdgeKind::Jump, req);
            }
        }
        if distro.control_plane.lts_skips_to_higher_lts.is_some() && req.facts.lts {
            for m in &offered {
                let in_lts = catalog
                    .distro_version(distro, *m)
                    .is_some_and(|d| d.end_of_extended_support.is_some_and(|e| req.today <= e));
                if *m > from.minor_version().plus(step)
                    && *m <= reach
                    && in_lts
                    && let Some(v) = catalog.latest_patch(distro, *m)
                {
                    hg.edge(from, &v, EdgeKind::LtsSkip, req);
                }
            }
        }
        hg
    }

    fn node(&mut self, v: Version) -> NodeIndex {
        if let Some(&i) = self.index.get(&v) {
            return i;
        }
        let i = self.g.add_node(v.clone());
        self.index.insert(v, i);
        i
    }

    fn edge(&mut self, from: &Version, to: &Version, kind: EdgeKind, req: &PathRequest) {
        let (a, b) = (self.index[from], self.index[to]);
        if self.g.find_edge(a, b).is_some() {
            return;
        }
        let mut blocked = None;
        let mut unverified = Vec::new();
        for e in self.distro.blocked_edges.iter().filter(|e| edge_applies(e, from, to)) {
            match evaluate(e, &req.facts) {
                Verdict::Matches(because) => {
                    if blocked.is_none() {
                        blocked = Some(BlockedHop {
                            from: from.clone(),
                            to: to.clone(),
                            name: e.name.clone(),
                            reason: e.reason.clone(),
                            source: e.source.clone(),
                            because,
                            fix: e.fix.clone(),
                        });
                    }
                }
                Verdict::Clear => {}
                Verdict::Unknown(what) => unverified.push((e.name.clone(), what, e.source.clone())),
            }
        }
        self.g.add_edge(a, b, EdgeInfo { kind, blocked, unverified });
    }

    fn cost(kind: EdgeKind) -> u64 {
        match kind {
            EdgeKind::Patch => 1,
            EdgeKind::Minor | EdgeKind::Jump | EdgeKind::LtsSkip => 1000,
        }
    }

    /// Cheapest route `from -> to`, optionally ignoring blocks (to explain a refusal).
    fn route(&self, from: &Version, to: &Version, ignore_blocks: bool) -> Option<Vec<Version>> {
        let (a, b) = (*self.index.get(from)?, *self.index.get(to)?);
        let (_, path) = astar(
            &self.g,
            a,
            |n| n == b,
            // A wall is large enough to avoid any route through it, small enough that no route
            // sum overflows; a block the operator can clear costs more than any free route, so
            // a route around it wins when one exists.
            |e| match &e.weight().blocked {
                Some(b) if !ignore_blocks && b.fix.is_none() => 1 << 40,
                Some(_) if !ignore_blocks => (1 << 24) + Self::cost(e.weight().kind),
                _ => Self::cost(e.weight().kind),
            },
            |_| 0,
        )?;
        let versions: Vec<Version> = path.iter().map(|i| self.g[*i].clone()).collect();
        if !ignore_blocks && self.blocks_on(&versions).any(|b| b.fix.is_none()) {
            return None;
        }
        Some(versions)
    }

    fn edge_info(&self, a: &Version, b: &Version) -> Option<&EdgeInfo> {
        let e = self.g.find_edge(self.index[a], self.index[b])?;
        self.g.edge_weight(e)
    }

    fn blocks_on<'a>(&'a self, route: &'a [Version]) -> impl Iterator<Item = &'a BlockedHop> + 'a {
        route.windows(2).filter_map(|w| self.edge_info(&w[0], &w[1]).and_then(|e| e.blocked.as_ref()))
    }

    fn view(&self, route: &[Version], lo: Minor, hi: Minor) -> GraphView {
        let in_range = |v: &Version| v.minor_version() >= lo && v.minor_version() <= hi;
        let mut nodes: Vec<Version> = self.g.node_weights().filter(|v| in_range(v)).cloned().collect();
        nodes.sort();
        let on_path: BTreeSet<(Version, Version)> = route.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect();
        let mut edges: Vec<ViewEdge> = self
            .g
            .edge_references()
            .filter(|e| in_range(&self.g[e.source()]) && in_range(&self.g[e.target()]))
            .map(|e| {
                let (from, to) = (self.g[e.source()].clone(), self.g[e.target()].clone());
                let on = on_path.contains(&(from.clone(), to.clone()));
                ViewEdge {
                    on_path: on,
                    kind: e.weight().kind,
                    // A block the path takes after its fix is drawn as a step, not a wall.
                    blocked: e
                        .weight()
                        .blocked
                        .as_ref()
                        .filter(|b| !(on && b.fix.is_some()))
                        .map(|b| (b.name.clone(), b.reason.clone())),
                    prerequisite: e.weight().blocked.as_ref().filter(|b| on && b.fix.is_some()).map(|b| b.name.clone()),
                    unverified: e.weight().unverified.iter().map(|u| u.0.clone()).collect(),
                    from,
                    to,
                }
            })
            .collect();
        edges.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
        GraphView { nodes, edges }
    }
}

fn offered_range(catalog: &Catalog, distro: &DistroFile) -> String {
    let offered = catalog.offered_minors(distro);
    match (offered.first(), offered.last()) {
        (Some(a), Some(b)) if offered.len() as i64 == b.minors_since(*a) + 1 => format!("{a}–{b}"),
        _ => offered.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
    }
}

/// Resolves a user-given version (`1.30` or `1.30.2`) to a concrete one of the distro.
fn resolve(catalog: &Catalog, distro: &DistroFile, v: &Version, must_be_offered: bool) -> Result<Version, PathError> {
    let minor = v.minor_version();
    if minor < catalog.oldest_minor() {
        return Err(PathError::TooOld { version: v.clone(), oldest: catalog.oldest_minor() });
    }
    let Some(upstream_latest) = catalog.release(minor).map(|r| r.latest_patch.without_suffix()) else {
        let newest = catalog
            .latest_patch(distro, catalog.newest_minor())
            .unwrap_or_else(|| catalog.newest_minor().with_patch(0));
        return Err(PathError::BeyondCatalog { version: v.clone(), newest, data_date: catalog.data_date() });
    };
    if must_be_offered && !catalog.offered_minors(distro).contains(&minor) {
        return Err(PathError::NotOffered {
            distro: distro.name.clone(),
            version: v.clone(),
            offered: offered_range(catalog, distro),
        });
    }
    let latest = catalog.latest_patch(distro, minor).unwrap_or(upstream_latest);
    match v.patch {
        None => Ok(latest),
        Some(_) if v.without_suffix() > latest && must_be_offered => {
            Err(PathError::BeyondCatalog { version: v.clone(), newest: latest, data_date: catalog.data_date() })
        }
        Some(_) => Ok(v.without_suffix()),
    }
}

/// Answers a path question.
pub fn find_path(catalog: &Catalog, req: &PathRequest) -> Result<UpgradePath, PathError> {
    let distro = catalog.distro(&req.distro).ok_or_else(|| PathError::UnknownDistro {
        name: req.distro.clone(),
        known: catalog.distro_names().join(", "),
    })?;
    let from = resolve(catalog, distro, &req.from, false)?;
    let target = match &req.to {
        Target::Latest => {
            let newest = *catalog.offered_minors(distro).last().ok_or_else(|| PathError::NoRoute {
                distro: distro.name.clone(),
                from: from.clone(),
                to: from.clone(),
                because: "the distro offers no versions".into(),
            })?;
            resolve(catalog, distro, &newest.to_version(), true)?
        }
        Target::Version(v) => {
            if v.minor_version() < from.minor_version() || (v.patch.is_some() && v.without_suffix() < from) {
                return Err(PathError::Downgrade { from: req.from.clone(), to: v.clone() });
            }
            resolve(catalog, distro, v, true)?
        }
    };
    let mut notes = Vec::new();
    if from.minor_version() == target.minor_version() && target < from {
        // `--to 1.30` while already on a newer patch of 1.30 than the catalog knows.
        notes.push(Note {
            severity: Severity::Warning,
            message: format!(
                "{from} is newer than the newest {} patch in the catalog; the data may be stale",
                target.minor_version()
            ),
            source: None,
        });
    }
    let target = if target < from { from.clone() } else { target };

    let mut vias = Vec::new();
    for via in &req.via {
        let v = resolve(catalog, distro, via, true)?;
        if v <= from || v >= target {
            return Err(PathError::ViaOutOfRange { via: via.clone(), from: from.clone(), to: target.clone() });
        }
        vias.push(v);
    }
    vias.sort();

    let kubelets: Vec<Version> = if req.kubelets.is_empty() {
        vec![from.clone()]
    } else {
        let mut ks: Vec<Version> = req.kubelets.iter().map(Version::without_suffix).collect();
        ks.sort();
        ks.dedup();
        ks
    };
    for k in &kubelets {
        if k.minor_version() < catalog.oldest_minor() {
            return Err(PathError::TooOld { version: k.clone(), oldest: catalog.oldest_minor() });
        }
        if k.minor_version() > from.minor_version() {
            return Err(PathError::KubeletNewer { kubelet: k.clone(), apiserver: from.clone() });
        }
    }
    let mut facts = req.facts.clone();
    if facts.kubelets.is_none() && !req.kubelets.is_empty() {
        facts.kubelets = Some(kubelets.clone());
    }
    let req = PathRequest { facts, ..req.clone() };

    let mut extra: Vec<Version> = vias.clone();
    extra.push(target.clone());
    let hg = HopGraph::build(catalog, distro, &from, &extra, &kubelets, &req);

    let mut waypoints = vec![from.clone()];
    waypoints.extend(vias.iter().cloned());
    waypoints.push(target.clone());
    let mut route: Vec<Version> = vec![from.clone()];
    for w in waypoints.windows(2) {
        if w[0] == w[1] {
            continue;
        }
        let leg = match hg.route(&w[0], &w[1], false) {
            Some(leg) => leg,
            None => return Err(explain_refusal(&hg, &w[0], &w[1])),
        };
        route.extend(leg.into_iter().skip(1));
    }

    // Warnings for conditional blocks we could not evaluate on the chosen route.
    for w in route.windows(2) {
        if let Some(info) = hg.edge_info(&w[0], &w[1]) {
            for (name, what, source) in &info.unverified {
                notes.push(Note {
                    severity: Severity::Warning,
                    message: format!(
                        "{} → {} is blocked ({name}) when {what}; this could not be checked here — confirm it does not apply (plan against the cluster checks it)",
                        w[0].minor_version(),
                        w[1].minor_version()
                    ),
                    source: Some(source.clone()),
                });
            }
        }
    }

    let cp_hops: Vec<Hop> = route
        .windows(2)
        .map(|w| {
            let kind = hg.edge_info(&w[0], &w[1]).map(|e| e.kind).unwrap_or(EdgeKind::Minor);
            Hop {
                from: w[0].clone(),
                to: w[1].clone(),
                component: Component::ControlPlane,
                reason: match kind {
                    EdgeKind::Patch => format!("newest patch of {} first", w[0].minor_version()),
                    EdgeKind::Minor if distro.control_plane.max_minor_step == 1 => "one minor at a time".into(),
                    EdgeKind::Minor => format!("up to {} minors per hop", distro.control_plane.max_minor_step),
                    EdgeKind::Jump => format!(
                        "{} is unsupported on {}: it may go straight to the lowest supported minor (the provider's recovery path, outside its support: upgrade the whole cluster, not the control plane alone)",
                        w[0].minor_version(),
                        distro.name
                    ),
                    EdgeKind::LtsSkip => format!(
                        "long-term support on {}: it may skip minors to a higher minor still in long-term support",
                        distro.name
                    ),
                },
                moves: Vec::new(),
            }
        })
        .collect();

    let rolls = place_node_rolls(&route, &kubelets, &distro.nodes, |m| catalog.latest_patch(distro, m))?;
    let mut hops = Vec::new();
    for i in 0..route.len() {
        for r in rolls.iter().filter(|r| r.at == i) {
            hops.push(Hop {
                from: r.from.clone(),
                to: r.to.clone(),
                component: Component::Nodes,
                reason: r.reason.clone(),
                moves: r.moves.clone(),
            });
        }
        if i < cp_hops.len() {
            hops.push(cp_hops[i].clone());
        }
    }

    support_notes(catalog, distro, &route, req.today, &mut notes);
    if let Some(note) = staleness_note(catalog, req.today) {
        notes.push(note);
    }
    skew_notes(distro, &from, &kubelets, req.kubelets.is_empty(), &mut notes);
    let prerequisites: Vec<BlockedHop> = hg.blocks_on(&route).cloned().collect();

    let lo = from.minor_version();
    let hi = target.minor_version();
    Ok(UpgradePath {
        api_version: API_VERSION,
        kind: "UpgradePath",
        distro: distro.name.clone(),
        from,
        to: target,
        kubelets,
        summary: Summary { control_plane_hops: cp_hops.len(), node_rolls: rolls.len() },
        hops,
        notes,
        prerequisites,
        view: hg.view(&route, lo, hi),
    })
}

fn explain_refusal(hg: &HopGraph<'_>, from: &Version, to: &Version) -> PathError {
    let distro = hg.distro.name.clone();
    if let Some(route) = hg.route(from, to, true) {
        let blocked: Vec<BlockedHop> = hg.blocks_on(&route).filter(|b| b.fix.is_none()).cloned().collect();
        let because = blocked
            .iter()
            .map(|b| format!("{} → {} is blocked ({}: {}) because {}", b.from, b.to, b.name, b.reason, b.because))
            .collect::<Vec<_>>()
            .join("; ");
        return PathError::Blocked { distro, from: from.clone(), to: to.clone(), because, blocked };
    }
    let offered = hg.catalog.offered_minors(hg.distro);
    let missing: Vec<String> = (1..to.minor_version().minors_since(from.minor_version()))
        .map(|d| from.minor_version().plus(d as u32))
        .filter(|m| !offered.contains(m))
        .map(|m| m.to_string())
        .collect();
    let because = if missing.is_empty() {
        "no chain of supported hops connects them".to_string()
    } else {
        format!(
            "{distro} does not offer {} and the control plane moves at most {} minor(s) per upgrade",
            missing.join(", "),
            hg.distro.control_plane.max_minor_step
        )
    };
    PathError::NoRoute { distro, from: from.clone(), to: to.clone(), because }
}

/// How many minors a kubelet of `kubelet` may trail the apiserver under `rule`.
pub fn allowed_lag(rule: &NodeRule, kubelet: Minor) -> u32 {
    crate::k8s::skew::allowed_lag(rule.max_older, rule.older_than.as_ref(), kubelet)
}

/// Whether a kubelet at `kubelet` may run against an apiserver at `apiserver` under `rule`.
/// A control-plane move to another minor waits until every kubelet is on the current minor, where
/// the distro requires it.
fn same_minor_ok(rule: &NodeRule, cp: &Version, next: &Version, kubelets: &[Version]) -> bool {
    rule.same_minor_before_control_plane_hop.is_none()
        || next.minor_version() == cp.minor_version()
        || kubelets.iter().all(|k| k.minor_version() >= cp.minor_version())
}

pub fn skew_ok(rule: &NodeRule, apiserver: Minor, kubelet: Minor) -> bool {
    crate::k8s::skew::within(rule.max_older, rule.older_than.as_ref(), apiserver, kubelet)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Roll {
    /// Index into the control-plane route after which the roll happens.
    at: usize,
    from: Version,
    to: Version,
    reason: String,
    moves: Vec<KubeletMove>,
}

/// Places node rolls along a control-plane route: least rolls, then latest rolls.
fn place_node_rolls(
    route: &[Version],
    kubelets: &[Version],
    rule: &NodeRule,
    latest: impl Fn(Minor) -> Option<Version>,
) -> Result<Vec<Roll>, PathError> {
    type State = (usize, Vec<Version>);
    let last = route.len() - 1;
    let target = &route[last];
    // Where one kubelet goes in a roll after control-plane hop `i`.
    let step = |i: usize, k: &Version| -> Version {
        let cp = &route[i];
        if k >= cp {
            return k.clone();
        }
        let reach = match rule.max_minor_step {
            Some(step) => k.minor_version().plus(step),
            None => cp.minor_version(),
        };
        if reach >= cp.minor_version() { cp.clone() } else { latest(reach).unwrap_or_else(|| reach.with_patch(0)) }
    };
    let roll = |i: usize, ks: &[Version]| -> Vec<Version> {
        let mut out: Vec<Version> = ks.iter().map(|k| step(i, k)).collect();
        out.sort();
        out.dedup();
        out
    };
    let done = |s: &State| s.0 == last && s.1.iter().all(|k| k >= target);

    let start: State = (0, kubelets.to_vec());
    let mut best: HashMap<State, (usize, usize)> = HashMap::new();
    let mut prev: HashMap<State, (State, bool)> = HashMap::new();
    let mut heap = BinaryHeap::new();
    best.insert(start.clone(), (0, 0));
    heap.push(Reverse(((0usize, 0usize), start.clone())));
    let mut goal = None;
    while let Some(Reverse((cost, state))) = heap.pop() {
        if best.get(&state).is_some_and(|c| *c < cost) {
            continue;
        }
        if done(&state) {
            goal = Some(state);
            break;
        }
        let (i, ks) = &state;
        let mut next: Vec<(State, (usize, usize), bool)> = Vec::new();
        if *i < last
            && ks.iter().all(|k| skew_ok(rule, route[i + 1].minor_version(), k.minor_version()))
            && same_minor_ok(rule, &route[*i], &route[i + 1], ks)
        {
            next.push(((i + 1, ks.clone()), cost, false));
        }
        let rolled = roll(*i, ks);
        if rolled != *ks {
            next.push(((*i, rolled), (cost.0 + 1, cost.1 + (last - i)), true));
        }
        for (s, c, is_roll) in next {
            if best.get(&s).is_none_or(|old| c < *old) {
                best.insert(s.clone(), c);
                prev.insert(s.clone(), (state.clone(), is_roll));
                heap.push(Reverse((c, s)));
            }
        }
    }
    let Some(goal) = goal else {
        return Err(PathError::NoRoute {
            distro: String::new(),
            from: route[0].clone(),
            to: target.clone(),
            because: "no order of node rolls keeps every kubelet inside the skew window".into(),
        });
    };
    let mut rolls = Vec::new();
    let mut cur = goal;
    while let Some((p, is_roll)) = prev.get(&cur) {
        if *is_roll {
            let i = p.0;
            let before = &p.1;
            let to = cur.1.iter().max().cloned().unwrap_or_else(|| route[i].clone());
            let oldest = before.first().cloned().unwrap_or_else(|| route[i].clone());
            let reason = if i < last {
                match before.iter().find(|k| !skew_ok(rule, route[i + 1].minor_version(), k.minor_version())) {
                    Some(k) => {
                        let lag = route[i + 1].minor_version().minors_since(k.minor_version());
                        format!(
                            "before the control plane moves to {}, kubelets on {} would be {lag} minors behind (at most {} allowed)",
                            route[i + 1].minor_version(),
                            k.minor_version(),
                            allowed_lag(rule, k.minor_version())
                        )
                    }
                    None if !same_minor_ok(rule, &route[i], &route[i + 1], before) => format!(
                        "nodes must be on the control plane's minor {} before it moves to {} ({})",
                        route[i].minor_version(),
                        route[i + 1].minor_version(),
                        rule.same_minor_before_control_plane_hop.as_ref().map_or("", |r| r.required_for.as_str())
                    ),
                    None => match rule.max_minor_step {
                        Some(step) => {
                            format!("nodes move at most {step} minor(s) per upgrade, so they must start early")
                        }
                        None => "keeps kubelets inside the skew window".into(),
                    },
                }
            } else if to < *target {
                format!("nodes move at most {} minor(s) per upgrade", rule.max_minor_step.unwrap_or(1))
            } else {
                "bring kubelets to the target version".into()
            };
            let moves: Vec<KubeletMove> = before
                .iter()
                .filter_map(|k| {
                    let to = step(i, k);
                    (to != *k).then(|| KubeletMove { from: k.clone(), to })
                })
                .collect();
            let from = moves.first().map_or(oldest, |m| m.from.clone());
            rolls.push(Roll { at: i, from, to, reason, moves });
        }
        cur = p.clone();
    }
    rolls.reverse();
    Ok(rolls)
}

/// How old the catalog may get before a plan says so: about one Kubernetes release cycle, after
/// which new patches, a new minor and managed calendars have most likely moved on.
pub const STALE_AFTER_DAYS: i64 = 120;

/// A warning when the catalog's data are more than [`STALE_AFTER_DAYS`] older than `today`.
pub fn staleness_note(catalog: &Catalog, today: Date) -> Option<Note> {
    let data = catalog.data_date();
    let age = data.days_until(today);
    (age > STALE_AFTER_DAYS).then(|| Note {
        severity: Severity::Warning,
        message: format!(
            "{which} holds data of {data}, {age} days ago: newer patches, releases, managed-service calendars and API removals may be missing; pass --paths DIR with a newer copy of the upgrade-paths directory from the k8s-upgrade repository, or use a newer build",
            which = if catalog.origin == "embedded" {
                "the catalog built into this binary".to_string()
            } else {
                format!("the catalog at {}", catalog.origin)
            }
        ),
        source: None,
    })
}

fn support_notes(catalog: &Catalog, distro: &DistroFile, route: &[Version], today: Date, notes: &mut Vec<Note>) {
    let mut upstream_eol = Vec::new();
    let mut past_extended = Vec::new();
    let mut past_standard = Vec::new();
    let mut source = None;
    for v in route.iter().skip(1) {
        let minor = v.minor_version();
        if upstream_eol
            .iter()
            .chain(&past_extended)
            .chain(&past_standard)
            .any(|s: &String| s.starts_with(&minor.to_string()))
        {
            continue;
        }
        match catalog.distro_version(distro, minor) {
            None => {
                if let Some(eol) = catalog.release(minor).and_then(|r| r.end_of_life).filter(|e| *e < today) {
                    upstream_eol.push(format!("{minor} ({eol})"));
                }
            }
            Some(dv) => {
                source.get_or_insert_with(|| dv.source.clone());
                match (dv.end_of_standard_support, dv.end_of_extended_support) {
                    (_, Some(ext)) if ext < today => past_extended.push(format!("{minor} ({ext})")),
                    (Some(end), Some(ext)) if end < today => {
                        past_standard.push(format!("{minor} (standard ended {end}, extended until {ext})"))
                    }
                    (Some(end), None) if end < today => past_extended.push(format!("{minor} ({end})")),
                    _ => {}
                }
            }
        }
    }
    if !upstream_eol.is_empty() {
        notes.push(Note {
            severity: Severity::Info,
            message: format!("past upstream end of life, no more patches: {}", upstream_eol.join(", ")),
            source: Some("https://kubernetes.io/releases/".into()),
        });
    }
    if !past_extended.is_empty() {
        notes.push(Note {
            severity: Severity::Warning,
            message: format!(
                "past the end of all support on {}: {}; the provider may no longer offer these as upgrade targets (or may have upgraded the cluster itself)",
                distro.name,
                past_extended.join(", ")
            ),
            source: source.clone(),
        });
    }
    if !past_standard.is_empty() {
        notes.push(Note {
            severity: Severity::Warning,
            message: format!(
                "in extended support on {} (extra cost on some providers): {}",
                distro.name,
                past_standard.join(", ")
            ),
            source,
        });
    }
}

fn skew_notes(distro: &DistroFile, from: &Version, kubelets: &[Version], assumed: bool, notes: &mut Vec<Note>) {
    if assumed {
        notes.push(Note {
            severity: Severity::Info,
            message: format!(
                "kubelets assumed at {from}; pass --kubelet VERSION (repeatable) to plan node rolls for the real ones"
            ),
            source: None,
        });
    }
    for k in kubelets {
        if !skew_ok(&distro.nodes, from.minor_version(), k.minor_version()) {
            notes.push(Note {
                severity: Severity::Warning,
                message: format!(
                    "kubelet {k} is already outside the skew window of the control plane {from} (at most {} minors behind); nodes roll first",
                    allowed_lag(&distro.nodes, k.minor_version())
                ),
                source: Some(distro.nodes.source.clone()),
            });
        }
    }
}

#[cfg(test)]
mod tests;
