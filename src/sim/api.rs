//! The HTTP face of the simulator: routing, content negotiation and the REST verbs.
//!
//! One handler parses every path (`/api/v1/...`, `/apis/G/V/...`, discovery, health, metrics and
//! the `/sim/...` control endpoints) so that core, grouped, deprecated and generic resources share
//! one code path. JSON answers always carry `Content-Type: application/json`; errors are `Status`
//! bodies; Table answers are built when the client asks for them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::authn::{self, ConnInfo};
use super::clock::now_rfc3339;
use super::rbac::{self, Attributes, UserInfo};
use super::registry::ResourceDef;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Change, EventType, StorageKey, Stored};
use super::{Sim, patch, pdb, tables};

/// Largest request body accepted.
const MAX_BODY: usize = 3 * 1024 * 1024;
/// Largest page a list returns regardless of `limit`.
const MAX_PAGE: usize = 100_000;

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new().fallback(handle).with_state(sim)
}

fn json_response(code: u16, body: &Value) -> Response {
    bytes_response(code, Bytes::from(serde_json::to_vec(body).unwrap_or_default()), "application/json")
}

fn bytes_response(code: u16, body: Bytes, content_type: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.status_json());
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn text_response(code: u16, text: String) -> Response {
    bytes_response(code, Bytes::from(text), "text/plain; charset=utf-8")
}

/// A parsed resource path.
#[derive(Debug, Clone, Default)]
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let mut t = Target { group: group.into(), version: version.into(), ..Default::default() };
    let namespaced =
        rest.first() == Some(&"namespaces") && rest.len() >= 3 && !matches!(rest[2], "status" | "finalize");
    let rest = if namespaced {
        t.namespace = Some(rest[1].to_string());
        &rest[2..]
    } else {
        rest
    };
    t.resource = rest.first()?.to_string();
    t.name = rest.get(1).map(|s| s.to_string());
    t.sub = rest.get(2).map(|s| s.to_string());
    if rest.len() > 3 {
        return None;
    }
    Some(t)
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes()).into_owned().collect()
}

const JSON: &str = "application/json";
const YAML: &str = "application/yaml";

/// The media type of a request body as the apiserver's input negotiation reads it: type and
/// subtype, lower-cased, without parameters; `None` without a Content-Type (JSON is assumed).
fn body_media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?;
    let text = String::from_utf8_lossy(value.as_bytes());
    let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    (!text.trim().is_empty()).then_some(essence)
}

/// The patch types the simulator applies (server-side apply is not among them).
const PATCH_TYPES: [&str; 3] =
    ["application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"];

/// Checks a body's media type as the apiserver does before it reads one, and turns YAML into
/// JSON. A create, update or delete body must be in a media type the resource decodes (JSON,
/// YAML, and protobuf for built-in kinds; JSON and YAML for custom resources), else 415 with the
/// list; a patch must name a patch type, else the router's 415.
fn negotiate_body(method: &Method, def: &ResourceDef, headers: &HeaderMap, body: Bytes) -> Result<Bytes, ApiError> {
    let media = body_media_type(headers);
    if *method == Method::PATCH {
        // The router compares the type without parameters, case-sensitively; no Content-Type
        // is application/octet-stream to it.
        let given = headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).split(';').next().unwrap_or_default().trim().to_string())
            .unwrap_or_default();
        return match given.as_str() {
            t if PATCH_TYPES.contains(&t) => Ok(body),
            "application/apply-patch+yaml" => Err(ApiError::new_unsupported(
                "server-side apply (application/apply-patch+yaml) is not supported by the simulator; use a JSON, merge or strategic merge patch",
            )),
            _ => Err(ApiError::unsupported_patch_media()),
        };
    }
    let reads_body = matches!(*method, Method::POST | Method::PUT) || (*method == Method::DELETE && !body.is_empty());
    if !reads_body {
        return Ok(body);
    }
    let accepted: &[&str] = if def.custom { &[JSON, YAML] } else { &[JSON, YAML, super::proto::MEDIA_TYPE] };
    match media.as_deref() {
        None | Some(JSON) => Ok(body),
        Some(YAML) => {
            let text = std::str::from_utf8(&body)
                .map_err(|_| ApiError::bad_request("error converting YAML to JSON: the body is not UTF-8"))?;
            let options = serde_saphyr::options! { with_snippet: false };
            let v: Value = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
                ApiError::bad_request(&format!(
                    "error converting YAML to JSON: {}",
                    e.to_string().lines().next().unwrap_or_default()
                ))
            })?;
            Ok(Bytes::from(serde_json::to_vec(&v).unwrap_or_default()))
        }
        Some(m) if accepted.contains(&m) => Ok(body),
        Some(_) => Err(ApiError::unsupported_media(accepted)),
    }
}

fn accepts(headers: &HeaderMap, needle: &str) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains(needle))
}

