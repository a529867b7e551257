//! A release record as Helm stores it: the Secret value (base64 of the gzipped release JSON, or
//! of the plain JSON for records written before Helm compressed them), size-bounded, and the
//! release JSON edited in place. Edits replace the bytes of one member's value and nothing else,
//! so values, the chart, hooks and every field this tool does not know stay byte for byte.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::ops::Range;

use base64::Engine;

/// Largest stored payload decoded (the base64 text of the Secret's `release` value).
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024 * 1024;
/// Largest release JSON once decompressed (a gzip bomb stops here).
pub const MAX_RELEASE_JSON_BYTES: u64 = 64 * 1024 * 1024;

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelmError {
    #[error("Helm release {release}: its stored payload is {size} bytes, more than the {limit} bytes allowed")]
    PayloadTooLarge { release: String, size: usize, limit: usize },
    #[error("Helm release {release}: its payload decompresses to more than the {limit} bytes allowed")]
    JsonTooLarge { release: String, limit: u64 },
    #[error("Helm release {release}: cannot decode its stored payload: {message}")]
    Decode { release: String, message: String },
}

fn decode_err(release: &str, message: impl std::fmt::Display) -> HelmError {
    HelmError::Decode { release: release.to_string(), message: message.to_string() }
}

/// The release JSON inside a stored payload (`data.release` of the Secret, already out of the
/// API's own base64). `release` names it in errors.
pub fn decode_payload(release: &str, payload: &[u8]) -> Result<Vec<u8>, HelmError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(HelmError::PayloadTooLarge {
            release: release.to_string(),
            size: payload.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(payload.trim_ascii())
        .map_err(|e| decode_err(release, format!("not base64 ({e})")))?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .take(MAX_RELEASE_JSON_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| decode_err(release, format!("not gzip ({e})")))?;
    if json.len() as u64 > MAX_RELEASE_JSON_BYTES {
        return Err(HelmError::JsonTooLarge { release: release.to_string(), limit: MAX_RELEASE_JSON_BYTES });
    }
    Ok(json)
}

/// The stored payload for a release JSON, as Helm writes it: base64 of the JSON gzipped at the
/// best compression.
pub fn encode_payload(json: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(json);
    let gzipped = gz.finish().unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(gzipped).into_bytes()
}

/// A JSON string as Go's encoding/json writes it (Helm's encoder): `<`, `>`, `&`, U+2028 and
/// U+2029 escaped as well.
pub fn go_json_string(s: &str) -> String {
    let plain = serde_json::Value::String(s.to_string()).to_string();
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A release JSON document, read without rewriting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseDoc {
    text: String,
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end (one past the closing quote) of the string starting at `b[i] == '"'`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The end of the JSON value starting at `b[i]`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                j += 1;
            }
            Some(j)
        }
    }
}

/// The members of the object spanning `span` of `text` (a well-formed JSON object): each key
/// and the byte range of its value.
fn members(text: &str, span: Range<usize>) -> Vec<(String, Range<usize>)> {
    let b = &text.as_bytes()[..span.end];
    let mut out = Vec::new();
    let mut i = skip_ws(b, span.start);
    if b.get(i) != Some(&b'{') {
        return out;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b'"') => {}
            _ => return out,
        }
        let Some(key_end) = string_end(b, i) else { return out };
        let key: String = serde_json::from_str(&text[i..key_end]).unwrap_or_default();
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return out;
        }
        let start = skip_ws(b, i + 1);
        let Some(end) = value_end(b, start) else { return out };
        out.push((key, start..end));
        i = skip_ws(b, end);
        if b.get(i) == Some(&b',') {
            i += 1;
        }
    }
}

impl ReleaseDoc {
    /// Reads a release JSON; `release` names it in errors.
    pub fn parse(release: &str, json: Vec<u8>) -> Result<ReleaseDoc, HelmError> {
        let text = String::from_utf8(json).map_err(|_| decode_err(release, "the release JSON is not UTF-8"))?;
        serde_json::from_str::<serde::de::IgnoredAny>(&text)
            .map_err(|e| decode_err(release, format!("the release is not JSON ({e})")))?;
        if !text.trim_start().starts_with('{') {
            return Err(decode_err(release, "the release JSON is not an object"));
        }
        Ok(ReleaseDoc { text })
    }

