//! Vintage scans: latest, as of a date, first release, all revisions — with the series, date
//! and vintage predicates pushed into Iceberg scan planning (partition and file pruning by
//! statistics, row-group pruning, row filters), then resolved per `(series_id, date)`.
//!
//! Resolution ([`resolve`]) is plain Arrow over rows in the table schema, shared by every storage
//! backend, so all of them answer identically. It is correct whatever state compaction is in:
//! pruning by `realtime_end` only ever drops rows that a kept row supersedes.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Date32Array, RecordBatch, UInt32Array};
use arrow::compute::{LexicographicalComparator, SortColumn, concat_batches, take};
use arrow::datatypes::{DataType, Date32Type, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use iceberg::expr::{Predicate, Reference};
use iceberg::spec::Datum;
use iceberg::table::Table;
use vintagelake_schemas::arrow::{col, data_point_schema};
use vintagelake_schemas::table::to_seed_timestamps;
use vintagelake_schemas::{Date, SeriesId};

use crate::error::{Result, StorageError};

/// `realtime_end` of a row that is still current (ALFRED's convention).
pub const OPEN_END: Date = Date::MAX;

/// Which answer for each `(series_id, date)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The most recent revision.
    Latest,
    /// What was published on or before this date; dates with no revision by then are absent.
    AsOf(Date),
    /// The row flagged `is_original_release`, else the earliest revision.
    FirstRelease,
    /// Every revision, with the period each was current.
    AllRevisions,
}

impl View {
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    pub fn kind(&self) -> ViewName {
        match self {
            View::Latest => ViewName::Latest,
            View::AsOf(_) => ViewName::AsOf,
            View::FirstRelease => ViewName::FirstRelease,
            View::AllRevisions => ViewName::AllRevisions,
        }
    }
}

/// A view by name, without its parameters: the one place view names are spelled (tickets, the
/// CLI, metrics labels and docs use these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewName {
    Latest,
    AsOf,
    FirstRelease,
    AllRevisions,
}

impl ViewName {
    pub const ALL: [ViewName; 4] = [ViewName::Latest, ViewName::AsOf, ViewName::FirstRelease, ViewName::AllRevisions];

    pub fn as_str(self) -> &'static str {
        match self {
            ViewName::Latest => "latest",
            ViewName::AsOf => "as_of",
            ViewName::FirstRelease => "first_release",
            ViewName::AllRevisions => "all_revisions",
        }
    }

    /// The view, given the date `as_of` needs (and the others refuse).
    pub fn with_date(self, as_of: Option<Date>) -> std::result::Result<View, ViewDateError> {
        match (self, as_of) {
            (ViewName::AsOf, Some(d)) => Ok(View::AsOf(d)),
            (ViewName::AsOf, None) => Err(ViewDateError::Required),
            (_, Some(_)) => Err(ViewDateError::NotMeaningful(self)),
            (ViewName::Latest, None) => Ok(View::Latest),
            (ViewName::FirstRelease, None) => Ok(View::FirstRelease),
            (ViewName::AllRevisions, None) => Ok(View::AllRevisions),
        }
    }
}

impl std::fmt::Display for ViewName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ViewName {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        ViewName::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = ViewName::ALL.iter().map(|v| v.as_str()).collect();
            format!("unknown view {s:?} ({})", names.join(", "))
        })
    }
}

/// Why a view name and a date do not make a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ViewDateError {
    #[error("required by view as_of")]
    Required,
    #[error("only meaningful with view as_of, not {0}")]
    NotMeaningful(ViewName),
}

/// Which table state to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotSelector {
    #[default]
    Current,
    /// A snapshot id (time travel).
    Id(i64),
    /// The table as it was at this time (milliseconds since the epoch).
    AsOfTimestampMs(i64),
}

/// A read of data points.
#[derive(Debug, Clone)]
pub struct VintageQuery {
    /// Empty: every series.
    pub series: Vec<SeriesId>,
    pub start: Option<Date>,
    pub end: Option<Date>,
    pub view: View,
    pub snapshot: SnapshotSelector,
}

impl VintageQuery {
    pub fn new(view: View) -> Self {
        Self { series: Vec::new(), start: None, end: None, view, snapshot: SnapshotSelector::Current }
    }

    pub fn series(mut self, ids: impl IntoIterator<Item = SeriesId>) -> Self {
        self.series = ids.into_iter().collect();
        self
    }

    pub fn between(mut self, start: Option<Date>, end: Option<Date>) -> Self {
        self.start = start;
        self.end = end;
        self
    }

    pub fn at_snapshot(mut self, snapshot: SnapshotSelector) -> Self {
        self.snapshot = snapshot;
        self
    }

    /// The Iceberg predicate for this query (`None`: read everything).
    pub fn predicate(&self) -> Option<Predicate> {
        self.predicate_named(&|name| name.to_owned())
    }

