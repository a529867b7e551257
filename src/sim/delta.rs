//! What changed in the store since a controller last looked: the working set of one incremental
//! controller pass.
//!
//! Real controllers react to informer events rather than re-reading the cluster; ours do the same
//! with the store's change log. Each controller keeps its own cursor (a resourceVersion), so it
//! sees what earlier controllers wrote in the same pass. A cursor older than the log (the first
//! pass, a compaction, a bulk load) or a change of faults makes the pass a full one: every object
//! is looked at, as before there was a log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::store::{Change, EventType, StorageKey, Stored};

/// A namespaced object's key.
pub type Key = (String, String);

pub use super::store::Labels;

/// The changes since a cursor, sorted for the controllers.
#[derive(Default)]
pub struct Delta {
    /// Look at everything.
    pub full: bool,
    /// Changed objects (deleted ones included) by resource, each with whether anything but its
    /// status changed (false: only controllers' status writes).
    changed: HashMap<StorageKey, BTreeMap<Key, bool>>,
    /// The last state of deleted objects.
    pub deleted: Vec<Arc<Stored>>,
    /// Nodes named by a changed pod (`spec.nodeName`).
    pub pod_nodes: BTreeSet<String>,
    /// (kind, namespace, name) of the controllers of changed pods.
    pub pod_owners: BTreeSet<(String, String, String)>,
    /// Namespace and labels (now and, when they changed, before) of changed pods.
    pub pod_labels: Vec<(Box<str>, Labels)>,
    /// A pod was deleted or finished: room and budgets were freed.
    pub pods_left: bool,
    /// Nodes named by a changed VolumeAttachment.
    pub attachment_nodes: BTreeSet<String>,
}

impl Delta {
    /// A delta that looks at everything.
    pub fn full() -> Delta {
        Delta { full: true, ..Delta::default() }
    }

    /// The changes after `*cursor`, moving the cursor past them; a full delta when the log no
    /// longer reaches back that far.
    pub fn since(store: &super::store::Store, cursor: &mut u64, force_full: bool) -> Delta {
        let from = *cursor;
        let latest = store.current_rv();
        let changes = match store.changes_since(from) {
            Ok(changes) if from > 0 && !force_full => changes,
            _ => {
                *cursor = latest;
                return Delta::full();
            }
        };
        if let Some(last) = changes.last() {
            *cursor = last.rv;
        }
        let mut d = Delta::default();
        for c in &changes {
            d.add(c);
        }
        d
    }

    fn add(&mut self, c: &Change) {
        let o = &c.object;
        let key = (o.namespace().to_string(), o.name().to_string());
        let beyond_status = !c.status_only;
        match self.changed.get_mut(&c.key) {
            Some(keys) => {
                *keys.entry(key).or_default() |= beyond_status;
            }
            None => {
                self.changed.insert(c.key.clone(), BTreeMap::from([(key, beyond_status)]));
            }
        }
        if c.kind == EventType::Deleted {
            self.deleted.push(o.clone());
        }
        let resource = (&*c.key.group, &*c.key.resource);
        match resource {
            ("", "pods") => {
                if !o.meta.node_name.is_empty() {
                    self.pod_nodes.insert(o.meta.node_name.to_string());
                }
                if let Some((kind, name, _)) = o.owner() {
                    self.pod_owners.insert((kind.to_string(), o.namespace().to_string(), name.to_string()));
                }
                self.pod_labels.push((o.meta.namespace.clone(), o.meta.labels.clone()));
                if let Some(before) = &c.previous_labels {
                    self.pod_labels.push((o.meta.namespace.clone(), before.clone()));
                }
                if c.kind == EventType::Deleted
                    || o.meta.terminating
                    || matches!(&*o.meta.phase, "Succeeded" | "Failed")
                {
                    self.pods_left = true;
                }
            }
            ("storage.k8s.io", "volumeattachments") => {
                if let Some(node) = o.value().pointer("/spec/nodeName").and_then(serde_json::Value::as_str) {
                    self.attachment_nodes.insert(node.to_string());
                }
            }
            _ => {}
        }
    }

    /// Keys of the changed objects of a resource.
    pub fn changed<'a>(&'a self, key: &StorageKey) -> impl Iterator<Item = &'a Key> + use<'a> {
        self.changed.get(key).into_iter().flatten().map(|(k, _)| k)
    }

    /// Keys of the objects of a resource of which more than the status changed: what a
    /// controller that acts on spec, labels and ownership (and writes the status itself) reacts
    /// to. Status written through the API counts as more (it is not a controller's own).
    pub fn changed_beyond_status<'a>(&'a self, key: &StorageKey) -> impl Iterator<Item = &'a Key> + use<'a> {
        self.changed.get(key).into_iter().flatten().filter(|(_, beyond)| **beyond).map(|(k, _)| k)
    }

    /// Names of changed nodes.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.changed(&StorageKey::core("nodes")).map(|(_, n)| n.as_str())
    }

    /// Names of the controllers of changed pods that are of `kind`, in `namespace/name` keys.
    pub fn pod_owners_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = Key> + 'a {
        self.pod_owners.iter().filter(move |(k, _, _)| k == kind).map(|(_, ns, n)| (ns.clone(), n.clone()))
    }
}
