//! Integration tests of the storage crate against real parts (pyiceberg, an S3-compatible server).

mod fixture;
mod lifecycle;
mod offsets;
mod concurrency;
mod pyiceberg;
mod tiers;
mod vintages;
