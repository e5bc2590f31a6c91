//! Schemas of the Iceberg tables, as Arrow schemas carrying stable Iceberg field ids.
//!
//! Field ids are the identity of a column in Iceberg: they are never reused or renumbered. New
//! columns take the next free id. Timestamps are microseconds because Iceberg v2 `timestamp` is.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::arrow::col;

/// Arrow field metadata key that carries the Iceberg/Parquet field id.
pub const FIELD_ID_KEY: &str = "PARQUET:field_id";

/// Table names inside the vintagelake namespace.
pub const DATA_POINTS_TABLE: &str = "data_points";
pub const SERIES_TABLE: &str = "series";

/// Stable Iceberg field ids of the `data_points` table.
pub mod data_points_ids {
    pub const ID: i32 = 1;
    pub const SERIES_ID: i32 = 2;
    pub const DATE: i32 = 3;
    pub const VALUE: i32 = 4;
    pub const REVISION_DATE: i32 = 5;
    pub const IS_ORIGINAL_RELEASE: i32 = 6;
    pub const CREATED_AT: i32 = 7;
    pub const UPDATED_AT: i32 = 8;
    pub const REALTIME_END: i32 = 9;
    pub const INGEST_SEQ: i32 = 10;
    /// Schema version 2.
    pub const STATUS: i32 = 11;
    pub const COMMENT: i32 = 12;
}

/// Stable Iceberg field ids of the `series` table.
pub mod series_ids {
    pub const ID: i32 = 1;
    pub const SOURCE_ID: i32 = 2;
    pub const EXTERNAL_ID: i32 = 3;
    pub const TITLE: i32 = 4;
    pub const DESCRIPTION: i32 = 5;
    pub const UNITS: i32 = 6;
    pub const FREQUENCY: i32 = 7;
    pub const SEASONAL_ADJUSTMENT: i32 = 8;
    pub const START_DATE: i32 = 9;
    pub const END_DATE: i32 = 10;
    pub const IS_ACTIVE: i32 = 11;
    pub const CREATED_AT: i32 = 12;
    pub const UPDATED_AT: i32 = 13;
    pub const INGEST_SEQ: i32 = 14;
    /// Schema version 2.
    pub const NOTES: i32 = 15;
    pub const RELEASE: i32 = 16;
    pub const LAST_UPDATED: i32 = 17;
}

/// The version of the tables' schemas this build writes. Version 2 added `status` and `comment`
/// to `data_points`, `notes`, `release` and `last_updated` to `series`: nullable columns with
/// new field ids, so older files read them as null and nothing is rewritten.
pub const SCHEMA_VERSION: u32 = 2;

/// How many leading columns of each table existed in schema version 1 (`data_points`, `series`).
const VERSION_1_COLUMNS: (usize, usize) = (10, 14);

fn field(name: &str, data_type: DataType, nullable: bool, id: i32) -> Field {
    Field::new(name, data_type, nullable).with_metadata(HashMap::from([(FIELD_ID_KEY.to_owned(), id.to_string())]))
}

fn ts_us() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// `data_points` as schema `version` defines it (1 or [`SCHEMA_VERSION`]).
pub fn data_points_schema_at(version: u32) -> SchemaRef {
    at_version(data_points_table_schema(), version, VERSION_1_COLUMNS.0)
}

/// `series` as schema `version` defines it (1 or [`SCHEMA_VERSION`]).
pub fn series_schema_at(version: u32) -> SchemaRef {
    at_version(series_table_schema(), version, VERSION_1_COLUMNS.1)
}

fn at_version(current: SchemaRef, version: u32, v1_columns: usize) -> SchemaRef {
    if version >= SCHEMA_VERSION {
        return current;
    }
    Arc::new(Schema::new(current.fields()[..v1_columns].to_vec()))
}

/// `data_points`: the seed's `DataPoint` columns plus the vintage bookkeeping columns, then the
/// columns later schema versions added (always at the end, with new field ids).
pub fn data_points_table_schema() -> SchemaRef {
    // Built once: every read, resolution and write asks for it.
    static SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(build_data_points_schema);
    SCHEMA.clone()
}

fn build_data_points_schema() -> SchemaRef {
    use data_points_ids as id;
    Arc::new(Schema::new(vec![
        field(col::ID, DataType::Utf8, false, id::ID),
        field(col::SERIES_ID, DataType::Utf8, false, id::SERIES_ID),
        field(col::DATE, DataType::Date32, false, id::DATE),
        field(col::VALUE, DataType::Float64, true, id::VALUE),
        field(col::REVISION_DATE, DataType::Date32, false, id::REVISION_DATE),
        field(col::IS_ORIGINAL_RELEASE, DataType::Boolean, false, id::IS_ORIGINAL_RELEASE),
        field(col::CREATED_AT, ts_us(), false, id::CREATED_AT),
        field(col::UPDATED_AT, ts_us(), false, id::UPDATED_AT),
        field(col::REALTIME_END, DataType::Date32, true, id::REALTIME_END),
        field(col::INGEST_SEQ, DataType::Int64, false, id::INGEST_SEQ),
        field(col::STATUS, DataType::Utf8, true, id::STATUS),
        field(col::COMMENT, DataType::Utf8, true, id::COMMENT),
    ]))
}

