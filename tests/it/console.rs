//! The web console, end to end: `serve` with authentication and data, the console opened in
//! headless Chromium (tests/console/console.test.mjs, playwright-core with Debian's chromium),
//! every number it must show computed here from the published revisions; its downloads compared
//! with what `vintagelake get` writes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vintagelake_kafka::broker::{Broker, create_topics};
use vintagelake_kafka::synthetic;
use vintagelake_schemas::DataPointRevision;

use crate::support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const REVISIONS: usize = 6_000;
const SEED: u64 = 28;

/// One series' revisions: date → [(revision date, value)] in publication order.
type History = BTreeMap<String, Vec<(String, Option<f64>)>>;

fn history(revisions: &[DataPointRevision], series: &str) -> History {
    let mut h = History::new();
    for r in revisions.iter().filter(|r| r.series_id.as_str() == series) {
        h.entry(r.date.to_string()).or_default().push((r.revision_date.to_string(), r.value));
    }
    h
}

/// The value of each date known on `vintage` (None: every vintage): the latest revision date
/// not after it, the last publication of that revision date winning (a correction).
fn known(h: &History, vintage: Option<&str>) -> BTreeMap<String, Option<f64>> {
    let mut out = BTreeMap::new();
    for (date, revisions) in h {
        let mut best: Option<(&str, Option<f64>)> = None;
        for (rd, v) in revisions {
            if vintage.is_some_and(|v| rd.as_str() > v) {
                continue;
            }
            if best.is_none_or(|(b, _)| rd.as_str() >= b) {
                best = Some((rd, *v));
            }
        }
        if let Some((_, v)) = best {
            out.insert(date.clone(), v);
        }
    }
    out
}

/// The value of each date at its first release (the earliest revision date, last publication).
fn first_release(h: &History) -> BTreeMap<String, Option<f64>> {
    h.iter()
        .map(|(date, revisions)| {
            let first = revisions.iter().map(|(rd, _)| rd).min().expect("a revision");
            let v = revisions.iter().rev().find(|(rd, _)| rd == first).expect("it").1;
            (date.clone(), v)
        })
        .collect()
}

fn published(values: &BTreeMap<String, Option<f64>>) -> BTreeMap<String, f64> {
    values.iter().filter_map(|(d, v)| v.map(|v| (d.clone(), v))).collect()
}

