//! The seed's Arrow schemas, exactly, and conversions between records and `RecordBatch`es.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Date32Builder, Float64Builder, StringBuilder, TimestampNanosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, TimestampNanosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use uuid::Uuid;

use crate::ids::{Date, SeriesId};
use crate::model::{DataPoint, EconomicSeries, Timestamp};

/// Column names shared by the seed schemas and the Iceberg tables.
pub mod col {
    pub const ID: &str = "id";
    pub const SOURCE_ID: &str = "source_id";
    pub const EXTERNAL_ID: &str = "external_id";
    pub const TITLE: &str = "title";
    pub const DESCRIPTION: &str = "description";
    pub const UNITS: &str = "units";
    pub const FREQUENCY: &str = "frequency";
    pub const SEASONAL_ADJUSTMENT: &str = "seasonal_adjustment";
    pub const START_DATE: &str = "start_date";
    pub const END_DATE: &str = "end_date";
    pub const IS_ACTIVE: &str = "is_active";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    pub const SERIES_ID: &str = "series_id";
    pub const DATE: &str = "date";
    pub const VALUE: &str = "value";
    pub const REVISION_DATE: &str = "revision_date";
    pub const IS_ORIGINAL_RELEASE: &str = "is_original_release";
    /// Last day a revision was the current one (ALFRED's inclusive `realtime_end`); null while current.
    pub const REALTIME_END: &str = "realtime_end";
    /// First day a revision was current (ALFRED's `realtime_start`): equal to `revision_date`.
    pub const REALTIME_START: &str = "realtime_start";
    /// Arrival order within a series, so a correction of the same key wins over what it corrects.
    pub const INGEST_SEQ: &str = "ingest_seq";
    /// Observation status code of a revision (wire version 2).
    pub const STATUS: &str = "status";
    /// Comment on a revision (wire version 2).
    pub const COMMENT: &str = "comment";
    /// Series notes (wire version 2).
    pub const NOTES: &str = "notes";
    /// The release a series belongs to (wire version 2).
    pub const RELEASE: &str = "release";
    /// When the source last updated a series (wire version 2).
    pub const LAST_UPDATED: &str = "last_updated";
}

fn ts_ns() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, None)
}

/// The seed's `EconomicSeries` Arrow schema, field for field.
pub fn economic_series_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(col::ID, DataType::Utf8, false),
        Field::new(col::SOURCE_ID, DataType::Utf8, false),
        Field::new(col::EXTERNAL_ID, DataType::Utf8, false),
        Field::new(col::TITLE, DataType::Utf8, false),
        Field::new(col::DESCRIPTION, DataType::Utf8, true),
        Field::new(col::UNITS, DataType::Utf8, true),
        Field::new(col::FREQUENCY, DataType::Utf8, false),
        Field::new(col::SEASONAL_ADJUSTMENT, DataType::Utf8, true),
        Field::new(col::START_DATE, DataType::Utf8, true),
        Field::new(col::END_DATE, DataType::Utf8, true),
        Field::new(col::IS_ACTIVE, DataType::Boolean, false),
        Field::new(col::CREATED_AT, ts_ns(), false),
        Field::new(col::UPDATED_AT, ts_ns(), false),
    ]))
}

/// The seed's `DataPoint` Arrow schema, field for field.
pub fn data_point_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(col::ID, DataType::Utf8, false),
        Field::new(col::SERIES_ID, DataType::Utf8, false),
        Field::new(col::DATE, DataType::Date32, false),
        Field::new(col::VALUE, DataType::Float64, true),
        Field::new(col::REVISION_DATE, DataType::Date32, false),
        Field::new(col::IS_ORIGINAL_RELEASE, DataType::Boolean, false),
        Field::new(col::CREATED_AT, ts_ns(), false),
        Field::new(col::UPDATED_AT, ts_ns(), false),
    ]))
}

