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
}

fn field(name: &str, data_type: DataType, nullable: bool, id: i32) -> Field {
    Field::new(name, data_type, nullable).with_metadata(HashMap::from([(FIELD_ID_KEY.to_owned(), id.to_string())]))
}

fn ts_us() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// `data_points`: the seed's `DataPoint` columns plus the vintage bookkeeping columns.
pub fn data_points_table_schema() -> SchemaRef {
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
    ]))
}

/// `series`: the seed's `EconomicSeries` columns plus arrival order (latest per id wins).
pub fn series_table_schema() -> SchemaRef {
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
        assert_eq!(ids(&data_points_table_schema()), (1..=10).collect::<Vec<_>>());
        assert_eq!(ids(&series_table_schema()), (1..=14).collect::<Vec<_>>());
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
