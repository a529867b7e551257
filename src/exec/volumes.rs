//! The last step of a drain, as Cluster API takes it: before the upgrade action restarts or
//! replaces a node, wait until the network volumes of the pods that left it have detached.
//! A block volume still attached when the node goes away is detached by force minutes later (or
//! never, on some drivers), and the pods that moved wait for it meanwhile.
//!
//! The rule is Cluster API's: every volume the node's `status.volumesAttached` lists and every
//! attached VolumeAttachment naming the node is waited for, except the volumes of pods that stay
//! on the node (DaemonSet and mirror pods, pods `--pod-selector` left out, pods given up on while
//! terminating): their claims are followed to their PersistentVolumes. The kubelet's
//! `status.volumesInUse` is not trusted for this: it is reported every few seconds and lists a
//! volume until its unmount, so right after a drain it still names volumes that are about to go.
//! An unreachable node is not waited for: its kubelet cannot confirm any unmount, which is why
//! the attach/detach controller detaches there by force.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, Pod};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::api::ListParams;
use kube::{Api, Client};

use super::cache::{Cache, Kind};
use crate::kubeapi::retry::with_retries;

/// The unique name a kubelet and the attach/detach controller give a CSI volume.
fn csi_unique_name(driver: &str, handle: &str) -> String {
    format!("kubernetes.io/csi/{driver}^{handle}")
}

/// What the run knows of one PersistentVolume: its name, its CSI unique name (none for a volume
/// without `spec.csi`), and the claim bound to it (`namespace/name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub unique: Option<String>,
    pub claim: Option<String>,
}

impl Volume {
    pub fn of(pv: &PersistentVolume) -> Volume {
        let spec = pv.spec.as_ref();
        Volume {
            name: pv.metadata.name.clone().unwrap_or_default(),
            unique: spec.and_then(|s| s.csi.as_ref()).map(|c| csi_unique_name(&c.driver, &c.volume_handle)),
            claim: spec.and_then(|s| s.claim_ref.as_ref()).map(|c| {
                format!("{}/{}", c.namespace.as_deref().unwrap_or_default(), c.name.as_deref().unwrap_or_default())
            }),
        }
    }
}

