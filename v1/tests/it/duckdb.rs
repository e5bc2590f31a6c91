//! DuckDB reading a V1 store's directory with a glob sees exactly the committed rows, and the
//! SQL in docs/storage-v1.md reproduces our latest, first-release and all-revisions views.

use std::collections::BTreeMap;

use vintagelake_schemas::table::stored_data_points_to_batch;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::CommitKind;
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::FinancialDataStorage;
use vintagelake_testkit::fixtures::{revision_stream, rows};
use vintagelake_testkit::tools::{pyiceberg_python, run_python};
use vintagelake_v1::{ParquetStore, STAGING_DIR};

/// The queries of docs/storage-v1.md, one per view; each prints `series|date|value|revision_date`.
const SCRIPT: &str = r#"
import sys, duckdb
files = sys.argv[1] + "/data_points/**/*.parquet"
queries = {
  "count": f"SELECT count(*) FROM read_parquet('{files}')",
  "all_revisions": f"""
    SELECT series_id, date, value, revision_date FROM (
      SELECT *, row_number() OVER (PARTITION BY series_id, date, revision_date ORDER BY ingest_seq DESC) AS rn
      FROM read_parquet('{files}'))
    WHERE rn = 1 ORDER BY series_id, date, revision_date""",
  "latest": f"""
    SELECT series_id, date, value, revision_date FROM (
      SELECT *, row_number() OVER (PARTITION BY series_id, date ORDER BY revision_date DESC, ingest_seq DESC) AS rn
      FROM read_parquet('{files}'))
    WHERE rn = 1 ORDER BY series_id, date""",
  "first_release": f"""
    SELECT series_id, date, value, revision_date FROM (
      SELECT *, row_number() OVER (PARTITION BY series_id, date ORDER BY revision_date ASC, ingest_seq DESC) AS rn
      FROM read_parquet('{files}'))
    WHERE rn = 1 ORDER BY series_id, date""",
}
for name, sql in queries.items():
    for row in duckdb.sql(sql).fetchall():
        print(name + "|" + "|".join("" if v is None else str(v) for v in row))
"#;

type Answers = BTreeMap<String, Vec<String>>;

fn duckdb_answers(root: &std::path::Path) -> Answers {
    let python = pyiceberg_python().expect("python environment with duckdb");
    let out = run_python(&python, SCRIPT, &[root.to_str().unwrap()]).expect("duckdb script");
    let mut answers = Answers::new();
    for line in out.lines() {
        let (name, row) = line.split_once('|').expect("name|row");
        answers.entry(name.to_owned()).or_default().push(row.to_owned());
    }
    answers
}

/// Our view as DuckDB prints it: series|date|value|realtime_start (= the revision date).
async fn ours(store: &ParquetStore, view: View) -> Vec<String> {
    let batch = store.query(&VintageQuery::new(view)).await.unwrap();
    rows(&batch)
        .into_iter()
        .map(|(s, d, v, start, _)| format!("{s}|{d}|{}|{start}", v.map(|v| format!("{v:?}")).unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_over_the_v1_glob_returns_our_views() {
    let dir = tempfile::tempdir().unwrap();
    let store = ParquetStore::open(dir.path()).await.unwrap();
    let stream = revision_stream("S", 0..20, 24, 4);
    for chunk in stream.chunks(97) {
        let batch = stored_data_points_to_batch(chunk).unwrap();
        store.append(TableKind::DataPoints, &[batch], Vec::new(), "test").await.unwrap();
    }
    // Compaction's primitive: the first ten files become one; DuckDB must not see both.
    let live = store.live_files(TableKind::DataPoints, None).await.unwrap();
    let merged = store.read_files(&live[..10]).await.unwrap();
    let remove = live[..10].iter().map(|f| f.path.clone()).collect();
    store
        .rewrite(TableKind::DataPoints, remove, &merged, CommitKind::Replace, "compaction", BTreeMap::new())
        .await
        .unwrap();
    // A writer that staged files but has not committed yet: invisible to the glob.
    let staged = dir.path().join(STAGING_DIR).join(&live[20].path);
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    std::fs::copy(dir.path().join(&live[20].path), &staged).unwrap();

    let root = dir.path().to_owned();
    let duck = tokio::task::spawn_blocking(move || duckdb_answers(&root)).await.unwrap();
    assert_eq!(duck["count"], vec![stream.len().to_string()], "every committed row once, nothing staged or removed");
    for (name, view) in
        [("latest", View::Latest), ("first_release", View::FirstRelease), ("all_revisions", View::AllRevisions)]
    {
        let ours = ours(&store, view).await;
        assert!(ours.len() >= 20 * 24, "{name}: {} rows", ours.len());
        assert_eq!(duck[name], ours, "{name}: DuckDB over the glob vs our view");
    }
}
