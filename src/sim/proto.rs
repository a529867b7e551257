//! Just enough of Kubernetes' protobuf wire format to read the review requests kubectl sends as
//! `application/vnd.kubernetes.protobuf` (`kubectl auth can-i` does): the `k8s\0` envelope, the
//! `runtime.Unknown` wrapper, and the spec fields of SelfSubjectAccessReview,
//! SelfSubjectRulesReview, SelfSubjectReview and TokenRequest (`kubectl create token` sends
//! one), turned into the JSON those handlers read. Every
//! length is checked against the input; malformed input is an error, never a panic.

use serde_json::{Map, Value, json};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

enum Field<'a> {
    /// A fixed-width value: none of the fields we read is one.
    Scalar,
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err("varint too long".into())
}

/// The fields of one message, in order.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(varint(buf, &mut pos)?),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|_| "length too large")?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len()).ok_or("length past the end")?;
                let bytes = &buf[pos..end];
                pos = end;
                Field::Bytes(bytes)
            }
            1 => {
                pos = pos.checked_add(8).filter(|e| *e <= buf.len()).ok_or("truncated fixed64")?;
                Field::Scalar
            }
            5 => {
                pos = pos.checked_add(4).filter(|e| *e <= buf.len()).ok_or("truncated fixed32")?;
                Field::Scalar
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        out.push((number, field));
    }
    Ok(out)
}

fn bytes_of<'a>(fs: &[(u64, Field<'a>)], number: u64) -> Option<&'a [u8]> {
    fs.iter().rev().find_map(|(n, f)| match f {
        Field::Bytes(b) if *n == number => Some(*b),
        _ => None,
    })
}

fn strings(buf: &[u8], names: &[(u64, &str)]) -> Result<Map<String, Value>, String> {
    let fs = fields(buf)?;
    let mut out = Map::new();
    for (number, name) in names {
        if let Some(b) = bytes_of(&fs, *number) {
            let s = std::str::from_utf8(b).map_err(|_| format!("field {name} is not UTF-8"))?;
            out.insert((*name).to_string(), json!(s));
        }
    }
    Ok(out)
}

/// Decodes an enveloped TokenRequest to its JSON form: `spec.audiences` (field 1, repeated) and
/// `spec.expirationSeconds` (field 4), the fields the handler reads.
pub fn decode_token_request(body: &[u8]) -> Result<Value, String> {
    let inner = body.strip_prefix(MAGIC).ok_or("the body lacks the k8s protobuf envelope")?;
    let unknown = fields(inner)?;
    let type_meta = strings(bytes_of(&unknown, 1).unwrap_or_default(), &[(1, "apiVersion"), (2, "kind")])?;
    if type_meta.get("kind").and_then(Value::as_str) != Some("TokenRequest") {
        return Err("the protobuf body is not a TokenRequest".into());
    }
    let object = fields(bytes_of(&unknown, 2).unwrap_or_default())?;
    let spec = fields(bytes_of(&object, 2).unwrap_or_default())?;
    let mut audiences = Vec::new();
    let mut seconds = None;
    for (number, field) in &spec {
        match (number, field) {
            (1, Field::Bytes(b)) => {
                audiences.push(std::str::from_utf8(b).map_err(|_| "an audience is not UTF-8")?.to_string())
            }
            // int64 on the wire: a negative value is its two's complement.
            (4, Field::Varint(v)) => seconds = Some(*v as i64),
            _ => {}
        }
    }
    Ok(json!({
        "apiVersion": type_meta.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": "TokenRequest",
        "spec": {"audiences": audiences, "expirationSeconds": seconds},
    }))
}

