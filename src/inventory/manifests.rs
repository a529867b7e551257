//! The manifests collector: Kubernetes objects from files, directories or stdin.
//!
//! Reads `.yaml`, `.yml` and `.json` files recursively (symlinked files and directories are
//! followed, each directory read once whatever the links; hidden directories are not entered;
//! whatever is passed over is counted in the [`ScanSummary`]), splits multi-document YAML, unwraps `kind: List` (Lists inside it too, down
//! to [`MAX_LIST_DEPTH`]) and top-level sequences (a JSON array of objects), and records each object with its file and document number (from 1;
//! a leading `---` or a comment-only preamble is not a document). A document that does not parse
//! (a Helm template, broken YAML) or that defines a mapping key twice (kubectl rejects those,
//! whatever their formatting) becomes a warning naming the file and document, and the scan goes
//! on. Every input is bounded, and going past a bound fails the scan with an error saying which
//! and what to do, rather than losing what lies beyond it: bytes per file or stdin (counted while
//! reading, so a pipe or device cannot feed it without end), documents per file, files per scan
//! and directory depth.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{Evidence, Inventory, ObservedObject};

/// Largest manifest file (or stdin) read unless `--max-manifest-bytes` says otherwise.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Most files one scan reads.
pub const MAX_FILES: usize = 200_000;
/// Deepest directory nesting followed.
pub const MAX_DEPTH: usize = 32;
/// Most documents read from one file.
pub const MAX_DOCUMENTS: usize = 100_000;

/// The flag that raises [`ScanOptions::max_file_bytes`], named in the error that reports it.
pub const MAX_BYTES_FLAG: &str = "--max-manifest-bytes";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions {
    /// Largest file or stdin read; a larger one fails the scan.
    pub max_file_bytes: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self { max_file_bytes: DEFAULT_MAX_FILE_BYTES }
    }
}

/// What one scan read and what it passed over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Manifest files (or stdin) read.
    pub files_read: usize,
    /// Objects recorded.
    pub objects: usize,
    /// Files in a scanned directory without a `.yaml`, `.yml` or `.json` extension.
    pub skipped_not_manifest: usize,
    /// Other directory entries: FIFOs, sockets, devices, broken symlinks.
    pub skipped_not_regular: usize,
    /// Hidden directories (`.git`, `.github`), not entered.
    pub skipped_hidden_dirs: usize,
    /// Symlinked directories followed (one whose target the scan reads already is not, and a
    /// warning names it).
    pub linked_dirs: usize,
}

impl fmt::Display for ScanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files = if self.files_read == 1 { "file" } else { "files" };
        let objects = if self.objects == 1 { "object" } else { "objects" };
        write!(f, "{} {files} read ({} {objects})", self.files_read, self.objects)?;
        if self.skipped_not_manifest > 0 {
            write!(f, ", {} skipped (not .yaml/.yml/.json)", self.skipped_not_manifest)?;
        }
        if self.skipped_not_regular > 0 {
            write!(f, ", {} skipped (not regular files)", self.skipped_not_regular)?;
        }
        if self.skipped_hidden_dirs > 0 {
            let dirs = if self.skipped_hidden_dirs == 1 { "directory" } else { "directories" };
            write!(f, ", {} hidden {dirs} not entered", self.skipped_hidden_dirs)?;
        }
        if self.linked_dirs > 0 {
            let dirs = if self.linked_dirs == 1 { "directory" } else { "directories" };
            write!(f, ", {} symlinked {dirs} followed", self.linked_dirs)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read manifests at {path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("more than {MAX_FILES} manifest files under {path}; point --manifests at a smaller tree")]
    TooMany { path: String },
    #[error("{}", too_large(.path, *.size, *.limit))]
    TooLarge {
        /// The file, or `-` for stdin.
        path: String,
        /// Its size when known beforehand (a regular file); `None` when reading hit the limit.
        size: Option<u64>,
        limit: u64,
    },
    #[error("{path} has more than {MAX_DOCUMENTS} documents; split it into smaller files")]
    TooManyDocuments { path: String },
    #[error("{path} is nested more than {MAX_DEPTH} directories deep; point --manifests at a subdirectory")]
    TooDeep { path: String },
}

fn too_large(path: &str, size: Option<u64>, limit: u64) -> String {
    let what = if path == "-" { "stdin has".to_string() } else { format!("manifest file {path} has") };
    match size {
        Some(size) => format!(
            "{what} {size} bytes, more than the limit of {limit} bytes{}; raise it with {MAX_BYTES_FLAG} (e.g. {MAX_BYTES_FLAG} {})",
            readable(limit),
            round_up(size)
        ),
        None => format!(
            "{what} more than {limit} bytes, the limit{}; raise it with {MAX_BYTES_FLAG} (e.g. {MAX_BYTES_FLAG} {})",
            readable(limit),
            round_up(limit.saturating_mul(2))
        ),
    }
}

/// ` (64Mi)` when `bytes` is a whole number of Ki, Mi or Gi, else nothing.
fn readable(bytes: u64) -> String {
    for (shift, suffix) in [(30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!(" ({}{suffix})", bytes >> shift);
        }
    }
    String::new()
}

/// `bytes` rounded up to a whole Mi (or Ki below a Mi), as the flag takes it.
fn round_up(bytes: u64) -> String {
    let (shift, suffix) = if bytes >= 1 << 20 { (20, "Mi") } else { (10, "Ki") };
    format!("{}{suffix}", bytes.div_ceil(1 << shift).max(1))
}

/// Adds every object found under `path` (`-` for stdin) to `inv`.
pub fn scan(path: &Path, options: &ScanOptions, inv: &mut Inventory) -> Result<ScanSummary, ScanError> {
    if path == Path::new("-") {
        let bytes = read_bounded(std::io::stdin().lock(), "-", None, options.max_file_bytes)?;
        let text = String::from_utf8(bytes).map_err(|e| ScanError::Unreadable {
            path: "-".into(),
            message: format!("stdin is not UTF-8 text ({e})"),
        })?;
        let objects = parse_text("<stdin>", &text, inv)?;
        return Ok(ScanSummary { files_read: 1, objects, ..ScanSummary::default() });
    }
    let meta = std::fs::metadata(path)
        .map_err(|e| ScanError::Unreadable { path: path.display().to_string(), message: e.to_string() })?;
    if !meta.is_dir() {
        // Not only regular files: `--manifests <(helm template ...)` is a pipe, which is read as
        // stdin is, up to the limit.
        let objects = read_file(path, options, inv)?;
        return Ok(ScanSummary { files_read: 1, objects, ..ScanSummary::default() });
    }
    let mut summary = ScanSummary::default();
    let (mut files, warnings) = walk(path, &mut summary)?;
    inv.warnings.extend(warnings);
    if files.len() > MAX_FILES {
        return Err(ScanError::TooMany { path: path.display().to_string() });
    }
    files.sort();
    summary.files_read = files.len();
    summary.objects = scan_files(&files, options, inv)?;
    Ok(summary)
}

/// Reads and parses files on every core, then adds their objects and warnings in file order, so
/// the result is the same as a sequential scan.
fn scan_files(files: &[PathBuf], options: &ScanOptions, inv: &mut Inventory) -> Result<usize, ScanError> {
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
                    let result = read_file(file, options, &mut part).map(|_| part);
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

/// Lists the manifest files under `root`, counting what it passes over in `summary`, with a
/// warning for each directory not read again.
///
/// Symlinked directories are followed, unlike `kubectl apply -R` and Pluto's file finder (both
/// walk with Go's `filepath.Walk`, which does not follow them; kubectl declined to, since
/// applying whatever a link brings in is a risk). This scan only reads, and a removed API missed
/// is the failure it exists to prevent, so a tree that shares manifests through links is read
/// whole. Each directory is read once, keyed on its canonical path: the real tree is walked
/// first, then the links met on the way (and those met under them), so a file is reported under
/// its real path when the scan holds it, and a link whose target was already read (a loop, or a
/// second way into the same directory) is named in a warning and not entered. The depth and
/// file-count bounds hold through links as elsewhere.
fn walk(root: &Path, summary: &mut ScanSummary) -> Result<(Vec<PathBuf>, Vec<String>), ScanError> {
    let mut walker = Walker {
        files: Vec::new(),
        summary,
        entered: std::collections::HashMap::new(),
        links: std::collections::VecDeque::new(),
        warnings: Vec::new(),
    };
    walker.enter(root, 0)?;
    while let Some((link, depth)) = walker.links.pop_front() {
        if walker.enter(&link, depth)? {
            walker.summary.linked_dirs += 1;
        }
    }
    Ok((walker.files, walker.warnings))
}

struct Walker<'a> {
    files: Vec<PathBuf>,
    summary: &'a mut ScanSummary,
    /// Every directory entered: its canonical path and the path it was entered as.
    entered: std::collections::HashMap<PathBuf, PathBuf>,
    /// Symlinked directories met and not yet entered, with their depth.
    links: std::collections::VecDeque<(PathBuf, usize)>,
    warnings: Vec<String>,
}

