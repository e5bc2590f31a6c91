//! Vintage views of the Iceberg backend against the hand-computed fixture, before and after a
//! rewrite that merges all files into one (every backend: `backends.rs`).

use std::collections::BTreeMap;

use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::CommitKind;
use vintagelake_storage::files::{live_files, read_data_files};
use vintagelake_storage::store::IcebergStore;

use crate::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iceberg_store_answers_the_fixture_before_and_after_a_full_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let store = IcebergStore::new(warehouse(dir.path()).await);
    write_fixture(&store).await;
    check_views(&store, "iceberg, one file per vintage").await;

    let wh = store.warehouse().clone();
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let files = live_files(&wh, &table, None).await.unwrap();
    assert_eq!(files.len(), 6, "one file per write");
    let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    let all_rows = read_data_files(&wh, &paths, 4).await.unwrap();
    let committed = store
        .rewrite(TableKind::DataPoints, paths.clone(), &all_rows, CommitKind::Replace, "compaction", BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(committed.removed_files, 6);
    assert_eq!(committed.added_files, 1);
    assert_eq!(committed.removed_records, committed.added_records);
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let after = live_files(&wh, &table, None).await.unwrap();
    assert_eq!(after.len(), 1);
    assert!(!paths.contains(&after[0].path));
    check_views(&store, "iceberg, after merging every file").await;
}

