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
