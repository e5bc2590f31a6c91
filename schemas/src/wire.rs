//! The Kafka wire format, versions 1 and 2: one JSON object per message (documented in
//! `docs/wire-format.md`, JSON Schemas in `docs/schemas/`), and the validator that turns any byte
//! string into a typed record or a precise [`ValidationError`].
//!
//! Version 2 adds optional fields (a data point's observation `status` and `comment`; a series'
//! `notes`, `release` and `last_updated`); version 1 is accepted forever and means "none of them".

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::error::{Reason, ValidationError, excerpt};
use crate::ids::{Date, SeriesId, validate_id};
use crate::model::{DataPoint, EconomicSeries, Timestamp, derived_data_point_id};

/// The newest wire version this build reads and writes. Messages are written in the oldest version
/// that carries them (version 1 when no version-2 field is set), so older pipelines keep reading
/// what newer producers send unless it uses the new fields.
pub const WIRE_VERSION: u64 = 2;
const SUPPORTED_VERSIONS: &str = "1, 2";

/// Largest JSON message accepted (bulk loads use the Arrow IPC format instead).
pub const MAX_JSON_MESSAGE_BYTES: usize = 1 << 20;
/// Longest `source_id` / `external_id`.
pub const MAX_SHORT_ID_BYTES: usize = 128;
/// Longest `title`.
pub const MAX_TITLE_BYTES: usize = 1024;
/// Longest `description`.
pub const MAX_DESCRIPTION_BYTES: usize = 64 * 1024;
/// Longest `units`, `frequency`, `seasonal_adjustment`, `release`.
pub const MAX_LABEL_BYTES: usize = 256;
/// Longest observation `status` code (SDMX `OBS_STATUS` codes are one or two letters).
pub const MAX_STATUS_BYTES: usize = 8;
/// Longest observation `comment`.
pub const MAX_COMMENT_BYTES: usize = 1024;
/// Longest series `notes`.
pub const MAX_NOTES_BYTES: usize = 64 * 1024;

/// A field of a wire message and whether a producer must send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireField {
    pub name: &'static str,
    pub required: bool,
}

const fn req(name: &'static str) -> WireField {
    WireField { name, required: true }
}
const fn opt(name: &'static str) -> WireField {
    WireField { name, required: false }
}

/// Fields of a data-point revision message, in documentation order (version 2: version 1's and
/// the fields [`DATA_POINT_FIELDS_V2_ONLY`] names).
pub const DATA_POINT_FIELDS: &[WireField] = &[
    req("version"),
    req("series_id"),
    req("date"),
    req("revision_date"),
    req("value"),
    opt("is_original_release"),
    opt("id"),
    opt("created_at"),
    opt("updated_at"),
    opt("status"),
    opt("comment"),
];
/// Data-point fields that version 1 does not define.
pub const DATA_POINT_FIELDS_V2_ONLY: &[&str] = &["status", "comment"];

/// Fields of a series metadata message, in documentation order.
pub const SERIES_FIELDS: &[WireField] = &[
    req("version"),
    req("id"),
    req("source_id"),
    opt("external_id"),
    req("title"),
    opt("description"),
    opt("units"),
    req("frequency"),
    opt("seasonal_adjustment"),
    opt("start_date"),
    opt("end_date"),
    opt("is_active"),
    opt("created_at"),
    opt("updated_at"),
    opt("notes"),
    opt("release"),
    opt("last_updated"),
];
/// Series fields that version 1 does not define.
pub const SERIES_FIELDS_V2_ONLY: &[&str] = &["notes", "release", "last_updated"];

/// The fields of one wire version.
pub fn fields_of_version(all: &'static [WireField], v2_only: &[&str], version: u64) -> Vec<WireField> {
    all.iter().copied().filter(|f| version >= 2 || !v2_only.contains(&f.name)).collect()
}

/// A validated data-point revision as it arrived; defaults are applied by [`Self::into_data_point`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataPointRevision {
    pub series_id: SeriesId,
    pub date: Date,
    pub revision_date: Date,
    /// `None`: published as missing.
    pub value: Option<f64>,
    pub is_original_release: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// Observation status code (version 2), e.g. SDMX `OBS_STATUS` `P` (provisional), `E`
    /// (estimated), `B` (break in series).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Free-text comment on this value (version 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl DataPointRevision {
    /// The stored record: a missing id is derived from the vintage key, missing timestamps are
    /// the time the pipeline received the message.
    pub fn into_data_point(self, received_at: Timestamp) -> DataPoint {
        let id = self.id.unwrap_or_else(|| derived_data_point_id(&self.series_id, self.date, self.revision_date));
        let created_at = self.created_at.unwrap_or(received_at);
        DataPoint {
            id,
            series_id: self.series_id,
            date: self.date,
            value: self.value,
            revision_date: self.revision_date,
            is_original_release: self.is_original_release,
            created_at,
            updated_at: self.updated_at.unwrap_or(created_at),
        }
    }

    /// The oldest wire version that carries this revision.
    pub fn wire_version(&self) -> u64 {
        if self.status.is_some() || self.comment.is_some() { 2 } else { 1 }
    }

    /// Encodes as a JSON message of [`Self::wire_version`].
    pub fn to_json(&self) -> Vec<u8> {
        versioned_json(self.wire_version(), self)
    }
}

