//! Metric names of the compactor.

pub const RUNS: &str = "vintagelake_compaction_runs_total";
pub const DURATION: &str = "vintagelake_compaction_duration_seconds";
pub const FILES_IN: &str = "vintagelake_compaction_files_in_total";
pub const FILES_OUT: &str = "vintagelake_compaction_files_out_total";
pub const BYTES_IN: &str = "vintagelake_compaction_bytes_in_total";
pub const BYTES_OUT: &str = "vintagelake_compaction_bytes_out_total";
pub const ROWS_DEDUPLICATED: &str = "vintagelake_compaction_rows_deduplicated_total";
pub const PERIODS_CLOSED: &str = "vintagelake_compaction_periods_closed_total";
pub const CONFLICTS: &str = "vintagelake_compaction_conflicts_total";
pub const ACCOUNTING_FAILURES: &str = "vintagelake_compaction_accounting_failures_total";
pub const SNAPSHOTS_EXPIRED: &str = "vintagelake_compaction_snapshots_expired_total";
pub const ORPHANS_REMOVED: &str = "vintagelake_compaction_orphans_removed_total";
pub const SMALL_FILES: &str = "vintagelake_compaction_small_files";
