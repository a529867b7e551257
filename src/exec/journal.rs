//! The crash-safe journal of an `apply` run: which step and which node phase were reached, and
//! whether we cordoned each node, written atomically (temp file, fsync, rename, fsync of the
//! directory) before and after every action so that `apply --resume` continues at the exact
//! step after a crash, a kill or Ctrl-C.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::Step;
use crate::version::Version;

pub const JOURNAL_API_VERSION: &str = "k8s-upgrade.dev/v1alpha1";
/// Largest journal read back.
pub const MAX_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Pending,
    Running,
    Done,
    /// Left for the operator (a manual step acknowledged with --yes, or a quarantined node).
    Skipped,
    Failed,
}

/// Where a node is in its roll; each phase is written before the next action starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodePhase {
    Started,
    Cordoned,
    Drained,
    /// The upgrade action was started and has not been seen to finish: a resumed run starts it
    /// again unless the node already reports the target (upgrade actions are idempotent).
    #[serde(alias = "upgrading")]
    UpgradeStarted,
    /// The upgrade action finished; the node is awaited at the target.
    UpgradeFinished,
    /// Ready at the target, node checks passed; not yet uncordoned.
    Upgraded,
    Done,
    /// Drain could not finish: left cordoned and labelled for the operator.
    Quarantined,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// The plan step (order) this record belongs to.
    pub step: usize,
    pub target: Version,
    pub phase: NodePhase,
    /// The kubelet version before the run touched the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Version>,
    /// True only when this run set `spec.unschedulable`; only then does it uncordon.
    pub we_cordoned: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Seconds the node took from start to done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// The upgrade's output (a node job's log, a command's lines): the kept lines of a failed
    /// upgrade, the last [`NODE_LOG_DONE`] of one that succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// When the node reached each phase, in order (stamped by [`Journal::set_node`]; absent in
    /// journals written before phases were timed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<PhaseTime>,
}

/// A node phase and when it was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseTime {
    pub phase: NodePhase,
    pub at: Stamp,
}

/// Phase times kept per node: a phase is stamped when it changes, so a node that is resumed
/// again and again (each resume may go back to an earlier phase) cannot grow its record forever.
const MAX_PHASE_TIMES: usize = 32;

/// A moment, written in the journal as RFC 3339 in UTC with its fraction of a second, so a
/// person reading the journal sees a time and the report can draw sub-second phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(pub jiff::Timestamp);

impl Stamp {
    pub fn now() -> Stamp {
        Stamp(crate::clock::now())
    }

    /// Seconds from `earlier` to this moment (negative when it is before).
    pub fn seconds_since(self, earlier: Stamp) -> f64 {
        let d = self.0.as_nanosecond() - earlier.0.as_nanosecond();
        d as f64 / 1e9
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Stamp, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<jiff::Timestamp>()
            .map(Stamp)
            .map_err(|e| serde::de::Error::custom(format!("time {text:?} is not RFC 3339: {e}")))
    }
}