/// The path as Go's HTTP server hands it to the apiserver: every percent-escape decoded (`%2D`
/// is `-`; `%2F` is a `/`, which then separates segments there as here, so no name can hold
/// one). `None` for a malformed escape, which Go's server refuses before any handler sees it.
fn decode_path(raw: &str) -> Option<String> {
    if !raw.contains('%') {
        return Some(raw.to_string());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Subresources a real apiserver routes for a resource, implemented here or not: a name outside
/// these is a path no route serves (404), one inside that the simulator does not serve for the
/// method is 405.
fn routed_subresource(def: &ResourceDef, sub: &str) -> bool {
    def.subresources.iter().any(|s| s.name == sub)
        || match (def.group.as_str(), def.resource.as_str()) {
            ("", "pods") => matches!(
                sub,
                "log" | "exec" | "attach" | "portforward" | "proxy" | "binding" | "ephemeralcontainers" | "resize"
            ),
            ("", "nodes" | "services") => sub == "proxy",
            ("", "serviceaccounts") => sub == "token",
            _ => false,
        }
}

async fn handle(State(sim): State<Arc<Sim>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(path) = decode_path(parts.uri.path()) else {
        // What Go's server answers for a URL it cannot parse, before the apiserver sees it.
        return text_response(400, "400 Bad Request".into());
    };
    let query = query_map(parts.uri.query());
    let method = parts.method.clone();
    let headers = parts.headers.clone();

    if path.starts_with("/sim/") {
        let body = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(b) => b,
            Err(_) => return error_response(&ApiError::bad_request("request body too large")),
        };
        return control(&sim, &method, &path, &body);
    }
    let faults = sim.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.latency_ms)).await;
    }
    // Authentication, then authorization, before anything else looks at the request: an
    // unauthorized client learns nothing, not even whether a resource exists.
    let conn = parts.extensions.get::<Arc<ConnInfo>>().cloned();
    let Ok(user) = authn::authenticate(conn.as_deref(), &headers, &sim.tokens, &sim.store) else {
        sim.stats.unauthorized();
        return error_response(&ApiError::unauthorized());
    };
    let authorizer = sim.authorizer();
    let user = match authn::impersonate(user, &headers, &authorizer) {
        Ok(u) => u,
        Err(authn::ImpersonationRefused(message)) => {
            return error_response(&ApiError::forbidden(message, "", "", ""));
        }
    };
    let attrs = request_attributes(&method, &path, &query);
    let decision = authorizer.authorize(&user, &attrs);
    sim.stats.authorization(&user.name, &attrs, decision.allowed);
    if !decision.allowed {
        let mut message = rbac::forbidden_message(&user, &attrs);
        if !decision.reason.is_empty() {
            message = format!("{message}: {}", decision.reason);
        }
        return error_response(&match &attrs {
            Attributes::Resource { group, resource, name, .. } => ApiError::forbidden(message, group, resource, name),
            Attributes::NonResource { .. } => ApiError::forbidden(message, "", "", ""),
        });
    }
    match path.as_str() {
        "/version" => return version(&sim),
        "/healthz" | "/livez" => return text_response(200, "ok".into()),
        "/readyz" => {
            return if sim.in_blip() {
                text_response(503, "[-]etcd failed: apiserver restarting\nreadyz check failed".into())
            } else {
                text_response(200, "ok".into())
            };
        }
        "/metrics" => {
            return bytes_response(
                200,
                Bytes::from(sim.stats.metrics_text()),
                "text/plain; version=0.0.4; charset=utf-8",
            );
        }
        _ => {}
    }
    if sim.in_blip() {
        return error_response(&ApiError::unavailable("apiserver is restarting").with_retry_after(1));
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let registry = sim.registry();
    let target = match segs.as_slice() {
        ["api"] => return discovery_root(&sim, &headers, true),
        ["apis"] => return discovery_root(&sim, &headers, false),
        ["api", v] => return group_version(&registry, "", v),
        ["apis", g, v] => return group_version(&registry, g, v),
        ["apis", g] => {
            return match registry.api_group_list()["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|x| x["name"] == *g))
            {
                Some(group) => {
                    let mut g = group.clone();
                    g["kind"] = json!("APIGroup");
                    g["apiVersion"] = json!("v1");
                    json_response(200, &g)
                }
                None => error_response(&ApiError::not_found_path(&path)),
            };
        }
        ["api", v, rest @ ..] => parse_target("", v, rest),
        ["apis", g, v, rest @ ..] => parse_target(g, v, rest),
        _ => None,
    };
    let Some(target) = target else {
        return error_response(&ApiError::not_found_path(&path));
    };
    let Some(def) = registry.find(&target.group, &target.version, &target.resource).cloned() else {
        return error_response(&ApiError::not_found_path(&path));
    };
    // A cluster-scoped resource has no namespaced path (the apiserver answers 404): authorizing
    // it by the path's namespace would let a namespace's RoleBinding reach cluster objects.
    if target.namespace.is_some() && !def.namespaced {
        return error_response(&ApiError::not_found_path(&path));
    }
    let sub = target.sub.clone().unwrap_or_default();
    if let Some(removed) = &def.deprecated {
        sim.stats.deprecated_request(&def.group, &def.version, &def.resource, &sub, removed);
    }
    let verb = verb_of(&method, &target, &query, &sub);
    sim.stats.request(verb, &def.resource);
    if let Some(rule) = faults.pick_error(verb, &def.resource, &sim.fault_counter) {
        sim.stats.injected(rule.code);
        if rule.code == 429 {
            sim.stats.sent_429(false);
        }
        let mut e = match rule.code {
            429 => ApiError::too_many_requests(
                "the server has received too many requests and has asked us to try again later".into(),
                json!({}),
            ),
            503 => ApiError::unavailable("the server is currently unable to handle the request"),
            _ => ApiError::internal(
                "an error on the server (\"injected fault\") has prevented the request from succeeding".into(),
            ),
        };
        if let Some(secs) = rule.retry_after {
            e = e.with_retry_after(secs);
        }
        return error_response(&e);
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return error_response(&ApiError::bad_request(&format!("request body larger than {MAX_BODY} bytes"))),
    };
    let body = match negotiate_body(&method, &def, &headers, body) {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    if def.review {
        return match (&method, target.name.is_some()) {
            (&Method::POST, false) => match review(&def, &headers, &body, &user, &authorizer) {
                Ok(r) => r,
                Err(e) => error_response(&e),
            },
            _ => error_response(&ApiError::method_not_allowed(method.as_str(), &path)),
        };
    }
    // Kubernetes protobuf is read only for the access reviews (as `kubectl auth` sends them) and
    // TokenRequests (as `kubectl create token` sends them); anywhere else say so plainly rather
    // than call the body malformed JSON.
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(super::proto::MEDIA_TYPE));
    let body = if protobuf && method == Method::POST && def.resource == "serviceaccounts" && sub == "token" {
        match super::proto::decode_token_request(&body) {
            Ok(v) => Bytes::from(v.to_string()),
            Err(e) => return error_response(&ApiError::bad_request(&e)),
        }
    } else if protobuf && !body.is_empty() {
        // The apiserver decodes protobuf bodies of every built-in kind; the simulator decodes
        // only the ones above, and refuses the rest as a body it cannot read.
        return error_response(&ApiError::unsupported_media(&[JSON, YAML]));
    } else {
        body
    };
    // RBAC's escalation check on writes to roles and bindings (no-op for everything else).
    let guard = |obj: &Value| escalation(&sim, &authorizer, &user, &def, &target, obj);
    // NamespaceLifecycle: nothing new (objects, evictions) in a namespace being deleted.
    if method == Method::POST
        && let Some(ns) = target.namespace.as_deref()
        && namespace_terminating(&sim, ns)
    {
        let name = target.name.clone().unwrap_or_default();
        return error_response(&ApiError::namespace_terminating(&def.resource, &name, ns));
    }
    // A list or get at a resourceVersion the store has not reached waits for it (a watch from
    // the future is accepted and stays silent until the store passes it, as the watch cache does).
    let watching = query.get("watch").is_some_and(|w| w == "1" || w == "true");
    if method == Method::GET
        && !watching
        && matches!(sub.as_str(), "" | "status")
        && let Ok(Some(rv)) = resource_version_param(&query)
        && let Err(e) = wait_fresh(&sim, rv).await
    {
        return error_response(&e);
    }
    let result = match (&method, target.name.is_some(), sub.as_str()) {
        (&Method::GET, false, _) if query.get("watch").is_some_and(|w| w == "1" || w == "true") => {
            return watch(sim.clone(), def, target, query).await;
        }
        (&Method::GET, false, _) => list(&sim, &def, &target, &query, &headers),
        (&Method::GET, true, "") | (&Method::GET, true, "status") => get(&sim, &def, &target, &query, &headers),
        (&Method::GET, true, "log") if def.resource == "pods" => return pod_log(sim.clone(), &target, &query),
        (&Method::POST, false, _) => {
            parse_body(&body).and_then(|o| guard(&o)).and_then(|()| create(&sim, &def, &target, &body, dry_run))
        }
        (&Method::POST, true, "token") if def.resource == "serviceaccounts" && def.group.is_empty() => {
            super::token::create(&sim, &target_ns(&target), target.name.as_deref().unwrap_or_default(), &body, dry_run)
                .map(|(code, v)| json_response(code, &v))
        }
        (&Method::POST, true, "eviction") if def.resource == "pods" => {
            pdb::evict(&sim, &target_ns(&target), target.name.as_deref().unwrap_or_default(), &body, dry_run)
        }
        (&Method::PUT, true, "" | "status") => {
            parse_body(&body).and_then(|o| guard(&o)).and_then(|()| update(&sim, &def, &target, &body, dry_run, &sub))
        }
        (&Method::PATCH, true, "" | "status") => {
            patch_object(&sim, &def, &target, &headers, &body, dry_run, &sub, &guard)
        }
        (&Method::DELETE, true, "") => delete(&sim, &def, &target, &query, &body, dry_run),
        (&Method::DELETE, false, _) => delete_collection(&sim, &def, &target, &query, dry_run),
        (&Method::GET | &Method::PUT | &Method::PATCH, true, "scale") => {
            scale(&sim, &def, &target, &method, &body, &headers, dry_run)
        }
        _ if !sub.is_empty() && !routed_subresource(&def, &sub) => Err(ApiError::not_found_path(&path)),
        _ => Err(ApiError::method_not_allowed(method.as_str(), &path)),
    };
    if def.group == "rbac.authorization.k8s.io" && method != Method::GET && !dry_run && result.is_ok() {
        sim.rbac_changed();
    }
    match result {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// RBAC's rule against privilege escalation, as the apiserver's RBAC storage enforces it: a Role
/// or ClusterRole may only be written by someone who holds every permission it grants (or may
/// `escalate` it), and a binding only by someone who holds every permission of the role it
/// references in the binding's scope (or may `bind` that role). `system:masters` is exempt.
fn escalation(
    sim: &Sim,
    authz: &rbac::Authorizer,
    user: &UserInfo,
    def: &ResourceDef,
    target: &Target,
    obj: &Value,
) -> Result<(), ApiError> {
    if def.group != "rbac.authorization.k8s.io" || user.groups.iter().any(|g| g == rbac::SUPERUSER_GROUP) {
        return Ok(());
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).or(target.name.as_deref()).unwrap_or_default();
    let may = |verb: &str, resource: &str, name: &str| {
        authz.authorize(user, &Attributes::resource(verb, &def.group, resource, &namespace, name)).allowed
    };
    let (rules, exempt, what) = match def.resource.as_str() {
        "roles" | "clusterroles" => {
            (obj.get("rules").cloned().unwrap_or(Value::Null), may("escalate", &def.resource, name), name.to_string())
        }
        "rolebindings" | "clusterrolebindings" => {
            let kind = obj.pointer("/roleRef/kind").and_then(Value::as_str).unwrap_or_default();
            let role = obj.pointer("/roleRef/name").and_then(Value::as_str).unwrap_or_default();
            let (resource, key_ns) = match kind {
                "ClusterRole" => ("clusterroles", String::new()),
                _ => ("roles", namespace.clone()),
            };
            let stored = sim.store.get(&super::store::StorageKey::new(def.group.clone(), resource), &key_ns, role);
            let rules = stored.map(|o| o.value().get("rules").cloned().unwrap_or(Value::Null)).unwrap_or(Value::Null);
            (rules, may("bind", resource, role), format!("{kind} {role}"))
        }
        _ => return Ok(()),
    };
    if exempt {
        return Ok(());
    }
    // Rules that do not decode grant nothing to anyone, but are refused here rather than let
    // through unchecked (the apiserver refuses such a body when it decodes it).
    let rules: Vec<rbac::PolicyRule> = serde_json::from_value::<Option<Vec<rbac::PolicyRule>>>(rules)
        .map_err(|e| ApiError::bad_request(&format!("rules of {what}: {e}")))?
        .unwrap_or_default();
    match authz.first_unheld(user, &rules, &namespace) {
        Some(missing) => Err(escalation_refused(user, def, name, &what, &missing)),
        None => Ok(()),
    }
}

fn escalation_refused(user: &UserInfo, def: &ResourceDef, name: &str, what: &str, missing: &str) -> ApiError {
    ApiError::forbidden(
        format!(
            "{}.{} \"{name}\" is forbidden: user \"{}\" (groups={:?}) is attempting to grant RBAC permissions not currently held ({what}): {missing}",
            def.resource, def.group, user.name, user.groups
        ),
        &def.group,
        &def.resource,
        name,
    )
}

/// What the request asks for, as kube-apiserver's RequestInfo resolves it for the authorizer:
/// discovery, health, version and metrics are non-resource paths; everything under
/// `/api/v1/...` or `/apis/G/V/...` with a resource is a resource request, with the verb from the
/// HTTP method (list vs watch, delete vs deletecollection) and the name from a single
/// `metadata.name` field selector on a list or watch.
fn request_attributes(method: &Method, path: &str, query: &HashMap<String, String>) -> Attributes {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str];
    let group: &str;
    match segs.as_slice() {
        ["api", _, r @ ..] if !r.is_empty() => {
            group = "";
            rest = r;
        }
        ["apis", g, _, r @ ..] if !r.is_empty() => {
            group = g;
            rest = r;
        }
        _ => {
            return Attributes::NonResource { verb: method.as_str().to_ascii_lowercase(), path: path.to_string() };
        }
    }
    let mut namespace = "";
    let mut parts = rest;
    if parts[0] == "namespaces" && parts.len() > 1 {
        namespace = parts[1];
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts = &parts[2..];
        }
    }
    let resource = parts[0];
    let mut name = parts.get(1).copied().unwrap_or_default().to_string();
    let subresource = parts.get(2).copied().unwrap_or_default();
    let watch = query.get("watch").is_some_and(|w| w == "1" || w == "true");
    let verb = match *method {
        Method::GET | Method::HEAD if watch && name.is_empty() => "watch",
        Method::GET | Method::HEAD if name.is_empty() => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_empty() => "deletecollection",
        Method::DELETE => "delete",
        _ => "",
    };
    if name.is_empty()
        && matches!(verb, "list" | "watch")
        && let Some(n) = query.get("fieldSelector").and_then(|f| f.strip_prefix("metadata.name="))
        && !n.contains(',')
    {
        name = n.to_string();
    }
    Attributes::Resource {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        subresource: subresource.into(),
        namespace: namespace.into(),
        name,
    }
}

/// SelfSubjectAccessReview, SelfSubjectRulesReview and SelfSubjectReview: answered from the
/// same authorizer that guards every request, for the user who asks.
fn review(
    def: &ResourceDef,
    headers: &HeaderMap,
    body: &Bytes,
    user: &UserInfo,
    authz: &rbac::Authorizer,
) -> Result<Response, ApiError> {
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(super::proto::MEDIA_TYPE));
    let mut obj = if protobuf {
        super::proto::decode_review(body).map_err(|e| ApiError::bad_request(&format!("the protobuf body: {e}")))?
    } else {
        parse_body(body)?
    };
    if !obj.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let status = match def.resource.as_str() {
        "selfsubjectaccessreviews" => {
            let attrs = if let Some(r) = spec.get("resourceAttributes") {
                Attributes::Resource {
                    verb: text(r, "verb"),
                    group: text(r, "group"),
                    resource: text(r, "resource"),
                    subresource: text(r, "subresource"),
                    namespace: text(r, "namespace"),
                    name: text(r, "name"),
                }
            } else if let Some(n) = spec.get("nonResourceAttributes") {
                Attributes::NonResource { verb: text(n, "verb"), path: text(n, "path") }
            } else {
                return Err(ApiError::invalid(
                    &def.resource,
                    "",
                    "spec.resourceAttributes: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            };
            let d = authz.authorize(user, &attrs);
            let mut st = json!({"allowed": d.allowed});
            if !d.reason.is_empty() {
                st["reason"] = json!(d.reason);
            }
            st
        }
        "selfsubjectrulesreviews" => {
            let ns = text(&spec, "namespace");
            let (resource_rules, non_resource_rules) = authz.rules_for(user, &ns);
            json!({
                "resourceRules": resource_rules,
                "nonResourceRules": non_resource_rules,
                "incomplete": false,
            })
        }
        _ => json!({"userInfo": {"username": user.name, "groups": user.groups}}),
    };
    obj["status"] = status;
    obj["kind"] = json!(def.kind);
    obj["apiVersion"] = json!(def.api_version());
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    Ok(json_response(201, &obj))
}

fn target_ns(t: &Target) -> String {
    t.namespace.clone().unwrap_or_default()
}

fn verb_of(method: &Method, t: &Target, query: &HashMap<String, String>, sub: &str) -> &'static str {
    match (method, t.name.is_some()) {
        (&Method::GET, false) if query.get("watch").is_some_and(|w| w == "1" || w == "true") => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, true) if sub == "eviction" => "evict",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "other",
    }
}

fn version(sim: &Sim) -> Response {
    let v = sim.server_version();
    json_response(
        200,
        &json!({
            "major": v.major.to_string(),
            "minor": v.minor.to_string(),
            "gitVersion": format!("v{}.{}.{}{}", v.major, v.minor, v.patch.unwrap_or(0), v.suffix),
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
    )
}

fn discovery_root(sim: &Sim, headers: &HeaderMap, core: bool) -> Response {
    let reg = sim.registry();
    for (v, ct) in [
        ("v2", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"),
        ("v2beta1", "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"),
    ] {
        if accepts(headers, &format!("g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList")) {
            let body = reg.aggregated(core, &format!("apidiscovery.k8s.io/{v}"));
            return bytes_response(200, Bytes::from(serde_json::to_vec(&body).unwrap_or_default()), ct);
        }
    }
    json_response(200, &if core { reg.api_versions() } else { reg.api_group_list() })
}

fn group_version(reg: &super::registry::Registry, group: &str, version: &str) -> Response {
    match reg.resource_list(group, version) {
        Some(list) => json_response(200, &list),
        None => error_response(&ApiError::not_found_path(&if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        })),
    }
}

/// Stored objects keep the apiVersion they were written with; an alias version rewrites it.
fn as_served(def: &ResourceDef, obj: &Stored) -> Bytes {
    // Runs per item of every list: compare without building the apiVersion string.
    let (group, version) = obj.meta.api_version.split_once('/').unwrap_or(("", &obj.meta.api_version));
    if group == def.group && version == def.version {
        return obj.json.clone();
    }
    let mut v = obj.value().into_owned();
    v["apiVersion"] = json!(def.api_version());
    v["kind"] = json!(def.kind);
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// An item of a list: the list names the kind once, its items carry no `kind` or `apiVersion`.
fn list_item(def: &ResourceDef, obj: &Stored) -> Bytes {
    let (group, version) = obj.meta.api_version.split_once('/').unwrap_or(("", &obj.meta.api_version));
    if group == def.group && version == def.version {
        return obj.list_item();
    }
    let mut v = obj.value().into_owned();
    if let Some(m) = v.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// How long a read at a resourceVersion the store has not reached yet waits for it, as the
/// apiserver's watch cache waits (`blockTimeout`) before answering 504.
const FRESHNESS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The `resourceVersion` parameter as the apiserver's storage parses it (`ParseResourceVersion`):
/// absent, `""` and `"0"` ask for no particular version; anything else must be an unsigned
/// 64-bit integer, and the error is the field error the apiserver builds for it.
fn resource_version_param(q: &HashMap<String, String>) -> Result<Option<u64>, String> {
    let s = match q.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => return Ok(None),
        Some(s) => s,
    };
    let why = if s.bytes().all(|b| b.is_ascii_digit()) {
        match s.parse::<u64>() {
            Ok(n) => return Ok(Some(n)),
            Err(_) => "value out of range",
        }
    } else {
        "invalid syntax"
    };
    let quoted = crate::k8s::validation::go_quote(s);
    Err(format!("resourceVersion: Invalid value: {quoted}: strconv.ParseUint: parsing {quoted}: {why}"))
}

/// Waits until the store has reached `rv`, for at most [`FRESHNESS_WAIT`]; then the read is
/// refused as the apiserver refuses it ("Too large resource version").
async fn wait_fresh(sim: &Sim, rv: u64) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + FRESHNESS_WAIT;
    loop {
        let current = sim.store.current_rv();
        if current >= rv {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::too_large_resource_version(rv, current));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

struct ListQuery {
    labels: LabelSelector,
    fields: FieldSelector,
    limit: Option<usize>,
    continue_token: Option<String>,
}

/// The selectors and paging of a list, watch or deletecollection, refused as the apiserver
/// refuses them (400): a label selector `labels.Parse` does not accept, a field selector that
/// does not parse or names a field label the kind does not support.
fn list_query(q: &HashMap<String, String>, def: &ResourceDef) -> Result<ListQuery, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())
        .map_err(|e| ApiError::bad_request(&e))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default())
        .and_then(|f| f.for_resource(def))
        .map_err(|e| ApiError::bad_request(&e))?;
    let limit = match q.get("limit") {
        Some(l) => {
            Some(l.parse::<usize>().map_err(|_| ApiError::bad_request(&format!("invalid limit '{l}'")))?.min(MAX_PAGE))
        }
        None => None,
    };
    Ok(ListQuery { labels, fields, limit, continue_token: q.get("continue").cloned() })
}

fn list(
    sim: &Sim,
    def: &ResourceDef,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let lq = list_query(q, def)?;
    // The storage's ValidateListOptions: a resourceVersion that is no number is the client's
    // mistake (400), and a continue token carries its own.
    resource_version_param(q).map_err(|e| ApiError::bad_request(&format!("invalid resource version: {e}")))?;
    if lq.continue_token.as_deref().is_some_and(|c| !c.is_empty())
        && q.get("resourceVersion").is_some_and(|rv| !rv.is_empty() && rv != "0")
    {
        return Err(ApiError::bad_request("specifying resource version is not allowed when using continue"));
    }
    let node = if def.resource == "pods" { lq.fields.node_name().map(str::to_string) } else { None };
    let page = sim.store.list(
        &def.storage,
        t.namespace.as_deref(),
        node.as_deref(),
        lq.limit,
        lq.continue_token.as_deref(),
        |o| lq.labels.matches_labels(&o.meta.labels) && lq.fields.matches_stored(o),
    )?;
    if accepts(headers, "as=Table") {
        let table = tables::table(def, &page.items, page.resource_version, page.continue_token.as_deref());
        return Ok(json_response(200, &table));
    }
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    let mut out = Vec::with_capacity(page.items.iter().map(|i| i.json.len() + 1).sum::<usize>() + 256);
    out.extend_from_slice(
        format!("{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":", def.kind, def.api_version()).as_bytes(),
    );
    out.extend_from_slice(&serde_json::to_vec(&meta).unwrap_or_default());
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&list_item(def, item));
    }
    out.extend_from_slice(b"]}");
    Ok(maybe_gzip(headers, Bytes::from(out)))
}

/// Bodies from this size on are compressed for clients that accept gzip, as kube-apiserver does
/// (its threshold and level: 128 KiB, level 1).
const GZIP_THRESHOLD: usize = 128 * 1024;

fn maybe_gzip(headers: &HeaderMap, body: Bytes) -> Response {
    use std::io::Write;
    let wants = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
    if !wants || body.len() < GZIP_THRESHOLD {
        return bytes_response(200, body, "application/json");
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::new(1));
    match enc.write_all(&body).and_then(|()| enc.finish()) {
        Ok(gz) => {
            let mut r = bytes_response(200, Bytes::from(gz), "application/json");
            r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            r
        }
        Err(_) => bytes_response(200, body, "application/json"),
    }
}

fn get(
    sim: &Sim,
    def: &ResourceDef,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    // The watch cache's Get parses the version before it looks: an error there reaches the
    // client as a 500 without a reason, as it does from a real apiserver.
    resource_version_param(q).map_err(ApiError::internal_unreasoned)?;
    let name = t.name.as_deref().unwrap_or_default();
    let obj =
        sim.store.get(&def.storage, &target_ns(t), name).ok_or_else(|| ApiError::not_found(&def.resource, name))?;
    if accepts(headers, "as=Table") {
        return Ok(json_response(200, &tables::table(def, std::slice::from_ref(&obj), obj.resource_version(), None)));
    }
    Ok(bytes_response(200, as_served(def, &obj), "application/json"))
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(&format!("the request body is not valid JSON: {e}")))
}

