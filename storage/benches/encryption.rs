//! What encryption at rest costs: the same writes and reads on a plaintext table and on one with
//! every file encrypted (Parquet modular encryption, AES-GCM), side by side.
//!
//! `cargo bench -p vintagelake-storage --bench encryption` (numbers in docs/BENCHMARKS.md).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vintagelake_storage::TableReader;
use vintagelake_storage::catalog::{Warehouse, WarehouseConfig};
use vintagelake_storage::crypto::{Encryption, LocalKeys};
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::IcebergStore;

const SERIES: usize = 1_000;
const DATES: usize = 250;
const REVISIONS: usize = 4;

fn open(rt: &tokio::runtime::Runtime, dir: &std::path::Path, encrypted: bool) -> Arc<IcebergStore> {
    let mut config = WarehouseConfig::new(dir);
    if encrypted {
        let keys = LocalKeys::parse("bench:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=", None).unwrap();
        config = config.with_encryption(Encryption::new(Arc::new(keys)));
    }
    Arc::new(IcebergStore::new(rt.block_on(Warehouse::open(config)).unwrap()))
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let stores = [("plaintext", open(&rt, dirs[0].path(), false)), ("encrypted", open(&rt, dirs[1].path(), true))];

    let mut appends = c.benchmark_group("encryption/append_100000_rows");
    appends.sample_size(20);
    appends.throughput(Throughput::Elements(100_000));
    let batch = vintagelake_testkit::fixtures::grid("APPEND", 0..10_000, 10, 1);
    for (name, store) in &stores {
        appends.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| async { store.append_points(&batch, vec![], "bench").await.unwrap() });
        });
    }
    appends.finish();

    // Fresh tables of exactly 10^6 rows (one commit) for the reads, through the warm read path
    // (the Flight service's), without the hot cache: every read decodes (and decrypts) files.
    let tables = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let million = vintagelake_testkit::fixtures::grid("SERIES", 0..SERIES, DATES, REVISIONS);
    let readers: Vec<(&str, TableReader)> = [("plaintext", false), ("encrypted", true)]
        .into_iter()
        .zip(&tables)
        .map(|((name, encrypted), dir)| {
            let store = open(&rt, dir.path(), encrypted);
            rt.block_on(store.append_points(&million, vec![], "bench")).unwrap();
            (name, TableReader::new(store.warehouse().clone(), 4, Duration::from_secs(60)))
        })
        .collect();
    drop(million);

    let mut full = c.benchmark_group("encryption/read_1e6_rows_latest");
    full.sample_size(10);
    full.throughput(Throughput::Elements((SERIES * DATES * REVISIONS) as u64));
    let latest = VintageQuery::new(View::Latest);
    for (name, reader) in &readers {
        full.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| async { reader.query(&latest).await.unwrap().0.num_rows() })
        });
    }
    full.finish();

    let mut one = c.benchmark_group("encryption/read_one_series_of_1000");
    one.sample_size(30);
    let q = VintageQuery::new(View::Latest).series(["SERIES00500".parse().unwrap()]);
    for (name, reader) in &readers {
        one.bench_function(*name, |b| b.to_async(&rt).iter(|| async { reader.query(&q).await.unwrap().0.num_rows() }));
    }
    one.finish();
}

criterion_group!(encryption, benches);
criterion_main!(encryption);