/// Lines of a successful upgrade's output kept in its node's record (the journal is rewritten
/// at every phase change, so a large cluster's must stay small).
pub const NODE_LOG_DONE: usize = 15;
/// Where a provider-run upgrade (a managed control plane, a managed node pool, an EKS add-on)
/// is; written before the next action, so a resumed run waits on an update in progress instead
/// of starting a second one, and starts it again only when the provider said it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolPhase {
    /// About to ask the provider (a crash here left no update id: resume asks again).
    Starting,
    /// The provider accepted the update (`update_id` when it gave one).
    Started,
    /// The provider reported the update failed; a resumed run starts it again.
    Failed,
    Done,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolRecord {
    /// The plan step (order) this record belongs to.
    pub step: usize,
    pub target: Version,
    pub phase: PoolPhase,
    /// The provider's update id or operation, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_id: Option<String>,
    /// The pool's nodes below the target when the pool started (they are to be replaced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub old_nodes: Vec<String>,
    /// Nodes in the pool when it started: a replaced pool has at least as many at the target.
    #[serde(default)]
    pub start_count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalStep {
    pub step: Step,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When a run first started the step (a resumed step keeps its first start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Stamp>,
    /// When the step ended: done, skipped, failed or stopped (the last time, when resumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Stamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    pub api_version: String,
    pub kind: String,
    pub run_id: String,
    /// The apiserver URL the run talks to.
    pub cluster: String,
    pub distro: String,
    pub from: Version,
    pub to: Version,
    pub steps: Vec<JournalStep>,
    /// Per node and step: `"<step>/<node>"`.
    pub nodes: BTreeMap<String, NodeRecord>,
    /// Provider-run upgrades per step: `"<step>/<pool>"`, `"<step>/control-plane"` or
    /// `"<step>/addon:<name>"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<String, PoolRecord>,
    /// Steps the operator acknowledged with `--acknowledge` (by order): their blockers are not
    /// checked again before the hop.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub acknowledged: std::collections::BTreeSet<usize>,
    /// The apiserver's deprecated-API request gauge when the run began: a control-plane hop is
    /// held up by requests made after that, not by ones the plan already knew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_at_start: Option<crate::inventory::live::DeprecatedRequests>,
    /// Output of upgrade commands, last lines only.
    #[serde(default)]
    pub log: Vec<String>,
    /// The cluster's health when the run first started; a resumed run gates against it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<super::gates::Baseline>,
    pub finished: bool,
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the journal {path}: {message}")]
    Write { path: String, message: String },
    #[error("cannot read the journal {path}: {message}")]
    Read { path: String, message: String },
    /// Someone else wrote the journal since this run last did (a cluster journal only).
    #[error(
        "the journal {path} was written by someone else: {message}; this run stopped rather than overwrite it. Find out who (kubectl -n kube-system get configmap k8s-upgrade-journal -o yaml), and once only one run acts on the cluster continue with `k8s-upgrade apply --resume --journal cluster`"
    )]
    Conflict { path: String, message: String },
    #[error(
        "the journal does not fit in {path}: {size} bytes compressed with its command output left out, more than the {limit} allowed; keep it in a file instead (--journal FILE)"
    )]
    TooLarge { path: String, size: usize, limit: usize },
    #[error(transparent)]
    Input(#[from] crate::limits::ReadError),
}

impl Journal {
    /// A fresh journal for a plan's steps.
    pub fn new(path: PathBuf, run_id: &str, cluster: &str, plan: &crate::plan::Plan) -> Journal {
        Journal {
            api_version: JOURNAL_API_VERSION.into(),
            kind: "ApplyJournal".into(),
            run_id: run_id.into(),
            cluster: cluster.into(),
            distro: plan.distro.clone(),
            from: plan.from.clone(),
            to: plan.to.clone(),
            steps: plan
                .steps
                .iter()
                .map(|s| JournalStep {
                    step: s.clone(),
                    status: StepStatus::Pending,
                    note: None,
                    started: None,
                    ended: None,
                })
                .collect(),
            nodes: BTreeMap::new(),
            pools: BTreeMap::new(),
            acknowledged: Default::default(),
            requests_at_start: None,
            log: vec![],
            baseline: None,
            finished: false,
            path,
        }
    }

    pub fn key(step: usize, node: &str) -> String {
        format!("{step}/{node}")
    }

    pub fn node(&self, step: usize, node: &str) -> Option<&NodeRecord> {
        self.nodes.get(&Self::key(step, node))
    }

    /// The node name in a `"<step>/<node>"` key.
    pub fn node_of(key: &str) -> &str {
        key.split_once('/').map_or(key, |(_, node)| node)
    }

    /// Nodes the run skipped and left quarantined.
    pub fn quarantined(&self) -> Vec<&str> {
        self.nodes.iter().filter(|(_, r)| r.phase == NodePhase::Quarantined).map(|(k, _)| Self::node_of(k)).collect()
    }

    /// Records a node's state, stamping the time when its phase changed (the times already
    /// recorded are kept whatever `record` holds: callers keep their own copy of a record).
    pub fn set_node(&mut self, record: &NodeRecord, node: &str) {
        self.set_node_at(record, node, Stamp::now());
    }

