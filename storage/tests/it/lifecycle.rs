//! Snapshot expiry, orphan files, and a crash between writing new metadata and the catalog swap.

use std::process::Command;
use std::time::Duration;

use vintagelake_schemas::SeriesId;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::scan::{SnapshotSelector, View, VintageQuery};
use vintagelake_storage::snapshots::{ExpirePolicy, expire_snapshots, find_orphans, list_snapshots, remove_orphans};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};

use crate::fixture::*;

const CRASH_DIR: &str = "VINTAGELAKE_TEST_CRASH_DIR";

/// Run only as a child of `a_crash_before_the_catalog_swap_loses_nothing`: commits with the
/// fail point armed, so the process aborts after writing new metadata, before the swap.
#[tokio::test]
#[ignore = "child process of the crash test"]
async fn crash_child_commits_then_aborts() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else { return };
    let store = IcebergStore::new(warehouse(std::path::Path::new(&dir)).await);
    let gdp: SeriesId = "GDPC1".parse().unwrap();
    store.write_data_points(&gdp, &[point("GDPC1", "2030-01-01", "2030-02-01", Some(1.0), true)]).await.unwrap();
    unreachable!("the fail point aborts before the commit returns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_catalog_swap_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = IcebergStore::new(warehouse(dir.path()).await);
    write_fixture(&store).await;
    let wh = store.warehouse().clone();
    let before = wh.load(TableKind::DataPoints).await.unwrap();
    let snapshot_before = before.metadata().current_snapshot_id();
    assert!(find_orphans(&wh, TableKind::DataPoints, Duration::ZERO).await.unwrap().is_empty());

    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lifecycle::crash_child_commits_then_aborts", "--ignored", "--nocapture"])
        .env(CRASH_DIR, dir.path())
        .env(vintagelake_runtime::failpoint::ENV, "commit-before-swap")
        .output()
        .unwrap();
    assert!(!status.status.success(), "the child must die at the fail point");
    assert!(String::from_utf8_lossy(&status.stderr).contains("fail point commit-before-swap reached"));

    // The table is where it was, and readable.
    let after = wh.load(TableKind::DataPoints).await.unwrap();
    assert_eq!(after.metadata().current_snapshot_id(), snapshot_before);
    assert_eq!(
        rows(&store.query(&VintageQuery::new(View::Latest).series(["GDPC1".parse().unwrap()])).await.unwrap()),
        expected_latest()
    );

    // What the dead writer left: its data file, manifest, manifest list and metadata file.
    let orphans = find_orphans(&wh, TableKind::DataPoints, Duration::ZERO).await.unwrap();
    let kinds = |suffix: &str| orphans.iter().filter(|o| o.path.ends_with(suffix)).count();
    assert_eq!(kinds(".parquet"), 1, "{orphans:?}");
    assert_eq!(kinds(".metadata.json"), 1, "{orphans:?}");
    assert_eq!(kinds(".avro"), 2, "manifest and manifest list: {orphans:?}");
    // Within the grace period nothing is an orphan yet (it could be a commit in flight).
    assert!(find_orphans(&wh, TableKind::DataPoints, Duration::from_secs(3600)).await.unwrap().is_empty());
    let removed = remove_orphans(&wh, TableKind::DataPoints, Duration::ZERO).await.unwrap();
    assert_eq!(removed.len(), 4);
    for o in &removed {
        assert!(!std::path::Path::new(o.path.trim_start_matches("file://")).exists(), "{} still there", o.path);
    }
    assert!(find_orphans(&wh, TableKind::DataPoints, Duration::ZERO).await.unwrap().is_empty());
    assert_eq!(
        rows(&store.query(&VintageQuery::new(View::AllRevisions).series(["GDPC1".parse().unwrap()])).await.unwrap()),
        expected_all_revisions()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_keeps_the_last_n_and_time_travel_to_what_remains() {
    let dir = tempfile::tempdir().unwrap();
    let store = IcebergStore::new(warehouse(dir.path()).await);
    write_fixture(&store).await;
    let wh = store.warehouse().clone();
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let snaps = list_snapshots(&table).unwrap();
    assert_eq!(snaps.len(), 6);
    assert!(snaps.last().unwrap().is_current);
    assert_eq!(snaps.last().unwrap().refs, vec!["main".to_owned()]);
    assert!(snaps.iter().all(|s| s.origin.as_deref() == Some("api") && s.operation == "append"));

    // Time travel by snapshot id and by timestamp, before expiry.
    let second = snaps[1].snapshot_id;
    let q = VintageQuery::new(View::AllRevisions).at_snapshot(SnapshotSelector::Id(second));
    assert_eq!(store.query(&q).await.unwrap().num_rows(), 3, "v1 + v2 (the duplicate collapses)");
    let q = VintageQuery::new(View::AllRevisions).at_snapshot(SnapshotSelector::AsOfTimestampMs(snaps[1].timestamp_ms));
    assert_eq!(store.query(&q).await.unwrap().num_rows(), 3);

    // Nothing is old enough yet.
    let none =
        expire_snapshots(&wh, TableKind::DataPoints, ExpirePolicy { older_than_ms: 0, retain_last: 1 }).await.unwrap();
    assert!(none.expired.is_empty());
    // Keep the last 2.
    let far_future = chrono::Utc::now().timestamp_millis() + 3_600_000;
    let report =
        expire_snapshots(&wh, TableKind::DataPoints, ExpirePolicy { older_than_ms: far_future, retain_last: 2 })
            .await
            .unwrap();
    assert_eq!(report.expired.len(), 4);
    // Only manifest lists (and manifests) go: every data file is still live in the current snapshot.
    assert!(report.files_deleted >= 4, "{report:?}");
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let left = list_snapshots(&table).unwrap();
    assert_eq!(
        left.iter().map(|s| s.snapshot_id).collect::<Vec<_>>(),
        snaps[4..].iter().map(|s| s.snapshot_id).collect::<Vec<_>>()
    );
    let q = VintageQuery::new(View::AllRevisions).at_snapshot(SnapshotSelector::Id(second));
    let err = store.query(&q).await.expect_err("an expired snapshot cannot be read");
    assert_eq!(err.to_string(), format!("snapshot {second} does not exist (expired or never made)"));
    // Current data unaffected, nothing left behind.
    assert_eq!(
        rows(&store.query(&VintageQuery::new(View::Latest).series(["GDPC1".parse().unwrap()])).await.unwrap()),
        expected_latest()
    );
    assert!(find_orphans(&wh, TableKind::DataPoints, Duration::ZERO).await.unwrap().is_empty());
}
