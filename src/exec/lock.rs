//! The cluster lock: a `coordination.k8s.io/v1` Lease in kube-system, held by one `apply` at a
//! time, renewed while the run lives and released at the end.
//!
//! Liveness is judged the way client-go's leader election judges it: by what this process
//! observes, not by the holder's clock. A lease whose renew time looks recent is live; one that
//! looks stale is watched for a full lease duration and taken over only if it did not change, so
//! a holder whose clock is off is never mistaken for a dead one. The holder identity is
//! `user@host/run-id/pid.nonce`: a second process resuming the same run while the first still
//! lives is refused, not treated as the same holder; a holder on this machine whose process is
//! gone (a killed run resumed at once) is taken over without waiting for its lease to lapse,
//! and a holder of the same run on another machine (a retried Job's pod, a resume from a
//! laptop) is watched for a lease duration and taken over only if it did not renew. A renewer
//! that sees the lease taken or deleted reports it as lost; the run then ends every wait at once
//! and starts nothing more (an upgrade command in flight finishes). A renewal that fails (the
//! apiserver restarting under our own control-plane step, its RBAC cache not yet filled) loses
//! nothing by itself: the next read that succeeds tells whether someone took the lease
//! meanwhile, and only then is it lost. Past [`RENEW_DEADLINE`] of failures this is said once. `--break-lock` taking a lease its holder renewed recently waits until that
//! holder's renewer has looked ([`RENEW_EVERY`] and a margin) before acting, so the two runs do
//! not act together. Release deletes the lease only with the resourceVersion and UID this run
//! last wrote.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

pub const LEASE_NAME: &str = "k8s-upgrade-lock";
pub const LEASE_NAMESPACE: &str = "kube-system";
/// A lease not renewed for this long (as this process observes it) is abandoned.
pub const LEASE_SECONDS: i32 = 60;
const RENEW_EVERY: Duration = Duration::from_secs(15);
/// A renewer that could not renew for this long says so (once an outage): from then on another
/// run could see the lease lapse, and the next successful read decides whether it did.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(40);
/// How often a lease that looks abandoned is read while it is watched.
const OBSERVE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another apply holds the cluster lock: {holder} (lease {LEASE_NAMESPACE}/{LEASE_NAME}, renewed {age}s ago by its clock); wait for it, or pass --break-lock if that run is dead"
    )]
    Held { holder: String, age: i64 },
    #[error(
        "the run {run} is still running in another process ({holder} renewed the lock {age}s ago by its clock): resuming it twice would act on the same nodes; stop that process first, or, if its machine is gone, wait a minute for the lock to lapse or pass --break-lock"
    )]
    SameRunAlive { run: String, holder: String, age: i64 },
    #[error("cannot take the cluster lock (lease {LEASE_NAMESPACE}/{LEASE_NAME}): {0}")]
    Api(String),
}

/// Whether the lock is still ours, for the executor to check at safe points.
#[derive(Debug, Clone)]
pub struct LockWatch(tokio::sync::watch::Receiver<Option<String>>);

impl LockWatch {
    /// Why the lock was lost, once it was.
    pub fn lost(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// Resolves with the reason once the lock is lost; `None` if it never will be (released,
    /// or a dry run's).
    pub async fn wait_lost(&mut self) -> Option<String> {
        loop {
            if let Some(why) = self.0.borrow_and_update().clone() {
                return Some(why);
            }
            if self.0.changed().await.is_err() {
                return None;
            }
        }
    }

    /// A watch that never reports a loss (dry runs take no lock).
    pub fn never() -> LockWatch {
        let (tx, rx) = tokio::sync::watch::channel(None);
        // Keep the sender alive for the life of the process: the receiver then never changes.
        std::mem::forget(tx);
        LockWatch(rx)
    }
}

/// The lock while held; renewal runs in the background until [`Held::release`] or drop.
pub struct Held {
    api: Api<Lease>,
    holder: String,
    /// (resourceVersion, uid) this run last wrote.
    written: Arc<Mutex<(Option<String>, Option<String>)>>,
    renewer: tokio::task::JoinHandle<()>,
    lost: LockWatch,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

fn now() -> MicroTime {
    MicroTime(crate::clock::now())
}

fn lease_body(holder: &str, resource_version: Option<String>) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(LEASE_NAME.into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            resource_version,
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            ..Default::default()
        }),
    }
}