    /// [`Self::predicate`] over a table whose columns may have other names (`named` gives the
    /// table's name of each of our columns).
    pub fn predicate_named(&self, named: &dyn Fn(&str) -> String) -> Option<Predicate> {
        let reference = |name: &str| Reference::new(named(name));
        let mut parts = Vec::new();
        if !self.series.is_empty() {
            parts.push(reference(col::SERIES_ID).is_in(self.series.iter().map(|s| Datum::string(s.as_str()))));
        }
        if let Some(s) = self.start {
            parts.push(reference(col::DATE).greater_than_or_equal_to(Datum::date(s.days_since_epoch())));
        }
        if let Some(e) = self.end {
            parts.push(reference(col::DATE).less_than_or_equal_to(Datum::date(e.days_since_epoch())));
        }
        match self.view {
            View::Latest => parts.push(reference(col::REALTIME_END).is_null()),
            View::AsOf(t) => {
                let t = t.days_since_epoch();
                parts.push(reference(col::REVISION_DATE).less_than_or_equal_to(Datum::date(t)));
                parts.push(
                    reference(col::REALTIME_END)
                        .is_null()
                        .or(reference(col::REALTIME_END).greater_than_or_equal_to(Datum::date(t))),
                );
            }
            View::FirstRelease | View::AllRevisions => {}
        }
        parts.into_iter().reduce(Predicate::and)
    }

    /// The rows of a `data_points` batch this query's predicate admits: the same conditions as
    /// [`predicate`](Self::predicate), evaluated on Arrow columns, for readers that filter rows
    /// themselves (the warm read path) and must hand `resolve` exactly what a pushed-down scan would.
    pub fn row_mask(&self, batch: &RecordBatch) -> Result<arrow::array::BooleanArray> {
        use arrow::array::Array;
        let column = |name: &str| {
            batch.column_by_name(name).ok_or_else(|| StorageError::InvalidData(format!("a data file lacks {name}")))
        };
        let series = column(col::SERIES_ID)?.as_string::<i32>();
        let dates = column(col::DATE)?.as_primitive::<Date32Type>();
        let revisions = column(col::REVISION_DATE)?.as_primitive::<Date32Type>();
        let ends = column(col::REALTIME_END)?.as_primitive::<Date32Type>();
        let wanted: std::collections::HashSet<&str> = self.series.iter().map(SeriesId::as_str).collect();
        let (start, end) = (self.start.map(|d| d.days_since_epoch()), self.end.map(|d| d.days_since_epoch()));
        let keep = |i: usize| {
            if !wanted.is_empty() && (series.is_null(i) || !wanted.contains(series.value(i))) {
                return false;
            }
            let date = dates.value(i);
            if start.is_some_and(|s| date < s) || end.is_some_and(|e| date > e) {
                return false;
            }
            match self.view {
                View::Latest => ends.is_null(i),
                View::AsOf(t) => {
                    let t = t.days_since_epoch();
                    revisions.value(i) <= t && (ends.is_null(i) || ends.value(i) >= t)
                }
                View::FirstRelease | View::AllRevisions => true,
            }
        };
        Ok((0..batch.num_rows()).map(|i| Some(keep(i))).collect())
    }

    /// Whether a file with these key bounds may hold a row of this query (planning: the Iceberg
    /// manifests' bounds, the V1 log's).
    pub fn may_read(&self, bounds: &FileBounds<'_>) -> bool {
        let (start, end) = (self.start.map(|d| d.days_since_epoch()), self.end.map(|d| d.days_since_epoch()));
        if self.series.is_empty() {
            bounds.admits(None, start, end)
        } else {
            self.series.iter().any(|s| bounds.admits(Some(s.as_str()), start, end))
        }
    }

    /// Does a resolved row belong to this query? (Used by backends without pushdown.)
    fn keeps(&self, series: &str, date: i32) -> bool {
        (self.series.is_empty() || self.series.iter().any(|s| s.as_str() == series))
            && self.start.is_none_or(|s| date >= s.days_since_epoch())
            && self.end.is_none_or(|e| date <= e.days_since_epoch())
    }
}

/// A data file's key bounds, as planning reads them from a manifest or a log: smallest and
/// largest `series_id` (the upper one may be a truncated prefix of the values it stands for, as
/// Iceberg writes long strings) and `date` (days since the epoch). `None`: unknown, anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileBounds<'a> {
    pub series: (Option<&'a str>, Option<&'a str>),
    pub dates: (Option<i32>, Option<i32>),
}

impl FileBounds<'_> {
    /// Whether a row of `series` (any when `None`) dated within `[start, end]` (open where
    /// `None`) may be in the file.
    pub fn admits(&self, series: Option<&str>, start: Option<i32>, end: Option<i32>) -> bool {
        let (lo, hi) = self.series;
        let series_ok =
            series.is_none_or(|s| lo.is_none_or(|lo| lo <= s) && hi.is_none_or(|hi| hi >= s || s.starts_with(hi)));
        let (first, last) = self.dates;
        series_ok
            && end.is_none_or(|e| first.is_none_or(|f| f <= e))
            && start.is_none_or(|s| last.is_none_or(|l| l >= s))
    }
}

/// Schema of every view: the seed's `DataPoint` columns, ALFRED's real-time period, then the
/// columns later schema versions added to revisions ([`VIEW_ADDED_COLUMNS`]).
pub fn view_schema() -> SchemaRef {
    view_schema_with(&[])
}

