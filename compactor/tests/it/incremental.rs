//! Incremental compaction in bounded memory: a run reads only the current files the new rows
//! touch, folds them chunk by chunk, and every view stays what it was — on random streams with
//! corrections, exact re-publications, nulls and out-of-order backfills — checked against the
//! in-memory oracle, a reference computed here, pyiceberg and DuckDB.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;
use vintagelake_compactor::rewrite::ROW_BYTES_IN_FLIGHT;
use vintagelake_compactor::{CompactOptions, compact_once};
use vintagelake_schemas::Date;
use vintagelake_schemas::model::derived_data_point_id;
use vintagelake_schemas::table::StoredDataPoint;
use vintagelake_storage::catalog::{TableKind, Warehouse, WarehouseConfig};
use vintagelake_storage::files::{LiveFile, live_files, written_by_compaction};
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore, InMemoryStorage};
use vintagelake_testkit::fixtures::{lifecycle_answers, point, rows};
use vintagelake_testkit::tools::{DUCKDB_ICEBERG_PRELUDE, duckdb_iceberg_python, pyiceberg_python, run_python};

/// `(series, date)` → the newest revision's value: the reference's latest view.
type Latest = BTreeMap<(String, i32), (i32, Option<f64>)>;

fn day(d: i32) -> String {
    Date::from_days_since_epoch(d).to_string()
}

/// The latest view computed from the arrivals alone: per key, the newest revision date; of its
/// arrivals, the last one (a correction replaces the value, a re-publication repeats it).
fn reference(arrivals: &[StoredDataPoint]) -> Latest {
    let mut latest = Latest::new();
    for a in arrivals {
        let key = (a.point.series_id.to_string(), a.point.date.days_since_epoch());
        let revision = a.point.revision_date.days_since_epoch();
        match latest.get(&key) {
            Some((r, _)) if *r > revision => {}
            _ => {
                latest.insert(key, (revision, a.point.value));
            }
        }
    }
    latest
}

