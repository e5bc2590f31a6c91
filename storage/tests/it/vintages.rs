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
