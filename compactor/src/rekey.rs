//! Key rotation: every live data file not encrypted under the current master key (an older key,
//! or none: encryption switched on for an existing table) is rewritten under it — the same rows,
//! in the same tier, with the same kind of name (appended files stay appended files, so
//! compaction reads them as it did) — and swapped in with a replace commit. Files are taken in
//! batches of bounded size, one commit each, so a large table rotates in bounded memory and a
//! stopped run keeps what it committed.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::{CommitKind, CommitRequest};
use vintagelake_storage::config::TierName;
use vintagelake_storage::files::{LiveFile, live_files, master_key, read_file_as, written_by_compaction};
use vintagelake_storage::store::IcebergStore;
use vintagelake_storage::write::Encoding;

use crate::compact::CompactError;

/// Stored bytes of the files one re-encryption commit rewrites, at most (a single larger file is
/// still taken alone).
pub const BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// What a rotation pass did for one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rekeyed {
    pub key_id: String,
    pub files: usize,
    pub bytes: u64,
    pub rows: u64,
    pub commits: usize,
    /// The files rewritten, by the master key they were under (`none`: plaintext).
    pub from_keys: BTreeMap<String, usize>,
    #[serde(skip)]
    pub paths: Vec<String>,
}

/// Rewrites `kind`'s stale files under the current master key; `None` without encryption.
pub async fn reencrypt(
    store: &IcebergStore,
    kind: TableKind,
    cancel: &CancellationToken,
) -> Result<Option<Rekeyed>, CompactError> {
    let wh = store.warehouse().clone();
    let Some(encryption) = wh.encryption() else { return Ok(None) };
    let mut done = Rekeyed { key_id: encryption.current_key_id().to_owned(), ..Rekeyed::default() };
    let table = wh.load(kind).await?;
    // The live files not under the current master key, from the table loaded once.
    let stale: Vec<LiveFile> = live_files(&wh, &table, None)
        .await?
        .into_iter()
        .filter(|f| master_key(&f.data_file).as_deref() != Some(done.key_id.as_str()))
        .collect();
    let mut batch: Vec<&LiveFile> = Vec::new();
    let mut batches: Vec<Vec<&LiveFile>> = Vec::new();
    for f in &stale {
        if !batch.is_empty() && batch.iter().map(|b| b.size_bytes).sum::<u64>() + f.size_bytes > BATCH_BYTES {
            batches.push(std::mem::take(&mut batch));
        }
        batch.push(f);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    let schema = wh.rows_schema(kind);
    let label = wh.ident(kind).to_string();
    let mut remaining = stale.len();
    metrics::gauge!(crate::metrics::FILES_UNDER_OLD_KEYS, "table" => label.clone()).set(remaining as f64);
    for batch in batches {
        if cancel.is_cancelled() {
            return Err(CompactError::Cancelled);
        }
        // Same tier, same kind of name: an appended data file stays one (compaction tells open
        // revisions from arrivals by it).
        let mut groups: BTreeMap<(Encoding, Option<TierName>), Vec<arrow::array::RecordBatch>> = BTreeMap::new();
        let mut rows = 0u64;
        for f in &batch {
            let encoding = if kind == TableKind::DataPoints && !written_by_compaction(&table, f) {
                Encoding::Fresh
            } else {
                Encoding::Settled
            };
            let read = read_file_as(wh.file_io(), &f.path, schema.clone(), wh.decryption()).await?;
            let read_rows: u64 = read.iter().map(|b| b.num_rows() as u64).sum();
            if read_rows != f.records {
                return Err(CompactError::Accounting(format!(
                    "{} holds {read_rows} rows, its manifest says {}",
                    f.path, f.records
                )));
            }
            rows += read_rows;
            groups.entry((encoding, f.tier.clone())).or_default().extend(read);
        }
        let mut added = Vec::new();
        for ((encoding, tier), rows) in groups {
            match store.write_files(kind, &[(tier, rows)], encoding).await {
                Ok(files) => added.extend(files),
                Err(e) => {
                    store.remove_uncommitted(&added).await;
                    return Err(e.into());
                }
            }
        }
        let written: u64 = added.iter().map(|f| f.record_count()).sum();
        if written != rows {
            store.remove_uncommitted(&added).await;
            return Err(CompactError::Accounting(format!("re-encryption read {rows} rows and wrote {written}")));
        }
        if cancel.is_cancelled() {
            store.remove_uncommitted(&added).await;
            return Err(CompactError::Cancelled);
        }
        let removed: Vec<String> = batch.iter().map(|f| f.path.clone()).collect();
        let mut request = CommitRequest::new(CommitKind::Replace, added, removed.clone(), "re-encryption");
        request.summary.insert("vintagelake.encryption.key-id".to_owned(), done.key_id.clone());
        vintagelake_runtime::failpoint::hit("rekey-before-commit");
        // A failed commit removes the files it would have added, unless it may have committed.
        store.commit_files(kind, request).await?;
        done.commits += 1;
        done.files += batch.len();
        done.bytes += batch.iter().map(|f| f.size_bytes).sum::<u64>();
        done.rows += rows;
        for f in &batch {
            *done.from_keys.entry(master_key(&f.data_file).unwrap_or_else(|| "none".to_owned())).or_default() += 1;
        }
        done.paths.extend(removed);
        remaining -= batch.len();
        metrics::gauge!(crate::metrics::FILES_UNDER_OLD_KEYS, "table" => label.clone()).set(remaining as f64);
    }
    Ok(Some(done))
}
