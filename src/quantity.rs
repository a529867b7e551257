//! Kubernetes resource quantities (`100m`, `2`, `512Mi`, `1G`) as plain numbers, for capacity
//! arithmetic in the simulator's scheduler and the planner's spare-capacity check, and as exact
//! byte counts for size flags (`--max-manifest-bytes 64Mi`), where a bad value is an error rather
//! than a zero.

/// A Kubernetes quantity (`100m`, `2`, `512Mi`, `1G`) as a number.
pub fn parse_quantity(q: &str) -> f64 {
    let q = q.trim();
    for (suffix, m) in [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("m", 0.001),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ] {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<f64>().unwrap_or(0.0) * m;
        }
    }
    q.parse().unwrap_or(0.0)
}

/// The suffixes a byte count takes, as in Kubernetes quantities.
const BYTE_SUFFIXES: [(&str, u128); 12] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

/// An exact byte count: digits with an optional fraction and an optional suffix (`67108864`,
/// `64Mi`, `1.5Gi`, `100M`). The error says what was wrong and what is accepted.
pub fn parse_bytes(q: &str) -> Result<u64, String> {
    const ACCEPTED: &str =
        "a whole number of bytes, optionally with a suffix Ki, Mi, Gi, Ti (or k, M, G, T), e.g. 64Mi";
    let q = q.trim();
    let (number, multiplier) =
        BYTE_SUFFIXES.iter().find_map(|(suffix, m)| q.strip_suffix(suffix).map(|n| (n, *m))).unwrap_or((q, 1));
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // At most 18 fraction digits keeps 10^len and the products below inside u128.
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 18 || number.ends_with('.') {
        return Err(format!("'{q}' is not a byte count: expected {ACCEPTED}"));
    }
    let too_large = || format!("'{q}' is more bytes than this build can count (at most {} bytes)", u64::MAX);
    let scale = 10u128.pow(fraction.len() as u32);
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let fraction: u128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| too_large())? };
    let scaled = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction))
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(too_large)?;
    if !scaled.is_multiple_of(scale) {
        return Err(format!("'{q}' is not a whole number of bytes: expected {ACCEPTED}"));
    }
    u64::try_from(scaled / scale).map_err(|_| too_large())
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, parse_quantity};

    #[test]
    fn byte_counts_are_exact_and_bad_ones_are_errors() {
        assert_eq!(parse_bytes("67108864"), Ok(64 << 20));
        assert_eq!(parse_bytes("64Mi"), Ok(64 << 20));
        assert_eq!(parse_bytes(" 1.5Gi "), Ok(3 << 29));
        assert_eq!(parse_bytes("100M"), Ok(100_000_000));
        assert_eq!(
            parse_bytes("16Ei"),
            Err(format!("'16Ei' is more bytes than this build can count (at most {} bytes)", u64::MAX))
        );
        for bad in ["", "Mi", "-1", "1.Mi", ".5Mi", "12x", "1e6", "0.5", "1.0000001Ki", "64 Mi"] {
            let e = parse_bytes(bad).expect_err(bad);
            assert!(e.contains(&format!("'{}'", bad.trim())) && e.contains("64Mi"), "{bad}: {e}");
        }
    }

    #[test]
    fn suffixes() {
        assert_eq!(parse_quantity("100m"), 0.1);
        assert_eq!(parse_quantity("2"), 2.0);
        assert_eq!(parse_quantity("512Mi"), 512.0 * 1_048_576.0);
        assert_eq!(parse_quantity("1G"), 1e9);
        assert_eq!(parse_quantity("bogus"), 0.0);
    }
}
