//! Faults a scenario or a test injects: error rates, latency, dropped watches, nodes that never
//! come back, pods stuck terminating, PDBs that never allow a disruption. Changeable at run time
//! through `GET/PUT/PATCH /sim/faults`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Fail a share of matching requests with `code`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorRule {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// `evict`; absent = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    /// Plural resource name (`pods`, `nodes`); absent = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// 429, 500 or 503.
    pub code: u16,
    /// Share of matching requests to fail, 0.0–1.0.
    pub rate: f64,
    /// `Retry-After` seconds (for 429 and 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorRule>,
    /// Added to every API request.
    #[serde(default)]
    pub latency_ms: u64,
    /// Close every watch stream after this many simulated seconds (scaled like every delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_watches_every_seconds: Option<f64>,
    /// Nodes that go NotReady when upgraded and never come back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes_never_ready: Vec<String>,
    /// Nodes whose kubelet cannot be reached (Ready Unknown, the unreachable taint, pods never
    /// finish terminating) until their upgrade replaces them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes_unreachable: Vec<String>,
    /// Pods (`namespace/name`, or `namespace/prefix*`) that never finish terminating.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods_stuck_terminating: Vec<String>,
    /// PodDisruptionBudgets (`namespace/name`) that never allow a disruption.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pdbs_never_allow: Vec<String>,
    /// Nodes whose block volumes never detach (a CSI driver that lost its node plugin).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_stuck_attached: Vec<String>,
    /// Images no node can pull (exact references, or `prefix*`): their pods wait in
    /// `ErrImagePull` / `ImagePullBackOff`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpullable_images: Vec<String>,
    /// Nodes whose upgrade job (the kubeadm upgrader's node job) fails: the package install
    /// exits 100, as apt does when the pinned version is not in the repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_jobs_fail: Vec<String>,
    /// Nodes whose upgrade job never ends (a package manager waiting on its lock).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_jobs_hang: Vec<String>,
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        // Bounds that keep a fault a fault: a latency past a minute or a watch dropped more
        // often than every millisecond only hangs or spins the simulator.
        if self.latency_ms > 60_000 {
            return Err(format!("faults.latencyMs: {} is above the limit of 60000 (one minute)", self.latency_ms));
        }
        if let Some(s) = self.drop_watches_every_seconds
            && !(s.is_finite() && (0.001..=86_400.0).contains(&s))
        {
            return Err(format!("faults.dropWatchesEverySeconds: {s} is not between 0.001 and 86400"));
        }
        for e in &self.errors {
            if !matches!(e.code, 429 | 500 | 503) {
                return Err(format!("faults.errors: code {} is not one of 429, 500, 503", e.code));
            }
            if !(0.0..=1.0).contains(&e.rate) {
                return Err(format!("faults.errors: rate {} is not between 0 and 1", e.rate));
            }
        }
        Ok(())
    }

    /// The rule that fails this request, if any. `n` is a per-simulator request counter, so the
    /// choice is deterministic for a given request order.
    pub fn pick_error(&self, verb: &str, resource: &str, counter: &AtomicU64) -> Option<&ErrorRule> {
        let rule = self.errors.iter().find(|e| {
            e.verb.as_deref().is_none_or(|v| v == verb) && e.resource.as_deref().is_none_or(|r| r == resource)
        })?;
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let roll = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1u64 << 53) as f64;
        (roll < rule.rate).then_some(rule)
    }

    pub fn unpullable(&self, image: &str) -> bool {
        self.unpullable_images.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => image.starts_with(prefix),
            None => p == image,
        })
    }

    pub fn pod_stuck(&self, ns: &str, name: &str) -> bool {
        self.pods_stuck_terminating.iter().any(|p| {
            let full = format!("{ns}/{name}");
            match p.strip_suffix('*') {
                Some(prefix) => full.starts_with(prefix),
                None => *p == full,
            }
        })
    }
}
