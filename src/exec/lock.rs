//! The cluster lock: a `coordination.k8s.io/v1` Lease in kube-system, held by one `apply` at a
//! time (holder identity `user@host/run-id`), renewed while the run lives and released at the
//! end. A second run refuses and names the holder; an expired lease (its holder died without
//! releasing it) is taken over; `--break-lock` takes a live one after confirmation.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

pub const LEASE_NAME: &str = "k8s-upgrade-lock";
pub const LEASE_NAMESPACE: &str = "kube-system";
/// A lease not renewed for this long is considered abandoned.
pub const LEASE_SECONDS: i32 = 60;
const RENEW_EVERY: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another apply holds the cluster lock: {holder} (lease {LEASE_NAMESPACE}/{LEASE_NAME}, renewed {age}s ago); wait for it, or pass --break-lock if that run is dead"
    )]
    Held { holder: String, age: i64 },
    #[error("cannot take the cluster lock (lease {LEASE_NAMESPACE}/{LEASE_NAME}): {0}")]
    Api(String),
}

/// The lock while held; renewal runs in the background until [`Held::release`].
pub struct Held {
    api: Api<Lease>,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
}

fn now() -> MicroTime {
    MicroTime(jiff_now())
}

fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

fn lease_body(holder: &str, resource_version: Option<String>) -> Lease {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE, "resourceVersion": resource_version},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": LEASE_SECONDS,
            "acquireTime": now(),
            "renewTime": now(),
        }
    }))
    .unwrap_or_default()
}

/// Takes the lock for `holder`. `break_lock` takes it even from a live holder.
pub async fn acquire(client: &Client, holder: &str, break_lock: bool) -> Result<Held, LockError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    // A 409 means another run took the lease between our read and our write: read it again,
    // so that the refusal names that run.
    let mut taken = false;
    for _ in 0..3 {
        let existing = api.get_opt(LEASE_NAME).await.map_err(|e| LockError::Api(e.to_string()))?;
        let written = match existing {
            None => api.create(&PostParams::default(), &lease_body(holder, None)).await,
            Some(lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let other = spec.holder_identity.clone().unwrap_or_default();
                let renewed = spec.renew_time.as_ref().map(|t| t.0);
                let age = renewed.map_or(i64::MAX, |t| jiff_now().duration_since(t).as_secs());
                let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
                let live = !other.is_empty() && age <= duration;
                if live && other != holder && !break_lock {
                    return Err(LockError::Held { holder: other, age });
                }
                // Replace with our holder; the resourceVersion makes a race with another taker fail.
                let body = lease_body(holder, lease.metadata.resource_version);
                api.replace(LEASE_NAME, &PostParams::default(), &body).await
            }
        };
        match written {
            Ok(_) => {
                taken = true;
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(LockError::Api(e.to_string())),
        }
    }
    if !taken {
        return Err(LockError::Held { holder: "another run (the lease kept changing under us)".into(), age: 0 });
    }
    let renew_api = api.clone();
    let renew_holder = holder.to_string();
    let renewer = tokio::spawn(async move {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            // Renew only while the lease is still ours, and only the version we read: a lease
            // taken with --break-lock is not taken back.
            let Ok(Some(lease)) = renew_api.get_opt(LEASE_NAME).await else { continue };
            if lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(renew_holder.as_str()) {
                break;
            }
            let patch = json!({
                "metadata": {"resourceVersion": lease.metadata.resource_version},
                "spec": {"renewTime": now(), "holderIdentity": renew_holder}
            });
            let _ =
                renew_api.patch(LEASE_NAME, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await;
        }
    });
    Ok(Held { api, holder: holder.to_string(), renewer })
}

impl Held {
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Stops renewing and deletes the lease if it is still ours.
    pub async fn release(self) {
        self.renewer.abort();
        if let Ok(Some(l)) = self.api.get_opt(LEASE_NAME).await
            && l.spec.and_then(|s| s.holder_identity).as_deref() == Some(self.holder.as_str())
        {
            let _ = self.api.delete(LEASE_NAME, &DeleteParams::default()).await;
        }
    }
}
