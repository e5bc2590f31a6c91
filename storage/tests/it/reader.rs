//! The warm read path (`TableReader`: in-memory table state, file index per snapshot, row-group
//! pruning, rows filtered as the pushed-down scan would) answers exactly what the independent
//! reference does, for every view and filter, at every snapshot, before and after compaction
//! closes periods into monthly partitions, and while commits land between reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use futures::TryStreamExt;

use vintagelake_storage::TableReader;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::CommitKind;
use vintagelake_storage::files::{live_files, read_data_files};
use vintagelake_storage::scan::{SnapshotSelector, View, VintageQuery, close_periods};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore, InMemoryStorage};

use crate::fixture::*;

/// Every view over every series, one series, two series and a date range.
fn queries() -> Vec<VintageQuery> {
    let mut out = Vec::new();
    for base in lifecycle_views() {
        out.push(base.clone());
        out.push(base.clone().series(["R00003".parse().unwrap()]));
        out.push(base.clone().series(["R00000".parse().unwrap(), "R00007".parse().unwrap()]));
        out.push(
            base.clone().series(["R00005".parse().unwrap()]).between(Some(d("1997-06-01")), Some(d("1998-06-01"))),
        );
        out.push(base.series(["NOPE".parse().unwrap()]));
    }
    out
}

async fn check(readers: &[Arc<TableReader>], oracle: &InMemoryStorage, store: &IcebergStore, label: &str) {
    for reader in readers {
        check_one(reader, oracle, store, label).await;
    }
}

