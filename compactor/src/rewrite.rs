//! The data rewrite of a compaction run, incremental and in bounded memory.
//!
//! Planned from manifests: the rows appended since the last run (arrivals) are read, and of the
//! current files compaction wrote (each key's open revision) only those whose `series_id`/`date`
//! bounds admit an arrived key are read and rewritten — with the small ones, merged. Those files
//! are read a few row groups at a time, in the order of their series ranges, into chunks of at
//! most the run's row budget: a chunk's open rows and the arrivals of the keys they hold are
//! folded ([`close_periods`]) and handed to one [`FileSink`] per tier, which writes target-sized
//! files as rows come, and dropped before the next chunk is read; arrivals of keys no open file
//! holds join the last chunk or are folded after it, in runs of whole series. Small closed files
//! are merged the same way, a row-group slice at a time. Nothing is visible until the one replace
//! commit at the end; a failure or cancellation before it leaves the written files to the caller
//! to remove.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use arrow::array::{AsArray, RecordBatch};
use iceberg::spec::DataFile;
use tokio_util::sync::CancellationToken;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::config::TierName;
use vintagelake_storage::error::StorageError;
use vintagelake_storage::files::{FileRowReader, LiveFile, read_data_files};
use vintagelake_storage::scan::{CloseStats, SeriesDate, backfilled_keys, close_periods, split_keys};
use vintagelake_storage::store::IcebergStore;
use vintagelake_storage::write::{Encoding, FileSink};

use crate::compact::CompactError;

/// Decoded bytes a row costs while a chunk is folded and written: the row as read (~100 bytes:
/// two strings, dates, a double), the copies the fold and the writer's sort make, and the
/// encoder's buffers — an estimate, set so that the `compaction_scale` bench's runs stay within
/// their limit (393 MiB peak at 512 MiB on a 10⁸-row table, docs/BENCHMARKS.md).
pub const ROW_BYTES_IN_FLIGHT: u64 = 640;

/// Rows one chunk may hold for the memory left: a third of it, as two chunks are in flight (one
/// being folded, one being encoded) and the allocator keeps some.
pub fn rows_per_chunk(memory_bytes: u64) -> u64 {
    (memory_bytes / 3 / ROW_BYTES_IN_FLIGHT).max(1)
}

