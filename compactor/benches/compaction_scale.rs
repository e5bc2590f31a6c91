//! Compaction at scale: a table of `SERIES × DATES × REVISIONS` revisions (default 1 000 × 1 000
//! × 100 = 10⁸) built as ingest and compaction leave it — every key's newest revision current,
//! the others closed in month partitions — then one more revision of every key arrives and one
//! compaction run is measured in a process of its own: its wall time, the rows it folded, and its
//! peak resident memory (`VmHWM`), at the default memory limit and at a quarter of it; then a run
//! with nothing new. Numbers in docs/BENCHMARKS.md.
//!
//! `cargo bench -p vintagelake-compactor --bench compaction_scale`
//! (`VINTAGELAKE_BENCH_REVISIONS=10` for a 10⁷-row table; `VINTAGELAKE_BENCH_DIR` to keep it;
//! with `VINTAGELAKE_BENCH_PREPARE_ONLY=1` too, it stops before the measured run, which
//! `VINTAGELAKE_BENCH_CHILD=<dir>` then runs alone, e.g. under `perf record`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use vintagelake_compactor::{CompactOptions, compact_once};
use vintagelake_schemas::model::derived_data_point_id;
use vintagelake_schemas::table::StoredDataPoint;
use vintagelake_schemas::{DataPoint, Date, SeriesId, Timestamp};
use vintagelake_storage::catalog::{Warehouse, WarehouseConfig};
use vintagelake_storage::store::IcebergStore;

const CHILD: &str = "VINTAGELAKE_BENCH_CHILD";
const FIRST_DATE: i32 = 10_957; // 2000-01-01

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Revision `round` of every key: published 30 days after the previous one.
fn round_rows(series: &[SeriesId], dates: usize, round: usize, seq: &mut i64) -> Vec<StoredDataPoint> {
    let mut rows = Vec::with_capacity(series.len() * dates);
    for (s, id) in series.iter().enumerate() {
        for d in 0..dates {
            let date = Date::from_days_since_epoch(FIRST_DATE + d as i32);
            let revision_date = Date::from_days_since_epoch(FIRST_DATE + dates as i32 + 30 * round as i32);
            let value = ((s * 7_919 + d * 104_729 + round * 15_485_863) % 1_000_003) as f64 / 100.0;
            let at = Timestamp::from_nanos(1_700_000_000_000_000_000 + *seq);
            rows.push(StoredDataPoint {
                point: DataPoint {
                    id: derived_data_point_id(id, date, revision_date),
                    series_id: id.clone(),
                    date,
                    value: Some(value),
                    revision_date,
                    is_original_release: round == 0,
                    created_at: at,
                    updated_at: at,
                },
                realtime_end: None,
                ingest_seq: *seq,
                status: None,
                comment: None,
            });
            *seq += 1;
        }
    }
    rows
}

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn options(memory_mb: u64) -> CompactOptions {
    CompactOptions {
        memory_limit_bytes: memory_mb << 20,
        snapshot_retention: Duration::ZERO,
        keep_snapshots: 1,
        orphan_grace: Duration::ZERO,
        concurrency: 2,
        ..CompactOptions::default()
    }
}

/// The measured run, in a process of its own so its peak memory is its own.
fn child(dir: &Path, memory_mb: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let report = rt.block_on(async {
        let store = IcebergStore::new(Warehouse::open(WarehouseConfig::new(dir)).await.unwrap());
        let started = Instant::now();
        let report = compact_once(&store, &options(memory_mb), &CancellationToken::new()).await.unwrap();
        (report, started.elapsed())
    });
    let (report, took) = report;
    println!(
        "{}",
        serde_json::json!({
            "seconds": took.as_secs_f64(),
            "rows_in": report.rows.rows_in,
            "files_in": report.files_in,
            "chunks": report.chunks,
            "largest_chunk_rows": report.largest_chunk_rows,
            "chunk_budget_rows": report.chunk_budget_rows,
            "arrivals_mib": report.arrivals_bytes >> 20,
            "peak_rss_mib": peak_rss_kib() / 1024,
        })
    );
}