async fn check_one(reader: &Arc<TableReader>, oracle: &InMemoryStorage, store: &IcebergStore, label: &str) {
    for q in queries() {
        let (ours, _) = reader.query(&q).await.unwrap();
        let want = oracle.query(&q).await.unwrap();
        let scanned = store.query(&q).await.unwrap();
        assert_eq!(rows(&ours), rows(&want), "{label}: {q:?} against the reference");
        assert_eq!(rows(&ours), rows(&scanned), "{label}: {q:?} against the Iceberg scan");
        // Streamed in chunks of ~300 stored rows: the same rows in the same order.
        let pinned = reader.pin(q.snapshot).await.unwrap();
        let parts: Vec<RecordBatch> = reader.stream(pinned, q.clone(), 300).try_collect().await.unwrap();
        let streamed: Vec<Row> = parts.iter().flat_map(rows).collect();
        assert_eq!(streamed, rows(&want), "{label}: {q:?} streamed");
        if q.series.is_empty() && !streamed.is_empty() {
            assert!(parts.len() > 1, "{label}: {q:?} came in one part");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_reads_answer_as_the_reference_at_every_snapshot_and_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path()).await;
    let store = IcebergStore::new(wh.clone());
    let oracle = InMemoryStorage::new();
    let reader = Arc::new(TableReader::new(wh.clone(), 4, Duration::ZERO));
    // The same reads with current-partition files decoded and kept in memory.
    let hot = Arc::new(TableReader::new(wh.clone(), 4, Duration::ZERO).with_hot_bytes(64 << 20));
    // A budget a few files fill: the rest is read pruned.
    let small = Arc::new(TableReader::new(wh.clone(), 4, Duration::ZERO).with_hot_bytes(200 << 10));
    let readers = [reader.clone(), hot, small];
    // Reads of an empty table.
    let (empty, snapshot) = reader.query(&VintageQuery::new(View::Latest)).await.unwrap();
    assert_eq!((empty.num_rows(), snapshot), (0, None));

    let stream = revision_stream("R", 0..40, 60, 5);
    let mut snapshots = Vec::new();
    for chunk in stream.chunks(700) {
        store.append_revision_rows(chunk).await.unwrap();
        oracle.append_revision_rows(chunk).await.unwrap();
        // The reader sees each commit at once (check_every is zero).
        let (_, snapshot) = reader.query(&VintageQuery::new(View::Latest)).await.unwrap();
        snapshots.push(snapshot.expect("a snapshot after a commit"));
    }
    check(&readers, &oracle, &store, "appended").await;

    // Time travel: every earlier snapshot answers as the store's own scan of it.
    for (i, id) in snapshots.iter().enumerate().step_by(3) {
        let q = VintageQuery::new(View::AllRevisions).at_snapshot(SnapshotSelector::Id(*id));
        let (ours, read) = reader.query(&q).await.unwrap();
        assert_eq!(read, Some(*id));
        assert_eq!(rows(&ours), rows(&store.query(&q).await.unwrap()), "snapshot #{i}");
    }

    // Compaction's rewrite: periods closed into monthly partitions, one commit.
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let files = live_files(&wh, &table, None).await.unwrap();
    let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    let all = read_data_files(&wh, &paths, 4).await.unwrap();
    let (closed, _) = close_periods(&all).unwrap();
    store
        .rewrite(TableKind::DataPoints, paths, &[closed], CommitKind::Replace, "compaction", BTreeMap::new())
        .await
        .unwrap();
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let after = live_files(&wh, &table, None).await.unwrap();
    assert!(after.iter().filter(|f| f.realtime_end_month.is_some()).count() > 1, "closed rows in monthly files");
    check(&readers, &oracle, &store, "compacted").await;

    // Planning prunes: the latest view of one series reads only current-partition files that
    // may hold it.
    let pinned = reader.pin(SnapshotSelector::Current).await.unwrap();
    let one = VintageQuery::new(View::Latest).series(["R00003".parse().unwrap()]);
    let (planned, total) = reader.plan(&pinned, &one).await.unwrap();
    assert!(planned >= 1 && planned < total, "{planned} of {total} files planned");

    // A stale check interval still finds a snapshot id it has not seen.
    let lazy = TableReader::new(wh.clone(), 4, Duration::from_secs(3600));
    lazy.query(&VintageQuery::new(View::Latest)).await.unwrap();
    let more = revision_stream("S", 0..2, 5, 2);
    let committed = store.append_revision_rows(&more).await;
    committed.unwrap();
    oracle.append_revision_rows(&more).await.unwrap();
    let newest = wh.load(TableKind::DataPoints).await.unwrap().metadata().current_snapshot_id().unwrap();
    let q = VintageQuery::new(View::Latest).at_snapshot(SnapshotSelector::Id(newest));
    let (ours, read) = lazy.query(&q).await.unwrap();
    assert_eq!(read, Some(newest), "an unknown snapshot id reloads the table");
    assert_eq!(rows(&ours), rows(&oracle.query(&VintageQuery::new(View::Latest)).await.unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_while_commits_land_see_whole_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path()).await;
    let store = Arc::new(IcebergStore::new(wh.clone()));
    let reader = TableReader::new(wh.clone(), 4, Duration::ZERO);
    let stream = revision_stream("W", 0..6, 30, 3);
    let chunks: Vec<Vec<_>> = stream.chunks(60).map(<[_]>::to_vec).collect();
    let writer = {
        let store = store.clone();
        let chunks = chunks.clone();
        tokio::spawn(async move {
            for c in chunks {
                store.append_revision_rows(&c).await.unwrap();
            }
        })
    };
    // Each answer is the table at the snapshot it names: the same query pinned there by the
    // store's own scan gives the same rows (no missing file, no mix of two snapshots).
    let q = VintageQuery::new(View::AllRevisions);
    let mut seen = std::collections::BTreeSet::new();
    while !writer.is_finished() || seen.len() < 2 {
        let (ours, snapshot) = reader.query(&q).await.unwrap();
        let Some(snapshot) = snapshot else { continue };
        seen.insert(snapshot);
        let pinned = q.clone().at_snapshot(SnapshotSelector::Id(snapshot));
        assert_eq!(rows(&ours), rows(&store.query(&pinned).await.unwrap()), "snapshot {snapshot}");
        if writer.is_finished() && seen.len() >= 2 {
            break;
        }
    }
    writer.await.unwrap();
    assert!(seen.len() >= 2, "reads saw several snapshots: {seen:?}");
}