fn ensure_namespace(sim: &Sim, def: &ResourceDef, ns: &str) -> Result<(), ApiError> {
    if def.namespaced && sim.store.get(&StorageKey::core("namespaces"), "", ns).is_none() {
        return Err(ApiError::not_found("namespaces", ns));
    }
    Ok(())
}

fn create(sim: &Sim, def: &ResourceDef, t: &Target, body: &Bytes, dry_run: bool) -> Result<Response, ApiError> {
    let mut obj = parse_body(body)?;
    if !obj.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && kind != def.kind
    {
        return Err(ApiError::bad_request(&format!(
            "the kind '{kind}' does not match the resource {} ({})",
            def.resource, def.kind
        )));
    }
    obj["kind"] = json!(def.kind);
    obj["apiVersion"] = json!(def.api_version());
    if def.namespaced {
        let ns = target_ns(t);
        match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != ns => {
                return Err(ApiError::bad_request(&format!(
                    "the namespace of the object ({given}) does not match the namespace on the request ({ns})"
                )));
            }
            _ => {}
        }
        ensure_namespace(sim, def, &ns)?;
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        obj["metadata"]["namespace"] = json!(ns);
    }
    check_shape(def, obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default(), &obj)?;
    check_replicas(def, &obj, "", false)?;
    validate_kind(sim, def, &mut obj, "")?;
    check_pod_spec(def, &obj)?;
    pod_security(sim, def, &obj)?;
    let stored = sim.store.create(&def.storage, obj, dry_run)?;
    if !dry_run {
        sim.changed.notify_waiters();
    }
    Ok(bytes_response(201, as_served(def, &stored), "application/json"))
}

