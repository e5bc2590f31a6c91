//! The bulk wire format: one Kafka message holding an Arrow IPC stream of many revisions, for
//! backfills where one JSON message per revision would be wasteful.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Date32Builder, Float64Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use uuid::Uuid;

use crate::arrow::col;
use crate::error::{Reason, ValidationError, excerpt};
use crate::ids::{Date, MAX_SERIES_ID_BYTES, SeriesId, validate_id};
use crate::model::{Timestamp, derived_id_with};
use crate::table::{StoredDataPoint, data_points_table_schema, stored_data_points_to_batch};
use crate::wire::{DataPointRevision, MAX_COMMENT_BYTES, check_status, check_text};

/// Largest bulk message accepted.
pub const MAX_IPC_MESSAGE_BYTES: usize = 64 << 20;

/// Most revisions one bulk message may hold: ingest numbers a message's rows in the low
/// [`MAX_IPC_ROWS_BITS`] bits of `ingest_seq` (`offset << MAX_IPC_ROWS_BITS | row`).
pub const MAX_IPC_ROWS_BITS: u32 = 20;
pub const MAX_IPC_ROWS: usize = 1 << MAX_IPC_ROWS_BITS;

/// Every Arrow IPC stream starts with this continuation marker; JSON never does.
const IPC_CONTINUATION: [u8; 4] = [0xff; 4];

/// The wire format of one message, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    Json,
    ArrowIpc,
}

impl WireFormat {
    pub fn detect(bytes: &[u8]) -> WireFormat {
        if bytes.starts_with(&IPC_CONTINUATION) { WireFormat::ArrowIpc } else { WireFormat::Json }
    }

    /// The value producers put in the `content-type` Kafka header.
    pub fn content_type(self) -> &'static str {
        match self {
            WireFormat::Json => "application/json",
            WireFormat::ArrowIpc => "application/vnd.apache.arrow.stream",
        }
    }
}

/// Schema of a bulk revision stream. `is_original_release`, `id`, and the version-2 columns
/// `status` and `comment` are optional.
pub fn bulk_revision_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(col::SERIES_ID, DataType::Utf8, false),
        Field::new(col::DATE, DataType::Date32, false),
        Field::new(col::REVISION_DATE, DataType::Date32, false),
        Field::new(col::VALUE, DataType::Float64, true),
        Field::new(col::IS_ORIGINAL_RELEASE, DataType::Boolean, false),
        Field::new(col::ID, DataType::Utf8, true),
        Field::new(col::STATUS, DataType::Utf8, true),
        Field::new(col::COMMENT, DataType::Utf8, true),
    ]))
}

/// Validates a data-point message in either wire format. A bulk message is accepted or
/// rejected whole; the error names the row (`rows[17].date`).
pub fn decode_data_points(bytes: &[u8]) -> Result<Vec<DataPointRevision>, ValidationError> {
    match WireFormat::detect(bytes) {
        WireFormat::Json => crate::wire::decode_data_point_json(bytes).map(|r| vec![r]),
        WireFormat::ArrowIpc => decode_data_points_ipc(bytes),
    }
}

/// Validates one Arrow IPC stream of revisions.
pub fn decode_data_points_ipc(bytes: &[u8]) -> Result<Vec<DataPointRevision>, ValidationError> {
    let mut out = Vec::new();
    for batch in ipc_batches(bytes)? {
        decode_batch(&batch?, &mut out)?;
    }
    Ok(out)
}

/// Validates one Arrow IPC stream of revisions straight into `data_points` table rows.
///
/// The same checks, errors and rows as [`decode_data_points_ipc`] followed by
/// [`DataPointRevision::into_data_point`] and [`crate::table::stored_data_points_to_batch`]
/// (with `realtime_end` null), without a struct per revision: columns that need no change
/// (`series_id`, `date`, `value`, `revision_date`, `is_original_release`) are shared with the
/// decoded message, not copied. Row `i` of the message gets `ingest_seq = seq0 | i`.
pub fn decode_data_points_ipc_to_table(
    bytes: &[u8],
    received_at: Timestamp,
    seq0: i64,
) -> Result<Vec<RecordBatch>, ValidationError> {
    let mut out = Vec::new();
    let mut row0 = 0;
    for batch in ipc_batches(bytes)? {
        let batch = batch?;
        out.push(table_rows(&batch, received_at, seq0, row0)?);
        row0 += batch.num_rows();
    }
    Ok(out)
}

