//! The data rewrite of a compaction run, incremental and in bounded memory.
//!
//! Planned from manifests: the rows appended since the last run (arrivals) are read, and of the
//! current files compaction wrote (each key's open revision) only those whose `series_id`/`date`
//! bounds admit an arrived key are read and rewritten — with the small ones, merged. Those files
//! are read in chunks of at most the run's row budget (neighbouring series ranges together): a
//! chunk's open rows and the arrivals of the keys they hold are folded ([`close_periods`]),
//! written to new files and dropped before the next chunk is read; arrivals of keys no open file
//! holds are folded after, in runs of whole series. Nothing is visible until the one replace
//! commit at the end; a failure or cancellation before it leaves the written files to the caller
//! to remove.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use arrow::array::{AsArray, RecordBatch, UInt32Array};
use iceberg::spec::DataFile;
use tokio_util::sync::CancellationToken;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::config::TierName;
use vintagelake_storage::error::StorageError;
use vintagelake_storage::files::{LiveFile, read_data_file, read_data_files};
use vintagelake_storage::scan::{CloseStats, SeriesDate, backfilled_keys, close_periods, split_keys};
use vintagelake_storage::store::IcebergStore;
use vintagelake_storage::write::Encoding;

use crate::compact::CompactError;

/// Decoded bytes a row costs while a chunk is folded and written: the row as read (~100 bytes:
/// two strings, dates, a double), the concatenated copy, the sorted copy the fold takes and the
/// one the writer sorts, and the encoder's buffers. Measured with the `compaction_scale` bench
/// (peak RSS of a run over chunks of known size), rounded up.
pub const ROW_BYTES_IN_FLIGHT: u64 = 640;

/// Rows one chunk may hold for a memory limit: half of it, the other half left to the arrivals,
/// the planning state and the allocator.
pub fn rows_per_chunk(memory_limit_bytes: u64) -> u64 {
    (memory_limit_bytes / 2 / ROW_BYTES_IN_FLIGHT).max(1)
}

/// Groups files into chunks of at most `max_rows` rows (by their manifests' record counts), in
/// the order of their partition and their `series_id` lower bound, so that files of neighbouring
/// series ranges share a chunk; a file bigger than `max_rows` is a chunk of its own.
pub fn pack(mut files: Vec<&LiveFile>, max_rows: u64) -> Vec<Vec<&LiveFile>> {
    files.sort_by_cached_key(|f| (f.realtime_end_month, f.bounds().series.0.map(str::to_owned)));
    let mut chunks: Vec<(Vec<&LiveFile>, u64)> = Vec::new();
    for f in files {
        match chunks.last_mut() {
            Some((members, held)) if *held + f.records <= max_rows => {
                members.push(f);
                *held += f.records;
            }
            _ => chunks.push((vec![f], f.records)),
        }
    }
    chunks.into_iter().map(|(c, _)| c).collect()
}

/// Rows grouped by `series_id` into runs of whole series of at most `max_rows` rows (a series
/// with more is a group of its own); each group's row numbers.
fn by_series(rows: &RecordBatch, of: &[u32], max_rows: u64) -> Result<Vec<Vec<u32>>, StorageError> {
    use vintagelake_schemas::arrow::col;
    let series = rows
        .column_by_name(col::SERIES_ID)
        .ok_or_else(|| StorageError::InvalidData("rows lack series_id".into()))?
        .as_string::<i32>();
    let mut per_series: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for &i in of {
        per_series.entry(series.value(i as usize)).or_default().push(i);
    }
    let mut groups: Vec<Vec<u32>> = Vec::new();
    for (_, rows) in per_series {
        match groups.last_mut() {
            Some(g) if (g.len() + rows.len()) as u64 <= max_rows => g.extend(rows),
            _ => groups.push(rows),
        }
    }
    Ok(groups)
}