/// A Deployment's, ReplicaSet's or StatefulSet's `spec.replicas` on every write of the object
/// itself, bounded as [`super::replicas`] explains; `patched` says the object came from a patch.
fn check_replicas(def: &ResourceDef, obj: &Value, sub: &str, patched: bool) -> Result<(), ApiError> {
    if !sub.is_empty() || !super::replicas::bounded(&def.group, &def.resource) {
        return Ok(());
    }
    super::replicas::check(obj.pointer("/spec/replicas")).map_err(|p| {
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        super::replicas::refusal(&def.kind, &def.group, &def.version, name, patched.then_some(obj), &p)
    })
}

/// Validation of one kind's spec on every write of the object itself (see [`super::jobs`]).
fn validate_kind(sim: &Sim, def: &ResourceDef, obj: &mut Value, sub: &str) -> Result<(), ApiError> {
    let templated = matches!(
        (def.group.as_str(), def.resource.as_str()),
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") | ("batch", "jobs")
    );
    if templated && sub.is_empty() {
        let errs = super::names::template_label_problems(obj);
        if !errs.is_empty() {
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            return Err(super::names::refusal(&def.kind, &def.group, name, &errs));
        }
    }
    if def.group == "batch" && def.resource == "jobs" && sub.is_empty() {
        super::jobs::prepare(sim.registry().minor, obj);
        super::jobs::validate(obj)?;
    }
    Ok(())
}

