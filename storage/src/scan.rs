//! Vintage scans: latest, as of a date, first release, all revisions — with the series, date
//! and vintage predicates pushed into Iceberg scan planning (partition and file pruning by
//! statistics, row-group pruning, row filters), then resolved per `(series_id, date)`.
//!
//! Resolution ([`resolve`]) is plain Arrow over rows in the table schema, shared by every storage
//! backend, so all of them answer identically. It is correct whatever state compaction is in:
//! pruning by `realtime_end` only ever drops rows that a kept row supersedes.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Date32Array, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take};
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
        match self {
            View::Latest => "latest",
            View::AsOf(_) => "as_of",
            View::FirstRelease => "first_release",
            View::AllRevisions => "all_revisions",
        }
    }
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
        let mut parts = Vec::new();
        if !self.series.is_empty() {
            parts.push(Reference::new(col::SERIES_ID).is_in(self.series.iter().map(|s| Datum::string(s.as_str()))));
        }
        if let Some(s) = self.start {
            parts.push(Reference::new(col::DATE).greater_than_or_equal_to(Datum::date(s.days_since_epoch())));
        }
        if let Some(e) = self.end {
            parts.push(Reference::new(col::DATE).less_than_or_equal_to(Datum::date(e.days_since_epoch())));
        }
        match self.view {
            View::Latest => parts.push(Reference::new(col::REALTIME_END).is_null()),
            View::AsOf(t) => {
                let t = t.days_since_epoch();
                parts.push(Reference::new(col::REVISION_DATE).less_than_or_equal_to(Datum::date(t)));
                parts.push(
                    Reference::new(col::REALTIME_END)
                        .is_null()
                        .or(Reference::new(col::REALTIME_END).greater_than_or_equal_to(Datum::date(t))),
                );
            }
            View::FirstRelease | View::AllRevisions => {}
        }
        parts.into_iter().reduce(Predicate::and)
    }

    /// Does a resolved row belong to this query? (Used by backends without pushdown.)
    fn keeps(&self, series: &str, date: i32) -> bool {
        (self.series.is_empty() || self.series.iter().any(|s| s.as_str() == series))
            && self.start.is_none_or(|s| date >= s.days_since_epoch())
            && self.end.is_none_or(|e| date <= e.days_since_epoch())
    }
}

/// Schema of every view: the seed's `DataPoint` columns plus ALFRED's real-time period.
pub fn view_schema() -> SchemaRef {
    let mut fields: Vec<Field> = data_point_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(col::REALTIME_START, DataType::Date32, false));
    fields.push(Field::new(col::REALTIME_END, DataType::Date32, false));
    Arc::new(Schema::new(fields))
}

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