/// [`view_schema`] followed by `foreign` columns: those another engine added to the table,
/// passed through from the row that answers (null in rows written without them).
pub fn view_schema_with(foreign: &[Field]) -> SchemaRef {
    let mut fields: Vec<Field> = data_point_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(col::REALTIME_START, DataType::Date32, false));
    fields.push(Field::new(col::REALTIME_END, DataType::Date32, false));
    fields.extend(VIEW_ADDED_COLUMNS.iter().map(|c| Field::new(*c, DataType::Utf8, true)));
    fields.extend(
        foreign.iter().map(|f| Field::new(f.name(), f.data_type().clone(), true).with_metadata(Default::default())),
    );
    Arc::new(Schema::new(fields))
}

/// Revision columns of schema version 2, carried by every view after the real-time period (null
/// for revisions that came without them).
pub const VIEW_ADDED_COLUMNS: &[&str] = &[col::STATUS, col::COMMENT];

/// The snapshot a selector names, `None` for an empty table.
pub fn resolve_snapshot(table: &Table, selector: SnapshotSelector) -> Result<Option<i64>> {
    let meta = table.metadata();
    match selector {
        SnapshotSelector::Current => Ok(meta.current_snapshot_id()),
        SnapshotSelector::Id(id) => {
            meta.snapshot_by_id(id).map(|s| Some(s.snapshot_id())).ok_or(StorageError::NoSuchSnapshot(id))
        }
        SnapshotSelector::AsOfTimestampMs(ts) => meta
            .history()
            .iter()
            .rfind(|h| h.timestamp_ms <= ts)
            .map(|h| Some(h.snapshot_id))
            .ok_or(StorageError::NoSnapshotAtTime(ts)),
    }
}

/// The scan a query plans: its snapshot and the Iceberg scan with the query's predicate pushed
/// into planning (`None`: the table has no snapshot yet).
fn plan_scan(
    table: &Table,
    query: &VintageQuery,
    concurrency: usize,
) -> Result<Option<(i64, iceberg::scan::TableScan)>> {
    let Some(snapshot) = resolve_snapshot(table, query.snapshot)? else { return Ok(None) };
    let mut builder = table
        .scan()
        .snapshot_id(snapshot)
        .with_concurrency_limit(concurrency.max(1))
        .with_row_group_filtering_enabled(true);
    // Our columns by field id, under the names the table gives them now.
    let ours = vintagelake_schemas::table::data_points_table_schema();
    let current = table.metadata().current_schema().clone();
    let named = |name: &str| {
        ours.field_with_name(name)
            .ok()
            .and_then(crate::evolve::field_id)
            .and_then(|id| current.field_by_id(id))
            .map_or_else(|| name.to_owned(), |f| f.name.clone())
    };
    if let Some(p) = query.predicate_named(&named) {
        builder = builder.with_filter(p);
    }
    Ok(Some((snapshot, builder.build()?)))
}

/// Reads the rows a query needs (table schema), with its predicate pushed into the scan. With
/// `keys` (a warehouse with encryption at rest), the files Iceberg plans are read here —
/// Iceberg's reader does not decrypt — and their rows kept by the same predicate
/// ([`VintageQuery::row_mask`]).
pub async fn scan_rows(
    table: &Table,
    query: &VintageQuery,
    concurrency: usize,
    keys: Option<crate::crypto::DecryptionKeys>,
) -> Result<Vec<RecordBatch>> {
    let Some((_, scan)) = plan_scan(table, query, concurrency)? else { return Ok(Vec::new()) };
    // Our columns by field id, whatever the table calls them now, then the columns others added.
    let ours = crate::evolve::rows_schema(table.metadata(), crate::catalog::TableKind::DataPoints)?;
    if let Some(keys) = keys {
        let rows = read_planned(table, &scan, ours, keys, concurrency).await?;
        return rows
            .iter()
            .map(|b| Ok(arrow::compute::filter_record_batch(b, &query.row_mask(b)?)?))
            .filter(|b| !matches!(b, Ok(b) if b.num_rows() == 0))
            .collect();
    }
    let stream = scan.to_arrow().await?;
    // A file that cannot be read fails the whole scan, naming the file: never skipped silently.
    let batches: Vec<RecordBatch> = match stream.try_collect().await {
        Ok(batches) => batches,
        Err(e) => return Err(name_the_damaged_file(table, &scan, e).await),
    };
    batches
        .iter()
        .map(|b| crate::evolve::conform_to(&ours, b).map_err(|e| StorageError::InvalidData(format!("scan: {e}"))))
        .collect()
}

/// Every row of the files a scan plans (`schema`: the rows schema to conform them to), read
/// with `keys`, in planning order.
pub async fn read_planned(
    table: &Table,
    scan: &iceberg::scan::TableScan,
    schema: SchemaRef,
    keys: crate::crypto::DecryptionKeys,
    concurrency: usize,
) -> Result<Vec<RecordBatch>> {
    use futures::StreamExt;
    let tasks: Vec<_> = scan.plan_files().await?.try_collect().await?;
    let reads: Vec<_> = tasks
        .iter()
        .map(|t| crate::files::read_file_as(table.file_io(), t.data_file_path(), schema.clone(), Some(keys.clone())))
        .collect();
    let per_file: Vec<Vec<RecordBatch>> =
        futures::stream::iter(reads).buffered(concurrency.max(1)).try_collect().await?;
    Ok(per_file.into_iter().flatten().collect())
}

/// What a query would read: its snapshot, the live files and the files planning keeps
/// ([`crate::reader::TableReader::explain`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Explain {
    pub snapshot_id: Option<i64>,
    pub files_total: usize,
    pub files_planned: usize,
    pub predicate: Option<String>,
}

