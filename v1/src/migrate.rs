//! V1 → V2: copies a Parquet store's tables into the Iceberg tables, resumable after a crash.
//!
//! The source is pinned at one log version (recorded in the target on the first commit). Its live
//! files at that version are copied in order, in chunks; each chunk is one Iceberg append whose
//! commit also moves the migration's position (a recorded "offset" under [`MIGRATION_TOPIC`]:
//! partition 0 = files copied, partition 1 = the pinned source version). A crash loses at most the
//! chunk in flight, whose files nothing references; a re-run resumes after the last committed
//! chunk, so no row is copied twice. The last chunk also carries the source's Kafka positions, so
//! ingest pointed at the Iceberg tables resumes where the V1 store stopped. At the end every
//! series is checked: row count and an order-independent checksum of its rows, source vs target.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::row::{RowConverter, SortField};
use sha2::{Digest, Sha256};
use vintagelake_schemas::arrow::col;
use vintagelake_schemas::table::{data_points_table_schema, series_table_schema};

use crate::{FileEntry, ParquetStore};
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::OffsetUpdate;
use vintagelake_storage::error::{Result, StorageError};
use vintagelake_storage::scan::{View, VintageQuery, scan_rows};
use vintagelake_storage::store::IcebergStore;

/// Pseudo-topic under which the target records the migration's position.
pub const MIGRATION_TOPIC: &str = "_vintagelake.migration.v1";
/// Default rows per Iceberg commit (bounds memory: one chunk is held at a time).
pub const DEFAULT_CHUNK_ROWS: u64 = 250_000;

/// Where a migration stands, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub table: TableKind,
    pub files_done: usize,
    pub files_total: usize,
    pub rows_done: u64,
    pub rows_total: u64,
}

/// What one table's migration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: TableKind,
    /// The source log version copied.
    pub source_version: u64,
    pub files: usize,
    pub rows: u64,
    /// Files already copied by an earlier (interrupted) run.
    pub resumed_at_file: usize,
    pub commits: usize,
    /// Keys (series ids) whose row count and checksum were compared.
    pub keys_checked: usize,
}

/// Per key (series id): (rows, sum of row hashes).
pub type Checksums = BTreeMap<String, (u64, u64)>;