/// The batches of a bulk message with its schema checked; each batch is an error if the stream
/// is unreadable there or the message grows past [`MAX_IPC_ROWS`].
fn ipc_batches(
    bytes: &[u8],
) -> Result<impl Iterator<Item = Result<RecordBatch, ValidationError>> + '_, ValidationError> {
    if bytes.len() > MAX_IPC_MESSAGE_BYTES {
        return Err(ValidationError::whole(Reason::TooLarge { len: bytes.len(), max: MAX_IPC_MESSAGE_BYTES }));
    }
    let malformed = |e: ArrowError| ValidationError::whole(Reason::MalformedIpc { detail: excerpt(&e.to_string()) });
    let reader = StreamReader::try_new(bytes, None).map_err(malformed)?;
    check_schema(&reader.schema())?;
    let mut rows = 0;
    Ok(reader.map(move |batch| {
        let batch = batch.map_err(malformed)?;
        rows += batch.num_rows();
        if rows > MAX_IPC_ROWS {
            return Err(ValidationError::whole(Reason::TooManyRows { rows, max: MAX_IPC_ROWS }));
        }
        Ok(batch)
    }))
}

/// One batch of a checked stream as table rows; rows are numbered from `row0` within the message.
fn table_rows(
    batch: &RecordBatch,
    received_at: Timestamp,
    seq0: i64,
    row0: usize,
) -> Result<RecordBatch, ValidationError> {
    match fast_table_rows(batch, received_at, seq0, row0) {
        Some(rows) => Ok(rows),
        None => {
            // Something is wrong with this batch: the row-by-row decoder finds the first bad row and
            // names it exactly as `decode_data_points_ipc` does.
            let mut revisions = Vec::new();
            decode_batch(batch, &mut revisions)?;
            // Not reached while the two checks agree (tests hold them together); if they ever
            // disagree, the row-by-row result is the one that counts.
            let stored: Vec<StoredDataPoint> = revisions
                .into_iter()
                .enumerate()
                .map(|(i, r)| StoredDataPoint::arrived(r, received_at, seq0 | (row0 + i) as i64))
                .collect();
            stored_data_points_to_batch(&stored)
                .map_err(|e| ValidationError::whole(Reason::MalformedIpc { detail: excerpt(&e.to_string()) }))
        }
    }
}

