//! Integration tests of Storage V1: the storage trait's suite on every backend, and DuckDB reading
//! a V1 store's files with the SQL of docs/storage-v1.md.

mod backends;
mod duckdb;
