//! The data files of a snapshot, where they live, and reading one back.

use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::{self, StreamExt};
use iceberg::spec::{DataFile, Literal, PrimitiveLiteral};
use iceberg::table::Table;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::catalog::Warehouse;
use crate::config::TierName;
use crate::error::{Result, StorageError};

/// A data file referenced by a snapshot.
#[derive(Debug, Clone)]
pub struct LiveFile {
    pub path: String,
    pub records: u64,
    pub size_bytes: u64,
    /// The partition value, rendered (`realtime_end_month=654`, `realtime_end_month=null`, or empty).
    pub partition: String,
    /// For `data_points`: months since 1970-01 of `realtime_end`; `None` = current rows.
    pub realtime_end_month: Option<i32>,
    pub tier: Option<TierName>,
    /// Snapshot that added the file.
    pub added_snapshot_id: Option<i64>,
    pub data_file: DataFile,
}

impl LiveFile {
    /// Whether the file's bounds admit a row of any of `keys` (`(series_id, date)`, sorted
    /// ascending): only the keys within its `series_id` range are tried.
    pub fn may_hold_any<S: AsRef<str>>(&self, keys: &[(S, i32)]) -> bool {
        let bounds = self.bounds();
        let lo = keys.partition_point(|(s, _)| bounds.series.0.is_some_and(|lo| s.as_ref() < lo));
        // A truncated upper bound is a prefix of the values it stands for.
        let hi = bounds.series.1.map(|s| format!("{s}{}", char::MAX));
        keys[lo..]
            .iter()
            .take_while(|(s, _)| hi.as_deref().is_none_or(|hi| s.as_ref() <= hi))
            .any(|(s, d)| bounds.admits(Some(s.as_ref()), Some(*d), Some(*d)))
    }

    /// Whether the file's column bounds admit a row of `series` on `date` (days since the epoch);
    /// a file without bounds may hold anything.
    pub fn may_hold(&self, series: &str, date: i32) -> bool {
        self.bounds().admits(Some(series), Some(date), Some(date))
    }

    /// The file's `series_id` and `date` bounds from its manifest entry.
    pub fn bounds(&self) -> crate::scan::FileBounds<'_> {
        use vintagelake_schemas::table::data_points_ids as field;
        let df = &self.data_file;
        crate::scan::FileBounds {
            series: (text_bound(df.lower_bounds(), field::SERIES_ID), text_bound(df.upper_bounds(), field::SERIES_ID)),
            dates: (day_bound(df.lower_bounds(), field::DATE), day_bound(df.upper_bounds(), field::DATE)),
        }
    }

    /// Whether a query may need rows of this file: its partition (the view's condition on
    /// `realtime_end`, as the query's predicate states it) and its series and date bounds.
    pub fn may_match(&self, query: &crate::scan::VintageQuery) -> bool {
        use crate::scan::View;
        let partition_ok = match query.view {
            View::Latest => self.realtime_end_month.is_none(),
            // Rows current at t end on or after t: a file whose rows all ended in an earlier month
            // holds none of them.
            View::AsOf(t) => self.realtime_end_month.is_none_or(|m| m >= crate::write::month_of(t.days_since_epoch())),
            View::FirstRelease | View::AllRevisions => true,
        };
        partition_ok && query.may_read(&self.bounds())
    }
}

