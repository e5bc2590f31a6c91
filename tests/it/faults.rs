//! Faults that used to lose data, each injected for real:
//!
//! - catalog swaps whose reply is lost after the UPDATE committed — through a TCP proxy in front
//!   of a real PostgreSQL catalog, and with a fail point after the UPDATE on the SQLite catalog —
//!   some followed by a catalog outage long enough that the commit's outcome cannot be settled;
//! - a dead-letter topic the broker refuses to write, and a broker that stalls while dead letters
//!   are in flight;
//! - a rollback of the table while ingest runs.
//!
//! Each ends with the table equal to what was produced, checked against a reference computed here.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use vintagelake_kafka::broker::{Broker, create_topics};
use vintagelake_kafka::synthetic;
use vintagelake_schemas::DataPointRevision;
use vintagelake_storage::catalog::{TableKind, Warehouse, WarehouseConfig};
use vintagelake_storage::scan::View;
use vintagelake_storage::store::IcebergStore;

use crate::chaos::{expected, view};
use crate::postgres::{Faults, FaultyProxy, Postgres};
use crate::support::*;

/// The table's recorded positions are the partition ends: every message committed (or
/// dead-lettered).
async fn at_ends(store: &IcebergStore, ends: &BTreeMap<i32, i64>, topic: &str) -> bool {
    let Ok(recorded) = store.recorded_offsets(TableKind::DataPoints).await else { return false };
    ends.iter().all(|(p, end)| recorded.get(&(topic.to_owned(), *p)) == Some(end))
}

