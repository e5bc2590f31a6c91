//! The retention policy over 15 simulated years, with an injected clock: every file lands in the
//! tier its age asks for, past-retention data goes except original releases, the latest and
//! first-release answers stay, a dry run changes nothing, the audit trail has every action.

use arrow::array::{Array, AsArray};
use arrow::datatypes::Date32Type;
use tokio_util::sync::CancellationToken;
use vintagelake_schemas::Date;
use vintagelake_storage::catalog::{TableKind, Warehouse, WarehouseConfig};
use vintagelake_storage::config::{RetentionPolicy, TierName};
use vintagelake_storage::files::{live_files, read_data_file};
use vintagelake_storage::io::TierSpec;
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};
use vintagelake_testkit::fixtures::revision_stream;
use vintagelake_tierer::plan::{Pins, Policy};
use vintagelake_tierer::tier_once;

const TIERS: [&str; 4] = ["hot", "warm", "cold", "archive"];

fn name(s: &str) -> TierName {
    s.parse().unwrap()
}

/// The tier the policy 30/365/3650 puts data of this age in, written out independently of the planner.
fn expected_tier(age: i32) -> &'static str {
    match age {
        ..30 => "hot",
        30..365 => "warm",
        365..3650 => "cold",
        _ => "archive",
    }
}