    fn set_node_at(&mut self, record: &NodeRecord, node: &str, at: Stamp) {
        let key = Self::key(record.step, node);
        let mut times = self.nodes.get(&key).map(|r| r.times.clone()).unwrap_or_default();
        if times.last().map(|t| t.phase) != Some(record.phase) {
            times.push(PhaseTime { phase: record.phase, at });
            if times.len() > MAX_PHASE_TIMES {
                // The first stamp says when the node began; the latest ones say where it is.
                times.remove(1);
            }
        }
        let mut record = record.clone();
        record.times = times;
        self.nodes.insert(key, record);
    }

    /// Nodes this run cordoned and has not uncordoned, with their phase.
    pub fn left_cordoned(&self) -> Vec<(&str, NodePhase)> {
        self.nodes
            .iter()
            .filter(|(_, r)| r.we_cordoned && r.phase > NodePhase::Started && r.phase != NodePhase::Done)
            .map(|(k, r)| (Self::node_of(k), r.phase))
            .collect()
    }

    /// Keeps the last lines of command output (bounded: the journal is rewritten often).
    pub fn push_log(&mut self, line: String) {
        const KEEP: usize = 500;
        self.log.push(line.chars().take(500).collect());
        if self.log.len() > KEEP {
            let extra = self.log.len() - KEEP;
            self.log.drain(..extra);
        }
    }

    /// Writes the whole journal to a temp file, syncs it, renames it over the old one and syncs
    /// the directory: a crash leaves either the old or the new journal, never half of one.
    pub fn save(&self) -> Result<(), JournalError> {
        let werr =
            |e: std::io::Error| JournalError::Write { path: self.path.display().to_string(), message: e.to_string() };
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| JournalError::Write { path: self.path.display().to_string(), message: e.to_string() })?;
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(werr)?;
        let tmp = self.path.with_extension("json.tmp");
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = written {
            // A full disk must not leave half a journal beside the whole one.
            let _ = std::fs::remove_file(&tmp);
            return Err(werr(e));
        }
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Journal, JournalError> {
        let rerr = |m: String| JournalError::Read { path: path.display().to_string(), message: m };
        let text = crate::limits::read(path, "the journal", MAX_JOURNAL_BYTES)?;
        let mut j = Journal::from_json(&text).map_err(rerr)?;
        j.path = path.to_path_buf();
        Ok(j)
    }

    /// A journal from its JSON, checked to be one (without a path).
    pub fn from_json(text: &[u8]) -> Result<Journal, String> {
        let j: Journal = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        if j.api_version != JOURNAL_API_VERSION || j.kind != "ApplyJournal" {
            return Err(format!("not an apply journal ({} {})", j.api_version, j.kind));
        }
        Ok(j)
    }

