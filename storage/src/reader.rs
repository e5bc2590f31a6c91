//! The read path kept warm, for services that answer many queries (the Flight service).
//!
//! What it keeps in memory: the loaded `data_points` table, loaded again only when its catalog
//! row moves (the row is checked at most every `check_every`, or on every read when that is
//! zero); per snapshot read, the index of its live files (path, partition, tier, column bounds),
//! built from its manifest list loading only manifests no earlier index loaded (manifests never
//! change: a new commit adds one or two); per data file, its Parquet footer (files never change). A query
//! is planned from the index without I/O ([`LiveFile::may_match`]) and reads only those files and,
//! within them, the row groups whose statistics admit its series and dates; of those rows it keeps
//! exactly what the pushed-down Iceberg scan would ([`VintageQuery::row_mask`]) and resolves the
//! view ([`resolve`]). Answers are the same as [`crate::IcebergStore::query`]'s, snapshot for
//! snapshot.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use futures::stream::{self, StreamExt, TryStreamExt};
use iceberg::arrow::ArrowFileReader;
use iceberg::io::FileMetadata;
use iceberg::table::Table;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;
use vintagelake_schemas::arrow::col;
use vintagelake_schemas::table::data_points_ids as field;

use crate::catalog::{TableKind, Warehouse};
use crate::error::{Result, StorageError};
use crate::files::{LiveFile, manifest_list, manifest_live_files};
use crate::scan::{Explain, FileBounds, SnapshotSelector, VintageQuery, resolve, resolve_snapshot, view_schema};

/// Snapshots whose file index is kept (readers of the current one and of a few time-travel
/// targets; an older one is rebuilt from its manifests when asked for).
const KEPT_SNAPSHOTS: usize = 8;
/// Parquet footers kept (one per data file read; a compacted table has far fewer files).
const KEPT_FOOTERS: usize = 16_384;
/// Manifests whose live files are kept (a snapshot of an uncompacted table lists one per commit).
const KEPT_MANIFESTS: usize = 65_536;
/// Rows per decoded batch.
const BATCH_ROWS: usize = 8192;
/// Stored rows of a streamed answer's first group (the groups after it double up to the chunk).
const FIRST_GROUP_ROWS: u64 = 8_192;
/// Groups of a streamed answer held at once: the one being sent and the next, being read.
pub const PREFETCH_PARTS: usize = 2;
/// Queries naming at most this many series check each row group's `series_id` bloom filter.
const BLOOM_MAX_SERIES: usize = 64;
/// Row-group bloom filters kept (4 KiB each as we write them).
const KEPT_BLOOMS: usize = 65_536;

/// The table at one snapshot, as a read sees it.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub table: Table,
    /// `None`: the table has no snapshot yet (empty).
    pub snapshot: Option<i64>,
}

#[derive(Debug, Clone)]
struct Loaded {
    table: Table,
    location: String,
    checked: Instant,
}

/// The snapshot's live files, as planning needs them.
#[derive(Debug)]
struct SnapshotFiles {
    snapshot_id: i64,
    files: Vec<LiveFile>,
}

/// The warm read path of one warehouse's `data_points` table.
#[derive(Debug)]
pub struct TableReader {
    wh: Arc<Warehouse>,
    concurrency: usize,
    check_every: Duration,
    loaded: Mutex<Option<Loaded>>,
    indexes: Mutex<VecDeque<Arc<SnapshotFiles>>>,
    footers: Mutex<HashMap<String, ArrowReaderMetadata>>,
    /// Row-group `series_id` bloom filters read, by file and row group (`None`: none written).
    blooms: Mutex<HashMap<RowGroupKey, Option<Arc<Sbbf>>>>,
    /// The live files of each manifest read, by manifest path (manifests never change).
    manifests: Mutex<HashMap<String, Arc<Vec<LiveFile>>>>,
    /// Decoded rows of hot files (the current partition, where every new commit lands, and small
    /// closed files up to half the budget), with where each series' rows lie: a read of them
    /// touches no file.
    hot: Arc<Mutex<HotFiles>>,
}

/// Decoded files, admitted while under a byte budget: current-partition files up to all of it,
/// closed files (immutable, but read only by history queries) up to half, so a closed history
/// never crowds out the files every `latest` read needs.
#[derive(Debug, Default)]
struct HotFiles {
    budget: usize,
    bytes: usize,
    /// Of `bytes`, those of closed files.
    closed_bytes: usize,
    files: HashMap<String, Arc<HotFile>>,
    /// Files being read into memory in the background.
    loading: std::collections::HashSet<String>,
}

/// A row group of a data file: (path, row group index).
type RowGroupKey = (String, usize);