async fn tiered_store(dir: &std::path::Path) -> IcebergStore {
    let tiers = TIERS.iter().map(|t| TierSpec::local(*t, dir.join("tiers").join(t))).collect();
    let wh = Warehouse::open(WarehouseConfig::new(dir).with_tiers(tiers)).await.unwrap();
    IcebergStore::new(wh)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifteen_years_of_vintages_land_in_the_right_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let store = tiered_store(dir.path()).await;
    let wh = store.warehouse().clone();
    // 183 monthly dates, each revised three times: revision dates span 15 years.
    let rows = revision_stream("Y", 0..8, 183, 3);
    for chunk in rows.chunks(500) {
        store.append_points(chunk, vec![], "ingest").await.unwrap();
    }
    // Compaction closes the real-time periods: superseded rows get their realtime_end and their
    // month partition.
    vintagelake_compactor::compact_once(&store, &Default::default(), &CancellationToken::new()).await.unwrap();
    let last_revision = rows.iter().map(|r| r.point.revision_date.days_since_epoch()).max().unwrap();
    let first_revision = rows.iter().map(|r| r.point.revision_date.days_since_epoch()).min().unwrap();
    assert!(last_revision - first_revision > 15 * 365 - 60, "15 years of vintages");
    let today = Date::from_days_since_epoch(last_revision + 1);

    let latest = store.query(&VintageQuery::new(View::Latest)).await.unwrap();
    let first = store.query(&VintageQuery::new(View::FirstRelease)).await.unwrap();
    let originals =
        |b: &arrow::array::RecordBatch| b.column_by_name("is_original_release").unwrap().as_boolean().true_count();
    let originals_before = originals(&store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap());
    assert_eq!(originals_before, 8 * 183);
    let retention = RetentionPolicy {
        hot_data_days: 30,
        warm_data_days: 365,
        cold_data_days: 3650,
        archive_data_days: 36_500,
        delete_after_days: 5000,
    };
    let policy = Policy::new(&retention, &TIERS.map(|t| (name(t), None)), true);

    // A dry run plans and changes nothing.
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let snapshot = table.metadata().current_snapshot_id();
    let files_before: Vec<String> = live_files(&wh, &table, None).await.unwrap().into_iter().map(|f| f.path).collect();
    let dry = tier_once(&store, &policy, &Pins::new(), today, true, 4, &CancellationToken::new()).await.unwrap();
    assert!(dry.actions.len() > 100, "{} actions planned", dry.actions.len());
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    assert_eq!(table.metadata().current_snapshot_id(), snapshot);
    let files_now: Vec<String> = live_files(&wh, &table, None).await.unwrap().into_iter().map(|f| f.path).collect();
    assert_eq!(files_now, files_before);
    assert!(wh.audit().read().unwrap().entries.iter().all(|e| e.actor != "tierer"), "a dry run audits nothing");

    let report = tier_once(&store, &policy, &Pins::new(), today, false, 4, &CancellationToken::new()).await.unwrap();
    eprintln!(
        "moved {} files ({} bytes), deleted {} files ({} rows, {} originals kept)",
        report.files_moved, report.bytes_moved, report.files_deleted, report.rows_deleted, report.originals_kept
    );
    assert!(report.files_moved > 100 && report.files_deleted > 0 && report.rows_deleted > 0);

    // Every file, read back, sits in the tier its youngest superseded row asks for; past
    // retention only original releases are left.
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let files = live_files(&wh, &table, None).await.unwrap();
    let mut per_tier = std::collections::BTreeMap::new();
    for f in &files {
        let tier = f.tier.as_ref().unwrap().as_str();
        *per_tier.entry(tier).or_insert(0) += 1;
        let batches = read_data_file(&wh, &f.path).await.unwrap();
        let mut newest_end: Option<i32> = None;
        let mut all_original = true;
        for b in &batches {
            let end = b.column_by_name("realtime_end").unwrap().as_primitive::<Date32Type>();
            for i in 0..end.len() {
                if end.is_valid(i) {
                    newest_end = newest_end.max(Some(end.value(i)));
                }
            }
            all_original &= b.column_by_name("is_original_release").unwrap().as_boolean().true_count() == b.num_rows();
        }
        match newest_end {
            None => assert_eq!(tier, "hot", "current rows stay hot: {}", f.path),
            Some(end) => {
                let age = today.days_since_epoch() - end;
                assert_eq!(tier, expected_tier(age), "{} is {age} days old", f.path);
                if age >= 5000 {
                    assert!(all_original, "past retention only original releases remain: {}", f.path);
                }
            }
        }
        assert!(f.path.starts_with(&wh.data_location(TableKind::DataPoints, &name(tier)).unwrap()), "{}", f.path);
    }
    eprintln!("files per tier: {per_tier:?}");
    assert_eq!(per_tier.len(), 4, "every tier holds data: {per_tier:?}");

    // The answers users rely on are unchanged; original releases are all there.
    assert_eq!(store.query(&VintageQuery::new(View::Latest)).await.unwrap(), latest);
    assert_eq!(store.query(&VintageQuery::new(View::FirstRelease)).await.unwrap(), first);
    let all = store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap();
    assert_eq!(originals(&all), originals_before);

    // A second run has nothing left to do.
    let again = tier_once(&store, &policy, &Pins::new(), today, false, 4, &CancellationToken::new()).await.unwrap();
    assert!(again.actions.is_empty(), "{:?}", again.actions);

    // Every action is in the audit trail with its rule and the snapshot that made it.
    let audit = wh.audit().read().unwrap();
    let moves = audit.entries.iter().filter(|e| e.actor == "tierer" && e.action == "move").count();
    let deletes: Vec<_> = audit.entries.iter().filter(|e| e.actor == "tierer" && e.action == "delete").collect();
    assert_eq!((moves, deletes.len()), (report.files_moved, report.files_deleted));
    assert!(deletes.iter().all(|e| e.rule.as_deref() == Some("delete_after_days=5000")
        && e.snapshot_id.is_some_and(|id| report.snapshots.contains(&id))));
    let steps = (report.files_moved + report.files_deleted).div_ceil(vintagelake_tierer::run::FILES_PER_COMMIT);
    assert_eq!(report.snapshots.len(), steps, "one commit per step");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_data_moves_to_an_s3_archive_that_scans_and_pyiceberg_read() {
    use vintagelake_storage::io::TierTarget;
    use vintagelake_testkit::tools::{S3_TEST_KEY, S3_TEST_SECRET, S3Server};
    let s3 = std::sync::Arc::new(
        tokio::task::spawn_blocking(|| S3Server::start("econ-archive")).await.unwrap().expect("S3 server"),
    );
    let dir = tempfile::tempdir().unwrap();
    let tiers = vec![TierSpec::local("hot", dir.path().join("tiers/hot")), s3.tier("archive", "vintagelake")];
    // A bucket that does not exist fails the start, naming the tier.
    let mut missing = tiers.clone();
    if let TierTarget::S3 { bucket, .. } = &mut missing[1].target {
        *bucket = "no-such-bucket".into();
    }
    let other = tempfile::tempdir().unwrap();
    let err = Warehouse::open(WarehouseConfig::new(other.path()).with_tiers(missing))
        .await
        .unwrap()
        .check_tiers()
        .await
        .expect_err("a missing bucket does not answer");
    assert!(err.to_string().contains("archive"), "{err}");

    let wh = Warehouse::open(WarehouseConfig::new(dir.path()).with_tiers(tiers)).await.unwrap();
    wh.check_tiers().await.expect("both tiers answer");
    let store = IcebergStore::new(wh.clone());
    let rows = revision_stream("S", 0..4, 24, 3);
    store.append_points(&rows, vec![], "ingest").await.unwrap();
    vintagelake_compactor::compact_once(&store, &Default::default(), &CancellationToken::new()).await.unwrap();
    let all_before = store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap();
    let latest_before = store.query(&VintageQuery::new(View::Latest)).await.unwrap();
    let today =
        Date::from_days_since_epoch(rows.iter().map(|r| r.point.revision_date.days_since_epoch()).max().unwrap() + 1);

    let policy = Policy::new(&RetentionPolicy::default(), &[(name("hot"), None), (name("archive"), None)], true);
    let report = tier_once(&store, &policy, &Pins::new(), today, false, 4, &CancellationToken::new()).await.unwrap();
    assert!(report.files_moved > 10, "{report:?}");

    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let files = live_files(&wh, &table, None).await.unwrap();
    let archived: Vec<_> = files.iter().filter(|f| f.path.starts_with("s3://econ-archive/vintagelake/")).collect();
    assert_eq!(archived.len(), report.files_moved);
    // The objects are in the bucket, as an independent S3 client sees it.
    let server = s3.clone();
    let keys = tokio::task::spawn_blocking(move || server.list_keys()).await.unwrap().unwrap();
    for f in &archived {
        let key = f.path.trim_start_matches("s3://econ-archive/");
        assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
    }
    // Scans read across both tiers and answer as before.
    assert_eq!(store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap(), all_before);
    assert_eq!(store.query(&VintageQuery::new(View::Latest)).await.unwrap(), latest_before);

    // pyiceberg reads the table, the archived files through S3.
    let python = tokio::task::spawn_blocking(vintagelake_testkit::tools::pyiceberg_python).await.unwrap().unwrap();
    let script = r#"
import sys
from pyiceberg.catalog.sql import SqlCatalog
d, endpoint, key, secret = sys.argv[1:5]
cat = SqlCatalog("vintagelake", uri="sqlite:///" + d + "/catalog.sqlite", warehouse="file://" + d + "/warehouse",
                 **{"s3.endpoint": endpoint, "s3.access-key-id": key, "s3.secret-access-key": secret, "s3.region": "us-east-1"})
t = cat.load_table("econ.data_points")
files = t.inspect.files().to_pylist()
print(len(t.scan().to_arrow()), sum(1 for f in files if f["file_path"].startswith("s3://")))
"#;
    let out = vintagelake_testkit::tools::run_python(
        &python,
        script,
        &[dir.path().to_str().unwrap(), s3.endpoint(), S3_TEST_KEY, S3_TEST_SECRET],
    )
    .unwrap();
    let total: usize = files.iter().map(|f| f.records as usize).sum();
    assert_eq!(out.trim(), format!("{total} {}", archived.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_closed_files_within_their_tier() {
    use vintagelake_schemas::table::stored_data_points_to_batch;
    use vintagelake_storage::commit::{CommitRequest, RetryPolicy, commit};
    use vintagelake_storage::write::{Encoding, write_data_files};
    let dir = tempfile::tempdir().unwrap();
    let store = tiered_store(dir.path()).await;
    let wh = store.warehouse().clone();
    // Two small files of superseded rows (one month partition), already moved to warm.
    let mut rows = vintagelake_testkit::fixtures::grid("W", 0..4, 3, 1);
    for r in &mut rows {
        r.realtime_end = Some(Date::from_days_since_epoch(10_500));
    }
    for half in rows.chunks(rows.len() / 2) {
        let table = wh.load(TableKind::DataPoints).await.unwrap();
        let batch = stored_data_points_to_batch(half).unwrap();
        let files =
            write_data_files(&wh, &table, TableKind::DataPoints, &[batch], Some(&name("warm")), Encoding::Settled)
                .await
                .unwrap();
        commit(&wh, TableKind::DataPoints, &CommitRequest::append(files, "test"), &RetryPolicy::default())
            .await
            .unwrap();
    }
    let before = store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap();
    let report =
        vintagelake_compactor::compact_once(&store, &Default::default(), &CancellationToken::new()).await.unwrap();
    assert_eq!((report.files_in, report.files_out), (2, 1));
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let files = live_files(&wh, &table, None).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].tier.as_ref().map(TierName::as_str), Some("warm"), "the merged file stays in warm");
    assert_eq!(store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap(), before);
}

/// Retention never changes a first-release answer: a key with no flagged revision keeps its
/// earliest one (the view's rule), a flagged key keeps its flagged one, everything else past
/// `delete_after_days` goes; a second run finds nothing more to delete and commits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_first_release_of_keys_without_a_flag() {
    use vintagelake_schemas::table::StoredDataPoint;
    use vintagelake_testkit::fixtures::point;
    let dir = tempfile::tempdir().unwrap();
    let store = tiered_store(dir.path()).await;
    let wh = store.warehouse().clone();
    // Per series, one date revised three times, a month apart; "F" flags its first revision, "U"
    // flags none (a producer that never sets the flag).
    let mut rows = Vec::new();
    for (series, flagged) in [("F", true), ("U", false)] {
        for (k, (revision, value)) in
            [("2000-02-01", 100.0), ("2000-03-01", 110.0), ("2000-04-01", 120.0)].iter().enumerate()
        {
            rows.push(StoredDataPoint {
                point: point(series, "2000-01-01", revision, Some(*value), flagged && k == 0),
                realtime_end: None,
                ingest_seq: rows.len() as i64,
                status: None,
                comment: None,
            });
        }
    }
    // And a second date of "U" whose second revision is closed in the same month as the first
    // revisions: that file must be rewritten, keeping its first releases only.
    for (revision, value) in [("2000-01-15", 200.0), ("2000-02-10", 210.0), ("2000-03-01", 220.0)] {
        rows.push(StoredDataPoint {
            point: point("U", "2000-01-02", revision, Some(value), false),
            realtime_end: None,
            ingest_seq: rows.len() as i64,
            status: None,
            comment: None,
        });
    }
    store.append_points(&rows, vec![], "ingest").await.unwrap();
    vintagelake_compactor::compact_once(&store, &Default::default(), &CancellationToken::new()).await.unwrap();
    let first_before = store.query(&VintageQuery::new(View::FirstRelease)).await.unwrap();
    let latest_before = store.query(&VintageQuery::new(View::Latest)).await.unwrap();
    let values = |b: &arrow::array::RecordBatch| -> Vec<(String, f64)> {
        let s = b.column_by_name("series_id").unwrap().as_string::<i32>();
        let v = b.column_by_name("value").unwrap().as_primitive::<arrow::datatypes::Float64Type>();
        (0..b.num_rows()).map(|i| (s.value(i).to_owned(), v.value(i))).collect()
    };
    assert_eq!(values(&first_before), [("F".to_owned(), 100.0), ("U".to_owned(), 100.0), ("U".to_owned(), 200.0)]);

    let retention = RetentionPolicy { delete_after_days: 30, ..RetentionPolicy::default() };
    let policy = Policy::new(&retention, &TIERS.map(|t| (name(t), None)), true);
    let today = Date::parse_iso("2030-01-01").unwrap();
    let report = tier_once(&store, &policy, &Pins::new(), today, false, 2, &CancellationToken::new()).await.unwrap();
    // Closed in February: F's flagged first revision, U's two earliest (first releases) and U's
    // 2000-01-02 second revision — rewritten keeping three. Closed in March: the second revisions
    // of 2000-01-01 — deleted.
    assert_eq!(report.files_deleted, 2, "{report:?}");
    assert_eq!(report.rows_deleted, 3, "the intermediate revisions went: {report:?}");
    assert_eq!(report.originals_kept, 3, "the first releases stayed: {report:?}");
    let all = store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap();
    let expected: Vec<(String, f64)> =
        [("F", 100.0), ("F", 120.0), ("U", 100.0), ("U", 120.0), ("U", 200.0), ("U", 220.0)]
            .iter()
            .map(|(s, v)| ((*s).to_owned(), *v))
            .collect();
    assert_eq!(values(&all), expected, "first and latest revisions remain");
    let first_after = store.query(&VintageQuery::new(View::FirstRelease)).await.unwrap();
    assert_eq!(values(&first_after), values(&first_before), "first_release unchanged by retention");
    assert_eq!(values(&store.query(&VintageQuery::new(View::Latest)).await.unwrap()), values(&latest_before));

    // Nothing more may go: the next run leaves the table alone.
    let snapshot = wh.load(TableKind::DataPoints).await.unwrap().metadata().current_snapshot_id();
    let again = tier_once(&store, &policy, &Pins::new(), today, false, 2, &CancellationToken::new()).await.unwrap();
    assert_eq!((again.files_deleted, again.rows_deleted), (0, 0), "{again:?}");
    assert!(again.actions.iter().all(|a| !matches!(a, vintagelake_tierer::plan::Action::Delete { .. })), "{again:?}");
    assert_eq!(wh.load(TableKind::DataPoints).await.unwrap().metadata().current_snapshot_id(), snapshot);
}

/// A correction of a flagged revision published without the flag is still the original release
/// (the flag belongs to the revision): first_release and as_of answer the correction, before and
/// after compaction, and retention keeps the correction with the original it corrects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_without_the_flag_survives_compaction_and_retention() {
    use vintagelake_schemas::table::StoredDataPoint;
    use vintagelake_testkit::fixtures::point;
    let dir = tempfile::tempdir().unwrap();
    let store = tiered_store(dir.path()).await;
    let row = |revision: &str, value: f64, flagged: bool, seq: i64| StoredDataPoint {
        point: point("S", "2010-01-01", revision, Some(value), flagged),
        realtime_end: None,
        ingest_seq: seq,
        status: None,
        comment: None,
    };
    let (options, cancel) = (Default::default(), CancellationToken::new());
    let compact = || vintagelake_compactor::compact_once(&store, &options, &cancel);
    store
        .append_points(&[row("2010-04-30", 100.0, true, 1), row("2010-05-28", 110.0, false, 2)], vec![], "ingest")
        .await
        .unwrap();
    compact().await.unwrap();
    store.append_points(&[row("2010-04-30", 101.0, false, 3)], vec![], "ingest").await.unwrap();
    let answers = || async {
        let first = store.query(&VintageQuery::new(View::FirstRelease)).await.unwrap();
        let as_of = store.query(&VintageQuery::new(View::AsOf(Date::parse_iso("2010-05-01").unwrap()))).await.unwrap();
        let value = |b: &arrow::array::RecordBatch| {
            b.column_by_name("value").unwrap().as_primitive::<arrow::datatypes::Float64Type>().value(0)
        };
        let flag = first.column_by_name("is_original_release").unwrap().as_boolean().value(0);
        (value(&first), flag, value(&as_of))
    };
    assert_eq!(answers().await, (101.0, true, 101.0), "before compaction");
    compact().await.unwrap();
    assert_eq!(answers().await, (101.0, true, 101.0), "after compaction");
    let retention = RetentionPolicy { delete_after_days: 365, ..RetentionPolicy::default() };
    let policy = Policy::new(&retention, &TIERS.map(|t| (name(t), None)), true);
    let today = Date::parse_iso("2030-01-01").unwrap();
    tier_once(&store, &policy, &Pins::new(), today, false, 2, &CancellationToken::new()).await.unwrap();
    assert_eq!(answers().await, (101.0, true, 101.0), "after retention");
}