/// After a failed scan: finds the planned data file that does not decode and reports it by name
/// (the reader's own error does not always say which file it was reading).
async fn name_the_damaged_file(table: &Table, scan: &iceberg::scan::TableScan, error: iceberg::Error) -> StorageError {
    let Ok(tasks) = scan.plan_files().await else { return error.into() };
    let Ok(tasks) = tasks.try_collect::<Vec<_>>().await else { return error.into() };
    for task in tasks {
        let path = task.data_file_path().to_owned();
        let damaged = match table.file_io().new_input(&path) {
            Ok(input) => match input.read().await {
                Ok(bytes) => crate::files::decode_parquet(bytes, None).err(),
                Err(e) => Some(e.to_string()),
            },
            Err(e) => Some(e.to_string()),
        };
        if let Some(reason) = damaged {
            return StorageError::ReadFile {
                path,
                source: Box::new(iceberg::Error::new(iceberg::ErrorKind::DataInvalid, format!("{reason} ({error})"))),
            };
        }
    }
    error.into()
}

/// Runs a query against an Iceberg table and returns the resolved rows (view schema).
pub async fn query_table(
    table: &Table,
    query: &VintageQuery,
    concurrency: usize,
    keys: Option<crate::crypto::DecryptionKeys>,
) -> Result<RecordBatch> {
    let rows = scan_rows(table, query, concurrency, keys).await?;
    resolve(query, &rows)
}