/// Rows grouped by `series_id` into runs of whole series of at most `max_rows` rows (a series
/// with more is a group of its own); each group's row numbers.
fn by_series(rows: &Arrivals, of: &[u32], max_rows: u64) -> Result<Vec<Vec<u32>>, StorageError> {
    let mut per_series: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for &i in of {
        per_series.entry(rows.series(i)?).or_default().push(i);
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
    /// Rows a chunk may hold: what the memory limit leaves once the arrivals are held.
    pub chunk_budget_rows: u64,
    /// Memory the rows appended since the last run (and their key index) took.
    pub arrivals_bytes: u64,
    /// One sink per tier (`None`: the hot tier) the run writes to.
    sinks: BTreeMap<Option<TierName>, SinkTask>,
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
        table: &iceberg::table::Table,
        tier: Option<TierName>,
        rows: &[RecordBatch],
    ) -> Result<(), StorageError> {
        for b in rows.iter().filter(|b| b.num_rows() > 0) {
            let sink = match self.sinks.entry(tier.clone()) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                // Closed rows spread over many months wait in the sink (up to a chunk's worth)
                // so each month gets one file, not one per chunk.
                std::collections::btree_map::Entry::Vacant(e) => e.insert(SinkTask::spawn(
                    FileSink::new(store.warehouse(), table, TableKind::DataPoints, tier.as_ref(), Encoding::Settled)?
                        .with_waiting_limit(self.chunk_budget_rows as usize),
                )),
            };
            self.rows_written += b.num_rows() as u64;
            if sink.rows.send(b.clone()).await.is_err() {
                // The writer stopped: its error says why.
                let failed = self.sinks.remove(&tier).expect("the sink written to");
                return Err(failed
                    .finish()
                    .await
                    .err()
                    .unwrap_or_else(|| StorageError::InvalidData("a compaction file writer stopped early".into())));
            }
        }
        Ok(())
    }

    /// Closes the files being written; after this `files` holds every file the run wrote.
    pub async fn finish(&mut self) -> Result<(), StorageError> {
        let mut failed = None;
        for (_, sink) in std::mem::take(&mut self.sinks) {
            match sink.finish().await {
                Ok(files) => self.files.extend(files),
                Err(e) => failed = Some(e),
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// A [`FileSink`] fed from a task of its own: encoding and compressing the rows of one chunk
/// runs beside the fold of the next. One chunk waits in the channel at most.
#[derive(Debug)]
struct SinkTask {
    rows: tokio::sync::mpsc::Sender<RecordBatch>,
    task: tokio::task::JoinHandle<Result<Vec<DataFile>, StorageError>>,
}

impl SinkTask {
    fn spawn(mut sink: FileSink) -> Self {
        let (rows, mut incoming) = tokio::sync::mpsc::channel::<RecordBatch>(1);
        let task = tokio::spawn(async move {
            while let Some(batch) = incoming.recv().await {
                sink.write(&batch).await?;
            }
            sink.finish().await
        });
        Self { rows, task }
    }

    async fn finish(self) -> Result<Vec<DataFile>, StorageError> {
        drop(self.rows);
        self.task.await.map_err(|e| StorageError::InvalidData(format!("a compaction file writer failed: {e}")))?
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
    pub memory_limit_bytes: u64,
    pub concurrency: usize,
}

/// Reads, folds and writes what `plan` says, chunk by chunk; then [`Staged::finish`] closes the
/// files. On error or cancellation the caller finishes and removes what was written.
pub async fn stage(
    store: &IcebergStore,
    plan: &Plan<'_>,
    cancel: &CancellationToken,
    staged: &mut Staged,
) -> Result<(), CompactError> {
    let wh = store.warehouse();
    let table = wh.load(TableKind::DataPoints).await?;
    let cancelled = || if cancel.is_cancelled() { Err(CompactError::Cancelled) } else { Ok(()) };
    let mut run = Run { store, table: &table, staged, aside: Vec::new(), backfilled: HashSet::new() };

    if !plan.arrived.is_empty() {
        let arrived = Arrivals::new(read_files(store, &plan.arrived, plan.concurrency, cancel).await?)?;
        plan.arrived.iter().for_each(|f| run.staged.read(f));
        run.staged.rows_read += arrived.len() as u64;
        let index = KeyIndex::of(&arrived)?;
        // What the memory limit leaves for a chunk once the arrivals and their index are held.
        let held = arrived.memory_bytes() + index.memory_bytes();
        let budget = rows_per_chunk(plan.memory_limit_bytes.saturating_sub(held));
        if held > plan.memory_limit_bytes / 2 {
            tracing::warn!(
                arrived_rows = arrived.len(),
                arrived_bytes = held,
                memory_limit_bytes = plan.memory_limit_bytes,
                "the rows appended since the last run take more than half the compaction memory limit: \
                 compact more often (COMPACTION_SCHEDULE) or raise COMPACTION_MEMORY_MB"
            );
        }
        run.staged.chunk_budget_rows = budget;
        run.staged.arrivals_bytes = held;
        // The open files an arrival may touch, and the small ones: merged while at it (the run
        // writes a file of its own anyway), so small current files do not pile up.
        let (mut touched, kept): (Vec<&LiveFile>, Vec<&LiveFile>) =
            plan.open.iter().copied().partition(|f| f.may_hold_any(&index.sorted) || f.size_bytes < plan.small_bytes);
        run.staged.open_files_kept = kept.len();
        touched.sort_by_cached_key(|f| f.bounds().series.0.map(str::to_owned));
        // Each key's open revision is in one open file: the arrivals of a key join the chunk
        // whose open rows hold it; arrivals of keys no open file holds join the last chunk when
        // they fit its budget, or are folded after it in runs of whole series.
        let mut matched = vec![false; arrived.len()];
        let mut pending: Vec<RecordBatch> = Vec::new();
        let mut chunks = 0;
        // Slices of a quarter of the budget, folded once a quarter is pending: a chunk's open rows
        // stay under half of it, the arrivals of their keys in the rest.
        let mut slices = FileSlices::new(&touched, budget / 4);
        loop {
            let slice = slices.next(store, run.staged, cancel).await?;
            let last = slice.is_none();
            pending.extend(slice.into_iter().flatten());
            let held: u64 = pending.iter().map(|b| b.num_rows() as u64).sum();
            if held == 0 && last {
                break;
            }
            if held < budget / 4 && !last {
                continue;
            }
            let open = std::mem::take(&mut pending);
            let mut mine = index.rows_of_keys_in(&open, &mut matched)?;
            if last {
                let rest: Vec<u32> = (0..arrived.len() as u32).filter(|&r| !matched[r as usize]).collect();
                if held + (mine.len() + rest.len()) as u64 <= budget {
                    rest.iter().for_each(|&r| matched[r as usize] = true);
                    mine.extend(rest);
                }
            }
            mine.sort_unstable();
            chunks += 1;
            run.fold(open, arrived.take(&mine)?).await?;
            if last {
                break;
            }
        }
        let rest: Vec<u32> = (0..arrived.len() as u32).filter(|&r| !matched[r as usize]).collect();
        for mut group in by_series(&arrived, &rest, budget)? {
            cancelled()?;
            chunks += 1;
            group.sort_unstable();
            run.fold(Vec::new(), arrived.take(&group)?).await?;
        }
        run.staged.chunks = chunks;
    }

    // Closed rows of backfilled keys: the month files whose bounds admit one are read one at a
    // time, a slice of rows at a time; those holding some are rewritten without them (back into
    // their tier) and the rows join the keys' current rows in one last fold.
    let mut reread: BTreeSet<&str> = BTreeSet::new();
    if !run.backfilled.is_empty() {
        let mut sorted: Vec<(&str, i32)> = run.backfilled.iter().map(|(s, d)| (s.as_str(), *d)).collect();
        sorted.sort_unstable();
        let slice_rows = (rows_per_chunk(plan.memory_limit_bytes) / 4).max(1) as usize;
        for f in plan.all.iter().filter(|f| f.realtime_end_month.is_some() && f.may_hold_any(&sorted)) {
            cancelled()?;
            // Whether the file holds a row of one (bounds only say it may), a slice at a time.
            let mut reader = FileRowReader::open(wh, &f.path).await?;
            let mut holds = false;
            while !holds && let Some(batches) = reader.next(slice_rows).await? {
                for b in &batches {
                    holds |= split_keys(b, &run.backfilled)?.0.num_rows() > 0;
                }
            }
            if !holds {
                continue;
            }
            // Read again, a slice at a time: the keys' rows set aside, the rest written back.
            run.staged.read(f);
            reread.insert(f.path.as_str());
            let mut reader = FileRowReader::open(wh, &f.path).await?;
            while let Some(batches) = reader.next(slice_rows).await? {
                cancelled()?;
                for b in &batches {
                    run.staged.rows_read += b.num_rows() as u64;
                    let (of_keys, rest) = split_keys(b, &run.backfilled)?;
                    run.staged.closed_rows += rest.num_rows() as u64;
                    run.staged.write(store, &table, f.tier.clone(), &[rest]).await?;
                    run.aside.push(of_keys);
                }
            }
        }
        tracing::info!(keys = run.backfilled.len(), files = reread.len(), "backfilled keys: closed rows re-read");
        let (folded, stats) = close_periods(&run.aside)?;
        run.aside.clear();
        run.staged.absorb(stats);
        run.staged.write(store, &table, None, &[folded]).await?;
    }

    // Small closed files merged per tier (rows unchanged), a slice of row groups at a time; the
    // merged files go back to the tier their inputs were in, so compaction never undoes tiering.
    for (tier, files) in &plan.closed_small {
        let mut files: Vec<&LiveFile> = files.iter().copied().filter(|f| !reread.contains(f.path.as_str())).collect();
        if files.len() < 2 {
            continue;
        }
        files.sort_by_cached_key(|f| (f.realtime_end_month, f.bounds().series.0.map(str::to_owned)));
        let mut slices = FileSlices::new(&files, rows_per_chunk(plan.memory_limit_bytes));
        while let Some(rows) = slices.next(store, run.staged, cancel).await? {
            let n: u64 = rows.iter().map(|b| b.num_rows() as u64).sum();
            run.staged.closed_rows += n;
            run.staged.write(store, &table, tier.clone(), &rows).await?;
        }
    }
    Ok(())
}

/// What one run's folds share: where rows go, and the rows of backfilled keys set aside.
struct Run<'a> {
    store: &'a IcebergStore,
    table: &'a iceberg::table::Table,
    staged: &'a mut Staged,
    aside: Vec<RecordBatch>,
    backfilled: HashSet<SeriesDate>,
}

impl Run<'_> {
    /// Folds one chunk — open rows and the arrivals of their keys (or arrivals of new keys) —
    /// and writes it; rows of keys an arrival backfilled below their open revision are set
    /// aside, to be folded at the end with their closed rows, so stored periods stay exact.
    async fn fold(&mut self, open: Vec<RecordBatch>, arrivals: Vec<RecordBatch>) -> Result<(), CompactError> {
        let of_chunk = backfilled_keys(&open, &arrivals)?;
        let mut fold = Vec::with_capacity(open.len() + 1);
        for b in open.into_iter().chain(arrivals) {
            if of_chunk.is_empty() {
                fold.push(b);
            } else {
                let (keys, rest) = split_keys(&b, &of_chunk)?;
                self.aside.push(keys);
                fold.push(rest);
            }
        }
        self.backfilled.extend(of_chunk);
        let chunk_rows: u64 = fold.iter().map(|b| b.num_rows() as u64).sum();
        self.staged.largest_chunk_rows = self.staged.largest_chunk_rows.max(chunk_rows);
        let (rewritten, stats) = close_periods(&fold)?;
        drop(fold);
        self.staged.absorb(stats);
        self.staged.write(self.store, self.table, None, &[rewritten]).await?;
        vintagelake_runtime::failpoint::hit("compact-after-chunk");
        Ok(())
    }
}

/// Files read in order, a slice of rows at a time (at most `max_rows`, whole decoded batches of
/// 8 Ki rows); only one file's compressed bytes are held at once.
struct FileSlices<'a> {
    files: &'a [&'a LiveFile],
    max_rows: u64,
    next_file: usize,
    current: Option<FileRowReader>,
}

