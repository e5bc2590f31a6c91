//! The pyiceberg fixture provisions a working pyiceberg with its SQLite catalog.

use vintagelake_testkit::tools::{pyiceberg_python, run_python};

#[test]
fn pyiceberg_fixture_gives_a_working_sql_catalog() {
    let python = pyiceberg_python().expect("pyiceberg environment");
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, pyiceberg, pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
warehouse = sys.argv[1]
cat = SqlCatalog("check", uri=f"sqlite:///{warehouse}/catalog.db", warehouse=f"file://{warehouse}")
cat.create_namespace("ns")
t = cat.create_table("ns.t", schema=pa.schema([("x", pa.int64())]))
t.append(pa.table({"x": [1, 2, 3]}))
print(pyiceberg.__version__, len(cat.load_table("ns.t").scan().to_arrow()))
"#;
    let out = run_python(&python, script, &[dir.path().to_str().unwrap()]).expect("script runs");
    assert_eq!(out.trim(), "0.12.0 3");
}

/// pyiceberg, pointed at our SQLite catalog, reads what we committed: appends, a delete commit,
/// a rewrite commit and an append on top, at every snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyiceberg_reads_our_appends_deletes_and_rewrites() {
    use std::collections::BTreeMap;

    use futures::TryStreamExt;
    use vintagelake_storage::catalog::TableKind;
    use vintagelake_storage::commit::{CommitKind, CommitRequest, RetryPolicy, commit};
    use vintagelake_storage::files::{live_files, read_data_files};
    use vintagelake_storage::store::IcebergStore;

    use crate::fixture::*;

    let python = tokio::task::spawn_blocking(pyiceberg_python).await.unwrap().expect("pyiceberg environment");
    let dir = tempfile::tempdir().unwrap();
    let wh = warehouse(dir.path()).await;
    let store = IcebergStore::new(wh.clone());
    write_fixture(&store).await;

    // Delete commit: drop the file holding UNRATE.
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let files = live_files(&wh, &table, None).await.unwrap();
    let mut unrate = String::new();
    for f in &files {
        let batches = vintagelake_storage::files::read_data_file(&wh, &f.path).await.unwrap();
        let rows = vintagelake_storage::store::stored_rows(&batches).unwrap();
        if rows.iter().all(|r| r.point.series_id.as_str() == "UNRATE") {
            unrate = f.path.clone();
        }
    }
    assert!(!unrate.is_empty(), "the UNRATE write has a file of its own");
    commit(
        &wh,
        TableKind::DataPoints,
        &CommitRequest::new(CommitKind::Delete, vec![], vec![unrate.clone()], "retention"),
        &RetryPolicy::default(),
    )
    .await
    .unwrap();
    // Rewrite commit: merge the remaining five files into one.
    let rest: Vec<String> = files.iter().map(|f| f.path.clone()).filter(|p| p != &unrate).collect();
    let rows = read_data_files(&wh, &rest, 4).await.unwrap();
    store
        .rewrite(TableKind::DataPoints, rest, &rows, CommitKind::Replace, "compaction", BTreeMap::new())
        .await
        .unwrap();
    // And an append on top.
    let gdp: vintagelake_schemas::SeriesId = "GDPC1".parse().unwrap();
    use vintagelake_storage::store::FinancialDataStorage;
    store.write_data_points(&gdp, &[point("GDPC1", "2024-01-01", "2024-04-25", Some(500.0), true)]).await.unwrap();

    // Our own view of every snapshot: (id, operation, rows).
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let mut ours = Vec::new();
    let mut snapshots: Vec<_> = table.metadata().snapshots().cloned().collect();
    snapshots.sort_by_key(|s| s.sequence_number());
    for s in &snapshots {
        let batches: Vec<arrow::array::RecordBatch> = table
            .scan()
            .snapshot_id(s.snapshot_id())
            .build()
            .unwrap()
            .to_arrow()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        ours.push(format!("{} {} {}", s.snapshot_id(), s.summary().operation.as_str(), n));
    }
    let ours_files = live_files(&wh, &table, None).await.unwrap().len();

    let script = r#"
import sys, json
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("vintagelake", uri="sqlite:///" + sys.argv[1], warehouse="file://" + sys.argv[2])
t = cat.load_table("econ.data_points")
snaps = sorted(t.snapshots(), key=lambda s: s.sequence_number)
lines = []
for s in snaps:
    n = len(t.scan(snapshot_id=s.snapshot_id).to_arrow())
    lines.append(f"{s.snapshot_id} {s.summary.operation.value} {n}")
cur = t.current_snapshot()
out = {
  "snapshots": lines,
  "files": len(t.inspect.files()),
  "entries": len(t.inspect.entries()),
  "manifests": len(t.inspect.manifests()),
  "total_records": int(cur.summary["total-records"]),
  "rows": len(t.scan().to_arrow()),
  "gdp_rows": len(t.scan(row_filter="series_id == 'GDPC1'").to_arrow()),
  "dated_rows": len(t.scan(row_filter="date >= '2023-04-01' and date <= '2023-07-01'").to_arrow()),
  "current_rows": len(t.scan(row_filter="realtime_end is null").to_arrow()),
}
print(json.dumps(out))
"#;
    let catalog = dir.path().join("catalog.sqlite");
    let warehouse_dir = dir.path().join("warehouse");
    let out = run_python(&python, script, &[catalog.to_str().unwrap(), warehouse_dir.to_str().unwrap()])
        .expect("pyiceberg reads");
    let theirs: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let their_snaps: Vec<String> =
        theirs["snapshots"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    assert_eq!(their_snaps, ours, "every snapshot: same operation, same row count at time travel");
    let ops: Vec<&str> = ours.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(ops, ["append", "append", "append", "append", "append", "append", "delete", "replace", "append"]);
    // 13 stored rows after the fixture; 12 after the delete; 12 after the rewrite; 13 after the append.
    let counts: Vec<usize> = ours.iter().map(|l| l.split(' ').nth(2).unwrap().parse().unwrap()).collect();
    assert_eq!(counts, [1, 4, 8, 9, 13, 14, 13, 13, 14]);
    assert_eq!(theirs["files"], ours_files);
    assert_eq!(theirs["total_records"], 14);
    assert_eq!(theirs["rows"], 14);
    assert_eq!(theirs["gdp_rows"], 14, "UNRATE was deleted");
    assert_eq!(theirs["current_rows"], 14, "nothing closed yet");

    // Filtered scans equal ours.
    let count = |q: VintageQuery| {
        let table = table.clone();
        async move {
            vintagelake_storage::scan::scan_rows(&table, &q, 4, None)
                .await
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>()
        }
    };
    use vintagelake_storage::scan::{View, VintageQuery};
    let ours_gdp = count(VintageQuery::new(View::AllRevisions).series([gdp.clone()])).await;
    assert_eq!(theirs["gdp_rows"], ours_gdp);
    let ours_dated =
        count(VintageQuery::new(View::AllRevisions).between(Some(d("2023-04-01")), Some(d("2023-07-01")))).await;
    assert_eq!(theirs["dated_rows"], ours_dated);
    assert_eq!(ours_dated, 7, "2023-04-01: 4 stored rows (incl. the duplicate), 2023-07-01: 3");
}