impl From<&DataPoint> for DataPointRevision {
    fn from(p: &DataPoint) -> Self {
        Self {
            series_id: p.series_id.clone(),
            date: p.date,
            revision_date: p.revision_date,
            value: p.value,
            is_original_release: p.is_original_release,
            id: Some(p.id),
            created_at: Some(p.created_at),
            updated_at: Some(p.updated_at),
            status: None,
            comment: None,
        }
    }
}

/// `{"version": v, ...inner}`.
fn versioned_json<T: Serialize>(version: u64, inner: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Versioned<'a, T> {
        version: u64,
        #[serde(flatten)]
        inner: &'a T,
    }
    serde_json::to_vec(&Versioned { version, inner }).expect("a validated message always serialises")
}

/// A validated series metadata message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesMetadata {
    pub id: SeriesId,
    pub source_id: String,
    /// Defaults to `id`.
    pub external_id: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub units: Option<String>,
    pub frequency: String,
    pub seasonal_adjustment: Option<String>,
    pub start_date: Option<Date>,
    pub end_date: Option<Date>,
    /// Defaults to `true`.
    pub is_active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// Notes on the series (version 2), e.g. FRED's series notes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The release the series belongs to (version 2), e.g. "Gross Domestic Product".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// When the source last updated the series (version 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<Timestamp>,
}

impl SeriesMetadata {
    pub fn into_series(self, received_at: Timestamp) -> EconomicSeries {
        let created_at = self.created_at.unwrap_or(received_at);
        EconomicSeries {
            external_id: self.external_id.unwrap_or_else(|| self.id.as_str().to_owned()),
            id: self.id,
            source_id: self.source_id,
            title: self.title,
            description: self.description,
            units: self.units,
            frequency: self.frequency,
            seasonal_adjustment: self.seasonal_adjustment,
            start_date: self.start_date,
            end_date: self.end_date,
            is_active: self.is_active.unwrap_or(true),
            created_at,
            updated_at: self.updated_at.unwrap_or(created_at),
            notes: self.notes,
            release: self.release,
            last_updated: self.last_updated,
        }
    }

    /// The oldest wire version that carries this message.
    pub fn wire_version(&self) -> u64 {
        if self.notes.is_some() || self.release.is_some() || self.last_updated.is_some() { 2 } else { 1 }
    }

    /// Encodes as a JSON message of [`Self::wire_version`].
    pub fn to_json(&self) -> Vec<u8> {
        versioned_json(self.wire_version(), self)
    }
}

impl From<&EconomicSeries> for SeriesMetadata {
    fn from(s: &EconomicSeries) -> Self {
        Self {
            id: s.id.clone(),
            source_id: s.source_id.clone(),
            external_id: Some(s.external_id.clone()),
            title: s.title.clone(),
            description: s.description.clone(),
            units: s.units.clone(),
            frequency: s.frequency.clone(),
            seasonal_adjustment: s.seasonal_adjustment.clone(),
            start_date: s.start_date,
            end_date: s.end_date,
            is_active: Some(s.is_active),
            created_at: Some(s.created_at),
            updated_at: Some(s.updated_at),
            notes: s.notes.clone(),
            release: s.release.clone(),
            last_updated: s.last_updated,
        }
    }
}

/// Validates one JSON data-point revision message.
pub fn decode_data_point_json(bytes: &[u8]) -> Result<DataPointRevision, ValidationError> {
    let object = JsonObject::parse(bytes, DATA_POINT_FIELDS)?;
    object.check_version(DATA_POINT_FIELDS_V2_ONLY)?;
    let series_id = object.required("series_id", |v, f| SeriesId::parse_field(&as_str(v, f)?, f))?;
    let date = object.required("date", date_value)?;
    let revision_date = object.required("revision_date", date_value)?;
    let value = object.required_nullable("value", number_value)?.flatten();
    Ok(DataPointRevision {
        series_id,
        date,
        revision_date,
        value,
        is_original_release: object.optional("is_original_release", bool_value)?.unwrap_or(false),
        id: object.optional("id", uuid_value)?,
        created_at: object.optional("created_at", timestamp_value)?,
        updated_at: object.optional("updated_at", timestamp_value)?,
        status: object.optional("status", status_value)?,
        comment: object.optional("comment", text(MAX_COMMENT_BYTES))?,
    })
}

