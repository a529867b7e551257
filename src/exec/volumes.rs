//! The last step of a drain, as Cluster API takes it: before the upgrade action restarts or
//! replaces a node, wait until the network volumes of the pods that left it have detached.
//! A block volume still attached when the node goes away is detached by force minutes later (or
//! never, on some drivers), and the pods that moved wait for it meanwhile.
//!
//! A volume is still to detach when the node's `status.volumesAttached` lists it and the
//! kubelet no longer reports it in `status.volumesInUse` (a pod that stays, a DaemonSet's say,
//! keeps its volumes in use and is not waited for), or a VolumeAttachment for the node names a
//! CSI volume that is not in use there. An unreachable node is not waited for: its kubelet cannot
//! confirm any unmount, which is why the attach/detach controller detaches there by force.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, PersistentVolume};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::{Api, Client};

use super::cache::{Cache, Kind};
use crate::kubeapi::retry::with_retries;

/// The unique name a kubelet and the attach/detach controller give a CSI volume.
fn csi_unique_name(driver: &str, handle: &str) -> String {
    format!("kubernetes.io/csi/{driver}^{handle}")
}

/// Volumes still attached to `node` that no pod on it uses any more, by name: the node's own
/// list first, then VolumeAttachments whose CSI volume (`pv_handle` gives a PersistentVolume's
/// driver and handle) the kubelet does not report in use.
pub fn still_attached(
    node: &Node,
    attachments: &[VolumeAttachment],
    pv_handle: impl Fn(&str) -> Option<(String, String)>,
) -> Vec<String> {
    let status = node.status.as_ref();
    let in_use: BTreeSet<&str> =
        status.and_then(|s| s.volumes_in_use.as_ref()).into_iter().flatten().map(String::as_str).collect();
    let mut left: BTreeSet<String> = status
        .and_then(|s| s.volumes_attached.as_ref())
        .into_iter()
        .flatten()
        .map(|v| v.name.as_str())
        .filter(|n| !in_use.contains(n))
        .map(str::to_string)
        .collect();
    let node_name = node.metadata.name.as_deref().unwrap_or_default();
    for va in attachments.iter().filter(|va| va.spec.node_name == node_name) {
        let Some(pv) = va.spec.source.persistent_volume_name.as_deref() else { continue };
        let unique = pv_handle(pv).map(|(driver, handle)| csi_unique_name(&driver, &handle));
        if unique.as_deref().is_none_or(|u| !in_use.contains(u)) {
            // Name it as the node's list does when the volume is known, else by its PV.
            left.insert(unique.unwrap_or_else(|| format!("persistentvolume/{pv}")));
        }
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
/// directly while one is stale) and waking on every change, at the latest after `interval`;
/// `on_wait` hears the names still attached (once per change). An unreachable node returns at
/// once.
pub async fn wait_detached(
    client: &Client,
    cache: &Cache,
    node: &str,
    timeout: Duration,
    interval: Duration,
    cancel: &super::cancel::Cancel,
    mut on_wait: impl FnMut(&[String]),
) -> Result<(), DetachError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let attachments: Api<VolumeAttachment> = Api::all(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let read = |e: kube::Error| DetachError::Read { node: node.to_string(), error: e.to_string() };
    let all = kube::api::ListParams::default();
    let started = Instant::now();
    let mut changes = cache.changes();
    let mut last: Vec<String> = Vec::new();
    // Volume handles never change: each PersistentVolume is read once.
    let mut handles: HashMap<String, Option<(String, String)>> = HashMap::new();
    loop {
        let n = match cache.node(node) {
            Some(n) if !cache.is_stale(Kind::Nodes) => Node::clone(&n),
            _ => with_retries(|| nodes.get(node)).await.map_err(read)?,
        };
        if super::drain::unreachable(&n) {
            return Ok(());
        }
        let mine: Vec<VolumeAttachment> = if cache.is_stale(Kind::VolumeAttachments) {
            let list = with_retries(|| attachments.list(&all)).await.map_err(read)?;
            list.items.into_iter().filter(|va| va.spec.node_name == node).collect()
        } else {
            cache.attachments_on(node).iter().map(|va| VolumeAttachment::clone(va)).collect()
        };
        for va in &mine {
            let Some(pv) = va.spec.source.persistent_volume_name.as_deref() else { continue };
            if handles.contains_key(pv) {
                continue;
            }
            // A volume deleted meanwhile has no handle left; it is named by its PV.
            let volume = with_retries(|| volumes.get_opt(pv)).await.map_err(read)?;
            let csi = volume.and_then(|v| v.spec).and_then(|s| s.csi).map(|c| (c.driver, c.volume_handle));
            handles.insert(pv.to_string(), csi);
        }
        let left = still_attached(&n, &mine, |pv| handles.get(pv).cloned().flatten());
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

    fn node(attached: &[&str], in_use: &[&str]) -> Node {
        let attached: Vec<_> = attached.iter().map(|n| json!({"name": n, "devicePath": ""})).collect();
        serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "status": {"volumesAttached": attached, "volumesInUse": in_use},
        }))
        .unwrap()
    }

    fn attachment(node: &str, pv: &str) -> VolumeAttachment {
        serde_json::from_value(json!({
            "metadata": {"name": format!("csi-{pv}-{node}")},
            "spec": {"attacher": "ebs.csi.aws.com", "nodeName": node, "source": {"persistentVolumeName": pv}},
        }))
        .unwrap()
    }

    fn ebs(pv: &str) -> Option<(String, String)> {
        Some(("ebs.csi.aws.com".into(), format!("vol-{pv}")))
    }

    #[test]
    fn a_volume_the_kubelet_still_uses_is_not_waited_for_and_one_it_let_go_of_is() {
        let n = node(
            &["kubernetes.io/csi/ebs.csi.aws.com^vol-a", "kubernetes.io/csi/ebs.csi.aws.com^vol-b"],
            &["kubernetes.io/csi/ebs.csi.aws.com^vol-a"],
        );
        let vas = [attachment("n1", "a"), attachment("n1", "b"), attachment("n2", "c")];
        assert_eq!(still_attached(&n, &vas, ebs), vec!["kubernetes.io/csi/ebs.csi.aws.com^vol-b"]);
    }

    #[test]
    fn an_attachment_the_node_does_not_list_yet_is_still_waited_for() {
        let n = node(&[], &[]);
        assert_eq!(still_attached(&n, &[attachment("n1", "a")], ebs), vec!["kubernetes.io/csi/ebs.csi.aws.com^vol-a"]);
        // A PV that is gone or not CSI is named by its PV.
        assert_eq!(still_attached(&n, &[attachment("n1", "a")], |_| None), vec!["persistentvolume/a"]);
    }

    #[test]
    fn nothing_attached_means_nothing_to_wait_for() {
        assert!(still_attached(&node(&[], &[]), &[attachment("n2", "a")], ebs).is_empty());
    }
}