/// Picks, for each `(series_id, date)`, the rows the view asks for, sorted by series and date.
/// `rows` are in the `data_points` table schema; rows outside the query's series/dates are dropped
/// (backends with pushdown never pass them).
pub fn resolve(query: &VintageQuery, rows: &[RecordBatch]) -> Result<RecordBatch> {
    let foreign = rows
        .first()
        .map(|b| crate::evolve::foreign_fields(&b.schema(), crate::catalog::TableKind::DataPoints))
        .unwrap_or_default();
    let schema = view_schema_with(&foreign);
    let Some(first) = rows.first() else { return Ok(RecordBatch::new_empty(schema)) };
    let batch = concat_batches(&first.schema(), rows)?;
    if batch.num_rows() == 0 {
        return Ok(RecordBatch::new_empty(schema));
    }
    let runs: Vec<usize> = rows.iter().map(RecordBatch::num_rows).collect();
    let column = |name: &str| {
        batch.column_by_name(name).cloned().ok_or_else(|| StorageError::InvalidData(format!("scan lacks {name}")))
    };
    let revision_col = column(col::REVISION_DATE)?;
    let order = vintage_order(&batch, &runs)?;
    let as_of = match query.view {
        View::AsOf(t) => Some(t.days_since_epoch()),
        _ => None,
    };
    let revision = revision_col.as_primitive::<Date32Type>();

    let mut selected: Vec<u32> = Vec::new();
    let mut flags: Vec<bool> = Vec::new();
    let mut ends: Vec<i32> = Vec::new();
    let visible = |r: usize| as_of.is_none_or(|t| revision.value(r) <= t);
    for_each_key(&batch, order.values(), visible, |s, d, group, periods| {
        if !query.keeps(s, d) {
            return;
        }
        let end_of = |k: usize| periods.end_of(revision.value(group[k].row as usize));
        let mut pick = |k: usize, end: i32| {
            selected.push(group[k].row);
            flags.push(group[k].flagged);
            ends.push(end);
        };
        let newest = group.len() - 1;
        match query.view {
            View::Latest => pick(newest, OPEN_END.days_since_epoch()),
            // The newest revision published by t, if it was still current at t: when retention
            // deleted the revision current at t, the date is absent rather than answered by an
            // older revision whose period had ended.
            View::AsOf(t) => {
                if end_of(newest) >= t.days_since_epoch() {
                    pick(newest, OPEN_END.days_since_epoch());
                }
            }
            View::FirstRelease => {
                let k = group.iter().position(|e| e.flagged).unwrap_or(0);
                pick(k, end_of(k));
            }
            View::AllRevisions => {
                for k in 0..group.len() {
                    pick(k, end_of(k));
                }
            }
        }
    })?;

    let indices = UInt32Array::from(selected);
    let seed = to_seed_timestamps(&batch)?;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in data_point_schema().fields() {
        if f.name() == col::IS_ORIGINAL_RELEASE {
            // The flag belongs to the revision: any arrival of it that was flagged.
            columns.push(Arc::new(arrow::array::BooleanArray::from(std::mem::take(&mut flags))));
            continue;
        }
        let c = seed
            .column_by_name(f.name())
            .ok_or_else(|| StorageError::InvalidData(format!("scan lacks {}", f.name())))?;
        columns.push(take(c.as_ref(), &indices, None)?);
    }
    columns.push(take(revision_col.as_ref(), &indices, None)?);
    columns.push(Arc::new(Date32Array::from(ends)));
    for name in VIEW_ADDED_COLUMNS {
        columns.push(take(column(name)?.as_ref(), &indices, None)?);
    }
    for f in &foreign {
        columns.push(take(column(f.name())?.as_ref(), &indices, None)?);
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The one order of revisions every reader and lifecycle step uses: by series, date, revision
/// date and arrival (`ingest_seq`); rows that tie on all of those (only possible across
/// partitions or writers) are ordered by their contents (created_at, updated_at, value, flag,
/// status, comment),
/// so every step picks the same row whatever order it read them in.
///
/// `runs` are the lengths of the consecutive pieces `batch` was concatenated from (the batches
/// read from data files, which are written in this order). Each piece is checked and sorted only
/// if it is out of order, pieces that continue the one before are joined, and the runs are merged
/// pairwise: about n·log₂(runs) comparisons instead of a sort's n·log₂(n). Pieces in any order
/// (or one piece of the whole batch) give the same order, only slower.
pub fn vintage_order(batch: &RecordBatch, runs: &[usize]) -> Result<UInt32Array> {
    use std::cmp::Ordering;
    let names = [
        col::SERIES_ID,
        col::DATE,
        col::REVISION_DATE,
        col::INGEST_SEQ,
        col::CREATED_AT,
        col::UPDATED_AT,
        col::VALUE,
        col::IS_ORIGINAL_RELEASE,
    ];
    let mut sort = names
        .iter()
        .map(|n| {
            let values =
                batch.column_by_name(n).cloned().ok_or_else(|| StorageError::InvalidData(format!("rows lack {n}")))?;
            Ok(SortColumn { values, options: None })
        })
        .collect::<Result<Vec<_>>>()?;
    // Status and comment break the last ties too, where the rows have them.
    sort.extend(
        VIEW_ADDED_COLUMNS
            .iter()
            .filter_map(|n| batch.column_by_name(n))
            .map(|c| SortColumn { values: c.clone(), options: None }),
    );
    let cmp = LexicographicalComparator::try_new(&sort)?;
    let before = |a: u32, b: u32| cmp.compare(a as usize, b as usize) != Ordering::Greater;
    let total = batch.num_rows();
    let mut merged: Vec<Vec<u32>> = Vec::new();
    let mut lengths = runs.to_vec();
    let covered: usize = runs.iter().sum();
    if covered < total {
        lengths.push(total - covered);
    }
    let mut start = 0usize;
    for len in lengths {
        let end = (start + len).min(total);
        if end <= start {
            continue;
        }
        let mut run: Vec<u32> = (start as u32..end as u32).collect();
        if !run.windows(2).all(|w| before(w[0], w[1])) {
            run.sort_unstable_by(|&a, &b| cmp.compare(a as usize, b as usize));
        }
        match merged.last_mut() {
            Some(prev) if before(*prev.last().expect("runs are not empty"), run[0]) => prev.extend_from_slice(&run),
            _ => merged.push(run),
        }
        start = end;
    }
    while merged.len() > 1 {
        let mut next = Vec::with_capacity(merged.len().div_ceil(2));
        let mut pending = merged.into_iter();
        while let Some(a) = pending.next() {
            next.push(match pending.next() {
                Some(b) => merge_runs(&a, &b, before),
                None => a,
            });
        }
        merged = next;
    }
    Ok(UInt32Array::from(merged.pop().unwrap_or_default()))
}

/// Two ordered runs of row indices merged into one (ties: `a`'s rows first).
fn merge_runs(a: &[u32], b: &[u32], before: impl Fn(u32, u32) -> bool) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if before(a[i], b[j]) {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Whether two arrivals of one revision carry the same value (both missing, or bit-identical) and
/// the same status and comment: the later one is an exact re-publication, not a correction. (A
/// value confirmed with a new status — provisional to final — is a correction: its row answers.)
struct SameValue {
    value: arrow::array::Float64Array,
    notes: Vec<arrow::array::StringArray>,
}

impl SameValue {
    fn of(batch: &RecordBatch) -> Result<Self> {
        let value = batch
            .column_by_name(col::VALUE)
            .and_then(|c| c.as_any().downcast_ref::<arrow::array::Float64Array>().cloned())
            .ok_or_else(|| StorageError::InvalidData("rows lack a Float64 value".into()))?;
        let notes = VIEW_ADDED_COLUMNS
            .iter()
            .filter_map(|name| batch.column_by_name(name))
            .filter_map(|c| c.as_any().downcast_ref::<arrow::array::StringArray>().cloned())
            .collect();
        Ok(Self { value, notes })
    }

    fn at(&self, a: usize, b: usize) -> bool {
        use arrow::array::Array;
        let v = &self.value;
        let same_text = |t: &arrow::array::StringArray| {
            t.is_valid(a) == t.is_valid(b) && (!t.is_valid(a) || t.value(a) == t.value(b))
        };
        v.is_valid(a) == v.is_valid(b)
            && (!v.is_valid(a) || v.value(a).to_bits() == v.value(b).to_bits())
            && self.notes.iter().all(same_text)
    }
}

/// The real-time periods of one key: every revision date known to have been published, from the
/// revisions present and from the `realtime_end` compaction stored (a stored end `e` says that a
/// revision was published on `e + 1`, even if retention has since deleted it).
#[derive(Debug, Default)]
pub(crate) struct Periods {
    known: Vec<i32>,
}

impl Periods {
    fn clear(&mut self) {
        self.known.clear();
    }

    fn add(&mut self, published: i32) {
        self.known.push(published);
    }

    fn seal(&mut self) {
        self.known.sort_unstable();
        self.known.dedup();
    }

    /// The last day `revision` was current: the day before the next revision known, else open.
    pub(crate) fn end_of(&self, revision: i32) -> i32 {
        let next = self.known.partition_point(|&k| k <= revision);
        self.known.get(next).map_or(OPEN_END.days_since_epoch(), |k| k - 1)
    }
}

/// One revision of a key as every view sees it.
#[derive(Debug, Clone, Copy)]
struct Effective {
    /// The row that answers for it: the arrival that last changed its value (an exact
    /// re-publication keeps the row it repeats, `created_at` and all).
    row: u32,
    /// Any arrival of the revision was flagged `is_original_release`: a correction published
    /// without the flag is still the original release (the flag belongs to the revision).
    flagged: bool,
}

/// The one walk over revisions used by `resolve` and compaction: rows in [`vintage_order`], per
/// `(series_id, date)` the effective revisions (oldest first) of the rows `visible` admits, and
/// their real-time periods. Returns how many exact duplicates and corrections it folded.
fn for_each_key(
    batch: &RecordBatch,
    order: &[u32],
    visible: impl Fn(usize) -> bool,
    mut each: impl FnMut(&str, i32, &[Effective], &Periods),
) -> Result<(usize, usize)> {
    use arrow::array::Array;
    let (mut duplicates, mut corrections) = (0, 0);
    let column =
        |name: &str| batch.column_by_name(name).ok_or_else(|| StorageError::InvalidData(format!("rows lack {name}")));
    let series = column(col::SERIES_ID)?.as_string::<i32>();
    let date = column(col::DATE)?.as_primitive::<Date32Type>();
    let revision = column(col::REVISION_DATE)?.as_primitive::<Date32Type>();
    let original = column(col::IS_ORIGINAL_RELEASE)?.as_boolean();
    let stored_end = batch.column_by_name(col::REALTIME_END).map(|c| c.as_primitive::<Date32Type>());
    let same = SameValue::of(batch)?;
    let mut group: Vec<Effective> = Vec::new();
    let mut periods = Periods::default();
    let mut i = 0;
    while i < order.len() {
        let head = order[i] as usize;
        let (s, d) = (series.value(head), date.value(head));
        group.clear();
        periods.clear();
        while i < order.len() {
            let r = order[i] as usize;
            if series.value(r) != s || date.value(r) != d {
                break;
            }
            i += 1;
            if !visible(r) {
                continue;
            }
            periods.add(revision.value(r));
            if let Some(e) = stored_end
                && e.is_valid(r)
            {
                periods.add(e.value(r).saturating_add(1));
            }
            match group.last_mut() {
                // Same revision date again, in arrival order: a left fold whose state is the row
                // that answers, so folding a compacted row with the arrivals since gives what
                // folding every arrival would (compaction reads every row of a key it folds).
                Some(last) if revision.value(last.row as usize) == revision.value(r) => {
                    if same.at(last.row as usize, r) {
                        duplicates += 1;
                    } else {
                        corrections += 1;
                        last.row = r as u32;
                    }
                    last.flagged |= original.value(r);
                }
                _ => group.push(Effective { row: r as u32, flagged: original.value(r) }),
            }
        }
        if !group.is_empty() {
            periods.seal();
            each(s, d, &group, &periods);
        }
    }
    Ok((duplicates, corrections))
}

/// Splits a batch into slices of at most `rows` rows (zero-copy).
pub fn chunk(batch: &RecordBatch, rows: usize) -> Vec<RecordBatch> {
    let rows = rows.max(1);
    (0..batch.num_rows()).step_by(rows).map(|o| batch.slice(o, rows.min(batch.num_rows() - o))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows cut into pieces, some in vintage order and some not: the merged order is the order
    /// one sort of the whole batch gives, key for key.
    #[test]
    fn vintage_order_of_pieces_is_the_sorted_order() {
        use arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..50 {
            let n = rng.random_range(0..400usize);
            // Pieces of sorted keys (as files are) and some shuffled ones, with ties across pieces.
            // (series, date, revision, arrival, created/updated, value, flag)
            type Key = (String, i32, i32, i64, i64, Option<f64>, bool);
            let mut keys: Vec<Key> = (0..n)
                .map(|_| {
                    let v = rng.random_bool(0.9).then(|| f64::from(rng.random_range(0..3u8)));
                    (
                        format!("S{}", rng.random_range(0..5u8)),
                        rng.random_range(0..4),
                        rng.random_range(0..3),
                        rng.random_range(0..3),
                        rng.random_range(0..2),
                        v,
                        rng.random_bool(0.5),
                    )
                })
                .collect();
            let mut lengths = Vec::new();
            let mut at = 0;
            while at < n {
                let len = rng.random_range(1..=(n - at).min(60));
                if rng.random_bool(0.8) {
                    keys[at..at + len].sort_by(|a, b| {
                        (&a.0, a.1, a.2, a.3, a.4)
                            .cmp(&(&b.0, b.1, b.2, b.3, b.4))
                            .then(a.5.map(f64::to_bits).cmp(&b.5.map(f64::to_bits)).then(a.6.cmp(&b.6)))
                    });
                }
                lengths.push(len);
                at += len;
            }
            let ts = |v: Vec<i64>| Arc::new(TimestampMicrosecondArray::from(v)) as ArrayRef;
            let schema = Arc::new(Schema::new(vec![
                Field::new(col::SERIES_ID, DataType::Utf8, false),
                Field::new(col::DATE, DataType::Date32, false),
                Field::new(col::REVISION_DATE, DataType::Date32, false),
                Field::new(col::INGEST_SEQ, DataType::Int64, false),
                Field::new(col::CREATED_AT, DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None), false),
                Field::new(col::UPDATED_AT, DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None), false),
                Field::new(col::VALUE, DataType::Float64, true),
                Field::new(col::IS_ORIGINAL_RELEASE, DataType::Boolean, false),
            ]));
            let batch = RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(keys.iter().map(|k| Some(k.0.clone())).collect::<StringArray>()),
                    Arc::new(Date32Array::from(keys.iter().map(|k| k.1).collect::<Vec<_>>())),
                    Arc::new(Date32Array::from(keys.iter().map(|k| k.2).collect::<Vec<_>>())),
                    Arc::new(Int64Array::from(keys.iter().map(|k| k.3).collect::<Vec<_>>())),
                    ts(keys.iter().map(|k| k.4).collect()),
                    ts(keys.iter().map(|k| k.4).collect()),
                    Arc::new(keys.iter().map(|k| k.5).collect::<Float64Array>()),
                    Arc::new(keys.iter().map(|k| Some(k.6)).collect::<BooleanArray>()),
                ],
            )
            .unwrap();
            let key = |i: u32| {
                let k = &keys[i as usize];
                (k.0.clone(), k.1, k.2, k.3, k.4, k.5.map(f64::to_bits), k.6)
            };
            let merged: Vec<_> = vintage_order(&batch, &lengths).unwrap().values().iter().map(|&i| key(i)).collect();
            let whole: Vec<_> = vintage_order(&batch, &[n]).unwrap().values().iter().map(|&i| key(i)).collect();
            let mut want: Vec<_> = (0..n as u32).map(key).collect();
            want.sort_by(|a, b| {
                (&a.0, a.1, a.2, a.3, a.4).cmp(&(&b.0, b.1, b.2, b.3, b.4)).then(
                    // Nulls first, as the sort options default to.
                    a.5.is_some()
                        .cmp(&b.5.is_some())
                        .then(a.5.map(f64::from_bits).partial_cmp(&b.5.map(f64::from_bits)).unwrap())
                        .then(a.6.cmp(&b.6)),
                )
            });
            assert_eq!(merged, want, "round {round}: pieces {lengths:?}");
            assert_eq!(whole, want, "round {round}: one piece");
            // Every row exactly once.
            let mut seen = vintage_order(&batch, &lengths).unwrap().values().to_vec();
            seen.sort_unstable();
            assert_eq!(seen, (0..n as u32).collect::<Vec<_>>());
        }
    }

    #[test]
    fn predicates_follow_the_view() {
        let q = VintageQuery::new(View::Latest).series(["GDPC1".parse().unwrap()]);
        let p = q.predicate().unwrap().to_string();
        assert!(p.contains("series_id IN") && p.contains("realtime_end IS NULL"), "{p}");
        let t = Date::parse_iso("2020-05-01").unwrap();
        let p = VintageQuery::new(View::AsOf(t)).predicate().unwrap().to_string();
        assert!(p.contains("revision_date <=") && p.contains("realtime_end >="), "{p}");
        assert!(VintageQuery::new(View::AllRevisions).predicate().is_none());
    }

    #[test]
    fn chunks_cover_every_row_once() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Date32, false)]));
        let b = RecordBatch::try_new(schema, vec![Arc::new(Date32Array::from((0..10).collect::<Vec<_>>()))]).unwrap();
        let sizes: Vec<usize> = chunk(&b, 4).iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, [4, 4, 2]);
    }
}

