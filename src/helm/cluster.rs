//! A release's revisions read and written through the Kubernetes API, as Helm's Secret storage
//! driver keeps them: the rewrite is prepared from the Secrets of one release (list), then the
//! new revision is created and the one before it updated to superseded, in that order, so the
//! release always has a deployed revision. A run that stopped between the two is finished by the
//! next one: the newest deployed revision carries the rewrite's description, and older ones
//! still marked deployed are superseded instead of writing yet another revision.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};

use super::manifest::{self, Change, Target};
use super::storage::{self, HelmError, ReleaseDoc};
use super::{REWRITE_DESCRIPTION, SECRET_TYPE, diff, secret_name};
use crate::catalog::served::ServedApis;
use crate::kubeapi::retry::with_retries;

/// Most revisions (Secrets) of one release read.
pub const MAX_REVISIONS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum FixError {
    #[error(transparent)]
    Helm(#[from] HelmError),
    #[error(
        "no Helm release '{release}' in namespace '{namespace}' (no Secret of type {SECRET_TYPE} labelled owner=helm,name={release}); check the name and -n/--namespace (`helm list -A` lists releases)"
    )]
    NotFound { namespace: String, release: String },
    #[error(
        "Helm release {namespace}/{release} has no deployed revision (the latest, {latest}, is {status}); there is nothing to rewrite: roll it back or upgrade it with Helm first"
    )]
    NotDeployed { namespace: String, release: String, latest: u64, status: String },
    #[error(
        "Helm release {namespace}/{release}: revision {revision} is {status}, so a Helm operation is in progress or was cut short; let it finish (or `helm rollback` it) and run again"
    )]
    Pending { namespace: String, release: String, revision: u64, status: String },
    #[error(
        "Helm release {namespace}/{release}: {what} was refused (403 Forbidden): {message}; grant the role from `k8s-upgrade rbac --for helm-fix`"
    )]
    Forbidden { namespace: String, release: String, what: String, message: String },
    #[error("Helm release {namespace}/{release}: {what} failed: {message}")]
    Api { namespace: String, release: String, what: String, message: String },
    #[error(
        "Helm release {namespace}/{release}: {what} changed while it was being rewritten ({message}); run again: the rewrite picks up where it stopped"
    )]
    Conflict { namespace: String, release: String, what: String, message: String },
}

/// The clock, read by the caller: `info.last_deployed` (RFC 3339) and the `createdAt` label.
#[derive(Debug, Clone)]
pub struct Now {
    pub rfc3339: String,
    pub unix: i64,
}

impl Now {
    pub fn system() -> Now {
        let t = jiff::Timestamp::now();
        Now { rfc3339: t.to_string(), unix: t.as_second() }
    }
}

/// A rewrite worked out and not yet written.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub namespace: String,
    pub release: String,
    /// The deployed revision read.
    pub base: u64,
    /// The revision the rewrite writes (when it changes the manifest).
    pub next: u64,
    pub changes: Vec<Change>,
    /// The unified diff of the deployed manifest and the rewritten one (empty: no change).
    pub diff: String,
    /// Older revisions still marked deployed beside a revision this rewrite wrote (a run that
    /// stopped before superseding them): they are superseded now.
    pub unfinished: Vec<u64>,
    create: Option<Secret>,
    supersede: Vec<Secret>,
}

impl Prepared {
    /// Nothing to write.
    pub fn is_noop(&self) -> bool {
        self.create.is_none() && self.supersede.is_empty()
    }

