//! Integrity check of a table (`vintagelake admin verify`): the metadata, the manifest list and
//! every manifest of the current snapshot load, and every live data file is present, has the size
//! its manifest records, decodes completely and holds the number of rows its manifest says.

use futures::StreamExt;
use futures::stream;
use serde::Serialize;

use crate::catalog::{TableKind, Warehouse};
use crate::error::Result;
use crate::files::read_data_file;

/// One damaged or missing file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `metadata`, `manifest-list`, `manifest` or `data`.
    pub kind: &'static str,
    pub path: String,
    pub reason: String,
}

/// What a check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub table: String,
    pub snapshot_id: Option<i64>,
    pub manifests_checked: usize,
    pub data_files_checked: usize,
    pub rows_checked: u64,
    pub problems: Vec<Problem>,
}

/// Checks the current snapshot of `kind`. Problems are collected, not returned as errors: the
/// report names every damaged file. An error means the check itself could not run (no catalog).
pub async fn verify_table(wh: &Warehouse, kind: TableKind, concurrency: usize) -> Result<VerifyReport> {
    let mut report = VerifyReport { table: wh.ident(kind).to_string(), ..Default::default() };
    let table = match wh.load(kind).await {
        Ok(t) => t,
        Err(e) => {
            let path = wh.metadata_location(kind).await.unwrap_or_else(|_| "(catalog row)".into());
            report.problems.push(Problem { kind: "metadata", path, reason: e.to_string() });
            return Ok(report);
        }
    };
    let Some(snapshot) = table.metadata().current_snapshot().cloned() else { return Ok(report) };
    report.snapshot_id = Some(snapshot.snapshot_id());
    let list = match table.manifest_list_reader(&snapshot).load().await {
        Ok(l) => l,
        Err(e) => {
            let path = snapshot.manifest_list().to_owned();
            report.problems.push(Problem { kind: "manifest-list", path, reason: e.to_string() });
            return Ok(report);
        }
    };
    let mut data_files = Vec::new();
    for mf in list.entries() {
        report.manifests_checked += 1;
        match mf.load_manifest(table.file_io()).await {
            Ok(m) => {
                data_files.extend(m.entries().iter().filter(|e| e.is_alive()).map(|e| {
                    (e.file_path().to_owned(), e.data_file().file_size_in_bytes(), e.data_file().record_count())
                }))
            }
            Err(e) => report.problems.push(Problem {
                kind: "manifest",
                path: mf.manifest_path.clone(),
                reason: e.to_string(),
            }),
        }
    }
    let checks = data_files.iter().map(|(path, size, rows)| check_data_file(wh, path, *size, *rows));
    let results: Vec<std::result::Result<u64, Problem>> =
        stream::iter(checks).buffer_unordered(concurrency.max(1)).collect().await;
    for r in results {
        report.data_files_checked += 1;
        match r {
            Ok(rows) => report.rows_checked += rows,
            Err(p) => report.problems.push(p),
        }
    }
    report.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

async fn check_data_file(wh: &Warehouse, path: &str, size: u64, rows: u64) -> std::result::Result<u64, Problem> {
    let problem = |reason: String| Problem { kind: "data", path: path.to_owned(), reason };
    let input = wh.file_io().new_input(path).map_err(|e| problem(e.to_string()))?;
    let meta = input.metadata().await.map_err(|e| problem(format!("cannot stat: {e}")))?;
    if meta.size != size {
        return Err(problem(format!("{} bytes, the manifest says {size}", meta.size)));
    }
    let batches = read_data_file(wh, path).await.map_err(|e| problem(e.to_string()))?;
    let read: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    if read != rows {
        return Err(problem(format!("{read} rows, the manifest says {rows}")));
    }
    Ok(read)
}
