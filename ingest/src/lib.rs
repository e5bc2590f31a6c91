//! Kafka → Iceberg ingest, exactly once, with a dead-letter topic. The local broker, the
//! producer and synthetic streams live in `vintagelake-kafka`.

mod accept;
mod buffer;
mod committer;
pub mod config;
pub mod dlq;
pub mod error;
pub mod metrics;
pub mod pipeline;
mod rebalance;

pub use config::IngestConfig;
pub use pipeline::{Ingest, IngestOptions, IngestReport};
