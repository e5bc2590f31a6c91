//! Metric names of the compactor.

pub const RUNS: &str = "vintagelake_compaction_runs_total";
pub const DURATION: &str = "vintagelake_compaction_duration_seconds";
pub const FILES_IN: &str = "vintagelake_compaction_files_in_total";
pub const FILES_OUT: &str = "vintagelake_compaction_files_out_total";
pub const BYTES_IN: &str = "vintagelake_compaction_bytes_in_total";
pub const BYTES_OUT: &str = "vintagelake_compaction_bytes_out_total";
pub const ROWS_DEDUPLICATED: &str = "vintagelake_compaction_rows_deduplicated_total";
pub const PERIODS_CLOSED: &str = "vintagelake_compaction_periods_closed_total";
pub const PERIODS_CORRECTED: &str = "vintagelake_compaction_periods_corrected_total";
pub const CONFLICTS: &str = "vintagelake_compaction_conflicts_total";
pub const ACCOUNTING_FAILURES: &str = "vintagelake_compaction_accounting_failures_total";
pub const SNAPSHOTS_EXPIRED: &str = "vintagelake_compaction_snapshots_expired_total";
pub const ORPHANS_REMOVED: &str = "vintagelake_compaction_orphans_removed_total";
pub const SMALL_FILES: &str = "vintagelake_compaction_small_files";
pub const FILES_REENCRYPTED: &str = "vintagelake_compaction_files_reencrypted_total";
pub const FILES_UNDER_OLD_KEYS: &str = "vintagelake_files_under_old_keys";

use vintagelake_runtime::metrics::{Kind, MetricDoc, doc};

/// Every metric of the compactor.
pub const CATALOGUE: &[MetricDoc] = &[
    doc(RUNS, Kind::Counter, &["outcome"], "Compaction runs by outcome: ok, failed, cancelled."),
    doc(DURATION, Kind::Histogram, &[], "Duration of a compaction run (plan, rewrite, commit, expiry, orphans)."),
    doc(FILES_IN, Kind::Counter, &[], "Data files rewritten (removed by compaction commits)."),
    doc(FILES_OUT, Kind::Counter, &[], "Data files written by compaction commits."),
    doc(BYTES_IN, Kind::Counter, &[], "Bytes of the files rewritten."),
    doc(BYTES_OUT, Kind::Counter, &[], "Bytes of the files written."),
    doc(ROWS_DEDUPLICATED, Kind::Counter, &[], "Rows dropped as exact duplicates or corrected revisions."),
    doc(
        PERIODS_CLOSED,
        Kind::Counter,
        &[],
        "Revisions that got their realtime_end (moved out of the current partition).",
    ),
    doc(
        PERIODS_CORRECTED,
        Kind::Counter,
        &[],
        "Stored realtime_end values moved earlier because a backfilled revision now follows them.",
    ),
    doc(CONFLICTS, Kind::Counter, &[], "Compaction commit attempts re-planned after a concurrent commit."),
    doc(
        ACCOUNTING_FAILURES,
        Kind::Counter,
        &[],
        "Runs aborted because rows in != rows out + rows dropped (nothing committed).",
    ),
    doc(SNAPSHOTS_EXPIRED, Kind::Counter, &[], "Snapshots expired by compaction runs."),
    doc(ORPHANS_REMOVED, Kind::Counter, &[], "Orphan files removed by compaction runs."),
    doc(SMALL_FILES, Kind::Gauge, &["partition"], "Small files per partition at the last run's planning."),
    doc(
        FILES_REENCRYPTED,
        Kind::Counter,
        &[],
        "Data files rewritten under the current master key (key rotation, or encryption switched on).",
    ),
    doc(
        FILES_UNDER_OLD_KEYS,
        Kind::Gauge,
        &["table"],
        "Live data files not under the current master key, as the last run left them (0: an old key is no longer needed by the current snapshot).",
    ),
];