/// Data points as one batch in the seed schema.
pub fn data_points_to_batch(points: &[DataPoint]) -> Result<RecordBatch, ArrowError> {
    let n = points.len();
    let mut id = StringBuilder::with_capacity(n, n * 36);
    let mut series = StringBuilder::with_capacity(n, n * 8);
    let mut date = Date32Builder::with_capacity(n);
    let mut value = Float64Builder::with_capacity(n);
    let mut revision = Date32Builder::with_capacity(n);
    let mut original = BooleanBuilder::with_capacity(n);
    let mut created = TimestampNanosecondBuilder::with_capacity(n);
    let mut updated = TimestampNanosecondBuilder::with_capacity(n);
    let mut uuid_buf = Uuid::encode_buffer();
    for p in points {
        id.append_value(p.id.hyphenated().encode_lower(&mut uuid_buf));
        series.append_value(p.series_id.as_str());
        date.append_value(p.date.days_since_epoch());
        value.append_option(p.value);
        revision.append_value(p.revision_date.days_since_epoch());
        original.append_value(p.is_original_release);
        created.append_value(p.created_at.nanos());
        updated.append_value(p.updated_at.nanos());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(series.finish()),
        Arc::new(date.finish()),
        Arc::new(value.finish()),
        Arc::new(revision.finish()),
        Arc::new(original.finish()),
        Arc::new(created.finish()),
        Arc::new(updated.finish()),
    ];
    RecordBatch::try_new(data_point_schema(), columns)
}

/// Reads data points back from a batch that has (at least) the seed columns, by name.
pub fn batch_to_data_points(batch: &RecordBatch) -> Result<Vec<DataPoint>, ArrowError> {
    let id = string_col(batch, col::ID)?;
    let series = string_col(batch, col::SERIES_ID)?;
    let date = typed_col::<Date32Type>(batch, col::DATE)?;
    let value = typed_col::<Float64Type>(batch, col::VALUE)?;
    let revision = typed_col::<Date32Type>(batch, col::REVISION_DATE)?;
    let original = column(batch, col::IS_ORIGINAL_RELEASE)?
        .as_boolean_opt()
        .ok_or_else(|| ArrowError::SchemaError(format!("column {} is not Boolean", col::IS_ORIGINAL_RELEASE)))?;
    let created = typed_col::<TimestampNanosecondType>(batch, col::CREATED_AT)?;
    let updated = typed_col::<TimestampNanosecondType>(batch, col::UPDATED_AT)?;
    (0..batch.num_rows())
        .map(|i| {
            Ok(DataPoint {
                id: Uuid::parse_str(id.value(i))
                    .map_err(|e| ArrowError::InvalidArgumentError(format!("row {i} id: {e}")))?,
                series_id: SeriesId::parse_field(series.value(i), col::SERIES_ID)
                    .map_err(|e| ArrowError::InvalidArgumentError(format!("row {i}: {e}")))?,
                date: Date::from_days_since_epoch(date.value(i)),
                value: value.is_valid(i).then(|| value.value(i)),
                revision_date: Date::from_days_since_epoch(revision.value(i)),
                is_original_release: original.value(i),
                created_at: Timestamp::from_nanos(created.value(i)),
                updated_at: Timestamp::from_nanos(updated.value(i)),
            })
        })
        .collect()
}

/// Series metadata as one batch in the seed schema.
pub fn series_to_batch(series: &[EconomicSeries]) -> Result<RecordBatch, ArrowError> {
    let n = series.len();
    let mut b: Vec<StringBuilder> = (0..10).map(|_| StringBuilder::with_capacity(n, n * 16)).collect();
    let mut active = BooleanBuilder::with_capacity(n);
    let mut created = TimestampNanosecondBuilder::with_capacity(n);
    let mut updated = TimestampNanosecondBuilder::with_capacity(n);
    for s in series {
        b[0].append_value(s.id.as_str());
        b[1].append_value(&s.source_id);
        b[2].append_value(&s.external_id);
        b[3].append_value(&s.title);
        b[4].append_option(s.description.as_deref());
        b[5].append_option(s.units.as_deref());
        b[6].append_value(&s.frequency);
        b[7].append_option(s.seasonal_adjustment.as_deref());
        b[8].append_option(s.start_date.map(|d| d.to_string()));
        b[9].append_option(s.end_date.map(|d| d.to_string()));
        active.append_value(s.is_active);
        created.append_value(s.created_at.nanos());
        updated.append_value(s.updated_at.nanos());
    }
    let mut columns: Vec<ArrayRef> = b.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect();
    columns.push(Arc::new(active.finish()));
    columns.push(Arc::new(created.finish()));
    columns.push(Arc::new(updated.finish()));
    RecordBatch::try_new(economic_series_schema(), columns)
}

