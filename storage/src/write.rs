//! Writing rows to new Parquet data files: sorted for the vintage layout, split by partition
//! (`month(realtime_end)`, null = current), rolled at the table's target size. Files are written
//! under fresh unique names and never overwritten; they join the table only through a commit.

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::Date32Type;
use chrono::Datelike;
use iceberg::spec::{DataFile, DataFileFormat, Literal, PartitionKey, Struct};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::{DataFileWriter, DataFileWriterBuilder};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use std::collections::BTreeMap;
use std::sync::Arc;
use vintagelake_schemas::Date;
use vintagelake_schemas::arrow::col;

use crate::catalog::{TableKind, Warehouse};
use crate::config::TierName;
use crate::error::{Result, StorageError};

/// Rows per Parquet row group: small enough for row-group pruning by series and date.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows handed to the file writer at a time; a file rolls over to the next once it passed the
/// target size, checked after each slice, so files end near the target and cover contiguous
/// series ranges (rows are sorted) even when the target holds fewer rows than a row group.
pub const WRITE_SLICE_ROWS: usize = 16 * 1024;
/// Distinct series ids a row group's `series_id` bloom filter is sized for.
pub const SERIES_BLOOM_NDV: u64 = 2_000;
/// Rows per data page at most (the page index then bounds each page's series ids).
pub const PAGE_ROWS: usize = 8 * 1024;

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
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| StorageError::InvalidData(format!("batch lacks sort column {name}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let indices = match key_indices(&columns) {
        Some(indices) => indices,
        None => {
            let columns = columns.into_iter().map(|values| SortColumn { values, options: None }).collect::<Vec<_>>();
            lexsort_to_indices(&columns, None)?
        }
    };
    // Rows that arrive in order (one series' bulk message, an API write of one series) keep
    // their arrays: no copy.
    if indices.values().iter().enumerate().all(|(i, &at)| at as usize == i) {
        return Ok(batch.clone());
    }
    Ok(take_record_batch(batch, &indices)?)
}

/// The order of [`lexsort_to_indices`] (ascending) for the shape both tables' keys have — one
/// non-null string column, then up to three non-null integer or date columns — without comparing
/// strings per comparison: each distinct string is ranked once (rows of one series mostly come
/// together, so that is one lookup per run), then rows sort by a fixed-size integer key. `None`
/// for any other shape.
fn key_indices(columns: &[arrow::array::ArrayRef]) -> Option<UInt32Array> {
    use arrow::datatypes::{DataType, Int64Type};
    let (first, rest) = columns.split_first()?;
    if rest.len() > 3 || columns.iter().any(|c| c.null_count() > 0) || first.len() > u32::MAX as usize {
        return None;
    }
    let strings = first.as_string_opt::<i32>()?;
    // Ints in order-preserving unsigned form, each at most 64 bits: (rank, a, b) fit in a u128,
    // the last column (the arrival sequence) in a u64.
    let mut ints: Vec<Box<dyn Fn(usize) -> u64 + '_>> = Vec::new();
    for c in rest {
        match c.data_type() {
            DataType::Date32 => {
                let a = c.as_primitive::<Date32Type>();
                ints.push(Box::new(move |i| u64::from((a.value(i) as u32) ^ 0x8000_0000)));
            }
            DataType::Int64 => {
                let a = c.as_primitive::<Int64Type>();
                ints.push(Box::new(move |i| (a.value(i) as u64) ^ 0x8000_0000_0000_0000));
            }
            _ => return None,
        }
    }
    // Only the last column may be 64 bits wide: the others share the u128 with the rank.
    if ints.len() > 1 && rest[..rest.len() - 1].iter().any(|c| c.data_type() != &DataType::Date32) {
        return None;
    }
    let mut distinct: Vec<&str> = Vec::new();
    {
        let mut seen = std::collections::HashSet::new();
        let mut previous = None;
        for s in strings.iter().flatten() {
            if previous != Some(s) && seen.insert(s) {
                distinct.push(s);
            }
            previous = Some(s);
        }
    }
    distinct.sort_unstable();
    let rank: std::collections::HashMap<&str, u32> = distinct.iter().enumerate().map(|(r, s)| (*s, r as u32)).collect();
    let (last, middle) = match ints.split_last() {
        Some((last, middle)) => (Some(last), middle),
        None => (None, &[][..]),
    };
    let mut keys: Vec<(u128, u64, u32)> = Vec::with_capacity(strings.len());
    let mut previous: Option<(&str, u32)> = None;
    for (i, s) in strings.iter().enumerate() {
        let s = s?;
        let r = match previous {
            Some((p, r)) if p == s => r,
            _ => rank[s],
        };
        previous = Some((s, r));
        let mut high = u128::from(r);
        for f in middle {
            high = (high << 32) | u128::from(f(i));
        }
        keys.push((high, last.map_or(0, |f| f(i)), i as u32));
    }
    keys.sort_unstable();
    Some(UInt32Array::from_iter_values(keys.into_iter().map(|(_, _, i)| i)))
}

