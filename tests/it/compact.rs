//! `vintagelake compact` as a user runs it: killed at every step of 20 runs, stopped by SIGTERM in
//! the middle of a run, and following its cron schedule.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::files::live_files;
use vintagelake_storage::snapshots::find_orphans;
use vintagelake_storage::store::{IcebergStore, InMemoryStorage, StoredRow};
use vintagelake_testkit::fixtures::{lifecycle_answers, revision_stream};

use crate::support::{Daemon, open, wait_for};

/// `vintagelake compact --once` on `dir` with `extra` flags and environment; (success, output).
fn compact_once(dir: &Path, flags: &[&str], env: &BTreeMap<&str, &str>) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vintagelake"))
        .args(["compact", "--once", "--data-dir", dir.to_str().unwrap(), "--http-port", "0"])
        .args(flags)
        .env_remove("VINTAGELAKE_FAILPOINTS")
        .envs(env)
        .output()
        .unwrap()
}

/// Appends `rows` as small commits of `per_commit` rows, to the table and to the oracle.
async fn append_small(store: &IcebergStore, oracle: &InMemoryStorage, rows: &[StoredRow], per_commit: usize) {
    for chunk in rows.chunks(per_commit) {
        store.append_points(chunk, vec![], "ingest").await.unwrap();
        oracle.append_points(chunk.to_vec()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_compaction_runs_killed_at_every_step_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = IcebergStore::new(open(&data).await);
    let wh = store.warehouse().clone();
    let oracle = InMemoryStorage::new();
    let rows = revision_stream("K", 0..12, 20, 4);
    let rounds = 20;
    // Where each run dies: at a fail point (after a chunk's files were written, before the
    // commit, between the metadata write and the catalog swap, after the commit, between expiry's
    // commit and its deletes, in the middle of orphan removal), or at a random moment with SIGKILL.
    let points = [
        "compact-after-chunk",
        "compact-before-commit",
        "commit-before-swap",
        "compact-after-commit",
        "expire-before-delete",
        "orphans-after-first-delete",
    ];
    let flags = ["--snapshot-retention", "0s", "--keep-snapshots", "3", "--orphan-grace", "0s"];
    let mut seed = 0x5eed_u64;
    let mut died = 0;
    for round in 0..rounds {
        let slice = &rows[round * rows.len() / rounds..(round + 1) * rows.len() / rounds];
        append_small(&store, &oracle, slice, 9).await;
        let status = if round % 7 == 6 {
            // SIGKILL after a pseudo-random 0–400 ms.
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let delay = Duration::from_millis((seed >> 33) % 400);
            let mut child = Command::new(env!("CARGO_BIN_EXE_vintagelake"))
                .args(["compact", "--once", "--data-dir", data.to_str().unwrap(), "--http-port", "0"])
                .args(flags)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            tokio::time::sleep(delay).await;
            let _ = child.kill();
            child.wait().unwrap()
        } else {
            let point = points[round % 7];
            let out = compact_once(&data, &flags, &BTreeMap::from([("VINTAGELAKE_FAILPOINTS", point)]));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&format!("fail point {point} reached")),
                "round {round}: never reached {point}:\n{stderr}"
            );
            out.status
        };
        died += usize::from(!status.success());
        // After every death: the table opens, and every view answers what was written.
        assert_eq!(lifecycle_answers(&store).await, lifecycle_answers(&oracle).await, "round {round}");
    }
    assert!(died >= rounds * 6 / 7, "{died} of {rounds} runs died");
    assert!(
        !find_orphans(&wh, TableKind::DataPoints, Duration::ZERO).await.unwrap().is_empty(),
        "the deaths left files"
    );

    // The next run cleans up what the dead ones left, and still answers the same.
    let out = compact_once(&data, &flags, &BTreeMap::new());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let orphans = find_orphans(&wh, TableKind::DataPoints, Duration::ZERO).await.unwrap();
    assert!(orphans.is_empty(), "{orphans:?}");
    assert_eq!(lifecycle_answers(&store).await, lifecycle_answers(&oracle).await);
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let current =
        live_files(&wh, &table, None).await.unwrap().iter().filter(|f| f.realtime_end_month.is_none()).count();
    assert_eq!(current, 1, "one compacted current file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_run_aborts_before_the_commit_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = IcebergStore::new(open(&data).await);
    let wh = store.warehouse().clone();
    let oracle = InMemoryStorage::new();
    // Enough small files that reading them one at a time takes a while.
    append_small(&store, &oracle, &revision_stream("T", 0..300, 40, 5), 100).await;
    let before = wh.load(TableKind::DataPoints).await.unwrap().metadata().current_snapshot_id();

    let mut daemon = Daemon::spawn(
        &["compact", "--once", "--data-dir", data.to_str().unwrap(), "--max-concurrent-operations", "1"],
        dir.path(),
        &BTreeMap::new(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !daemon.log_text().contains("compacting") {
        daemon.assert_alive();
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started:
{}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = daemon.terminate(Duration::from_secs(30));
    let log = daemon.log_text();
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(log.contains("cancelled"), "the run says it was cancelled:\n{log}");

    // Nothing was committed, everything still answers, the audit trail says what happened.
    assert_eq!(wh.load(TableKind::DataPoints).await.unwrap().metadata().current_snapshot_id(), before);
    assert_eq!(lifecycle_answers(&store).await, lifecycle_answers(&oracle).await);
    let audit = wh.audit().read().unwrap();
    let last = audit.entries.last().expect("an audit entry for the run");
    assert_eq!(last.action, "compact");
    assert!(last.outcome.starts_with("cancelled"), "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_follows_its_schedule_reports_metrics_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = IcebergStore::new(open(&data).await);
    let oracle = InMemoryStorage::new();
    let rows = revision_stream("S", 0..10, 10, 3);
    append_small(&store, &oracle, &rows[..rows.len() / 2], 10).await;

    let mut daemon = Daemon::spawn(
        &["compact", "--data-dir", data.to_str().unwrap(), "--compaction-schedule", "*/2 * * * * *"],
        dir.path(),
        &BTreeMap::new(),
    );
    let runs = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with("vintagelake_compaction_runs_total{outcome=\"ok\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    wait_for(Duration::from_secs(60), "a first scheduled run", || {
        let get = daemon.get("/metrics");
        async move { get.await.is_some_and(|(_, body)| runs(&body) >= 1) }
    })
    .await;
    // More small files arrive; a later tick compacts them without anyone asking.
    append_small(&store, &oracle, &rows[rows.len() / 2..], 10).await;
    let wh = store.warehouse().clone();
    wait_for(Duration::from_secs(60), "a later run to compact the new files", || {
        let wh = wh.clone();
        async move {
            let table = wh.load(TableKind::DataPoints).await.unwrap();
            live_files(&wh, &table, None).await.unwrap().iter().filter(|f| f.realtime_end_month.is_none()).count() == 1
        }
    })
    .await;
    daemon.assert_alive();
    // The run that merged them counts itself once it has also expired and cleaned up.
    wait_for(Duration::from_secs(30), "the second run counted", || {
        let get = daemon.get("/metrics");
        async move { get.await.is_some_and(|(_, body)| runs(&body) >= 2) }
    })
    .await;
    let (_, metrics) = daemon.get("/metrics").await.expect("metrics answer");
    for name in ["vintagelake_compaction_files_in_total", "vintagelake_compaction_duration_seconds"] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    let status = daemon.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}; log:\n{}", daemon.log_text());
    assert_eq!(lifecycle_answers(&store).await, lifecycle_answers(&oracle).await);
    let compactions = wh.audit().read().unwrap().entries.iter().filter(|e| e.action == "compact").count();
    assert!(compactions >= 2, "one audit entry per run");
}

/// A key rotation killed at every step of the re-encryption — before its commit, between a
/// commit's metadata write and the catalog swap, between the two tables' commits, in the expiry
/// and orphan removal after them — loses nothing and deletes nothing a snapshot needs: after every
/// death each view equals the oracle; the next run finishes the rotation (no live file under the
/// old key) and cleans up what the dead runs left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_killed_at_every_step_loses_nothing() {
    use std::sync::Arc;
    use vintagelake_storage::catalog::{Warehouse, WarehouseConfig};
    use vintagelake_storage::crypto::{Encryption, LocalKeys};
    use vintagelake_storage::files::master_key;
    use vintagelake_storage::store::FinancialDataStorage;
    const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODw==,k2:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = |current: &str| Encryption::new(Arc::new(LocalKeys::parse(KEYS, Some(current)).unwrap()));
    let store = IcebergStore::new(
        Warehouse::open(WarehouseConfig::new(&data).with_target_file_size(16 * 1024).with_encryption(keys("k1")))
            .await
            .unwrap(),
    );
    let oracle = InMemoryStorage::new();
    append_small(&store, &oracle, &revision_stream("R", 0..8, 20, 3), 40).await;
    for id in ["R00000", "R00001"] {
        let s = vintagelake_testkit::fixtures::series_record(id, "a title");
        store.write_series(&s).await.unwrap();
        oracle.write_series(&s).await.unwrap();
    }
    let flags = ["--snapshot-retention", "0s", "--keep-snapshots", "3", "--orphan-grace", "0s"];
    let with = |current: &'static str, point: Option<&'static str>| {
        let mut env = BTreeMap::from([("ENCRYPTION_KEYS", KEYS), ("ENCRYPTION_KEY_ID", current)]);
        if let Some(p) = point {
            env.insert("VINTAGELAKE_FAILPOINTS", p);
        }
        env
    };
    // Compacted under k1 first: the rotation runs below have only re-encryption to commit.
    let out = compact_once(&data, &flags, &with("k1", None));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let wh = store.warehouse().clone();
    let under = |kind| {
        let wh = wh.clone();
        async move {
            let table = wh.load(kind).await.unwrap();
            live_files(&wh, &table, None).await.unwrap().iter().map(|f| master_key(&f.data_file)).collect::<Vec<_>>()
        }
    };
    assert!(under(TableKind::DataPoints).await.len() > 2, "several files to rotate");
    // Readers hold both keys throughout, as during a real rotation.
    let reader =
        IcebergStore::new(Warehouse::open(WarehouseConfig::new(&data).with_encryption(keys("k2"))).await.unwrap());
    let expected = lifecycle_answers(&oracle).await;
    assert_eq!(lifecycle_answers(&reader).await, expected, "before the rotation");
    for (step, point) in [
        "rekey-before-commit",        // data_points: files written, nothing committed
        "commit-before-swap",         // data_points: metadata written, catalog not swapped
        "rekey-before-commit@2",      // data_points committed, series not
        "commit-before-swap",         // series: metadata written, catalog not swapped
        "expire-before-delete",       // series committed; expiry dies before its deletes
        "orphans-after-first-delete", // rotation done; orphan removal dies half-way
    ]
    .into_iter()
    .enumerate()
    {
        let out = compact_once(&data, &flags, &with("k2", Some(point)));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = point.split('@').next().unwrap();
        assert!(
            stderr.contains(&format!("fail point {name} reached")),
            "step {step}: never reached {point}:\n{stderr}"
        );
        assert!(!out.status.success(), "step {step}: the run died");
        assert_eq!(lifecycle_answers(&reader).await, expected, "step {step} ({point}): every view after the death");
        let series = FinancialDataStorage::list_series(&reader).await.unwrap();
        assert_eq!(series, FinancialDataStorage::list_series(&oracle).await.unwrap(), "step {step}: series");
    }
    let rotated = under(TableKind::DataPoints).await;
    assert!(rotated.iter().all(|k| k.as_deref() == Some("k2")), "the dead runs committed the rotation: {rotated:?}");
    let out = compact_once(&data, &flags, &with("k2", None));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for kind in TableKind::all() {
        let keys = under(kind).await;
        assert!(keys.iter().all(|k| k.as_deref() == Some("k2")), "{kind:?}: {keys:?}");
        let orphans = find_orphans(&wh, kind, Duration::ZERO).await.unwrap();
        assert!(orphans.is_empty(), "{kind:?}: {orphans:?}");
    }
    // k1 is no longer needed by the current snapshot.
    let k2_only = IcebergStore::new(
        Warehouse::open(WarehouseConfig::new(&data).with_encryption(Encryption::new(Arc::new(
            LocalKeys::parse("k2:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=", None).unwrap(),
        ))))
        .await
        .unwrap(),
    );
    assert_eq!(lifecycle_answers(&k2_only).await, expected);
}
