//! The storage benchmarks the product started from (`cargo bench --bench performance`): single
//! operations and concurrent ones through the storage trait, on both backends a user can run —
//! V1 (`STORAGE_TYPE=parquet`: plain Parquet files and a commit log) and V2 (`STORAGE_TYPE=iceberg`:
//! Iceberg tables, SQLite catalog) — each in a temporary directory on the local disk.
//!
//! Groups (filter with `cargo bench --bench performance -- storage_operations`):
//! - `storage_operations/{series_write,series_read,points_write_1000,points_read_1000}/<backend>`:
//!   one operation at a time; every write is its own durable commit.
//! - `concurrent_operations/{write,read}_1000/<backend>/<n>` for n = 1, 5, 20: n operations at
//!   once (each 1 000 points of its own series); throughput is operations per second, so linear
//!   scaling shows as throughput growing with n.
//!
//! Numbers and the machine they came from: docs/BENCHMARKS.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::future::try_join_all;
use vintagelake_schemas::{DataPoint, SeriesId};
use vintagelake_storage::catalog::{Warehouse, WarehouseConfig};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};
use vintagelake_testkit::fixtures::{grid, series_record};
use vintagelake_v1::ParquetStore;

/// Series that the read benchmarks look up, written before any timing starts.
const PREPARED: usize = 20;
const CONCURRENCY: [usize; 3] = [1, 5, 20];

/// 1 000 points of one series: 250 dates, each published and revised three times.
fn thousand_points(prefix: &str, n: usize) -> Vec<DataPoint> {
    grid(prefix, n..n + 1, 250, 4).into_iter().map(|r| r.point).collect()
}

fn id(prefix: &str, n: usize) -> SeriesId {
    format!("{prefix}{n:05}").parse().expect("valid id")
}

struct Backend {
    name: &'static str,
    store: Arc<dyn FinancialDataStorage>,
    _dir: tempfile::TempDir,
}

async fn backends() -> Vec<Backend> {
    let v1_dir = tempfile::tempdir().expect("temp dir");
    let v1 = ParquetStore::open(v1_dir.path()).await.expect("V1 store");
    let v2_dir = tempfile::tempdir().expect("temp dir");
    let v2 = IcebergStore::new(Warehouse::open(WarehouseConfig::new(v2_dir.path())).await.expect("warehouse"));
    let mut out = vec![
        Backend { name: "parquet_v1", store: Arc::new(v1), _dir: v1_dir },
        Backend { name: "iceberg_v2", store: Arc::new(v2), _dir: v2_dir },
    ];
    for b in &mut out {
        for n in 0..PREPARED {
            b.store.write_series(&series_record(id("READ", n).as_str(), "Prepared series")).await.expect("series");
            b.store.write_data_points(&id("READ", n), &thousand_points("READ", n)).await.expect("points");
        }
    }
    out
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let backends = rt.block_on(backends());
    // Every write goes to a series no earlier iteration used, so no benchmark rewrites old rows.
    let next = Arc::new(AtomicUsize::new(0));

    let mut single = c.benchmark_group("storage_operations");
    single.sample_size(20);
    for b in &backends {
        let store = b.store.clone();
        single.bench_function(BenchmarkId::new("series_write", b.name), |bench| {
            bench.to_async(&rt).iter(|| {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let store = store.clone();
                async move { store.write_series(&series_record(id("WS", n).as_str(), "Benchmark series")).await.unwrap() }
            });
        });
        single.bench_function(BenchmarkId::new("series_read", b.name), |bench| {
            let wanted = id("READ", PREPARED / 2);
            bench.to_async(&rt).iter(|| async { assert!(store.read_series(&wanted).await.unwrap().is_some()) });
        });
        single.throughput(Throughput::Elements(1_000));
        single.bench_function(BenchmarkId::new("points_write_1000", b.name), |bench| {
            bench.to_async(&rt).iter_batched(
                || {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    (id("WP", n), thousand_points("WP", n))
                },
                |(series, points)| {
                    let store = store.clone();
                    async move { store.write_data_points(&series, &points).await.unwrap() }
                },
                criterion::BatchSize::SmallInput,
            );
        });
        single.bench_function(BenchmarkId::new("points_read_1000", b.name), |bench| {
            let wanted = id("READ", PREPARED / 2);
            bench.to_async(&rt).iter(|| async {
                let points = store.read_data_points(&wanted, None, None).await.unwrap();
                assert_eq!(points.len(), 1_000);
            });
        });
        single.throughput(Throughput::Elements(1));
    }
    single.finish();

    let mut concurrent = c.benchmark_group("concurrent_operations");
    concurrent.sample_size(10);
    for b in &backends {
        for n in CONCURRENCY {
            concurrent.throughput(Throughput::Elements(n as u64));
            let store = b.store.clone();
            concurrent.bench_function(BenchmarkId::new(format!("write_1000/{}", b.name), n), |bench| {
                bench.to_async(&rt).iter_batched(
                    || {
                        (0..n)
                            .map(|_| {
                                let k = next.fetch_add(1, Ordering::Relaxed);
                                (id("CW", k), thousand_points("CW", k))
                            })
                            .collect::<Vec<_>>()
                    },
                    |writes| {
                        let store = store.clone();
                        async move {
                            try_join_all(writes.iter().map(|(s, p)| store.write_data_points(s, p))).await.unwrap();
                        }
                    },
                    criterion::BatchSize::SmallInput,
                );
            });
            concurrent.bench_function(BenchmarkId::new(format!("read_1000/{}", b.name), n), |bench| {
                let ids: Vec<SeriesId> = (0..n).map(|k| id("READ", k % PREPARED)).collect();
                bench.to_async(&rt).iter(|| async {
                    let reads = try_join_all(ids.iter().map(|s| store.read_data_points(s, None, None))).await.unwrap();
                    assert!(reads.iter().all(|r| r.len() == 1_000));
                });
            });
        }
    }
    concurrent.finish();
}

criterion_group!(performance, benches);
criterion_main!(performance);