    /// Whether this journal can be resumed on a cluster whose apiserver reports `server`: a
    /// journal is a file anyone can edit or damage, and resuming executes the targets it holds.
    /// It must describe an upgrade (forward, between releases `catalog` knows for its distro),
    /// each step inside that upgrade and in order, each node record's target its step's, and no
    /// step still to run may take the control plane below where it is now. The error names the
    /// value at fault.
    pub fn check_resumable(&self, catalog: &crate::catalog::Catalog, server: Option<&Version>) -> Result<(), String> {
        use crate::plan::StepAction;
        if self.steps.is_empty() {
            let cordoned: Vec<&str> = self.left_cordoned().into_iter().map(|(n, _)| n).collect();
            return Err(format!(
                "it lists no steps{}",
                if cordoned.is_empty() {
                    String::new()
                } else {
                    format!(" although it cordoned {}", cordoned.join(", "))
                }
            ));
        }
        if self.from > self.to {
            return Err(format!("it goes from {} down to {}, and apply never downgrades", self.from, self.to));
        }
        let Some(distro) = catalog.distro(&self.distro) else {
            return Err(format!(
                "its distro '{}' is not in the catalog (known: {})",
                self.distro,
                catalog.distro_names().join(", ")
            ));
        };
        let known = |v: &Version| {
            catalog.offered_minors(distro).contains(&v.minor_version())
                && catalog.latest_patch(distro, v.minor_version()).is_some_and(|latest| v.without_suffix() <= latest)
        };
        if !known(&self.to) {
            return Err(format!("its target {} is not a {} release the catalog knows", self.to, self.distro));
        }
        let inside = |v: &Version| *v >= self.from && *v <= self.to;
        let mut last_control_plane: Option<&Version> = None;
        let mut last_order = None;
        for s in &self.steps {
            let step = &s.step;
            let i = step.order;
            if last_order.is_some_and(|o| o >= i) {
                return Err(format!("step {i} comes after step {}", last_order.unwrap_or_default()));
            }
            last_order = Some(i);
            let targets: Vec<&Version> = match &step.action {
                StepAction::ControlPlane { from, to } => {
                    if from >= to || !inside(to) || !known(to) {
                        return Err(format!(
                            "step {i} moves the control plane from {from} to {to}, which is not a step of an upgrade from {} to {} through known releases",
                            self.from, self.to
                        ));
                    }
                    if last_control_plane.is_some_and(|prev| prev >= to) {
                        return Err(format!("step {i} moves the control plane to {to}, not past the step before it"));
                    }
                    last_control_plane = Some(to);
                    let pending = !matches!(s.status, StepStatus::Done | StepStatus::Skipped);
                    if pending
                        && let Some(now) = server
                        && to.minor_version() < now.minor_version()
                    {
                        return Err(format!(
                            "step {i}, still to run, would take the control plane to {to}, below the {now} it runs now"
                        ));
                    }
                    vec![to]
                }
                StepAction::Nodes { moves } => {
                    for m in moves {
                        // Kubelets may lag the control plane: a move can end below `from`.
                        if m.to < m.from || m.to > self.to {
                            return Err(format!(
                                "step {i} moves kubelets from {} to {}, which is not part of an upgrade to {}",
                                m.from, m.to, self.to
                            ));
                        }
                    }
                    moves.iter().map(|m| &m.to).collect()
                }
                _ => vec![],
            };
            if let Some(t) = &step.target
                && *t > self.to
            {
                return Err(format!("step {i}'s target {t} is beyond the run's target {}", self.to));
            }
            for (key, record) in self.nodes.iter().filter(|(_, r)| r.step == i) {
                if !targets.is_empty() && !targets.contains(&&record.target) {
                    return Err(format!(
                        "node {} in step {i} has the target {}, which its step does not move it to",
                        Self::node_of(key),
                        record.target
                    ));
                }
            }
        }
        for (key, record) in &self.nodes {
            if !self.steps.iter().any(|s| s.step.order == record.step) || !key.starts_with(&format!("{}/", record.step))
            {
                return Err(format!(
                    "the node record {key} names step {}, which the journal does not hold",
                    record.step
                ));
            }
        }
        Ok(())
    }

    /// The first step not done or skipped.
    pub fn next_step(&self) -> Option<usize> {
        self.steps.iter().position(|s| !matches!(s.status, StepStatus::Done | StepStatus::Skipped))
    }
}

