//! Who is asking: the simulator's authenticators, in kube-apiserver's order. A client
//! certificate that chains to the cluster CA names the user (CN) and groups (O); otherwise a
//! bearer token from the scenario's users or ServiceAccounts; otherwise, when nothing was
//! presented, `system:anonymous`. A credential that was presented and is not accepted is a 401,
//! never a fall-back to anonymous. Authenticated users also carry `system:authenticated`, and
//! ServiceAccounts their two `system:serviceaccounts` groups. Impersonation headers are honoured
//! only when the real user may `impersonate` the users, groups or ServiceAccounts named.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::http::HeaderMap;

use super::rbac::{Attributes, Authorizer, UserInfo};

pub const ANONYMOUS: &str = "system:anonymous";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
pub const AUTHENTICATED: &str = "system:authenticated";

/// What the TLS layer learned about a connection: the client certificate's verdict, if one was
/// presented.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    pub cert: Option<Result<UserInfo, String>>,
}

/// Why a request was not authenticated (always answered 401 "Unauthorized").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized;

/// Why an impersonation was refused (answered 403 with the apiserver's wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImpersonationRefused(pub String);

/// The bearer tokens the simulator accepts.
#[derive(Debug, Default)]
pub struct Tokens {
    by_token: RwLock<HashMap<String, (UserInfo, Option<Binding>)>>,
}

/// What a token from the TokenRequest API is bound to: the ServiceAccount's UID (a deleted and
/// recreated ServiceAccount does not inherit its tokens) and an expiry.
#[derive(Debug, Clone)]
pub struct Binding {
    pub uid: String,
    pub expires: std::time::SystemTime,
}

impl Tokens {
    pub fn insert(&self, token: String, user: UserInfo) {
        self.by_token.write().unwrap_or_else(|p| p.into_inner()).insert(token, (user, None));
    }

    /// A token issued by the TokenRequest API.
    pub fn insert_bound(&self, token: String, user: UserInfo, binding: Binding) {
        self.by_token.write().unwrap_or_else(|p| p.into_inner()).insert(token, (user, Some(binding)));
    }

    fn get(&self, token: &str) -> Option<(UserInfo, Option<Binding>)> {
        self.by_token.read().unwrap_or_else(|p| p.into_inner()).get(token).cloned()
    }
}

/// The user of a ServiceAccount, with the groups kube-apiserver gives it.
pub fn service_account_user(namespace: &str, name: &str) -> UserInfo {
    UserInfo {
        name: format!("system:serviceaccount:{namespace}:{name}"),
        groups: vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{namespace}")],
    }
}

fn with_authenticated(mut user: UserInfo) -> UserInfo {
    if !user.groups.iter().any(|g| g == AUTHENTICATED) {
        user.groups.push(AUTHENTICATED.into());
    }
    user
}

/// Authenticates one request. A ServiceAccount's token is honoured only while the
/// ServiceAccount exists, as the apiserver's token authenticator checks.
pub fn authenticate(
    conn: Option<&ConnInfo>,
    headers: &HeaderMap,
    tokens: &Tokens,
    store: &super::store::Store,
) -> Result<UserInfo, Unauthorized> {
    if let Some(Some(Ok(user))) = conn.map(|c| &c.cert) {
        return Ok(with_authenticated(user.clone()));
    }
    let authorization = headers.get(http::header::AUTHORIZATION);
    if let Some(value) = authorization {
        let text = value.to_str().map_err(|_| Unauthorized)?;
        let (scheme, token) = text.split_once(' ').ok_or(Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Unauthorized);
        }
        let (user, binding) = tokens.get(token.trim()).ok_or(Unauthorized)?;
        if let Some((ns, name)) = user.name.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
            let account =
                store.get(&super::store::StorageKey::core("serviceaccounts"), ns, name).ok_or(Unauthorized)?;
            if let Some(b) = binding
                && (*account.meta.uid != *b.uid || crate::clock::system_now() >= b.expires)
            {
                return Err(Unauthorized);
            }
        }
        return Ok(with_authenticated(user));
    }
    if let Some(Some(Err(_))) = conn.map(|c| &c.cert) {
        return Err(Unauthorized);
    }
    Ok(UserInfo { name: ANONYMOUS.into(), groups: vec![UNAUTHENTICATED.into()] })
}