/// Pod Security admission on a new pod (see [`super::pod_security`]).
fn pod_security(sim: &Sim, def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    if !def.group.is_empty() || def.resource != "pods" {
        return Ok(());
    }
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
    let Some(namespace) = sim.store.get(&StorageKey::core("namespaces"), "", ns) else { return Ok(()) };
    let level = super::pod_security::enforced(&namespace.value());
    if level == "privileged" {
        return Ok(());
    }
    let violations = super::pod_security::violations(&level, obj);
    if violations.is_empty() {
        return Ok(());
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    Err(ApiError::forbidden(
        format!("pods \"{name}\" is forbidden: violates PodSecurity \"{level}:latest\": {}", violations.join(", ")),
        "",
        "pods",
        name,
    ))
}

/// A pod needs at least one container, as the apiserver's validation demands (a pod without one
/// could never run, and a drain would wait on it forever).
fn check_pod_spec(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    if def.group.is_empty()
        && def.resource == "pods"
        && obj.pointer("/spec/containers").and_then(Value::as_array).is_none_or(|c| c.is_empty())
    {
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        return Err(ApiError::invalid_field(
            &def.kind,
            name,
            "spec.containers",
            "FieldValueRequired",
            "Required value",
        ));
    }
    Ok(())
}

/// Keeps the parts a verb may not change: the main resource keeps status, `/status` keeps the rest.
/// Refuses objects whose shape no controller could read: the object, its metadata and (when
/// present) spec and status must be JSON objects, as in every Kubernetes API type.
fn check_shape(def: &ResourceDef, name: &str, v: &Value) -> Result<(), ApiError> {
    let bad = |what: &str| Err(ApiError::invalid(&def.resource, name, &format!("{what} must be an object")));
    if !v.is_object() {
        return bad("the object");
    }
    if v.get("metadata").is_some_and(|m| !m.is_object()) {
        return bad("metadata");
    }
    for field in ["spec", "status"] {
        if v.get(field).is_some_and(|x| !x.is_object() && !x.is_null()) {
            return bad(field);
        }
    }
    for field in ["labels", "annotations"] {
        if v.pointer(&format!("/metadata/{field}")).is_some_and(|m| !m.is_object() && !m.is_null()) {
            return bad(&format!("metadata.{field}"));
        }
    }
    if def.group.is_empty() && def.resource == "configmaps" {
        check_config_map(name, v)?;
    }
    Ok(())
}

/// A ConfigMap as the apiserver decodes and validates it: `data` strings, `binaryData` base64,
/// keys of `[-._a-zA-Z0-9]` in one of the two only, and at most 1 MiB of both together.
fn check_config_map(name: &str, v: &Value) -> Result<(), ApiError> {
    use base64::Engine;
    const MAX: usize = 1024 * 1024;
    let mut total = 0;
    let mut keys = std::collections::BTreeSet::new();
    for (field, binary) in [("data", false), ("binaryData", true)] {
        let Some(map) = v.get(field).filter(|m| !m.is_null()) else { continue };
        let map = map.as_object().ok_or_else(|| ApiError::bad_request(&format!("{field} must be an object")))?;
        for (key, value) in map {
            // Go's decoder leaves a null as the empty string.
            let text = value
                .as_str()
                .or(value.is_null().then_some(""))
                .ok_or_else(|| ApiError::bad_request(&format!("{field}[{key}] must be a string")))?;
            let valid = !key.is_empty()
                && key.len() <= 253
                && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && key != "."
                && key != "..";
            if !valid {
                return Err(ApiError::invalid_field(
                    "ConfigMap",
                    name,
                    &format!("{field}[{key}]"),
                    "FieldValueInvalid",
                    &format!(
                        "Invalid value: \"{key}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
                    ),
                ));
            }
            if !keys.insert(key.clone()) {
                return Err(ApiError::invalid_field(
                    "ConfigMap",
                    name,
                    &format!("data[{key}]"),
                    "FieldValueDuplicate",
                    &format!("Duplicate value: \"{key}\""),
                ));
            }
            total += if binary {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| ApiError::bad_request(&format!("{field}[{key}]: illegal base64 data ({e})")))?
                    .len()
            } else {
                text.len()
            };
        }
    }
    if total > MAX {
        return Err(ApiError::invalid_field(
            "ConfigMap",
            name,
            "[]",
            "FieldValueTooLong",
            &format!("Too long: may not be more than {MAX} bytes"),
        ));
    }
    Ok(())
}

fn restrict(def: &ResourceDef, old: &Value, new: &mut Value, sub: &str) {
    let has_status = def.subresources.iter().any(|s| s.name == "status");
    if sub == "status" {
        let status = new.get("status").cloned();
        *new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    } else if has_status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    new["kind"] = json!(def.kind);
    new["apiVersion"] = old.get("apiVersion").cloned().unwrap_or_else(|| json!(def.api_version()));
}

fn update(
    sim: &Sim,
    def: &ResourceDef,
    t: &Target,
    body: &Bytes,
    dry_run: bool,
    sub: &str,
) -> Result<Response, ApiError> {
    let obj = parse_body(body)?;
    let name = t.name.clone().unwrap_or_default();
    if obj.pointer("/metadata/name").and_then(Value::as_str).is_some_and(|n| n != name) {
        return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
    }
    let expect = obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().unwrap_or(u64::MAX));
    let ns = target_ns(t);
    let stored = sim.store.mutate(&def.storage, &ns, &name, expect, dry_run, |cur| {
        check_shape(def, &name, &obj)?;
        let mut next = obj.clone();
        check_replicas(def, &next, sub, false)?;
        validate_kind(sim, def, &mut next, sub)?;
        restrict(def, cur, &mut next, sub);
        *cur = next;
        Ok(())
    });
    let stored = match stored {
        Err(e) if e.code == 404 && sub.is_empty() && def.resource == "leases" => {
            // Create-on-update is how Lease clients acquire a missing lock.
            return create(sim, def, t, body, dry_run);
        }
        other => other?,
    };
    if !dry_run {
        sim.changed.notify_waiters();
    }
    Ok(bytes_response(200, as_served(def, &stored), "application/json"))
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    sim: &Sim,
    def: &ResourceDef,
    t: &Target,
    headers: &HeaderMap,
    body: &Bytes,
    dry_run: bool,
    sub: &str,
    guard: &dyn Fn(&Value) -> Result<(), ApiError>,
) -> Result<Response, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let p = parse_body(body)?;
    let name = t.name.clone().unwrap_or_default();
    let ns = target_ns(t);
    let stored = sim.store.mutate(&def.storage, &ns, &name, None, dry_run, |cur| {
        let mut next = cur.clone();
        if ct.starts_with("application/merge-patch+json") {
            json_patch::merge(&mut next, &p);
        } else if ct.starts_with("application/strategic-merge-patch+json") {
            patch::strategic_merge_patch(&mut next, &p);
        } else if ct.starts_with("application/json-patch+json") {
            patch::json_patch(&mut next, &p).map_err(|e| match e {
                patch::JsonPatchError::Decode(m) => ApiError::bad_request(&format!("error decoding patch: {m}")),
                patch::JsonPatchError::Apply(_) => ApiError::patch_failed(),
            })?;
        } else {
            // `negotiate_body` let only the three patch types through.
            return Err(ApiError::unsupported_patch_media());
        }
        if let Some(rv) = p.pointer("/metadata/resourceVersion").and_then(Value::as_str)
            && cur.pointer("/metadata/resourceVersion").and_then(Value::as_str) != Some(rv)
        {
            return Err(ApiError::conflict(&def.resource, &name));
        }
        check_shape(def, &name, &next)?;
        check_replicas(def, &next, sub, true)?;
        validate_kind(sim, def, &mut next, sub)?;
        guard(&next)?;
        restrict(def, cur, &mut next, sub);
        *cur = next;
        Ok(())
    })?;
    if !dry_run {
        sim.changed.notify_waiters();
    }
    Ok(bytes_response(200, as_served(def, &stored), "application/json"))
}

