//! Kubernetes version strings as real clusters report them.
//!
//! Owns [`Version`] (a `major.minor[.patch]` with an optional distro suffix such as `-eks-4a1b2c3`,
//! `-gke.1000000` or `+k3s1`, kept for display) and [`Minor`] (a `major.minor` pair with the
//! arithmetic the skew rules need). Versions order by major, minor and patch; the suffix only
//! breaks ties so that ordering stays consistent with equality. Parsing is strict and bounded:
//! garbage gives a [`VersionError`] naming the offending value.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest version string accepted; real ones are well under 64 characters.
pub const MAX_VERSION_LEN: usize = 128;

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("version string is empty; expected something like 1.31 or v1.31.4")]
    Empty,
    #[error("version string of {len} characters is too long (at most {max}); expected something like v1.31.4")]
    TooLong { len: usize, max: usize },
    #[error("invalid version '{value}': {reason}; expected something like 1.31 or v1.31.4")]
    Invalid { value: String, reason: &'static str },
}

/// A Kubernetes `major.minor` pair, e.g. `1.31`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minor {
    pub major: u32,
    pub minor: u32,
}

impl Minor {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// The minor `n` steps later (same major).
    pub fn plus(self, n: u32) -> Self {
        Self::new(self.major, self.minor.saturating_add(n))
    }

    /// The minor `n` steps earlier (same major), saturating at `x.0`.
    pub fn minus(self, n: u32) -> Self {
        Self::new(self.major, self.minor.saturating_sub(n))
    }

    /// How many minors `self` is ahead of `other` (negative when behind). Majors other than the
    /// same one count as a very large distance so that no skew rule ever accepts them.
    pub fn minors_since(self, other: Minor) -> i64 {
        if self.major != other.major {
            return if self.major > other.major { i64::from(u32::MAX) } else { -i64::from(u32::MAX) };
        }
        i64::from(self.minor) - i64::from(other.minor)
    }

    /// This minor as a bare `major.minor` version (resolved later to a patch).
    pub fn to_version(self) -> Version {
        Version { major: self.major, minor: self.minor, patch: None, suffix: String::new(), v_prefix: false }
    }

    /// The full version `major.minor.patch` of this minor.
    pub fn with_patch(self, patch: u32) -> Version {
        Version { major: self.major, minor: self.minor, patch: Some(patch), suffix: String::new(), v_prefix: false }
    }
}

impl fmt::Display for Minor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for Minor {
    type Err = VersionError;

    /// Parses `1.31` (or `v1.31`); a full version is refused so that a minor is never confused
    /// with a patch release.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: Version = s.parse()?;
        if v.patch.is_some() || !v.suffix.is_empty() {
            return Err(VersionError::Invalid {
                value: s.to_string(),
                reason: "a minor version has no patch or suffix",
            });
        }
        Ok(v.minor_version())
    }
}

impl Serialize for Minor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Minor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A Kubernetes version: `1.31`, `v1.31.4`, `v1.31.4-eks-4a1b2c3`, `v1.30.2+k3s1`, ...
///
/// `patch` is `None` for a bare minor (`1.31`), which callers resolve to the newest known patch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: Option<u32>,
    /// Distro suffix including its leading `-` or `+`, kept verbatim for display.
    pub suffix: String,
    /// Whether the original string began with `v`, kept so that display round-trips.
    pub v_prefix: bool,
}

impl Version {
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        s.parse()
    }

    pub fn minor_version(&self) -> Minor {
        Minor::new(self.major, self.minor)
    }

    /// True for a bare `major.minor` that still needs resolving to a patch.
    pub fn is_minor_only(&self) -> bool {
        self.patch.is_none()
    }

    /// The plain `major.minor.patch` form without prefix or suffix (patch 0 when absent).
    pub fn core(&self) -> String {
        format!("{}.{}.{}", self.major, self.minor, self.patch.unwrap_or(0))
    }

    /// This version with the suffix and `v` prefix dropped, as catalog data spells versions.
    pub fn without_suffix(&self) -> Version {
        Version { suffix: String::new(), v_prefix: false, ..self.clone() }
    }

    /// The same version as a `semver::Version` (suffix dropped), for matching requirements.
    pub fn to_semver(&self) -> semver::Version {
        semver::Version::new(u64::from(self.major), u64::from(self.minor), u64::from(self.patch.unwrap_or(0)))
    }

    fn sort_key(&self) -> (u32, u32, Option<u32>) {
        (self.major, self.minor, self.patch)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key()
            .cmp(&other.sort_key())
            .then_with(|| self.suffix.cmp(&other.suffix))
            .then_with(|| self.v_prefix.cmp(&other.v_prefix))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.v_prefix {
            f.write_str("v")?;
        }
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(p) = self.patch {
            write!(f, ".{p}")?;
        }
        f.write_str(&self.suffix)
    }
}