/// A non-empty string of at most `max` bytes.
fn text(max: usize) -> impl Fn(&RawValue, &str) -> Result<String, ValidationError> {
    move |v: &RawValue, f: &str| -> Result<String, ValidationError> {
        let s = as_str(v, f)?;
        check_text(&s, f, max)?;
        Ok(s.into_owned())
    }
}

/// The text rule of every free-text field: not blank, at most `max` bytes.
pub fn check_text(s: &str, field: &str, max: usize) -> Result<(), ValidationError> {
    if s.len() > max {
        return Err(ValidationError::new(field, Reason::TextTooLong { len: s.len(), max }));
    }
    if s.trim().is_empty() {
        return Err(ValidationError::new(field, Reason::EmptyText));
    }
    Ok(())
}

/// An observation status code: 1 to [`MAX_STATUS_BYTES`] ASCII letters, digits or `_`.
pub fn check_status(s: &str, field: &str) -> Result<(), ValidationError> {
    let well_formed =
        !s.is_empty() && s.len() <= MAX_STATUS_BYTES && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if well_formed {
        Ok(())
    } else {
        Err(ValidationError::new(field, Reason::BadCode { value: excerpt(s), max: MAX_STATUS_BYTES }))
    }
}

fn status_value(v: &RawValue, field: &str) -> Result<String, ValidationError> {
    let s = as_str(v, field)?;
    check_status(&s, field)?;
    Ok(s.into_owned())
}

/// Validates one JSON series metadata message.
pub fn decode_series_json(bytes: &[u8]) -> Result<SeriesMetadata, ValidationError> {
    let object = JsonObject::parse(bytes, SERIES_FIELDS)?;
    object.check_version(SERIES_FIELDS_V2_ONLY)?;
    let short_id = |v: &RawValue, f: &str| -> Result<String, ValidationError> {
        let s = as_str(v, f)?;
        validate_id(&s, f, MAX_SHORT_ID_BYTES)?;
        Ok(s.into_owned())
    };
    Ok(SeriesMetadata {
        id: object.required("id", |v, f| SeriesId::parse_field(&as_str(v, f)?, f))?,
        source_id: object.required("source_id", short_id)?,
        external_id: object.optional("external_id", short_id)?,
        title: object.required("title", text(MAX_TITLE_BYTES))?,
        description: object.optional("description", text(MAX_DESCRIPTION_BYTES))?,
        units: object.optional("units", text(MAX_LABEL_BYTES))?,
        frequency: object.required("frequency", text(MAX_LABEL_BYTES))?,
        seasonal_adjustment: object.optional("seasonal_adjustment", text(MAX_LABEL_BYTES))?,
        start_date: object.optional("start_date", date_value)?,
        end_date: object.optional("end_date", date_value)?,
        is_active: object.optional("is_active", bool_value)?,
        created_at: object.optional("created_at", timestamp_value)?,
        updated_at: object.optional("updated_at", timestamp_value)?,
        notes: object.optional("notes", text(MAX_NOTES_BYTES))?,
        release: object.optional("release", text(MAX_LABEL_BYTES))?,
        last_updated: object.optional("last_updated", timestamp_value)?,
    })
}

/// A top-level JSON object, split into raw (unparsed) member values, checked against the
/// message's field list: every key known, none repeated.
struct JsonObject<'a> {
    members: Vec<(&'static str, &'a RawValue)>,
}