fn grace_from(query: &HashMap<String, String>, body: &Bytes) -> (Option<i64>, bool) {
    let opts: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let grace = query
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse().ok())
        .or_else(|| opts.get("gracePeriodSeconds").and_then(Value::as_i64));
    let dry = opts.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == "All"));
    (grace, dry)
}

/// A delete's `preconditions` (UID, resourceVersion) against the stored object, as the
/// apiserver's storage checks them.
pub(super) fn check_preconditions(options: &Value, qualified: &str, stored: &Stored) -> Result<(), ApiError> {
    let Some(p) = options.get("preconditions") else { return Ok(()) };
    let name = stored.name();
    if let Some(uid) = p.get("uid").and_then(Value::as_str)
        && uid != &*stored.meta.uid
    {
        return Err(ApiError::precondition_failed(
            qualified,
            name,
            &format!("UID in precondition: {uid}, UID in object meta: {}", stored.meta.uid),
        ));
    }
    if let Some(rv) = p.get("resourceVersion").and_then(Value::as_str)
        && rv != stored.resource_version().to_string()
    {
        return Err(ApiError::precondition_failed(
            qualified,
            name,
            &format!(
                "ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                stored.resource_version()
            ),
        ));
    }
    Ok(())
}

fn delete(
    sim: &Sim,
    def: &ResourceDef,
    t: &Target,
    query: &HashMap<String, String>,
    body: &Bytes,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let ns = target_ns(t);
    let (grace, body_dry) = grace_from(query, body);
    let dry_run = dry_run || body_dry;
    let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(current) = sim.store.get(&def.storage, &ns, &name) {
        let qualified =
            if def.group.is_empty() { def.resource.clone() } else { format!("{}.{}", def.resource, def.group) };
        check_preconditions(&options, &qualified, &current)?;
    }
    if def.storage == StorageKey::core("pods") {
        if !dry_run {
            pdb::account_direct_delete(sim, &ns, &name);
        }
        let stored = pdb::delete_pod(sim, &ns, &name, grace, dry_run)?;
        return Ok(bytes_response(200, stored.json.clone(), "application/json"));
    }
    if def.storage == StorageKey::core("namespaces") {
        return delete_namespace(sim, def, &name, dry_run);
    }
    let stored = sim.store.delete(&def.storage, &ns, &name, dry_run)?;
    if !dry_run {
        sim.changed.notify_waiters();
    }
    Ok(bytes_response(200, as_served(def, &stored), "application/json"))
}

/// Whether a namespace is being deleted.
pub(super) fn namespace_terminating(sim: &Sim, ns: &str) -> bool {
    sim.store.get(&StorageKey::core("namespaces"), "", ns).is_some_and(|n| n.meta.terminating)
}

/// Deletes a namespace as the namespace controller does: it is marked Terminating at once, its
/// objects are deleted (pods gracefully, so their kubelets stop them), and it goes once its last
/// pod is gone.
fn delete_namespace(sim: &Sim, def: &ResourceDef, name: &str, dry_run: bool) -> Result<Response, ApiError> {
    let key = StorageKey::core("namespaces");
    let current = sim.store.get(&key, "", name).ok_or_else(|| ApiError::not_found("namespaces", name))?;
    if dry_run {
        return Ok(bytes_response(200, as_served(def, &current), "application/json"));
    }
    let stored = sim.store.mutate(&key, "", name, None, false, |v| {
        if v.pointer("/metadata/deletionTimestamp").is_none() {
            v["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        }
        v["status"]["phase"] = json!("Terminating");
        Ok(())
    })?;
    // Its RoleBindings go with it: they must stop granting at once.
    sim.rbac_changed();
    for k in sim.store.keys() {
        for obj in sim.store.in_namespace(&k, name) {
            if k == StorageKey::core("pods") {
                let _ = pdb::delete_pod(sim, name, obj.name(), None, false);
            } else {
                let _ = sim.store.delete(&k, name, obj.name(), false);
            }
        }
    }
    if sim.store.in_namespace(&StorageKey::core("pods"), name).is_empty() {
        let _ = sim.store.delete(&key, "", name, false);
    }
    sim.changed.notify_waiters();
    Ok(bytes_response(200, as_served(def, &stored), "application/json"))
}

fn delete_collection(
    sim: &Sim,
    def: &ResourceDef,
    t: &Target,
    query: &HashMap<String, String>,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let lq = list_query(query, def)?;
    let page = sim.store.list(&def.storage, t.namespace.as_deref(), None, None, None, |o| {
        lq.labels.matches_labels(&o.meta.labels) && lq.fields.matches_stored(o)
    })?;
    for item in &page.items {
        let (ns, name) = (item.namespace().to_string(), item.name().to_string());
        if def.storage == StorageKey::core("pods") {
            if !dry_run {
                pdb::account_direct_delete(sim, &ns, &name);
            }
            let _ = pdb::delete_pod(sim, &ns, &name, None, dry_run);
        } else {
            let _ = sim.store.delete(&def.storage, &ns, &name, dry_run);
        }
    }
    sim.changed.notify_waiters();
    Ok(json_response(200, &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})))
}

fn scale(
    sim: &Sim,
    def: &ResourceDef,
    t: &Target,
    method: &Method,
    body: &Bytes,
    headers: &HeaderMap,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let ns = target_ns(t);
    if !matches!(def.resource.as_str(), "deployments" | "replicasets" | "statefulsets") {
        return Err(ApiError::not_found_path(&format!("{}/{name}/scale", def.resource)));
    }
    let obj = if *method == Method::GET {
        sim.store.get(&def.storage, &ns, &name).ok_or_else(|| ApiError::not_found(&def.resource, &name))?
    } else {
        let p = parse_body(body)?;
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let replicas = if *method == Method::PUT || ct.contains("merge-patch") {
            p.pointer("/spec/replicas").and_then(Value::as_i64)
        } else {
            None
        }
        .ok_or_else(|| ApiError::bad_request("scale needs spec.replicas"))?;
        // ValidateScale's check, and the simulator's ceiling on replicas.
        if let Err(p) = super::replicas::check(Some(&json!(replicas))) {
            return Err(super::replicas::refusal("Scale", "autoscaling", "v1", &name, None, &p));
        }
        let s = sim.store.mutate(&def.storage, &ns, &name, None, dry_run, |cur| {
            cur["spec"]["replicas"] = json!(replicas);
            Ok(())
        })?;
        sim.changed.notify_waiters();
        s
    };
    let replicas = obj.value().pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let status_replicas = obj.value().pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0);
    Ok(json_response(
        200,
        &json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": name, "namespace": ns, "resourceVersion": obj.resource_version().to_string(), "uid": obj.value().pointer("/metadata/uid")},
               "spec": {"replicas": replicas}, "status": {"replicas": status_replicas}}),
    ))
}

fn watch_event(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    push_watch_event(&mut out, kind, object);
    Bytes::from(out)
}

/// Appends one watch event line to `out`.
fn push_watch_event(out: &mut Vec<u8>, kind: &str, object: &[u8]) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
}