    /// Decodes a stored payload and reads it.
    pub fn from_payload(release: &str, payload: &[u8]) -> Result<ReleaseDoc, HelmError> {
        ReleaseDoc::parse(release, decode_payload(release, payload)?)
    }

    /// The JSON, exactly as stored (or as edited).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where the value at `path` is. A key repeated in one object means its last value, as Go's
    /// JSON decoder (Helm's) reads it.
    fn span(&self, path: &[&str]) -> Option<Range<usize>> {
        let mut span = 0..self.text.len();
        for key in path {
            span = members(&self.text, span).into_iter().rfind(|(k, _)| k == key)?.1;
        }
        Some(span)
    }

    /// The value at `path` (object keys from the top), parsed.
    pub fn get(&self, path: &[&str]) -> Option<serde_json::Value> {
        self.span(path).and_then(|s| serde_json::from_str(&self.text[s]).ok())
    }

    fn get_str(&self, path: &[&str]) -> Option<String> {
        self.get(path).and_then(|v| v.as_str().map(str::to_string))
    }

    pub fn name(&self) -> Option<String> {
        self.get_str(&["name"])
    }

    pub fn namespace(&self) -> Option<String> {
        self.get_str(&["namespace"])
    }

    pub fn version(&self) -> Option<u64> {
        self.get(&["version"]).and_then(|v| v.as_u64())
    }

    /// The rendered manifest (`helm get manifest`).
    pub fn manifest(&self) -> Option<String> {
        self.get_str(&["manifest"])
    }

    pub fn status(&self) -> Option<String> {
        self.get_str(&["info", "status"])
    }

    pub fn description(&self) -> Option<String> {
        self.get_str(&["info", "description"])
    }

    /// The chart's name (`chart.metadata.name`).
    pub fn chart_name(&self) -> Option<String> {
        self.get_str(&["chart", "metadata", "name"])
    }

    /// Manifests of the release's hooks.
    pub fn hook_manifests(&self) -> Vec<String> {
        let Some(serde_json::Value::Array(hooks)) = self.get(&["hooks"]) else { return Vec::new() };
        hooks.iter().filter_map(|h| h.get("manifest").and_then(|m| m.as_str()).map(str::to_string)).collect()
    }

    /// Sets member `key` of the object at `path` to the JSON `value` (its bytes as given):
    /// replaces the old value's bytes (the last, when the key is repeated: the one Helm reads),
    /// or appends the member when it is missing. Nothing else moves.
    pub fn set(&mut self, path: &[&str], key: &str, value: &str) -> bool {
        let Some(object) = self.span(path) else { return false };
        if let Some((_, old)) = members(&self.text, object.clone()).into_iter().rfind(|(k, _)| k == key) {
            self.text.replace_range(old, value);
            return true;
        }
        let body = self.text[object.clone()].trim_end();
        if !body.ends_with('}') {
            return false;
        }
        let close = object.start + body.len() - 1;
        let empty = self.text[object.start..close].trim_end().ends_with('{');
        let member = format!("{}{}:{value}", if empty { "" } else { "," }, go_json_string(key));
        self.text.insert_str(close, &member);
        true
    }
}

/// The labels and release JSON of the revision after `old`: version `next`, status deployed,
/// `description`, deployed at `now` (RFC 3339), its manifest `manifest`; every other byte of the
/// JSON as in `old`. The labels are `old`'s (so labels Helm or its user added stay) with
/// Helm's own set as its storage driver creates a record: `name`, `owner`, `status`, `version`
/// and `createdAt` (`now_unix`); `modifiedAt` belongs to an updated record and is left out.
pub fn next_revision(
    old_labels: &BTreeMap<String, String>,
    old: &ReleaseDoc,
    manifest: &str,
    next: u64,
    description: &str,
    now: &str,
    now_unix: i64,
) -> (BTreeMap<String, String>, ReleaseDoc) {
    let mut doc = old.clone();
    doc.set(&[], "manifest", &go_json_string(manifest));
    doc.set(&[], "version", &next.to_string());
    doc.set(&["info"], "status", "\"deployed\"");
    doc.set(&["info"], "description", &go_json_string(description));
    doc.set(&["info"], "last_deployed", &go_json_string(now));
    let mut labels = old_labels.clone();
    labels.remove("modifiedAt");
    labels.insert("createdAt".into(), now_unix.to_string());
    labels.insert("owner".into(), "helm".into());
    if let Some(name) = old.name().or_else(|| old_labels.get("name").cloned()) {
        labels.insert("name".into(), name);
    }
    labels.insert("status".into(), "deployed".into());
    labels.insert("version".into(), next.to_string());
    (labels, doc)
}

