//! Storage V1: plain, immutable Parquet files in date-partitioned directories (the UTC day of
//! the commit: one file per write, however many months its revisions span) plus an atomic
//! commit log, behind the same [`FinancialDataStorage`] trait as the Iceberg tables (V2).
//!
//! Layout of a V1 store:
//!
//! ```text
//! <root>/data_points/commit_date=2026-11-24/part-<uuid>.parquet  rows of the data_points table
//! <root>/series/part-<uuid>.parquet                               rows of the series table
//! <root>/_log/00000000000000000001.json                           commit N (one JSON document)
//! <root>/_staging/<path>                                          written, committed, not yet moved
//! <root>/_removed/<path>                                          removed by a later commit
//! ```
//!
//! A write puts new files under `_staging/` (outside the globs users read), then commits by
//! creating the next log file with `link(2)`, which fails if another writer took that version:
//! the log entry is the commit point, complete or absent, never half written. After the commit
//! the staged files are renamed into place and files the commit removed are moved to `_removed/`
//! (old versions still read them there). A crash between commit and rename is rolled forward by
//! the next writer that opens the store; our readers find a file wherever it is. Kafka positions
//! travel in the same log entry as the rows they cover, so ingest is exactly once here as well.

pub mod migrate;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::Date32Type;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vintagelake_schemas::arrow::col;
use vintagelake_schemas::table::{
    StoredDataPoint, batch_to_stored_series, data_points_table_schema, series_table_schema,
    stored_data_points_to_batch, stored_series_to_batch,
};
use vintagelake_schemas::{EconomicSeries, SeriesId};

use vintagelake_storage::ViewSource;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::{CommitKind, Committed, OffsetUpdate};
use vintagelake_storage::error::{Result, StorageError};
use vintagelake_storage::scan::{Explain, FileBounds, SnapshotSelector, VintageQuery, resolve};
use vintagelake_storage::store::{FinancialDataStorage, IngestTarget, Sequencer};
use vintagelake_storage::write::{Encoding, sort_batch, writer_properties};

/// Directory of the commit log inside a V1 store.
pub const LOG_DIR: &str = "_log";
/// Files written by a commit that has not been applied yet.
pub const STAGING_DIR: &str = "_staging";
/// Files removed by a commit (kept for reads of older versions until vacuumed).
pub const REMOVED_DIR: &str = "_removed";
/// How often a commit retries when another writer took its version.
const MAX_ATTEMPTS: u32 = 50;

/// One data file of a commit, with what readers need to prune and verify it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the store root, `/`-separated.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    /// Smallest and largest `series_id` (data_points) or `id` (series) in the file.
    pub min_key: String,
    pub max_key: String,
    /// Smallest and largest `date` (data_points only), days since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_date: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_date: Option<i32>,
}

/// A Kafka position recorded by a commit: the next offset to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedOffset {
    pub topic: String,
    pub partition: i32,
    pub next: i64,
}

/// One commit of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub version: u64,
    pub timestamp_ms: i64,
    /// `data_points` or `series`.
    pub table: String,
    /// `append`, `replace`, `delete` or `overwrite`.
    pub operation: String,
    /// Who made it (`ingest`, `api`, `compaction`, …).
    pub origin: String,
    #[serde(default)]
    pub add: Vec<FileEntry>,
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub offsets: Vec<LoggedOffset>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub summary: BTreeMap<String, String>,
}

fn operation_name(kind: CommitKind) -> &'static str {
    match kind {
        CommitKind::Append => "append",
        CommitKind::Replace => "replace",
        CommitKind::Delete => "delete",
        CommitKind::Overwrite => "overwrite",
    }
}

/// The commit log as read so far (entries 1..=len, in order).
#[derive(Debug, Default)]
struct Log {
    entries: Vec<LogEntry>,
}

impl Log {
    /// Files of `table` live after `version` (all versions: `None`), in the order they were added.
    fn live(&self, table: TableKind, version: Option<u64>) -> Vec<FileEntry> {
        let upto = version.map_or(self.entries.len(), |v| v as usize);
        let mut live: Vec<FileEntry> = Vec::new();
        for e in self.entries[..upto].iter().filter(|e| e.table == table.name()) {
            if !e.remove.is_empty() {
                let removed: HashSet<&str> = e.remove.iter().map(String::as_str).collect();
                live.retain(|f| !removed.contains(f.path.as_str()));
            }
            live.extend(e.add.iter().cloned());
        }
        live
    }

    /// The latest arrival mark recorded for `table` ([`crate::arrivals`]).
    fn arrival_mark(&self, table: TableKind) -> Option<i64> {
        self.entries
            .iter()
            .rev()
            .filter(|e| e.table == table.name())
            .find_map(|e| e.summary.get(vintagelake_storage::arrivals::SUMMARY_ARRIVALS).and_then(|v| v.parse().ok()))
    }

    fn offsets(&self, table: TableKind, version: Option<u64>) -> BTreeMap<(String, i32), i64> {
        let upto = version.map_or(self.entries.len(), |v| v as usize);
        let mut out = BTreeMap::new();
        for e in self.entries[..upto].iter().filter(|e| e.table == table.name()) {
            for o in &e.offsets {
                out.insert((o.topic.clone(), o.partition), o.next);
            }
        }
        out
    }

