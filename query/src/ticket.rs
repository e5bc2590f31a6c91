//! Flight tickets: a documented, versioned JSON query (docs/query.md).
//!
//! ```json
//! {"version":1, "view":"as_of", "as_of":"2020-05-01", "series":["GDPC1"],
//!  "start":"2019-01-01", "end":"2020-12-31", "snapshot_id":null, "as_of_time":null}
//! ```
//!
//! Besides the four views, `view` names a vintage shape ([`Shape`]): `window`, `vintage_dates`,
//! `matrix`, `new_and_revised`, `release`, `revision_between`, `revision_stats`, `diagonal`,
//! each with its own fields (below). A field a view does not use is refused, naming it.

use serde::{Deserialize, Serialize};
use vintagelake_schemas::{Date, SeriesId};
use vintagelake_storage::scan::{SnapshotSelector, View, ViewName, VintageQuery};
use vintagelake_storage::shapes::{HorizonFrom, Release, Shape};

/// The only ticket version this build reads.
pub const TICKET_VERSION: u32 = 1;
/// Most series one ticket may name.
pub const MAX_SERIES: usize = 10_000;

/// Most vintages a matrix ticket may list, and horizons a diagonal may ask for.
pub const MAX_LISTED: usize = 10_000;

/// A query as it travels in a Flight ticket or command descriptor.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketV1 {
    pub version: u32,
    /// `latest` | `as_of` | `first_release` | `all_revisions`, or a shape's name.
    pub view: String,
    /// Series ids; empty or absent = every series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<String>,
    /// First observation date (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Last observation date (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Vintage date, required by `as_of`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    /// Iceberg time travel: read this snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<i64>,
    /// Iceberg time travel: read the table as it was at this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of_time: Option<String>,
    /// `window`, `vintage_dates`: first day of the real-time window (open when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_start: Option<String>,
    /// `window`, `vintage_dates`: last day of the real-time window (open when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_end: Option<String>,
    /// `matrix`: only these vintage dates (absent: every vintage date of each series).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vintages: Vec<String>,
    /// `release`: the k-th release (1 = the first release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u32>,
    /// `release`: the k-th release before the latest (0 = the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_minus: Option<u32>,
    /// `revision_between`: the earlier vintage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vintage_a: Option<String>,
    /// `revision_between`: the later vintage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vintage_b: Option<String>,
    /// `diagonal`: days after the origin (one row per observation and horizon).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub horizons: Vec<i32>,
    /// `diagonal`: `date` (default) or `first_release`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon_from: Option<String>,
}

/// A parsed ticket: the rows to read and, for a shape, the question asked of them.
#[derive(Debug, Clone)]
pub struct Request {
    /// What to read (`all_revisions` for a shape).
    pub query: VintageQuery,
    pub shape: Option<Shape>,
}

impl Request {
    /// The view or shape's name (metrics labels).
    pub fn name(&self) -> &'static str {
        self.shape.as_ref().map_or_else(|| self.query.view.name(), Shape::name)
    }

    /// The answer's schema.
    pub fn schema(&self) -> arrow::datatypes::SchemaRef {
        self.schema_with(&[])
    }

    /// The answer's schema over a table with `foreign` columns (added by another engine).
    pub fn schema_with(&self, foreign: &[arrow::datatypes::Field]) -> arrow::datatypes::SchemaRef {
        match &self.shape {
            Some(shape) => shape.schema_with(foreign),
            None => vintagelake_storage::scan::view_schema_with(foreign),
        }
    }
}

impl TicketV1 {
    /// A ticket for one series' view.
    pub fn for_series(series: &SeriesId, view: View) -> Self {
        let (view, as_of) = match view {
            View::AsOf(d) => (view.name().to_owned(), Some(d.to_string())),
            other => (other.name().to_owned(), None),
        };
        Self {
            version: TICKET_VERSION,
            view,
            series: vec![series.as_str().to_owned()],
            start: None,
            end: None,
            as_of,
            ..Default::default()
        }
    }

