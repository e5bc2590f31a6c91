//! The vintage questions beyond the four views — ALFRED's real-time windows, vintage dates, the
//! vintage matrix, new-and-revised observations, n-th releases, revisions between two vintages,
//! revision statistics and the real-time diagonal — each computed from the `all_revisions` answer
//! (every effective revision with its real-time period, in vintage order), so every shape shares
//! the views' rules (corrections folded, duplicates dropped, first releases by the flag) and is
//! exactly as stable under compaction, tiering and backend changes as `all_revisions` is.
//!
//! Input rows are the view schema sorted by series, date and `realtime_start`; a batch holds whole
//! series (the streamed groups do), so a shape is applied batch by batch. A missing value
//! (`value = null`, ALFRED's ".") stays a row with a null value: "no row" means nothing was
//! published for that observation by then.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Date32Builder, Float64Array, Float64Builder, Int32Builder,
    RecordBatch, StringArray, StringBuilder, UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Date32Type, Field, Schema, SchemaRef};
use vintagelake_schemas::Date;
use vintagelake_schemas::arrow::col;

use crate::error::{Result, StorageError};
use crate::scan::{OPEN_END, view_schema_with};

/// Most rows one part of a matrix or diagonal answer may hold (a part: the series of one streamed
/// group, or a narrow answer whole): about 450 MB of Arrow. A larger answer is refused before it
/// is built, saying how to narrow it. (The other shapes answer at most one row per revision.)
pub const MAX_SHAPE_ROWS: usize = 10_000_000;

/// Column names the shapes add to the view's.
pub mod out {
    pub const VINTAGE_DATE: &str = "vintage_date";
    pub const OBSERVATIONS: &str = "observations";
    pub const PREVIOUS_VALUE: &str = "previous_value";
    pub const KIND: &str = "kind";
    pub const RELEASE: &str = "release";
    pub const VALUE_A: &str = "value_a";
    pub const REVISION_DATE_A: &str = "revision_date_a";
    pub const VALUE_B: &str = "value_b";
    pub const REVISION_DATE_B: &str = "revision_date_b";
    pub const REVISION: &str = "revision";
    pub const REVISION_PCT: &str = "revision_pct";
    pub const RELEASES: &str = "releases";
    pub const REVISIONS: &str = "revisions";
    pub const FIRST_RELEASE_DATE: &str = "first_release_date";
    pub const FIRST_VALUE: &str = "first_value";
    pub const LATEST_REVISION_DATE: &str = "latest_revision_date";
    pub const LATEST_VALUE: &str = "latest_value";
    pub const TOTAL_REVISION: &str = "total_revision";
    pub const TOTAL_REVISION_PCT: &str = "total_revision_pct";
    pub const MEAN_ABS_REVISION: &str = "mean_abs_revision";
    pub const DAYS_TO_LATEST: &str = "days_to_latest";
    pub const HORIZON_DAYS: &str = "horizon_days";
    pub const AS_OF: &str = "as_of";
}

/// Which release [`Shape::Release`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The k-th publication, counted from the first release (1 = the first release).
    Nth(u32),
    /// The k-th before the latest (0 = the latest).
    LatestMinus(u32),
}

/// Where a real-time diagonal's horizon is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HorizonFrom {
    /// The observation date: "GDP for a quarter as known 30 days after the quarter began".
    #[default]
    Date,
    /// The observation's first release.
    FirstRelease,
}

impl HorizonFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            HorizonFrom::Date => "date",
            HorizonFrom::FirstRelease => "first_release",
        }
    }
}

impl std::str::FromStr for HorizonFrom {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "date" => Ok(HorizonFrom::Date),
            "first_release" | "first-release" => Ok(HorizonFrom::FirstRelease),
            other => Err(format!("{other:?} is not a horizon origin (date | first_release)")),
        }
    }
}

