//! Where an apply journal is kept: a local file (written atomically by [`Journal::save`]), or the
//! cluster itself, in the ConfigMap `kube-system/k8s-upgrade-journal` next to the lock's Lease,
//! so that `apply --resume` works from any machine (or pod) holding credentials for the cluster.
//!
//! In the cluster the journal is gzipped JSON in `binaryData`, with labels and annotations that
//! make `kubectl get cm -n kube-system k8s-upgrade-journal -o yaml` readable (run, target,
//! finished, last update). Every write carries the resourceVersion this run last read or wrote:
//! a conflict means someone else wrote the journal, and the run stops rather than overwrite it.
//! A write that was retried after a lost answer is recognised by its content. The stored form
//! stays under the apiserver's 1 MiB bound on a ConfigMap: when the whole journal does not fit,
//! command output is dropped first (the run's log, then the logs of finished nodes, then all),
//! never a phase; a journal that still does not fit is an error that names the file journal.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};

use super::journal::{Journal, JournalError, MAX_JOURNAL_BYTES, NodePhase, StepStatus};

pub const CONFIGMAP_NAME: &str = "k8s-upgrade-journal";
/// Next to the cluster lock (see [`super::lock`]).
pub const CONFIGMAP_NAMESPACE: &str = super::lock::LEASE_NAMESPACE;
/// The `binaryData` key holding the gzipped journal.
pub const DATA_KEY: &str = "journal.json.gz";
/// The apiserver refuses a ConfigMap whose data adds up to more than this.
pub const CONFIGMAP_LIMIT: usize = 1024 * 1024;
/// Compressed journal bytes written at most: the limit less room for the labels, annotations
/// and the request around them.
pub const MAX_STORED_BYTES: usize = CONFIGMAP_LIMIT - 64 * 1024;
/// The value `--journal` takes for the cluster; a file of that name is `./cluster`.
pub const CLUSTER_ARG: &str = "cluster";

const ANNOTATION_PREFIX: &str = "k8s-upgrade.dev/";

/// A journal's home for one run.
pub enum JournalStore {
    File(PathBuf),
    Cluster(Box<ClusterJournal>),
}

impl JournalStore {
    /// The journal's ConfigMap in the cluster `client` reaches.
    pub fn cluster(client: &Client) -> JournalStore {
        JournalStore::Cluster(Box::new(ClusterJournal::new(client)))
    }

    /// Writes the whole journal; in the cluster, only over the version this run last saw.
    pub async fn save(&self, journal: &Journal) -> Result<(), JournalError> {
        match self {
            JournalStore::File(path) => {
                let mut copy = journal.clone();
                copy.path = path.clone();
                // An fsync must not stall the runtime's workers.
                tokio::task::spawn_blocking(move || copy.save()).await.map_err(|e| JournalError::Write {
                    path: path.display().to_string(),
                    message: format!("the journal writer stopped: {e}"),
                })?
            }
            JournalStore::Cluster(c) => c.save(journal).await,
        }
    }

    /// Where the journal is, for messages.
    pub fn describe(&self) -> String {
        match self {
            JournalStore::File(path) => path.display().to_string(),
            JournalStore::Cluster(_) => format!("ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} in the cluster"),
        }
    }

    /// The `--journal` argument that names this store again (a file called `cluster` is
    /// written `./cluster`, so it is not taken for the cluster).
    pub fn arg(&self) -> String {
        match self {
            JournalStore::File(path) if path.as_os_str() == CLUSTER_ARG => format!("./{CLUSTER_ARG}"),
            JournalStore::File(path) => path.display().to_string(),
            JournalStore::Cluster(_) => CLUSTER_ARG.into(),
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, JournalStore::Cluster(_))
    }
}

/// The journal's ConfigMap, and the resourceVersion this run last read or wrote (`None`: it
/// did not exist then).
pub struct ClusterJournal {
    api: Api<ConfigMap>,
    version: tokio::sync::Mutex<Option<String>>,
}

fn where_() -> String {
    format!("ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}")
}

fn read_err(message: impl std::fmt::Display) -> JournalError {
    JournalError::Read { path: where_(), message: message.to_string() }
}

fn write_err(message: impl std::fmt::Display) -> JournalError {
    JournalError::Write { path: where_(), message: message.to_string() }
}

impl ClusterJournal {
    pub fn new(client: &Client) -> ClusterJournal {
        ClusterJournal {
            api: Api::namespaced(client.clone(), CONFIGMAP_NAMESPACE),
            version: tokio::sync::Mutex::new(None),
        }
    }