fn lines(latest: &Latest) -> Vec<String> {
    latest
        .iter()
        .map(|((s, d), (_, v))| format!("{s}|{}|{}", day(*d), v.map(|v| format!("{v:?}")).unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_in_small_chunks_keep_every_view_on_random_streams() {
    let dir = tempfile::tempdir().unwrap();
    // Small target files, so the current rows of 40 series span many files.
    let wh = Warehouse::open(WarehouseConfig::new(dir.path()).with_target_file_size(4 << 10)).await.unwrap();
    let store = IcebergStore::new(wh.clone());
    let oracle = InMemoryStorage::new();
    // A budget of 150 rows per chunk: every run folds in several chunks.
    let options = CompactOptions { memory_limit_bytes: 2 * ROW_BYTES_IN_FLIGHT * 150, ..CompactOptions::default() };
    let cancel = CancellationToken::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1c_2026);
    let series: Vec<String> = (0..40).map(|i| format!("S{i:02}")).collect();
    let mut arrivals: Vec<StoredDataPoint> = Vec::new();
    let (mut seq, mut kept_total, mut chunks_total, mut backfilled_rounds) = (0i64, 0, 0, 0);
    for round in 0..14 {
        // Every third round touches one series only: the run must leave the other files alone.
        let only = (round % 3 == 2).then(|| rng.random_range(0..series.len()));
        let n = if only.is_some() { rng.random_range(5..30) } else { rng.random_range(100..400) };
        let mut batch: Vec<StoredDataPoint> = Vec::new();
        for _ in 0..n {
            let s = only.unwrap_or_else(|| rng.random_range(0..series.len()));
            let date = 10_957 + 30 * rng.random_range(0..12);
            // Revisions in any order: a backfill lands below a key's open revision.
            let revision = date + 20 + 30 * rng.random_range(0..8);
            let previous = arrivals.iter().chain(&batch).rfind(|a| {
                a.point.series_id.as_str() == series[s]
                    && a.point.date.days_since_epoch() == date
                    && a.point.revision_date.days_since_epoch() == revision
            });
            let value = match (previous, rng.random_range(0..10)) {
                // An exact re-publication.
                (Some(p), 0..=2) => p.point.value,
                // A correction.
                (Some(_), 3..=4) => Some(rng.random_range(0..50) as f64),
                // A null now and then.
                _ if rng.random_bool(0.1) => None,
                _ => Some(rng.random_range(0..1000) as f64 / 4.0),
            };
            let point = point(&series[s], &day(date), &day(revision), value, rng.random_bool(0.3));
            batch.push(StoredDataPoint { point, realtime_end: None, ingest_seq: seq, status: None, comment: None });
            seq += 1;
        }
        for commit in batch.chunks(batch.len().div_ceil(rng.random_range(1..4))) {
            store.append_points(commit, vec![], "ingest").await.unwrap();
            oracle.append_points(commit.to_vec()).await;
        }
        arrivals.extend(batch);

        let before = lifecycle_answers(&store).await;
        let table = wh.load(TableKind::DataPoints).await.unwrap();
        let open_before: Vec<LiveFile> = live_files(&wh, &table, None)
            .await
            .unwrap()
            .into_iter()
            .filter(|f| f.realtime_end_month.is_none() && written_by_compaction(&table, f))
            .collect();
        let report = compact_once(&store, &options, &cancel).await.unwrap();
        eprintln!(
            "round {round}: files in {}, open files kept {}, chunks {}, largest chunk {} rows, backfills re-closed {}",
            report.files_in,
            report.open_files_kept,
            report.chunks,
            report.largest_chunk_rows,
            report.rows.periods_corrected
        );
        assert!(report.snapshot_id.is_some(), "round {round}: something arrived");
        let after = lifecycle_answers(&store).await;
        assert_eq!(after, before, "round {round}: every view answers the same after the run");
        assert_eq!(after, lifecycle_answers(&oracle).await, "round {round}: and what the oracle answers");
        let latest = rows(&store.query(&VintageQuery::new(View::Latest)).await.unwrap());
        let got: Latest = latest
            .iter()
            .map(|(s, d, v, start, _)| {
                let days = |x: &str| Date::parse_iso(x).unwrap().days_since_epoch();
                ((s.clone(), days(d)), (days(start), *v))
            })
            .collect();
        assert_eq!(got, reference(&arrivals), "round {round}: latest equals the reference");
        assert!(report.chunks >= 1);
        if let Some(s) = only {
            // Of the current files compaction wrote, the run rewrote only those whose bounds admit
            // the one series that arrived, and small ones (merged).
            let table = wh.load(TableKind::DataPoints).await.unwrap();
            let live: BTreeSet<String> =
                live_files(&wh, &table, None).await.unwrap().into_iter().map(|f| f.path).collect();
            let small = (wh.target_file_size() as f64 * options.small_file_fraction) as u64;
            for f in open_before.iter().filter(|f| !live.contains(&f.path)) {
                assert!(
                    f.bounds().admits(Some(&series[s]), None, None) || f.size_bytes < small,
                    "round {round}: rewrote {} ({:?}) though only {} arrived",
                    f.path,
                    f.bounds().series,
                    series[s]
                );
            }
            let rewritten = open_before.iter().filter(|f| !live.contains(&f.path)).count();
            assert_eq!(report.open_files_kept, open_before.len() - rewritten, "round {round}");
        }
        kept_total += report.open_files_kept;
        chunks_total += report.chunks;
        backfilled_rounds += usize::from(report.rows.periods_corrected > 0);
    }
    assert!(kept_total > 0 && chunks_total > 14, "incremental and chunked: {kept_total} kept, {chunks_total} chunks");
    assert!(backfilled_rounds > 0, "the stream backfilled below open revisions");

    // A run with nothing new commits nothing.
    let idle = compact_once(&store, &options, &cancel).await.unwrap();
    assert_eq!((idle.files_in, idle.snapshot_id), (0, None));

    // pyiceberg and DuckDB read the current rows of the table (one per key after compaction) and
    // find the reference's latest values.
    let data = dir.path().to_str().unwrap().to_owned();
    let metadata = table_metadata(&wh).await;
    let (py, duck) = tokio::task::spawn_blocking(move || {
        let py = run_python(&pyiceberg_python().unwrap(), PYICEBERG, &[&data]).expect("pyiceberg script");
        let duck =
            run_python(&duckdb_iceberg_python().unwrap(), &format!("{DUCKDB_ICEBERG_PRELUDE}{DUCKDB}"), &[&metadata])
                .expect("duckdb script");
        (py, duck)
    })
    .await
    .unwrap();
    let want = lines(&reference(&arrivals));
    let got = |out: &str| out.lines().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(got(&py), want, "pyiceberg");
    assert_eq!(got(&duck), want, "DuckDB");
}

async fn table_metadata(wh: &Warehouse) -> String {
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    table.metadata_location().unwrap().trim_start_matches("file://").to_owned()
}

const PYICEBERG: &str = r#"
import sys
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("vintagelake", uri="sqlite:///" + sys.argv[1] + "/catalog.sqlite", warehouse="file://" + sys.argv[1] + "/warehouse")
t = cat.load_table("econ.data_points").scan(row_filter="realtime_end is null").to_arrow()
t = t.sort_by([("series_id", "ascending"), ("date", "ascending")])
for r in t.to_pylist():
    v = "" if r["value"] is None else repr(float(r["value"]))
    print(f'{r["series_id"]}|{r["date"]}|{v}')
"#;

/// Run after [`DUCKDB_ICEBERG_PRELUDE`].
const DUCKDB: &str = r#"
rows = con.execute("""SELECT series_id, date, value FROM iceberg_scan(?) WHERE realtime_end IS NULL
                      ORDER BY series_id, date""", [sys.argv[1]]).fetchall()
for s, d, v in rows:
    v = "" if v is None else repr(float(v))
    print(f"{s}|{d}|{v}")
"#;

/// New revisions of one series on a table whose current rows span many files: the run reads the
/// new rows and the one current file that series lives in, nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_revisions_of_one_series_rewrite_only_the_file_it_lives_in() {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(WarehouseConfig::new(dir.path()).with_target_file_size(64 << 10)).await.unwrap();
    let store = IcebergStore::new(wh.clone());
    let oracle = InMemoryStorage::new();
    let rows = vintagelake_testkit::fixtures::revision_stream("I", 0..1_000, 100, 2);
    for chunk in rows.chunks(rows.len().div_ceil(10)) {
        store.append_points(chunk, vec![], "ingest").await.unwrap();
        oracle.append_points(chunk.to_vec()).await;
    }
    let cancel = CancellationToken::new();
    compact_once(&store, &CompactOptions::default(), &cancel).await.unwrap();
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let open: Vec<LiveFile> =
        live_files(&wh, &table, None).await.unwrap().into_iter().filter(|f| f.realtime_end_month.is_none()).collect();
    assert!(open.len() >= 4, "the current rows span several files: {}", open.len());

    // A new revision of every date of one series (and a correction of one of them).
    let series = "I00100";
    let mut newest: BTreeMap<Date, StoredDataPoint> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.point.series_id.as_str() == series) {
        if newest.get(&r.point.date).is_none_or(|n| n.point.revision_date <= r.point.revision_date) {
            newest.insert(r.point.date, r.clone());
        }
    }
    let mut new: Vec<StoredDataPoint> = newest
        .into_values()
        .map(|mut r| {
            r.point.revision_date = Date::from_days_since_epoch(r.point.revision_date.days_since_epoch() + 400);
            r.point.value = r.point.value.map(|v| v * 2.0);
            r.point.id = derived_data_point_id(&r.point.series_id, r.point.date, r.point.revision_date);
            r
        })
        .collect();
    assert!(!new.is_empty(), "the fixture has series {series}");
    let mut correction = new[0].clone();
    correction.point.value = Some(-1.0);
    new.push(correction);
    for (i, r) in new.iter_mut().enumerate() {
        r.ingest_seq = rows.len() as i64 + i as i64;
    }
    store.append_points(&new, vec![], "ingest").await.unwrap();
    oracle.append_points(new.clone()).await;
    let before = lifecycle_answers(&store).await;

    let report = compact_once(&store, &CompactOptions::default(), &cancel).await.unwrap();
    // The files whose bounds admit the series, and small ones (merged by any run with arrivals).
    let small = (wh.target_file_size() as f64 * CompactOptions::default().small_file_fraction) as u64;
    let holding: Vec<&LiveFile> =
        open.iter().filter(|f| f.bounds().admits(Some(series), None, None) || f.size_bytes < small).collect();
    eprintln!("{} current files, {} hold {series} or are small: {report:?}", open.len(), holding.len());
    assert!(holding.len() < open.len());
    assert_eq!(report.files_in, 1 + holding.len(), "the new file and the files holding {series}");
    assert_eq!(report.open_files_kept, open.len() - holding.len());
    let held: u64 = holding.iter().map(|f| f.records).sum();
    assert_eq!(report.rows.rows_in as u64, held + new.len() as u64, "rows read: those files and the new rows");
    assert_eq!(report.rows.periods_closed, new.len() - 1, "each new revision closed the one before");
    let after = lifecycle_answers(&store).await;
    assert_eq!(after, before);
    assert_eq!(after, lifecycle_answers(&oracle).await);
}
