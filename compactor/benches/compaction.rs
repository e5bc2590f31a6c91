//! Compaction throughput: rows rewritten per second by one run over a table of small files, as
//! ingest leaves it (200 commits, ~209 000 revisions with corrections and duplicates); and the
//! cost of a run with nothing new on a compacted table whose current rows span several files.
//!
//! `cargo bench -p vintagelake-compactor --bench compaction` (numbers in docs/BENCHMARKS.md).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio_util::sync::CancellationToken;
use vintagelake_compactor::{CompactOptions, compact_once};
use vintagelake_storage::catalog::{Warehouse, WarehouseConfig};
use vintagelake_storage::store::IcebergStore;
use vintagelake_testkit::fixtures::revision_stream;

const COMMITS: usize = 200;

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rows = revision_stream("B", 0..200, 250, 4);
    let mut group = c.benchmark_group("compaction");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function(format!("{COMMITS}_small_files_{}_rows", rows.len()), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                // A fresh table of small files for every run (not timed).
                let dir = tempfile::tempdir().unwrap();
                let store = rt.block_on(async {
                    let store = IcebergStore::new(Warehouse::open(WarehouseConfig::new(dir.path())).await.unwrap());
                    for chunk in rows.chunks(rows.len().div_ceil(COMMITS)) {
                        store.append_points(chunk, vec![], "ingest").await.unwrap();
                    }
                    store
                });
                let started = Instant::now();
                let report =
                    rt.block_on(compact_once(&store, &CompactOptions::default(), &CancellationToken::new())).unwrap();
                total += started.elapsed();
                assert_eq!(report.rows.rows_in, rows.len());
            }
            total
        });
    });
    // Nothing new: a compacted table of 280 000 revisions whose 140 000 current rows span two
    // files; each timed run plans, finds nothing to do, expires and scans for orphans.
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(async {
        let store = IcebergStore::new(Warehouse::open(WarehouseConfig::new(dir.path())).await.unwrap());
        let rows = revision_stream("N", 0..1_000, 140, 2);
        for chunk in rows.chunks(rows.len().div_ceil(20)) {
            store.append_points(chunk, vec![], "ingest").await.unwrap();
        }
        compact_once(&store, &CompactOptions::default(), &CancellationToken::new()).await.unwrap();
        store
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("a_run_with_nothing_new", |b| {
        b.iter(|| {
            let report =
                rt.block_on(compact_once(&store, &CompactOptions::default(), &CancellationToken::new())).unwrap();
            assert_eq!((report.files_in, report.snapshot_id), (0, None));
        });
    });
    group.finish();
}

criterion_group!(compaction, benches);
criterion_main!(compaction);