    /// A ticket for a shape over `series` (all when empty).
    pub fn for_shape(series: &[SeriesId], shape: &Shape) -> Self {
        let day = |d: &Date| Some(d.to_string());
        let mut t = Self {
            version: TICKET_VERSION,
            view: shape.name().to_owned(),
            series: series.iter().map(|s| s.as_str().to_owned()).collect(),
            ..Default::default()
        };
        match shape {
            Shape::Window { start, end } | Shape::VintageDates { start, end } => {
                t.realtime_start = start.as_ref().and_then(day);
                t.realtime_end = end.as_ref().and_then(day);
            }
            Shape::Matrix { vintages } => t.vintages = vintages.iter().map(Date::to_string).collect(),
            Shape::NewAndRevised | Shape::RevisionStats => {}
            Shape::Release(Release::Nth(k)) => t.release = Some(*k),
            Shape::Release(Release::LatestMinus(k)) => t.latest_minus = Some(*k),
            Shape::Between { a, b } => (t.vintage_a, t.vintage_b) = (day(a), day(b)),
            Shape::Diagonal { horizons, from } => {
                t.horizons = horizons.clone();
                t.horizon_from = (*from != HorizonFrom::Date).then(|| from.as_str().to_owned());
            }
        }
        t
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("tickets serialise")
    }
}

/// Parses and validates a ticket's rows to read (a shape's ticket reads `all_revisions`).
pub fn parse_ticket(bytes: &[u8]) -> Result<VintageQuery, String> {
    parse_request(bytes).map(|r| r.query)
}

