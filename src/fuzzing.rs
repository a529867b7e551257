//! Harnesses for the fuzz targets in `fuzz/`, one per input the tool reads from outside: each
//! takes arbitrary bytes, must not panic, and asserts what must hold of what it reads (round
//! trips, agreement between a fast path and the full parser, bounded output). A failed
//! assertion is a panic, which is what the fuzzer reports.
//!
//! They live here, not in `fuzz/`, so that `tests/fuzz_corpus.rs` replays every saved corpus
//! and regression input through the same code on stable Rust, under plain `cargo test`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use serde_json::{Value, json};

/// A harness: panics when what it asserts of an input does not hold.
pub type Harness = fn(&[u8]);

/// The targets, by the name of their fuzz target (and of their corpus directory).
pub const TARGETS: [(&str, Harness); 7] = [
    ("version", version),
    ("manifests", manifests),
    ("helm_release", helm_release),
    ("selectors", selectors),
    ("scenario", scenario),
    ("plan_document", plan_document),
    ("journal", journal),
];

/// Whether two JSON values are the same, numbers compared as `f64` up to a rounding error (the
/// JSON reader rounds some decimal numbers one unit off, so a float may move by that much when
/// written and read again; nothing else may change).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Version strings: parsing never panics, a parsed version is shown as it was written (a `V`
/// prefix shown as `v`) and reads back equal, and versions order consistently with equality.
/// The input is up to two versions, one a line.
pub fn version(data: &[u8]) {
    use crate::version::{MAX_VERSION_LEN, Minor, Version};
    use std::cmp::Ordering;
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parsed = Vec::new();
    for s in text.splitn(2, '\n') {
        match Version::parse(s) {
            Ok(v) => {
                let shown = v.to_string();
                let trimmed = s.trim();
                let expected = match trimmed.strip_prefix('V') {
                    Some(rest) => format!("v{rest}"),
                    None => trimmed.to_string(),
                };
                assert_eq!(shown, expected, "{s:?} is shown as written");
                assert!(shown.len() <= MAX_VERSION_LEN);
                let again = Version::parse(&shown).expect("a shown version reads back");
                assert_eq!(again, v);
                assert_eq!(again.cmp(&v), Ordering::Equal);
                let json = serde_json::to_string(&v).expect("serializes");
                assert_eq!(serde_json::from_str::<Version>(&json).expect("deserializes"), v);
                let core = Version::parse(&v.core()).expect("the core version reads back");
                assert_eq!((core.major, core.minor, core.patch), (v.major, v.minor, Some(v.patch.unwrap_or(0))));
                assert_eq!(v.without_suffix().minor_version(), v.minor_version());
                let minor: Minor = v.minor_version().to_string().parse().expect("a minor reads back");
                assert_eq!(minor, v.minor_version());
                match s.parse::<Minor>() {
                    Ok(m) => {
                        assert!(v.patch.is_none() && v.suffix.is_empty(), "{s:?} is a minor only without a patch");
                        assert_eq!(m, v.minor_version());
                    }
                    Err(_) => assert!(v.patch.is_some() || !v.suffix.is_empty(), "{s:?} is a minor"),
                }
                parsed.push(v);
            }
            Err(e) => {
                assert!(s.parse::<Minor>().is_err(), "{s:?} is a minor but not a version");
                // The message names the value, cut at the length bound.
                assert!(e.to_string().len() <= MAX_VERSION_LEN + 200, "{e}");
            }
        }
    }
    if let [a, b] = &parsed[..] {
        assert_eq!(a.cmp(b), b.cmp(a).reverse());
        assert_eq!(a == b, a.cmp(b) == Ordering::Equal);
        assert_eq!(a.partial_cmp(b), Some(a.cmp(b)));
    }
}

/// The manifest scanner, differentially: every document the quick line reader identifies must
/// be one the YAML parser accepts, with the same apiVersion, kind, name and namespace (or the
/// quick reader must decline it); and the whole scan stays within bounds and never panics.
pub fn manifests(data: &[u8]) {
    use crate::inventory::Inventory;
    use crate::inventory::manifests::{documents, parse_text, parsed_identity, quick_identity};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Ok(docs) = documents(text, 10_000) else { return };
    for (i, doc) in docs.iter().enumerate() {
        assert_eq!(doc.number, i + 1);
        if let Some((api_version, kind, name, namespace)) = quick_identity(doc.text) {
            let full = parsed_identity(doc.text)
                .unwrap_or_else(|e| panic!("the quick reader read a document the parser rejects ({e}):\n{}", doc.text));
            let quick = (Some(api_version), Some(kind), name, namespace);
            assert_eq!(quick, full, "the quick reader and the parser disagree on:\n{}", doc.text);
        }
    }
    let mut inv = Inventory::default();
    let objects = parse_text("fuzz.yaml", text, &mut inv).expect("within the document bound");
    assert_eq!(objects, inv.objects.len());
    // At most one object or warning a byte (and one per document for those on a marker line),
    // unless aliases repeat them: then the parser's bound on replayed events holds.
    let bound = if text.contains('*') { 1_000_000 * docs.len() } else { text.len() + docs.len() };
    assert!(inv.objects.len() + inv.warnings.len() <= bound);
    for w in &inv.warnings {
        assert!(w.starts_with("fuzz.yaml: "), "{w}");
    }
}

