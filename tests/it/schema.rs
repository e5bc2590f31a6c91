//! Schema evolution without migration, as an operator meets it:
//! - an upgrade from a release that wrote schema version 1: the new binary evolves the tables in
//!   place (no data file rewritten), ingests version-1 and version-2 messages (observation status
//!   and comment), compacts and tiers; every view over old and new rows equals a reference written
//!   here; pyiceberg and DuckDB read old and new files;
//! - another engine (pyiceberg) adds a column to our table, renames one of ours and writes rows of
//!   its own: ingest, compaction and queries keep working, its column is passed through (and kept
//!   by compaction), nothing is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type};
use arrow_flight::{FlightClient, Ticket};
use futures::TryStreamExt;
use rand::{Rng, SeedableRng};
use vintagelake_kafka::broker::{Broker, create_topics};
use vintagelake_query::ticket::TicketV1;
use vintagelake_schemas::table::StoredDataPoint;
use vintagelake_schemas::{DataPointRevision, Date, SeriesId, Timestamp};
use vintagelake_storage::catalog::{TableKind, Warehouse, WarehouseConfig};
use vintagelake_storage::files::live_files;
use vintagelake_storage::io::TierSpec;
use vintagelake_storage::scan::{OPEN_END, View};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};
use vintagelake_testkit::tools::run_python;

use crate::support::*;

/// One publication, in publish order.
#[derive(Debug, Clone)]
struct Arrival {
    series: String,
    date: i32,
    revision: i32,
    value: Option<f64>,
    flag: bool,
    status: Option<String>,
    comment: Option<String>,
}

impl Arrival {
    fn revision(&self) -> DataPointRevision {
        DataPointRevision {
            series_id: self.series.parse().unwrap(),
            date: Date::from_days_since_epoch(self.date),
            revision_date: Date::from_days_since_epoch(self.revision),
            value: self.value,
            is_original_release: self.flag,
            id: None,
            created_at: None,
            updated_at: None,
            status: self.status.clone(),
            comment: self.comment.clone(),
        }
    }
}

/// What one revision of an observation says: the last arrival's value, status and comment (an
/// arrival that repeats them changes nothing; one that changes any of them corrects it), flagged
/// if any arrival was.
#[derive(Debug, Clone)]
struct Said {
    value: Option<f64>,
    status: Option<String>,
    comment: Option<String>,
    flag: bool,
}

type Model = BTreeMap<(String, i32), BTreeMap<i32, Said>>;

fn model(arrivals: &[Arrival]) -> Model {
    let mut m = Model::new();
    for a in arrivals {
        let said = m.entry((a.series.clone(), a.date)).or_default().entry(a.revision).or_insert(Said {
            value: None,
            status: None,
            comment: None,
            flag: false,
        });
        said.value = a.value;
        said.status = a.status.clone();
        said.comment = a.comment.clone();
        said.flag |= a.flag;
    }
    m
}

const OPEN: i32 = OPEN_END.days_since_epoch();

fn day(d: i32) -> String {
    Date::from_days_since_epoch(d).to_string()
}

/// One answer row as text: series|date|realtime_start|value|realtime_end|flag|status|comment.
fn line(series: &str, date: i32, start: i32, said: &Said, end: i32) -> String {
    format!(
        "{series}|{}|{}|{}|{}|{}|{}|{}",
        day(date),
        day(start),
        said.value.map_or_else(|| "∅".into(), |v| format!("{v:?}")),
        day(end),
        said.flag,
        said.status.as_deref().unwrap_or("∅"),
        said.comment.as_deref().unwrap_or("∅")
    )
}

