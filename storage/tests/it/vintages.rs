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

/// The whole lifecycle, thousands of times: random revision streams — corrections with and
/// without the flag, exact re-publications, missing values, out-of-order backfills, late first
/// releases, keys never flagged — spread over three partitions (a series moves to another one at
/// random commit boundaries, as when a topic is repartitioned), committed in random batches and
/// renumbered as the stores do (`arrivals::renumber`), with compaction runs (the compactor's steps:
/// open and arrived current rows, backfilled keys' closed rows re-read, `close_periods`, output
/// split by `realtime_end` month) and retention runs (the tierer's rule: closed files past
/// `delete_after_days` keep first releases) at random points. After every step every view —
/// with the scan's pushed-down predicate applied to the files — equals a reference written here
/// from the documented rules, and after every compaction every stored `realtime_end` is exact.
#[test]
fn every_view_follows_the_rules_through_the_whole_lifecycle() {
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
    use arrow::compute::{concat_batches, filter_record_batch};
    use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type, TimeUnit};
    use rand::{Rng, SeedableRng};
    use vintagelake_schemas::table::{StoredDataPoint, data_points_table_schema, stored_data_points_to_batch};
    use vintagelake_schemas::{Date, Timestamp};
    use vintagelake_storage::arrivals::renumber;
    use vintagelake_storage::retention::{first_release_keys, keep_first_releases};
    use vintagelake_storage::scan::{
        OPEN_END, View, VintageQuery, backfilled_keys, close_periods, resolve, split_keys,
    };
    use vintagelake_storage::write::month_of;

    /// One publication, in publish order (`n`).
    #[derive(Debug, Clone)]
    struct Arrival {
        series: usize,
        date: i32,
        revision: i32,
        value: Option<f64>,
        flag: bool,
        n: i64,
        /// Folded by a compaction run (no longer a fresh row of the current partition).
        compacted: bool,
        /// Its row was removed by retention.
        deleted: bool,
    }
    /// A view row: (series, date, revision, value bits, flag, realtime_end, created_at ns).
    type Row = (String, i32, i32, Option<u64>, bool, i32, i64);
    type Key = (usize, i32);

    struct File {
        month: Option<i32>,
        rewritten: bool,
        rows: RecordBatch,
    }

    fn created(n: i64) -> i64 {
        1_700_000_000_000_000_000 + n * 1_000_000_000
    }
    fn same_value(a: Option<f64>, b: Option<f64>) -> bool {
        a.map(f64::to_bits) == b.map(f64::to_bits)
    }

    /// Per key and revision date: every arrival (deleted or not), in publish order.
    fn by_key(arrivals: &[Arrival]) -> BTreeMap<Key, BTreeMap<i32, Vec<&Arrival>>> {
        let mut keys: BTreeMap<Key, BTreeMap<i32, Vec<&Arrival>>> = BTreeMap::new();
        for a in arrivals {
            keys.entry((a.series, a.date)).or_default().entry(a.revision).or_default().push(a);
        }
        keys
    }
    /// The documented fold of one revision's remaining arrivals: the arrival that last changed the
    /// value answers (a re-publication of the same value keeps the row it repeats); flagged when
    /// any arrival was. `None`: retention removed them all.
    fn fold(list: &[&Arrival]) -> Option<(Arrival, bool)> {
        let mut state: Option<(Arrival, bool)> = None;
        for a in list.iter().filter(|a| !a.deleted) {
            state = match state {
                Some((s, f)) if same_value(s.value, a.value) => Some((s, f || a.flag)),
                Some((_, f)) => Some(((*a).clone(), f || a.flag)),
                None => Some(((*a).clone(), a.flag)),
            };
        }
        state
    }
    /// True real-time end of `revision` among every revision ever published for the key.
    fn true_end(revisions: &BTreeMap<i32, Vec<&Arrival>>, revision: i32) -> i32 {
        revisions.range(revision + 1..).next().map_or(OPEN_END.days_since_epoch(), |(r, _)| r - 1)
    }
    /// The first release by the rule: the earliest flagged revision, else the earliest.
    fn first_release(revisions: &BTreeMap<i32, Vec<&Arrival>>) -> i32 {
        let flagged = revisions.iter().find(|(_, l)| l.iter().any(|a| a.flag && !a.deleted));
        *flagged.map_or_else(|| revisions.keys().next().unwrap(), |(r, _)| r)
    }
    fn row(key: Key, revision: i32, folded: &(Arrival, bool), end: i32) -> Row {
        let (a, flagged) = folded;
        (format!("P{}", key.0), key.1, revision, a.value.map(f64::to_bits), *flagged, end, created(a.n))
    }

    /// What `latest`, `first_release` and `all_revisions` answer by the rules.
    fn reference(arrivals: &[Arrival], view: View) -> Vec<Row> {
        let mut out = Vec::new();
        for (key, revisions) in by_key(arrivals) {
            let answer = |r: i32, end: i32| {
                let folded = fold(&revisions[&r]).unwrap_or_else(|| panic!("retention removed {key:?} {r}"));
                row(key, r, &folded, end)
            };
            match view {
                View::Latest => out.push(answer(*revisions.keys().last().unwrap(), OPEN_END.days_since_epoch())),
                View::FirstRelease => {
                    let r = first_release(&revisions);
                    out.push(answer(r, true_end(&revisions, r)));
                }
                View::AllRevisions => {
                    for (r, list) in &revisions {
                        if let Some(folded) = fold(list) {
                            out.push(row(key, *r, &folded, true_end(&revisions, *r)));
                        }
                    }
                }
                View::AsOf(_) => unreachable!("as_of is checked by check_as_of"),
            }
        }
        out
    }

    /// `as_of(t)` by the rules: the revision current at `t`; absent when retention removed it —
    /// or, until the next compaction closes its period, a revision backfilled since that is older.
    fn check_as_of(arrivals: &[Arrival], t: i32, ours: &[Row], approximate: &BTreeSet<Key>) -> Result<(), String> {
        let ours: BTreeMap<(String, i32), &Row> = ours.iter().map(|r| ((r.0.clone(), r.1), r)).collect();
        let mut expected_keys = BTreeSet::new();
        for (key, revisions) in by_key(arrivals) {
            let name = (format!("P{}", key.0), key.1);
            let Some((&r, list)) = revisions.range(..=t).next_back() else { continue };
            let got = ours.get(&name);
            expected_keys.insert(name.clone());
            if approximate.contains(&key) {
                // Its period is approximate: absent, or the value of a kept revision published by t
                // (the scan may read a re-publication of it and not the row it repeats).
                if let Some(g) = got {
                    let kept = revisions.get(&g.2).and_then(|l| fold(l));
                    if g.2 > t || kept.map(|(a, _)| a.value.map(f64::to_bits)) != Some(g.3) {
                        return Err(format!("as_of {t} {name:?}: {g:?} is no kept revision as folded"));
                    }
                }
                continue;
            }
            match fold(list) {
                Some(folded) => {
                    let want = row(key, r, &folded, OPEN_END.days_since_epoch());
                    if got != Some(&&want) {
                        return Err(format!("as_of {t} {name:?}: {got:?}, want {want:?}"));
                    }
                }
                None => {
                    let tolerated = |g: &Row| {
                        g.2 < r && revisions.get(&g.2).is_some_and(|l| l.iter().any(|a| !a.compacted && !a.deleted))
                    };
                    if let Some(g) = got
                        && !tolerated(g)
                    {
                        return Err(format!("as_of {t} {name:?}: {g:?}, but {r} was removed by retention"));
                    }
                }
            }
        }
        if let Some(extra) = ours.keys().find(|k| !expected_keys.contains(*k)) {
            return Err(format!("as_of {t}: {extra:?} answered before any revision of it"));
        }
        Ok(())
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
    /// The rows a scan with the view's pushed-down predicate reads.
    fn scanned(files: &[File], view: View) -> Vec<RecordBatch> {
        files
            .iter()
            .map(|f| {
                let b = &f.rows;
                let r = b.column_by_name("revision_date").unwrap().as_primitive::<Date32Type>();
                let e = b.column_by_name("realtime_end").unwrap().as_primitive::<Date32Type>();
                let keep: BooleanArray = (0..b.num_rows())
                    .map(|i| {
                        Some(match view {
                            View::Latest => e.is_null(i),
                            View::AsOf(t) => {
                                let t = t.days_since_epoch();
                                r.value(i) <= t && (e.is_null(i) || e.value(i) >= t)
                            }
                            View::FirstRelease | View::AllRevisions => true,
                        })
                    })
                    .collect();
                filter_record_batch(b, &keep).unwrap()
            })
            .collect()
    }
    fn revision_keys(files: &[File]) -> BTreeSet<(String, i32, i32)> {
        let mut out = BTreeSet::new();
        for f in files {
            let s = f.rows.column_by_name("series_id").unwrap().as_string::<i32>();
            let d = f.rows.column_by_name("date").unwrap().as_primitive::<Date32Type>();
            let r = f.rows.column_by_name("revision_date").unwrap().as_primitive::<Date32Type>();
            out.extend((0..f.rows.num_rows()).map(|i| (s.value(i).to_owned(), d.value(i), r.value(i))));
        }
        out
    }
    /// The compactor's run over the simulated files.
    /// Returns how many keys' closed rows it re-read (`None`: nothing to compact).
    fn compact(files: &mut Vec<File>) -> Option<usize> {
        let (current, mut closed): (Vec<File>, Vec<File>) = files.drain(..).partition(|f| f.month.is_none());
        if current.is_empty() || (current.len() == 1 && current[0].rewritten) {
            files.extend(current);
            files.extend(closed);
            return None;
        }
        let open: Vec<RecordBatch> = current.iter().filter(|f| f.rewritten).map(|f| f.rows.clone()).collect();
        let arrived: Vec<RecordBatch> = current.iter().filter(|f| !f.rewritten).map(|f| f.rows.clone()).collect();
        let keys = backfilled_keys(&open, &arrived).unwrap();
        let mut fold = open;
        fold.extend(arrived);
        for f in &mut closed {
            let (of_keys, rest) = split_keys(&f.rows, &keys).unwrap();
            if of_keys.num_rows() > 0 {
                fold.push(of_keys);
                *f = File { month: f.month, rewritten: true, rows: rest };
            }
        }
        closed.retain(|f| f.rows.num_rows() > 0);
        let rows_in: usize = fold.iter().map(RecordBatch::num_rows).sum();
        let (out, stats) = close_periods(&fold).unwrap();
        assert_eq!(stats.rows_in, rows_in);
        assert_eq!(stats.rows_in, stats.rows_out + stats.duplicates_dropped + stats.corrections_applied);
        let e = out.column_by_name("realtime_end").unwrap().as_primitive::<Date32Type>();
        let mut months: BTreeMap<Option<i32>, Vec<u32>> = BTreeMap::new();
        for i in 0..out.num_rows() {
            months.entry(e.is_valid(i).then(|| month_of(e.value(i)))).or_default().push(i as u32);
        }
        for (month, idx) in months {
            let rows = arrow::compute::take_record_batch(&out, &arrow::array::UInt32Array::from(idx)).unwrap();
            files.push(File { month, rewritten: true, rows });
        }
        files.extend(closed);
        Some(keys.len())
    }

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x71_2026);
    let (mut cases, mut commits, mut compactions, mut retentions, mut deleted_revisions, mut checks) =
        (0, 0, 0, 0, 0, 0);
    let (mut reclosed_keys, mut keys_total, mut keys_approximate) = (0, 0, 0);
    for _ in 0..2_000 {
        cases += 1;
        // A small universe so keys collide: 3 series × 3 dates × 6 revision dates.
        let n = rng.random_range(1..48);
        let mut arrivals: Vec<Arrival> = Vec::new();
        for i in 0..n {
            let (series, date) = (rng.random_range(0..3), 10_957 + 90 * rng.random_range(0..3));
            let revision = date + 30 + 31 * rng.random_range(0..6); // backfills: any order
            let previous = arrivals.iter().rfind(|a| (a.series, a.date, a.revision) == (series, date, revision));
            let fresh =
                Arrival { series, date, revision, value: None, flag: false, n: i, compacted: false, deleted: false };
            let a = match (previous, rng.random_range(0..10)) {
                // An exact re-publication (a producer retry, a replayed file), flag and all or omitted.
                (Some(p), 0..=2) => Arrival { value: p.value, flag: p.flag && rng.random_bool(0.5), ..fresh },
                // A correction that omits the flag.
                (Some(_), 3..=4) => Arrival { value: Some(rng.random_range(0..5) as f64), ..fresh },
                _ => Arrival {
                    value: (!rng.random_bool(0.1)).then(|| rng.random_range(0..5) as f64),
                    // Series 2 never flags; the others flag about half their publications (a late
                    // first release when an earlier revision went unflagged).
                    flag: series != 2 && rng.random_bool(0.4),
                    ..fresh
                },
            };
            arrivals.push(a);
        }
        let mut partition_of: Vec<usize> = (0..3).map(|_| rng.random_range(0..3)).collect();
        let mut offsets = [0i64; 3];
        let mut mark = 0i64;
        let mut files: Vec<File> = Vec::new();
        let mut today = 11_300;
        let mut published = 0;
        let mut approximate: BTreeSet<Key> = BTreeSet::new();
        keys_total += by_key(&arrivals).len();
        while published < arrivals.len() {
            // One ingest commit: one batch per partition, numbered by offset, renumbered after the mark.
            commits += 1;
            let take = rng.random_range(1..=8).min(arrivals.len() - published);
            let mut per_partition: BTreeMap<usize, Vec<StoredDataPoint>> = BTreeMap::new();
            for (k, a) in arrivals[published..published + take].iter().enumerate() {
                // A backfill whose next revision retention already removed: no row records that
                // revision any more, so its period ends at the next revision still known.
                let before = by_key(&arrivals[..published + k]);
                if let Some(revisions) = before.get(&(a.series, a.date))
                    && let Some((_, next)) = revisions.range(a.revision + 1..).next()
                    && fold(next).is_none()
                {
                    approximate.insert((a.series, a.date));
                }
                let p = partition_of[a.series];
                let day = |d: i32| Date::from_days_since_epoch(d).to_string();
                let mut point = point(&format!("P{}", a.series), &day(a.date), &day(a.revision), a.value, a.flag);
                point.created_at = Timestamp::from_nanos(created(a.n));
                point.updated_at = point.created_at;
                per_partition.entry(p).or_default().push(StoredDataPoint {
                    point,
                    realtime_end: None,
                    ingest_seq: offsets[p] << 20,
                    status: None,
                    comment: None,
                });
                offsets[p] += 1;
            }
            published += take;
            let batches: Vec<RecordBatch> =
                per_partition.values().map(|rows| stored_data_points_to_batch(rows).unwrap()).collect();
            let (batches, last) = renumber(&batches, mark).unwrap();
            assert_eq!(last, mark + take as i64);
            mark = last;
            files.push(File {
                month: None,
                rewritten: false,
                rows: concat_batches(&data_points_table_schema(), &batches).unwrap(),
            });
            // A repartitioned topic: a series' next messages go to another partition.
            if rng.random_bool(0.1) {
                let s = rng.random_range(0..3);
                partition_of[s] = (partition_of[s] + rng.random_range(1..3)) % 3;
            }

            if rng.random_bool(0.4) {
                let before = revision_keys(&files);
                if let Some(backfilled) = compact(&mut files) {
                    compactions += 1;
                    reclosed_keys += backfilled;
                    for a in &mut arrivals[..published] {
                        a.compacted = true;
                    }
                    assert!(revision_keys(&files).is_subset(&before));
                    // Every stored realtime_end is exact: the day before the next revision ever published.
                    let keys = by_key(&arrivals[..published]);
                    for f in &files {
                        for r in rows_of(&f.rows) {
                            let series: usize = r.0[1..].parse().unwrap();
                            if approximate.contains(&(series, r.1)) {
                                continue;
                            }
                            let want = true_end(&keys[&(series, r.1)], r.2);
                            let stored = if f.month.is_some() { r.5 } else { OPEN_END.days_since_epoch() };
                            assert_eq!(stored, want, "stored realtime_end of {r:?} after compaction");
                        }
                    }
                }
            }
            if rng.random_bool(0.25) {
                // Retention: closed files whose newest end is `limit` days old keep first releases only.
                retentions += 1;
                today += rng.random_range(0..120);
                let limit = rng.random_range(30..200);
                let all: Vec<RecordBatch> = files.iter().map(|f| f.rows.clone()).collect();
                let firsts =
                    first_release_keys(&resolve(&VintageQuery::new(View::FirstRelease), &all).unwrap()).unwrap();
                let current = |rewritten: bool| -> Vec<RecordBatch> {
                    files
                        .iter()
                        .filter(|f| f.month.is_none() && f.rewritten == rewritten)
                        .map(|f| f.rows.clone())
                        .collect()
                };
                let deferred = backfilled_keys(&current(true), &current(false)).unwrap();
                let before = revision_keys(&files);
                for f in files.iter_mut().filter(|f| f.month.is_some()) {
                    let e = f.rows.column_by_name("realtime_end").unwrap().as_primitive::<Date32Type>();
                    let newest = arrow::compute::max(e).unwrap();
                    if today - newest >= limit {
                        let kept =
                            keep_first_releases(std::slice::from_ref(&f.rows), &firsts, &deferred).unwrap().remove(0);
                        if kept.num_rows() < f.rows.num_rows() {
                            *f = File { month: f.month, rewritten: true, rows: kept };
                        }
                    }
                }
                files.retain(|f| f.rows.num_rows() > 0);
                let gone: HashSet<(String, i32, i32)> = before.difference(&revision_keys(&files)).cloned().collect();
                // What went may go: superseded, not the first release, its true period past the horizon.
                let keys = by_key(&arrivals[..published]);
                for (s, d, r) in &gone {
                    let revisions = &keys[&(s[1..].parse().unwrap(), *d)];
                    assert_ne!(first_release(revisions), *r, "retention removed the first release {s} {d} {r}");
                    assert!(
                        true_end(revisions, *r) <= today - limit,
                        "retention removed {s} {d} {r} inside the horizon"
                    );
                }
                deleted_revisions += gone.len();
                for a in &mut arrivals[..published] {
                    if a.compacted && gone.contains(&(format!("P{}", a.series), a.date, a.revision)) {
                        a.deleted = true;
                    }
                }
            }

            let so_far = &arrivals[..published];
            let t = Date::from_days_since_epoch(10_957 + rng.random_range(0..400));
            for view in [View::Latest, View::FirstRelease, View::AllRevisions, View::AsOf(t)] {
                checks += 1;
                let ours = rows_of(&resolve(&VintageQuery::new(view), &scanned(&files, view)).unwrap());
                let context = || format!("{view:?} after {published} of {} arrivals: {so_far:?}", arrivals.len());
                // Keys backfilled below a removed revision: every column but the period is exact.
                let blur = |rows: Vec<Row>| -> Vec<Row> {
                    rows.into_iter()
                        .map(|mut r| {
                            if approximate.contains(&(r.0[1..].parse().unwrap(), r.1)) {
                                r.5 = -1;
                            }
                            r
                        })
                        .collect()
                };
                match view {
                    View::AsOf(t) => {
                        if let Err(e) = check_as_of(so_far, t.days_since_epoch(), &ours, &approximate) {
                            panic!("{e}\n{}", context());
                        }
                    }
                    _ => assert_eq!(blur(ours), blur(reference(so_far, view)), "{}", context()),
                }
            }
        }
        keys_approximate += approximate.len();
    }
    eprintln!(
        "{cases} random streams: {commits} commits, {compactions} compactions ({reclosed_keys} backfilled keys re-read), \
         {retentions} retention runs ({deleted_revisions} revisions removed), {checks} view checks against the reference; \
         {keys_approximate} of {keys_total} keys backfilled below a removed revision"
    );
}