/// `series`: the seed's `EconomicSeries` columns plus arrival order (latest per id wins).
pub fn series_table_schema() -> SchemaRef {
    static SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(build_series_schema);
    SCHEMA.clone()
}

fn build_series_schema() -> SchemaRef {
    use series_ids as id;
    Arc::new(Schema::new(vec![
        field(col::ID, DataType::Utf8, false, id::ID),
        field(col::SOURCE_ID, DataType::Utf8, false, id::SOURCE_ID),
        field(col::EXTERNAL_ID, DataType::Utf8, false, id::EXTERNAL_ID),
        field(col::TITLE, DataType::Utf8, false, id::TITLE),
        field(col::DESCRIPTION, DataType::Utf8, true, id::DESCRIPTION),
        field(col::UNITS, DataType::Utf8, true, id::UNITS),
        field(col::FREQUENCY, DataType::Utf8, false, id::FREQUENCY),
        field(col::SEASONAL_ADJUSTMENT, DataType::Utf8, true, id::SEASONAL_ADJUSTMENT),
        field(col::START_DATE, DataType::Utf8, true, id::START_DATE),
        field(col::END_DATE, DataType::Utf8, true, id::END_DATE),
        field(col::IS_ACTIVE, DataType::Boolean, false, id::IS_ACTIVE),
        field(col::CREATED_AT, ts_us(), false, id::CREATED_AT),
        field(col::UPDATED_AT, ts_us(), false, id::UPDATED_AT),
        field(col::INGEST_SEQ, DataType::Int64, false, id::INGEST_SEQ),
        field(col::NOTES, DataType::Utf8, true, id::NOTES),
        field(col::RELEASE, DataType::Utf8, true, id::RELEASE),
        field(col::LAST_UPDATED, ts_us(), true, id::LAST_UPDATED),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrow::{data_point_schema, economic_series_schema};

    fn ids(schema: &Schema) -> Vec<i32> {
        schema.fields().iter().map(|f| f.metadata()[FIELD_ID_KEY].parse().unwrap()).collect()
    }

    #[test]
    fn field_ids_are_unique_dense_and_frozen() {
        // Freezing the numbering: changing these numbers breaks every existing table.
        assert_eq!(ids(&data_points_table_schema()), (1..=12).collect::<Vec<_>>());
        assert_eq!(ids(&series_table_schema()), (1..=17).collect::<Vec<_>>());
        assert_eq!(ids(&data_points_schema_at(1)), (1..=10).collect::<Vec<_>>());
        assert_eq!(ids(&series_schema_at(1)), (1..=14).collect::<Vec<_>>());
        // Columns added after version 1 are nullable: old files read them as null.
        for (v1, v2) in
            [(data_points_schema_at(1), data_points_table_schema()), (series_schema_at(1), series_table_schema())]
        {
            assert!(v2.fields()[v1.fields().len()..].iter().all(|f| f.is_nullable()));
        }
    }

    #[test]
    fn stored_points_round_trip_through_the_table_schema() {
        let sid: crate::SeriesId = "GDPC1".parse().unwrap();
        let d = crate::Date::parse_iso("2024-01-01").unwrap();
        let r = crate::Date::parse_iso("2024-04-25").unwrap();
        let rows = vec![
            StoredDataPoint {
                point: crate::DataPoint {
                    id: crate::model::derived_data_point_id(&sid, d, r),
                    series_id: sid.clone(),
                    date: d,
                    value: Some(1.5),
                    revision_date: r,
                    is_original_release: true,
                    created_at: crate::Timestamp::from_nanos(1_700_000_000_123_456_000),
                    updated_at: crate::Timestamp::from_nanos(1_700_000_000_123_457_000),
                },
                realtime_end: Some(crate::Date::parse_iso("2024-05-29").unwrap()),
                ingest_seq: 42,
                status: Some("P".into()),
                comment: Some("advance estimate".into()),
            },
            StoredDataPoint {
                point: crate::DataPoint { value: None, ..rows_point(&sid) },
                realtime_end: None,
                ingest_seq: 43,
                status: None,
                comment: None,
            },
        ];
        let batch = stored_data_points_to_batch(&rows).unwrap();
        assert_eq!(batch.schema(), data_points_table_schema());
        assert_eq!(batch_to_stored_data_points(&batch).unwrap(), rows);
    }

    fn rows_point(sid: &crate::SeriesId) -> crate::DataPoint {
        let d = crate::Date::parse_iso("2024-04-01").unwrap();
        crate::DataPoint {
            id: crate::model::derived_data_point_id(sid, d, d),
            series_id: sid.clone(),
            date: d,
            value: Some(2.0),
            revision_date: d,
            is_original_release: false,
            created_at: crate::Timestamp::from_nanos(0),
            updated_at: crate::Timestamp::from_nanos(1_000),
        }
    }

    #[test]
    fn table_schemas_keep_every_seed_column_in_order() {
        for (seed, table) in
            [(data_point_schema(), data_points_table_schema()), (economic_series_schema(), series_table_schema())]
        {
            for (i, f) in seed.fields().iter().enumerate() {
                let t = table.field(i);
                assert_eq!(t.name(), f.name());
                assert_eq!(t.is_nullable(), f.is_nullable(), "{}", f.name());
                match f.data_type() {
                    DataType::Timestamp(TimeUnit::Nanosecond, None) => assert_eq!(t.data_type(), &ts_us()),
                    other => assert_eq!(t.data_type(), other, "{}", f.name()),
                }
            }
        }
    }
}

/// A data point as stored in the `data_points` table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDataPoint {
    pub point: crate::DataPoint,
    /// Last day this revision was current; `None` while it is (or until compaction closes it).
    pub realtime_end: Option<crate::Date>,
    /// Arrival order within the series: a later write of the same key corrects an earlier one.
    pub ingest_seq: i64,
    /// Observation status code (schema version 2).
    pub status: Option<String>,
    /// Comment on the value (schema version 2).
    pub comment: Option<String>,
}

impl StoredDataPoint {
    /// A seed data point as stored: no real-time end yet, no status or comment.
    pub fn of_point(point: crate::DataPoint, ingest_seq: i64) -> Self {
        Self { point, realtime_end: None, ingest_seq, status: None, comment: None }
    }

    /// A revision as ingest stores it on arrival: defaults applied
    /// ([`crate::DataPointRevision::into_data_point`]), no real-time end yet.
    pub fn arrived(mut revision: crate::DataPointRevision, received_at: crate::Timestamp, ingest_seq: i64) -> Self {
        let (status, comment) = (revision.status.take(), revision.comment.take());
        Self { point: revision.into_data_point(received_at), realtime_end: None, ingest_seq, status, comment }
    }
}

/// Rows in the `data_points` table schema.
pub fn stored_data_points_to_batch(
    rows: &[StoredDataPoint],
) -> Result<arrow_array::RecordBatch, arrow_schema::ArrowError> {
    use arrow_array::builder::{Date32Builder, Int64Builder};

    let points: Vec<crate::DataPoint> = rows.iter().map(|r| r.point.clone()).collect();
    let seed = crate::arrow::data_points_to_batch(&points)?;
    let mut end = Date32Builder::with_capacity(rows.len());
    let mut seq = Int64Builder::with_capacity(rows.len());
    for r in rows {
        end.append_option(r.realtime_end.map(crate::Date::days_since_epoch));
        seq.append_value(r.ingest_seq);
    }
    let status = arrow_array::StringArray::from_iter(rows.iter().map(|r| r.status.as_deref()));
    let comment = arrow_array::StringArray::from_iter(rows.iter().map(|r| r.comment.as_deref()));
    seed_to_table(
        &seed,
        data_points_table_schema(),
        vec![Arc::new(end.finish()), Arc::new(seq.finish()), Arc::new(status), Arc::new(comment)],
    )
}

/// Series metadata with its arrival order, in the `series` table schema.
pub fn stored_series_to_batch(
    rows: &[(crate::EconomicSeries, i64)],
) -> Result<arrow_array::RecordBatch, arrow_schema::ArrowError> {
    let series: Vec<crate::EconomicSeries> = rows.iter().map(|(s, _)| s.clone()).collect();
    let seed = crate::arrow::series_to_batch(&series)?;
    let seq = arrow_array::Int64Array::from_iter_values(rows.iter().map(|(_, q)| *q));
    let notes = arrow_array::StringArray::from_iter(rows.iter().map(|(s, _)| s.notes.as_deref()));
    let release = arrow_array::StringArray::from_iter(rows.iter().map(|(s, _)| s.release.as_deref()));
    let updated = arrow_array::TimestampMicrosecondArray::from_iter(
        rows.iter().map(|(s, _)| s.last_updated.map(crate::Timestamp::micros)),
    );
    seed_to_table(
        &seed,
        series_table_schema(),
        vec![Arc::new(seq), Arc::new(notes), Arc::new(release), Arc::new(updated)],
    )
}

/// Reads `series` table rows back: each series with its arrival order.
pub fn batch_to_stored_series(
    batch: &arrow_array::RecordBatch,
) -> Result<Vec<(crate::EconomicSeries, i64)>, arrow_schema::ArrowError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    let series = crate::arrow::batch_to_series(&to_seed_timestamps(batch)?)?;
    let seq = crate::arrow::column(batch, col::INGEST_SEQ)?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| arrow_schema::ArrowError::SchemaError("ingest_seq is not Int64".into()))?;
    Ok(series.into_iter().enumerate().map(|(i, s)| (s, seq.value(i))).collect())
}

