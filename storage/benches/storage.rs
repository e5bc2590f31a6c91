//! Storage benchmarks: append-commit latency and scan throughput over 10^6 rows.
//!
//! `cargo bench -p vintagelake-storage` (numbers and machine in docs/BENCHMARKS.md).

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vintagelake_schemas::Date;
use vintagelake_storage::catalog::{Warehouse, WarehouseConfig};
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};

const SERIES: usize = 1_000;
const DATES: usize = 250;
const REVISIONS: usize = 4;

fn dataset(series: usize, dates: usize, revisions: usize) -> Vec<vintagelake_storage::store::StoredRow> {
    vintagelake_testkit::fixtures::grid("SERIES", 0..series, dates, revisions)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(IcebergStore::new(rt.block_on(Warehouse::open(WarehouseConfig::new(dir.path()))).unwrap()));

    let mut appends = c.benchmark_group("append_commit");
    appends.sample_size(30);
    for rows in [1_000usize, 100_000] {
        let batch = dataset(rows / 10, 10, 1);
        appends.throughput(Throughput::Elements(rows as u64));
        appends.bench_with_input(BenchmarkId::from_parameter(rows), &batch, |b, batch| {
            b.to_async(&rt).iter(|| async { store.append_points(batch, vec![], "bench").await.unwrap() });
        });
    }
    appends.finish();

    // A fresh table holding exactly 10^6 rows (one commit) for the scans.
    let dir2 = tempfile::tempdir().unwrap();
    let scan_store =
        Arc::new(IcebergStore::new(rt.block_on(Warehouse::open(WarehouseConfig::new(dir2.path()))).unwrap()));
    let million = dataset(SERIES, DATES, REVISIONS);
    rt.block_on(scan_store.append_points(&million, vec![], "bench")).unwrap();
    drop(million);

    let mut scans = c.benchmark_group("scan_1e6_rows");
    scans.sample_size(10);
    scans.throughput(Throughput::Elements((SERIES * DATES * REVISIONS) as u64));
    for (name, view) in [("all_revisions", View::AllRevisions), ("latest", View::Latest)] {
        let q = VintageQuery::new(view);
        scans.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async { scan_store.query(&q).await.unwrap().num_rows() });
        });
    }
    scans.finish();

    let mut point = c.benchmark_group("scan_one_series_of_1000");
    point.sample_size(20);
    let one = VintageQuery::new(View::Latest).series(["SERIES00500".parse().unwrap()]);
    point.bench_function("latest", |b| {
        b.to_async(&rt).iter(|| async { scan_store.query(&one).await.unwrap().num_rows() })
    });
    let as_of =
        VintageQuery::new(View::AsOf(Date::from_days_since_epoch(14_000))).series(["SERIES00500".parse().unwrap()]);
    point.bench_function("as_of", |b| {
        b.to_async(&rt).iter(|| async { scan_store.query(&as_of).await.unwrap().num_rows() })
    });
    point.finish();
}

criterion_group!(storage, benches);
criterion_main!(storage);