/// Column-at-a-time validation and conversion; `None` if any row would be rejected.
fn fast_table_rows(batch: &RecordBatch, received_at: Timestamp, seq0: i64, row0: usize) -> Option<RecordBatch> {
    let n = batch.num_rows();
    // check_schema ran first, so the casts below cannot fail.
    let get = |name| batch.column_by_name(name);
    let series_col = get(col::SERIES_ID)?;
    let series = series_col.as_string::<i32>();
    let date = get(col::DATE)?.as_primitive::<Date32Type>();
    let revision = get(col::REVISION_DATE)?.as_primitive::<Date32Type>();
    let value = get(col::VALUE)?;
    let original = get(col::IS_ORIGINAL_RELEASE);
    let id = get(col::ID).map(|a| a.as_string::<i32>());
    let status = get(col::STATUS);
    let comment = get(col::COMMENT);
    let all_valid = |a: Option<&ArrayRef>, check: &dyn Fn(&str) -> bool| {
        a.is_none_or(|a| a.as_string::<i32>().iter().flatten().all(check))
    };
    if !all_valid(status, &|s| check_status(s, col::STATUS).is_ok())
        || !all_valid(comment, &|s| check_text(s, col::COMMENT, MAX_COMMENT_BYTES).is_ok())
    {
        return None;
    }

    if series.null_count() + date.null_count() + revision.null_count() > 0
        || original.is_some_and(|a| a.null_count() > 0)
    {
        return None;
    }
    let (min, max) = (Date::MIN.days_since_epoch(), Date::MAX.days_since_epoch());
    if !date.values().iter().chain(revision.values().iter()).all(|d| (min..=max).contains(d)) {
        return None;
    }
    let values = value.as_primitive::<Float64Type>();
    let finite = match values.nulls() {
        None => values.values().iter().all(|v| v.is_finite()),
        Some(valid) => values.values().iter().zip(valid.iter()).all(|(v, ok)| !ok || v.is_finite()),
    };
    if !finite {
        return None;
    }
    // Rows of one series usually come together: check each distinct run of ids once.
    let mut previous: Option<&str> = None;
    for s in series.iter().flatten() {
        if previous != Some(s) {
            validate_id(s, col::SERIES_ID, MAX_SERIES_ID_BYTES).ok()?;
            previous = Some(s);
        }
    }

    let mut ids = StringBuilder::with_capacity(n, n * 36);
    let mut text = Uuid::encode_buffer();
    let mut name = Vec::with_capacity(64);
    for row in 0..n {
        let uuid = match id {
            Some(a) if a.is_valid(row) => Uuid::try_parse(a.value(row)).ok()?,
            _ => derived_id_with(
                series.value(row),
                Date::from_days_since_epoch(date.value(row)),
                Date::from_days_since_epoch(revision.value(row)),
                &mut name,
            ),
        };
        ids.append_value(uuid.hyphenated().encode_lower(&mut text));
    }
    let micros = received_at.micros();
    let original: ArrayRef = match original {
        Some(a) => a.clone(),
        None => Arc::new(BooleanArray::from(vec![false; n])),
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        series_col.clone(),
        Arc::new(date.clone()),
        value.clone(),
        Arc::new(revision.clone()),
        original,
        Arc::new(TimestampMicrosecondArray::from_value(micros, n)),
        Arc::new(TimestampMicrosecondArray::from_value(micros, n)),
        Arc::new(Date32Array::new_null(n)),
        Arc::new(Int64Array::from_iter_values((row0..row0 + n).map(|i| seq0 | i as i64))),
        status.cloned().unwrap_or_else(|| Arc::new(StringArray::new_null(n))),
        comment.cloned().unwrap_or_else(|| Arc::new(StringArray::new_null(n))),
    ];
    RecordBatch::try_new(data_points_table_schema(), columns).ok()
}

fn check_schema(schema: &Schema) -> Result<(), ValidationError> {
    let expected = bulk_revision_schema();
    for f in schema.fields() {
        let Some((_, want)) = expected.column_with_name(f.name()) else {
            return Err(ValidationError::new(excerpt(f.name()), Reason::UnknownField));
        };
        if f.data_type() != want.data_type() {
            return Err(ValidationError::new(
                f.name().as_str(),
                Reason::IpcColumnType { expected: want.data_type().to_string(), found: f.data_type().to_string() },
            ));
        }
    }
    for required in [col::SERIES_ID, col::DATE, col::REVISION_DATE, col::VALUE] {
        if schema.column_with_name(required).is_none() {
            return Err(ValidationError::new(required, Reason::MissingField));
        }
    }
    Ok(())
}

