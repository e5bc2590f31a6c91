//! Ingest end to end: a real broker, `vintagelake ingest` as a child process, the table read back
//! by us and by pyiceberg.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use vintagelake_kafka::broker::{Broker, create_topics};
use vintagelake_kafka::synthetic;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::store::IcebergStore;

use crate::support::*;

async fn broker() -> Broker {
    Broker::from_env_or_local().await.expect("a Kafka-protocol broker")
}

async fn topics_on(broker: &Broker, partitions: i32) -> Topics {
    let t = Topics::new();
    create_topics(broker.bootstrap_servers(), &[&t.data, &t.series], partitions).await.unwrap();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_100k_revisions_and_pyiceberg_agrees() {
    const N: usize = 100_000;
    let broker = broker().await;
    let dir = tempfile::tempdir().unwrap();
    let topics = topics_on(&broker, 4).await;
    let produced = synthetic::revisions(N, 1);
    produce(broker.bootstrap_servers(), &topics.data, &produced).await;

    let mut ingest =
        Daemon::spawn(&["ingest"], dir.path(), &ingest_env(dir.path(), broker.bootstrap_servers(), &topics));
    let wh = open(dir.path()).await;
    wait_for(Duration::from_secs(240), "100 000 rows committed", || {
        ingest.assert_alive();
        let wh = wh.clone();
        async move { total_records(&wh).await >= N as u64 }
    })
    .await;
    // Ready and healthy while running.
    let (code, body) = ingest.get("/ready").await.expect("HTTP up");
    assert_eq!(code, 200, "{body}");
    assert_eq!(ingest.get("/health").await.unwrap().0, 200);
    let (_, metrics) = ingest.get("/metrics").await.unwrap();
    for name in [
        "vintagelake_ingest_records_consumed_total",
        "vintagelake_ingest_records_committed_total",
        "vintagelake_ingest_commit_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let status = ingest.terminate(Duration::from_secs(30));
    assert!(status.success(), "SIGTERM exits 0: {status}\n{}", ingest.log_text());

    let rows = table_rows(&wh).await;
    assert_eq!(rows.len(), N, "exactly N rows");
    assert_eq!(
        multiset(rows.iter().map(key_of_row).collect()),
        multiset(produced.iter().map(key_of_revision).collect()),
        "the table holds exactly what was produced"
    );
    // The positions recorded with the data are the ends of the partitions.
    let store = IcebergStore::new(wh.clone());
    let recorded = store.recorded_offsets(TableKind::DataPoints).await.unwrap();
    let ends = end_offsets(broker.bootstrap_servers(), &topics.data).await;
    assert_eq!(ends.values().sum::<i64>(), N as i64, "one offset per produced message");
    for (p, end) in &ends {
        assert_eq!(recorded.get(&(topics.data.clone(), *p)), Some(end), "partition {p}");
    }

    // pyiceberg reads the same number of rows.
    let python = tokio::task::spawn_blocking(vintagelake_testkit::tools::pyiceberg_python).await.unwrap().unwrap();
    let script = r#"
import sys
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("vintagelake", uri="sqlite:///" + sys.argv[1] + "/catalog.sqlite", warehouse="file://" + sys.argv[1] + "/warehouse")
t = cat.load_table("econ.data_points")
print(len(t.scan().to_arrow()))
"#;
    let out = vintagelake_testkit::tools::run_python(&python, script, &[dir.path().to_str().unwrap()]).unwrap();
    assert_eq!(out.trim(), N.to_string());
}

/// What the validator must say about each kind of bad message.
pub(crate) fn malformed(i: usize) -> (Vec<u8>, Vec<u8>, &'static str) {
    let key = b"GDPC1".to_vec();
    let good = |date: &str| {
        format!(r#"{{"version":1,"series_id":"GDPC1","date":"{date}","revision_date":"2024-04-25","value":1}}"#)
    };
    let bulk = |series: &[&str]| {
        let revisions: Vec<vintagelake_schemas::DataPointRevision> = series
            .iter()
            .map(|s| {
                vintagelake_schemas::decode_data_point_json(
                    format!(r#"{{"version":1,"series_id":"{s}","date":"2024-01-01","revision_date":"2024-04-25","value":1}}"#)
                        .as_bytes(),
                )
                .unwrap()
            })
            .collect();
        vintagelake_schemas::encode_data_points_ipc(&revisions).unwrap()
    };
    match i % 11 {
        // The ordering contract: keyed by the series id, one series per bulk message.
        8 => (Vec::new(), good("2024-01-01").into_bytes(), "missing_key"),
        9 => (key, bulk(&["GDPC1", "UNRATE"]), "mixed_series"),
        10 => (b"UNRATE".to_vec(), bulk(&["GDPC1", "GDPC1"]), "key_mismatch"),
        0 => (key, good("2024-13-01").into_bytes(), "bad_date"),
        1 => (
            key,
            br#"{"version":1,"series_id":"GDPC1","date":"2024-01-01","revision_date":"2024-04-25","value":"high"}"#
                .to_vec(),
            "not_a_number",
        ),
        2 => (
            key,
            br#"{"version":3,"series_id":"GDPC1","date":"2024-01-01","revision_date":"2024-04-25","value":1}"#.to_vec(),
            "unknown_version",
        ),
        3 => (
            key,
            br#"{"version":1,"series_id":"GDPC1","revision_date":"2024-04-25","value":1}"#.to_vec(),
            "missing_field",
        ),
        4 => (key, b"{\"version\":1,\"series_id\":\"GDP\xff\"}".to_vec(), "invalid_utf8"),
        5 => (key, b"{not json".to_vec(), "malformed_json"),
        6 => (b"UNRATE".to_vec(), good("2024-01-01").into_bytes(), "key_mismatch"),
        _ => (
            key,
            format!(
                r#"{{"version":1,"series_id":"{}","date":"2024-01-01","revision_date":"2024-04-25","value":1}}"#,
                "X".repeat(200)
            )
            .into_bytes(),
            "id_too_long",
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_messages_go_to_the_dead_letter_topic_with_their_reason() {
    let broker = broker().await;
    let dir = tempfile::tempdir().unwrap();
    let topics = topics_on(&broker, 2).await;
    let good = synthetic::revisions(10_000, 2);
    // Interleave: one bad message after every ten good ones.
    let mut messages = Vec::new();
    let mut expected_reasons: BTreeMap<&str, usize> = BTreeMap::new();
    let mut bad = 0;
    for (i, r) in good.iter().enumerate() {
        messages.push(vintagelake_kafka::produce::message(r));
        if i % 10 == 9 {
            let (k, v, reason) = malformed(bad);
            *expected_reasons.entry(reason).or_default() += 1;
            messages.push((k, v));
            bad += 1;
        }
    }
    assert_eq!(bad, 1_000);
    let p = vintagelake_kafka::produce::producer(broker.bootstrap_servers()).unwrap();
    vintagelake_kafka::produce::publish(&p, &topics.data, messages, |_| {}).await.unwrap();

    let mut ingest =
        Daemon::spawn(&["ingest"], dir.path(), &ingest_env(dir.path(), broker.bootstrap_servers(), &topics));
    let wh = open(dir.path()).await;
    let dlq_topic = format!("{}.dlq", topics.data);
    // Committed offsets cover the bad messages too: wait for the positions to reach the end.
    let marks = end_offsets(broker.bootstrap_servers(), &topics.data).await;
    let store = IcebergStore::new(wh.clone());
    wait_for(Duration::from_secs(180), "every message accounted for", || async {
        let recorded = store.recorded_offsets(TableKind::DataPoints).await.unwrap();
        marks.iter().all(|(p, hw)| recorded.get(&(topics.data.clone(), *p)) == Some(hw))
    })
    .await;
    let (_, metrics) = ingest.get("/metrics").await.unwrap();
    assert!(ingest.terminate(Duration::from_secs(30)).success());
    assert_eq!(table_rows(&wh).await.len(), 10_000, "no bad record reached the table");

    // The dead-letter topic holds each bad record once, with its reason and origin.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&dlq_topic]).unwrap();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = 0;
    while seen < 1_000 {
        let m = tokio::time::timeout(Duration::from_secs(60), consumer.recv()).await.expect("DLQ records").unwrap();
        let get = |name: &str| header(&m, name);
        let code = get("vintagelake.error.code").expect("reason header");
        assert_eq!(get("vintagelake.source.topic").as_deref(), Some(topics.data.as_str()));
        assert!(get("vintagelake.source.offset").is_some() && get("vintagelake.source.partition").is_some());
        assert!(get("vintagelake.error.message").is_some_and(|m| !m.is_empty()));
        assert!(m.payload().is_some(), "the original value is kept");
        *reasons.entry(code).or_default() += 1;
        seen += 1;
    }
    let expected: BTreeMap<String, usize> = expected_reasons.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    assert_eq!(reasons, expected, "one DLQ record per bad message, with the right reason");
    for (reason, n) in &expected {
        let line = format!(
            "vintagelake_ingest_records_dead_lettered_total{{reason=\"{reason}\",topic=\"{}\"}} {n}",
            topics.data
        );
        let alt = format!(
            "vintagelake_ingest_records_dead_lettered_total{{topic=\"{}\",reason=\"{reason}\"}} {n}",
            topics.data
        );
        assert!(metrics.contains(&line) || metrics.contains(&alt), "metric for {reason} = {n} missing:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_five_times_during_200k_loses_and_duplicates_nothing() {
    const N: usize = 200_000;
    let broker = broker().await;
    let dir = tempfile::tempdir().unwrap();
    let topics = topics_on(&broker, 4).await;
    let produced = synthetic::revisions(N, 3);
    produce(broker.bootstrap_servers(), &topics.data, &produced).await;
    let mut env = ingest_env(dir.path(), broker.bootstrap_servers(), &topics);
    // Many small commits, so a kill can land between any two of them. Commits run in the
    // background while consuming goes on, so the buffer (not COMMIT_MAX_ROWS) bounds a commit:
    // keep it small too, or a restarted run can read the rest in two commits and finish before
    // the kill.
    env.insert("COMMIT_MAX_ROWS".into(), "2000".into());
    env.insert("COMMIT_MAX_BYTES".into(), "1MiB".into());
    env.insert("MAX_BUFFERED_BYTES".into(), "2MiB".into());
    let wh = open(dir.path()).await;
    let mut rng_state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let mut random = move |bound: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % bound
    };
    for kill in 0..5u64 {
        let mut ingest = Daemon::spawn(&["ingest"], dir.path(), &env);
        // Kill at a random moment after this run has made some progress (the first commit comes
        // after the group join): anywhere in the next 0–400 ms of committing.
        let target = (kill + 1) * N as u64 / 7 + random(N as u64 / 14);
        wait_for(Duration::from_secs(120), "progress before the kill", || {
            ingest.assert_alive();
            let wh = wh.clone();
            async move { total_records(&wh).await >= target }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(random(400))).await;
        ingest.kill9();
        let committed = total_records(&wh).await;
        eprintln!("kill {kill}: {committed} rows committed");
        assert!(committed < N as u64, "killed mid-run, not after the end");
    }
    let mut ingest = Daemon::spawn(&["ingest"], dir.path(), &env);
    wait_for(Duration::from_secs(300), "all rows after the restarts", || async {
        total_records(&wh).await >= N as u64
    })
    .await;
    assert!(ingest.terminate(Duration::from_secs(30)).success());
    let rows = table_rows(&wh).await;
    assert_eq!(rows.len(), N, "no loss, no duplicate");
    assert_eq!(
        multiset(rows.iter().map(key_of_row).collect()),
        multiset(produced.iter().map(key_of_revision).collect())
    );
}

/// Peak resident memory of a process so far (the kernel's high-water mark), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

/// A burst many times larger than the buffer (a backlog of bulk messages): ingest's peak RSS
/// stays within `MAX_BUFFERED_BYTES` plus the documented fixed overhead — backpressure pauses
/// consuming before memory outgrows the bound — and the table ends exact. CI runs 2·10^6
/// revisions against 64 MiB; `BURST_TEST_REVISIONS=10000000 BURST_TEST_BUFFER_MIB=256` runs it at
/// the scale the ingest issue names (docs/BENCHMARKS.md records such a run).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_larger_than_the_buffer_stays_within_the_memory_bound() {
    let setting = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let n = setting("BURST_TEST_REVISIONS", 2_000_000) as usize;
    let buffer_mib = setting("BURST_TEST_BUFFER_MIB", 64);
    let broker = broker().await;
    let dir = tempfile::tempdir().unwrap();
    let topics = topics_on(&broker, 4).await;
    let produced = synthetic::revisions(n, 11);
    let mut by_series: BTreeMap<&str, Vec<vintagelake_schemas::DataPointRevision>> = BTreeMap::new();
    for r in &produced {
        by_series.entry(r.series_id.as_str()).or_default().push(r.clone());
    }
    let messages: Vec<(Vec<u8>, Vec<u8>)> = by_series
        .iter()
        .flat_map(|(s, rows)| {
            rows.chunks(1000).map(|c| (s.as_bytes().to_vec(), vintagelake_schemas::encode_data_points_ipc(c).unwrap()))
        })
        .collect();
    let producer = vintagelake_kafka::produce::producer(broker.bootstrap_servers()).unwrap();
    vintagelake_kafka::produce::publish(&producer, &topics.data, messages, |_| {}).await.unwrap();

    let mut env = ingest_env(dir.path(), broker.bootstrap_servers(), &topics);
    env.insert("MAX_BUFFERED_BYTES".into(), format!("{buffer_mib}MiB"));
    env.insert("COMMIT_MAX_BYTES".into(), format!("{}MiB", buffer_mib / 2));
    let wh = open(dir.path()).await;
    let mut ingest = Daemon::spawn(&["ingest"], dir.path(), &env);
    wait_for(Duration::from_secs((n as u64 / 3_000).max(600)), "every revision committed", || {
        ingest.assert_alive();
        let wh = wh.clone();
        async move { total_records(&wh).await >= n as u64 }
    })
    .await;
    let peak = peak_rss(ingest.child.id());
    assert!(ingest.terminate(Duration::from_secs(30)).success());
    let bound = (buffer_mib + vintagelake_ingest::FIXED_OVERHEAD_MIB) << 20;
    eprintln!("ingest peak RSS {} MiB (bound {} MiB) for {n} revisions", peak >> 20, bound >> 20);
    assert!(peak <= bound, "peak RSS {} MiB over the bound {} MiB", peak >> 20, bound >> 20);
    let rows = table_rows(&wh).await;
    assert_eq!(rows.len(), n, "no loss, no duplicate");
    assert_eq!(
        multiset(rows.iter().map(key_of_row).collect()),
        multiset(produced.iter().map(key_of_revision).collect())
    );
}

/// A trickle's caught-up commits stop adding files once the hour's budget is used: they are then
/// spaced to the budget's rate, and the interval commits the rest. The count is on `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trickle_writes_no_more_files_than_the_hourly_budget() {
    const N: usize = 24;
    let broker = broker().await;
    let dir = tempfile::tempdir().unwrap();
    let topics = topics_on(&broker, 1).await;
    let mut env = ingest_env(dir.path(), broker.bootstrap_servers(), &topics);
    env.insert("MAX_FILES_PER_HOUR".into(), "3".into());
    env.insert("COMMIT_MIN_SPACING".into(), "50ms".into());
    env.insert("COMMIT_WHEN_IDLE".into(), "50ms".into());
    env.insert("COMMIT_INTERVAL".into(), "20s".into());
    let wh = open(dir.path()).await;
    let mut ingest = Daemon::spawn(&["ingest"], dir.path(), &env);
    wait_for(Duration::from_secs(120), "ingest owns the partition", || {
        ingest.assert_alive();
        let owns = ingest.log_text().contains(&format!("assigned topic={}", topics.data));
        async move { owns }
    })
    .await;
    let revisions = synthetic::revisions(N, 5);
    let producer = vintagelake_kafka::produce::producer(broker.bootstrap_servers()).unwrap();
    for r in &revisions {
        let one = std::iter::once(vintagelake_kafka::produce::message(r));
        vintagelake_kafka::produce::publish(&producer, &topics.data, one, |_| {}).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let files = |wh: std::sync::Arc<vintagelake_storage::catalog::Warehouse>| async move {
        let table = wh.load(TableKind::DataPoints).await.unwrap();
        vintagelake_storage::files::live_files(&wh, &table, None).await.unwrap().len()
    };
    // Three caught-up commits used the budget; the rest of the trickle waits for the interval.
    let during = files(wh.clone()).await;
    let committed = total_records(&wh).await;
    let log = || ingest.log_text().lines().filter(|l| l.contains("commit")).collect::<Vec<_>>().join("\n");
    assert!(during <= 3, "{during} files during the trickle, budget 3:\n{}", log());
    assert!(committed < N as u64, "the budget held commits back ({committed} of {N} committed)");
    wait_for(Duration::from_secs(60), "the interval commits the rest", || {
        ingest.assert_alive();
        let wh = wh.clone();
        async move { total_records(&wh).await >= N as u64 }
    })
    .await;
    let after = files(wh.clone()).await;
    assert!(after <= during + 1, "one interval commit for the rest: {after} files");
    let metrics = ingest.get("/metrics").await.expect("metrics").1;
    let line = format!("vintagelake_ingest_data_files_last_hour {after}");
    assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    assert!(ingest.terminate(Duration::from_secs(30)).success());
    let rows = table_rows(&wh).await;
    assert_eq!(
        multiset(rows.iter().map(key_of_row).collect()),
        multiset(revisions.iter().map(key_of_revision).collect())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_one_killed_neither_loses_nor_duplicates() {
    const N: usize = 100_000;
    let broker = broker().await;
    let dir = tempfile::tempdir().unwrap();
    let topics = topics_on(&broker, 4).await;
    let produced = synthetic::revisions(N, 4);
    let (first, second) = produced.split_at(N / 2);
    let mut env = ingest_env(dir.path(), broker.bootstrap_servers(), &topics);
    env.insert("COMMIT_MAX_ROWS".into(), "2000".into());
    let wh = open(dir.path()).await;
    let mut a = Daemon::spawn(&["ingest"], dir.path(), &env);
    let mut b = Daemon::spawn(&["ingest"], dir.path(), &env);
    // Both replicas in the group, each owning partitions, before any data arrives.
    wait_for(Duration::from_secs(120), "both replicas own partitions", || {
        a.assert_alive();
        b.assert_alive();
        let both = [&a, &b].iter().all(|d| d.log_text().contains(&format!("assigned topic={}", topics.data)));
        async move { both }
    })
    .await;
    produce(broker.bootstrap_servers(), &topics.data, first).await;
    wait_for(Duration::from_secs(120), "both replicas commit", || {
        a.assert_alive();
        b.assert_alive();
        let wh = wh.clone();
        async move { total_records(&wh).await > 0 }
    })
    .await;
    // A dies mid-run: half the input is not even produced yet.
    a.kill9();
    produce(broker.bootstrap_servers(), &topics.data, second).await;
    wait_for(Duration::from_secs(300), "the survivor finishes", || {
        b.assert_alive();
        let wh = wh.clone();
        async move { total_records(&wh).await >= N as u64 }
    })
    .await;
    assert!(
        b.log_text().matches(&format!("assigned topic={} partition=", topics.data)).count() > 2,
        "B took over A's partitions"
    );
    assert!(b.terminate(Duration::from_secs(30)).success(), "{}", b.log_text());
    let rows = table_rows(&wh).await;
    assert_eq!(rows.len(), N, "no loss, no duplicate");
    assert_eq!(
        multiset(rows.iter().map(key_of_row).collect()),
        multiset(produced.iter().map(key_of_revision).collect())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_down_30s_then_back_ingest_recovers_exactly() {
    use vintagelake_kafka::broker::LocalBroker;
    const N: usize = 100_000;
    // This test stops and restarts the broker, so it always runs its own.
    let broker = LocalBroker::start().await.expect("local broker");
    let (port, bootstrap) = (broker.port(), broker.bootstrap_servers().to_owned());
    let topics = Topics::new();
    create_topics(&bootstrap, &[&topics.data, &topics.series], 4).await.unwrap();
    let produced = synthetic::revisions(N, 5);
    produce(&bootstrap, &topics.data, &produced).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = ingest_env(dir.path(), &bootstrap, &topics);
    env.insert("COMMIT_MAX_ROWS".into(), "4000".into());
    // Commits run in the background while consuming goes on: small buffers keep each commit
    // small, so the outage lands mid-run instead of after a few huge commits took everything.
    env.insert("COMMIT_MAX_BYTES".into(), "1MiB".into());
    env.insert("MAX_BUFFERED_BYTES".into(), "2MiB".into());
    let mut ingest = Daemon::spawn(&["ingest"], dir.path(), &env);
    let wh = open(dir.path()).await;
    wait_for(Duration::from_secs(120), "a quarter of the rows", || {
        ingest.assert_alive();
        let wh = wh.clone();
        async move { total_records(&wh).await >= N as u64 / 4 }
    })
    .await;

    broker.stop().await.unwrap();
    let down = std::time::Instant::now();
    let at_stop = total_records(&wh).await;
    wait_for(Duration::from_secs(20), "/ready to report the broker down", || {
        let get = ingest.get("/ready");
        async move { get.await.is_some_and(|(code, _)| code == 503) }
    })
    .await;
    let (_, body) = ingest.get("/ready").await.unwrap();
    assert!(body.contains("\"broker\""), "{body}");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
    ingest.assert_alive();
    assert_eq!(ingest.get("/ready").await.unwrap().0, 503, "still not ready while the broker is down");

    // Back on the same port. This broker keeps no data across restarts, so the same input is
    // produced again in the same order: the same keys land on the same partitions at the same
    // offsets, and ingest continues from the positions recorded in its table.
    let broker = LocalBroker::start_on_port(port).await.expect("broker restarts");
    create_topics(&bootstrap, &[&topics.data, &topics.series], 4).await.unwrap();
    produce(&bootstrap, &topics.data, &produced).await;
    wait_for(Duration::from_secs(240), "every row after the outage", || {
        ingest.assert_alive();
        let wh = wh.clone();
        async move { total_records(&wh).await >= N as u64 }
    })
    .await;
    wait_for(Duration::from_secs(20), "ready again", || {
        let get = ingest.get("/ready");
        async move { get.await.is_some_and(|(code, _)| code == 200) }
    })
    .await;
    assert!(ingest.terminate(Duration::from_secs(30)).success());
    let rows = table_rows(&wh).await;
    assert!(at_stop < N as u64, "the outage happened mid-run");
    assert_eq!(rows.len(), N, "no loss, no duplicate across the outage");
    assert_eq!(
        multiset(rows.iter().map(key_of_row).collect()),
        multiset(produced.iter().map(key_of_revision).collect())
    );
    drop(broker);
}