/// Reads the rows a query needs (table schema), with its predicate pushed into the scan.
pub async fn scan_rows(table: &Table, query: &VintageQuery, concurrency: usize) -> Result<Vec<RecordBatch>> {
    let Some(snapshot) = resolve_snapshot(table, query.snapshot)? else { return Ok(Vec::new()) };
    let mut builder = table
        .scan()
        .snapshot_id(snapshot)
        .with_concurrency_limit(concurrency.max(1))
        .with_row_group_filtering_enabled(true);
    if let Some(p) = query.predicate() {
        builder = builder.with_filter(p);
    }
    let scan = builder.build()?;
    let stream = scan.to_arrow().await?;
    // A file that cannot be read fails the whole scan, naming the file: never skipped silently.
    match stream.try_collect().await {
        Ok(batches) => Ok(batches),
        Err(e) => Err(name_the_damaged_file(table, &scan, e).await),
    }
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
                Ok(bytes) => crate::files::decode_parquet(bytes).err(),
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
pub async fn query_table(table: &Table, query: &VintageQuery, concurrency: usize) -> Result<RecordBatch> {
    let rows = scan_rows(table, query, concurrency).await?;
    resolve(query, &rows)
}

/// Picks, for each `(series_id, date)`, the rows the view asks for, sorted by series and date.
/// `rows` are in the `data_points` table schema; rows outside the query's series/dates are dropped
/// (backends with pushdown never pass them).
pub fn resolve(query: &VintageQuery, rows: &[RecordBatch]) -> Result<RecordBatch> {
    let schema = view_schema();
    let Some(first) = rows.first() else { return Ok(RecordBatch::new_empty(schema)) };
    let batch = concat_batches(&first.schema(), rows)?;
    if batch.num_rows() == 0 {
        return Ok(RecordBatch::new_empty(schema));
    }
    let column = |name: &str| {
        batch.column_by_name(name).cloned().ok_or_else(|| StorageError::InvalidData(format!("scan lacks {name}")))
    };
    let revision_col = column(col::REVISION_DATE)?;
    let order = vintage_order(&batch)?;
    let revision = revision_col.as_primitive::<Date32Type>();
    // The realtime_end compaction materialised: it still holds when retention has since deleted
    // the revision that superseded this one.
    let stored_end = batch.column_by_name(col::REALTIME_END).cloned();
    let stored_end = stored_end.as_ref().map(|c| c.as_primitive::<Date32Type>());
    let as_of = match query.view {
        View::AsOf(t) => Some(t.days_since_epoch()),
        _ => None,
    };

    let mut selected: Vec<u32> = Vec::new();
    let mut flags: Vec<bool> = Vec::new();
    let mut ends: Vec<i32> = Vec::new();
    let visible = |r: usize| as_of.is_none_or(|t| revision.value(r) <= t);
    for_each_key(&batch, order.values(), visible, |s, d, group| {
        if !query.keeps(s, d) {
            return;
        }
        // The day before the next revision present, or the stored end if that is earlier (the
        // next revision was deleted past retention); a late intermediate revision wins over a
        // stored end it now precedes.
        let end_after = |k: usize| -> i32 {
            let next = group.get(k + 1).map_or(OPEN_END.days_since_epoch(), |n| revision.value(n.row as usize) - 1);
            let r = group[k].row as usize;
            match stored_end {
                Some(e) if arrow::array::Array::is_valid(e, r) => next.min(e.value(r)),
                _ => next,
            }
        };
        let mut pick = |k: usize, end: i32| {
            selected.push(group[k].row);
            flags.push(group[k].flagged);
            ends.push(end);
        };
        match query.view {
            View::Latest | View::AsOf(_) => pick(group.len() - 1, OPEN_END.days_since_epoch()),
            View::FirstRelease => {
                let k = group.iter().position(|e| e.flagged).unwrap_or(0);
                pick(k, end_after(k));
            }
            View::AllRevisions => {
                for k in 0..group.len() {
                    pick(k, end_after(k));
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
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The one order of revisions every reader and lifecycle step uses: by series, date, revision
/// date and arrival (`ingest_seq`); rows that tie on all of those (only possible across
/// partitions or writers) are ordered by their contents (created_at, updated_at, value, flag),
/// so every step picks the same row whatever order it read them in.
pub fn vintage_order(batch: &RecordBatch) -> Result<UInt32Array> {
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
    let sort = names
        .iter()
        .map(|n| {
            let values =
                batch.column_by_name(n).cloned().ok_or_else(|| StorageError::InvalidData(format!("rows lack {n}")))?;
            Ok(SortColumn { values, options: None })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(lexsort_to_indices(&sort, None)?)
}

/// Whether two rows of one revision key carry the same observation (value and flag): a later
/// such row is counted as an exact duplicate, not a correction.
struct SameObservation {
    value: arrow::array::Float64Array,
    original: arrow::array::BooleanArray,
}

impl SameObservation {
    fn of(batch: &RecordBatch) -> Result<Self> {
        let value = batch
            .column_by_name(col::VALUE)
            .and_then(|c| c.as_any().downcast_ref::<arrow::array::Float64Array>().cloned())
            .ok_or_else(|| StorageError::InvalidData("rows lack a Float64 value".into()))?;
        let original = batch
            .column_by_name(col::IS_ORIGINAL_RELEASE)
            .map(|c| c.as_boolean().clone())
            .ok_or_else(|| StorageError::InvalidData("rows lack is_original_release".into()))?;
        Ok(Self { value, original })
    }

    fn at(&self, a: usize, b: usize) -> bool {
        use arrow::array::Array;
        let v = &self.value;
        v.is_valid(a) == v.is_valid(b)
            && (!v.is_valid(a) || v.value(a).to_bits() == v.value(b).to_bits())
            && self.original.value(a) == self.original.value(b)
    }
}

/// One revision of a key as every view sees it.
#[derive(Debug, Clone, Copy)]
struct Effective {
    /// The row that answers for it: its last arrival.
    row: u32,
    /// Any arrival of the revision was flagged `is_original_release`: a correction published
    /// without the flag is still the original release (the flag belongs to the revision).
    flagged: bool,
}

/// The one walk over revisions used by `resolve` and compaction: rows in [`vintage_order`], per
/// `(series_id, date)` the effective revisions (oldest first) of the rows `visible` admits.
/// Returns how many exact duplicates and corrections it folded.
fn for_each_key(
    batch: &RecordBatch,
    order: &[u32],
    visible: impl Fn(usize) -> bool,
    mut each: impl FnMut(&str, i32, &[Effective]),
) -> Result<(usize, usize)> {
    let (mut duplicates, mut corrections) = (0, 0);
    let column =
        |name: &str| batch.column_by_name(name).ok_or_else(|| StorageError::InvalidData(format!("rows lack {name}")));
    let series = column(col::SERIES_ID)?.as_string::<i32>();
    let date = column(col::DATE)?.as_primitive::<Date32Type>();
    let revision = column(col::REVISION_DATE)?.as_primitive::<Date32Type>();
    let original = column(col::IS_ORIGINAL_RELEASE)?.as_boolean();
    let same = SameObservation::of(batch)?;
    let mut group: Vec<Effective> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let head = order[i] as usize;
        let (s, d) = (series.value(head), date.value(head));
        group.clear();
        while i < order.len() {
            let r = order[i] as usize;
            if series.value(r) != s || date.value(r) != d {
                break;
            }
            i += 1;
            if !visible(r) {
                continue;
            }
            match group.last_mut() {
                // Same revision date again: the later arrival answers (a correction, or an exact
                // duplicate). Last-arrival-wins holds on any subset of the arrivals that contains
                // the last one, which is what makes compaction's partial rewrites safe; "keep the
                // first duplicate" would not (a dropped intermediate correction would make a
                // correction back to an earlier value look like a duplicate of it).
                Some(last) if revision.value(last.row as usize) == revision.value(r) => {
                    if same.at(last.row as usize, r) {
                        duplicates += 1;
                    } else {
                        corrections += 1;
                    }
                    last.row = r as u32;
                    last.flagged |= original.value(r);
                }
                _ => group.push(Effective { row: r as u32, flagged: original.value(r) }),
            }
        }
        if !group.is_empty() {
            each(s, d, &group);
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
}

/// Compaction's rewrite of a set of rows (table schema) that holds every not-yet-closed row of
/// its keys: per key the last arrival per revision date is kept (exact duplicates and corrected
/// rows are dropped), and every revision but the newest gets `realtime_end` = the day before the
/// next revision. Sorted by the table's sort key. Every view answers the same before and after.
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
    let order = vintage_order(&batch)?;
    let revision = revision_col.as_primitive::<Date32Type>();
    let stored_end = end_col.as_primitive::<Date32Type>();
    let mut keep: Vec<u32> = Vec::with_capacity(batch.num_rows());
    let mut flags: Vec<bool> = Vec::with_capacity(batch.num_rows());
    let mut ends: Vec<Option<i32>> = Vec::with_capacity(batch.num_rows());
    let mut periods_closed = 0;
    let (duplicates, corrections) = for_each_key(
        &batch,
        order.values(),
        |_| true,
        |_, _, group| {
            for (k, e) in group.iter().enumerate() {
                let r = e.row as usize;
                keep.push(e.row);
                flags.push(e.flagged);
                match group.get(k + 1) {
                    Some(next) => {
                        ends.push(Some(revision.value(next.row as usize) - 1));
                        periods_closed += usize::from(stored_end.is_null(r));
                    }
                    // The newest revision keeps what it had (null while current).
                    None => ends.push(stored_end.is_valid(r).then(|| stored_end.value(r))),
                }
            }
        },
    )?;
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
