//! What a tier's own compression gains: the same superseded revisions moved from the hot tier
//! (zstd 3) into an archive tier that copies them as they are, and into one that re-encodes them
//! at zstd 19 — bytes per revision in each, and what each move costs.
//!
//! `cargo bench -p vintagelake-tierer --bench compression` (numbers in docs/BENCHMARKS.md).

use std::time::Instant;

use tokio_util::sync::CancellationToken;
use vintagelake_schemas::Date;
use vintagelake_storage::catalog::{TableKind, Warehouse, WarehouseConfig};
use vintagelake_storage::config::{RetentionPolicy, TierName};
use vintagelake_storage::files::live_files;
use vintagelake_storage::io::TierSpec;
use vintagelake_storage::store::{IcebergStore, StoredRow};
use vintagelake_tierer::plan::{Pins, Policy};

const SERIES: usize = 1_000;
const DATES: usize = 60;
const REVISIONS: usize = 4;

/// Revisions with values as published series have them: a level per series, a random walk over
/// dates, revisions that move the value a little.
fn rows() -> Vec<StoredRow> {
    let mut rows = vintagelake_testkit::fixtures::grid("BENCH", 0..SERIES, DATES, REVISIONS);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut level = 0.0;
    for (i, r) in rows.iter_mut().enumerate() {
        if i % (DATES * REVISIONS) == 0 {
            level = 100.0 + 10_000.0 * next();
        }
        if i % REVISIONS == 0 {
            level *= 1.0 + (next() - 0.5) * 0.02;
        }
        r.point.value = Some((level * (1.0 + (next() - 0.5) * 0.002) * 1000.0).round() / 1000.0);
    }
    rows
}

/// (bytes, records) of the live files in `tier`.
async fn in_tier(wh: &Warehouse, tier: &str) -> (u64, u64) {
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    live_files(wh, &table, None)
        .await
        .unwrap()
        .iter()
        .filter(|f| f.tier.as_ref().is_some_and(|t| t.as_str() == tier))
        .fold((0, 0), |(b, r), f| (b + f.size_bytes, r + f.records))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rows = rows();
    let today =
        Date::from_days_since_epoch(rows.iter().map(|r| r.point.revision_date.days_since_epoch()).max().unwrap() + 400);
    println!("{} revisions of {SERIES} series; superseded ones move from hot (zstd 3) to archive", rows.len());
    println!(
        "| archive tier | revisions moved | hot bytes/revision | archive bytes/revision | saved | move time | revisions/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for level in [None, Some(9), Some(19)] {
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut archive = TierSpec::local("archive", dir.path().join("archive"));
            archive.zstd_level = level;
            let tiers = vec![TierSpec::local("hot", dir.path().join("hot")), archive];
            let wh = Warehouse::open(WarehouseConfig::new(dir.path()).with_tiers(tiers)).await.unwrap();
            let store = IcebergStore::new(wh.clone());
            for chunk in rows.chunks(50_000) {
                store.append_points(chunk, vec![], "bench").await.unwrap();
            }
            vintagelake_compactor::compact_once(&store, &Default::default(), &CancellationToken::new()).await.unwrap();
            let policy = Policy::new(
                &RetentionPolicy::default(),
                &[(TierName::new("hot"), Some(30)), (TierName::new("archive"), None)],
                true,
            );
            // Bytes per revision of what will move, while it is still hot.
            let closed = {
                let table = wh.load(TableKind::DataPoints).await.unwrap();
                live_files(&wh, &table, None)
                    .await
                    .unwrap()
                    .iter()
                    .filter(|f| f.realtime_end_month.is_some())
                    .fold((0u64, 0u64), |(b, r), f| (b + f.size_bytes, r + f.records))
            };
            let started = Instant::now();
            let report = vintagelake_tierer::tier_once(
                &store,
                &policy,
                &Pins::new(),
                today,
                false,
                2,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
            let seconds = started.elapsed().as_secs_f64();
            let (bytes, records) = in_tier(&wh, "archive").await;
            assert_eq!(records, closed.1, "every superseded revision moved");
            let (hot, cold) = (closed.0 as f64 / closed.1 as f64, bytes as f64 / records as f64);
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.1}% | {:.2} s ({} files, {} re-encoded) | {:.0} |",
                level.map_or("zstd 3 (copy)".to_owned(), |l| format!("zstd {l} (re-encode)")),
                records,
                hot,
                cold,
                (1.0 - cold / hot) * 100.0,
                seconds,
                report.files_moved,
                report.files_reencoded,
                records as f64 / seconds
            );
        });
    }
}