fn is_hidden(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

impl Walker<'_> {
    /// Reads `dir` unless it was read already (false then).
    fn enter(&mut self, dir: &Path, depth: usize) -> Result<bool, ScanError> {
        if depth > MAX_DEPTH {
            return Err(ScanError::TooDeep { path: dir.display().to_string() });
        }
        let unreadable = |path: &Path, e: std::io::Error| ScanError::Unreadable {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let canonical = std::fs::canonicalize(dir).map_err(|e| unreadable(dir, e))?;
        if let Some(first) = self.entered.get(&canonical) {
            self.warnings.push(format!(
                "{}: a symlink leads to {}, which this scan reads already (a loop, or a second way in); not read again",
                dir.display(),
                first.display()
            ));
            return Ok(false);
        }
        self.entered.insert(canonical, dir.to_path_buf());
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
            let entry = entry.map_err(|e| unreadable(dir, e))?;
            let ft = entry.file_type().map_err(|e| unreadable(&entry.path(), e))?;
            entries.push((entry.path(), ft));
        }
        // In name order, so which of two links to one directory is followed does not depend on
        // the file system.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (p, ft) in entries {
            // A symlink counts as what it points to.
            let target = if ft.is_symlink() { std::fs::metadata(&p).ok() } else { None };
            let linked_dir = target.as_ref().is_some_and(std::fs::Metadata::is_dir);
            if ft.is_dir() || linked_dir {
                if is_hidden(&p) {
                    self.summary.skipped_hidden_dirs += 1;
                } else if linked_dir {
                    self.links.push_back((p, depth + 1));
                } else {
                    self.enter(&p, depth + 1)?;
                }
                continue;
            }
            let regular = ft.is_file() || target.as_ref().is_some_and(std::fs::Metadata::is_file);
            if !regular {
                self.summary.skipped_not_regular += 1;
            } else if !is_manifest(&p) {
                self.summary.skipped_not_manifest += 1;
            } else {
                self.files.push(p);
                if self.files.len() > MAX_FILES {
                    return Err(ScanError::TooMany { path: dir.display().to_string() });
                }
            }
        }
        Ok(true)
    }
}

/// Reads at most `limit` bytes, failing (rather than cutting) when there are more: a regular
/// file's size says so up front, anything else (a pipe, a device, a file still growing) when the
/// byte after the limit arrives.
fn read_bounded(reader: impl Read, shown: &str, size: Option<u64>, limit: u64) -> Result<Vec<u8>, ScanError> {
    let too_large = |size| ScanError::TooLarge { path: shown.to_string(), size, limit };
    if let Some(size) = size.filter(|&s| s > limit) {
        return Err(too_large(Some(size)));
    }
    let expected = size.unwrap_or(0).min(limit);
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).saturating_add(1));
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ScanError::Unreadable { path: shown.to_string(), message: e.to_string() })?;
    if bytes.len() as u64 > limit {
        return Err(too_large(None));
    }
    Ok(bytes)
}

fn read_file(path: &Path, options: &ScanOptions, inv: &mut Inventory) -> Result<usize, ScanError> {
    let shown = path.display().to_string();
    let unreadable = |e: std::io::Error| ScanError::Unreadable { path: shown.clone(), message: e.to_string() };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    let size = meta.is_file().then_some(meta.len());
    let bytes = read_bounded(file, &shown, size, options.max_file_bytes)?;
    let Ok(text) = String::from_utf8(bytes) else {
        inv.warnings.push(format!("{shown}: not UTF-8 text, skipped"));
        return Ok(0);
    };
    parse_text(&shown, &text, inv)
}

/// One YAML document of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Document<'a> {
    /// Counted from 1, as YAML counts: every `---` starts one.
    pub(crate) number: usize,
    /// The file's line (from 1) where `text` starts.
    pub(crate) line: usize,
    pub(crate) text: &'a str,
}

/// Whether `text` holds nothing but blank lines, comments and directives (`%YAML`).
fn is_empty_document(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l.starts_with('%')
    })
}

/// Splits YAML text into documents at `---` / `...` lines (JSON files are one document), as
/// slices of the text (no copies: a large tree is mostly bytes to skip). Line starts are found
/// with a byte search rather than line iteration, which is most of a large scan's work.
///
/// A `---` line starts a document, so the one it opens keeps whatever follows the marker on its
/// line (a comment, or a document's first node, which would otherwise be lost). What comes before
/// the first `---`, or between `...` and the next `---`, is a document only if it has content: a
/// leading `---` does not make the first object document 2. Fails past `max` documents.
pub(crate) fn documents(text: &str, max: usize) -> Result<Vec<Document<'_>>, usize> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return Ok(vec![Document { number: 1, line: 1, text }]);
    }
    let bytes = text.as_bytes();
    let mut docs = Vec::new();
    // Where the current chunk starts, its first line, and whether a `---` opened it.
    let (mut start, mut start_line, mut explicit) = (0, 1, false);
    let (mut line, mut line_no) = (0, 1);
    while line < bytes.len() {
        let end = text[line..].find('\n').map_or(bytes.len(), |i| line + i + 1);
        let l = &bytes[line..end];
        if l.len() >= 3 && (l.starts_with(b"---") || l.starts_with(b"...")) {
            let rest = &l[3..];
            let blank = rest.iter().all(u8::is_ascii_whitespace);
            let spaced = blank || matches!(rest[0], b' ' | b'\t');
            if l[0] == b'-' && spaced {
                push_document(&mut docs, max, &text[start..line], start_line, explicit)?;
                (start, start_line, explicit) = (line + 3, line_no, true);
            } else if l[0] == b'.' && (blank || (spaced && rest.trim_ascii_start().starts_with(b"#"))) {
                push_document(&mut docs, max, &text[start..line], start_line, explicit)?;
                (start, start_line, explicit) = (end, line_no + 1, false);
            }
        }
        line = end;
        line_no += 1;
    }
    push_document(&mut docs, max, &text[start..], start_line, explicit)?;
    Ok(docs)
}

/// Adds a chunk as the next document, unless no `---` opened it and it has no content.
fn push_document<'a>(
    docs: &mut Vec<Document<'a>>,
    max: usize,
    text: &'a str,
    line: usize,
    explicit: bool,
) -> Result<(), usize> {
    if !explicit && is_empty_document(text) {
        return Ok(());
    }
    if docs.len() == max {
        return Err(max);
    }
    docs.push(Document { number: docs.len() + 1, line, text });
    Ok(())
}

/// Reads every document of `text` into `inv`; `file` names it in evidence and warnings.
pub(crate) fn parse_text(file: &str, text: &str, inv: &mut Inventory) -> Result<usize, ScanError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let docs = documents(text, MAX_DOCUMENTS).map_err(|_| ScanError::TooManyDocuments { path: file.to_string() })?;
    Ok(docs.iter().map(|doc| parse_document(file, doc, inv)).sum())
}

/// The first non-blank, non-comment text of a document.
fn first_content(doc: &str) -> &str {
    let mut rest = doc;
    loop {
        let trimmed = rest.trim_start();
        if !trimmed.starts_with('#') {
            return trimmed;
        }
        match trimmed.find('\n') {
            Some(i) => rest = &trimmed[i..],
            None => return "",
        }
    }
}

/// The warning for a document that defines a mapping key twice. `line` is the duplicate's line
/// counted from the document's first line (1).
fn duplicate_key(file: &str, doc: &Document<'_>, key: Option<&str>, line: usize) -> String {
    let key = key.map_or_else(|| "a key".to_string(), |k| format!("the key {k:?}"));
    format!(
        "{file}: document {} defines {key} twice (line {}); kubectl rejects such a manifest, so it is skipped: remove one of them",
        doc.number,
        doc.line.saturating_add(line.saturating_sub(1))
    )
}