/// Helm release records: the stored payload (base64, then gzip or not) decodes within its
/// bounds, Helm's own encoding round-trips, and the in-place reader of the release JSON agrees
/// with a full JSON parse on every field the tool reads; the rewrite keeps it JSON.
pub fn helm_release(data: &[u8]) {
    use crate::helm::storage::{MAX_RELEASE_JSON_BYTES, decode_payload, encode_payload};
    let b64 = base64::engine::general_purpose::STANDARD;
    // The input as the Secret's value, as the input inside the base64, and as the JSON.
    if let Ok(json) = decode_payload("fuzz", data) {
        assert!(json.len() as u64 <= MAX_RELEASE_JSON_BYTES);
        release_json(json);
    }
    match decode_payload("fuzz", b64.encode(data).as_bytes()) {
        Ok(json) => {
            if !data.starts_with(&[0x1f, 0x8b, 0x08]) {
                assert_eq!(json, data, "a payload that is not gzip is the JSON itself");
            }
            release_json(json);
        }
        Err(e) => assert!(data.starts_with(&[0x1f, 0x8b, 0x08]), "only gzip can fail: {e}"),
    }
    assert_eq!(decode_payload("fuzz", &encode_payload(data)).expect("Helm's encoding decodes"), data);
}

fn release_json(json: Vec<u8>) {
    use crate::helm::ReleaseDoc;
    use crate::helm::storage::{next_revision, superseded};
    let Ok(doc) = ReleaseDoc::parse("fuzz", json) else { return };
    let full: Value = serde_json::from_str(doc.text()).expect("a parsed release is JSON");
    let at = |path: &[&str]| path.iter().try_fold(&full, |v, k| v.as_object()?.get(*k)).cloned();
    for path in [&["name"][..], &["namespace"], &["version"], &["manifest"], &["info", "status"], &["hooks"]] {
        assert_eq!(doc.get(path), at(path), "{path:?} of {}", doc.text());
    }
    assert_eq!(doc.name(), at(&["name"]).and_then(|v| v.as_str().map(str::to_string)));
    let _ = (doc.description(), doc.chart_name(), doc.hook_manifests(), doc.status());
    let labels = BTreeMap::from([("name".to_string(), "web".to_string()), ("modifiedAt".to_string(), "1".into())]);
    let (new_labels, next) =
        next_revision(&labels, &doc, "kind: x\n<&>\u{2028}", 7, "rewritten", "2026-01-02T03:04:05Z", 1);
    let reread = ReleaseDoc::parse("fuzz", next.text().as_bytes().to_vec()).expect("the next revision is JSON");
    assert_eq!(reread.manifest().as_deref(), Some("kind: x\n<&>\u{2028}"), "{}", next.text());
    assert_eq!(reread.version(), Some(7));
    assert_eq!(new_labels.get("version").map(String::as_str), Some("7"));
    assert!(!new_labels.contains_key("modifiedAt"));
    if at(&["info"]).is_some_and(|i| i.is_object()) {
        assert_eq!(reread.status().as_deref(), Some("deployed"), "{}", next.text());
        assert_eq!(reread.description().as_deref(), Some("rewritten"));
    }
    let (_, old) = superseded(&labels, &doc);
    let old = ReleaseDoc::parse("fuzz", old.text().as_bytes().to_vec()).expect("the superseded revision is JSON");
    if at(&["info"]).is_some_and(|i| i.is_object()) {
        assert_eq!(old.status().as_deref(), Some("superseded"));
    }
}

