//! Flight tickets: a documented, versioned JSON query (docs/query.md).
//!
//! ```json
//! {"version":1, "view":"as_of", "as_of":"2020-05-01", "series":["GDPC1"],
//!  "start":"2019-01-01", "end":"2020-12-31", "snapshot_id":null, "as_of_time":null}
//! ```

use serde::{Deserialize, Serialize};
use vintagelake_schemas::{Date, SeriesId};
use vintagelake_storage::scan::{SnapshotSelector, View, ViewName, VintageQuery};

/// The only ticket version this build reads.
pub const TICKET_VERSION: u32 = 1;
/// Most series one ticket may name.
pub const MAX_SERIES: usize = 10_000;

/// A query as it travels in a Flight ticket or command descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketV1 {
    pub version: u32,
    /// `latest` | `as_of` | `first_release` | `all_revisions`.
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
            snapshot_id: None,
            as_of_time: None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("tickets serialise")
    }
}

/// Parses and validates a ticket; the error names the field.
pub fn parse_ticket(bytes: &[u8]) -> Result<VintageQuery, String> {
    let t: TicketV1 = serde_json::from_slice(bytes).map_err(|e| format!("ticket is not a valid v1 JSON query: {e}"))?;
    if t.version != TICKET_VERSION {
        return Err(format!("ticket version {} is not supported (supported: {TICKET_VERSION})", t.version));
    }
    let date = |field: &str, v: &Option<String>| -> Result<Option<Date>, String> {
        v.as_deref()
            .map(|s| {
                Date::parse_iso(s).ok_or_else(|| format!("ticket field `{field}`: {s:?} is not a YYYY-MM-DD date"))
            })
            .transpose()
    };
    let name: ViewName = t.view.parse().map_err(|e| format!("ticket field `view`: {e}"))?;
    let view = name.with_date(date("as_of", &t.as_of)?).map_err(|e| format!("ticket field `as_of`: {e}"))?;
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
    Ok(VintageQuery::new(view).series(series).between(start, end).at_snapshot(snapshot))
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
}