/// Copies both tables of `source` into `target`, then validates every series.
pub async fn migrate_v1_to_iceberg(
    source: &ParquetStore,
    target: &IcebergStore,
    chunk_rows: u64,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Vec<TableReport>> {
    let mut reports = Vec::new();
    for kind in [TableKind::Series, TableKind::DataPoints] {
        reports.push(migrate_table(source, target, kind, chunk_rows.max(1), progress).await?);
    }
    Ok(reports)
}

async fn migrate_table(
    source: &ParquetStore,
    target: &IcebergStore,
    kind: TableKind,
    chunk_rows: u64,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<TableReport> {
    let recorded = target.recorded_offsets(kind).await?;
    let done = recorded.get(&(MIGRATION_TOPIC.to_owned(), 0)).copied();
    let pinned = recorded.get(&(MIGRATION_TOPIC.to_owned(), 1)).copied();
    let version = match pinned {
        Some(v) => v as u64,
        None => {
            let table = target.warehouse().load(kind).await?;
            if !vintagelake_storage::files::live_files(target.warehouse(), &table, None).await?.is_empty() {
                return Err(StorageError::InvalidData(format!(
                    "the Iceberg table {} already holds rows that did not come from a V1 migration; \
                     migrate into an empty warehouse",
                    kind.name()
                )));
            }
            source.version().await?
        }
    };
    let files = source.live_files(kind, Some(version)).await?;
    let start = done.unwrap_or(0) as usize;
    if start > files.len() {
        return Err(StorageError::InvalidData(format!(
            "the target recorded {start} migrated files of {} but the source has {} at version {version}",
            kind.name(),
            files.len()
        )));
    }
    let rows_total: u64 = files.iter().map(|f| f.rows).sum();
    let mut rows_done: u64 = files[..start].iter().map(|f| f.rows).sum();
    let mut report = TableReport {
        table: kind,
        source_version: version,
        files: files.len(),
        rows: rows_total,
        resumed_at_file: start,
        commits: 0,
        keys_checked: 0,
    };
    progress(Progress { table: kind, files_done: start, files_total: files.len(), rows_done, rows_total });
    let kafka = source.recorded_offsets_at(kind, version).await?;
    let mut at = start;
    let mut expected_done = done;
    let mut expected_version = pinned;
    // An empty source still records its pin and Kafka positions (one commit, no rows).
    let mut first = true;
    while at < files.len() || (first && done.is_none()) {
        first = false;
        let mut end = at;
        let mut rows = 0;
        while end < files.len() && (end == at || rows + files[end].rows <= chunk_rows) {
            rows += files[end].rows;
            end += 1;
        }
        let batches = source.read_files(&files[at..end]).await?;
        let mut offsets = vec![
            OffsetUpdate { topic: MIGRATION_TOPIC.into(), partition: 0, expected: expected_done, next: end as i64 },
            OffsetUpdate {
                topic: MIGRATION_TOPIC.into(),
                partition: 1,
                expected: expected_version,
                next: version as i64,
            },
        ];
        if end == files.len() {
            for ((topic, partition), next) in &kafka {
                let expected = recorded.get(&(topic.clone(), *partition)).copied();
                if expected != Some(*next) {
                    offsets.push(OffsetUpdate { topic: topic.clone(), partition: *partition, expected, next: *next });
                }
            }
        }
        vintagelake_runtime::failpoint::hit("migrate-before-commit");
        target.append_copied(kind, &batches, offsets, "migration").await?;
        vintagelake_runtime::failpoint::hit("migrate-after-chunk");
        report.commits += 1;
        rows_done += rows;
        at = end;
        expected_done = Some(end as i64);
        expected_version = Some(version as i64);
        progress(Progress { table: kind, files_done: at, files_total: files.len(), rows_done, rows_total });
    }
    let expected = source_checksums(source, kind, &files).await?;
    let found = iceberg_checksums(target, kind).await?;
    if let Some(problem) = compare(&expected, &found) {
        return Err(StorageError::InvalidData(format!("validating {} after the migration: {problem}", kind.name())));
    }
    report.keys_checked = expected.len();
    Ok(report)
}

/// Row counts and checksums per key of the source's files.
pub async fn source_checksums(source: &ParquetStore, kind: TableKind, files: &[FileEntry]) -> Result<Checksums> {
    let mut sums = Checksums::new();
    for f in files {
        for b in source.read_file(f).await? {
            add_checksums(kind, &b, &mut sums)?;
        }
    }
    Ok(sums)
}

/// Row counts and checksums per key of an Iceberg table's current snapshot.
pub async fn iceberg_checksums(target: &IcebergStore, kind: TableKind) -> Result<Checksums> {
    let table = target.warehouse().load(kind).await?;
    let mut sums = Checksums::new();
    if table.metadata().current_snapshot().is_none() {
        return Ok(sums);
    }
    let batches = match kind {
        TableKind::DataPoints => scan_rows(&table, &VintageQuery::new(View::AllRevisions), 8, None).await?,
        TableKind::Series => {
            use futures::TryStreamExt;
            table.scan().build()?.to_arrow().await?.try_collect().await?
        }
    };
    for b in &batches {
        add_checksums(kind, b, &mut sums)?;
    }
    Ok(sums)
}

/// Adds each row's hash (SHA-256 of its row-format encoding, first 8 bytes) to its key's sum.
/// The sum is order-independent and counts duplicates, so it detects lost, extra and changed rows.
fn add_checksums(kind: TableKind, batch: &RecordBatch, sums: &mut Checksums) -> Result<()> {
    let (schema, key) = match kind {
        TableKind::DataPoints => (data_points_table_schema(), col::SERIES_ID),
        TableKind::Series => (series_table_schema(), col::ID),
    };
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let c = batch
                .column_by_name(f.name())
                .ok_or_else(|| StorageError::InvalidData(format!("rows lack {}", f.name())))?;
            Ok(arrow::compute::cast(c, f.data_type())?)
        })
        .collect::<Result<Vec<_>>>()?;
    let converter = RowConverter::new(schema.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect())?;
    let rows = converter.convert_columns(&columns)?;
    let keys = arrow::compute::cast(
        batch.column_by_name(key).ok_or_else(|| StorageError::InvalidData(format!("rows lack {key}")))?,
        &arrow::datatypes::DataType::Utf8,
    )?;
    let keys = keys.as_string::<i32>();
    for i in 0..batch.num_rows() {
        let digest = Sha256::digest(rows.row(i).as_ref());
        let h = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        let entry = sums.entry(if keys.is_valid(i) { keys.value(i).to_owned() } else { String::new() }).or_default();
        entry.0 += 1;
        entry.1 = entry.1.wrapping_add(h);
    }
    Ok(())
}

/// The first difference between two checksum maps, described.
pub fn compare(expected: &Checksums, found: &Checksums) -> Option<String> {
    for (key, (rows, sum)) in expected {
        match found.get(key) {
            None => return Some(format!("series {key}: {rows} rows in the source, none in the target")),
            Some((r, _)) if r != rows => {
                return Some(format!("series {key}: {rows} rows in the source, {r} in the target"));
            }
            Some((_, s)) if s != sum => return Some(format!("series {key}: same row count ({rows}), different rows")),
            _ => {}
        }
    }
    found
        .keys()
        .find(|k| !expected.contains_key(*k))
        .map(|k| format!("series {k} is in the target but not in the source"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_names_the_first_difference() {
        let mut a = Checksums::new();
        a.insert("A".into(), (2, 10));
        a.insert("B".into(), (1, 5));
        assert_eq!(compare(&a, &a), None);
        let mut b = a.clone();
        b.insert("B".into(), (1, 6));
        assert_eq!(compare(&a, &b).unwrap(), "series B: same row count (1), different rows");
        b.insert("B".into(), (2, 5));
        assert!(compare(&a, &b).unwrap().contains("1 rows in the source, 2 in the target"));
        b.remove("B");
        assert!(compare(&a, &b).unwrap().contains("none in the target"));
        b.insert("B".into(), (1, 5));
        b.insert("C".into(), (1, 5));
        assert!(compare(&a, &b).unwrap().contains("series C is in the target"));
    }
}
