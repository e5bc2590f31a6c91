//! Chaos: the whole pipeline under load — two ingest replicas, the compactor, the tierer and the
//! query service as separate processes on one broker and one warehouse — while a random daemon is
//! killed with SIGKILL at random moments and restarted. At the end: every produced revision is in
//! the table exactly once (corrections applied), every view agrees with the produced set, and
//! pyiceberg computes the same latest values from the table.
//!
//! `VINTAGELAKE_CHAOS_KILLS` sets the number of kills (10 in the normal suite; the full run in
//! docs/reliability.md uses 100). Loopback only, bounded in time.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Float64Type};
use vintagelake_kafka::broker::{Broker, create_topics};
use vintagelake_kafka::synthetic;
use vintagelake_schemas::DataPointRevision;
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};

use crate::support::*;

pub(crate) type Key = (String, i32);

/// Latest value per (series, date) and the number of distinct revisions, from what was produced
/// (last publication of a revision wins: corrections).
pub(crate) fn expected(produced: &[DataPointRevision]) -> (BTreeMap<Key, Option<u64>>, usize) {
    let mut revisions: BTreeMap<(String, i32, i32), Option<u64>> = BTreeMap::new();
    for r in produced {
        let key = (r.series_id.as_str().to_owned(), r.date.days_since_epoch(), r.revision_date.days_since_epoch());
        revisions.insert(key, r.value.map(f64::to_bits));
    }
    let mut latest = BTreeMap::new();
    for ((s, d, _), v) in &revisions {
        latest.insert((s.clone(), *d), *v); // ordered by revision date: the last one stays
    }
    (latest, revisions.len())
}

pub(crate) async fn view(store: &IcebergStore, v: View) -> (BTreeMap<Key, Option<u64>>, usize) {
    let b = store.query(&VintageQuery::new(v)).await.unwrap();
    let series = b.column_by_name("series_id").unwrap().as_string::<i32>();
    let date = b.column_by_name("date").unwrap().as_primitive::<Date32Type>();
    let value = b.column_by_name("value").unwrap().as_primitive::<Float64Type>();
    let map = (0..b.num_rows())
        .map(|i| ((series.value(i).to_owned(), date.value(i)), value.is_valid(i).then(|| value.value(i).to_bits())))
        .collect();
    (map, b.num_rows())
}