/// A question asked of every revision of the selected observations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Every revision whose real-time period meets `[start, end]`, its period clipped to it
    /// (ALFRED `realtime_start` / `realtime_end`); an open side is not clipped.
    Window { start: Option<Date>, end: Option<Date> },
    /// Per series, the dates on which any selected observation was published or revised, within
    /// `[start, end]`, with how many observations each touched.
    VintageDates { start: Option<Date>, end: Option<Date> },
    /// One row per observation and vintage date (the long form of ALFRED's output type 2): the
    /// value as known on that vintage. Vintages: the listed dates, else every vintage date of the
    /// series. An observation not yet published on a vintage has no row there.
    Matrix { vintages: Vec<Date> },
    /// Per vintage, only the observations it added or whose value it changed (ALFRED type 3).
    NewAndRevised,
    /// The value of each observation at one of its releases.
    Release(Release),
    /// Per observation, the values as known on two vintages and the revision between them.
    Between { a: Date, b: Date },
    /// Per observation: releases, value changes, first and latest value, total and mean revision.
    RevisionStats,
    /// Each observation's value as known `h` days after its date (or its first release), per horizon.
    Diagonal { horizons: Vec<i32>, from: HorizonFrom },
}

impl Shape {
    /// The shape's name in tickets, metrics and docs.
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Window { .. } => "window",
            Shape::VintageDates { .. } => "vintage_dates",
            Shape::Matrix { .. } => "matrix",
            Shape::NewAndRevised => "new_and_revised",
            Shape::Release(_) => "release",
            Shape::Between { .. } => "revision_between",
            Shape::RevisionStats => "revision_stats",
            Shape::Diagonal { .. } => "diagonal",
        }
    }

    /// Every shape's name.
    pub const NAMES: [&'static str; 8] = [
        "window",
        "vintage_dates",
        "matrix",
        "new_and_revised",
        "release",
        "revision_between",
        "revision_stats",
        "diagonal",
    ];

    /// The schema of the shape's answer.
    pub fn schema(&self) -> SchemaRef {
        self.schema_with(&[])
    }

    /// The schema of the shape's answer over revisions that carry `foreign` columns (added to the
    /// table by another engine): the shapes that answer whole revisions pass them through.
    pub fn schema_with(&self, foreign: &[Field]) -> SchemaRef {
        use out::*;
        let f = |name: &str, t: DataType, nullable: bool| Field::new(name, t, nullable);
        let key = || vec![f(col::SERIES_ID, DataType::Utf8, false), f(col::DATE, DataType::Date32, false)];
        let value = |name: &str| f(name, DataType::Float64, true);
        let fields = match self {
            Shape::Window { .. } => return view_schema_with(foreign),
            Shape::Release(_) => {
                let mut fields: Vec<Field> =
                    view_schema_with(foreign).fields().iter().map(|f| f.as_ref().clone()).collect();
                fields.push(f(RELEASE, DataType::Int32, false));
                fields
            }
            Shape::VintageDates { .. } => vec![
                f(col::SERIES_ID, DataType::Utf8, false),
                f(VINTAGE_DATE, DataType::Date32, false),
                f(OBSERVATIONS, DataType::Int32, false),
            ],
            Shape::Matrix { .. } => {
                let mut v = key();
                v.extend([
                    f(VINTAGE_DATE, DataType::Date32, false),
                    value(col::VALUE),
                    f(col::REVISION_DATE, DataType::Date32, false),
                ]);
                v
            }
            Shape::NewAndRevised => {
                let mut v = key();
                v.extend([
                    f(VINTAGE_DATE, DataType::Date32, false),
                    value(col::VALUE),
                    value(PREVIOUS_VALUE),
                    f(KIND, DataType::Utf8, false),
                ]);
                v
            }
            Shape::Between { .. } => {
                let mut v = key();
                v.extend([
                    value(VALUE_A),
                    f(REVISION_DATE_A, DataType::Date32, true),
                    value(VALUE_B),
                    f(REVISION_DATE_B, DataType::Date32, true),
                    value(REVISION),
                    value(REVISION_PCT),
                ]);
                v
            }
            Shape::RevisionStats => {
                let mut v = key();
                v.extend([
                    f(RELEASES, DataType::Int32, false),
                    f(REVISIONS, DataType::Int32, false),
                    f(FIRST_RELEASE_DATE, DataType::Date32, false),
                    value(FIRST_VALUE),
                    f(LATEST_REVISION_DATE, DataType::Date32, false),
                    value(LATEST_VALUE),
                    value(TOTAL_REVISION),
                    value(TOTAL_REVISION_PCT),
                    value(MEAN_ABS_REVISION),
                    f(DAYS_TO_LATEST, DataType::Int32, false),
                ]);
                v
            }
            Shape::Diagonal { .. } => {
                let mut v = key();
                v.extend([
                    f(HORIZON_DAYS, DataType::Int32, false),
                    f(AS_OF, DataType::Date32, false),
                    value(col::VALUE),
                    f(col::REVISION_DATE, DataType::Date32, false),
                ]);
                v
            }
        };
        Arc::new(Schema::new(fields))
    }

    /// The shape's answer over `revisions`, an `all_revisions` answer holding whole series.
    pub fn apply(&self, revisions: &RecordBatch) -> Result<RecordBatch> {
        let r = Revisions::of(revisions)?;
        match self {
            Shape::Window { start, end } => window(&r, revisions, *start, *end),
            Shape::Release(which) => {
                let foreign = crate::evolve::foreign_view_fields(&revisions.schema());
                release(&r, revisions, *which, &self.schema_with(&foreign))
            }
            Shape::VintageDates { start, end } => vintage_dates(&r, *start, *end, self.schema()),
            Shape::Matrix { vintages } => matrix(&r, vintages, self.schema()),
            Shape::NewAndRevised => new_and_revised(&r, self.schema()),
            Shape::Between { a, b } => between(&r, a.days_since_epoch(), b.days_since_epoch(), self.schema()),
            Shape::RevisionStats => revision_stats(&r, self.schema()),
            Shape::Diagonal { horizons, from } => diagonal(&r, horizons, *from, self.schema()),
        }
    }
}

