//! The simulator's stand-in for the person at the keyboard: what the `sim` upgrader does for the
//! plan's operator steps, which on a real cluster someone does with their manifests and Helm.
//! Migrating an API rewrites each object's last-applied configuration to the replacement (as
//! re-applying the fixed manifest would), or deletes the objects when the API has no
//! replacement; rewriting a Helm release maps the stored manifest's documents to the
//! replacement APIs and drops those with none, as `helm mapkubeapis` does. The run then checks
//! the result through the API like on any cluster.

use std::io::{Read, Write};

use base64::Engine;
use serde_json::{Value, json};

use super::Sim;
use super::store::StorageKey;
use crate::k8s::annotations::LAST_APPLIED;
use crate::plan::StepAction;

/// Largest Helm payload handled (compressed and not).
const MAX_HELM: u64 = 8 * 1024 * 1024;

/// Performs an operator step; returns how many objects it changed.
pub fn perform(sim: &Sim, action: &StepAction) -> Result<usize, String> {
    match action {
        StepAction::MigrateApi { api_version, kind, replacement, .. } => {
            migrate(sim, api_version, kind, replacement.as_deref())
        }
        StepAction::HelmRelease { namespace, release, .. } => rewrite_release(sim, namespace, release),
        other => Err(format!("not an operator step the simulator performs: {other:?}")),
    }
}

/// The group-version that replaces `api_version` `kind`, per the catalog (`None`: no replacement).
fn replacement_of(sim: &Sim, api_version: &str, kind: &str) -> Option<String> {
    sim.catalog
        .apis
        .apis
        .iter()
        .find(|a| a.api_version() == api_version && a.kind == kind)
        .and_then(|a| a.replacement.as_ref())
        .map(crate::catalog::Gvk::api_version)
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

fn rewrite_release(sim: &Sim, namespace: &str, release: &str) -> Result<usize, String> {
    let key = StorageKey::core("secrets");
    let deployed = sim
        .store
        .in_namespace(&key, namespace)
        .into_iter()
        .filter(|s| s.meta.label("owner") == Some("helm") && s.meta.label("name") == Some(release))
        .filter(|s| s.meta.label("status") == Some("deployed"))
        .max_by_key(|s| s.meta.label("version").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
        .ok_or_else(|| format!("no deployed Helm release {namespace}/{release}"))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let outer = deployed.value().pointer("/data/release").and_then(Value::as_str).unwrap_or_default().to_string();
    let inner = b64.decode(outer).map_err(|e| e.to_string())?;
    let gz = b64.decode(inner).map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).take(MAX_HELM).read_to_end(&mut text).map_err(|e| e.to_string())?;
    let mut doc: Value = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    let manifest = doc.get("manifest").and_then(Value::as_str).unwrap_or_default().to_string();
    let (rewritten, changed) = map_manifest(&manifest, |api_version, kind| {
        let removed = sim.catalog.apis.apis.iter().any(|a| a.api_version() == api_version && a.kind == kind);
        if removed { Some(replacement_of(sim, api_version, kind)) } else { None }
    });
    if changed == 0 {
        return Ok(0);
    }
    doc["manifest"] = json!(rewritten);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(doc.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let gz = enc.finish().map_err(|e| e.to_string())?;
    let value = b64.encode(b64.encode(gz).as_bytes());
    sim.store
        .mutate(&key, namespace, deployed.name(), None, false, |v| {
            v["data"]["release"] = json!(value);
            Ok(())
        })
        .map_err(|e| e.message)?;
    Ok(changed)
}

/// Rewrites each document's `apiVersion` where `mapping(apiVersion, kind)` says so:
/// `Some(Some(new))` moves it, `Some(None)` drops the document, `None` leaves it.
fn map_manifest(manifest: &str, mapping: impl Fn(&str, &str) -> Option<Option<String>>) -> (String, usize) {
    let mut out = Vec::new();
    let mut changed = 0;
    for doc in manifest.split("\n---") {
        let field = |name: &str| {
            doc.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().trim_matches('"').to_string()))
        };
        let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
            out.push(doc.to_string());
            continue;
        };
        match mapping(&api_version, &kind) {
            None => out.push(doc.to_string()),
            Some(None) => changed += 1,
            Some(Some(new)) => {
                changed += 1;
                let moved: Vec<String> = doc
                    .lines()
                    .map(|l| if l.starts_with("apiVersion:") { format!("apiVersion: {new}") } else { l.to_string() })
                    .collect();
                out.push(moved.join("\n"));
            }
        }
    }
    (out.join("\n---"), changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_maps_removed_apis_and_drops_what_has_no_replacement() {
        let m = "---\napiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: a\n---\napiVersion: policy/v1beta1\nkind: PodSecurityPolicy\nmetadata:\n  name: p\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c";
        let (out, changed) = map_manifest(m, |av, kind| match (av, kind) {
            ("batch/v1beta1", "CronJob") => Some(Some("batch/v1".into())),
            ("policy/v1beta1", "PodSecurityPolicy") => Some(None),
            _ => None,
        });
        assert_eq!(changed, 2);
        assert!(out.contains("apiVersion: batch/v1\nkind: CronJob"), "{out}");
        assert!(!out.contains("PodSecurityPolicy") && out.contains("kind: ConfigMap"), "{out}");
    }
}