/// Writes rows (in the table's Arrow schema) to new data files in `tier` (default: the hot tier).
/// Returns the files, ready for a commit; nothing is visible in the table until then.
pub async fn write_data_files(
    wh: &Warehouse,
    table: &Table,
    kind: TableKind,
    batches: &[RecordBatch],
    tier: Option<&TierName>,
    encoding: Encoding,
) -> Result<Vec<DataFile>> {
    let Some(first) = batches.first() else { return Ok(Vec::new()) };
    let batch = concat_batches(&first.schema(), batches)?;
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let mut sink = FileSink::new(wh, table, kind, tier, encoding)?;
    sink.write(&batch).await?;
    sink.finish().await
}

type PartitionWriter = DataFileWriter<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

/// Partitions a [`FileSink`] keeps a file open for at once; the one whose rows arrived longest
/// ago is closed first (each open file buffers a row group in memory).
const OPEN_PARTITIONS: usize = 4;

/// Data files written from rows handed over a batch at a time (compaction folds a chunk at a
/// time): each batch is sorted and split by partition, each partition's rows go to its open
/// file, which rolls over at the table's target size — so files reach the target whatever the
/// batch sizes, and memory holds one row group per open file, not the rows written. Rows of a
/// partition with no open file wait (up to a limit) until they fill a row group or the sink
/// finishes, so rows spread thinly over many partitions still make one file per partition.
pub struct FileSink {
    kind: TableKind,
    iceberg_schema: iceberg::spec::SchemaRef,
    expected: arrow::datatypes::SchemaRef,
    spec: iceberg::spec::PartitionSpec,
    builder: DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>,
    open: Vec<(Option<i32>, PartitionWriter)>,
    /// Rows of partitions without an open file, gathered until they fill a row group.
    waiting: BTreeMap<Option<i32>, Vec<RecordBatch>>,
    waiting_rows: usize,
    waiting_limit: usize,
    files: Vec<DataFile>,
    keys: Option<crate::crypto::FileKeys>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink").field("kind", &self.kind).field("files", &self.files.len()).finish_non_exhaustive()
    }
}

impl FileSink {
    /// Files of `table` in `tier` (default: the hot tier), encoded as `encoding` says.
    pub fn new(
        wh: &Warehouse,
        table: &Table,
        kind: TableKind,
        tier: Option<&TierName>,
        encoding: Encoding,
    ) -> Result<Self> {
        let iceberg_schema = table.metadata().current_schema().clone();
        let expected = Arc::new(iceberg::arrow::schema_to_arrow_schema(&iceberg_schema)?);
        let tier = tier.unwrap_or(wh.hot_tier());
        let location = DefaultLocationGenerator::with_data_location(wh.data_location(kind, tier)?);
        let names = DefaultFileNameGenerator::new(
            format!("{}-{}", encoding.file_prefix(), uuid::Uuid::now_v7().simple()),
            None,
            DataFileFormat::Parquet,
        );
        let target = table
            .metadata()
            .properties()
            .get(crate::catalog::PROP_TARGET_FILE_SIZE)
            .and_then(|v| v.parse().ok())
            .unwrap_or(wh.target_file_size()) as usize;
        // Encrypted: one fresh data key for this sink's files, its wrapped form recorded in each
        // file's footer and manifest entry.
        let keys = wh.encryption().map(crate::crypto::Encryption::new_file_keys).transpose()?;
        let level = wh.zstd_level(tier, encoding);
        let parquet = ParquetWriterBuilder::new(writer_properties(level, keys.as_ref()), iceberg_schema.clone());
        let rolling = RollingFileWriterBuilder::new(parquet, target, wh.file_io().clone(), location, names);
        Ok(Self {
            kind,
            iceberg_schema,
            expected,
            spec: table.metadata().default_partition_spec().as_ref().clone(),
            builder: DataFileWriterBuilder::new(rolling),
            open: Vec::new(),
            waiting: BTreeMap::new(),
            waiting_rows: 0,
            waiting_limit: ROW_GROUP_ROWS,
            files: Vec::new(),
            keys,
        })
    }

