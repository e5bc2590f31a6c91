//! The vintage rules through the real broker and the real daemons — `vintagelake ingest` running,
//! `compact --once` and `tier --once` as a user runs them — in the four situations that used to
//! change an answer: a correction without a key or through another partition, retention and
//! first releases, a late backfill's real-time period, an exact re-publication. Then pyiceberg
//! and DuckDB's own Iceberg reader read the table back and agree with our views.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use vintagelake_kafka::broker::{Broker, create_topics};
use vintagelake_schemas::Date;
use vintagelake_storage::catalog::{TableKind, Warehouse, WarehouseConfig};
use vintagelake_storage::io::TierSpec;
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};
use vintagelake_testkit::fixtures::rows;
use vintagelake_testkit::tools::run_python;

use crate::support::*;

/// A data directory with one tier, the ingest daemon on two partitions, and the lifecycle commands.
struct Lake {
    dir: tempfile::TempDir,
    config: PathBuf,
    broker: Broker,
    topics: Topics,
    producer: FutureProducer,
    ingest: Daemon,
    store: IcebergStore,
    published: i64,
}

fn tier_dir(data: &Path) -> PathBuf {
    data.join("tiers").join("hot")
}

impl Lake {
    async fn start() -> Lake {
        let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
        let topics = Topics::new();
        create_topics(broker.bootstrap_servers(), &[&topics.data, &topics.series], 2).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = dir.path().join("storage.yaml");
        std::fs::write(
            &config,
            format!(
                "storage:\n  data_dir: \"{}\"\n  tiers:\n    - {{ name: hot, type: local, path: \"{}\" }}\n  retention:\n    hot_data_days: 30\n    warm_data_days: 60\n    cold_data_days: 90\n    archive_data_days: 365\n    delete_after_days: 365\n",
                data.display(),
                tier_dir(&data).display()
            ),
        )
        .unwrap();
        let mut env = ingest_env(&data, broker.bootstrap_servers(), &topics);
        env.insert("VINTAGELAKE_CONFIG".into(), config.display().to_string());
        env.insert("TOPIC_PARTITIONS".into(), "2".into());
        let ingest = Daemon::spawn(&["ingest"], dir.path(), &env);
        let wh = Warehouse::open(WarehouseConfig::new(&data).with_tiers(vec![TierSpec::local("hot", tier_dir(&data))]))
            .await
            .unwrap();
        let producer = vintagelake_kafka::produce::producer(broker.bootstrap_servers()).unwrap();
        Lake { dir, config, broker, topics, producer, ingest, store: IcebergStore::new(wh), published: 0 }
    }

    /// Publishes one JSON revision: under `key` (none: unkeyed) to `partition` (none: by key).
    async fn publish(&mut self, key: Option<&str>, partition: Option<i32>, json: &str) {
        let mut record: FutureRecord<'_, str, str> = FutureRecord::to(&self.topics.data).payload(json);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        self.producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
        self.published += 1;
    }

    /// Waits until ingest has committed past everything published (dead letters included).
    async fn settle(&mut self) {
        let topic = self.topics.data.clone();
        let want = self.published;
        let store = &self.store;
        let ingest = &mut self.ingest;
        wait_for(Duration::from_secs(60), "ingest committed everything published", || {
            ingest.assert_alive();
            let topic = topic.clone();
            async move {
                let recorded = store.recorded_offsets(TableKind::DataPoints).await.unwrap_or_default();
                recorded.iter().filter(|((t, _), _)| *t == topic).map(|(_, o)| *o).sum::<i64>() >= want
            }
        })
        .await;
    }