impl<'a> FileSlices<'a> {
    fn new(files: &'a [&'a LiveFile], max_rows: u64) -> Self {
        Self { files, max_rows, next_file: 0, current: None }
    }

    /// The next slice; each file is counted as read (`staged`) when opened.
    async fn next(
        &mut self,
        store: &IcebergStore,
        staged: &mut Staged,
        cancel: &CancellationToken,
    ) -> Result<Option<Vec<RecordBatch>>, CompactError> {
        loop {
            if cancel.is_cancelled() {
                return Err(CompactError::Cancelled);
            }
            if self.current.is_none() {
                let Some(f) = self.files.get(self.next_file) else { return Ok(None) };
                self.next_file += 1;
                let reader = tokio::select! {
                    _ = cancel.cancelled() => return Err(CompactError::Cancelled),
                    r = FileRowReader::open(store.warehouse(), &f.path) => r?,
                };
                staged.read(f);
                self.current = Some(reader);
            }
            let reader = self.current.as_mut().expect("a file is open");
            match reader.next(self.max_rows as usize).await? {
                Some(batches) => {
                    staged.rows_read += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                    // A reader that has handed out its last rows is done with.
                    if batches.is_empty() {
                        self.current = None;
                        continue;
                    }
                    return Ok(Some(batches));
                }
                None => self.current = None,
            }
        }
    }
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

