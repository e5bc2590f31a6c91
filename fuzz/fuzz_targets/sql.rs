//! Any text given to the SQL entry point (what a Flight SQL statement or prepared statement
//! reaches) is planned and run, or refused with an error of a kind the service maps to a status
//! (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED`); never a panic, and never an
//! internal error for what is only a bad statement. The tables are the real ones (the vintage
//! views, `series`, `as_of`, `at_snapshot`) over a small in-memory source with corrections, a
//! missing value and two series; each statement gets 64 MiB and 2 s.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arrow::array::RecordBatch;
use futures::StreamExt;
use libfuzzer_sys::fuzz_target;
use vintagelake_schemas::table::{StoredDataPoint, stored_data_points_to_batch};
use vintagelake_schemas::{EconomicSeries, Timestamp, decode_data_point_json, decode_series_json};
use vintagelake_sql::{AllSeries, SqlEngine, SqlError, SqlLimits};
use vintagelake_storage::scan::{Explain, SnapshotSelector, VintageQuery, resolve};
use vintagelake_storage::{Result, StorageError, ViewSource};

/// Two series, a correction, a missing value, a late first release.
const REVISIONS: &[&str] = &[
    r#"{"version":1,"series_id":"GDPC1","date":"2024-01-01","revision_date":"2024-04-25","value":1.5,"is_original_release":true}"#,
    r#"{"version":1,"series_id":"GDPC1","date":"2024-01-01","revision_date":"2024-05-30","value":1.7}"#,
    r#"{"version":1,"series_id":"GDPC1","date":"2024-04-01","revision_date":"2024-07-25","value":null,"is_original_release":true}"#,
    r#"{"version":1,"series_id":"GDPC1","date":"2024-04-01","revision_date":"2024-08-29","value":2.8}"#,
    r#"{"version":1,"series_id":"UNRATE","date":"2024-01-01","revision_date":"2024-02-02","value":3.7,"is_original_release":true}"#,
    r#"{"version":1,"series_id":"UNRATE","date":"2024-02-01","revision_date":"2024-03-08","value":3.9}"#,
];

/// The metadata of one of them (the other has none: a join drops it).
const SERIES: &str = r#"{"version":1,"id":"GDPC1","source_id":"fred","title":"Real GDP","units":"Billions","frequency":"Quarterly","seasonal_adjustment":"SAAR","start_date":"1947-01-01","end_date":"2024-01-01","is_active":true}"#;

#[derive(Debug)]
struct Fixture {
    rows: RecordBatch,
    series: Vec<EconomicSeries>,
}

#[async_trait::async_trait]
impl ViewSource for Fixture {
    fn backend(&self) -> &'static str {
        "fixture"
    }
    async fn version(&self, _: SnapshotSelector) -> Result<Option<i64>> {
        Ok(Some(1))
    }
    async fn answer(&self, query: &VintageQuery) -> Result<(RecordBatch, Option<i64>)> {
        match query.snapshot {
            SnapshotSelector::Current | SnapshotSelector::Id(1) => Ok((resolve(query, &[self.rows.clone()])?, Some(1))),
            SnapshotSelector::Id(id) => Err(StorageError::NoSuchSnapshot(id)),
            SnapshotSelector::AsOfTimestampMs(ms) => Err(StorageError::NoSnapshotAtTime(ms)),
        }
    }
    async fn explain(&self, _: &VintageQuery) -> Result<Explain> {
        Ok(Explain { snapshot_id: Some(1), files_total: 1, files_planned: 1, predicate: None })
    }
    async fn series_version(&self) -> Result<String> {
        Ok("1".into())
    }
    async fn series_catalogue(&self) -> Result<Vec<EconomicSeries>> {
        Ok(self.series.clone())
    }
}

static ENGINE: LazyLock<(tokio::runtime::Runtime, SqlEngine)> = LazyLock::new(|| {
    // The engine catches a panic of DataFusion's planner and refuses the statement (as the
    // service does); libFuzzer's hook would abort on it first. Any panic that is not caught
    // still fails the input: the harness aborts when one unwinds out of the target.
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    let rows: Vec<StoredDataPoint> = REVISIONS
        .iter()
        .enumerate()
        .map(|(i, json)| {
            let revision = decode_data_point_json(json.as_bytes()).expect("fixture revision");
            StoredDataPoint::arrived(revision, Timestamp::from_nanos(0), i as i64)
        })
        .collect();
    let series = decode_series_json(SERIES.as_bytes()).expect("fixture series").into_series(Timestamp::from_nanos(0));
    let source =
        Arc::new(Fixture { rows: stored_data_points_to_batch(&rows).expect("fixture rows"), series: vec![series] });
    let limits =
        SqlLimits { memory_bytes: 64 << 20, timeout: Duration::from_secs(2), chunk_rows: 1024, batch_size: 1024 };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    (runtime, SqlEngine::new(source, limits))
});

fn allowed(e: &SqlError) {
    match e {
        SqlError::Invalid(m) | SqlError::ResourcesExhausted(m) => assert!(!m.is_empty(), "an error says why"),
        SqlError::Timeout(_) => {}
        // The fixture refuses snapshots it does not have: a statement's error, as the service maps it.
        SqlError::Storage(StorageError::NoSuchSnapshot(_) | StorageError::NoSnapshotAtTime(_)) => {}
        other => panic!("a statement led to an error that is not the statement's: {other:?}"),
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(sql) = std::str::from_utf8(bytes) else { return };
    let (runtime, engine) = &*ENGINE;
    runtime.block_on(async {
        let planned = match engine.plan(sql, SnapshotSelector::Current, Arc::new(AllSeries)).await {
            Ok(p) => p,
            Err(e) => return allowed(&e),
        };
        let schema = planned.schema();
        let mut stream = match planned.execute(Vec::new()).await {
            Ok(s) => s,
            Err(e) => return allowed(&e),
        };
        while let Some(batch) = stream.next().await {
            match batch {
                Ok(b) => {
                    assert_eq!(b.schema().fields().len(), schema.fields().len(), "batches have the planned columns")
                }
                Err(e) => return allowed(&e),
            }
        }
    });
});