/// `node_modules` of the console tests, installed from the lockfile when missing.
fn console_tests_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    if !dir.join("node_modules/playwright-core").exists() {
        let out = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "npm ci in {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_shows_what_the_revisions_say() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "the console tests need Debian's chromium at {CHROMIUM}: apt-get install chromium chromium-driver \
         (deploy/local/test.sh installs it)"
    );
    let tests = console_tests_dir();
    let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
    let dir = tempfile::tempdir().unwrap();
    let topics = Topics::new();
    create_topics(broker.bootstrap_servers(), &[&topics.data, &topics.series], 4).await.unwrap();

    let mut env = ingest_env(dir.path(), broker.bootstrap_servers(), &topics);
    env.insert("FLIGHT_SERVER_PORT".into(), free_port().to_string());
    env.insert("FLIGHT_USERS".into(), "ana:correct-horse".into());
    env.insert("FLIGHT_TOKENS".into(), "cli:t0ken-for-get".into());
    // Lifecycle runs only when the test asks (`compact --once` below), so it knows the last one.
    env.insert("COMPACTION_SCHEDULE".into(), "0 0 0 1 1 *".into());
    let mut serve = Daemon::spawn(&["serve"], dir.path(), &env);
    let base = format!("http://127.0.0.1:{}", serve.http_port);
    wait_for(Duration::from_secs(60), "serve's endpoints", || {
        serve.assert_alive();
        let at = dir.path().join("endpoints.json");
        async move { at.exists() }
    })
    .await;

    // Published with the CLI, to the broker `serve` recorded.
    let vintagelake = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vintagelake"))
            .args(args)
            .env("DATA_DIR", dir.path())
            .env_remove("FLIGHT_URL")
            .env_remove("KAFKA_BOOTSTRAP_SERVERS")
            .env("FLIGHT_TOKEN", "t0ken-for-get")
            .env("HTTP_PORT", free_port().to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let (n, seed) = (REVISIONS.to_string(), SEED.to_string());
    vintagelake(&[
        "produce",
        "--synthetic",
        &n,
        "--seed",
        &seed,
        "--topic",
        &topics.data,
        "--series-topic",
        &topics.series,
    ]);
    let revisions = synthetic::revisions(REVISIONS, SEED);
    let keys: BTreeSet<_> =
        revisions.iter().map(|r| (r.series_id.as_str(), r.date, r.revision_date)).collect::<BTreeSet<_>>();
    let wh = open(dir.path()).await;
    wait_for(Duration::from_secs(240), "every revision committed", || {
        serve.assert_alive();
        let wh = wh.clone();
        async move { total_records(&wh).await >= REVISIONS as u64 }
    })
    .await;

    // A compaction by another process on the same data directory: the one the operations page
    // must show as the last.
    vintagelake(&["compact", "--once"]);
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let last_compaction = audit
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["actor"] == "compactor" && e["action"] == "compact")
        .unwrap_or_else(|| panic!("no compaction in the audit trail:\n{audit}"));
    let last_compaction_snapshot = last_compaction["snapshot_id"].as_i64().expect("the compaction committed");

    // What the pages must show, from the revisions alone.
    let search = "gdp series 1";
    let catalogue = synthetic::series_for(REVISIONS);
    let hits: Vec<&str> = catalogue
        .iter()
        .filter(|s| s.id.as_str().to_lowercase().contains(search) || s.title.to_lowercase().contains(search))
        .map(|s| s.id.as_str())
        .collect();
    assert!(hits.len() > 1, "the search finds several series: {hits:?}");
    let series = hits[hits.len() / 2].to_owned();
    let h = history(&revisions, &series);
    let vintages: Vec<String> =
        h.values().flatten().map(|(rd, _)| rd.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let as_of: Vec<serde_json::Value> = [vintages.len() / 3, 2 * vintages.len() / 3]
        .into_iter()
        .map(|i| {
            let values = published(&known(&h, Some(&vintages[i])));
            serde_json::json!({ "vintage": vintages[i], "points": values.len(), "values": values })
        })
        .collect();
    assert_ne!(as_of[0]["values"], as_of[1]["values"], "two vintages that differ");
    let shown = &vintages[vintages.len().saturating_sub(40)..];
    let matrix_cells: usize = shown.iter().map(|v| known(&h, Some(v)).len()).sum();
    let expect = serde_json::json!({
        "user": "ana", "password": "correct-horse",
        "search": search, "search_hits": hits, "series": series,
        "latest_points": published(&known(&h, None)).len(),
        "first_points": published(&first_release(&h)).len(),
        "latest_rows": h.len(),
        "as_of": as_of,
        "matrix_cells": matrix_cells,
        // As text: JSON numbers in JavaScript lose the last digits of a 64-bit id.
        "last_compaction_snapshot": last_compaction_snapshot.to_string(),
        "committed_at_least": keys.len(),
    });
    let expect_file = dir.path().join("expect.json");
    std::fs::write(&expect_file, expect.to_string()).unwrap();
    let artefacts = std::env::var_os("CONSOLE_ARTEFACTS").map_or_else(|| tests.join("artefacts"), PathBuf::from);
    let _ = std::fs::remove_dir_all(&artefacts);

    // Data without credentials is refused over plain HTTP too.
    let (status, _) = serve.get("/api/v1/series").await.expect("the HTTP port answers");
    assert_eq!(status, 401, "the series list without a token");
    let (status, page) = serve.get("/").await.expect("the console page");
    assert!(status == 200 && page.contains("/assets/console.js"), "{status}: {page}");

    let out = tokio::process::Command::new("node")
        .arg(tests.join("console.test.mjs"))
        .env("CONSOLE_URL", &base)
        .env("EXPECT", &expect_file)
        .env("ARTEFACTS", &artefacts)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .await
        .unwrap();
    let report = format!(
        "{}{}\nserve's log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        serve.log_text()
    );
    assert!(out.status.success(), "the browser test failed:\n{report}");
    for shot in ["01-login.png", "02-series-browser.png", "03-series.png", "04-operations.png"] {
        assert!(artefacts.join(shot).metadata().is_ok_and(|m| m.len() > 1_000), "screenshot {shot}");
    }

    // The console's downloads are what `vintagelake get` writes.
    let csv = vintagelake(&["get", &series, "--format", "csv"]);
    assert_eq!(std::fs::read(artefacts.join("download.latest.csv")).unwrap(), csv, "latest as CSV");
    assert_eq!(csv.iter().filter(|b| **b == b'\n').count(), h.len() + 1, "a header and one line per date");
    let matrix = vintagelake(&["get", &series, "--matrix", "--format", "csv"]);
    assert_eq!(std::fs::read(artefacts.join("download.matrix.csv")).unwrap(), matrix, "the wide matrix as CSV");
    let parquet_out = dir.path().join("latest.parquet");
    vintagelake(&["get", &series, "--format", "parquet", "--out", parquet_out.to_str().unwrap()]);
    let read = |p: &Path| {
        let file = std::fs::File::open(p).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    };
    let (mine, theirs) = (read(&artefacts.join("download.latest.parquet")), read(&parquet_out));
    assert_eq!(mine.num_rows(), h.len());
    assert_eq!(mine, theirs, "latest as Parquet");
    serve.terminate(Duration::from_secs(60));
}