fn decode_batch(batch: &RecordBatch, out: &mut Vec<DataPointRevision>) -> Result<(), ValidationError> {
    // check_schema ran first, so the casts below cannot fail.
    let get = |name| batch.column_by_name(name);
    let series = get(col::SERIES_ID).expect("checked").as_string::<i32>();
    let date = get(col::DATE).expect("checked").as_primitive::<Date32Type>();
    let revision = get(col::REVISION_DATE).expect("checked").as_primitive::<Date32Type>();
    let value = get(col::VALUE).expect("checked").as_primitive::<Float64Type>();
    let original = get(col::IS_ORIGINAL_RELEASE).map(|a| a.as_boolean());
    let id = get(col::ID).map(|a| a.as_string::<i32>());
    let status = get(col::STATUS).map(|a| a.as_string::<i32>());
    let comment = get(col::COMMENT).map(|a| a.as_string::<i32>());
    let in_range = |d: i32, field: &'static str, row: usize| {
        let d = Date::from_days_since_epoch(d);
        if (Date::MIN..=Date::MAX).contains(&d) {
            Ok(d)
        } else {
            Err(ValidationError::new(field, Reason::BadDate { value: format!("day {}", d.days_since_epoch()) })
                .at_row(row))
        }
    };
    out.reserve(batch.num_rows());
    for row in 0..batch.num_rows() {
        let non_null = |a: &dyn Array, field: &'static str| {
            if a.is_null(row) { Err(ValidationError::new(field, Reason::NullValue).at_row(row)) } else { Ok(()) }
        };
        non_null(series, col::SERIES_ID)?;
        non_null(date, col::DATE)?;
        non_null(revision, col::REVISION_DATE)?;
        let v = value.is_valid(row).then(|| value.value(row));
        if let Some(x) = v.filter(|x| !x.is_finite()) {
            return Err(ValidationError::new(col::VALUE, Reason::NotFinite { value: x.to_string() }).at_row(row));
        }
        let is_original_release = match original {
            Some(a) => {
                non_null(a, col::IS_ORIGINAL_RELEASE)?;
                a.value(row)
            }
            None => false,
        };
        let id = match id {
            Some(a) if a.is_valid(row) => Some(Uuid::try_parse(a.value(row)).map_err(|_| {
                ValidationError::new(col::ID, Reason::BadUuid { value: excerpt(a.value(row)) }).at_row(row)
            })?),
            _ => None,
        };
        let text = |a: Option<&StringArray>, check: &dyn Fn(&str) -> Result<(), ValidationError>| match a
            .filter(|a| a.is_valid(row))
        {
            Some(a) => check(a.value(row)).map(|()| Some(a.value(row).to_owned())).map_err(|e| e.at_row(row)),
            None => Ok(None),
        };
        let status = text(status, &|s| check_status(s, col::STATUS))?;
        let comment = text(comment, &|s| check_text(s, col::COMMENT, MAX_COMMENT_BYTES))?;
        out.push(DataPointRevision {
            series_id: SeriesId::parse_field(series.value(row), col::SERIES_ID).map_err(|e| e.at_row(row))?,
            date: in_range(date.value(row), col::DATE, row)?,
            revision_date: in_range(revision.value(row), col::REVISION_DATE, row)?,
            value: v,
            is_original_release,
            id,
            created_at: None,
            updated_at: None,
            status,
            comment,
        });
    }
    Ok(())
}