/// The `all_revisions` columns the shapes read.
struct Revisions<'a> {
    series: &'a StringArray,
    dates: &'a Date32Array,
    values: &'a Float64Array,
    starts: &'a Date32Array,
    ends: &'a Date32Array,
    flags: &'a BooleanArray,
    rows: usize,
}

impl<'a> Revisions<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| StorageError::InvalidData(format!("all_revisions answer lacks {name}")))
        };
        Ok(Self {
            series: column(col::SERIES_ID)?.as_string::<i32>(),
            dates: column(col::DATE)?.as_primitive::<Date32Type>(),
            values: column(col::VALUE)?.as_primitive(),
            starts: column(col::REALTIME_START)?.as_primitive::<Date32Type>(),
            ends: column(col::REALTIME_END)?.as_primitive::<Date32Type>(),
            flags: column(col::IS_ORIGINAL_RELEASE)?.as_boolean(),
            rows: batch.num_rows(),
        })
    }

    fn value(&self, i: usize) -> Option<f64> {
        self.values.is_valid(i).then(|| self.values.value(i))
    }

    /// Same value (both missing, or bit-identical): the rule the views fold exact
    /// re-publications by.
    fn same_value(&self, a: usize, b: usize) -> bool {
        self.value(a).map(f64::to_bits) == self.value(b).map(f64::to_bits)
    }

    /// Consecutive row ranges that share `same(i, j)`.
    fn runs(&self, same: impl Fn(usize, usize) -> bool) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.rows {
            let mut j = i + 1;
            while j < self.rows && same(i, j) {
                j += 1;
            }
            out.push(i..j);
            i = j;
        }
        out
    }

    /// Each observation's revisions (oldest first).
    fn keys(&self) -> Vec<std::ops::Range<usize>> {
        self.runs(|i, j| self.dates.value(i) == self.dates.value(j) && self.series.value(i) == self.series.value(j))
    }

    /// The revision of `key` current on day `t`, if one was.
    fn current_at(&self, key: &std::ops::Range<usize>, t: i32) -> Option<usize> {
        let after = self.starts.values()[key.clone()].partition_point(|&s| s <= t);
        let k = key.start + after;
        (k > key.start && self.ends.value(k - 1) >= t).then(|| k - 1)
    }

    /// Where the observation's release sequence starts: the revision the `first_release` view
    /// answers (the flagged one, else the earliest).
    fn first_release(&self, key: &std::ops::Range<usize>) -> usize {
        key.clone().find(|&i| self.flags.value(i)).unwrap_or(key.start)
    }
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// A difference and its percentage of the base (`None` when either is missing or the base is 0).
fn change(from: Option<f64>, to: Option<f64>) -> (Option<f64>, Option<f64>) {
    match (from, to) {
        (Some(a), Some(b)) => (Some(b - a), (a != 0.0).then(|| (b - a) / a.abs() * 100.0)),
        _ => (None, None),
    }
}

