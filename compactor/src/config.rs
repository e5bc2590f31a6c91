//! Compactor settings.

use std::time::Duration;

use vintagelake_runtime::DaemonSettings;
use vintagelake_runtime::schedule::parse_schedule;

/// When and how the compactor runs (shared by `vintagelake compact` and `serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct CompactorConfig {
    /// Cron schedule (seconds field first), e.g. `0 */15 * * * *` for every 15 minutes.
    #[arg(long, env = "COMPACTION_SCHEDULE", default_value = "0 */15 * * * *", value_parser = parse_schedule)]
    pub compaction_schedule: cron::Schedule,

    /// Files smaller than this fraction of the table's target file size are "small" and merged.
    #[arg(long, env = "SMALL_FILE_FRACTION", default_value_t = 0.5)]
    pub small_file_fraction: f64,

    /// Snapshots older than this may be expired (e.g. 7d); the newest KEEP_SNAPSHOTS always stay.
    #[arg(long, env = "SNAPSHOT_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub snapshot_retention: Duration,

    /// Always keep at least this many of the newest snapshots.
    #[arg(long, env = "KEEP_SNAPSHOTS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_snapshots: u32,

    /// Files nothing references are deleted once older than this (commits in flight are younger).
    #[arg(long, env = "ORPHAN_GRACE", default_value = "1d", value_parser = humantime::parse_duration)]
    pub orphan_grace: Duration,

    /// Memory a compaction run sizes its chunks of rows for, in MiB: current files are read,
    /// folded and written a chunk at a time (rows appended since the last run come on top).
    #[arg(long, env = "COMPACTION_MEMORY_MB", default_value_t = 512, value_parser = clap::value_parser!(u64).range(64..))]
    pub compaction_memory_mb: u64,
}

impl CompactorConfig {
    /// What one run may do; the daemon's concurrency bounds parallel file reads and writes.
    pub fn options(&self, daemon: &DaemonSettings) -> crate::CompactOptions {
        crate::CompactOptions {
            small_file_fraction: self.small_file_fraction,
            snapshot_retention: self.snapshot_retention,
            keep_snapshots: self.keep_snapshots as usize,
            orphan_grace: self.orphan_grace,
            concurrency: daemon.concurrency,
            memory_limit_bytes: self.compaction_memory_mb << 20,
        }
    }
}
