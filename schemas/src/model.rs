//! The seed's domain records, `EconomicSeries` and `DataPoint`, and a nanosecond timestamp.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::error::{Reason, ValidationError, excerpt};
use crate::ids::{Date, SeriesId};

/// Nanoseconds since the Unix epoch, UTC (Arrow `Timestamp(Nanosecond, None)` in the seed schemas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// Microseconds, the precision of Iceberg v2 `timestamp` columns (truncated toward -inf).
    pub const fn micros(self) -> i64 {
        self.0.div_euclid(1_000)
    }

    pub const fn from_micros(micros: i64) -> Self {
        Self(micros.saturating_mul(1_000))
    }

    pub fn now() -> Self {
        Self::from(Utc::now())
    }

    /// RFC 3339 with an offset (`Z` or `+hh:mm`), normalised to UTC.
    pub fn parse_rfc3339(s: &str, field: &str) -> Result<Self, ValidationError> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .and_then(|t| t.with_timezone(&Utc).timestamp_nanos_opt())
            .map(Self)
            .ok_or_else(|| ValidationError::new(field, Reason::BadTimestamp { value: excerpt(s) }))
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        // Representable range is 1677..2262; clamp rather than panic on absurd clocks.
        Self(t.timestamp_nanos_opt().unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = DateTime::<Utc>::from_timestamp_nanos(self.0);
        f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Metadata of one economic time series (the seed's `EconomicSeries`).
#[derive(Debug, Clone, PartialEq)]
pub struct EconomicSeries {
    pub id: SeriesId,
    pub source_id: String,
    pub external_id: String,
    pub title: String,
    pub description: Option<String>,
    pub units: Option<String>,
    pub frequency: String,
    pub seasonal_adjustment: Option<String>,
    pub start_date: Option<Date>,
    pub end_date: Option<Date>,
    pub is_active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Notes on the series (wire version 2; not in the seed's Arrow schema).
    pub notes: Option<String>,
    /// The release the series belongs to (wire version 2).
    pub release: Option<String>,
    /// When the source last updated the series (wire version 2).
    pub last_updated: Option<Timestamp>,
}

/// One published value of one observation date: a revision (the seed's `DataPoint`).
///
/// `value == None` means "published as missing" (ALFRED's `.`), which differs from "no row".
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    pub id: Uuid,
    pub series_id: SeriesId,
    pub date: Date,
    pub value: Option<f64>,
    pub revision_date: Date,
    pub is_original_release: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl DataPoint {
    /// The vintage key: one value per `(series_id, date, revision_date)`; a later write of the same
    /// key is a correction.
    pub fn key(&self) -> (&SeriesId, Date, Date) {
        (&self.series_id, self.date, self.revision_date)
    }

    /// Same key, same value (bitwise for floats, so `-0.0` differs from `0.0`, and missing equals
    /// missing): the duplicate that ingest and compaction may drop.
    pub fn same_observation(&self, other: &Self) -> bool {
        self.key() == other.key()
            && self.value.map(f64::to_bits) == other.value.map(f64::to_bits)
            && self.is_original_release == other.is_original_release
    }
}

/// Deterministic id for a revision that arrives without one: UUID v5 of its vintage key, so a
/// re-published message gets the same id.
pub fn derived_data_point_id(series_id: &SeriesId, date: Date, revision_date: Date) -> Uuid {
    derived_id_with(series_id.as_str(), date, revision_date, &mut Vec::new())
}

/// [`derived_data_point_id`] for a validated series id, building the name in `buf` (reused
/// across rows by the bulk decoder, so no allocation or formatting machinery per revision).
pub(crate) fn derived_id_with(series_id: &str, date: Date, revision_date: Date, buf: &mut Vec<u8>) -> Uuid {
    /// Namespace for vintagelake data point ids (a fixed random UUID).
    const NAMESPACE: Uuid = Uuid::from_u128(0x3f0c_9d7e_51a2_4b8e_9c61_7f2e_0d4b_a1c5);
    let push_date = |buf: &mut Vec<u8>, d: Date| match d.iso_bytes() {
        Some(b) => buf.extend_from_slice(&b),
        None => buf.extend_from_slice(d.to_string().as_bytes()),
    };
    buf.clear();
    buf.extend_from_slice(series_id.as_bytes());
    buf.push(0x1f);
    push_date(buf, date);
    buf.push(0x1f);
    push_date(buf, revision_date);
    Uuid::new_v5(&NAMESPACE, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_parses_offsets_and_prints_utc() {
        let t = Timestamp::parse_rfc3339("2024-04-25T14:30:00+02:00", "created_at").unwrap();
        assert_eq!(t.to_string(), "2024-04-25T12:30:00Z");
        let t2 = Timestamp::parse_rfc3339(&t.to_string(), "created_at").unwrap();
        assert_eq!(t, t2);
        let frac = Timestamp::parse_rfc3339("1970-01-01T00:00:00.000000123Z", "x").unwrap();
        assert_eq!(frac.nanos(), 123);
        assert_eq!(frac.micros(), 0);
        assert_eq!(Timestamp::from_nanos(-1).micros(), -1);
    }

    #[test]
    fn timestamp_rejections_name_the_field() {
        for bad in ["2024-04-25", "2024-04-25 12:30:00", "yesterday", "2024-04-25T25:00:00Z"] {
            let e = Timestamp::parse_rfc3339(bad, "updated_at").unwrap_err();
            assert_eq!(e.field(), "updated_at");
            assert_eq!(e.reason().code(), "bad_timestamp");
        }
    }

    #[test]
    fn derived_ids_are_stable_and_key_specific() {
        let s: SeriesId = "GDPC1".parse().unwrap();
        let d: Date = "2024-01-01".parse().unwrap();
        let r1: Date = "2024-04-25".parse().unwrap();
        let r2: Date = "2024-05-30".parse().unwrap();
        assert_eq!(derived_data_point_id(&s, d, r1), derived_data_point_id(&s, d, r1));
        assert_ne!(derived_data_point_id(&s, d, r1), derived_data_point_id(&s, d, r2));
        assert_eq!(derived_data_point_id(&s, d, r1).get_version_num(), 5);
        // Ids are stored data: the derivation must never change (Python's uuid.uuid5 of the same
        // namespace and name "GDPC1\x1f2024-01-01\x1f2024-04-25" gives this value).
        assert_eq!(derived_data_point_id(&s, d, r1).to_string(), "c56c4d96-3be2-5bcb-9e85-4adae13e59f5");
    }
}
