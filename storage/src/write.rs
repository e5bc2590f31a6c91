//! Writing rows to new Parquet data files: sorted for the vintage layout, split by partition
//! (`month(realtime_end)`, null = current), rolled at the table's target size. Files are written
//! under fresh unique names and never overwritten; they join the table only through a commit.

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::Date32Type;
use chrono::Datelike;
use iceberg::spec::{DataFile, DataFileFormat, Literal, PartitionKey, Struct};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use std::collections::BTreeMap;
use vintagelake_schemas::Date;
use vintagelake_schemas::arrow::col;

use crate::catalog::{TableKind, Warehouse};
use crate::config::TierName;
use crate::error::{Result, StorageError};

/// Rows per Parquet row group: small enough for row-group pruning by series and date.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Iceberg `month` transform of a date: months since 1970-01.
pub fn month_of(days: i32) -> i32 {
    let d = Date::from_days_since_epoch(days).to_naive();
    (d.year() - 1970) * 12 + d.month0() as i32
}

/// Sort key of a table: the order rows have inside every data file.
pub fn sort_columns(kind: TableKind) -> &'static [&'static str] {
    match kind {
        TableKind::DataPoints => &[col::SERIES_ID, col::DATE, col::REVISION_DATE, col::INGEST_SEQ],
        TableKind::Series => &[col::ID, col::INGEST_SEQ],
    }
}

/// Sorts a batch by the table's sort key.
pub fn sort_batch(kind: TableKind, batch: &RecordBatch) -> Result<RecordBatch> {
    let columns = sort_columns(kind)
        .iter()
        .map(|name| {
            let values = batch
                .column_by_name(name)
                .ok_or_else(|| StorageError::InvalidData(format!("batch lacks sort column {name}")))?
                .clone();
            Ok(SortColumn { values, options: None })
        })
        .collect::<Result<Vec<_>>>()?;
    let indices = lexsort_to_indices(&columns, None)?;
    Ok(take_record_batch(batch, &indices)?)
}

/// Writes rows (in the table's Arrow schema) to new data files in `tier` (default: the hot tier).
/// Returns the files, ready for a commit; nothing is visible in the table until then.
pub async fn write_data_files(
    wh: &Warehouse,
    table: &Table,
    kind: TableKind,
    batches: &[RecordBatch],
    tier: Option<&TierName>,
) -> Result<Vec<DataFile>> {
    let Some(first) = batches.first() else { return Ok(Vec::new()) };
    let batch = concat_batches(&first.schema(), batches)?;
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let iceberg_schema = table.metadata().current_schema().clone();
    let expected = iceberg::arrow::schema_to_arrow_schema(&iceberg_schema)?;
    check_schema(&expected, &batch)?;
    let batch = sort_batch(kind, &batch)?;

    let tier = tier.unwrap_or(wh.hot_tier());
    let location = DefaultLocationGenerator::with_data_location(wh.data_location(kind, tier)?);
    let names =
        DefaultFileNameGenerator::new(format!("{}", uuid::Uuid::now_v7().simple()), None, DataFileFormat::Parquet);
    let target = table
        .metadata()
        .properties()
        .get(crate::catalog::PROP_TARGET_FILE_SIZE)
        .and_then(|v| v.parse().ok())
        .unwrap_or(wh.target_file_size()) as usize;
    let parquet = ParquetWriterBuilder::new(writer_properties(), iceberg_schema.clone());
    let rolling = RollingFileWriterBuilder::new(parquet, target, wh.file_io().clone(), location, names);
    let builder = DataFileWriterBuilder::new(rolling);
    let spec = table.metadata().default_partition_spec().as_ref().clone();

    let mut files = Vec::new();
    for (partition, rows) in split_by_partition(kind, &batch)? {
        let key = if spec.is_unpartitioned() {
            None
        } else {
            Some(PartitionKey::new(spec.clone(), iceberg_schema.clone(), partition))
        };
        let mut writer = builder.build(key).await?;
        let mut offset = 0;
        while offset < rows.num_rows() {
            let len = ROW_GROUP_ROWS.min(rows.num_rows() - offset);
            writer.write(rows.slice(offset, len)).await?;
            offset += len;
        }
        files.extend(writer.close().await?);
    }
    Ok(files)
}

pub(crate) fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid zstd level")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build()
}

pub(crate) fn check_schema(expected: &arrow::datatypes::Schema, batch: &RecordBatch) -> Result<()> {
    let got = batch.schema();
    let names = |s: &arrow::datatypes::Schema| {
        s.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect::<Vec<_>>()
    };
    if names(expected) != names(&got) {
        return Err(StorageError::InvalidData(format!(
            "rows do not have the table's columns: expected {:?}, got {:?}",
            names(expected),
            names(&got)
        )));
    }
    Ok(())
}

/// Splits sorted rows by partition value, keeping their order within each partition.
fn split_by_partition(kind: TableKind, batch: &RecordBatch) -> Result<Vec<(Struct, RecordBatch)>> {
    if kind != TableKind::DataPoints {
        return Ok(vec![(Struct::empty(), batch.clone())]);
    }
    let realtime_end = batch
        .column_by_name(col::REALTIME_END)
        .ok_or_else(|| StorageError::InvalidData("batch lacks realtime_end".into()))?
        .as_primitive::<Date32Type>();
    let mut groups: BTreeMap<Option<i32>, Vec<u32>> = BTreeMap::new();
    for i in 0..batch.num_rows() {
        let month = realtime_end.is_valid(i).then(|| month_of(realtime_end.value(i)));
        groups.entry(month).or_default().push(i as u32);
    }
    if groups.len() == 1 {
        let (month, _) = groups.into_iter().next().expect("one group");
        return Ok(vec![(Struct::from_iter([month.map(Literal::int)]), batch.clone())]);
    }
    groups
        .into_iter()
        .map(|(month, idx)| {
            let rows = take_record_batch(batch, &UInt32Array::from(idx))?;
            Ok((Struct::from_iter([month.map(Literal::int)]), rows))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_match_iceberg() {
        assert_eq!(month_of(0), 0); // 1970-01-01
        assert_eq!(month_of(31), 1); // 1970-02-01
        assert_eq!(month_of(-1), -1); // 1969-12-31
        assert_eq!(month_of(Date::parse_iso("2024-04-25").unwrap().days_since_epoch()), 54 * 12 + 3);
    }
}
