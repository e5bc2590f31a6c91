//! The metric catalogue: every metric a daemon exports, with its type, labels and meaning. Each
//! crate lists its own; daemons describe them at start (Prometheus `# HELP`), counters and gauges
//! without labels start at zero (so dashboards and alerts see 0, not "no data"), and
//! docs/operations.md is checked against the same lists.

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct MetricDoc {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

/// A catalogue entry (`const`, so catalogues are plain statics).
pub const fn doc(name: &'static str, kind: Kind, labels: &'static [&'static str], help: &'static str) -> MetricDoc {
    MetricDoc { name, kind, labels, help }
}

pub const COMMITS: &str = "vintagelake_commits_total";
pub const COMMIT_CONFLICTS: &str = "vintagelake_commit_conflicts_total";
pub const COMMITS_AMBIGUOUS: &str = "vintagelake_commits_ambiguous_total";
pub const SNAPSHOTS_EXPIRED: &str = "vintagelake_snapshots_expired_total";
pub const ORPHANS_REMOVED: &str = "vintagelake_orphans_removed_total";

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
];

/// Describes every metric of `catalogue` to the installed recorder and starts the unlabelled
/// counters and gauges at zero.
pub fn register(catalogue: &[MetricDoc]) {
    for m in catalogue {
        match m.kind {
            Kind::Counter => {
                metrics::describe_counter!(m.name, m.help);
                if m.labels.is_empty() {
                    metrics::counter!(m.name).increment(0);
                }
            }
            Kind::Gauge => {
                metrics::describe_gauge!(m.name, m.help);
                if m.labels.is_empty() {
                    metrics::gauge!(m.name).increment(0.0);
                }
            }
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

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
