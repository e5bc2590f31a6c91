//! Tierer settings.

use vintagelake_storage::config::parse_schedule;

/// When and how the tierer runs.
#[derive(Debug, Clone, clap::Args)]
pub struct TiererConfig {
    /// Cron schedule (seconds field first), e.g. `0 0 * * * *` for hourly.
    #[arg(long = "schedule", env = "TIERING_SCHEDULE", default_value = "0 0 * * * *", value_parser = parse_schedule)]
    pub schedule: cron::Schedule,

    /// Run once now and exit instead of following the schedule.
    #[arg(long)]
    pub once: bool,

    /// Print the plan (moves, deletions, bytes, reasons) without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}