/// What [`close_periods`] did with the rows it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CloseStats {
    pub rows_in: usize,
    pub rows_out: usize,
    /// Exact duplicates of a kept row (same key, value and flag): dropped.
    pub duplicates_dropped: usize,
    /// Rows a later arrival of the same key corrected: dropped.
    pub corrections_applied: usize,
    /// Rows that got a `realtime_end` (a newer revision supersedes them).
    pub periods_closed: usize,
    /// Closed rows whose `realtime_end` moved earlier: a backfilled revision now follows them.
    pub periods_corrected: usize,
}

/// Compaction's rewrite of a set of rows (table schema). Per key the rows must be the whole key,
/// or its current rows when no arrival among them is older than its open revision (closed rows
/// then cannot change: see [`backfilled_keys`]). Per revision the fold keeps the row that last
/// changed its value (exact re-publications and corrected rows are dropped), with the flag any
/// arrival gave it; every revision but the newest gets `realtime_end` = the day before the next
/// revision known ([`Periods`]). Every view answers the same before and after.
pub fn close_periods(rows: &[RecordBatch]) -> Result<(RecordBatch, CloseStats)> {
    use arrow::array::Array;
    let Some(first) = rows.first() else {
        return Ok((
            RecordBatch::new_empty(vintagelake_schemas::table::data_points_table_schema()),
            CloseStats::default(),
        ));
    };
    let batch = concat_batches(&first.schema(), rows)?;
    let mut stats = CloseStats { rows_in: batch.num_rows(), ..Default::default() };
    let column = |name: &str| {
        batch.column_by_name(name).cloned().ok_or_else(|| StorageError::InvalidData(format!("rows lack {name}")))
    };
    let revision_col = column(col::REVISION_DATE)?;
    let end_col = column(col::REALTIME_END)?;
    let runs: Vec<usize> = rows.iter().map(RecordBatch::num_rows).collect();
    let order = vintage_order(&batch, &runs)?;
    let revision = revision_col.as_primitive::<Date32Type>();
    let stored_end = end_col.as_primitive::<Date32Type>();
    let mut keep: Vec<u32> = Vec::with_capacity(batch.num_rows());
    let mut flags: Vec<bool> = Vec::with_capacity(batch.num_rows());
    let mut ends: Vec<Option<i32>> = Vec::with_capacity(batch.num_rows());
    let (mut periods_closed, mut periods_corrected) = (0, 0);
    let (duplicates, corrections) = for_each_key(
        &batch,
        order.values(),
        |_| true,
        |_, _, group, periods| {
            for e in group {
                let r = e.row as usize;
                keep.push(e.row);
                flags.push(e.flagged);
                let end = periods.end_of(revision.value(r));
                let end = (end != OPEN_END.days_since_epoch()).then_some(end);
                match (stored_end.is_valid(r).then(|| stored_end.value(r)), end) {
                    (None, Some(_)) => periods_closed += 1,
                    (Some(before), Some(now)) if before != now => periods_corrected += 1,
                    _ => {}
                }
                ends.push(end);
            }
        },
    )?;
    stats.periods_corrected = periods_corrected;
    stats.duplicates_dropped = duplicates;
    stats.corrections_applied = corrections;
    stats.periods_closed = periods_closed;
    stats.rows_out = keep.len();
    let indices = UInt32Array::from(keep);
    let schema = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            if f.name() == col::REALTIME_END {
                Ok(Arc::new(Date32Array::from(ends.clone())) as ArrayRef)
            } else if f.name() == col::IS_ORIGINAL_RELEASE {
                Ok(Arc::new(arrow::array::BooleanArray::from(flags.clone())) as ArrayRef)
            } else {
                Ok(take(c.as_ref(), &indices, None)?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((RecordBatch::try_new(schema, columns)?, stats))
}

/// A `(series_id, date)` key, the date in days since the epoch.
pub type SeriesDate = (String, i32);

/// The keys whose closed rows arrivals may change. `open` are current rows compaction wrote (each
/// key's open revision), `arrived` the rows appended since. An arrival older than its key's open
/// revision is a backfill, or a re-publication or correction of a closed revision: it may shorten
/// a stored `realtime_end` or fold into a closed row, so compaction reads that key's closed rows
/// too. Arrivals at or after the open revision change no closed row (every stored end of the key
/// lies before its open revision).
pub fn backfilled_keys(open: &[RecordBatch], arrived: &[RecordBatch]) -> Result<std::collections::HashSet<SeriesDate>> {
    use arrow::array::Array;
    use std::collections::{HashMap, HashSet};
    let keys = |b: &RecordBatch| -> Result<(arrow::array::StringArray, Date32Array, Date32Array)> {
        let column =
            |name: &str| b.column_by_name(name).ok_or_else(|| StorageError::InvalidData(format!("rows lack {name}")));
        Ok((
            column(col::SERIES_ID)?.as_string::<i32>().clone(),
            column(col::DATE)?.as_primitive::<Date32Type>().clone(),
            column(col::REVISION_DATE)?.as_primitive::<Date32Type>().clone(),
        ))
    };
    let mut tops: foldhash::HashMap<(&str, i32), i32> = HashMap::default();
    let open_keys = open.iter().map(keys).collect::<Result<Vec<_>>>()?;
    for (s, d, r) in &open_keys {
        for i in 0..s.len() {
            let top = tops.entry((s.value(i), d.value(i))).or_insert(i32::MIN);
            *top = (*top).max(r.value(i));
        }
    }
    let mut out = HashSet::new();
    for b in arrived {
        let (s, d, r) = keys(b)?;
        for i in 0..s.len() {
            if tops.get(&(s.value(i), d.value(i))).is_some_and(|&top| r.value(i) < top) {
                out.insert((s.value(i).to_owned(), d.value(i)));
            }
        }
    }
    Ok(out)
}

/// Splits rows into those of `keys` and the rest (each in the input's schema).
pub fn split_keys(
    batch: &RecordBatch,
    keys: &std::collections::HashSet<SeriesDate>,
) -> Result<(RecordBatch, RecordBatch)> {
    let s = batch
        .column_by_name(col::SERIES_ID)
        .ok_or_else(|| StorageError::InvalidData("rows lack series_id".into()))?
        .as_string::<i32>();
    let d = batch
        .column_by_name(col::DATE)
        .ok_or_else(|| StorageError::InvalidData("rows lack date".into()))?
        .as_primitive::<Date32Type>();
    let of_keys: arrow::array::BooleanArray =
        (0..batch.num_rows()).map(|i| Some(keys.contains(&(s.value(i).to_owned(), d.value(i))))).collect();
    let rest = arrow::compute::not(&of_keys)?;
    Ok((arrow::compute::filter_record_batch(batch, &of_keys)?, arrow::compute::filter_record_batch(batch, &rest)?))
}
