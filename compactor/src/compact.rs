//! One compaction run: merge small files, close real-time periods (superseded revisions move out
//! of the current partition), drop exact duplicates and corrected rows, commit with a single
//! replace, then expire snapshots and remove orphan files.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use vintagelake_runtime::audit::AuditEntry;
use vintagelake_runtime::schedule::record_unfinished;
use vintagelake_storage::catalog::TableKind;
use vintagelake_storage::commit::CommitKind;
use vintagelake_storage::config::TierName;
use vintagelake_storage::error::StorageError;
use vintagelake_storage::files::{LiveFile, live_files, read_data_file, read_data_files, written_by_compaction};
use vintagelake_storage::scan::{CloseStats, backfilled_keys, close_periods, split_keys};
use vintagelake_storage::snapshots::{ExpirePolicy, expire_snapshots, remove_orphans};
use vintagelake_storage::store::IcebergStore;

use crate::metrics as m;

/// What a run may do.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    pub small_file_fraction: f64,
    pub snapshot_retention: Duration,
    pub keep_snapshots: usize,
    pub orphan_grace: Duration,
    pub concurrency: usize,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            small_file_fraction: 0.5,
            snapshot_retention: Duration::from_secs(7 * 86_400),
            keep_snapshots: 100,
            orphan_grace: Duration::from_secs(86_400),
            concurrency: 8,
        }
    }
}

/// What a run did (logged, counted, and kept in the snapshot summary).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CompactionReport {
    pub snapshot_id: Option<i64>,
    pub files_in: usize,
    pub files_out: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rows: CloseStats,
    pub commit_attempts: u32,
    /// Snapshots expired and orphan files removed, both tables together.
    pub snapshots_expired: usize,
    pub orphans_removed: usize,
    /// Per table: the snapshots expired and the orphan files removed.
    #[serde(skip)]
    pub maintenance: BTreeMap<String, Maintenance>,
    /// Small files per partition before the run.
    pub small_files: BTreeMap<String, usize>,
    /// Files rewritten under the current master key, per table (key rotation; empty when every
    /// file already is, or without encryption).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub reencrypted: BTreeMap<String, crate::rekey::Rekeyed>,
    pub seconds: f64,
}

/// What a run's maintenance did to one table.
#[derive(Debug, Clone, Default)]
pub struct Maintenance {
    pub expired_snapshots: Vec<i64>,
    pub orphan_files: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("row accounting does not add up ({0}); nothing was committed")]
    Accounting(String),
    #[error("cancelled before committing; nothing was committed")]
    Cancelled,
}

/// Compacts the `data_points` table once and records the run in the audit trail, whatever its
/// outcome. Cancelling stops it at the next phase boundary (reading, committing, expiring, removing
/// orphans): a commit is either made whole or not at all.
pub async fn compact_once(
    store: &IcebergStore,
    options: &CompactOptions,
    cancel: &CancellationToken,
) -> Result<CompactionReport, CompactError> {
    let audit = store.warehouse().audit();
    let table = store.warehouse().ident(TableKind::DataPoints).to_string();
    match compact_inner(store, options, cancel).await {
        Ok(report) => {
            let entry = AuditEntry::new(ACTOR, "compact")
                .table(&table)
                .rule("small files, open real-time periods")
                .counts(report.rows.rows_out as u64, report.bytes_out)
                .snapshot(report.snapshot_id)
                .detail(serde_json::to_value(&report).unwrap_or_default());
            audit.record(&entry);
            for (table, done) in &report.reencrypted {
                audit.record(
                    &AuditEntry::new(ACTOR, "re-encrypt")
                        .table(table)
                        .rule(format!("files not under the current master key {:?}", done.key_id))
                        .counts(done.rows, done.bytes)
                        .files(done.paths.clone())
                        .detail(serde_json::to_value(done).unwrap_or_default()),
                );
            }
            for (table, done) in &report.maintenance {
                if !done.expired_snapshots.is_empty() {
                    let ids = done.expired_snapshots.iter().map(i64::to_string).collect();
                    audit.record(
                        &AuditEntry::new(ACTOR, "expire")
                            .table(table)
                            .rule(format!(
                                "snapshot_retention={}, keep_snapshots={}",
                                humantime::format_duration(options.snapshot_retention),
                                options.keep_snapshots
                            ))
                            .files(ids),
                    );
                }
                if !done.orphan_files.is_empty() {
                    audit.record(
                        &AuditEntry::new(ACTOR, "remove-orphans")
                            .table(table)
                            .rule(format!("orphan_grace={}", humantime::format_duration(options.orphan_grace)))
                            .files(done.orphan_files.clone()),
                    );
                }
            }
            Ok(report)
        }
        Err(e) => {
            let outcome = if matches!(e, CompactError::Cancelled) { "cancelled" } else { "failed" };
            record_unfinished(audit, m::RUNS, (ACTOR, "compact", &table), outcome, &e);
            Err(e)
        }
    }
}

