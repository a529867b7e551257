//! The TokenRequest subresource (`POST .../serviceaccounts/NAME/token`), as kube-apiserver
//! serves it: `create` on `serviceaccounts/token` (checked with every request), 404 for a
//! ServiceAccount that does not exist, `spec.expirationSeconds` defaulted to an hour and
//! refused below 10 minutes or above 2^32 seconds, and a `TokenRequest` back with
//! `status.token` and `status.expirationTimestamp`. The token authenticates as the
//! ServiceAccount until it expires, and only while that same ServiceAccount (by UID) exists,
//! and only when its audiences include the apiserver's, as bound tokens do. `kubectl create
//! token` works against it.

use std::time::Duration;

use serde_json::{Value, json};

use super::Sim;
use super::authn::{Binding, service_account_user};
use super::clock::{rfc3339, unix_now};
use super::status::ApiError;
use super::store::StorageKey;

/// The audience the simulated apiserver accepts (kube-apiserver's default `--api-audiences`,
/// from its service-account issuer).
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
const DEFAULT_SECONDS: i64 = 3600;
const MIN_SECONDS: i64 = 10 * 60;
const MAX_SECONDS: i64 = 1 << 32;
const KIND: &str = "TokenRequest.authentication.k8s.io";

/// Answers one TokenRequest for the ServiceAccount `namespace/name` (status code and body).
pub fn create(sim: &Sim, namespace: &str, name: &str, body: &[u8], dry_run: bool) -> Result<(u16, Value), ApiError> {
    let mut req: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(&format!("the request body is not valid JSON: {e}")))?;
    if !req.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    match (req.get("kind").and_then(Value::as_str), req.get("apiVersion").and_then(Value::as_str)) {
        (Some("TokenRequest"), Some("authentication.k8s.io/v1")) | (None, None) => {}
        (kind, version) => {
            return Err(ApiError::bad_request(&format!(
                "the object ({} {}) is not an authentication.k8s.io/v1 TokenRequest",
                version.unwrap_or("?"),
                kind.unwrap_or("?")
            )));
        }
    }
    let seconds = match req.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_SECONDS,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request(&format!("spec.expirationSeconds: expected an integer, got {v}")))?,
    };
    if seconds < MIN_SECONDS {
        return Err(ApiError::invalid_field(
            KIND,
            name,
            "spec.expirationSeconds",
            "FieldValueInvalid",
            &format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes"),
        ));
    }
    if seconds > MAX_SECONDS {
        return Err(ApiError::invalid_field(
            KIND,
            name,
            "spec.expirationSeconds",
            "FieldValueInvalid",
            &format!("Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"),
        ));
    }
    let audiences: Vec<String> = match req.pointer("/spec/audiences") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(v) => return Err(ApiError::bad_request(&format!("spec.audiences: expected a list, got {v}"))),
    };
    let audiences = if audiences.is_empty() { vec![API_AUDIENCE.to_string()] } else { audiences };
    let account = sim
        .store
        .get(&StorageKey::core("serviceaccounts"), namespace, name)
        .ok_or_else(|| ApiError::not_found("serviceaccounts", name))?;
    let expires = unix_now() + seconds;
    let token = if dry_run {
        String::new()
    } else {
        let token = super::random_token().map_err(|e| ApiError::internal(format!("cannot make a token: {e}")))?;
        // A token for another audience is issued but is no credential for this apiserver.
        if audiences.iter().any(|a| a == API_AUDIENCE) {
            sim.tokens.insert_bound(
                token.clone(),
                service_account_user(namespace, name),
                Binding {
                    uid: account.meta.uid.to_string(),
                    expires: crate::clock::system_now() + Duration::from_secs(seconds as u64),
                },
            );
        }
        token
    };
    req["kind"] = json!("TokenRequest");
    req["apiVersion"] = json!("authentication.k8s.io/v1");
    req["metadata"] = json!({"name": name, "namespace": namespace, "creationTimestamp": null});
    if !req.get("spec").is_some_and(Value::is_object) {
        req["spec"] = json!({});
    }
    req["spec"]["audiences"] = json!(audiences);
    req["spec"]["expirationSeconds"] = json!(seconds);
    if req["spec"].get("boundObjectRef").is_none() {
        req["spec"]["boundObjectRef"] = Value::Null;
    }
    req["status"] = json!({"token": token, "expirationTimestamp": rfc3339(expires)});
    Ok((201, req))
}
