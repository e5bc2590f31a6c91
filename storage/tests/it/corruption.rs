//! Damaged files are detected, never skipped: a truncated data file, a data file with a flipped
//! footer, and a damaged manifest each fail the scan with an error naming the file, and
//! `verify_table` (what `vintagelake admin verify` runs) reports each one.

use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::files::live_files;
use vintagelake_storage::scan::{View, VintageQuery};
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};
use vintagelake_storage::verify::verify_table;

use crate::fixture::*;

fn local(path: &str) -> std::path::PathBuf {
    path.trim_start_matches("file://").into()
}

/// A table of several files (one per commit) and the path of one of them.
async fn table_with_files(dir: &std::path::Path) -> (IcebergStore, Vec<String>) {
    let store = IcebergStore::new(warehouse(dir).await);
    let rows = revision_stream("V", 0..6, 10, 2);
    for chunk in rows.chunks(20) {
        store.append_points(chunk, vec![], "test").await.unwrap();
    }
    let wh = store.warehouse().clone();
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let files = live_files(&wh, &table, None).await.unwrap().into_iter().map(|f| f.path).collect();
    (store, files)
}

async fn assert_detected(store: &IcebergStore, damaged: &str, kind: &str) {
    let err = store.query(&VintageQuery::new(View::AllRevisions)).await.expect_err("a damaged file fails the scan");
    let name = damaged.rsplit('/').next().unwrap();
    assert!(err.to_string().contains(name), "the error names {name}: {err}");
    let report = verify_table(store.warehouse(), TableKind::DataPoints, 4).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!((report.problems[0].kind, report.problems[0].path.as_str()), (kind, damaged), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_data_file_is_named_by_the_scan_and_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (store, files) = table_with_files(dir.path()).await;
    let clean = verify_table(store.warehouse(), TableKind::DataPoints, 4).await.unwrap();
    assert!(clean.problems.is_empty() && clean.data_files_checked == files.len(), "{clean:?}");
    let victim = &files[files.len() / 2];
    let bytes = std::fs::read(local(victim)).unwrap();
    std::fs::write(local(victim), &bytes[..bytes.len() / 2]).unwrap();
    assert_detected(&store, victim, "data").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flipped_data_file_is_named_by_the_scan_and_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (store, files) = table_with_files(dir.path()).await;
    let victim = &files[1];
    let mut bytes = std::fs::read(local(victim)).unwrap();
    // The footer's length field: one flipped bit makes the metadata unreadable.
    let at = bytes.len() - 6;
    bytes[at] ^= 0x40;
    std::fs::write(local(victim), &bytes).unwrap();
    assert_detected(&store, victim, "data").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_manifest_is_named_by_verify_and_fails_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = table_with_files(dir.path()).await;
    let wh = store.warehouse().clone();
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let snapshot = table.metadata().current_snapshot().unwrap().clone();
    let list = table.manifest_list_reader(&snapshot).load().await.unwrap();
    let manifest = list.entries()[0].manifest_path.clone();
    let mut bytes = std::fs::read(local(&manifest)).unwrap();
    let half = bytes.len() / 2;
    bytes.truncate(half);
    std::fs::write(local(&manifest), &bytes).unwrap();
    assert!(store.query(&VintageQuery::new(View::AllRevisions)).await.is_err(), "the scan fails");
    let report = verify_table(&wh, TableKind::DataPoints, 4).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!((report.problems[0].kind, report.problems[0].path.as_str()), ("manifest", manifest.as_str()));
}