/// The run id in a holder identity `user@host/run-id/nonce`.
fn run_of(holder: &str) -> Option<&str> {
    let mut parts = holder.rsplitn(3, '/');
    let _nonce = parts.next()?;
    let run = parts.next()?;
    parts.next().map(|_| run)
}

/// The host in a holder identity `user@host/...`.
fn host_of(holder: &str) -> Option<&str> {
    holder.split('/').next().and_then(|u| u.split_once('@')).map(|(_, host)| host)
}

/// Whether `theirs` holds the lock for the run `ours` resumes, from another machine: a pod of a
/// retried Job, or a laptop after a bastion died. Its process cannot be asked, so it is watched.
fn same_run_elsewhere(ours: &str, theirs: &str) -> bool {
    run_of(ours).is_some() && run_of(ours) == run_of(theirs) && host_of(ours) != host_of(theirs)
}

/// Whether `theirs` is a holder on this machine (the same host as `ours`) whose process is gone:
/// identities end in `/PID.NONCE`. A holder elsewhere cannot be judged this way.
fn local_holder_gone(ours: &str, theirs: &str) -> bool {
    if host_of(ours).is_none() || host_of(ours) != host_of(theirs) {
        return false;
    }
    let Some(pid) = theirs
        .rsplit('/')
        .next()
        .and_then(|last| last.split_once('.'))
        .and_then(|(pid, _)| pid.parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // ESRCH: no such process. Anything else (alive, or another user's) counts as alive.
    matches!(rustix::process::test_kill_process(pid), Err(e) if e == rustix::io::Errno::SRCH)
}

/// What a read of the lease says about its holder.
struct Seen {
    holder: String,
    /// Seconds since renewal by the holder's clock (only a hint).
    age: i64,
    duration: i64,
    version: Option<String>,
}

fn seen(lease: &Lease) -> Seen {
    let spec = lease.spec.clone().unwrap_or_default();
    let renewed = spec.renew_time.as_ref().map(|t| t.0);
    Seen {
        holder: spec.holder_identity.unwrap_or_default(),
        age: renewed.map_or(i64::MAX, |t| crate::clock::now().duration_since(t).as_secs()),
        duration: i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS)),
        version: lease.metadata.resource_version.clone(),
    }
}

