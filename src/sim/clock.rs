//! Wall-clock timestamps in Kubernetes' RFC 3339 form, and age text for tables.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::catalog::Date;

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let date = Date::from_days_since_epoch(days).unwrap_or(Date { year: 1970, month: 1, day: 1 });
    format!("{date}T{:02}:{:02}:{:02}Z", rem / 3600, (rem / 60) % 60, rem % 60)
}

pub fn now_rfc3339() -> String {
    rfc3339(unix_now())
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (fractions and offsets other than Z are not produced here).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let date: Date = s.get(0..10)?.parse().ok()?;
    let hms = s.get(11..19)?;
    let mut parts = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    Some(date.days_since_epoch() * 86_400 + h * 3600 + m * 60 + sec)
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
        assert_eq!(age(&rfc3339(t), t + 30), "30s");
        assert_eq!(age(&rfc3339(t), t + 600), "10m");
        assert_eq!(age(&rfc3339(t), t + 3 * 86_400), "3d");
    }
}
