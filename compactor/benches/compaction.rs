//! Compaction throughput: rows rewritten per second by one run over a table of small files, as
//! ingest leaves it (200 commits, ~209 000 revisions with corrections and duplicates).
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
    group.finish();
}

criterion_group!(compaction, benches);
criterion_main!(compaction);
