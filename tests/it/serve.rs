//! `vintagelake serve`, every daemon in one process: the dashboard's metrics are all exported, and
//! SIGTERM during ingest exits 0 and a restart resumes with nothing lost or duplicated.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Float64Type};
use vintagelake_kafka::broker::{Broker, create_topics};
use vintagelake_kafka::synthetic;
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};

use crate::support::*;

/// Metric names the Grafana dashboard queries (histograms as their `_bucket` series).
fn dashboard_metrics() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/dashboards/vintagelake.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("vintagelake_") {
                let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                rest = &rest[at + name.len()..];
                names.insert(name);
            }
        }
    }
    names
}

/// (series, date, revision date) → value bits, last publication wins (corrections).
type Revisions = BTreeMap<(String, i32, i32), Option<u64>>;

fn expected(produced: &[vintagelake_schemas::DataPointRevision]) -> Revisions {
    produced
        .iter()
        .map(|r| {
            (
                (r.series_id.as_str().to_owned(), r.date.days_since_epoch(), r.revision_date.days_since_epoch()),
                r.value.map(f64::to_bits),
            )
        })
        .collect()
}

async fn all_revisions(store: &IcebergStore) -> (Revisions, usize) {
    let b = store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap();
    let series = b.column_by_name("series_id").unwrap().as_string::<i32>();
    let date = b.column_by_name("date").unwrap().as_primitive::<Date32Type>();
    let revision = b.column_by_name("revision_date").unwrap().as_primitive::<Date32Type>();
    let value = b.column_by_name("value").unwrap().as_primitive::<Float64Type>();
    let map = (0..b.num_rows())
        .map(|i| {
            (
                (series.value(i).to_owned(), date.value(i), revision.value(i)),
                value.is_valid(i).then(|| value.value(i).to_bits()),
            )
        })
        .collect();
    (map, b.num_rows())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_exports_the_dashboard_metrics_and_resumes_after_sigterm() {
    let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
    let dir = tempfile::tempdir().unwrap();
    let topics = Topics::new();
    create_topics(broker.bootstrap_servers(), &[&topics.data, &topics.series], 4).await.unwrap();
    let produced = synthetic::revisions(20_000, 11);
    let (first, second) = produced.split_at(produced.len() / 2);
    produce(broker.bootstrap_servers(), &topics.data, first).await;
    // One malformed message: dead-lettered with its reason, never lost, never committed.
    let p = vintagelake_kafka::produce::producer(broker.bootstrap_servers()).unwrap();
    vintagelake_kafka::produce::publish(&p, &topics.data, [(b"BAD".to_vec(), b"{not json".to_vec())], |_| {})
        .await
        .unwrap();

    let flight_port = free_port().to_string();
    let mut env = ingest_env(dir.path(), broker.bootstrap_servers(), &topics);
    env.insert("FLIGHT_SERVER_PORT".into(), flight_port.clone());
    env.insert("COMPACTION_SCHEDULE".into(), "*/2 * * * * *".into());
    env.insert("TIERING_SCHEDULE".into(), "*/2 * * * * *".into());
    let mut serve = Daemon::spawn(&["serve"], dir.path(), &env);
    let wh = open(dir.path()).await;
    let store = IcebergStore::new(wh.clone());
    let first_keys = expected(first).len();
    wait_for(Duration::from_secs(240), "the first half committed", || {
        serve.assert_alive();
        let store = &store;
        async move { all_revisions(store).await.1 >= first_keys }
    })
    .await;

    // `serve` recorded where it can be reached; `get` and `produce` on its data directory use that
    // when nothing else is configured.
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("endpoints.json")).unwrap()).unwrap();
    assert_eq!(recorded["flight_url"], format!("http://127.0.0.1:{flight_port}"), "{recorded}");
    assert_eq!(recorded["kafka_bootstrap_servers"], broker.bootstrap_servers(), "{recorded}");
    let vintagelake = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vintagelake"))
            .args(args)
            .args(["--data-dir", dir.path().to_str().unwrap()])
            .env_remove("FLIGHT_URL")
            .env_remove("KAFKA_BOOTSTRAP_SERVERS")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let scratch = format!("{}-scratch", topics.data);
    vintagelake(&["produce", "--synthetic", "100", "--topic", &scratch, "--series-topic", &scratch]);
    assert!(
        end_offsets(broker.bootstrap_servers(), &scratch).await.values().sum::<i64>() >= 100,
        "produced to serve's broker"
    );
    // Two identical reads over Flight: a cache miss, then a hit.
    let series = first[0].series_id.as_str().to_owned();
    for _ in 0..2 {
        assert!(vintagelake(&["get", &series]).contains(&series));
    }
    // Without authentication configured (on loopback), the console's API serves data openly.
    let (status, info) = serve.get("/api/v1/info").await.expect("the console API");
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!((info["flight"].as_bool(), info["auth_required"].as_bool()), (Some(true), Some(false)), "{info}");
    let (status, listed) = serve.get("/api/v1/series").await.expect("the series list");
    assert_eq!(status, 200, "{listed}");
    assert!(serde_json::from_str::<serde_json::Value>(&listed).unwrap()["total"].is_u64(), "{listed}");

    // Every metric a dashboard panel queries is exported (compaction and tiering ran on their
    // 2-second schedules, lag is reported every 5 s).
    let wanted = dashboard_metrics();
    assert!(wanted.len() >= 15, "{wanted:?}");
    let has_all = |metrics: &str| wanted.iter().all(|name| metrics.lines().any(|l| l.starts_with(name.as_str())));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        serve.assert_alive();
        let body = serve.get("/metrics").await.map(|(_, body)| body).unwrap_or_default();
        if has_all(&body) {
            break body;
        }
        let missing: Vec<_> = wanted.iter().filter(|n| !body.contains(n.as_str())).collect();
        assert!(std::time::Instant::now() < deadline, "missing from /metrics: {missing:?}\n{body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(value("vintagelake_ingest_records_committed_total") >= first_keys as f64);
    assert!(value("vintagelake_ingest_records_dead_lettered_total") >= 1.0);
    assert!(value("vintagelake_compaction_runs_total") >= 1.0 && value("vintagelake_tiering_runs_total") >= 1.0);
    assert!(value("vintagelake_query_cache_hits_total") >= 1.0);

    // SIGTERM while the second half is being ingested: exit 0 …
    produce(broker.bootstrap_servers(), &topics.data, second).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = serve.terminate(Duration::from_secs(60));
    assert!(status.success(), "SIGTERM exits 0: {status}\n{}", serve.log_text());
    assert!(!dir.path().join("endpoints.json").exists(), "a clean stop removes the record");
    // … and a restart resumes from the recorded positions: every revision once, corrections applied.
    let mut again = Daemon::spawn(&["serve"], dir.path(), &env);
    let want = expected(&produced);
    wait_for(Duration::from_secs(240), "everything committed after the restart", || {
        again.assert_alive();
        let store = &store;
        let n = want.len();
        async move { all_revisions(store).await.1 >= n }
    })
    .await;
    assert!(again.terminate(Duration::from_secs(60)).success());
    let (got, rows) = all_revisions(&store).await;
    assert_eq!(rows, want.len(), "no duplicate revision");
    assert!(got == want, "the table holds every produced revision with its last value");
}
