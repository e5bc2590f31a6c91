//! Metric names of the query service (the catalogue below is the one place they are described).

pub const REQUESTS: &str = "vintagelake_query_requests_total";
pub const REQUEST_DURATION: &str = "vintagelake_query_request_duration_seconds";
pub const ROWS_STREAMED: &str = "vintagelake_query_rows_streamed_total";
pub const BYTES_STREAMED: &str = "vintagelake_query_bytes_streamed_total";
pub const CACHE_HITS: &str = "vintagelake_query_cache_hits_total";
pub const CACHE_MISSES: &str = "vintagelake_query_cache_misses_total";
pub const AUTH_FAILURES: &str = "vintagelake_query_auth_failures_total";
pub const SQL_PREPARED: &str = "vintagelake_query_sql_prepared_statements_total";
pub const ACCESS_AUDIT_DROPPED: &str = "vintagelake_query_access_audit_dropped_total";

use vintagelake_runtime::metrics::{Kind, MetricDoc, doc};

/// Every metric of the query service.
pub const CATALOGUE: &[MetricDoc] = &[
    doc(REQUESTS, Kind::Counter, &["rpc", "view", "status"], "Flight RPCs answered, by RPC, view and gRPC status."),
    doc(
        REQUEST_DURATION,
        Kind::Histogram,
        &["rpc", "view"],
        "Flight RPC latency (do_get: until the last batch is sent).",
    ),
    doc(ROWS_STREAMED, Kind::Counter, &["view"], "Rows sent by do_get."),
    doc(BYTES_STREAMED, Kind::Counter, &["view"], "Arrow IPC bytes sent by do_get."),
    doc(CACHE_HITS, Kind::Counter, &[], "Queries answered from the snapshot-keyed result cache."),
    doc(CACHE_MISSES, Kind::Counter, &[], "Queries that had to scan the table."),
    doc(AUTH_FAILURES, Kind::Counter, &["rpc"], "RPCs refused for a missing or wrong token or password."),
    doc(SQL_PREPARED, Kind::Counter, &[], "Flight SQL prepared statements created."),
    doc(
        ACCESS_AUDIT_DROPPED,
        Kind::Counter,
        &[],
        "Access audit entries dropped because the writer's queue was full (the disk is slower than the reads).",
    ),
];