fn parse_document(file: &str, doc: &Document<'_>, inv: &mut Inventory) -> usize {
    let document = doc.number;
    let head = first_content(doc.text);
    if head.is_empty() {
        return 0;
    }
    if head.starts_with('{') || head.starts_with('[') {
        match json_value(doc.text) {
            Ok(value) => return add_value(file, document, &value, inv),
            Err(JsonError::Duplicate { key, line }) => {
                inv.warnings.push(duplicate_key(file, doc, Some(&key), line));
                return 0;
            }
            // Not strict JSON: YAML's flow style, read below.
            Err(JsonError::Other) => {}
        }
    }
    if let Some((api_version, kind, name, namespace)) = quick_identity(doc.text) {
        inv.objects.push(ObservedObject {
            api_version,
            kind,
            name: name.unwrap_or_else(|| "<unnamed>".into()),
            namespace,
            evidence: Evidence::Manifest { file: file.to_string(), document },
        });
        return 1;
    }
    // `.inf` and `.nan` are YAML 1.2 floats: a document holding one somewhere is still read
    // (the quick reader reads it too; the fuzz target holds the two to the same documents).
    let options = || serde_saphyr::options! { with_snippet: false, non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough };
    let rejected = |e: serde_saphyr::Error, inv: &mut Inventory| {
        let e = match e {
            serde_saphyr::Error::WithSnippet { error, .. } => *error,
            e => e,
        };
        let warning = match &e {
            serde_saphyr::Error::DuplicateMappingKey { key, location } => {
                duplicate_key(file, doc, key.as_deref(), usize::try_from(location.line()).unwrap_or(usize::MAX))
            }
            _ => format!(
                "{file}: document {document} is not valid YAML, skipped ({})",
                e.to_string().lines().next().unwrap_or_default()
            ),
        };
        inv.warnings.push(warning);
    };
    // A sequence of objects, like a JSON array: built whole, as a List is.
    if head.starts_with('[') || is_item(head.lines().next().unwrap_or_default().trim_end()) {
        return match serde_saphyr::from_str_with_options::<Value>(doc.text, options()) {
            Ok(value) => add_value(file, document, &value, inv),
            Err(e) => {
                rejected(e, inv);
                0
            }
        };
    }
    // The rest are parsed: identity fields only (the parser still checks the whole document,
    // duplicate keys included, but builds no values). Lists are read whole.
    let head: Head = match serde_saphyr::from_str_with_options(doc.text, options()) {
        Ok(h) => h,
        Err(e) => {
            rejected(e, inv);
            return 0;
        }
    };
    if head.kind.as_deref().is_some_and(|k| k.ends_with("List")) && head.has_items {
        return match serde_saphyr::from_str_with_options::<Value>(doc.text, options()) {
            Ok(value) => add_object(file, document, &[], &value, inv, 0),
            Err(e) => {
                rejected(e, inv);
                0
            }
        };
    }
    let value = serde_json::json!({
        "apiVersion": head.api_version,
        "kind": head.kind,
        "metadata": {"name": head.metadata.as_ref().and_then(|m| m.name.clone()), "namespace": head.metadata.as_ref().and_then(|m| m.namespace.clone())},
    });
    add_object(file, document, &[], &value, inv, 0)
}

enum JsonError {
    /// A key appears twice in one object (`line` counted from the document's first).
    Duplicate { key: String, line: usize },
    /// Anything else, YAML's flow style among it.
    Other,
}

/// A strict JSON document, with the duplicate keys YAML's reader rejects rejected too (serde_json
/// alone keeps the last silently). JSON is read apart from YAML because it is much faster to.
fn json_value(text: &str) -> Result<Value, JsonError> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    if let Err(e) = NoDuplicateKeys(&duplicate).deserialize(&mut de) {
        return Err(match duplicate.into_inner() {
            Some(key) => JsonError::Duplicate { key, line: e.line() },
            None => JsonError::Other,
        });
    }
    de.end().map_err(|_| JsonError::Other)?;
    serde_json::from_str(text).map_err(|_| JsonError::Other)
}

/// Walks a JSON value without building it and fails at the first key seen twice in one object,
/// recording it.
struct NoDuplicateKeys<'a>(&'a RefCell<Option<String>>);

impl<'de> DeserializeSeed<'de> for NoDuplicateKeys<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoDuplicateKeys<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(NoDuplicateKeys(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if let Some(key) = seen.replace(key) {
                *self.0.borrow_mut() = Some(key);
                return Err(serde::de::Error::custom("duplicate key"));
            }
            map.next_value_seed(NoDuplicateKeys(self.0))?;
        }
        Ok(())
    }
}

/// A plain scalar value of a `key: value` line, or `None` when it needs a real YAML parser
/// (quotes with escapes, anchors, tags, block scalars, flow collections, templates) or is not a
/// string to YAML (`null`, `~`). A comment after a quoted value starts past its closing quote:
/// a ` #` inside the quotes is part of the text.
fn plain_value(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let v = if let Some(&q @ (b'"' | b'\'')) = raw.as_bytes().first() {
        let (inner, rest) = quoted(raw, q)?;
        if !(rest.is_empty() || (rest.starts_with(' ') && rest.trim_start().starts_with('#'))) {
            return None;
        }
        inner?
    } else {
        let v = match raw.find(" #") {
            Some(i) => &raw[..i],
            None => raw,
        }
        .trim();
        if matches!(v, "null" | "Null" | "NULL" | "~") {
            return None;
        }
        v
    };
    let special = v.is_empty() || v.starts_with(['&', '*', '!', '|', '>', '{', '[', '%', '@', '`']);
    (!special).then(|| v.to_string())
}

/// Which mapping a block-mapping frame is, for the identity fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Top,
    Metadata,
    Other,
}

/// An open block collection: keys (or `- ` items) at column `col`. A mapping's keys are the
/// `keys` stack from `first_key` on: a nested frame's keys sit above and go when it closes.
struct Frame {
    col: usize,
    sequence: bool,
    first_key: usize,
    role: Role,
}

/// A key (or `-`) whose value is on the next lines: nested content is indented more than `col`,
/// or, for a key, may be a sequence at `col` itself.
struct Pending {
    col: usize,
    compact: bool,
    role: Role,
}

/// A `|` or `>` scalar: its lines are indented more than `parent`, all at least as much as its
/// first.
struct BlockScalar {
    parent: usize,
    indent: Option<usize>,
}

/// How a key or item's value continues.
enum Continues {
    /// On this line.
    No,
    /// On the next, nested lines.
    Nested,
    /// In a block scalar's lines.
    Scalar,
}

/// Reads apiVersion, kind, metadata.name and metadata.namespace by scanning lines, for the
/// common block-style document, checking on the way that no mapping defines a key twice (which
/// the YAML parser would reject). Returns `None` (parse it properly) on anything unusual: flow
/// mappings it cannot follow, templates, anchors, tags, tabs, multi-line plain or quoted
/// scalars, keys that are not plain strings, a key repeated, or a missing apiVersion or kind.
/// This is what makes a scan of a large tree fast; documents it declines are parsed and
/// validated in full, so whatever it cannot be sure of is decided by the parser alone.
pub(crate) fn quick_identity(doc: &str) -> Option<(String, String, Option<String>, Option<String>)> {
    if doc.contains("{{") || doc.contains('\t') {
        return None;
    }
    // A lone carriage return breaks a line for YAML but not for `lines()`.
    if doc.contains('\r') && doc.split('\r').skip(1).any(|s| !s.starts_with('\n')) {
        return None;
    }
    if !printable(doc) {
        return None;
    }
    let (mut api, mut kind, mut name, mut ns) = (None, None, None, None);
    let mut stack: Vec<Frame> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    let mut pending: Option<Pending> = None;
    let mut scalar: Option<BlockScalar> = None;
    for line in doc.lines() {
        let line = line.trim_end_matches([' ', '\r']);
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if let Some(s) = &mut scalar {
            if content.is_empty() {
                continue;
            }
            if indent > s.parent {
                match s.indent {
                    None => s.indent = Some(indent),
                    Some(first) if indent >= first => {}
                    Some(_) => return None,
                }
                continue;
            }
            scalar = None;
        }
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let item = is_item(content);
        if stack.is_empty() {
            if indent > 0 || item {
                return None;
            }
            stack.push(Frame { col: 0, sequence: false, first_key: 0, role: Role::Top });
        }
        if let Some(p) = pending.take()
            && (indent > p.col || (p.compact && item && indent == p.col))
        {
            let role = if item { Role::Other } else { p.role };
            stack.push(Frame { col: indent, sequence: item, first_key: keys.len(), role });
        }
        // A key at the column of a compact sequence ends the sequence too.
        while let Some(f) = stack.last()
            && (f.col > indent || (!item && f.sequence && f.col == indent))
        {
            keys.truncate(f.first_key);
            stack.pop();
        }
        let top = stack.last()?;
        if top.col != indent || top.sequence != item {
            return None;
        }
        let (col, first_key, role) = (top.col, top.first_key, top.role);
        let (col, first_key, role, key, value) = if item {
            let rest = &content[1..];
            let entry = rest.trim_start_matches(' ');
            if entry.is_empty() || entry.starts_with('#') {
                pending = Some(Pending { col, compact: false, role: Role::Other });
                continue;
            }
            if is_item(entry) {
                return None;
            }
            match split_key(entry)? {
                None => {
                    match value_continues(entry)? {
                        Continues::No => {}
                        Continues::Nested => return None,
                        Continues::Scalar => scalar = Some(BlockScalar { parent: col, indent: None }),
                    }
                    continue;
                }
                // `- key: value` opens a mapping at the key's column.
                Some((key, value)) => {
                    let inner = col + 1 + (rest.len() - entry.len());
                    stack.push(Frame { col: inner, sequence: false, first_key: keys.len(), role: Role::Other });
                    (inner, keys.len(), Role::Other, key, value)
                }
            }
        } else {
            let (key, value) = split_key(content)??;
            (col, first_key, role, key, value)
        };
        // Compared pairwise: a mapping with very many keys (a large ConfigMap) goes to the parser.
        let siblings = &keys[first_key..];
        if siblings.contains(&key) || siblings.len() == MAX_BLOCK_KEYS {
            return None;
        }
        keys.push(key);
        let continues = value_continues(value)?;
        match (role, key) {
            (Role::Top, "apiVersion") => api = Some(plain_value(value)?),
            (Role::Top, "kind") => kind = Some(plain_value(value)?),
            (Role::Top, "metadata") if !matches!(continues, Continues::Nested) => return None,
            (Role::Metadata, "name") => name = Some(plain_value(value)?),
            (Role::Metadata, "namespace") => ns = Some(plain_value(value)?),
            _ => {}
        }
        match continues {
            Continues::No => {}
            Continues::Nested => {
                let role = if role == Role::Top && key == "metadata" { Role::Metadata } else { Role::Other };
                pending = Some(Pending { col, compact: true, role });
            }
            Continues::Scalar => scalar = Some(BlockScalar { parent: col, indent: None }),
        }
    }
    let kind = kind?;
    // Lists carry their objects in items: parse those properly.
    if kind.ends_with("List") {
        return None;
    }
    Some((api?, kind, name, ns))
}

