//! Compactor settings.

use vintagelake_storage::config::parse_schedule;

/// When and how the compactor runs.
#[derive(Debug, Clone, clap::Args)]
pub struct CompactorConfig {
    /// Cron schedule (seconds field first), e.g. `0 */15 * * * *` for every 15 minutes.
    #[arg(long = "schedule", env = "COMPACTION_SCHEDULE", default_value = "0 */15 * * * *", value_parser = parse_schedule)]
    pub schedule: cron::Schedule,

    /// Run once now and exit instead of following the schedule.
    #[arg(long)]
    pub once: bool,
}
