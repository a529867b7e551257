//! The manifests collector: Kubernetes objects from files, directories or stdin.
//!
//! Reads `.yaml`, `.yml` and `.json` files recursively (other files are skipped), splits
//! multi-document YAML, unwraps `kind: List`, and records each object with its file and document
//! number. A document that does not parse (a Helm template, broken YAML) becomes a warning naming
//! the file and document, and the scan goes on. Every input is bounded: file size, documents per
//! file, files per scan and directory depth.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::{Evidence, Inventory, ObservedObject};

/// Largest manifest file read.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// Most files one scan reads.
pub const MAX_FILES: usize = 200_000;
/// Deepest directory nesting followed.
pub const MAX_DEPTH: usize = 32;
/// Most documents read from one file.
pub const MAX_DOCUMENTS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read manifests at {path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("more than {MAX_FILES} manifest files under {path}; point --manifests at a smaller tree")]
    TooMany { path: String },
}

/// Adds every object found under `path` (`-` for stdin) to `inv`.
pub fn scan(path: &Path, inv: &mut Inventory) -> Result<usize, ScanError> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_FILE_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| ScanError::Unreadable { path: "-".into(), message: e.to_string() })?;
        return Ok(parse_text("<stdin>", &text, inv));
    }
    let meta = std::fs::metadata(path)
        .map_err(|e| ScanError::Unreadable { path: path.display().to_string(), message: e.to_string() })?;
    if meta.is_file() {
        return read_file(path, inv);
    }
    let mut files = Vec::new();
    walk(path, 0, &mut files, inv)?;
    if files.len() > MAX_FILES {
        return Err(ScanError::TooMany { path: path.display().to_string() });
    }
    files.sort();
    scan_files(&files, inv)
}

/// Reads and parses files on every core, then adds their objects and warnings in file order, so
/// the result is the same as a sequential scan.
fn scan_files(files: &[PathBuf], inv: &mut Inventory) -> Result<usize, ScanError> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<Inventory, ScanError>>>> = files.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    let mut part = Inventory::default();
                    let result = read_file(file, &mut part).map(|_| part);
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                }
            });
        }
    });
    let mut found = 0;
    for slot in results {
        let Some(result) = slot.into_inner().unwrap_or_else(|e| e.into_inner()) else { continue };
        let part = result?;
        found += part.objects.len();
        inv.objects.extend(part.objects);
        inv.warnings.extend(part.warnings);
    }
    Ok(found)
}

fn is_manifest(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>, inv: &mut Inventory) -> Result<(), ScanError> {
    if depth > MAX_DEPTH {
        inv.warnings.push(format!("{}: deeper than {MAX_DEPTH} directories, not scanned", dir.display()));
        return Ok(());
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ScanError::Unreadable { path: dir.display().to_string(), message: e.to_string() })?;
    for entry in entries.flatten() {
        let p = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            walk(&p, depth + 1, out, inv)?;
        } else if ft.is_file() && is_manifest(&p) {
            out.push(p);
            if out.len() > MAX_FILES {
                return Err(ScanError::TooMany { path: dir.display().to_string() });
            }
        }
    }
    Ok(())
}

fn read_file(path: &Path, inv: &mut Inventory) -> Result<usize, ScanError> {
    let shown = path.display().to_string();
    let meta =
        std::fs::metadata(path).map_err(|e| ScanError::Unreadable { path: shown.clone(), message: e.to_string() })?;
    if meta.len() > MAX_FILE_BYTES {
        inv.warnings.push(format!("{shown}: {} bytes is more than the {MAX_FILE_BYTES} read, skipped", meta.len()));
        return Ok(0);
    }
    let bytes =
        std::fs::read(path).map_err(|e| ScanError::Unreadable { path: shown.clone(), message: e.to_string() })?;
    let Ok(text) = String::from_utf8(bytes) else {
        inv.warnings.push(format!("{shown}: not UTF-8 text, skipped"));
        return Ok(0);
    };
    Ok(parse_text(&shown, &text, inv))
}

/// Splits YAML text into documents at `---` / `...` lines (JSON files are one document), as
/// slices of the text (no copies: a large tree is mostly bytes to skip). Line starts are found
/// with a byte search rather than line iteration, which is most of a large scan's work.
fn documents(text: &str) -> Vec<&str> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return vec![text];
    }
    let bytes = text.as_bytes();
    let mut docs = Vec::new();
    let mut start = 0;
    let mut line = 0;
    while line < bytes.len() {
        let end = text[line..].find('\n').map_or(bytes.len(), |i| line + i + 1);
        let l = &bytes[line..end];
        if l.len() >= 3 && (l.starts_with(b"---") || l.starts_with(b"...")) {
            let rest = &l[3..];
            let blank = rest.iter().all(u8::is_ascii_whitespace);
            let marker = blank || (l[0] == b'-' && matches!(rest[0], b' ' | b'\t'));
            if marker {
                docs.push(&text[start..line]);
                start = end;
            }
        }
        line = end;
    }
    docs.push(&text[start..]);
    docs
}