fn text_bound(bounds: &std::collections::HashMap<i32, iceberg::spec::Datum>, field: i32) -> Option<&str> {
    match bounds.get(&field).map(|d| d.literal()) {
        Some(PrimitiveLiteral::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn day_bound(bounds: &std::collections::HashMap<i32, iceberg::spec::Datum>, field: i32) -> Option<i32> {
    match bounds.get(&field).map(|d| d.literal()) {
        Some(PrimitiveLiteral::Int(d)) => Some(*d),
        _ => None,
    }
}

/// Whether a current-partition file holds open revisions compaction wrote (each key's newest),
/// rather than rows appended since: from the file's name, or — for files named before names said
/// so — from the snapshot that added it, while that snapshot is retained.
pub fn written_by_compaction(table: &Table, f: &LiveFile) -> bool {
    crate::write::written_by_rewrite(&f.path).unwrap_or_else(|| {
        f.added_snapshot_id
            .and_then(|id| table.metadata().snapshot_by_id(id))
            .and_then(|s| s.summary().additional_properties.get(crate::commit::SUMMARY_OPERATION).cloned())
            .is_some_and(|origin| origin == "compaction")
    })
}

/// The keys of the current partition whose closed rows a backfill awaits compaction for
/// ([`crate::scan::backfilled_keys`]), reading the current files.
pub async fn backfilled_keys_of_table(
    wh: &Warehouse,
    table: &Table,
    files: &[LiveFile],
    concurrency: usize,
) -> Result<std::collections::HashSet<crate::scan::SeriesDate>> {
    let (open, arrived): (Vec<&LiveFile>, Vec<&LiveFile>) =
        files.iter().filter(|f| f.realtime_end_month.is_none()).partition(|f| written_by_compaction(table, f));
    let paths = |fs: &[&LiveFile]| fs.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
    if arrived.is_empty() {
        return Ok(Default::default());
    }
    let open = read_data_files(wh, &paths(&open), concurrency).await?;
    let arrived = read_data_files(wh, &paths(&arrived), concurrency).await?;
    crate::scan::backfilled_keys(&open, &arrived)
}

/// Every live data file of the current snapshot (or of `snapshot_id`).
pub async fn live_files(wh: &Warehouse, table: &Table, snapshot_id: Option<i64>) -> Result<Vec<LiveFile>> {
    let Some(list) = manifest_list(table, snapshot_id).await? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for mf in list.entries() {
        out.extend(manifest_live_files(wh, table, mf).await?);
    }
    Ok(out)
}

/// The manifest list of the current snapshot (or of `snapshot_id`); `None` for an empty table.
pub async fn manifest_list(table: &Table, snapshot_id: Option<i64>) -> Result<Option<iceberg::spec::ManifestList>> {
    let meta = table.metadata();
    let snapshot = match snapshot_id {
        Some(id) => meta.snapshot_by_id(id).cloned().ok_or(StorageError::NoSuchSnapshot(id))?,
        None => match meta.current_snapshot() {
            Some(s) => s.clone(),
            None => return Ok(None),
        },
    };
    Ok(Some(table.manifest_list_reader(&snapshot).load().await?))
}

/// The live data files one manifest lists. A manifest never changes once written, so a reader
/// may keep what this returns by the manifest's path.
pub async fn manifest_live_files(
    wh: &Warehouse,
    table: &Table,
    mf: &iceberg::spec::ManifestFile,
) -> Result<Vec<LiveFile>> {
    let spec = table.metadata().default_partition_spec();
    let field_names: Vec<String> = spec.fields().iter().map(|f| f.name.clone()).collect();
    let manifest = mf.load_manifest(table.file_io()).await?;
    let mut out = Vec::new();
    for e in manifest.entries().iter().filter(|e| e.is_alive()) {
        let df = e.data_file();
        let values: Vec<Option<i32>> = df
            .partition()
            .iter()
            .map(|v| match v {
                Some(Literal::Primitive(PrimitiveLiteral::Int(m))) => Some(*m),
                _ => None,
            })
            .collect();
        let partition = field_names
            .iter()
            .zip(&values)
            .map(|(n, v)| format!("{n}={}", v.map_or("null".to_owned(), |m| m.to_string())))
            .collect::<Vec<_>>()
            .join("/");
        out.push(LiveFile {
            path: df.file_path().to_owned(),
            records: df.record_count(),
            size_bytes: df.file_size_in_bytes(),
            partition,
            realtime_end_month: values.first().copied().flatten(),
            tier: wh.router().tier_of(df.file_path()).cloned(),
            added_snapshot_id: e.snapshot_id(),
            data_file: df.clone(),
        });
    }
    Ok(out)
}

/// Reads one `data_points` data file completely, as rows of the table's rows schema
/// ([`Warehouse::rows_schema`]: ours, then columns other engines added; matched by field id,
/// columns the file predates null: see [`crate::evolve::conform_to`]). An unreadable file is an
/// error naming it.
pub async fn read_data_file(wh: &Warehouse, path: &str) -> Result<Vec<arrow::array::RecordBatch>> {
    let schema = wh.rows_schema(crate::catalog::TableKind::DataPoints);
    read_file_as(wh.file_io(), path, schema, wh.decryption()).await
}

/// Reads one data file of any table completely (encrypted ones with `keys`), conformed to
/// `schema` ([`crate::evolve::conform_to`]). An unreadable file is an error naming it.
pub async fn read_file_as(
    file_io: &iceberg::io::FileIO,
    path: &str,
    schema: arrow::datatypes::SchemaRef,
    keys: Option<crate::crypto::DecryptionKeys>,
) -> Result<Vec<arrow::array::RecordBatch>> {
    let bytes = fetch(file_io, path).await?;
    decode_conformed(path, bytes, schema, keys).await
}

async fn fetch(file_io: &iceberg::io::FileIO, path: &str) -> Result<Bytes> {
    file_io
        .new_input(path)?
        .read()
        .await
        .map_err(|source| StorageError::ReadFile { path: path.to_owned(), source: Box::new(source) })
}

/// Why a file cannot be decoded: an encrypted file read without keys is not damaged, so the
/// error says what it needs.
fn undecodable(path: &str, bytes: &Bytes, no_keys: bool, e: String) -> StorageError {
    let encrypted_footer = bytes.ends_with(b"PARE");
    StorageError::ReadFile {
        path: path.to_owned(),
        source: Box::new(iceberg::Error::new(
            iceberg::ErrorKind::DataInvalid,
            if encrypted_footer && no_keys {
                "the file is encrypted (Parquet modular encryption) and no encryption keys are configured \
                 (ENCRYPTION_KEYS_FILE)"
                    .to_owned()
            } else {
                format!("corrupt Parquet file: {e}")
            },
        )),
    }
}

/// Decodes a file's bytes off the async worker threads, each batch conformed to `schema`.
async fn decode_conformed(
    path: &str,
    bytes: Bytes,
    schema: arrow::datatypes::SchemaRef,
    keys: Option<crate::crypto::DecryptionKeys>,
) -> Result<Vec<arrow::array::RecordBatch>> {
    let no_keys = keys.is_none();
    let input = bytes.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        decode_parquet(input, keys)?
            .iter()
            .map(|b| crate::evolve::conform_to(&schema, b))
            .collect::<Result<Vec<_>, String>>()
    })
    .await
    .map_err(|e| StorageError::InvalidData(format!("decoding {path}: {e}")))?;
    decoded.map_err(|e| undecodable(path, &bytes, no_keys, e))
}

/// A data file read once and decoded a slice of rows at a time, so a big file need not be held
/// decoded whole (compaction folds chunks of a bounded number of rows): the file's compressed
/// bytes and the pages being decoded are what it holds.
pub struct FileRowReader {
    path: String,
    bytes: Bytes,
    no_keys: bool,
    reader: Option<parquet::arrow::arrow_reader::ParquetRecordBatchReader>,
    schema: arrow::datatypes::SchemaRef,
}

impl std::fmt::Debug for FileRowReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRowReader").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Rows a [`FileRowReader`] decodes at a time.
const READ_BATCH_ROWS: usize = 8 * 1024;

impl FileRowReader {
    /// Reads a `data_points` file and its footer.
    pub async fn open(wh: &Warehouse, path: &str) -> Result<Self> {
        let bytes = fetch(wh.file_io(), path).await?;
        let keys = wh.decryption();
        let no_keys = keys.is_none();
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes.clone(), reader_options(keys))
            .and_then(|b| b.with_batch_size(READ_BATCH_ROWS).build())
            .map_err(|e| undecodable(path, &bytes, no_keys, e.to_string()))?;
        let schema = wh.rows_schema(crate::catalog::TableKind::DataPoints);
        Ok(Self { path: path.to_owned(), bytes, no_keys, reader: Some(reader), schema })
    }

    /// The next rows, about `max_rows` of them (whole decoded batches), conformed to the table's
    /// current columns; `None` once the file is read.
    pub async fn next(&mut self, max_rows: usize) -> Result<Option<Vec<arrow::array::RecordBatch>>> {
        let Some(mut reader) = self.reader.take() else { return Ok(None) };
        let schema = self.schema.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut rows = 0;
            while rows < max_rows.max(1) {
                match reader.next() {
                    Some(Ok(batch)) => {
                        rows += batch.num_rows();
                        out.push(crate::evolve::conform_to(&schema, &batch)?);
                    }
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Ok((out, None)),
                }
            }
            Ok((out, Some(reader)))
        })
        .await
        .map_err(|e| StorageError::InvalidData(format!("decoding {}: {e}", self.path)))?;
        let (batches, reader) = decoded.map_err(|e| undecodable(&self.path, &self.bytes, self.no_keys, e))?;
        self.reader = reader;
        Ok((!batches.is_empty() || self.reader.is_some()).then_some(batches))
    }
}

