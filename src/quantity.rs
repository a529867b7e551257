//! Kubernetes resource quantities (`100m`, `2`, `512Mi`, `1G`) as plain numbers, for capacity
//! arithmetic in the simulator's scheduler and the planner's spare-capacity check, and as exact
//! byte counts for size flags (`--max-manifest-bytes 64Mi`), where a bad value is an error rather
//! than a zero.

/// A Kubernetes quantity (`100m`, `2`, `512Mi`, `1G`, `1.5e3`) as a number; anything
/// [`parse_strict`] refuses (after trimming spaces) is 0.
pub fn parse_quantity(q: &str) -> f64 {
    parse_strict(q.trim()).unwrap_or(0.0)
}

/// What `resource.ParseQuantity` says of a string that is no quantity.
pub const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// What it says of a number with an unknown suffix.
pub const QUANTITY_SUFFIX_ERROR: &str = "unable to parse quantity's suffix";

/// A quantity read as `resource.ParseQuantity` reads it: an optional sign, digits with an
/// optional fraction, then one suffix — binary (`Ki` … `Ei`), decimal (`n`, `u`, `m`, none, `k`,
/// `M`, `G`, `T`, `P`, `E`) or an exponent (`e3`, `E-2`). The error is its message. The value is
/// an `f64`, so a quantity too large for one (`1e400`) is infinite: callers that count with it
/// refuse that.
pub fn parse_strict(q: &str) -> Result<f64, String> {
    let b = q.as_bytes();
    if b.is_empty() {
        return Err(QUANTITY_FORMAT_ERROR.into());
    }
    let mut pos = 0;
    let negative = match b[0] {
        b'-' => {
            pos = 1;
            true
        }
        b'+' => {
            pos = 1;
            false
        }
        _ => false,
    };
    let digits_from = |start: usize| b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
    let whole_len = digits_from(pos);
    let whole = &q[pos..pos + whole_len];
    pos += whole_len;
    let mut fraction = "";
    if pos < b.len() && b[pos] == b'.' {
        let n = digits_from(pos + 1);
        fraction = &q[pos + 1..pos + 1 + n];
        pos += 1 + n;
    }
    // As Go's parser: the suffix is letters from `eEinumkKMGTP`, then an optional sign and digits.
    let suffix = &q[pos..];
    let letters = suffix.bytes().take_while(|c| b"eEinumkKMGTP".contains(c)).count();
    let mut rest = &suffix.as_bytes()[letters..];
    if let Some(c) = rest.first()
        && (*c == b'-' || *c == b'+')
    {
        rest = &rest[1..];
    }
    if !rest.iter().all(|c| c.is_ascii_digit()) {
        return Err(QUANTITY_FORMAT_ERROR.into());
    }
    let mantissa: f64 = match format!("{}.{}", if whole.is_empty() { "0" } else { whole }, fraction).parse() {
        Ok(m) => m,
        Err(_) => return Err(QUANTITY_FORMAT_ERROR.into()),
    };
    let multiplier = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => match s[1..].parse::<i32>() {
            Ok(e) => 10f64.powi(e),
            Err(_) => return Err(QUANTITY_SUFFIX_ERROR.into()),
        },
        _ => return Err(QUANTITY_SUFFIX_ERROR.into()),
    };
    let v = mantissa * multiplier;
    Ok(if negative { -v } else { v })
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
    use super::*;

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
        assert_eq!(parse_quantity("1.5e3"), 1500.0);
        assert_eq!(parse_quantity("2Pi"), 2.0 * 1024f64.powi(5));
        assert_eq!(parse_quantity(" 250m "), 0.25);
        assert_eq!(parse_strict("abc").unwrap_err(), QUANTITY_FORMAT_ERROR);
        assert_eq!(parse_strict("lots").unwrap_err(), QUANTITY_FORMAT_ERROR);
        assert_eq!(parse_strict("5Gb").unwrap_err(), QUANTITY_FORMAT_ERROR);
        assert_eq!(parse_strict("5mm").unwrap_err(), QUANTITY_SUFFIX_ERROR);
        assert_eq!(parse_strict("-5Gi").unwrap(), -5.0 * 1024f64.powi(3));
        assert!(parse_strict("1e400").unwrap().is_infinite());
        assert_eq!(parse_strict(".5").unwrap(), 0.5);
        assert_eq!(parse_strict("").unwrap_err(), QUANTITY_FORMAT_ERROR);
    }
}