/// Builds a table-schema batch from a seed-schema batch: seed columns by name (nanosecond
/// timestamps truncated to the table's microseconds), then `extras` for the table-only columns.
fn seed_to_table(
    seed: &arrow_array::RecordBatch,
    table: SchemaRef,
    extras: Vec<arrow_array::ArrayRef>,
) -> Result<arrow_array::RecordBatch, arrow_schema::ArrowError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{TimestampMicrosecondType, TimestampNanosecondType};

    let mut extras = extras.into_iter();
    let mut columns = Vec::with_capacity(table.fields().len());
    for f in table.fields() {
        match seed.column_by_name(f.name()) {
            Some(c) if matches!(f.data_type(), DataType::Timestamp(TimeUnit::Microsecond, _)) => {
                let ns = c.as_primitive_opt::<TimestampNanosecondType>().ok_or_else(|| {
                    arrow_schema::ArrowError::SchemaError(format!("{} is not a nanosecond timestamp", f.name()))
                })?;
                columns.push(Arc::new(ns.unary::<_, TimestampMicrosecondType>(|v| v.div_euclid(1_000))) as _);
            }
            Some(c) => columns.push(c.clone()),
            None => columns.push(extras.next().ok_or_else(|| {
                arrow_schema::ArrowError::SchemaError(format!("no values for table column {}", f.name()))
            })?),
        }
    }
    arrow_array::RecordBatch::try_new(table, columns)
}