fn window(r: &Revisions<'_>, rows: &RecordBatch, start: Option<Date>, end: Option<Date>) -> Result<RecordBatch> {
    let (a, b) = (start.map(|d| d.days_since_epoch()), end.map(|d| d.days_since_epoch()));
    let mut keep = Vec::new();
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    for i in 0..r.rows {
        let (s, e) = (r.starts.value(i), r.ends.value(i));
        if b.is_some_and(|b| s > b) || a.is_some_and(|a| e < a) {
            continue;
        }
        keep.push(i as u32);
        starts.push(a.map_or(s, |a| s.max(a)));
        ends.push(b.map_or(e, |b| e.min(b)));
    }
    let indices = UInt32Array::from(keep);
    let mut columns = Vec::with_capacity(rows.num_columns());
    for (field, column) in rows.schema().fields().iter().zip(rows.columns()) {
        columns.push(match field.name().as_str() {
            col::REALTIME_START => Arc::new(Date32Array::from(std::mem::take(&mut starts))) as ArrayRef,
            col::REALTIME_END => Arc::new(Date32Array::from(std::mem::take(&mut ends))),
            _ => take(column.as_ref(), &indices, None)?,
        });
    }
    batch(rows.schema(), columns)
}

fn release(r: &Revisions<'_>, rows: &RecordBatch, which: Release, schema: &SchemaRef) -> Result<RecordBatch> {
    let (mut picked, mut numbers) = (Vec::new(), Vec::new());
    for key in r.keys() {
        let first = r.first_release(&key);
        let pick = match which {
            Release::Nth(k) => (k >= 1).then(|| first + k as usize - 1).filter(|&i| i < key.end),
            Release::LatestMinus(k) => (key.end - 1).checked_sub(k as usize).filter(|&i| i >= first),
        };
        if let Some(i) = pick {
            picked.push(i as u32);
            numbers.push((i - first + 1) as i32);
        }
    }
    let indices = UInt32Array::from(picked);
    let mut columns: Vec<ArrayRef> =
        rows.columns().iter().map(|c| take(c.as_ref(), &indices, None)).collect::<std::result::Result<_, _>>()?;
    columns.push(Arc::new(arrow::array::Int32Array::from(numbers)));
    batch(schema.clone(), columns)
}

fn vintage_dates(r: &Revisions<'_>, start: Option<Date>, end: Option<Date>, schema: SchemaRef) -> Result<RecordBatch> {
    let (a, b) = (start.map(|d| d.days_since_epoch()), end.map(|d| d.days_since_epoch()));
    let (mut series, mut dates, mut counts) = (StringBuilder::new(), Date32Builder::new(), Int32Builder::new());
    for range in r.runs(|i, j| r.series.value(i) == r.series.value(j)) {
        let name = r.series.value(range.start);
        let mut days: Vec<i32> = range
            .map(|i| r.starts.value(i))
            .filter(|&d| a.is_none_or(|a| d >= a) && b.is_none_or(|b| d <= b))
            .collect();
        days.sort_unstable();
        for group in days.chunk_by(|x, y| x == y) {
            series.append_value(name);
            dates.append_value(group[0]);
            counts.append_value(group.len() as i32);
        }
    }
    batch(schema, vec![Arc::new(series.finish()), Arc::new(dates.finish()), Arc::new(counts.finish())])
}