const ACTOR: &str = "compactor";

async fn compact_inner(
    store: &IcebergStore,
    options: &CompactOptions,
    cancel: &CancellationToken,
) -> Result<CompactionReport, CompactError> {
    let started = Instant::now();
    let wh = store.warehouse().clone();
    let table = wh.load(TableKind::DataPoints).await?;
    let target = table
        .metadata()
        .properties()
        .get(vintagelake_storage::catalog::PROP_TARGET_FILE_SIZE)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(wh.target_file_size());
    let small = (target as f64 * options.small_file_fraction) as u64;
    let files = live_files(&wh, &table, None).await?;
    let mut by_partition: BTreeMap<Option<i32>, Vec<&LiveFile>> = BTreeMap::new();
    for f in &files {
        by_partition.entry(f.realtime_end_month).or_default().push(f);
    }
    let mut report = CompactionReport::default();
    let mut current: Vec<&LiveFile> = Vec::new();
    let mut closed: Vec<&LiveFile> = Vec::new();
    // A current file compaction wrote holds each key's open revision; the others hold arrivals.
    let from_compaction = |f: &LiveFile| written_by_compaction(&table, f);
    for (month, group) in &by_partition {
        let smalls: Vec<&LiveFile> = group.iter().copied().filter(|f| f.size_bytes < small).collect();
        let label = group[0].partition.clone();
        metrics::gauge!(m::SMALL_FILES, "partition" => label.clone()).set(smalls.len() as f64);
        report.small_files.insert(label, smalls.len());
        match month {
            // The current partition is read whole when something arrived: closing a period needs
            // every open revision of a key. Files compaction wrote hold one open revision per key
            // and are target-sized (split by series range), so with no arrival there is nothing
            // to close or merge and the run reads nothing.
            None if group.iter().any(|f| !from_compaction(f)) => current.extend(group.iter().copied()),
            None => {}
            // Closed rows change only when a backfill reaches them (below); merging their small
            // files is otherwise enough.
            Some(_) if smalls.len() >= 2 => closed.extend(smalls),
            Some(_) => {}
        }
    }

    if !current.is_empty() || !closed.is_empty() {
        let paths = |fs: &[&LiveFile]| fs.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
        let (open_files, arrived_files): (Vec<&LiveFile>, Vec<&LiveFile>) =
            current.iter().copied().partition(|f| from_compaction(f));
        let (open_rows, arrived_rows) = tokio::select! {
            _ = cancel.cancelled() => return Err(CompactError::Cancelled),
            read = async {
                let open = read_data_files(&wh, &paths(&open_files), options.concurrency).await?;
                let arrived = read_data_files(&wh, &paths(&arrived_files), options.concurrency).await?;
                Ok::<_, StorageError>((open, arrived))
            } => read?,
        };
        // Keys an arrival backfilled below their open revision: their closed rows are read and
        // folded too, so stored periods stay exact and a closed revision's corrections and
        // re-publications fold into it.
        let backfilled = backfilled_keys(&open_rows, &arrived_rows)?;
        let mut reread: Vec<(&LiveFile, Vec<arrow::array::RecordBatch>)> = Vec::new();
        if !backfilled.is_empty() {
            let sorted: std::collections::BTreeSet<_> = backfilled.iter().cloned().collect();
            let candidates = files.iter().filter(|f| f.realtime_end_month.is_some() && f.may_hold_any(&sorted));
            for f in candidates {
                if cancel.is_cancelled() {
                    return Err(CompactError::Cancelled);
                }
                let rows = read_data_file(&wh, &f.path).await?;
                let holds = rows.iter().try_fold(false, |any, b| {
                    Ok::<_, StorageError>(any || split_keys(b, &backfilled)?.0.num_rows() > 0)
                })?;
                if holds {
                    reread.push((f, rows));
                }
            }
            tracing::info!(keys = backfilled.len(), files = reread.len(), "backfilled keys: closed rows re-read");
        }
        let closed: Vec<&LiveFile> =
            closed.into_iter().filter(|f| !reread.iter().any(|(r, _)| r.path == f.path)).collect();
        let current_paths = paths(&current);
        let mut closed_paths = paths(&closed);
        closed_paths.extend(reread.iter().map(|(f, _)| f.path.clone()));
        let records_in: u64 = current.iter().chain(&closed).map(|f| f.records).sum::<u64>()
            + reread.iter().map(|(f, _)| f.records).sum::<u64>();
        report.files_in = current.len() + closed.len() + reread.len();
        report.bytes_in = current.iter().chain(&closed).map(|f| f.size_bytes).sum::<u64>()
            + reread.iter().map(|(f, _)| f.size_bytes).sum::<u64>();
        tracing::info!(files = report.files_in, rows = records_in, "compacting");
        // Closed files stay in their tier: merged per tier, written back to it (less the rows of
        // backfilled keys, which are folded with the current rows).
        let mut closed_by_tier: BTreeMap<Option<TierName>, Vec<String>> = BTreeMap::new();
        for f in &closed {
            closed_by_tier.entry(f.tier.clone()).or_default().push(f.path.clone());
        }
        let mut closed_groups: BTreeMap<Option<TierName>, Vec<arrow::array::RecordBatch>> = BTreeMap::new();
        tokio::select! {
            _ = cancel.cancelled() => return Err(CompactError::Cancelled),
            read = async {
                for (tier, paths) in &closed_by_tier {
                    closed_groups.entry(tier.clone()).or_default().extend(read_data_files(&wh, paths, options.concurrency).await?);
                }
                Ok::<_, StorageError>(())
            } => read?,
        };
        let read: usize = open_rows
            .iter()
            .chain(&arrived_rows)
            .chain(closed_groups.values().flatten())
            .chain(reread.iter().flat_map(|(_, b)| b))
            .map(|b| b.num_rows())
            .sum();
        let mut fold = open_rows;
        fold.extend(arrived_rows);
        for (f, rows) in reread {
            for b in rows {
                let (of_keys, rest) = split_keys(&b, &backfilled)?;
                fold.push(of_keys);
                closed_groups.entry(f.tier.clone()).or_default().push(rest);
            }
        }
        let (rewritten, mut stats) = close_periods(&fold)?;
        let closed_count: usize = closed_groups.values().flatten().map(|b| b.num_rows()).sum();
        stats.rows_in += closed_count;
        stats.rows_out += closed_count;
        report.rows = stats;
        // Rows in = rows out + rows dropped, and the files held what the manifests say.
        let out = rewritten.num_rows() + closed_count;
        if read as u64 != records_in
            || stats.rows_in != stats.rows_out + stats.duplicates_dropped + stats.corrections_applied
            || out != stats.rows_out
        {
            metrics::counter!(m::ACCOUNTING_FAILURES).increment(1);
            return Err(CompactError::Accounting(format!(
                "manifests say {records_in} rows, files held {read}; in {} = out {} + duplicates {} + corrections {}; wrote {out}",
                stats.rows_in, stats.rows_out, stats.duplicates_dropped, stats.corrections_applied
            )));
        }
        tracing::info!(
            rows_in = stats.rows_in,
            rows_out = stats.rows_out,
            duplicates = stats.duplicates_dropped,
            corrections = stats.corrections_applied,
            periods_closed = stats.periods_closed,
            periods_corrected = stats.periods_corrected,
            "row accounting adds up"
        );
        if cancel.is_cancelled() {
            return Err(CompactError::Cancelled);
        }
        let mut groups = vec![(None, vec![rewritten])];
        groups.extend(closed_groups.into_iter().filter(|(_, rows)| rows.iter().any(|b| b.num_rows() > 0)));
        let summary = BTreeMap::from([
            ("vintagelake.compaction.rows-in".to_owned(), stats.rows_in.to_string()),
            ("vintagelake.compaction.rows-out".to_owned(), stats.rows_out.to_string()),
            ("vintagelake.compaction.duplicates-dropped".to_owned(), stats.duplicates_dropped.to_string()),
            ("vintagelake.compaction.corrections-applied".to_owned(), stats.corrections_applied.to_string()),
            ("vintagelake.compaction.periods-closed".to_owned(), stats.periods_closed.to_string()),
            ("vintagelake.compaction.periods-corrected".to_owned(), stats.periods_corrected.to_string()),
        ]);
        let mut remove = current_paths;
        remove.extend(closed_paths);
        vintagelake_runtime::failpoint::hit("compact-before-commit");
        let committed = store
            .rewrite_into_tiers(TableKind::DataPoints, remove, &groups, CommitKind::Replace, "compaction", summary)
            .await?;
        report.snapshot_id = Some(committed.snapshot_id);
        report.files_out = committed.added_files;
        report.commit_attempts = committed.attempts;
        metrics::counter!(m::CONFLICTS).increment(u64::from(committed.attempts - 1));
        let after = wh.load(TableKind::DataPoints).await?;
        report.bytes_out = live_files(&wh, &after, None)
            .await?
            .iter()
            .filter(|f| f.added_snapshot_id == Some(committed.snapshot_id))
            .map(|f| f.size_bytes)
            .sum();
        vintagelake_runtime::failpoint::hit("compact-after-commit");
    }

    // Key rotation: files not under the current master key are rewritten under it (both tables).
    for kind in TableKind::all() {
        if let Some(done) = crate::rekey::reencrypt(store, kind, cancel).await?
            && done.files > 0
        {
            metrics::counter!(m::FILES_REENCRYPTED).increment(done.files as u64);
            tracing::info!(table = %wh.ident(kind), files = done.files, key = %done.key_id, "re-encrypted under the current key");
            report.reencrypted.insert(wh.ident(kind).to_string(), done);
        }
    }

    // Maintenance, of both tables (the series table gets commits too: series writes,
    // re-encryption): each step is its own atomic commit or an idempotent cleanup; stop between
    // them.
    let older_than_ms = chrono::Utc::now().timestamp_millis() - options.snapshot_retention.as_millis() as i64;
    for kind in TableKind::all() {
        if cancel.is_cancelled() {
            return Err(CompactError::Cancelled);
        }
        let expired =
            expire_snapshots(&wh, kind, ExpirePolicy { older_than_ms, retain_last: options.keep_snapshots }).await?;
        report.snapshots_expired += expired.expired.len();
        if cancel.is_cancelled() {
            return Err(CompactError::Cancelled);
        }
        let orphans = remove_orphans(&wh, kind, options.orphan_grace).await?;
        report.orphans_removed += orphans.len();
        report.maintenance.insert(
            wh.ident(kind).to_string(),
            Maintenance {
                expired_snapshots: expired.expired,
                orphan_files: orphans.into_iter().map(|o| o.path).collect(),
            },
        );
    }
    report.seconds = started.elapsed().as_secs_f64();

    metrics::counter!(m::RUNS, "outcome" => "ok").increment(1);
    metrics::counter!(m::FILES_IN).increment(report.files_in as u64);
    metrics::counter!(m::FILES_OUT).increment(report.files_out as u64);
    metrics::counter!(m::BYTES_IN).increment(report.bytes_in);
    metrics::counter!(m::BYTES_OUT).increment(report.bytes_out);
    metrics::counter!(m::ROWS_DEDUPLICATED)
        .increment((report.rows.duplicates_dropped + report.rows.corrections_applied) as u64);
    metrics::counter!(m::PERIODS_CLOSED).increment(report.rows.periods_closed as u64);
    metrics::counter!(m::PERIODS_CORRECTED).increment(report.rows.periods_corrected as u64);
    metrics::counter!(m::SNAPSHOTS_EXPIRED).increment(report.snapshots_expired as u64);
    metrics::counter!(m::ORPHANS_REMOVED).increment(report.orphans_removed as u64);
    metrics::histogram!(m::DURATION).record(report.seconds);
    tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "compaction run finished");
    Ok(report)
}
