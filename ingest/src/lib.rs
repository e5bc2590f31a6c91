//! Kafka → Iceberg ingest, exactly once, with a dead-letter topic; plus the local broker that
//! development, tests and `vintagelake serve` use when no Kafka is configured, and the producer
//! side (`vintagelake produce`, synthetic revision streams).

pub mod broker;
pub mod config;
pub mod dlq;
pub mod error;
pub mod metrics;
pub mod pipeline;
pub mod produce;
pub mod synthetic;

pub use config::IngestConfig;
pub use pipeline::{Ingest, IngestOptions, IngestReport};
