//! Vintage views against the hand-computed fixture, on every backend, before and after a rewrite
//! that merges all files into one.

use std::collections::BTreeMap;

use vintagelake_schemas::SeriesId;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::CommitKind;
use vintagelake_storage::files::{live_files, read_data_files};
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore, InMemoryStorage};

use crate::fixture::*;

async fn check_views(store: &dyn FinancialDataStorage, label: &str) {
    let gdp: SeriesId = "GDPC1".parse().unwrap();
    let q = |view| VintageQuery::new(view).series([gdp.clone()]);
    assert_eq!(rows(&store.query(&q(View::Latest)).await.unwrap()), expected_latest(), "{label}: latest");
    for (t, expected) in expected_as_of() {
        assert_eq!(rows(&store.query(&q(View::AsOf(d(t)))).await.unwrap()), expected, "{label}: as_of {t}");
    }
    assert_eq!(
        rows(&store.query(&q(View::FirstRelease)).await.unwrap()),
        expected_first_release(),
        "{label}: first_release"
    );
    assert_eq!(
        rows(&store.query(&q(View::AllRevisions)).await.unwrap()),
        expected_all_revisions(),
        "{label}: all_revisions"
    );
    // Date range filter.
    let ranged =
        VintageQuery::new(View::Latest).series([gdp.clone()]).between(Some(d("2023-01-01")), Some(d("2023-04-01")));
    assert_eq!(rows(&store.query(&ranged).await.unwrap()), expected_latest()[1..3].to_vec(), "{label}: range");
    // Every series, latest.
    let all = rows(&store.query(&VintageQuery::new(View::Latest)).await.unwrap());
    assert_eq!(all.len(), 6, "{label}: all series");
    assert_eq!(all[5], row("UNRATE", "2023-01-01", Some(3.4), "2023-02-03", OPEN));
    // The seed's read_data_points: every revision of the series in the range, corrections applied.
    let points = store.read_data_points(&gdp, Some(d("2023-07-01")), None).await.unwrap();
    let got: Vec<(String, Option<f64>)> = points.iter().map(|p| (p.date.to_string(), p.value)).collect();
    assert_eq!(
        got,
        vec![
            ("2023-07-01".into(), Some(299.0)),
            ("2023-07-01".into(), Some(301.0)),
            ("2023-10-01".into(), Some(400.0))
        ],
        "{label}: read_data_points"
    );
}

#[tokio::test]
async fn in_memory_store_answers_the_fixture() {
    let store = InMemoryStorage::new();
    write_fixture(&store).await;
    check_views(&store, "memory").await;
}

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