/// The four views by the rules, from the model.
fn reference(m: &Model, view: View) -> Vec<String> {
    let mut out = Vec::new();
    for ((series, date), revisions) in m {
        let dates: Vec<i32> = revisions.keys().copied().collect();
        let end_of = |k: usize| dates.get(k + 1).map_or(OPEN, |n| n - 1);
        let at = |k: usize| &revisions[&dates[k]];
        match view {
            View::Latest => {
                let k = dates.len() - 1;
                out.push(line(series, *date, dates[k], at(k), OPEN));
            }
            View::AsOf(t) => {
                if let Some(k) = dates.iter().rposition(|r| *r <= t.days_since_epoch()) {
                    out.push(line(series, *date, dates[k], at(k), OPEN));
                }
            }
            View::FirstRelease => {
                let k = (0..dates.len()).find(|&k| at(k).flag).unwrap_or(0);
                out.push(line(series, *date, dates[k], at(k), end_of(k)));
            }
            View::AllRevisions => {
                for (k, start) in dates.iter().enumerate() {
                    out.push(line(series, *date, *start, at(k), end_of(k)));
                }
            }
        }
    }
    out
}

/// Our answer rows as [`line`] prints them.
fn lines(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let s = b.column_by_name("series_id").unwrap().as_string::<i32>();
        let date = b.column_by_name("date").unwrap().as_primitive::<Date32Type>();
        let v = b.column_by_name("value").unwrap().as_primitive::<Float64Type>();
        let start = b.column_by_name("realtime_start").unwrap().as_primitive::<Date32Type>();
        let end = b.column_by_name("realtime_end").unwrap().as_primitive::<Date32Type>();
        let flag = b.column_by_name("is_original_release").unwrap().as_boolean();
        let status = b.column_by_name("status").expect("views carry status").as_string::<i32>();
        let comment = b.column_by_name("comment").expect("views carry comment").as_string::<i32>();
        let text = |a: &arrow::array::StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_owned());
        for i in 0..b.num_rows() {
            let said = Said {
                value: v.is_valid(i).then(|| v.value(i)),
                status: text(status, i),
                comment: text(comment, i),
                flag: flag.value(i),
            };
            out.push(line(s.value(i), date.value(i), start.value(i), &said, end.value(i)));
        }
    }
    out
}

/// Random arrivals over `series` × 4 dates × 6 revision dates: new revisions, exact
/// re-publications, value corrections, status-only corrections (a provisional value confirmed),
/// missing values, backfills in any order. With `annotated`, about half carry a status and some a
/// comment (wire version 2); without, none does (what a version-1 producer sends).
fn random_arrivals(rng: &mut rand::rngs::StdRng, series: &[&str], n: usize, annotated: bool) -> Vec<Arrival> {
    const STATUSES: &[&str] = &["A", "P", "E", "B", "F"];
    let mut out: Vec<Arrival> = Vec::new();
    for _ in 0..n {
        let series = series[rng.random_range(0..series.len())].to_owned();
        let date = 18_262 + 91 * rng.random_range(0..4);
        let revision = date + 25 + 30 * rng.random_range(0..6);
        let status = (annotated && rng.random_bool(0.5)).then(|| STATUSES[rng.random_range(0..STATUSES.len())].into());
        let comment = (annotated && rng.random_bool(0.2)).then(|| format!("note {}", rng.random_range(0..3)));
        let previous = out.iter().rfind(|a| a.series == series && a.date == date && a.revision == revision).cloned();
        let fresh = Arrival { series, date, revision, value: None, flag: false, status, comment };
        out.push(match (previous, rng.random_range(0..10)) {
            (Some(p), 0..=1) => p,
            (Some(p), 2..=3) if annotated => Arrival { status: Some("A".into()), flag: false, ..p },
            (Some(_), 4) => Arrival { value: Some(f64::from(rng.random_range(-5..5))), ..fresh },
            _ => Arrival {
                value: (!rng.random_bool(0.1)).then(|| f64::from(rng.random_range(-40..40)) * 0.25),
                flag: rng.random_bool(0.3),
                ..fresh
            },
        });
    }
    out
}

