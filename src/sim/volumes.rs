//! Network-attached block volumes, as a cloud CSI driver and kube-controller-manager handle them:
//! the dynamic provisioner (a bound PersistentVolume for every claim a StatefulSet's
//! `volumeClaimTemplates` create), and the attach/detach controller (a `storage.k8s.io/v1`
//! VolumeAttachment and an entry in the node's `status.volumesAttached` for every such volume a
//! pod on the node uses, removed only once no pod on the node uses it any more, after the
//! driver's detach time).
//!
//! The volumes are ReadWriteOnce: a volume still attached to one node is not attached to another
//! until it has detached there, and a pod whose volumes are not attached to its node does not
//! start (a real kubelet's "Multi-Attach error"). That is what makes a drain's last step real: a
//! node whose volumes have not detached yet is not safe to restart or replace, and the pods that
//! moved wait for them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tokio::time::Instant;

use serde_json::{Value, json};

use super::Sim;
use super::store::{StorageKey, Store, Stored};

/// The CSI driver of the simulated block volumes.
pub const DRIVER: &str = "block.csi.k8s-upgrade.dev";
/// The StorageClass scenarios' volume claims use.
pub const STORAGE_CLASS: &str = "block";

pub fn attachments_key() -> StorageKey {
    StorageKey::new("storage.k8s.io", "volumeattachments")
}
fn claims_key() -> StorageKey {
    StorageKey::new("", "persistentvolumeclaims")
}
fn volumes_key() -> StorageKey {
    StorageKey::new("", "persistentvolumes")
}
fn nodes_key() -> StorageKey {
    StorageKey::new("", "nodes")
}

/// The name of the PersistentVolume provisioned for a claim (as external-provisioner does:
/// `pvc-` and the claim's uid).
fn volume_name(claim_uid: &str) -> String {
    format!("pvc-{claim_uid}")
}

/// The attach/detach controller's name for an attachment (real ones hash the volume handle, the
/// driver and the node).
fn attachment_name(volume: &str, node: &str) -> String {
    let fnv = |seed: u64| {
        [volume, DRIVER, node]
            .iter()
            .flat_map(|s| s.bytes().chain([0]))
            .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    };
    format!("csi-{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4))
}

/// The `status.volumesAttached` name of a CSI volume (`kubernetes.io/csi/<driver>^<handle>`).
fn unique_name(volume: &str) -> String {
    format!("kubernetes.io/csi/{DRIVER}^{volume}")
}

/// The claim a StatefulSet pod gets from one of its `volumeClaimTemplates`: `<template>-<pod>`.
pub fn claim_name(template: &Value, pod: &str) -> String {
    format!("{}-{pod}", template.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("data"))
}

/// The pod volumes for a StatefulSet pod's claims from its `volumeClaimTemplates`, creating (and
/// provisioning) each claim the first time, as the StatefulSet controller and the provisioner do.
pub fn ensure_claims(store: &Store, sts: &Value, ns: &str, pod: &str) -> Vec<Value> {
    let Some(templates) = sts.pointer("/spec/volumeClaimTemplates").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut volumes = Vec::new();
    for template in templates {
        let claim = claim_name(template, pod);
        let name = template.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("data");
        volumes.push(json!({"name": name, "persistentVolumeClaim": {"claimName": claim}}));
        if store.get(&claims_key(), ns, &claim).is_none() {
            // Anything but an object is not a claim spec (the template came from a client).
            let mut spec = template.get("spec").filter(|s| s.is_object()).cloned().unwrap_or(json!({}));
            spec["storageClassName"] = json!(STORAGE_CLASS);
            let labels = sts.pointer("/spec/selector/matchLabels").filter(|l| l.is_object()).cloned();
            let pvc = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": ns, "labels": labels.unwrap_or(json!({}))},
                "spec": spec,
            });
            if store.create(&claims_key(), pvc, false).is_ok() {
                provision(store, ns, &claim);
            }
        }
    }
    volumes
}

/// Puts claim volumes into a pod spec, replacing template volumes of the same name.
pub fn add_to_pod(pod: &mut Value, claims: Vec<Value>) {
    if claims.is_empty() || !pod.get("spec").is_some_and(Value::is_object) {
        return;
    }
    let mut volumes: Vec<Value> = pod.pointer("/spec/volumes").and_then(Value::as_array).cloned().unwrap_or_default();
    volumes.retain(|v| !claims.iter().any(|c| c.get("name") == v.get("name")));
    volumes.extend(claims);
    pod["spec"]["volumes"] = Value::Array(volumes);
}

