//! Integration tests of the storage crate against real parts (pyiceberg, an S3-compatible server).

mod concurrency;
mod corruption;
mod fixture;
mod lifecycle;
mod offsets;
mod pyiceberg;
mod reader;
mod tiers;
mod vintages;