    fn version_for(&self, selector: SnapshotSelector) -> Result<u64> {
        match selector {
            SnapshotSelector::Current => Ok(self.entries.len() as u64),
            SnapshotSelector::Id(v) if v >= 1 && v as usize <= self.entries.len() => Ok(v as u64),
            SnapshotSelector::Id(v) => Err(StorageError::NoSuchSnapshot(v)),
            SnapshotSelector::AsOfTimestampMs(t) => self
                .entries
                .iter()
                .rev()
                .find(|e| e.timestamp_ms <= t)
                .map(|e| e.version)
                .ok_or(StorageError::NoSnapshotAtTime(t)),
        }
    }
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    log: Mutex<Log>,
}

/// A V1 store: plain Parquet files and a commit log under one directory.
#[derive(Debug, Clone)]
pub struct ParquetStore {
    inner: Arc<Inner>,
    seq: Arc<Sequencer>,
    concurrency: usize,
    group: Arc<vintagelake_storage::group::GroupCommit>,
}

impl ParquetStore {
    /// Opens (creating if needed) the store at `root`, reads its log and finishes any commit a
    /// crashed writer left unapplied.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let inner = Arc::new(Inner { root, log: Mutex::new(Log::default()) });
        let i = inner.clone();
        blocking(move || {
            std::fs::create_dir_all(i.root.join(LOG_DIR))?;
            let mut log = i.log.lock().expect("log lock");
            i.refresh(&mut log)?;
            i.roll_forward(&log)
        })
        .await?;
        Ok(Self { inner, seq: Arc::new(Sequencer::default()), concurrency: 8, group: Arc::default() })
    }

    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The committed entries, re-reading the log first.
    pub async fn log(&self) -> Result<Vec<LogEntry>> {
        let i = self.inner.clone();
        blocking(move || {
            let mut log = i.log.lock().expect("log lock");
            i.refresh(&mut log)?;
            Ok(log.entries.clone())
        })
        .await
    }

    /// The latest committed version (0: nothing committed yet).
    pub async fn version(&self) -> Result<u64> {
        Ok(self.log().await?.len() as u64)
    }

    /// Live files of a table at `version` (`None`: the latest).
    pub async fn live_files(&self, kind: TableKind, version: Option<u64>) -> Result<Vec<FileEntry>> {
        let i = self.inner.clone();
        blocking(move || {
            let mut log = i.log.lock().expect("log lock");
            i.refresh(&mut log)?;
            if let Some(v) = version
                && v as usize > log.entries.len()
            {
                return Err(StorageError::NoSuchSnapshot(v as i64));
            }
            Ok(log.live(kind, version))
        })
        .await
    }

    /// The Kafka positions a table recorded up to `version`.
    pub async fn recorded_offsets_at(&self, kind: TableKind, version: u64) -> Result<BTreeMap<(String, i32), i64>> {
        let i = self.inner.clone();
        blocking(move || {
            let mut log = i.log.lock().expect("log lock");
            i.refresh(&mut log)?;
            if version as usize > log.entries.len() {
                return Err(StorageError::NoSuchSnapshot(version as i64));
            }
            Ok(log.offsets(kind, Some(version)))
        })
        .await
    }

    /// Reads one data file of the store (wherever a commit's apply step left it), checking its
    /// size against the log.
    pub async fn read_file(&self, file: &FileEntry) -> Result<Vec<RecordBatch>> {
        let i = self.inner.clone();
        let file = file.clone();
        blocking(move || i.read_file(&file)).await
    }

    /// Reads files with bounded concurrency, keeping their order.
    pub async fn read_files(&self, files: &[FileEntry]) -> Result<Vec<RecordBatch>> {
        let reads = files.iter().cloned().map(|f| {
            let i = self.inner.clone();
            async move { blocking(move || i.read_file(&f)).await }
        });
        let batches: Vec<Vec<RecordBatch>> =
            futures::stream::iter(reads).buffered(self.concurrency).try_collect().await?;
        Ok(batches.into_iter().flatten().collect())
    }

    /// Writes rows (table schema) to new files and commits them with the Kafka positions they
    /// cover. Fenced if another writer moved one of those positions since `expected`.
    pub async fn append(
        &self,
        kind: TableKind,
        batches: &[RecordBatch],
        offsets: Vec<OffsetUpdate>,
        origin: &str,
    ) -> Result<Committed> {
        if kind != TableKind::DataPoints {
            return self
                .write_and_commit(kind, CommitKind::Append, batches, Vec::new(), offsets, origin, BTreeMap::new(), None)
                .await;
        }
        // Arrival numbers follow the order of commits (the loop both stores run).
        vintagelake_storage::arrivals::append_numbered(
            kind.name(),
            batches,
            true,
            MAX_ATTEMPTS,
            || {
                let i = self.inner.clone();
                blocking(move || {
                    let mut log = i.log.lock().expect("log lock");
                    i.refresh(&mut log)?;
                    let expected = log.arrival_mark(kind);
                    let after = match expected {
                        Some(mark) => mark,
                        // Written before marks: continue after every number stored.
                        None => {
                            let mut high = 0;
                            for f in log.live(kind, None) {
                                high =
                                    high.max(vintagelake_storage::arrivals::highest(&i.read_file(&f)?)?.unwrap_or(0));
                            }
                            high
                        }
                    };
                    Ok(vintagelake_storage::arrivals::MarkRead { context: (), expected, after })
                })
            },
            |(), rows, range| {
                let offsets = offsets.clone();
                async move {
                    self.write_and_commit(
                        kind,
                        CommitKind::Append,
                        &rows,
                        Vec::new(),
                        offsets,
                        origin,
                        BTreeMap::new(),
                        Some(range),
                    )
                    .await
                }
            },
        )
        .await
    }

    /// Atomically replaces live files `remove` with `rows` (compaction's primitive).
    pub async fn rewrite(
        &self,
        kind: TableKind,
        remove: Vec<String>,
        rows: &[RecordBatch],
        commit_kind: CommitKind,
        origin: &str,
        summary: BTreeMap<String, String>,
    ) -> Result<Committed> {
        self.write_and_commit(kind, commit_kind, rows, remove, Vec::new(), origin, summary, None).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_and_commit(
        &self,
        kind: TableKind,
        commit_kind: CommitKind,
        rows: &[RecordBatch],
        remove: Vec<String>,
        offsets: Vec<OffsetUpdate>,
        origin: &str,
        summary: BTreeMap<String, String>,
        arrivals: Option<vintagelake_storage::arrivals::ArrivalRange>,
    ) -> Result<Committed> {
        let i = self.inner.clone();
        let rows = rows.to_vec();
        let origin = origin.to_owned();
        blocking(move || {
            let added = i.write_files(kind, &rows)?;
            let result = i.commit(kind, commit_kind, &added, remove, offsets, origin, summary, arrivals);
            if let Err(e) = &result
                && !e.may_have_committed()
            {
                for f in &added {
                    let _ = std::fs::remove_file(i.root.join(STAGING_DIR).join(&f.path));
                }
            }
            result
        })
        .await
    }

    /// Moves files no live version needs out of the way: everything in `_removed/` and staged files
    /// no commit references that are older than `min_age` (a writer may still be committing
    /// younger ones). Returns how many files were deleted.
    pub async fn vacuum(&self, min_age: std::time::Duration) -> Result<usize> {
        let i = self.inner.clone();
        blocking(move || {
            let mut log = i.log.lock().expect("log lock");
            i.refresh(&mut log)?;
            let now = chrono::Utc::now().timestamp_millis();
            let min_age_ms = i64::try_from(min_age.as_millis()).unwrap_or(i64::MAX);
            // When each removed file left the table: old versions stay readable for `min_age` after that.
            let removed_at: HashMap<&str, i64> =
                log.entries.iter().flat_map(|e| e.remove.iter().map(|p| (p.as_str(), e.timestamp_ms))).collect();
            let referenced: HashSet<&str> =
                log.entries.iter().flat_map(|e| e.add.iter().map(|f| f.path.as_str())).collect();
            let modified_ms = |path: &Path| -> Result<i64> {
                let age = path.metadata()?.modified()?.elapsed().unwrap_or_default();
                Ok(now - i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
            };
            let mut deleted = 0;
            for (rel, path) in walk(&i.root.join(REMOVED_DIR))? {
                let since = match removed_at.get(rel.as_str()) {
                    Some(t) => *t,
                    None => modified_ms(&path)?,
                };
                if now.saturating_sub(since) >= min_age_ms {
                    std::fs::remove_file(&path)?;
                    deleted += 1;
                }
            }
            // Staged files no commit refers to: a writer that died before its commit, or one
            // still writing (hence the age).
            for (rel, path) in walk(&i.root.join(STAGING_DIR))? {
                if !referenced.contains(rel.as_str()) && now.saturating_sub(modified_ms(&path)?) >= min_age_ms {
                    std::fs::remove_file(&path)?;
                    deleted += 1;
                }
            }
            Ok(deleted)
        })
        .await
    }

    /// Series rows with their sequence numbers; with `only`, just the files whose key bounds
    /// can hold that series.
    async fn read_series_rows(&self, only: Option<&SeriesId>) -> Result<Vec<(EconomicSeries, i64)>> {
        let mut files = self.live_files(TableKind::Series, None).await?;
        if let Some(id) = only {
            files.retain(|f| id.as_str() >= f.min_key.as_str() && id.as_str() <= f.max_key.as_str());
        }
        let mut rows = Vec::new();
        for b in self.read_files(&files).await? {
            rows.extend(batch_to_stored_series(&b)?);
        }
        Ok(rows)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StorageError::Io(std::io::Error::other(e)))?
}

/// Every file under `dir`: (path relative to `dir` with `/`, full path).
fn walk(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("under dir").to_string_lossy().replace('\\', "/");
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn log_file_name(version: u64) -> String {
    format!("{version:020}.json")
}

fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// `commit_date=YYYY-MM-DD`: the UTC day a write is committed.
fn commit_date_dir() -> String {
    format!("commit_date={}", chrono::Utc::now().format("%Y-%m-%d"))
}

impl Inner {
    /// Reads log entries written since the last refresh.
    fn refresh(&self, log: &mut Log) -> Result<()> {
        loop {
            let version = log.entries.len() as u64 + 1;
            let path = self.root.join(LOG_DIR).join(log_file_name(version));
            let text = match std::fs::read(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let entry: LogEntry = serde_json::from_slice(&text).map_err(|e| {
                StorageError::InvalidData(format!("commit log entry {} is damaged: {e}", path.display()))
            })?;
            if entry.version != version {
                return Err(StorageError::InvalidData(format!(
                    "commit log entry {} says it is version {}",
                    path.display(),
                    entry.version
                )));
            }
            log.entries.push(entry);
        }
    }

    /// Where a logged file is now: in place, still staged, or moved aside by a later commit.
    fn locate(&self, rel: &str) -> Option<PathBuf> {
        [self.root.join(rel), self.root.join(STAGING_DIR).join(rel), self.root.join(REMOVED_DIR).join(rel)]
            .into_iter()
            .find(|p| p.exists())
    }

    fn read_file(&self, file: &FileEntry) -> Result<Vec<RecordBatch>> {
        let path = self.locate(&file.path).ok_or_else(|| {
            StorageError::InvalidData(format!("data file {} of the commit log is missing", file.path))
        })?;
        let bytes = std::fs::read(&path)?;
        if bytes.len() as u64 != file.bytes {
            return Err(StorageError::InvalidData(format!(
                "data file {} has {} bytes, the commit log says {}",
                path.display(),
                bytes.len(),
                file.bytes
            )));
        }
        // Rows of the table's current schema: files written before a column was added read it
        // as null (columns matched by field id).
        let kind = if file.path.starts_with(&format!("{}/", TableKind::Series.name())) {
            TableKind::Series
        } else {
            TableKind::DataPoints
        };
        let schema = vintagelake_storage::evolve::current_schema(kind);
        vintagelake_storage::files::decode_parquet(Bytes::from(bytes), None)
            .and_then(|batches| batches.iter().map(|b| vintagelake_storage::evolve::conform_to(&schema, b)).collect())
            .map_err(|e| StorageError::InvalidData(format!("reading {}: {e}", path.display())))
    }

    /// Writes rows to a new staged file, sorted by the table's key.
    fn write_files(&self, kind: TableKind, batches: &[RecordBatch]) -> Result<Vec<FileEntry>> {
        let Some(first) = batches.first() else { return Ok(Vec::new()) };
        let batch = concat_batches(&first.schema(), batches)?;
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let schema = match kind {
            TableKind::DataPoints => data_points_table_schema(),
            TableKind::Series => series_table_schema(),
        };
        vintagelake_storage::write::check_schema(&schema, &batch)?;
        let batch = RecordBatch::try_new(schema, batch.columns().to_vec())?;
        let rows = sort_batch(kind, &batch)?;
        // One file per write: data-point files go under the day of the commit, series files flat.
        let dir = match kind {
            TableKind::DataPoints => format!("{}/", commit_date_dir()),
            TableKind::Series => String::new(),
        };
        let rel = format!("{}/{dir}part-{}.parquet", kind.name(), uuid::Uuid::now_v7().simple());
        let mut buf = Vec::new();
        let mut writer = ArrowWriter::try_new(
            &mut buf,
            rows.schema(),
            Some(writer_properties(Encoding::Settled.default_zstd_level(), None)),
        )
        .map_err(|e| StorageError::InvalidData(format!("parquet writer: {e}")))?;
        writer.write(&rows).map_err(|e| StorageError::InvalidData(format!("parquet write: {e}")))?;
        writer.close().map_err(|e| StorageError::InvalidData(format!("parquet close: {e}")))?;
        let path = self.root.join(STAGING_DIR).join(&rel);
        let parent = path.parent().expect("file in a directory");
        std::fs::create_dir_all(parent)?;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        let (min_key, max_key, min_date, max_date) = bounds(kind, &rows)?;
        Ok(vec![FileEntry {
            path: rel,
            rows: rows.num_rows() as u64,
            bytes: buf.len() as u64,
            sha256: format!("{:x}", Sha256::digest(&buf)),
            min_key,
            max_key,
            min_date,
            max_date,
        }])
    }

    /// Appends the next log entry: validates against the latest version, links the entry into
    /// place (fails if another writer took that version: re-read and retry), then applies it.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        kind: TableKind,
        commit_kind: CommitKind,
        added: &[FileEntry],
        remove: Vec<String>,
        offsets: Vec<OffsetUpdate>,
        origin: String,
        summary: BTreeMap<String, String>,
        arrivals: Option<vintagelake_storage::arrivals::ArrivalRange>,
    ) -> Result<Committed> {
        let table = kind.name();
        if added.is_empty() && remove.is_empty() && offsets.is_empty() {
            return Err(StorageError::EmptyCommit { table: table.to_owned() });
        }
        if commit_kind == CommitKind::Append && !remove.is_empty() {
            return Err(StorageError::InvalidData(format!("append to {table} cannot remove files")));
        }
        let log_dir = self.root.join(LOG_DIR);
        let mut log = self.log.lock().expect("log lock");
        for attempt in 1..=MAX_ATTEMPTS {
            self.refresh(&mut log)?;
            let live = log.live(kind, None);
            let live_paths: HashSet<&str> = live.iter().map(|f| f.path.as_str()).collect();
            if let Some(p) = remove.iter().find(|p| !live_paths.contains(p.as_str())) {
                return Err(StorageError::FileNotLive { table: table.to_owned(), path: p.clone() });
            }
            vintagelake_storage::commit::check_positions(&log.offsets(kind, None), &offsets)?;
            let mark = log.arrival_mark(kind);
            if let Some(a) = arrivals
                && mark != a.expected
            {
                return Err(StorageError::ArrivalsMoved { table: table.to_owned(), expected: a.expected, found: mark });
            }
            let mut summary = summary.clone();
            if let Some(m) = arrivals.map(|a| a.last).or(mark) {
                summary.insert(vintagelake_storage::arrivals::SUMMARY_ARRIVALS.to_owned(), m.to_string());
            }
            let removed_records: u64 = live.iter().filter(|f| remove.contains(&f.path)).map(|f| f.rows).sum();
            let version = log.entries.len() as u64 + 1;
            let entry = LogEntry {
                version,
                timestamp_ms: chrono::Utc::now().timestamp_millis(),
                table: table.to_owned(),
                operation: operation_name(commit_kind).to_owned(),
                origin: origin.clone(),
                add: added.to_vec(),
                remove: remove.clone(),
                offsets: offsets
                    .iter()
                    .map(|o| LoggedOffset { topic: o.topic.clone(), partition: o.partition, next: o.next })
                    .collect(),
                summary,
            };
            let tmp = log_dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
            let bytes = serde_json::to_vec_pretty(&entry).expect("log entries serialise");
            {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
            }
            let target = log_dir.join(log_file_name(version));
            let mut linked = std::fs::hard_link(&tmp, &target);
            let _ = std::fs::remove_file(&tmp);
            if let Err(e) = &linked
                && e.kind() != std::io::ErrorKind::AlreadyExists
                && std::fs::read(&target).is_ok_and(|b| b == bytes)
            {
                // The link was made and then reported failed (a network file system): it is ours.
                linked = Ok(());
            }
            match linked {
                Ok(()) => {
                    // Committed: the log holds this version. Nothing it names may be deleted now,
                    // whatever fails below.
                    log.entries.push(entry.clone());
                    let settled = fsync_dir(&log_dir).and_then(|()| {
                        vintagelake_runtime::failpoint::hit("v1-after-log");
                        self.apply(&entry)
                    });
                    if let Err(e) = settled {
                        return Err(StorageError::CommitOutcomeUnknown {
                            table: table.to_owned(),
                            metadata_location: target.to_string_lossy().into_owned(),
                            reason: format!("log version {version} was written, then: {e}"),
                        });
                    }
                    return Ok(Committed {
                        snapshot_id: version as i64,
                        sequence_number: version as i64,
                        metadata_location: target.to_string_lossy().into_owned(),
                        attempts: attempt,
                        added_files: added.len(),
                        removed_files: remove.len(),
                        added_records: added.iter().map(|f| f.rows).sum(),
                        removed_records,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Another writer committed this version: re-validate against it.
                    std::thread::sleep(std::time::Duration::from_millis(rand::random_range(1..10)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StorageError::TooManyConflicts {
            table: table.to_owned(),
            attempts: MAX_ATTEMPTS,
            last: "another writer took every version".into(),
        })
    }

    /// Moves a committed entry's files where the glob readers expect them. Idempotent.
    fn apply(&self, entry: &LogEntry) -> Result<()> {
        for f in &entry.add {
            let staged = self.root.join(STAGING_DIR).join(&f.path);
            if staged.exists() {
                let target = self.root.join(&f.path);
                std::fs::create_dir_all(target.parent().expect("file in a directory"))?;
                std::fs::rename(&staged, &target)?;
            }
        }
        for rel in &entry.remove {
            let current = self.root.join(rel);
            if current.exists() {
                let aside = self.root.join(REMOVED_DIR).join(rel);
                std::fs::create_dir_all(aside.parent().expect("file in a directory"))?;
                std::fs::rename(&current, &aside)?;
            }
        }
        Ok(())
    }

    /// Finishes the apply step of every committed entry (after a crash between commit and apply).
    fn roll_forward(&self, log: &Log) -> Result<()> {
        for e in &log.entries {
            self.apply(e)?;
        }
        Ok(())
    }
}

/// Key and date bounds of a sorted file's rows.
fn bounds(kind: TableKind, rows: &RecordBatch) -> Result<(String, String, Option<i32>, Option<i32>)> {
    let key = match kind {
        TableKind::DataPoints => col::SERIES_ID,
        TableKind::Series => col::ID,
    };
    let keys = rows.column_by_name(key).ok_or_else(|| StorageError::InvalidData(format!("rows lack {key}")))?;
    let keys = keys.as_string::<i32>();
    let min_key = arrow::compute::min_string(keys).unwrap_or_default().to_owned();
    let max_key = arrow::compute::max_string(keys).unwrap_or_default().to_owned();
    let (min_date, max_date) = match rows.column_by_name(col::DATE) {
        Some(d) if kind == TableKind::DataPoints => {
            let d = d.as_primitive::<Date32Type>();
            (arrow::compute::min(d), arrow::compute::max(d))
        }
        _ => (None, None),
    };
    Ok((min_key, max_key, min_date, max_date))
}

/// Whether a file can hold rows the query asks for (series and date bounds).
fn may_match(file: &FileEntry, query: &VintageQuery) -> bool {
    query.may_read(&FileBounds {
        series: (Some(file.min_key.as_str()), Some(file.max_key.as_str())),
        dates: (file.min_date, file.max_date),
    })
}

#[async_trait]
impl FinancialDataStorage for ParquetStore {
    async fn append_series_rows(&self, rows: &[(EconomicSeries, i64)]) -> Result<()> {
        self.group.append_to(self, TableKind::Series, stored_series_to_batch(rows)?).await.map(|_| ())
    }

    async fn append_revision_rows(&self, rows: &[StoredDataPoint]) -> Result<()> {
        self.group.append_to(self, TableKind::DataPoints, stored_data_points_to_batch(rows)?).await.map(|_| ())
    }

    async fn series_rows(&self, only: Option<&SeriesId>) -> Result<Vec<(EconomicSeries, i64)>> {
        self.read_series_rows(only).await
    }

    fn next_seq(&self, n: usize) -> i64 {
        self.seq.next(n)
    }

    async fn query(&self, query: &VintageQuery) -> Result<RecordBatch> {
        let i = self.inner.clone();
        let selector = query.snapshot;
        let files = blocking(move || {
            let mut log = i.log.lock().expect("log lock");
            i.refresh(&mut log)?;
            let version = log.version_for(selector)?;
            Ok(log.live(TableKind::DataPoints, Some(version)))
        })
        .await?;
        let files: Vec<FileEntry> = files.into_iter().filter(|f| may_match(f, query)).collect();
        let rows = self.read_files(&files).await?;
        resolve(query, &rows)
    }
}

/// The query service reads V1 through the same interface as the Iceberg tables: versions are
/// log versions (time travel by version or by time), planning prunes by the log's file bounds.
#[async_trait]
impl ViewSource for ParquetStore {
    fn backend(&self) -> &'static str {
        "parquet"
    }

    async fn version(&self, selector: SnapshotSelector) -> Result<Option<i64>> {
        Ok(self.live_at(selector, TableKind::DataPoints).await?.0)
    }

    async fn answer(&self, query: &VintageQuery) -> Result<(RecordBatch, Option<i64>)> {
        let version = ViewSource::version(self, query.snapshot).await?;
        let pinned = query.clone().at_snapshot(version.map_or(SnapshotSelector::Current, SnapshotSelector::Id));
        Ok((FinancialDataStorage::query(self, &pinned).await?, version))
    }

    async fn explain(&self, query: &VintageQuery) -> Result<Explain> {
        let (version, files) = self.live_at(query.snapshot, TableKind::DataPoints).await?;
        Ok(Explain {
            snapshot_id: version,
            files_total: files.len(),
            files_planned: files.iter().filter(|f| may_match(f, query)).count(),
            predicate: version.and(query.predicate()).map(|p| p.to_string()),
        })
    }

    async fn series_version(&self) -> Result<String> {
        Ok(self.live_at(SnapshotSelector::Current, TableKind::Series).await?.0.unwrap_or(0).to_string())
    }

    async fn series_catalogue(&self) -> Result<Vec<EconomicSeries>> {
        self.list_series().await
    }
}

impl ParquetStore {
    /// The log version `selector` names (`None` before the first commit) and `kind`'s live files there.
    async fn live_at(&self, selector: SnapshotSelector, kind: TableKind) -> Result<(Option<i64>, Vec<FileEntry>)> {
        let i = self.inner.clone();
        blocking(move || {
            let mut log = i.log.lock().expect("log lock");
            i.refresh(&mut log)?;
            let version = log.version_for(selector)?;
            Ok(((version > 0).then_some(version as i64), log.live(kind, Some(version))))
        })
        .await
    }
}

#[async_trait]
impl IngestTarget for ParquetStore {
    async fn append(
        &self,
        kind: TableKind,
        batches: &[RecordBatch],
        offsets: Vec<OffsetUpdate>,
        origin: &str,
    ) -> Result<Committed> {
        ParquetStore::append(self, kind, batches, offsets, origin).await
    }

    async fn recorded_offsets(&self, kind: TableKind) -> Result<BTreeMap<(String, i32), i64>> {
        let i = self.inner.clone();
        blocking(move || {
            let mut log = i.log.lock().expect("log lock");
            i.refresh(&mut log)?;
            Ok(log.offsets(kind, None))
        })
        .await
    }

    async fn probe(&self) -> Result<String> {
        let i = self.inner.clone();
        blocking(move || {
            let mut log = i.log.lock().expect("log lock");
            i.refresh(&mut log)?;
            let probe = i.root.join(LOG_DIR).join(format!(".probe-{}", uuid::Uuid::new_v4().simple()));
            std::fs::write(&probe, b"ok")?;
            std::fs::remove_file(&probe)?;
            Ok(format!("commit log at version {}, writable", log.entries.len()))
        })
        .await
    }

    fn describe(&self) -> String {
        format!("parquet store at {}", self.inner.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vintagelake_storage::scan::View;
    use vintagelake_testkit::fixtures::grid;

    fn batch(rows: &[StoredDataPoint]) -> RecordBatch {
        stored_data_points_to_batch(rows).unwrap()
    }

    #[tokio::test]
    async fn a_write_is_one_file_under_its_commit_date_and_the_log_lists_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ParquetStore::open(dir.path()).await.unwrap();
        let rows = grid("S", 0..3, 4, 2);
        let c = store.append(TableKind::DataPoints, &[batch(&rows)], Vec::new(), "test").await.unwrap();
        assert_eq!(c.snapshot_id, 1);
        assert_eq!(c.added_records, rows.len() as u64);
        let live = store.live_files(TableKind::DataPoints, None).await.unwrap();
        assert_eq!(live.len(), 1, "rows of many revision months, one file: {live:?}");
        assert_eq!(live[0].rows, rows.len() as u64);
        let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
        for f in &live {
            assert!(f.path.starts_with(&format!("data_points/commit_date={day}/part-")), "{}", f.path);
            let on_disk = std::fs::read(dir.path().join(&f.path)).unwrap();
            assert_eq!(format!("{:x}", Sha256::digest(&on_disk)), f.sha256, "{}", f.path);
        }
        assert!(walk(&dir.path().join(STAGING_DIR)).unwrap().is_empty(), "everything applied");
        assert!(dir.path().join(LOG_DIR).join(log_file_name(1)).exists());
    }

    /// A store whose files predate schema version 2 (no `status`, `comment` in them) reads them
    /// with those columns null, and newer files with their values: no file is rewritten.
    #[tokio::test]
    async fn files_written_before_a_column_existed_read_it_as_null() {
        use arrow::array::Array;
        let dir = tempfile::tempdir().unwrap();
        let store = ParquetStore::open(dir.path()).await.unwrap();
        let old_rows = grid("S", 0..2, 3, 2);
        store.append(TableKind::DataPoints, &[batch(&old_rows)], Vec::new(), "test").await.unwrap();
        // Make the file what a build of schema version 1 wrote: its first ten columns only.
        let file = store.live_files(TableKind::DataPoints, None).await.unwrap().remove(0);
        let path = dir.path().join(&file.path);
        let written =
            vintagelake_storage::files::decode_parquet(Bytes::from(std::fs::read(&path).unwrap()), None).unwrap();
        let v1 = vintagelake_schemas::table::data_points_schema_at(1);
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, v1.clone(), None).unwrap();
        for b in &written {
            w.write(&RecordBatch::try_new(v1.clone(), b.columns()[..10].to_vec()).unwrap()).unwrap();
        }
        w.close().unwrap();
        std::fs::write(&path, &buf).unwrap();
        let log = dir.path().join(LOG_DIR).join(log_file_name(1));
        let mut entry: LogEntry = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
        entry.add[0].bytes = buf.len() as u64;
        entry.add[0].sha256 = format!("{:x}", Sha256::digest(&buf));
        std::fs::write(&log, serde_json::to_vec(&entry).unwrap()).unwrap();

        let mut new_rows = grid("T", 0..1, 2, 1);
        new_rows[0].status = Some("P".into());
        new_rows[1].comment = Some("estimated".into());
        store.append(TableKind::DataPoints, &[batch(&new_rows)], Vec::new(), "test").await.unwrap();
        let reopened = ParquetStore::open(dir.path()).await.unwrap();
        let all = reopened.query(&VintageQuery::new(View::AllRevisions)).await.unwrap();
        assert_eq!(all.num_rows(), old_rows.len() + new_rows.len());
        let series = all.column_by_name("series_id").unwrap().as_string::<i32>();
        let status = all.column_by_name("status").unwrap().as_string::<i32>();
        let comment = all.column_by_name("comment").unwrap().as_string::<i32>();
        for i in 0..all.num_rows() {
            if series.value(i).starts_with('S') {
                assert!(status.is_null(i) && comment.is_null(i), "row {i} of a version-1 file");
            }
        }
        let notes: Vec<(Option<&str>, Option<&str>)> = (0..all.num_rows())
            .filter(|&i| series.value(i).starts_with('T'))
            .map(|i| (status.is_valid(i).then(|| status.value(i)), comment.is_valid(i).then(|| comment.value(i))))
            .collect();
        assert_eq!(notes, [(Some("P"), None), (None, Some("estimated"))]);
    }

    #[tokio::test]
    async fn a_second_writer_on_the_same_directory_sees_and_respects_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let a = ParquetStore::open(dir.path()).await.unwrap();
        let b = ParquetStore::open(dir.path()).await.unwrap();
        let offsets = |expected, next| vec![OffsetUpdate { topic: "t".into(), partition: 0, expected, next }];
        a.append(TableKind::DataPoints, &[batch(&grid("A", 0..1, 2, 1))], offsets(None, 10), "a").await.unwrap();
        // b started from the same position: fenced, and its staged file is gone.
        let err =
            b.append(TableKind::DataPoints, &[batch(&grid("B", 0..1, 2, 1))], offsets(None, 5), "b").await.unwrap_err();
        assert!(matches!(err, StorageError::Fenced { found: Some(10), .. }), "{err}");
        assert!(walk(&dir.path().join(STAGING_DIR)).unwrap().is_empty());
        let c = b.append(TableKind::DataPoints, &[batch(&grid("B", 0..1, 2, 1))], offsets(Some(10), 12), "b").await;
        assert_eq!(c.unwrap().snapshot_id, 2, "b re-read the log and took the next version");
        assert_eq!(IngestTarget::recorded_offsets(&a, TableKind::DataPoints).await.unwrap()[&("t".into(), 0)], 12);
        assert!(IngestTarget::recorded_offsets(&a, TableKind::Series).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_commit_that_crashed_before_its_apply_step_is_rolled_forward_and_readable_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let store = ParquetStore::open(dir.path()).await.unwrap();
        let rows = grid("S", 0..2, 3, 1);
        store.append(TableKind::DataPoints, &[batch(&rows)], Vec::new(), "test").await.unwrap();
        // Undo the apply step, as if the writer died right after linking the log entry.
        let live = store.live_files(TableKind::DataPoints, None).await.unwrap();
        for f in &live {
            let staged = dir.path().join(STAGING_DIR).join(&f.path);
            std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
            std::fs::rename(dir.path().join(&f.path), &staged).unwrap();
        }
        let q = VintageQuery::new(View::AllRevisions);
        assert_eq!(store.query(&q).await.unwrap().num_rows(), rows.len(), "readers find staged files");
        let reopened = ParquetStore::open(dir.path()).await.unwrap();
        for f in &live {
            assert!(dir.path().join(&f.path).exists(), "{} rolled forward", f.path);
        }
        assert_eq!(reopened.query(&q).await.unwrap().num_rows(), rows.len());
    }

    #[tokio::test]
    async fn rewrite_replaces_files_atomically_and_old_versions_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = ParquetStore::open(dir.path()).await.unwrap();
        for s in 0..3 {
            store.append(TableKind::DataPoints, &[batch(&grid("S", s..s + 1, 3, 2))], Vec::new(), "t").await.unwrap();
        }
        let live = store.live_files(TableKind::DataPoints, None).await.unwrap();
        let all = store.read_files(&live).await.unwrap();
        let paths: Vec<String> = live.iter().map(|f| f.path.clone()).collect();
        assert_eq!(paths.len(), 3, "one file per append: {paths:?}");
        let c = store
            .rewrite(TableKind::DataPoints, paths.clone(), &all, CommitKind::Replace, "compaction", BTreeMap::new())
            .await
            .unwrap();
        assert_eq!((c.removed_records, c.added_records), (18, 18));
        for p in &paths {
            assert!(!dir.path().join(p).exists(), "{p} moved out of the glob");
            assert!(dir.path().join(REMOVED_DIR).join(p).exists(), "{p} kept for old versions");
        }
        let q = |v| VintageQuery::new(View::AllRevisions).at_snapshot(SnapshotSelector::Id(v));
        assert_eq!(store.query(&q(3)).await.unwrap().num_rows(), 18);
        assert_eq!(store.query(&q(3)).await.unwrap(), store.query(&q(4)).await.unwrap());
        // Removing a file that is no longer live fails and changes nothing.
        let err = store
            .rewrite(TableKind::DataPoints, paths, &all, CommitKind::Replace, "compaction", BTreeMap::new())
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::FileNotLive { .. }), "{err}");
        assert_eq!(store.version().await.unwrap(), 4);
        // Old versions stay readable for the grace period, then their files go.
        assert_eq!(store.vacuum(std::time::Duration::from_secs(3600)).await.unwrap(), 0);
        assert_eq!(store.query(&q(3)).await.unwrap(), store.query(&q(4)).await.unwrap());
        assert_eq!(store.vacuum(std::time::Duration::ZERO).await.unwrap(), live.len());
        let after = store.query(&q(3)).await;
        assert!(matches!(after, Err(StorageError::InvalidData(_))), "vacuumed: {after:?}");
    }

    #[tokio::test]
    async fn a_damaged_log_entry_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ParquetStore::open(dir.path()).await.unwrap();
        store.append(TableKind::DataPoints, &[batch(&grid("S", 0..1, 1, 1))], Vec::new(), "t").await.unwrap();
        std::fs::write(dir.path().join(LOG_DIR).join(log_file_name(2)), b"{\"version\": 2, \"tab").unwrap();
        let err = ParquetStore::open(dir.path()).await.unwrap_err().to_string();
        assert!(err.contains("00000000000000000002.json") && err.contains("damaged"), "{err}");
    }
}