    /// `vintagelake <args>` with this lake's configuration; panics with its output on failure.
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_vintagelake"))
            .args(args)
            .args(["--http-port", "0"])
            .env("VINTAGELAKE_CONFIG", &self.config)
            .env_remove("VINTAGELAKE_FAILPOINTS")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "vintagelake {args:?} failed:\n{text}");
        text
    }

    fn compact(&self) -> String {
        self.run(&["compact", "--once"])
    }

    fn retention(&self, today: &str) -> String {
        self.run(&["tier", "--once", "--tiering-today", today])
    }

    /// One key's answer in a view: (value, revision date, realtime_end, created_at) per row.
    async fn view(&self, view: View, series: &str, date: &str) -> Vec<Answer> {
        let q = VintageQuery::new(view)
            .series([series.parse().unwrap()])
            .between(Some(Date::parse_iso(date).unwrap()), Some(Date::parse_iso(date).unwrap()));
        let batch = self.store.query(&q).await.unwrap();
        let created = batch.column_by_name("created_at").unwrap().clone();
        let created = arrow::compute::cast(&created, &arrow::datatypes::DataType::Utf8).unwrap();
        let created = arrow::array::AsArray::as_string::<i32>(&created);
        rows(&batch)
            .into_iter()
            .enumerate()
            .map(|(i, (_, _, value, start, end))| Answer {
                value,
                revision: start,
                end,
                created: created.value(i).to_owned(),
            })
            .collect()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Answer {
    value: Option<f64>,
    revision: String,
    end: String,
    created: String,
}

fn revision(series: &str, date: &str, revision: &str, value: f64, flag: Option<bool>) -> String {
    let flag = flag.map(|f| format!(r#","is_original_release":{f}"#)).unwrap_or_default();
    format!(
        r#"{{"version":1,"series_id":"{series}","date":"{date}","revision_date":"{revision}","value":{value}{flag}}}"#
    )
}

fn values(answers: &[Answer]) -> Vec<(Option<f64>, &str, &str)> {
    answers.iter().map(|a| (a.value, a.revision.as_str(), a.end.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_ways_an_answer_used_to_change_hold_through_broker_and_daemons() {
    let mut lake = Lake::start().await;
    let latest = || View::Latest;

    // 1. A later correction answers over an earlier value, whatever partition it came through.
    //    50 messages of another series on partition 1, then GDPC1 = 100 there.
    for i in 0..50 {
        let date = format!("20{:02}-01-01", i % 25);
        lake.publish(Some("FILLER"), Some(1), &revision("FILLER", &date, "2024-04-25", i as f64, None)).await;
    }
    lake.publish(Some("GDPC1"), Some(1), &revision("GDPC1", "2024-01-01", "2024-04-25", 100.0, None)).await;
    lake.settle().await;
    // The same revision = 101 without a key: refused at the door (it would land on partition 0).
    lake.publish(None, Some(0), &revision("GDPC1", "2024-01-01", "2024-04-25", 101.0, None)).await;
    lake.settle().await;
    assert_eq!(values(&lake.view(latest(), "GDPC1", "2024-01-01").await), [(Some(100.0), "2024-04-25", "9999-12-31")]);
    // Keyed, but on partition 0 at offset 0 (a repartitioned topic): committed later, it answers.
    lake.publish(Some("GDPC1"), Some(0), &revision("GDPC1", "2024-01-01", "2024-04-25", 101.0, None)).await;
    lake.settle().await;
    assert_eq!(
        values(&lake.view(latest(), "GDPC1", "2024-01-01").await),
        [(Some(101.0), "2024-04-25", "9999-12-31")],
        "the correction committed later answers, although its offset (0) is below the first one's (50)"
    );
    lake.compact();
    assert_eq!(values(&lake.view(latest(), "GDPC1", "2024-01-01").await), [(Some(101.0), "2024-04-25", "9999-12-31")]);

    // 2b. A correction without the flag stays the first release through compaction and retention.
    lake.publish(Some("S"), None, &revision("S", "2010-01-01", "2010-04-30", 100.0, Some(true))).await;
    lake.publish(Some("S"), None, &revision("S", "2010-01-01", "2010-05-28", 110.0, None)).await;
    // 2a. A key never flagged: its earliest revision is its first release.
    for (rev, v) in [("2000-02-01", 100.0), ("2000-03-01", 110.0), ("2000-04-01", 120.0)] {
        lake.publish(Some("U"), None, &revision("U", "2000-01-01", rev, v, None)).await;
    }
    // 3. A late backfill: B revised 2010-02-01 and 2010-04-01; 2010-03-01 arrives after compaction.
    for (rev, v) in [("2010-02-01", 1.0), ("2010-04-01", 3.0)] {
        lake.publish(Some("B"), None, &revision("B", "2010-01-01", rev, v, None)).await;
    }
    // 4. An exact re-publication: the same revision again later (created_at from the broker's clock).
    lake.publish(Some("D"), None, &revision("D", "2010-01-01", "2010-02-01", 5.0, Some(true))).await;
    lake.publish(Some("D"), None, &revision("D", "2010-01-01", "2010-03-01", 6.0, None)).await;
    lake.settle().await;
    lake.compact();

    lake.publish(Some("S"), None, &revision("S", "2010-01-01", "2010-04-30", 101.0, None)).await;
    lake.publish(Some("B"), None, &revision("B", "2010-01-01", "2010-03-01", 2.0, None)).await;
    let d_before = lake.view(View::AllRevisions, "D", "2010-01-01").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    lake.publish(Some("D"), None, &revision("D", "2010-01-01", "2010-02-01", 5.0, Some(true))).await;
    lake.settle().await;
    let d_republished = lake.view(View::AllRevisions, "D", "2010-01-01").await;
    assert_eq!(d_republished, d_before, "a re-publication changes no column (created_at included)");
    let compacted = lake.compact();

    for stage in ["after compaction", "after retention"] {
        if stage == "after retention" {
            lake.retention("2012-06-01");
        }
        // 2b: first release and as_of 2010-05-01 answer the correction, flagged.
        let s_first = lake.view(View::FirstRelease, "S", "2010-01-01").await;
        assert_eq!(values(&s_first), [(Some(101.0), "2010-04-30", "2010-05-27")], "S first release {stage}");
        let s_as_of = lake.view(View::AsOf(Date::parse_iso("2010-05-01").unwrap()), "S", "2010-01-01").await;
        assert_eq!(values(&s_as_of), [(Some(101.0), "2010-04-30", "9999-12-31")], "S as_of 2010-05-01 {stage}");
        // 2a: first release stays the earliest revision.
        let u_first = lake.view(View::FirstRelease, "U", "2000-01-01").await;
        assert_eq!(values(&u_first), [(Some(100.0), "2000-02-01", "2000-02-29")], "U first release {stage}");
        // 3: the backfill's period and its predecessor's are exact and stay so.
        let b_all = lake.view(View::AllRevisions, "B", "2010-01-01").await;
        let b_first = lake.view(View::FirstRelease, "B", "2010-01-01").await;
        assert_eq!(values(&b_first), [(Some(1.0), "2010-02-01", "2010-02-28")], "B first release {stage}");
        // 4: the re-publication changed nothing.
        assert_eq!(lake.view(View::AllRevisions, "D", "2010-01-01").await, d_before, "D {stage}");
        if stage == "after compaction" {
            assert_eq!(
                values(&b_all),
                [
                    (Some(1.0), "2010-02-01", "2010-02-28"),
                    (Some(2.0), "2010-03-01", "2010-03-31"),
                    (Some(3.0), "2010-04-01", "9999-12-31")
                ],
                "B all revisions {stage}"
            );
            // The stored realtime_end of B 2010-02-01 was re-closed by compaction (not only hidden).
            let stored = table_rows(lake.store.warehouse()).await;
            let b0 = stored
                .iter()
                .find(|r| r.point.series_id.as_str() == "B" && r.point.revision_date.to_string() == "2010-02-01")
                .unwrap();
            assert_eq!(b0.realtime_end.map(|d| d.to_string()).as_deref(), Some("2010-02-28"), "{compacted}");
        } else {
            // Retention removed the superseded 2010-03-01; what it kept keeps its period, and
            // as of a day in the removed revision's period the date is absent, not answered by 1.
            assert_eq!(
                values(&b_all),
                [(Some(1.0), "2010-02-01", "2010-02-28"), (Some(3.0), "2010-04-01", "9999-12-31")],
                "B all revisions {stage}"
            );
            let b_gap = lake.view(View::AsOf(Date::parse_iso("2010-03-15").unwrap()), "B", "2010-01-01").await;
            assert!(b_gap.is_empty(), "as_of inside a removed revision's period: {b_gap:?}");
            let u_all = lake.view(View::AllRevisions, "U", "2000-01-01").await;
            assert_eq!(
                values(&u_all),
                [(Some(100.0), "2000-02-01", "2000-02-29"), (Some(120.0), "2000-04-01", "9999-12-31")],
                "U keeps its first release and its latest"
            );
        }
    }
    let status = lake.ingest.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", lake.ingest.log_text());
    lake.compact();
    readers_agree(&lake).await;
    drop(lake.broker);
}

/// pyiceberg and DuckDB's Iceberg extension read the compacted table: its rows are then one per
/// revision with their stored periods, which must be exactly our `all_revisions` view.
async fn readers_agree(lake: &Lake) {
    let ours: Vec<String> = rows(&lake.store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap())
        .into_iter()
        .map(|(s, d, v, start, end)| {
            let end = if end == "9999-12-31" { String::new() } else { end };
            format!("{s}|{d}|{start}|{}|{end}", v.map(|v| format!("{v:?}")).unwrap_or_default())
        })
        .collect();
    let table = lake.store.warehouse().load(TableKind::DataPoints).await.unwrap();
    let metadata = table.metadata_location().unwrap().trim_start_matches("file://").to_owned();
    let data = lake.data();
    let (py, duck) = tokio::task::spawn_blocking(move || {
        let py =
            run_python(&vintagelake_testkit::tools::pyiceberg_python().unwrap(), PYICEBERG, &[data.to_str().unwrap()])
                .expect("pyiceberg script");
        let duck = run_python(
            &vintagelake_testkit::tools::duckdb_iceberg_python().unwrap(),
            &format!("{}{DUCKDB}", vintagelake_testkit::tools::DUCKDB_ICEBERG_PRELUDE),
            &[&metadata],
        )
        .expect("duckdb script");
        (py, duck)
    })
    .await
    .unwrap();
    let lines = |out: &str| out.lines().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(lines(&py), ours, "pyiceberg reads what all_revisions answers");
    assert_eq!(lines(&duck), ours, "DuckDB reads what all_revisions answers");
    // 25 FILLER dates, GDPC1, and two revisions each of S, U, B and D (retention took one of U and B).
    assert_eq!(ours.len(), 34, "{ours:?}");
}

const PYICEBERG: &str = r#"
import sys
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("vintagelake", uri="sqlite:///" + sys.argv[1] + "/catalog.sqlite", warehouse="file://" + sys.argv[1] + "/warehouse")
t = cat.load_table("econ.data_points").scan().to_arrow().sort_by([("series_id", "ascending"), ("date", "ascending"), ("revision_date", "ascending")])
for r in t.to_pylist():
    v = "" if r["value"] is None else repr(float(r["value"]))
    e = "" if r["realtime_end"] is None else str(r["realtime_end"])
    print(f'{r["series_id"]}|{r["date"]}|{r["revision_date"]}|{v}|{e}')
"#;

/// Run after [`DUCKDB_ICEBERG_PRELUDE`](vintagelake_testkit::tools::DUCKDB_ICEBERG_PRELUDE).
const DUCKDB: &str = r#"
rows = con.execute("""SELECT series_id, date, revision_date, value, realtime_end FROM iceberg_scan(?)
                      ORDER BY series_id, date, revision_date""", [sys.argv[1]]).fetchall()
for s, d, r, v, e in rows:
    v = "" if v is None else repr(float(v))
    e = "" if e is None else str(e)
    print(f"{s}|{d}|{r}|{v}|{e}")
"#;