/// Binds a pending claim to a new PersistentVolume of the block driver.
fn provision(store: &Store, ns: &str, claim: &str) {
    let Some(pvc) = store.get(&claims_key(), ns, claim) else { return };
    let uid = pvc.meta.uid.to_string();
    let pv_name = volume_name(&uid);
    let size = pvc.value().pointer("/spec/resources/requests/storage").cloned().unwrap_or(json!("1Gi"));
    let pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": DRIVER}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": "Filesystem",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": claim, "uid": uid},
            "csi": {"driver": DRIVER, "volumeHandle": pv_name, "fsType": "ext4"},
        },
        "status": {"phase": "Bound"},
    });
    let _ = store.create(&volumes_key(), pv, false);
    let _ = store.mutate(&claims_key(), ns, claim, None, false, |c| {
        c["spec"]["volumeName"] = json!(pv_name);
        c["status"] = json!({"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}});
        Ok(())
    });
}

/// The block volumes (PersistentVolume names) a pod uses. Works on the stored pod's extracted
/// claims: the controller asks this of every pod on every pass, so no pod is parsed.
fn pod_volumes(sim: &Sim, pod: &Stored) -> Vec<String> {
    pod.meta
        .claims
        .iter()
        .filter_map(|claim| sim.store.get(&claims_key(), pod.namespace(), claim))
        .filter_map(|c| c.value().pointer("/spec/volumeName").and_then(Value::as_str).map(str::to_string))
        .filter(|pv| {
            sim.store
                .get(&volumes_key(), "", pv)
                .is_some_and(|v| v.value().pointer("/spec/csi/driver").and_then(Value::as_str) == Some(DRIVER))
        })
        .collect()
}

/// Whether every block volume of a pod is attached to the node it is bound to (the kubelet
/// starts its containers only then).
pub fn attached_for(sim: &Sim, pod: &Stored) -> bool {
    let node = &*pod.meta.node_name;
    pod_volumes(sim, pod).iter().all(|pv| {
        sim.store
            .get(&attachments_key(), "", &attachment_name(pv, node))
            .is_some_and(|va| va.value().pointer("/status/attached").and_then(Value::as_bool) == Some(true))
    })
}

/// Volumes attached to a node that no pod bound to it uses (whatever the kubelet reports).
pub fn left_attached(sim: &Sim, node: &str) -> Vec<String> {
    let used: BTreeSet<String> = sim
        .store
        .pods_on_node(node)
        .iter()
        .filter(|p| !matches!(&*p.meta.phase, "Succeeded" | "Failed"))
        .flat_map(|p| pod_volumes(sim, p))
        .collect();
    sim.store
        .all(&attachments_key())
        .iter()
        .filter(|va| va.value().pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
        .filter_map(|va| {
            va.value().pointer("/spec/source/persistentVolumeName").and_then(Value::as_str).map(str::to_string)
        })
        .filter(|pv| !used.contains(pv))
        .map(|pv| unique_name(&pv))
        .collect()
}

/// The attach/detach controller: attaches what pods on a node use (unless still attached
/// elsewhere), detaches what no pod on a node uses any more once `detach_at` says the driver
/// is done, and mirrors the attachments into each node's `status.volumesAttached`. A node named
/// by the `volumesStuckAttached` fault never gets its volumes detached.
///
/// Only pods with claims are read. `shown` remembers the nodes whose status lists volumes, so
/// that a pass writes just those and the ones gaining some (every node on a full pass, or when
/// not known yet); with no attachment and no claim anywhere, there is nothing to do.
pub fn reconcile(
    sim: &Sim,
    detach_at: &mut HashMap<String, Instant>,
    shown: &mut Option<BTreeSet<String>>,
    d: &super::delta::Delta,
) {
    let now = Instant::now();
    let claimants = sim.store.pods_with_claims();
    let idle = claimants.is_empty() && sim.store.count(&attachments_key()) == 0;
    if idle && !d.full && shown.as_ref().is_some_and(BTreeSet::is_empty) {
        detach_at.clear();
        return;
    }
    // Volumes each node's pods use (terminating pods still hold theirs until they are gone).
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for pod in claimants {
        let node = &*pod.meta.node_name;
        if node.is_empty() || matches!(&*pod.meta.phase, "Succeeded" | "Failed") {
            continue;
        }
        for pv in pod_volumes(sim, &pod) {
            wanted.entry(node.to_string()).or_default().insert(pv);
        }
    }
    let existing = sim.store.all(&attachments_key());
    let attached_to = |pv: &str| -> Vec<String> {
        existing
            .iter()
            .filter(|va| va.value().pointer("/spec/source/persistentVolumeName").and_then(Value::as_str) == Some(pv))
            .map(|va| va.value().pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default().to_string())
            .collect()
    };
    let stuck = sim.faults().volumes_stuck_attached.clone();
    let mut live = std::collections::HashSet::new();
    for va in &existing {
        let value = va.value();
        let node = value.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default();
        let pv = value.pointer("/spec/source/persistentVolumeName").and_then(Value::as_str).unwrap_or_default();
        if wanted.get(node).is_some_and(|s| s.contains(pv)) || stuck.iter().any(|n| n == node) {
            detach_at.remove(va.name());
            continue;
        }
        live.insert(va.name().to_string());
        let at = *detach_at
            .entry(va.name().to_string())
            .or_insert_with(|| now + sim.scaled(sim.timings.volume_detach_seconds));
        if at <= now {
            detach_at.remove(va.name());
            let _ = sim.store.delete(&attachments_key(), "", va.name(), false);
        }
    }
    detach_at.retain(|name, _| live.contains(name));
    for (node, pvs) in &wanted {
        for pv in pvs {
            let elsewhere = attached_to(pv).iter().any(|n| n != node);
            let name = attachment_name(pv, node);
            if elsewhere || sim.store.get(&attachments_key(), "", &name).is_some() {
                continue;
            }
            let va = json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                "metadata": {"name": name},
                "spec": {"attacher": DRIVER, "nodeName": node, "source": {"persistentVolumeName": pv}},
                "status": {"attached": true, "attachmentMetadata": {"devicePath": "/dev/xvdba"}},
            });
            let _ = sim.store.create(&attachments_key(), va, false);
        }
    }
    // Each node's status: volumesAttached follows its attachments (the attach/detach
    // controller), volumesInUse the volumes its kubelet still has mounted: a volume whose pods
    // left stays listed for the first half of its detach time (the kubelet's unmount and its next
    // status report; the attach/detach controller detaches only after it), so a client that
    // trusts volumesInUse to mean "still used by a pod" is caught out as on a real node.
    let half = sim.scaled(sim.timings.volume_detach_seconds / 2.0);
    let mut attached: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut in_use: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for va in sim.store.all(&attachments_key()) {
        let value = va.value();
        let node = value.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default().to_string();
        let pv = value.pointer("/spec/source/persistentVolumeName").and_then(Value::as_str).unwrap_or_default();
        let unmounting = detach_at.get(va.name()).is_some_and(|at| at.saturating_duration_since(now) > half);
        if wanted.get(&node).is_some_and(|s| s.contains(pv)) || unmounting {
            in_use.entry(node.clone()).or_default().push(json!(unique_name(pv)));
        }
        attached.entry(node).or_default().push(json!({"name": unique_name(pv), "devicePath": ""}));
    }
    let nodes: Vec<Arc<Stored>> = match shown.as_ref().filter(|_| !d.full) {
        Some(known) => {
            let names: BTreeSet<&String> = known.iter().chain(attached.keys()).chain(in_use.keys()).collect();
            names.into_iter().filter_map(|n| sim.store.get(&nodes_key(), "", n)).collect()
        }
        None => sim.store.all(&nodes_key()),
    };
    let mut now_shown = BTreeSet::new();
    for node in nodes {
        let fields = [("volumesAttached", attached.remove(node.name())), ("volumesInUse", in_use.remove(node.name()))];
        if fields.iter().any(|(_, want)| want.is_some()) {
            now_shown.insert(node.name().to_string());
        }
        let value = node.value();
        let changed = fields
            .iter()
            .any(|(field, want)| value.pointer(&format!("/status/{field}")).and_then(Value::as_array) != want.as_ref());
        drop(value);
        if changed {
            let _ = sim.store.mutate(&nodes_key(), "", node.name(), None, false, |n| {
                for (field, want) in fields {
                    match want {
                        Some(list) => n["status"][field] = Value::Array(list),
                        None => {
                            if let Some(s) = n.get_mut("status").and_then(Value::as_object_mut) {
                                s.remove(field);
                            }
                        }
                    }
                }
                Ok(())
            });
        }
    }
    *shown = Some(now_shown);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_are_stable_and_differ_by_node() {
        let a = attachment_name("pvc-1", "node-a");
        assert_eq!(a, attachment_name("pvc-1", "node-a"));
        assert_ne!(a, attachment_name("pvc-1", "node-b"));
        assert!(a.starts_with("csi-") && a.len() == 36, "{a}");
    }

    #[test]
    fn claims_are_named_as_the_statefulset_controller_names_them() {
        assert_eq!(claim_name(&json!({"metadata": {"name": "data"}}), "db-0"), "data-db-0");
    }
}
