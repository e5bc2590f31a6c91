//! The storage-trait suite, unchanged, against every backend: in-memory, V1 Parquet, Iceberg.

use vintagelake_storage::store::{IcebergStore, InMemoryStorage};
use vintagelake_testkit::fixtures::{storage_trait_suite, warehouse};
use vintagelake_v1::ParquetStore;

#[tokio::test]
async fn in_memory_backend_passes_the_trait_suite() {
    storage_trait_suite(&InMemoryStorage::new(), "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_v1_backend_passes_the_trait_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = ParquetStore::open(dir.path()).await.unwrap();
    storage_trait_suite(&store, "parquet").await;
    // A second process opening the same directory answers the same.
    let reopened = ParquetStore::open(dir.path()).await.unwrap();
    use vintagelake_storage::store::FinancialDataStorage;
    use vintagelake_testkit::fixtures::{lifecycle_answers, rows};
    let a: Vec<_> = lifecycle_answers(&store).await.iter().map(rows).collect();
    let b: Vec<_> = lifecycle_answers(&reopened).await.iter().map(rows).collect();
    assert_eq!(a, b);
    assert_eq!(reopened.list_series().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iceberg_backend_passes_the_trait_suite() {
    let dir = tempfile::tempdir().unwrap();
    storage_trait_suite(&IcebergStore::new(warehouse(dir.path()).await), "iceberg").await;
}

/// Twenty writers at once through the storage trait, each writing its own series and then
/// correcting some of it: the appends share commits (fewer commits than appends), every caller
/// returns once its rows are committed, and every view answers as the in-memory reference given
/// the same writes.
async fn concurrent_writers_share_commits(
    store: std::sync::Arc<dyn vintagelake_storage::store::FinancialDataStorage>,
) -> usize {
    use vintagelake_storage::store::FinancialDataStorage;
    use vintagelake_testkit::fixtures::{grid, lifecycle_answers, rows, series_record};
    let reference = InMemoryStorage::new();
    let writes = |w: usize| {
        let first: Vec<_> = grid("CW", w..w + 1, 40, 2).into_iter().map(|r| r.point).collect();
        let id = first[0].series_id.clone();
        let mut corrected = first.clone();
        corrected.truncate(10);
        for p in &mut corrected {
            p.value = p.value.map(|v| v + 1_000.0);
        }
        (id, first, corrected)
    };
    let mut tasks = Vec::new();
    for w in 0..20 {
        let store = store.clone();
        let (id, first, corrected) = writes(w);
        tasks.push(tokio::spawn(async move {
            store.write_series(&series_record(id.as_str(), "Concurrent writer")).await.unwrap();
            store.write_data_points(&id, &first).await.unwrap();
            store.write_data_points(&id, &corrected).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for w in 0..20 {
        let (id, first, corrected) = writes(w);
        reference.write_series(&series_record(id.as_str(), "Concurrent writer")).await.unwrap();
        reference.write_data_points(&id, &first).await.unwrap();
        reference.write_data_points(&id, &corrected).await.unwrap();
    }
    let ours: Vec<_> = lifecycle_answers(store.as_ref()).await.iter().map(rows).collect();
    let theirs: Vec<_> = lifecycle_answers(&reference).await.iter().map(rows).collect();
    assert_eq!(ours, theirs, "every view answers as the reference");
    assert_eq!(store.list_series().await.unwrap().len(), 20);
    60 // appends made
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_writers_share_commits_on_parquet_v1() {
    let dir = tempfile::tempdir().unwrap();
    let store = ParquetStore::open(dir.path()).await.unwrap();
    let appends = concurrent_writers_share_commits(std::sync::Arc::new(store.clone())).await;
    let commits = store.log().await.unwrap().len();
    assert!(commits < appends, "{commits} log versions for {appends} appends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_writers_share_commits_on_iceberg() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path()).await;
    let appends = concurrent_writers_share_commits(std::sync::Arc::new(IcebergStore::new(wh.clone()))).await;
    let mut commits = 0;
    for kind in vintagelake_storage::catalog::TableKind::all() {
        commits += wh.load(kind).await.unwrap().metadata().snapshots().count();
    }
    assert!(commits < appends, "{commits} snapshots for {appends} appends");
}
