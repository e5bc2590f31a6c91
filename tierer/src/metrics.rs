//! Metric names of the tierer.

pub const RUNS: &str = "vintagelake_tiering_runs_total";
pub const DURATION: &str = "vintagelake_tiering_duration_seconds";
pub const MOVES: &str = "vintagelake_tiering_moves_total";
pub const DELETES: &str = "vintagelake_tiering_deletes_total";
pub const BYTES_MOVED: &str = "vintagelake_tiering_bytes_moved_total";
pub const FAILURES: &str = "vintagelake_tiering_failures_total";
pub const TIER_FILES: &str = "vintagelake_tier_files";
pub const TIER_BYTES: &str = "vintagelake_tier_bytes";
pub const TIER_OLDEST_DAYS: &str = "vintagelake_tier_oldest_data_age_days";
