//! Helm releases as Helm v3/v4 stores them, and their rewrite when the cluster stops serving an
//! API their manifest uses (what `helm mapkubeapis` does). It owns the storage format of a
//! release Secret (`type: helm.sh/release.v1`, `data.release` = base64 of the gzipped release
//! JSON; an un-gzipped JSON payload is read too), bounded in size before and after
//! decompression; the rewrite of a stored manifest (each document whose API is removed by the
//! target moves to the version the planner chooses, a document with no replacement is dropped,
//! every other byte stays); the new revision built from the deployed one (version N+1, status
//! deployed, the mapkubeapis description, everything else in the release JSON byte for byte)
//! and the previous revision marked superseded; and a unified diff of the two manifests. All of
//! that is pure; [`cluster`] reads and writes the Secrets through the Kubernetes API. Values
//! (`config`) and chart files are never decoded into anything printed or logged.

pub mod cluster;
pub mod diff;
pub mod manifest;
pub mod storage;

pub use storage::{HelmError, ReleaseDoc};

/// The description Helm shows for a revision this rewrite wrote (as `helm mapkubeapis` words it).
pub const REWRITE_DESCRIPTION: &str = "Kubernetes deprecated API upgrade - DO NOT rollback from this version";

/// The Secret type Helm gives its release records.
pub const SECRET_TYPE: &str = "helm.sh/release.v1";

/// The name of the Secret holding revision `version` of `release`.
pub fn secret_name(release: &str, version: u64) -> String {
    format!("sh.helm.release.v1.{release}.v{version}")
}