    /// Reads the journal (`None` when there is none) and remembers its version for the next
    /// write.
    pub async fn load(&self) -> Result<Option<Journal>, JournalError> {
        let cm = crate::kubeapi::retry::with_retries(|| self.api.get_opt(CONFIGMAP_NAME))
            .await
            .map_err(|e| read_err(crate::kubeapi::errors::describe(&e, "the cluster")))?;
        let mut version = self.version.lock().await;
        let Some(cm) = cm else {
            *version = None;
            return Ok(None);
        };
        *version = cm.metadata.resource_version.clone();
        let data = stored_data(&cm).ok_or_else(|| {
            read_err(format!("it has no binaryData key {DATA_KEY}; it is not a journal this tool wrote"))
        })?;
        decode(data).map(Some)
    }

    async fn save(&self, journal: &Journal) -> Result<(), JournalError> {
        let encoded = encode(journal, &crate::clock::now().to_string())?;
        let mut version = self.version.lock().await;
        let body = encoded.config_map(version.clone());
        let written = crate::kubeapi::retry::with_retries(|| async {
            match &body.metadata.resource_version {
                None => self.api.create(&PostParams::default(), &body).await,
                Some(_) => self.api.replace(CONFIGMAP_NAME, &PostParams::default(), &body).await,
            }
        })
        .await;
        match written {
            Ok(cm) => {
                *version = cm.metadata.resource_version;
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                // A retried write whose first attempt landed comes back as a conflict: the
                // content says whether the stored journal is ours.
                let now = crate::kubeapi::retry::with_retries(|| self.api.get_opt(CONFIGMAP_NAME))
                    .await
                    .map_err(|e| write_err(crate::kubeapi::errors::describe(&e, "the cluster")))?;
                match now {
                    Some(cm) if stored_data(&cm) == Some(&encoded.data[..]) => {
                        *version = cm.metadata.resource_version;
                        Ok(())
                    }
                    Some(cm) => Err(JournalError::Conflict {
                        path: where_(),
                        message: format!(
                            "it changed under this run (resourceVersion {} → {})",
                            version.as_deref().unwrap_or("none"),
                            cm.metadata.resource_version.as_deref().unwrap_or("?")
                        ),
                    }),
                    None => Err(JournalError::Conflict { path: where_(), message: "it was deleted".into() }),
                }
            }
            Err(e) => Err(write_err(crate::kubeapi::errors::describe(&e, "the cluster"))),
        }
    }
}

fn stored_data(cm: &ConfigMap) -> Option<&[u8]> {
    cm.binary_data.as_ref()?.get(DATA_KEY).map(|b| &b.0[..])
}

/// A journal as stored: the gzipped JSON and the object's readable labels and annotations.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub data: Vec<u8>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// How much was left out to fit (empty: nothing).
    pub compacted: String,
}

impl Encoded {
    fn config_map(&self, resource_version: Option<String>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(CONFIGMAP_NAME.into()),
                namespace: Some(CONFIGMAP_NAMESPACE.into()),
                labels: Some(self.labels.clone()),
                annotations: Some(self.annotations.clone()),
                resource_version,
                ..Default::default()
            },
            binary_data: Some(BTreeMap::from([(DATA_KEY.to_string(), ByteString(self.data.clone()))])),
            ..Default::default()
        }
    }
}

fn gzip(json: &[u8]) -> Result<Vec<u8>, JournalError> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json).and_then(|()| gz.finish()).map_err(write_err)
}

/// A label value from anything: the characters a label allows, at most 63, alphanumeric at
/// both ends (the run id is ours, but a journal read back is not trusted).
fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// Output dropped at each compaction level, from nothing to every command line; phases,
/// cordon records and step states are never dropped.
fn compact(j: &mut Journal, level: u8) -> String {
    let mut dropped_run = 0;
    let mut dropped_nodes = 0;
    let mut dropped_times = 0;
    let mut keep_run = |j: &mut Journal, keep: usize| {
        let extra = j.log.len().saturating_sub(keep);
        j.log.drain(..extra);
        dropped_run += extra;
    };
    match level {
        0 => {}
        1 => keep_run(j, 50),
        _ => keep_run(j, 0),
    }
    for r in j.nodes.values_mut() {
        let keep = match level {
            0 => r.log.len(),
            1 | 2 if r.phase == NodePhase::Done => 0,
            1 => r.log.len(),
            2 => 3,
            _ => 0,
        };
        let extra = r.log.len().saturating_sub(keep);
        r.log.drain(..extra);
        dropped_nodes += extra;
        // Phase times feed the report's timeline, not the resume: finished nodes' go first.
        if (level >= 2 && r.phase == NodePhase::Done) || level >= 3 {
            dropped_times += r.times.len();
            r.times.clear();
        }
    }
    if level >= 3 {
        for s in &mut j.steps {
            if let Some(n) = &mut s.note {
                *n = n.chars().take(300).collect();
            }
        }
        for r in j.nodes.values_mut() {
            if let Some(n) = &mut r.note {
                *n = n.chars().take(300).collect();
            }
        }
    }
    if dropped_run + dropped_nodes + dropped_times == 0 && level < 3 {
        String::new()
    } else if dropped_times == 0 {
        format!("{dropped_run} run log lines and {dropped_nodes} node log lines left out to fit the ConfigMap")
    } else {
        format!(
            "{dropped_run} run log lines, {dropped_nodes} node log lines and {dropped_times} phase times left out to fit the ConfigMap"
        )
    }
}

