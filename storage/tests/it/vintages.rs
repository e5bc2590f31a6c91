//! Vintage views of the Iceberg backend against the hand-computed fixture, before and after a
//! rewrite that merges all files into one (every backend: `backends.rs`).

use std::collections::BTreeMap;

use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::CommitKind;
use vintagelake_storage::files::{live_files, read_data_files};
use vintagelake_storage::store::IcebergStore;

use crate::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iceberg_store_answers_the_fixture_before_and_after_a_full_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let store = IcebergStore::new(warehouse(dir.path()).await);
    write_fixture(&store).await;
    check_views(&store, "iceberg, one file per vintage").await;

    let wh = store.warehouse().clone();
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let files = live_files(&wh, &table, None).await.unwrap();
    assert_eq!(files.len(), 6, "one file per write");
    let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    let all_rows = read_data_files(&wh, &paths, 4).await.unwrap();
    let committed = store
        .rewrite(TableKind::DataPoints, paths.clone(), &all_rows, CommitKind::Replace, "compaction", BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(committed.removed_files, 6);
    assert_eq!(committed.added_files, 1);
    assert_eq!(committed.removed_records, committed.added_records);
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let after = live_files(&wh, &table, None).await.unwrap();
    assert_eq!(after.len(), 1);
    assert!(!paths.contains(&after[0].path));
    check_views(&store, "iceberg, after merging every file").await;
}

/// Re-publishing an identical revision (the same message again, stamped on arrival) changes no
/// answer and no column, before and after compaction; a real correction still wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_duplicate_changes_no_answer_and_no_column() {
    use vintagelake_schemas::Timestamp;
    use vintagelake_schemas::table::{StoredDataPoint, stored_data_points_to_batch};
    use vintagelake_storage::scan::{View, VintageQuery, close_periods};
    use vintagelake_storage::store::FinancialDataStorage;
    let dir = tempfile::tempdir().unwrap();
    let store = IcebergStore::new(warehouse(dir.path()).await);
    let at = |seconds: i64, seq: i64, value: f64| {
        let mut p = point("GDPC1", "2024-01-01", "2024-04-25", Some(value), true);
        p.created_at = Timestamp::from_nanos(1_700_000_000_000_000_000 + seconds * 1_000_000_000);
        p.updated_at = p.created_at;
        StoredDataPoint { point: p, realtime_end: None, ingest_seq: seq }
    };
    let first = at(0, 10, 100.0);
    // The same message again, a minute later, on another commit.
    store.append_points(std::slice::from_ref(&first), vec![], "ingest").await.unwrap();
    store.append_points(&[at(60, 20, 100.0)], vec![], "ingest").await.unwrap();
    // created_at of the first row, in nanoseconds, whatever unit the batch stores.
    let created = |b: &arrow::array::RecordBatch| {
        use arrow::array::AsArray;
        use arrow::datatypes::{DataType, Int64Type, TimeUnit};
        let c = b.column_by_name("created_at").unwrap();
        let ns = arrow::compute::cast(c, &DataType::Timestamp(TimeUnit::Nanosecond, None)).unwrap();
        arrow::compute::cast(&ns, &DataType::Int64).unwrap().as_primitive::<Int64Type>().value(0)
    };
    for view in [View::Latest, View::FirstRelease, View::AllRevisions] {
        let b = store.query(&VintageQuery::new(view)).await.unwrap();
        assert_eq!(b.num_rows(), 1, "{view:?}");
        assert_eq!(created(&b), first.point.created_at.nanos(), "{view:?}: the first arrival stays");
    }
    // Compaction keeps the same row.
    let rows = vec![stored_data_points_to_batch(&[first.clone(), at(60, 20, 100.0)]).unwrap()];
    let (closed, stats) = close_periods(&rows).unwrap();
    assert_eq!((closed.num_rows(), stats.duplicates_dropped, stats.corrections_applied), (1, 1, 0));
    assert_eq!(created(&closed), first.point.created_at.nanos());
    // Input order does not matter.
    let reversed = vec![stored_data_points_to_batch(&[at(60, 20, 100.0), first.clone()]).unwrap()];
    assert_eq!(created(&close_periods(&reversed).unwrap().0), first.point.created_at.nanos());

    // A correction (another value) replaces it.
    store.append_points(&[at(120, 30, 101.0)], vec![], "ingest").await.unwrap();
    let b = store.query(&VintageQuery::new(View::Latest)).await.unwrap();
    use arrow::array::AsArray;
    assert_eq!(b.column_by_name("value").unwrap().as_primitive::<arrow::datatypes::Float64Type>().value(0), 101.0);
}