/// Each tier compresses at its own zstd level: a move into a tier with another level rewrites
/// the file at that level (the same rows, checked by reading them back) instead of copying it,
/// and the bytes it saves are reported; a move between tiers of one level stays a byte copy.
/// Every view answers the same after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_into_a_tier_with_another_compression_re_encode_and_every_view_stays() {
    use vintagelake_testkit::fixtures::lifecycle_answers;
    let dir = tempfile::tempdir().unwrap();
    let tiers = vec![
        TierSpec::local("hot", dir.path().join("tiers/hot")),
        TierSpec::local("warm", dir.path().join("tiers/warm")),
        TierSpec::local("cold", dir.path().join("tiers/cold")).with_zstd_level(12),
        TierSpec::local("archive", dir.path().join("tiers/archive")).with_zstd_level(19),
    ];
    let store = IcebergStore::new(Warehouse::open(WarehouseConfig::new(dir.path()).with_tiers(tiers)).await.unwrap());
    let wh = store.warehouse().clone();
    let rows = revision_stream("Z", 0..6, 150, 3);
    for chunk in rows.chunks(400) {
        store.append_points(chunk, vec![], "ingest").await.unwrap();
    }
    vintagelake_compactor::compact_once(&store, &Default::default(), &CancellationToken::new()).await.unwrap();
    let before = lifecycle_answers(&store).await;
    let today =
        Date::from_days_since_epoch(rows.iter().map(|r| r.point.revision_date.days_since_epoch()).max().unwrap() + 1);
    let retention = RetentionPolicy { delete_after_days: 0, ..RetentionPolicy::default() };
    let policy = Policy::new(&retention, &TIERS.map(|t| (name(t), None)), true);
    let report = tier_once(&store, &policy, &Pins::new(), today, false, 2, &CancellationToken::new()).await.unwrap();
    eprintln!(
        "moved {} files, {} re-encoded: {} -> {} bytes",
        report.files_moved, report.files_reencoded, report.reencoded_bytes_in, report.reencoded_bytes_out
    );
    let into = |tier: &str| {
        report
            .actions
            .iter()
            .filter(|a| matches!(a, vintagelake_tierer::plan::Action::Move { to, .. } if to.as_str() == tier))
            .count()
    };
    let moved = (into("warm"), into("cold"), into("archive"));
    assert!(moved.0 > 0 && moved.1 > 0 && moved.2 > 0, "moves into warm, cold, archive: {moved:?}");
    assert_eq!(
        report.files_reencoded,
        into("cold") + into("archive"),
        "moves into cold and archive re-encode, into warm copy"
    );
    assert!(
        report.reencoded_bytes_out < report.reencoded_bytes_in,
        "higher levels take fewer bytes: {} -> {}",
        report.reencoded_bytes_in,
        report.reencoded_bytes_out
    );
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let files = live_files(&wh, &table, None).await.unwrap();
    for f in &files {
        let tier = f.tier.as_ref().unwrap().as_str();
        // A copy keeps the source's name; a rewrite into a tier is named as every written file.
        let rewritten = f.path.rsplit('/').next().unwrap().starts_with("rewritten-");
        match tier {
            "cold" | "archive" => assert!(rewritten, "{}: re-encoded into {tier}", f.path),
            "warm" => assert!(!rewritten, "{}: copied into warm", f.path),
            _ => {}
        }
    }
    assert_eq!(lifecycle_answers(&store).await, before, "every view answers the same after the moves");
    // Each move is audited with where it went.
    let moves: Vec<_> = wh.audit().read().unwrap().entries.into_iter().filter(|e| e.action == "move").collect();
    assert_eq!(moves.len(), report.files_moved);
    assert!(moves.iter().all(|e| e.detail["target"].as_str().is_some_and(|t| !t.is_empty())));
}