/// A metric's value summed over the label sets that contain `labels` (0 when absent).
fn metric_sum(metrics: &str, name: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn admin_verify(data: &Path, catalog_url: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vintagelake"));
    cmd.args(["admin", "verify", "--data-dir", data.to_str().unwrap()]);
    if let Some(url) = catalog_url {
        cmd.env("CATALOG_URL", url);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Ingest and the compactor commit through a catalog that loses swap replies (`env` arms the
/// faults; `arm` switches them on once the tables exist). Then: every produced revision is in the
/// table exactly once, every view and every data file reads, `admin verify` is clean, and some
/// ambiguous commits were settled as committed (the case that used to delete committed files).
async fn lost_replies_lose_nothing(
    catalog_url: Option<String>,
    direct_url: Option<String>,
    extra: BTreeMap<String, String>,
    arm: impl Fn(bool),
) -> String {
    let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let topics = Topics::new();
    create_topics(broker.bootstrap_servers(), &[&topics.data, &topics.series], 4).await.unwrap();
    let mut env = ingest_env(&data, broker.bootstrap_servers(), &topics);
    env.insert("COMMIT_INTERVAL".into(), "300ms".into());
    env.insert("COMPACTION_SCHEDULE".into(), "*/2 * * * * *".into());
    env.insert("ORPHAN_GRACE".into(), "1h".into());
    if let Some(url) = &catalog_url {
        env.insert("CATALOG_URL".into(), url.clone());
    }
    env.extend(extra);
    let mut ingest = Daemon::spawn(&["ingest"], dir.path(), &env);
    wait_for(Duration::from_secs(120), "ingest ready (tables created)", || {
        ingest.assert_alive();
        let get = ingest.get("/ready");
        async move { get.await.is_some_and(|(code, _)| code == 200) }
    })
    .await;
    arm(true);
    let mut compactor = Daemon::spawn(&["compact"], dir.path(), &env);

    let mut config = WarehouseConfig::new(&data);
    if let Some(url) = &direct_url {
        config = config.with_catalog_url(url);
    }
    let wh = Warehouse::open(config).await.unwrap();
    let store = IcebergStore::new(wh.clone());
    let produced: Vec<DataPointRevision> = synthetic::revisions(20_000, 17);
    for (i, chunk) in produced.chunks(1_000).enumerate() {
        produce(broker.bootstrap_servers(), &topics.data, chunk).await;
        if i == 0 {
            // The rest only once the group has joined and committed the first chunk: then the
            // chunks become about one commit each (enough swaps for every fault to fire), however
            // long the join took.
            let first = end_offsets(broker.bootstrap_servers(), &topics.data).await;
            wait_for(Duration::from_secs(120), "the first chunk committed", || {
                ingest.assert_alive();
                at_ends(&store, &first, &topics.data)
            })
            .await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ends = end_offsets(broker.bootstrap_servers(), &topics.data).await;
    wait_for(Duration::from_secs(400), "every message committed", || {
        ingest.assert_alive();
        compactor.assert_alive();
        at_ends(&store, &ends, &topics.data)
    })
    .await;
    // The compactor gets a few more runs in on the faulty catalog.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, ingest_metrics) = ingest.get("/metrics").await.expect("ingest /metrics");
    let (_, compactor_metrics) = compactor.get("/metrics").await.expect("compactor /metrics");
    arm(false);
    assert!(ingest.terminate(Duration::from_secs(60)).success(), "{}", ingest.log_text());
    assert!(compactor.terminate(Duration::from_secs(60)).success(), "{}", compactor.log_text());

    let (latest, revisions) = expected(&produced);
    let (all, n) = view(&store, View::AllRevisions).await;
    assert_eq!(n, revisions, "every distinct revision exactly once (no loss, no duplicate)");
    assert_eq!(all.len(), latest.len());
    assert!(view(&store, View::Latest).await.0 == latest, "latest view = the produced set");
    assert_eq!(view(&store, View::FirstRelease).await.1, latest.len(), "one first release per (series, date)");
    let rows = table_rows(&wh).await; // reads every live data file
    assert!(rows.len() >= revisions, "{} rows for {revisions} revisions", rows.len());
    let (clean, report) = admin_verify(&data, direct_url.as_deref());
    assert!(clean, "admin verify is clean:\n{report}");

    let ambiguous = |m: &str, outcome: &str| {
        metric_sum(m, "vintagelake_commits_ambiguous_total", &format!("outcome=\"{outcome}\""))
    };
    let count = |outcome: &str| (ambiguous(&ingest_metrics, outcome) + ambiguous(&compactor_metrics, outcome)) as u64;
    let (settled, unknown, not_committed) = (count("committed"), count("unknown"), count("not_committed"));
    assert!(settled >= 1, "some lost replies were found committed:\n{ingest_metrics}");
    assert!(unknown >= 1, "some outcomes could not be settled (catalog down):\n{}", ingest.log_text());
    format!(
        "{} revisions produced ({revisions} distinct), {} rows in {} live files; ambiguous swaps: {settled} found \
         committed, {not_committed} not committed, {unknown} unknown (files kept)",
        produced.len(),
        rows.len(),
        {
            let t = wh.load(TableKind::DataPoints).await.unwrap();
            vintagelake_storage::files::live_files(&wh, &t, None).await.unwrap().len()
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_catalog_losing_swap_replies_loses_nothing() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    // Every 3rd swap loses its reply; every 2nd of those is followed by an 11 s outage, longer
    // than the re-reads after a lost reply last (so its outcome stays unknown).
    let faults = Faults { lose_every: 3, outage_every: 2, outage: Duration::from_secs(11) };
    let proxy = FaultyProxy::start(pg.port, faults).await;
    let summary =
        lost_replies_lose_nothing(Some(proxy.url()), Some(pg.url()), BTreeMap::new(), |on| proxy.arm(on)).await;
    let s = &proxy.stats;
    eprintln!(
        "postgres: {summary}; proxy saw {} swaps, lost {} replies, {} outages, refused {} connections",
        s.swaps_seen.load(Ordering::Relaxed),
        s.replies_lost.load(Ordering::Relaxed),
        s.outages.load(Ordering::Relaxed),
        s.refused.load(Ordering::Relaxed)
    );
    assert!(s.replies_lost.load(Ordering::Relaxed) >= 3, "the proxy lost replies");
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_catalog_losing_swap_replies_loses_nothing() {
    // Every 4th swap loses its reply; every 2nd of those cannot be settled (the catalog is down).
    let failpoints = "catalog-reply-lost#4,catalog-unreadable#2";
    let env = BTreeMap::from([(vintagelake_runtime::failpoint::ENV.to_owned(), failpoints.to_owned())]);
    // Fail points are armed from the start; table creation does not go through the swap.
    let summary = lost_replies_lose_nothing(None, None, env, |_| {}).await;
    eprintln!("sqlite: {summary}");
}

/// Every record of a topic until `quiet` passes without one: (source partition, source offset) →
/// (payload, reason code), with how many records there were in all.
async fn read_dead_letters(
    bootstrap: &str,
    topic: &str,
    quiet: Duration,
) -> (BTreeMap<(i32, i64), (Vec<u8>, String)>, usize) {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Message;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let (mut out, mut records) = (BTreeMap::new(), 0);
    // The first record waits for the group to form; after it, `quiet` without one ends the read.
    let mut wait = Duration::from_secs(60);
    while let Ok(m) = tokio::time::timeout(wait, consumer.recv()).await {
        wait = quiet;
        let m = m.unwrap();
        let get = |name: &str| header(&m, name);
        let partition: i32 = get("vintagelake.source.partition").unwrap().parse().unwrap();
        let offset: i64 = get("vintagelake.source.offset").unwrap().parse().unwrap();
        assert!(get("vintagelake.error.message").is_some_and(|m| !m.is_empty()), "a reason message");
        out.insert(
            (partition, offset),
            (m.payload().unwrap_or_default().to_vec(), get("vintagelake.error.code").unwrap()),
        );
        records += 1;
    }
    (out, records)
}

/// A malformed payload and the reason code it must be dead-lettered with.
type Rejected = (Vec<u8>, &'static str);

/// The messages for `good` with a malformed message after every tenth (numbered from
/// `first_bad`), and the malformed payloads with their expected reason codes.
fn with_rejections(
    good: &[DataPointRevision],
    first_bad: usize,
) -> (Vec<vintagelake_kafka::produce::Message>, Vec<Rejected>) {
    let mut messages = Vec::new();
    let mut bad = Vec::new();
    for (i, r) in good.iter().enumerate() {
        messages.push(vintagelake_kafka::produce::message(r));
        if i % 10 == 9 {
            let (k, v, reason) = crate::ingest::malformed(first_bad + bad.len());
            bad.push((v.clone(), reason));
            messages.push((k, v));
        }
    }
    (messages, bad)
}

/// The dead-letter topic holds exactly `bad` (payload and reason each), however often a letter was
/// written; returns how many records it holds.
async fn assert_dead_letters(bootstrap: &str, dlq_topic: &str, bad: &[Rejected]) -> usize {
    let (letters, records) = read_dead_letters(bootstrap, dlq_topic, Duration::from_secs(10)).await;
    assert_eq!(letters.len(), bad.len(), "every rejected message is in the dead-letter topic");
    let mut theirs: Vec<(Vec<u8>, String)> = letters.into_values().collect();
    let mut ours: Vec<(Vec<u8>, String)> = bad.iter().map(|(v, r)| (v.clone(), (*r).to_owned())).collect();
    theirs.sort();
    ours.sort();
    assert!(theirs == ours, "each with its payload and reason");
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_letter_topic_the_broker_refuses_holds_the_position_and_loses_nothing() {
    let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
    let bootstrap = broker.bootstrap_servers().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let topics = Topics::new();
    // The input topics only: the dead-letter topic does not exist and nobody may create it
    // implicitly (ingest's producer never asks the broker to auto-create).
    create_topics(&bootstrap, &[&topics.data, &topics.series], 4).await.unwrap();
    let dlq_topic = format!("{}.dlq", topics.data);
    let mut env = ingest_env(dir.path(), &bootstrap, &topics);
    env.insert("CREATE_TOPICS".into(), "false".into());
    // Short enough for a quick outage phase, long enough for a loaded broker to take a batch.
    env.insert("DLQ_DELIVERY_TIMEOUT".into(), "5s".into());
    env.insert("COMMIT_INTERVAL".into(), "300ms".into());
    let mut ingest = Daemon::spawn(&["ingest"], dir.path(), &env);

    let good = synthetic::revisions(10_000, 29);
    let (messages, bad) = with_rejections(&good, 0);
    assert_eq!(bad.len(), 1_000);
    let p = vintagelake_kafka::produce::producer(&bootstrap).unwrap();
    vintagelake_kafka::produce::publish(&p, &topics.data, messages, |_| {}).await.unwrap();
    let ends = end_offsets(&bootstrap, &topics.data).await;
    assert_eq!(ends.values().sum::<i64>(), 11_000);

    // The DLQ refuses: ingest says so on /ready, naming the topic, and holds its positions.
    wait_for(Duration::from_secs(120), "/ready 503 naming the dead-letter topic", || {
        ingest.assert_alive();
        let get = ingest.get("/ready");
        let dlq = dlq_topic.clone();
        async move { get.await.is_some_and(|(code, b)| code == 503 && b.contains(&dlq)) }
    })
    .await;
    let ready_body = ingest.get("/ready").await.map(|(_, b)| b).unwrap_or_default();
    eprintln!("while the dead-letter topic is missing, /ready says: {ready_body}");
    let wh = open(dir.path()).await;
    let store = IcebergStore::new(wh.clone());
    tokio::time::sleep(Duration::from_secs(8)).await; // a few retries
    let held = store.recorded_offsets(TableKind::DataPoints).await.unwrap();
    let held_sum: i64 = held.values().sum();
    assert!(held_sum < 11_000, "positions stay before the undelivered rejections: {held:?}");
    let (_, metrics) = ingest.get("/metrics").await.unwrap();
    let failures = metric_sum(&metrics, "vintagelake_ingest_dead_letter_failures_total", &dlq_topic);
    assert!(failures >= 1.0, "failed deliveries are counted:\n{metrics}");
    assert!(metric_sum(&metrics, "vintagelake_ingest_dlq_held_partitions", "") >= 1.0, "{metrics}");
    let committed_while_down = table_rows(&wh).await.len();

    // The topic appears; ingest resumes by itself.
    create_topics(&bootstrap, &[&dlq_topic], 1).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !at_ends(&store, &ends, &topics.data).await {
        ingest.assert_alive();
        assert!(
            std::time::Instant::now() < deadline,
            "not every message accounted for 180 s after the DLQ came back; the end of ingest's log:\n{}",
            ingest.log_tail(80)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for(Duration::from_secs(30), "ready again", || {
        let get = ingest.get("/ready");
        async move { get.await.is_some_and(|(code, _)| code == 200) }
    })
    .await;
    assert!(ingest.terminate(Duration::from_secs(30)).success(), "{}", ingest.log_text());

    let rows = table_rows(&wh).await;
    assert_eq!(
        multiset(rows.iter().map(key_of_row).collect()),
        multiset(good.iter().map(key_of_revision).collect()),
        "the table holds exactly the 10 000 good revisions"
    );
    let records = assert_dead_letters(&bootstrap, &dlq_topic, &bad).await;
    eprintln!(
        "dlq outage: {held_sum} of 11000 offsets committed while the topic was missing ({committed_while_down} rows), \
         {failures} failed deliveries; after it was created: 10000 rows, 1000 rejections in {records} dead-letter \
         records"
    );
}

/// The broker stalls (SIGSTOP) for longer than `DLQ_DELIVERY_TIMEOUT`, again and again, while
/// ingest consumes a stream with rejections: dead letters time out in flight, the idempotent
/// producer bumps its epoch, and a broker may refuse that for good (tansu answers every later
/// delivery "fenced"). Ingest replaces such a producer; once the broker answers, every letter lands
/// and every good revision is in the table exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_stalling_while_dead_letters_are_in_flight_loses_nothing() {
    let broker = vintagelake_kafka::broker::LocalBroker::start().await.expect("a local broker to stall");
    let pid = broker.pid().expect("the broker runs").to_string();
    let signal = |sig: &str| assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    let bootstrap = broker.bootstrap_servers().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let topics = Topics::new();
    let dlq_topic = format!("{}.dlq", topics.data);
    create_topics(&bootstrap, &[&topics.data, &topics.series], 4).await.unwrap();
    create_topics(&bootstrap, &[&dlq_topic], 1).await.unwrap();
    let mut env = ingest_env(dir.path(), &bootstrap, &topics);
    env.insert("DLQ_DELIVERY_TIMEOUT".into(), "1s".into());
    env.insert("COMMIT_INTERVAL".into(), "300ms".into());
    // A backlog first, so that ingest is consuming and dead-lettering whenever the broker stops.
    let good = synthetic::revisions(50_000, 31);
    let (messages, bad) = with_rejections(&good, 0);
    let p = vintagelake_kafka::produce::producer(&bootstrap).unwrap();
    vintagelake_kafka::produce::publish(&p, &topics.data, messages, |_| {}).await.unwrap();
    let ends = end_offsets(&bootstrap, &topics.data).await;
    assert_eq!(ends.values().sum::<i64>(), 55_000);

    let mut ingest = Daemon::spawn(&["ingest"], dir.path(), &env);
    // The first dead letters landing means ingest is working through the backlog; the broker stops
    // then, and the letters ingest sends meanwhile wait in the socket and time out there (in
    // flight).
    let watcher: rdkafka::consumer::BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &bootstrap).create().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while rdkafka::consumer::Consumer::fetch_watermarks(&watcher, &dlq_topic, 0, Duration::from_secs(5))
        .map_or(0, |(_, high)| high)
        == 0
    {
        ingest.assert_alive();
        assert!(std::time::Instant::now() < deadline, "no dead letter within 120 s:\n{}", ingest.log_text());
        std::thread::sleep(Duration::from_millis(2));
    }
    signal("-STOP");
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal("-CONT");

    let wh = open(dir.path()).await;
    let store = IcebergStore::new(wh.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !at_ends(&store, &ends, &topics.data).await {
        ingest.assert_alive();
        assert!(
            std::time::Instant::now() < deadline,
            "not every message accounted for 180 s after the stalls; the end of ingest's log:\n{}",
            ingest.log_tail(80)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, metrics) = ingest.get("/metrics").await.unwrap();
    let failures = metric_sum(&metrics, "vintagelake_ingest_dead_letter_failures_total", &dlq_topic);
    let restarts = metric_sum(&metrics, "vintagelake_ingest_dlq_producer_restarts_total", "");
    assert!(
        failures >= 1.0,
        "the stalls made some deliveries fail (else this tested nothing):\n{}",
        ingest.log_tail(60)
    );
    assert!(ingest.terminate(Duration::from_secs(30)).success(), "{}", ingest.log_text());

    let rows = table_rows(&wh).await;
    assert_eq!(
        multiset(rows.iter().map(key_of_row).collect()),
        multiset(good.iter().map(key_of_revision).collect()),
        "the table holds exactly the good revisions"
    );
    let records = assert_dead_letters(&bootstrap, &dlq_topic, &bad).await;
    eprintln!(
        "broker stalls: {failures} failed deliveries, {restarts} dead-letter producer(s) replaced; \
         50000 rows, 5000 rejections in {records} dead-letter records"
    );
}

/// The ingest snapshots of the current lineage, oldest first.
async fn ingest_lineage(wh: &Warehouse) -> Vec<i64> {
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let meta = table.metadata();
    let mut out: Vec<i64> = vintagelake_storage::commit::ancestors(meta, meta.current_snapshot_id())
        .filter(|s| {
            s.summary().additional_properties.get("vintagelake.operation").map(String::as_str) == Some("ingest")
        })
        .map(|s| s.snapshot_id())
        .collect();
    out.reverse();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_while_ingest_runs_reingests_exactly_once() {
    let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
    let bootstrap = broker.bootstrap_servers().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let topics = Topics::new();
    create_topics(&bootstrap, &[&topics.data, &topics.series], 4).await.unwrap();
    let mut env = ingest_env(&data, &bootstrap, &topics);
    env.insert("COMMIT_INTERVAL".into(), "300ms".into());
    let mut ingest = Daemon::spawn(&["ingest"], dir.path(), &env);
    let produced = synthetic::revisions(100_000, 31);
    let (first, rest) = produced.split_at(50_000);
    for chunk in first.chunks(5_000) {
        produce(&bootstrap, &topics.data, chunk).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let wh = open(&data).await;
    let store = IcebergStore::new(wh.clone());
    let ends = end_offsets(&bootstrap, &topics.data).await;
    wait_for(Duration::from_secs(240), "the first half committed", || {
        ingest.assert_alive();
        at_ends(&store, &ends, &topics.data)
    })
    .await;
    let lineage = ingest_lineage(&wh).await;
    assert!(lineage.len() >= 4, "several commits: {lineage:?}");
    let middle = lineage[lineage.len() / 2];
    let rows_before = table_rows(&wh).await.len();
    let admin = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_vintagelake"))
            .args(["admin", "rollback", "--data-dir", data.to_str().unwrap()])
            .args(args)
            .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
            .output()
            .unwrap();
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };

    // A dry run shows what would change and changes nothing.
    let current = wh.load(TableKind::DataPoints).await.unwrap().metadata().current_snapshot_id();
    let (code, text) = admin(&["--to-snapshot", &middle.to_string(), "--dry-run"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("dry run: nothing changed") && text.contains("kafka position"), "{text}");
    assert_eq!(wh.load(TableKind::DataPoints).await.unwrap().metadata().current_snapshot_id(), current);
    let (code, text) = admin(&["--to-snapshot", "12345"]);
    assert_eq!(code, Some(1), "an unknown snapshot is refused: {text}");
    assert!(text.contains("snapshot 12345 does not exist"), "{text}");

    // Roll back while the second half arrives.
    let producer = {
        let (bootstrap, topic, rest) = (bootstrap.clone(), topics.data.clone(), rest.to_vec());
        tokio::spawn(async move {
            for chunk in rest.chunks(5_000) {
                produce(&bootstrap, &topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (code, text) = admin(&["--to-snapshot", &middle.to_string()]);
    assert_eq!(code, Some(0), "{text}");
    eprintln!("rollback: {text}");
    let audit = wh.audit().read().unwrap();
    let entry = audit.entries.iter().rev().find(|e| e.action == "rollback").expect("the rollback is audited");
    assert_eq!(entry.snapshot_id, Some(middle));
    producer.await.unwrap();
    let ends = end_offsets(&bootstrap, &topics.data).await;
    wait_for(Duration::from_secs(300), "ingest caught up after the rollback", || {
        ingest.assert_alive();
        at_ends(&store, &ends, &topics.data)
    })
    .await;
    let rows = table_rows(&wh).await;
    assert_eq!(
        multiset(rows.iter().map(key_of_row).collect()),
        multiset(produced.iter().map(key_of_revision).collect()),
        "after our rollback the table holds exactly what was produced"
    );

    // Another engine rolls back: pyiceberg makes an earlier snapshot current.
    let lineage = ingest_lineage(&wh).await;
    let target = lineage[lineage.len() / 3];
    let python = tokio::task::spawn_blocking(vintagelake_testkit::tools::pyiceberg_python).await.unwrap().unwrap();
    let script = r#"
import sys
from pyiceberg.catalog.sql import SqlCatalog
d, target = sys.argv[1], int(sys.argv[2])
cat = SqlCatalog("vintagelake", uri="sqlite:///" + d + "/catalog.sqlite", warehouse="file://" + d + "/warehouse")
t = cat.load_table("econ.data_points")
ms = t.manage_snapshots()
if hasattr(ms, "rollback_to_snapshot"):
    ms.rollback_to_snapshot(target).commit()
else:
    ms.set_current_snapshot(target).commit()
print(cat.load_table("econ.data_points").current_snapshot().snapshot_id)
"#;
    let out = vintagelake_testkit::tools::run_python(&python, script, &[data.to_str().unwrap(), &target.to_string()])
        .unwrap();
    assert_eq!(out.trim(), target.to_string(), "pyiceberg rolled the table back");
    let after_pyiceberg = table_rows(&wh).await.len();
    assert!(after_pyiceberg < produced.len(), "the rollback took rows out ({after_pyiceberg})");
    let ends = end_offsets(&bootstrap, &topics.data).await;
    wait_for(Duration::from_secs(300), "ingest caught up after pyiceberg's rollback", || {
        ingest.assert_alive();
        at_ends(&store, &ends, &topics.data)
    })
    .await;
    assert!(ingest.terminate(Duration::from_secs(30)).success(), "{}", ingest.log_text());
    let rows = table_rows(&wh).await;
    assert_eq!(
        multiset(rows.iter().map(key_of_row).collect()),
        multiset(produced.iter().map(key_of_revision).collect()),
        "after pyiceberg's rollback the table holds exactly what was produced"
    );
    eprintln!(
        "rollback: {rows_before} rows before, rolled back to the middle of {} ingest snapshots while producing, then \
         pyiceberg rolled back to {target} ({after_pyiceberg} rows); both times ingest re-read to exactly {} rows",
        lineage.len(),
        rows.len()
    );
}