/// What the rewrite read, wrote and folded; the commit and the row accounting use it.
#[derive(Debug, Default)]
pub struct Staged {
    /// Files written, not yet committed.
    pub files: Vec<DataFile>,
    /// Live files read; the commit removes exactly these.
    pub removed: Vec<String>,
    pub bytes_in: u64,
    /// Rows the manifests say the files read hold, and the rows decoded from them.
    pub records_in: u64,
    pub rows_read: u64,
    /// Rows written.
    pub rows_written: u64,
    /// The fold of current rows (and of the closed rows of backfilled keys).
    pub stats: CloseStats,
    /// Closed rows rewritten as they were (merged small files, the other keys of a re-read file).
    pub closed_rows: u64,
    /// Chunks the current rows were folded in, and current files left as they were.
    pub chunks: usize,
    pub open_files_kept: usize,
    pub largest_chunk_rows: u64,
}

impl Staged {
    fn read(&mut self, f: &LiveFile) {
        self.removed.push(f.path.clone());
        self.bytes_in += f.size_bytes;
        self.records_in += f.records;
    }

    fn absorb(&mut self, s: CloseStats) {
        let t = &mut self.stats;
        t.rows_in += s.rows_in;
        t.rows_out += s.rows_out;
        t.duplicates_dropped += s.duplicates_dropped;
        t.corrections_applied += s.corrections_applied;
        t.periods_closed += s.periods_closed;
        t.periods_corrected += s.periods_corrected;
    }

    async fn write(
        &mut self,
        store: &IcebergStore,
        tier: Option<TierName>,
        rows: Vec<RecordBatch>,
    ) -> Result<(), StorageError> {
        let n: usize = rows.iter().map(RecordBatch::num_rows).sum();
        if n == 0 {
            return Ok(());
        }
        self.rows_written += n as u64;
        let files = store.write_files(TableKind::DataPoints, &[(tier, rows)], Encoding::Settled).await?;
        self.files.extend(files);
        Ok(())
    }
}

/// What to rewrite: the current partition's files (`arrived`: appended since the last run;
/// `open`: written by compaction) and the small closed files to merge, per tier.
#[derive(Debug)]
pub struct Plan<'a> {
    pub arrived: Vec<&'a LiveFile>,
    pub open: Vec<&'a LiveFile>,
    pub closed_small: BTreeMap<Option<TierName>, Vec<&'a LiveFile>>,
    /// Every live file (closed files of backfilled keys are found among them).
    pub all: &'a [LiveFile],
    pub small_bytes: u64,
    pub rows_per_chunk: u64,
    pub concurrency: usize,
}