/// Label and field selectors: parsing never panics; a label selector matches alike whichever
/// representation of the labels it is given, and as the conjunction of its requirements; a field
/// selector matches a stored object from its extracted fields as it does from its JSON. Lines:
/// label selector, field selector, then the object's name, namespace, node, phase, and labels
/// (`key=value`, one a line).
pub fn selectors(data: &[u8]) {
    use crate::labels::LabelSelector;
    use crate::sim::selectors::FieldSelector;
    use crate::sim::store::{StorageKey, Stored};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let (label, field) = (lines.next().unwrap_or_default(), lines.next().unwrap_or_default());
    let fields: Vec<&str> = lines.by_ref().take(4).collect();
    let labels: BTreeMap<String, String> =
        lines.map(|l| l.split_once('=').unwrap_or((l, ""))).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": labels}});
    for (value, (parent, key)) in
        fields.iter().zip([("metadata", "name"), ("metadata", "namespace"), ("spec", "nodeName"), ("status", "phase")])
    {
        obj[parent][key] = json!(value);
    }
    let pairs: Vec<(Box<str>, Box<str>)> = labels.iter().map(|(k, v)| (k.as_str().into(), v.as_str().into())).collect();

    match LabelSelector::parse(label) {
        Ok(sel) => {
            let by_map = sel.matches_map(&labels);
            assert_eq!(by_map, sel.matches_labels(&pairs), "{label:?} {labels:?}");
            assert_eq!(by_map, sel.matches_value(&obj), "{label:?} {labels:?}");
            // Parsing is deterministic, and an empty selector matches everything.
            assert_eq!(LabelSelector::parse(label).map(|again| again.matches_map(&labels)), Ok(by_map));
            if sel.is_empty() {
                assert!(by_map, "{label:?}");
            }
        }
        Err(e) => {
            // The apiserver's messages quote the selector (escaped, so up to 6 bytes a
            // character) beside a fixed explanation: bounded by it.
            assert!(e.len() <= 8 * label.len() + 1024, "{e}");
        }
    }
    if let Ok(sel) = FieldSelector::parse(field) {
        let stored = Stored::new(&StorageKey::core("pods"), obj.clone());
        assert_eq!(sel.matches_stored(&stored), sel.matches(&obj), "{field:?} on {obj}");
        if let Some(node) = sel.node_name()
            && sel.matches(&obj)
        {
            assert_eq!(obj.pointer("/spec/nodeName").and_then(Value::as_str), Some(node));
        }
    }
}

fn catalog() -> Arc<crate::catalog::Catalog> {
    static CATALOG: OnceLock<Arc<crate::catalog::Catalog>> = OnceLock::new();
    CATALOG.get_or_init(|| Arc::new(crate::catalog::Catalog::embedded().expect("the embedded catalog"))).clone()
}

/// Simulator scenarios: loading YAML never panics; a loaded scenario written out as JSON loads
/// again to the same scenario; a small one builds (or fails with an error) without panicking.
pub fn scenario(data: &[u8]) {
    use crate::sim::scenario::{Scenario, WorkloadKind, build};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let s = match Scenario::parse("fuzz.yaml", text) {
        Ok(s) => s,
        Err(e) => {
            assert_eq!(e.file, "fuzz.yaml");
            return;
        }
    };
    let written = serde_json::to_value(&s).expect("a scenario serializes");
    let again = Scenario::parse("again.json", &written.to_string())
        .unwrap_or_else(|e| panic!("a loaded scenario written out does not load again: {e}\n{written}"));
    let rewritten = serde_json::to_value(&again).expect("a scenario serializes");
    assert!(same_json(&written, &rewritten), "{written}\n{rewritten}");
    let nodes: u64 = s.node_pools.iter().map(|p| u64::from(p.count)).sum();
    let pods: u64 = s
        .workloads
        .iter()
        .map(|w| if w.kind == WorkloadKind::DaemonSet { nodes } else { u64::from(w.replicas) })
        .chain(s.addons.iter().map(|a| u64::from(a.replicas.unwrap_or(2)).max(nodes)))
        .sum();
    if nodes <= 16 && pods <= 64 && s.helm_releases.len() <= 8 {
        let _ = build(s, catalog(), 1.0);
    }
}

/// Plan documents (`apply --plan`): reading never panics, and a plan read, written out as JSON
/// or YAML and read again is the same plan.
pub fn plan_document(data: &[u8]) {
    use crate::plan::{Plan, diff};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(plan) = Plan::from_document(text) else { return };
    let value = serde_json::to_value(&plan).expect("a plan serializes");
    for (how, written) in [
        ("json", serde_json::to_string(&plan).expect("a plan serializes")),
        ("yaml", serde_saphyr::to_string(&plan).expect("a plan serializes as YAML")),
    ] {
        let again = Plan::from_document(&written)
            .unwrap_or_else(|e| panic!("a plan written as {how} does not read back: {e}\n{written}"));
        let again = serde_json::to_value(&again).expect("a plan serializes");
        assert!(same_json(&value, &again), "{how}: {value}\n{again}");
    }
    assert!(diff(&plan, &plan).is_empty());
    assert!(plan.unresolved_blockers().len() <= plan.findings.len());
}

/// Apply journals: reading never panics, and a journal read, written out as the tool writes it
/// and read again is the same journal.
pub fn journal(data: &[u8]) {
    use crate::exec::journal::Journal;
    let Ok(j) = Journal::from_json(data) else { return };
    let written = serde_json::to_vec_pretty(&j).expect("a journal serializes");
    let again = Journal::from_json(&written).unwrap_or_else(|e| {
        panic!("a journal written out does not read back: {e}\n{}", String::from_utf8_lossy(&written))
    });
    let (a, b) = (serde_json::to_value(&j).expect("serializes"), serde_json::to_value(&again).expect("serializes"));
    assert!(same_json(&a, &b), "{a}\n{b}");
    if let Some(step) = j.next_step() {
        assert!(step < j.steps.len());
    }
    assert!(j.left_cordoned().len() + j.quarantined().len() <= 2 * j.nodes.len());
}
