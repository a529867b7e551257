//! API errors as the apiserver sends them: an HTTP code and a `Status` body.

use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `Null` when the apiserver sends none; an object (even empty) is sent as it is.
    pub details: Box<Value>,
    /// Seconds for a `Retry-After` header (never set on PDB 429s: kubectl must see them).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String, details: Value) -> Self {
        Self { code, reason, message, details: Box::new(details), retry_after: None }
    }

    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{resource} \"{name}\" not found"), json!({"name": name, "kind": resource}))
    }

    pub fn not_found_path(path: &str) -> Self {
        Self::new(404, "NotFound", format!("the server could not find the requested resource ({path})"), json!({}))
    }

    pub fn already_exists(resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{resource} \"{name}\" already exists"),
            json!({"name": name, "kind": resource}),
        )
    }

    pub fn conflict(resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
            json!({"name": name, "kind": resource}),
        )
    }

    /// A delete whose preconditions (UID, resourceVersion) no longer match the object.
    pub fn precondition_failed(resource: &str, name: &str, detail: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} \"{name}\": Precondition failed: {detail}"),
            json!({"name": name, "kind": resource}),
        )
    }

    pub fn invalid(resource: &str, name: &str, message: &str) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("{resource} \"{name}\" is invalid: {message}"),
            json!({"name": name, "kind": resource}),
        )
    }

    /// A field the apiserver's validation refuses, worded as it does: the kind (not the resource)
    /// names the object, and one cause names the field.
    pub fn invalid_field(kind: &str, name: &str, field: &str, reason: &str, detail: &str) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {field}: {detail}"),
            json!({"name": name, "kind": kind, "causes": [{"reason": reason, "message": detail, "field": field}]}),
        )
    }

    /// Several fields refused at once (`ValidateJob` and kin), each a cause with its field.
    pub fn invalid_causes(kind: &str, name: &str, group: &str, message: String, causes: Vec<Value>) -> Self {
        Self::new(422, "Invalid", message, json!({"name": name, "group": group, "kind": kind, "causes": causes}))
    }

    /// A JSON patch that does not apply: the apiserver answers 422 with a generic message and
    /// no details of which operation failed.
    pub fn patch_failed() -> Self {
        Self::new(422, "Invalid", "the server rejected our request due to an error in our request".into(), json!({}))
    }

    /// An eviction whose UID precondition names another pod than the one stored (worded as the
    /// eviction subresource words it, with the kind, not the resource).
    pub fn eviction_uid_mismatch(name: &str, given: &str, stored: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on Pod \"{name}\": the UID in the precondition ({given}) does not match the UID in record ({stored}). The object might have been deleted and then recreated"
            ),
            json!({"name": name, "kind": "Pod"}),
        )
    }

    /// The same for a resourceVersion precondition.
    pub fn eviction_rv_mismatch(name: &str, given: &str, stored: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on Pod \"{name}\": the ResourceVersion in the precondition ({given}) does not match the ResourceVersion in record ({stored}). The object might have been modified"
            ),
            json!({"name": name, "kind": "Pod"}),
        )
    }

    pub fn bad_request(message: &str) -> Self {
        Self::new(400, "BadRequest", message.to_string(), Value::Null)
    }

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(405, "MethodNotAllowed", format!("the server does not allow method {method} on {path}"), json!({}))
    }

    /// A body in a media type the resource does not decode, as the apiserver's input negotiation
    /// refuses it (the message lists what it accepts; no details).
    pub fn unsupported_media(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
            Value::Null,
        )
    }

    /// A media type the apiserver accepts that the simulator does not implement, said plainly.
    pub fn new_unsupported(message: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", message.to_string(), Value::Null)
    }

    /// A PATCH whose Content-Type is no patch type: refused by the router before any handler,
    /// worded as the apiserver's router words it.
    pub fn unsupported_patch_media() -> Self {
        Self::new(415, "UnsupportedMediaType", "415: Unsupported Media Type".into(), json!({}))
    }

    pub fn gone(rv: u64) -> Self {
        Self::new(410, "Expired", format!("too old resource version: {rv}"), Value::Null)
    }

    /// A read at a resourceVersion the store has not reached within the apiserver's 3 s wait
    /// (`NewTooLargeResourceVersionError`): 504 Timeout, retry after a second.
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        Self::new(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
            json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
        )
        .with_retry_after(1)
    }

    pub fn gone_continue() -> Self {
        Self::new(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
            Value::Null,
        )
    }

    pub fn too_many_requests(message: String, details: Value) -> Self {
        Self::new(429, "TooManyRequests", message, details)
    }

    pub fn internal(message: String) -> Self {
        Self::new(500, "InternalError", message, Value::Null)
    }

    /// A 500 as the eviction handler returns it for a pod under two budgets: no reason field.
    pub fn internal_unreasoned(message: String) -> Self {
        Self::new(500, "", message, Value::Null)
    }

    pub fn unavailable(message: &str) -> Self {
        Self::new(503, "ServiceUnavailable", message.to_string(), Value::Null)
    }

    /// The apiserver's answer to a credential it does not accept (no details, as it sends it).
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized".into(), Value::Null)
    }

    /// RBAC's refusal: the message names user, verb and resource; details name the object.
    pub fn forbidden(message: String, group: &str, kind: &str, name: &str) -> Self {
        let mut details = serde_json::Map::new();
        if !name.is_empty() {
            details.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            details.insert("group".into(), json!(group));
        }
        if !kind.is_empty() {
            details.insert("kind".into(), json!(kind));
        }
        Self::new(403, "Forbidden", message, Value::Object(details))
    }

    /// A create in a namespace being deleted, as the NamespaceLifecycle admission plugin
    /// refuses it.
    pub fn namespace_terminating(resource: &str, name: &str, namespace: &str) -> Self {
        let mut details = serde_json::Map::new();
        details.insert("name".into(), json!(name));
        details.insert("kind".into(), json!(resource));
        details.insert(
            "causes".into(),
            json!([{"reason": "NamespaceTerminating", "message": format!("namespace {namespace} is being terminated"), "field": "metadata.namespace"}]),
        );
        Self::new(
            403,
            "Forbidden",
            format!(
                "{resource} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated"
            ),
            Value::Object(details),
        )
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn status_json(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        // An error the apiserver builds without a reason (a plain 500 from a handler) has none.
        if self.reason.is_empty() {
            v.as_object_mut().expect("a JSON object").remove("reason");
        }
        // Go omits a nil details pointer and writes an empty one as `{}`: Null is the former.
        if self.details.is_object() {
            v["details"] = (*self.details).clone();
        }
        v
    }
}