/// Reads, folds and writes what `plan` says, chunk by chunk; on error or cancellation the files
/// written so far are in `staged.files` (uncommitted) for the caller to remove.
pub async fn stage(
    store: &IcebergStore,
    plan: &Plan<'_>,
    cancel: &CancellationToken,
    staged: &mut Staged,
) -> Result<(), CompactError> {
    let wh = store.warehouse();
    let cancelled = || if cancel.is_cancelled() { Err(CompactError::Cancelled) } else { Ok(()) };
    let mut aside: Vec<RecordBatch> = Vec::new();
    let mut backfilled: HashSet<SeriesDate> = HashSet::new();

    if !plan.arrived.is_empty() {
        let arrived = read_files(store, &plan.arrived, plan.concurrency, cancel).await?;
        plan.arrived.iter().for_each(|f| staged.read(f));
        let arrived = match arrived.first() {
            Some(first) => arrow::compute::concat_batches(&first.schema(), &arrived).map_err(StorageError::from)?,
            None => RecordBatch::new_empty(vintagelake_schemas::table::data_points_table_schema()),
        };
        staged.rows_read += arrived.num_rows() as u64;
        let keys = keys_of(&arrived)?;
        // The open files an arrival may touch, and the small ones: merged while at it (the run
        // writes a file of its own anyway), so small current files do not pile up.
        let (touched, kept): (Vec<&LiveFile>, Vec<&LiveFile>) =
            plan.open.iter().copied().partition(|f| f.may_hold_any(&keys) || f.size_bytes < plan.small_bytes);
        staged.open_files_kept = kept.len();
        // Each key's open revision is in one open file: the arrivals of a key join the chunk
        // whose open rows hold it; arrivals of keys no open file holds join the last chunk when
        // they fit its budget, or are folded after it in runs of whole series.
        let index = key_index(&arrived)?;
        let mut matched = vec![false; arrived.num_rows()];
        let chunks = pack(touched, plan.rows_per_chunk);
        let mut rest: Vec<u32> = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            cancelled()?;
            let open = read_files(store, chunk, plan.concurrency, cancel).await?;
            chunk.iter().for_each(|f| staged.read(f));
            staged.rows_read += open.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            let mut mine = Vec::new();
            for b in &open {
                for_each_key(b, |key| {
                    for &r in index.get(&key).into_iter().flatten() {
                        if !std::mem::replace(&mut matched[r as usize], true) {
                            mine.push(r);
                        }
                    }
                })?;
            }
            if i + 1 == chunks.len() {
                rest = (0..arrived.num_rows() as u32).filter(|&r| !matched[r as usize]).collect();
                let held: usize = open.iter().map(RecordBatch::num_rows).sum::<usize>() + mine.len() + rest.len();
                if held as u64 <= plan.rows_per_chunk {
                    mine.append(&mut rest);
                }
            }
            mine.sort_unstable();
            fold_chunk(store, staged, open, take_rows(&arrived, mine)?, &mut aside, &mut backfilled).await?;
        }
        if chunks.is_empty() {
            rest = (0..arrived.num_rows() as u32).collect();
        }
        let groups = by_series(&arrived, &rest, plan.rows_per_chunk)?;
        staged.chunks = chunks.len() + groups.len();
        for group in groups {
            cancelled()?;
            fold_chunk(store, staged, Vec::new(), take_rows(&arrived, group)?, &mut aside, &mut backfilled).await?;
        }
    }

    // Closed rows of backfilled keys: the month files whose bounds admit one are read one at a
    // time; those holding some are rewritten without them (back into their tier) and the rows
    // join the keys' current rows in one last fold.
    let mut reread: BTreeSet<&str> = BTreeSet::new();
    if !backfilled.is_empty() {
        let sorted: BTreeSet<SeriesDate> = backfilled.iter().cloned().collect();
        for f in plan.all.iter().filter(|f| f.realtime_end_month.is_some() && f.may_hold_any(&sorted)) {
            cancelled()?;
            let rows = read_data_file(wh, &f.path).await?;
            let mut of_keys = Vec::new();
            let mut rest = Vec::new();
            for b in &rows {
                let (k, r) = split_keys(b, &backfilled)?;
                of_keys.push(k);
                rest.push(r);
            }
            if of_keys.iter().all(|b| b.num_rows() == 0) {
                continue;
            }
            staged.read(f);
            staged.rows_read += rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            reread.insert(f.path.as_str());
            staged.closed_rows += rest.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            staged.write(store, f.tier.clone(), rest).await?;
            aside.extend(of_keys);
        }
        tracing::info!(keys = backfilled.len(), files = reread.len(), "backfilled keys: closed rows re-read");
        let (folded, stats) = close_periods(&aside)?;
        drop(aside);
        staged.absorb(stats);
        staged.write(store, None, vec![folded]).await?;
    }

    // Small closed files merged per tier (rows unchanged), in chunks of the row budget; a
    // merged file goes back to the tier its inputs were in, so compaction never undoes tiering.
    for (tier, files) in &plan.closed_small {
        let files: Vec<&LiveFile> = files.iter().copied().filter(|f| !reread.contains(f.path.as_str())).collect();
        if files.len() < 2 {
            continue;
        }
        for chunk in pack(files, plan.rows_per_chunk) {
            cancelled()?;
            let rows = read_files(store, &chunk, plan.concurrency, cancel).await?;
            chunk.iter().for_each(|f| staged.read(f));
            let n: u64 = rows.iter().map(|b| b.num_rows() as u64).sum();
            staged.rows_read += n;
            staged.closed_rows += n;
            staged.write(store, tier.clone(), rows).await?;
        }
    }
    Ok(())
}