/// Takes the lock for `holder`. `break_lock` takes it even from a live holder. `waiting` is
/// told when a lease that looks abandoned is being watched before it is taken.
pub async fn acquire(
    client: &Client,
    holder: &str,
    break_lock: bool,
    waiting: &(dyn Fn(String) + Send + Sync),
) -> Result<Held, LockError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    // A 409 means another run took the lease between our read and our write: read it again,
    // so that the refusal names that run.
    for _ in 0..3 {
        let existing = api.get_opt(LEASE_NAME).await.map_err(|e| LockError::Api(e.to_string()))?;
        // A live holder displaced by --break-lock, whom we must give time to notice.
        let mut displaced = None;
        let written = match existing {
            None => api.create(&PostParams::default(), &lease_body(holder, None)).await,
            Some(lease) => {
                let s = seen(&lease);
                if !s.holder.is_empty() && !break_lock && local_holder_gone(holder, &s.holder) {
                    waiting(format!(
                        "the cluster lock was held by {}, a process on this machine that is gone; taking it over",
                        s.holder
                    ));
                } else if !s.holder.is_empty() && !break_lock {
                    let elsewhere = same_run_elsewhere(holder, &s.holder);
                    if s.age <= s.duration && !elsewhere {
                        return Err(refusal(holder, s));
                    }
                    // It looks abandoned by its own clock, or it is this very run's from a
                    // machine whose process cannot be asked: believe it gone only after watching
                    // it stay unchanged for a whole lease duration (a live holder renews well
                    // within one).
                    waiting(if elsewhere && s.age <= s.duration {
                        format!(
                            "the cluster lock is held by {}, this run's holder on another machine (renewed {}s ago by its clock); watching it for {}s: if that process is gone the lock is taken over, if it still renews this one stops",
                            s.holder, s.age, s.duration
                        )
                    } else {
                        format!(
                            "the cluster lock held by {} was last renewed {}s ago by its clock; watching it for {}s to be sure that run is gone",
                            s.holder,
                            if s.age == i64::MAX { "never".to_string() } else { s.age.to_string() },
                            s.duration
                        )
                    });
                    let since = Instant::now();
                    let mut changed = None;
                    while since.elapsed() < Duration::from_secs(s.duration.max(0) as u64) {
                        tokio::time::sleep(OBSERVE_EVERY).await;
                        let again = api.get_opt(LEASE_NAME).await.map_err(|e| LockError::Api(e.to_string()))?;
                        if again.as_ref().map(|l| &l.metadata.resource_version) != Some(&s.version) {
                            changed = Some(again);
                            break;
                        }
                    }
                    match changed {
                        None => {}
                        // Renewed by the same holder while we watched: it lives, whatever its
                        // clock says.
                        Some(Some(l)) if seen(&l).holder == s.holder => return Err(refusal(holder, seen(&l))),
                        // Released or taken by someone else: decide afresh.
                        Some(_) => continue,
                    }
                }
                if break_lock && !s.holder.is_empty() && s.age <= s.duration && s.holder != holder {
                    displaced = Some(s.holder.clone());
                }
                // Replace with our holder; the resourceVersion makes a race with another taker fail.
                api.replace(LEASE_NAME, &PostParams::default(), &lease_body(holder, lease.metadata.resource_version))
                    .await
            }
        };
        match written {
            Ok(lease) => {
                tracing::info!(holder, lease = %format!("{LEASE_NAMESPACE}/{LEASE_NAME}"), "cluster lock taken");
                let held = start_renewer(api, holder, &lease);
                if let Some(previous) = displaced {
                    // Its renewer looks every RENEW_EVERY; once it sees the lease gone it ends
                    // its waits and starts nothing more. Acting before then would be two runs
                    // on one cluster.
                    let pause = RENEW_EVERY + Duration::from_secs(5);
                    waiting(format!(
                        "the cluster lock was taken from {previous}, which renewed it recently; waiting {}s for that run to notice and stop before this one acts",
                        pause.as_secs()
                    ));
                    tokio::time::sleep(pause).await;
                }
                return Ok(held);
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(LockError::Api(e.to_string())),
        }
    }
    Err(LockError::Held { holder: "another run (the lease kept changing under us)".into(), age: 0 })
}

fn refusal(ours: &str, s: Seen) -> LockError {
    match (run_of(ours), run_of(&s.holder)) {
        (Some(a), Some(b)) if a == b => LockError::SameRunAlive { run: a.to_string(), holder: s.holder, age: s.age },
        _ => LockError::Held { holder: s.holder, age: s.age },
    }
}

/// A failed renewal loses nothing by itself (see the module's notes); a long outage is said once.
fn renewal_failed(warned: &mut bool, e: &kube::Error, renewed: Instant) -> Option<String> {
    if renewed.elapsed() >= RENEW_DEADLINE && !*warned {
        *warned = true;
        tracing::warn!(
            seconds = renewed.elapsed().as_secs(),
            error = %e,
            "the cluster lock could not be renewed; it stays this run's unless another run takes it meanwhile"
        );
    }
    None
}

