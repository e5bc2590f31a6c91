//! Validating one message, free of Kafka: its format (JSON or Arrow IPC) and the ordering
//! contract (keyed by its series id). What passes goes into its partition's buffer; what does not
//! becomes a dead letter with the reason.

use arrow_array::RecordBatch;
use vintagelake_schemas::ipc::decode_data_points_ipc_to_table;
use vintagelake_schemas::table::StoredDataPoint;
use vintagelake_schemas::{
    DataPointRevision, EconomicSeries, Timestamp, WireFormat, decode_data_point_json, decode_series_json,
};

use crate::dlq::Rejection;

/// A message that passed validation, ready for its partition's buffer.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// A bulk (Arrow IPC) message, already in the `data_points` table schema.
    Rows(Vec<RecordBatch>),
    /// One revision (JSON).
    Point(StoredDataPoint),
    /// Series metadata, with its arrival number.
    Series(EconomicSeries, i64),
}

impl Accepted {
    /// Memory the decoded rows hold, what `MAX_BUFFERED_BYTES` counts: a bulk message's decoded
    /// batches are several times its Arrow IPC bytes (the derived ids, timestamps, arrival
    /// numbers), so counting the message would let the buffer outgrow its bound.
    pub(crate) fn memory_size(&self) -> u64 {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        match self {
            Accepted::Rows(batches) => batches.iter().map(RecordBatch::get_array_memory_size).sum::<usize>() as u64,
            Accepted::Point(p) => {
                (size_of::<StoredDataPoint>() + p.point.series_id.as_str().len() + text(&p.status) + text(&p.comment))
                    as u64
            }
            Accepted::Series(s, _) => {
                let texts = [&s.description, &s.units, &s.seasonal_adjustment, &s.notes, &s.release];
                (size_of::<EconomicSeries>() + s.title.len() + texts.iter().map(|t| text(t)).sum::<usize>()) as u64
            }
        }
    }

    pub(crate) fn rows(&self) -> u64 {
        match self {
            Accepted::Rows(batches) => batches.iter().map(RecordBatch::num_rows).sum::<usize>() as u64,
            Accepted::Point(_) | Accepted::Series(..) => 1,
        }
    }
}

/// Validates one message of a data-point topic (JSON or Arrow IPC, told apart by its bytes) or of
/// the series topic. `received` is its broker timestamp, `seq0` the arrival number of its first
/// row (`offset << ROW_BITS`).
pub(crate) fn decode(
    series_topic: bool,
    key: Option<&[u8]>,
    payload: &[u8],
    received: Timestamp,
    seq0: i64,
) -> Result<Accepted, Rejection> {
    if series_topic {
        return decode_series_json(payload).map(|m| Accepted::Series(m.into_series(received), seq0)).map_err(rejection);
    }
    match WireFormat::detect(payload) {
        WireFormat::ArrowIpc => {
            decode_data_points_ipc_to_table(payload, received, seq0).map_err(rejection).and_then(|batches| {
                check_bulk_key(key, &batches)?;
                Ok(Accepted::Rows(batches))
            })
        }
        WireFormat::Json => decode_data_point_json(payload).map_err(rejection).and_then(|r| {
            check_key(key, &r)?;
            Ok(Accepted::Point(StoredDataPoint::arrived(r, received, seq0)))
        }),
    }
}

fn rejection(e: vintagelake_schemas::ValidationError) -> Rejection {
    Rejection { code: e.reason().code(), field: e.field().to_owned(), message: e.to_string() }
}

/// The ordering contract: a revision message is keyed by its series id, so every revision of a
/// series lands in one partition, in publication order. A message without a key (or with an
/// empty one) could land anywhere and be ordered against nothing: it is rejected.
fn check_key(key: Option<&[u8]>, record: &DataPointRevision) -> Result<(), Rejection> {
    check_series_key(key, record.series_id.as_str())
}

fn check_series_key(key: Option<&[u8]>, series_id: &str) -> Result<(), Rejection> {
    match key {
        None | Some([]) => Err(Rejection {
            code: "missing_key",
            field: "$key".into(),
            message: format!(
                "the message has no key: key it by its series id ({series_id:?}) so the series stays in one \
                 partition, in order"
            ),
        }),
        Some(k) if k != series_id.as_bytes() => Err(Rejection {
            code: "key_mismatch",
            field: "series_id".into(),
            message: format!(
                "message key {:?} is not the series id {series_id:?}: keys must be series ids so a series stays ordered",
                String::from_utf8_lossy(k),
            ),
        }),
        _ => Ok(()),
    }
}

