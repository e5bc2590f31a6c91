//! What retention keeps of a file past `delete_after_days`: every row of a revision that is its
//! key's first release (as the `first_release` view answers: flagged, else the earliest), and
//! every flagged row. Shared by the tierer and the lifecycle property test.

use std::collections::HashSet;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::Date32Type;
use vintagelake_schemas::arrow::col;

use crate::error::{Result, StorageError};

/// A revision key: (series id, date, revision date), dates in days since the epoch.
pub type RevisionKey = (String, i32, i32);

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a arrow::array::ArrayRef> {
    b.column_by_name(name).ok_or_else(|| StorageError::InvalidData(format!("rows lack {name}")))
}

/// The revision keys a `first_release` view (view schema) answers with.
pub fn first_release_keys(view: &RecordBatch) -> Result<HashSet<RevisionKey>> {
    let s = column(view, col::SERIES_ID)?.as_string::<i32>();
    let d = column(view, col::DATE)?.as_primitive::<Date32Type>();
    let r = column(view, col::REVISION_DATE)?.as_primitive::<Date32Type>();
    Ok((0..view.num_rows()).map(|i| (s.value(i).to_owned(), d.value(i), r.value(i))).collect())
}

/// The rows of `batches` (table schema) that deletion keeps: flagged rows, every row of a
/// revision that is its key's first release (so its corrections still resolve), and every row of
/// a `deferred` key — one a backfill awaits compaction for: the revisions after the backfill are
/// what closes its period, so they stay until compaction has stored it.
pub fn keep_first_releases(
    batches: &[RecordBatch],
    firsts: &HashSet<RevisionKey>,
    deferred: &HashSet<crate::scan::SeriesDate>,
) -> Result<Vec<RecordBatch>> {
    batches
        .iter()
        .map(|b| {
            let flag = column(b, col::IS_ORIGINAL_RELEASE)?.as_boolean();
            let s = column(b, col::SERIES_ID)?.as_string::<i32>();
            let d = column(b, col::DATE)?.as_primitive::<Date32Type>();
            let r = column(b, col::REVISION_DATE)?.as_primitive::<Date32Type>();
            let keep: BooleanArray = (0..b.num_rows())
                .map(|i| {
                    let (series, date) = (s.value(i).to_owned(), d.value(i));
                    Some(
                        flag.value(i)
                            || firsts.contains(&(series.clone(), date, r.value(i)))
                            || deferred.contains(&(series, date)),
                    )
                })
                .collect();
            Ok(arrow::compute::filter_record_batch(b, &keep)?)
        })
        .collect()
}
