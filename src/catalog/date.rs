//! Calendar dates as the catalog writes them (`YYYY-MM-DD`).
//!
//! A deliberately small type: the catalog only needs to parse, compare and count days between
//! support dates. Callers pass "today" in, so nothing here reads a clock.
//!
//! `jiff` (already in the tree through k8s-openapi and kube-core) does the calendar: validity,
//! ordering and day counts are `jiff::civil::Date`'s. What is written here is the catalog's
//! narrower contract around it: exactly `YYYY-MM-DD` in ASCII digits, years 1970 to 9999, and
//! one error message.

use std::fmt;
use std::str::FromStr;

use jiff::civil;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A proleptic Gregorian calendar date, 1970-01-01 to 9999-12-31.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(civil::Date);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid date '{value}': expected YYYY-MM-DD, for example 2025-08-27")]
pub struct DateError {
    pub value: String,
}

const YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

impl Date {
    /// 1970-01-01, day 0 of [`Date::days_since_epoch`].
    pub const UNIX_EPOCH: Date = Date(civil::Date::constant(1970, 1, 1));

    pub fn new(year: i32, month: u8, day: u8) -> Option<Self> {
        if !YEARS.contains(&year) {
            return None;
        }
        let date = civil::Date::new(i16::try_from(year).ok()?, i8::try_from(month).ok()?, i8::try_from(day).ok()?);
        date.ok().map(Self)
    }

    /// The calendar date in UTC at `t`, if it is one of this type's years.
    pub fn from_timestamp(t: jiff::Timestamp) -> Option<Self> {
        Self::from_civil(jiff::tz::Offset::UTC.to_datetime(t).date())
    }

    /// `date`, if it is one of this type's years.
    pub fn from_civil(date: civil::Date) -> Option<Self> {
        YEARS.contains(&i32::from(date.year())).then_some(Self(date))
    }

    /// The `jiff` date, for calendar work beyond what this type offers.
    pub fn civil(self) -> civil::Date {
        self.0
    }

    pub fn year(self) -> i32 {
        i32::from(self.0.year())
    }

    /// 1 to 12.
    pub fn month(self) -> u8 {
        self.0.month().unsigned_abs()
    }

    /// 1 to 31.
    pub fn day(self) -> u8 {
        self.0.day().unsigned_abs()
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(self) -> i64 {
        Self::UNIX_EPOCH.days_until(self)
    }

    /// The date `days` after 1970-01-01.
    pub fn from_days_since_epoch(days: i64) -> Option<Self> {
        let span = jiff::Span::new().try_days(days).ok()?;
        Self::from_civil(Self::UNIX_EPOCH.0.checked_add(span).ok()?)
    }

    /// Signed number of days from `self` to `later`.
    pub fn days_until(self, later: Date) -> i64 {
        // Between two dates the difference is in days by default, and never fails.
        self.0.until(later.0).map_or(0, |span| i64::from(span.get_days()))
    }
}

impl From<Date> for civil::Date {
    fn from(date: Date) -> Self {
        date.0
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Years are 1970 to 9999, so jiff writes exactly `YYYY-MM-DD`.
        write!(f, "{}", self.0)
    }
}

impl FromStr for Date {
    type Err = DateError;

    /// Exactly `YYYY-MM-DD` in ASCII digits: jiff's own parser also takes other ISO 8601 forms
    /// (`20250827`, `+002025-08-27`, a date with a time), which a catalog should not hold.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DateError { value: s.chars().take(64).collect() };
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| s.get(r).filter(|p| p.bytes().all(|c| c.is_ascii_digit()));
        let year = num(0..4).and_then(|p| p.parse().ok()).ok_or_else(err)?;
        let month = num(5..7).and_then(|p| p.parse().ok()).ok_or_else(err)?;
        let day = num(8..10).and_then(|p| p.parse().ok()).ok_or_else(err)?;
        Date::new(year, month, day).ok_or_else(err)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_counts_days() {
        let d: Date = "2024-02-29".parse().unwrap();
        assert_eq!(d.to_string(), "2024-02-29");
        assert_eq!((d.year(), d.month(), d.day()), (2024, 2, 29));
        assert_eq!("1970-01-01".parse::<Date>().unwrap().days_since_epoch(), 0);
        assert_eq!(Date::UNIX_EPOCH, Date::new(1970, 1, 1).unwrap());
        let a: Date = "2025-11-26".parse().unwrap();
        let b: Date = "2026-11-26".parse().unwrap();
        assert_eq!(a.days_until(b), 365);
        assert_eq!(b.days_until(a), -365);
        assert_eq!(Date::new(2000, 3, 1).unwrap().days_since_epoch(), 11_017);
        assert_eq!(Date::new(9999, 12, 31).unwrap().days_since_epoch(), 2_932_896);
        for n in [0, 1, 59, 365, 10_000, 20_000, 30_000, 2_932_896] {
            assert_eq!(Date::from_days_since_epoch(n).unwrap().days_since_epoch(), n);
        }
        for out in [-1, 2_932_897, i64::MAX, i64::MIN] {
            assert_eq!(Date::from_days_since_epoch(out), None, "{out}");
        }
        let t: jiff::Timestamp = "2026-01-01T23:59:59-01:00".parse().unwrap();
        assert_eq!(Date::from_timestamp(t).unwrap().to_string(), "2026-01-02");
        assert!(a < b);
        assert_eq!(serde_json::to_value(a).unwrap(), serde_json::json!("2025-11-26"));
        assert_eq!(serde_json::from_value::<Date>(serde_json::json!("2025-11-26")).unwrap(), a);
    }

    #[test]
    fn refuses_bad_dates() {
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "2024-01-1",
            "yesterday",
            "",
            "2024-04-31",
            "２０２４-01-01",
            "1969-12-31",
            "0000-01-01",
            "20240101",
            "+02024-01-01",
            "2024-01-01T00:00:00Z",
            "2024-00-10",
            "2024-01-00",
        ] {
            let err = bad.parse::<Date>().unwrap_err();
            assert_eq!(err.to_string(), format!("invalid date '{bad}': expected YYYY-MM-DD, for example 2025-08-27"));
        }
        assert_eq!(Date::new(1969, 12, 31), None);
        assert_eq!(Date::new(10_000, 1, 1), None);
        assert_eq!(Date::new(2024, 200, 1), None);
        let err = serde_json::from_value::<Date>(serde_json::json!("2024-1-01")).unwrap_err();
        assert!(err.to_string().contains("expected YYYY-MM-DD, for example 2025-08-27"), "{err}");
    }
}