/// A bulk message carries one series, and its key is that series id.
fn check_bulk_key(key: Option<&[u8]>, batches: &[RecordBatch]) -> Result<(), Rejection> {
    use arrow_array::cast::AsArray;
    let mut series: Option<String> = None;
    for (b, batch) in batches.iter().enumerate() {
        let Some(ids) = batch.column_by_name(vintagelake_schemas::arrow::col::SERIES_ID) else { continue };
        let ids = ids.as_string::<i32>();
        for (row, id) in ids.iter().enumerate() {
            let Some(id) = id else { continue };
            match &series {
                None => series = Some(id.to_owned()),
                Some(first) if first != id => {
                    let at: usize = batches[..b].iter().map(RecordBatch::num_rows).sum::<usize>() + row;
                    return Err(Rejection {
                        code: "mixed_series",
                        field: format!("rows[{at}].series_id"),
                        message: format!(
                            "a bulk message carries one series: row {at} is {id:?}, earlier rows are {first:?}; \
                             send one message per series, keyed by its id"
                        ),
                    });
                }
                Some(_) => {}
            }
        }
    }
    match series {
        Some(id) => check_series_key(key, &id),
        None => Ok(()), // no rows: nothing to order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vintagelake_schemas::ipc::decode_data_points_ipc_to_table;
    use vintagelake_schemas::{Timestamp, encode_data_points_ipc};

    fn revision(series: &str, date: &str) -> DataPointRevision {
        decode_data_point_json(
            format!(r#"{{"version":1,"series_id":"{series}","date":"{date}","revision_date":"2024-04-25","value":1}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    fn bulk(revisions: &[DataPointRevision]) -> Vec<RecordBatch> {
        decode_data_points_ipc_to_table(&encode_data_points_ipc(revisions).unwrap(), Timestamp::now(), 0).unwrap()
    }

    #[test]
    fn messages_are_decoded_by_their_bytes_and_topic() {
        let json = br#"{"version":1,"series_id":"GDPC1","date":"2024-01-01","revision_date":"2024-04-25","value":1}"#;
        let now = Timestamp::now();
        match decode(false, Some(b"GDPC1"), json, now, 7 << 20).unwrap() {
            Accepted::Point(p) => assert_eq!((p.point.series_id.as_str(), p.ingest_seq), ("GDPC1", 7 << 20)),
            other => panic!("{other:?}"),
        }
        let ipc = encode_data_points_ipc(&[revision("GDPC1", "2024-01-01"), revision("GDPC1", "2024-04-01")]).unwrap();
        let accepted = decode(false, Some(b"GDPC1"), &ipc, now, 0).unwrap();
        assert!(matches!(accepted, Accepted::Rows(_)) && accepted.rows() == 2);
        let e = decode(false, Some(b"GDPC1"), b"{not json", now, 0).unwrap_err();
        assert_eq!(e.field, "$", "{e:?}");
        let series = br#"{"version":1,"id":"GDPC1","source_id":"fred","title":"Real GDP","frequency":"Quarterly"}"#;
        match decode(true, Some(b"GDPC1"), series, now, 3).unwrap() {
            Accepted::Series(s, seq) => assert_eq!((s.id.as_str(), seq), ("GDPC1", 3)),
            other => panic!("{other:?}"),
        }
        assert!(decode(true, None, json, now, 0).is_err(), "a revision is not series metadata");
    }

    #[test]
    fn revisions_are_keyed_by_their_series() {
        let r = revision("GDPC1", "2024-01-01");
        assert!(check_key(Some(b"GDPC1"), &r).is_ok());
        assert_eq!(check_key(None, &r).unwrap_err().code, "missing_key");
        assert_eq!(check_key(Some(b""), &r).unwrap_err().code, "missing_key");
        assert_eq!(check_key(Some(b"UNRATE"), &r).unwrap_err().code, "key_mismatch");
    }

    #[test]
    fn a_bulk_message_carries_one_series_under_its_key() {
        let one = bulk(&[revision("GDPC1", "2024-01-01"), revision("GDPC1", "2024-04-01")]);
        assert!(check_bulk_key(Some(b"GDPC1"), &one).is_ok());
        assert_eq!(check_bulk_key(None, &one).unwrap_err().code, "missing_key");
        assert_eq!(check_bulk_key(Some(b"UNRATE"), &one).unwrap_err().code, "key_mismatch");
        let mixed = bulk(&[revision("GDPC1", "2024-01-01"), revision("UNRATE", "2024-01-01")]);
        let e = check_bulk_key(Some(b"GDPC1"), &mixed).unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("mixed_series", "rows[1].series_id"));
    }
}
