//! Storage V1 as a user runs it: `vintagelake ingest` with STORAGE_TYPE=parquet (exactly once
//! across a kill -9), and `vintagelake admin migrate --from parquet --to iceberg` on a
//! 1 000 000-row store, killed twice on the way and re-run.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use vintagelake_kafka::broker::{Broker, create_topics};
use vintagelake_kafka::synthetic;
use vintagelake_schemas::table::stored_data_points_to_batch;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::OffsetUpdate;
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore, IngestTarget};
use vintagelake_testkit::fixtures::{grid, lifecycle_answers, lifecycle_views, point, series_record};
use vintagelake_v1::ParquetStore;

use crate::support::*;

fn migrate(dir: &Path, failpoints: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vintagelake"));
    cmd.args(["admin", "migrate", "--from", "parquet", "--to", "iceberg", "--chunk-rows", "100000"])
        .args(["--data-dir", dir.to_str().unwrap()])
        .env_remove("VINTAGELAKE_FAILPOINTS")
        .env_remove("STORAGE_TYPE");
    if let Some(f) = failpoints {
        cmd.env("VINTAGELAKE_FAILPOINTS", f);
    }
    cmd.output().unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_row_v1_store_migrates_identically_after_two_kills_and_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = ParquetStore::open(dir.path().join("parquet")).await.unwrap();
    // 1 000 series × 250 dates × 4 revisions, as ten ingest commits with their Kafka positions.
    for part in 0..10 {
        let rows = grid("M", part * 100..(part + 1) * 100, 250, 4);
        let batch = stored_data_points_to_batch(&rows).unwrap();
        let expected = (part > 0).then_some(part as i64 * 1000);
        let offsets =
            vec![OffsetUpdate { topic: "revisions".into(), partition: 0, expected, next: (part as i64 + 1) * 1000 }];
        v1.append(TableKind::DataPoints, &[batch], offsets, "ingest").await.unwrap();
    }
    v1.write_series(&series_record("M00001", "Migrated series")).await.unwrap();
    let files = v1.live_files(TableKind::DataPoints, None).await.unwrap().len();
    let want = lifecycle_answers(&v1).await;
    assert_eq!(want[2].num_rows(), 1_000_000, "all_revisions of the V1 store");

    // Run 1 dies right after its 6th commit (the series table's, then five chunks of rows).
    let out = migrate(dir.path(), Some("migrate-after-chunk@6"));
    assert!(!out.status.success(), "run 1 was meant to die: {}", text(&out));
    assert!(text(&out).contains("fail point migrate-after-chunk reached"), "{}", text(&out));
    let wh = open(dir.path()).await;
    assert_eq!(total_records(&wh).await, 500_000, "five chunks committed before the kill");

    // Run 2 resumes, commits two chunks, and dies in the third after writing its files.
    let out = migrate(dir.path(), Some("migrate-before-commit@3"));
    assert!(!out.status.success(), "run 2 was meant to die: {}", text(&out));
    assert_eq!(total_records(&wh).await, 700_000, "the chunk in flight left nothing behind");

    // Run 3 finishes and validates.
    let out = migrate(dir.path(), None);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains(&format!("data_points: {files} files, 1000000 rows")), "{log}");
    assert!(log.contains("3 commits this run, resumed after file "), "{log}");
    assert!(log.contains("1000 series validated"), "{log}");
    assert_eq!(total_records(&wh).await, 1_000_000, "no row twice");

    let iceberg = IcebergStore::new(wh.clone());
    let got = lifecycle_answers(&iceberg).await;
    for ((q, g), w) in lifecycle_views().iter().zip(&got).zip(&want) {
        assert_eq!(g, w, "{:?}: Iceberg after migration vs the V1 store", q.view);
    }
    assert_eq!(iceberg.list_series().await.unwrap(), v1.list_series().await.unwrap());
    let positions = IngestTarget::recorded_offsets(&iceberg, TableKind::DataPoints).await.unwrap();
    assert_eq!(positions.get(&("revisions".into(), 0)), Some(&10_000), "ingest resumes where V1 stopped");

    // A re-run of a finished migration changes nothing and validates again.
    let out = migrate(dir.path(), None);
    assert!(out.status.success(), "{}", text(&out));
    let again = format!(
        "data_points: {files} files, 1000000 rows from V1 version 11 (0 commits this run, resumed after file {files})"
    );
    assert!(text(&out).contains(&again), "{}", text(&out));
    assert_eq!(total_records(&wh).await, 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_refuses_a_missing_source_and_a_target_that_holds_other_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = migrate(dir.path(), None);
    assert!(!out.status.success());
    assert!(text(&out).contains("no V1 store at"), "{}", text(&out));

    let v1 = ParquetStore::open(dir.path().join("parquet")).await.unwrap();
    v1.write_data_points(&"A".parse().unwrap(), &[point("A", "2024-01-01", "2024-02-01", Some(1.0), true)])
        .await
        .unwrap();
    let iceberg = IcebergStore::new(open(dir.path()).await);
    iceberg
        .write_data_points(&"B".parse().unwrap(), &[point("B", "2024-01-01", "2024-02-01", Some(2.0), true)])
        .await
        .unwrap();
    let out = migrate(dir.path(), None);
    assert!(!out.status.success());
    assert!(text(&out).contains("already holds rows that did not come from a V1 migration"), "{}", text(&out));
    let all = iceberg.query(&VintageQuery::new(View::AllRevisions)).await.unwrap();
    assert_eq!(all.num_rows(), 1, "the refused migration wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_into_a_v1_store_is_exactly_once_across_a_kill() {
    const N: usize = 30_000;
    let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
    let dir = tempfile::tempdir().unwrap();
    let topics = Topics::new();
    create_topics(broker.bootstrap_servers(), &[&topics.data, &topics.series], 3).await.unwrap();
    let produced = synthetic::revisions(N, 7);
    // Half before the first daemon (killed as soon as it has committed something), half after.
    produce(broker.bootstrap_servers(), &topics.data, &produced[..N / 2]).await;

    let mut env = ingest_env(dir.path(), broker.bootstrap_servers(), &topics);
    env.insert("STORAGE_TYPE".into(), "parquet".into());
    env.insert("COMMIT_MAX_ROWS".into(), "500".into());
    let v1 = ParquetStore::open(dir.path().join("parquet")).await.unwrap();
    let mut ingest = Daemon::spawn(&["ingest"], dir.path(), &env);
    wait_for(Duration::from_secs(120), "some rows committed", || {
        ingest.assert_alive();
        let v1 = v1.clone();
        async move { committed(&v1).await >= 1 }
    })
    .await;
    ingest.kill9();
    produce(broker.bootstrap_servers(), &topics.data, &produced[N / 2..]).await;

    let mut ingest = Daemon::spawn(&["ingest"], dir.path(), &env);
    wait_for(Duration::from_secs(180), "every revision committed", || {
        ingest.assert_alive();
        let v1 = v1.clone();
        async move { committed(&v1).await >= N as u64 }
    })
    .await;
    // Readiness probes the commit log itself (between commits, which also report on it).
    wait_for(Duration::from_secs(60), "ready with the commit log's probe", || {
        ingest.assert_alive();
        let get = ingest.get("/ready");
        async move { matches!(get.await, Some((200, body)) if body.contains("commit log at version")) }
    })
    .await;
    let status = ingest.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", ingest.log_text());

    let batches = v1.read_files(&v1.live_files(TableKind::DataPoints, None).await.unwrap()).await.unwrap();
    let rows = vintagelake_storage::store::stored_rows(&batches).unwrap();
    assert_eq!(rows.len(), N, "exactly once across the kill");
    assert_eq!(
        multiset(rows.iter().map(key_of_row).collect()),
        multiset(produced.iter().map(key_of_revision).collect())
    );
    let recorded = IngestTarget::recorded_offsets(&v1, TableKind::DataPoints).await.unwrap();
    let ends = end_offsets(broker.bootstrap_servers(), &topics.data).await;
    for (p, end) in &ends {
        assert_eq!(recorded.get(&(topics.data.clone(), *p)), Some(end), "partition {p}");
    }
}

/// Rows in the V1 store's live files.
async fn committed(v1: &ParquetStore) -> u64 {
    v1.live_files(TableKind::DataPoints, None).await.unwrap().iter().map(|f| f.rows).sum()
}