fn measure(dir: &Path, memory_mb: u64) -> serde_json::Value {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, dir)
        .env("VINTAGELAKE_BENCH_MEMORY_MB", memory_mb.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(out.stdout.trim_ascii()).unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(dir) = std::env::var_os(CHILD) {
        child(Path::new(&dir), setting("VINTAGELAKE_BENCH_MEMORY_MB", 512) as u64);
        return;
    }
    let (n_series, dates, revisions) = (
        setting("VINTAGELAKE_BENCH_SERIES", 1_000),
        setting("VINTAGELAKE_BENCH_DATES", 1_000),
        setting("VINTAGELAKE_BENCH_REVISIONS", 100),
    );
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("VINTAGELAKE_BENCH_DIR").map_or(temp.path().to_path_buf(), Into::into);
    let series: Vec<SeriesId> = (0..n_series).map(|s| format!("BENCH{s:05}").parse().unwrap()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let store = rt.block_on(async { IcebergStore::new(Warehouse::open(WarehouseConfig::new(&dir)).await.unwrap()) });
    let mut seq = 0i64;
    let built = Instant::now();
    // The table as ingest and compaction leave it: a round of revisions arrives, compaction runs.
    for round in 0..revisions - 1 {
        let rows = round_rows(&series, dates, round, &mut seq);
        rt.block_on(async {
            for commit in rows.chunks(250_000) {
                store.append_points(commit, vec![], "ingest").await.unwrap();
            }
            compact_once(&store, &options(512), &CancellationToken::new()).await.unwrap();
        });
        eprintln!("built round {round}: {} rows, {:.0} s", seq, built.elapsed().as_secs_f64());
    }
    // One more revision of every key arrives; the run that folds it is measured. Then another,
    // measured at a quarter of the memory limit.
    let mut runs = Vec::new();
    for (round, memory_mb) in [(revisions - 1, 512u64), (revisions, 128)] {
        let arrivals = round_rows(&series, dates, round, &mut seq);
        rt.block_on(async {
            for commit in arrivals.chunks(250_000) {
                store.append_points(commit, vec![], "ingest").await.unwrap();
            }
        });
        drop(arrivals);
        let table_rows = seq as usize;
        if std::env::var_os("VINTAGELAKE_BENCH_PREPARE_ONLY").is_some() {
            // For a profile of the run alone: VINTAGELAKE_BENCH_CHILD=<dir> perf record <this bench>.
            println!("table of {table_rows} revisions prepared in {}, arrivals not yet compacted", dir.display());
            return;
        }
        let r = measure(&dir, memory_mb);
        let rows = r["rows_in"].as_u64().unwrap();
        let seconds = r["seconds"].as_f64().unwrap();
        runs.push(format!(
            "table of {table_rows} revisions, COMPACTION_MEMORY_MB={memory_mb}: {rows} rows folded in {seconds:.2} s = {:.0} rows/s, peak RSS {} MiB (arrivals and their index {} MiB), {} chunks (budget {} rows, largest {}), {} files read",
            rows as f64 / seconds,
            r["peak_rss_mib"],
            r["arrivals_mib"],
            r["chunks"],
            r["chunk_budget_rows"],
            r["largest_chunk_rows"],
            r["files_in"],
        ));
        println!("{}", runs.last().unwrap());
    }
    let total = seq as usize;
    println!(
        "table: {total} revisions ({n_series} series × {dates} dates × {} revisions), built and measured in {:.0} s",
        revisions + 1,
        built.elapsed().as_secs_f64()
    );
    rt.block_on(async {
        compact_once(&store, &options(512), &CancellationToken::new()).await.unwrap();
        let mut times = Vec::new();
        for _ in 0..10 {
            let started = Instant::now();
            let report = compact_once(&store, &options(512), &CancellationToken::new()).await.unwrap();
            times.push(started.elapsed().as_secs_f64() * 1e3);
            assert_eq!((report.files_in, report.snapshot_id), (0, None));
        }
        times.sort_by(f64::total_cmp);
        println!(
            "a run with nothing new on the {total}-row table: median {:.1} ms (min {:.1}, max {:.1})",
            times[5], times[0], times[9]
        );
    });
}