fn stored(arrivals: &[Arrival], first_seq: i64) -> Vec<StoredDataPoint> {
    arrivals
        .iter()
        .enumerate()
        .map(|(k, a)| {
            StoredDataPoint::arrived(
                a.revision(),
                Timestamp::from_nanos(1_700_000_000_000_000_000),
                first_seq + k as i64,
            )
        })
        .collect()
}

struct Lake {
    dir: tempfile::TempDir,
    config: PathBuf,
    broker: Broker,
    topics: Topics,
}

impl Lake {
    fn new(broker: Broker) -> Lake {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let yaml: String = ["hot", "warm"]
            .iter()
            .map(|t| {
                format!("    - {{ name: {t}, type: local, path: \"{}\" }}\n", data.join("tiers").join(t).display())
            })
            .collect();
        let config = dir.path().join("storage.yaml");
        std::fs::write(
            &config,
            format!(
                "storage:\n  data_dir: \"{}\"\n  tiers:\n{yaml}  retention:\n    hot_data_days: 30\n    warm_data_days: 36500\n    cold_data_days: 36600\n    archive_data_days: 36700\n    delete_after_days: 0\n",
                data.display()
            ),
        )
        .unwrap();
        Lake { dir, config, broker, topics: Topics::new() }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn warehouse(&self, schema_version: u32) -> std::sync::Arc<Warehouse> {
        let specs = ["hot", "warm"].iter().map(|t| TierSpec::local(*t, self.data().join("tiers").join(t))).collect();
        Warehouse::open(WarehouseConfig::new(self.data()).with_tiers(specs).with_schema_version(schema_version))
            .await
            .unwrap()
    }

    fn env(&self) -> BTreeMap<String, String> {
        let mut env = ingest_env(&self.data(), self.broker.bootstrap_servers(), &self.topics);
        env.insert("VINTAGELAKE_CONFIG".into(), self.config.display().to_string());
        env.insert("TOPIC_PARTITIONS".into(), "2".into());
        env
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_vintagelake"))
            .args(args)
            .args(["--config", self.config.to_str().unwrap(), "--http-port", "0"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "vintagelake {args:?} failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    fn query_service(&self) -> (Daemon, u16) {
        let port = free_port();
        let env = BTreeMap::from([
            ("FLIGHT_SERVER_PORT".to_owned(), port.to_string()),
            ("FLIGHT_HOST".to_owned(), "127.0.0.1".to_owned()),
            ("CACHE_SIZE_MB".to_owned(), "0".to_owned()),
            ("TABLE_CHECK_INTERVAL".to_owned(), "0s".to_owned()),
        ]);
        (Daemon::spawn(&["query", "--config", self.config.to_str().unwrap()], self.dir.path(), &env), port)
    }

    /// Waits until ingest's commits cover `published` messages of the data topic.
    async fn settle(&self, store: &IcebergStore, ingest: &mut Daemon, published: i64) {
        let topic = self.topics.data.clone();
        wait_for(Duration::from_secs(90), "ingest committed everything published", || {
            ingest.assert_alive();
            let topic = topic.clone();
            async move {
                let recorded = store.recorded_offsets(TableKind::DataPoints).await.unwrap_or_default();
                recorded.iter().filter(|((t, _), _)| *t == topic).map(|(_, o)| *o).sum::<i64>() >= published
            }
        })
        .await;
    }
}

async fn ready(query: &mut Daemon) {
    wait_for(Duration::from_secs(60), "query service ready", || {
        query.assert_alive();
        let get = query.get("/ready");
        async move { get.await.is_some_and(|(c, _)| c == 200) }
    })
    .await;
}

/// Every view of every series over Flight, against the reference.
async fn check_views(query: &Daemon, port: u16, m: &Model, mid: Date, when: &str) -> usize {
    let channel = flight_channel(port).await;
    let mut client = FlightClient::new(channel);
    let one: SeriesId = "A0".parse().unwrap();
    let mut rows = 0;
    for view in [View::Latest, View::FirstRelease, View::AllRevisions, View::AsOf(mid)] {
        let ticket = TicketV1 { series: Vec::new(), ..TicketV1::for_series(&one, view) }.to_bytes();
        let read = async { client.do_get(Ticket::new(ticket)).await?.try_collect::<Vec<RecordBatch>>().await };
        let batches = read.await.unwrap_or_else(|e| panic!("{when}: {view:?}: {e}\n{}", query.log_text()));
        let ours = lines(&batches);
        let want = reference(m, view);
        assert_eq!(ours.len(), want.len(), "{when}: {view:?}: row count");
        for (k, (o, w)) in ours.iter().zip(&want).enumerate() {
            assert_eq!(o, w, "{when}: {view:?}: row {k}");
        }
        rows += ours.len();
    }
    rows
}

/// Data files on disk: path → (bytes, modified), every tier.
fn files_on_disk(data: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (u64, std::time::SystemTime)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let meta = e.metadata().unwrap();
                out.insert(p, (meta.len(), meta.modified().unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&data.join("tiers"), &mut out);
    out
}

/// The data_points table's raw rows as pyiceberg and DuckDB read them, each sorted:
/// series|date|revision_date|value|status|comment.
fn external_reads(data: &Path, metadata: &str) -> (Vec<String>, Vec<String>) {
    let py = run_python(&vintagelake_testkit::tools::pyiceberg_python().unwrap(), PYICEBERG, &[data.to_str().unwrap()])
        .expect("pyiceberg script");
    let duck = run_python(
        &vintagelake_testkit::tools::duckdb_iceberg_python().unwrap(),
        &format!("{}{DUCKDB}", vintagelake_testkit::tools::DUCKDB_ICEBERG_PRELUDE),
        &[metadata],
    )
    .expect("duckdb script");
    let sorted = |out: &str| {
        let mut v: Vec<String> = out.lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    (sorted(&py), sorted(&duck))
}

fn raw_line(a: &Arrival) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}",
        a.series,
        day(a.date),
        day(a.revision),
        a.value.map_or_else(String::new, |v| format!("{v:?}")),
        a.status.as_deref().unwrap_or(""),
        a.comment.as_deref().unwrap_or("")
    )
}

const PYICEBERG: &str = r#"
import sys
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("vintagelake", uri="sqlite:///" + sys.argv[1] + "/catalog.sqlite", warehouse="file://" + sys.argv[1] + "/warehouse")
for r in cat.load_table("econ.data_points").scan().to_arrow().to_pylist():
    v = "" if r["value"] is None else repr(float(r["value"]))
    print(f'{r["series_id"]}|{r["date"]}|{r["revision_date"]}|{v}|{r["status"] or ""}|{r["comment"] or ""}')
"#;

/// Run after [`DUCKDB_ICEBERG_PRELUDE`](vintagelake_testkit::tools::DUCKDB_ICEBERG_PRELUDE).
const DUCKDB: &str = r#"
for s, d, r, v, st, c in con.execute("SELECT series_id, date, revision_date, value, status, comment FROM iceberg_scan(?)", [sys.argv[1]]).fetchall():
    v = "" if v is None else repr(float(v))
    print(f"{s}|{d}|{r}|{v}|{st or ''}|{c or ''}")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_evolves_the_tables_in_place_and_old_and_new_rows_answer_as_the_reference() {
    let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
    let lake = Lake::new(broker);
    create_topics(lake.broker.bootstrap_servers(), &[&lake.topics.data, &lake.topics.series], 2).await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5c_4e3a);
    let series = ["A0", "A1", "B0", "B1", "C0"];

    // 1. The tables as the previous release made them: schema version 1, written in three commits
    //    of version-1 revisions (no status, no comment in the files).
    let old = random_arrivals(&mut rng, &series, 240, false);
    {
        let wh = lake.warehouse(1).await;
        let store = IcebergStore::new(wh.clone());
        for (k, chunk) in old.chunks(80).enumerate() {
            store.append_points(&stored(chunk, 80 * k as i64), vec![], "ingest").await.unwrap();
        }
        store
            .append_series_rows(&[(vintagelake_testkit::fixtures::series_record("A0", "Old metadata"), 0)])
            .await
            .unwrap();
        let table = wh.load(TableKind::DataPoints).await.unwrap();
        assert_eq!(table.metadata().current_schema().as_struct().fields().len(), 10, "a version-1 table");
        for f in live_files(&wh, &table, None).await.unwrap() {
            let bytes = wh.file_io().new_input(&f.path).unwrap().read().await.unwrap();
            let raw = vintagelake_storage::files::decode_parquet(bytes, None).unwrap();
            assert!(raw[0].schema().column_with_name("status").is_none(), "a version-1 file: {}", f.path);
        }
    }
    let before_disk = files_on_disk(&lake.data());
    let before_files: BTreeSet<String> = {
        let wh = lake.warehouse(1).await;
        let t = wh.load(TableKind::DataPoints).await.unwrap();
        live_files(&wh, &t, None).await.unwrap().into_iter().map(|f| f.path).collect()
    };
    assert!(!before_disk.is_empty());

    // 2. The upgrade: the new binary starts and evolves both tables; no data file is touched.
    let mut ingest = Daemon::spawn(&["ingest"], lake.dir.path(), &lake.env());
    let probe = lake.warehouse(1).await;
    wait_for(Duration::from_secs(60), "ingest evolved the schema", || {
        ingest.assert_alive();
        let probe = probe.clone();
        async move {
            let t = probe.load(TableKind::DataPoints).await.unwrap();
            let s = probe.load(TableKind::Series).await.unwrap();
            t.metadata().current_schema().field_by_name("status").is_some()
                && s.metadata().current_schema().field_by_name("notes").is_some()
        }
    })
    .await;
    let t = probe.load(TableKind::DataPoints).await.unwrap();
    let after_files: BTreeSet<String> =
        live_files(&probe, &t, None).await.unwrap().into_iter().map(|f| f.path).collect();
    assert_eq!(after_files, before_files, "the upgrade changed no live file");
    assert_eq!(files_on_disk(&lake.data()), before_disk, "the upgrade wrote or rewrote no data file");
    let schema = t.metadata().current_schema();
    for (name, id) in [("status", 11), ("comment", 12)] {
        let f = schema.field_by_name(name).unwrap();
        assert_eq!((f.id, f.required), (id, false), "{name}");
    }
    let admin = lake.run(&["admin", "schema"]);
    assert!(admin.contains("added status, comment") && admin.contains("vintagelake"), "{admin}");

    // 3. Version-1 and version-2 messages (and a bulk message with status columns) through Kafka,
    //    and series metadata of both versions.
    let new = random_arrivals(&mut rng, &series, 300, true);
    let (json, bulk) = new.split_at(240);
    let revisions: Vec<DataPointRevision> = json.iter().map(Arrival::revision).collect();
    assert!(revisions.iter().any(|r| r.wire_version() == 1) && revisions.iter().any(|r| r.wire_version() == 2));
    produce(lake.broker.bootstrap_servers(), &lake.topics.data, &revisions).await;
    let mut published = revisions.len() as i64;
    // The bulk part, one IPC message per series (the Kafka key is the series id).
    let producer = vintagelake_kafka::produce::producer(lake.broker.bootstrap_servers()).unwrap();
    let mut by_series: BTreeMap<&str, Vec<DataPointRevision>> = BTreeMap::new();
    for a in bulk {
        by_series.entry(a.series.as_str()).or_default().push(a.revision());
    }
    for (s, revs) in &by_series {
        let payload = vintagelake_schemas::encode_data_points_ipc(revs).unwrap();
        let record = rdkafka::producer::FutureRecord::to(&lake.topics.data).key(*s).payload(&payload);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
        published += 1;
    }
    let series_v2 = r#"{"version":2,"id":"B0","source_id":"fred","title":"New metadata","frequency":"Quarterly","notes":"Seasonally adjusted.","release":"Gross Domestic Product","last_updated":"2024-04-25T12:30:00Z"}"#;
    let series_v1 = r#"{"version":1,"id":"B1","source_id":"fred","title":"Old style","frequency":"Monthly"}"#;
    for (key, json) in [("B0", series_v2), ("B1", series_v1)] {
        let record = rdkafka::producer::FutureRecord::to(&lake.topics.series).key(key).payload(json);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    }
    let store = IcebergStore::new(lake.warehouse(2).await);
    lake.settle(&store, &mut ingest, published).await;
    wait_for(Duration::from_secs(60), "series metadata committed", || {
        let store = &store;
        async move { store.latest_series().await.unwrap_or_default().len() >= 3 }
    })
    .await;
    let metadata: BTreeMap<String, vintagelake_schemas::EconomicSeries> =
        store.latest_series().await.unwrap().into_iter().map(|s| (s.id.as_str().to_owned(), s)).collect();
    assert_eq!(metadata["B0"].notes.as_deref(), Some("Seasonally adjusted."));
    assert_eq!(metadata["B0"].release.as_deref(), Some("Gross Domestic Product"));
    assert_eq!(metadata["B0"].last_updated.map(|t| t.to_string()).as_deref(), Some("2024-04-25T12:30:00Z"));
    assert_eq!((metadata["B1"].notes.as_deref(), metadata["A0"].release.as_deref()), (None, None));

    // 4. Every view over old and new rows, before and after compaction and tiering.
    let mut all = old.clone();
    all.extend(new.iter().cloned());
    let m = model(&all);
    assert!(all.iter().any(|a| a.status.is_some()) && m.values().flat_map(|r| r.values()).any(|s| s.status.is_some()));
    let mid = Date::from_days_since_epoch(18_262 + 200);
    let (mut query, port) = lake.query_service();
    ready(&mut query).await;
    let uncompacted = check_views(&query, port, &m, mid, "old and new files, uncompacted").await;

    // pyiceberg and DuckDB read both old files (status/comment absent: null) and new ones.
    let want_raw: Vec<String> = {
        let mut v: Vec<String> = all.iter().map(raw_line).collect();
        v.sort();
        v
    };
    let metadata_location = {
        let t = store.warehouse().load(TableKind::DataPoints).await.unwrap();
        t.metadata_location().unwrap().trim_start_matches("file://").to_owned()
    };
    let data = lake.data();
    let (py, duck) = tokio::task::spawn_blocking(move || external_reads(&data, &metadata_location)).await.unwrap();
    assert_eq!(py, want_raw, "pyiceberg reads every arrival, old and new files");
    assert_eq!(duck, want_raw, "DuckDB reads every arrival, old and new files");

    lake.run(&["compact", "--once"]);
    let compacted = check_views(&query, port, &m, mid, "after compaction").await;
    let report: serde_json::Value =
        serde_json::from_str(&lake.run(&["tier", "--once", "--tiering-today", "2030-01-01"])).unwrap();
    assert!(report["files_moved"].as_u64().unwrap() > 0, "tiering moved the closed files: {report}");
    let tiered = check_views(&query, port, &m, mid, "after compaction and tiering").await;
    assert_eq!((uncompacted, compacted), (tiered, tiered));
    query.assert_alive();
    ingest.assert_alive();
    eprintln!(
        "{} old and {} new arrivals ({} observations): {tiered} view rows equal to the reference before and after \
         compaction and tiering",
        old.len(),
        new.len(),
        m.len()
    );
}

const PY_CHANGE_SCHEMA: &str = r#"
import sys
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.types import StringType
cat = SqlCatalog("vintagelake", uri="sqlite:///" + sys.argv[1] + "/catalog.sqlite", warehouse="file://" + sys.argv[1] + "/warehouse")
t = cat.load_table("econ.data_points")
with t.update_schema() as u:
    u.add_column("source_flag", StringType(), doc="added by another engine")
    u.rename_column("value", "obs_value")
t = cat.load_table("econ.data_points")
print(",".join(f"{f.field_id}:{f.name}" for f in t.schema().fields))
"#;

/// pyiceberg appends rows of series P0 with its own column filled: (date, revision, value, flag).
const PY_APPEND: &str = r#"
import sys, datetime, uuid
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("vintagelake", uri="sqlite:///" + sys.argv[1] + "/catalog.sqlite", warehouse="file://" + sys.argv[1] + "/warehouse")
t = cat.load_table("econ.data_points")
epoch = datetime.date(1970, 1, 1)
now = datetime.datetime(2024, 1, 1)
rows = []
for k, spec in enumerate(sys.argv[2].split(";")):
    d, r, v = spec.split(",")
    rows.append({"id": str(uuid.uuid4()), "series_id": "P0", "date": epoch + datetime.timedelta(days=int(d)),
                 "obs_value": float(v), "revision_date": epoch + datetime.timedelta(days=int(r)),
                 "is_original_release": False, "created_at": now, "updated_at": now, "realtime_end": None,
                 "ingest_seq": 10**12 + k, "status": "E", "comment": None, "source_flag": "flag-" + d})
t.append(pa.Table.from_pylist(rows, schema=t.schema().as_arrow()))
"#;

const PY_READ_CHANGED: &str = r#"
import sys
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("vintagelake", uri="sqlite:///" + sys.argv[1] + "/catalog.sqlite", warehouse="file://" + sys.argv[1] + "/warehouse")
t = cat.load_table("econ.data_points").scan().to_arrow()
print(t.num_rows, t.column("source_flag").null_count, sum(1 for v in t.column("obs_value").to_pylist() if v is not None))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_column_another_engine_adds_or_renames_changes_nothing_we_store_or_answer() {
    let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
    let lake = Lake::new(broker);
    create_topics(lake.broker.bootstrap_servers(), &[&lake.topics.data, &lake.topics.series], 2).await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0e_a61e);
    let series = ["A0", "A1", "B0"];
    let mut ingest = Daemon::spawn(&["ingest"], lake.dir.path(), &lake.env());
    let store = IcebergStore::new(lake.warehouse(2).await);

