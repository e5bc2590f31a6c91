//! The storage core's metrics: commits, conflicts, ambiguous swaps, expiry and orphan removal
//! (the catalogue's shape is `vintagelake_runtime::metrics`).

use vintagelake_runtime::metrics::{Kind, MetricDoc, doc};

pub const COMMITS: &str = "vintagelake_commits_total";
pub const COMMIT_CONFLICTS: &str = "vintagelake_commit_conflicts_total";
pub const COMMITS_AMBIGUOUS: &str = "vintagelake_commits_ambiguous_total";
pub const SNAPSHOTS_EXPIRED: &str = "vintagelake_snapshots_expired_total";
pub const ORPHANS_REMOVED: &str = "vintagelake_orphans_removed_total";
pub const GROUP_COMMITS: &str = "vintagelake_api_group_commits_total";
pub const GROUP_COMMIT_APPENDS: &str = "vintagelake_api_group_commit_appends_total";

/// The storage core's metrics (every daemon that commits exports them).
pub const CATALOGUE: &[MetricDoc] = &[
    doc(
        COMMITS,
        Kind::Counter,
        &["table", "origin"],
        "Commits that reached the catalog, by table and origin (ingest, compaction, tiering, expire, …).",
    ),
    doc(
        COMMIT_CONFLICTS,
        Kind::Counter,
        &["table", "origin"],
        "Commit attempts that lost the catalog compare-and-swap to another writer and were re-planned.",
    ),
    doc(
        COMMITS_AMBIGUOUS,
        Kind::Counter,
        &["table", "outcome"],
        "Catalog swaps whose reply was lost, by what re-reading the catalog found: committed, not_committed, or \
         unknown (the catalog did not answer; every file was kept and the commit reported failed).",
    ),
    doc(SNAPSHOTS_EXPIRED, Kind::Counter, &["table"], "Snapshots removed by expiry."),
    doc(ORPHANS_REMOVED, Kind::Counter, &["table"], "Unreferenced files deleted after the grace period."),
    doc(
        GROUP_COMMITS,
        Kind::Counter,
        &["table"],
        "Commits of API appends (the storage interface, not ingest); concurrent appends share one.",
    ),
    doc(
        GROUP_COMMIT_APPENDS,
        Kind::Counter,
        &["table"],
        "API appends committed; divided by vintagelake_api_group_commits_total, the appends per commit.",
    ),
];

/// Starts the storage core's commit counters at zero for every table and the origins our daemons
/// commit with, so a conflict rate reads 0 rather than "no data" until the first conflict.
pub fn register_commit_counters() {
    for table in crate::catalog::TableKind::all() {
        for origin in ["ingest", "compaction", "tiering", "expire"] {
            metrics::counter!(COMMITS, "table" => table.name(), "origin" => origin).increment(0);
            metrics::counter!(COMMIT_CONFLICTS, "table" => table.name(), "origin" => origin).increment(0);
        }
    }
}