    /// One line: what the rewrite does (or did) for the minor `target`.
    pub fn summary(&self, target: &str) -> String {
        let who = format!("Helm release {}/{}", self.namespace, self.release);
        let mut parts = Vec::new();
        if !self.changes.is_empty() {
            let (removed, added) = diff::counts_of(&self.diff);
            parts.push(format!(
                "revision {} → {}: {} (manifest -{removed} +{added} lines)",
                self.base,
                self.next,
                self.changes.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ));
        }
        if !self.unfinished.is_empty() {
            parts.push(format!(
                "revision{} {} superseded (left deployed by a rewrite that stopped)",
                if self.unfinished.len() == 1 { "" } else { "s" },
                self.unfinished.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
        if parts.is_empty() {
            format!("{who}: revision {} uses no API that {target} does not serve; nothing to rewrite", self.base)
        } else {
            format!("{who}: {}", parts.join("; "))
        }
    }
}

fn labels_of(s: &Secret) -> BTreeMap<String, String> {
    s.metadata.labels.clone().unwrap_or_default()
}

fn version_of(s: &Secret) -> Option<u64> {
    labels_of(s).get("version").and_then(|v| v.parse().ok())
}

fn status_of(s: &Secret) -> String {
    labels_of(s).get("status").cloned().unwrap_or_default()
}

fn payload_of(s: &Secret) -> &[u8] {
    s.data.as_ref().and_then(|d| d.get("release")).map(|b| b.0.as_slice()).unwrap_or_default()
}

/// `s` with `labels` and the release JSON `doc`; everything else (resourceVersion included,
/// so an update meets a concurrent writer with a conflict) as read.
fn with_release(s: &Secret, labels: BTreeMap<String, String>, doc: &ReleaseDoc) -> Secret {
    let mut out = s.clone();
    out.metadata.labels = Some(labels);
    out.data
        .get_or_insert_with(BTreeMap::new)
        .insert("release".into(), ByteString(storage::encode_payload(doc.text().as_bytes())));
    out
}

impl FixError {
    fn api(namespace: &str, release: &str, what: &str, e: kube::Error) -> FixError {
        let (namespace, release, what) = (namespace.to_string(), release.to_string(), what.to_string());
        match e {
            kube::Error::Api(s) if s.code == 403 => {
                FixError::Forbidden { namespace, release, what, message: s.message }
            }
            kube::Error::Api(s) if s.code == 409 => FixError::Conflict { namespace, release, what, message: s.message },
            e => FixError::Api {
                namespace,
                release,
                what,
                message: crate::kubeapi::errors::describe(&e, "the apiserver"),
            },
        }
    }
}

/// Every revision Secret of `release` in `namespace`.
async fn revisions(api: &Api<Secret>, namespace: &str, release: &str) -> Result<Vec<Secret>, FixError> {
    let mut lp = ListParams::default().labels(&format!("owner=helm,name={release}")).limit(100);
    let mut out = Vec::new();
    loop {
        let page = with_retries(|| api.list(&lp))
            .await
            .map_err(|e| FixError::api(namespace, release, "listing its revisions (list secrets)", e))?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        out.extend(page.items.into_iter().filter(|s| s.type_.as_deref() == Some(SECRET_TYPE)));
        if out.len() > MAX_REVISIONS {
            return Err(FixError::Api {
                namespace: namespace.into(),
                release: release.into(),
                what: "listing its revisions".into(),
                message: format!("more than {MAX_REVISIONS} revisions; prune its history (helm --history-max) first"),
            });
        }
        match next {
            Some(c) => lp.continue_token = Some(c),
            None => return Ok(out),
        }
    }
}

/// Reads the release's revisions and works out the rewrite of its deployed revision for
/// `target`, without writing anything.
pub async fn prepare(
    client: &Client,
    served: &ServedApis,
    target: &Target,
    namespace: &str,
    release: &str,
    now: &Now,
) -> Result<Prepared, FixError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut all: Vec<(u64, Secret)> =
        revisions(&api, namespace, release).await?.into_iter().filter_map(|s| Some((version_of(&s)?, s))).collect();
    all.sort_by_key(|(v, _)| std::cmp::Reverse(*v));
    let Some((latest, latest_secret)) = all.first() else {
        return Err(FixError::NotFound { namespace: namespace.into(), release: release.into() });
    };
    let latest = *latest;
    let latest_status = status_of(latest_secret);
    if latest_status.starts_with("pending") {
        return Err(FixError::Pending {
            namespace: namespace.into(),
            release: release.into(),
            revision: latest,
            status: latest_status,
        });
    }
    let deployed: Vec<&(u64, Secret)> = all.iter().filter(|(_, s)| status_of(s) == "deployed").collect();
    let Some((base, base_secret)) = deployed.first().map(|(v, s)| (*v, s)) else {
        return Err(FixError::NotDeployed {
            namespace: namespace.into(),
            release: release.into(),
            latest,
            status: latest_status,
        });
    };
    let what = |v: u64| format!("{namespace}/{release} revision {v}");
    let doc = ReleaseDoc::from_payload(&what(base), payload_of(base_secret))?;
    let mut supersede = Vec::new();
    let mut unfinished = Vec::new();
    if doc.description().as_deref() == Some(REWRITE_DESCRIPTION) {
        for (v, s) in deployed.iter().skip(1) {
            let old = ReleaseDoc::from_payload(&what(*v), payload_of(s))?;
            let (labels, marked) = storage::superseded(&labels_of(s), &old);
            supersede.push(with_release(s, labels, &marked));
            unfinished.push(*v);
        }
    }
    let old_manifest = doc.manifest().unwrap_or_default();
    let (new_manifest, changes) =
        manifest::rewrite(&old_manifest, |api_version, kind| manifest::decide(served, target, api_version, kind));
    let next = latest + 1;
    let mut create = None;
    let mut diff_text = String::new();
    if !changes.is_empty() {
        diff_text = diff::unified(
            &format!("a/{release} revision {base}"),
            &format!("b/{release} revision {next}"),
            &old_manifest,
            &new_manifest,
        );
        let base_labels = labels_of(base_secret);
        let (labels, new_doc) = storage::next_revision(
            &base_labels,
            &doc,
            &new_manifest,
            next,
            REWRITE_DESCRIPTION,
            &now.rfc3339,
            now.unix,
        );
        create = Some(Secret {
            metadata: ObjectMeta {
                name: Some(secret_name(release, next)),
                namespace: Some(namespace.to_string()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.into()),
            data: Some(BTreeMap::from([(
                "release".to_string(),
                ByteString(storage::encode_payload(new_doc.text().as_bytes())),
            )])),
            ..Secret::default()
        });
        let (labels, marked) = storage::superseded(&base_labels, &doc);
        supersede.insert(0, with_release(base_secret, labels, &marked));
    }
    Ok(Prepared {
        namespace: namespace.into(),
        release: release.into(),
        base,
        next,
        changes,
        diff: diff_text,
        unfinished,
        create,
        supersede,
    })
}

/// Writes a prepared rewrite: the new revision first, then the superseded ones.
pub async fn write(client: &Client, prepared: &Prepared) -> Result<(), FixError> {
    let (namespace, release) = (prepared.namespace.as_str(), prepared.release.as_str());
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let pp = PostParams::default();
    if let Some(secret) = &prepared.create {
        let what = format!("creating revision {} (create secrets)", prepared.next);
        with_retries(|| api.create(&pp, secret)).await.map_err(|e| FixError::api(namespace, release, &what, e))?;
    }
    for secret in &prepared.supersede {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let what = format!("marking {name} superseded (update secrets)");
        with_retries(|| api.replace(&name, &pp, secret))
            .await
            .map_err(|e| FixError::api(namespace, release, &what, e))?;
    }
    Ok(())
}