    let first = random_arrivals(&mut rng, &series, 150, true);
    produce(
        lake.broker.bootstrap_servers(),
        &lake.topics.data,
        &first.iter().map(Arrival::revision).collect::<Vec<_>>(),
    )
    .await;
    lake.settle(&store, &mut ingest, first.len() as i64).await;

    // Another engine adds a column and renames one of ours, while ingest runs.
    let data = lake.data();
    let fields = tokio::task::spawn_blocking(move || {
        run_python(
            &vintagelake_testkit::tools::pyiceberg_python().unwrap(),
            PY_CHANGE_SCHEMA,
            &[data.to_str().unwrap()],
        )
    })
    .await
    .unwrap()
    .expect("pyiceberg schema change");
    assert!(fields.contains("4:obs_value") && fields.contains(":source_flag"), "{fields}");

    let second = random_arrivals(&mut rng, &series, 150, true);
    produce(
        lake.broker.bootstrap_servers(),
        &lake.topics.data,
        &second.iter().map(Arrival::revision).collect::<Vec<_>>(),
    )
    .await;
    lake.settle(&store, &mut ingest, (first.len() + second.len()) as i64).await;
    ingest.assert_alive();

    // The other engine writes rows of its own, its column filled.
    let foreign: Vec<Arrival> = (0..3)
        .map(|k| Arrival {
            series: "P0".into(),
            date: 18_262 + 91 * k,
            revision: 18_262 + 91 * k + 40,
            value: Some(f64::from(k) + 0.5),
            flag: false,
            status: Some("E".into()),
            comment: None,
        })
        .collect();
    let spec: Vec<String> = foreign.iter().map(|a| format!("{},{},{}", a.date, a.revision, a.value.unwrap())).collect();
    let data = lake.data();
    tokio::task::spawn_blocking(move || {
        run_python(
            &vintagelake_testkit::tools::pyiceberg_python().unwrap(),
            PY_APPEND,
            &[data.to_str().unwrap(), &spec.join(";")],
        )
    })
    .await
    .unwrap()
    .expect("pyiceberg append");