/// The journal as the ConfigMap stores it, compacted as far as it must be to fit.
pub fn encode(journal: &Journal, now: &str) -> Result<Encoded, JournalError> {
    encode_within(journal, now, MAX_STORED_BYTES)
}

fn encode_within(journal: &Journal, now: &str, limit: usize) -> Result<Encoded, JournalError> {
    let mut last = 0;
    for level in 0..=3u8 {
        let mut j = journal.clone();
        let compacted = compact(&mut j, level);
        let json = serde_json::to_vec(&j).map_err(write_err)?;
        let data = gzip(&json)?;
        last = data.len();
        if data.len() <= limit {
            return Ok(Encoded { labels: labels(&j), annotations: annotations(&j, now, &compacted), data, compacted });
        }
    }
    Err(JournalError::TooLarge { path: where_(), size: last, limit })
}

fn labels(j: &Journal) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "k8s-upgrade".to_string()),
        (format!("{ANNOTATION_PREFIX}finished"), j.finished.to_string()),
    ]);
    let run = label_value(&j.run_id);
    if !run.is_empty() {
        out.insert(format!("{ANNOTATION_PREFIX}run"), run);
    }
    out
}

fn annotations(j: &Journal, now: &str, compacted: &str) -> BTreeMap<String, String> {
    let done = j.steps.iter().filter(|s| matches!(s.status, StepStatus::Done | StepStatus::Skipped)).count();
    let bounded = |s: &str| s.chars().take(512).collect::<String>();
    let mut out = BTreeMap::from([
        (format!("{ANNOTATION_PREFIX}run-id"), bounded(&j.run_id)),
        (format!("{ANNOTATION_PREFIX}from"), j.from.to_string()),
        (format!("{ANNOTATION_PREFIX}to"), j.to.to_string()),
        (format!("{ANNOTATION_PREFIX}distro"), bounded(&j.distro)),
        (format!("{ANNOTATION_PREFIX}finished"), j.finished.to_string()),
        (format!("{ANNOTATION_PREFIX}steps-done"), format!("{done}/{}", j.steps.len())),
        (format!("{ANNOTATION_PREFIX}updated-at"), now.to_string()),
    ]);
    let cordoned: Vec<&str> = j.left_cordoned().into_iter().map(|(n, _)| n).take(20).collect();
    if !cordoned.is_empty() {
        out.insert(format!("{ANNOTATION_PREFIX}left-cordoned"), bounded(&cordoned.join(",")));
    }
    if !compacted.is_empty() {
        out.insert(format!("{ANNOTATION_PREFIX}compacted"), compacted.to_string());
    }
    out
}

