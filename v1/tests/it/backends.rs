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