fn parse_number(part: &str, whole: &str, what: &'static str) -> Result<u32, VersionError> {
    let invalid = |reason| VersionError::Invalid { value: whole.to_string(), reason };
    if part.is_empty() {
        return Err(invalid(what));
    }
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(what));
    }
    if part.len() > 1 && part.starts_with('0') {
        return Err(invalid("a version number has a leading zero"));
    }
    part.parse::<u32>().map_err(|_| invalid("a version number is too large"))
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.len() > MAX_VERSION_LEN {
            return Err(VersionError::TooLong { len: input.len(), max: MAX_VERSION_LEN });
        }
        let s = input.trim();
        if s.is_empty() {
            return Err(VersionError::Empty);
        }
        let (v_prefix, rest) = match s.strip_prefix(['v', 'V']) {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        // The numeric part ends at the first '-' or '+'; everything after is the distro suffix.
        let split = rest.find(['-', '+']).unwrap_or(rest.len());
        let (numbers, suffix) = rest.split_at(split);
        let invalid = |reason| VersionError::Invalid { value: input.to_string(), reason };
        let mut parts = numbers.split('.');
        let major = parse_number(parts.next().unwrap_or(""), input, "the major version is not a number")?;
        let minor = match parts.next() {
            Some(p) => parse_number(p, input, "the minor version is not a number")?,
            None => return Err(invalid("a minor version is required (major.minor)")),
        };
        let patch = match parts.next() {
            Some(p) => Some(parse_number(p, input, "the patch version is not a number")?),
            None => None,
        };
        if parts.next().is_some() {
            return Err(invalid("too many dot-separated numbers"));
        }
        if !suffix.is_empty() {
            if patch.is_none() {
                return Err(invalid("a suffix needs a full major.minor.patch version"));
            }
            if suffix.len() < 2 {
                return Err(invalid("the suffix after '-' or '+' is empty"));
            }
            let ok = suffix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'_'));
            if !ok {
                return Err(invalid("the suffix may only hold letters, digits and . - + _"));
            }
        }
        Ok(Version { major, minor, patch, suffix: suffix.to_string(), v_prefix })
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_what_clusters_report() {
        let cases = [
            ("v1.29.3", (1, 29, Some(3), "")),
            ("1.29.3", (1, 29, Some(3), "")),
            ("1.29", (1, 29, None, "")),
            ("v1.29.3-eks-4a1b2c3", (1, 29, Some(3), "-eks-4a1b2c3")),
            ("v1.28.9-gke.1000000", (1, 28, Some(9), "-gke.1000000")),
            ("v1.30.2+k3s1", (1, 30, Some(2), "+k3s1")),
            ("v1.31.1+rke2r1", (1, 31, Some(1), "+rke2r1")),
            ("v1.27.16-1.1", (1, 27, Some(16), "-1.1")),
        ];
        for (input, (major, minor, patch, suffix)) in cases {
            let v = Version::parse(input).unwrap();
            assert_eq!((v.major, v.minor, v.patch, v.suffix.as_str()), (major, minor, patch, suffix), "{input}");
            assert_eq!(v.to_string(), input, "display keeps the original form");
        }
    }

    #[test]
    fn refuses_garbage_naming_the_value() {
        for bad in
            ["1.x", "v2", "", "   ", "1", "1.2.3.4", "1.-2", "01.2", "v1.29.3-", "1.29-eks", "1.2.3-a b", "v1..2"]
        {
            let err = Version::parse(bad).unwrap_err();
            let msg = err.to_string();
            if !bad.trim().is_empty() {
                assert!(msg.contains(&format!("'{bad}'")), "{msg}");
            }
        }
        let long = "1".repeat(1000);
        assert_eq!(Version::parse(&long).unwrap_err(), VersionError::TooLong { len: 1000, max: MAX_VERSION_LEN });
        assert!(Version::parse("99999999999.1").is_err());
    }

    #[test]
    fn orders_by_numbers_not_text() {
        let mut vs: Vec<Version> =
            ["1.30.1", "v1.9.0", "1.29.10", "1.29.9-eks-1", "1.29.2"].iter().map(|s| s.parse().unwrap()).collect();
        vs.sort();
        let shown: Vec<String> = vs.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["v1.9.0", "1.29.2", "1.29.9-eks-1", "1.29.10", "1.30.1"]);
    }

    #[test]
    fn minor_arithmetic() {
        let m: Minor = "1.27".parse().unwrap();
        assert_eq!(m.plus(3).to_string(), "1.30");
        assert_eq!(m.minus(2).to_string(), "1.25");
        assert_eq!(m.plus(4).minors_since(m), 4);
        assert_eq!(m.minors_since(m.plus(1)), -1);
        assert!("1.27.3".parse::<Minor>().is_err());
    }

    fn arb_suffix() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "-eks-[0-9a-f]{7}",
            "-gke\\.[0-9]{1,7}",
            "\\+k3s[0-9]",
            "\\+rke2r[0-9]",
            "-[0-9]\\.[0-9]",
        ]
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(major in 0u32..3, minor in 0u32..200, patch in proptest::option::of(0u32..500),
                                    suffix in arb_suffix(), v_prefix in any::<bool>()) {
            let suffix = if patch.is_none() { String::new() } else { suffix };
            let v = Version { major, minor, patch, suffix, v_prefix };
            let shown = v.to_string();
            let back: Version = shown.parse().unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(back.to_string(), shown);
        }

        #[test]
        fn never_panics_on_arbitrary_input(s in "\\PC{0,200}") {
            let _ = Version::parse(&s);
        }

        #[test]
        fn order_matches_numeric_tuple(a in (0u32..3, 0u32..50, 0u32..50), b in (0u32..3, 0u32..50, 0u32..50)) {
            let va = Version { major: a.0, minor: a.1, patch: Some(a.2), suffix: String::new(), v_prefix: true };
            let vb = Version { major: b.0, minor: b.1, patch: Some(b.2), suffix: String::new(), v_prefix: true };
            prop_assert_eq!(va.cmp(&vb), a.cmp(&b));
        }
    }
}