fn matrix(r: &Revisions<'_>, listed: &[Date], schema: SchemaRef) -> Result<RecordBatch> {
    let mut listed: Vec<i32> = listed.iter().map(|d| d.days_since_epoch()).collect();
    listed.sort_unstable();
    listed.dedup();
    let mut out = Long::default();
    let keys = r.keys();
    let mut plans = Vec::new();
    let mut cells = 0usize;
    let mut k = 0;
    while k < keys.len() {
        // One series at a time: its vintages are the listed ones, else every date it changed on.
        let series = r.series.value(keys[k].start);
        let mut end = k;
        while end < keys.len() && r.series.value(keys[end].start) == series {
            end += 1;
        }
        let vintages: std::borrow::Cow<'_, [i32]> = if listed.is_empty() {
            let mut v: Vec<i32> = (keys[k].start..keys[end - 1].end).map(|i| r.starts.value(i)).collect();
            v.sort_unstable();
            v.dedup();
            v.into()
        } else {
            listed.as_slice().into()
        };
        // At most one cell per vintage from the observation's first publication on.
        for key in &keys[k..end] {
            cells += vintages.len() - vintages.partition_point(|&v| v < r.starts.value(key.start));
        }
        if cells > MAX_SHAPE_ROWS {
            return Err(StorageError::TooLarge(format!(
                "the vintage matrix would hold more than {MAX_SHAPE_ROWS} cells (series {series} and those before it \
                 in this answer): list the vintages wanted, or narrow the series or dates"
            )));
        }
        plans.push((k, end, vintages));
        k = end;
    }
    for (k, end, vintages) in plans {
        for key in &keys[k..end] {
            // Vintages ascend, so the current revision only moves forward.
            let mut at = key.start;
            for &v in vintages.iter() {
                while at + 1 < key.end && r.starts.value(at + 1) <= v {
                    at += 1;
                }
                if r.starts.value(at) <= v && r.ends.value(at) >= v {
                    out.push(r, at, v);
                }
            }
        }
    }
    let mut columns = out.key_columns();
    columns.push(Arc::new(out.vintage.finish()));
    columns.push(Arc::new(out.value.finish()));
    columns.push(Arc::new(out.revision.finish()));
    batch(schema, columns)
}

fn new_and_revised(r: &Revisions<'_>, schema: SchemaRef) -> Result<RecordBatch> {
    let mut out = Long::default();
    let (mut previous, mut kinds) = (Float64Builder::new(), StringBuilder::new());
    for key in r.keys() {
        for i in key.clone() {
            let new = i == key.start;
            if !new && r.same_value(i - 1, i) {
                continue;
            }
            out.push(r, i, r.starts.value(i));
            previous.append_option(if new { None } else { r.value(i - 1) });
            kinds.append_value(if new { "new" } else { "revised" });
        }
    }
    let mut columns = out.key_columns();
    columns.push(Arc::new(out.vintage.finish()));
    columns.push(Arc::new(out.value.finish()));
    columns.push(Arc::new(previous.finish()));
    columns.push(Arc::new(kinds.finish()));
    batch(schema, columns)
}

fn between(r: &Revisions<'_>, a: i32, b: i32, schema: SchemaRef) -> Result<RecordBatch> {
    let mut keys = Keys::default();
    let (mut va, mut ra, mut vb, mut rb) =
        (Float64Builder::new(), Date32Builder::new(), Float64Builder::new(), Date32Builder::new());
    let (mut diff, mut pct) = (Float64Builder::new(), Float64Builder::new());
    for key in r.keys() {
        let (at_a, at_b) = (r.current_at(&key, a), r.current_at(&key, b));
        if at_a.is_none() && at_b.is_none() {
            continue;
        }
        keys.push(r, key.start);
        let value = |at: Option<usize>| at.and_then(|i| r.value(i));
        va.append_option(value(at_a));
        ra.append_option(at_a.map(|i| r.starts.value(i)));
        vb.append_option(value(at_b));
        rb.append_option(at_b.map(|i| r.starts.value(i)));
        let (d, p) = change(value(at_a), value(at_b));
        diff.append_option(d);
        pct.append_option(p);
    }
    let mut columns = keys.finish();
    for c in [va.finish(), vb.finish()].into_iter().zip([ra.finish(), rb.finish()]) {
        columns.push(Arc::new(c.0));
        columns.push(Arc::new(c.1));
    }
    columns.push(Arc::new(diff.finish()));
    columns.push(Arc::new(pct.finish()));
    batch(schema, columns)
}