/// The default journal path: under the user's state directory, named after the cluster.
pub fn default_path(cluster: &str) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    let name: String = cluster
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .take(120)
        .collect();
    base.join("k8s-upgrade").join(format!("{name}.journal.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_journal_stops_at_its_limit() {
        let e = Journal::load(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(e, JournalError::Input(crate::limits::ReadError::TooLarge { .. })), "{e}");
        assert!(e.to_string().contains("the journal /dev/zero is larger than"), "{e}");
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    /// A kubeadm run 1.30.1 -> 1.31.2 with no steps or nodes yet.
    fn empty(cluster: &str, path: PathBuf) -> Journal {
        Journal {
            api_version: JOURNAL_API_VERSION.into(),
            kind: "ApplyJournal".into(),
            run_id: "r1".into(),
            cluster: cluster.into(),
            distro: "kubeadm".into(),
            from: v("1.30.1"),
            to: v("1.31.2"),
            steps: vec![],
            nodes: BTreeMap::new(),
            pools: BTreeMap::new(),
            acknowledged: Default::default(),
            requests_at_start: None,
            log: vec![],
            baseline: None,
            finished: false,
            path,
        }
    }

    /// A two-step run 1.30.1 -> 1.31.2 (control plane, then the nodes), the control plane done.
    fn resumable() -> Journal {
        use crate::plan::{StepAction, StepKind};
        let step = |order: usize, kind: StepKind, action: StepAction| JournalStep {
            step: Step {
                order,
                kind,
                target: Some(v("1.31.2")),
                description: String::new(),
                moves: vec![],
                resolves: vec![],
                action,
            },
            status: StepStatus::Pending,
            note: None,
            started: None,
            ended: None,
        };
        let mut j = empty("https://h", PathBuf::from("j.json"));
        j.steps = vec![
            step(1, StepKind::ControlPlane, StepAction::ControlPlane { from: v("1.30.1"), to: v("1.31.2") }),
            step(
                2,
                StepKind::Nodes,
                StepAction::Nodes { moves: vec![crate::graph::KubeletMove { from: v("1.30.1"), to: v("1.31.2") }] },
            ),
        ];
        j.steps[0].status = StepStatus::Done;
        j.set_node(&record(NodePhase::Drained), "w-1");
        j
    }

    #[test]
    fn an_edited_journal_is_refused_naming_what_is_wrong_d31() {
        let catalog = crate::catalog::Catalog::embedded().unwrap();
        let now = v("1.31.2");
        assert_eq!(resumable().check_resumable(&catalog, Some(&now)), Ok(()));

        let mut future = resumable();
        future.nodes.get_mut("2/w-1").unwrap().target = v("9.99.0");
        let e = future.check_resumable(&catalog, Some(&now)).unwrap_err();
        assert!(e.contains("node w-1 in step 2 has the target 9.99.0"), "{e}");

        let mut everything_future = resumable();
        everything_future.to = v("9.99.0");
        let e = everything_future.check_resumable(&catalog, Some(&now)).unwrap_err();
        assert!(e.contains("its target 9.99.0 is not a kubeadm release"), "{e}");

        // Every version rewritten to 1.19.0 consistently: the pending step would downgrade.
        let mut down = resumable();
        down.steps[0].status = StepStatus::Pending;
        down.from = v("1.18.20");
        down.to = v("1.19.0");
        down.steps[0].step.action = crate::plan::StepAction::ControlPlane { from: v("1.18.20"), to: v("1.19.0") };
        down.steps[1].step.action = crate::plan::StepAction::Nodes {
            moves: vec![crate::graph::KubeletMove { from: v("1.18.20"), to: v("1.19.0") }],
        };
        down.steps[0].step.target = Some(v("1.19.0"));
        down.steps[1].step.target = Some(v("1.19.0"));
        down.nodes.get_mut("2/w-1").unwrap().target = v("1.19.0");
        let e = down.check_resumable(&catalog, Some(&v("1.29.10"))).unwrap_err();
        assert!(e.contains("below the 1.29.10 it runs now"), "{e}");

        let mut backwards = resumable();
        backwards.from = v("1.32.0");
        assert!(backwards.check_resumable(&catalog, None).unwrap_err().contains("down to 1.31.2"));

        let mut empty = resumable();
        empty.steps.clear();
        let e = empty.check_resumable(&catalog, Some(&now)).unwrap_err();
        assert!(e.contains("lists no steps although it cordoned w-1"), "{e}");

        let mut stray = resumable();
        let mut r = record(NodePhase::Cordoned);
        r.step = 7;
        stray.set_node(&r, "w-2");
        assert!(stray.check_resumable(&catalog, Some(&now)).unwrap_err().contains("7/w-2 names step 7"));

        let mut unknown = resumable();
        unknown.distro = "nope".into();
        assert!(unknown.check_resumable(&catalog, Some(&now)).unwrap_err().contains("distro 'nope'"));
    }

    #[test]
    fn save_is_atomic_and_round_trips() {
        let dir =
            std::env::temp_dir().join(format!("k8s-upgrade-journal-{}-{}", std::process::id(), fastrand::u64(..)));
        let path = dir.join("c.journal.json");
        let mut j = empty("http://127.0.0.1:1", path.clone());
        j.set_node(
            &NodeRecord {
                step: 3,
                target: "1.31.2".parse().unwrap(),
                phase: NodePhase::Drained,
                from: Some("1.30.1".parse().unwrap()),
                we_cordoned: true,
                note: None,
                seconds: None,
                log: vec![],
                times: vec![],
            },
            "n;rm -rf /",
        );
        j.save().unwrap();
        assert!(!path.with_extension("json.tmp").exists());
        let back = Journal::load(&path).unwrap();
        assert_eq!(back, j);
        assert_eq!(back.node(3, "n;rm -rf /").unwrap().phase, NodePhase::Drained);
        std::fs::write(&path, "{\"apiVersion\": \"x\"").unwrap();
        assert!(Journal::load(&path).unwrap_err().to_string().contains("cannot read the journal"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(default_path("https://10.0.0.1:6443/").ends_with("k8s-upgrade/10.0.0.1_6443_.journal.json"));
    }

    fn record(phase: NodePhase) -> NodeRecord {
        NodeRecord {
            step: 2,
            target: "1.31.2".parse().unwrap(),
            phase,
            from: None,
            we_cordoned: true,
            note: None,
            seconds: None,
            log: vec![],
            times: vec![],
        }
    }

    fn at(s: &str) -> Stamp {
        Stamp(s.parse().unwrap())
    }

    #[test]
    fn phase_changes_are_stamped_once_and_bounded() {
        let mut j = Journal::new(
            PathBuf::from("j.json"),
            "r",
            "c",
            &crate::plan::Plan {
                api_version: crate::plan::API_VERSION.into(),
                kind: crate::plan::KIND.into(),
                distro: "kubeadm".into(),
                from: "1.30.1".parse().unwrap(),
                to: "1.31.2".parse().unwrap(),
                kubelets: vec![],
                steps: vec![],
                findings: vec![],
                summary: crate::plan::Summary { blockers: 0, warnings: 0, infos: 0 },
                notes: vec![],
                inventory_warnings: vec![],
            },
        );
        j.set_node_at(&record(NodePhase::Cordoned), "n1", at("2026-11-27T01:00:00Z"));
        // The same phase again (a note changed) keeps its first time.
        let mut again = record(NodePhase::Cordoned);
        again.note = Some("x".into());
        j.set_node_at(&again, "n1", at("2026-11-27T01:00:05Z"));
        assert_eq!(j.node(2, "n1").unwrap().note.as_deref(), Some("x"));
        j.set_node_at(&record(NodePhase::Drained), "n1", at("2026-11-27T01:00:07.25Z"));
        let r = j.node(2, "n1").unwrap();
        assert_eq!(
            r.times,
            [
                PhaseTime { phase: NodePhase::Cordoned, at: at("2026-11-27T01:00:00Z") },
                PhaseTime { phase: NodePhase::Drained, at: at("2026-11-27T01:00:07.25Z") },
            ]
        );
        assert_eq!(r.times[1].at.seconds_since(r.times[0].at), 7.25);
        // A node resumed again and again keeps its first stamp and the latest ones.
        for i in 0..100 {
            let phase = if i % 2 == 0 { NodePhase::UpgradeStarted } else { NodePhase::Drained };
            j.set_node_at(&record(phase), "n1", at(&format!("2026-11-27T02:{:02}:{:02}Z", i / 60, i % 60)));
        }
        let r = j.node(2, "n1").unwrap();
        assert_eq!(r.times.len(), MAX_PHASE_TIMES);
        assert_eq!(r.times[0].at, at("2026-11-27T01:00:00Z"));
        assert_eq!(r.times.last().unwrap().at, at("2026-11-27T02:01:39Z"));
        // Written as RFC 3339, read back the same; a journal from before the times still loads.
        let json = serde_json::to_value(&j).unwrap();
        assert_eq!(
            json["nodes"]["2/n1"]["times"][0],
            serde_json::json!({"phase": "cordoned", "at": "2026-11-27T01:00:00Z"})
        );
        let back: Journal = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.nodes, j.nodes);
        let mut old = json;
        old["nodes"]["2/n1"].as_object_mut().unwrap().remove("times");
        let back: Journal = serde_json::from_value(old.clone()).unwrap();
        assert!(back.node(2, "n1").unwrap().times.is_empty());
        old["nodes"]["2/n1"]["times"] = serde_json::json!([{"phase": "drained", "at": "yesterday"}]);
        let e = serde_json::from_value::<Journal>(old).unwrap_err().to_string();
        assert!(e.contains("\"yesterday\" is not RFC 3339"), "{e}");
    }
}
