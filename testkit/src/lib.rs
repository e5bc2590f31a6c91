//! What tests and benchmarks share, kept out of the production crates: the hand-computed vintage
//! fixture, random revision streams and the storage trait's suite ([`fixtures`]); pinned Python
//! environments (pyiceberg, DuckDB with its Iceberg extension) and an S3-compatible server
//! ([`tools`]). Library crates take it as a dev-dependency only; the binary links it for
//! `vintagelake bench`, which compares us with pyiceberg and DuckDB in the same run.

pub mod fixtures;
pub mod tools;