/// Access-aware tiering with a simulated read pattern: three series whose superseded revisions sit
/// in files of their own, all old enough for `cold`. The one read often stays `warm`, the others
/// move by age; a cold one then read very often comes back to `warm`, and stays there a run
/// later while its (halving) count still says it is read often; the first, no longer read, goes
/// cold. Every decision is audited with its reason; the answers never change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn often_read_data_stays_warm_and_a_cold_file_read_often_comes_back() {
    use std::time::Duration;
    use vintagelake_schemas::table::StoredDataPoint;
    use vintagelake_storage::reader::TableReader;
    use vintagelake_testkit::fixtures::point;

    let dir = tempfile::tempdir().unwrap();
    let store = tiered_store(dir.path()).await;
    let wh = store.warehouse().clone();
    // Series k: five dates, revised on day r_k and again 5 days later, r_k 40 days apart, so each
    // series' superseded rows end in a month of their own (a file of their own).
    let base = Date::parse_iso("2020-06-01").unwrap().days_since_epoch();
    let series = ["POPULAR", "REVIVED", "QUIET"];
    let mut rows = Vec::new();
    for (k, s) in series.iter().enumerate() {
        for m in 1..=5 {
            let date = format!("2020-{m:02}-01");
            for (i, shift) in [0, 5].into_iter().enumerate() {
                let revision = Date::from_days_since_epoch(base + 40 * k as i32 + shift).to_string();
                let value = Some((k * 100 + m * 10 + i) as f64);
                let p = point(s, &date, &revision, value, i == 0);
                let ingest_seq = rows.len() as i64;
                rows.push(StoredDataPoint { point: p, realtime_end: None, ingest_seq, status: None, comment: None });
            }
        }
    }
    store.append_points(&rows, vec![], "ingest").await.unwrap();
    vintagelake_compactor::compact_once(&store, &Default::default(), &CancellationToken::new()).await.unwrap();
    let views = || async {
        let mut out = Vec::new();
        for q in vintagelake_testkit::fixtures::lifecycle_views() {
            out.push(store.query(&q).await.unwrap());
        }
        out
    };
    let answers = views().await;
    let retention = RetentionPolicy {
        hot_data_days: 30,
        warm_data_days: 365,
        cold_data_days: 3650,
        archive_data_days: 36_500,
        delete_after_days: 0,
    };
    let policy =
        Policy { keep_reads: 10, promote_reads: 40, ..Policy::new(&retention, &TIERS.map(|t| (name(t), None)), true) };
    let newest_end = base + 80 + 4;
    let run = |days_after: i32| {
        let (store, policy) = (&store, &policy);
        async move {
            let today = Date::from_days_since_epoch(newest_end + days_after);
            tier_once(store, policy, &Pins::new(), today, false, 2, &CancellationToken::new()).await.unwrap()
        }
    };
    // Where each series' superseded rows are (their file's tier).
    let tier_of = |s: &'static str| {
        let wh = wh.clone();
        async move {
            let table = wh.load(TableKind::DataPoints).await.unwrap();
            let files = live_files(&wh, &table, None).await.unwrap();
            let of: Vec<_> = files
                .into_iter()
                .filter(|f| f.realtime_end_month.is_some() && f.bounds().admits(Some(s), None, None))
                .collect();
            assert_eq!(of.len(), 1, "{s}'s superseded rows are in one file");
            (of[0].tier.as_ref().unwrap().to_string(), of[0].path.clone())
        }
    };
    // Reads through the query service's read path: each query counts once per file it reads.
    let reader = TableReader::new(wh.clone(), 2, Duration::ZERO);
    let read = |s: &'static str, times: usize| {
        let reader = &reader;
        async move {
            for _ in 0..times {
                let q = VintageQuery::new(View::AllRevisions).series([s.parse().unwrap()]);
                reader.query(&q).await.unwrap();
            }
        }
    };

    // A month after the newest revision: every superseded file is warm (nobody has read yet).
    let first = run(60).await;
    assert!(first.kept_for_reads.is_empty());
    for s in series {
        assert_eq!(tier_of(s).await.0, "warm", "{s}");
    }

    // One series read often, the others never; 400 days on, age says cold for all three.
    read("POPULAR", 30).await;
    let second = run(400).await;
    assert_eq!(tier_of("POPULAR").await.0, "warm", "read often: kept warm");
    assert_eq!(tier_of("REVIVED").await.0, "cold", "never read: moved by age");
    assert_eq!(tier_of("QUIET").await.0, "cold", "never read: moved by age");
    assert_eq!(second.kept_for_reads.len(), 1, "{:?}", second.kept_for_reads);
    let kept = &second.kept_for_reads[0];
    assert_eq!((kept.tier.as_str(), kept.path.as_str()), ("warm", tier_of("POPULAR").await.1.as_str()));
    assert!(kept.reads >= 30 && kept.rule.contains("keep_reads=10"), "{kept:?}");

    // A cold file read very often comes back to warm.
    read("REVIVED", 50).await;
    let third = run(401).await;
    assert_eq!(tier_of("REVIVED").await.0, "warm", "promoted");
    assert_eq!(tier_of("POPULAR").await.0, "warm", "30 reads halved to 15: still kept");
    assert_eq!(tier_of("QUIET").await.0, "cold");
    let promoted: Vec<_> = third.actions.iter().filter(|a| a.rule().contains("promote_reads=40")).collect();
    assert_eq!(promoted.len(), 1, "{:?}", third.actions);
    // The promoted file keeps its (halved) count under its new location.
    let counts = wh.file_reads(TableKind::DataPoints).await.unwrap();
    assert_eq!(counts.get(&tier_of("REVIVED").await.1), Some(&25), "{counts:?}");

    // No more reads: the promoted file stays (25 ≥ 10: hysteresis), the first one, down to 7,
    // goes cold by age.
    let fourth = run(402).await;
    assert_eq!(tier_of("REVIVED").await.0, "warm", "not sent back at once");
    assert_eq!(tier_of("POPULAR").await.0, "cold", "no longer read often");
    assert!(fourth.kept_for_reads.iter().any(|k| k.reads == 25), "{:?}", fourth.kept_for_reads);

    // Every decision is in the audit trail with its reason, and the answers never changed.
    let audit = wh.audit().read().unwrap();
    let keeps: Vec<_> = audit.entries.iter().filter(|e| e.actor == "tierer" && e.action == "keep").collect();
    assert_eq!(keeps.len(), second.kept_for_reads.len() + third.kept_for_reads.len() + fourth.kept_for_reads.len());
    assert!(keeps.iter().all(|e| e.rule.as_deref().is_some_and(|r| r.contains("times (keep_reads=10)"))));
    assert!(
        audit
            .entries
            .iter()
            .any(|e| e.action == "move" && e.rule.as_deref().is_some_and(|r| r.contains("promote_reads"))),
        "the promotion is audited as a move with its reason"
    );
    assert_eq!(views().await, answers);
}
