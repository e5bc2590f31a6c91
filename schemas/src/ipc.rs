//! The bulk wire format: one Kafka message holding an Arrow IPC stream of many revisions, for
//! backfills where one JSON message per revision would be wasteful.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Date32Builder, Float64Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use uuid::Uuid;

use crate::arrow::col;
use crate::error::{Reason, ValidationError, excerpt};
use crate::ids::{Date, SeriesId};
use crate::wire::DataPointRevision;

/// Largest bulk message accepted.
pub const MAX_IPC_MESSAGE_BYTES: usize = 64 << 20;

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

/// Schema of a bulk revision stream. `is_original_release` and `id` columns are optional.
pub fn bulk_revision_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(col::SERIES_ID, DataType::Utf8, false),
        Field::new(col::DATE, DataType::Date32, false),
        Field::new(col::REVISION_DATE, DataType::Date32, false),
        Field::new(col::VALUE, DataType::Float64, true),
        Field::new(col::IS_ORIGINAL_RELEASE, DataType::Boolean, false),
        Field::new(col::ID, DataType::Utf8, true),
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
    if bytes.len() > MAX_IPC_MESSAGE_BYTES {
        return Err(ValidationError::whole(Reason::TooLarge { len: bytes.len(), max: MAX_IPC_MESSAGE_BYTES }));
    }
    let malformed = |e: ArrowError| ValidationError::whole(Reason::MalformedIpc { detail: excerpt(&e.to_string()) });
    let reader = StreamReader::try_new(bytes, None).map_err(malformed)?;
    check_schema(&reader.schema())?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(malformed)?;
        decode_batch(&batch, &mut out)?;
    }
    Ok(out)
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
        out.push(DataPointRevision {
            series_id: SeriesId::parse_field(series.value(row), col::SERIES_ID).map_err(|e| e.at_row(row))?,
            date: in_range(date.value(row), col::DATE, row)?,
            revision_date: in_range(revision.value(row), col::REVISION_DATE, row)?,
            value: v,
            is_original_release,
            id,
            created_at: None,
            updated_at: None,
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
    let columns: Vec<ArrayRef> = vec![
        Arc::new(series.finish()),
        Arc::new(date.finish()),
        Arc::new(revision.finish()),
        Arc::new(value.finish()),
        Arc::new(original.finish()),
        Arc::new(id.finish()),
    ];
    let batch = RecordBatch::try_new(bulk_revision_schema(), columns)?;
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
    use arrow_array::{BooleanArray, Date32Array, Float64Array, Int32Array, StringArray};

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
}
