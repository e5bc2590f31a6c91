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
    // Where each run dies: at a fail point (before the commit, between the metadata write and the
    // catalog swap, after the commit, between expiry's commit and its deletes, in the middle of
    // orphan removal), or at a random moment with SIGKILL.
    let points = [
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
        let status = if round % 6 == 5 {
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
            let point = points[round % 6 % points.len()];
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
    assert!(died >= rounds * 5 / 6, "{died} of {rounds} runs died");
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