/// Decodes an enveloped review request to its JSON form (apiVersion, kind, spec).
pub fn decode_review(body: &[u8]) -> Result<Value, String> {
    let inner = body.strip_prefix(MAGIC).ok_or("the body lacks the k8s protobuf envelope")?;
    let unknown = fields(inner)?;
    let type_meta = strings(bytes_of(&unknown, 1).unwrap_or_default(), &[(1, "apiVersion"), (2, "kind")])?;
    let raw = bytes_of(&unknown, 2).unwrap_or_default();
    let kind = type_meta.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    let object = fields(raw)?;
    let spec_bytes = bytes_of(&object, 2).unwrap_or_default();
    let spec = match kind.as_str() {
        "SelfSubjectAccessReview" => {
            let spec = fields(spec_bytes)?;
            let mut out = Map::new();
            if let Some(r) = bytes_of(&spec, 1) {
                let names = [
                    (1, "namespace"),
                    (2, "verb"),
                    (3, "group"),
                    (4, "version"),
                    (5, "resource"),
                    (6, "subresource"),
                    (7, "name"),
                ];
                out.insert("resourceAttributes".into(), Value::Object(strings(r, &names)?));
            }
            if let Some(n) = bytes_of(&spec, 2) {
                out.insert("nonResourceAttributes".into(), Value::Object(strings(n, &[(1, "path"), (2, "verb")])?));
            }
            Value::Object(out)
        }
        "SelfSubjectRulesReview" => Value::Object(strings(spec_bytes, &[(1, "namespace")])?),
        "SelfSubjectReview" => json!({}),
        other => return Err(format!("protobuf bodies of kind '{other}' are not supported; send application/json")),
    };
    Ok(json!({
        "apiVersion": type_meta.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": kind,
        "metadata": {},
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::try_from((number << 3) | 2).unwrap(), u8::try_from(bytes.len()).unwrap()];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_rules_review_and_an_access_review_decode() {
        let type_meta = [field(1, b"authorization.k8s.io/v1"), field(2, b"SelfSubjectRulesReview")].concat();
        let object = [field(1, b""), field(2, &field(1, b"shop"))].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &object)].concat();
        let v = decode_review(&body).unwrap();
        assert_eq!(v["kind"], "SelfSubjectRulesReview");
        assert_eq!(v["spec"]["namespace"], "shop");

        let attrs = [field(1, b"shop"), field(2, b"create"), field(5, b"pods"), field(6, b"eviction")].concat();
        let type_meta = [field(1, b"authorization.k8s.io/v1"), field(2, b"SelfSubjectAccessReview")].concat();
        let object = field(2, &field(1, &attrs));
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &object)].concat();
        let v = decode_review(&body).unwrap();
        assert_eq!(v["spec"]["resourceAttributes"]["subresource"], "eviction");
        assert_eq!(v["spec"]["resourceAttributes"]["verb"], "create");
    }

    #[test]
    fn a_token_request_decodes_its_audiences_and_expiry() {
        let mut spec = field(1, b"vault");
        spec.extend(field(1, b"https://kubernetes.default.svc.cluster.local"));
        spec.extend([4 << 3, 0x90, 0x1c]); // expirationSeconds: 3600
        let object = field(2, &spec);
        let mut type_meta = field(1, b"authentication.k8s.io/v1");
        type_meta.extend(field(2, b"TokenRequest"));
        let mut unknown = field(1, &type_meta);
        unknown.extend(field(2, &object));
        let body = [MAGIC, &unknown[..]].concat();
        let v = decode_token_request(&body).unwrap();
        assert_eq!(v["spec"]["expirationSeconds"], 3600);
        assert_eq!(v["spec"]["audiences"], json!(["vault", "https://kubernetes.default.svc.cluster.local"]));
        assert!(decode_token_request(b"k8s\0\x0a\x05").is_err());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(decode_review(b"{}").is_err());
        assert!(decode_review(b"k8s\0\x0a\xff").is_err());
        assert!(decode_review(b"k8s\0\x0a\x05ab").is_err());
        let type_meta = [field(1, b"v1"), field(2, b"Pod")].concat();
        assert!(decode_review(&[MAGIC.to_vec(), field(1, &type_meta)].concat()).is_err());
    }
}