impl<'a> JsonObject<'a> {
    fn parse(bytes: &'a [u8], fields: &[WireField]) -> Result<Self, ValidationError> {
        let text = message_text(bytes)?;
        if !text.trim_start().starts_with('{') {
            return Err(ValidationError::whole(if text.trim().is_empty() {
                Reason::Empty
            } else {
                Reason::NotAnObject
            }));
        }
        let raw: RawMembers<'a> = serde_json::from_str(text).map_err(malformed)?;
        let mut members: Vec<(&'static str, &'a RawValue)> = Vec::with_capacity(raw.0.len());
        for (key, value) in raw.0 {
            let Some(known) = fields.iter().find(|f| f.name == key) else {
                return Err(ValidationError::new(excerpt(&key), Reason::UnknownField));
            };
            if members.iter().any(|(k, _)| *k == known.name) {
                return Err(ValidationError::new(known.name, Reason::DuplicateField));
            }
            members.push((known.name, value));
        }
        Ok(Self { members })
    }

    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.members.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    /// The message's version is one this build reads, and it defines every member present
    /// (`v2_only` names the members version 1 lacks).
    fn check_version(&self, v2_only: &[&str]) -> Result<(), ValidationError> {
        let v = self.get("version").ok_or_else(|| ValidationError::new("version", Reason::MissingField))?;
        match json_kind(v) {
            "number" if v.get() == "2" => Ok(()),
            "number" if v.get() == "1" => match self.members.iter().find(|(k, _)| v2_only.contains(k)) {
                Some((k, _)) => Err(ValidationError::new(*k, Reason::NotInVersion { version: 1 })),
                None => Ok(()),
            },
            "number" | "string" => Err(ValidationError::new(
                "version",
                Reason::UnknownVersion { found: excerpt(v.get()), supported: SUPPORTED_VERSIONS },
            )),
            found => Err(ValidationError::new("version", Reason::WrongType { expected: "integer", found })),
        }
    }

    /// Present and not null.
    fn required<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&RawValue, &str) -> Result<T, ValidationError>,
    ) -> Result<T, ValidationError> {
        match self.get(name) {
            None => Err(ValidationError::new(name, Reason::MissingField)),
            Some(v) if v.get() == "null" => Err(ValidationError::new(name, Reason::NullValue)),
            Some(v) => parse(v, name),
        }
    }

    /// Present; `null` is passed to `parse` (which decides what it means).
    fn required_nullable<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&RawValue, &str) -> Result<T, ValidationError>,
    ) -> Result<Option<T>, ValidationError> {
        match self.get(name) {
            None => Err(ValidationError::new(name, Reason::MissingField)),
            Some(v) => parse(v, name).map(Some),
        }
    }

    /// Absent or `null` is `None`.
    fn optional<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&RawValue, &str) -> Result<T, ValidationError>,
    ) -> Result<Option<T>, ValidationError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.get() == "null" => Ok(None),
            Some(v) => parse(v, name).map(Some),
        }
    }
}

/// Checks size and UTF-8 before any parsing.
pub(crate) fn message_text(bytes: &[u8]) -> Result<&str, ValidationError> {
    if bytes.is_empty() {
        return Err(ValidationError::whole(Reason::Empty));
    }
    if bytes.len() > MAX_JSON_MESSAGE_BYTES {
        return Err(ValidationError::whole(Reason::TooLarge { len: bytes.len(), max: MAX_JSON_MESSAGE_BYTES }));
    }
    std::str::from_utf8(bytes).map_err(|e| ValidationError::whole(Reason::InvalidUtf8 { valid_up_to: e.valid_up_to() }))
}

fn malformed(e: serde_json::Error) -> ValidationError {
    let detail = e.to_string();
    // serde_json appends " at line L column C"; keep only the description.
    let detail = detail.split(" at line ").next().unwrap_or(&detail).to_owned();
    ValidationError::whole(Reason::MalformedJson { line: e.line(), column: e.column(), detail })
}

/// What kind of JSON value a raw member is, from its first byte (raw values are trimmed).
fn json_kind(v: &RawValue) -> &'static str {
    match v.get().as_bytes().first() {
        Some(b'"') => "string",
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

fn as_str<'v>(v: &'v RawValue, field: &str) -> Result<Cow<'v, str>, ValidationError> {
    if json_kind(v) != "string" {
        return Err(ValidationError::new(field, Reason::WrongType { expected: "string", found: json_kind(v) }));
    }
    let s: Cow<'v, str> = serde_json::from_str::<BorrowedOrOwned<'v>>(v.get()).map(|s| s.0).map_err(|e| {
        ValidationError::new(field, Reason::MalformedJson { line: e.line(), column: e.column(), detail: e.to_string() })
    })?;
    Ok(s)
}

fn date_value(v: &RawValue, field: &str) -> Result<Date, ValidationError> {
    let s = as_str(v, field)?;
    Date::parse_iso(&s).ok_or_else(|| ValidationError::new(field, Reason::BadDate { value: excerpt(&s) }))
}

fn timestamp_value(v: &RawValue, field: &str) -> Result<Timestamp, ValidationError> {
    Timestamp::parse_rfc3339(&as_str(v, field)?, field)
}

fn bool_value(v: &RawValue, field: &str) -> Result<bool, ValidationError> {
    match v.get() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ValidationError::new(field, Reason::WrongType { expected: "boolean", found: json_kind(v) })),
    }
}