/// Applies `Impersonate-User` / `Impersonate-Group` headers, checking `impersonate` for each.
pub fn impersonate(user: UserInfo, headers: &HeaderMap, authz: &Authorizer) -> Result<UserInfo, ImpersonationRefused> {
    let as_user = headers.get("impersonate-user").and_then(|v| v.to_str().ok()).map(str::to_string);
    let as_groups: Vec<String> =
        headers.get_all("impersonate-group").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    let Some(target) = as_user else {
        if as_groups.is_empty() {
            return Ok(user);
        }
        return Err(ImpersonationRefused("requested impersonation of groups without a user".into()));
    };
    let check = |attrs: Attributes| -> Result<(), ImpersonationRefused> {
        if authz.authorize(&user, &attrs).allowed {
            Ok(())
        } else {
            Err(ImpersonationRefused(super::rbac::forbidden_message(&user, &attrs)))
        }
    };
    let resource = |resource: &str, namespace: &str, name: &str| {
        Attributes::resource("impersonate", "", resource, namespace, name)
    };
    let mut as_info = match target.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
        Some((ns, name)) => {
            check(resource("serviceaccounts", ns, name))?;
            service_account_user(ns, name)
        }
        None => {
            check(resource("users", "", &target))?;
            UserInfo { name: target.clone(), groups: vec![] }
        }
    };
    for g in as_groups {
        check(resource("groups", "", &g))?;
        if !as_info.groups.contains(&g) {
            as_info.groups.push(g);
        }
    }
    Ok(if as_info.name == ANONYMOUS { as_info } else { with_authenticated(as_info) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, format!("Bearer {t}").parse().unwrap());
        h
    }

    fn authenticate(conn: Option<&ConnInfo>, headers: &HeaderMap, tokens: &Tokens) -> Result<UserInfo, Unauthorized> {
        super::authenticate(conn, headers, tokens, &super::super::store::Store::new(10))
    }

    #[test]
    fn order_and_failures_follow_the_apiserver() {
        let tokens = Tokens::default();
        tokens.insert("good".into(), UserInfo { name: "bob".into(), groups: vec!["g".into()] });
        let anon = authenticate(None, &HeaderMap::new(), &tokens).unwrap();
        assert_eq!(anon.name, ANONYMOUS);
        assert_eq!(anon.groups, vec![UNAUTHENTICATED.to_string()]);
        let bob = authenticate(None, &bearer("good"), &tokens).unwrap();
        assert_eq!(bob.groups, vec!["g".to_string(), AUTHENTICATED.to_string()]);
        assert_eq!(authenticate(None, &bearer("bad"), &tokens), Err(Unauthorized));
        let bad_cert = ConnInfo { cert: Some(Err("unknown authority".into())) };
        assert_eq!(authenticate(Some(&bad_cert), &HeaderMap::new(), &tokens), Err(Unauthorized));
        // A bad certificate with a good token: the token authenticator still answers.
        assert_eq!(authenticate(Some(&bad_cert), &bearer("good"), &tokens).unwrap().name, "bob");
        let cert = ConnInfo { cert: Some(Ok(UserInfo { name: "alice".into(), groups: vec![] })) };
        assert_eq!(authenticate(Some(&cert), &bearer("bad"), &tokens).unwrap().name, "alice");
        let mut basic = HeaderMap::new();
        basic.insert(http::header::AUTHORIZATION, "Basic YTpi".parse().unwrap());
        assert_eq!(authenticate(None, &basic, &tokens), Err(Unauthorized));
    }
}