fn revision_stats(r: &Revisions<'_>, schema: SchemaRef) -> Result<RecordBatch> {
    let mut keys = Keys::default();
    let (mut releases, mut revisions) = (Int32Builder::new(), Int32Builder::new());
    let (mut first_date, mut first_value) = (Date32Builder::new(), Float64Builder::new());
    let (mut latest_date, mut latest_value) = (Date32Builder::new(), Float64Builder::new());
    let (mut total, mut total_pct, mut mean_abs) =
        (Float64Builder::new(), Float64Builder::new(), Float64Builder::new());
    let mut days = Int32Builder::new();
    for key in r.keys() {
        let first = r.first_release(&key);
        let last = key.end - 1;
        keys.push(r, key.start);
        releases.append_value((key.end - first) as i32);
        let (mut changes, mut sum, mut pairs) = (0, 0.0, 0);
        for i in first + 1..key.end {
            if !r.same_value(i - 1, i) {
                changes += 1;
            }
            if let (Some(x), Some(y)) = (r.value(i - 1), r.value(i)) {
                sum += (y - x).abs();
                pairs += 1;
            }
        }
        revisions.append_value(changes);
        first_date.append_value(r.starts.value(first));
        first_value.append_option(r.value(first));
        latest_date.append_value(r.starts.value(last));
        latest_value.append_option(r.value(last));
        let (d, p) = change(r.value(first), r.value(last));
        total.append_option(d);
        total_pct.append_option(p);
        mean_abs.append_option((pairs > 0).then(|| sum / f64::from(pairs)));
        days.append_value(r.starts.value(last) - r.starts.value(first));
    }
    let mut columns = keys.finish();
    columns.extend([
        Arc::new(releases.finish()) as ArrayRef,
        Arc::new(revisions.finish()),
        Arc::new(first_date.finish()),
        Arc::new(first_value.finish()),
        Arc::new(latest_date.finish()),
        Arc::new(latest_value.finish()),
        Arc::new(total.finish()),
        Arc::new(total_pct.finish()),
        Arc::new(mean_abs.finish()),
        Arc::new(days.finish()),
    ]);
    batch(schema, columns)
}

fn diagonal(r: &Revisions<'_>, horizons: &[i32], from: HorizonFrom, schema: SchemaRef) -> Result<RecordBatch> {
    let mut keys = Keys::default();
    let (mut horizon, mut as_of) = (Int32Builder::new(), Date32Builder::new());
    let (mut value, mut revision) = (Float64Builder::new(), Date32Builder::new());
    let observations = r.keys();
    if observations.len().saturating_mul(horizons.len()) > MAX_SHAPE_ROWS {
        return Err(StorageError::TooLarge(format!(
            "the real-time diagonal would hold {} observations × {} horizons, more than {MAX_SHAPE_ROWS} rows: \
             ask fewer horizons, or narrow the series or dates",
            observations.len(),
            horizons.len()
        )));
    }
    for key in observations {
        let origin = match from {
            HorizonFrom::Date => r.dates.value(key.start),
            HorizonFrom::FirstRelease => r.starts.value(r.first_release(&key)),
        };
        for &h in horizons {
            let t = origin.saturating_add(h).min(OPEN_END.days_since_epoch());
            let Some(i) = r.current_at(&key, t) else { continue };
            keys.push(r, key.start);
            horizon.append_value(h);
            as_of.append_value(t);
            value.append_option(r.value(i));
            revision.append_value(r.starts.value(i));
        }
    }
    let mut columns = keys.finish();
    columns.extend([
        Arc::new(horizon.finish()) as ArrayRef,
        Arc::new(as_of.finish()),
        Arc::new(value.finish()),
        Arc::new(revision.finish()),
    ]);
    batch(schema, columns)
}

/// `series_id` and `date` columns of an answer, one row per `push`.
#[derive(Default)]
struct Keys {
    series: StringBuilder,
    dates: Date32Builder,
}

impl Keys {
    fn push(&mut self, r: &Revisions<'_>, row: usize) {
        self.series.append_value(r.series.value(row));
        self.dates.append_value(r.dates.value(row));
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        vec![Arc::new(self.series.finish()), Arc::new(self.dates.finish())]
    }
}

/// The long-form columns shared by the matrix and new-and-revised answers.
#[derive(Default)]
struct Long {
    keys: Keys,
    vintage: Date32Builder,
    value: Float64Builder,
    revision: Date32Builder,
}

impl Long {
    fn push(&mut self, r: &Revisions<'_>, row: usize, vintage: i32) {
        self.keys.push(r, row);
        self.vintage.append_value(vintage);
        self.value.append_option(r.value(row));
        self.revision.append_value(r.starts.value(row));
    }