pub(crate) fn parse_text(file: &str, text: &str, inv: &mut Inventory) -> usize {
    let mut found = 0;
    let docs = documents(text);
    if docs.len() > MAX_DOCUMENTS {
        inv.warnings.push(format!("{file}: more than {MAX_DOCUMENTS} documents, only the first are read"));
    }
    for (i, doc) in docs.iter().take(MAX_DOCUMENTS).enumerate() {
        let document = i + 1;
        if doc.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            continue;
        }
        if let Some((api_version, kind, name, namespace)) = quick_identity(doc) {
            inv.objects.push(ObservedObject {
                api_version,
                kind,
                name: name.unwrap_or_else(|| "<unnamed>".into()),
                namespace,
                evidence: Evidence::Manifest { file: file.to_string(), document },
            });
            found += 1;
            continue;
        }
        let options = serde_saphyr::options! { with_snippet: false };
        // The rest are parsed: identity fields only (the parser still checks the whole
        // document, but builds no values). Lists are read whole.
        let head: Head = match serde_saphyr::from_str_with_options(doc, options) {
            Ok(h) => h,
            Err(e) => {
                let why = e.to_string();
                inv.warnings.push(format!(
                    "{file}: document {document} is not valid YAML, skipped ({})",
                    why.lines().next().unwrap_or_default()
                ));
                continue;
            }
        };
        if head.kind.as_deref().is_some_and(|k| k.ends_with("List")) && head.has_items {
            let options = serde_saphyr::options! { with_snippet: false };
            if let Ok(value) = serde_saphyr::from_str_with_options::<Value>(doc, options) {
                found += add_object(file, document, &value, inv, 0);
            }
            continue;
        }
        let value = serde_json::json!({
            "apiVersion": head.api_version,
            "kind": head.kind,
            "metadata": {"name": head.metadata.as_ref().and_then(|m| m.name.clone()), "namespace": head.metadata.as_ref().and_then(|m| m.namespace.clone())},
        });
        found += add_object(file, document, &value, inv, 0);
    }
    found
}

/// A plain scalar value of a `key: value` line, or `None` when it needs a real YAML parser
/// (quotes with escapes, anchors, tags, block scalars, flow collections, templates).
fn plain_value(raw: &str) -> Option<String> {
    let v = match raw.find(" #") {
        Some(i) => &raw[..i],
        None => raw,
    }
    .trim();
    let v = if let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        if inner.contains('\\') {
            return None;
        }
        inner
    } else if let Some(inner) = v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
        if inner.contains('\'') {
            return None;
        }
        inner
    } else {
        v
    };
    let special = v.is_empty() || v.starts_with(['&', '*', '!', '|', '>', '{', '[', '%', '@', '`']);
    (!special).then(|| v.to_string())
}

/// Reads apiVersion, kind, metadata.name and metadata.namespace by scanning lines, for the
/// common block-style document. Returns `None` (parse it properly) on anything unusual: flow
/// style, templates, anchors, tabs, or a missing apiVersion or kind. This is what makes a scan
/// of a large tree fast; documents it declines are parsed and validated in full.
fn quick_identity(doc: &str) -> Option<(String, String, Option<String>, Option<String>)> {
    if doc.contains("{{") || doc.contains('\t') {
        return None;
    }
    let (mut api, mut kind, mut name, mut ns) = (None, None, None, None);
    let mut in_meta = false;
    let mut meta_indent: Option<usize> = None;
    let mut meta_done = false;
    for line in doc.lines() {
        let trimmed = line.trim_end();
        if trimmed.is_empty() || trimmed.trim_start().starts_with('#') {
            continue;
        }
        let indent = trimmed.len() - trimmed.trim_start().len();
        if indent == 0 {
            meta_done |= in_meta;
            in_meta = false;
            // The rest of the document (spec, data: most of its bytes) cannot change the identity.
            if meta_done && api.is_some() && kind.is_some() {
                break;
            }
            if trimmed.starts_with('-') || trimmed.starts_with('{') || trimmed.starts_with('[') {
                return None;
            }
            let (key, rest) = trimmed.split_once(':')?;
            match key {
                "apiVersion" => api = Some(plain_value(rest)?),
                "kind" => kind = Some(plain_value(rest)?),
                "metadata" => {
                    if !rest.trim().is_empty() {
                        return None;
                    }
                    in_meta = true;
                    meta_indent = None;
                }
                _ => {}
            }
        } else if in_meta {
            let level = *meta_indent.get_or_insert(indent);
            if indent != level {
                continue;
            }
            let Some((key, rest)) = trimmed.trim_start().split_once(':') else { continue };
            match key {
                "name" => name = Some(plain_value(rest)?),
                "namespace" => ns = Some(plain_value(rest)?),
                _ => {}
            }
        }
    }
    let kind = kind?;
    // Lists carry their objects in items: parse those properly.
    if kind.ends_with("List") {
        return None;
    }
    Some((api?, kind, name, ns))
}

