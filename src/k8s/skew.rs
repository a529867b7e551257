//! The version skew rule, once: how many minors a component (a kubelet, kube-proxy) may trail
//! the oldest kube-apiserver. Catalog rules say "at most N older", optionally "at most M older
//! for versions before V" (the policy widened from 2 to 3 minors at 1.28).

use crate::catalog::OlderThan;
use crate::version::Minor;

/// Minors a component at `version` may trail the apiserver.
pub fn allowed_lag(max_older: u32, older_than: Option<&OlderThan>, version: Minor) -> u32 {
    match older_than {
        Some(o) if version < o.version => o.max_older,
        _ => max_older,
    }
}

/// Whether a component at `component` may run against an apiserver at `apiserver`: never newer,
/// and at most [`allowed_lag`] minors older.
pub fn within(max_older: u32, older_than: Option<&OlderThan>, apiserver: Minor, component: Minor) -> bool {
    let lag = apiserver.minors_since(component);
    lag >= 0 && lag <= i64::from(allowed_lag(max_older, older_than, component))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Minor {
        s.parse::<crate::version::Version>().unwrap().minor_version()
    }

    #[test]
    fn the_window_widens_for_newer_components() {
        let before_128 = OlderThan { version: m("1.25.0"), max_older: 2 };
        assert_eq!(allowed_lag(3, Some(&before_128), m("1.24.0")), 2);
        assert_eq!(allowed_lag(3, Some(&before_128), m("1.25.0")), 3);
        assert!(within(3, None, m("1.30.0"), m("1.27.0")));
        assert!(!within(3, None, m("1.31.0"), m("1.27.0")));
        assert!(!within(3, None, m("1.29.0"), m("1.30.0")));
    }
}