/// Parses and validates a ticket; the error names the field.
pub fn parse_request(bytes: &[u8]) -> Result<Request, String> {
    let t: TicketV1 = serde_json::from_slice(bytes).map_err(|e| format!("ticket is not a valid v1 JSON query: {e}"))?;
    if t.version != TICKET_VERSION {
        return Err(format!("ticket version {} is not supported (supported: {TICKET_VERSION})", t.version));
    }
    let date = field_date;
    let shape = shape_of(&t)?;
    let view = match &shape {
        Some(_) if t.as_of.is_some() => {
            return Err(format!("ticket field `as_of`: only meaningful with view as_of, not {}", t.view));
        }
        Some(_) => View::AllRevisions,
        None => {
            let name: ViewName = t
                .view
                .parse()
                .map_err(|e| format!("ticket field `view`: {e}, or one of the shapes {}", Shape::NAMES.join(", ")))?;
            name.with_date(date("as_of", &t.as_of)?).map_err(|e| format!("ticket field `as_of`: {e}"))?
        }
    };
    if t.series.len() > MAX_SERIES {
        return Err(format!("ticket field `series`: {} ids, at most {MAX_SERIES}", t.series.len()));
    }
    let series = t
        .series
        .iter()
        .map(|s| SeriesId::parse_field(s, "series").map_err(|e| format!("ticket {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let snapshot = match (t.snapshot_id, &t.as_of_time) {
        (Some(_), Some(_)) => return Err("ticket: give snapshot_id or as_of_time, not both".into()),
        (Some(id), None) => SnapshotSelector::Id(id),
        (None, Some(ts)) => SnapshotSelector::AsOfTimestampMs(
            chrono::DateTime::parse_from_rfc3339(ts)
                .map_err(|e| format!("ticket field `as_of_time`: {ts:?} is not RFC 3339: {e}"))?
                .timestamp_millis(),
        ),
        (None, None) => SnapshotSelector::Current,
    };
    let (start, end) = (date("start", &t.start)?, date("end", &t.end)?);
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(format!("ticket: start {s} is after end {e}"));
    }
    let query = VintageQuery::new(view).series(series).between(start, end).at_snapshot(snapshot);
    Ok(Request { query, shape })
}

/// A ticket's date field, `None` when absent; the error names the field.
fn field_date(field: &str, v: &Option<String>) -> Result<Option<Date>, String> {
    v.as_deref()
        .map(|s| Date::parse_iso(s).ok_or_else(|| format!("ticket field `{field}`: {s:?} is not a YYYY-MM-DD date")))
        .transpose()
}

/// The shape a ticket names (`None`: one of the four views), with its fields checked: a field
/// the view does not use is refused, naming it.
fn shape_of(t: &TicketV1) -> Result<Option<Shape>, String> {
    let date = field_date;
    let used: &[&str] = match t.view.as_str() {
        "window" | "vintage_dates" => &["realtime_start", "realtime_end"],
        "matrix" => &["vintages"],
        "new_and_revised" | "revision_stats" => &[],
        "release" => &["release", "latest_minus"],
        "revision_between" => &["vintage_a", "vintage_b"],
        "diagonal" => &["horizons", "horizon_from"],
        _ => &[],
    };
    let given = [
        ("realtime_start", t.realtime_start.is_some()),
        ("realtime_end", t.realtime_end.is_some()),
        ("vintages", !t.vintages.is_empty()),
        ("release", t.release.is_some()),
        ("latest_minus", t.latest_minus.is_some()),
        ("vintage_a", t.vintage_a.is_some()),
        ("vintage_b", t.vintage_b.is_some()),
        ("horizons", !t.horizons.is_empty()),
        ("horizon_from", t.horizon_from.is_some()),
    ];
    if let Some((field, _)) = given.iter().find(|(f, g)| *g && !used.contains(f)) {
        return Err(format!("ticket field `{field}`: not meaningful with view {}", t.view));
    }
    let required =
        |field: &str, v: Option<Date>| v.ok_or_else(|| format!("ticket field `{field}`: required by view {}", t.view));
    let shape = match t.view.as_str() {
        "window" | "vintage_dates" => {
            let (start, end) = (date("realtime_start", &t.realtime_start)?, date("realtime_end", &t.realtime_end)?);
            if let (Some(s), Some(e)) = (start, end)
                && s > e
            {
                return Err(format!("ticket: realtime_start {s} is after realtime_end {e}"));
            }
            if t.view == "window" { Shape::Window { start, end } } else { Shape::VintageDates { start, end } }
        }
        "matrix" => {
            if t.vintages.len() > MAX_LISTED {
                return Err(format!("ticket field `vintages`: {} dates, at most {MAX_LISTED}", t.vintages.len()));
            }
            let vintages = t
                .vintages
                .iter()
                .map(|v| date("vintages", &Some(v.clone())).map(|d| d.expect("given")))
                .collect::<Result<Vec<_>, _>>()?;
            Shape::Matrix { vintages }
        }
        "new_and_revised" => Shape::NewAndRevised,
        "revision_stats" => Shape::RevisionStats,
        "release" => match (t.release, t.latest_minus) {
            (Some(0), _) => return Err("ticket field `release`: releases count from 1 (the first release)".into()),
            (Some(k), None) => Shape::Release(Release::Nth(k)),
            (None, Some(k)) => Shape::Release(Release::LatestMinus(k)),
            (Some(_), Some(_)) => return Err("ticket: give release or latest_minus, not both".into()),
            (None, None) => return Err("ticket field `release`: required by view release (or `latest_minus`)".into()),
        },
        "revision_between" => Shape::Between {
            a: required("vintage_a", date("vintage_a", &t.vintage_a)?)?,
            b: required("vintage_b", date("vintage_b", &t.vintage_b)?)?,
        },
        "diagonal" => {
            if t.horizons.is_empty() {
                return Err("ticket field `horizons`: required by view diagonal (days, e.g. [30, 90])".into());
            }
            if t.horizons.len() > MAX_LISTED {
                return Err(format!("ticket field `horizons`: {} horizons, at most {MAX_LISTED}", t.horizons.len()));
            }
            if let Some(h) = t.horizons.iter().find(|h| !(0..=36_500).contains(*h)) {
                return Err(format!("ticket field `horizons`: {h} is not between 0 and 36500 days"));
            }
            let from = match &t.horizon_from {
                Some(f) => f.parse().map_err(|e| format!("ticket field `horizon_from`: {e}"))?,
                None => HorizonFrom::Date,
            };
            Shape::Diagonal { horizons: t.horizons.clone(), from }
        }
        _ => return Ok(None),
    };
    Ok(Some(shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_parse_and_reject_precisely() {
        let q = parse_ticket(
            br#"{"version":1,"view":"as_of","as_of":"2020-05-01","series":["GDPC1"],"start":"2019-01-01"}"#,
        )
        .unwrap();
        assert_eq!(q.view, View::AsOf(Date::parse_iso("2020-05-01").unwrap()));
        assert_eq!(q.series.len(), 1);
        assert_eq!(q.start, Date::parse_iso("2019-01-01"));
        let err = |t: &str| parse_ticket(t.as_bytes()).unwrap_err();
        assert!(err(r#"{"version":2,"view":"latest"}"#).contains("version 2"));
        assert!(err(r#"{"version":1,"view":"newest"}"#).contains("`view`"));
        assert!(err(r#"{"version":1,"view":"as_of"}"#).contains("`as_of`"));
        assert!(err(r#"{"version":1,"view":"latest","start":"2020-13-01"}"#).contains("`start`"));
        assert!(err(r#"{"version":1,"view":"latest","series":["a b"]}"#).contains("series"));
        assert!(err(r#"{"version":1,"view":"latest","colour":"red"}"#).contains("unknown field"));
        assert!(err(r#"{"version":1,"view":"latest","start":"2021-01-01","end":"2020-01-01"}"#).contains("after"));
        assert!(
            err(r#"{"version":1,"view":"latest","snapshot_id":1,"as_of_time":"2024-01-01T00:00:00Z"}"#)
                .contains("not both")
        );
        let t = TicketV1::for_series(&"GDPC1".parse().unwrap(), View::AsOf(Date::parse_iso("2020-05-01").unwrap()));
        assert_eq!(parse_ticket(&t.to_bytes()).unwrap().view, View::AsOf(Date::parse_iso("2020-05-01").unwrap()));
    }

    #[test]
    fn shape_tickets_round_trip_and_refuse_fields_they_do_not_use() {
        let d = |s: &str| Date::parse_iso(s).unwrap();
        let series: Vec<SeriesId> = vec!["GDPC1".parse().unwrap()];
        for shape in [
            Shape::Window { start: Some(d("2020-01-01")), end: None },
            Shape::VintageDates { start: None, end: Some(d("2021-01-01")) },
            Shape::Matrix { vintages: vec![d("2020-07-30"), d("2020-08-27")] },
            Shape::Matrix { vintages: vec![] },
            Shape::NewAndRevised,
            Shape::Release(Release::Nth(2)),
            Shape::Release(Release::LatestMinus(1)),
            Shape::Between { a: d("2020-07-30"), b: d("2021-07-29") },
            Shape::RevisionStats,
            Shape::Diagonal { horizons: vec![30, 90], from: HorizonFrom::FirstRelease },
        ] {
            let r = parse_request(&TicketV1::for_shape(&series, &shape).to_bytes()).unwrap();
            assert_eq!(r.shape.as_ref(), Some(&shape));
            assert_eq!(r.query.view, View::AllRevisions);
            assert_eq!(r.name(), shape.name());
        }
        let err = |t: &str| parse_request(t.as_bytes()).unwrap_err();
        assert!(err(r#"{"version":1,"view":"matrix","release":2}"#).contains("`release`"));
        assert!(err(r#"{"version":1,"view":"latest","vintages":["2020-01-01"]}"#).contains("`vintages`"));
        assert!(err(r#"{"version":1,"view":"release"}"#).contains("`release`"));
        assert!(err(r#"{"version":1,"view":"release","release":0}"#).contains("count from 1"));
        assert!(err(r#"{"version":1,"view":"release","release":1,"latest_minus":1}"#).contains("not both"));
        assert!(err(r#"{"version":1,"view":"revision_between","vintage_a":"2020-01-01"}"#).contains("`vintage_b`"));
        assert!(err(r#"{"version":1,"view":"diagonal"}"#).contains("`horizons`"));
        assert!(err(r#"{"version":1,"view":"diagonal","horizons":[-1]}"#).contains("-1"));
        assert!(err(r#"{"version":1,"view":"diagonal","horizons":[1],"horizon_from":"x"}"#).contains("`horizon_from`"));
        assert!(err(r#"{"version":1,"view":"matrix","vintages":["2020-02-30"]}"#).contains("`vintages`"));
        assert!(err(r#"{"version":1,"view":"matrix","as_of":"2020-01-01"}"#).contains("`as_of`"));
        assert!(
            err(r#"{"version":1,"view":"window","realtime_start":"2021-01-01","realtime_end":"2020-01-01"}"#)
                .contains("after")
        );
        assert!(err(r#"{"version":1,"view":"nope"}"#).contains("matrix"));
    }
}
