//! Kafka offsets ride in the same commit as the data; a writer that lost its partition is fenced.

use std::time::Duration;

use vintagelake_schemas::table::StoredDataPoint;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::{OffsetUpdate, SUMMARY_OFFSETS};
use vintagelake_storage::error::StorageError;
use vintagelake_storage::snapshots::find_orphans;
use vintagelake_storage::store::IcebergStore;

use crate::fixture::*;

fn rows(n: usize, seq: i64) -> Vec<StoredDataPoint> {
    (0..n)
        .map(|i| StoredDataPoint {
            point: point("GDPC1", &format!("2024-01-{:02}", i + 1), "2024-02-01", Some(i as f64), true),
            realtime_end: None,
            ingest_seq: seq + i as i64,
            status: None,
            comment: None,
        })
        .collect()
}

fn offset(partition: i32, expected: Option<i64>, next: i64) -> OffsetUpdate {
    OffsetUpdate { topic: "econ.datapoints".into(), partition, expected, next }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_committed_with_the_data_and_stale_writers_are_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let store = IcebergStore::new(warehouse(dir.path()).await);
    assert!(store.recorded_offsets(TableKind::DataPoints).await.unwrap().is_empty());

    store.append_points(&rows(3, 0), vec![offset(0, None, 3), offset(1, None, 7)], "ingest").await.unwrap();
    let recorded = store.recorded_offsets(TableKind::DataPoints).await.unwrap();
    assert_eq!(recorded.get(&("econ.datapoints".to_owned(), 0)), Some(&3));
    assert_eq!(recorded.get(&("econ.datapoints".to_owned(), 1)), Some(&7));
    let table = store.warehouse().load(TableKind::DataPoints).await.unwrap();
    let summary = &table.metadata().current_snapshot().unwrap().summary().additional_properties;
    assert_eq!(summary[SUMMARY_OFFSETS], r#"{"econ.datapoints":{"0":[null,3],"1":[null,7]}}"#);

    // The owner moves partition 0 on.
    store.append_points(&rows(2, 10), vec![offset(0, Some(3), 5)], "ingest").await.unwrap();
    // A replica that still believes it owns partition 0 from offset 3 is refused …
    let stale = store.append_points(&rows(2, 20), vec![offset(0, Some(3), 5)], "ingest").await.unwrap_err();
    assert!(matches!(stale, StorageError::Fenced { partition: 0, expected: Some(3), found: Some(5), .. }), "{stale}");
    // … as is one that thinks nothing was recorded yet, and one going backwards.
    let fresh = store.append_points(&rows(1, 30), vec![offset(1, None, 9)], "ingest").await.unwrap_err();
    assert!(matches!(fresh, StorageError::Fenced { .. }), "{fresh}");
    let back = store.append_points(&rows(1, 40), vec![offset(1, Some(7), 6)], "ingest").await.unwrap_err();
    assert!(matches!(back, StorageError::OffsetsBackwards { .. }), "{back}");

    // Refused commits added no rows and left no data files behind.
    let table = store.warehouse().load(TableKind::DataPoints).await.unwrap();
    let total = &table.metadata().current_snapshot().unwrap().summary().additional_properties["total-records"];
    assert_eq!(total, "5");
    assert!(find_orphans(store.warehouse(), TableKind::DataPoints, Duration::ZERO).await.unwrap().is_empty());
    let recorded = store.recorded_offsets(TableKind::DataPoints).await.unwrap();
    assert_eq!(recorded.get(&("econ.datapoints".to_owned(), 0)), Some(&5));
    assert_eq!(recorded.get(&("econ.datapoints".to_owned(), 1)), Some(&7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_of_different_partitions_both_commit_through_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let a = IcebergStore::new(warehouse(dir.path()).await);
    let b = IcebergStore::new(warehouse(dir.path()).await);
    let run = |store: IcebergStore, partition: i32| async move {
        let mut expected = None;
        for i in 0..30i64 {
            let next = (i + 1) * 10;
            store
                .append_points(&rows(1, partition as i64 * 1000 + i), vec![offset(partition, expected, next)], "ingest")
                .await
                .unwrap();
            expected = Some(next);
        }
        store
    };
    let (a, _b) = tokio::join!(run(a, 0), run(b, 1));
    let recorded = a.recorded_offsets(TableKind::DataPoints).await.unwrap();
    assert_eq!(recorded.get(&("econ.datapoints".to_owned(), 0)), Some(&300));
    assert_eq!(recorded.get(&("econ.datapoints".to_owned(), 1)), Some(&300));
    let table = a.warehouse().load(TableKind::DataPoints).await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_live_in_each_snapshot_and_a_rollback_takes_them_back() {
    use vintagelake_storage::commit::{CommitKind, SUMMARY_POSITIONS};
    use vintagelake_storage::rollback::{RollbackTarget, plan, rollback};
    let dir = tempfile::tempdir().unwrap();
    let store = IcebergStore::new(warehouse(dir.path()).await);
    let wh = store.warehouse().clone();
    let p0 = ("econ.datapoints".to_owned(), 0);
    let first = store.append_points(&rows(3, 0), vec![offset(0, None, 3)], "ingest").await.unwrap();
    store.append_points(&rows(2, 10), vec![offset(0, Some(3), 5)], "ingest").await.unwrap();
    // A commit that moves no position (a compaction) carries every position forward.
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let files: Vec<String> =
        vintagelake_storage::files::live_files(&wh, &table, None).await.unwrap().into_iter().map(|f| f.path).collect();
    let batches = vintagelake_storage::files::read_data_files(&wh, &files, 2).await.unwrap();
    let replaced = store
        .rewrite(TableKind::DataPoints, files, &batches, CommitKind::Replace, "compaction", Default::default())
        .await
        .unwrap();
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let summary = &table.metadata().snapshot_by_id(replaced.snapshot_id).unwrap().summary().additional_properties;
    assert_eq!(summary[SUMMARY_POSITIONS], r#"{"econ.datapoints":{"0":5}}"#);
    assert_eq!(store.recorded_offsets(TableKind::DataPoints).await.unwrap()[&p0], 5);

    // Roll back to the first snapshot: the position goes back with the data.
    let planned = plan(&table, RollbackTarget::Snapshot(first.snapshot_id)).unwrap();
    assert_eq!(planned.undone.len(), 2);
    assert_eq!(planned.moved[&p0], (Some(5), Some(3)));
    assert_eq!((planned.records_before, planned.records_after), (Some(5), Some(3)));
    let done = rollback(&wh, TableKind::DataPoints, RollbackTarget::Snapshot(first.snapshot_id)).await.unwrap();
    assert_eq!(done.to_snapshot, first.snapshot_id);
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    assert_eq!(table.metadata().current_snapshot_id(), Some(first.snapshot_id));
    assert_eq!(store.recorded_offsets(TableKind::DataPoints).await.unwrap()[&p0], 3);
    assert_eq!(table.metadata().properties()["vintagelake.offset:econ.datapoints:0"], "3", "properties follow");

    // The writer that had moved on is fenced; one reading from the restored position commits.
    let stale = store.append_points(&rows(1, 20), vec![offset(0, Some(5), 6)], "ingest").await.unwrap_err();
    assert!(matches!(stale, StorageError::Fenced { expected: Some(5), found: Some(3), .. }), "{stale}");
    store.append_points(&rows(2, 30), vec![offset(0, Some(3), 5)], "ingest").await.unwrap();
    assert_eq!(store.recorded_offsets(TableKind::DataPoints).await.unwrap()[&p0], 5);

    // An undone snapshot is no rollback target; a time finds the newest snapshot at or before it.
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let err = plan(&table, RollbackTarget::Snapshot(replaced.snapshot_id)).unwrap_err();
    assert!(err.to_string().contains("is not an ancestor"), "{err}");
    assert!(matches!(plan(&table, RollbackTarget::Snapshot(42)), Err(StorageError::NoSuchSnapshot(42))));
    let at = table.metadata().snapshot_by_id(first.snapshot_id).unwrap().timestamp_ms();
    assert_eq!(plan(&table, RollbackTarget::AsOfMs(at)).unwrap().to_snapshot, first.snapshot_id);
    assert!(matches!(plan(&table, RollbackTarget::AsOfMs(at - 1)), Err(StorageError::NoSnapshotAtTime(_))));
}

/// Arrival numbers follow the order of commits: two writers append rows numbered by their own
/// (overlapping) offsets; the store renumbers each append after the table's mark, carried by every
/// snapshot (compaction's too), so the later commit's correction answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrival_numbers_follow_commits_across_writers_and_survive_rewrites() {
    use vintagelake_storage::commit::arrival_mark;
    use vintagelake_storage::scan::{View, VintageQuery};
    use vintagelake_storage::store::FinancialDataStorage;
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path()).await;
    let (a, b) = (IcebergStore::new(wh.clone()), IcebergStore::new(wh.clone()));
    let mark = || async { arrival_mark(wh.load(TableKind::DataPoints).await.unwrap().metadata()) };
    assert_eq!(mark().await, None, "an empty table has no mark");
    // Writer a: offsets 50.. on its partition; writer b: offset 0 on another, committed later.
    let mut first = rows(1, 50 << 20);
    first[0].point.value = Some(100.0);
    a.append_points(&first, vec![], "ingest").await.unwrap();
    assert_eq!(mark().await, Some(1));
    let mut second = rows(1, 0);
    second[0].point.value = Some(101.0);
    b.append_points(&second, vec![], "ingest").await.unwrap();
    assert_eq!(mark().await, Some(2));
    let stored: Vec<i64> = {
        let t = wh.load(TableKind::DataPoints).await.unwrap();
        let files: Vec<String> =
            vintagelake_storage::files::live_files(&wh, &t, None).await.unwrap().into_iter().map(|f| f.path).collect();
        let rows = vintagelake_storage::store::stored_rows(
            &vintagelake_storage::files::read_data_files(&wh, &files, 2).await.unwrap(),
        )
        .unwrap();
        let mut seqs: Vec<i64> = rows.iter().map(|r| r.ingest_seq).collect();
        seqs.sort();
        seqs
    };
    assert_eq!(stored, [1, 2], "renumbered in commit order");
    let latest = a.query(&VintageQuery::new(View::Latest)).await.unwrap();
    assert_eq!(vintagelake_testkit::fixtures::rows(&latest)[0].2, Some(101.0), "the later commit's correction answers");
    // A rewrite carries the mark; the next append continues after it.
    let t = wh.load(TableKind::DataPoints).await.unwrap();
    let files: Vec<String> =
        vintagelake_storage::files::live_files(&wh, &t, None).await.unwrap().into_iter().map(|f| f.path).collect();
    let all = vintagelake_storage::files::read_data_files(&wh, &files, 2).await.unwrap();
    a.rewrite(
        TableKind::DataPoints,
        files,
        &all,
        vintagelake_storage::commit::CommitKind::Replace,
        "compaction",
        Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(mark().await, Some(2), "carried by the rewrite");
    b.append_points(&rows(3, 7), vec![], "ingest").await.unwrap();
    assert_eq!(mark().await, Some(5));
}