    let mut all = first.clone();
    all.extend(second.iter().cloned());
    all.extend(foreign.iter().cloned());
    let m = model(&all);
    let mid = Date::from_days_since_epoch(18_262 + 150);
    let (mut query, port) = lake.query_service();
    ready(&mut query).await;
    let rows = check_views(&query, port, &m, mid, "after another engine changed the schema").await;
    // Its column is passed through: its rows answer their values, ours null.
    let flags = |port: u16| async move {
        let channel = flight_channel(port).await;
        let ticket = TicketV1 { series: Vec::new(), ..TicketV1::for_series(&"P0".parse().unwrap(), View::Latest) };
        let batches: Vec<RecordBatch> = FlightClient::new(channel)
            .do_get(Ticket::new(ticket.to_bytes()))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let mut out = BTreeMap::new();
        for b in &batches {
            let s = b.column_by_name("series_id").unwrap().as_string::<i32>();
            let f = b.column_by_name("source_flag").expect("the other engine's column").as_string::<i32>();
            for i in 0..b.num_rows() {
                *out.entry((s.value(i).to_owned(), f.is_valid(i).then(|| f.value(i).to_owned()))).or_insert(0) += 1;
            }
        }
        out
    };
    let passed = flags(port).await;
    for a in &foreign {
        assert_eq!(passed.get(&("P0".to_owned(), Some(format!("flag-{}", a.date)))), Some(&1), "{passed:?}");
    }
    assert!(passed.keys().filter(|(s, _)| s != "P0").all(|(_, f)| f.is_none()), "{passed:?}");
    lake.run(&["compact", "--once"]);
    assert_eq!(check_views(&query, port, &m, mid, "compacted after the change").await, rows);
    assert_eq!(flags(port).await, passed, "compaction kept the other engine's values");
    // A restarted ingest (a new process on the changed table) keeps working too.
    ingest.terminate(Duration::from_secs(30));
    let mut ingest = Daemon::spawn(&["ingest"], lake.dir.path(), &lake.env());
    let third = random_arrivals(&mut rng, &series, 60, true);
    produce(
        lake.broker.bootstrap_servers(),
        &lake.topics.data,
        &third.iter().map(Arrival::revision).collect::<Vec<_>>(),
    )
    .await;
    lake.settle(&store, &mut ingest, (first.len() + second.len() + third.len()) as i64).await;
    all.extend(third.iter().cloned());
    let m = model(&all);
    check_views(&query, port, &m, mid, "after a restart of ingest").await;

    // The other engine reads every row: our renamed column by its new name, its own column null.
    let stored = table_rows(store.warehouse()).await.len();
    let data = lake.data();
    let out = tokio::task::spawn_blocking(move || {
        run_python(&vintagelake_testkit::tools::pyiceberg_python().unwrap(), PY_READ_CHANGED, &[data.to_str().unwrap()])
    })
    .await
    .unwrap()
    .expect("pyiceberg read");
    let with_value = table_rows(store.warehouse()).await.iter().filter(|r| r.point.value.is_some()).count();
    let ours = stored - foreign.len();
    assert_eq!(out.trim(), format!("{stored} {ours} {with_value}"), "rows, null source_flag, values");
    let admin = lake.run(&["admin", "schema"]);
    assert!(admin.contains("added source_flag") && admin.contains("by another engine"), "{admin}");
    assert!(admin.contains("obs_value"), "{admin}");
    query.assert_alive();
}