/// Whether `text` holds only characters YAML allows in a stream (its `c-printable` set, plus
/// the line breaks): the parser rejects a document with a NUL, another control character or
/// U+FFFE anywhere in it, so the quick reader must not read one.
fn printable(text: &str) -> bool {
    let ascii = |b: u8| (b' '..=b'~').contains(&b) || matches!(b, b'\n' | b'\r' | b'\t');
    match text.bytes().position(|b| !ascii(b)) {
        None => true,
        Some(i) => text[i..].chars().all(|c| {
            matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        }),
    }
}

/// `- ` or a lone `-`: a block sequence item.
fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// A block line as `key: value` (`Some(Some)`), as no key at all (`Some(None)`: a scalar, flow
/// collection, or anything else that does not start with a plain or simply quoted key), or
/// `None` when the key is one the quick reader does not compare (not a plain string, or one that
/// YAML might read as something else).
fn split_key(content: &str) -> Option<Option<(&str, &str)>> {
    let (key, rest) = match content.as_bytes().first() {
        Some(&q @ (b'"' | b'\'')) => {
            let Some((inner, after)) = quoted(content, q) else { return Some(None) };
            let after = after.trim_start_matches(' ');
            let Some(rest) = after.strip_prefix(':').filter(|r| r.is_empty() || r.starts_with(' ')) else {
                return Some(None);
            };
            return Some(Some((inner?, rest.trim_start_matches(' '))));
        }
        Some(b) if !b.is_ascii_alphabetic() && *b != b'_' => return Some(None),
        None => return Some(None),
        Some(_) => {
            let colon = content.find(": ").or_else(|| content.ends_with(':').then(|| content.len() - 1));
            let Some(colon) = colon else { return Some(None) };
            if content.find(" #").is_some_and(|h| h < colon) {
                return Some(None);
            }
            (content[..colon].trim_end_matches(' '), &content[colon + 1..])
        }
    };
    Some(Some((plain_key(key)?, rest.trim_start_matches(' '))))
}

/// A plain key that YAML reads as the string it spells (no `:` it might split at, no word it
/// reads as null or a boolean).
fn plain_key(key: &str) -> Option<&str> {
    let first = key.as_bytes().first()?;
    if !(first.is_ascii_alphabetic() || *first == b'_') || key.contains(':') {
        return None;
    }
    let special = ["null", "true", "false", "yes", "no", "on", "off", "y", "n"];
    (!special.iter().any(|s| key.eq_ignore_ascii_case(s))).then_some(key)
}