/// A configuration file with two local tiers (hot, warm) under `data` and the 30/365 policy.
pub fn tier_config(dir: &Path, data: &Path) -> std::path::PathBuf {
    let config = dir.join("storage.yaml");
    let tiers: String = ["hot", "warm"]
        .iter()
        .map(|t| format!("    - {{ name: {t}, type: local, path: \"{}\" }}\n", data.join("tiers").join(t).display()))
        .collect();
    std::fs::write(
        &config,
        format!(
            "storage:\n  data_dir: \"{}\"\n  tiers:\n{tiers}  retention:\n    hot_data_days: 30\n    warm_data_days: 365\n    cold_data_days: 3650\n    archive_data_days: 36500\n    delete_after_days: 0\n",
            data.display()
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_kills_of_every_daemon_lose_and_duplicate_nothing() {
    let kills: usize = std::env::var("VINTAGELAKE_CHAOS_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let topics = Topics::new();
    create_topics(broker.bootstrap_servers(), &[&topics.data, &topics.series], 4).await.unwrap();
    let config = tier_config(dir.path(), &data);
    let mut env = ingest_env(&data, broker.bootstrap_servers(), &topics);
    env.insert("VINTAGELAKE_CONFIG".into(), config.display().to_string());
    env.insert("COMPACTION_SCHEDULE".into(), "*/3 * * * * *".into());
    env.insert("TIERING_SCHEDULE".into(), "*/3 * * * * *".into());
    // Far enough ahead that closed periods are old: the tierer has files to move all the time.
    env.insert("TIERING_TODAY".into(), "2040-01-01".into());
    env.insert("SNAPSHOT_RETENTION".into(), "30s".into());
    env.insert("KEEP_SNAPSHOTS".into(), "20".into());
    env.insert("FLIGHT_SERVER_PORT".into(), free_port().to_string());
    let roles: [(&str, &str); 5] = [
        ("ingest-a", "ingest"),
        ("ingest-b", "ingest"),
        ("compactor", "compact"),
        ("tierer", "tier"),
        ("query", "query"),
    ];
    let spawn = |command: &str| Daemon::spawn(&[command], dir.path(), &env);
    let mut daemons: Vec<Daemon> = roles.iter().map(|(_, c)| spawn(c)).collect();

    // The load: 40 000 revisions (with corrections) in 40 bursts while the kills happen.
    let produced = synthetic::revisions(40_000, 23);
    let producer = {
        let (bootstrap, topic, produced) =
            (broker.bootstrap_servers().to_owned(), topics.data.clone(), produced.clone());
        tokio::spawn(async move {
            for chunk in produced.chunks(1_000) {
                produce(&bootstrap, &topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    let started = Instant::now();
    let mut seed = 0xc4a05_u64;
    let mut next = move || -> u64 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut killed = BTreeMap::<&str, usize>::new();
    // Which daemon dies after which pause, decided up front from the seed.
    let mut plan = |n: usize| -> Vec<(Duration, usize)> {
        (0..n)
            .map(|_| {
                let pause = Duration::from_millis(300 + next() % 1_200);
                let victim = (next() % roles.len() as u64) as usize;
                *killed.entry(roles[victim].0).or_default() += 1;
                (pause, victim)
            })
            .collect()
    };
    // Phase 1: kills while the load arrives.
    for (pause, victim) in plan(kills / 2) {
        tokio::time::sleep(pause).await;
        daemons[victim].kill9();
        // Restart it at once, as a supervisor would.
        daemons[victim] = spawn(roles[victim].1);
    }
    producer.await.unwrap();

    // Everything produced arrives, exactly once.
    let wh = open(&data).await;
    let store = IcebergStore::new(wh.clone());
    let (latest, revisions) = expected(&produced);
    wait_for(Duration::from_secs(300), "every revision committed", || {
        for d in daemons.iter_mut() {
            d.assert_alive();
        }
        let store = &store;
        async move { view(store, View::AllRevisions).await.1 >= revisions }
    })
    .await;
    // Phase 2: kills while compaction and tiering work on the committed table.
    for (pause, victim) in plan(kills - kills / 2) {
        tokio::time::sleep(pause).await;
        daemons[victim].kill9();
        daemons[victim] = spawn(roles[victim].1);
    }
    eprintln!("{kills} kills in {:.0?}: {killed:?}", started.elapsed());
    // The lifecycle daemons get to finish work after the last kill.
    let lifecycle_work = |wh: &vintagelake_storage::catalog::Warehouse| {
        let audit = wh.audit().read().unwrap();
        let merged = audit.entries.iter().any(|e| {
            e.actor == "compactor" && e.outcome == "ok" && e.detail["files_in"].as_u64().is_some_and(|n| n > 0)
        });
        let moved = audit.entries.iter().any(|e| e.actor == "tierer" && e.action == "move" && e.outcome == "ok");
        merged && moved
    };
    wait_for(Duration::from_secs(120), "a compaction and a tier move", || {
        let done = lifecycle_work(&wh);
        async move { done }
    })
    .await;
    for d in daemons.iter_mut() {
        // A daemon restarted a moment ago handles SIGTERM once it is up (its /health answers).
        wait_for(Duration::from_secs(60), "the daemon up", || {
            let get = d.get("/health");
            async move { get.await.is_some_and(|(code, _)| code == 200) }
        })
        .await;
        assert!(d.terminate(Duration::from_secs(60)).success(), "{}", d.log_text());
    }
    assert_eq!(view(&store, View::AllRevisions).await.1, revisions, "no revision lost or duplicated");
    assert!(view(&store, View::Latest).await.0 == latest, "latest view = the produced set");
    let (first, first_rows) = view(&store, View::FirstRelease).await;
    assert_eq!(first_rows, latest.len(), "one first release per (series, date)");
    assert_eq!(first.keys().collect::<Vec<_>>(), latest.keys().collect::<Vec<_>>());

    // pyiceberg computes the same latest values from the table.
    let python = tokio::task::spawn_blocking(vintagelake_testkit::tools::pyiceberg_python).await.unwrap().unwrap();
    let script = r#"
import sys, json
from pyiceberg.catalog.sql import SqlCatalog
d = sys.argv[1]
cat = SqlCatalog("vintagelake", uri="sqlite:///" + d + "/catalog.sqlite", warehouse="file://" + d + "/warehouse")
df = cat.load_table("econ.data_points").scan().to_pandas()
df = df.sort_values(["series_id", "date", "revision_date", "ingest_seq"]).groupby(["series_id", "date"]).tail(1)
print(json.dumps([[r.series_id, r.date.isoformat(), None if r.value != r.value else r.value] for r in df.itertuples()]))
"#;
    let out = vintagelake_testkit::tools::run_python(&python, script, &[data.to_str().unwrap()]).unwrap();
    let rows: Vec<(String, String, Option<f64>)> = serde_json::from_str(out.trim()).unwrap();
    let theirs: BTreeMap<Key, Option<u64>> = rows
        .into_iter()
        .map(|(s, d, v)| ((s, d.parse::<vintagelake_schemas::Date>().unwrap().days_since_epoch()), v.map(f64::to_bits)))
        .collect();
    assert!(theirs == latest, "pyiceberg's latest values = the produced set");

    let table = wh.load(vintagelake_storage::catalog::TableKind::DataPoints).await.unwrap();
    let files = vintagelake_storage::files::live_files(&wh, &table, None).await.unwrap();
    let mut per_tier = BTreeMap::<String, usize>::new();
    for f in &files {
        let tier = f.path.split("/tiers/").nth(1).and_then(|p| p.split('/').next()).unwrap_or("?");
        *per_tier.entry(tier.to_owned()).or_default() += 1;
    }
    eprintln!("live files per tier at the end: {per_tier:?}");
    // The lifecycle daemons did real work between the kills.
    let audit = wh.audit().read().unwrap();
    let count = |actor: &str, action: &str, ok: bool| {
        audit.entries.iter().filter(|e| e.actor == actor && e.action == action && (e.outcome == "ok") == ok).count()
    };
    let (compactions, moves) = (count("compactor", "compact", true), count("tierer", "move", true));
    eprintln!(
        "chaos: {kills} kills {killed:?}; {} revisions produced, {revisions} distinct, 0 lost, 0 duplicated; \
         {compactions} compactions, {moves} tier moves, {} runs interrupted",
        produced.len(),
        count("compactor", "compact", false) + count("tierer", "tier", false)
    );
    assert!(
        compactions >= 1 && moves >= 1,
        "compaction and tiering ran during the chaos; tierer log:\n{}",
        daemons[3].log_text()
    );
}