/// The rows appended since the last run, as read (no concatenated copy); a row is numbered by
/// its position across the batches.
struct Arrivals {
    batches: Vec<RecordBatch>,
    /// Where each batch starts.
    starts: Vec<u32>,
    len: usize,
}

impl Arrivals {
    fn new(batches: Vec<RecordBatch>) -> Result<Self, StorageError> {
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let mut starts = Vec::with_capacity(batches.len());
        let mut len = 0usize;
        for b in &batches {
            starts.push(u32::try_from(len).map_err(|_| StorageError::InvalidData("over 4 Gi rows arrived".into()))?);
            len += b.num_rows();
        }
        u32::try_from(len).map_err(|_| StorageError::InvalidData("over 4 Gi rows arrived".into()))?;
        Ok(Self { batches, starts, len })
    }

    fn len(&self) -> usize {
        self.len
    }

    fn memory_bytes(&self) -> u64 {
        self.batches.iter().map(|b| b.get_array_memory_size() as u64).sum()
    }

    fn locate(&self, row: u32) -> (usize, usize) {
        let b = self.starts.partition_point(|&s| s <= row) - 1;
        (b, (row - self.starts[b]) as usize)
    }

    fn series(&self, row: u32) -> Result<&str, StorageError> {
        use vintagelake_schemas::arrow::col;
        let (b, r) = self.locate(row);
        let series = self.batches[b]
            .column_by_name(col::SERIES_ID)
            .ok_or_else(|| StorageError::InvalidData("rows lack series_id".into()))?
            .as_string::<i32>();
        Ok(series.value(r))
    }

