//! Kafka → Iceberg ingest, exactly once, with a dead-letter topic. The local broker, the
//! producer and synthetic streams live in `vintagelake-kafka`.

mod buffer;
pub mod config;
pub mod dlq;
pub mod error;
pub mod metrics;
pub mod pipeline;

pub use config::IngestConfig;
pub use pipeline::{Ingest, IngestOptions, IngestReport};