/// Encodes revisions as one Arrow IPC stream message (the bulk format).
pub fn encode_data_points_ipc(revisions: &[DataPointRevision]) -> Result<Vec<u8>, ArrowError> {
    let n = revisions.len();
    let mut series = StringBuilder::with_capacity(n, n * 8);
    let mut date = Date32Builder::with_capacity(n);
    let mut revision = Date32Builder::with_capacity(n);
    let mut value = Float64Builder::with_capacity(n);
    let mut original = BooleanBuilder::with_capacity(n);
    let mut id = StringBuilder::with_capacity(n, 0);
    for r in revisions {
        series.append_value(r.series_id.as_str());
        date.append_value(r.date.days_since_epoch());
        revision.append_value(r.revision_date.days_since_epoch());
        value.append_option(r.value);
        original.append_value(r.is_original_release);
        id.append_option(r.id.map(|u| u.to_string()));
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(series.finish()),
        Arc::new(date.finish()),
        Arc::new(revision.finish()),
        Arc::new(value.finish()),
        Arc::new(original.finish()),
        Arc::new(id.finish()),
    ];
    // The version-2 columns only when a revision uses them, so a pipeline that predates them
    // still reads every message that does not.
    let full = bulk_revision_schema();
    let mut fields: Vec<Field> = full.fields()[..columns.len()].iter().map(|f| f.as_ref().clone()).collect();
    if revisions.iter().any(|r| r.status.is_some() || r.comment.is_some()) {
        columns.push(Arc::new(StringArray::from_iter(revisions.iter().map(|r| r.status.as_deref()))));
        columns.push(Arc::new(StringArray::from_iter(revisions.iter().map(|r| r.comment.as_deref()))));
        fields.extend(full.fields()[columns.len() - 2..].iter().map(|f| f.as_ref().clone()));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &batch.schema())?;
    w.write(&batch)?;
    w.finish()?;
    drop(w);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int32Array, StringArray};

    fn revs(n: usize) -> Vec<DataPointRevision> {
        (0..n)
            .map(|i| DataPointRevision {
                series_id: format!("S{}", i % 3).parse().unwrap(),
                date: Date::from_days_since_epoch(19_000 + i as i32),
                revision_date: Date::from_days_since_epoch(19_100 + i as i32),
                value: (i % 4 != 0).then_some(i as f64 * 1.5),
                is_original_release: i % 2 == 0,
                id: (i == 1).then(Uuid::new_v4),
                created_at: None,
                updated_at: None,
                status: (i % 5 == 2).then(|| "P".to_owned()),
                comment: (i == 3).then(|| "estimated from a partial survey".to_owned()),
            })
            .collect()
    }

    fn stream(batch: &RecordBatch) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
        w.write(batch).unwrap();
        w.finish().unwrap();
        drop(w);
        out
    }

    #[test]
    fn bulk_round_trip_and_detection() {
        let r = revs(10);
        let bytes = encode_data_points_ipc(&r).unwrap();
        assert_eq!(WireFormat::detect(&bytes), WireFormat::ArrowIpc);
        assert_eq!(decode_data_points(&bytes).unwrap(), r);
        let json = r[0].to_json();
        assert_eq!(WireFormat::detect(&json), WireFormat::Json);
        assert_eq!(decode_data_points(&json).unwrap(), vec![r[0].clone()]);
    }

    #[test]
    fn minimal_columns_are_enough() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::Utf8, false),
            Field::new("date", DataType::Date32, false),
            Field::new("revision_date", DataType::Date32, false),
            Field::new("value", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["A"])),
                Arc::new(Date32Array::from(vec![1])),
                Arc::new(Date32Array::from(vec![2])),
                Arc::new(Float64Array::from(vec![None])),
            ],
        )
        .unwrap();
        let out = decode_data_points_ipc(&stream(&batch)).unwrap();
        assert_eq!(out.len(), 1);
        assert!(!out[0].is_original_release);
        assert_eq!(out[0].value, None);
    }

    #[test]
    fn bulk_status_and_comment_columns_are_validated_per_row() {
        let r = revs(10);
        let bytes = encode_data_points_ipc(&r).unwrap();
        let table = decode_data_points_ipc_to_table(&bytes, Timestamp::from_nanos(0), 0).unwrap();
        let stored = crate::table::batch_to_stored_data_points(&table[0]).unwrap();
        assert_eq!(stored[2].status.as_deref(), Some("P"));
        assert_eq!(stored[3].comment.as_deref(), Some("estimated from a partial survey"));
        assert_eq!((stored[0].status.as_deref(), stored[0].comment.as_deref()), (None, None));
        // Without version-2 fields the message has no version-2 columns (older pipelines read it).
        let plain: Vec<DataPointRevision> =
            r.iter().cloned().map(|r| DataPointRevision { status: None, comment: None, ..r }).collect();
        let plain_bytes = encode_data_points_ipc(&plain).unwrap();
        let reader = StreamReader::try_new(&plain_bytes[..], None).unwrap();
        assert!(reader.schema().column_with_name(col::STATUS).is_none());
        // A bad code or comment rejects the message, naming the row.
        for (status, comment, field) in [
            (Some("P E"), None, "rows[1].status"),
            (None, Some(" "), "rows[1].comment"),
            (Some(""), None, "rows[1].status"),
        ] {
            let mut bad = r.clone();
            bad[1].status = status.map(str::to_owned);
            bad[1].comment = comment.map(str::to_owned);
            let bytes = encode_data_points_ipc(&bad).unwrap();
            let e = decode_data_points_ipc(&bytes).unwrap_err();
            assert_eq!(e.field(), field, "{e}");
            let e = decode_data_points_ipc_to_table(&bytes, Timestamp::from_nanos(0), 0).unwrap_err();
            assert_eq!(e.field(), field, "{e}");
        }
    }

    #[test]
    fn bulk_rejections_name_column_and_row() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::Utf8, true),
            Field::new("date", DataType::Date32, false),
            Field::new("revision_date", DataType::Date32, false),
            Field::new("value", DataType::Float64, true),
            Field::new("is_original_release", DataType::Boolean, true),
        ]));
        let make = |series: Vec<Option<&str>>, value: Vec<Option<f64>>| {
            let n = series.len();
            stream(
                &RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(series)),
                        Arc::new(Date32Array::from(vec![1; n])),
                        Arc::new(Date32Array::from(vec![2; n])),
                        Arc::new(Float64Array::from(value)),
                        Arc::new(BooleanArray::from(vec![true; n])),
                    ],
                )
                .unwrap(),
            )
        };
        let e = decode_data_points_ipc(&make(vec![Some("A"), None], vec![Some(1.0), Some(2.0)])).unwrap_err();
        assert_eq!((e.field(), e.reason().code()), ("rows[1].series_id", "null_value"));
        let e = decode_data_points_ipc(&make(vec![Some("A"), Some("B C")], vec![Some(1.0), Some(2.0)])).unwrap_err();
        assert_eq!((e.field(), e.reason().code()), ("rows[1].series_id", "invalid_id_char"));
        let e = decode_data_points_ipc(&make(vec![Some("A")], vec![Some(f64::NAN)])).unwrap_err();
        assert_eq!((e.field(), e.reason().code()), ("rows[0].value", "not_finite"));
    }

    #[test]
    fn bulk_schema_rejections() {
        let wrong_type = Arc::new(Schema::new(vec![Field::new("date", DataType::Int32, false)]));
        let b = RecordBatch::try_new(wrong_type, vec![Arc::new(Int32Array::from(vec![1]))]).unwrap();
        let e = decode_data_points_ipc(&stream(&b)).unwrap_err();
        assert_eq!((e.field(), e.reason().code()), ("date", "ipc_column_type"));
        let extra = Arc::new(Schema::new(vec![Field::new("colour", DataType::Int32, false)]));
        let b = RecordBatch::try_new(extra, vec![Arc::new(Int32Array::from(vec![1]))]).unwrap();
        assert_eq!(decode_data_points_ipc(&stream(&b)).unwrap_err().reason().code(), "unknown_field");
        let only_date = Arc::new(Schema::new(vec![Field::new("date", DataType::Date32, false)]));
        let b = RecordBatch::try_new(only_date, vec![Arc::new(Date32Array::from(vec![1]))]).unwrap();
        let e = decode_data_points_ipc(&stream(&b)).unwrap_err();
        assert_eq!((e.field(), e.reason().code()), ("series_id", "missing_field"));
    }

    #[test]
    fn truncated_stream_is_malformed() {
        let bytes = encode_data_points_ipc(&revs(50)).unwrap();
        let e = decode_data_points_ipc(&bytes[..bytes.len() / 2]).unwrap_err();
        assert_eq!((e.field(), e.reason().code()), ("$", "malformed_ipc"));
        let e = decode_data_points(&[0xff, 0xff, 0xff, 0xff, 1, 2]).unwrap_err();
        assert_eq!(e.reason().code(), "malformed_ipc");
    }

    /// A bulk batch from generated rows; `None` cells become nulls.
    #[allow(clippy::type_complexity)]
    fn generated(
        rows: &[(Option<&'static str>, i32, i32, Option<f64>, Option<bool>, Option<&'static str>)],
        with_original: bool,
        with_id: bool,
    ) -> RecordBatch {
        let mut fields = vec![
            Field::new("series_id", DataType::Utf8, true),
            Field::new("date", DataType::Date32, false),
            Field::new("revision_date", DataType::Date32, false),
            Field::new("value", DataType::Float64, true),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(Date32Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            Arc::new(Date32Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
        ];
        if with_original {
            fields.push(Field::new("is_original_release", DataType::Boolean, true));
            columns.push(Arc::new(BooleanArray::from(rows.iter().map(|r| r.4).collect::<Vec<_>>())));
        }
        if with_id {
            fields.push(Field::new("id", DataType::Utf8, true));
            columns.push(Arc::new(StringArray::from(rows.iter().map(|r| r.5).collect::<Vec<_>>())));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn stream_of(batches: &[RecordBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = StreamWriter::try_new(&mut out, &batches[0].schema()).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
        drop(w);
        out
    }

    /// What ingest stored before the column path: one struct per revision, then a batch.
    fn reference_rows(bytes: &[u8], received: Timestamp, seq0: i64) -> Result<RecordBatch, ValidationError> {
        let stored: Vec<StoredDataPoint> = decode_data_points_ipc(bytes)?
            .into_iter()
            .enumerate()
            .map(|(i, r)| StoredDataPoint::arrived(r, received, seq0 | i as i64))
            .collect();
        Ok(stored_data_points_to_batch(&stored).unwrap())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// The column-at-a-time decoder accepts exactly what the row decoder accepts, rejects with
        /// the same field, row and reason, and stores the same rows.
        #[test]
        fn column_decoder_matches_the_row_decoder(
            rows in proptest::collection::vec(
                (
                    proptest::sample::select(vec![Some("GDPC1"), Some("UNRATE"), Some("fred:CPI/2"), None, Some("bad id"), Some("")]),
                    proptest::sample::select(vec![-719_162, -1, 0, 19_000, 2_932_896, 2_932_897, -719_163]),
                    proptest::sample::select(vec![19_100, 0, 2_932_896, 3_000_000]),
                    proptest::sample::select(vec![Some(1.5), Some(-0.0), None, Some(f64::NAN), Some(f64::INFINITY), Some(2e300)]),
                    proptest::sample::select(vec![Some(true), Some(false), None]),
                    proptest::sample::select(vec![
                        None,
                        Some("6F1C2D4E-9A8B-4C3D-8E7F-0A1B2C3D4E5F"),
                        Some("6f1c2d4e9a8b4c3d8e7f0a1b2c3d4e5f"),
                        Some("not-a-uuid"),
                    ]),
                ),
                1..40,
            ),
            weights in proptest::collection::vec(0u8..20, 8),
            split in 0usize..40,
            with_original in proptest::bool::ANY,
            with_id in proptest::bool::ANY,
        ) {
            // Mostly valid rows, so that both the accept and the reject paths are exercised.
            let rows: Vec<_> = rows
                .into_iter()
                .enumerate()
                .map(|(i, mut r)| {
                    if weights[i % weights.len()] > 2 {
                        r.0 = Some(["GDPC1", "UNRATE"][i % 2]);
                        r.1 = 19_000 + i as i32;
                        r.2 = 19_100;
                        r.3 = r.3.filter(|v| v.is_finite());
                        r.4 = r.4.or(Some(false));
                        r.5 = r.5.filter(|s| s.len() > 10);
                    }
                    r
                })
                .collect();
            let batch = generated(&rows, with_original, with_id);
            let cut = split.min(batch.num_rows());
            let bytes = stream_of(&[batch.slice(0, cut), batch.slice(cut, batch.num_rows() - cut)]);
            let received = Timestamp::from_nanos(1_700_000_000_123_456_789);
            let seq0 = 7 << MAX_IPC_ROWS_BITS;
            let expected = reference_rows(&bytes, received, seq0);
            let got = decode_data_points_ipc_to_table(&bytes, received, seq0);
            match (expected, got) {
                (Ok(expected), Ok(got)) => {
                    let mut offset = 0;
                    for b in &got {
                        proptest::prop_assert_eq!(b, &expected.slice(offset, b.num_rows()));
                        offset += b.num_rows();
                    }
                    proptest::prop_assert_eq!(offset, expected.num_rows());
                }
                (Err(e), Err(g)) => {
                    proptest::prop_assert_eq!((e.field(), e.reason()), (g.field(), g.reason()));
                }
                (e, g) => proptest::prop_assert!(false, "row decoder {:?}, column decoder {:?}", e.map(|b| b.num_rows()), g.map(|b| b.len())),
            }
        }
    }

    #[test]
    fn more_rows_than_ingest_can_number_is_rejected() {
        let n = MAX_IPC_ROWS / 2 + 1;
        let batch = RecordBatch::try_new(
            bulk_revision_schema().project(&[0, 1, 2, 3]).map(Arc::new).unwrap(),
            vec![
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n("A", n))),
                Arc::new(Date32Array::from(vec![1; n])),
                Arc::new(Date32Array::from(vec![2; n])),
                Arc::new(Float64Array::from(vec![1.0; n])),
            ],
        )
        .unwrap();
        let bytes = stream_of(&[batch.clone(), batch]);
        let e = decode_data_points_ipc(&bytes).unwrap_err();
        assert_eq!((e.field(), e.reason()), ("$", &Reason::TooManyRows { rows: 2 * n, max: MAX_IPC_ROWS }));
        let e = decode_data_points_ipc_to_table(&bytes, Timestamp::from_nanos(0), 0).unwrap_err();
        assert_eq!(e.reason().code(), "too_many_rows");
    }
}
