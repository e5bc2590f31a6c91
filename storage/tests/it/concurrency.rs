//! Two writers with separate catalog instances on one catalog, appends and rewrites interleaved:
//! no lost update, no duplicate, no file both removed and live.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use vintagelake_schemas::table::StoredDataPoint;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::CommitKind;
use vintagelake_storage::error::StorageError;
use vintagelake_storage::files::{live_files, read_data_files};
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore, stored_rows};

use crate::fixture::*;

const COMMITS_PER_WRITER: usize = 250;
const ROWS_PER_APPEND: usize = 2;

struct Outcome {
    appended_ids: Vec<uuid::Uuid>,
    removed_files: Vec<String>,
    rewrites: usize,
    rewrites_lost_race: usize,
    conflicts_retried: u32,
}

async fn writer(store: Arc<IcebergStore>, writer: usize) -> Outcome {
    let mut out = Outcome {
        appended_ids: vec![],
        removed_files: vec![],
        rewrites: 0,
        rewrites_lost_race: 0,
        conflicts_retried: 0,
    };
    let wh = store.warehouse().clone();
    for i in 0..COMMITS_PER_WRITER {
        // Rewrite: merge up to 6 live files into one; if the other writer rewrote one of them
        // first, ours is refused (never committed) and we plan again from the new state.
        if i % 10 == 9 {
            loop {
                let table = wh.load(TableKind::DataPoints).await.unwrap();
                let files = live_files(&wh, &table, None).await.unwrap();
                let pick: Vec<String> = files.iter().rev().take(6).map(|f| f.path.clone()).collect();
                if pick.len() < 2 {
                    break;
                }
                let rows = match read_data_files(&wh, &pick, 4).await {
                    Ok(r) => r,
                    // The other writer removed one of them and orphan cleanup is not running here, so
                    // the file still exists; reading can only fail if something is badly wrong.
                    Err(e) => panic!("reading live files failed: {e}"),
                };
                match store
                    .rewrite(
                        TableKind::DataPoints,
                        pick.clone(),
                        &rows,
                        CommitKind::Replace,
                        "compaction",
                        BTreeMap::new(),
                    )
                    .await
                {
                    Ok(c) => {
                        out.rewrites += 1;
                        out.conflicts_retried += c.attempts - 1;
                        out.removed_files.extend(pick);
                        break;
                    }
                    // The other writer rewrote one of these files first: ours must not commit.
                    Err(StorageError::FileNotLive { .. }) => out.rewrites_lost_race += 1,
                    Err(e) => panic!("rewrite failed: {e}"),
                }
            }
            continue;
        }
        let seq = (writer * 1_000_000 + i * 10) as i64;
        let rows: Vec<StoredDataPoint> = (0..ROWS_PER_APPEND)
            .map(|k| {
                let mut p = point(&format!("W{writer}"), "2024-01-01", "2024-01-02", Some(i as f64), true);
                p.id = uuid::Uuid::new_v4();
                p.date = vintagelake_schemas::Date::from_days_since_epoch(19_000 + (i * ROWS_PER_APPEND + k) as i32);
                StoredDataPoint {
                    point: p,
                    realtime_end: None,
                    ingest_seq: seq + k as i64,
                    status: None,
                    comment: None,
                }
            })
            .collect();
        let c = store.append_points(&rows, vec![], "ingest").await.expect("append never fails, it retries");
        out.conflicts_retried += c.attempts - 1;
        out.appended_ids.extend(rows.iter().map(|r| r.point.id));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_500_commits_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Two independent catalog instances (two connection pools, two FileIOs) on one catalog.
    let a = Arc::new(IcebergStore::new(warehouse(dir.path()).await));
    let b = Arc::new(IcebergStore::new(warehouse(dir.path()).await));
    let (ra, rb) = tokio::join!(tokio::spawn(writer(a.clone(), 1)), tokio::spawn(writer(b.clone(), 2)));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());

    let wh = a.warehouse().clone();
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let appends = ra.appended_ids.len() / ROWS_PER_APPEND + rb.appended_ids.len() / ROWS_PER_APPEND;
    let commits = appends + ra.rewrites + rb.rewrites;
    assert_eq!(table.metadata().snapshots().count(), commits, "one snapshot per successful commit");
    assert_eq!(commits, 2 * COMMITS_PER_WRITER, "every planned commit landed");

    // Every appended row exactly once.
    let live = live_files(&wh, &table, None).await.unwrap();
    let paths: Vec<String> = live.iter().map(|f| f.path.clone()).collect();
    let stored = stored_rows(&read_data_files(&wh, &paths, 4).await.unwrap()).unwrap();
    let expected: HashSet<uuid::Uuid> = ra.appended_ids.iter().chain(&rb.appended_ids).copied().collect();
    assert_eq!(stored.len(), expected.len(), "row count equals the sum written");
    let got: HashSet<uuid::Uuid> = stored.iter().map(|r| r.point.id).collect();
    assert_eq!(got, expected, "no lost and no duplicated row");

    // No file both removed and live.
    let removed: HashSet<&String> = ra.removed_files.iter().chain(&rb.removed_files).collect();
    assert!(paths.iter().all(|p| !removed.contains(p)), "a removed file is still live");
    let total: u64 =
        table.metadata().current_snapshot().unwrap().summary().additional_properties["total-records"].parse().unwrap();
    assert_eq!(total as usize, expected.len(), "summary totals track every commit");
    let view_rows = b.query(&VintageQuery::new(View::Latest)).await.unwrap().num_rows();
    assert_eq!(view_rows, expected.len());
    eprintln!(
        "commits {commits}, rewrites {}/{} (lost race {}), conflicts retried {}",
        ra.rewrites,
        rb.rewrites,
        ra.rewrites_lost_race + rb.rewrites_lost_race,
        ra.conflicts_retried + rb.conflicts_retried
    );
    assert!(ra.conflicts_retried + rb.conflicts_retried > 0, "the writers did contend");
}