/// The claims (`namespace/name`) of the pods that stay on the node.
pub fn claims_of(staying: &[Pod]) -> BTreeSet<String> {
    staying
        .iter()
        .flat_map(|p| {
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            p.spec
                .as_ref()
                .and_then(|s| s.volumes.as_ref())
                .into_iter()
                .flatten()
                .filter_map(move |v| v.persistent_volume_claim.as_ref().map(|c| format!("{ns}/{}", c.claim_name)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Volumes still attached to `node` that no staying pod uses, by name: the node's own list, then
/// attached VolumeAttachments naming it (by the PV's unique name when known, else by PV).
/// `volumes` are the cluster's PersistentVolumes, `kept` the claims of the pods that stay.
pub fn still_attached(
    node: &Node,
    attachments: &[VolumeAttachment],
    volumes: &[Volume],
    kept: &BTreeSet<String>,
) -> Vec<String> {
    let kept_volumes: Vec<&Volume> =
        volumes.iter().filter(|v| v.claim.as_ref().is_some_and(|c| kept.contains(c))).collect();
    let kept_unique: BTreeSet<&str> = kept_volumes.iter().filter_map(|v| v.unique.as_deref()).collect();
    let kept_pv: BTreeSet<&str> = kept_volumes.iter().map(|v| v.name.as_str()).collect();
    let mut left: BTreeSet<String> = node
        .status
        .as_ref()
        .and_then(|s| s.volumes_attached.as_ref())
        .into_iter()
        .flatten()
        .map(|v| v.name.as_str())
        .filter(|n| !kept_unique.contains(n))
        .map(str::to_string)
        .collect();
    let node_name = node.metadata.name.as_deref().unwrap_or_default();
    for va in attachments.iter().filter(|va| va.spec.node_name == node_name) {
        // An attachment that never attached holds nothing on the node (Cluster API skips it too).
        if !va.status.as_ref().is_some_and(|s| s.attached) {
            continue;
        }
        let Some(pv) = va.spec.source.persistent_volume_name.as_deref() else { continue };
        if kept_pv.contains(pv) {
            continue;
        }
        let unique = volumes.iter().find(|v| v.name == pv).and_then(|v| v.unique.clone());
        left.insert(unique.unwrap_or_else(|| format!("persistentvolume/{pv}")));
    }
    left.into_iter().collect()
}

/// Why the wait ended without the volumes detaching.
#[derive(Debug, thiserror::Error)]
pub enum DetachError {
    #[error(
        "{count} volume(s) still attached to {node} {waited}s after its pods left: {names}. Check the storage driver (kubectl get volumeattachments -o wide), then apply --resume; --volume-detach-timeout 0 does not wait"
    )]
    Timeout { node: String, count: usize, names: String, waited: u64 },
    #[error("cannot read the volumes of {node}: {error}")]
    Read { node: String, error: String },
    #[error("stopped while waiting for the volumes of {node} to detach")]
    Interrupted { node: String },
}

/// Waits until nothing is left to detach from `node`, reading the run's watches (the API
/// directly, at most once per `interval`, while one is stale) and waking on every change, at the
/// latest after `interval`. `staying` gives the pods that stay on the node (the drain's own
/// answer); `on_wait` hears the names still attached (once per change). An unreachable or
/// deleted node returns at once.
#[allow(clippy::too_many_arguments)]
pub async fn wait_detached(
    client: &Client,
    cache: &Cache,
    node: &str,
    timeout: Duration,
    interval: Duration,
    cancel: &super::cancel::Cancel,
    staying: impl Fn() -> Vec<Pod>,
    mut on_wait: impl FnMut(&[String]),
) -> Result<(), DetachError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let attachments: Api<VolumeAttachment> = Api::all(client.clone());
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let read = |e: kube::Error| DetachError::Read { node: node.to_string(), error: e.to_string() };
    let all = ListParams::default();
    let started = Instant::now();
    let mut changes = cache.changes();
    let mut last: Vec<String> = Vec::new();
    // PersistentVolumes are listed when something is attached, then again at most once per
    // interval (a claim bound meanwhile); direct reads of stale kinds are paced the same way.
    let mut volumes: Option<(Instant, Vec<Volume>)> = None;
    let mut direct: Option<(Instant, Node, Vec<VolumeAttachment>)> = None;
    loop {
        let fresh = !cache.is_stale(Kind::Nodes) && !cache.is_stale(Kind::VolumeAttachments);
        let (n, mine) = match (fresh, cache.node(node), &direct) {
            (true, Some(n), _) => (Node::clone(&n), cache.attachments_on(node).iter().map(|a| (**a).clone()).collect()),
            (_, _, Some((at, n, vas))) if at.elapsed() < interval => (n.clone(), vas.clone()),
            _ => {
                let Some(n) = with_retries(|| nodes.get_opt(node)).await.map_err(read)? else { return Ok(()) };
                let list = with_retries(|| attachments.list(&all)).await.map_err(read)?;
                let vas: Vec<VolumeAttachment> =
                    list.items.into_iter().filter(|va| va.spec.node_name == node).collect();
                direct = Some((Instant::now(), n.clone(), vas.clone()));
                (n, vas)
            }
        };
        if super::drain::unreachable(&n) {
            return Ok(());
        }
        let anything = n.status.as_ref().and_then(|s| s.volumes_attached.as_ref()).is_some_and(|v| !v.is_empty())
            || mine.iter().any(|va| va.status.as_ref().is_some_and(|s| s.attached));
        if !anything {
            return Ok(());
        }
        if volumes.as_ref().is_none_or(|(at, _)| at.elapsed() >= interval) {
            let list = with_retries(|| pvs.list(&all)).await.map_err(read)?;
            volumes = Some((Instant::now(), list.items.iter().map(Volume::of).collect()));
        }
        let known = volumes.as_ref().map(|(_, v)| v.as_slice()).unwrap_or_default();
        let left = still_attached(&n, &mine, known, &claims_of(&staying()));
        if left.is_empty() {
            return Ok(());
        }
        if left != last {
            on_wait(&left);
            last = left.clone();
        }
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(DetachError::Timeout {
                node: node.to_string(),
                count: left.len(),
                names: left.join(", "),
                waited: waited.as_secs(),
            });
        }
        tokio::select! {
            // The first stop request lets the node in flight finish; only an abort ends the wait.
            _ = cancel.abort_requested() => return Err(DetachError::Interrupted { node: node.to_string() }),
            _ = Cache::next_change(&mut changes, interval.min(timeout - waited)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(attached: &[&str]) -> Node {
        let attached: Vec<_> = attached.iter().map(|n| json!({"name": n, "devicePath": ""})).collect();
        serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            // What the kubelet still reports in use is deliberately not read.
            "status": {"volumesAttached": attached, "volumesInUse": ["kubernetes.io/csi/ebs.csi.aws.com^vol-b"]},
        }))
        .unwrap()
    }

    fn attachment(node: &str, pv: &str, attached: bool) -> VolumeAttachment {
        serde_json::from_value(json!({
            "metadata": {"name": format!("csi-{pv}-{node}")},
            "spec": {"attacher": "ebs.csi.aws.com", "nodeName": node, "source": {"persistentVolumeName": pv}},
            "status": {"attached": attached},
        }))
        .unwrap()
    }

    fn volume(pv: &str, claim: &str) -> Volume {
        Volume {
            name: pv.into(),
            unique: Some(format!("kubernetes.io/csi/ebs.csi.aws.com^vol-{pv}")),
            claim: Some(claim.into()),
        }
    }

    fn pod_with_claim(ns: &str, claim: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": ns},
            "spec": {"containers": [], "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]},
        }))
        .unwrap()
    }

    #[test]
    fn only_the_volumes_of_pods_that_stay_are_not_waited_for() {
        let n = node(&["kubernetes.io/csi/ebs.csi.aws.com^vol-a", "kubernetes.io/csi/ebs.csi.aws.com^vol-b"]);
        let vas = [attachment("n1", "a", true), attachment("n1", "b", true), attachment("n2", "c", true)];
        let volumes = [volume("a", "logging/agent-data"), volume("b", "shop/data-db-0"), volume("c", "shop/data-db-1")];
        // The DaemonSet pod that stays keeps `a`; `b` belonged to a pod that left, even though the
        // kubelet still reports it in use.
        let kept = claims_of(&[pod_with_claim("logging", "agent-data")]);
        assert_eq!(still_attached(&n, &vas, &volumes, &kept), vec!["kubernetes.io/csi/ebs.csi.aws.com^vol-b"]);
        assert_eq!(still_attached(&n, &vas, &volumes, &BTreeSet::new()).len(), 2);
    }

    #[test]
    fn an_attachment_the_node_does_not_list_yet_is_waited_for_unless_it_never_attached() {
        let n = node(&[]);
        let volumes = [volume("a", "shop/x")];
        let kept = BTreeSet::new();
        assert_eq!(
            still_attached(&n, &[attachment("n1", "a", true)], &volumes, &kept),
            vec!["kubernetes.io/csi/ebs.csi.aws.com^vol-a"]
        );
        assert!(still_attached(&n, &[attachment("n1", "a", false)], &volumes, &kept).is_empty());
        // A PV that is gone or not CSI is named by its PV.
        assert_eq!(still_attached(&n, &[attachment("n1", "z", true)], &volumes, &kept), vec!["persistentvolume/z"]);
    }

    #[test]
    fn nothing_attached_means_nothing_to_wait_for() {
        assert!(still_attached(&node(&[]), &[attachment("n2", "a", true)], &[], &BTreeSet::new()).is_empty());
    }
}
