//! The manifests collector: Kubernetes objects from files, directories or stdin.
//!
//! Reads `.yaml`, `.yml` and `.json` files recursively (other files are skipped), splits
//! multi-document YAML, unwraps `kind: List`, and records each object with its file and document
//! number. A document that does not parse (a Helm template, broken YAML) becomes a warning naming
//! the file and document, and the scan goes on. Every input is bounded: file size, documents per
//! file, files per scan and directory depth.

use std::io::Read;
use std::path::{Path, PathBuf};

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
    let mut found = 0;
    for f in files {
        found += read_file(&f, inv)?;
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

/// Splits YAML text into documents at `---` lines (JSON files are one document).
fn documents(text: &str) -> Vec<String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return vec![text.to_string()];
    }
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.starts_with("---") && line[3..].trim().is_empty() || line.starts_with("--- ") {
            docs.push(String::new());
            continue;
        }
        if line.starts_with("...") && line[3..].trim().is_empty() {
            continue;
        }
        let d = docs.last_mut().expect("one document at least");
        d.push_str(line);
        d.push('\n');
    }
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
        let options = serde_saphyr::options! { with_snippet: false };
        let value: Value = match serde_saphyr::from_str_with_options(doc, options) {
            Ok(v) => v,
            Err(e) => {
                let why = e.to_string();
                inv.warnings.push(format!(
                    "{file}: document {document} is not valid YAML, skipped ({})",
                    why.lines().next().unwrap_or_default()
                ));
                continue;
            }
        };
        found += add_object(file, document, &value, inv, 0);
    }
    found
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
