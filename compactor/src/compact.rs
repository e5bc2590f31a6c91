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
use vintagelake_storage::commit::CommitRequest;
use vintagelake_storage::config::TierName;
use vintagelake_storage::error::StorageError;
use vintagelake_storage::files::{LiveFile, live_files, written_by_compaction};
use vintagelake_storage::scan::CloseStats;
use vintagelake_storage::snapshots::{ExpirePolicy, expire_snapshots, remove_orphans};
use vintagelake_storage::store::IcebergStore;

use crate::metrics as m;
use crate::rewrite::{Plan, Staged, stage};

/// What a run may do.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    pub small_file_fraction: f64,
    pub snapshot_retention: Duration,
    pub keep_snapshots: usize,
    pub orphan_grace: Duration,
    pub concurrency: usize,
    /// Rows a run holds in memory at once are sized to stay within this (arrivals since the last
    /// run and the rows of backfilled keys come on top: see docs/compaction.md).
    pub memory_limit_bytes: u64,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            small_file_fraction: 0.5,
            snapshot_retention: Duration::from_secs(7 * 86_400),
            keep_snapshots: 100,
            orphan_grace: Duration::from_secs(86_400),
            concurrency: 8,
            memory_limit_bytes: 512 << 20,
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
    /// Chunks the current rows were folded in, the current files no arrival touched (left as they
    /// were), and the most rows one chunk folded.
    pub chunks: usize,
    pub open_files_kept: usize,
    pub largest_chunk_rows: u64,
    pub chunk_budget_rows: u64,
    pub arrivals_bytes: u64,
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

/// Rows in = rows out + rows dropped, the files held what their manifests say, and every row
/// folded or carried over was written; otherwise nothing is committed.
fn check_accounting(staged: &Staged) -> Result<(), CompactError> {
    let s = &staged.stats;
    let balanced = s.rows_in == s.rows_out + s.duplicates_dropped + s.corrections_applied;
    let written = s.rows_out as u64 + staged.closed_rows;
    if staged.rows_read == staged.records_in && balanced && staged.rows_written == written {
        return Ok(());
    }
    metrics::counter!(m::ACCOUNTING_FAILURES).increment(1);
    Err(CompactError::Accounting(format!(
        "manifests say {} rows, files held {}; in {} = out {} + duplicates {} + corrections {}; wrote {} of {written}",
        staged.records_in,
        staged.rows_read,
        s.rows_in,
        s.rows_out,
        s.duplicates_dropped,
        s.corrections_applied,
        staged.rows_written
    )))
}

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
    let mut arrived: Vec<&LiveFile> = Vec::new();
    let mut open: Vec<&LiveFile> = Vec::new();
    let mut closed_small: BTreeMap<Option<TierName>, Vec<&LiveFile>> = BTreeMap::new();
    for (month, group) in &by_partition {
        let smalls: Vec<&LiveFile> = group.iter().copied().filter(|f| f.size_bytes < small).collect();
        let label = group[0].partition.clone();
        metrics::gauge!(m::SMALL_FILES, "partition" => label.clone()).set(smalls.len() as f64);
        report.small_files.insert(label, smalls.len());
        match month {
            // A current file compaction wrote holds each key's open revision; the others hold
            // arrivals. With no arrival there is nothing to close and the run reads nothing.
            None => {
                for f in group {
                    if written_by_compaction(&table, f) { open.push(f) } else { arrived.push(f) }
                }
            }
            // Closed rows change only when a backfill reaches them (found while folding);
            // merging their small files is otherwise enough.
            Some(_) if smalls.len() >= 2 => {
                for f in smalls {
                    closed_small.entry(f.tier.clone()).or_default().push(f);
                }
            }
            Some(_) => {}
        }
    }
    // Merging needs two small files of a tier.
    closed_small.retain(|_, fs| fs.len() >= 2);

    if !arrived.is_empty() || !closed_small.is_empty() {
        let plan = Plan {
            arrived,
            open,
            closed_small,
            all: &files,
            small_bytes: small,
            memory_limit_bytes: options.memory_limit_bytes,
            concurrency: options.concurrency,
        };
        let mut staged = Staged::default();
        tracing::info!(arrived = plan.arrived.len(), open = plan.open.len(), "compacting");
        let staging = stage(store, &plan, cancel, &mut staged).await;
        let finished = staged.finish().await;
        let result = staging.and(finished.map_err(CompactError::from)).and_then(|()| check_accounting(&staged));
        if let Err(e) = result {
            // Nothing was committed: what the run wrote goes now rather than as orphans later.
            store.remove_uncommitted(&staged.files).await;
            return Err(e);
        }
        let stats = staged.stats;
        tracing::info!(
            files = staged.removed.len(),
            chunks = staged.chunks,
            open_files_kept = staged.open_files_kept,
            rows_in = stats.rows_in,
            rows_out = stats.rows_out,
            duplicates = stats.duplicates_dropped,
            corrections = stats.corrections_applied,
            periods_closed = stats.periods_closed,
            periods_corrected = stats.periods_corrected,
            "row accounting adds up"
        );
        report.files_in = staged.removed.len();
        report.bytes_in = staged.bytes_in;
        report.rows = stats;
        report.rows.rows_in += staged.closed_rows as usize;
        report.rows.rows_out += staged.closed_rows as usize;
        report.chunks = staged.chunks;
        report.open_files_kept = staged.open_files_kept;
        report.largest_chunk_rows = staged.largest_chunk_rows;
        report.chunk_budget_rows = staged.chunk_budget_rows;
        report.arrivals_bytes = staged.arrivals_bytes;
        if cancel.is_cancelled() {
            store.remove_uncommitted(&staged.files).await;
            return Err(CompactError::Cancelled);
        }
        let r = report.rows;
        let summary = BTreeMap::from([
            ("vintagelake.compaction.rows-in".to_owned(), r.rows_in.to_string()),
            ("vintagelake.compaction.rows-out".to_owned(), r.rows_out.to_string()),
            ("vintagelake.compaction.duplicates-dropped".to_owned(), r.duplicates_dropped.to_string()),
            ("vintagelake.compaction.corrections-applied".to_owned(), r.corrections_applied.to_string()),
            ("vintagelake.compaction.periods-closed".to_owned(), r.periods_closed.to_string()),
            ("vintagelake.compaction.periods-corrected".to_owned(), r.periods_corrected.to_string()),
        ]);
        report.bytes_out = staged.files.iter().map(|f| f.file_size_in_bytes()).sum();
        let mut request = CommitRequest::new(CommitKind::Replace, staged.files, staged.removed, "compaction");
        request.summary = summary;
        vintagelake_runtime::failpoint::hit("compact-before-commit");
        let committed = store.commit_files(TableKind::DataPoints, request).await?;
        report.snapshot_id = Some(committed.snapshot_id);
        report.files_out = committed.added_files;
        report.commit_attempts = committed.attempts;
        metrics::counter!(m::CONFLICTS).increment(u64::from(committed.attempts - 1));
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