fn uuid_value(v: &RawValue, field: &str) -> Result<Uuid, ValidationError> {
    let s = as_str(v, field)?;
    Uuid::try_parse(&s).map_err(|_| ValidationError::new(field, Reason::BadUuid { value: excerpt(&s) }))
}

/// A number, `null` or ALFRED's `"."` (both: published as missing).
fn number_value(v: &RawValue, field: &str) -> Result<Option<f64>, ValidationError> {
    match json_kind(v) {
        "null" => Ok(None),
        "number" => match serde_json::from_str::<f64>(v.get()) {
            Ok(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(ValidationError::new(field, Reason::NotFinite { value: excerpt(v.get()) })),
        },
        "string" if v.get() == "\".\"" => Ok(None),
        _ => Err(ValidationError::new(field, Reason::NotANumber { value: excerpt(v.get()) })),
    }
}

/// Top-level members in arrival order, values left unparsed.
struct RawMembers<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> de::Deserialize<'de> for RawMembers<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = RawMembers<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<BorrowedOrOwned<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key.0, value));
                }
                Ok(RawMembers(members))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

/// A JSON string borrowed from the input when it has no escapes.
struct BorrowedOrOwned<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for BorrowedOrOwned<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = BorrowedOrOwned<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedOrOwned(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedOrOwned(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(StrVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"version":1,"series_id":"GDPC1","date":"2024-01-01","revision_date":"2024-04-25","value":22768.866,"is_original_release":true}"#;

    fn reject(json: &str) -> ValidationError {
        decode_data_point_json(json.as_bytes()).expect_err(json)
    }

    /// Replaces one member of GOOD (or removes it with `None`).
    fn with(field: &str, raw: Option<&str>) -> String {
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(GOOD).unwrap();
        match raw {
            Some(r) => v.insert(field.into(), serde_json::from_str(r).unwrap()),
            None => v.remove(field),
        };
        serde_json::to_string(&v).unwrap()
    }

    fn assert_rejects(json: &str, field: &str, code: &str) {
        let e = reject(json);
        assert_eq!((e.field(), e.reason().code()), (field, code), "{json}: {e}");
        assert!(e.to_string().contains(field) || field == "$", "{e}");
    }

    #[test]
    fn accepts_the_documented_example() {
        let r = decode_data_point_json(GOOD.as_bytes()).unwrap();
        assert_eq!(r.series_id.as_str(), "GDPC1");
        assert_eq!(r.date.to_string(), "2024-01-01");
        assert_eq!(r.revision_date.to_string(), "2024-04-25");
        assert_eq!(r.value, Some(22768.866));
        assert!(r.is_original_release);
        assert_eq!(r.id, None);
    }

    #[test]
    fn missing_values_are_null_or_alfred_dot() {
        assert_eq!(decode_data_point_json(with("value", Some("null")).as_bytes()).unwrap().value, None);
        assert_eq!(decode_data_point_json(with("value", Some("\".\"")).as_bytes()).unwrap().value, None);
    }

    #[test]
    fn rejects_bad_dates() {
        assert_rejects(&with("date", Some("\"2024-13-01\"")), "date", "bad_date");
        assert_rejects(&with("date", Some("\"2023-02-29\"")), "date", "bad_date");
        assert_rejects(&with("revision_date", Some("\"25/04/2024\"")), "revision_date", "bad_date");
        assert_rejects(&with("date", Some("20240101")), "date", "wrong_type");
        assert_rejects(&with("date", Some("null")), "date", "null_value");
    }

    #[test]
    fn rejects_values_that_are_not_numbers() {
        assert_rejects(&with("value", Some("\"12.5\"")), "value", "not_a_number");
        assert_rejects(&with("value", Some("\"NaN\"")), "value", "not_a_number");
        assert_rejects(&with("value", Some("true")), "value", "not_a_number");
        assert_rejects(&with("value", Some("[1]")), "value", "not_a_number");
        // Beyond f64: serde_json refuses to parse it, so the raw text is reported as not finite.
        assert_rejects(&GOOD.replace("22768.866", "1e400"), "value", "not_finite");
    }

    #[test]
    fn rejects_unknown_versions() {
        assert_rejects(&with("version", Some("3")), "version", "unknown_version");
        assert_rejects(&with("version", Some("\"1\"")), "version", "unknown_version");
        assert_rejects(&with("version", Some("1.0")), "version", "unknown_version");
        assert_rejects(&with("version", Some("2.0")), "version", "unknown_version");
        assert_rejects(&with("version", Some("null")), "version", "wrong_type");
        let e = reject(&with("version", Some("7")));
        assert!(e.to_string().contains("unknown version 7; supported: 1, 2"), "{e}");
    }

    /// `with` several members replaced at once.
    fn with_all(members: &[(&str, &str)]) -> String {
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(GOOD).unwrap();
        for (field, raw) in members {
            v.insert((*field).into(), serde_json::from_str(raw).unwrap());
        }
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn version_2_carries_status_and_comment() {
        let r = decode_data_point_json(
            with_all(&[("version", "2"), ("status", "\"P\""), ("comment", "\"advance estimate\"")]).as_bytes(),
        )
        .unwrap();
        assert_eq!((r.status.as_deref(), r.comment.as_deref()), (Some("P"), Some("advance estimate")));
        assert_eq!(r.wire_version(), 2);
        assert_eq!(decode_data_point_json(&r.to_json()).unwrap(), r);
        assert!(String::from_utf8(r.to_json()).unwrap().contains("\"version\":2"));
        // Version 2 without the new fields, and null for them, means none.
        let plain = decode_data_point_json(with_all(&[("version", "2"), ("status", "null")]).as_bytes()).unwrap();
        assert_eq!((plain.status, plain.comment), (None, None));
        // Version 1 keeps being read (and written when nothing needs version 2).
        let old = decode_data_point_json(GOOD.as_bytes()).unwrap();
        assert_eq!((old.status.as_deref(), old.comment.as_deref(), old.wire_version()), (None, None, 1));
        assert!(String::from_utf8(old.to_json()).unwrap().contains("\"version\":1"));
    }

    #[test]
    fn version_2_field_rejections() {
        let v2 = |field: &str, raw: &str| with_all(&[("version", "2"), (field, raw)]);
        // A version-1 message cannot carry version-2 fields.
        assert_rejects(&with("status", Some("\"P\"")), "status", "not_in_version");
        assert_rejects(&with("comment", Some("\"x\"")), "comment", "not_in_version");
        // status: a short code.
        assert_rejects(&v2("status", "\"\""), "status", "bad_code");
        assert_rejects(&v2("status", &format!("\"{}\"", "P".repeat(MAX_STATUS_BYTES + 1))), "status", "bad_code");
        assert_rejects(&v2("status", "\"P E\""), "status", "bad_code");
        assert_rejects(&v2("status", "\"é\""), "status", "bad_code");
        assert_rejects(&v2("status", "1"), "status", "wrong_type");
        assert!(
            decode_data_point_json(v2("status", &format!("\"{}\"", "A".repeat(MAX_STATUS_BYTES))).as_bytes()).is_ok()
        );
        // comment: text, not blank, bounded.
        assert_rejects(&v2("comment", "\"  \""), "comment", "empty_text");
        assert_rejects(
            &v2("comment", &format!("\"{}\"", "c".repeat(MAX_COMMENT_BYTES + 1))),
            "comment",
            "text_too_long",
        );
        assert_rejects(&v2("comment", "[\"a\"]"), "comment", "wrong_type");
        assert!(
            decode_data_point_json(v2("comment", &format!("\"{}\"", "c".repeat(MAX_COMMENT_BYTES))).as_bytes()).is_ok()
        );
        let e = reject(&v2("status", "\"P E\""));
        assert!(e.to_string().contains("1 to 8 ASCII letters"), "{e}");
    }

    #[test]
    fn rejects_missing_fields() {
        for field in ["version", "series_id", "date", "revision_date", "value"] {
            assert_rejects(&with(field, None), field, "missing_field");
        }
        // Optional fields may be left out.
        for field in ["is_original_release", "id", "created_at", "updated_at"] {
            assert!(decode_data_point_json(with(field, None).as_bytes()).is_ok(), "{field}");
        }
    }

    #[test]
    fn rejects_oversized_and_malformed_ids() {
        let long = format!("\"{}\"", "A".repeat(129));
        assert_rejects(&with("series_id", Some(&long)), "series_id", "id_too_long");
        assert_rejects(&with("series_id", Some("\"\"")), "series_id", "empty_id");
        assert_rejects(&with("series_id", Some("\"GDP C1\"")), "series_id", "invalid_id_char");
        assert_rejects(&with("series_id", Some("42")), "series_id", "wrong_type");
        assert_rejects(&with("id", Some("\"not-a-uuid\"")), "id", "bad_uuid");
    }

    #[test]
    fn rejects_invalid_utf8_empty_and_oversized_messages() {
        let mut bytes = GOOD.as_bytes().to_vec();
        bytes[30] = 0xff;
        let e = decode_data_point_json(&bytes).unwrap_err();
        assert_eq!(e.reason(), &Reason::InvalidUtf8 { valid_up_to: 30 });
        assert_eq!(e.field(), "$");
        assert_eq!(decode_data_point_json(b"").unwrap_err().reason().code(), "empty");
        assert_eq!(decode_data_point_json(b"   ").unwrap_err().reason().code(), "empty");
        let huge = format!("{{\"version\":1,\"pad\":\"{}\"}}", "x".repeat(MAX_JSON_MESSAGE_BYTES));
        assert_eq!(decode_data_point_json(huge.as_bytes()).unwrap_err().reason().code(), "too_large");
    }

    #[test]
    fn rejects_malformed_json_and_non_objects() {
        let e = reject(r#"{"version":1,"series_id":"A","#);
        assert_eq!(e.reason().code(), "malformed_json");
        assert!(matches!(e.reason(), Reason::MalformedJson { line: 1, .. }), "{e}");
        assert_rejects("[1,2]", "$", "not_an_object");
        assert_rejects("\"GDPC1\"", "$", "not_an_object");
        assert_rejects(&format!("{GOOD} trailing"), "$", "malformed_json");
    }

    #[test]
    fn rejects_unknown_and_duplicate_fields() {
        assert_rejects(&with("revison_date", Some("\"2024-04-25\"")), "revison_date", "unknown_field");
        // Found by the fuzzer: an empty key is named `""`, never an empty field.
        assert_rejects(&with("", Some("1")), "\"\"", "unknown_field");
        let dup = GOOD.replace("\"value\":22768.866", "\"value\":1,\"value\":2");
        assert_rejects(&dup, "value", "duplicate_field");
    }

    #[test]
    fn rejects_bad_booleans_and_timestamps() {
        assert_rejects(&with("is_original_release", Some("\"yes\"")), "is_original_release", "wrong_type");
        assert_rejects(&with("created_at", Some("\"2024-04-25\"")), "created_at", "bad_timestamp");
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let json = GOOD.replace("\"GDPC1\"", "\"GDP\\u0043\\u0031\"");
        assert_eq!(decode_data_point_json(json.as_bytes()).unwrap().series_id.as_str(), "GDPC1");
    }

    #[test]
    fn data_point_round_trips_through_json() {
        let r = decode_data_point_json(GOOD.as_bytes()).unwrap();
        let p = r.into_data_point(Timestamp::from_nanos(1_700_000_000_000_000_000));
        let again = decode_data_point_json(&DataPointRevision::from(&p).to_json()).unwrap();
        assert_eq!(again.into_data_point(Timestamp::from_nanos(0)), p);
    }

    #[test]
    fn defaults_fill_id_and_timestamps() {
        let p = decode_data_point_json(GOOD.as_bytes()).unwrap().into_data_point(Timestamp::from_nanos(5_000));
        assert_eq!(p.id, derived_data_point_id(&p.series_id, p.date, p.revision_date));
        assert_eq!((p.created_at.nanos(), p.updated_at.nanos()), (5_000, 5_000));
    }

    const SERIES: &str = r#"{"version":1,"id":"GDPC1","source_id":"fred","title":"Real Gross Domestic Product","frequency":"Quarterly","units":"Billions of Chained 2017 Dollars","start_date":"1947-01-01"}"#;

    #[test]
    fn series_metadata_validates_and_round_trips() {
        let m = decode_series_json(SERIES.as_bytes()).unwrap();
        let s = m.into_series(Timestamp::from_nanos(9));
        assert_eq!(s.external_id, "GDPC1");
        assert!(s.is_active);
        let again =
            decode_series_json(&SeriesMetadata::from(&s).to_json()).unwrap().into_series(Timestamp::from_nanos(0));
        assert_eq!(again, s);
    }

    #[test]
    fn series_version_2_fields() {
        let v2 = |extra: &str| SERIES.replacen("\"version\":1", &format!("\"version\":2,{extra}"), 1);
        let m = decode_series_json(
            v2(r#""notes":"Chained 2017 dollars.","release":"Gross Domestic Product","last_updated":"2024-04-25T12:30:00Z""#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(m.notes.as_deref(), Some("Chained 2017 dollars."));
        assert_eq!(m.release.as_deref(), Some("Gross Domestic Product"));
        assert_eq!(m.last_updated.map(|t| t.to_string()).as_deref(), Some("2024-04-25T12:30:00Z"));
        assert_eq!(m.wire_version(), 2);
        let s = m.clone().into_series(Timestamp::from_nanos(9));
        assert_eq!(
            decode_series_json(&SeriesMetadata::from(&s).to_json()).unwrap().into_series(Timestamp::from_nanos(0)),
            s
        );
        let reject = |json: String| decode_series_json(json.as_bytes()).unwrap_err();
        let code = |e: ValidationError| (e.field().to_owned(), e.reason().code());
        for field in ["notes", "release", "last_updated"] {
            let v1 = SERIES.replacen("\"version\":1", &format!("\"version\":1,\"{field}\":\"x\""), 1);
            assert_eq!(code(reject(v1)), (field.to_owned(), "not_in_version"));
        }
        assert_eq!(code(reject(v2(r#""notes":" ""#))), ("notes".to_owned(), "empty_text"));
        let long = format!(r#""notes":"{}""#, "n".repeat(MAX_NOTES_BYTES + 1));
        assert_eq!(code(reject(v2(&long))), ("notes".to_owned(), "text_too_long"));
        let long = format!(r#""release":"{}""#, "r".repeat(MAX_LABEL_BYTES + 1));
        assert_eq!(code(reject(v2(&long))), ("release".to_owned(), "text_too_long"));
        assert_eq!(code(reject(v2(r#""release":7"#))), ("release".to_owned(), "wrong_type"));
        assert_eq!(code(reject(v2(r#""last_updated":"2024-04-25""#))), ("last_updated".to_owned(), "bad_timestamp"));
    }

    #[test]
    fn series_metadata_rejections() {
        let e = decode_series_json(SERIES.replace("\"title\":\"Real Gross Domestic Product\",", "").as_bytes())
            .unwrap_err();
        assert_eq!((e.field(), e.reason().code()), ("title", "missing_field"));
        let e = decode_series_json(SERIES.replace("\"Quarterly\"", "\"  \"").as_bytes()).unwrap_err();
        assert_eq!((e.field(), e.reason().code()), ("frequency", "empty_text"));
        let long_title = format!("\"{}\"", "t".repeat(MAX_TITLE_BYTES + 1));
        let e =
            decode_series_json(SERIES.replace("\"Real Gross Domestic Product\"", &long_title).as_bytes()).unwrap_err();
        assert_eq!((e.field(), e.reason().code()), ("title", "text_too_long"));
        let e = decode_series_json(SERIES.replace("1947-01-01", "1947-01").as_bytes()).unwrap_err();
        assert_eq!((e.field(), e.reason().code()), ("start_date", "bad_date"));
        let e = decode_series_json(SERIES.replace("\"fred\"", "\"fr ed\"").as_bytes()).unwrap_err();
        assert_eq!((e.field(), e.reason().code()), ("source_id", "invalid_id_char"));
    }
}

/// The published JSON Schemas must describe exactly what the validator accepts.
#[cfg(test)]
mod json_schema_tests {
    use super::*;

    fn check(schema_text: &str, fields: &[WireField], decode: impl Fn(&[u8]) -> bool) {
        let schema: serde_json::Value = serde_json::from_str(schema_text).unwrap();
        let props: Vec<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        let mut ours: Vec<&str> = fields.iter().map(|f| f.name).collect();
        let mut theirs = props.clone();
        ours.sort();
        theirs.sort();
        assert_eq!(theirs, ours, "properties");
        let mut required: Vec<&str> =
            schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let mut ours_required: Vec<&str> = fields.iter().filter(|f| f.required).map(|f| f.name).collect();
        required.sort();
        ours_required.sort();
        assert_eq!(required, ours_required, "required");
        assert_eq!(schema["additionalProperties"], false);
        let examples = schema["examples"].as_array().unwrap();
        assert!(!examples.is_empty());
        for e in examples {
            assert!(decode(e.to_string().as_bytes()), "documented example rejected: {e}");
        }
    }

    #[test]
    fn data_point_schemas_match_the_validator() {
        let decode = |b: &[u8]| decode_data_point_json(b).is_ok();
        let v1 = fields_of_version(DATA_POINT_FIELDS, DATA_POINT_FIELDS_V2_ONLY, 1);
        check(include_str!("../../docs/schemas/datapoint.v1.schema.json"), &v1, decode);
        check(include_str!("../../docs/schemas/datapoint.v2.schema.json"), DATA_POINT_FIELDS, decode);
    }

    #[test]
    fn series_schemas_match_the_validator() {
        let decode = |b: &[u8]| decode_series_json(b).is_ok();
        let v1 = fields_of_version(SERIES_FIELDS, SERIES_FIELDS_V2_ONLY, 1);
        check(include_str!("../../docs/schemas/series.v1.schema.json"), &v1, decode);
        check(include_str!("../../docs/schemas/series.v2.schema.json"), SERIES_FIELDS, decode);
    }
}
