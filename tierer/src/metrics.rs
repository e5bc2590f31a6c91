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
pub const REENCODED_BYTES_IN: &str = "vintagelake_tiering_reencoded_bytes_in_total";
pub const REENCODED_BYTES_OUT: &str = "vintagelake_tiering_reencoded_bytes_out_total";
pub const PROMOTIONS: &str = "vintagelake_tiering_promotions_total";
pub const KEPT_FOR_READS: &str = "vintagelake_tiering_kept_for_reads";

use vintagelake_runtime::metrics::{Kind, MetricDoc, doc};

/// Every metric of the tierer.
pub const CATALOGUE: &[MetricDoc] = &[
    doc(
        PROMOTIONS,
        Kind::Counter,
        &["tier"],
        "Files moved one tier warmer because they are read often (access-aware tiering), by the tier they went to.",
    ),
    doc(
        KEPT_FOR_READS,
        Kind::Gauge,
        &["tier"],
        "Files the last run left in their tier although their age says colder, because they are read often.",
    ),
    doc(RUNS, Kind::Counter, &["outcome"], "Tiering runs by outcome: ok, cancelled, conflict, verify, storage."),
    doc(DURATION, Kind::Histogram, &[], "Duration of a tiering run."),
    doc(MOVES, Kind::Counter, &[], "Files moved to another tier (copied, verified, committed)."),
    doc(DELETES, Kind::Counter, &[], "Files removed from the table past delete_after_days."),
    doc(BYTES_MOVED, Kind::Counter, &[], "Bytes moved between tiers."),
    doc(
        FAILURES,
        Kind::Counter,
        &["reason"],
        "Failed runs and copies by reason: copy, verify, conflict, storage, cancelled.",
    ),
    doc(TIER_FILES, Kind::Gauge, &["tier"], "Live data files per tier."),
    doc(TIER_BYTES, Kind::Gauge, &["tier"], "Bytes of live data files per tier."),
    doc(TIER_OLDEST_DAYS, Kind::Gauge, &["tier"], "Age in days of the oldest data per tier (days since superseded)."),
    doc(
        REENCODED_BYTES_IN,
        Kind::Counter,
        &["tier"],
        "Bytes of files moved into a tier with another zstd level (re-encoded), before: in minus out is what the tier's compression saved.",
    ),
    doc(
        REENCODED_BYTES_OUT,
        Kind::Counter,
        &["tier"],
        "Bytes of the same files after re-encoding at the target tier's zstd level.",
    ),
];
