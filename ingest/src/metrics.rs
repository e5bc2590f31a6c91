//! Metric names of the ingest daemon (documented in docs/operations.md).

pub const CONSUMED: &str = "vintagelake_ingest_records_consumed_total";
pub const COMMITTED: &str = "vintagelake_ingest_records_committed_total";
pub const DEAD_LETTERED: &str = "vintagelake_ingest_records_dead_lettered_total";
pub const COMMIT_DURATION: &str = "vintagelake_ingest_commit_duration_seconds";
pub const COMMIT_RETRIES: &str = "vintagelake_ingest_commit_retries_total";
pub const COMMIT_FAILURES: &str = "vintagelake_ingest_commit_failures_total";
pub const FENCED: &str = "vintagelake_ingest_fenced_total";
pub const BATCH_ROWS: &str = "vintagelake_ingest_batch_rows";
pub const BATCH_BYTES: &str = "vintagelake_ingest_batch_bytes";
pub const BUFFERED_BYTES: &str = "vintagelake_ingest_buffered_bytes";
pub const CONSUMER_LAG: &str = "vintagelake_ingest_consumer_lag";
pub const REBALANCES: &str = "vintagelake_ingest_rebalances_total";