fn start_renewer(api: Api<Lease>, holder: &str, lease: &Lease) -> Held {
    let written = Arc::new(Mutex::new((lease.metadata.resource_version.clone(), lease.metadata.uid.clone())));
    let (tx, rx) = tokio::sync::watch::channel(None);
    let renewer = {
        let (api, holder, written) = (api.clone(), holder.to_string(), written.clone());
        tokio::spawn(async move {
            let mut renewed = Instant::now();
            let mut warned = false;
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                // Renew only while the lease is still ours, and only the version we read: a
                // lease taken with --break-lock is not taken back.
                let problem = match api.get_opt(LEASE_NAME).await {
                    Ok(None) => Some("the lease was deleted".to_string()),
                    Ok(Some(l))
                        if l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(holder.as_str()) =>
                    {
                        let by = l.spec.and_then(|s| s.holder_identity).unwrap_or_default();
                        Some(format!("it was taken by {by}"))
                    }
                    Ok(Some(l)) => {
                        let patch = json!({
                            "metadata": {"resourceVersion": l.metadata.resource_version},
                            "spec": {"renewTime": now(), "holderIdentity": holder}
                        });
                        match api.patch(LEASE_NAME, &PatchParams::default(), &Patch::Merge(&patch)).await {
                            Ok(l) => {
                                renewed = Instant::now();
                                warned = false;
                                *written.lock().unwrap_or_else(|e| e.into_inner()) =
                                    (l.metadata.resource_version, l.metadata.uid);
                                None
                            }
                            // A 409: someone wrote the lease since our read; the next read says who.
                            Err(e) => renewal_failed(&mut warned, &e, renewed),
                        }
                    }
                    Err(e) => renewal_failed(&mut warned, &e, renewed),
                };
                if let Some(why) = problem {
                    tracing::warn!(%why, "cluster lock lost");
                    let _ = tx.send(Some(why));
                    break;
                }
            }
        })
    };
    Held { api, holder: holder.to_string(), written, renewer, lost: LockWatch(rx) }
}

impl Held {
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether the lock is still ours, for the executor.
    pub fn watch(&self) -> LockWatch {
        self.lost.clone()
    }

    /// Stops renewing and deletes the lease, only as this run last wrote it.
    pub async fn release(&self) {
        self.renewer.abort();
        if self.lost.lost().is_some() {
            return;
        }
        let (rv, uid) = self.written.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let dp =
            DeleteParams { preconditions: Some(Preconditions { resource_version: rv, uid }), ..Default::default() };
        let _ = self.api.delete(LEASE_NAME, &dp).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_holder_on_this_machine_is_recognised_and_others_are_not() {
        let me = format!("alice@bastion/r1/{}.00ff", std::process::id());
        // This very process is alive.
        assert!(!local_holder_gone(&me, &me));
        // A PID that cannot exist (above the kernel's maximum) is gone.
        assert!(local_holder_gone(&me, "alice@bastion/r1/2147483646.0001"));
        // Another host, or an identity without a PID, is not judged.
        assert!(!local_holder_gone(&me, "alice@other/r1/2147483646.0001"));
        assert!(!local_holder_gone(&me, "alice@bastion/run-1"));
    }

    #[test]
    fn the_same_run_held_from_another_machine_is_watched_not_refused() {
        assert!(same_run_elsewhere("root@job-pod-2/18f2-ab/1.0001", "root@job-pod-1/18f2-ab/1.00ff"));
        // The same machine is judged by its process; another run is refused.
        assert!(!same_run_elsewhere("root@job-pod-1/18f2-ab/7.0001", "root@job-pod-1/18f2-ab/1.00ff"));
        assert!(!same_run_elsewhere("root@job-pod-2/18f2-ab/1.0001", "root@job-pod-1/other/1.00ff"));
        assert!(!same_run_elsewhere("root@job-pod-2/18f2-ab/1.0001", "legacy-holder"));
    }

    #[test]
    fn the_run_is_read_from_a_holder_identity() {
        assert_eq!(run_of("alice@bastion/18f2-ab/9c1d"), Some("18f2-ab"));
        assert_eq!(run_of("alice@bastion/run-1"), None);
        let s = Seen { holder: "bob@ci/18f2-ab/0001".into(), age: 3, duration: 60, version: None };
        assert!(matches!(refusal("alice@bastion/18f2-ab/9c1d", s), LockError::SameRunAlive { .. }));
        let s = Seen { holder: "bob@ci/other/0001".into(), age: 3, duration: 60, version: None };
        assert!(matches!(refusal("alice@bastion/18f2-ab/9c1d", s), LockError::Held { .. }));
    }
}