/// Current-partition files read into memory at once, in the background.
const HOT_LOADS: usize = 2;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One decoded file: its rows in the table schema and, when the file is sorted by series (ours
/// are), each series' row range.
#[derive(Debug)]
struct HotFile {
    rows: RecordBatch,
    series: Option<HashMap<String, (usize, usize)>>,
    /// A closed file (its rows have a `realtime_end`): counted in the closed share.
    closed: bool,
}

impl HotFile {
    /// A data file read whole, in the table's schema.
    async fn load(wh: &Warehouse, path: &str) -> Result<Self> {
        let batches = crate::files::read_data_file(wh, path).await?;
        let schema = batches.first().map_or_else(|| wh.rows_schema(TableKind::DataPoints), |b| b.schema());
        Self::new(arrow::compute::concat_batches(&schema, &batches)?)
    }

    fn new(rows: RecordBatch) -> Result<Self> {
        use arrow::array::{Array, AsArray};
        let ids = rows
            .column_by_name(col::SERIES_ID)
            .ok_or_else(|| StorageError::InvalidData("a data file lacks series_id".into()))?
            .as_string::<i32>();
        let mut ranges: HashMap<String, (usize, usize)> = HashMap::new();
        let mut sorted = true;
        let mut i = 0;
        while i < ids.len() {
            if ids.is_null(i) {
                sorted = false;
                break;
            }
            let id = ids.value(i);
            let start = i;
            while i < ids.len() && ids.is_valid(i) && ids.value(i) == id {
                i += 1;
            }
            if ranges.insert(id.to_owned(), (start, i)).is_some() {
                sorted = false; // the series comes back later: not sorted, filter every row
                break;
            }
        }
        Ok(Self { rows, series: sorted.then_some(ranges), closed: false })
    }

    /// Adds this file's rows per series to `counts` (only the `named` series, unless none is).
    fn count_series(&self, named: &std::collections::HashSet<&str>, counts: &mut BTreeMap<String, u64>) {
        use arrow::array::{Array, AsArray};
        let wanted = |id: &str| named.is_empty() || named.contains(id);
        match &self.series {
            Some(ranges) => {
                for (id, &(start, end)) in ranges.iter().filter(|(id, _)| wanted(id)) {
                    *counts.entry(id.clone()).or_insert(0) += (end - start) as u64;
                }
            }
            None => {
                let Some(ids) = self.rows.column_by_name(col::SERIES_ID) else { return };
                let ids = ids.as_string::<i32>();
                for i in (0..ids.len()).filter(|&i| ids.is_valid(i) && wanted(ids.value(i))) {
                    *counts.entry(ids.value(i).to_owned()).or_insert(0) += 1;
                }
            }
        }
    }

    /// The rows of this file the query's predicate admits.
    fn select(&self, query: &VintageQuery) -> Result<Vec<RecordBatch>> {
        let slices: Vec<RecordBatch> = match (&self.series, query.series.is_empty()) {
            (Some(ranges), false) => {
                let mut found: Vec<(usize, usize)> =
                    query.series.iter().filter_map(|s| ranges.get(s.as_str()).copied()).collect();
                found.sort_unstable();
                let (Some(first), Some(last)) = (found.first(), found.last()) else { return Ok(Vec::new()) };
                let rows: usize = found.iter().map(|(start, end)| end - start).sum();
                if last.1 - first.0 <= 2 * rows {
                    // Many series (a streamed group): one slice from the first to the last, in
                    // file order, one sorted run; the mask drops rows of series in between.
                    vec![self.rows.slice(first.0, last.1 - first.0)]
                } else {
                    found.into_iter().map(|(start, end)| self.rows.slice(start, end - start)).collect()
                }
            }
            _ => vec![self.rows.clone()],
        };
        let mut kept = Vec::with_capacity(slices.len());
        for slice in slices {
            let mask = query.row_mask(&slice)?;
            let batch = arrow::compute::filter_record_batch(&slice, &mask)?;
            if batch.num_rows() > 0 {
                kept.push(batch);
            }
        }
        Ok(kept)
    }
}

impl TableReader {
    /// `concurrency` bounds parallel file reads of one query; `check_every` is how stale the
    /// current snapshot may be (zero: every read checks the catalog row, one indexed SQL read).
    pub fn new(wh: Arc<Warehouse>, concurrency: usize, check_every: Duration) -> Self {
        Self {
            wh,
            concurrency: concurrency.max(1),
            check_every,
            loaded: Mutex::new(None),
            indexes: Mutex::new(VecDeque::new()),
            footers: Mutex::new(HashMap::new()),
            blooms: Mutex::new(HashMap::new()),
            manifests: Mutex::new(HashMap::new()),
            hot: Arc::new(Mutex::new(HotFiles::default())),
        }
    }

    /// Keeps up to `bytes` of decoded current-partition files in memory (0: none, the default).
    pub fn with_hot_bytes(self, bytes: usize) -> Self {
        lock(&self.hot).budget = bytes;
        self
    }

    pub fn warehouse(&self) -> &Arc<Warehouse> {
        &self.wh
    }

    /// The table as of its catalog row, loaded again only when the row moved.
    pub async fn table(&self) -> Result<Table> {
        let cached = lock(&self.loaded).clone();
        if let Some(l) = &cached
            && l.checked.elapsed() < self.check_every
        {
            return Ok(l.table.clone());
        }
        let location = self.wh.metadata_location(TableKind::DataPoints).await?;
        if let Some(l) = cached
            && l.location == location
        {
            if let Some(current) = lock(&self.loaded).as_mut()
                && current.location == location
            {
                current.checked = Instant::now();
            }
            return Ok(l.table);
        }
        let table = self.wh.load(TableKind::DataPoints).await?;
        let location = table.metadata_location().map_or(location, str::to_owned);
        *lock(&self.loaded) = Some(Loaded { table: table.clone(), location, checked: Instant::now() });
        Ok(table)
    }

    /// Forgets the loaded table: the next read loads it from the catalog.
    pub fn invalidate(&self) {
        *lock(&self.loaded) = None;
    }

    /// The snapshot `selector` names. A snapshot id the loaded table does not know (it may be
    /// newer than the last check) reloads the table once before it is an error.
    pub async fn pin(&self, selector: SnapshotSelector) -> Result<Pinned> {
        let table = self.table().await?;
        match resolve_snapshot(&table, selector) {
            Ok(snapshot) => Ok(Pinned { table, snapshot }),
            Err(StorageError::NoSuchSnapshot(_) | StorageError::NoSnapshotAtTime(_)) => {
                self.invalidate();
                let table = self.table().await?;
                let snapshot = resolve_snapshot(&table, selector)?;
                Ok(Pinned { table, snapshot })
            }
            Err(e) => Err(e),
        }
    }

    /// Answers `query` at the snapshot its selector names: the view's rows and that snapshot.
    pub async fn query(&self, query: &VintageQuery) -> Result<(RecordBatch, Option<i64>)> {
        let pinned = self.pin(query.snapshot).await?;
        Ok((self.read(&pinned, query).await?, pinned.snapshot))
    }

    /// Answers `query` at `pinned` (its own snapshot selector is not looked at).
    pub async fn read(&self, pinned: &Pinned, query: &VintageQuery) -> Result<RecordBatch> {
        self.read_admitting(pinned, query, true).await
    }

    /// [`read`](Self::read); `admit`: current-partition files it reads may be kept decoded (a
    /// streamed scan of the whole table uses those already kept but admits none, so one large
    /// answer does not fill the hot cache with files nobody reads again).
    async fn read_admitting(&self, pinned: &Pinned, query: &VintageQuery, admit: bool) -> Result<RecordBatch> {
        let Some(snapshot) = pinned.snapshot else { return Ok(RecordBatch::new_empty(view_schema())) };
        let index = self.index(&pinned.table, snapshot).await?;
        self.forget_gone_hot_files(&index);
        let planned: Vec<&LiveFile> = index.files.iter().filter(|f| f.may_match(query)).collect();
        // What is read, and how often, is what access-aware tiering decides by.
        for f in &planned {
            self.wh.record_read(TableKind::DataPoints, &f.path);
        }
        let reads: Vec<_> = planned.iter().map(|f| self.read_file(f, query, admit)).collect();
        let per_file: Vec<Vec<RecordBatch>> = stream::iter(reads).buffered(self.concurrency).try_collect().await?;
        let rows: Vec<RecordBatch> = per_file.into_iter().flatten().collect();
        resolve(query, &rows)
    }

    /// How many files of `pinned` a query reads, of how many (planning only, from the index).
    pub async fn plan(&self, pinned: &Pinned, query: &VintageQuery) -> Result<(usize, usize)> {
        let Some(snapshot) = pinned.snapshot else { return Ok((0, 0)) };
        let index = self.index(&pinned.table, snapshot).await?;
        Ok((index.files.iter().filter(|f| f.may_match(query)).count(), index.files.len()))
    }

    /// How a query would be read, without reading rows: its snapshot, the live files, the files
    /// planned, and the predicate rows are filtered with.
    pub async fn explain(&self, query: &VintageQuery) -> Result<Explain> {
        let pinned = self.pin(query.snapshot).await?;
        let (files_planned, files_total) = self.plan(&pinned, query).await?;
        Ok(Explain {
            snapshot_id: pinned.snapshot,
            files_total,
            files_planned,
            predicate: pinned.snapshot.and(query.predicate()).map(|p| p.to_string()),
        })
    }

    /// The snapshot's file index: built from its manifest list, loading only the manifests no
    /// earlier index loaded (a new commit adds one or two; the rest are kept by path).
    async fn index(&self, table: &Table, snapshot: i64) -> Result<Arc<SnapshotFiles>> {
        if let Some(found) = lock(&self.indexes).iter().find(|f| f.snapshot_id == snapshot) {
            return Ok(found.clone());
        }
        let list = manifest_list(table, Some(snapshot)).await?;
        let manifests = list.as_ref().map_or(&[][..], |l| l.entries());
        let mut files = Vec::new();
        let mut used = HashMap::with_capacity(manifests.len());
        for mf in manifests {
            let kept = lock(&self.manifests).get(&mf.manifest_path).cloned();
            let listed = match kept {
                Some(listed) => listed,
                None => Arc::new(manifest_live_files(&self.wh, table, mf).await?),
            };
            files.extend(listed.iter().cloned());
            used.insert(mf.manifest_path.clone(), listed);
        }
        {
            // Keep what this snapshot uses, and what older kept ones do while there is room.
            let mut kept = lock(&self.manifests);
            if kept.len() + used.len() > KEPT_MANIFESTS {
                kept.clear();
            }
            kept.extend(used);
        }
        let built = Arc::new(SnapshotFiles { snapshot_id: snapshot, files });
        let mut indexes = lock(&self.indexes);
        indexes.retain(|f| f.snapshot_id != snapshot);
        indexes.push_front(built.clone());
        indexes.truncate(KEPT_SNAPSHOTS);
        Ok(built)
    }

    /// Opens a data file for reading: a range reader over the warehouse's FileIO and the file's
    /// footer (kept after the first read).
    async fn open_file(&self, file: &LiveFile) -> Result<(ArrowFileReader, ArrowReaderMetadata)> {
        let path = file.path.as_str();
        let input = self.wh.file_io().new_input(path)?;
        let opened = input
            .reader()
            .await
            .map_err(|source| StorageError::ReadFile { path: path.to_owned(), source: Box::new(source) })?;
        let mut reader = ArrowFileReader::new(FileMetadata { size: file.size_bytes }, opened);
        let cached = lock(&self.footers).get(path).cloned();
        let footer = match cached {
            Some(f) => f,
            None => {
                // With the page index (our files have one): reads of a few series select pages.
                let mut options = ArrowReaderOptions::new()
                    .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Optional);
                if let Some(keys) = self.wh.decryption() {
                    options = options.with_file_decryption_properties(keys);
                }
                let f = ArrowReaderMetadata::load_async(&mut reader, options).await.map_err(|e| corrupt(path, &e))?;
                let mut footers = lock(&self.footers);
                if footers.len() >= KEPT_FOOTERS {
                    footers.clear();
                }
                footers.insert(path.to_owned(), f.clone());
                f
            }
        };
        Ok((reader, footer))
    }

    /// Rows per series in the files `query` plans at `pinned` (the `series_id` column only, of the
    /// row groups its dates admit): what a streamed answer is cut by.
    async fn series_counts(&self, pinned: &Pinned, query: &VintageQuery) -> Result<BTreeMap<String, u64>> {
        let Some(snapshot) = pinned.snapshot else { return Ok(BTreeMap::new()) };
        let index = self.index(&pinned.table, snapshot).await?;
        let named: std::collections::HashSet<&str> = query.series.iter().map(|s| s.as_str()).collect();
        let mut counts = BTreeMap::new();
        for file in index.files.iter().filter(|f| f.may_match(query)) {
            // A file kept decoded knows its series' row ranges: no I/O.
            if let Some(hot) = self.hot_file(file, false) {
                hot.count_series(&named, &mut counts);
                continue;
            }
            let (reader, footer) = self.open_file(file).await?;
            let groups = admitted_row_groups(footer.metadata(), query);
            let Some(column) = leaf(footer.metadata().file_metadata().schema_descr(), field::SERIES_ID, col::SERIES_ID)
            else {
                return Err(corrupt(&file.path, &"no series_id column"));
            };
            let mask = ProjectionMask::leaves(footer.metadata().file_metadata().schema_descr(), [column]);
            let mut stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, footer)
                .with_row_groups(groups)
                .with_projection(mask)
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| corrupt(&file.path, &e))?;
            while let Some(batch) = stream.try_next().await.map_err(|e| corrupt(&file.path, &e))? {
                use arrow::array::{Array, AsArray};
                // Other engines may write the column as large strings (pyarrow does).
                let ids = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)
                    .map_err(|e| corrupt(&file.path, &e))?;
                let ids = ids.as_string::<i32>();
                for i in 0..ids.len() {
                    // Only series the query asks for (all of them when it names none).
                    if ids.is_valid(i) && (named.is_empty() || named.contains(ids.value(i))) {
                        *counts.entry(ids.value(i).to_owned()).or_insert(0) += 1;
                    }
                }
            }
        }
        Ok(counts)
    }

    /// Answers `query` at `pinned` as a stream of batches, in bounded memory: the series it
    /// covers are cut into consecutive groups of about `chunk_rows` stored rows, and each group
    /// is read, resolved and sent before the next is read. Rows come in the same order as
    /// [`read`](Self::read)'s (by series, then date). A query naming few series is one group.
    pub fn stream(
        self: &Arc<Self>,
        pinned: Pinned,
        query: VintageQuery,
        chunk_rows: usize,
    ) -> stream::BoxStream<'static, Result<RecordBatch>> {
        let reader = self.clone();
        let groups = async move {
            let counts = reader.series_counts(&pinned, &query).await?;
            let mut groups: Vec<Vec<vintagelake_schemas::SeriesId>> = Vec::new();
            let mut rows = 0u64;
            // The first groups are small and grow to chunk_rows, so the first rows go out soon.
            let mut size = (chunk_rows.max(1) as u64).min(FIRST_GROUP_ROWS);
            for (id, n) in counts {
                let Ok(id) = id.parse() else { continue }; // not a valid id: no query names it
                if groups.is_empty() || rows >= size {
                    if !groups.is_empty() {
                        size = (size * 2).min(chunk_rows.max(1) as u64);
                    }
                    groups.push(Vec::new());
                    rows = 0;
                }
                groups.last_mut().expect("a group").push(id);
                rows += n;
            }
            // The next group is read and resolved on another task while this one is sent (two
            // groups in memory at most); a dropped stream aborts the group being prepared.
            let parts =
                stream::iter(groups)
                    .map(move |series| {
                        let (reader, pinned) = (reader.clone(), pinned.clone());
                        let part = query.clone().series(series);
                        let task = tokio::spawn(async move { reader.read_admitting(&pinned, &part, false).await });
                        let task = tokio_util::task::AbortOnDropHandle::new(task);
                        async move {
                            task.await.map_err(|e| StorageError::InvalidData(format!("a streamed part failed: {e}")))?
                        }
                    })
                    .buffered(PREFETCH_PARTS);
            Ok::<_, StorageError>(parts)
        };
        stream::once(groups).try_flatten().boxed()
    }

    /// The rows of one file the query's predicate admits, reading only row groups whose
    /// statistics admit its series and dates. An unreadable file is an error naming it.
    async fn read_file(&self, file: &LiveFile, query: &VintageQuery, admit: bool) -> Result<Vec<RecordBatch>> {
        let schema = self.wh.rows_schema(TableKind::DataPoints);
        let batches = match self.hot_file(file, admit) {
            Some(hot) => hot.select(query)?,
            None => self.read_file_pruned(file, query).await?,
        };
        // A file kept decoded before another engine added a column gets it (null) here, so every
        // file of one answer has the same columns.
        batches
            .into_iter()
            .map(|b| {
                if b.schema() == schema {
                    Ok(b)
                } else {
                    crate::evolve::conform_to(&schema, &b).map_err(|e| corrupt(&file.path, &e))
                }
            })
            .collect()
    }

    /// A file's decoded rows when they are in memory; `None` otherwise. When `admit` and the hot
    /// budget (for a closed file, its half) has room, a file not yet kept is read whole and kept
    /// in the background (this read goes on pruned, so a read after a commit does not wait to
    /// decode the new file whole). Closed files matter to history reads: a long series' revisions
    /// lie in one closed file per month their periods ended in, each a few rows of it.
    fn hot_file(&self, file: &LiveFile, admit: bool) -> Option<Arc<HotFile>> {
        let mut kept = lock(&self.hot);
        let closed = file.realtime_end_month.is_some();
        let share = if closed { kept.budget / 2 } else { kept.budget };
        // Decoded rows take a few times the file's size; a file that would fill its share alone
        // is read pruned instead.
        if file.size_bytes as usize * 8 > share {
            return None;
        }
        if let Some(hot) = kept.files.get(&file.path) {
            return Some(hot.clone());
        }
        // Full: files are admitted while there is room, never by evicting hot ones (a table
        // whose current partition exceeds the budget would otherwise decode whole files over and
        // over); what does not fit is read pruned.
        let full = kept.bytes >= kept.budget || (closed && kept.closed_bytes >= share);
        if !admit || full || kept.loading.len() >= HOT_LOADS || kept.loading.contains(&file.path) {
            return None;
        }
        kept.loading.insert(file.path.clone());
        drop(kept);
        let (hot, wh, path) = (self.hot.clone(), self.wh.clone(), file.path.clone());
        tokio::spawn(async move {
            let loaded = HotFile::load(&wh, &path).await;
            let mut kept = lock(&hot);
            kept.loading.remove(&path);
            match loaded {
                Ok(mut file)
                    if !kept.files.contains_key(&path)
                        && kept.bytes < kept.budget
                        && (!closed || kept.closed_bytes < kept.budget / 2) =>
                {
                    let size = file.rows.get_array_memory_size();
                    kept.bytes += size;
                    if closed {
                        kept.closed_bytes += size;
                    }
                    file.closed = closed;
                    kept.files.insert(path, Arc::new(file));
                }
                Ok(_) => {}
                // The read that asked for it reads the file itself and reports what fails.
                Err(e) => tracing::warn!(path = %path, error = %e, "could not keep a data file in memory"),
            }
        });
        None
    }

    async fn read_file_pruned(&self, file: &LiveFile, query: &VintageQuery) -> Result<Vec<RecordBatch>> {
        let path = file.path.as_str();
        let failed = |e: &dyn std::fmt::Display| corrupt(path, e);
        let (reader, footer) = self.open_file(file).await?;
        let groups = admitted_row_groups(footer.metadata(), query);
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, footer.clone());
        let groups = self.bloom_admitted(&mut builder, path, footer.metadata(), groups, query).await?;
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let selection = admitted_pages(footer.metadata(), &groups, query);
        let mut builder = builder.with_row_groups(groups).with_batch_size(BATCH_ROWS);
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        let stream = builder.build().map_err(|e| failed(&e))?;
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(|e| failed(&e))?;
        // One schema for every file's rows (the table's), whatever metadata a writer embedded.
        let schema = self.wh.rows_schema(TableKind::DataPoints);
        let mut kept = Vec::with_capacity(batches.len());
        for batch in batches {
            let batch = crate::evolve::conform_to(&schema, &batch).map_err(|e| failed(&e))?;
            let mask = query.row_mask(&batch)?;
            let batch = arrow::compute::filter_record_batch(&batch, &mask)?;
            if batch.num_rows() > 0 {
                kept.push(batch);
            }
        }
        Ok(kept)
    }

    /// Of the row groups a few-series query admits by their bounds, those whose `series_id`
    /// bloom filter may hold one of its series (all of them for wide queries, or a file written
    /// without filters). Filters are read once per row group and kept.
    async fn bloom_admitted<T: parquet::arrow::async_reader::AsyncFileReader + Send + 'static>(
        &self,
        builder: &mut ParquetRecordBatchStreamBuilder<T>,
        path: &str,
        meta: &ParquetMetaData,
        groups: Vec<usize>,
        query: &VintageQuery,
    ) -> Result<Vec<usize>> {
        if query.series.is_empty() || query.series.len() > BLOOM_MAX_SERIES {
            return Ok(groups);
        }
        let schema = meta.file_metadata().schema_descr();
        let Some(column) = leaf(schema, field::SERIES_ID, col::SERIES_ID) else {
            return Ok(groups);
        };
        let mut kept = Vec::with_capacity(groups.len());
        for g in groups {
            if meta.row_group(g).column(column).bloom_filter_offset().is_none() {
                kept.push(g);
                continue;
            }
            let key = (path.to_owned(), g);
            let cached = lock(&self.blooms).get(&key).cloned();
            let filter = match cached {
                Some(f) => f,
                None => {
                    let f = builder
                        .get_row_group_column_bloom_filter(g, column)
                        .await
                        .map_err(|e| corrupt(path, &e))?
                        .map(Arc::new);
                    let mut blooms = lock(&self.blooms);
                    if blooms.len() >= KEPT_BLOOMS {
                        blooms.clear();
                    }
                    blooms.insert(key, f.clone());
                    f
                }
            };
            if filter.is_none_or(|f| query.series.iter().any(|s| f.check(s.as_str()))) {
                kept.push(g);
            }
        }
        Ok(kept)
    }

    /// When the hot budget (or its closed half) is full, drops the files `index` (the snapshot
    /// being read) no longer lists: compaction or tiering replaced them.
    fn forget_gone_hot_files(&self, index: &SnapshotFiles) {
        let mut kept = lock(&self.hot);
        let full = kept.bytes >= kept.budget || kept.closed_bytes >= kept.budget / 2;
        if !full || kept.files.is_empty() {
            return;
        }
        let live: std::collections::HashSet<&str> = index.files.iter().map(|f| f.path.as_str()).collect();
        let gone: Vec<String> = kept.files.keys().filter(|p| !live.contains(p.as_str())).cloned().collect();
        for path in gone {
            if let Some(f) = kept.files.remove(&path) {
                let size = f.rows.get_array_memory_size();
                kept.bytes -= size;
                if f.closed {
                    kept.closed_bytes -= size;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl crate::source::ViewSource for TableReader {
    fn foreign_columns(&self) -> Vec<arrow::datatypes::Field> {
        crate::evolve::foreign_fields(&self.wh.rows_schema(TableKind::DataPoints), TableKind::DataPoints)
    }

    fn backend(&self) -> &'static str {
        "iceberg"
    }

    async fn version(&self, selector: SnapshotSelector) -> Result<Option<i64>> {
        Ok(self.pin(selector).await?.snapshot)
    }

    async fn answer(&self, query: &VintageQuery) -> Result<(RecordBatch, Option<i64>)> {
        self.query(query).await
    }

    async fn answer_stream(
        self: Arc<Self>,
        query: VintageQuery,
        chunk_rows: usize,
    ) -> Result<(stream::BoxStream<'static, Result<RecordBatch>>, Option<i64>)> {
        let pinned = self.pin(query.snapshot).await?;
        let version = pinned.snapshot;
        Ok((self.stream(pinned, query, chunk_rows), version))
    }

    async fn explain(&self, query: &VintageQuery) -> Result<Explain> {
        TableReader::explain(self, query).await
    }

    async fn series_version(&self) -> Result<String> {
        self.wh.metadata_location(TableKind::Series).await
    }

    async fn series_catalogue(&self) -> Result<Vec<vintagelake_schemas::EconomicSeries>> {
        crate::store::IcebergStore::new(self.wh.clone()).latest_series().await
    }

    fn forget(&self) {
        self.invalidate();
    }
}

/// The row groups whose `series_id` and `date` statistics admit a row of the query (all of them
/// when it names neither; a row group without statistics may hold anything).
fn admitted_row_groups(meta: &ParquetMetaData, query: &VintageQuery) -> Vec<usize> {
    let schema = meta.file_metadata().schema_descr();
    let (series_col, date_col) = (leaf(schema, field::SERIES_ID, col::SERIES_ID), leaf(schema, field::DATE, col::DATE));
    (0..meta.num_row_groups())
        .filter(|&g| {
            let rg = meta.row_group(g);
            let stats = |c: Option<usize>| c.and_then(|c| rg.column(c).statistics());
            let series = stats(series_col).map_or((None, None), |s| (utf8(s.min_bytes_opt()), utf8(s.max_bytes_opt())));
            let dates = match stats(date_col) {
                Some(Statistics::Int32(s)) => (s.min_opt().copied(), s.max_opt().copied()),
                _ => (None, None),
            };
            query.may_read(&FileBounds { series, dates })
        })
        .collect()
}

/// The Parquet leaf column of a field: by field id (so a column another engine renamed is still
/// found), by name in a file written without field ids.
fn leaf(schema: &parquet::schema::types::SchemaDescriptor, id: i32, name: &str) -> Option<usize> {
    let columns = schema.columns();
    let id_of = |c: &parquet::schema::types::ColumnDescPtr| {
        let info = c.self_type().get_basic_info();
        info.has_id().then(|| info.id())
    };
    if columns.iter().any(|c| id_of(c).is_some()) {
        columns.iter().position(|c| id_of(c) == Some(id))
    } else {
        columns.iter().position(|c| c.path().string() == name)
    }
}

/// A data file that does not decode, named.
fn corrupt(path: &str, e: &dyn std::fmt::Display) -> StorageError {
    StorageError::ReadFile {
        path: path.to_owned(),
        source: Box::new(iceberg::Error::new(iceberg::ErrorKind::DataInvalid, format!("corrupt Parquet file: {e}"))),
    }
}

fn utf8(bytes: Option<&[u8]>) -> Option<&str> {
    bytes.and_then(|b| std::str::from_utf8(b).ok())
}

/// Within the admitted row groups, the rows of the `series_id` pages whose page-index bounds admit
/// one of the query's series (`None`: no series named, or no page index; read whole row groups).
/// Files are sorted by series, so one series spans a few pages of a row group.
fn admitted_pages(meta: &ParquetMetaData, groups: &[usize], query: &VintageQuery) -> Option<RowSelection> {
    if query.series.is_empty() {
        return None;
    }
    let (column_index, offset_index) = (meta.column_index()?, meta.offset_index()?);
    let schema = meta.file_metadata().schema_descr();
    let series_col = leaf(schema, field::SERIES_ID, col::SERIES_ID)?;
    let mut selectors: Vec<RowSelector> = Vec::new();
    for &g in groups {
        let rows = meta.row_group(g).num_rows() as usize;
        let pages = offset_index.get(g)?.get(series_col)?.page_locations();
        let ColumnIndexMetaData::BYTE_ARRAY(index) = column_index.get(g)?.get(series_col)? else {
            selectors.push(RowSelector::select(rows));
            continue;
        };
        for (p, page) in pages.iter().enumerate() {
            let first = page.first_row_index as usize;
            let end = pages.get(p + 1).map_or(rows, |next| next.first_row_index as usize);
            // A page of nulls only holds no series; otherwise its bounds decide, as a file's do.
            let (lo, hi) = (index.min_value(p), index.max_value(p));
            let bounds = FileBounds { series: (utf8(lo), utf8(hi)), dates: (None, None) };
            let admits = lo.is_some() && query.series.iter().any(|id| bounds.admits(Some(id.as_str()), None, None));
            let n = end.saturating_sub(first);
            selectors.push(if admits { RowSelector::select(n) } else { RowSelector::skip(n) });
        }
    }
    Some(RowSelection::from(selectors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    /// `batch` as a Parquet file written as ours are.
    fn written(batch: &RecordBatch, encoding: crate::write::Encoding) -> Vec<u8> {
        let mut bytes = Vec::new();
        let props = crate::write::writer_properties(encoding.default_zstd_level(), None);
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props)).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
        bytes
    }

    /// A file sorted by series, as our writers make them: a one-series read selects a few pages
    /// of its row group, and a date range outside the file admits no row group.
    #[test]
    fn one_series_reads_a_few_pages() {
        let n = 100_000usize;
        let series: StringArray = (0..n).map(|i| Some(format!("S{:05}", i / 1000))).collect();
        let dates: Date32Array = (0..n).map(|i| Some((i % 1000) as i32)).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new(col::SERIES_ID, DataType::Utf8, false),
            Field::new(col::DATE, DataType::Date32, false),
        ]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(series), Arc::new(dates)]).unwrap();
        let bytes = written(&batch, crate::write::Encoding::Settled);
        let options =
            ArrowReaderOptions::new().with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required);
        let meta = ArrowReaderMetadata::load(&bytes::Bytes::from(bytes), options).unwrap();
        let meta = meta.metadata();
        let q = VintageQuery::new(crate::scan::View::Latest).series(["S00042".parse().unwrap()]);
        let groups = admitted_row_groups(meta, &q);
        assert_eq!(groups.len(), 1, "one row group holds S00042");
        let selection = admitted_pages(meta, &groups, &q).expect("a page index");
        let rows = meta.row_group(groups[0]).num_rows() as usize;
        let selected = selection.row_count();
        assert!((1000..=2 * crate::write::PAGE_ROWS).contains(&selected), "{selected} of {rows} rows selected");
        let outside = q.clone().between(Some(vintagelake_schemas::Date::from_days_since_epoch(5000)), None);
        assert!(admitted_row_groups(meta, &outside).is_empty(), "no row group has dates from 5000 on");
        assert!(admitted_pages(meta, &groups, &VintageQuery::new(crate::scan::View::Latest)).is_none());
    }

    /// The footers a read keeps carry the page index of the files we write (without it, reads of
    /// a few series would decode whole row groups).
    #[tokio::test]
    async fn kept_footers_carry_the_page_index() {
        use vintagelake_schemas::table::{StoredDataPoint, stored_data_points_to_batch};
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(crate::catalog::WarehouseConfig::new(dir.path())).await.unwrap();
        let store = crate::store::IcebergStore::new(wh.clone());
        let rows: Vec<StoredDataPoint> = (0..50)
            .map(|i| {
                let date = vintagelake_schemas::Date::from_days_since_epoch(10_000 + i);
                let series: vintagelake_schemas::SeriesId = format!("P{:03}", i % 5).parse().unwrap();
                let revision = vintagelake_schemas::DataPointRevision {
                    series_id: series,
                    date,
                    revision_date: date,
                    value: Some(f64::from(i)),
                    is_original_release: true,
                    id: None,
                    created_at: None,
                    updated_at: None,
                    status: None,
                    comment: None,
                };
                StoredDataPoint::arrived(revision, vintagelake_schemas::Timestamp::from_nanos(0), i64::from(i))
            })
            .collect();
        let batch = stored_data_points_to_batch(&rows).unwrap();
        store.append(TableKind::DataPoints, &[batch], vec![], "test").await.unwrap();
        let reader = TableReader::new(wh, 1, Duration::ZERO);
        let pinned = reader.pin(SnapshotSelector::Current).await.unwrap();
        let index = reader.index(&pinned.table, pinned.snapshot.unwrap()).await.unwrap();
        let (_, footer) = reader.open_file(&index.files[0]).await.unwrap();
        assert!(footer.metadata().column_index().is_some(), "column index loaded");
        assert!(footer.metadata().offset_index().is_some(), "offset index loaded");
    }

    /// Files as we write them carry a `series_id` bloom filter per row group: a series inside a
    /// row group's bounds that it does not hold skips the row group; the ones it holds do not.
    #[tokio::test]
    async fn bloom_filters_skip_row_groups_that_do_not_hold_the_series() {
        let n = 3_000usize;
        // Every third series id only (scattered series, as small commits hold them).
        let series: StringArray = (0..n).map(|i| Some(format!("S{:05}", (i / 10) * 3))).collect();
        let dates: Date32Array = (0..n).map(|i| Some((i % 10) as i32)).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new(col::SERIES_ID, DataType::Utf8, false),
            Field::new(col::DATE, DataType::Date32, false),
        ]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(series), Arc::new(dates)]).unwrap();
        let bytes = written(&batch, crate::write::Encoding::Fresh);
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(crate::catalog::WarehouseConfig::new(dir.path())).await.unwrap();
        let reader = TableReader::new(wh, 1, Duration::ZERO);
        let mut builder = ParquetRecordBatchStreamBuilder::new(std::io::Cursor::new(bytes)).await.unwrap();
        let meta = builder.metadata().clone();
        let q = |id: &str| VintageQuery::new(crate::scan::View::Latest).series([id.parse().unwrap()]);
        let mut check = async |id: &str| {
            let groups = admitted_row_groups(&meta, &q(id));
            assert_eq!(groups, [0], "{id} lies within the row group's bounds");
            reader.bloom_admitted(&mut builder, "f", &meta, groups, &q(id)).await.unwrap()
        };
        assert_eq!(check("S00003").await, [0], "a series the row group holds");
        assert_eq!(check("S00897").await, [0], "a series the row group holds");
        let absent = ["S00001", "S00002", "S00004", "S00400", "S00896"];
        let mut skipped = Vec::new();
        for id in absent {
            skipped.push(check(id).await.is_empty());
        }
        // 1% false positives: all five skipped unless one is unlucky.
        assert!(skipped.iter().filter(|s| **s).count() >= 4, "absent series skipped: {skipped:?}");
        // Kept after the first read, and answering the same.
        assert_eq!(check("S00001").await.is_empty(), skipped[0]);
        assert_eq!(lock(&reader.blooms).len(), 1, "one row group's filter, read once");
    }
}
