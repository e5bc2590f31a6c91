//! Metric names of the ingest daemon (the catalogue below is the one place they are described).

pub const CONSUMED: &str = "vintagelake_ingest_records_consumed_total";
pub const COMMITTED: &str = "vintagelake_ingest_records_committed_total";
pub const DEAD_LETTERED: &str = "vintagelake_ingest_records_dead_lettered_total";
pub const DEAD_LETTER_FAILURES: &str = "vintagelake_ingest_dead_letter_failures_total";
pub const DLQ_HELD_PARTITIONS: &str = "vintagelake_ingest_dlq_held_partitions";
pub const DLQ_PRODUCER_RESTARTS: &str = "vintagelake_ingest_dlq_producer_restarts_total";
pub const COMMIT_DURATION: &str = "vintagelake_ingest_commit_duration_seconds";
pub const COMMIT_RETRIES: &str = "vintagelake_ingest_commit_retries_total";
pub const COMMIT_FAILURES: &str = "vintagelake_ingest_commit_failures_total";
pub const FENCED: &str = "vintagelake_ingest_fenced_total";
pub const BATCH_ROWS: &str = "vintagelake_ingest_batch_rows";
pub const BATCH_BYTES: &str = "vintagelake_ingest_batch_bytes";
pub const BUFFERED_BYTES: &str = "vintagelake_ingest_buffered_bytes";
pub const CONSUMER_LAG: &str = "vintagelake_ingest_consumer_lag";
pub const REBALANCES: &str = "vintagelake_ingest_rebalances_total";
pub const COMMITS_STARTED: &str = "vintagelake_ingest_commits_started_total";
pub const FILES_COMMITTED: &str = "vintagelake_ingest_files_committed_total";
pub const FILES_LAST_HOUR: &str = "vintagelake_ingest_data_files_last_hour";

use vintagelake_runtime::metrics::{Kind, MetricDoc, doc};

/// Every metric of the ingest daemon.
pub const CATALOGUE: &[MetricDoc] = &[
    doc(FILES_COMMITTED, Kind::Counter, &["table"], "Data files ingest's commits added, by table."),
    doc(
        FILES_LAST_HOUR,
        Kind::Gauge,
        &[],
        "data_points files ingest committed over the last hour (the MAX_FILES_PER_HOUR budget's count).",
    ),
    doc(CONSUMED, Kind::Counter, &["topic"], "Kafka records read (before validation)."),
    doc(COMMITTED, Kind::Counter, &["table"], "Rows committed to the Iceberg tables (exactly once)."),
    doc(
        DEAD_LETTERED,
        Kind::Counter,
        &["topic", "reason"],
        "Records acknowledged by the dead-letter topic, by source topic and reason code.",
    ),
    doc(
        DEAD_LETTER_FAILURES,
        Kind::Counter,
        &["topic"],
        "Dead-letter deliveries that failed, by dead-letter topic (the letter is kept and sent again).",
    ),
    doc(
        DLQ_HELD_PARTITIONS,
        Kind::Gauge,
        &[],
        "Source partitions holding their position because a dead letter is not acknowledged yet.",
    ),
    doc(
        DLQ_PRODUCER_RESTARTS,
        Kind::Counter,
        &[],
        "Dead-letter producers replaced because the broker or the client made them unusable (fenced, fatal).",
    ),
    doc(
        COMMIT_DURATION,
        Kind::Histogram,
        &["table"],
        "Time to write and commit one batch (data files, manifests, catalog swap).",
    ),
    doc(
        COMMITS_STARTED,
        Kind::Counter,
        &["reason"],
        "Commits started, by what made them due: caught_up (no record for COMMIT_WHEN_IDLE), interval, size, dead_letters.",
    ),
    doc(COMMIT_RETRIES, Kind::Counter, &["table"], "Commit attempts retried after a conflict."),
    doc(
        COMMIT_FAILURES,
        Kind::Counter,
        &[],
        "Commits that failed after their retries (the batch stays buffered, ingest reports not ready).",
    ),
    doc(
        FENCED,
        Kind::Counter,
        &[],
        "Commits refused because another replica advanced the recorded offsets (this replica repositions).",
    ),
    doc(BATCH_ROWS, Kind::Histogram, &[], "Rows per committed batch."),
    doc(BATCH_BYTES, Kind::Histogram, &[], "Payload bytes per committed batch."),
    doc(BUFFERED_BYTES, Kind::Gauge, &[], "Payload bytes consumed and not yet committed."),
    doc(
        CONSUMER_LAG,
        Kind::Gauge,
        &["topic", "partition"],
        "Records between the committed position and the partition end.",
    ),
    doc(REBALANCES, Kind::Counter, &[], "Consumer-group rebalances seen by this replica."),
];