/// `old` marked superseded: its `status` label and its JSON's `info.status`, nothing else.
pub fn superseded(old_labels: &BTreeMap<String, String>, old: &ReleaseDoc) -> (BTreeMap<String, String>, ReleaseDoc) {
    let mut doc = old.clone();
    doc.set(&["info"], "status", "\"superseded\"");
    let mut labels = old_labels.clone();
    labels.insert("status".into(), "superseded".into());
    (labels, doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A release JSON as Go writes it: compact, Helm's field order, HTML-escaped strings.
    pub(crate) const RELEASE: &str = r#"{"name":"web","info":{"first_deployed":"2024-01-02T03:04:05.123456789Z","last_deployed":"2024-02-02T03:04:05Z","deleted":"","description":"Upgrade complete","status":"deployed","notes":"a \u003cb\u003e"},"chart":{"metadata":{"name":"web","version":"1.2.3"},"templates":[{"name":"templates/x.yaml","data":"e3sgLlZhbHVlcyB9fQ=="}],"values":{"replicas":1.50,"nested":{"a":[1,2,{"b":"}"}]}}},"config":{"password":"s3cr\"et","list":[ 1 , 2 ],"float":1e3},"manifest":"---\n# Source: web/templates/pdb.yaml\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\n","hooks":[{"name":"h","manifest":"apiVersion: batch/v1beta1\nkind: CronJob\n"}],"version":4,"namespace":"shop"}"#;

    #[test]
    fn payloads_decode_gzipped_and_plain_and_round_trip() {
        let encoded = encode_payload(RELEASE.as_bytes());
        assert_eq!(decode_payload("shop/web", &encoded).unwrap(), RELEASE.as_bytes());
        let plain = base64::engine::general_purpose::STANDARD.encode(RELEASE);
        assert_eq!(decode_payload("shop/web", plain.as_bytes()).unwrap(), RELEASE.as_bytes());
        let e = decode_payload("shop/web", b"not base64!").unwrap_err();
        assert!(e.to_string().starts_with("Helm release shop/web: cannot decode"), "{e}");
    }

    #[test]
    fn sizes_are_bounded_before_and_after_decompression() {
        let big = vec![b'A'; MAX_PAYLOAD_BYTES + 4];
        let e = decode_payload("shop/web", &big).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "Helm release shop/web: its stored payload is {} bytes, more than the {MAX_PAYLOAD_BYTES} bytes allowed",
                MAX_PAYLOAD_BYTES + 4
            )
        );
        // 65 MiB of zeros gzip to about 64 KiB.
        let bomb = encode_payload(&vec![0u8; MAX_RELEASE_JSON_BYTES as usize + 1024 * 1024]);
        assert!(bomb.len() < MAX_PAYLOAD_BYTES);
        let e = decode_payload("shop/web", &bomb).unwrap_err();
        assert_eq!(e, HelmError::JsonTooLarge { release: "shop/web".into(), limit: MAX_RELEASE_JSON_BYTES });
        assert!(e.to_string().contains("67108864 bytes"), "{e}");
    }

    #[test]
    fn fields_are_read_without_touching_the_text() {
        let doc = ReleaseDoc::parse("shop/web", RELEASE.as_bytes().to_vec()).unwrap();
        assert_eq!(doc.text(), RELEASE);
        assert_eq!(doc.name().as_deref(), Some("web"));
        assert_eq!(doc.namespace().as_deref(), Some("shop"));
        assert_eq!(doc.version(), Some(4));
        assert_eq!(doc.status().as_deref(), Some("deployed"));
        assert_eq!(doc.chart_name().as_deref(), Some("web"));
        assert!(doc.manifest().unwrap().contains("kind: PodDisruptionBudget"));
        assert_eq!(doc.hook_manifests().len(), 1);
        assert!(ReleaseDoc::parse("x", b"[1]".to_vec()).is_err());
        assert!(ReleaseDoc::parse("x", b"{\"a\":".to_vec()).is_err());
    }

    #[test]
    fn the_next_revision_changes_its_five_fields_and_keeps_every_other_byte() {
        let old = ReleaseDoc::parse("shop/web", RELEASE.as_bytes().to_vec()).unwrap();
        let labels: BTreeMap<String, String> = [
            ("owner", "helm"),
            ("name", "web"),
            ("status", "deployed"),
            ("version", "4"),
            ("modifiedAt", "1700000000"),
            ("team", "shop"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let manifest = "---\n# Source: web/templates/pdb.yaml\napiVersion: policy/v1\nkind: PodDisruptionBudget\n<&>";
        let (new_labels, new) = next_revision(
            &labels,
            &old,
            manifest,
            5,
            "Kubernetes deprecated API upgrade - DO NOT rollback from this version",
            "2026-12-03T14:00:00Z",
            1_780_000_000,
        );
        let expected = RELEASE
            .replace(r#""last_deployed":"2024-02-02T03:04:05Z""#, r#""last_deployed":"2026-12-03T14:00:00Z""#)
            .replace(
                r#""description":"Upgrade complete""#,
                r#""description":"Kubernetes deprecated API upgrade - DO NOT rollback from this version""#,
            )
            .replace(r#""version":4"#, r#""version":5"#)
            .replace(
                r#"apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\n""#,
                r#"apiVersion: policy/v1\nkind: PodDisruptionBudget\n\u003c\u0026\u003e""#,
            );
        assert_eq!(new.text(), expected);
        assert_eq!(new.manifest().as_deref(), Some(manifest));
        assert_eq!(new.version(), Some(5));
        assert_eq!(new_labels["version"], "5");
        assert_eq!(new_labels["status"], "deployed");
        assert_eq!(new_labels["team"], "shop");
        assert_eq!(new_labels["createdAt"], "1780000000");
        assert!(!new_labels.contains_key("modifiedAt"));

        let (old_labels, old_after) = superseded(&labels, &old);
        assert_eq!(old_after.text(), RELEASE.replace(r#""status":"deployed""#, r#""status":"superseded""#));
        let mut expected_labels = labels.clone();
        expected_labels.insert("status".into(), "superseded".into());
        assert_eq!(old_labels, expected_labels);
    }

    /// A repeated key means its last value, as Helm's decoder reads it: the manifest checked and
    /// the one rewritten are the one Helm would apply. (Found writing the `helm_release` fuzz
    /// target, whose harness holds this reader to a full JSON parse.)
    #[test]
    fn a_repeated_key_is_read_and_rewritten_as_its_last_value() {
        let text = r#"{"manifest":"kind: A\n","info":{"status":"failed","status":"deployed"},"manifest":"kind: B\n","version":1}"#;
        let doc = ReleaseDoc::parse("shop/web", text.as_bytes().to_vec()).unwrap();
        assert_eq!(doc.manifest().as_deref(), Some("kind: B\n"));
        assert_eq!(doc.status().as_deref(), Some("deployed"));
        let (_, next) = next_revision(&BTreeMap::new(), &doc, "kind: C\n", 2, "d", "now", 0);
        let full: serde_json::Value = serde_json::from_str(next.text()).unwrap();
        assert_eq!(full["manifest"], "kind: C\n", "{}", next.text());
        assert!(next.text().starts_with(r#"{"manifest":"kind: A\n","#), "{}", next.text());
    }

    #[test]
    fn a_missing_member_is_appended_and_whitespace_elsewhere_stays() {
        let text = "{ \"name\" : \"a\",\n  \"info\" : { },\n  \"version\" : 1 }\n";
        let mut doc = ReleaseDoc::parse("x", text.as_bytes().to_vec()).unwrap();
        assert!(doc.set(&["info"], "status", "\"deployed\""));
        assert!(doc.set(&["info"], "description", "\"d\""));
        assert!(doc.set(&[], "version", "2"));
        assert_eq!(
            doc.text(),
            "{ \"name\" : \"a\",\n  \"info\" : { \"status\":\"deployed\",\"description\":\"d\"},\n  \"version\" : 2 }\n"
        );
        assert!(!doc.set(&["missing"], "x", "1"));
    }
}
