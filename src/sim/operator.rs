//! The simulator's stand-in for the person at the keyboard: what the `sim` upgrader does for the
//! plan's API migrations, which on a real cluster someone does with their manifests. Migrating an
//! API rewrites each object's last-applied configuration to the replacement (as re-applying the
//! fixed manifest would), or deletes the objects when the API has no replacement. The run then
//! checks the result through the API like on any cluster. (Helm releases are not the operator's
//! here: apply rewrites them itself, through the API, on any cluster.)

use serde_json::{Value, json};

use super::Sim;
use super::store::StorageKey;
use crate::k8s::annotations::LAST_APPLIED;
use crate::plan::StepAction;

/// Performs an operator step; returns how many objects it changed.
pub fn perform(sim: &Sim, action: &StepAction) -> Result<usize, String> {
    match action {
        StepAction::MigrateApi { api_version, kind, replacement, .. } => {
            migrate(sim, api_version, kind, replacement.as_deref())
        }
        other => Err(format!("not an operator step the simulator performs: {other:?}")),
    }
}

fn migrate(sim: &Sim, api_version: &str, kind: &str, replacement: Option<&str>) -> Result<usize, String> {
    let registry = sim.registry();
    let Some(def) = registry.find_kind(api_version, kind) else {
        return Err(format!("{api_version} {kind} is not served"));
    };
    let key: StorageKey = def.storage.clone();
    let mut changed = 0;
    for o in sim.store.all(&key) {
        let (ns, name) = (o.namespace().to_string(), o.name().to_string());
        let Some(r) = replacement else {
            sim.store.delete(&key, &ns, &name, false).map_err(|e| e.message)?;
            changed += 1;
            continue;
        };
        let applied = o
            .value()
            .pointer(&format!("/metadata/annotations/{}", LAST_APPLIED.replace('/', "~1")))
            .and_then(Value::as_str)
            .and_then(|t| serde_json::from_str::<Value>(t).ok());
        let Some(mut applied) = applied.filter(|a| a.get("apiVersion").and_then(Value::as_str) == Some(api_version))
        else {
            continue;
        };
        applied["apiVersion"] = json!(r);
        let text = applied.to_string();
        sim.store
            .mutate(&key, &ns, &name, None, false, |v| {
                if let Some(a) = v.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
                    a.insert(LAST_APPLIED.into(), json!(text));
                }
                Ok(())
            })
            .map_err(|e| e.message)?;
        changed += 1;
    }
    Ok(changed)
}