/// Reads series metadata back from a batch with (at least) the seed columns, by name.
pub fn batch_to_series(batch: &RecordBatch) -> Result<Vec<EconomicSeries>, ArrowError> {
    let s = |name| string_col(batch, name);
    let (id, source, external, title) = (s(col::ID)?, s(col::SOURCE_ID)?, s(col::EXTERNAL_ID)?, s(col::TITLE)?);
    let (description, units, frequency) = (s(col::DESCRIPTION)?, s(col::UNITS)?, s(col::FREQUENCY)?);
    let (adjustment, start, end) = (s(col::SEASONAL_ADJUSTMENT)?, s(col::START_DATE)?, s(col::END_DATE)?);
    let active = column(batch, col::IS_ACTIVE)?
        .as_boolean_opt()
        .ok_or_else(|| ArrowError::SchemaError(format!("column {} is not Boolean", col::IS_ACTIVE)))?;
    let created = typed_col::<TimestampNanosecondType>(batch, col::CREATED_AT)?;
    let updated = typed_col::<TimestampNanosecondType>(batch, col::UPDATED_AT)?;
    // Version-2 metadata, when the batch has it (the seed schema does not).
    let notes = batch.column_by_name(col::NOTES).map(|_| s(col::NOTES)).transpose()?;
    let release = batch.column_by_name(col::RELEASE).map(|_| s(col::RELEASE)).transpose()?;
    let last_updated = batch
        .column_by_name(col::LAST_UPDATED)
        .map(|_| typed_col::<TimestampNanosecondType>(batch, col::LAST_UPDATED))
        .transpose()?;
    let opt = |a: &arrow_array::StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_owned());
    let date = |a: &arrow_array::StringArray, i: usize, name: &str| -> Result<Option<Date>, ArrowError> {
        if a.is_null(i) {
            return Ok(None);
        }
        Date::parse_iso(a.value(i))
            .map(Some)
            .ok_or_else(|| ArrowError::InvalidArgumentError(format!("row {i} {name}: not a YYYY-MM-DD date")))
    };
    (0..batch.num_rows())
        .map(|i| {
            Ok(EconomicSeries {
                id: SeriesId::parse_field(id.value(i), col::ID)
                    .map_err(|e| ArrowError::InvalidArgumentError(format!("row {i}: {e}")))?,
                source_id: source.value(i).to_owned(),
                external_id: external.value(i).to_owned(),
                title: title.value(i).to_owned(),
                description: opt(description, i),
                units: opt(units, i),
                frequency: frequency.value(i).to_owned(),
                seasonal_adjustment: opt(adjustment, i),
                start_date: date(start, i, col::START_DATE)?,
                end_date: date(end, i, col::END_DATE)?,
                is_active: active.value(i),
                created_at: Timestamp::from_nanos(created.value(i)),
                updated_at: Timestamp::from_nanos(updated.value(i)),
                notes: notes.and_then(|a| opt(a, i)),
                release: release.and_then(|a| opt(a, i)),
                last_updated: last_updated.and_then(|a| a.is_valid(i).then(|| Timestamp::from_nanos(a.value(i)))),
            })
        })
        .collect()
}

pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    batch.column_by_name(name).ok_or_else(|| ArrowError::SchemaError(format!("missing column {name}")))
}

