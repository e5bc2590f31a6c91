//! Concurrency stress: two ingest replicas, the compactor and the tierer (each every 2 s) and 32
//! Flight readers on the query service, all at once for a fixed time. No reader ever gets an error,
//! a duplicated date or a series that shrinks (snapshots only move forward), and at the end the
//! table holds exactly what was produced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow_flight::{FlightClient, Ticket};
use futures::TryStreamExt;
use vintagelake_kafka::broker::{Broker, create_topics};
use vintagelake_kafka::synthetic;
use vintagelake_query::ticket::TicketV1;
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_compaction_tiering_and_32_readers_at_once() {
    let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let topics = Topics::new();
    create_topics(broker.bootstrap_servers(), &[&topics.data, &topics.series], 4).await.unwrap();
    let mut env = ingest_env(&data, broker.bootstrap_servers(), &topics);
    let flight_port = free_port();
    env.insert("FLIGHT_SERVER_PORT".into(), flight_port.to_string());
    env.insert("CACHE_SIZE_MB".into(), "0".into());
    env.insert("COMPACTION_SCHEDULE".into(), "*/2 * * * * *".into());
    env.insert("TIERING_SCHEDULE".into(), "*/2 * * * * *".into());
    env.insert("VINTAGELAKE_CONFIG".into(), crate::chaos::tier_config(dir.path(), &data).display().to_string());
    env.insert("TIERING_TODAY".into(), "2040-01-01".into());
    let mut daemons: Vec<Daemon> = ["ingest", "ingest", "compact", "tier", "query"]
        .iter()
        .map(|c| Daemon::spawn(&[c], dir.path(), &env))
        .collect();
    wait_for(Duration::from_secs(60), "the query service ready", || {
        let get = daemons[4].get("/ready");
        async move { get.await.is_some_and(|(code, _)| code == 200) }
    })
    .await;

    let produced = synthetic::revisions(30_000, 31);
    let series: Vec<String> =
        produced.iter().map(|r| r.series_id.as_str().to_owned()).collect::<BTreeSet<_>>().into_iter().collect();
    let producer = {
        let (bootstrap, topic, produced) =
            (broker.bootstrap_servers().to_owned(), topics.data.clone(), produced.clone());
        tokio::spawn(async move {
            for chunk in produced.chunks(1_000) {
                produce(&bootstrap, &topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };

    let channel = flight_channel(flight_port).await;
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = tokio::task::JoinSet::new();
    for reader in 0..32usize {
        let (channel, stop, reads, series) = (channel.clone(), stop.clone(), reads.clone(), series.clone());
        readers.spawn(async move {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            let mut i = reader;
            while !stop.load(Ordering::Relaxed) {
                let id = &series[i % series.len()];
                i += 7;
                let ticket = TicketV1::for_series(&id.parse().unwrap(), View::Latest).to_bytes();
                let batches: Vec<arrow::array::RecordBatch> = FlightClient::new(channel.clone())
                    .do_get(Ticket::new(ticket))
                    .await
                    .map_err(|e| format!("reader {reader}, {id}: {e}"))?
                    .try_collect()
                    .await
                    .map_err(|e| format!("reader {reader}, {id}: {e}"))?;
                let mut dates = BTreeSet::new();
                for b in &batches {
                    let d =
                        b.column_by_name("date").unwrap().as_any().downcast_ref::<arrow::array::Date32Array>().unwrap();
                    for v in d.values() {
                        if !dates.insert(*v) {
                            return Err(format!("reader {reader}, {id}: date {v} twice"));
                        }
                    }
                }
                let before = seen.insert(id.clone(), dates.len()).unwrap_or(0);
                if dates.len() < before {
                    return Err(format!("reader {reader}, {id}: {before} dates, then {}", dates.len()));
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        });
    }

    let started = Instant::now();
    producer.await.unwrap();
    let wh = open(&data).await;
    let store = IcebergStore::new(wh.clone());
    let distinct: BTreeSet<(String, i32, i32)> = produced
        .iter()
        .map(|r| (r.series_id.as_str().to_owned(), r.date.days_since_epoch(), r.revision_date.days_since_epoch()))
        .collect();
    wait_for(Duration::from_secs(240), "every revision committed", || {
        for d in daemons.iter_mut() {
            d.assert_alive();
        }
        let store = &store;
        let n = distinct.len();
        async move { store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap().num_rows() >= n }
    })
    .await;
    // A few more seconds of reads while compaction and tiering work on the full table.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(r) = readers.join_next().await {
        r.unwrap().expect("no reader error, no duplicate, no shrinking answer");
    }
    let total = reads.load(Ordering::Relaxed);
    eprintln!("{total} Flight reads by 32 readers in {:.0?}, 0 errors", started.elapsed());
    assert!(total > 320, "the readers read all along: {total}");
    for d in daemons.iter_mut() {
        assert!(d.terminate(Duration::from_secs(60)).success(), "{}", d.log_text());
    }
    assert_eq!(
        store.query(&VintageQuery::new(View::AllRevisions)).await.unwrap().num_rows(),
        distinct.len(),
        "no lost update, no duplicate"
    );
    let compactions =
        wh.audit().read().unwrap().entries.iter().filter(|e| e.action == "compact" && e.outcome == "ok").count();
    assert!(compactions >= 2, "compaction ran during the stress: {compactions}");
}