    /// The rows numbered `rows` (ascending), one batch per batch they come from: each keeps its
    /// file's sort order, so the fold merges sorted runs instead of sorting the rows again.
    fn take(&self, rows: &[u32]) -> Result<Vec<RecordBatch>, StorageError> {
        debug_assert!(rows.is_sorted(), "row numbers ascending");
        let mut out = Vec::new();
        let mut at = 0;
        while at < rows.len() {
            let (b, _) = self.locate(rows[at]);
            let end = self.starts.get(b + 1).copied().unwrap_or(u32::MAX);
            let n = rows[at..].partition_point(|&r| r < end);
            let batch = &self.batches[b];
            let start = self.starts[b];
            let indices = arrow::array::UInt32Array::from_iter_values(rows[at..at + n].iter().map(|&r| r - start));
            out.push(if n == batch.num_rows() {
                batch.clone()
            } else {
                arrow::compute::take_record_batch(batch, &indices)?
            });
            at += n;
        }
        Ok(out)
    }
}

/// The arrivals' `(series_id, date)` keys: the rows of each, and the keys in order.
struct KeyIndex<'b> {
    /// Per key its first and last row; the rows of a key are chained through `next`.
    ends: foldhash::HashMap<(&'b str, i32), (u32, u32)>,
    /// The next row of the same key (`u32::MAX`: none).
    next: Vec<u32>,
    sorted: Vec<(&'b str, i32)>,
}

impl<'b> KeyIndex<'b> {
    fn of(rows: &'b Arrivals) -> Result<Self, StorageError> {
        let mut ends: foldhash::HashMap<(&str, i32), (u32, u32)> =
            foldhash::HashMap::with_capacity_and_hasher(rows.len(), Default::default());
        let mut next = vec![u32::MAX; rows.len()];
        let mut i = 0u32;
        for b in &rows.batches {
            for_each_key(b, |key| {
                match ends.entry(key) {
                    std::collections::hash_map::Entry::Occupied(mut e) => {
                        next[e.get().1 as usize] = i;
                        e.get_mut().1 = i;
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert((i, i));
                    }
                }
                i += 1;
            })?;
        }
        let mut sorted: Vec<(&str, i32)> = ends.keys().copied().collect();
        sorted.sort_unstable();
        Ok(Self { ends, next, sorted })
    }

    /// Bytes the index takes (keys borrow the arrivals' strings).
    fn memory_bytes(&self) -> u64 {
        let key = size_of::<(&str, i32)>() as u64;
        self.ends.capacity() as u64 * (key + 8) + self.next.len() as u64 * 4 + self.sorted.len() as u64 * key
    }

    /// The rows (not yet `matched`) of the keys `open` holds; marks them matched.
    fn rows_of_keys_in(&self, open: &[RecordBatch], matched: &mut [bool]) -> Result<Vec<u32>, StorageError> {
        let mut mine = Vec::new();
        for b in open {
            for_each_key(b, |key| {
                let mut r = self.ends.get(&key).map_or(u32::MAX, |e| e.0);
                while r != u32::MAX {
                    if !std::mem::replace(&mut matched[r as usize], true) {
                        mine.push(r);
                    }
                    r = self.next[r as usize];
                }
            })?;
        }
        Ok(mine)
    }
}