/// Reads rows in the `data_points` table schema (by column name; extra columns are ignored).
pub fn batch_to_stored_data_points(
    batch: &arrow_array::RecordBatch,
) -> Result<Vec<StoredDataPoint>, arrow_schema::ArrowError> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Int64Type};

    let seed = to_seed_timestamps(batch)?;
    let points = crate::arrow::batch_to_data_points(&seed)?;
    let end = crate::arrow::column(batch, col::REALTIME_END)?
        .as_primitive_opt::<Date32Type>()
        .ok_or_else(|| arrow_schema::ArrowError::SchemaError("realtime_end is not Date32".into()))?;
    let seq = crate::arrow::column(batch, col::INGEST_SEQ)?
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| arrow_schema::ArrowError::SchemaError("ingest_seq is not Int64".into()))?;
    // Rows of schema version 1 have no status or comment.
    let text = |name: &str| {
        batch
            .column_by_name(name)
            .map(|c| {
                c.as_string_opt::<i32>()
                    .ok_or_else(|| arrow_schema::ArrowError::SchemaError(format!("{name} is not Utf8")))
            })
            .transpose()
    };
    let (status, comment) = (text(col::STATUS)?, text(col::COMMENT)?);
    let at =
        |a: Option<&arrow_array::StringArray>, i: usize| a.and_then(|a| a.is_valid(i).then(|| a.value(i).to_owned()));
    Ok(points
        .into_iter()
        .enumerate()
        .map(|(i, point)| StoredDataPoint {
            point,
            realtime_end: end.is_valid(i).then(|| crate::Date::from_days_since_epoch(end.value(i))),
            ingest_seq: seq.value(i),
            status: at(status, i),
            comment: at(comment, i),
        })
        .collect())
}

/// Casts microsecond timestamp columns to the seed's nanoseconds; other columns unchanged.
pub fn to_seed_timestamps(
    batch: &arrow_array::RecordBatch,
) -> Result<arrow_array::RecordBatch, arrow_schema::ArrowError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{TimestampMicrosecondType, TimestampNanosecondType};

    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        match f.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                let us = c.as_primitive::<TimestampMicrosecondType>();
                let ns =
                    us.unary::<_, TimestampNanosecondType>(|v| v.saturating_mul(1_000)).with_timezone_opt(tz.clone());
                fields.push(Field::new(
                    f.name(),
                    DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()),
                    f.is_nullable(),
                ));
                columns.push(Arc::new(ns) as arrow_array::ArrayRef);
            }
            _ => {
                fields.push(f.as_ref().clone().with_metadata(HashMap::new()));
                columns.push(c.clone());
            }
        }
    }
    arrow_array::RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