/// Folds one chunk — open rows and the arrivals of their keys (or arrivals of new keys) — and
/// writes it; rows of keys an arrival backfilled below their open revision are set aside, to be
/// folded at the end with their closed rows, so stored periods stay exact.
async fn fold_chunk(
    store: &IcebergStore,
    staged: &mut Staged,
    open: Vec<RecordBatch>,
    arrivals: RecordBatch,
    aside: &mut Vec<RecordBatch>,
    backfilled: &mut HashSet<SeriesDate>,
) -> Result<(), CompactError> {
    let of_chunk = backfilled_keys(&open, std::slice::from_ref(&arrivals))?;
    let mut fold = Vec::with_capacity(open.len() + 1);
    for b in open.into_iter().chain([arrivals]) {
        if of_chunk.is_empty() {
            fold.push(b);
        } else {
            let (keys, rest) = split_keys(&b, &of_chunk)?;
            aside.push(keys);
            fold.push(rest);
        }
    }
    backfilled.extend(of_chunk);
    let chunk_rows: u64 = fold.iter().map(|b| b.num_rows() as u64).sum();
    staged.largest_chunk_rows = staged.largest_chunk_rows.max(chunk_rows);
    let (rewritten, stats) = close_periods(&fold)?;
    drop(fold);
    staged.absorb(stats);
    staged.write(store, None, vec![rewritten]).await?;
    vintagelake_runtime::failpoint::hit("compact-after-chunk");
    Ok(())
}

/// Calls `f` with the `(series_id, date)` key of every row.
fn for_each_key<'b>(rows: &'b RecordBatch, mut f: impl FnMut((&'b str, i32))) -> Result<(), StorageError> {
    use arrow::datatypes::Date32Type;
    use vintagelake_schemas::arrow::col;
    let column =
        |name: &str| rows.column_by_name(name).ok_or_else(|| StorageError::InvalidData(format!("rows lack {name}")));
    let series = column(col::SERIES_ID)?.as_string::<i32>();
    let dates = column(col::DATE)?.as_primitive::<Date32Type>();
    for i in 0..rows.num_rows() {
        f((series.value(i), dates.value(i)));
    }
    Ok(())
}

/// The rows of each `(series_id, date)` key.
fn key_index(rows: &RecordBatch) -> Result<std::collections::HashMap<(&str, i32), Vec<u32>>, StorageError> {
    let mut index: std::collections::HashMap<(&str, i32), Vec<u32>> = std::collections::HashMap::new();
    let mut i = 0u32;
    for_each_key(rows, |key| {
        index.entry(key).or_default().push(i);
        i += 1;
    })?;
    Ok(index)
}

/// Reads files whole; cancelling stops the reads at once.
async fn read_files(
    store: &IcebergStore,
    files: &[&LiveFile],
    concurrency: usize,
    cancel: &CancellationToken,
) -> Result<Vec<RecordBatch>, CompactError> {
    let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    tokio::select! {
        _ = cancel.cancelled() => Err(CompactError::Cancelled),
        read = read_data_files(store.warehouse(), &paths, concurrency) => Ok(read?),
    }
}

fn take_rows(rows: &RecordBatch, indices: Vec<u32>) -> Result<RecordBatch, StorageError> {
    if indices.len() == rows.num_rows() {
        return Ok(rows.clone());
    }
    Ok(arrow::compute::take_record_batch(rows, &UInt32Array::from(indices))?)
}

/// The `(series_id, date)` keys of rows.
fn keys_of(rows: &RecordBatch) -> Result<BTreeSet<SeriesDate>, StorageError> {
    let mut keys = BTreeSet::new();
    for_each_key(rows, |(s, d)| {
        keys.insert((s.to_owned(), d));
    })?;
    Ok(keys)
}
