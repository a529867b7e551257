//! Keeps credentials out of what we print, log and store: the userinfo of a server or proxy URL
//! (`https://admin:pw@host`) is the one credential that travels inside an otherwise harmless
//! string, and the journal's file name is built from the server URL.

/// `url` with any `user:password@` removed from its authority; the rest is kept as written so the
/// server stays recognisable.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(at) => format!("<redacted>@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{host}{tail}"),
        None => format!("{host}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn userinfo_is_removed_and_the_rest_kept() {
        assert_eq!(redact_url("http://admin:HUNTER2@127.0.0.1:6443/"), "http://<redacted>@127.0.0.1:6443/");
        assert_eq!(redact_url("https://tok@example.com"), "https://<redacted>@example.com");
        assert_eq!(redact_url("https://a:b@c@host:1/p?q=x@y"), "https://<redacted>@host:1/p?q=x@y");
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        for u in ["https://127.0.0.1:6443", "https://[::1]:6443/base", "host:1", ""] {
            assert_eq!(redact_url(u), u);
        }
    }
}