/// How much of a watch's backlog goes out in one chunk of the stream.
const WATCH_CHUNK_EVENTS: usize = 256;

fn bookmark(def: &ResourceDef, rv: u64) -> Bytes {
    let obj = json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": {"resourceVersion": rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
    watch_event("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
}

async fn watch(sim: Arc<Sim>, def: ResourceDef, t: Target, q: HashMap<String, String>) -> Response {
    let lq = match list_query(&q, &def) {
        Ok(lq) => lq,
        Err(e) => return error_response(&e),
    };
    // The watch cache parses the version when the watch starts; an error is a 500 without a
    // reason from a real apiserver too.
    let start_rv = match resource_version_param(&q) {
        Ok(rv) => rv,
        Err(e) => return error_response(&ApiError::internal_unreasoned(e)),
    };
    sim.stats.watch_opened();
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true" || b == "1");
    // Any int64 is a valid timeoutSeconds to the apiserver; the simulator holds a watch for at
    // most a day, so a huge value cannot overflow the deadline it computes.
    let timeout = match q.get("timeoutSeconds").map(|s| s.parse::<i64>()) {
        None => None,
        // 0 (or less) means no timeout was asked for, as the apiserver reads it.
        Some(Ok(s)) if s <= 0 => None,
        Some(Ok(s)) => Some(std::time::Duration::from_secs(s.min(86_400) as u64)),
        Some(Err(_)) => {
            return error_response(&ApiError::bad_request(&format!(
                "timeoutSeconds: Invalid value: {:?}: not an integer",
                q.get("timeoutSeconds").map(|s| s.chars().take(64).collect::<String>()).unwrap_or_default()
            )));
        }
    };
    let mut rx = sim.store.subscribe(&def.storage);
    let ns = t.namespace.clone();
    let matches = move |c: &Change, def: &ResourceDef| -> bool {
        c.key == def.storage
            && ns.as_deref().is_none_or(|n| c.object.namespace() == n)
            && lq.labels.matches_labels(&c.object.meta.labels)
            && lq.fields.matches_stored(&c.object)
    };
    let (tx, out_rx) = tokio::sync::mpsc::channel::<Bytes>(1024);
    let mut initial: Vec<Bytes> = Vec::new();
    let mut last_rv = sim.store.current_rv();
    match start_rv {
        Some(rv) => match sim.store.changes_since(rv) {
            Ok(changes) => {
                for c in changes.iter().filter(|c| matches(c, &def)) {
                    initial.push(watch_event(c.kind.as_str(), &as_served(&def, &c.object)));
                }
                last_rv = changes.last().map_or(rv.max(last_rv), |c| c.rv.max(last_rv));
            }
            Err(e) => {
                let gone = watch_event("ERROR", &serde_json::to_vec(&e.status_json()).unwrap_or_default());
                return stream_response(vec![gone], None);
            }
        },
        None => {
            let page = sim.store.list(&def.storage, t.namespace.as_deref(), None, None, None, |_| true);
            if let Ok(page) = page {
                for item in &page.items {
                    let c = Change {
                        rv: 0,
                        key: def.storage.clone(),
                        kind: EventType::Added,
                        object: item.clone(),
                        previous_labels: None,
                        status_only: false,
                    };
                    if matches(&c, &def) {
                        initial.push(watch_event("ADDED", &as_served(&def, item)));
                    }
                }
                last_rv = page.resource_version;
            }
        }
    }
    let bookmark_every = sim.scaled(sim.timings.bookmark_seconds).max(std::time::Duration::from_millis(50));
    let def2 = def.clone();
    let sim2 = sim.clone();
    tokio::spawn(async move {
        let opened = tokio::time::Instant::now();
        for b in initial {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        // A watch from a resourceVersion the store has not reached gets no bookmark until the
        // store passes it: the watch cache bookmarks only versions past the one asked for.
        let reached = |sim: &Sim, rv: u64| sim.store.current_rv() >= rv;
        if bookmarks && reached(&sim2, last_rv) && tx.send(bookmark(&def2, last_rv)).await.is_err() {
            return;
        }
        let deadline = timeout.map_or(opened + std::time::Duration::from_secs(86_400), |d| opened + d);
        let expired = tokio::time::sleep_until(deadline);
        tokio::pin!(expired);
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        // Faults can change while a stream is open, so the drop rule is checked as it goes.
        let mut fault_check = tokio::time::interval(std::time::Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = &mut expired => return,
                _ = fault_check.tick() => {
                    if let Some(every) = sim2.faults().drop_watches_every_seconds
                        && opened.elapsed() >= sim2.scaled(every) {
                            return;
                        }
                }
                _ = ticker.tick(), if bookmarks => {
                    if reached(&sim2, last_rv) && tx.send(bookmark(&def2, last_rv)).await.is_err() { return; }
                }
                msg = rx.recv() => match msg {
                    Ok(c) => {
                        // What else is queued already goes out in the same chunk: a client reads
                        // events by line, whatever the chunks, and a burst of writes costs one
                        // wake-up of the stream rather than one per event.
                        let mut chunk = Vec::new();
                        let mut next = Some(c);
                        let mut lagged = false;
                        let mut taken = 0;
                        while let Some(c) = next.take() {
                            taken += 1;
                            if c.rv > last_rv {
                                last_rv = c.rv;
                                if matches(&c, &def2) {
                                    push_watch_event(&mut chunk, c.kind.as_str(), &as_served(&def2, &c.object));
                                }
                            }
                            if taken < WATCH_CHUNK_EVENTS {
                                match rx.try_recv() {
                                    Ok(c) => next = Some(c),
                                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                                    Err(_) => {}
                                }
                            }
                        }
                        if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
                            return;
                        }
                        if lagged {
                            let gone = ApiError::gone(last_rv);
                            let _ = tx.send(watch_event("ERROR", &serde_json::to_vec(&gone.status_json()).unwrap_or_default())).await;
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let gone = ApiError::gone(last_rv);
                        let _ = tx.send(watch_event("ERROR", &serde_json::to_vec(&gone.status_json()).unwrap_or_default())).await;
                        return;
                    }
                    Err(_) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    stream_response(vec![], Some(out_rx))
}

/// `GET …/pods/NAME/log`, as the apiserver serves it from the kubelet: one container's lines
/// (`container` required when the pod has several), `tailLines`, `limitBytes`, `timestamps`,
/// `sinceTime`, and `follow` until the container ends; refused while the container has not
/// started, and for `previous` (no container here ever restarts).
fn pod_log(sim: Arc<Sim>, t: &Target, q: &HashMap<String, String>) -> Response {
    let ns = target_ns(t);
    let name = t.name.clone().unwrap_or_default();
    let Some(pod) = sim.store.get(pdb::pods_key(), &ns, &name) else {
        return error_response(&ApiError::not_found("pods", &name));
    };
    let value = pod.value();
    let containers: Vec<String> = value
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string)).collect())
        .unwrap_or_default();
    let container = match q.get("container") {
        Some(c) if containers.contains(c) => c.clone(),
        Some(c) => {
            return error_response(&ApiError::bad_request(&format!("container {c} is not valid for pod {name}")));
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return error_response(&ApiError::bad_request(&format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    let flag = |k: &str| -> Result<bool, ApiError> {
        match q.get(k).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(v) => Err(ApiError::bad_request(&format!("{k}: invalid value \"{v}\": expected true or false"))),
        }
    };
    let number = |k: &str, min: i64| -> Result<Option<i64>, ApiError> {
        match q.get(k) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= min => Ok(Some(n)),
                _ => Err(ApiError::bad_request(&format!("{k}: Invalid value: \"{v}\": must be {min} or greater"))),
            },
        }
    };
    let parsed = (|| {
        Ok::<_, ApiError>((
            flag("follow")?,
            flag("timestamps")?,
            flag("previous")?,
            number("tailLines", 0)?,
            number("limitBytes", 1)?,
        ))
    })();
    let (follow, timestamps, previous, tail, limit) = match parsed {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    if previous {
        return error_response(&ApiError::bad_request(&format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let state = value
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("name").and_then(Value::as_str) == Some(container.as_str())))
        .and_then(|c| c.get("state"))
        .cloned()
        .unwrap_or(Value::Null);
    if state.get("running").is_none() && state.get("terminated").is_none() {
        let reason = state.pointer("/waiting/reason").and_then(Value::as_str).unwrap_or("ContainerCreating");
        return error_response(&ApiError::bad_request(&format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let since = q.get("sinceTime").cloned();
    let uid = pod.meta.uid.to_string();
    let render = move |lines: Vec<(String, String)>| -> Vec<u8> {
        let mut out = Vec::new();
        for (ts, line) in lines {
            if since.as_deref().is_some_and(|s| ts.as_str() < s) {
                continue;
            }
            if timestamps {
                out.extend_from_slice(ts.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out
    };
    let mut first = sim.pod_logs.since(&uid, 0);
    let sent = first.len();
    if let Some(n) = tail {
        let skip = first.len().saturating_sub(n as usize);
        first.drain(..skip);
    }
    let mut head = render(first);
    let mut budget = limit.map_or(u64::MAX, |l| l as u64);
    let cut = |bytes: &mut Vec<u8>, budget: &mut u64| {
        if bytes.len() as u64 > *budget {
            bytes.truncate(*budget as usize);
        }
        *budget -= bytes.len() as u64;
    };
    cut(&mut head, &mut budget);
    let pod_uid = uid.clone();
    let finished = move |sim: &Sim| {
        sim.store
            .get(pdb::pods_key(), &ns, &name)
            .is_none_or(|p| p.meta.uid.as_ref() != pod_uid || matches!(&*p.meta.phase, "Succeeded" | "Failed"))
    };
    let text = |body: Body| {
        let mut r = Response::new(body);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        r
    };
    if !follow || budget == 0 || finished(&sim) {
        return text(Body::from(head));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut sent = sent;
        if tx.send(Bytes::from(head)).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let done = finished(&sim);
            let new = sim.pod_logs.since(&uid, sent);
            sent += new.len();
            let mut bytes = render(new);
            cut(&mut bytes, &mut budget);
            if !bytes.is_empty() && tx.send(Bytes::from(bytes)).await.is_err() {
                return;
            }
            if done || budget == 0 {
                return;
            }
        }
    });
    text(Body::from_stream(ReceiverStream::new(rx).map(Ok::<Bytes, std::io::Error>)))
}

fn stream_response(first: Vec<Bytes>, rx: Option<tokio::sync::mpsc::Receiver<Bytes>>) -> Response {
    let head = tokio_stream::iter(first.into_iter().map(Ok::<Bytes, std::io::Error>));
    let body = match rx {
        Some(rx) => Body::from_stream(head.chain(ReceiverStream::new(rx).map(Ok::<Bytes, std::io::Error>))),
        None => Body::from_stream(head),
    };
    let mut r = Response::new(body);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    r
}

/// `/sim/stats`, `/sim/faults`, `/sim/compact`, `/sim/control-plane`, `/sim/operator-step`,
/// `/sim/pools[/{pool}[/upgrade]]`.
fn control(sim: &Sim, method: &Method, path: &str, body: &Bytes) -> Response {
    match (method, path) {
        (&Method::GET, "/sim/stats") => json_response(200, &super::controllers::stats_document(sim)),
        (&Method::GET, "/sim/faults") => json_response(200, &serde_json::to_value(sim.faults()).unwrap_or_default()),
        (&Method::PUT | &Method::PATCH, "/sim/faults") => {
            let mut current = serde_json::to_value(sim.faults()).unwrap_or_default();
            let given: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return error_response(&ApiError::bad_request(&format!("faults: {e}"))),
            };
            if *method == Method::PUT {
                current = given;
            } else {
                json_patch::merge(&mut current, &given);
            }
            match serde_json::from_value::<super::Faults>(current) {
                Ok(f) => match f.validate() {
                    Ok(()) => {
                        *sim.faults.write().unwrap_or_else(|p| p.into_inner()) = f.clone();
                        sim.fault_epoch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        sim.changed.notify_waiters();
                        json_response(200, &serde_json::to_value(f).unwrap_or_default())
                    }
                    Err(e) => error_response(&ApiError::bad_request(&e)),
                },
                Err(e) => error_response(&ApiError::bad_request(&format!("faults: {e}"))),
            }
        }
        (&Method::POST, "/sim/operator-step") => {
            let action: crate::plan::StepAction = match serde_json::from_slice(body) {
                Ok(a) => a,
                Err(e) => return error_response(&ApiError::bad_request(&format!("operator-step: {e}"))),
            };
            match super::operator::perform(sim, &action) {
                Ok(changed) => json_response(200, &json!({"changed": changed})),
                Err(e) => error_response(&ApiError::bad_request(&format!("operator-step: {e}"))),
            }
        }
        (&Method::POST, "/sim/compact") => json_response(200, &json!({"compactedTo": sim.store.compact().to_string()})),
        (&Method::PUT, "/sim/control-plane") => {
            if super::controllers::oldest_apiserver(sim).is_some() {
                return error_response(&ApiError::bad_request(
                    "control-plane: this cluster runs its own control plane; upgrade its nodes with the sim.k8s-upgrade.dev/upgrade-to annotation",
                ));
            }
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let Some(version) =
                v.get("version").and_then(Value::as_str).and_then(|s| s.parse::<crate::version::Version>().ok())
            else {
                return error_response(&ApiError::bad_request("control-plane: expected {\"version\": \"1.30.4\"}"));
            };
            *sim.managed_version.write().unwrap_or_else(|p| p.into_inner()) = version;
            sim.start_blip();
            sim.refresh_registry();
            sim.stats.apiserver_restarted();
            json_response(200, &json!({"version": sim.server_version().to_string(), "at": now_rfc3339()}))
        }
        (&Method::GET, "/sim/pools") => json_response(200, &super::pools::all(sim)),
        (&Method::GET, p) if p.starts_with("/sim/pools/") && !p["/sim/pools/".len()..].contains('/') => {
            let pool = &p["/sim/pools/".len()..];
            match super::pools::describe(sim, pool) {
                Some(doc) => json_response(200, &doc),
                None => error_response(&ApiError::not_found("pools", pool)),
            }
        }
        (&Method::POST, p) if p.starts_with("/sim/pools/") && p.ends_with("/upgrade") => {
            let pool = &p["/sim/pools/".len()..p.len() - "/upgrade".len()];
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            match super::pools::start(sim, pool, &v) {
                Ok(doc) => json_response(201, &doc),
                Err((code, message)) => json_response(
                    code,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "code": code}),
                ),
            }
        }
        _ => error_response(&ApiError::not_found_path(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_maps_are_held_to_the_apiserver_s_validation() {
        use base64::Engine;
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        let ok = json!({"data": {"a.b_c-d": "x", "empty": null}, "binaryData": {"blob": b64(1000)}});
        assert!(check_config_map("cm", &ok).is_ok());
        // 1 MiB of data and binaryData together is the most.
        let exact = json!({"data": {"a": "x".repeat(1000)}, "binaryData": {"b": b64(1024 * 1024 - 1000)}});
        assert!(check_config_map("cm", &exact).is_ok());
        let over = json!({"data": {"a": "x".repeat(1001)}, "binaryData": {"b": b64(1024 * 1024 - 1000)}});
        let e = check_config_map("cm", &over).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.contains("Too long: may not be more than 1048576 bytes"), "{}", e.message);
        let e = check_config_map("cm", &json!({"binaryData": {"b": "not base64!"}})).unwrap_err();
        assert_eq!(e.code, 400);
        let e = check_config_map("cm", &json!({"data": {"a/b": "x"}})).unwrap_err();
        assert!(e.message.contains("a valid config key"), "{}", e.message);
        let e = check_config_map("cm", &json!({"data": {"k": "x"}, "binaryData": {"k": b64(1)}})).unwrap_err();
        assert!(e.message.contains("Duplicate value"), "{}", e.message);
        assert_eq!(check_config_map("cm", &json!({"data": {"k": 1}})).unwrap_err().code, 400);
    }
}