fn string_col<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow_array::StringArray, ArrowError> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is not Utf8")))
}

fn typed_col<'a, T: arrow_array::ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a arrow_array::PrimitiveArray<T>, ArrowError> {
    column(batch, name)?
        .as_primitive_opt::<T>()
        .ok_or_else(|| ArrowError::SchemaError(format!("column {name} is not {}", T::DATA_TYPE)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::derived_data_point_id;

    fn point(series: &str, date: &str, rev: &str, value: Option<f64>) -> DataPoint {
        let series_id: SeriesId = series.parse().unwrap();
        let (date, revision_date) = (date.parse().unwrap(), rev.parse().unwrap());
        DataPoint {
            id: derived_data_point_id(&series_id, date, revision_date),
            series_id,
            date,
            value,
            revision_date,
            is_original_release: value.is_some(),
            created_at: Timestamp::from_nanos(1_700_000_000_123_456_789),
            updated_at: Timestamp::from_nanos(1_700_000_001_000_000_000),
        }
    }

    #[test]
    fn seed_schemas_are_exact() {
        let dp = data_point_schema();
        let names: Vec<_> =
            dp.fields().iter().map(|f| (f.name().as_str(), f.data_type().clone(), f.is_nullable())).collect();
        assert_eq!(
            names,
            vec![
                ("id", DataType::Utf8, false),
                ("series_id", DataType::Utf8, false),
                ("date", DataType::Date32, false),
                ("value", DataType::Float64, true),
                ("revision_date", DataType::Date32, false),
                ("is_original_release", DataType::Boolean, false),
                ("created_at", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
                ("updated_at", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            ]
        );
        let es = economic_series_schema();
        let nullable: Vec<_> = es.fields().iter().filter(|f| f.is_nullable()).map(|f| f.name().as_str()).collect();
        assert_eq!(nullable, ["description", "units", "seasonal_adjustment", "start_date", "end_date"]);
        assert_eq!(es.fields().len(), 13);
    }

    #[test]
    fn data_points_round_trip_through_a_batch() {
        let points = vec![
            point("GDPC1", "2024-01-01", "2024-04-25", Some(22_768.866)),
            point("GDPC1", "2024-01-01", "2024-05-30", None),
            point("UNRATE", "1948-01-01", "1948-02-06", Some(-0.0)),
        ];
        let batch = data_points_to_batch(&points).unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema(), data_point_schema());
        let back = batch_to_data_points(&batch).unwrap();
        assert_eq!(back, points);
        assert!(back[2].value.unwrap().is_sign_negative());
    }

    #[test]
    fn series_round_trip_through_a_batch() {
        let series = vec![EconomicSeries {
            id: "GDPC1".parse().unwrap(),
            source_id: "fred".into(),
            external_id: "GDPC1".into(),
            title: "Real Gross Domestic Product".into(),
            description: Some("Chained 2017 dollars".into()),
            units: Some("Billions of Chained 2017 Dollars".into()),
            frequency: "Quarterly".into(),
            seasonal_adjustment: None,
            start_date: Some("1947-01-01".parse().unwrap()),
            end_date: None,
            is_active: true,
            created_at: Timestamp::from_nanos(1),
            updated_at: Timestamp::from_nanos(2),
            notes: None,
            release: None,
            last_updated: None,
        }];
        let batch = series_to_batch(&series).unwrap();
        assert_eq!(batch.schema(), economic_series_schema());
        assert_eq!(batch_to_series(&batch).unwrap(), series);
    }

    #[test]
    fn reading_a_batch_with_a_missing_column_is_an_error() {
        let batch = data_points_to_batch(&[point("A", "2024-01-01", "2024-01-02", Some(1.0))]).unwrap();
        let without_value = batch.project(&[0, 1, 2, 4, 5, 6, 7]).unwrap();
        let err = batch_to_data_points(&without_value).unwrap_err();
        assert!(err.to_string().contains("missing column value"), "{err}");
    }
}