/// A quoted scalar at the start of `s` (quote `q`): its text when it has no escapes (`None`
/// when it has), and what follows it; `None` overall when it does not close on this line.
fn quoted(s: &str, q: u8) -> Option<(Option<&str>, &str)> {
    let b = s.as_bytes();
    let mut i = 1;
    let mut clean = true;
    while i < b.len() {
        match b[i] {
            b'\\' if q == b'"' => {
                clean = false;
                i += 2;
            }
            b'\'' if q == b'\'' && b.get(i + 1) == Some(&b'\'') => {
                clean = false;
                i += 2;
            }
            c if c == q => return Some((clean.then(|| &s[1..i]), &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// Whether a key's (or item's) value goes on past this line, or `None` when it is something the
/// quick reader does not follow.
fn value_continues(value: &str) -> Option<Continues> {
    let Some(&first) = value.as_bytes().first() else { return Some(Continues::Nested) };
    let ends_cleanly = |rest: &str| rest.is_empty() || (rest.starts_with(' ') && rest.trim_start().starts_with('#'));
    match first {
        b'#' => Some(Continues::Nested),
        b'|' | b'>' => {
            let (header, rest) = value.split_at(value.find(' ').unwrap_or(value.len()));
            let chomping = header[1..].bytes().all(|c| matches!(c, b'+' | b'-')) && header.len() <= 2;
            (chomping && ends_cleanly(rest)).then_some(Continues::Scalar)
        }
        b'{' | b'[' => {
            let end = flow_node(value, 0, 0)?;
            ends_cleanly(&value[end..]).then_some(Continues::No)
        }
        b'"' | b'\'' => {
            let (_, rest) = quoted(value, first)?;
            ends_cleanly(rest).then_some(Continues::No)
        }
        b'&' | b'*' | b'!' | b'%' | b'@' | b'`' | b',' | b']' | b'}' => None,
        b'-' | b'?' | b':' if value.len() == 1 || value.as_bytes()[1] == b' ' => None,
        _ => {
            let plain = value.find(" #").map_or(value, |h| &value[..h]);
            (!plain.contains(": ") && !plain.ends_with(':')).then_some(Continues::No)
        }
    }
}

/// Most keys one block mapping may have for the quick reader (it compares them pairwise).
const MAX_BLOCK_KEYS: usize = 256;
/// Most keys one flow mapping may have for the quick reader (it compares them pairwise).
const MAX_FLOW_KEYS: usize = 64;
/// Deepest flow nesting the quick reader follows.
const MAX_FLOW_DEPTH: usize = 32;

/// Follows one flow node (`{...}`, `[...]` or a scalar) starting at byte `i` of a line; returns
/// where it ends, or `None` when it does not close on the line, repeats a key in one mapping, or
/// holds anything the quick reader does not follow.
fn flow_node(s: &str, i: usize, depth: usize) -> Option<usize> {
    let b = s.as_bytes();
    let i = skip_spaces(b, i);
    match b.get(i)? {
        b'{' | b'[' if depth >= MAX_FLOW_DEPTH => None,
        b'{' => {
            let mut keys: Vec<&str> = Vec::new();
            let mut i = i + 1;
            loop {
                i = skip_spaces(b, i);
                match b.get(i)? {
                    b'}' => return Some(i + 1),
                    b'{' | b'[' | b'?' => return None,
                    _ => {}
                }
                let (end, key) = flow_scalar(s, i)?;
                let key = key?;
                if keys.contains(&key) || keys.len() == MAX_FLOW_KEYS {
                    return None;
                }
                keys.push(key);
                i = skip_spaces(b, end);
                if b.get(i) == Some(&b':') {
                    i = skip_spaces(b, i + 1);
                    if !matches!(b.get(i)?, b',' | b'}') {
                        i = flow_node(s, i, depth + 1)?;
                    }
                }
                i = skip_spaces(b, i);
                match b.get(i)? {
                    b',' => i += 1,
                    b'}' => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        b'[' => {
            let mut i = i + 1;
            loop {
                i = skip_spaces(b, i);
                if b.get(i)? == &b']' {
                    return Some(i + 1);
                }
                i = skip_spaces(b, flow_node(s, i, depth + 1)?);
                match b.get(i)? {
                    b',' => i += 1,
                    b']' => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        _ => flow_scalar(s, i).map(|(end, _)| end),
    }
}

/// A scalar inside a flow collection at byte `i`: where it ends, and its text when it is a key
/// the quick reader compares (see [`plain_key`]; quoted keys without escapes).
fn flow_scalar(s: &str, i: usize) -> Option<(usize, Option<&str>)> {
    let b = s.as_bytes();
    match b.get(i)? {
        &q @ (b'"' | b'\'') => {
            let (text, rest) = quoted(&s[i..], q)?;
            Some((s.len() - rest.len(), text))
        }
        b'-' | b'?' | b':' if matches!(b.get(i + 1), None | Some(b' ' | b',' | b']' | b'}')) => None,
        b'&' | b'*' | b'!' | b'|' | b'>' | b'%' | b'@' | b'`' | b'#' | b',' | b']' | b'}' => None,
        _ => {
            let mut j = i;
            while let Some(&c) = b.get(j) {
                match c {
                    b',' | b'[' | b']' | b'{' | b'}' => break,
                    b':' if matches!(b.get(j + 1), None | Some(b' ' | b',' | b'[' | b']' | b'{' | b'}')) => break,
                    // YAML 1.2 keeps such a colon in the scalar; other readers split there.
                    b':' => return None,
                    b'#' if b[j - 1] == b' ' => return None,
                    _ => j += 1,
                }
            }
            let text = s[i..j].trim_end_matches(' ');
            if text.is_empty() {
                return None;
            }
            Some((j, plain_key(text)))
        }
    }
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
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

/// A document's apiVersion, kind, name and namespace as the parser reads them (as the scan reads
/// a document the quick reader declines), or why it rejects the document. The fuzz harness holds
/// the quick reader to it.
pub(crate) type Identity = (Option<String>, Option<String>, Option<String>, Option<String>);

pub(crate) fn parsed_identity(doc: &str) -> Result<Identity, String> {
    let options = serde_saphyr::options! { with_snippet: false, non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough };
    let head: Head = serde_saphyr::from_str_with_options(doc, options).map_err(|e| e.to_string())?;
    let meta = head.metadata.unwrap_or(HeadMeta { name: None, namespace: None });
    Ok((head.api_version, head.kind, meta.name, meta.namespace))
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// Deepest nesting of Lists unwrapped (a List in a List is read, as kubectl flattens them); the
/// items of a List nested deeper are not read, and a warning names it.
pub const MAX_LIST_DEPTH: usize = 8;

/// A whole document's value: an object (or List), or a sequence of them.
fn add_value(file: &str, document: usize, v: &Value, inv: &mut Inventory) -> usize {
    match v.as_array() {
        Some(items) => {
            items.iter().enumerate().map(|(i, item)| add_object(file, document, &[i + 1], item, inv, 0)).sum()
        }
        None => add_object(file, document, &[], v, inv, 0),
    }
}

/// ` item 2` for the second element of a sequence or List, ` item 2.1` for the first of a List
/// that is that element, and so on; nothing for a whole document.
fn item_label(item: &[usize]) -> String {
    if item.is_empty() {
        return String::new();
    }
    let path: Vec<String> = item.iter().map(usize::to_string).collect();
    format!(" item {}", path.join("."))
}

/// Records `v`, found at `item` (element numbers from 1, outermost first; empty for a whole
/// document) inside `lists` Lists. A `*List` is unwrapped into its items, Lists in it too, down
/// to [`MAX_LIST_DEPTH`].
fn add_object(file: &str, document: usize, item: &[usize], v: &Value, inv: &mut Inventory, lists: usize) -> usize {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if kind.ends_with("List")
        && let Some(items) = v.get("items").and_then(Value::as_array)
    {
        if lists >= MAX_LIST_DEPTH {
            let what =
                if items.len() == 1 { "its item is".to_string() } else { format!("its {} items are", items.len()) };
            inv.warnings.push(format!(
                "{file}: document {document}{} is a {kind} nested more than {MAX_LIST_DEPTH} Lists deep; {what} not read",
                item_label(item)
            ));
            return 0;
        }
        let mut path = item.to_vec();
        path.push(0);
        return items
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                *path.last_mut().expect("pushed above") = i + 1;
                add_object(file, document, &path, entry, inv, lists + 1)
            })
            .sum();
    }
    if kind.is_empty() || api_version.is_empty() {
        let at = item_label(item);
        if !v.is_object() && !v.is_null() {
            inv.warnings.push(format!("{file}: document {document}{at} is not an object, skipped"));
        } else if !v.is_null() {
            inv.warnings.push(format!("{file}: document {document}{at} has no apiVersion and kind, skipped"));
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

    fn parse(file: &str, text: &str) -> (usize, Inventory) {
        let mut inv = Inventory::default();
        let n = parse_text(file, text, &mut inv).expect("within the bounds");
        (n, inv)
    }

    fn documents_of(inv: &Inventory) -> Vec<(String, usize)> {
        inv.objects
            .iter()
            .map(|o| match &o.evidence {
                Evidence::Manifest { document, .. } => (o.name.clone(), *document),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn multi_document_lists_json_and_broken_documents() {
        let yaml = "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: a\n  namespace: x\n---\n# just a comment\n---\nkind: List\napiVersion: v1\nitems:\n- apiVersion: policy/v1beta1\n  kind: PodDisruptionBudget\n  metadata: {name: b}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Values.name }}\n  labels: [unclosed\n";
        let (n, inv) = parse("f.yaml", yaml);
        assert_eq!(n, 2);
        assert_eq!(inv.objects[0].evidence, Evidence::Manifest { file: "f.yaml".into(), document: 1 });
        assert_eq!(inv.objects[1].kind, "PodDisruptionBudget");
        assert_eq!(inv.objects[1].evidence, Evidence::Manifest { file: "f.yaml".into(), document: 3 });
        assert_eq!(inv.warnings.len(), 1, "{:?}", inv.warnings);
        assert!(inv.warnings[0].contains("f.yaml: document 4"), "{:?}", inv.warnings);
        let json = r#"{"apiVersion":"extensions/v1beta1","kind":"Ingress","metadata":{"name":"i"}}"#;
        assert_eq!(parse("g.json", json).0, 1);
    }

    /// Helm's output starts with `---`; a file may start with comments; `...` ends a document.
    #[test]
    fn documents_are_numbered_from_the_first_with_content() {
        let obj = |name: &str| format!("apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: {name}\n");
        for (text, expected) in [
            (format!("---\n{}", obj("a")), vec![("a", 1)]),
            (
                format!("---\n# Source: chart/templates/a.yaml\n{}---\n# Source: b.yaml\n{}", obj("a"), obj("b")),
                vec![("a", 1), ("b", 2)],
            ),
            (
                format!("# generated\n\n--- # first\n\n# comment\n{}--- \t\n{}", obj("a"), obj("b")),
                vec![("a", 1), ("b", 2)],
            ),
            (format!("{}---\n{}", "\u{feff}", obj("a")), vec![("a", 1)]),
            (
                format!("%YAML 1.2\n---\n{}...\n---\n{}... # end\n{}", obj("a"), obj("b"), obj("c")),
                vec![("a", 1), ("b", 2), ("c", 3)],
            ),
            // An explicitly started empty document is still a document, as YAML counts.
            (format!("{}---\n---\n# nothing\n---\n{}", obj("a"), obj("b")), vec![("a", 1), ("b", 4)]),
        ] {
            let (_, inv) = parse("f.yaml", &text);
            let expected: Vec<(String, usize)> = expected.into_iter().map(|(n, d)| (n.to_string(), d)).collect();
            assert_eq!(documents_of(&inv), expected, "{text}");
            assert!(inv.warnings.is_empty(), "{text}: {:?}", inv.warnings);
        }
    }

    #[test]
    fn what_follows_a_marker_on_its_line_is_read_not_dropped() {
        let text =
            "--- {\"apiVersion\": \"extensions/v1beta1\", \"kind\": \"Ingress\", \"metadata\": {\"name\": \"i\"}}\n";
        let (n, inv) = parse("f.yaml", text);
        assert_eq!((n, documents_of(&inv)), (1, vec![("i".to_string(), 1)]), "{:?}", inv.warnings);
    }

    #[test]
    fn documents_split_only_at_marker_lines() {
        let text = "a: 1\n---\nb: 2\n--- # note\nc: 3\n----\nd: 4\n---\r\ne: 5\n...\n  ---\nf: 6";
        let texts: Vec<&str> = documents(text, 10).unwrap().iter().map(|d| d.text).collect();
        assert_eq!(texts, vec!["a: 1\n", "\nb: 2\n", " # note\nc: 3\n----\nd: 4\n", "\r\ne: 5\n", "  ---\nf: 6"]);
        let lines: Vec<usize> = documents(text, 10).unwrap().iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![1, 2, 4, 8, 11]);
        assert_eq!(documents("{\"a\": 1}\n---\n", 10).unwrap().len(), 1);
        assert_eq!(documents("a: 1\n---\nb: 1\n---\nc: 1\n", 2), Err(2));
    }

    #[test]
    fn more_documents_than_the_bound_fail_the_file_rather_than_dropping_the_rest() {
        let text = "a: 1\n---\n".repeat(MAX_DOCUMENTS + 1);
        let err = parse_text("many.yaml", &text, &mut Inventory::default()).expect_err("over the bound");
        assert_eq!(
            err.to_string(),
            format!("many.yaml has more than {MAX_DOCUMENTS} documents; split it into smaller files")
        );
    }

    const DUPLICATE_REPLICAS: &str = "the key \"replicas\" twice";

    /// The same Deployment, with `spec.replicas` twice, in every formatting: none is read, each
    /// is one warning naming the file, document and key. Before, the block-style ones were read
    /// as if the key were there once and the others dropped as "not valid YAML".
    #[test]
    fn a_duplicate_key_is_rejected_whatever_the_formatting() {
        let head = "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata:\n  name: web\n";
        for (what, doc, line) in [
            ("block", format!("{head}spec:\n  replicas: 1\n  replicas: 2\n"), 7),
            ("block, deeper", format!("{head}spec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: x\n        image: y\n"), 11),
            ("block, quoted", format!("{head}spec:\n  replicas: 1\n  \"replicas\": 2\n"), 7),
            ("block with a tab", format!("{head}spec:\n  replicas: 1 #\tone\n  replicas: 2\n"), 7),
            ("flow in block", format!("{head}spec: {{replicas: 1, selector: {{}}, replicas: 2}}\n"), 5),
            ("flow", "{apiVersion: extensions/v1beta1, kind: Deployment, metadata: {name: web}, spec: {replicas: 1, replicas: 2}}\n".to_string(), 1),
            ("json", r#"{"apiVersion": "extensions/v1beta1", "kind": "Deployment", "metadata": {"name": "web"},
 "spec": {"replicas": 1, "replicas": 2}}"#.to_string(), 2),
            ("json array", r#"[{"apiVersion": "extensions/v1beta1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1, "replicas": 2}}]"#.to_string(), 1),
        ] {
            let text = format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: before\n---\n{doc}");
            let (n, inv) = parse("d.yaml", &text);
            assert_eq!(n, 1, "{what}: only the ConfigMap is read: {:?}", inv.objects);
            assert_eq!(inv.warnings.len(), 1, "{what}: {:?}", inv.warnings);
            let w = &inv.warnings[0];
            let key = if what == "block, deeper" { "the key \"image\" twice" } else { DUPLICATE_REPLICAS };
            assert!(w.starts_with("d.yaml: document 2 defines ") && w.contains(key), "{what}: {w}");
            assert!(w.contains(&format!("(line {})", line + 6)), "{what}: {w}");
            assert!(w.contains("kubectl rejects"), "{what}: {w}");
        }
    }

    #[test]
    fn the_same_key_in_different_mappings_is_no_duplicate() {
        let doc = "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {name: web}\nspec:\n  template:\n    metadata:\n      name: t\n    spec:\n      containers:\n      - name: a\n        ports:\n        - name: http\n        - name: grpc\n        env:\n        - {name: A, value: '1'}\n        - {name: B, value: '2'}\n      - name: b\n        command:\n        - |\n          name: x\n          name: x\n      name: c\n";
        assert!(quick_identity(doc).is_some(), "the quick reader follows it");
        let (n, inv) = parse("f.yaml", doc);
        assert_eq!((n, inv.warnings.len()), (1, 0), "{:?}", inv.warnings);
        assert_eq!(inv.objects[0].name, "web");
    }

    #[test]
    fn a_top_level_sequence_is_a_list_of_objects() {
        let json = r#"[{"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "a"}},
            {"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "b", "namespace": "n"}}, 3, {}]"#;
        let (n, inv) = parse("l.json", json);
        assert_eq!(n, 2);
        assert_eq!(documents_of(&inv), vec![("a".into(), 1), ("b".into(), 1)]);
        assert_eq!(inv.objects[1].namespace.as_deref(), Some("n"));
        assert_eq!(
            inv.warnings,
            vec![
                "l.json: document 1 item 3 is not an object, skipped".to_string(),
                "l.json: document 1 item 4 has no apiVersion and kind, skipped".to_string()
            ]
        );
        let yaml = "# objects\n- apiVersion: extensions/v1beta1\n  kind: Ingress\n  metadata: {name: a}\n- apiVersion: v1\n  kind: List\n  items:\n  - {apiVersion: batch/v1beta1, kind: CronJob, metadata: {name: c}}\n";
        let (n, inv) = parse("l.yaml", yaml);
        assert_eq!((n, inv.warnings.len()), (2, 0), "{:?}", inv.warnings);
        assert_eq!(inv.objects[1].kind, "CronJob");
        assert_eq!(parse("e.json", "[]").0, 0);
    }

    /// D23: a List inside a List was recorded as one `v1 List` object and its items lost.
    #[test]
    fn lists_inside_lists_are_unwrapped_down_to_the_bound() {
        let yaml = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: batch/v1beta1\n    kind: CronJob\n    metadata: {name: inner}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: outer}\n";
        let (n, inv) = parse("nested-list.yaml", yaml);
        assert_eq!((n, inv.warnings.len()), (2, 0), "{:?}", inv.warnings);
        let found: Vec<(&str, &str, &str)> =
            inv.objects.iter().map(|o| (o.api_version.as_str(), o.kind.as_str(), o.name.as_str())).collect();
        assert_eq!(found, [("batch/v1beta1", "CronJob", "inner"), ("v1", "ConfigMap", "outer")]);
        assert_eq!(inv.objects[0].evidence, Evidence::Manifest { file: "nested-list.yaml".into(), document: 1 });
        // The same in JSON, in a top-level array, and with a typed list kind.
        let json = r#"[{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicyList", "items": [{"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "metadata": {"name": "psp"}}, 7]}]}]"#;
        let (n, inv) = parse("l.json", json);
        assert_eq!(n, 1, "{:?}", inv.warnings);
        assert_eq!((inv.objects[0].kind.as_str(), inv.objects[0].name.as_str()), ("PodSecurityPolicy", "psp"));
        assert_eq!(inv.warnings, ["l.json: document 1 item 1.1.2 is not an object, skipped"]);
        // Nested deeper than the bound: the innermost List's items are not read, and it says so.
        let object = r#"{"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "deep"}}"#;
        let nest = |levels: usize| {
            (0..levels).fold(object.to_string(), |inner, _| {
                format!(r#"{{"apiVersion": "v1", "kind": "List", "items": [{inner}]}}"#)
            })
        };
        let (n, inv) = parse("deep.json", &nest(MAX_LIST_DEPTH));
        assert_eq!((n, inv.warnings.len()), (1, 0), "{:?}", inv.warnings);
        let (n, inv) = parse("deeper.json", &nest(MAX_LIST_DEPTH + 1));
        assert_eq!(n, 0);
        let at = ["1"; MAX_LIST_DEPTH].join(".");
        assert_eq!(
            inv.warnings,
            [format!(
                "deeper.json: document 1 item {at} is a List nested more than {MAX_LIST_DEPTH} Lists deep; its item is not read"
            )]
        );
    }

    /// D21: `kind:` at column 0 inside a multi-line double-quoted string is not the document's kind.
    #[test]
    fn a_kind_inside_a_multi_line_quoted_string_is_not_the_kind() {
        let yaml =
            "apiVersion: batch/v1beta1\nkind: CronJob\nnote: \"text\nkind: ConfigMap\"\nmetadata: {name: hidden}\n";
        assert_eq!(quick_identity(yaml), None, "the quick reader declines it");
        let (n, inv) = parse("fn-quoted.yaml", yaml);
        assert_eq!((n, inv.warnings.len()), (1, 0), "{:?}", inv.warnings);
        let o = &inv.objects[0];
        assert_eq!((o.api_version.as_str(), o.kind.as_str(), o.name.as_str()), ("batch/v1beta1", "CronJob", "hidden"));
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
            // A repeated key, a key YAML may not read as the string it spells, and lines whose
            // place in the structure only the parser can tell.
            "apiVersion: v1\nkind: Pod\nkind: Pod\n",
            "apiVersion: v1\nkind: Pod\nspec: {a: 1, a: 2}\n",
            "apiVersion: v1\nkind: Pod\ntrue: 1\n",
            "apiVersion: v1\nkind: Pod\n1: x\n",
            "apiVersion: v1\nkind: Pod\n<<: *base\n",
            "apiVersion: v1\nkind: Pod\nspec:\n  a: b\n    c\n",
            "apiVersion: v1\nkind: Pod\nspec: \"multi\n  line\"\n",
            "apiVersion: v1\nkind: Pod\nspec: {a: 1,\n  b: 2}\n",
            "apiVersion: v1\nkind: Pod\nspec: |2\n   x\n",
            "apiVersion: v1\nkind: Pod\nspec:\n    a: 1\n  b: 2\n",
            "apiVersion: v1\nkind: Pod\nurl: {a: http://x}\n",
            "apiVersion: v1\rkind: Pod\n",
        ] {
            assert_eq!(quick_identity(unusual), None, "{unusual}");
        }
    }

    /// Found by the `manifests` fuzz target's differential check: the quick reader cut a quoted
    /// value at a ` #` inside its quotes (the name `"a` for `name: "a # b"`), and read `null` and
    /// `~` as strings where the parser reads no value.
    #[test]
    fn quick_identity_agrees_with_the_parser_on_quoted_hashes_and_nulls() {
        let pod = |meta: &str| format!("apiVersion: v1\nkind: Pod\nmetadata:\n{meta}");
        for (doc, name) in [
            (pod("  name: \"a # b\"\n"), Some("a # b")),
            (pod("  name: 'a # b' # comment\n"), Some("a # b")),
            (pod("  name: \"a\" # comment\n"), Some("a")),
            (pod("  name: a # comment\n"), Some("a")),
        ] {
            let quick = quick_identity(&doc).map(|(_, _, n, _)| n);
            assert_eq!(quick, Some(name.map(str::to_string)), "{doc}");
            assert_eq!(parsed_identity(&doc).unwrap().2.as_deref(), name, "{doc}");
        }
        for doc in [
            pod("  name: null\n"),
            pod("  name: ~\n"),
            "apiVersion: v1\nkind: ~\n".to_string(),
            pod("  name: \"a\"b\n"),
        ] {
            assert_eq!(quick_identity(&doc), None, "{doc}");
        }
        let (n, inv) = parse("f.yaml", &pod("  name: null\n"));
        assert_eq!((n, inv.objects[0].name.as_str()), (1, "<unnamed>"));
    }

    /// Found by the `manifests` fuzz target: a NUL (or another character YAML does not allow)
    /// anywhere in a document made the parser reject it while the quick reader read it.
    #[test]
    fn quick_identity_declines_characters_yaml_does_not_allow() {
        for c in ['\0', '\u{1}', '\u{1b}', '\u{7f}', '\u{80}', '\u{9f}', '\u{fffe}'] {
            for doc in [
                format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a{c}b\n"),
                format!("# note {c}\napiVersion: v1\nkind: Pod\n"),
            ] {
                assert_eq!(quick_identity(&doc), None, "{doc:?}");
            }
        }
        let doc = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: caf\u{e9}\u{85}\u{a0}\u{1f600}\n";
        assert_eq!(quick_identity(doc).and_then(|(_, _, n, _)| n).as_deref(), Some("caf\u{e9}\u{85}\u{a0}\u{1f600}"));
        assert_eq!(parsed_identity(doc).unwrap().2.as_deref(), Some("caf\u{e9}\u{85}\u{a0}\u{1f600}"));
        let nul = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\0b\n";
        assert!(parsed_identity(nul).is_err(), "the parser rejects a NUL");
        let (n, inv) = parse("f.yaml", nul);
        assert_eq!((n, inv.warnings.len()), (0, 1), "{:?}", inv.warnings);
    }

    /// fuzz/regressions/manifests/inf-in-an-unread-field: the parser refused `.inf` anywhere in
    /// a document (its default policy), so a document the quick reader read was one it rejected.
    #[test]
    fn a_non_finite_float_anywhere_in_a_document_does_not_make_it_unreadable() {
        let doc = "apiVersion: v1\nkind: Pod\nmetatedata:\n  name: 0x1F\n  namespace: .inf\nspec:\n  x: .nan\n";
        assert_eq!(parsed_identity(doc).unwrap(), (Some("v1".into()), Some("Pod".into()), None, None));
        let (n, inv) = parse("f.yaml", doc);
        assert_eq!((n, inv.warnings.len()), (1, 0), "{:?}", inv.warnings);
    }

    #[test]
    fn reading_stops_one_byte_past_the_limit() {
        let read = |bytes: &[u8], size| read_bounded(bytes, "f.yaml", size, 4);
        assert_eq!(read(b"abcd", Some(4)).unwrap(), b"abcd");
        assert!(matches!(read(b"abcde", None), Err(ScanError::TooLarge { size: None, limit: 4, .. })));
        // A file that grew after its size was read.
        assert!(matches!(read(b"abcde", Some(3)), Err(ScanError::TooLarge { size: None, .. })));
        assert!(matches!(read(b"", Some(5)), Err(ScanError::TooLarge { size: Some(5), .. })));
        // An endless input ends at the limit.
        let err = read_bounded(std::io::repeat(b'a'), "-", None, 1 << 20).expect_err("endless");
        assert_eq!(
            err.to_string(),
            "stdin has more than 1048576 bytes, the limit (1Mi); raise it with --max-manifest-bytes (e.g. --max-manifest-bytes 2Mi)"
        );
        let err =
            ScanError::TooLarge { path: "d/big.yaml".into(), size: Some(70_000_000), limit: DEFAULT_MAX_FILE_BYTES };
        assert_eq!(
            err.to_string(),
            "manifest file d/big.yaml has 70000000 bytes, more than the limit of 67108864 bytes (64Mi); raise it with --max-manifest-bytes (e.g. --max-manifest-bytes 67Mi)"
        );
    }

    /// A directory of `name`s under the temporary directory, removed when dropped.
    struct TempTree(PathBuf);

    impl TempTree {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("k8s-upgrade-manifests-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temporary directory");
            Self(dir)
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_scan_counts_what_it_skipped() {
        let tree = TempTree::new("skipped");
        let d = &tree.0;
        let obj = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::create_dir_all(d.join(".git")).unwrap();
        std::fs::write(d.join("a.yaml"), obj).unwrap();
        std::fs::write(d.join("sub/b.yml"), obj).unwrap();
        std::fs::write(d.join("README.md"), obj).unwrap();
        std::fs::write(d.join("sub/values.txt"), obj).unwrap();
        std::fs::write(d.join(".git/c.yaml"), obj).unwrap();
        std::os::unix::fs::symlink(d.join("a.yaml"), d.join("link.yaml")).unwrap();
        std::os::unix::fs::symlink(d.join("sub"), d.join("sub-link")).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(d.join("sock.yaml")).unwrap();
        let mut inv = Inventory::default();
        let summary = scan(d, &ScanOptions::default(), &mut inv).expect("scan");
        let expected = ScanSummary {
            files_read: 3,
            objects: 3,
            skipped_not_manifest: 2,
            skipped_not_regular: 1,
            skipped_hidden_dirs: 1,
            linked_dirs: 0,
        };
        assert_eq!(summary, expected);
        assert_eq!(
            summary.to_string(),
            "3 files read (3 objects), 2 skipped (not .yaml/.yml/.json), 1 skipped (not regular files), 1 hidden directory not entered"
        );
        // The link leads to `sub`, read already.
        assert_eq!(inv.warnings.len(), 1, "{:?}", inv.warnings);
        assert!(
            inv.warnings[0].starts_with(&format!(
                "{}: a symlink leads to {}",
                d.join("sub-link").display(),
                d.join("sub").display()
            )),
            "{:?}",
            inv.warnings
        );
        let one = scan(&d.join("a.yaml"), &ScanOptions::default(), &mut Inventory::default()).unwrap();
        assert_eq!(one.to_string(), "1 file read (1 object)");
    }

    /// D22: a symlinked directory was counted as "not a regular file" and its manifests missed.
    #[test]
    fn symlinked_directories_are_followed_once_and_loops_end_with_a_warning() {
        let tree = TempTree::new("links");
        let (root, shared) = (tree.0.join("tree"), tree.0.join("shared"));
        std::fs::create_dir_all(root.join("app/deep")).unwrap();
        std::fs::create_dir_all(shared.join("jobs")).unwrap();
        let obj =
            |kind: &str, api: &str, name: &str| format!("apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}\n");
        std::fs::write(root.join("app/web.yaml"), obj("ConfigMap", "v1", "web")).unwrap();
        std::fs::write(shared.join("jobs/cron.yaml"), obj("CronJob", "batch/v1beta1", "nightly")).unwrap();
        // Out of the tree, twice (read once); a loop back to the root; a link to a directory
        // inside the tree; and a link that leads nowhere.
        std::os::unix::fs::symlink(&shared, root.join("app/shared")).unwrap();
        std::os::unix::fs::symlink("../../../shared", root.join("app/deep/again")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("app/deep/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("app"), root.join("app-link")).unwrap();
        std::os::unix::fs::symlink(tree.0.join("missing"), root.join("gone")).unwrap();
        let mut inv = Inventory::default();
        let summary = scan(&root, &ScanOptions::default(), &mut inv).expect("scan");
        assert_eq!(
            summary.to_string(),
            "2 files read (2 objects), 1 skipped (not regular files), 1 symlinked directory followed"
        );
        let found: Vec<(String, String)> = inv
            .objects
            .iter()
            .map(|o| match &o.evidence {
                Evidence::Manifest { file, .. } => (o.name.clone(), file.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        let shown = |p: PathBuf| p.display().to_string();
        assert_eq!(
            found,
            [
                ("nightly".to_string(), shown(root.join("app/deep/again/jobs/cron.yaml"))),
                ("web".to_string(), shown(root.join("app/web.yaml")))
            ]
        );
        // Links are followed once the real tree is read, in the order met (by name, depth
        // first): `app/deep/again` reads `shared`, so `app/shared` is a second way in.
        let read_already = |link: &str, first: PathBuf| {
            format!(
                "{}: a symlink leads to {}, which this scan reads already (a loop, or a second way in); not read again",
                root.join(link).display(),
                first.display()
            )
        };
        assert_eq!(
            inv.warnings,
            [
                read_already("app/deep/loop", root.clone()),
                read_already("app/shared", root.join("app/deep/again")),
                read_already("app-link", root.join("app")),
            ]
        );
    }

    #[test]
    fn a_file_over_the_limit_in_a_tree_fails_the_scan() {
        let tree = TempTree::new("large");
        std::fs::write(tree.0.join("a.yaml"), "apiVersion: v1\nkind: ConfigMap\n").unwrap();
        let b = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n";
        std::fs::write(tree.0.join("b.yaml"), b).unwrap();
        let err =
            scan(&tree.0, &ScanOptions { max_file_bytes: 40 }, &mut Inventory::default()).expect_err("b is large");
        let size = b.len() as u64;
        assert!(
            matches!(&err, ScanError::TooLarge { path, size: Some(s), limit: 40 } if path.ends_with("b.yaml") && *s == size),
            "{err}"
        );
    }

    #[test]
    fn a_tree_deeper_than_the_bound_fails_the_scan() {
        let tree = TempTree::new("deep");
        let deep = (0..=MAX_DEPTH + 1).fold(tree.0.clone(), |p, i| p.join(i.to_string()));
        std::fs::create_dir_all(&deep).unwrap();
        let err = scan(&tree.0, &ScanOptions::default(), &mut Inventory::default()).expect_err("too deep");
        assert!(matches!(err, ScanError::TooDeep { .. }), "{err}");
    }
}

#[cfg(test)]
mod agreement {
    //! The quick reader never accepts a document the parser would reject for a duplicate key.
    use proptest::prelude::*;

    use super::*;

    /// A small YAML tree, written out in block or flow style.
    #[derive(Debug, Clone)]
    enum Node {
        Scalar(&'static str),
        Map(Vec<(&'static str, Node)>),
        Seq(Vec<Node>),
        Block(Vec<&'static str>),
    }

    const KEYS: [&str; 5] = ["a", "b", "\"a\"", "'b'", "name"];
    const SCALARS: [&str; 5] = ["x", "1", "\"q\"", "a: b", "- c"];

    fn node() -> impl Strategy<Value = Node> {
        let leaf = prop_oneof![
            proptest::sample::select(&SCALARS[..3]).prop_map(Node::Scalar),
            proptest::collection::vec(proptest::sample::select(&SCALARS[..]), 1..3).prop_map(Node::Block),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec((proptest::sample::select(&KEYS[..]), inner.clone()), 0..4)
                    .prop_map(Node::Map),
                proptest::collection::vec(inner, 0..3).prop_map(Node::Seq),
            ]
        })
    }

    /// Flow style, on one line (block scalars become plain ones).
    fn flow(n: &Node) -> String {
        match n {
            Node::Scalar(s) => s.to_string(),
            Node::Block(_) => "y".into(),
            Node::Map(entries) => {
                format!(
                    "{{{}}}",
                    entries.iter().map(|(k, v)| format!("{k}: {}", flow(v))).collect::<Vec<_>>().join(", ")
                )
            }
            Node::Seq(items) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
        }
    }

    /// How a document is laid out: indentation step, sequences at their key's column, comments
    /// and blank lines between entries, spaces after a dash, and which collections are in flow
    /// style (drawn in turn).
    struct Style<I> {
        step: usize,
        compact: bool,
        comments: bool,
        dash_gap: usize,
        flows: I,
    }

    /// Block style at `indent`, as the value of a key.
    fn block(n: &Node, indent: usize, style: &mut Style<impl Iterator<Item = bool>>, out: &mut String) {
        let pad = " ".repeat(indent);
        let step = style.step;
        match n {
            Node::Scalar(s) => out.push_str(&format!(" {s}\n")),
            Node::Block(lines) => {
                out.push_str(" |\n");
                for l in lines {
                    out.push_str(&format!("{pad}{}{l}\n", " ".repeat(step)));
                }
            }
            _ if style.flows.next().unwrap_or(false) => out.push_str(&format!(" {} # flow\n", flow(n))),
            Node::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
            Node::Seq(items) if items.is_empty() => out.push_str(" []\n"),
            Node::Map(entries) => {
                out.push('\n');
                for (k, v) in entries {
                    if style.comments {
                        out.push_str(&format!("\n{pad}# {k}: z\n"));
                    }
                    out.push_str(&format!("{pad}{}{k}:", " ".repeat(step)));
                    block(v, indent + step, style, out);
                }
            }
            Node::Seq(items) => {
                out.push('\n');
                let dash = if style.compact { indent } else { indent + step };
                let gap = " ".repeat(style.dash_gap);
                for item in items {
                    let dpad = " ".repeat(dash);
                    match item {
                        Node::Map(entries) if !entries.is_empty() => {
                            for (i, (k, v)) in entries.iter().enumerate() {
                                let lead = if i == 0 { format!("{dpad}-{gap}") } else { format!("{dpad} {gap}") };
                                out.push_str(&format!("{lead}{k}:"));
                                block(v, dash + 1 + style.dash_gap, style, out);
                            }
                        }
                        other => {
                            out.push_str(&format!("{dpad}-"));
                            block(other, dash, style, out);
                        }
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_quick_reader_never_hides_a_duplicate(
            spec in node(),
            step in 2usize..5,
            compact in any::<bool>(),
            comments in any::<bool>(),
            dash_gap in 1usize..3,
            flows in proptest::collection::vec(any::<bool>(), 16),
        ) {
            let mut doc = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:".to_string();
            let flows = flows.into_iter().chain(std::iter::repeat(false));
            block(&spec, 0, &mut Style { step, compact, comments, dash_gap, flows }, &mut doc);
            let options = serde_saphyr::options! { with_snippet: false };
            let parsed = serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(&doc, options);
            let duplicate = matches!(&parsed, Err(serde_saphyr::Error::DuplicateMappingKey { .. }));
            // Stronger than needed (it need only not hide a duplicate), to catch a misread layout.
            if quick_identity(&doc).is_some() {
                prop_assert!(parsed.is_ok(), "accepted what the parser rejects ({:?}):\n{doc}", parsed.err().map(|e| e.to_string()));
            }
            let mut inv = Inventory::default();
            let n = parse_text("p.yaml", &doc, &mut inv).expect("one document");
            if duplicate {
                prop_assert_eq!(n, 0);
                prop_assert!(inv.warnings.iter().any(|w| w.contains("twice")), "{:?}\n{}", inv.warnings, doc);
            } else if parsed.is_ok() {
                prop_assert_eq!((n, inv.warnings.len()), (1, 0), "{:?}\n{}", inv.warnings, doc);
            }
        }
    }
}