    /// Writes rows (the table's Arrow schema, any order).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // Sorted and split by our column names; each part laid out as the table's current columns
        // (by field id) when it is written.
        let batch = sort_batch(self.kind, batch)?;
        for (month, rows) in split_by_partition(self.kind, &batch)? {
            let rows = crate::evolve::to_table_columns(&self.expected, &rows)?;
            check_schema(&self.expected, &rows)?;
            if self.open.iter().any(|(m, _)| *m == month) {
                self.write_to(month, &[rows]).await?;
                continue;
            }
            // A partition without an open file gathers its rows until they fill a row group: a
            // run that touches many partitions a little writes one file to each, not one per
            // batch.
            self.waiting_rows += rows.num_rows();
            let waiting = self.waiting.entry(month).or_default();
            waiting.push(rows);
            let filled = waiting.iter().map(RecordBatch::num_rows).sum::<usize>() >= ROW_GROUP_ROWS;
            if filled {
                self.release(month).await?;
            }
            // Too much waiting: the partition with the most rows gets a file now.
            while self.waiting_rows > self.waiting_limit {
                let Some(biggest) = self
                    .waiting
                    .iter()
                    .max_by_key(|(_, b)| b.iter().map(RecordBatch::num_rows).sum::<usize>())
                    .map(|(m, _)| *m)
                else {
                    break;
                };
                self.release(biggest).await?;
            }
        }
        Ok(())
    }

    /// Rows waiting in this sink (not yet handed to a file) at most; the default is one row group.
    pub fn with_waiting_limit(mut self, rows: usize) -> Self {
        self.waiting_limit = rows.max(ROW_GROUP_ROWS);
        self
    }

    /// Writes a partition's waiting rows to its file.
    async fn release(&mut self, month: Option<i32>) -> Result<()> {
        let rows = self.waiting.remove(&month).unwrap_or_default();
        self.waiting_rows -= rows.iter().map(RecordBatch::num_rows).sum::<usize>();
        self.write_to(month, &rows).await
    }

    /// Writes rows to the partition's open file, opening one (and closing the one idle longest
    /// when [`OPEN_PARTITIONS`] are open).
    async fn write_to(&mut self, month: Option<i32>, rows: &[RecordBatch]) -> Result<()> {
        let found = self.open.iter().position(|(m, _)| *m == month);
        let at = match found {
            Some(at) => at,
            None => {
                if self.open.len() >= OPEN_PARTITIONS {
                    let (_, mut oldest) = self.open.remove(0);
                    self.files.extend(oldest.close().await?);
                }
                let key = (!self.spec.is_unpartitioned()).then(|| {
                    let value = Struct::from_iter([month.map(Literal::int)]);
                    PartitionKey::new(self.spec.clone(), self.iceberg_schema.clone(), value)
                });
                self.open.push((month, self.builder.build(key).await?));
                self.open.len() - 1
            }
        };
        // Most recently written last: the partition closed first is the one idle longest.
        let entry = self.open.remove(at);
        self.open.push(entry);
        let writer = &mut self.open.last_mut().expect("just pushed").1;
        for rows in rows {
            let mut offset = 0;
            while offset < rows.num_rows() {
                let len = WRITE_SLICE_ROWS.min(rows.num_rows() - offset);
                writer.write(rows.slice(offset, len)).await?;
                offset += len;
            }
        }
        Ok(())
    }

    /// Closes every open file; the files written, ready for a commit.
    pub async fn finish(mut self) -> Result<Vec<DataFile>> {
        let waiting: Vec<Option<i32>> = self.waiting.keys().copied().collect();
        for month in waiting {
            self.release(month).await?;
        }
        for (_, mut writer) in std::mem::take(&mut self.open) {
            self.files.extend(writer.close().await?);
        }
        match self.keys {
            Some(keys) => {
                self.files.iter().map(|f| crate::files::with_key_metadata(f, Some(keys.key_metadata.clone()))).collect()
            }
            None => Ok(self.files),
        }
    }
}