/// Random revision streams — corrections with and without the flag, exact duplicates, missing
/// values, out-of-order backfills, keys never flagged — arrive in random batches, with compaction
/// (`close_periods` over the current rows, as the compactor runs it) at random points. After every
/// step every view equals a reference written here from the documented rules.
#[test]
fn every_view_follows_the_rules_through_random_arrivals_and_compactions() {
    use std::collections::BTreeMap;

    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type, TimeUnit};
    use rand::{Rng, SeedableRng};
    use vintagelake_schemas::table::{StoredDataPoint, batch_to_stored_data_points, stored_data_points_to_batch};
    use vintagelake_schemas::{Date, Timestamp};
    use vintagelake_storage::scan::{OPEN_END, View, VintageQuery, close_periods, resolve};

    /// One arrival: (series, date, revision) in days, value, flag, arrival number.
    #[derive(Debug, Clone)]
    struct Arrival {
        series: usize,
        date: i32,
        revision: i32,
        value: Option<f64>,
        flag: bool,
        seq: i64,
    }
    /// A view row: (series, date, revision, value bits, flag, realtime_end, created_at ns).
    type Row = (String, i32, i32, Option<u64>, bool, i32, i64);

    fn reference(arrivals: &[Arrival], view: View) -> Vec<Row> {
        // Per key and revision: the last arrival answers, and the revision is flagged when any
        // arrival flagged it.
        let mut keys: BTreeMap<(usize, i32), BTreeMap<i32, (Arrival, bool)>> = BTreeMap::new();
        let mut sorted = arrivals.to_vec();
        sorted.sort_by_key(|a| a.seq);
        for a in sorted {
            if let View::AsOf(t) = view
                && a.revision > t.days_since_epoch()
            {
                continue;
            }
            let revisions = keys.entry((a.series, a.date)).or_default();
            match revisions.get_mut(&a.revision) {
                Some((current, flagged)) => {
                    *flagged |= a.flag;
                    *current = a;
                }
                None => {
                    let flag = a.flag;
                    revisions.insert(a.revision, (a, flag));
                }
            }
        }
        let mut out = Vec::new();
        for ((series, date), revisions) in keys {
            let list: Vec<(&i32, &(Arrival, bool))> = revisions.iter().collect();
            let row = |k: usize, end: i32| -> Row {
                let (a, flagged) = list[k].1;
                (format!("P{series}"), date, a.revision, a.value.map(f64::to_bits), *flagged, end, created(a.seq))
            };
            let end = |k: usize| list.get(k + 1).map_or(OPEN_END.days_since_epoch(), |(r, _)| **r - 1);
            match view {
                View::Latest | View::AsOf(_) => out.push(row(list.len() - 1, OPEN_END.days_since_epoch())),
                View::FirstRelease => {
                    let k = list.iter().position(|(_, (_, f))| *f).unwrap_or(0);
                    out.push(row(k, end(k)));
                }
                View::AllRevisions => (0..list.len()).for_each(|k| out.push(row(k, end(k)))),
            }
        }
        out
    }

    fn created(seq: i64) -> i64 {
        1_700_000_000_000_000_000 + seq * 1_000_000_000
    }

    fn stored(a: &Arrival) -> StoredDataPoint {
        let day = |d: i32| Date::from_days_since_epoch(d).to_string();
        let mut p = point(&format!("P{}", a.series), &day(a.date), &day(a.revision), a.value, a.flag);
        p.created_at = Timestamp::from_nanos(created(a.seq));
        p.updated_at = p.created_at;
        StoredDataPoint { point: p, realtime_end: None, ingest_seq: a.seq << 20 }
    }

    fn rows_of(b: &RecordBatch) -> Vec<Row> {
        let s = b.column_by_name("series_id").unwrap().as_string::<i32>();
        let d = b.column_by_name("date").unwrap().as_primitive::<Date32Type>();
        let r = b.column_by_name("revision_date").unwrap().as_primitive::<Date32Type>();
        let v = b.column_by_name("value").unwrap().as_primitive::<Float64Type>();
        let f = b.column_by_name("is_original_release").unwrap().as_boolean();
        let e = b.column_by_name("realtime_end").unwrap().as_primitive::<Date32Type>();
        let c = b.column_by_name("created_at").unwrap();
        let c = arrow::compute::cast(c, &DataType::Timestamp(TimeUnit::Nanosecond, None)).unwrap();
        let c = arrow::compute::cast(&c, &DataType::Int64).unwrap();
        let c = c.as_primitive::<Int64Type>();
        (0..b.num_rows())
            .map(|i| {
                let value = v.is_valid(i).then(|| v.value(i).to_bits());
                (s.value(i).to_owned(), d.value(i), r.value(i), value, f.value(i), e.value(i), c.value(i))
            })
            .collect()
    }

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x71_2026);
    let (mut cases, mut compactions, mut checks) = (0, 0, 0);
    for _ in 0..1_500 {
        cases += 1;
        // A small universe so keys collide: 2 series × 3 dates × 5 revision dates.
        let n = rng.random_range(1..40);
        let mut arrivals: Vec<Arrival> = Vec::new();
        for seq in 0..n {
            let (series, date) = (rng.random_range(0..2), 10_957 + 90 * rng.random_range(0..3));
            let revision = date + 30 + 31 * rng.random_range(0..5); // backfills: any order
            let previous = arrivals.iter().rfind(|a| (a.series, a.date, a.revision) == (series, date, revision));
            let a = match (previous, rng.random_range(0..10)) {
                // An exact re-publication.
                (Some(p), 0..=2) => Arrival { seq, ..p.clone() },
                // A correction that omits the flag.
                (Some(p), 3..=4) => {
                    Arrival { value: Some(rng.random_range(0..5) as f64), flag: false, seq, ..p.clone() }
                }
                _ => Arrival {
                    series,
                    date,
                    revision,
                    value: (!rng.random_bool(0.1)).then(|| rng.random_range(0..5) as f64),
                    // Series 1 never flags; series 0 flags about half its first publications.
                    flag: series == 0 && rng.random_bool(0.5),
                    seq,
                },
            };
            arrivals.push(a);
        }
        // The table: closed rows (stored ends) and current rows; compaction rewrites the current ones.
        let mut closed: Vec<StoredDataPoint> = Vec::new();
        let mut current: Vec<StoredDataPoint> = Vec::new();
        let mut arrived = 0;
        while arrived < arrivals.len() {
            let batch = rng.random_range(1..=8).min(arrivals.len() - arrived);
            current.extend(arrivals[arrived..arrived + batch].iter().map(stored));
            arrived += batch;
            if rng.random_bool(0.4) {
                compactions += 1;
                let (out, stats) = close_periods(&[stored_data_points_to_batch(&current).unwrap()]).unwrap();
                assert_eq!(stats.rows_in, current.len());
                current.clear();
                for r in batch_to_stored_data_points(&out).unwrap() {
                    if r.realtime_end.is_some() { closed.push(r) } else { current.push(r) }
                }
            }
            let table: Vec<StoredDataPoint> = closed.iter().chain(&current).cloned().collect();
            let batches = vec![stored_data_points_to_batch(&table).unwrap()];
            let t = Date::from_days_since_epoch(10_957 + rng.random_range(0..400));
            for view in [View::Latest, View::FirstRelease, View::AllRevisions, View::AsOf(t)] {
                checks += 1;
                let ours = rows_of(&resolve(&VintageQuery::new(view), &batches).unwrap());
                let theirs = reference(&arrivals[..arrived], view);
                assert_eq!(
                    ours,
                    theirs,
                    "{view:?} after {arrived} of {} arrivals: {:?}",
                    arrivals.len(),
                    &arrivals[..arrived]
                );
            }
        }
    }
    eprintln!("{cases} random streams, {compactions} compactions, {checks} view checks against the reference");
}
