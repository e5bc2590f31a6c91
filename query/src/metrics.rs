//! Metric names of the query service (documented in docs/query.md).

pub const REQUESTS: &str = "vintagelake_query_requests_total";
pub const REQUEST_DURATION: &str = "vintagelake_query_request_duration_seconds";
pub const ROWS_STREAMED: &str = "vintagelake_query_rows_streamed_total";
pub const BYTES_STREAMED: &str = "vintagelake_query_bytes_streamed_total";
pub const CACHE_HITS: &str = "vintagelake_query_cache_hits_total";
pub const CACHE_MISSES: &str = "vintagelake_query_cache_misses_total";
pub const AUTH_FAILURES: &str = "vintagelake_query_auth_failures_total";