/// How a data file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Encoding {
    /// Appended rows (ingest, API writes): compaction rewrites these files soon, so they favour
    /// write speed (zstd level 1; compressing is most of an ingest commit's CPU at level 3).
    Fresh,
    /// Rewritten or tiered rows, which stay: they favour size (zstd level 3).
    Settled,
}

impl Encoding {
    /// zstd level of files written this way, unless their tier sets its own.
    pub fn default_zstd_level(self) -> i32 {
        match self {
            Encoding::Fresh => 1,
            Encoding::Settled => 3,
        }
    }

    /// How a data file's name starts, so its origin is known from the name alone (snapshot
    /// summaries expire): compaction treats current rows it wrote itself as each key's open
    /// revision, and the rows of `appended-` files as arrivals since.
    fn file_prefix(self) -> &'static str {
        match self {
            Encoding::Fresh => "appended",
            Encoding::Settled => "rewritten",
        }
    }
}

/// Whether a data file was written by a rewrite (compaction, retention), from its name; `None`
/// for files named before names said so.
pub fn written_by_rewrite(path: &str) -> Option<bool> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.starts_with(Encoding::Settled.file_prefix()) {
        Some(true)
    } else if name.starts_with(Encoding::Fresh.file_prefix()) {
        Some(false)
    } else {
        None
    }
}

/// How our data files are laid out and compressed (zstd at `zstd_level`); with `keys`, encrypted (footer and every
/// column under the write's data key) and without bloom filters, which Parquet writes in the
/// clear: a `series_id` filter would tell which series a file holds.
pub fn writer_properties(zstd_level: i32, keys: Option<&crate::crypto::FileKeys>) -> WriterProperties {
    let level = zstd_level.clamp(1, 22);
    let builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(level).expect("valid zstd level")))
        // Data-point ids are unique UUIDs: a dictionary never pays off, and trying one (until the
        // writer gives up at the page limit) costs a hash per value.
        .set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(col::ID), false)
        // A bloom filter on series_id per row group: a read of a few series skips row groups
        // whose bounds span the series but do not hold it (small commits of scattered series).
        // Sized for SERIES_BLOOM_NDV distinct ids per row group at 1% false positives (4 KiB);
        // larger row groups are sorted by series, where bounds and the page index prune.
        .set_column_bloom_filter_enabled(parquet::schema::types::ColumnPath::from(col::SERIES_ID), true)
        .set_column_bloom_filter_ndv(parquet::schema::types::ColumnPath::from(col::SERIES_ID), SERIES_BLOOM_NDV)
        .set_column_bloom_filter_fpp(parquet::schema::types::ColumnPath::from(col::SERIES_ID), 0.01)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Page statistics make the page index; pages of at most PAGE_ROWS rows let a read of one
        // series (files are sorted by series) decode a few pages instead of a row group.
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_data_page_row_count_limit(PAGE_ROWS);
    match keys {
        Some(keys) => builder
            .set_column_bloom_filter_enabled(parquet::schema::types::ColumnPath::from(col::SERIES_ID), false)
            .with_file_encryption_properties(keys.properties.clone())
            .build(),
        None => builder.build(),
    }
}

