//! Wall-clock timestamps in Kubernetes' RFC 3339 form, and age text for tables.
//!
//! `jiff::Timestamp` (already in the tree through k8s-openapi and kube-core) formats and parses
//! the timestamps; only kubectl's short age text is written here.

use jiff::Timestamp;

pub fn unix_now() -> i64 {
    crate::clock::now().as_second()
}

/// `secs` since the epoch as the apiserver writes `metav1.Time`: whole seconds, UTC, `Z`
/// (`1970-01-01T00:00:00Z` for seconds beyond jiff's years, -9999 to 9999).
pub fn rfc3339(secs: i64) -> String {
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH).to_string()
}

pub fn now_rfc3339() -> String {
    rfc3339(unix_now())
}

/// Whole seconds since the epoch of an RFC 3339 timestamp, with the fractions
/// (`2026-01-02T03:04:05.123456Z`, as `metav1.MicroTime` has them) and offsets (`+01:00`)
/// apiserver clients may write. A fraction is dropped, not rounded.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<Timestamp>().ok().map(|t| t.as_second())
}

/// kubectl's short age form: `45s`, `12m`, `5h`, `3d`, `2y`.
pub fn age(created: &str, now: i64) -> String {
    let Some(t) = parse_rfc3339(created) else { return "<unknown>".into() };
    let d = (now - t).max(0);
    match d {
        0..=119 => format!("{d}s"),
        120..=7199 => format!("{}m", d / 60),
        7200..=172_799 => format!("{}h", d / 3600),
        172_800..=63_071_999 => format!("{}d", d / 86_400),
        _ => format!("{}y", d / 31_536_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_age() {
        let t = 1_764_000_000;
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(t), "2025-11-24T16:00:00Z");
        assert_eq!(age(&rfc3339(t), t + 30), "30s");
        assert_eq!(age(&rfc3339(t), t + 600), "10m");
        assert_eq!(age(&rfc3339(t), t + 3 * 86_400), "3d");
        assert_eq!(age("yesterday", t), "<unknown>");
    }

    #[test]
    fn parses_fractions_and_offsets() {
        let t = parse_rfc3339("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(parse_rfc3339("2026-01-02T03:04:05.123456Z"), Some(t));
        assert_eq!(parse_rfc3339("2026-01-02T03:04:05.999999999Z"), Some(t));
        assert_eq!(parse_rfc3339("2026-01-02T04:04:05+01:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-01-01T23:34:05.5-03:30"), Some(t));
        for bad in ["", "2026-01-02", "2026-01-02T03:04:05", "2026-02-30T03:04:05Z", "2026-01-02T25:04:05Z"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