/// How our files are opened: encrypted ones with `keys`.
fn reader_options(keys: Option<crate::crypto::DecryptionKeys>) -> parquet::arrow::arrow_reader::ArrowReaderOptions {
    let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new();
    match keys {
        Some(keys) => options.with_file_decryption_properties(keys),
        None => options,
    }
}

/// Decodes a whole Parquet file, encrypted ones with `keys`; the error says what is wrong with it.
pub fn decode_parquet(
    bytes: Bytes,
    keys: Option<crate::crypto::DecryptionKeys>,
) -> Result<Vec<arrow::array::RecordBatch>, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, reader_options(keys))
        .map_err(|e| e.to_string())?
        .build()
        .map_err(|e| e.to_string())?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
}

/// Reads several data files with bounded concurrency, keeping their order.
pub async fn read_data_files(
    wh: &Warehouse,
    paths: &[String],
    concurrency: usize,
) -> Result<Vec<arrow::array::RecordBatch>> {
    // Futures built by an iterator (not a stream closure) keep the result `Send` for spawned tasks.
    let reads: Vec<_> = paths.iter().map(|p| read_data_file(wh, p)).collect();
    let per_file: Vec<Vec<arrow::array::RecordBatch>> =
        stream::iter(reads).buffered(concurrency.max(1)).try_collect().await?;
    Ok(per_file.into_iter().flatten().collect())
}