/// The identity of a document; every other field is skipped without building values.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<HeadMeta>,
    #[serde(rename = "items", default, deserialize_with = "present")]
    has_items: bool,
}

#[derive(serde::Deserialize)]
struct HeadMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

fn add_object(file: &str, document: usize, v: &Value, inv: &mut Inventory, depth: usize) -> usize {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if kind.ends_with("List")
        && depth == 0
        && let Some(items) = v.get("items").and_then(Value::as_array)
    {
        return items.iter().map(|item| add_object(file, document, item, inv, depth + 1)).sum();
    }
    if kind.is_empty() || api_version.is_empty() {
        if !v.is_null() {
            inv.warnings.push(format!("{file}: document {document} has no apiVersion and kind, skipped"));
        }
        return 0;
    }
    let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<unnamed>").to_string();
    let namespace = v.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
    inv.objects.push(ObservedObject {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name,
        namespace,
        evidence: Evidence::Manifest { file: file.to_string(), document },
    });
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_lists_json_and_broken_documents() {
        let mut inv = Inventory::default();
        let yaml = "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: a\n  namespace: x\n---\n# just a comment\n---\nkind: List\napiVersion: v1\nitems:\n- apiVersion: policy/v1beta1\n  kind: PodDisruptionBudget\n  metadata: {name: b}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Values.name }}\n  labels: [unclosed\n";
        assert_eq!(parse_text("f.yaml", yaml, &mut inv), 2);
        assert_eq!(inv.objects[0].evidence, Evidence::Manifest { file: "f.yaml".into(), document: 1 });
        assert_eq!(inv.objects[1].kind, "PodDisruptionBudget");
        assert_eq!(inv.objects[1].evidence, Evidence::Manifest { file: "f.yaml".into(), document: 3 });
        assert_eq!(inv.warnings.len(), 1, "{:?}", inv.warnings);
        assert!(inv.warnings[0].contains("f.yaml: document 4"), "{:?}", inv.warnings);
        let mut inv = Inventory::default();
        assert_eq!(
            parse_text(
                "g.json",
                r#"{"apiVersion":"extensions/v1beta1","kind":"Ingress","metadata":{"name":"i"}}"#,
                &mut inv
            ),
            1
        );
    }
}

#[cfg(test)]
mod quick_tests {
    use super::*;

    #[test]
    fn documents_split_only_at_marker_lines() {
        let text = "a: 1\n---\nb: 2\n--- # note\nc: 3\n----\nd: 4\n---\r\ne: 5\n...\n  ---\nf: 6";
        assert_eq!(documents(text), vec!["a: 1\n", "b: 2\n", "c: 3\n----\nd: 4\n", "e: 5\n", "  ---\nf: 6"]);
        assert_eq!(documents("{\"a\": 1}\n---\n"), vec!["{\"a\": 1}\n---\n"]);
    }

    #[test]
    fn quick_identity_reads_block_documents_and_declines_the_unusual() {
        let doc = "# c\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  labels:\n    name: not-this\n  name: \"web\"\n  namespace: shop # comment\nspec:\n  name: nope\n";
        assert_eq!(
            quick_identity(doc),
            Some(("policy/v1beta1".into(), "PodDisruptionBudget".into(), Some("web".into()), Some("shop".into())))
        );
        for unusual in [
            "apiVersion: v1\nkind: List\nitems: []\n",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Values.name }}\n",
            "apiVersion: &a apps/v1\nkind: Deployment\n",
            "{\"apiVersion\": \"v1\", \"kind\": \"Pod\"}\n",
            "kind: Deployment\n",
        ] {
            assert_eq!(quick_identity(unusual), None, "{unusual}");
        }
    }
}