/// The journal from its stored form, bounded in what it may inflate to.
pub fn decode(gz: &[u8]) -> Result<Journal, JournalError> {
    if gz.len() > CONFIGMAP_LIMIT {
        return Err(read_err(format!("{} bytes stored, more than a ConfigMap holds", gz.len())));
    }
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .take(MAX_JOURNAL_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| read_err(format!("not gzip data ({e})")))?;
    if json.len() as u64 > MAX_JOURNAL_BYTES {
        return Err(read_err(format!("it inflates to more than {MAX_JOURNAL_BYTES} bytes")));
    }
    Journal::from_json(&json).map_err(read_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::journal::{JOURNAL_API_VERSION, NodeRecord};

    fn journal(nodes: usize, log_chars: usize) -> Journal {
        let random = |n: usize| -> String { (0..n).map(|_| fastrand::alphanumeric()).collect() };
        let mut j = Journal {
            api_version: JOURNAL_API_VERSION.into(),
            kind: "ApplyJournal".into(),
            run_id: "18f2-ab".into(),
            cluster: "https://10.96.0.1".into(),
            distro: "kubeadm".into(),
            from: "1.30.4".parse().unwrap(),
            to: "1.31.2".parse().unwrap(),
            steps: vec![],
            nodes: BTreeMap::new(),
            pools: BTreeMap::new(),
            acknowledged: Default::default(),
            requests_at_start: None,
            log: (0..500).map(|_| random(log_chars)).collect(),
            baseline: None,
            finished: false,
            path: PathBuf::new(),
        };
        for i in 0..nodes {
            j.set_node(
                &NodeRecord {
                    step: 4,
                    target: "1.31.2".parse().unwrap(),
                    phase: if i % 7 == 0 { NodePhase::Drained } else { NodePhase::Done },
                    from: Some("1.30.4".parse().unwrap()),
                    we_cordoned: true,
                    note: None,
                    seconds: Some(41.5),
                    log: (0..crate::exec::journal::NODE_LOG_DONE).map(|_| random(log_chars)).collect(),
                    // A finished node's whole history, as the report's timeline reads it.
                    times: [
                        NodePhase::Started,
                        NodePhase::Cordoned,
                        NodePhase::Drained,
                        NodePhase::UpgradeStarted,
                        NodePhase::UpgradeFinished,
                        NodePhase::Upgraded,
                        NodePhase::Done,
                    ]
                    .into_iter()
                    .enumerate()
                    .map(|(k, phase)| crate::exec::journal::PhaseTime {
                        phase,
                        at: crate::exec::journal::Stamp(
                            jiff::Timestamp::from_second(1_790_000_000 + i as i64 * 37 + k as i64 * 11).unwrap(),
                        ),
                    })
                    .collect(),
                },
                &format!("ip-10-{}-{}-{}.eu-west-1.compute.internal", i / 65536, (i / 256) % 256, i % 256),
            );
        }
        j
    }

    #[test]
    fn a_small_journal_round_trips_whole_with_readable_metadata() {
        let j = journal(3, 80);
        let e = encode(&j, "2026-12-03T17:00:00Z").unwrap();
        assert!(e.compacted.is_empty());
        assert_eq!(decode(&e.data).unwrap(), j);
        assert_eq!(e.labels["k8s-upgrade.dev/finished"], "false");
        assert_eq!(e.labels["k8s-upgrade.dev/run"], "18f2-ab");
        assert_eq!(e.annotations["k8s-upgrade.dev/to"], "1.31.2");
        assert_eq!(e.annotations["k8s-upgrade.dev/updated-at"], "2026-12-03T17:00:00Z");
        assert!(e.annotations["k8s-upgrade.dev/left-cordoned"].starts_with("ip-10-0-0-0"));
    }

    #[test]
    fn the_large_scenario_s_node_count_fits_by_dropping_output_but_never_a_phase() {
        // 5,000 nodes (the `large` scenario), each with a full log of incompressible lines.
        let j = journal(5000, 200);
        let e = encode(&j, "now").unwrap();
        assert!(e.data.len() <= MAX_STORED_BYTES, "{} bytes", e.data.len());
        assert!(e.annotations["k8s-upgrade.dev/compacted"].contains("left out"), "{:?}", e.annotations);
        let back = decode(&e.data).unwrap();
        assert_eq!(back.nodes.len(), 5000);
        for (k, r) in &j.nodes {
            let b = &back.nodes[k];
            assert_eq!((b.phase, b.we_cordoned, b.step), (r.phase, r.we_cordoned, r.step), "{k}");
            // Finished nodes lose their output before unfinished ones.
            if r.phase == NodePhase::Done {
                assert!(b.log.is_empty(), "{k}");
            }
        }
        // Output of the unfinished nodes is kept when it fits (3 lines at level 2).
        assert!(back.nodes.values().any(|r| r.phase == NodePhase::Drained && !r.log.is_empty()));
    }

    #[test]
    fn a_journal_that_cannot_fit_is_refused_with_the_sizes() {
        let j = journal(400, 10);
        let err = encode_within(&j, "now", 1000).unwrap_err().to_string();
        assert!(err.contains("does not fit") && err.contains("1000") && err.contains("--journal FILE"), "{err}");
    }

    #[test]
    fn hostile_stored_data_is_refused_not_trusted() {
        assert!(decode(b"not gzip").unwrap_err().to_string().contains("not gzip"));
        // A gzip bomb: a few KiB that inflate past the bound.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..=(MAX_JOURNAL_BYTES >> 20) {
            gz.write_all(&zeros).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < CONFIGMAP_LIMIT);
        assert!(decode(&bomb).unwrap_err().to_string().contains("inflates to more than"));
        let other = gzip(br#"{"apiVersion": "v1", "kind": "ConfigMap"}"#).unwrap();
        assert!(decode(&other).unwrap_err().to_string().contains("cannot read the journal"));
        assert_eq!(label_value("-a/b c-"), "a_b_c");
        assert_eq!(label_value(&"x".repeat(100)).len(), 63);
    }

    #[test]
    fn a_file_called_cluster_is_named_so_that_it_stays_a_file() {
        assert_eq!(JournalStore::File("cluster".into()).arg(), "./cluster");
        assert_eq!(JournalStore::File("/tmp/j.json".into()).arg(), "/tmp/j.json");
    }
}