/// The same data file at another location: every statistic, partition value and size kept, so a
/// commit can swap the path without reading the data.
pub fn relocated(df: &DataFile, new_path: &str) -> Result<DataFile> {
    rebuilt(df, new_path, df.key_metadata().map(<[u8]>::to_vec))
}

/// The same data file with other encryption key metadata ([`crate::crypto`]).
pub fn with_key_metadata(df: &DataFile, key_metadata: Option<Vec<u8>>) -> Result<DataFile> {
    rebuilt(df, df.file_path(), key_metadata)
}

/// The master key a live file is encrypted under (`None`: plaintext).
pub fn master_key(df: &DataFile) -> Option<String> {
    df.key_metadata().and_then(crate::crypto::master_key_of)
}

fn rebuilt(df: &DataFile, new_path: &str, key_metadata: Option<Vec<u8>>) -> Result<DataFile> {
    let mut b = iceberg::spec::DataFileBuilder::default();
    b.content(df.content_type())
        .file_path(new_path.to_owned())
        .file_format(df.file_format())
        .partition(df.partition().clone())
        .record_count(df.record_count())
        .file_size_in_bytes(df.file_size_in_bytes())
        .column_sizes(df.column_sizes().clone())
        .value_counts(df.value_counts().clone())
        .null_value_counts(df.null_value_counts().clone())
        .nan_value_counts(df.nan_value_counts().clone())
        .lower_bounds(df.lower_bounds().clone())
        .upper_bounds(df.upper_bounds().clone())
        .key_metadata(key_metadata)
        .split_offsets(df.split_offsets().map(<[i64]>::to_vec))
        .equality_ids(df.equality_ids())
        .first_row_id(df.first_row_id())
        .referenced_data_file(df.referenced_data_file())
        .content_offset(df.content_offset())
        .content_size_in_bytes(df.content_size_in_bytes());
    if let Some(order) = df.sort_order_id() {
        b.sort_order_id(order);
    }
    b.build().map_err(|e| StorageError::InvalidData(format!("relocating {}: {e}", df.file_path())))
}

/// What a verified copy checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub bytes: u64,
    /// SHA-256 of the content, hex: equal for the source and the copy read back.
    pub sha256: String,
}

/// Copies `from` to `to` (any tiers, any media) and verifies the copy by reading it back: same size,
/// same SHA-256. A copy that does not verify is deleted and reported as an error; the source is never
/// touched.
pub async fn copy_verified(wh: &Warehouse, from: &str, to: &str, expected_size: u64) -> Result<Copied> {
    use sha2::{Digest, Sha256};
    let read = |path: &str| {
        let path = path.to_owned();
        async move {
            wh.file_io()
                .new_input(&path)?
                .read()
                .await
                .map_err(|source| StorageError::ReadFile { path: path.clone(), source: Box::new(source) })
        }
    };
    let content = read(from).await?;
    if content.len() as u64 != expected_size {
        return Err(StorageError::InvalidData(format!(
            "{from} holds {} bytes, its manifest says {expected_size}: not copying a damaged file",
            content.len()
        )));
    }
    let digest = |b: &[u8]| format!("{:x}", Sha256::digest(b));
    let source_sha = digest(&content);
    wh.file_io().new_output(to)?.write(content).await?;
    let back = read(to).await?;
    let copy_sha = digest(&back);
    if back.len() as u64 != expected_size || copy_sha != source_sha {
        let _ = wh.file_io().delete(to).await;
        return Err(StorageError::InvalidData(format!(
            "copy of {from} to {to} does not verify: {} bytes sha256 {copy_sha}, expected {expected_size} bytes sha256 {source_sha}",
            back.len()
        )));
    }
    Ok(Copied { bytes: expected_size, sha256: source_sha })
}