    fn key_columns(&mut self) -> Vec<ArrayRef> {
        std::mem::take(&mut self.keys).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::view_schema;
    use arrow::array::{StringArray, TimestampNanosecondArray};

    /// An all_revisions answer of one observation: (realtime_start, realtime_end, value, flag).
    fn revisions(rows: &[(i32, i32, Option<f64>, bool)]) -> RecordBatch {
        let n = rows.len();
        let schema = view_schema();
        let ts = || Arc::new(TimestampNanosecondArray::from(vec![0i64; n])) as ArrayRef;
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                col::ID => Arc::new(StringArray::from(vec!["x"; n])) as ArrayRef,
                col::SERIES_ID => Arc::new(StringArray::from(vec!["S"; n])),
                col::DATE => Arc::new(Date32Array::from(vec![100; n])),
                col::VALUE => Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
                col::IS_ORIGINAL_RELEASE => Arc::new(BooleanArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
                col::REVISION_DATE | col::REALTIME_START => {
                    Arc::new(Date32Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()))
                }
                col::REALTIME_END => Arc::new(Date32Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                col::STATUS | col::COMMENT => Arc::new(StringArray::new_null(n)),
                _ => ts(),
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    fn floats(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
        b.column_by_name(name).unwrap().as_primitive::<arrow::datatypes::Float64Type>().iter().collect()
    }

    /// A period cut short (retention removed the revision after it) leaves days with no value; a
    /// missing value is a row with a null value, not an absent row; a late-flagged first release
    /// starts the release count.
    #[test]
    fn gaps_missing_values_and_late_first_releases() {
        let open = OPEN_END.days_since_epoch();
        let b = revisions(&[(110, 119, Some(1.0), false), (130, 139, None, true), (140, open, Some(4.0), false)]);
        let on =
            |days: &[i32]| Shape::Matrix { vintages: days.iter().map(|d| Date::from_days_since_epoch(*d)).collect() };
        let m = on(&[105, 115, 125, 135, 200]).apply(&b).unwrap();
        // 105: not yet published; 125: in the gap; 135: published as missing.
        let vintages: Vec<i32> = m.column(2).as_primitive::<Date32Type>().values().to_vec();
        assert_eq!(vintages, vec![115, 135, 200]);
        assert_eq!(floats(&m, col::VALUE), vec![Some(1.0), None, Some(4.0)]);
        let between = Shape::Between { a: Date::from_days_since_epoch(125), b: Date::from_days_since_epoch(135) };
        let r = between.apply(&b).unwrap();
        assert_eq!(r.num_rows(), 1);
        assert!(r.column_by_name(out::REVISION_DATE_A).unwrap().is_null(0), "nothing current in the gap");
        assert!(r.column_by_name(out::REVISION_DATE_B).unwrap().is_valid(0), "published, as missing");
        assert!(r.column_by_name(out::VALUE_B).unwrap().is_null(0));
        // Releases count from the flagged revision: 2 of them; the first has no value.
        let stats = Shape::RevisionStats.apply(&b).unwrap();
        let int =
            |name: &str| stats.column_by_name(name).unwrap().as_primitive::<arrow::datatypes::Int32Type>().value(0);
        assert_eq!((int(out::RELEASES), int(out::REVISIONS), int(out::DAYS_TO_LATEST)), (2, 1, 10));
        assert_eq!(floats(&stats, out::MEAN_ABS_REVISION), vec![None], "no pair of present values");
        assert_eq!(floats(&stats, out::TOTAL_REVISION), vec![None]);
        let first = Shape::Release(Release::Nth(1)).apply(&b).unwrap();
        assert_eq!(first.column_by_name(col::REALTIME_START).unwrap().as_primitive::<Date32Type>().value(0), 130);
        assert_eq!(
            Shape::Release(Release::LatestMinus(2)).apply(&b).unwrap().num_rows(),
            0,
            "before the first release"
        );
        let too_many = Shape::Diagonal { horizons: vec![1; MAX_SHAPE_ROWS + 1], from: HorizonFrom::Date };
        let err = too_many.apply(&b).unwrap_err();
        assert!(matches!(err, StorageError::TooLarge(_)) && err.to_string().contains("fewer horizons"), "{err}");
        let nr = Shape::NewAndRevised.apply(&b).unwrap();
        assert_eq!(floats(&nr, col::VALUE), vec![Some(1.0), None, Some(4.0)], "a value becoming missing is a revision");
    }
}