pub fn check_schema(expected: &arrow::datatypes::Schema, batch: &RecordBatch) -> Result<()> {
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
/// Rows split by partition: `data_points` by month of `realtime_end` (`None`: current rows); the
/// series table is unpartitioned (`None`).
fn split_by_partition(kind: TableKind, batch: &RecordBatch) -> Result<Vec<(Option<i32>, RecordBatch)>> {
    if kind != TableKind::DataPoints {
        return Ok(vec![(None, batch.clone())]);
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
        return Ok(vec![(month, batch.clone())]);
    }
    groups.into_iter().map(|(month, idx)| Ok((month, take_record_batch(batch, &UInt32Array::from(idx))?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ranked sort orders rows exactly as arrow's `lexsort_to_indices` (ties aside: neither
    /// is stable, so rows are compared by their key values, not their positions).
    #[test]
    fn ranked_sort_matches_lexsort() {
        use arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray};
        use rand::{Rng, SeedableRng};
        use std::sync::Arc;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for n in [0usize, 1, 2, 17, 1000, 5000] {
            let ids = ["B", "A", "AA", "", "b", "A.1", "Z/9", "a"];
            let series: Vec<&str> = (0..n)
                .map(|i| {
                    if rng.random_bool(0.7) && i > 0 {
                        ids[(i / 7) % ids.len()]
                    } else {
                        ids[rng.random_range(0..ids.len())]
                    }
                })
                .collect();
            let date: Vec<i32> = (0..n).map(|_| rng.random_range(-800_000..3_000_000)).collect();
            let revision: Vec<i32> = (0..n).map(|_| [i32::MIN, -1, 0, 1, i32::MAX][rng.random_range(0..5)]).collect();
            let seq: Vec<i64> = (0..n).map(|_| [i64::MIN, -5, 0, 3, i64::MAX][rng.random_range(0..5)]).collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(series)),
                Arc::new(Date32Array::from(date)),
                Arc::new(Date32Array::from(revision)),
                Arc::new(Int64Array::from(seq)),
            ];
            for width in 1..=4 {
                let cols = &columns[..width];
                let ours = key_indices(cols).expect("the table key shape");
                let sort: Vec<SortColumn> =
                    cols.iter().map(|c| SortColumn { values: c.clone(), options: None }).collect();
                let theirs = lexsort_to_indices(&sort, None).unwrap();
                let key = |i: u32| {
                    let i = i as usize;
                    cols.iter()
                        .map(|c| match c.data_type() {
                            arrow::datatypes::DataType::Utf8 => c.as_string::<i32>().value(i).to_owned(),
                            arrow::datatypes::DataType::Date32 => c.as_primitive::<Date32Type>().value(i).to_string(),
                            _ => c.as_primitive::<arrow::datatypes::Int64Type>().value(i).to_string(),
                        })
                        .collect::<Vec<_>>()
                };
                let ours: Vec<_> = ours.values().iter().map(|&i| key(i)).collect();
                let theirs: Vec<_> = theirs.values().iter().map(|&i| key(i)).collect();
                assert_eq!(ours, theirs, "n={n} width={width}");
            }
        }
        // Other shapes are left to lexsort.
        let floats: ArrayRef = Arc::new(arrow::array::Float64Array::from(vec![1.0]));
        assert!(key_indices(&[floats]).is_none());
    }

    /// Rows already in key order keep their arrays (no copy); others are sorted.
    #[test]
    fn sorting_rows_in_order_copies_nothing() {
        use vintagelake_schemas::table::{StoredDataPoint, stored_data_points_to_batch};
        let point = |series: &str, date: &str, seq: i64| {
            let json = format!(
                r#"{{"version":1,"series_id":"{series}","date":"{date}","revision_date":"2024-04-25","value":1}}"#
            );
            let revision = vintagelake_schemas::decode_data_point_json(json.as_bytes()).unwrap();
            StoredDataPoint::arrived(revision, vintagelake_schemas::Timestamp::now(), seq)
        };
        let sorted = stored_data_points_to_batch(&[
            point("A", "2024-01-01", 1),
            point("A", "2024-02-01", 2),
            point("B", "2024-01-01", 3),
        ])
        .unwrap();
        let out = sort_batch(TableKind::DataPoints, &sorted).unwrap();
        for (a, b) in sorted.columns().iter().zip(out.columns()) {
            assert!(Arc::ptr_eq(a, b), "an ordered batch keeps its arrays");
        }
        let unsorted =
            stored_data_points_to_batch(&[point("B", "2024-01-01", 3), point("A", "2024-01-01", 1)]).unwrap();
        let out = sort_batch(TableKind::DataPoints, &unsorted).unwrap();
        let series = out.column_by_name(col::SERIES_ID).unwrap().as_string::<i32>();
        assert_eq!((series.value(0), series.value(1)), ("A", "B"));
    }

    #[test]
    fn months_match_iceberg() {
        assert_eq!(month_of(0), 0); // 1970-01-01
        assert_eq!(month_of(31), 1); // 1970-02-01
        assert_eq!(month_of(-1), -1); // 1969-12-31
        assert_eq!(month_of(Date::parse_iso("2024-04-25").unwrap().days_since_epoch()), 54 * 12 + 3);
    }
}
