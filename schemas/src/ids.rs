//! Newtypes for identifiers and calendar dates that cross crate boundaries.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};

use crate::error::{Reason, ValidationError};

/// Longest series id accepted, in bytes. Kafka keys and Iceberg partition values stay small.
pub const MAX_SERIES_ID_BYTES: usize = 128;

/// Identifier of a time series: a UUID (as in the seed) or an agency code such as `GDPC1`.
///
/// 1 to [`MAX_SERIES_ID_BYTES`] bytes of ASCII letters, digits and `. _ - : /`. The id is the Kafka
/// message key, so one series always lands in one partition and stays ordered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct SeriesId(String);

impl SeriesId {
    /// Validates `s` as a series id; the error names `field`.
    pub fn parse_field(s: &str, field: &str) -> Result<Self, ValidationError> {
        validate_id(s, field, MAX_SERIES_ID_BYTES)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Checks the shared identifier rules (non-empty, bounded length, safe ASCII).
pub(crate) fn validate_id(s: &str, field: &str, max: usize) -> Result<(), ValidationError> {
    if s.is_empty() {
        return Err(ValidationError::new(field, Reason::EmptyId));
    }
    if s.len() > max {
        return Err(ValidationError::new(field, Reason::IdTooLong { len: s.len(), max }));
    }
    if let Some((position, ch)) =
        s.char_indices().find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')))
    {
        return Err(ValidationError::new(field, Reason::InvalidIdChar { ch, position }));
    }
    Ok(())
}

impl FromStr for SeriesId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_field(s, "series_id")
    }
}

impl fmt::Display for SeriesId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SeriesId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for SeriesId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A calendar date, stored as days since 1970-01-01 (Arrow `Date32`, Iceberg `date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

impl Date {
    /// First and last dates the wire format accepts.
    pub const MIN: Date = Date(-719_162); // 0001-01-01
    pub const MAX: Date = Date(2_932_896); // 9999-12-31

    pub const fn from_days_since_epoch(days: i32) -> Self {
        Self(days)
    }

    pub const fn days_since_epoch(self) -> i32 {
        self.0
    }

    /// `None` when the date does not exist (e.g. February 30th).
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Self> {
        NaiveDate::from_ymd_opt(year, month, day).map(Self::from)
    }

    pub fn to_naive(self) -> NaiveDate {
        NaiveDate::from_num_days_from_ce_opt(self.0 + UNIX_EPOCH_DAYS_FROM_CE)
            .expect("Date holds days within chrono's range")
    }

    /// Strict `YYYY-MM-DD` (ISO 8601 calendar date, four-digit year, zero-padded).
    pub fn parse_iso(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            b[r].iter().try_fold(0u32, |acc, c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
        };
        let year = i32::try_from(digits(0..4)?).ok()?;
        if year == 0 {
            return None;
        }
        Self::from_ymd(year, digits(5..7)?, digits(8..10)?)
    }
}

impl From<NaiveDate> for Date {
    fn from(d: NaiveDate) -> Self {
        Self(d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE)
    }
}

impl FromStr for Date {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_iso(s)
            .ok_or_else(|| ValidationError::new("date", Reason::BadDate { value: crate::error::excerpt(s) }))
    }
}

impl Date {
    /// ISO `YYYY-MM-DD` as bytes for years 0–9999, `None` outside them. Computed from the day
    /// number directly (ingest formats two dates for every revision it derives an id for).
    pub fn iso_bytes(self) -> Option<[u8; 10]> {
        let (year, month, day) = civil_from_days(self.0);
        let year = u32::try_from(year).ok().filter(|y| *y <= 9999)?;
        let digit = |n: u32| b'0' + (n % 10) as u8;
        Some([
            digit(year / 1000),
            digit(year / 100),
            digit(year / 10),
            digit(year),
            b'-',
            digit(month / 10),
            digit(month),
            b'-',
            digit(day / 10),
            digit(day),
        ])
    }
}

/// Proleptic Gregorian (year, month, day) of a day number (days since 1970-01-01), by the
/// well-known era/day-of-era arithmetic (400-year cycles of 146 097 days, years from March).
fn civil_from_days(days: i32) -> (i64, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Date {
    /// ISO `YYYY-MM-DD`; years outside 0–9999 keep chrono's signed form (`+10000-01-01`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.iso_bytes() {
            Some(b) => f.write_str(std::str::from_utf8(&b).expect("ASCII digits and dashes")),
            None => write!(f, "{}", self.to_naive().format("%Y-%m-%d")),
        }
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_text_is_chronos_iso_form_for_every_day_of_years_minus_5_to_10005() {
        let first = Date::from_ymd(-5, 1, 1).unwrap().days_since_epoch();
        let last = Date::from_ymd(10_005, 12, 31).unwrap().days_since_epoch();
        for days in first..=last {
            let d = Date::from_days_since_epoch(days);
            assert_eq!(d.to_string(), d.to_naive().format("%Y-%m-%d").to_string(), "day {days}");
        }
    }

    #[test]
    fn date_round_trips_through_days_and_text() {
        for s in ["1970-01-01", "2024-02-29", "0001-01-01", "9999-12-31", "1947-01-01"] {
            let d: Date = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
            assert_eq!(Date::from_days_since_epoch(d.days_since_epoch()), d);
        }
        assert_eq!("1970-01-02".parse::<Date>().unwrap().days_since_epoch(), 1);
        assert_eq!("1969-12-31".parse::<Date>().unwrap().days_since_epoch(), -1);
        assert_eq!("0001-01-01".parse::<Date>().unwrap(), Date::MIN);
        assert_eq!("9999-12-31".parse::<Date>().unwrap(), Date::MAX);
    }

    #[test]
    fn date_rejects_loose_or_impossible_forms() {
        for s in [
            "2024-1-01",
            "2024-01-1",
            "24-01-01",
            "2024/01/01",
            "2024-02-30",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "0000-01-01",
            "2024-01-01T00:00:00",
            "",
            "２０２４-01-01",
            "+2024-01-01",
        ] {
            let err = s.parse::<Date>().unwrap_err();
            assert_eq!(err.field(), "date", "{s}");
            assert_eq!(err.reason().code(), "bad_date", "{s}");
        }
    }

    #[test]
    fn series_id_rules() {
        assert!("GDPC1".parse::<SeriesId>().is_ok());
        assert!("6f1c2d4e-9a8b-4c3d-8e7f-0a1b2c3d4e5f".parse::<SeriesId>().is_ok());
        assert!("fred:GDP/real_2017.q".parse::<SeriesId>().is_ok());
        assert_eq!("".parse::<SeriesId>().unwrap_err().reason().code(), "empty_id");
        let long = "x".repeat(MAX_SERIES_ID_BYTES + 1);
        assert_eq!(long.parse::<SeriesId>().unwrap_err().reason().code(), "id_too_long");
        assert!("x".repeat(MAX_SERIES_ID_BYTES).parse::<SeriesId>().is_ok());
        let err = "GDP C1".parse::<SeriesId>().unwrap_err();
        assert_eq!(err.reason(), &Reason::InvalidIdChar { ch: ' ', position: 3 });
        assert_eq!("é".parse::<SeriesId>().unwrap_err().reason().code(), "invalid_id_char");
    }
}
